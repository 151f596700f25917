# txval_postgres: every Postgres reason and risk signal with exact bodies,
# the order of the reasons when several fail at once, the effective amount
# cap (the lower of the config MAX and the merchant's max_amount),
# SQL-looking input (refused by the field rules, or legal and then only
# ever a parameter), Postgres down under fail closed and fail open,
# multi-host, unix-socket and host-name conninfos, and the directive's
# errors.
#
# Needs the suite's Postgres on 127.0.0.1:$TEST_NGINX_PG_PORT (socket in
# $TEST_NGINX_PG_DIR) with t/fixtures.sql loaded, and (one block) the
# suite's Redis on $TEST_NGINX_REDIS_PORT. make test starts both; by hand:
#   . scripts/services.sh
#   txval_pg_start 16432 $PWD/build/test-pg-16432
#   txval_pg_psql 16432 $PWD/build/test-pg-16432 < t/fixtures.sql
#   txval_redis_start 16390 $PWD/build/test-redis-16390
#   prove -I t/lib t/300-pg.t
#
# Fixture rows (t/fixtures.sql):
#   merchants  t_active (active), t_capped (active, max 10000),
#              t_usd_eur (active, {USD,EUR}), t_empty_cur (active, {}),
#              t_inactive (suspended), t_closed (closed, max 5000, {EUR}),
#              t_m.1:2-3--x (active, {EUR}), t_long_m{57} (suspended)
#   cards      t_card_us (active US), t_card_nocty (active, no country),
#              t_card_blocked (blocked US), t_card_lost (lost US),
#              t_card_stolen (stolen GB), t_card_expired (expired US),
#              t_c:1-1.x-- (blocked DE), t_long_c{121} (lost US)
#   blocked_bins  777777, 8888888, 99999999

use lib 't/lib';
# no_plan: the blocks check different numbers of things (requests,
# headers, log lines), so no plan of repeat_each() * blocks() * N fits
use Test::Txval 'no_plan';
use Txval::Nginx qw(need_services);
use Txval::Tx qw(tx_defaults tx post v computed invalid unavailable);

BEGIN {
    $ENV{TEST_NGINX_PG_PORT} ||= 16432;
    $ENV{TEST_NGINX_PG_DIR} ||= txval_repo_root() . '/build/test-pg-16432';
    $ENV{TEST_NGINX_REDIS_PORT} ||= 16390;
    $ENV{TEST_NGINX_T300} = "t300.$$." . time();
    $ENV{TEST_NGINX_LONG_M} = 't_long_' . ('m' x 57);
}

need_services(Postgres => $ENV{TEST_NGINX_PG_PORT});

log_level('info');
no_shuffle();

# the blocks call these as ::post() etc.
tx_defaults(merchant_id => 't_active', card_token => 't_card_us');

our $ID = 'must be a string of 1-64 characters from A-Z a-z 0-9 . _ : -';

run_tests();

__DATA__

=== TEST 1: approved with every piece of data present (merchant, currencies, card, country, BIN)
--- http_config
    txval_postgres "host=127.0.0.1 port=$TEST_NGINX_PG_PORT dbname=txval user=txval password=txval" timeout=$TEST_NGINX_PG_TIMEOUT;
--- config
    location /t {
        txval_amount_limit USD 1 100000;
        txval_amount_limit EUR 1 100000;
        txval;
    }
--- more_headers
Content-Type: application/json
--- request eval
[
::post('/t', id => 'tx_1', merchant_id => 't_usd_eur', card_token => 't_card_us', card_bin => '123456', country => 'US'),
::post('/t', id => 'tx_2', merchant_id => 't_capped', currency => 'EUR', amount => 4999, card_token => 't_card_expired', card_bin => '1234567', country => 'US'),
::post('/t', id => 'tx_3', merchant_id => 't_empty_cur', currency => 'EUR', card_token => 't_card_nocty', card_bin => '12345678', country => 'FR'),
]
--- error_code eval
[200, 200, 200]
--- response_headers eval
[
"X-Txval-Verdict: approved\nX-Txval-Source: computed\nContent-Type: application/json",
"X-Txval-Verdict: approved\nX-Txval-Source: computed",
"X-Txval-Verdict: approved\nX-Txval-Source: computed",
]
--- response_body eval
[
::computed('tx_1', 0),
::computed('tx_2', 0),
::computed('tx_3', 0),
]
--- no_error_log
[error]
txval: postgres



=== TEST 2: merchant_unknown: no row (case matters); it alone, no other merchant rule or cap
--- http_config
    txval_postgres "host=127.0.0.1 port=$TEST_NGINX_PG_PORT dbname=txval user=txval password=txval" timeout=$TEST_NGINX_PG_TIMEOUT;
--- config
    location /t {
        txval;
    }
