# txval_redis: verdicts replayed from Redis (with and without a cache
# zone), conflicts found in Redis, velocity counting (exact counts, the
# risk signal, the decline), fail modes when Redis is down, and the
# directives' errors.
#
# Needs the suite's Redis on 127.0.0.1:$TEST_NGINX_REDIS_PORT (make test
# starts it; by hand: . scripts/services.sh;
# txval_redis_start 16390 $PWD/build/test-redis-16390). Every block uses its own
# key prefix, made unique per run ($TEST_NGINX_T200 below), so that no state
# leaks between blocks or from an earlier run.

use lib 't/lib';
use IO::Socket::INET;
# no_plan: the blocks check different numbers of things (requests,
# headers, log lines), so no plan of repeat_each() * blocks() * N fits
use Test::Txval 'no_plan';
use Txval::Tx qw(tx_defaults tx post v conflict unavailable);

BEGIN {
    $ENV{TEST_NGINX_REDIS_PORT} ||= 16390;
    $ENV{TEST_NGINX_T200} = "t200.$$." . time();
}

{
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                  PeerPort => $ENV{TEST_NGINX_REDIS_PORT},
                                  Proto => 'tcp', Timeout => 2);
    my $pong = '';
    if ($s) {
        print $s "PING\r\n";
        $pong = <$s> // '';
    }
    if ($pong !~ /^\+PONG/) {
        Test::More::BAIL_OUT("no Redis on 127.0.0.1:$ENV{TEST_NGINX_REDIS_PORT}"
                             . " (start it: see the top of $0)");
    }
}

master_on();
workers(2);
log_level('info');
no_shuffle();

# the blocks call these as ::post() etc.
tx_defaults(currency => 'EUR');

sub hdr {
    my ($verdict, $source) = @_;
    return "X-Txval-Verdict: $verdict\nX-Txval-Source: $source";
}

run_tests();

__DATA__

=== TEST 1: no cache zone: computed first, then answered from Redis (body, headers, declined too)
--- http_config
    txval_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT prefix=$TEST_NGINX_T200.1: timeout=$TEST_NGINX_REDIS_TIMEOUT;
--- config
    location /t {
        txval;
        txval_amount_limit EUR 1 5000;
        txval_risk_threshold 30;
        txval_decline_status 422;
    }
--- more_headers
Content-Type: application/json
--- request eval
[::post('/t', id => 'r1'), ::post('/t', id => 'r1'), ::post('/t', id => 'r1'),
 ::post('/t', id => 'r2', amount => 9000), ::post('/t', id => 'r2', amount => 9000)]
--- error_code eval
[200, 200, 200, 422, 422]
--- response_headers eval
[::hdr('approved', 'computed'), ::hdr('approved', 'redis'),
 ::hdr('approved', 'redis'), ::hdr('declined', 'computed'),
 ::hdr('declined', 'redis')]
--- response_body eval
[::v('r1', 'computed'), ::v('r1', 'redis'), ::v('r1', 'redis'),
 ::v('r2', 'computed', 'declined', ['amount_out_of_range', 'risk_too_high'], 30),
 ::v('r2', 'redis', 'declined', ['amount_out_of_range', 'risk_too_high'], 30)]
--- no_error_log
[error]
[alert]
[warn]



=== TEST 2: with a cache zone: computed, then shm; evicted from shm: Redis answers and refills shm
--- http_config
    txval_cache_zone t200_2:32k ttl=10m;
    txval_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT prefix=$TEST_NGINX_T200.2: timeout=$TEST_NGINX_REDIS_TIMEOUT;
--- config
    location /t { txval; }
--- more_headers
Content-Type: application/json
--- request eval
[::post('/t', id => 'e1'), ::post('/t', id => 'e1'),
 (map { ::post('/t', id => "fill_$_") } 1 .. 200),
 ::post('/t', id => 'e1'), ::post('/t', id => 'e1')]
--- error_code eval
[(200) x 204]
--- response_headers eval
[::hdr('approved', 'computed'), ::hdr('approved', 'shm'),
 (::hdr('approved', 'computed')) x 200,
 ::hdr('approved', 'redis'), ::hdr('approved', 'shm')]
--- response_body eval
[::v('e1', 'computed'), ::v('e1', 'shm'),
 (map { ::v("fill_$_", 'computed') } 1 .. 200),
 ::v('e1', 'redis'), ::v('e1', 'shm')]
--- timeout: 20
--- no_error_log
[error]
[alert]



=== TEST 3: no cache zone: same id, other content -> 409 found in Redis; the original still replays
--- http_config
    txval_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT prefix=$TEST_NGINX_T200.3: timeout=$TEST_NGINX_REDIS_TIMEOUT;
--- config
    location /t { txval; }
