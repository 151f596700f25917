package Txval::PgPair;

# A Postgres 15 primary and its streaming replica on loopback, made anew
# for each test from Debian's packages: the primary as scripts/services.sh
# makes the suite's (database and user "txval", schema and demo seed from
# docker/initdb/, then t/fixtures.sql), the replica with pg_basebackup -R
# from it. Both run as the postgres user (Postgres refuses root), each on
# its own port and data directory under build/test-pg-<name>/.
#
#   my $pair = Txval::PgPair->start(name => 't720', primary => 17201,
#                                   replica => 17202);
#   $pair->psql(primary => 'SELECT 1');     # output (-At), undef: failed
#   $pair->caught_up;                       # replica has replayed it all
#   $pair->pause_replay; $pair->resume_replay;
#   $pair->stop_immediate('primary');       # pg_ctl stop -m immediate
#   $pair->promote('replica');              # pg_ctl promote -w
#   $pair->stop;                            # both (also when the test ends)
#
#   my $proxy = Txval::PgPair->hiding_proxy(listen => 17204, to => 17201,
#                                           log => $file);
#
# The proxy hides in_hot_standby from libpq (and logs the queries libpq
# then has to ask: SHOW transaction_read_only, pg_is_in_recovery()).
#
# TXVAL_PG_BIN: Postgres' bin directory (/usr/lib/postgresql/15/bin).

use strict;
use warnings;

use Cwd qw(abs_path);
use File::Basename qw(dirname);
use IO::Select;
use IO::Socket::INET;
use POSIX ();
use Time::HiRes qw(sleep time);

use lib dirname(__FILE__) . '/..';
use Txval::Postgres qw(as_postgres);

my $repo = abs_path(dirname(__FILE__) . '/../../..');
my $bin = $ENV{TXVAL_PG_BIN} || '/usr/lib/postgresql/15/bin';

my (@pairs, %proxies);
my $main_pid = $$;

END {
    return unless $$ == $main_pid;
    my $status = $?;
    for my $pid (keys %proxies) {
        kill 'TERM', $pid;
        waitpid $pid, 0;
    }
    $_->stop for @pairs;
    $? = $status;
}




# a command, its output to $log; true when it succeeded
sub run_logged {
    my ($log, @cmd) = @_;

    my $pid = fork // die "fork: $!\n";

    if ($pid == 0) {
        open STDIN, '<', '/dev/null';
        open STDOUT, '>>', $log or POSIX::_exit(127);
        open STDERR, '>&', \*STDOUT;
        exec @cmd or POSIX::_exit(127);
    }

    waitpid $pid, 0;
    return $? == 0;
}


sub services {
    my ($self, $cmd) = @_;
    return run_logged($self->{log}, 'bash', '-c',
                      ". '$repo/scripts/services.sh' && $cmd");
}


