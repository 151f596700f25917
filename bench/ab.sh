#!/usr/bin/env bash
# `make bench-ab`: two builds of the module, A and B, measured in one run on
# one machine, interleaved, so that a change can say "throughput and CPU
# per request within X% of the previous commit" with both numbers taken
# under the same conditions.
#
#   bench/ab.sh [REV_A] [REV_B]
#   make bench-ab [AB_A=REV_A] [AB_B=REV_B]
#
# REV_A: a git revision, default HEAD~1. REV_B: a git revision, default the
# working tree's build (build/ngx_http_txval_module.so, from `make`; make
# bench-ab builds it first). Either may also be the path of a built .so.
# A revision is exported (git archive) into build/ab/src-<sha>, built with
# that tree's own Makefile and config script (so an old revision builds the
# way it did then), and its module kept in build/ab/<sha>/: a revision is
# built once. `bench/ab.sh HEAD HEAD` (A/A) shows the noise of the machine.
#
# Servers: one Redis and one Postgres (scripts/services.sh; schema and seed
# from docker/initdb/, the seed has the bench merchants and cards), and per
# side two nginx (Debian's /usr/sbin/nginx, 2 workers each): "full" with
# txval_cache_zone + Redis + Postgres, "redis" with Redis only (no zone, no
# Postgres; the zone and txval_postgres are http-level). Each has /v
# (`txval;`) and /g (`txval_gate;` + proxy_pass to a `return 200` server
# in the same nginx). A and B get the same nginx.conf but for the module,
# the zone name and the Redis prefix (so they never share a cached id).
# The configuration is today's: a directive one of the builds does not
# know makes its nginx refuse to start.
#
# Scenarios (AB_SCENARIOS, default "replay redis_hit redis_miss full_miss"):
#   replay       full /v, the same id again: shm hit
#   redis_hit    redis /v, the same id again: Redis GET hit
#   redis_miss   redis /v, new ids: GET miss, INCR+EXPIRE, SET
#   full_miss    full /v, new ids: Redis and Postgres
#   gate_replay, gate_redis_hit, gate_redis_miss, gate_full_miss:
#                the same through /g
#   invalid      full /v, malformed JSON (400 expected)
# New ids (bench/wrk.lua "unique") are unique per cell (TXVAL_BENCH_RUN).
#
# A round runs every scenario on A and on B back to back; the order flips
# every round (A B, then B A: ABBA) so that drift during the run falls on
# both alike. Per cell: req/s, p99 and errors (wrk.lua's TXVAL lines), CPU
# per request of the serving nginx's workers, of Redis and of Postgres
# (utime + stime from /proc, over the requests wrk counted). The report
# (markdown, stdout): medians over the rounds and the ratios B/A, the two
# revisions, the command, nproc and the load average at start and end.
#
#   AB_ROUNDS=5 AB_SECONDS=5 AB_CONNECTIONS=64 (wrk -t2)
#   AB_WARMUP=1         seconds per scenario and side before the rounds
#   AB_SCENARIOS="..."  AB_PORT=18780 (uses +0..+12)  AB_OUT=file.md (too)
#   AB_CALLGRIND=1      also bench/callgrind.sh on each module: txval's
#                       paths, instructions per request, side by side
#                       (AB_CALLGRIND_SECONDS=3 per path)
#
# Exit status 0 whatever the numbers (no thresholds here); 1 when something
# broke (a build, a server, an answer before the load, a worker that died).
# A load average above 0.5 at the start is flagged in the report: the
# machine is busy and the numbers are not to be trusted.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
nginx=${NGINX_BIN:-/usr/sbin/nginx}
rounds=${AB_ROUNDS:-5}
secs=${AB_SECONDS:-5}
conns=${AB_CONNECTIONS:-64}
warmup=${AB_WARMUP:-1}
do_callgrind=${AB_CALLGRIND:-0}
cg_secs=${AB_CALLGRIND_SECONDS:-3}
out=${AB_OUT:-}
base=${AB_PORT:-18780}
redis_port=$((base + 4))
pg_port=$((base + 5))
dir=$top/build/ab
run=$dir/run
conninfo="host=127.0.0.1 port=$pg_port dbname=txval user=txval password=txval"
hz=$(getconf CLK_TCK)
run_id=$(date +%s)
invoked="bench/ab.sh${*:+ $*}"
load_start=$(cut -d" " -f1-3 /proc/loadavg)
t_start=$SECONDS

