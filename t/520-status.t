# txval_status: readiness for a load balancer. The worker asks each
# configured backend (Redis: PING; Postgres: the lookup query) on its
# pooled connections, within the backend's timeouts, and answers
#
#   200 {"status":"ready",...}      every backend a fail-closed location
#                                   needs is up
#   503 {"status":"not_ready",...}  one of them is down
#
# Postgres is needed when it is configured and some txval / txval_gate
# location fails closed; Redis only when such a location counts velocity
# (a failed Redis cache lookup alone is a miss). A backend that only
# fail-open locations need shows as down in the body, the status stays
# 200. Shown here:
#
#   - the exact body, Cache-Control: no-store, HEAD, POST refused (405);
#   - Redis (a private redis-server, killed and restarted) and Postgres
#     (the suite's, through a proxy that is stopped and started again)
#     going down and coming back: 200, 503, 200, no reload;
#   - fail-open only: 200 with "down" in the body; Redis configured but no
#     fail-closed velocity: not required;
#   - a Redis and a Postgres that accept connections and never answer:
#     503 with "timeout" for both, asked at once: Redis gives a command on
#     a new connection connect_timeout + timeout (100ms + 100ms), Postgres
#     its 100ms, so the answer comes after about 200ms, not their sum, and
#     never after 1 s.
#
# Needs the suite's Postgres on 127.0.0.1:$TEST_NGINX_PG_PORT (make test
# starts it) and redis-server. nginx on 1954-1958, the private Redis on
# 16396, the Postgres proxy on 16397.

use strict;
use warnings;

use lib 't/lib';

use IO::Socket::INET;
use JSON::PP ();
use Test::More;
use Time::HiRes qw(sleep time);

use Txval::Nginx qw(need_services closed_port);
use Txval::PgPair;
use Txval::Redis;

my $PG_PORT = $ENV{TEST_NGINX_PG_PORT} || 16432;
my $REDIS_PORT = 16396;
my $PROXY_PORT = 16397;
my $VALGRIND = $ENV{TEST_NGINX_USE_VALGRIND};

need_services(Postgres => $PG_PORT);

my $redis = Txval::Redis->start_server(port => $REDIS_PORT, name => 't520');

my $proxy;
sub proxy_start {
    $proxy = Txval::PgPair->hiding_proxy(listen => $PROXY_PORT,
                                         to => $PG_PORT, log => '/dev/null');
    # up when it accepts
    for (1 .. 500) {
        return if IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                        PeerPort => $PROXY_PORT,
                                        Proto => 'tcp');
        sleep 0.01;
    }
    die "the Postgres proxy does not listen\n";
}
sub proxy_stop {
    kill 'KILL', $proxy;
    waitpid $proxy, 0;
}

# a port that accepts connections (the kernel does, from the backlog) and
# never answers
sub stalled_socket {
    my $s = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0,
                                  Proto => 'tcp', Listen => 64)
        or die "no free port: $!\n";
    return $s;
}

my $closed = closed_port();
my $stalled_redis = stalled_socket();
my $stalled_pg = stalled_socket();

proxy_start();

my $pg_via_proxy = "host=127.0.0.1 port=$PROXY_PORT dbname=txval "
                 . "user=txval password=txval sslmode=disable "
                 . "gssencmode=disable";
my $pg_closed = "host=127.0.0.1 port=$closed dbname=txval user=txval "
              . "password=txval";
my $pg_timeout = $VALGRIND ? '10s' : '1s';
my $rt = $VALGRIND ? '5s' : '1s';      # Redis, where it is up

sub conf {
    my ($port, $backends, $locations) = @_;
    return <<"HTTP";
$backends

    server {
        listen 127.0.0.1:$port;
        server_name localhost;

$locations

        location = /status { txval_status; }
        location / { return 204; }
    }
HTTP
}

my %ng;

# both required: a fail-closed location with velocity
$ng{closed} = Txval::Nginx->new(name => 't520closed', port => 1955,
                             valgrind => 1);
$ng{closed}->start(http => conf(1955, <<"B", <<'L'));
    txval_redis 127.0.0.1:$REDIS_PORT connect_timeout=$rt timeout=$rt;
    txval_postgres "$pg_via_proxy" timeout=$pg_timeout;
B
        location = /t { txval; txval_velocity 5 60s; }
        location = /open { txval; txval_fail_mode open; }
