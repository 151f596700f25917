# Postgres faults, on a private Postgres cluster (its own port and data
# directory, so that stalling and restarting it disturbs no other test):
#
#   stalled    a psql session holds LOCK TABLE merchants IN ACCESS
#              EXCLUSIVE MODE: txval answers 503 within its 200ms budget,
#              another location of the same (single) worker answers
#              meanwhile, and once the lock is gone lookups work again at
#              once;
#   restarted  pg_ctl restart -m fast under traffic (2 workers, pool=3):
#              requests fail at most while it restarts, then all succeed,
#              no reload, the same workers; the server-side connection
#              count never exceeds workers x pool;
#   concurrent Postgres and Redis both slow (0.3 s each, from when each
#              gets the lookup): an uncached verdict takes about the max of
#              the two, not the sum.
#
# Postgres is slowed per query, not with a lock held for a fixed time: a
# fixed window would give "the max" even to lookups run one after the
# other (the second one starting when the window is already over). The
# conninfo's search_path puts a view t310_slow.merchants in front of
# public.merchants that sleeps t310_slow.knob seconds per query; Redis is
# reached through a small proxy that holds each INCR 0.3 s.
#
# Environment: TXVAL_T310_PG_PORT (16435), TXVAL_T310_REDIS_PORT (16395),
# TXVAL_PG_BIN (/usr/lib/postgresql/15/bin). Needs Postgres 15 and
# redis-server, as make test does.

use strict;
use warnings;

use lib 't/lib';
use Cwd qw(abs_path);
use File::Basename qw(dirname);
use IO::Select;
use IO::Socket::INET;
use POSIX qw(WNOHANG);
use Test::More;
use Time::HiRes qw(sleep time);
use Txval::Nginx;
use Txval::Postgres qw(as_postgres pg_dir psql_bg psql_wait
                        slowed_table_sql);
use Txval::Tx qw(tx_defaults tx reasons_of unavailable);

my $repo = abs_path(dirname(__FILE__) . '/..');
my $pg_port = $ENV{TXVAL_T310_PG_PORT} || 16435;
my $pg_dir = "$repo/build/test-pg-t310";
my $redis_port = $ENV{TXVAL_T310_REDIS_PORT} || 16395;
my $redis_dir = "$repo/build/test-redis-t310";
my $pg_bin = $ENV{TXVAL_PG_BIN} || '/usr/lib/postgresql/15/bin';
my $prefix = "t310.$$." . time() . ':';

my $port = 1931;
my $ng;

my ($proxy_pid, %children);
my $main_pid = $$;

sub services {
    my ($cmd) = @_;
    return system('bash', '-c', ". '$repo/scripts/services.sh' && $cmd") == 0;
}


# one SQL command as the superuser, over the socket; its output (-At)
# (psql's messages dropped: e.g. while Postgres restarts)
sub psql {
    return Txval::Postgres::psql($pg_dir, $pg_port, $_[0],
                                 stderr => '/dev/null');
}

# server-side connections of txval's user (nginx's pools)
sub backends { psql("SELECT count(*) FROM pg_stat_activity WHERE usename = 'txval'") }

END {
    return unless $$ == $main_pid;     # not in a forked helper
    my $status = $?;
    $ng->stop if $ng;
    kill 'TERM', $proxy_pid if $proxy_pid;
    for my $pid (keys %children) {
        kill 'TERM', $pid;
        waitpid $pid, 0;
    }
    services("txval_redis_stop '$redis_dir'");
    services("txval_pg_stop '$pg_dir'");
    $? = $status;
}

services("txval_pg_start $pg_port '$pg_dir'")
    or BAIL_OUT("cannot start Postgres on $pg_port in $pg_dir");
# the cluster's real directory: scripts/services.sh moves it out of a home
# directory of mode 0700, which postgres cannot reach, leaving a link
$pg_dir = pg_dir($pg_dir);
services("txval_pg_psql $pg_port '$pg_dir' < '$repo/t/fixtures.sql'")
    or BAIL_OUT('cannot load t/fixtures.sql');
