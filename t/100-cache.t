# txval_cache_zone: replays answered from shared memory, conflicts refused,
# ttl expiry, LRU eviction in a full zone, config errors. Two workers
# throughout: a replay may land on either one. Every id is used by one
# block only, so the file also runs with TEST_NGINX_USE_HUP (zones kept).
# Runs unchanged under upstream Test::Nginx::Socket. There, --- error_log
# is checked after each request of an array, so the one log line per
# refusal is checked in t/120-cache-workers.t instead.

use lib 't/lib';
# no_plan: the blocks check different numbers of things (requests,
# headers, log lines), so no plan of repeat_each() * blocks() * N fits
use Test::Txval 'no_plan';
use Txval::Tx qw(tx_defaults tx post v conflict);

master_on();
workers(2);
log_level('info');
no_shuffle();

# the blocks call these as ::post() etc. (Test::Base evaluates "eval"
# sections in its own package)
tx_defaults(currency => 'EUR');

sub src { "X-Txval-Source: $_[0]" }

run_tests();

__DATA__

=== TEST 1: a replay is answered from shm: same body but "source", header X-Txval-Source: shm
--- http_config
    txval_cache_zone txval:1m ttl=10m;
--- config
    location /t { txval; }
--- more_headers
Content-Type: application/json
--- request eval
[::post('/t', id => 'tx_r1'), ::post('/t', id => 'tx_r1'), ::post('/t', id => 'tx_r1')]
--- error_code eval
[200, 200, 200]
--- response_headers eval
["X-Txval-Source: computed\nX-Txval-Verdict: approved\nContent-Type: application/json",
 "X-Txval-Source: shm\nX-Txval-Verdict: approved\nContent-Type: application/json",
 "X-Txval-Source: shm\nX-Txval-Verdict: approved\nContent-Type: application/json"]
--- response_body eval
[::v('tx_r1', 'computed'), ::v('tx_r1', 'shm'), ::v('tx_r1', 'shm')]
--- no_error_log
[error]
[alert]



=== TEST 2: declined verdicts replay declined, with the same reasons, score and status
--- http_config
    txval_cache_zone txval:1m;
--- config
    location /t {
        txval;
        txval_amount_limit EUR 100 5000;
        txval_risk_threshold 30;
        txval_decline_status 422;
    }
--- more_headers
Content-Type: application/json
--- request eval
[::post('/t', id => 'tx_d1', amount => 9000), ::post('/t', id => 'tx_d1', amount => 9000),
 ::post('/t', id => 'tx_d2', currency => 'USD'), ::post('/t', id => 'tx_d2', currency => 'USD'),
 ::post('/t', id => 'tx_d3', amount => 3000), ::post('/t', id => 'tx_d3', amount => 3000),
 ::post('/t', id => 'tx_d4', amount => 1000), ::post('/t', id => 'tx_d4', amount => 1000)]
--- error_code eval
[422, 422, 422, 422, 422, 422, 200, 200]
--- response_headers eval
["X-Txval-Verdict: declined\nX-Txval-Source: computed",
 "X-Txval-Verdict: declined\nX-Txval-Source: shm",
 "X-Txval-Verdict: declined\nX-Txval-Source: computed",
 "X-Txval-Verdict: declined\nX-Txval-Source: shm",
 "X-Txval-Verdict: declined\nX-Txval-Source: computed",
 "X-Txval-Verdict: declined\nX-Txval-Source: shm",
 "X-Txval-Verdict: approved\nX-Txval-Source: computed",
 "X-Txval-Verdict: approved\nX-Txval-Source: shm"]
--- response_body eval
[::v('tx_d1', 'computed', 'declined', ['amount_out_of_range', 'risk_too_high'], 30),
 ::v('tx_d1', 'shm', 'declined', ['amount_out_of_range', 'risk_too_high'], 30),
 ::v('tx_d2', 'computed', 'declined', ['currency_not_supported'], 0),
 ::v('tx_d2', 'shm', 'declined', ['currency_not_supported'], 0),
 ::v('tx_d3', 'computed', 'declined', ['risk_too_high'], 30),
 ::v('tx_d3', 'shm', 'declined', ['risk_too_high'], 30),
 ::v('tx_d4', 'computed'),
 ::v('tx_d4', 'shm')]
--- no_error_log
[error]
[alert]



