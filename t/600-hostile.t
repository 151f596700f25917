# Hostile HTTP against a fully configured txval: shm cache zone, Redis
# (verdicts, velocity), Postgres, fail closed. Slow bodies (the
# client_body_timeout is honoured, nothing is validated or logged by
# txval), invalid UTF-8, raw and escaped NUL bytes, duplicate keys (the
# rule: a known field twice is refused, whichever value comes first),
# numbers at the edges (1e400, -0, 1.0), 5000-deep nesting, very wide
# bodies, and CRLF, Redis protocol and SQL text in every string field and
# in unknown ones.
#
# Every request gets its SPEC answer with the exact body, and writes at most
# one error.log line of its own (checked per request: the
# "txval: refused: ..." line at info level, or none for a verdict); no
# [error], [alert] or crash. After the run: every command txval sent to
# Redis (seen with MONITOR, this run's key prefix) has a well-formed key and
# no hostile text, and the Postgres data is intact (last block).
#
# The body size limits (exactly client_max_body_size, one byte over) are
# t/040-body.t's (TEST 13-16).
#
# Needs the suite's Redis and Postgres (make test starts both); by hand:
#   . scripts/services.sh
#   txval_redis_start 16390 $PWD/build/test-redis-16390
#   txval_pg_start 16432 $PWD/build/test-pg-16432
#   txval_pg_psql 16432 $PWD/build/test-pg-16432 < t/fixtures.sql
#   export TEST_NGINX_REDIS_PORT=16390 TEST_NGINX_PG_PORT=16432
#   prove -I t/lib t/600-hostile.t

use lib 't/lib';
# no_plan: the blocks check different numbers of things (requests,
# headers, log lines), so no plan of repeat_each() * blocks() * N fits
use Test::Txval 'no_plan';
use Txval::Nginx qw(need_services);
use Txval::Redis;
use Txval::Tx qw(tx_defaults tx_raw post_raw raw_request v invalid
                 invalid_json);

BEGIN {
    $ENV{TEST_NGINX_REDIS_PORT} ||= 16390;
    $ENV{TEST_NGINX_PG_PORT} ||= 16432;
    # this run's Redis keys, apart from any other run's
    $ENV{TEST_NGINX_T600} = "t600.$$." . time() . ':';
    # these blocks test input, not timeouts: valgrind makes every connect
    # and command far slower than the defaults allow
    $ENV{TEST_NGINX_T600_REDIS_TIMEOUTS} = $ENV{TEST_NGINX_USE_VALGRIND}
        ? 'connect_timeout=10s timeout=10s' : 'connect_timeout=100ms timeout=50ms';
}

need_services(Redis => $ENV{TEST_NGINX_REDIS_PORT},
              Postgres => $ENV{TEST_NGINX_PG_PORT});

# every command Redis receives from now on; ours are told apart by the
# prefix
our $Monitor = Txval::Redis->monitor(port => $ENV{TEST_NGINX_REDIS_PORT});

our @Strings = qw(id merchant_id card_token currency card_bin country);

# a valid transaction (t/fixtures.sql: an active merchant, an active US
# card), every member given: ::post_raw('/t', key => $json, ...) replaces,
# drops (undef) or adds members
tx_defaults(merchant_id => 't_active', card_token => 't_card_us',
            card_bin => '424242', country => 'US');

# what a request may log of its own (its connection's lines): grep pattern
# and the expected output, one refusal line or nothing
our $Own = qr/\[[a-z]+\] \d+#\d+: \*\d+ [^\n]*/;

sub ::one_line {
    my ($what) = @_;
    return qr/\A\[info\] \d+#\d+: \*\d+ $what, client: [^\n]*\n\z/;
}

sub ::refused_field {
    return ::one_line('txval: refused: invalid_field field '
                      . '(?:id|amount|currency|merchant_id|card_token|card_bin|country)');
}

# --- hostile strings, as JSON string contents (escapes kept)

# CRLF and Redis protocol text
our @Protocol = (
    'a\r\nb',
    '*1\r\n$4\r\nPING\r\n',
    'x\r\nFLUSHALL\r\n',
    '\r\n*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n',
    '\u000d\u000a*1\u000d\u000a$4\u000d\u000aQUIT\u000d\u000a',
    '\n',
    'US\r\n',
);

