"""The differential test, branch by branch: generators for the kernel branches the random markets miss.

scripts/kernel_branches.py counts which C branches of the kernel (ext/) the differential files reach; every
branch it lists as never taken was either given a generator here or is in its allow-list of branches that are
unreachable by construction (each with its reason). Each generator below pushes every drawn configuration of
`check_case` (tests/unit/test_differential.py: same market builder, same tolerances) into one such branch, and
the core is compared with the reference there:

- AdaptiveCurveIRM (ext/_rates.pxd irm_*): utilisation series below 0, above 1, exactly at the 90 % target
  and between, over steps long enough to clamp the rate at target at its 0.1 % / 200 % bounds, core against
  reference.adaptive_curve_rates; and Morpho markets replayed at the IRM's rates;
- the loop's `room <= 0` (a reserve whose max LTV is 0: nothing may be borrowed);
- a flash-loan open that cannot reach its target LTV (a DEX discount deeper than the flash fee allows);
- a queue exit that must sell more than it holds (insolvent at the DEX price);
- deleverage's close-everything through the "cannot reach the target" route, and a needed sale below the dust;
- Morpho's LIF cap (an LLTV below ~0.565) and a liquidation that seizes all the collateral (bad debt);
- CAPO snapshots taken before the window from several pre-window points;
- one-block markets (a window of no length: APYs 0).
"""
import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from backtest import _core, reference
from backtest.engine import Lane, record_indices, run_core, run_reference_batch
from backtest.schema import EXIT_ROUTES, PROTOCOL_NAMES, PROTOCOLS, RECORD_FIELDS, SLIPPAGE, STRATEGIES
from tests.unit.test_differential import VENUES, check_case, make_market

AAVE_LIKE = ["aave-v3", "aave-v2", "spark", "generic"]


# ------------------------------------------------------------------------------------------ the IRM
# Both engines evaluate the same expressions in the same order (err, lin = 50 err dt / Y, r exp(lin) clamped,
# the trapezoid (start + end + 2 mid) / 4, the curve) with the same libm exp, so they agree to a few ulps;
# the rate at target compounds along the series (each r_T is the last one times exp(lin)), so an ulp per step
# may accumulate: 1e-13 relative over these lengths (<= 400 steps). A wrong constant, clamp or branch moves a
# rate by far more (the smallest: a clamp bound off by 1 % of itself).
IRM_RTOL = 1e-13

utilisation = st.one_of(st.floats(-0.5, 1.5), st.sampled_from([0.0, 0.9, 1.0, -0.1, 1.1]), st.floats(0.85, 0.95))


@settings(max_examples=200, deadline=None)
@given(
    u=st.lists(utilisation, min_size=1, max_size=400),
    seed=st.integers(0, 2**32 - 1),
    rt0=st.one_of(st.floats(0.001, 2.0), st.sampled_from([0.001, 0.04, 2.0])),
    long_steps=st.booleans(),
)
def test_adaptive_curve_irm_core_equals_reference(u, seed, rt0, long_steps):
    # steps of 1 s to 20 days: lin = 50 x err x dt / Y reaches +-2.7 in one 20-day step at |err| = 1, so the
    # rate at target hits its bounds (0.1 % and 200 % a year, from 4 %: a factor 1/40 and 50) within a few steps
    rng = np.random.default_rng(seed)
    n = len(u)
    hi = 20 * 86400 if long_steps else 40
    ts = 1_735_000_000 + np.concatenate([[0], np.cumsum(rng.integers(1, hi, n - 1))]).astype(np.int64)
    u = np.asarray(u, dtype=float)
    rate, rt = _core.adaptive_curve_rates(ts, u, rt0)
    ref_rate, ref_rt = reference.adaptive_curve_rates(ts, u, rt0)
    assert np.allclose(rt, ref_rt, rtol=IRM_RTOL, atol=0), (rt, ref_rt)
    assert np.allclose(rate, ref_rate, rtol=IRM_RTOL, atol=0), (rate, ref_rate)
    assert np.all((rt >= reference.IRM_MIN_RT) & (rt <= reference.IRM_MAX_RT))


def force_irm_rates(m, p, oracle, rng):
    # a Morpho market whose borrow APR is the AdaptiveCurveIRM's along a drawn utilisation path (as
    # backtest/data/align.py derives it for market.irm = "adaptive-curve"), from the reference engine's IRM
    n = len(m)
    u = np.clip(rng.normal(rng.uniform(0.6, 1.0), 0.1, n), -0.1, 1.1)
    m.borrow_apr = reference.adaptive_curve_rates(m.ts, u, float(rng.uniform(0.001, 0.2)))[0]
    m.ltv = m.lt.copy()
    p["protocol"] = PROTOCOLS["morpho-blue"]
    return m, p, oracle


