#!/usr/bin/env bash
# Traffic for the dashboard: a paced mix of what a payment edge sees,
# against txval's verdict location (docker compose's :8080, make run's
# 127.0.0.1:8080), with curl only.
#
#   docker/load.sh [URL]        default http://127.0.0.1:8080/v1/validate
#
#   LOAD_RATE=40       requests per second (one curl a second, parallel
#                      connections, keep-alive)
#   LOAD_SECONDS=0     stop after this many seconds (0: until Ctrl-C)
#   LOAD_PARALLEL=4    connections
#   LOAD_QUIET=0       1: no summary every 10 seconds
#
# The mix, per request (the demo rows of docker/initdb/02-seed.sql):
#   62%  new transactions: most approved (bench merchants and cards,
#        m_acme, m_globex); some declined: lost, stolen or blocked cards,
#        a suspended or unknown merchant, amounts out of range or over the
#        merchant's limit, a currency not allowed or not supported, a
#        blocked BIN, a card from another country with a large amount,
#        a busy card (tok_4242)
#    3%  one hot card (tok_fr): velocity_exceeded after 10 a minute
#   15%  replays of a recent transaction (same body: the stored verdict),
#        now and then of an old one (Redis when the zone evicted it)
#    5%  a recent id with another amount (409 idempotency_conflict)
#    5%  a new transaction sent twice at once (409 idempotency_in_progress
#        for the one that arrives while the other is validated)
#   10%  invalid: malformed JSON, a missing or malformed field, a card
#        number (pan_not_accepted), text/plain (415), GET (405)
# Ends with a count of the answers by status.
set -euo pipefail

url=${1:-http://127.0.0.1:8080/v1/validate}
rate=${LOAD_RATE:-40}
seconds=${LOAD_SECONDS:-0}
parallel=${LOAD_PARALLEL:-4}
quiet=${LOAD_QUIET:-0}
run=$(date +%s)$$
tmp=$(mktemp -d "${TMPDIR:-/tmp}/txval-load.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

command -v curl > /dev/null || { echo "load.sh: curl missing" >&2; exit 1; }

n=0                 # transactions made
recent=()           # bodies of recent transactions, for replays
declare -A status   # answers by status
sent=0
body=""             # what txn, hot and invalid make (no subshells: n counts)
word=""

pick() {            # pick WORD...: one of them, in $word
    local a=("$@")
    word=${a[RANDOM % ${#a[@]}]}
}

# a new transaction, id "ld_<run>_<n>"
txn() {
    local r=$((RANDOM % 100)) m c cur=USD amt bin="" cc=US
    n=$((n + 1))
    amt=$((RANDOM % 20000 + 100))
    m=m_bench_$((RANDOM % 1000 + 1))
    c=tok_bench_$((RANDOM % 10000 + 1))
    if   [ "$r" -lt 62 ]; then :                              # approved
    elif [ "$r" -lt 66 ]; then m=m_acme; pick USD EUR; cur=$word
    elif [ "$r" -lt 70 ]; then m=m_globex; pick USD EUR GBP; cur=$word
    elif [ "$r" -lt 72 ]; then m=m_acme; c=tok_4242           # velocity
    elif [ "$r" -lt 75 ]; then pick tok_lost tok_stolen tok_block; c=$word
    elif [ "$r" -lt 77 ]; then m=m_initech
    elif [ "$r" -lt 79 ]; then m=m_unknown_$((RANDOM % 50))
    elif [ "$r" -lt 81 ]; then amt=$((RANDOM % 100000 + 500001))
    elif [ "$r" -lt 83 ]; then m=m_small; amt=$((RANDOM % 5000 + 10001))
    elif [ "$r" -lt 85 ]; then m=m_small; cur=EUR
    elif [ "$r" -lt 87 ]; then pick JPY CHF; cur=$word
    elif [ "$r" -lt 90 ]; then pick 66666612 40001234 51000001; bin=$word
    elif [ "$r" -lt 93 ]; then m=m_globex; c=tok_fr           # risk
                               amt=$((RANDOM % 100000 + 400000))
    else                       c=tok_new_$((RANDOM % 1000)); pick US GB; cc=$word
    fi
    printf -v body '{"id":"ld_%s_%d","amount":%d,"currency":"%s","merchant_id":"%s","card_token":"%s"%s,"country":"%s"}' \
        "$run" "$n" "$amt" "$cur" "$m" "$c" "${bin:+,\"card_bin\":\"$bin\"}" "$cc"
}

hot() {
    n=$((n + 1))
    printf -v body '{"id":"ld_%s_%d","amount":%d,"currency":"EUR","merchant_id":"m_globex","card_token":"tok_fr","country":"FR"}' \
        "$run" "$n" $((RANDOM % 5000 + 100))
}

# an invalid request: a body, or 415 (text/plain) or 405 (GET)
invalid() {
    n=$((n + 1))
    local t='"merchant_id":"m_acme","card_token":"tok_4242"'
    case $((RANDOM % 7)) in
    0) printf -v body '{"id":"ld_%s_%d","amount":' "$run" "$n" ;;
    1) printf -v body '{"id":"ld_%s_%d","currency":"USD",%s}' "$run" "$n" "$t" ;;
    2) printf -v body '{"id":"ld_%s_%d","amount":2500,"currency":"usd",%s}' \
           "$run" "$n" "$t" ;;
    3) printf -v body '{"id":"ld_%s_%d","amount":-5,"currency":"USD",%s}' \
           "$run" "$n" "$t" ;;
    4) printf -v body '{"id":"ld_%s_%d","amount":2500,"currency":"USD",%s,"pan":"4242424242424242"}' \
           "$run" "$n" "$t" ;;
    5) body=415 ;;
    *) body=405 ;;
    esac
}

