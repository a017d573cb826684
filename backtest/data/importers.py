"""Importers: the exports users have, normalised into the lake tables of DESIGN.md section 4.

Every importer reads its format as published, checks every column it needs (present, numeric, parsable time)
and converts units (wei -> token units or gwei, ray -> fraction, percent -> fraction, APY -> APR, ms -> s)
before anything is written. A malformed file raises a :class:`DataError` naming the file, the column and the
first bad value, and nothing is written: all files of one import are parsed and validated first, then each
lake file is written atomically by :func:`backtest.data.lake.write_table`, which merges on the series key +
``ts`` so that importing the same file twice gives the same lake.

Missing values (empty cells, JSON nulls, and zeros where zero means "no data", e.g. Etherscan's 2015 rows)
never become zeros: the row is left out of that series, which is then a gap, and the import reports how many
values were missing and where (:class:`ImportReport`).

Provenance: the ``source`` column where the table has one (``prices``, ``exchange_rates``), the Parquet
key-value metadata (``source``, ``file``: the input file's name), and the lake file's name.

Sources (:data:`SOURCES`, the names of ``backtest data import SOURCE``):

==================  ==============================================================================================
``coingecko``       CoinGecko CSV (``symbol,timestamp[ms],USD_price`` or ``date,symbol,price_usd``) and the API's
                    ``market_chart`` JSON (``{"prices": [[ms, price], ...]}``) -> ``prices`` SYMBOL/USD
``aavescan``        AaveScan reserve export -> ``rates`` (utilization from the totals), ``oracle_prices``
                    ASSET/USD (Aave's oracle) and, for WETH, ``prices`` WETH/USD
``aave-snapshots``  Aave v3 daily reserve snapshot table -> ``rates`` and ``market_params`` (non-E-mode)
``comet``           Compound v3 (Comet) oracle price CSV -> ``oracle_prices`` compound-v3 (USD for WETH and
                    wstETH, ETH for the LST/LRT collateral feeds) and, for WETH, ``prices`` WETH/USD
``etherscan``       Etherscan chart export: AvgGasPrice (wei) -> ``gas`` (gwei); EtherPrice -> ``prices`` ETH/USD
``gas-hourly``      hourly gas samples -> ``gas`` (:func:`import_gas_hourly`)
``peg-hourly``      LST peg analysis -> ``prices`` TOKEN/WETH + ``exchange_rates`` (:func:`import_peg_hourly`)
``curve``           Curve pool balances -> ``liquidity`` (needs that table in lake.TABLES, see below)
``rocketpool``      Rocket Pool BalancesUpdated reports -> ``exchange_rates`` rETH/ETH = total ETH / rETH supply
``etherfi``         ether.fi reward tables -> ``rewards`` (needs that table in lake.TABLES, see below)
``defillama``       DefiLlama JSON: coins chart -> ``prices``; lend-borrow chart -> ``rates`` (+ utilization);
                    yields chart -> ``exchange_rates`` by compounding the base APY (``--set token=...``)
``dune``            a Dune query result (CSV or the API's JSON) with a column mapping
``csv``             any CSV with a column mapping (``--table prices --map ts=time --map price=close
                    --set base=wstETH --set quote=WETH``)
==================  ==============================================================================================

The ``liquidity`` and ``rewards`` tables of DESIGN.md section 4 are not in :data:`backtest.data.lake.TABLES`
yet; their importers parse and validate against :data:`PROPOSED_TABLES` and then stop with a DataError that
says so (nothing is written). Once lake.py defines them, the same importers write them unchanged.

Derived series: :func:`derive_ratio` (a market ratio such as stETH/ETH from two USD series, floored to the
hour and inner-joined), :func:`derive_oracle_rate` (the exchange rate an oracle reports as ASSET/USD ÷
ETH/USD), :func:`utilization` (borrowed / supplied) and :func:`constant_growth` (a documented assumed
exchange-rate path).
"""
from __future__ import annotations

import datetime as _dt
import json
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np
import polars as pl
import pyarrow as pa

from backtest.data import lake as _lake
from backtest.errors import DataError

YEAR = 365 * 86400
HOUR = 3600
MIN_TS = 1_230_000_000          # 2008-12: nothing on Ethereum is older
MAX_TS = 4_102_444_800          # 2100-01-01

# ----------------------------------------------------------------------------------------- proposed tables
_I64, _F64, _STR = pa.int64(), pa.float64(), pa.string()

#: schemas for the DESIGN.md tables that lake.TABLES does not define yet (same conventions as lake.TABLES)
PROPOSED_TABLES: dict[str, pa.Schema] = {
    "liquidity": pa.schema([
        pa.field("ts", _I64, False), pa.field("block", _I64, True), pa.field("pool", _STR, False),
        pa.field("token0", _STR, False), pa.field("token1", _STR, False), pa.field("reserve0", _F64, False),
        pa.field("reserve1", _F64, False), pa.field("amp", _F64, True),
    ]),
    "rewards": pa.schema([
        pa.field("ts", _I64, False), pa.field("token", _STR, False), pa.field("kind", _STR, False),
        pa.field("apr", _F64, True), pa.field("amount", _F64, True), pa.field("unit", _STR, False),
    ]),
}
#: their series keys (besides ts), as lake.KEYS
PROPOSED_KEYS: dict[str, tuple[str, ...]] = {"liquidity": ("pool",), "rewards": ("token", "kind")}


# ============================================================================================ the report
@dataclass
class Series:
    """One normalised series (or one table's rows from one input) ready to be written."""

    table: str
    df: pl.DataFrame
    name: str                                   # lake file name (without .parquet)
    source: str                                 # provenance string (source column / metadata)
    file: str = ""                              # input file name(s)
    missing: int = 0                            # values left out (gaps, not zeros)
    missing_first: int | None = None
    missing_last: int | None = None
    notes: list[str] = field(default_factory=list)

    def key(self) -> str:
        if self.df.height == 0:
            return self.table
        row = self.df.row(0, named=True)
        try:
            return _lake.series_key(self.table, row)
        except KeyError:
            keys = PROPOSED_KEYS.get(self.table, ())
            return ":".join(str(row.get(k)) for k in keys) or self.table


class ImportReport(list):
    """The lake files written (a list of Paths, as before) plus one summary dict per series written
    (``table, key, source, rows, first_ts, last_ts, missing, missing_first, missing_last``) and notes
    (unit conversions, rows left out)."""

    def __init__(self, paths: Iterable[Path] = (), series: Iterable[dict] = (), notes: Iterable[str] = ()):
        super().__init__(paths)
        self.series: list[dict] = list(series)
        self.notes: list[str] = list(notes)

    def lines(self) -> list[str]:
        out = []
        for s in self.series:
            span = f"{_day(s['first_ts'])} -> {_day(s['last_ts'])}" if s["rows"] else "empty"
            line = f"{s['table']:<15} {s['key']:<36} {s['rows']:>7} rows  {span}"
            if s["missing"]:
                line += (f"  ({s['missing']} missing value(s) left as gaps, "
                         f"{_day(s['missing_first'])} .. {_day(s['missing_last'])})")
            out.append(line)
        out.extend(f"note: {n}" for n in self.notes)
        return out


def _day(ts: int | None) -> str:
    if ts is None:
        return "?"
    return _dt.datetime.fromtimestamp(int(ts), _dt.timezone.utc).strftime("%Y-%m-%d %H:%M")


# ============================================================================================ reading
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


