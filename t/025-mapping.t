# Field mapping: txval_field by JSON pointer (nested objects, arrays, the
# ~0 ~1 escapes, a missing value, a wrong type) or by a value with
# variables (headers, arguments, constants), inherited field by field;
# txval_amount_format decimal (ISO 4217 exponents 0, 2, 3, 4: boundaries,
# too many decimals, unknown currencies) and minor (numeric strings);
# txval_currency_case any; card numbers refused at any depth under a
# mapping; duplicates on a mapped path; replays and conflicts on mapped
# fields (the fast path covers the values from variables); namespaces in
# the cache zone; what nginx -t refuses; and the three drop-in examples
# (the location blocks of examples/adyen.conf, paypal.conf, stripe.conf,
# whose whole sites t/520 checks with nginx -t) with bodies shaped like
# those APIs' own.

use lib 't/lib';
# no_plan: the blocks check different numbers of things (requests,
# headers, log lines), so no plan of repeat_each() * blocks() * N fits
use Test::Txval 'no_plan';
use Txval::Tx qw(adyen post_raw v invalid invalid_json);

our $Examples = Test::Txval::txval_repo_root() . '/examples';

# the location block of an example site, as it is written there
sub ::example_location {
    my ($name) = @_;
    open my $fh, '<', "$Examples/$name" or die "$Examples/$name: $!\n";
    local $/;
    my $text = <$fh>;
    my ($loc) = $text =~ /^(    location [^\n]*\{\n.*?^    \}\n)/ms
        or die "no location block in $name\n";
    return $loc;
}

our $AdyenMap = <<'EOC';
        txval_field id          /reference;
        txval_field amount      /amount/value;
        txval_field currency    /amount/currency;
        txval_field merchant_id /merchantAccount;
        txval_field card_token  /paymentMethod/storedPaymentMethodId;
        txval_field country     /countryCode;
EOC

log_level('debug');
no_shuffle();
run_tests();

__DATA__

=== TEST 1: nested pointers: each field where the API keeps it; the verdict's id is the mapped id; the decision log variables hold the mapped fields
--- config eval
"    location /t {
$::AdyenMap
        add_header X-Fields \"\$txval_id \$txval_amount \$txval_currency \$txval_merchant_id\" always;
        txval;
    }"
--- more_headers
Content-Type: application/json
--- request eval
[
"POST /t\n" . ::adyen(),
"POST /t\n" . ::adyen(reference => '"ORDER-2"', countryCode => undef, id => '"ignored"', currency => '"not read"'),
"POST /t\n" . ::adyen(reference => '"ORDER-3"', amount => '{"value":5,"currency":"USD","extra":{"value":7}}'),
]
--- error_code eval
[200, 200, 200]
--- response_body eval
[::v('ORDER-1'), ::v('ORDER-2'), ::v('ORDER-3')]
--- response_headers eval
["X-Fields: ORDER-1 1000 EUR AcmeShopECOM", "X-Fields: ORDER-2 1000 EUR AcmeShopECOM", "X-Fields: ORDER-3 5 USD AcmeShopECOM"]
--- no_error_log
[error]



=== TEST 2: arrays: an index reads that element (0 and 1), an index past the end is missing, a token that is an index is also an object key
--- config
    location /t {
        txval_field id       /refs/1;
        txval_field amount   /units/0/amount/value;
        txval_field currency /units/0/amount/currency;
        txval;
    }
--- more_headers
Content-Type: application/json
--- request eval
[
qq!POST /t\n{"refs":["r0","r1"],"units":[{"amount":{"value":1000,"currency":"USD"}},{"amount":{"value":1,"currency":"EUR"}}],"merchant_id":"m_1","card_token":"tok_1"}!,
qq!POST /t\n{"refs":{"0":"x","1":"o1"},"units":{"0":{"amount":{"value":1000,"currency":"USD"}}},"merchant_id":"m_1","card_token":"tok_1"}!,
qq!POST /t\n{"refs":["r0"],"units":[{"amount":{"value":1000,"currency":"USD"}}],"merchant_id":"m_1","card_token":"tok_1"}!,
qq!POST /t\n{"refs":["r0","r1"],"units":[],"merchant_id":"m_1","card_token":"tok_1"}!,
qq!POST /t\n{"refs":"r0r1","units":[{"amount":{"value":1000,"currency":"USD"}}],"merchant_id":"m_1","card_token":"tok_1"}!,
]
--- error_code eval
[200, 200, 400, 400, 400]
--- response_body eval
[
::v('r1'),
::v('o1'),
::invalid('id', 'id is missing at /refs/1'),
::invalid('amount', 'amount is missing at /units/0/amount/value'),
::invalid('id', 'id is missing at /refs/1'),
]
--- no_error_log
[error]



=== TEST 3: the escapes: ~1 is a "/" in a key, ~0 a "~"; a key written with JSON escapes matches too
--- config
    location /t {
        txval_field merchant_id "/a~1b/m~0n";
        txval_field id          /~01;
        txval;
    }
--- more_headers
Content-Type: application/json
--- request eval
[
qq!POST /t\n{"~1":"tx_e1","a/b":{"m~n":"m_esc"},"amount":1000,"currency":"USD","card_token":"tok_1"}!,
qq!POST /t\n{"\\u007e1":"tx_e2","a\\/b":{"m\\u007en":"m_esc"},"amount":1000,"currency":"USD","card_token":"tok_1"}!,
qq!POST /t\n{"~1":"tx_e3","a":{"b":{"m~n":"m_esc"}},"amount":1000,"currency":"USD","card_token":"tok_1"}!,
qq!POST /t\n{"/":"tx_e4","a/b":{"m/n":"m_esc"},"amount":1000,"currency":"USD","card_token":"tok_1"}!,
]
--- error_code eval
[200, 200, 400, 400]
--- response_body eval
[
::v('tx_e1'),
::v('tx_e2'),
::invalid('merchant_id', 'merchant_id is missing at /a~1b/m~0n'),
::invalid('id', 'id is missing at /~01'),
]
--- no_error_log
[error]