# shellcheck disable=SC2206
scenarios=(${AB_SCENARIOS:-replay redis_hit redis_miss full_miss})

die() {
    echo "ab: $*" >&2
    exit 1
}

case ${1:-} in -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;; esac
[ $# -le 2 ] || die "usage: bench/ab.sh [REV_A] [REV_B]"
[ -z "${NGINX_SRC:-}${SANITIZE:-}" ] \
    || die "compares builds for Debian's nginx: NGINX_SRC and SANITIZE are not supported"
for tool in git wrk curl redis-server "$nginx"; do
    command -v "$tool" > /dev/null || die "$tool missing: scripts/deps.sh build run load"
done
if [ "$do_callgrind" = 1 ]; then
    command -v valgrind > /dev/null || die "valgrind missing: scripts/deps.sh valgrind"
fi

scenario_def() {
    # $1 scenario -> "instance-kind path wrk-mode"
    case $1 in
        replay) echo "full /v replay" ;;
        redis_hit) echo "redis /v replay" ;;
        redis_miss) echo "redis /v unique" ;;
        full_miss) echo "full /v unique" ;;
        gate_replay) echo "full /g replay" ;;
        gate_redis_hit) echo "redis /g replay" ;;
        gate_redis_miss) echo "redis /g unique" ;;
        gate_full_miss) echo "full /g unique" ;;
        invalid) echo "full /v invalid" ;;
        *) return 1 ;;
    esac
}
for sc in "${scenarios[@]}"; do
    scenario_def "$sc" > /dev/null || die "unknown scenario '$sc'"
done

mkdir -p "$dir"
exec 9> "$dir/lock"
flock -n 9 || die "another bench/ab.sh runs in this worktree ($dir)"

# --- the two modules

declare -A so desc name
short_of() { git -C "$top" rev-parse --short=12 "$1"; }
subject_of() { git -C "$top" log -1 --format=%s "$1"; }

build_rev() {
    # $1 full sha -> the module's path, built once
    local s src log
    s=$(short_of "$1")
    if [ ! -f "$dir/$s/ngx_http_txval_module.so" ]; then
        src=$dir/src-$s
        log=$dir/$s/build.log
        rm -rf "$src" "$dir/${s:?}"
        mkdir -p "$src" "$dir/$s"
        git -C "$top" archive "$1" | tar -x -C "$src"
        [ -f "$src/Makefile" ] || die "$s has no Makefile"
        echo "ab: building $s ($(subject_of "$1")), log: $log" >&2
        # that tree's own make, unaware of this one's make and settings
        if ! env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL -u TXVAL_MODULE \
                -u NGINX_BIN -u NGINX_SRC -u SANITIZE make -C "$src" > "$log" 2>&1; then
            tail -20 "$log" >&2
            die "building $s failed (log: $log)"
        fi
        cp "$src/build/ngx_http_txval_module.so" "$dir/$s/module.tmp"
        mv "$dir/$s/module.tmp" "$dir/$s/ngx_http_txval_module.so"
        rm -rf "$src"
    fi
    echo "$dir/$s/ngx_http_txval_module.so"
}