def _read_text_table(path: str | os.PathLike, required: Sequence[str] = ()) -> pl.DataFrame:
    """A CSV as text columns with names stripped of surrounding spaces and a BOM (Curve's ' stETH Balance')."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    try:
        df = pl.read_csv(path, infer_schema=False, truncate_ragged_lines=False)
    except Exception as exc:  # noqa: BLE001
        raise DataError(f"{path}: cannot read as CSV: {exc}") from exc
    df = df.rename({c: c.strip().lstrip("\ufeff").strip() for c in df.columns})
    for col in required:
        if col not in df.columns:
            raise DataError(f"{path}: missing column {col!r} (columns: {', '.join(df.columns)})")
    if df.height == 0:
        raise DataError(f"{path}: no rows")
    return df


def _read_json(path: str | os.PathLike) -> Any:
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: not valid JSON ({exc}); a truncated download?") from exc


def _numeric(df: pl.DataFrame, path: Path | str, col: str, dtype: type[pl.DataType] = pl.Float64) -> pl.Series:
    """Column ``col`` cast to ``dtype``; DataError naming the file, column and first bad or empty value."""
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


def _numeric_gaps(df: pl.DataFrame, path: Path | str, col: str) -> pl.Series:
    """Column ``col`` as Float64 with nulls where the cell is empty (or 'null'/'NaN'); DataError naming
    the file, column and row for a value that is present but not a number."""
    s = df.get_column(col)
    if s.dtype == pl.String:
        raw = s.str.strip_chars()
        empty = raw.is_null() | raw.str.to_lowercase().is_in(["", "null", "none", "nan", "na", "n/a"])
        out = raw.cast(pl.Float64, strict=False)
        bad = out.is_null() & ~empty
        if bad.any():
            i = int(bad.arg_max())
            raise DataError(f"{path}: column {col!r} has a non-numeric value {raw[i]!r} (data row {i + 1})")
        out = pl.select(pl.when(empty).then(None).otherwise(out)).to_series()
    elif s.dtype.is_numeric() or s.dtype == pl.Null:
        out = s.cast(pl.Float64)
        out = pl.select(pl.when(out.is_nan()).then(None).otherwise(out)).to_series()
    else:
        raise DataError(f"{path}: column {col!r} must be numeric, got {s.dtype}")
    nonfinite = out.is_not_null() & ~out.is_finite()
    if nonfinite.any():
        i = int(nonfinite.arg_max())
        raise DataError(f"{path}: column {col!r} has a non-finite value (data row {i + 1})")
    return out.alias(col)


def _single(df: pl.DataFrame, path: Path | str, col: str) -> str:
    vals = df.get_column(col).drop_nulls().unique().to_list()
    if len(vals) != 1 or not str(vals[0]).strip():
        raise DataError(f"{path}: column {col!r} must hold one value, found {sorted(map(str, vals))[:5]}")
    return str(vals[0]).strip()


# ---------------------------------------------------------------------------------------------- times
_TS_UNITS = {"s": 1, "ms": 1_000, "us": 1_000_000, "ns": 1_000_000_000}


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


def _parse_one_time(text: str) -> int | None:
    t = text.strip()
    if not t:
        return None
    if re.fullmatch(r"\d{1,2}/\d{1,2}/\d{4}", t):             # Etherscan's M/D/YYYY
        m, d, y = (int(x) for x in t.split("/"))
        return int(_dt.datetime(y, m, d, tzinfo=_dt.timezone.utc).timestamp())
    t = re.sub(r"\s*UTC$", "+00:00", t)                        # Dune: '2024-05-12 00:00:00.000 UTC'
    t = re.sub(r"Z$", "+00:00", t)
    try:
        d = _dt.datetime.fromisoformat(t)
    except ValueError:
        return None
    if d.tzinfo is None:
        d = d.replace(tzinfo=_dt.timezone.utc)
    return int(math.floor(d.timestamp()))


def parse_times(values: pl.Series, path: Path | str, col: str, unit: str | None = None) -> pl.Series:
    """Epoch seconds (Int64) from numbers (s, ms, us or ns: ``unit``, else detected from the magnitude) or
    date/time text (ISO 8601 with or without offset, naive = UTC, Dune's '... UTC', Etherscan's M/D/YYYY).

    Empty cells stay null (the caller decides whether that is a gap or an error); unparsable text, mixed
    magnitudes and times outside 2009..2100 are DataErrors naming the file, column and value.
    """
    s = values
    if s.dtype == pl.String:
        raw = s.str.strip_chars()
        num = raw.cast(pl.Float64, strict=False)
        empty = raw.is_null() | (raw == "")
        numeric = bool((num.is_not_null() | empty).all()) and bool(num.is_not_null().any())
    elif s.dtype.is_numeric():
        raw = s.cast(pl.String)
        num = s.cast(pl.Float64)
        empty = num.is_null()
        numeric = True
    else:
        raise DataError(f"{path}: column {col!r} is not a time (dtype {s.dtype})")
    if unit not in (None, "iso", *_TS_UNITS):
        raise DataError(f"{path}: unknown time unit {unit!r} for column {col!r} (s, ms, us, ns or iso)")
    if numeric and unit != "iso":
        present = num.drop_nulls()
        if unit is None:
            mags = np.floor(np.log10(np.maximum(np.abs(present.to_numpy()), 1.0)))
            # 9-10 digits: seconds, 12-13: ms, 15-16: us, 18-19: ns
            kinds = np.select([mags <= 10, mags <= 13, mags <= 16], ["s", "ms", "us"], "ns")
            found = sorted(set(kinds.tolist()))
            if len(found) > 1:
                i = int(np.argmax(kinds != kinds[0]))
                raise DataError(f"{path}: column {col!r} mixes time units ({', '.join(found)}), e.g. "
                                f"{present[0]!r} and {present[i]!r}; pass the unit explicitly")
            unit = found[0] if found else "s"
        secs = (num / _TS_UNITS[unit]).floor().cast(pl.Int64)
    else:
        uniq = {v: _parse_one_time(v) for v in raw.drop_nulls().unique().to_list()}
        bad = [v for v, t in uniq.items() if t is None and v.strip()]
        if bad:
            i = int(raw.is_in(bad).arg_max())
            raise DataError(f"{path}: column {col!r} has an unparsable time {raw[i]!r} (data row {i + 1})")
        secs = raw.replace_strict(list(uniq), [uniq[k] for k in uniq], default=None, return_dtype=pl.Int64)
        secs = pl.select(pl.when(empty).then(None).otherwise(secs)).to_series()
    out_of_range = secs.is_not_null() & ((secs < MIN_TS) | (secs > MAX_TS))
    if out_of_range.any():
        i = int(out_of_range.arg_max())
        raise DataError(f"{path}: column {col!r} has a time outside 2009..2100: {raw[i]!r} (data row {i + 1}; "
                        f"read as {unit or 'text'})")
    return secs.alias("ts")


# ---------------------------------------------------------------------------------------------- units
#: unit name -> (multiplier to the lake unit, kind); "apy" converts a compounded yearly yield to the APR
UNITS: dict[str, tuple[float, str]] = {
    "1": (1.0, "scale"), "fraction": (1.0, "scale"), "token": (1.0, "scale"),
    "percent": (0.01, "scale"), "pct": (0.01, "scale"), "bps": (1e-4, "scale"),
    "ray": (1e-27, "scale"), "wad": (1e-18, "scale"), "e18": (1e-18, "scale"), "e8": (1e-8, "scale"),
    "e6": (1e-6, "scale"), "wei": (1e-18, "wei"), "gwei": (1.0, "gwei"),
    "apy": (1.0, "apy"), "apy-percent": (0.01, "apy"),
}


def convert(values: pl.Series, unit: str, column: str, path: Path | str = "") -> pl.Series:
    """Convert ``values`` from ``unit`` to the lake unit of ``column``.

    Gas columns (``*_gwei``) are in gwei: ``wei`` divides by 1e9, ``gwei`` is as is. Other columns: ``wei``
    / ``e18`` / ``wad`` divide by 1e18, ``ray`` by 1e27, ``percent`` by 100, ``bps`` by 1e4; ``apy`` (a
    compounded yearly yield, fraction) becomes the equivalent continuously compounded APR ln(1 + apy), which
    is what Aave's per-second compounding of its APR gives back (``apy-percent``: the same in percent).
    """
    if unit not in UNITS:
        raise DataError(f"{path}: unknown unit {unit!r} for column {column!r} "
                        f"(one of: {', '.join(sorted(UNITS))})")
    mult, kind = UNITS[unit]
    gas_col = column.endswith("_gwei")
    if kind == "wei":
        return values * (1e-9 if gas_col else 1e-18)
    if kind == "gwei":
        return values if gas_col else values * 1e-9
    if gas_col and unit not in ("1", "fraction"):
        raise DataError(f"{path}: unit {unit!r} makes no sense for the gas column {column!r} (use wei or gwei)")
    if kind == "apy":
        x = values * mult
        if (x.drop_nulls() <= -1).any():
            raise DataError(f"{path}: column {column!r} has an APY at or below -100 %")
        return x.log1p()
    return values * mult


def apy_to_apr(apy: pl.Series) -> pl.Series:
    """ln(1 + APY): the APR that compounds continuously (Aave: per second) to ``apy``."""
    return apy.log1p()


# ============================================================================================ writing
def _validate(table: str, df: pl.DataFrame) -> pl.DataFrame:
    """lake.validate for the lake's tables; for a PROPOSED table a DataError that it is not in the lake yet."""
    if table in _lake.TABLES:
        return _lake.validate(table, df)
    raise DataError(
        f"{table}: the lake has no {table!r} table yet (backtest/data/lake.py TABLES defines "
        f"{', '.join(_lake.TABLES)}); {df.height} row(s) were parsed and checked but not written"
    )


def _check_unique_ts(item: Series) -> None:
    """Two different values at one (series key, ts) inside one import are ambiguous: DataError."""
    table = item.table
    keys = list(_lake.KEYS.get(table, PROPOSED_KEYS.get(table, ())))
    dup = item.df.filter(pl.struct([*keys, "ts"]).is_duplicated())
    if dup.height:
        distinct = dup.unique()
        if distinct.height > dup.select([*keys, "ts"]).unique().height:
            row = distinct.sort("ts").row(0, named=True)
            raise DataError(f"{item.file or table}: {table} has different values for one time "
                            f"{_day(row['ts'])} ({', '.join(f'{k}={row[k]}' for k in keys) or 'the series'})")


def commit(lake: str | os.PathLike, items: Sequence[Series]) -> ImportReport:
    """Validate every series first, then write them (each atomically); return the report."""
    checked = []
    for it in items:
        df = _validate(it.table, it.df)
        _check_unique_ts(Series(it.table, df, it.name, it.source, it.file))
        checked.append((it, df))
    report = ImportReport()
    for it, df in checked:
        meta = {"source": it.source}
        if it.file:
            meta["file"] = it.file
        report.append(_lake.write_table(lake, it.table, df, it.name, metadata=meta))
        for key_df in _split_by_key(it.table, df):
            first = key_df["ts"].min() if key_df.height else None
            last = key_df["ts"].max() if key_df.height else None
            report.series.append({
                "table": it.table, "key": Series(it.table, key_df, "", "").key(), "source": it.source,
                "rows": key_df.height, "first_ts": first, "last_ts": last, "missing": it.missing,
                "missing_first": it.missing_first, "missing_last": it.missing_last,
            })
        report.notes.extend(it.notes)
    return report