# SQL text
our @Sql = (
    q{x' OR '1'='1},
    q{'; DROP TABLE merchants; --},
    q{1) UNION SELECT status FROM cards --},
    q{t_active\u0027--},
    q{%' OR token LIKE '%},
    q{$$; DELETE FROM cards; $$},
    q{77777' OR 1=1 --},
);

# a valid value with protocol or SQL text after it
sub ::suffixed {
    my ($field, $tail) = @_;
    my %valid = (id => 'tx_1', merchant_id => 't_active',
                 card_token => 't_card_us', currency => 'USD',
                 card_bin => '777777', country => 'US');
    return $valid{$field} . $tail;
}

# [requests], [bodies]: every hostile string in every string field
sub ::every_field {
    my @texts = @_;
    my (@req, @res);
    my $n = 0;
    for my $f (@Strings) {
        for my $t (@texts,
                   ::suffixed($f, '\r\n*1\r\n$8\r\nFLUSHALL\r\n'),
                   ::suffixed($f, q{' OR '1'='1}))
        {
            $n++;
            push @req, ::post_raw('/t', id => qq!"tx_f$n"!, $f => qq!"$t"!);
            push @res, ::invalid($f);
        }
    }
    return (\@req, \@res);
}

our ($ProtoReq, $ProtoRes) = ::every_field(@Protocol);
our ($SqlReq, $SqlRes) = ::every_field(@Sql);

# the same texts in unknown members (as value and as key): ignored
our (@UnknownReq, @UnknownRes);
{
    my $n = 0;
    for my $t (@Protocol, @Sql) {
        $n++;
        push @UnknownReq,
             ::post_raw('/t', id => qq!"tx_u$n"!, note => qq!"$t"!);
        push @UnknownRes, ::v("tx_u$n");
        $n++;
        push @UnknownReq,
             ::post_raw('/t', id => qq!"tx_u$n"!, qq!$t! => qq!"$t"!);
        push @UnknownRes, ::v("tx_u$n");
    }
}

# invalid UTF-8: a bad byte, an overlong '/' and '"', a surrogate, above
# U+10FFFF, a truncated sequence, a lone continuation byte, a 5-byte form
our @BadUtf8 = ("\xff", "\xc0\xaf", "\xc0\xa2", "\xed\xa0\x80",
                "\xf4\x90\x80\x80", "\xe2\x82", "\x80", "\xf8\x88\x80\x80\x80");

our (@Utf8Req, @Utf8Res);
{
    my $i = 0;
    for my $f (@Strings, 'note') {
        for my $j (0, 1) {
            my $bad = $BadUtf8[$i++ % @BadUtf8];
            push @Utf8Req, ::post_raw('/t', $f => qq!"t${bad}x"!);
        }
    }
    # in a key, and between tokens
    push @Utf8Req, ::post_raw('/t', "no\xc0\xa2te" => '1');
    push @Utf8Req, "POST /t\n" . ::tx_raw() . "\xef\xbb";
    push @Utf8Res, (::invalid_json('the body is not valid UTF-8')) x @Utf8Req;
}

log_level('info');
no_shuffle();
run_tests();

# --- after every block: what reached Redis

{
    my $prefix = $ENV{TEST_NGINX_T600};
    my @cmds = grep { grep { index($_, $prefix) == 0 } @{ $_->{args} } }
               $Monitor->commands(0.5);

    Test::More::cmp_ok(scalar @cmds, '>', 0,
                       'Redis: this run sent commands with its prefix');

    my @bad;
    for my $c (@cmds) {
        my ($name, @args) = @{ $c->{args} };
        my $key = $args[0] // '';
        my $verdict = qr/\A\Q$prefix\Ev:tx_[a-z0-9_]+\z/;
        my $record = qr/\A2;[0-9a-f]+;\d+;[0-9a-f]{32}\z/;
        my $mark = qr/\Ap;[0-9a-f]{32}\z/;
        my $ok = ($name eq 'SET' && @args == 6 && $key =~ $verdict
                  && $args[1] =~ $mark && "@args[2 .. 5]" eq 'NX GET PX 5000')
              || ($name eq 'SET' && @args == 5 && $key =~ $verdict
                  && $args[1] =~ $record && "@args[2, 3]" eq 'XX EX'
                  && $args[4] =~ /\A\d+\z/)
              || ($name eq 'EVAL' && @args == 6 && $args[1] eq '1'
                  && $args[2] =~ $verdict && $args[3] =~ $record
                  && $args[4] =~ /\A\d+\z/
                  && ($args[5] =~ $mark || $args[5] =~ $record))
              || ($name eq 'EVAL' && @args == 4 && $args[1] eq '1'
                  && $args[2] =~ $verdict && $args[3] =~ $mark)
              || ($c->{lua} && $name =~ /\A(TYPE|GET|DEL)\z/ && @args == 1
                  && $key =~ $verdict)
              || ($c->{lua} && $name eq 'SET' && @args == 4 && $key =~ $verdict
                  && $args[1] =~ $record && $args[2] eq 'EX'
                  && $args[3] =~ /\A\d+\z/)
              || ($name eq 'INCR' && @args == 1
                  && $key =~ /\A\Q$prefix\Evel:t_card_[a-z]+:\d+\z/)
              || ($name eq 'EXPIRE' && @args == 2
                  && $key =~ /\A\Q$prefix\Evel:t_card_[a-z]+:\d+\z/
                  && $args[1] =~ /\A\d+\z/);
        push @bad, $c->{raw} unless $ok;
    }

    Test::More::is(join("\n", @bad), '',
                   'Redis: every command is a mark (SET NX GET), a store or '
                   . 'release script (EVAL), INCR or EXPIRE of a well-formed '
                   . 'key, no hostile text');
}

__DATA__

=== TEST 1: slow body: headers and half the body, then silence: client_body_timeout closes it, txval validates nothing
--- http_config
    txval_cache_zone t600:1m;
    txval_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT prefix=$TEST_NGINX_T600 $TEST_NGINX_T600_REDIS_TIMEOUTS;
    txval_postgres "host=127.0.0.1 port=$TEST_NGINX_PG_PORT dbname=txval user=txval password=txval" timeout=$TEST_NGINX_PG_TIMEOUT;
    log_format t600 't600 access: status=$status request_time=$request_time request="$request"';
    access_log $TEST_NGINX_SERVER_ROOT/logs/error.log t600;
--- config
    location /t {
        client_body_timeout 1s;
        txval_velocity 100000 60s;
        txval;
    }
--- raw_request eval
my $b = ::tx_raw(id => '"tx_slow"');
"POST /t HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
. "Content-Type: application/json\r\nContent-Length: " . length($b)
. "\r\n\r\n" . substr($b, 0, 40)
--- timeout: 5
--- ignore_response
--- grep_error_log eval: $::Own
--- grep_error_log_out eval
""
--- error_log eval
qr/^t600 access: status=408 request_time=1\.\d+ request="POST \/t HTTP\/1\.1"$/
--- no_error_log
txval:
[error]
[alert]
[crit]
exited on signal



=== TEST 2: slow body: headers only, no body byte
--- http_config
    txval_cache_zone t600:1m;
    txval_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT prefix=$TEST_NGINX_T600 $TEST_NGINX_T600_REDIS_TIMEOUTS;
    txval_postgres "host=127.0.0.1 port=$TEST_NGINX_PG_PORT dbname=txval user=txval password=txval" timeout=$TEST_NGINX_PG_TIMEOUT;
    log_format t600 't600 access: status=$status request_time=$request_time request="$request"';
    access_log $TEST_NGINX_SERVER_ROOT/logs/error.log t600;
--- config
    location /t {
        client_body_timeout 1s;
        txval_velocity 100000 60s;
        txval;
    }
--- raw_request eval
"POST /t HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
. "Content-Type: application/json\r\nContent-Length: 120\r\n\r\n"
--- timeout: 5
--- ignore_response
--- grep_error_log eval: $::Own
--- grep_error_log_out eval
""
--- error_log eval
qr/^t600 access: status=408 request_time=1\.\d+ request="POST \/t HTTP\/1\.1"$/
--- no_error_log
txval:
[error]
[alert]
exited on signal



=== TEST 3: slow body: chunked, the first chunk, then silence
--- http_config
    txval_cache_zone t600:1m;
    txval_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT prefix=$TEST_NGINX_T600 $TEST_NGINX_T600_REDIS_TIMEOUTS;
    txval_postgres "host=127.0.0.1 port=$TEST_NGINX_PG_PORT dbname=txval user=txval password=txval" timeout=$TEST_NGINX_PG_TIMEOUT;
    log_format t600 't600 access: status=$status request_time=$request_time request="$request"';
    access_log $TEST_NGINX_SERVER_ROOT/logs/error.log t600;
--- config
    location /t {
        client_body_timeout 1s;
        txval_velocity 100000 60s;
        txval;
    }
--- raw_request eval
my $b = ::tx_raw(id => '"tx_slow_chunked"');
"POST /t HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
. "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
. sprintf("%x\r\n%s\r\n", 30, substr($b, 0, 30))
--- timeout: 5
--- ignore_response
--- grep_error_log eval: $::Own
--- grep_error_log_out eval
""
--- error_log eval
qr/^t600 access: status=408 request_time=1\.\d+ request="POST \/t HTTP\/1\.1"$/
--- no_error_log
txval:
[error]
[alert]
exited on signal



=== TEST 4: slow body in gate mode: the same timeout, the upstream never sees it
--- http_config
    txval_cache_zone t600:1m;
    txval_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT prefix=$TEST_NGINX_T600 $TEST_NGINX_T600_REDIS_TIMEOUTS;
    txval_postgres "host=127.0.0.1 port=$TEST_NGINX_PG_PORT dbname=txval user=txval password=txval" timeout=$TEST_NGINX_PG_TIMEOUT;
    log_format t600 't600 access: status=$status request_time=$request_time request="$request"';
    access_log $TEST_NGINX_SERVER_ROOT/logs/error.log t600;
--- config
    location /t {
        client_body_timeout 1s;
        txval_velocity 100000 60s;
        txval_gate;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/upstream;
    }
    location /upstream {
        return 200 "upstream saw it\n";
    }
--- raw_request eval
my $b = ::tx_raw(id => '"tx_slow_gate"');
"POST /t HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
. "Content-Type: application/json\r\nContent-Length: " . length($b)
. "\r\n\r\n" . substr($b, 0, 40)
--- timeout: 5
--- ignore_response
--- grep_error_log eval: $::Own
--- grep_error_log_out eval
""
--- error_log eval
qr/^t600 access: status=408 request_time=1\.\d+ request="POST \/t HTTP\/1\.1"$/
--- no_error_log
txval:
[error]
[alert]
exited on signal



=== TEST 5: a body that trickles in, each pause shorter than client_body_timeout: validated as usual (the timeout is per read)
--- http_config
    txval_cache_zone t600:1m;
    txval_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT prefix=$TEST_NGINX_T600 $TEST_NGINX_T600_REDIS_TIMEOUTS;
    txval_postgres "host=127.0.0.1 port=$TEST_NGINX_PG_PORT dbname=txval user=txval password=txval" timeout=$TEST_NGINX_PG_TIMEOUT;
    log_format t600 't600 access: status=$status request_time=$request_time request="$request"';
    access_log $TEST_NGINX_SERVER_ROOT/logs/error.log t600;
--- config
    location /t {
        client_body_timeout 1s;
        txval_velocity 100000 60s;
        txval;
    }
--- raw_request eval
my $b = ::tx_raw(id => '"tx_trickle"');
my $h = "POST /t HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
        . "Content-Type: application/json\r\nContent-Length: " . length($b)
        . "\r\n\r\n";
[ $h . substr($b, 0, 30), substr($b, 30, 40), substr($b, 70) ]
--- raw_request_middle_delay: 0.4
--- timeout: 5
--- error_code: 200
--- response_body eval
::v('tx_trickle')
--- grep_error_log eval: $::Own
--- grep_error_log_out eval
""
--- error_log eval
qr/^t600 access: status=200 request_time=(?:0\.[89]|1\.)\d* request="POST \/t HTTP\/1\.1"$/
--- no_error_log
[error]
[alert]



=== TEST 6: invalid UTF-8 in every string field, an unknown value, a key, between tokens
--- http_config
    txval_cache_zone t600:1m;
    txval_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT prefix=$TEST_NGINX_T600 $TEST_NGINX_T600_REDIS_TIMEOUTS;
    txval_postgres "host=127.0.0.1 port=$TEST_NGINX_PG_PORT dbname=txval user=txval password=txval" timeout=$TEST_NGINX_PG_TIMEOUT;
--- config
    location /t {
        txval_velocity 100000 60s;
        txval;
    }
--- more_headers
Content-Type: application/json
--- request eval
[ @::Utf8Req ]
--- error_code eval
[ (400) x @::Utf8Req ]
--- response_body eval
[ @::Utf8Res ]
--- grep_error_log eval: $::Own
--- grep_error_log_out eval
::one_line('txval: refused: invalid_json')
--- no_error_log
[error]
[alert]



=== TEST 7: valid UTF-8 outside the alphabets (accents, fullwidth letters and digits, Arabic-Indic digits) in each known field: invalid_field; in an unknown member: fine
--- http_config
    txval_cache_zone t600:1m;
    txval_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT prefix=$TEST_NGINX_T600 $TEST_NGINX_T600_REDIS_TIMEOUTS;
    txval_postgres "host=127.0.0.1 port=$TEST_NGINX_PG_PORT dbname=txval user=txval password=txval" timeout=$TEST_NGINX_PG_TIMEOUT;
--- config
    location /t {
        txval_velocity 100000 60s;
        txval;
    }
--- more_headers
Content-Type: application/json
--- request eval
[
::post_raw('/t', id => qq!"tx_\xc3\xa9"!),
::post_raw('/t', merchant_id => qq!"t_activ\xc3\xa9"!),
::post_raw('/t', card_token => qq!"t_card_\xef\xbd\x95s"!),
::post_raw('/t', currency => qq!"\xef\xbc\xb5SD"!),
::post_raw('/t', card_bin => qq!"\xd9\xa7\xd9\xa7\xd9\xa7\xd9\xa7\xd9\xa7\xd9\xa7"!),
::post_raw('/t', country => qq!"U\xef\xbc\xb3"!),
::post_raw('/t', card_bin => qq!"\xef\xbc\x97\xef\xbc\x97\xef\xbc\x97\xef\xbc\x97\xef\xbc\x97\xef\xbc\x97"!),
]
--- error_code eval
[ (400) x 7 ]
--- response_body eval
[ map { ::invalid($_) } @::Strings, 'card_bin' ]
--- grep_error_log eval: $::Own
--- grep_error_log_out eval
::refused_field()
--- no_error_log
[error]
[alert]



=== TEST 8: raw NUL bytes, and raw CR/LF inside strings: in every string field, an unknown value, a key, first and last byte
--- http_config
    txval_cache_zone t600:1m;
    txval_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT prefix=$TEST_NGINX_T600 $TEST_NGINX_T600_REDIS_TIMEOUTS;
    txval_postgres "host=127.0.0.1 port=$TEST_NGINX_PG_PORT dbname=txval user=txval password=txval" timeout=$TEST_NGINX_PG_TIMEOUT;
--- config
    location /t {
        txval_velocity 100000 60s;
        txval;
    }
--- more_headers
Content-Type: application/json
--- request eval
[
(map { ::post_raw('/t', $_ => qq!"t\0x"!) } @::Strings, 'note'),
(map { ::post_raw('/t', $_ => qq!"t\r\nx"!) } @::Strings, 'note'),
::post_raw('/t', "no\0te" => '1'),
"POST /t\n\0" . ::tx_raw(),
"POST /t\n" . ::tx_raw() . "\0",
::post_raw('/t', amount => "1000\0"),
]
--- error_code eval
[ (400) x 18 ]
--- response_body eval
[
(::invalid_json('the body holds a control character')) x 17,
::invalid_json('the body is not valid JSON'),
]
--- grep_error_log eval: $::Own
--- grep_error_log_out eval
::one_line('txval: refused: invalid_json')
--- no_error_log
[error]
[alert]



=== TEST 9: escaped NUL (\u0000) in every string field, an unknown value, a key; an escaped backslash before u0000 is no NUL
--- http_config
    txval_cache_zone t600:1m;
    txval_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT prefix=$TEST_NGINX_T600 $TEST_NGINX_T600_REDIS_TIMEOUTS;
    txval_postgres "host=127.0.0.1 port=$TEST_NGINX_PG_PORT dbname=txval user=txval password=txval" timeout=$TEST_NGINX_PG_TIMEOUT;
--- config
    location /t {
        txval_velocity 100000 60s;
        txval;
    }
--- more_headers
Content-Type: application/json
--- request eval
[
(map { ::post_raw('/t', $_ => '"t_card_us\u0000x"') } @::Strings, 'note'),
::post_raw('/t', 'id\u0000' => '"tx_2"'),
::post_raw('/t', id => '"tx_1\\\\u0000"'),
]
--- error_code eval
[ (400) x 9 ]
--- response_body eval
[
(::invalid_json('the body holds an escaped NUL character')) x 8,
::invalid('id'),
]
--- grep_error_log eval: $::Own
--- grep_error_log_out eval
qr/\A\[info\] \d+#\d+: \*\d+ txval: refused: (?:invalid_json|invalid_field field id), client: [^\n]*\n\z/
--- no_error_log
[error]
[alert]



=== TEST 10: a NUL byte in a request header: nginx's own 400, txval is not reached
--- http_config
    txval_cache_zone t600:1m;
    txval_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT prefix=$TEST_NGINX_T600 $TEST_NGINX_T600_REDIS_TIMEOUTS;
    txval_postgres "host=127.0.0.1 port=$TEST_NGINX_PG_PORT dbname=txval user=txval password=txval" timeout=$TEST_NGINX_PG_TIMEOUT;
--- config
    location /t {
        txval_velocity 100000 60s;
        txval;
    }
--- raw_request eval
my $b = ::tx_raw();
"POST /t HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
. "Content-Type: application/json\0\r\nContent-Length: " . length($b)
. "\r\n\r\n" . $b
--- error_code: 400
--- response_body_like: 400 Bad Request
--- grep_error_log eval: $::Own
--- grep_error_log_out eval
::one_line(quotemeta('client sent invalid header line: "Content-Type: application/json\\x00..." while reading client request headers'))
--- no_error_log
txval:
[error]
[alert]



=== TEST 11: duplicate keys are refused, whichever value comes first, the same or another, null second, hidden by an escape
--- http_config
    txval_cache_zone t600:1m;
    txval_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT prefix=$TEST_NGINX_T600 $TEST_NGINX_T600_REDIS_TIMEOUTS;
    txval_postgres "host=127.0.0.1 port=$TEST_NGINX_PG_PORT dbname=txval user=txval password=txval" timeout=$TEST_NGINX_PG_TIMEOUT;
--- config
    location /t {
        txval_velocity 100000 60s;
        txval;
    }
--- more_headers
Content-Type: application/json
--- request eval
[
::post_raw('/t', zz => 1) =~ s/"zz":1/"id":"tx_2"/r,
::post_raw('/t', zz => 1) =~ s/"zz":1/"id":"tx_1"/r,
::post_raw('/t', zz => 1) =~ s/"zz":1/"amount":1/r,
::post_raw('/t', zz => 1) =~ s/"zz":1/"amount":1000.0/r,
::post_raw('/t', zz => 1) =~ s/"zz":1/"currency":"EUR"/r,
::post_raw('/t', zz => 1) =~ s/"zz":1/"merchant_id":"t_inactive"/r,
::post_raw('/t', zz => 1) =~ s/"zz":1/"card_token":"t_card_blocked"/r,
::post_raw('/t', zz => 1) =~ s/"zz":1/"card_bin":"777777"/r,
::post_raw('/t', zz => 1) =~ s/"zz":1/"country":null/r,
::post_raw('/t', zz => 1) =~ s/"zz":1/"i\\u0064":"tx_1"/r,
::post_raw('/t', zz => 1) =~ s/"zz":1/"\\u0063ard_token":"t_card_us"/r,
"POST /t\n" . '{"card_token":"t_card_blocked",' . substr(::tx_raw(), 1),
]
--- error_code eval
[ (400) x 12 ]
--- response_body eval
[
map { ::invalid($_, 'a field appears more than once') }
    qw(id id amount amount currency merchant_id card_token card_bin country
       id card_token card_token)
]
--- grep_error_log eval: $::Own
--- grep_error_log_out eval
::refused_field()
--- no_error_log
[error]
[alert]



=== TEST 12: duplicates that are not known fields are ignored: an unknown key twice, nested keys twice, another case
--- http_config
    txval_cache_zone t600:1m;
    txval_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT prefix=$TEST_NGINX_T600 $TEST_NGINX_T600_REDIS_TIMEOUTS;
    txval_postgres "host=127.0.0.1 port=$TEST_NGINX_PG_PORT dbname=txval user=txval password=txval" timeout=$TEST_NGINX_PG_TIMEOUT;
--- config
    location /t {
        txval_velocity 100000 60s;
        txval;
    }
--- more_headers
Content-Type: application/json
--- request eval
[
::post_raw('/t', id => '"tx_dup_1"', note => '"a"') =~ s/\}$/,"note":"b"}/r,
::post_raw('/t', id => '"tx_dup_2"', meta => '{"id":"x","id":"y","amount":-1}'),
::post_raw('/t', id => '"tx_dup_3"', ID => '"tx_other"', Amount => '1'),
]
--- error_code eval
[200, 200, 200]
--- response_body eval
[ ::v('tx_dup_1'), ::v('tx_dup_2'), ::v('tx_dup_3') ]
--- grep_error_log eval: $::Own
--- grep_error_log_out eval
""
--- no_error_log
[error]
[alert]



