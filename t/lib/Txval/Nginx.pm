package Txval::Nginx;

# A tiny nginx driver for the tests that Test::Nginx's blocks cannot
# express: reloads (HUP) between requests, and per-response worker pids.
#
#   my $ng = Txval::Nginx->new(name => 'reload', port => 1990);
#   $ng->start(http => $http_block, workers => 2);
#   my $res = $ng->post('/t', $json);     # {status, headers, body, raw}
#   my $q = $ng->post_async('/t', $json); # sent; other requests meanwhile
#   $res = $ng->read_async($q);           # its answer (and elapsed)
#   $ng->reload(http => $other) or ...;   # 1: new workers answer,
#                                         # 0: the master refused it
#   my $m = $ng->metrics;                 # GET /metrics, parsed
#   $ng->metric('txval_up');              # one series' value
#   $ng->stop;
#
#   use Txval::Nginx qw(need_services closed_port values_of);
#   need_services(Postgres => 16432, Redis => 16390);  # or BAIL_OUT
#   my $port = closed_port();             # nothing listens there
#
# nginx runs in the foreground (daemon off) as our child, in its own
# server root t/servroot_<name>; the environment is inherited (so an
# ASan wrapper in TEST_NGINX_BINARY just works).
#
#   TEST_NGINX_BINARY        nginx (default /usr/sbin/nginx)
#   TEST_NGINX_TXVAL_MODULE  the module (default build/ngx_http_txval_module.so)
#
# Under make valgrind (TEST_NGINX_USE_VALGRIND), an instance made with
# valgrind => 1 runs under memcheck, master and workers (a log per process
# in logs/valgrind.<pid>.log); after stop, $ng->valgrind_report is what
# memcheck found (errors, definite and indirect leaks), '' when clean:
#
#   my $ng = Txval::Nginx->new(name => 'x', port => 1990, valgrind => 1);
#   ...
#   $ng->stop;
#   $ng->valgrind_ok;       # is $ng->valgrind_report, '' (under valgrind)
#
# Suppressed: TEST_NGINX_VALGRIND_SUPPRESS (t/valgrind.supp), and stock
# nginx's own worker start-up allocations, which it never frees (stacks
# from ngx_alloc through frames of the nginx binary only, up to
# ngx_spawn_process and ngx_master_process_cycle: a frame in the module
# keeps a leak visible).

use strict;
use warnings;

use Cwd qw(abs_path);
use Exporter qw(import);
use File::Basename qw(dirname);
use File::Path qw(make_path remove_tree);
use IO::Socket::INET;
use POSIX qw(WNOHANG);
use Test::More ();
use Time::HiRes qw(sleep time);

our @EXPORT_OK = qw(values_of need_services closed_port);

my $repo = abs_path(dirname(__FILE__) . '/../../..');

my %running;    # pid => 1, so that an early death still stops nginx

END {
    my $status = $?;
    for my $pid (keys %running) {
        kill 'TERM', $pid;
        waitpid $pid, 0;
    }
    $? = $status;
}


# the suite's services answer on 127.0.0.1 (make test starts them), or
# the test bails out

sub need_services {
    my (@services) = @_;

    while (my ($what, $port) = splice @services, 0, 2) {
        IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port,
                              Proto => 'tcp', Timeout => 2)
            or Test::More::BAIL_OUT("no $what on 127.0.0.1:$port (make test"
                                    . " starts it; by hand: see the top of"
                                    . " $0)");
    }
}


# a port on 127.0.0.1 that nothing listens on (it was free a moment ago)

sub closed_port {
    my $s = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0,
                                  Proto => 'tcp', Listen => 1)
        or die "no free port: $!\n";
    my $port = $s->sockport;
    close $s;
    return $port;
}


sub new {
    my ($class, %args) = @_;

    my $self = bless {
        name    => $args{name} // 'nginx',
        port    => $args{port} // 1990,
        binary  => $ENV{TEST_NGINX_BINARY} // '/usr/sbin/nginx',
        module  => $ENV{TEST_NGINX_TXVAL_MODULE}
                   // "$repo/build/ngx_http_txval_module.so",
        timeout => $args{timeout} // 10,
        valgrind => ($args{valgrind} && $ENV{TEST_NGINX_USE_VALGRIND}) ? 1 : 0,
    }, $class;

    # memcheck starts and stops nginx far more slowly
    $self->{timeout} = 60 if $self->{valgrind} && !defined $args{timeout};

    $self->{root} = "$repo/t/servroot_$self->{name}";

    return $self;
}


