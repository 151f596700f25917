package Txval::DNS;

# A tiny DNS responder for the tests (UDP, on loopback): A records from a
# zone the test changes while it runs; AAAA and other questions get an
# empty answer, unknown names NXDOMAIN.
#
#   my $dns = Txval::DNS->start(port => 15353, dir => $dir,
#                               zone => { 'redis.test' => '127.0.0.1' },
#                               ttl => 1);
#   $dns->set('redis.test' => '127.0.0.2');    # from the next question on
#   $dns->questions                            # how many were answered
#   $dns->stop;                                # (also at exit)
#
# nginx: resolver 127.0.0.1:15353 valid=1s ipv6=off;

use strict;
use warnings;

use IO::Socket::INET;
use POSIX ();
use Time::HiRes qw(sleep);

my %running;

END {
    my $status = $?;
    for my $pid (keys %running) {
        kill 'KILL', $pid;
        waitpid $pid, 0;
    }
    $? = $status;
}


sub start {
    my ($class, %args) = @_;

    my $self = bless {
        port => $args{port} // 15353,
        dir  => $args{dir} // die("Txval::DNS: no dir\n"),
        ttl  => $args{ttl} // 1,
    }, $class;

    $self->{zone} = "$self->{dir}/zone";
    $self->{count} = "$self->{dir}/questions";
    $self->_write($args{zone} // {});

    my $sock = IO::Socket::INET->new(LocalAddr => '127.0.0.1',
                                     LocalPort => $self->{port},
                                     Proto => 'udp', ReuseAddr => 1)
        or die "Txval::DNS: bind 127.0.0.1:$self->{port}: $!\n";

    my $pid = fork // die "fork: $!\n";

    if ($pid == 0) {
        %running = ();
        $self->_serve($sock);
        POSIX::_exit(0);
    }

    close $sock;
    $self->{pid} = $pid;
    $running{$pid} = 1;

    return $self;
}


sub set {
    my ($self, %names) = @_;
    my $zone = $self->_read;
    @$zone{ keys %names } = values %names;
    $self->_write($zone);
}


sub questions {
    my ($self) = @_;
    open my $fh, '<', $self->{count} or return 0;
    my $n = <$fh>;
    return $n // 0;
}


sub stop {
    my ($self) = @_;
    my $pid = delete $self->{pid} or return;
    kill 'KILL', $pid;
    waitpid $pid, 0;
    delete $running{$pid};
}


sub _write {
    my ($self, $zone) = @_;
    open my $fh, '>', "$self->{zone}.tmp" or die "$self->{zone}: $!\n";
    print $fh "$_ $zone->{$_}\n" for sort keys %$zone;
    close $fh;
    rename "$self->{zone}.tmp", $self->{zone} or die "rename: $!\n";
}


sub _read {
    my ($self) = @_;
    my %zone;
    open my $fh, '<', $self->{zone} or return \%zone;
    while (<$fh>) {
        my ($name, $ip) = split ' ';
        $zone{lc $name} = $ip if defined $ip;
    }
    return \%zone;
}


sub _serve {
    my ($self, $sock) = @_;

    my $answered = 0;

    while (1) {
        my $peer = $sock->recv(my $q, 512);
        next unless defined $peer && length $q >= 12;

        my ($id, $flags, $qd) = unpack 'n n n', $q;
        next unless $qd == 1;

        # the question: labels, type, class
        my ($pos, @labels) = (12);
        while ($pos < length $q) {
            my $len = ord substr $q, $pos, 1;
            $pos++;
            last if $len == 0;
            push @labels, substr $q, $pos, $len;
            $pos += $len;
        }
        next if $pos + 4 > length $q;

        my ($type) = unpack 'n', substr $q, $pos, 2;
        my $question = substr $q, 12, $pos + 4 - 12;
        my $name = lc join '.', @labels;

        my $ip = $self->_read->{$name};

        my ($rcode, $answer) = (0, '');

        if (!defined $ip) {
            $rcode = 3;                                     # NXDOMAIN

        } elsif ($type == 1) {                              # A
            $answer = pack('n n n N n', 0xc00c, 1, 1, $self->{ttl}, 4)
                    . pack('C4', split /\./, $ip);
        }

        my $reply = pack('n n n n n n', $id, 0x8180 | $rcode, 1,
                         length($answer) ? 1 : 0, 0, 0)
                  . $question . $answer;

        $sock->send($reply, 0, $peer);

        $answered++;
        if (open my $fh, '>', $self->{count}) {
            print $fh $answered;
            close $fh;
        }
    }
}


1;
