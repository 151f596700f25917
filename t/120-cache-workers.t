# One cache for all workers: a verdict computed by one worker process is
# answered from shared memory by the other. Each response names the worker
# that made it (X-Pid); reuseport spreads the connections over both.

use strict;
use warnings;

use lib 't/lib';
use Test::More;
use Txval::Nginx;
use Txval::Tx qw(tx_defaults tx v source_of);

my $ng = Txval::Nginx->new(name => 'workers', port => 1991);
my $port = $ng->port;

$ng->start(workers => 2, http => <<"HTTP");
    txval_cache_zone txval:1m ttl=10m;
    txval_amount_limit EUR 1 100000;

    server {
        listen 127.0.0.1:$port reuseport;
        server_name localhost;

        location /t {
            txval;
            add_header X-Pid \$pid always;
        }

        location / {
            return 204;
        }
    }
HTTP

my @workers = $ng->workers;
is scalar(@workers), 2, 'two workers run';

tx_defaults(currency => 'EUR');

sub pid_of { $_[0]{headers}{'x-pid'} // 'none' }


# --- one id, stored by one worker, replayed until both have answered

{
    my $first = $ng->post('/t', tx(id => 'tx_w1'));
    is $first->{status}, 200, 'tx_w1: 200';
    is source_of($first), 'computed', 'tx_w1: computed the first time';

    my $storer = pid_of($first);
    ok((grep { $_ eq $storer } @workers), "stored by worker $storer");

    my (%seen, @bad);
    my $replays = 0;

    while ($replays < 500) {
        my $res = $ng->post('/t', tx(id => 'tx_w1'));
        $replays++;

        $seen{pid_of($res)}++;

        push @bad, "replay $replays by " . pid_of($res) . ': '
                   . source_of($res) . " $res->{status}"
            unless $res->{status} == 200 && source_of($res) eq 'shm';

        last if keys %seen >= 2 && $replays >= 10;
    }

    is_deeply [sort keys %seen], [sort @workers],
              "replays answered by both workers ($replays replays)"
        or diag explain \%seen;

    ok $seen{$_}, "worker $_ answered a replay" for grep { $_ ne $storer } @workers;

    is_deeply \@bad, [], 'every replay, by either worker, is shm';

    # and the body is the stored verdict, not a recomputation
    my $res;
    for (1 .. 200) {
        $res = $ng->post('/t', tx(id => 'tx_w1'));
        last if pid_of($res) ne $storer;
    }
    isnt pid_of($res), $storer, 'a replay by the other worker';
    is $res->{body},
       v('tx_w1', 'shm'),
       'its body is the stored verdict with source shm';
}


# --- a declined verdict and a conflict, seen from the other worker

{
    my $first = $ng->post('/t', tx(id => 'tx_w2', amount => 90000));
    is $first->{status}, 200, 'tx_w2 computed';
    like $first->{body}, qr/"risk_score":30/, 'with risk 30';
    my $storer = pid_of($first);

    my ($replay, $conflict);
    for (1 .. 200) {
        my $res = $ng->post('/t', tx(id => 'tx_w2', amount => 90000));
        if (pid_of($res) ne $storer) { $replay = $res; last }
    }
    my @conflicts;
    for (1 .. 200) {
        my $res = $ng->post('/t', tx(id => 'tx_w2', amount => 90001));
        push @conflicts, $res;
        if (pid_of($res) ne $storer) { $conflict = $res; last }
    }

    ok $replay && $conflict, 'the other worker answered both';
    is $replay && $replay->{body},
       v('tx_w2', 'shm', 'approved', [], 30),
       'the other worker replays it from shm, risk score kept';
    is $conflict && $conflict->{status}, 409,
       'the other worker knows its content: 409 for another amount';
    is_deeply [map { $_->{status} } @conflicts], [(409) x @conflicts],
              'every worker answers 409 for it (' . @conflicts . ' tries)';

    # one info line per refusal, no value from the body
    my $log = $ng->error_log;
    my $lines = () = $log =~ /\[info\].*txval: refused: idempotency_conflict/g;
    is $lines, scalar(@conflicts), 'one "refused: idempotency_conflict" line each';
    unlike $log, qr/90001|tok_1|m_1\b/, 'no value from the body in the log';
}

{
    my $first = $ng->post('/t', tx(id => 'tx_w3', currency => 'USD'));
    is $first->{status}, 402, 'tx_w3 declined';
    my $storer = pid_of($first);

    my $replay;
    for (1 .. 200) {
        my $res = $ng->post('/t', tx(id => 'tx_w3', currency => 'USD'));
        if (pid_of($res) ne $storer) { $replay = $res; last }
    }

    is $replay && $replay->{status}, 402,
       'declined replay by the other worker keeps the decline status';
    is $replay && $replay->{body},
       v('tx_w3', 'shm', 'declined', [ 'currency_not_supported' ]),
       'and the reasons';
}


# --- many ids stored at the same time by both workers

{
    my @ids = map { "tx_c$_" } 1 .. 40;
    my @res = $ng->post_parallel('/t', map { tx(id => $_) } @ids);

    my (%storer, %stored_by, @bad);

    for my $i (0 .. $#ids) {
        my $r = $res[$i];
        $storer{$ids[$i]} = pid_of($r);
        $stored_by{pid_of($r)}++;
        push @bad, "$ids[$i]: $r->{status} " . source_of($r)
            unless $r->{status} == 200 && source_of($r) eq 'computed';
    }

    is_deeply \@bad, [], '40 concurrent new ids: all 200 computed';
    is scalar(keys %stored_by), 2, 'stored by both workers'
        or diag explain \%stored_by;

    # each id replayed by the worker that did not store it

    my (@missed, @wrong);

    for my $id (@ids) {
        my $got;
        for (1 .. 100) {
            my $r = $ng->post('/t', tx(id => $id));
            push @wrong, "$id: $r->{status} " . source_of($r)
                unless $r->{status} == 200 && source_of($r) eq 'shm';
            if (pid_of($r) ne $storer{$id}) { $got = 1; last }
        }
        push @missed, $id unless $got;
    }

    is_deeply \@missed, [], 'every id replayed by the other worker';
    is_deeply \@wrong, [], 'every replay of every id is shm';
}


# --- one id sent many times at once: one verdict, then shm for all

{
    my @res = $ng->post_parallel('/t', (tx(id => 'tx_same')) x 20);

    my @bad = grep { $_->{status} != 200
                     || $_->{body} !~ /^\{"id":"tx_same","verdict":"approved","reasons":\[\],"risk_score":0,"source":"(computed|shm)"\}\n\z/ }
              @res;
    is scalar(@bad), 0, '20 concurrent copies of one id: all 200 approved';

    # the first to get there computes; a copy already in flight in the
    # other worker may compute too (both give the same verdict), the
    # first stored entry stays
    my $computed = grep { source_of($_) eq 'computed' } @res;
    ok $computed >= 1, "computed at least once ($computed)";

    my @after = map { source_of($ng->post('/t', tx(id => 'tx_same'))) }
                 1 .. 10;
    is_deeply \@after, [('shm') x 10], 'then every replay is shm';
}

$ng->stop;

unlike $ng->error_log, qr/\[(alert|crit|emerg)\]|exited on signal|core dumped/,
       'no alert, crit or crash';

done_testing;
