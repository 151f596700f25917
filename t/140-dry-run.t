# txval_dry_run: a request validated in dry run is validated exactly as
# usual (the verdict cached in the zone and in Redis, velocity counted)
# but refused for nothing a verdict, a conflict, a copy in progress or a
# backend failure would refuse it for:
#
#   verdict mode  200, the would-be verdict (or error) body with
#                 "dry_run":true, X-Txval-Verdict (error for a would-be
#                 error), X-Txval-Dry-Run: 1, no Retry-After;
#   gate mode     forwarded, the upstream gets X-Txval-Verdict,
#                 X-Txval-Reasons, X-Txval-Error, X-Txval-Risk-Score,
#                 X-Txval-Source, X-Txval-Degraded, X-Txval-Dry-Run as the
#                 outcome has them, and none of the client's X-Txval-*.
#
# Malformed requests (405, 415, 413, 400 invalid_json / invalid_field /
# pan_not_accepted) are refused as usual, in both modes. A declined
# verdict made in dry run is enforced by a location without dry run that
# shares the zone. txval_dry_run at http, server and location level, and
# with a variable: a value neither empty nor "0" turns it on (a header, a
# map, a 50% split_clients whose split is predicted here with nginx's
# MurmurHash2, so each key goes its own way every time).
#
# A copy in progress is made with a mark written into Redis directly (as
# another host validating the same id would hold it).
#
# Needs the suite's Postgres on 127.0.0.1:$TEST_NGINX_PG_PORT with
# t/fixtures.sql loaded, and its Redis on $TEST_NGINX_REDIS_PORT (make test
# starts both). nginx on 1941-1943, the echo backend on 1949.

use strict;
use warnings;

use lib 't/lib';

use Test::More;
use Time::HiRes qw(sleep time);

use Txval::Echo;
use Txval::Nginx qw(need_services closed_port);
use Txval::Redis;
use Txval::Tx qw(tx_defaults tx v error_body invalid invalid_json);

my $PG_PORT = $ENV{TEST_NGINX_PG_PORT} || 16432;
my $REDIS_PORT = $ENV{TEST_NGINX_REDIS_PORT} || 16390;
my $P = "t140.$$." . int(time) . ':';

need_services(Postgres => $PG_PORT, Redis => $REDIS_PORT);

my $redis = Txval::Redis->client(port => $REDIS_PORT);
my $echo = Txval::Echo->start(port => 1949);
my $up = 'http://127.0.0.1:' . $echo->port;

my $closed_port = closed_port();

my $pg = "host=127.0.0.1 port=$PG_PORT dbname=txval user=txval "
       . "password=txval";
my $pg_timeout = $ENV{TEST_NGINX_USE_VALGRIND} ? '10s' : '1s';
my $redis_timeout = $ENV{TEST_NGINX_USE_VALGRIND} ? '5s' : '1s';


# ---------------------------------------------------------------------------
# transactions and the answers txval gives
# ---------------------------------------------------------------------------

my $seq = 0;
sub new_id { sprintf 'd%d_%d', $$, ++$seq }

tx_defaults(id => undef, currency => 'EUR', merchant_id => 't_active',
            card_token => 't_card_us');

# a declined one: the card is lost
sub lost { tx(card_token => 't_card_lost', @_) }

my %MALFORMED = (
    method => error_body('method_not_allowed'),
    media => error_body('unsupported_media_type'),
    json => invalid_json(),
    field => invalid('amount'),
    pan => error_body('pan_not_accepted'),
);

# a Redis mark, as a host that validates this id holds it
sub hold_mark {
    my ($id) = @_;
    my $r = $redis->cmd(SET => "${P}v:$id", 'p;' . ('ab' x 16), PX => 20000);
    die "SET mark: $r\n" unless $r eq 'OK';
}


# ---------------------------------------------------------------------------
# nginx
# ---------------------------------------------------------------------------

