#!/usr/bin/env bash
# `make run`: nginx with the txval module and examples/txval.conf on
# 127.0.0.1:8080 in the foreground, with its own Redis (127.0.0.1:6390) and
# Postgres (127.0.0.1:6432, schema and demo seed from docker/initdb/), all
# under build/run/. Ctrl-C stops everything it started.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
module=${TXVAL_MODULE:-$top/build/ngx_http_txval_module.so}
nginx=${NGINX_BIN:-/usr/sbin/nginx}
dir=$top/build/run
redis_port=${TXVAL_RUN_REDIS_PORT:-6390}
pg_port=${TXVAL_RUN_PG_PORT:-6432}

# shellcheck source=scripts/services.sh
. "$top/scripts/services.sh"

mkdir -p "$dir/conf" "$dir/logs" "$dir/tmp"

stop() {
    trap - INT TERM EXIT
    [ -n "${nginx_pid:-}" ] && kill -QUIT "$nginx_pid" 2>/dev/null && wait "$nginx_pid" 2>/dev/null
    txval_redis_stop "$dir/redis"
    txval_pg_stop "$dir/pg"
    echo "stopped"
}
trap stop INT TERM EXIT

txval_redis_start "$redis_port" "$dir/redis"
txval_pg_start "$pg_port" "$dir/pg"

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
    client_body_temp_path $dir/tmp/body;
    proxy_temp_path $dir/tmp/proxy;
    fastcgi_temp_path $dir/tmp/fastcgi;
    uwsgi_temp_path $dir/tmp/uwsgi;
    scgi_temp_path $dir/tmp/scgi;

    txval_redis 127.0.0.1:$redis_port;
    txval_postgres "host=127.0.0.1 port=$pg_port dbname=txval user=txval password=txval";

    include $top/examples/txval.conf;
}
EOC

"$nginx" -p "$dir/" -c conf/nginx.conf -t -q

cat <<EOM

txval is running on http://127.0.0.1:8080 (Redis :$redis_port, Postgres
:$pg_port, logs in $dir/logs). An approval:

  curl -s -H 'Content-Type: application/json' \\
       -d '{"id":"tx_1001","amount":2500,"currency":"USD","merchant_id":"m_acme","card_token":"tok_4242","country":"US"}' \\
       http://127.0.0.1:8080/v1/validate

A decline (lost card, blocked BIN):

  curl -s -H 'Content-Type: application/json' \\
       -d '{"id":"tx_1002","amount":2500,"currency":"USD","merchant_id":"m_acme","card_token":"tok_lost","card_bin":"66666601"}' \\
       http://127.0.0.1:8080/v1/validate

Ctrl-C stops it.

EOM

"$nginx" -p "$dir/" -c conf/nginx.conf -g 'daemon off;' &
nginx_pid=$!
wait "$nginx_pid"
