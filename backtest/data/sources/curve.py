"""Curve pool balances (wei) -> ``liquidity`` (a table not in the lake yet: parsed, checked, refused)."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import polars as pl

from backtest.data.sources.commit import ImportReport, commit
from backtest.data.sources.toolkit import (Series, convert, drop_missing, new_series, numeric_gaps, parse_times,
                                           read_text_table)


# Curve stETH/ETH pool (PROTOCOLS.md 0xDC24...7022; integrators name it lidoCrvPool / ETHSTETH / "steth", found
# with find_string)
CURVE_STETH_POOL = "0xDC24316b9AE028F1497c275EB9192a3Ea0f67022"


def parse_curve(path: Path, pool: str | None = None, token0: str = "ETH", token1: str = "stETH",
                amp: float | None = None, **_: Any) -> list[Series]:
    df = read_text_table(path, ["UNIX TimeStamp", "ETH Balance", "stETH Balance"])
    ts = parse_times(df["UNIX TimeStamp"], path, "UNIX TimeStamp", "s")
    r0 = numeric_gaps(df, path, "ETH Balance")
    r1 = numeric_gaps(df, path, "stETH Balance")
    frame = pl.DataFrame({"ts": ts, "reserve0": convert(r0, "wei", "reserve0"),
                          "reserve1": convert(r1, "wei", "reserve1")}).sort("ts")
    kept, info = drop_missing(frame, ["reserve0", "reserve1"], "pool balance", path)
    liq = kept.select("ts", pl.lit(pool or f"curve:{CURVE_STETH_POOL}").alias("pool"),
                      pl.lit(token0).alias("token0"), pl.lit(token1).alias("token1"), "reserve0", "reserve1",
                      pl.lit(amp, dtype=pl.Float64).alias("amp"))
    note = (f"{path.name}: rows are newest first in the file (sorted here); balances in wei / 1e18; "
            "the pool's A is not in the file (amp null)")
    return [new_series("liquidity", liq, "curve-steth-ETH-stETH", "curve:pool-balances", path, info, [note])]


def import_curve(csv_path: str | os.PathLike, lake: str | os.PathLike, **opts: Any) -> ImportReport:
    """Curve pool balances (UNIX TimeStamp, Virtual Price, stETH Balance, ETH Balance; wei) -> ``liquidity``
    (token0 ETH, token1 stETH, token units). Needs the ``liquidity`` table in lake.TABLES."""
    return commit(lake, parse_curve(Path(csv_path), **opts))
