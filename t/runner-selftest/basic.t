# Self-test of the t/lib test runner against plain nginx (no txval module).
#
#   TXVAL_NO_MODULE=1 TXVAL_OWN_RUNNER=1 prove -I t/lib t/runner-selftest/
#
# Every section the txval tests rely on is exercised here with stock nginx
# directives only (return, add_header, map, proxy_pass, sub_filter, ...).

BEGIN {
    $ENV{TXVAL_NO_MODULE}  = 1 unless defined $ENV{TXVAL_NO_MODULE};
    $ENV{TXVAL_OWN_RUNNER} = 1 unless defined $ENV{TXVAL_OWN_RUNNER};
    # own port and servroot, so it can run next to the real suite
    $ENV{TEST_NGINX_RANDOMIZE} = 1 unless defined $ENV{TEST_NGINX_RANDOMIZE};
    $ENV{TEST_NGINX_SELFTEST_WORD} = 'expanded';
}

use lib 't/lib';
use Test::Txval;

repeat_each(2);
no_shuffle();
no_long_string();
env_to_nginx('TXVAL_SELFTEST_ENV=hello');

# upstream's counting: one test per status code, header line, body,
# error_log/no_error_log/access_log pattern, must_die result...
plan tests => repeat_each() * 87;

run_tests();

__DATA__

=== TEST 1: plain return, exact body
--- config
    location = /t {
        return 200 "hello\n";
    }
--- request
GET /t
--- response_body
hello
--- error_code: 200
--- no_error_log
[error]



=== TEST 2: chomp filter, HTTP/1.0 request line
--- config
    location = /t {
        return 200 "no newline";
    }
--- request
GET /t HTTP/1.0
--- response_body chomp
no newline



=== TEST 3: response headers: value, absent (!Name), absent-or-empty (Name:)
--- config
    location = /t {
        add_header X-Foo "bar baz";
        add_header X-Multi one;
        add_header X-Multi two;
        return 200 "ok\n";
    }
--- request
GET /t
--- response_headers
X-Foo: bar baz
Content-Type: text/plain
Content-Length: 3
X-Multi: one, two
!X-Absent
X-Also-Absent:
--- response_body
ok



=== TEST 4: response_headers_like, raw_response_headers_like
--- config
    location = /t {
        add_header X-Num 12345;
        return 200 "ok\n";
    }
--- request
GET /t
--- response_headers_like
X-Num: \d+
Server: nginx.*
--- raw_response_headers_like: ^HTTP/1\.1 200 OK\r\n
--- response_body
ok



=== TEST 5: error_code and response_body_like
--- config
    location = /t {
        return 405;
    }
--- request
GET /t
--- error_code: 405
--- response_body_like: 405 Not Allowed



=== TEST 6: $TEST_NGINX_ variables expanded in config and http_config
--- http_config
    map $uri $word {
        default "$TEST_NGINX_SELFTEST_WORD";
    }
--- config
    location = /t {
        return 200 "$word $TEST_NGINX_SELFTEST_WORD port=$server_port\n";
    }
--- request
GET /t
--- response_body
expanded expanded port=$ServerPort



=== TEST 7: main_config lands at the top level
--- main_config
worker_rlimit_core 1m;
--- config
    location = /t {
        return 200 "main\n";
    }
--- request
GET /t
--- response_body
main



=== TEST 8: more_headers
--- config
    location = /t {
        return 200 "foo=$http_x_foo host=$host conn=$http_connection\n";
    }
--- request
GET /t
--- more_headers
X-Foo: some value
# comment lines are ignored
--- response_body
foo=some value host=localhost conn=close



=== TEST 9: request body gets Content-Length (trimmed like upstream)
--- config
    location = /t {
        return 200 "len=$content_length method=$request_method\n";
    }
--- request
POST /t
hello world
--- response_body
len=11 method=POST



=== TEST 10: chunked request body, proxied (exercises client_body_temp)
--- config
    location = /t {
        client_body_in_file_only on;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/len;
    }
    location = /len {
        return 200 "len=$content_length te=$http_transfer_encoding\n";
    }
--- more_headers
Transfer-Encoding: chunked
--- request eval
"POST /t
5\r
hello\r
6\r
 world\r
0\r
\r
"
--- response_body
len=11 te=



=== TEST 11: request eval array: one connection per request
--- config
    location = /a { return 200 "A\n"; }
    location = /b { return 404; }
    location = /c { add_header X-C yes; return 200 "C\n"; }
--- request eval
["GET /a", "GET /b", "GET /c"]
--- error_code eval
[200, 404, 200]
--- response_body_like eval
["^A\n\\z", "404 Not Found", "^C"]
--- response_headers eval
["!X-C", "", "X-C: yes"]



=== TEST 12: response_body eval array
--- config
    location = /a { return 200 "A"; }
    location = /b { return 200 "B"; }
