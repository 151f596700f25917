#!/usr/bin/env bash
# Build bench/go (txval-go) offline, from Debian's packaged Go sources:
# golang-go, golang-github-gomodule-redigo-dev,
# golang-github-jackc-pgx-v4-dev (scripts/deps.sh bench). GOPATH mode
# (GO111MODULE=off) over /usr/share/gocode, no module proxy, no network.
#
#   bench/go/build.sh OUTPUT      (and OUTPUT's directory/txval-fresh, the
#                                 freshness prober of bench/go/fresh/)
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
out=$(realpath -m "${1:?usage: build.sh OUTPUT}")
mkdir -p "$(dirname "$out")"

export GO111MODULE=off GOPATH=/usr/share/gocode GOPROXY=off GOFLAGS=
export GOCACHE=${GOCACHE:-$(dirname "$out")/go-cache}
export CGO_ENABLED=0
cd "$here"
go vet . ./fresh
go build -trimpath -o "$out" .
go build -trimpath -o "$(dirname "$out")/txval-fresh" ./fresh
