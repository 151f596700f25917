# Postgres primary/replica: multi-host conninfos (target_session_attrs
# read-write, any, standby) on a real pair, a server that hangs, host
# names in a list, and a failover of the primary under traffic.
#
# The file makes its own pair (t/lib/Txval/PgPair.pm), from Debian's
# Postgres 15: a primary and a streaming replica made with
# pg_basebackup -R, data under build/test-pg-t720/, on loopback:
#
#   17201  the primary
#   17202  the replica
#   17203  a server that accepts and never answers
#   17204  a proxy to the replica, 17205 one to the primary, that hide
#          in_hot_standby from libpq (so that libpq has to ask)
#   17206  nothing (refused)
#
# (TXVAL_T720_PG_PORT moves them all: base, base + 1, ...). Which server
# answered shows in the verdicts: replay is paused on the replica while
# the primary gets the merchant t720_new, so a lookup of t720_new is
# approved on the primary and merchant_unknown on the replica (replay
# resumes before the failover).
#
# The failover (last block): two workers answer a steady stream of new
# transactions (up to 400 a second, four at a time, each one a Postgres
# lookup) while the primary is stopped (pg_ctl stop -m immediate) and,
# half a second later, the replica promoted (pg_ctl promote). Before the
# stop every transaction is approved; the only other answer is SPEC's
# 503 backend_unavailable, and only from the stop until shortly after the
# promotion ($Grace); after that every transaction is approved again, on
# connections to the new primary (a merchant written there after the
# promotion is found), no reload, no worker lost; the error log has
# nothing but the expected lines.

use lib 't/lib';
# no_plan: the blocks check different numbers of things (requests,
# headers, log lines), so no plan of repeat_each() * blocks() * N fits
use Test::Txval 'no_plan';
use IO::Select;
use IO::Socket::INET;
use POSIX ();
use Time::HiRes qw(sleep time);
use Txval::Nginx;
use Txval::PgPair;
use Txval::Tx qw(tx_defaults tx post computed unavailable);

our ($Pair, $Base, $Grace, $Proxy_log);

BEGIN {
    $Base = $ENV{TXVAL_T720_PG_PORT} || 17201;
    $ENV{TEST_NGINX_T720_PRIMARY} = $Base;
    $ENV{TEST_NGINX_T720_REPLICA} = $Base + 1;
    $ENV{TEST_NGINX_T720_HANG} = $Base + 2;
    $ENV{TEST_NGINX_T720_PROXY_REPLICA} = $Base + 3;
    $ENV{TEST_NGINX_T720_PROXY_PRIMARY} = $Base + 4;
    $ENV{TEST_NGINX_T720_REFUSED} = $Base + 5;

    # the connect timeout of the hanging-server block; under valgrind a
    # connect (SCRAM included) takes far longer
    $ENV{TEST_NGINX_T720_HANG_TIMEOUT} =
        $ENV{TEST_NGINX_USE_VALGRIND} ? '5s' : '300ms';

    # how long after the promotion a 503 may still be answered: the pool's
    # 200ms of failing fast after a failed connect, and a connect
    $Grace = $ENV{TEST_NGINX_USE_VALGRIND} ? 8 : 1.5;
}

$Pair = eval {
    Txval::PgPair->start(name => 't720', primary => $Base,
                         replica => $Base + 1);
};
Test::More::BAIL_OUT("cannot make the Postgres pair: $@") unless $Pair;

# t720_new: on the primary only, while the replica does not replay
$Pair->pause_replay or Test::More::BAIL_OUT('cannot pause replay');
defined $Pair->psql(primary => "INSERT INTO merchants (id, status)"
                               . " VALUES ('t720_new', 'active')")
    or Test::More::BAIL_OUT('cannot insert t720_new');
