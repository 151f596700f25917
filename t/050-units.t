# The pure C units (parser, rules, writers, decoder), compiled without
# nginx and run as a TAP program.

use strict;
use warnings;
use File::Basename qw(dirname);
use Cwd qw(abs_path);

my $top = abs_path(dirname(__FILE__) . '/..');
my $src = "$top/ngx_http_txval_module";
my $bin = "$top/build/units";

mkdir "$top/build";

my @srcs = map { "$src/ngx_http_txval_$_.c" } qw(json txn digest rules output record prometheus slot);
my $cc = $ENV{CC} // 'cc';
my $cmd = "$cc -std=c99 -D_DEFAULT_SOURCE -Wall -Wextra -Werror -g -O1 "
        . "-fsanitize=address,undefined -fno-sanitize-recover=undefined "
        . "-I$src -o $bin $top/t/unit/units.c @srcs -lcrypto";

if (system($cmd) != 0) {
    print "1..1\nnot ok 1 - the unit tests compile: $cmd\n";
    exit 1;
}

exec $bin or die "exec $bin: $!";
