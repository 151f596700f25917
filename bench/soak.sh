#!/usr/bin/env bash
# `make soak`: SOAK_REQUESTS (default 2,000,000) requests of mixed
# transactions through txval, and what the workers hold while they run.
#
# One nginx (2 workers) with txval on /v: shm cache zone, Redis, Postgres,
# velocity, fail closed, the pools at their defaults (Redis 16, Postgres 8
# per worker); its own Redis and Postgres under build/soak/. wrk (2 threads,
# SOAK_CONNECTIONS connections) sends faults/load.lua's "soak" mix: of
# every 20 requests 12 new transactions (Redis GET, Postgres lookup,
# velocity INCR+EXPIRE, SET), 5 replays (shm), 1 conflict (409), 1 invalid
# JSON and 1 invalid field (400); each wrk thread stops after its share.
#
# Every SOAK_INTERVAL seconds (default 3) a sample: requests served so far
# (stub_status), the workers' private RSS (Private_Clean + Private_Dirty of
# smaps_rollup, so the shared zone's pages are not counted), their open
# descriptors (/proc/PID/fd), Redis connected_clients, Postgres backends of
# user txval. Written to bench/soak-samples.csv, drawn in bench/soak.png
# (gnuplot; gnuplot-nox is installed with apt-get when missing), and
# summarised in bench/SOAK.md (SOAK_OUT=dir writes those three elsewhere).
#
# The verdict: warm-up is the first 10% of the requests; the level RSS and
# descriptors settled at is the median of the samples between 10% and 15%,
# the end the median of the last 3 samples under load. PASS when both end
# within 2% of where they settled, the same two workers served the whole
# run (no crash, no "exited on signal"), wrk saw no status but 200, 402,
# 400, 409 (and 503, counted) and no socket error, and the connection
# counts never went above workers x pool.
#
#   SOAK_REQUESTS=200000 make soak         a short round
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

csv=$out/soak-samples.csv
t0=$(now)

sample() {
    local t
    t=$(awk -v a="$t0" -v b="$(now)" 'BEGIN {printf "%.1f", b - a}')
    echo "$t,$(served),$(rss_kb),$(fds),$(redis_clients),$(pg_backends),$(zone_kb)"
}

echo "elapsed_s,requests,worker_private_rss_kb,worker_fds,redis_clients,pg_backends,zone_pss_kb" > "$csv"
sample >> "$csv"

echo "soak: $total requests, $conns connections, sampling every ${interval}s" \
     "(nginx :$port, Redis :$redis_port, Postgres :$pg_port)"

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
    line=$(sample)
    polls=$((polls + 1))
    echo "$line" >> "$csv"
    n=$(echo "$line" | cut -d, -f2)
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
elapsed=$(awk -v a="$t0" -v b="$(now)" 'BEGIN {printf "%.0f", b - a}')

# one more sample, idle: what the workers keep once the load is gone
sleep "$interval"
idle=$(sample)

workers_at_end=$(nginx_workers | sort | paste -sd' ')

status=0
verdict() {
    echo "$*"
    summary+=("$*")
}
summary=()

