"""Etherscan chart exports: AvgGasPrice (wei) -> ``gas`` (gwei); EtherPrice -> ``prices`` ETH/USD."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import polars as pl

from backtest.data.sources.commit import ImportReport, commit
from backtest.data.sources.toolkit import (Series, convert, drop_missing, new_series, numeric_gaps, parse_times,
                                           price_frame, read_text_table)
from backtest.errors import DataError


def parse_etherscan(path: Path, kind: str | None = None, **_: Any) -> list[Series]:
    df = read_text_table(path)
    tcol = "UnixTimeStamp" if "UnixTimeStamp" in df.columns else None
    vcol = next((c for c in df.columns if c.startswith("Value")), None)
    if tcol is None or vcol is None:
        raise DataError(f"{path}: not an Etherscan chart export (expected UnixTimeStamp and Value columns; "
                        f"found {', '.join(df.columns)})")
    name = path.name.lower()
    if kind is None:
        if "(wei)" in vcol.lower() or "gasprice" in name:
            kind = "gas-price"
        elif "etherprice" in name or "ethprice" in name:
            kind = "ether-price"
        elif "gasused" in name:
            kind = "gas-used"
        else:
            raise DataError(f"{path}: which Etherscan chart is this? pass --set kind=gas-price|ether-price")
    ts = parse_times(df[tcol], path, tcol, "s")
    v = numeric_gaps(df, path, vcol)
    # Etherscan writes 0 for days without data (2015): those are gaps, not zero prices
    zero = int((v == 0).sum())
    v = pl.select(pl.when(v == 0).then(None).otherwise(v)).to_series()
    frame = pl.DataFrame({"ts": ts, "v": v})
    notes = [f"{path.name}: {zero} zero value(s) read as 'no data' (gaps)"] if zero else []
    if kind == "gas-price":
        unit = "wei" if "wei" in vcol.lower() else "gwei"
        kept, info = drop_missing(frame, ["v"], "gas price", path)
        gas = kept.select("ts", convert(kept["v"], unit, "base_fee_gwei", path).alias("base_fee_gwei"))
        notes.append(f"{path.name}: the daily average gas price paid (base fee + tip) goes to base_fee_gwei "
                     f"(converted from {unit}); priority_fee_gwei is left null")
        return [new_series("gas", gas, "etherscan-avg-gas-price", "etherscan:avg-gas-price", path, info, notes)]
    if kind == "ether-price":
        kept, info = drop_missing(frame, ["v"], "ETH price", path)
        return [new_series("prices", price_frame(kept["ts"], kept["v"], "ETH", "USD", "etherscan"),
                           "etherscan-ETH-USD", "etherscan", path, info, notes)]
    if kind == "gas-used":
        raise DataError(f"{path}: total gas used per day has no lake table (import export-AvgGasPrice.csv for "
                        "gas and export-EtherPrice.csv for ETH/USD)")
    raise DataError(f"{path}: unknown Etherscan kind {kind!r} (gas-price | ether-price)")


def import_etherscan(csv_path: str | os.PathLike, lake: str | os.PathLike, kind: str | None = None) -> ImportReport:
    """Import an Etherscan daily chart export: AvgGasPrice ("Value (Wei)") -> ``gas`` base_fee_gwei (the
    average price paid, wei / 1e9), EtherPrice -> ``prices`` ETH/USD. Zero values (2015) are gaps."""
    return commit(lake, parse_etherscan(Path(csv_path), kind))