L

# fail-open only: nothing required
$ng{open} = Txval::Nginx->new(name => 't520open', port => 1956,
                             valgrind => 1);
$ng{open}->start(http => conf(1956, <<"B", <<'L'));
    txval_redis 127.0.0.1:$REDIS_PORT connect_timeout=$rt timeout=$rt;
    txval_postgres "$pg_closed" timeout=200ms;
B
        location = /t { txval; txval_fail_mode open; txval_velocity 5 60s; }
        location = /g {
            txval_gate;
            txval_fail_mode open;
            return 204;
        }
L

# fail-closed without velocity: Postgres required, Redis (a cache) not
$ng{pg} = Txval::Nginx->new(name => 't520pg', port => 1957,
                             valgrind => 1);
$ng{pg}->start(http => conf(1957, <<"B", <<'L'));
    txval_cache_zone t520pg:1m;
    txval_redis 127.0.0.1:$REDIS_PORT connect_timeout=$rt timeout=$rt;
    txval_postgres "$pg_closed" timeout=200ms;
B
        location = /t { txval; }
        location = /v { txval; txval_fail_mode open; txval_velocity 5 60s; }
L

# both stalled, 100ms timeouts
my ($sr, $sp) = ($stalled_redis->sockport, $stalled_pg->sockport);

# the Redis node each instance lists
my %redis_node = ((map { ("t520$_" => "127.0.0.1:$REDIS_PORT") }
                       qw(closed open pg)),
                  t520stalled => "127.0.0.1:$sr");
$ng{stalled} = Txval::Nginx->new(name => 't520stalled', port => 1958,
                             valgrind => 1);
$ng{stalled}->start(http => conf(1958, <<"B", <<'L'));
    txval_redis 127.0.0.1:$sr connect_timeout=100ms timeout=100ms;
    txval_postgres "host=127.0.0.1 port=$sp dbname=txval user=txval password=txval" timeout=100ms;
B
        location = /g {
            txval_gate;
            txval_velocity 5 60s;
            return 204;
        }
L

# no backend at all
$ng{none} = Txval::Nginx->new(name => 't520none', port => 1954,
                             valgrind => 1);
$ng{none}->start(http => conf(1954, '', <<'L'));
        location = /t { txval; }
L