=== TEST 4: missing: no such key, null, a path through a number, a string or an array; the detail names the pointer
--- config eval
"    location /t {
$::AdyenMap
        txval;
    }"
--- more_headers
Content-Type: application/json
--- request eval
[
"POST /t\n" . ::adyen(amount => undef),
"POST /t\n" . ::adyen(amount => '{"currency":"EUR"}'),
"POST /t\n" . ::adyen(amount => '{"currency":"EUR","value":null}'),
"POST /t\n" . ::adyen(amount => '1000'),
"POST /t\n" . ::adyen(amount => '"1000 EUR"'),
"POST /t\n" . ::adyen(amount => '[1000,"EUR"]'),
"POST /t\n" . ::adyen(reference => undef),
"POST /t\n" . ::adyen(paymentMethod => '{"type":"scheme","number":"4111111111111111"}'),
"POST /t\n" . ::adyen(countryCode => 'null'),
]
--- error_code eval
[400, 400, 400, 400, 400, 400, 400, 400, 200]
--- response_body eval
[
::invalid('amount', 'amount is missing at /amount/value'),
::invalid('amount', 'amount is missing at /amount/value'),
::invalid('amount', 'amount is missing at /amount/value'),
::invalid('amount', 'amount is missing at /amount/value'),
::invalid('amount', 'amount is missing at /amount/value'),
::invalid('amount', 'amount is missing at /amount/value'),
::invalid('id', 'id is missing at /reference'),
::invalid('card_token', 'card_token is missing at /paymentMethod/storedPaymentMethodId'),
::v('ORDER-1'),
]
--- no_error_log
4111111111111111
[error]



=== TEST 5: the wrong type or form at a pointer: the detail names the pointer and the rule
--- config eval
"    location /t {
$::AdyenMap
        txval;
    }"
--- more_headers
Content-Type: application/json
--- request eval
[
"POST /t\n" . ::adyen(amount => '{"currency":"EUR","value":true}'),
"POST /t\n" . ::adyen(amount => '{"currency":"EUR","value":{"v":1}}'),
"POST /t\n" . ::adyen(amount => '{"currency":"EUR","value":10.5}'),
"POST /t\n" . ::adyen(amount => '{"currency":"eur","value":1000}'),
"POST /t\n" . ::adyen(reference => '12345'),
"POST /t\n" . ::adyen(reference => '"ORDER 1"'),
"POST /t\n" . ::adyen(merchantAccount => '["AcmeShopECOM"]'),
"POST /t\n" . ::adyen(countryCode => '"nl"'),
]
--- error_code eval
[ (400) x 8 ]
--- response_body eval
[
::invalid('amount', 'amount at /amount/value must be an integral number of minor units from 1 to 9007199254740991'),
::invalid('amount', 'amount at /amount/value must be an integral number of minor units from 1 to 9007199254740991'),
::invalid('amount', 'amount at /amount/value must be an integral number of minor units from 1 to 9007199254740991'),
::invalid('currency', 'currency at /amount/currency must be 3 uppercase letters (ISO 4217)'),
::invalid('id', 'id at /reference must be a string of 1-64 characters from A-Z a-z 0-9 . _ : -'),
::invalid('id', 'id at /reference must be a string of 1-64 characters from A-Z a-z 0-9 . _ : -'),
::invalid('merchant_id', 'merchant_id at /merchantAccount must be a string of 1-64 characters from A-Z a-z 0-9 . _ : -'),
::invalid('country', 'country at /countryCode must be 2 uppercase letters (ISO 3166-1 alpha-2)'),
]
--- no_error_log
[error]



=== TEST 6: values from variables: a header, an argument, a constant; an empty one is missing; a bad one names the variable
--- config
    location /t {
        txval_field id          $http_idempotency_key;
        txval_field merchant_id $arg_merchant;
        txval_field country     FR;
        txval;
    }
--- request eval
[
::post_raw('/t?merchant=m_arg', id => undef, merchant_id => undef),
::post_raw('/t?merchant=m_arg', id => '"tx_body"', merchant_id => '"m_body"'),
::post_raw('/t?merchant=m_arg'),
::post_raw('/t'),
::post_raw('/t?merchant=m_arg'),
::post_raw('/t?merchant=m%20x'),
]
--- more_headers eval
[
"Content-Type: application/json\nIdempotency-Key: key-1",
"Content-Type: application/json\nIdempotency-Key: key-2",
"Content-Type: application/json",
"Content-Type: application/json\nIdempotency-Key: key-4",
"Content-Type: application/json\nIdempotency-Key: key 5",
"Content-Type: application/json\nIdempotency-Key: key-6",
]
--- error_code eval
[200, 200, 400, 400, 400, 400]
--- response_body eval
[
::v('key-1'),
::v('key-2'),
::invalid('id', 'id is missing ($http_idempotency_key is empty)'),
::invalid('merchant_id', 'merchant_id is missing ($arg_merchant is empty)'),
::invalid('id', 'id from $http_idempotency_key must be a string of 1-64 characters from A-Z a-z 0-9 . _ : -'),
::invalid('merchant_id', 'merchant_id from $arg_merchant must be a string of 1-64 characters from A-Z a-z 0-9 . _ : -'),
]
--- no_error_log
[error]