--- request eval
["GET /a", "GET /b"]
--- response_body eval
["A", "B"]



=== TEST 13: request split into packets
--- config
    location = /t {
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/len;
    }
    location = /len {
        return 200 "len=$content_length\n";
    }
--- request eval
[["POST /t\nhel", {value => "lo", delay_before => 0.05}]]
--- response_body
len=5



=== TEST 14: raw_request
--- config
    location = /t {
        return 200 "raw $server_protocol $http_x_raw\n";
    }
--- raw_request eval
"GET /t HTTP/1.0\r
X-Raw: yes\r
\r
"
--- response_body
raw HTTP/1.0 yes



=== TEST 15: raw_request eval array = packets of one request
--- config
    location = /t {
        return 200 "$http_x_a|$http_x_b\n";
    }
--- raw_request eval
["GET /t HTTP/1.1\r\nHost: localhost\r\nX-A: 1\r\nX-",
 "B: 2\r\nConnection: close\r\n\r\n"]
--- raw_request_middle_delay: 0.02
--- response_body
1|2



=== TEST 16: chunked response (sub_filter on a user file)
--- config
    location = /f.txt {
        root html;
        sub_filter "hello" "bye";
        sub_filter_types *;
    }
--- user_files
>>> f.txt
hello, user file
--- request
GET /f.txt
--- response_headers
Transfer-Encoding: chunked
!Content-Length
--- response_body
bye, user file



=== TEST 17: read-to-close body (HTTP/1.0, no Content-Length)
--- config
    location = /f.txt {
        root html;
        sub_filter "hello" "bye";
        sub_filter_types *;
    }
--- user_files
>>> f.txt
hello again
--- request
GET /f.txt HTTP/1.0
--- response_headers
!Transfer-Encoding
!Content-Length
--- response_body
bye again



=== TEST 18: HEAD request: Content-Length but no body
--- config
    location = /t {
        return 200 "twelve bytes";
    }
--- request
HEAD /t
--- response_headers
Content-Length: 12
--- response_body chomp



=== TEST 19: error_log: plain string, eval qr//, eval array
--- config
    location /x {
        root /nonexistent;
    }
--- request
GET /x/missing
--- error_code: 404
--- error_log
[error]
open() "/nonexistent/x/missing" failed
--- no_error_log
[alert]
[crit]



=== TEST 20: error_log eval forms
--- config
    location /x {
        root /nonexistent;
    }
--- request
GET /x/other
--- error_code: 404
--- error_log eval
[qr/open\(\) "[^"]+other" failed \(2: No such file/, "No such file or directory"]
--- no_error_log eval
qr/\[emerg\]/



=== TEST 21: grep_error_log / grep_error_log_out
--- config
    location /x {
        root /nonexistent;
    }
--- request
GET /x/grepped
--- error_code: 404
--- grep_error_log eval
qr/open\(\) "[^"]+" failed/
--- grep_error_log_out
open() "/nonexistent/x/grepped" failed



=== TEST 22: must_die: unknown directive
--- config
    location = /t {
        no_such_directive_here on;
    }
--- must_die
--- error_log
unknown directive "no_such_directive_here"



=== TEST 23: must_die with the exit code
--- config
    location = /t {
        return 200 "a" "b" "c";
    }
--- must_die: 1
--- error_log eval
qr/invalid number of arguments in "return" directive/



=== TEST 24: timeout + abort + ignore_response (server waits for a body)
--- config
    location = /t {
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/len;
    }
    location = /len {
        return 200 "len=$content_length\n";
    }
--- raw_request eval
"POST /t HTTP/1.1\r
Host: localhost\r
Connection: close\r
Content-Length: 100\r
\r
short"
--- timeout: 300ms
--- abort
--- ignore_response
--- no_error_log
[alert]



=== TEST 25: wait, log_level per block, access_log
--- config
    location = /t {
        return 200 "logged\n";
    }
--- log_level: info
--- request
GET /t?marker=abc
--- wait: 0.05
--- response_body
logged
--- access_log
GET /t?marker=abc
--- no_error_log
[debug]



=== TEST 26: a block without --- config reuses the previous one
--- request
GET /t?marker=again
--- response_body
logged



=== TEST 27: default root location serves html/index.html
--- config
--- request
GET /
--- response_body_like: It works!



=== TEST 28: response_body_filters
--- config
    location = /t {
        return 200 "Hello";
    }
--- request
GET /t
--- response_body_filters
uc
--- response_body chop
HELLO



=== TEST 29: comments before the request line, large body
--- config
    location = /t {
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/len;
    }
    location = /len {
        return 200 "len=$content_length\n";
    }
--- request eval
"# a comment line
POST /t\n" . ("x" x 200000)
--- response_body
len=200000