sub port     { $_[0]{port} }
sub valgrind { $_[0]{valgrind} }
sub root   { $_[0]{root} }
sub master { $_[0]{pid} }


# the whole nginx.conf; http => the inside of http {} (server blocks
# included), main => extra main-context lines, workers => N

sub write_config {
    my ($self, %args) = @_;

    my $workers = $args{workers} // 1;
    my $main = $args{main} // '';
    my $http = $args{http} // die "write_config: no http config\n";
    my $user = $> == 0 ? "user root;\n" : '';
    my $root = $self->{root};

    my $conf = <<"CONF";
load_module $self->{module};
${user}daemon off;
master_process on;
worker_processes $workers;
pid logs/nginx.pid;
error_log logs/error.log info;
$main
events {
    worker_connections 256;
}

http {
    access_log off;
    client_body_temp_path $root/client_body_temp;
    proxy_temp_path $root/proxy_temp;
    fastcgi_temp_path $root/fastcgi_temp;
    uwsgi_temp_path $root/uwsgi_temp;
    scgi_temp_path $root/scgi_temp;

$http
}
CONF

    open my $fh, '>', "$root/conf/nginx.conf"
        or die "cannot write $root/conf/nginx.conf: $!\n";
    print $fh $conf;
    close $fh;

    $self->{conf} = $conf;
}


sub start {
    my ($self, %args) = @_;

    die "nginx $self->{name} is already running\n" if $self->{pid};

    my $root = $self->{root};

    if ($args{clean} // 1) {
        remove_tree($root);
    }

    make_path("$root/conf", "$root/logs", "$root/html");

    $self->write_config(%args) if defined $args{http};

    my $log_offset = -s "$root/logs/error.log" // 0;

    my @cmd = ($self->{binary}, '-p', "$root/", '-c', 'conf/nginx.conf',
               '-e', 'logs/error.log');

    unshift @cmd, $self->valgrind_cmd if $self->{valgrind};

    my $pid = fork // die "fork: $!\n";

    if ($pid == 0) {
        exec @cmd
            or do { warn "exec $cmd[0]: $!\n"; POSIX::_exit(127) };
    }

    $self->{pid} = $pid;
    $running{$pid} = 1;

    # up when it answers on the port

    my $deadline = time + $self->{timeout};

    while (time < $deadline) {
        if (waitpid($pid, WNOHANG) == $pid) {
            delete $running{$pid};
            delete $self->{pid};
            die "nginx $self->{name} exited at start (status $?):\n"
                . $self->error_log_since($log_offset);
        }

        my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                      PeerPort => $self->{port},
                                      Proto => 'tcp');
        if ($s) {
            close $s;
            $self->wait_workers($args{workers} // 1, []);
            return $pid;
        }

        sleep 0.02;
    }

    die "nginx $self->{name} did not listen on $self->{port}\n";
}


# graceful stop (QUIT, then TERM): returns once the master and all its
# workers are gone, so the shared memory is gone too

sub stop {
    my ($self) = @_;

    my $pid = $self->{pid} or return;

    kill 'QUIT', $pid;

    my $deadline = time + $self->{timeout};
    my $sent_term = 0;

    for (;;) {
        last if waitpid($pid, WNOHANG) == $pid;

        if (time > $deadline) {
            kill($sent_term++ ? 'KILL' : 'TERM', $pid);
            $deadline = time + 5;
        }

        sleep 0.02;
    }

    delete $running{$pid};
    delete $self->{pid};

    return 1;
}


# memcheck's command line (valgrind => 1 under TEST_NGINX_USE_VALGRIND)

