#!/usr/bin/env python3
"""Render the Grafana dashboard to a picture without Grafana: layout from the JSON, values from a live scrape.

Grafana cannot be installed here, so this draws what the dashboard shows at one instant: every
panel where its ``gridPos`` puts it, with its title, and the result of each of its queries
evaluated by promtool's PromQL engine (``promtool test rules``) on the samples of a real
``/metrics`` scrape held constant for ten minutes (Unix timestamps shifted so that promtool's
clock, which starts at 0, reads the time of the scrape). Time-series panels therefore show their
current values, not a history. The HTML is then screenshotted by headless Chromium.

    scripts/render_dashboard.py --metrics http://127.0.0.1:PORT/metrics --out docs/images/dashboard.png
"""

from __future__ import annotations

import argparse
import datetime as dt
import html
import json
import re
import shutil
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path

import yaml
from prometheus_client.parser import text_string_to_metric_families

REPO = Path(__file__).resolve().parents[1]
DASHBOARD = REPO / "charts" / "certpolicy-operator" / "dashboards" / "certpolicy-operator.json"
VARIABLES = {"$__rate_interval": "5m", "$__interval": "1m", "$policy": ".*", "$namespace": ".*", "$role": ".*",
             "$severity": ".*"}
EVAL_AT = "10m"
EVAL_AT_SECONDS = 600
#: promtool's clock starts at 0: Unix timestamps in the scrape are shifted by this much so that
#: time() at EVAL_AT reads the moment of the scrape (set in main)
SHIFT = {"seconds": 0.0}
ROW_PX, WIDTH_PX = 30, 1600
RESULT = re.compile(r'\{((?:[^"}]|"(?:[^"\\]|\\.)*")*)\}\s+([-+0-9.eEInfNa]+)')
LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def substitute(expr: str) -> str:
    for var, value in sorted(VARIABLES.items(), key=lambda kv: -len(kv[0])):
        expr = expr.replace(var, value)
    return expr


def input_series(text: str) -> list[dict[str, str]]:
    out = []
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name.endswith("_created"):
                continue
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(s.labels.items()))
            value = s.value - SHIFT["seconds"] if s.name.endswith("_timestamp_seconds") else s.value
            out.append({"series": f"{s.name}{{{labels}}}", "values": f"{value!r}+0x20"})
    return out


def evaluate(promtool: str, exprs: list[str], series: list[dict[str, str]]) -> dict[str, list[tuple[dict, float]]]:
    """expr -> [(labels, value)], from promtool's report of each expectation it did not meet."""
    with tempfile.TemporaryDirectory() as work:
        Path(work, "rules.yaml").write_text("groups: []\n")
        tests = {"rule_files": ["rules.yaml"], "evaluation_interval": "1m", "tests": [{
            "interval": "1m", "input_series": series,
            "promql_expr_test": [{"expr": e, "eval_time": EVAL_AT, "exp_samples": []} for e in exprs]}]}
        Path(work, "t.yaml").write_text(yaml.safe_dump(tests, width=10_000))
        proc = subprocess.run([promtool, "test", "rules", "t.yaml"], cwd=work, capture_output=True, text=True, timeout=120)
    text = proc.stdout + proc.stderr
    results: dict[str, list[tuple[dict, float]]] = {e: [] for e in exprs}
    for m in re.finditer(r'expr: "((?:[^"\\]|\\.)*)", time: \S+\n\s+exp: .*\n\s+got: (.*)', text):
        expr = json.loads(f'"{m[1]}"')
        results[expr] = [({k: v for k, v in LABEL.findall(labels) if k != "__name__"}, float(value))
                         for labels, value in RESULT.findall(m[2])]
    if proc.returncode != 0 and "FAILED" not in text:
        raise SystemExit(f"promtool failed:\n{text[-2000:]}")
    return results


def fmt(value: float, unit: str | None) -> str:
    if value != value:  # NaN: e.g. a quantile of a histogram that did not move
        return "-"
    if unit in ("dtdurations", "s"):
        sign, v = ("-" if value < 0 else ""), abs(value)
        d, rem = divmod(int(v), 86400)
        h, rem = divmod(rem, 3600)
        if unit == "s" and v < 3600:
            return f"{sign}{v:.0f} s"
        return f"{sign}{d}d {h}h" if d else f"{sign}{h}h {rem // 60}m"
    if unit == "dateTimeAsIso":
        return dt.datetime.fromtimestamp(value / 1000 + SHIFT["seconds"], dt.UTC).strftime("%Y-%m-%d %H:%M:%S")
    if unit == "ops":
        return f"{value:.2f}/s"
    return f"{value:g}"