=== TEST 7: inheritance field by field: http, server, location, a nested location; amount format and currency case inherited too
--- http_config
    txval_field amount /amount/value;
    txval_currency_case any;
--- config
    txval_field currency /amount/currency;

    location /t {
        txval_field id /ref;
        add_header X-Fields "$txval_id/$txval_amount/$txval_currency" always;
        txval;

        location /t/decimal {
            txval_amount_format decimal;
            add_header X-Fields "$txval_id/$txval_amount/$txval_currency" always;
            txval;
        }

        location /t/flat {
            txval_field amount   /amount;
            txval_field currency /currency;
            txval_currency_case upper;
            add_header X-Fields "$txval_id/$txval_amount/$txval_currency" always;
            txval;
        }
    }

    location /s {
        add_header X-Fields "$txval_id/$txval_amount/$txval_currency" always;
        txval;
    }
--- more_headers
Content-Type: application/json
--- request eval
[
qq!POST /t\n{"ref":"r1","amount":{"value":1234,"currency":"usd"},"merchant_id":"m_1","card_token":"tok_1"}!,
qq!POST /t/decimal\n{"ref":"r2","amount":{"value":"12.34","currency":"usd"},"merchant_id":"m_1","card_token":"tok_1"}!,
qq!POST /t/flat\n{"ref":"r3","amount":1234,"currency":"USD","merchant_id":"m_1","card_token":"tok_1"}!,
qq!POST /t/flat\n{"ref":"r4","amount":1234,"currency":"usd","merchant_id":"m_1","card_token":"tok_1"}!,
qq!POST /s\n{"id":"s1","amount":{"value":99,"currency":"eur"},"merchant_id":"m_1","card_token":"tok_1"}!,
]
--- error_code eval
[200, 200, 200, 400, 200]
--- response_body eval
[
::v('r1'),
::v('r2'),
::v('r3'),
::invalid('currency', 'currency at /currency must be 3 uppercase letters (ISO 4217)'),
::v('s1'),
]
--- response_headers eval
["X-Fields: r1/1234/USD", "X-Fields: r2/1234/USD", "X-Fields: r3/1234/USD", "X-Fields: //", "X-Fields: s1/99/EUR"]
--- no_error_log
[error]



=== TEST 8: decimal amounts scaled by the ISO 4217 exponent: 0 (JPY), 2 (USD), 3 (KWD), 4 (CLF); numbers and strings; the boundaries
--- config
    location /t {
        txval_field amount   /amount/value;
        txval_field currency /amount/currency;
        txval_amount_format decimal;
        add_header X-Amount "$txval_amount $txval_currency" always;
        txval;
    }
--- more_headers
Content-Type: application/json
--- request eval
my @ok = (['"1000"', 'JPY'], ['1000', 'JPY'], ['"9007199254740991"', 'JPY'],
          ['"10.50"', 'USD'], ['10.5', 'USD'], ['"0.01"', 'USD'], ['"10"', 'USD'],
          ['1e2', 'USD'], ['1.005e1', 'USD'], ['1050e-2', 'USD'],
          ['"90071992547409.91"', 'USD'],
          ['"1.234"', 'KWD'], ['"0.001"', 'BHD'], ['"1"', 'TND'],
          ['"1.2345"', 'CLF']);
