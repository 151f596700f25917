#!/usr/bin/env bash
# `make faults`: txval keeps answering, loses nothing and leaks nothing
# while its backends die, stall and come back, nginx reloads, and a worker
# is killed inside the shm lock, all under steady load.
#
# One nginx (2 workers) with txval on /v (shm cache zone, Redis, Postgres,
# velocity, fail closed), a bare `/plain { return 200; }`, and its own
# Redis and Postgres under build/faults/. wrk keeps a steady load of new
# and replayed transactions (faults/load.lua, counting every status), and a
# prober (faults/probe.pl) sends one request at a time on a new connection,
# recording each status and latency. The scenarios, one after the other:
#
#   redis-kill      kill -9 redis-server, start it again 1 s later
#   pg-restart      pg_ctl restart -m fast
#   redis-stall     SIGSTOP redis-server for 3 s (it still accepts TCP
#                   connections, the kernel does, but answers nothing)
#   pg-stall        LOCK TABLE merchants IN ACCESS EXCLUSIVE MODE for 3 s
#   reload          nginx -s reload, ten times, 0.5 s apart
#   worker-kill     a worker stopped by gdb inside the shm zone's lock
#                   (a breakpoint on ngx_slab_alloc_locked, reached from
#                   txval's cache store), then kill -9; the master restarts
#                   it and releases the lock (plain kill -9 without gdb)
#
# After each one (faults/check.pl for the probes), PASS or FAIL:
#   - every probed /v response is 200, 402 or 503 with its SPEC body, every
#     replay 200 from the shm zone, /plain 200; no reset, no early close,
#     no answer slower than the configured timeouts plus a margin (/plain:
#     1 s: a worker never blocks); wrk saw no other status and no timeout;
#   - healed: new transactions all succeed from 1 s after the backend is
#     back (and all did before the fault);
#   - error.log: no "exited on signal", no [alert], [crit] or [emerg]
#     (worker-kill: exactly its one signal and the lock release alert);
#   - the shm zone answers (a replay is source shm, a new verdict is
#     stored and replayed);
#   - server-side connections, once settled: Redis connected_clients and
#     Postgres backends of user txval <= workers x pool + 2; both workers
#     up, no more processes than that.
#
# Exits non-zero if any scenario failed. About 1.5 minutes.
#
#   FAULTS_PORT=18580 (nginx; Redis +2, Postgres +3)  FAULTS_CONNECTIONS=4
#   FAULTS_MARGIN_MS=1250  FAULTS_HEAL=1.0 (s)  FAULTS_ONLY="redis-kill ..."
#   FAULTS_REDIS_TIMEOUT=50ms  FAULTS_PG_TIMEOUT=200ms (the SPEC defaults)

set -uo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
module=${TXVAL_MODULE:-$top/build/ngx_http_txval_module.so}
nginx=${NGINX_BIN:-/usr/sbin/nginx}
base=${FAULTS_PORT:-18580}
port=$base
redis_port=$((base + 2))
pg_port=$((base + 3))
dir=$top/build/faults
workers=2
rpool=4
ppool=4
conns=${FAULTS_CONNECTIONS:-4}
margin_ms=${FAULTS_MARGIN_MS:-1250}
heal=${FAULTS_HEAL:-1.0}
redis_timeout=${FAULTS_REDIS_TIMEOUT:-50ms}
redis_connect_timeout=100ms
pg_timeout=${FAULTS_PG_TIMEOUT:-200ms}
only=${FAULTS_ONLY:-}
run=$(date +%s)
started=$SECONDS

ms() {
    # "50ms" / "1s" -> milliseconds
    case $1 in
        *ms) echo "${1%ms}" ;;
        *s) echo $(( ${1%s} * 1000 )) ;;
        *) echo "$1" ;;
    esac
}

# the longest a /v request may take with these timeouts: the Redis cache
# GET (connect + command), then, at the same time, the Postgres lookup (a
# wait for a free connection, connect and prepare, the query: 3 timeouts)
# and the velocity count (connect + command)
redis_budget=$(( $(ms $redis_connect_timeout) + $(ms "$redis_timeout") ))
pg_budget=$(( 3 * $(ms "$pg_timeout") ))
budget_ms=$(( redis_budget + (pg_budget > redis_budget ? pg_budget : redis_budget) ))
hang_ms=$(( budget_ms + margin_ms ))
redis_bound=$(( workers * rpool + 2 ))
pg_bound=$(( workers * ppool + 2 ))

for tool in redis-server redis-cli wrk curl perl; do
    command -v "$tool" > /dev/null || { echo "faults: $tool is missing" >&2; exit 2; }
