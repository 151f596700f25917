#!/usr/bin/env bash
# `make run`: nginx with the txval module and the examples
# (examples/txval.conf: verdicts on 127.0.0.1:8080; examples/txval-metrics.conf:
# metrics on 127.0.0.1:9145) in the foreground, with its own Redis
# (127.0.0.1:6390) and Postgres (127.0.0.1:6432, schema and demo seed from
# docker/initdb/). Ctrl-C stops everything it started.
#
# Works from any directory: as root, nginx's workers run as nginx's default
# user and Postgres as the postgres user, neither of which can reach a clone
# under a home directory of mode 0700 (Debian 12's default). So the
# workers' temporary files go to a private directory under $TMPDIR, and
# Postgres keeps its data where scripts/services.sh says; everything else
# (configuration, logs, Redis) stays under build/run/.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
module=${TXVAL_MODULE:-$top/build/ngx_http_txval_module.so}
nginx=${NGINX_BIN:-/usr/sbin/nginx}
dir=$top/build/run
redis_port=${TXVAL_RUN_REDIS_PORT:-6390}
pg_port=${TXVAL_RUN_PG_PORT:-6432}

# shellcheck source=scripts/services.sh
. "$top/scripts/services.sh"

mkdir -p "$dir/conf" "$dir/logs"

tmp=""
nginx_pid=""
stop() {
    trap - INT TERM EXIT
    if [ -n "$nginx_pid" ]; then
        kill -QUIT "$nginx_pid" 2>/dev/null || true
        wait "$nginx_pid" 2>/dev/null || true
    fi
    txval_redis_stop "$dir/redis"
    txval_pg_stop "$dir/pg"
    [ -n "$tmp" ] && rm -rf "$tmp"
    echo "stopped"
}
trap stop INT TERM EXIT

# nginx creates its temporary directories in it for the workers' user
tmp=$(mktemp -d "${TMPDIR:-/tmp}/txval-run.XXXXXX")
chmod 0711 "$tmp"

txval_redis_start "$redis_port" "$dir/redis"
txval_pg_start "$pg_port" "$dir/pg"
# the lookup cache's triggers, also on a cluster made before they shipped
txval_pg_psql "$pg_port" "$dir/pg" < "$top/docker/initdb/03-notify.sql"

# the examples as they are, but for the backends' ports and the log
example() {
    local from=$top/examples/$1 to=$dir/conf/$1 want
    sed -e "s|txval_redis 127\\.0\\.0\\.1:6379 |txval_redis 127.0.0.1:$redis_port |" \
        -e "s|host=127\\.0\\.0\\.1 port=5432 |host=127.0.0.1 port=$pg_port |" \
        -e "s|access_log /var/log/nginx/|access_log $dir/logs/|" \
        "$from" > "$to"
    shift
    for want in "$@"; do
        grep -qF -- "$want" "$to" || {
            echo "run.sh: $from changed: no '$want' after adapting it" >&2
            return 1
        }
    done
}
example txval.conf "txval_redis 127.0.0.1:$redis_port " \
    "host=127.0.0.1 port=$pg_port " "access_log $dir/logs/txval.log"
example txval-metrics.conf

cat > "$dir/conf/nginx.conf" <<EOC
load_module $module;

worker_processes 2;
error_log logs/error.log notice;
pid logs/nginx.pid;

events {
    worker_connections 1024;
}

http {
    default_type application/octet-stream;
    client_body_temp_path $tmp/body;
    proxy_temp_path $tmp/proxy;
    fastcgi_temp_path $tmp/fastcgi;
    uwsgi_temp_path $tmp/uwsgi;
    scgi_temp_path $tmp/scgi;

    include $dir/conf/txval.conf;
    include $dir/conf/txval-metrics.conf;
}
EOC

"$nginx" -p "$dir/" -c conf/nginx.conf -t -q

cat <<EOM

txval is running on http://127.0.0.1:8080 (Redis :$redis_port, Postgres
:$pg_port, metrics on http://127.0.0.1:9145/metrics, logs in $dir/logs).
An approval:

  curl -s -H 'Content-Type: application/json' \\
       -d '{"id":"tx_1001","amount":2500,"currency":"USD","merchant_id":"m_acme","card_token":"tok_4242","country":"US"}' \\
       http://127.0.0.1:8080/v1/validate

A decline (lost card, blocked BIN):

  curl -s -H 'Content-Type: application/json' \\
       -d '{"id":"tx_1002","amount":2500,"currency":"USD","merchant_id":"m_acme","card_token":"tok_lost","card_bin":"66666601"}' \\
       http://127.0.0.1:8080/v1/validate

A change in Postgres is enforced within milliseconds, although txval keeps
the rows in shared memory (txval_lookup_cache ... notify=txval):

  PGPASSWORD=txval psql -h 127.0.0.1 -p $pg_port -U txval txval \\
       -c "UPDATE cards SET status = 'stolen' WHERE token = 'tok_4242'"

then send the first transaction again with a new id ("tx_1003"): declined,
card_blocked.

Ctrl-C stops it.

EOM

"$nginx" -p "$dir/" -c conf/nginx.conf -g 'daemon off;' &
nginx_pid=$!
wait "$nginx_pid"
