package Txval::Fleet;

# Redis topologies for the tests, on loopback, from Debian's packages
# (redis-server, redis-sentinel, redis-cli --cluster): a Sentinel set-up
# (a master, a replica, three sentinels) and a Redis Cluster (three masters,
# three replicas). Every process is our child; all of them are killed when
# the test process ends (END), and a watchdog kills them if the test itself
# is killed (-9). Data and logs in build/fleet/<name>/.
#
#   my $s = Txval::Fleet->sentinel(name => 's700', master_name => 'txm',
#                                  master_port => 17110, replica_port => 17111,
#                                  sentinel_ports => [17101, 17102, 17103]);
#   $s->sentinels_text          # "127.0.0.1:17101,127.0.0.1:17102,..."
#   $s->master_port             # what the sentinels say (all of them agree)
#   my $old = $s->failover;     # redis-cli -p 17101 SENTINEL FAILOVER txm
#   my $new = $s->wait_switch($old);   # every sentinel reports the new one
#   $s->wait_ready;             # the replica is up and known to all
#
#   my $c = Txval::Fleet->cluster(name => 'c710', ports => [17001 .. 17006],
#                                 node_timeout => 1500, full_coverage => 0);
#   $c->masters                 # ports of the masters, by their first slot
#   $c->owner(Txval::Fleet::key_slot($key))   # port of a slot's master
#   $c->get($key)               # GET, following MOVED/ASK
#   $c->keys_on($port, 't710:*')
#   $c->reshard($from_port, $to_port, $n)     # redis-cli --cluster reshard
#   $c->kill9($port); $c->wait_ok; $c->restart($port)
#
#   my $t = Txval::Fleet::Traffic->start(port => 1984, uri => '/t',
#                                        procs => 2, body => sub { ... });
#   my @r = $t->stop;           # { t0, t1, status, what, id } per request
#   my %run = Txval::Fleet::Traffic->around(port => 1984, body => ...,
#                                           change => sub { ... },
#                                           after => 3);
#                               # { event_at, switched_at, changed, res }
#
#   perl t/lib/Txval/Fleet.pm sentinel|cluster    (by hand: start one and
#                                                  wait for Ctrl-C)
#
# Ports: the tests use 17101-17103 and 17110-17111 (Sentinel), 17001-17006
# and the cluster bus ports 27001-27006 (Cluster).

use strict;
use warnings;

use Cwd qw(abs_path);
use File::Basename qw(dirname);
use File::Path qw(make_path remove_tree);
use IO::Socket::INET;
use POSIX qw(WNOHANG);
use Time::HiRes qw(sleep time);

use lib dirname(__FILE__) . '/..';
use Txval::Redis ();

my $repo = abs_path(dirname(__FILE__) . '/../../..');

my $OWNER = $$;
our %AUTH;          # port => password, of the Redis nodes that need one
my %running;        # pid => "what", our redis processes
my @fleet_dirs;     # for the watchdog
my $watchdog;

END {
    my $status = $?;
    if ($$ == $OWNER) {
        for my $pid (keys %running) {
            kill 'KILL', $pid;
        }
        for my $pid (keys %running) {
            waitpid $pid, 0;
        }
        %running = ();
        if ($watchdog) {
            kill 'KILL', $watchdog;
            waitpid $watchdog, 0;
        }
    }
    $? = $status;
}


# --- helpers

sub wait_until {
    my ($timeout, $what, $cond) = @_;
    my $deadline = time + $timeout;
    my $last;
    while (1) {
        my $r = eval { $cond->() };
        $last = $@ if $@;
        return $r if $r;
        die "fleet: timed out after ${timeout}s waiting for $what"
            . ($last ? " (last error: $last)" : '') . "\n"
            if time > $deadline;
        sleep 0.05;
    }
}


# a client of a node (AUTH when it has a password), MONITOR on one

sub client {
    my ($port, %a) = @_;
    return Txval::Redis->client(port => $port, password => $AUTH{$port}, %a);
}

sub monitor {
    my ($port) = @_;
    return Txval::Redis->monitor(port => $port, password => $AUTH{$port});
}

# redis-cli, with the password of the nodes (not on its command line)

sub redis_cli {
    my ($password, @args) = @_;
    my $pid = open my $fh, '-|';
    die "fork: $!\n" unless defined $pid;
    if ($pid == 0) {
        $ENV{REDISCLI_AUTH} = $password if defined $password;
        open STDIN, '<', '/dev/null';
        open STDERR, '>&', \*STDOUT;
        exec 'redis-cli', @args or POSIX::_exit(127);
    }
    local $/;
    my $out = <$fh> // '';
    close $fh;
    return ($? == 0, $out);
}

# one command on a new connection; undef when the server does not answer

sub cmd {
    my ($port, @args) = @_;
    my $r = eval {
        my $c = client($port);
        my $v = $c->cmd(@args);
        $c->close;
        $v;
    };
    return $r;
}


sub port_free {
    my ($port) = @_;
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port,
                                  Proto => 'tcp', Timeout => 1);
    return !$s;
}


# "k1 v1 k2 v2" replies (SENTINEL masters/replicas) into hashes

sub pairs {
    my ($list) = @_;
    return {} unless ref $list eq 'ARRAY';
    return { @$list };
}


# processes of an earlier run that died without cleaning up (pid files in
# the fleet directory): killed, if they are still redis

