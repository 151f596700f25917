# Rules from the configuration: currency_not_supported, amount_out_of_range,
# the amount risk signal (30 when 2 x amount >= the currency's MAX),
# risk_too_high against txval_risk_threshold, the order of the reasons, the
# decline status, and the $txval_* variables.

use lib 't/lib';
# no_plan: the blocks check different numbers of things (requests,
# headers, log lines), so no plan of repeat_each() * blocks() * N fits
use Test::Txval 'no_plan';
use Txval::Tx qw(post computed);

log_level('info');
no_shuffle();
run_tests();

__DATA__

=== TEST 1: currency_not_supported: limits are set, none for this currency
--- config
    location /t {
        txval_amount_limit USD 100 1000;
        txval_amount_limit EUR 100 1000;
        txval;
    }
--- more_headers
Content-Type: application/json
--- request eval
[
::post('/t', id => 'tx_1', amount => 500, currency => 'GBP'),
::post('/t', id => 'tx_2', amount => 9007199254740991, currency => 'GBP'),
::post('/t', id => 'tx_3', amount => 100, currency => 'USD'),
::post('/t', id => 'tx_4', amount => 100, currency => 'EUR'),
]
--- error_code eval
[402, 402, 200, 200]
--- response_headers eval
[
"X-Txval-Verdict: declined\nX-Txval-Source: computed",
"X-Txval-Verdict: declined\nX-Txval-Source: computed",
"X-Txval-Verdict: approved\nX-Txval-Source: computed",
"X-Txval-Verdict: approved\nX-Txval-Source: computed",
]
--- response_body eval
[
::computed('tx_1', 0, 'currency_not_supported'),
::computed('tx_2', 0, 'currency_not_supported'),
::computed('tx_3', 0),
::computed('tx_4', 0),
]
--- no_error_log
[error]
txval: refused



=== TEST 2: amount_out_of_range at MIN-1, MIN, MAX, MAX+1
--- config
    location /t {
        txval_amount_limit USD 100 1000;
        txval;
    }
--- more_headers
Content-Type: application/json
--- request eval
[
::post('/t', id => 'tx_1', amount => 99),
::post('/t', id => 'tx_2', amount => 100),
::post('/t', id => 'tx_3', amount => 1000),
::post('/t', id => 'tx_4', amount => 1001),
::post('/t', id => 'tx_5', amount => 9007199254740991),
]
--- error_code eval
[402, 200, 200, 402, 402]
--- response_body eval
[
::computed('tx_1', 0, 'amount_out_of_range'),
::computed('tx_2', 0),
::computed('tx_3', 30),
::computed('tx_4', 30, 'amount_out_of_range'),
::computed('tx_5', 30, 'amount_out_of_range'),
]
--- no_error_log
[error]



=== TEST 3: risk signal: 30 when 2 x amount >= MAX, 0 just below (even MAX, odd MAX, MAX = 2^53-1)
--- config
    location /even {
        txval_amount_limit USD 1 1000;
        txval;
    }
    location /odd {
        txval_amount_limit USD 1 1001;
        txval;
    }
    location /big {
        txval_amount_limit USD 1 9007199254740991;
        txval;
    }
--- more_headers
Content-Type: application/json
--- request eval
[
::post('/even', id => 'tx_1', amount => 499),
::post('/even', id => 'tx_2', amount => 500),
::post('/odd', id => 'tx_3', amount => 500),
::post('/odd', id => 'tx_4', amount => 501),
::post('/big', id => 'tx_5', amount => 4503599627370495),
::post('/big', id => 'tx_6', amount => 4503599627370496),
::post('/big', id => 'tx_7', amount => 9007199254740991),
]
--- error_code eval
[200, 200, 200, 200, 200, 200, 200]
--- response_body eval
[
::computed('tx_1', 0),
::computed('tx_2', 30),
::computed('tx_3', 0),
::computed('tx_4', 30),
::computed('tx_5', 0),
::computed('tx_6', 30),
::computed('tx_7', 30),
]
--- no_error_log
[error]



=== TEST 4: risk signal: the MAX of this currency's limit, not another's
--- config
    location /t {
        txval_amount_limit USD 1 1000;
        txval_amount_limit EUR 1 100000;
        txval;
    }
--- more_headers
Content-Type: application/json
--- request eval
[
::post('/t', id => 'tx_1', amount => 600, currency => 'USD'),
::post('/t', id => 'tx_2', amount => 600, currency => 'EUR'),
::post('/t', id => 'tx_3', amount => 50000, currency => 'EUR'),
]
--- error_code eval
[200, 200, 200]
--- response_body eval
[
::computed('tx_1', 30),
::computed('tx_2', 0),
::computed('tx_3', 30),
]
--- no_error_log
[error]



=== TEST 5: threshold 30: a score of 30 gives risk_too_high, 0 does not; 31 lets 30 through
--- config
    location /t30 {
        txval_amount_limit USD 1 1000;
        txval_risk_threshold 30;
        txval;
    }
    location /t31 {
        txval_amount_limit USD 1 1000;
        txval_risk_threshold 31;
        txval;
    }
