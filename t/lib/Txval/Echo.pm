package Txval::Echo;

# A small HTTP/1.1 backend for the gate-mode tests: it records every
# request it receives (method, URI, header lines exactly as sent, the body
# byte for byte, how the body was framed, which connection it came on) and
# answers 200 with the body echoed back.
#
#   my $echo = Txval::Echo->start(port => 1969);   # forks, returns once
#                                                   # it listens
#   ... requests through nginx's proxy_pass ...
#   my @reqs = $echo->requests;   # records since the last reset
#   my $n    = $echo->count;
#   my $c    = $echo->connections;   # connections opened to it since
#                                    # the last reset (control ones aside)
#   $echo->reset;
#   $echo->stop;                  # also done at exit
#
# A record is a hash:
#   method, uri, version   the request line
#   headers                [[name, value], ...] in the order received
#   body                   the body (chunked framing removed)
#   chunked                1 when it came with Transfer-Encoding: chunked
#   content_length         the Content-Length header (undef if none)
#   conn                   the number of the connection (1, 2, ...)
#   conn_req               the number of the request on that connection
#
# and Txval::Echo::header($rec, $name) gives the values of a header (any
# case), in order.
#
# The answer to a recorded request: 200, the request body as the response
# body, and headers X-Echo-Count (the record's number since the last
# reset), X-Echo-Conn, X-Echo-Conn-Req, X-Echo-Method, X-Echo-Uri,
# X-Echo-Framing (chunked, length or none), and for every request header
# named X-Something one X-Echo-X-Something with its value. Connections are
# kept alive (HTTP/1.1 without "Connection: close", or HTTP/1.0 with
# "Connection: keep-alive"), many at once. A request with the header
# "X-Echo-Sleep: SECONDS" is answered that much later (the backend does
# nothing else meanwhile).
#
# Requests for /_echo/... are control requests, never recorded:
#   GET /_echo/count   "N\n"
#   GET /_echo/conns   "N\n", the connections opened since the last reset,
#                      but for those whose first request was a control one
#   GET /_echo/reset   "ok\n"
#   GET /_echo/log     the records as a JSON array (bodies as Latin-1
#                      strings, that is bytes)

use strict;
use warnings;

use IO::Select;
use IO::Socket::INET;
use JSON::PP ();
use POSIX ();
use Time::HiRes qw(sleep time);

my %children;    # pid => 1

END {
    my $status = $?;
    for my $pid (keys %children) {
        kill 'TERM', $pid;
        waitpid $pid, 0;
    }
    $? = $status;
}


sub start {
    my ($class, %args) = @_;

    my $port = $args{port} // 1969;

    my $listen = IO::Socket::INET->new(LocalAddr => '127.0.0.1',
                                       LocalPort => $port,
                                       Proto => 'tcp',
                                       Listen => 128,
                                       ReuseAddr => 1)
        or die "Txval::Echo: cannot listen on 127.0.0.1:$port: $!\n";

    my $parent = $$;
    my $pid = fork // die "Txval::Echo: fork: $!\n";

    if ($pid == 0) {
        my $ok = eval { _serve($listen, $parent); 1 };
        warn "Txval::Echo: $@" unless $ok;
        POSIX::_exit(0);
    }

    close $listen;
    $children{$pid} = 1;

    my $self = bless { port => $port, pid => $pid }, $class;

    # up when a control request is answered
    my $deadline = time + 10;
    while (time < $deadline) {
        my $n = eval { $self->count };
        return $self if defined $n;
        sleep 0.02;
    }

    die "Txval::Echo: the backend on $port does not answer\n";
}


sub port { $_[0]{port} }


sub stop {
    my ($self) = @_;
    my $pid = delete $self->{pid} or return;
    kill 'TERM', $pid;
    waitpid $pid, 0;
    delete $children{$pid};
    return 1;
}


sub count {
    my ($self) = @_;
    my $body = $self->_control('count');
    $body =~ /^(\d+)\n\z/ or die "Txval::Echo: bad count answer: $body\n";
    return $1;
}


sub connections {
    my ($self) = @_;
    my $body = $self->_control('conns');
    $body =~ /^(\d+)\n\z/ or die "Txval::Echo: bad conns answer: $body\n";
    return $1;
}


