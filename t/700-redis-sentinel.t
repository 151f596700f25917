# txval_redis sentinel=... master=NAME: the master found through the
# sentinels (verdicts computed, written to the master, replayed from it;
# password= for the master, db=; a dead sentinel first in the list; no
# sentinel at all answering; a wrong password),
# the directive's errors, and two failovers under traffic: SENTINEL
# FAILOVER (the old master stays up) and the master killed -9 (the
# sentinels elect the replica). Through each: only 503 backend_unavailable
# while it switches, counted and bounded (the counts are printed), every
# request succeeds again from a recovery bound after the sentinels report
# the new master, the writes go to the new master, nginx keeps no
# connection to the old one and at most workers x pool to the new one, no
# worker crashes.
#
# Runs its own Sentinel set-up (t/lib/Txval/Fleet.pm, from Debian's
# redis-server and redis-sentinel): a master on 17110 and its replica on
# 17111 (requirepass), sentinels on 17101-17103 (no password; quorum 2,
# down-after 1 s), master name txm700; data and logs in build/fleet/t700/.
# Alone:
#   prove -I t/lib t/700-redis-sentinel.t
# Under valgrind (make valgrind) the failover blocks are skipped.

use lib 't/lib';
# no_plan: the blocks check different numbers of things (requests,
# headers, log lines), so no plan of repeat_each() * blocks() * N fits
use Test::Txval 'no_plan';
use Time::HiRes qw(sleep time);
use Txval::Fleet;
use Txval::Redis;
use Txval::Tx qw(tx_defaults tx post v unavailable);

our ($Fleet, %Run);

