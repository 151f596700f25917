# Directives: where they are allowed, how they are inherited and merged,
# their defaults, and every value that nginx -t must refuse (with a message
# that names the directive and the value).

use lib 't/lib';
# no_plan: the blocks check different numbers of things (requests,
# headers, log lines), so no plan of repeat_each() * blocks() * N fits
use Test::Txval 'no_plan';

log_level('info');
no_shuffle();
run_tests();

__DATA__

=== TEST 1: txval at location level, no other directive: approved
--- config
    location /t {
        txval;
    }
--- more_headers
Content-Type: application/json
--- request
POST /t
{"id":"tx_1","amount":1000,"currency":"USD","merchant_id":"m_1","card_token":"tok_1"}
--- error_code: 200
--- response_headers
Content-Type: application/json
X-Txval-Verdict: approved
X-Txval-Source: computed
--- response_body
{"id":"tx_1","verdict":"approved","reasons":[],"risk_score":0,"source":"computed"}
--- no_error_log
[error]



=== TEST 2: a location without txval is not touched by the module
--- config
    txval_amount_limit USD 1 10;
    txval_risk_threshold 0;
    location /plain {
        return 200 "plain\n";
    }
--- more_headers
Content-Type: application/json
--- request
POST /plain
{"id":"tx_1","amount":1000,"currency":"EUR","merchant_id":"m_1","card_token":"tok_1"}
--- error_code: 200
--- response_headers
!X-Txval-Verdict
!X-Txval-Source
--- response_body
plain
--- no_error_log
[error]
txval: refused



=== TEST 3: defaults: no limit means every currency, threshold 70, decline status 402
--- config
    location /t {
        txval;
    }
    location /limited {
        txval_amount_limit USD 1 1000;
        txval;
    }
--- more_headers
Content-Type: application/json
--- request eval
[
'POST /t
{"id":"tx_1","amount":9007199254740991,"currency":"XTS","merchant_id":"m_1","card_token":"tok_1"}',
'POST /limited
{"id":"tx_2","amount":1000,"currency":"USD","merchant_id":"m_1","card_token":"tok_1"}',
'POST /limited
{"id":"tx_3","amount":1000,"currency":"EUR","merchant_id":"m_1","card_token":"tok_1"}',
]
--- error_code eval
[200, 200, 402]
--- response_body eval
[
qq!{"id":"tx_1","verdict":"approved","reasons":[],"risk_score":0,"source":"computed"}\n!,
qq!{"id":"tx_2","verdict":"approved","reasons":[],"risk_score":30,"source":"computed"}\n!,
qq!{"id":"tx_3","verdict":"declined","reasons":["currency_not_supported"],"risk_score":0,"source":"computed"}\n!,
]
--- no_error_log
[error]



=== TEST 4: all directives at http level apply to a location
--- http_config
    txval_amount_limit USD 100 100000;
    txval_risk_threshold 30;
    txval_decline_status 422;
--- config
    location /t {
        txval;
    }
--- more_headers
Content-Type: application/json
--- request eval
[
'POST /t
{"id":"tx_1","amount":49999,"currency":"USD","merchant_id":"m_1","card_token":"tok_1"}',
'POST /t
{"id":"tx_2","amount":50000,"currency":"USD","merchant_id":"m_1","card_token":"tok_1"}',
'POST /t
{"id":"tx_3","amount":99,"currency":"USD","merchant_id":"m_1","card_token":"tok_1"}',
'POST /t
{"id":"tx_4","amount":100,"currency":"EUR","merchant_id":"m_1","card_token":"tok_1"}',
]
--- error_code eval
[200, 422, 422, 422]
--- response_body eval
[
qq!{"id":"tx_1","verdict":"approved","reasons":[],"risk_score":0,"source":"computed"}\n!,
qq!{"id":"tx_2","verdict":"declined","reasons":["risk_too_high"],"risk_score":30,"source":"computed"}\n!,
qq!{"id":"tx_3","verdict":"declined","reasons":["amount_out_of_range"],"risk_score":0,"source":"computed"}\n!,
qq!{"id":"tx_4","verdict":"declined","reasons":["currency_not_supported"],"risk_score":0,"source":"computed"}\n!,
]
--- no_error_log
[error]



