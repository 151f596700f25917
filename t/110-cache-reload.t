# The verdict cache across reloads: a HUP with the same zone size keeps the
# entries; a HUP that changes the size is refused (the old workers keep
# serving, entries and all); a stop and start empties the zone.

use strict;
use warnings;

use lib 't/lib';
use Test::More;
use Txval::Nginx;
use Txval::Tx qw(tx_defaults tx source_of);

my $ng = Txval::Nginx->new(name => 'reload', port => 1990);

sub http_config {
    my ($size) = @_;
    my $port = $ng->port;

    return <<"HTTP";
    txval_cache_zone txval:$size ttl=10m;

    server {
        listen 127.0.0.1:$port;
        server_name localhost;

        location /t {
            txval;
        }

        location / {
            return 204;
        }
    }
HTTP
}

tx_defaults(currency => 'EUR');

sub send_tx {
    return source_of($ng->post('/t', tx(@_)));
}


$ng->start(http => http_config('1m'), workers => 2);

is send_tx(id => 'tx_r1'), 'computed', 'first sight: computed';
is send_tx(id => 'tx_r1'), 'shm', 'replay before any reload: shm';

my @before = $ng->workers;
is scalar(@before), 2, 'two workers';

# --- HUP, same size: the entries stay

ok $ng->reload(http => http_config('1m')), 'reload with the same size';

my @after = $ng->workers;
my %before = map { $_ => 1 } @before;
ok !(grep { $before{$_} } @after), 'the workers are new ones'
    or diag "before @before, after @after";

is send_tx(id => 'tx_r1'), 'shm', 'after the reload the entry is still there';
is send_tx(id => 'tx_r1', amount => 2000), '409 idempotency_conflict',
   'and its fingerprint too: other content is a conflict';

is send_tx(id => 'tx_r2'), 'computed', 'a new id after the reload: computed';

# the same size written differently is the same size

ok $ng->reload(http => http_config('1024k')), 'reload with 1024k (= 1m)';
is send_tx(id => 'tx_r1'), 'shm', 'entry kept across the second reload';
is send_tx(id => 'tx_r2'), 'shm', 'entry stored between reloads kept';

# --- HUP, other size: refused, the old workers keep serving from shm

@before = $ng->workers;
my $offset = -s $ng->error_log_path;

ok !$ng->reload(http => http_config('2m')), 'reload with 2m is refused';

my $log = $ng->error_log_since($offset);
like $log,
     qr/\[emerg\] .*txval_cache_zone "txval" cannot change its size from 1048576 to 2097152 on reload: restart nginx, or give the zone a new name/,
     'the error log says why';
unlike $log, qr/\[(alert|crit)\]/, 'no alert or crit on the refused reload';

# the master may still be tearing the refused cycle down: give it a moment
select undef, undef, undef, 0.3;

is_deeply [$ng->workers], \@before, 'the old workers are still the ones';
ok kill(0, $ng->master), 'the master is alive';

is send_tx(id => 'tx_r1'), 'shm', 'old workers still answer tx_r1 from shm';
is send_tx(id => 'tx_r2'), 'shm', 'and tx_r2';
is send_tx(id => 'tx_r3'), 'computed', 'a new id is computed';
is send_tx(id => 'tx_r3'), 'shm', 'and stored: the zone still works';

# back to the old size: accepted, entries kept
ok $ng->reload(http => http_config('1m')), 'reload with the old size again';
is send_tx(id => 'tx_r3'), 'shm', 'entries kept';

# --- stop and start: a new, empty zone

$ng->stop;
ok !kill(0, $before[0]), 'the old workers are gone';

$ng->start(http => http_config('1m'), workers => 2, clean => 0);

is send_tx(id => 'tx_r1'), 'computed', 'after a restart tx_r1 is computed';
is send_tx(id => 'tx_r1', amount => 2000), '409 idempotency_conflict',
   'a changed replay after the restart is a conflict with the new entry';
is send_tx(id => 'tx_r3'), 'computed', 'tx_r3 is computed';

$ng->stop;

unlike $ng->error_log, qr/\[(alert|crit)\]|exited on signal|core dumped/,
       'no alert, crit or crash in the whole run';

done_testing;
