"""Rocket Pool BalancesUpdated reports -> ``exchange_rates`` rETH/ETH = total ETH / rETH supply."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import polars as pl

from backtest.data.sources.commit import ImportReport, commit
from backtest.data.sources.toolkit import (Series, drop_missing, new_series, numeric, numeric_gaps, parse_times,
                                           read_text_table, utilization)


def parse_rocketpool(path: Path, **_: Any) -> list[Series]:
    df = read_text_table(path, ["block_number", "timestamp", "total_eth_wei", "reth_supply_wei"])
    block = numeric(df, path, "block_number", pl.Int64)
    ts = parse_times(df["timestamp"], path, "timestamp", "s")
    total = numeric_gaps(df, path, "total_eth_wei")
    supply = numeric_gaps(df, path, "reth_supply_wei")
    frame = pl.DataFrame({"ts": ts, "block": block, "rate": utilization(total, supply)})
    out_of_order = int((frame["ts"].diff() < 0).sum())
    repeated = frame.height - frame.unique(subset=["block"]).height
    frame = frame.unique(subset=["block"], keep="last", maintain_order=True).sort("block")
    kept, info = drop_missing(frame, ["rate"], "rETH rate (zero supply)", path)
    # one value per time: should two reports share a block time, the later reference block wins
    kept = kept.unique(subset=["ts"], keep="last", maintain_order=True).sort("ts")
    notes = [f"{path.name}: rate = total_eth_wei / reth_supply_wei, ts = the event's block time; "
             f"{repeated} repeated report(s) of the same reference block dropped, the file goes back in time at "
             f"{out_of_order} place(s) (sorted by reference block)"]
    xr = kept.select("ts", pl.lit("rETH").alias("token"), pl.lit("ETH").alias("underlying"), "rate",
                     pl.lit("rocketpool:balances").alias("source"))
    return [new_series("exchange_rates", xr, "rocketpool-rETH-ETH", "rocketpool:balances", path, info, notes)]


def import_rocketpool(csv_path: str | os.PathLike, lake: str | os.PathLike) -> ImportReport:
    """Rocket Pool BalancesUpdated reports -> ``exchange_rates`` rETH/ETH = total ETH / rETH supply (the
    all-zero first report is a gap). The reference block is not the event's block, so ``block`` is null."""
    return commit(lake, parse_rocketpool(Path(csv_path)))