=== TEST 13: numbers: 1e400, -1e400, 1e-400, -0, -0.0, 0e5, a fraction, 2^53, a negative numeric string: invalid amount; 1e400 in an unknown member is fine
--- http_config
    txval_cache_zone t600:1m;
    txval_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT prefix=$TEST_NGINX_T600 $TEST_NGINX_T600_REDIS_TIMEOUTS;
    txval_postgres "host=127.0.0.1 port=$TEST_NGINX_PG_PORT dbname=txval user=txval password=txval" timeout=$TEST_NGINX_PG_TIMEOUT;
--- config
    location /t {
        txval_velocity 100000 60s;
        txval;
    }
--- more_headers
Content-Type: application/json
--- request eval
[
::post_raw('/t', amount => '1e400'),
::post_raw('/t', amount => '-1e400'),
::post_raw('/t', amount => '1e-400'),
::post_raw('/t', amount => '-0'),
::post_raw('/t', amount => '-0.0'),
::post_raw('/t', amount => '0e5'),
::post_raw('/t', amount => '1.5'),
::post_raw('/t', amount => '9007199254740992'),
::post_raw('/t', amount => '"-1000"'),
]
--- error_code eval
[ (400) x 9 ]
--- response_body eval
[ (::invalid('amount')) x 9 ]
--- grep_error_log eval: $::Own
--- grep_error_log_out eval
::one_line('txval: refused: invalid_field field amount')
--- no_error_log
[error]
[alert]



