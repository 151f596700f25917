# txval_gate: approved requests reach the upstream byte for byte (small,
# spilled to a temporary file, chunked, arriving slowly, with
# proxy_request_buffering on and off, over HTTP/2) with X-Txval-Verdict,
# X-Txval-Risk-Score and X-Txval-Source added and any client-sent X-Txval-*
# removed; declined, invalid, 405, 413, 415, 409 and 503 requests are
# answered by txval exactly as in verdict mode and the upstream is never
# contacted; replays are forwarded with X-Txval-Source shm or redis;
# HTTP/1.1 keepalive to an upstream{} block, client keepalive and
# pipelining, Expect: 100-continue; limit_req, auth_request and deny in the
# same location run first and a request they refuse is never validated;
# bodies that time out or are cut off; the $txval_* variables in
# log_format, add_header and proxy_set_header, $txval_time counting the
# validation only; the directive's errors. At the end, no [alert] (such as
# "open socket left in connection") in any instance's error.log.
#
# The upstream is t/lib/Txval/Echo.pm, a small backend that records what
# it receives and counts requests and connections.
#
# nginx instances (t/servroot_gate_*), one worker each:
#   main     cache zone + Postgres   (async validation, shm replays, 409)
#   plain    no backend, no zone     (validation done inside the phase),
#            also HTTP/2 (h2c, tested with curl when it has HTTP/2)
#   redis    Redis, no zone          (replays from Redis)
#   pgdown   Postgres at a closed port: 503 (closed), forwarded (open)
#   bodyerr  client_max_body_size 100: nginx's 413/400 while reading a
#            chunked body: the connection must still be closed (the
#            gate once kept the hold the body read takes on the request,
#            leaking the connection until the worker exited).
#
# Needs the suite's Postgres on 127.0.0.1:$TEST_NGINX_PG_PORT with
# t/fixtures.sql loaded, and its Redis on $TEST_NGINX_REDIS_PORT (make test
# starts both; by hand: see scripts/test.sh). Ports, from
# $TXVAL_TEST_GATE_PORT (default 1960): nginx on +1..+4, +6 (HTTP/2), +7,
# the echo backend on +9.

use strict;
use warnings;

use lib 't/lib';

use File::Path qw(make_path);
use IO::Select;
use IO::Socket::INET;
use Test::More;
use Time::HiRes qw(sleep time);

use Txval::Echo;
use Txval::Nginx qw(need_services closed_port);
use Txval::Tx qw(tx_defaults tx v error_body conflict unavailable invalid
                 invalid_json);

my $PG_PORT = $ENV{TEST_NGINX_PG_PORT} || 16432;
my $REDIS_PORT = $ENV{TEST_NGINX_REDIS_PORT} || 16390;
my $BASE = $ENV{TXVAL_TEST_GATE_PORT} || 1960;
my $ECHO = $BASE + 9;
my $RUN = "t400.$$." . time;

need_services(Postgres => $PG_PORT, Redis => $REDIS_PORT);


# ---------------------------------------------------------------------------
# transactions and the answers txval gives
# ---------------------------------------------------------------------------

