# Redis connections over time: an idle connection lives until
# idle_timeout and goes soon after it, also when idle_timeout is under
# nginx's lazy timer delay (300 ms); a Redis host name re-resolved at run
# time through nginx's resolver (a DNS responder of this test's own): the
# backend that comes back at a new address is used without a reload; a
# name that does not resolve needs a resolver (nginx -t says so).
#
# Ports: Redis 16398 (idle), 16399 on 127.0.0.1 and 127.0.0.2 (DNS), DNS
# 15353 (UDP), nginx 1981.

use strict;
use warnings;

use lib 't/lib';
use Cwd qw(abs_path);
use File::Path ();
use Test::More;
use Time::HiRes qw(sleep time);
use Txval::DNS;
use Txval::Nginx;
use Txval::Redis;
use Txval::Tx qw(tx_defaults tx outcome new_id ids_made);

# a new transaction each time: its own id ("<tag>-<pid>-<n>") and card
# (tok740_<n>)
tx_defaults(currency => 'EUR', card_token => sub { 'tok740_' . ids_made() });

sub http_block {
    my ($redis, $extra) = @_;
    $extra //= '';
    return <<"HTTP";
    $extra
    $redis
    server {
        listen 127.0.0.1:1981;
        server_name localhost;
        location /t { txval; txval_velocity 100 1h; }
    }
HTTP
}

# the other clients of a Redis (not the one asking)
sub others {
    my ($r) = @_;
    my $list = $r->cmd(CLIENT => 'LIST');
    return scalar grep { !/cmd=client\|list/ } split /\n/, $list;
}

my $ng = Txval::Nginx->new(name => '740', port => 1981,
                         valgrind => 1);

# stopped; under make valgrind, memcheck's report of it must be empty


# --- idle connections: until idle_timeout, not before, and then soon

my $idle_port = 16398;
my $srv = Txval::Redis->start_server(port => $idle_port, name => '740idle');
my $r = Txval::Redis->client(port => $idle_port);

# a command timeout under idle_timeout: nginx's lazy timer then keeps the
# command's earlier expiry (what closed connections early); under valgrind
# commands are too slow for that, and only the lifetime is checked
my $cmd_timeout = $ENV{TEST_NGINX_USE_VALGRIND} ? '1s' : '60ms';

for my $case ([0.1, '100ms', 0.6], [1, '1s', 1.6]) {
    my ($idle, $text, $late) = @$case;

    $ng->start(http => http_block(
        "txval_redis 127.0.0.1:$idle_port pool=1 idle_timeout=$text "
        . "timeout=$cmd_timeout prefix=t740a:;"));

    for my $try (1 .. 2) {
        is outcome($ng->post('/t', tx(id => new_id('a')))), '200 computed',
           "idle_timeout=$text, try $try: 200";
        my $t0 = time;      # the connection is idle from about now
        is others($r), 1, "idle_timeout=$text, try $try: one connection";

        my $gone;
        while (time - $t0 < $late + 1) {
            if (others($r) == 0) {
                $gone = time - $t0;
                last;
            }
            sleep 0.005;
        }

        ok defined $gone, "idle_timeout=$text, try $try: closed when idle";
        $gone //= 99;
        cmp_ok $gone, '>=', $idle * 0.95,
               sprintf("idle_timeout=%s, try %d: lived %.3f s, not less",
                       $text, $try, $gone);
        cmp_ok $gone, '<=', $late,
               "idle_timeout=$text, try $try: gone soon after";
    }

    $ng->stop_checked;
}

$srv->stop;


# --- a name with no address and no resolver: refused by nginx -t

{
    my $root = $ng->root;
    File::Path::make_path("$root/conf", "$root/logs");
    $ng->write_config(http => http_block(
        "txval_redis nonexistent.invalid:16399;"));
    my $out = `$ng->{binary} -t -p $root/ -c conf/nginx.conf -e logs/error.log 2>&1`;
    isnt $?, 0, 'a name that does not resolve, no resolver: nginx -t fails';
    like $out, qr/host not found in "nonexistent\.invalid:16399", and no "resolver"/,
         'nginx -t says it needs a resolver';
}


# --- run-time DNS: the backend comes back at a new address

my $dns_port = 16399;
my $dir = abs_path('t') . '/servroot_740dns';
File::Path::remove_tree($dir);
File::Path::make_path($dir);

my $dns = Txval::DNS->start(port => 15353, dir => $dir, ttl => 1,
                            zone => { 'redis.test' => '127.0.0.1' });

my $a = Txval::Redis->start_server(port => $dns_port, name => '740a',
                                   bind => '127.0.0.1');
my $b = Txval::Redis->start_server(port => $dns_port, name => '740b',
                                   bind => '127.0.0.2');
my $ra = Txval::Redis->client(port => $dns_port, host => '127.0.0.1');
my $rb = Txval::Redis->client(port => $dns_port, host => '127.0.0.2');

$ng->start(http => http_block(
    "txval_redis redis.test:$dns_port prefix=t740d: connect_timeout=200ms"
    . " timeout=$cmd_timeout;",
    "resolver 127.0.0.1:15353 valid=1s ipv6=off; resolver_timeout 1s;"));

like $ng->error_log, qr/host "redis\.test" not found now; it needs a "resolver"/,
     'a name not found when the configuration is read: a warning';

my $t0 = time;
my $first;
while (time - $t0 < 3) {
    $first = outcome($ng->post('/t', tx(id => new_id('d'))));
    last if $first eq '200 computed';
    sleep 0.05;
}
is $first, '200 computed', 'resolved at run time: 200';

my $keys = sub { my $k = $_[0]->cmd(KEYS => 't740d:vel:*'); scalar @$k };
is $keys->($ra), 1, 'the velocity count is on 127.0.0.1';
is $keys->($rb), 0, 'none on 127.0.0.2';

# the backend moves: the old one dies, the name points elsewhere
$dns->set('redis.test' => '127.0.0.2');
$a->kill9;

$t0 = time;
my $back;
my $status;
while (time - $t0 < 5) {
    $status = outcome($ng->post('/t', tx(id => new_id('d'))));
    if ($status eq '200 computed') {
        $back = time - $t0;
        last;
    }
    sleep 0.05;
}
ok defined $back, sprintf('the new address is used without a reload '
                          . '(after %.2f s)', $back // -1);
cmp_ok $back // 99, '<=', 3, 'within the TTL and a resolve round';
is $keys->($rb), 1, 'the count is now on 127.0.0.2';
like $ng->error_log, qr/\[notice\].*txval: redis: "redis\.test" is now 127\.0\.0\.2:$dns_port/,
     'the move is logged';

my @all = map { outcome($ng->post('/t', tx(id => new_id('d')))) } 1 .. 10;
is scalar(grep { $_ eq '200 computed' } @all), 10, 'and stays so';
cmp_ok $dns->questions, '>', 1, 'the resolver was asked again';
unlike $ng->error_log, qr/\[(alert|crit)\]/, 'no alert';

$ng->stop_checked;
$dns->stop;

done_testing;