=== TEST 3: the variables of a replay: $txval_source shm, verdict, reasons, score, id
--- http_config
    txval_cache_zone txval:1m;
--- config
    location /t {
        txval;
        txval_amount_limit EUR 100 5000;
        add_header X-V "$txval_verdict|$txval_reasons|$txval_risk_score|$txval_source|$txval_id" always;
    }
--- more_headers
Content-Type: application/json
--- request eval
[::post('/t', id => 'tx_v1', amount => 6000), ::post('/t', id => 'tx_v1', amount => 6000)]
--- error_code eval
[402, 402]
--- response_headers eval
["X-V: declined|amount_out_of_range|30|computed|tx_v1",
 "X-V: declined|amount_out_of_range|30|shm|tx_v1"]
--- response_body eval
[::v('tx_v1', 'computed', 'declined', ['amount_out_of_range'], 30),
 ::v('tx_v1', 'shm', 'declined', ['amount_out_of_range'], 30)]



=== TEST 4: 30 replays after the first, over two workers: all shm
--- http_config
    txval_cache_zone txval:1m;
--- config
    location /t { txval; }
--- more_headers
Content-Type: application/json
--- request eval
[map { ::post('/t', id => 'tx_m1') } 0 .. 30]
--- error_code eval
[(200) x 31]
--- response_headers eval
[::src('computed'), (::src('shm')) x 30]
--- response_body eval
[::v('tx_m1', 'computed'), (::v('tx_m1', 'shm')) x 30]
--- no_error_log
[error]
[alert]



=== TEST 5: the same content written differently is the same transaction (shm, no conflict)
amount 1000 = 1e3 = 1000.0 = 10E2; key order, white space, unknown fields and
null optional fields do not matter.
--- http_config
    txval_cache_zone txval:1m;
--- config
    location /t { txval; }
--- more_headers
Content-Type: application/json
--- request eval
[::post('/t', id => 'tx_s1', card_bin => '411111', country => 'DE'),
 ::post('/t', id => 'tx_s1', card_bin => '411111', country => 'DE', amount => '1e3'),
 ::post('/t', id => 'tx_s1', card_bin => '411111', country => 'DE', amount => '1000.0'),
 ::post('/t', id => 'tx_s1', card_bin => '411111', country => 'DE', amount => '10E2'),
 qq(POST /t\n { "country" : "DE", "card_bin":"411111", "card_token":"tok_1",\n"merchant_id":"m_1", "currency":"EUR", "amount":1000, "id":"tx_s1", "note":"x" }\n),
 ::post('/t', id => 'tx_s2'),
 ::post('/t', id => 'tx_s2', card_bin => \'null', country => \'null'),
 qq(POST /t\n{"id":"tx_s2","amount":1000,"currency":"EUR","merchant_id":"m_1","card_token":"tok_1","extra":{"card_bin":"411111"}})]
--- error_code eval
[(200) x 8]
--- response_body eval
[::v('tx_s1', 'computed'), (::v('tx_s1', 'shm')) x 4,
 ::v('tx_s2', 'computed'), (::v('tx_s2', 'shm')) x 2]



=== TEST 6: same id, a change in any content field: 409 idempotency_conflict; the original still replays
--- http_config
    txval_cache_zone txval:1m;
--- config
    location /t { txval; }
--- more_headers
Content-Type: application/json
--- request eval
my %base = (id => 'tx_c1', card_bin => '411111', country => 'DE');
[::post('/t', %base),
 ::post('/t', %base, amount => 1001),
 ::post('/t', %base, amount => 100),
 ::post('/t', %base, currency => 'USD'),
 ::post('/t', %base, merchant_id => 'm_2'),
 ::post('/t', %base, merchant_id => 'm_10'),
 ::post('/t', %base, card_token => 'tok_2'),
 ::post('/t', %base, card_token => 'TOK_1'),
 ::post('/t', %base, card_bin => '411112'),
 ::post('/t', %base, card_bin => '41111100'),
 ::post('/t', %base, card_bin => undef),
 ::post('/t', %base, card_bin => \'null'),
 ::post('/t', %base, country => 'FR'),
 ::post('/t', %base, country => undef),
 ::post('/t', %base, country => \'null'),
 ::post('/t', %base)]
