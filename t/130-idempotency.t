# One id, one verdict: a transaction still being validated is refused as
# in progress (409 idempotency_in_progress, Retry-After: 1) when it comes
# again, on the same worker, on another worker (the zone's mark) and on
# another host that shares the Redis (the Redis mark, SET NX GET); the copy
# is not counted toward velocity and never forwarded by a gate; the first
# verdict stored in Redis is never overwritten by a host that finishes
# later; marks are released when a request ends without a verdict (503, a
# degraded verdict under fail-open) and expire when their holder is gone.
# Also: fail-open is visible ($txval_degraded in the access log,
# X-Txval-Degraded, txval_degraded_total{backend}).
#
# Postgres is slowed per query: the conninfo's search_path puts a view
# t130_slow.merchants, which sleeps t130_slow.knob seconds, in front of
# public.merchants (in the suite's Postgres; nothing else uses the
# schema). The suite's Redis, with a prefix of this run's own.
#
# Needs the suite's Postgres (TEST_NGINX_PG_PORT, TEST_NGINX_PG_DIR) and
# Redis (TEST_NGINX_REDIS_PORT), as make test starts them. nginx on
# 1935-1938, the echo backend on 1939.

use strict;
use warnings;

use lib 't/lib';
use Cwd qw(abs_path);
use File::Basename qw(dirname);
use Test::More;
use Time::HiRes qw(sleep time);
use Txval::Echo;
use Txval::Nginx;
use Txval::Postgres qw(pg_dir slowed_table_sql);
use Txval::Redis;
use Txval::Tx qw(tx_defaults tx fingerprint outcome);

my $repo = abs_path(dirname(__FILE__) . '/..');
my $pg_port = $ENV{TEST_NGINX_PG_PORT} || 16432;
my $pg_dir = pg_dir($ENV{TEST_NGINX_PG_DIR} || "$repo/build/test-pg-$pg_port");
my $redis_port = $ENV{TEST_NGINX_REDIS_PORT} || 16390;
my $P = "t130.$$." . int(time) . ':';

my $redis = eval { Txval::Redis->client(port => $redis_port) }
    or BAIL_OUT("no Redis on $redis_port (make test starts it)");


sub psql { Txval::Postgres::psql($pg_dir, $pg_port, $_[0]) }

defined psql(slowed_table_sql('t130_slow', 'merchants'))
    or BAIL_OUT('cannot create the t130_slow schema');

sub knob { defined psql("UPDATE t130_slow.knob SET delay = $_[0]") or die "knob\n" }

my $conninfo = "host=127.0.0.1 port=$pg_port dbname=txval user=txval"
             . " password=txval options=-csearch_path=t130_slow,public";

my $echo = Txval::Echo->start(port => 1939);

sub http_config {
    my (%o) = @_;
    my $zone = $o{zone} // 'txval130';
    my $timeout = $o{timeout} // '2s';
    my $port = $o{port};
    my $echo_port = $echo->port;
    my $pg = $o{pg} // $conninfo;
    my $z = $o{nozone} ? '' : "txval_cache_zone $zone:1m;";

    return <<"HTTP";
    $z
    txval_redis 127.0.0.1:$redis_port prefix=$P timeout=1s;
    txval_postgres "$pg" timeout=$timeout;

    log_format decision '\$txval_id \$status \$txval_verdict '
                        'degraded=[\$txval_degraded]';

    server {
        listen 127.0.0.1:$port;
        server_name localhost;
        access_log logs/decision.log decision;

        location /t { txval; txval_velocity 100 60s; }
        location /open { txval; txval_fail_mode open; }
        location /pay {
            txval_gate;
            txval_fail_mode open;
            proxy_pass http://127.0.0.1:$echo_port;
        }
        location = /metrics { txval_metrics; }
    }
HTTP
}

my $n = 0;

sub new_id { sprintf 'i%d_%d', $$, ++$n }

tx_defaults(merchant_id => 't_active', card_token => 't_card_us');

# the value at a key once the fire-and-forget writes are in
sub settled {
    my ($key, $want) = @_;
    my $ok = defined $want ? sub { defined $_[0] && $_[0] =~ $want }
                           : sub { !defined $_[0] };
    return $redis->get_when($key, $ok, 2, 0.01);
}

my $RECORD = qr/^2;[0-9a-f]+;\d+;[0-9a-f]{32}$/;
my $MARK = qr/^p;[0-9a-f]{32}$/;

my $A = Txval::Nginx->new(name => 't130a', port => 1935);
my $B = Txval::Nginx->new(name => 't130b', port => 1936);

$A->start(http => http_config(port => 1935), workers => 2);

END { knob(0) if defined $pg_dir }


# --- 1. the same id, twice in flight, one worker or the other

