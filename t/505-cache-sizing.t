# The README's sizing note, measured through txval_metrics: every cache
# entry takes one 256-byte slab slot whatever the id's length; a full zone
# evicts exactly one entry per new one (txval_cache_evictions_total) and
# never outgrows txval_cache_bytes_total. No backend needed.

use strict;
use warnings;

use lib 't/lib';
use Test::More;
use Txval::Nginx;

my $ng = Txval::Nginx->new(name => 'm505', port => 1953);
my $port = $ng->port;

# 64k: the smallest zone worth measuring in well under a second
$ng->start(workers => 1, http => <<"HTTP");
    txval_cache_zone m505:64k ttl=1h;

    server {
        listen 127.0.0.1:$port;
        location = /t { txval; }
        location = /metrics { txval_metrics; }
        location / { return 204; }
    }
HTTP

my $run = "s$$";
my $n = 0;

sub fill {
    my ($count, $idlen) = @_;
    my @bad;
    for (1 .. $count) {
        $n++;
        my $id = substr("$run.$n." . ('x' x 64), 0, $idlen // 12);
        my $res = $ng->post('/t', qq({"id":"$id","amount":1000,"currency":"EUR",)
                                  . qq("merchant_id":"m_1","card_token":"tok_1"}));
        push @bad, "$id: $res->{status}" unless $res->{status} == 200
                                             && $res->{body} =~ /"source":"computed"/;
    }
    return @bad;
}

sub cache {
    my $m = $ng->metrics;
    return { map { $_ => $m->{values}{"txval_cache_$_"} + 0 }
             qw(entries bytes_used bytes_total evictions_total) };
}

my $empty = cache();
is $empty->{entries}, 0, 'empty zone: 0 entries';
is $empty->{bytes_total}, 65536, 'bytes_total is the zone size';
ok $empty->{bytes_used} > 0 && $empty->{bytes_used} <= 8192,
   "empty zone: $empty->{bytes_used} bytes of bookkeeping";

# 160 short ids, then 32 ids of the longest length (64): 16 entries a page
is_deeply [fill(160, 12)], [], '160 new ids with 12-character ids computed';
my $short = cache();
is $short->{entries}, 160, '160 entries';
is +($short->{bytes_used} - $empty->{bytes_used}) / 160, 256,
   '256 bytes an entry (short ids)';

is_deeply [fill(32, 64)], [], '32 new ids of 64 characters computed';
my $long = cache();
is $long->{entries}, 192, '192 entries';
is +($long->{bytes_used} - $short->{bytes_used}) / 32, 256,
   '256 bytes an entry (64-character ids)';
is $long->{evictions_total}, 0, 'no eviction yet';

# fill it up: the capacity, then one eviction per new id
is_deeply [fill(40)], [], '40 more computed';
my $full = cache();
my $capacity = $full->{entries};
ok $capacity >= 192 && $capacity < 232, "a 64k zone holds $capacity entries";
is $full->{evictions_total}, 232 - $capacity,
   'evictions: the entries that did not fit';
ok $full->{bytes_used} <= $full->{bytes_total}, 'bytes_used within the zone';

is_deeply [fill(25)], [], '25 more computed';
my $more = cache();
is $more->{entries}, $capacity, 'a full zone stays full';
is $more->{evictions_total}, $full->{evictions_total} + 25,
   'one eviction per new entry';

diag sprintf 'a 64k zone: %d entries, %d bytes used of %d (%.0f bytes an entry '
           . 'with bookkeeping)', $capacity, $more->{bytes_used},
             $more->{bytes_total}, $more->{bytes_total} / $capacity;

$ng->stop;

done_testing;