def _split_by_key(table: str, df: pl.DataFrame) -> list[pl.DataFrame]:
    keys = [k for k in _lake.KEYS.get(table, ()) if k in df.columns]
    if not keys or df.height == 0:
        return [df]
    return [g for _, g in df.group_by(keys, maintain_order=True)]


def _write_all(lake: str | os.PathLike, items: list[tuple[str, pl.DataFrame, str, str]]) -> ImportReport:
    """Validate every (table, frame, file name, source) first, then write them; return the paths."""
    return commit(lake, [Series(t, df, name, src) for t, df, name, src in items])


def _name(s: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "-" for c in s)


def _drop_missing(df: pl.DataFrame, cols: Sequence[str], what: str, path: Path | str) -> tuple[pl.DataFrame, dict]:
    """Rows whose ``cols`` are all present, and a note of the rows left out (as gaps)."""
    miss = pl.any_horizontal([pl.col(c).is_null() for c in cols])
    left = df.filter(miss)
    kept = df.filter(~miss)
    info: dict[str, Any] = {"missing": left.height}
    if left.height:
        info["missing_first"] = int(left["ts"].min())
        info["missing_last"] = int(left["ts"].max())
        info["note"] = (f"{Path(str(path)).name}: {left.height} missing {what} value(s) left as gaps "
                        f"(not zeros), {_day(info['missing_first'])} .. {_day(info['missing_last'])}")
    return kept, info


def _series(table: str, df: pl.DataFrame, name: str, source: str, path: Path | str,
            info: dict | None = None, notes: Sequence[str] = ()) -> Series:
    info = info or {}
    n = list(notes)
    if info.get("note"):
        n.append(info["note"])
    return Series(table, df, _name(name), source, Path(str(path)).name if path else "",
                  info.get("missing", 0), info.get("missing_first"), info.get("missing_last"), n)


# ============================================================================================ aavescan
AAVESCAN_COLUMNS = ["timestamp", "blockNumber", "symbol", "liquidityIndex", "currentLiquidityRate",
                    "variableBorrowIndex", "currentVariableBorrowRate", "totalAToken", "totalVariableDebt", "price"]


def utilization(borrowed: pl.Series, supplied: pl.Series) -> pl.Series:
    """borrowed / supplied, null where supplied is not positive or either is missing (never 0 for unknown)."""
    return pl.select(pl.when(supplied > 0).then(borrowed / supplied).otherwise(None)).to_series().alias(
        "utilization")


def _parse_aavescan(path: Path, protocol: str = "aave-v3") -> list[Series]:
    df = _read_csv(path, AAVESCAN_COLUMNS)
    asset = _single(df, path, "symbol")
    num = {c: _numeric(df, path, c) for c in AAVESCAN_COLUMNS if c not in ("timestamp", "blockNumber", "symbol")}
    ts = _numeric(df, path, "timestamp", pl.Int64)
    block = _numeric(df, path, "blockNumber", pl.Int64)
    stable = _numeric_gaps(df, path, "totalStableDebt") if "totalStableDebt" in df.columns else None
    # a missing stable-debt total makes the utilization unknown (null), never "no stable debt"
    borrowed = num["totalVariableDebt"] + stable if stable is not None else num["totalVariableDebt"]
    rates = pl.DataFrame({
        "ts": ts, "block": block, "protocol": protocol, "asset": asset,
        "supply_apr": num["currentLiquidityRate"], "borrow_apr": num["currentVariableBorrowRate"],
        "utilization": utilization(borrowed, num["totalAToken"]), "supply_index": num["liquidityIndex"],
        "borrow_index": num["variableBorrowIndex"],
    })
    src = f"aavescan:{protocol}"
    items = [_series("rates", rates, f"aavescan-{protocol}-{asset}", src, path)]
    oracle = pl.DataFrame({"ts": ts, "block": block, "protocol": protocol, "asset": asset, "quote": "USD",
                           "price": num["price"]})
    items.append(_series("oracle_prices", oracle, f"aavescan-{protocol}-{asset}-oracle-USD", f"{src}-oracle", path))
    if asset in ("WETH", "ETH"):
        prices = pl.DataFrame({"ts": ts, "block": block, "base": asset, "quote": "USD", "price": num["price"],
                               "source": f"{src}-oracle"})
        items.append(_series("prices", prices, f"aavescan-{protocol}-{asset}-USD", f"{src}-oracle", path))
    items.append(_blocks(ts, block, "aavescan", "aavescan:blockNumber", path))
    return items


def _blocks(ts: pl.Series, block: pl.Series, name: str, source: str, path: Path) -> Series:
    """Real (time, block number) pairs for the lake's ``blocks`` table, which alignment interpolates
    instead of estimating block numbers from the Merge (an estimate ~30,000-60,000 blocks off in 2024-25,
    missed slots). One file per source: every export of that source merges into it."""
    df = pl.DataFrame({"ts": ts, "block": block}).unique(subset=["ts"], keep="last").sort("ts")
    return _series("blocks", df, f"blocks-{name}", source, path)


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
    return commit(lake, _parse_aavescan(Path(csv_path), protocol))


# ------------------------------------------------------------------------------------------ peg hourly
PEG_COLUMNS = ["timestamp", "protocol_rate", "market_rate", "asset"]


def _parse_peg(path: Path) -> list[Series]:
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
    return [_series("prices", prices, f"peg-{token}-WETH", src_price, path),
            _series("exchange_rates", xr, f"peg-{token}-ETH", src_rate, path)]


def import_peg_hourly(csv_path: str | os.PathLike, lake: str | os.PathLike) -> ImportReport:
    """Import an LST peg-analysis file: prices TOKEN/WETH (market_rate, the DEX 24 h median) and
    exchange_rates TOKEN/ETH (protocol_rate, Aave's oracle rate interpolated to hours); ts from
    ``timestamp`` (UTC)."""
    return commit(lake, _parse_peg(Path(csv_path)))


# ------------------------------------------------------------------------------------------ gas hourly
GAS_COLUMNS = ["block_number", "block_timestamp", "base_fee_gwei", "priority_fee_p50_gwei"]


def _parse_gas_hourly(path: Path) -> list[Series]:
    df = _read_csv(path, GAS_COLUMNS)
    src = _single(df, path, "source") if "source" in df.columns else "gas-hourly"
    gas = pl.DataFrame({
        "ts": _numeric(df, path, "block_timestamp", pl.Int64),
        "block": _numeric(df, path, "block_number", pl.Int64),
        "base_fee_gwei": _numeric(df, path, "base_fee_gwei"),
        "priority_fee_gwei": _numeric(df, path, "priority_fee_p50_gwei"),
    })
    return [_series("gas", gas, f"gas-hourly-{src}", f"gas-hourly:{src}", path),
            _blocks(gas["ts"], gas["block"], f"gas-hourly-{src}", f"gas-hourly:{src}", path)]


def import_gas_hourly(csv_path: str | os.PathLike, lake: str | os.PathLike) -> ImportReport:
    """Import hourly gas samples: ts = block_timestamp (the sampled block's time, not the hour label),
    block = block_number, base_fee_gwei, priority_fee_gwei = priority_fee_p50_gwei; the (block_timestamp,
    block_number) pairs also go to ``blocks`` (exact block times)."""
    return commit(lake, _parse_gas_hourly(Path(csv_path)))


# ============================================================================================ coingecko
#: CoinGecko API ids -> the symbols the lake uses
COINGECKO_IDS: dict[str, str] = {
    "ethereum": "ETH", "weth": "WETH", "staked-ether": "stETH", "wrapped-steth": "wstETH",
    "wrapped-eeth": "weETH", "rocket-pool-eth": "rETH", "coinbase-wrapped-staked-eth": "cbETH",
    "kelp-dao-restaked-eth": "rsETH", "renzo-restaked-eth": "ezETH", "stakewise-v3-oseth": "osETH",
    "ether-fi-staked-eth": "eETH", "restaked-swell-eth": "rswETH", "stader-ethx": "ETHx",
}


def _price_frame(ts: pl.Series, price: pl.Series, base: str, quote: str, source: str,
                 block: pl.Series | None = None) -> pl.DataFrame:
    cols = {"ts": ts, "base": base, "quote": quote, "price": price, "source": source}
    if block is not None:
        cols["block"] = block
    return pl.DataFrame(cols)


def _parse_coingecko(path: Path, base: str | None = None, quote: str | None = None, **_: Any) -> list[Series]:
    if path.suffix.lower() == ".json":
        return _parse_coingecko_json(path, base, quote)
    df = _read_text_table(path)
    cols = set(df.columns)
    if {"symbol", "timestamp"} <= cols and any(c.lower().endswith("_price") for c in df.columns):
        # bhemen/aave-data style: symbol, timestamp (ms), USD_price
        pcol = next(c for c in df.columns if c.lower().endswith("_price"))
        q = quote or pcol[: -len("_price")].upper()
        ts = parse_times(df["timestamp"], path, "timestamp")
        frame = pl.DataFrame({"ts": ts, "symbol": df["symbol"].str.strip_chars(),
                              "price": _numeric_gaps(df, path, pcol)})
    elif {"date", "symbol"} <= cols and any(c.lower().startswith("price_") for c in df.columns):
        # daily long table: date, symbol, price_usd
        pcol = next(c for c in df.columns if c.lower().startswith("price_"))
        q = quote or pcol[len("price_"):].upper()
        frame = pl.DataFrame({"ts": parse_times(df["date"], path, "date"),
                              "symbol": df["symbol"].str.strip_chars(), "price": _numeric_gaps(df, path, pcol)})
    else:
        raise DataError(f"{path}: not a CoinGecko CSV export (expected columns symbol,timestamp,<QUOTE>_price "
                        f"or date,symbol,price_<quote>; found {', '.join(df.columns)})")
    if frame["ts"].null_count():
        i = int(frame["ts"].is_null().arg_max())
        raise DataError(f"{path}: empty time in data row {i + 1}")
    items = []
    for (sym,), g in frame.group_by(["symbol"], maintain_order=True):
        b = base or str(sym)
        src = f"coingecko:{path.stem}"
        # a zero or negative price is "no price", not a price: a gap like an empty cell
        g = g.with_columns(pl.when(pl.col("price") > 0).then(pl.col("price")).otherwise(None).alias("price"))
        kept, info = _drop_missing(g, ["price"], f"{b} price", path)
        items.append(_series("prices", _price_frame(kept["ts"], kept["price"], b, q, src),
                             f"coingecko-{path.stem}-{b}-{q}", src, path, info))
    return items


