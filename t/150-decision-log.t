# The decision log: an access_log with "log_format ... escape=json" and the
# $txval_* variables (the README's txval_decisions format, as written
# there) is one JSON object per request, the transaction's
# id, merchant, currency and amount with its verdict, reasons, score,
# source, error, degraded and dry-run flags and the time spent. Shown
# with the exact lines for: approved, declined, a replay of the very same
# bytes answered from the zone without parsing (the fields filled when
# the log asks for them), a replay written differently, a conflict, a
# dry-run decline, malformed requests (405, 415, invalid_json,
# invalid_field, pan_not_accepted) with and without dry run, a location
# without txval, a backend failure (503) and a degraded verdict. No card
# token and no card number ever reaches the access log or the error log.
#
# Needs the suite's Postgres on 127.0.0.1:$TEST_NGINX_PG_PORT with
# t/fixtures.sql loaded (make test starts it). nginx on 1944 and 1945.

use strict;
use warnings;

use lib 't/lib';

use JSON::PP ();
use Test::More;

use Txval::Nginx qw(need_services closed_port);
use Txval::Tx qw(tx_defaults tx);

my $PG_PORT = $ENV{TEST_NGINX_PG_PORT} || 16432;

need_services(Postgres => $PG_PORT);

my $pg_timeout = $ENV{TEST_NGINX_USE_VALGRIND} ? '10s' : '1s';

my $closed_port = closed_port();

# the README's decision log, as written there
my $format = <<'FMT';
    log_format txval_decisions escape=json
        '{"time":"$time_iso8601","request_id":"$request_id",'
        '"client":"$remote_addr","status":$status,'
        '"id":"$txval_id","verdict":"$txval_verdict",'
        '"reasons":"$txval_reasons","risk_score":"$txval_risk_score",'
        '"source":"$txval_source","error":"$txval_error",'
        '"degraded":"$txval_degraded","dry_run":"$txval_dry_run",'
        '"merchant":"$txval_merchant_id","currency":"$txval_currency",'
        '"amount":"$txval_amount","validation_ms":"$txval_time"}';
FMT

sub conf {
    my ($port, $pg, $locations) = @_;
    return <<"HTTP";
    txval_cache_zone t150_$port:1m;
    txval_postgres "$pg" timeout=$pg_timeout;
    txval_amount_limit USD 1 1000000;
$format
    server {
        listen 127.0.0.1:$port;
        server_name localhost;
        access_log logs/decision.log txval_decisions;

$locations
    }
HTTP
}

my $A = Txval::Nginx->new(name => 't150a', port => 1944, valgrind => 1);
$A->start(http => conf(1944, "host=127.0.0.1 port=$PG_PORT dbname=txval "
                             . "user=txval password=txval", <<'L'));
        location = /t      { txval; }
        location = /dry    { txval; txval_dry_run on; }
        location = /other  { return 204; }
L

my $B = Txval::Nginx->new(name => 't150b', port => 1945, valgrind => 1);
$B->start(http => conf(1945, "host=127.0.0.1 port=$closed_port dbname=txval "
                             . "user=txval password=txval", <<'L'));
        location = /closed { txval; }
        location = /open   { txval; txval_fail_mode open; }
L


# card tokens and a card number that must never be logged
my $TOK = "tokSECRET150x$$";
my $TOK2 = "tokSECRET150y$$";
my $PAN = '4111111111111111';
my $run = "$$";

sub id { "l${run}_$_[0]" }

my @sent;       # [ instance, expected line ]

sub expect {
    my ($ng, %f) = @_;
    my %line = (id => '', verdict => '', reasons => '', risk_score => '',
                source => '', error => '', degraded => '', dry_run => '',
                merchant_id => '', currency => '', amount => '',
                time => 'T', %f);
    my $status = delete $line{status};
    $line{merchant} = delete $line{merchant_id};
    $line{validation_ms} = delete $line{time};
    push @sent, [ $ng, '{"time":"T","request_id":"R","client":"127.0.0.1",'
                       . qq("status":$status,)
                       . join(',', map { qq("$_":"$line{$_}") }
                                   qw(id verdict reasons risk_score source
                                      error degraded dry_run merchant
                                      currency amount validation_ms))
                       . '}' ];
}

sub post {
    my ($ng, $uri, $body, $status, %headers) = @_;
    my $res = $ng->post($uri, $body, %headers);
    is $res->{status}, $status, "$uri $body: $status";
}

tx_defaults(merchant_id => 't_active', card_token => $TOK);

my $approved = tx(id => id('ok'), amount => 2500);
my $declined = tx(id => id('lost'), amount => 120000,
                  merchant_id => 't_usd_eur', card_token => 't_card_lost',
                  card_bin => '411111', country => 'US');

# approved (an unknown card: 20)
post($A, '/t', $approved, 200);
expect($A, id => id('ok'), verdict => 'approved', risk_score => 20,
       source => 'computed', merchant_id => 't_active', currency => 'USD',
       amount => 2500, status => 200);

# declined
post($A, '/t', $declined, 402);
expect($A, id => id('lost'), verdict => 'declined', reasons => 'card_blocked',
       risk_score => 0, source => 'computed', merchant_id => 't_usd_eur',
       currency => 'USD', amount => 120000, status => 402);

