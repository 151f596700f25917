# Field rules: each field's valid and invalid edges, required fields,
# duplicates, unknown fields, and which field is reported when several
# fail (id, amount, currency, merchant_id, card_token, card_bin, country).

use lib 't/lib';
use Test::Txval 'no_plan';

our %Detail = (
    id          => 'id must be a string of 1-64 characters from A-Z a-z 0-9 . _ : -',
    amount      => 'amount must be an integral number of minor units from 1 to 9007199254740991',
    currency    => 'currency must be 3 uppercase letters (ISO 4217)',
    merchant_id => 'merchant_id must be a string of 1-64 characters from A-Z a-z 0-9 . _ : -',
    card_token  => 'card_token must be a string of 1-128 characters from A-Z a-z 0-9 . _ : -',
    card_bin    => 'card_bin must be a string of 6-8 digits',
    country     => 'country must be 2 uppercase letters (ISO 3166-1 alpha-2)',
);

# A POST /t of a valid transaction with some members replaced: each pair is
# a key and its raw JSON text; undef drops the member. Known members keep
# their place, other keys are appended in the order given.
sub ::req {
    my @order = qw(id amount currency merchant_id card_token);
    my %v = (id => '"tx_1"', amount => '1000', currency => '"USD"',
             merchant_id => '"m_1"', card_token => '"tok_1"');
    while (my ($k, $val) = splice @_, 0, 2) {
        push @order, $k unless exists $v{$k};
        $v{$k} = $val;
    }
    return "POST /t\n{"
           . join(',', map { qq!"$_":$v{$_}! } grep { defined $v{$_} } @order)
           . '}';
}

sub ::approved {
    my ($id, $score) = @_;
    $id = 'tx_1' unless defined $id;
    $score ||= 0;
    return qq!{"id":"$id","verdict":"approved","reasons":[],"risk_score":$score,"source":"computed"}\n!;
}

