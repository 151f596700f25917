# Redis over TLS and with ACL users, against a redis-server of this test's
# own (plain port for the test's own checks, TLS port for nginx), with
# certificates made by openssl now: a verified connection (by address
# and by name); a wrong CA and a wrong name refused (503 fail-closed and a
# clear error-log line); mutual TLS required, then given; TLS sessions
# reused across reconnects; an ACL user, password_file=, a wrong
# password; a mistyped password= whose value reaches neither nginx -t
# nor the error log; a TLS Redis killed (-9) and restarted under traffic.
#
# Ports: Redis 16396 (plain) and 16397 (TLS), nginx 1980.

use strict;
use warnings;

use lib 't/lib';
use Cwd qw(abs_path);
use File::Path ();
use Test::More;
use Time::HiRes qw(sleep time);
use Txval::Nginx;
use Txval::Redis;
use Txval::Tx qw(tx_defaults tx outcome new_id ids_made);

my ($plain, $tlsp) = (16396, 16397);
my $PW = 'pw-Secret-730';

my $dir = abs_path('t') . '/servroot_730certs';
File::Path::remove_tree($dir);
my $certs = Txval::Redis::tls_certs($dir);

# a new transaction each time: its own id ("<tag>-<pid>-<n>") and card
# (tok730_<n>)
tx_defaults(currency => 'EUR', card_token => sub { 'tok730_' . ids_made() });

# velocity on: Redis serves a rule, so a Redis failure is a 503
# under valgrind a TLS handshake takes far longer than the defaults allow
my $slow = $ENV{TEST_NGINX_USE_VALGRIND} ? 'connect_timeout=3s timeout=3s ' : '';

sub http_block {
    my ($redis, %o) = @_;
    $redis =~ s/^(txval_redis \S+ )/$1$slow/;
    my $loc = $o{locations} // '';
    return <<"HTTP";
    $redis
    server {
        listen 127.0.0.1:1980;
        server_name localhost;
        location /t { txval; txval_velocity 100 1h; }
$loc
    }
HTTP
}

sub velocity_keys {
    my ($r, $prefix) = @_;
    my $keys = $r->cmd(KEYS => "${prefix}vel:*");
    return ref $keys eq 'ARRAY' ? scalar @$keys : -1;
}

my $srv = Txval::Redis->start_server(port => $plain, name => '730tls',
                                     tls_port => $tlsp, certs => $certs);
my $r = Txval::Redis->client(port => $plain);

my $ng = Txval::Nginx->new(name => '730', port => 1980,
                         valgrind => 1);

# stopped; under make valgrind, memcheck's report of it must be empty

my $trusted = "tls=on tls_trusted_certificate=$certs->{ca}";


# --- verified TLS

for my $case (["by address (IP SAN)", ''],
              ["by name", 'tls_name=localhost'],
              ["by name, the CN not looked at", 'tls_name=redis.test'])
{
    my ($what, $extra) = @$case;
    $ng->start(http => http_block(
        "txval_redis 127.0.0.1:$tlsp $trusted $extra prefix=t730a:;"));
    my $before = velocity_keys($r, 't730a:');
    my $res = $ng->post('/t', tx(id => new_id('a')));
    is outcome($res), '200 computed', "TLS verified $what: 200";
    is velocity_keys($r, 't730a:'), $before + 1,
       "TLS verified $what: the velocity count is in Redis";
    unlike $ng->error_log, qr/\[(error|alert|crit)\]/,
           "TLS verified $what: no error";
    $ng->stop_checked;
}


# --- refused: fail closed, a clear line