--- more_headers
Content-Type: application/json
--- request eval
[
::post('/t', id => 'tx_1', merchant_id => 't_nope'),
::post('/t', id => 'tx_2', merchant_id => 'T_ACTIVE'),
::post('/t', id => 'tx_3', merchant_id => 't_nope', currency => 'GBP', amount => 9007199254740991),
::post('/t', id => 'tx_4', merchant_id => 't_nope', card_token => 't_nope'),
::post('/t', id => 'tx_5', merchant_id => 't_active'),
]
--- error_code eval
[402, 402, 402, 402, 200]
--- response_headers eval
[
"X-Txval-Verdict: declined\nX-Txval-Source: computed",
"X-Txval-Verdict: declined",
"X-Txval-Verdict: declined",
"X-Txval-Verdict: declined",
"X-Txval-Verdict: approved",
]
--- response_body eval
[
::computed('tx_1', 0, 'merchant_unknown'),
::computed('tx_2', 0, 'merchant_unknown'),
::computed('tx_3', 0, 'merchant_unknown'),
::computed('tx_4', 20, 'merchant_unknown'),
::computed('tx_5', 0),
]
--- no_error_log
[error]



=== TEST 3: merchant_inactive: any status but "active" (suspended, closed)
--- http_config
    txval_postgres "host=127.0.0.1 port=$TEST_NGINX_PG_PORT dbname=txval user=txval password=txval" timeout=$TEST_NGINX_PG_TIMEOUT;
--- config
    location /t {
        txval;
    }
--- more_headers
Content-Type: application/json
--- request eval
[
::post('/t', id => 'tx_1', merchant_id => 't_inactive'),
::post('/t', id => 'tx_2', merchant_id => 't_closed', currency => 'EUR', amount => 2499),
::post('/t', id => 'tx_3', merchant_id => 't_active'),
]
--- error_code eval
[402, 402, 200]
--- response_body eval
[
::computed('tx_1', 0, 'merchant_inactive'),
::computed('tx_2', 0, 'merchant_inactive'),
::computed('tx_3', 0),
]
--- no_error_log
[error]



=== TEST 4: merchant_limit_exceeded above max_amount (not at it); the merchant's max is a cap for the amount signal
--- http_config
    txval_postgres "host=127.0.0.1 port=$TEST_NGINX_PG_PORT dbname=txval user=txval password=txval" timeout=$TEST_NGINX_PG_TIMEOUT;
--- config
    location /t {
        txval;
    }
--- more_headers
Content-Type: application/json
--- request eval
[
::post('/t', id => 'tx_1', merchant_id => 't_capped', amount => 4999),
::post('/t', id => 'tx_2', merchant_id => 't_capped', amount => 5000),
::post('/t', id => 'tx_3', merchant_id => 't_capped', amount => 10000),
::post('/t', id => 'tx_4', merchant_id => 't_capped', amount => 10001),
::post('/t', id => 'tx_5', merchant_id => 't_active', amount => 9007199254740991),
::post('/t', id => 'tx_6', merchant_id => 't_closed', currency => 'EUR', amount => 2500),
]
--- error_code eval
[200, 200, 200, 402, 200, 402]
--- response_body eval
[
::computed('tx_1', 0),
::computed('tx_2', 30),
::computed('tx_3', 30),
::computed('tx_4', 30, 'merchant_limit_exceeded'),
::computed('tx_5', 0),
::computed('tx_6', 30, 'merchant_inactive'),
]
--- no_error_log
[error]



=== TEST 5: the effective cap is the lower of the currency's config MAX and the merchant's max_amount
--- http_config
    txval_postgres "host=127.0.0.1 port=$TEST_NGINX_PG_PORT dbname=txval user=txval password=txval" timeout=$TEST_NGINX_PG_TIMEOUT;
--- config
    location /t20000 {
        txval_amount_limit USD 1 20000;
        txval;
    }
    location /t8000 {
        txval_amount_limit USD 1 8000;
        txval;
    }
--- more_headers
Content-Type: application/json
--- request eval
[
# config 20000, merchant 10000: the merchant's is the cap
::post('/t20000', id => 'tx_1', merchant_id => 't_capped', amount => 4999),
::post('/t20000', id => 'tx_2', merchant_id => 't_capped', amount => 5000),
# config 20000, no merchant max: the config's
::post('/t20000', id => 'tx_3', merchant_id => 't_active', amount => 9999),
::post('/t20000', id => 'tx_4', merchant_id => 't_active', amount => 10000),
# config 8000, merchant 10000: the config's
::post('/t8000', id => 'tx_5', merchant_id => 't_capped', amount => 3999),
::post('/t8000', id => 'tx_6', merchant_id => 't_capped', amount => 4000),
::post('/t8000', id => 'tx_7', merchant_id => 't_capped', amount => 8001),
# unknown merchant: the config's still
::post('/t8000', id => 'tx_8', merchant_id => 't_nope', amount => 4000),
# no config limit for EUR: the merchant's alone
::post('/t8000', id => 'tx_9', merchant_id => 't_capped', currency => 'EUR', amount => 4999),
::post('/t8000', id => 'tx_10', merchant_id => 't_capped', currency => 'EUR', amount => 5000),
# neither
::post('/t8000', id => 'tx_11', merchant_id => 't_active', currency => 'EUR', amount => 9007199254740991),
]
--- error_code eval
[200, 200, 200, 200, 200, 200, 402, 402, 402, 402, 402]
--- response_body eval
[
::computed('tx_1', 0),
::computed('tx_2', 30),
::computed('tx_3', 0),
::computed('tx_4', 30),
::computed('tx_5', 0),
::computed('tx_6', 30),
::computed('tx_7', 30, 'amount_out_of_range'),
::computed('tx_8', 30, 'merchant_unknown'),
::computed('tx_9', 0, 'currency_not_supported'),
::computed('tx_10', 30, 'currency_not_supported'),
::computed('tx_11', 0, 'currency_not_supported'),
]
--- no_error_log
[error]



