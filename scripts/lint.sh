#!/usr/bin/env bash
# `make lint` (and CI): what Debian 12 offers to check the files no test
# runs, without a Docker engine:
#
#   shell        shellcheck on scripts/*.sh, bench/*.sh, bench/go/*.sh,
#                .ci/run, docker/*.sh and the package's maintainer scripts
#                (packaging/)
#   go vet       bench/go (the Go service of make bench), when Debian's Go
#                and its sources are installed (scripts/deps.sh bench);
#                skipped otherwise
#   yamllint     docker/compose.yaml and the Prometheus and Grafana files;
#                then python3-yaml loads the compose file and checks its
#                structure (services, health checks, init directory, build
#                context, the files it mounts, Prometheus and Grafana wired
#                to nginx and to each other)
#   promtool     check config docker/prometheus/prometheus.yml, check rules
#                docker/prometheus/txval-rules.yml, test rules
#                txval-rules.test.yml (every alert fires on its case)
#   metrics      scripts/check-metrics.py: the dashboard is valid JSON, and
#                every metric its queries and the alert rules name is one
#                the module writes (names read from
#                ngx_http_txval_prometheus.c) or one listed in
#                docker/expected-metrics.txt; the dashboard's queries
#                parse (promtool check rules on them)
#   Dockerfile   hadolint when it is installed (Debian 12 has none), else a
#                structural check: stages, pinned base images, COPY sources
#                that exist, apt-get hygiene, exec-form CMD and HEALTHCHECK
#   nginx -t     docker/nginx.conf with the example, as the image builds it,
#                against the module from make (skipped when it is not built)
#
# Exit status 1 when any check fails; each failure says what and where.
set -uo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top" || exit 1

failed=0
fail() {
    echo "lint: FAIL: $*" >&2
    failed=1
}
pass() {
    echo "lint: ok: $*"
}
need() {
    command -v "$1" > /dev/null 2>&1 || {
        fail "$1 missing: scripts/deps.sh lint"
        return 1
    }
}


# --- shellcheck

# Findings in scripts this change did not own, reported to their owner;
# each entry is FILE:CODE and is excluded for that file only. Remove an
# entry once the script is fixed.
known=(
)

if need shellcheck; then
    scripts=(scripts/*.sh bench/*.sh bench/go/*.sh fuzz/*.sh faults/*.sh .ci/run docker/*.sh
             packaging/postinst packaging/prerm packaging/postrm)
    for f in "${scripts[@]}"; do
        [ -f "$f" ] || continue
        excl=()
        for k in "${known[@]}"; do
            [ "${k%%:*}" = "$f" ] && excl+=("${k#*:}")
        done
        if [ ${#excl[@]} -gt 0 ]; then
            opts=(--exclude="$(IFS=,; echo "${excl[*]}")")
        else
            opts=()
        fi
        if shellcheck -x "${opts[@]}" "$f"; then
            pass "shellcheck $f${excl[*]:+ (known: ${excl[*]})}"
        else
            fail "shellcheck $f"
        fi
    done
fi


# --- go vet: bench/go, offline, GOPATH mode over Debian's Go sources

if command -v go > /dev/null 2>&1 \
   && [ -d /usr/share/gocode/src/github.com/gomodule/redigo ] \
   && [ -d /usr/share/gocode/src/github.com/jackc/pgx/v4 ]; then
    if (cd bench/go && GO111MODULE=off GOPATH=/usr/share/gocode GOPROXY=off \
            GOFLAGS='' GOCACHE="$top/build/bench/go-cache" CGO_ENABLED=0 go vet . ./fresh); then
        pass "go vet bench/go"
    else
        fail "go vet bench/go"
    fi
else
    echo "lint: skipped: go vet bench/go (Go and its sources: scripts/deps.sh bench)"
fi


# --- the compose file

compose=docker/compose.yaml
yamls=("$compose" docker/prometheus/*.yml docker/grafana/provisioning/*/*.yml)

if need yamllint; then
    for f in "${yamls[@]}"; do
        if yamllint -s -d '{extends: default, rules: {document-start: disable,
                           line-length: {max: 100}}}' "$f"; then
            pass "yamllint $f"
        else
            fail "yamllint $f"
        fi
    done
