"""Figures over time for the chosen configurations: equity against the hold benchmark, HF paths with their
liquidations and the de-peg episodes shaded, and the market / exchange-rate / oracle prices.

Lines longer than MAX_POINTS samples are thinned per bucket to the sample of lowest HF and the bucket's last
one, so a `record = "block"` series still shows its dips and its end.
"""
from __future__ import annotations

import datetime as dt
import math

import numpy as np
import plotly.graph_objects as go
import polars as pl
from plotly.subplots import make_subplots

from backtest.report.figures_sweep import label
from backtest.report.loading import ResultSet

MAX_POINTS = 4000
HF_CAP = 4.0          # HF axis upper bound: a line above it (no debt: inf) runs along the top
EPISODE_COLOURS = {"market": "rgba(214, 39, 40, 0.13)", "oracle": "rgba(148, 103, 189, 0.16)"}


def _times(ts) -> np.ndarray:
    """Epoch seconds as epoch milliseconds: what a plotly date axis reads (an int64 array travels to the page
    as packed binary, a third the size of date strings)."""
    return np.asarray(ts, dtype=np.int64) * 1000


def thin(df: pl.DataFrame, max_points: int = MAX_POINTS) -> pl.DataFrame:
    if df.height <= max_points:
        return df
    bucket = max(1, math.ceil(df.height / (max_points // 2)))
    hf = df["hf"].fill_nan(np.inf).fill_null(np.inf).to_numpy() if "hf" in df.columns else None
    keep = set()
    for lo in range(0, df.height, bucket):
        hi = min(lo + bucket, df.height)
        keep.add(hi - 1)
        if hf is not None:
            keep.add(lo + int(np.argmin(hf[lo:hi])))
    keep.add(0)
    return df[sorted(keep)]


def _config(rs: ResultSet, section: str) -> dict:
    return ((rs.manifest.get("config") or {}).get(section) or {})


def _rows(rs: ResultSet, chosen: list[int]) -> dict[int, dict]:
    s = rs.summary.filter(pl.col("config_id").is_in(chosen)).group_by("config_id", maintain_order=True).first()
    return {r["config_id"]: r for r in s.iter_rows(named=True)}


def drawn(rs: ResultSet, chosen: list[int]) -> list[int]:
    """The chosen configurations that have a time series."""
    return [c for c in chosen if rs.series(c) is not None and rs.series(c).height > 0]


def equity(rs: ResultSet, chosen: list[int]) -> tuple[go.Figure | None, str]:
    """Equity (collateral at the market price, in the debt asset) of each chosen configuration, and the hold
    benchmark: hold_end_equity scaled back along the collateral's market price (the benchmark holds the same
    token bought at the first block). Normalised to the capital when the chosen capitals differ."""
    ids = drawn(rs, chosen)
    if not ids:
        return None, "no time series recorded for the chosen configurations (run.record = \"none\"?)"
    rows = _rows(rs, ids)
    caps = {rows[c].get("capital") for c in ids}
    norm = len(caps) > 1
    fig = go.Figure()
    for c in ids:
        df = thin(rs.series(c))
        y = df["equity"].to_numpy()
        if norm:
            y = y / float(rows[c]["capital"])
        fig.add_scatter(x=_times(df["ts"]), y=y, name=label(rs, rows[c]), mode="lines")
    note = ""
    first = ids[0]
    # a sweep of strategy.restake carries each row's value in its label column
    restake = rows[first].get("strategy.restake") or _config(rs, "strategy").get("restake") or "none"
    hold_end = rows[first].get("hold_end_equity")
    if restake != "none":
        note = "hold benchmark not drawn: it holds the base LST, whose price the time series does not carry"
    elif _legs(rs.series(first)) != [("", "")]:
        note = "hold benchmark not drawn: several collateral legs (its price path is not in the time series)"
    elif hold_end is not None and not math.isnan(hold_end):
        df = thin(rs.series(first))
        mp = df["market_price"].to_numpy()
        hold = hold_end * mp / mp[-1]
        if norm:
            hold = hold / float(rows[first]["capital"])
        fig.add_scatter(x=_times(df["ts"]), y=hold, name="hold the collateral (benchmark)", mode="lines",
                        line={"dash": "dash", "color": "black", "width": 2})
    unit = "× capital" if norm else rs.unit("timeseries", "equity")
    fig.update_xaxes(type="date")
    fig.update_layout(title="Equity at the market price vs holding the token", yaxis_title=unit, height=460,
                      legend={"orientation": "h", "y": -0.2})
    return fig, note


def episode_spans(rs: ResultSet) -> list[tuple[int, int, str, float | None]]:
    """(start ts, end ts, kind, worst discount) of each distinct episode in episodes.parquet."""
    ep = rs.episodes
    if ep is None or ep.height == 0:
        return []
    start = next((c for c in ("start_ts", "start") if c in ep.columns), None)
    end = next((c for c in ("end_ts", "end") if c in ep.columns), None)
    if start is None or end is None:
        return []
    kind = next((c for c in ("kind", "episode_kind") if c in ep.columns), None)
    worst = next((c for c in ("worst_discount", "depth") if c in ep.columns), None)
    cols = [c for c in (start, end, kind, worst) if c]
    spans = []
    for r in ep.select(cols).unique(maintain_order=True).iter_rows(named=True):
        s, e = r[start], r[end]
        if isinstance(s, dt.datetime):
            s, e = (int(v.replace(tzinfo=dt.timezone.utc).timestamp()) for v in (s, e))
        spans.append((int(s), int(e), str(r[kind]) if kind else "market", r[worst] if worst else None))
    return sorted(set(spans), key=lambda t: (t[0], t[1], t[2]))


def _shade(fig: go.Figure, spans, annotate: bool = False, **where) -> None:
    """Shade each episode; with annotate, label the deepest one (close episodes' labels would overlap; the
    episodes table lists them all)."""
    depths = [w for *_, w in spans if w is not None and math.isfinite(w)]
    deepest = max(depths) if depths else None
    for s, e, kind, worst in spans:
        colour = EPISODE_COLOURS.get(kind, EPISODE_COLOURS["market"])
        text = {}
        if annotate and worst is not None and worst == deepest:
            text = {"annotation_text": f"deepest {kind} episode: −{worst * 100:.1f} %",
                    "annotation_position": "top left",
                    "annotation_font_size": 10}
        fig.add_vrect(x0=int(_times([s])[0]), x1=int(_times([max(e, s + 1)])[0]), fillcolor=colour, line_width=0,
                      layer="below", **text, **where)


def health(rs: ResultSet, chosen: list[int]) -> tuple[go.Figure | None, str]:
    ids = drawn(rs, chosen)
    if not ids:
        return None, "no time series recorded for the chosen configurations"
    rows = _rows(rs, ids)
    fig = go.Figure()
    top = 1.0
    for c in ids:
        df = thin(rs.series(c))
        hf = df["hf"].to_numpy().astype(float)
        finite = hf[np.isfinite(hf)]
        if finite.size:
            top = max(top, float(finite.max()))
        fig.add_scatter(x=_times(df["ts"]), y=np.where(np.isfinite(hf), np.minimum(hf, HF_CAP), HF_CAP),
                        name=label(rs, rows[c]), mode="lines", legendgroup=str(c))
    liq = rs.events.filter((pl.col("kind") == "liquidation") & pl.col("config_id").is_in(ids))
    if liq.height:
        hf_after = liq["hf_after"].to_numpy().astype(float) if "hf_after" in liq.columns else np.ones(liq.height)
        fig.add_scatter(x=_times(liq["ts"]), y=np.where(np.isfinite(hf_after), np.minimum(hf_after, HF_CAP), HF_CAP),
                        mode="markers", name="liquidation (HF after)",
                        marker={"symbol": "x", "size": 12, "color": "red", "line": {"width": 2}},
                        text=[label(rs, rows[c]) for c in liq["config_id"]],
                        hovertemplate="%{text}<br>%{x}<br>HF after %{y:.3f}<extra>liquidation</extra>")
    fig.add_hline(y=1.0, line={"color": "red", "dash": "dot"}, annotation_text="HF 1")
    spans = episode_spans(rs)
    _shade(fig, spans)
    note = (f"{len(spans)} episode(s) shaded (red: market below the exchange rate, purple: oracle)" if spans
            else "no de-peg episodes shaded: " + ("episodes.parquet lists none" if rs.episodes is not None
                                                  else "the result set has no episodes.parquet"))
    fig.update_xaxes(type="date")
    fig.update_layout(title="Health factor (liquidations marked, de-peg episodes shaded)", yaxis_title="HF",
                      yaxis_range=[max(0.0, min(0.9, _lowest(rs, ids) - 0.05)), min(HF_CAP, top) * 1.02],
                      height=460, legend={"orientation": "h", "y": -0.2})
    return fig, note


def _lowest(rs: ResultSet, ids: list[int]) -> float:
    lows = [float(rs.series(c)["hf"].min()) for c in ids]
    return min([v for v in lows if math.isfinite(v)] or [1.0])


def _legs(df: pl.DataFrame) -> list[tuple[str, str]]:
    """(column suffix, token) of each collateral whose prices the series carries: ("", "") for one token,
    ("_weETH", "weETH") ... for a multi-collateral position (whose one-token columns are NaN)."""
    if "market_price" in df.columns and df["market_price"].is_not_nan().any():
        return [("", "")]
    return [(c[len("market_price"):], c[len("market_price_"):]) for c in df.columns
            if c.startswith("market_price_")]


def prices(rs: ResultSet, chosen: list[int]) -> tuple[go.Figure | None, str]:
    """The collateral's market price, its exchange rate and each distinct oracle price the chosen
    configurations read; below, the market's and the oracle's discount to the exchange rate. One set of lines
    per collateral leg."""
    ids = drawn(rs, chosen)
    if not ids:
        return None, "no time series recorded"
    full = rs.series(ids[0])
    legs = _legs(full)
    if not legs:
        return None, "the time series carries no market price"
    base = thin(full)
    keep = np.searchsorted(full["block"].to_numpy(), base["block"].to_numpy())
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, row_heights=[0.65, 0.35], vertical_spacing=0.06)
    t = _times(base["ts"])
    rows = _rows(rs, ids)
    notes = []
    for sfx, token in legs:
        tag = f" {token}" if token else ""
        mp = base[f"market_price{sfx}"].to_numpy()
        fig.add_scatter(x=t, y=mp, name=f"market price{tag} ({rs.unit('timeseries', 'market_price')})",
                        row=1, col=1)
        xr = base[f"exchange_rate{sfx}"].to_numpy() if f"exchange_rate{sfx}" in base.columns else None
        if xr is not None:
            fig.add_scatter(x=t, y=xr, name=f"exchange rate{tag} ({rs.unit('timeseries', 'exchange_rate')})",
                            row=1, col=1, line={"dash": "dash"})
        seen: list[np.ndarray] = []
        reads_market: list[str] = []          # oracles that read the market price: drawn as the market line
        for c in ids:
            df = rs.series(c)
            col = f"oracle_price{sfx}"
            if col not in df.columns or not np.array_equal(df["block"].to_numpy(), full["block"].to_numpy()):
                continue
            op = df[col].to_numpy()[keep]
            oracle = rows[c].get("market.oracle") or _config(rs, "market").get("oracle")
            if np.array_equal(op, mp, equal_nan=True):
                reads_market = list(dict.fromkeys([*reads_market, str(oracle)]))
                continue
            if any(np.array_equal(op, s, equal_nan=True) for s in seen):
                continue
            seen.append(op)
            fig.add_scatter(x=t, y=op, name=f"oracle price{tag} ({oracle})", row=1, col=1, line={"dash": "dot"})
            if xr is not None:
                fig.add_scatter(x=t, y=(op / xr - 1.0) * 100, name=f"oracle / rate − 1{tag} ({oracle})",
                                row=2, col=1, line={"dash": "dot"})
        if reads_market:
            notes.append(f"oracle {', '.join(reads_market)}{tag}: the market price itself (its line is the market's)")
        if xr is not None:
            fig.add_scatter(x=t, y=(mp / xr - 1.0) * 100, name=f"market / rate − 1{tag}", row=2, col=1)
    debt = rs.summary["debt_asset"][0] if "debt_asset" in rs.summary.columns else "WETH"
    if debt not in ("WETH", "ETH"):
        notes.append(f"the debt is {debt}: the exchange rate is in the underlying, so its line and the discount "
                     "compare different units")
    spans = episode_spans(rs)
    _shade(fig, spans, annotate=True, row=1, col=1)
    _shade(fig, spans, row=2, col=1)
    fig.update_yaxes(title_text="price", row=1, col=1)
    fig.update_yaxes(title_text="% vs rate", row=2, col=1)
    fig.update_xaxes(type="date")
    fig.update_layout(title="Market price vs exchange rate (and oracle)", height=560,
                      legend={"orientation": "h", "y": -0.15})
    return fig, "; ".join(notes)
