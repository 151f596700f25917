# The gate cannot be walked around: every path by which a request can
# reach a gated location's upstream, each tried with an approved
# transaction (forwarded once, with X-Txval-* from txval only), a declined
# one, an invalid body and a body with a card number (never forwarded,
# answered by txval), all sent with spoofed X-Txval-* headers and an
# X-Debug header:
#
#   a. "if" blocks of a gated location (the issue's `if ($http_x_debug)
#      { set $d 1; }`, and an "if" with its own proxy_pass), also over
#      HTTP/2;
#   b. "limit_except" blocks (a POST goes through the block);
#   c. nested locations, and "txval_gate off" in one (the documented
#      escape hatch: not validated); "txval_gate" is refused in "if" and
#      "limit_except" blocks, so no request header can turn the gate off;
#      a "txval" location nested in a gated one answers verdicts, and its
#      "if" and "limit_except" blocks with a proxy_pass of their own are
#      gated;
#   d. mirror, from a plain location into a gated one (validated on the
#      mirrored body) and from a gated location into a gated one (the
#      main request's outcome; the mirror fires only once approved);
#      mirror_request_body off (no body: refused);
#   e. SSI includes of a gated location (validated on the main request's
#      method and body: a GET page gets the 405 included, a proxied POST
#      page the verdict);
#   f. auth_request into a gated location (the main body is not read yet:
#      refused, the auth fails with 500);
#   g. internal redirects: error_page (to a URI: the method becomes GET,
#      405; to a named location: validated), try_files, rewrite ... last,
#      and try_files after a gate (validated twice, the second a replay);
#   h. a client that closes while its transaction waits for a slow
#      Postgres: 499 in the access log, never forwarded, its in-progress
#      mark released (HTTP/1.1 and HTTP/2); the same request, waited for,
#      is forwarded with X-Txval-Degraded: true under fail-open;
#   i. subrequests that carry a body of their own (the echo module's
#      echo_subrequest, Lua's ngx.location.capture): validated on the
#      body they carry, not on the main request's;
#   j. underscores_in_headers on: X_Txval_Verdict (which CGI-style
#      backends read as X-Txval-Verdict) is dropped too.
#
# A gated location's "if" block with "return" runs in the rewrite phase,
# before any gate: a documented limit (README), not tested as a bypass.
#
# At the end, no [alert] (such as "open socket left in connection"), [crit]
# or crash in any instance's error.log.
#
# The upstream is t/lib/Txval/Echo.pm, which records what it receives.
# Needs the suite's Postgres on 127.0.0.1:$TEST_NGINX_PG_PORT with
# t/fixtures.sql loaded (make test starts it). The echo and Lua modules
# (Debian's libnginx-mod-http-echo, libnginx-mod-http-lua) are used when
# installed; HTTP/2 when curl has it.
#
# Ports, from $TXVAL_TEST_PATHS_PORT (default 2010): nginx on +1..+6, the
# echo backend on +9.

use strict;
use warnings;

use lib 't/lib';

use File::Path qw(make_path);
use IO::Select;
use IO::Socket::INET;
use POSIX ();
use Test::More;
use Time::HiRes qw(sleep time);

use Txval::Echo;
use Txval::Nginx qw(need_services);
use Txval::Tx qw(tx_defaults tx v error_body invalid_json);

my $PG_PORT = $ENV{TEST_NGINX_PG_PORT} || 16432;
my $BASE = $ENV{TXVAL_TEST_PATHS_PORT} || 2010;
my $ECHO = $BASE + 9;
my $MODULES = $ENV{TXVAL_NGINX_MODULES} // '/usr/lib/nginx/modules';
my $VALGRIND = $ENV{TEST_NGINX_USE_VALGRIND};

need_services(Postgres => $PG_PORT);

my %port = (paths => $BASE + 1, h2 => $BASE + 2, slow => $BASE + 3,
            mods => $BASE + 4, slow_h2 => $BASE + 5, under => $BASE + 6);


# ---------------------------------------------------------------------------
# transactions and txval's answers
# ---------------------------------------------------------------------------