[ map { qq!POST /t\n{"id":"d$_","amount":{"value":$ok[$_][0],"currency":"$ok[$_][1]"},"merchant_id":"m_1","card_token":"tok_1"}! } 0 .. $#ok ]
--- error_code eval
[ (200) x 15 ]
--- response_body eval
[ map { ::v("d$_") } 0 .. 14 ]
--- response_headers eval
[
"X-Amount: 1000 JPY", "X-Amount: 1000 JPY", "X-Amount: 9007199254740991 JPY",
"X-Amount: 1050 USD", "X-Amount: 1050 USD", "X-Amount: 1 USD", "X-Amount: 1000 USD",
"X-Amount: 10000 USD", "X-Amount: 1005 USD", "X-Amount: 1050 USD",
"X-Amount: 9007199254740991 USD",
"X-Amount: 1234 KWD", "X-Amount: 1 BHD", "X-Amount: 1000 TND",
"X-Amount: 12345 CLF",
]
--- no_error_log
[error]



=== TEST 9: decimal amounts refused: more decimals than the exponent as written (10.500 USD, 1000.0 JPY), zero, negative, above 2^53-1 minor units, not a number; an unknown currency
--- config
    location /t {
        txval_field amount   /amount/value;
        txval_field currency /amount/currency;
        txval_amount_format decimal;
        txval;
    }
--- more_headers
Content-Type: application/json
--- request eval
my @bad = (['"10.500"', 'USD'], ['10.501', 'USD'], ['"1000.0"', 'JPY'], ['1000.5', 'JPY'],
           ['"1.2345"', 'KWD'], ['"1.23456"', 'CLF'], ['"0.00"', 'USD'], ['0', 'JPY'],
           ['"-1.00"', 'USD'], ['"90071992547409.92"', 'USD'], ['"9007199254740992"', 'JPY'],
           ['1e-3', 'USD'], ['"10,50"', 'USD'], ['"$10"', 'USD'], ['true', 'USD'],
           ['"10.50"', 'XXX'], ['"10.50"', 'XAU'], ['"10.50"', 'ABC']);
[ map { qq!POST /t\n{"id":"b$_","amount":{"value":$bad[$_][0],"currency":"$bad[$_][1]"},"merchant_id":"m_1","card_token":"tok_1"}! } 0 .. $#bad ]
--- error_code eval
[ (400) x 18 ]
--- response_body eval
my $d = sub { ::invalid('amount', "amount at /amount/value must be a decimal number of major units with at most $_[0] decimals for $_[1], of 1 to 9007199254740991 minor units") };
my $form = ::invalid('amount', 'amount at /amount/value must be a decimal number of major units, as a JSON number or a string');
my $cur = ::invalid('currency', 'currency at /amount/currency must be an ISO 4217 code with a minor unit, to scale a decimal amount');
[
$d->(2, 'USD'), $d->(2, 'USD'), $d->(0, 'JPY'), $d->(0, 'JPY'),
$d->(3, 'KWD'), $d->(4, 'CLF'), $d->(2, 'USD'), $d->(0, 'JPY'),
$d->(2, 'USD'), $d->(2, 'USD'), $d->(0, 'JPY'),
$d->(2, 'USD'), $form, $form, $form,
$cur, $cur, $cur,
]
--- no_error_log
[error]



=== TEST 10: minor units: a numeric string is the same amount ("1000", "1e3"; the same content as 1000: a replay, not a conflict); a fraction in a string is refused
--- http_config
    txval_cache_zone t025:1m;
--- config
    location /t {
        add_header X-Amount "$txval_amount" always;
        txval;
    }
--- more_headers
Content-Type: application/json
--- request eval
[
::post_raw('/t', id => '"m1"', amount => '"1000"'),
::post_raw('/t', id => '"m1"', amount => '1000'),
::post_raw('/t', id => '"m1"', amount => '"1e3"'),
::post_raw('/t', id => '"m2"', amount => '"10.5"'),
::post_raw('/t', id => '"m3"', amount => '"0x10"'),
::post_raw('/t', id => '"m4"', amount => '"9007199254740992"'),
]
--- error_code eval
[200, 200, 200, 400, 400, 400]
--- response_body eval
[
::v('m1'), ::v('m1', 'shm'), ::v('m1', 'shm'),
(::invalid('amount', 'amount must be an integral number of minor units from 1 to 9007199254740991')) x 3,
]
--- response_headers eval
["X-Amount: 1000", "X-Amount: 1000", "X-Amount: 1000", "X-Amount:", "X-Amount:", "X-Amount:"]
--- no_error_log
[error]



=== TEST 11: txval_currency_case any: "usd", "Usd" and "USD" are USD; 2 or 4 letters, digits are not; upper (the default) refuses "usd"
--- config
    location /any {
        txval_currency_case any;
        add_header X-Currency "$txval_currency" always;
        txval;
    }
    location /upper {
        txval;
    }
--- more_headers
Content-Type: application/json
--- request eval
[
::post_raw('/any', currency => '"usd"'),
::post_raw('/any', currency => '"Usd"'),
::post_raw('/any', currency => '"USD"'),
::post_raw('/any', currency => '"\u0075sd"'),
::post_raw('/any', currency => '"us"'),
::post_raw('/any', currency => '"usdd"'),
::post_raw('/any', currency => '"u5d"'),
::post_raw('/upper', currency => '"usd"'),
]
--- error_code eval
[200, 200, 200, 200, 400, 400, 400, 400]
--- response_body eval
[
(::v('tx_1')) x 4,
(::invalid('currency', 'currency must be 3 letters (ISO 4217)')) x 3,
::invalid('currency', 'currency must be 3 uppercase letters (ISO 4217)'),
]
--- response_headers eval
[ ("X-Currency: USD") x 4, ("X-Currency:") x 4 ]
--- no_error_log
[error]



=== TEST 12: card numbers under a mapping are refused at any depth (nested, in an array, an escaped key), never logged, before any field rule
--- config eval
"    location /t {
$::AdyenMap
        txval;
    }"
--- more_headers
Content-Type: application/json
--- request eval
[
"POST /t\n" . ::adyen(paymentMethod => '{"type":"scheme","pan":"4111111111111111"}'),
"POST /t\n" . ::adyen(lines => '[{"sku":"a"},{"card":{"card_number":"4111111111111111"}}]'),
"POST /t\n" . ::adyen(paymentMethod => '{"type":"scheme","p\u0061n":"4111111111111111"}'),
"POST /t\n" . ::adyen(reference => undef, amount => '"bad"', deep => '{"a":{"b":{"c":{"d":{"e":{"f":{"g":{"h":{"i":{"pan":"4111111111111111"}}}}}}}}}}'),
]
--- error_code eval
[400, 400, 400, 400]
--- response_body eval
[ (qq!{"error":"pan_not_accepted","detail":"card numbers are not accepted: send a card_token"}\n!) x 4 ]
--- error_log
txval: refused: pan_not_accepted
--- no_error_log
4111111111111111
[error]



=== TEST 13: a key twice on a mapped path is refused (the container, the value itself); twice elsewhere, or a default field's key when the field is mapped away, is ignored
--- config eval
"    location /t {
$::AdyenMap
        txval;
    }"