=== TEST 14: numbers: 1.0 is the amount 1: computed once, then 1, 1e0, 10e-1, 0.1e1 are replays of it (shm), not conflicts; 1e400 elsewhere is ignored
--- http_config
    txval_cache_zone t600:1m;
    txval_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT prefix=$TEST_NGINX_T600 $TEST_NGINX_T600_REDIS_TIMEOUTS;
    txval_postgres "host=127.0.0.1 port=$TEST_NGINX_PG_PORT dbname=txval user=txval password=txval" timeout=$TEST_NGINX_PG_TIMEOUT;
--- config
    location /t {
        txval_velocity 100000 60s;
        txval;
    }
--- more_headers
Content-Type: application/json
--- request eval
[
::post_raw('/t', id => '"tx_one"', amount => '1.0'),
::post_raw('/t', id => '"tx_one"', amount => '1'),
::post_raw('/t', id => '"tx_one"', amount => '1e0'),
::post_raw('/t', id => '"tx_one"', amount => '10e-1'),
::post_raw('/t', id => '"tx_one"', amount => '0.1e1'),
::post_raw('/t', id => '"tx_big"', note => '1e400', other => '-1e400'),
]
--- error_code eval
[ (200) x 6 ]
--- response_body eval
[
::v('tx_one'),
(::v('tx_one', 'shm')) x 4,
::v('tx_big'),
]
--- grep_error_log eval: $::Own
--- grep_error_log_out eval
""
--- no_error_log
[error]
[alert]



