#!/usr/bin/env bash
# Configure an nginx source tree for building the txval module.
#
#   scripts/configure.sh BUILD_DIR [NGINX_SRC] [extra configure args...]
#
# Without NGINX_SRC: copies Debian's /usr/share/nginx/src (nginx-dev) and
# configures with the flags Debian's nginx was built with (conf_flags), so
# the .so loads into /usr/sbin/nginx. With NGINX_SRC: configures a copy of
# that tree with --with-compat plus $NGINX_CONF_FLAGS.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
build=$1
src=${2:-}
shift 2 || shift $#

rm -rf "$build/src"
mkdir -p "$build"

if [ -z "$src" ]; then
    debian=/usr/share/nginx/src
    if [ ! -f "$debian/conf_flags" ]; then
        echo "configure.sh: $debian missing: apt-get install -y nginx-dev" >&2
        exit 1
    fi
    cp -a "$debian" "$build/src"
    # shellcheck disable=SC1091
    . "$debian/conf_flags"
    flags=("${NGX_CONF_FLAGS[@]}")
else
    if [ ! -x "$src/configure" ] && [ ! -x "$src/auto/configure" ]; then
        echo "configure.sh: $src is not an nginx source tree" >&2
        exit 1
    fi
    cp -a "$src" "$build/src"
    # shellcheck disable=SC2206
    flags=(--with-compat ${NGINX_CONF_FLAGS:-})
fi

cd "$build/src"
conf=./configure
[ -x "$conf" ] || conf=./auto/configure

echo "configure.sh: configuring nginx in $build/src"
"$conf" "${flags[@]}" "$@" --add-dynamic-module="$top" \
    > "$build/configure.log" 2>&1 || {
    tail -30 "$build/configure.log" >&2
    echo "configure.sh: configure failed; full log: $build/configure.log" >&2
    exit 1
}
