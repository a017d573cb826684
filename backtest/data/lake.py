"""The Parquet data lake (DESIGN.md section 4): fixed table schemas, validated atomic writes, DuckDB reads.

Layout: ``<lake>/<table>/<file>.parquet`` (deeper partition folders under a table are read too, Hive
``key=value`` folders as key columns). Files from any Parquet writer are read as DESIGN section 4 allows (see
:func:`connect`): missing optional columns, ``ts`` as a timestamp; broken files are a DataError naming them.
Every table has a fixed Arrow schema in :data:`TABLES`; times are UTC epoch seconds (``ts``, int64), block numbers are kept
where known (``block``, nullable int64), rates are per-year fractions and liquidation bonuses are fractions
(0.01 = 1 %).

A *series* is the rows of one table that share the table's key columns (:data:`KEYS`), e.g. the prices of
``wstETH/WETH`` from one ``source``. Writing is :mod:`backtest.data.lake_write`: its ``write_table`` merges new rows into an existing file of the same name,
de-duplicating on the key columns + ``ts`` (the new row wins), so importing the same data twice is a no-op;
it writes a temporary file in the same folder and renames it into place, so a failed write never leaves a
half-written file behind.
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import os
from pathlib import Path
from typing import Any, Iterable

import duckdb
import polars as pl
import pyarrow as pa

from backtest.errors import DataError

_I64 = pa.int64()
_F64 = pa.float64()
_STR = pa.string()


def _f(name: str, typ: pa.DataType, nullable: bool = False) -> pa.Field:
    return pa.field(name, typ, nullable=nullable)


#: table name -> Arrow schema (column order is the on-disk order; ``nullable`` marks the optional columns)
TABLES: dict[str, pa.Schema] = {
    "prices": pa.schema([
        _f("ts", _I64), _f("block", _I64, True), _f("base", _STR), _f("quote", _STR), _f("price", _F64),
        _f("source", _STR),
    ]),
    "exchange_rates": pa.schema([
        _f("ts", _I64), _f("block", _I64, True), _f("token", _STR), _f("underlying", _STR), _f("rate", _F64),
        _f("source", _STR),
    ]),
    "oracle_prices": pa.schema([
        _f("ts", _I64), _f("block", _I64, True), _f("protocol", _STR), _f("asset", _STR), _f("quote", _STR),
        _f("price", _F64),
    ]),
    "rates": pa.schema([
        _f("ts", _I64), _f("block", _I64, True), _f("protocol", _STR), _f("asset", _STR), _f("supply_apr", _F64),
        _f("borrow_apr", _F64), _f("utilization", _F64, True), _f("supply_index", _F64, True),
        _f("borrow_index", _F64, True),
    ]),
    "market_params": pa.schema([
        _f("ts", _I64), _f("protocol", _STR), _f("asset", _STR), _f("emode", _STR, True), _f("ltv", _F64),
        _f("liquidation_threshold", _F64), _f("liquidation_bonus", _F64), _f("protocol_fee", _F64, True),
    ]),
    "gas": pa.schema([
        _f("ts", _I64), _f("block", _I64, True), _f("base_fee_gwei", _F64), _f("priority_fee_gwei", _F64, True),
    ]),
    "blocks": pa.schema([_f("ts", _I64), _f("block", _I64)]),
    "liquidity": pa.schema([
        _f("ts", _I64), _f("block", _I64, True), _f("pool", _STR), _f("token0", _STR), _f("token1", _STR),
        _f("reserve0", _F64), _f("reserve1", _F64), _f("amp", _F64, True),
    ]),
    "rewards": pa.schema([
        _f("ts", _I64), _f("token", _STR), _f("kind", _STR), _f("apr", _F64, True), _f("amount", _F64, True),
        _f("unit", _STR),
    ]),
    "events": pa.schema([_f("ts", _I64), _f("token", _STR), _f("kind", _STR), _f("value", _F64)]),
}

#: table name -> the columns (besides ``ts``) that identify one series; de-duplication is on these + ``ts``
KEYS: dict[str, tuple[str, ...]] = {
    "prices": ("base", "quote", "source"),
    "exchange_rates": ("token", "underlying", "source"),
    "oracle_prices": ("protocol", "asset", "quote"),
    "rates": ("protocol", "asset"),
    "market_params": ("protocol", "asset", "emode"),
    "gas": (),
    "blocks": (),
    "liquidity": ("pool",),
    "rewards": ("token", "kind"),
    "events": ("token", "kind"),
}

# value checks applied on write: column -> (low, high, low_inclusive) over the non-null values
_RANGES: dict[str, dict[str, tuple[float, float, bool]]] = {
    "prices": {"price": (0.0, float("inf"), False)},
    "exchange_rates": {"rate": (0.0, float("inf"), False)},
    "oracle_prices": {"price": (0.0, float("inf"), False)},
    "rates": {"supply_apr": (-1.0, 100.0, True), "borrow_apr": (-1.0, 100.0, True),
              "utilization": (0.0, 1.5, True)},
    "market_params": {"ltv": (0.0, 1.0, True), "liquidation_threshold": (0.0, 1.0, True),
                      "liquidation_bonus": (0.0, 1.0, True), "protocol_fee": (0.0, 1.0, True)},
    "gas": {"base_fee_gwei": (0.0, 1e6, True), "priority_fee_gwei": (0.0, 1e6, True)},
    "blocks": {},
    "liquidity": {"reserve0": (0.0, float("inf"), True), "reserve1": (0.0, float("inf"), True),
                  "amp": (0.0, float("inf"), False)},
    "rewards": {"apr": (-1.0, 100.0, True), "amount": (0.0, float("inf"), True)},
    "events": {},
}


def _iso(ts: int | float) -> str:
    return _dt.datetime.fromtimestamp(int(ts), _dt.timezone.utc).strftime("%Y-%m-%d %H:%M")


def schema(table: str) -> pa.Schema:
    """The Arrow schema of ``table``; DataError for an unknown table."""
    try:
        return TABLES[table]
    except KeyError:
        raise DataError(f"unknown lake table {table!r} (tables: {', '.join(TABLES)})") from None


def series_key(table: str, row: dict[str, Any]) -> str:
    """The human-readable key of a series, as used in catalogs and error messages."""
    if table == "prices":
        return f"{row['base']}/{row['quote']}"
    if table == "exchange_rates":
        return f"{row['token']}/{row['underlying']}"
    if table == "oracle_prices":
        return f"{row['protocol']}:{row['asset']}/{row['quote']}"
    if table == "rates":
        return f"{row['protocol']}:{row['asset']}"
    if table == "market_params":
        return f"{row['protocol']}:{row['asset']}:{row['emode'] if row['emode'] is not None else '-'}"
    return table


# ------------------------------------------------------------------------------------------- validation
def validate(table: str, df: pl.DataFrame) -> pl.DataFrame:
    """Check ``df`` against the table's schema and return it with the exact column order and dtypes.

    Optional (nullable) columns may be missing (they are filled with nulls); required columns must be
    present, non-null and (for floats) finite; integer columns accept any integer dtype (``ts`` also a
    polars Datetime, converted to epoch seconds); unknown columns are rejected. Every failure is a
    DataError naming the table and the column.
    """
    sch = schema(table)
    names = set(sch.names)
    extra = [c for c in df.columns if c not in names]
    if extra:
        raise DataError(f"{table}: unknown column {extra[0]!r} (columns: {', '.join(sch.names)})")
    cols = []
    for field in sch:
        name = field.name
        if name not in df.columns:
            if not field.nullable:
                raise DataError(f"{table}: missing required column {name!r}")
            cols.append(pl.lit(None, dtype=_pl_type(field.type)).alias(name))
            continue
        dtype = df.schema[name]
        if pa.types.is_integer(field.type):
            if isinstance(dtype, pl.Datetime) and name == "ts":
                cols.append(pl.col(name).dt.epoch("s").cast(pl.Int64))
            elif dtype.is_integer() or dtype == pl.Null:
                cols.append(pl.col(name).cast(pl.Int64))
            else:
                raise DataError(f"{table}: column {name!r} must be an integer (epoch seconds / block), got {dtype}")
        elif pa.types.is_floating(field.type):
            if dtype.is_numeric() or dtype == pl.Null:
                cols.append(pl.col(name).cast(pl.Float64))
            else:
                raise DataError(f"{table}: column {name!r} must be numeric, got {dtype}")
        else:
            if dtype in (pl.String, pl.Null) or isinstance(dtype, (pl.Categorical, pl.Enum)):
                cols.append(pl.col(name).cast(pl.String))
            else:
                raise DataError(f"{table}: column {name!r} must be a string, got {dtype}")
    out = df.select(cols)
    for field in sch:
        col = out.get_column(field.name)
        if not field.nullable and col.null_count():
            raise DataError(f"{table}: column {field.name!r} has {col.null_count()} null value(s)")
        if pa.types.is_floating(field.type) and col.len():
            bad = col.drop_nulls().is_finite().not_().sum()
            if bad:
                raise DataError(f"{table}: column {field.name!r} has {bad} non-finite value(s) (NaN/inf)")
    for name, (lo, hi, lo_incl) in _RANGES[table].items():
        col = out.get_column(name).drop_nulls()
        if not col.len():
            continue
        below = (col < lo) if lo_incl else (col <= lo)
        n_bad = int((below | (col > hi)).sum())
        if n_bad:
            first = col.filter(below | (col > hi))[0]
            rng = f"{'[' if lo_incl else '('}{lo}, {hi}]"
            raise DataError(f"{table}: column {name!r} has {n_bad} value(s) outside {rng}, e.g. {first!r}")
    return out


def _pl_type(t: pa.DataType) -> pl.DataType:
    if pa.types.is_integer(t):
        return pl.Int64
    if pa.types.is_floating(t):
        return pl.Float64
    return pl.String



# ------------------------------------------------------------------------------------------------ read
# A lake may come from any Parquet writer (DESIGN section 4): pandas, polars, pyarrow, DuckDB, Spark. Each
# file is inspected once (its DuckDB column types and one scan of the columns the table uses) and read
# through a SELECT that maps it onto the table's schema: ``ts`` from epoch seconds or a timestamp of any
# unit or zone, absent optional columns as typed nulls, Hive ``key=value`` folders as key columns, other
# columns (a pandas ``__index_level_0__``, a venue's extra parameters) ignored. Anything else is one
# DataError naming the file (and the column and value): never an engine exception, never silent guessing.
_INTS = {"TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT",
         "UHUGEINT"}
_NULL_TYPE = '"NULL"'               # DuckDB's type of an all-null column (pyarrow's null type)
#: integer epochs at or above these are not seconds (1e11 s is the year 5138): unit, divisor
_EPOCH_UNITS = ((10**17, "nanosecond", 10**9), (10**14, "microsecond", 10**6), (10**11, "millisecond", 10**3))
_PARQUET_MAGIC = b"PAR1"
_INSPECTED: dict[tuple, tuple[tuple, str]] = {}      # (table, path, bytes digest) -> (group key, SELECT)


def table_files(lake: str | os.PathLike, table: str) -> list[Path]:
    """The Parquet files of ``table`` (recursively), sorted; empty when the table folder is absent.

    A folder that cannot be listed is a DataError naming it (a silently skipped folder would drop data)."""
    schema(table)
    folder = Path(lake) / table
    if not folder.is_dir():
        return []

    def unreadable(exc: OSError) -> None:
        raise DataError(f"lake folder {exc.filename or folder} cannot be read ({exc.strerror or exc}); "
                        f"check its permissions or move it out of the lake")

    found: list[Path] = []
    for dirpath, _, names in os.walk(folder, onerror=unreadable):
        found.extend(Path(dirpath) / n for n in names if n.endswith(".parquet") and not n.startswith("."))
    return sorted(found)


def _sql_str(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else type(exc).__name__


def _check_bytes(path: Path) -> str:
    """Zero-byte, unreadable, truncated and non-Parquet files, told apart by their first and last bytes;
    returns a digest of the bytes (the inspection memo's key: a file rewritten in place is inspected again)."""
    digest = hashlib.blake2b(digest_size=16)
    try:
        with open(path, "rb") as fh:
            head = fh.read(4)
            digest.update(head)
            size = len(head)
            while chunk := fh.read(1 << 20):
                digest.update(chunk)
                size += len(chunk)
            fh.seek(max(size - 4, 0))
            tail = fh.read(4)
    except OSError as exc:
        raise DataError(f"lake file {path} cannot be read ({exc.strerror or exc}); check its permissions "
                        f"or remove it") from None
    if size == 0:
        raise DataError(f"lake file {path} is empty (0 bytes), not a Parquet file; re-export it or remove it")
    if head != _PARQUET_MAGIC:
        raise DataError(f"lake file {path} is not a Parquet file (it starts with {head!r}); the lake holds "
                        f"only Parquet: convert it with `backtest data import` or remove it")
    if size < 12 or tail != _PARQUET_MAGIC:
        raise DataError(f"lake file {path} is truncated ({size} bytes, no Parquet footer); re-export it or "
                        f"remove it")
    return digest.hexdigest()


def _hive_values(path: Path, folder: Path) -> dict[str, str | None]:
    """``key=value`` folders between the table folder and the file (Hive partitioning), URL-decoded."""
    from urllib.parse import unquote

    out: dict[str, str | None] = {}
    for part in path.relative_to(folder).parts[:-1]:
        key, eq, val = part.partition("=")
        if eq and key:
            val = unquote(val)
            out[unquote(key)] = None if val == "__HIVE_DEFAULT_PARTITION__" else val
    return out


def _literal(path: Path, field: pa.Field, value: str | None) -> str:
    """A Hive partition value as a SQL literal of the column's type."""
    typ = _pl_type(field.type)
    if value is None:
        return f"CAST(NULL AS {_SQL_TYPES[typ]})"
    try:
        if typ == pl.Int64:
            return f"CAST({int(value)} AS BIGINT)"
        if typ == pl.Float64:
            num = float(value)
            if num != num or num in (float("inf"), float("-inf")):
                raise ValueError(value)
            return f"CAST({num!r} AS DOUBLE)"
    except ValueError:
        raise DataError(f"lake file {path}: partition folder {field.name}={value} is not "
                        f"{'an integer' if typ == pl.Int64 else 'a finite number'}") from None
    return f"CAST({_sql_str(value)} AS VARCHAR)"


_SQL_TYPES = {pl.Int64: "BIGINT", pl.Float64: "DOUBLE", pl.String: "VARCHAR"}


def _floor_div(x: str, d: int) -> str:
    # DuckDB's // truncates toward zero; floor keeps a time before 1970 in the second it belongs to
    return f"({x} // {d} - CASE WHEN {x} % {d} < 0 THEN 1 ELSE 0 END)"


def _column_sql(path: Path, table: str, field: pa.Field, dtype: str) -> str:
    """The expression reading ``field`` from a file column of DuckDB type ``dtype``, cast to the lake type."""
    col, name, typ = _ident(field.name), field.name, _pl_type(field.type)
    if dtype == _NULL_TYPE:
        return f"CAST(NULL AS {_SQL_TYPES[typ]})"
    is_int, is_float = dtype in _INTS, dtype in ("FLOAT", "DOUBLE") or dtype.startswith("DECIMAL")
    if name == "ts" and (dtype.startswith("TIMESTAMP") or dtype == "DATE"):
        # any unit, any zone: Parquet stores UTC instants (a zone-less timestamp is read as UTC)
        if "NS" in dtype:
            return f"CAST({_floor_div(f'epoch_ns({col})', 10**9)} AS BIGINT)"
        return f"CAST({_floor_div(f'epoch_us({col})', 10**6)} AS BIGINT)"
    if typ == pl.Int64 and (is_int or (name == "block" and is_float)):
        return f"CAST({col} AS BIGINT)"     # a float block (pandas with gaps) is checked to be whole first
    if typ == pl.Float64 and (is_int or is_float):
        return f"CAST({col} AS DOUBLE)"
    if typ == pl.String and (dtype == "VARCHAR" or dtype.startswith("ENUM")):
        return f"CAST({col} AS VARCHAR)"
    want = {"ts": "integer epoch seconds or a Parquet timestamp", "block": "an integer block number"}.get(
        name, {pl.Int64: "an integer", pl.Float64: "a number", pl.String: "a string"}[typ])
    raise DataError(f"lake file {path}: column {name!r} of {table} must be {want}, got {dtype}")


def _inspect(con: duckdb.DuckDBPyConnection, table: str, path: Path, folder: Path) -> tuple[tuple, str]:
    """(group key, SELECT list) reading ``path`` as ``table``; DataError naming the file for anything wrong.

    The group key is the file's column types and partition values: files with the same key share one
    ``read_parquet`` (one scan for a lake of uniform files)."""
    memo = (table, str(path), _check_bytes(path))
    if memo in _INSPECTED:
        return _INSPECTED[memo]
    src = f"read_parquet({_sql_str(str(path))}, hive_partitioning = false)"   # Hive keys: ours
    try:
        described = con.execute(f"DESCRIBE SELECT * FROM {src}").fetchall()
    except duckdb.Error as exc:
        raise DataError(f"lake file {path} is not a readable Parquet file ({_first_line(exc)}); re-export it "
                        f"or remove it") from None
    types = {row[0]: row[1] for row in described}
    hive = _hive_values(path, folder)
    sch = schema(table)
    exprs, checks = [], []
    for field in sch:
        name = field.name
        if name in types:
            exprs.append(f"{_column_sql(path, table, field, types[name])} AS {_ident(name)}")
            if name in hive:        # a partition value the file repeats must agree with it
                checks.append((f"count(*) FILTER (WHERE {_ident(name)} IS DISTINCT FROM "
                               f"{_literal(path, field, hive[name])})", "partition", name))
        elif name in hive:
            if hive[name] is None and not field.nullable:
                raise DataError(f"lake file {path}: required column {name!r} of {table} is a null partition "
                                f"({name}=__HIVE_DEFAULT_PARTITION__)")
            exprs.append(f"{_literal(path, field, hive[name])} AS {_ident(name)}")
        elif field.nullable:
            exprs.append(f"CAST(NULL AS {_SQL_TYPES[_pl_type(field.type)]}) AS {_ident(name)}")
        else:
            have = ", ".join(types) or "none"
            raise DataError(f"lake file {path}: missing required column {name!r} of {table} (required: "
                            f"{', '.join(f.name for f in sch if not f.nullable)}; the file has: {have})")
        if name in types and not field.nullable:
            checks.append((f"count(*) - count({_ident(name)})", "nulls", name))
        if name == "block" and name in types and types[name] in ("FLOAT", "DOUBLE"):
            # whole, finite and inside int64 (a float of 2^63 or more would fail the cast with DuckDB's own error)
            checks.append((f"count(*) FILTER (WHERE block <> floor(block) OR NOT isfinite(block) "
                           f"OR abs(block) >= 9223372036854775807.0)", "whole", name))
    select = ", ".join(exprs)
    ts_int = types.get("ts") in _INTS
    aggs = [c for c, _, _ in checks] + ["max(abs(CAST(ts AS HUGEINT)))" if ts_int else "NULL"]
    aggs += [f"count({_ident(n)})" for n in types if n in sch.names]       # decode every column read
    try:
        row = con.execute(f"SELECT {', '.join(aggs)} FROM {src}").fetchall()[0]
    except duckdb.Error as exc:
        raise DataError(f"lake file {path} is corrupt ({_first_line(exc)}); re-export it or remove it") from None
    for (_, kind, name), bad in zip(checks, row):
        if not bad:
            continue
        if kind == "nulls":
            raise DataError(f"lake file {path}: required column {name!r} of {table} has {bad} null value(s)")
        if kind == "whole":
            raise DataError(f"lake file {path}: column 'block' has {bad} value(s) that are not whole numbers "
                            f"within int64")
        raise DataError(f"lake file {path}: column {name!r} has {bad} value(s) other than its partition "
                        f"folder's {name}={hive[name]}")
    biggest = row[len(checks)]
    if biggest is not None:
        for low, unit, div in _EPOCH_UNITS:
            if biggest >= low:
                value = con.execute(f"SELECT ts FROM {src} WHERE abs(CAST(ts AS HUGEINT)) = ? LIMIT 1",
                                    [biggest]).fetchall()[0][0]
                when = _iso(value // div) if abs(value // div) < 10**11 else "far beyond any date"
                raise DataError(f"lake file {path}: column 'ts' holds {value}, a {unit} epoch ({when} as "
                                f"{unit}s); the lake's ts is in epoch seconds: divide by {div:,} or store a "
                                f"Parquet timestamp")
    key = (tuple(described), tuple(sorted((k, v) for k, v in hive.items() if k in sch.names)))
    _INSPECTED[memo] = (key, select)
    return key, select


def connect(lake: str | os.PathLike) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection with one view per lake table that has files.

    Each view has the table's columns (typed as in :data:`TABLES`) plus ``filename`` (the Parquet file a row
    came from), so callers can tell which files they read (for :func:`data_hash`). Tables without files
    have no view; use :func:`has_table`. Every file is checked first (see the section comment above): a
    broken one is a DataError naming it.
    """
    con = duckdb.connect()
    try:
        for table in TABLES:
            files = table_files(lake, table)
            if not files:
                continue
            groups: dict[tuple, tuple[str, list[Path]]] = {}
            for p in files:
                key, select = _inspect(con, table, p, Path(lake) / table)
                groups.setdefault(key, (select, []))[1].append(p)
            parts = []
            for select, paths in groups.values():
                listing = "[" + ", ".join(_sql_str(str(p)) for p in paths) + "]"
                parts.append(f"SELECT {select}, filename FROM read_parquet({listing}, filename = true, "
                             f"hive_partitioning = false)")
            con.execute(f"CREATE VIEW {table} AS " + " UNION ALL ".join(parts))
    except BaseException:
        con.close()
        raise
    return con


def read_file(path: str | os.PathLike, table: str) -> pl.DataFrame:
    """One Parquet file read as ``table`` with :func:`connect`'s mapping and checks (for per-file tools such
    as ``data check``): the table's columns and types, Hive folder values from the folders below the
    nearest ancestor named ``table`` (else none); a DataError naming the file for anything wrong."""
    path = Path(path)
    folder = next((p for p in path.parents if p.name == table), path.parent)
    con = duckdb.connect()
    try:
        _, select = _inspect(con, table, path, folder)
        src = f"read_parquet({_sql_str(str(path))}, hive_partitioning = false)"
        try:
            return pl.from_arrow(con.sql(f"SELECT {select} FROM {src}").to_arrow_table())
        except duckdb.Error as exc:
            raise DataError(f"lake file {path} is corrupt ({_first_line(exc)}); re-export it or remove it") from None
    finally:
        con.close()


def has_table(con: duckdb.DuckDBPyConnection, table: str) -> bool:
    """Whether :func:`connect` made a view for ``table`` (i.e. the lake has files for it)."""
    rows = con.sql(
        "SELECT count(*) FROM duckdb_views() WHERE view_name = ? AND NOT internal", params=[table]
    ).fetchall()
    return bool(rows and rows[0][0])


def where_clause(filters: dict[str, Any]) -> tuple[str, list[Any]]:
    """SQL ``WHERE`` body + parameters: a str is equality, a list/tuple/set is ``IN``, None is ``IS NULL``."""
    parts: list[str] = []
    params: list[Any] = []
    for col, val in filters.items():
        if val is None:
            parts.append(f'"{col}" IS NULL')
        elif isinstance(val, (list, tuple, set, frozenset)):
            vals = sorted(val)
            parts.append(f'"{col}" IN ({", ".join("?" for _ in vals)})')
            params.extend(vals)
        else:
            parts.append(f'"{col}" = ?')
            params.append(val)
    return (" AND ".join(parts) if parts else "TRUE"), params


def read_series(lake: str | os.PathLike, table: str, *, start: int | None = None, end: int | None = None,
                con: duckdb.DuckDBPyConnection | None = None, **filters: Any) -> pl.DataFrame:
    """Rows of ``table`` matching ``filters`` (column=value), with ``start <= ts < end``, sorted by ts.

    Example: ``read_series("data", "prices", base="wstETH", quote=["ETH", "WETH"])``. The result has the
    table's columns plus ``filename``; it is empty (with those columns) when nothing matches.
    """
    sch = schema(table)
    unknown = [c for c in filters if c not in sch.names]
    if unknown:
        raise DataError(f"{table}: unknown column {unknown[0]!r} in a series filter")
    own = con is None
    con = connect(lake) if own else con
    try:
        if not has_table(con, table):
            empty = pl.from_arrow(sch.empty_table())
            return empty.with_columns(pl.lit(None, dtype=pl.String).alias("filename"))
        where, params = where_clause(filters)
        if start is not None:
            where += " AND ts >= ?"
            params.append(int(start))
        if end is not None:
            where += " AND ts < ?"
            params.append(int(end))
        keys = ", ".join(f'"{k}"' for k in KEYS[table])
        order = f"{keys}, ts, filename" if keys else "ts, filename"
        tab = con.sql(f"SELECT * FROM {table} WHERE {where} ORDER BY {order}", params=params).to_arrow_table()
        return pl.from_arrow(tab)
    finally:
        if own:
            con.close()


def read_table(lake: str | os.PathLike, table: str) -> pl.DataFrame:
    """Every row of ``table`` (all files), sorted by key columns and ts, without ``filename``."""
    return read_series(lake, table).drop("filename")


# --------------------------------------------------------------------------------------------- catalog
CATALOG_SCHEMA = {
    "table": pl.String, "key": pl.String, "source": pl.String, "rows": pl.Int64, "first_ts": pl.Int64,
    "last_ts": pl.Int64, "median_spacing_s": pl.Float64,
}


def catalog(lake: str | os.PathLike) -> pl.DataFrame:
    """One row per series in the lake: table, key, source (null where the table has none), rows,
    first_ts, last_ts, median spacing between consecutive distinct point times in seconds (null for a
    single point). Computed in DuckDB, so it does not load the tables into memory."""
    rows: list[dict[str, Any]] = []
    con = connect(lake)
    try:
        for table in TABLES:
            if not has_table(con, table):
                continue
            keys = [f'"{k}"' for k in KEYS[table]]
            part = f"PARTITION BY {', '.join(keys)} " if keys else ""
            sel = f"{', '.join(keys)}, " if keys else ""
            group = f"GROUP BY {', '.join(keys)}" if keys else ""
            res = con.sql(
                f"SELECT {sel}count(*) AS rows, min(ts) AS first_ts, max(ts) AS last_ts, "
                f"median(nullif(dt, 0)) AS median_spacing_s FROM ("
                f"SELECT *, ts - lag(ts) OVER ({part}ORDER BY ts) AS dt FROM {table}) {group}"
            ).to_arrow_table()
            for rec in res.to_pylist():
                if not rec["rows"]:
                    continue
                rows.append({
                    "table": table, "key": series_key(table, rec), "source": rec.get("source"),
                    "rows": rec["rows"], "first_ts": rec["first_ts"], "last_ts": rec["last_ts"],
                    "median_spacing_s": None if rec["median_spacing_s"] is None else float(rec["median_spacing_s"]),
                })
    finally:
        con.close()
    return pl.DataFrame(rows, schema=CATALOG_SCHEMA).sort(["table", "key", "source"], nulls_last=False)


# ------------------------------------------------------------------------------------------------ hash
def relative_files(paths: Iterable[str | os.PathLike], root: str | os.PathLike) -> tuple[str, ...]:
    """The lake files ``paths`` as sorted posix paths relative to ``root`` (as :func:`data_hash` names them)."""
    base = Path(root).resolve()
    return tuple(sorted({Path(os.path.relpath(Path(p).resolve(), base)).as_posix() for p in paths}))


def data_hash(paths: Iterable[str | os.PathLike], root: str | os.PathLike | None = None) -> str:
    """sha256 over (relative path, bytes) of each Parquet file, in sorted order of the relative paths.

    Paths are taken relative to ``root`` (the lake) when given, else as ``<table>/<file>`` (the last two
    components), so the hash does not depend on where the lake lives. Duplicates count once.
    """
    rels: dict[str, Path] = {}
    for p in paths:
        p = Path(p)
        if root is not None:
            rel = Path(os.path.relpath(p.resolve(), Path(root).resolve())).as_posix()
        else:
            rel = f"{p.parent.name}/{p.name}"
        rels[rel] = p
    h = hashlib.sha256()
    for rel in sorted(rels):
        data = rels[rel].read_bytes()
        h.update(rel.encode())
        h.update(b"\0")
        h.update(len(data).to_bytes(8, "little"))
        h.update(data)
    return h.hexdigest()

