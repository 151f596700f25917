# txval_lookup_cache: the Postgres rows in shared memory, on a private
# Postgres cluster (its own port and data directory) that counts the
# lookup statement's executions (pg_stat_statements) and logs each one
# with its parameters (log_statement = all for the txval role):
#
#   hits       a new transaction of a known merchant, card and BIN costs
#              no query: the count stays, and with the three tables locked
#              by another session it is still answered at once (while a
#              lookup that needs Postgres waits for the lock);
#   partial    a partial hit asks Postgres only for what is missing, in one
#              round trip: the missing parts are the only parameters that
#              are not NULL;
#   negative   a merchant or card that is not there is kept as such, until
#              an INSERT says otherwise;
#   notify     every way a row changes (UPDATE of each column the rules
#              read, a key changed, DELETE, INSERT, TRUNCATE, a plain
#              pg_notify in SPEC's '<table>:<key>' format) is enforced soon
#              after the commit, and counted (invalidated, flushed, the lag
#              histogram);
#   ttl        without notify=, an entry is trusted until its ttl, and
#              never after;
#   lru        a full zone makes room with the entries read least
#              recently: the one in use stays (no query), the oldest is
#              asked for again;
#   metrics, readiness  txval_lookup_cache_total, the zone's gauges,
#              txval_lookup_listener_up, "lookup_listener" in txval_status.
#
# Environment: TXVAL_T330_PG_PORT (16437), TXVAL_PG_BIN
# (/usr/lib/postgresql/15/bin). Needs Postgres 15 with pg_stat_statements
# (Debian's postgresql-15 has it).

use strict;
use warnings;

use lib 't/lib';
use POSIX ();
use Test::More;
use Time::HiRes qw(sleep time);
use Txval::Lookup;
use Txval::Nginx;
use Txval::Postgres qw(psql_bg psql_wait slowed_table_sql);

my $valgrind = $ENV{TEST_NGINX_USE_VALGRIND};
my $slow = $valgrind ? 10 : 1;      # how much longer things may take
# the pool's timeout: under valgrind a connect (SCRAM included) takes long
my $pg_timeout = $valgrind ? '5s' : '200ms';

my $port = 1933;
my $ng;
my $main_pid = $$;

my $pg = Txval::Lookup->cluster(name => 't330',
                                port => $ENV{TXVAL_T330_PG_PORT} || 16437);
my $pg_dir = $pg->dir;

sub psql { $pg->psql(@_) }
sub sql_ok { $pg->sql_ok(@_) }
sub calls { $pg->calls }
sub reset_calls { sql_ok('SELECT pg_stat_statements_reset()', 'reset') }

END {
    return unless $$ == $main_pid;
    my $status = $?;
    $ng->stop if $ng;
    $? = $status;
}

sql_ok("ALTER ROLE txval SET log_statement = 'all'", 'log_statement');
sql_ok("DELETE FROM merchants WHERE id LIKE 't330%'", 'clean');
sql_ok("DELETE FROM cards WHERE token LIKE 't330%'", 'clean');
sql_ok("DELETE FROM blocked_bins WHERE bin LIKE '55555%'", 'clean');

my $conninfo = $pg->conninfo;

sub check { Txval::Lookup::check($ng, @_) }

# polls until check(@tx) gives $want (at most $within s); the time taken
sub eventually {
    my ($want, $within, @tx) = @_;
    return Txval::Lookup::eventually($want, $within, sub { check(@tx) });
}