--- more_headers
Content-Type: application/json
--- request eval
[
"POST /t\n" . (::adyen() =~ s/\}$/,"amount":{"currency":"EUR","value":2000}}/r),
"POST /t\n" . ::adyen(amount => '{"currency":"EUR","value":1000,"value":1000}'),
"POST /t\n" . ::adyen(paymentMethod => '{"storedPaymentMethodId":"a","type":"x","st\u006fredPaymentMethodId":"b"}'),
"POST /t\n" . ::adyen(amount => '{"currency":"EUR","value":1000,"note":1,"note":2}'),
"POST /t\n" . ::adyen(id => '"x"', zz => 1) =~ s/"zz":1/"id":"y"/r,
]
--- error_code eval
[400, 400, 400, 200, 200]
--- response_body eval
[
::invalid('amount', 'a key on the path /amount/value appears more than once'),
::invalid('amount', 'a key on the path /amount/value appears more than once'),
::invalid('card_token', 'a key on the path /paymentMethod/storedPaymentMethodId appears more than once'),
::v('ORDER-1'),
::v('ORDER-1'),
]
--- no_error_log
[error]



=== TEST 14: replays of a mapped nested body: the same bytes and the same content written otherwise answer from shm; another amount or card under the same reference is a conflict (t/026: which replays were answered without parsing)
--- http_config
    txval_cache_zone t025:1m;
--- config eval
"    location /t {
$::AdyenMap
        txval;
    }"
--- more_headers
Content-Type: application/json
--- request eval
[
"POST /t\n" . ::adyen(reference => '"R-14"'),
"POST /t\n" . ::adyen(reference => '"R-14"'),
"POST /t\n" . ::adyen(reference => '"R-14"', amount => '{ "value" : 1000, "currency" : "EUR" }', note => '"x"'),
"POST /t\n" . ::adyen(reference => '"R-14"', amount => '{"currency":"EUR","value":1001}'),
"POST /t\n" . ::adyen(reference => '"R-14"', paymentMethod => '{"storedPaymentMethodId":"other"}'),
]
--- error_code eval
[200, 200, 200, 409, 409]
--- response_body eval
[
::v('R-14'), ::v('R-14', 'shm'), ::v('R-14', 'shm'),
qq!{"error":"idempotency_conflict","id":"R-14","detail":"this id was already used for a transaction with different content"}\n!,
qq!{"error":"idempotency_conflict","id":"R-14","detail":"this id was already used for a transaction with different content"}\n!,
]
--- no_error_log
[error]



=== TEST 15: the id from a header: the same body and key replay; the same body with another key is another transaction, never a replay of the first
--- http_config
    txval_cache_zone t025:1m;
--- config
    location /t {
        txval_field id $http_idempotency_key;
        txval;
    }
--- request eval
[ (::post_raw('/t', id => undef)) x 4 ]
--- more_headers eval
[
"Content-Type: application/json\nIdempotency-Key: k-15a",
"Content-Type: application/json\nIdempotency-Key: k-15a",
"Content-Type: application/json\nIdempotency-Key: k-15b",
"Content-Type: application/json\nIdempotency-Key: k-15b",
]
--- error_code eval
[200, 200, 200, 200]
--- response_body eval
[::v('k-15a'), ::v('k-15a', 'shm'), ::v('k-15b'), ::v('k-15b', 'shm')]
--- no_error_log
[error]



=== TEST 16: a field from a header is part of the content: the same body and id with another merchant header is a conflict, not a replay of the first
--- http_config
    txval_cache_zone t025:1m;
--- config
    location /t {
        txval_field merchant_id $http_x_merchant;
        txval;
    }
--- request eval
[ (::post_raw('/t', id => '"tx_16"', merchant_id => undef)) x 3 ]
--- more_headers eval
[
"Content-Type: application/json\nX-Merchant: m_a",
"Content-Type: application/json\nX-Merchant: m_a",
"Content-Type: application/json\nX-Merchant: m_b",
]
--- error_code eval
[200, 200, 409]
--- response_body eval
[::v('tx_16'), ::v('tx_16', 'shm'),
 qq!{"error":"idempotency_conflict","id":"tx_16","detail":"this id was already used for a transaction with different content"}\n!]
--- no_error_log
[error]



=== TEST 17: one body, two mappings of it in one namespace: the second location reads another amount from the same bytes and gets a conflict (the replay hash covers the mapping)
--- http_config
    txval_cache_zone t025:1m;
--- config
    location /minor {
        txval;
    }
    location /decimal {
        txval_amount_format decimal;
        txval;
    }
--- more_headers
Content-Type: application/json
--- request eval
[ ::post_raw('/minor', id => '"tx_17"', amount => '10'),
  ::post_raw('/decimal', id => '"tx_17"', amount => '10'),
  ::post_raw('/minor', id => '"tx_17"', amount => '10') ]
--- error_code eval
[200, 409, 200]
--- response_body eval
[::v('tx_17'),
 qq!{"error":"idempotency_conflict","id":"tx_17","detail":"this id was already used for a transaction with different content"}\n!,
 ::v('tx_17', 'shm')]
--- no_error_log
[error]



=== TEST 18: namespaces: the same id and body in two namespaces are two transactions (two verdicts); in one namespace, and with none, one each
--- http_config
    txval_cache_zone t025:1m;
--- config
    location /a {
        txval_namespace api-a;
        txval;
    }
    location /a2 {
        txval_namespace api-a;
        txval;
    }
    location /b {
        txval_namespace api_b;
        txval_amount_limit USD 1 10;
        txval;
    }
    location /none {
        txval;
    }
--- more_headers
Content-Type: application/json
--- request eval
[ map { ::post_raw($_, id => '"tx_18"') } qw(/a /b /a2 /none /b /none /a) ]
--- error_code eval
[200, 402, 200, 200, 402, 200, 200]
--- response_body eval
[::v('tx_18'),
 qq!{"id":"tx_18","verdict":"declined","reasons":["amount_out_of_range"],"risk_score":30,"source":"computed"}\n!,
 ::v('tx_18', 'shm'),
 ::v('tx_18'),
 qq!{"id":"tx_18","verdict":"declined","reasons":["amount_out_of_range"],"risk_score":30,"source":"shm"}\n!,
 ::v('tx_18', 'shm'),
 ::v('tx_18', 'shm')]
