"""Minimal loaders of the real datasets under ../shared/data into the lake (full importers come later).

Each loader reads a CSV in its published format, checks every column it needs (present, numeric, parsable
time) and only then writes; a malformed file raises a DataError naming the file and the column and writes
nothing. Provenance goes in the ``source`` column where the table has one, in the file name, and in the
Parquet key-value metadata (``source``).

- :func:`import_aavescan`: AaveScan reserve exports (daily) -> ``rates``; the WETH export also ->
  ``prices`` WETH/USD (Aave's oracle price).
- :func:`import_peg_hourly`: the LST peg analysis (hourly) -> ``prices`` TOKEN/WETH from the DEX price
  (24 h rolling median) and ``exchange_rates`` TOKEN/ETH from the Aave oracle rate.
- :func:`import_gas_hourly`: hourly gas samples -> ``gas`` (the sampled block's own time and number).
"""
from __future__ import annotations

import os
from pathlib import Path

import polars as pl

from backtest.data import lake as _lake
from backtest.errors import DataError


def _read_csv(path: str | os.PathLike, required: list[str]) -> pl.DataFrame:
    """Read ``path`` with every column as text; DataError when it is unreadable or lacks a column."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    try:
        df = pl.read_csv(path, infer_schema=False)
    except Exception as exc:  # noqa: BLE001 - any parse failure is the file's fault
        raise DataError(f"{path}: cannot read as CSV: {exc}") from exc
    for col in required:
        if col not in df.columns:
            raise DataError(f"{path}: missing column {col!r}")
    if df.height == 0:
        raise DataError(f"{path}: no rows")
    return df


def _numeric(df: pl.DataFrame, path: Path | str, col: str, dtype: type[pl.DataType] = pl.Float64) -> pl.Series:
    """Column ``col`` cast to ``dtype``; DataError naming the file, column and first bad value."""
    raw = df.get_column(col).str.strip_chars()
    out = raw.cast(dtype, strict=False)
    bad = out.is_null() & raw.is_not_null() & (raw != "")
    missing = raw.is_null() | (raw == "")
    if bad.any() or missing.any():
        i = int((bad | missing).arg_max())
        what = "an empty value" if bool(missing[i]) else f"a non-numeric value {raw[i]!r}"
        raise DataError(f"{path}: column {col!r} has {what} (data row {i + 1})")
    if dtype == pl.Float64:
        nonfinite = ~out.is_finite()
        if nonfinite.any():
            i = int(nonfinite.arg_max())
            raise DataError(f"{path}: column {col!r} has a non-finite value {raw[i]!r} (data row {i + 1})")
    return out


def _single(df: pl.DataFrame, path: Path | str, col: str) -> str:
    vals = df.get_column(col).drop_nulls().unique().to_list()
    if len(vals) != 1 or not str(vals[0]).strip():
        raise DataError(f"{path}: column {col!r} must hold one value, found {sorted(map(str, vals))[:5]}")
    return str(vals[0]).strip()


def _utc_seconds(df: pl.DataFrame, path: Path | str, col: str) -> pl.Series:
    """Parse ISO timestamps ('2024-05-12 23:00:00+00:00', '2024-01-01T00:00:00Z', naive = UTC) to epoch s."""
    raw = df.get_column(col).str.strip_chars()
    norm = raw.str.replace(r"Z$", "+00:00").str.replace("T", " ", literal=True)
    with_tz = norm.str.contains(r"[+-]\d\d:?\d\d$")
    parsed_tz = norm.str.to_datetime("%Y-%m-%d %H:%M:%S%z", strict=False, time_zone="UTC")
    parsed_naive = norm.str.to_datetime("%Y-%m-%d %H:%M:%S", strict=False, time_zone="UTC")
    dt = pl.select(pl.when(with_tz).then(parsed_tz).otherwise(parsed_naive)).to_series()
    bad = dt.is_null()
    if bad.any():
        i = int(bad.arg_max())
        raise DataError(f"{path}: column {col!r} has an unparsable timestamp {raw[i]!r} (data row {i + 1})")
    return dt.dt.epoch("s").cast(pl.Int64)


def _write_all(lake: str | os.PathLike, items: list[tuple[str, pl.DataFrame, str, str]]) -> list[Path]:
    """Validate every (table, frame, file name, source) first, then write them; return the paths."""
    checked = [(table, _lake.validate(table, df), name, src) for table, df, name, src in items]
    return [_lake.write_table(lake, table, df, name, metadata={"source": src}) for table, df, name, src in checked]


def _name(s: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "-" for c in s)


# -------------------------------------------------------------------------------------------- aavescan
AAVESCAN_COLUMNS = ["timestamp", "blockNumber", "symbol", "liquidityIndex", "currentLiquidityRate",
                    "variableBorrowIndex", "currentVariableBorrowRate", "totalAToken", "totalVariableDebt", "price"]


def import_aavescan(csv_path: str | os.PathLike, lake: str | os.PathLike, protocol: str = "aave-v3") -> list[Path]:
    """Import an AaveScan reserve export (one reserve per file) into ``rates`` (+ ``prices`` for WETH).

    rates: ts = timestamp, block = blockNumber, asset = symbol, supply_apr = currentLiquidityRate,
    borrow_apr = currentVariableBorrowRate, utilization = totalVariableDebt / totalAToken (null when
    totalAToken is 0), supply_index = liquidityIndex, borrow_index = variableBorrowIndex.
    For the WETH export, prices WETH/USD = price (Aave's oracle, source ``aavescan:<protocol>-oracle``).
    """
    path = Path(csv_path)
    df = _read_csv(path, AAVESCAN_COLUMNS)
    asset = _single(df, path, "symbol")
    num = {c: _numeric(df, path, c) for c in AAVESCAN_COLUMNS if c not in ("timestamp", "blockNumber", "symbol")}
    ts = _numeric(df, path, "timestamp", pl.Int64)
    block = _numeric(df, path, "blockNumber", pl.Int64)
    supplied = num["totalAToken"]
    util = pl.select(pl.when(supplied > 0).then(num["totalVariableDebt"] / supplied).otherwise(None)).to_series()
    rates = pl.DataFrame({
        "ts": ts, "block": block, "protocol": protocol, "asset": asset,
        "supply_apr": num["currentLiquidityRate"], "borrow_apr": num["currentVariableBorrowRate"],
        "utilization": util, "supply_index": num["liquidityIndex"], "borrow_index": num["variableBorrowIndex"],
    })
    items = [("rates", rates, _name(f"aavescan-{protocol}-{asset}"), f"aavescan:{protocol}")]
    if asset in ("WETH", "ETH"):
        prices = pl.DataFrame({"ts": ts, "block": block, "base": asset, "quote": "USD", "price": num["price"],
                               "source": f"aavescan:{protocol}-oracle"})
        items.append(("prices", prices, _name(f"aavescan-{protocol}-{asset}-USD"), f"aavescan:{protocol}-oracle"))
    return _write_all(lake, items)


# ------------------------------------------------------------------------------------------ peg hourly
PEG_COLUMNS = ["timestamp", "protocol_rate", "market_rate", "asset"]


def import_peg_hourly(csv_path: str | os.PathLike, lake: str | os.PathLike) -> list[Path]:
    """Import an LST peg-analysis file: prices TOKEN/WETH (market_rate, the DEX 24 h median) and
    exchange_rates TOKEN/ETH (protocol_rate, Aave's oracle rate interpolated to hours); ts from
    ``timestamp`` (UTC)."""
    path = Path(csv_path)
    df = _read_csv(path, PEG_COLUMNS)
    token = _single(df, path, "asset")
    ts = _utc_seconds(df, path, "timestamp")
    market = _numeric(df, path, "market_rate")
    rate = _numeric(df, path, "protocol_rate")
    dex = _single(df, path, "dex") if "dex" in df.columns else "dex"
    src_price = f"peg-analysis:{dex}-median24h"
    src_rate = f"peg-analysis:{_single(df, path, 'source') if 'source' in df.columns else 'protocol-rate'}"
    prices = pl.DataFrame({"ts": ts, "base": token, "quote": "WETH", "price": market, "source": src_price})
    xr = pl.DataFrame({"ts": ts, "token": token, "underlying": "ETH", "rate": rate, "source": src_rate})
    return _write_all(lake, [
        ("prices", prices, _name(f"peg-{token}-WETH"), src_price),
        ("exchange_rates", xr, _name(f"peg-{token}-ETH"), src_rate),
    ])


# ------------------------------------------------------------------------------------------ gas hourly
GAS_COLUMNS = ["block_number", "block_timestamp", "base_fee_gwei", "priority_fee_p50_gwei"]


def import_gas_hourly(csv_path: str | os.PathLike, lake: str | os.PathLike) -> list[Path]:
    """Import hourly gas samples: ts = block_timestamp (the sampled block's time, not the hour label),
    block = block_number, base_fee_gwei, priority_fee_gwei = priority_fee_p50_gwei."""
    path = Path(csv_path)
    df = _read_csv(path, GAS_COLUMNS)
    src = _single(df, path, "source") if "source" in df.columns else "gas-hourly"
    gas = pl.DataFrame({
        "ts": _numeric(df, path, "block_timestamp", pl.Int64),
        "block": _numeric(df, path, "block_number", pl.Int64),
        "base_fee_gwei": _numeric(df, path, "base_fee_gwei"),
        "priority_fee_gwei": _numeric(df, path, "priority_fee_p50_gwei"),
    })
    return _write_all(lake, [("gas", gas, _name(f"gas-hourly-{src}"), f"gas-hourly:{src}")])
