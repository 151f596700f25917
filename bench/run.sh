#!/usr/bin/env bash
# `make bench`: txval's paths against a bare nginx location taking the same
# POST, in one run, on one machine: same nginx binary, 2 workers each, its
# own Redis and Postgres (under build/bench/), wrk on the same 2 cores.
# Ratios are computed within the run; absolute numbers hold for this
# machine only.
#
#   BENCH_SECONDS=10 BENCH_CONNECTIONS=64 BENCH_ROUNDS=3 make bench
#
# Scenarios (each a ratio to the bare location):
#   replay      a replayed id, answered from the shm cache
#   redis hit   a replayed id on an nginx without a cache zone: Redis GET
#   redis miss  new ids, Redis only: GET miss, INCR+EXPIRE, SET
#   full miss   new ids, Redis and Postgres (one prepared query)
# plus `pgbench -M prepared -S` on the same Postgres: what it serves alone.
#
# Writes bench/RESULTS.md (the table, the command, the machine).
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
module=${TXVAL_MODULE:-$top/build/ngx_http_txval_module.so}
nginx=${NGINX_BIN:-/usr/sbin/nginx}
secs=${BENCH_SECONDS:-10}
conns=${BENCH_CONNECTIONS:-64}
rounds=${BENCH_ROUNDS:-3}
port_a=${BENCH_PORT:-18480}
port_b=$((port_a + 1))
redis_port=$((port_a + 2))
pg_port=$((port_a + 3))
dir=$top/build/bench
out=${BENCH_OUT:-$top/bench/RESULTS.md}
TXVAL_BENCH_RUN=$(date +%s)
export TXVAL_BENCH_RUN

# shellcheck source=scripts/services.sh
. "$top/scripts/services.sh"

rm -rf "$dir/a" "$dir/b"
mkdir -p "$dir"

txval_redis_start "$redis_port" "$dir/redis"
txval_pg_start "$pg_port" "$dir/pg"

instance() {
    # $1 name, $2 port, $3 extra http config
    local d=$dir/$1
    mkdir -p "$d/conf" "$d/logs" "$d/tmp"
    cat > "$d/conf/nginx.conf" <<EOC
load_module $module;
worker_processes 2;
error_log logs/error.log warn;
pid logs/nginx.pid;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $d/tmp;
    txval_redis 127.0.0.1:$redis_port prefix=bench:;
    txval_amount_limit USD 100 500000;
    txval_velocity 100000000 60s;
    $3
    server {
        listen 127.0.0.1:$2 backlog=4096;
        keepalive_requests 1000000;
        location = /bare { return 200 "ok\n"; }
        location = /v { txval; }
    }
}
EOC
    "$nginx" -p "$d/" -c conf/nginx.conf
}

stop_all() {
    local n
    for n in a b; do
        [ -f "$dir/$n/logs/nginx.pid" ] \
            && "$nginx" -p "$dir/$n/" -c conf/nginx.conf -s stop 2>/dev/null
    done
    txval_redis_stop "$dir/redis"
    txval_pg_stop "$dir/pg"
}
trap stop_all EXIT

instance a "$port_a" "txval_cache_zone bench:64m ttl=1h;
    txval_postgres \"host=127.0.0.1 port=$pg_port dbname=txval user=txval password=txval\" pool=8;"
instance b "$port_b" ""
sleep 0.5

run_wrk() {
    # $1 port, $2 path, $3 script; prints requests/s and p99 (ms)
    TXVAL_BENCH_RUN=$TXVAL_BENCH_RUN$1$RANDOM wrk -t2 -c"$conns" -d"${secs}s" --latency -s "$top/bench/$3" \
        "http://127.0.0.1:$1$2" > "$dir/wrk.out"
    awk '/Requests\/sec/ {r=$2}
         / 99%/ {p=$2; if (p ~ /us$/) {sub(/us/,"",p); p=p/1000}
                 else if (p ~ /ms$/) {sub(/ms/,"",p)}
                 else if (p ~ /s$/) {sub(/s/,"",p); p=p*1000}}
         /Non-2xx/ {e=$NF}
         END {printf "%s %.2f %d\n", r, p, e}' "$dir/wrk.out"
}

