"""Algebraic properties of a replay (STYLE.md 'properties')."""
import math

import numpy as np
import pytest

from backtest.engine import Lane, record_indices, run_core
from backtest.schema import EVENT_KINDS, RECORD_FIELDS, SUMMARY_DTYPE
from tests.helpers import market, params
from tests.unit.test_differential import make_market, make_params

F = {name: i for i, name in enumerate(RECORD_FIELDS)}


def volatile_market(n=3000, seed=3):
    rng = np.random.default_rng(seed)
    xr = 1.15 + np.cumsum((rng.random(n) < 0.01) * 0.0005)
    peg = np.clip(1 + np.cumsum(rng.normal(0, 0.003, n)), 0.8, 1.05)
    return market(xr * peg, xrate=xr, borrow_apr=np.where(np.arange(n) > n // 2, 0.4, 0.03), supply_apr=0.001,
                  gas=rng.uniform(1, 50, n))


def run(m, p, oracle="market", record=0, **kw):
    return run_core(m, p, [Lane(oracle, 0.0968, 7 * 86400)], record_indices(m, record), 300, **kw)


def test_equity_is_collateral_value_minus_debt_plus_cash():
    m = volatile_market()
    p = params(loops=8, target_ltv=0.9, entry="swap", swap_fee=1e-4, gas_gwei=math.nan, gas_open=6e5,
               gas_loop=2.5e5, reb_on=1, delev_below=1.02, target_hf=1.06, relev_above=1.2)
    out = run(m, p)
    r = out.records[0]
    assert np.allclose(r[:, F["equity"]], r[:, F["collateral"]] * m.price - r[:, F["debt"]] + r[:, F["cash"]],
                       rtol=1e-12, atol=1e-9)
    assert np.allclose(r[:, F["equity_rate"]], r[:, F["collateral"]] * m.xrate - r[:, F["debt"]] + r[:, F["cash"]],
                       rtol=1e-12, atol=1e-9)


def test_hf_at_least_one_after_every_block_without_a_liquidation():
    m = volatile_market(seed=11)
    p = params(loops=10, target_ltv=0.92)
    out = run(m, p)
    hf = out.records[0][:, F["hf"]]
    liq_blocks = set(out.events[0]["idx"][out.events[0]["kind"] == EVENT_KINDS["liquidation"]].tolist())
    assert liq_blocks, "the scenario should liquidate (otherwise the property is vacuous)"
    quiet = np.array([b not in liq_blocks for b in range(len(m))])
    assert np.all(hf[quiet] >= 1.0)


def test_leverage_one_equals_holding_the_token():
    # lend (supplied, no borrow) at a zero supply rate is the same as holding: same tokens, same equity
    m = volatile_market()
    m.supply_apr[:] = 0.0
    hold = run(m, params(kind="hold", entry="swap", swap_fee=3e-4))
    lend = run(m, params(kind="lend", entry="swap", swap_fee=3e-4))
    assert np.array_equal(hold.records[0][:, F["equity"]], lend.records[0][:, F["equity"]])
    assert lend.summaries[0]["end_equity"] == pytest.approx(lend.summaries[0]["hold_end_equity"], rel=1e-12)
    assert np.nanmax(lend.records[0][:, F["leverage"]]) == pytest.approx(1.0, rel=1e-12)


def test_a_batch_equals_single_runs_and_reruns_are_identical():
    m = make_market(7, 2000, False)
    rng = np.random.default_rng(1)
    p = np.concatenate([make_params(rng, m, k, "aave-v3") for k in ("loop", "flash-loan", "lend", "loop", "hold")])
    batch = run(m, p, record=600)
    for i in range(len(p)):
        single = run(m, p[i: i + 1], record=600)
        for name in SUMMARY_DTYPE.names:
            assert np.array_equal(batch.summaries[name][i], single.summaries[name][0], equal_nan=True), name
        assert np.array_equal(batch.events[i], single.events[0])
        assert np.array_equal(batch.records[i], single.records[0], equal_nan=True)
    again = run(m, p, record=600)
    assert again.summaries.tobytes() == batch.summaries.tobytes()


def test_thread_count_does_not_change_results():
    m = make_market(8, 1500, True)
    rng = np.random.default_rng(2)
    p = np.concatenate([make_params(rng, m, "loop", "aave-v3") for _ in range(16)])
    one = run(m, p, threads=1)
    two = run(m, p, threads=2)
    assert one.summaries.tobytes() == two.summaries.tobytes()
    assert all(np.array_equal(a, b) for a, b in zip(one.events, two.events))


def test_event_buffer_regrows_without_losing_events():
    m = volatile_market(seed=11)
    p = params(loops=10, target_ltv=0.92)
    small = run(m, p, event_cap=1)
    big = run(m, p, event_cap=4096)
    assert small.summaries[0]["n_events"] > 1
    assert np.array_equal(small.events[0], big.events[0])
    assert small.summaries[0]["events_dropped"] == 0
