#!/usr/bin/env python3
"""Plot the Grafana dashboard's own queries with gnuplot (bench/dashboard-
snapshot.sh). Not a Grafana screenshot: each time-series panel of the
dashboard JSON becomes a gnuplot panel, in the dashboard's order, fed by
Prometheus' HTTP API with the panel's PromQL as written (Grafana's
variables replaced: $__rate_interval by what Grafana computes for the
scrape interval, $instance by every instance); the stat panels become a
line of text with their values at the end of the run.

    dashboard_snapshot.py --prometheus http://127.0.0.1:9090
        --dashboard docker/grafana/dashboards/txval.json
        --source ngx_http_txval_module/ngx_http_txval_prometheus.c
        --start UNIX --end UNIX --step 2 --rate-interval 8s
        [--shade FROM:TO:LABEL]... --note TEXT --out docs/dashboard.png
        --work build/snapshot/plot
"""

import argparse
import importlib.util
import json
import math
import os
import re
import subprocess
import sys
import urllib.parse
import urllib.request

here = os.path.dirname(os.path.abspath(__file__))
spec = importlib.util.spec_from_file_location(
    "check_metrics", os.path.join(here, "..", "scripts", "check-metrics.py"))
cm = importlib.util.module_from_spec(spec)
spec.loader.exec_module(cm)

# Grafana's classic palette, as far as it goes
COLORS = ["#7eb26d", "#eab839", "#6ed0e0", "#ef843c", "#e24d42", "#1f78c1",
          "#ba43a9", "#705da0", "#508642", "#cca300", "#447ebc", "#c15c17"]

UNITS = {                   # Grafana unit: (scale, axis label)
    "reqps": (1, "req/s"),
    "ops": (1, "/s"),
    "percentunit": (100, "%"),
    "s": (1000, "ms"),
    "short": (1, ""),
    "none": (1, ""),
    "bytes": (1, "bytes"),
}


def api(base, path, **params):
    url = "%s/api/v1/%s?%s" % (base, path, urllib.parse.urlencode(params))
    with urllib.request.urlopen(url, timeout=30) as r:
        doc = json.load(r)
    if doc.get("status") != "success":
        raise RuntimeError("%s: %s" % (url, doc))
    return doc["data"]["result"]


def legend(fmt, labels):
    if fmt:
        return re.sub(r"\{\{\s*(\w+)\s*\}\}",
                      lambda m: labels.get(m.group(1), ""), fmt).strip()
    return "{%s}" % ",".join("%s=%s" % kv for kv in sorted(labels.items())
                             if kv[0] != "__name__")


def fmt_value(v, unit):
    if v is None or math.isnan(v):
        return "no data"
    if unit == "percentunit":
        return "%.1f%%" % (v * 100)
    if unit == "s":
        return "%.2f ms" % (v * 1000) if v < 1 else "%.2f s" % v
    if unit in ("reqps", "ops"):
        return "%.1f/s" % v
    return "%g" % round(v, 2)


def right_refs(panel):
    """refId -> unit of the targets Grafana draws on the right axis."""
    out = {}
    for o in (panel.get("fieldConfig") or {}).get("overrides") or []:
        m = o.get("matcher") or {}
        if m.get("id") != "byFrameRefID":
            continue
        props = {p.get("id"): p.get("value") for p in o.get("properties", [])}
        if props.get("custom.axisPlacement") == "right":
            out[m.get("options")] = props.get("unit", "short")
    return out


def gp_str(s):
    return '"%s"' % (s.replace("\\", "\\\\").replace('"', '\\"')
                     .replace("\n", "\\n"))