# the very same bytes again: from the zone, the body not parsed to answer
post($A, '/t', $declined, 402);
expect($A, id => id('lost'), verdict => 'declined', reasons => 'card_blocked',
       risk_score => 0, source => 'shm', merchant_id => 't_usd_eur',
       currency => 'USD', amount => 120000, status => 402);

# the same transaction written differently: parsed, from the zone
post($A, '/t', qq({ "card_token" : "$TOK", "merchant_id":"t_active", )
               . qq("currency":"USD", "amount":2.5e3, "id":"@{[id('ok')]}" }),
     200);
expect($A, id => id('ok'), verdict => 'approved', risk_score => 20,
       source => 'shm', merchant_id => 't_active', currency => 'USD',
       amount => 2500, status => 200);

# a conflict: the fields of the transaction refused
post($A, '/t', tx(id => id('ok'), amount => 2600), 409);
expect($A, id => id('ok'), verdict => 'error', error => 'idempotency_conflict',
       merchant_id => 't_active', currency => 'USD', amount => 2600,
       status => 409);

# dry run: a would-be decline
post($A, '/dry', tx(id => id('dry'), merchant_id => 't_inactive',
                    card_token => $TOK2), 200);
expect($A, id => id('dry'), verdict => 'declined',
       reasons => 'merchant_inactive', risk_score => 20, source => 'computed',
       dry_run => 1, merchant_id => 't_inactive', currency => 'USD',
       amount => 1000, status => 200);

# malformed
post($A, '/t', tx(id => id('bad'), amount => '"x"'), 400);
expect($A, verdict => 'error', error => 'invalid_field', status => 400);

post($A, '/t', qq({"id":"@{[id('json')]}","card_token":"$TOK",), 400);
expect($A, verdict => 'error', error => 'invalid_json', status => 400);

post($A, '/t', qq({"id":"@{[id('pan')]}","amount":100,"currency":"USD",)
               . qq("merchant_id":"t_active","card_token":"$TOK",)
               . qq("pan":"$PAN","card_number":"$PAN"}), 400);
expect($A, verdict => 'error', error => 'pan_not_accepted', status => 400);

post($A, '/dry', qq({"id":"@{[id('pan2')]}","card_number":"$PAN"}), 400);
expect($A, verdict => 'error', error => 'pan_not_accepted', dry_run => 1,
       status => 400);

is $A->request(GET => '/t')->{status}, 405, 'GET /t: 405';
expect($A, verdict => 'error', error => 'method_not_allowed', status => 405);

is $A->request(POST => '/dry', $approved, 'Content-Type' => 'text/plain')
      ->{status}, 415, 'text/plain: 415';
expect($A, verdict => 'error', error => 'unsupported_media_type',
       dry_run => 1, status => 415);

# not a txval location
is $A->request(GET => '/other')->{status}, 204, 'GET /other: 204';
expect($A, time => '', status => 204);

# a backend failure, failing closed and open
post($B, '/closed', tx(id => id('down'), amount => 100), 503);
expect($B, id => id('down'), verdict => 'error',
       error => 'backend_unavailable', merchant_id => 't_active',
       currency => 'USD', amount => 100, status => 503);

post($B, '/open', tx(id => id('deg'), amount => 100), 200);
expect($B, id => id('deg'), verdict => 'approved', risk_score => 0,
       source => 'computed', degraded => 1, merchant_id => 't_active',
       currency => 'USD', amount => 100, status => 200);


# --- the log, line by line

$A->stop;
$B->stop;

for my $ng ($A, $B) {
    my $file = $ng->root . '/logs/decision.log';
    open my $fh, '<', $file or die "$file: $!\n";
    my @lines = <$fh>;
    close $fh;
    chomp @lines;

    my @want = map { $_->[1] } grep { $_->[0] == $ng } @sent;
    my (@got, @bad, %request_ids);

    for my $line (@lines) {
        push @bad, $line unless eval { JSON::PP->new->decode($line); 1 };
        (my $l = $line) =~ s/^\{"time":"\d{4}-\d\d-\d\dT[\d:]{8}[-+]\d\d:\d\d"/{"time":"T"/;
        $request_ids{$1}++ if $l =~ s/"request_id":"([0-9a-f]{32})"/"request_id":"R"/;
        # $txval_time: milliseconds, three decimals
        $l =~ s/"validation_ms":"\d+\.\d{3}"/"validation_ms":"T"/;
        push @got, $l;
    }

    is scalar(keys %request_ids), scalar(@lines),
       $ng->root . ': a request id of its own on every line';

    is_deeply \@bad, [], $ng->root . ': every line is JSON';
    is_deeply \@got, \@want, $ng->root . ': the decision log, line by line'
        or diag join "\n", @lines;

    my $all = join "\n", @lines, $ng->error_log;

    for my $secret ($TOK, $TOK2, 't_card_lost', $PAN) {
        unlike $all, qr/\Q$secret\E/,
               $ng->root . ": $secret in neither the access log nor the "
               . 'error log';
    }

    unlike $ng->error_log, qr/\[(alert|crit|emerg)\]/,
           $ng->root . ': no alert in the error log';
    $ng->valgrind_ok;
}

done_testing;
