package Test::Txval::Socket;

# A small runner for test files written in Test::Nginx::Socket's block
# format, built on Test::Base + core Perl only.  See the POD at the end.
#
# NOTE: this file is processed by Spiffy's source filter (because of
# "use Test::Base -Base"): every top-level "sub name {" without a prototype
# would get "my $self = shift;" injected.  All named subs therefore carry a
# prototype; "sub name () {" has its empty prototype removed by the filter.

use Test::Base -Base;

our $VERSION = '0.01';

use POSIX ();
use Errno ();
use Time::HiRes qw(sleep time);
use IO::Socket::INET ();
use IO::Select ();
use File::Spec ();
use File::Path ();
use Cwd ();
use Digest::MD5 ();
use Digest::SHA ();

sub gen_rand_port ($$);
sub value_contains ($$);
sub bail_out (@);
sub send_request ($$$$;$);

our @EXPORT = qw(
    run_tests run_test
    repeat_each workers worker_connections
    master_on master_off master_process_enabled
    log_level no_shuffle no_long_string no_root_location
    env_to_nginx config_preamble
    add_block_preprocessor add_cleanup_handler add_response_body_check
    server_name server_addr server_root html_dir
    server_port server_port_for_client
    timeout use_hup check_accum_error_log
    bail_out is_str
);

# ---------------------------------------------------------------------------
# settings (same environment variables and defaults as Test::Nginx::Util)
# ---------------------------------------------------------------------------

our $Verbose              = $ENV{TEST_NGINX_VERBOSE};
our $NginxBinary          = $ENV{TEST_NGINX_BINARY} || 'nginx';
our $Workers              = 1;
our $WorkerConnections    = 64;
our $LogLevel             = $ENV{TEST_NGINX_LOG_LEVEL} || 'debug';
our $MasterProcessEnabled = $ENV{TEST_NGINX_MASTER_PROCESS} || 'off';
our $DaemonEnabled        = 'on';
our $RepeatEach           = 1;
our $NoLongString;
our $NoRootLocation       = 0;
our $ConfigPreamble       = '';
our $ServerName           = 'localhost';
our $ServerAddr           = '127.0.0.1';
our $Timeout              = $ENV{TEST_NGINX_TIMEOUT} || 3;
our $TestNginxSleep       = $ENV{TEST_NGINX_SLEEP} || 0.015;
our $UseHup               = $ENV{TEST_NGINX_USE_HUP};
our $UseValgrind          = $ENV{TEST_NGINX_USE_VALGRIND};
our $CheckAccumErrLog     = $ENV{TEST_NGINX_CHECK_ACCUM_ERR_LOG};
our $Randomize            = $ENV{TEST_NGINX_RANDOMIZE};
our $LoadModules          = $ENV{TEST_NGINX_LOAD_MODULES};
our $PostponeOutput       = $ENV{TEST_NGINX_POSTPONE_OUTPUT};
our $EventType            = $ENV{TEST_NGINX_EVENT_TYPE};
our $ReusePort            = $ENV{TEST_NGINX_REUSE_PORT};
our $WorkerUser           = $ENV{TEST_NGINX_WORKER_USER};
our $NoClean              = $ENV{TEST_NGINX_NO_CLEAN};

our (@EnvToNginx, @BlockPreprocessors, @CleanupHandlers, @ResponseBodyChecks);

our $ServerPort = $ENV{TEST_NGINX_SERVER_PORT} || $ENV{TEST_NGINX_PORT} || 1984;
our $ServerPortForClient = $ENV{TEST_NGINX_CLIENT_PORT} || $ServerPort;

our $MainPid = $$;

our ($NginxVersion, $NginxRawVersion);

# runtime state
our $NginxPid;          # pid of the running nginx (master or single process)
our $ChildPid;          # set when nginx is our direct child (valgrind mode)
our $ErrLogFilePos = 0; # error.log offset for error_log/no_error_log checks
our $BlockLogStart = 0; # error.log offset where the current block began
our $PrevConfBlock;     # block whose config was used last (config-less blocks)
our $ConfigVersion = '';
our $CurrentUseHup;
our $CurrentValgrind;
our $InSubprocess;
our $ChildStatus;

if ($UseValgrind) {
    $DaemonEnabled = 'off';
    if ($UseHup) {
        warn "WARNING: TEST_NGINX_USE_VALGRIND and TEST_NGINX_USE_HUP are "
             . "both set; HUP reload mode is disabled under valgrind.\n";
        undef $UseHup;
    }
}

if (defined $WorkerUser && $WorkerUser !~ /^\w+(?:\s+\w+)?$/) {
    die "Bad value in the env TEST_NGINX_WORKER_USER: $WorkerUser\n";
}

srand($$ ^ int(time * 1000));

if ($Randomize) {
    $ServerPort = gen_rand_port(1000, {});
    if (!defined $ServerPort) {
        die "Cannot find an available listening port number after 1000 attempts.\n";
    }
    $ServerPortForClient = $ServerPort;
}

our $ServRoot;
if ($Randomize) {
    # next to the configured server root, if any (scripts/test.sh moves
    # it out of a home directory the workers cannot reach)
    $ServRoot = $ENV{TEST_NGINX_SERVROOT}
                ? "$ENV{TEST_NGINX_SERVROOT}_$$"
                : File::Spec->rel2abs("t/servroot_$$");
} else {
    $ServRoot = $ENV{TEST_NGINX_SERVROOT} || File::Spec->rel2abs('t/servroot');
}
$ServRoot =~ s{/+$}{};
$ENV{TEST_NGINX_SERVER_ROOT} = $ServRoot;

our $LogDir     = "$ServRoot/logs";
our $ErrLogFile = "$LogDir/error.log";
our $AccLogFile = "$LogDir/access.log";
our $HtmlDir    = "$ServRoot/html";
our $ConfDir    = "$ServRoot/conf";
our $ConfFile   = "$ConfDir/nginx.conf";
our $PidFile    = "$LogDir/nginx.pid";
our $StderrFile = "$ServRoot/nginx.stderr";
our $ValgrindLog = "$LogDir/valgrind.log";

$ENV{TEST_NGINX_HTML_DIR} = $HtmlDir unless defined $ENV{TEST_NGINX_HTML_DIR};

# ---------------------------------------------------------------------------
# exported configuration functions
# ---------------------------------------------------------------------------

sub repeat_each (@) {
    $RepeatEach = shift if @_;
    return $RepeatEach;
}

sub workers (@) {
    if (@_) { $Workers = shift; return }
    return $Workers;
}

sub worker_connections (@) {
    if (@_) { $WorkerConnections = shift; return }
    return $WorkerConnections;
}

sub master_on () {
    $MasterProcessEnabled = 'on';
}

sub master_off () {
    $MasterProcessEnabled = 'off';
}

sub master_process_enabled (@) {
    if (@_) { $MasterProcessEnabled = shift() ? 'on' : 'off'; return }
    return $MasterProcessEnabled;
}

sub log_level (@) {
    if (@_) { $LogLevel = shift; return }
    return $LogLevel;
}

# Blocks always run in file order with this runner.
sub no_shuffle () {
    return;
}

sub no_long_string () {
    $NoLongString = 1;
}

sub no_root_location () {
    $NoRootLocation = 1;
}

sub use_hup () {
    if ($UseValgrind) {
        warn "WARNING: use_hup() ignored under TEST_NGINX_USE_VALGRIND\n";
        return;
    }
    $UseHup = 1;
}

sub check_accum_error_log () {
    $CheckAccumErrLog = 1;
}

sub config_preamble ($) {
    $ConfigPreamble = shift;
}

sub env_to_nginx (@) {
    die "env_to_nginx: no arguments specified\n" unless @_;
    for my $v (@_) {
        if ($v !~ /^[A-Za-z_]/ || $v =~ /\n/) {
            die "env_to_nginx: bad argument value: $v\n";
        }
        push @EnvToNginx, $v;
    }
}

sub add_block_preprocessor (&) {
    unshift @BlockPreprocessors, shift;
}

sub add_cleanup_handler ($) {
    unshift @CleanupHandlers, shift;
}

sub add_response_body_check ($) {
    push @ResponseBodyChecks, shift;
}

sub server_name (@) {
    if (@_) { $ServerName = shift; return }
    return $ServerName;
}

sub server_addr (@) {
    if (@_) { $ServerAddr = shift; return }
    return $ServerAddr;
}

sub server_root () {
    return $ServRoot;
}

sub html_dir () {
    return $HtmlDir;
}

sub server_port (@) {
    if (@_) { $ServerPort = shift; return }
    return $ServerPort;
}

sub server_port_for_client (@) {
    if (@_) { $ServerPortForClient = shift; return }
    return $ServerPortForClient;
}

sub timeout (@) {
    if (@_) { $Timeout = shift; return }
    return $Timeout;
}

sub bail_out (@) {
    cleanup();
    Test::More::BAIL_OUT(join '', @_);
}

# ---------------------------------------------------------------------------
# string comparison with readable failure output
# ---------------------------------------------------------------------------

sub show_all_chars ($) {
    my $s = shift;
    return 'undef' unless defined $s;
    $s =~ s/\\/\\\\/g;
    $s =~ s/\r/\\r/g;
    $s =~ s/\t/\\t/g;
    $s =~ s/\n/\\n/g;
    $s =~ s/([\x00-\x1f\x7f-\xff])/sprintf('\\x%02x', ord $1)/ge;
    return $s;
}

sub escape_for_diff ($) {
    my $s = shift;
    my @lines = split /(?<=\n)/, $s;
    for (@lines) {
        my $nl = s/\n\z// ? "\n" : '';
        s/\r/\\r/g;
        s/\t/\\t/g;
        s/([\x00-\x08\x0b-\x1f\x7f])/sprintf('\\x%02x', ord $1)/ge;
        $_ .= $nl;
    }
    return join '', @lines;
}