sub valgrind_cmd {
    my ($self) = @_;

    my $root = $self->{root};
    my $bin = abs_path($self->{binary}) // $self->{binary};
    my $supp = "$root/nginx-core.supp";

    # stock nginx's worker start-up allocations: ngx_alloc (or
    # ngx_memalign), then only frames of the nginx binary (some without a
    # symbol), up to ngx_spawn_process; from ngx_start_worker_processes,
    # or straight from the master's cycle (a worker respawned after one
    # died: ngx_reap_children is inlined there)
    open my $fh, '>', $supp or die "$supp: $!\n";
    my $n = 0;
    for my $alloc ([ 'malloc', 'ngx_alloc' ],
                   [ 'malloc', 'ngx_alloc', 'ngx_calloc' ],
                   [ 'posix_memalign', 'ngx_memalign' ])
    {
        for my $named ('', 'ngx_set_environment') {
            for my $k (1 .. 5) {
                for my $via ("   obj:$bin\n", '') {
                    $n++;
                    print $fh "{\n   txval-nginx-worker-init-$n\n"
                        . "   Memcheck:Leak\n"
                        . "   match-leak-kinds: definite,indirect\n"
                        . join('', map { "   fun:$_\n" } @$alloc)
                        . ($named ? "   fun:$named\n" : '')
                        . "   obj:$bin\n" x $k
                        . "   fun:ngx_spawn_process\n$via"
                        . "   fun:ngx_master_process_cycle\n   fun:main\n}\n";
                }
            }
        }
    }
    close $fh;

    my @supp = ($supp, grep { length }
                       split /[:\s]+/, $ENV{TEST_NGINX_VALGRIND_SUPPRESS} // '');

    return ('valgrind', '-q', '--tool=memcheck', '--leak-check=full',
            '--show-leak-kinds=definite,indirect',
            '--errors-for-leak-kinds=definite,indirect',
            '--num-callers=50', "--log-file=$root/logs/valgrind.%p.log",
            map { "--suppressions=$_" } @supp);
}


# what memcheck reported, all processes together ('' when clean, or when
# not under valgrind); read it after stop (valgrind_ok tests it)

sub valgrind_report {
    my ($self) = @_;

    my $text = '';

    for my $file (sort glob "$self->{root}/logs/valgrind.*.log") {
        open my $fh, '<', $file or next;
        local $/;
        my $t = <$fh> // '';
        close $fh;
        $text .= "$file:\n$t" if $t =~ /\S/;
    }

    return $text;
}


# the checks a test makes of an instance (Test::More's): memcheck found
# nothing (under valgrind, after stop; "<label>: valgrind: clean", the
# server root unless told otherwise), and no worker crashed and nothing
# was logged at [alert] so far

sub valgrind_ok {
    my ($self, $label) = @_;
    return 1 unless $self->{valgrind};
    return Test::More::is($self->valgrind_report, '',
                          ($label // $self->{root}) . ': valgrind: clean');
}


# stop, then (under valgrind) its report checked: the end of a block

sub stop_checked {
    my ($self, $label) = @_;
    $self->stop;
    return $self->valgrind_ok($label);
}


sub no_crash {
    my ($self, $what) = @_;
    return Test::More::unlike($self->error_log, qr/exited on signal|\[alert\]/,
                              "$what: no worker crash, no alert");
}


# stricter, once it is stopped: no [alert], [emerg] or [crit] line, no
# crash, no sanitizer report at all

sub error_log_clean {
    my ($self, $name) = @_;
    return Test::More::is_deeply(
        [ grep { /\[(alert|emerg|crit)\]|exited on signal|Sanitizer/ }
          split /\n/, $self->error_log ],
        [], "$name: no alert, crit or crash in error.log");
}


# the master's children (the workers), from /proc

sub workers {
    my ($self) = @_;

    my $master = $self->{pid} or return ();
    my @pids;

    for my $stat (glob '/proc/[0-9]*/stat') {
        open my $fh, '<', $stat or next;
        my $line = <$fh>;
        close $fh;
        next unless defined $line;

        # pid (comm) state ppid ...
        next unless $line =~ /^(\d+) \(.*\) \S+ (\d+)/s;
        push @pids, $1 if $2 == $master;
    }

    return sort { $a <=> $b } @pids;
}


# waits until the master has n workers, none of them in @$old

sub wait_workers {
    my ($self, $n, $old) = @_;

    my %old = map { $_ => 1 } @$old;
    my $deadline = time + $self->{timeout};

    while (time < $deadline) {
        my @w = $self->workers;
        return @w if @w >= $n && !grep { $old{$_} } @w;
        sleep 0.02;
    }

    die "nginx $self->{name}: workers did not come up\n";
}


# HUP with a new (or the same) config. Returns 1 once only new workers
# run and they answer; 0 when the master refused the new config (an
# [emerg] in the error log, the old workers still running).

sub reload {
    my ($self, %args) = @_;

    my $pid = $self->{pid} or die "nginx $self->{name} is not running\n";

    $self->write_config(%args) if defined $args{http};

    my @old = $self->workers;
    my $offset = -s $self->error_log_path // 0;

    kill 'HUP', $pid;

    my $deadline = time + $self->{timeout};

    while (time < $deadline) {
        my $log = $self->error_log_since($offset);

        if ($log =~ /\[emerg\]/) {
            # give the master time to finish its refusal
            sleep 0.1;
            return 0;
        }

        my %old = map { $_ => 1 } @old;
        my @w = $self->workers;

        if (@w && !grep { $old{$_} } @w) {
            my $res = eval { $self->request(GET => '/') };
            return 1 if $res && $res->{status};
        }

        sleep 0.02;
    }

    die "nginx $self->{name}: reload did not finish\n";
}


sub error_log_path { "$_[0]{root}/logs/error.log" }


sub error_log {
    my ($self) = @_;
    return $self->error_log_since(0);
}


sub error_log_since {
    my ($self, $offset) = @_;

    open my $fh, '<', $self->error_log_path or return '';
    seek $fh, $offset, 0;
    local $/;
    my $text = <$fh> // '';
    close $fh;

    return $text;
}


# one request on a new connection (Connection: close)

sub request {
    my ($self, $method, $uri, $body, %headers) = @_;

    my $s = $self->_connect;

    $s->print(request_bytes($method, $uri, $body, %headers))
        or die "send: $!\n";

    local $SIG{ALRM} = sub { die "read timeout\n" };
    alarm $self->{timeout};

    my $raw = _read_all($s);

    alarm 0;

    return parse_response($raw);
}


# several POSTs at once: all connections opened and all requests sent
# before any answer is read, so that they are in flight together (and,
# with several workers and reuseport, spread over the workers)

sub post_parallel {
    my ($self, $uri, @bodies) = @_;

    my @socks = map { $self->_connect } @bodies;

    for my $i (0 .. $#bodies) {
        $socks[$i]->print(request_bytes(POST => $uri, $bodies[$i],
                                        'Content-Type' => 'application/json'))
            or die "send: $!\n";
    }

    local $SIG{ALRM} = sub { die "read timeout\n" };
    alarm $self->{timeout};

    my @res = map { parse_response(_read_all($_)) } @socks;

    alarm 0;

    return @res;
}


# a POST sent now, its answer read later by read_async (other requests
# meanwhile): { sock, t0 }

sub post_async {
    my ($self, $uri, $json, %headers) = @_;

    my $s = $self->_connect;

    $s->print(request_bytes(POST => $uri, $json,
                            'Content-Type' => 'application/json', %headers))
        or die "send: $!\n";

    return { sock => $s, t0 => time };
}


# the answer to post_async, as request() gives it, and elapsed (seconds
# since it was sent); status 0 and body "no response" when none came

sub read_async {
    my ($self, $q) = @_;

    local $SIG{ALRM} = sub { die "read timeout\n" };
    alarm $self->{timeout};

    my $raw = '';
    while (sysread $q->{sock}, my $buf, 65536) { $raw .= $buf }

    alarm 0;
    close $q->{sock};

    my $res = eval { parse_response($raw) }
              // { status => 0, headers => {}, body => 'no response',
                   raw => $raw };
    $res->{elapsed} = time - $q->{t0};

    return $res;
}


sub _connect {
    my ($self) = @_;

    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                  PeerPort => $self->{port},
                                  Proto => 'tcp',
                                  Timeout => $self->{timeout})
        or die "connect to $self->{port}: $!\n";

    return $s;
}


# everything a socket gives until the peer closes; then it is closed

sub _read_all {
    my ($s) = @_;

    my $raw = '';

    while (1) {
        my $n = sysread $s, my $buf, 65536;
        die "read: $!\n" unless defined $n;
        last if $n == 0;
        $raw .= $buf;
    }

    close $s;

    return $raw;
}


# the bytes of a request (HTTP/1.1, Connection: close, the headers
# sorted, Content-Length when there is a body)

sub request_bytes {
    my ($method, $uri, $body, %headers) = @_;

    my $req = "$method $uri HTTP/1.1\r\nHost: localhost\r\n"
              . "Connection: close\r\n";

    for my $h (sort keys %headers) {
        $req .= "$h: $headers{$h}\r\n";
    }

    if (defined $body) {
        $req .= "Content-Length: " . length($body) . "\r\n";
    }

    return $req . "\r\n" . ($body // '');
}


sub post {
    my ($self, $uri, $json, %headers) = @_;
    return $self->request(POST => $uri, $json,
                          'Content-Type' => 'application/json', %headers);
}


sub parse_response {
    my ($raw) = @_;

    my ($head, $body) = split /\r\n\r\n/, $raw, 2;
    die "no response\n" unless defined $head && length $head;

    my ($status_line, @lines) = split /\r\n/, $head;
    my ($status) = $status_line =~ m{^HTTP/\d\.\d (\d{3})}
        or die "bad status line: $status_line\n";

    my %h;
    for (@lines) {
        my ($k, $v) = /^([^:]+):\s*(.*)$/ or next;
        $h{lc $k} = $v;
    }

    $body //= '';

    if (($h{'transfer-encoding'} // '') =~ /chunked/i) {
        my $out = '';
        while ($body =~ s/^([0-9a-fA-F]+)[^\r]*\r\n//) {
            my $len = hex $1;
            last if $len == 0;
            $out .= substr $body, 0, $len, '';
            $body =~ s/^\r\n//;
        }
        $body = $out;
    }

    return { status => $status, headers => \%h, body => $body, raw => $raw };
}


# GET the metrics location (default /metrics) and parse it:
#   { status, headers, body, raw,       as request() gives them
#     values => { 'txval_requests_total{verdict="approved"}' => 3, ... },
#     series => [ the series names in the order written ],
#     types  => { txval_requests_total => 'counter', ... },
#     help   => { txval_requests_total => '...', ... },
#     errors => [ lines that are not Prometheus text format 0.0.4 ] }

sub metrics {
    my ($self, $uri) = @_;

    my $res = $self->request(GET => $uri // '/metrics');

    return { %$res, %{ parse_metrics($res->{body}) } };
}


# one series' value from GET /metrics (undef when it is not there)

sub metric {
    my ($self, $series) = @_;
    return $self->metrics->{values}{$series};
}


# the values of these series in a metrics() answer, as numbers (undef for
# one that is not there)

sub values_of {
    my ($m, @series) = @_;
    return { map { $_ => (defined $m->{values}{$_} ? $m->{values}{$_} + 0
                                                   : undef) } @series };
}


sub parse_metrics {
    my ($text) = @_;

    my (%values, @series, %types, %help, @errors);

    my $name = qr/[a-zA-Z_:][a-zA-Z0-9_:]*/;
    my $label = qr/[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\.)*"/;
    my $number = qr/[-+]?(?:[0-9]+(?:\.[0-9]*)?(?:[eE][-+]?[0-9]+)?|Inf|NaN)/;

    for my $line (split /\n/, $text // '') {
        if ($line =~ /^# HELP ($name) (.*)$/) {
            push @errors, "second HELP: $line" if exists $help{$1};
            $help{$1} = $2;

        } elsif ($line =~ /^# TYPE ($name) (counter|gauge|histogram|summary|untyped)$/) {
            push @errors, "second TYPE: $line" if exists $types{$1};
            $types{$1} = $2;

        } elsif ($line =~ /^#/) {
            push @errors, "bad comment: $line" if $line =~ /^# (HELP|TYPE)/;

        } elsif ($line =~ /^($name(?:\{$label(?:,$label)*\})?) ($number)(?: -?[0-9]+)?$/) {
            push @errors, "duplicate series: $1" if exists $values{$1};
            push @series, $1;
            $values{$1} = $2;

        } else {
            push @errors, "bad line: $line";
        }
    }

    return { values => \%values, series => \@series, types => \%types,
             help => \%help, errors => \@errors };
}


1;