--- more_headers
Content-Type: application/json
--- request eval
[::post('/t', id => 'c1'),
 ::post('/t', id => 'c1', amount => 1001),
 ::post('/t', id => 'c1', card_bin => '424242'),
 ::post('/t', id => 'c1', merchant_id => 'm_2'),
 ::post('/t', id => 'c1')]
--- error_code eval
[200, 409, 409, 409, 200]
--- response_body eval
[::v('c1', 'computed'), ::conflict('c1'), ::conflict('c1'), ::conflict('c1'),
 ::v('c1', 'redis')]
--- no_error_log
[error]
[alert]



=== TEST 4: velocity 4 per day: risk +20 once 2*count > 4, declined at the 5th; replays do not count; cards counted apart
--- http_config
    txval_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT prefix=$TEST_NGINX_T200.4: timeout=$TEST_NGINX_REDIS_TIMEOUT;
--- config
    location /t {
        txval;
        txval_velocity 4 1d;
    }
--- more_headers
Content-Type: application/json
--- request eval
[::post('/t', id => 'v1', card_token => 'tok_v'),
 ::post('/t', id => 'v1', card_token => 'tok_v'),
 ::post('/t', id => 'v1', card_token => 'tok_v'),
 ::post('/t', id => 'v2', card_token => 'tok_v'),
 ::post('/t', id => 'v3', card_token => 'tok_v'),
 ::post('/t', id => 'v4', card_token => 'tok_v'),
 ::post('/t', id => 'v5', card_token => 'tok_v'),
 ::post('/t', id => 'v5', card_token => 'tok_v'),
 ::post('/t', id => 'w1', card_token => 'tok_w'),
 ::post('/t', id => 'v6', card_token => 'tok_v')]
--- error_code eval
[200, 200, 200, 200, 200, 200, 402, 402, 200, 402]
--- response_body eval
[::v('v1', 'computed'), ::v('v1', 'redis'), ::v('v1', 'redis'),
 ::v('v2', 'computed'),
 ::v('v3', 'computed', 'approved', [], 20),
 ::v('v4', 'computed', 'approved', [], 20),
 ::v('v5', 'computed', 'declined', ['velocity_exceeded'], 20),
 ::v('v5', 'redis', 'declined', ['velocity_exceeded'], 20),
 ::v('w1', 'computed'),
 ::v('v6', 'computed', 'declined', ['velocity_exceeded'], 20)]
--- no_error_log
[error]
[alert]



=== TEST 5: velocity with the other rules: amount signal 30 + velocity 20 reach the threshold 50; reasons in order
--- http_config
    txval_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT prefix=$TEST_NGINX_T200.5: timeout=$TEST_NGINX_REDIS_TIMEOUT;
--- config
    location /t {
        txval;
        txval_amount_limit EUR 1 5000;
        txval_risk_threshold 50;
        txval_velocity 2 1d;
    }
--- more_headers
Content-Type: application/json
--- request eval
[::post('/t', id => 'a1', amount => 3000),
 ::post('/t', id => 'a2', amount => 3000),
 ::post('/t', id => 'a3', amount => 3000),
 ::post('/t', id => 'a4', amount => 6000)]
--- error_code eval
[200, 402, 402, 402]
--- response_body eval
[::v('a1', 'computed', 'approved', [], 30),
 ::v('a2', 'computed', 'declined', ['risk_too_high'], 50),
 ::v('a3', 'computed', 'declined', ['velocity_exceeded', 'risk_too_high'], 50),
 ::v('a4', 'computed', 'declined',
     ['amount_out_of_range', 'velocity_exceeded', 'risk_too_high'], 50)]
--- no_error_log
[error]



=== TEST 6: velocity inherited from server level; "txval_velocity off" in a location counts nothing
--- http_config
    txval_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT prefix=$TEST_NGINX_T200.6: timeout=$TEST_NGINX_REDIS_TIMEOUT;
--- config
    txval_velocity 1 1d;
    location /on { txval; }
    location /off { txval; txval_velocity off; }
--- more_headers
Content-Type: application/json
--- request eval
[::post('/off', id => 'o1'), ::post('/off', id => 'o2'),
 ::post('/off', id => 'o3'),
 ::post('/on', id => 'n1'), ::post('/on', id => 'n2')]
--- error_code eval
[200, 200, 200, 200, 402]
--- response_body eval
[::v('o1', 'computed'), ::v('o2', 'computed'), ::v('o3', 'computed'),
 ::v('n1', 'computed', 'approved', [], 20),
 ::v('n2', 'computed', 'declined', ['velocity_exceeded'], 20)]
--- no_error_log
[error]



=== TEST 7: Redis down: velocity + closed (default, and explicit) -> 503 Retry-After: 1; open -> degraded; velocity off -> computed
--- http_config
    txval_redis 127.0.0.1:1 prefix=$TEST_NGINX_T200.7:;