services("txval_redis_start $redis_port '$redis_dir'")
    or BAIL_OUT("cannot start Redis on $redis_port");

defined psql(slowed_table_sql('t310_slow', 'merchants'))
    or BAIL_OUT('cannot create the t310_slow schema');


my $conninfo = "host=127.0.0.1 port=$pg_port dbname=txval user=txval"
               . " password=txval";

# a new id each ("f1", ...), USD 1000 of t_inactive with t_card_us
my $n = 0;
tx_defaults(id => sub { 'f' . ++$n }, merchant_id => 't_inactive',
            card_token => 't_card_us');

# the verdict's reasons ("approved" when none), or "<status> <error>"
sub outcome { return reasons_of($_[0]) }

sub unavailable_ok {
    my ($res, $what) = @_;
    return $res->{status} == 503
        && $res->{body} eq unavailable()
        && ($res->{headers}{'retry-after'} // '') eq '1';
}

sub timed {
    my ($code) = @_;
    my $t0 = time;
    my @r = $code->();
    return (time - $t0, @r);
}


# --- stalled: the table locked by another session ------------------------

$ng = Txval::Nginx->new(name => 't310stall', port => $port);

$ng->start(workers => 1, http => <<"HTTP");
    txval_postgres "$conninfo" pool=3 timeout=200ms;

    server {
        listen 127.0.0.1:$port;
        server_name localhost;

        location /t {
            txval;
        }

        location /plain {
            return 200 "plain\\n";
        }
    }
HTTP

is outcome($ng->post('/t', tx())), 'merchant_inactive',
   'stall: before the lock, Postgres answers';

my $holder = psql_bg($pg_dir, $pg_port,
                      'BEGIN; LOCK TABLE merchants IN ACCESS EXCLUSIVE MODE;'
                      . ' SELECT pg_sleep(3); COMMIT');

my $locked = 0;
for (1 .. 100) {
    $locked = psql("SELECT count(*) FROM pg_locks l JOIN pg_class c"
                   . " ON c.oid = l.relation WHERE c.relname = 'merchants'"
                   . " AND l.mode = 'AccessExclusiveLock' AND l.granted") // 0;
    last if $locked;
    sleep 0.02;
}
ok $locked, 'stall: the lock is held';
my $lock_t0 = time;

{
    # a lookup in flight on the pooled connection, a plain request meanwhile
    my $t0 = time;
    my $q = $ng->post_async('/t', tx());
    sleep 0.05;

    my ($plain_t, $plain) = timed(sub { $ng->request(GET => '/plain') });
    is "$plain->{status} $plain->{body}", "200 plain\n",
       'stall: /plain answers while a lookup waits';
    # (well inside the lookup's 200 ms: not queued behind it)
    cmp_ok $plain_t, '<', 0.14, 'stall: /plain answers at once';

    my $pending = !IO::Select->new($q->{sock})->can_read(0);
    ok $pending, 'stall: the lookup was still waiting when /plain answered';

    my $res = $ng->read_async($q);
    my $t = time - $t0;
    ok unavailable_ok($res), 'stall: 503 backend_unavailable, Retry-After: 1'
        or diag explain $res;
    cmp_ok $t, '>=', 0.15, 'stall: after the timeout (200ms)';
    cmp_ok $t, '<', 0.6, sprintf('stall: within budget (%.3f s)', $t);
}

{
    # a new connection: its PREPARE waits on the lock too
    my ($t, $res) = timed(sub { $ng->post('/t', tx()) });
    ok unavailable_ok($res), 'stall: a second lookup: 503 too';
    cmp_ok $t, '<', 0.6, sprintf('stall: within budget (%.3f s)', $t);

    # three at once (the pool's size)
    my @res;
    ($t, @res) = timed(sub { $ng->post_parallel('/t', map { tx() } 1 .. 3) });
    is scalar(grep { unavailable_ok($_) } @res), 3,
       'stall: three at once: 503 each';
    cmp_ok $t, '<', 0.6, sprintf('stall: within budget (%.3f s)', $t);

    # Known: a timed-out lookup's connection is closed on our side only;
    # its server backend goes on waiting for the lock (libpq 15 has no
    # non-blocking cancel), and the next lookup opens another. So while
    # the table stays locked, server-side connections grow by one per
    # timed-out lookup, past workers x pool.
    # a timed-out query's backend is ended by the statement_timeout
    # txval adds (2 x timeout), so the count stays bounded
    my $b = backends() // 99;
    cmp_ok $b, '<=', 3,
           "stall: at most pool=3 server-side connections while locked"
           . " ($b)";
}

# (held 3 s: all the above takes about 1 s, a loaded machine under ASan
# more; it must all have happened while the lock was there)
cmp_ok time - $lock_t0, '<', 2.7, 'stall: all that while the lock was held';

psql_wait($holder);

{
    my ($t, $res) = timed(sub { $ng->post('/t', tx()) });
    is outcome($res), 'merchant_inactive',
       'stall: the lock gone, Postgres answers again';
    cmp_ok $t, '<', 0.2, 'stall: at once';
    is outcome($ng->post('/t', tx(merchant_id => 't_active'))), 'approved',
       'stall: and again';
}

# a lookup past its deadline fails alone: its connection stays (the
# server ends the statement at statement_timeout, and the answer is
# dropped), and the lookups behind it on that connection go on
like $ng->error_log, qr/txval: postgres: query timed out$/m,
     'stall: the timed-out lookups were logged';
unlike $ng->error_log, qr/no answer for \d+ms, closing the connection/,
     'stall: the server always answered in the end (statement_timeout)';

{
    my $b;
    for (1 .. 50) {
        $b = backends() // 99;
        last if $b <= 3;
        sleep 0.05;
    }
    cmp_ok $b, '<=', 3, 'stall: then at most pool=3 server-side connections';
}

$ng->no_crash('stall');
$ng->stop;


# --- restarted under traffic: 2 workers, pool=3 --------------------------

$ng = Txval::Nginx->new(name => 't310restart', port => $port);

$ng->start(workers => 2, http => <<"HTTP");
    txval_postgres "$conninfo" pool=3 timeout=200ms;

    server {
        listen 127.0.0.1:$port reuseport;
        server_name localhost;

        location /t {
            txval;
            add_header X-Pid \$pid always;
        }

        location /plain {
            return 200 "plain\\n";
        }
    }
HTTP

my @workers = $ng->workers;
my $max_backends = 0;

sub sample_backends {
    my $b = backends();
    $max_backends = $b if defined $b && $b > $max_backends;
    return $b;
}

{
    my @res = $ng->post_parallel('/t', map { tx(merchant_id => 't_active') }
                                       1 .. 24);
    is scalar(grep { outcome($_) eq 'approved' } @res), 24,
       'restart: 24 at once before: all approved';
    my %pids = map { ($_->{headers}{'x-pid'} // '') => 1 } @res;
    diag 'restart: answered by workers ' . join ',', sort keys %pids;
    my $b = sample_backends();
    ok defined $b && $b >= 1 && $b <= 6,
       "restart: server-side connections before: $b (1..6)";
}

my ($restart_start, $restart_end);
my @log;    # [sent, answered, outcome]

{
    my $restarter = fork // die "fork: $!\n";

    if ($restarter == 0) {
        sleep 0.3;
        open STDOUT, '>', '/dev/null';
        exec as_postgres(), "$pg_bin/pg_ctl", '-D', $pg_dir, '-l',
             "$pg_dir/server.log", '-m', 'fast', '-w', 'restart'
            or POSIX::_exit(127);
    }

    $children{$restarter} = 1;
    my $forked = time;
    $restart_start = $forked + 0.3;
    my $batches = 0;

    while (1) {
        if (!defined $restart_end && waitpid($restarter, WNOHANG) == $restarter) {
            $restart_end = time;
            is $?, 0, 'restart: pg_ctl restart succeeded';
            delete $children{$restarter};
        }

        last if defined $restart_end && time > $restart_end + 1.0;
        last if time > $forked + 20;

        my $t0 = time;
        my @res = eval {
            $ng->post_parallel('/t', map { tx(merchant_id => 't_active') }
                                     1 .. 4);
        };
        my $t1 = time;
        push @log, map { [$t0, $t1, outcome($_), unavailable_ok($_)] } @res;
        push @log, [$t0, $t1, "no response: $@", 0] if $@;

        sample_backends() if ++$batches % 5 == 0;
    }

    ok defined $restart_end, 'restart: pg_ctl restart finished';
    $restart_end //= time;
}

{
    my @before = grep { $_->[1] < $restart_start } @log;
    my @during = grep { $_->[1] >= $restart_start
                        && $_->[0] <= $restart_end + 0.5 } @log;
    my @after = grep { $_->[0] > $restart_end + 0.5 } @log;

    diag sprintf 'restart: %.2f s; %d requests before, %d during'
                 . ' (%d failed), %d after',
                 $restart_end - $restart_start, scalar @before,
                 scalar @during,
                 scalar(grep { $_->[2] ne 'approved' } @during),
                 scalar @after;

    ok @before >= 4 && @after >= 8, 'restart: traffic before and after';

    my @bad = grep { $_->[2] ne 'approved' } @before, @after;
    is scalar(@bad), 0,
       'restart: every request before and after it is approved'
        or diag join "\n", map { sprintf '%.3f %s', $_->[0] - $restart_start,
                                         $_->[2] } @bad;

    @bad = grep { $_->[2] ne 'approved' && !$_->[3] } @during;
    is scalar(@bad), 0,
       'restart: meanwhile each is approved or 503 backend_unavailable'
        or diag join "\n", map { $_->[2] } @bad;
}

{
    my @res = $ng->post_parallel('/t', map { tx(merchant_id => 't_active') }
                                       1 .. 24);
    is scalar(grep { outcome($_) eq 'approved' } @res), 24,
       'restart: 24 at once after: all approved';
    is outcome($ng->post('/t', tx())), 'merchant_inactive',
       'restart: Postgres data again';
    sample_backends();
}

is_deeply [$ng->workers], \@workers, 'restart: the same workers (no reload)';
cmp_ok $max_backends, '<=', 6,
       "restart: at most 2 workers x pool=3 server-side connections"
       . " (max seen $max_backends)";
$ng->no_crash('restart');
$ng->stop;


# --- concurrent: Postgres and Redis slow, one verdict ---------------------

# Redis through a proxy that holds each INCR 0.3 s
sub delay_proxy {
    my ($to, $delay, $pattern) = @_;

    my $l = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0,
                                  Listen => 64, ReuseAddr => 1)
        or die "proxy listen: $!\n";
    my $lport = $l->sockport;

    my $pid = fork // die "fork: $!\n";
    if ($pid) {
        close $l;
        return ($pid, $lport);
    }

    # the child: never back into the test's code (nor its END blocks)
    $SIG{PIPE} = 'IGNORE';
    eval { proxy_loop($l, $to, $delay, $pattern) };
    POSIX::_exit(0);
}

sub proxy_loop {
    my ($l, $to, $delay, $pattern) = @_;

    my $sel = IO::Select->new($l);
    my (%peer, %client, %queue);     # by fileno

    my $drop = sub {
        my ($s) = @_;
        my @pair = ($s, $peer{fileno $s});
        for my $x (@pair) {
            next unless $x;
            my $fd = fileno $x;
            next unless defined $fd;
            $sel->remove($x);
            delete @{$_}{$fd} for \%peer, \%client, \%queue;
            close $x;
        }
    };

    while (1) {
        my $now = time;
        my $wait = 1;

        for my $fd (keys %queue) {
            my $q = $queue{$fd};
            while (@$q && $q->[0][0] <= $now) {
                my $item = shift @$q;
                my $dst = $peer{$fd} or last;
                my $off = 0;
                while ($off < length $item->[1]) {
                    my $w = syswrite $dst, $item->[1], 65536, $off;
                    last unless $w;
                    $off += $w;
                }
            }
            $wait = $q->[0][0] - $now if @$q && $q->[0][0] - $now < $wait;
        }

        for my $s ($sel->can_read($wait > 0 ? $wait : 0)) {
            next unless defined fileno $s;      # dropped with its peer

            if ($s == $l) {
                my $c = $l->accept or next;
                my $u = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                              PeerPort => $to,
                                              Proto => 'tcp');
                if (!$u) { close $c; next }
                $peer{fileno $c} = $u;
                $peer{fileno $u} = $c;
                $client{fileno $c} = 1;
                $queue{fileno $c} = [];
                $sel->add($c, $u);
                next;
            }

            my $got = sysread $s, my $buf, 65536;
            if (!$got) {
                $drop->($s);
                next;
            }

            my $fd = fileno $s;

            if ($client{$fd}) {
                my $q = $queue{$fd};
                my $due = time + ($buf =~ $pattern ? $delay : 0);
                $due = $q->[-1][0] if @$q && $q->[-1][0] > $due;
                push @$q, [$due, $buf];
            } else {
                syswrite $peer{$fd}, $buf;
            }
        }
    }
}

my $proxy_port;
($proxy_pid, $proxy_port) = delay_proxy($redis_port, 0.3, qr/\r\nINCR\r\n/);

$ng = Txval::Nginx->new(name => 't310concurrent', port => $port);

$ng->start(workers => 1, http => <<"HTTP");
    txval_postgres "$conninfo options=-csearch_path=t310_slow,public" pool=2 timeout=1s;
    txval_redis 127.0.0.1:$proxy_port prefix=$prefix timeout=1s connect_timeout=1s;

    server {
        listen 127.0.0.1:$port;
        server_name localhost;

        location /pg {
            txval;
        }

        location /both {
            txval_velocity 1000 1h;
            txval;
        }
    }
HTTP

sub knob { defined psql("UPDATE t310_slow.knob SET delay = $_[0]") or die "knob\n" }

sub verdict_time {
    my ($uri) = @_;
    my ($t, $res) = timed(sub { $ng->post($uri, tx(merchant_id => 't_active')) });
    is outcome($res), 'approved', "concurrent: $uri approved";
    return $t;
}

knob(0);
verdict_time('/both');      # connections made, statement prepared
verdict_time('/pg');

my $fast = verdict_time('/pg');
cmp_ok $fast, '<', 0.1, sprintf('concurrent: nothing slow: %.3f s', $fast);

my $redis_slow = verdict_time('/both');
ok $redis_slow >= 0.28 && $redis_slow < 0.5,
   sprintf('concurrent: Redis slow (0.3 s) alone: %.3f s', $redis_slow);

knob(0.3);

my $pg_slow = verdict_time('/pg');
ok $pg_slow >= 0.28 && $pg_slow < 0.5,
   sprintf('concurrent: Postgres slow (0.3 s) alone: %.3f s', $pg_slow);

for my $i (1 .. 3) {
    my $both = verdict_time('/both');
    ok $both >= 0.28 && $both < 0.5,
       sprintf('concurrent: both slow: %.3f s, the max (0.3), not the sum'
               . ' (0.6)', $both);
}

# a request refused (503) after its velocity count was made takes the
# count back: only transactions with a verdict count

sub velocity_count {
    my $keys = `redis-cli -p $redis_port --raw KEYS '${prefix}vel:t_card_us:*'`;
    my ($key) = split /\n/, $keys;
    return undef unless defined $key;
    my $v = `redis-cli -p $redis_port --raw GET '$key'`;
    chomp $v;
    return $v;
}

my $before = velocity_count();
ok defined $before && $before > 0, "undo: the card's count so far: $before";

knob(1.5);
my $res = $ng->post('/both', tx(merchant_id => 't_active'));
is outcome($res), '503 backend_unavailable',
   'undo: Postgres timed out after the count was made: 503';
knob(0);

my $after;
for (1 .. 20) {
    $after = velocity_count();
    last if defined $after && $after == $before;
    sleep 0.1;
}
is $after, $before, 'undo: the 503 took its count back (DECR)';

verdict_time('/both');
is velocity_count(), $before + 1, 'undo: the next verdict counts again';

$ng->no_crash('concurrent');
$ng->stop;

done_testing();