=== TEST 15: 5000-deep nesting (arrays, objects, mixed, unclosed, a card number at the bottom): invalid_json, no stack trouble, nothing logged of it
--- http_config
    txval_cache_zone t600:1m;
    txval_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT prefix=$TEST_NGINX_T600 $TEST_NGINX_T600_REDIS_TIMEOUTS;
    txval_postgres "host=127.0.0.1 port=$TEST_NGINX_PG_PORT dbname=txval user=txval password=txval" timeout=$TEST_NGINX_PG_TIMEOUT;
--- config
    location /t {
        client_body_buffer_size 64k;
        txval_velocity 100000 60s;
        txval;
    }
--- more_headers
Content-Type: application/json
--- request eval
[
"POST /t\n" . ('[' x 5000) . (']' x 5000),
"POST /t\n" . ('{"a":' x 5000) . '1' . ('}' x 5000),
::post_raw('/t', deep => ('[' x 5000) . (']' x 5000)),
::post_raw('/t', deep => ('{"a":' x 5000) . '1' . ('}' x 5000)),
::post_raw('/t', deep => ('[{"a":' x 2500) . '1' . ('}]' x 2500)),
::post_raw('/t', deep => ('[' x 5000)),
::post_raw('/t', deep => ('{"a":' x 5000) . '{"pan":"4111111111111111"}' . ('}' x 5000)),
]
--- error_code eval
[ (400) x 7 ]
--- response_body eval
[ (::invalid_json('the body is not valid JSON')) x 7 ]
--- grep_error_log eval: $::Own
--- grep_error_log_out eval
::one_line('txval: refused: invalid_json')
--- no_error_log
4111111111111111
[error]
[alert]