=== TEST 5: all directives at server level apply to a location
--- config
    txval_amount_limit EUR 10 1000;
    txval_risk_threshold 30;
    txval_decline_status 403;
    location /t {
        txval;
    }
--- more_headers
Content-Type: application/json
--- request eval
[
'POST /t
{"id":"tx_1","amount":499,"currency":"EUR","merchant_id":"m_1","card_token":"tok_1"}',
'POST /t
{"id":"tx_2","amount":500,"currency":"EUR","merchant_id":"m_1","card_token":"tok_1"}',
'POST /t
{"id":"tx_3","amount":100,"currency":"USD","merchant_id":"m_1","card_token":"tok_1"}',
]
--- error_code eval
[200, 403, 403]
--- response_body eval
[
qq!{"id":"tx_1","verdict":"approved","reasons":[],"risk_score":0,"source":"computed"}\n!,
qq!{"id":"tx_2","verdict":"declined","reasons":["risk_too_high"],"risk_score":30,"source":"computed"}\n!,
qq!{"id":"tx_3","verdict":"declined","reasons":["currency_not_supported"],"risk_score":0,"source":"computed"}\n!,
]
--- no_error_log
[error]



=== TEST 6: merge: each level that sets limits replaces the list; threshold and status are inherited
--- http_config
    txval_amount_limit USD 1 1000;
    txval_risk_threshold 30;
    txval_decline_status 422;
--- config
    txval_amount_limit EUR 1 1000;

    location /inherit {
        txval;
    }

    location /own {
        txval_amount_limit GBP 1 1000;
        txval_amount_limit JPY 1 100;
        txval;
    }

    location /outer {
        txval_amount_limit CHF 1 100;

        location /outer/inner {
            txval;
        }
    }
--- more_headers
Content-Type: application/json
--- request eval
[
# server's EUR replaced http's USD
'POST /inherit
{"id":"tx_1","amount":100,"currency":"USD","merchant_id":"m_1","card_token":"tok_1"}',
'POST /inherit
{"id":"tx_2","amount":100,"currency":"EUR","merchant_id":"m_1","card_token":"tok_1"}',
# threshold 30 and status 422 from http
'POST /inherit
{"id":"tx_3","amount":500,"currency":"EUR","merchant_id":"m_1","card_token":"tok_1"}',
# location's GBP and JPY replaced server's EUR
'POST /own
{"id":"tx_4","amount":100,"currency":"EUR","merchant_id":"m_1","card_token":"tok_1"}',
'POST /own
{"id":"tx_5","amount":100,"currency":"GBP","merchant_id":"m_1","card_token":"tok_1"}',
'POST /own
{"id":"tx_6","amount":101,"currency":"JPY","merchant_id":"m_1","card_token":"tok_1"}',
'POST /own
{"id":"tx_7","amount":49,"currency":"JPY","merchant_id":"m_1","card_token":"tok_1"}',
# nested location inherits the outer location's list
'POST /outer/inner
{"id":"tx_8","amount":49,"currency":"CHF","merchant_id":"m_1","card_token":"tok_1"}',
'POST /outer/inner
{"id":"tx_9","amount":49,"currency":"EUR","merchant_id":"m_1","card_token":"tok_1"}',
]
--- error_code eval
[422, 200, 422, 422, 200, 422, 200, 200, 422]
--- response_body eval
[
qq!{"id":"tx_1","verdict":"declined","reasons":["currency_not_supported"],"risk_score":0,"source":"computed"}\n!,
qq!{"id":"tx_2","verdict":"approved","reasons":[],"risk_score":0,"source":"computed"}\n!,
qq!{"id":"tx_3","verdict":"declined","reasons":["risk_too_high"],"risk_score":30,"source":"computed"}\n!,
qq!{"id":"tx_4","verdict":"declined","reasons":["currency_not_supported"],"risk_score":0,"source":"computed"}\n!,
qq!{"id":"tx_5","verdict":"approved","reasons":[],"risk_score":0,"source":"computed"}\n!,
qq!{"id":"tx_6","verdict":"declined","reasons":["amount_out_of_range","risk_too_high"],"risk_score":30,"source":"computed"}\n!,
qq!{"id":"tx_7","verdict":"approved","reasons":[],"risk_score":0,"source":"computed"}\n!,
qq!{"id":"tx_8","verdict":"approved","reasons":[],"risk_score":0,"source":"computed"}\n!,
qq!{"id":"tx_9","verdict":"declined","reasons":["currency_not_supported"],"risk_score":0,"source":"computed"}\n!,
]
--- no_error_log
[error]