for my $case (['a wrong CA', "tls=on tls_trusted_certificate=$certs->{other_ca}",
               qr/\[error\].*txval: redis 127\.0\.0\.1:$tlsp: TLS certificate verify error: \(\d+:[^)]+\)/],
              ['a wrong name', "$trusted tls_name=wrong.example",
               qr/\[error\].*txval: redis 127\.0\.0\.1:$tlsp: TLS certificate does not match "wrong\.example"/],
              ['plain TCP to a TLS port', '',
               qr/\[error\].*txval: redis 127\.0\.0\.1:$tlsp: (connection lost|command timed out)/])
{
    my ($what, $params, $line) = @$case;
    $ng->start(http => http_block(
        "txval_redis 127.0.0.1:$tlsp $params prefix=t730b: timeout=200ms;"));
    my $res = $ng->post('/t', tx(id => new_id('b')));
    is outcome($res), '503 backend_unavailable', "$what: 503";
    like $ng->error_log, $line, "$what: the error log says why";
    is velocity_keys($r, 't730b:'), 0, "$what: nothing reached Redis";
    $ng->stop_checked;
}

# tls_verify=off: the wrong CA is let through (on purpose)
$ng->start(http => http_block("txval_redis 127.0.0.1:$tlsp tls=on "
                              . "tls_verify=off prefix=t730c:;"));
is outcome($ng->post('/t', tx(id => new_id('c')))), '200 computed',
   'tls_verify=off: no chain, no name checked';
$ng->stop_checked;


# --- mutual TLS

$srv->stop;
$srv = Txval::Redis->start_server(port => $plain, name => '730tls',
                                  tls_port => $tlsp, certs => $certs,
                                  tls_auth_clients => 'yes');
$r = Txval::Redis->client(port => $plain);

$ng->start(http => http_block(
    "txval_redis 127.0.0.1:$tlsp $trusted prefix=t730d:;"));
is outcome($ng->post('/t', tx(id => new_id('d')))), '503 backend_unavailable',
   'mutual TLS required, no client certificate: 503';
like $ng->error_log, qr/\[error\].*txval: redis 127\.0\.0\.1:$tlsp: (TLS handshake failed|connection lost)/,
     'mutual TLS required, no client certificate: logged';
$ng->stop_checked;

$ng->start(http => http_block(
    "txval_redis 127.0.0.1:$tlsp $trusted "
    . "tls_certificate=$certs->{client_crt} "
    . "tls_certificate_key=$certs->{client_key} prefix=t730d:;"));
is outcome($ng->post('/t', tx(id => new_id('d')))), '200 computed',
   'mutual TLS: the client certificate is taken';
is velocity_keys($r, 't730d:'), 1, 'mutual TLS: counted in Redis';
$ng->stop_checked;


# --- sessions reused across reconnects (idle connections closed between)

$ng->start(main => 'error_log logs/debug.log debug;',
           http => http_block("txval_redis 127.0.0.1:$tlsp $trusted "
                              . "tls_certificate=$certs->{client_crt} "
                              . "tls_certificate_key=$certs->{client_key} "
                              . "pool=1 idle_timeout=100ms prefix=t730e:;"));
for my $i (1 .. 3) {
    is outcome($ng->post('/t', tx(id => new_id('e')))), '200 computed',
       "reconnect $i: 200";
    # its idle time starts at the reply to its last command (the verdict's
    # write, after the response): wait until Redis has seen it go
    my $left;
    for (1 .. 2000) {
        $left = grep { !/cmd=client\|list/ }
                split /\n/, $r->cmd(CLIENT => 'LIST');
        last if $left == 0;
        sleep 0.01;
    }
    is $left, 0, "reconnect $i: the idle connection was closed";
}
{
    open my $fh, '<', $ng->root . '/logs/debug.log' or die;
    local $/;
    my $log = <$fh>;
    my @hs = $log =~ /TLS handshake done, reused:(\d)/g;
    is scalar(@hs), 3, 'three connections, three handshakes';
    is "@hs", '0 1 1', 'the 2nd and 3rd reuse the session';
}
$ng->stop_checked;


# --- ACL users, password_file, a wrong password

$r->cmd(ACL => 'SETUSER', 'txv730', 'on', ">$PW", '~t730*', '+@all');

my $pwfile = "$dir/redis.pw";
open my $fh, '>', $pwfile or die;
print $fh "$PW\n";
close $fh;

