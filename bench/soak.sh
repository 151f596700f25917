#!/usr/bin/env bash
# `make soak`: SOAK_REQUESTS (default 2,000,000) requests of mixed
# transactions through txval, with its backends restarted under it, and
# what the workers hold over the whole run.
#
# One nginx (2 workers) with txval on /v: shm cache zone, Redis, Postgres,
# velocity, fail closed, the pools at their defaults (Redis 16, Postgres 8
# per worker); its own Redis and Postgres under build/soak/. wrk (2 threads,
# SOAK_CONNECTIONS connections) sends faults/load.lua's "soak" mix: of
# every 20 requests 12 new transactions (Redis GET, Postgres lookup,
# velocity INCR+EXPIRE, SET), 5 replays (shm), 1 conflict (409), 1 invalid
# JSON and 1 invalid field (400); each wrk thread stops after its share.
#
# The backends are restarted during the run (SOAK_RESTARTS, default
# "0.25:redis 0.40:pg 0.55:redis 0.70:pg": at 25% of the requests Redis is
# killed (kill -9) and started again a second later, at 40% Postgres is
# restarted (pg_ctl restart -m fast), and again at 55% and 70%; "" for
# none). Requests that need a backend while it is down get 503 (fail
# closed); the pools must heal by themselves.
#
# Every SOAK_INTERVAL seconds (default 3) a sample: requests served so far
# (stub_status), the workers' private RSS (Private_Clean + Private_Dirty of
# smaps_rollup, so the shared zone's pages are not counted), their open
# descriptors (/proc/PID/fd), Redis connected_clients, Postgres backends of
# user txval, the backend round trips that failed so far
# (txval_backend_requests_total{result!="ok"}), and which restart began.
# Written to bench/soak-samples.csv, drawn in bench/soak.png (gnuplot;
# gnuplot-nox is installed with apt-get when missing), and summarised in
# bench/SOAK.md (SOAK_OUT=dir writes those three elsewhere), with the
# lowest and highest of each measure over the whole run.
#
# The verdict (RSS: see the comment at its check, restarts converge):
# warm-up is the first 10% of the requests; the level RSS and
# descriptors (but the backend connections, which the pools open lazily
# and refill after a restart) settled at is the median of the samples
# between 10% and 15% (before the first restart), the end the median of
# the last 3 samples under load (after the last). PASS when both end
# within 2% of where they settled, the same two workers served the whole
# run (no crash, no "exited on signal"), wrk saw no status but 200, 402,
# 400, 409 (and 503, counted) and no socket error, the connection counts
# never went above workers x pool, and the pools healed: after the last
# restart, both backends have connections again and no backend round trip
# failed in the last 3 samples.
#
#   SOAK_REQUESTS=1000000 make soak        a short round (about a minute:
#                                          fewer, and the last restart is
#                                          too close to the end to heal)
#   SOAK_REQUESTS=200000 SOAK_RESTARTS= make soak   memory only
#   SOAK_PORT=18680 (nginx; Redis +2, Postgres +3)  SOAK_CONNECTIONS=8

set -uo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
module=${TXVAL_MODULE:-$top/build/ngx_http_txval_module.so}
nginx=${NGINX_BIN:-/usr/sbin/nginx}
total=${SOAK_REQUESTS:-2000000}
interval=${SOAK_INTERVAL:-3}
conns=${SOAK_CONNECTIONS:-8}
base=${SOAK_PORT:-18680}
port=$base
redis_port=$((base + 2))
pg_port=$((base + 3))
out=${SOAK_OUT:-$top/bench}
dir=$top/build/soak
workers=2
rpool=16
ppool=8
threads=2
run=$(date +%s)
started=$SECONDS
restarts=${SOAK_RESTARTS-0.25:redis 0.40:pg 0.55:redis 0.70:pg}

for tool in redis-server redis-cli wrk curl; do
    command -v "$tool" > /dev/null || { echo "soak: $tool is missing" >&2; exit 2; }
