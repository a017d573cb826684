"""Figures over the sweep: heatmaps of a metric over the two main swept parameters, the cost and yield breakdown.

Each returns a plotly Figure, or None with the reason when the result set cannot show it (the page prints it).
"""
from __future__ import annotations

import math

import plotly.graph_objects as go
import polars as pl

from backtest.report.loading import ResultSet

# the liquidation loss shown: the first of these the summary has. The fair-value loss (seized collateral at
# the exchange rate minus the debt repaid, issue 12) is what the borrower lost; liq_penalty is the bonus at
# the oracle price, an under-statement when the oracle misprices.
LOSS_COLUMNS = ("liq_loss_rate", "liq_loss_fair", "liq_loss", "liq_loss_market", "liq_penalty")

# (column, sign, label): what the position earned (+) and paid (-), in the debt asset; the residual up to pnl
# is the market mark (price moves of the collateral held) and anything not itemised
BREAKDOWN = (
    ("staking_yield", 1, "staking yield"), ("supply_yield", 1, "supply yield"),
    ("interest_paid", -1, "borrow interest"), ("gas_cost", -1, "gas"), ("swap_fee_cost", -1, "swap fees"),
    ("slippage_cost", -1, "slippage"), ("flash_fee_cost", -1, "flash-loan fees"),
    ("liq_loss", -1, "liquidation loss"),      # LIQ_BREAKDOWN: at fair value when the summary has it
)
LIQ_BREAKDOWN = (("liq_loss_rate", "liquidation loss at fair value"), ("liq_penalty", "liquidation bonus paid"))
# the net APY heatmap's column: a Monte Carlo summary (one row per configuration, statistics over its
# paths) has no net_apy but its mean and quantiles
NET_COLUMNS = ("net_apy", "net_apy_mean", "net_apy_p50")
# heatmaps drawn when a Monte Carlo summary has these: (column, title, percent, colour scale, its middle)
PATH_HEATMAPS = (
    ("liq_probability", "Liquidation probability (% of paths)", True, "Reds", None),
    ("net_apy_p5", "Net APY, 5th percentile over the paths (%)", True, "RdYlGn", 0.0),
    ("cvar95", "CVaR 95 %: capital minus the mean ending equity of the worst 5 % of paths", False, "Reds", None),
)
MAX_CELLS_WITH_TEXT = 150       # beyond, the numbers are in the hover text only


def _short(name: str) -> str:
    return name.split(".")[-1]


def label(rs: ResultSet, row: dict) -> str:
    """`#12 target_ltv=0.6 loops=3`: a configuration named by its swept values."""
    parts = [f"#{row['config_id']}"]
    for p in rs.parameters:
        v = row.get(p)
        parts.append(f"{_short(p)}={v:g}" if isinstance(v, float) else f"{_short(p)}={v}")
    return " ".join(parts)


def loss_column(summary: pl.DataFrame) -> str | None:
    return next((c for c in LOSS_COLUMNS if c in summary.columns), None)


def _sorted_unique(s: pl.Series) -> list:
    vals = s.unique().to_list()
    try:
        return sorted(vals)
    except TypeError:           # mixed types: keep them in text order
        return sorted(vals, key=str)


def heatmap_slice(rs: ResultSet, filtered: pl.DataFrame, axes: tuple[str, ...], anchor: dict | None
                  ) -> tuple[pl.DataFrame, str]:
    """The rows a heatmap shows: every parameter other than its axes held at the anchor configuration's value
    (the best by the metric); a note saying so."""
    others = [p for p in rs.parameters if p not in axes]
    if not others or anchor is None:
        return filtered, ""
    df = filtered
    held = []
    for p in others:
        df = df.filter(pl.col(p) == anchor[p]) if anchor[p] is not None else df.filter(pl.col(p).is_null())
        held.append(f"{_short(p)}={anchor[p]}")
    return df, "other parameters at the best configuration's: " + ", ".join(held)


