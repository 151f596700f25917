package Txval::Deb;

# What the package tests share (t/510-deb.t: make deb's package unpacked
# under a private directory; t/host/510-deb-install.t: installed for
# real): Debian's nginx run with a configuration that includes the
# package's load_module snippet and answers at /v1/validate and /metrics,
# then two verdicts, the metrics, and the file the workers mapped.
#
#   Txval::Deb::skip_unless_packageable($nginx, $module);
#       # plan skip_all where no package can be made and run here: no
#       # dpkg-deb, no nginx, a sanitizer build, a TEST_NGINX_BINARY
#       # other than Debian's nginx
#
#   Txval::Deb::serves_ok(nginx => '/usr/sbin/nginx',
#                         root => $dir,   # conf/, logs/, tmp/ in it
#                         include => $the_load_module_snippet,
#                         prefix => $dir, # nginx -p (default: its own)
#                         port => 1951,
#                         so => $the_module_file_the_workers_must_map,
#                         runs => $so_as_the_test_names_it,   # (default so)
#                         what => 'the system nginx runs with the packaged'
#                                 . ' module');
#
# Seven tests; nginx is stopped again before it returns (when the test
# dies half-way: at its end, or by Txval::Deb::stop()).

use strict;
use warnings;

use Cwd qw(abs_path);
use IO::Socket::INET;
use POSIX qw(WNOHANG);
use Test::More ();
use Time::HiRes qw(sleep);

use Txval::Nginx;

my $nginx_pid;

END {
    my $status = $?;
    stop();
    $? = $status;
}


# a nginx serves_ok left running (it died half-way) is stopped

sub stop {
    return unless $nginx_pid;
    kill 'TERM', $nginx_pid;
    waitpid $nginx_pid, 0;
    undef $nginx_pid;
}


sub skip_unless_packageable {
    my ($nginx, $module) = @_;

    my $bin = abs_path($ENV{TEST_NGINX_BINARY} // $nginx) // '';

    my $why = !-x '/usr/bin/dpkg-deb' ? 'no dpkg-deb'
            : !-x $nginx ? "no $nginx"
            : $ENV{SANITIZE} ? "SANITIZE=$ENV{SANITIZE}: the package is for"
                               . " a plain build"
            : !-f $module ? "$module missing"
            : `readelf -d '$module' 2>/dev/null` =~ /NEEDED.*lib[atm]san/
              ? "$module links a sanitizer runtime"
            : $bin ne $nginx ? "TEST_NGINX_BINARY is $bin: the package is"
                               . " for Debian's $nginx"
            : undef;

    Test::More::plan(skip_all => $why) if defined $why;
}


sub serves_ok {
    my (%a) = @_;

    my ($root, $port) = ($a{root}, $a{port});
    my $error_log = "$root/logs/error.log";

    open my $fh, '>', "$root/conf/nginx.conf" or die $!;
    my $user = $> == 0 ? "user root;\n" : '';
    print $fh <<"CONF";
include $a{include};

${user}daemon off;
master_process on;
worker_processes 2;
pid $root/logs/nginx.pid;
error_log $error_log info;

events {
    worker_connections 64;
}

http {
    access_log off;
    client_body_temp_path $root/tmp/body;
    proxy_temp_path $root/tmp/proxy;
    fastcgi_temp_path $root/tmp/fastcgi;
    uwsgi_temp_path $root/tmp/uwsgi;
    scgi_temp_path $root/tmp/scgi;

    txval_cache_zone deb510:1m;
    txval_amount_limit USD 100 500000;

    server {
        listen 127.0.0.1:$port;

        location = /v1/validate {
            txval;
        }

        location = /metrics {
            txval_metrics;
            allow 127.0.0.1;
            deny all;
        }
    }
}
CONF
    close $fh;

    $nginx_pid = fork // die "fork: $!";
    if ($nginx_pid == 0) {
        exec $a{nginx}, (defined $a{prefix} ? ('-p', $a{prefix}) : ()),
             '-c', "$root/conf/nginx.conf", '-e', $error_log
            or POSIX::_exit(127);
    }

    my $up = 0;
    for (1 .. 250) {
        last if waitpid($nginx_pid, WNOHANG) == $nginx_pid;
        if (IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                  PeerPort => $port))
        {
            $up = 1;
            last;
        }
        sleep 0.02;
    }
    Test::More::ok($up, "$a{what} on :$port")
        or Test::More::diag(`cat '$error_log'`);

    my $client = Txval::Nginx->new(name => 'deb510client', port => $port);

    SKIP: {
        Test::More::skip('nginx did not start', 6) unless $up;

        my $ok = $client->post('/v1/validate', '{"id":"deb_1","amount":2500,'
            . '"currency":"USD","merchant_id":"m_1","card_token":"tok_1"}');
        Test::More::is($ok->{status}, 200, 'a valid transaction: 200');
        Test::More::is($ok->{body},
                       qq({"id":"deb_1","verdict":"approved","reasons":[],)
                       . qq("risk_score":0,"source":"computed"}\n),
                       'approved');

        my $no = $client->post('/v1/validate', '{"id":"deb_2","amount":50,'
            . '"currency":"USD","merchant_id":"m_1","card_token":"tok_1"}');
        Test::More::is($no->{status}, 402,
                       'an amount below the minimum: 402');
        Test::More::like($no->{body},
            qr/"verdict":"declined","reasons":\["amount_out_of_range"\]/,
            'declined: amount_out_of_range');

        my $m = $client->metrics;
        Test::More::is_deeply(
            [ map { $m->{values}{qq(txval_requests_total{verdict="$_"})} }
              qw(approved declined) ], [1, 1],
            'metrics: 1 approved, 1 declined');

        # the workers mapped this file, not the build tree's
        my @maps;
        for my $w (glob "/proc/[0-9]*/stat") {
            open my $s, '<', $w or next;
            my $line = <$s> // '';
            next unless $line =~ /^(\d+) \(.*\) \S+ $nginx_pid /;
            open my $mp, '<', "/proc/$1/maps" or next;
            push @maps, grep { /ngx_http_txval_module/ } <$mp>;
        }
        Test::More::ok(@maps && !(grep { !m{\Q$a{so}\E$} } @maps),
                       'the workers run ' . ($a{runs} // $a{so}))
            or Test::More::diag(@maps);
    }

    kill 'QUIT', $nginx_pid;
    waitpid $nginx_pid, 0;
    undef $nginx_pid;
}


1;
