#!/usr/bin/env bash
# `make dashboard-snapshot`: the picture of the dashboard in the README
# (docs/dashboard.png), made without Grafana or a browser. Run it in a
# network namespace of its own, like the tests:
#
#   unshare -n bash -c 'ip link set lo up; make dashboard-snapshot'
#
# What it does, all under build/snapshot/ and on loopback ports:
#   1. Redis and Postgres (scripts/services.sh, the demo seed), and nginx
#      with the module from make: the example's rules (examples/txval.conf)
#      with a small verdict cache zone (so that evictions and Redis hits
#      show), three locations: /v1/validate (fail-closed),
#      /v1/validate-open (fail-open) and, when the module has
#      txval_dry_run, /v1/validate-dry (dry run); txval_metrics on its own
#      port.
#   2. Debian's Prometheus scraping it every 2s, with the alert rules of
#      docker/prometheus/txval-rules.yml.
#   3. docker/load.sh against the three locations for SNAPSHOT_SECONDS,
#      with two faults: Redis stopped (SIGSTOP) for an eighth of the run,
#      then Postgres (its postmaster and backends) for another eighth.
#   4. bench/dashboard_snapshot.py: every panel query of
#      docker/grafana/dashboards/txval.json through Prometheus' HTTP API,
#      plotted by gnuplot into one image, the fault windows shaded.
#
#   SNAPSHOT_SECONDS=240  SNAPSHOT_RATE=30 (req/s on /v1/validate; the
#   others get a third of it)  SNAPSHOT_PORT=18580 (uses +0..+4)
#   SNAPSHOT_ZONE=256k  SNAPSHOT_PNG=docs/dashboard.png
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
module=${TXVAL_MODULE:-$top/build/ngx_http_txval_module.so}
nginx=${NGINX_BIN:-/usr/sbin/nginx}
secs=${SNAPSHOT_SECONDS:-240}
rate=${SNAPSHOT_RATE:-30}
zone=${SNAPSHOT_ZONE:-256k}
base=${SNAPSHOT_PORT:-18580}
png=${SNAPSHOT_PNG:-$top/docs/dashboard.png}
port=$base                   # verdict locations
mport=$((base + 1))          # txval_metrics
redis_port=$((base + 2))
pg_port=$((base + 3))
prom_port=$((base + 4))
scrape=2
dir=$top/build/snapshot
python3=/usr/bin/python3
[ -x "$python3" ] || python3=python3

# shellcheck source=scripts/services.sh
. "$top/scripts/services.sh"

for tool in prometheus gnuplot curl "$nginx"; do
    command -v "$tool" > /dev/null || {
        echo "dashboard-snapshot: $tool missing (scripts/deps.sh dashboard)" >&2
        exit 1
    }
done
[ -f "$module" ] || { echo "dashboard-snapshot: $module: run make" >&2; exit 1; }

nginx_pid=""
prom_pid=""
load_pids=()
paused=()
stop() {
    trap - INT TERM EXIT
    local p
    for p in "${paused[@]}"; do
        kill -CONT "$p" 2> /dev/null || true
    done
    for p in "${load_pids[@]}"; do
        kill "$p" 2> /dev/null || true
    done
    [ -n "$prom_pid" ] && kill "$prom_pid" 2> /dev/null && wait "$prom_pid" 2> /dev/null
    [ -n "$nginx_pid" ] && kill -QUIT "$nginx_pid" 2> /dev/null \
        && wait "$nginx_pid" 2> /dev/null
    txval_redis_stop "$dir/redis"
    txval_pg_stop "$dir/pg"
    return 0
}
trap stop INT TERM EXIT

rm -rf "$dir/prom" "$dir/plot" "$dir/logs"
mkdir -p "$dir/conf" "$dir/logs" "$dir/tmp" "$dir/prom" "$dir/plot" \
         "$(dirname "$png")"

txval_redis_start "$redis_port" "$dir/redis"
txval_pg_start "$pg_port" "$dir/pg"
# a run starts from no velocity counts and no stored verdicts
redis-cli -p "$redis_port" flushall > /dev/null

cat > "$dir/conf/nginx.conf" <<EOC
load_module $module;

worker_processes 2;
error_log logs/error.log notice;
pid logs/nginx.pid;

events {
    worker_connections 1024;
}

http {
    default_type application/octet-stream;
    client_body_temp_path $dir/tmp/body;
    proxy_temp_path $dir/tmp/proxy;
    fastcgi_temp_path $dir/tmp/fastcgi;
    uwsgi_temp_path $dir/tmp/uwsgi;
    scgi_temp_path $dir/tmp/scgi;

    txval_redis 127.0.0.1:$redis_port;
    txval_postgres "host=127.0.0.1 port=$pg_port dbname=txval user=txval password=txval";

    # examples/txval.conf, with a zone small enough to evict
    txval_cache_zone txval:$zone ttl=10m;
    txval_amount_limit USD 100 500000;
    txval_amount_limit EUR 100 500000;
    txval_amount_limit GBP 100 400000;
    txval_risk_threshold 70;
    txval_velocity 10 60s;

    # what the picture does not show: each request's validation time
    log_format snapshot '\$msec \$status \$txval_verdict \$txval_time '
                        '\$txval_degraded \$uri';

    server {
        listen 127.0.0.1:$port;
        access_log logs/access.log snapshot;
        client_max_body_size 64k;

        location = /v1/validate {
            txval;
            txval_fail_mode closed;
        }

        location = /v1/validate-open {
            txval;
            txval_fail_mode open;
        }
#DRY
    }

    server {
        listen 127.0.0.1:$mport;
        access_log off;

        location = /metrics {
            txval_metrics;
        }
    }
}
EOC

