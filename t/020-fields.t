# Field rules: each field's valid and invalid edges, required fields,
# duplicates, unknown fields, and which field is reported when several
# fail (id, amount, currency, merchant_id, card_token, card_bin, country).

use lib 't/lib';
# no_plan: the blocks check different numbers of things (requests,
# headers, log lines), so no plan of repeat_each() * blocks() * N fits
use Test::Txval 'no_plan';
use Txval::Tx qw(post_raw computed invalid);

# ::post_raw('/t', key => $json, ...): a POST /t of Txval::Tx's default
# transaction (id tx_1, 1000 USD, merchant m_1, card tok_1) with members
# replaced, dropped (undef) or added

sub ::required { ::invalid($_[0], "$_[0] is required") }
sub ::duplicate { ::invalid($_[0], "a field appears more than once") }

log_level('info');
no_shuffle();
run_tests();

__DATA__

=== TEST 1: id: 1 and 64 characters, every allowed punctuation, every class of the alphabet
--- config
    location /t {
        txval;
    }
--- more_headers
Content-Type: application/json
--- request eval
[
::post_raw('/t', id => '"a"'),
::post_raw('/t', id => '"' . ('x' x 63) . 'y"'),
::post_raw('/t', id => '"a.b"'),
::post_raw('/t', id => '"a_b"'),
::post_raw('/t', id => '"a:b"'),
::post_raw('/t', id => '"a-b"'),
::post_raw('/t', id => '"AZaz09._:-"'),
::post_raw('/t', id => '"-"'),
::post_raw('/t', id => '"\u0041"'),
]
--- error_code eval
[200, 200, 200, 200, 200, 200, 200, 200, 200]
--- response_body eval
[
::computed('a'),
::computed(('x' x 63) . 'y'),
::computed('a.b'),
::computed('a_b'),
::computed('a:b'),
::computed('a-b'),
::computed('AZaz09._:-'),
::computed('-'),
::computed('A'),
]
--- no_error_log
[error]
txval: refused



=== TEST 2: id: 65 characters, empty, a character outside the alphabet, not a string
--- config
    location /t {
        txval;
    }
--- more_headers
Content-Type: application/json
--- request eval
[
::post_raw('/t', id => '"' . ('x' x 65) . '"'),
::post_raw('/t', id => '""'),
::post_raw('/t', id => '"a b"'),
::post_raw('/t', id => '"a/b"'),
::post_raw('/t', id => '"a+b"'),
::post_raw('/t', id => '"a@b"'),
::post_raw('/t', id => '"a\"b"'),
::post_raw('/t', id => '"a\nb"'),
::post_raw('/t', id => '"caf\u00e9"'),
::post_raw('/t', id => qq!"caf\xc3\xa9"!),
::post_raw('/t', id => '123'),
::post_raw('/t', id => 'true'),
::post_raw('/t', id => '["tx_1"]'),
::post_raw('/t', id => '{"id":"tx_1"}'),
]
--- error_code eval
[400, 400, 400, 400, 400, 400, 400, 400, 400, 400, 400, 400, 400, 400]
--- response_body eval
[ (::invalid('id')) x 14 ]
--- error_log
txval: refused: invalid_field field id
--- no_error_log
[error]



=== TEST 3: amount: 1, 2^53-1, and an integral value written as 1e3, 1E3, 1e+3, 1000.0, 10000e-1, 0.1e4
--- config
    location /t {
        txval;
    }
    location /exact {
        # only 1000 is in range, and 2 x 1000 >= 1000 gives risk 30
        txval_amount_limit USD 1000 1000;
        txval;
    }
--- more_headers
Content-Type: application/json
--- request eval
[
::post_raw('/t', amount => '1'),
::post_raw('/t', amount => '9007199254740991'),
map { ::post_raw('/exact', amount => $_) }
    qw(1000 1e3 1E3 1e+3 1000.0 10000e-1 0.1e4),
]
--- error_code eval
[200, 200, 200, 200, 200, 200, 200, 200, 200]
--- response_body eval
[ ::computed(), ::computed(), (::computed('tx_1', 30)) x 7 ]
--- no_error_log
[error]
txval: refused