--- no_error_log
[error]



=== TEST 19: gate mode with a mapping: an approved mapped body reaches the upstream, a refused one does not
--- config
    location /pay {
        txval_field id     $http_idempotency_key;
        txval_field amount /amount/value;
        txval_field currency /amount/currency;
        txval_gate;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/upstream;
    }
    location /upstream {
        return 200 "upstream: $http_x_txval_verdict $http_x_txval_source\n";
    }
--- request eval
[
qq!POST /pay\n{"amount":{"value":1000,"currency":"USD"},"merchant_id":"m_1","card_token":"tok_1"}!,
qq!POST /pay\n{"amount":{"value":"1000","currency":"USD"},"merchant_id":"m_1"}!,
]
--- more_headers eval
[
"Content-Type: application/json\nIdempotency-Key: g-19",
"Content-Type: application/json\nIdempotency-Key: g-19b",
]
--- error_code eval
[200, 400]
--- response_body eval
[
qq!upstream: approved computed\n!,
::invalid('card_token', 'card_token is required'),
]
--- no_error_log
[error]



=== TEST 20: examples/adyen.conf: an Adyen-like /payments body (amount object in minor units, reference, stored card); a replay; raw card data without a stored method never reaches the API
--- http_config
    txval_cache_zone t025ex:1m;
    upstream adyen_api { server 127.0.0.1:$TEST_NGINX_RAND_PORT_1; }
    server {
        listen 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
        access_log off;
        location / { return 200 "api: $request_uri $http_x_txval_verdict $http_x_txval_source\n"; }
    }
--- config eval
"add_header X-Fields \"\$txval_id/\$txval_amount/\$txval_currency/\$txval_merchant_id\" always;\n" . ::example_location("adyen.conf")
--- more_headers
Content-Type: application/json
--- request eval
my $ok = '{"amount":{"currency":"EUR","value":1000},"reference":"ORDER-2024-000123",'
       . '"paymentMethod":{"type":"scheme","storedPaymentMethodId":"8415718415172204"},'
       . '"shopperReference":"shopper_7734","shopperInteraction":"ContAuth",'
       . '"recurringProcessingModel":"CardOnFile","merchantAccount":"AcmeShopECOM",'
       . '"returnUrl":"https://shop.example.com/checkout?order=123","countryCode":"NL"}';
my $raw = '{"amount":{"currency":"EUR","value":1000},"reference":"ORDER-2024-000124",'
        . '"paymentMethod":{"type":"scheme","encryptedCardNumber":"adyenjs_0_1_25$XKq9",'
        . '"encryptedExpiryMonth":"adyenjs_0_1_25$Lm3","encryptedExpiryYear":"adyenjs_0_1_25$Pq7",'
        . '"encryptedSecurityCode":"adyenjs_0_1_25$Zz1"},'
        . '"merchantAccount":"AcmeShopECOM","returnUrl":"https://shop.example.com/checkout"}';
my $ten = $ok =~ s/"value":1000/"value":10.5/r =~ s/000123/000125/r;
["POST /v71/payments\n$ok", "POST /v71/payments\n$ok", "POST /v71/payments\n$raw", "POST /v71/payments\n$ten"]
--- error_code eval
[200, 200, 400, 400]
--- response_body eval
[
"api: /v71/payments approved computed\n",
"api: /v71/payments approved shm\n",
::invalid('card_token', 'card_token is missing at /paymentMethod/storedPaymentMethodId'),
::invalid('amount', 'amount at /amount/value must be an integral number of minor units from 1 to 9007199254740991'),
]
--- response_headers eval
["X-Fields: ORDER-2024-000123/1000/EUR/AcmeShopECOM",
 "X-Fields: ORDER-2024-000123/1000/EUR/AcmeShopECOM",
 "X-Fields: ///", "X-Fields: ///"]
--- no_error_log
[error]



=== TEST 21: examples/paypal.conf: PayPal-like orders (decimal strings in a purchase unit, PayPal-Request-Id): USD "100.00" is 10000, JPY "1000" is 1000, "100.001" USD is refused, a missing header is named
--- http_config
    txval_cache_zone t025ex:1m;
    upstream paypal_api { server 127.0.0.1:$TEST_NGINX_RAND_PORT_1; }
    server {
        listen 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
        access_log off;
        location / { return 201 "api: $request_uri $http_x_txval_verdict $http_x_txval_source\n"; }
    }
--- config eval
"add_header X-Fields \"\$txval_id/\$txval_amount/\$txval_currency/\$txval_merchant_id\" always;\n" . ::example_location("paypal.conf")
--- request eval
my $order = sub {
    my ($cur, $value) = @_;
    return "POST /v2/checkout/orders\n"
      . '{"intent":"CAPTURE","purchase_units":[{"reference_id":"default",'
      . qq!"amount":{"currency_code":"$cur","value":"$value"},!
      . '"payee":{"merchant_id":"7KNGBPH2U58GQ"},'
      . '"shipping":{"address":{"address_line_1":"2211 N First Street","admin_area_2":"San Jose",'
      . '"postal_code":"95131","country_code":"US"}}}],'
      . '"payment_source":{"card":{"vault_id":"8kk8451t"}}}';
};
[$order->('USD', '100.00'), $order->('USD', '100.00'), $order->('JPY', '1000'),
 $order->('USD', '100.001'), $order->('USD', '100.00')]
