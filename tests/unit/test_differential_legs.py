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
from backtest.schema import EVENT_KINDS, PROTOCOL_NAMES, PROTOCOLS, RECORD_FIELDS, STRATEGIES
from tests.unit.test_differential import assert_same, make_market, make_params, restake_leg
from tests.unit.test_differential_branches import FORCES
from tests.unit.test_differential_hunt import FORCES as HUNT_FORCES
from tests.unit.test_differential_debt import eth_usd_walk

SHARED = ("ts", "block", "eth_usd", "borrow_apr", "gas_gwei", "gas_token_price")
HF = RECORD_FIELDS.index("hf")
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


def on_every_leg(force, m, p, oracle, seed):
    """A one-collateral generator (tests/unit/test_differential_branches.py, _hunt.py) applied to every leg with
    the same draws; the shared series (one clock, debt and chain) are then leg 0's on every leg."""
    legs = list(m.legs)
    for leg in legs:
        _, p, forced = force(leg, p, oracle, np.random.default_rng(seed))
    for leg in legs[1:]:
        for name in SHARED:
            setattr(leg, name, getattr(legs[0], name).copy())
    return legs_market(tuple(legs), m.tokens), p, forced


def weights(rng, n_configs: int, n_legs: int) -> np.ndarray:
    w = rng.uniform(0.05, 1.0, (n_configs, n_legs))
    return w / w.sum(axis=1, keepdims=True)


def legs_case(seed, n, irregular, n_legs, usd, oracle, kind, protocol, chunk, record, n_configs, force=None):
    m = make_legs(seed, n, irregular, n_legs, usd)
    rng = np.random.default_rng(seed + 1)
    p = np.concatenate([make_params(rng, m, kind, protocol) for _ in range(n_configs)])
    # target LTV within the weakest leg's max LTV (the weighted check is the engine's; the draw stays inside)
    ltv0 = min(float(x.ltv[0]) for x in m.legs)
    p["target_ltv"] = np.minimum(p["target_ltv"], ltv0 * 0.999)
    if force is not None and not getattr(force, "whole", False):
        m, p, oracle = on_every_leg(force, m, p, oracle, seed + 3)
    w = weights(rng, n_configs, n_legs)
    if getattr(force, "dominant", False):       # one leg holds 95 %: a whole-debt seizure fits in it
        w = np.tile(np.r_[0.95, np.full(n_legs - 1, 0.05 / (n_legs - 1))], (n_configs, 1))
    if getattr(force, "whole", False):          # a generator of the legs market itself, given the weights
        m, p, oracle = force(m, p, oracle, np.random.default_rng(seed + 3), w)
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


# ------------------------------------------------------------------------------------------ rare branches
def force_crash(m, p, oracle, rng):
    # a 15-50 % one-block fall of the market price under the market oracle: HF falls through 0.95, the close
    # factor is 100 % and a seizure that fits repays the whole debt
    k = int(rng.integers(1, max(len(m), 2)))
    m.price[k:] *= rng.uniform(0.5, 0.85)
    p["kind"] = STRATEGIES["loop"]
    p["loops"] = 12
    p["target_ltv"] = m.ltv[0] * rng.uniform(0.95, 0.999, len(p))
    p["cf_ovr"] = np.nan if p["protocol"][0] != PROTOCOLS["generic"] else 1.0
    p["reb_on"] = 0
    p["exit_on"] = 0
    return m, p, "market"


def force_slashes(m, p, oracle, rng):
    # the restaking leg (rewards, slashes, a hold token apart) on every leg: slashed chunks are never skipped
    return restake_leg(m, rng), p, oracle


def force_dominant_crash(m, p, oracle, rng):
    # Aave v3.3, a fall of 13-18 % under the market oracle on a leg that holds 95 % of the value: HF ~ 0.8 /
    # (0.77 x 0.97) = 1.07 falls to 0.88-0.93, below 0.95 (close factor 100 %) but above LT x LB / 0.95 =
    # 0.86, where the whole debt's seizure fits in the leg: debt 0 after
    k = int(rng.integers(1, max(len(m), 2)))
    m.lt[:] = 0.8
    m.ltv[:] = 0.77
    m.bonus[:] = 0.02
    m.price[k:] *= rng.uniform(0.82, 0.87)
    p["protocol"] = PROTOCOLS["aave-v3"]
    p["v33_from"] = int(m.ts[0])
    p["kind"] = STRATEGIES["loop"]
    p["loops"] = 12
    p["target_ltv"] = 0.77 * 0.97
    p["cf_ovr"] = np.nan
    p["reb_on"] = 0
    p["exit_on"] = 0
    return m, p, "market"