fi

# Debian's python3 (python3-yaml), not one earlier on PATH
python3=/usr/bin/python3
[ -x "$python3" ] || python3=python3

if need "$python3"; then
    if "$python3" - "$compose" <<'PY'
import glob
import os
import re
import sys

try:
    import yaml
except ImportError:
    sys.exit("python3-yaml missing: scripts/deps.sh lint")

path = sys.argv[1]
base = os.path.dirname(path)
try:
    doc = yaml.safe_load(open(path))
except yaml.YAMLError as e:
    sys.exit("  %s: does not parse: %s" % (path, e))
errors = []

def err(msg):
    errors.append(msg)

services = doc.get("services") or {}
for name in ("nginx", "redis", "postgres"):
    if name not in services:
        err("no service %r" % name)

for name, svc in services.items():
    hc = svc.get("healthcheck")
    if not hc or not hc.get("test"):
        err("%s: no healthcheck" % name)
    elif hc["test"][0] not in ("CMD", "CMD-SHELL"):
        err("%s: healthcheck test must start with CMD or CMD-SHELL" % name)
    if "image" not in svc and "build" not in svc:
        err("%s: neither image nor build" % name)
    image = svc.get("image", "")
    if "build" not in svc and (":" not in image or image.endswith(":latest")):
        err("%s: image %r is not pinned to a tag" % (name, image))
    for v in svc.get("volumes", []):
        src = v.split(":")[0] if isinstance(v, str) else v.get("source", "")
        if src.startswith("."):
            if not os.path.exists(os.path.join(base, src)):
                err("%s: volume source %s does not exist" % (name, src))

nginx = services.get("nginx", {})
build = nginx.get("build") or {}
ctx = os.path.normpath(os.path.join(base, build.get("context", ".")))
dockerfile = os.path.join(ctx, build.get("dockerfile", "Dockerfile"))
if not os.path.isfile(dockerfile):
    err("nginx: Dockerfile %s does not exist" % dockerfile)
for dep in ("redis", "postgres"):
    cond = ((nginx.get("depends_on") or {}).get(dep) or {}).get("condition")
    if cond != "service_healthy":
        err("nginx: must wait for %s to be healthy (txval resolves its "
            "name at config load), depends_on condition is %r" % (dep, cond))

pg = services.get("postgres", {})
if not any(isinstance(v, str) and v.split(":")[1] == "/docker-entrypoint-initdb.d"
           for v in pg.get("volumes", [])):
    err("postgres: docker/initdb is not mounted at /docker-entrypoint-initdb.d")
env = pg.get("environment") or {}
for k in ("POSTGRES_DB", "POSTGRES_USER", "POSTGRES_PASSWORD"):
    if k not in env:
        err("postgres: %s not set" % k)

# what the image's configuration (the example, adapted by
# txval-example.sh) says about the services must match them
import subprocess
import tempfile
with tempfile.TemporaryDirectory() as tmp:
    copy = os.path.join(tmp, "txval.conf")
    with open(os.path.join(base, "..", "examples", "txval.conf")) as src, \
         open(copy, "w") as dst:
        dst.write(src.read())
    if subprocess.call(["sh", os.path.join(base, "txval-example.sh"),
                        copy]) != 0:
        err("txval-example.sh cannot adapt examples/txval.conf")
    example = open(copy).read()
conf = open(os.path.join(base, "nginx.conf")).read()
if "include txval.conf;" not in conf:
    err("nginx.conf: does not include txval.conf (the example)")
if "txval_redis redis:6379" not in example:
    err("the adapted example: no 'txval_redis redis:6379'")
if "host=postgres port=5432 dbname=%s user=%s password=%s" % (
        env.get("POSTGRES_DB"), env.get("POSTGRES_USER"),
        env.get("POSTGRES_PASSWORD")) not in example:
    err("the adapted example: txval_postgres does not match the postgres "
        "service")