=== TEST 16: wide bodies: 50,000 unknown members, a 500 kB unknown string, 999-deep nesting: fine
--- http_config
    txval_cache_zone t600:1m;
    txval_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT prefix=$TEST_NGINX_T600 $TEST_NGINX_T600_REDIS_TIMEOUTS;
    txval_postgres "host=127.0.0.1 port=$TEST_NGINX_PG_PORT dbname=txval user=txval password=txval" timeout=$TEST_NGINX_PG_TIMEOUT;
--- config
    location /t {
        client_max_body_size 1m;
        client_body_buffer_size 1m;
        txval_velocity 100000 60s;
        txval;
    }
--- more_headers
Content-Type: application/json
--- request eval
[
::post_raw('/t', id => '"tx_wide"', map { ("k$_" => '0') } 1 .. 50000),
::post_raw('/t', id => '"tx_long"', note => '"' . ('x' x 500000) . '"'),
::post_raw('/t', id => '"tx_deep"', deep => ('{"a":[' x 499) . '1' . (']}' x 499)),
]
--- error_code eval
[200, 200, 200]
--- response_body eval
[ ::v('tx_wide'), ::v('tx_long'), ::v('tx_deep') ]
--- grep_error_log eval: $::Own
--- grep_error_log_out eval
""
--- no_error_log
[error]
[alert]



