# Reading the body wherever nginx keeps it: in memory, spilled to a
# temporary file, in a file only; chunked (chunks split inside JSON
# tokens), empty chunked; and client_max_body_size at and over the limit.

use lib 't/lib';
# no_plan: the blocks check different numbers of things (requests,
# headers, log lines), so no plan of repeat_each() * blocks() * N fits
use Test::Txval 'no_plan';
use Txval::Tx qw(computed);

# a valid transaction whose unknown "note" member pads it to exactly $len
# bytes (the id is at the end, after the padding)
sub ::sized {
    my ($len, $id) = @_;
    $id = 'tx_1' unless defined $id;
    my $head = '{"note":"';
    my $tail = qq!","amount":1000,"currency":"USD","merchant_id":"m_1",!
               . qq!"card_token":"tok_1","id":"$id"}!;
    my $pad = $len - length($head) - length($tail);
    die "::sized: $len is too short\n" if $pad < 0;
    return $head . ('x' x $pad) . $tail;
}

# the exact bytes of a POST /t with a chunked body made of these chunks
sub ::chunked_post {
    my $body = join '', map { sprintf("%x\r\n%s\r\n", length $_, $_) } @_;
    return "POST /t HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
           . "Content-Type: application/json\r\n"
           . "Transfer-Encoding: chunked\r\n\r\n" . $body . "0\r\n\r\n";
}

log_level('info');
no_shuffle();
run_tests();

__DATA__

=== TEST 1: a body in memory
--- config
    location /t {
        client_body_buffer_size 16k;
        txval;
    }
--- more_headers
Content-Type: application/json
--- request eval
"POST /t\n" . ::sized(4000, 'tx_mem')
--- error_code: 200
--- response_body eval
::computed('tx_mem')
--- no_error_log
a client request body is buffered to a temporary file
[error]



=== TEST 2: a body spilled to a temporary file (client_body_buffer_size 1k, 3k body, the id after the first 1k)
--- config
    location /t {
        client_body_buffer_size 1k;
        txval;
    }
--- more_headers
Content-Type: application/json
--- request eval
"POST /t\n" . ::sized(3000, 'tx_spilled')
--- error_code: 200
--- response_headers
X-Txval-Verdict: approved
--- response_body eval
::computed('tx_spilled')
--- error_log
a client request body is buffered to a temporary file
--- no_error_log
[error]
txval: refused



=== TEST 3: a spilled body is fully validated: a control character near its end
--- config
    location /t {
        client_body_buffer_size 1k;
        txval;
    }
--- more_headers
Content-Type: application/json
--- request eval
"POST /t\n" . (::sized(3000) =~ s/"\}$/\x01"}/r)
--- error_code: 400
--- response_body
{"error":"invalid_json","detail":"the body holds a control character"}
--- error_log
a client request body is buffered to a temporary file
txval: refused: invalid_json
--- no_error_log
[error]



=== TEST 4: a spilled body: a field rule failing after the first 1k
--- config
    location /t {
        client_body_buffer_size 1k;
        txval;
    }
--- more_headers
Content-Type: application/json
--- request eval
"POST /t\n" . ::sized(3000, 'tx 1')
--- error_code: 400
--- response_body
{"error":"invalid_field","field":"id","detail":"id must be a string of 1-64 characters from A-Z a-z 0-9 . _ : -"}
--- error_log
a client request body is buffered to a temporary file
txval: refused: invalid_field field id
--- no_error_log
[error]



=== TEST 5: a spilled body carrying a card number: refused, and the number is not logged
--- config
    location /t {
        client_body_buffer_size 1k;
        txval;
    }
--- more_headers
Content-Type: application/json
--- request eval
"POST /t\n" . (::sized(3000) =~ s/\}$/,"pan":"4111111111111111"}/r)
--- error_code: 400
--- response_body
{"error":"pan_not_accepted","detail":"card numbers are not accepted: send a card_token"}
--- error_log
a client request body is buffered to a temporary file
txval: refused: pan_not_accepted
--- no_error_log
4111111111111111
[error]



=== TEST 6: client_body_in_file_only on: a small body, read from the file
--- config
    location /t {
        client_body_in_file_only on;
        txval;
    }
--- more_headers
Content-Type: application/json
--- request eval
"POST /t\n" . ::sized(200, 'tx_file_small')
--- error_code: 200
--- response_body eval
::computed('tx_file_small')
--- error_log
a client request body is buffered to a temporary file
--- no_error_log
[error]
txval: refused



=== TEST 7: client_body_in_file_only on: a large body, read from the file
--- config
    location /t {
        client_body_in_file_only on;
        client_body_buffer_size 1k;
        txval;
    }
