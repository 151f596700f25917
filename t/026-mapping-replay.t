# Replays, conflicts and namespaces under a field mapping, request by
# request (what Test::Nginx's blocks cannot tell apart: a replay answered
# from the same bytes without parsing, or after parsing):
#
# - a mapped nested body replayed byte for byte is answered without
#   parsing ("txval replay: the same bytes" in the debug log), and so is
#   a body whose id comes from a header; the same body with another
#   header value is never taken for a replay of the first (the replay
#   hash covers the values from variables): another id is a new
#   transaction, another merchant under the same id a conflict;
# - txval_namespace: the same id in two namespaces is two transactions,
#   in the zone and in Redis: {prefix}ns:{name}:v:{id} beside the
#   un-namespaced {prefix}v:{id} (an id with ':' in it cannot pass for a
#   namespace); a second host that shares Redis but not the zone gets
#   each namespace's own verdict; velocity stays per card token.
#
# Runs its own redis-server (port $TXVAL_TEST_REDIS_026_PORT, default
# 16397) and nginx on ports 1961 and 1962 (under memcheck in make
# valgrind, its report checked after the stop).

use strict;
use warnings;

use lib 't/lib';
use Test::More;
use Time::HiRes qw(sleep time);
use Txval::Nginx;
use Txval::Redis;
use Txval::Tx qw(tx_defaults tx outcome);

my $rport = $ENV{TXVAL_TEST_REDIS_026_PORT} // 16397;
my $srv = Txval::Redis->start_server(port => $rport, name => '026');
my $r = Txval::Redis->client(port => $rport);
my $P = 't026:';

my $A = Txval::Nginx->new(name => 'm026a', port => 1961, valgrind => 1);
my $B = Txval::Nginx->new(name => 'm026b', port => 1962, valgrind => 1);

# these blocks test input, not timeouts: memcheck makes every command slow
my $timeouts = $ENV{TEST_NGINX_USE_VALGRIND}
               ? 'connect_timeout=10s timeout=10s' : '';

sub http_config {
    my ($port) = @_;

    return <<"HTTP";
    error_log logs/debug.log debug;
    txval_cache_zone t026:1m;
    txval_redis 127.0.0.1:$rport prefix=$P $timeouts;

    server {
        listen 127.0.0.1:$port;
        server_name localhost;

        location /adyen {
            txval_field id          /reference;
            txval_field amount      /amount/value;
            txval_field currency    /amount/currency;
            txval_field merchant_id /merchantAccount;
            txval_field card_token  /paymentMethod/storedPaymentMethodId;
            txval;
        }

        location /key {
            txval_field id \$http_idempotency_key;
            txval;
        }

        location /merchant {
            txval_field merchant_id \$http_x_merchant;
            txval;
        }

        location /a  { txval_namespace api-a; txval_velocity 100 60s; txval; }
        location /a2 { txval_namespace api-a; txval; }
        location /b  { txval_namespace b; txval_velocity 100 60s; txval; }
        location /none { txval_velocity 100 60s; txval; }

        # its entries hash (crc32) like namespace api-a's
        location /crc { txval_namespace nAyWhWY; txval; }
    }
HTTP
}

# an Adyen-like body with this reference and amount
sub adyen {
    my ($ref, $value) = @_;
    return Txval::Tx::adyen(reference => qq("$ref"),
                            amount => qq({"currency":"EUR","value":$value}));
}

tx_defaults(currency => 'EUR');

# what one request did: answered from the same bytes, without parsing?

sub debug_log { my ($ng) = @_; return "$ng->{root}/logs/debug.log" }