my $A = Txval::Nginx->new(name => 't140a', port => 1941, valgrind => 1);
my $B = Txval::Nginx->new(name => 't140b', port => 1943, valgrind => 1);
my $S = 1942;      # A's second server: txval_dry_run at server level

$A->start(workers => 2, http => <<"HTTP");
    txval_cache_zone t140:1m;
    txval_redis 127.0.0.1:$REDIS_PORT prefix=$P timeout=$redis_timeout;
    txval_postgres "$pg" timeout=$pg_timeout;
    txval_amount_limit EUR 1 100000;

    map \$http_x_canary \$dry_canary {
        default 0;
        yes     1;
    }

    split_clients "\${http_x_merchant_key}" \$dry_split {
        50%     1;
        *       0;
    }

    server {
        listen 127.0.0.1:1941 reuseport;
        server_name localhost;

        location = /v            { txval; txval_dry_run on; }
        location = /enforce      { txval; }
        location = /vel          { txval; txval_dry_run on;
                                   txval_velocity 2 3600s; }
        location = /vel-enforce  { txval; txval_velocity 2 3600s; }
        location = /small        { txval; txval_dry_run on;
                                   client_max_body_size 100; }
        location = /canary       { txval; txval_dry_run \$dry_canary; }
        location = /hdr          { txval; txval_dry_run \$http_x_dry; }
        location = /split        { txval; txval_dry_run \$dry_split; }

        location = /gate {
            txval_gate;
            txval_dry_run on;
            proxy_pass $up/up/gate;
        }

        location = /gate-enforce {
            txval_gate;
            proxy_pass $up/up/gate-enforce;
        }

        location = /gate-small {
            txval_gate;
            txval_dry_run on;
            client_max_body_size 100;
            proxy_pass $up/up/gate-small;
        }
    }

    server {
        listen 127.0.0.1:$S;
        server_name localhost;
        txval_dry_run on;

        location = /s      { txval; }
        location = /s-off  { txval; txval_dry_run off; }
    }
HTTP

$B->start(workers => 1, http => <<"HTTP");
    txval_postgres "host=127.0.0.1 port=$closed_port dbname=txval user=txval password=txval" timeout=200ms;
    txval_dry_run on;

    server {
        listen 127.0.0.1:1943;
        server_name localhost;

        location = /t        { txval; }
        location = /off      { txval; txval_dry_run off; }
        location = /open     { txval; txval_fail_mode open; }

        location = /gate {
            txval_gate;
            proxy_pass $up/up/pgdown;
        }

        location = /gate-off {
            txval_gate;
            txval_dry_run off;
            proxy_pass $up/up/pgdown-off;
        }

        location = /gate-open {
            txval_gate;
            txval_fail_mode open;
            proxy_pass $up/up/pgdown-open;
        }
    }
HTTP


# ---------------------------------------------------------------------------
# checks
# ---------------------------------------------------------------------------

# a dry-run answer in verdict mode: 200, the body, X-Txval-Verdict,
# X-Txval-Dry-Run: 1, no Retry-After
sub dry_ok {
    my ($name, $res, $verdict, $body) = @_;
    is $res->{status}, 200, "$name: 200";
    is $res->{body}, $body, "$name: the would-be outcome, dry_run:true";
    is $res->{headers}{'x-txval-verdict'}, $verdict,
       "$name: X-Txval-Verdict: $verdict";
    is $res->{headers}{'x-txval-dry-run'}, '1', "$name: X-Txval-Dry-Run: 1";
    is $res->{headers}{'retry-after'}, undef, "$name: no Retry-After";
    is $res->{headers}{'content-type'}, 'application/json',
       "$name: application/json";
}