=== TEST 4: amount: 0, -0, negative, fractional, 2^53, out of double range, a string that is not a number, other types
--- config
    location /t {
        txval;
    }
--- more_headers
Content-Type: application/json
--- request eval
[
::post_raw('/t', amount => '0'),
::post_raw('/t', amount => '-0'),
::post_raw('/t', amount => '-1'),
::post_raw('/t', amount => '-1000'),
::post_raw('/t', amount => '1.5'),
::post_raw('/t', amount => '0.5'),
::post_raw('/t', amount => '1000.5'),
::post_raw('/t', amount => '9007199254740992'),
::post_raw('/t', amount => '18446744073709551616'),
::post_raw('/t', amount => '1e400'),
::post_raw('/t', amount => '-1e400'),
::post_raw('/t', amount => '1e-400'),
::post_raw('/t', amount => '"1000 "'),
::post_raw('/t', amount => 'true'),
::post_raw('/t', amount => 'false'),
::post_raw('/t', amount => '[1000]'),
::post_raw('/t', amount => '{"v":1000}'),
::post_raw('/t', amount => '1.0000000000000001'),
::post_raw('/t', amount => '9007199254740990.5'),
::post_raw('/t', amount => '100.000000000000000000001e2'),
]
--- error_code eval
[ (400) x 20 ]
--- response_body eval
[ (::invalid('amount')) x 20 ]
--- error_log
txval: refused: invalid_field field amount
--- no_error_log
[error]



=== TEST 5: currency: 3 uppercase letters only
--- config
    location /t {
        txval;
    }
--- more_headers
Content-Type: application/json
--- request eval
[
::post_raw('/t', currency => '"EUR"'),
::post_raw('/t', currency => '"XTS"'),
::post_raw('/t', currency => '"usd"'),
::post_raw('/t', currency => '"Usd"'),
::post_raw('/t', currency => '"US"'),
::post_raw('/t', currency => '"USDD"'),
::post_raw('/t', currency => '"U1D"'),
::post_raw('/t', currency => '"U$D"'),
::post_raw('/t', currency => '""'),
::post_raw('/t', currency => '"\u00dcSD"'),
::post_raw('/t', currency => '840'),
::post_raw('/t', currency => '["USD"]'),
]
--- error_code eval
[200, 200, (400) x 10]
--- response_body eval
[ ::computed(), ::computed(), (::invalid('currency')) x 10 ]
--- no_error_log
[error]



=== TEST 6: merchant_id: 1 and 64 characters and punctuation are fine; 65, empty, other characters, not a string are not
--- config
    location /t {
        txval;
    }
--- more_headers
Content-Type: application/json
--- request eval
[
::post_raw('/t', merchant_id => '"m"'),
::post_raw('/t', merchant_id => '"' . ('m' x 64) . '"'),
::post_raw('/t', merchant_id => '"Mer.ch_an:t-09"'),
::post_raw('/t', merchant_id => '"' . ('m' x 65) . '"'),
::post_raw('/t', merchant_id => '""'),
::post_raw('/t', merchant_id => '"m 1"'),
::post_raw('/t', merchant_id => '"m/1"'),
::post_raw('/t', merchant_id => '"m,1"'),
::post_raw('/t', merchant_id => '42'),
]
--- error_code eval
[200, 200, 200, (400) x 6]
--- response_body eval
[ ::computed(), ::computed(), ::computed(), (::invalid('merchant_id')) x 6 ]
--- no_error_log
[error]



=== TEST 7: card_token: 1 and 128 characters and punctuation are fine; 129, empty, other characters, not a string are not
--- config
    location /t {
        txval;
    }
