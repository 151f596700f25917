#!/usr/bin/env bash
# `make fuzz`: libFuzzer (Debian's clang 14) harnesses over the pure C
# units, built with ASan and UBSan, each run for FUZZ_SECONDS (default 60)
# from the seed corpus in fuzz/corpus/. A crash input is saved under
# build/fuzz/ and fails the run: add it to fuzz/corpus/ once fixed. cJSON
# is linked as the oracle the JSON scanner is held against (fuzz_txn,
# fuzz_map); the module itself does not use it.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
secs=${FUZZ_SECONDS:-60}
out=$top/build/fuzz
src=$top/ngx_http_txval_module
units="$src/ngx_http_txval_json.c $src/ngx_http_txval_txn.c
       $src/ngx_http_txval_digest.c
       $src/ngx_http_txval_rules.c $src/ngx_http_txval_output.c
       $src/ngx_http_txval_record.c $src/ngx_http_txval_prometheus.c"

mkdir -p "$out"

# cJSON's headers: where pkg-config says, else both usual places
# (<cJSON.h> in /usr/include/cjson on Debian, /usr/include elsewhere)
cjson_cflags=$(pkg-config --cflags libcjson 2>/dev/null \
               || echo "-I/usr/include/cjson -I/usr/include")
cjson_libs=$(pkg-config --libs libcjson 2>/dev/null || echo "-lcjson")

status=0
for h in txn map record rules; do
    # shellcheck disable=SC2086
    clang -g -O1 -fsanitize=fuzzer,address,undefined \
        -fno-sanitize-recover=undefined -I"$src" $cjson_cflags \
        -o "$out/fuzz_$h" "$top/fuzz/fuzz_$h.c" $units $cjson_libs -lcrypto
    mkdir -p "$out/corpus_$h"
    echo "fuzz: $h for ${secs}s"
    if ! "$out/fuzz_$h" -max_total_time="$secs" -max_len=4096 \
            -artifact_prefix="$out/crash_${h}_" \
            "$out/corpus_$h" "$top/fuzz/corpus/$h" \
            > "$out/fuzz_$h.log" 2>&1; then
        tail -40 "$out/fuzz_$h.log"
        status=1
    else
        tail -1 "$out/fuzz_$h.log"
    fi
done

exit $status