--- config
    txval_velocity 5 1d;
    location /closed { txval; }
    location /closed2 { txval; txval_fail_mode closed; }
    location /open { txval; txval_fail_mode open; }
    location /novel { txval; txval_velocity off; }
--- more_headers
Content-Type: application/json
--- request eval
[::post('/closed', id => 'd1'), ::post('/closed2', id => 'd2'),
 ::post('/open', id => 'd3'), ::post('/novel', id => 'd4'),
 ::post('/closed', id => 'd1')]
--- error_code eval
[503, 503, 200, 200, 503]
--- response_headers eval
["Retry-After: 1\nContent-Type: application/json\n!X-Txval-Source",
 "Retry-After: 1\n!X-Txval-Source",
 "!Retry-After\n" . ::hdr('approved', 'computed'),
 "!Retry-After\n" . ::hdr('approved', 'computed'),
 "Retry-After: 1"]
--- response_body eval
[::unavailable(), ::unavailable(),
 ::v('d3', 'computed', 'approved', [], 0, 'degraded'),
 ::v('d4', 'computed'),
 ::unavailable()]
--- no_error_log
[alert]
[crit]
[emerg]



=== TEST 8: Redis down: the connect failure and the refusal are logged (one request)
--- http_config
    txval_redis 127.0.0.1:1 prefix=$TEST_NGINX_T200.7b:;
--- config
    location /t { txval; txval_velocity 5 1d; }
--- more_headers
Content-Type: application/json
--- request eval
::post('/t', id => 'd5')
--- error_code: 503
--- error_log
txval: redis 127.0.0.1:1: connect failed
txval: refused: backend_unavailable
--- no_error_log
[alert]
[crit]



=== TEST 9: Redis down, fail open, with a cache zone: degraded verdicts are not replayed; non-degraded ones are (shm)
--- http_config
    txval_cache_zone t200_8:1m;
    txval_redis 127.0.0.1:1 prefix=$TEST_NGINX_T200.8:;
    txval_fail_mode open;
--- config
    location /open { txval; txval_velocity 5 1d; }
    location /novel { txval; }
--- more_headers
Content-Type: application/json
--- request eval
[::post('/open', id => 'g1'), ::post('/open', id => 'g1'),
 ::post('/open', id => 'g1'),
 ::post('/novel', id => 'g2'), ::post('/novel', id => 'g2')]
--- error_code eval
[200, 200, 200, 200, 200]
--- response_headers eval
[::hdr('approved', 'computed'), ::hdr('approved', 'computed'),
 ::hdr('approved', 'computed'),
 ::hdr('approved', 'computed'), ::hdr('approved', 'shm')]
--- response_body eval
[::v('g1', 'computed', 'approved', [], 0, 'degraded'),
 ::v('g1', 'computed', 'approved', [], 0, 'degraded'),
 ::v('g1', 'computed', 'approved', [], 0, 'degraded'),
 ::v('g2', 'computed'), ::v('g2', 'shm')]
--- no_error_log
[alert]
[crit]
backend_unavailable



=== TEST 10: fail open, Redis down: a declining rule that does not need Redis still declines (degraded)
--- http_config
    txval_redis 127.0.0.1:1 prefix=$TEST_NGINX_T200.9:;
--- config
    location /t {
        txval;
        txval_fail_mode open;
        txval_velocity 1 1d;
        txval_amount_limit EUR 1 500;
    }
--- more_headers
Content-Type: application/json
--- request
POST /t
{"id":"k1","amount":1000,"currency":"EUR","merchant_id":"m_1","card_token":"tok_1"}
--- error_code: 402
--- response_body
{"id":"k1","verdict":"declined","reasons":["amount_out_of_range"],"risk_score":30,"source":"computed","degraded":true}



=== TEST 11: all parameters accepted
--- http_config
    txval_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT db=0 prefix=$TEST_NGINX_T200.10: pool=2 connect_timeout=1s timeout=200ms idle_timeout=5s;
--- config
    location /t { txval; txval_velocity 10 60s; txval_fail_mode closed; }
--- more_headers
Content-Type: application/json
--- request eval
[::post('/t', id => 'p1'), ::post('/t', id => 'p1')]
--- error_code eval
[200, 200]
--- response_body eval
[::v('p1', 'computed'), ::v('p1', 'redis')]
--- no_error_log
[error]



=== TEST 12: txval_velocity without txval_redis
--- config
    location /t { txval; txval_velocity 5 60s; }
--- request
GET /t
--- must_die
--- error_log
[emerg]
"txval_velocity" needs "txval_redis"



=== TEST 13: txval_velocity at http level without txval_redis
--- http_config
    txval_velocity 5 60s;
--- config
    location /t { txval; }
--- request
GET /t
--- must_die
--- error_log
[emerg]
"txval_velocity" needs "txval_redis"



