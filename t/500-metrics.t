# txval_metrics: exact values after known traffic on two workers, with the
# shared-memory cache, Redis (verdicts, velocity) and Postgres; every SPEC
# metric with HELP and TYPE; the histogram; pool gauges; the counters kept
# across `nginx -s reload` and counted on by the new workers; Redis-layer
# lookups seen from a second nginx; the text accepted by
# `promtool check metrics` (Debian package prometheus).
#
# Needs the suite's Redis on $TEST_NGINX_REDIS_PORT and Postgres on
# $TEST_NGINX_PG_PORT with t/fixtures.sql loaded; make test starts both.
# By hand:
#   . scripts/services.sh
#   txval_redis_start 16390 build/test-redis
#   txval_pg_start 16432 $PWD/build/test-pg-16432
#   txval_pg_psql 16432 $PWD/build/test-pg-16432 < t/fixtures.sql
#   prove -I t/lib t/500-metrics.t

use strict;
use warnings;

use lib 't/lib';
use Test::More;
use Time::HiRes qw(sleep time);
use Txval::Nginx qw(need_services values_of);
use Txval::Tx qw(tx_defaults tx);

my $redis_port = $ENV{TEST_NGINX_REDIS_PORT} || 16390;
my $pg_port = $ENV{TEST_NGINX_PG_PORT} || 16432;

need_services(Redis => $redis_port, Postgres => $pg_port);

# unique per run: Redis keeps verdicts and velocity counts between runs
my $run = "t500.$$." . time();
$run =~ s/[^A-Za-z0-9.]//g;

my $ng = Txval::Nginx->new(name => 'm500', port => 1950);
my $port = $ng->port;

my $backends = <<"HTTP";
    txval_redis 127.0.0.1:$redis_port prefix=$run:;
    txval_postgres "host=127.0.0.1 port=$pg_port dbname=txval user=txval password=txval";
HTTP

my $http = <<"HTTP";
    txval_cache_zone m500:1m ttl=10m;
$backends
    txval_amount_limit USD 100 500000;
    txval_amount_limit GBP 100 500000;
    txval_risk_threshold 50;

    server {
        listen 127.0.0.1:$port reuseport;
        server_name localhost;

        location = /t {
            txval;
            add_header X-Pid \$pid always;
        }

        location = /v {
            txval;
            txval_velocity 2 3600s;
            add_header X-Pid \$pid always;
        }

        location = /metrics {
            txval_metrics;
        }

        location / {
            return 204;
        }
    }
HTTP

$ng->start(workers => 2, http => $http);


# transactions: USD 2500 of t_active with t_card_us unless told otherwise
tx_defaults(id => undef, amount => 2500, merchant_id => 't_active',
            card_token => 't_card_us');

sub id { "$run.$_[0]" }

# The traffic, and what each request must add. Per request:
#   status, source (computed/shm/redis, or the error), reasons,
#   backend ops: redis round trips (GET, INCR+EXPIRE as one, SET), pg.

my %expect;        # series => count
my %pids;          # the workers that answered
my @log;           # "id: got vs want" for a diagnosis

$expect{$_} = 0 for map { qq(txval_requests_total{verdict="$_"}) }
    qw(approved declined error);