# ------------------------------------------------------------------------------------------ strategies
def force_ltv_zero(m, p, oracle, rng):
    # a reserve whose max LTV is 0 (Aave sets it to 0 to stop new borrowing): a loop's room
    # ltv x coll x price - debt is 0, so its first step borrows nothing (borrow = 0 <= dust: the loop stops)
    k = int(rng.integers(0, len(m)))
    m.ltv[: k + 1] = 0.0
    p["kind"] = STRATEGIES["loop"]
    p["loops"] = rng.integers(1, 12, len(p))
    return m, p, oracle


def force_flash_deep_discount(m, p, oracle, rng):
    # a flash-loan open under the exchange-rate oracle with the DEX price 20-50 % below the rate: a unit bought
    # is worth more than (1 + ff) / x to the oracle, so no finite loan reaches the target LTV x: the loan is
    # then sized at cost, F = C x / (1 - x)
    m.price[0] = m.xrate[0] * rng.uniform(0.5, 0.8)
    p["kind"] = STRATEGIES["flash-loan"]
    p["target_ltv"] = m.ltv[0] * rng.uniform(0.95, 1.0, len(p))
    p["slip_model"] = rng.choice([SLIPPAGE["none"], SLIPPAGE["linear"]], len(p))
    p["slip_param"] = rng.uniform(0, 0.01, len(p))
    p["entry"] = 0                                      # swap: the DEX price matters
    return m, p, "exchange-rate"


def force_queue_insolvent(m, p, oracle, rng):
    # a de-peg exit through the withdrawal queue after a one-block crash of the DEX price to 30-60 % of the
    # rate (the exchange-rate oracle does not see it, so no liquidation comes first): the flash-repaid debt
    # (1 + ff) is worth more tokens than the position holds, so the sale is capped at the collateral
    k = int(rng.integers(1, max(len(m), 2)))
    m.price[k:] = m.xrate[k:] * rng.uniform(0.3, 0.6)
    p["kind"] = rng.choice([STRATEGIES["loop"], STRATEGIES["flash-loan"]], len(p))
    p["target_ltv"] = m.ltv[0] * rng.uniform(0.9, 1.0, len(p))
    p["loops"] = 12
    p["exit_on"] = 1
    p["exit_route"] = EXIT_ROUTES["queue"]
    p["depeg_below"] = rng.uniform(0.7, 0.99, len(p))
    p["reb_on"] = 0
    return m, p, "exchange-rate"


def force_close_below_target(m, p, oracle, rng):
    # deleverage's close-everything. In a valid configuration (target HF above the deleverage line) it needs a
    # tie (tests/unit/test_differential_hunt.py force_close_all; by hand in test_rules_rebalance.py): here the
    # target lies below the position's HF and the line far above it (validation refuses such a configuration;
    # the engines must still agree), so the needed sale is negative, the next round's denominator is negative
    # (no sale reaches the target) and the position, solvent at the DEX price, is closed
    p["kind"] = rng.choice([STRATEGIES["loop"], STRATEGIES["flash-loan"]], len(p))
    p["target_ltv"] = m.ltv[0] * rng.uniform(0.3, 0.8, len(p))
    p["reb_on"] = 1
    p["check_every"] = rng.choice([12, 60, 600], len(p))
    p["delev_below"] = rng.uniform(5.0, 20.0, len(p))
    p["target_hf"] = rng.uniform(0.5, 1.0, len(p))
    p["relev_above"] = np.inf
    p["exit_on"] = 0
    return m, p, "exchange-rate"


def force_sale_below_dust(m, p, oracle, rng):
    # a position resting just under the deleverage line with the target 2e-14 above its HF: no interest, no
    # price move, so HF stays put, and the sale that lifts it to the target, ~debt x 2e-14 / (h px k - pc lt),
    # is below the dust (1e-12 x capital): no action. The line and target are set from the HF the reference
    # engine reaches after the opening (the core's differs by ulps, inside the 1e-14 margin)
    for name in ("price", "xrate", "oracle_feed", "ltv", "lt"):
        getattr(m, name)[:] = getattr(m, name)[0]
    m.borrow_apr[:] = 0.0
    m.supply_apr[:] = 0.0
    p["kind"] = STRATEGIES["loop"]
    p["loops"] = rng.integers(2, 12, len(p))
    p["target_ltv"] = m.ltv[0] * rng.uniform(0.7, 0.95, len(p))
    p["exit_on"] = 0
    p["unwind_at_end"] = 0
    p["reb_on"] = 0
    lanes = [Lane(oracle, 0.0968, 7 * 86400, PROTOCOL_NAMES[int(p[0]["protocol"])])]
    first = run_reference_batch(m.slice(0, 1), p, lanes, record_indices(m.slice(0, 1), 0), 1)
    hf = first.records[:, 0, RECORD_FIELDS.index("hf")]
    p["reb_on"] = 1
    p["check_every"] = 12
    p["delev_below"] = hf * (1.0 + 1e-14)
    p["target_hf"] = hf * (1.0 + 2e-14)
    p["relev_above"] = np.inf
    return m, p, oracle


