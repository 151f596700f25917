# The repository stands on its own, and what its pages say is checked:
#
#   links      every relative link of README.md and docs/*.md points at a
#              file inside the repository, and every #anchor at a heading
#              of its page, and none climbs out of its page's
#              directory (../); no page points outside the repository (the
#              product's contract is docs/reference.md, not a file
#              elsewhere); LICENSE is there, BSD-2-Clause;
#   targets    every target of the Makefile is in the README's table of
#              targets, every .PHONY entry has a rule;
#   layout     the README's layout table names every file of
#              ngx_http_txval_module/, and no file that is not there;
#   install    `make install` puts the module where every load_module line
#              of the pages, the examples and the package says it is;
#   PromQL     every query of the pages (code spans that read txval_*
#              series) passes promtool; a ratio of rates sums both sides
#              over the same labels; the alert rules (a ```yaml block with
#              groups:, docker/prometheus/) pass `promtool check rules`,
#              and under `promtool test rules` an alert on the error ratio
#              stays quiet at one error in 60,000 requests and fires when
#              half the requests are errors.

use strict;
use warnings;

use Cwd qw(abs_path);
use File::Basename qw(dirname basename);
use File::Path qw(make_path remove_tree);
use Test::More;

use lib 't/lib';
use Txval::Files qw(slurp spew);

my $repo = abs_path(dirname(__FILE__) . '/..');
my $tmp = "$repo/t/servroot_docs521";
my $module = $ENV{TEST_NGINX_TXVAL_MODULE}
             // "$repo/build/ngx_http_txval_module.so";

remove_tree($tmp);
make_path($tmp);

my @pages = ("$repo/README.md", sort glob "$repo/docs/*.md");
my %text = map { $_ => slurp($_) } @pages;
my $readme = $text{"$repo/README.md"};

# the text of a page without its fenced blocks (links and spans in prose
# and tables only)
sub prose {
    my ($t) = @_;
    $t =~ s/^```.*?^```[ \t]*$//msg;
    return $t;
}


# --- links