sub reset {
    my ($self) = @_;
    my $body = $self->_control('reset');
    $body eq "ok\n" or die "Txval::Echo: bad reset answer: $body\n";
    return 1;
}


sub requests {
    my ($self) = @_;
    my $list = JSON::PP->new->latin1->decode($self->_control('log'));
    return @$list;
}


sub header {
    my ($rec, $name) = @_;
    return map { $_->[1] } grep { lc $_->[0] eq lc $name } @{$rec->{headers}};
}


sub _control {
    my ($self, $what) = @_;

    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                  PeerPort => $self->{port},
                                  Proto => 'tcp', Timeout => 5)
        or die "Txval::Echo: connect to $self->{port}: $!\n";

    $s->print("GET /_echo/$what HTTP/1.0\r\nHost: echo\r\n\r\n")
        or die "Txval::Echo: send: $!\n";

    local $SIG{ALRM} = sub { die "Txval::Echo: read timeout\n" };
    alarm 5;

    my $raw = '';
    while (1) {
        my $n = sysread $s, my $buf, 65536;
        die "Txval::Echo: read: $!\n" unless defined $n;
        last if $n == 0;
        $raw .= $buf;
    }

    alarm 0;
    close $s;

    my ($head, $body) = split /\r\n\r\n/, $raw, 2;
    die "Txval::Echo: bad control answer\n"
        unless defined $body && $head =~ m{^HTTP/1\.\d 200 };

    return $body;
}


# ---------------------------------------------------------------------------
# the server (in the child)
# ---------------------------------------------------------------------------

sub _serve {
    my ($listen, $parent) = @_;

    $SIG{TERM} = sub { POSIX::_exit(0) };
    $SIG{PIPE} = 'IGNORE';

    my $sel = IO::Select->new($listen);
    my %conn;          # fileno => {sock, buf, id, reqs}
    my $conns = 0;      # connection numbers
    my $opened = 0;     # connections since the last reset, control aside
    my @log;

    for (;;) {
        # gone with the test that started us
        POSIX::_exit(0) if getppid() != $parent;

        for my $fh ($sel->can_read(1)) {

            if ($fh == $listen) {
                my $c = $listen->accept or next;
                $c->autoflush(1);
                $sel->add($c);
                $conn{fileno $c} = { sock => $c, buf => '', id => ++$conns,
                                     reqs => 0, first => 1 };
                $opened++;
                next;
            }

            my $st = $conn{fileno $fh};
            my $n = sysread $fh, my $data, 65536;

            if (!$n) {
                $sel->remove($fh);
                delete $conn{fileno $fh};
                close $fh;
                next;
            }

            $st->{buf} .= $data;

            # every complete request in the buffer
            while (my $req = _parse(\$st->{buf})) {

                if ($req->{error}) {
                    _write($fh, "HTTP/1.1 400 Bad Request\r\n"
                           . "Content-Length: 0\r\nConnection: close\r\n\r\n");
                    $st->{close} = 1;
                    last;
                }

                my $keep = _keepalive($req);
                my ($status, $hdrs, $body);
                my $first = delete $st->{first};

                if ($req->{uri} =~ m{^/_echo/(\w+)}) {
                    my $what = $1;
                    $opened-- if $first;
                    $status = 200;
                    $hdrs = [];
                    if ($what eq 'count') {
                        $body = scalar(@log) . "\n";
                    } elsif ($what eq 'conns') {
                        $body = "$opened\n";
                    } elsif ($what eq 'reset') {
                        @log = ();
                        $opened = 0;
                        $body = "ok\n";
                    } elsif ($what eq 'log') {
                        $body = JSON::PP->new->latin1->canonical
                                ->encode(\@log);
                    } else {
                        $status = 404;
                        $body = "no such control request\n";
                    }

                } else {
                    $req->{conn} = $st->{id};
                    $req->{conn_req} = ++$st->{reqs};
                    push @log, $req;

                    my ($pause) = header($req, 'X-Echo-Sleep');
                    sleep $pause if defined $pause && $pause =~ /^\d+(\.\d+)?$/;

                    $status = 200;
                    $body = $req->{body};
                    $hdrs = [
                        [ 'Content-Type', 'application/octet-stream' ],
                        [ 'X-Echo-Count', scalar @log ],
                        [ 'X-Echo-Conn', $st->{id} ],
                        [ 'X-Echo-Conn-Req', $st->{reqs} ],
                        [ 'X-Echo-Method', $req->{method} ],
                        [ 'X-Echo-Uri', $req->{uri} ],
                        [ 'X-Echo-Framing', $req->{chunked} ? 'chunked'
                                            : defined $req->{content_length}
                                            ? 'length' : 'none' ],
                    ];
                    for my $h (@{$req->{headers}}) {
                        push @$hdrs, [ "X-Echo-$h->[0]", $h->[1] ]
                            if $h->[0] =~ /^x-/i;
                    }
                }

                my $out = "HTTP/1.1 $status "
                          . ($status == 200 ? 'OK' : 'Not Found') . "\r\n";
                $out .= "$_->[0]: $_->[1]\r\n" for @$hdrs;
                $out .= "Content-Length: " . length($body) . "\r\n";
                $out .= "Connection: " . ($keep ? 'keep-alive' : 'close')
                        . "\r\n\r\n";
                $out .= $body;

                _write($fh, $out);

                if (!$keep) {
                    $st->{close} = 1;
                    last;
                }
            }

            if ($st->{close}) {
                $sel->remove($fh);
                delete $conn{fileno $fh};
                close $fh;
            }
        }
    }
}