def _parse_coingecko_json(path: Path, base: str | None, quote: str | None) -> list[Series]:
    doc = _read_json(path)
    if not isinstance(doc, dict) or "prices" not in doc:
        raise DataError(f"{path}: not a CoinGecko market_chart response (no 'prices' key)")
    if base is None:
        stem = path.stem.split(".")[0]
        base = COINGECKO_IDS.get(stem) or COINGECKO_IDS.get(stem.split("_")[0])
        if base is None:
            raise DataError(f"{path}: which coin is this? pass --set base=SYMBOL (the file name {path.name!r} is "
                            f"not a known CoinGecko id: {', '.join(sorted(COINGECKO_IDS))})")
    q = (quote or "USD").upper()
    return [_market_chart_series(doc, path, base, q)]


def _market_chart_series(doc: dict, path: Path | str, base: str, quote: str, name: str | None = None) -> Series:
    pts = doc["prices"]
    if not isinstance(pts, list) or not all(isinstance(p, list) and len(p) == 2 for p in pts):
        raise DataError(f"{path}: 'prices' must be a list of [ms, price] pairs")
    if not pts:
        raise DataError(f"{path}: 'prices' is empty")
    ms = pl.Series([p[0] for p in pts], dtype=pl.Float64)
    if ms.null_count():
        raise DataError(f"{path}: a 'prices' entry has no time")
    ts = parse_times(ms, path, "prices[][0]", "ms")
    price = pl.Series([p[1] for p in pts], dtype=pl.Float64, strict=False)
    frame = pl.DataFrame({"ts": ts, "price": price})
    kept, info = _drop_missing(frame, ["price"], f"{base} price", path)
    src = "coingecko:market_chart"
    return _series("prices", _price_frame(kept["ts"], kept["price"], base, quote, src),
                   name or f"coingecko-{base}-{quote}", src, path, info)


# ============================================================================================ aave snapshots
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


def _parse_aave_snapshots(path: Path, protocol: str = "aave-v3", **_: Any) -> list[Series]:
    df = _read_text_table(path, SNAPSHOT_COLUMNS)
    tcol = next((c for c in ("snapshot_generated_at", "commit_time_utc", "timestamp") if c in df.columns), None)
    if tcol is None:
        raise DataError(f"{path}: missing a time column (snapshot_generated_at or commit_time_utc)")
    ts = parse_times(df[tcol], path, tcol)
    if ts.null_count():
        raise DataError(f"{path}: column {tcol!r} has an empty time (data row {int(ts.is_null().arg_max()) + 1})")
    notes: list[str] = []
    num = {c: _numeric_gaps(df, path, c) for c in SNAPSHOT_COLUMNS if c != "symbol"}
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
        rk, rinfo = _drop_missing(g, ["supply_apr", "borrow_apr"], f"{asset} rate", path)
        rates = rk.select("ts", pl.lit(protocol).alias("protocol"), "asset", "supply_apr", "borrow_apr",
                          "supply_index", "borrow_index")
        items.append(_series("rates", rates, f"snapshots-{protocol}-{asset}", src, path, rinfo))
        pk, pinfo = _drop_missing(g, ["ltv", "liquidation_threshold", "liquidation_bonus"],
                                  f"{asset} risk parameter", path)
        # a step function: keep the rows where a parameter changes (and the first)
        changed = pk.select(pl.any_horizontal([pl.col(c).ne(pl.col(c).shift(1)).fill_null(True)
                                               for c in ("ltv", "liquidation_threshold", "liquidation_bonus")]))
        pk = pk.filter(changed.to_series())
        params = pk.select("ts", pl.lit(protocol).alias("protocol"), "asset",
                           pl.lit(None, dtype=pl.String).alias("emode"), "ltv", "liquidation_threshold",
                           "liquidation_bonus")
        items.append(_series("market_params", params, f"snapshots-{protocol}-{asset}-params", src, path, pinfo))
    items[0].notes.extend(notes)
    items[0].notes.append(f"{path.name}: market_params are the non-E-mode values (emode null); the file's "
                          "liquidation_protocol_fee / caps / emode_category are mis-decoded and not imported")
    return items


def import_aave_snapshots(csv_path: str | os.PathLike, lake: str | os.PathLike,
                          protocol: str = "aave-v3") -> ImportReport:
    """Import the Aave v3 daily reserve snapshot table (one row per reserve per snapshot) into ``rates``
    (supply/borrow APR fractions, indices; ts = snapshot_generated_at) and ``market_params`` (non-E-mode LTV,
    LT, bonus as fractions; only the rows where a parameter changes)."""
    return commit(lake, _parse_aave_snapshots(Path(csv_path), protocol))


# ============================================================================================ comet
#: Comet feeds that answer in USD (the others in this dataset answer in ETH per collateral token)
COMET_USD = frozenset({"WETH", "ETH", "wstETH"})


def _parse_comet(path: Path, quote: str | None = None, protocol: str = "compound-v3", **_: Any) -> list[Series]:
    df = _read_text_table(path, ["symbol", "timestamp"])
    pcol = next((c for c in df.columns if c.lower().endswith("price")), None)
    if pcol is None:
        raise DataError(f"{path}: missing a price column (USD_price)")
    asset = _single(df, path, "symbol")
    ts = parse_times(df["timestamp"], path, "timestamp")
    price = _numeric_gaps(df, path, pcol)
    q = quote or ("USD" if asset in COMET_USD else "ETH")
    med = float(price.drop_nulls().median() or 0.0)
    if q == "ETH" and med > 20:
        raise DataError(f"{path}: {asset} prices look like USD (median {med:.2f}), not ETH per {asset}; "
                        "pass --set quote=USD")
    if q == "USD" and 0 < med < 20 and asset not in ("USDC", "USDT", "DAI"):
        raise DataError(f"{path}: {asset} prices look like ETH per token (median {med:.4f}), not USD; "
                        "pass --set quote=ETH")
    frame = pl.DataFrame({"ts": ts, "price": price})
    kept, info = _drop_missing(frame, ["price"], f"{asset} oracle price", path)
    src = f"comet:{asset}"
    items = [_series("oracle_prices", kept.select("ts", pl.lit(protocol).alias("protocol"),
                                                  pl.lit(asset).alias("asset"), pl.lit(q).alias("quote"), "price"),
                     f"comet-{asset}-{q}", src, path, info)]
    if asset in ("WETH", "ETH") and q == "USD":
        items.append(_series("prices", _price_frame(kept["ts"], kept["price"], asset, "USD", "comet:chainlink"),
                             f"comet-{asset}-USD", "comet:chainlink", path))
    return items


def import_comet(csv_path: str | os.PathLike, lake: str | os.PathLike, quote: str | None = None) -> ImportReport:
    """Import a Comet ``getPrice`` CSV (symbol, timestamp [s], USD_price) into ``oracle_prices`` protocol
    compound-v3 (quote USD for WETH and wstETH, ETH for the other collateral feeds, as the dataset documents;
    empty cells before the asset was listed are gaps) and, for WETH, ``prices`` WETH/USD."""
    return commit(lake, _parse_comet(Path(csv_path), quote))


# ============================================================================================ etherscan
def _parse_etherscan(path: Path, kind: str | None = None, **_: Any) -> list[Series]:
    df = _read_text_table(path)
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
    v = _numeric_gaps(df, path, vcol)
    # Etherscan writes 0 for days without data (2015): those are gaps, not zero prices
    zero = int((v == 0).sum())
    v = pl.select(pl.when(v == 0).then(None).otherwise(v)).to_series()
    frame = pl.DataFrame({"ts": ts, "v": v})
    notes = [f"{path.name}: {zero} zero value(s) read as 'no data' (gaps)"] if zero else []
    if kind == "gas-price":
        unit = "wei" if "wei" in vcol.lower() else "gwei"
        kept, info = _drop_missing(frame, ["v"], "gas price", path)
        gas = kept.select("ts", convert(kept["v"], unit, "base_fee_gwei", path).alias("base_fee_gwei"))
        notes.append(f"{path.name}: the daily average gas price paid (base fee + tip) goes to base_fee_gwei "
                     f"(converted from {unit}); priority_fee_gwei is left null")
        return [_series("gas", gas, "etherscan-avg-gas-price", "etherscan:avg-gas-price", path, info, notes)]
    if kind == "ether-price":
        kept, info = _drop_missing(frame, ["v"], "ETH price", path)
        return [_series("prices", _price_frame(kept["ts"], kept["v"], "ETH", "USD", "etherscan"),
                        "etherscan-ETH-USD", "etherscan", path, info, notes)]
    if kind == "gas-used":
        raise DataError(f"{path}: total gas used per day has no lake table (import export-AvgGasPrice.csv for "
                        "gas and export-EtherPrice.csv for ETH/USD)")
    raise DataError(f"{path}: unknown Etherscan kind {kind!r} (gas-price | ether-price)")


