# txval_redis cluster=...: each key on the master of its slot (verdicts
# computed, written there, replayed from there; velocity counted there;
# the keys of many transactions spread over the three masters; AUTH on
# every node; a dead first node in the list; a wrong password), the
# directive's errors (db= among them: a cluster has db 0 only), and under
# traffic: a resharding (redis-cli --cluster reshard: slots and their keys
# move, MOVED and ASK), a master killed (-9: its replica takes over after
# cluster-node-timeout) and a manual failover (CLUSTER FAILOVER on a
# replica: the old master answers MOVED). Through each: the failures are
# only 503 backend_unavailable, counted and bounded (the counts are
# printed; a resharding may cost none), every request succeeds from a
# recovery bound after the switch, keys are written to the new owner of
# their slot and replayed from it, nginx holds at most workers x pool
# connections per node, no worker crashes.
#
# Runs its own Redis Cluster (t/lib/Txval/Fleet.pm, from Debian's
# redis-server and redis-cli --cluster create): masters on 17001-17003,
# replicas on 17004-17006, cluster bus ports 27001-27006,
# cluster-node-timeout 1500 ms, requirepass; data and logs in
# build/fleet/t710/. Alone:
#   prove -I t/lib t/710-redis-cluster.t
# Under valgrind (make valgrind) the blocks under traffic are skipped.

use lib 't/lib';
# no_plan: the blocks check different numbers of things (requests,
# headers, log lines), so no plan of repeat_each() * blocks() * N fits
use Test::Txval 'no_plan';
use Time::HiRes qw(sleep time);
use Txval::Fleet;
use Txval::Tx qw(tx_defaults tx post v unavailable);

our ($Cluster, %Run);

