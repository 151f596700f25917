# txval_lookup_cache in Test::Nginx blocks (so that it also runs under
# valgrind, and under upstream Test::Nginx), on the suite's Postgres with
# the triggers of docker/initdb/03-notify.sql (scripts/test.sh loads
# them). Each block's --- init warms the zone and changes rows through
# psql; the requests then show what txval enforces:
#
#   a card and a merchant looked up once, answered from the zone after
#   (txval_lookup_cache_total{result="hit"}), then a change enforced once
#   its notification came; absent rows kept as absent until inserted; a
#   '*' notification empties the zone; the listener terminated comes back
#   and empties the zone; readiness and metrics.
#
# Rows: t335_* (made here, on the suite's Postgres).

use lib 't/lib';
# no_plan: the blocks check different numbers of things (requests,
# headers, log lines), so no plan of repeat_each() * blocks() * N fits
use Test::Txval 'no_plan';
use Time::HiRes qw(sleep time);
use Txval::Lookup;
use Txval::Nginx;
use Txval::Postgres ();
use Txval::Tx qw(tx_defaults post computed);

our $Slow;

BEGIN {
    $ENV{TEST_NGINX_PG_PORT} ||= 16432;
    $ENV{TEST_NGINX_PG_DIR} ||= txval_repo_root() . '/build/test-pg-16432';
    $Slow = $ENV{TEST_NGINX_USE_VALGRIND} ? 20 : 1;
}

# one SQL command as the superuser on the suite's Postgres
sub psql {
    my ($sql) = @_;
    return Txval::Postgres::psql(
               Txval::Postgres::pg_dir($ENV{TEST_NGINX_PG_DIR}),
               $ENV{TEST_NGINX_PG_PORT}, $sql, stderr => '/dev/null')
           // die "psql failed: $sql\n";
}

sub client {
    return Txval::Nginx->new(name => 't335client', port => server_port(),
                             timeout => 30);
}

sub outcome {
    my ($card, %f) = @_;
    return Txval::Lookup::check(client(), card_token => $card, %f);
}

sub listener_up {
    Txval::Lookup::listener_is(client(), 'up', 5 * $Slow)
        or die "the lookup cache's listener did not come up\n";
}

# polls until the card's outcome is $want (the notification came)
sub until_outcome {
    my ($want, $card, %f) = @_;
    my (undef, $got) = Txval::Lookup::eventually(
        $want, 3 * $Slow, sub { outcome($card, %f) });
    $got eq $want or die "$card: not \"$want\" in time\n";
}

psql("DELETE FROM merchants WHERE id LIKE 't335%'");
psql("DELETE FROM cards WHERE token LIKE 't335%'");
psql("INSERT INTO cards (token, status, country) VALUES"
     . " ('t335_a', 'active', 'US'), ('t335_b', 'active', 'US'),"
     . " ('t335_c', 'active', 'US'), ('t335_d', 'active', 'US')");

log_level('info');
no_shuffle();

# the blocks' transactions: their own ids, USD 1000 of t_active with
# t_card_us unless told otherwise
sub tid { "t335.$$.$_[0]" }

tx_defaults(merchant_id => 't_active', card_token => 't_card_us');

run_tests();

__DATA__

=== TEST 1: a card looked up once is answered from the zone; blocked in Postgres, it is refused once the notification came
--- http_config
    txval_postgres "host=127.0.0.1 port=$TEST_NGINX_PG_PORT dbname=txval user=txval password=txval" timeout=$TEST_NGINX_PG_TIMEOUT;
    txval_lookup_cache t335_1:1m notify=txval;
--- config
    location /t {
        txval;
    }
    location /status {
        txval_status;
    }
    location /metrics {
        txval_metrics;
    }