def color(value: float, thresholds: dict | None) -> str:
    palette = {"green": "#73bf69", "red": "#f2495c", "orange": "#ff9830", "yellow": "#fade2a", "blue": "#5794f2",
               "purple": "#b877d9", "transparent": "#444"}
    chosen = "#ccccdc"
    for step in (thresholds or {}).get("steps", ()):
        if step["value"] is None or value >= step["value"]:
            chosen = palette.get(step["color"], step["color"])
    return chosen


def legend(target: dict, labels: dict) -> str:
    fmt_ = target.get("legendFormat") or ""
    if fmt_:
        return re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda m: labels.get(m[1], ""), fmt_)
    return ", ".join(f"{k}={v}" for k, v in labels.items()) or "value"


def panel_html(panel: dict, results: dict) -> str:
    defaults = (panel.get("fieldConfig") or {}).get("defaults") or {}
    unit, thresholds = defaults.get("unit"), defaults.get("thresholds")
    kind = panel["type"]
    rows = [(t, labels, value) for t in panel["targets"] for labels, value in results[substitute(t["expr"])]]
    if kind == "stat":
        if not rows:
            return '<div class="big">-</div>'
        return "".join(f'<div class="big" style="color:{color(v, thresholds)}">{fmt(v, unit)}</div>'
                       f'<div class="cap">{html.escape(t.get("legendFormat") or "")}</div>' for t, _l, v in rows)
    if kind == "table":
        renames = next((tr["options"].get("renameByName", {}) for tr in panel.get("transformations", ())
                        if tr["id"] == "organize"), {})
        if len(panel["targets"]) > 1:  # merged per policy
            merged: dict[str, dict] = {}
            for t, labels, v in rows:
                merged.setdefault(labels.get("policy", ""), {"policy": labels.get("policy", "")})[
                    renames.get(f"Value #{t['refId']}", t["refId"])] = fmt(v, unit)
            records = list(merged.values())
        else:
            records = [{**labels, renames.get("Value", "value"): (fmt(v, unit), color(v, thresholds) if thresholds else None)}
                       for _t, labels, v in rows]
        if not records:
            return '<div class="cap">no data</div>'
        cols = list(dict.fromkeys(k for r in records for k in r))
        head = "".join(f"<th>{html.escape(c)}</th>" for c in cols)
        body = ""
        for r in records[:12]:
            cells = ""
            for c in cols:
                cell = r.get(c, "")
                if isinstance(cell, tuple) and cell[1]:
                    cells += f'<td style="background:{cell[1]};color:#111">{html.escape(cell[0])}</td>'
                elif isinstance(cell, tuple):
                    cells += f"<td>{html.escape(cell[0])}</td>"
                else:
                    cells += f"<td>{html.escape(str(cell))}</td>"
            body += f"<tr>{cells}</tr>"
        return f"<table><tr>{head}</tr>{body}</table>"
    # bargauge, timeseries, state-timeline: the current value of each series
    mappings = {}
    for m in defaults.get("mappings") or ():
        mappings.update(m.get("options") or {})
    if not rows:
        return '<div class="cap">no data</div>'
    top = max((v for _t, _l, v in rows), default=1) or 1
    out = ""
    for t, labels, v in rows[:10]:
        text = mappings.get(str(int(v)) if v == v and float(v).is_integer() else "", {}).get("text") or fmt(v, unit)
        width = max(2, min(100, 100 * v / top)) if kind == "bargauge" and v > 0 else 2
        out += (f'<div class="bar"><span class="lbl">{html.escape(legend(t, labels))}</span>'
                f'<span class="track"><span class="fill" style="width:{width:.0f}%;background:{color(v, thresholds)}"></span></span>'
                f'<span class="val">{html.escape(text)}</span></div>')
    if kind != "bargauge":
        out += '<div class="cap">current values (a time series in Grafana)</div>'
    return out