def import_etherscan(csv_path: str | os.PathLike, lake: str | os.PathLike, kind: str | None = None) -> ImportReport:
    """Import an Etherscan daily chart export: AvgGasPrice ("Value (Wei)") -> ``gas`` base_fee_gwei (the
    average price paid, wei / 1e9), EtherPrice -> ``prices`` ETH/USD. Zero values (2015) are gaps."""
    return commit(lake, _parse_etherscan(Path(csv_path), kind))


# ============================================================================================ curve
CURVE_STETH_POOL = "0xDC24316b9AE028F1497c275EB9192a3Ea0f67022"


def _parse_curve(path: Path, pool: str | None = None, token0: str = "ETH", token1: str = "stETH",
                 amp: float | None = None, **_: Any) -> list[Series]:
    df = _read_text_table(path, ["UNIX TimeStamp", "ETH Balance", "stETH Balance"])
    ts = parse_times(df["UNIX TimeStamp"], path, "UNIX TimeStamp", "s")
    r0 = _numeric_gaps(df, path, "ETH Balance")
    r1 = _numeric_gaps(df, path, "stETH Balance")
    frame = pl.DataFrame({"ts": ts, "reserve0": convert(r0, "wei", "reserve0"),
                          "reserve1": convert(r1, "wei", "reserve1")}).sort("ts")
    kept, info = _drop_missing(frame, ["reserve0", "reserve1"], "pool balance", path)
    liq = kept.select("ts", pl.lit(pool or f"curve:{CURVE_STETH_POOL}").alias("pool"),
                      pl.lit(token0).alias("token0"), pl.lit(token1).alias("token1"), "reserve0", "reserve1",
                      pl.lit(amp, dtype=pl.Float64).alias("amp"))
    note = (f"{path.name}: rows are newest first in the file (sorted here); balances in wei / 1e18; "
            "the pool's A is not in the file (amp null)")
    return [_series("liquidity", liq, "curve-steth-ETH-stETH", "curve:pool-balances", path, info, [note])]


def import_curve(csv_path: str | os.PathLike, lake: str | os.PathLike, **opts: Any) -> ImportReport:
    """Curve pool balances (UNIX TimeStamp, Virtual Price, stETH Balance, ETH Balance; wei) -> ``liquidity``
    (token0 ETH, token1 stETH, token units). Needs the ``liquidity`` table in lake.TABLES."""
    return commit(lake, _parse_curve(Path(csv_path), **opts))


# ============================================================================================ rocket pool
def _parse_rocketpool(path: Path, **_: Any) -> list[Series]:
    df = _read_text_table(path, ["block_number", "timestamp", "total_eth_wei", "reth_supply_wei"])
    block = _numeric(df, path, "block_number", pl.Int64)
    ts = parse_times(df["timestamp"], path, "timestamp", "s")
    total = _numeric_gaps(df, path, "total_eth_wei")
    supply = _numeric_gaps(df, path, "reth_supply_wei")
    frame = pl.DataFrame({"ts": ts, "block": block, "rate": utilization(total, supply)})
    out_of_order = int((frame["ts"].diff() < 0).sum())
    repeated = frame.height - frame.unique(subset=["block"]).height
    frame = frame.unique(subset=["block"], keep="last", maintain_order=True).sort("block")
    kept, info = _drop_missing(frame, ["rate"], "rETH rate (zero supply)", path)
    # one value per time: should two reports share a block time, the later reference block wins
    kept = kept.unique(subset=["ts"], keep="last", maintain_order=True).sort("ts")
    notes = [f"{path.name}: rate = total_eth_wei / reth_supply_wei, ts = the event's block time; "
             f"{repeated} repeated report(s) of the same reference block dropped, the file goes back in time at "
             f"{out_of_order} place(s) (sorted by reference block)"]
    xr = kept.select("ts", pl.lit("rETH").alias("token"), pl.lit("ETH").alias("underlying"), "rate",
                     pl.lit("rocketpool:balances").alias("source"))
    return [_series("exchange_rates", xr, "rocketpool-rETH-ETH", "rocketpool:balances", path, info, notes)]


def import_rocketpool(csv_path: str | os.PathLike, lake: str | os.PathLike) -> ImportReport:
    """Rocket Pool BalancesUpdated reports -> ``exchange_rates`` rETH/ETH = total ETH / rETH supply (the
    all-zero first report is a gap). The reference block is not the event's block, so ``block`` is null."""
    return commit(lake, _parse_rocketpool(Path(csv_path)))


# ============================================================================================ ether.fi
def _parse_etherfi(path: Path, token: str = "eETH", **_: Any) -> list[Series]:
    df = _read_text_table(path)
    cols = set(df.columns)
    name = path.name
    if {"Timestamp", "Base", "Reward"} <= cols:           # daily APY chart, percent
        ts = parse_times(df["Timestamp"], path, "Timestamp", "s")
        items = []
        for col, kind in (("Base", "staking_apy"), ("Reward", "reward_apy")):
            frame = pl.DataFrame({"ts": ts, "v": _numeric_gaps(df, path, col)})
            kept, info = _drop_missing(frame, ["v"], f"{col} APY", path)
            rew = kept.select("ts", pl.lit(token).alias("token"), pl.lit(kind).alias("kind"),
                              apy_to_apr(kept["v"] / 100.0).alias("apr"),
                              pl.lit(None, dtype=pl.Float64).alias("amount"),
                              pl.lit("apr").alias("unit"))
            items.append(_series("rewards", rew, f"etherfi-{token}-{kind}", "etherfi:apy-chart", path, info,
                                 [f"{name}: {col} is an APY in percent -> APR fraction ln(1 + apy/100)"]))
        return items
    if {"staking_period_start", "staking_period_end", "eigen_per_eeth_weekly"} <= cols:
        ts = parse_times(df["staking_period_end"], path, "staking_period_end")
        frame = pl.DataFrame({"ts": ts, "v": _numeric_gaps(df, path, "eigen_per_eeth_weekly")})
        kept, info = _drop_missing(frame, ["v"], "EIGEN distribution", path)
        rew = kept.select("ts", pl.lit(token).alias("token"), pl.lit("EIGEN").alias("kind"),
                          pl.lit(None, dtype=pl.Float64).alias("apr"), pl.col("v").alias("amount"),
                          pl.lit("EIGEN per eETH per week (as published)").alias("unit"))
        return [_series("rewards", rew, f"etherfi-{token}-EIGEN", "etherfi:eigen-distributions", path, info)]
    if {"top_up_date", "ethfi_per_eeth_distributed"} <= cols:
        ts = parse_times(df["top_up_date"], path, "top_up_date")
        frame = pl.DataFrame({"ts": ts, "v": _numeric_gaps(df, path, "ethfi_per_eeth_distributed")})
        kept, info = _drop_missing(frame, ["v"], "ETHFI top-up", path)
        rew = kept.select("ts", pl.lit(token).alias("token"), pl.lit("ETHFI").alias("kind"),
                          pl.lit(None, dtype=pl.Float64).alias("apr"), pl.col("v").alias("amount"),
                          pl.lit("ETHFI per eETH").alias("unit"))
        return [_series("rewards", rew, f"etherfi-{token}-ETHFI", "etherfi:ethfi-topups", path, info)]
    if {"reward_per_eeth", "extra_yield_pct"} <= cols or "daily_yield_final" in cols:
        raise DataError(f"{path}: this ether.fi table holds estimates / the author's modelled yields "
                        "(ranges such as '~5–15', an assumed EIGEN price), not data; import the raw tables "
                        "(bar-chart-supply-apy, eigen_distributions_raw, ethfi_topups_raw)")
    raise DataError(f"{path}: not a known ether.fi reward table (columns: {', '.join(df.columns)})")


def import_etherfi(csv_path: str | os.PathLike, lake: str | os.PathLike, token: str = "eETH") -> ImportReport:
    """ether.fi reward tables -> ``rewards``: the daily APY chart (Base, Reward in percent -> APR fractions),
    the weekly EIGEN distributions (EIGEN per eETH), the ETHFI top-ups (ETHFI per eETH). Needs the
    ``rewards`` table in lake.TABLES."""
    return commit(lake, _parse_etherfi(Path(csv_path), token))


# ============================================================================================ defillama
def _llama_kind(doc: Any) -> str:
    if isinstance(doc, dict) and isinstance(doc.get("coins"), dict):
        return "coins"
    rows = doc.get("data") if isinstance(doc, dict) else doc
    if isinstance(rows, list) and rows and isinstance(rows[0], dict):
        keys = set().union(*(r.keys() for r in rows[:50]))
        if {"totalSupplyUsd", "totalBorrowUsd"} & keys or "apyBaseBorrow" in keys:
            return "lend-borrow"
        if {"apy", "apyBase", "tvlUsd"} & keys:
            return "yields"
    return "unknown"


def _llama_rows(doc: Any, path: Path) -> list[dict]:
    if isinstance(doc, dict) and doc.get("status") not in (None, "success"):
        raise DataError(f"{path}: DefiLlama answered status {doc.get('status')!r}")
    rows = doc.get("data") if isinstance(doc, dict) else doc
    if not isinstance(rows, list) or not rows:
        raise DataError(f"{path}: no data rows")
    return rows


