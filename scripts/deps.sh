#!/usr/bin/env bash
# Install, from Debian 12 packages only, what txval needs and is missing.
# One `apt-get update`, then one `apt-get install -y` of the missing ones.
# Used by make (build, test, run, bench) and by docker/Dockerfile.
#
#   scripts/deps.sh [build] [test] [run] [load] [bench] [asan] [valgrind]
#                   [lint] [deb] [fuzz] [dashboard]
#
# load: what drives traffic (faults, soak); bench: that and the Lua gate
# and the Go service txval is compared with; lint: promtool (prometheus)
# too; dashboard: Prometheus and gnuplot for make dashboard-snapshot.
#
# With no argument: build + test.

# the pkgs_* sets are read as ${!v} below
# shellcheck disable=SC2034
set -euo pipefail

pkgs_build="gcc make nginx-core nginx-dev libhiredis-dev libpq-dev"
pkgs_test="perl libtest-base-perl libtext-diff-perl libwww-perl
           redis-server redis-tools redis-sentinel postgresql
           postgresql-client procps curl prometheus dpkg-dev
           libnginx-mod-http-echo libnginx-mod-http-lua python3-yaml
           openssl"
pkgs_run="redis-server redis-tools postgresql postgresql-client curl"
pkgs_load="wrk procps gdb gnuplot-nox"
pkgs_bench="wrk procps gdb gnuplot-nox libnginx-mod-http-ndk
            libnginx-mod-http-lua lua-nginx-redis lua-cjson golang-go
            golang-github-gomodule-redigo-dev golang-github-jackc-pgx-v4-dev"
pkgs_asan="libasan8"
pkgs_valgrind="valgrind"
pkgs_lint="shellcheck yamllint python3-yaml prometheus"
pkgs_deb="dpkg-dev"
pkgs_fuzz="clang libclang-rt-14-dev libcjson-dev"
pkgs_dashboard="prometheus gnuplot-nox curl procps python3"

want=""
[ $# -eq 0 ] && set -- build test
for set in "$@"; do
    v="pkgs_$set"
    if [ -z "${!v+x}" ]; then
        echo "deps.sh: unknown set '$set'" >&2
        exit 2
    fi
    want="$want ${!v}"
done

missing=""
for p in $want; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null \
         | grep -q 'install ok installed'; then
        case " $missing " in *" $p "*) ;; *) missing="$missing $p" ;; esac
    fi
done

[ -z "$missing" ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
    SUDO=sudo
else
    SUDO=
fi

echo "deps.sh: installing:$missing"
# (sudo drops the environment: DEBIAN_FRONTEND goes through env)
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq
# policy-rc.d keeps Debian's postinst from starting system services
# (nginx, redis, postgres) on their standard ports, as root and under sudo
# alike; removed again once apt-get is done. One already there is left
# alone.
if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d > /dev/null
    $SUDO chmod 0755 /usr/sbin/policy-rc.d
    # shellcheck disable=SC2064
    trap "$SUDO rm -f /usr/sbin/policy-rc.d" EXIT
fi
# shellcheck disable=SC2086
$SUDO env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -qq --no-install-recommends $missing