--- more_headers eval
[
"Content-Type: application/json\nPayPal-Request-Id: 7b92603e-77ed-4896-8e78-5dea2050476a",
"Content-Type: application/json\nPayPal-Request-Id: 7b92603e-77ed-4896-8e78-5dea2050476a",
"Content-Type: application/json\nPayPal-Request-Id: 1c7a1f1e-0b9a-4f5e-8d7c-2e4b6a9d3f10",
"Content-Type: application/json\nPayPal-Request-Id: 2d8b2e2f-1cab-4a6f-9e8d-3f5c7bae4a21",
"Content-Type: application/json",
]
--- error_code eval
[201, 201, 201, 400, 400]
--- response_body eval
[
"api: /v2/checkout/orders approved computed\n",
"api: /v2/checkout/orders approved shm\n",
"api: /v2/checkout/orders approved computed\n",
::invalid('amount', 'amount at /purchase_units/0/amount/value must be a decimal number of major units with at most 2 decimals for USD, of 1 to 9007199254740991 minor units'),
::invalid('id', 'id is missing ($http_paypal_request_id is empty)'),
]
--- response_headers eval
["X-Fields: 7b92603e-77ed-4896-8e78-5dea2050476a/10000/USD/7KNGBPH2U58GQ",
 "X-Fields: 7b92603e-77ed-4896-8e78-5dea2050476a/10000/USD/7KNGBPH2U58GQ",
 "X-Fields: 1c7a1f1e-0b9a-4f5e-8d7c-2e4b6a9d3f10/1000/JPY/7KNGBPH2U58GQ",
 "X-Fields: ///", "X-Fields: ///"]
--- no_error_log
[error]



=== TEST 22: examples/stripe.conf: a Stripe-like PaymentIntent in JSON (lowercase currency, Idempotency-Key, Stripe-Account): approved, replayed, another key is another payment, a missing account is named
--- http_config
    txval_cache_zone t025ex:1m;
    upstream stripe_api { server 127.0.0.1:$TEST_NGINX_RAND_PORT_1; }
    server {
        listen 127.0.0.1:$TEST_NGINX_RAND_PORT_1;
        access_log off;
        location / { return 200 "api: $request_uri $http_x_txval_verdict $http_x_txval_source\n"; }
    }
--- config eval
"add_header X-Fields \"\$txval_id/\$txval_amount/\$txval_currency/\$txval_merchant_id\" always;\n" . ::example_location("stripe.conf")
--- request eval
my $pi = '{"amount":2000,"currency":"usd","payment_method":"pm_1NfY3x2eZvKYlo2C",'
       . '"customer":"cus_NffrFeUfNV2Hib","confirm":true,'
       . '"automatic_payment_methods":{"enabled":true,"allow_redirects":"never"},'
       . '"metadata":{"order_id":"6735"}}';
[ ("POST /v1/payment_intents\n$pi") x 4 ]
--- more_headers eval
[
"Content-Type: application/json\nIdempotency-Key: 5d3b5f2e-8c1a-4f7e-9a55-1f0c2a9e6b10\nStripe-Account: acct_1032D82eZvKYlo2C",
"Content-Type: application/json\nIdempotency-Key: 5d3b5f2e-8c1a-4f7e-9a55-1f0c2a9e6b10\nStripe-Account: acct_1032D82eZvKYlo2C",
"Content-Type: application/json\nIdempotency-Key: 9e0a4c1d-2b3f-4d5e-8f60-7a1b2c3d4e5f\nStripe-Account: acct_1032D82eZvKYlo2C",
"Content-Type: application/json\nIdempotency-Key: 0f1e2d3c-4b5a-6978-8a9b-0c1d2e3f4a5b",
]
--- error_code eval
[200, 200, 200, 400]
--- response_body eval
[
"api: /v1/payment_intents approved computed\n",
"api: /v1/payment_intents approved shm\n",
"api: /v1/payment_intents approved computed\n",
::invalid('merchant_id', 'merchant_id is missing ($http_stripe_account is empty)'),
]
--- response_headers eval
["X-Fields: 5d3b5f2e-8c1a-4f7e-9a55-1f0c2a9e6b10/2000/USD/acct_1032D82eZvKYlo2C",
 "X-Fields: 5d3b5f2e-8c1a-4f7e-9a55-1f0c2a9e6b10/2000/USD/acct_1032D82eZvKYlo2C",
 "X-Fields: 9e0a4c1d-2b3f-4d5e-8f60-7a1b2c3d4e5f/2000/USD/acct_1032D82eZvKYlo2C",
 "X-Fields: ///"]
--- no_error_log
[error]


=== TEST 23: nginx -t: unknown field
--- config
    location /t {
        txval_field amout /amount;
        txval;
    }
--- request
GET /t
--- must_die
--- error_log
[emerg]
unknown field "amout" in "txval_field" directive, it must be id, amount, currency, merchant_id, card_token, card_bin or country


=== TEST 24: nginx -t: a pointer without its leading /
--- config
    location /t {
        txval_field amount amount/value;
        txval;
    }
--- request
GET /t
--- must_die
--- error_log
[emerg]
invalid JSON pointer "amount/value" in "txval_field" directive, it must start with "/"


=== TEST 25: nginx -t: ~ not followed by 0 or 1
--- config
    location /t {
        txval_field amount /amount/~2;
        txval;
    }
--- request
GET /t
--- must_die
--- error_log
[emerg]
invalid JSON pointer "/amount/~2" in "txval_field" directive, "~" must be followed by "0" or "1"


=== TEST 26: nginx -t: a ~ at the end
--- config
    location /t {
        txval_field amount /amount~;
        txval;
    }