=== TEST 6: currency_not_allowed: the merchant's list lacks the currency; a NULL or empty list allows all
--- http_config
    txval_postgres "host=127.0.0.1 port=$TEST_NGINX_PG_PORT dbname=txval user=txval password=txval" timeout=$TEST_NGINX_PG_TIMEOUT;
--- config
    location /t {
        txval;
    }
--- more_headers
Content-Type: application/json
--- request eval
[
::post('/t', id => 'tx_1', merchant_id => 't_usd_eur', currency => 'USD'),
::post('/t', id => 'tx_2', merchant_id => 't_usd_eur', currency => 'EUR'),
::post('/t', id => 'tx_3', merchant_id => 't_usd_eur', currency => 'GBP'),
::post('/t', id => 'tx_4', merchant_id => 't_empty_cur', currency => 'GBP'),
::post('/t', id => 'tx_5', merchant_id => 't_active', currency => 'GBP'),
::post('/t', id => 'tx_6', merchant_id => 't_closed', currency => 'USD'),
::post('/t', id => 'tx_7', merchant_id => 't_nope', currency => 'GBP'),
]
--- error_code eval
[200, 200, 402, 200, 200, 402, 402]
--- response_body eval
[
::computed('tx_1', 0),
::computed('tx_2', 0),
::computed('tx_3', 0, 'currency_not_allowed'),
::computed('tx_4', 0),
::computed('tx_5', 0),
::computed('tx_6', 0, 'merchant_inactive', 'currency_not_allowed'),
::computed('tx_7', 0, 'merchant_unknown'),
]
--- no_error_log
[error]



=== TEST 7: card_blocked for blocked, lost, stolen; not for another status
--- http_config
    txval_postgres "host=127.0.0.1 port=$TEST_NGINX_PG_PORT dbname=txval user=txval password=txval" timeout=$TEST_NGINX_PG_TIMEOUT;
--- config
    location /t {
        txval;
    }
--- more_headers
Content-Type: application/json
--- request eval
[
::post('/t', id => 'tx_1', card_token => 't_card_blocked'),
::post('/t', id => 'tx_2', card_token => 't_card_lost'),
::post('/t', id => 'tx_3', card_token => 't_card_stolen'),
::post('/t', id => 'tx_4', card_token => 't_card_expired'),
::post('/t', id => 'tx_5', card_token => 't_card_us'),
]
--- error_code eval
[402, 402, 402, 200, 200]
--- response_body eval
[
::computed('tx_1', 0, 'card_blocked'),
::computed('tx_2', 0, 'card_blocked'),
::computed('tx_3', 0, 'card_blocked'),
::computed('tx_4', 0),
::computed('tx_5', 0),
]
--- no_error_log
[error]



=== TEST 8: bin_blocked when the first 6, 7 or 8 digits of card_bin are a blocked BIN, not otherwise
--- http_config
    txval_postgres "host=127.0.0.1 port=$TEST_NGINX_PG_PORT dbname=txval user=txval password=txval" timeout=$TEST_NGINX_PG_TIMEOUT;
--- config
    location /t {
        txval;
    }
--- more_headers
Content-Type: application/json
--- request eval
my @bins = (
    # blocked: 777777 (6), 8888888 (7), 99999999 (8)
    '777777', '7777770', '77777799', '8888888', '88888881', '99999999',
    # not blocked
    '777778', '7777787', '17777770', '888888', '8888889', '88888811',
    '999999', '9999999', '99999998', '123456',
);
my $i = 0;
[ (map { $i++; ::post('/t', id => "tx_$i", card_bin => $_) } @bins),
  ::post('/t', id => 'tx_none') ]
--- error_code eval
[(402) x 6, (200) x 11]
--- response_body eval
[ (map { ::computed("tx_$_", 0, 'bin_blocked') } 1 .. 6),
  (map { ::computed("tx_$_", 0) } 7 .. 16),
  ::computed('tx_none', 0) ]
--- no_error_log
[error]



