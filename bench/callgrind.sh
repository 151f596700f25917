#!/usr/bin/env bash
# Instructions per request on txval's hot paths, counted by callgrind:
# repeatable on a noisy machine, so regressions show without timing noise.
# One nginx worker (master_process off) under callgrind per path, wrk with
# one connection: a warm-up (CALLGRIND_WARMUP seconds, default 1), then
# callgrind's counters are zeroed and wrk runs for a fixed time; the
# instructions counted divided by the requests wrk counted. Only the nginx
# process is counted: Redis (and the kernel) are not.
#
# Paths:
#   txval, with a cache zone:  bare `return 200`, verdict replay (shm
#     hit), gate replay (to a `return 200` upstream in the same nginx), a
#     malformed-JSON request; the replay of the same fields in a nested,
#     Adyen-like body read by txval_field pointers (/vm), and a full parse
#     of each (the replayed transaction in other bytes every time: a
#     counter in an unknown member; answered from shm after parsing)
#   txval without a zone, with Redis (started here):  Redis hit, gate
#     Redis hit, Redis-only miss (GET, INCR+EXPIRE, SET), the Redis-only
#     miss of the mapped nested body; the Redis hit
#     and miss again over TLS (tls=on to a TLS port of the same Redis;
#     CALLGRIND_REDIS_TLS=0 skips them)
#   the Lua gate of make bench (bench/lua/), same Redis:  replay (shm
#     hit), Redis hit, Redis-only miss, malformed JSON
#   txval with Redis and Postgres (started here; no verdict zone, like the
#     Redis-only miss):  a full miss (a Postgres lookup per request) with
#     one connection and with 16 (lookups pipelined: several share a
#     connection and a write), and a new transaction of a known merchant
#     and card answered by the lookup cache (txval_lookup_cache ...
#     notify=); the same full miss with CALLGRIND_BASELINE_MODULE (another
#     build, e.g. main's before issue 19) when it is set
# then the functions that cost most on the replay and Redis-hit paths
# (callgrind_annotate, self cost, the measured part of the run).
#
#   bench/callgrind.sh [seconds]        (make bench-callgrind)
#   CALLGRIND_TOP=12                    how many functions to list (0: none)
#   CALLGRIND_WARMUP=1                  seconds of warm-up (whole seconds)
#   CALLGRIND_BACKENDS=0                txval with a zone only (no Redis, no
#                                       Lua, no Postgres)
#   CALLGRIND_LUA=0                     txval's paths only (no Lua gate)
#   CALLGRIND_DIR=build/callgrind       where the configurations and
#                                       callgrind's output go (emptied first)
#   TXVAL_MODULE=path.so                the module (default: make's build)
#   BENCH_PORT=18490                    nginx's port (+1 upstream, +2 Redis,
#                                       +3 Redis TLS, +4 Postgres)
#   CALLGRIND_BASELINE_MODULE=path.so   the Postgres full miss of that build
#   CALLGRIND_PATHS="pg"                only the Postgres paths
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
module=${TXVAL_MODULE:-$top/build/ngx_http_txval_module.so}
nginx=${NGINX_BIN:-/usr/sbin/nginx}
secs=${1:-5}
port=${BENCH_PORT:-18490}
redis_port=$((port + 2))
pg_port=$((port + 4))
baseline=${CALLGRIND_BASELINE_MODULE:-}
only=${CALLGRIND_PATHS:-}
dir=${CALLGRIND_DIR:-$top/build/callgrind}
modules=/usr/lib/nginx/modules
backends=${CALLGRIND_BACKENDS:-1}
lua=${CALLGRIND_LUA:-1}
top_n=${CALLGRIND_TOP:-12}
warmup=${CALLGRIND_WARMUP:-1}

pgdir=$top/build/callgrind-pg      # kept between runs

rm -rf "$dir"
mkdir -p "$dir"

