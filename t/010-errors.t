# Error responses: method, content type, body size, malformed JSON, card
# numbers; the one info line each refusal logs, and that no value from a
# body ever reaches the error log (the file runs at debug level so that
# "never logged" covers every level).

use lib 't/lib';
# no_plan: the blocks check different numbers of things (requests,
# headers, log lines), so no plan of repeat_each() * blocks() * N fits
use Test::Txval 'no_plan';
use Txval::Tx qw(tx_raw post_raw raw_request invalid_json);

log_level('debug');
no_shuffle();
run_tests();

__DATA__

=== TEST 1: GET: 405 with Allow: POST
--- config
    location /t {
        txval;
    }
--- request
GET /t
--- error_code: 405
--- response_headers
Allow: POST
Content-Type: application/json
!X-Txval-Verdict
--- response_body
{"error":"method_not_allowed","detail":"only POST is accepted"}
--- grep_error_log eval
qr/txval: refused: [^,]*/
--- grep_error_log_out
txval: refused: method_not_allowed
--- no_error_log
[error]



=== TEST 2: HEAD: 405 with Allow: POST and no body
--- config
    location /t {
        txval;
    }
--- request
HEAD /t
--- error_code: 405
--- response_headers
Allow: POST
Content-Type: application/json
--- response_body
--- grep_error_log eval
qr/txval: refused: [^,]*/
--- grep_error_log_out
txval: refused: method_not_allowed
--- no_error_log
[error]



=== TEST 3: PUT with a valid JSON transaction: 405
--- config
    location /t {
        txval;
    }
--- more_headers
Content-Type: application/json
--- request
PUT /t
{"id":"tx_1","amount":1000,"currency":"USD","merchant_id":"m_1","card_token":"tok_1"}
--- error_code: 405
--- response_headers
Allow: POST
--- response_body
{"error":"method_not_allowed","detail":"only POST is accepted"}
--- grep_error_log eval
qr/txval: refused: [^,]*/
--- grep_error_log_out
txval: refused: method_not_allowed
--- no_error_log
[error]



=== TEST 4: DELETE, PATCH, OPTIONS: 405
--- config
    location /t {
        txval;
    }
--- more_headers
Content-Type: application/json
--- request eval
[
"DELETE /t",
"PATCH /t\n" . ::tx_raw(),
"OPTIONS /t",
]
--- error_code eval
[405, 405, 405]
--- response_headers eval
["Allow: POST", "Allow: POST", "Allow: POST"]
--- response_body eval
[
qq!{"error":"method_not_allowed","detail":"only POST is accepted"}\n!,
qq!{"error":"method_not_allowed","detail":"only POST is accepted"}\n!,
qq!{"error":"method_not_allowed","detail":"only POST is accepted"}\n!,
]
--- error_log
txval: refused: method_not_allowed
--- no_error_log
[error]



=== TEST 5: POST without Content-Type: 415
--- config
    location /t {
        txval;
    }
--- request
POST /t
{"id":"tx_1","amount":1000,"currency":"USD","merchant_id":"m_1","card_token":"tok_1"}
--- error_code: 415
--- response_headers
Content-Type: application/json
!X-Txval-Verdict
--- response_body
{"error":"unsupported_media_type","detail":"the Content-Type must be application/json"}
--- grep_error_log eval
qr/txval: refused: [^,]*/
--- grep_error_log_out
txval: refused: unsupported_media_type
--- no_error_log
[error]



=== TEST 6: Content-Type text/plain: 415
--- config
    location /t {
        txval;
    }
--- more_headers
Content-Type: text/plain
--- request
POST /t
{"id":"tx_1","amount":1000,"currency":"USD","merchant_id":"m_1","card_token":"tok_1"}
--- error_code: 415
--- response_body
{"error":"unsupported_media_type","detail":"the Content-Type must be application/json"}
--- grep_error_log eval
qr/txval: refused: [^,]*/
--- grep_error_log_out
txval: refused: unsupported_media_type
--- no_error_log
[error]



=== TEST 7: Content-Type application/jsonx: 415
--- config
    location /t {
        txval;
    }
--- more_headers
Content-Type: application/jsonx
--- request
POST /t
{"id":"tx_1","amount":1000,"currency":"USD","merchant_id":"m_1","card_token":"tok_1"}
--- error_code: 415
--- response_body
{"error":"unsupported_media_type","detail":"the Content-Type must be application/json"}
--- error_log
txval: refused: unsupported_media_type
--- no_error_log
[error]