done
[ -f "$module" ] || { echo "faults: no module at $module (make first)" >&2; exit 2; }

# gdb stops a worker inside the lock; without it the kill is a plain one
if ! command -v gdb > /dev/null && [ "$(id -u)" -eq 0 ]; then
    echo "faults: installing gdb (apt-get)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq gdb > /dev/null 2>&1 \
        || { apt-get update -qq > /dev/null 2>&1 \
             && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq gdb > /dev/null 2>&1; } \
        || echo "faults: no gdb: the worker is killed without holding the lock"
fi

# shellcheck source=scripts/services.sh
. "$top/scripts/services.sh"

now() { date +%s.%N | cut -c1-14; }

ng="$nginx -p $dir/nginx/ -c conf/nginx.conf"
errlog=$dir/nginx/logs/error.log
pids=()

master() { cat "$dir/nginx/logs/nginx.pid" 2>/dev/null; }

nginx_workers() {
    local m
    m=$(master) || return 0
    [ -n "$m" ] && pgrep -P "$m" 2>/dev/null
}

cleanup() {
    local p m
    for p in "${pids[@]}"; do
        kill "$p" 2>/dev/null
    done
    if m=$(master) && [ -n "$m" ] && kill -0 "$m" 2>/dev/null; then
        kill -CONT "$(cat "$dir/redis/redis.pid" 2>/dev/null)" 2>/dev/null
        $ng -s stop 2>/dev/null
        for _ in $(seq 50); do kill -0 "$m" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$m" 2>/dev/null
    fi
    [ -f "$dir/redis/redis.pid" ] && kill -CONT "$(cat "$dir/redis/redis.pid")" 2>/dev/null
    txval_redis_stop "$dir/redis"
    txval_pg_stop "$dir/pg"
}
trap cleanup EXIT
trap 'echo "faults: interrupted" >&2; exit 130' INT TERM

# never past 6 minutes, whatever hangs
(
    trap 'kill "$nap" 2>/dev/null; exit 0' TERM
    sleep 355 &
    nap=$!
    wait "$nap" || exit 0
    echo "faults: over 355 s, giving up" >&2
    kill -TERM $$
) &
watchdog=$!
pids+=("$watchdog")