=== TEST 7: merge: threshold and status set in a location override the inherited ones
--- http_config
    txval_risk_threshold 30;
    txval_decline_status 422;
--- config
    txval_amount_limit USD 1 1000;

    location /lenient {
        txval_risk_threshold 31;
        txval;
    }

    location /strict {
        txval_risk_threshold 0;
        txval_decline_status 409;
        txval;
    }
--- more_headers
Content-Type: application/json
--- request eval
[
'POST /lenient
{"id":"tx_1","amount":1000,"currency":"USD","merchant_id":"m_1","card_token":"tok_1"}',
'POST /lenient
{"id":"tx_2","amount":1000,"currency":"EUR","merchant_id":"m_1","card_token":"tok_1"}',
'POST /strict
{"id":"tx_3","amount":1,"currency":"USD","merchant_id":"m_1","card_token":"tok_1"}',
]
--- error_code eval
[200, 422, 409]
--- response_body eval
[
qq!{"id":"tx_1","verdict":"approved","reasons":[],"risk_score":30,"source":"computed"}\n!,
qq!{"id":"tx_2","verdict":"declined","reasons":["currency_not_supported"],"risk_score":0,"source":"computed"}\n!,
qq!{"id":"tx_3","verdict":"declined","reasons":["risk_too_high"],"risk_score":0,"source":"computed"}\n!,
]
--- no_error_log
[error]



=== TEST 8: the edge values are accepted: threshold 0 and 100, status 400 and 599, amounts 1 and 2^53-1, min = max
--- config
    location /a {
        txval_risk_threshold 100;
        txval_decline_status 599;
        txval_amount_limit USD 1 9007199254740991;
        txval_amount_limit EUR 500 500;
        txval;
    }

    location /b {
        txval_risk_threshold 0;
        txval_decline_status 400;
        txval;
    }
--- more_headers
Content-Type: application/json
--- request eval
[
'POST /a
{"id":"tx_1","amount":9007199254740991,"currency":"USD","merchant_id":"m_1","card_token":"tok_1"}',
'POST /a
{"id":"tx_2","amount":500,"currency":"EUR","merchant_id":"m_1","card_token":"tok_1"}',
'POST /a
{"id":"tx_3","amount":501,"currency":"EUR","merchant_id":"m_1","card_token":"tok_1"}',
'POST /b
{"id":"tx_4","amount":1,"currency":"USD","merchant_id":"m_1","card_token":"tok_1"}',
]
--- error_code eval
[200, 200, 599, 400]
--- response_body eval
[
qq!{"id":"tx_1","verdict":"approved","reasons":[],"risk_score":30,"source":"computed"}\n!,
qq!{"id":"tx_2","verdict":"approved","reasons":[],"risk_score":30,"source":"computed"}\n!,
qq!{"id":"tx_3","verdict":"declined","reasons":["amount_out_of_range"],"risk_score":30,"source":"computed"}\n!,
qq!{"id":"tx_4","verdict":"declined","reasons":["risk_too_high"],"risk_score":0,"source":"computed"}\n!,
]
--- no_error_log
[error]



=== TEST 9: txval_cache_zone at http level loads (smallest size, smallest ttl)
--- http_config
    txval_cache_zone txval_t9:32k ttl=1s;
--- config
    location /t {
        txval;
    }
--- more_headers
Content-Type: application/json
--- request
POST /t
{"id":"tx_1","amount":1000,"currency":"USD","merchant_id":"m_1","card_token":"tok_1"}
--- error_code: 200
--- response_headers
X-Txval-Source: computed
--- response_body
{"id":"tx_1","verdict":"approved","reasons":[],"risk_score":0,"source":"computed"}
--- no_error_log
[error]
[emerg]