--- more_headers
Content-Type: application/json
--- request eval
[
::post_raw('/t', card_token => '"t"'),
::post_raw('/t', card_token => '"' . ('t' x 128) . '"'),
::post_raw('/t', card_token => '"tok.en_1:x-Y"'),
::post_raw('/t', card_token => '"' . ('t' x 129) . '"'),
::post_raw('/t', card_token => '""'),
::post_raw('/t', card_token => '"tok 1"'),
::post_raw('/t', card_token => '"tok=1"'),
::post_raw('/t', card_token => '"tok/1"'),
::post_raw('/t', card_token => '4111111111111111'),
]
--- error_code eval
[200, 200, 200, (400) x 6]
--- response_body eval
[ ::computed(), ::computed(), ::computed(), (::invalid('card_token')) x 6 ]
--- no_error_log
[error]



=== TEST 8: card_bin (optional): 6, 7, 8 digits and null are fine; 5, 9 digits, letters, a number, empty are not
--- config
    location /t {
        txval;
    }
--- more_headers
Content-Type: application/json
--- request eval
[
::post_raw('/t', card_bin => '"411111"'),
::post_raw('/t', card_bin => '"4111111"'),
::post_raw('/t', card_bin => '"41111111"'),
::post_raw('/t', card_bin => 'null'),
::post_raw('/t', card_bin => '"41111"'),
::post_raw('/t', card_bin => '"411111111"'),
::post_raw('/t', card_bin => '"41111a"'),
::post_raw('/t', card_bin => '"ABCDEF"'),
::post_raw('/t', card_bin => '"4111 11"'),
::post_raw('/t', card_bin => '"-411111"'),
::post_raw('/t', card_bin => '""'),
::post_raw('/t', card_bin => '411111'),
::post_raw('/t', card_bin => 'false'),
]
--- error_code eval
[200, 200, 200, 200, (400) x 9]
--- response_body eval
[ (::computed()) x 4, (::invalid('card_bin')) x 9 ]
--- no_error_log
[error]



=== TEST 9: country (optional): 2 uppercase letters and null are fine; anything else is not
--- config
    location /t {
        txval;
    }
--- more_headers
Content-Type: application/json
--- request eval
[
::post_raw('/t', country => '"US"'),
::post_raw('/t', country => '"ZZ"'),
::post_raw('/t', country => 'null'),
::post_raw('/t', country => '"us"'),
::post_raw('/t', country => '"Us"'),
::post_raw('/t', country => '"USA"'),
::post_raw('/t', country => '"U"'),
::post_raw('/t', country => '""'),
::post_raw('/t', country => '"U1"'),
::post_raw('/t', country => '840'),
]
--- error_code eval
[200, 200, 200, (400) x 7]
--- response_body eval
[ (::computed()) x 3, (::invalid('country')) x 7 ]
--- no_error_log
[error]



=== TEST 10: each required field missing: "<field> is required"
--- config
    location /t {
        txval;
    }
--- more_headers
Content-Type: application/json
--- request eval
[
::post_raw('/t', id => undef),
::post_raw('/t', amount => undef),
::post_raw('/t', currency => undef),
::post_raw('/t', merchant_id => undef),
::post_raw('/t', card_token => undef),
"POST /t\n{}",
]
--- error_code eval
[ (400) x 6 ]
--- response_body eval
[
::required('id'),
::required('amount'),
::required('currency'),
::required('merchant_id'),
::required('card_token'),
::required('id'),
]
--- error_log
txval: refused: invalid_field field
--- no_error_log
[error]



=== TEST 11: each required field null: "<field> is required"
--- config
    location /t {
        txval;
    }
--- more_headers
Content-Type: application/json
--- request eval
[
::post_raw('/t', id => 'null'),
::post_raw('/t', amount => 'null'),
::post_raw('/t', currency => 'null'),
::post_raw('/t', merchant_id => 'null'),
::post_raw('/t', card_token => 'null'),
]
--- error_code eval
[ (400) x 5 ]
--- response_body eval
[
::required('id'),
::required('amount'),
::required('currency'),
::required('merchant_id'),
::required('card_token'),
]
--- no_error_log
[error]



=== TEST 12: optional fields absent or both null: approved
--- config
    location /t {
        txval;
    }
