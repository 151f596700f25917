#!/usr/bin/env bash
# `make run`: nginx with the txval module and examples/txval.conf on
# 127.0.0.1:8080, in the foreground. Ctrl-C stops everything it started.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
module=${TXVAL_MODULE:-$top/build/ngx_http_txval_module.so}
nginx=${NGINX_BIN:-/usr/sbin/nginx}
dir=$top/build/run

mkdir -p "$dir/conf" "$dir/logs" "$dir/tmp"

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

    include $top/examples/txval.conf;
}
EOC

"$nginx" -p "$dir/" -c conf/nginx.conf -t -q

cat <<EOM

txval is running on http://127.0.0.1:8080 (logs in $dir/logs). Try:

  curl -s -H 'Content-Type: application/json' \\
       -d '{"id":"tx_1001","amount":2500,"currency":"USD","merchant_id":"m_acme","card_token":"tok_4242"}' \\
       http://127.0.0.1:8080/v1/validate

Ctrl-C stops it.

EOM

exec "$nginx" -p "$dir/" -c conf/nginx.conf -g 'daemon off;'
