# The lookup cache across a Postgres failover (t/720's set-up: a primary
# and its streaming replica, t/lib/Txval/PgPair.pm, both with the
# triggers of docker/initdb/03-notify.sql): txval reads and listens on
# "host=replica,primary target_session_attrs=read-write".
#
# Before: the listener is up on the primary, cached rows answer, a change
# is enforced. The primary stopped (pg_ctl stop -m immediate): the
# listener is lost, txval_status says so, the cache is not used (lookups
# fail closed with 503, as without a cache: nothing is answered from
# rows nobody keeps true). The replica promoted (pg_ctl promote): the
# listener is back, on the new primary, the zone was emptied, lookups
# succeed again, and a change made on the new primary is enforced soon
# after its commit.
#
# Ports: TXVAL_T725_PG_PORT (17301: the primary, +1 the replica).

use strict;
use warnings;

use lib 't/lib';
use Test::More;
use Time::HiRes qw(sleep time);
use Txval::Lookup;
use Txval::Nginx;
use Txval::PgPair;

my $valgrind = $ENV{TEST_NGINX_USE_VALGRIND};
my $slow = $valgrind ? 10 : 1;
my $base = $ENV{TXVAL_T725_PG_PORT} || 17301;
my $port = 1961;
my $ng;
my $main_pid = $$;

END {
    return unless $$ == $main_pid;
    my $status = $?;
    $ng->stop if $ng;
    $? = $status;
}

my $pair = eval {
    Txval::PgPair->start(name => 't725', primary => $base,
                         replica => $base + 1);
};
BAIL_OUT("cannot make the Postgres pair: $@") unless $pair;

defined $pair->psql(primary => "INSERT INTO cards (token, status, country)"
                               . " VALUES ('t725_a', 'active', 'US'),"
                               . " ('t725_b', 'active', 'US')")
    or BAIL_OUT('cannot insert the cards');
$pair->caught_up or BAIL_OUT('the replica does not catch up');

sub card { Txval::Lookup::check($ng, card_token => "t725_$_[0]") }

sub eventually { Txval::Lookup::eventually(@_) }

sub listener_state { Txval::Lookup::listener_state($ng) }

sub flushed {
    return $ng->metric('txval_lookup_cache_total{result="flushed"}') // -1;
}

my ($p, $r) = ($base, $base + 1);

$ng = Txval::Nginx->new(name => 't725', port => $port, timeout => 10 * $slow);
$ng->start(workers => 2, http => <<"HTTP");
    txval_postgres "host=127.0.0.1,127.0.0.1 port=$r,$p dbname=txval user=txval password=txval target_session_attrs=read-write" pool=4 timeout=200ms;
    txval_lookup_cache t725:1m ttl=60s notify=txval;

    server {
        listen 127.0.0.1:$port reuseport;
        server_name localhost;

        location /t { txval; }
        location /status { txval_status; }
        location /metrics { txval_metrics; }
    }
HTTP

my ($t, $got) = eventually('up', 5 * $slow, \&listener_state);
is $got, 'up', 'before: the listener is up (on the primary)';

is_deeply [map { card($_) } qw(a b a b)], [('approved 0') x 4],
          'before: the cards, looked up and cached';

defined $pair->psql(primary => "UPDATE cards SET status = 'lost'"
                               . " WHERE token = 't725_a'")
    or BAIL_OUT('update');
($t, $got) = eventually('card_blocked 0', 2 * $slow, sub { card('a') });
is $got, 'card_blocked 0', 'before: a change on the primary is enforced';
cmp_ok $t, '<', 0.5 * $slow, sprintf('before: within %.3f s', $t);

ok $pair->caught_up, 'the replica caught up';

my $f0 = flushed();

ok $pair->stop_immediate('primary'), 'the primary stopped';

($t, $got) = eventually('down', 3 * $slow, \&listener_state);
is $got, 'down', 'switch: the listener is lost (txval_status)';
is $ng->metric('txval_lookup_listener_up'), 0,
   'switch: txval_lookup_listener_up 0';
is card('b'), '503 backend_unavailable',
   'switch: no primary: the cache is not used, the lookup fails closed';

ok $pair->promote('replica'), 'the replica promoted';

($t, $got) = eventually('up', 5 * $slow, \&listener_state);
is $got, 'up', sprintf('after: the listener is back, on the new primary'
                       . ' (%.2f s after the promotion)', $t);
cmp_ok flushed(), '>=', $f0 + 1, 'after: the zone was emptied';

# each worker's pool comes back on its own (one may still be failing fast
# after its last failed connect): eight answers in a row, on both workers
($t, $got) = eventually('approved 0', 3 * $slow, sub {
    my @r = map { card('b') } 1 .. 8;
    return (grep { $_ ne 'approved 0' } @r)[0] // 'approved 0';
});
is $got, 'approved 0', 'after: lookups succeed again';
# (a stale 'approved 0' would stay; only a 503 from a worker still coming
# back is waited out)
($t, $got) = eventually('card_blocked 0', 1 * $slow, sub { card('a') });
is $got, 'card_blocked 0', 'after: the change made before is there';

defined $pair->psql(replica => "UPDATE cards SET status = 'stolen'"
                               . " WHERE token = 't725_b'")
    or BAIL_OUT('update on the new primary');
($t, $got) = eventually('card_blocked 0', 2 * $slow, sub { card('b') });
is $got, 'card_blocked 0', 'after: a change on the new primary is enforced';
cmp_ok $t, '<', 0.5 * $slow, sprintf('after: within %.3f s', $t);

like $ng->error_log,
     qr/txval: lookup cache: listening on channel "txval", the cache was emptied/,
     'after: logged';
unlike $ng->error_log, qr/exited on signal|\[alert\]/,
       'no worker crash, no alert';

$ng->stop;

done_testing();
