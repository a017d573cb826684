"""Paths as an axis (backtest/paths.py, ext/_paths.pxi): the core replays (configuration, path) pairs, path k
reading the collateral's price x price_factor[k, sample_idx[b]]. A factor of 1.0 is the plain run bit for bit;
a path equals the plain run on the market multiplied by hand; the core equals the reference engine."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from backtest.data.market import Market
from backtest.engine import Lane, Outputs, record_indices, run_core, run_core_paths
from backtest.errors import DataError
from backtest.paths import Paths, scale_market
from backtest.reference import run_reference_paths
from backtest.results import summary_frame
from backtest.schema import EVENT_DTYPE, EVENT_KINDS, N_RECORD, PROTOCOL_NAMES, SUMMARY_DTYPE
from tests.helpers import params
from tests.unit.test_differential import VENUES, assert_same, make_market, make_params, venue_market
from tests.unit.test_differential_v4 import spoke

LIQ = EVENT_KINDS.index("liquidation") if isinstance(EVENT_KINDS, (list, tuple)) else EVENT_KINDS["liquidation"]


def rows(out: Outputs, idx) -> Outputs:
    idx = list(idx)
    return Outputs(out.summaries[idx], [out.events[i] for i in idx], out.records[idx], out.rec_idx)


def same_exact(a: Outputs, b: Outputs) -> None:
    for name in SUMMARY_DTYPE.names:
        assert np.array_equal(a.summaries[name], b.summaries[name], equal_nan=True), name
    assert len(a.events) == len(b.events)
    for ea, eb in zip(a.events, b.events):
        assert ea.tobytes() == eb.tobytes()
    assert np.array_equal(a.records, b.records, equal_nan=True)


def ref_outputs(results, rec_idx) -> Outputs:
    sm = np.zeros(len(results), dtype=SUMMARY_DTYPE)
    records = np.zeros((len(results), len(rec_idx), N_RECORD))
    evs = []
    for i, res in enumerate(results):
        for k, v in res.summary.items():
            sm[i][k] = v
        ev = np.zeros(len(res.events), dtype=EVENT_DTYPE)
        for j, e in enumerate(res.events):
            ev[j] = e
        evs.append(ev)
        records[i] = res.records
    return Outputs(sm, evs, records, rec_idx)


def flat_market(n: int) -> Market:
    # 10-minute blocks, wstETH-like: price = exchange rate = 1.15 ETH, LT 0.93, no rates or costs
    return Market.from_arrays(n, ts=1_735_000_000 + 600 * np.arange(n), price=1.15, xrate=1.15, eth_usd=3000.0,
                              borrow_apr=0.0, supply_apr=0.0, ltv=0.93, lt=0.93, bonus=0.05, pfee=0.1,
                              gas_gwei=0.0)


def test_two_paths_identity_and_a_one_day_dip():
    n = 4 * 144                                   # four days of 10-minute blocks
    m = flat_market(n)
    # a loop at LTV 0.9 on LT 0.93: HF = 0.93 / 0.9 = 1.0333; with a market oracle a 20 % dip makes it
    # 0.8 x 1.0333 = 0.8267 < 1, so path 1 liquidates and path 0 (no dip) does not
    p = params(kind="loop", loops=30, target_ltv=0.9)
    lanes = [Lane("market", 0.0, 3600, "aave-v3")]
    rec = record_indices(m, 60)
    f = np.ones((2, 96))                          # hourly samples: 96 over the four days
    f[1, 24:48] = 0.8                             # path 1: 20 % down during the second day
    paths = Paths.from_times(m.ts, 3600, f)
    assert paths.sample_idx[6] == 1 and paths.sample_idx[-1] == 95
    out, path = run_core_paths(m, p, lanes, rec, 6, paths)
    assert list(path) == [0, 1]
    plain = run_core(m, p, lanes, rec, 6)
    same_exact(rows(out, [0]), plain)             # factor 1.0: the plain run, bit for bit
    assert LIQ not in set(out.events[0]["kind"])
    liq = out.events[1][out.events[1]["kind"] == LIQ]
    assert len(liq) >= 1
    # the first liquidation is at the first block of the dip: sample 24 starts at 24 h = block 144
    assert int(liq["idx"][0]) == 144
    hand = Market.from_arrays(n, ts=m.ts, price=m.price * paths.block_factor(1), xrate=1.15, eth_usd=3000.0,
                              borrow_apr=0.0, supply_apr=0.0, ltv=0.93, lt=0.93, bonus=0.05, pfee=0.1,
                              gas_gwei=0.0)
    assert hand.price[143] == 1.15 and hand.price[144] == 1.15 * 0.8 and hand.price[288] == 1.15
    same_exact(rows(out, [1]), run_core(hand, p, lanes, rec, 6))
    ref = ref_outputs(run_reference_paths(m, p, lanes, rec, 6, paths), rec)
    assert_same(out, ref, years=4 / 365)
    # the summary rows: one per (configuration, path), a `path` column only when paths are used
    df = summary_frame(out, m, [{}, {}], [0, 0], [100.0, 100.0], ["WETH", "WETH"], path=path)
    assert df.columns[:2] == ["config_id", "path"] and df["path"].to_list() == [0, 1]
    assert df["liq_count"].to_list()[0] == 0 and df["liq_count"].to_list()[1] >= 1
    assert "path" not in summary_frame(plain, m, [{}], [0], [100.0], ["WETH"]).columns


def test_paths_refuse_bad_input():
    with pytest.raises(DataError, match=r"price_factor\[1, 2\]"):
        Paths(np.zeros(3, dtype=np.int64), np.array([[1.0, 1.0, 1.0], [1.0, 1.0, 0.0]]))
    with pytest.raises(DataError, match="non-decreasing"):
        Paths(np.array([0, 2, 1]), np.ones((1, 3)))
    with pytest.raises(DataError, match="non-decreasing"):
        Paths(np.array([0, 1, 3]), np.ones((1, 3)))
    m = flat_market(10)
    with pytest.raises(DataError, match="sample_idx has 9 blocks"):
        run_core_paths(m, params(), [Lane("market", 0.0, 3600)], record_indices(m, 0), 1,
                       Paths(np.zeros(9, dtype=np.int64), np.ones((2, 1))))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(1, 300),
    oracle=st.sampled_from(["exchange-rate", "market", "capo", "chainlink"]),
    kind=st.sampled_from(["hold", "lend", "loop", "flash-loan"]),
    protocol=st.sampled_from(VENUES + ["aave-v4"]),
    chunk=st.integers(1, 64),
    n_configs=st.integers(1, 3),
    n_paths=st.integers(1, 3),
    interval=st.sampled_from([12, 300, 3600]),
)
def test_paths_core_equals_reference(seed, n, oracle, kind, protocol, chunk, n_configs, n_paths, interval):
    m = venue_market(make_market(seed, n, True), protocol)
    rng = np.random.default_rng(seed + 1)
    p = np.concatenate([make_params(rng, m, kind, protocol) for _ in range(n_configs)])
    if protocol == "aave-v4":
        m, p, oracle = spoke(m, p, oracle, rng)
    lanes = [Lane(oracle, 0.0968, int(rng.choice([600, 3600])), PROTOCOL_NAMES[int(p[0]["protocol"])])]
    ns = int((m.ts[-1] - m.ts[0]) // interval) + 1
    f = np.exp(rng.normal(0.0, 0.08, (n_paths, ns)))
    f[0] = 1.0
    paths = Paths.from_times(m.ts, interval, f)
    rec = record_indices(m, int(rng.choice([-1, 0, 60])))
    me = int(rng.integers(1, 50))
    out, path = run_core_paths(m, p, lanes, rec, me, paths, chunk=chunk, event_cap=int(rng.integers(1, 8)))
    assert list(path) == list(range(n_paths)) * n_configs
    # path 0 (factor 1.0) is the plain run; every path is the plain run on its market built by hand
    for k in range(n_paths):
        pick = [i * n_paths + k for i in range(n_configs)]
        mk = m if k == 0 else scale_market(m, paths, k, True)
        same_exact(rows(out, pick), run_core(mk, p, lanes, rec, me, chunk=chunk))
    dense, _ = run_core_paths(m, p, lanes, rec, me, paths, chunk=chunk, dense=True)
    same_exact(out, dense)
    ref = ref_outputs(run_reference_paths(m, p, lanes, rec, me, paths), rec)
    years = max(float(m.ts[-1] - m.ts[0]), 1.0) / (365 * 86400)
    s = out.summaries.copy()
    ref.summaries["min_hf_idx"] = s["min_hf_idx"]       # an argmin: checked by test_differential's own rule
    assert_same(out, ref, years=years)