sub ::invalid {
    my ($field, $detail) = @_;
    $detail = $Detail{$field} unless defined $detail;
    return qq!{"error":"invalid_field","field":"$field","detail":"$detail"}\n!;
}

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
::req(id => '"a"'),
::req(id => '"' . ('x' x 63) . 'y"'),
::req(id => '"a.b"'),
::req(id => '"a_b"'),
::req(id => '"a:b"'),
::req(id => '"a-b"'),
::req(id => '"AZaz09._:-"'),
::req(id => '"-"'),
::req(id => '"\u0041"'),
]
--- error_code eval
[200, 200, 200, 200, 200, 200, 200, 200, 200]
--- response_body eval
[
::approved('a'),
::approved(('x' x 63) . 'y'),
::approved('a.b'),
::approved('a_b'),
::approved('a:b'),
::approved('a-b'),
::approved('AZaz09._:-'),
::approved('-'),
::approved('A'),
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
::req(id => '"' . ('x' x 65) . '"'),
::req(id => '""'),
::req(id => '"a b"'),
::req(id => '"a/b"'),
::req(id => '"a+b"'),
::req(id => '"a@b"'),
::req(id => '"a\"b"'),
::req(id => '"a\nb"'),
::req(id => '"caf\u00e9"'),
::req(id => qq!"caf\xc3\xa9"!),
::req(id => '123'),
::req(id => 'true'),
::req(id => '["tx_1"]'),
::req(id => '{"id":"tx_1"}'),
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
::req(amount => '1'),
::req(amount => '9007199254740991'),
map { my $r = ::req(amount => $_); $r =~ s{^POST /t}{POST /exact}; $r }
    qw(1000 1e3 1E3 1e+3 1000.0 10000e-1 0.1e4),
]
--- error_code eval
[200, 200, 200, 200, 200, 200, 200, 200, 200]
--- response_body eval
[ ::approved(), ::approved(), (::approved('tx_1', 30)) x 7 ]
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
::req(amount => '0'),
::req(amount => '-0'),
::req(amount => '-1'),
::req(amount => '-1000'),
::req(amount => '1.5'),
::req(amount => '0.5'),
::req(amount => '1000.5'),
::req(amount => '9007199254740992'),
::req(amount => '18446744073709551616'),
::req(amount => '1e400'),
::req(amount => '-1e400'),
::req(amount => '1e-400'),
::req(amount => '"1000 "'),
::req(amount => 'true'),
::req(amount => 'false'),
::req(amount => '[1000]'),
::req(amount => '{"v":1000}'),
::req(amount => '1.0000000000000001'),
::req(amount => '9007199254740990.5'),
::req(amount => '100.000000000000000000001e2'),
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
::req(currency => '"EUR"'),
::req(currency => '"XTS"'),
::req(currency => '"usd"'),
::req(currency => '"Usd"'),
::req(currency => '"US"'),
::req(currency => '"USDD"'),
::req(currency => '"U1D"'),
::req(currency => '"U$D"'),
::req(currency => '""'),
::req(currency => '"\u00dcSD"'),
::req(currency => '840'),
::req(currency => '["USD"]'),
]
--- error_code eval
[200, 200, (400) x 10]
--- response_body eval
[ ::approved(), ::approved(), (::invalid('currency')) x 10 ]
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
::req(merchant_id => '"m"'),
::req(merchant_id => '"' . ('m' x 64) . '"'),
::req(merchant_id => '"Mer.ch_an:t-09"'),
::req(merchant_id => '"' . ('m' x 65) . '"'),
::req(merchant_id => '""'),
::req(merchant_id => '"m 1"'),
::req(merchant_id => '"m/1"'),
::req(merchant_id => '"m,1"'),
::req(merchant_id => '42'),
]
--- error_code eval
[200, 200, 200, (400) x 6]
--- response_body eval
[ ::approved(), ::approved(), ::approved(), (::invalid('merchant_id')) x 6 ]
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
::req(card_token => '"t"'),
::req(card_token => '"' . ('t' x 128) . '"'),
::req(card_token => '"tok.en_1:x-Y"'),
::req(card_token => '"' . ('t' x 129) . '"'),
::req(card_token => '""'),
::req(card_token => '"tok 1"'),
::req(card_token => '"tok=1"'),
::req(card_token => '"tok/1"'),
::req(card_token => '4111111111111111'),
]
--- error_code eval
[200, 200, 200, (400) x 6]
--- response_body eval
[ ::approved(), ::approved(), ::approved(), (::invalid('card_token')) x 6 ]
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
::req(card_bin => '"411111"'),
::req(card_bin => '"4111111"'),
::req(card_bin => '"41111111"'),
::req(card_bin => 'null'),
::req(card_bin => '"41111"'),
::req(card_bin => '"411111111"'),
::req(card_bin => '"41111a"'),
::req(card_bin => '"ABCDEF"'),
::req(card_bin => '"4111 11"'),
::req(card_bin => '"-411111"'),
::req(card_bin => '""'),
::req(card_bin => '411111'),
::req(card_bin => 'false'),
]
--- error_code eval
[200, 200, 200, 200, (400) x 9]
--- response_body eval
[ (::approved()) x 4, (::invalid('card_bin')) x 9 ]
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
::req(country => '"US"'),
::req(country => '"ZZ"'),
::req(country => 'null'),
::req(country => '"us"'),
::req(country => '"Us"'),
::req(country => '"USA"'),
::req(country => '"U"'),
::req(country => '""'),
::req(country => '"U1"'),
::req(country => '840'),
]
--- error_code eval
[200, 200, 200, (400) x 7]
--- response_body eval
[ (::approved()) x 3, (::invalid('country')) x 7 ]
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
::req(id => undef),
::req(amount => undef),
::req(currency => undef),
::req(merchant_id => undef),
::req(card_token => undef),
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
::req(id => 'null'),
::req(amount => 'null'),
::req(currency => 'null'),
::req(merchant_id => 'null'),
::req(card_token => 'null'),
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
::req(),
::req(card_bin => 'null', country => 'null'),
::req(card_bin => '"411111"', country => '"FR"'),
]
--- error_code eval
[200, 200, 200]
--- response_body eval
[ (::approved()) x 3 ]
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
::req(zz => 1) =~ s/"zz":1/"id":"tx_1"/r,
::req(zz => 1) =~ s/"zz":1/"amount":2000/r,
::req(zz => 1) =~ s/"zz":1/"currency":"USD"/r,
::req(zz => 1) =~ s/"zz":1/"merchant_id":"m_2"/r,
::req(zz => 1) =~ s/"zz":1/"card_token":"tok_1"/r,
::req(card_bin => '"411111"', zz => 1) =~ s/"zz":1/"card_bin":"411111"/r,
::req(country => '"US"', zz => 1) =~ s/"zz":1/"country":null/r,
::req(zz => 1) =~ s/"zz":1/"i\\u0064":"tx_1"/r,
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
::req(note => '"hello"'),
::req(meta => '{"a":[1,2,{"b":null}],"c":{"d":true}}', list => '[1,"x",null,false,1.5]'),
::req(ID => '"not the id"', Amount => '"x"', CURRENCY => '0'),
::req(note => '1') =~ s/\}$/,"note":2}/r,
::req(id => undef, ID => '"tx_1"'),
]
--- error_code eval
[200, 200, 200, 200, 400]
--- response_body eval
[ ::approved(), ::approved(), ::approved(), ::approved(), ::required('id') ]
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
::req(id => '"bad id"', amount => '0'),
::req(amount => '0', currency => '"usd"'),
::req(currency => '"usd"', merchant_id => undef),
::req(merchant_id => undef, card_token => '""'),
::req(card_token => '""', card_bin => '"1"'),
::req(card_bin => '"1"', country => '"usa"'),
::req(id => undef, amount => '"x"', country => '"x"'),
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
