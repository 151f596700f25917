#!/usr/bin/env bash
# Runs the t/ suite with prove (called by `make test`, `make asan`,
# `make valgrind`). Environment, set by the Makefile:
#   TXVAL_MODULE   the module .so to test
#   NGINX_BIN      the nginx binary to load it into
#   SANITIZE       "address" for an ASan+UBSan module build
#   PROVE_FLAGS    extra prove flags, e.g. -I/path/to/test-nginx/lib to run
#                  the suite under upstream Test::Nginx
#   TESTS          the .t files to run (default: t/*.t and the runner's own
#                  self-test)
#   TEST_NGINX_REDIS_PORT, TEST_NGINX_PG_PORT   the suite's Redis and
#                  Postgres (default 16390, 16432; their data under build/)
# Upstream Test::Nginx's own variables (TEST_NGINX_BINARY,
# TEST_NGINX_USE_HUP, TEST_NGINX_USE_VALGRIND, TEST_NGINX_RANDOMIZE, ...)
# pass through.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"

export TEST_NGINX_TXVAL_MODULE=${TXVAL_MODULE:-$top/build/ngx_http_txval_module.so}
export TEST_NGINX_BINARY=${TEST_NGINX_BINARY:-${NGINX_BIN:-/usr/sbin/nginx}}

if [ -n "${SANITIZE:-}" ]; then
    # Debian's nginx is not built with ASan: preload the runtime into it
    # (and only into it: a small wrapper, so prove itself stays plain).
    # Leak checking is valgrind's job (make valgrind): Debian's nginx is
    # built without frame pointers and keeps its cycle's memory at exit, so
    # LeakSanitizer could only tell its leaks from ours by suppressing
    # ours too. ASan here: overflows, use after free; UBSan: undefined
    # behaviour, fatal.
    logs=$top/build/sanitizer-logs
    rm -rf "$logs"
    mkdir -p "$logs"
    wrapper=$top/build/nginx-$SANITIZE
    libasan=$(gcc -print-file-name=libasan.so)
    cat > "$wrapper" <<EOW
#!/bin/sh
export LD_PRELOAD=$libasan
export ASAN_OPTIONS=log_path=$logs/asan:detect_leaks=0
export UBSAN_OPTIONS=log_path=$logs/ubsan:print_stacktrace=1
exec $TEST_NGINX_BINARY "\$@"
EOW
    chmod +x "$wrapper"
    export TEST_NGINX_BINARY=$wrapper
fi

if [ -n "${TEST_NGINX_USE_VALGRIND:-}" ]; then
    export TEST_NGINX_VALGRIND_SUPPRESS=$top/t/valgrind.supp
fi

# a Redis for the suite (tests that stop, stall or restart Redis start
# their own)
. scripts/services.sh
export TEST_NGINX_REDIS_PORT=${TEST_NGINX_REDIS_PORT:-16390}
redis_dir=$top/build/test-redis-$TEST_NGINX_REDIS_PORT
txval_redis_start "$TEST_NGINX_REDIS_PORT" "$redis_dir"

# and a Postgres with the schema, the demo seed and the tests' fixtures
export TEST_NGINX_PG_PORT=${TEST_NGINX_PG_PORT:-16432}
export TEST_NGINX_PG_DIR=$top/build/test-pg-$TEST_NGINX_PG_PORT
txval_pg_start "$TEST_NGINX_PG_PORT" "$TEST_NGINX_PG_DIR"
# the lookup cache's triggers (docker/initdb/03-notify.sql), also on a
# cluster made before they were shipped
txval_pg_psql "$TEST_NGINX_PG_PORT" "$TEST_NGINX_PG_DIR" \
    < docker/initdb/03-notify.sql
txval_pg_psql "$TEST_NGINX_PG_PORT" "$TEST_NGINX_PG_DIR" < t/fixtures.sql
# the cluster's real directory (its socket directory), which may have been
# moved out of a home directory postgres cannot reach (scripts/services.sh)
TEST_NGINX_PG_DIR=$(txval_pg_dir "$TEST_NGINX_PG_DIR")

# The blocks' nginx runs its workers as nginx's default user (nobody) when
# the suite runs as root: they must reach the server root (request bodies
# in temporary files, static files). Under a home directory of mode 0700
# they cannot, so the server root moves to a private directory under
# $TMPDIR (removed when the suite passes, kept for its logs when not).
servroot_tmp=""
if [ "$(id -u)" -eq 0 ] && [ -z "${TEST_NGINX_SERVROOT:-}" ] \
   && ! runuser -u nobody -- test -x "$top/t" 2>/dev/null; then
    servroot_tmp=$(mktemp -d "${TMPDIR:-/tmp}/txval-test.XXXXXX")
    chmod 0755 "$servroot_tmp"
    mkdir -m 0755 "$servroot_tmp/t"
    # (a randomized server root is t/servroot_PID next to it)
    export TEST_NGINX_SERVROOT=$servroot_tmp/t/servroot
    echo "test.sh: nginx's workers cannot reach $top: server root in" \
         "$TEST_NGINX_SERVROOT"
fi

status=0

# (run by the EXIT trap)
# shellcheck disable=SC2317
finish() {
    txval_redis_stop "$redis_dir"
    txval_pg_stop "$TEST_NGINX_PG_DIR"
    if [ -n "$servroot_tmp" ]; then
        if [ "$status" -eq 0 ]; then
            rm -rf "$servroot_tmp"
        else
            echo "test.sh: logs kept in $servroot_tmp" >&2
        fi
    fi
}
trap finish EXIT

if [ -z "${TESTS:-}" ]; then
    # the runner's own self-test (plain nginx, no module): the runner can
    # pass and can fail
    TXVAL_NO_MODULE=1 TXVAL_OWN_RUNNER=1 prove -I t/lib t/runner-selftest/ \
        || status=1
    env -u TEST_NGINX_USE_VALGRIND bash t/runner-selftest/check-fails.sh \
        || status=1
fi

# shellcheck disable=SC2086
prove ${PROVE_FLAGS:-} -I t/lib ${TESTS:-t/*.t} || status=1

if [ -n "${SANITIZE:-}" ]; then
    if compgen -G "$logs/*" > /dev/null; then
        echo "sanitizer reports in $logs:" >&2
        cat "$logs"/* >&2
        status=1
    else
        echo "sanitizer: no reports"
    fi
fi

exit $status