sub kill_stale {
    my ($dir) = @_;
    my @pids;
    for my $pf (glob "$dir/*.pid $dir/*/*.pid") {
        open my $fh, '<', $pf or next;
        my $pid = <$fh>;
        close $fh;
        unlink $pf;
        next unless defined $pid && $pid =~ /^(\d+)/;
        $pid = $1;
        open my $cf, '<', "/proc/$pid/cmdline" or next;
        my $cmdline = <$cf> // '';
        close $cf;
        next unless $cmdline =~ /redis/;
        kill 'KILL', $pid;
        push @pids, $pid;
    }
    # gone, or a zombie (its parent was the test)
    my $deadline = time + 2;
    while (@pids && time < $deadline) {
        @pids = grep { alive($_) } @pids;
        sleep 0.02 if @pids;
    }
}

sub alive {
    my ($pid) = @_;
    open my $fh, '<', "/proc/$pid/stat" or return 0;
    my $stat = <$fh> // '';
    close $fh;
    return $stat !~ /^\d+ \(.*\) Z/s;
}


# a process that outlives a killed test only to kill what it left behind

sub start_watchdog {
    return if $watchdog;
    my $pid = fork // die "fork: $!\n";
    if ($pid == 0) {
        # never hold the test's output (prove waits for its EOF)
        open STDIN, '<', '/dev/null';
        open STDOUT, '>', '/dev/null';
        open STDERR, '>', '/dev/null';
        $0 = 'txval-fleet-watchdog';
        sleep 0.5 while getppid() == $OWNER;
        kill_stale($_) for @fleet_dirs;
        POSIX::_exit(0);
    }
    $watchdog = $pid;
}


# a redis-server (or sentinel) in the foreground, as our child

sub spawn {
    my ($what, $log, @cmd) = @_;

    my $pid = fork // die "fork: $!\n";
    if ($pid == 0) {
        open STDIN, '<', '/dev/null';
        open STDOUT, '>>', $log or POSIX::_exit(126);
        open STDERR, '>&', \*STDOUT;
        exec @cmd or POSIX::_exit(127);
    }
    $running{$pid} = $what;
    return $pid;
}


sub wait_up {
    my ($pid, $port, $log) = @_;
    my $deadline = time + 10;
    while (time < $deadline) {
        if (waitpid($pid, WNOHANG) == $pid) {
            delete $running{$pid};
            die "fleet: redis on $port exited at start:\n"
                . `tail -5 $log`;
        }
        my $r = cmd($port, 'PING');
        return 1 if defined $r && !ref $r && $r eq 'PONG';
        sleep 0.02;
    }
    die "fleet: redis on $port did not start (see $log)\n";
}


sub reap {
    my ($pid, $sig) = @_;
    return unless $pid;
    kill $sig // 'KILL', $pid;
    waitpid $pid, 0;
    delete $running{$pid};
}


sub fleet_dir {
    my ($name) = @_;
    my $dir = "$repo/build/fleet/$name";
    kill_stale($dir);
    remove_tree($dir);
    make_path($dir);
    push @fleet_dirs, $dir;
    start_watchdog();
    return $dir;
}


# --- CRC16 (XMODEM) and Redis Cluster key slots

my @CRC16;
for my $i (0 .. 255) {
    my $c = $i << 8;
    for (1 .. 8) {
        $c = $c & 0x8000 ? (($c << 1) ^ 0x1021) : ($c << 1);
        $c &= 0xffff;
    }
    push @CRC16, $c;
}

sub crc16 {
    my ($s) = @_;
    my $crc = 0;
    for my $b (unpack 'C*', $s) {
        $crc = (($crc << 8) & 0xffff) ^ $CRC16[(($crc >> 8) ^ $b) & 0xff];
    }
    return $crc;
}

sub key_slot {
    my ($key) = @_;
    my $s = index $key, '{';
    if ($s >= 0) {
        my $e = index $key, '}', $s + 1;
        if ($e > $s + 1) {
            $key = substr $key, $s + 1, $e - $s - 1;
        }
    }
    return crc16($key) % 16384;
}


# ---------------------------------------------------------------------------
# Sentinel