my $seq = 0;
my $run = "p$$" . int(time) % 100000;
sub new_id { sprintf '%s_%s_%d', $run, $_[0] // 'x', ++$seq }

# transactions (extra fields, their values already JSON, after the others)
# and the answers txval gives: Txval::Tx's
tx_defaults(id => undef, currency => 'EUR', merchant_id => 't_active',
            card_token => 't_card_us');

my %ERR = (
    invalid_json => invalid_json(),
    empty => invalid_json('the body is empty'),
    pan => error_body('pan_not_accepted'),
    method => error_body('method_not_allowed'),
);

# what the client sends: every kind of transaction, each with spoofed
# X-Txval-* headers and X-Debug; {answer} is txval's answer when it
# refuses (status, body)
sub kinds {
    my ($tag) = @_;
    my ($ok, $blocked, $range) = map { new_id("$tag$_") } qw(a b r);
    return (
        { kind => 'approved', id => $ok, body => tx(id => $ok) },
        { kind => 'declined (card_blocked)', id => $blocked,
          body => tx(id => $blocked, card_token => 't_card_blocked'),
          answer => [ 402, v($blocked, 'computed', 'declined',
                             ['card_blocked'], 0) ] },
        { kind => 'declined (amount_out_of_range)', id => $range,
          body => tx(id => $range, amount => 200000),
          answer => [ 402, v($range, 'computed', 'declined',
                             ['amount_out_of_range'], 30) ] },
        { kind => 'invalid JSON', body => qq({"id":"$ok","amount":),
          answer => [ 400, $ERR{invalid_json} ] },
        { kind => 'card number',
          body => tx(id => new_id("${tag}p"), pan => '"4111111111111111"'),
          answer => [ 400, $ERR{pan} ] },
    );
}

my @SPOOF = ([ 'X-Txval-Verdict', 'approved' ],
             [ 'X-Txval-Risk-Score', '0' ],
             [ 'x-txval-source', 'shm' ],
             [ 'X-TXVAL-DEGRADED', 'false' ],
             [ 'X-Debug', '1' ]);


# ---------------------------------------------------------------------------
# a raw HTTP/1.1 client
# ---------------------------------------------------------------------------

# the request's bytes; headers => [[name, value], ...]
sub request_bytes {
    my (%a) = @_;
    my $method = $a{method} // 'POST';
    my $head = "$method $a{uri} HTTP/1.1\r\nHost: localhost\r\n"
             . "Connection: close\r\n";
    $head .= "Content-Type: application/json\r\n"
        unless exists $a{ctype} && !defined $a{ctype};
    $head .= "$_->[0]: $_->[1]\r\n" for @{$a{headers} // []};
    $head .= "Content-Length: " . length($a{body}) . "\r\n"
        if defined $a{body};
    return $head . "\r\n" . ($a{body} // '');
}

# one request on its own connection: {status, headers, body} (status 0
# when there is no answer)
sub call {
    my ($port, %a) = @_;
    my $res = eval {
        my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                      PeerPort => $port, Proto => 'tcp',
                                      Timeout => 5)
            or die "connect to $port: $!\n";
        $s->syswrite(request_bytes(%a));
        my $raw = '';
        my $sel = IO::Select->new($s);
        my $deadline = time + ($a{timeout} // 10);
        for (;;) {
            die "read timeout\n" if time > $deadline;
            next unless $sel->can_read(0.5);
            my $n = sysread $s, my $buf, 65536;
            die "read: $!\n" unless defined $n;
            last if $n == 0;
            $raw .= $buf;
        }
        Txval::Nginx::parse_response($raw);
    };
    return $res if $res;
    diag("no response from $port$a{uri}: $@");
    return { status => 0, body => '', headers => {} };
}

# a POST of one of kinds() with the spoofed headers
sub send_kind {
    my ($port, $uri, $k, @extra) = @_;
    return call($port, uri => $uri, body => $k->{body},
                headers => [ @SPOOF, @extra ]);
}


# ---------------------------------------------------------------------------
# the upstream
# ---------------------------------------------------------------------------

my $echo = Txval::Echo->start(port => $ECHO);
my $up = "http://127.0.0.1:$ECHO";

# the records at one upstream URI. The client reads its answer to the
# end of the connection, which nginx closes only once the request and
# all its subrequests (a mirror's too) are done: by then the upstream
# has recorded whatever it was sent.
sub records_at {
    my ($uri) = @_;
    return grep { $_->{uri} eq $uri } $echo->requests;
}

# the headers of a record whose name says X-Txval-* to a CGI-style
# backend (X_Txval_*, any case)
sub txval_headers {
    my ($rec) = @_;
    return map { "$_->[0]: $_->[1]" }
           grep { $_->[0] =~ /^x[-_]txval[-_]/i } @{$rec->{headers}};
}

# an approved transaction reached this upstream URI once, as sent, with
# txval's headers only
sub forwarded_ok {
    my ($name, $uri, $body, %want) = @_;
    my @r = records_at($uri);
    is(scalar @r, 1, "$name: the upstream got it once") or return;
    my $rec = $r[0];
    is($rec->{method}, $want{method} // 'POST', "$name: method");
    ok($rec->{body} eq $body, "$name: the body as sent")
        or diag("got: $rec->{body}");
    is_deeply([ txval_headers($rec) ],
              [ 'X-Txval-Verdict: approved',
                'X-Txval-Risk-Score: ' . ($want{score} // 0),
                'X-Txval-Source: ' . ($want{source} // 'computed'),
                $want{degraded} ? 'X-Txval-Degraded: true' : () ],
              "$name: X-Txval-* from txval only");
    is_deeply([ Txval::Echo::header($rec, 'X-Debug') ], [ '1' ],
              "$name: the other headers pass");
    return $rec;
}

# nothing reached this upstream URI
sub not_forwarded_ok {
    my ($name, $uri) = @_;
    my @r = records_at($uri);
    is(scalar @r, 0, "$name: the upstream never saw it")
        or diag(join "\n", map { txval_headers($_) } @r);
}

# the client got txval's answer, not the upstream's
sub answered_ok {
    my ($name, $res, $status, $body) = @_;
    is($res->{status}, $status, "$name: status $status");
    is($res->{body}, $body, "$name: txval's body");
    ok(!defined $res->{headers}{'x-echo-count'},
       "$name: not the upstream's answer");
}

# the four kinds through a path where the client talks to the gate:
# approved forwarded to $up_uri, the others answered by txval
sub gated_path_ok {
    my ($name, $port, $uri, $up_uri, %want) = @_;

    for my $k (kinds(substr $name =~ s/\W//gr, 0, 8)) {
        my $what = "$name: $k->{kind}";
        $echo->reset;
        my $res = send_kind($port, $uri, $k);

        if ($k->{answer}) {
            answered_ok($what, $res, @{$k->{answer}});
            not_forwarded_ok($what, $up_uri);
            next;
        }

        is($res->{status}, 200, "$what: the upstream's answer");
        ok($res->{body} eq $k->{body}, "$what: echoed");
        forwarded_ok($what, $up_uri, $k->{body}, %want);
    }
}


# ---------------------------------------------------------------------------
# nginx
# ---------------------------------------------------------------------------

# (under valgrind, nginx is slow enough to miss the 200 ms default)
my $pg = "host=127.0.0.1 port=$PG_PORT dbname=txval user=txval "
       . 'password=txval"' . ($VALGRIND ? ' timeout=5s' : '');

# a TCP server that accepts and never answers: Postgres that hangs
my $hole = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0,
                                 Proto => 'tcp', Listen => 64, ReuseAddr => 1)
    or die "no listening socket: $!\n";
my $hole_port = $hole->sockport;
my $parent = $$;
my $hole_pid = fork // die "fork: $!\n";
if ($hole_pid == 0) {
    my @held;
    local $SIG{TERM} = sub { POSIX::_exit(0) };
    for (;;) {
        POSIX::_exit(0) if getppid() != $parent;
        my $sel = IO::Select->new($hole);
        next unless $sel->can_read(1);
        my $c = $hole->accept or next;
        push @held, $c;
    }
}
close $hole;

my %http;

$http{paths} = <<"HTTP";
    txval_cache_zone paths:1m;
    txval_postgres "$pg;

    server {
        listen $port{paths};
        listen $port{h2} http2;
        txval_amount_limit EUR 1 100000;
        default_type text/html;

        # a. if blocks
        location = /if-debug {
            txval_gate;
            if (\$http_x_debug) {
                set \$d 1;
            }
            proxy_pass $up/up/if-debug;
        }

        location = /if-proxy {
            txval_gate;
            if (\$http_x_debug) {
                proxy_pass $up;
            }
            proxy_pass $up/up/if-proxy;
        }

        # b. limit_except blocks
        location = /le {
            txval_gate;
            limit_except GET {
                allow 127.0.0.1;
                deny all;
            }
            proxy_pass $up/up/le;
        }

        location = /le-proxy {
            txval_gate;
            limit_except GET {
                proxy_pass $up;
            }
            proxy_pass $up/up/le-proxy;
        }

        # c. nested locations
        location /nest/ {
            txval_gate;

            location /nest/in {
                proxy_pass $up/up/nest-in;
            }

            location /nest/deeper/ {
                location /nest/deeper/in {
                    if (\$http_x_debug) {
                        set \$d 1;
                    }
                    proxy_pass $up/up/nest-deeper;
                }
            }

            location /nest/off {
                txval_gate off;
                proxy_pass $up/up/nest-off;
            }
        }

        # c. a "txval" location nested in a gated one: its content
        # handler validates; its if and limit_except blocks with a
        # content handler of their own are gated
        location /gv/ {
            txval_gate;

            location /gv/verdict {
                txval;
                if (\$http_x_debug) {
                    set \$d 1;
                }
            }

            location /gv/if {
                txval;
                if (\$http_x_debug) {
                    proxy_pass $up;
                }
            }

            location /gv/le {
                txval;
                limit_except GET {
                    proxy_pass $up;
                }
            }
        }

        # d. mirror
        location = /mirror-plain {
            mirror /m-gated;
            mirror_request_body on;
            proxy_pass $up/up/mirror-plain;
        }

        location = /mirror-nobody {
            mirror /m-gated;
            mirror_request_body off;
            proxy_pass $up/up/mirror-nobody;
        }

        location = /mirror-gated {
            txval_gate;
            mirror /m-gated;
            proxy_pass $up/up/mirror-gated;
        }

        location = /m-gated {
            internal;
            txval_gate;
            proxy_pass $up/up/m-gated;
        }

        # e. SSI
        location = /page.shtml {
            ssi on;
        }

        location = /ssi-echo {
            ssi on;
            ssi_types *;
            proxy_pass $up/up/ssi-echo;
        }

        location = /ssi-gated {
            txval_gate;
            proxy_pass $up/up/ssi-gated;
        }

        # f. auth_request
        location = /auth-plain {
            auth_request /auth-gated;
            proxy_pass $up/up/auth-plain;
        }

        location = /auth-in-gate {
            auth_request /auth-gated;
            txval_gate;
            proxy_pass $up/up/auth-in-gate;
        }

        location = /auth-gated {
            internal;
            txval_gate;
            proxy_pass $up/up/auth-gated;
        }

        # g. internal redirects
        location = /e404 {
            error_page 404 = /target;
        }

        location = /e404-named {
            error_page 404 = \@gated;
        }

        location = /tf {
            try_files /nonexistent \@gated;
        }

        location = /gated-tf {
            txval_gate;
            try_files /nonexistent \@gated;
        }

        location = /rw {
            rewrite ^ /target last;
        }

        location = /rw-break {
            txval_gate;
            rewrite ^ /up/rw-break break;
            proxy_pass $up;
        }

        location = /target {
            txval_gate;
            proxy_pass $up/up/target;
        }

        location \@gated {
            txval_gate;
            proxy_pass $up;
        }
    }

    # j. underscores in header names reach the upstream here
    server {
        listen $port{under};
        underscores_in_headers on;

        location = /u {
            txval_gate;
            proxy_pass $up/up/u;
        }

        location = /u-mirror {
            mirror /u-m;
            proxy_pass $up/up/u-mirror;
        }

        location = /u-m {
            internal;
            txval_gate;
            proxy_pass $up/up/u-m;
        }
    }
HTTP

$http{slow} = <<"HTTP";
    txval_cache_zone slow:1m;
    txval_postgres "host=127.0.0.1 port=$hole_port dbname=txval user=txval password=txval" timeout=2s;

    log_format tagged 'tag=\$http_x_tag status=\$status';

    server {
        listen $port{slow};
        listen $port{slow_h2} http2;
        access_log logs/access.log tagged;
        txval_amount_limit EUR 1 100000;

        location = /slow {
            txval_gate;
            proxy_pass $up/up/slow;
        }

        location = /slow-open {
            txval_fail_mode open;
            txval_gate;
            proxy_pass $up/up/slow-open;
        }
    }
HTTP

my %ng;

for my $name (qw(paths slow)) {
    $ng{$name} = Txval::Nginx->new(name => "paths_$name",
                                   port => $port{$name}, valgrind => 1);
    $ng{$name}->start(http => $http{$name}, workers => 1);
}

{
    my $html = $ng{paths}->root . '/html';
    open my $fh, '>', "$html/page.shtml" or die "$html/page.shtml: $!\n";
    print $fh qq(A<!--# include virtual="/ssi-gated" -->B\n);
    close $fh;
}

# the modules that make subrequests with a body of their own, when
# installed and built for this nginx (Lua is left out under valgrind:
# LuaJIT's own noise)
sub loads {
    my (@so) = @_;
    my $conf = Txval::Nginx->new(name => 'paths_load', port => $BASE + 7);
    make_path($conf->root . '/conf', $conf->root . '/logs');
    $conf->write_config(main => join('', map { "load_module $MODULES/$_;\n" }
                                             @so),
                        http => '');
    my $root = $conf->root;
    my $bin = $ENV{TEST_NGINX_BINARY} // '/usr/sbin/nginx';
    my $out = `$bin -t -p $root/ -c conf/nginx.conf -e logs/error.log 2>&1`;
    diag("cannot load @so: $out") if $? && $ENV{TEST_VERBOSE};
    return $? == 0;
}

my %mod;
$mod{echo} = -f "$MODULES/ngx_http_echo_module.so"
             && loads('ngx_http_echo_module.so');
$mod{lua} = !$VALGRIND && -f "$MODULES/ngx_http_lua_module.so"
            && loads('ndk_http_module.so', 'ngx_http_lua_module.so');

if ($mod{echo} || $mod{lua}) {
    my $main = '';
    $main .= "load_module $MODULES/ngx_http_echo_module.so;\n" if $mod{echo};
    $main .= "load_module $MODULES/ndk_http_module.so;\n"
           . "load_module $MODULES/ngx_http_lua_module.so;\n" if $mod{lua};

    # the subrequest's body: the client's, with its card token swapped for
    # X-Swap-Card's value (a stand-in for any rewriting of the body)
    my $lua = <<'LUA';
                ngx.req.read_body()
                local body = ngx.req.get_body_data() or ""
                local swap = ngx.var.http_x_swap_card
                if swap then
                    body = body:gsub('"t_card_us"', '"' .. swap .. '"')
                end
                local res = ngx.location.capture("/m-gated",
                    { method = ngx.HTTP_POST, body = body })
                ngx.status = res.status
                ngx.print(res.body)
LUA

    my $locations = '';

    $locations .= <<"ECHO" if $mod{echo};
        location = /echo-sub {
            echo_read_request_body;
            echo_subrequest POST /m-gated -b \$http_x_sub_body;
        }

        location = /echo-sub-gated {
            txval_gate;
            echo_subrequest POST /m-gated -b \$http_x_sub_body;
        }
ECHO

    $locations .= <<"LUA_LOC" if $mod{lua};
        location = /lua-sub {
            content_by_lua_block {
$lua
            }
        }

        location = /lua-sub-gated {
            txval_gate;
            content_by_lua_block {
$lua
            }
        }

        location = /lua-same-gated {
            txval_gate;
            content_by_lua_block {
                local res = ngx.location.capture("/m-gated",
                    { method = ngx.HTTP_POST })
                ngx.status = res.status
                ngx.print(res.body)
            }
        }
LUA_LOC

    $ng{mods} = Txval::Nginx->new(name => 'paths_mods', port => $port{mods},
                                  valgrind => 1);
    $ng{mods}->start(main => $main, workers => 1, http => <<"HTTP");
    txval_cache_zone mods:1m;
    txval_postgres "$pg;

    server {
        listen $port{mods};
        txval_amount_limit EUR 1 100000;

$locations
        location = /m-gated {
            internal;
            txval_gate;
            proxy_pass $up/up/m-gated;
        }
    }
HTTP
}

my $t0 = time;


# ---------------------------------------------------------------------------
# a. b. c. "if", "limit_except" and nested locations inherit the gate
# ---------------------------------------------------------------------------

my $P = $port{paths};

gated_path_ok('if ($http_x_debug) { set }', $P, '/if-debug', '/up/if-debug');
gated_path_ok('if with its own proxy_pass', $P, '/if-proxy', '/if-proxy');
gated_path_ok('limit_except GET { allow; deny }', $P, '/le', '/up/le');
gated_path_ok('limit_except GET { proxy_pass }', $P, '/le-proxy',
              '/le-proxy');
gated_path_ok('nested location', $P, '/nest/in', '/up/nest-in');
gated_path_ok('nested twice, with an if', $P, '/nest/deeper/in',
              '/up/nest-deeper');

gated_path_ok('txval location\'s if with a proxy_pass, in a gated one', $P,
              '/gv/if', '/gv/if');
gated_path_ok('txval location\'s limit_except with a proxy_pass, in a gated '
              . 'one', $P, '/gv/le', '/gv/le');

# a txval location (in a gated one) whose if block keeps its content
# handler: answered in verdict mode, validated once
for my $k (kinds('gv')) {
    my $what = "txval location in a gated one: $k->{kind}";
    $echo->reset;
    my $res = send_kind($P, '/gv/verdict', $k);
    my ($status, $body) = @{ $k->{answer}
        // [ 200, qq({"id":"$k->{id}","verdict":"approved","reasons":[],)
                  . qq("risk_score":0,"source":"computed"}\n) ] };
    is($res->{status}, $status, "$what: $status");
    is($res->{body}, $body, "$what: the verdict, computed once");
    is($echo->count, 0, "$what: no upstream");
}

# without X-Debug, the if blocks are not taken: gated all the same
{
    my $id = new_id('noif');
    $echo->reset;
    my $res = call($P, uri => '/if-proxy', body => tx(id => $id));
    is($res->{status}, 200, 'if not taken: forwarded');
    is(scalar(records_at('/up/if-proxy')), 1,
       'if not taken: the location\'s own proxy_pass');

    $id = new_id('noif');
    $echo->reset;
    $res = call($P, uri => '/if-debug',
                body => tx(id => $id, card_token => 't_card_blocked'),
                headers => [[ 'X-Txval-Verdict', 'approved' ]]);
    is($res->{status}, 402, 'if not taken: declined');
    not_forwarded_ok('if not taken: declined', '/up/if-debug');
}

# a GET goes around the limit_except block: refused by the gate
for my $uri (qw(/le /le-proxy)) {
    $echo->reset;
    my $res = call($P, method => 'GET', uri => $uri, headers => \@SPOOF);
    answered_ok("limit_except: GET $uri", $res, 405, $ERR{method});
    is($echo->count, 0, "limit_except: GET $uri: the upstream never saw it");
}

# txval_gate off in a nested location: not validated (the escape hatch)
for my $k (kinds('off')) {
    my $what = "txval_gate off: $k->{kind}";
    $echo->reset;
    my $res = send_kind($P, '/nest/off', $k);
    is($res->{status}, 200, "$what: forwarded, not validated");
    my @r = records_at('/up/nest-off');
    is(scalar @r, 1, "$what: the upstream got it");
    is_deeply([ txval_headers($r[0] // { headers => [] }) ],
              [ map { "$_->[0]: $_->[1]" } grep { $_->[0] =~ /txval/i }
                @SPOOF ],
              "$what: with the client's X-Txval-* (nothing gated here)");
}


# ---------------------------------------------------------------------------
# HTTP/2 (h2c): the if block
# ---------------------------------------------------------------------------

SKIP: {
    my $curl = `curl --version 2>/dev/null` // '';
    skip 'no curl with HTTP/2', 1 unless $curl =~ /\bHTTP2\b/;

    my $dir = $ng{paths}->root;

    for my $k (kinds('h2')) {
        my $what = "HTTP/2 if block: $k->{kind}";

        open my $fh, '>', "$dir/h2.body" or die "$dir/h2.body: $!\n";
        print $fh $k->{body};
        close $fh;
        unlink "$dir/h2.out", "$dir/h2.head";

        $echo->reset;
        system('curl', '-s', '--http2-prior-knowledge', '-o', "$dir/h2.out",
               '-D', "$dir/h2.head", '-H', 'Content-Type: application/json',
               (map { ('-H', "$_->[0]: $_->[1]") } @SPOOF),
               '--data-binary', "\@$dir/h2.body",
               "http://127.0.0.1:$port{h2}/if-debug");

        my $res = { status => 0, body => '', headers => {} };
        if (open my $h, '<', "$dir/h2.head") {
            ($res->{status}) = (<$h> // '') =~ m{^HTTP/2 (\d+)};
            while (<$h>) {
                $res->{headers}{lc $1} = $2 if /^([^:]+):\s*(.*?)\r?$/;
            }
        }
        if (open my $o, '<', "$dir/h2.out") {
            local $/;
            $res->{body} = <$o> // '';
        }

        if ($k->{answer}) {
            answered_ok($what, $res, @{$k->{answer}});
            not_forwarded_ok($what, '/up/if-debug');
        } else {
            is($res->{status}, 200, "$what: the upstream's answer");
            forwarded_ok($what, '/up/if-debug', $k->{body});
        }
    }
}


# ---------------------------------------------------------------------------
# d. mirror
# ---------------------------------------------------------------------------

# from a plain location: the main request goes on unvalidated (nothing
# gated there); the mirror is validated on the mirrored body
for my $k (kinds('mp')) {
    my $what = "mirror from a plain location: $k->{kind}";
    $echo->reset;
    my $res = send_kind($P, '/mirror-plain', $k);
    is($res->{status}, 200, "$what: the plain location's answer");
    is(scalar(records_at('/up/mirror-plain')), 1,
       "$what: the plain upstream got it");

    if ($k->{answer}) {
        not_forwarded_ok("$what: mirror", '/up/m-gated');
    } else {
        forwarded_ok("$what: mirror", '/up/m-gated', $k->{body});
    }
}

# mirror_request_body off: the mirror carries no body, refused
{
    my $k = (kinds('mn'))[0];
    $echo->reset;
    my $res = send_kind($P, '/mirror-nobody', $k);
    is($res->{status}, 200, 'mirror_request_body off: the main request');
    is(scalar(records_at('/up/mirror-nobody')), 1,
       'mirror_request_body off: the plain upstream got it');
    not_forwarded_ok('mirror_request_body off: mirror', '/up/m-gated');
}

# from a gated location: the mirror takes the main request's outcome; it
# only fires once the main request is approved
for my $k (kinds('mg')) {
    my $what = "mirror from a gated location: $k->{kind}";
    $echo->reset;
    my $res = send_kind($P, '/mirror-gated', $k);

    if ($k->{answer}) {
        answered_ok($what, $res, @{$k->{answer}});
        not_forwarded_ok($what, '/up/mirror-gated');
        not_forwarded_ok("$what: mirror", '/up/m-gated');
        next;
    }

    is($res->{status}, 200, "$what: the upstream's answer");
    forwarded_ok($what, '/up/mirror-gated', $k->{body});
    forwarded_ok("$what: mirror", '/up/m-gated', $k->{body});
}


# ---------------------------------------------------------------------------
# e. SSI
# ---------------------------------------------------------------------------

# a static page, GET: the include is validated on the main request's
# method: 405 included, the upstream never contacted
{
    $echo->reset;
    my $res = call($P, method => 'GET', uri => '/page.shtml', ctype => undef,
                   headers => \@SPOOF);
    is($res->{status}, 200, 'SSI, GET page: the page');
    is($res->{body}, "A$ERR{method}B\n", 'SSI, GET page: 405 included');
    is($echo->count, 0, 'SSI, GET page: the upstream never contacted');

    # nginx refuses to POST to a static file
    $res = send_kind($P, '/page.shtml', (kinds('ssis'))[0]);
    is($res->{status}, 405, 'SSI, POST to a static page: nginx\'s 405');
    is($echo->count, 0, 'SSI, POST page: the upstream never contacted');
}

# a page made by a plain proxied location from a POST: the include (a GET
# subrequest) is validated on the main request's body; the page is the
# body echoed back, so the include sits in a field of the transaction
for my $k (kinds('ssi')) {
    my $what = "SSI in a proxied page: $k->{kind}";
    my $inc = q(<!--# include virtual='/ssi-gated' -->);
    my $body = $k->{body};
    $body =~ s/\}\z/,"note":"$inc"}/ or $body .= $inc;
    my $k2 = { %$k, body => $body };

    $echo->reset;
    my $res = send_kind($P, '/ssi-echo', $k2);
    is($res->{status}, 200, "$what: the page");
    is(scalar(records_at('/up/ssi-echo')), 1,
       "$what: the plain upstream got the main request");

    (my $want = $body) =~ s/\Q$inc\E/%s/;

    if ($k->{answer}) {
        my ($status, $answer) = @{$k->{answer}};
        # the verdict is for the id in the body; in the invalid JSON case
        # the body was cut before the include's field
        is($res->{body}, sprintf($want, $answer),
           "$what: txval's $status answer included");
        not_forwarded_ok("$what: include", '/up/ssi-gated');
        next;
    }

    is($res->{body}, sprintf($want, $body), "$what: the upstream's included");
    forwarded_ok("$what: include", '/up/ssi-gated', $body, method => 'GET');
}


# ---------------------------------------------------------------------------
# f. auth_request: the main request's body is not read in the access
# phase: refused, the auth request fails
# ---------------------------------------------------------------------------

for my $uri (qw(/auth-plain /auth-in-gate)) {
    for my $k (kinds('auth')) {
        my $what = "auth_request from $uri: $k->{kind}";
        $echo->reset;
        my $res = send_kind($P, $uri, $k);
        is($res->{status}, 500, "$what: 500 (auth request got 400)");
        is($echo->count, 0, "$what: no upstream contacted");
    }
}


# ---------------------------------------------------------------------------
# g. internal redirects
# ---------------------------------------------------------------------------

# error_page to a URI makes the request a GET: 405
for my $k (kinds('e404')) {
    my $what = "error_page 404 = /target: $k->{kind}";
    $echo->reset;
    my $res = send_kind($P, '/e404', $k);
    answered_ok($what, $res, 405, $ERR{method});
    is($echo->count, 0, "$what: the upstream never saw it");
}

gated_path_ok('error_page 404 = @gated', $P, '/e404-named', '/e404-named');
gated_path_ok('try_files to @gated', $P, '/tf', '/tf');
gated_path_ok('rewrite ... last', $P, '/rw', '/up/target');
gated_path_ok('rewrite ... break in a gated location', $P, '/rw-break',
              '/up/rw-break');

# the gate runs before try_files, and again in @gated: a replay there
gated_path_ok('a gated location\'s try_files to @gated', $P, '/gated-tf',
              '/gated-tf', source => 'shm');


# ---------------------------------------------------------------------------
# i. subrequests with a body of their own
# ---------------------------------------------------------------------------

SKIP: {
    skip 'no echo module', 1 unless $mod{echo};

    my $M = $port{mods};

    for my $uri (qw(/echo-sub /echo-sub-gated)) {
        # the client's body is approved; the subrequest's is not
        my $id = new_id('es');
        my $main = tx(id => new_id('es'));
        my $sub = tx(id => $id, card_token => 't_card_blocked');

        $echo->reset;
        my $res = call($M, uri => $uri, body => $main,
                       headers => [ @SPOOF, [ 'X-Sub-Body', $sub ] ]);
        is($res->{status}, 200, "echo_subrequest from $uri: the page");
        is($res->{body}, v($id, 'computed', 'declined', ['card_blocked'], 0),
           "echo_subrequest from $uri: the subrequest declined");
        not_forwarded_ok("echo_subrequest from $uri", '/up/m-gated');

        # and the other way round: a declined main request, gated, is
        # refused; not gated, its subrequest's approved body goes on
        $id = new_id('es');
        $sub = tx(id => $id);
        $echo->reset;
        $res = call($M, uri => $uri,
                    body => tx(id => new_id('es'),
                               card_token => 't_card_blocked'),
                    headers => [ @SPOOF, [ 'X-Sub-Body', $sub ] ]);
        if ($uri =~ /gated/) {
            is($res->{status}, 402, "echo_subrequest from $uri: declined");
            not_forwarded_ok("echo_subrequest from $uri, declined",
                             '/up/m-gated');
        } else {
            is($res->{status}, 200, "echo_subrequest from $uri: approved");
            forwarded_ok("echo_subrequest from $uri, approved",
                         '/up/m-gated', $sub);
        }
    }
}

SKIP: {
    skip 'no Lua module (or under valgrind)', 1 unless $mod{lua};

    my $M = $port{mods};

    for my $uri (qw(/lua-sub /lua-sub-gated)) {
        my $id = new_id('lua');
        my $body = tx(id => $id);

        $echo->reset;
        my $res = call($M, uri => $uri, body => $body,
                       headers => [ @SPOOF,
                                    [ 'X-Swap-Card', 't_card_blocked' ] ]);
        # from a plain location: declined; from a gated one, whose main
        # request approved this id with other content: a conflict
        my ($status, $answer) = $uri =~ /gated/
            ? (409, qq({"error":"idempotency_conflict","id":"$id","detail":)
                    . qq("this id was already used for a transaction with )
                    . qq(different content"}\n))
            : (402, v($id, 'computed', 'declined', ['card_blocked'], 0));
        is($res->{status}, $status,
           "Lua capture from $uri, body rewritten: $status");
        is($res->{body}, $answer,
           "Lua capture from $uri, body rewritten: txval's answer");
        not_forwarded_ok("Lua capture from $uri, body rewritten",
                         '/up/m-gated');

        # the same bytes as the client's, in a body of its own: validated
        # again (a replay when the main request was)
        $id = new_id('lua');
        $body = tx(id => $id);
        $echo->reset;
        $res = call($M, uri => $uri, body => $body, headers => \@SPOOF);
        is($res->{status}, 200, "Lua capture from $uri, same body: approved");
        forwarded_ok("Lua capture from $uri, same body", '/up/m-gated', $body,
                     source => $uri =~ /gated/ ? 'shm' : 'computed');
    }

    # no body given: the main request's, and its outcome
    my $body = tx(id => new_id('lua'));
    $echo->reset;
    my $res = call($M, uri => '/lua-same-gated', body => $body,
                   headers => \@SPOOF);
    is($res->{status}, 200, 'Lua capture with the main body: approved');
    forwarded_ok('Lua capture with the main body', '/up/m-gated', $body);
}


# ---------------------------------------------------------------------------
# j. underscores_in_headers on
# ---------------------------------------------------------------------------

{
    my @under = ([ 'X_Txval_Verdict', 'approved' ],
                 [ 'x_txval_source', 'shm' ],
                 [ 'X-Txval_Risk-Score', '0' ],
                 [ 'X_Other', 'kept' ]);

    for my $case ([ '/u', '/up/u' ], [ '/u-mirror', '/up/u-m' ]) {
        my ($uri, $up_uri) = @$case;
        my $body = tx(id => new_id('u'));
        $echo->reset;
        my $res = call($port{under}, uri => $uri, body => $body,
                       headers => [ @SPOOF, @under ]);
        is($res->{status}, 200, "underscores, $uri: forwarded");
        my $rec = forwarded_ok("underscores, $uri", $up_uri, $body);
        is_deeply([ Txval::Echo::header($rec // { headers => [] },
                                        'X_Other') ],
                  [ 'kept' ], "underscores, $uri: X_Other passes");
    }
}


# ---------------------------------------------------------------------------
# h. a client that goes away while its transaction waits for Postgres
# ---------------------------------------------------------------------------

{
    my $S = $port{slow};
    my $ng = $ng{slow};
    my $log = $ng->root . '/logs/access.log';

    my $status_of = sub {
        my ($tag) = @_;
        my $deadline = time + 5;
        while (time < $deadline) {
            if (open my $fh, '<', $log) {
                while (<$fh>) {
                    return $1 if /^tag=\Q$tag\E status=(\d+)$/;
                }
            }
            sleep 0.1;
        }
        return 'none';
    };

    # the one that stays: after the 2 s timeout, fail-open forwards it
    my $id = new_id('slow');
    my $body = tx(id => $id);
    $echo->reset;
    my $t = time;
    my $res = call($S, uri => '/slow-open', body => $body,
                   headers => [ @SPOOF, [ 'X-Tag', "stay-$id" ] ]);
    cmp_ok(time - $t, '>=', 1.9, 'slow: the validation took the timeout');
    is($res->{status}, 200, 'slow, fail-open, waited for: forwarded');
    forwarded_ok('slow, fail-open, waited for', '/up/slow-open', $body,
                 degraded => 1);

    # the ones that go away: sent, closed while waiting (each after the
    # 200 ms during which a Postgres that timed out is not tried again)
    for my $loc (qw(/slow /slow-open)) {
        $id = new_id('gone');
        $body = tx(id => $id);
        $echo->reset;
        sleep 0.3;

        my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                      PeerPort => $S, Proto => 'tcp')
            or die "connect: $!\n";
        $s->syswrite(request_bytes(uri => $loc, body => $body,
                                   headers => [ @SPOOF,
                                                [ 'X-Tag', "gone-$id" ] ]));
        sleep 0.3;
        close $s;

        is($status_of->("gone-$id"), 499, "gone from $loc: 499 logged");

        # past the backend's timeout: nothing was forwarded
        sleep 2.2;
        is($echo->count, 0, "gone from $loc: never forwarded");
        is($echo->connections, 0, "gone from $loc: the upstream never "
                                  . 'contacted');

        # its in-progress mark is gone: the same id again is validated
        # (not 409 idempotency_in_progress)
        sleep 0.3;
        if ($loc eq '/slow-open') {
            $res = call($S, uri => $loc, body => $body,
                        headers => [ @SPOOF, [ 'X-Tag', "again-$id" ] ]);
            is($res->{status}, 200, "gone from $loc: the same id again, "
                                    . 'forwarded');
            forwarded_ok("gone from $loc: again", '/up/slow-open', $body,
                         degraded => 1)
                if $res->{status} == 200;
        } else {
            $res = call($S, uri => $loc, body => $body,
                        headers => [[ 'X-Tag', "again-$id" ]]);
            is($res->{status}, 503, "gone from $loc: the same id again, "
                                    . '503 (fail-closed)');
        }
    }

    SKIP: {
        my $curl = `curl --version 2>/dev/null` // '';
        skip 'no curl with HTTP/2', 1 unless $curl =~ /\bHTTP2\b/;

        $id = new_id('gone2');
        $echo->reset;
        sleep 0.3;
        system('curl', '-s', '-o', '/dev/null', '--max-time', '0.5',
               '--http2-prior-knowledge', '-H', 'Content-Type: application/json',
               '-H', "X-Tag: gone2-$id", '--data-binary', tx(id => $id),
               "http://127.0.0.1:$port{slow_h2}/slow-open");
        is($status_of->("gone2-$id"), 499, 'gone, HTTP/2: 499 logged');
        sleep 2.2;
        is($echo->count, 0, 'gone, HTTP/2: never forwarded');
        is($echo->connections, 0, 'gone, HTTP/2: the upstream never '
                                  . 'contacted');
    }
}


# ---------------------------------------------------------------------------
# nginx -t: no "if" or "limit_except" block can turn the gate off
# ---------------------------------------------------------------------------

{
    my $conf = Txval::Nginx->new(name => 'paths_conf', port => $BASE + 7);
    make_path($conf->root . '/conf', $conf->root . '/logs');

    for my $block ('if ($http_x_debug) { txval_gate off; }',
                   'limit_except GET { txval_gate off; }')
    {
        $conf->write_config(http => "    server {\n        listen "
            . ($BASE + 7) . ";\n        location = /a { txval_gate; $block "
            . "proxy_pass http://127.0.0.1:1; }\n    }\n");
        my $root = $conf->root;
        my $bin = $ENV{TEST_NGINX_BINARY} // '/usr/sbin/nginx';
        my $out = `$bin -t -p $root/ -c conf/nginx.conf -e logs/error.log 2>&1`;
        isnt($? >> 8, 0, "nginx -t refuses: $block");
        like($out, qr/\[emerg\] "txval_gate" directive is not allowed here/,
             "nginx -t says why: $block");
    }
}


# stopped first: an "open socket ... left in connection" alert comes at
# the exit
for my $name (sort keys %ng) {
    my $ng = $ng{$name};
    $ng->stop;
    $ng->error_log_clean($name);
    $ng->valgrind_ok($name);
}

kill 'TERM', $hole_pid;
waitpid $hole_pid, 0;
$echo->stop;

diag(sprintf 'requests took %.1f s', time - $t0) if $ENV{TEST_VERBOSE};

done_testing();
