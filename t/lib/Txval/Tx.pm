package Txval::Tx;

# Transactions and the answers txval gives, written once for every t/*.t
# file: the bodies a test sends, the bodies it expects back, and a
# response told in a few words.
#
#   use Txval::Tx qw(tx post v computed conflict);
#   tx_defaults(currency => 'EUR');     # this file's usual transaction
#
# A block file imports what its --- request eval and --- response_body
# eval sections call: Test::Base evaluates those in its own package, so
# they call ::tx() and the like, which are main's. Nothing here depends on
# the runner: the files run under upstream Test::Nginx::Socket as well.
#
# The transaction
#
#   tx_defaults(%fields)   this file's defaults, over id tx_1, amount 1000,
#                          currency USD, merchant_id m_1, card_token tok_1;
#                          undef takes a default away, a code ref makes the
#                          value for each transaction that does not name
#                          the field (a new id each time)
#   tx(%fields)            the JSON body: id amount currency merchant_id
#                          card_token card_bin country in this order, those
#                          without a value left out; the values are strings
#                          but amount's (its text as given) and those given
#                          as a reference (\'null': raw JSON text); other
#                          keys after them, sorted, their values raw JSON
#   tx_raw(key => $json, ...)
#                          every member as raw JSON text: the defaults'
#                          members in their order, each pair replacing one
#                          (undef drops it), other keys appended in the
#                          order given
#   adyen(key => $json, ...)
#                          the same for a body shaped like Adyen's
#                          /payments (examples/adyen.conf's mapping)
#   json_object(\@members, key => $json, ...)
#                          the same from these members (pairs, in order)
#   post($uri, %fields)    "POST $uri\n" . tx(...), a --- request
#   post_raw($uri, ...)    "POST $uri\n" . tx_raw(...)
#   raw_request($body)     the exact bytes of a POST /t with this body
#                          (nothing trimmed), a --- raw_request
#   fingerprint(%fields)   the module's fingerprint of tx(%fields)
#
# The answers
#
#   v($id, $source, $verdict, $reasons, $score, @flags)
#                          a verdict body: source computed, approved, no
#                          reasons (an array ref), score 0 unless given;
#                          each flag a member "flag":true ('degraded',
#                          'dry_run'); the id, when undef, the default one
#   computed($id, $score, @reasons)
#                          a verdict computed by the rules: declined when
#                          there is a reason
#   error_body($error, $id, @flags)
#                          an error body with its detail (and the id when
#                          given): idempotency_conflict,
#                          idempotency_in_progress, backend_unavailable,
#                          method_not_allowed, unsupported_media_type,
#                          pan_not_accepted, invalid_json
#   conflict($id)          error_body('idempotency_conflict', $id)
#   unavailable()          error_body('backend_unavailable')
#   invalid($field, $detail)
#                          invalid_field, the field's own detail unless
#                          given
#   invalid_json($detail)  invalid_json (the body is not valid JSON unless
#                          told otherwise)
#
# A response (as Txval::Nginx gives it: {status, headers, body}) in words
#
#   outcome($res)          "200 computed", "200 shm", "409
#                          idempotency_conflict", "<status> <body>";
#                          degraded => 1: " degraded" after a degraded
#                          verdict's; header => 1: " (header X)" when
#                          X-Txval-Source says otherwise than the body
#   source_of($res)        a 200 verdict's source ("computed", "shm",
#                          "header X vs body Y" when they disagree), or
#                          "<status> <error>"
#   reasons_of($res)       a verdict's reasons ("approved" when none), or
#                          "<status> <error>"; score => 1: the risk score
#                          after them ("card_blocked 20")

use strict;
use warnings;

use Digest::SHA ();
use Exporter qw(import);

our @EXPORT_OK = qw(
    tx_defaults tx tx_raw adyen json_object post post_raw raw_request
    new_id ids_made
    fingerprint
    v computed error_body conflict unavailable invalid invalid_json
    outcome source_of reasons_of
);

my @FIELDS = qw(id amount currency merchant_id card_token card_bin country);