def _col(rows: list[dict], key: str) -> pl.Series:
    return pl.Series(key, [r.get(key) for r in rows], dtype=pl.Float64, strict=False)


def _parse_defillama_doc(path: Path, doc: Any, opts: Mapping[str, Any]) -> tuple[str, list[Series] | pl.DataFrame]:
    kind = _llama_kind(doc)
    if kind == "coins":
        items = []
        for coin, entry in doc["coins"].items():
            pts = entry.get("prices") or []
            if not pts:
                raise DataError(f"{path}: coin {coin!r} has no prices")
            base = opts.get("base") or _llama_symbol(coin, entry.get("symbol"))
            ts = parse_times(pl.Series([p.get("timestamp") for p in pts], dtype=pl.Float64), path, "timestamp", "s")
            frame = pl.DataFrame({"ts": ts, "price": pl.Series([p.get("price") for p in pts], dtype=pl.Float64,
                                                              strict=False)})
            kept, info = _drop_missing(frame, ["price"], f"{base} price", path)
            conf = [p.get("confidence") for p in pts if p.get("confidence") is not None]
            notes = []
            if conf and min(conf) < 0.9:
                notes.append(f"{path.name}: {coin} has prices with DefiLlama confidence down to {min(conf):.2f}")
            q = str(opts.get("quote") or "USD")
            items.append(_series("prices", _price_frame(kept["ts"], kept["price"], base, q, "defillama:coins"),
                                 f"defillama-{base}-{q}", "defillama:coins", path, info, notes))
        return kind, items
    if kind in ("lend-borrow", "yields"):
        rows = _llama_rows(doc, path)
        ts = parse_times(pl.Series([r.get("timestamp") for r in rows]), path, "timestamp")
        frame = pl.DataFrame({"ts": ts, **{k: _col(rows, k) for k in
                                           ("apyBase", "apy", "apyBaseBorrow", "totalSupplyUsd", "totalBorrowUsd",
                                            "tvlUsd")}})
        return kind, frame
    raise DataError(f"{path}: not a DefiLlama coins chart, yields chart or lend-borrow chart")


_LLAMA_SYMBOLS = {"WETH": "WETH", "WSTETH": "wstETH", "STETH": "stETH", "WEETH": "weETH", "RETH": "rETH",
                  "CBETH": "cbETH", "EZETH": "ezETH", "RSETH": "rsETH", "ETH": "ETH", "OSETH": "osETH"}


def _llama_symbol(coin: str, symbol: str | None) -> str:
    if coin.startswith("coingecko:") and coin.split(":", 1)[1] in COINGECKO_IDS:
        return COINGECKO_IDS[coin.split(":", 1)[1]]
    if symbol:
        return _LLAMA_SYMBOLS.get(symbol.upper(), symbol)
    raise DataError(f"coin {coin!r} has no symbol: pass --set base=SYMBOL")


def _parse_defillama(paths: Sequence[Path], **opts: Any) -> list[Series]:
    items: list[Series] = []
    lend: list[tuple[Path, pl.DataFrame]] = []
    yields: list[tuple[Path, pl.DataFrame]] = []
    for path in paths:
        kind, out = _parse_defillama_doc(path, _read_json(path), opts)
        if kind == "coins":
            items.extend(out)
        elif kind == "lend-borrow":
            lend.append((path, out))
        else:
            yields.append((path, out))
    for path, f in lend:
        protocol, asset = opts.get("protocol"), opts.get("asset")
        if not protocol or not asset:
            raise DataError(f"{path}: a lend-borrow chart needs --set protocol=... --set asset=... "
                            "(DefiLlama pools are UUIDs)")
        supply = f["apyBase"]
        f = f.with_columns(supply_apr=apy_to_apr(supply / 100.0), borrow_apr=apy_to_apr(f["apyBaseBorrow"] / 100.0),
                           utilization=utilization(f["totalBorrowUsd"], f["totalSupplyUsd"]))
        kept, info = _drop_missing(f, ["supply_apr", "borrow_apr"], f"{asset} APY", path)
        rates = kept.select("ts", pl.lit(protocol).alias("protocol"), pl.lit(asset).alias("asset"), "supply_apr",
                            "borrow_apr", "utilization")
        items.append(_series("rates", rates, f"defillama-{protocol}-{asset}", "defillama:lend-borrow", path, info,
                             [f"{path.name}: apyBase / apyBaseBorrow (percent APY) -> APR ln(1 + apy); "
                              "utilization = totalBorrowUsd / totalSupplyUsd"]))
    for path, f in yields:
        token = opts.get("token")
        if not token:
            raise DataError(f"{path}: a yields chart has only the supply APY (the lake's rates need the borrow "
                            "APR too: import the pool's lend-borrow chart); to turn a staking pool's APY into an "
                            "exchange-rate path pass --set token=SYMBOL [--set underlying=ETH]")
        col = "apyBase" if f["apyBase"].drop_nulls().len() else "apy"
        kept, info = _drop_missing(f.select("ts", pl.col(col).alias("y")), ["y"], f"{token} APY", path)
        kept = kept.sort("ts")
        apr = apy_to_apr(kept["y"] / 100.0).to_numpy()
        t = kept["ts"].to_numpy()
        # the rate grows at the APR in force since the previous point, from 1.0 at the first point
        growth = np.concatenate([[0.0], np.cumsum(apr[:-1] * np.diff(t) / YEAR)])
        rate = float(opts.get("anchor", 1.0)) * np.exp(growth)
        und = str(opts.get("underlying") or "ETH")
        xr = pl.DataFrame({"ts": t, "token": token, "underlying": und, "rate": rate,
                           "source": "defillama:yields-compounded"})
        items.append(_series("exchange_rates", xr, f"defillama-{token}-{und}-compounded",
                             "defillama:yields-compounded", path, info,
                             [f"{path.name}: exchange rate DERIVED by compounding {col} (percent APY) from "
                              f"{float(opts.get('anchor', 1.0)):g} at the first point; not an on-chain rate"]))
    return items


def import_defillama(paths: Sequence[str | os.PathLike] | str | os.PathLike, lake: str | os.PathLike,
                     **opts: Any) -> ImportReport:
    """DefiLlama JSON: a coins chart (``{"coins": {"chain:addr": {"symbol", "prices": [{"timestamp",
    "price"}]}}}``) -> ``prices`` SYMBOL/USD; a lend-borrow chart (``{"status", "data": [{"timestamp",
    "totalSupplyUsd", "totalBorrowUsd", "apyBase", "apyBaseBorrow", ...}]}``, needs ``protocol`` and
    ``asset``) -> ``rates``; a yields chart (``{"data": [{"timestamp", "tvlUsd", "apy", "apyBase", ...}]}``,
    needs ``token``) -> ``exchange_rates`` compounded from the base APY."""
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    return commit(lake, _parse_defillama([Path(p) for p in paths], **opts))


# ============================================================================================ generic / dune
def parse_mapping(items: Iterable[str], flag: str = "--map") -> dict[str, tuple[str, str | None]]:
    """``COL=SRC[:UNIT]`` items -> {lake column: (source column, unit or None)}."""
    out: dict[str, tuple[str, str | None]] = {}
    for item in items:
        if "=" not in item:
            raise DataError(f"{flag} {item!r}: expected LAKE_COLUMN=SOURCE_COLUMN[:UNIT]")
        k, v = item.split("=", 1)
        k, v = k.strip(), v.strip()
        unit = None
        if ":" in v:
            v, unit = v.rsplit(":", 1)
            v, unit = v.strip(), unit.strip()
        if not k or not v:
            raise DataError(f"{flag} {item!r}: empty column name")
        out[k] = (v, unit)
    return out


def _frame_from_rows(rows: list[dict], path: Path) -> pl.DataFrame:
    if not rows:
        raise DataError(f"{path}: no rows")
    cols = list(dict.fromkeys(k for r in rows for k in r))
    return pl.DataFrame({c: [None if r.get(c) is None else str(r.get(c)) for r in rows] for c in cols},
                        schema={c: pl.String for c in cols})


def _read_any(path: Path) -> pl.DataFrame:
    """A CSV (text columns) or a JSON list of objects / Dune API result (``{"result": {"rows": [...]}}``)."""
    if path.suffix.lower() == ".json":
        doc = _read_json(path)
        if isinstance(doc, dict) and isinstance(doc.get("result"), dict):
            doc = doc["result"].get("rows")
        elif isinstance(doc, dict) and isinstance(doc.get("data"), list):
            doc = doc["data"]
        if not isinstance(doc, list) or not all(isinstance(r, dict) for r in doc):
            raise DataError(f"{path}: expected a list of row objects (or a Dune result with result.rows)")
        return _frame_from_rows(doc, path)
    return _read_text_table(path)


#: pseudo-columns of the generic importer: rates utilization from totals
_TOTALS = ("supplied", "borrowed")


