"""Differential test for Aave v4: the Cython core equals the reference engine on drawn Aave v4 markets.

The markets, configurations and comparisons are test_differential.py's (``check_case``, with its tolerances and
the dense-equals-skipping check); ``spoke`` turns each draw into an Aave v4 Spoke: CF = lt is also the borrow
limit (ltv = lt), the max bonus kept below 1 / CF - 1 (so a liquidation can restore the position), and the
configuration's liquidationBonusFactor, healthFactorForMaxBonus, targetHealthFactor and collateral risk drawn
(the risk premium 0, the example's 18 %, or anything up to 1,000 %). The USD prices of make_market (3 to 3,000
USD per debt unit on capitals of 1 to 5,000) put positions on both sides of the $1,000 dust rules.
"""
import math

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from backtest.schema import STRATEGIES
from tests.unit.test_differential import check_case


def spoke(m, p, oracle, rng):
    m.ltv = m.lt.copy()                                       # v4 has no LTV: CF is the borrow limit
    m.bonus = np.minimum(m.bonus, (1.0 / m.lt - 1.0) * rng.uniform(0.05, 0.95))   # (1 + max bonus) x CF < 1
    k = len(p)
    p["v4_bonus_factor"] = rng.uniform(0.0, 1.0, k)
    p["v4_hf_max_bonus"] = rng.uniform(0.0, 0.99, k)
    p["v4_target_hf"] = rng.choice([1.0, 1.05, 1.3], k) * rng.uniform(1.0, 1.01, k)
    p["v4_collateral_risk"] = rng.choice([0.0, 0.18, float(rng.uniform(0.0, 10.0))], k)
    p["cf_ovr"] = math.nan                                    # no close factor on v4
    return m, p, oracle


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(2, 400),
    irregular=st.booleans(),
    oracle=st.sampled_from(["exchange-rate", "market", "capo", "chainlink"]),
    kind=st.sampled_from(["hold", "lend", "loop", "flash-loan"]),
    chunk=st.integers(1, 64),
    record=st.sampled_from([-1, 0, 60, 600]),
    n_configs=st.integers(1, 3),
    restake=st.booleans(),
)
def test_core_equals_reference_on_aave_v4(seed, n, irregular, oracle, kind, chunk, record, n_configs, restake):
    check_case(seed, n, irregular, oracle, kind, "aave-v4", chunk, record, n_configs, restake, force=spoke)


def test_the_draws_reach_the_v4_rules():
    """The generator is not vacuous: over fixed seeds some draws liquidate (a target-HF call; a bad debt after
    a slash of up to 20 % in one block) and carry a premium."""
    from backtest.engine import run_core

    liquidated = bad = premium = 0
    for seed in range(60):
        m, p, lanes, rec, me = check_case(seed, 300, False, "exchange-rate", "loop", "aave-v4", 16, -1, 3, True,
                                          force=spoke)
        out = run_core(m, p, lanes, rec, me)
        liquidated += int(np.sum(out.summaries["liq_count"] > 0))
        bad += int(np.sum(out.summaries["bad_debt"] > 0))
        premium += int(np.sum((p["v4_collateral_risk"] > 0) & (out.summaries["interest_paid"] > 0)))
    assert liquidated >= 10 and bad >= 1 and premium >= 10, (liquidated, bad, premium)


def spoke_rebalanced(m, p, oracle, rng):
    """A Spoke whose positions carry a risk premium and rebalance at every check: a deleverage repays part of a
    premium-carrying debt (the premium restored first, then drawn shares), a releverage draws more of it."""
    m, p, oracle = spoke(m, p, oracle, rng)
    k = len(p)
    p["v4_collateral_risk"] = rng.uniform(0.05, 2.0, k)
    p["reb_on"] = 1
    p["check_every"] = rng.choice([12, 60, 600], k)
    hf = rng.uniform(1.02, 1.3, k)
    p["delev_below"] = hf * rng.choice([1.0, 1.5], k)           # half of them deleverage at the first check
    p["target_hf"] = p["delev_below"] + rng.uniform(0.01, 0.3, k)
    p["relev_above"] = p["target_hf"] + rng.uniform(0.01, 0.2, k)
    if rng.random() < 0.5:
        # a steep drawn rate under a large premium: the HF drifts down block by block and each deleverage back
        # to a target just above the line repays less than the premium accrued since (the premium restored
        # in part, drawn shares untouched)
        m.borrow_apr = np.full(len(m), rng.uniform(5.0, 50.0))
        p["v4_collateral_risk"] = rng.uniform(2.0, 10.0, k)
        p["target_hf"] = p["delev_below"] * (1.0 + rng.uniform(1e-4, 1e-3, k))
        p["relev_above"] = math.inf
    return m, p, oracle


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(2, 400),
    irregular=st.booleans(),
    oracle=st.sampled_from(["market", "capo", "chainlink"]),
    kind=st.sampled_from(["loop", "flash-loan"]),
    chunk=st.integers(1, 64),
    n_configs=st.integers(1, 3),
)
def test_core_equals_reference_on_aave_v4_rebalancing_a_premium_debt(seed, n, irregular, oracle, kind, chunk,
                                                                       n_configs):
    check_case(seed, n, irregular, oracle, kind, "aave-v4", chunk, 0, n_configs, False, force=spoke_rebalanced)


def spoke_premium_liquidated(m, p, oracle, rng):
    """A premium that outgrows the liquidation: a large collateral risk (500-1,000 %) on a steep drawn rate
    (20-50 a year), a loop opened 1-5 % below the CF and no rebalancing, so the premium accrues untouched until
    HF drifts below 1; the Spoke's target HF just above 1 then repays less than the premium accrued (the
    premium restored in part, the drawn shares untouched)."""
    m, p, oracle = spoke(m, p, oracle, rng)
    k = len(p)
    m.borrow_apr = np.full(len(m), rng.uniform(20.0, 50.0))
    p["kind"] = STRATEGIES["loop"]
    p["loops"] = 12
    p["target_ltv"] = m.lt[0] * rng.uniform(0.95, 0.99, k)
    p["v4_collateral_risk"] = rng.uniform(5.0, 10.0, k)
    p["v4_target_hf"] = rng.uniform(1.0, 1.001, k)
    p["reb_on"] = 0
    p["exit_on"] = 0
    return m, p, oracle


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(50, 400),
    oracle=st.sampled_from(["exchange-rate", "market", "capo", "chainlink"]),
    chunk=st.integers(1, 64),
    n_configs=st.integers(1, 3),
)
def test_core_equals_reference_on_aave_v4_liquidating_less_than_the_premium(seed, n, oracle, chunk, n_configs):
    check_case(seed, n, False, oracle, "loop", "aave-v4", chunk, 0, n_configs, False, force=spoke_premium_liquidated)
