"""Accounting invariants (backtest/invariants.py): hand-worked balances and flows, both engines on random draws
(every block's balances through the reference engine's records), and failures that name the config and block."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from backtest.engine import Lane, record_indices, run_core
from backtest.invariants import (
    InvariantError,
    balance_failures,
    check_flow,
    check_records,
    check_summaries,
    flow_residual,
)
from backtest.reference import run_reference
from tests.helpers import market, params
from tests.unit.test_differential import VENUES, make_market, make_params, venue_market


def test_balances_by_hand():
    # 10 tokens at 1.1 (rate 1.2), debt 5, cash 0.5: equity 11 - 5 + 0.5 = 6.5, at the rate 12 - 5 + 0.5 = 7.5
    ok = balance_failures([10.0], [5.0], [0.5], 1.1, 1.2, [6.5], [7.5], [10.0])
    assert ok == []
    bad = balance_failures([10.0, 10.0], [5.0, -1.0], [0.5, 0.5], 1.1, 1.2, [6.6, 12.5], [7.5, 13.5], [10.0, 10.0])
    assert bad == [(0, "equity != collateral x market price - debt + cash"), (1, "negative debt -1.0")]


def test_flow_by_hand_stake_and_swap():
    # stake entry: 100 WETH become 100 / 1.0 tokens; the rate grows 1.0 -> 1.1: staking yield 10, equity 110
    n = 50
    xr = np.linspace(1.0, 1.1, n)
    m = market(xr * 0.99, xrate=xr)
    p = params(kind="hold", entry="stake", capital=100.0)[0]
    r = run_reference(m, p, "exchange-rate", 0.0, 3600, record_indices(m, -1), 1)
    sm = r.summary
    assert sm["end_equity_rate"] == pytest.approx(110.0, rel=1e-12)
    assert sm["staking_yield"] == pytest.approx(10.0, rel=1e-12)
    assert abs(flow_residual(sm, np.array(r.events, dtype=_ev()), m, p)) <= 1e-12
    # swap entry at a 2 % discount, no fee: 98 WETH buy 100 tokens worth 100 at the rate: discount term +2
    m2 = market(np.full(n, 0.98), xrate=1.0)
    p2 = params(kind="hold", entry="swap", capital=98.0, swap_fee=0.0, slip_model="none")[0]
    r2 = run_reference(m2, p2, "exchange-rate", 0.0, 3600, record_indices(m2, -1), 1)
    ev = np.array(r2.events, dtype=_ev())
    assert r2.summary["end_equity_rate"] == pytest.approx(100.0, rel=1e-12)
    assert ev["coll"][0] * (1.0 - 0.98) == pytest.approx(2.0, rel=1e-12)
    assert abs(flow_residual(r2.summary, ev, m2, p2)) <= 1e-12
    # a wrong staking yield breaks it, and the error names the configuration and the block
    sm_bad = dict(r2.summary)
    sm_bad["staking_yield"] += 1e-6
    with pytest.raises(InvariantError, match=r"config 4 over the run \(to block 20000049\)"):
        check_flow(sm_bad, ev, m2, p2, "config 4")


def _ev():
    from backtest.schema import EVENT_DTYPE
    return EVENT_DTYPE


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(2, 200),
       kind=st.sampled_from(["hold", "lend", "loop", "flash-loan"]), protocol=st.sampled_from(VENUES),
       oracle=st.sampled_from(["exchange-rate", "market"]))
def test_both_engines_keep_the_invariants(seed, n, kind, protocol, oracle):
    m = venue_market(make_market(seed, n, True), protocol)
    rng = np.random.default_rng(seed)
    p = make_params(rng, m, kind, protocol)
    lane = Lane(oracle, 0.0968, 3600, protocol)
    rec = record_indices(m, 0)
    out = run_core(m, p, [lane], rec, 5)
    check_summaries(out.summaries, m, p, ["config 0"])
    ref = run_reference(m, p[0], oracle, 0.0968, 3600, rec, 5)
    check_records(ref.records, rec, m, float(p[0]["capital"]), "config 0")     # every block
    check_records(out.records[0], rec, m, float(p[0]["capital"]), "config 0")
    check_flow(out.summaries[0], out.events[0], m, p[0], "config 0")
    check_flow(ref.summary, np.array(ref.events, dtype=_ev()), m, p[0], "config 0")


def test_the_flow_is_checked_on_most_draws():
    # the skips (a queue exit that repaid debt, a Compound absorb) are the exception, not the rule
    checked = total = 0
    for seed in range(60):
        for kind in ("hold", "loop", "flash-loan"):
            proto = VENUES[seed % len(VENUES)]
            m = venue_market(make_market(seed, 300, True), proto)
            p = make_params(np.random.default_rng(seed), m, kind, proto)
            out = run_core(m, p, [Lane("market", 0.0968, 3600, proto)], record_indices(m, -1), 5)
            checked += check_flow(out.summaries[0], out.events[0], m, p[0], "c")
            total += 1
    assert checked >= 0.85 * total


def test_failures_name_the_config_and_block():
    m = make_market(1, 100, False)
    p = make_params(np.random.default_rng(1), m, "loop", "aave-v3")
    rec = record_indices(m, 0)
    out = run_core(m, p, [Lane("market", 0.0968, 3600, "aave-v3")], rec, 5)
    s = out.summaries.copy()
    s["end_equity"] *= 1 + 1e-7
    with pytest.raises(InvariantError, match=rf"config 7 at the last block \(block {int(m.block[-1])}\)"):
        check_summaries(s, m, p, ["config 7"])
    recs = out.records[0].copy()
    recs[40, 0] *= 1.001                            # the collateral at the 41st recorded block
    with pytest.raises(InvariantError, match=rf"config 2 at block {int(m.block[rec[40]])}: equity"):
        check_records(recs, rec, m, float(p[0]["capital"]), "config 2")


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(2, 150),
       kind=st.sampled_from(["hold", "lend", "loop", "flash-loan"]), protocol=st.sampled_from(VENUES))
def test_the_flow_holds_at_every_block(seed, n, kind, protocol):
    # the reference engine, traced after every block: the equity at the rate so far = the flows so far
    from backtest.reference.replay import Replay
    from backtest.reference.settings import Settings
    from backtest.schema import RECORD_FIELDS

    class Traced(Replay):
        def record_row(self, b):
            row = super().record_row(b)
            self.trace.append((b, dict(self.sm), len(self.events), row[RECORD_FIELDS.index("equity_rate")]))
            return row

    m = venue_market(make_market(seed, n, True), protocol)
    p = make_params(np.random.default_rng(seed), m, kind, protocol)[0]
    rec = record_indices(m, 0)
    rp = Traced(m, Settings.of_params(p), "market", 0.0968, 3600, rec, 5)
    rp.trace = []
    res = rp.run()
    ev_all = np.array(res.events, dtype=_ev())
    checked = 0
    for b, sm, n_ev, eq in rp.trace:
        r = flow_residual(sm, ev_all[:n_ev], m, p, equity_rate=eq)
        if r is None:
            break                       # a flow the events cannot split: every later block has it too
        scale = float(p["capital"]) + abs(sm["staking_yield"]) + abs(sm["interest_paid"]) + abs(eq)
        assert abs(r) <= 1e-9 * scale, (b, r)
        checked += 1
    assert checked >= 1


def test_aave_v4_spokes_keep_the_invariants():
    from backtest.schema import PROTOCOL_NAMES
    from tests.unit.test_differential_v4 import spoke

    checked = 0
    for seed in range(40):
        for kind in ("loop", "flash-loan"):
            m = venue_market(make_market(seed, 200, True), "aave-v4")
            rng = np.random.default_rng(seed)
            p = make_params(rng, m, kind, "aave-v4")
            m, p, oracle = spoke(m, p, "market", rng)
            out = run_core(m, p, [Lane(oracle, 0.0968, 3600, PROTOCOL_NAMES[int(p[0]["protocol"])])],
                           record_indices(m, -1), 5)
            check_summaries(out.summaries, m, p, ["config 0"])
            checked += check_flow(out.summaries[0], out.events[0], m, p[0], "config 0")
    assert checked >= 60


def test_unknown_kinds_are_not_checked():
    m = make_market(2, 50, False)
    p = make_params(np.random.default_rng(2), m, "loop", "aave-v3")
    out = run_core(m, p, [Lane("market", 0.0968, 3600, "aave-v3")], record_indices(m, -1), 5)
    s = out.summaries.copy()
    s["end_equity"] += 1.0
    with pytest.raises(InvariantError):
        check_summaries(s, m, p, ["config 0"])
    q = p.copy()
    q["kind"] = 99                                  # a kind these rules do not describe
    check_summaries(s, m, q, ["config 0"])
    assert flow_residual(out.summaries[0], out.events[0], m, q[0]) is None