# the upstream got exactly one request, this body, these X-Txval-* headers
# (each once; the client's X-Txval-* gone)
sub forwarded {
    my ($name, $res, $body, %want) = @_;
    my @reqs = $echo->requests;
    is scalar(@reqs), 1, "$name: forwarded, once";
    my $rec = $reqs[0] or return;
    is $res->{status}, 200, "$name: the upstream's answer";
    ok $rec->{body} eq $body, "$name: the body byte for byte";
    my @got = sort { $a->[0] cmp $b->[0] }
              map { [ lc $_->[0], $_->[1] ] }
              grep { $_->[0] =~ /^x-txval-/i } @{ $rec->{headers} };
    my @want = sort { $a->[0] cmp $b->[0] }
               map { [ lc "x-txval-$_", $want{$_} ] } keys %want;
    is_deeply \@got, \@want, "$name: the upstream's X-Txval-* headers, "
              . 'exactly' or diag explain \@got;
    $echo->reset;
    return $rec;
}

sub not_forwarded {
    my ($name) = @_;
    is $echo->count, 0, "$name: not forwarded";
    is $echo->connections, 0, "$name: no connection to the upstream";
    $echo->reset;
}

# spoofed by the client, never passed on
my %SPOOF = ('X-Txval-Verdict' => 'approved', 'X-Txval-Dry-Run' => '0',
             'X-Txval-Reasons' => 'none', 'X-Txval-Error' => 'none',
             'X-Txval-Extra' => 'x');

$echo->reset;


# ---------------------------------------------------------------------------
# verdict mode
# ---------------------------------------------------------------------------

{
    my $id = new_id();
    my $res = $A->post('/v', tx(id => $id));
    dry_ok('approved', $res, 'approved',
           v($id, 'computed', 'approved', [], 0, 'dry_run'));
    is $res->{headers}{'x-txval-source'}, 'computed',
       'approved: X-Txval-Source: computed';

    $res = $A->post('/enforce', tx(id => $id));
    is $res->{status}, 200, 'approved, then without dry run: 200';
    is $res->{body}, v($id, 'shm'),
       'approved, then without dry run: from the zone, no dry_run';
    is $res->{headers}{'x-txval-dry-run'}, undef,
       'without dry run: no X-Txval-Dry-Run';
}

# declined: two reasons, a score; cached in the zone and in Redis,
# enforced by a location without dry run

{
    my $id = new_id();
    my $body = lost(id => $id, amount => 200000);
    my $want = v($id, 'computed', 'declined',
                 [ 'amount_out_of_range', 'card_blocked' ], 30, 'dry_run');

    my $res = $A->post('/v', $body);
    dry_ok('declined', $res, 'declined', $want);

    my $stored;
    for (1 .. 200) {
        $stored = $redis->cmd(GET => "${P}v:$id");
        last if defined $stored && $stored !~ /^p;/;
        sleep 0.01;
    }
    like $stored // '', qr/^2;[0-9a-f]+;30;[0-9a-f]{32}$/,
         'declined in dry run: the verdict is in Redis';

    $res = $A->post('/v', $body);
    dry_ok('declined, replayed in dry run', $res, 'declined',
           v($id, 'shm', 'declined', [ 'amount_out_of_range', 'card_blocked' ],
             30, 'dry_run'));

    $res = $A->post('/enforce', $body);
    is $res->{status}, 402,
       'the same transaction where dry run is off: 402, enforced';
    is $res->{body}, v($id, 'shm', 'declined',
                       [ 'amount_out_of_range', 'card_blocked' ], 30),
       'enforced from the zone the dry run filled';
    is $res->{headers}{'x-txval-verdict'}, 'declined',
       'enforced: X-Txval-Verdict: declined';
    is $res->{headers}{'x-txval-dry-run'}, undef,
       'enforced: no X-Txval-Dry-Run';

    # and a transaction first seen where dry run is off: enforced too
    my $id2 = new_id();
    is $A->post('/enforce', lost(id => $id2))->{status}, 402,
       'a decline without dry run: 402';
    dry_ok('then in dry run', $A->post('/v', lost(id => $id2)), 'declined',
           v($id2, 'shm', 'declined', [ 'card_blocked' ], 0, 'dry_run'));
}

# a conflict: 200, the error body, dry_run:true