sub start {
    my ($class, %args) = @_;

    my $self = bless {
        name => $args{name} // 'pair',
        port => { primary => $args{primary}, replica => $args{replica} },
    }, $class;

    my $handle = "$repo/build/test-pg-$self->{name}";
    $self->{dir} = { primary => "$handle/primary",
                     replica => "$handle/replica" };
    $self->{log} = "$handle.log";

    # whatever an earlier run left
    for my $which (qw(replica primary)) {
        $self->ctl($which, '-m', 'immediate', 'stop')
            if -f "$self->{dir}{$which}/postmaster.pid";
    }

    unlink $self->{log};
    # a directory the postgres user can reach (scripts/services.sh moves
    # it out of a home directory of mode 0700, leaving a link here)
    $self->services("txval_pg_remove '$handle'")
        && $self->services("txval_pg_home '$handle' > /dev/null")
        or die "cannot make $handle (see $self->{log})\n";
    my $top = abs_path($handle) // die "$handle: $!\n";
    $self->{top} = $top;
    $self->{dir} = { primary => "$top/primary", replica => "$top/replica" };

    push @pairs, $self;

    my ($pp, $pd) = ($self->{port}{primary}, $self->{dir}{primary});

    $self->services("txval_pg_start $pp '$pd'")
        or die "cannot start the primary on $pp (see $self->{log})\n";
    $self->services("txval_pg_psql $pp '$pd' < '$repo/t/fixtures.sql'")
        or die "cannot load t/fixtures.sql (see $self->{log})\n";

    my ($rp, $rd) = ($self->{port}{replica}, $self->{dir}{replica});

    run_logged($self->{log}, as_postgres(), "$bin/pg_basebackup",
               '-h', $pd, '-p', $pp, '-U', 'postgres', '-D', $rd, '-R',
               '-X', 'stream', '-c', 'fast')
        or die "pg_basebackup failed (see $self->{log})\n";

    $self->ctl('replica', '-l', "$rd/server.log", '-o',
               "-p $rp -k $rd -c listen_addresses=127.0.0.1 -c fsync=off"
               . " -c max_connections=200", 'start')
        or die "cannot start the replica on $rp (see $rd/server.log)\n";

    ($self->psql(replica => 'SELECT pg_is_in_recovery()') // '') eq 't'
        or die "the replica on $rp is not in recovery\n";

    $self->caught_up or die "the replica does not catch up\n";

    return $self;
}


sub port { $_[0]{port}{$_[1]} }
sub dir  { $_[0]{dir}{$_[1]} }


# pg_ctl as postgres, waiting (-w); true when it succeeded
sub ctl {
    my ($self, $which, @args) = @_;
    return run_logged($self->{log}, as_postgres(), "$bin/pg_ctl",
                      '-D', $self->{dir}{$which}, '-w', @args);
}


sub stop_immediate { $_[0]->ctl($_[1], '-m', 'immediate', 'stop') }
sub promote        { $_[0]->ctl($_[1], 'promote') }


sub stop {
    my ($self) = @_;
    for my $which (qw(replica primary)) {
        $self->ctl($which, '-m', 'fast', 'stop')
            if -f "$self->{dir}{$which}/postmaster.pid";
    }
}


# one SQL command as the superuser over the server's socket: its output
# (-At), undef when it failed
sub psql {
    my ($self, $which, $sql) = @_;
    return Txval::Postgres::psql($self->{dir}{$which}, $self->{port}{$which},
                                 $sql, stderr => $self->{log});
}


# waits (at most 10 s) until the replica has replayed what the primary
# has written so far
sub caught_up {
    my ($self) = @_;

    my $lsn = $self->psql(primary => 'SELECT pg_current_wal_lsn()')
        // return 0;
    my $deadline = time + 10;

    while (time < $deadline) {
        my $behind = $self->psql(replica =>
            "SELECT pg_last_wal_replay_lsn() < '$lsn'::pg_lsn");
        return 1 if defined $behind && $behind eq 'f';
        sleep 0.05;
    }

    return 0;
}


sub pause_replay {
    my ($self) = @_;

    defined $self->psql(replica => 'SELECT pg_wal_replay_pause()') or return 0;

    for (1 .. 200) {
        my $state = $self->psql(replica =>
                                'SELECT pg_get_wal_replay_pause_state()');
        return 1 if ($state // '') eq 'paused';
        sleep 0.05;
    }

    return 0;
}


sub resume_replay {
    my ($self) = @_;
    defined $self->psql(replica => 'SELECT pg_wal_replay_resume()')
        or return 0;
    return $self->caught_up;
}


# --- a proxy that hides in_hot_standby

# libpq 15 asks a server whether it is read-only or in recovery only when
# the server did not say so at startup (Postgres 14 and later do, with
# the in_hot_standby parameter). Hiding that parameter makes libpq take
# its other path: a query of its own before the connection is ready.
# Connections through it must use sslmode=disable gssencmode=disable (the
# proxy reads the server's messages from the first byte).

sub hiding_proxy {
    my ($class, %args) = @_;

    my $l = IO::Socket::INET->new(LocalAddr => '127.0.0.1',
                                  LocalPort => $args{listen},
                                  Listen => 64, ReuseAddr => 1)
        or die "proxy: listen on $args{listen}: $!\n";

    my $pid = fork // die "fork: $!\n";

    if ($pid) {
        close $l;
        $proxies{$pid} = 1;
        return $pid;
    }

    # the child: never back into the test's code (nor its END blocks)
    $SIG{PIPE} = 'IGNORE';
    $SIG{TERM} = sub { POSIX::_exit(0) };
    eval { proxy_loop($l, $args{to}, $args{log}) };
    POSIX::_exit(0);
}


sub proxy_loop {
    my ($l, $to, $log) = @_;

    my $sel = IO::Select->new($l);
    my (%peer, %from_server, %buf);     # by fileno

    my $drop = sub {
        for my $s (@_) {
            next unless $s && defined fileno $s;
            my $fd = fileno $s;
            $sel->remove($s);
            delete $peer{$fd};
            delete $from_server{$fd};
            delete $buf{$fd};
            close $s;
        }
    };

    while (1) {
        for my $s ($sel->can_read(1)) {
            next unless defined fileno $s;

            if ($s == $l) {
                my $c = $l->accept or next;
                my $u = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                              PeerPort => $to,
                                              Proto => 'tcp');
                if (!$u) {
                    close $c;
                    next;
                }
                $peer{fileno $c} = $u;
                $peer{fileno $u} = $c;
                $from_server{fileno $u} = 1;
                $buf{fileno $u} = '';
                $sel->add($c, $u);
                next;
            }

            my $fd = fileno $s;
            my $dst = $peer{$fd};
            my $got = sysread $s, my $data, 65536;

            if (!$got) {
                $drop->($s, $dst);
                next;
            }

            if (!$from_server{$fd}) {
                for my $q ('SHOW transaction_read_only',
                           'pg_is_in_recovery()')
                {
                    next if index($data, $q) < 0;
                    open my $fh, '>>', $log or next;
                    print $fh "$q\n";
                    close $fh;
                }
                syswrite $dst, $data;
                next;
            }

            # the server's messages: type, int32 length (itself included)
            $buf{$fd} .= $data;
            my $out = '';

            while (length $buf{$fd} >= 5) {
                my ($type, $len) = unpack 'a N', $buf{$fd};
                last if length $buf{$fd} < 1 + $len;
                my $msg = substr $buf{$fd}, 0, 1 + $len, '';
                next if $type eq 'S' && substr($msg, 5) =~ /^in_hot_standby\0/;
                $out .= $msg;
            }

            syswrite $dst, $out if length $out;
        }
    }
}


1;