=== TEST 8: Content-Type application/json-patch+json: 415
--- config
    location /t {
        txval;
    }
--- more_headers
Content-Type: application/json-patch+json
--- request
POST /t
{"id":"tx_1","amount":1000,"currency":"USD","merchant_id":"m_1","card_token":"tok_1"}
--- error_code: 415
--- response_body
{"error":"unsupported_media_type","detail":"the Content-Type must be application/json"}
--- error_log
txval: refused: unsupported_media_type
--- no_error_log
[error]



=== TEST 9: Content-Type text/json: 415
--- config
    location /t {
        txval;
    }
--- more_headers
Content-Type: text/json
--- request
POST /t
{"id":"tx_1","amount":1000,"currency":"USD","merchant_id":"m_1","card_token":"tok_1"}
--- error_code: 415
--- response_body
{"error":"unsupported_media_type","detail":"the Content-Type must be application/json"}
--- error_log
txval: refused: unsupported_media_type
--- no_error_log
[error]



=== TEST 10: Content-Type application/x-www-form-urlencoded: 415
--- config
    location /t {
        txval;
    }
--- more_headers
Content-Type: application/x-www-form-urlencoded
--- request
POST /t
{"id":"tx_1","amount":1000,"currency":"USD","merchant_id":"m_1","card_token":"tok_1"}
--- error_code: 415
--- response_body
{"error":"unsupported_media_type","detail":"the Content-Type must be application/json"}
--- error_log
txval: refused: unsupported_media_type
--- no_error_log
[error]



=== TEST 11: the content type is checked before the body: text/plain with a broken body is 415
--- config
    location /t {
        txval;
    }
