"""Differential test for multi-collateral positions: the kernel (ext/_legs.pxi) equals the reference
(backtest/reference/legs.py) on 2-3 collateral legs, with a WETH debt or a stablecoin one.

Each leg is a market of tests/unit/test_differential.py (its own peg path with de-pegs, exchange rate, supply APR,
LTV / LT / bonus / fee and oracle feed) on one shared clock, borrow APR, gas and USD price; legs are correlated by
mixing a common de-peg into each leg's own. With ``usd`` drawn every leg is re-denominated into a USDC debt (one
ETH/USD walk, as tests/unit/test_differential_debt.py). Venues: the Aave family, the generic venue and
Compound III (Morpho Blue has one collateral and is refused). Tolerances are those of the one-collateral
differential (assert_same), and the dense path must equal the chunk-skipping one bit for bit.
"""
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from backtest.engine import Lane, record_indices, run_core, run_reference_batch
from backtest.legs import legs_market
from backtest.schema import EVENT_KINDS, PROTOCOL_NAMES
from tests.unit.test_differential import assert_same, make_market, make_params
from tests.unit.test_differential_debt import eth_usd_walk

SHARED = ("ts", "block", "eth_usd", "borrow_apr", "gas_gwei", "gas_token_price")
LEG_VENUES = ["aave-v3", "aave-v2", "spark", "compound-v3", "generic"]


def make_legs(seed: int, n: int, irregular: bool, n_legs: int, usd: bool):
    base = make_market(seed, n, irregular)
    rng = np.random.default_rng(seed + 7)
    common = np.ones(n)
    if rng.random() < 0.6:                          # a shared de-peg (correlated legs)
        c, w, depth = rng.integers(0, n), rng.integers(2, max(3, n // 2)), rng.uniform(0.02, 0.3)
        common -= depth * np.clip(1 - np.abs(np.arange(n) - c) / w, 0, None)
    parts = []
    for k in range(n_legs):
        m = make_market(seed + 1000 * (k + 1), n, irregular) if k else base
        for name in SHARED:
            setattr(m, name, getattr(base, name).copy())
        m.price = m.price * common
        m.hold_price = m.price.copy()
        m.hold_xrate = m.xrate.copy()
        parts.append(m)
    if usd:
        up = eth_usd_walk(rng, n) / (1.0 + np.cumsum(rng.normal(0, 2e-4, n)))
        for m in parts:
            m.underlying_price = up.copy()
            m.gas_token_price = up.copy()
            for name in ("price", "oracle_feed", "hold_price"):
                setattr(m, name, getattr(m, name) * up)
            m.eth_usd = base.eth_usd.copy()
    return legs_market(tuple(parts), ("wstETH", "weETH", "rETH")[:n_legs])


def weights(rng, n_configs: int, n_legs: int) -> np.ndarray:
    w = rng.uniform(0.05, 1.0, (n_configs, n_legs))
    return w / w.sum(axis=1, keepdims=True)


def legs_case(seed, n, irregular, n_legs, usd, oracle, kind, protocol, chunk, record, n_configs):
    m = make_legs(seed, n, irregular, n_legs, usd)
    rng = np.random.default_rng(seed + 1)
    p = np.concatenate([make_params(rng, m, kind, protocol) for _ in range(n_configs)])
    # target LTV within the weakest leg's max LTV (the weighted check is the engine's; the draw stays inside)
    ltv0 = min(float(x.ltv[0]) for x in m.legs)
    p["target_ltv"] = np.minimum(p["target_ltv"], ltv0 * 0.999)
    w = weights(rng, n_configs, n_legs)
    lanes = [Lane(oracle, 0.0968, int(rng.choice([600, 3600, 7 * 86400])), PROTOCOL_NAMES[int(p[0]["protocol"])])]
    rec = record_indices(m, record)
    me = int(rng.integers(1, 50))
    core = run_core(m, p, lanes, rec, me, chunk=chunk, event_cap=int(rng.integers(1, 8)), weights=w)
    ref = run_reference_batch(m, p, lanes, rec, me, weights=w)
    years = max(float(m.ts[-1] - m.ts[0]), 1.0) / (365 * 86400)
    assert_same(core, ref, years=years)
    for i in range(n_configs):
        assert np.array_equal(core.event_legs[i], ref.event_legs[i])
    assert np.allclose(core.leg_summary, ref.leg_summary, rtol=1e-9, atol=1e-9)
    assert np.allclose(core.leg_records, ref.leg_records, rtol=1e-9, atol=1e-9, equal_nan=True)
    dense = run_core(m, p, lanes, rec, me, chunk=chunk, dense=True, weights=w)
    assert_same(core, dense, exact=True)
    assert np.array_equal(core.leg_summary, dense.leg_summary)
    assert np.array_equal(core.leg_records, dense.leg_records, equal_nan=True)
    return m, p, core, ref


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(2, 300),
    irregular=st.booleans(),
    n_legs=st.integers(2, 3),
    usd=st.booleans(),
    oracle=st.sampled_from(["market", "capo", "chainlink"]),
    kind=st.sampled_from(["hold", "lend", "loop", "flash-loan"]),
    protocol=st.sampled_from(LEG_VENUES),
    chunk=st.integers(1, 64),
    record=st.sampled_from([-1, 0, 60, 600]),
    n_configs=st.integers(1, 3),
)
def test_legs_core_equals_reference(seed, n, irregular, n_legs, usd, oracle, kind, protocol, chunk, record,
                                    n_configs):
    legs_case(seed, n, irregular, n_legs, usd, oracle, kind, protocol, chunk, record, n_configs)


def test_the_draws_reach_liquidations_of_one_leg_and_absorbs():
    """The differential is only as good as what it reaches: over fixed seeds both an Aave-family liquidation
    naming a leg and a Compound III absorb of every leg occur (and a skipped chunk: dense == skip is then a test)."""
    seen_leg = seen_absorb = False
    for seed in range(40):
        for protocol in ("aave-v3", "compound-v3"):
            m, p, core, ref = legs_case(seed, 200, False, 2, bool(seed % 2), "market", "loop", protocol, 16, -1, 2)
            for ev, legs in zip(core.events, core.event_legs):
                liq = ev["kind"] == EVENT_KINDS["liquidation"]
                seen_leg |= bool(np.any(liq & (legs >= 0)))
                seen_absorb |= bool(protocol == "compound-v3" and np.any(liq & (legs == -1)))
        if seen_leg and seen_absorb:
            break
    assert seen_leg and seen_absorb