sub _write {
    my ($fh, $out) = @_;
    my $off = 0;
    while ($off < length $out) {
        my $n = syswrite $fh, $out, length($out) - $off, $off;
        return unless defined $n;
        $off += $n;
    }
}


sub _keepalive {
    my ($req) = @_;
    my ($c) = header($req, 'Connection');
    $c = lc($c // '');
    return $c =~ /\bkeep-alive\b/ if $req->{version} eq '1.0';
    return $c !~ /\bclose\b/;
}


# one complete request off the front of $$buf, or undef if not complete yet

sub _parse {
    my ($buf) = @_;

    my $end = index $$buf, "\r\n\r\n";
    return undef if $end < 0;

    my $head = substr $$buf, 0, $end;
    my ($line, @lines) = split /\r\n/, $head;

    my ($method, $uri, $version) = $line =~ m{^(\S+) (\S+) HTTP/(1\.[01])$}
        or return { error => 1 };

    my @headers;
    for (@lines) {
        my ($k, $v) = /^([^:\s]+):[ \t]*(.*?)[ \t]*$/ or return { error => 1 };
        push @headers, [ $k, $v ];
    }

    my $req = { method => $method, uri => $uri, version => $version,
                headers => \@headers, chunked => 0, content_length => undef };

    my $pos = $end + 4;
    my ($te) = header($req, 'Transfer-Encoding');
    my ($cl) = header($req, 'Content-Length');

    if (defined $te && $te =~ /chunked/i) {
        $req->{chunked} = 1;
        my $body = '';

        for (;;) {
            my $eol = index $$buf, "\r\n", $pos;
            return undef if $eol < 0;
            my $size_line = substr $$buf, $pos, $eol - $pos;
            $size_line =~ /^([0-9a-fA-F]+)/ or return { error => 1 };
            my $size = hex $1;
            $pos = $eol + 2;

            if ($size == 0) {
                # trailer: header lines up to an empty line
                for (;;) {
                    my $e = index $$buf, "\r\n", $pos;
                    return undef if $e < 0;
                    my $empty = $e == $pos;
                    $pos = $e + 2;
                    last if $empty;
                }
                last;
            }

            return undef if length($$buf) < $pos + $size + 2;
            $body .= substr $$buf, $pos, $size;
            $pos += $size + 2;
        }

        $req->{body} = $body;

    } else {
        if (defined $cl) {
            $cl =~ /^\d+$/ or return { error => 1 };
            $req->{content_length} = $cl + 0;
        }
        my $len = $req->{content_length} // 0;
        return undef if length($$buf) < $pos + $len;
        $req->{body} = substr $$buf, $pos, $len;
        $pos += $len;
    }

    substr($$buf, 0, $pos) = '';

    return $req;
}


1;
