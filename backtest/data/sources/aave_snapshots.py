"""The Aave v3 daily reserve snapshot table (one row per reserve per snapshot) -> ``rates`` and
``market_params`` (non-E-mode), detecting each column's unit from its magnitude."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import polars as pl

from backtest.data.sources.commit import ImportReport, commit
from backtest.data.sources.toolkit import Series, drop_missing, new_series, numeric_gaps, parse_times, read_text_table
from backtest.errors import DataError


SNAPSHOT_COLUMNS = ["symbol", "current_liquidity_rate", "current_variable_borrow_rate", "liquidity_index",
                    "variable_borrow_index", "loan_to_value", "liquidation_threshold", "liquidation_bonus"]


def _fraction(values: pl.Series, kind: str, path: Path | str, col: str, notes: list[str]) -> pl.Series:
    """A per-year rate, a ratio (LTV/LT) or a liquidation bonus as a fraction, detecting the unit from the
    magnitude: ray (1e27), basis points, percent, or Aave's 1.05-style bonus. Each conversion is noted."""
    v = values.drop_nulls()
    if v.len() == 0:
        return values
    med = float(v.abs().median())
    if med > 1e20:
        notes.append(f"{Path(str(path)).name}: {col} read as ray (divided by 1e27)")
        values = values * 1e-27
    elif kind == "rate" and med > 1.0:
        notes.append(f"{Path(str(path)).name}: {col} read as percent (median {med:g}; divided by 100)")
        values = values / 100.0
    elif kind == "ratio" and med > 100:
        notes.append(f"{Path(str(path)).name}: {col} read as basis points (divided by 1e4)")
        values = values / 1e4
    elif kind == "ratio" and med > 1.0:
        notes.append(f"{Path(str(path)).name}: {col} read as percent (divided by 100)")
        values = values / 100.0
    elif kind == "bonus":
        if med > 100:                       # 10500 bps = LB 1.05
            notes.append(f"{Path(str(path)).name}: {col} read as basis points of the LB (10500 -> 0.05)")
            values = values / 1e4 - 1.0
        elif med >= 1.0 and med < 2.0:      # 1.05
            notes.append(f"{Path(str(path)).name}: {col} read as the LB multiplier (1.05 -> 0.05)")
            values = values - 1.0
        elif med >= 2.0:
            notes.append(f"{Path(str(path)).name}: {col} read as percent (divided by 100)")
            values = values / 100.0
    return values


def parse_aave_snapshots(path: Path, protocol: str = "aave-v3", **_: Any) -> list[Series]:
    df = read_text_table(path, SNAPSHOT_COLUMNS)
    tcol = next((c for c in ("snapshot_generated_at", "commit_time_utc", "timestamp") if c in df.columns), None)
    if tcol is None:
        raise DataError(f"{path}: missing a time column (snapshot_generated_at or commit_time_utc)")
    ts = parse_times(df[tcol], path, tcol)
    if ts.null_count():
        raise DataError(f"{path}: column {tcol!r} has an empty time (data row {int(ts.is_null().arg_max()) + 1})")
    notes: list[str] = []
    num = {c: numeric_gaps(df, path, c) for c in SNAPSHOT_COLUMNS if c != "symbol"}
    frame = pl.DataFrame({
        "ts": ts, "asset": df["symbol"].str.strip_chars(),
        "supply_apr": _fraction(num["current_liquidity_rate"], "rate", path, "current_liquidity_rate", notes),
        "borrow_apr": _fraction(num["current_variable_borrow_rate"], "rate", path,
                                "current_variable_borrow_rate", notes),
        "supply_index": _fraction(num["liquidity_index"], "index", path, "liquidity_index", notes),
        "borrow_index": _fraction(num["variable_borrow_index"], "index", path, "variable_borrow_index", notes),
        "ltv": _fraction(num["loan_to_value"], "ratio", path, "loan_to_value", notes),
        "liquidation_threshold": _fraction(num["liquidation_threshold"], "ratio", path, "liquidation_threshold",
                                           notes),
        "liquidation_bonus": _fraction(num["liquidation_bonus"], "bonus", path, "liquidation_bonus", notes),
    })
    # several commits can carry the same snapshot: keep one row per (asset, ts)
    frame = frame.unique(subset=["asset", "ts"], keep="last", maintain_order=True).sort(["asset", "ts"])
    src = f"aave-snapshots:{protocol}"
    items = []
    for (asset,), g in frame.group_by(["asset"], maintain_order=True):
        rk, rinfo = drop_missing(g, ["supply_apr", "borrow_apr"], f"{asset} rate", path)
        rates = rk.select("ts", pl.lit(protocol).alias("protocol"), "asset", "supply_apr", "borrow_apr",
                          "supply_index", "borrow_index")
        items.append(new_series("rates", rates, f"snapshots-{protocol}-{asset}", src, path, rinfo))
        pk, pinfo = drop_missing(g, ["ltv", "liquidation_threshold", "liquidation_bonus"],
                                 f"{asset} risk parameter", path)
        # a step function: keep the rows where a parameter changes (and the first)
        changed = pk.select(pl.any_horizontal([pl.col(c).ne(pl.col(c).shift(1)).fill_null(True)
                                               for c in ("ltv", "liquidation_threshold", "liquidation_bonus")]))
        pk = pk.filter(changed.to_series())
        params = pk.select("ts", pl.lit(protocol).alias("protocol"), "asset",
                           pl.lit(None, dtype=pl.String).alias("emode"), "ltv", "liquidation_threshold",
                           "liquidation_bonus")
        items.append(new_series("market_params", params, f"snapshots-{protocol}-{asset}-params", src, path, pinfo))
    items[0].notes.extend(notes)
    items[0].notes.append(f"{path.name}: market_params are the non-E-mode values (emode null); the file's "
                          "liquidation_protocol_fee / caps / emode_category are mis-decoded and not imported")
    return items


def import_aave_snapshots(csv_path: str | os.PathLike, lake: str | os.PathLike,
                          protocol: str = "aave-v3") -> ImportReport:
    """Import the Aave v3 daily reserve snapshot table (one row per reserve per snapshot) into ``rates``
    (supply/borrow APR fractions, indices; ts = snapshot_generated_at) and ``market_params`` (non-E-mode LTV,
    LT, bonus as fractions; only the rows where a parameter changes)."""
    return commit(lake, parse_aave_snapshots(Path(csv_path), protocol))