resolve() {
    # $1 side (a, b), $2 argument: a revision, a .so, or empty (the
    # working tree's build)
    local side=$1 arg=$2 f dirty=""
    if [ -z "$arg" ]; then
        f=${TXVAL_MODULE:-$top/build/ngx_http_txval_module.so}
        [ -f "$f" ] || die "no module at $f: run make (or make bench-ab)"
        if [ -n "$(find "$top/ngx_http_txval_module" "$top/config" -newer "$f" \
                   -type f 2> /dev/null | head -1)" ]; then
            echo "ab: warning: $f is older than the sources: make first" >&2
        fi
        [ -n "$(git -C "$top" status --porcelain --untracked-files=no \
                    -- ngx_http_txval_module config)" ] \
            && dirty=", with uncommitted changes to the module"
        # a copy: a make during the run does not change what is measured
        mkdir -p "$run"
        cp "$f" "$run/worktree-$side.so"
        so[$side]=$run/worktree-$side.so
        name[$side]="working tree"
        desc[$side]="the working tree's build ($f): HEAD $(short_of HEAD) $(subject_of HEAD)$dirty"
    elif [ -f "$arg" ]; then
        so[$side]=$(realpath "$arg")
        name[$side]=$arg
        desc[$side]="the module $arg"
    else
        f=$(git -C "$top" rev-parse --verify -q "$arg^{commit}") \
            || die "'$arg' is neither a revision nor a file"
        so[$side]=$(build_rev "$f")
        name[$side]=$(short_of "$f")
        desc[$side]="$(short_of "$f") $(subject_of "$f")"
    fi
}

rm -rf "$run"
resolve a "${1:-${AB_A:-HEAD~1}}"
resolve b "${2:-${AB_B:-}}"

# --- servers

# shellcheck source=scripts/services.sh
. "$top/scripts/services.sh"

wrk_pid=""
cg_pid=""
instances=(a_full a_redis b_full b_redis)

alive() {
    # $1 pid: running (a zombie, exited but not reaped yet, is not)
    local st
    st=$(sed 's/.*) //' "/proc/$1/stat" 2> /dev/null | cut -d" " -f1)
    [ -n "$st" ] && [ "$st" != Z ]
}