=== TEST 17: CRLF and Redis protocol text in every string field (also a valid value with a command after it): invalid_field, nothing reaches a backend
--- http_config
    txval_cache_zone t600:1m;
    txval_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT prefix=$TEST_NGINX_T600 $TEST_NGINX_T600_REDIS_TIMEOUTS;
    txval_postgres "host=127.0.0.1 port=$TEST_NGINX_PG_PORT dbname=txval user=txval password=txval" timeout=$TEST_NGINX_PG_TIMEOUT;
--- config
    location /t {
        txval_velocity 100000 60s;
        txval;
    }
--- more_headers
Content-Type: application/json
--- request eval
$::ProtoReq
--- error_code eval
[ (400) x @$::ProtoReq ]
--- response_body eval
$::ProtoRes
--- grep_error_log eval: $::Own
--- grep_error_log_out eval
::refused_field()
--- no_error_log
[error]
[alert]



=== TEST 18: SQL text in every string field (also a valid value with SQL after it): invalid_field
--- http_config
    txval_cache_zone t600:1m;
    txval_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT prefix=$TEST_NGINX_T600 $TEST_NGINX_T600_REDIS_TIMEOUTS;
    txval_postgres "host=127.0.0.1 port=$TEST_NGINX_PG_PORT dbname=txval user=txval password=txval" timeout=$TEST_NGINX_PG_TIMEOUT;