--- more_headers
Content-Type: application/json
--- request eval
[
::post('/t30', id => 'tx_1', amount => 499),
::post('/t30', id => 'tx_2', amount => 500),
::post('/t31', id => 'tx_3', amount => 500),
::post('/t31', id => 'tx_4', amount => 1000),
]
--- error_code eval
[200, 402, 200, 200]
--- response_headers eval
[
"X-Txval-Verdict: approved",
"X-Txval-Verdict: declined",
"X-Txval-Verdict: approved",
"X-Txval-Verdict: approved",
]
--- response_body eval
[
::computed('tx_1', 0),
::computed('tx_2', 30, 'risk_too_high'),
::computed('tx_3', 30),
::computed('tx_4', 30),
]
--- no_error_log
[error]



=== TEST 6: default threshold 70: config alone (score 30 at most) never gives risk_too_high
--- config
    location /t {
        txval_amount_limit USD 1 1000;
        txval;
    }
--- more_headers
Content-Type: application/json
--- request eval
[
::post('/t', id => 'tx_1', amount => 1000),
::post('/t', id => 'tx_2', amount => 1001),
]
--- error_code eval
[200, 402]
--- response_body eval
[
::computed('tx_1', 30),
::computed('tx_2', 30, 'amount_out_of_range'),
]
--- no_error_log
[error]



=== TEST 7: reasons are listed in order: currency_not_supported, amount_out_of_range, then risk_too_high
--- config
    location /t0 {
        txval_amount_limit USD 100 1000;
        txval_risk_threshold 0;
        txval;
    }
    location /t30 {
        txval_amount_limit USD 100 1000;
        txval_risk_threshold 30;
        txval;
    }
--- more_headers
Content-Type: application/json
--- request eval
[
::post('/t0', id => 'tx_1', amount => 500, currency => 'GBP'),
::post('/t0', id => 'tx_2', amount => 99),
::post('/t0', id => 'tx_3', amount => 100),
::post('/t30', id => 'tx_4', amount => 2000),
::post('/t30', id => 'tx_5', amount => 99),
]
--- error_code eval
[402, 402, 402, 402, 402]
--- response_body eval
[
::computed('tx_1', 0, 'currency_not_supported', 'risk_too_high'),
::computed('tx_2', 0, 'amount_out_of_range', 'risk_too_high'),
::computed('tx_3', 0, 'risk_too_high'),
::computed('tx_4', 30, 'amount_out_of_range', 'risk_too_high'),
::computed('tx_5', 0, 'amount_out_of_range'),
]
--- no_error_log
[error]



=== TEST 8: decline status: 402 by default, 422 when set; approved stays 200
--- config
    location /default {
        txval_amount_limit USD 100 1000;
        txval;
    }
    location /custom {
        txval_amount_limit USD 100 1000;
        txval_decline_status 422;
        txval;
    }
--- more_headers
Content-Type: application/json
--- request eval
[
::post('/default', id => 'tx_1', amount => 5000),
::post('/custom', id => 'tx_2', amount => 5000),
::post('/custom', id => 'tx_3', amount => 100),
]
--- error_code eval
[402, 422, 200]
--- response_headers eval
[
"X-Txval-Verdict: declined",
"X-Txval-Verdict: declined",
"X-Txval-Verdict: approved",
]
--- response_body eval
[
::computed('tx_1', 30, 'amount_out_of_range'),
::computed('tx_2', 30, 'amount_out_of_range'),
::computed('tx_3', 0),
]
--- no_error_log
[error]



=== TEST 9: the decline status does not change error statuses
--- config
    location /t {
        txval_decline_status 422;
        txval;
    }
--- more_headers
Content-Type: application/json
--- request eval
[
"POST /t\n{}",
"GET /t",
]
--- error_code eval
[400, 405]
--- response_body eval
[
qq!{"error":"invalid_field","field":"id","detail":"id is required"}\n!,
qq!{"error":"method_not_allowed","detail":"only POST is accepted"}\n!,
]
--- no_error_log
[error]



=== TEST 10: limits set in a location replace the ones from http and server
--- http_config
    txval_amount_limit USD 100 1000;
--- config
    txval_amount_limit JPY 1 10;

    location /http-and-server {
        txval;
    }

    location /own {
        txval_amount_limit EUR 100 1000;
        txval;
    }
--- more_headers
Content-Type: application/json
--- request eval
[
::post('/http-and-server', id => 'tx_1', amount => 500, currency => 'USD'),
::post('/http-and-server', id => 'tx_2', amount => 5, currency => 'JPY'),
::post('/own', id => 'tx_3', amount => 100, currency => 'USD'),
::post('/own', id => 'tx_4', amount => 100, currency => 'JPY'),
::post('/own', id => 'tx_5', amount => 100, currency => 'EUR'),
::post('/own', id => 'tx_6', amount => 1001, currency => 'EUR'),
]
--- error_code eval
[402, 200, 402, 402, 200, 402]
--- response_body eval
[
::computed('tx_1', 0, 'currency_not_supported'),
::computed('tx_2', 30),
::computed('tx_3', 0, 'currency_not_supported'),
::computed('tx_4', 0, 'currency_not_supported'),
::computed('tx_5', 0),
::computed('tx_6', 30, 'amount_out_of_range'),
]
--- no_error_log
[error]



