"""The page: one self-contained HTML file (plotly's JavaScript inlined once, no network), tables and figures.

Every figure div has a fixed id and the body lists them in `data-figures`, so a browser test can check each
one rendered; nothing in the page depends on when it was made, so the same result set gives the same bytes.
"""
from __future__ import annotations

import datetime as dt
import html
import json
import math
from dataclasses import dataclass, field

import plotly.io as pio
import polars as pl
from plotly.offline import get_plotlyjs

from backtest.report.loading import ResultSet

MAX_TABLE_ROWS = 500
MAX_CELL_CHARS = 72
CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;color:#1d2329;background:#fafafa}
header{background:#1d2d44;color:#fff;padding:18px 28px}header h1{margin:0 0 6px;font-size:22px}
header p{margin:2px 0;font-size:13px;opacity:.9}nav{padding:8px 28px;background:#e9edf2;font-size:13px}
nav a{margin-right:14px;color:#1d2d44}main{padding:4px 28px 40px}section{margin:26px 0}
h2{font-size:18px;border-bottom:1px solid #ccd;padding-bottom:4px}p.note{font-size:13px;color:#555}
table{border-collapse:collapse;font-size:12px;background:#fff;margin:8px 0}
th,td{border:1px solid #d6dbe1;padding:3px 7px;text-align:right;white-space:nowrap}
th{background:#eef1f5;position:sticky;top:0}td.t,th.t{text-align:left}.wrap{max-height:480px;overflow:auto}
pre{background:#fff;border:1px solid #d6dbe1;padding:10px;font-size:12px;max-height:420px;overflow:auto}
.figure{background:#fff;border:1px solid #d6dbe1;margin:10px 0}
"""


@dataclass
class Page:
    title: str
    header: list[str]
    sections: list[tuple[str, str, str]] = field(default_factory=list)   # (anchor, heading, body html)
    figures: list[str] = field(default_factory=list)                     # figure div ids, in page order

    def figure(self, div_id: str, fig) -> str:
        self.figures.append(div_id)
        body = pio.to_html(fig, full_html=False, include_plotlyjs=False, div_id=div_id,
                           config={"displaylogo": False, "responsive": True})
        return f'<div class="figure">{body}</div>'

    def add(self, anchor: str, heading: str, *parts: str) -> None:
        self.sections.append((anchor, heading, "\n".join(p for p in parts if p)))

    def render(self) -> str:
        nav = " ".join(f'<a href="#{a}">{html.escape(h)}</a>' for a, h, _ in self.sections)
        secs = "\n".join(f'<section id="{a}"><h2>{html.escape(h)}</h2>\n{b}\n</section>'
                         for a, h, b in self.sections)
        head = "".join(f"<p>{line}</p>" for line in self.header)
        return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
                f"<title>{html.escape(self.title)}</title><style>{CSS}</style>\n"
                f"<script type=\"text/javascript\">{get_plotlyjs()}</script>\n</head>\n"
                f"<body data-figures=\"{' '.join(self.figures)}\">\n<header><h1>{html.escape(self.title)}</h1>"
                f"{head}</header>\n<nav>{nav}</nav>\n<main>\n{secs}\n</main>\n</body></html>\n")


def note(text: str) -> str:
    return f'<p class="note">{html.escape(text)}</p>' if text else ""


def utc(ts) -> str:
    return dt.datetime.fromtimestamp(int(ts), dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def duration(seconds: float) -> str:
    s = int(seconds)
    d, h, m = s // 86400, s % 86400 // 3600, s % 3600 // 60
    return f"{d}d {h}h" if d else (f"{h}h {m}m" if h else f"{m}m {s % 60}s")


def _cell(v, unit: str) -> tuple[str, bool]:
    """(text, is_text) of one value, formatted by its column's unit."""
    if v is None:
        return "–", False
    if isinstance(v, bool):
        return str(v), True
    if isinstance(v, dt.datetime):
        return v.strftime("%Y-%m-%d %H:%M"), True
    if isinstance(v, (int, float)):
        if isinstance(v, float) and math.isnan(v):
            return "–", False
        if isinstance(v, float) and math.isinf(v):
            return "∞" if v > 0 else "−∞", False
        u = unit.lower()
        if u.startswith("apy") or u.startswith("apr") or u == "fraction" or u.startswith("return"):
            return f"{v * 100:.2f} %", False
        if u.startswith("s (utc epoch)") and v > 0:
            return utc(v), True
        if u == "s":
            return duration(v), False
        if isinstance(v, int):
            return f"{v:d}", False
        return f"{v:.6g}", False
    if isinstance(v, (list, dict)):
        return json.dumps(v, sort_keys=True), True
    return str(v), True


def table(df: pl.DataFrame, units: dict[str, str] | None = None, limit: int = MAX_TABLE_ROWS) -> str:
    units = units or {}
    head = "".join(f'<th class="t" title="{html.escape(units.get(c, ""))}">{html.escape(c)}</th>'
                   for c in df.columns)
    rows = []
    for r in df.head(limit).iter_rows():
        cells = []
        for c, v in zip(df.columns, r):
            text, is_text = _cell(v, units.get(c, ""))
            if is_text and len(text) > MAX_CELL_CHARS:       # the whole text on hover
                cut = html.escape(text[:MAX_CELL_CHARS - 1])
                cells.append(f'<td class="t" title="{html.escape(text)}">{cut}…</td>')
            else:
                cells.append(f'<td class="t">{html.escape(text)}</td>' if is_text else f"<td>{html.escape(text)}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    more = note(f"{df.height - limit} more rows not shown") if df.height > limit else ""
    return f'<div class="wrap"><table><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table></div>{more}'


def units_of(rs: ResultSet, table_name: str) -> dict[str, str]:
    return {e["name"]: e.get("unit", "") for e in (rs.manifest.get("columns") or {}).get(table_name, [])
            if isinstance(e, dict) and "name" in e}


def manifest_section(rs: ResultSet) -> str:
    m = rs.manifest
    facts = [("name", m.get("name")), ("status", m.get("status")), ("package version", m.get("package_version")),
             ("engine", m.get("engine")), ("configurations", len(m.get("points") or [])),
             ("config hash", m.get("config_hash")), ("data hash", ", ".join(m.get("data_hash") or [])
                                                     if isinstance(m.get("data_hash"), list) else m.get("data_hash")),
             ("started", m.get("started")), ("finished", m.get("finished")), ("blocks", m.get("blocks"))]
    rows = "".join(f'<tr><th class="t">{html.escape(k)}</th><td class="t">{html.escape(str(v))}</td></tr>'
                   for k, v in facts if v is not None)
    parts = [f"<table>{rows}</table>"]
    series = m.get("series")
    if isinstance(series, list) and series and all(isinstance(s, dict) for s in series):
        df = pl.DataFrame(series)
        parts.append("<h3>Series read</h3>" + table(df, {"first_ts": "s (UTC epoch)", "last_ts": "s (UTC epoch)"}))
    parts.append("<h3>Configuration</h3><pre>" + html.escape(json.dumps(m.get("config"), indent=1, sort_keys=True))
                 + "</pre>")
    cols = m.get("columns") or {}
    for name, entries in sorted(cols.items()):
        if isinstance(entries, list) and entries:
            df = pl.DataFrame([{k: str(e.get(k, "")) for k in ("name", "unit", "meaning")} for e in entries])
            parts.append(f"<details><summary>Column dictionary: {html.escape(name)}</summary>{table(df)}</details>")
    return "\n".join(parts)