--- config
    location /t {
        txval_velocity 100000 60s;
        txval;
    }
--- more_headers
Content-Type: application/json
--- request eval
$::SqlReq
--- error_code eval
[ (400) x @$::SqlReq ]
--- response_body eval
$::SqlRes
--- grep_error_log eval: $::Own
--- grep_error_log_out eval
::refused_field()
--- no_error_log
[error]
[alert]



=== TEST 19: the same protocol and SQL text as unknown members (value and key): ignored, verdicts computed with Redis and Postgres
--- http_config
    txval_cache_zone t600:1m;
    txval_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT prefix=$TEST_NGINX_T600 $TEST_NGINX_T600_REDIS_TIMEOUTS;
    txval_postgres "host=127.0.0.1 port=$TEST_NGINX_PG_PORT dbname=txval user=txval password=txval" timeout=$TEST_NGINX_PG_TIMEOUT;
--- config
    location /t {
        txval_velocity 100000 60s;
        txval;
    }
--- more_headers
Content-Type: application/json
--- request eval
[ @::UnknownReq ]
--- error_code eval
[ (200) x @::UnknownReq ]
--- response_body eval
[ @::UnknownRes ]
--- grep_error_log eval: $::Own
--- grep_error_log_out eval
""
--- no_error_log
[error]
[alert]



=== TEST 20: after the hostile input: Postgres data intact and used (blocked card, blocked BIN, inactive merchant, unknown merchant)
--- http_config
    txval_cache_zone t600:1m;
    txval_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT prefix=$TEST_NGINX_T600 $TEST_NGINX_T600_REDIS_TIMEOUTS;
    txval_postgres "host=127.0.0.1 port=$TEST_NGINX_PG_PORT dbname=txval user=txval password=txval" timeout=$TEST_NGINX_PG_TIMEOUT;
--- config
    location /t {
        txval_velocity 100000 60s;
        txval;
    }
--- more_headers
Content-Type: application/json
--- request eval
[
::post_raw('/t', id => '"tx_after_1"', card_token => '"t_card_blocked"'),
::post_raw('/t', id => '"tx_after_2"', card_bin => '"77777712"'),
::post_raw('/t', id => '"tx_after_3"', merchant_id => '"t_inactive"'),
::post_raw('/t', id => '"tx_after_4"', merchant_id => '"t_nobody"'),
::post_raw('/t', id => '"tx_after_5"'),
]
--- error_code eval
[402, 402, 402, 402, 200]
--- response_body eval
[
qq!{"id":"tx_after_1","verdict":"declined","reasons":["card_blocked"],"risk_score":0,"source":"computed"}\n!,
qq!{"id":"tx_after_2","verdict":"declined","reasons":["bin_blocked"],"risk_score":0,"source":"computed"}\n!,
qq!{"id":"tx_after_3","verdict":"declined","reasons":["merchant_inactive"],"risk_score":0,"source":"computed"}\n!,
qq!{"id":"tx_after_4","verdict":"declined","reasons":["merchant_unknown"],"risk_score":0,"source":"computed"}\n!,
::v('tx_after_5'),
]
--- grep_error_log eval: $::Own
--- grep_error_log_out eval
""
--- no_error_log
[error]
[alert]