--- error_code eval
[200, (409) x 14, 200]
--- response_headers eval
[::src('computed'), ("X-Txval-Source: \nX-Txval-Verdict: ") x 14, ::src('shm')]
--- response_body eval
[::v('tx_c1', 'computed'), (::conflict('tx_c1')) x 14, ::v('tx_c1', 'shm')]
--- no_error_log
[error]
[alert]



=== TEST 7: an optional field added to a stored transaction without it: 409
--- http_config
    txval_cache_zone txval:1m;
--- config
    location /t { txval; }
--- more_headers
Content-Type: application/json
--- request eval
[::post('/t', id => 'tx_c2'),
 ::post('/t', id => 'tx_c2', card_bin => '411111'),
 ::post('/t', id => 'tx_c2', card_bin => '000000'),
 ::post('/t', id => 'tx_c2', country => 'DE'),
 ::post('/t', id => 'tx_c2', card_bin => '411111', country => 'DE'),
 ::post('/t', id => 'tx_c2')]
--- error_code eval
[200, 409, 409, 409, 409, 200]
--- response_body eval
[::v('tx_c2', 'computed'), (::conflict('tx_c2')) x 4, ::v('tx_c2', 'shm')]



=== TEST 8: content that only moves between fields is a conflict too
merchant_id "ab" + card_token "c" against merchant_id "a" + card_token "bc".
--- http_config
    txval_cache_zone txval:1m;
--- config
    location /t { txval; }
--- more_headers
Content-Type: application/json
--- request eval
[::post('/t', id => 'tx_c3', merchant_id => 'ab', card_token => 'c'),
 ::post('/t', id => 'tx_c3', merchant_id => 'a', card_token => 'bc'),
 ::post('/t', id => 'tx_c3', merchant_id => 'abc', card_token => 'c'),
 ::post('/t', id => 'tx_c3', merchant_id => 'ab', card_token => 'c')]
--- error_code eval
[200, 409, 409, 200]
--- response_body eval
[::v('tx_c3', 'computed'), (::conflict('tx_c3')) x 2, ::v('tx_c3', 'shm')]



=== TEST 9: another id with the same content is a new transaction (computed), not a conflict
--- http_config
    txval_cache_zone txval:1m;
--- config
    location /t { txval; }
--- more_headers
Content-Type: application/json
--- request eval
[::post('/t', id => 'tx_n1'), ::post('/t', id => 'tx_n2'), ::post('/t', id => 'TX_N1'),
 ::post('/t', id => 'tx_n1.'), ::post('/t', id => 'tx_n1'), ::post('/t', id => 'tx_n2')]
--- error_code eval
[(200) x 6]
--- response_body eval
[::v('tx_n1', 'computed'), ::v('tx_n2', 'computed'), ::v('TX_N1', 'computed'),
 ::v('tx_n1.', 'computed'), ::v('tx_n1', 'shm'), ::v('tx_n2', 'shm')]



=== TEST 10: two ids with the same hash (crc32) are kept apart
crc32("tx_h29685295") == crc32("tx_h32060020") == 0xb690e2a9
--- http_config
    txval_cache_zone txval:1m;
--- config
    location /t { txval; }
--- more_headers
Content-Type: application/json
--- request eval
[::post('/t', id => 'tx_h29685295'),
 ::post('/t', id => 'tx_h32060020', amount => 2000),
 ::post('/t', id => 'tx_h29685295'),
 ::post('/t', id => 'tx_h32060020', amount => 2000),
 ::post('/t', id => 'tx_h29685295', amount => 2000),
 ::post('/t', id => 'tx_h32060020')]
--- error_code eval
[200, 200, 200, 200, 409, 409]
--- response_body eval
[::v('tx_h29685295', 'computed'), ::v('tx_h32060020', 'computed'),
 ::v('tx_h29685295', 'shm'), ::v('tx_h32060020', 'shm'),
 ::conflict('tx_h29685295'), ::conflict('tx_h32060020')]