=== TEST 10: txval_cache_zone without ttl, in m
--- http_config
    txval_cache_zone txval_t10:1m;
--- config
    location /t {
        txval;
    }
--- more_headers
Content-Type: application/json
--- request
POST /t
{"id":"tx_1","amount":1000,"currency":"USD","merchant_id":"m_1","card_token":"tok_1"}
--- error_code: 200
--- response_body
{"id":"tx_1","verdict":"approved","reasons":[],"risk_score":0,"source":"computed"}
--- no_error_log
[error]
[emerg]



=== TEST 11: txval_amount_limit: min above max
--- config
    location /t {
        txval_amount_limit USD 10 5;
        txval;
    }
--- request
GET /t
--- must_die
--- error_log
[emerg]
invalid value "5" in "txval_amount_limit" directive, min "10" is above max "5"



=== TEST 12: txval_amount_limit: lowercase currency
--- config
    location /t {
        txval_amount_limit usd 1 5;
        txval;
    }
--- request
GET /t
--- must_die
--- error_log
[emerg]
invalid currency "usd" in "txval_amount_limit" directive, it must be 3 uppercase letters (ISO 4217)



=== TEST 13: txval_amount_limit: currency of 2 letters
--- http_config
    txval_amount_limit US 1 5;
--- config
    location /t {
        txval;
    }
--- request
GET /t
--- must_die
--- error_log
[emerg]
invalid currency "US" in "txval_amount_limit" directive, it must be 3 uppercase letters (ISO 4217)



=== TEST 14: txval_amount_limit: currency of 4 letters
--- config
    txval_amount_limit USDX 1 5;
--- request
GET /t
--- must_die
--- error_log
[emerg]
invalid currency "USDX" in "txval_amount_limit" directive, it must be 3 uppercase letters (ISO 4217)



=== TEST 15: txval_amount_limit: duplicate currency at one level
--- config
    location /t {
        txval_amount_limit USD 1 5;
        txval_amount_limit EUR 1 5;
        txval_amount_limit USD 10 50;
        txval;
    }
--- request
GET /t
--- must_die
--- error_log
[emerg]
duplicate currency "USD" in "txval_amount_limit" directive



=== TEST 16: txval_amount_limit: min 0
--- config
    location /t {
        txval_amount_limit USD 0 100;
        txval;
    }
--- request
GET /t
--- must_die
--- error_log
[emerg]
invalid value "0" in "txval_amount_limit" directive, an amount must be an integer from 1 to 9007199254740991 (minor units)



=== TEST 17: txval_amount_limit: max 2^53
--- config
    location /t {
        txval_amount_limit USD 1 9007199254740992;
        txval;
    }
--- request
GET /t
--- must_die
--- error_log
[emerg]
invalid value "9007199254740992" in "txval_amount_limit" directive, an amount must be an integer from 1 to 9007199254740991 (minor units)



=== TEST 18: txval_amount_limit: not a number
--- config
    location /t {
        txval_amount_limit USD 1 10k;
        txval;
    }
--- request
GET /t
--- must_die
--- error_log
[emerg]
invalid value "10k" in "txval_amount_limit" directive, an amount must be an integer from 1 to 9007199254740991 (minor units)



=== TEST 19: txval_amount_limit: negative
--- config
    location /t {
        txval_amount_limit USD -1 10;
        txval;
    }
--- request
GET /t
--- must_die
--- error_log
[emerg]
invalid value "-1" in "txval_amount_limit" directive, an amount must be an integer from 1 to 9007199254740991 (minor units)



=== TEST 20: txval_amount_limit: wrong number of arguments
--- config
    location /t {
        txval_amount_limit USD 10;
        txval;
    }
--- request
GET /t
--- must_die
--- error_log
[emerg]
invalid number of arguments in "txval_amount_limit" directive



=== TEST 21: txval_risk_threshold: 101
--- config
    location /t {
        txval_risk_threshold 101;
        txval;
    }
--- request
GET /t
--- must_die
--- error_log
[emerg]
invalid value "101" in "txval_risk_threshold" directive, it must be a number from 0 to 100