def force_relev_discount(m, p, oracle, rng):
    # releverage under the feed oracle with the DEX price 40-60 % below the feed: a unit borrowed buys more
    # than 1 + ff of oracle value x LTV (and x LT), so neither the HF nor the LTV bound limits the loan (f = inf:
    # no action); with the LTV cut by 0.1 from a later block the room is negative instead (f <= 0)
    k = int(rng.integers(1, max(len(m), 2)))
    if rng.random() < 0.5:
        m.price[k:] = m.oracle_feed[k:] * rng.uniform(0.4, 0.6)
    else:
        m.ltv[k:] -= 0.1
    p["kind"] = STRATEGIES["loop"]
    p["entry"] = 0                                      # swap: the DEX price matters
    p["reb_on"] = 1
    p["check_every"] = 12
    p["delev_below"] = 0.5
    p["target_hf"] = rng.uniform(1.1, 2.0, len(p))
    p["relev_above"] = 1.0
    p["exit_on"] = 0
    return m, p, "chainlink"


def force_v33_leftover(m, p, oracle, rng):
    # the one-collateral v3.3 leftover generator with one leg holding 95 %, so the leg alone is above $2,000
    return HUNT_FORCES["v33_leftover"](m, p, oracle, rng)


def force_v33_leftover_cf(m, p, oracle, rng):
    # as above with a close factor of 60-95 % (cf_ovr) and a 2 % bonus: the debt a liquidation leaves falls
    # below $1,000 while the collateral stays above it, so the repay shrinks to the debt's floor
    m, p, oracle = HUNT_FORCES["v33_leftover"](m, p, oracle, rng)
    m.bonus[:] = 0.02
    p["cf_ovr"] = rng.uniform(0.6, 0.95, len(p))
    return m, p, oracle


def force_sale_below_dust(m, p, oracle, rng, w):
    # test_differential_branches.force_sale_below_dust on the legs market: flat series, no interest, the
    # deleverage line and target 1e-14 and 2e-14 above the HF the reference reaches after the opening, so the
    # sale that lifts HF to the target is below the dust (1e-12 x capital): no action
    for leg in m.legs:
        for name in ("price", "xrate", "oracle_feed", "ltv", "lt"):
            getattr(leg, name)[:] = getattr(leg, name)[0]
        leg.borrow_apr[:] = 0.0
        leg.supply_apr[:] = 0.0
    p["kind"] = STRATEGIES["loop"]
    p["loops"] = rng.integers(2, 12, len(p))
    p["target_ltv"] = min(float(leg.ltv[0]) for leg in m.legs) * rng.uniform(0.7, 0.95, len(p))
    p["exit_on"] = 0
    p["unwind_at_end"] = 0
    p["reb_on"] = 0
    lanes = [Lane(oracle, 0.0968, 7 * 86400, PROTOCOL_NAMES[int(p[0]["protocol"])])]
    one = legs_market(tuple(leg.slice(0, 1) for leg in m.legs), m.tokens)
    hf = run_reference_batch(one, p, lanes, record_indices(one, 0), 1, weights=w).records[:, 0, HF]
    p["reb_on"] = 1
    p["check_every"] = 12
    p["delev_below"] = hf * (1.0 + 1e-14)
    p["target_hf"] = hf * (1.0 + 2e-14)
    p["relev_above"] = np.inf
    return m, p, oracle


force_dominant_crash.dominant = force_v33_leftover.dominant = force_v33_leftover_cf.dominant = True
force_sale_below_dust.whole = True
LEG_FORCES = {"crash": force_crash, "dominant_crash": force_dominant_crash, "relev_discount": force_relev_discount, "slashes": force_slashes, **{k: FORCES[k] for k in (
    "ltv_zero", "flash_deep_discount", "queue_insolvent", "close_below_target")},
    **{k: HUNT_FORCES[k] for k in ("ltv_cap", "close_all", "relev_no_room", "cap64")}, "v33_leftover": force_v33_leftover,
    "v33_leftover_cf": force_v33_leftover_cf, "sale_below_dust": force_sale_below_dust}


@pytest.mark.parametrize("branch", sorted(LEG_FORCES))
@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(2, 300),
    irregular=st.booleans(),
    n_legs=st.integers(2, 3),
    usd=st.booleans(),
    oracle=st.sampled_from(["market", "capo", "chainlink"]),
    protocol=st.sampled_from(["aave-v3", "aave-v2", "spark", "generic"]),
    chunk=st.integers(1, 64),
    record=st.sampled_from([-1, 0, 600]),
    n_configs=st.integers(1, 3),
)
def test_legs_core_equals_reference_in_rare_branches(branch, seed, n, irregular, n_legs, usd, oracle, protocol,
                                                     chunk, record, n_configs):
    if branch.startswith("v33_leftover"):
        n_configs, usd = 1, False           # the USD scale is set for one configuration's debt
    legs_case(seed, n, irregular, n_legs, usd, oracle, "loop", protocol, chunk, record, n_configs,
              force=LEG_FORCES[branch])
