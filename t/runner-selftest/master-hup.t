# Runner self-test: master process + 2 workers, HUP reload between blocks
# (use_hup(), same as TEST_NGINX_USE_HUP=1).  Plain nginx only.

BEGIN {
    $ENV{TXVAL_NO_MODULE}  = 1 unless defined $ENV{TXVAL_NO_MODULE};
    $ENV{TXVAL_OWN_RUNNER} = 1 unless defined $ENV{TXVAL_OWN_RUNNER};
    $ENV{TEST_NGINX_RANDOMIZE} = 1 unless defined $ENV{TEST_NGINX_RANDOMIZE};
}

use lib 't/lib';
use Test::Txval 'no_plan';

master_on();
workers(2);
repeat_each(2);
use_hup() unless $ENV{TEST_NGINX_USE_VALGRIND};
no_shuffle();

run_tests();

__DATA__

=== TEST 1: first config
--- config
    location = /t {
        return 200 "first\n";
    }
--- request
GET /t
--- response_body
first
--- no_error_log
[error]



=== TEST 2: second config (reloaded)
--- http_config
    map $uri $v { default "second"; }
--- config
    location = /t {
        return 200 "$v\n";
    }
--- request
GET /t
--- response_body
second
--- no_error_log
[error]
[emerg]



=== TEST 3: workers (running as the default user) write request bodies to temp files
--- config
    location = /t {
        client_body_in_file_only on;
        proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/len;
    }
    location = /len {
        return 200 "len=$content_length\n";
    }
--- request eval
"POST /t\n" . ("y" x 100000)
--- response_body
len=100000



=== TEST 4: workers read user files
--- user_files
>>> sub/dir/file.txt
from a user file
--- config
--- request
GET /sub/dir/file.txt
--- response_body
from a user file



=== TEST 5: worker error log lines
--- config
    location /x {
        root /nonexistent;
    }
--- request
GET /x/y
--- error_code: 404
--- error_log
open() "/nonexistent/x/y" failed



=== TEST 6: must_die in HUP mode (stops the master, starts fresh)
--- config
    location = /t {
        bogus_directive 1;
    }
--- must_die
--- error_log
unknown directive "bogus_directive"



=== TEST 7: back to normal after must_die
--- config
    location = /t {
        return 200 "seventh\n";
    }
--- request
GET /t
--- response_body
seventh



=== TEST 8: no --- config: previous one is reused
--- request
GET /t
--- response_body
seventh
