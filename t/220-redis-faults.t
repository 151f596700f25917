# Redis faults, each against a redis-server (or a fake one) of this test's
# own: AUTH + SELECT (once per connection, keys in the right db), a wrong
# password or db (refused setup: 503 / degraded), idle connections closed;
# a stalled Redis (accepts, never answers): answers within the timeouts,
# the worker keeps serving other locations, timed-out connections are
# closed and the pool stays bounded; Redis killed (-9) and restarted 20
# times under traffic: the pool heals within the recovery bound, the
# connections on the Redis side stay <= workers x pool, no worker dies,
# worker memory and descriptors stay flat, no CPU is burnt while it is down.
#
# Ports: Redis 16391 (auth), 16392 (stall), 16393 (restarts), overridable
# with TXVAL_TEST_REDIS_220_PORT (the first of three); nginx 1994-1996.

use strict;
use warnings;

use lib 't/lib';
use IO::Select;
use IO::Socket::INET;
use File::Path ();
use POSIX ();
use Test::More;
use Time::HiRes qw(sleep time);
use Txval::Nginx;
use Txval::Redis;
use Txval::Tx qw(tx_defaults tx);

my $base = $ENV{TXVAL_TEST_REDIS_220_PORT} // 16391;
my ($auth_port, $stall_port, $restart_port) = ($base, $base + 1, $base + 2);