sub mark { my ($ng) = @_; return -s debug_log($ng) // 0 }

sub fast {
    my ($ng, $since) = @_;
    open my $fh, '<', debug_log($ng) or return 0;
    seek $fh, $since, 0;
    local $/;
    my $text = <$fh> // '';
    return $text =~ /txval replay: the same bytes, answered from shm/ ? 1 : 0;
}

sub post_fast {
    my ($ng, $uri, $body, %h) = @_;
    my $m = mark($ng);
    my $res = $ng->post($uri, $body, %h);
    # the debug lines of this request are written before its response
    return (outcome($res), fast($ng, $m), $res);
}

sub settled_get {
    my ($key) = @_;
    return $r->get_when($key, sub { defined $_[0] && $_[0] !~ /^p;/ },
                        $ENV{TEST_NGINX_USE_VALGRIND} ? 20 : 3, 0.005);
}

$A->start(http => http_config($A->port));

# --- 1. the replay fast path under a mapping

{
    my @o;

    @o = post_fast($A, '/adyen', adyen('R-1', 1000));
    is "@o[0,1]", '200 computed 0', 'nested mapped body: computed';
    @o = post_fast($A, '/adyen', adyen('R-1', 1000));
    is "@o[0,1]", '200 shm 1', 'the same bytes: shm, without parsing';
    like $o[2]{body}, qr/^\{"id":"R-1",/, 'the verdict\'s id is the mapped one';

    my $spaced = adyen('R-1', 1000) =~ s/,/, /gr;
    @o = post_fast($A, '/adyen', $spaced);
    is "@o[0,1]", '200 shm 0', 'the same content written otherwise: shm, parsed';

    @o = post_fast($A, '/adyen', adyen('R-1', 1001));
    is "@o[0,1]", '409 idempotency_conflict 0',
       'another nested amount under the reference: conflict';
}

{
    my $body = tx(id => undef);
    my @o;

    @o = post_fast($A, '/key', $body, 'Idempotency-Key' => 'k-1');
    is "@o[0,1]", '200 computed 0', 'id from a header: computed';
    @o = post_fast($A, '/key', $body, 'Idempotency-Key' => 'k-1');
    is "@o[0,1]", '200 shm 1', 'same body, same header: shm without parsing';
    @o = post_fast($A, '/key', $body, 'Idempotency-Key' => 'k-2');
    is "@o[0,1]", '200 computed 0',
       'same body, another header: another transaction, not a replay';
    like $o[2]{body}, qr/^\{"id":"k-2",/, 'with the header\'s id';
    @o = post_fast($A, '/key', $body, 'Idempotency-Key' => 'k-1');
    is "@o[0,1]", '200 shm 1', 'the first one still replays';
}

{
    my $body = tx(id => 'tx_m', merchant_id => undef);
    my @o;

    @o = post_fast($A, '/merchant', $body, 'X-Merchant' => 'm_a');
    is "@o[0,1]", '200 computed 0', 'merchant from a header: computed';
    @o = post_fast($A, '/merchant', $body, 'X-Merchant' => 'm_a');
    is "@o[0,1]", '200 shm 1', 'same body and header: shm without parsing';
    @o = post_fast($A, '/merchant', $body, 'X-Merchant' => 'm_b');
    is "@o[0,1]", '409 idempotency_conflict 0',
       'same body and id, another merchant header: a conflict, parsed';
}

# --- 2. namespaces: the zone and Redis

{
    my $body = tx(id => 'tx_ns', card_token => 'tok_ns');
    my @o;

    is outcome($A->post('/a', $body)), '200 computed', 'namespace api-a';
    is outcome($A->post('/b', tx(id => 'tx_ns', card_token => 'tok_ns',
                                   amount => 2000))),
       '200 computed', 'namespace b: the same id, other content, no conflict';
    is outcome($A->post('/none', $body)), '200 computed',
       'no namespace: the same id again is a transaction of its own';
    is outcome($A->post('/a2', $body)), '200 shm',
       'another location in namespace api-a: its verdict';
    is outcome($A->post('/a2', tx(id => 'tx_ns', card_token => 'tok_ns',
                                    amount => 2000))),
       '409 idempotency_conflict', 'and its conflicts';

    my $rec_a = settled_get("${P}ns:api-a:v:tx_ns");
    my $rec_b = settled_get("${P}ns:b:v:tx_ns");
    my $rec_n = settled_get("${P}v:tx_ns");
    like $rec_a, qr/^2;0;0;[0-9a-f]{32}$/, 'Redis: {prefix}ns:api-a:v:tx_ns';
    like $rec_b, qr/^2;0;0;[0-9a-f]{32}$/, 'Redis: {prefix}ns:b:v:tx_ns';
    like $rec_n, qr/^2;0;0;[0-9a-f]{32}$/, 'Redis: {prefix}v:tx_ns';
    isnt $rec_a, $rec_b, 'two namespaces, two verdicts (other content)';
    is $rec_a, $rec_n, 'the same content, the same record, two keys';

    my $w = int(time / 60);
    my ($vel) = grep { /^\Q${P}vel:tok_ns:\E\d+$/ } @{ $r->cmd(KEYS => "${P}vel:*") };
    is $r->cmd(GET => $vel), '3',
       'velocity per card token across namespaces: 3 transactions counted';

    # an id with ':' in it, without a namespace, beside namespace api-a

    is outcome($A->post('/none', tx(id => 'ns:api-a:v:tx_ns',
                                      card_token => 'tok_ns'))),
       '200 computed', 'an id that reads like a namespaced key: its own';
    ok defined settled_get("${P}v:ns:api-a:v:tx_ns"),
       'Redis: under {prefix}v:, never {prefix}ns:';
    is $r->cmd(GET => "${P}ns:api-a:v:tx_ns"), $rec_a,
       'namespace api-a\'s record untouched';
}

# namespaces whose entries hash alike in the zone are still told apart

{
    my $other = tx(id => 'tx_ns', card_token => 'tok_ns', amount => 3000);

    is outcome($A->post('/crc', $other)), '200 computed',
       'a namespace that hashes like api-a: the same id is its own';
    is outcome($A->post('/crc', $other)), '200 shm', 'and replays';
    is outcome($A->post('/a2', tx(id => 'tx_ns', card_token => 'tok_ns'))),
       '200 shm', 'api-a keeps its own';
}

# --- 3. a second host shares Redis, not the zone

$B->start(http => http_config($B->port));

{
    is outcome($B->post('/a', tx(id => 'tx_ns', card_token => 'tok_ns'))),
       '200 redis', 'host B, namespace api-a: the verdict from Redis';
    is outcome($B->post('/b', tx(id => 'tx_ns', card_token => 'tok_ns'))),
       '409 idempotency_conflict',
       'host B, namespace b: namespace b\'s verdict (other content): conflict';
    is outcome($B->post('/b', tx(id => 'tx_ns', card_token => 'tok_ns',
                                   amount => 2000))),
       '200 redis', 'host B, namespace b, its content: from Redis';
    is outcome($B->post('/a', tx(id => 'tx_new', card_token => 'tok_ns'))),
       '200 computed', 'host B: a new id in namespace api-a';
    ok defined settled_get("${P}ns:api-a:v:tx_new"), 'stored in its namespace';
    is $r->cmd(EXISTS => "${P}v:tx_new"), 0, 'and nowhere else';
}

like $A->error_log, qr/\A(?:(?!\[(?:error|alert|crit|emerg)\]).)*\z/s,
     'A: no error';
like $B->error_log, qr/\A(?:(?!\[(?:error|alert|crit|emerg)\]).)*\z/s,
     'B: no error';

$A->stop;
$B->stop;

for my $ng ($A, $B) {
    $ng->valgrind_ok;
}

done_testing();