{
    knob(0.5);
    my $id = new_id();
    my $first = $A->post_async('/t', tx(id => $id));
    sleep 0.15;

    like settled("${P}v:$id", $MARK) // '', $MARK,
       'while the first is validated, Redis holds its mark, p;<32 hex>';
    my $pttl = $redis->cmd(PTTL => "${P}v:$id");
    ok $pttl > 4000 && $pttl <= 5000, 'the mark lives 5 s at most'
        or diag "PTTL $pttl";

    my $second = $A->post('/t', tx(id => $id));
    is outcome($second), '409 idempotency_in_progress',
       'the same id again meanwhile: 409 idempotency_in_progress';
    is $second->{headers}{'retry-after'}, '1', 'with Retry-After: 1';
    is $second->{body},
       qq({"error":"idempotency_in_progress","id":"$id","detail":"a )
       . qq(transaction with this id is being validated, retry later"}\n),
       'the body names the id';

    is outcome($A->post('/t', tx(id => $id, amount => 2000))),
       '409 idempotency_in_progress',
       'other content meanwhile: in progress too (the first may still fail)';

    is outcome($A->read_async($first)), '200 computed', 'the first: computed';
    knob(0);

    like settled("${P}v:$id", $RECORD) // '', $RECORD,
         'the verdict replaced the mark';
    is outcome($A->post('/t', tx(id => $id))), '200 shm',
       'afterwards: the verdict, replayed';
    is outcome($A->post('/t', tx(id => $id, amount => 2000))),
       '409 idempotency_conflict', 'other content afterwards: a conflict';
}

# six copies at once on two workers: one verdict, counted once

{
    knob(0.4);
    my $id = new_id();
    my @res = $A->post_parallel('/t', (tx(id => $id)) x 6);
    knob(0);

    my %seen;
    $seen{ outcome($_) }++ for @res;
    is_deeply \%seen, { '200 computed' => 1, '409 idempotency_in_progress' => 5 },
              'six copies in flight at once: one computed, five in progress'
        or diag explain \%seen;
}

{
    # the velocity count: each id once
    my $card = 'tok_once_' . $$;
    knob(0.4);
    my $id = new_id();
    my $w0 = int(time / 60);
    my @res = $A->post_parallel('/t', (tx(id => $id, card_token => $card)) x 4);
    my $w1 = int(time / 60);
    knob(0);
    my $count = ($redis->cmd(GET => "${P}vel:$card:$w0") // 0)
              + ($w1 != $w0 ? ($redis->cmd(GET => "${P}vel:$card:$w1") // 0) : 0);
    is $count, 1, 'four copies in flight: the card counted once';
    is outcome($A->post('/t', tx(id => $id, card_token => $card))),
       '200 shm', 'and the replay afterwards counts nothing';
    $count = ($redis->cmd(GET => "${P}vel:$card:$w0") // 0)
           + ($w1 != $w0 ? ($redis->cmd(GET => "${P}vel:$card:$w1") // 0) : 0);
    is $count, 1, '... still 1';
}


# --- 2. another host, sharing Redis but not shm

$B->start(http => http_config(port => 1936, zone => 'txval130b'));

{
    knob(0.5);
    my $id = new_id();
    my $first = $A->post_async('/t', tx(id => $id));
    sleep 0.15;

    is outcome($B->post('/t', tx(id => $id))), '409 idempotency_in_progress',
       'host B, while host A validates the id: in progress (Redis mark)';
    is outcome($A->read_async($first)), '200 computed', 'host A: computed';
    knob(0);
    settled("${P}v:$id", $RECORD);
    is outcome($B->post('/t', tx(id => $id))), '200 redis',
       'host B afterwards: A\'s verdict, from Redis';
}

# the first verdict stored stays: a host that finishes later does not
# overwrite it. A request that set its mark less than 2.5 s before (half
# the mark's life) writes its verdict over the mark with SET XX (nobody
# else can have replaced a live mark); one that took longer goes through
# the script, which keeps whatever is not its own mark. Here host D takes
# 2.7 s, and meanwhile another host's verdict takes the key (as when D's
# mark expired and the other one won).

{
    my $D = Txval::Nginx->new(name => 't130d', port => 1938);
    $D->start(http => http_config(port => 1938, zone => 'txval130d',
                                  timeout => '5s'));

    knob(2.7);
    my $id = new_id();
    my $first = $D->post_async('/t', tx(id => $id));
    sleep 0.15;

    like settled("${P}v:$id", $MARK) // '', $MARK, 'D holds the mark';

    # another host's verdict of the same content: declined (velocity)
    my $other = '2;100;20;' . fingerprint(id => $id);
    $redis->cmd(SET => "${P}v:$id", $other, 'EX', 600);

    is outcome($D->read_async($first)), '200 computed',
       'D computes its own verdict (approved), after 2.7 s, and answers it';
    knob(0);
    sleep 0.2;
    is $redis->cmd(GET => "${P}v:$id"), $other,
       'but the verdict stored first stays in Redis: D did not overwrite it';
    my $res = $B->post('/t', tx(id => $id));
    is outcome($res), '402 redis', 'host B gives the stored verdict';
    like $res->{body}, qr/"reasons":\["velocity_exceeded"\],"risk_score":20/,
         '... with its reasons and score';

    $D->stop;
    unlike $D->error_log, qr/\[(alert|crit|emerg)\]|exited on signal/,
           'D: no alert, no crash';
}


# --- 3. marks released: a 503, a degraded verdict; and expired

{
    my $C = Txval::Nginx->new(name => 't130c', port => 1937);
    $C->start(http => http_config(port => 1937, zone => 'txval130c',
                                  timeout => '200ms'));

    knob(0.5);
    my $id = new_id();
    is outcome($C->post('/t', tx(id => $id))), '503 backend_unavailable',
       'Postgres too slow, failing closed: 503';
    is settled("${P}v:$id"), undef, 'the Redis mark is released';
    knob(0);
    sleep 0.6;      # the timed-out query's connection is gone
    is outcome($C->post('/t', tx(id => $id))), '200 computed',
       'the retry is validated (the zone\'s mark is released too)';

    # fail-open: degraded, cached nowhere, marks released, visible
    my $m0 = $C->metrics->{values};
    knob(0.5);
    my $d = new_id();
    my $res = $C->post('/open', tx(id => $d));
    is outcome($res), '200 computed', 'failing open: approved';
    like $res->{body}, qr/"degraded":true/, 'degraded';
    is settled("${P}v:$d"), undef, 'no verdict, no mark in Redis';
    $res = $C->post('/open', tx(id => $d));
    like $res->{body}, qr/"source":"computed".*"degraded":true/,
         'the retry is computed again (cached nowhere), not in progress';

    # the gate forwards a degraded approval with X-Txval-Degraded: true
    $echo->reset;
    my $g = new_id();
    $res = $C->post('/pay', tx(id => $g), 'X-Txval-Degraded' => 'false');
    knob(0);
    is $res->{status}, 200, 'gate, failing open: forwarded';
    my @reqs = $echo->requests;
    is scalar(@reqs), 1, 'the upstream got it once';
    is_deeply [ Txval::Echo::header($reqs[0], 'X-Txval-Degraded') ], [ 'true' ],
              'with X-Txval-Degraded: true (the client\'s own dropped)';

    my $m1 = $C->metrics->{values};
    my $key = 'txval_degraded_total{backend="postgres"}';
    is $m1->{$key} - ($m0->{$key} // 0), 3,
       'txval_degraded_total{backend="postgres"} counted the three';
    is $m1->{'txval_degraded_total{backend="redis"}'}, 0, 'redis: 0';

    $C->stop;
    open my $fh, '<', $C->root . '/logs/decision.log' or die;
    my @lines = <$fh>;
    close $fh;
    is scalar(grep { /^\Q$d\E 200 approved degraded=\[1\]$/ } @lines), 2,
       'the access log: $txval_degraded is 1 for the degraded verdicts';
    ok scalar(grep { /^\Q$id\E 200 approved degraded=\[\]$/ } @lines),
       '... and empty for a verdict with every rule';
}

{
    # a mark whose holder went away (a host killed) expires
    my $id = new_id();
    $redis->cmd(SET => "${P}v:$id", 'p;' . ('ab' x 16), 'PX', 400);
    is outcome($A->post('/t', tx(id => $id))), '409 idempotency_in_progress',
       'another host\'s live mark: in progress';
    sleep 0.5;
    is outcome($A->post('/t', tx(id => $id))), '200 computed',
       'once it expired: validated';
}

# --- 4. gate mode: the copy in flight is never forwarded

{
    knob(0.5);
    $echo->reset;
    my $id = new_id();
    my $first = $A->post_async('/pay', tx(id => $id));
    sleep 0.15;
    my $res = $A->post('/pay', tx(id => $id));
    is outcome($res), '409 idempotency_in_progress',
       'gate: the copy in flight is answered 409 by txval';
    is $A->read_async($first)->{status}, 200, 'the first is forwarded';
    knob(0);
    is scalar($echo->requests), 1, 'the upstream got one request';
}

$A->stop;
$B->stop;
$echo->stop;

for my $ng ($A, $B) {
    unlike $ng->error_log, qr/\[(alert|crit|emerg)\]|exited on signal/,
           "$ng->{name}: no alert, no crash";
}

done_testing;
