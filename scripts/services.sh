#!/usr/bin/env bash
# Local backends for `make test`, `make run` and `make bench`, each on its
# own port and data directory under build/, never the system's services.
#
#   . scripts/services.sh
#   txval_redis_start PORT DIR [redis-server options...]
#   txval_redis_stop DIR

txval_redis_start() {
    local port=$1 dir
    dir=$(realpath -m "$2")
    shift 2
    mkdir -p "$dir"
    txval_redis_stop "$dir"
    redis-server --bind 127.0.0.1 --port "$port" --dir "$dir" \
        --save '' --appendonly no --daemonize yes \
        --pidfile "$dir/redis.pid" --logfile "$dir/redis.log" "$@"
    for _ in $(seq 50); do
        redis-cli -p "$port" ping \
            > /dev/null 2>&1 && return 0
        sleep 0.1
    done
    echo "services.sh: redis on port $port did not start" >&2
    return 1
}

# a CA and a server certificate (127.0.0.1, localhost) for a TLS Redis:
# DIR/ca.crt, DIR/server.crt, DIR/server.key
txval_tls_certs() {
    local dir=$1
    mkdir -p "$dir"
    [ -s "$dir/server.crt" ] && return 0
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
        -keyout "$dir/ca.key" -out "$dir/ca.crt" -days 30 \
        -subj "/CN=txval bench CA" 2> /dev/null
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
        -keyout "$dir/server.key" -out "$dir/server.csr" \
        -subj "/CN=localhost" 2> /dev/null
    printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' > "$dir/server.ext"
    openssl x509 -req -in "$dir/server.csr" -CA "$dir/ca.crt" \
        -CAkey "$dir/ca.key" -CAcreateserial -days 30 \
        -extfile "$dir/server.ext" -out "$dir/server.crt" 2> /dev/null
}

# the redis-server arguments of a TLS port with those certificates
txval_tls_redis_args() {
    local dir=$1 port=$2
    echo "--tls-port $port --tls-cert-file $dir/server.crt" \
         "--tls-key-file $dir/server.key --tls-ca-cert-file $dir/ca.crt" \
         "--tls-auth-clients no"
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

# Postgres refuses to run as root: the cluster belongs to the postgres
# user (Debian's package creates it), in DIR, on 127.0.0.1:PORT and a unix
# socket in DIR. Database "txval", user "txval" (password "txval"), schema
# and seed from docker/initdb/.
#
#   txval_pg_start PORT DIR        (creates the cluster the first time)
#   txval_pg_stop DIR
#   txval_pg_psql PORT SQL...      (as the postgres superuser)

TXVAL_PG_BIN=${TXVAL_PG_BIN:-/usr/lib/postgresql/15/bin}

txval_pg_as() {
    if [ "$(id -u)" -eq 0 ]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

txval_pg_start() {
    local port=$1 dir top
    dir=$(realpath -m "$2")
    top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
    mkdir -p "$dir"
    [ "$(id -u)" -eq 0 ] && chown postgres: "$dir"
    chmod 700 "$dir"
    if [ ! -f "$dir/PG_VERSION" ]; then
        txval_pg_as "$TXVAL_PG_BIN/initdb" -D "$dir" -U postgres \
            --auth-local=trust --auth-host=md5 > "$dir.initdb.log" 2>&1 || {
            cat "$dir.initdb.log" >&2
            return 1
        }
        local fresh=1
    fi
    txval_pg_stop "$dir"
    txval_pg_as "$TXVAL_PG_BIN/pg_ctl" -D "$dir" -l "$dir/server.log" -w \
        -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200" \
        start > /dev/null || {
        tail -20 "$dir/server.log" >&2
        return 1
    }
    if [ -n "${fresh:-}" ]; then
        TXVAL_PG_DB=postgres txval_pg_psql "$port" "$dir" \
            -c "CREATE ROLE txval LOGIN PASSWORD 'txval'" \
            -c "CREATE DATABASE txval OWNER txval" > /dev/null
        local f
        for f in "$top"/docker/initdb/*.sql; do
            txval_pg_as env PGPASSWORD=txval psql -q -h 127.0.0.1 -p "$port" \
                -U txval -d txval -v ON_ERROR_STOP=1 -f "$f" > /dev/null
        done
    fi
}

txval_pg_stop() {
    local dir=$1
    [ -f "$dir/postmaster.pid" ] || return 0
    txval_pg_as "$TXVAL_PG_BIN/pg_ctl" -D "$dir" -m fast -w stop \
        > /dev/null 2>&1 || true
}

txval_pg_psql() {
    local port=$1 dir=$2
    shift 2
    txval_pg_as psql -q -X -h "$dir" -p "$port" -U postgres \
        -d "${TXVAL_PG_DB:-txval}" \
        -v ON_ERROR_STOP=1 "$@"
}