# Prometheus: its config mounted where the command reads it, scraping
# nginx's metrics port
prom = services.get("prometheus", {})
for name in ("prometheus", "grafana"):
    if name not in services:
        err("no service %r" % name)

def mounts(svc):
    out = {}
    for v in svc.get("volumes", []):
        if isinstance(v, str) and v.startswith("."):
            parts = v.split(":")
            out[parts[1]] = os.path.normpath(os.path.join(base, parts[0]))
    return out

def host_path(svc, target):
    """The host file a container path comes from, through a bind mount."""
    for dst, src in sorted(mounts(svc).items(), key=lambda kv: -len(kv[0])):
        if target == dst or target.startswith(dst.rstrip("/") + "/"):
            return os.path.join(src, os.path.relpath(target, dst))
    return None

if prom:
    cfg = [a.split("=", 1)[1] for a in prom.get("command", [])
           if isinstance(a, str) and a.startswith("--config.file=")]
    if not cfg:
        err("prometheus: no --config.file in its command")
    else:
        host = host_path(prom, cfg[0])
        if not host or not os.path.isfile(host):
            err("prometheus: %s is not mounted from the repository" % cfg[0])
        else:
            pcfg = yaml.safe_load(open(host)) or {}
            targets = [t for sc in pcfg.get("scrape_configs") or []
                       for st in sc.get("static_configs") or []
                       for t in st.get("targets") or []]
            jobs = [sc.get("job_name") for sc in pcfg.get("scrape_configs") or []]
            if "txval" not in jobs:
                err("%s: no job_name txval (the dashboard and TxvalDown "
                    "select job=\"txval\")" % host)
            # the port and location of txval_metrics in nginx.conf: the
            # last listen and location before it
            at = conf.find("txval_metrics;")
            port = re.findall(r"listen\s+(?:\S+:)?(\d+)\b", conf[:at])
            loc = re.findall(r"location\s+=?\s*(/\S*)\s*\{", conf[:at])
            if at < 0 or not port or not loc:
                err("nginx.conf: no txval_metrics location found")
            elif "nginx:%s" % port[-1] not in targets:
                err("%s: does not scrape nginx:%s (nginx.conf's txval_metrics "
                    "port), targets %r" % (host, port[-1], targets))
            elif any(sc.get("metrics_path", "/metrics") != loc[-1]
                     for sc in pcfg.get("scrape_configs") or []
                     if sc.get("job_name") == "txval"):
                err("%s: metrics_path is not %s" % (host, loc[-1]))
            for rf in pcfg.get("rule_files") or []:
                if not os.path.isfile(os.path.join(os.path.dirname(host), rf)):
                    err("%s: rule file %s does not exist" % (host, rf))

# Grafana: provisioning and dashboards mounted, the data source is the
# prometheus service, the dashboard provider reads the mounted dashboards
graf = services.get("grafana", {})
if graf:
    prov = host_path(graf, "/etc/grafana/provisioning")
    if not prov or not os.path.isdir(prov):
        err("grafana: /etc/grafana/provisioning is not mounted from the "
            "repository")
    else:
        urls = []
        for f in sorted(glob.glob(os.path.join(prov, "datasources", "*.yml"))):
            for ds in (yaml.safe_load(open(f)) or {}).get("datasources") or []:
                urls.append(ds.get("url"))
        if "http://prometheus:9090" not in urls:
            err("grafana: no data source at http://prometheus:9090 (%r)" % urls)
        paths = []
        for f in sorted(glob.glob(os.path.join(prov, "dashboards", "*.yml"))):
            for p in (yaml.safe_load(open(f)) or {}).get("providers") or []:
                paths.append((p.get("options") or {}).get("path"))
        if not paths:
            err("grafana: no dashboard provider")
        for p in paths:
            host = host_path(graf, p or "")
            if not host or not glob.glob(os.path.join(host, "*.json")):
                err("grafana: dashboard path %s holds no mounted dashboard" % p)
    home = (graf.get("environment") or {}).get(
        "GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH")
    if home and not os.path.isfile(host_path(graf, home) or ""):
        err("grafana: home dashboard %s is not mounted" % home)
    cond = ((graf.get("depends_on") or {}).get("prometheus") or {}).get(
        "condition")
    if cond != "service_healthy":
        err("grafana: should wait for prometheus to be healthy, condition %r"
            % cond)

