"""Any CSV (or JSON rows) with a column mapping: ``--table prices --map ts=time --map price=close
--set base=wstETH --set quote=WETH``. Lake columns named like a file column map themselves; for ``rates``,
``supplied`` / ``borrowed`` totals give the utilization."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterable, Mapping

import polars as pl
import pyarrow as pa

from backtest.data import lake as _lake
from backtest.data.sources.commit import ImportReport, commit
from backtest.data.sources.toolkit import (PROPOSED_TABLES, Series, convert, drop_missing, new_series, numeric_gaps,
                                           parse_times, read_json, read_text_table, utilization)
from backtest.errors import DataError


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
        doc = read_json(path)
        if isinstance(doc, dict) and isinstance(doc.get("result"), dict):
            doc = doc["result"].get("rows")
        elif isinstance(doc, dict) and isinstance(doc.get("data"), list):
            doc = doc["data"]
        if not isinstance(doc, list) or not all(isinstance(r, dict) for r in doc):
            raise DataError(f"{path}: expected a list of row objects (or a Dune result with result.rows)")
        return _frame_from_rows(doc, path)
    return read_text_table(path)


#: pseudo-columns of the generic importer: rates utilization from totals
_TOTALS = ("supplied", "borrowed")


def parse_mapped(path: Path, table: str | None = None, mapping: Mapping[str, tuple[str, str | None]] | None = None,
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
                v = numeric_gaps(df, path, scol)
                out[col] = v.cast(pl.Int64)
            else:
                v = numeric_gaps(df, path, scol)
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
    kept, info = drop_missing(frame, value_cols, "/".join(value_cols), path)
    source = str(sets.get("source") or (kept["source"][0] if "source" in kept.columns and kept.height else
                                        f"{origin}:{path.stem}"))
    return [new_series(table, kept, f"{origin}-{path.stem}-{table}", source, path, info, notes)]


def import_mapped(path: str | os.PathLike, lake: str | os.PathLike, table: str,
                  mapping: Mapping[str, tuple[str, str | None]] | Iterable[str] | None = None,
                  sets: Mapping[str, Any] | None = None, origin: str = "csv") -> ImportReport:
    """Import one mapped file of ``origin`` (``csv``, ``dune``): ``mapping`` as a dict or ``COL=SRC[:UNIT]``
    strings."""
    if mapping is not None and not isinstance(mapping, Mapping):
        mapping = parse_mapping(mapping)
    return commit(lake, parse_mapped(Path(path), table, mapping, sets, origin))


def import_csv(path: str | os.PathLike, lake: str | os.PathLike, table: str,
               mapping: Mapping[str, tuple[str, str | None]] | Iterable[str] | None = None,
               sets: Mapping[str, Any] | None = None) -> ImportReport:
    """A generic CSV (or JSON rows) into ``table``: ``mapping`` {lake column: (file column, unit)} (or
    ``["ts=time", "price=close"]`` strings), ``sets`` {lake column: constant}. Lake columns named like a
    file column map themselves. For ``rates``, ``supplied`` / ``borrowed`` totals give the utilization."""
    return import_mapped(path, lake, table, mapping, sets, "csv")
