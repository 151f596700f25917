# Sentinel and Cluster over TLS, with certificates made by openssl now:
# nginx asks a sentinel over TLS (as an ACL user: sentinel_user=,
# sentinel_password=) for the master, and talks to that master over TLS;
# a wrong sentinel password is refused (503, logged, not shown). A
# three-master Redis Cluster with tls-cluster: CLUSTER SLOTS read over
# TLS (so its TLS ports), keys spread over the masters, each on the
# master of its slot; a slot moved by hand is followed (MOVED over TLS).
# Every node also has a plain port, for the test's own checks.
#
# Ports: Sentinel: master 17220 (plain) / 17221 (TLS), sentinel 17225 /
# 17226; Cluster: 17201-17203 (plain) / 17211-17213 (TLS, bus +10000);
# nginx 1982.

use strict;
use warnings;

use lib 't/lib';
use Cwd qw(abs_path);
use File::Path ();
use Test::More;
use Time::HiRes qw(sleep time);
use Txval::Fleet ();
use Txval::Nginx;
use Txval::Redis;
use Txval::Tx qw(tx_defaults tx outcome new_id ids_made);

my $dir = abs_path('t') . '/servroot_750fleet';
File::Path::remove_tree($dir);
File::Path::make_path($dir);
my $certs = Txval::Redis::tls_certs("$dir/certs");

my $tls = "tls=on tls_trusted_certificate=$certs->{ca} tls_name=localhost";

my @tls_args = ('tls-cert-file' => $certs->{server_crt},
                'tls-key-file' => $certs->{server_key},
                'tls-ca-cert-file' => $certs->{ca},
                'tls-auth-clients' => 'no',
                'tls-replication' => 'yes');

# a new transaction each time: its own id ("<tag>-<pid>-<n>") and card
# (tok750_<n>)
tx_defaults(currency => 'EUR', card_token => sub { 'tok750_' . ids_made() });

# under valgrind a TLS handshake takes far longer than the defaults allow
my $slow = $ENV{TEST_NGINX_USE_VALGRIND} ? 'connect_timeout=3s timeout=3s ' : '';

sub http_block {
    my ($redis) = @_;
    $redis =~ s/^(txval_redis \S+ )/$1$slow/;
    return <<"HTTP";
    $redis
    server {
        listen 127.0.0.1:1982;
        server_name localhost;
        location /t { txval; txval_velocity 100 1h; }
    }
HTTP
}

sub wait_for {
    my ($what, $secs, $cond) = @_;
    my $t0 = time;
    while (time - $t0 < $secs) {
        return 1 if $cond->();
        sleep 0.05;
    }
    die "750: $what: not within $secs s\n";
}

my $ng = Txval::Nginx->new(name => '750', port => 1982,
                         valgrind => 1);

# stopped; under make valgrind, memcheck's report of it must be empty


# --- Sentinel over TLS

my $SPW = 'spw-Secret-750';

my $master = Txval::Redis->start_server(port => 17220, name => '750m',
                                        args => [@tls_args],
                                        tls_port => 17221, certs => $certs);

{
    my $sd = "$dir/sentinel";
    File::Path::make_path($sd);
    open my $fh, '>', "$sd/sentinel.conf" or die;
    print $fh <<"CONF";
port 17225
bind 127.0.0.1
daemonize no
logfile ""
dir $sd
tls-port 17226
tls-cert-file $certs->{server_crt}
tls-key-file $certs->{server_key}
tls-ca-cert-file $certs->{ca}
tls-auth-clients no
tls-replication yes
user txs on >$SPW +\@all
sentinel monitor m750 127.0.0.1 17221 1
sentinel down-after-milliseconds m750 1000
CONF
    close $fh;
    my $bin = -x '/usr/bin/redis-sentinel' ? 'redis-sentinel' : 'redis-server';
    my $pid = Txval::Fleet::spawn('sentinel 17225', "$sd/sentinel.log", $bin,
                                  "$sd/sentinel.conf",
                                  ($bin eq 'redis-server' ? '--sentinel' : ()));
    Txval::Fleet::wait_up($pid, 17225, "$sd/sentinel.log");
}

my $s = Txval::Redis->client(port => 17225);
wait_for('the sentinel knows the master', 10, sub {
    my $a = $s->cmd(SENTINEL => 'get-master-addr-by-name', 'm750');
    ref $a eq 'ARRAY' && $a->[1] == 17221;
});
pass 'the sentinel names the master at its TLS port';

my $rm = Txval::Redis->client(port => 17220);

$ng->start(http => http_block(
    "txval_redis sentinel=127.0.0.1:17226 master=m750 $tls "
    . "sentinel_user=txs sentinel_password=$SPW prefix=t750s:;"));

my $t0 = time;
my $first = '';
while (time - $t0 < 3) {
    $first = outcome($ng->post('/t', tx(id => new_id('s'))));
    last if $first eq '200 computed';
    sleep 0.05;
}
is $first, '200 computed', 'Sentinel over TLS: 200';
is scalar @{ $rm->cmd(KEYS => 't750s:vel:*') }, 1,
   'Sentinel over TLS: the count is on the master';