my %Default = (id => 'tx_1', amount => 1000, currency => 'USD',
               merchant_id => 'm_1', card_token => 'tok_1');

# the shape of Adyen's /payments body, as examples/adyen.conf maps it
my @ADYEN = (
    amount => '{"currency":"EUR","value":1000}',
    reference => '"ORDER-1"',
    paymentMethod => '{"type":"scheme","storedPaymentMethodId":'
                     . '"8415718415172204"}',
    merchantAccount => '"AcmeShopECOM"',
    countryCode => '"NL"',
);

my %DETAIL = (
    idempotency_conflict => 'this id was already used for a transaction'
                            . ' with different content',
    idempotency_in_progress => 'a transaction with this id is being'
                               . ' validated, retry later',
    backend_unavailable => 'a backend this transaction needs is'
                           . ' unavailable, retry later',
    method_not_allowed => 'only POST is accepted',
    unsupported_media_type => 'the Content-Type must be application/json',
    pan_not_accepted => 'card numbers are not accepted: send a card_token',
    invalid_json => 'the body is not valid JSON',
);

my %FIELD_DETAIL = (
    id          => 'id must be a string of 1-64 characters from A-Z a-z'
                   . ' 0-9 . _ : -',
    amount      => 'amount must be an integral number of minor units from'
                   . ' 1 to 9007199254740991',
    currency    => 'currency must be 3 uppercase letters (ISO 4217)',
    merchant_id => 'merchant_id must be a string of 1-64 characters from'
                   . ' A-Z a-z 0-9 . _ : -',
    card_token  => 'card_token must be a string of 1-128 characters from'
                   . ' A-Z a-z 0-9 . _ : -',
    card_bin    => 'card_bin must be a string of 6-8 digits',
    country     => 'country must be 2 uppercase letters (ISO 3166-1'
                   . ' alpha-2)',
);


# an id not used before, in this run or an earlier one: "PREFIX-PID-N";
# ids_made() is N, for a default made per id (a card token of its own)

my $Ids = 0;

sub new_id   { $Ids++; return "$_[0]-$$-$Ids" }
sub ids_made { $Ids }


sub tx_defaults {
    my (%f) = @_;
    %Default = (%Default, %f);
    return;
}


# the defaults (their code refs called), then the fields given, as pairs
# in the order of both

sub _fields {
    my (@given) = @_;

    my %named = @given;
    my @pairs;

    for my $k (@FIELDS) {
        next if exists $named{$k} || !defined $Default{$k};
        my $v = $Default{$k};
        push @pairs, $k => ref $v eq 'CODE' ? $v->() : $v;
    }

    return (@pairs, @given);
}


sub tx {
    my %f = _fields(@_);

    my @parts;

    for my $k (@FIELDS) {
        my $v = delete $f{$k};
        next unless defined $v;
        push @parts, qq("$k":) . (ref $v ? $$v
                                  : $k eq 'amount' ? $v : qq("$v"));
    }

    push @parts, qq("$_":$f{$_}) for sort keys %f;

    return '{' . join(',', @parts) . '}';
}


sub tx_raw {
    my (@pairs) = @_;

    my @members;

    for my $k (@FIELDS) {
        my $v = $Default{$k};
        next unless defined $v;
        $v = $v->() if ref $v eq 'CODE';
        push @members, $k => $k eq 'amount' ? $v : qq("$v");
    }

    return json_object(\@members, @pairs);
}


sub adyen {
    return json_object(\@ADYEN, @_);
}


sub json_object {
    my ($members, @pairs) = @_;

    my (@order, %json);

    for (my $i = 0; $i < @$members; $i += 2) {
        push @order, $members->[$i];
        $json{ $members->[$i] } = $members->[$i + 1];
    }

    while (my ($k, $v) = splice @pairs, 0, 2) {
        push @order, $k unless exists $json{$k};
        $json{$k} = $v;
    }

    return '{' . join(',', map { qq("$_":$json{$_}) }
                           grep { defined $json{$_} } @order) . '}';
}


sub post {
    my ($uri, @fields) = @_;
    return "POST $uri\n" . tx(@fields);
}