done
[ -f "$module" ] || { echo "soak: no module at $module (make first)" >&2; exit 2; }

if ! command -v gnuplot > /dev/null; then
    echo "soak: installing gnuplot-nox (apt-get)"
    sudo=""
    [ "$(id -u)" -ne 0 ] && sudo=sudo
    export DEBIAN_FRONTEND=noninteractive
    $sudo apt-get install -y -qq gnuplot-nox > /dev/null 2>&1 \
        || { $sudo apt-get update -qq > /dev/null 2>&1 \
             && $sudo apt-get install -y -qq gnuplot-nox > /dev/null 2>&1; } \
        || { echo "soak: could not install gnuplot-nox" >&2; exit 2; }
fi

# shellcheck source=scripts/services.sh
. "$top/scripts/services.sh"

now() { date +%s.%N | cut -c1-14; }

ng="$nginx -p $dir/nginx/ -c conf/nginx.conf"
pids=()

master() { cat "$dir/nginx/logs/nginx.pid" 2>/dev/null; }

nginx_workers() {
    local m
    m=$(master) || return 0
    [ -n "$m" ] && pgrep -P "$m" 2>/dev/null
}

# (run by the EXIT trap)
# shellcheck disable=SC2317
cleanup() {
    local p m
    for p in "${pids[@]}"; do
        kill "$p" 2>/dev/null
    done
    if m=$(master) && [ -n "$m" ] && kill -0 "$m" 2>/dev/null; then
        $ng -s stop 2>/dev/null
        for _ in $(seq 50); do kill -0 "$m" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$m" 2>/dev/null
    fi
    txval_redis_stop "$dir/redis"
    txval_pg_stop "$dir/pg"
}
trap cleanup EXIT
trap 'echo "soak: interrupted" >&2; exit 130' INT TERM

rm -rf "$dir/nginx"
mkdir -p "$dir/nginx/conf" "$dir/nginx/logs" "$dir/nginx/tmp" "$out"

txval_redis_start "$redis_port" "$dir/redis" || exit 2
txval_pg_start "$pg_port" "$dir/pg" || exit 2

cat > "$dir/nginx/conf/nginx.conf" <<EOC
load_module $module;
worker_processes $workers;
error_log logs/error.log warn;
pid logs/nginx.pid;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $dir/nginx/tmp;
    txval_cache_zone soak:64m ttl=10m;
    txval_redis 127.0.0.1:$redis_port prefix=soak$run: pool=$rpool;
    txval_postgres "host=127.0.0.1 port=$pg_port dbname=txval user=txval password=txval"
                   pool=$ppool;
    txval_velocity 100000000 60s;
    txval_fail_mode closed;
    txval_amount_limit USD 1 1000000;
    server {
        listen 127.0.0.1:$port backlog=4096;
        keepalive_requests 100000000;
        location = /v { txval; }
        location = /status { stub_status; }
        location = /metrics { txval_metrics; }
    }
}
EOC

$ng || exit 2
for _ in $(seq 50); do
    curl -s -o /dev/null "http://127.0.0.1:$port/status" && break
    sleep 0.1
done

workers_at_start=$(nginx_workers | sort | paste -sd' ')

served() {
    curl -s --max-time 2 "http://127.0.0.1:$port/status" | awk 'NR == 3 {print $3}'
}

