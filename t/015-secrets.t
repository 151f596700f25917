# No secret is ever echoed: a configuration that nginx -t refuses names
# what is wrong, and neither nginx -t's output nor the error log holds the
# password it was given. libpq's own message about a malformed connection
# string quotes the text it could not parse, which may be a password (or
# the whole URI): txval keeps its words and replaces what it quotes.
#
# Each case runs `nginx -t` on a config of its own (no server is started,
# nothing is listened on) and greps both outputs.

use strict;
use warnings;

use lib 't/lib';
use File::Path qw(make_path remove_tree);
use Test::More;
use Txval::Nginx;

my $ng = Txval::Nginx->new(name => 't015', port => 1929);
my $root = $ng->root;
my $bin = $ENV{TEST_NGINX_BINARY} // '/usr/sbin/nginx';

# nginx -t on this http block: its exit status, its output, the error log
sub nginx_t {
    my ($http) = @_;
    remove_tree($root);
    make_path("$root/conf", "$root/logs");
    $ng->write_config(http => $http);
    my $out = `$bin -t -p $root/ -c conf/nginx.conf -e logs/error.log 2>&1`;
    my $rc = $? >> 8;
    open my $fh, '<', "$root/logs/error.log";
    local $/;
    my $log = $fh ? <$fh> // '' : '';
    return ($rc, $out, $log);
}

for my $case (
    # [ conninfo, the secret, what the message says ]
    [ 'postgresql://u:pa%ZZss@127.0.0.1/db', 'pa%ZZss',
      'invalid percent-encoded token: "..."' ],
    [ 'postgresql://u:Hunter2Secret@[::1/db', 'Hunter2Secret',
      'end of string reached when looking for matching "..." in IPv6 host '
      . 'address in URI: "..."' ],
    [ 'postgresql://u:Hunter2Secret@127.0.0.1/db?passwrd=x', 'Hunter2Secret',
      'invalid URI query parameter: "..."' ],
    [ 'host=127.0.0.1 password=Hunter2 Secret=x', 'Secret',
      'invalid connection option "..."' ],
    [ "host=127.0.0.1 password='Hunter2Secret", 'Hunter2Secret',
      'unterminated quoted string in connection info string' ],
    [ 'host=127.0.0.1 password=Hunter2Secret port', 'Hunter2Secret',
      'missing "..." after "..." in connection info string' ],
) {
    my ($conninfo, $secret, $says) = @$case;
    my ($rc, $out, $log) = nginx_t(qq(    txval_postgres "$conninfo";\n));

    isnt $rc, 0, "nginx -t refuses: $conninfo";
    like $out, qr/\[emerg\] invalid connection string in "txval_postgres" directive: \Q$says\E/,
         "... and says: $says";
    unlike $out, qr/\Q$secret\E/, "... nginx -t's output has no \"$secret\"";
    unlike $log, qr/\Q$secret\E/, "... nor the error log";
}

remove_tree($root);

done_testing;