{
    my $id = new_id();
    is $A->post('/v', tx(id => $id))->{status}, 200, 'conflict: the first';

    my $res = $A->post('/v', tx(id => $id, amount => 2000));
    dry_ok('conflict', $res, 'error',
           error_body('idempotency_conflict', $id, 'dry_run'));

    $res = $A->post('/enforce', tx(id => $id, amount => 2000));
    is $res->{status}, 409, 'the same conflict without dry run: 409';
    is $res->{body}, error_body('idempotency_conflict', $id),
       'the same conflict without dry run: no dry_run';
}

# in progress (another host's mark in Redis): 200, the error body

{
    my $id = new_id();
    hold_mark($id);

    my $res = $A->post('/v', tx(id => $id));
    dry_ok('in progress', $res, 'error',
           error_body('idempotency_in_progress', $id, 'dry_run'));

    $res = $A->post('/enforce', tx(id => $id));
    is $res->{status}, 409, 'in progress without dry run: 409';
    is $res->{headers}{'retry-after'}, '1',
       'in progress without dry run: Retry-After: 1';

    like $redis->cmd(GET => "${P}v:$id"), qr/^p;(ab){16}$/,
         'in progress: the other host\'s mark is left as it was';
}

# a backend failure (Postgres at a closed port, failing closed): 200, the
# error body; dry run set at http level, turned off in a location

{
    my $off = -s $B->error_log_path // 0;

    my $res = $B->post('/t', tx(id => new_id()));
    dry_ok('backend failure', $res, 'error',
           error_body('backend_unavailable', undef, 'dry_run'));

    like $B->error_log_since($off),
         qr/\[info\].*txval: dry run, would refuse: backend_unavailable/,
         'backend failure: the error log says what would have been refused';

    $res = $B->post('/off', tx(id => new_id()));
    is $res->{status}, 503, 'txval_dry_run off in the location: 503';
    is $res->{headers}{'retry-after'}, '1', 'with Retry-After: 1';
    is $res->{body}, error_body('backend_unavailable'),
       'and the usual body';

    my $id = new_id();
    $res = $B->post('/open', tx(id => $id));
    dry_ok('fail-open, degraded', $res, 'approved',
           v($id, 'computed', 'approved', [], 0, 'degraded', 'dry_run'));
}

# txval_dry_run at server level, off in a location

{
    my $s = Txval::Nginx->new(name => 't140a', port => $S);
    my $id = new_id();
    dry_ok('server level', $s->post('/s', lost(id => $id)), 'declined',
           v($id, 'computed', 'declined', [ 'card_blocked' ], 0, 'dry_run'));
    is $s->post('/s-off', lost(id => new_id()))->{status}, 402,
       'server level, off in the location: 402';
}


# ---------------------------------------------------------------------------
# velocity: counted in dry run, enforced where dry run is off
# ---------------------------------------------------------------------------

{
    my $card = "t140_card_$$";
    my $w0 = int(time / 3600);
    my @got;

    for my $n (1 .. 3) {
        my $id = new_id();
        my $res = $A->post('/vel', tx(id => $id, card_token => $card));
        push @got, $res->{body};
    }

    # unknown card: 20; past half the count: +20
    like $got[0], qr/"verdict":"approved","reasons":\[\],"risk_score":20,.*"dry_run":true/,
         'velocity 1 of 2: approved';
    like $got[1], qr/"verdict":"approved","reasons":\[\],"risk_score":40,.*"dry_run":true/,
         'velocity 2 of 2: approved';
    like $got[2], qr/"verdict":"declined","reasons":\["velocity_exceeded"\],"risk_score":40,.*"dry_run":true/,
         'velocity 3 of 2: would be declined';

    my $res = $A->post('/vel-enforce', tx(id => new_id(), card_token => $card));
    is $res->{status}, 402, 'the 4th where dry run is off: 402';
    like $res->{body}, qr/"reasons":\["velocity_exceeded"\]/,
         'the 4th: velocity_exceeded, the dry-run ones counted';

    my $w1 = int(time / 3600);
    my $count = $redis->cmd(GET => "${P}vel:$card:$w1");
    $count += $redis->cmd(GET => "${P}vel:$card:$w0") // 0 if $w0 != $w1;
    is $count, 4, 'Redis counted all four, the three in dry run too';
}