--- more_headers
Content-Type: application/json
--- request eval
[
::post_raw('/t'),
::post_raw('/t', card_bin => 'null', country => 'null'),
::post_raw('/t', card_bin => '"411111"', country => '"FR"'),
]
--- error_code eval
[200, 200, 200]
--- response_body eval
[ (::computed()) x 3 ]
--- no_error_log
[error]



=== TEST 13: a known field twice is refused, even with the same value; the field is named
--- config
    location /t {
        txval;
    }
--- more_headers
Content-Type: application/json
--- request eval
[
::post_raw('/t', zz => 1) =~ s/"zz":1/"id":"tx_1"/r,
::post_raw('/t', zz => 1) =~ s/"zz":1/"amount":2000/r,
::post_raw('/t', zz => 1) =~ s/"zz":1/"currency":"USD"/r,
::post_raw('/t', zz => 1) =~ s/"zz":1/"merchant_id":"m_2"/r,
::post_raw('/t', zz => 1) =~ s/"zz":1/"card_token":"tok_1"/r,
::post_raw('/t', card_bin => '"411111"', zz => 1) =~ s/"zz":1/"card_bin":"411111"/r,
::post_raw('/t', country => '"US"', zz => 1) =~ s/"zz":1/"country":null/r,
::post_raw('/t', zz => 1) =~ s/"zz":1/"i\\u0064":"tx_1"/r,
]
--- error_code eval
[ (400) x 8 ]
--- response_body eval
[
::duplicate('id'),
::duplicate('amount'),
::duplicate('currency'),
::duplicate('merchant_id'),
::duplicate('card_token'),
::duplicate('card_bin'),
::duplicate('country'),
::duplicate('id'),
]
--- error_log
txval: refused: invalid_field field
--- no_error_log
[error]



=== TEST 14: unknown fields are ignored, whatever their type, twice, or in another case
--- config
    location /t {
        txval;
    }
--- more_headers
Content-Type: application/json
--- request eval
[
::post_raw('/t', note => '"hello"'),
::post_raw('/t', meta => '{"a":[1,2,{"b":null}],"c":{"d":true}}', list => '[1,"x",null,false,1.5]'),
::post_raw('/t', ID => '"not the id"', Amount => '"x"', CURRENCY => '0'),
::post_raw('/t', note => '1') =~ s/\}$/,"note":2}/r,
::post_raw('/t', id => undef, ID => '"tx_1"'),
]
--- error_code eval
[200, 200, 200, 200, 400]
--- response_body eval
[ ::computed(), ::computed(), ::computed(), ::computed(), ::required('id') ]
--- no_error_log
[error]



=== TEST 15: when several fields fail, the first in the order id, amount, currency, merchant_id, card_token, card_bin, country is reported
--- config
    location /t {
        txval;
    }
--- more_headers
Content-Type: application/json
--- request eval
[
::post_raw('/t', id => '"bad id"', amount => '0'),
::post_raw('/t', amount => '0', currency => '"usd"'),
::post_raw('/t', currency => '"usd"', merchant_id => undef),
::post_raw('/t', merchant_id => undef, card_token => '""'),
::post_raw('/t', card_token => '""', card_bin => '"1"'),
::post_raw('/t', card_bin => '"1"', country => '"usa"'),
::post_raw('/t', id => undef, amount => '"x"', country => '"x"'),
"POST /t\n" . '{"country":"usa","card_bin":"x","card_token":"t t","merchant_id":"m m","currency":"usd","amount":0,"id":"bad id"}',
"POST /t\n" . '{"country":"usa","card_bin":"x","card_token":"tok_1","merchant_id":"m_1","currency":"USD","amount":1,"id":"tx_1"}',
]
--- error_code eval
[ (400) x 9 ]
--- response_body eval
[
::invalid('id'),
::invalid('amount'),
::invalid('currency'),
::required('merchant_id'),
::invalid('card_token'),
::invalid('card_bin'),
::required('id'),
::invalid('id'),
::invalid('card_bin'),
]
--- no_error_log
[error]
