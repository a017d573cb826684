"""The report of a strategy book (`backtest book`: `<output>/book/book.parquet` beside one result set per
strategy): realized APY against the advertised range, what the capital became over the window, the book table
and where each strategy's own result set is (its own `backtest report`).
"""
from __future__ import annotations

import html
from pathlib import Path

import plotly.graph_objects as go
import polars as pl

from backtest.errors import InputError
from backtest.report.figures_series import _times, thin
from backtest.report.html import Page, note, table
from backtest.report.loading import ResultSet, _read_table
from backtest.store import read_manifest

# book.parquet's columns that are rates or fractions (it has no column dictionary of its own)
BOOK_UNITS = {"realized_apy": "apy", "advertised_low": "apy", "advertised_high": "apy", "hold_apy": "apy",
              "apy_with_rewards": "apy", "bench_apy": "apy", "window_return": "fraction",
              "worst_drawdown": "fraction", "max_lst_share": "fraction", "lst_share_at_min": "fraction",
              "min_value_ts": "s (UTC epoch)"}
HEADLINE = ("strategy", "kind", "tokens", "venue", "status", "ending_value_usd", "realized_apy", "window_return",
            "advertised", "verdict", "liquidations", "worst_drawdown", "costs", "unit", "hold_apy",
            "apy_with_rewards", "notes")


def is_book(root: Path) -> bool:
    return (root / "book.parquet").is_file() and not (root / "manifest.json").exists()


def _result_set(root: Path, text: str | None) -> ResultSet | None:
    """A strategy's result set, where book.parquet says (or beside it, when the book folder was moved)."""
    from backtest.report.loading import load

    if not text:
        return None
    for cand in (Path(text), root / Path(text).name):
        if read_manifest(cand) is not None and (cand / "summary.parquet").is_file():
            return load(cand)
    return None


def apy_figure(book: pl.DataFrame) -> go.Figure | None:
    rows = [r for r in book.iter_rows(named=True) if r.get("realized_apy") is not None]
    if not rows:
        return None
    names = [r["strategy"] for r in rows]
    fig = go.Figure()
    lo = [r.get("advertised_low") for r in rows]
    hi = [r.get("advertised_high") for r in rows]
    fig.add_bar(name="advertised range", x=names,
                y=[(h - low) * 100 if low is not None and h is not None else None for low, h in zip(lo, hi)],
                base=[low * 100 if low is not None else None for low in lo], marker_color="rgba(31,119,180,0.25)",
                width=0.8)
    fig.add_bar(name="realized APY", x=names, y=[r["realized_apy"] * 100 for r in rows], width=0.4,
                marker_color="#1f77b4")
    with_rw = [(n, r.get("apy_with_rewards")) for n, r in zip(names, rows)
               if r.get("apy_with_rewards") is not None and r["apy_with_rewards"] != r["realized_apy"]]
    if with_rw:
        fig.add_scatter(name="with rewards", x=[n for n, _ in with_rw], y=[v * 100 for _, v in with_rw],
                        mode="markers", marker={"symbol": "diamond", "size": 11, "color": "#ff7f0e"})
    fig.update_layout(barmode="overlay", title="Realized APY against the advertised range", yaxis_title="%",
                      height=440, legend={"orientation": "h", "y": -0.2})
    return fig


def value_figure(root: Path, book: pl.DataFrame) -> tuple[go.Figure | None, str]:
    """Each strategy's equity scaled to the book's dollars at the start (equity / capital x capital_usd)."""
    fig = go.Figure()
    missing = []
    for r in book.iter_rows(named=True):
        rs = _result_set(root, r.get("result_set"))
        ts = rs.series(0) if rs is not None else None
        if ts is None or "equity" not in ts.columns or not r.get("end_value") or r.get("window_return") is None:
            if r.get("status") == "replayed":
                missing.append(r["strategy"])
            continue
        capital = r["end_value"] / (1.0 + r["window_return"])     # the strategy's capital in its own unit
        df = thin(ts)
        fig.add_scatter(x=_times(df["ts"]), y=df["equity"].to_numpy() / capital * r["capital_usd"],
                        name=r["strategy"], mode="lines")
    if not fig.data:
        return None, "no strategy's result set has a time series"
    cap = book["capital_usd"][0]
    fig.update_xaxes(type="date")
    fig.update_layout(title=f"What ${cap:,.0f} became (each strategy's equity, scaled to ${cap:,.0f} at the start)",
                      yaxis_title="$ at the start's prices", height=460, legend={"orientation": "h", "y": -0.2})
    return fig, (f"not drawn (result set not found): {', '.join(missing)}" if missing else "")


def build_book(root: Path) -> str:
    book = _read_table(root / "book.parquet", required=True)
    if "strategy" not in book.columns:
        raise InputError(f"{root / 'book.parquet'}: not a strategy book (no strategy column)")
    window = book["window"][0] if "window" in book.columns and book.height else ""
    replayed = book.filter(pl.col("status") == "replayed").height if "status" in book.columns else book.height
    page = Page(title=f"backtest report: strategy book {window}",
                header=[f"{book.height} strategies, {replayed} replayed over {window}; "
                        f"capital ${book['capital_usd'][0]:,.0f}" if "capital_usd" in book.columns else ""])
    fig = apy_figure(book)
    page.add("apy", "Realized vs advertised", page.figure("fig-book-apy", fig) if fig is not None else
             note("no strategy was replayed"))
    fig, why = value_figure(root, book)
    page.add("value", "Value over the window", page.figure("fig-book-value", fig) if fig is not None else "",
             note(why))
    head = [c for c in HEADLINE if c in book.columns]
    page.add("book", "Strategy book", table(book.select(head), BOOK_UNITS),
             f"<details><summary>Every column</summary>{table(book, BOOK_UNITS)}</details>")
    items = []
    for r in book.iter_rows(named=True):
        rs = _result_set(root, r.get("result_set"))
        if rs is None:
            continue
        m = rs.manifest
        items.append(f"<li><b>{html.escape(str(r['strategy']))}</b>: <code>backtest report "
                     f"{html.escape(str(rs.root))}</code>; config hash {html.escape(str(m.get('config_hash'))[:12])},"
                     f" data hash {html.escape(str((m.get('data_hash') or [''])[0])[:12])}, backtest "
                     f"{html.escape(str(m.get('package_version')))}</li>")
    page.add("manifest", "Result sets", "<ul>" + "".join(items) + "</ul>" if items else
             note("no strategy's result set was found"))
    return page.render()