mkdir -p "$dir"
rm -rf "$dir/nginx" "$dir"/*.out "$dir"/*.log "$dir"/*.txt
mkdir -p "$dir/nginx/conf" "$dir/nginx/logs" "$dir/nginx/tmp"

echo "faults: Redis :$redis_port, Postgres :$pg_port (build/faults/)"
txval_redis_start "$redis_port" "$dir/redis" || exit 2
txval_pg_start "$pg_port" "$dir/pg" || exit 2

cat > "$dir/nginx/conf/nginx.conf" <<EOC
load_module $module;
worker_processes $workers;
error_log logs/error.log notice;
pid logs/nginx.pid;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $dir/nginx/tmp;
    txval_cache_zone faults:16m ttl=10m;
    txval_redis 127.0.0.1:$redis_port prefix=faults$run: pool=$rpool
                connect_timeout=$redis_connect_timeout timeout=$redis_timeout;
    txval_postgres "host=127.0.0.1 port=$pg_port dbname=txval user=txval password=txval"
                   pool=$ppool timeout=$pg_timeout;
    txval_velocity 100000000 60s;
    txval_fail_mode closed;
    txval_amount_limit USD 1 1000000;
    server {
        listen 127.0.0.1:$port backlog=4096;
        keepalive_requests 1000000;
        location = /v { txval; }
        location = /plain { return 200; }
    }
}
EOC

$ng || exit 2
for _ in $(seq 50); do
    curl -s -o /dev/null "http://127.0.0.1:$port/plain" && break
    sleep 0.1
done

replay_body="{\"id\":\"fault_replay_$run\",\"amount\":2500,\"currency\":\"USD\",\"merchant_id\":\"m_bench_1\",\"card_token\":\"tok_bench_1\",\"card_bin\":\"424242\",\"country\":\"US\"}"

post() {
    # $1 body; prints "STATUS SOURCE"
    curl -s -o /dev/null --max-time 5 -D - -H 'Content-Type: application/json' \
         -d "$1" "http://127.0.0.1:$port/v" \
        | awk 'NR == 1 {s = $2} tolower($1) == "x-txval-source:" {src = $2}
               END {gsub(/\r/, "", src); print s, (src == "" ? "-" : src)}'
}

read -r st src < <(post "$replay_body")
if [ "$st" != 200 ]; then
    echo "faults: the first transaction was answered $st, not 200" >&2
    tail -20 "$errlog" >&2
    exit 1
fi

perl "$top/faults/probe.pl" "$port" "$dir/probe.log" "$run" 20 10 &
prober=$!
pids+=("$prober")

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

sampler() {
    # every 0.25 s: time, Redis clients, Postgres backends, nginx workers
    while :; do
        echo "$(now) $(redis_clients) $(pg_backends) $(nginx_workers | wc -l)"
        sleep 0.25
    done
}

failed=()
passed=()

begin() {
    # $1 scenario name
    S_NAME=$1
    S_PROBLEMS=()
    S_T0=$(now)
    S_LOGOFF=$(stat -c %s "$errlog")
    S_FAULT=""
    S_BACK=""
    S_GRACE_FROM=0
    S_GRACE_TO=0
    S_GRACE_MAX=0
    S_SIGNALS=0
    S_ALERTS_OK='^$'
    S_WRK_ERRORS_OK=0
    S_WRK_LATENCY_OK=0

    echo
    echo "=== $S_NAME"

    TXVAL_RUN="$run$S_NAME" TXVAL_MIX=faults TXVAL_REPLAY_ID="fault_replay_$run" \
        wrk -t1 -c"$conns" -d120s --timeout 5s --latency -s "$top/faults/load.lua" \
        "http://127.0.0.1:$port/v" > "$dir/wrk-$S_NAME.out" 2>&1 &
    S_WRK=$!
    pids+=("$S_WRK")

    sampler > "$dir/counts-$S_NAME.txt" 2>/dev/null &
    S_SAMPLER=$!
    pids+=("$S_SAMPLER")

    sleep 2     # the baseline: all is well before the fault
}

problem() {
    S_PROBLEMS+=("$*")
    echo "  PROBLEM: $*"
}

settled_counts() {
    # the highest of 4 samples over a second: Redis Postgres
    local r p i rmax=-1 pmax=-1
    for i in 1 2 3 4; do
        r=$(redis_clients)
        p=$(pg_backends)
        [ "$r" -gt "$rmax" ] && rmax=$r
        [ "$p" -gt "$pmax" ] && pmax=$p
        sleep 0.25
    done
    echo "$rmax $pmax"
}

finish() {
    local t1 out line code n rmax pmax nw peak_r peak_p lat st src id body

    # settle: the backend is back, give the pools and the servers time
    sleep 3

    # both workers, and only them (old ones of a reload gone)
    for _ in $(seq 40); do
        nw=$(nginx_workers | wc -l)
        [ "$nw" -eq "$workers" ] && break
        sleep 0.25
    done
    [ "$nw" -eq "$workers" ] || problem "$nw worker processes, not $workers"

    # the zone answers: the primed replay, and a new verdict stored and
    # replayed
    read -r st src < <(post "$replay_body")
    [ "$st $src" = "200 shm" ] \
        || problem "the primed replay was answered \"$st $src\", not \"200 shm\""
    id="fault_after_${S_NAME}_$run"
    body=${replay_body//fault_replay_$run/$id}
    read -r st src < <(post "$body")
    [ "$st $src" = "200 computed" ] \
        || problem "a new transaction was answered \"$st $src\", not \"200 computed\""
    read -r st src < <(post "$body")
    [ "$st $src" = "200 shm" ] \
        || problem "its replay was answered \"$st $src\", not \"200 shm\""

    # server-side connections, settled
    read -r rmax pmax < <(settled_counts)
    if [ "$rmax" -lt 0 ] || [ "$rmax" -gt "$redis_bound" ]; then
        problem "Redis has $rmax client connections (at most $redis_bound)"
    fi
    if [ "$pmax" -lt 0 ] || [ "$pmax" -gt "$pg_bound" ]; then
        problem "Postgres has $pmax txval backends (at most $pg_bound)"
    fi

    # stop the load: wrk prints its counts on SIGINT
    t1=$(now)
    kill -INT "$S_WRK" 2>/dev/null
    wait "$S_WRK" 2>/dev/null
    kill "$S_SAMPLER" 2>/dev/null
    wait "$S_SAMPLER" 2>/dev/null

    read -r peak_r peak_p < <(awk '$2 > r {r = $2} $3 > p {p = $3}
                                   END {print r + 0, p + 0}' \
                              "$dir/counts-$S_NAME.txt")
    echo "  connections: Redis $rmax, Postgres $pmax settled (bound $redis_bound, $pg_bound);" \
         "peak during the scenario $peak_r, $peak_p"

    # wrk: statuses and errors
    out=$dir/wrk-$S_NAME.out
    if ! grep -q '^wrk-errors' "$out"; then
        problem "wrk gave no summary: $(tail -3 "$out" | tr '\n' ' ')"
    else
        line=$(grep '^wrk-status' "$out" | awk '{printf "%s=%s ", $2, $3}')
        echo "  wrk: ${line}$(grep '^wrk-errors' "$out" | cut -d' ' -f2-)"
        while read -r _ code n; do
            case $code in
                200|402|503) ;;
                *) problem "wrk got $n responses with status $code" ;;
            esac
        done < <(grep '^wrk-status' "$out")
        read -r _ _ ce _ re _ we _ te < <(grep '^wrk-errors' "$out")
        [ "$te" -eq 0 ] || problem "wrk: $te requests timed out (5 s)"
        if [ $((ce + re + we)) -gt "$S_WRK_ERRORS_OK" ]; then
            problem "wrk: socket errors connect $ce read $re write $we" \
                    "(at most $S_WRK_ERRORS_OK here)"
        fi
        lat=$(awk '$1 == "Latency" && NF >= 4 {m = $4;
                   if (m ~ /us$/) {sub(/us$/, "", m); m /= 1000}
                   else if (m ~ /ms$/) {sub(/ms$/, "", m)}
                   else if (m ~ /m$/) {sub(/m$/, "", m); m *= 60000}
                   else if (m ~ /s$/) {sub(/s$/, "", m); m *= 1000}
                   printf "%d", m; exit}' "$out")
        if [ -n "$lat" ] && [ "$lat" -gt "$hang_ms" ] && [ "$S_WRK_LATENCY_OK" -eq 0 ]; then
            problem "wrk: slowest request ${lat} ms (at most $hang_ms)"
        fi
    fi

    # error.log since the scenario began
    tail -c +"$((S_LOGOFF + 1))" "$errlog" > "$dir/error-$S_NAME.log"
    n=$(grep -c 'exited on signal' "$dir/error-$S_NAME.log")
    [ "$n" -eq "$S_SIGNALS" ] \
        || problem "error.log: $n \"exited on signal\" (expected $S_SIGNALS):" \
                   "$(grep 'exited on signal' "$dir/error-$S_NAME.log" | head -3)"
    n=$(grep -E '\[(alert|crit|emerg)\]' "$dir/error-$S_NAME.log" \
        | grep -Evc "$S_ALERTS_OK")
    [ "$n" -eq 0 ] \
        || problem "error.log: $n unexpected [alert]/[crit]/[emerg] lines:" \
                   "$(grep -E '\[(alert|crit|emerg)\]' "$dir/error-$S_NAME.log" \
                      | grep -Ev "$S_ALERTS_OK" | head -3)"
    echo "  error.log: $(grep -c '\[error\]' "$dir/error-$S_NAME.log") [error] lines"
    grep '\[error\]' "$dir/error-$S_NAME.log" \
        | sed -E 's/^.*\[error\] [0-9]+#[0-9]+: (\*[0-9]+ )?//; s/, client:.*//;
                  s/[0-9]+(\.[0-9]+){3}:[0-9]+/ADDR/g' \
        | sort | uniq -c | sort -rn | head -4 | sed 's/^ */    /'

    # the probes
    if ! perl "$top/faults/check.pl" --log "$dir/probe.log" --from "$S_T0" \
            --to "$t1" --fault "$S_FAULT" --back "$S_BACK" --heal "$heal" \
            --hang-ms "$hang_ms" --plain-ms 1000 \
            --grace-from "$S_GRACE_FROM" --grace-to "$S_GRACE_TO" \
            --grace-max "$S_GRACE_MAX"; then
        S_PROBLEMS+=("probes")
    fi

    if [ "${#S_PROBLEMS[@]}" -eq 0 ]; then
        echo "PASS $S_NAME"
        passed+=("$S_NAME")
    else
        echo "FAIL $S_NAME"
        failed+=("$S_NAME")
    fi
}

