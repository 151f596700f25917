# The metrics a rollout is watched with, exact after a known sequence:
#
#   txval_errors_total{error}        every error answer by its code, the
#                                    ones given in dry run included;
#   txval_dry_run_total{verdict}     every request validated in dry run,
#                                    by its would-be outcome (malformed
#                                    ones as error);
#   txval_backend_duration_seconds   one observation per round trip a
#                                    request waited for: the Redis claim,
#                                    the velocity count, the Postgres
#                                    lookup (never the fire-and-forget
#                                    store; none for a replay from the
#                                    zone or a malformed request);
#   txval_build_info{version,nginx}  1, with packaging/VERSION and the
#                                    version of the nginx running it;
#
# with HELP and TYPE, histograms whose buckets add up, and the text
# accepted by `promtool check metrics`. A second nginx, Postgres at a
# closed port: backend_unavailable, refused and in dry run. A 413 (nginx's
# own answer, the body never read) is no txval answer and counts nowhere.
#
# Needs the suite's Redis on $TEST_NGINX_REDIS_PORT and Postgres on
# $TEST_NGINX_PG_PORT with t/fixtures.sql loaded (make test starts both).
# nginx on 1946 and 1947.

use strict;
use warnings;

use lib 't/lib';

use Cwd qw(abs_path);
use File::Basename qw(dirname);
use Test::More;
use Time::HiRes qw(sleep time);

use Txval::Nginx qw(need_services closed_port values_of);
use Txval::Redis;
use Txval::Tx qw(tx_defaults tx);

my $repo = abs_path(dirname(__FILE__) . '/..');
my $REDIS_PORT = $ENV{TEST_NGINX_REDIS_PORT} || 16390;
my $PG_PORT = $ENV{TEST_NGINX_PG_PORT} || 16432;
my $P = "t530.$$." . int(time) . ':';

need_services(Redis => $REDIS_PORT, Postgres => $PG_PORT);

my $redis = Txval::Redis->client(port => $REDIS_PORT);
my $pg_timeout = $ENV{TEST_NGINX_USE_VALGRIND} ? '10s' : '1s';
my $redis_timeout = $ENV{TEST_NGINX_USE_VALGRIND} ? '5s' : '1s';

my $closed_port = closed_port();

my $M = Txval::Nginx->new(name => 't530m', port => 1946, valgrind => 1);
$M->start(workers => 2, http => <<"HTTP");
    txval_cache_zone t530:1m;
    txval_redis 127.0.0.1:$REDIS_PORT prefix=$P timeout=$redis_timeout;
    txval_postgres "host=127.0.0.1 port=$PG_PORT dbname=txval user=txval password=txval" timeout=$pg_timeout;
    txval_amount_limit USD 1 1000000;

    server {
        listen 127.0.0.1:1946 reuseport;
        server_name localhost;

        location = /t        { txval; }
        location = /d        { txval; txval_dry_run on; }
        location = /d-small  { txval; txval_dry_run on;
                               client_max_body_size 100; }
        location = /v        { txval; txval_dry_run on;
                               txval_velocity 2 3600s; }
        location = /metrics  { txval_metrics; }
    }
HTTP

my $F = Txval::Nginx->new(name => 't530f', port => 1947, valgrind => 1);
$F->start(workers => 1, http => <<"HTTP");
    txval_postgres "host=127.0.0.1 port=$closed_port dbname=txval user=txval password=txval" timeout=200ms;

    server {
        listen 127.0.0.1:1947;
        server_name localhost;

        location = /t        { txval; }
        location = /d        { txval; txval_dry_run on; }
        location = /metrics  { txval_metrics; }
    }
HTTP


# transactions: USD 2500 of t_active with t_card_us unless told otherwise
tx_defaults(id => undef, amount => 2500, merchant_id => 't_active',
            card_token => 't_card_us');

my $n = 0;
sub id { "m$$." . ++$n }

my @log;

sub expect_status {
    my ($name, $res, $status, $want) = @_;
    my $got = $res->{body} =~ /"(?:source|error)":"(\w+)"/ ? $1 : '';
    push @log, "$name: $res->{status} $got, want $status $want"
        unless $res->{status} == $status && ($want eq '' || $got eq $want);
}

sub hold_mark {
    my ($id) = @_;
    $redis->cmd(SET => "${P}v:$id", 'p;' . ('cd' x 16), PX => 20000) eq 'OK'
        or die "SET mark\n";
}


# --- the sequence, without dry run

my ($a1, $d1, $ip1) = (id(), id(), id());