=== TEST 11: $txval_* variables on an approved verdict
--- config
    location /t {
        txval_amount_limit USD 100 1000;
        add_header X-Vars "v=$txval_verdict r=$txval_reasons s=$txval_risk_score src=$txval_source id=$txval_id" always;
        add_header X-Verdict $txval_verdict always;
        add_header X-Score $txval_risk_score always;
        add_header X-Source $txval_source always;
        add_header X-Id $txval_id always;
        add_header X-Time $txval_time always;
        txval;
    }
--- more_headers
Content-Type: application/json
--- request eval
::post('/t', id => 'tx_var.1', amount => 500)
--- error_code: 200
--- response_headers_like
X-Vars: v=approved r= s=30 src=computed id=tx_var\.1
X-Verdict: approved
X-Score: 30
X-Source: computed
X-Id: tx_var\.1
X-Time: \d+\.\d{3}
--- response_body eval
::computed('tx_var.1', 30)
--- no_error_log
[error]



=== TEST 12: $txval_* variables on declined verdicts (one reason, several reasons)
--- config
    location /t {
        txval_amount_limit USD 100 1000;
        txval_risk_threshold 30;
        txval_decline_status 422;
        add_header X-Vars "v=$txval_verdict r=$txval_reasons s=$txval_risk_score src=$txval_source id=$txval_id" always;
        add_header X-Reasons $txval_reasons always;
        txval;
    }
--- more_headers
Content-Type: application/json
--- request eval
[
::post('/t', id => 'tx_1', amount => 500, currency => 'EUR'),
::post('/t', id => 'tx_2', amount => 2000),
]
--- error_code eval
[422, 422]
--- response_headers eval
[
"X-Vars: v=declined r=currency_not_supported s=0 src=computed id=tx_1\nX-Reasons: currency_not_supported",
"X-Vars: v=declined r=amount_out_of_range,risk_too_high s=30 src=computed id=tx_2\nX-Reasons: amount_out_of_range,risk_too_high",
]
--- response_body eval
[
::computed('tx_1', 0, 'currency_not_supported'),
::computed('tx_2', 30, 'amount_out_of_range', 'risk_too_high'),
]
--- no_error_log
[error]



=== TEST 13: $txval_* variables on error responses: verdict "error", the rest empty
--- config
    location /t {
        add_header X-Vars "v=$txval_verdict r=$txval_reasons s=$txval_risk_score src=$txval_source id=$txval_id" always;
        add_header X-Verdict $txval_verdict always;
        txval;
    }
--- more_headers
Content-Type: application/json
--- request eval
[
::post('/t', id => 'tx_1', amount => 0),
"POST /t\n[]",
::post('/t', id => 'tx_3', amount => 1000, pan => '"4111111111111111"'),
"GET /t",
]
--- error_code eval
[400, 400, 400, 405]
--- response_headers eval
[
"X-Vars: v=error r= s= src= id=\nX-Verdict: error\n!X-Txval-Verdict\n!X-Txval-Source",
"X-Vars: v=error r= s= src= id=\nX-Verdict: error\n!X-Txval-Verdict\n!X-Txval-Source",
"X-Vars: v=error r= s= src= id=\nX-Verdict: error\n!X-Txval-Verdict\n!X-Txval-Source",
"X-Vars: v=error r= s= src= id=\nX-Verdict: error\nAllow: POST",
]
--- no_error_log
[error]



=== TEST 14: $txval_time is a number of milliseconds on every outcome
--- config
    location /t {
        txval_amount_limit USD 100 1000;
        add_header X-Time $txval_time always;
        add_header X-Verdict $txval_verdict always;
        txval;
    }
--- more_headers
Content-Type: application/json
--- request eval
[
::post('/t', id => 'tx_1', amount => 100),
::post('/t', id => 'tx_2', amount => 99),
::post('/t', id => 'tx_3', amount => 0),
"GET /t",
]
--- error_code eval
[200, 402, 400, 405]
--- response_headers_like eval
[
"X-Time: \\d+\\.\\d{3}\nX-Verdict: approved",
"X-Time: \\d+\\.\\d{3}\nX-Verdict: declined",
"X-Time: \\d+\\.\\d{3}\nX-Verdict: error",
"X-Time: \\d+\\.\\d{3}\nX-Verdict: error",
]
--- no_error_log
[error]



=== TEST 15: $txval_* variables are empty in a location without txval
--- config
    location /plain {
        add_header X-Vars "v=$txval_verdict r=$txval_reasons s=$txval_risk_score src=$txval_source id=$txval_id t=$txval_time" always;
        add_header X-Verdict $txval_verdict always;
        return 200 "plain\n";
    }
--- more_headers
Content-Type: application/json
--- request eval
::post('/plain', id => 'tx_1', amount => 1000)
--- error_code: 200
--- response_headers
X-Vars: v= r= s= src= id= t=
!X-Verdict
--- response_body
plain
--- no_error_log
[error]
