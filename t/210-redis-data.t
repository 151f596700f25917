# What txval writes to Redis, byte for byte: key names ({prefix}v:{id},
# {prefix}vel:{card_token}:{window}), the verdict record
# "2;<reasons hex>;<score>;<fingerprint>" with its TTL (the zone's ttl),
# velocity counters and their TTL; records read back (replays across two
# nginx hosts that share Redis but not shm, conflicts, corrupt values,
# records of the older format); the mark of a transaction being validated
# ("p;<token>", SET NX GET) and the store that never overwrites a verdict;
# binary safety (ids and tokens with : . - _ give exactly the expected keys,
# protocol text in the body never reaches Redis, seen with MONITOR).
#
# Runs its own redis-server (port $TXVAL_TEST_REDIS_210_PORT, default
# 16394), so that it can look at every key and every command.

use strict;
use warnings;

use lib 't/lib';
use Test::More;
use Time::HiRes qw(sleep time);
use Txval::Nginx;
use Txval::Redis;
use Txval::Tx qw(tx_defaults tx v fingerprint);

my $rport = $ENV{TXVAL_TEST_REDIS_210_PORT} // 16394;
my $srv = Txval::Redis->start_server(port => $rport, name => '210');
my $r = Txval::Redis->client(port => $rport);
my $P = 't210:';

my $A = Txval::Nginx->new(name => 'r210a', port => 1992);
my $B = Txval::Nginx->new(name => 'r210b', port => 1993);

sub http_config {
    my ($port, $ttl) = @_;

    return <<"HTTP";
    txval_cache_zone txval:1m ttl=$ttl;
    txval_redis 127.0.0.1:$rport prefix=$P;

    server {
        listen 127.0.0.1:$port;
        server_name localhost;

        location /t { txval; txval_velocity 100 60s; }
        location /lim {
            txval;
            txval_amount_limit EUR 1 5000;
            txval_risk_threshold 30;
        }
        location /vel3 { txval; txval_velocity 3 1d; }
        location / { return 204; }
    }
HTTP
}

# --- transactions, verdicts, fingerprints

my %DEFAULT = (amount => 1000, currency => 'EUR', merchant_id => 'm_1',
               card_token => 'tok_1');

sub txn { return { %DEFAULT, @_ } }

tx_defaults(id => undef, %DEFAULT);

sub record {
    my ($t, $reasons, $score) = @_;
    return sprintf '2;%x;%d;%s', $reasons, $score, fingerprint(%$t);
}

sub post { my ($ng, $uri, $t) = @_; return $ng->post($uri, tx(%$t)) }

# "status source" (source from the body, checked against the header)
sub outcome { return Txval::Tx::outcome($_[0], header => 1) }

sub settled_get {
    my ($key, $want) = @_;
    # a mark (p;...) is there until the verdict replaces it
    return $r->get_when($key, sub { defined $_[0] && $_[0] !~ /^p;/
                                    && (!defined $want || $_[0] eq $want) },
                        3, 0.005);
}

sub settled_ttl {
    my ($key) = @_;
    settled_get($key);
    return $r->cmd(TTL => $key);
}

sub keys_sorted { return [ sort @{ $r->cmd(KEYS => "$P*") } ] }

sub count_in { my ($re, $text) = @_; my $n = () = $text =~ /$re/g; $n }

$A->start(http => http_config($A->port, '5m'));

# --- 1. keys and values