=== TEST 9: risk +20 when the card token has no row; no country signal for an unknown card
--- http_config
    txval_postgres "host=127.0.0.1 port=$TEST_NGINX_PG_PORT dbname=txval user=txval password=txval" timeout=$TEST_NGINX_PG_TIMEOUT;
--- config
    location /t {
        txval;
    }
    location /t50 {
        txval_risk_threshold 50;
        txval;
    }
--- more_headers
Content-Type: application/json
--- request eval
[
::post('/t', id => 'tx_1', card_token => 't_card_nope'),
::post('/t', id => 'tx_2', card_token => 't_card_nope', country => 'FR'),
::post('/t', id => 'tx_3', card_token => 't_card_nope', merchant_id => 't_capped', amount => 5000),
::post('/t50', id => 'tx_4', card_token => 't_card_nope', merchant_id => 't_capped', amount => 5000),
::post('/t50', id => 'tx_5', card_token => 't_card_nope', merchant_id => 't_capped', amount => 4999),
::post('/t', id => 'tx_6', card_token => 't_card_us'),
]
--- error_code eval
[200, 200, 200, 402, 200, 200]
--- response_body eval
[
::computed('tx_1', 20),
::computed('tx_2', 20),
::computed('tx_3', 50),
::computed('tx_4', 50, 'risk_too_high'),
::computed('tx_5', 20),
::computed('tx_6', 0),
]
--- no_error_log
[error]



=== TEST 10: risk +30 when the country differs from the card's; nothing when either is unknown
--- http_config
    txval_postgres "host=127.0.0.1 port=$TEST_NGINX_PG_PORT dbname=txval user=txval password=txval" timeout=$TEST_NGINX_PG_TIMEOUT;
--- config
    location /t {
        txval;
    }
--- more_headers
Content-Type: application/json
--- request eval
[
::post('/t', id => 'tx_1', card_token => 't_card_us', country => 'US'),
::post('/t', id => 'tx_2', card_token => 't_card_us', country => 'FR'),
::post('/t', id => 'tx_3', card_token => 't_card_us'),
::post('/t', id => 'tx_4', card_token => 't_card_nocty', country => 'FR'),
::post('/t', id => 'tx_5', card_token => 't_card_nocty'),
::post('/t', id => 'tx_6', card_token => 't_card_stolen', country => 'GB'),
::post('/t', id => 'tx_7', card_token => 't_card_stolen', country => 'US'),
::post('/t', id => 'tx_8', card_token => 't_card_us', country => 'FR', merchant_id => 't_capped', amount => 5000),
]
--- error_code eval
[200, 200, 200, 200, 200, 402, 402, 200]
--- response_body eval
[
::computed('tx_1', 0),
::computed('tx_2', 30),
::computed('tx_3', 0),
::computed('tx_4', 0),
::computed('tx_5', 0),
::computed('tx_6', 0, 'card_blocked'),
::computed('tx_7', 30, 'card_blocked'),
::computed('tx_8', 60),
]
--- no_error_log
[error]



=== TEST 11: risk_too_high from Postgres signals alone: score 60 against thresholds 60 and 61
--- http_config
    txval_postgres "host=127.0.0.1 port=$TEST_NGINX_PG_PORT dbname=txval user=txval password=txval" timeout=$TEST_NGINX_PG_TIMEOUT;
--- config
    location /t60 {
        txval_risk_threshold 60;
        txval;
    }
    location /t61 {
        txval_risk_threshold 61;
        txval;
    }
--- more_headers
Content-Type: application/json
--- request eval
[
::post('/t60', id => 'tx_1', merchant_id => 't_capped', amount => 5000, card_token => 't_card_us', country => 'FR'),
::post('/t61', id => 'tx_2', merchant_id => 't_capped', amount => 5000, card_token => 't_card_us', country => 'FR'),
::post('/t60', id => 'tx_3', merchant_id => 't_capped', amount => 5000, card_token => 't_card_us', country => 'US'),
]
--- error_code eval
[402, 200, 200]
--- response_body eval
[
::computed('tx_1', 60, 'risk_too_high'),
::computed('tx_2', 60),
::computed('tx_3', 30),
]
--- no_error_log
[error]



=== TEST 12: several rules fail at once: every reason, in SPEC order
--- http_config
    txval_postgres "host=127.0.0.1 port=$TEST_NGINX_PG_PORT dbname=txval user=txval password=txval" timeout=$TEST_NGINX_PG_TIMEOUT;
--- config
    location /t {
        txval_amount_limit USD 1 5999;
        txval_risk_threshold 30;
        txval_decline_status 422;
        txval;
    }