--- request
GET /t
--- must_die
--- error_log
[emerg]
invalid JSON pointer "/amount~" in "txval_field" directive, "~" must be followed by "0" or "1"


=== TEST 27: nginx -t: 9 tokens
--- config
    location /t {
        txval_field amount /a/b/c/d/e/f/g/h/i;
        txval;
    }
--- request
GET /t
--- must_die
--- error_log
[emerg]
invalid JSON pointer "/a/b/c/d/e/f/g/h/i" in "txval_field" directive, it has more than 8 tokens


=== TEST 28: nginx -t: a token of 65 bytes
--- config
    location /t {
        txval_field amount /aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa;
        txval;
    }
--- request
GET /t
--- must_die
--- error_log
[emerg]
invalid JSON pointer "/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" in "txval_field" directive, a token is longer than 64 bytes


=== TEST 29: nginx -t: a source of 257 bytes
--- config
    location /t {
        txval_field amount /aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa;
        txval;
    }
--- request
GET /t
--- must_die
--- error_log
[emerg]
invalid JSON pointer "/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" in "txval_field" directive, it is longer than 256 bytes


=== TEST 30: nginx -t: a field twice at one level
--- config
    location /t {
        txval_field amount /a;
        txval_field amount /b;
        txval;
    }
--- request
GET /t
--- must_die
--- error_log
[emerg]
duplicate field "amount" in "txval_field" directive


=== TEST 31: nginx -t: a constant that breaks its field's rule
--- config
    location /t {
        txval_field currency US1;
        txval;
    }
--- request
GET /t
--- must_die
--- error_log
[emerg]
invalid value "US1" in "txval_field" directive, currency must be 3 letters (ISO 4217)


=== TEST 32: nginx -t: an empty constant for a required field
--- config
    location /t {
        txval_field id "";
        txval;
    }
--- request
GET /t
--- must_die
--- error_log
[emerg]
invalid value "" in "txval_field" directive, id is required


=== TEST 33: nginx -t: one argument
--- config
    location /t {
        txval_field amount;
        txval;
    }
--- request
GET /t
--- must_die
--- error_log
[emerg]
invalid number of arguments in "txval_field" directive


=== TEST 34: nginx -t: txval_amount_format: an unknown format
--- config
    location /t {
        txval_amount_format cents;
        txval;
    }
--- request
GET /t
--- must_die
--- error_log
[emerg]
invalid value "cents" in "txval_amount_format" directive, it must be "minor" or "decimal"


=== TEST 35: nginx -t: txval_amount_format: twice
--- config
    location /t {
        txval_amount_format minor;
        txval_amount_format decimal;
        txval;
    }
--- request
GET /t
--- must_die
--- error_log
[emerg]
"txval_amount_format" directive is duplicate


=== TEST 36: nginx -t: txval_currency_case: an unknown case
--- config
    location /t {
        txval_currency_case lower;
        txval;
    }
--- request
GET /t
--- must_die
--- error_log
[emerg]
invalid value "lower" in "txval_currency_case" directive, it must be "upper" or "any"


=== TEST 37: nginx -t: txval_namespace: a colon
--- config
    location /t {
        txval_namespace a:b;
        txval;
    }
--- request
GET /t
--- must_die
--- error_log
[emerg]
invalid value "a:b" in "txval_namespace" directive, it must be 1 to 32 characters from A-Z a-z 0-9 _ -


=== TEST 38: nginx -t: txval_namespace: 33 characters
--- config
    location /t {
        txval_namespace nnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnn;
        txval;
    }
--- request
GET /t
--- must_die
--- error_log
[emerg]
invalid value "nnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnn" in "txval_namespace" directive, it must be 1 to 32 characters from A-Z a-z 0-9 _ -


=== TEST 39: nginx -t: txval_namespace: empty
--- config
    location /t {
        txval_namespace "";
        txval;
    }
--- request
GET /t
--- must_die
--- error_log
[emerg]
invalid value "" in "txval_namespace" directive, it must be 1 to 32 characters from A-Z a-z 0-9 _ -


=== TEST 40: nginx -t: txval_namespace: twice
--- config
    location /t {
        txval_namespace a;
        txval_namespace b;
        txval;
    }
--- request
GET /t
--- must_die
--- error_log
[emerg]
"txval_namespace" directive is duplicate


=== TEST 41: nginx -t: txval_field is not allowed in an "if" block
--- config
    location /t {
        if ($arg_x) {
            txval_field amount /amount;
        }
        txval;
    }
--- request
GET /t
--- must_die
--- error_log
[emerg]
"txval_field" directive is not allowed here


=== TEST 42: the edges nginx -t accepts: 8 tokens, a token of 64 bytes, a source of 256 bytes, a namespace of 32, an empty constant for an optional field (never read)
--- config
    location /t {
        txval_field card_bin /a/b/c/d/e/f/g/h;
        txval_field merchant_id /mmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmm;
        txval_field card_token /ttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttt/ttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttt/ttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttt/ttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttt;
        txval_field country "";
        txval_namespace nnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnn;
        txval;
    }
--- more_headers
Content-Type: application/json
--- request eval
qq!POST /t\n{"id":"tx_e","amount":1,"currency":"USD","country":"not read","a":{"b":{"c":{"d":{"e":{"f":{"g":{"h":"424242"}}}}}}},"mmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmm":"m_1","ttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttt":{"ttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttt":{"ttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttt":{"ttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttttt":"tok_1"}}}}!
--- error_code: 200
--- response_body eval
::v('tx_e')
--- no_error_log
[error]
