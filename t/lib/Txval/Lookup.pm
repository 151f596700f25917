package Txval::Lookup;

# What the lookup cache tests (t/330, t/335, t/340, t/725) share: a
# private Postgres cluster made by scripts/services.sh with the lookup
# cache's triggers (docker/initdb/03-notify.sql), t/fixtures.sql and
# pg_stat_statements (to count the lookup statement's executions), a
# transaction's outcome in words, the listener's state, and waiting for a
# change to show.
#
#   my $pg = Txval::Lookup->cluster(name => 't340', port => 16438);
#   $pg->psql('SELECT 1');        # output (-At), undef when it failed
#   $pg->sql_ok($sql, $what);     # or BAIL_OUT
#   $pg->calls;                   # executions of txval's lookup so far
#   $pg->ctl('restart');          # pg_ctl -m fast -w ...
#   $pg->stop;                    # also when the test ends
#
#   Txval::Lookup::check($ng, card_token => 'x', ...)
#       # a new transaction (a new id) at $ng's /t, USD 1000 of t_active
#       # with t_card_us unless told otherwise: "approved 0",
#       # "card_blocked 20", "503 backend_unavailable"
#   Txval::Lookup::listener_state($ng)   # "up", "down", ... as $ng's
#                                        # /status says ("none": no answer)
#   my ($took, $got) = Txval::Lookup::eventually($want, $within, $code);
#       # $code called until it gives $want, for at most $within seconds
#
# TXVAL_PG_BIN: Postgres' bin directory (/usr/lib/postgresql/15/bin).

use strict;
use warnings;

use Cwd qw(abs_path);
use File::Basename qw(dirname);
use POSIX ();
use Test::More ();
use Time::HiRes qw(sleep time);
use Txval::Postgres qw(pg_dir);
use Txval::Tx ();

my $repo = abs_path(dirname(__FILE__) . '/../../..');
my $bin = $ENV{TXVAL_PG_BIN} || '/usr/lib/postgresql/15/bin';

my @clusters;
my $main_pid = $$;

END {
    return unless $$ == $main_pid;
    my $status = $?;
    $_->stop for @clusters;
    $? = $status;
}


sub as_postgres { return Txval::Postgres::as_postgres() }


sub services {
    my ($cmd) = @_;
    return system('bash', '-c', ". '$repo/scripts/services.sh' && $cmd") == 0;
}


sub cluster {
    my ($class, %args) = @_;

    my $self = bless {
        name => $args{name},
        port => $args{port},
        dir => "$repo/build/test-pg-$args{name}",
    }, $class;

    my ($port, $dir) = ($self->{port}, $self->{dir});

    services("TXVAL_PG_OPTIONS='-c shared_preload_libraries=pg_stat_statements'"
             . " txval_pg_start $port '$dir'")
        or Test::More::BAIL_OUT("cannot start Postgres on $port in $dir");

    push @clusters, $self;

    services("txval_pg_psql $port '$dir' < '$repo/docker/initdb/03-notify.sql'"
             . " && txval_pg_psql $port '$dir' < '$repo/t/fixtures.sql'")
        or Test::More::BAIL_OUT('cannot load the triggers and t/fixtures.sql');

    # the cluster's real directory: its socket directory, for -h and -D
    $self->{dir} = pg_dir($dir);

    $self->sql_ok('CREATE EXTENSION IF NOT EXISTS pg_stat_statements',
                  'pg_stat_statements');

    return $self;
}


sub port { $_[0]{port} }
sub dir  { $_[0]{dir} }

sub conninfo {
    my ($self) = @_;
    return "host=127.0.0.1 port=$self->{port} dbname=txval user=txval"
           . " password=txval";
}


# one SQL command as the superuser, over the socket: its output (-At),
# undef when it failed
sub psql {
    my ($self, $sql) = @_;
    return Txval::Postgres::psql($self->{dir}, $self->{port}, $sql,
                                 stderr => '/dev/null');
}


sub sql_ok {
    my ($self, $sql, $what) = @_;
    defined $self->psql($sql) or Test::More::BAIL_OUT("$what: $sql failed");
}


# the executions of txval's lookup statement so far
sub calls {
    my ($self) = @_;
    return $self->psql("SELECT coalesce(sum(calls), 0) FROM pg_stat_statements"
                       . " WHERE query LIKE 'SELECT m.status = %, m.max_amount,%'")
           // -1;
}


# pg_ctl as postgres (-m fast, waiting); true when it succeeded
sub ctl {
    my ($self, $what) = @_;

    my $pid = fork // die "fork: $!\n";

    if ($pid == 0) {
        open STDOUT, '>', '/dev/null';
        open STDERR, '>', '/dev/null';
        exec as_postgres(), "$bin/pg_ctl", '-D', $self->{dir}, '-l',
             "$self->{dir}/server.log", '-m', 'fast', '-w', $what
            or POSIX::_exit(127);
    }

    waitpid $pid, 0;
    return $? == 0;
}


sub stop {
    my ($self) = @_;
    return if $self->{stopped}++;
    services("txval_pg_stop '$self->{dir}'");
}


my $n = 0;

sub check {
    my ($ng, @fields) = @_;

    my $res = $ng->post('/t', Txval::Tx::tx(id => "lk.$$." . ++$n,
                                            amount => 1000,
                                            currency => 'USD',
                                            merchant_id => 't_active',
                                            card_token => 't_card_us',
                                            @fields));

    return Txval::Tx::reasons_of($res, score => 1);
}


sub listener_state {
    my ($ng) = @_;

    my $res = eval { $ng->request(GET => '/status') } or return 'none';

    return $res->{body} =~ /"lookup_listener":\{"state":"(\w+)"\}/ ? $1
                                                                    : 'none';
}


# polls txval_status until the listener's state is $want: true if it
# came within $within seconds

sub listener_is {
    my ($ng, $want, $within) = @_;
    my (undef, $got) = eventually($want, $within,
                                  sub { listener_state($ng) });
    return $got eq $want;
}


sub eventually {
    my ($want, $within, $code) = @_;

    my $t0 = time;
    my $got;

    while (1) {
        $got = $code->();
        return (time - $t0, $got) if $got eq $want || time - $t0 > $within;
        sleep 0.01;
    }
}


1;