--- more_headers
Content-Type: application/json
--- request eval
[
# t_closed: closed, max 5000, {EUR}; t_card_stolen: GB
::post('/t', id => 'tx_1', amount => 6000, currency => 'USD', merchant_id => 't_closed', card_token => 't_card_stolen', card_bin => '77777700', country => 'US'),
# unknown merchant: no merchant rule but merchant_unknown, no merchant cap
::post('/t', id => 'tx_2', amount => 9007199254740991, currency => 'GBP', merchant_id => 't_nope', card_token => 't_card_lost', card_bin => '99999999', country => 'FR'),
]
--- error_code eval
[422, 422]
--- response_body eval
[
::computed('tx_1', 60, qw(amount_out_of_range merchant_inactive merchant_limit_exceeded currency_not_allowed card_blocked bin_blocked risk_too_high)),
::computed('tx_2', 30, qw(currency_not_supported merchant_unknown card_blocked bin_blocked risk_too_high)),
]
--- no_error_log
[error]



=== TEST 13: Postgres signals add up with velocity (Redis): 30 + 30 + 20; velocity_exceeded sits between bin_blocked and risk_too_high
--- http_config
    txval_postgres "host=127.0.0.1 port=$TEST_NGINX_PG_PORT dbname=txval user=txval password=txval" timeout=$TEST_NGINX_PG_TIMEOUT;
    txval_redis 127.0.0.1:$TEST_NGINX_REDIS_PORT prefix=$TEST_NGINX_T300.13: timeout=$TEST_NGINX_REDIS_TIMEOUT;
--- config
    location /t {
        txval_velocity 1 1h;
        txval;
    }
--- more_headers
Content-Type: application/json
--- request eval
[
::post('/t', id => 'tx_1', merchant_id => 't_capped', amount => 5000, card_token => 't_card_us', country => 'FR'),
::post('/t', id => 'tx_2', merchant_id => 't_capped', amount => 100, card_token => 't_card_us', country => 'US'),
::post('/t', id => 'tx_3', merchant_id => 't_closed', currency => 'EUR', amount => 6000, card_token => 't_card_stolen', card_bin => '777777', country => 'US'),
::post('/t', id => 'tx_4', merchant_id => 't_closed', currency => 'EUR', amount => 6000, card_token => 't_card_stolen', card_bin => '777777', country => 'US'),
]
--- error_code eval
[402, 402, 402, 402]
--- response_body eval
[
::computed('tx_1', 80, 'risk_too_high'),
::computed('tx_2', 20, 'velocity_exceeded'),
::computed('tx_3', 80, qw(merchant_inactive merchant_limit_exceeded card_blocked bin_blocked risk_too_high)),
::computed('tx_4', 80, qw(merchant_inactive merchant_limit_exceeded card_blocked bin_blocked velocity_exceeded risk_too_high)),
]
--- no_error_log
[error]



=== TEST 14: SQL-looking values the field rules refuse: 400 before any lookup
--- http_config
    txval_postgres "host=127.0.0.1 port=$TEST_NGINX_PG_PORT dbname=txval user=txval password=txval" timeout=$TEST_NGINX_PG_TIMEOUT;
--- config
    location /t {
        txval;
    }
--- more_headers
Content-Type: application/json
--- request eval
[
::post('/t', merchant_id => "t_active'--"),
::post('/t', merchant_id => '1;DROP'),
::post('/t', merchant_id => "x' OR '1'='1"),
::post('/t', merchant_id => 't_active\\u0027--'),
::post('/t', merchant_id => 't_active;DROP TABLE merchants'),
::post('/t', card_token => "x'); DROP TABLE cards;--"),
::post('/t', card_token => 't_card_us/**/'),
::post('/t', card_bin => "777777' OR '1'='1"),
::post('/t', card_bin => '777777;'),
::post('/t', country => "U'"),
::post('/t', currency => "US'"),
::post('/t', id => '1;DROP TABLE blocked_bins'),
]
--- error_code eval
[(400) x 12]
--- response_body eval
[
(map { ::invalid('merchant_id', "merchant_id $::ID") } 1 .. 5),
(map { ::invalid('card_token', 'card_token must be a string of 1-128 characters from A-Z a-z 0-9 . _ : -') } 1 .. 2),
(map { ::invalid('card_bin', 'card_bin must be a string of 6-8 digits') } 1 .. 2),
::invalid('country', 'country must be 2 uppercase letters (ISO 3166-1 alpha-2)'),
::invalid('currency', 'currency must be 3 uppercase letters (ISO 4217)'),
::invalid('id', "id $::ID"),
]
--- error_log
txval: refused: invalid_field field
--- no_error_log
[error]



=== TEST 15: SQL-looking values the field rules allow are only ever parameters: exact matches, no wildcard, no comment
--- http_config
    txval_postgres "host=127.0.0.1 port=$TEST_NGINX_PG_PORT dbname=txval user=txval password=txval" timeout=$TEST_NGINX_PG_TIMEOUT;
--- config
    location /t {
        txval;
    }