expect_status('approved', $M->post('/t', tx(id => $a1)), 200, 'computed');
expect_status('declined', $M->post('/t', tx(id => $d1,
                                           card_token => 't_card_lost')),
              402, 'computed');
expect_status('replay', $M->post('/t', tx(id => $a1)), 200, 'shm');
expect_status('conflict', $M->post('/t', tx(id => $a1, amount => 2600)),
              409, 'idempotency_conflict');
hold_mark($ip1);
expect_status('in progress', $M->post('/t', tx(id => $ip1)), 409,
              'idempotency_in_progress');
expect_status('GET', $M->request(GET => '/t'), 405, 'method_not_allowed');
expect_status('text/plain', $M->request(POST => '/t', tx(id => id()),
                                        'Content-Type' => 'text/plain'),
              415, 'unsupported_media_type');
expect_status('invalid json', $M->post('/t', '{"id":'), 400, 'invalid_json');
expect_status('not an object', $M->post('/t', '[1]'), 400, 'invalid_json');
expect_status('invalid field', $M->post('/t', tx(id => id(), amount => '"x"')),
              400, 'invalid_field');
expect_status('pan', $M->post('/t', '{"id":"p1","pan":"4111111111111111"}'),
              400, 'pan_not_accepted');

# --- in dry run

my ($a2, $ip2) = (id(), id());

expect_status('dry approved', $M->post('/d', tx(id => $a2)), 200, 'computed');
expect_status('dry declined', $M->post('/d', tx(id => id(),
                                              merchant_id => 't_inactive')),
              200, 'computed');
expect_status('dry conflict', $M->post('/d', tx(id => $a2, amount => 1)),
              200, 'idempotency_conflict');
hold_mark($ip2);
expect_status('dry in progress', $M->post('/d', tx(id => $ip2)), 200,
              'idempotency_in_progress');
expect_status('dry invalid json', $M->post('/d', '{'), 400, 'invalid_json');
expect_status('dry GET', $M->request(GET => '/d'), 405, 'method_not_allowed');
expect_status('dry 413', $M->post('/d-small', tx(id => id()) . (' ' x 100)),
              413, '');

# velocity in dry run: approved, approved, would be declined
my $card = "t530_card_$$";
for my $i (1 .. 3) {
    my $res = $M->post('/v', tx(id => id(), card_token => $card));
    expect_status("velocity $i", $res, 200, 'computed');
    my $declined = $res->{body} =~ /"verdict":"declined"/ ? 1 : 0;
    push @log, "velocity $i: $res->{body}" unless $declined == ($i == 3);
}

# --- Postgres down

expect_status('backend down', $F->post('/t', tx(id => id())), 503,
              'backend_unavailable');
expect_status('backend down again', $F->post('/t', tx(id => id())), 503,
              'backend_unavailable');
expect_status('backend down, dry run', $F->post('/d', tx(id => id())), 200,
              'backend_unavailable');

is_deeply \@log, [], 'every answer as expected' or diag join "\n", @log;


# --- the counts

my @errors = qw(method_not_allowed unsupported_media_type invalid_json
                invalid_field pan_not_accepted idempotency_conflict
                idempotency_in_progress backend_unavailable);

sub err { map { qq(txval_errors_total{error="$_"}) } @_ }
sub dry { map { qq(txval_dry_run_total{verdict="$_"}) } @_ }
sub dur { map { qq(txval_backend_duration_seconds_count{backend="$_"}) } @_ }
sub req { map { qq(txval_requests_total{verdict="$_"}) } @_ }

my %want_m = (
    (map { $_ => 0 } err(@errors)),
    err('method_not_allowed') => 2,
    err('unsupported_media_type') => 1,
    err('invalid_json') => 3,
    err('invalid_field') => 1,
    err('pan_not_accepted') => 1,
    err('idempotency_conflict') => 2,
    err('idempotency_in_progress') => 2,
    dry('approved') => 3,
    dry('declined') => 2,
    dry('error') => 4,
    req('approved') => 5,
    req('declined') => 3,
    req('error') => 12,
    # a1 d1 ip1 a2 d2 ip2: a claim each; 3 velocity requests: a claim and
    # a count each
    dur('redis') => 12,
    # a1 d1 a2 d2 and the 3 velocity requests
    dur('postgres') => 7,
);

