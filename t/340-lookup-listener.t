# The lookup cache's listener (txval_lookup_cache ... notify=): one LISTEN
# connection per nginx instance, on a private Postgres cluster:
#
#   terminated   pg_terminate_backend() on the listener, and a change made
#                in the same breath; the listener then held down (the txval
#                role's CONNECTION LIMIT, the pool's connection still open):
#                txval_status and txval_lookup_listener_up say "down", the
#                cache is bypassed (every lookup asks Postgres, nothing is
#                kept) and changes made meanwhile are seen; once it is
#                back, the zone is emptied before it is used again, so
#                entries cached before the loss are asked for again and the
#                change is enforced (without the emptying, they would still
#                say "active");
#   restarted    pg_ctl restart: the listener comes back by itself, the
#                zone is emptied, changes are enforced again;
#   reload       nginx -s reload: a worker of the new configuration takes
#                the listener over while the old one still listens, the
#                old one confirms and leaves: the zone is not emptied (no
#                query for what was cached), and changes are enforced by the
#                new listener;
#   killed       the listening worker killed (SIGKILL): another worker
#                takes over, the zone is emptied, changes are enforced.
#
# Environment: TXVAL_T340_PG_PORT (16438), TXVAL_PG_BIN.

use strict;
use warnings;

use lib 't/lib';
use POSIX ();
use Test::More;
use Time::HiRes qw(sleep time);
use Txval::Lookup;
use Txval::Nginx;

my $valgrind = $ENV{TEST_NGINX_USE_VALGRIND};
my $slow = $valgrind ? 10 : 1;
# the pool's timeout: under valgrind a connect (SCRAM included) takes long
my $pg_timeout = $valgrind ? '5s' : '200ms';

my $port = 1934;
my $ng;
my $main_pid = $$;

my $pg = Txval::Lookup->cluster(name => 't340',
                                port => $ENV{TXVAL_T340_PG_PORT} || 16438);

END {
    return unless $$ == $main_pid;
    my $status = $?;
    $ng->stop if $ng;
    # a test that failed half-way must not leave the role limited
    $pg->psql('ALTER ROLE txval CONNECTION LIMIT -1');
    $? = $status;
}

sub psql { $pg->psql(@_) }
sub sql_ok { $pg->sql_ok(@_) }
sub calls { $pg->calls }
sub check { Txval::Lookup::check($ng, @_) }

sql_ok('ALTER ROLE txval CONNECTION LIMIT -1', 'connection limit');
sql_ok("DELETE FROM cards WHERE token LIKE 't340%'", 'clean');
sql_ok("INSERT INTO cards (token, status, country) SELECT 't340_' || c,"
       . " 'active', 'US' FROM unnest(ARRAY['a','b','c','d','e','f','g','h',"
       . "'i','j','k','l']) AS c", 'cards');

sub set_card {
    my ($card, $status) = @_;
    sql_ok("UPDATE cards SET status = '$status' WHERE token = 't340_$card'",
           "card $card $status");
}

sub card { check(card_token => "t340_$_[0]") }

sub eventually { Txval::Lookup::eventually(@_) }

sub listener_state { Txval::Lookup::listener_state($ng) }

sub listener_is { Txval::Lookup::listener_is($ng, @_) }