stop_all() {
    local i m
    [ -n "$wrk_pid" ] && kill "$wrk_pid" 2> /dev/null
    if [ -n "$cg_pid" ]; then
        kill "$cg_pid" 2> /dev/null
        wait "$cg_pid" 2> /dev/null
    fi
    for i in "${instances[@]}"; do
        [ -f "$run/$i/logs/nginx.pid" ] || continue
        m=$(cat "$run/$i/logs/nginx.pid")
        "$nginx" -p "$run/$i/" -c conf/nginx.conf -s stop 2> /dev/null
        for _ in $(seq 50); do
            alive "$m" || break
            sleep 0.1
        done
    done
    txval_redis_stop "$run/redis"
    txval_pg_stop "$pgdir"
    return 0
}
# a Postgres cluster per version of the schema and seed, kept between runs
pgdir=$dir/pg-$(cat "$top"/docker/initdb/*.sql | sha1sum | cut -c1-12)

trap stop_all EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

for d in "$dir"/pg-*; do
    case $d in "$pgdir"|"$pgdir".*) ;; *) rm -rf "$d" ;; esac
done
txval_redis_start "$redis_port" "$run/redis"
txval_pg_start "$pg_port" "$pgdir"

port_of() {
    # $1 instance -> its port
    case $1 in
        a_full) echo "$base" ;;
        a_redis) echo "$((base + 1))" ;;
        b_full) echo "$((base + 2))" ;;
        b_redis) echo "$((base + 3))" ;;
    esac
}

instance() {
    # $1 instance (side_kind): the same configuration for A and B, their
    # own module, zone name and Redis prefix
    local i=$1 side=${1%_*} kind=${1#*_} d=$run/$1 port up backend=""
    port=$(port_of "$i")
    up=$((port + 6))
    if [ "$kind" = full ]; then
        backend="    txval_cache_zone ab_$side:64m ttl=1h;
    txval_postgres \"$conninfo\" pool=8;"
    fi
    mkdir -p "$d/conf" "$d/logs" "$d/tmp"
    cat > "$d/conf/nginx.conf" <<EOC
load_module ${so[$side]};
worker_processes 2;
error_log logs/error.log warn;
pid logs/nginx.pid;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $d/tmp/body;
    proxy_temp_path $d/tmp/proxy;
    keepalive_requests 1000000;
    txval_redis 127.0.0.1:$redis_port prefix=ab$side:;
    txval_amount_limit USD 100 500000;
    txval_velocity 100000000 60s;
$backend
    upstream trivial {
        server 127.0.0.1:$up;
        keepalive 64;
    }
    server {
        listen 127.0.0.1:$up backlog=4096;
        location / { return 200 "ok\n"; }
    }
    server {
        listen 127.0.0.1:$port backlog=4096;
        location = /bare { return 200 "ok\n"; }
        location = /v { txval; }
        location = /g {
            txval_gate;
            proxy_pass http://trivial/ok;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }
}
EOC
    "$nginx" -p "$d/" -c conf/nginx.conf 2> "$d/logs/start.log" || {
        cat "$d/logs/start.log" >&2
        die "nginx $i (${so[$side]}) did not start"
    }
    for _ in $(seq 100); do
        [ -s "$d/logs/nginx.pid" ] \
            && curl -s -o /dev/null "http://127.0.0.1:$port/bare" && return 0
        sleep 0.1
    done
    die "nginx $i does not answer on $port"
}

for i in "${instances[@]}"; do instance "$i"; done

workers() {
    pgrep -P "$(cat "$run/$1/logs/nginx.pid")" | sort -n | tr '\n' ' '
}

ticks() {
    # utime + stime of the pids, in clock ticks
    local pid s=0
    for pid in "$@"; do
        [ -r "/proc/$pid/stat" ] || continue
        s=$((s + $(sed 's/.*) //' "/proc/$pid/stat" | awk '{print $12 + $13}')))
    done
    echo "$s"
}

pg_ticks() {
    # the postmaster, its reaped children and its live backends
    local pm s
    pm=$(head -1 "$pgdir/postmaster.pid")
    s=$(sed 's/.*) //' "/proc/$pm/stat" | awk '{print $12 + $13 + $14 + $15}')
    # shellcheck disable=SC2046
    echo $((s + $(ticks $(pgrep -P "$pm"))))
}

# --- the same answers from both before the load; primes the replayed id
# (shm and Redis of each side)

replay_body='{"id":"tx_bench_replay","amount":2500,"currency":"USD","merchant_id":"m_acme","card_token":"tok_4242","card_bin":"424242","country":"US"}'
decline_body='{"id":"tx_bench_decline_'$run_id'","amount":600000,"currency":"USD","merchant_id":"m_acme","card_token":"tok_4242","country":"US"}'
invalid_body='{"id":"tx_bench_bad","amount":2500'

check() {
    # $1 instance, $2 path, $3 body, $4 expected status
    local code
    code=$(curl -s -o "$run/resp" -w '%{http_code}' -H 'Content-Type: application/json' \
                -d "$3" "http://127.0.0.1:$(port_of "$1")$2" || true)
    [ "$code" = "$4" ] \
        || die "$1 $2: expected $4, got $code: $(head -c 300 "$run/resp" 2> /dev/null)"
}

for side in a b; do
    check "${side}_full" /v "$replay_body" 200
    check "${side}_full" /v "$replay_body" 200
    check "${side}_redis" /v "$replay_body" 200
    check "${side}_full" /g "$replay_body" 200
    check "${side}_redis" /g "$replay_body" 200
    check "${side}_full" /v "$decline_body" 402
    check "${side}_full" /v "$invalid_body" 400
done

declare -A wpids
for i in "${instances[@]}"; do wpids[$i]=$(workers "$i"); done

# --- one cell

declare -A cell
measure() {
    # $1 side, $2 scenario, $3 seconds, $4 tag (the round; "w": warm-up,
    # not kept); appends "rps p99_us errors cpu_us redis_us pg_us
    # requests" to cell[$2/$1]
    local side=$1 sc=$2 s=$3 tag=$4 kind path mode inst pids f
    local c0 r0 p0 c1 r1 p1 n rps p99 err line
    read -r kind path mode <<< "$(scenario_def "$sc")"
    inst=${side}_$kind
    read -r -a pids <<< "${wpids[$inst]}"
    f=$run/cells/$sc.$side.$tag
    mkdir -p "$run/cells"
    c0=$(ticks "${pids[@]}"); r0=$(ticks "$(cat "$run/redis/redis.pid")"); p0=$(pg_ticks)
    TXVAL_BENCH_MODE=$mode TXVAL_BENCH_THREADS=2 \
        TXVAL_BENCH_RUN=$run_id$side$tag${sc//_/} \
        wrk -t2 -c"$conns" -d"${s}s" --timeout 2s -s "$top/bench/wrk.lua" \
            "http://127.0.0.1:$(port_of "$inst")$path" > "$f" 2>&1 &
    wrk_pid=$!
    wait "$wrk_pid" || true
    wrk_pid=""
    c1=$(ticks "${pids[@]}"); r1=$(ticks "$(cat "$run/redis/redis.pid")"); p1=$(pg_ticks)
    [ "$tag" = w ] && return 0
    v() { awk -v k="$1" '$1 == "TXVAL" && $2 == k {print $3}' "$f"; }
    n=$(v requests); rps=$(v rps); p99=$(v p99_us)
    if [ -z "$n" ] || [ "$n" -eq 0 ]; then
        echo "ab: $sc/$side round $tag: no requests (see $f)" >&2
        n=0 rps=0 p99=0
    fi
    if [ "$mode" = invalid ]; then
        err=$(( $(v unexpected) + $(v socket_errors) ))
    else
        err=$(( $(v status_errors) + $(v socket_errors) ))
    fi
    line=$(awk -v rps="$rps" -v p99="$p99" -v err="$err" -v n="$n" -v hz="$hz" \
               -v c="$((c1 - c0))" -v r="$((r1 - r0))" -v p="$((p1 - p0))" \
        'function us(t) { return n ? t / hz * 1e6 / n : 0 }
         BEGIN {printf "%.0f %d %d %.2f %.2f %.2f %d\n",
                rps, p99, err, us(c), us(r), us(p), n}')
    cell[$sc/$side]+="$line"$'\n'
    printf 'ab: round %s  %-16s %s %8.0f req/s  p99 %7.2f ms  err %-4s cpu %6s us/req\n' \
        "$tag" "$sc" "${side^^}" "$rps" "$(awk -v x="$p99" 'BEGIN {print x / 1000}')" \
        "$err" "$(echo "$line" | awk '{print $4}')" >&2
}

if [ "$warmup" -gt 0 ]; then
    echo "ab: warm-up, ${warmup}s per scenario and side" >&2
    for sc in "${scenarios[@]}"; do
        measure a "$sc" "$warmup" w
        measure b "$sc" "$warmup" w
    done
fi

for r in $(seq 1 "$rounds"); do
    echo "ab: round $r of $rounds (${secs}s per cell)" >&2
    if [ $((r % 2)) = 1 ]; then sides="a b"; else sides="b a"; fi
    for sc in "${scenarios[@]}"; do
        for side in $sides; do
            measure "$side" "$sc" "$secs" "$r"
        done
    done
done

load_end=$(cut -d" " -f1-3 /proc/loadavg)
t_end=$SECONDS

# a worker that died during the run was replaced by its master: a crash
broken=""
for i in "${instances[@]}"; do
    [ "$(workers "$i")" = "${wpids[$i]}" ] \
        || broken+="the workers of $i (${so[${i%_*}]}) changed during the run: a crash? see $run/$i/logs/error.log. "
done
declare -A alerts
for side in a b; do
    alerts[$side]=$(cat "$run/${side}_full/logs/error.log" "$run/${side}_redis/logs/error.log" \
                    | grep -c -E '\[(alert|crit|emerg)\]|exited on signal' || true)
done

# --- callgrind: instructions per request, each module alone

declare -A cg
cg_labels=()
if [ "$do_callgrind" = 1 ]; then
    for side in a b; do
        echo "ab: callgrind, ${side^^} (${cg_secs}s per path)" >&2
        TXVAL_MODULE=${so[$side]} NGINX_BIN=$nginx BENCH_PORT=$((base + 10)) \
            CALLGRIND_DIR=$run/callgrind-$side CALLGRIND_LUA=0 CALLGRIND_TOP=0 \
            "$top/bench/callgrind.sh" "$cg_secs" > "$run/callgrind-$side.txt" 2>&1 &
        cg_pid=$!
        if ! wait "$cg_pid"; then
            cg_pid=""
            cat "$run/callgrind-$side.txt" >&2
            die "bench/callgrind.sh failed on ${so[$side]}"
        fi
        cg_pid=""
        while IFS='|' read -r label ir; do
            [ -n "${cg[$label/a]:-}${cg[$label/b]:-}" ] || cg_labels+=("$label")
            cg[$label/$side]=$ir
        done < <(sed -nE 's/^  (.*[^ ]) +([0-9]+) instructions\/request.*/\1|\2/p' \
                     "$run/callgrind-$side.txt")
    done
fi

trap - EXIT
stop_all

# --- the report

median() {
    # $1 cell key, $2 field -> the median over the rounds
    [ -n "${cell[$1]:-}" ] || { echo "-"; return; }
    printf '%s' "${cell[$1]}" | awk -v f="$2" '{print $f}' | sort -g \
        | awk '{a[NR] = $1}
               END {if (NR % 2) print a[(NR + 1) / 2]
                    else print (a[NR / 2] + a[NR / 2 + 1]) / 2}'
}
total() { printf '%s' "${cell[$1]:-}" | awk -v f="$2" '{s += $f} END {print s + 0}'; }
ratio() {
    # $1 A, $2 B [, $3 below which A and B are noise (no ratio)]
    awk -v a="$1" -v b="$2" -v min="${3:-0}" \
        'BEGIN {if (a == "-" || b == "-" || a == 0 || (a < min && b < min)) print "-"
                else printf "%.3f", b / a}'
}
fmt() {
    # $1 value, $2 printf format
    awk -v x="$1" -v f="$2" 'BEGIN {if (x == "-") print "-"; else printf f, x}'
}
ms() { awk -v x="$1" 'BEGIN {if (x == "-") print "-"; else printf "%.2f", x / 1000}'; }