--- more_headers
Content-Type: application/json
--- request eval
[
::post('/t', id => 'tx_1', merchant_id => 'x:1-1'),
::post('/t', id => 'tx_2', merchant_id => 't_active--'),
::post('/t', id => 'tx_3', merchant_id => 't_activ_'),
::post('/t', id => 'tx_4', merchant_id => 't.active'),
::post('/t', id => 'tx_5', merchant_id => 't_m.1:2-3--x', currency => 'EUR'),
::post('/t', id => 'tx_6', merchant_id => 't_m.1:2-3--x', currency => 'USD'),
::post('/t', id => 'tx_7', merchant_id => 't_m.1:2-3-'),
::post('/t', id => 'tx_8', merchant_id => $ENV{TEST_NGINX_LONG_M}),
::post('/t', id => 'tx_9', merchant_id => substr($ENV{TEST_NGINX_LONG_M}, 0, 63)),
::post('/t', id => 'tx_10', card_token => 't_card_u_'),
::post('/t', id => 'tx_11', card_token => 't_c:1-1.x--', country => 'US'),
::post('/t', id => 'tx_12', card_token => 't_long_' . ('c' x 121)),
::post('/t', id => 'tx_13', card_token => 't_long_' . ('c' x 120)),
::post('/t', id => 'x:1-1--', merchant_id => 't_usd_eur', currency => 'ALL'),
::post('/t', id => 'DROP.TABLE:merchants--', currency => 'ALL', country => 'OR'),
]
--- error_code eval
[402, 402, 402, 402, 200, 402, 402, 402, 402, 200, 402, 402, 200, 402, 200]
--- response_body eval
[
::computed('tx_1', 0, 'merchant_unknown'),
::computed('tx_2', 0, 'merchant_unknown'),
::computed('tx_3', 0, 'merchant_unknown'),
::computed('tx_4', 0, 'merchant_unknown'),
::computed('tx_5', 0),
::computed('tx_6', 0, 'currency_not_allowed'),
::computed('tx_7', 0, 'merchant_unknown'),
::computed('tx_8', 0, 'merchant_inactive'),
::computed('tx_9', 0, 'merchant_unknown'),
::computed('tx_10', 20),
::computed('tx_11', 30, 'card_blocked'),
::computed('tx_12', 0, 'card_blocked'),
::computed('tx_13', 20),
::computed('x:1-1--', 0, 'currency_not_allowed'),
::computed('DROP.TABLE:merchants--', 30),
]
--- no_error_log
[error]



=== TEST 16: after the hostile input: every table is intact (merchants, cards, blocked_bins)
--- http_config
    txval_postgres "host=127.0.0.1 port=$TEST_NGINX_PG_PORT dbname=txval user=txval password=txval" timeout=$TEST_NGINX_PG_TIMEOUT;
--- config
    location /t {
        txval;
    }
--- more_headers
Content-Type: application/json
--- request eval
[
::post('/t', id => 'tx_1', merchant_id => 't_active', card_token => 't_card_us', country => 'FR'),
::post('/t', id => 'tx_2', merchant_id => 't_usd_eur', currency => 'GBP', card_token => 't_card_blocked', card_bin => '99999999'),
::post('/t', id => 'tx_3', merchant_id => 't_capped', amount => 10001, card_bin => '8888888'),
::post('/t', id => 'tx_4', merchant_id => 'm_acme', card_token => 'tok_lost', card_bin => '666666'),
]
--- error_code eval
[200, 402, 402, 402]
--- response_body eval
[
::computed('tx_1', 30),
::computed('tx_2', 0, 'currency_not_allowed', 'card_blocked', 'bin_blocked'),
::computed('tx_3', 30, 'merchant_limit_exceeded', 'bin_blocked'),
::computed('tx_4', 0, 'card_blocked', 'bin_blocked'),
]
--- no_error_log
[error]



=== TEST 17: a verdict with Postgres data is cached: the replay is answered from the zone
--- http_config
    txval_cache_zone t300:1m;
    txval_postgres "host=127.0.0.1 port=$TEST_NGINX_PG_PORT dbname=txval user=txval password=txval" timeout=$TEST_NGINX_PG_TIMEOUT;
--- config
    location /t {
        txval;
    }
--- more_headers
Content-Type: application/json
--- request eval
[
::post('/t', id => 'tx_1', card_token => 't_card_lost', country => 'FR'),
::post('/t', id => 'tx_1', card_token => 't_card_lost', country => 'FR'),
]
--- error_code eval
[402, 402]
--- response_body eval
[
::computed('tx_1', 30, 'card_blocked'),
qq({"id":"tx_1","verdict":"declined","reasons":["card_blocked"],"risk_score":30,"source":"shm"}\n),
]
--- no_error_log
[error]



=== TEST 18: Postgres down, fail closed (default): 503 backend_unavailable + Retry-After: 1; the password is not logged
--- http_config
    txval_postgres "host=127.0.0.1 port=$TEST_NGINX_RAND_PORT_1 dbname=txval user=txval password=s3cr3t_pw";
--- config
    location /t {
        txval;
    }
