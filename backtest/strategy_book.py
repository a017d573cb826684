"""Replaying one config of a strategy-book kind (basket, lp, vault, farm) through either engine.

config -> data (backtest.data.book_series, or the loop engine's aligned market for a vault) -> the kernel
(backtest._core.book_*) or the reference (backtest.reference_book) -> one summary row and the value per step.
Every row says which series it read and what it assumed (``notes``).
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np

from backtest.config_types import Config
from backtest.data.book_series import (BookRequest, basket_series, farm_series, liquidity_span, lp_series,
                                       price_span)
from backtest.data.prices import underlying_of
from backtest.data.asof import iso
from backtest.errors import DataError
from backtest.schema import PROTOCOLS, SECONDS_PER_YEAR
from backtest.venues import growth_codes

BOOK_KINDS = ("basket", "lp", "vault", "farm")
MAX_EVENTS = 100_000        # event rows kept per replay (the summary counts the rest as events_dropped)


def _events_frame(ev: np.ndarray, ts: np.ndarray, block: np.ndarray):
    """The kernel's event rows (idx, kind, coll, debt, cost, hf) as events.parquet's columns."""
    import polars as pl

    from backtest.schema import EVENT_NAMES

    idx = ev[:, 0].astype(np.int64)
    return pl.DataFrame({"config_id": np.zeros(len(idx), dtype=np.int64), "block": block[idx].astype(np.int64),
                         "ts": ts[idx].astype(np.int64), "kind": [EVENT_NAMES[int(k)] for k in ev[:, 1]],
                         "collateral_change": ev[:, 2], "debt_change": ev[:, 3], "cost": ev[:, 4],
                         "hf_after": ev[:, 5]},
                        schema={"config_id": pl.Int64, "block": pl.Int64, "ts": pl.Int64, "kind": pl.Utf8,
                                "collateral_change": pl.Float64, "debt_change": pl.Float64, "cost": pl.Float64,
                                "hf_after": pl.Float64})


def _engine(engine: str):
    if engine == "core":
        from backtest import _core

        return _core
    from backtest import reference_book

    return reference_book


def _request(cfg: Config, start: int | None = None, end: int | None = None) -> BookRequest:
    r = cfg.run
    return BookRequest(Path(r.data), r.start if start is None else start, r.end if end is None else end,
                       r.block_time, tuple(r.sources), tuple(r.allow))


def _gas(cfg: Config) -> float | None:
    g = cfg.costs.gas
    return None if g == "data" else float(g)


def annualised(end: float, capital: float, seconds: float) -> float:
    """(end / capital)^(1 / years) - 1; the window return when the window is under a day."""
    if not (capital > 0) or not (end > 0):
        return -1.0
    years = seconds / SECONDS_PER_YEAR
    if years < 1 / 365:
        return end / capital - 1.0
    return (end / capital) ** (1.0 / years) - 1.0


def provenance(cfg: Config, files) -> tuple[dict | None, list[str]]:
    """What the lake's provenance.json says about the files read, and the notes naming the assumed and the
    synthetic ones (none without a provenance file: a lake the user imported)."""
    from backtest.data.provenance import for_files

    prov = for_files(cfg.run.data, list(files))
    if prov is None:
        return None, []
    return prov, [f"{k} series: {', '.join(prov[k])}" for k in ("assumed", "synthetic") if prov.get(k)]


def _row(cfg: Config, ts: np.ndarray, end: float, hold_end: float, extra: dict[str, Any], unit: str,
         notes: list[str], series: dict[str, str], files=()) -> dict[str, Any]:
    cap = cfg.strategy.capital
    prov, flags = provenance(cfg, files)
    # the lake's provenance names assumed and synthetic files; without one, the series' own source labels do
    notes = notes + (flags if prov is not None else flagged(series))
    secs = float(ts[-1] - ts[0])
    return {"kind": cfg.strategy.kind, "capital": cap, "unit": unit, "start_ts": int(ts[0]), "end_ts": int(ts[-1]),
            "blocks": int(ts.shape[0]), "end_value": float(end), "net_apy": annualised(end, cap, secs),
            "window_return": float(end / cap - 1.0), "hold_end_value": float(hold_end),
            "hold_apy": annualised(hold_end, cap, secs), **{k: float(v) for k, v in extra.items()},
            "notes": "; ".join(notes), "series": "; ".join(f"{k}: {v}" for k, v in sorted(series.items())),
            "lake_provenance": json.dumps(prov, sort_keys=True) if prov is not None else None}


# ------------------------------------------------------------------------------------------------- lp
def run_lp(cfg: Config, engine: str = "core") -> tuple[dict, np.ndarray, np.ndarray]:
    lp = cfg.strategy.book.lp
    mk = cfg.market
    notes = []
    span = liquidity_span(Path(cfg.run.data), lp.pool)
    if span is None:
        raise DataError(f"liquidity {lp.pool}: no rows in the lake at {cfg.run.data} (the pool's reserves and "
                        f"virtual price; import them with `backtest data import curve`)")
    start, end = cfg.run.start, cfg.run.end
    # the pool's rows are ~daily: the share is replayed where they exist, and the row says so
    if span[0] > start or span[1] + 3 * 86400 < end:
        start, end = max(start, span[0]), min(end, span[1] + 1)
        if end <= start:
            raise DataError(f"liquidity {lp.pool}: rows from {iso(span[0])} to {iso(span[1])}, none inside the "
                            f"window {iso(cfg.run.start)} to {iso(cfg.run.end)}")
        notes.append(f"pool rows cover {iso(span[0])} to {iso(span[1])}: replayed {iso(start)} to {iso(end)}")
    s = lp_series(_request(cfg, start, end), lp.pool, mk.collateral, mk.debt, _gas(cfg), lp.lp_token)
    a = s.arrays
    amp = a["pool.amp"]
    if not np.isfinite(amp).all():
        if lp.amp is None:
            raise DataError(f"liquidity {lp.pool}: amp is null in the lake; set strategy.lp.amp (the invariant's A)")
        amp = np.where(np.isfinite(amp), amp, lp.amp)
        notes.append(f"amplification A = {lp.amp:g} assumed (strategy.lp.amp; the lake has none)")
    gu = cfg.costs.gas_units
    out, value, hold, share = _engine(engine).book_lp(
        np.ascontiguousarray(a["pool.reserve0"]), np.ascontiguousarray(a["pool.reserve1"]),
        np.ascontiguousarray(a["pool.virtual_price"]), np.ascontiguousarray(amp),
        np.ascontiguousarray(a["price.v"]), np.ascontiguousarray(a["gas.v"]), cfg.strategy.capital,
        gu["open"], gu["close"])
    from backtest.reference_book import LP_FIELDS

    f = dict(zip(LP_FIELDS, out))
    extra = {k: f[k] for k in ("fee_income", "impermanent_loss", "gas_cost", "max_drawdown", "max_lst_share",
                               "lst_share_at_min", "min_value", "pool_price_end", "lp_tokens")}
    extra["min_value_ts"] = float(s.ts[int(f["min_value_idx"])])
    extra["total_costs"] = f["gas_cost"]
    extra["liq_count"] = 0.0
    labels = {**s.labels, **{k: v for k, v in s.derived.items()}}
    if np.isfinite(a["pool.amp"]).all():
        notes.append(f"amplification A from the lake's rows ({a['pool.amp'][0]:g} at the start)")
    return (_row(cfg, s.ts, f["end_value"], f["hold_end_value"], extra, mk.debt, notes, labels, s.files),
            s.ts, value)


# ---------------------------------------------------------------------------------------------- vault
def run_vault(cfg: Config, engine: str = "core") -> tuple[dict, np.ndarray, np.ndarray]:
    from backtest.plan import market_for

    v = cfg.strategy.book.vault
    m = market_for(cfg, checks=True)
    orc = np.ascontiguousarray(m.xrate * m.underlying_price)      # the vault marks at the exchange rate
    gu = cfg.costs.gas_units
    params = np.array([PROTOCOLS[cfg.market.protocol], 1.0 if v.over == "loop" else 0.0, cfg.strategy.capital,
                       cfg.strategy.target_ltv, v.band, float(v.check_every), cfg.costs.swap_fee, gu["open"],
                       gu["rebalance"], gu["close"], v.management_fee, v.performance_fee,
                       *growth_codes(cfg.market.protocol)])
    gas = np.ascontiguousarray(m.gas_gwei * m.gas_token_price)
    out, value, ev = _engine(engine).book_vault(m.ts, m.price, orc, m.supply_apr, m.borrow_apr, m.lt, m.bonus,
                                                gas, params, MAX_EVENTS)
    from backtest.reference_book import VAULT_FIELDS

    f = dict(zip(VAULT_FIELDS, out))
    extra = {k: f[k] for k in VAULT_FIELDS if k not in ("end_value", "hold_end_value")}
    extra["events_dropped"] = max(0.0, f["n_events"] - MAX_EVENTS)
    extra["total_costs"] = f["gas_cost"] + f["swap_fee_cost"] + f["management_fee_paid"] + f["performance_fee_paid"]
    notes = [f"a vault over {v.over} of {cfg.market.collateral} on {cfg.market.protocol}: fees "
             f"{v.management_fee:.2%}/yr on assets + {v.performance_fee:.0%} of gains (as minted shares)"]
    labels = {s.table + " " + s.key: f"{iso(s.first_ts)}..{iso(s.last_ts)}" for s in m.series}
    row = _row(cfg, m.ts, f["end_value"], f["hold_end_value"], extra, cfg.market.debt, notes, labels, m.files)
    row["_events"] = _events_frame(ev, m.ts, m.block)
    return row, m.ts, value


# --------------------------------------------------------------------------------------------- basket
def run_basket(cfg: Config, engine: str = "core") -> tuple[dict, np.ndarray, np.ndarray]:
    bk = cfg.strategy.book.basket
    tokens = [t for t, _ in bk.weights]
    w = np.array([x for _, x in bk.weights])
    # tokens of other chains exist only over their (synthetic) span: the basket is replayed where all do
    start, end, clipped = cfg.run.start, cfg.run.end, []
    for tok in tokens:
        nat = underlying_of(tok)
        for base, quote in ((tok, nat), (nat, "USD")):
            sp = price_span(Path(cfg.run.data), base, quote) if nat != "ETH" else None
            if sp is not None and (sp[0] > start or sp[1] + 3 * 86400 < end):
                start, end = max(start, sp[0]), min(end, sp[1] + 1)
                clipped.append(f"{base}/{quote} {iso(sp[0])} to {iso(sp[1])}")
    if end <= start:
        raise DataError(f"basket: its tokens' prices have no common span inside the window ({'; '.join(clipped)})")
    s = basket_series(_request(cfg, start, end), tokens)
    a = s.arrays
    px = np.ascontiguousarray(np.stack([a[f"px{i}.v"] for i in range(len(tokens))]))
    nat = np.ascontiguousarray(np.stack([a[f"nat{i}.v"] for i in range(len(tokens))]))
    out, value, bench, units, ev = _engine(engine).book_basket(s.ts, px, nat, w, cfg.strategy.capital,
                                                               cfg.costs.swap_fee, int(bk.rebalance_every), MAX_EVENTS)
    from backtest.reference_book import BASKET_FIELDS

    f = dict(zip(BASKET_FIELDS, out))
    extra = {k: f[k] for k in BASKET_FIELDS if k not in ("end_value",)}
    extra["events_dropped"] = max(0.0, f["n_events"] - MAX_EVENTS)
    extra["bench_apy"] = annualised(f["bench_end_value"], cfg.strategy.capital, float(s.ts[-1] - s.ts[0]))
    extra["total_costs"] = f["swap_fee_cost"]
    extra["liq_count"] = 0.0
    notes = ["in USD; benchmark: the same weights of the natives (" + ", ".join(
        f"{t} {x:.0%}" for t, x in bk.weights) + ")"]
    if clipped:
        notes.append(f"replayed {iso(start)} to {iso(end)}, where every token has prices ({'; '.join(clipped)})")
    labels = {**s.labels, **s.derived}
    # the hold benchmark of a basket is its natives
    row = _row(cfg, s.ts, f["end_value"], f["bench_end_value"], extra, "USD", notes, labels, s.files)
    row["_events"] = _events_frame(ev, s.ts, np.arange(s.ts.shape[0]))
    return row, s.ts, value


# ----------------------------------------------------------------------------------------------- farm
def run_farm(cfg: Config, engine: str = "core") -> tuple[dict, np.ndarray, np.ndarray]:
    fm = cfg.strategy.book.farm
    s = farm_series(_request(cfg), cfg.market.collateral, fm.reward_token, cfg.market.debt)
    a = s.arrays
    out, value, ev = _engine(engine).book_farm(s.ts, np.ascontiguousarray(a["dprice.v"]),
                                               np.ascontiguousarray(a["rate.v"]), np.ascontiguousarray(a["rprice.v"]),
                                               cfg.strategy.capital, cfg.costs.swap_fee, float(fm.halving),
                                               int(fm.sell_every), int(fm.exit_after), MAX_EVENTS)
    from backtest.reference_book import FARM_FIELDS

    f = dict(zip(FARM_FIELDS, out))
    extra = {k: f[k] for k in FARM_FIELDS if k not in ("end_value", "hold_end_value")}
    extra["events_dropped"] = max(0.0, f["n_events"] - MAX_EVENTS)
    extra["total_costs"] = f["swap_fee_cost"]
    extra["liq_count"] = 0.0
    extra["max_drawdown"] = f["max_drawdown"]
    notes = [f"{fm.reward_token} emissions from the lake's rewards rows"
             + (f", halving every {fm.halving / 86400:g} d" if fm.halving else "")
             + f", sold every {fm.sell_every / 86400:g} d, exit after {fm.exit_after / 86400:g} d"]
    labels = {**s.labels, **s.derived}
    row = _row(cfg, s.ts, f["end_value"], f["hold_end_value"], extra, cfg.market.debt, notes, labels, s.files)
    row["_events"] = _events_frame(ev, s.ts, np.arange(s.ts.shape[0]))
    return row, s.ts, value


def flagged(labels: dict[str, str]) -> list[str]:
    """Notes naming the synthetic and the assumed series a row read (their lake source says so)."""
    out = []
    for word, title in (("synth", "synthetic series"), ("assumed", "assumed series")):
        hit = sorted({v for v in labels.values() if word in v})
        if hit:
            out.append(f"{title}: " + ", ".join(hit))
    return out


RUNNERS = {"lp": run_lp, "vault": run_vault, "basket": run_basket, "farm": run_farm}


def run_book_kind(cfg: Config, engine: str = "core") -> tuple[dict, np.ndarray, np.ndarray]:
    """(summary row, step times, the position's value per step) of a book-kind config."""
    return RUNNERS[cfg.strategy.kind](cfg, engine)


def _write(tmp: Path, cfg: Config, points: list, rows: list[dict], series: list, set_hash: str,
           engine: str) -> None:
    """A book kind's result set into ``tmp``: manifest.json, summary.parquet (one row per point of the sweep),
    events.parquet (the vault's; lp, basket and farm record none yet) and timeseries/config_id=N/ (hourly
    samples of the value)."""
    import polars as pl

    from backtest import __version__
    from backtest.config import config_hash, config_to_dict
    from backtest.store import FORMAT_VERSION, MARKER

    summary = summary_frame(points, rows)
    summary.write_parquet(tmp / "summary.parquet")
    frames = []
    for cid, ((ts, value, events), (_, c)) in enumerate(zip(series, points)):
        every = max(1, 3600 // max(1, int(c.run.block_time)))
        idx = np.unique(np.append(np.arange(0, len(ts), every), len(ts) - 1))
        d = tmp / "timeseries" / f"config_id={cid}"
        d.mkdir(parents=True)
        pl.DataFrame({"block": idx.astype(np.int64), "ts": ts[idx].astype(np.int64),
                      "equity": value[idx]}).write_parquet(d / "part-0.parquet")
        frames.append(events.with_columns(pl.lit(cid, pl.Int64).alias("config_id")))
    pl.concat(frames).write_parquet(tmp / "events.parquet")
    unit = rows[0].get("unit", "")
    cols = [[c, unit if c.startswith(("end_value", "hold_end", "bench_end", "fee_income", "impermanent", "gas_cost",
                                      "swap_fee", "management", "performance", "total_costs", "rewards_sold",
                                      "unsold", "min_value", "liq_penalty", "interest")) else "", ""]
            for c in summary.columns]
    manifest = {"format": MARKER, "format_version": FORMAT_VERSION, "set_hash": set_hash, "name": cfg.run.name,
                "config": config_to_dict(cfg), "config_hash": config_hash(cfg),
                "points": [{"config_id": i, "labels": lab, "config_hash": config_hash(c)}
                           for i, (lab, c) in enumerate(points)],
                "engine": engine, "package_version": __version__, "status": "complete",
                "notes": rows[0].get("notes", ""), "series_read": rows[0].get("series", ""),
                "lake_provenance": json.loads(rows[0]["lake_provenance"]) if rows[0].get("lake_provenance") else None,
                "columns": {"summary": cols}}
    (tmp / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True, default=str))


def summary_frame(points: list, rows: list[dict]):
    """One row per point: config_id, the swept keys as columns, then the kind's figures."""
    import polars as pl

    return pl.DataFrame([{"config_id": i, **{k: v for k, v in lab.items()}, **row}
                         for i, ((lab, _), row) in enumerate(zip(points, rows))], infer_schema_length=None)


def run_book_config(cfg: Config, engine: str = "core", write: bool = True, force: bool = False,
                    grids: dict | None = None, zip_: bool = False) -> dict:
    """Replay a book-kind config (every point of its [sweep] and ``grids``) and write its result set to
    <run.output>/<run.name>/ (atomically, through the loop engine's Store: checked and locked first, replaced
    only when it is ours). Returns {"row" (the first point's), "summary", "events", "path", "ts", "value"}."""
    import os
    import shutil
    import tempfile

    import polars as pl

    from backtest.config import config_hash, expand_sweep
    from backtest.errors import ConfigError
    from backtest.store import Store

    points = expand_sweep(cfg, grids, zip_)
    for lab, _ in points:
        for key in lab:
            if key == "strategy.kind":
                raise ConfigError(f"{key}: the book kinds cannot be swept across kinds; one config per kind")
    dest = Path(cfg.run.output) / cfg.run.name
    store = Store(dest, [config_hash(c) for _, c in points], force, Path(cfg.run.data)) if write else None
    try:
        rows, series = [], []
        for _, c in points:
            row, ts, value = run_book_kind(c, engine)
            events = row.pop("_events", None)
            if events is None:
                events = _events_frame(np.zeros((0, 6)), ts, ts)
            rows.append(row)
            series.append((ts, value, events))
        path = None
        if store is not None:
            tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.new.", dir=dest.parent))
            _write(tmp, cfg, points, rows, series, store.set_hash, engine)
            if dest.exists():
                old = dest.with_name(f".{dest.name}.old")
                shutil.rmtree(old, ignore_errors=True)
                os.replace(dest, old)
                os.replace(tmp, dest)
                shutil.rmtree(old, ignore_errors=True)
            else:
                os.replace(tmp, dest)
            path = dest
    finally:
        if store is not None:
            store.release()
    events = pl.concat([e.with_columns(pl.lit(i, pl.Int64).alias("config_id")) for i, (_, _, e) in enumerate(series)])
    return {"row": rows[0], "summary": summary_frame(points, rows), "events": events, "path": path,
            "ts": series[0][0], "value": series[0][1]}


__all__ = ["BOOK_KINDS", "run_book_kind", "run_book_config", "annualised", "dataclasses"]