for e in errors:
    print("  %s: %s" % (path, e), file=sys.stderr)
sys.exit(1 if errors else 0)
PY
    then
        pass "$compose structure"
    else
        fail "$compose structure"
    fi
fi


# --- Prometheus and Grafana files

# promtool's report only when it fails
promtool_quiet() {
    local out
    if out=$(promtool "$@" 2>&1); then
        pass "promtool $*"
    else
        echo "$out" >&2
        fail "promtool $*"
    fi
}

if need promtool; then
    promtool_quiet check config docker/prometheus/prometheus.yml
    promtool_quiet check rules docker/prometheus/txval-rules.yml
    promtool_quiet test rules docker/prometheus/txval-rules.test.yml
fi

if need "$python3"; then
    mkdir -p build/lint
    if "$python3" scripts/check-metrics.py \
           --source ngx_http_txval_module/ngx_http_txval_prometheus.c \
           --expected docker/expected-metrics.txt \
           --dashboard docker/grafana/dashboards/txval.json \
           --rules docker/prometheus/txval-rules.yml \
           --emit-rules build/lint/dashboard-queries.yml; then
        pass "metric names of the dashboard and the alert rules"
    else
        fail "metric names of the dashboard and the alert rules" \
             "(scripts/check-metrics.py)"
    fi
    if [ -f build/lint/dashboard-queries.yml ] && command -v promtool > /dev/null; then
        promtool_quiet check rules build/lint/dashboard-queries.yml
    fi
fi


# --- the Dockerfile

dockerfile=docker/Dockerfile

if command -v hadolint > /dev/null 2>&1; then
    if hadolint "$dockerfile"; then
        pass "hadolint $dockerfile"
    else
        fail "hadolint $dockerfile"
    fi
elif need "$python3"; then
    if "$python3" - "$dockerfile" <<'PY'
import glob
import json
import os
import re
import shlex
import sys

path = sys.argv[1]
context = "."          # compose.yaml: context .., i.e. the repository
errors = []

def err(line, msg):
    errors.append("%s:%d: %s" % (path, line, msg))

# logical lines: comments dropped, continuations joined
lines, cur, start = [], "", 0
for n, raw in enumerate(open(path), 1):
    s = raw.rstrip("\n")
    if not cur and (not s.strip() or s.lstrip().startswith("#")):
        continue
    if cur and s.lstrip().startswith("#"):
        continue
    if not cur:
        start = n
    if s.endswith("\\"):
        cur += s[:-1] + " "
        continue
    cur += s
    lines.append((start, cur.strip()))
    cur = ""
if cur:
    err(start, "continuation at the end of the file")

known = {"FROM", "RUN", "CMD", "LABEL", "EXPOSE", "ENV", "ADD", "COPY",
         "ENTRYPOINT", "VOLUME", "USER", "WORKDIR", "ARG", "ONBUILD",
         "STOPSIGNAL", "HEALTHCHECK", "SHELL", "MAINTAINER"}
stages, froms, has_cmd = [], 0, False

