# Every example is drop-in: each examples/*.conf and each ```nginx block of
# README.md and docs/*.md passes `nginx -t` twice, with the module under
# test:
#
#   Debian's layout   a copy of this machine's /etc/nginx (Debian's
#                     nginx.conf, its includes), the module enabled as the
#                     package enables it (modules-enabled/
#                     50-mod-http-txval.conf), and the example where the
#                     README says it goes: an http-level file in conf.d/, a
#                     server-level fragment (locations) inside a server in
#                     sites-enabled/, a load_module line in
#                     modules-enabled/, a whole nginx.conf as nginx.conf;
#   standalone        a minimal nginx.conf of its own: load_module, events,
#                     and the example in http {} (or in a server in it).
#
# The blocks are found anew on each run, so a block added to the README
# later is checked too. The context of a block is read from its top-level
# directives (load_module, events, http: main; location, listen,
# server_name: server; anything else: http).
#
# What the test changes in a copy, so that nothing outside its own
# directory is touched (nginx -t opens logs and the pid file and makes the
# temporary directories) and site-specific files need not exist:
# load_module lines point at the module under test; /etc/nginx/ and
# /var/log/nginx/ at the copy; the pid file, the temporary paths and the
# default access log into the test's directory; ssl_certificate and
# ssl_certificate_key, and txval_redis' tls_trusted_certificate=,
# tls_certificate=, tls_certificate_key= at a self-signed pair made for the
# test, its password_file= at a file of the test's; not as
# root, a privileged port in a listen line becomes 18000 + port, and a
# server without one listens on 18080 (nginx -t
# binds the listening sockets, so run it where the ports are free: make
# test runs in a network namespace of its own). Backends need not be up (nginx -t
# does not connect), but their host names must resolve here: examples use
# addresses.

use strict;
use warnings;

use Cwd qw(abs_path);
use File::Basename qw(dirname basename);
use File::Path qw(make_path remove_tree);
use Test::More;

use lib 't/lib';
use Txval::Files qw(slurp spew);

my $repo = abs_path(dirname(__FILE__) . '/..');
my $nginx = $ENV{TEST_NGINX_BINARY} // '/usr/sbin/nginx';
my $module = $ENV{TEST_NGINX_TXVAL_MODULE}
             // "$repo/build/ngx_http_txval_module.so";
my $tmp = "$repo/t/servroot_examples520";

plan skip_all => "$module missing" unless -f $module;
plan skip_all => "no $nginx" unless -x $nginx;
plan skip_all => 'no /etc/nginx/nginx.conf (Debian\'s nginx-common)'
    unless -f '/etc/nginx/nginx.conf';

remove_tree($tmp);
make_path("$tmp/log", "$tmp/tls", "$tmp/temp");


# --- the units: files and fenced blocks

my @units;

for my $f (sort glob "$repo/examples/*.conf") {
    push @units, { name => 'examples/' . basename($f), text => slurp($f) };
}

for my $doc ("$repo/README.md", sort glob "$repo/docs/*.md") {
    my $rel = substr $doc, length("$repo/");
    my ($in, $start, $text, $n) = (0, 0, '', 0);
    for my $line (split /\n/, slurp($doc)) {
        $n++;
        if (!$in && $line =~ /^```nginx\s*$/) {
            ($in, $start, $text) = (1, $n, '');
        } elsif ($in && $line =~ /^```\s*$/) {
            push @units, { name => "$rel:$start", text => $text };
            $in = 0;
        } elsif ($in) {
            $text .= "$line\n";
        }
    }
}

