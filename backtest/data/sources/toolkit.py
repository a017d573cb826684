"""The one toolkit every importer uses: reading text tables and JSON, times, units, gaps, and the checks every
imported frame goes through before anything is written.

Every importer reads its format as published, checks every column it needs (present, numeric, parsable time)
and converts units (wei -> token units or gwei, ray -> fraction, percent -> fraction, APY -> APR, ms -> s)
before anything is written. A malformed file raises a :class:`DataError` naming the file, the column and the
first bad value.

Missing values (empty cells, JSON nulls, and zeros where zero means "no data", e.g. Etherscan's 2015 rows)
never become zeros: :func:`drop_missing` leaves the row out of that series, which is then a gap, and notes how
many values were missing and where.

The ``liquidity`` and ``rewards`` tables of DESIGN.md section 4 are not in :data:`backtest.data.lake.TABLES`
yet; their importers parse and validate against :data:`PROPOSED_TABLES` and then :func:`validate_frame` stops
with a DataError that says so (nothing is written). Once lake.py defines them, the same importers write them
unchanged.
"""
from __future__ import annotations

import datetime as _dt
import json
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import polars as pl
import pyarrow as pa

from backtest.data import lake as _lake
from backtest.errors import DataError


YEAR = 365 * 86400
DAY = 86400
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


def utc_text(ts: int | None) -> str:
    if ts is None:
        return "?"
    return _dt.datetime.fromtimestamp(int(ts), _dt.timezone.utc).strftime("%Y-%m-%d %H:%M")


# ============================================================================================ reading
def _read_table(path: str | os.PathLike, required: Sequence[str], tidy: bool) -> pl.DataFrame:
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    # the strict reader of the original importers leaves polars' default for ragged lines
    opts = {"truncate_ragged_lines": False} if tidy else {}
    try:
        df = pl.read_csv(path, infer_schema=False, **opts)
    except Exception as exc:  # noqa: BLE001 - any parse failure is the file's fault
        raise DataError(f"{path}: cannot read as CSV: {exc}") from exc
    if tidy:
        df = df.rename({c: c.strip().lstrip("\ufeff").strip() for c in df.columns})
    for col in required:
        if col not in df.columns:
            listed = f" (columns: {', '.join(df.columns)})" if tidy else ""
            raise DataError(f"{path}: missing column {col!r}{listed}")
    if df.height == 0:
        raise DataError(f"{path}: no rows")
    return df


def read_csv(path: str | os.PathLike, required: list[str]) -> pl.DataFrame:
    """Read ``path`` with every column as text; DataError when it is unreadable or lacks a column."""
    return _read_table(path, required, tidy=False)


def read_text_table(path: str | os.PathLike, required: Sequence[str] = ()) -> pl.DataFrame:
    """A CSV as text columns with names stripped of surrounding spaces and a BOM (Curve's ' stETH Balance')."""
    return _read_table(path, required, tidy=True)


def read_json(path: str | os.PathLike) -> Any:
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: not valid JSON ({exc}); a truncated download?") from exc


def numeric(df: pl.DataFrame, path: Path | str, col: str, dtype: type[pl.DataType] = pl.Float64) -> pl.Series:
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


def numeric_gaps(df: pl.DataFrame, path: Path | str, col: str) -> pl.Series:
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


def single_value(df: pl.DataFrame, path: Path | str, col: str) -> str:
    vals = df.get_column(col).drop_nulls().unique().to_list()
    if len(vals) != 1 or not str(vals[0]).strip():
        raise DataError(f"{path}: column {col!r} must hold one value, found {sorted(map(str, vals))[:5]}")
    return str(vals[0]).strip()


# ---------------------------------------------------------------------------------------------- times
_TS_UNITS = {"s": 1, "ms": 1_000, "us": 1_000_000, "ns": 1_000_000_000}


def utc_seconds(df: pl.DataFrame, path: Path | str, col: str) -> pl.Series:
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


def validate_frame(table: str, df: pl.DataFrame) -> pl.DataFrame:
    """lake.validate for the lake's tables; for a PROPOSED table a DataError that it is not in the lake yet."""
    if table in _lake.TABLES:
        return _lake.validate(table, df)
    raise DataError(
        f"{table}: the lake has no {table!r} table yet (backtest/data/lake.py TABLES defines "
        f"{', '.join(_lake.TABLES)}); {df.height} row(s) were parsed and checked but not written"
    )


def check_unique_ts(item: Series) -> None:
    """Two different values at one (series key, ts) inside one import are ambiguous: DataError."""
    table = item.table
    keys = list(_lake.KEYS.get(table, PROPOSED_KEYS.get(table, ())))
    dup = item.df.filter(pl.struct([*keys, "ts"]).is_duplicated())
    if dup.height:
        distinct = dup.unique()
        if distinct.height > dup.select([*keys, "ts"]).unique().height:
            row = distinct.sort("ts").row(0, named=True)
            raise DataError(f"{item.file or table}: {table} has different values for one time "
                            f"{utc_text(row['ts'])} ({', '.join(f'{k}={row[k]}' for k in keys) or 'the series'})")


def safe_name(s: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "-" for c in s)


def drop_missing(df: pl.DataFrame, cols: Sequence[str], what: str, path: Path | str) -> tuple[pl.DataFrame, dict]:
    """Rows whose ``cols`` are all present, and a note of the rows left out (as gaps)."""
    miss = pl.any_horizontal([pl.col(c).is_null() for c in cols])
    left = df.filter(miss)
    kept = df.filter(~miss)
    info: dict[str, Any] = {"missing": left.height}
    if left.height:
        info["missing_first"] = int(left["ts"].min())
        info["missing_last"] = int(left["ts"].max())
        info["note"] = (f"{Path(str(path)).name}: {left.height} missing {what} value(s) left as gaps "
                        f"(not zeros), {utc_text(info['missing_first'])} .. {utc_text(info['missing_last'])}")
    return kept, info


def new_series(table: str, df: pl.DataFrame, name: str, source: str, path: Path | str,
               info: dict | None = None, notes: Sequence[str] = ()) -> Series:
    info = info or {}
    n = list(notes)
    if info.get("note"):
        n.append(info["note"])
    return Series(table, df, safe_name(name), source, Path(str(path)).name if path else "",
                  info.get("missing", 0), info.get("missing_first"), info.get("missing_last"), n)


def utilization(borrowed: pl.Series, supplied: pl.Series) -> pl.Series:
    """borrowed / supplied, null where supplied is not positive or either is missing (never 0 for unknown)."""
    return pl.select(pl.when(supplied > 0).then(borrowed / supplied).otherwise(None)).to_series().alias(
        "utilization")


def blocks_series(ts: pl.Series, block: pl.Series, name: str, source: str, path: Path) -> Series:
    """Real (time, block number) pairs for the lake's ``blocks`` table, which alignment interpolates
    instead of estimating block numbers from the Merge (an estimate ~30,000-60,000 blocks off in 2024-25,
    missed slots). One file per source: every export of that source merges into it."""
    df = pl.DataFrame({"ts": ts, "block": block}).unique(subset=["ts"], keep="last").sort("ts")
    return new_series("blocks", df, f"blocks-{name}", source, path)


def price_frame(ts: pl.Series, price: pl.Series, base: str, quote: str, source: str,
                block: pl.Series | None = None) -> pl.DataFrame:
    cols = {"ts": ts, "base": base, "quote": quote, "price": price, "source": source}
    if block is not None:
        cols["block"] = block
    return pl.DataFrame(cols)