--- more_headers
Content-Type: text/plain
--- request
POST /t
{"id":
--- error_code: 415
--- response_body
{"error":"unsupported_media_type","detail":"the Content-Type must be application/json"}
--- grep_error_log eval
qr/txval: refused: [^,]*/
--- grep_error_log_out
txval: refused: unsupported_media_type
--- no_error_log
[error]



=== TEST 12: the method is checked before the content type: GET with text/plain is 405
--- config
    location /t {
        txval;
    }
--- more_headers
Content-Type: text/plain
--- request
GET /t
--- error_code: 405
--- response_headers
Allow: POST
--- response_body
{"error":"method_not_allowed","detail":"only POST is accepted"}
--- no_error_log
[error]
unsupported_media_type



=== TEST 13: Content-Type application/json; charset=utf-8 is accepted
--- config
    location /t {
        txval;
    }
--- more_headers
Content-Type: application/json; charset=utf-8
--- request
POST /t
{"id":"tx_1","amount":1000,"currency":"USD","merchant_id":"m_1","card_token":"tok_1"}
--- error_code: 200
--- response_headers
X-Txval-Verdict: approved
--- response_body
{"id":"tx_1","verdict":"approved","reasons":[],"risk_score":0,"source":"computed"}
--- no_error_log
[error]
txval: refused



=== TEST 14: Content-Type APPLICATION/JSON is accepted
--- config
    location /t {
        txval;
    }
--- more_headers
Content-Type: APPLICATION/JSON
--- request
POST /t
{"id":"tx_1","amount":1000,"currency":"USD","merchant_id":"m_1","card_token":"tok_1"}
--- error_code: 200
--- response_body
{"id":"tx_1","verdict":"approved","reasons":[],"risk_score":0,"source":"computed"}
--- no_error_log
[error]
txval: refused



=== TEST 15: Content-Type Application/Json;charset=UTF-8 is accepted
--- config
    location /t {
        txval;
    }
--- more_headers
Content-Type: Application/Json;charset=UTF-8
--- request
POST /t
{"id":"tx_1","amount":1000,"currency":"USD","merchant_id":"m_1","card_token":"tok_1"}
--- error_code: 200
--- response_body
{"id":"tx_1","verdict":"approved","reasons":[],"risk_score":0,"source":"computed"}
--- no_error_log
[error]
txval: refused



=== TEST 16: body over client_max_body_size: nginx's own 413, the module logs nothing
--- config
    location /t {
        client_max_body_size 1k;
        txval;
    }
--- more_headers
Content-Type: application/json
--- request eval
::post_raw('/t', note => '"' . ('x' x 2048) . '"')
--- error_code: 413
--- response_headers
Content-Type: text/html
!X-Txval-Verdict
--- response_body_like: 413 Request Entity Too Large
--- error_log
client intended to send too large body
--- no_error_log
txval: refused



=== TEST 17: invalid_json: the body is empty
--- config
    location /t {
        txval;
    }
--- more_headers
Content-Type: application/json
--- request
POST /t
--- error_code: 400
--- response_headers
Content-Type: application/json
!X-Txval-Verdict
--- response_body
{"error":"invalid_json","detail":"the body is empty"}
--- grep_error_log eval
qr/txval: refused: [^,]*/
--- grep_error_log_out
txval: refused: invalid_json
--- no_error_log
[error]



=== TEST 18: invalid_json: Content-Length: 0 is an empty body
--- config
    location /t {
        txval;
    }
--- raw_request eval
::raw_request("")
--- error_code: 400
--- response_body
{"error":"invalid_json","detail":"the body is empty"}
--- error_log
txval: refused: invalid_json
--- no_error_log
[error]



=== TEST 19: invalid_json: not valid JSON (truncated, unquoted key, single quotes, trailing comma, NaN, white space only)
--- config
    location /t {
        txval;
    }
--- more_headers
Content-Type: application/json
--- request eval
[
"POST /t\n" . '{"id":"tx_1","amount":1000',
"POST /t\n" . '{id:"tx_1"}',
"POST /t\n" . "{'id':'tx_1'}",
::post_raw('/t', note => '1,'),
"POST /t\n" . '{"id":"tx_1","amount":NaN}',
"POST /t\n" . '{"id":"tx_1","amount":0x10}',
"POST /t\n" . '{"id":"tx_1","amount":+1000}',
"POST /t\n" . '{"id":"tx_1" "amount":1000}',
]
--- error_code eval
[400, 400, 400, 400, 400, 400, 400, 400]
--- response_body eval
[
::invalid_json("the body is not valid JSON"),
::invalid_json("the body is not valid JSON"),
::invalid_json("the body is not valid JSON"),
::invalid_json("the body is not valid JSON"),
::invalid_json("the body is not valid JSON"),
::invalid_json("the body is not valid JSON"),
::invalid_json("the body is not valid JSON"),
::invalid_json("the body is not valid JSON"),
]
--- error_log
txval: refused: invalid_json
--- no_error_log
[error]



=== TEST 20: invalid_json: a body of white space only is not valid JSON
--- config
    location /t {
        txval;
    }
--- raw_request eval
::raw_request("  \r\n\t ")
--- error_code: 400
--- response_body
{"error":"invalid_json","detail":"the body is not valid JSON"}
--- error_log
txval: refused: invalid_json
--- no_error_log
[error]



=== TEST 21: invalid_json: nesting of 1000 levels is fine, 1001 is not valid JSON
--- config
    location /t {
        txval;
    }
--- more_headers
Content-Type: application/json
--- request eval
[
::post_raw('/t', deep => ('[' x 999) . (']' x 999)),
::post_raw('/t', deep => ('[' x 1000) . (']' x 1000)),
"POST /t\n" . ('[' x 1001) . (']' x 1001),
]
--- error_code eval
[200, 400, 400]
--- response_body eval
[
qq!{"id":"tx_1","verdict":"approved","reasons":[],"risk_score":0,"source":"computed"}\n!,
::invalid_json("the body is not valid JSON"),
::invalid_json("the body is not valid JSON"),
]
--- no_error_log
[error]



=== TEST 22: invalid_json: data after the JSON value
--- config
    location /t {
        txval;
    }
--- more_headers
Content-Type: application/json
--- request eval
[
"POST /t\n" . ::tx_raw() . ' {}',
"POST /t\n" . ::tx_raw() . 'x',
"POST /t\n" . ::tx_raw() . '}',
"POST /t\n" . '{}{}',
]
--- error_code eval
[400, 400, 400, 400]
--- response_body eval
[
::invalid_json("the body has data after the JSON value"),
::invalid_json("the body has data after the JSON value"),
::invalid_json("the body has data after the JSON value"),
::invalid_json("the body has data after the JSON value"),
]
--- error_log
txval: refused: invalid_json
--- no_error_log
[error]



=== TEST 23: white space before and after the object is fine
--- config
    location /t {
        txval;
    }
--- raw_request eval
::raw_request(" \r\n\t" . ::tx_raw() . "\r\n \t\n\n")
--- error_code: 200
--- response_body
{"id":"tx_1","verdict":"approved","reasons":[],"risk_score":0,"source":"computed"}
--- no_error_log
[error]
txval: refused



=== TEST 24: invalid_json: not an object
--- config
    location /t {
        txval;
    }
--- more_headers
Content-Type: application/json
--- request eval
[
"POST /t\n[]",
"POST /t\n" . '"x"',
"POST /t\n1",
"POST /t\nnull",
"POST /t\ntrue",
"POST /t\n[" . ::tx_raw() . "]",
]
--- error_code eval
[400, 400, 400, 400, 400, 400]
--- response_body eval
[
::invalid_json("the body is not a JSON object"),
::invalid_json("the body is not a JSON object"),
::invalid_json("the body is not a JSON object"),
::invalid_json("the body is not a JSON object"),
::invalid_json("the body is not a JSON object"),
::invalid_json("the body is not a JSON object"),
]
--- error_log
txval: refused: invalid_json
--- no_error_log
[error]



=== TEST 25: invalid_json: a raw control character, in a string or between tokens
--- config
    location /t {
        txval;
    }
--- more_headers
Content-Type: application/json
--- request eval
[
::post_raw('/t', note => qq!"a\x01b"!),
::post_raw('/t', note => qq!"a\x00b"!),
::post_raw('/t', note => qq!"a\x1fb"!),
::post_raw('/t', note => qq!\x0c1!),
"POST /t\n" . qq!{"id"\x02:"tx_1"}!,
]
--- error_code eval
[400, 400, 400, 400, 400]
--- response_body eval
[
::invalid_json("the body holds a control character"),
::invalid_json("the body holds a control character"),
::invalid_json("the body holds a control character"),
::invalid_json("the body holds a control character"),
::invalid_json("the body holds a control character"),
]
--- error_log
txval: refused: invalid_json
--- no_error_log
[error]



=== TEST 26: invalid_json: an escaped NUL, in a value or in a key
--- config
    location /t {
        txval;
    }
--- more_headers
Content-Type: application/json
--- request eval
[
::post_raw('/t', note => '"a\u0000b"'),
::post_raw('/t', 'no\u0000te' => '1'),
"POST /t\n" . '{"id":"tx_1\u0000x","amount":1000,"currency":"USD","merchant_id":"m_1","card_token":"tok_1"}',
]
--- error_code eval
[400, 400, 400]
--- response_body eval
[
::invalid_json("the body holds an escaped NUL character"),
::invalid_json("the body holds an escaped NUL character"),
::invalid_json("the body holds an escaped NUL character"),
]
--- error_log
txval: refused: invalid_json
--- no_error_log
[error]



=== TEST 27: other escapes are fine: an escaped backslash before u0000, escaped control characters, \u00e9
--- config
    location /t {
        txval;
    }
--- more_headers
Content-Type: application/json
--- request eval
[
::post_raw('/t', note => '"a\\\\u0000b"'),
::post_raw('/t', note => '"\u0001\t\n\r\"\/\b\f"'),
::post_raw('/t', note => '"caf\u00e9 \ud83d\ude00"'),
]
--- error_code eval
[200, 200, 200]
--- response_body eval
[
qq!{"id":"tx_1","verdict":"approved","reasons":[],"risk_score":0,"source":"computed"}\n!,
qq!{"id":"tx_1","verdict":"approved","reasons":[],"risk_score":0,"source":"computed"}\n!,
qq!{"id":"tx_1","verdict":"approved","reasons":[],"risk_score":0,"source":"computed"}\n!,
]
--- no_error_log
[error]
txval: refused



=== TEST 28: invalid_json: not valid UTF-8 (bad byte, overlong, surrogate, above U+10FFFF, truncated)
--- config
    location /t {
        txval;
    }
--- more_headers
Content-Type: application/json
--- request eval
[
::post_raw('/t', note => qq!"a\xffb"!),
::post_raw('/t', note => qq!"\xc0\xaf"!),
::post_raw('/t', note => qq!"\xe0\x80\xaf"!),
::post_raw('/t', note => qq!"\xed\xa0\x80"!),
::post_raw('/t', note => qq!"\xf4\x90\x80\x80"!),
::post_raw('/t', note => qq!"\xe2\x82"!),
::post_raw('/t', note => qq!"\x80"!),
]
--- error_code eval
[400, 400, 400, 400, 400, 400, 400]
--- response_body eval
[
::invalid_json("the body is not valid UTF-8"),
::invalid_json("the body is not valid UTF-8"),
::invalid_json("the body is not valid UTF-8"),
::invalid_json("the body is not valid UTF-8"),
::invalid_json("the body is not valid UTF-8"),
::invalid_json("the body is not valid UTF-8"),
::invalid_json("the body is not valid UTF-8"),
]
--- error_log
txval: refused: invalid_json
--- no_error_log
[error]



=== TEST 29: valid UTF-8 of 2, 3 and 4 bytes in an unknown field is fine
--- config
    location /t {
        txval;
    }
--- more_headers
Content-Type: application/json
--- request eval
::post_raw('/t', note => qq!"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \xf4\x8f\xbf\xbf"!)
--- error_code: 200
--- response_body
{"id":"tx_1","verdict":"approved","reasons":[],"risk_score":0,"source":"computed"}
--- no_error_log
[error]
txval: refused



=== TEST 30: pan_not_accepted: "pan", and its value is never logged
--- config
    location /t {
        txval;
    }
--- more_headers
Content-Type: application/json
--- request eval
::post_raw('/t', pan => '"4111111111111111"')
--- error_code: 400
--- response_headers
Content-Type: application/json
!X-Txval-Verdict
--- response_body
{"error":"pan_not_accepted","detail":"card numbers are not accepted: send a card_token"}
--- grep_error_log eval
qr/txval: refused: [^,]*/
--- grep_error_log_out
txval: refused: pan_not_accepted
--- no_error_log
4111111111111111
411111111111
[error]



=== TEST 31: pan_not_accepted: "card_number", and its value is never logged
--- config
    location /t {
        txval;
    }
--- more_headers
Content-Type: application/json
--- request eval
::post_raw('/t', card_number => '"5555555555554444"')
--- error_code: 400
--- response_body
{"error":"pan_not_accepted","detail":"card numbers are not accepted: send a card_token"}
--- grep_error_log eval
qr/txval: refused: [^,]*/
--- grep_error_log_out
txval: refused: pan_not_accepted
--- no_error_log
5555555555554444
555555555555
[error]



=== TEST 32: pan_not_accepted: any value (number, null, empty, object), an escaped key, before field rules
--- config
    location /t {
        txval;
    }
--- more_headers
Content-Type: application/json
--- request eval
[
::post_raw('/t', pan => '4012888888881881'),
::post_raw('/t', card_number => 'null'),
::post_raw('/t', pan => '""'),
::post_raw('/t', card_number => '{"n":"378282246310005"}'),
::post_raw('/t', 'p\u0061n' => '"6011111111111117"'),
"POST /t\n" . '{"card_number":"3530111333300000"}',
"POST /t\n" . '{"id":"bad id!","amount":-1,"pan":"4000056655665556"}',
]
--- error_code eval
[400, 400, 400, 400, 400, 400, 400]
--- response_body eval
[
qq!{"error":"pan_not_accepted","detail":"card numbers are not accepted: send a card_token"}\n!,
qq!{"error":"pan_not_accepted","detail":"card numbers are not accepted: send a card_token"}\n!,
qq!{"error":"pan_not_accepted","detail":"card numbers are not accepted: send a card_token"}\n!,
qq!{"error":"pan_not_accepted","detail":"card numbers are not accepted: send a card_token"}\n!,
qq!{"error":"pan_not_accepted","detail":"card numbers are not accepted: send a card_token"}\n!,
qq!{"error":"pan_not_accepted","detail":"card numbers are not accepted: send a card_token"}\n!,
qq!{"error":"pan_not_accepted","detail":"card numbers are not accepted: send a card_token"}\n!,
]
--- error_log
txval: refused: pan_not_accepted
--- no_error_log
4012888888881881
378282246310005
6011111111111117
3530111333300000
4000056655665556
bad id!
[error]



=== TEST 33: invalid_field: the offending value is not logged, only the field name
--- config
    location /t {
        txval;
    }
--- more_headers
Content-Type: application/json
--- request
POST /t
{"id":"tx_1","amount":1000,"currency":"USD","merchant_id":"secret merchant value","card_token":"tok_1"}
--- error_code: 400
--- response_body
{"error":"invalid_field","field":"merchant_id","detail":"merchant_id must be a string of 1-64 characters from A-Z a-z 0-9 . _ : -"}
--- grep_error_log eval
qr/txval: refused: [^,]*/
--- grep_error_log_out
txval: refused: invalid_field field merchant_id
--- no_error_log
secret merchant value
[error]



=== TEST 34: an approved transaction logs no refusal and none of its values
--- config
    location /t {
        txval;
    }
--- more_headers
Content-Type: application/json
--- request
POST /t
{"id":"tx_secret_id_7","amount":1000,"currency":"USD","merchant_id":"m_secret_merchant","card_token":"tok_secret_token","note":"4111111111111111"}
--- error_code: 200
--- response_body
{"id":"tx_secret_id_7","verdict":"approved","reasons":[],"risk_score":0,"source":"computed"}
--- no_error_log
txval: refused
m_secret_merchant
tok_secret_token
4111111111111111
[error]



=== TEST 35: invalid_json: numbers outside JSON's grammar, anywhere in the body
--- config
    location /t {
        txval;
    }
--- more_headers
Content-Type: application/json
--- request eval
[
"POST /t\n" . '{"id":"tx_1","amount":01000,"currency":"USD","merchant_id":"m_1","card_token":"tok_1"}',
"POST /t\n" . '{"id":"tx_1","amount":1.,"currency":"USD","merchant_id":"m_1","card_token":"tok_1"}',
"POST /t\n" . '{"id":"tx_1","amount":1.e3,"currency":"USD","merchant_id":"m_1","card_token":"tok_1"}',
::post_raw('/t', n => '.5'),
::post_raw('/t', n => '+1'),
::post_raw('/t', n => '[1,2,0x10]'),
::post_raw('/t', n => '1e'),
::post_raw('/t', n => '[-0,1.5e-3,2E+2,-1]'),
]
--- error_code eval
[400, 400, 400, 400, 400, 400, 400, 200]
--- response_body eval
[
::invalid_json("the body is not valid JSON"),
::invalid_json("the body is not valid JSON"),
::invalid_json("the body is not valid JSON"),
::invalid_json("the body is not valid JSON"),
::invalid_json("the body is not valid JSON"),
::invalid_json("the body is not valid JSON"),
::invalid_json("the body is not valid JSON"),
qq!{"id":"tx_1","verdict":"approved","reasons":[],"risk_score":0,"source":"computed"}\n!,
]
--- no_error_log
[error]



=== TEST 36: invalid_json: raw tab, CR or LF inside a string (they are fine between tokens)
--- config
    location /t {
        txval;
    }
--- more_headers
Content-Type: application/json
--- request eval
[
::post_raw('/t', note => qq!"a\tb"!),
::post_raw('/t', note => qq!"a\nb"!),
::post_raw('/t', note => qq!"a\rb"!),
::post_raw('/t', note => qq!\t"ab"\n!),
]
--- error_code eval
[400, 400, 400, 200]
--- response_body eval
[
::invalid_json("the body holds a control character"),
::invalid_json("the body holds a control character"),
::invalid_json("the body holds a control character"),
qq!{"id":"tx_1","verdict":"approved","reasons":[],"risk_score":0,"source":"computed"}\n!,
]



=== TEST 37: pan_not_accepted: a card number nested at any depth, never logged
--- config
    location /t {
        txval;
    }
--- more_headers
Content-Type: application/json
--- request eval
[
::post_raw('/t', meta => '{"pan":"4111111111111111"}'),
::post_raw('/t', items => '[{"x":1},{"card":{"card_number":"5500005555555559"}}]'),
]
--- error_code eval
[400, 400]
--- response_body eval
[
qq!{"error":"pan_not_accepted","detail":"card numbers are not accepted: send a card_token"}\n!,
qq!{"error":"pan_not_accepted","detail":"card numbers are not accepted: send a card_token"}\n!,
]
--- no_error_log
4111111111111111
5500005555555559



=== TEST 38: invalid_json: a \u escape without 4 hex digits (cJSON read it as a NUL that cut the string: "tx\u00G1abc" was the id "tx"), a lone or unpaired surrogate
--- config
    location /t {
        txval;
    }
--- more_headers
Content-Type: application/json
--- request eval
[
"POST /t\n" . '{"id":"tx\u00G1abc","amount":1000,"currency":"USD","merchant_id":"m_1","card_token":"tok_1"}',
::post_raw('/t', note => '"\uZZZZ"'),
::post_raw('/t', note => '"\u12"'),
::post_raw('/t', 'n\u0G6te' => '1'),
::post_raw('/t', note => '"\ud800"'),
::post_raw('/t', note => '"\udc00x"'),
::post_raw('/t', note => '"\ud800\u0041"'),
]
--- error_code eval
[ (400) x 7 ]
--- response_body eval
[ (::invalid_json("the body is not valid JSON")) x 7 ]
--- error_log
txval: refused: invalid_json
--- no_error_log
[error]
