"""Dune query results: a CSV export or the API's JSON (``{"result": {"rows": [...]}}``; times like
'2024-05-12 00:00:00.000 UTC') with a column mapping, read as :mod:`backtest.data.sources.csv_mapping` reads
any CSV."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterable, Mapping

from backtest.data.sources.commit import ImportReport
from backtest.data.sources.csv_mapping import import_mapped, parse_mapped
from backtest.data.sources.toolkit import Series


def parse_dune(path: Path, table: str | None = None, mapping: Mapping[str, tuple[str, str | None]] | None = None,
               sets: Mapping[str, Any] | None = None) -> list[Series]:
    return parse_mapped(path, table, mapping, sets, "dune")


def import_dune(path: str | os.PathLike, lake: str | os.PathLike, table: str,
                mapping: Mapping[str, tuple[str, str | None]] | Iterable[str] | None = None,
                sets: Mapping[str, Any] | None = None) -> ImportReport:
    """A Dune query export (CSV, or the API's JSON ``{"result": {"rows": [...]}}``; times like
    '2024-05-12 00:00:00.000 UTC') with a column mapping, as
    :func:`backtest.data.sources.csv_mapping.import_csv`."""
    return import_mapped(path, lake, table, mapping, sets, "dune")