# GitHub's anchor for a heading
sub slug {
    my ($h) = @_;
    $h = lc $h;
    $h =~ s/`//g;
    $h =~ s/[^\w\- ]//g;
    $h =~ s/ /-/g;
    return $h;
}

sub anchors {
    my ($file) = @_;
    my %a;
    my %seen;
    for my $h (prose(slurp($file)) =~ /^#+\s+(.*?)\s*$/mg) {
        my $s = slug($h);
        my $n = $seen{$s}++;
        $a{$n ? "$s-$n" : $s} = 1;
    }
    return \%a;
}

for my $page (@pages) {
    my $rel = substr $page, length("$repo/");
    my @links = prose($text{$page}) =~ /\]\(([^)\s]+)\)/g;
    ok @links, "$rel has links";
    for my $l (@links) {
        next if $l =~ m{^(https?|mailto):};
        # a page is read on its own too (the package puts docs/ pages in
        # /usr/share/doc/): no link climbs out of the page's directory
        unlike $l, qr{(?:^|/)\.\.(?:/|$)}, "$rel: $l does not climb out";
        my ($path, $anchor) = $l =~ /^([^#]*)(?:#(.*))?$/;
        my $target = $path eq '' ? $page
                   : abs_path(dirname($page) . "/$path");
        my $inside = defined $target && -e $target
                     && index($target, "$repo/") == 0;
        ok $inside, "$rel: $l is a file of the repository";
        next unless $inside && defined $anchor;
        ok anchors($target)->{$anchor},
           "$rel: #$anchor is a heading of " . ($path || $rel);
    }
    unlike $text{$page}, qr{\.\./shared|/work/}, "$rel names no file outside "
                                                  . 'the repository';
}

# nginx configuration is in ```nginx blocks, which t/520-examples.t finds
# and checks with nginx -t; an indented block of configuration would
# escape it
my $directive = qr/^\s*(?:(?:location|server|upstream|http|events|map|
                     split_clients|log_format|access_log|listen|load_module|
                     include|resolver|proxy_\w+|limit_req\w*|allow|deny|
                     txval\w*)\b[^\n]*[;{]
                     | [a-z_]+\s[^\n]*;)\s*(?:\#[^\n]*)?$/xm;
for my $page (@pages) {
    my $rel = substr $page, length("$repo/");
    my ($n, $start, @block) = (0, 0);
    # fenced blocks blanked out, keeping the line numbers
    my $t = $text{$page} =~ s{^```.*?^```[ \t]*$}{"\n" x (() = $& =~ /\n/g)}msger;
    my @lines = (split(/\n/, $t), '');
    for my $line (@lines) {
        $n++;
        if ($line =~ /^ {4}/) {
            $start ||= $n;
            push @block, $line;
            next;
        }
        next if $line =~ /^\s*$/ && @block;
        if (@block && $block[0] !~ /^\s*Syntax:/
            && grep { $_ =~ $directive } @block) {
            fail("$rel: an indented block of nginx configuration (block "
                 . "$start..): put it in a ```nginx block");
            diag join "\n", @block;
        }
        ($start, @block) = (0);
    }
}
pass 'nginx configuration only in ```nginx blocks';

like $readme, qr{\]\(docs/reference\.md\)}, 'README links docs/reference.md';
ok -f "$repo/LICENSE", 'LICENSE';
like slurp("$repo/LICENSE"), qr/\ABSD 2-Clause License\n/, 'LICENSE: BSD-2-Clause';
like $readme, qr{\]\(LICENSE\)}, 'README links LICENSE';


# --- make targets

my $makefile = slurp("$repo/Makefile");
my @rules = grep { !/^\./ } $makefile =~ /^([A-Za-z][\w-]*)\s*:(?!=)/mg;
my ($phony) = $makefile =~ /^\.PHONY:\s*((?:.*\\\n)*.*)$/m;
my @phony = split ' ', ($phony // '') =~ s/\\\n/ /gr;

ok @rules > 10, 'Makefile rules: ' . join(' ', @rules);
my %rule = map { $_ => 1 } @rules;
for my $p (@phony) {
    ok $rule{$p}, ".PHONY entry '$p' has a rule";
}
my %phony = map { $_ => 1 } @phony;
my ($table) = $readme =~ /^(\| command \| what it does \|\n(?:\|.*\n)+)/m;
ok $table, 'the README has a table of targets';
for my $r (@rules) {
    ok $phony{$r}, "'$r' is .PHONY";
    my $shown = $r eq 'all' ? qr/^\| `make`/m
                            : qr/^\|[^|\n]*`make \Q$r\E\b/m;
    like $table // '', $shown, "the README's table lists 'make"
                               . ($r eq 'all' ? '' : " $r") . "'";
}


# --- the layout table: every source file, one row each

{
    my %named;
    for my $cell ($readme =~ /^\| `(ngx_http_txval_[\w.\/]+)` \|/mg) {
        my ($stem, $exts) = $cell =~ /^(\w+)\.([ch](?:\/\.[ch])?)$/
            or do { fail("layout: a row names '$cell'"); next };
        $named{"$stem.$_"}++ for map { s/^\.//r } split m{/}, $exts;
    }

    my @files = map { basename($_) }
                sort glob "$repo/ngx_http_txval_module/*.[ch]";
    ok @files > 20, 'layout: ' . scalar(@files) . ' source files';
    for my $f (@files) {
        is $named{$f} // 0, 1, "layout: the README's table has $f, once";
    }
    my %file = map { $_ => 1 } @files;
    for my $f (sort keys %named) {
        ok $file{$f}, "layout: $f, named in the README, exists";
    }
}


# --- make install and the load_module lines

my ($modules_dir) = $makefile =~ /^MODULES_DIR\s*\?=\s*(\S+)/m;
ok $modules_dir, "MODULES_DIR defaults to " . ($modules_dir // '?');

SKIP: {
    skip "$module missing", 2 unless -f $module;
    my $dest = "$tmp/destdir";
    my $out = `make -C '$repo' -s -o '$module' install SANITIZE= MODULE='$module' DESTDIR='$dest' 2>&1`;
    is $?, 0, 'make install DESTDIR=...' or diag $out;
    ok -f "$dest$modules_dir/ngx_http_txval_module.so",
       "make install puts the module in $modules_dir";
}

{
    my @lines;
    for my $f (@pages, glob("$repo/examples/*.conf"),
               "$repo/packaging/mod-http-txval.conf") {
        my $rel = substr $f, length("$repo/");
        push @lines, map { [$rel, $_] }
                     slurp($f) =~ /\bload_module\s+(\S*ngx_http_txval_module\.so)/g;
    }
    ok @lines >= 3, 'load_module lines found: ' . scalar @lines;
    for (@lines) {
        my ($rel, $path) = @$_;
        ok $path eq 'modules/ngx_http_txval_module.so'
           || $path eq "$modules_dir/ngx_http_txval_module.so",
           "$rel: load_module $path is where make install and the package "
           . 'put it';
    }
}


# --- PromQL

SKIP: {
    skip 'no promtool (scripts/deps.sh test installs prometheus)', 1
        unless grep { -x "$_/promtool" } split /:/, $ENV{PATH} // '';

    my @queries;
    for my $page (@pages) {
        my $rel = substr $page, length("$repo/");
        for my $span (prose($text{$page}) =~ /`([^`\n]+)`/g) {
            next unless $span =~ /\btxval_\w+/
                && $span =~ /\b(?:rate|irate|increase|sum|avg|max|min|count|topk|histogram_quantile)\s*(?:by\s*\([^)]*\)\s*)?\(|\s\/\s/;
            push @queries, [$rel, $span =~ s/\\\|/|/gr];
        }
    }
    ok @queries >= 10, 'PromQL queries found: ' . scalar @queries;

    # syntax: each as a recording rule
    my $rules = "groups:\n  - name: queries\n    rules:\n";
    my $n = 0;
    for (@queries) {
        $n++;
        (my $q = $_->[1]) =~ s/'/''/g;
        $rules .= "      - record: q$n\n        expr: '$q'\n";
    }
    spew("$tmp/queries.yml", $rules);
    my $out = `promtool check rules '$tmp/queries.yml' 2>&1`;
    is $?, 0, 'promtool check rules: every query parses' or diag $out;

    # a ratio of rates: both sides summed, over the same labels
    for (@queries) {
        my ($rel, $q) = @$_;
        my @sides = split_top_division($q);
        next unless @sides == 2 && $q =~ /\brate\(/;
        my @agg = map { /^\s*(sum|avg|max|min|count)\s*(by\s*\(([^)]*)\))?\s*\(/
                            ? ($1 . ':' . join(',', sort map { s/\s//gr }
                                                  split /,/, $3 // ''))
                            : undef } @sides;
        ok defined $agg[0] && defined $agg[1] && $agg[0] eq $agg[1],
           "$rel: both sides of the ratio summed alike: $q";
    }

    # the alert rules: the pages' rules files (```yaml with groups:) and
    # the repository's (docker/prometheus/); an alert on the error ratio
    # must stay quiet at one error in 60,000 requests and fire at one in
    # two (both sides summed: unsummed, the ratio is 1 at the first error)
    my @files;
    for my $page (@pages) {
        my $k = 0;
        for my $y ($text{$page} =~ /^```yaml\n(.*?)^```/msg) {
            next unless $y =~ /^groups:/m && $y =~ /\balert:/;
            my $f = "$tmp/" . basename($page) . '-' . ++$k . '.yml';
            spew($f, $y);
            push @files, $f;
        }
    }
    push @files, grep { slurp($_) =~ /^groups:/m }
                 glob "$repo/docker/prometheus/*.yml";
    ok @files, 'alert rules files: ' . join(' ', map { basename($_) } @files);

    my @alerts;
    for my $f (@files) {
        my $out = `promtool check rules '$f' 2>&1`;
        is $?, 0, 'promtool check rules ' . basename($f) or diag $out;
        # alert name and expression, through Debian's python3-yaml
        my $json = `python3 -c 'import json, sys, yaml
d = yaml.safe_load(open(sys.argv[1]))
print(json.dumps([[r["alert"], r["expr"]] for g in d["groups"]
                  for r in g["rules"] if "alert" in r]))' '$f' 2>&1`;
        require JSON::PP;
        my $list = eval { JSON::PP::decode_json($json) };
        ok $list, 'the alerts of ' . basename($f) or diag $json;
        push @alerts, map { [basename($f), @$_] } @{ $list // [] };
    }

    my @ratio = grep { $_->[2] =~ /verdict="error"/ && $_->[2] =~ m{/} }
                @alerts;
    ok @ratio, 'an alert on the error ratio: '
               . join(', ', map { "$_->[0] $_->[1]" } @ratio);

    my $series = sub {
        my ($ok, $err) = @_;
        return join '', map {
            "      - series: 'txval_requests_total{instance=\"edge-$_\",job=\"txval\",verdict=\"approved\"}'\n"
          . "        values: '0+${ok}x60'\n"
          . "      - series: 'txval_requests_total{instance=\"edge-$_\",job=\"txval\",verdict=\"declined\"}'\n"
          . "        values: '0+100x60'\n"
          . "      - series: 'txval_requests_total{instance=\"edge-$_\",job=\"txval\",verdict=\"error\"}'\n"
          . "        values: '0+${err}x60'\n"
          . "      - series: 'txval_errors_total{instance=\"edge-$_\",job=\"txval\",error=\"invalid_json\"}'\n"
          . "        values: '0+${err}x60'\n"
        } 1, 2;
    };

    for my $a (@ratio) {
        my ($file, $name, $expr) = @$a;
        (my $q = "count($expr)") =~ s/\s+/ /g;
        $q =~ s/'/''/g;
        spew("$tmp/ratio-test.yml", <<"YML");
rule_files: []
evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
@{[ $series->(60000, 1) ]}    promql_expr_test:
      - expr: '$q'
        eval_time: 30m
        exp_samples: []
  - interval: 1m
    input_series:
@{[ $series->(500, 600) ]}    promql_expr_test:
      - expr: '$q'
        eval_time: 30m
        exp_samples:
          - labels: '{}'
            value: 1
YML
        my $out = `cd '$tmp' && promtool test rules ratio-test.yml 2>&1`;
        ok $? == 0 && $out =~ /SUCCESS/,
           "$file $name: quiet at 1 error in 60,000 requests, firing at "
           . 'one in two' or diag $out;
    }
}

# a division at the top level of an expression (outside any parentheses),
# split in two; () when there is none
sub split_top_division {
    my ($q) = @_;
    my $depth = 0;
    my @c = split //, $q;
    for my $i (0 .. $#c) {
        $depth++ if $c[$i] eq '(' || $c[$i] eq '{' || $c[$i] eq '[';
        $depth-- if $c[$i] eq ')' || $c[$i] eq '}' || $c[$i] eq ']';
        if ($depth == 0 && $c[$i] eq '/') {
            return (substr($q, 0, $i), substr($q, $i + 1));
        }
    }
    return ();
}

done_testing;