{
    my $t = txn(id => 'tx.a-b_c:1', card_token => 'tok:x.y-z_1');
    my $w0 = int(time / 60);
    my $res = post($A, '/t', $t);
    my $w1 = int(time / 60);

    is outcome($res), '200 computed', 'first sight: computed';
    is $res->{body}, v('tx.a-b_c:1', 'computed'), 'the verdict';
    settled_get("${P}v:tx.a-b_c:1");

    my $keys = keys_sorted();
    is scalar(@$keys), 2, 'two keys: the verdict and the counter'
        or diag explain $keys;
    is $keys->[0], "${P}v:tx.a-b_c:1", 'verdict key {prefix}v:{id}';
    like $keys->[1], qr/^\Q${P}vel:tok:x.y-z_1:\E(\d+)$/,
         'counter key {prefix}vel:{card_token}:{window}';
    my ($w) = $keys->[1] =~ /:(\d+)$/;
    ok defined $w && ($w == $w0 || $w == $w1),
       'window = unix time / WINDOW' or diag "window $w, expected $w0/$w1";

    is $r->cmd(GET => "${P}v:tx.a-b_c:1"), record($t, 0, 0),
       'verdict record: "2;0;0;<fingerprint>"';
    my $ttl = settled_ttl("${P}v:tx.a-b_c:1");
    ok $ttl > 290 && $ttl <= 300, 'record TTL = the zone ttl (5m)'
        or diag "TTL $ttl";

    is $r->cmd(GET => $keys->[1]), '1', 'counter = 1';
    my $vttl = $r->cmd(TTL => $keys->[1]);
    ok $vttl > 0 && $vttl <= 60, 'counter TTL <= WINDOW (60s)'
        or diag "TTL $vttl";
}

{
    my $t = txn(id => 'lim1', amount => 9000, card_bin => '42424242',
                country => 'FR');
    my $res = post($A, '/lim', $t);
    is outcome($res), '402 computed', 'declined';
    is settled_get("${P}v:lim1"), record($t, 0x202, 30),
       'declined record: reasons amount_out_of_range|risk_too_high = 202, '
       . 'score 30, fingerprint over the optional fields too';
    is $r->cmd(TTL => "${P}vel:tok_1:" . int(time / 60)), -2,
       'a location without velocity counts nothing';
}

{
    my @res;
    my $day0 = int(time / 86400);
    push @res, post($A, '/vel3', txn(id => "vv$_", card_token => 'tok_v3'))
        for 1 .. 4;
    my $day = int(time / 86400);

    is_deeply [ map { outcome($_) } @res ],
              [ '200 computed', '200 computed', '200 computed',
                '402 computed' ], 'velocity 3: the 4th is declined';
    is $res[3]{body}, v('vv4', 'computed', 'declined', ['velocity_exceeded'],
                        20), 'with velocity_exceeded and 20';

    my $key = "${P}vel:tok_v3:$day";
    $key = "${P}vel:tok_v3:$day0" unless $r->cmd(EXISTS => $key);
    is $r->cmd(GET => $key), '4', 'counter of the day = 4';
    my $ttl = $r->cmd(TTL => $key);
    ok $ttl > 86000 && $ttl <= 86400, 'TTL <= WINDOW (1d)' or diag $ttl;
    is settled_get("${P}v:vv4"),
       record(txn(id => 'vv4', card_token => 'tok_v3'), 0x100, 20),
       'record: velocity_exceeded = 100, score 20';
}

{
    my $id = join '', ('aZ09.:_-') x 8;                  # 64 characters
    my $tok = join '', ('tok:.-_9') x 16;                # 128 characters
    my $t = txn(id => $id, card_token => $tok);
    is length($id) . '/' . length($tok), '64/128', 'longest id and token';

    is outcome(post($A, '/t', $t)), '200 computed', 'longest id and token';
    is settled_get("${P}v:$id"), record($t, 0, 0), 'verdict key exact';
    my @vel = grep { /^\Q${P}vel:$tok:\E\d+$/ } @{ keys_sorted() };
    is scalar(@vel), 1, 'counter key exact';
}

# --- 2. across hosts: B shares Redis with A, not shm

$B->start(http => http_config($B->port, '2m'));