def _parse_mapped(path: Path, table: str | None = None, mapping: Mapping[str, tuple[str, str | None]] | None = None,
                  sets: Mapping[str, Any] | None = None, origin: str = "csv", **_: Any) -> list[Series]:
    if not table:
        raise DataError(f"{path}: the {origin} importer needs --table (one of: {', '.join(_lake.TABLES)})")
    sch = _lake.TABLES.get(table) or PROPOSED_TABLES.get(table)
    if sch is None:
        raise DataError(f"unknown lake table {table!r} (tables: {', '.join(_lake.TABLES)})")
    mapping = dict(mapping or {})
    sets = dict(sets or {})
    df = _read_any(path)
    names = sch.names
    for col in mapping:
        if col not in names and not (table == "rates" and col in _TOTALS):
            raise DataError(f"--map {col}=...: {table} has no column {col!r} (columns: {', '.join(names)})")
    for col in sets:
        if col not in names:
            raise DataError(f"--set {col}=...: {table} has no column {col!r} (columns: {', '.join(names)})")
    # a lake column named like a file column maps itself unless mapped or set
    for col in [*names, *(_TOTALS if table == "rates" else ())]:
        if col not in mapping and col not in sets and col in df.columns:
            mapping[col] = (col, None)
    for src, _unit in mapping.values():
        if src not in df.columns:
            raise DataError(f"{path}: missing column {src!r} (columns: {', '.join(df.columns)})")
    if "ts" not in mapping:
        raise DataError(f"{path}: no time column: pass --map ts=COLUMN")
    notes: list[str] = []
    out: dict[str, pl.Series] = {}
    src_col, unit = mapping["ts"]
    out["ts"] = parse_times(df[src_col], path, src_col, unit)
    value_cols: list[str] = []
    for col in [*names, *(_TOTALS if table == "rates" else ())]:
        if col == "ts":
            continue
        if col in mapping:
            scol, unit = mapping[col]
            field_type = sch.field(col).type if col in names else pa.float64()
            if pa.types.is_string(field_type):
                out[col] = df[scol].str.strip_chars()
            elif pa.types.is_integer(field_type):
                v = _numeric_gaps(df, path, scol)
                out[col] = v.cast(pl.Int64)
            else:
                v = _numeric_gaps(df, path, scol)
                if unit:
                    v = convert(v, unit, col, path)
                    notes.append(f"{path.name}: {col} <- {scol} converted from {unit}")
                out[col] = v
                if col in names and not sch.field(col).nullable:
                    value_cols.append(col)
        elif col in sets:
            field_type = sch.field(col).type
            val = sets[col]
            if pa.types.is_floating(field_type):
                try:
                    val = float(val)
                except (TypeError, ValueError):
                    raise DataError(f"--set {col}={val!r}: must be a number") from None
            out[col] = pl.Series(col, [val] * df.height)
    if table == "rates" and "utilization" not in out and all(t in out for t in _TOTALS):
        out["utilization"] = utilization(out["borrowed"], out["supplied"])
        notes.append(f"{path.name}: utilization = borrowed / supplied")
    for t in _TOTALS:
        out.pop(t, None)
    missing = [f.name for f in sch if not f.nullable and f.name not in out]
    if "source" in missing:
        out["source"] = pl.Series("source", [f"{origin}:{path.stem}"] * df.height)
        missing.remove("source")
    if missing:
        raise DataError(f"{path}: {table} needs column(s) {', '.join(missing)}: pass --map COL=SOURCE_COLUMN or "
                        "--set COL=VALUE")
    frame = pl.DataFrame(out)
    if frame["ts"].null_count():
        i = int(frame["ts"].is_null().arg_max())
        raise DataError(f"{path}: empty time in column {mapping['ts'][0]!r} (data row {i + 1})")
    for f in sch:
        if not f.nullable and pa.types.is_string(f.type) and frame[f.name].null_count():
            i = int(frame[f.name].is_null().arg_max())
            raise DataError(f"{path}: {table}.{f.name} is empty in data row {i + 1}")
    kept, info = _drop_missing(frame, value_cols, "/".join(value_cols), path)
    source = str(sets.get("source") or (kept["source"][0] if "source" in kept.columns and kept.height else
                                         f"{origin}:{path.stem}"))
    return [_series(table, kept, f"{origin}-{path.stem}-{table}", source, path, info, notes)]


def import_csv(path: str | os.PathLike, lake: str | os.PathLike, table: str,
               mapping: Mapping[str, tuple[str, str | None]] | Iterable[str] | None = None,
               sets: Mapping[str, Any] | None = None) -> ImportReport:
    """A generic CSV (or JSON rows) into ``table``: ``mapping`` {lake column: (file column, unit)} (or
    ``["ts=time", "price=close"]`` strings), ``sets`` {lake column: constant}. Lake columns named like a
    file column map themselves. For ``rates``, ``supplied`` / ``borrowed`` totals give the utilization."""
    if mapping is not None and not isinstance(mapping, Mapping):
        mapping = parse_mapping(mapping)
    return commit(lake, _parse_mapped(Path(path), table, mapping, sets, "csv"))


def import_dune(path: str | os.PathLike, lake: str | os.PathLike, table: str,
                mapping: Mapping[str, tuple[str, str | None]] | Iterable[str] | None = None,
                sets: Mapping[str, Any] | None = None) -> ImportReport:
    """A Dune query export (CSV, or the API's JSON ``{"result": {"rows": [...]}}``; times like
    '2024-05-12 00:00:00.000 UTC') with a column mapping, as :func:`import_csv`."""
    if mapping is not None and not isinstance(mapping, Mapping):
        mapping = parse_mapping(mapping)
    return commit(lake, _parse_mapped(Path(path), table, mapping, sets, "dune"))


# ============================================================================================ registry
def _sets_only(fn, allowed):
    def run(paths, sets=None, **opts):
        sets = dict(sets or {})
        extra = sorted(k for k, v in opts.items() if v not in (None, {}, ()))
        bad = sorted(set(sets) - set(allowed))
        if extra or bad:
            raise DataError(f"option(s) {', '.join(extra + [f'--set {b}' for b in bad])} do not apply to this "
                            f"source (--set takes: {', '.join(allowed) or 'nothing'})")
        out: list[Series] = []
        for p in paths:
            out.extend(fn(Path(p), **sets))
        return out
    return run


#: source name -> (parser(paths, table=, mapping=, sets=) -> [Series], one-line description)
SOURCES: dict[str, tuple[Callable[..., list[Series]], str]] = {
    "coingecko": (_sets_only(_parse_coingecko, ("base", "quote")),
                  "CoinGecko CSV (ms or s timestamps; or date,symbol,price_usd) or market_chart JSON -> prices"),
    "aavescan": (_sets_only(lambda p, protocol="aave-v3": _parse_aavescan(p, protocol), ("protocol",)),
                 "AaveScan reserve export -> rates, oracle_prices (+ prices WETH/USD)"),
    "aave-snapshots": (_sets_only(_parse_aave_snapshots, ("protocol",)),
                       "Aave v3 daily reserve snapshots -> rates, market_params (non-E-mode)"),
    "comet": (_sets_only(_parse_comet, ("quote", "protocol")),
              "Compound v3 oracle price CSV -> oracle_prices compound-v3 (+ prices WETH/USD)"),
    "etherscan": (_sets_only(_parse_etherscan, ("kind",)),
                  "Etherscan chart export: AvgGasPrice -> gas, EtherPrice -> prices ETH/USD"),
    "gas-hourly": (_sets_only(lambda p: _parse_gas_hourly(p), ()), "hourly gas samples -> gas"),
    "peg-hourly": (_sets_only(lambda p: _parse_peg(p), ()),
                   "LST peg analysis -> prices TOKEN/WETH, exchange_rates TOKEN/ETH"),
    "curve": (_sets_only(_parse_curve, ("pool", "token0", "token1", "amp")),
              "Curve pool balances -> liquidity (table not in the lake yet)"),
    "rocketpool": (_sets_only(_parse_rocketpool, ()), "Rocket Pool balance reports -> exchange_rates rETH/ETH"),
    "etherfi": (_sets_only(_parse_etherfi, ("token",)),
                "ether.fi reward tables -> rewards (table not in the lake yet)"),
    "defillama": (lambda paths, sets=None, **o: _reject_map(o, "defillama") or _parse_defillama(
        [Path(p) for p in paths], **dict(sets or {})),
                  "DefiLlama coins chart -> prices; lend-borrow chart -> rates; yields chart -> exchange_rates"),
    "dune": (lambda paths, table=None, mapping=None, sets=None: [
        s for p in paths for s in _parse_mapped(Path(p), table, mapping, sets, "dune")],
             "Dune query export (CSV or API JSON) with --table/--map/--set"),
    "csv": (lambda paths, table=None, mapping=None, sets=None: [
        s for p in paths for s in _parse_mapped(Path(p), table, mapping, sets, "csv")],
            "any CSV with --table/--map/--set"),
}


def _reject_map(opts: Mapping[str, Any], source: str) -> None:
    extra = sorted(k for k, v in opts.items() if v not in (None, {}, ()))
    if extra:
        raise DataError(f"option(s) {', '.join(extra)} do not apply to {source} (use --set)")


def normalise(source: str, paths: Sequence[str | os.PathLike], *, table: str | None = None,
              mapping: Mapping[str, tuple[str, str | None]] | None = None,
              sets: Mapping[str, Any] | None = None) -> list[Series]:
    """Parse and convert ``paths`` of ``source`` without writing anything (see :func:`import_files`)."""
    if source not in SOURCES:
        raise DataError(f"unknown import source {source!r}; choose one of: {', '.join(SOURCES)}")
    if not paths:
        raise DataError(f"{source}: no files given")
    parser = SOURCES[source][0]
    paths = [Path(p) for p in paths]
    if source in ("csv", "dune"):
        return parser(paths, table=table, mapping=mapping, sets=sets)
    return parser(paths, sets=sets, table=table, mapping=mapping)


