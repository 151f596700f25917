#!/usr/bin/env bash
# Local backends for `make test`, `make run` and `make bench`, each on its
# own port and data directory under build/, never the system's services.
#
#   . scripts/services.sh
#   txval_redis_start PORT DIR [redis-server options...]
#   txval_redis_stop DIR

txval_redis_start() {
    local port=$1 dir=$2
    shift 2
    mkdir -p "$dir"
    txval_redis_stop "$dir"
    redis-server --bind 127.0.0.1 --port "$port" --dir "$dir" \
        --save '' --appendonly no --daemonize yes \
        --pidfile "$dir/redis.pid" --logfile "$dir/redis.log" "$@"
    local i
    for i in $(seq 50); do
        redis-cli -p "$port" ${REDISCLI_AUTH:+--no-auth-warning} ping \
            > /dev/null 2>&1 && return 0
        sleep 0.1
    done
    echo "services.sh: redis on port $port did not start" >&2
    return 1
}

txval_redis_stop() {
    local dir=$1 pid
    [ -f "$dir/redis.pid" ] || return 0
    pid=$(cat "$dir/redis.pid")
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 50); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    rm -f "$dir/redis.pid"
}