my $PW = 'pw-Secret-220';
# twice the time under ASan (as t/700 and t/710)
my $SLOW = ($ENV{SANITIZE} || ($ENV{TEST_NGINX_BINARY} // '') =~ /-address$/)
           ? 2 : 1;
my $RECOVERY = 1.0 * $SLOW;  # s: every request succeeds again after a restart
my $RSS_MARGIN = 1024;  # kB

tx_defaults(currency => 'EUR');

# "<status> <source>[ degraded]", or "<status> <error>"
sub outcome { return Txval::Tx::outcome($_[0], degraded => 1) }

sub server_block {
    my ($port, $locations) = @_;
    return <<"HTTP";
    server {
        listen 127.0.0.1:$port;
        server_name localhost;
$locations
        location / { return 204; }
    }
HTTP
}

sub proc_status {
    my ($pid, $field) = @_;
    open my $fh, '<', "/proc/$pid/status" or return undef;
    while (my $line = <$fh>) {
        return $1 if $line =~ /^\Q$field\E:\s+(\d+)/;
    }
    return undef;
}

# ASan (make asan) or valgrind in the process: its RSS says nothing
sub sanitized {
    my ($pid) = @_;
    open my $fh, '<', "/proc/$pid/maps" or return 0;
    local $/;
    my $maps = <$fh> // '';
    return $maps =~ /libasan|vgpreload|valgrind/ ? 1 : 0;
}

sub cpu_ticks {
    my ($pid) = @_;
    open my $fh, '<', "/proc/$pid/stat" or return 0;
    my $line = <$fh>;
    $line =~ s/^.*\) //s;
    my @f = split ' ', $line;
    return $f[11] + $f[12];     # utime + stime
}

sub nfds {
    my ($pid) = @_;
    opendir my $d, "/proc/$pid/fd" or return -1;
    return scalar grep { /^\d+$/ } readdir $d;
}

# the worker's TCP connections to a port (its socket inodes in /proc/net/tcp)
sub conns_to {
    my ($pid, $port) = @_;
    my %inode;
    opendir my $d, "/proc/$pid/fd" or return -1;
    for (readdir $d) {
        my $l = readlink "/proc/$pid/fd/$_" // next;
        $inode{$1} = 1 if $l =~ /^socket:\[(\d+)\]$/;
    }
    my $want = sprintf ':%04X', $port;
    my $n = 0;
    open my $fh, '<', '/proc/net/tcp' or return -1;
    while (my $line = <$fh>) {
        my @f = split ' ', $line;
        next unless @f > 9 && $f[2] =~ /\Q$want\E$/;
        $n++ if $inode{ $f[9] };
    }
    return $n;
}

my $PARENT = $$;
my ($stall, $traffic);     # our children: gone when we are

END {
    for my $pid (grep { $_ } $stall, $traffic) {
        kill 'KILL', $pid;
        waitpid $pid, 0;
    }
}


# ---------------------------------------------------------------------------
# 1. AUTH + SELECT

{
    my $srv = Txval::Redis->start_server(port => $auth_port, name => '220auth',
                                         args => [requirepass => $PW]);
    my $r3 = Txval::Redis->client(port => $auth_port, password => $PW, db => 3);
    my $r0 = Txval::Redis->client(port => $auth_port, password => $PW);

    $r3->cmd(qw(CONFIG RESETSTAT));

    my $ng = Txval::Nginx->new(name => 'r220auth', port => 1994);
    $ng->start(http => qq(
    txval_redis 127.0.0.1:$auth_port password=$PW db=3 prefix=t220: pool=2
                idle_timeout=500ms;
) . server_block($ng->port, '
        location /t { txval; txval_velocity 10 60s; }
'));

    is outcome($ng->post('/t', tx(id => 'a1'))), '200 computed',
       'AUTH+SELECT: computed';
    is outcome($ng->post('/t', tx(id => 'a1'))), '200 redis',
       'then replayed from db 3';

    like $r3->cmd(GET => 't220:v:a1') // '', qr/^2;0;0;[0-9a-f]{32}$/,
         'the record is in db 3';
    is scalar(@{ $r3->cmd(KEYS => 't220:*') }), 2,
       'db 3 holds the record and the counter';
    is_deeply $r0->cmd(KEYS => '*'), [], 'db 0 holds nothing';

    # more traffic, some of it concurrent: AUTH and SELECT once per connection
    $ng->post('/t', tx(id => "a$_")) for 2 .. 10;
    $ng->post_parallel('/t', map { tx(id => "p$_") } 1 .. 8);

    my $stats = $r3->info('commandstats');
    my $conns = $r3->info('stats')->{total_connections_received};
    my ($auth) = ($stats->{cmdstat_auth} // '') =~ /calls=(\d+)/;
    my ($select) = ($stats->{cmdstat_select} // '') =~ /calls=(\d+)/;
    ok $conns >= 1 && $conns <= 2, "nginx opened 1-2 connections (pool=2)"
        or diag "connections: $conns";
    is $auth, $conns, 'one AUTH per new connection';
    is $select, $conns, 'one SELECT per new connection';

    # idle_timeout=500ms: nginx's connections go away
    my $clients = $r3->info('clients')->{connected_clients};
    ok $clients > 2, 'nginx connected while busy' or diag $clients;
    # (each one's idle time starts at the reply to its last command, the
    # verdict's write that went out after the response: poll for it)
    my $left;
    for (1 .. 500) {
        $left = $r3->info('clients')->{connected_clients};
        last if $left == 2;
        sleep 0.01;
    }
    is $left, 2,
       'idle connections closed after idle_timeout (only ours are left)';

    # ... and opened again when needed
    is outcome($ng->post('/t', tx(id => 'a1'))), '200 redis',
       'reconnects on demand';

    $ng->stop;
    unlike $ng->error_log, qr/\Q$PW\E/, 'the password is never logged';
    unlike $ng->error_log, qr/\[(error|alert|crit)\]/, 'no error logged';

    # a wrong password: the setup is refused, nothing else runs on it
    my $bad = Txval::Nginx->new(name => 'r220bad', port => 1995);
    $bad->start(http => qq(
    txval_redis 127.0.0.1:$auth_port password=wrong-$PW db=3 prefix=t220b:;
) . server_block($bad->port, '
        location /closed { txval; txval_velocity 10 60s; }
        location /open { txval; txval_velocity 10 60s; txval_fail_mode open; }
        location /novel { txval; }
'));

    my $res = $bad->post('/closed', tx(id => 'w1'));
    is outcome($res), '503 backend_unavailable', 'wrong password: 503';
    is $res->{headers}{'retry-after'}, '1', 'Retry-After: 1';
    sleep 0.25;     # past the fail-fast period: a new connection is tried
    is outcome($bad->post('/open', tx(id => 'w2'))), '200 computed degraded',
       'wrong password, fail open: degraded';
    sleep 0.25;
    is outcome($bad->post('/novel', tx(id => 'w3'))), '200 computed',
       'wrong password, no velocity: computed (a failed lookup is a miss)';

    like $bad->error_log,
         qr/\[error\].*txval: redis 127\.0\.0\.1:$auth_port: connection setup refused: WRONGPASS/,
         'logged: connection setup refused (WRONGPASS)';
    unlike $bad->error_log, qr/\Q$PW\E/, 'the password is never logged';
    is_deeply $r3->cmd(KEYS => 't220b:*'), [], 'nothing was written';

    # a db that does not exist: SELECT refused
    $bad->stop;
    $bad->start(http => qq(
    txval_redis 127.0.0.1:$auth_port password=$PW db=99 prefix=t220c:;
) . server_block($bad->port, '
        location /closed { txval; txval_velocity 10 60s; }
'));
    is outcome($bad->post('/closed', tx(id => 's1'))),
       '503 backend_unavailable',
       'db=99: 503';
    like $bad->error_log, qr/connection setup refused: ERR DB index is out of range/,
         'logged: connection setup refused (SELECT)';
    $bad->stop;

    unlike $bad->error_log, qr/\[(alert|crit)\]|exited on signal/,
           'no alert, no crash';

    $srv->stop;
}


# ---------------------------------------------------------------------------
# 2. a stalled Redis: accepts, reads, never answers

{
    my $dir = Txval::Nginx->new(name => 'x')->root;
    $dir =~ s{/servroot_x$}{/servroot_redis_220stall};
    File::Path::make_path($dir);
    my $state = "$dir/state";

    my $l = IO::Socket::INET->new(LocalAddr => '127.0.0.1',
                                  LocalPort => $stall_port, Listen => 128,
                                  ReuseAddr => 1)
        or die "listen $stall_port: $!\n";

    $stall = fork // die "fork: $!\n";

    if ($stall == 0) {
        my $sel = IO::Select->new($l);
        my ($open, $max, $total) = (0, 0, 0);
        my $save = sub {
            open my $fh, '>', "$state.tmp" or return;
            print $fh "$open $max $total\n";
            close $fh;
            rename "$state.tmp", $state;
        };
        $save->();
        for (;;) {
            POSIX::_exit(0) if getppid() != $PARENT;
            # EOFs before accepts, so that a connection closed and
            # replaced is never counted twice
            for my $fh (sort { ($a == $l) <=> ($b == $l) }
                        $sel->can_read(1))
            {
                if ($fh == $l) {
                    my $c = $l->accept or next;
                    $sel->add($c);
                    $open++;
                    $total++;
                    $max = $open if $open > $max;
                } elsif (!sysread $fh, my $buf, 65536) {
                    $sel->remove($fh);
                    close $fh;
                    $open--;
                }
                $save->();
            }
        }
    }

    close $l;

    my $read_state = sub {
        open my $fh, '<', $state or return (-1, -1, -1);
        my $line = <$fh> // '';
        return split ' ', $line;
    };

    my $ng = Txval::Nginx->new(name => 'r220stall', port => 1996);
    my $http = qq(
    txval_redis 127.0.0.1:$stall_port prefix=t220s: pool=2 timeout=200ms
                connect_timeout=100ms;
) . server_block($ng->port, '
        location /t { txval; txval_velocity 10 60s; }
        location /open { txval; txval_velocity 10 60s; txval_fail_mode open; }
        location /novel { txval; }
        location /plain { return 200 "plain\n"; }
');
    $ng->start(http => $http);

    my $res = $ng->read_async($ng->post_async('/t', tx(id => 's1')));
    is outcome($res), '503 backend_unavailable', 'stalled Redis, closed: 503';
    is $res->{headers}{'retry-after'}, '1', 'Retry-After: 1';
    ok $res->{elapsed} < 1, 'within the budget (< 1 s)'
        or diag "took $res->{elapsed} s";
    ok $res->{elapsed} >= 0.2, 'after the command timeout (>= 200 ms)'
        or diag "took $res->{elapsed} s";
    # the lookup's, then the release of the mark it may have left (not
    # waited for, so it may reach the listener after the 503 did: wait
    # for it, then long enough for a third one to show if there were
    # one); none for the velocity count
    my $total0;
    for (1 .. 200) {
        (undef, undef, $total0) = $read_state->();
        last if $total0 >= 2;
        sleep 0.01;
    }
    sleep 0.3;
    (undef, undef, $total0) = $read_state->();
    is $total0, 2, 'two connections, the lookup and the release of its '
       . 'mark: once Redis failed the request, its velocity rule is not '
       . 'tried (a second timeout)' or diag "total $total0";

    $res = $ng->read_async($ng->post_async('/open', tx(id => 's2')));
    is outcome($res), '200 computed degraded', 'fail open: degraded';
    ok $res->{elapsed} < 1, 'within the budget' or diag $res->{elapsed};

    $res = $ng->read_async($ng->post_async('/novel', tx(id => 's3')));
    is outcome($res), '200 computed',
       'no velocity: the timed-out lookup is a miss';
    ok $res->{elapsed} < 1, 'within the budget' or diag $res->{elapsed};

    # six stalled transactions in flight, and the worker still serves
    my @q = map { $ng->post_async('/t', tx(id => "c$_")) } 1 .. 6;
    sleep 0.01;
    my $t0 = time;
    my $plain = $ng->request(GET => '/plain');
    my $plain_time = time - $t0;
    my $sel = IO::Select->new(map { $_->{sock} } @q);
    my @ready = $sel->can_read(0);

    is $plain->{status} . ' ' . $plain->{body}, "200 plain\n",
       'another location answers meanwhile';
    # (the transactions wait 200 ms for Redis: a plain answer well inside
    # that, even under ASan on a busy machine, was not queued behind them)
    ok $plain_time < 0.1, 'at once (< 100 ms)' or diag "took $plain_time s";
    is scalar(@ready), 0, 'while the transactions are still waiting';

    my @res = map { $ng->read_async($_) } @q;
    is_deeply [ map { outcome($_) } @res ], [ ('503 backend_unavailable') x 6 ],
              'then each gets its 503';
    ok !(grep { $_->{elapsed} >= 1 } @res), 'each within the budget'
        or diag join ' ', map { $_->{elapsed} } @res;

    # the marks' releases, sent after the 503s, time out in their turn:
    # wait for the last of them to go
    my ($open, $max, $total);
    for (1 .. 500) {
        ($open, $max, $total) = $read_state->();
        last if $open == 0;
        sleep 0.01;
    }
    # pool=2, plus one: a timed-out connection is closed after its
    # operations failed, and those may already have opened its
    # replacement
    ok $max >= 1 && $max <= 2 + 1, 'at most pool=2 (+1) connections at a time'
        or diag "max $max";
    is $open, 0, 'timed-out connections are closed, none kept'
        or diag "open $open, total $total";

    like $ng->error_log, qr/\[error\].*txval: redis 127\.0\.0\.1:$stall_port: command timed out, closing the connection/,
         'logged: command timed out';

    # a graceful reload, then a graceful stop, while transactions wait on
    # Redis (a longer timeout: they are surely still waiting when the
    # worker is told to go): the old worker answers them before it goes
    $ng->stop;
    ($http = $http) =~ s/timeout=200ms/timeout=300ms/;
    $ng->start(http => $http);

    # (halfway through the 300 ms they wait: accepted and read by then,
    # even under ASan on a busy machine, and not answered yet)
    @q = map { $ng->post_async('/t', tx(id => "g$_")) } 1 .. 3;
    sleep 0.15;
    my @old = $ng->workers;
    kill 'HUP', $ng->master;
    is_deeply [ map { outcome($ng->read_async($_)) } @q ],
              [ ('503 backend_unavailable') x 3 ],
              'reload while transactions wait on Redis: the old worker '
              . 'answers them before it exits';
    ok eval { $ng->wait_workers(1, \@old); 1 }, 'the reload completed';

    @q = map { $ng->post_async('/t', tx(id => "q$_")) } 1 .. 3;
    sleep 0.15;
    kill 'QUIT', $ng->master;
    is_deeply [ map { outcome($ng->read_async($_)) } @q ],
              [ ('503 backend_unavailable') x 3 ],
              'a graceful stop answers them too';
    $ng->stop;
    unlike $ng->error_log, qr/open socket #\d+ left in connection/,
           'no connection left behind at exit';

    unlike $ng->error_log, qr/\[(alert|crit)\]|exited on signal/,
           'no alert, no crash';

    kill 'KILL', $stall;
    waitpid $stall, 0;
    undef $stall;
    unlink $state;
}


# ---------------------------------------------------------------------------
# 3. Redis killed and restarted 20 times under traffic

{
    my $WORKERS = 2;
    my $POOL = 4;

    my $srv = Txval::Redis->start_server(port => $restart_port,
                                         name => '220restart');
    my $ng = Txval::Nginx->new(name => 'r220restart', port => 1997);
    $ng->start(workers => $WORKERS, http => qq(
    txval_redis 127.0.0.1:$restart_port prefix=t220r: pool=$POOL;
) . server_block($ng->port, '
        location /t { txval; txval_velocity 1000000 60s; }
'));

    my $n = 0;
    my $batch = sub {
        my ($k) = @_;
        return map { outcome($_) }
               $ng->post_parallel('/t', map { tx(id => 'r' . ++$n) } 1 .. $k);
    };

    # warm up: every pooled connection used, then measure
    $batch->(16) for 1 .. 20;
    my @workers = $ng->workers;
    is scalar(@workers), $WORKERS, "$WORKERS workers";
    sleep 0.3;      # client connections closed on both sides
    my %rss0 = map { $_ => proc_status($_, 'VmRSS') } @workers;
    my %fds0 = map { $_ => nfds($_) } @workers;

    # background traffic: one request after another, each logged
    my $log = $ng->root . '/traffic.log';
    my $stop = $ng->root . '/traffic.stop';
    unlink $log, $stop;

    $traffic = fork // die "fork: $!\n";

    if ($traffic == 0) {
        open my $fh, '>', $log or POSIX::_exit(1);
        $fh->autoflush(1);
        my $i = 0;
        until (-e $stop || getppid() != $PARENT) {
            my $t0 = time;
            my $res = eval { $ng->post('/t', tx(id => "bg$$-" . $i++)) };
            printf $fh "%.6f %.6f %s\n", $t0, time,
                   $res ? $res->{status} : 'fail';
            sleep 0.002;
        }
        close $fh;
        POSIX::_exit(0);
    }

    my (@healed, @cycles, @bad_status, @slow_recovery, @not_all_ok, @too_many);

    for my $i (1 .. 20) {
        my $down = time;
        $srv->kill9;

        # traffic while it is down: 503s, quickly
        my @down = $batch->(4);
        push @bad_status, "cycle $i down: @down"
            if grep { $_ ne '503 backend_unavailable' } @down;
        sleep 0.05;

        $srv->restart;
        my $up = time;

        # the first batch in which all succeed
        my $healed;
        while (time - $up < 3) {
            my @o = $batch->(8);
            if (!grep { $_ ne '200 computed' } @o) {
                $healed = time - $up;
                last;
            }
            push @bad_status, "cycle $i recovering: @o"
                if grep { !/^(200 computed|503 backend_unavailable)$/ } @o;
            sleep 0.02;
        }

        push @healed, $healed // 9e9;
        push @slow_recovery, sprintf('cycle %d: %s', $i,
                                     $healed // 'never')
            if !defined $healed || $healed > $RECOVERY;

        # from the recovery bound on, every request succeeds
        my $left = $up + $RECOVERY - time;
        sleep $left if $left > 0;
        my @o = $batch->(16);
        push @not_all_ok, "cycle $i: @o" if grep { $_ ne '200 computed' } @o;

        my $r = Txval::Redis->client(port => $restart_port);
        my $clients = $r->info('clients')->{connected_clients} - 1;
        $r->close;
        push @too_many, "cycle $i: $clients" if $clients > $WORKERS * $POOL;

        push @cycles, [ $down, $up ];
    }

    open my $sfh, '>', $stop;
    close $sfh;
    waitpid $traffic, 0;
    undef $traffic;

    is_deeply \@bad_status, [], 'only 200 or 503 at any time';
    is_deeply \@slow_recovery, [],
              "after each restart all succeed again within $RECOVERY s";
    note sprintf 'recovery times: %s s',
                 join ' ', map { sprintf '%.3f', $_ } @healed;
    is_deeply \@not_all_ok, [], 'and from then on every request succeeds';
    is_deeply \@too_many, [],
              "Redis never sees more than workers x pool = "
              . $WORKERS * $POOL . " connections";

    # the background traffic
    open my $lfh, '<', $log or die "$log: $!\n";
    my @bg = map { [ split ' ' ] } <$lfh>;
    close $lfh;
    ok @bg > 100, 'background traffic ran (' . scalar(@bg) . ' requests)';

    my @bg_bad = grep { $_->[2] !~ /^(200|503)$/ } @bg;
    is_deeply \@bg_bad, [], 'background: only 200 or 503';
    my @bg_slow = grep { $_->[1] - $_->[0] > $SLOW } @bg;
    is_deeply \@bg_slow, [], "background: none took over $SLOW s";

    my @bg_fail;
    for my $c (0 .. $#cycles) {
        my $from = $cycles[$c][1] + $RECOVERY;
        my $to = $c < $#cycles ? $cycles[$c + 1][0] : 9e9;
        push @bg_fail, grep { $_->[0] >= $from && $_->[1] <= $to
                              && $_->[2] ne '200' } @bg;
    }
    is_deeply \@bg_fail, [],
              "background: every request $RECOVERY s after a restart succeeded";

    # the workers: the same processes, memory and descriptors flat
    is_deeply [ $ng->workers ], \@workers, 'no worker was replaced';

    $batch->(16) for 1 .. 5;
    sleep 0.3;
    for my $pid (@workers) {
        my $c = conns_to($pid, $restart_port);
        ok $c >= 0 && $c <= $POOL,
           "worker $pid holds $c connections to Redis (pool=$POOL)";
        my $rss = proc_status($pid, 'VmRSS');
        SKIP: {
            skip "RSS under a sanitizer or valgrind (quarantine)", 1
                if sanitized($pid);
            ok $rss <= $rss0{$pid} + $RSS_MARGIN,
               "worker $pid RSS flat: $rss0{$pid} kB -> $rss kB";
        }
        my $fds = nfds($pid);
        ok $fds <= $fds0{$pid} + $POOL,
           "worker $pid descriptors flat: $fds0{$pid} -> $fds";
    }

    # Redis down, no traffic: nothing spins
    $srv->kill9;
    $batch->(4);
    my %cpu0 = map { $_ => cpu_ticks($_) } @workers;
    sleep 1;
    for my $pid (@workers) {
        my $d = cpu_ticks($pid) - $cpu0{$pid};
        ok $d <= 2, "worker $pid idle while Redis is down ($d ticks in 1 s)";
    }

    $srv->restart;
    my $left = 0.3;
    sleep $left;
    is_deeply [ $batch->(8) ], [ ('200 computed') x 8 ], 'and back again';

    $ng->stop;
    my $elog = $ng->error_log;
    unlike $elog, qr/exited on signal/, 'no worker crashed';
    unlike $elog, qr/\[(alert|crit|emerg)\]/, 'no alert';
    like $elog, qr/txval: redis 127\.0\.0\.1:$restart_port: (connection lost|connect failed)/,
         'the failures were logged';

    $srv->stop;
}

done_testing;