--- more_headers
Content-Type: application/json
--- request eval
::post('/t', id => 'tx_1', merchant_id => 't_nope')
--- error_code: 503
--- response_headers
Retry-After: 1
Content-Type: application/json
!X-Txval-Verdict
--- response_body eval
::unavailable()
--- error_log
txval: postgres: connect failed: Connection refused
txval: refused: backend_unavailable
--- no_error_log
s3cr3t_pw
[alert]



=== TEST 19: Postgres down, fail closed: again (failing fast), whatever the config rules say; field errors stay 400
--- http_config
    txval_postgres "host=127.0.0.1 port=$TEST_NGINX_RAND_PORT_1 dbname=txval user=txval password=txval" timeout=$TEST_NGINX_PG_TIMEOUT;
--- config
    location /t {
        txval_amount_limit USD 1 100000;
        txval;
    }
--- more_headers
Content-Type: application/json
--- request eval
[
::post('/t', id => 'tx_1'),
::post('/t', id => 'tx_2'),
::post('/t', id => 'tx_3', currency => 'GBP'),
::post('/t', id => 'tx_4', country => 'usa'),
]
--- error_code eval
[503, 503, 503, 400]
--- response_headers eval
[
"Retry-After: 1\n!X-Txval-Verdict",
"Retry-After: 1\n!X-Txval-Verdict",
"Retry-After: 1\n!X-Txval-Verdict",
"!Retry-After",
]
--- response_body eval
[
::unavailable(),
::unavailable(),
::unavailable(),
::invalid('country', 'country must be 2 uppercase letters (ISO 3166-1 alpha-2)'),
]
--- error_log
txval: refused:
--- no_error_log
[alert]



=== TEST 20: Postgres down, fail open: only the config rules, "degraded":true, nothing cached
--- http_config
    txval_cache_zone t300:1m;
    txval_postgres "host=127.0.0.1 port=$TEST_NGINX_RAND_PORT_1 dbname=txval user=txval password=txval" timeout=$TEST_NGINX_PG_TIMEOUT;
--- config
    location /t {
        txval_fail_mode open;
        txval_amount_limit USD 1 1000;
        txval;
    }
--- more_headers
Content-Type: application/json
--- request eval
[
::post('/t', id => 'tx_1', merchant_id => 't_nope', card_token => 't_card_nope', amount => 600, country => 'FR'),
::post('/t', id => 'tx_1', merchant_id => 't_nope', card_token => 't_card_nope', amount => 600, country => 'FR'),
::post('/t', id => 'tx_2', merchant_id => 't_closed', card_token => 't_card_stolen', card_bin => '777777', amount => 100, country => 'US'),
::post('/t', id => 'tx_3', amount => 2000),
::post('/t', id => 'tx_4', currency => 'GBP', merchant_id => 't_usd_eur'),
]
--- error_code eval
[200, 200, 200, 402, 402]
--- response_headers eval
[
"X-Txval-Verdict: approved\nX-Txval-Source: computed\n!Retry-After",
"X-Txval-Verdict: approved\nX-Txval-Source: computed",
"X-Txval-Verdict: approved\nX-Txval-Source: computed",
"X-Txval-Verdict: declined\nX-Txval-Source: computed",
"X-Txval-Verdict: declined\nX-Txval-Source: computed",
]
--- response_body eval
[
::v('tx_1', 'computed', 'approved', [], 30, 'degraded'),
::v('tx_1', 'computed', 'approved', [], 30, 'degraded'),
::v('tx_2', 'computed', 'approved', [], 0, 'degraded'),
::v('tx_3', 'computed', 'declined', ['amount_out_of_range'], 30, 'degraded'),
::v('tx_4', 'computed', 'declined', ['currency_not_supported'], 0, 'degraded'),
]
--- no_error_log
backend_unavailable
[alert]



=== TEST 21: fail open with Postgres up: the Postgres rules apply, no "degraded"
--- http_config
    txval_postgres "host=127.0.0.1 port=$TEST_NGINX_PG_PORT dbname=txval user=txval password=txval" timeout=$TEST_NGINX_PG_TIMEOUT;
--- config
    location /t {
        txval_fail_mode open;
        txval;
    }
--- more_headers
Content-Type: application/json
--- request eval
[
::post('/t', id => 'tx_1', merchant_id => 't_nope', card_token => 't_card_nope'),
::post('/t', id => 'tx_2'),
]
--- error_code eval
[402, 200]
--- response_body eval
[
::computed('tx_1', 20, 'merchant_unknown'),
::computed('tx_2', 0),
]
--- no_error_log
[error]



=== TEST 22: multi-host conninfo: the first host refuses, libpq goes on to the second
--- http_config
    txval_postgres "host=127.0.0.1,127.0.0.1 port=$TEST_NGINX_RAND_PORT_1,$TEST_NGINX_PG_PORT dbname=txval user=txval password=txval" timeout=$TEST_NGINX_PG_TIMEOUT;
--- config
    location /t {
        txval;
    }