# the expected body
# (Redis' node as the worker knows it: up when its last connect succeeded,
# which a server that accepts and never answers does)
sub body {
    my ($ng, $ready, @backends) = @_;
    my ($worker) = $ng->workers;
    my @b;
    while (my ($name, $state) = splice @backends, 0, 2) {
        my ($s, @more) = split /,/, $state;
        my $t = qq("$name":{"state":"$s");
        for (@more) {
            $t .= $_ eq 'required' ? ',"required":true' : qq(,"error":"$_");
        }
        if ($name eq 'redis') {
            my $node = $s eq 'up' || grep({ $_ eq 'timeout' } @more)
                       ? 'up' : 'down';
            $t .= qq(,"nodes":[{"address":"$redis_node{$ng->{name}}",)
                . qq("state":"$node"}]);
        }
        push @b, "$t}";
    }
    return sprintf qq({"status":"%s","worker":%d,"backends":{%s}}\n),
                   $ready ? 'ready' : 'not_ready', $worker, join ',', @b;
}

sub status_ok {
    my ($name, $ng, $status, $body) = @_;
    my $t0 = time;
    my $res = $ng->request(GET => '/status');
    my $took = time - $t0;
    is $res->{status}, $status, "$name: $status";
    is $res->{body}, $body, "$name: body";
    is $res->{headers}{'content-type'}, 'application/json',
       "$name: application/json";
    is $res->{headers}{'cache-control'}, 'no-store',
       "$name: Cache-Control: no-store";
    ok eval { JSON::PP->new->decode($res->{body}); 1 }, "$name: JSON";
    return ($res, $took);
}

# polls until the status is $status (at most $secs); the time it took
sub wait_status {
    my ($ng, $status, $secs) = @_;
    my $t0 = time;
    while (time - $t0 < $secs) {
        return time - $t0 if $ng->request(GET => '/status')->{status} == $status;
        sleep 0.05;
    }
    return undef;
}


# --- the shape, HEAD, POST

{
    my $ng = $ng{closed};
    my $up = body($ng, 1, redis => 'up,required', postgres => 'up,required');
    status_ok('all up', $ng, 200, $up);

    my $head = $ng->request(HEAD => '/status');
    is $head->{status}, 200, 'HEAD: 200';
    is $head->{body}, '', 'HEAD: no body';
    is $head->{headers}{'content-length'}, length $up,
       'HEAD: the Content-Length of the body';
    is $head->{headers}{'cache-control'}, 'no-store',
       'HEAD: Cache-Control: no-store';

    is $ng->request(POST => '/status', '{}',
                    'Content-Type' => 'application/json')->{status},
       405, 'POST: 405';
    is $ng->request(PUT => '/status', 'x')->{status}, 405, 'PUT: 405';

    status_ok('no backend configured', $ng{none}, 200, body($ng{none}, 1));
}


# --- Redis down and back

{
    my $ng = $ng{closed};

    # a connection in the pool first
    is $ng->post('/t', '{"id":"s1","amount":100,"currency":"EUR",'
                 . '"merchant_id":"t_active","card_token":"t_card_us"}')
          ->{status}, 200, 'a transaction: both backends used';

    $redis->kill9;

    status_ok('Redis killed', $ng, 503,
              body($ng, 0, redis => 'down,error,required',
                   postgres => 'up,required'));
    status_ok('Redis killed, asked again', $ng, 503,
              body($ng, 0, redis => 'down,error,required',
                   postgres => 'up,required'));

    $redis->restart;

    my $took = wait_status($ng, 200, 5);
    ok defined $took, 'Redis restarted: ready again, no reload ('
       . (defined $took ? sprintf('%.2f s', $took) : 'not in 5 s') . ')';
    status_ok('Redis back', $ng, 200,
              body($ng, 1, redis => 'up,required', postgres => 'up,required'));
}


# --- Postgres down and back

{
    my $ng = $ng{closed};

    proxy_stop();

    status_ok('Postgres gone', $ng, 503,
              body($ng, 0, redis => 'up,required',
                   postgres => 'down,error,required'));

    proxy_start();

    my $took = wait_status($ng, 200, 5);
    ok defined $took, 'Postgres back: ready again, no reload ('
       . (defined $took ? sprintf('%.2f s', $took) : 'not in 5 s') . ')';
    status_ok('Postgres back', $ng, 200,
              body($ng, 1, redis => 'up,required', postgres => 'up,required'));
}


# --- what is required

status_ok('fail-open only, Postgres down', $ng{open}, 200,
          body($ng{open}, 1, redis => 'up', postgres => 'down,error'));

status_ok('fail-closed without velocity, Postgres down', $ng{pg}, 503,
          body($ng{pg}, 0, redis => 'up', postgres => 'down,error,required'));

$redis->kill9;

status_ok('fail-open only, both down', $ng{open}, 200,
          body($ng{open}, 1, redis => 'down,error',
               postgres => 'down,error'));

$redis->restart;


# --- stalled backends: within the timeout, both at once

{
    my $ng = $ng{stalled};
    my $limit = $VALGRIND ? 3 : 1;

    my ($res, $took) = status_ok('stalled', $ng, 503,
        body($ng, 0, redis => 'down,timeout,required',
             postgres => 'down,timeout,required'));
    ok $took >= 0.09 && $took < $limit,
       sprintf('stalled: answered in %.3f s (the timeouts, at once; '
               . "under $limit s)", $took);

    # again: Postgres may be in its back-off (failing fast, "error")
    my $t0 = time;
    $res = $ng->request(GET => '/status');
    $took = time - $t0;
    is $res->{status}, 503, 'stalled, again: 503';
    like $res->{body}, qr/^\{"status":"not_ready","worker":\d+,"backends":\{"redis":\{"state":"down","error":"timeout","required":true,"nodes":\[\{"address":"127\.0\.0\.1:$sr","state":"up"\}\]\},"postgres":\{"state":"down","error":"(error|timeout)","required":true\}\}\}\n\z/,
         'stalled, again: both down';
    ok $took < $limit, sprintf("stalled, again: answered in %.3f s", $took);
}


for my $name (sort keys %ng) {
    $ng{$name}->stop;
    unlike $ng{$name}->error_log, qr/\[(alert|crit|emerg)\]/,
           "$name: no alert in the error log";
    $ng{$name}->valgrind_ok($name);
}

done_testing;