# the store of a verdict is not waited for: the scrape waits for the
# pools to be at rest so that nothing is still counting
my $m;
for (1 .. 100) {
    $m = $M->metrics;
    my $busy = 0;
    $busy += $m->{values}{$_} for grep { /pool_connections.*state="(busy|connecting)"/ }
                                  keys %{ $m->{values} };
    last unless $busy;
    sleep 0.05;
}

is $m->{status}, 200, 'GET /metrics: 200';
is_deeply $m->{errors}, [], 'every line is Prometheus text format'
    or diag explain $m->{errors};
is_deeply values_of($m, sort keys %want_m), \%want_m,
          'errors, dry run, backend round trips: exact'
    or diag $m->{body};

my $f = $F->metrics;
my %want_f = (
    (map { $_ => 0 } err(@errors), dry(qw(approved declined))),
    err('backend_unavailable') => 3,
    dry('error') => 1,
    req('error') => 3,
    dur('redis') => 0,
);
is_deeply values_of($f, sort keys %want_f), \%want_f,
          'Postgres down: backend_unavailable, refused and in dry run'
    or diag $f->{body};


# --- HELP, TYPE, the histograms

my %types = (txval_errors_total => 'counter', txval_dry_run_total => 'counter',
             txval_backend_duration_seconds => 'histogram',
             txval_build_info => 'gauge');

for my $name (sort keys %types) {
    is $m->{types}{$name}, $types{$name}, "# TYPE $name $types{$name}";
    ok length($m->{help}{$name} // ''), "# HELP $name";
}

for my $b (qw(redis postgres)) {
    my @buckets = grep { /^txval_backend_duration_seconds_bucket\{backend="$b",/ }
                  @{ $m->{series} };
    my @le = map { /le="([^"]+)"/ ? $1 : '?' } @buckets;
    is_deeply \@le, [qw(0.0001 0.00025 0.0005 0.001 0.0025 0.005 0.01 0.025
                        0.05 0.1 0.25 0.5 1 +Inf)],
              "$b: buckets 100us .. 1s and +Inf, in order";

    my @counts = map { $m->{values}{$_} } @buckets;
    my @down = grep { $counts[$_] < $counts[$_ - 1] } 1 .. $#counts;
    is_deeply \@down, [], "$b: bucket counts never decrease (@counts)";

    my $count = $m->{values}{qq(txval_backend_duration_seconds_count{backend="$b"})};
    is $counts[-1], $count, "$b: le=+Inf equals _count";

    my $sum = $m->{values}{qq(txval_backend_duration_seconds_sum{backend="$b"})};
    ok $sum > 0 && $sum < $count, "$b: _sum $sum s, positive, under 1 s a "
       . 'round trip';
}


# --- build info

{
    open my $fh, '<', "$repo/packaging/VERSION" or die "VERSION: $!\n";
    chomp(my $version = <$fh>);
    close $fh;

    my $bin = $ENV{TEST_NGINX_BINARY} // '/usr/sbin/nginx';
    my ($nginx) = `$bin -v 2>&1` =~ m{nginx/(\S+)};

    my @info = grep { /^txval_build_info\{/ } @{ $m->{series} };
    is_deeply \@info, [qq(txval_build_info{version="$version",nginx="$nginx"})],
              "txval_build_info: version $version (packaging/VERSION), "
              . "nginx $nginx";
    is $m->{values}{$info[0] // ''}, 1, 'txval_build_info: 1';
}


# --- promtool check metrics

SKIP: {
    my $promtool = (grep { -x "$_/promtool" } split /:/, $ENV{PATH})[0];

    skip 'promtool not installed: Debian package prometheus '
         . '(scripts/deps.sh test installs it)', 2
        unless $promtool;

    for my $what ([ main => $M, $m ], [ 'Postgres down' => $F, $f ]) {
        my ($name, $ng, $scrape) = @$what;
        my $file = $ng->root . '/metrics.txt';
        open my $fh, '>', $file or die "$file: $!";
        print $fh $scrape->{body};
        close $fh;

        my $out = `$promtool/promtool check metrics < '$file' 2>&1`;

        # SPEC names txval_cache_bytes_total, a gauge (see t/500)
        my @problems = grep { length && !/^txval_cache_bytes_total non-counter metrics should not have "_total" suffix$/ }
                       split /\n/, $out;
        is_deeply \@problems, [], "promtool check metrics: $name"
            or diag $out;
    }
}


$M->stop;
$F->stop;

for my $ng ($M, $F) {
    unlike $ng->error_log, qr/\[(alert|crit|emerg)\]/,
           $ng->root . ': no alert in the error log';
    $ng->valgrind_ok;
}

done_testing;
