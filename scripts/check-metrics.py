#!/usr/bin/env python3
"""Every metric a dashboard or alert rule queries must exist (make lint).

    check-metrics.py --source ngx_http_txval_module/ngx_http_txval_prometheus.c
                     [--expected docker/expected-metrics.txt]
                     [--dashboard FILE.json]... [--rules FILE.yml]...
                     [--emit-rules OUT.yml]

The metric names come from the module's source, read as C: comments
dropped, adjacent string literals joined, `#define NAME "..."` expanded.
A name is a string literal that is followed by a type literal ("counter",
"gauge", "histogram", "summary", "untyped"), as in the calls to the HELP
and TYPE writer or a table of them, or one that a "# TYPE name type" text
names; sample formats ("txval_x{...} %llu") and bare "txval_*" literals
count too, with no known type. A histogram (or a name of unknown type)
also gives NAME_bucket, NAME_sum and NAME_count. Prometheus' own `up` and
`ALERTS`/`ALERTS_FOR_STATE` are always known.

--expected adds names the C side does not write yet (NAME TYPE per line,
# comments); a name listed there that the source already writes is an
error, so that the list is emptied as the module catches up.

Each dashboard's PromQL (every panel target's `expr`, rows and nested
panels included, and the template variables' queries) and each rule
file's `expr` is read for the metric names it selects: strings, label
matchers, range and subquery brackets, grouping clauses and Grafana
variables are dropped, function and aggregation names (followed by "(")
and PromQL keywords are skipped; every other identifier is a metric name
and must be known. --emit-rules writes the dashboard's expressions as
recording rules (Grafana variables replaced by plain values) so that
`promtool check rules` parses them as Prometheus would.

Exit status 1 with one line per problem; 0 otherwise.
"""

import argparse
import json
import re
import sys

try:
    import yaml
except ImportError:                      # pragma: no cover
    yaml = None

TYPES = ("counter", "gauge", "histogram", "summary", "untyped")
SUFFIXES = ("_bucket", "_sum", "_count")
ALWAYS = {"up", "ALERTS", "ALERTS_FOR_STATE", "scrape_duration_seconds",
          "scrape_samples_scraped"}
NAME_RE = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right",
            "bool", "and", "or", "unless", "offset", "inf", "nan", "atan2"}
# Grafana's variables, replaced for promtool (a rate window where one is
# expected; anything else matches every value)
GRAFANA_WINDOWS = ("__rate_interval", "__interval", "__range")


# --- the C source

def c_tokens(text):
    """Tokens of C text: ("s", value) string literals (adjacent ones
    joined), ("i", name) identifiers, ("p", char) anything else; comments,
    char literals, numbers and white space dropped."""
    out = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("/*", i):
            j = text.find("*/", i + 2)
            i = n if j < 0 else j + 2
        elif text.startswith("//", i):
            j = text.find("\n", i)
            i = n if j < 0 else j
        elif c == '"':
            j, buf = i + 1, []
            while j < n and text[j] != '"':
                if text[j] == "\\" and j + 1 < n:
                    esc = text[j + 1]
                    buf.append({"n": "\n", "t": "\t", "\\": "\\",
                                '"': '"'}.get(esc, "\\" + esc))
                    j += 2
                else:
                    buf.append(text[j])
                    j += 1
            s = "".join(buf)
            if out and out[-1][0] == "s":
                out[-1] = ("s", out[-1][1] + s)
            else:
                out.append(("s", s))
            i = j + 1
        elif c == "'":
            j = i + 1
            while j < n and text[j] != "'":
                j += 2 if text[j] == "\\" else 1
            i = j + 1
        elif c.isalpha() or c == "_":
            j = i
            while j < n and (text[j].isalnum() or text[j] == "_"):
                j += 1
            out.append(("i", text[i:j]))
            i = j
        elif c.isdigit():
            j = i
            while j < n and (text[j].isalnum() or text[j] in "._"):
                j += 1
            i = j
        elif c.isspace():
            i += 1
        else:
            out.append(("p", c))
            i += 1
    return out