for n, line in lines:
    word, _, rest = line.partition(" ")
    ins = word.upper()
    if ins not in known:
        err(n, "unknown instruction %s" % word)
        continue
    if ins != word:
        err(n, "instruction %s not in upper case" % word)
    if froms == 0 and ins not in ("FROM", "ARG"):
        err(n, "%s before the first FROM" % ins)
    if ins == "MAINTAINER":
        err(n, "MAINTAINER is deprecated: use LABEL")

    if ins == "FROM":
        froms += 1
        m = re.match(r"(?:--platform=\S+\s+)?(\S+)(?:\s+AS\s+(\S+))?$", rest, re.I)
        if not m:
            err(n, "cannot read FROM")
            continue
        image, alias = m.group(1), m.group(2)
        if image not in stages and (":" not in image and "@" not in image
                                    or image.endswith(":latest")):
            err(n, "base image %s not pinned to a tag" % image)
        if alias:
            stages.append(alias)

    elif ins in ("COPY", "ADD"):
        args = shlex.split(rest)
        frm = [a for a in args if a.startswith("--from=")]
        files = [a for a in args if not a.startswith("--")]
        if len(files) < 2:
            err(n, "%s needs a source and a destination" % ins)
            continue
        if frm:
            stage = frm[0].split("=", 1)[1]
            if stage not in stages:
                err(n, "COPY --from=%s: no such stage before it" % stage)
        else:
            for src in files[:-1]:
                if not glob.glob(os.path.join(context, src)):
                    err(n, "%s source %s not in the build context" % (ins, src))
        if ins == "ADD":
            err(n, "ADD: use COPY for local files")

    elif ins == "RUN":
        if re.search(r"\bapt-get\s+install\b", rest):
            if not re.search(r"\s-y\b|--yes|--assume-yes", rest):
                err(n, "apt-get install without -y")
            if "--no-install-recommends" not in rest:
                err(n, "apt-get install without --no-install-recommends")
            if "apt-get update" not in rest:
                err(n, "apt-get install without apt-get update in the same RUN")
            if "rm -rf /var/lib/apt/lists" not in rest:
                err(n, "apt lists not removed in the same RUN")
        if re.search(r"\bapt\s+(install|update)\b", rest):
            err(n, "use apt-get, not apt, in scripts")
        if re.search(r"(^|\s)cd\s", rest):
            err(n, "cd in RUN: use WORKDIR")
        if re.search(r"\bsudo\b", rest):
            err(n, "sudo in RUN")

    elif ins in ("CMD", "ENTRYPOINT"):
        has_cmd = True
        try:
            if not isinstance(json.loads(rest), list):
                raise ValueError
        except ValueError:
            err(n, "%s not in exec (JSON array) form" % ins)

    elif ins == "HEALTHCHECK":
        m = re.search(r"\bCMD\s+(.*)$", rest)
        if rest.strip() != "NONE" and not m:
            err(n, "HEALTHCHECK without CMD")
        elif m:
            try:
                json.loads(m.group(1))
            except ValueError:
                err(n, "HEALTHCHECK CMD not in exec (JSON array) form")

    elif ins == "WORKDIR" and not rest.startswith("/"):
        err(n, "WORKDIR %s is not absolute" % rest)

if froms == 0:
    err(1, "no FROM")
if not has_cmd:
    err(lines[-1][0] if lines else 1, "no CMD or ENTRYPOINT")

for e in errors:
    print("  " + e, file=sys.stderr)
sys.exit(1 if errors else 0)
PY
    then
        pass "$dockerfile structure (hadolint is not in Debian 12)"
    else
        fail "$dockerfile structure"
    fi
fi


# --- docker/nginx.conf with the example, as the image has it

module=${TXVAL_MODULE:-$top/build/ngx_http_txval_module.so}
nginx=${NGINX_BIN:-/usr/sbin/nginx}

if [ ! -f "$module" ] || [ ! -x "$nginx" ]; then
    echo "lint: skipped: nginx -t of docker/nginx.conf ($module not built:" \
         "run make first)"
else
    etc=$(mktemp -d "${TMPDIR:-/tmp}/txval-lint.XXXXXX")
    mkdir -p "$etc/modules-enabled"
    cp docker/nginx.conf "$etc/nginx.conf"
    cp examples/txval.conf "$etc/txval.conf"
    # the package's snippet, pointing at the module make built
    echo "load_module $module;" > "$etc/modules-enabled/50-mod-http-txval.conf"
    if sh docker/txval-example.sh "$etc/txval.conf" \
       && TXVAL_NGINX=$nginx sh docker/txval-example.sh --test "$etc/nginx.conf"
    then
        pass "nginx -t docker/nginx.conf + examples/txval.conf"
    else
        fail "nginx -t docker/nginx.conf + examples/txval.conf"
    fi
    rm -rf "$etc"
fi


if [ "$failed" -ne 0 ]; then
    echo "lint: failed" >&2
    exit 1
fi
echo "lint: all passed"
