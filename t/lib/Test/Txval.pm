package Test::Txval;

# Entry point for the txval test files:
#
#     use lib 't/lib';
#     use Test::Txval 'no_plan';    # or: use Test::Txval; plan tests => N;
#     run_tests();
#     __DATA__
#     ...
#
# Uses upstream Test::Nginx::Socket when it can be loaded (and
# TXVAL_OWN_RUNNER is not set), otherwise our Test::Txval::Socket.  Either
# way every block gets "load_module <txval module>;" prepended to its
# --- main_config (unless TXVAL_NO_MODULE is set, the block already has a
# load_module line, or the block has a --- no_txval_module section).

use strict;
use warnings;

use File::Spec ();
use File::Basename ();

our $VERSION = '0.01';

our $Impl;
my $PreprocessorInstalled;

# <repo>/t/lib/Test/Txval.pm -> <repo>
my $RepoRoot = do {
    my $here = File::Spec->rel2abs(__FILE__);
    my $d = File::Basename::dirname($here);          # t/lib/Test
    for (1 .. 3) { $d = File::Basename::dirname($d) } # t/lib, t, repo
    $d;
};

# Must be in place before upstream Test::Nginx::Util is loaded (it reads
# the environment at load time).
if (!defined $ENV{TEST_NGINX_BINARY} || $ENV{TEST_NGINX_BINARY} eq '') {
    $ENV{TEST_NGINX_BINARY} = '/usr/sbin/nginx';
}

# The Postgres timeout of blocks that test rules, not timeouts: valgrind
# makes a connect (SCRAM authentication included) far slower than 200ms.
$ENV{TEST_NGINX_PG_TIMEOUT} //= $ENV{TEST_NGINX_USE_VALGRIND} ? '10s' : '200ms';
# the Redis command timeout of the blocks that do not test timeouts
# (txval's default, 50ms; memcheck is 20-50 times slower)
$ENV{TEST_NGINX_REDIS_TIMEOUT} //= $ENV{TEST_NGINX_USE_VALGRIND} ? '2s' : '50ms';

sub txval_repo_root {
    return $RepoRoot;
}

sub txval_module_path {
    my $p = $ENV{TEST_NGINX_TXVAL_MODULE};
    if (!defined $p || $p eq '') {
        $p = "$RepoRoot/build/ngx_http_txval_module.so";
    }
    return File::Spec->rel2abs($p);
}

sub txval_runner {
    return $Impl;
}

sub _upstream_loadable {
    return 0 if $ENV{TXVAL_OWN_RUNNER};

    my @dirs = grep { !ref $_ } @INC;
    return 0 unless grep { -f "$_/Test/Nginx/Socket.pm" } @dirs;

    # Probe in a child process: a half-loaded upstream (e.g. one of its
    # dependencies missing) would leave Test::Base pointing at the wrong
    # class in this process.
    local $ENV{TEST_NGINX_NO_CLEAN} = 1;
    my $pid = fork();
    return 0 unless defined $pid;
    if ($pid == 0) {
        open STDOUT, '>', '/dev/null';
        open STDERR, '>', '/dev/null';
        { no warnings 'exec';
          exec { $^X } $^X, (map { ('-I', $_) } @dirs),
              '-e', 'require Test::Nginx::Socket; Test::More->builder->no_ending(1); exit 0'; }
        require POSIX;
        POSIX::_exit(127);
    }
    waitpid($pid, 0);
    return 1 if $? == 0;
    warn "Test::Txval: Test::Nginx::Socket is on \@INC but does not load"
       . " (missing dependency?); using Test::Txval::Socket\n";
    return 0;
}

sub _choose_impl {
    if (_upstream_loadable()) {
        require Test::Nginx::Socket;
        return 'Test::Nginx::Socket';
    }
    require Test::Txval::Socket;
    return 'Test::Txval::Socket';
}

sub _inject_load_module {
    my $block = shift;
    return if $ENV{TXVAL_NO_MODULE};
    return if defined $block->no_txval_module;
    my $main = $block->main_config;
    $main = '' unless defined $main;
    return if $main =~ /\bload_module\b/;
    my $path = txval_module_path();
    $block->set_value('main_config', "load_module $path;\n$main");
}

sub import {
    my ($class, @args) = @_;
    my $caller = caller;

    $Impl ||= _choose_impl();

    if (!$ENV{TXVAL_NO_MODULE}) {
        my $path = txval_module_path();
        if (!-f $path) {
            die "Test::Txval: the txval module was not found at $path\n"
              . "  build it first (make), point TEST_NGINX_TXVAL_MODULE at it,\n"
              . "  or set TXVAL_NO_MODULE=1 to run without it.\n";
        }
    }

    # Test::Base/Spiffy export into caller(), so call import from there.
    my $ok = eval "package $caller; \$Test::Txval::Impl->import(\@args); 1";
    die $@ unless $ok;

    {
        no strict 'refs';
        for my $f (qw(txval_module_path txval_runner txval_repo_root)) {
            *{"${caller}::$f"} = \&{"Test::Txval::$f"};
        }
    }

    if (!$PreprocessorInstalled) {
        $PreprocessorInstalled = 1;
        my $add = $Impl->can('add_block_preprocessor')
            or die "Test::Txval: $Impl has no add_block_preprocessor\n";
        $add->(\&_inject_load_module);
    }
}

1;
__END__

=head1 NAME

Test::Txval - pick a Test::Nginx::Socket implementation and load the txval module

=head1 SYNOPSIS

    use lib 't/lib';
    use Test::Txval 'no_plan';

    master_on();
    workers(2);
    repeat_each(2);
    run_tests();

    __DATA__

    === TEST 1: ...

=head1 ENVIRONMENT

=over

=item TXVAL_OWN_RUNNER=1

Always use Test::Txval::Socket, even if upstream Test::Nginx is on @INC.

=item TXVAL_NO_MODULE=1

Do not inject C<load_module> (used by the runner self-test).

=item TEST_NGINX_TXVAL_MODULE

Path of the module (default F<build/ngx_http_txval_module.so> in the repo).

=item TEST_NGINX_BINARY

Defaults to F</usr/sbin/nginx>.

=back

=head1 EXPORTS

Whatever the chosen runner exports (run_tests, plan, blocks, repeat_each,
workers, master_on, ...), plus C<txval_module_path()>, C<txval_runner()>
(the implementation class name) and C<txval_repo_root()>.

=cut