def source_metrics(path):
    """{name: type} of the metrics the C file writes (type None when only
    a sample format or a bare literal names it)."""
    toks = c_tokens(open(path, encoding="utf-8").read())

    # #define NAME "literal"
    macros, k = {}, 0
    while k + 3 < len(toks):
        if (toks[k] == ("p", "#") and toks[k + 1] == ("i", "define")
                and toks[k + 2][0] == "i" and toks[k + 3][0] == "s"):
            macros[toks[k + 2][1]] = toks[k + 3][1]
        k += 1
    expanded = []
    for k, t in enumerate(toks):
        if (t[0] == "i" and t[1] in macros
                and (k == 0 or toks[k - 1] != ("i", "define"))):
            t = ("s", macros[t[1]])
        if t[0] == "s" and expanded and expanded[-1][0] == "s":
            expanded[-1] = ("s", expanded[-1][1] + t[1])
        else:
            expanded.append(t)
    toks = expanded

    found = {}

    def add(name, typ):
        if typ or name not in found:
            found[name] = typ

    for k, t in enumerate(toks):
        if t[0] != "s":
            continue
        s = t[1]
        # "name", "type"
        if (NAME_RE.match(s) and k + 2 < len(toks)
                and toks[k + 1] == ("p", ",") and toks[k + 2][0] == "s"
                and toks[k + 2][1] in TYPES):
            add(s, toks[k + 2][1])
            continue
        # "# TYPE name type"
        for m in re.finditer(r"#\s*TYPE\s+([a-zA-Z_:][a-zA-Z0-9_:]*)\s+(\w+)",
                             s):
            if m.group(2) in TYPES:
                add(m.group(1), m.group(2))
        # "txval_x{...} %llu", "txval_x %llu", "txval_x"
        m = re.match(r"(txval_[a-zA-Z0-9_]*[a-zA-Z0-9])(?:[{ ]|$)", s)
        if m:
            add(m.group(1), None)
    return found


def expected_metrics(path):
    found = {}
    for n, line in enumerate(open(path, encoding="utf-8"), 1):
        line = line.split("#", 1)[0].split()
        if not line:
            continue
        if len(line) != 2 or not NAME_RE.match(line[0]) or line[1] not in TYPES:
            raise ValueError("%s:%d: want NAME TYPE" % (path, n))
        found[line[0]] = line[1]
    return found


def known_names(metrics):
    names = set(ALWAYS)
    for name, typ in metrics.items():
        names.add(name)
        if typ in ("histogram", "summary", None):
            names.update(name + s for s in SUFFIXES)
    return names


# --- PromQL

def promql_metrics(expr):
    """The metric names a PromQL expression selects (Grafana variables
    allowed)."""
    e = expr
    e = re.sub(r'"(?:[^"\\]|\\.)*"', '""', e)
    e = re.sub(r"'(?:[^'\\]|\\.)*'", '""', e)
    e = re.sub(r"`[^`]*`", '""', e)
    e = re.sub(r"\{[^{}]*\}", " ", e)              # label matchers
    e = re.sub(r"\[[^\[\]]*\]", " ", e)            # ranges, subqueries
    e = re.sub(r"\$\{[^}]*\}|\[\[[^\]]*\]\]|\$\w+", " ", e)
    e = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*"
               r"\([^()]*\)", " ", e)
    names = []
    for m in re.finditer(r"[0-9][0-9a-zA-Z_.]*|[a-zA-Z_:][a-zA-Z0-9_:]*", e):
        tok = m.group(0)
        if tok[0].isdigit():
            continue                               # numbers, durations
        if tok.lower() in KEYWORDS:
            continue
        if re.match(r"\s*\(", e[m.end():]):
            continue                               # function, aggregation
        if tok.startswith("@") or tok in ("start", "end"):
            continue
        names.append(tok)
    return names


def grafana_query(q):
    """PromQL inside a template variable's query (label_values(expr,
    label), query_result(expr)), or None."""
    if isinstance(q, dict):
        q = q.get("query", "")
    if not isinstance(q, str) or not q.strip():
        return None
    m = re.match(r"\s*label_values\s*\((.*?)(,\s*[a-zA-Z_]\w*)?\s*\)\s*$",
                 q, re.S)
    if m:
        # label_values(label) names no metric
        return m.group(1).strip() if m.group(2) else None
    m = re.match(r"\s*query_result\s*\((.*)\)\s*$", q, re.S)
    if m:
        return m.group(1)
    if re.match(r"\s*(label_names|metrics)\s*\(", q):
        return None
    return q


def walk_panels(panels):
    for p in panels or []:
        yield p
        yield from walk_panels(p.get("panels"))