rss() {
    # private RSS of the workers of instance $1 (shared zone pages
    # excluded), KB
    local pid s=0 v
    for pid in $(pgrep -P "$(cat "$dir/$1/logs/nginx.pid")"); do
        # nginx's zones are shared anonymous maps ("/dev/zero (deleted)"):
        # a zone page only this worker touched would count as private
        v=$(awk '/^[0-9a-f]+-[0-9a-f]+ / {zone = ($0 ~ /\/dev\/zero/)}
                 /^Private_(Clean|Dirty):/ && !zone {s+=$2}
                 END {print s + 0}' "/proc/$pid/smaps")
        s=$((s + v))
    done
    echo "$s"
}

median() {
    # the numbers may come as one word-split list
    printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'
}

# prime: the replayed id into shm (a) and Redis (both)
body=$(sed -n "s/^  '\(.*\)' ..$/\1/p; s/^  '\(.*\)'$/\1/p" bench/post.lua | tr -d '\n')
curl -s -o /dev/null -H 'Content-Type: application/json' -d "$body" \
     "http://127.0.0.1:$port_a/v"

declare -A res p99
names=(bare replay redis_hit redis_miss full_miss)
declare -A errs
for n in "${names[@]}"; do res[$n]=""; p99[$n]=""; errs[$n]=0; done

rss_a0=$(rss a)
rss_b0=$(rss b)

for i in $(seq 1 "$rounds"); do
    read -r r p e < <(run_wrk "$port_a" /bare post.lua); res[bare]+="$r "; p99[bare]+="$p "; errs[bare]=$((errs[bare] + e))
    read -r r p e < <(run_wrk "$port_a" /v post.lua); res[replay]+="$r "; p99[replay]+="$p "; errs[replay]=$((errs[replay] + e))
    read -r r p e < <(run_wrk "$port_b" /v post.lua); res[redis_hit]+="$r "; p99[redis_hit]+="$p "; errs[redis_hit]=$((errs[redis_hit] + e))
    read -r r p e < <(run_wrk "$port_b" /v unique.lua); res[redis_miss]+="$r "; p99[redis_miss]+="$p "; errs[redis_miss]=$((errs[redis_miss] + e))
    read -r r p e < <(run_wrk "$port_a" /v unique.lua); res[full_miss]+="$r "; p99[full_miss]+="$p "; errs[full_miss]=$((errs[full_miss] + e))
    echo "round $i: $(for n in "${names[@]}"; do printf '%s=%s ' "$n" "${res[$n]##* }"; done)"
done

rss_a1=$(rss a)
rss_b1=$(rss b)

# what Postgres serves alone, same machine, same run
PGPASSWORD=txval pgbench -h 127.0.0.1 -p "$pg_port" -U txval -i -s 1 -q txval \
    > "$dir/pgbench-init.log" 2>&1
pgbench_tps=$(PGPASSWORD=txval pgbench -h 127.0.0.1 -p "$pg_port" -U txval \
    -M prepared -S -c 16 -j 2 -T "$secs" txval 2>/dev/null \
    | awk '/^tps/ {printf "%.0f", $3; exit}')

# shellcheck disable=SC2086
bare=$(median ${res[bare]})

row() {
    # $1 name, $2 label
    local m p
    # shellcheck disable=SC2086
    m=$(median ${res[$1]})
    # shellcheck disable=SC2086
    p=$(median ${p99[$1]})
    printf '| %s | %.0f | %s | %s | %s | %.3f |\n' "$2" "$m" "$p" \
        "${errs[$1]}" "${res[$1]% }" \
        "$(awk -v a="$m" -v b="$bare" 'BEGIN {print a / b}')"
}

cat > "$out" <<EOR
# txval benchmarks

One run of \`make bench\` on one machine; absolute values hold for that
machine only, ratios are measured within the run. Each nginx has 2
workers; wrk (2 threads, $conns connections) runs on the same 2 cores;
${secs}s per measurement, $rounds alternating rounds, medians shown. Redis
and Postgres are local (loopback), started by the script.

Command: \`BENCH_SECONDS=$secs BENCH_CONNECTIONS=$conns BENCH_ROUNDS=$rounds make bench\`

Machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GB", $2/1048576}' /proc/meminfo), Linux $(uname -r), nginx $("$nginx" -v 2>&1 | sed 's|.*/||'), $(redis-server --version | awk '{print $1, $3}' | sed 's/v=//'), PostgreSQL $(pg_config --version | awk '{print $2}'), $(date -u +%Y-%m-%d)

| scenario | requests/s | p99 ms | non-2xx (all rounds) | rounds (requests/s) | ratio to bare |
|---|---|---|---|---|---|
$(row bare "bare \`return 200\`, same POST")
$(row replay "replay: shm hit")
$(row redis_hit "Redis hit (no shm zone)")
$(row redis_miss "Redis-only miss: GET, INCR+EXPIRE, SET")
$(row full_miss "full miss: Redis + Postgres")

\`pgbench -M prepared -S -c 16 -j 2\` on the same Postgres, same run:
$pgbench_tps transactions/s (one primary-key SELECT each; txval's full miss
sends one prepared three-table query per transaction).

Worker private RSS (shared zone pages excluded; sum of 2 workers, KB),
start -> end of the run: with shm zone,
Redis, Postgres $rss_a0 -> $rss_a1; Redis only $rss_b0 -> $rss_b1.

Targets: replay >= 0.9 x bare (issue 3).
EOR

cat "$out"
