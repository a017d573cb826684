"""AaveScan reserve exports (one reserve per file) -> ``rates``, ``oracle_prices`` ASSET/USD (Aave's oracle),
for WETH ``prices`` WETH/USD, and the real (time, block) pairs for ``blocks``."""
from __future__ import annotations

import os
from pathlib import Path

import polars as pl

from backtest.data.sources.commit import ImportReport, commit
from backtest.data.sources.toolkit import (Series, blocks_series, new_series, numeric, numeric_gaps, read_csv,
                                           single_value, utilization)


AAVESCAN_COLUMNS = ["timestamp", "blockNumber", "symbol", "liquidityIndex", "currentLiquidityRate",
                    "variableBorrowIndex", "currentVariableBorrowRate", "totalAToken", "totalVariableDebt", "price"]


def parse_aavescan(path: Path, protocol: str = "aave-v3") -> list[Series]:
    df = read_csv(path, AAVESCAN_COLUMNS)
    asset = single_value(df, path, "symbol")
    num = {c: numeric(df, path, c) for c in AAVESCAN_COLUMNS if c not in ("timestamp", "blockNumber", "symbol")}
    ts = numeric(df, path, "timestamp", pl.Int64)
    block = numeric(df, path, "blockNumber", pl.Int64)
    stable = numeric_gaps(df, path, "totalStableDebt") if "totalStableDebt" in df.columns else None
    # a missing stable-debt total makes the utilization unknown (null), never "no stable debt"
    borrowed = num["totalVariableDebt"] + stable if stable is not None else num["totalVariableDebt"]
    rates = pl.DataFrame({
        "ts": ts, "block": block, "protocol": protocol, "asset": asset,
        "supply_apr": num["currentLiquidityRate"], "borrow_apr": num["currentVariableBorrowRate"],
        "utilization": utilization(borrowed, num["totalAToken"]), "supply_index": num["liquidityIndex"],
        "borrow_index": num["variableBorrowIndex"],
    })
    src = f"aavescan:{protocol}"
    items = [new_series("rates", rates, f"aavescan-{protocol}-{asset}", src, path)]
    oracle = pl.DataFrame({"ts": ts, "block": block, "protocol": protocol, "asset": asset, "quote": "USD",
                           "price": num["price"]})
    items.append(new_series("oracle_prices", oracle, f"aavescan-{protocol}-{asset}-oracle-USD", f"{src}-oracle", path))
    if asset in ("WETH", "ETH"):
        prices = pl.DataFrame({"ts": ts, "block": block, "base": asset, "quote": "USD", "price": num["price"],
                               "source": f"{src}-oracle"})
        items.append(new_series("prices", prices, f"aavescan-{protocol}-{asset}-USD", f"{src}-oracle", path))
    items.append(blocks_series(ts, block, "aavescan", "aavescan:blockNumber", path))
    return items


def import_aavescan(csv_path: str | os.PathLike, lake: str | os.PathLike, protocol: str = "aave-v3") -> ImportReport:
    """Import an AaveScan reserve export (one reserve per file) into ``rates``, ``oracle_prices`` and, for
    WETH, ``prices``.

    rates: ts = timestamp, block = blockNumber, asset = symbol, supply_apr = currentLiquidityRate,
    borrow_apr = currentVariableBorrowRate (both APR fractions), utilization = (totalVariableDebt +
    totalStableDebt) / totalAToken (null when totalAToken is 0), supply_index = liquidityIndex,
    borrow_index = variableBorrowIndex. oracle_prices: ``protocol`` ASSET/USD = price (Aave's oracle).
    For the WETH export, prices WETH/USD = price too (source ``aavescan:<protocol>-oracle``). The (timestamp,
    blockNumber) pairs go to ``blocks/blocks-aavescan`` (the snapshot block is within a few blocks of the
    timestamp: <= 4.4 blocks from the gas files' exact block times over 2024-01 .. 2025-09).
    """
    return commit(lake, parse_aavescan(Path(csv_path), protocol))
