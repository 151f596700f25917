#!/usr/bin/env bash
# Proves that the t/lib runner can fail: runs every
# t/runner-selftest/fail/*.tfail file (blocks with deliberately wrong
# expectations) and checks that
#   - the file exits non-zero,
#   - each block fails exactly N assertions, N being the "[fails:N]" marker
#     in the block title (blocks marked [fails:0] must pass completely),
#   - prove's summary reports the expected total of failed subtests.
#
# Usage: bash t/runner-selftest/check-fails.sh     (from anywhere)

set -u
cd "$(dirname "$0")/../.." || exit 2

export TXVAL_NO_MODULE=1 TXVAL_OWN_RUNNER=1
export TEST_NGINX_RANDOMIZE="${TEST_NGINX_RANDOMIZE:-1}"

status=0
shopt -s nullglob
files=(t/runner-selftest/fail/*.tfail)
if [ ${#files[@]} -eq 0 ]; then
    echo "check-fails: no t/runner-selftest/fail/*.tfail files" >&2
    exit 2
fi

for f in "${files[@]}"; do
    out=$(prove -v -I t/lib "$f" 2>&1)
    rc=$?
    if ! printf '%s\n' "$out" | perl -e '
        use strict; use warnings;
        my ($file, $rc) = @ARGV;
        open my $in, "<", $file or die "$file: $!";
        my (%want, @order, $total);
        while (<$in>) {
            next unless /^=== TEST (\d+):.*\[fails:(\d+)\]/;
            $want{$1} = $2; push @order, $1; $total += $2;
        }
        my (%bad, %seen, $summary);
        while (my $l = <STDIN>) {
            if ($l =~ /^(not )?ok \d+ - .*?\bTEST (\d+):/) {
                $seen{$2}++;
                $bad{$2}++ if $1;
            }
            $summary = $1 if $l =~ m{^Failed (\d+)/\d+ subtests};
        }
        my @err;
        push @err, "file exited with status 0" if $rc == 0;
        for my $b (@order) {
            my $got = $bad{$b} // 0;
            push @err, "TEST $b: no assertions ran" unless $seen{$b};
            push @err, "TEST $b: expected $want{$b} failure(s), got $got"
                if $got != $want{$b};
        }
        for my $b (sort { $a <=> $b } keys %bad) {
            push @err, "TEST $b: failed but has no [fails:N] marker"
                unless exists $want{$b};
        }
        push @err, "prove summary: expected $total failed subtests, got "
                   . ($summary // "none") if ($summary // -1) != $total;
        if (@err) { print STDERR "  $_\n" for @err; exit 1 }
        printf "%s: %d blocks, %d expected failures, all as expected\n",
               $file, scalar @order, $total;
        exit 0;
    ' "$f" "$rc"; then
        echo "check-fails: FAILED for $f; prove output follows" >&2
        printf '%s\n' "$out" >&2
        status=1
    fi
done

exit $status
