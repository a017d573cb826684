"""Reading a result set (DESIGN §6) for the report: manifest, summary, events, episodes, book, time series.

Only what a report shows is read: the time series of the configurations it draws (one Hive partition each),
never the whole folder, so a sweep of 10⁴ configurations costs what its ten drawn lines cost.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from backtest.errors import InputError
from backtest.store import read_manifest

# columns of a summary that are not swept parameters even when they vary
NOT_PARAMETERS = {"config_id", "path"}


@dataclass
class ResultSet:
    root: Path
    manifest: dict[str, Any]
    summary: pl.DataFrame
    events: pl.DataFrame
    episodes: pl.DataFrame | None = None       # episodes.parquet, when the result set has one
    book: pl.DataFrame | None = None           # book.parquet, when the result set is a strategy book
    _series: dict[int, pl.DataFrame | None] = field(default_factory=dict, repr=False)

    @property
    def parameters(self) -> list[str]:
        """The swept parameters that vary, most distinct values first (ties: their order in the summary)."""
        labels: list[str] = []
        for p in self.manifest.get("points") or []:
            for k in (p.get("labels") or {}) if isinstance(p, dict) else {}:
                if k not in labels:
                    labels.append(k)
        if not labels:       # an older manifest: the swept keys are the dotted columns
            labels = [c for c in self.summary.columns if "." in c]
        cols = [c for c in labels if c in self.summary.columns and c not in NOT_PARAMETERS]
        varying = [c for c in cols if self.summary[c].n_unique() > 1]
        return sorted(varying, key=lambda c: -self.summary[c].n_unique())

    def column(self, table: str, name: str) -> dict[str, str]:
        """The column dictionary's entry (name, unit, meaning) of one column, {} when the manifest has none."""
        for entry in (self.manifest.get("columns") or {}).get(table, []):
            if entry.get("name") == name:
                return entry
        return {}

    def unit(self, table: str, name: str) -> str:
        return self.column(table, name).get("unit", "")

    def series(self, config_id: int) -> pl.DataFrame | None:
        """The time series of one configuration (sorted by block), None when it was not recorded."""
        if config_id not in self._series:
            part = self.root / "timeseries" / f"config_id={config_id}"
            files = sorted(part.glob("*.parquet")) if part.is_dir() else []
            if not files:
                self._series[config_id] = None
            else:
                try:
                    df = pl.concat([pl.read_parquet(f) for f in files], how="diagonal_relaxed")
                except (OSError, pl.exceptions.PolarsError) as exc:
                    raise InputError(f"{part}: cannot be read ({exc})") from None
                self._series[config_id] = df.sort("block")
        return self._series[config_id]


def _read_table(path: Path, required: bool) -> pl.DataFrame | None:
    if not path.exists():
        if required:
            raise InputError(f"{path.parent}: not a result set (no {path.name})")
        return None
    try:
        return pl.read_parquet(path)
    except (OSError, pl.exceptions.PolarsError) as exc:
        raise InputError(f"{path}: cannot be read ({exc})") from None


def load(root: Path | str) -> ResultSet:
    """The result set in ``root``; InputError (exit 2) naming the file when it is not one or cannot be read."""
    root = Path(root)
    if not root.is_dir():
        raise InputError(f"{root}: not a folder")
    manifest = read_manifest(root)
    if manifest is None:
        if (root / "manifest.json").exists():
            try:
                json.loads((root / "manifest.json").read_text())
            except (OSError, ValueError) as exc:
                raise InputError(f"{root / 'manifest.json'}: not readable JSON ({exc})") from None
            raise InputError(f"{root / 'manifest.json'}: not the manifest of a backtest result set")
        raise InputError(f"{root}: not a result set (no manifest.json)")
    summary = _read_table(root / "summary.parquet", required=True)
    events = _read_table(root / "events.parquet", required=False)
    if events is None:
        events = pl.DataFrame({"config_id": [], "block": [], "ts": [], "kind": []},
                              schema={"config_id": pl.Int64, "block": pl.Int64, "ts": pl.Int64, "kind": pl.Utf8})
    return ResultSet(root=root, manifest=manifest, summary=summary, events=events,
                     episodes=_read_table(root / "episodes.parquet", required=False),
                     book=_read_table(root / "book.parquet", required=False))