sub post_raw {
    my ($uri, @pairs) = @_;
    return "POST $uri\n" . tx_raw(@pairs);
}


sub raw_request {
    my ($body) = @_;
    return "POST /t HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
           . "Content-Type: application/json\r\n"
           . "Content-Length: " . length($body) . "\r\n\r\n" . $body;
}


# the first 128 bits of a SHA-256 over "txval:1" and the fields as the
# module hashes them: each after its length byte, the amount as 8
# little-endian bytes, card_bin and country empty when absent

sub fingerprint {
    my %f = _fields(@_);

    my $bytes = 'txval:1'
        . join '', map { chr(length $_) . $_ }
                   $f{id}, pack('Q<', $f{amount}), $f{currency},
                   $f{merchant_id}, $f{card_token}, $f{card_bin} // '',
                   $f{country} // '';

    return substr(Digest::SHA::sha256_hex($bytes), 0, 32);
}


sub v {
    my ($id, $source, $verdict, $reasons, $score, @flags) = @_;

    $id //= $Default{id};
    $source //= 'computed';
    $verdict //= 'approved';
    $score //= 0;

    my $r = join ',', map { qq("$_") } @{ $reasons // [] };

    return qq({"id":"$id","verdict":"$verdict","reasons":[$r],)
         . qq("risk_score":$score,"source":"$source")
         . join('', map { qq(,"$_":true) } @flags) . "}\n";
}


sub computed {
    my ($id, $score, @reasons) = @_;
    return v($id, 'computed', @reasons ? 'declined' : 'approved',
             \@reasons, $score);
}


sub error_body {
    my ($error, $id, @flags) = @_;

    my $detail = $DETAIL{$error} // die "error_body: no detail for $error\n";

    return qq({"error":"$error")
         . (defined $id ? qq(,"id":"$id") : '')
         . qq(,"detail":"$detail")
         . join('', map { qq(,"$_":true) } @flags) . "}\n";
}


sub conflict { return error_body('idempotency_conflict', $_[0]) }

sub unavailable { return error_body('backend_unavailable') }


sub invalid {
    my ($field, $detail) = @_;
    $detail //= $FIELD_DETAIL{$field}
                // die "invalid: no detail for $field\n";
    return qq({"error":"invalid_field","field":"$field","detail":"$detail"}\n);
}


sub invalid_json {
    my ($detail) = @_;
    $detail //= $DETAIL{invalid_json};
    return qq({"error":"invalid_json","detail":"$detail"}\n);
}


sub outcome {
    my ($res, %o) = @_;

    if ($res->{body} =~ /"source":"(\w+)"/) {
        my $source = $1;
        my $out = "$res->{status} $source";
        $out .= ' degraded'
            if $o{degraded} && $res->{body} =~ /"degraded":true/;
        if ($o{header}) {
            my $h = $res->{headers}{'x-txval-source'} // '';
            $out .= " (header $h)" if $h ne $source;
        }
        return $out;
    }

    my ($e) = $res->{body} =~ /"error":"(\w+)"/;

    return "$res->{status} " . ($e // $res->{body});
}


sub source_of {
    my ($res) = @_;

    if ($res->{status} == 200 && $res->{body} =~ /"source":"(\w+)"/) {
        my $hdr = $res->{headers}{'x-txval-source'} // '';
        return $hdr eq $1 ? $1 : "header $hdr vs body $1";
    }

    my ($e) = $res->{body} =~ /"error":"(\w+)"/;

    return "$res->{status} " . ($e // $res->{body});
}


sub reasons_of {
    my ($res, %o) = @_;

    if ($res->{body}
        =~ /"verdict":"(\w+)","reasons":\[([^\]]*)\],"risk_score":(\d+)/)
    {
        my ($verdict, $r, $score) = ($1, $2, $3);
        $r =~ s/"//g;
        return ($r eq '' ? $verdict : $r) . ($o{score} ? " $score" : '');
    }

    my ($e) = $res->{body} =~ /"error":"(\w+)"/;

    return "$res->{status} " . ($e // $res->{body});
}


1;