sub is_str ($$;$) {
    my ($got, $expected, $desc) = @_;

    local $Test::Builder::Level = $Test::Builder::Level + 1;

    if (ref $expected && ref $expected eq 'Regexp') {
        return Test::More::like($got, $expected, $desc);
    }

    if (!defined $got || !defined $expected) {
        return Test::More::is($got, $expected, $desc);
    }

    if ($got eq $expected) {
        return Test::More::ok(1, $desc);
    }

    Test::More::ok(0, $desc);

    # locate the first difference
    my $len = length($got) < length($expected) ? length($got) : length($expected);
    my $pos = 0;
    $pos++ while $pos < $len && substr($got, $pos, 1) eq substr($expected, $pos, 1);
    my $before = substr($expected, 0, $pos);
    my $line = 1 + ($before =~ tr/\n//);
    my $col = $pos - (rindex($before, "\n") + 1) + 1;

    my $msg = sprintf "  strings differ at offset %d (line %d, column %d);"
                      . " got %d bytes, expected %d bytes\n",
                      $pos, $line, $col, length $got, length $expected;

    my $multi = ($got =~ /\n./s || $expected =~ /\n./s);
    if ($multi && eval { require Text::Diff; 1 }) {
        my $e = escape_for_diff($expected);
        my $g = escape_for_diff($got);
        $e .= "\n" if $e ne '' && $e !~ /\n\z/;
        $g .= "\n" if $g ne '' && $g !~ /\n\z/;
        my $diff = Text::Diff::diff(\$e, \$g, {
            STYLE => 'Unified',
            FILENAME_A => 'expected',
            FILENAME_B => 'got',
        });
        $msg .= "  (\\r, \\t and control bytes escaped; a missing final"
                . " newline is not shown)\n" . $diff;
    }

    my $start = $pos > 40 ? $pos - 40 : 0;
    my $g = substr($got, $start, 120);
    my $x = substr($expected, $start, 120);
    my $pre = $start ? '...' : '';
    $msg .= "       got: $pre\"" . show_all_chars($g) . "\""
            . (length($got) > $start + 120 ? '...' : '') . "\n";
    $msg .= "  expected: $pre\"" . show_all_chars($x) . "\""
            . (length($expected) > $start + 120 ? '...' : '') . "\n";

    Test::More::diag($msg);
    return 0;
}

# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------

sub gen_rand_port ($$) {
    my ($tries, $used) = @_;
    for (1 .. $tries) {
        my $port = int(rand 63550) + 1985;
        next if $used->{$port};
        my $sock = IO::Socket::INET->new(
            LocalAddr => $ServerAddr,
            LocalPort => $port,
            Proto     => 'tcp',
            Listen    => 1,
        );
        if ($sock) {
            close $sock;
            return $port;
        }
    }
    return undef;
}

sub parse_time ($) {
    my $tm = shift;
    return undef unless defined $tm;
    $tm =~ s/^\s+|\s+$//g;
    if ($tm =~ s/([^_a-zA-Z])ms$/$1/) {
        $tm = $tm / 1000;
    } elsif ($tm =~ s/([^_a-zA-Z])s$/$1/) {
    }
    return $tm;
}

sub trim ($) {
    my $s = shift;
    return undef unless defined $s;
    $s =~ s/^\s+|\s+$//g;
    $s =~ s/\n/ /gs;
    $s =~ s/\s{2,}/ /gs;
    return $s;
}

sub fmt_str ($) {
    my $str = shift;
    chomp $str;
    $str =~ s/"/\\"/g;
    $str =~ s/\r/\\r/g;
    $str =~ s/\n/\\n/g;
    return $str;
}

sub vlog (@) {
    warn "[txval] ", @_, "\n" if $Verbose;
}

sub can_run ($) {
    my $cmd = shift;
    if ($cmd =~ m{/}) {
        return (-f $cmd && -x _) ? $cmd : undef;
    }
    for my $dir (split /:/, $ENV{PATH} || '') {
        next if $dir eq '';
        my $abs = "$dir/$cmd";
        return $abs if -f $abs && -x _;
    }
    return undef;
}

sub get_nginx_version () {
    my $bin = can_run($NginxBinary);
    if (!$bin) {
        bail_out("Cannot find the nginx executable \"$NginxBinary\""
                 . " (set TEST_NGINX_BINARY or PATH)");
    }
    my $out = `'$bin' -V 2>&1`;
    if ($? != 0 || !defined $out) {
        bail_out("Failed to run \"$bin -V\": " . ($out // ''));
    }
    if ($out =~ m{(?:nginx|openresty)[^/]*/(\d+)\.(\d+)\.(\d+)}s
        || $out =~ m{\w+/(\d+)\.(\d+)\.(\d+)}s)
    {
        $NginxRawVersion = "$1.$2.$3";
        return sprintf "%d.%03d%03d", $1, $2, $3;
    }
    bail_out("Failed to parse the output of \"nginx -V\": $out");
}

sub get_canon_version (@) {
    sprintf "%d.%03d%03d", $_[0], $_[1], $_[2];
}

sub read_file_from ($$) {
    my ($file, $pos) = @_;
    open my $in, '<', $file or return ('', $pos);
    binmode $in;
    my $size = -s $in;
    $pos = 0 if $pos > $size;    # file was truncated / recreated
    seek $in, $pos, 0;
    local $/;
    my $data = <$in>;
    $data = '' unless defined $data;
    my $end = tell $in;
    close $in;
    return ($data, $end);
}

sub slurp ($) {
    my $file = shift;
    my ($data) = read_file_from($file, 0);
    return $data;
}

sub file_size ($) {
    my $f = shift;
    return (-s $f) || 0;
}

sub lines_of ($) {
    my $data = shift;
    return [ split /^/m, $data ];
}

sub tail_lines ($$) {
    my ($text, $n) = @_;
    my @l = split /\n/, $text;
    @l = @l[-$n .. -1] if @l > $n;
    return join "\n", @l;
}

sub value_contains ($$) {
    my ($val, $pat) = @_;
    return undef unless defined $val;
    if (!ref $val || ref $val eq 'Regexp') {
        return index("$val", $pat) >= 0;
    }
    if (ref $val eq 'ARRAY') {
        for my $v (@$val) {
            return 1 if value_contains($v, $pat);
        }
    }
    return undef;
}

sub to_pattern_list ($) {
    my $pats = shift;
    if (!ref $pats) {
        chomp $pats;
        return [ split /\n+/, $pats ];
    }
    if (ref $pats eq 'Regexp') {
        return [$pats];
    }
    return [ @$pats ];
}

sub line_matches ($$) {
    my ($line, $pat) = @_;
    return ref $pat ? scalar($line =~ /$pat/) : index($line, $pat) >= 0;
}

# ---------------------------------------------------------------------------
# process management
# ---------------------------------------------------------------------------

sub is_running ($) {
    my $pid = shift;
    return 0 unless $pid && $pid =~ /^\d+$/;
    if (defined $ChildPid && $pid == $ChildPid) {
        my $r = waitpid($pid, POSIX::WNOHANG());
        if ($r == $pid) {
            $ChildStatus = $?;
            undef $ChildPid;
            return 0;
        }
    }
    return 0 unless kill 0, $pid;
    if (open my $fh, '<', "/proc/$pid/stat") {
        my $stat = <$fh>;
        close $fh;
        return 0 if defined $stat && $stat =~ /^\d+ \(.*\) Z/s;    # zombie
    }
    return 1;
}

sub child_pids ($) {
    my $ppid = shift;
    my @kids;
    opendir my $dh, '/proc' or return ();
    for my $d (readdir $dh) {
        next unless $d =~ /^\d+$/;
        open my $fh, '<', "/proc/$d/stat" or next;
        my $stat = <$fh>;
        close $fh;
        next unless defined $stat;
        push @kids, $d if $stat =~ /^\d+ \(.*\) \S (\d+)/s && $1 == $ppid;
    }
    closedir $dh;
    return @kids;
}

sub cmdline_of ($) {
    my $pid = shift;
    open my $fh, '<', "/proc/$pid/cmdline" or return '';
    local $/;
    my $c = <$fh>;
    close $fh;
    $c = '' unless defined $c;
    $c =~ s/\0/ /g;
    return $c;
}

sub read_pid_file () {
    open my $in, '<', $PidFile or return undef;
    my $pid = <$in>;
    close $in;
    return undef unless defined $pid;
    $pid =~ s/\s+//g;
    return $pid =~ /^\d+$/ ? $pid : undef;
}

sub wait_for_exit ($$) {
    my ($pid, $secs) = @_;
    my $deadline = time + $secs;
    while (time < $deadline) {
        return 1 unless is_running($pid);
        sleep 0.02;
    }
    return !is_running($pid);
}

# Stop nginx; returns true if it was still running when we got to it.
sub kill_nginx ($$) {
    my ($pid, $what) = @_;
    return 0 unless is_running($pid);

    my $grace = $CurrentValgrind ? 60 : ($Timeout > 5 ? $Timeout : 5);
    my @kids = child_pids($pid);

    kill POSIX::SIGQUIT(), $pid;
    if (!wait_for_exit($pid, $grace)) {
        warn "$what - nginx $pid did not quit within ${grace}s, sending TERM\n";
        kill POSIX::SIGTERM(), $pid;
        if (!wait_for_exit($pid, 3)) {
            warn "$what - killing nginx $pid with SIGKILL\n";
            @kids = (@kids, child_pids($pid));
            kill POSIX::SIGKILL(), $pid, @kids;
            wait_for_exit($pid, 3);
        }
    }
    for my $k (@kids) {
        if (is_running($k)) {
            kill POSIX::SIGKILL(), $k;
        }
    }
    return 1;
}

# leftovers of an earlier run that crashed or was interrupted
sub kill_stale_nginx () {
    my $pid = read_pid_file();
    return unless $pid;
    if (is_running($pid) && index(cmdline_of($pid), $ServRoot) >= 0) {
        warn "WARNING: stopping leftover nginx (pid $pid) from a previous run\n";
        kill_nginx($pid, 'startup');
    }
    unlink $PidFile;
}

sub cleanup () {
    for my $hdl (@CleanupHandlers) {
        eval { $hdl->() };
        warn "cleanup handler failed: $@" if $@;
    }
    if ($NginxPid && !$NoClean) {
        kill_nginx($NginxPid, 'cleanup');
        undef $NginxPid;
    }
}

# ---------------------------------------------------------------------------
# server root, user files and nginx.conf
# ---------------------------------------------------------------------------

sub mkdir_p ($) {
    my $dir = shift;
    return if -d $dir;
    File::Path::make_path($dir, { mode => 0755 });
    -d $dir or bail_out("Failed to create directory $dir: $!");
    chmod 0755, $dir;
}

sub setup_server_root ($) {
    my $keep_logs = shift;

    if (-d $ServRoot) {
        my @rm = ($ConfDir, $HtmlDir, glob("$ServRoot/*_cache"),
                  glob("$ServRoot/*_temp"));
        push @rm, $LogDir unless $keep_logs;
        File::Path::remove_tree(grep { -e $_ } @rm);
        unlink $StderrFile;
    }

    mkdir_p($ServRoot);
    chmod 0755, $ServRoot;
    mkdir_p($LogDir);
    mkdir_p($HtmlDir);
    mkdir_p($ConfDir);

    my $index = "$HtmlDir/index.html";
    open my $out, '>', $index or bail_out("Can't open $index for writing: $!");
    print $out '<html><head><title>It works!</title></head><body>It works!</body></html>';
    close $out;
}

sub expand_env_in_text ($$$) {
    my ($text, $name, $rand_ports) = @_;
    return undef unless defined $text;

    $text =~ s{\$(TEST_NGINX_[_A-Z0-9]+)}{
        my $var = $1;
        my $val;
        if ($var =~ /^TEST_NGINX_RAND_PORT_[0-9]+$/) {
            if (!defined $rand_ports->{$var}) {
                my %used = ($ServerPort => 1, map { $_ => 1 } values %$rand_ports);
                my $p = gen_rand_port(1000, \%used);
                bail_out("$name - Cannot find an available port for $var") unless defined $p;
                $rand_ports->{$var} = $p;
            }
            $val = $rand_ports->{$var};
        } else {
            if (!defined $ENV{$var}) {
                bail_out("$name - No environment $var defined.\n");
            }
            $val = $ENV{$var};
        }
        $val;
    }ge;

    return $text;
}

sub write_user_files ($$) {
    my ($block, $rand_ports) = @_;
    my $name = $block->name;
    my $files = $block->user_files;
    return unless $files;

    if (!ref $files) {
        my @list;
        my ($fname, $body, $date);
        for my $l (split /^/m, $files) {
            if ($l =~ /^>>> (\S+)(?:\s+(.+))?/) {
                push @list, [$fname, $body, $date] if defined $fname;
                ($fname, $date, $body) = ($1, $2, undef);
            } else {
                $body .= $l;
            }
        }
        push @list, [$fname, $body, $date] if defined $fname;
        $files = \@list;
    } elsif (ref $files ne 'ARRAY') {
        bail_out("$name - wrong value type for --- user_files: " . ref($files));
    }

    for my $f (@$files) {
        my ($fname, $body, $date) = @$f;
        $body = '' unless defined $body;
        my $path = $fname =~ m{^/} ? $fname : "$HtmlDir/$fname";
        if ($path =~ m{(.*)/}) {
            mkdir_p($1);
        }
        $body = expand_env_in_text($body, $name, $rand_ports);
        open my $out, '>', $path or bail_out("$name - Cannot open $path for writing: $!");
        binmode $out;
        print $out $body;
        close $out;
        chmod 0644, $path;
        if ($date) {
            my $rc = system('touch', '-t', $date, $path);
            bail_out("$name - touch -t '$date' $path failed") if $rc != 0;
        }
    }
}

sub write_config_file ($$$$) {
    my ($block, $cblock, $config, $rand_ports) = @_;

    # $block: the block being run; $cblock: the block providing the
    # server configuration (differs when the block has no --- config)
    my $name = $block->name;
    my $http_config      = $cblock->http_config;
    my $main_config      = $cblock->main_config;
    my $post_main_config = $cblock->post_main_config;
    my $err_log_file     = $cblock->error_log_file || $ErrLogFile;
    my $server_name      = $cblock->server_name;
    $server_name = $ServerName unless defined $server_name;

    $config = '' unless defined $config;
    $http_config = expand_env_in_text($http_config, $name, $rand_ports);
    $http_config = '' unless defined $http_config;
    $main_config = '' unless defined $main_config;

    if ($LoadModules) {
        my @m = map { "load_module $_;" } grep { $_ } split /\s+/, $LoadModules;
        $main_config .= join ' ', @m;
    }
    $main_config = expand_env_in_text($main_config, $name, $rand_ports);
    $post_main_config = expand_env_in_text($post_main_config, $name, $rand_ports);
    $post_main_config = '' unless defined $post_main_config;

    my $master = $MasterProcessEnabled;
    if ($CurrentUseHup) {
        $master = 'on';    # nginx reloads are only reliable with a master
    } elsif ($CurrentValgrind) {
        $master = 'off';
    }
    my $daemon = $CurrentValgrind ? 'off' : $DaemonEnabled;

    my $extra_http = '';
    for my $t (qw(client_body proxy fastcgi uwsgi scgi)) {
        my $directive = "${t}_temp_path";
        next if $http_config =~ /\b\Q$directive\E\b/;
        $extra_http .= "    $directive $ServRoot/${t}_temp;\n";
    }
    if (defined $PostponeOutput && $http_config !~ /\bpostpone_output\b/) {
        if ($PostponeOutput !~ /^\d+$/) {
            bail_out("Bad TEST_NGINX_POSTPONE_OUTPUT value: $PostponeOutput");
        }
        $extra_http .= "    postpone_output $PostponeOutput;\n";
    }

    my $listen_opts = $ReusePort ? ' reuseport' : '';

    (my $qsn = $server_name) =~ s/\\/\\\\/g;
    $qsn =~ s/'/\\'/g;

    my $conf = <<_EOC_;
worker_processes  $Workers;
daemon $daemon;
master_process $master;
error_log $err_log_file $LogLevel;
pid       $PidFile;
env MOCKEAGAIN_VERBOSE;
env MOCKEAGAIN;
env MOCKEAGAIN_WRITE_TIMEOUT_PATTERN;
env LD_PRELOAD;
env LD_LIBRARY_PATH;
env DYLD_INSERT_LIBRARIES;
env DYLD_FORCE_FLAT_NAMESPACE;
_EOC_

    for my $v (@EnvToNginx) {
        my $e = $v =~ /\s/ ? "'$v'" : $v;
        $conf .= "env $e;\n";
    }

    $conf .= <<_EOC_;

$main_config

http {
    access_log $AccLogFile;

    default_type text/plain;
    keepalive_timeout  68;

$extra_http
$http_config

    server {
        listen          $ServerPort$listen_opts;
        server_name     '$qsn';

        client_max_body_size 30M;

        # Begin preamble config...
$ConfigPreamble
        # End preamble config...

        # Begin test case config...
$config
        # End test case config.

_EOC_

    if (!$NoRootLocation) {
        $conf .= <<_EOC_;
        location / {
            root $HtmlDir;
            index index.html index.htm;
        }
_EOC_
    }

    $conf .= "    }\n";

    if ($CurrentUseHup) {
        $conf .= <<_EOC_;

    server {
        listen          $ServerPort$listen_opts;
        server_name     'Test-Nginx';

        location = /ver {
            return 200 '$ConfigVersion';
        }
    }
_EOC_
    }

    $conf .= <<_EOC_;
}

$post_main_config

events {
    accept_mutex off;

    worker_connections  $WorkerConnections;
_EOC_
    $conf .= "    use $EventType;\n" if $EventType;
    $conf .= "}\n";
    $conf .= <<_EOC_;
env ASAN_OPTIONS;
env UBSAN_OPTIONS;
env LSAN_OPTIONS;
env MOCKNOEAGAIN_VERBOSE;
env MOCKNOEAGAIN;
_EOC_
    $conf .= "user $WorkerUser;\n" if defined $WorkerUser;

    open my $out, '>', $ConfFile or bail_out("Can't open $ConfFile for writing: $!");
    print $out $conf;
    close $out;
    chmod 0644, $ConfFile;
}

# ---------------------------------------------------------------------------
# starting / stopping nginx
# ---------------------------------------------------------------------------

sub valgrind_cmd () {
    my @cmd = ('valgrind', '-q', "--log-file=$ValgrindLog");
    if ($UseValgrind =~ /^\d+$/) {
        push @cmd, '--tool=memcheck', '--leak-check=full',
            '--show-leak-kinds=definite,indirect',
            '--errors-for-leak-kinds=definite,indirect',
            '--num-callers=50', '--gen-suppressions=all';
    } else {
        push @cmd, split ' ', $UseValgrind;
    }
    push @cmd, '--error-exitcode=99';
    my $builtin = write_builtin_suppressions();
    push @cmd, "--suppressions=$builtin" if $builtin;
    my $supp = $ENV{TEST_NGINX_VALGRIND_SUPPRESS};
    if (!$supp && -f 'valgrind.suppress') {
        $supp = File::Spec->rel2abs('valgrind.suppress');
    }
    if ($supp) {
        push @cmd, "--suppressions=$_" for split /[:\s]+/, $supp;
    }
    return @cmd;
}

# Stock nginx never frees what its single-process cycle allocates at start
# (ngx_set_environment, the event module's connection/event arrays) and
# frees the cycle pool that points to them at exit, so memcheck reports them
# as lost on every run.  Suppress exactly those stacks: allocator ->
# ngx_alloc -> one frame inside the nginx binary -> ngx_single_process_cycle
# -> main.  Leaks under request processing or inside a module's .so have
# other stacks and stay visible.
sub write_builtin_suppressions () {
    my $bin = can_run($NginxBinary) or return undef;
    $bin = Cwd::abs_path($bin) || $bin;
    my $file = "$ServRoot/txval-builtin.supp";
    open my $out, '>', $file or return undef;
    my $i = 0;
    for my $alloc (['malloc', 'ngx_alloc'], ['malloc', 'ngx_alloc', 'ngx_calloc'],
                   ['posix_memalign', 'ngx_memalign'])
    {
        $i++;
        print $out "{\n   txval-nginx-core-init-$i\n   Memcheck:Leak\n"
            . "   match-leak-kinds: definite,indirect\n"
            . join('', map { "   fun:$_\n" } @$alloc)
            . "   obj:$bin\n   fun:ngx_single_process_cycle\n   fun:main\n}\n";
    }
    close $out;
    return $file;
}

sub nginx_cmd () {
    # -e (nginx >= 1.19.5): startup errors go to error.log as well, like
    # upstream does; we also capture stderr
    my @e = (defined $NginxVersion && $NginxVersion >= 1.019005)
            ? ('-e', $ErrLogFile) : ();
    return ($NginxBinary, @e, '-p', "$ServRoot/", '-c', $ConfFile);
}

sub spawn (@) {
    my @cmd = @_;
    my $pid = fork();
    bail_out("fork() failed: $!") unless defined $pid;
    if ($pid == 0) {
        $InSubprocess = 1;
        setpgrp(0, 0) if $CurrentValgrind;
        open STDIN, '<', '/dev/null';
        open STDOUT, '>', '/dev/null';
        open STDERR, '>>', $StderrFile;
        exec { $cmd[0] } @cmd
            or print STDERR "exec @cmd failed: $!\n";
        POSIX::_exit(127);
    }
    return $pid;
}

# Runs nginx in the foreground-then-daemonize way.  Returns the wait status.
sub run_nginx_once () {
    my @cmd = nginx_cmd();
    vlog("starting: @cmd");
    my $pid = spawn(@cmd);
    my $deadline = time + 30;
    while (1) {
        my $r = waitpid($pid, POSIX::WNOHANG());
        return $? if $r == $pid;
        if (time > $deadline) {
            kill POSIX::SIGKILL(), $pid;
            waitpid($pid, 0);
            return $?;
        }
        sleep 0.01;
    }
}

sub wait_for_pid_file ($$) {
    my ($secs, $child) = @_;
    my $deadline = time + $secs;
    while (time < $deadline) {
        my $pid = read_pid_file();
        if ($pid && is_running($pid)) {
            return $pid;
        }
        if ($child && !is_running($child)) {
            return undef;
        }
        sleep 0.01;
    }
    return undef;
}

# Starts nginx.  Emits a failure and returns false when that is impossible.
sub start_nginx ($) {
    my $name = shift;

    unlink $PidFile;

    if ($CurrentValgrind) {
        unlink $ValgrindLog;
        my @cmd = (valgrind_cmd(), nginx_cmd());
        vlog("starting: @cmd");
        warn "$name\n" if $Verbose;
        $ChildPid = spawn(@cmd);
        my $pid = wait_for_pid_file(60, $ChildPid);
        if (!$pid) {
            my $vg = slurp($ValgrindLog);
            if ($ChildPid) {
                kill POSIX::SIGKILL(), -$ChildPid;
                kill POSIX::SIGKILL(), $ChildPid;
                waitpid($ChildPid, 0);
                undef $ChildPid;
            }
            Test::More::fail("$name - nginx (under valgrind) failed to start:\n"
                . tail_lines(slurp($StderrFile) . slurp($ErrLogFile), 30)
                . ($vg ne '' ? "\nvalgrind:\n$vg" : ''));
            return 0;
        }
        $NginxPid = $pid;
        return 1;
    }

    my $deadline = time + 10;
    my $status;
    while (1) {
        $status = run_nginx_once();
        last if $status == 0;
        my $err = slurp($StderrFile);
        if ($err =~ /Address already in use/ && time < $deadline) {
            sleep 0.1;
            truncate $StderrFile, 0;
            next;
        }
        my $why = $status & 127 ? "killed by signal " . ($status & 127)
                                : "exit code " . ($status >> 8);
        Test::More::fail("$name - failed to start nginx ($why):\n"
                         . tail_lines($err . slurp($ErrLogFile), 30));
        return 0;
    }

    my $pid = wait_for_pid_file(10, undef);
    if (!$pid) {
        Test::More::fail("$name - nginx started but no live process found via"
                         . " $PidFile:\n"
                         . tail_lines(slurp($StderrFile) . slurp($ErrLogFile), 30));
        return 0;
    }
    $NginxPid = $pid;
    sleep $TestNginxSleep;
    return 1;
}

# Stops nginx after a block.  Fails when nginx was found dead or (under
# valgrind) when valgrind reported errors.
sub stop_nginx ($$) {
    my ($name, $expect_running) = @_;
    my $pid = $NginxPid;
    undef $NginxPid;
    return unless $pid;

    my $was_running = kill_nginx($pid, $name);

    if ($expect_running && !$was_running) {
        Test::More::fail("$name - the nginx process $pid is gone (crashed or"
                         . " exited while the block was running); error.log tail:\n"
                         . tail_lines((read_file_from($ErrLogFile, $BlockLogStart))[0], 15));
    }

    if ($CurrentValgrind) {
        my $status;
        if ($ChildPid) {
            # kill_nginx only returns once it is gone; reap it
            waitpid($ChildPid, 0);
            $status = $?;
            undef $ChildPid;
        } else {
            $status = $ChildStatus;
        }
        check_valgrind_log($name, $status);
    }
}

sub check_valgrind_log ($$) {
    my ($name, $status) = @_;
    my $log = slurp($ValgrindLog);

    # split into records separated by "==pid== " blank lines
    my @records;
    my $cur = '';
    for my $line (split /\n/, $log) {
        if ($line =~ /^==\d+==\s*$/) {
            push @records, $cur if $cur ne '';
            $cur = '';
            next;
        }
        $cur .= "$line\n";
    }
    push @records, $cur if $cur ne '';

    my @errors = grep {
        /^==\d+== \S/m
        && !/^==\d+== Warning:/
        && !/^==\d+== WARNING:/
    } @records;

    my $code = defined $status ? ($status >> 8) : undef;
    if (@errors || (defined $code && $code == 99)) {
        my $text = join "\n", @errors;
        $text = "(valgrind exited with the error exit code; see $ValgrindLog)"
            if $text eq '';
        if (length $text > 20000) {
            $text = substr($text, 0, 20000) . "\n... (truncated)";
        }
        Test::More::fail("$name - valgrind reported errors:\n$text");
        if (open my $out, '>>', "$ServRoot/valgrind-failures.log") {
            print $out "=== $name\n$log\n";
            close $out;
        }
    }
}

sub test_config_version ($$) {
    my ($name, $block) = @_;
    my $nsucc = 0;
    my $deadline = time + 15;
    while (time < $deadline) {
        my $req = "GET /ver HTTP/1.0\r\nHost: Test-Nginx\r\nConnection: close\r\n\r\n";
        my ($resp) = send_request([{ value => $req }], undef, 1, $block, 1);
        my $body = '';
        if (defined $resp && $resp =~ /\r\n\r\n(.*)\z/s) {
            $body = $1;
        }
        if ($body eq $ConfigVersion) {
            return 1 if ++$nsucc >= 10;
            sleep 0.01;
            next;
        }
        $nsucc = 0;
        sleep 0.05;
    }
    return 0;
}

sub reload_nginx ($$$$) {
    my ($block, $cblock, $config, $rand_ports) = @_;
    my $name = $block->name;

    $BlockLogStart = file_size($ErrLogFile);
    setup_server_root(1);
    write_user_files($block, $rand_ports);
    write_config_file($block, $cblock, $config, $rand_ports);

    if (!kill POSIX::SIGHUP(), $NginxPid) {
        return 0;
    }

    if (defined $block->reload_fails) {
        sleep 0.3;
        return 1;
    }

    if (test_config_version($name, $block)) {
        sleep $TestNginxSleep;
        return 1;
    }

    my ($log) = read_file_from($ErrLogFile, $BlockLogStart);
    my @emerg = grep { /\[emerg\]/ } split /\n/, $log;
    Test::More::fail("$name - nginx failed to reload the configuration (HUP)"
                     . (@emerg ? ":\n" . join("\n", @emerg) : ''));
    return 0;
}

# ---------------------------------------------------------------------------
# error log checks
# ---------------------------------------------------------------------------

sub error_log_data () {
    # give nginx a moment for the log phase after the connection is closed
    sleep $TestNginxSleep * 3;
    my ($data, $end) = read_file_from($ErrLogFile, $ErrLogFilePos);
    $ErrLogFilePos = $end unless $CheckAccumErrLog;
    return (lines_of($data), $end);
}

sub access_log_data () {
    sleep $TestNginxSleep * 3;
    open my $in, '<', $AccLogFile or return [];
    my @lines = <$in>;
    close $in;
    return \@lines;
}

sub check_error_log ($$$$) {
    my ($block, $dry_run, $repeated_req_idx, $extra) = @_;
    my $name = $block->name;
    my ($lines, $end);

    my $get_lines = sub {
        if (!$lines) {
            ($lines, $end) = error_log_data();
            unshift @$lines, @$extra if $extra;
        }
        return $lines;
    };

    my $grep_pats = $block->grep_error_log;
    my $grep_pat;
    if (defined $grep_pats) {
        $grep_pat = (ref $grep_pats && ref $grep_pats eq 'ARRAY')
                    ? $grep_pats->[$repeated_req_idx] : $grep_pats;
    } elsif (defined $block->grep_error_log_out) {
        bail_out("$name - No --- grep_error_log defined but --- grep_error_log_out is defined");
    }

    if (defined $grep_pat) {
        my $expected = $block->grep_error_log_out;
        if (!defined $expected) {
            bail_out("$name - No --- grep_error_log_out defined but --- grep_error_log is defined");
        }
        if (ref $expected && ref $expected eq 'ARRAY') {
            $expected = $expected->[$repeated_req_idx];
        }
        SKIP: {
            Test::More::skip("$name - grep_error_log - tests skipped due to $dry_run", 1) if $dry_run;
            my $matched = '';
            for my $line (@{ $get_lines->() }) {
                if (ref $grep_pat ? $line =~ /$grep_pat/ : $line =~ /\Q$grep_pat\E/) {
                    my $m = $&;
                    $matched .= "$m\n" if $m !~ /\n/;
                }
            }
            if (ref $expected eq 'Regexp') {
                Test::More::like($matched, $expected,
                    "$name - grep_error_log_out (req $repeated_req_idx)");
            } else {
                is_str($matched, $expected,
                    "$name - grep_error_log_out (req $repeated_req_idx)");
            }
        }
    }

    if (defined $block->error_log) {
        my $pats = to_pattern_list($block->error_log);
        my $l = $get_lines->();

        my $match_new = sub {
            my ($from) = @_;
            for my $i ($from .. $#$l) {
                for my $p (@$pats) {
                    next if !defined $p;
                    if (line_matches($l->[$i], $p)) {
                        SKIP: {
                            Test::More::skip("$name - error_log - tests skipped due to $dry_run", 1) if $dry_run;
                            Test::More::pass("$name - pattern \"$p\" matches a line in error.log (req $repeated_req_idx)");
                        }
                        undef $p;
                    }
                }
            }
        };
        $match_new->(0);

        # messages can be written a little after the response (log phase,
        # worker exit...): poll a bit for the ones not seen yet
        if (!$dry_run && grep { defined } @$pats) {
            my $deadline = time + ($CurrentValgrind ? 5 : 1);
            while (time < $deadline && grep { defined } @$pats) {
                sleep 0.05;
                my ($more, $e2) = read_file_from($ErrLogFile, $end);
                next if $more eq '';
                my $from = scalar @$l;
                push @$l, @{ lines_of($more) };
                $end = $e2;
                $ErrLogFilePos = $e2 unless $CheckAccumErrLog;
                $match_new->($from);
            }
        }

        for my $p (@$pats) {
            next if !defined $p;
            SKIP: {
                Test::More::skip("$name - error_log - tests skipped due to $dry_run", 1) if $dry_run;
                Test::More::fail("$name - pattern \"$p\" should match a line in error.log (req $repeated_req_idx)");
            }
        }
    }

    if (defined $block->no_error_log) {
        my $pats = to_pattern_list($block->no_error_log);
        my $l = $get_lines->();
        my %found;
        for my $i (0 .. $#$l) {
            my $line = $l->[$i];
            for my $p (@$pats) {
                next if !defined $p;
                if (line_matches($line, $p)) {
                    $found{$p} = 1;
                    SKIP: {
                        Test::More::skip("$name - no_error_log - tests skipped due to $dry_run", 1) if $dry_run;
                        my $more = join '', grep { defined } @$l[$i + 1 .. ($i + 9 < $#$l ? $i + 9 : $#$l)];
                        Test::More::fail("$name - pattern \"" . fmt_str($p)
                            . "\" should not match any line in error.log but matches line \""
                            . fmt_str($line) . "\" (req $repeated_req_idx)\n" . $more);
                    }
                }
            }
        }
        for my $p (@$pats) {
            next if !defined $p || $found{$p};
            SKIP: {
                Test::More::skip("$name - no_error_log - tests skipped due to $dry_run", 1) if $dry_run;
                Test::More::pass("$name - pattern \"" . fmt_str($p)
                    . "\" does not match a line in error.log (req $repeated_req_idx)");
            }
        }
    }
}

sub check_access_log ($$$) {
    my ($block, $dry_run, $repeated_req_idx) = @_;
    my $name = $block->name;
    my $lines;

    if (defined $block->access_log) {
        my $pats = to_pattern_list($block->access_log);
        $lines ||= access_log_data();
        for my $line (@$lines) {
            for my $p (@$pats) {
                next if !defined $p;
                if (line_matches($line, $p)) {
                    SKIP: {
                        Test::More::skip("$name - access_log - tests skipped due to $dry_run", 1) if $dry_run;
                        Test::More::pass("$name - pattern \"$p\" matches a line in access.log (req $repeated_req_idx)");
                    }
                    undef $p;
                }
            }
        }
        for my $p (@$pats) {
            next if !defined $p;
            SKIP: {
                Test::More::skip("$name - access_log - tests skipped due to $dry_run", 1) if $dry_run;
                Test::More::fail("$name - pattern \"$p\" should match a line in access.log (req $repeated_req_idx)");
            }
        }
    }

    if (defined $block->no_access_log) {
        my $pats = to_pattern_list($block->no_access_log);
        $lines ||= access_log_data();
        my %found;
        for my $line (@$lines) {
            for my $p (@$pats) {
                next if !defined $p;
                if (line_matches($line, $p)) {
                    $found{$p} = 1;
                    SKIP: {
                        Test::More::skip("$name - no_access_log - tests skipped due to $dry_run", 1) if $dry_run;
                        Test::More::fail("$name - pattern \"" . fmt_str($p)
                            . "\" should not match any line in access.log but matches line \""
                            . fmt_str($line) . "\" (req $repeated_req_idx)");
                    }
                }
            }
        }
        for my $p (@$pats) {
            next if !defined $p || $found{$p};
            SKIP: {
                Test::More::skip("$name - no_access_log - tests skipped due to $dry_run", 1) if $dry_run;
                Test::More::pass("$name - pattern \"" . fmt_str($p)
                    . "\" does not match a line in access.log (req $repeated_req_idx)");
            }
        }
    }
}

# Safety net (not in upstream Test::Nginx): fail on alerts, emergencies,
# crashed workers and sanitizer reports in this block's part of error.log,
# unless the block's error_log / no_error_log sections mention them.
sub check_log_sanity ($$) {
    my ($block, $data) = @_;
    my $name = $block->name;
    return if defined $block->must_die;
    return if defined $block->no_log_sanity_check;

    my @expect = grep { defined } ($block->error_log, $block->no_error_log,
                                   $block->grep_error_log);
    my $mentioned = sub {
        my $p = shift;
        for my $e (@expect) {
            return 1 if value_contains($e, $p);
        }
        return 0;
    };

    my @cats = (
        [ 'crashed worker', qr/exited on signal/, 'exited on signal' ],
        [ 'sanitizer report', qr/ERROR: (?:Address|Leak|Thread|Memory)Sanitizer|\.[ch]:\d+:\d+: runtime error:|\bAssertion .* failed/, undef ],
        [ '[emerg]', qr/\[emerg\]/, '[emerg' ],
        [ '[alert]', qr/\[alert\]/, '[alert' ],
    );

    my %seen;
    my @lines = split /\n/, $data;
    for my $c (@cats) {
        my ($what, $re, $allow) = @$c;
        my @hits;
        for my $i (0 .. $#lines) {
            next if $seen{$i};
            if ($lines[$i] =~ $re) {
                $seen{$i} = 1;
                push @hits, $lines[$i];
            }
        }
        next unless @hits;
        next if defined $allow && $mentioned->($allow);
        next if $what eq '[emerg]' && defined $block->reload_fails;
        my $n = @hits;
        splice @hits, 8 if @hits > 8;
        Test::More::fail("$name - error.log has $n unexpected $what line(s):\n"
                         . join("\n", @hits));
    }

    if (!$mentioned->('[crit')) {
        for my $line (@lines) {
            warn "WARNING: $name - $line\n" if $line =~ /\[crit\]/;
        }
    }
}

# ---------------------------------------------------------------------------
# requests
# ---------------------------------------------------------------------------

sub parse_more_headers ($) {
    my $in = shift;
    my $out = '';
    my $is_chunked;
    for my $header (split /\n+/, $in) {
        next if $header =~ /^\s*\#/;
        my ($key, $val) = split /:\s*/, $header, 2;
        $val = '' unless defined $val;
        if (lc($key) eq 'transfer-encoding' && $val eq 'chunked') {
            $is_chunked = 1;
        }
        $out .= "$key: $val\r\n";
    }
    return ($out, $is_chunked);
}

# Builds the request bytes from the "METHOD /uri [HTTP/x.y]\nbody" form;
# $packets are the pieces the user wants sent with separate write()s.
sub build_request ($$$$) {
    my ($name, $more_headers, $is_chunked, $packets) = @_;

    my $orig = join '', @$packets;
    if ($orig !~ /\A([^\n]*\n?)/ || $1 eq '') {
        bail_out("$name - Request line should be non-empty");
    }
    my $first = $1;

    if ($first !~ /^(\s*)(\S+)( *)((\S+)( *))?((\S+)( *))?(\s*)$/) {
        bail_out("$name - Request line is not valid. Should be 'meth [url [version]]'"
                 . " but got \"$first\".");
    }
    my ($lead, $meth, $url, $ver) = (length $1, $2, $5, $8);
    my $meth_at = $lead;
    my $url_at = defined $url ? $-[5] : undef;
    my $ver_at = defined $ver ? $-[8] : undef;

    my $content = substr($orig, length $first);
    my $content_at = length $first;

    my $len_header = '';
    my ($c_from, $c_to) = (0, length $content);    # kept part of the content
    if (!$is_chunked && $content ne ''
        && $more_headers !~ /(?:^|\n)Content-Length:/)
    {
        $content =~ /\A(\s*)/;
        $c_from = length $1;
        if ($c_from == length $content) {
            $c_to = $c_from;
        } else {
            $content =~ /(\s*)\z/;
            $c_to = length($content) - length($1);
        }
        $len_header = "Content-Length: " . ($c_to - $c_from) . "\r\n";
    }

    $more_headers =~ s/(?<!\r)\n/\r\n/gs;

    my $headers = '';
    $headers .= "Host: $ServerName\r\n" if $more_headers !~ /(?:^|\n)Host:/msi;
    $headers .= "Connection: close\r\n" if $more_headers !~ /(?:^|\n)Connection/msi;
    $headers .= "$more_headers$len_header\r\n";

    # output, and for every kept input byte its output offset
    my $out = '';
    my %map;    # input offset of a kept segment start => output offset
    my @segs;   # [in_start, length, out_start]

    push @segs, [$meth_at, length $meth, length $out];
    $out .= "$meth ";
    if (defined $url) {
        push @segs, [$url_at, length $url, length $out];
        $out .= "$url ";
    } else {
        $out .= "/ ";
    }
    if (defined $ver) {
        push @segs, [$ver_at, length $ver, length $out];
        $out .= "$ver\r\n";
    } else {
        $out .= "HTTP/1.1\r\n";
    }
    $out .= $headers;
    push @segs, [$content_at + $c_from, $c_to - $c_from, length $out];
    $out .= substr($content, $c_from, $c_to - $c_from);

    return [$out] if @$packets <= 1;

    # map the user's packet boundaries onto the output
    my @result;
    my $in_off = 0;
    my $prev_out = 0;
    for my $i (0 .. $#$packets - 1) {
        $in_off += length $packets->[$i];
        my $o = length $out;
        for my $s (@segs) {
            my ($is, $len, $os) = @$s;
            next if $len <= 0;
            if ($in_off < $is) { $o = $os; last }
            if ($in_off < $is + $len) { $o = $os + ($in_off - $is); last }
        }
        $o = $prev_out if $o < $prev_out;
        push @result, substr($out, $prev_out, $o - $prev_out);
        $prev_out = $o;
    }
    push @result, substr($out, $prev_out);
    return \@result;
}

sub get_req_from_block ($) {
    my $block = shift;
    my $name = $block->name;
    my @req_list;

    if (defined $block->raw_request) {
        my $raw = $block->raw_request;
        if (ref $raw && ref $raw eq 'ARRAY') {
            push @req_list, [ map { ref $_ ? $_ : { value => $_ } } @$raw ];
        } else {
            push @req_list, [{ value => $raw }];
        }
        return \@req_list;
    }

    my $request = $block->request;
    if (!defined $request) {
        return [];
    }
    if (!ref $request) {
        while ($request =~ s/^\s*\#[^\n]+\s+|^\s+//gs) { }
    }

    my $more_headers = $block->more_headers;
    $more_headers = '' unless defined $more_headers;

    my $hdr_for = sub {
        my $i = shift;
        my $h = $more_headers;
        if (ref $h eq 'ARRAY') {
            $h = $h->[$i];
            bail_out("$name - --- more_headers lacks data for request $i") unless defined $h;
        }
        return parse_more_headers($h);
    };

    if (!ref $request) {
        my ($hdr, $chunked) = $hdr_for->(0);
        my $r = build_request($name, $hdr, $chunked, [$request]);
        push @req_list, [{ value => $r->[0] }];
    } elsif (ref $request eq 'ARRAY') {
        my $i = 0;
        for my $one (@$request) {
            my ($hdr, $chunked) = $hdr_for->($i);
            if (!ref $one) {
                my $r = build_request($name, $hdr, $chunked, [$one]);
                push @req_list, [{ value => $r->[0] }];
            } elsif (ref $one eq 'ARRAY') {
                my @vals;
                for my $p (@$one) {
                    if (!ref $p) {
                        push @vals, $p;
                    } elsif (ref $p eq 'HASH') {
                        push @vals, $p->{value};
                    } else {
                        bail_out("$name - Invalid syntax. $p should be a string or hash with value.");
                    }
                }
                my $r = build_request($name, $hdr, $chunked, \@vals);
                my @pk;
                for my $j (0 .. $#$r) {
                    my $orig = $one->[$j];
                    if (ref $orig) {
                        push @pk, { %$orig, value => $r->[$j] };
                    } else {
                        push @pk, { value => $r->[$j] };
                    }
                }
                push @req_list, \@pk;
            } else {
                bail_out("$name - Invalid syntax. $one should be a string or an array of packets.");
            }
            $i++;
        }
    } else {
        bail_out("$name - invalid --- request: MUST be string or array of requests");
    }

    return \@req_list;
}

sub connect_to_server ($$$$) {
    my ($block, $timeout, $quiet, $errref) = @_;
    my $addr = $block ? $block->server_addr_for_client : undef;
    $addr = $ServerAddr unless defined $addr;
    my $deadline = time + ($CurrentValgrind ? 30 : 5);
    while (1) {
        my $sock = IO::Socket::INET->new(
            PeerAddr => $addr,
            PeerPort => $ServerPortForClient,
            Proto    => 'tcp',
            Timeout  => $timeout,
        );
        return $sock if $sock;
        $$errref = "Can't connect to $addr:$ServerPortForClient: $!";
        return undef if $quiet;
        return undef if time > $deadline;
        return undef if $NginxPid && !is_running($NginxPid);
        sleep 0.05;
    }
}

# Sends one request (a list of packets) on a new connection and reads
# until the server closes it.  Returns ($response, $is_head, $error).
sub send_request ($$$$;$) {
    my ($bits, $middle_delay, $timeout, $block, $quiet) = @_;
    my @bits = @$bits;

    my $head_req = (join '', map { $_->{value} } @bits) =~ /^\s*HEAD\s+/ ? 1 : 0;

    my $err;
    my $sock = connect_to_server($block, $timeout, $quiet, \$err);
    return (undef, $head_req, { connect => $err }) unless $sock;

    local $SIG{PIPE} = 'IGNORE';
    $sock->blocking(0);

    my $resp = '';
    my %status;
    my $first = shift @bits;
    my $wbuf = $first ? $first->{value} : '';
    $wbuf = '' unless defined $wbuf;
    my $woff = 0;
    my $writing = 1;
    my $rsel = IO::Select->new($sock);
    my $wsel = IO::Select->new($sock);

  LOOP:
    while (1) {
        $! = 0;
        my ($r, $w) = IO::Select->select($rsel, $writing ? $wsel : undef, undef, $timeout);
        if (!$r && !$w) {
            next if $!{EINTR};
            $status{timeout} = 1;
            last;
        }

        if ($w && @$w) {
            while ($writing) {
                if ($woff >= length $wbuf) {
                    my $next = shift @bits;
                    if (!$next) {
                        $writing = 0;
                        my $sd = $block ? $block->shutdown : undef;
                        if (defined $sd) {
                            $sd = 1 if $sd !~ /\d/;
                            shutdown($sock, $sd);
                        }
                        last;
                    }
                    my $delay = defined $next->{delay_before} ? $next->{delay_before} : $middle_delay;
                    sleep parse_time($delay) if $delay;
                    $wbuf = defined $next->{value} ? $next->{value} : '';
                    $woff = 0;
                    next;
                }
                my $n = syswrite($sock, $wbuf, length($wbuf) - $woff, $woff);
                if (!defined $n) {
                    last if $!{EAGAIN} || $!{EWOULDBLOCK} || $!{EINTR};
                    $status{write_error} = "$!";
                    $writing = 0;
                    last;
                }
                $woff += $n;
            }
        }

        if ($r && @$r) {
            while (1) {
                my $buf;
                my $n = sysread($sock, $buf, 65536);
                if (!defined $n) {
                    next LOOP if $!{EAGAIN} || $!{EWOULDBLOCK} || $!{EINTR};
                    if ($!{ECONNRESET}) {
                        $status{reset} = 1;
                    } else {
                        $status{read_error} = "$!";
                    }
                    last LOOP;
                }
                last LOOP if $n == 0;
                $resp .= $buf;
            }
        }
    }

    close $sock;
    return ($resp, $head_req, \%status);
}

# ---------------------------------------------------------------------------
# responses
# ---------------------------------------------------------------------------

package Test::Txval::Socket::Response;

# (prototypes only keep Spiffy's source filter away; they do not matter
# for method calls)
sub new ($@) {
    my ($class, %args) = @_;
    return bless { code => undef, headers => [], content => '', %args }, $class;
}

sub code ($) { $_[0]{code} }
sub content ($;$) { my $s = shift; $s->{content} = shift if @_; $s->{content} }

sub header ($$) {
    my ($self, $name) = @_;
    my @v = map { $_->[1] } grep { lc($_->[0]) eq lc($name) } @{ $self->{headers} };
    return undef unless @v;
    return join ', ', @v;
}

package Test::Txval::Socket;

# Returns ($res, $raw_headers, $leftover, $complete).
sub parse_response ($$$) {
    my ($name, $raw, $head_req) = @_;

    my $raw_headers = '';
    if ($raw =~ /(.*?\r\n)\r\n/s) {
        $raw_headers = $1;
    }

    my ($head, $body);
    if ($raw =~ /\A(.*?)\r?\n\r?\n(.*)\z/s) {
        ($head, $body) = ($1, $2);
    } else {
        ($head, $body) = ($raw, '');
    }

    my @hl = split /\r?\n/, $head;
    my $status_line = shift(@hl);
    $status_line = '' unless defined $status_line;
    my $code;
    if ($status_line =~ m{^\S+\s+(\d+)}) {
        $code = $1;
    }

    my @headers;
    for my $l (@hl) {
        if ($l =~ /^\s+(.*)/ && @headers) {
            $headers[-1][1] .= " $1";
        } elsif ($l =~ /^([^:\s]+)\s*:\s*(.*?)\s*$/) {
            push @headers, [$1, $2];
        }
    }

    my $res = Test::Txval::Socket::Response->new(
        code => $code, headers => \@headers, content => $body,
        status_line => $status_line,
    );

    my ($left, $complete) = (undef, 0);
    $complete = 1 if $raw =~ /\r?\n\r?\n/;

    if (defined $code && ($code == 304 || $code == 101 || $code == 204 || $head_req)) {
        return ($res, $raw_headers, undef, $complete);
    }

    my $enc = $res->header('Transfer-Encoding');
    my $len = $res->header('Content-Length');

    if (defined $enc && $enc eq 'chunked') {
        my $decoded = '';
        my $ok = 0;
        pos($body) = 0;
        while (1) {
            if ($body =~ /\G0[ \t]*\r\n\r\n/gc) {
                if ($body =~ /\G(.+)/gcs) {
                    $left = $1;
                }
                $ok = 1;
                last;
            }
            if ($body =~ /\G[ \t]*([A-Fa-f0-9]+)[ \t]*(?:;[^\r\n]*)?\r\n/gc) {
                my $size = hex $1;
                my $start = pos($body);
                if (length($body) - $start < $size) {
                    Test::More::fail("$name - invalid chunked data received"
                                     . " (not enough octets for the data section)");
                    last;
                }
                $decoded .= substr($body, $start, $size);
                pos($body) = $start + $size;
                if ($body !~ /\G\r\n/gc) {
                    Test::More::fail("$name - invalid chunked data received (expected CRLF).");
                    last;
                }
            } elsif ($body =~ /\G(.+)/gcs) {
                Test::More::fail("$name - invalid chunked body received: "
                                 . show_all_chars(substr($1, 0, 200)));
                last;
            } else {
                Test::More::fail("$name - no last chunk found - "
                                 . show_all_chars(substr($body, 0, 200)));
                last;
            }
        }
        $complete = $ok;
        $res->content($decoded);
    } elsif (defined $len && $len =~ /^\d+$/) {
        if (length $body < $len) {
            warn "WARNING: $name - response body truncated: $len expected,"
                 . " but got " . length($body) . "\n";
            $complete = 0;
        } elsif (length $body > $len) {
            $left = substr($body, $len);
            $res->content(substr($body, 0, $len));
        }
    }

    return ($res, $raw_headers, $left, $complete);
}

sub get_indexed_value ($$$$) {
    my ($name, $value, $req_idx, $need_array) = @_;
    if ($need_array) {
        if (ref $value && ref $value eq 'ARRAY') {
            return $value->[$req_idx];
        }
        bail_out("$name - You asked for many requests, the expected results should be arrays as well.");
    }
    if (ref $value && ref $value eq 'ARRAY') {
        return $value->[0];
    }
    return $value;
}

sub check_error_code ($$$$$) {
    my ($block, $res, $dry_run, $req_idx, $need_array) = @_;
    my $name = $block->name;
    my $code = ($res && defined $res->code) ? $res->code : '';
    SKIP: {
        Test::More::skip("$name - tests skipped due to $dry_run", 1) if $dry_run;
        if (defined $block->error_code_like) {
            my $val = get_indexed_value($name, $block->error_code_like, $req_idx, $need_array);
            Test::More::like($code, qr/$val/sm, "$name - status code ok");
        } elsif (defined $block->error_code) {
            my $val = get_indexed_value($name, $block->error_code, $req_idx, $need_array);
            Test::More::is($code, $val, "$name - status code ok");
        } else {
            Test::More::is($code, 200, "$name - status code ok");
        }
    }
}

sub check_raw_response_headers ($$$$$) {
    my ($block, $raw_headers, $dry_run, $req_idx, $need_array) = @_;
    my $name = $block->name;
    if (defined $block->raw_response_headers_like) {
        SKIP: {
            Test::More::skip("$name - raw_response_headers_like - tests skipped due to $dry_run", 1) if $dry_run;
            my $e = get_indexed_value($name, $block->raw_response_headers_like, $req_idx, $need_array);
            Test::More::like($raw_headers, qr/$e/s, "$name - raw resp headers like");
        }
    }
    if (defined $block->raw_response_headers_unlike) {
        SKIP: {
            Test::More::skip("$name - raw_response_headers_unlike - tests skipped due to $dry_run", 1) if $dry_run;
            my $e = get_indexed_value($name, $block->raw_response_headers_unlike, $req_idx, $need_array);
            Test::More::unlike($raw_headers, qr/$e/s, "$name - raw resp headers unlike");
        }
    }
}

# "Name: value" lines; "!Name" means the header must be absent; "Name:"
# (empty value) means absent or empty.  Returns [[name, value|undef], ...].
sub parse_headers ($) {
    my $s = shift;
    my (@list, %idx);
    for my $l (split /\n/, $s) {
        $l =~ s/^\s+|\s+$//g;
        next if $l eq '';
        my $neg = ($l =~ s/^!\s*//);
        my ($k, $v);
        if ($neg) {
            ($k, $v) = ($l, undef);
        } else {
            ($k, $v) = split /\s*:\s*/, $l, 2;
            $v = '' unless defined $v;
        }
        if (exists $idx{$k}) {
            $list[$idx{$k}][1] = $v;    # last one wins (upstream uses a hash)
        } else {
            $idx{$k} = scalar @list;
            push @list, [$k, $v];
        }
    }
    return \@list;
}

sub check_response_headers ($$$$$$) {
    my ($block, $res, $raw_headers, $dry_run, $req_idx, $need_array) = @_;
    my $name = $block->name;

    if (defined $block->response_headers) {
        my $hdrs = parse_headers(get_indexed_value($name, $block->response_headers,
                                                   $req_idx, $need_array));
        for my $h (@$hdrs) {
            my ($key, $val) = @$h;
            if (!defined $val) {
                SKIP: {
                    Test::More::skip("$name - response_headers - tests skipped due to $dry_run", 1) if $dry_run;
                    Test::More::unlike($raw_headers, qr/^\s*\Q$key\E\s*:/msi,
                        "$name - header $key not present in the raw headers");
                }
                next;
            }
            $val =~ s/\$ServerPort\b/$ServerPort/g;
            $val =~ s/\$ServerPortForClient\b/$ServerPortForClient/g;
            my $actual = $res ? $res->header($key) : undef;
            $actual = '' unless defined $actual;
            SKIP: {
                Test::More::skip("$name - response_headers - tests skipped due to $dry_run", 1) if $dry_run;
                Test::More::is($actual, $val, "$name - header $key ok");
            }
        }
    } elsif (defined $block->response_headers_like) {
        my $hdrs = parse_headers(get_indexed_value($name, $block->response_headers_like,
                                                   $req_idx, $need_array));
        for my $h (@$hdrs) {
            my ($key, $val) = @$h;
            $val = '' unless defined $val;
            my $actual = $res ? $res->header($key) : undef;
            $actual = '' unless defined $actual;
            SKIP: {
                Test::More::skip("$name - response_headers_like - tests skipped due to $dry_run", 1) if $dry_run;
                Test::More::like($actual, qr/^$val$/, "$name - header $key like ok");
            }
        }
    }
}

sub run_filter_helper ($$$) {
    my ($block, $filter, $content) = @_;
    my $name = $block->name;
    if (ref $filter && ref $filter eq 'CODE') {
        return $filter->($content);
    }
    if (!ref $filter) {
        return Digest::MD5::md5_hex($content) if $filter eq 'md5_hex';
        return Digest::SHA::sha1_hex($content) if $filter eq 'sha1_hex';
        return uc $content if $filter eq 'uc';
        return lc $content if $filter eq 'lc';
        return ucfirst $content if $filter eq 'ucfirst';
        return lcfirst $content if $filter eq 'lcfirst';
        return length $content if $filter eq 'length';
    }
    bail_out("$name - unknown filter \"$filter\" in --- response_body_filters");
}

sub transform_response_body ($$$) {
    my ($block, $res, $req_idx) = @_;
    return unless $res;
    my $filters = $block->response_body_filters;
    return unless defined $filters;
    my $content = $res->content;
    return unless defined $content;

    if (!ref $filters) {
        $filters =~ s/^\s+|\s+$//gs;
        $filters = [ split /\s+/, $filters ];
    } elsif (ref $filters ne 'ARRAY') {
        $filters = [$filters];
    }
    my $f = $filters;
    if (ref $filters->[0] eq 'ARRAY') {
        $f = $filters->[$req_idx];
        bail_out($block->name . " - --- response_body_filters has no entry for request $req_idx")
            unless defined $f;
    }
    $f = [$f] unless ref $f eq 'ARRAY';
    $content = run_filter_helper($block, $_, $content) for @$f;
    $res->content($content);
}

sub check_response_body ($$$$$$) {
    my ($block, $res, $dry_run, $req_idx, $repeated_req_idx, $need_array) = @_;
    my $name = $block->name;

    my $content = $res ? $res->content : undef;
    if (defined $content) {
        $content =~ s/^TE: deflate,gzip;q=0\.3\r\n//gms;
        $content =~ s/^Connection: TE, close\r\n//gms;
    }

    if (defined $block->response_body || defined $block->response_body_eval) {
        my $expected;
        if (defined $block->response_body_eval) {
            $expected = eval get_indexed_value($name, $block->response_body_eval,
                                               $req_idx, $need_array);
            warn $@ if $@;
        } else {
            $expected = get_indexed_value($name, $block->response_body, $req_idx, $need_array);
        }
        if (defined $expected && !ref $expected) {
            $expected =~ s/\$ServerPort\b/$ServerPort/g;
            $expected =~ s/\$ServerPortForClient\b/$ServerPortForClient/g;
        }
        SKIP: {
            Test::More::skip("$name - response_body - tests skipped due to $dry_run", 1) if $dry_run;
            if (ref $expected) {
                Test::More::like($content, $expected,
                    "$name - response_body - like (repeated req $repeated_req_idx, req $req_idx)");
            } else {
                is_str($content, $expected,
                    "$name - response_body - response is expected (repeated req $repeated_req_idx, req $req_idx)");
            }
        }
    } elsif (defined $block->response_body_like || defined $block->response_body_unlike) {
        my ($pats, $type) = defined $block->response_body_like
            ? ($block->response_body_like, 'like')
            : ($block->response_body_unlike, 'unlike');
        my $pat = get_indexed_value($name, $pats, $req_idx, $need_array);
        $pat =~ s/\$ServerPort\b/$ServerPort/g;
        $pat =~ s/\$ServerPortForClient\b/$ServerPortForClient/g;
        my $summary = trim($content);
        $summary = '' unless defined $summary;
        $summary = substr($summary, 0, 200) . '...' if length $summary > 200;
        SKIP: {
            Test::More::skip("$name - response_body_$type - tests skipped due to $dry_run", 1) if $dry_run;
            if ($type eq 'like') {
                Test::More::like($content, qr/$pat/s,
                    "$name - response_body_like - response is expected ($summary)");
            } else {
                Test::More::unlike($content, qr/$pat/s,
                    "$name - response_body_unlike - response is expected ($summary)");
            }
        }
    }

    for my $check (@ResponseBodyChecks) {
        $check->($block, $content, $req_idx, $repeated_req_idx, $dry_run);
    }
}

# ---------------------------------------------------------------------------
# running blocks
# ---------------------------------------------------------------------------

sub run_test_helper ($$$) {
    my ($block, $dry_run, $repeated_req_idx) = @_;
    my $name = $block->name;

    my $reqs = get_req_from_block($block);
    if (!@$reqs) {
        Test::More::fail("$name - no --- request or --- raw_request section");
        return;
    }

    my $timeout = parse_time($block->timeout);
    $timeout = $Timeout unless defined $timeout;

    my $need_array = @$reqs > 1;
    my $req_idx = 0;

    for my $req (@$reqs) {
        my ($raw, $head_req, $st);
        if ($dry_run) {
            $raw = "HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n";
            $st = {};
        } else {
            ($raw, $head_req, $st) = send_request($req,
                scalar($block->raw_request_middle_delay), $timeout, $block);
        }
        $raw = '' unless defined $raw;

        my ($res, $raw_headers, $left, $complete);
        if (!defined $block->ignore_response) {
            if (defined $block->http09) {
                $res = Test::Txval::Socket::Response->new(code => 200, content => $raw);
                ($raw_headers, $complete) = ('', 1);
            } else {
                ($res, $raw_headers, $left, $complete) = parse_response($name, $raw, $head_req);
            }
            if (defined $left && $left ne '') {
                warn "WARNING: $name - unexpected extra bytes after the response: \""
                     . show_all_chars(substr($left, 0, 200)) . "\"\n";
            }
        }

        if (!$dry_run && !defined $block->abort) {
            if ($st->{connect}) {
                Test::More::fail("$name - $st->{connect} (req $req_idx)");
            } elsif ($st->{timeout}) {
                Test::More::fail("ERROR: client socket timed out - $name\n");
            } elsif (($st->{reset} || $st->{read_error})
                     && !defined $block->ignore_response && !$complete)
            {
                Test::More::fail("$name - connection "
                    . ($st->{reset} ? "reset by peer" : "read error: $st->{read_error}")
                    . " after receiving " . length($raw) . " bytes of an incomplete"
                    . " response (req $req_idx)");
            }
        }

        if (!defined $block->ignore_response) {
            check_error_code($block, $res, $dry_run, $req_idx, $need_array);
            check_raw_response_headers($block, $raw_headers, $dry_run, $req_idx, $need_array);
            check_response_headers($block, $res, $raw_headers, $dry_run, $req_idx, $need_array);
            transform_response_body($block, $res, $req_idx);
            check_response_body($block, $res, $dry_run, $req_idx, $repeated_req_idx, $need_array);
        }

        if ($req_idx < @$reqs - 1) {
            sleep parse_time($block->wait) if $block->wait;
            check_error_log($block, $dry_run, $repeated_req_idx, undef);
            check_access_log($block, $dry_run, $repeated_req_idx)
                unless defined $block->ignore_response;
        }

        $req_idx++;
    }

    sleep parse_time($block->wait) if $block->wait;

    check_error_log($block, $dry_run, $repeated_req_idx, undef);
    check_access_log($block, $dry_run, $repeated_req_idx)
        unless defined $block->ignore_response;
}

sub eval_skip_conditions ($) {
    my $block = shift;
    my $name = $block->name;
    my ($skip, $n, $reason, $todo, $todo_reason);

    my $ver_cmp = sub {
        my ($op, $v1, $v2, $v3) = @_;
        my $v = get_canon_version($v1, $v2, $v3);
        return 1 if !defined $NginxVersion && $op =~ /^</;
        return eval "$NginxVersion $op $v";
    };

    if (defined(my $se = $block->skip_eval)) {
        if ($se =~ /^\s*(\d+)\s*:\s*(.*)/s) {
            ($n, $reason) = ($1, 'skip_eval');
            my $code = $2;
            $skip = eval $code;
            bail_out("$name - skip_eval - failed to eval the Perl code \"$code\": $@") if $@;
        }
    }

    if (defined(my $sn = $block->skip_nginx)) {
        if ($sn =~ /^\s*(\d+)\s*:\s*([<>]=?)\s*(\d+)\.(\d+)\.(\d+)(?:\s*:\s*(.*))?\s*$/) {
            my @m = ($1, $2, $3, $4, $5, $6);
            $n = $m[0];
            $reason = $m[5] || "nginx version $m[1] $m[2].$m[3].$m[4]";
            $skip = 1 if $ver_cmp->(@m[1 .. 4]);
        } else {
            bail_out("$name - Invalid --- skip_nginx spec: $sn");
        }
    } elsif (defined(my $sn2 = $block->skip_nginx2)) {
        if ($sn2 =~ /^\s*(\d+)\s*:\s*([<>]=?)\s*(\d+)\.(\d+)\.(\d+)\s*(or|and)\s*([<>]=?)\s*(\d+)\.(\d+)\.(\d+)(?:\s*:\s*(.*))?\s*$/) {
            my @m = ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11);
            $n = $m[0];
            $reason = $m[10] || 'nginx version';
            my $c1 = $ver_cmp->(@m[1 .. 4]);
            my $c2 = $ver_cmp->(@m[6 .. 9]);
            $skip = 1 if $m[5] eq 'or' ? ($c1 || $c2) : ($c1 && $c2);
        } else {
            bail_out("$name - Invalid --- skip_nginx2 spec: $sn2");
        }
    }

    if (defined(my $tn = $block->todo_nginx)) {
        if ($tn =~ /^\s*([<>]=?)\s*(\d+)\.(\d+)\.(\d+)(?:\s*:\s*(.*))?\s*$/) {
            my @m = ($1, $2, $3, $4, $5);
            $todo_reason = $m[4];
            $todo = 1 if $ver_cmp->(@m[0 .. 3]);
        } else {
            bail_out("$name - Invalid --- todo_nginx spec: $tn");
        }
    }
    if (defined(my $t = $block->todo)) {
        if ($t =~ /^\s*(\d+)\s*:\s*(.*)/s) {
            ($todo, $n, $todo_reason) = (1, $1, $2);
        } else {
            bail_out("$name - Invalid --- todo spec: $t");
        }
    }

    return ($skip, $n, $reason || 'various reasons', $todo, $todo_reason || 'various reasons');
}

sub run_must_die ($$$) {
    my ($block, $config, $rand_ports) = @_;
    my $name = $block->name;
    my $must_die = $block->must_die;

    for my $i (0 .. $RepeatEach - 1) {
        setup_server_root(0);
        write_user_files($block, $rand_ports);
        write_config_file($block, $block, $config, $rand_ports);
        $ErrLogFilePos = 0;
        $BlockLogStart = 0;

        my $status = run_nginx_once();
        my $stderr = slurp($StderrFile);

        if ($status == -1) {
            Test::More::fail("$name - failed to execute the nginx command line");
        } elsif ($status & 128) {
            Test::More::fail("$name - nginx core dumped");
        } elsif ($must_die =~ /^\s*\d+\s*$/) {
            (my $want = $must_die) =~ s/\s+//g;
            Test::More::is($status >> 8, $want, "$name - die with the expected exit code");
        } else {
            Test::More::isnt($status, 0, "$name - die as expected");
        }

        # with -e the startup messages are in error.log already (that is
        # what upstream checks); older nginx only has them on stderr
        my $with_e = grep { $_ eq '-e' } nginx_cmd();
        check_error_log($block, 0, $i, $with_e ? undef : lines_of($stderr));

        if ($status == 0) {
            warn "WARNING: $name - nginx must die but it does not; killing it (req $i)\n";
            my $pid = wait_for_pid_file(2, undef);
            kill_nginx($pid, $name) if $pid;
        }
    }
}

sub run_test ($;$) {
    my ($block, $is_last) = @_;
    my $name = $block->name;

    return if defined $block->SKIP;

    my @unsupported = grep { defined $block->$_ } qw(
        pipelined_requests http2 http3 curl curl_options curl_protocol
        curl_error stap stap_out stap_out_like stap_out_unlike tcp_listen
        udp_listen shutdown_error_log no_shutdown_error_log skip_openssl
    );
    if (@unsupported) {
        Test::More::fail("$name - section(s) not supported by Test::Txval::Socket: "
                         . join(', ', map { "--- $_" } @unsupported));
        return;
    }

    local $LogLevel = $LogLevel;
    $LogLevel = $block->log_level if $block->log_level;

    my $rand_ports = {};

    my $cblock = $block;
    my $config = $block->config;
    if (!defined $config) {
        if (!$PrevConfBlock) {
            bail_out("$name - No '--- config' section specified and could not get previous one.");
        }
        $cblock = $PrevConfBlock;
        $config = $cblock->config;
    }
    $PrevConfBlock = $cblock;
    $config = expand_env_in_text($config, $name, $rand_ports);

    if (defined $block->must_die) {
        # nginx must not be running for a fresh start
        if ($NginxPid) {
            stop_nginx($name, 0);
        }
        local $CurrentUseHup = 0;
        local $CurrentValgrind = 0;
        run_must_die($block, $config, $rand_ports);
        return;
    }

    my ($should_skip, $tests_to_skip, $skip_reason, $should_todo, $todo_reason)
        = eval_skip_conditions($block);

    if ($should_skip && defined $tests_to_skip) {
        for (1 .. $RepeatEach) {
            SKIP: {
                Test::More::skip("$name - $skip_reason", $tests_to_skip);
            }
        }
        return;
    }

    my $hup_running = $CurrentUseHup && $NginxPid && is_running($NginxPid);
    my $started;

    if ($hup_running) {
        $ConfigVersion = join '', map { ('a' .. 'z', 0 .. 9)[rand 36] } 1 .. 10;
        $started = reload_nginx($block, $cblock, $config, $rand_ports);
        if (!$started) {
            # fall back to a fresh start
            stop_nginx($name, 0);
            $hup_running = 0;
        }
    }

    if (!$hup_running) {
        $ConfigVersion = join '', map { ('a' .. 'z', 0 .. 9)[rand 36] } 1 .. 10;
        if ($NginxPid) {
            stop_nginx($name, 0);
        }
        setup_server_root(0);
        write_user_files($block, $rand_ports);
        write_config_file($block, $cblock, $config, $rand_ports);
        $BlockLogStart = 0;
        $started = start_nginx($name);
        if (!$started) {
            return;
        }
    }

    $ErrLogFilePos = $hup_running ? file_size($ErrLogFile) : 0;

    if (defined(my $init = $block->init)) {
        eval $init;
        bail_out("$name - init failed: $@") if $@;
    }

    for my $i (0 .. $RepeatEach - 1) {
        write_user_files($block, $rand_ports) if $i > 0;
        if ($should_todo) {
            TODO: {
                Test::More::todo_skip("$name - $todo_reason", $tests_to_skip || 1);
            }
        } else {
            run_test_helper($block, 0, $i);
        }
    }

    if (!$CurrentUseHup) {
        if ($is_last && $NoClean) {
            warn "TEST_NGINX_NO_CLEAN is set: leaving nginx (pid $NginxPid) running\n";
        } else {
            stop_nginx($name, 1);
        }
    } elsif (!is_running($NginxPid)) {
        Test::More::fail("$name - the nginx process $NginxPid is gone");
        undef $NginxPid;
    } elsif ($is_last && !$NoClean) {
        stop_nginx($name, 1);
    }

    my ($data) = read_file_from($ErrLogFile, $BlockLogStart);
    check_log_sanity($block, $data);
}

sub run_tests () {
    $NginxVersion = get_nginx_version();

    $ENV{TEST_NGINX_SERVER_PORT} = $ServerPort;

    local $CurrentUseHup = $UseHup;
    local $CurrentValgrind = $UseValgrind;
    # make sure END runs (and stops nginx) when we get killed or lose
    # our output pipe
    local $SIG{INT} = sub { warn "interrupted; stopping nginx\n"; exit 130 };
    local $SIG{TERM} = sub { warn "terminated; stopping nginx\n"; exit 143 };
    local $SIG{HUP} = sub { exit 129 };
    local $SIG{PIPE} = sub { $SIG{PIPE} = 'IGNORE'; exit 141 };

    kill_stale_nginx();

    my @blocks = Test::Base::blocks();
    for my $i (0 .. $#blocks) {
        my $block = $blocks[$i];
        for my $hdl (@BlockPreprocessors) {
            $hdl->($block);
        }
        $block->set_value('name', $0 . ' ' . $block->name);
        run_test($block, $i == $#blocks);
    }

    if ($NginxPid && !$NoClean) {
        my $name = @blocks ? $blocks[-1]->name : $0;
        stop_nginx($name, 1);
    }
}

END {
    return if $InSubprocess || !defined $MainPid || $$ != $MainPid;
    local $?;
    cleanup();
    if ($Randomize && !$NoClean && defined $ServRoot && -d $ServRoot
        && $ServRoot =~ m{/t/servroot_\d+$})
    {
        File::Path::remove_tree($ServRoot);
    }
}

1;
__END__

=encoding utf-8

=head1 NAME

Test::Txval::Socket - a small Test::Nginx::Socket-compatible test runner

=head1 SYNOPSIS

    use lib 't/lib';
    use Test::Txval 'no_plan';   # picks upstream Test::Nginx::Socket or this

    repeat_each(2);
    run_tests();

    __DATA__

    === TEST 1: hello
    --- config
        location = /t { return 200 "hello\n"; }
    --- request
    GET /t
    --- response_body
    hello
    --- no_error_log
    [error]

=head1 DESCRIPTION

Runs test files written in Test::Nginx::Socket's block format with only
Test::Base, Text::Diff and core Perl.  For every block it writes
F<servroot/conf/nginx.conf>, starts nginx (C<nginx -e logs/error.log -p
servroot/ -c conf/nginx.conf>), sends the request(s), checks the
expectations, then stops nginx (QUIT, then TERM/KILL) -- or, with
C<TEST_NGINX_USE_HUP=1> / C<use_hup()>, keeps one master and reloads it with
SIGHUP between blocks, waiting until a C</ver> probe answers with the new
config version.  Test counting follows upstream (one test per status code,
response header line, response body, error_log / no_error_log pattern...).

=head1 EXPORTED FUNCTIONS

run_tests run_test repeat_each workers worker_connections master_on
master_off master_process_enabled log_level no_shuffle no_long_string
no_root_location env_to_nginx config_preamble add_block_preprocessor
add_cleanup_handler add_response_body_check server_name server_addr
server_root html_dir server_port server_port_for_client timeout use_hup
check_accum_error_log bail_out is_str, plus everything Test::Base exports
(plan blocks is isnt like unlike ok pass fail diag skip is_deeply ...).

=head1 SECTIONS

config, http_config, main_config, post_main_config, server_name, user_files,
init, request (string, eval string, eval array of requests, arrays of
packets with {value, delay_before}), raw_request (string or array of
packets of one request), raw_request_middle_delay, more_headers (string or
array per request), error_code, error_code_like, response_body,
response_body_like, response_body_unlike, response_body_filters,
response_headers (C<Name: value>, C<!Name> = absent, C<Name:> = absent or
empty), response_headers_like, raw_response_headers_like/unlike,
error_log, no_error_log, grep_error_log, grep_error_log_out, access_log,
no_access_log, must_die (optionally with an exit code), wait, timeout,
abort, shutdown, ignore_response, http09, log_level, error_log_file,
skip_eval, skip_nginx, skip_nginx2, todo, todo_nginx, reload_fails, and
Test::Base's ONLY / LAST / SKIP.  Extra: no_log_sanity_check.

=head1 ENVIRONMENT

TEST_NGINX_BINARY, TEST_NGINX_PORT, TEST_NGINX_SERVER_PORT,
TEST_NGINX_CLIENT_PORT, TEST_NGINX_RANDOMIZE (random port and
F<t/servroot_E<lt>pidE<gt>>, for C<prove -j>; with TEST_NGINX_SERVROOT
set, its value with C<_E<lt>pidE<gt>> appended), TEST_NGINX_SERVROOT,
TEST_NGINX_LOG_LEVEL, TEST_NGINX_MASTER_PROCESS, TEST_NGINX_TIMEOUT,
TEST_NGINX_SLEEP, TEST_NGINX_USE_HUP, TEST_NGINX_USE_VALGRIND (1 for the
default memcheck options, or a string of valgrind options),
TEST_NGINX_VALGRIND_SUPPRESS (colon-separated suppression files; else
F<./valgrind.suppress> if present), TEST_NGINX_LOAD_MODULES,
TEST_NGINX_POSTPONE_OUTPUT, TEST_NGINX_EVENT_TYPE, TEST_NGINX_REUSE_PORT,
TEST_NGINX_WORKER_USER, TEST_NGINX_NO_CLEAN, TEST_NGINX_CHECK_ACCUM_ERR_LOG,
TEST_NGINX_VERBOSE.  C<$TEST_NGINX_*> (and C<$TEST_NGINX_RAND_PORT_N>) are
expanded in main_config, http_config, post_main_config, config and
user_files; TEST_NGINX_SERVER_PORT, TEST_NGINX_SERVER_ROOT and
TEST_NGINX_HTML_DIR are set for the test file.

=head1 VALGRIND

With C<TEST_NGINX_USE_VALGRIND=1> nginx runs as our child under
C<valgrind -q --tool=memcheck --leak-check=full
--show-leak-kinds=definite,indirect --errors-for-leak-kinds=definite,indirect
--num-callers=50 --gen-suppressions=all --error-exitcode=99
--log-file=servroot/logs/valgrind.log>, with C<daemon off> and
C<master_process off>.  After nginx is stopped, any valgrind error or
definite/indirect leak fails the block (the full report goes to the TAP
diagnostics and to F<servroot/valgrind-failures.log>).  A generated
suppression file hides only stock nginx's start-up allocations in
single-process mode (malloc/ngx_alloc, one frame in the nginx binary,
ngx_single_process_cycle, main).

=head1 DIFFERENCES FROM UPSTREAM

Blocks are never shuffled.  nginx is stopped after every block instead of
at the start of the next one; a block without C<--- config> restarts nginx
with the previous block's configuration (upstream keeps the old server
running).  The generated http{} sets the *_temp_path directives under the
server root (unless http_config sets them).  No C<user root;> line is
written when running as root (workers run as nginx's default user; see
TEST_NGINX_WORKER_USER).  After each block its part of error.log is
scanned: [alert], [emerg], "exited on signal" and sanitizer/assert reports
fail the block unless error_log/no_error_log mention them (upstream only
warns); a dead nginx fails the block; under valgrind, valgrind reports fail
the block (upstream just prints them).  A connection reset or read error
before a complete response fails (upstream warns).  C<!Name> header checks
are case-insensitive.  Failed string comparisons show a unified diff for
multi-line values whether or not no_long_string() was called.
Not supported: pipelined_requests, http2/http3/curl, stap, tcp_listen,
udp_listen, shutdown_error_log, skip_openssl, TEST_NGINX_CHECK_LEAK,
TEST_NGINX_BENCHMARK, TEST_NGINX_NO_NGINX_MANAGER, TEST_NGINX_USE_RR.

=cut