def dashboard_exprs(doc):
    """(where, expr) of every query of a Grafana dashboard."""
    out = []
    for p in walk_panels(doc.get("panels")):
        for t in p.get("targets") or []:
            if "expr" in t:
                out.append(("panel %r target %s" % (p.get("title"),
                                                    t.get("refId", "?")),
                            t["expr"]))
    for v in (doc.get("templating") or {}).get("list") or []:
        if v.get("type") == "query":
            q = grafana_query(v.get("query"))
            if q is not None:
                out.append(("variable %r" % v.get("name"), q))
    return out


def grafana_to_promql(expr, window="1m"):
    """A dashboard expression with Grafana's variables replaced."""
    def repl(m):
        name = m.group(1) or m.group(2) or m.group(3)
        name = name.split(":")[0]
        return window if name in GRAFANA_WINDOWS else ".*"
    return re.sub(r"\$\{([^}]*)\}|\[\[([^\]]*)\]\]|\$(\w+)", repl, expr)


def rule_exprs(doc):
    out = []
    for g in (doc or {}).get("groups") or []:
        for r in g.get("rules") or []:
            what = r.get("alert") or r.get("record") or "?"
            out.append(("group %r rule %r" % (g.get("name"), what),
                        str(r.get("expr", ""))))
    return out


# --- main

def main(argv):
    ap = argparse.ArgumentParser()
    ap.add_argument("--source", required=True)
    ap.add_argument("--expected")
    ap.add_argument("--dashboard", action="append", default=[])
    ap.add_argument("--rules", action="append", default=[])
    ap.add_argument("--emit-rules")
    a = ap.parse_args(argv)

    errors = []
    src = source_metrics(a.source)
    if "txval_requests_total" not in src or len(src) < 5:
        errors.append("%s: found %d metric names (%s): the extraction no "
                      "longer matches how the file writes them"
                      % (a.source, len(src), ", ".join(sorted(src)) or "none"))
    exp = {}
    if a.expected:
        try:
            exp = expected_metrics(a.expected)
        except ValueError as e:
            errors.append(str(e))
        for name in sorted(set(exp) & set(src)):
            errors.append("%s: %s is written by %s now: remove it from the "
                          "list" % (a.expected, name, a.source))
    known = known_names(src) | known_names(exp)

    used = set()
    emitted = []
    checks = []
    for path in a.dashboard:
        try:
            doc = json.load(open(path, encoding="utf-8"))
        except (OSError, ValueError) as e:
            errors.append("%s: not valid JSON: %s" % (path, e))
            continue
        exprs = dashboard_exprs(doc)
        if not exprs:
            errors.append("%s: no queries found" % path)
        for where, expr in exprs:
            checks.append((path, where, expr))
            emitted.append(grafana_to_promql(expr))
    for path in a.rules:
        if yaml is None:
            errors.append("python3-yaml missing: scripts/deps.sh lint")
            break
        try:
            doc = yaml.safe_load(open(path, encoding="utf-8"))
        except (OSError, yaml.YAMLError) as e:
            errors.append("%s: does not parse: %s" % (path, e))
            continue
        exprs = rule_exprs(doc)
        if not exprs:
            errors.append("%s: no rules found" % path)
        for where, expr in exprs:
            checks.append((path, where, expr))

    for path, where, expr in checks:
        names = promql_metrics(expr)
        if not names:
            errors.append("%s: %s: selects no metric: %s" % (path, where, expr))
        for name in names:
            base = re.sub(r"_(bucket|sum|count)$", "", name)
            used.add(base if base in src or base in exp else name)
            if name not in known:
                errors.append("%s: %s: unknown metric %s (not written by %s%s)"
                              % (path, where, name, a.source,
                                 " nor listed in " + a.expected
                                 if a.expected else ""))

    if a.emit_rules:
        with open(a.emit_rules, "w", encoding="utf-8") as f:
            f.write("# generated by scripts/check-metrics.py from %s\n"
                    "groups:\n  - name: dashboard\n    rules:\n"
                    % ", ".join(a.dashboard))
            for k, expr in enumerate(emitted):
                f.write("      - record: dashboard_query_%d\n" % k)
                f.write("        expr: %s\n" % json.dumps(expr))

    unused = sorted(n for n in set(src) | set(exp) if n not in used
                    and re.sub(r"_(bucket|sum|count)$", "", n) not in used)
    if unused and (a.dashboard or a.rules):
        print("check-metrics: note: no query uses %s" % ", ".join(unused))
    for e in errors:
        print("  " + e, file=sys.stderr)
    print("check-metrics: %d metric names from %s%s, %d queries checked"
          % (len(src), a.source,
             " + %d expected" % len(exp) if exp else "", len(checks)))
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