def heatmap(rs: ResultSet, df: pl.DataFrame, axes: tuple[str, ...], column: str, title: str, pct: bool,
            colorscale: str, zmid: float | None) -> go.Figure:
    """A heatmap of `column` over axes (x, y); one axis gives one row. Duplicate cells (Monte Carlo paths)
    show their mean."""
    x = axes[0]
    y = axes[1] if len(axes) > 1 else None
    keys = [x] if y is None else [x, y]
    cells = df.group_by(keys).agg(pl.col(column).cast(pl.Float64).mean().alias("v"), pl.len().alias("n"))
    xs = _sorted_unique(cells[x])
    ys = _sorted_unique(cells[y]) if y else [""]
    look = {(r[x], r[y] if y else ""): r["v"] for r in cells.iter_rows(named=True)}
    scale = 100.0 if pct else 1.0
    z = []
    for yv in ys:
        row = []
        for xv in xs:
            v = look.get((xv, yv))
            row.append(None if v is None or math.isnan(v) else v * scale)
        z.append(row)
    unit = "%" if pct else rs.unit("summary", column)
    trace = go.Heatmap(z=z, x=[str(v) for v in xs], y=[str(v) for v in ys], colorscale=colorscale, zmid=zmid,
                       colorbar={"title": {"text": unit}},
                       hovertemplate=f"{_short(x)}=%{{x}}<br>" + (f"{_short(y)}=%{{y}}<br>" if y else "")
                       + f"{column}=%{{z:.4g}} {unit}<extra></extra>")
    flat = [v for r in z for v in r if v is not None]
    if zmid is None and flat and min(flat) >= 0:       # a loss or a probability: white is none
        trace.update(zmin=0.0, zmax=max(flat) if max(flat) > 0 else 1.0)
    if len(xs) * len(ys) <= MAX_CELLS_WITH_TEXT:
        trace.update(texttemplate="%{z:.3g}", textfont={"size": 10})
    fig = go.Figure(trace)
    fig.update_layout(title=title, xaxis_title=x, yaxis_title=y or "", xaxis_type="category",
                      yaxis_type="category", height=420 if y else 260, margin={"t": 50, "b": 50})
    return fig


def breakdown(rs: ResultSet, chosen: list[int]) -> go.Figure | None:
    """Stacked bars per chosen configuration: yields up, costs down, the residual to the P&L (market mark),
    and the P&L itself as a marker, all in the debt asset."""
    s = rs.summary.filter(pl.col("config_id").is_in(chosen))
    if s.height == 0 or not any(col in s.columns for col, _, _ in BREAKDOWN):
        return None
    s = s.group_by("config_id", maintain_order=True).first()
    order = {c: i for i, c in enumerate(chosen)}
    rows = sorted(s.iter_rows(named=True), key=lambda r: order[r["config_id"]])
    names = [label(rs, r) for r in rows]
    pnl = [_pnl(r) for r in rows]
    fig = go.Figure()
    itemised = [0.0] * len(rows)
    for col, sign, text in BREAKDOWN:
        if col == "liq_loss":
            col, text = next(((c, t) for c, t in LIQ_BREAKDOWN if c in s.columns), (col, text))
        if col not in s.columns:
            continue
        vals = [sign * _num(r.get(col)) for r in rows]
        if not any(vals):
            continue
        itemised = [a + b for a, b in zip(itemised, vals)]
        fig.add_bar(name=text, x=names, y=vals)
    residual = [p - i if p is not None else None for p, i in zip(pnl, itemised)]
    fig.add_bar(name="market mark and other (residual to P&L)", x=names, y=residual, marker_color="#bbbbbb")
    fig.add_scatter(name="P&L", x=names, y=pnl, mode="markers", marker={"symbol": "diamond", "size": 11,
                                                                        "color": "black"})
    debt = rows[0].get("debt_asset") or rs.unit("summary", "pnl")
    fig.update_layout(barmode="relative", title="Where the P&L came from (chosen configurations)",
                      yaxis_title=str(debt), height=600, legend={"orientation": "h", "y": 1.0, "yanchor": "bottom"},
                      margin={"t": 110, "b": 40}, xaxis_tickangle=30, xaxis_automargin=True)
    return fig


def _num(v) -> float:
    return 0.0 if v is None or (isinstance(v, float) and math.isnan(v)) else float(v)


def _pnl(row: dict) -> float | None:
    if row.get("pnl") is not None:
        return float(row["pnl"])
    if row.get("end_equity") is not None and row.get("capital") is not None:
        return float(row["end_equity"]) - float(row["capital"])
    return None
