package Txval::Lookup;

# What the lookup cache tests (t/330, t/335, t/340, t/725) share: a private
# Postgres cluster made by scripts/services.sh with the lookup cache's
# triggers (docker/initdb/03-notify.sql), t/fixtures.sql and
# pg_stat_statements (to count the lookup statement's executions), and
# transactions and their outcomes.
#
#   my $pg = Txval::Lookup->cluster(name => 't340', port => 16438);
#   $pg->psql('SELECT 1');        # output (-At), undef when it failed
#   $pg->sql_ok($sql, $what);     # or BAIL_OUT
#   $pg->calls;                   # executions of txval's lookup so far
#   $pg->ctl('restart');          # pg_ctl -m fast -w ...
#   $pg->stop;                    # also when the test ends
#
#   Txval::Lookup::tx(card_token => 'x', ...)    # a transaction, JSON
#   Txval::Lookup::outcome($res)  # "approved 0", "card_blocked 20",
#                                 # "503 backend_unavailable"
#
# TXVAL_PG_BIN: Postgres' bin directory (/usr/lib/postgresql/15/bin).

use strict;
use warnings;

use Cwd qw(abs_path);
use File::Basename qw(dirname);
use POSIX ();
use Test::More ();
use Txval::Postgres qw(pg_dir);

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

    my $pid = open(my $fh, '-|') // die "fork: $!\n";

    if ($pid == 0) {
        open STDERR, '>', '/dev/null';
        exec as_postgres(), 'psql', '-q', '-X', '-At', '-h', $self->{dir},
             '-p', $self->{port}, '-U', 'postgres', '-d', 'txval',
             '-v', 'ON_ERROR_STOP=1', '-c', $sql
            or POSIX::_exit(127);
    }

    local $/;
    my $out = <$fh> // '';
    close $fh;
    $out =~ s/\s+\z//;

    return $? == 0 ? $out : undef;
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

# a new transaction (a new id), USD 1000 of t_active with t_card_us unless
# told otherwise
sub tx {
    my (%f) = @_;

    my %t = (id => "lk.$$." . ++$n, amount => 1000, currency => 'USD',
             merchant_id => 't_active', card_token => 't_card_us', %f);

    return '{' . join(',', map { my $v = $t{$_};
                                 $_ eq 'amount' ? qq("$_":$v) : qq("$_":"$v") }
                           grep { defined $t{$_} }
                           qw(id amount currency merchant_id card_token
                              card_bin country)) . '}';
}


# a verdict's reasons ("approved" when none) and risk score, or
# "<status> <error>"
sub outcome {
    my ($res) = @_;

    if ($res->{body}
        =~ /"verdict":"(\w+)","reasons":\[([^\]]*)\],"risk_score":(\d+)/)
    {
        my ($v, $r, $score) = ($1, $2, $3);
        $r =~ s/"//g;
        return ($r eq '' ? $v : $r) . " $score";
    }

    my ($err) = $res->{body} =~ /"error":"(\w+)"/;

    return "$res->{status} " . ($err // $res->{body});
}


1;
