# make deb's package, checked without installing it: scripts/deb.sh builds
# libnginx-mod-http-txval from the module under test; its control fields
# (Depends on the nginx ABI and the libraries, a Maintainer, Section), its
# files (the module, the load_module snippet, nothing under /etc), its
# copyright file (the repository's LICENSE, BSD-2-Clause, in Debian's
# machine-readable format), its changelog (parses, names this version);
# then `dpkg -x` unpacks it under a private directory, and Debian's nginx,
# with that directory as its prefix, loads the module through the
# package's own snippet (the relative "modules/" path, as in Debian's
# layout) and gives verdicts. Nothing outside the test's server root is
# touched: dpkg's database, /etc and the system's nginx stay as they were
# (checked). Installing it for real is t/host/510-deb-install.t (make
# test-deb).
#
# The module must be a plain build for Debian's nginx (not NGINX_SRC, not
# a sanitizer build).

use strict;
use warnings;

use Cwd qw(abs_path);
use File::Basename qw(dirname);
use File::Path qw(make_path remove_tree);
use IO::Socket::INET;
use POSIX qw(WNOHANG);
use Test::More;
use Time::HiRes qw(sleep time);

use lib 't/lib';
use Txval::Nginx;

my $repo = abs_path(dirname(__FILE__) . '/..');
my $pkg = 'libnginx-mod-http-txval';
my $nginx = '/usr/sbin/nginx';
my $so = 'usr/lib/nginx/modules/ngx_http_txval_module.so';
my $avail = 'usr/share/nginx/modules-available/mod-http-txval.conf';
my $doc = "usr/share/doc/$pkg";
my $module = $ENV{TEST_NGINX_TXVAL_MODULE} // "$repo/build/ngx_http_txval_module.so";
my $port = 1953;

plan skip_all => 'no dpkg-deb' unless -x '/usr/bin/dpkg-deb';
plan skip_all => "no $nginx" unless -x $nginx;
plan skip_all => "SANITIZE=$ENV{SANITIZE}: the package is for a plain build"
    if $ENV{SANITIZE};
plan skip_all => "$module missing" unless -f $module;
plan skip_all => "$module links a sanitizer runtime"
    if `readelf -d '$module' 2>/dev/null` =~ /NEEDED.*lib[atm]san/;

