"""Compound v3 (Comet) oracle price CSVs -> ``oracle_prices`` compound-v3 (USD for WETH and wstETH, ETH for the
LST/LRT collateral feeds) and, for WETH, ``prices`` WETH/USD."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import polars as pl

from backtest.data.sources.commit import ImportReport, commit
from backtest.data.sources.toolkit import (Series, drop_missing, new_series, numeric_gaps, parse_times, price_frame,
                                           read_text_table, single_value)
from backtest.errors import DataError


#: Comet feeds that answer in USD (the others in this dataset answer in ETH per collateral token)
COMET_USD = frozenset({"WETH", "ETH", "wstETH"})


def parse_comet(path: Path, quote: str | None = None, protocol: str = "compound-v3", **_: Any) -> list[Series]:
    df = read_text_table(path, ["symbol", "timestamp"])
    pcol = next((c for c in df.columns if c.lower().endswith("price")), None)
    if pcol is None:
        raise DataError(f"{path}: missing a price column (USD_price)")
    asset = single_value(df, path, "symbol")
    ts = parse_times(df["timestamp"], path, "timestamp")
    price = numeric_gaps(df, path, pcol)
    q = quote or ("USD" if asset in COMET_USD else "ETH")
    med = float(price.drop_nulls().median() or 0.0)
    if q == "ETH" and med > 20:
        raise DataError(f"{path}: {asset} prices look like USD (median {med:.2f}), not ETH per {asset}; "
                        "pass --set quote=USD")
    if q == "USD" and 0 < med < 20 and asset not in ("USDC", "USDT", "DAI"):
        raise DataError(f"{path}: {asset} prices look like ETH per token (median {med:.4f}), not USD; "
                        "pass --set quote=ETH")
    frame = pl.DataFrame({"ts": ts, "price": price})
    kept, info = drop_missing(frame, ["price"], f"{asset} oracle price", path)
    src = f"comet:{asset}"
    items = [new_series("oracle_prices", kept.select("ts", pl.lit(protocol).alias("protocol"),
                                                     pl.lit(asset).alias("asset"), pl.lit(q).alias("quote"), "price"),
                        f"comet-{asset}-{q}", src, path, info)]
    if asset in ("WETH", "ETH") and q == "USD":
        items.append(new_series("prices", price_frame(kept["ts"], kept["price"], asset, "USD", "comet:chainlink"),
                                f"comet-{asset}-USD", "comet:chainlink", path))
    return items


def import_comet(csv_path: str | os.PathLike, lake: str | os.PathLike, quote: str | None = None) -> ImportReport:
    """Import a Comet ``getPrice`` CSV (symbol, timestamp [s], USD_price) into ``oracle_prices`` protocol
    compound-v3 (quote USD for WETH and wstETH, ETH for the other collateral feeds, as the dataset documents;
    empty cells before the asset was listed are gaps) and, for WETH, ``prices`` WETH/USD."""
    return commit(lake, parse_comet(Path(csv_path), quote))