our $VALGRIND = $ENV{TEST_NGINX_USE_VALGRIND};
our $SLOW = $ENV{SANITIZE} || ($ENV{TEST_NGINX_BINARY} // '') =~ /-address$/
            ? 2 : 1;
our $RECOVERY = 2 * $SLOW;      # s after the switch: every request succeeds
our $WORKERS = 2;
our $POOL = 4;

BEGIN {
    $ENV{TEST_NGINX_T700_SENTINELS} =
        '127.0.0.1:17101,127.0.0.1:17102,127.0.0.1:17103';
    # these blocks test discovery, not timeouts
    $ENV{TEST_NGINX_T700_TIMEOUTS} = $ENV{TEST_NGINX_USE_VALGRIND}
        ? 'connect_timeout=10s timeout=10s' : '';
}

$Fleet = Txval::Fleet->sentinel(name => 't700', master_name => 'txm700',
                                master_port => 17110, replica_port => 17111,
                                sentinel_ports => [ 17101, 17102, 17103 ],
                                password => 'Pw700-Secret');

add_response_body_check(\&Txval::Fleet::fleet_check);

master_on();
workers($WORKERS);
log_level('info');
no_shuffle();

# the blocks call these as ::post() etc.
tx_defaults(currency => 'EUR');

# the key's value on a Redis (db), waiting for the verdict (it replaces
# the mark, "p;...", after the response)

sub ::settled {
    my ($port, $key, $db) = @_;
    my $r = Txval::Fleet::client($port, db => $db);
    my $v = $r->get_when($key, sub { defined $_[0] && $_[0] !~ /^p;/ },
                         $VALGRIND ? 20 : 5 * $SLOW, 0.01);
    $r->close;
    return $v;
}

# a failover under traffic: senders on the block's nginx (new ids and
# cards, every one needing Redis for its velocity count), $how->() makes
# the switch and returns the old master; kept in %Run for --- fleet_check

sub ::failover_under_traffic {
    my ($how) = @_;

    %Run = ();
    return if $VALGRIND;

    $Fleet->wait_ready(30);

    # the switch, then the recovery bound and a second of traffic after it
    my %run = Txval::Fleet::Traffic->around(
        port => $ENV{TEST_NGINX_SERVER_PORT}, uri => '/t', procs => 2,
        body => sub { my ($id) = @_; ::tx(id => $id, card_token => "c$id") },
        change => sub { my $old = $how->();
                        return ($old, $Fleet->wait_switch($old, 20)) },
        after => $RECOVERY + 1);
    # (with what $how->() put into %Run)
    @Run{keys %run} = values %run;
    @Run{qw(old new)} = @{ $Run{changed} };

    # every command the new master runs from now on
    $Run{monitor} = Txval::Fleet::monitor($Run{new});
}

# after a failover: the traffic's checks, the block's own requests written
# to the new master (seen there with MONITOR), nginx's connections moved

sub ::check_failover {
    my ($block, $label, $bound_seconds, $prefix, @ids) = @_;
    my $name = $block->name;

    Txval::Fleet::Traffic->check($Run{res},
        name => $name, label => "$label $Run{old} -> $Run{new}",
        event_at => $Run{event_at}, switched_at => $Run{switched_at},
        recovery => $RECOVERY, bound_seconds => $bound_seconds,
        max_latency => 1 * $SLOW, min_requests => 100);

    my @cmds = $Run{monitor}->commands(0.3);
    for my $id (@ids) {
        # the verdict (the mark's SET NX is not one)
        my @set = grep { $_->{args}[0] =~ /^set$/i
                         && $_->{args}[1] eq "${prefix}v:$id"
                         && ($_->{args}[2] // '') =~ /^2;/ } @cmds;
        Test::More::is scalar(@set), 1,
           "$name - the verdict of $id is written to the new master ($Run{new})";
        Test::More::like ::settled($Run{new}, "${prefix}v:$id") // '',
             qr/^2;0;0;[0-9a-f]{32}$/, "$name - and is there";
    }
    my @incr = grep { $_->{args}[0] =~ /^incr/i
                      && $_->{args}[1] =~ /^\Q${prefix}\Evel:tok_f:\d+$/ } @cmds;
    Test::More::is scalar(@incr), scalar(@ids),
       "$name - the velocity counts are taken on the new master";

    # the pool moved: no connection left on the old master (when it runs),
    # at most workers x pool on the new one
    my ($old_n, $new_n);
    my $deadline = time + 2 * $SLOW;
    do {
        sleep 0.1;
        $old_n = $Fleet->{pid}{ $Run{old} }
                 ? Txval::Fleet::plain_clients($Run{old}) : 0;
        $new_n = Txval::Fleet::plain_clients($Run{new});
    } until ($old_n == 0 || time > $deadline);
    Test::More::is $old_n, 0, "$name - nginx keeps no connection to the old master";
    Test::More::ok $new_n >= 1 && $new_n <= $WORKERS * $POOL,
       "$name - nginx holds 1 to workers x pool connections to the new master"
       . " ($new_n)";

    $Run{monitor}->close;
}

run_tests();

__DATA__

=== TEST 1: through the sentinels: computed, written to the master, replayed from it
--- http_config
    txval_redis sentinel=$TEST_NGINX_T700_SENTINELS master=txm700
                password=Pw700-Secret prefix=t700.1: pool=4 $TEST_NGINX_T700_TIMEOUTS;
--- config
    location /t { txval; txval_velocity 100 60s; }
--- more_headers
Content-Type: application/json
--- request eval
[::post('/t', id => 's1'), ::post('/t', id => 's1'), ::post('/t', id => 's2')]
--- error_code eval
[200, 200, 200]
--- response_body eval
[::v('s1', 'computed'), ::v('s1', 'redis'), ::v('s2', 'computed')]
--- fleet_check
my $m = $::Fleet->master_port;
Test::More::is $m, 17110, $block->name . ' - the sentinels report 17110';
Test::More::like ::settled($m, 't700.1:v:s1') // '', qr/^2;0;0;[0-9a-f]{32}$/,
     $block->name . ' - the verdict is on the master';
Test::More::like ::settled($m, 't700.1:v:s2') // '', qr/^2;0;0;[0-9a-f]{32}$/,
     $block->name . ' - the second one too';
# (the two requests may fall on either side of a minute: both windows)
my $w = int(time / 60);
my $c = Txval::Fleet::client($m);
my $n = 0;
$n += $c->cmd(GET => "t700.1:vel:tok_1:$_") // 0 for $w - 1, $w;
$c->close;
Test::More::is $n, 2, $block->name . ' - the velocity count is on the master';
--- no_error_log
[error]
[alert]
[crit]
Pw700-Secret



=== TEST 2: db= : the keys go to that db of the master
--- http_config
    txval_redis sentinel=$TEST_NGINX_T700_SENTINELS master=txm700 db=5
                password=Pw700-Secret prefix=t700.2: $TEST_NGINX_T700_TIMEOUTS;
--- config
    location /t { txval; txval_velocity 100 60s; }
--- more_headers
Content-Type: application/json
--- request eval
[::post('/t', id => 'd1'), ::post('/t', id => 'd1')]
--- error_code eval
[200, 200]
--- response_body eval
[::v('d1', 'computed'), ::v('d1', 'redis')]
--- fleet_check
my $m = $::Fleet->master_port;
Test::More::like ::settled($m, 't700.2:v:d1', 5) // '', qr/^2;0;0;[0-9a-f]{32}$/,
     $block->name . ' - the verdict is in db 5 of the master';
my $r0 = Txval::Fleet::client($m);
Test::More::is_deeply $r0->cmd(KEYS => 't700.2:*'), [], $block->name . ' - db 0 has none';
--- no_error_log
[error]
[alert]



=== TEST 3: the first sentinel is down: the others are asked
--- http_config
    txval_redis sentinel=127.0.0.1:17199,$TEST_NGINX_T700_SENTINELS
                master=txm700 password=Pw700-Secret prefix=t700.3: $TEST_NGINX_T700_TIMEOUTS;
--- config
    location /t { txval; txval_velocity 100 60s; }
--- more_headers
Content-Type: application/json
--- request eval
[::post('/t', id => 'k1'), ::post('/t', id => 'k1'), ::post('/t', id => 'k2')]
--- error_code eval
[200, 200, 200]
--- response_body eval
[::v('k1', 'computed'), ::v('k1', 'redis'), ::v('k2', 'computed')]
--- fleet_check
Test::More::like ::settled($::Fleet->master_port, 't700.3:v:k2') // '',
     qr/^2;0;0;[0-9a-f]{32}$/, $block->name . ' - the verdict is on the master';
--- no_error_log
[alert]
[crit]



=== TEST 4: no sentinel answers: nginx starts; velocity fails closed, a lookup alone is a miss
--- http_config
    txval_redis sentinel=127.0.0.1:17198,127.0.0.1:17199 master=txm700
                prefix=t700.4: $TEST_NGINX_T700_TIMEOUTS;
--- config
    location /t { txval; txval_velocity 100 60s; }
    location /open { txval; txval_velocity 100 60s; txval_fail_mode open; }
    location /novel { txval; }
--- more_headers
Content-Type: application/json
--- request eval
[::post('/t', id => 'n1'), ::post('/open', id => 'n2'), ::post('/novel', id => 'n3')]
--- error_code eval
[503, 200, 200]
--- response_headers eval
["Retry-After: 1", "X-Txval-Source: computed", "X-Txval-Source: computed"]
--- response_body eval
[::unavailable(),
 qq({"id":"n2","verdict":"approved","reasons":[],"risk_score":0,"source":"computed","degraded":true}\n),
 ::v('n3', 'computed')]
--- no_error_log
[alert]
[crit]
exited on signal
Pw700-Secret



=== TEST 5: a wrong password: the master refuses the connection, 503; the password is not logged
--- http_config
    txval_redis sentinel=$TEST_NGINX_T700_SENTINELS master=txm700
                password=Wrong700-Secret prefix=t700.5: $TEST_NGINX_T700_TIMEOUTS;
--- config
    location /t { txval; txval_velocity 100 60s; }
--- more_headers
Content-Type: application/json
--- request eval
::post('/t', id => 'w1')
--- error_code: 503
--- response_body eval
::unavailable()
--- error_log eval
qr/\[error\] [^\n]*txval: redis 127\.0\.0\.1:1711[01]: [^\n]*(WRONGPASS|invalid password)/
--- no_error_log
Wrong700-Secret
[alert]



=== TEST 6: no master= : refused; the password is not shown
--- http_config
    txval_redis sentinel=$TEST_NGINX_T700_SENTINELS password=Hunter2Secret;
--- config
    location /t { txval; }
--- request
GET /t
--- must_die
--- error_log eval
qr/\[emerg\] (?=[^\n]*txval_redis)[^\n]*master/
--- no_error_log
Hunter2Secret



=== TEST 7: sentinel= with a plain address too: refused
--- http_config
    txval_redis 127.0.0.1:17110 sentinel=$TEST_NGINX_T700_SENTINELS master=txm700;
--- config
    location /t { txval; }
--- request
GET /t
--- must_die
--- error_log eval
qr/\[emerg\] [^\n]*txval_redis/



=== TEST 8: master= without sentinel= : refused
--- http_config
    txval_redis 127.0.0.1:17110 master=txm700;
--- config
    location /t { txval; }
--- request
GET /t
--- must_die
--- error_log eval
qr/\[emerg\] (?=[^\n]*txval_redis)[^\n]*master/



=== TEST 9: a sentinel address that is not host:port: refused
--- http_config
    txval_redis sentinel=127.0.0.1:17101,127.0.0.1:notaport master=txm700;
--- config
    location /t { txval; }
--- request
GET /t
--- must_die
--- error_log eval
qr/\[emerg\] (?=[^\n]*txval_redis)[^\n]*notaport/



=== TEST 10: an empty sentinel list: refused
--- http_config
    txval_redis sentinel= master=txm700;
--- config
    location /t { txval; }
--- request
GET /t
--- must_die
--- error_log eval
qr/\[emerg\] [^\n]*txval_redis/



=== TEST 11: an empty master name: refused
--- http_config
    txval_redis sentinel=$TEST_NGINX_T700_SENTINELS master=;
--- config
    location /t { txval; }
--- request
GET /t
--- must_die
--- error_log eval
qr/\[emerg\] [^\n]*txval_redis/



=== TEST 12: SENTINEL FAILOVER under traffic: only bounded 503s, then all succeed on the new master
--- skip_eval: 12: $ENV{TEST_NGINX_USE_VALGRIND}
--- http_config
    txval_redis sentinel=$TEST_NGINX_T700_SENTINELS master=txm700
                password=Pw700-Secret prefix=t700.f: pool=4;
--- config
    location /t { txval; txval_velocity 1000000 60s; }
--- init
::failover_under_traffic(sub { $::Fleet->failover });
--- more_headers
Content-Type: application/json
--- request eval
[::post('/t', id => 'f1', card_token => 'tok_f'),
 ::post('/t', id => 'f2', card_token => 'tok_f'),
 ::post('/t', id => 'f3', card_token => 'tok_f'),
 ::post('/t', id => 'f1', card_token => 'tok_f')]
--- error_code eval
[200, 200, 200, 200]
--- response_body eval
[::v('f1', 'computed'), ::v('f2', 'computed'), ::v('f3', 'computed'),
 ::v('f1', 'redis')]
--- fleet_check
# the old master stays up (the sentinels make it a replica of the new one
# some 10 s later): the switch costs at most the commands in flight, far
# less than 0.2 s of traffic
::check_failover($block, 'SENTINEL FAILOVER', 0.2 * $SLOW, 't700.f:', qw(f1 f2 f3));
--- timeout: 30
--- no_error_log
[alert]
[crit]
exited on signal
Pw700-Secret



=== TEST 13: the master killed (-9) under traffic: 503s while the sentinels elect the replica, then all succeed on it
--- skip_eval: 12: $ENV{TEST_NGINX_USE_VALGRIND}
--- http_config
    txval_redis sentinel=$TEST_NGINX_T700_SENTINELS master=txm700
                password=Pw700-Secret prefix=t700.k: pool=4;
--- config
    location /t { txval; txval_velocity 1000000 60s; }
--- init
::failover_under_traffic(sub {
    my $m = $::Fleet->master_port;
    $::Fleet->kill9($m);
    return $m;
});
--- more_headers
Content-Type: application/json
--- request eval
[::post('/t', id => 'f1', card_token => 'tok_f'),
 ::post('/t', id => 'f2', card_token => 'tok_f'),
 ::post('/t', id => 'f3', card_token => 'tok_f'),
 ::post('/t', id => 'f1', card_token => 'tok_f')]
--- error_code eval
[200, 200, 200, 200]
--- response_body eval
[::v('f1', 'computed'), ::v('f2', 'computed'), ::v('f3', 'computed'),
 ::v('f1', 'redis')]
--- fleet_check
# the master is gone from the kill to the election (down-after 1 s, then
# the vote): that time, and a second (the workers ask the sentinels once a
# second), may fail
::check_failover($block, 'master killed',
                 $Run{switched_at} - $Run{event_at} + $SLOW,
                 't700.k:', qw(f1 f2 f3));
--- timeout: 30
--- no_error_log
[alert]
[crit]
exited on signal
Pw700-Secret
