"""Hourly gas samples (one sampled block per hour) -> ``gas`` and the exact block times for ``blocks``."""
from __future__ import annotations

import os
from pathlib import Path

import polars as pl

from backtest.data.sources.commit import ImportReport, commit
from backtest.data.sources.toolkit import Series, blocks_series, new_series, numeric, read_csv, single_value


GAS_COLUMNS = ["block_number", "block_timestamp", "base_fee_gwei", "priority_fee_p50_gwei"]


def parse_gas_hourly(path: Path) -> list[Series]:
    df = read_csv(path, GAS_COLUMNS)
    src = single_value(df, path, "source") if "source" in df.columns else "gas-hourly"
    gas = pl.DataFrame({
        "ts": numeric(df, path, "block_timestamp", pl.Int64),
        "block": numeric(df, path, "block_number", pl.Int64),
        "base_fee_gwei": numeric(df, path, "base_fee_gwei"),
        "priority_fee_gwei": numeric(df, path, "priority_fee_p50_gwei"),
    })
    return [new_series("gas", gas, f"gas-hourly-{src}", f"gas-hourly:{src}", path),
            blocks_series(gas["ts"], gas["block"], f"gas-hourly-{src}", f"gas-hourly:{src}", path)]


def import_gas_hourly(csv_path: str | os.PathLike, lake: str | os.PathLike) -> ImportReport:
    """Import hourly gas samples: ts = block_timestamp (the sampled block's time, not the hour label),
    block = block_number, base_fee_gwei, priority_fee_gwei = priority_fee_p50_gwei; the (block_timestamp,
    block_number) pairs also go to ``blocks`` (exact block times)."""
    return commit(lake, parse_gas_hourly(Path(csv_path)))
