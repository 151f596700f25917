package Txval::Redis;

# Redis for the plain-Perl tests: a private redis-server run as our child
# (so that a test can kill -9 it and start it again on the same port), a
# small binary-safe RESP client, and MONITOR.
#
#   my $srv = Txval::Redis->start_server(port => 16391, name => 'auth',
#                                        args => [requirepass => 'pw'],
#                                        bind => '127.0.0.1');
#   $srv->kill9; $srv->restart; $srv->stop;
#
#   my $r = Txval::Redis->client(port => 16391, password => 'pw', db => 3,
#                                host => '127.0.0.1');
#   $r->cmd(qw(SET k v));             # "OK"
#   $r->cmd(GET => 'k');              # "v", undef for nil
#   $r->cmd(qw(INCR n));              # 1
#   $r->cmd(qw(KEYS *));              # [ ... ]
#   $r->cmd(qw(GET nope x));          # { error => "ERR ..." }
#   $r->info('clients')->{connected_clients}
#   $r->get_when($key, sub { defined $_[0] }, 2, 0.01)   # GET until
#
#   my $certs = Txval::Redis::tls_certs("$dir");   # made with openssl now:
#   # {ca, ca_key, other_ca, server_crt, server_key, client_crt, client_key}
#   # (the server's: CN redis.test; SAN localhost, redis.test, 127.0.0.1)
#   Txval::Redis->start_server(port => 16395, tls_port => 16396,
#                              certs => $certs, tls_auth_clients => 'no');
#
#   my $mon = Txval::Redis->monitor(port => 16391);
#   ... traffic ...
#   my @cmds = $mon->commands(0.2);   # { db, args => ["GET", "key"], raw }
#
# The servers are stopped when the test process ends. Each one runs in
# t/servroot_redis_<name> (its log: redis.log there).

use strict;
use warnings;

use Cwd qw(abs_path);
use File::Basename qw(dirname);
use File::Path qw(make_path remove_tree);
use IO::Select;
use IO::Socket::INET;
use POSIX qw(WNOHANG);
use Time::HiRes qw(sleep time);

my $repo = abs_path(dirname(__FILE__) . '/../../..');

my %running;    # pid => 1

END {
    my $status = $?;
    for my $pid (keys %running) {
        kill 'KILL', $pid;
        waitpid $pid, 0;
    }
    $? = $status;
}


# --- a private redis-server

sub start_server {
    my ($class, %args) = @_;

    my $self = bless {
        port => $args{port} // die("start_server: no port\n"),
        bind => $args{bind} // '127.0.0.1',
        name => $args{name} // "redis$args{port}",
        args => $args{args} // [],
        password => $args{password},
    }, $class;

    if (my $c = $args{certs}) {
        # TLS on tls_port, plain on port (for the test's own client)
        push @{ $self->{args} },
            'tls-port' => $args{tls_port},
            'tls-cert-file' => $c->{server_crt},
            'tls-key-file' => $c->{server_key},
            'tls-ca-cert-file' => $c->{ca},
            'tls-auth-clients' => $args{tls_auth_clients} // 'no';
    }

    $self->{dir} = "$repo/t/servroot_redis_$self->{name}";
    remove_tree($self->{dir});
    make_path($self->{dir});

    $self->_spawn;

    return $self;
}


sub port { $_[0]{port} }
sub pid  { $_[0]{pid} }
sub dir  { $_[0]{dir} }


sub _spawn {
    my ($self) = @_;

    my @extra;
    my @a = @{ $self->{args} };
    while (my ($k, $v) = splice @a, 0, 2) {
        push @extra, "--$k", $v;
    }

    my $pid = fork // die "fork: $!\n";

    if ($pid == 0) {
        open STDOUT, '>>', "$self->{dir}/redis.log";
        open STDERR, '>&', \*STDOUT;
        exec 'redis-server', '--bind', $self->{bind}, '--port', $self->{port},
             '--dir', $self->{dir}, '--save', '', '--appendonly', 'no',
             '--daemonize', 'no', @extra
            or POSIX::_exit(127);
    }

    $self->{pid} = $pid;
    $running{$pid} = 1;

    # up when it answers (anything, NOAUTH included)

    my $deadline = time + 10;

    while (time < $deadline) {
        if (waitpid($pid, WNOHANG) == $pid) {
            delete $running{$pid};
            die "redis-server on $self->{port} exited at start:\n"
                . `tail -5 $self->{dir}/redis.log`;
        }

        my $s = IO::Socket::INET->new(PeerAddr => $self->{bind},
                                      PeerPort => $self->{port},
                                      Proto => 'tcp');
        if ($s) {
            print $s "PING\r\n";
            my $line = <$s>;
            close $s;
            return $pid if defined $line;
        }

        sleep 0.01;
    }

    die "redis-server on $self->{port} did not start\n";
}