ok scalar(grep { $_->{name} =~ /^examples\// } @units) >= 1,
   'examples/*.conf found';
ok scalar(grep { $_->{name} =~ /^README\.md:/ } @units) >= 3,
   'README.md has ```nginx blocks (' . scalar(grep { $_->{name} =~ /^README/ } @units) . ')';


# --- the context of a unit: its top-level directives

sub top_level {
    my ($text) = @_;
    my (@names, $depth, $stmt, $q);
    $depth = 0;
    $stmt = 1;
    # strip comments outside quotes
    my $clean = '';
    for my $line (split /\n/, $text) {
        my $out = '';
        $q = '';
        for my $c (split //, $line) {
            if ($q) { $q = '' if $c eq $q; $out .= $c; next }
            if ($c eq '"' || $c eq "'") { $q = $c; $out .= $c; next }
            last if $c eq '#';
            $out .= $c;
        }
        $clean .= "$out\n";
    }
    # quoted strings out of the way, then words, braces and semicolons
    $clean =~ s/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'/STR/gs;
    for my $tok ($clean =~ /([{};]|[^\s{};]+)/g) {
        if ($tok eq '{') { $depth++; $stmt = 1; next }
        if ($tok eq '}') { $depth--; $stmt = 1; next }
        if ($tok eq ';') { $stmt = 1; next }
        if ($stmt) {
            push @names, $tok if $depth == 0;
            $stmt = 0;
        }
    }
    return @names;
}

my %main_only = map { $_ => 1 } qw(load_module events http worker_processes
    pid user daemon master_process env worker_rlimit_nofile thread_pool
    stream mail);
my %server_level = map { $_ => 1 } qw(location listen server_name);

for my $u (@units) {
    my @top = top_level($u->{text});
    $u->{top} = \@top;
    if (grep { $main_only{$_} } @top) {
        $u->{context} = 'main';
    } elsif (grep { $server_level{$_} } @top) {
        $u->{context} = 'server';
    } else {
        $u->{context} = 'http';
    }
    $u->{loads_only} = !grep { $_ ne 'load_module' } @top;
}


# --- what every copy gets

# a self-signed pair for ssl_certificate lines
system("openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=txval-test"
       . " -keyout '$tmp/tls/key.pem' -out '$tmp/tls/cert.pem'"
       . " > '$tmp/tls/openssl.log' 2>&1") == 0
    or BAIL_OUT('openssl cannot make a test certificate: '
                . slurp("$tmp/tls/openssl.log"));

spew("$tmp/tls/redis.pw", "secret\n");

my $temp_paths = join('', map { "    ${_}_temp_path $tmp/temp/$_;\n" }
                          qw(client_body proxy fastcgi uwsgi scgi))
                 . "    access_log $tmp/log/access.log;\n";

sub adapt {
    my ($text, $etc) = @_;
    $text =~ s{^(\s*load_module\s+)\S*ngx_http_txval_module\.so\s*;}{$1$module;}mg;
    $text =~ s{/etc/nginx/}{$etc/}g if $etc;
    $text =~ s{/var/log/nginx/}{$tmp/log/}g;
    $text =~ s{^(\s*pid\s+)[^;]+;}{$1$tmp/nginx.pid;}mg;
    $text =~ s{^(\s*ssl_certificate\s+)[^;]+;}{$1$tmp/tls/cert.pem;}mg;
    $text =~ s{^(\s*ssl_certificate_key\s+)[^;]+;}{$1$tmp/tls/key.pem;}mg;
    # txval_redis' files: CA, client certificate and key, password
    $text =~ s{\b(tls_trusted_certificate|tls_certificate)=[^\s;]+}{$1=$tmp/tls/cert.pem}g;
    $text =~ s{\btls_certificate_key=[^\s;]+}{tls_certificate_key=$tmp/tls/key.pem}g;
    $text =~ s{\bpassword_file=[^\s;]+}{password_file=$tmp/tls/redis.pw}g;
    # nginx -t binds the listening sockets: not root, a privileged port
    # becomes 18000 + port
    if ($> != 0) {
        $text =~ s{^(\s*listen\s+(?:\S+:)?)(\d+)\b}{$1 . ($2 < 1024 ? 18000 + $2 : $2)}mge;
        # a server without listen listens on port 80
        $text =~ s/\bserver\s*\{/server {\n    listen 18080;/g
            unless $text =~ /^\s*listen\s/m;
    }
    # nginx -t makes the temporary directories and hands them to the
    # workers' user: in the test's directory, not /var/lib/nginx
    $text =~ s{^(\s*http\s*\{[^\n]*\n)}{$1$temp_paths}m;
    return $text;
}

sub nginx_t {
    my ($conf, $what, $unit) = @_;
    my $out = `'$nginx' -t -c '$conf' 2>&1`;
    my $ok = $? == 0 && $out =~ /test is successful/;
    ok $ok, "$unit->{name} ($unit->{context}): nginx -t $what"
        or diag "$out\n--- $conf:\n" . slurp($conf);
}

sub debian_tree {
    my ($dir) = @_;
    remove_tree($dir);
    system('cp', '-a', '/etc/nginx', $dir) == 0 or die "cp /etc/nginx\n";
    unlink glob("$dir/conf.d/*"), glob("$dir/sites-enabled/*"),
           glob("$dir/modules-enabled/*txval*");
    spew("$dir/nginx.conf", adapt(slurp('/etc/nginx/nginx.conf'), $dir));
    spew("$dir/modules-enabled/50-mod-http-txval.conf",
         "load_module $module;\n");
}

my $i = 0;
for my $u (@units) {
    $i++;
    my $file = $u->{name} =~ s/[^A-Za-z0-9]+/-/gr;

    # Debian's layout
    my $etc = "$tmp/etc-$i";
    debian_tree($etc);
    my $text = adapt($u->{text}, $etc);
    my $where;
    if ($u->{context} eq 'main' && $u->{loads_only}) {
        $where = 'modules-enabled/50-mod-http-txval.conf';
        spew("$etc/$where", $text);
    } elsif ($u->{context} eq 'main') {
        $where = 'nginx.conf';
        $text .= "events {\n}\n" unless grep { $_ eq 'events' } @{ $u->{top} };
        $text = "pid $tmp/nginx.pid;\n$text"
            unless grep { $_ eq 'pid' } @{ $u->{top} };
        spew("$etc/$where", $text);
    } elsif ($u->{context} eq 'http') {
        $where = "conf.d/$file.conf";
        spew("$etc/$where", $text);
    } else {
        $where = "sites-enabled/$file";
        spew("$etc/$where", "server {\n    listen 127.0.0.1:18520;\n$text}\n");
    }
    nginx_t("$etc/nginx.conf", "in Debian's layout ($where)", $u);

    # standalone
    my $dir = "$tmp/alone-$i";
    make_path($dir);
    my $conf;
    if ($u->{context} eq 'main') {
        $conf = adapt($u->{text});
        $conf .= "events {\n}\n" unless grep { $_ eq 'events' } @{ $u->{top} };
        $conf = "pid $tmp/nginx.pid;\n$conf"
            unless grep { $_ eq 'pid' } @{ $u->{top} };
        $conf = "error_log $tmp/log/error.log;\n$conf";
    } else {
        spew("$dir/unit.conf", adapt($u->{text}));
        my $inner = $u->{context} eq 'http'
            ? "    include $dir/unit.conf;\n"
            : "    server {\n        listen 127.0.0.1:18520;\n"
              . "        include $dir/unit.conf;\n    }\n";
        $conf = "load_module $module;\n"
              . "pid $tmp/nginx.pid;\n"
              . "error_log $tmp/log/error.log;\n"
              . "events {\n}\n"
              . "http {\n$temp_paths$inner}\n";
    }
    spew("$dir/nginx.conf", $conf);
    nginx_t("$dir/nginx.conf", 'standalone', $u);
}

# and the examples all together, as the README says they go: conf.d/
{
    my $etc = "$tmp/etc-all";
    debian_tree($etc);
    for my $f (sort glob "$repo/examples/*.conf") {
        spew("$etc/conf.d/" . basename($f), adapt(slurp($f), $etc));
    }
    nginx_t("$etc/nginx.conf", 'in Debian\'s layout, all of them in conf.d/',
            { name => 'examples/*.conf', context => 'http' });
}

done_testing;
