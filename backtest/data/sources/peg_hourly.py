"""The hourly LST peg analysis (DEX 24 h median vs the protocol's rate) -> ``prices`` TOKEN/WETH and
``exchange_rates`` TOKEN/ETH."""
from __future__ import annotations

import os
from pathlib import Path

import polars as pl

from backtest.data.sources.commit import ImportReport, commit
from backtest.data.sources.toolkit import Series, new_series, numeric, read_csv, single_value, utc_seconds


PEG_COLUMNS = ["timestamp", "protocol_rate", "market_rate", "asset"]


def parse_peg(path: Path) -> list[Series]:
    df = read_csv(path, PEG_COLUMNS)
    token = single_value(df, path, "asset")
    ts = utc_seconds(df, path, "timestamp")
    market = numeric(df, path, "market_rate")
    rate = numeric(df, path, "protocol_rate")
    dex = single_value(df, path, "dex") if "dex" in df.columns else "dex"
    src_price = f"peg-analysis:{dex}-median24h"
    src_rate = f"peg-analysis:{single_value(df, path, 'source') if 'source' in df.columns else 'protocol-rate'}"
    prices = pl.DataFrame({"ts": ts, "base": token, "quote": "WETH", "price": market, "source": src_price})
    xr = pl.DataFrame({"ts": ts, "token": token, "underlying": "ETH", "rate": rate, "source": src_rate})
    return [new_series("prices", prices, f"peg-{token}-WETH", src_price, path),
            new_series("exchange_rates", xr, f"peg-{token}-ETH", src_rate, path)]


def import_peg_hourly(csv_path: str | os.PathLike, lake: str | os.PathLike) -> ImportReport:
    """Import an LST peg-analysis file: prices TOKEN/WETH (market_rate, the DEX 24 h median) and
    exchange_rates TOKEN/ETH (protocol_rate, Aave's oracle rate interpolated to hours); ts from
    ``timestamp`` (UTC)."""
    return commit(lake, parse_peg(Path(csv_path)))
