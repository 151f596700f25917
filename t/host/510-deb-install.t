# `make test-deb` (CI), not `make test`: this one changes the machine while
# it runs (it puts everything back). t/510-deb.t checks the same package
# unpacked under a private directory, within make test.
#
# make deb's package, installed for real: scripts/deb.sh builds
# libnginx-mod-http-txval from the module under test; dpkg -i installs it
# into this machine; the system nginx loads it through the enabled
# load_module snippet (the packaged path) and gives verdicts; Debian's
# module-package behaviour (the modules-enabled link made on install, moved
# aside on remove, kept off after an admin removed it, gone on purge);
# then the package is purged and the machine is as it was.
#
# Root only (dpkg); the module must be a plain build for Debian's nginx
# (not NGINX_SRC, not a sanitizer build).

use strict;
use warnings;

use Cwd qw(abs_path);
use File::Basename qw(dirname);
use File::Path qw(make_path remove_tree);
use Test::More;
use Time::HiRes qw(sleep time);

use lib 't/lib';
use Txval::Deb;

my $repo = abs_path(dirname(__FILE__) . '/../..');
my $pkg = 'libnginx-mod-http-txval';
my $nginx = '/usr/sbin/nginx';
my $so = '/usr/lib/nginx/modules/ngx_http_txval_module.so';
my $avail = '/usr/share/nginx/modules-available/mod-http-txval.conf';
my $enabled = '/etc/nginx/modules-enabled/50-mod-http-txval.conf';
my $module = $ENV{TEST_NGINX_TXVAL_MODULE} // "$repo/build/ngx_http_txval_module.so";
my $port = 1952;

plan skip_all => 'not root: dpkg -i needs root' if $> != 0;
Txval::Deb::skip_unless_packageable($nginx, $module);

sub status_of {
    my $s = `dpkg-query -W -f='\${db:Status-Abbrev}' $pkg 2>/dev/null`;
    $s =~ s/\s+$//;
    return $s;
}

plan skip_all => "$pkg is already installed here (" . status_of()
                 . "): not touching it" if status_of() =~ /^.[^n]/;

sub snapshot {
    return join "\n", map { -l $_ ? "$_ -> " . readlink($_) : $_ }
        sort glob '/etc/nginx/modules-enabled/*';
}

my $links_before = snapshot();

# dpkg, waiting a little if another dpkg/apt holds the lock
sub dpkg {
    my @args = @_;
    my ($out, $rc);
    my $deadline = time + 60;
    for (;;) {
        $out = `dpkg @args 2>&1`;
        $rc = $? >> 8;
        last unless $rc && $out =~ /lock/i && time < $deadline;
        sleep 1;
    }
    return ($rc, $out);
}

my $root = "$repo/t/servroot_deb510";
remove_tree($root);
make_path("$root/conf", "$root/logs", "$root/tmp");

END {
    my $status = $?;
    Txval::Deb::stop();
    # whatever happened: leave the machine as it was
    if (status_of() =~ /^.[^n]/) {
        my ($rc, $out) = dpkg('-P', $pkg);
        print STDERR "# cleanup: dpkg -P $pkg: $out" if $rc;
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

my %f;
for my $field (qw(Package Version Architecture Depends Section)) {
    chomp($f{$field} = `dpkg-deb -f '$deb' $field`);
}
is $f{Package}, $pkg, "Package: $pkg";
is $f{Architecture}, 'amd64', 'Architecture: amd64';
is $f{Section}, 'httpd', 'Section: httpd, as nginx modules';

my ($abi) = `dpkg-query -W -f='\${Provides}' nginx` =~ /(nginx-abi-[^\s,]+)/;
ok $abi, "the installed nginx provides " . ($abi // 'no ABI');
my @deps = map { s/\s*\(.*//r } split /,\s*/, $f{Depends};
is_deeply [sort grep { /^(nginx-abi-|libhiredis|libpq|libcjson)/ } @deps],
          [sort $abi // 'nginx-abi-?', qw(libhiredis0.14 libpq5)],
          "Depends: $f{Depends}";

my @files = sort map { m{ \./(\S+)$} ? "/$1" : () } `dpkg-deb -c '$deb'`;
ok((grep { $_ eq $so } @files), "ships $so");
ok((grep { $_ eq $avail } @files), "ships $avail");
ok(!(grep { m{^/etc/} } @files), 'ships nothing under /etc (the link is '
   . 'made by postinst)');
is `dpkg-deb --fsys-tarfile '$deb' | tar -xOf - '.$avail'`,
   "load_module modules/ngx_http_txval_module.so;\n",
   'the snippet loads modules/ngx_http_txval_module.so';


# --- install

{
    my ($rc, $out) = dpkg('-i', $deb);
    is $rc, 0, 'dpkg -i' or diag $out;
}

like status_of(), qr/^ii/, 'installed (ii)';
ok -f $so, "$so installed";
is readlink($enabled), $avail, "postinst links $enabled";

{
    my $out = `$nginx -t 2>&1`;
    is $?, 0, 'the system configuration (/etc/nginx/nginx.conf) tests fine '
              . 'with the module enabled' or diag $out;
}


# --- the system nginx, the packaged module, a test port

# the default prefix (/usr/share/nginx/): "modules/" is Debian's module
# directory, as for any packaged module
Txval::Deb::serves_ok(nginx => $nginx, root => $root, include => $enabled,
                      port => $port, so => $so,
                      what => 'the system nginx runs with the packaged'
                              . ' module');

# --- Debian's module-package behaviour

{
    # an admin disables the module; a reinstall (upgrade) keeps it off
    unlink $enabled;
    my ($rc, $out) = dpkg('-i', $deb);
    is $rc, 0, 'dpkg -i again (upgrade)' or diag $out;
    ok !-e $enabled && !-l $enabled, 'the admin\'s removed link stays removed';
    symlink $avail, $enabled;
}

{
    my ($rc, $out) = dpkg('-r', $pkg);
    is $rc, 0, 'dpkg -r' or diag $out;
    ok !-e $so, "$so removed";
    ok !-l $enabled && -l "$enabled.removed",
       'the link is moved aside (.removed), as for Debian\'s modules';
    unlike status_of(), qr/^ii/, 'not installed';
}

{
    # reinstall after a remove: the link comes back
    my ($rc, $out) = dpkg('-i', $deb);
    is $rc, 0, 'dpkg -i after the remove' or diag $out;
    is readlink($enabled), $avail, 'the link is back';
    ok !-l "$enabled.removed", 'and the .removed one is gone';
}

{
    my ($rc, $out) = dpkg('-P', $pkg);
    is $rc, 0, 'dpkg -P (purge)' or diag $out;
    ok !-l $enabled && !-l "$enabled.removed", 'no link left';
    ok !-e $so && !-e $avail, 'no file left';
    is status_of(), '', 'the package is unknown to dpkg again';
}

is snapshot(), $links_before, '/etc/nginx/modules-enabled as it was';

done_testing;