--- init
::listener_up();
::outcome('t335_a') eq 'approved 0' or die "t335_a: not approved\n";
::outcome('t335_a') eq 'approved 0' or die "t335_a: not approved\n";
::psql("UPDATE cards SET status = 'lost' WHERE token = 't335_a'");
::until_outcome('card_blocked 0', 't335_a');
--- more_headers
Content-Type: application/json
--- request eval
[
::post('/t', id => ::tid('1a'), card_token => 't335_a'),
::post('/t', id => ::tid('1b'), card_token => 't335_b'),
::post('/t', id => ::tid('1c'), card_token => 't335_b'),
"GET /metrics",
"GET /status",
]
--- error_code eval
[402, 200, 200, 200, 200]
--- response_body_like eval
[
'^' . quotemeta(::computed(::tid('1a'), 0, 'card_blocked')) . '$',
'^' . quotemeta(::computed(::tid('1b'), 0)) . '$',
'^' . quotemeta(::computed(::tid('1c'), 0)) . '$',
'txval_lookup_cache_total\{result="hit"\} [1-9]\d*\n(?s:.*)txval_lookup_cache_total\{result="invalidated"\} [1-9]\d*\n(?s:.*)txval_lookup_listener_up 1\n',
'"lookup_listener":\{"state":"up"\}',
]
--- no_error_log
[error]
[alert]



=== TEST 2: absent rows are kept as absent until an INSERT; a '*' notification empties the zone
--- http_config
    txval_postgres "host=127.0.0.1 port=$TEST_NGINX_PG_PORT dbname=txval user=txval password=txval" timeout=$TEST_NGINX_PG_TIMEOUT;
    txval_lookup_cache t335_2:1m notify=txval;
--- config
    location /t {
        txval;
    }
    location /metrics {
        txval_metrics;
    }
    location /status {
        txval_status;
    }
--- init
::listener_up();
::outcome('t335_new', merchant_id => 't335_m') eq 'merchant_unknown 20'
    or die "t335_m: not unknown\n";
::psql("INSERT INTO merchants (id, status) VALUES ('t335_m', 'suspended')");
::until_outcome('merchant_inactive 20', 't335_new', merchant_id => 't335_m');
::psql("SELECT pg_notify('txval', '*')");
Txval::Lookup::eventually(1, 3 * $::Slow, sub { (::client()->metric('txval_lookup_cache_total{result="flushed"}') // 0) >= 2 ? 1 : 0 });
--- more_headers
Content-Type: application/json
--- request eval
[
::post('/t', id => ::tid('2a'), merchant_id => 't335_m', card_token => 't335_new'),
"GET /metrics",
]
--- error_code eval
[402, 200]
--- response_body_like eval
[
'^' . quotemeta(::computed(::tid('2a'), 20, 'merchant_inactive')) . '$',
'txval_lookup_cache_total\{result="flushed"\} [2-9]\n',
]
--- no_error_log
[error]
[alert]



=== TEST 3: the listener terminated: it comes back, the zone emptied, and a change is enforced
--- http_config
    txval_postgres "host=127.0.0.1 port=$TEST_NGINX_PG_PORT dbname=txval user=txval password=txval" timeout=$TEST_NGINX_PG_TIMEOUT;
    txval_lookup_cache t335_3:1m notify=txval;
--- config
    location /t {
        txval;
    }
    location /metrics {
        txval_metrics;
    }
    location /status {
        txval_status;
    }
--- init
::listener_up();
::outcome('t335_c') eq 'approved 0' or die "t335_c: not approved\n";
::psql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = 'txval' AND (query LIKE 'LISTEN%' OR query = 'SELECT 1')");
sleep 0.5 * $::Slow;
::listener_up();
::psql("UPDATE cards SET status = 'blocked' WHERE token = 't335_c'");
::until_outcome('card_blocked 0', 't335_c');
--- more_headers
Content-Type: application/json
--- request eval
[
::post('/t', id => ::tid('3a'), card_token => 't335_c'),
::post('/t', id => ::tid('3b'), card_token => 't335_d'),
"GET /metrics",
]
--- error_code eval
[402, 200, 200]
--- response_body_like eval
[
'^' . quotemeta(::computed(::tid('3a'), 0, 'card_blocked')) . '$',
'^' . quotemeta(::computed(::tid('3b'), 0)) . '$',
'txval_lookup_cache_total\{result="flushed"\} [2-9]\n',
]
--- no_error_log
[alert]
