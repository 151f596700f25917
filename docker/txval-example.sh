#!/bin/sh
# The example configuration as the image runs it, and a config test that
# works where the compose service names do not resolve (an image build,
# CI). Used by docker/Dockerfile and scripts/lint.sh.
#
#   txval-example.sh FILE          adapt examples/txval.conf (a copy) in
#                                  place: listen on all addresses, access
#                                  log to stdout, the backends are the
#                                  compose services "redis" and "postgres"
#   txval-example.sh --test CONF   nginx -t on CONF, with "redis" and
#                                  "postgres" replaced by 127.0.0.1 in a
#                                  copy of CONF's directory (txval resolves
#                                  host names at config load); TXVAL_NGINX
#                                  names the binary (default nginx)
set -eu

if [ "${1:-}" = "--test" ]; then
    conf=$2
    copy=$(mktemp -d "${TMPDIR:-/tmp}/txval-example.XXXXXX")
    cp -a "$(dirname "$conf")/." "$copy/"
    for f in "$copy"/*.conf; do
        sed -i -e 's/txval_redis redis:/txval_redis 127.0.0.1:/' \
               -e 's/host=postgres /host=127.0.0.1 /' "$f"
    done
    # a test touches nothing outside the copy: nginx -t opens the pid
    # file and makes (and hands to the workers' user) the temporary
    # directories
    sed -i -e "s|^pid .*|pid $copy/nginx.pid;|" \
           -e "s|^http {|http {\\n    client_body_temp_path $copy/body; proxy_temp_path $copy/proxy; fastcgi_temp_path $copy/fastcgi; uwsgi_temp_path $copy/uwsgi; scgi_temp_path $copy/scgi;|" \
        "$copy/$(basename "$conf")"
    rc=0
    "${TXVAL_NGINX:-nginx}" -t -q -c "$copy/$(basename "$conf")" || rc=$?
    rm -rf "$copy"
    exit "$rc"
fi

file=$1
sed -i -e 's|^\( *\)listen 127\.0\.0\.1:8080;|\1listen 8080;|' \
       -e 's|access_log /var/log/nginx/txval\.log|access_log /dev/stdout|' \
       -e 's|^txval_redis 127\.0\.0\.1:6379 |txval_redis redis:6379 |' \
       -e 's|"host=127\.0\.0\.1 port=5432 |"host=postgres port=5432 |' \
       "$file"

# the example changed under us: fail the build rather than run a container
# that listens on its own loopback only or looks for its backends there
for want in '^ *listen 8080;' 'access_log /dev/stdout' \
            '^txval_redis redis:6379 ' '"host=postgres port=5432 '; do
    if ! grep -q "$want" "$file"; then
        echo "txval-example.sh: $file has no '$want' after adapting it" >&2
        exit 1
    fi
done
