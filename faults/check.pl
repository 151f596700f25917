#!/usr/bin/perl
# Judges one fault scenario from the prober's log (faults/probe.pl):
#
#   check.pl --log FILE --from T0 --to T1 --fault TF --back TB
#            [--heal S] [--hang-ms MS] [--plain-ms MS]
#            [--grace-from T --grace-to T --grace-max N]
#
# Probes started in [T0, T1] count. Fails (exit 1, one line per problem)
# when
#   - a response is not a valid SPEC answer: /v gave something else than
#     200, 402 or 503 (500, a reset, a close before the full response, no
#     answer within the prober's timeout), a 200/402 without a verdict body,
#     a 503 without backend_unavailable and Retry-After: 1; /plain not 200;
#   - a replay was not answered 200 from the shm zone (source shm);
#   - a /v probe took longer than --hang-ms (the configured timeouts plus a
#     margin), or /plain longer than --plain-ms (a blocked worker);
#   - before the fault (T0 + 1 s .. TF) a new transaction was not 200/402
#     (the system was not healthy when the fault came);
#   - after TB + --heal seconds a new transaction was not 200/402 (the
#     pools did not heal), or there were fewer than 5 such probes.
# Probes started in the grace window (a deliberately killed worker: its
# in-flight requests die with it) may fail or be slow, at most --grace-max
# of them.
#
# Prints a one-line summary either way.

use strict;
use warnings;

use Getopt::Long;

my %o = (heal => 1.0, 'hang-ms' => 2000, 'plain-ms' => 1000,
         'grace-from' => 0, 'grace-to' => 0, 'grace-max' => 0);
GetOptions(\%o, 'log=s', 'from=f', 'to=f', 'fault=f', 'back=f', 'heal=f',
           'hang-ms=f', 'plain-ms=f', 'grace-from=f', 'grace-to=f',
           'grace-max=i')
    or die "check.pl: bad options\n";

for (qw(log from to fault back)) {
    die "check.pl: --$_ is required\n" unless defined $o{$_};
}

open my $fh, '<', $o{log} or die "check.pl: $o{log}: $!\n";

my (@problems, %count, %status, $max_v, $max_plain);
my ($healed_n, $graced, $before_n) = (0, 0, 0);
my $first_ok_after_back;
$max_v = $max_plain = 0;

while (my $line = <$fh>) {
    my ($t, $kind, $st, $ms, $source, $check) = split ' ', $line;
    next unless defined $check;
    next if $t < $o{from} || $t > $o{to};

    $count{$kind}++;
    $status{"$kind:$st"}++;

    my @bad;

    if ($kind eq 'plain') {
        push @bad, "status $st" if $st ne '200';
        push @bad, sprintf('took %.0f ms', $ms) if $ms > $o{'plain-ms'};
        $max_plain = $ms if $ms > $max_plain;

    } else {
        push @bad, "status $st" if $st !~ /\A(?:200|402|503)\z/;
        push @bad, $check if $check ne 'ok';
        push @bad, sprintf('took %.0f ms', $ms) if $ms > $o{'hang-ms'};
        $max_v = $ms if $ms > $max_v;

        if ($kind eq 'replay' && $st =~ /\A\d+\z/
            && !($st eq '200' && $source eq 'shm'))
        {
            push @bad, "replay answered $st from $source, not 200 from shm";
        }

        if ($kind eq 'new') {
            my $ok = $st eq '200' || $st eq '402';

            if ($t >= $o{from} + 1 && $t < $o{fault} && !$ok) {
                push @bad, "status $st before the fault";
            }

            $before_n++ if $t >= $o{from} + 1 && $t < $o{fault};

            if ($t >= $o{back}) {
                $first_ok_after_back //= $t if $ok;
            }

            if ($t >= $o{back} + $o{heal}) {
                $healed_n++;
                push @bad, sprintf('status %s %.2f s after the backend was back',
                                   $st, $t - $o{back})
                    unless $ok;
            }
        }
    }

    next unless @bad;

    if ($t >= $o{'grace-from'} && $t <= $o{'grace-to'}) {
        $graced++;
        next;
    }

    push @problems, sprintf('%.3f %s: %s', $t, $kind, join(', ', @bad));
}

close $fh;

if ($graced > $o{'grace-max'}) {
    push @problems, "$graced probes failed around the worker kill "
                    . "(at most $o{'grace-max'} may)";
}

if ($healed_n < 5) {
    push @problems, "only $healed_n new-transaction probes after healing"
                    . " (the prober stalled?)";
}

if ($before_n < 3) {
    push @problems, "only $before_n new-transaction probes before the fault";
}

my $heal_s = defined $first_ok_after_back
             ? sprintf('%.2f s', $first_ok_after_back - $o{back}) : 'never';

printf "  probes: %s; /v max %.0f ms, /plain max %.0f ms; first success %s"
       . " after the backend was back%s\n",
       join(' ', map { "$_=$status{$_}" } sort keys %status),
       $max_v, $max_plain, $heal_s,
       $graced ? "; $graced failed in the kill window (allowed)" : '';

if (@problems) {
    my $n = @problems;
    splice @problems, 20, $#problems, "... and " . ($n - 20) . " more"
        if $n > 21;
    print "  PROBLEM: $_\n" for @problems;
    exit 1;
}

exit 0;
