"""CAPO without look-ahead: a snapshot taken before the window reads the lake's rate as of its time.

The snapshot of a block at time t is taken at snap = (t // age) * age - age (the engines' weekly-refresh rule,
PROTOCOLS.md: "the snapshot before the window must be read from data before the window"). For the first
blocks of a window that time lies before run.start; the rate then is the lake's last point at or before
snap, never the first in-window rate (which has already grown, so reading it would loosen the cap).
"""
import numpy as np
import polars as pl
import pytest

from backtest.data import lake_write as _lake_write
from backtest.data.asof import Aligner
from backtest.data.build import capo_history
from backtest.errors import DataError
from backtest.schema import RECORD_FIELDS
from tests.helpers import both, market, params

AGE = 7 * 86400
Y = 365 * 86400
G = 0.0968
F = {name: i for i, name in enumerate(RECORD_FIELDS)}
T0 = 20 * AGE + 1000            # window start: 1,000 s into a snapshot week
SNAP = 19 * AGE                 # (T0 // AGE) * AGE - AGE: block 0's snapshot time, 7 d 1,000 s before T0


def capo_market(n=5):
    # live rate 1.20 in the window (a jump the cap must catch); pre-window: 1.10 at SNAP - 10 s (the rate
    # as of SNAP) and 1.12 at SNAP + 100 s (after the snapshot time: must not be read)
    m = market(np.full(n, 1.20), xrate=1.20, t0=T0, dt=12)
    m.capo_pre_ts = np.array([SNAP - 10, SNAP + 100], dtype=np.int64)
    m.capo_pre_xrate = np.array([1.10, 1.12])
    return m


def test_capo_snapshot_before_the_window_reads_the_rate_as_of_then():
    m = capo_market()
    core, ref = both(m, params(kind="lend"), oracle="capo", record=0, capo=(G, AGE))
    for b in range(len(m)):
        t = T0 + 12 * b
        cap = 1.10 * (1.0 + G * (t - SNAP) / Y)        # block 0: 1.10 x (1 + 0.0968 x 605,800 / 31,536,000)
        want = min(1.20, cap)                           # = cap ~ 1.102045: well below the live 1.20
        assert want == pytest.approx(1.10 * (1 + 0.0968 * (605_800 + 12 * b) / 31_536_000), rel=1e-15)
        for out in (core, ref):
            assert out.records[0][b, F["oracle_price"]] == pytest.approx(want, rel=1e-14)


def test_without_pre_window_points_the_first_block_stands_in():
    # a market built from arrays alone (tests, synth): the old rule, the first block's rate
    m = market(np.full(3, 1.20), xrate=1.20, t0=T0, dt=12)
    core, ref = both(m, params(kind="lend"), oracle="capo", record=0, capo=(G, AGE))
    cap0 = 1.20 * (1.0 + G * (T0 - SNAP) / Y)
    for out in (core, ref):
        assert out.records[0][0, F["oracle_price"]] == pytest.approx(min(1.20, cap0), rel=1e-14) == 1.20


def test_a_snapshot_inside_the_window_reads_the_window():
    # window from 20 weeks + 1 day: block 0's snapshot (19 weeks) is before it and reads the pre point 1.0;
    # at t = 22 weeks + 120 s the snapshot time is 21 weeks, inside the window, at block (21 AGE - t0) / 12
    t0 = 20 * AGE + 86400
    b_snap = (21 * AGE - t0) // 12                      # 43,200: the first block at or after 21 weeks
    b = (22 * AGE + 120 - t0) // 12                     # 93,610
    n = b + 1
    xr = np.where(np.arange(n) < 50_000, 1.16, 1.30)    # the live rate jumps after the snapshot block
    m = market(np.full(n, 1.3), xrate=xr, t0=t0, dt=12)
    m.capo_pre_ts = np.array([19 * AGE - 5], dtype=np.int64)
    m.capo_pre_xrate = np.array([1.0])
    core, ref = both(m, params(kind="lend"), oracle="capo", record=0, capo=(G, AGE))
    assert xr[b_snap] == 1.16 and xr[b] == 1.30
    for out in (core, ref):
        # block 0: 1.0 x (1 + g (t0 - 19 weeks) / Y) ~ 1.0149 < 1.16 live
        assert out.records[0][0, F["oracle_price"]] == pytest.approx(1.0 * (1 + G * (t0 - 19 * AGE) / Y), rel=1e-14)
        # block b: 1.16 x (1 + g (1 week + 120 s) / Y) ~ 1.1622 < 1.30 live
        assert out.records[0][b, F["oracle_price"]] == pytest.approx(1.16 * (1 + G * (AGE + 120) / Y), rel=1e-14)


def write_rates(tmp_path, rows):
    df = pl.DataFrame({"ts": [r[0] for r in rows], "token": ["wstETH"] * len(rows),
                       "underlying": ["stETH"] * len(rows), "rate": [r[1] for r in rows],
                       "source": ["test"] * len(rows)})
    _lake_write.write_table(tmp_path, "exchange_rates", df, "wsteth")


def test_alignment_reads_the_lake_before_the_window(tmp_path):
    # points: 1.00 at SNAP - 3 days (before the last one at or before SNAP: not needed), 1.10 at SNAP - 10 s,
    # 1.12 at SNAP + 100 s, 1.20 at T0 (inside the window: not read)
    write_rates(tmp_path, [(SNAP - 3 * 86400, 1.00), (SNAP - 10, 1.10), (SNAP + 100, 1.12), (T0, 1.20)])
    al = Aligner(tmp_path, T0, T0 + 3600, 12)
    try:
        ts, x = capo_history(al, "wstETH", "test", AGE)
    finally:
        al.close()
    assert ts.tolist() == [SNAP - 10, SNAP + 100] and x.tolist() == [1.10, 1.12]


def test_alignment_refuses_a_lake_that_starts_after_the_first_snapshot(tmp_path):
    write_rates(tmp_path, [(SNAP + 100, 1.12), (T0, 1.20)])
    al = Aligner(tmp_path, T0, T0 + 3600, 12)
    try:
        with pytest.raises(DataError, match="exchange_rates wstETH: the capo oracle's first snapshot"):
            capo_history(al, "wstETH", "test", AGE)
    finally:
        al.close()