# ---------------------------------------------------------------------------
# gate mode
# ---------------------------------------------------------------------------

{
    my $id = new_id();
    my $body = tx(id => $id);
    my $res = $A->post('/gate', $body, %SPOOF);
    forwarded('gate approved', $res, $body,
              Verdict => 'approved', 'Risk-Score' => 0,
              Source => 'computed', 'Dry-Run' => 1);

    $id = new_id();
    $body = lost(id => $id, amount => 200000);
    $res = $A->post('/gate', $body, %SPOOF);
    forwarded('gate declined', $res, $body,
              Verdict => 'declined',
              Reasons => 'amount_out_of_range,card_blocked',
              'Risk-Score' => 30, Source => 'computed', 'Dry-Run' => 1);
    ok $res->{body} eq $body, 'gate declined: the upstream answered';

    $res = $A->post('/gate', $body);
    forwarded('gate declined, replayed', $res, $body,
              Verdict => 'declined',
              Reasons => 'amount_out_of_range,card_blocked',
              'Risk-Score' => 30, Source => 'shm', 'Dry-Run' => 1);

    $res = $A->post('/gate-enforce', $body);
    is $res->{status}, 402, 'gate without dry run: the same one refused, 402';
    not_forwarded('gate without dry run');

    # a conflict
    my $other = lost(id => $id, amount => 300000);
    $res = $A->post('/gate', $other, %SPOOF);
    forwarded('gate conflict', $res, $other,
              Verdict => 'error', Error => 'idempotency_conflict',
              'Dry-Run' => 1);

    # in progress
    my $id2 = new_id();
    hold_mark($id2);
    $res = $A->post('/gate', tx(id => $id2), %SPOOF);
    forwarded('gate in progress', $res, tx(id => $id2),
              Verdict => 'error', Error => 'idempotency_in_progress',
              'Dry-Run' => 1);
    $res = $A->post('/gate-enforce', tx(id => $id2));
    is $res->{status}, 409, 'gate in progress without dry run: 409';
    not_forwarded('gate in progress without dry run');
}

# a backend failure: forwarded (failing closed), or degraded (open)

{
    my $body = tx(id => new_id());
    my $res = $B->post('/gate', $body, %SPOOF);
    forwarded('gate backend failure', $res, $body,
              Verdict => 'error', Error => 'backend_unavailable',
              'Dry-Run' => 1);

    $res = $B->post('/gate-off', $body);
    is $res->{status}, 503, 'gate backend failure without dry run: 503';
    not_forwarded('gate backend failure without dry run');

    $res = $B->post('/gate-open', $body, %SPOOF);
    forwarded('gate degraded', $res, $body,
              Verdict => 'approved', 'Risk-Score' => 0, Source => 'computed',
              Degraded => 'true', 'Dry-Run' => 1);
}


# ---------------------------------------------------------------------------
# malformed: refused as usual, in both modes
# ---------------------------------------------------------------------------

for my $loc (qw(/v /gate)) {
    my $small = $loc eq '/v' ? '/small' : '/gate-small';
    my @cases = (
        [ 'GET', $A->request(GET => $loc), 405, $MALFORMED{method} ],
        [ 'text/plain', $A->request(POST => $loc, tx(id => new_id()),
                                    'Content-Type' => 'text/plain'),
          415, $MALFORMED{media} ],
        [ 'invalid_json', $A->post($loc, '{"id":'), 400, $MALFORMED{json} ],
        [ 'invalid_field', $A->post($loc, tx(id => new_id(), amount => '"x"')),
          400, $MALFORMED{field} ],
        [ 'pan', $A->post($loc, '{"id":"p1","pan":"4111111111111111"}'),
          400, $MALFORMED{pan} ],
        [ '413', $A->post($small, tx(id => new_id(), country => 'x' x 100)),
          413, undef ],
    );

    for (@cases) {
        my ($what, $res, $status, $body) = @$_;
        my $name = "$loc malformed, $what";
        is $res->{status}, $status, "$name: $status as without dry run";
        is $res->{body}, $body, "$name: the usual body" if defined $body;
        is $res->{headers}{allow}, 'POST', "$name: Allow: POST"
            if $status == 405;
        not_forwarded($name);
    }
}