our $VALGRIND = $ENV{TEST_NGINX_USE_VALGRIND};
our $SLOW = $ENV{SANITIZE} || ($ENV{TEST_NGINX_BINARY} // '') =~ /-address$/
            ? 2 : 1;
our $RECOVERY = 2 * $SLOW;      # s after the switch: every request succeeds
our $WORKERS = 2;
our $POOL = 4;
our $PW = 'Pw710-Secret';

BEGIN {
    $ENV{TEST_NGINX_T710_NODES} = '127.0.0.1:17001,127.0.0.1:17002';
    $ENV{TEST_NGINX_T710_TIMEOUTS} = $ENV{TEST_NGINX_USE_VALGRIND}
        ? 'connect_timeout=10s timeout=10s' : '';
}

# cluster-require-full-coverage no: while a master is down, the other
# masters go on serving their slots (with yes, the default, every node
# answers CLUSTERDOWN from the time the dead one is marked failed until its
# replica is elected)
$Cluster = Txval::Fleet->cluster(name => 't710', ports => [ 17001 .. 17006 ],
                                 node_timeout => 1500, full_coverage => 0,
                                 password => $PW);

add_response_body_check(\&Txval::Fleet::fleet_check);

master_on();
workers($WORKERS);
log_level('info');
no_shuffle();

# the blocks call these as ::post() etc.
tx_defaults(currency => 'EUR');

# $n ids ("$stem1", "$stem2", ...) whose verdict keys ({prefix}v:{id}) hash
# to slots from..to (the standard layout of redis-cli --cluster create on
# three masters: 0-5460, 5461-10922, 10923-16383)

sub ::ids_in {
    my ($prefix, $stem, $from, $to, $n) = @_;
    my @ids;
    for (my $i = 1; @ids < $n; $i++) {
        my $slot = Txval::Fleet::key_slot("${prefix}v:$stem$i");
        push @ids, "$stem$i" if $slot >= $from && $slot <= $to;
    }
    return @ids;
}

# the key's value on the master of its slot, asked directly (no
# redirection), waiting a moment for the write

sub ::on_owner {
    my ($key, $wait) = @_;
    my $port = $Cluster->owner(Txval::Fleet::key_slot($key));
    my $deadline = time + ($wait // 1);
    my $v;
    while (1) {
        $v = Txval::Fleet::cmd($port, GET => $key);
        last if (defined $v && !ref $v) || time > $deadline;
        sleep 0.01;
    }
    return ref $v ? undef : $v;
}

our $RECORD = qr/^2;[0-9a-f]+;\d+;[0-9a-f]{32}$/;

# traffic on the block's nginx (new ids and cards, all needing Redis for
# their velocity count) while $how->() changes the cluster and returns
# when the change is over; kept in %Run for --- fleet_check

sub ::under_traffic {
    my ($how) = @_;

    %Run = ();
    return if $VALGRIND;

    $Cluster->wait_ok(30);

    my %run = Txval::Fleet::Traffic->around(
        port => $ENV{TEST_NGINX_SERVER_PORT}, uri => '/t', procs => 2,
        body => sub { my ($id) = @_; ::tx(id => $id, card_token => "c$id") },
        change => $how, after => $RECOVERY + 1);
    # (with what $how->() put into %Run)
    @Run{keys %run} = values %run;
}

# the traffic's checks, nginx's connections per node

sub ::check_traffic {
    my ($block, $label, %bound) = @_;
    my $name = $block->name;

    Txval::Fleet::Traffic->check($Run{res},
        name => $name, label => $label,
        event_at => $Run{event_at}, switched_at => $Run{switched_at},
        recovery => $RECOVERY, max_latency => 1 * $SLOW,
        min_requests => 100, %bound);

    my %conns = map { $_ => Txval::Fleet::plain_clients($_) }
                $Cluster->live_ports;
    my @over = grep { $conns{$_} < 0 || $conns{$_} > $WORKERS * $POOL }
               sort keys %conns;
    Test::More::is("@over", '',
        "$name - at most workers x pool connections on each node ("
        . join(' ', map { "$_:$conns{$_}" } sort keys %conns) . ')');
}

# the failed requests of the traffic were those whose velocity count
# ({prefix}vel:c{id}:{minute}) is in the slots of the master that went away:
# the others, and the verdict lookups (a failed one is a miss), did not
# fail

sub ::check_only_slots {
    my ($block, $prefix, $from, $to) = @_;
    my @other;
    for my $r (@{ $Run{res} }) {
        next if $r->{status} eq '200';
        my @slots = map { Txval::Fleet::key_slot("${prefix}vel:c$r->{id}:$_") }
                    int($r->{t0} / 60), int($r->{t1} / 60);
        push @other, $r unless grep { $_ >= $from && $_ <= $to } @slots;
    }
    Test::More::is(scalar(@other), 0, $block->name . ' - only the requests whose'
                   . " velocity count is in the lost slots ($from-$to) failed")
        or Test::More::diag(sprintf '  %d others, e.g. %s at %+.3f s',
                                    scalar(@other), $other[0]{id},
                                    $other[0]{t0} - $Run{event_at});
}

# commands a node ran from now on: the SETs of the block's verdicts

sub ::watch { $Run{monitor} = Txval::Fleet::monitor($_[0]); $Run{watched} = $_[0] }

sub ::check_sets {
    my ($block, $prefix, @ids) = @_;
    my @cmds = $Run{monitor}->commands(0.3);
    for my $id (@ids) {
        # the verdict (the mark's SET NX is not one)
        my @set = grep { $_->{args}[0] =~ /^set$/i
                         && $_->{args}[1] eq "${prefix}v:$id"
                         && ($_->{args}[2] // '') =~ /^2;/ } @cmds;
        Test::More::is(scalar(@set), 1, $block->name . " - the verdict of $id"
                       . " is written to $Run{watched}, its slot's new master");
    }
    $Run{monitor}->close;
}

run_tests();

__DATA__

=== TEST 1: cluster= : computed, written to the master of each key's slot, replayed from it; keys spread over the masters
--- http_config
    txval_redis cluster=$TEST_NGINX_T710_NODES password=Pw710-Secret
                prefix=t710.1: pool=4 $TEST_NGINX_T710_TIMEOUTS;
--- config
    location /t { txval; txval_velocity 100 60s; }
--- more_headers
Content-Type: application/json
--- request eval
[(map { ::post('/t', id => "c$_", card_token => "tok_c$_") } 1 .. 24),
 (map { ::post('/t', id => "c$_", card_token => "tok_c$_") } 1 .. 6)]
--- error_code eval
[(200) x 30]
--- response_body eval
[(map { ::v("c$_", 'computed') } 1 .. 24), (map { ::v("c$_", 'redis') } 1 .. 6)]
--- fleet_check
my $name = $block->name;
my @missing = grep { (::on_owner("t710.1:v:c$_") // '') !~ $RECORD } 1 .. 24;
Test::More::is("@missing", '', "$name - each verdict is on its slot's master");
my $w = int(time / 60);
my @vmissing = grep {
    (::on_owner("t710.1:vel:tok_c$_:$w") // ::on_owner("t710.1:vel:tok_c$_:"
                                                        . ($w - 1), 0) // '') ne '1'
} 1 .. 24;
Test::More::is("@vmissing", '', "$name - each velocity count is on its slot's master");
my %on = map { $_ => scalar $::Cluster->keys_on($_, 't710.1:*') } $::Cluster->masters;
Test::More::is(scalar(grep { $on{$_} } keys %on), 3,
               "$name - the keys are spread over the three masters ("
               . join(' ', map { "$_:$on{$_}" } sort keys %on) . ')');
my $total = 0;
$total += $_ for values %on;
Test::More::is($total, 48, "$name - 24 verdicts and 24 counters, each once");
--- no_error_log
[error]
[alert]
[crit]
Pw710-Secret



=== TEST 2: velocity counted on the master of the card's slot: risk +20 once 2*count > 3, declined at the 4th
--- http_config
    txval_redis cluster=$TEST_NGINX_T710_NODES password=Pw710-Secret
                prefix=t710.2: $TEST_NGINX_T710_TIMEOUTS;
--- config
    location /t { txval; txval_velocity 3 1d; }
--- more_headers
Content-Type: application/json
--- request eval
[map { ::post('/t', id => "v$_", card_token => 'tok_v') } 1 .. 4]
--- error_code eval
[200, 200, 200, 402]
--- response_body eval
[::v('v1', 'computed'), ::v('v2', 'computed', 'approved', [], 20),
 ::v('v3', 'computed', 'approved', [], 20),
 ::v('v4', 'computed', 'declined', ['velocity_exceeded'], 20)]
--- fleet_check
Test::More::is(::on_owner('t710.2:vel:tok_v:' . int(time / 86400)), '4',
               $block->name . ' - the counter is on its slot\'s master');
--- no_error_log
[error]
[alert]



=== TEST 3: the first node listed is down: the others give the map
--- http_config
    txval_redis cluster=127.0.0.1:17099,$TEST_NGINX_T710_NODES
                password=Pw710-Secret prefix=t710.3: $TEST_NGINX_T710_TIMEOUTS;
--- config
    location /t { txval; txval_velocity 100 60s; }
--- more_headers
Content-Type: application/json
--- request eval
[::post('/t', id => 'd1'), ::post('/t', id => 'd1'), ::post('/t', id => 'd2')]
--- error_code eval
[200, 200, 200]
--- response_body eval
[::v('d1', 'computed'), ::v('d1', 'redis'), ::v('d2', 'computed')]
--- no_error_log
[alert]
[crit]



=== TEST 4: a wrong password: 503, a lookup alone is a miss; the password is not logged
--- http_config
    txval_redis cluster=$TEST_NGINX_T710_NODES password=Wrong710-Secret
                prefix=t710.4: $TEST_NGINX_T710_TIMEOUTS;
--- config
    location /t { txval; txval_velocity 100 60s; }
    location /novel { txval; }
--- more_headers
Content-Type: application/json
--- request eval
[::post('/t', id => 'w1'), ::post('/novel', id => 'w2')]
--- error_code eval
[503, 200]
--- response_body eval
[::unavailable(), ::v('w2', 'computed')]
--- error_log eval
qr/\[error\] [^\n]*txval: redis 127\.0\.0\.1:1700\d: [^\n]*(WRONGPASS|invalid password)/
--- no_error_log
Wrong710-Secret
[alert]



=== TEST 5: db= with cluster= : refused
--- http_config
    txval_redis cluster=$TEST_NGINX_T710_NODES db=1;
--- config
    location /t { txval; }
--- request
GET /t
--- must_die
--- error_log eval
qr/\[emerg\] (?=[^\n]*txval_redis)[^\n]*db/



=== TEST 6: cluster= with a plain address too: refused
--- http_config
    txval_redis 127.0.0.1:17001 cluster=$TEST_NGINX_T710_NODES;
--- config
    location /t { txval; }
--- request
GET /t
--- must_die
--- error_log eval
qr/\[emerg\] [^\n]*txval_redis/



=== TEST 7: cluster= and sentinel= together: refused
--- http_config
    txval_redis cluster=$TEST_NGINX_T710_NODES sentinel=127.0.0.1:17101 master=m;
--- config
    location /t { txval; }
--- request
GET /t
--- must_die
--- error_log eval
qr/\[emerg\] [^\n]*txval_redis/



=== TEST 8: a node address that is not host:port: refused; the password is not shown
--- http_config
    txval_redis cluster=127.0.0.1:17001,127.0.0.1:notaport password=Hunter2Secret;
--- config
    location /t { txval; }
--- request
GET /t
--- must_die
--- error_log eval
qr/\[emerg\] (?=[^\n]*txval_redis)[^\n]*notaport/
--- no_error_log
Hunter2Secret



=== TEST 9: an empty node list: refused
--- http_config
    txval_redis cluster= ;
--- config
    location /t { txval; }
--- request
GET /t
--- must_die
--- error_log eval
qr/\[emerg\] [^\n]*txval_redis/



=== TEST 10: before a resharding: verdicts in the slots that will move (0-999)
--- http_config
    txval_redis cluster=$TEST_NGINX_T710_NODES password=Pw710-Secret
                prefix=t710.m: $TEST_NGINX_T710_TIMEOUTS;
--- config
    location /t { txval; txval_velocity 1000000 60s; }
--- more_headers
Content-Type: application/json
--- request eval
[map { ::post('/t', id => $_) } ::ids_in('t710.m:', 'r', 0, 999, 4)]
--- error_code eval
[(200) x 4]
--- response_body eval
[map { ::v($_, 'computed') } ::ids_in('t710.m:', 'r', 0, 999, 4)]
--- fleet_check
Test::More::is($::Cluster->owner(0), 17001, $block->name . ' - slot 0 is on 17001');
--- no_error_log
[error]
[alert]



=== TEST 11: resharding under traffic (1000 slots and their keys from 17001 to 17002): MOVED and ASK followed, next to nothing fails
--- skip_eval: 12: $ENV{TEST_NGINX_USE_VALGRIND}
--- http_config
    txval_redis cluster=$TEST_NGINX_T710_NODES password=Pw710-Secret
                prefix=t710.m: pool=4;
--- config
    location /t { txval; txval_velocity 1000000 60s; }
--- init
::under_traffic(sub { $::Cluster->reshard(17001, 17002, 1000); $::Cluster->wait_ok(30) });
::watch(17002) unless $::VALGRIND;
--- more_headers
Content-Type: application/json
--- request eval
[(map { ::post('/t', id => $_) } ::ids_in('t710.m:', 'r', 0, 999, 4)),
 (map { ::post('/t', id => $_) } ::ids_in('t710.m:', 'n', 0, 999, 3))]
--- error_code eval
[(200) x 7]
--- response_body eval
[(map { ::v($_, 'redis') } ::ids_in('t710.m:', 'r', 0, 999, 4)),
 (map { ::v($_, 'computed') } ::ids_in('t710.m:', 'n', 0, 999, 3))]
--- fleet_check
my $name = $block->name;
Test::More::is($::Cluster->owner(0), 17002, "$name - slot 0 moved to 17002");
# MOVED and ASK followed: a resharding costs no request (a bug here costs
# hundreds: every command on a moved slot until the map is read again);
# less than 0.05 s of traffic, for a timeout under load
::check_traffic($block, 'reshard 17001 -> 17002 (1000 slots)',
                bound_seconds => 0.05 * $SLOW);
::check_sets($block, 't710.m:', ::ids_in('t710.m:', 'n', 0, 999, 3));
my @moved = grep { (Txval::Fleet::cmd(17002, GET => "t710.m:v:$_") // '') !~ $::RECORD }
            ::ids_in('t710.m:', 'r', 0, 999, 4);
Test::More::is("@moved", '', "$name - the earlier verdicts moved to 17002 with their slots");
--- timeout: 30
--- no_error_log
[alert]
[crit]
exited on signal
Pw710-Secret



=== TEST 12: a master killed (-9) under traffic: 503s only for its slots until its replica takes over, then all succeed
--- skip_eval: 12: $ENV{TEST_NGINX_USE_VALGRIND}
--- http_config
    txval_redis cluster=$TEST_NGINX_T710_NODES password=Pw710-Secret
                prefix=t710.k: pool=4;
--- config
    location /t { txval; txval_velocity 1000000 60s; }
--- init
::under_traffic(sub {
    $::Run{victim} = $::Cluster->owner(16383);
    die "the master of slot 16383 does not start at 10923\n"
        unless $::Cluster->first_slot($::Run{victim}) == 10923;
    my $slot = $::Cluster->first_slot($::Run{victim});
    $::Cluster->kill9($::Run{victim});
    $::Run{new} = $::Cluster->wait_taken_over($::Run{victim}, $slot, 20);
});
::watch($::Run{new}) unless $::VALGRIND;
--- more_headers
Content-Type: application/json
--- request eval
[(map { ::post('/t', id => $_) } ::ids_in('t710.k:', 'k', 10923, 16383, 3)),
 ::post('/t', id => (::ids_in('t710.k:', 'k', 10923, 16383, 1))[0])]
--- error_code eval
[200, 200, 200, 200]
--- response_body eval
[(map { ::v($_, 'computed') } ::ids_in('t710.k:', 'k', 10923, 16383, 3)),
 ::v((::ids_in('t710.k:', 'k', 10923, 16383, 1))[0], 'redis')]
--- fleet_check
# while it is gone (cluster-node-timeout, then the election) and a second
# more, at most that much traffic fails (a third of it, in fact: the
# requests whose velocity count is in its slots)
::check_traffic($block, "master $Run{victim} killed, $Run{new} took over",
                bound_seconds => $Run{switched_at} - $Run{event_at} + $SLOW);
::check_only_slots($block, 't710.k:', 10923, 16383);
::check_sets($block, 't710.k:', ::ids_in('t710.k:', 'k', 10923, 16383, 3));
# back as a replica of the new master, for what follows
$::Cluster->restart($Run{victim});
$::Cluster->wait_ok(30);
--- timeout: 40
--- no_error_log
[alert]
[crit]
exited on signal
Pw710-Secret



=== TEST 13: CLUSTER FAILOVER under traffic (17002's replica takes over): MOVED from the old master followed, earlier verdicts replayed from the new one
--- skip_eval: 12: $ENV{TEST_NGINX_USE_VALGRIND}
--- http_config
    txval_redis cluster=$TEST_NGINX_T710_NODES password=Pw710-Secret
                prefix=t710.m: pool=4;
--- config
    location /t { txval; txval_velocity 1000000 60s; }
--- init
::under_traffic(sub { $::Run{new} = $::Cluster->manual_failover(17002) });
::watch($::Run{new}) unless $::VALGRIND;
--- more_headers
Content-Type: application/json
--- request eval
[(map { ::post('/t', id => $_) } ::ids_in('t710.m:', 'x', 0, 999, 3)),
 ::post('/t', id => (::ids_in('t710.m:', 'r', 0, 999, 1))[0])]
--- error_code eval
[200, 200, 200, 200]
--- response_body eval
[(map { ::v($_, 'computed') } ::ids_in('t710.m:', 'x', 0, 999, 3)),
 ::v((::ids_in('t710.m:', 'r', 0, 999, 1))[0], 'redis')]
--- fleet_check
my $name = $block->name;
Test::More::is($::Cluster->owner(0), $Run{new}, "$name - slot 0 is on $Run{new} now");
# a manual failover: the old master holds writes until its replica has
# caught up, then answers MOVED; at most the commands in flight fail
::check_traffic($block, "CLUSTER FAILOVER 17002 -> $Run{new}",
                bound_seconds => 0.2 * $SLOW);
::check_sets($block, 't710.m:', ::ids_in('t710.m:', 'x', 0, 999, 3));
--- timeout: 30
--- no_error_log
[alert]
[crit]
exited on signal
Pw710-Secret
