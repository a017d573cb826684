"""`backtest report RESULTS_DIR`: one self-contained HTML report of a result set (DESIGN §2, §6).

loading reads the result set, selection picks the configurations drawn (filters, top / bottom N by a metric),
figures_sweep / figures_series make the plotly figures, html lays out the page. write_report writes it
atomically (a temp file beside the target, then a rename).
"""
from __future__ import annotations

import os
from html import escape as html_escape
from pathlib import Path

import polars as pl

from backtest.errors import BacktestError, InputError
from backtest.report import figures_series, figures_sweep
from backtest.report.book import BOOK_UNITS, build_book, is_book
from backtest.report.html import Page, manifest_section, note, table, units_of, utc
from backtest.report.loading import ResultSet, load
from backtest.report.selection import Selection, select

__all__ = ["build", "load", "select", "write_report"]

# the summary columns of the selection tables, when present (the swept parameters come first)
RANK_COLUMNS = ("net_apy", "window_return", "net_apy_rate", "hold_apy", "excess_apy", "excess_apy_rate",
                "liq_count", "liq_loss_rate", "liq_loss_market", "liq_penalty", "bad_debt", "min_hf", "min_hf_ts",
                "max_drawdown", "avg_leverage", "total_costs", "end_equity", "pnl",
                # Monte Carlo statistics over paths (sweep --paths)
                "n_paths", "net_apy_mean", "net_apy_p5", "net_apy_p50", "net_apy_p95", "liq_probability",
                "bad_debt_probability", "var95", "cvar95")


def _axes(rs: ResultSet, axes: tuple[str, ...] | None) -> tuple[str, ...]:
    if not axes:
        return tuple(rs.parameters[:2])
    for a in axes:
        if a not in rs.summary.columns:
            raise InputError(f"--axes {','.join(axes)}: the summary has no column {a!r} "
                             f"(swept: {', '.join(rs.parameters) or 'none'})")
    if len(axes) > 2 or len(set(axes)) != len(axes):
        raise InputError(f"--axes {','.join(axes)}: give one or two different columns")
    return tuple(axes)


def _ranking(rs: ResultSet, sel: Selection, ids: list[int]) -> pl.DataFrame:
    cols = ["config_id", *rs.parameters,
            *[c for c in dict.fromkeys([sel.metric, *RANK_COLUMNS]) if c in rs.summary.columns]]
    df = rs.summary.filter(pl.col("config_id").is_in(ids)).select(list(dict.fromkeys(cols)))
    order = {c: i for i, c in enumerate(ids)}
    return df.with_columns(pl.col("config_id").replace_strict(order, default=None).alias("_o")).sort("_o").drop("_o")


def _window(rs: ResultSet) -> str:
    run = (rs.manifest.get("config") or {}).get("run") or {}
    if isinstance(run.get("start"), int) and isinstance(run.get("end"), int):
        return f"{utc(run['start'])} → {utc(run['end'])}"
    return ""


def default_metric(summary: pl.DataFrame) -> str:
    """net_apy, or on a Monte Carlo summary (statistics over paths) its mean over the paths."""
    return next((c for c in figures_sweep.NET_COLUMNS if c in summary.columns), "net_apy")


