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
use Test::More;

use lib 't/lib';
use Txval::Deb;

my $repo = abs_path(dirname(__FILE__) . '/..');
my $pkg = 'libnginx-mod-http-txval';
my $nginx = '/usr/sbin/nginx';
my $so = 'usr/lib/nginx/modules/ngx_http_txval_module.so';
my $avail = 'usr/share/nginx/modules-available/mod-http-txval.conf';
my $doc = "usr/share/doc/$pkg";
my $module = $ENV{TEST_NGINX_TXVAL_MODULE} // "$repo/build/ngx_http_txval_module.so";
my $port = 1953;

Txval::Deb::skip_unless_packageable($nginx, $module);

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

Txval::Deb::serves_ok(nginx => $nginx, root => $root,
                      include => "$root/pkg/$avail",
                      prefix => "$root/pkg/usr/share/nginx/",
                      port => $port,
                      so => abs_path("$root/pkg/$so"),
                      runs => "the unpacked $so",
                      what => "Debian's nginx runs with the unpacked module");

is host_state(), $before,
   'dpkg\'s database and the system\'s module directories are as they were';

done_testing;