--- more_headers
Content-Type: application/json
--- request eval
[
::post('/t', id => 'tx_1', card_token => 't_card_stolen', country => 'US'),
::post('/t', id => 'tx_2', merchant_id => 't_nope'),
]
--- error_code eval
[402, 402]
--- response_body eval
[
::computed('tx_1', 30, 'card_blocked'),
::computed('tx_2', 0, 'merchant_unknown'),
]
--- no_error_log
[error]



=== TEST 23: unix socket conninfo (host = the socket directory)
--- http_config
    txval_postgres "host=$TEST_NGINX_PG_DIR port=$TEST_NGINX_PG_PORT dbname=txval user=txval" pool=1 timeout=1s;
--- config
    location /t {
        txval;
    }
--- more_headers
Content-Type: application/json
--- request eval
[
::post('/t', id => 'tx_1', merchant_id => 't_inactive'),
::post('/t', id => 'tx_2'),
]
--- error_code eval
[402, 200]
--- response_body eval
[
::computed('tx_1', 0, 'merchant_inactive'),
::computed('tx_2', 0),
]
--- no_error_log
[error]



=== TEST 24: a host name is resolved when the configuration is read (localhost); edge values pool=1024 timeout=5s
--- http_config
    txval_postgres "host=localhost port=$TEST_NGINX_PG_PORT dbname=txval user=txval password=txval" pool=1024 timeout=5s;
--- config
    location /t {
        txval;
    }
--- more_headers
Content-Type: application/json
--- request eval
::post('/t', id => 'tx_1', merchant_id => 't_usd_eur', currency => 'GBP')
--- error_code: 402
--- response_body eval
::computed('tx_1', 0, 'currency_not_allowed')
--- no_error_log
[error]



=== TEST 25: txval_postgres: pool=0
--- http_config
    txval_postgres "host=127.0.0.1" pool=0;
--- config
--- must_die
--- error_log
[emerg]
invalid parameter "pool=0" in "txval_postgres" directive



=== TEST 26: txval_postgres: pool=1025
--- http_config
    txval_postgres "host=127.0.0.1" pool=1025;
--- config
--- must_die
--- error_log
invalid parameter "pool=1025" in "txval_postgres" directive



=== TEST 27: txval_postgres: pool=x
--- http_config
    txval_postgres "host=127.0.0.1" pool=x;
--- config
--- must_die
--- error_log
invalid parameter "pool=x" in "txval_postgres" directive



=== TEST 28: txval_postgres: timeout=0
--- http_config
    txval_postgres "host=127.0.0.1" timeout=0;
--- config
--- must_die
--- error_log
invalid parameter "timeout=0" in "txval_postgres" directive



=== TEST 29: txval_postgres: timeout=soon
--- http_config
    txval_postgres "host=127.0.0.1" timeout=soon;
--- config
--- must_die
--- error_log
invalid parameter "timeout=soon" in "txval_postgres" directive



=== TEST 30: txval_postgres: an unknown parameter
--- http_config
    txval_postgres "host=127.0.0.1" pool=2 idle=1s;
--- config
--- must_die
--- error_log
invalid parameter "idle=1s" in "txval_postgres" directive



=== TEST 31: txval_postgres: an unknown conninfo keyword
--- http_config
    txval_postgres "host=127.0.0.1 bogus=1";
--- config
--- must_die
--- error_log
[emerg]
invalid connection string in "txval_postgres" directive: invalid connection option "..."



=== TEST 32: txval_postgres: a broken conninfo, and its password is not logged
--- http_config
    txval_postgres "host=127.0.0.1 password='s3cr3t_pw";
--- config
--- must_die
--- error_log
invalid connection string in "txval_postgres" directive:
--- no_error_log
s3cr3t_pw



=== TEST 33: txval_postgres: a host that does not resolve
--- http_config
    txval_postgres "host=no-such-host.invalid dbname=txval";
--- config
--- must_die
--- error_log
[emerg]
host "no-such-host.invalid" in "txval_postgres" directive could not be resolved



=== TEST 34: txval_postgres: one host of a list does not resolve
--- http_config
    txval_postgres "host=127.0.0.1,no-such-host.invalid port=1,2";
--- config
--- must_die
--- error_log
host "no-such-host.invalid" in "txval_postgres" directive could not be resolved



=== TEST 35: txval_postgres: duplicate
--- http_config
    txval_postgres "host=127.0.0.1";
    txval_postgres "host=127.0.0.1";
--- config
--- must_die
--- error_log
"txval_postgres" directive is duplicate



=== TEST 36: txval_postgres: not allowed in server
--- config
    txval_postgres "host=127.0.0.1";
--- must_die
--- error_log
"txval_postgres" directive is not allowed here



=== TEST 37: txval_postgres: not allowed in location
--- config
    location /t {
        txval_postgres "host=127.0.0.1";
        txval;
    }
--- must_die
--- error_log
"txval_postgres" directive is not allowed here



=== TEST 38: txval_postgres: no argument
--- http_config
    txval_postgres;
--- config
--- must_die
--- error_log
invalid number of arguments in "txval_postgres" directive