cmd="AB_ROUNDS=$rounds AB_SECONDS=$secs AB_CONNECTIONS=$conns AB_WARMUP=$warmup"
cmd+=" AB_SCENARIOS=\"${scenarios[*]}\""
[ "$do_callgrind" = 1 ] && cmd+=" AB_CALLGRIND=1 AB_CALLGRIND_SECONDS=$cg_secs"
cmd+=" bench/ab.sh ${name[a]}"
[ "${name[b]}" = "working tree" ] || cmd+=" ${name[b]}"

busy=""
if awk -v l="${load_start%% *}" 'BEGIN {exit !(l > 0.5)}'; then
    busy="**WARNING: the load average at the start was ${load_start%% *} (> 0.5): the machine was busy, these numbers are not to be trusted.**"
    echo "ab: WARNING: load average at start ${load_start%% *} > 0.5: the machine is busy, the numbers are not to be trusted" >&2
fi

report() {
    local sc k a b
    echo "# txval A/B: ${name[a]} vs ${name[b]}"
    echo
    [ -n "$busy" ] && { echo "$busy"; echo; }
    [ -n "$broken" ] && { echo "**BROKEN: $broken**"; echo; }
    echo "- A: ${desc[a]}"
    echo "- B: ${desc[b]}"
    echo "- Command: \`$cmd\` (as invoked: \`$invoked\`)"
    echo "- Machine: $(nproc) cores ($(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)),"
    echo "  Linux $(uname -r), nginx $("$nginx" -v 2>&1 | sed 's|.*/||'); load average"
    echo "  (1, 5, 15 min) at the start $load_start, at the end $load_end; $((t_end - t_start))s"
    echo "- Each cell ${secs}s of \`wrk -t2 -c$conns\` (bench/wrk.lua); $rounds rounds, A and B"
    echo "  back to back per scenario, the order flipped every round (ABBA);"
    echo "  medians over the rounds, errors summed. CPU: utime + stime of the"
    echo "  serving nginx's 2 workers over the requests wrk counted. B/A above 1"
    echo "  is better for req/s, below 1 for p99 and CPU."
    echo
    echo "| scenario | req/s A | req/s B | B/A | p99 ms A | p99 ms B | B/A | CPU µs/req A | CPU µs/req B | B/A | errors A | errors B |"
    echo "|---|---|---|---|---|---|---|---|---|---|---|---|"
    for sc in "${scenarios[@]}"; do
        a=$sc/a b=$sc/b
        echo "| $sc | $(fmt "$(median "$a" 1)" %.0f) | $(fmt "$(median "$b" 1)" %.0f) | $(ratio "$(median "$a" 1)" "$(median "$b" 1)") | $(ms "$(median "$a" 2)") | $(ms "$(median "$b" 2)") | $(ratio "$(median "$a" 2)" "$(median "$b" 2)") | $(fmt "$(median "$a" 4)" %.1f) | $(fmt "$(median "$b" 4)" %.1f) | $(ratio "$(median "$a" 4)" "$(median "$b" 4)") | $(total "$a" 3) | $(total "$b" 3) |"
    done
    echo
    echo "Backends, CPU µs per request (medians; no ratio below 1 µs):"
    echo
    echo "| scenario | Redis A | Redis B | B/A | Postgres A | Postgres B | B/A |"
    echo "|---|---|---|---|---|---|---|"
    for sc in "${scenarios[@]}"; do
        a=$sc/a b=$sc/b
        echo "| $sc | $(fmt "$(median "$a" 5)" %.1f) | $(fmt "$(median "$b" 5)" %.1f) | $(ratio "$(median "$a" 5)" "$(median "$b" 5)" 1) | $(fmt "$(median "$a" 6)" %.1f) | $(fmt "$(median "$b" 6)" %.1f) | $(ratio "$(median "$a" 6)" "$(median "$b" 6)" 1) |"
    done
    echo
    echo "req/s per round, rounds 1..$rounds (the spread is the noise):"
    echo
    echo "| scenario | A | B |"
    echo "|---|---|---|"
    for sc in "${scenarios[@]}"; do
        for k in a b; do
            printf '%s' "${cell[$sc/$k]:-}" | awk '{printf "%s%.0f", (NR > 1 ? " " : ""), $1}' \
                > "$run/rounds.$k"
        done
        echo "| $sc | $(cat "$run/rounds.a") | $(cat "$run/rounds.b") |"
    done
    if [ ${#cg_labels[@]} -gt 0 ]; then
        echo
        echo "Instructions per request (bench/callgrind.sh $cg_secs, one worker under"
        echo "callgrind, one connection; the nginx process only, not Redis):"
        echo
        echo "| path | A | B | B/A |"
        echo "|---|---|---|---|"
        for k in "${cg_labels[@]}"; do
            echo "| $k | ${cg[$k/a]:--} | ${cg[$k/b]:--} | $(ratio "${cg[$k/a]:--}" "${cg[$k/b]:--}") |"
        done
    fi
    for k in a b; do
        [ "${alerts[$k]}" -gt 0 ] \
            && echo && echo "${k^^}'s error logs: ${alerts[$k]} alert/crit/emerg lines ($run/${k}_*/logs/error.log)."
    done
    return 0
}

if [ -n "$out" ]; then
    report | tee "$out"
else
    report
fi

[ -z "$broken" ] || die "$broken"