sub metric { $ng->metric($_[0]) // 'absent' }

sub flushed { metric('txval_lookup_cache_total{result="flushed"}') }

# cards cached: asked once each, then from the zone (a notification of
# their last change that comes after a lookup started keeps its answer
# out of the zone: then once more)
sub warm {
    my ($what, @cards) = @_;
    my ($c0, @got);
    for (1 .. 3) {
        @got = map { card($_) } @cards;
        $c0 = calls();
        push @got, map { card($_) } @cards;
        last if calls() == $c0;
    }
    is_deeply \@got, [('approved 0') x (2 * @cards)],
              "$what: cards looked up, and again";
    is calls(), $c0, "$what: from the zone (no query)";
}

sub enforced {
    my ($what, $card, $want) = @_;
    my ($t, $got) = eventually($want, 3 * $slow, sub { card($card) });
    is $got, $want, "$what: $want";
    return $t;
}

my $http = sub {
    my ($workers_note) = @_;
    my $conninfo = $pg->conninfo;
    return <<"HTTP";
    txval_postgres "$conninfo" pool=4 timeout=$pg_timeout;
    txval_lookup_cache t340:1m ttl=60s notify=txval;

    server {
        listen 127.0.0.1:$port reuseport;
        server_name localhost;

        location /t { txval; }
        location /status { txval_status; }
        location /metrics { txval_metrics; }
    }
HTTP
};


# --- terminated, held down, back ------------------------------------------

$ng = Txval::Nginx->new(name => 't340', port => $port, timeout => 10 * $slow,
                        valgrind => 1);
$ng->start(workers => 1, http => $http->());

ok listener_is('up', 5 * $slow), 'terminated: the listener is up';

warm('terminated', qw(a b));

{
    my $f0 = flushed();
    my $open = psql("SELECT count(*) FROM pg_stat_activity"
                    . " WHERE usename = 'txval'");
    is $open, 2, 'terminated: txval has two connections (pool, listener)';

    # the pool's connection stays; no new one until the limit goes
    sql_ok('ALTER ROLE txval CONNECTION LIMIT 1', 'limit');

    my $killed = psql(<<'SQL');
SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
 WHERE usename = 'txval'
   AND (query LIKE 'LISTEN%' OR query = 'SELECT 1');
UPDATE cards SET status = 'stolen' WHERE token = 't340_a';
SQL
    is $killed, 1, 'terminated: the listener\'s backend terminated, and a'
                   . ' card changed right after';

    ok listener_is('down', 3 * $slow), 'terminated: txval_status: down';
    is metric('txval_lookup_listener_up'), 0,
       'terminated: txval_lookup_listener_up 0';

    my $c0 = calls();
    is card('a'), 'card_blocked 0',
       'terminated: the change made meanwhile is seen (the cache is'
       . ' bypassed)';
    is card('a'), 'card_blocked 0', 'terminated: again';
    is calls(), $c0 + 2, 'terminated: each asked Postgres (nothing kept)';

    set_card('b', 'blocked');
    is card('b'), 'card_blocked 0',
       'terminated: a change made while it is down is seen at once';

    like $ng->error_log,
         qr/terminating connection due to administrator command[^\n]*\n[^\n]*txval: lookup cache: listener connection lost: [^\n]*, the cache is bypassed until it is back/,
         'terminated: the loss logged';
    like $ng->error_log,
         qr/\[warn\] [^\n]*: txval: lookup cache: postgres says: FATAL:  terminating connection due to administrator command\n/,
         'terminated: the server\'s notice logged at warn, one line, naming'
         . ' the lookup cache';

    sleep 0.5 * $slow;
    is listener_state(), 'down', 'terminated: still down while refused';
    like $ng->error_log, qr/too many connections for role "txval"/,
         'terminated: its reconnects are refused (the limit)';

    # back: the zone emptied before it is used again

    sql_ok('ALTER ROLE txval CONNECTION LIMIT -1', 'no limit');

    ok listener_is('up', 3 * $slow), 'back: txval_status: up';
    is flushed(), $f0 + 1, 'back: the zone was emptied (flushed + 1)';

    set_card('b', 'active');
    enforced('back: a change after it is back', 'b', 'approved 0');

    $c0 = calls();
    is card('a'), 'card_blocked 0',
       'back: what changed meanwhile is enforced (the old entry is gone)';
    is calls(), $c0 + 1, 'back: asked again';
    is card('a'), 'card_blocked 0', 'back: and kept again';
    is calls(), $c0 + 1, 'back: from the zone';

    like $ng->error_log,
         qr/txval: lookup cache: listening on channel "txval", the cache was emptied/,
         'back: logged';
}

$ng->no_crash('terminated');
$ng->stop_checked;


# --- Postgres restarted ---------------------------------------------------

set_card($_, 'active') for qw(a b c d);

$ng = Txval::Nginx->new(name => 't340restart', port => $port,
                        timeout => 10 * $slow, valgrind => 1);
$ng->start(workers => 2, http => $http->());

ok listener_is('up', 5 * $slow), 'restart: the listener is up';
warm('restart', qw(c d));

{
    my $f0 = flushed();

    ok $pg->ctl('restart'), 'restart: pg_ctl restart';

    # right after the restart, before the listener is back (it retries
    # after 200 ms at first)
    set_card('c', 'lost');

    ok listener_is('up', 5 * $slow), 'restart: the listener is up again';
    cmp_ok flushed(), '>=', $f0 + 1, 'restart: the zone was emptied';

    enforced('restart: the change made as it came back', 'c',
             'card_blocked 0');

    is card('d'), 'approved 0', 'restart: an entry from before: asked again';
    set_card('d', 'blocked');
    my $t = enforced('restart: a change after it', 'd', 'card_blocked 0');
    cmp_ok $t, '<', 0.5 * $slow, sprintf('restart: within %.3f s', $t);
}

$ng->no_crash('restart');


# --- nginx -s reload: handed over, not emptied ------------------------------

warm('reload', qw(e f));

{
    my $f0 = flushed();
    my @old = $ng->workers;
    my $off = -s $ng->error_log_path;

    ok $ng->reload(workers => 2, http => $http->()), 'reload: new workers';

    my $log = '';
    for (1 .. 100 * $slow) {
        $log = $ng->error_log_since($off);
        last if $log =~ /handed over, stopped listening/;
        sleep 0.05;
    }

    like $log, qr/listening on channel "txval", taken over from the worker before/,
         'reload: a new worker took the listener over';
    like $log, qr/handed over, stopped listening/,
         'reload: the old one confirmed and stopped';
    unlike $log, qr/did not confirm|emptying/, 'reload: nothing missed';

    ok listener_is('up', 3 * $slow), 'reload: up';
    is flushed(), $f0, 'reload: the zone was not emptied';

    my $c0 = calls();
    is_deeply [map { card($_) } qw(e f)], ['approved 0', 'approved 0'],
              'reload: cached entries answer';
    is calls(), $c0, 'reload: from the zone (it survived the reload)';

    set_card('e', 'stolen');
    my $t = enforced('reload: a change after it', 'e', 'card_blocked 0');
    cmp_ok $t, '<', 0.5 * $slow, sprintf('reload: within %.3f s', $t);

    my %old = map { $_ => 1 } @old;
    is scalar(grep { $old{$_} } $ng->workers), 0, 'reload: old workers gone';
}

$ng->no_crash('reload');


# --- the listening worker killed ------------------------------------------

warm('killed', qw(g h));

{
    my $f0 = flushed();

    # the owner: the last worker that said it listens
    my ($owner) = reverse($ng->error_log =~ /(\d+)#\d+: txval: lookup cache: listening on channel/g);
    ok $owner && kill(0, $owner), "killed: the listening worker: $owner";

    my $off = -s $ng->error_log_path;
    kill 'KILL', $owner;

    my $log = '';
    for (1 .. 100 * $slow) {
        $log = $ng->error_log_since($off);
        last if $log =~ /listening on channel "txval"/;
        sleep 0.05;
    }

    like $log, qr/the listening worker $owner is gone, the cache is bypassed/,
         'killed: noticed';
    like $log, qr/listening on channel "txval", the cache was emptied/,
         'killed: another worker listens, the zone emptied';
    ok listener_is('up', 3 * $slow), 'killed: up';
    cmp_ok flushed(), '>=', $f0 + 1, 'killed: flushed';

    set_card('g', 'blocked');
    my $t = enforced('killed: a change after it', 'g', 'card_blocked 0');
    cmp_ok $t, '<', 0.5 * $slow, sprintf('killed: within %.3f s', $t);
}

$ng->stop_checked;

done_testing();
