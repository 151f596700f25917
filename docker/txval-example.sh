#!/bin/sh
# The example configuration as the image runs it, and a config test that
# works where the compose service names do not resolve (an image build,
# CI). Used by docker/Dockerfile and scripts/lint.sh.
#
#   txval-example.sh FILE          adapt examples/txval.conf (a copy) in
#                                  place: listen on all addresses, access
#                                  log to stdout
#   txval-example.sh --test CONF   nginx -t on CONF with "redis" and
#                                  "postgres" replaced by 127.0.0.1 (txval
#                                  resolves host names at config load);
#                                  TXVAL_NGINX names the binary (default
#                                  nginx)
set -eu

if [ "${1:-}" = "--test" ]; then
    conf=$2
    copy=$(dirname "$conf")/.txval-test.conf
    sed -e 's/txval_redis redis:/txval_redis 127.0.0.1:/' \
        -e 's/host=postgres /host=127.0.0.1 /' "$conf" > "$copy"
    rc=0
    "${TXVAL_NGINX:-nginx}" -t -q -c "$copy" || rc=$?
    rm -f "$copy"
    exit "$rc"
fi

file=$1
sed -i -e 's|^\( *\)listen 127\.0\.0\.1:8080;|\1listen 8080;|' \
       -e 's|access_log logs/access\.log|access_log /dev/stdout|' "$file"

# the example changed under us: fail the build rather than run a container
# that listens on its own loopback only
if ! grep -q '^ *listen 8080;' "$file"; then
    echo "txval-example.sh: no 'listen 127.0.0.1:8080;' in $file to open up" >&2
    exit 1
fi