def page(dash: dict, results: dict) -> str:
    cells = []
    for p in dash["panels"]:
        g = p["gridPos"]
        style = f"grid-column:{g['x'] + 1}/span {g['w']};grid-row:{g['y'] + 1}/span {g['h']}"
        if p["type"] == "row":
            cells.append(f'<div class="row" style="{style}">{html.escape(p["title"])}</div>')
        else:
            cells.append(f'<div class="panel" style="{style}"><div class="title">{html.escape(p["title"])}</div>'
                         f'{panel_html(p, results)}</div>')
    return f"""<!doctype html><html><head><meta charset="utf-8"><style>
body{{background:#111217;color:#ccccdc;font:13px Inter,Helvetica,Arial,sans-serif;margin:16px;width:{WIDTH_PX - 32}px}}
h1{{font-size:18px;font-weight:500;margin:0 0 4px}} .sub{{color:#8e8e8e;margin-bottom:10px}}
.grid{{display:grid;grid-template-columns:repeat(24,1fr);grid-auto-rows:{ROW_PX}px;gap:6px}}
.panel{{background:#181b1f;border:1px solid #2b2e33;border-radius:3px;padding:6px 8px;overflow:hidden}}
.title{{font-weight:500;margin-bottom:4px}} .row{{font-size:15px;font-weight:500;padding-top:6px}}
.big{{font-size:36px;font-weight:500;text-align:center}} .cap{{color:#8e8e8e;text-align:center;font-size:11px}}
table{{border-collapse:collapse;width:100%;font-size:11px}} th{{text-align:left;color:#6e9fff;border-bottom:1px solid #2b2e33}}
td{{padding:1px 4px;border-bottom:1px solid #22252b;white-space:nowrap}}
.bar{{display:flex;align-items:center;gap:6px;margin:2px 0}} .lbl{{width:38%;white-space:nowrap;overflow:hidden}}
.track{{flex:1;background:#22252b;height:10px}} .fill{{display:block;height:10px}} .val{{width:30%;text-align:right}}
</style></head><body><h1>{html.escape(dash["title"])}</h1>
<div class="sub">Rendered from charts/certpolicy-operator/dashboards/certpolicy-operator.json by scripts/render_dashboard.py
(layout from the JSON; values: each query evaluated by promtool on a live /metrics scrape; not Grafana)</div>
<div class="grid">{"".join(cells)}</div></body></html>"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--metrics", required=True, help="URL or file of a Prometheus text scrape")
    parser.add_argument("--out", type=Path, required=True, help="PNG to write")
    parser.add_argument("--html", type=Path, help="also keep the HTML here")
    parser.add_argument("--promtool", help="promtool binary (default: the project's cached build)")
    args = parser.parse_args()
    if args.metrics.startswith("http"):
        with urllib.request.urlopen(args.metrics, timeout=10) as resp:  # noqa: S310 - a local operator
            text = resp.read().decode()
    else:
        text = Path(args.metrics).read_text()
    if args.promtool:
        promtool = args.promtool
    else:
        from certpolicy.localcluster.binaries import ensure_tool

        promtool = str(ensure_tool("promtool"))
    SHIFT["seconds"] = dt.datetime.now(dt.UTC).timestamp() - EVAL_AT_SECONDS
    dash = json.loads(DASHBOARD.read_text())
    exprs = list(dict.fromkeys(substitute(t["expr"]) for p in dash["panels"] for t in p.get("targets", ())))
    results = evaluate(promtool, exprs, input_series(text))
    doc = page(dash, results)
    with tempfile.TemporaryDirectory() as work:
        html_path = Path(work, "dashboard.html")
        html_path.write_text(doc)
        if args.html:
            args.html.write_text(doc)
        chromium = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
        if not chromium:
            raise SystemExit("headless Chromium is needed for the PNG (Debian: apt-get install chromium)")
        height = (max(p["gridPos"]["y"] + p["gridPos"]["h"] for p in dash["panels"]) * (ROW_PX + 6)) + 90
        args.out.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                        f"--window-size={WIDTH_PX},{height}", f"--screenshot={args.out.resolve()}", html_path.as_uri()],
                       check=True, capture_output=True, timeout=120)
    print(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