Test::More::BAIL_OUT('the replica sees t720_new')
    if ($Pair->psql(replica => "SELECT count(*) FROM merchants"
                               . " WHERE id = 't720_new'") // '') ne '0';

# the hanging server: connections wait in its backlog, never accepted
our $Hang = IO::Socket::INET->new(LocalAddr => '127.0.0.1',
                                  LocalPort => $Base + 2,
                                  Listen => 128, ReuseAddr => 1)
    or Test::More::BAIL_OUT("cannot listen on " . ($Base + 2) . ": $!");

$Proxy_log = $Pair->{top} . '/proxy.log';
Txval::PgPair->hiding_proxy(listen => $Base + 3, to => $Base + 1,
                            log => $Proxy_log);
Txval::PgPair->hiding_proxy(listen => $Base + 4, to => $Base,
                            log => $Proxy_log);

master_on();
log_level('info');
check_accum_error_log();
no_shuffle();

# one worker, or a block's --- workers: a server that timed out is
# passed over by the pool of the worker that saw it time out
add_block_preprocessor(sub { workers($_[0]->workers // 1) });

# a block's --- proxy_log: the queries libpq sent through the proxies
# (then forgotten, for the next block)
add_response_body_check(sub {
    my ($block, $body, $req_idx, $repeated_req_idx, $dry_run) = @_;

    return unless defined $block->proxy_log;

    my $log = '';
    if (open my $fh, '<', $Proxy_log) {
        local $/;
        $log = <$fh>;
        close $fh;
    }
    unlink $Proxy_log;

    Test::More::is($log, $block->proxy_log,
                   $block->name . " - the queries libpq asked through the"
                   . " proxies (req $req_idx)");
});

# a new id each, USD 1000 of t_active with t_card_us unless told otherwise
my $n = 0;
tx_defaults(id => sub { "t720.$$." . ++$n }, merchant_id => 't_active',
            card_token => 't_card_us');


# --- the failover, under traffic (the last block's init)

sub failover {
    my $client = Txval::Nginx->new(name => 't720client',
                                   port => server_port(),
                                   timeout => 30);
    my $is_503 = sub {
        my ($res) = @_;
        return $res->{status} == 503 && $res->{body} eq unavailable()
               && ($res->{headers}{'retry-after'} // '') eq '1';
    };

    # the replica must have all the primary has before it takes over
    Test::More::ok($Pair->resume_replay, 'failover: the replica caught up');

    my $t0 = time;
    my $before = $ENV{TEST_NGINX_USE_VALGRIND} ? 3 : 1;

    # the failover, by a child; its times come back through a pipe
    pipe my $rd, my $wr or die "pipe: $!\n";
    my $actor = fork // die "fork: $!\n";

    if ($actor == 0) {
        close $rd;
        sleep $before;
        syswrite $wr, sprintf "stop %.6f\n", time;
        $Pair->stop_immediate('primary');
        syswrite $wr, sprintf "stopped %.6f\n", time;
        sleep 0.5;
        syswrite $wr, sprintf "promote %.6f\n", time;
        my $ok = $Pair->promote('replica');
        syswrite $wr, sprintf "promoted %.6f %d\n", time, $ok ? 1 : 0;
        POSIX::_exit(0);
    }

    close $wr;
    my $sel = IO::Select->new($rd);
    my (%at, $promote_ok, @log, $actor_done);
    my $next = 0;
    my $buf = '';

    while (1) {
        while ($sel->can_read(0)) {
            my $got = sysread $rd, $buf, 4096, length $buf;
            last unless $got;
        }
        while ($buf =~ s/^(\w+) ([\d.]+)(?: (\d))?\n//) {
            $at{$1} = $2;
            $promote_ok = $3 if $1 eq 'promoted';
        }

        if (!$actor_done && waitpid($actor, POSIX::WNOHANG()) == $actor) {
            $actor_done = 1;
        }

        last if defined $at{promoted} && time > $at{promoted} + $Grace + 1.5;
        last if time > $t0 + ($ENV{TEST_NGINX_USE_VALGRIND} ? 90 : 30);

        # four new transactions at once, each a Postgres lookup, at most
        # every 10 ms (400 a second)
        sleep $next - time if $next > time;
        $next = time + 0.01;

        my $sent = time;
        my @res = eval { $client->post_parallel('/t', map { tx() } 1 .. 4) };
        my $done = time;

        if ($@) {
            push @log, [$sent, $done, "no response: $@", 0];
            next;
        }

        push @log, map {
            [$sent, $done,
             $_->{status} == 200 ? 'approved'
             : $is_503->($_) ? '503' : "$_->{status} $_->{body}",
             $_->{status}]
        } @res;
    }

    waitpid $actor, 0 unless $actor_done;

    Test::More::ok(defined $at{stopped}, 'failover: the primary stopped');
    Test::More::ok($promote_ok, 'failover: the replica promoted');

    my $stop = $at{stop} // $t0;
    my $promoted = $at{promoted} // time;
    my $until = $promoted + $Grace;

    my @before = grep { $_->[1] < $stop } @log;
    my @after = grep { $_->[0] > $until } @log;
    my @failed = grep { $_->[2] ne 'approved' } @log;
    my @e503 = grep { $_->[2] eq '503' } @log;

    Test::More::diag(sprintf 'failover: %d requests, %d before the stop,'
        . ' %d after the switch; primary stopped in %.3f s, replica'
        . ' promoted %.3f s after the stop; %d answered 503'
        . (@e503 ? ' (from %.3f s to %.3f s after the stop; the last one'
                   . ' %.3f s after pg_ctl promote returned)' : ''),
        scalar @log, scalar @before, scalar @after,
        ($at{stopped} // $stop) - $stop, $promoted - $stop, scalar @e503,
        @e503 ? ($e503[0][1] - $stop, $e503[-1][1] - $stop,
                 $e503[-1][1] - $promoted) : ());

    Test::More::cmp_ok(scalar @before, '>=', 8,
                       'failover: traffic before the stop');
    Test::More::is(scalar(grep { $_->[2] ne 'approved' } @before), 0,
                   'failover: before the stop every one approved');

    Test::More::is(join("\n", map { $_->[2] } grep { $_->[2] ne '503' }
                                              @failed),
                   '', 'failover: the only failure is 503'
                       . ' backend_unavailable (Retry-After: 1)');

    my @outside = grep { $_->[1] < $stop || $_->[0] > $until } @e503;
    Test::More::is(scalar @outside, 0,
                   sprintf 'failover: every 503 within the switch (from the'
                   . ' stop to %.1f s after the promotion)', $Grace)
        or Test::More::diag(join "\n", map {
               sprintf 'sent %.3f s, answered %.3f s after the stop',
                       $_->[0] - $stop, $_->[1] - $stop } @outside);

    # a bound on the count, whatever the request rate: at most the
    # requests answered within the switch
    my @window = grep { $_->[1] >= $stop && $_->[0] <= $until } @log;
    Test::More::cmp_ok(scalar @e503, '<=', scalar @window,
                       'failover: 503s bounded by the requests within the'
                       . ' switch (' . scalar(@e503) . ' of '
                       . scalar(@window) . ')');

    Test::More::cmp_ok(scalar @after, '>=', 8,
                       'failover: traffic after the switch');
    Test::More::is(scalar(grep { $_->[2] ne 'approved' } @after), 0,
                   'failover: after the switch every one approved'
                   . ' (the pools healed)');

    # written on the new primary only: the block's request looks it up
    Test::More::ok(defined $Pair->psql(replica =>
                       "INSERT INTO merchants (id, status)"
                       . " VALUES ('t720_after', 'active')"),
                   'failover: the new primary takes writes');

    my $conns = $Pair->psql(replica => "SELECT count(*) FROM"
                            . " pg_stat_activity WHERE usename = 'txval'");
    Test::More::ok(defined $conns && $conns >= 1 && $conns <= 8,
                   'failover: txval connected to the new primary, at most'
                   . ' workers x pool (' . ($conns // 'none') . ')');
}

run_tests();

__DATA__

=== TEST 1: read-write, the replica listed first: libpq passes it over, the primary answers (t720_new is found)
--- http_config
    txval_postgres "host=127.0.0.1,127.0.0.1 port=$TEST_NGINX_T720_REPLICA,$TEST_NGINX_T720_PRIMARY dbname=txval user=txval password=txval target_session_attrs=read-write" timeout=$TEST_NGINX_PG_TIMEOUT;
--- config
    location /t {
        txval;
    }
--- more_headers
Content-Type: application/json
--- request eval
[
::post('/t', merchant_id => 't720_new', id => 'tx_1'),
::post('/t', merchant_id => 't_inactive', id => 'tx_2'),
]
--- error_code eval
[200, 402]
--- response_body eval
[
::computed('tx_1', 0),
::computed('tx_2', 0, 'merchant_inactive'),
]
--- no_error_log
[error]
[warn]



=== TEST 2: any, the replica listed first: the replica answers (no t720_new there)
--- http_config
    txval_postgres "host=127.0.0.1,127.0.0.1 port=$TEST_NGINX_T720_REPLICA,$TEST_NGINX_T720_PRIMARY dbname=txval user=txval password=txval target_session_attrs=any" timeout=$TEST_NGINX_PG_TIMEOUT;
--- config
    location /t {
        txval;
    }
--- more_headers
Content-Type: application/json
--- request eval
::post('/t', merchant_id => 't720_new', id => 'tx_1')
--- error_code: 402
--- response_body eval
::computed('tx_1', 0, 'merchant_unknown')
--- no_error_log
[error]
[warn]



=== TEST 3: any, the first server down (refused): the second answers, nothing logged
--- http_config
    txval_postgres "host=127.0.0.1,127.0.0.1 port=$TEST_NGINX_T720_REFUSED,$TEST_NGINX_T720_PRIMARY dbname=txval user=txval password=txval target_session_attrs=any" timeout=$TEST_NGINX_PG_TIMEOUT;
--- config
    location /t {
        txval;
    }
--- more_headers
Content-Type: application/json
--- request eval
[
::post('/t', merchant_id => 't720_new', id => 'tx_1'),
::post('/t', merchant_id => 't720_new', id => 'tx_2'),
]
--- error_code eval
[200, 200]
--- response_body eval
[
::computed('tx_1', 0),
::computed('tx_2', 0),
]
--- no_error_log
[error]
[warn]



=== TEST 4: read-write with servers that do not report in_hot_standby: libpq asks each one (SHOW transaction_read_only) in the worker's event loop, the replica first, and keeps the primary
--- http_config
    txval_postgres "host=127.0.0.1,127.0.0.1 port=$TEST_NGINX_T720_PROXY_REPLICA,$TEST_NGINX_T720_PROXY_PRIMARY dbname=txval user=txval password=txval sslmode=disable gssencmode=disable target_session_attrs=read-write" pool=1 timeout=$TEST_NGINX_PG_TIMEOUT;
--- config
    location /t {
        txval;
    }
--- more_headers
Content-Type: application/json
--- request eval
::post('/t', merchant_id => 't720_new', id => 'tx_1')
--- error_code: 200
--- response_body eval
::computed('tx_1', 0)
--- proxy_log
SHOW transaction_read_only
SHOW transaction_read_only
--- no_error_log
[error]
[warn]



=== TEST 5: standby, the same servers, the primary listed first: libpq asks pg_is_in_recovery() of each, keeps the replica
--- http_config
    txval_postgres "host=127.0.0.1,127.0.0.1 port=$TEST_NGINX_T720_PROXY_PRIMARY,$TEST_NGINX_T720_PROXY_REPLICA dbname=txval user=txval password=txval sslmode=disable gssencmode=disable target_session_attrs=standby" pool=1 timeout=$TEST_NGINX_PG_TIMEOUT;
--- config
    location /t {
        txval;
    }
--- more_headers
Content-Type: application/json
--- request eval
::post('/t', merchant_id => 't720_new', id => 'tx_1')
--- error_code: 402
--- response_body eval
::computed('tx_1', 0, 'merchant_unknown')
--- proxy_log
pg_is_in_recovery()
pg_is_in_recovery()
--- no_error_log
[error]
[warn]



=== TEST 6: any, the first server hangs (accepts, never answers): the lookup on it times out (503), then new connections start with the next server
--- http_config
    txval_postgres "host=127.0.0.1,127.0.0.1 port=$TEST_NGINX_T720_HANG,$TEST_NGINX_T720_PRIMARY dbname=txval user=txval password=txval target_session_attrs=any" pool=1 timeout=$TEST_NGINX_T720_HANG_TIMEOUT;
--- config
    location /t {
        txval;
    }
--- more_headers
Content-Type: application/json
--- request eval
[
::post('/t', merchant_id => 't720_new', id => 'tx_1'),
::post('/t', merchant_id => 't720_new', id => 'tx_2'),
::post('/t', merchant_id => 't720_new', id => 'tx_3'),
]
--- wait: 0.5
--- timeout: 30
--- error_code eval
[503, 200, 200]
--- response_body eval
[
::unavailable(),
::computed('tx_2', 0),
::computed('tx_3', 0),
]
--- error_log eval
[
qq{txval: postgres: connect timed out: server at "127.0.0.1", port $ENV{TEST_NGINX_T720_HANG}; new connections start with "127.0.0.1", port $ENV{TEST_NGINX_T720_PRIMARY}},
]
--- no_error_log eval
[
qr/\[error\](?!.*txval: postgres: connect timed out)/,
qr/\[warn\]/,
]



=== TEST 7: host names in the list are resolved at configuration time, each to all its addresses (localhost: 127.0.0.1, and ::1 where it has it); read-write picks the primary
--- http_config
    txval_postgres "host=localhost,localhost port=$TEST_NGINX_T720_REPLICA,$TEST_NGINX_T720_PRIMARY dbname=txval user=txval password=txval target_session_attrs=read-write" timeout=$TEST_NGINX_PG_TIMEOUT;
--- config
    location /t {
        txval;
    }
--- more_headers
Content-Type: application/json
--- request eval
::post('/t', merchant_id => 't720_new', id => 'tx_1')
--- error_code: 200
--- response_body eval
::computed('tx_1', 0)
--- no_error_log
[error]
[warn]



=== TEST 8: txval_postgres: more ports than hosts
--- http_config
    txval_postgres "host=127.0.0.1,127.0.0.1 port=1,2,3";
--- config
--- must_die
--- error_log
could not match 3 port numbers to 2 hosts in "txval_postgres" directive



=== TEST 9: txval_postgres: hostaddr and host lists of different lengths
--- http_config
    txval_postgres "host=a,b hostaddr=127.0.0.1";
--- config
--- must_die
--- error_log
could not match 1 host addresses to 2 hosts in "txval_postgres" directive



=== TEST 10: txval_postgres: a bad target_session_attrs
--- http_config
    txval_postgres "host=127.0.0.1 target_session_attrs=master";
--- config
--- must_die
--- error_log
invalid target_session_attrs "master" in "txval_postgres" directive



=== TEST 11: failover under traffic: the primary stopped (immediate), the replica promoted; only 503 backend_unavailable during the switch, then the pools reconnect to the new primary
--- http_config
    txval_postgres "host=127.0.0.1,127.0.0.1 port=$TEST_NGINX_T720_PRIMARY,$TEST_NGINX_T720_REPLICA dbname=txval user=txval password=txval target_session_attrs=read-write" pool=4 timeout=$TEST_NGINX_PG_TIMEOUT;
--- config
    location /t {
        txval;
    }
--- workers: 2
--- init
::failover();
--- more_headers
Content-Type: application/json
--- request eval
::post('/t', merchant_id => 't720_after', id => 'tx_after')
--- timeout: 30
--- error_code: 200
--- response_body eval
::computed('tx_after', 0)
--- no_error_log eval
[
qr/\[error\](?!.*txval: postgres: (?:connection lost|connect failed|query failed|prepare failed|send failed))/,
qr/\[warn\](?!.*txval: postgres says: )/,
qr/\[(?:crit|alert|emerg)\]/,
'exited on signal',
]
