#!/usr/bin/env bash
# `make bench`: throughput of txval's paths against a bare nginx location
# taking the same POST, in one run, same nginx, 2 workers. Ratios are
# computed within the run; absolute numbers hold for this machine only.
#
#   BENCH_SECONDS=10 BENCH_CONNECTIONS=64 BENCH_ROUNDS=3 make bench
#
# Writes bench/RESULTS.md (the table, the command, the machine).
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
module=${TXVAL_MODULE:-$top/build/ngx_http_txval_module.so}
nginx=${NGINX_BIN:-/usr/sbin/nginx}
secs=${BENCH_SECONDS:-10}
conns=${BENCH_CONNECTIONS:-64}
rounds=${BENCH_ROUNDS:-3}
port=${BENCH_PORT:-18480}
dir=$top/build/bench
out=${BENCH_OUT:-$top/bench/RESULTS.md}

rm -rf "$dir"
mkdir -p "$dir/conf" "$dir/logs" "$dir/tmp"

cat > "$dir/conf/nginx.conf" <<EOC
load_module $module;
worker_processes 2;
error_log logs/error.log warn;
pid logs/nginx.pid;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $dir/tmp;
    txval_cache_zone bench:32m ttl=1h;
    txval_amount_limit USD 100 500000;
    server {
        listen 127.0.0.1:$port backlog=4096;
        keepalive_requests 1000000;
        location = /bare { return 200 "ok\n"; }
        location = /v { txval; }
    }
}
EOC

"$nginx" -p "$dir/" -c conf/nginx.conf
trap '"$nginx" -p "$dir/" -c conf/nginx.conf -s stop 2>/dev/null || true' EXIT
sleep 0.5


rps() {
    # $1 path; prints requests/s and p99 (ms)
    wrk -t2 -c"$conns" -d"${secs}s" --latency -s "$top/bench/post.lua" \
        "http://127.0.0.1:$port$1" > "$dir/wrk.out"
    if grep -q "Non-2xx" "$dir/wrk.out"; then
        echo "bench: non-2xx responses on $1:" >&2
        cat "$dir/wrk.out" >&2
        exit 1
    fi
    awk '/Requests\/sec/ {r=$2} / 99%/ {p=$2} END {print r, p}' \
        "$dir/wrk.out"
}

rss() {
    ps -o rss= --ppid "$(cat "$dir/logs/nginx.pid")" | awk '{s+=$1} END {print s}'
}

declare -a bare replay
rss_start=$(rss)

for i in $(seq 1 "$rounds"); do
    read -r b bp < <(rps /bare)
    read -r t tp < <(rps /v)
    bare+=("$b")
    replay+=("$t")
    echo "round $i: bare $b req/s (p99 $bp), replay $t req/s (p99 $tp)"
done

rss_end=$(rss)

median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
mb=$(median "${bare[@]}")
mt=$(median "${replay[@]}")
ratio=$(awk -v t="$mt" -v b="$mb" 'BEGIN {printf "%.3f", t / b}')

echo "replay / bare = $ratio (target >= 0.9)"

cat > "$out" <<EOR
# txval benchmarks

Numbers from one run of \`make bench\` on one machine; absolute values hold
for that machine only, ratios are measured within the run (same nginx,
2 workers, wrk with 2 threads and $conns connections on the same 2 cores,
${secs}s per measurement, $rounds alternating rounds, median shown).

Command: \`BENCH_SECONDS=$secs BENCH_CONNECTIONS=$conns BENCH_ROUNDS=$rounds make bench\`

Machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GB", $2/1048576}' /proc/meminfo), $(uname -r), nginx $("$nginx" -v 2>&1 | sed 's|.*/||'), $(date -u +%Y-%m-%d)

## Replay (shm hit) against the bare location

| scenario | requests/s (median) | rounds | ratio to bare |
|---|---|---|---|
| bare \`return 200\` (same POST) | $mb | ${bare[*]} | 1.000 |
| txval replay (shm) | $mt | ${replay[*]} | $ratio |

Target: replay >= 0.9 x bare. Worker RSS (sum of 2 workers, KB): $rss_start before, $rss_end after.
EOR

echo "wrote $out"