{
    my $bin = abs_path($ENV{TEST_NGINX_BINARY} // $nginx) // '';
    plan skip_all => "TEST_NGINX_BINARY is $bin: the package is for "
                     . "Debian's $nginx" if $bin ne $nginx;
}

# what the machine looks like, to compare at the end (dpkg's view of this
# package, not of all: another apt-get may run meanwhile)
sub host_state {
    return join "\n",
        scalar `dpkg-query -W -f='\${db:Status-Abbrev} \${Version}' $pkg 2>&1`,
        (map { -l $_ ? "$_ -> " . readlink($_) : $_ }
             sort glob('/etc/nginx/modules-enabled/*'),
                  glob('/usr/lib/nginx/modules/*'),
                  glob('/usr/share/nginx/modules-available/*'));
}

my $before = host_state();

my $root = "$repo/t/servroot_deb510";
remove_tree($root);
make_path("$root/conf", "$root/logs", "$root/tmp", "$root/pkg");

my $nginx_pid;

END {
    my $status = $?;
    if ($nginx_pid) {
        kill 'TERM', $nginx_pid;
        waitpid $nginx_pid, 0;
    }
    $? = $status;
}


# --- build

my $deb = `TXVAL_MODULE='$module' '$repo/scripts/deb.sh' '$root' 2>'$root/deb.log'`;
my $built = $? == 0;
chomp $deb;
ok $built, 'scripts/deb.sh builds the package' or diag `cat '$root/deb.log'`;
BAIL_OUT('no package') unless $built && -f $deb;

like $deb, qr{/libnginx-mod-http-txval_[0-9][^_]*_amd64\.deb$},
     'named libnginx-mod-http-txval_<version>_amd64.deb';


# --- control

my %f;
for my $field (qw(Package Version Architecture Depends Section Maintainer)) {
    chomp($f{$field} = `dpkg-deb -f '$deb' $field`);
}
is $f{Package}, $pkg, "Package: $pkg";
is $f{Architecture}, 'amd64', 'Architecture: amd64';
is $f{Section}, 'httpd', 'Section: httpd, as nginx modules';
like $f{Maintainer}, qr/^[^<>]*\S\s+<[^<>\s]+@[^<>\s]+\.[a-z]+>$/,
     "Maintainer: a name and an address ($f{Maintainer})";

chomp(my $upstream = `cat '$repo/packaging/VERSION'`);
like $f{Version}, qr/^\Q$upstream\E-\d+$/,
     "Version $f{Version}: packaging/VERSION and a Debian revision";

my ($abi) = `dpkg-query -W -f='\${Provides}' nginx` =~ /(nginx-abi-[^\s,]+)/;
ok $abi, "the installed nginx provides " . ($abi // 'no ABI');
my @deps = map { s/\s*\(.*//r } split /,\s*/, $f{Depends};
is_deeply [sort grep { /^(nginx-abi-|libhiredis|libpq|libcjson)/ } @deps],
          [sort $abi // 'nginx-abi-?', qw(libhiredis0.14 libpq5)],
          "Depends: $f{Depends}";


# --- files

my @files = sort map { m{ \./(\S+)$} ? $1 : () } `dpkg-deb -c '$deb'`;
for my $want ($so, $avail, "$doc/copyright", "$doc/changelog.Debian.gz",
              "$doc/README.md.gz") {
    ok((grep { $_ eq $want } @files), "ships /$want");
}
ok(!(grep { m{^etc/} } @files), 'ships nothing under /etc (the link is '
   . 'made by postinst)');

# every file the README links to (docs/, examples/) is in the package too
{
    my $readme = do { local (@ARGV, $/) = "$repo/README.md"; <> };
    my %linked = map { $_ => 1 }
                 $readme =~ /\]\(((?:docs|examples)\/[^)#\s]+)[^)]*\)/g;
    ok %linked, 'the README links docs/ or examples/ ('
                . join(', ', sort keys %linked) . ')';
    for my $l (sort keys %linked) {
        my $in = $l =~ /\.md$/ ? "$doc/$l.gz" : "$doc/$l";
        ok((grep { $_ eq $in } @files), "the README's $l is in the package "
                                        . "(/$in)");
    }
}

{
    my $r = system("dpkg-deb -x '$deb' '$root/pkg'");
    is $r, 0, 'dpkg -x unpacks it under the test\'s own directory';
}

is do { local (@ARGV, $/) = "$root/pkg/$avail"; <> },
   "load_module modules/ngx_http_txval_module.so;\n",
   'the snippet loads modules/ngx_http_txval_module.so';

{
    my $copyright = do { local (@ARGV, $/) = "$root/pkg/$doc/copyright"; <> };
    my $license = do { local (@ARGV, $/) = "$repo/LICENSE"; <> };
    like $copyright, qr{^Format: https://www\.debian\.org/doc/packaging-manuals/copyright-format/1\.0/$}m,
         'copyright: machine-readable format';
    like $copyright, qr/^License: BSD-2-Clause$/m, 'copyright: BSD-2-Clause';
    unlike $copyright, qr/unspecified|No license/i,
           'copyright: no "unspecified" license left';
    like $license, qr/^BSD 2-Clause License$/m, 'LICENSE: BSD 2-Clause';
    my $embedded = join '', map { s/^ \.$//r =~ s/^ //r . "\n" }
                   grep { /^ / } split /\n/, ($copyright =~ /^License: BSD-2-Clause\n((?: .*\n?)+)/m)[0] // '';
    is $embedded, $license, 'copyright: the LICENSE text, word for word';
}

{
    my $log = `gzip -dc '$root/pkg/$doc/changelog.Debian.gz' > '$root/changelog' && dpkg-parsechangelog -l '$root/changelog' -S Version 2>&1`;
    chomp $log;
    is $log, $f{Version}, "changelog.Debian.gz parses, at $f{Version}";
    my $who = `dpkg-parsechangelog -l '$root/changelog' -S Maintainer 2>&1`;
    chomp $who;
    like $who, qr/<[^<>\s]+@[^<>\s]+>$/, "the changelog entry is signed ($who)";
}


# --- Debian's nginx, the unpacked package as its prefix

# Debian's prefix /usr/share/nginx has modules -> ../../lib/nginx/modules
# (nginx-common); the same link in the unpacked tree makes the snippet's
# relative path find the unpacked module
symlink '../../lib/nginx/modules', "$root/pkg/usr/share/nginx/modules"
    or die "symlink: $!";

open my $fh, '>', "$root/conf/nginx.conf" or die $!;
my $user = $> == 0 ? "user root;\n" : '';
print $fh <<"CONF";
include $root/pkg/$avail;

${user}daemon off;
master_process on;
worker_processes 2;
pid $root/logs/nginx.pid;
error_log $root/logs/error.log info;

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
    exec $nginx, '-p', "$root/pkg/usr/share/nginx/",
         '-c', "$root/conf/nginx.conf", '-e', "$root/logs/error.log"
        or POSIX::_exit(127);
}

my $up = 0;
for (1 .. 250) {
    last if waitpid($nginx_pid, WNOHANG) == $nginx_pid;
    if (IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port)) {
        $up = 1;
        last;
    }
    sleep 0.02;
}
ok $up, "Debian's nginx runs with the unpacked module on :$port"
    or diag `cat '$root/logs/error.log'`;

my $client = Txval::Nginx->new(name => 'deb510client', port => $port);

SKIP: {
    skip 'nginx did not start', 6 unless $up;

    my $ok = $client->post('/v1/validate', '{"id":"deb_1","amount":2500,'
        . '"currency":"USD","merchant_id":"m_1","card_token":"tok_1"}');
    is $ok->{status}, 200, 'a valid transaction: 200';
    is $ok->{body}, qq({"id":"deb_1","verdict":"approved","reasons":[],)
                    . qq("risk_score":0,"source":"computed"}\n),
       'approved';

    my $no = $client->post('/v1/validate', '{"id":"deb_2","amount":50,'
        . '"currency":"USD","merchant_id":"m_1","card_token":"tok_1"}');
    is $no->{status}, 402, 'an amount below the minimum: 402';
    like $no->{body}, qr/"verdict":"declined","reasons":\["amount_out_of_range"\]/,
         'declined: amount_out_of_range';

    my $m = $client->metrics;
    is_deeply [ map { $m->{values}{qq(txval_requests_total{verdict="$_"})} }
                qw(approved declined) ], [1, 1], 'metrics: 1 approved, 1 declined';

    # the workers mapped the unpacked file, not the build tree's
    my @maps;
    for my $w (glob "/proc/[0-9]*/stat") {
        open my $s, '<', $w or next;
        my $line = <$s> // '';
        next unless $line =~ /^(\d+) \(.*\) \S+ $nginx_pid /;
        open my $mp, '<', "/proc/$1/maps" or next;
        push @maps, grep { /ngx_http_txval_module/ } <$mp>;
    }
    my $unpacked = abs_path("$root/pkg/$so");
    ok @maps && !(grep { !m{\Q$unpacked\E$} } @maps),
       "the workers run the unpacked $so" or diag @maps;
}

if ($nginx_pid) {
    kill 'QUIT', $nginx_pid;
    waitpid $nginx_pid, 0;
    undef $nginx_pid;
}

is host_state(), $before,
   'dpkg\'s database and the system\'s module directories are as they were';

done_testing;