# the levels: settled after warm-up (10% .. 15% of the requests), and at
# the end (the last 3 samples under load: fewer requests than the total
# served); medians
read -r rss_settled fds_settled rss_end fds_end rmax pmax nsamples < <(
    awk -F, -v total="$total" '
        NR == 1 { next }
        { n++; req[n] = $2; rss[n] = $3; fd[n] = $4
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

pct() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%+.2f", (b - a) * 100 / a}'; }
within() { awk -v a="$1" -v b="$2" 'BEGIN {d = (b - a) / a; exit !(d <= 0.02 && d >= -0.02)}'; }

served_total=$(echo "$idle" | cut -d, -f2)
rate=$(awk -v n="$served_total" -v t="$elapsed" 'BEGIN {printf "%.0f", n / t}')

statuses=$(grep '^wrk-status' "$dir/wrk.out" | sort -k2n | awk '{printf "%s%s=%s", (NR > 1 ? " " : ""), $2, $3}')
errors=$(grep '^wrk-errors' "$dir/wrk.out" | cut -d' ' -f2-)

echo
echo "soak: $served_total requests in ${elapsed}s ($rate/s), $nsamples samples"
echo "  wrk statuses: $statuses; socket errors: $errors"

if within "$rss_settled" "$rss_end"; then
    verdict "PASS worker private RSS: settled $rss_settled kB, end $rss_end kB ($(pct "$rss_settled" "$rss_end")%)"
else
    verdict "FAIL worker private RSS: settled $rss_settled kB, end $rss_end kB ($(pct "$rss_settled" "$rss_end")%, more than 2%)"
    status=1
fi

if within "$fds_settled" "$fds_end"; then
    verdict "PASS worker descriptors: settled $fds_settled, end $fds_end ($(pct "$fds_settled" "$fds_end")%)"
else
    verdict "FAIL worker descriptors: settled $fds_settled, end $fds_end ($(pct "$fds_settled" "$fds_end")%, more than 2%)"
    status=1
fi

if [ "$rmax" -le $((workers * rpool)) ] && [ "$pmax" -le $((workers * ppool)) ]; then
    verdict "PASS connections: Redis at most $rmax (pools $((workers * rpool))), Postgres at most $pmax (pools $((workers * ppool)))"
else
    verdict "FAIL connections: Redis at most $rmax (pools $((workers * rpool))), Postgres at most $pmax (pools $((workers * ppool)))"
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

# the chart
warm=$(awk -v t="$total" 'BEGIN {print t * 0.10 / 1e6}')
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
set title "worker private RSS, shared zones excluded (sum of 2 workers)"
set ylabel "MB"
set yrange [0:*]
plot "$csv" every ::1 using (\$2/1e6):(\$3/1024) with linespoints pt 7 ps 0.4 title "private RSS", \
     $rss_settled/1024.0*1.02 with lines dt 3 lc rgb "red" title "settled +2%", \
     $rss_settled/1024.0*0.98 with lines dt 3 lc rgb "red" title "settled -2%"
set title "worker open descriptors (sum of 2 workers)"
set ylabel "descriptors"
plot "$csv" every ::1 using (\$2/1e6):4 with linespoints pt 7 ps 0.4 title "fds", \
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

Command: \`$( [ "$total" -eq 2000000 ] && echo "make soak" || echo "SOAK_REQUESTS=$total make soak")\`

Machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GB", $2/1048576}' /proc/meminfo), Linux $(uname -r), nginx $("$nginx" -v 2>&1 | sed 's|.*/||'), $(redis-server --version | awk '{print $1, $3}' | sed 's/v=//'), PostgreSQL $(pg_config --version | awk '{print $2}'), $(date -u +%Y-%m-%d); the machine ran other jobs meanwhile.

RSS is the workers' private pages outside the shared zones (in
smaps_rollup a zone page that one worker alone has touched counts as
private, so the cache zone filling up would look like a leak; the zones
are charted apart, by PSS). Warm-up is the first 10% of the requests;
"settled" is the median of the samples between 10% and 15%, "end" the
median of the last 3 samples under load. The verdict is within 2% for RSS
and descriptors.

Wall time of the whole \`make soak\` (services, nginx, load, chart):
about $(( SECONDS - started ))s on this machine.

$(for l in "${summary[@]}"; do echo "- $l"; done)

wrk statuses: $statuses; socket errors: $errors.
Idle, ${interval}s after the load: $(echo "$idle" | awk -F, '{printf "RSS %s kB, %s descriptors, Redis %s, Postgres %s connections", $3, $4, $5, $6}').

![soak](soak.png)
EOR

echo
echo "soak: $(if [ $status -eq 0 ]; then echo PASS; else echo FAIL; fi)" \
     "($out/soak-samples.csv, $out/soak.png, $out/SOAK.md)"
exit $status