my $seq = 0;
sub new_id { sprintf 'g_%s_%d', $_[0] // 'x', ++$seq }

# transactions (extra fields, their values already JSON, after the others)
# and the answers txval gives: Txval::Tx's
tx_defaults(id => undef, currency => 'EUR', merchant_id => 't_active',
            card_token => 't_card_us');

my %ERR = (
    invalid_json => invalid_json(),
    amount => invalid('amount'),
    pan => error_body('pan_not_accepted'),
    media => error_body('unsupported_media_type'),
    method => error_body('method_not_allowed'),
    backend => unavailable(),
);

# a 20k JSON string value: printable ASCII, escapes, 2-, 3- and 4-byte
# UTF-8 (bytes, as sent)
sub big_note {
    my $unit = join('', map { chr } grep { $_ != 0x22 && $_ != 0x5c }
                                     0x20 .. 0x7e)
             . '\\"\\\\\\/\\n\\u00e9'
             . "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80";
    my $s = '';
    $s .= $unit while length $s < 20000;
    return qq("$s");
}


# ---------------------------------------------------------------------------
# a raw HTTP/1.1 client: pieces sent with pauses, responses read one by one
# ---------------------------------------------------------------------------

{
    package Client;

    sub new {
        my ($class, $port) = @_;
        my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                      PeerPort => $port, Proto => 'tcp',
                                      Timeout => 5)
            or die "connect to $port: $!\n";
        return bless { s => $s, buf => '', eof => 0, timeout => 5 }, $class;
    }

    # strings are sent, { sleep => S } pauses
    sub send {
        my ($self, @pieces) = @_;
        for my $p (@pieces) {
            if (ref $p) {
                Time::HiRes::sleep($p->{sleep});
                next;
            }
            my $off = 0;
            while ($off < length $p) {
                my $n = syswrite $self->{s}, $p, length($p) - $off, $off;
                die "send: $!\n" unless defined $n;
                $off += $n;
            }
        }
        return $self;
    }

    # reads once (up to {timeout} s); 0 at the end of the stream
    sub _read {
        my ($self) = @_;
        return 0 if $self->{eof};
        my $sel = IO::Select->new($self->{s});
        die "read timeout\n" unless $sel->can_read($self->{timeout});
        my $n = sysread $self->{s}, my $data, 65536;
        die "read: $!\n" unless defined $n;
        $self->{eof} = 1 if $n == 0;
        $self->{buf} .= $data;
        return $n;
    }

    sub wait_for {
        my ($self, $re) = @_;
        my $deadline = Time::HiRes::time() + 5;
        until ($self->{buf} =~ $re) {
            die "timeout waiting for $re\n"
                if Time::HiRes::time() > $deadline;
            $self->_read or die "closed while waiting for $re\n";
        }
        return 1;
    }

    # the next final response: {status, headers (lower case name =>
    # value), all (lower case name => [values]), body, interim (the 1xx
    # status lines before it)}
    sub response {
        my ($self) = @_;
        my @interim;

        for (;;) {
            my $end;
            until (($end = index $self->{buf}, "\r\n\r\n") >= 0) {
                $self->_read or die "closed before a response\n";
            }

            my $head = substr $self->{buf}, 0, $end;
            my ($line, @lines) = split /\r\n/, $head;
            my ($status) = $line =~ m{^HTTP/1\.[01] (\d{3})}
                or die "bad status line: $line\n";

            if ($status < 200) {
                push @interim, $line;
                substr($self->{buf}, 0, $end + 4) = '';
                next;
            }

            my (%h, %all);
            for (@lines) {
                my ($k, $v) = /^([^:]+):\s*(.*)$/ or next;
                $h{lc $k} = $v;
                push @{$all{lc $k}}, $v;
            }

            my $pos = $end + 4;
            my $body;

            if (($h{'transfer-encoding'} // '') =~ /chunked/i) {
                $body = '';
                for (;;) {
                    my $eol;
                    until (($eol = index $self->{buf}, "\r\n", $pos) >= 0) {
                        $self->_read or die "closed in a chunk size\n";
                    }
                    my ($size) = substr($self->{buf}, $pos, $eol - $pos)
                                 =~ /^([0-9a-fA-F]+)/;
                    $size = hex $size;
                    $pos = $eol + 2;
                    if ($size == 0) {
                        until (index($self->{buf}, "\r\n", $pos) >= 0) {
                            $self->_read or die "closed in the trailer\n";
                        }
                        $pos = index($self->{buf}, "\r\n", $pos) + 2;
                        last;
                    }
                    until (length $self->{buf} >= $pos + $size + 2) {
                        $self->_read or die "closed in a chunk\n";
                    }
                    $body .= substr $self->{buf}, $pos, $size;
                    $pos += $size + 2;
                }

            } elsif (defined $h{'content-length'}) {
                until (length $self->{buf} >= $pos + $h{'content-length'}) {
                    $self->_read or die "closed in a body\n";
                }
                $body = substr $self->{buf}, $pos, $h{'content-length'};
                $pos += $h{'content-length'};

            } else {
                1 while $self->_read;
                $body = substr $self->{buf}, $pos;
                $pos = length $self->{buf};
            }

            substr($self->{buf}, 0, $pos) = '';

            return { status => $status, headers => \%h, all => \%all,
                     body => $body, interim => \@interim };
        }
    }

    # 1 when the server closes the connection (with nothing more sent)
    sub closed {
        my ($self) = @_;
        1 while $self->_read;
        return $self->{buf} eq '';
    }
}

# a request; body => undef for none; chunked => N sends the body in N-byte
# chunks; headers => [[name, value], ...]; keepalive => 1 leaves out
# "Connection: close". Returns the pieces to send: with gap => S the body
# (or each chunk) comes S seconds after the headers (the one before).
sub request {
    my (%a) = @_;
    my $method = $a{method} // 'POST';
    my $uri = $a{uri} // '/pay';
    my $body = $a{body};
    my $ctype = exists $a{ctype} ? $a{ctype} : 'application/json';

    my $head = "$method $uri HTTP/1.1\r\nHost: localhost\r\n";
    $head .= "Connection: close\r\n" unless $a{keepalive};
    $head .= "Content-Type: $ctype\r\n" if defined $ctype;
    $head .= "$_->[0]: $_->[1]\r\n" for @{$a{headers} // []};

    my @body;
    if (defined $body && $a{chunked}) {
        $head .= "Transfer-Encoding: chunked\r\n";
        my $rest = $body;
        while (length $rest) {
            my $c = substr $rest, 0, $a{chunked}, '';
            push @body, sprintf("%x\r\n", length $c) . $c . "\r\n";
        }
        push @body, "0\r\n\r\n";
        if (!$a{gap}) {
            @body = (join '', @body);
        }
    } elsif (defined $body) {
        $head .= "Content-Length: " . length($body) . "\r\n";
        @body = ($body);
        if ($a{gap} && length $body > 1) {
            my $half = int(length($body) / 2);
            @body = (substr($body, 0, $half), substr($body, $half));
        }
    }
    $head .= "\r\n";

    return ($head . (@body ? shift @body : '')) if !$a{gap} && @body <= 1;
    return ($head, map { ({ sleep => $a{gap} }, $_) } @body);
}

# one request on its own connection, its response (status 0 when there
# is none)
sub call {
    my ($port, %a) = @_;
    my $res = eval {
        my $c = Client->new($port);
        $c->send(request(%a));
        $c->response;
    };
    return $res if $res;
    diag("no response from $port: $@");
    return { status => 0, body => '', headers => {}, all => {},
             interim => [] };
}

sub post {
    my ($port, $uri, $body, %a) = @_;
    return call($port, uri => $uri, body => $body, %a);
}


# ---------------------------------------------------------------------------
# the upstream and the nginx instances
# ---------------------------------------------------------------------------

my $echo = Txval::Echo->start(port => $ECHO);

my %ng;
my %port = (main => $BASE + 1, plain => $BASE + 2, redis => $BASE + 3,
            pgdown => $BASE + 4, h2 => $BASE + 6, bodyerr => $BASE + 7);

my $closed_port = closed_port();

my $up = "http://127.0.0.1:$ECHO";

# the locations the body tests use, on main and on plain
my $body_locations = <<"LOC";
        location = /pay {
            txval_gate;
            proxy_pass $up/up/pay;
        }

        location = /pay-1k {
            txval_gate;
            client_body_buffer_size 1k;
            proxy_pass $up/up/pay-1k;
        }

        location = /nobuf {
            txval_gate;
            proxy_request_buffering off;
            client_body_buffer_size 1k;
            proxy_pass $up/up/nobuf;
        }

        location = /nobuf11 {
            txval_gate;
            proxy_request_buffering off;
            proxy_http_version 1.1;
            client_body_buffer_size 1k;
            proxy_pass $up/up/nobuf11;
        }

        location = /buf11 {
            txval_gate;
            proxy_request_buffering on;
            proxy_http_version 1.1;
            proxy_pass $up/up/buf11;
        }

        location = /short-timeout {
            txval_gate;
            client_body_timeout 1s;
            proxy_pass $up/up/short-timeout;
        }

        location = /verdict {
            txval;
        }
LOC

my %http;

$http{main} = <<"HTTP";
    txval_cache_zone gate_main:1m;
    txval_postgres "host=127.0.0.1 port=$PG_PORT dbname=txval user=txval password=txval";

    limit_req_zone \$binary_remote_addr zone=gate_delay:1m rate=5r/s;
    limit_req_zone \$binary_remote_addr zone=gate_reject:1m rate=1r/m;

    log_format gate 'tag=\$http_x_tag status=\$status verdict=\$txval_verdict '
                    'reasons=\$txval_reasons score=\$txval_risk_score '
                    'source=\$txval_source id=\$txval_id time=\$txval_time '
                    'rt=\$request_time';

    upstream echo_ka {
        server 127.0.0.1:$ECHO;
        keepalive 4;
    }

    server {
        listen $port{main};
        access_log logs/gate.log gate;
        client_max_body_size 1m;
        limit_req_status 429;

        txval_amount_limit EUR 1 100000;

$body_locations

        location = /ka {
            txval_gate;
            proxy_pass http://echo_ka/up/ka;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }

        location = /vars {
            txval_gate;

            proxy_set_header X-Score \$txval_risk_score;
            proxy_set_header X-Var-Verdict \$txval_verdict;
            proxy_set_header X-Var-Source \$txval_source;
            proxy_set_header X-Var-Id \$txval_id;

            add_header X-V-Verdict \$txval_verdict always;
            add_header X-V-Reasons \$txval_reasons always;
            add_header X-V-Score \$txval_risk_score always;
            add_header X-V-Source \$txval_source always;
            add_header X-V-Id \$txval_id always;
            add_header X-V-Time \$txval_time always;

            proxy_pass $up/up/vars;
        }

        location = /auth-ok {
            auth_request /_allow;
            txval_gate;
            proxy_pass $up/up/auth-ok;
        }

        location = /auth-no {
            auth_request /_deny;
            txval_gate;
            proxy_pass $up/up/auth-no;
        }

        location = /_allow {
            internal;
            return 204;
        }

        location = /_deny {
            internal;
            return 403;
        }

        location = /denied {
            deny all;
            txval_gate;
            proxy_pass $up/up/denied;
        }

        location = /lr-delay {
            limit_req zone=gate_delay burst=5;
            txval_gate;
            proxy_pass $up/up/lr-delay;
        }

        location = /lr-reject {
            limit_req zone=gate_reject;
            txval_gate;
            proxy_pass $up/up/lr-reject;
        }

        location = /small {
            client_max_body_size 100;
            txval_gate;
            proxy_pass $up/up/small;
        }
    }
HTTP

$http{plain} = <<"HTTP";
    server {
        listen $port{plain};
        listen $port{h2} http2;
        client_max_body_size 1m;
        txval_amount_limit EUR 1 100000;

$body_locations
    }
HTTP

$http{redis} = <<"HTTP";
    txval_redis 127.0.0.1:$REDIS_PORT prefix=$RUN:;

    server {
        listen $port{redis};
        txval_amount_limit EUR 1 100000;

        location = /pay {
            txval_gate;
            proxy_pass $up/up/pay;
        }
    }
HTTP

$http{pgdown} = <<"HTTP";
    txval_postgres "host=127.0.0.1 port=$closed_port dbname=txval user=txval password=txval" timeout=200ms;

    server {
        listen $port{pgdown};

        location = /pay {
            txval_gate;
            proxy_pass $up/up/pay;
        }

        location = /open {
            txval_fail_mode open;
            txval_gate;
            proxy_pass $up/up/open;
        }

        location = /verdict {
            txval;
        }
    }
HTTP

$http{bodyerr} = <<"HTTP";
    server {
        listen $port{bodyerr};
        client_max_body_size 100;

        location = /pay {
            txval_gate;
            proxy_pass $up/up/pay;
        }
    }
HTTP

for my $name (qw(main plain redis pgdown bodyerr)) {
    $ng{$name} = Txval::Nginx->new(name => "gate_$name",
                                   port => $port{$name});
    $ng{$name}->start(http => $http{$name}, workers => 1);
}

my $t0 = time;


# ---------------------------------------------------------------------------
# checks
# ---------------------------------------------------------------------------

# the upstream got exactly this one request: the body byte for byte and
# the three headers, each once, with these values
sub forwarded_ok {
    my ($name, $res, $body, %want) = @_;
    my $score = $want{score} // 0;
    my $source = $want{source} // 'computed';

    my @reqs = $echo->requests;
    my $ok = is(scalar @reqs, 1, "$name: the upstream got one request");
    my $rec = $reqs[0] or return;

    $ok &= is($res->{status}, 200, "$name: the upstream's answer");
    $ok &= ok($rec->{body} eq $body,
              "$name: the body arrived byte for byte")
        or diag("sent " . length($body) . " bytes, got "
                . length($rec->{body}));
    $ok &= ok($res->{body} eq $body, "$name: and came back")
        if $res->{status} == 200;
    $ok &= is_deeply([ Txval::Echo::header($rec, 'X-Txval-Verdict') ],
                     [ 'approved' ], "$name: X-Txval-Verdict");
    $ok &= is_deeply([ Txval::Echo::header($rec, 'X-Txval-Risk-Score') ],
                     [ $score ], "$name: X-Txval-Risk-Score");
    $ok &= is_deeply([ Txval::Echo::header($rec, 'X-Txval-Source') ],
                     [ $source ], "$name: X-Txval-Source");
    $ok &= is_deeply([ Txval::Echo::header($rec, 'X-Txval-Degraded') ],
                     [ $want{degraded} ? 'true' : () ],
                     "$name: X-Txval-Degraded");
    $ok &= is(scalar(grep { $_->[0] =~ /^x-txval-/i } @{$rec->{headers}}),
              $want{degraded} ? 4 : 3, "$name: no other X-Txval-* header");
    if (defined $rec->{content_length}) {
        $ok &= is($rec->{content_length}, length $rec->{body},
                  "$name: Content-Length matches the body");
    }
    return $ok ? $rec : undef;
}

# txval answered, the upstream was not contacted at all
sub refused_ok {
    my ($name, $res, $status, $body) = @_;
    is($res->{status}, $status, "$name: status $status");
    is($res->{body}, $body, "$name: txval's body") if defined $body;
    is($res->{headers}{'content-type'}, 'application/json',
       "$name: Content-Type") if defined $body;
    ok(!defined $res->{headers}{'x-echo-count'},
       "$name: not the upstream's answer");
    is($echo->count, 0, "$name: the upstream got no request");
    is($echo->connections, 0, "$name: no connection to the upstream");
}

# the same answer (status, body, txval's headers) as a txval; location;
# with ids, the verdict-mode answer was for $vid, the gate's for $id
sub same_as_verdict_mode {
    my ($name, $gate, $verdict, $vid, $id) = @_;
    if (defined $vid) {
        $verdict->{body} =~ s/\Q$vid\E/$id/g;
        $verdict->{all}{'content-length'} = [ length $verdict->{body} ]
            if $verdict->{all}{'content-length'};
    }
    is($gate->{status}, $verdict->{status}, "$name: status as in verdict mode");
    is($gate->{body}, $verdict->{body}, "$name: body as in verdict mode");
    for my $h (qw(content-type content-length x-txval-verdict x-txval-source
                  allow retry-after))
    {
        is_deeply($gate->{all}{$h}, $verdict->{all}{$h},
                  "$name: $h as in verdict mode");
    }
}

sub log_offset { -s $_[0]->error_log_path // 0 }

sub refusal_lines {
    my ($ng, $offset) = @_;
    return scalar(() = $ng->error_log_since($offset) =~ /txval: refused:/g);
}


# ---------------------------------------------------------------------------
# approved bodies reach the upstream byte for byte
# ---------------------------------------------------------------------------

my $note = big_note();

for my $inst (qw(main plain)) {
    my $ng = $ng{$inst};

    for my $loc (qw(/pay /pay-1k /nobuf /nobuf11 /buf11)) {
        my @cases = (
            [ 'small', 1000, 0, {} ],
            [ 'small, slow', 1000, 0, { gap => 0.15 } ],
            [ 'small, chunked', 1000, 0, { chunked => 7 } ],
            [ 'small, chunked, slow', 1000, 0,
              { chunked => 50, gap => 0.05 } ],
            [ '20k', 60000, 30, {} ],
            [ '20k, chunked', 60000, 30, { chunked => 4000 } ],
            [ '20k, chunked, slow', 60000, 30,
              { chunked => 8000, gap => 0.05 } ],
        );

        for my $case (@cases) {
            my ($what, $amount, $score, $opt) = @$case;
            my $id = new_id($inst);
            my $name = "$inst $loc $what";
            my $big = $what =~ /20k/;

            # unknown fields, escapes, UTF-8 and white space pass as sent
            my $body = $big
                ? tx(id => $id, amount => $amount, note => $note) . "\n"
                : " {\"id\" : \"$id\",\r\n\t\"amount\":$amount,"
                  . qq("currency":"EUR","merchant_id":"t_active",)
                  . qq("card_token":"t_card_us","x":{"y":[1,2.5e1,null,)
                  . qq(true,"caf\xc3\xa9 \\u00e9 \\"q\\""]}} \n);

            $echo->reset;
            my $off = log_offset($ng);
            my $res = post($port{$inst}, $loc, $body, %$opt);
            forwarded_ok($name, $res, $body, score => $score);

            if ($big && $loc =~ /1k|nobuf/) {
                like($ng->error_log_since($off),
                     qr/a client request body is buffered to a temporary file/,
                     "$name: the body was in a temporary file");
            }
        }
    }

    # a declined one with a slow chunked body, unbuffered: never sent on
    $echo->reset;
    my $id = new_id($inst);
    my $res = post($port{$inst}, '/nobuf11',
                   tx(id => $id, amount => 200000, note => $note),
                   chunked => 5000, gap => 0.05);
    refused_ok("$inst /nobuf11 declined, slow chunked", $res, 402,
               v($id, 'computed', 'declined', ['amount_out_of_range'], 30));
}


# ---------------------------------------------------------------------------
# spoofed X-Txval-* headers are removed, the others pass in order
# ---------------------------------------------------------------------------

for my $inst (qw(main plain)) {
    my @fill = map { [ sprintf('X-Fill-%02d', $_), "v$_" ] } 1 .. 30;
    my @spoof = ([ 'X-Txval-Verdict', 'declined' ],
                 [ 'X-TXVAL-SOURCE', 'shm' ],
                 [ 'x-txval-risk-score', '0' ],
                 [ 'x-txval-anything', '1' ],
                 [ 'X-Txval-Verdict', 'approved' ]);
    my @keep = ([ 'X-Txvalue', 'keep' ], [ 'X-Other', 'keep' ],
                [ 'Txval-Verdict', 'keep' ]);

    # spoofed ones first, in the middle and past the first 20 headers
    my @headers = ($spoof[0], @fill[0 .. 9], $spoof[1], @keep, @fill[10 .. 24],
                   $spoof[2], $spoof[3], @fill[25 .. 29], $spoof[4]);

    $echo->reset;
    my $id = new_id($inst);
    my $body = tx(id => $id, amount => 60000);
    my $res = post($port{$inst}, '/pay', $body, headers => \@headers);
    my $rec = forwarded_ok("$inst spoofed", $res, $body, score => 30);

    if ($rec) {
        my @got = grep { $_->[0] =~ /^(x-fill-|x-txvalue|x-other|txval-)/i }
                  @{$rec->{headers}};
        is_deeply(\@got, [ @fill[0 .. 9], @keep, @fill[10 .. 29] ],
                  "$inst spoofed: the other headers passed, in order");
    }

    # when txval answers, whatever the client sent does not matter
    $echo->reset;
    $id = new_id($inst);
    $res = post($port{$inst}, '/pay', tx(id => $id, amount => 200000),
                headers => \@spoof);
    refused_ok("$inst spoofed, declined", $res, 402,
               v($id, 'computed', 'declined', ['amount_out_of_range'], 30));
    is($res->{headers}{'x-txval-verdict'}, 'declined',
       "$inst spoofed, declined: X-Txval-Verdict");
}


# ---------------------------------------------------------------------------
# refusals: answered as in verdict mode, the upstream never contacted
# ---------------------------------------------------------------------------

{
    my $p = $port{main};
    my $ng = $ng{main};

    my @cases = (
        [ 'declined, amount_out_of_range (config)', 402,
          sub { (body => tx(id => $_[0], amount => 200000)) },
          sub { v($_[0], 'computed', 'declined', ['amount_out_of_range'],
                  30) }, 0 ],
        [ 'declined, card_blocked (Postgres)', 402,
          sub { (body => tx(id => $_[0], card_token => 't_card_lost')) },
          sub { v($_[0], 'computed', 'declined', ['card_blocked'], 0) }, 0 ],
        [ 'declined, two reasons', 402,
          sub { (body => tx(id => $_[0], amount => 150000,
                            card_token => 't_card_stolen')) },
          sub { v($_[0], 'computed', 'declined',
                  ['amount_out_of_range', 'card_blocked'], 30) }, 0 ],
        [ 'invalid JSON', 400,
          sub { (body => qq({"id":"$_[0]","amount":)) },
          sub { $ERR{invalid_json} }, 1 ],
        [ 'invalid field', 400,
          sub { (body => tx(id => $_[0], amount => '1.5')) },
          sub { $ERR{amount} }, 1 ],
        [ 'card number', 400,
          sub { (body => tx(id => $_[0], pan => '"4111111111111111"')) },
          sub { $ERR{pan} }, 1 ],
        [ '415 text/plain', 415,
          sub { (body => tx(id => $_[0]), ctype => 'text/plain') },
          sub { $ERR{media} }, 1 ],
        [ '415 no Content-Type', 415,
          sub { (body => tx(id => $_[0]), ctype => undef) },
          sub { $ERR{media} }, 1 ],
        [ '405 GET', 405,
          sub { (method => 'GET', body => undef, ctype => undef) },
          sub { $ERR{method} }, 1 ],
        [ '405 PUT with a body', 405,
          sub { (method => 'PUT', body => tx(id => $_[0])) },
          sub { $ERR{method} }, 1 ],
    );

    for my $case (@cases) {
        my ($what, $status, $req, $want, $logged) = @$case;

        for my $slow (0, 1) {
            my $name = "main refused: $what" . ($slow ? ', slow body' : '');
            my $id = new_id('ref');
            my %r = $req->($id);
            $r{gap} = 0.1 if $slow;

            $echo->reset;
            my $off = log_offset($ng);
            my $res = call($p, uri => '/pay', %r);
            refused_ok($name, $res, $status, $want->($id));
            is(refusal_lines($ng, $off), $logged,
               "$name: $logged refusal line(s) logged");

            if ($status == 405) {
                is($res->{headers}{allow}, 'POST', "$name: Allow");
            }

            # the same request to a "txval;" location
            next if $slow;
            my $vid = new_id('ref');
            my %v = $req->($vid);
            my $ver = call($p, uri => '/verdict', %v);
            same_as_verdict_mode($name, $res, $ver, $vid, $id);
        }
    }

    # 413: nginx's own answer, the body is not read
    $echo->reset;
    my $res = post($p, '/small', tx(id => new_id('ref'), note => '"' . ('x' x 200) . '"'));
    is($res->{status}, 413, 'main refused: 413');
    is($echo->count, 0, 'main refused: 413: the upstream got no request');

    # 409: the id was approved (and forwarded) with other content
    my $id = new_id('conflict');
    $echo->reset;
    $res = post($p, '/pay', tx(id => $id, amount => 1000));
    forwarded_ok('main 409: the first one', $res, tx(id => $id, amount => 1000));

    for my $other (tx(id => $id, amount => 1001),
                   tx(id => $id, amount => 1000, country => 'US'),
                   tx(id => $id, amount => 1000, card_token => 't_card_nocty'))
    {
        $echo->reset;
        my $off = log_offset($ng);
        $res = post($p, '/pay', $other);
        refused_ok('main 409', $res, 409, conflict($id));
        is(refusal_lines($ng, $off), 1, 'main 409: one refusal line logged');
    }

    # the same conflict in verdict mode
    my $vid = new_id('conflict');
    post($p, '/verdict', tx(id => $vid, amount => 1000));
    my $ver = post($p, '/verdict', tx(id => $vid, amount => 1001));
    same_as_verdict_mode('main 409', $res, $ver, $vid, $id);

    # a replay of a declined id: answered from the cache, never forwarded
    $id = new_id('decl');
    $echo->reset;
    for my $source (qw(computed shm shm)) {
        $res = post($p, '/pay', tx(id => $id, amount => 100001));
        refused_ok("main declined replay ($source)", $res, 402,
                   v($id, $source, 'declined', ['amount_out_of_range'], 30));
        is($res->{headers}{'x-txval-source'}, $source,
           "main declined replay ($source): X-Txval-Source");
    }
}


# ---------------------------------------------------------------------------
# replays of an approved id are forwarded with their source
# ---------------------------------------------------------------------------

{
    my $id = new_id('replay');
    my $first = tx(id => $id, amount => 60000, country => 'US');
    # the same transaction, written differently: forwarded as written
    my $again = qq({ "country":"US", "card_token":"t_card_us", "amount":6e4,)
              . qq( "merchant_id":"t_active", "currency":"EUR",)
              . qq( "id":"$id", "note":"second" }\n);

    $echo->reset;
    my $res = post($port{main}, '/pay', $first);
    forwarded_ok('main replay: first', $res, $first, score => 30);

    for my $n (1, 2) {
        $echo->reset;
        $res = post($port{main}, '/pay', $again,
                    headers => [[ 'X-Txval-Source', 'computed' ]]);
        forwarded_ok("main replay $n", $res, $again, score => 30,
                     source => 'shm');
    }

    # Redis, no cache zone
    $id = new_id('replay');
    $first = tx(id => $id, amount => 60000);

    $echo->reset;
    $res = post($port{redis}, '/pay', $first);
    forwarded_ok('redis replay: first', $res, $first, score => 30);

    # the SET is not waited for
    sleep 0.2;

    for my $n (1, 2) {
        $echo->reset;
        $res = post($port{redis}, '/pay', $first,
                    headers => [[ 'X-Txval-Source', 'shm' ]]);
        forwarded_ok("redis replay $n", $res, $first, score => 30,
                     source => 'redis');
    }

    $echo->reset;
    $res = post($port{redis}, '/pay', tx(id => $id, amount => 60001));
    refused_ok('redis 409', $res, 409, conflict($id));

    $id = new_id('replay');
    $echo->reset;
    $res = post($port{redis}, '/pay', tx(id => $id, amount => 100001));
    refused_ok('redis declined', $res, 402,
               v($id, 'computed', 'declined', ['amount_out_of_range'], 30));
    sleep 0.2;
    $res = post($port{redis}, '/pay', tx(id => $id, amount => 100001));
    refused_ok('redis declined replay', $res, 402,
               v($id, 'redis', 'declined', ['amount_out_of_range'], 30));
}


# ---------------------------------------------------------------------------
# Postgres down: 503 when failing closed, forwarded when failing open
# ---------------------------------------------------------------------------

{
    my $id = new_id('down');
    $echo->reset;
    my $res = post($port{pgdown}, '/pay', tx(id => $id));
    refused_ok('pgdown closed', $res, 503, $ERR{backend});
    is($res->{headers}{'retry-after'}, '1', 'pgdown closed: Retry-After');

    same_as_verdict_mode('pgdown closed', $res,
                         post($port{pgdown}, '/verdict', tx(id => $id)));

    $res = post($port{pgdown}, '/pay', tx(id => $id), gap => 0.1);
    refused_ok('pgdown closed, slow body', $res, 503, $ERR{backend});

    $id = new_id('down');
    my $body = tx(id => $id);
    $echo->reset;
    $res = post($port{pgdown}, '/open', $body);
    forwarded_ok('pgdown open: approved, degraded', $res, $body,
                 degraded => 1);
}


# ---------------------------------------------------------------------------
# keepalive: to an upstream{} block, and from the client
# ---------------------------------------------------------------------------

{
    # several requests, each on its own client connection, one upstream
    # connection for all the forwarded ones
    my @plan = (
        [ 'approved', 1000, 0, 'computed' ],
        [ 'approved', 60000, 30, 'computed' ],
        [ 'declined', 200000 ],
        [ 'replay', 60000, 30, 'shm' ],
        [ 'approved', 2000, 0, 'computed' ],
        [ 'approved', 3000, 0, 'computed', { chunked => 9, gap => 0.02 } ],
    );

    $echo->reset;
    my @sent;
    my $prev;

    for my $step (@plan) {
        my ($what, $amount, $score, $source, $opt) = @$step;
        # the replay is of the last approved one
        my $id = $what eq 'replay' ? $prev : new_id('ka');
        $prev = $id if $what eq 'approved';
        my $body = tx(id => $id, amount => $amount);
        my $res = post($port{main}, '/ka', $body, %{$opt // {}});

        if ($what eq 'declined') {
            is($res->{status}, 402, 'ka: declined one answered by txval');
            next;
        }

        is($res->{status}, 200, "ka: $what $id forwarded");
        is($res->{body}, $body, "ka: $what $id echoed");
        push @sent, [ $body, $score, $source ];
    }

    my @reqs = $echo->requests;
    is(scalar @reqs, scalar @sent, 'ka: the upstream got the forwarded ones');
    is($echo->connections, 1, 'ka: all on one upstream connection');

    for my $i (0 .. $#sent) {
        my $rec = $reqs[$i] or last;
        my ($body, $score, $source) = @{$sent[$i]};
        ok($rec->{body} eq $body, "ka $i: body byte for byte");
        is($rec->{conn_req}, $i + 1, "ka $i: request $i+1 on the connection");
        is_deeply([ map { [ Txval::Echo::header($rec, $_) ] }
                        qw(X-Txval-Verdict X-Txval-Risk-Score X-Txval-Source) ],
                  [ ['approved'], [$score], [$source] ],
                  "ka $i: its own X-Txval-* headers");
    }

    # one client connection: 415 (body discarded), approved, invalid,
    # approved chunked, declined, approved; the last one pipelined with the
    # one before
    my $c = Client->new($port{main});
    my @ids = map { new_id('cka') } 1 .. 6;
    my @bodies = (tx(id => $ids[0]), tx(id => $ids[1], amount => 60000),
                  '{"id":', tx(id => $ids[3], note => $note),
                  tx(id => $ids[4], amount => 100001), tx(id => $ids[5]));

    $echo->reset;

    $c->send(request(uri => '/pay', body => $bodies[0], ctype => 'text/plain',
                     keepalive => 1));
    my $res = $c->response;
    is($res->{status}, 415, 'client ka: 415');

    $c->send(request(uri => '/pay', body => $bodies[0], ctype => 'text/plain',
                     keepalive => 1, chunked => 20, gap => 0.05));
    $res = $c->response;
    is($res->{status}, 415, 'client ka: 415, slow chunked body');

    $c->send(request(uri => '/pay', body => $bodies[1], keepalive => 1,
                     gap => 0.05));
    $res = $c->response;
    is($res->{status}, 200, 'client ka: approved after the 415s');
    is($res->{body}, $bodies[1], 'client ka: its body');

    $c->send(request(uri => '/pay', body => $bodies[2], keepalive => 1));
    $res = $c->response;
    is($res->{status}, 400, 'client ka: invalid JSON');
    is($res->{body}, $ERR{invalid_json}, 'client ka: its body');

    $c->send(request(uri => '/nobuf11', body => $bodies[3], keepalive => 1,
                     chunked => 3000));
    $res = $c->response;
    is($res->{status}, 200, 'client ka: approved, chunked');
    ok($res->{body} eq $bodies[3], 'client ka: its body');

    $c->send(join '', request(uri => '/pay', body => $bodies[4],
                              keepalive => 1),
                      request(uri => '/pay-1k', body => $bodies[5]));
    $res = $c->response;
    is($res->{status}, 402, 'client ka: declined (pipelined)');
    $res = $c->response;
    is($res->{status}, 200, 'client ka: approved (pipelined)');
    is($res->{body}, $bodies[5], 'client ka: its body');
    ok($c->closed, 'client ka: closed after Connection: close');

    my @reqs2 = $echo->requests;
    is_deeply([ map { $_->{body} } @reqs2 ], [ @bodies[1, 3, 5] ],
              'client ka: the upstream got the three approved bodies');

    # Expect: 100-continue: the gate reads the body, so it says continue
    $echo->reset;
    my $id = new_id('expect');
    my $body = tx(id => $id);
    $c = Client->new($port{main});
    my ($head) = request(uri => '/pay', body => $body,
                         headers => [[ 'Expect', '100-continue' ]], gap => 1);
    $c->send($head);
    ok(eval { $c->wait_for(qr{^HTTP/1\.1 100 Continue\r\n\r\n}) },
       'expect: 100 Continue before the body');
    $c->send($body);
    $res = $c->response;
    forwarded_ok('expect', $res, $body);
}


# ---------------------------------------------------------------------------
# limit_req, auth_request and deny in the same location run first
# ---------------------------------------------------------------------------

{
    my $p = $port{main};
    my $ng = $ng{main};

    # delayed by limit_req (5r/s, burst 5), then validated and forwarded
    my $start = time;
    for my $n (1 .. 3) {
        my $body = tx(id => new_id('lr'), note => $note);
        $echo->reset;
        my $res = post($p, '/lr-delay', $body);
        forwarded_ok("limit_req delayed $n", $res, $body);
    }
    cmp_ok(time - $start, '>=', 0.3, 'limit_req delayed: it did delay');

    # 1r/m, no burst: the first passes, the next ones are refused by
    # limit_req (429) before any validation
    my $body = tx(id => new_id('lr'));
    $echo->reset;
    my $res = post($p, '/lr-reject', $body);
    forwarded_ok('limit_req first', $res, $body);

    for my $b ('{"id":', tx(id => new_id('lr'))) {
        $echo->reset;
        my $off = log_offset($ng);
        $res = post($p, '/lr-reject', $b);
        is($res->{status}, 429, 'limit_req: refused by limit_req');
        is($echo->connections, 0, 'limit_req: the upstream not contacted');
        is(refusal_lines($ng, $off), 0, 'limit_req: not validated');
    }

    # auth_request allows: validated, forwarded (the body untouched by the
    # subrequest) or answered by txval
    $body = tx(id => new_id('auth'), note => $note);
    $echo->reset;
    $res = post($p, '/auth-ok', $body, gap => 0.1);
    forwarded_ok('auth_request 204', $res, $body);

    my $id = new_id('auth');
    $echo->reset;
    $res = post($p, '/auth-ok', tx(id => $id, amount => 100001));
    refused_ok('auth_request 204, declined', $res, 402,
               v($id, 'computed', 'declined', ['amount_out_of_range'], 30));

    # auth_request or deny refuses: 403, never validated
    for my $loc (qw(/auth-no /denied)) {
        for my $b ('{"id":', tx(id => new_id('auth'))) {
            $echo->reset;
            my $off = log_offset($ng);
            $res = post($p, $loc, $b, headers => [[ 'X-Tag', "deny$loc" ]]);
            is($res->{status}, 403, "$loc: 403");
            is($echo->connections, 0, "$loc: the upstream not contacted");
            is(refusal_lines($ng, $off), 0, "$loc: not validated");
        }
    }
}


# ---------------------------------------------------------------------------
# the variables: access log, add_header, proxy_set_header
# ---------------------------------------------------------------------------

{
    my $p = $port{main};
    my %tag;

    # approved, forwarded: the upstream gets the variables too
    my $id = new_id('vars');
    $tag{approved} = $id;
    my $body = tx(id => $id, amount => 60000);
    $echo->reset;
    my $res = post($p, '/vars', $body, headers => [[ 'X-Tag', $id ]]);
    my $rec = forwarded_ok('vars approved', $res, $body, score => 30);
    if ($rec) {
        is_deeply([ map { [ Txval::Echo::header($rec, $_) ] }
                        qw(X-Score X-Var-Verdict X-Var-Source X-Var-Id) ],
                  [ ['30'], ['approved'], ['computed'], [$id] ],
                  'vars approved: proxy_set_header values at the upstream');
    }
    is_deeply([ map { $res->{headers}{"x-v-$_"} }
                    qw(verdict reasons score source id) ],
              [ 'approved', undef, '30', 'computed', $id ],
              'vars approved: add_header values (empty reasons: no header)');
    like($res->{headers}{'x-v-time'} // '', qr/^\d+\.\d{3}$/,
         'vars approved: X-V-Time');

    # the replay
    $tag{replay} = "$id-replay";
    $echo->reset;
    $res = post($p, '/vars', $body, headers => [[ 'X-Tag', $tag{replay} ]]);
    forwarded_ok('vars replay', $res, $body, score => 30, source => 'shm');
    is($res->{headers}{'x-v-source'}, 'shm', 'vars replay: add_header source');

    # declined, two reasons
    $id = new_id('vars');
    $tag{declined} = $id;
    $echo->reset;
    $res = post($p, '/vars', tx(id => $id, amount => 150000,
                                card_token => 't_card_blocked'),
                headers => [[ 'X-Tag', $id ]]);
    refused_ok('vars declined', $res, 402,
               v($id, 'computed', 'declined',
                 ['amount_out_of_range', 'card_blocked'], 30));
    is_deeply([ map { $res->{headers}{"x-v-$_"} }
                    qw(verdict reasons score source id) ],
              [ 'declined', 'amount_out_of_range,card_blocked', '30',
                'computed', $id ],
              'vars declined: add_header values');

    # errors: with and without a parsed id
    $id = new_id('vars');
    $tag{invalid} = $id;
    $res = post($p, '/vars', '{"id":', headers => [[ 'X-Tag', $id ]]);
    is($res->{status}, 400, 'vars invalid: 400');
    is_deeply([ map { $res->{headers}{"x-v-$_"} }
                    qw(verdict reasons score source id) ],
              [ 'error', undef, undef, undef, undef ],
              'vars invalid: add_header values');

    $id = new_id('vars');
    $tag{conflict} = $id;
    post($p, '/vars', tx(id => $id), headers => [[ 'X-Tag', "$id-first" ]]);
    $res = post($p, '/vars', tx(id => $id, amount => 5),
                headers => [[ 'X-Tag', $id ]]);
    is($res->{status}, 409, 'vars conflict: 409');
    is($res->{headers}{'x-v-id'}, $id, 'vars conflict: the id is known');

    # slow client, slow upstream: $txval_time is the validation only
    $id = new_id('vars');
    $tag{slow} = $id;
    $echo->reset;
    $body = tx(id => $id);
    $res = post($p, '/vars', $body, gap => 1,
                headers => [[ 'X-Tag', $id ], [ 'X-Echo-Sleep', '0.5' ]]);
    forwarded_ok('vars slow', $res, $body);

    # the access log line is written once the response is sent: the last
    # one may come a moment after the client has read it
    my $log = '';
    for (1 .. 500) {
        open my $fh, '<', $ng{main}->root . '/logs/gate.log'
            or die "no access log: $!\n";
        local $/;
        $log = <$fh> // '';
        last if $log =~ /^tag=\Q$tag{slow}\E /m;
        sleep 0.01;
    }

    my %line;
    for (split /\n/, $log) {
        $line{$1} = $_ if /^tag=(\S+) /;
    }

    my %want = (
        approved => "status=200 verdict=approved reasons= score=30 "
                    . "source=computed id=$tag{approved} ",
        replay => "status=200 verdict=approved reasons= score=30 "
                  . "source=shm id=$tag{approved} ",
        declined => "status=402 verdict=declined "
                    . "reasons=amount_out_of_range,card_blocked score=30 "
                    . "source=computed id=$tag{declined} ",
        invalid => "status=400 verdict=error reasons= score= source= id= ",
        conflict => "status=409 verdict=error reasons= score= source= "
                    . "id=$tag{conflict} ",
        slow => "status=200 verdict=approved reasons= score=0 "
                . "source=computed id=$tag{slow} ",
    );

    for my $k (sort keys %want) {
        my $l = $line{$tag{$k}} // '';
        like($l, qr/^tag=\Q$tag{$k}\E \Q$want{$k}\Etime=\d+\.\d{3} rt=/,
             "access log: $k");
    }

    like($line{'deny/auth-no'} // '',
         qr/^tag=deny\/auth-no status=403 verdict=- reasons=- score=- source=- id=- time=- /,
         'access log: not validated (auth_request)');

    my ($ms, $rt) = ($line{$tag{slow}} // '') =~ /time=(\S+) rt=(\S+)/;
    ok(defined $ms && $ms < 500,
       "access log: \$txval_time is the validation only (${\($ms // '?')} ms)");
    ok(defined $rt && $rt >= 1.4,
       "access log: while the request took ${\($rt // '?')} s");
}


# ---------------------------------------------------------------------------
# the client stops sending its body, or goes away: nothing is forwarded,
# the connection is closed (and none is left open: see the error.log checks
# at the end)
# ---------------------------------------------------------------------------

for my $inst (qw(main plain)) {
    my $body = tx(id => new_id('cut'));
    my ($head) = request(uri => '/short-timeout', body => $body, gap => 1);

    # client_body_timeout 1s
    $echo->reset;
    my $c = Client->new($port{$inst});
    $c->send($head, substr($body, 0, 10));
    my $start = time;
    my $closed = eval { $c->closed };
    my $took = time - $start;
    ok($closed && $took > 0.8 && $took < 4,
       sprintf("$inst body timeout: closed after %.1f s", $took));

    # gone in the middle of the body, and in the middle of a chunked one
    for my $chunked (0, 1) {
        $c = Client->new($port{$inst});
        my @pieces = request(uri => '/pay', body => $body, gap => 0.01,
                             chunked => $chunked ? 10 : 0);
        $c->send(@pieces[0 .. 2]);
        sleep 0.1;
        close $c->{s};
    }
    sleep 0.1;

    is($echo->count, 0, "$inst body timeout, client gone: nothing forwarded");
    is($echo->connections, 0, "$inst body timeout, client gone: "
                              . "the upstream not contacted");

    # and the next one goes through
    $body = tx(id => new_id('cut'));
    $echo->reset;
    my $res = post($port{$inst}, '/pay', $body);
    forwarded_ok("$inst after the cut ones", $res, $body);
}


# ---------------------------------------------------------------------------
# nginx refuses the body while reading it (chunked, so the size is not
# known in advance): its 413 or 400, and the connection must be closed
# ---------------------------------------------------------------------------

for my $case ([ 'chunked body over client_max_body_size', 413,
                "80\r\n" . ('x' x 128) . "\r\n0\r\n\r\n" ],
              [ 'bad chunk', 400, "zz\r\n" ])
{
    my ($what, $status, $rest) = @$case;

    $echo->reset;
    my $c = Client->new($port{bodyerr});
    $c->{timeout} = 2;
    $c->send("POST /pay HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
             . "Content-Type: application/json\r\n"
             . "Transfer-Encoding: chunked\r\n\r\n5\r\n{\"a\":\r\n",
             { sleep => 0.2 }, $rest);
    my $res = eval { $c->response } // { status => "none: $@" };
    is($res->{status}, $status, "bodyerr, $what: $status");
    is($echo->count, 0, "bodyerr, $what: nothing forwarded");

    my $start = time;
    my $closed = eval { $c->closed };
    ok($closed && time - $start < 1.5,
       "bodyerr, $what: the connection is closed");
}


# ---------------------------------------------------------------------------
# HTTP/2 (h2c, with curl)
# ---------------------------------------------------------------------------

SKIP: {
    my $curl = `curl --version 2>/dev/null` // '';
    skip 'no curl with HTTP/2', 3 unless $curl =~ /\bHTTP2\b/;

    my $dir = $ng{plain}->root;

    for my $case ([ 'small', 1000, 0 ], [ '20k', 60000, 30 ],
                  [ 'declined', 200000, 30 ])
    {
        my ($what, $amount, $score) = @$case;
        my $id = new_id('h2');
        my $body = tx(id => $id, amount => $amount,
                      $what eq 'small' ? () : (note => $note));

        open my $fh, '>', "$dir/h2.body" or die "$dir/h2.body: $!\n";
        print $fh $body;
        close $fh;
        unlink "$dir/h2.out", "$dir/h2.head";

        $echo->reset;
        system('curl', '-s', '--http2-prior-knowledge', '-o', "$dir/h2.out",
               '-D', "$dir/h2.head", '-H', 'Content-Type: application/json',
               '-H', 'X-Txval-Verdict: spoofed', '--data-binary',
               "\@$dir/h2.body", "http://127.0.0.1:$port{h2}/pay-1k");

        my $res = { status => 0, body => '', headers => {} };
        if (open my $h, '<', "$dir/h2.head") {
            my $line = <$h> // '';
            ($res->{status}) = $line =~ m{^HTTP/2 (\d+)};
            while (<$h>) {
                $res->{headers}{lc $1} = $2 if /^([^:]+):\s*(.*?)\r?$/;
            }
        }
        if (open my $o, '<', "$dir/h2.out") {
            local $/;
            binmode $o;
            $res->{body} = <$o> // '';
        }

        if ($what eq 'declined') {
            refused_ok("h2 $what", $res, 402,
                       v($id, 'computed', 'declined', ['amount_out_of_range'],
                         30));
        } else {
            forwarded_ok("h2 $what", $res, $body, score => $score);
        }
    }
}


# ---------------------------------------------------------------------------
# nginx -t
# ---------------------------------------------------------------------------

{
    my $conf = Txval::Nginx->new(name => 'gate_conf', port => $BASE + 5);
    make_path($conf->root . '/conf', $conf->root . '/logs');

    my $nginx_t = sub {
        my ($server) = @_;
        $conf->write_config(http => "    server {\n        listen "
                                     . ($BASE + 5) . ";\n$server\n    }\n");
        my $root = $conf->root;
        my $bin = $ENV{TEST_NGINX_BINARY} // '/usr/sbin/nginx';
        my $out = `$bin -t -p $root/ -c conf/nginx.conf -e logs/error.log 2>&1`;
        return ($? >> 8, $out);
    };

    my ($rc, $out) = $nginx_t->(<<'C');
        location = /a { txval_gate; proxy_pass http://127.0.0.1:1/; }
        location = /b { txval; }
C
    is($rc, 0, 'nginx -t: txval_gate and txval in two locations') or diag($out);

    for my $case (
        [ "location = /a { txval; txval_gate; proxy_pass http://127.0.0.1:1/; }",
          '"txval_gate" directive cannot be used with "txval" in one location' ],
        [ "location = /a { txval_gate; txval; }",
          '"txval" directive cannot be used with "txval_gate" in one location' ],
        [ "location = /a { txval_gate; txval_gate; proxy_pass http://127.0.0.1:1/; }",
          '"txval_gate" directive is duplicate' ],
        [ "txval_gate;",
          '"txval_gate" directive is not allowed here' ],
        [ "location = /a { txval_gate yes; }",
          'invalid value "yes" in "txval_gate" directive, it must be "on" or "off"' ],
        [ "location = /a { txval_gate on off; }",
          'invalid number of arguments in "txval_gate" directive' ],
        [ "location = /a { txval_gate off; txval_gate on; }",
          '"txval_gate" directive is duplicate' ],
    ) {
        my ($server, $msg) = @$case;
        ($rc, $out) = $nginx_t->($server);
        isnt($rc, 0, "nginx -t fails: $server");
        like($out, qr/\[emerg\] .*\Q$msg\E/, "nginx -t says: $msg");
    }
}


# stopped first: an "open socket ... left in connection" alert comes at
# the exit
for my $name (sort keys %ng) {
    my $ng = $ng{$name};
    $ng->stop;
    $ng->error_log_clean($name);
}

$echo->stop;

diag(sprintf 'requests took %.1f s', time - $t0) if $ENV{TEST_VERBOSE};

done_testing();
