# The config rules and the variables with a master and two workers, each
# block repeated: every worker gives the same answers.

use lib 't/lib';
# no_plan: the blocks check different numbers of things (requests,
# headers, log lines), so no plan of repeat_each() * blocks() * N fits
use Test::Txval 'no_plan';
use Txval::Tx qw(post);

master_on();
workers(2);
repeat_each(5);
log_level('info');
no_shuffle();
run_tests();

__DATA__

=== TEST 1: approved, with the amount risk signal
--- config
    location /t {
        txval_amount_limit USD 100 1000;
        txval;
    }
--- more_headers
Content-Type: application/json
--- request eval
::post('/t', id => 'tx_1', amount => 500)
--- error_code: 200
--- response_headers
X-Txval-Verdict: approved
X-Txval-Source: computed
--- response_body
{"id":"tx_1","verdict":"approved","reasons":[],"risk_score":30,"source":"computed"}
--- no_error_log
[error]
[alert]



=== TEST 2: declined with several reasons and a custom status
--- http_config
    txval_risk_threshold 30;
    txval_decline_status 422;
--- config
    location /t {
        txval_amount_limit USD 100 1000;
        txval;
    }
--- more_headers
Content-Type: application/json
--- request eval
[
::post('/t', id => 'tx_1', amount => 1001),
::post('/t', id => 'tx_2', amount => 100, currency => 'EUR'),
::post('/t', id => 'tx_3', amount => 100),
]
--- error_code eval
[422, 422, 200]
--- response_body eval
[
qq!{"id":"tx_1","verdict":"declined","reasons":["amount_out_of_range","risk_too_high"],"risk_score":30,"source":"computed"}\n!,
qq!{"id":"tx_2","verdict":"declined","reasons":["currency_not_supported"],"risk_score":0,"source":"computed"}\n!,
qq!{"id":"tx_3","verdict":"approved","reasons":[],"risk_score":0,"source":"computed"}\n!,
]
--- no_error_log
[error]
[alert]



=== TEST 3: errors and their log line
--- config
    location /t {
        txval;
    }
--- more_headers
Content-Type: application/json
--- request eval
[
::post('/t', id => 'tx_1', amount => 0),
::post('/t', id => 'tx_2', amount => 1000, pan => '"4111111111111111"'),
"POST /t\n{",
]
--- error_code eval
[400, 400, 400]
--- response_body eval
[
qq!{"error":"invalid_field","field":"amount","detail":"amount must be an integral number of minor units from 1 to 9007199254740991"}\n!,
qq!{"error":"pan_not_accepted","detail":"card numbers are not accepted: send a card_token"}\n!,
qq!{"error":"invalid_json","detail":"the body is not valid JSON"}\n!,
]
--- error_log
txval: refused:
--- no_error_log
4111111111111111
[error]
[alert]



=== TEST 4: variables
--- config
    location /t {
        txval_amount_limit USD 100 1000;
        txval_risk_threshold 30;
        add_header X-Vars "v=$txval_verdict r=$txval_reasons s=$txval_risk_score src=$txval_source id=$txval_id" always;
        txval;
    }
--- more_headers
Content-Type: application/json
--- request eval
[
::post('/t', id => 'tx_1', amount => 2000),
::post('/t', id => 'tx_2', amount => 100),
"GET /t",
]
--- error_code eval
[402, 200, 405]
--- response_headers eval
[
"X-Vars: v=declined r=amount_out_of_range,risk_too_high s=30 src=computed id=tx_1",
"X-Vars: v=approved r= s=0 src=computed id=tx_2",
"X-Vars: v=error r= s= src= id=",
]
--- no_error_log
[error]
[alert]