=== TEST 22: txval_risk_threshold: negative
--- http_config
    txval_risk_threshold -1;
--- config
    location /t {
        txval;
    }
--- request
GET /t
--- must_die
--- error_log
[emerg]
invalid value "-1" in "txval_risk_threshold" directive, it must be a number from 0 to 100



=== TEST 23: txval_risk_threshold: not a number
--- config
    txval_risk_threshold high;
--- request
GET /t
--- must_die
--- error_log
[emerg]
invalid value "high" in "txval_risk_threshold" directive, it must be a number from 0 to 100



=== TEST 24: txval_risk_threshold: twice at one level
--- config
    location /t {
        txval_risk_threshold 30;
        txval_risk_threshold 40;
        txval;
    }
--- request
GET /t
--- must_die
--- error_log
[emerg]
"txval_risk_threshold" directive is duplicate



=== TEST 25: txval_decline_status: 399
--- config
    location /t {
        txval_decline_status 399;
        txval;
    }
--- request
GET /t
--- must_die
--- error_log
[emerg]
invalid value "399" in "txval_decline_status" directive, it must be a number from 400 to 599



=== TEST 26: txval_decline_status: 600
--- http_config
    txval_decline_status 600;
--- config
    location /t {
        txval;
    }
--- request
GET /t
--- must_die
--- error_log
[emerg]
invalid value "600" in "txval_decline_status" directive, it must be a number from 400 to 599



=== TEST 27: txval_decline_status: twice at one level
--- config
    txval_decline_status 402;
    txval_decline_status 422;
--- request
GET /t
--- must_die
--- error_log
[emerg]
"txval_decline_status" directive is duplicate



=== TEST 28: txval twice in a location
--- config
    location /t {
        txval;
        txval;
    }
--- request
GET /t
--- must_die
--- error_log
[emerg]
"txval" directive is duplicate



=== TEST 29: txval takes no argument
--- config
    location /t {
        txval on;
    }
--- request
GET /t
--- must_die
--- error_log
[emerg]
invalid number of arguments in "txval" directive



=== TEST 30: txval is not allowed at server level
--- config
    txval;
--- request
GET /t
--- must_die
--- error_log
[emerg]
"txval" directive is not allowed here



=== TEST 31: txval_cache_zone: no size
--- http_config
    txval_cache_zone foo;
--- request
GET /t
--- must_die
--- error_log
[emerg]
invalid value "foo" in "txval_cache_zone" directive, it must be NAME:SIZE



=== TEST 32: txval_cache_zone: no name
--- http_config
    txval_cache_zone :1m;
--- request
GET /t
--- must_die
--- error_log
[emerg]
invalid value ":1m" in "txval_cache_zone" directive, it must be NAME:SIZE



=== TEST 33: txval_cache_zone: size not a size
--- http_config
    txval_cache_zone c:xx;
--- request
GET /t
--- must_die
--- error_log
[emerg]
invalid zone size "c:xx" in "txval_cache_zone" directive



=== TEST 34: txval_cache_zone: size below 32k
--- http_config
    txval_cache_zone c:8k;
--- request
GET /t
--- must_die
--- error_log
[emerg]
zone "c:8k" is too small in "txval_cache_zone" directive, the minimum is 32k



=== TEST 35: txval_cache_zone: ttl=0
--- http_config
    txval_cache_zone c:1m ttl=0;
--- request
GET /t
--- must_die
--- error_log
[emerg]
invalid value "ttl=0" in "txval_cache_zone" directive, ttl must be a time of at least 1s



=== TEST 36: txval_cache_zone: ttl below 1s
--- http_config
    txval_cache_zone c:1m ttl=500ms;
--- request
GET /t
--- must_die
--- error_log
[emerg]
invalid value "ttl=500ms" in "txval_cache_zone" directive, ttl must be a time of at least 1s



=== TEST 37: txval_cache_zone: unknown parameter
--- http_config
    txval_cache_zone c:1m foo=1;
--- request
GET /t
--- must_die
--- error_log
[emerg]
invalid parameter "foo=1" in "txval_cache_zone" directive



=== TEST 38: txval_cache_zone: twice
--- http_config
    txval_cache_zone c:1m;
    txval_cache_zone d:1m;