vg=""
cleanup() {
    [ -n "$vg" ] && kill -QUIT "$vg" 2> /dev/null
    txval_redis_stop "$dir/redis"
    txval_pg_stop "$pgdir"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# shellcheck source=scripts/services.sh
. "$top/scripts/services.sh"

conf() {
    # $1 name, $2 main-context lines, $3 http-context lines, $4 locations
    local d=$dir/$1
    mkdir -p "$d/conf" "$d/logs" "$d/tmp"
    cat > "$d/conf/nginx.conf" <<EOC
$2
master_process off;
daemon off;
error_log logs/error.log warn;
pid logs/nginx.pid;
events { worker_connections 64; }
http {
    access_log off;
    client_body_temp_path $d/tmp/body;
    proxy_temp_path $d/tmp/proxy;
$3
    server {
        listen 127.0.0.1:$port;
        keepalive_requests 1000000;
        location = /bare { return 200 "ok\n"; }
$4
    }
    upstream up { server 127.0.0.1:$((port + 1)); keepalive 8; }
    server {
        listen 127.0.0.1:$((port + 1));
        keepalive_requests 1000000;
        location / { return 200 "ok\n"; }
    }
}
EOC
}

gate='proxy_pass http://up/ok; proxy_http_version 1.1; proxy_set_header Connection "";'

# the flat body's fields, where an Adyen-like body keeps them
mapped='txval_field id /reference; txval_field amount /amount/value;
            txval_field currency /amount/currency;
            txval_field merchant_id /merchantAccount;
            txval_field card_token /paymentMethod/storedPaymentMethodId;
            txval_field card_bin /cardBin; txval_field country /countryCode;'

conf base "load_module $module;" "    txval_cache_zone cg:4m ttl=1h;
    txval_amount_limit USD 100 500000;" "        location = /v { txval; }
        location = /g { txval_gate; $gate }
        location = /vm { $mapped txval; }"

configs=(base)
if [ "$backends" = 1 ] && command -v redis-server > /dev/null; then
    txval_redis_start "$redis_port" "$dir/redis"
    conf redis "load_module $module;" "    txval_redis 127.0.0.1:$redis_port prefix=cg: timeout=1s;
    txval_amount_limit USD 100 500000;
    txval_velocity 100000000 60s;" "        location = /v { txval; }
        location = /g { txval_gate; $gate }
        location = /vm { $mapped txval; }"
    configs+=(redis)
    if [ "${CALLGRIND_REDIS_TLS:-1}" = 1 ] && command -v openssl > /dev/null
    then
        # the same over TLS (a TLS port on the same Redis)
        txval_tls_certs "$dir/tls"
        txval_redis_stop "$dir/redis"
        # shellcheck disable=SC2046
        txval_redis_start "$redis_port" "$dir/redis" \
            $(txval_tls_redis_args "$dir/tls" $((port + 3)))
        conf redistls "load_module $module;" "    txval_redis 127.0.0.1:$((port + 3)) tls=on tls_trusted_certificate=$dir/tls/ca.crt prefix=cgt: timeout=1s;
    txval_amount_limit USD 100 500000;
    txval_velocity 100000000 60s;" "        location = /v { txval; }
        location = /g { txval_gate; $gate }"
        configs+=(redistls)
    fi
    if [ "$lua" = 1 ] && [ -f "$modules/ngx_http_lua_module.so" ]; then
        mkdir -p "$dir/lua"
        ln -sfn "$top/bench/lua" "$dir/lua/lua"
        conf lua "load_module $modules/ndk_http_module.so;
load_module $modules/ngx_http_lua_module.so;" "    include $top/bench/lua/nginx-http.conf;
    init_by_lua_block {
        require(\"txval\").configure{ redis_port = $redis_port,
            prefix = \"cglua:\", ttl = 3600, velocity_count = 100000000,
            timeout = 1000 }
    }" "        location = /g {
            access_by_lua_block { require(\"txval\").gate(true) }
            $gate
        }
        location = /gr {
            access_by_lua_block { require(\"txval\").gate(false) }
            $gate
        }"
        configs+=(lua)
    fi
fi

if [ "$backends" = 1 ] && [[ " ${configs[*]} " == *" redis "* ]] \
   && [ -x "${TXVAL_PG_BIN:-/usr/lib/postgresql/15/bin}/pg_ctl" ]; then
    txval_pg_start "$pg_port" "$pgdir"
    txval_pg_psql "$pg_port" "$pgdir" < "$top/docker/initdb/03-notify.sql"
    pg="txval_postgres \"host=127.0.0.1 port=$pg_port dbname=txval user=txval password=txval\" timeout=5s;"
    common="    txval_redis 127.0.0.1:$redis_port prefix=cg: timeout=1s;
    txval_amount_limit USD 100 500000;
    txval_velocity 100000000 60s;
    $pg"
    conf pg "load_module $module;" "$common" "        location = /v { txval; }"
    conf lk "load_module $module;" "$common
    txval_lookup_cache cglk:16m ttl=1h notify=txval;" "        location = /v { txval; }"
    configs+=(pg lk)
    if [ -n "$baseline" ]; then
        conf pgbase "load_module $baseline;" "$common" "        location = /v { txval; }"
        configs+=(pgbase)
    fi
fi

replay_body='{"id":"tx_bench_replay","amount":2500,"currency":"USD","merchant_id":"m_acme","card_token":"tok_4242","card_bin":"424242","country":"US"}'

profile() {
    # $1 configuration, $2 path, $3 wrk.lua mode, $4 a path to POST the
    # replayed transaction to first (its verdict then is in Redis), $5 wrk
    # connections (1); prints "instructions requests": counted from after
    # a warm-up ($6 seconds, default CALLGRIND_WARMUP; callgrind's counters
    # zeroed then) to the end
    local out=$dir/cg.$1.${2//\//}.$3.c${5:-1}.out n=0 c=${5:-1}
    local warm=${6:-$warmup}
    valgrind --tool=callgrind --callgrind-out-file="$out" \
        "$nginx" -p "$dir/$1/" -c conf/nginx.conf > "$dir/$1/valgrind.log" 2>&1 &
    vg=$!
    for _ in $(seq 150); do
        curl -s -o /dev/null "http://127.0.0.1:$port/bare" && break
        kill -0 "$vg" 2> /dev/null || break
        sleep 0.2
    done
    if ! kill -0 "$vg" 2> /dev/null; then
        echo "callgrind.sh: nginx ($1) did not start:" >&2
        tail -5 "$dir/$1/valgrind.log" >&2
        exit 1
    fi
    if [ -n "${4:-}" ]; then
        curl -s -o /dev/null -H 'Content-Type: application/json' \
             -d "$replay_body" "http://127.0.0.1:$port$4"
    fi
    # warm-up: first requests, pools, LuaJIT traces
    TXVAL_BENCH_MODE=$3 TXVAL_BENCH_RUN=cgw$RANDOM \
        wrk -t1 -c"$c" -d"${warm}s" -s "$top/bench/wrk.lua" \
            "http://127.0.0.1:$port$2" > /dev/null
    # a dump ends the warm-up part ($out.1); the measured part is the
    # dump at the end. Wait for it: the request is asynchronous
    callgrind_control --dump=warm-up "$vg" > /dev/null 2>&1
    for _ in $(seq 300); do
        [ -s "$out.1" ] && break
        sleep 0.1
    done
    n=$(TXVAL_BENCH_MODE=$3 TXVAL_BENCH_RUN=cg$RANDOM \
        wrk -t1 -c"$c" -d"${secs}s" -s "$top/bench/wrk.lua" \
            "http://127.0.0.1:$port$2" \
        | awk '$1 == "TXVAL" && $2 == "requests" {print $3}')
    kill -QUIT "$vg"
    wait "$vg" || true
    vg=""
    echo "$n" > "$out.requests"
    echo "$(awk '/^(summary|totals):/ {print $2; exit}' "$out") $n"
}

report() {
    # $1 label, $2 configuration, $3 path, $4 wrk.lua mode, $5 prime path,
    # $6 connections, $7 warm-up seconds
    local ir n
    read -r ir n < <(profile "$2" "$3" "$4" "${5:-}" "${6:-1}" "${7:-}")
    awk -v l="$1" -v ir="$ir" -v n="$n" \
        'BEGIN {if (n > 0) printf "  %-34s %8.0f instructions/request (%d requests)\n",
                                  l, ir / n, n
                else printf "  %-34s (no requests)\n", l}'
}

echo "callgrind, one worker, ${secs}s per path:"
if [ "$only" != pg ]; then
report "bare return 200" base /bare replay
report "txval replay (shm hit)" base /v replay
report "txval gate replay (shm hit)" base /g replay
report "txval invalid JSON (400)" base /v invalid
report "txval replay, mapped (shm hit)" base /vm mapped
report "txval parsed replay, flat" base /v parsed
report "txval parsed replay, mapped" base /vm mapped_parsed
if [[ " ${configs[*]} " == *" redis "* ]]; then
    report "txval Redis hit (no zone)" redis /v replay /v
    report "txval gate Redis hit (no zone)" redis /g replay /v
    report "txval Redis-only miss" redis /v unique
    report "txval Redis-only miss, mapped" redis /vm mapped_unique
fi
if [[ " ${configs[*]} " == *" redistls "* ]]; then
    report "txval Redis hit, TLS (no zone)" redistls /v replay /v
    report "txval Redis-only miss, TLS" redistls /v unique
fi
if [[ " ${configs[*]} " == *" lua "* ]]; then
    report "Lua gate replay (shm hit)" lua /g replay /g
    report "Lua gate Redis hit (no shm)" lua /gr replay /g
    report "Lua gate Redis-only miss" lua /gr unique
    report "Lua gate invalid JSON (400)" lua /g invalid
fi
fi
if [[ " ${configs[*]} " == *" pg "* ]]; then
    [ "$only" = pg ] && report "txval Redis-only miss" redis /v unique
    report "txval full miss (Postgres), 1 conn" pg /v unique
    report "txval full miss (Postgres), 16 conns" pg /v unique "" 16
    if [[ " ${configs[*]} " == *" pgbase "* ]]; then
        report "baseline full miss, 1 conn" pgbase /v unique
        report "baseline full miss, 16 conns" pgbase /v unique "" 16
    fi
    # the 1,000 known cards and 100 merchants cached during the warm-up
    report "txval known (lookup cache hit)" lk /v known "" 1 4
fi

hot() {
    # $1 label, $2 callgrind output: the functions' own instructions per
    # request (callgrind_annotate's listing; the frames that were on the
    # stack when the counters were zeroed show 100%: left out)
    [ -f "$2" ] || return 0
    echo
    echo "$1: the $top_n functions with the most instructions of their own, per request:"
    callgrind_annotate --threshold=100 "$2" 2>/dev/null \
        | awk -v n="$(cat "$2.requests")" '
            /^-+$/ {d++; next}
            d >= 3 && NF >= 2 && $1 ~ /^[0-9,]+$/ && $2 != "(100.0%)" {
                ir = $1; gsub(",", "", ir)
                f = $0; sub(/^ *[0-9,]+ +\( *[0-9.]+%\) +/, "", f)
                lib = ""
                if (i = index(f, " [")) {
                    lib = substr(f, i + 2); f = substr(f, 1, i - 1)
                    sub(/\]$/, "", lib); sub(/.*\//, "", lib)
                }
                sub(/^.*\/ngx_http_txval_module\//, "", f)
                sub(/^\.\/[^:]*\//, "", f)
                printf "  %8.0f  %s%s\n", ir / n, f, lib != "" ? "  (" lib ")" : ""
            }' | head -n "$top_n" || true
}

if [ "$top_n" -gt 0 ] && command -v callgrind_annotate > /dev/null; then
    hot "txval replay" "$dir/cg.base.v.replay.c1.out"
    hot "txval replay, mapped" "$dir/cg.base.vm.mapped.c1.out"
    hot "txval Redis-only miss, mapped" "$dir/cg.redis.vm.mapped_unique.c1.out"
    hot "txval Redis hit" "$dir/cg.redis.v.replay.c1.out"
    hot "txval Redis-only miss" "$dir/cg.redis.v.unique.c1.out"
    hot "txval known (lookup cache hit)" "$dir/cg.lk.v.known.c1.out"
    hot "txval full miss (Postgres), 16 conns" "$dir/cg.pg.v.unique.c16.out"
fi