like $ng->error_log, qr/txval: redis: master "m750" is 127\.0\.0\.1:17221/,
     'the master named, at its TLS port';
unlike $ng->error_log, qr/\[(error|alert|crit)\]/, 'no error';
$ng->stop_checked;

$ng->start(http => http_block(
    "txval_redis sentinel=127.0.0.1:17226 master=m750 $tls "
    . "sentinel_user=txs sentinel_password=wrong-$SPW prefix=t750s:;"));
sleep 0.2;
is outcome($ng->post('/t', tx(id => new_id('s')))), '503 backend_unavailable',
   'a wrong sentinel password: 503';
like $ng->error_log,
     qr/\[error\].*txval: redis 127\.0\.0\.1:17226: connection setup refused: WRONGPASS/,
     'a wrong sentinel password: the sentinel refused, logged';
unlike $ng->error_log, qr/\Q$SPW\E/, 'the password is not';
$ng->stop_checked;


# --- Cluster over TLS

my @plain = (17201 .. 17203);
my @tlsp = (17211 .. 17213);
my @node;

for my $i (0 .. 2) {
    push @node, Txval::Redis->start_server(
        port => $plain[$i], name => "750c$i", tls_port => $tlsp[$i],
        certs => $certs,
        args => [@tls_args, 'tls-cluster' => 'yes',
                 'cluster-enabled' => 'yes',
                 'cluster-config-file' => "$dir/nodes-$plain[$i].conf",
                 'cluster-node-timeout' => 2000]);
}

my @rc = map { Txval::Redis->client(port => $_) } @plain;

my @ranges = ([0, 5460], [5461, 10922], [10923, 16383]);
for my $i (0 .. 2) {
    my $r = $rc[$i]->cmd(CLUSTER => 'ADDSLOTSRANGE', @{ $ranges[$i] });
    die "ADDSLOTSRANGE: $r->{error}\n" if ref $r;
}
for my $i (1 .. 2) {
    # (the bus of a tls-cluster node is its TLS port + 10000)
    my $r = $rc[0]->cmd(CLUSTER => 'MEET', '127.0.0.1', $tlsp[$i]);
    die "MEET: $r->{error}\n" if ref $r;
}

wait_for('the cluster is ok', 20, sub {
    !grep { $_->cmd(CLUSTER => 'INFO') !~ /cluster_state:ok/ } @rc
});
pass 'a three-master cluster over TLS is up';

# keys of three hash tags, one per master

# (the key: prefix, "vel:", the card token, ":", the hour's window)
my $win = int(time / 3600);
my @tags;
for my $i (0 .. 2, 0) {
    for my $t (map { "t750k$_" } 1 .. 1000) {
        next if grep { $_ eq $t } @tags;
        my $slot = Txval::Fleet::key_slot("t750:vel:$t:$win");
        if ($slot >= $ranges[$i][0] && $slot <= $ranges[$i][1]) {
            push @tags, $t;
            last;
        }
    }
}
is scalar @tags, 4, 'a card token for each master, and one more';

$ng->start(http => http_block(
    "txval_redis cluster=127.0.0.1:$tlsp[0] $tls prefix=t750: "
    . "timeout=500ms;"));

$t0 = time;
$first = '';
while (time - $t0 < 3) {
    $first = outcome($ng->post('/t', tx(id => new_id('c'))));
    last if $first eq '200 computed';
    sleep 0.05;
}
is $first, '200 computed', 'Cluster over TLS: 200';

for my $i (0 .. 2) {
    my $body = qq({"id":"c$i-$$","amount":1000,"currency":"EUR",)
             . qq("merchant_id":"m_1","card_token":"$tags[$i]"});
    is outcome($ng->post('/t', $body)), '200 computed',
       "a key of master $i: 200";
    my $keys = $rc[$i]->cmd(KEYS => "t750:vel:$tags[$i]:*");
    is scalar @$keys, 1, "its count is on master $i (plain port $plain[$i])";
}

# a slot with no key yet given to master 1 by hand: master 0 answers MOVED
# (with master 1's TLS port, since it is asked over TLS), followed

my $slot = Txval::Fleet::key_slot("t750:vel:$tags[3]:$win");
my $id1 = $rc[1]->cmd(CLUSTER => 'MYID');
for my $r (@rc) {
    my $ok = $r->cmd(CLUSTER => 'SETSLOT', $slot, 'NODE', $id1);
    die "SETSLOT: $ok->{error}\n" if ref $ok;
}

my $body = qq({"id":"c3-$$","amount":1000,"currency":"EUR",)
         . qq("merchant_id":"m_1","card_token":"$tags[3]"});
is outcome($ng->post('/t', $body)), '200 computed', 'a moved slot: 200';
is scalar @{ $rc[1]->cmd(KEYS => "t750:vel:$tags[3]:*") }, 1,
   'a moved slot: the count is on master 1';
is scalar @{ $rc[0]->cmd(KEYS => "t750:vel:$tags[3]:*") }, 0,
   'a moved slot: none on master 0';
unlike $ng->error_log, qr/\[(alert|crit)\]|TLS/, 'no TLS error';
$ng->stop_checked;

done_testing;