--- request
GET /t
--- must_die
--- error_log
[emerg]
"txval_cache_zone" directive is duplicate



=== TEST 39: txval_cache_zone: not allowed at server level
--- config
    txval_cache_zone c:1m;
--- request
GET /t
--- must_die
--- error_log
[emerg]
"txval_cache_zone" directive is not allowed here



=== TEST 40: txval_cache_zone: not allowed at location level
--- config
    location /t {
        txval_cache_zone c:1m;
        txval;
    }
--- request
GET /t
--- must_die
--- error_log
[emerg]
"txval_cache_zone" directive is not allowed here



=== TEST 41: txval_lookup_cache: needs txval_postgres
--- http_config
    txval_lookup_cache lk:1m;
--- config
    location /t {
        txval;
    }
--- request
GET /t
--- must_die
--- error_log
[emerg]
"txval_lookup_cache" needs "txval_postgres"



=== TEST 42: txval_lookup_cache: no size
--- http_config
    txval_postgres "host=127.0.0.1 dbname=txval";
    txval_lookup_cache lk;
--- config
    location /t {
        txval;
    }
--- request
GET /t
--- must_die
--- error_log
[emerg]
invalid value "lk" in "txval_lookup_cache" directive, it must be NAME:SIZE



=== TEST 43: txval_lookup_cache: ttl below 1s
--- http_config
    txval_postgres "host=127.0.0.1 dbname=txval";
    txval_lookup_cache lk:1m ttl=500ms;
--- config
    location /t {
        txval;
    }
--- request
GET /t
--- must_die
--- error_log
[emerg]
invalid value "ttl=500ms" in "txval_lookup_cache" directive, ttl must be a time of at least 1s



=== TEST 44: txval_lookup_cache: a channel that is not a plain identifier
--- http_config
    txval_postgres "host=127.0.0.1 dbname=txval";
    txval_lookup_cache lk:1m notify=tx-val;
--- config
    location /t {
        txval;
    }
--- request
GET /t
--- must_die
--- error_log
[emerg]
invalid value "notify=tx-val" in "txval_lookup_cache" directive, the channel must be 1-63 characters of A-Z a-z 0-9 _



=== TEST 45: txval_lookup_cache: unknown parameter
--- http_config
    txval_postgres "host=127.0.0.1 dbname=txval";
    txval_lookup_cache lk:1m ttl=5s size=3;
--- config
    location /t {
        txval;
    }
--- request
GET /t
--- must_die
--- error_log
[emerg]
invalid parameter "size=3" in "txval_lookup_cache" directive



=== TEST 46: txval_lookup_cache: twice
--- http_config
    txval_postgres "host=127.0.0.1 dbname=txval";
    txval_lookup_cache lk:1m;
    txval_lookup_cache lk2:1m;
--- config
    location /t {
        txval;
    }
--- request
GET /t
--- must_die
--- error_log
[emerg]
"txval_lookup_cache" directive is duplicate



=== TEST 47: txval_lookup_cache: the same zone name as the verdict cache
--- http_config
    txval_postgres "host=127.0.0.1 dbname=txval";
    txval_cache_zone same:1m;
    txval_lookup_cache same:1m;
--- config
    location /t {
        txval;
    }
--- request
GET /t
--- must_die
--- error_log
[emerg]
zone "same" is already used



=== TEST 48: txval_lookup_cache: not allowed at server level
--- config
    txval_lookup_cache lk:1m;
--- request
GET /t
--- must_die
--- error_log
[emerg]
"txval_lookup_cache" directive is not allowed here



=== TEST 49: txval_fail_mode: an unknown mode names the two there are
--- config
    location /t {
        txval_fail_mode half;
        txval;
    }
--- request
GET /t
--- must_die
--- error_log
[emerg]
invalid value "half" in "txval_fail_mode" directive, it must be "closed" or "open"



=== TEST 50: txval_fail_mode: twice in one location
--- config
    location /t {
        txval_fail_mode open;
        txval_fail_mode closed;
        txval;
    }
--- request
GET /t
--- must_die
--- error_log
[emerg]
"txval_fail_mode" directive is duplicate