--- more_headers
Content-Type: application/json
--- request eval
"POST /t\n" . ::sized(5000, 'tx_file_large')
--- error_code: 200
--- response_body eval
::computed('tx_file_large')
--- error_log
a client request body is buffered to a temporary file
--- no_error_log
[error]
txval: refused



=== TEST 8: client_body_in_file_only clean: invalid JSON in the file is reported
--- config
    location /t {
        client_body_in_file_only clean;
        txval;
    }
--- more_headers
Content-Type: application/json
--- request eval
"POST /t\n" . (::sized(300) =~ s/\}$//r)
--- error_code: 400
--- response_body
{"error":"invalid_json","detail":"the body is not valid JSON"}
--- error_log
a client request body is buffered to a temporary file
txval: refused: invalid_json
--- no_error_log
[error]



=== TEST 9: chunked body, chunks split inside a key, a string, a number and a literal
--- config
    location /t {
        # only 12345 is in range; 2 x 12345 >= 24690 gives risk 30
        txval_amount_limit USD 12345 24690;
        txval;
    }
--- raw_request eval
::chunked_post(
    '{"id":"tx_ch',
    'unk","amo',
    'unt":123',
    '45,"currency":"US',
    'D","merchant_id":"m_1","card_token":"tok_1","flag":tr',
    'ue,"n":nu',
    'll}',
)
--- error_code: 200
--- response_body eval
::computed('tx_chunk', 30)
--- no_error_log
[error]
txval: refused



=== TEST 10: chunked body, a chunk boundary inside a UTF-8 character, one byte per chunk at the end
--- config
    location /t {
        txval;
    }
--- raw_request eval
::chunked_post(
    qq!{"note":"caf\xc3!,
    qq!\xa9 \xf0\x9f!,
    qq!\x98\x80","id":"tx_utf8","amount":1000,"currency":"USD","merchant_id":"m_1","card_token":"tok_1"!,
    '}',
    ' ',
    "\n",
)
--- error_code: 200
--- response_body eval
::computed('tx_utf8')
--- no_error_log
[error]
txval: refused



=== TEST 11: chunked body spilled to a temporary file
--- config
    location /t {
        client_body_buffer_size 1k;
        txval;
    }
--- raw_request eval
my $b = ::sized(4000, 'tx_chunked_file');
::chunked_post(map { substr($b, $_ * 700, 700) } 0 .. 5)
--- error_code: 200
--- response_body eval
::computed('tx_chunked_file')
--- error_log
a client request body is buffered to a temporary file
--- no_error_log
[error]
txval: refused



=== TEST 12: empty chunked body: the body is empty
--- config
    location /t {
        txval;
    }
--- raw_request eval
::chunked_post()
--- error_code: 400
--- response_body
{"error":"invalid_json","detail":"the body is empty"}
--- error_log
txval: refused: invalid_json
--- no_error_log
[error]



=== TEST 13: a body of exactly client_max_body_size is accepted, one byte more is 413
--- config
    location /t {
        client_max_body_size 256;
        txval;
    }
--- more_headers
Content-Type: application/json
--- request eval
[
"POST /t\n" . ::sized(256, 'tx_at_limit'),
"POST /t\n" . ::sized(257, 'tx_over_limit'),
]
--- error_code eval
[200, 413]
--- response_body_like eval
[
'^\{"id":"tx_at_limit","verdict":"approved",',
'413 Request Entity Too Large',
]
--- no_error_log
txval: refused
[alert]



=== TEST 14: one byte over client_max_body_size: 413, logged by nginx
--- config
    location /t {
        client_max_body_size 256;
        txval;
    }
--- more_headers
Content-Type: application/json
--- request eval
"POST /t\n" . ::sized(257, 'tx_over_limit')
--- error_code: 413
--- response_body_like: 413 Request Entity Too Large
--- error_log
client intended to send too large body: 257 bytes
--- no_error_log
txval: refused



=== TEST 15: chunked: exactly client_max_body_size is accepted
--- config
    location /t {
        client_max_body_size 256;
        txval;
    }
--- raw_request eval
my $b = ::sized(256, 'tx_chunked_at_limit');
::chunked_post(substr($b, 0, 100), substr($b, 100, 100), substr($b, 200))
--- error_code: 200
--- response_body eval
::computed('tx_chunked_at_limit')
--- no_error_log
[error]
txval: refused



=== TEST 16: chunked: one byte over client_max_body_size is 413
--- config
    location /t {
        client_max_body_size 256;
        txval;
    }
--- raw_request eval
my $b = ::sized(257, 'tx_chunked_over');
::chunked_post(substr($b, 0, 100), substr($b, 100, 100), substr($b, 200))
--- error_code: 413
--- response_body_like: 413 Request Entity Too Large
--- error_log
client intended to send too large chunked body
--- no_error_log
txval: refused