def build(root: Path | str, metric: str | None = None, top: int = 5, filters: tuple[str, ...] = (),
          config_ids: tuple[int, ...] = (), axes: tuple[str, ...] | None = None) -> str:
    """The report of the result set in root (or of a strategy book's folder), as an HTML string."""
    if is_book(Path(root)):
        return build_book(Path(root))
    rs = load(root)
    sel = select(rs.summary, metric or default_metric(rs.summary), top, filters, config_ids)
    ax = _axes(rs, axes)
    m = rs.manifest
    name = m.get("name") or Path(root).name
    header = [f"{rs.summary['config_id'].n_unique()} configuration(s); swept: "
              f"{', '.join(rs.parameters) or 'nothing'}; window {_window(rs)}",
              f"status {m.get('status')}, backtest {m.get('package_version')}, config hash "
              f"{str(m.get('config_hash'))[:12]}, data hash {str((m.get('data_hash') or [''])[0])[:12]}"]
    page = Page(title=f"backtest report: {name}", header=header)

    s_units = units_of(rs, "summary")
    chosen_text = (f"Ranked by {sel.metric} over {sel.filtered['config_id'].n_unique()} configuration(s)"
                   + (f" kept by {' and '.join(sel.filters)}" if sel.filters else "")
                   + (f"; {sel.unranked} with no value of {sel.metric} are not ranked" if sel.unranked else "")
                   + ". The curves below draw these configurations.")
    parts = [_glance(rs, sel), note(chosen_text)]
    if config_ids:
        parts.append(f"<h3>Asked for (--config)</h3>{table(_ranking(rs, sel, list(config_ids)), s_units)}")
    parts.append(f"<h3>Top {len(sel.top)} by {sel.metric}</h3>{table(_ranking(rs, sel, sel.top), s_units)}")
    if sel.bottom:
        parts.append(f"<h3>Bottom {len(sel.bottom)} by {sel.metric}</h3>"
                     f"{table(_ranking(rs, sel, sel.bottom), s_units)}")
    page.add("selection", "Configurations", *parts)

    anchor = None
    if sel.top:
        anchor = rs.summary.filter(pl.col("config_id") == sel.top[0]).row(0, named=True)
    if ax:
        df, held = figures_sweep.heatmap_slice(rs, sel.filtered, ax, anchor)
        loss = figures_sweep.loss_column(rs.summary)
        net = default_metric(rs.summary)
        figs = []
        if net in rs.summary.columns:
            title = "Net APY (%, equity at the market price)" if net == "net_apy" else f"Net APY: {net} (%)"
            figs.append(page.figure("fig-heatmap-net-apy", figures_sweep.heatmap(
                rs, df, ax, net, title, True, "RdYlGn", 0.0)))
        if loss:
            meaning = rs.column("summary", loss).get("meaning", "")
            figs.append(page.figure("fig-heatmap-liq-loss", figures_sweep.heatmap(
                rs, df, ax, loss, f"Liquidation loss: {loss} ({rs.unit('summary', loss)})", False, "Reds", None)))
            figs.append(note(f"{loss}: {meaning}"))
        for col, title, pct, scale, mid in figures_sweep.PATH_HEATMAPS:     # Monte Carlo statistics
            if col in rs.summary.columns:
                figs.append(page.figure(f"fig-heatmap-{col.replace('_', '-')}", figures_sweep.heatmap(
                    rs, df, ax, col, title, pct, scale, mid)))
        page.add("heatmaps", "Over the swept parameters", note(held), *figs)
    else:
        page.add("heatmaps", "Over the swept parameters", note("nothing swept varies: no heatmap"))

    for anchor_id, heading, make in (("equity", "Equity vs the hold benchmark", figures_series.equity),
                                     ("health", "Health factor", figures_series.health),
                                     ("prices", "Prices", figures_series.prices)):
        fig, why = make(rs, sel.chosen)
        page.add(anchor_id, heading, page.figure(f"fig-{anchor_id}", fig) if fig is not None else "", note(why))
    fig = figures_sweep.breakdown(rs, sel.chosen)
    page.add("breakdown", "Costs and yields", page.figure("fig-breakdown", fig) if fig is not None else
             note("the summary itemises no yields or costs (a Monte Carlo summary holds statistics over paths)"),
             note("Yields up, costs down, in the debt asset; the grey residual is what the market mark of the "
                  "collateral (price moves) and anything not itemised added, so each stack sums to the P&L. "
                  "Restaking rewards are reported beside equity, not in it, and are not stacked."))

    page.add("episodes", "De-peg episodes", _episodes(rs, sel))
    if rs.book is not None:
        page.add("book", "Strategy book", table(rs.book, {**BOOK_UNITS, **units_of(rs, "book")}))
    page.add("manifest", "Manifest", manifest_section(rs))
    return page.render()


# episodes.parquet (one row per episode and configuration): what describes the episode, what each
# configuration and its hold benchmark did inside it; columns the file lacks are left out
EPISODE_COLUMNS = ("episode_id", "episode_kind", "token", "oracle", "start_utc", "end_utc", "duration_s",
                   "worst_discount", "worst_utc", "at_window_start", "at_window_end", "threshold")
EPISODE_CONFIG_COLUMNS = ("episode_pnl", "episode_return", "episode_pnl_rate", "episode_min_hf",
                          "episode_liq_count", "episode_liq_loss_rate", "episode_liq_loss_market",
                          "episode_liq_penalty", "episode_bad_debt", "episode_costs", "hold_pnl",
                          "hold_episode_return", "excess_pnl")