# one curl config entry
entry() {           # entry BODY [CONTENT-TYPE]
    local body=$1 ctype=${2:-application/json}
    [ "$sent" -gt 0 ] && echo "next"
    sent=$((sent + 1))
    echo "url = \"$url\""
    if [ "$body" = 405 ]; then
        echo 'request = "GET"'
    else
        body=${body//\\/\\\\}
        body=${body//\"/\\\"}
        echo "header = \"Content-Type: $ctype\""
        echo "data-binary = \"$body\""
    fi
    echo 'output = "/dev/null"'
    printf '%s\n' 'write-out = "%{http_code}\n"'
}

batch() {
    local i r b
    sent=0
    for ((i = 0; i < rate; i++)); do
        r=$((RANDOM % 100))
        if [ "$r" -lt 62 ] || [ ${#recent[@]} -lt 20 ]; then
            txn
            recent+=("$body")
            entry "$body"
        elif [ "$r" -lt 65 ]; then
            hot
            entry "$body"
        elif [ "$r" -lt 80 ]; then
            if [ $((RANDOM % 10)) -eq 0 ]; then
                entry "${recent[RANDOM % ${#recent[@]}]}"   # old
            else
                entry "${recent[${#recent[@]} - 1 - RANDOM % 20]}"
            fi
        elif [ "$r" -lt 85 ]; then
            b=${recent[${#recent[@]} - 1 - RANDOM % 20]}
            entry "${b/\"amount\":/\"amount\":1}"            # other amount
        elif [ "$r" -lt 90 ]; then
            txn
            recent+=("$body")
            entry "$body"
            entry "$body"
            i=$((i + 1))
        else
            invalid
            if [ "$body" = 415 ]; then
                txn
                entry "$body" text/plain
            else
                entry "$body"
            fi
        fi
    done
    # keep the last 5000 for replays
    if [ ${#recent[@]} -gt 6000 ]; then
        recent=("${recent[@]: -5000}")
    fi
}

summary() {
    local k line=""
    for k in $(printf '%s\n' "${!status[@]}" | sort); do
        line="$line $k:${status[$k]}"
    done
    echo "load.sh: ${1}s:${line:- no answers}"
}

start=$(date +%s)
t=0
next_summary=10
while [ "$seconds" -eq 0 ] || [ "$t" -lt "$seconds" ]; do
    tick=$(date +%s%N)
    batch > "$tmp/batch.cfg"
    while read -r code; do
        status[$code]=$(( ${status[$code]:-0} + 1 ))
    done < <(curl -s --no-progress-meter --parallel \
                  --parallel-max "$parallel" -K "$tmp/batch.cfg" 2> /dev/null \
             || true)
    t=$(( $(date +%s) - start ))
    if [ "$quiet" != 1 ] && [ "$t" -ge "$next_summary" ]; then
        summary "$t"
        next_summary=$((next_summary + 10))
    fi
    left=$(( 1000000000 - ($(date +%s%N) - tick) ))
    if [ "$left" -gt 0 ]; then
        sleep "$(printf '0.%09d' "$left")"
    fi
done
summary "$t"
