"""Writing normalised series into the lake: every series of one import is validated first
(:func:`backtest.data.sources.toolkit.validate_frame`, one value per time), then every lake file is written
by :func:`backtest.data.lake_write.write_table` inside one transaction (all files of the call land, or none),
merging on the series key + ``ts`` so that importing the same file twice gives the same lake.

Provenance: the ``source`` column where the table has one (``prices``, ``exchange_rates``), the Parquet
key-value metadata (``source``, ``file``: the input file's name), and the lake file's name.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable, Sequence

import polars as pl

from backtest.data import lake as _lake
from backtest.data import lake_write as _lake_write
from backtest.data.sources.toolkit import Series, check_unique_ts, utc_text, validate_frame


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
            span = f"{utc_text(s['first_ts'])} -> {utc_text(s['last_ts'])}" if s["rows"] else "empty"
            line = f"{s['table']:<15} {s['key']:<36} {s['rows']:>7} rows  {span}"
            if s["missing"]:
                line += (f"  ({s['missing']} missing value(s) left as gaps, "
                         f"{utc_text(s['missing_first'])} .. {utc_text(s['missing_last'])})")
            out.append(line)
        out.extend(f"note: {n}" for n in self.notes)
        return out


def commit(lake: str | os.PathLike, items: Sequence[Series]) -> ImportReport:
    """Validate every series first, then write them all in one :func:`~backtest.data.lake_write.transaction`
    (every file lands, or none does; inside an import's transaction it joins that one); return the report."""
    checked = []
    for it in items:
        df = validate_frame(it.table, it.df)
        check_unique_ts(Series(it.table, df, it.name, it.source, it.file))
        checked.append((it, df))
    report = ImportReport()
    with _lake_write.transaction(lake):
        _write_checked(lake, checked, report)
    return report


def _write_checked(lake, checked, report: ImportReport) -> None:
    for it, df in checked:
        meta = {"source": it.source}
        if it.file:
            meta["file"] = it.file
        report.append(_lake_write.write_table(lake, it.table, df, it.name, metadata=meta))
        for key_df in _split_by_key(it.table, df):
            first = key_df["ts"].min() if key_df.height else None
            last = key_df["ts"].max() if key_df.height else None
            report.series.append({
                "table": it.table, "key": Series(it.table, key_df, "", "").key(), "source": it.source,
                "rows": key_df.height, "first_ts": first, "last_ts": last, "missing": it.missing,
                "missing_first": it.missing_first, "missing_last": it.missing_last,
            })
        report.notes.extend(it.notes)


def _split_by_key(table: str, df: pl.DataFrame) -> list[pl.DataFrame]:
    keys = [k for k in _lake.KEYS.get(table, ()) if k in df.columns]
    if not keys or df.height == 0:
        return [df]
    return [g for _, g in df.group_by(keys, maintain_order=True)]