# ------------------------------------------------------------------------------------------ venues
def force_morpho_crash(m, p, oracle, rng):
    # Morpho Blue, a one-block crash of 20-70 % under the market oracle: HF falls far below 1 / LIF, so the
    # liquidator's seizure (debt x LIF / price) exceeds the collateral: it takes all of it and the rest of the
    # debt is bad debt. Half the LLTVs are below 0.565, where LIF = 1 / (0.3 LLTV + 0.7) >= 1.15 is capped
    lltv = rng.uniform(0.3, 0.56) if rng.random() < 0.5 else rng.uniform(0.6, 0.945)
    m.lt[:] = lltv
    m.ltv[:] = lltv
    k = int(rng.integers(1, max(len(m), 2)))
    m.price[k:] *= rng.uniform(0.3, 0.8)
    p["protocol"] = PROTOCOLS["morpho-blue"]
    p["kind"] = STRATEGIES["loop"]
    p["loops"] = 12
    p["target_ltv"] = lltv * rng.uniform(0.95, 1.0, len(p))
    p["cf_ovr"] = np.nan
    p["reb_on"] = 0
    p["exit_on"] = 0
    return m, p, "market"


# ------------------------------------------------------------------------------------------ the CAPO lane
def force_capo_history(m, p, oracle, rng):
    # 3-12 exchange-rate points before the window, up to two snapshot ages back and spaced below one age, so the
    # snapshot before the window reads the last point at or before its time (several are passed on the way)
    # and later snapshots move into the window (the lane's age is drawn in check_case: 10 min to 7 days)
    t0 = int(m.ts[0])
    k = int(rng.integers(3, 13))
    back = np.sort(rng.choice(np.arange(1, 2 * 7 * 86400), k, replace=False))[::-1]
    m.capo_pre_ts = (t0 - back).astype(np.int64)
    m.capo_pre_xrate = m.xrate[0] * (1.0 - np.sort(rng.uniform(0, 0.01, k))[::-1])
    return m, p, "capo"


FORCES = {"irm_rates": force_irm_rates, "ltv_zero": force_ltv_zero, "flash_deep_discount": force_flash_deep_discount,
          "queue_insolvent": force_queue_insolvent, "close_below_target": force_close_below_target,
          "sale_below_dust": force_sale_below_dust, "morpho_crash": force_morpho_crash,
          "capo_history": force_capo_history}


@settings(max_examples=180, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    branch=st.sampled_from(sorted(FORCES)),
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(2, 600),
    irregular=st.booleans(),
    oracle=st.sampled_from(["exchange-rate", "market", "capo", "chainlink"]),
    protocol=st.sampled_from(AAVE_LIKE),
    chunk=st.integers(1, 64),
    record=st.sampled_from([-1, 0, 600]),
    n_configs=st.integers(1, 3),
)
def test_core_equals_reference_in_rare_branches(branch, seed, n, irregular, oracle, protocol, chunk, record,
                                                 n_configs):
    check_case(seed, n, irregular, oracle, "loop", protocol, chunk, record, n_configs, False, force=FORCES[branch])


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    oracle=st.sampled_from(["exchange-rate", "market", "capo", "chainlink"]),
    kind=st.sampled_from(["hold", "lend", "loop", "flash-loan"]),
    protocol=st.sampled_from(VENUES),
    n_configs=st.integers(1, 3),
    restake=st.booleans(),
)
def test_core_equals_reference_on_one_block(seed, oracle, kind, protocol, n_configs, restake):
    # a window of one block: the opening and the summary at the same block, a window of no length (the APYs
    # are 0, not an annualisation over 0 years)
    m, p, lanes, rec, me = check_case(seed, 1, False, oracle, kind, protocol, 1, 0, n_configs, restake)
    s = run_core(m, p, lanes, rec, me).summaries
    assert len(m) == 1
    assert np.all(s["net_apy"] == 0.0) and np.all(s["net_apy_rate"] == 0.0) and np.all(s["hold_apy"] == 0.0)