def main(argv):
    ap = argparse.ArgumentParser()
    ap.add_argument("--prometheus", required=True)
    ap.add_argument("--dashboard", required=True)
    ap.add_argument("--source", required=True)
    ap.add_argument("--expected")
    ap.add_argument("--start", type=float, required=True)
    ap.add_argument("--end", type=float, required=True)
    ap.add_argument("--step", type=float, default=2)
    ap.add_argument("--rate-interval", default="8s")
    ap.add_argument("--shade", action="append", default=[])
    ap.add_argument("--note", default="")
    ap.add_argument("--out", required=True)
    ap.add_argument("--work", required=True)
    a = ap.parse_args(argv)

    os.makedirs(a.work, exist_ok=True)
    doc = json.load(open(a.dashboard, encoding="utf-8"))
    exposed = cm.known_names(cm.source_metrics(a.source))
    t0, t1 = a.start, a.end
    span = t1 - t0

    def promql(expr):
        return cm.grafana_to_promql(expr, a.rate_interval)

    # the stat panels: their value at the end of the run
    stats = []
    panels = []
    for p in cm.walk_panels(doc.get("panels")):
        if p.get("type") == "stat":
            unit = p["fieldConfig"]["defaults"].get("unit", "short")
            t = p["targets"][0]
            res = api(a.prometheus, "query", query=promql(t["expr"]), time=t1)
            if p["options"].get("textMode") == "name":
                val = ", ".join(legend(t.get("legendFormat"), r["metric"])
                                for r in res) or "no data"
            else:
                vals = [float(r["value"][1]) for r in res]
                val = fmt_value(vals[0] if vals else None, unit)
            if not res and any(n not in exposed
                               for n in cm.promql_metrics(t["expr"])):
                val = "not exposed yet"
            stats.append("%s: %s" % (p["title"], val))
        elif p.get("type") == "timeseries":
            panels.append(p)

    # the time-series panels: data files and a gnuplot script
    cols = 4
    rows = (len(panels) + cols - 1) // cols
    gp = []
    # the alert rules Prometheus evaluated during the run
    alerts = {}
    for r in api(a.prometheus, "query_range", query="ALERTS", start=t0,
                 end=t1, step=a.step):
        name = r["metric"].get("alertname", "?")
        if r["metric"].get("backend"):
            name += "{%s}" % r["metric"]["backend"]
        first = float(r["values"][0][0]) - t0
        state = r["metric"].get("alertstate")
        prev = alerts.get(name)
        if prev is None or state == "firing":
            alerts[name] = "%s %s from %.0fs" % (name, state, first)
    title = ("txval dashboard (docker/grafana/dashboards/txval.json): its "
             "queries over a local run, plotted by gnuplot, not a Grafana "
             "screenshot; x axes: seconds into the run\n"
             + "   ".join(stats))
    if a.note:
        title += "\n" + a.note
    line = "Alert rules (docker/prometheus/txval-rules.yml) during the run: "
    for k in sorted(alerts) or ["none pending"]:
        item = alerts.get(k, k)
        if len(line) + len(item) > 230:
            title += "\n" + line.rstrip("; ")
            line = ""
        line += item + "; "
    title += "\n" + line.rstrip("; ")
    head = 60 + 24 * title.count("\n")
    height = head + 430 * rows
    gp.append('set terminal pngcairo size 2400,%d font "DejaVu Sans,11" '
              'noenhanced' % height)
    gp.append("set output %s" % gp_str(a.out))
    gp.append("set multiplot layout %d,%d title %s font \",13\" "
              "margins 0.035,0.965,%.3f,%.3f spacing 0.05,%.3f"
              % (rows, cols, gp_str(title), 40.0 / height,
                 1 - (head + 20.0) / height, 85.0 / height))
    gp.append("set xrange [0:%g]" % span)
    gp.append("set grid lc rgb '#dddddd'")
    gp.append("set key top left vertical maxrows 5 font ',8' samplen 1.5 "
              "spacing 0.9 opaque box lc rgb '#cccccc'")
    gp.append("set style fill transparent solid 0.25 noborder")
    gp.append("set border lc rgb '#777777'")

    missing_all = set()
    for k, p in enumerate(panels):
        unit = p["fieldConfig"]["defaults"].get("unit", "short")
        scale, ylab = UNITS.get(unit, (1, unit))
        right = right_refs(p)
        series = []
        missing = set()
        for t in p.get("targets", []):
            names = cm.promql_metrics(t["expr"])
            missing |= {n for n in names if n not in exposed}
            res = api(a.prometheus, "query_range", query=promql(t["expr"]),
                      start=t0, end=t1, step=a.step)
            ref = t.get("refId")
            r_unit = right.get(ref)
            r_scale = UNITS.get(r_unit, (1, ""))[0] if r_unit else scale
            for r in sorted(res, key=lambda r: legend(t.get("legendFormat"),
                                                      r["metric"])):
                path = os.path.join(a.work, "p%02d_s%02d.dat"
                                    % (k, len(series)))
                with open(path, "w") as f:
                    prev = None
                    for ts, v in r["values"]:
                        v = float(v)
                        if math.isnan(v) or math.isinf(v):
                            if prev is not None:
                                f.write("\n")
                            prev = None
                            continue
                        if prev is not None and float(ts) - prev > 1.5 * a.step:
                            f.write("\n")
                        f.write("%.3f %.6g\n" % (float(ts) - t0, v * r_scale))
                        prev = float(ts)
                series.append((path, legend(t.get("legendFormat"),
                                            r["metric"]), bool(r_unit)))
        missing_all |= missing

        gp.append("unset label; unset object; unset y2tics; unset y2label")
        gp.append("set ytics nomirror")
        for n, sh in enumerate(a.shade):
            f, to, _ = sh.split(":", 2)
            gp.append("set object %d rect from %s, graph 0 to %s, graph 1 "
                      "fc rgb '#f4c7c3' fs solid 0.35 noborder behind"
                      % (n + 1, f, to))
        gp.append("set title %s font ',12'" % gp_str(p["title"]))
        gp.append("set ylabel %s offset 1,0" % gp_str(ylab))
        lo = p["fieldConfig"]["defaults"].get("min")
        hi = p["fieldConfig"]["defaults"].get("max")
        gp.append("set yrange [%s:%s]"
                  % ("*" if lo is None else lo * scale,
                     "*" if hi is None else hi * scale))
        on_right = [s for s in series if s[2]]
        if on_right:
            r_unit = next(iter(right.values()))
            gp.append("set y2tics; set y2range [0:*]")
            gp.append("set y2label %s" % gp_str(
                UNITS.get(r_unit, (1, r_unit))[1] or on_right[0][1]))
        if not series:
            why = ("no data:\n%s\nnot exposed by this build yet"
                   % "\n".join(sorted(missing)) if missing else "no data")
            gp.append("set label 1 %s at graph 0.5, graph 0.5 center "
                      "tc rgb '#888888'" % gp_str(why))
            gp.append("set yrange [0:1]")
            gp.append("plot NaN notitle")
            continue
        if missing:
            gp.append("set label 1 %s at graph 0.98, graph 0.04 right "
                      "font ',8' tc rgb '#888888'"
                      % gp_str("not exposed yet: " + ", ".join(sorted(missing))))
        plots = []
        for n, (path, name, on_right) in enumerate(series):
            plots.append("%s using 1:2 with lines lw 1.6 lc rgb '%s' title %s%s"
                         % (gp_str(path), COLORS[n % len(COLORS)],
                            gp_str(name),
                            " axes x1y2" if on_right else ""))
        gp.append("plot " + ", \\\n     ".join(plots))
    gp.append("unset multiplot")

    script = os.path.join(a.work, "dashboard.gp")
    with open(script, "w") as f:
        f.write("\n".join(gp) + "\n")
    subprocess.run(["gnuplot", script], check=True)

    print("dashboard_snapshot: %d panels, %d stats -> %s"
          % (len(panels), len(stats), a.out))
    for s in stats:
        print("  " + s)
    for k in sorted(alerts):
        print("  alert: " + alerts[k])
    if missing_all:
        print("  not exposed by this build (empty panels): "
              + ", ".join(sorted(missing_all)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