def _pct(v) -> str:
    return "–" if v is None or v != v else f"{v * 100:.2f} %"


def _glance(rs: ResultSet, sel: Selection) -> str:
    """One paragraph: how many configurations were liquidated, the best and worst by the metric, the hold
    benchmark and the deepest episode."""
    s = rs.summary
    facts = []
    if "liq_count" in s.columns:
        liq = s.filter(pl.col("liq_count") > 0)["config_id"].n_unique()
        facts.append(f"{liq} of {s['config_id'].n_unique()} configuration(s) liquidated at least once")
    elif "liq_probability" in s.columns:
        facts.append(f"liquidation probability up to {_pct(s['liq_probability'].max())} of paths")
    pct = rs.unit("summary", sel.metric).startswith(("apy", "fraction")) or sel.metric.startswith("net_apy")
    for word, ids in (("best", sel.top), ("worst", sel.bottom)):
        if ids:
            row = s.filter(pl.col("config_id") == ids[0]).row(0, named=True)
            text = _pct(row[sel.metric]) if pct else f"{row[sel.metric]:.6g}"
            facts.append(f"{word} {sel.metric} {text} ({figures_sweep.label(rs, row)})")
    if "hold_apy" in s.columns:
        facts.append(f"holding the token: {_pct(s['hold_apy'][0])} APY")
    spans = figures_series.episode_spans(rs)
    worst = [sp for sp in spans if sp[3] is not None and sp[3] == sp[3]]
    if worst:
        w = max(worst, key=lambda sp: sp[3])
        facts.append(f"{len(spans)} de-peg episode(s), the deepest {_pct(w[3])} below the exchange rate "
                     f"({utc(w[0])} → {utc(w[1])})")
    return f"<p><b>At a glance:</b> {'; '.join(html_escape(f) for f in facts)}.</p>" if facts else ""


def _episodes(rs: ResultSet, sel: Selection) -> str:
    ep = rs.episodes
    if ep is None:
        return note("no episodes found: this result set has no episodes.parquet")
    if ep.height == 0:
        return note("no episodes found: no market or oracle price fell below the exchange rate by the threshold")
    units = units_of(rs, "episodes")
    keyed = "episode_id" in ep.columns and "config_id" in ep.columns
    if not keyed:                        # a table of another shape: shown as it is
        return table(ep, units)
    head = [c for c in EPISODE_COLUMNS if c in ep.columns]
    episodes = ep.select(head).unique("episode_id", keep="first", maintain_order=True).sort("episode_id")
    mine = ep.filter(pl.col("config_id").is_in(sel.chosen))
    params = rs.summary.select(["config_id", *rs.parameters]).unique("config_id", keep="first")
    per = [c for c in ("episode_id", "config_id") if c in mine.columns] + \
          [c for c in EPISODE_CONFIG_COLUMNS if c in mine.columns]
    order = {c: i for i, c in enumerate(sel.chosen)}
    mine = (mine.select(per).join(params, on="config_id", how="left")
            .with_columns(pl.col("config_id").replace_strict(order, default=None).alias("_o"))
            .sort(["episode_id", "_o"]).drop("_o"))
    mine = mine.select(["episode_id", "config_id", *rs.parameters, *per[2:]])
    return "\n".join([
        note(f"{episodes.height} episode(s) found (shaded on the health-factor and price figures)."),
        table(episodes, units),
        f"<h3>Inside each episode: the {len(sel.chosen)} configuration(s) drawn above</h3>",
        note("P&L at the market mark (and at the exchange rate), lowest HF, liquidations with their fair-value "
             "loss, costs, and the hold benchmark over the same span, in the debt asset."),
        table(mine, {**units_of(rs, "summary"), **units}),
    ])


def write_report(root: Path | str, output: Path | str | None = None, **options) -> Path:
    """Write the report (default RESULTS_DIR/report.html) atomically; returns its path."""
    out = Path(output) if output is not None else Path(root) / "report.html"
    if out.is_dir():
        raise InputError(f"-o {out}: is a folder; name the HTML file")
    if not out.parent.is_dir():
        raise InputError(f"-o {out}: its folder {out.parent} does not exist")
    text = build(root, **options)
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, out)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        if isinstance(exc, PermissionError):
            raise InputError(f"-o {out}: not writable ({exc.strerror})") from None
        raise BacktestError(f"{out}: could not write the report ({exc})") from None
    return out
