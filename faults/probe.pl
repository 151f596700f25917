#!/usr/bin/perl
# The fault suite's prober: one request at a time, each on a new
# connection, until SIGTERM; one line per request to OUTFILE:
#
#   START_EPOCH KIND STATUS LATENCY_MS SOURCE CHECK
#
# KIND    new (POST /v, a new transaction id: cache, Redis, Postgres,
#         velocity), replay (POST /v, the id primed by run.sh: the shm
#         zone answers), plain (GET /plain, no txval)
# STATUS  the HTTP status, or connect / reset / eof (closed before a full
#         response) / timeout (no full response within TIMEOUT seconds)
# SOURCE  X-Txval-Source, or -
# CHECK   ok, or what is wrong with a response that has a status: a 200
#         or 402 without a verdict body, a 503 without the SPEC body or
#         Retry-After: 1
#
#   probe.pl PORT OUTFILE RUN_ID [PAUSE_MS] [TIMEOUT_S]

use strict;
use warnings;

use IO::Select;
use IO::Socket::INET;
use Socket qw(IPPROTO_TCP TCP_NODELAY);
use Time::HiRes qw(time sleep);

my ($port, $out, $run, $pause_ms, $timeout) = @ARGV;
die "usage: probe.pl PORT OUTFILE RUN_ID [PAUSE_MS] [TIMEOUT_S]\n"
    unless defined $run;
$pause_ms //= 20;
$timeout //= 10;

my $stop = 0;
$SIG{TERM} = $SIG{INT} = sub { $stop = 1 };
$SIG{PIPE} = 'IGNORE';

open my $fh, '>>', $out or die "probe.pl: $out: $!\n";
$fh->autoflush(1);

sub tx {
    my ($id, $n) = @_;
    my $card = 1 + $n % 10000;
    my $merchant = 1 + $n % 1000;
    return qq({"id":"$id","amount":2500,"currency":"USD",)
         . qq("merchant_id":"m_bench_$merchant","card_token":"tok_bench_$card",)
         . qq("card_bin":"424242","country":"US"});
}

# the replayed transaction: run.sh primes it before the load starts
my $replay = tx("fault_replay_$run", 0);

sub request {
    my ($kind, $n) = @_;

    if ($kind eq 'plain') {
        return "GET /plain HTTP/1.1\r\nHost: faults\r\nConnection: close\r\n\r\n";
    }

    my $body = $kind eq 'replay' ? $replay : tx("fp_${run}_$n", $n);

    return "POST /v HTTP/1.1\r\nHost: faults\r\nConnection: close\r\n"
         . "Content-Type: application/json\r\n"
         . "Content-Length: " . length($body) . "\r\n\r\n$body";
}

# ($status, $headers, $body) or ($error)
sub exchange {
    my ($req) = @_;

    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port,
                                  Proto => 'tcp', Timeout => $timeout)
        or return ('connect');
    setsockopt($s, IPPROTO_TCP, TCP_NODELAY, 1);
    $s->blocking(0);

    my $deadline = time + $timeout;
    my $sel = IO::Select->new($s);
    my ($off, $resp) = (0, '');

    while ($off < length $req) {
        my $left = $deadline - time;
        return ('timeout') if $left <= 0;
        next unless IO::Select->select(undef, $sel, undef, $left);
        my $n = syswrite($s, $req, length($req) - $off, $off);
        if (!defined $n) {
            next if $!{EAGAIN} || $!{EINTR};
            return ($!{ECONNRESET} || $!{EPIPE} ? 'reset' : 'eof');
        }
        $off += $n;
    }

    for (;;) {
        my $left = $deadline - time;
        return ('timeout') if $left <= 0;
        next unless $sel->can_read($left);
        my $n = sysread($s, my $buf, 65536);
        if (!defined $n) {
            next if $!{EAGAIN} || $!{EINTR};
            return ($!{ECONNRESET} ? 'reset' : 'eof');
        }
        last if $n == 0;
        $resp .= $buf;
    }

    close $s;

    return ('eof') unless $resp =~ m{\AHTTP/1\.[01] (\d{3}) [^\r]*\r\n(.*?)\r\n\r\n(.*)\z}s;
    my ($status, $h, $body) = ($1, $2, $3);

    my %h;
    $h{lc $1} = $2 while $h =~ /^([^:\r\n]+):[ \t]*([^\r\n]*)/mg;

    # a complete response: as long as it says
    if (defined $h{'content-length'} && length($body) != $h{'content-length'}) {
        return ('eof');
    }

    return ($status, \%h, $body);
}

my $n = 0;
my @kinds = qw(new replay new plain);

while (!$stop) {
    my $kind = $kinds[$n % @kinds];
    $n++;

    my $t0 = time;
    my ($status, $h, $body) = exchange(request($kind, $n));
    my $ms = (time - $t0) * 1000;

    my ($source, $check) = ('-', 'ok');

    if (ref $h) {
        $source = $h->{'x-txval-source'} // '-';

        if ($kind eq 'plain') {
            $check = 'plain_not_200' if $status ne '200';

        } elsif ($status eq '200' || $status eq '402') {
            $check = 'bad_verdict_body'
                unless $body =~ /\A\{"id":"[^"]+","verdict":"(?:approved|declined)",/;

        } elsif ($status eq '503') {
            $check = 'bad_503'
                unless $body =~ /\A\{"error":"backend_unavailable",/
                       && ($h->{'retry-after'} // '') eq '1';
        }
    }

    printf $fh "%.3f %s %s %.1f %s %s\n", $t0, $kind, $status, $ms, $source,
           $check;

    sleep($pause_ms / 1000) if $pause_ms;
}

close $fh;