# dry run when this build has it (nginx -t with it)
dry=0
sed 's|^#DRY|        location = /v1/validate-dry {\n            txval;\n            txval_dry_run on;\n        }|' \
    "$dir/conf/nginx.conf" > "$dir/conf/nginx-dry.conf"
if "$nginx" -p "$dir/" -c conf/nginx-dry.conf -t -q 2> /dev/null; then
    mv "$dir/conf/nginx-dry.conf" "$dir/conf/nginx.conf"
    dry=1
fi
"$nginx" -p "$dir/" -c conf/nginx.conf -t -q
"$nginx" -p "$dir/" -c conf/nginx.conf -g 'daemon off;' &
nginx_pid=$!

cat > "$dir/prometheus.yml" <<EOC
global:
  scrape_interval: ${scrape}s
  evaluation_interval: ${scrape}s
rule_files:
  - $top/docker/prometheus/txval-rules.yml
scrape_configs:
  - job_name: txval
    static_configs:
      - targets: ['127.0.0.1:$mport']
EOC
prometheus --config.file="$dir/prometheus.yml" \
    --storage.tsdb.path="$dir/prom" \
    --web.listen-address="127.0.0.1:$prom_port" \
    --log.level=warn > "$dir/logs/prometheus.log" 2>&1 &
prom_pid=$!

for _ in $(seq 100); do
    curl -fsS -o /dev/null "http://127.0.0.1:$mport/metrics" 2> /dev/null \
        && curl -fsS -o /dev/null "http://127.0.0.1:$prom_port/-/ready" \
           2> /dev/null && break
    sleep 0.2
done
curl -fsS -o /dev/null "http://127.0.0.1:$prom_port/-/ready"
sleep $((2 * scrape))

start=$(date +%s)
echo "dashboard-snapshot: ${secs}s of load (dry run: $([ $dry = 1 ] && echo on || echo 'not in this build'))"
LOAD_SECONDS=$secs LOAD_RATE=$rate LOAD_QUIET=1 \
    "$top/docker/load.sh" "http://127.0.0.1:$port/v1/validate" \
    > "$dir/logs/load-closed.log" 2>&1 &
load_pids+=($!)
LOAD_SECONDS=$secs LOAD_RATE=$((rate / 3)) LOAD_QUIET=1 LOAD_PARALLEL=2 \
    "$top/docker/load.sh" "http://127.0.0.1:$port/v1/validate-open" \
    > "$dir/logs/load-open.log" 2>&1 &
load_pids+=($!)
if [ "$dry" = 1 ]; then
    LOAD_SECONDS=$secs LOAD_RATE=$((rate / 3)) LOAD_QUIET=1 LOAD_PARALLEL=2 \
        "$top/docker/load.sh" "http://127.0.0.1:$port/v1/validate-dry" \
        > "$dir/logs/load-dry.log" 2>&1 &
    load_pids+=($!)
fi

# the faults: [2/8, 3/8) Redis stopped, [5/8, 6/8) Postgres stopped
redis_from=$((secs * 2 / 8)); redis_to=$((secs * 3 / 8))
pg_from=$((secs * 5 / 8)); pg_to=$((secs * 6 / 8))
at() {
    local wait=$(($1 + start - $(date +%s)))
    [ "$wait" -gt 0 ] && sleep "$wait"
    return 0
}
pg_pids() {
    local pm
    pm=$(head -1 "$dir/pg/postmaster.pid")
    echo "$pm"
    pgrep -P "$pm" || true
}

at "$redis_from"
echo "dashboard-snapshot: $(( $(date +%s) - start ))s: Redis stopped"
mapfile -t paused < "$dir/redis/redis.pid"
kill -STOP "${paused[@]}"
at "$redis_to"
kill -CONT "${paused[@]}"
paused=()
echo "dashboard-snapshot: $(( $(date +%s) - start ))s: Redis continued"

at "$pg_from"
echo "dashboard-snapshot: $(( $(date +%s) - start ))s: Postgres stopped"
mapfile -t paused < <(pg_pids)
kill -STOP "${paused[@]}"
at "$pg_to"
kill -CONT "${paused[@]}"
paused=()
echo "dashboard-snapshot: $(( $(date +%s) - start ))s: Postgres continued"

for p in "${load_pids[@]}"; do
    wait "$p" || true
done
load_pids=()
end=$(date +%s)
cat "$dir"/logs/load-*.log
sleep $((2 * scrape))

dry_note=""
[ "$dry" = 1 ] || dry_note=" (this build has no txval_dry_run: no dry-run traffic)"
"$python3" "$top/bench/dashboard_snapshot.py" \
    --prometheus "http://127.0.0.1:$prom_port" \
    --dashboard "$top/docker/grafana/dashboards/txval.json" \
    --source "$top/ngx_http_txval_module/ngx_http_txval_prometheus.c" \
    --start "$start" --end "$end" --step 1 \
    --rate-interval "$((4 * scrape))s" \
    --shade "$redis_from:$redis_to:Redis stopped" \
    --shade "$pg_from:$pg_to:Postgres stopped" \
    --note "Local run, $(nproc) cores: docker/load.sh at ${rate} req/s fail-closed + $((rate / 3)) fail-open$([ "$dry" = 1 ] && echo " + $((rate / 3)) dry run")${dry_note}; zone $zone; scrape ${scrape}s, \$__rate_interval = $((4 * scrape))s. Shaded: Redis stopped ${redis_from}-${redis_to}s, Postgres stopped ${pg_from}-${pg_to}s." \
    --out "$png" --work "$dir/plot"
