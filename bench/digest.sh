#!/usr/bin/env bash
# `make bench-digest`: the native cost of the content fingerprint and of
# the body hash, next to the parse (bench/digest.c); callgrind's counts
# (make bench-callgrind) run SHA-256 without the CPU's SHA instructions.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
src=$top/ngx_http_txval_module
out=$top/build/digest
mkdir -p "$top/build"

cc -std=c99 -D_DEFAULT_SOURCE -O2 -I"$src" \
    -o "$out" "$top/bench/digest.c" "$src/ngx_http_txval_json.c" \
    "$src/ngx_http_txval_txn.c" "$src/ngx_http_txval_digest.c" -lcrypto
grep -q -w sha_ni /proc/cpuinfo && echo "cpu: SHA instructions (sha_ni)" \
    || echo "cpu: no SHA instructions"
"$out"