sub bump { $expect{$_[0]} += $_[1] // 1 }

sub check_response {
    my ($name, $res, $status, $what) = @_;

    $pids{ $res->{headers}{'x-pid'} }++ if $res->{headers}{'x-pid'};

    my $got = $res->{body} =~ /"source":"(\w+)"/ ? $1
            : $res->{body} =~ /"error":"(\w+)"/ ? $1
            : $res->{body};
    my $ok = $res->{status} == $status && $got eq $what;
    push @log, "$name: $res->{status} $got (want $status $what)" unless $ok;
    return $ok;
}

# a verdict computed from the backends
sub computed {
    my ($name, $uri, $body, $status, @reasons) = @_;

    my $res = $ng->post($uri, $body);
    check_response($name, $res, $status, 'computed');
    my $want = join ',', map { qq("$_") } @reasons;
    push @log, "$name: reasons in $res->{body} (want [$want])"
        unless $res->{body} =~ /"reasons":\[\Q$want\E\]/;

    count_verdict($status, @reasons);
    bump('txval_cache_lookups_total{layer="shm",result="miss"}');
    bump('txval_cache_lookups_total{layer="redis",result="miss"}');
    bump('txval_backend_requests_total{backend="redis",result="ok"}',
         $uri eq '/v' ? 3 : 2);
    bump('txval_backend_requests_total{backend="postgres",result="ok"}');
    bump('txval_cache_entries');
    # the round trips waited for: the claim (and velocity), the query
    bump('txval_backend_duration_seconds_count{backend="redis"}',
         $uri eq '/v' ? 2 : 1);
    bump('txval_backend_duration_seconds_count{backend="postgres"}');
    return $res;
}

sub count_verdict {
    my ($status, @reasons) = @_;
    bump('txval_requests_total{verdict="'
         . ($status == 200 ? 'approved' : 'declined') . '"}');
    bump(qq(txval_reasons_total{reason="$_"})) for @reasons;
}


# --- approved, computed

for my $i (1 .. 8) {
    computed("ok$i", '/t',
             tx(id => id("ok$i"), country => 'US'), 200);
}

# --- declined, computed: every reason (bin and card together once)

computed('lost', '/t', tx(id => id('lost'), card_token => 't_card_lost'),
         402, 'card_blocked');
computed('lost_bin', '/t', tx(id => id('lost_bin'), card_token => 't_card_lost',
                              card_bin => '77777712'),
         402, 'card_blocked', 'bin_blocked');
computed('inactive', '/t', tx(id => id('inactive'), merchant_id => 't_inactive'),
         402, 'merchant_inactive');
computed('unknown', '/t', tx(id => id('unknown'), merchant_id => 't_nobody'),
         402, 'merchant_unknown');
computed('small', '/t', tx(id => id('small'), amount => 50),
         402, 'amount_out_of_range');
computed('jpy', '/t', tx(id => id('jpy'), currency => 'JPY'),
         402, 'currency_not_supported');
computed('gbp', '/t', tx(id => id('gbp'), merchant_id => 't_usd_eur',
                         currency => 'GBP'),
         402, 'currency_not_allowed');
computed('capped', '/t', tx(id => id('capped'), merchant_id => 't_capped',
                            amount => 20000),
         402, 'merchant_limit_exceeded');
# 30 (2 x amount >= cap) + 30 (country differs) = 60 >= 50
computed('risky', '/t', tx(id => id('risky'), amount => 300000,
                           country => 'GB'),
         402, 'risk_too_high');

# --- velocity: 2 per card per hour; an unknown card (risk 20, +20 past
# half the limit: 40, still under 50)

for my $n (1 .. 3) {
    computed("vel$n", '/v', tx(id => id("vel$n"), card_token => "t_v$$"),
             $n <= 2 ? 200 : 402, $n <= 2 ? () : 'velocity_exceeded');
}

# --- replays from shared memory, by either worker: counted by verdict,
# and a replayed decline gives its reasons again

for my $i (1 .. 4) {
    my $res = $ng->post('/t', tx(id => id("ok$i"), country => 'US'));
    check_response("replay ok$i", $res, 200, 'shm');
    count_verdict(200);
    bump('txval_cache_lookups_total{layer="shm",result="hit"}');
}

{
    my $res = $ng->post('/t', tx(id => id('lost'), card_token => 't_card_lost'));
    check_response('replay lost', $res, 402, 'shm');
    count_verdict(402, 'card_blocked');
    bump('txval_cache_lookups_total{layer="shm",result="hit"}');
}

# --- a conflict (same id, other amount): an error, no backend

{
    my $res = $ng->post('/t', tx(id => id('ok1'), amount => 2600,
                                 country => 'US'));
    check_response('conflict ok1', $res, 409, 'idempotency_conflict');
    bump('txval_requests_total{verdict="error"}');
    bump('txval_errors_total{error="idempotency_conflict"}');
    bump('txval_cache_lookups_total{layer="shm",result="conflict"}');
}

# --- refused before any lookup: errors only

{
    my @refused = (
        [ 'GET', $ng->request(GET => '/t'), 405, 'method_not_allowed' ],
        [ 'text/plain', $ng->request(POST => '/t', tx(id => id('tp')),
                                     'Content-Type' => 'text/plain'),
          415, 'unsupported_media_type' ],
        [ 'bad json', $ng->post('/t', '{"id":'), 400, 'invalid_json' ],
        [ 'bad field', $ng->post('/t', tx(id => id('bf'), amount => '"x"')),
          400, 'invalid_field' ],
        [ 'pan', $ng->post('/t', '{"id":"p1","pan":"4111111111111111"}'),
          400, 'pan_not_accepted' ],
    );

    for (@refused) {
        my ($name, $res, $status, $error) = @$_;
        check_response($name, $res, $status, $error);
        bump('txval_requests_total{verdict="error"}');
        bump(qq(txval_errors_total{error="$error"}));
    }
}

# --- twelve at once: the workers count concurrently in one zone

{
    my @ids = map { id("par$_") } 1 .. 12;
    my @res = $ng->post_parallel('/t', map { tx(id => $_) } @ids);

    for my $i (0 .. $#ids) {
        check_response("par$i", $res[$i], 200, 'computed');
        count_verdict(200);
        bump('txval_cache_lookups_total{layer="shm",result="miss"}');
        bump('txval_cache_lookups_total{layer="redis",result="miss"}');
        bump('txval_backend_requests_total{backend="redis",result="ok"}', 2);
        bump('txval_backend_requests_total{backend="postgres",result="ok"}');
        bump('txval_cache_entries');
        bump('txval_backend_duration_seconds_count{backend="redis"}');
        bump('txval_backend_duration_seconds_count{backend="postgres"}');
    }
}

is_deeply \@log, [], 'every response as expected' or diag join "\n", @log;

is scalar(keys %pids), 2, 'both workers answered ('
   . join(', ', map { "$_: $pids{$_}" } sort keys %pids) . ')';


# the Redis SETs are answered after the responses: wait for them

my $want_redis = $expect{'txval_backend_requests_total{backend="redis",result="ok"}'};

# (and for the pools to be at rest: a reply is counted just before its
# connection is published idle)
sub scrape_settled {
    my ($inst, $series, $want) = @_;
    my $deadline = time + 5;
    my $m;
    do {
        $m = $inst->metrics;
        my $v = $m->{values};
        my $moving = 0;
        $moving += $v->{$_} // 0 for grep { /pool_connections.*state="(busy|connecting)"/ }
                                     keys %$v;
        return $m if ($v->{$series} // -1) >= $want && !$moving;
        sleep 0.05;
    } while (time < $deadline);
    return $m;
}

my $m = scrape_settled($ng,
    'txval_backend_requests_total{backend="redis",result="ok"}', $want_redis);

is $m->{status}, 200, 'GET /metrics: 200';
like $m->{headers}{'content-type'}, qr{^text/plain; version=0\.0\.4(;|$)},
     'content type text/plain; version=0.0.4';
is_deeply $m->{errors}, [], 'every line is Prometheus text format'
    or diag explain $m->{errors};


# --- every SPEC metric, HELP and TYPE, every label value

my %types = (
    txval_requests_total           => 'counter',
    txval_reasons_total            => 'counter',
    txval_cache_lookups_total      => 'counter',
    txval_backend_requests_total   => 'counter',
    txval_request_duration_seconds => 'histogram',
    txval_cache_entries            => 'gauge',
    txval_cache_bytes_used         => 'gauge',
    txval_cache_bytes_total        => 'gauge',
    txval_cache_evictions_total    => 'counter',
    txval_pool_connections         => 'gauge',
    txval_errors_total             => 'counter',
    txval_dry_run_total            => 'counter',
    txval_backend_duration_seconds => 'histogram',
    txval_build_info               => 'gauge',
);

for my $name (sort keys %types) {
    is $m->{types}{$name}, $types{$name}, "# TYPE $name $types{$name}";
    ok length($m->{help}{$name} // ''), "# HELP $name";
}

my @reasons = qw(currency_not_supported amount_out_of_range merchant_unknown
                 merchant_inactive merchant_limit_exceeded currency_not_allowed
                 card_blocked bin_blocked velocity_exceeded risk_too_high);

my @want_series = (
    (map { qq(txval_requests_total{verdict="$_"}) } qw(approved declined error)),
    (map { qq(txval_reasons_total{reason="$_"}) } @reasons),
    (map { qq(txval_cache_lookups_total{layer="shm",result="$_"}) }
         qw(hit miss conflict)),
    (map { qq(txval_cache_lookups_total{layer="redis",result="$_"}) }
         qw(hit miss conflict error)),
    (map { my $b = $_; map { qq(txval_backend_requests_total{backend="$b",result="$_"}) }
           qw(ok error timeout) } qw(redis postgres)),
    qw(txval_request_duration_seconds_sum txval_request_duration_seconds_count
       txval_cache_entries txval_cache_bytes_used txval_cache_bytes_total
       txval_cache_evictions_total),
    (map { my $b = $_; map { qq(txval_pool_connections{backend="$b",state="$_"}) }
           qw(busy idle connecting) } qw(redis postgres)),
    (map { qq(txval_errors_total{error="$_"}) }
         qw(method_not_allowed unsupported_media_type invalid_json
            invalid_field pan_not_accepted idempotency_conflict
            idempotency_in_progress backend_unavailable)),
    (map { qq(txval_dry_run_total{verdict="$_"}) } qw(approved declined error)),
    (map { (qq(txval_backend_duration_seconds_count{backend="$_"}),
            qq(txval_backend_duration_seconds_sum{backend="$_"})) }
         qw(redis postgres)),
);

my @missing = grep { !exists $m->{values}{$_} } @want_series;
is_deeply \@missing, [], 'every series is there' or diag explain \@missing;


# --- exact counts

my %zero = map { $_ => 0 } grep { /_total\{/ } @want_series;
my %want = (%zero, %expect,
            'txval_cache_evictions_total' => 0,
            'txval_cache_bytes_total' => 1048576);

is_deeply values_of($m, sort keys %want), \%want,
          'counters and cache gauges: exact after the traffic'
    or diag $m->{body};

my $total = $expect{'txval_requests_total{verdict="approved"}'}
          + $expect{'txval_requests_total{verdict="declined"}'}
          + $expect{'txval_requests_total{verdict="error"}'};


# --- the histogram

sub check_histogram {
    my ($mm, $what) = @_;

    my @buckets = grep { /^txval_request_duration_seconds_bucket\{/ }
                  @{ $mm->{series} };
    my @le = map { /le="([^"]+)"/ ? $1 : '?' } @buckets;

    is_deeply \@le, [qw(0.0001 0.00025 0.0005 0.001 0.0025 0.005 0.01 0.025
                        0.05 0.1 0.25 0.5 1 +Inf)],
              "$what: buckets 100us .. 1s and +Inf, in order";

    my @counts = map { $mm->{values}{$_} } @buckets;
    my @down = grep { $counts[$_] < $counts[$_ - 1] } 1 .. $#counts;
    is_deeply \@down, [], "$what: bucket counts never decrease (@counts)";

    my $count = $mm->{values}{txval_request_duration_seconds_count};
    my $requests = 0;
    $requests += $mm->{values}{qq(txval_requests_total{verdict="$_"})} // 0
        for qw(approved declined error);

    is $counts[-1], $count, "$what: le=+Inf equals _count";
    is $count, $requests, "$what: _count ($count) equals the requests ($requests)";

    my $sum = $mm->{values}{txval_request_duration_seconds_sum} // -1;
    ok $sum > 0 && $sum < $count * 1.0, "$what: _sum $sum s is positive and "
       . "below 1 s a request";

    # the le=1 bucket holds them all: nothing here takes a second
    is $counts[-2], $count, "$what: every request under 1 s";
}

check_histogram($m, 'after the traffic');
is $m->{values}{txval_request_duration_seconds_count}, $total,
   "histogram _count is every request made ($total)";

{
    my $e = 0;
    $e += $m->{values}{$_} for grep { /^txval_errors_total\{/ } @want_series;
    is $e, $expect{'txval_requests_total{verdict="error"}'},
       "txval_errors_total adds up to the error answers ($e)";
}


# --- pool gauges at rest: no busy or connecting connection, an idle one
# per worker that asked a backend, at most the pool's size

my %pool = %{ values_of($m, grep { /^txval_pool_connections/ } @want_series) };

for my $b (qw(redis postgres)) {
    is $pool{qq(txval_pool_connections{backend="$b",state="busy"})}, 0,
       "$b pool at rest: 0 busy";
    is $pool{qq(txval_pool_connections{backend="$b",state="connecting"})}, 0,
       "$b pool at rest: 0 connecting";
    my $idle = $pool{qq(txval_pool_connections{backend="$b",state="idle"})};
    ok $idle >= 2 && $idle <= 2 * ($b eq 'redis' ? 16 : 8),
       "$b pool at rest: $idle idle, one or more per worker (2 workers)";
}


# --- a scrape changes nothing

{
    my $again = $ng->metrics;
    is $again->{body}, $m->{body}, 'a second scrape reads the same';

    my $head = $ng->request(HEAD => '/metrics');
    is $head->{status}, 200, 'HEAD /metrics: 200';
    is $head->{body}, '', 'HEAD /metrics: no body';

    my $post = $ng->request(POST => '/metrics', 'x');
    is $post->{status}, 405, 'POST /metrics: 405';
}


# --- promtool check metrics

SKIP: {
    my $promtool = (grep { -x "$_/promtool" } split /:/, $ENV{PATH})[0];

    skip 'promtool not installed: Debian package prometheus '
         . '(scripts/deps.sh test installs it)', 2
        unless $promtool;

    my $file = $ng->root . '/metrics.txt';
    open my $fh, '>', $file or die "$file: $!";
    print $fh $m->{body};
    close $fh;

    my $out = `$promtool/promtool check metrics < '$file' 2>&1`;
    my $rc = $? >> 8;

    # exit 1: the text does not parse; 3: lint problems
    isnt $rc, 1, "promtool parses the exposition (exit $rc)" or diag $out;

    # SPEC names txval_cache_bytes_total, a gauge; Prometheus' naming
    # rules keep "_total" for counters, and promtool says so. That one
    # (and only that one) is expected.
    my @problems = grep { length && !/^txval_cache_bytes_total non-counter metrics should not have "_total" suffix$/ }
                   split /\n/, $out;
    is_deeply \@problems, [], 'promtool: no lint problem but the SPEC-named '
              . 'gauge txval_cache_bytes_total' or diag $out;
}


# --- reload: the counters go on

my %before = %{ values_of($m, grep { !/pool_connections/ } @{ $m->{series} }) };

ok $ng->reload(http => $http, workers => 2), 'reload with the same config';

my $r = $ng->metrics;

is_deeply values_of($r, sort keys %before), \%before,
          'after reload: every counter, bucket and cache gauge kept'
    or diag $r->{body};

# the old workers are gone, the new ones have not connected yet
my %pool_r = %{ values_of($r, grep { /^txval_pool_connections/ } @want_series) };
is_deeply \%pool_r, { map { $_ => 0 } keys %pool_r },
          'after reload: no pool connection (the new workers have none yet)'
    or diag explain \%pool_r;

{
    my $res = $ng->post('/t', tx(id => id('after'), country => 'US'));
    ok check_response('after reload', $res, 200, 'computed'),
       'a new transaction after the reload: computed';

    my %after = %before;
    $after{$_}++ for 'txval_requests_total{verdict="approved"}',
                     'txval_cache_lookups_total{layer="shm",result="miss"}',
                     'txval_cache_lookups_total{layer="redis",result="miss"}',
                     'txval_backend_requests_total{backend="postgres",result="ok"}',
                     'txval_cache_entries',
                     'txval_request_duration_seconds_count',
                     'txval_request_duration_seconds_bucket{le="+Inf"}',
                     # the round trips waited for: the lookup's claim, the
                     # Postgres query (the verdict's store is not waited for)
                     map { ("txval_backend_duration_seconds_count{backend=\"$_\"}",
                            "txval_backend_duration_seconds_bucket{backend=\"$_\",le=\"+Inf\"}") }
                         qw(redis postgres);
    $after{'txval_backend_requests_total{backend="redis",result="ok"}'} += 2;

    my $a = scrape_settled($ng,
        'txval_backend_requests_total{backend="redis",result="ok"}',
        $after{'txval_backend_requests_total{backend="redis",result="ok"}'});

    # (a new entry may take a new slab page: bytes_used is not compared)
    my @names = grep { !/duration_seconds_(sum|bucket\{(backend="\w+",)?le="(?!\+Inf))|bytes_used/ }
                keys %after;
    is_deeply values_of($a, sort @names), { map { $_ => $after{$_} } @names },
              'the new workers count on from the old counts'
        or diag $a->{body};

    check_histogram($a, 'after reload');

    my %pool_a = %{ values_of($a, grep { /^txval_pool_connections/ } @want_series) };
    is_deeply \%pool_a, {
        'txval_pool_connections{backend="redis",state="busy"}' => 0,
        'txval_pool_connections{backend="redis",state="idle"}' => 1,
        'txval_pool_connections{backend="redis",state="connecting"}' => 0,
        'txval_pool_connections{backend="postgres",state="busy"}' => 0,
        'txval_pool_connections{backend="postgres",state="idle"}' => 1,
        'txval_pool_connections{backend="postgres",state="connecting"}' => 0,
    }, 'after one transaction: one idle connection to each backend'
        or diag explain \%pool_a;
}


# --- a second nginx on the same Redis: the Redis layer of the lookups

{
    my $b = Txval::Nginx->new(name => 'm500b', port => 1951);
    my $bport = $b->port;

    $b->start(workers => 1, http => <<"HTTP");
    txval_cache_zone m500b:1m ttl=10m;
    txval_redis 127.0.0.1:$redis_port prefix=$run:;
    txval_amount_limit USD 100 500000;

    server {
        listen 127.0.0.1:$bport;
        location = /t { txval; }
        location = /metrics { txval_metrics; }
        location / { return 204; }
    }
HTTP

    @log = ();
    check_response('B ok5', $b->post('/t', tx(id => id('ok5'), country => 'US')),
                   200, 'redis');
    check_response('B ok5 again', $b->post('/t', tx(id => id('ok5'), country => 'US')),
                   200, 'shm');
    check_response('B ok6 other amount',
                   $b->post('/t', tx(id => id('ok6'), amount => 2600, country => 'US')),
                   409, 'idempotency_conflict');
    is_deeply \@log, [], 'B: a Redis hit, then shm, and a Redis conflict'
        or diag join "\n", @log;

    my $bm = $b->metrics;
    my %bwant = (
        'txval_requests_total{verdict="approved"}' => 2,
        'txval_requests_total{verdict="declined"}' => 0,
        'txval_requests_total{verdict="error"}' => 1,
        'txval_cache_lookups_total{layer="shm",result="hit"}' => 1,
        'txval_cache_lookups_total{layer="shm",result="miss"}' => 2,
        'txval_cache_lookups_total{layer="shm",result="conflict"}' => 0,
        'txval_cache_lookups_total{layer="redis",result="hit"}' => 1,
        'txval_cache_lookups_total{layer="redis",result="miss"}' => 0,
        'txval_cache_lookups_total{layer="redis",result="conflict"}' => 1,
        'txval_cache_lookups_total{layer="redis",result="error"}' => 0,
        'txval_backend_requests_total{backend="redis",result="ok"}' => 2,
        'txval_backend_requests_total{backend="postgres",result="ok"}' => 0,
        'txval_cache_entries' => 1,
        'txval_request_duration_seconds_count' => 3,
    );
    is_deeply values_of($bm, sort keys %bwant), \%bwant,
              'B: its own counts, Redis hit and conflict among them'
        or diag $bm->{body};

    $b->stop;
}

$ng->stop;

unlike $ng->error_log, qr/\[(alert|crit|emerg)\]/, 'no alert in the error log';

done_testing;