def import_files(source: str, paths: Sequence[str | os.PathLike], lake: str | os.PathLike, *,
                 table: str | None = None, mapping: Mapping[str, tuple[str, str | None]] | None = None,
                 sets: Mapping[str, Any] | None = None) -> ImportReport:
    """Import every file of ``paths`` (all parsed and validated before the first write) from ``source``."""
    return commit(lake, normalise(source, paths, table=table, mapping=mapping, sets=sets))


# ============================================================================================ derived series
def _one_source(df: pl.DataFrame, what: str, source: str | None) -> pl.DataFrame:
    if source is not None:
        df = df.filter(pl.col("source") == source)
        if df.height == 0:
            raise DataError(f"prices {what}: no rows with source {source!r}")
        return df
    sources = sorted(df["source"].unique().to_list())
    if len(sources) > 1:
        raise DataError(f"prices {what}: several sources ({', '.join(sources)}); choose one")
    return df


def hourly_last(ts: np.ndarray | pl.Series, values: pl.Series, freq: int = HOUR) -> pl.DataFrame:
    """Floor ``ts`` to ``freq`` seconds and keep the last value in each bucket."""
    f = pl.DataFrame({"ts": pl.Series(ts, dtype=pl.Int64), "v": values}).sort("ts", maintain_order=True)
    return f.with_columns((pl.col("ts") // freq * freq).alias("h")).group_by("h", maintain_order=True).agg(
        pl.col("v").last()).rename({"h": "ts"}).sort("ts")


def ratio_frame(a: pl.DataFrame, b: pl.DataFrame, freq: int = HOUR) -> pl.DataFrame:
    """``a.price / b.price`` after flooring both to ``freq`` (last value per bucket) and an inner join."""
    ha = hourly_last(a["ts"], a["price"], freq)
    hb = hourly_last(b["ts"], b["price"], freq)
    j = ha.join(hb, on="ts", how="inner", suffix="_b").sort("ts")
    return j.select("ts", (pl.col("v") / pl.col("v_b")).alias("price"))


def constant_growth(ts: np.ndarray, apr: float, anchor_ts: int | None = None, anchor: float = 1.0) -> np.ndarray:
    """``anchor × exp(apr × (ts − anchor_ts) / year)``: an assumed exchange-rate path growing at a constant
    APR (continuous compounding), e.g. a rebasing token's share value."""
    t = np.asarray(ts, dtype=np.float64)
    t0 = float(t[0] if anchor_ts is None else anchor_ts)
    return anchor * np.exp(apr * (t - t0) / YEAR)


def derive_ratio(lake: str | os.PathLike, base: str, quote: str, *, via: str = "USD", freq: int = HOUR,
                 source_base: str | None = None, source_quote: str | None = None,
                 rebase_apr: float | None = None, underlying: str = "ETH", median_of: int = 1) -> ImportReport:
    """Write ``prices`` BASE/QUOTE = (BASE/VIA) / (QUOTE/VIA) from the lake's two price series, both floored
    to ``freq`` seconds (last value in each bucket) and inner-joined, e.g. stETH/WETH from CoinGecko USD.

    With ``rebase_apr`` (a rebasing token such as stETH, whose balance grows instead of its price), the
    token is accounted in shares the way the engine's exchange rate expects: ``exchange_rates``
    BASE/``underlying`` = exp(apr × t / year) from 1.0 at the first point (an ASSUMED constant growth,
    recorded in the source), and the price is ratio × that rate, so price / rate is still the market ratio.

    ``median_of`` > 1 replaces each ratio by the median of the buckets in the trailing ``median_of × freq``
    seconds (it only looks back, so a replay never sees the future), which removes single-sample glitches
    such as CoinGecko's WETH/USD print of 1067 at 2022-06-13 04:02 (a +25 % stETH/ETH ratio for one hour).
    """
    a = _one_source(_lake.read_series(lake, "prices", base=base, quote=via), f"{base}/{via}", source_base)
    b = _one_source(_lake.read_series(lake, "prices", base=quote, quote=via), f"{quote}/{via}", source_quote)
    if a.height == 0 or b.height == 0:
        missing = f"{base}/{via}" if a.height == 0 else f"{quote}/{via}"
        raise DataError(f"prices {missing}: no rows in the lake at {lake}")
    r = ratio_frame(a, b, freq)
    if r.height == 0:
        raise DataError(f"prices {base}/{via} and {quote}/{via} share no {freq}s bucket: nothing to derive")
    src = f"derived:{a['source'][0]}/{b['source'][0]}@{freq}s"
    if median_of > 1:
        r = r.with_columns(pl.col("price").rolling_median_by("ts", window_size=f"{int(median_of) * freq}i"))
        src += f"-median{int(median_of)}"
    items = []
    price = r["price"]
    notes = [f"{base}/{quote}: {r.height} buckets where both {base}/{via} ({a.height} points) and {quote}/{via} "
             f"({b.height} points) have a value"]
    if rebase_apr is not None:
        rate = constant_growth(r["ts"].to_numpy(), float(rebase_apr))
        rsrc = f"assumed:constant-apr-{float(rebase_apr):g}"
        items.append(Series("exchange_rates", pl.DataFrame({"ts": r["ts"], "token": base, "underlying": underlying,
                                                            "rate": rate, "source": rsrc}),
                            _name(f"assumed-{base}-{underlying}-apr-{float(rebase_apr):g}"), rsrc,
                            notes=[f"{base}/{underlying}: ASSUMED exchange rate growing at {float(rebase_apr):.2%}/yr "
                                   "(share accounting of a rebasing token), not data"]))
        price = price * rate
        src += f"*rebase-{float(rebase_apr):g}"
    items.insert(0, Series("prices", r.select("ts", pl.lit(base).alias("base"), pl.lit(quote).alias("quote"),
                                              price.alias("price"), pl.lit(src).alias("source")),
                           _name(f"derived-{base}-{quote}"), src, notes=notes))
    return commit(lake, items)


def derive_oracle_rate(lake: str | os.PathLike, protocol: str, asset: str, *, quote: str = "ETH",
                       exchange_rate: bool = False, freq: int = HOUR) -> ImportReport:
    """The protocol oracle's ASSET/QUOTE ratio: ``oracle_prices`` ASSET/USD ÷ QUOTE/USD of the same protocol
    (WETH and ETH are interchangeable for the quote), matched by exact time, else floored to ``freq``.

    Written as ``oracle_prices`` ASSET/QUOTE (what the ``chainlink`` oracle mode reads). With
    ``exchange_rate=True`` also as ``exchange_rates`` ASSET/ETH (source ``oracle:<protocol>``): right where
    the protocol's oracle is an exchange-rate adapter, e.g. Aave v3's wstETH (stEthPerToken × ETH/USD) and
    weETH since 2023.
    """
    con_rows = _lake.read_series(lake, "oracle_prices", protocol=protocol)
    if con_rows.height == 0:
        raise DataError(f"oracle_prices {protocol}: no rows in the lake at {lake}")
    direct = con_rows.filter((pl.col("asset") == asset) & pl.col("quote").is_in(["ETH", "WETH"]))
    if direct.height and quote in ("ETH", "WETH"):
        r = direct.select("ts", "block", "price")
        items = []
    else:
        a = con_rows.filter((pl.col("asset") == asset) & (pl.col("quote") == "USD"))
        qs = ["ETH", "WETH"] if quote in ("ETH", "WETH") else [quote]
        b = con_rows.filter(pl.col("asset").is_in(qs) & (pl.col("quote") == "USD"))
        if a.height == 0 or b.height == 0:
            missing = f"{asset}/USD" if a.height == 0 else f"{quote}/USD"
            raise DataError(f"oracle_prices {protocol}:{missing}: no rows in the lake at {lake}")
        exact = a.join(b.select("ts", "price"), on="ts", how="inner", suffix="_b")
        if exact.height >= 0.9 * min(a.height, b.height):
            r = exact.select("ts", "block", (pl.col("price") / pl.col("price_b")).alias("price")).sort("ts")
        else:
            r = ratio_frame(a, b, freq).with_columns(pl.lit(None, dtype=pl.Int64).alias("block"))
        oracle = r.select("ts", "block", pl.lit(protocol).alias("protocol"), pl.lit(asset).alias("asset"),
                          pl.lit(quote).alias("quote"), "price")
        items = [Series("oracle_prices", oracle, _name(f"derived-{protocol}-{asset}-{quote}"),
                        f"derived:{protocol}-oracle",
                        notes=[f"{protocol}:{asset}/{quote}: {r.height} points of {asset}/USD ÷ {quote}/USD"])]
    if exchange_rate:
        src = f"oracle:{protocol}"
        xr = r.select("ts", "block", pl.lit(asset).alias("token"), pl.lit("ETH").alias("underlying"),
                      pl.col("price").alias("rate"), pl.lit(src).alias("source"))
        items.append(Series("exchange_rates", xr, _name(f"oracle-{protocol}-{asset}-ETH"), src))
    if not items:
        raise DataError(f"oracle_prices {protocol}:{asset}/{quote} is already in the lake; pass exchange_rate=True "
                        "to write it as an exchange rate")
    return commit(lake, items)


__all__ = [
    "ImportReport", "PROPOSED_TABLES", "SOURCES", "Series", "commit", "constant_growth", "convert",
    "derive_oracle_rate", "derive_ratio", "import_aave_snapshots", "import_aavescan", "import_comet", "import_csv",
    "import_curve", "import_defillama", "import_dune", "import_etherfi", "import_etherscan", "import_files",
    "import_gas_hourly", "import_peg_hourly", "import_rocketpool", "normalise", "parse_mapping", "parse_times",
    "ratio_frame", "utilization",
]