# a CA, another CA, a server and a client certificate, made now (EC keys:
# fast); returns their paths

sub tls_certs {
    my ($dir) = @_;

    make_path($dir);

    my $ossl = sub {
        my @cmd = ('openssl', @_);
        open my $save, '>&', \*STDERR;
        open STDERR, '>', "$dir/openssl.log";
        my $rc = system @cmd;
        open STDERR, '>&', $save;
        die "openssl @_[0 .. 1] failed, see $dir/openssl.log\n" if $rc;
    };

    my $key = sub {
        $ossl->('genpkey', '-algorithm', 'EC', '-pkeyopt',
                'ec_paramgen_curve:P-256', '-out', "$dir/$_[0].key");
    };

    for my $ca (qw(ca other_ca)) {
        $key->($ca);
        $ossl->('req', '-x509', '-new', '-key', "$dir/$ca.key", '-days', '2',
                '-subj', "/CN=txval test $ca", '-out', "$dir/$ca.crt");
    }

    my %san = (server => 'subjectAltName=DNS:localhost,DNS:redis.test,'
                         . 'IP:127.0.0.1',
               client => 'extendedKeyUsage=clientAuth');
    my %cn = (server => 'redis.test', client => 'txval client');

    for my $who (qw(server client)) {
        $key->($who);
        $ossl->('req', '-new', '-key', "$dir/$who.key",
                '-subj', "/CN=$cn{$who}", '-out', "$dir/$who.csr");
        open my $fh, '>', "$dir/$who.ext" or die "$dir/$who.ext: $!\n";
        print $fh "$san{$who}\n";
        close $fh;
        $ossl->('x509', '-req', '-in', "$dir/$who.csr", '-CA', "$dir/ca.crt",
                '-CAkey', "$dir/ca.key", '-CAcreateserial', '-days', '2',
                '-extfile', "$dir/$who.ext", '-out', "$dir/$who.crt");
    }

    return {
        ca => "$dir/ca.crt", ca_key => "$dir/ca.key",
        other_ca => "$dir/other_ca.crt",
        server_crt => "$dir/server.crt", server_key => "$dir/server.key",
        client_crt => "$dir/client.crt", client_key => "$dir/client.key",
    };
}


sub kill9 {
    my ($self) = @_;

    my $pid = delete $self->{pid} or return;
    kill 'KILL', $pid;
    waitpid $pid, 0;
    delete $running{$pid};
}


sub restart {
    my ($self) = @_;

    $self->kill9;
    $self->_spawn;
}


sub stop {
    my ($self) = @_;

    my $pid = delete $self->{pid} or return;
    kill 'TERM', $pid;
    waitpid $pid, 0;
    delete $running{$pid};
}


# --- a client

sub client {
    my ($class, %args) = @_;

    my $s = IO::Socket::INET->new(PeerAddr => $args{host} // '127.0.0.1',
                                  PeerPort => $args{port},
                                  Proto => 'tcp',
                                  Timeout => 5)
        or die "redis client: connect to $args{port}: $!\n";
    binmode $s;

    my $self = bless { sock => $s, buf => '', port => $args{port} },
                     'Txval::Redis::Client';

    if (defined $args{password}) {
        my $r = $self->cmd(AUTH => $args{password});
        die "redis client: AUTH: $r->{error}\n" if ref $r eq 'HASH';
    }

    if ($args{db}) {
        my $r = $self->cmd(SELECT => $args{db});
        die "redis client: SELECT: $r->{error}\n" if ref $r eq 'HASH';
    }

    return $self;
}


sub monitor {
    my ($class, %args) = @_;

    my $c = $class->client(%args);
    my $r = $c->cmd('MONITOR');
    die "MONITOR: " . (ref $r ? $r->{error} : $r) . "\n" unless $r eq 'OK';
    bless $c, 'Txval::Redis::Monitor';
    return $c;
}


package Txval::Redis::Client;

use Time::HiRes qw(time);

sub encode {
    my (@args) = @_;
    my $out = '*' . scalar(@args) . "\r\n";
    for my $a (@args) {
        $out .= '$' . length($a) . "\r\n$a\r\n";
    }
    return $out;
}

