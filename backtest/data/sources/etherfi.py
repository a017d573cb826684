"""ether.fi reward tables -> ``rewards`` (a table not in the lake yet: parsed, checked, refused)."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import polars as pl

from backtest.data.sources.commit import ImportReport, commit
from backtest.data.sources.toolkit import (Series, apy_to_apr, drop_missing, new_series, numeric_gaps, parse_times,
                                           read_text_table)
from backtest.errors import DataError


def parse_etherfi(path: Path, token: str = "eETH", **_: Any) -> list[Series]:
    df = read_text_table(path)
    cols = set(df.columns)
    name = path.name
    if {"Timestamp", "Base", "Reward"} <= cols:           # daily APY chart, percent
        ts = parse_times(df["Timestamp"], path, "Timestamp", "s")
        items = []
        for col, kind in (("Base", "staking_apy"), ("Reward", "reward_apy")):
            frame = pl.DataFrame({"ts": ts, "v": numeric_gaps(df, path, col)})
            kept, info = drop_missing(frame, ["v"], f"{col} APY", path)
            rew = kept.select("ts", pl.lit(token).alias("token"), pl.lit(kind).alias("kind"),
                              apy_to_apr(kept["v"] / 100.0).alias("apr"),
                              pl.lit(None, dtype=pl.Float64).alias("amount"),
                              pl.lit("apr").alias("unit"))
            items.append(new_series("rewards", rew, f"etherfi-{token}-{kind}", "etherfi:apy-chart", path, info,
                                    [f"{name}: {col} is an APY in percent -> APR fraction ln(1 + apy/100)"]))
        return items
    if {"staking_period_start", "staking_period_end", "eigen_per_eeth_weekly"} <= cols:
        return [_amounts(df, path, token, "staking_period_end", "eigen_per_eeth_weekly", "EIGEN",
                         "EIGEN per eETH per week (as published)", "EIGEN distribution", "etherfi:eigen-distributions")]
    if {"top_up_date", "ethfi_per_eeth_distributed"} <= cols:
        return [_amounts(df, path, token, "top_up_date", "ethfi_per_eeth_distributed", "ETHFI", "ETHFI per eETH",
                         "ETHFI top-up", "etherfi:ethfi-topups")]
    if {"reward_per_eeth", "extra_yield_pct"} <= cols or "daily_yield_final" in cols:
        raise DataError(f"{path}: this ether.fi table holds estimates / the author's modelled yields "
                        "(ranges such as '~5–15', an assumed EIGEN price), not data; import the raw tables "
                        "(bar-chart-supply-apy, eigen_distributions_raw, ethfi_topups_raw)")
    raise DataError(f"{path}: not a known ether.fi reward table (columns: {', '.join(df.columns)})")


def _amounts(df: pl.DataFrame, path: Path, token: str, tcol: str, vcol: str, kind: str, unit: str, what: str,
             source: str) -> Series:
    """A table of reward amounts (``vcol`` per token, as published) at the times of ``tcol``."""
    ts = parse_times(df[tcol], path, tcol)
    frame = pl.DataFrame({"ts": ts, "v": numeric_gaps(df, path, vcol)})
    kept, info = drop_missing(frame, ["v"], what, path)
    rew = kept.select("ts", pl.lit(token).alias("token"), pl.lit(kind).alias("kind"),
                      pl.lit(None, dtype=pl.Float64).alias("apr"), pl.col("v").alias("amount"),
                      pl.lit(unit).alias("unit"))
    return new_series("rewards", rew, f"etherfi-{token}-{kind}", source, path, info)


def import_etherfi(csv_path: str | os.PathLike, lake: str | os.PathLike, token: str = "eETH") -> ImportReport:
    """ether.fi reward tables -> ``rewards``: the daily APY chart (Base, Reward in percent -> APR fractions),
    the weekly EIGEN distributions (EIGEN per eETH), the ETHFI top-ups (ETHFI per eETH). Needs the
    ``rewards`` table in lake.TABLES."""
    return commit(lake, parse_etherfi(Path(csv_path), token))