sub sentinel {
    my ($class, %a) = @_;

    my $self = bless {
        name          => $a{name} // 'sentinel',
        master_name   => $a{master_name} // 'txm',
        ports         => [ $a{master_port} // 17110, $a{replica_port} // 17111 ],
        sentinel_ports => $a{sentinel_ports} // [ 17101, 17102, 17103 ],
        quorum        => $a{quorum} // 2,
        down_after    => $a{down_after} // 1000,
        failover_timeout => $a{failover_timeout} // 3000,
        password      => $a{password},
        pid           => {},
    }, 'Txval::Fleet::Sentinel';

    if (defined $self->{password}) {
        $AUTH{$_} = $self->{password} for @{ $self->{ports} };
    }

    for my $p (@{ $self->{ports} }, @{ $self->{sentinel_ports} }) {
        die "fleet: port $p is in use\n" unless port_free($p);
    }

    $self->{dir} = fleet_dir($self->{name});
    $self->start;
    return $self;
}


package Txval::Fleet::Sentinel;

use Time::HiRes qw(sleep time);

sub dir { $_[0]{dir} }
sub master_name { $_[0]{master_name} }
sub sentinel_ports { @{ $_[0]{sentinel_ports} } }
sub redis_ports { @{ $_[0]{ports} } }

sub sentinels_text {
    my ($self) = @_;
    return join ',', map { "127.0.0.1:$_" } @{ $self->{sentinel_ports} };
}

sub _start_redis {
    my ($self, $port, $replicaof) = @_;
    my $d = "$self->{dir}/$port";
    File::Path::make_path($d);
    my $log = "$d/redis.log";
    my $pid = Txval::Fleet::spawn("redis $port", $log,
        'redis-server', '--bind', '127.0.0.1', '--port', $port,
        '--dir', $d, '--pidfile', "$d/redis.pid", '--save', '',
        '--appendonly', 'no', '--daemonize', 'no',
        '--repl-diskless-sync', 'yes', '--repl-diskless-sync-delay', '0',
        '--repl-ping-replica-period', '1',
        (defined $self->{password}
            ? ('--requirepass', $self->{password},
               '--masterauth', $self->{password}) : ()),
        ($replicaof ? ('--replicaof', '127.0.0.1', $replicaof) : ()));
    $self->{pid}{$port} = $pid;
    Txval::Fleet::wait_up($pid, $port, $log);
}

sub _start_sentinel {
    my ($self, $port) = @_;
    my $d = "$self->{dir}/s$port";
    File::Path::make_path($d);
    my $conf = "$d/sentinel.conf";
    my $m = $self->{master_name};
    open my $fh, '>', $conf or die "$conf: $!\n";
    print $fh <<"CONF";
port $port
bind 127.0.0.1
daemonize no
pidfile $d/sentinel.pid
logfile ""
dir $d
sentinel monitor $m 127.0.0.1 $self->{ports}[0] $self->{quorum}
sentinel down-after-milliseconds $m $self->{down_after}
sentinel failover-timeout $m $self->{failover_timeout}
sentinel parallel-syncs $m 1
CONF
    print $fh "sentinel auth-pass $m $self->{password}\n"
        if defined $self->{password};
    close $fh;
    my $log = "$d/sentinel.log";
    my $bin = -x '/usr/bin/redis-sentinel' ? 'redis-sentinel' : 'redis-server';
    my $pid = Txval::Fleet::spawn("sentinel $port", $log, $bin, $conf,
                                  ($bin eq 'redis-server' ? '--sentinel' : ()));
    $self->{pid}{$port} = $pid;
    Txval::Fleet::wait_up($pid, $port, $log);
}

sub start {
    my ($self) = @_;
    my ($master, $replica) = @{ $self->{ports} };
    $self->_start_redis($master);
    $self->_start_redis($replica, $master);
    $self->_start_sentinel($_) for @{ $self->{sentinel_ports} };
    $self->wait_ready(20);
}

# ready for a failover: the master says it is one and has its replica
# linked (ROLE on both); every sentinel reports that master, sees the other
# sentinels, knows the replica (not down) and can reach a quorum; the
# first sentinel (the one SENTINEL FAILOVER goes to) has the replica's link
# up in its own view. (The others refresh a replica's INFO every 10 s
# only, and every second once its master is down: they need not be
# up to date for a failover.)

sub ready {
    my ($self) = @_;
    my $m = $self->{master_name};
    my $master;
    my $n = @{ $self->{sentinel_ports} };
    for my $sp (@{ $self->{sentinel_ports} }) {
        my $addr = Txval::Fleet::cmd($sp, SENTINEL => 'get-master-addr-by-name', $m);
        return 0 unless ref $addr eq 'ARRAY' && @$addr == 2;
        $master //= $addr->[1];
        return 0 unless $addr->[1] == $master;
        my $mi = Txval::Fleet::pairs(Txval::Fleet::cmd($sp, SENTINEL => 'master', $m));
        return 0 unless ($mi->{flags} // '') eq 'master';
        return 0 unless ($mi->{'num-other-sentinels'} // 0) == $n - 1;
        my $reps = Txval::Fleet::cmd($sp, SENTINEL => 'replicas', $m);
        return 0 unless ref $reps eq 'ARRAY';
        my @ok = grep {
            my $r = Txval::Fleet::pairs($_);
            ($r->{flags} // '') eq 'slave'
                && ($sp != $self->{sentinel_ports}[0]
                    || (($r->{'master-link-status'} // '') eq 'ok'
                        && ($r->{'master-port'} // 0) == $master))
        } @$reps;
        return 0 unless @ok >= 1;
        my $q = Txval::Fleet::cmd($sp, SENTINEL => 'ckquorum', $m);
        return 0 if ref $q || !defined $q;
    }
    my $role = Txval::Fleet::cmd($master, 'ROLE');
    return 0 unless ref $role eq 'ARRAY' && $role->[0] eq 'master';
    for my $p (grep { $_ != $master } @{ $self->{ports} }) {
        next unless $self->{pid}{$p};
        my $r = Txval::Fleet::cmd($p, 'ROLE');
        return 0 unless ref $r eq 'ARRAY' && $r->[0] eq 'slave'
                        && $r->[2] == $master && $r->[3] eq 'connected';
    }
    return $master;
}

sub wait_ready {
    my ($self, $timeout) = @_;
    return Txval::Fleet::wait_until($timeout // 20,
        "the sentinels to know master $self->{master_name} and its replica",
        sub { $self->ready });
}

# the master the sentinels report (undef while they disagree)

sub master_port {
    my ($self) = @_;
    my %seen;
    for my $sp (@{ $self->{sentinel_ports} }) {
        my $addr = Txval::Fleet::cmd($sp, SENTINEL => 'get-master-addr-by-name',
                                     $self->{master_name});
        return undef unless ref $addr eq 'ARRAY' && @$addr == 2;
        $seen{ $addr->[1] } = 1;
    }
    my @p = keys %seen;
    return @p == 1 ? $p[0] : undef;
}

sub replica_port {
    my ($self) = @_;
    my $m = $self->master_port // return undef;
    my ($r) = grep { $_ != $m } @{ $self->{ports} };
    return $r;
}

# SENTINEL FAILOVER through redis-cli, as an operator would; the master
# before it is returned

sub failover {
    my ($self) = @_;
    my $old = $self->master_port // die "fleet: the sentinels disagree\n";
    my $sp = $self->{sentinel_ports}[0];
    my (undef, $out) = Txval::Fleet::redis_cli(undef, '-p', $sp, 'SENTINEL',
                                               'FAILOVER', $self->{master_name});
    die "fleet: SENTINEL FAILOVER: $out" unless $out =~ /^OK/;
    $self->{failover_at} = time;
    return $old;
}

# until every sentinel reports a master other than $old, and that one says
# it is a master; the new port

sub wait_switch {
    my ($self, $old, $timeout) = @_;
    return Txval::Fleet::wait_until($timeout // 20,
        "the sentinels to report a master other than $old", sub {
            my $m = $self->master_port;
            return 0 unless $m && $m != $old;
            my $role = Txval::Fleet::cmd($m, 'ROLE');
            return 0 unless ref $role eq 'ARRAY' && $role->[0] eq 'master';
            return $m;
        });
}

sub client {
    my ($self, $port, %a) = @_;
    return Txval::Fleet::client($port, %a);
}

# a Redis (master or replica) killed -9, and started again (empty, with no
# replicaof: the sentinels make it a replica of whoever is master by then)

sub kill9 {
    my ($self, $port) = @_;
    Txval::Fleet::reap(delete $self->{pid}{$port}, 'KILL');
}

sub restart {
    my ($self, $port) = @_;
    $self->kill9($port);
    $self->_start_redis($port);
}

sub stop {
    my ($self) = @_;
    for my $port (sort keys %{ $self->{pid} }) {
        Txval::Fleet::reap(delete $self->{pid}{$port}, 'TERM');
    }
}


# ---------------------------------------------------------------------------
# Cluster

package Txval::Fleet;

sub cluster {
    my ($class, %a) = @_;

    my $self = bless {
        name => $a{name} // 'cluster',
        ports => $a{ports} // [ 17001 .. 17006 ],
        node_timeout => $a{node_timeout} // 1500,
        replicas => $a{replicas} // 1,
        full_coverage => $a{full_coverage} // 1,
        password => $a{password},
        pid => {},
    }, 'Txval::Fleet::Cluster';

    if (defined $self->{password}) {
        $AUTH{$_} = $self->{password} for @{ $self->{ports} };
    }

    for my $p (@{ $self->{ports} }) {
        die "fleet: port $p is in use\n" unless port_free($p);
        die "fleet: port " . ($p + 10000) . " (cluster bus) is in use\n"
            unless port_free($p + 10000);
    }

    $self->{dir} = fleet_dir($self->{name});
    $self->start;
    return $self;
}


package Txval::Fleet::Cluster;

use Time::HiRes qw(sleep time);

sub dir { $_[0]{dir} }
sub ports { @{ $_[0]{ports} } }

sub seeds_text {
    my ($self, $n) = @_;
    my @p = @{ $self->{ports} };
    @p = @p[0 .. $n - 1] if $n;
    return join ',', map { "127.0.0.1:$_" } @p;
}

sub _spawn_node {
    my ($self, $port) = @_;
    my $d = "$self->{dir}/$port";
    File::Path::make_path($d);
    my $log = "$d/redis.log";
    my $pid = Txval::Fleet::spawn("cluster node $port", $log,
        'redis-server', '--bind', '127.0.0.1', '--port', $port,
        '--dir', $d, '--pidfile', "$d/redis.pid", '--save', '',
        '--appendonly', 'no', '--daemonize', 'no',
        '--cluster-enabled', 'yes', '--cluster-config-file', "$d/nodes.conf",
        '--cluster-node-timeout', $self->{node_timeout},
        '--cluster-replica-validity-factor', '0',
        '--cluster-require-full-coverage',
        $self->{full_coverage} ? 'yes' : 'no',
        '--repl-diskless-sync', 'yes', '--repl-diskless-sync-delay', '0',
        '--repl-ping-replica-period', '1',
        (defined $self->{password}
            ? ('--requirepass', $self->{password},
               '--masterauth', $self->{password}) : ()));
    $self->{pid}{$port} = $pid;
    Txval::Fleet::wait_up($pid, $port, $log);
}

sub start {
    my ($self) = @_;
    $self->_spawn_node($_) for @{ $self->{ports} };
    my @nodes = map { "127.0.0.1:$_" } @{ $self->{ports} };
    my ($ok, $out) = Txval::Fleet::redis_cli($self->{password}, '--cluster',
        'create', @nodes, '--cluster-replicas', $self->{replicas},
        '--cluster-yes');
    if (!$ok || $out !~ /All 16384 slots covered/) {
        die "fleet: redis-cli --cluster create failed:\n$out";
    }
    $self->wait_ok(30);
}

# CLUSTER NODES of one live node: [ { id, port, flags, master, slots =>
# [[from, to], ...], link } ]

sub nodes {
    my ($self, $port) = @_;
    my @ports = $port ? ($port) : $self->live_ports;
    for my $p (@ports) {
        my $text = Txval::Fleet::cmd($p, CLUSTER => 'NODES');
        next unless defined $text && !ref $text;
        my @nodes;
        for my $line (split /\n/, $text) {
            my ($id, $addr, $flags, $master, undef, undef, undef, $link,
                @slots) = split ' ', $line;
            next unless defined $link;
            my ($nport) = $addr =~ /:(\d+)/;
            my @ranges;
            for (@slots) {
                next if /^\[/;      # a slot being migrated
                my ($a, $b) = split /-/;
                push @ranges, [ $a, $b // $a ];
            }
            push @nodes, { id => $id, port => $nport, flags => $flags,
                           master => $master, link => $link,
                           slots => \@ranges };
        }
        return \@nodes;
    }
    die "fleet: no cluster node answers\n";
}

sub live_ports {
    my ($self) = @_;
    return grep { $self->{pid}{$_} } @{ $self->{ports} };
}

sub node_id {
    my ($self, $port) = @_;
    my ($n) = grep { $_->{port} == $port } @{ $self->nodes };
    return $n ? $n->{id} : undef;
}

# the masters that hold slots, ordered by their first slot

sub masters {
    my ($self) = @_;
    my @m = grep { $_->{flags} =~ /\bmaster\b/ && $_->{flags} !~ /fail/
                   && @{ $_->{slots} } } @{ $self->nodes };
    @m = sort { $a->{slots}[0][0] <=> $b->{slots}[0][0] } @m;
    return map { $_->{port} } @m;
}

# the replica (port) of a master (port)

sub replica_of {
    my ($self, $port) = @_;
    my $nodes = $self->nodes;
    my ($m) = grep { $_->{port} == $port } @$nodes or return undef;
    my ($r) = grep { $_->{master} eq $m->{id} && $_->{flags} !~ /fail/ }
              @$nodes;
    return $r ? $r->{port} : undef;
}

sub owner {
    my ($self, $slot) = @_;
    for my $n (@{ $self->nodes }) {
        next unless $n->{flags} =~ /\bmaster\b/;
        for my $r (@{ $n->{slots} }) {
            return $n->{port} if $slot >= $r->[0] && $slot <= $r->[1];
        }
    }
    return undef;
}

# every live node says cluster_state:ok, they agree on the slots
# (redis-cli --cluster check), every live replica's link to its master is
# up

sub ok {
    my ($self) = @_;
    my @live = $self->live_ports;
    for my $p (@live) {
        my $info = Txval::Fleet::cmd($p, CLUSTER => 'INFO');
        return 0 unless defined $info && !ref $info
                        && $info =~ /^cluster_state:ok/m;
    }
    my ($ok, $out) = Txval::Fleet::redis_cli($self->{password}, '--cluster',
                                             'check', "127.0.0.1:$live[0]");
    return 0 unless $ok && $out =~ /All nodes agree about slots configuration/
                    && $out =~ /All 16384 slots covered/
                    && $out !~ /\[ERR\]|\[WARNING\]/;
    for my $p (@live) {
        my $role = Txval::Fleet::cmd($p, 'ROLE');
        return 0 unless ref $role eq 'ARRAY';
        next unless $role->[0] eq 'slave';
        return 0 unless ($role->[3] // '') eq 'connected';
    }
    return 1;
}

sub wait_ok {
    my ($self, $timeout) = @_;
    return Txval::Fleet::wait_until($timeout // 20, 'cluster_state:ok on every node',
                                    sub { $self->ok });
}

# only cluster_state:ok on every live node (fast; for the time a failover
# ends)

sub state_ok {
    my ($self) = @_;
    for my $p ($self->live_ports) {
        my $info = Txval::Fleet::cmd($p, CLUSTER => 'INFO');
        return 0 unless defined $info && !ref $info
                        && $info =~ /^cluster_state:ok/m;
    }
    return 1;
}

sub client {
    my ($self, $port) = @_;
    return Txval::Fleet::client($port);
}

# a command on a key, following MOVED and ASK as a cluster client does

sub key_cmd {
    my ($self, @args) = @_;
    my $key = $args[1];
    my $port = $self->owner(Txval::Fleet::key_slot($key))
               // ($self->live_ports)[0];
    my $asking = 0;
    for (1 .. 5) {
        my $c = Txval::Fleet::client($port);
        $c->cmd('ASKING') if $asking;
        my $r = $c->cmd(@args);
        $c->close;
        if (ref $r eq 'HASH' && $r->{error} =~ /^(MOVED|ASK) \d+ [^:]*:(\d+)/) {
            ($asking, $port) = ($1 eq 'ASK', $2);
            next;
        }
        return $r;
    }
    die "fleet: too many redirections for $key\n";
}

sub get { my ($self, $key) = @_; return $self->key_cmd(GET => $key) }

# the keys that match on one node (SCAN)

sub keys_on {
    my ($self, $port, $match) = @_;
    my $c = Txval::Fleet::client($port);
    my ($cursor, @keys) = (0);
    do {
        my $r = $c->cmd(SCAN => $cursor, MATCH => $match, COUNT => 1000);
        die "fleet: SCAN on $port: $r->{error}\n" if ref $r eq 'HASH';
        $cursor = $r->[0];
        push @keys, @{ $r->[1] };
    } while ($cursor);
    $c->close;
    return @keys;
}

# redis-cli --cluster reshard: $n slots (the lowest ones the source holds)
# from one master to another, keys migrated; returns once the cluster is
# stable again

sub reshard {
    my ($self, $from, $to, $n) = @_;
    my $fid = $self->node_id($from) // die "fleet: no node on $from\n";
    my $tid = $self->node_id($to) // die "fleet: no node on $to\n";
    my ($ok, $out) = Txval::Fleet::redis_cli($self->{password}, '--cluster',
        'reshard', "127.0.0.1:$from", '--cluster-from', $fid,
        '--cluster-to', $tid, '--cluster-slots', $n, '--cluster-yes');
    die "fleet: redis-cli --cluster reshard failed:\n$out" unless $ok;
    $self->{reshard_out} = $out;
    return $out;
}

sub kill9 {
    my ($self, $port) = @_;
    Txval::Fleet::reap(delete $self->{pid}{$port}, 'KILL');
}

# until a killed master's slots are served again: every live node says
# cluster_state:ok and gives the first of those slots to a live master;
# that master's port

sub wait_taken_over {
    my ($self, $dead, $slot, $timeout) = @_;
    return Txval::Fleet::wait_until($timeout // 20,
        "slot $slot to move from $dead to a live master", sub {
            return 0 unless $self->state_ok;
            my %owner;
            for my $p ($self->live_ports) {
                my $o = $self->owner_from($p, $slot) // return 0;
                return 0 if $o == $dead || !$self->{pid}{$o};
                $owner{$o} = 1;
            }
            my @o = keys %owner;
            return @o == 1 ? $o[0] : 0;
        });
}

sub owner_from {
    my ($self, $port, $slot) = @_;
    for my $n (@{ $self->nodes($port) }) {
        next unless $n->{flags} =~ /\bmaster\b/ && $n->{flags} !~ /fail/;
        for my $r (@{ $n->{slots} }) {
            return $n->{port} if $slot >= $r->[0] && $slot <= $r->[1];
        }
    }
    return undef;
}

sub first_slot {
    my ($self, $port) = @_;
    my ($n) = grep { $_->{port} == $port } @{ $self->nodes };
    return $n && @{ $n->{slots} } ? $n->{slots}[0][0] : undef;
}

sub restart {
    my ($self, $port) = @_;
    $self->kill9($port);
    $self->_spawn_node($port);
}

# CLUSTER FAILOVER on the replica of a master: a manual failover (the
# replica catches up, then takes over); returns the replica's port once it
# is a master serving the slots

sub manual_failover {
    my ($self, $master) = @_;
    my $rep = $self->replica_of($master) // die "fleet: $master has no replica\n";
    my (undef, $out) = Txval::Fleet::redis_cli($self->{password}, '-p', $rep,
                                               'CLUSTER', 'FAILOVER');
    die "fleet: CLUSTER FAILOVER: $out" unless $out =~ /^OK/;
    Txval::Fleet::wait_until(20, "$rep to take over from $master", sub {
        my $role = Txval::Fleet::cmd($rep, 'ROLE');
        ref $role eq 'ARRAY' && $role->[0] eq 'master'
            && grep { $_ == $rep } $self->masters;
    });
    return $rep;
}

sub stop {
    my ($self) = @_;
    for my $port (sort keys %{ $self->{pid} }) {
        Txval::Fleet::reap(delete $self->{pid}{$port}, 'TERM');
    }
}


# ---------------------------------------------------------------------------
# Traffic: processes sending one request after another, each a new
# connection, each result logged

package Txval::Fleet::Traffic;

use POSIX ();
use IO::Socket::INET;
use Time::HiRes qw(sleep time);

sub start {
    my ($class, %a) = @_;

    my $self = bless {
        port => $a{port} // die("traffic: no port\n"),
        uri => $a{uri} // '/t',
        procs => $a{procs} // 2,
        body => $a{body} // die("traffic: no body\n"),
        pause => $a{pause} // 0.001,
        timeout => $a{timeout} // 10,
        dir => $a{dir} // "$repo/build/fleet",
        kids => [],
    }, $class;

    File::Path::make_path($self->{dir});
    my $parent = $$;
    $self->{stop_file} = "$self->{dir}/traffic.$$.stop";
    unlink $self->{stop_file};

    for my $k (1 .. $self->{procs}) {
        my $log = "$self->{dir}/traffic.$$.$k.log";
        unlink $log;
        my $pid = fork // die "fork: $!\n";
        if ($pid == 0) {
            open STDIN, '<', '/dev/null';
            open my $fh, '>', $log or POSIX::_exit(1);
            $fh->autoflush(1);
            my $i = 0;
            until (-e $self->{stop_file} || getppid() != $parent) {
                my $id = "bg$k-$$-" . $i++;
                my $t0 = time;
                my ($status, $what) = $self->_post($self->{body}->($id, $k, $i));
                printf $fh "%.6f %.6f %s %s %s\n", $t0, time, $status,
                       $what, $id;
                sleep $self->{pause} if $self->{pause};
            }
            close $fh;
            POSIX::_exit(0);
        }
        push @{ $self->{kids} }, [ $pid, $log ];
    }

    $self->{t0} = time;
    return $self;
}

# status and what the body says: the source of a verdict or the error

sub _post {
    my ($self, $body) = @_;
    my $res = eval {
        my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                      PeerPort => $self->{port},
                                      Proto => 'tcp',
                                      Timeout => $self->{timeout})
            or die "connect: $!\n";
        print $s "POST $self->{uri} HTTP/1.1\r\nHost: localhost\r\n"
                 . "Connection: close\r\nContent-Type: application/json\r\n"
                 . "Content-Length: " . length($body) . "\r\n\r\n$body";
        local $SIG{ALRM} = sub { die "timeout\n" };
        alarm $self->{timeout};
        my $raw = '';
        while (sysread $s, my $buf, 65536) { $raw .= $buf }
        alarm 0;
        close $s;
        $raw;
    };
    return ('000', 'no-response') unless defined $res && length $res;
    my ($status) = $res =~ m{^HTTP/1\.\d (\d{3})} or return ('000', 'garbage');
    my ($what) = $res =~ /"(?:source|error)":"(\w+)"/;
    $what //= 'none';
    $what .= '+degraded' if $res =~ /"degraded":true/;
    return ($status, $what);
}

# stops the senders, returns every request's { t0, t1, status, what, id },
# by start time

sub stop {
    my ($self) = @_;
    open my $fh, '>', $self->{stop_file};
    close $fh;
    my @res;
    for my $kid (@{ $self->{kids} }) {
        my ($pid, $log) = @$kid;
        my $deadline = time + $self->{timeout} + 5;
        while (waitpid($pid, POSIX::WNOHANG()) == 0) {
            if (time > $deadline) {
                kill 'KILL', $pid;
                waitpid $pid, 0;
                last;
            }
            sleep 0.01;
        }
        open my $lf, '<', $log or next;
        while (<$lf>) {
            my ($t0, $t1, $status, $what, $id) = split ' ';
            next unless defined $id;
            push @res, { t0 => $t0, t1 => $t1, status => $status,
                         what => $what, id => $id };
        }
        close $lf;
        unlink $log;
    }
    unlink $self->{stop_file};
    $self->{kids} = [];
    $self->{t1} = time;
    return sort { $a->{t0} <=> $b->{t0} } @res;
}

# traffic while something changes: the senders started (start's
# arguments), a second of traffic, $change->() (what it returns in
# {changed}), $after seconds more, the senders stopped (their results in
# {res}); {event_at} and {switched_at}: when the change began and ended

sub around {
    my ($class, %a) = @_;

    my $change = delete $a{change};
    my $after = delete $a{after} // 0;

    my $traffic = $class->start(%a);

    sleep 1;
    my %run = (event_at => time);
    $run{changed} = [ $change->() ];
    $run{switched_at} = time;

    sleep $after;
    $run{res} = [ $traffic->stop ];

    return %run;
}

sub DESTROY {
    my ($self) = @_;
    for my $kid (@{ $self->{kids} // [] }) {
        kill 'KILL', $kid->[0];
        waitpid $kid->[0], 0;
    }
}


# what a run of traffic looked like: the requests that failed, by kind,
# requests per second, the slowest

sub summary {
    my ($class, $res, %a) = @_;
    my $ok = $a{ok} // qr/^200$/;
    my @bad = grep { $_->{status} !~ $ok } @$res;
    my %kinds;
    $kinds{"$_->{status} $_->{what}"}++ for @bad;
    my $span = @$res ? $res->[-1]{t1} - $res->[0]{t0} : 0;
    my ($slowest) = sort { ($b->{t1} - $b->{t0}) <=> ($a->{t1} - $a->{t0}) }
                    @$res;
    return {
        total => scalar @$res,
        bad => \@bad,
        failed => scalar @bad,
        kinds => \%kinds,
        span => $span,
        rate => $span > 0 ? @$res / $span : 0,
        slowest => $slowest ? $slowest->{t1} - $slowest->{t0} : 0,
        last_bad => @bad ? (sort { $b->{t1} <=> $a->{t1} } @bad)[0]{t1}
                         : undef,
    };
}

# the checks on traffic around a failover (Test::More), and a diag line
# with the counts:
#   name        the test name prefix
#   label       what happened ("SENTINEL FAILOVER 17110 -> 17111")
#   event_at    when the failover started
#   switched_at when it was over (the sentinels report the new master, the
#               cluster is ok again)
#   recovery    seconds after switched_at from which every request succeeds
#   bound_seconds  at most this many seconds' worth of requests (at the
#               run's own rate) fail, plus 5 for those in flight
#   bound       or at most this many (0: none)
#   max_latency no request takes longer (none hangs)
#   allow       the failures allowed (default: 503 backend_unavailable)
#   min_requests  at least this many requests were sent

sub check {
    my ($class, $res, %a) = @_;
    my $name = $a{name};
    my $allow = $a{allow} // qr/^503 backend_unavailable$/;
    my $s = $class->summary($res);
    my $failed_before = grep { !$_ } Test::More->builder->summary;

    Test::More::cmp_ok($s->{total}, '>=', $a{min_requests} // 100,
        "$name - traffic ran ($s->{total} requests)");

    my @wrong = grep { "$_->{status} $_->{what}" !~ $allow } @{ $s->{bad} };
    Test::More::is(scalar(@wrong), 0,
        "$name - the only failures are 503 backend_unavailable")
        or Test::More::diag(join "\n", map {
               sprintf '  %s %s at %+.3f s', $_->{status}, $_->{what},
                       $_->{t0} - $a{event_at} } @wrong[0 .. ($#wrong > 9 ? 9 : $#wrong)]);

    my $until = $a{switched_at} + $a{recovery};
    my @late = grep { $_->{t0} >= $until } @{ $s->{bad} };
    Test::More::is(scalar(@late), 0,
        "$name - every request from $a{recovery} s after the switch on succeeds")
        or Test::More::diag(join "\n", map {
               sprintf '  %s %s at %+.3f s after the switch', $_->{status},
                       $_->{what}, $_->{t0} - $a{switched_at} }
               @late[0 .. ($#late > 9 ? 9 : $#late)]);

    my @early = grep { $_->{t1} < $a{event_at} } @{ $s->{bad} };
    Test::More::is(scalar(@early), 0, "$name - none failed before the failover");

    my $bound = $a{bound} // int($s->{rate} * $a{bound_seconds} + 0.5) + 5;
    Test::More::cmp_ok($s->{failed}, '<=', $bound,
        "$name - at most $bound failed"
        . (defined $a{bound} ? ''
           : sprintf ' (%.2f s of traffic, and 5)', $a{bound_seconds}))
        or Test::More::diag(join "\n", map {
               sprintf '  %s %s %s at %+.3f s after the switch', $_->{status},
                       $_->{what}, $_->{id}, $_->{t0} - $a{switched_at} }
               @{ $s->{bad} }[0 .. ($s->{failed} > 5 ? 4 : $s->{failed} - 1)]);

    # what nginx said, when something above failed
    if ((grep { !$_ } Test::More->builder->summary) > $failed_before) {
        my @lines = Txval::Fleet::error_lines(15);
        Test::More::diag("error.log, the first of each kind:\n"
                         . join "\n", map { "  $_" } @lines) if @lines;
    }

    if (defined $a{max_latency}) {
        Test::More::cmp_ok($s->{slowest}, '<=', $a{max_latency},
            sprintf "%s - no request took over %s s (slowest %.3f s)",
                    $name, $a{max_latency}, $s->{slowest});
    }

    my $after = $s->{failed} && $s->{last_bad}
                ? sprintf(', the last %.3f s after the switch',
                          $s->{last_bad} - $a{switched_at})
                : '';
    Test::More::diag(sprintf
        '%s: switch took %.2f s; %d requests (%.0f/s), %d failed%s%s',
        $a{label}, $a{switched_at} - $a{event_at}, $s->{total}, $s->{rate},
        $s->{failed},
        ($s->{failed} ? ' (' . join(', ', map { "$_: $s->{kinds}{$_}" }
                                          sort keys %{ $s->{kinds} }) . ')'
                      : ''),
        $after);

    return $s;
}


package Txval::Fleet;

# the block's error.log: its [error]/[warn]/[alert]/[crit] lines, one of
# each kind (the text without time, pids, connection, request), at most $n

sub error_lines {
    my ($n) = @_;
    my $root = $ENV{TEST_NGINX_SERVER_ROOT}
               // (main->can('server_root') ? main::server_root() : undef)
               // "$repo/t/servroot";
    open my $fh, '<', "$root/logs/error.log" or return ();
    my (%seen, @out);
    while (my $line = <$fh>) {
        next unless $line =~ /\[(error|warn|alert|crit)\] \d+#\d+: (?:\*\d+ )?(.*?)(?:, client: .*)?$/;
        my $kind = "[$1] $2";
        next if $seen{$kind}++;
        push @out, $kind;
        last if @out >= $n;
    }
    return @out;
}

# the connections of plain clients (nginx's) on a Redis: CLIENT LIST without
# sentinels (named), replicas and masters (flags S, M), MONITOR (O), and
# the one asking

sub plain_clients {
    my ($port) = @_;
    my $list = cmd($port, CLIENT => 'LIST');
    return -1 unless defined $list && !ref $list;
    my $n = 0;
    for my $line (split /\n/, $list) {
        my %f = map { split /=/, $_, 2 } grep { /=/ } split ' ', $line;
        next if ($f{name} // '') ne '';
        next if ($f{flags} // '') ne 'N';
        next if ($f{cmd} // '') =~ /^client/;
        $n++;
    }
    return $n;
}

# add_response_body_check(\&Txval::Fleet::fleet_check): a block's
# "--- fleet_check" section is Perl code run (in package main, with $block)
# after the block's last response, for checks on the backends

sub fleet_check {
    my ($block, $body, $req_idx, $repeated_req_idx, $dry_run) = @_;
    return if $dry_run;
    my $code = $block->can('fleet_check') ? $block->fleet_check : undef;
    return unless defined $code;
    my $reqs = $block->request // $block->raw_request;
    my $n = ref $reqs eq 'ARRAY' ? @$reqs : 1;
    return unless $req_idx == $n - 1;
    my $ok = eval "package main; no strict; $code; 1";
    Test::More::fail($block->name . " - fleet_check died: $@") unless $ok;
}


# ---------------------------------------------------------------------------
# by hand: perl t/lib/Txval/Fleet.pm sentinel|cluster

package Txval::Fleet;

sub main {
    my ($what) = @_;
    $what //= '';
    local $SIG{INT} = local $SIG{TERM} = sub { exit 0 };
    if ($what eq 'sentinel') {
        my $s = Txval::Fleet->sentinel(name => 'manual-sentinel');
        print "sentinels: ", $s->sentinels_text, " master ",
              $s->master_name, " on ", $s->master_port, "\n";
    } elsif ($what eq 'cluster') {
        my $c = Txval::Fleet->cluster(name => 'manual-cluster');
        print "cluster: ", $c->seeds_text, "; masters ",
              join(' ', $c->masters), "\n";
    } else {
        die "usage: perl t/lib/Txval/Fleet.pm sentinel|cluster\n";
    }
    print "up; Ctrl-C stops it\n";
    sleep 3600 while 1;
}

main(@ARGV) unless caller;

1;
