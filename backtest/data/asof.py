"""The DuckDB ASOF join: every lake series onto the block clock (DESIGN.md sections 4 and 5).

Each series takes, at every block, its last value at or before the block's time (DuckDB ``ASOF LEFT JOIN``
against a generated range of block times; the arrays come back through Arrow, never through a Python loop
over blocks). :class:`Aligner` reads the points of a series (held to ``data check``'s error rules and to
the coverage rule of :func:`check_coverage`, several sources being ambiguous), queues them and joins them
all in one pass.
"""
from __future__ import annotations

import datetime as _dt
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import duckdb
import numpy as np
import pyarrow as pa

from backtest.data import lake as _lake
from backtest.data.clock import SLOT, block_clock, lake_blocks
from backtest.data.market import SeriesInfo
from backtest.errors import DataError

MAX_GAP = 3 * 86400                 # seconds a required series may go without a new point

ETH_LIKE = ("ETH", "WETH")


def iso(ts: int | float) -> str:
    return _dt.datetime.fromtimestamp(int(ts), _dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def aliases(symbol: str) -> list[str]:
    return list(ETH_LIKE) if symbol in ETH_LIKE else [symbol]


def same_asset(a: str, b: str) -> bool:
    return a == b or (a in ETH_LIKE and b in ETH_LIKE)



# -------------------------------------------------------------------------------------- series loading
@dataclass
class Points:
    """The points of one series used for a window (from the last point at or before start)."""

    table: str
    key: str
    ts: np.ndarray
    values: dict[str, np.ndarray]
    files: list[str] = field(default_factory=list)
    source: str | None = None       # the lake's source label when the table has one

    @property
    def label(self) -> str:
        return f"{self.table} {self.key}" + (f" source={self.source}" if self.source else "")

    def info(self) -> SeriesInfo:
        gaps = np.diff(self.ts)
        return SeriesInfo(table=self.table, key=self.key, rows=int(self.ts.shape[0]),
                          first_ts=int(self.ts[0]), last_ts=int(self.ts[-1]),
                          max_gap=int(gaps.max()) if gaps.size else 0)


def check_coverage(table: str, key: str, ts: np.ndarray, start: int, end: int, max_gap: int = MAX_GAP) -> None:
    """DataError unless sorted point times ``ts`` cover ``[start, end)`` with no stale stretch > max_gap."""
    label = f"{table} {key}"
    if ts.size == 0:
        raise DataError(f"{label}: no data in the lake for this series")
    p = int(np.searchsorted(ts, start, side="right")) - 1
    if p < 0:
        raise DataError(
            f"{label}: no point at or before the run start {iso(start)} (first point {iso(ts[0])})"
        )
    w = ts[p:]
    w = w[w < end]
    nxt = np.minimum(np.append(w[1:], end), end)
    stale = nxt - w
    bad = np.nonzero(stale > max_gap)[0]
    if bad.size:
        i = int(bad[0])
        if i == w.size - 1:
            raise DataError(
                f"{label}: last point {iso(w[i])} is {(end - w[i]) / 86400:.1f} days before the run end "
                f"{iso(end)} (max {max_gap / 86400:g} days)"
            )
        raise DataError(
            f"{label}: gap of {(w[i + 1] - w[i]) / 86400:.1f} days from {iso(w[i])} to {iso(w[i + 1])} "
            f"inside the run window {iso(start)} to {iso(end)} (max {max_gap / 86400:g} days)"
        )


class Aligner:
    def __init__(self, lake: Path, start: int, end: int, block_time: int,
                 sources: Sequence[tuple[str, str]] = (), allow: Sequence[str] = (), checks: bool = True):
        self.lake = lake
        self.sources = dict(sources)        # run.sources: "table key" -> the source to read
        self.sources_used: set[str] = set()
        self.allow = tuple(allow)           # run.allow: checks downgraded to warnings
        self.checks = checks                # data check's rules on the window's points
        self.labels: dict[str, str] = {}    # market array -> the lake series it came from
        self.start = int(start)
        self.end = int(end)
        self.block_time = int(block_time)
        self.ts = block_clock(start, end, block_time)
        self.n = int(self.ts.shape[0])
        if self.n == 0:
            raise DataError(f"empty run window: start {iso(start)} is not before end {iso(end)}")
        self.con: duckdb.DuckDBPyConnection = _lake.connect(lake)
        self.con.execute(
            "CREATE TEMP TABLE clock AS SELECT range AS k, CAST(? AS BIGINT) + range * CAST(? AS BIGINT) AS ts "
            "FROM range(?)", [self.start, self.block_time, self.n])
        self.series: list[SeriesInfo] = []
        self.files: set[str] = set()
        self.pending: list[tuple[str, Points, int | None]] = []

    def close(self) -> None:
        self.con.close()

    # -- reading ------------------------------------------------------------------------------------
    def points(self, table: str, key: str, filters: dict[str, Any], values: Sequence[tuple[str, str]],
               *, source: bool) -> Points | None:
        """The points of a series from the last one at or before start to the last one before end.

        ``values`` are (output name, SQL expression) pairs. Returns None when the lake has no rows for the
        series at all. Raises a DataError on several sources inside the window.
        """
        if not _lake.has_table(self.con, table):
            return None
        name = f"{table} {key}"
        chosen = self.sources.get(name) if source else None
        if chosen is not None:
            self.sources_used.add(name)
            filters = {**filters, "source": chosen}
        where, params = _lake.where_clause(filters)
        exprs = ", ".join(f"{expr} AS {name}" for name, expr in values)
        src = "source" if source else "NULL"
        # the raw columns the expressions read and the key columns, for data check's rules on the window
        schema = _lake.TABLES[table].names
        raw = [c for c in schema if c not in ("ts", "block", "source")
               and any(re.search(rf"\b{c}\b", e) for _, e in values)]
        keys = [c for c in _lake.KEYS[table] if c != "source"]
        extra = "".join(f', "{c}" AS "_r_{c}"' for c in dict.fromkeys(raw + keys))
        # only the rows that matter: from the last point at or before start (else the first point) to end
        tab = self.con.sql(
            f"WITH s AS (SELECT ts, {exprs}, {src} AS _source, filename{extra} FROM {table} WHERE {where}), "
            f"b AS (SELECT coalesce((SELECT max(ts) FROM s WHERE ts <= ?), (SELECT min(ts) FROM s)) AS lo) "
            f"SELECT s.* FROM s, b WHERE s.ts >= b.lo AND (s.ts < ? OR s.ts = b.lo) ORDER BY s.ts, s.filename",
            params=[*params, self.start, self.end],
        ).to_arrow_table()
        if tab.num_rows == 0:
            if chosen is not None:
                w, p = _lake.where_clause({k: v for k, v in filters.items() if k != "source"})
                have = self.con.sql(f"SELECT DISTINCT source FROM {table} WHERE {w} ORDER BY 1", params=p).fetchall()
                raise DataError(f"run.sources: \"{name}\" = \"{chosen}\": the lake at {self.lake} has no such source for "
                                f"this series (its sources: {', '.join(str(r[0]) for r in have) or 'none'})")
            return None
        ts = tab.column("ts").to_numpy()
        p = int(np.searchsorted(ts, self.start, side="right")) - 1
        lo = max(p, 0)
        hi = int(np.searchsorted(ts, self.end, side="left"))
        if hi <= lo:   # every point is at or after the end: keep the first so coverage can report it
            hi = lo + 1
        win = tab.slice(lo, hi - lo)
        wts = win.column("ts").to_numpy()
        src_name = None
        if source:
            sources = sorted(set(win.column("_source").to_pylist()))
            if len(sources) > 1:
                self._ambiguous(table, key, where, params, np.unique(wts), sources)
            src_name = sources[0] if sources else None
        self._check(table, key, src_name, win, raw + keys)
        keep = np.append(wts[1:] != wts[:-1], True)      # duplicate ts: the last row (file order) wins
        vals = {name: win.column(name).to_numpy(zero_copy_only=False)[keep].astype(np.float64)
                for name, _ in values}
        files = sorted(set(win.column("filename").to_pylist()))
        return Points(table, key, wts[keep].astype(np.int64), vals, files, src_name)

    def _ambiguous(self, table: str, key: str, where: str, params: list, ts: np.ndarray, sources: list) -> None:
        """Several sources for one series in the window: ambiguous only if the data covers the window at all
        (else the coverage error says what is really wrong); the message says which key chooses one."""
        spans = self.con.sql(f"SELECT source, min(ts), max(ts), count(*) FROM {table} WHERE {where} "
                             f"GROUP BY source ORDER BY source", params=params).fetchall()
        listed = "; ".join(f"{s} ({iso(lo)} to {iso(hi)}, {n} rows)" for s, lo, hi, n in spans)
        try:
            check_coverage(table, key, ts, self.start, self.end)
        except DataError as exc:
            raise DataError(f"{exc} (sources in the lake: {listed})") from None
        raise DataError(
            f"{table} {key}: ambiguous, {len(sources)} sources inside the run window: {', '.join(sources)} "
            f"(window {iso(self.start)} to {iso(self.end)}; in the lake: {listed}); choose one with "
            f"run.sources = {{ \"{table} {key}\" = \"{sources[0]}\" }} (or import them into separate lakes)")

    def _check(self, table: str, key: str, source: str | None, win: pa.Table, cols: list[str]) -> None:
        """data check's error rules on the raw points of the window (duplicates kept): a DataError naming the
        series, the first bad time and value, unless run.allow downgrades it."""
        from backtest.data.check import check_window

        if not self.checks or table not in ("prices", "exchange_rates", "oracle_prices", "rates", "market_params",
                                            "gas"):
            return
        import polars as pl

        frame = pl.from_arrow(pa.table({"ts": win.column("ts"), "filename": win.column("filename"),
                                        **{c: win.column(f"_r_{c}") for c in dict.fromkeys(cols)}}))
        check_window(table, key, source, frame, start=self.start, end=self.end, allow=self.allow,
                     lake=str(self.lake))

    def require(self, pts: Points | None, table: str, key: str) -> Points:
        if pts is None:
            raise DataError(f"{table} {key}: no data in the lake at {self.lake} for this series")
        check_coverage(table, key, pts.ts, self.start, self.end)
        return pts

    def use(self, pts: Points) -> None:
        self.series.append(pts.info())
        self.files.update(pts.files)

    # -- joining ------------------------------------------------------------------------------------
    def add(self, name: str, pts: Points, max_age: int | None = None) -> None:
        """Queue ``pts`` for the ASOF join; its columns come back from :meth:`join` as ``name.col``.

        With ``max_age``, a block whose latest point is older than ``max_age`` seconds gets NaN.
        """
        self.labels[name] = pts.label
        self.pending.append((name, pts, max_age))

    def join(self) -> dict[str, np.ndarray]:
        """ASOF-join every queued series onto the block clock in DuckDB.

        The series are first ASOF-joined onto the union of their point times (a small table: one row per
        distinct point time, one column per series value plus each series' own point time), then that
        table is ASOF-joined once onto the clock's block times: one pass over the blocks instead of one per
        series. Returns float64 arrays of len(clock), keyed ``name.col``.
        """
        if not self.pending:
            return {}
        con = self.con
        parts, cols, big = [], [], []
        for i, (name, pts, max_age) in enumerate(self.pending):
            t = f"p{i}"
            arrow = pa.table({"ts": pa.array(pts.ts, pa.int64()),
                              **{f"c{j}": pa.array(v, pa.float64()) for j, v in enumerate(pts.values.values())}})
            con.register(f"{t}_src", arrow)
            con.execute(f"CREATE TEMP TABLE {t} AS SELECT * FROM {t}_src ORDER BY ts")
            con.unregister(f"{t}_src")
            parts.append(f"SELECT ts FROM {t}")
            cols.append(f"{t}.ts AS {t}_ts")
            for j, col in enumerate(pts.values):
                cols.append(f"{t}.c{j} AS {t}_c{j}")
                expr = f"u.{t}_c{j}"
                if max_age is not None:
                    expr = f"CASE WHEN clock.ts - u.{t}_ts <= {int(max_age)} THEN {expr} END"
                big.append((f"{name}.{col}", f"{expr} AS {t}_c{j}", f"{t}_c{j}"))
        joins = " ".join(f"ASOF LEFT JOIN p{i} ON u0.ts >= p{i}.ts" for i in range(len(self.pending)))
        con.execute(
            f"CREATE TEMP TABLE u AS SELECT u0.ts AS ts, {', '.join(cols)} "
            f"FROM (SELECT DISTINCT ts FROM ({' UNION ALL '.join(parts)})) AS u0 {joins}"
        )
        # no ORDER BY: each row carries its block index k, which places it (cheaper than sorting)
        tab = con.sql(
            f"SELECT clock.k AS _k, {', '.join(e for _, e, _ in big)} "
            f"FROM clock ASOF LEFT JOIN u ON clock.ts >= u.ts"
        ).to_arrow_table()
        k = tab.column("_k").to_numpy()
        if k.shape[0] != self.n:
            raise DataError(f"internal alignment error: {k.shape[0]} rows for {self.n} blocks")
        out: dict[str, np.ndarray] = {}
        for key, _, col in big:
            arr = np.empty(self.n, dtype=np.float64)
            arr[k] = tab.column(col).to_numpy()
            out[key] = arr
        self.pending.clear()
        return out

    def blocks(self, slot: float = SLOT, anchored: bool = True) -> np.ndarray:
        """Block numbers of the clock (:func:`backtest.data.clock.lake_blocks`): ``slot`` is the chain's own
        block time (not the replay step), ``anchored`` the Merge anchor's use without a blocks table."""
        block, info, files = lake_blocks(self.con, self.ts, self.start, slot, anchored)
        if info is not None:
            self.series.append(info)
            self.files.update(files)
        return block
