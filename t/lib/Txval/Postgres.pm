package Txval::Postgres;

# Postgres' client tools (psql, pg_ctl, pg_basebackup) as the cluster's
# owner, for the scripted tests:
#
#   use Txval::Postgres qw(as_postgres pg_dir);
#   exec as_postgres(), 'psql', '-h', pg_dir($dir), ...;
#
# As root the clusters belong to the postgres user (scripts/services.sh):
# as_postgres() runs the command as postgres, from / and without our Perl
# include path, since the repository may be under a home directory of mode
# 0700 that postgres cannot cross (and Debian's psql is a Perl script that
# would look into our t/lib). As anyone else the clusters are the caller's
# and the command runs as it is. pg_dir() is the cluster's real directory
# (its socket directory): scripts/services.sh may have moved it out of such
# a home directory, leaving a symbolic link behind.

use strict;
use warnings;

use Cwd qw(abs_path);
use Exporter qw(import);

our @EXPORT_OK = qw(as_postgres pg_dir);

sub as_postgres {
    return $> == 0 ? ('runuser', '-u', 'postgres', '--', 'env', '-C', '/',
                      '-u', 'PERL5LIB', '-u', 'PERLLIB')
                   : ();
}

sub pg_dir {
    my ($dir) = @_;
    return abs_path($dir) // $dir;
}

1;
