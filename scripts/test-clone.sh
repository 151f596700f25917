#!/usr/bin/env bash
# `make test-clone` (CI): a newcomer's first hour, as the README tells it.
#
#   1. git clone of this repository (its HEAD) into a fresh `mktemp -d`,
#      mode 0700 like every Debian 12 home directory, so that neither
#      nginx's workers nor the postgres user can reach the clone;
#   2. `make run` in it, in a process group of its own as a terminal would
#      start it; once it answers, the README's first curl command, run as
#      written: its output must be the one the README shows;
#   3. Ctrl-C (SIGINT to that process group): make, nginx, Redis and
#      Postgres all stop, their ports close, the private directories made
#      for the run are gone;
#   4. `make test` in the same clone (TESTS=... passes through; CLONE_TEST=0
#      skips it);
#   5. the clone and the Postgres data it made are removed (CLONE_KEEP=1
#      keeps them).
#
# As root it runs inside its own network namespace (unshare -n), like the
# tests, so that the fixed ports (8080, 9145, 6390, 6432, the suite's) do
# not meet anyone else's; the packages are installed before that, while
# apt-get can still reach the network. As another user it runs in the
# host's network.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)

if [ "$(id -u)" -eq 0 ] && [ -z "${TXVAL_NETNS:-}" ]; then
    "$top/scripts/deps.sh" build run test
    # shellcheck disable=SC2016
    exec unshare -n env TXVAL_NETNS=1 bash -c \
        'ip link set lo up && exec "$0" "$@"' "$0" "$@"
fi

clone=$(mktemp -d "${TMPDIR:-/tmp}/txval-clone.XXXXXX")
repo=$clone/txval
log=$clone/make-run.log
run_pid=""
status=0

say() { echo "test-clone: $*"; }
fail() {
    echo "test-clone: FAIL: $*" >&2
    status=1
}

# (run by the EXIT trap)
# shellcheck disable=SC2317
cleanup() {
    if [ -n "$run_pid" ] && kill -0 "$run_pid" 2>/dev/null; then
        kill -INT -- "-$run_pid" 2>/dev/null
        sleep 5
        kill -KILL -- "-$run_pid" 2>/dev/null
    fi
    if [ -z "${CLONE_KEEP:-}" ]; then
        [ -d "$repo" ] && make -C "$repo" -s clean > /dev/null 2>&1
        rm -rf "$clone"
    else
        say "kept $clone"
    fi
}
trap cleanup EXIT

say "cloning $(git -C "$top" rev-parse --short HEAD) into $repo" \
    "($(stat -c %a "$clone"), $(id -un))"
git clone -q "$top" "$repo"
cd "$repo"

# --- make run, as a terminal would start it: its own process group

setsid make run > "$log" 2>&1 < /dev/null &
run_pid=$!

up=0
for _ in $(seq 600); do
    if curl -s -o /dev/null http://127.0.0.1:8080/; then
        up=1
        break
    fi
    kill -0 "$run_pid" 2>/dev/null || break
    sleep 0.5
done
if [ "$up" -eq 0 ]; then
    tail -30 "$log" >&2
    fail "make run did not come up on 127.0.0.1:8080"
    exit 1
fi
say "make run is up ($(grep -c . "$log") lines of output)"

# the README's first curl (a "$ curl" line, its continuations) and the
# answer it shows on the line after
mapfile -t first < <(awk '
    !found && /^ *\$ curl / { found = 1; sub(/^ *\$ /, "") }
    found == 1 { print; if (!/\\$/) found = 2; next }
    found == 2 { sub(/^ */, ""); print; exit }' README.md)
if [ "${#first[@]}" -lt 2 ]; then
    fail "no '\$ curl' example followed by its output in README.md"
else
    expect=${first[-1]}
    unset 'first[-1]'
    cmd=$(printf '%s\n' "${first[@]}")
    got=$(bash -c "$cmd" 2>&1) || true
    if [ "$got" = "$expect" ]; then
        say "the README's first curl answers as the README shows: $got"
    else
        fail "the README's first curl: $cmd"
        echo "  README shows: $expect" >&2
        echo "  got:          $got" >&2
    fi
    case $got in
        *'"verdict":"approved"'* | *'"verdict":"declined"'*) ;;
        *) fail "no verdict in the answer" ;;
    esac
fi

# --- Ctrl-C

pg=$(readlink -f build/run/pg || true)
kill -INT -- "-$run_pid"
stopped=0
for _ in $(seq 300); do
    if ! kill -0 "$run_pid" 2>/dev/null; then
        stopped=1
        break
    fi
    sleep 0.1
done
if [ "$stopped" -eq 1 ]; then
    wait "$run_pid" 2>/dev/null || true
    run_pid=""
    say "make run ended on SIGINT"
else
    fail "make run still runs 30 s after SIGINT"
fi
grep -qx stopped "$log" || fail "make run did not say 'stopped'"

left=$(pgrep -af -- "$repo|${pg:-/nonexistent}" | grep -v pgrep || true)
if [ -n "$left" ]; then
    fail "processes left behind:"
    echo "$left" >&2
fi
listening=$(ss -Hltn 2>/dev/null \
    | awk '$4 ~ /:(8080|9145|6390|6432)$/ {print $4}' | paste -sd' ')
[ -z "$listening" ] || fail "still listening: $listening"
if compgen -G "${TMPDIR:-/tmp}/txval-run.*" > /dev/null; then
    for d in "${TMPDIR:-/tmp}"/txval-run.*; do
        # another run's (a user's make run) is not ours to judge: only
        # one that is older than this clone
        [ "$d" -nt "$clone" ] && fail "$d left behind"
    done
fi
[ "$status" -eq 0 ] && say "Ctrl-C stopped nginx, Redis and Postgres"

# --- make test, in the same clone

if [ "${CLONE_TEST:-1}" != 0 ]; then
    say "make test in $repo${TESTS:+ (TESTS=$TESTS)}"
    make test || fail "make test in the clone"
fi

if [ "$status" -eq 0 ]; then
    say "PASS"
else
    say "FAILED"
fi
exit "$status"