for my $case (['user= password=', "user=txv730 password=$PW"],
              ['user= password_file=', "user=txv730 password_file=$pwfile"])
{
    my ($what, $auth) = @$case;
    $ng->start(http => http_block(
        "txval_redis 127.0.0.1:$tlsp $trusted "
        . "tls_certificate=$certs->{client_crt} "
        . "tls_certificate_key=$certs->{client_key} $auth prefix=t730f:;"));
    my $before = velocity_keys($r, 't730f:');
    is outcome($ng->post('/t', tx(id => new_id('f')))), '200 computed',
       "ACL $what: 200";
    is velocity_keys($r, 't730f:'), $before + 1, "ACL $what: counted";
    unlike $ng->error_log, qr/\Q$PW\E/, "ACL $what: the password not logged";
    $ng->stop_checked;
}

open $fh, '>', $pwfile or die;
print $fh "wrong-$PW\r\n";
close $fh;

$ng->start(http => http_block(
    "txval_redis 127.0.0.1:$tlsp $trusted "
    . "tls_certificate=$certs->{client_crt} "
    . "tls_certificate_key=$certs->{client_key} user=txv730 "
    . "password_file=$pwfile prefix=t730g:;"));
is outcome($ng->post('/t', tx(id => new_id('g')))), '503 backend_unavailable',
   'a wrong password: 503';
like $ng->error_log,
     qr/\[error\].*txval: redis 127\.0\.0\.1:$tlsp: connection setup refused: WRONGPASS/,
     'a wrong password: logged';
unlike $ng->error_log, qr/\Q$PW\E/, 'a wrong password: not logged';
$ng->stop_checked;


# --- a mistyped secret stays secret: nginx -t and the error log

for my $typo ("pasword=$PW", "Password=$PW", "sentinel_pasword=$PW", $PW) {
    my $root = $ng->root;
    File::Path::make_path("$root/conf", "$root/logs");
    $ng->write_config(http => http_block(
        "txval_redis 127.0.0.1:$tlsp $typo;"));
    my $out = `$ng->{binary} -t -p $root/ -c conf/nginx.conf -e logs/error.log 2>&1`;
    isnt $?, 0, "nginx -t refuses \"$typo\" =~ s/$PW/PW/r";
    like $out, qr/\[emerg\].*(unknown parameter|invalid parameter \d+)/,
         'the parameter is named';
    unlike $out, qr/\Q$PW\E/, 'nginx -t does not show the secret';
    my $elog = -e "$root/logs/error.log" ? do {
        open my $e, '<', "$root/logs/error.log"; local $/; <$e> // '' } : '';
    unlike $elog, qr/\Q$PW\E/, 'the error log does not show the secret';
}


# --- a TLS Redis killed (-9) and restarted under traffic

$ng->start(http => http_block(
    "txval_redis 127.0.0.1:$tlsp $trusted "
    . "tls_certificate=$certs->{client_crt} "
    . "tls_certificate_key=$certs->{client_key} prefix=t730h: pool=4;"));

is outcome($ng->post('/t', tx(id => new_id('h')))), '200 computed',
   'before the kill: 200';

for my $round (1 .. 3) {
    $srv->kill9;
    my $down = outcome($ng->post('/t', tx(id => new_id('h'))));
    is $down, '503 backend_unavailable', "round $round: Redis down: 503";
    $srv->restart;
    my $t0 = time;
    my $ok = 0;
    while (time - $t0 < 3) {
        $ok = 1, last
            if outcome($ng->post('/t', tx(id => new_id('h'))))
               eq '200 computed';
        sleep 0.05;
    }
    ok $ok, sprintf "round %d: back within %.2f s", $round, time - $t0;
    my @all = map { outcome($ng->post('/t', tx(id => new_id('h')))) } 1 .. 20;
    is scalar(grep { $_ eq '200 computed' } @all), 20,
       "round $round: every request after that succeeds";
}

unlike $ng->error_log, qr/\[(alert|crit)\]|worker process \d+ exited/,
       'no worker died';
$ng->stop_checked;

done_testing;