# the workers' own memory: private pages (Private_Clean + Private_Dirty)
# of every mapping but the shared zones. A zone page only one worker has
# touched is "private" to it in smaps_rollup, so the cache zone filling up
# would look like growth; the zones are anonymous shared mappings
# ("/dev/zero (deleted)") and are counted apart, by PSS, in zone_kb
rss_kb() {
    local pid s=0 v
    for pid in $(nginx_workers); do
        v=$(awk '/^[0-9a-f]+-[0-9a-f]+ / {zone = ($6 == "/dev/zero" || $6 ~ /^SYSV/)}
                 !zone && /^Private_(Clean|Dirty):/ {s += $2}
                 END {print s + 0}' "/proc/$pid/smaps" 2>/dev/null)
        s=$((s + ${v:-0}))
    done
    echo "$s"
}

# the shared zones' resident pages, master and workers together (PSS adds
# up to each page once)
zone_kb() {
    local pid s=0 v
    for pid in $(master) $(nginx_workers); do
        v=$(awk '/^[0-9a-f]+-[0-9a-f]+ / {zone = ($6 == "/dev/zero" || $6 ~ /^SYSV/)}
                 zone && /^Pss:/ {s += $2}
                 END {print s + 0}' "/proc/$pid/smaps" 2>/dev/null)
        s=$((s + ${v:-0}))
    done
    echo "$s"
}

fds() {
    local pid s=0
    for pid in $(nginx_workers); do
        s=$((s + $(find "/proc/$pid/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l)))
    done
    echo "$s"
}

redis_clients() {
    local n
    n=$(timeout 2 redis-cli -p "$redis_port" info clients 2>/dev/null \
        | awk -F: '/^connected_clients:/ {print $2 - 1}')
    echo "${n:--1}"
}

pg_backends() {
    local n
    n=$(txval_pg_as timeout 3 psql -q -X -At -h "$(txval_pg_dir "$dir/pg")" -p "$pg_port" \
            -U postgres -d txval \
            -c "SELECT count(*) FROM pg_stat_activity WHERE usename = 'txval'" \
            2>/dev/null)
    echo "${n:--1}"
}

# backend round trips that failed so far, all workers
backend_failures() {
    local n
    n=$(curl -s --max-time 2 "http://127.0.0.1:$port/metrics" \
        | awk '/^txval_backend_requests_total\{/ && !/result="ok"/ {s += $2}
               END {print s + 0}')
    echo "${n:--1}"
}

# a restart, in the background so that the samples go on meanwhile; its
# log in $dir/restart-N.log, "N name start end" appended to $dir/restarts
restart() {
    local n=$1 what=$2 a b
    a=$(now)
    case $what in
        redis)
            kill -9 "$(cat "$dir/redis/redis.pid")"
            sleep 1
            txval_redis_start "$redis_port" "$dir/redis"
            ;;
        pg)
            txval_pg_as "$TXVAL_PG_BIN/pg_ctl" -D "$(txval_pg_dir "$dir/pg")" \
                -m fast -w restart
            ;;
    esac
    b=$(now)
    echo "$n $what $a $b" >> "$dir/restarts"
}

csv=$out/soak-samples.csv
t0=$(now)
rm -f "$dir/restarts" "$dir"/restart-*.log

# event: the restart that began right after this sample, if any
sample() {
    local t
    t=$(awk -v a="$t0" -v b="$(now)" 'BEGIN {printf "%.1f", b - a}')
    echo "$t,$(served),$(rss_kb),$(fds),$(redis_clients),$(pg_backends),$(zone_kb),$(backend_failures),${1:-}"
}

echo "elapsed_s,requests,worker_private_rss_kb,worker_fds,redis_clients,pg_backends,zone_pss_kb,backend_failures,event" > "$csv"
sample "" >> "$csv"

echo "soak: $total requests, $conns connections, sampling every ${interval}s" \
     "(nginx :$port, Redis :$redis_port, Postgres :$pg_port)"
echo "soak: restarts at${restarts:+ }${restarts:- none}"

# the restarts still to come: "at_requests name"
pending=()
for r in $restarts; do
    pending+=("$(awk -v f="${r%%:*}" -v t="$total" 'BEGIN {printf "%d", f * t}') ${r#*:}")
done
nrestart=0

limit=$(( (total + threads - 1) / threads ))
TXVAL_RUN="$run" TXVAL_MIX=soak TXVAL_LIMIT=$limit \
    wrk -t"$threads" -c"$conns" -d24h --timeout 5s -s "$top/faults/load.lua" \
    "http://127.0.0.1:$port/v" > "$dir/wrk.out" 2>&1 &
wrk_pid=$!
pids+=("$wrk_pid")

# each wrk thread stops after its share, but wrk itself only ends at -d
# or on SIGINT (then it prints its counts): sent once nginx has served them
# all (stub_status counts the samples' own requests too)
last_report=0
polls=1
while kill -0 "$wrk_pid" 2>/dev/null; do
    sleep "$interval"
    line=$(sample "")
    polls=$((polls + 1))
    n=$(echo "$line" | cut -d, -f2)
    if [ ${#pending[@]} -gt 0 ] && [ "$n" -ge "${pending[0]%% *}" ]; then
        what=${pending[0]#* }
        pending=("${pending[@]:1}")
        nrestart=$((nrestart + 1))
        line="$line$what"
        echo "  restarting $what at $n requests"
        restart "$nrestart" "$what" > "$dir/restart-$nrestart.log" 2>&1 &
        pids+=("$!")
    fi
    echo "$line" >> "$csv"
    if [ "$(( n / (total / 10) ))" -gt "$last_report" ]; then
        last_report=$(( n / (total / 10) ))
        echo "  $line"
    fi
    if [ "$((n - polls))" -ge "$total" ]; then
        kill -INT "$wrk_pid" 2>/dev/null
        break
    fi
done
wait "$wrk_pid"
wait_restarts=0
while [ "$(wc -l < "$dir/restarts" 2>/dev/null || echo 0)" -lt "$nrestart" ] \
      && [ "$wait_restarts" -lt 60 ]; do
    sleep 1
    wait_restarts=$((wait_restarts + 1))
done
elapsed=$(awk -v a="$t0" -v b="$(now)" 'BEGIN {printf "%.0f", b - a}')

# one more sample, idle: what the workers keep once the load is gone
sleep "$interval"
idle=$(sample "")

workers_at_end=$(nginx_workers | sort | paste -sd' ')

status=0
verdict() {
    echo "$*"
    summary+=("$*")
}
summary=()

# the levels: settled after warm-up (10% .. 15% of the requests), and at
# the end (the last 3 samples under load: fewer requests than the total
# served); medians. Descriptors are judged without the backend
# connections (Redis clients and Postgres backends, counted on the
# servers' side): the pools grow to their size lazily and refill after a
# restart, which is not a leak; a socket the workers kept after its
# server dropped it would show here
read -r rss_settled fds_settled rss_end fds_end rmax pmax nsamples < <(
    awk -F, -v total="$total" '
        NR == 1 { next }
        { n++; req[n] = $2; rss[n] = $3
          fd[n] = $4 - ($5 > 0 ? $5 : 0) - ($6 > 0 ? $6 : 0)
          if ($5 > rmax) rmax = $5; if ($6 > pmax) pmax = $6 }
        function median(a, from, to,   i, j, k, t, m, b) {
            m = 0
            for (i = from; i <= to; i++) b[++m] = a[i]
            for (i = 2; i <= m; i++) { t = b[i]; j = i - 1
                while (j >= 1 && b[j] > t) { b[j + 1] = b[j]; j-- }
                b[j + 1] = t }
            return m ? b[int((m + 1) / 2)] : -1
        }
        END {
            for (i = 1; i <= n; i++) {
                if (!from && req[i] >= 0.10 * total) from = i
                if (req[i] <= 0.15 * total) to = i
            }
            if (to < from) to = from
            # the end: the last samples taken while the load ran
            for (i = 1; i <= n; i++) if (req[i] < total) last = i
            if (!last) last = n
            first = last - 2; if (first < 1) first = 1
            print median(rss, from, to), median(fd, from, to),
                  median(rss, first, last), median(fd, first, last),
                  rmax + 0, pmax + 0, n
        }' "$csv")

# over the whole run after warm-up (10% of the requests): the lowest and
# highest of each measure; and the last 3 samples under load (the healing)
read -r rss_min rss_max fds_min fds_max r_min r_max p_min p_max \
        last_r last_p fail_first fail_last r_down p_down < <(
    awk -F, -v total="$total" '
        NR == 1 { next }
        $2 >= 0.10 * total && $2 < total {
            m++
            if (m == 1 || $3 < a1) a1 = $3; if ($3 > a2) a2 = $3
            if (m == 1 || $4 < b1) b1 = $4; if ($4 > b2) b2 = $4
            # -1: the server did not answer (down, restarting)
            if ($5 < 0) rdown++; else { if (!cn++ || $5 < c1) c1 = $5; if ($5 > c2) c2 = $5 }
            if ($6 < 0) pdown++; else { if (!dn++ || $6 < d1) d1 = $6; if ($6 > d2) d2 = $6 }
        }
        $2 < total { k++; r[k] = $5; p[k] = $6; f[k] = $8 }
        END {
            first = k - 2; if (first < 1) first = 1
            lr = r[k]; lp = p[k]
            for (i = first; i <= k; i++) {
                if (r[i] < lr) lr = r[i]; if (p[i] < lp) lp = p[i]
            }
            print a1 + 0, a2 + 0, b1 + 0, b2 + 0, c1 + 0, c2 + 0, d1 + 0,
                  d2 + 0, lr + 0, lp + 0, f[first] + 0, f[k] + 0, rdown + 0,
                  pdown + 0
        }' "$csv")

restart_lines=()
declare -A grew_first grew_last grew_times
rss_after_last=""
if [ -f "$dir/restarts" ]; then
    while read -r rn rwhat ra rb; do
        # the requests served and the workers' RSS when it began, and the
        # RSS two samples later
        read -r at rss_a rss_b < <(awk -F, -v n="$rn" '
            NR > 1 { i++; req[i] = $2; rss[i] = $3
                     if ($9 != "" && ++k == n) at = i }
            END { b = at + 2; if (b > i) b = i; print req[at], rss[at], rss[b] }' "$csv")
        restart_lines+=("$rwhat restarted at $at requests, back after $(awk -v a="$ra" -v b="$rb" 'BEGIN {printf "%.1f", b - a}') s; workers' private RSS $rss_a kB before, $rss_b kB two samples later")
        # what each kind of restart added, its first time and its last
        [ -n "${grew_first[$rwhat]:-}" ] || grew_first[$rwhat]=$((rss_b - rss_a))
        grew_last[$rwhat]=$((rss_b - rss_a))
        grew_times[$rwhat]=$(( ${grew_times[$rwhat]:-0} + 1 ))
        rss_after_last=$rss_b
    done < <(sort -n "$dir/restarts")
fi

pct() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%+.2f", (b - a) * 100 / a}'; }
within() { awk -v a="$1" -v b="$2" 'BEGIN {d = (b - a) / a; exit !(d <= 0.02 && d >= -0.02)}'; }

served_total=$(echo "$idle" | cut -d, -f2)
rate=$(awk -v n="$served_total" -v t="$elapsed" 'BEGIN {printf "%.0f", n / t}')

statuses=$(grep '^wrk-status' "$dir/wrk.out" | sort -k2n | awk '{printf "%s%s=%s", (NR > 1 ? " " : ""), $2, $3}')
errors=$(grep '^wrk-errors' "$dir/wrk.out" | cut -d' ' -f2-)

echo
echo "soak: $served_total requests in ${elapsed}s ($rate/s), $nsamples samples"
echo "  wrk statuses: $statuses; socket errors: $errors"

# Memory: flat under the load, and restarts that do not leak. A
# restart frees and makes connections anew (libpq's buffers, TLS
# contexts); the allocator keeps some of what was freed, so the first
# restarts of a kind raise the workers' RSS a little, and then no more
# (with 8 Postgres restarts: +72, +56, +20, +16, then 0 kB four times).
# A leak would add the same again every time. So: within 2% of where it
# settled (no restart asked for), or of where it stood after the last
# restart; and each kind of restart adds no more the last time than the
# first (give or take half a percent).
if [ -z "$rss_after_last" ]; then
    if within "$rss_settled" "$rss_end"; then
        verdict "PASS worker private RSS: settled $rss_settled kB, end $rss_end kB ($(pct "$rss_settled" "$rss_end")%)"
    else
        verdict "FAIL worker private RSS: settled $rss_settled kB, end $rss_end kB ($(pct "$rss_settled" "$rss_end")%, more than 2%)"
        status=1
    fi
else
    if within "$rss_after_last" "$rss_end"; then
        verdict "PASS worker private RSS, flat since the last restart: $rss_after_last kB two samples after it, end $rss_end kB ($(pct "$rss_after_last" "$rss_end")%; settled before any restart $rss_settled kB, $(pct "$rss_settled" "$rss_end")% over the run)"
    else
        verdict "FAIL worker private RSS: $rss_after_last kB two samples after the last restart, end $rss_end kB ($(pct "$rss_after_last" "$rss_end")%, more than 2%)"
        status=1
    fi

    # (within half a percent of the RSS: a page or two either way is the
    # sampling's, not a leak's)
    slack=$(( rss_settled / 200 ))
    for k in "${!grew_first[@]}"; do
        if [ "${grew_times[$k]}" -lt 2 ]; then
            # one restart of a kind: nothing to compare it with (the RSS
            # check above still holds it to 2%)
            verdict "n/a $k restarts converge: one $k restart (it added ${grew_first[$k]} kB); two or more are needed to compare the first with the last"
        elif [ "${grew_last[$k]}" -le $(( ${grew_first[$k]} + slack )) ]; then
            verdict "PASS $k restarts converge: ${grew_times[$k]} of them; the first added ${grew_first[$k]} kB, the last ${grew_last[$k]} kB"
        else
            verdict "FAIL $k restarts grow: the first added ${grew_first[$k]} kB, the last ${grew_last[$k]} kB (a leak per restart?)"
            status=1
        fi
    done
fi

if within "$fds_settled" "$fds_end"; then
    verdict "PASS worker descriptors but backend connections: settled $fds_settled, end $fds_end ($(pct "$fds_settled" "$fds_end")%)"
else
    verdict "FAIL worker descriptors but backend connections: settled $fds_settled, end $fds_end ($(pct "$fds_settled" "$fds_end")%, more than 2%)"
    status=1
fi

if [ "$rmax" -le $((workers * rpool)) ] && [ "$pmax" -le $((workers * ppool)) ]; then
    verdict "PASS connections: Redis at most $rmax (pools $((workers * rpool))), Postgres at most $pmax (pools $((workers * ppool)))"
else
    verdict "FAIL connections: Redis at most $rmax (pools $((workers * rpool))), Postgres at most $pmax (pools $((workers * ppool)))"
    status=1
fi

if [ "$nrestart" -eq 0 ]; then
    verdict "PASS healing: no restart asked for (SOAK_RESTARTS is empty)"
elif [ "$(wc -l < "$dir/restarts")" -ne "$nrestart" ]; then
    verdict "FAIL healing: $nrestart restarts begun, $(wc -l < "$dir/restarts") finished"
    status=1
elif [ "$last_r" -gt 0 ] && [ "$last_p" -gt 0 ] && [ "$fail_first" -eq "$fail_last" ]; then
    verdict "PASS healing: $nrestart restarts; in the last 3 samples Redis has at least $last_r and Postgres $last_p connections, and no backend round trip failed ($fail_last failed in all)"
else
    verdict "FAIL healing: in the last 3 samples Redis has $last_r and Postgres $last_p connections at least, backend failures went from $fail_first to $fail_last"
    status=1
fi

crashes=$(grep -c 'exited on signal' "$dir/nginx/logs/error.log")
if [ "$workers_at_start" = "$workers_at_end" ] && [ "$crashes" -eq 0 ]; then
    verdict "PASS workers: the same two ($workers_at_end) from start to end, no crash"
else
    verdict "FAIL workers: $workers_at_start at the start, $workers_at_end at the end, $crashes crashes"
    status=1
fi

bad=$(grep '^wrk-status' "$dir/wrk.out" | awk '$2 !~ /^(200|402|400|409|503)$/ {printf "%s=%s ", $2, $3}')
read -r _ ce _ re _ we _ te < <(echo "$errors")
if [ -z "$bad" ] && [ -n "$statuses" ] && [ -n "$errors" ] \
   && [ "$((ce + re + we + te))" -eq 0 ]; then
    verdict "PASS responses: $statuses, no socket error"
else
    verdict "FAIL responses: ${bad:-$statuses}; socket errors: ${errors:-none reported}"
    status=1
fi

echo "  idle after the run: $idle (elapsed,requests,rss_kb,fds,redis,pg)"
echo "  error.log: $(grep -c '\[error\]' "$dir/nginx/logs/error.log") [error], $(grep -cE '\[(alert|crit|emerg)\]' "$dir/nginx/logs/error.log") [alert]/[crit]/[emerg]"

# the chart; a red dashed line where Redis was restarted, a blue one for
# Postgres
warm=$(awk -v t="$total" 'BEGIN {print t * 0.10 / 1e6}')
marks=$(awk -F, 'NR > 1 && $9 != "" {
            printf "set arrow %d from %f, graph 0 to %f, graph 1 nohead dt 4 lc rgb \"%s\"\n",
                   ++k + 1, $2 / 1e6, $2 / 1e6, ($9 == "redis" ? "red" : "blue") }' "$csv")
gnuplot <<EOG
set terminal pngcairo size 1200,1200 font ",10"
set output "$out/soak.png"
set datafile separator ","
set key bottom right
set offsets 0, 0, graph 0.08, 0
set grid
set xlabel "requests served (millions)"
set multiplot layout 3,2 title "txval soak: $served_total requests, 2 workers, $(date -u +%Y-%m-%d)"
set arrow 1 from $warm, graph 0 to $warm, graph 1 nohead dt 2 lc rgb "gray"
$marks
set title "worker private RSS, shared zones excluded (sum of 2 workers)"
set ylabel "MB"
set yrange [0:*]
plot "$csv" every ::1 using (\$2/1e6):(\$3/1024) with linespoints pt 7 ps 0.4 title "private RSS", \
     $rss_settled/1024.0*1.02 with lines dt 3 lc rgb "red" title "settled +2%", \
     $rss_settled/1024.0*0.98 with lines dt 3 lc rgb "red" title "settled -2%"
set title "worker open descriptors (sum of 2 workers)"
set ylabel "descriptors"
plot "$csv" every ::1 using (\$2/1e6):4 with linespoints pt 7 ps 0.4 title "fds", \
     "$csv" every ::1 using (\$2/1e6):(\$4 - (\$5 > 0 ? \$5 : 0) - (\$6 > 0 ? \$6 : 0)) with linespoints pt 7 ps 0.4 title "fds but backend connections", \
     $fds_settled*1.02 with lines dt 3 lc rgb "red" title "settled +2%", \
     $fds_settled*0.98 with lines dt 3 lc rgb "red" title "settled -2%"
set title "Redis connected clients"
set ylabel "connections"
plot "$csv" every ::1 using (\$2/1e6):5 with linespoints pt 7 ps 0.4 title "Redis", \
     $((workers * rpool)) with lines dt 3 lc rgb "red" title "workers x pool"
set title "Postgres backends (user txval)"
plot "$csv" every ::1 using (\$2/1e6):6 with linespoints pt 7 ps 0.4 title "Postgres", \
     $((workers * ppool)) with lines dt 3 lc rgb "red" title "workers x pool"
set title "shared zones, resident (PSS of master and workers; the cache zone is 64 MB)"
set ylabel "MB"
plot "$csv" every ::1 using (\$2/1e6):(\$7/1024) with linespoints pt 7 ps 0.4 title "zones"
set title "backend round trips failed so far (restarts: red Redis, blue Postgres)"
set ylabel "round trips"
plot "$csv" every ::1 using (\$2/1e6):8 with linespoints pt 7 ps 0.4 title "failed"
unset multiplot
EOG

cat > "$out/SOAK.md" <<EOR
# txval soak

One run of \`make soak\`: $served_total requests through txval in ${elapsed}s
($rate/s), nginx with 2 workers, its own Redis and Postgres on loopback,
wrk ($threads threads, $conns connections) on the same machine. Of every 20
requests: 12 new transactions (Redis GET, Postgres lookup, velocity
INCR+EXPIRE, SET), 5 replays (shm), 1 conflict (409), 1 invalid JSON and
1 invalid field (400). A sample every ${interval}s: [soak-samples.csv](soak-samples.csv),
drawn in [soak.png](soak.png).

Backends restarted under the load (SOAK_RESTARTS="$restarts"; Redis:
kill -9, started again 1 s later; Postgres: pg_ctl restart -m fast):
$(if [ ${#restart_lines[@]} -eq 0 ]; then echo "none."; else for l in "${restart_lines[@]}"; do echo "- $l"; done; fi)

Command: \`$( [ "$total" -eq 2000000 ] && echo "make soak" || echo "SOAK_REQUESTS=$total make soak")\`

Machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GB", $2/1048576}' /proc/meminfo), Linux $(uname -r), nginx $("$nginx" -v 2>&1 | sed 's|.*/||'), $(redis-server --version | awk '{print $1, $3}' | sed 's/v=//'), PostgreSQL $(pg_config --version | awk '{print $2}'), $(date -u +%Y-%m-%d); the machine ran other jobs meanwhile.

RSS is the workers' private pages outside the shared zones (in
smaps_rollup a zone page that one worker alone has touched counts as
private, so the cache zone filling up would look like a leak; the zones
are charted apart, by PSS). Warm-up is the first 10% of the requests;
"settled" is the median of the samples between 10% and 15%, "end" the
median of the last 3 samples under load. The verdict: RSS within 2% of
where it stood after the last restart, and each kind of restart adding no
more the last time than the first (a restart frees and makes connections
anew, and the allocator keeps some of what was freed: the first restarts
raise the RSS a little, then no more; a leak would add the same every
time: with 8 Postgres restarts in one run, +72, +56, +20, +16, then 0 kB
four times); descriptors other than the backend connections within 2% of
where they settled (the pools open those lazily and refill them after a
restart; they are judged against the pools' size instead).

Wall time of the whole \`make soak\` (services, nginx, load, chart):
about $(( SECONDS - started ))s on this machine.

Over the whole run after warm-up, restarts included:

| measure | lowest | highest | settled | end |
|---|---|---|---|---|
| workers' private RSS, kB | $rss_min | $rss_max | $rss_settled | $rss_end |
| workers' descriptors | $fds_min | $fds_max | | |
| the same but backend connections | | | $fds_settled | $fds_end |
| Redis connections (while it answered; $r_down samples while it was down) | $r_min | $r_max | | |
| Postgres connections (while it answered; $p_down samples while it was down) | $p_min | $p_max | | |

$(for l in "${summary[@]}"; do echo "- $l"; done)

wrk statuses: $statuses; socket errors: $errors.
Idle, ${interval}s after the load: $(echo "$idle" | awk -F, '{printf "RSS %s kB, %s descriptors, Redis %s, Postgres %s connections", $3, $4, $5, $6}').

![soak](soak.png)
EOR

echo
echo "soak: $(if [ $status -eq 0 ]; then echo PASS; else echo FAIL; fi)" \
     "($out/soak-samples.csv, $out/soak.png, $out/SOAK.md)"
exit $status
