"""The block clock (DESIGN.md section 5): one entry per replayed step, and the block numbers at those times.

The clock is ``ts[k] = start + k * block_time`` for ``k < ceil((end - start) / block_time)``. Block numbers
come from the lake's ``blocks`` table where it has one (interpolated), else from the Merge anchor on
Ethereum, else they are the step index.
"""
from __future__ import annotations

import math

import duckdb
import numpy as np

from backtest.data import lake as _lake
from backtest.data.market import SeriesInfo
from backtest.errors import DataError

MERGE_BLOCK = 15537394              # first proof-of-stake block
MERGE_TS = 1663224179               # its timestamp (2022-09-15 06:42:59 UTC)
SLOT = 12                           # seconds per Ethereum slot after the Merge


def block_clock(start: int, end: int, block_time: int = 12) -> np.ndarray:
    """Block times ``start + k * block_time`` for ``k < ceil((end - start) / block_time)`` (int64)."""
    if block_time <= 0:
        raise DataError(f"block_time must be positive, got {block_time}")
    n = max(0, math.ceil((int(end) - int(start)) / int(block_time)))
    return np.int64(start) + np.arange(n, dtype=np.int64) * np.int64(block_time)


def estimate_blocks(ts: np.ndarray, known_ts: np.ndarray | None = None, known_block: np.ndarray | None = None,
                    slot: int = SLOT) -> np.ndarray:
    """Block numbers at times ``ts``.

    With known (ts, block) pairs (the lake's ``blocks`` table) the numbers are linearly interpolated between
    them and extrapolated with ``slot``-second blocks beyond the ends; without, they are estimated from the
    Merge anchor (block 15537394 at 1663224179, one block per 12-second slot; an estimate before the Merge,
    when blocks averaged ~13 s). Never negative.
    """
    t = np.asarray(ts, dtype=np.int64)
    if known_ts is None or len(known_ts) == 0:
        out = MERGE_BLOCK + np.floor_divide(t - MERGE_TS, slot)
        return np.maximum(out, 0).astype(np.int64)
    kt = np.asarray(known_ts, dtype=np.float64)
    kb = np.asarray(known_block, dtype=np.float64)
    order = np.argsort(kt, kind="stable")
    kt, kb = kt[order], kb[order]
    est = np.interp(t.astype(np.float64), kt, kb)
    lo = t < kt[0]
    hi = t > kt[-1]
    est[lo] = kb[0] + np.floor((t[lo] - kt[0]) / slot)
    est[hi] = kb[-1] + np.floor((t[hi] - kt[-1]) / slot)
    return np.maximum(np.floor(est + 1e-9), 0).astype(np.int64)



def lake_blocks(con: duckdb.DuckDBPyConnection, ts: np.ndarray, start: int, slot: float,
                anchored: bool) -> tuple[np.ndarray, SeriesInfo | None, list[str]]:
    """Block numbers of the clock ``ts``: interpolated from the lake's ``blocks`` table (Ethereum's: read only
    when ``anchored``) where it has one (extrapolated with ``slot``-second blocks, the chain's own block time), else the Merge-anchor estimate
    when ``anchored`` (Ethereum), else the block index (other chains: no anchor known). Also returns the
    blocks series read and its files."""
    n = int(ts.shape[0])
    # the blocks table has no chain column: its blocks are Ethereum's, never another chain's clock
    if anchored and _lake.has_table(con, "blocks"):
        # the points bracketing the window (plus everything inside it)
        last = int(ts[-1])
        tab = con.sql(
            "SELECT ts, block, filename FROM blocks "
            "WHERE ts >= coalesce((SELECT max(ts) FROM blocks WHERE ts <= ?), ?) "
            "AND ts <= coalesce((SELECT min(ts) FROM blocks WHERE ts >= ?), ?) ORDER BY ts",
            params=[start, start, last, last],
        ).to_arrow_table()
        kt = tab.column("ts").to_numpy()
        # a window wholly before the table (2022 in a 2024-25 table) keeps the Merge-anchor estimate, not a
        # 12 s extrapolation back from the table's first block (which drifts by the slots missed in between)
        if tab.num_rows and kt[0] <= ts[-1]:
            info = SeriesInfo("blocks", "blocks", tab.num_rows, int(kt[0]), int(kt[-1]),
                              int(np.diff(kt).max()) if kt.size > 1 else 0)
            return (estimate_blocks(ts, kt, tab.column("block").to_numpy(), slot=slot), info,
                    tab.column("filename").to_pylist())
    if anchored:
        return estimate_blocks(ts), None, []
    return np.arange(n, dtype=np.int64), None, []
