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

# Postgres refuses to run as root. As root, the cluster belongs to the
# postgres user (Debian's package creates it); as anyone else, to that user
# (sudo is never used here). DIR is where the caller keeps the cluster, on
# 127.0.0.1:PORT and a unix socket in the cluster's directory. Database
# "txval", user "txval" (password "txval"), schema and seed from
# docker/initdb/.
#
# The postgres user must be able to reach the cluster's directory, which it
# cannot under a home directory of mode 0700 (Debian 12's default: /root,
# /home/USER). Then, as root, the cluster lives in a private directory made
# with mktemp under $TMPDIR (or /tmp) and owned by postgres, and DIR is a
# symbolic link to it; `make clean` removes both. Every file is fed to psql
# on its standard input, read by the caller, never opened by postgres.
#
#   txval_pg_start PORT DIR        (creates the cluster the first time;
#                                   TXVAL_PG_OPTIONS: more server options,
#                                   e.g. "-c shared_preload_libraries=...")
#   txval_pg_stop DIR
#   txval_pg_psql PORT DIR [psql args...]   (as the postgres superuser;
#                                            SQL with -c, or on stdin)
#   txval_pg_dir DIR               the cluster's real directory (its socket
#                                  directory too), for -D and -h
#   txval_pg_home DIR              make DIR a place the cluster's owner can
#                                  use (relocating it when needed); prints
#                                  the real directory
#   txval_pg_remove DIR            stop it, delete it (and its relocated
#                                  directory)

TXVAL_PG_BIN=${TXVAL_PG_BIN:-/usr/lib/postgresql/15/bin}

# runs as the cluster's owner: as root, the postgres user (from /, and
# without the caller's Perl include path: the caller's directories may be
# out of its reach, and Debian's psql is a Perl script); else the caller
txval_pg_as() {
    if [ "$(id -u)" -eq 0 ]; then
        (cd / && runuser -u postgres -- env -u PERL5LIB -u PERLLIB "$@")
    else
        "$@"
    fi
}

# true when the cluster's owner can reach directory $1
txval_pg_reaches() {
    [ "$(id -u)" -ne 0 ] && return 0
    runuser -u postgres -- test -x "$1" 2>/dev/null
}

txval_pg_dir() {
    realpath -m "$1"
}

txval_pg_home() {
    local want=$1 dir parent base priv
    # a link whose private directory is gone (a reboot cleaned /tmp)
    if [ -L "$want" ] && [ ! -d "$want" ]; then
        rm -f "$want"
    fi
    dir=$(realpath -m "$want")
    parent=$(dirname "$dir")
    mkdir -p "$parent"
    if txval_pg_reaches "$parent"; then
        mkdir -p "$dir"
        [ "$(id -u)" -eq 0 ] && chown postgres: "$dir"
        chmod 700 "$dir"
        echo "$dir"
        return 0
    fi
    # out of postgres' reach: a private directory it owns, DIR a link to it
    txval_pg_stop "$want"
    rm -rf "$want"
    base=${TMPDIR:-/tmp}
    txval_pg_reaches "$base" || base=/tmp
    priv=$(mktemp -d "$base/txval-pg.XXXXXX") || return 1
    chown postgres: "$priv"
    chmod 700 "$priv"
    ln -s "$priv" "$want"
    echo "$priv"
}

txval_pg_start() {
    local port=$1 want=$2 dir top fresh="" f
    top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
    dir=$(txval_pg_home "$want") || return 1
    if [ ! -f "$dir/PG_VERSION" ]; then
        # the log next to DIR, written by this shell (not by postgres)
        txval_pg_as "$TXVAL_PG_BIN/initdb" -D "$dir" -U postgres \
            --auth-local=trust --auth-host=md5 > "$want.initdb.log" 2>&1 || {
            cat "$want.initdb.log" >&2
            return 1
        }
        fresh=1
    fi
    txval_pg_stop "$dir"
    txval_pg_as "$TXVAL_PG_BIN/pg_ctl" -D "$dir" -l "$dir/server.log" -w \
        -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200 ${TXVAL_PG_OPTIONS:-}" \
        start > /dev/null || {
        tail -20 "$dir/server.log" >&2
        return 1
    }
    if [ -n "$fresh" ]; then
        TXVAL_PG_DB=postgres txval_pg_psql "$port" "$dir" \
            -c "CREATE ROLE txval LOGIN PASSWORD 'txval'" \
            -c "CREATE DATABASE txval OWNER txval" > /dev/null
        for f in "$top"/docker/initdb/*.sql; do
            txval_pg_as env PGPASSWORD=txval psql -q -X -h 127.0.0.1 \
                -p "$port" -U txval -d txval -v ON_ERROR_STOP=1 \
                > /dev/null < "$f" || {
                echo "services.sh: loading $f failed" >&2
                return 1
            }
        done
    fi
}

txval_pg_stop() {
    local dir
    dir=$(realpath -m "$1")
    [ -f "$dir/postmaster.pid" ] || return 0
    txval_pg_as "$TXVAL_PG_BIN/pg_ctl" -D "$dir" -m fast -w stop \
        > /dev/null 2>&1 || true
}

txval_pg_psql() {
    local port=$1 dir
    dir=$(realpath -m "$2")
    shift 2
    txval_pg_as psql -q -X -h "$dir" -p "$port" -U postgres \
        -d "${TXVAL_PG_DB:-txval}" \
        -v ON_ERROR_STOP=1 "$@"
}

txval_pg_remove() {
    local want=$1
    txval_pg_stop "$want"
    if [ -L "$want" ]; then
        case $(readlink "$want") in
            */txval-pg.*) rm -rf "$(readlink "$want")" ;;
        esac
        rm -f "$want"
    else
        rm -rf "$want"
    fi
    rm -f "$want.initdb.log"
}