wanted() {
    [ -z "$only" ] || [[ " $only " == *" $1 "* ]]
}

redis_pid() { cat "$dir/redis/redis.pid"; }

if wanted redis-kill; then
    begin redis-kill
    S_FAULT=$(now)
    kill -9 "$(redis_pid)"
    sleep 1
    rm -f "$dir/redis/redis.pid"
    txval_redis_start "$redis_port" "$dir/redis" || problem "Redis did not start again"
    S_BACK=$(now)
    echo "  Redis killed, back after $(awk -v a="$S_FAULT" -v b="$S_BACK" 'BEGIN {printf "%.2f", b - a}') s"
    finish
fi

if wanted pg-restart; then
    begin pg-restart
    S_FAULT=$(now)
    txval_pg_as "$TXVAL_PG_BIN/pg_ctl" -D "$(txval_pg_dir "$dir/pg")" -m fast -w restart \
        > "$dir/pg-restart.log" 2>&1 || problem "pg_ctl restart failed"
    S_BACK=$(now)
    echo "  Postgres restarted in $(awk -v a="$S_FAULT" -v b="$S_BACK" 'BEGIN {printf "%.2f", b - a}') s"
    finish
fi

if wanted redis-stall; then
    begin redis-stall
    S_FAULT=$(now)
    kill -STOP "$(redis_pid)"
    sleep 3
    kill -CONT "$(redis_pid)"
    S_BACK=$(now)
    echo "  Redis stopped (SIGSTOP) for 3 s"
    finish