{
    my $t = txn(id => 'tx.a-b_c:1', card_token => 'tok:x.y-z_1');
    my ($vel) = grep { /vel:tok:x\.y-z_1:/ } @{ keys_sorted() };

    my $res = post($B, '/t', $t);
    is outcome($res), '200 redis', 'host B: the verdict A gave, from Redis';
    is $res->{body}, v('tx.a-b_c:1', 'redis'), 'same body but the source';
    is outcome(post($B, '/t', $t)), '200 shm', 'then from B\'s shm';
    is outcome(post($A, '/t', $t)), '200 shm', 'A: from its shm';
    is $r->cmd(GET => $vel), '1', 'replays counted nothing';

    is outcome(post($B, '/t', txn(id => 'b1'))), '200 computed', 'B computes';
    my $ttl = settled_ttl("${P}v:b1");
    ok $ttl > 110 && $ttl <= 120, 'B\'s record TTL is B\'s zone ttl (2m)'
        or diag "TTL $ttl";
    is outcome(post($A, '/t', txn(id => 'b1'))), '200 redis', 'A: redis';

    is outcome(post($A, '/t', txn(id => 'x1'))), '200 computed', 'A: x1';
    # (A's verdict went out to Redis before A's answer, on the connection
    # its lookup used: B, asked right after it, finds the verdict, not
    # A's mark)
    my $res2 = post($B, '/t', txn(id => 'x1', amount => 2000));
    is outcome($res2), '409 idempotency_conflict',
       'B: x1 with another amount is a conflict found in Redis';
    is $res2->{body}, qq({"error":"idempotency_conflict","id":"x1","detail":)
        . qq("this id was already used for a transaction with different )
        . qq(content"}\n), '409 body';
    is outcome(post($B, '/t', txn(id => 'x1', country => 'DE'))),
       '409 idempotency_conflict', 'B: x1 with a country added: conflict';
    is outcome(post($B, '/t', txn(id => 'x1'))), '200 redis',
       'B: x1 as it was: redis';

    # velocity counted across hosts
    my @o = map { outcome($_) } (
        post($A, '/vel3', txn(id => 'h1', card_token => 'tok_h')),
        post($B, '/vel3', txn(id => 'h2', card_token => 'tok_h')),
        post($A, '/vel3', txn(id => 'h3', card_token => 'tok_h')),
        post($B, '/vel3', txn(id => 'h4', card_token => 'tok_h')));
    is_deeply \@o, [ '200 computed', '200 computed', '200 computed',
                     '402 computed' ],
              'one card, two hosts: one counter, the 4th declined';

    # A stopped and started: empty shm, Redis still knows
    $A->stop;
    $A->start(http => http_config($A->port, '5m'));
    is outcome(post($A, '/t', $t)), '200 redis', 'A restarted: from Redis';
    is outcome(post($A, '/t', $t)), '200 shm', 'and then shm';
}

# --- 2b. the verdict is in Redis before its answer leaves the host: a
# client that has the answer and asks another host at once gets it
# replayed, never "409 idempotency_in_progress" for A's mark

{
    my @o = map {
        my $t = txn(id => "now$_", card_token => "tok_now$_");
        [ outcome(post($A, '/t', $t)), outcome(post($B, '/t', $t)) ]
    } 1 .. 50;
    is_deeply \@o, [ map { [ '200 computed', '200 redis' ] } 1 .. 50 ],
              'A computes, B asked right after the answer: 50 times the'
              . ' verdict from Redis';

    # the order itself, in a debug log: the verdict's write (SET XX over
    # its own young mark, "sent") comes before the answer's last write to
    # the client
    my $D = Txval::Nginx->new(name => 'r210d', port => 1998);
    $D->start(main => 'error_log logs/debug.log debug;',
              http => http_config($D->port, '5m'));
    is outcome(post($D, '/t', txn(id => 'order1', card_token => 'tok_o1'))),
       '200 computed',
       'debug host: computed';
    $D->stop;
    open my $fh, '<', $D->root . '/logs/debug.log' or die "debug.log: $!\n";
    my $log = do { local $/; <$fh> };
    close $fh;
    my @lines = grep { /txval: redis \S+ sent [1-9]\d* bytes|http write filter: l:1/ }
                split /\n/, $log;
    my @order = map { /sent/ ? 'redis' : 'answer' } @lines;
    is "@order", 'redis redis redis answer',
       'debug host: the mark\'s SET NX GET, the velocity count, the'
       . ' verdict\'s SET XX, then the answer';
}

# --- 3. corrupt records are a miss (recomputed, rewritten), never a crash

{
    my $log0 = -s $A->error_log_path;

    my $n = 0;
    my @corrupt = (
        [ 'garbage' ],
        [ '' ],
        [ '2;0;0;', 'fp31' ],
        [ '2;0;0;', 'fp', '0' ],                             # 33 digits
        [ '3;0;0;', 'fp' ],                                  # version 3
        [ '2;0;101;', 'fp' ],                                # score > 100
        [ '2;400;0;', 'fp' ],                                # unknown reason
        [ '2;00001;0;', 'fp' ],                              # 5 hex digits
        [ '2;;0;', 'fp' ],
        [ '2;0;;', 'fp' ],
        [ '2;0;0;', 'FP' ],                                  # upper case
        [ '2;0;0;', 'fp', "\n" ],
        [ "2;0\0;0;", 'fp' ],
        [ '2;g;0;', 'fp' ],
        [ '2;0;-1;', 'fp' ],
        [ '2;0;0', ],
        [ 'p;', 'fp31' ],                                    # a short mark
    );

    for my $c (@corrupt) {
        my $id = 'bad' . ++$n;
        my $t = txn(id => $id);
        my $fp = fingerprint(%$t);
        my $value = join '', map {
            $_ eq 'fp' ? $fp : $_ eq 'fp31' ? substr($fp, 0, 31)
          : $_ eq 'FP' ? uc $fp : $_
        } @$c;

        $r->cmd(SET => "${P}v:$id", $value);
        my $res = post($A, '/t', $t);
        (my $shown = $value) =~ s/([^ -~])/sprintf '\\x%02x', ord $1/ge;
        is outcome($res), '200 computed', "corrupt \"$shown\": recomputed";
        is settled_get("${P}v:$id", record($t, 0, 0)), record($t, 0, 0),
           '... and rewritten';
    }

    my $log = $A->error_log_since($log0);
    is count_in(qr/txval: redis holds a corrupt verdict for this id, recomputing/,
                $log), scalar(@corrupt), 'one warn line per corrupt record';
    like $log, qr/\[warn\].*corrupt verdict/, 'at level warn';

    # a value too long to be seen whole: recomputed, left alone
    $r->cmd(SET => "${P}v:long1", 'x' x 200);
    is outcome(post($A, '/t', txn(id => 'long1'))), '200 computed',
       'a corrupt value of 200 bytes: recomputed';
    sleep 0.1;
    is $r->cmd(GET => "${P}v:long1"), 'x' x 200,
       '... and not replaced: a request replaces only what it saw whole';

    # a record of the older format (a 64-bit fingerprint, no longer
    # trusted): a miss, never a match, without a log line; replaced
    my $log1 = -s $A->error_log_path;
    my $old = txn(id => 'old1');
    $r->cmd(SET => "${P}v:old1", '1;300;90;0123456789abcdef');
    is outcome(post($A, '/t', $old)), '200 computed',
       'an older record (declined there) is a miss: recomputed, approved';
    is settled_get("${P}v:old1", record($old, 0, 0)), record($old, 0, 0),
       '... and replaced by a record of this format';
    unlike $A->error_log_since($log1), qr/corrupt/,
           '... without a warn line';

    # a key of another type: an error reply, a miss
    $r->cmd(RPUSH => "${P}v:list1", 'x');
    is outcome(post($A, '/t', txn(id => 'list1'))), '200 computed',
       'a list at the key: recomputed';
    is settled_get("${P}v:list1", record(txn(id => 'list1'), 0, 0)),
       record(txn(id => 'list1'), 0, 0),
       '... and replaced by the record';

    # a well-formed record with another fingerprint: a conflict
    my $other = '2;0;0;0123456789abcdef0123456789abcdef';
    $r->cmd(SET => "${P}v:f1", $other);
    is outcome(post($A, '/t', txn(id => 'f1'))), '409 idempotency_conflict',
       'record with another fingerprint: 409';
    sleep 0.1;
    is $r->cmd(GET => "${P}v:f1"), $other,
       '... and the record is left alone';

    # a record written by someone else, with the right fingerprint: used
    my $t = txn(id => 'f2');
    $r->cmd(SET => "${P}v:f2", record($t, 0x300, 90));
    my $res = post($A, '/t', $t);
    is outcome($res), '402 redis', 'a record with the right fingerprint';
    is $res->{body}, v('f2', 'redis', 'declined',
                       ['velocity_exceeded', 'risk_too_high'], 90),
       'its reasons and score, as stored';
    is outcome(post($A, '/t', $t)), '402 shm', 'then stored in shm';

    $log = $A->error_log_since($log0);
    unlike $log, qr/\[(alert|crit|emerg)\]|exited on signal/,
           'no alert, no crash';
}

# --- 4. binary safety: nothing from the body becomes protocol text

{
    $r->cmd(SET => "${P}sentinel", 'still here');
    my $mon = Txval::Redis->monitor(port => $rport);

    my $inject = '\r\n*1\r\n$8\r\nFLUSHALL\r\n';             # JSON escapes
    my $ok = qq({"id":"inj1","amount":1000,"currency":"EUR",)
           . qq("merchant_id":"m_1","card_token":"tok_inj",)
           . qq("note":"x$inject","$inject":"y","z":{"a":["$inject"]}});

    my $w0 = int(time / 60);
    my $res = $A->post('/t', $ok);
    my $w1 = int(time / 60);
    is outcome($res), '200 computed', 'protocol text in unknown fields: fine';

    my @bad = (
        qq({"id":"inj2$inject","amount":1000,"currency":"EUR",)
          . qq("merchant_id":"m_1","card_token":"tok_inj"}),
        qq({"id":"inj3\\u000d\\u000aFLUSHALL","amount":1000,)
          . qq("currency":"EUR","merchant_id":"m_1","card_token":"tok_inj"}),
        qq({"id":"inj4","amount":1000,"currency":"EUR","merchant_id":"m_1",)
          . qq("card_token":"tok$inject"}),
        qq({"id":"inj5 FLUSHALL","amount":1000,"currency":"EUR",)
          . qq("merchant_id":"m_1","card_token":"tok_inj"}),
        qq({"id":"inj6","amount":1000,"currency":"EUR","merchant_id":"m_1",)
          . qq("card_token":"tok*1"}),
    );

    for my $body (@bad) {
        my $res = $A->post('/t', $body);
        is outcome($res), '400 invalid_field', 'an id or token with CR LF, '
           . 'space or * is refused';
    }

    my @cmds = map { $_->{args} } grep { !$_->{lua} } $mon->commands(0.3);
    my ($vel) = map { $_->[1] } grep { $_->[0] eq 'INCR' } @cmds;
    $vel //= '';
    ok $vel eq "${P}vel:tok_inj:$w0" || $vel eq "${P}vel:tok_inj:$w1",
       'counter key' or diag $vel;

    my $rec = record(txn(id => 'inj1', card_token => 'tok_inj'), 0, 0);
    my @seen = map { [ @$_ ] } @cmds;
    # the mark's token and the store script are checked in section 5
    $seen[0][2] = '<mark>' if @seen && $seen[0][0] eq 'SET';

    is_deeply \@seen, [ [ 'SET', "${P}v:inj1", '<mark>', 'NX', 'GET',
                          'PX', '5000' ],
                        [ 'INCR', $vel ], [ 'EXPIRE', $vel, '60' ],
                        [ 'SET', "${P}v:inj1", $rec, 'XX', 'EX', '300' ] ],
              'Redis saw exactly SET NX GET (the mark), INCR, EXPIRE, SET '
              . 'XX (the verdict over the mark) for the valid one, nothing '
              . 'for the refused ones'
        or diag explain $mon->{raw};

    is $r->cmd(GET => "${P}sentinel"), 'still here', 'nothing was flushed';
    ok !grep({ /FLUSHALL/i } @{ $mon->{raw} // [] }),
       'FLUSHALL never reached Redis';
}

$A->stop;
$B->stop;

for my $ng ($A, $B) {
    unlike $ng->error_log, qr/\[(alert|crit|emerg)\]|exited on signal/,
           "$ng->{name}: no alert, no crash";
}

done_testing;
