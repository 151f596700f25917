#!/usr/bin/env bash
# Instructions per request on txval's hot paths, counted by callgrind:
# repeatable on a noisy machine, so regressions show without timing noise.
# One nginx worker (master_process off) under callgrind per path, wrk with
# one connection for a fixed time; instructions of the run divided by the
# requests wrk counted, minus an idle run of the same length.
#
# Paths: bare `return 200`, txval verdict replay (shm hit), txval gate
# replay (to a `return 200` upstream in the same nginx), a malformed-JSON
# request; then the functions that cost most on the replay path
# (callgrind_annotate, self cost, whole run).
#
#   bench/callgrind.sh [seconds]        (make bench-callgrind)
#   CALLGRIND_TOP=15                    how many functions to list (0: none)
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
module=${TXVAL_MODULE:-$top/build/ngx_http_txval_module.so}
nginx=${NGINX_BIN:-/usr/sbin/nginx}
secs=${1:-5}
port=${BENCH_PORT:-18490}
dir=$top/build/callgrind

rm -rf "$dir"
mkdir -p "$dir/conf" "$dir/logs" "$dir/tmp"

cat > "$dir/conf/nginx.conf" <<EOC
load_module $module;
master_process off;
daemon off;
error_log logs/error.log warn;
pid logs/nginx.pid;
events { worker_connections 64; }
http {
    access_log off;
    client_body_temp_path $dir/tmp;
    txval_cache_zone cg:4m ttl=1h;
    txval_amount_limit USD 100 500000;
    server {
        listen 127.0.0.1:$port;
        keepalive_requests 1000000;
        location = /bare { return 200 "ok\n"; }
        location = /v { txval; }
        location = /invalid { txval; }
        location = /g { txval_gate; proxy_pass http://up/ok;
                        proxy_http_version 1.1; proxy_set_header Connection ""; }
    }
    upstream up { server 127.0.0.1:$((port + 1)); keepalive 8; }
    server {
        listen 127.0.0.1:$((port + 1));
        keepalive_requests 1000000;
        location / { return 200 "ok\n"; }
    }
}
EOC

profile() {
    # $1 path ("" for idle), $2 wrk script, $3 TXVAL_BENCH_MODE (wrk.lua);
    # prints "instructions requests"
    local out=$dir/cg.${1//\//}.out vg n
    valgrind --tool=callgrind --callgrind-out-file="$out" \
        "$nginx" -p "$dir/" -c conf/nginx.conf > "$dir/valgrind.log" 2>&1 &
    vg=$!
    for _ in $(seq 100); do
        curl -s -o /dev/null "http://127.0.0.1:$port/bare" && break
        sleep 0.2
    done
    n=0
    if [ -n "$1" ]; then
        n=$(TXVAL_BENCH_MODE=${3:-replay} \
            wrk -t1 -c1 -d"${secs}s" -s "$top/bench/$2" \
                "http://127.0.0.1:$port$1" | awk '/requests in/ {print $1}')
    else
        sleep "$secs"
    fi
    kill -QUIT "$vg"
    wait "$vg" || true
    echo "$(awk '/^(summary|totals):/ {print $2; exit}' "$out") $n"
}

read -r idle _ < <(profile "" "")
report() {
    # $1 label, $2 path, $3 script, $4 wrk.lua mode
    local ir n
    read -r ir n < <(profile "$2" "$3" "${4:-}")
    awk -v l="$1" -v ir="$ir" -v z="$idle" -v n="$n" \
        'BEGIN {printf "  %-28s %8.0f instructions/request (%d requests)\n",
                l, (ir - z) / n, n}'
}

echo "callgrind, one worker, ${secs}s per path:"
report "bare return 200" /bare post.lua
report "txval replay (shm hit)" /v post.lua
report "txval gate replay (shm hit)" /g post.lua
report "txval invalid JSON (400)" /invalid wrk.lua invalid

top_n=${CALLGRIND_TOP:-15}
if [ "$top_n" -gt 0 ] && command -v callgrind_annotate > /dev/null; then
    echo
    echo "txval replay: the $top_n functions with the most instructions of their own (whole run):"
    callgrind_annotate --threshold=100 "$dir/cg.v.out" 2>/dev/null \
        | awk '/^-+$/ {d++; next} d >= 3 && NF >= 2 && $1 ~ /^[0-9,]+$/' \
        | head -n "$top_n" | sed 's/^/  /'
fi
