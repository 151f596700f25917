package Txval::Postgres;

# Postgres' client tools (psql, pg_ctl, pg_basebackup) as the cluster's
# owner, for the scripted tests:
#
#   use Txval::Postgres qw(as_postgres pg_dir psql);
#   exec as_postgres(), 'psql', '-h', pg_dir($dir), ...;
#   psql($dir, $port, $sql)    # its output (-At), undef when it failed
#   psql($dir, $port, $sql, stderr => '/dev/null')   # psql's messages
#                                                    # appended there
#   my $pid = psql_bg($dir, $port, $sql);   # the same, in the background
#   psql_wait($pid);                        # its exit status ($?)
#   psql($dir, $port, slowed_table_sql('t130_slow', 'merchants'));
#
# As root the clusters belong to the postgres user (scripts/services.sh):
# as_postgres() runs the command as postgres, from / and without our Perl
# include path, since the repository may be under a home directory of mode
# 0700 that postgres cannot cross (and Debian's psql is a Perl script that
# would look into our t/lib). As anyone else the clusters are the caller's
# and the command runs as it is. pg_dir() is the cluster's real directory
# (its socket directory): scripts/services.sh may have moved it out of such
# a home directory, leaving a symbolic link behind. psql() is one SQL
# command as the superuser over the cluster's socket (in $dir), on database
# txval, stopping at the first error; psql_bg() runs it in the background
# (its output dropped: a session that holds a lock a while), killed when
# the test ends unless psql_wait() has waited for it.
#
# slowed_table_sql($schema, $table) is SQL that puts a view $schema.$table
# in front of public.$table, for a conninfo whose search_path is
# "$schema,public": each query of it sleeps $schema.knob's delay seconds
# (0 until the test sets it), before it reads the rows, or with
# after => 1 once it has read them.

use strict;
use warnings;

use Cwd qw(abs_path);
use Exporter qw(import);
use POSIX ();

our @EXPORT_OK = qw(as_postgres pg_dir psql psql_bg psql_wait
                    slowed_table_sql);

my %background;     # pid => 1, psql_bg's
my $owner = $$;

END {
    return unless $$ == $owner;
    my $status = $?;
    for my $pid (keys %background) {
        kill 'TERM', $pid;
        waitpid $pid, 0;
    }
    $? = $status;
}

sub as_postgres {
    return $> == 0 ? ('runuser', '-u', 'postgres', '--', 'env', '-C', '/',
                      '-u', 'PERL5LIB', '-u', 'PERLLIB')
                   : ();
}

sub pg_dir {
    my ($dir) = @_;
    return abs_path($dir) // $dir;
}

sub psql_command {
    my ($dir, $port, $sql) = @_;
    return (as_postgres(), 'psql', '-q', '-X', '-At', '-h', $dir,
            '-p', $port, '-U', 'postgres', '-d', 'txval',
            '-v', 'ON_ERROR_STOP=1', '-c', $sql);
}

sub psql {
    my ($dir, $port, $sql, %o) = @_;

    my $pid = open(my $fh, '-|') // die "fork: $!\n";

    if ($pid == 0) {
        if (defined $o{stderr}) {
            open STDERR, '>>', $o{stderr} or POSIX::_exit(127);
        }
        exec psql_command($dir, $port, $sql) or POSIX::_exit(127);
    }

    local $/;
    my $out = <$fh> // '';
    close $fh;
    $out =~ s/\s+\z//;

    return $? == 0 ? $out : undef;
}

sub psql_bg {
    my ($dir, $port, $sql) = @_;

    my $pid = fork // die "fork: $!\n";

    if ($pid == 0) {
        open STDOUT, '>', '/dev/null';
        exec psql_command($dir, $port, $sql) or POSIX::_exit(127);
    }

    $background{$pid} = 1;

    return $pid;
}

sub psql_wait {
    my ($pid) = @_;
    waitpid $pid, 0;
    delete $background{$pid};
    return $?;
}

sub slowed_table_sql {
    my ($schema, $table, %o) = @_;

    my $sleep = "    PERFORM pg_sleep((SELECT delay FROM $schema.knob));\n";
    my $rows = "    RETURN QUERY SELECT * FROM public.$table;\n";
    my $body = $o{after} ? $rows . $sleep : $sleep . $rows;

    return <<"SQL";
SET client_min_messages = warning;
CREATE SCHEMA IF NOT EXISTS $schema;
CREATE TABLE IF NOT EXISTS $schema.knob (delay float8 NOT NULL);
DELETE FROM $schema.knob;
INSERT INTO $schema.knob VALUES (0);
CREATE OR REPLACE FUNCTION $schema.${table}_slowly()
    RETURNS SETOF public.$table LANGUAGE plpgsql AS \$\$
BEGIN
${body}END
\$\$;
CREATE OR REPLACE VIEW $schema.$table AS
    SELECT * FROM $schema.${table}_slowly();
GRANT USAGE ON SCHEMA $schema TO txval;
GRANT SELECT ON ALL TABLES IN SCHEMA $schema TO txval;
SQL
}

1;