=== TEST 11: an invalid body with a known id is 400 (the body's own error), not 409
--- http_config
    txval_cache_zone txval:1m;
--- config
    location /t { txval; }
--- more_headers
Content-Type: application/json
--- request eval
[::post('/t', id => 'tx_i1'),
 ::post('/t', id => 'tx_i1', amount => '"1000x"'),
 ::post('/t', id => 'tx_i1', amount => '1.5'),
 ::post('/t', id => 'tx_i1', currency => undef),
 ::post('/t', id => 'tx_i1', country => 'de'),
 "POST /t\n" . ::tx(id => 'tx_i1') . ',',
 qq(POST /t\n{"id":"tx_i1","amount":1000,"currency":"EUR","merchant_id":"m_1","card_token":"tok_1","pan":"4111111111111111"}),
 qq(POST /t\n{"id":"tx_i1","id":"tx_i1","amount":1000,"currency":"EUR","merchant_id":"m_1","card_token":"tok_1"}),
 ::post('/t', id => 'tx_i1')]
--- error_code eval
[200, 400, 400, 400, 400, 400, 400, 400, 200]
--- response_body_like eval
['"source":"computed"',
 '^\{"error":"invalid_field","field":"amount",',
 '^\{"error":"invalid_field","field":"amount",',
 '^\{"error":"invalid_field","field":"currency","detail":"currency is required"\}$',
 '^\{"error":"invalid_field","field":"country",',
 '^\{"error":"invalid_json","detail":"the body has data after the JSON value"\}$',
 '^\{"error":"pan_not_accepted",',
 '^\{"error":"invalid_field","field":"id","detail":"a field appears more than once"\}$',
 '^\{"id":"tx_i1","verdict":"approved","reasons":\[\],"risk_score":0,"source":"shm"\}$']
--- no_error_log
idempotency_conflict
4111111111111111
[alert]



=== TEST 12: ttl=1s: after the ttl the entry is gone, the id is computed again
limit_req delays the /delay requests (1 r/s): three of them take about 2 s.
(/delay needs a content handler: "return" runs in the rewrite phase, before
limit_req's preaccess phase, and would never be delayed.)
A changed content after the expiry is a new transaction, which then owns the id.
--- http_config
    txval_cache_zone ttl:1m ttl=1s;
    limit_req_zone $server_port zone=slow:1m rate=1r/s;
--- config
    location /t { txval; }
    location /delay {
        limit_req zone=slow burst=10;
        empty_gif;
    }
--- more_headers
Content-Type: application/json
--- request eval
[::post('/t', id => 'tx_t1'), ::post('/t', id => 'tx_t1'),
 "GET /delay", "GET /delay", "GET /delay",
 ::post('/t', id => 'tx_t1'), ::post('/t', id => 'tx_t1'),
 "GET /delay", "GET /delay", "GET /delay",
 ::post('/t', id => 'tx_t1', amount => 2000), ::post('/t', id => 'tx_t1')]
--- error_code eval
[200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 409]
--- response_body_like eval
['"source":"computed"', '"source":"shm"', '', '', '',
 '"source":"computed"', '"source":"shm"', '', '', '',
 '"source":"computed"', '"error":"idempotency_conflict"']
--- timeout: 10
--- no_error_log
[error]
[alert]



=== TEST 13: ttl counts from the store: a hit does not extend it
ttl=2s; /delay at 2 r/s: a hit at about 1 s, the last request at about 2.5 s.
--- http_config
    txval_cache_zone ttl2:1m ttl=2s;
    limit_req_zone $server_port zone=slow2:1m rate=2r/s;
--- config
    location /t { txval; }
    location /delay {
        limit_req zone=slow2 burst=20;
        empty_gif;
    }
--- more_headers
Content-Type: application/json
--- request eval
[::post('/t', id => 'tx_t2'),
 "GET /delay", "GET /delay", "GET /delay",
 ::post('/t', id => 'tx_t2'),
 "GET /delay", "GET /delay", "GET /delay",
 ::post('/t', id => 'tx_t2')]
--- error_code eval
[(200) x 9]
--- response_body_like eval
['"source":"computed"', '', '', '', '"source":"shm"', '', '', '',
 '"source":"computed"']
--- timeout: 10
--- no_error_log
[error]
[alert]



=== TEST 14: no txval_cache_zone: every replay is computed and nothing is a conflict
--- config
    location /t { txval; }
--- more_headers
Content-Type: application/json
--- request eval
[::post('/t', id => 'tx_z1'), ::post('/t', id => 'tx_z1'), ::post('/t', id => 'tx_z1', amount => 2000),
 ::post('/t', id => 'tx_z1', currency => 'USD')]
--- error_code eval
[200, 200, 200, 200]
--- response_headers eval
[(::src('computed')) x 4]
--- response_body eval
[(::v('tx_z1', 'computed')) x 4]
--- no_error_log
idempotency_conflict
[error]



=== TEST 15: a zone of the minimum size under 300 distinct ids (3x what it holds): every request 200, the newest kept, the oldest evicted
(The runner spends ~50 ms per request on the error log, so 300 here;
TEST 16 pushes thousands of ids through nginx's own subrequests.)
--- http_config
    txval_cache_zone c:32k;
--- config
    location /t { txval; }
--- more_headers
Content-Type: application/json
--- request eval
[(map { ::post('/t', id => "tx_e$_") } 1 .. 300),
 (map { ::post('/t', id => "tx_e$_") } 281 .. 300),
 ::post('/t', id => 'tx_e1'), ::post('/t', id => 'tx_e150')]
--- error_code eval
[(200) x 322]
--- response_body eval
[(map { ::v("tx_e$_", 'computed') } 1 .. 300),
 (map { ::v("tx_e$_", 'shm') } 281 .. 300),
 ::v('tx_e1', 'computed'), ::v('tx_e150', 'computed')]
--- no_error_log
[error]
[alert]
[crit]
[emerg]



=== TEST 16: the minimum zone under 5000 distinct ids (SSI, one subrequest each, proxied to /t): all computed, the newest 20 replay from shm, old ones are gone
GET /fill runs 5000 subrequests in turn (wait="yes"), each a POST to /t with
id tx_f<n>; its body is the 5000 verdicts in order, so any request that was
not a 200 computed verdict shows.
--- http_config
    txval_cache_zone c:32k;
--- config
    location /t { txval; }
    location = /fill.html {
        ssi on;
        ssi_types *;
        ssi_last_modified off;
    }
    location = /one {
        internal;
        proxy_pass http://127.0.0.1:$server_port/t;
        proxy_method POST;
        proxy_pass_request_headers off;
        proxy_pass_request_body off;
        proxy_set_header Content-Type application/json;
        proxy_set_body '{"id":"tx_f$arg_n","amount":1000,"currency":"EUR","merchant_id":"m_1","card_token":"tok_1"}';
    }
--- user_files eval
">>> fill.html\n"
. CORE::join('', map { qq(<!--# include virtual="/one?n=$_" wait="yes" -->) } 1 .. 5000)
--- more_headers
Content-Type: application/json
--- request eval
["GET /fill.html",
 (map { ::post('/t', id => "tx_f$_") } 4981 .. 5000),
 ::post('/t', id => 'tx_f1'), ::post('/t', id => 'tx_f2500'), ::post('/t', id => 'tx_f4800')]
--- error_code eval
[(200) x 24]
--- response_body eval
[CORE::join('', map { ::v("tx_f$_", 'computed') } 1 .. 5000),
 (map { ::v("tx_f$_", 'shm') } 4981 .. 5000),
 ::v('tx_f1', 'computed'), ::v('tx_f2500', 'computed'), ::v('tx_f4800', 'computed')]
--- timeout: 20
--- no_error_log
[error]
[alert]
[crit]
[emerg]



=== TEST 17: txval_cache_zone without NAME:SIZE
--- http_config
    txval_cache_zone foo;
--- config
    location /t { txval; }
--- request
GET /t
--- must_die
--- error_log
invalid value "foo" in "txval_cache_zone" directive, it must be NAME:SIZE



=== TEST 18: txval_cache_zone with an empty name
--- http_config
    txval_cache_zone :1m;
--- config
    location /t { txval; }
--- request
GET /t
--- must_die
--- error_log
invalid value ":1m" in "txval_cache_zone" directive, it must be NAME:SIZE



=== TEST 19: txval_cache_zone with a bad size
--- http_config
    txval_cache_zone c:xx;
--- config
    location /t { txval; }
--- request
GET /t
--- must_die
--- error_log
invalid zone size "c:xx" in "txval_cache_zone" directive



=== TEST 20: txval_cache_zone with no size
--- http_config
    txval_cache_zone c:;
--- config
    location /t { txval; }
--- request
GET /t
--- must_die
--- error_log
invalid zone size "c:" in "txval_cache_zone" directive



=== TEST 21: txval_cache_zone below the minimum (8k)
--- http_config
    txval_cache_zone c:8k;
--- config
    location /t { txval; }
--- request
GET /t
--- must_die
--- error_log
zone "c:8k" is too small in "txval_cache_zone" directive, the minimum is 32k



=== TEST 22: txval_cache_zone just below the minimum (31k)
--- http_config
    txval_cache_zone c:31k;
--- config
    location /t { txval; }
--- request
GET /t
--- must_die
--- error_log
zone "c:31k" is too small in "txval_cache_zone" directive, the minimum is 32k



=== TEST 23: txval_cache_zone ttl=0
--- http_config
    txval_cache_zone c:1m ttl=0;
--- config
    location /t { txval; }
--- request
GET /t
--- must_die
--- error_log
invalid value "ttl=0" in "txval_cache_zone" directive, ttl must be a time of at least 1s



=== TEST 24: txval_cache_zone ttl below 1s
--- http_config
    txval_cache_zone c:1m ttl=500ms;
--- config
    location /t { txval; }
--- request
GET /t
--- must_die
--- error_log
invalid value "ttl=500ms" in "txval_cache_zone" directive, ttl must be a time of at least 1s



=== TEST 25: txval_cache_zone ttl that is not a time
--- http_config
    txval_cache_zone c:1m ttl=soon;
--- config
    location /t { txval; }
--- request
GET /t
--- must_die
--- error_log
invalid value "ttl=soon" in "txval_cache_zone" directive, ttl must be a time of at least 1s



=== TEST 26: txval_cache_zone unknown parameter
--- http_config
    txval_cache_zone c:1m foo=1;
--- config
    location /t { txval; }
--- request
GET /t
--- must_die
--- error_log
invalid parameter "foo=1" in "txval_cache_zone" directive



=== TEST 27: txval_cache_zone twice
--- http_config
    txval_cache_zone c:1m;
    txval_cache_zone d:1m;
--- config
    location /t { txval; }
--- request
GET /t
--- must_die
--- error_log
"txval_cache_zone" directive is duplicate



=== TEST 28: txval_cache_zone in a server block
--- config
    txval_cache_zone c:1m;
    location /t { txval; }
--- request
GET /t
--- must_die
--- error_log
"txval_cache_zone" directive is not allowed here



=== TEST 29: txval_cache_zone in a location
--- config
    location /t {
        txval_cache_zone c:1m;
        txval;
    }
--- request
GET /t
--- must_die
--- error_log
"txval_cache_zone" directive is not allowed here



=== TEST 30: the minimum size and the longest ttl are accepted
--- http_config
    txval_cache_zone c:32k ttl=30d;
--- config
    location /t { txval; }
--- more_headers
Content-Type: application/json
--- request eval
[::post('/t', id => 'tx_l1'), ::post('/t', id => 'tx_l1')]
--- error_code eval
[200, 200]
--- response_body eval
[::v('tx_l1', 'computed'), ::v('tx_l1', 'shm')]



=== TEST 31: a replay of the very same bytes is answered without parsing; a body whose first "id" key is not its id is still answered for its own id
--- http_config
    txval_cache_zone txval:1m;
--- config
    location /t { txval; }
--- more_headers
Content-Type: application/json
--- request eval
my $decoy = '{"meta":{"id":"tx_b"},"id":"tx_a","amount":1000,"currency":"USD",'
          . '"merchant_id":"m_acme","card_token":"tok_4242"}';
my $other = '{"meta":{"id":"tx_b"},"id":"tx_a","amount":1001,"currency":"USD",'
          . '"merchant_id":"m_acme","card_token":"tok_4242"}';
[::post('/t', id => 'tx_b'), "POST /t\n$decoy", "POST /t\n$decoy", "POST /t\n$other",
 ::post('/t', id => 'tx_b'), ::post('/t', id => 'tx_b', amount => 1001)]
--- error_code eval
[200, 200, 200, 409, 200, 409]
--- response_body eval
[::v('tx_b', 'computed'), ::v('tx_a', 'computed'), ::v('tx_a', 'shm'),
 qr/^\{"error":"idempotency_conflict".*"id":"tx_a"/,
 ::v('tx_b', 'shm'),
 qr/^\{"error":"idempotency_conflict".*"id":"tx_b"/]
--- no_error_log
[error]
[alert]