sub cmd {
    my ($self, @args) = @_;

    my $s = $self->{sock};
    print $s encode(@args) or die "redis client: send: $!\n";

    return $self->_reply;
}

sub _fill {
    my ($self) = @_;

    local $SIG{ALRM} = sub { die "redis client: read timeout\n" };
    alarm 5;
    my $n = sysread $self->{sock}, my $buf, 65536;
    alarm 0;

    die "redis client: read: " . (defined $n ? 'closed' : $!) . "\n"
        unless $n;

    $self->{buf} .= $buf;
}

sub _line {
    my ($self) = @_;

    while ((my $i = index $self->{buf}, "\r\n") < 0) {
        $self->_fill;
    }

    my $i = index $self->{buf}, "\r\n";
    my $line = substr $self->{buf}, 0, $i;
    substr($self->{buf}, 0, $i + 2) = '';

    return $line;
}

sub _reply {
    my ($self) = @_;

    my $line = $self->_line;
    my ($t, $rest) = (substr($line, 0, 1), substr($line, 1));

    return $rest if $t eq '+';
    return { error => $rest } if $t eq '-';
    return 0 + $rest if $t eq ':';

    if ($t eq '$') {
        return undef if $rest < 0;
        while (length $self->{buf} < $rest + 2) {
            $self->_fill;
        }
        my $v = substr $self->{buf}, 0, $rest;
        substr($self->{buf}, 0, $rest + 2) = '';
        return $v;
    }

    if ($t eq '*') {
        return undef if $rest < 0;
        return [ map { $self->_reply } 1 .. $rest ];
    }

    die "redis client: bad reply: $line\n";
}

sub info {
    my ($self, $section) = @_;

    my $text = $self->cmd(INFO => $section // 'default');
    my %h;
    for (split /\r?\n/, $text) {
        $h{$1} = $2 if /^(\w+):(.*)$/;
    }
    return \%h;
}

# GET $key until $ok->($value) says it is the one (at most $within
# seconds, again every $every): the last value (a write that comes after
# the response, a mark replaced by its verdict)
sub get_when {
    my ($self, $key, $ok, $within, $every) = @_;

    my $deadline = time + $within;
    my $v;

    while (1) {
        $v = $self->cmd(GET => $key);
        last if $ok->($v) || time > $deadline;
        Time::HiRes::sleep($every);
    }

    return $v;
}

sub close { close $_[0]{sock} }


package Txval::Redis::Monitor;

our @ISA = ('Txval::Redis::Client');

use IO::Select;
use Time::HiRes qw(time);

# the commands seen since the last call, after waiting up to $wait seconds
# for more: each one { db => N, args => [ name, arg, ... ] (MONITOR's
# escapes undone), raw => the line as MONITOR printed it }

sub commands {
    my ($self, $wait) = @_;

    my $sel = IO::Select->new($self->{sock});
    my $deadline = time + ($wait // 0.2);

    while (1) {
        my $left = $deadline - time;
        last if $left <= 0;
        last unless $sel->can_read($left);
        my $n = sysread $self->{sock}, my $buf, 65536;
        last unless $n;
        $self->{buf} .= $buf;
    }

    my @cmds;

    while ((my $i = index $self->{buf}, "\r\n") >= 0) {
        my $line = substr $self->{buf}, 0, $i;
        substr($self->{buf}, 0, $i + 2) = '';

        # +1700000000.123456 [0 127.0.0.1:41234] "GET" "key"
        # +1700000000.123457 [0 lua] "GET" "key"   (run by a script)
        next unless $line =~ /^\+\d+\.\d+ \[(\d+) ([^\]]*)\] (.*)$/;
        my ($db, $from, $rest) = ($1, $2, $3);

        my @args;
        while ($rest =~ /\G"((?:[^"\\]|\\.)*)" ?/gc) {
            push @args, unescape($1);
        }

        push @{ $self->{raw} }, $line;
        push @cmds, { db => $db, args => \@args, raw => $line,
                      lua => $from eq 'lua' };
    }

    return @cmds;
}

sub unescape {
    my ($s) = @_;
    my %c = (n => "\n", r => "\r", t => "\t", a => "\a", b => "\b",
             '"' => '"', '\\' => '\\');
    $s =~ s/\\(x([0-9a-fA-F]{2})|.)/defined $2 ? chr(hex $2) : ($c{$1} \/\/ $1)/ge;
    return $s;
}


1;