sub metric { $ng->metric($_[0]) // 'absent' }

sub listener_up { Txval::Lookup::listener_is($ng, 'up', 5 * $slow) }

sub server_log_size { -s "$pg_dir/server.log" // 0 }

# the parameter lists of the lookups executed since offset
sub executed_since {
    my ($offset) = @_;
    open my $fh, '<', "$pg_dir/server.log" or return ();
    seek $fh, $offset, 0;
    local $/;
    my $log = <$fh> // '';
    close $fh;
    return $log =~ /execute txval_lookup: SELECT[^\n]*\n[^\n]*DETAIL:\s+parameters: ([^\n]*)/g;
}

my $http = sub {
    my ($lookup) = @_;
    return <<"HTTP";
    txval_postgres "$conninfo" pool=4 timeout=$pg_timeout;
    txval_lookup_cache $lookup;
    txval_amount_limit USD 1 100000;
    txval_amount_limit EUR 1 100000;
    txval_amount_limit GBP 1 100000;

    server {
        listen 127.0.0.1:$port reuseport;
        server_name localhost;

        location /t { txval; }
        location /status { txval_status; }
        location /metrics { txval_metrics; }
    }
HTTP
};


# --- hits: no query, also with the tables locked -------------------------

$ng = Txval::Nginx->new(name => 't330', port => $port,
                        timeout => 10 * $slow, valgrind => 1);
$ng->start(workers => 2, http => $http->('t330:1m notify=txval'));

ok listener_up(), 'the listener is up (txval_status)';
is metric('txval_lookup_listener_up'), 1, 'txval_lookup_listener_up 1';

reset_calls();

is check(merchant_id => 't_capped', card_bin => '12345678'), 'approved 0',
   'hits: the first transaction is computed from Postgres';
is calls(), 1, 'hits: one lookup';

{
    my @got = map { check(merchant_id => 't_capped', card_bin => '12345678',
                          amount => $_) } 1000, 6000, 12000;
    is_deeply \@got, ['approved 0', 'approved 30',
                      'merchant_limit_exceeded 30'],
              'hits: new transactions, the merchant\'s cap and the amount signal'
              . ' from the cached row';
    is calls(), 1, 'hits: still one lookup (no query for them)';
}

is check(merchant_id => 't_usd_eur', card_token => 't_card_stolen',
         country => 'US'), 'card_blocked 30', 'hits: another merchant and card';
is calls(), 2, 'hits: one more lookup';

{
    my @got = map { check(merchant_id => 't_usd_eur', currency => $_,
                          card_token => 't_card_stolen', country => 'US') }
              qw(EUR GBP USD);
    is_deeply \@got, ['card_blocked 30', 'currency_not_allowed,card_blocked 30',
                      'card_blocked 30'],
              'hits: the merchant\'s currencies, kept as a list, answer every'
              . ' currency';
    is calls(), 2, 'hits: no query for them';
}

{
    # the three tables locked by another session: hits answer at once,
    # a lookup that needs Postgres waits for the lock (and times out)

    my $holder = psql_bg($pg_dir, $pg->port,
                         'BEGIN; LOCK TABLE merchants, cards, blocked_bins IN'
                         . ' ACCESS EXCLUSIVE MODE; SELECT pg_sleep('
                         . ($valgrind ? 8 : 1.5) . '); COMMIT');
    my $locked = 0;
    for (1 .. 100) {
        $locked = psql("SELECT count(*) FROM pg_locks l JOIN pg_class c"
                       . " ON c.oid = l.relation WHERE c.relname IN"
                       . " ('merchants', 'cards', 'blocked_bins')"
                       . " AND l.mode = 'AccessExclusiveLock' AND l.granted")
                  // 0;
        last if $locked == 3;
        sleep 0.02;
    }
    is $locked, 3, 'locked: the three tables are locked';

    my $t0 = time;
    my @got = map { check(merchant_id => 't_capped', card_bin => '12345678') }
              1 .. 5;
    my $t = time - $t0;
    is_deeply \@got, [('approved 0') x 5],
              'locked: five transactions of known rows answered';
    cmp_ok $t, '<', 0.2 * $slow,
           sprintf('locked: at once (%.3f s for five), no query', $t);

    is check(merchant_id => 't_capped', card_token => 't_card_nocty'),
       '503 backend_unavailable',
       'locked: a card not cached needs Postgres, which waits for the lock';

    psql_wait($holder);

    # the lookup that waited for the lock runs once it is released (and
    # is logged then: its Bind waited too); wait for it, so that the
    # partial hits below see their own lookups only
    my $active = -1;
    for (1 .. 100) {
        $active = psql("SELECT count(*) FROM pg_stat_activity WHERE"
                       . " usename = 'txval' AND state <> 'idle'") // -1;
        last if $active == 0;
        sleep 0.05;
    }
    is $active, 0, 'locked: the lookup that waited has run';
}

$ng->no_crash('hits');


# --- partial hits: only the missing parts are asked for -------------------

{
    my $off = server_log_size();

    is check(merchant_id => 't_capped', card_token => 't_card_nocty',
             card_bin => '12345678'), 'approved 0',
       'partial: a known merchant and BIN, a new card';
    is check(merchant_id => 't_capped', card_token => 't_card_us',
             card_bin => '7777771'), 'bin_blocked 0',
       'partial: a known merchant and card, a new 7-digit BIN (777777 blocked)';
    is check(merchant_id => 't_closed', currency => 'EUR',
             card_token => 't_card_us', card_bin => '7777771'),
       'merchant_inactive,bin_blocked 0',
       'partial: a new merchant, a known card and BIN';
    is check(merchant_id => 't_closed', currency => 'EUR',
             card_token => 't_card_us', card_bin => '7777771'),
       'merchant_inactive,bin_blocked 0', 'partial: then all known';

    my @exec;
    for (1 .. 50) {
        @exec = executed_since($off);
        last if @exec >= 3;
        sleep 0.05;
    }

    is_deeply \@exec, [
        q($1 = NULL, $2 = 'USD', $3 = 't_card_nocty', $4 = NULL, $5 = NULL, $6 = NULL),
        q($1 = NULL, $2 = 'USD', $3 = NULL, $4 = '777777', $5 = '7777771', $6 = NULL),
        q($1 = 't_closed', $2 = 'EUR', $3 = NULL, $4 = NULL, $5 = NULL, $6 = NULL),
    ], 'partial: each lookup asked for what was missing only (the server'
       . ' log\'s parameters), the last none'
        or diag explain \@exec;
}


# --- negative entries ----------------------------------------------------

{
    my $c0 = calls();

    is check(merchant_id => 't330_m', card_token => 't330_c'),
       'merchant_unknown 20', 'negative: an unknown merchant and card';
    is check(merchant_id => 't330_m', card_token => 't330_c'),
       'merchant_unknown 20', 'negative: again';
    is calls(), $c0 + 1, 'negative: the absence was kept (one lookup)';

    sql_ok("INSERT INTO merchants (id, status) VALUES ('t330_m', 'active')",
           'insert');
    my ($t, $got) = eventually('approved 20', 2 * $slow,
                               merchant_id => 't330_m', card_token => 't330_c');
    is $got, 'approved 20', 'negative: an INSERT of the merchant drops its'
                            . ' absence';
    cmp_ok $t, '<', 0.5 * $slow, sprintf('negative: soon (%.3f s)', $t);

    sql_ok("INSERT INTO cards (token, status, country) VALUES"
           . " ('t330_c', 'active', 'DE')", 'insert');
    ($t, $got) = eventually('approved 30', 2 * $slow, merchant_id => 't330_m',
                            card_token => 't330_c', country => 'FR');
    is $got, 'approved 30', 'negative: and of the card (its country now known)';
}


# --- every way a row changes, enforced after the commit ------------------

sub change_enforced {
    my ($what, $sql, $before, $after, @tx) = @_;

    # (a notification of the change before that comes after a lookup
    # started keeps its answer out of the zone: then once more)
    my ($c0, @got);
    for (1 .. 3) {
        @got = (check(@tx));
        $c0 = calls();
        push @got, check(@tx);
        last if calls() == $c0;
    }
    is_deeply \@got, [$before, $before], "notify: $what: before";
    is calls(), $c0, "notify: $what: cached";

    sql_ok($sql, $what);
    my ($t, $got) = eventually($after, 2 * $slow, @tx);
    is $got, $after, "notify: $what: enforced";
    cmp_ok $t, '<', 0.5 * $slow, sprintf("notify: $what: within %.3f s", $t);
}

{
    my $inv0 = metric('txval_lookup_cache_total{result="invalidated"}');

    sql_ok("INSERT INTO merchants (id, status, max_amount, currencies) VALUES"
           . " ('t330_shop', 'active', NULL, '{USD,EUR}')", 'insert');
    sql_ok("INSERT INTO cards (token, status, country) VALUES"
           . " ('t330_card', 'active', 'US')", 'insert');

    my @tx = (merchant_id => 't330_shop', card_token => 't330_card',
              card_bin => '55555566');

    change_enforced('card blocked',
                    "UPDATE cards SET status = 'lost' WHERE token = 't330_card'",
                    'approved 0', 'card_blocked 0', @tx);
    change_enforced('card active again',
                    "UPDATE cards SET status = 'active' WHERE token = 't330_card'",
                    'card_blocked 0', 'approved 0', @tx);
    change_enforced('merchant suspended',
                    "UPDATE merchants SET status = 'suspended' WHERE id = 't330_shop'",
                    'approved 0', 'merchant_inactive 0', @tx);
    change_enforced('merchant active, with a cap',
                    "UPDATE merchants SET status = 'active', max_amount = 500"
                    . " WHERE id = 't330_shop'",
                    'merchant_inactive 0',
                    'merchant_limit_exceeded 30', @tx);
    change_enforced('currencies',
                    "UPDATE merchants SET max_amount = NULL, currencies ="
                    . " '{EUR}' WHERE id = 't330_shop'",
                    'merchant_limit_exceeded 30',
                    'currency_not_allowed 0', @tx);
    change_enforced('a BIN prefix blocked',
                    "INSERT INTO blocked_bins (bin, reason) VALUES"
                    . " ('5555556', 't330')",
                    'currency_not_allowed 0',
                    'currency_not_allowed,bin_blocked 0', @tx);
    change_enforced('the prefix unblocked',
                    "DELETE FROM blocked_bins WHERE bin = '5555556'",
                    'currency_not_allowed,bin_blocked 0',
                    'currency_not_allowed 0', @tx);
    change_enforced('the card\'s token changed: the old one is gone',
                    "UPDATE cards SET token = 't330_card2', status = 'stolen'"
                    . " WHERE token = 't330_card'",
                    'currency_not_allowed 0', 'currency_not_allowed 20', @tx);

    is check(@tx[0, 1], card_token => 't330_card2', card_bin => '55555566'),
       'currency_not_allowed,card_blocked 0',
       'notify: the card\'s token changed: the new one is known';

    change_enforced('merchant deleted',
                    "DELETE FROM merchants WHERE id = 't330_shop'",
                    'currency_not_allowed 20', 'merchant_unknown 20', @tx);

    # a notification in SPEC's plain format, as another trigger may send
    # it: the entry goes (nothing changed: the next lookup asks again)
    {
        my $c0 = calls();
        is check(@tx), 'merchant_unknown 20', 'notify: plain: cached';
        is calls(), $c0, 'notify: plain: no query';
        sql_ok("SELECT pg_notify('txval', 'cards:t330_card')", 'notify');
        my $t0 = time;
        my $c;
        while (time - $t0 < 2 * $slow) {
            check(@tx);
            $c = calls();
            last if $c > $c0;
            sleep 0.01;
        }
        is $c, $c0 + 1, "notify: plain 'cards:<token>': the entry was dropped"
                        . ' (asked again)';
    }

    my $inv = metric('txval_lookup_cache_total{result="invalidated"}');
    cmp_ok $inv - $inv0, '>=', 10,
           "notify: txval_lookup_cache_total{result=\"invalidated\"} counted"
           . ' ' . ($inv - $inv0);

    my $m = $ng->metrics;
    my $lag = $m->{values}{'txval_lookup_notify_lag_seconds_count'} // 0;
    cmp_ok $lag, '>=', 10, "notify: the lag histogram has $lag drops";
    my $le = $m->{values}{'txval_lookup_notify_lag_seconds_bucket{le="0.1"}'}
             // 0;
    # (most of them: under ASan on a busy machine, a few may be late)
    my $asan = $ENV{SANITIZE}
               || ($ENV{TEST_NGINX_BINARY} // '') =~ /-address$/;
    cmp_ok $le, '>=', ($valgrind ? 1 : $asan ? $lag * 0.5 : $lag * 0.9),
           "notify: $le of them within 100 ms";
}

{
    # TRUNCATE: every entry goes (a new generation), counted as a flush

    is check(card_bin => '88888881'), 'bin_blocked 0', 'truncate: cached';
    my $c0 = calls();
    is check(card_bin => '88888881'), 'bin_blocked 0', 'truncate: cached, again';
    is calls(), $c0, 'truncate: no query';

    my $f0 = metric('txval_lookup_cache_total{result="flushed"}');

    sql_ok('BEGIN; CREATE TEMP TABLE t330_bins AS SELECT * FROM blocked_bins;'
           . ' TRUNCATE blocked_bins; COMMIT', 'truncate');
    my ($t, $got) = eventually('approved 0', 2 * $slow, card_bin => '88888881');
    is $got, 'approved 0', 'truncate: enforced';
    is metric('txval_lookup_cache_total{result="flushed"}'), $f0 + 1,
       'truncate: one flush counted';

    $c0 = calls();
    is check(merchant_id => 't_capped'), 'approved 0',
       'truncate: a merchant cached before';
    is calls(), $c0 + 1, 'truncate: asked again (the whole zone went)';

    sql_ok("INSERT INTO blocked_bins (bin, reason) VALUES ('777777', 'six'),"
           . " ('8888888', 'seven'), ('99999999', 'eight')", 'restore');
    ($t, $got) = eventually('bin_blocked 0', 2 * $slow, card_bin => '88888881');
    is $got, 'bin_blocked 0', 'truncate: the rows back, enforced';
}


# --- metrics and readiness ------------------------------------------------

{
    my $m = $ng->metrics;
    my $v = $m->{values};

    is $m->{types}{txval_lookup_cache_total}, 'counter', 'metrics: TYPE';
    cmp_ok $v->{'txval_lookup_cache_total{result="hit"}'} // 0, '>=', 20,
           'metrics: hits';
    cmp_ok $v->{'txval_lookup_cache_total{result="miss"}'} // 0, '>=', 10,
           'metrics: misses';
    cmp_ok $v->{txval_lookup_cache_entries} // 0, '>', 5, 'metrics: entries';
    cmp_ok $v->{txval_lookup_cache_bytes_used} // 0, '>', 0,
           'metrics: bytes used';
    is $v->{txval_lookup_cache_size_bytes}, 1048576, 'metrics: zone size';
    is $v->{txval_lookup_cache_evictions_total}, 0, 'metrics: no eviction';
    is_deeply $m->{errors}, [], 'metrics: Prometheus text format';

    my $res = $ng->request(GET => '/status');
    is $res->{status}, 200, 'status: 200';
    like $res->{body},
         qr/"postgres":\{"state":"up","required":true\},"lookup_listener":\{"state":"up"\}\}\}/,
         'status: the listener, up';
}

$ng->no_crash('notify');
$ng->stop_checked;


# --- without notify=: the ttl is the only bound ---------------------------

{
    sql_ok("INSERT INTO cards (token, status) VALUES ('t330_ttl', 'active')"
           . " ON CONFLICT (token) DO UPDATE SET status = 'active'", 'insert');

    $ng = Txval::Nginx->new(name => 't330ttl', port => $port,
                            timeout => 10 * $slow, valgrind => 1);
    $ng->start(workers => 1, http => $http->('t330ttl:1m ttl=2s'));

    unlike $ng->request(GET => '/status')->{body}, qr/lookup_listener/,
           'ttl: no listener without notify=';
    is metric('txval_lookup_listener_up'), 'absent',
       'ttl: no txval_lookup_listener_up without notify=';

    my @tx = (card_token => 't330_ttl');
    my $t_cached = time;
    is check(@tx), 'approved 0', 'ttl: the card, cached';
    my $c0 = calls();

    sql_ok("UPDATE cards SET status = 'blocked' WHERE token = 't330_ttl'",
           'block');
    is check(@tx), 'approved 0',
       'ttl: right after the change the entry is still trusted (no notify=)';
    is calls(), $c0, 'ttl: from the zone';

    my ($t, $got) = eventually('card_blocked 0', 4 * $slow, @tx);
    my $age = time - $t_cached;
    is $got, 'card_blocked 0', 'ttl: enforced once the entry expired';
    cmp_ok $age, '<=', 2.0 + 0.3 * $slow,
           sprintf('ttl: never trusted past its ttl (refused %.2f s after it'
                   . ' was cached, ttl 2 s)', $age);
    cmp_ok $age, '>=', 1.9, 'ttl: and trusted until then';

    $ng->no_crash('ttl');
    $ng->stop_checked;
}


# --- a full zone: the least recently used entries make room --------------

# A 64k zone holds a few hundred entries; 400 new cards (an absence each)
# overflow it, while one card is asked for every tenth transaction: the
# entries nobody asked for again go first, the one in use stays.

{
    sql_ok("INSERT INTO cards (token, status) VALUES ('t330_keep', 'blocked')"
           . " ON CONFLICT (token) DO UPDATE SET status = 'blocked'",
           'insert');

    $ng = Txval::Nginx->new(name => 't330lru', port => $port,
                            timeout => 10 * $slow, valgrind => 1);
    $ng->start(workers => 1, http => $http->('t330lru:64k ttl=60s'));

    my @keep = (merchant_id => 't_capped', card_token => 't330_keep');
    my $kept = check(@keep);
    like $kept, qr/^card_blocked /, 'lru: the card in use, looked up';

    my ($n, %got) = (400);
    my $c_loop = calls();
    for my $i (1 .. $n) {
        $got{ check(merchant_id => 't_capped', card_token => "t330_lru_$i") }++;
        $got{ 'keep ' . check(@keep) }++ if $i % 10 == 0;
    }
    is_deeply [sort grep { !/^keep / } keys %got], ['approved 20'],
              "lru: $n new cards answered (unknown cards: approved, risk 20)";
    is_deeply [grep { /^keep / } keys %got], ["keep $kept"],
              'lru: the card in use, the same answer every time';
    is calls() - $c_loop, $n,
       'lru: one lookup per new card (the card in use, the merchant and the'
       . ' BIN were never asked for again)';

    my $v = $ng->metrics->{values};
    cmp_ok $v->{txval_lookup_cache_evictions_total} // 0, '>', 0,
           'lru: entries were evicted (txval_lookup_cache_evictions_total)';
    cmp_ok $v->{txval_lookup_cache_entries} // 9**9**9, '<', $n,
           'lru: the zone holds fewer entries than were stored';
    cmp_ok $v->{txval_lookup_cache_bytes_used} // 9**9**9, '<=', 65536,
           'lru: within its size';

    my $c0 = calls();
    is check(@keep), $kept, 'lru: the card in use, again';
    is calls(), $c0, 'lru: ... from the zone (it was kept)';
    is check(merchant_id => 't_capped', card_token => 't330_lru_1'),
       'approved 20', 'lru: the first new card, again';
    is calls(), $c0 + 1, 'lru: ... from Postgres (its absence was evicted)';

    $ng->no_crash('lru');
    $ng->stop_checked;
}


# --- a row read before a change is never kept after its notification ------

# The lookup reads the card, then waits (a view in front of public.cards,
# through the conninfo's search_path, reads first and sleeps after); the
# card changes meanwhile, and its notification is handled before the
# lookup's answer comes: that answer (the old row) serves its own
# transaction, but is not stored.

{
    sql_ok(slowed_table_sql('t330_slow', 'cards', after => 1)
           . "INSERT INTO cards (token, status) VALUES ('t330_race', 'active')"
           . " ON CONFLICT (token) DO UPDATE SET status = 'active';\n",
           'the slow view');

    my $slow_conninfo = "$conninfo options=-csearch_path=t330_slow,public";

    $ng = Txval::Nginx->new(name => 't330race', port => $port,
                            timeout => 10 * $slow, valgrind => 1);
    $ng->start(workers => 1, http => <<"HTTP");
    txval_postgres "$slow_conninfo" pool=4 timeout=5s;
    txval_lookup_cache t330race:1m ttl=60s notify=txval;

    server {
        listen 127.0.0.1:$port;
        server_name localhost;

        location /t { txval; }
        location /status { txval_status; }
        location /metrics { txval_metrics; }
    }
HTTP

    ok listener_up(), 'race: the listener is up';
    is check(), 'approved 0', 'race: connections ready';

    sql_ok('UPDATE t330_slow.knob SET delay = 0.6', 'slow');

    my $pid = fork // die "fork: $!\n";
    if ($pid == 0) {
        # once the lookup has read the cards and sleeps (its view reads
        # the rows, then sleeps: pg_stat_activity says PgSleep), the
        # card is blocked, and committed
        for (1 .. 1000) {
            last if ($pg->psql("SELECT count(*) FROM pg_stat_activity"
                               . " WHERE usename = 'txval'"
                               . " AND wait_event = 'PgSleep'") // 0) > 0;
            sleep 0.01;
        }
        $pg->psql("UPDATE cards SET status = 'blocked'"
                  . " WHERE token = 't330_race'");
        POSIX::_exit(0);
    }

    my $t0 = time;
    is check(card_token => 't330_race'), 'approved 0',
       'race: the lookup read the card before the change (its answer)';
    my $t = time - $t0;
    waitpid $pid, 0;
    cmp_ok $t, '>=', 0.5, sprintf('race: the lookup took %.2f s', $t);

    sql_ok('UPDATE t330_slow.knob SET delay = 0', 'fast');

    is check(card_token => 't330_race'), 'card_blocked 0',
       'race: the old row was not kept: the next lookup sees the change';

    $ng->no_crash('race');
    $ng->stop_checked;
}

done_testing();