fi

if wanted pg-stall; then
    begin pg-stall
    S_FAULT=$(now)
    txval_pg_psql "$pg_port" "$dir/pg" -c "BEGIN; LOCK TABLE merchants IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(3); COMMIT;" \
        > "$dir/pg-lock.log" 2>&1 || problem "the LOCK TABLE session failed"
    S_BACK=$(now)
    echo "  merchants locked for $(awk -v a="$S_FAULT" -v b="$S_BACK" 'BEGIN {printf "%.2f", b - a}') s"
    finish
fi

if wanted reload; then
    begin reload
    S_FAULT=$(now)
    # keepalive connections an old worker closes while wrk is sending on
    # them: nginx's graceful shutdown, a race any keepalive client lives
    # with (the prober, a new connection per request, sees none)
    S_WRK_ERRORS_OK=$((10 * conns))
    for i in $(seq 10); do
        $ng -s reload 2>> "$dir/reload.log" || problem "reload $i failed"
        sleep 0.5
    done
    S_BACK=$(now)
    echo "  10 reloads"
    finish
fi

if wanted worker-kill; then
    begin worker-kill
    victim=$(nginx_workers | head -1)
    S_GRACE_FROM=$(now)
    S_FAULT=$S_GRACE_FROM
    how="kill -9"
    if command -v gdb > /dev/null; then
        # stops the worker where it holds the zone's lock, then kills it
        DEBUGINFOD_URLS="" timeout 30 gdb -nx -batch -p "$victim" \
            -ex 'set pagination off' \
            -ex 'break ngx_slab_alloc_locked' -ex 'continue' -ex 'bt 3' \
            -ex 'kill' > "$dir/gdb.out" 2>&1
        if grep -q 'ngx_http_txval_cache_store' "$dir/gdb.out"; then
            how="gdb: stopped in ngx_slab_alloc_locked from ngx_http_txval_cache_store (the zone's lock held), then SIGKILL"
        else
            how="gdb did not stop it in the lock (see build/faults/gdb.out); kill -9"
        fi
    fi
    kill -9 "$victim" 2>/dev/null
    for _ in $(seq 100); do
        nw=$(nginx_workers | grep -vcx "$victim")
        [ "$nw" -eq "$workers" ] && break
        sleep 0.05
    done
    S_BACK=$(now)
    S_GRACE_TO=$(awk -v b="$S_BACK" 'BEGIN {printf "%.3f", b + 1}')
    # the probes on the killed worker, or queued behind the lock
    S_GRACE_MAX=3
    S_WRK_ERRORS_OK=$((2 * conns))
    S_WRK_LATENCY_OK=1
    S_SIGNALS=1
    S_ALERTS_OK="worker process $victim exited on signal 9|shared memory zone \"faults\" was locked by $victim"
    echo "  worker $victim: $how; a new worker up after $(awk -v a="$S_FAULT" -v b="$S_BACK" 'BEGIN {printf "%.2f", b - a}') s"
    if [[ $how == gdb:* ]] && ! grep -q "was locked by $victim" "$dir/nginx/logs/error.log"; then
        sleep 0.5
        grep -q "was locked by $victim" "$dir/nginx/logs/error.log" \
            || problem "the master did not report releasing the zone's lock held by $victim"
    fi
    finish
fi

kill "$prober" 2>/dev/null
kill "$watchdog" 2>/dev/null

echo
echo "faults: $(( SECONDS - started )) s; passed: ${passed[*]:-none}; failed: ${failed[*]:-none}"
[ "${#failed[@]}" -eq 0 ]