# ---------------------------------------------------------------------------
# by variable: a header, a map, a 50% split_clients
# ---------------------------------------------------------------------------

{
    my @cases = (
        [ 'no header', undef, 402 ],
        [ 'empty', '', 402 ],
        [ '"0"', '0', 402 ],
        [ '"1"', '1', 200 ],
        [ '"on"', 'on', 200 ],
        [ '"00"', '00', 200 ],
    );

    for (@cases) {
        my ($what, $v, $status) = @$_;
        my $res = $A->post('/hdr', lost(id => new_id()),
                           defined $v ? ('X-Dry' => $v) : ());
        is $res->{status}, $status,
           "txval_dry_run \$http_x_dry, $what: $status";
        is $res->{headers}{'x-txval-dry-run'}, $status == 200 ? '1' : undef,
           "txval_dry_run \$http_x_dry, $what: X-Txval-Dry-Run";
    }

    for ([ 'yes', 200 ], [ 'no', 402 ], [ undef, 402 ]) {
        my ($v, $status) = @$_;
        my $res = $A->post('/canary', lost(id => new_id()),
                           defined $v ? ('X-Canary' => $v) : ());
        is $res->{status}, $status,
           'map $http_x_canary: ' . ($v // 'no header') . ": $status";
    }
}

# nginx's ngx_murmur_hash2, which split_clients hashes its key with
sub murmur2 {
    my ($s) = @_;
    my $m = 0x5bd1e995;
    my $mul = sub { use integer; ($_[0] * $_[1]) & 0xffffffff };
    my $len = length $s;
    my $h = $len;
    my @b = map { ord } split //, $s;
    my $i = 0;

    while ($len - $i >= 4) {
        my $k = $b[$i] | $b[$i + 1] << 8 | $b[$i + 2] << 16
                | $b[$i + 3] << 24;
        $k = $mul->($k, $m);
        $k ^= $k >> 24;
        $k = $mul->($k, $m);
        $h = $mul->($h, $m);
        $h ^= $k;
        $i += 4;
    }

    my $rest = $len - $i;
    $h ^= $b[$i + 2] << 16 if $rest >= 3;
    $h ^= $b[$i + 1] << 8 if $rest >= 2;
    if ($rest >= 1) {
        $h ^= $b[$i];
        $h = $mul->($h, $m);
    }

    $h ^= $h >> 13;
    $h = $mul->($h, $m);
    $h ^= $h >> 15;

    return $h;
}

{
    # 50%: hashes below 2^31 take the first value, "1"
    my @keys = map { "merchant-$_" } 1 .. 24;
    my %want = map { $_ => murmur2($_) < 2**31 ? 200 : 402 } @keys;
    my %n;
    $n{$_}++ for values %want;
    ok $n{200} && $n{402}, "the keys split both ways ($n{200} in dry run)";

    my @wrong;
    for my $key (@keys) {
        for my $try (1 .. 2) {
            my $res = $A->post('/split', lost(id => new_id()),
                               'X-Merchant-Key' => $key);
            push @wrong, "$key #$try: $res->{status}, want $want{$key}"
                unless $res->{status} == $want{$key};
        }
    }

    is_deeply \@wrong, [], 'split_clients 50% on a header: each key its way, '
              . 'every time (dry run 200, enforced 402)';
}


$A->stop;
$B->stop;

for my $ng ($A, $B) {
    unlike $ng->error_log, qr/\[(alert|crit|emerg)\]/,
           $ng->root . ': no alert in the error log';
    $ng->valgrind_ok;
}

done_testing;