=== TEST 14: txval_velocity: bad values
--- config
    location /t { txval; txval_velocity on; }
--- request
GET /t
--- must_die
--- error_log
[emerg]
invalid value "on" in "txval_velocity" directive, it must be COUNT WINDOW or off



=== TEST 15: txval_velocity: count 0
--- http_config
    txval_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT timeout=$TEST_NGINX_REDIS_TIMEOUT;
--- config
    location /t { txval; txval_velocity 0 60s; }
--- request
GET /t
--- must_die
--- error_log
[emerg]
invalid value "0" in "txval_velocity" directive, the count must be a number from 1 to 2147483647



=== TEST 15b: txval_velocity: a count beyond the rules' unsigned (it was cast)
--- http_config
    txval_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT timeout=$TEST_NGINX_REDIS_TIMEOUT;
--- config
    location /t { txval; txval_velocity 4294967297 60s; }
--- request
GET /t
--- must_die
--- error_log
[emerg]
invalid value "4294967297" in "txval_velocity" directive, the count must be a number from 1 to 2147483647



=== TEST 16: txval_velocity: window 0
--- http_config
    txval_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT timeout=$TEST_NGINX_REDIS_TIMEOUT;
--- config
    location /t { txval; txval_velocity 5 0; }
--- request
GET /t
--- must_die
--- error_log
[emerg]
invalid value "0" in "txval_velocity" directive, the window must be a time of at least 1s



=== TEST 17: txval_redis: unknown parameter
--- http_config
    txval_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT foo=1 timeout=$TEST_NGINX_REDIS_TIMEOUT;
--- config
    location /t { txval; }
--- request
GET /t
--- must_die
--- error_log
[emerg]
unknown parameter "foo=" in "txval_redis" directive



=== TEST 18: txval_redis: pool=0
--- http_config
    txval_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT pool=0 timeout=$TEST_NGINX_REDIS_TIMEOUT;
--- config
    location /t { txval; }
--- request
GET /t
--- must_die
--- error_log
[emerg]
invalid parameter "pool=0" in "txval_redis" directive



=== TEST 19: txval_redis: a timeout that is not a time
--- http_config
    txval_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT timeout=fast;
--- config
    location /t { txval; }
--- request
GET /t
--- must_die
--- error_log
[emerg]
invalid parameter "timeout=fast" in "txval_redis" directive



=== TEST 20: txval_redis: db not a number; the password given never reaches the log
--- http_config
    txval_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT password=Hunter2Secret db=x timeout=$TEST_NGINX_REDIS_TIMEOUT;
--- config
    location /t { txval; }
--- request
GET /t
--- must_die
--- error_log
[emerg]
invalid parameter "db=x" in "txval_redis" directive
--- no_error_log
Hunter2Secret



=== TEST 21: txval_redis: a prefix over 64 bytes
--- http_config
    txval_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT prefix=aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa timeout=$TEST_NGINX_REDIS_TIMEOUT;
--- config
    location /t { txval; }
--- request
GET /t
--- must_die
--- error_log
[emerg]
invalid parameter "prefix=aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" in "txval_redis" directive



=== TEST 22: txval_redis: "unix:" without a path
--- http_config
    txval_redis unix:;
--- config
    location /t { txval; }
--- request
GET /t
--- must_die
--- error_log
[emerg]
invalid address "unix:" in "txval_redis" directive, it must be host:port or unix:/path



=== TEST 23: txval_redis: a bad port
--- http_config
    txval_redis 127.0.0.1:99999;
--- config
    location /t { txval; }
--- request
GET /t
--- must_die
--- error_log
[emerg]
invalid port in "127.0.0.1:99999" of the "txval_redis" directive



=== TEST 24: txval_redis twice
--- http_config
    txval_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT timeout=$TEST_NGINX_REDIS_TIMEOUT;
    txval_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT timeout=$TEST_NGINX_REDIS_TIMEOUT;
--- config
    location /t { txval; }
--- request
GET /t
--- must_die
--- error_log
[emerg]
"txval_redis" directive is duplicate



=== TEST 25: txval_redis is http-level only
--- config
    txval_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT timeout=$TEST_NGINX_REDIS_TIMEOUT;
    location /t { txval; }
--- request
GET /t
--- must_die
--- error_log
[emerg]
"txval_redis" directive is not allowed here



=== TEST 26: txval_fail_mode: a value other than closed/open
--- config
    location /t { txval; txval_fail_mode maybe; }
--- request
GET /t
--- must_die
--- error_log
[emerg]
invalid value "maybe"



=== TEST 27: txval_redis: an empty password
--- http_config
    txval_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT password= timeout=$TEST_NGINX_REDIS_TIMEOUT;
--- config
    location /t { txval; }
--- request
GET /t
--- must_die
--- error_log
[emerg]
empty password in "txval_redis" directive