def test_a_queue_exit_whose_sale_yields_nothing_sells_every_token():
    # a draw hypothesis found (queue_insolvent, seed 12, 2 blocks, 2 configurations): the DEX sale at the
    # flash-repaid debt's size yields nothing (k = 0), so the fixed point's next size is infinite; both
    # engines must then sell every token instead of dividing by zero (the reference) or reading NaN (the core)
    m, p, lanes, rec, me = check_case(12, 2, False, "exchange-rate", "loop", "aave-v3", 1, -1, 2, False,
                                      force=FORCES["queue_insolvent"])
    s = run_core(m, p, lanes, rec, me).summaries
    assert np.all(np.isfinite(s["end_equity"]))


# ------------------------------------------------------------------------------------------ issue 13's options
# (a test of their own: a new entry in FORCES would move every derandomized draw of the test above)
def force_liquidation_gas(m, p, oracle, rng):
    # market.liquidation_gas on an Aave-family loop that a 3-15 % drop of the market price liquidates: a
    # liquidator paying 1e4-1e8 gas sells its seizure without slippage, so its profit is linear in the repay:
    # the full close factor when the bonus covers the gas, nothing when it does not. (With slippage the best
    # repay is interior, the argmax of a flat maximum: the engines' ulp-apart balances move it by ~1e-8, beyond
    # this test's 1e-9; tests/unit/test_partial_liquidation.py checks those partials by hand in both engines.)
    k = int(rng.integers(1, max(len(m), 2)))
    m.price[k:] *= rng.uniform(0.85, 0.97)
    p["kind"] = STRATEGIES["loop"]
    p["loops"] = 12
    p["target_ltv"] = m.ltv[0] * rng.uniform(0.95, 1.0, len(p))
    p["liq_gas"] = rng.choice([1e4, 1e5, 1e6, 1e7, 1e8], len(p))
    p["gas_gwei"] = rng.choice([np.nan, 5.0, 100.0], len(p))
    p["slip_model"] = SLIPPAGE["none"]
    p["reb_on"] = 0
    p["exit_on"] = 0
    return m, p, "market"


def force_oracle_overlays(m, p, oracle, rng):
    # the [[scenario]] oracle overlays: an offset scaling every mode's oracle price over a stretch (an oracle
    # that reads 2-10 % low liquidates) and, on a CAPO lane, a governance-set snapshot cap on some blocks
    n = len(m)
    a, b = sorted(int(i) for i in rng.integers(0, n, 2))
    m.oracle_scale[a: b + 1] = rng.uniform(0.9, 0.98)
    if oracle == "capo":
        c, d = sorted(int(i) for i in rng.integers(0, n, 2))
        m.oracle_cap[c: d + 1] = m.xrate[c] * rng.uniform(0.97, 1.01)
    return m, p, oracle


MORE_FORCES = {"liquidation_gas": force_liquidation_gas, "oracle_overlays": force_oracle_overlays}


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    branch=st.sampled_from(sorted(MORE_FORCES)),
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(2, 400),
    irregular=st.booleans(),
    oracle=st.sampled_from(["exchange-rate", "market", "capo", "chainlink"]),
    protocol=st.sampled_from(AAVE_LIKE),
    chunk=st.integers(1, 64),
    record=st.sampled_from([-1, 0, 600]),
    n_configs=st.integers(1, 3),
)
def test_core_equals_reference_with_issue_13_options(branch, seed, n, irregular, oracle, protocol, chunk, record,
                                                      n_configs):
    check_case(seed, n, irregular, oracle, "loop", protocol, chunk, record, n_configs, False,
               force=MORE_FORCES[branch])


def test_build_lane_without_overlays_is_the_neutral_overlays():
    # build_lane's overlays are optional (None: none); the engine always passes Market's arrays, whose neutral
    # values (scale 1.0, cap NaN) the differential tests compare with the reference: None must give the same bits
    m = make_market(3, 100, True)
    idx = _core.build_indices(m.ts, m.xrate, m.supply_apr, m.borrow_apr)
    for oracle in (0, 1, 2, 3):
        outs = []
        for overlays in ((None, None), (m.oracle_scale, m.oracle_cap)):
            bufs = [np.empty(len(m)), np.empty(len(m)), np.empty(2), np.empty(2), np.empty(2, dtype=np.int64)]
            _core.build_lane(m.ts, m.xrate, m.price, m.oracle_feed, m.lt, idx["sidx"], idx["bidx"], oracle,
                             0.0968, 600, 64, *bufs, None, None, m.underlying_price, *overlays)
            outs.append(bufs)
        for x, y in zip(*outs):
            np.testing.assert_array_equal(x, y)
