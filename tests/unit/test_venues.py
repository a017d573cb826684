"""One test per venue rule of PROTOCOLS.md (Morpho Blue, Compound III, the generic venue), with the arithmetic
worked by hand in each test, through both engines (the Cython core and the reference) as in
tests/unit/test_aave_rules.py.

The common set-up, unless a test says otherwise: capital 100 WETH, stake entry at an exchange rate of 1 (no
fees), one loop at LTV 0.9, so after opening: collateral 100 + 90 = 190 tokens, debt 90 WETH; rates 0, gas 0,
oracle = market price P.
- Morpho Blue, LLTV 0.945 (ltv = lt = 0.945): HF = 190 P 0.945 / 90 = 1.995 P.
- Compound III, borrow CF 0.90 (ltv), liquidate CF 0.93 (lt), liquidation factor 0.95 (bonus = 1 - 0.95):
  HF = 190 P 0.93 / 90 = 1.963333 P.
"""
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from backtest import _core
from backtest.data.scenarios import apply_scenarios
from backtest.irm import apply_irm
from backtest.config_types import ScenarioConfig
from backtest.engine import Lane, record_indices, run_core
from backtest.params import default_params, morpho_lif as params_lif
from backtest.reference import (
    aave_borrow_growth,
    adaptive_curve_rates,
    irm_curve,
    irm_err,
    irm_step,
    linear_growth,
    morpho_borrow_growth,
    morpho_lif,
)
from backtest.errors import DataError
from backtest.schema import EVENT_KINDS, PROTOCOLS
from tests.helpers import check_both, liq_events, market, params

Y = 365 * 86400
DAY = 86400
LIQ, BAD = EVENT_KINDS["liquidation"], EVENT_KINDS["bad_debt"]



def morpho_market(prices, lltv=0.945, **kw):
    return market(prices, ltv=lltv, lt=lltv, bonus=0.0, pfee=0.0, **kw)


def comet_market(prices, bcf=0.90, lcf=0.93, lf=0.95, **kw):
    return market(prices, ltv=bcf, lt=lcf, bonus=1.0 - lf, pfee=0.0, **kw)


MORPHO = dict(protocol="morpho-blue")
COMET = dict(protocol="compound-v3")


# =========================================================================================== Morpho Blue
@pytest.mark.parametrize("lltv, lif", [
    # 1 / (0.3 LLTV + 0.7) = 1 / (1 - 0.3 (1 - LLTV)):
    (0.945, 1 / 0.9835),        # 0.3 x 0.945 = 0.2835 -> 1 / 0.9835 = 1.016777
    (0.965, 1 / 0.9895),        # 1.010611
    (0.86, 1 / 0.958),          # 0.3 x 0.86 = 0.258 -> 1 / 0.958 = 1.043841
    (0.77, 1 / 0.931),          # 0.3 x 0.77 = 0.231 -> 1 / 0.931 = 1.074114
    (0.5, 1.15),                # 1 / 0.85 = 1.1765 > 1.15: capped at the maximum
])
def test_morpho_liquidation_incentive_factor(lltv, lif):
    assert morpho_lif(lltv) == pytest.approx(lif, rel=1e-15)
    assert _core.liquidation_incentive_factor(lltv) == pytest.approx(lif, rel=1e-15)
    assert params_lif(lltv) == pytest.approx(lif, rel=1e-15)
    if lltv == 0.945:
        assert lif == pytest.approx(1.0167768, rel=1e-7)
    if lltv == 0.86:
        assert lif == pytest.approx(1.0438413, rel=1e-7)
    if lltv == 0.77:
        assert lif == pytest.approx(1.0741139, rel=1e-7)


def test_morpho_healthy_at_the_lltv_line():
    # P = 0.5013: collateral x P x LLTV = 190 x 0.5013 x 0.945 = 90.00842 >= 90 -> healthy (HF 1.0000935)
    m = morpho_market([1.0, 0.5013, 0.5013])

    def fn(out):
        s = out.summaries[0]
        assert s["liq_count"] == 0
        assert s["min_hf"] == pytest.approx(190 * 0.5013 * 0.945 / 90, rel=1e-12)
        assert s["min_hf"] > 1.0
    check_both(m, params(**MORPHO), fn)


def test_morpho_no_close_factor_repays_everything():
    # P = 0.5: 190 x 0.5 x 0.945 = 89.775 < 90 -> unhealthy (HF 0.9975). No close factor: the liquidator
    # repays the whole 90 and seizes 90 x LIF / P = 90 x 1.0167768 / 0.5 = 183.01983 tokens (< 190), so
    # 6.98017 tokens stay with the borrower and the debt is 0. Penalty = 183.01983 x 0.5 - 90 = 1.509913 WETH
    # = 90 x (LIF - 1). No protocol fee. An Aave-style close-factor override is ignored.
    lif = 1 / 0.9835
    m = morpho_market([1.0, 0.5, 0.5])

    def fn(out):
        ev = liq_events(out)
        assert len(ev) == 1 and ev["idx"][0] == 1
        assert -ev["debt"][0] == pytest.approx(90.0, rel=1e-12)
        assert -ev["coll"][0] == pytest.approx(90 * lif / 0.5, rel=1e-12)
        assert -ev["coll"][0] == pytest.approx(183.01983, rel=1e-7)
        assert ev["cost"][0] == pytest.approx(90 * (lif - 1), rel=1e-9)
        assert ev["cost"][0] == pytest.approx(1.509913, rel=1e-6)
        s = out.summaries[0]
        assert s["end_debt"] == 0.0 and s["bad_debt"] == 0.0 and s["liq_protocol_fee"] == 0.0
        assert s["end_collateral"] == pytest.approx(190 - 90 * lif / 0.5, rel=1e-10)
        assert s["end_collateral"] == pytest.approx(6.98017, rel=1e-5)
    check_both(m, params(**MORPHO), fn)
    check_both(m, params(**MORPHO, cf_ovr=0.5), fn)


def test_morpho_seizure_capped_and_bad_debt_written_off():
    # P = 0.45: HF = 1.995 x 0.45 = 0.89775. Repaying 90 would seize 90 x 1.0167768 / 0.45 = 203.355 > 190
    # tokens -> all 190 are seized, repaid = 190 x 0.45 / 1.0167768 = 84.08924 WETH, and the 5.91076 WETH of
    # debt left with no collateral are bad debt, written off against the suppliers in the same call.
    lif = 1 / 0.9835
    m = morpho_market([1.0, 0.45, 0.45])

    def fn(out):
        ev = liq_events(out)
        assert len(ev) == 1
        assert -ev["coll"][0] == pytest.approx(190.0, rel=1e-12)
        assert -ev["debt"][0] == pytest.approx(190 * 0.45 / lif, rel=1e-12)
        assert -ev["debt"][0] == pytest.approx(84.08924, rel=1e-6)
        s = out.summaries[0]
        assert s["bad_debt"] == pytest.approx(90 - 190 * 0.45 / lif, rel=1e-10)
        assert s["bad_debt"] == pytest.approx(5.91076, rel=1e-5)
        assert s["end_debt"] == 0.0 and s["end_collateral"] == 0.0
        bad = out.events[0][out.events[0]["kind"] == BAD]
        assert len(bad) == 1 and bad["idx"][0] == 1
    check_both(m, params(**MORPHO), fn)


def test_morpho_86_market_incentive():
    # ezETH-style 86 % LLTV market, loop at 0.8: collateral 180, debt 80. HF = 180 P 0.86 / 80 = 1.935 P.
    # P = 0.5: HF 0.9675 -> repay 80, seize 80 x 1.0438413 / 0.5 = 167.01461 tokens, 12.98539 left;
    # penalty = 80 x 0.0438413 = 3.507307 WETH.
    lif = 1 / 0.958
    m = morpho_market([1.0, 0.5, 0.5], lltv=0.86)

    def fn(out):
        ev = liq_events(out)
        assert len(ev) == 1
        assert -ev["coll"][0] == pytest.approx(80 * lif / 0.5, rel=1e-12)
        assert -ev["coll"][0] == pytest.approx(167.01461, rel=1e-7)
        assert ev["cost"][0] == pytest.approx(3.507307, rel=1e-6)
        assert out.summaries[0]["end_collateral"] == pytest.approx(12.98539, rel=1e-5)
    check_both(m, params(**MORPHO, target_ltv=0.8), fn)


def test_morpho_borrow_limit_is_the_lltv():
    # 5 loops at 0.94 with LLTV 0.945: each loop borrows 0.94 x the last deposit; the room is
    # 0.945 x collateral - debt, never binding here: debt = 100 (0.94 + ... + 0.94^5) = 395.2147,
    # collateral = 495.2147; LTV 0.798 < 0.945
    m = morpho_market(np.ones(3))
    x = 0.94
    debt = 100 * sum(x ** k for k in range(1, 6))

    def fn(out):
        s = out.summaries[0]
        assert s["end_debt"] == pytest.approx(debt, rel=1e-12)
        assert s["end_collateral"] == pytest.approx(100 + debt, rel=1e-12)
    check_both(m, params(**MORPHO, loops=5, target_ltv=x), fn)


def test_morpho_flash_loan_is_free_with_flash_fee_zero():
    # D = C x / (1 - x) = 100 x 0.9 / 0.1 = 900 WETH, no fee: collateral 1000, debt 900
    m = morpho_market(np.ones(3))

    def fn(out):
        s = out.summaries[0]
        assert s["end_debt"] == pytest.approx(900.0, rel=1e-12) and s["flash_fee_cost"] == 0.0
        assert s["end_collateral"] == pytest.approx(1000.0, rel=1e-12)
    check_both(m, params(**MORPHO, kind="flash-loan", flash_fee=0.0), fn)


# --------------------------------------------------------------------------------------------- interest
def test_taylor_binomial_and_linear_growth_by_hand():
    # r = 100 %/yr over one day: x = r dt / Y = 1 / 365 = 0.002739726
    x = 1 / 365
    # Morpho wTaylorCompounded: 1 + x + x^2/2 + x^3/6 = 1 + 0.002739726 + 3.7530e-6 + 3.43e-9 = 1.0027434826
    assert morpho_borrow_growth(1.0, DAY) == pytest.approx(1 + x + x * x / 2 + x ** 3 / 6, rel=1e-15)
    assert morpho_borrow_growth(1.0, DAY) == pytest.approx(1.0027434826, rel=1e-10)
    # Compound III linear: 1 + x = 1.002739726
    assert linear_growth(1.0, DAY) == pytest.approx(1.0027397260, rel=1e-10)
    # Aave binomial per second: 1 + t s + t(t-1) s^2/2 + t(t-1)(t-2) s^3/6, s = 1 / Y, t = 86400:
    # the second term is x^2/2 x (86399/86400): below Taylor by x^2 / (2 x 86400) = 4.34e-11
    s = 1 / Y
    t = 86400
    binom = 1 + t * s + t * (t - 1) * s * s / 2 + t * (t - 1) * (t - 2) * s ** 3 / 6
    assert aave_borrow_growth(1.0, DAY) == pytest.approx(binom, rel=1e-15)
    assert morpho_borrow_growth(1.0, DAY) - aave_borrow_growth(1.0, DAY) == pytest.approx(
        x * x / (2 * 86400), rel=1e-3)
    # Taylor - linear = x^2/2 + x^3/6 = 3.75644e-6
    assert morpho_borrow_growth(1.0, DAY) - linear_growth(1.0, DAY) == pytest.approx(3.75644e-6, rel=1e-5)


@pytest.mark.parametrize("protocol, growth", [
    ("morpho-blue", morpho_borrow_growth),
    ("compound-v3", linear_growth),
    ("generic", aave_borrow_growth),
])
def test_debt_accrues_with_the_venues_own_index(protocol, growth):
    # 100 blocks of 12 s at 10 %/yr on a debt of 90: debt = 90 g(0.1, 12)^99 with the venue's g
    # (Taylor for Morpho, linear per block for Comet, binomial for generic); for Morpho and Comet the
    # collateral earns nothing even though the market's supply APR is 5 %: it stays at 190 tokens.
    ltv, lt = {"morpho-blue": (0.945, 0.945), "compound-v3": (0.90, 0.93), "generic": (0.93, 0.95)}[protocol]
    m = market(np.ones(100), borrow_apr=0.10, supply_apr=0.05, ltv=ltv, lt=lt)
    extra = {"cf_ovr": 0.5} if protocol == "generic" else {}
    g = growth(0.10, 12) ** 99

    def fn(out):
        s = out.summaries[0]
        assert s["end_debt"] == pytest.approx(90 * g, rel=1e-12)
        assert s["interest_paid"] == pytest.approx(90 * (g - 1), rel=1e-9)
        if protocol == "generic":
            assert s["end_collateral"] == pytest.approx(190 * (1 + 0.05 * 12 / Y) ** 99, rel=1e-12)
        else:
            assert s["end_collateral"] == 190.0 and s["supply_yield"] == 0.0
    check_both(m, params(protocol=protocol, **extra), fn)


def test_the_three_index_models_differ_as_computed():
    # the same 10 %/yr over 99 blocks of 12 s: x = 0.1 x 12 / Y = 3.8052e-8 per block;
    # Taylor - linear per block = x^2/2 = 7.24e-16, so after 99 blocks the debts differ by ~90 x 99 x 7.2e-16
    x = 0.1 * 12 / Y
    taylor, lin = morpho_borrow_growth(0.1, 12) ** 99, linear_growth(0.1, 12) ** 99
    assert taylor > lin
    assert (taylor - lin) * 90 == pytest.approx(90 * 99 * x * x / 2, rel=1e-2)


# ========================================================================================== Compound III
def test_comet_borrow_uses_the_borrow_cf_and_health_the_liquidate_cf():
    # loop at 0.92 with borrow CF 0.90: the first loop wants 92 but the room is 0.90 x 100 - 0 = 90, so it
    # borrows 90; the second wants 0.92 x 90 = 82.8 with room 0.90 x 190 - 90 = 81 -> 81.
    # collateral 100 + 90 + 81 = 271, debt 171. HF = 271 x 0.93 / 171 = 1.473860 (the liquidate CF).
    m = comet_market(np.ones(3))

    def fn(out):
        s = out.summaries[0]
        assert s["end_debt"] == pytest.approx(171.0, rel=1e-12)
        assert s["end_collateral"] == pytest.approx(271.0, rel=1e-12)
        assert s["min_hf"] == pytest.approx(271 * 0.93 / 171, rel=1e-12)
    check_both(m, params(**COMET, loops=2, target_ltv=0.92), fn)


def test_comet_not_liquidatable_just_above_the_line():
    # P = 0.51: 190 x 0.51 x 0.93 = 90.117 >= 90 -> not liquidatable (HF 1.0013)
    m = comet_market([1.0, 0.51, 0.51])
    def fn(out):
        assert out.summaries[0]["liq_count"] == 0
        assert out.summaries[0]["min_hf"] == pytest.approx(190 * 0.51 * 0.93 / 90, rel=1e-12)
    check_both(m, params(**COMET), fn)


def test_comet_absorb_with_excess_credited_as_base_asset():
    # P = 0.5: 190 x 0.5 x 0.93 = 88.35 < 90 -> absorb. The protocol takes all 190 tokens (value 95 WETH) and
    # credits 95 x 0.95 = 90.25 WETH: the debt of 90 is repaid and the 0.25 WETH excess becomes the borrower's
    # supplied base asset (cash here). Penalty = 95 - 90.25 = 4.75 WETH, kept by the protocol.
    m = comet_market([1.0, 0.5, 0.5])

    def fn(out):
        ev = liq_events(out)
        assert len(ev) == 1 and ev["idx"][0] == 1
        assert -ev["coll"][0] == 190.0
        assert -ev["debt"][0] == pytest.approx(90.0, rel=1e-12)
        assert ev["cost"][0] == pytest.approx(4.75, rel=1e-12)
        s = out.summaries[0]
        assert s["end_collateral"] == 0.0 and s["end_debt"] == 0.0 and s["bad_debt"] == 0.0
        assert s["end_cash"] == pytest.approx(0.25, rel=1e-9)       # 100 paid in at the open, 0.25 back
        assert s["end_equity"] == pytest.approx(0.25, rel=1e-9)
        assert s["liq_coll_seized_value"] == pytest.approx(95.0, rel=1e-12)
        assert s["liq_protocol_fee"] == pytest.approx(4.75, rel=1e-12)
        assert (out.events[0]["kind"] == BAD).sum() == 0
    check_both(m, params(**COMET), fn)


def test_comet_absorb_shortfall_is_covered_by_reserves():
    # P = 0.45: value 190 x 0.45 = 85.5 WETH, credit 85.5 x 0.95 = 81.225 < 90: the credit repays 81.225 and
    # the reserves cover the 8.775 WETH shortfall (bad debt); the borrower's debt goes to 0, no cash back.
    # Penalty = 85.5 - 81.225 = 4.275 WETH.
    m = comet_market([1.0, 0.45, 0.45])

    def fn(out):
        ev = liq_events(out)
        assert len(ev) == 1
        assert -ev["debt"][0] == pytest.approx(81.225, rel=1e-12)
        assert ev["cost"][0] == pytest.approx(4.275, rel=1e-12)
        s = out.summaries[0]
        assert s["bad_debt"] == pytest.approx(8.775, rel=1e-10)
        assert s["end_debt"] == 0.0 and s["end_collateral"] == 0.0
        assert s["end_cash"] == pytest.approx(0.0, abs=1e-12)
        bad = out.events[0][out.events[0]["kind"] == BAD]
        assert len(bad) == 1 and -bad["debt"][0] == pytest.approx(8.775, rel=1e-10)
    check_both(m, params(**COMET), fn)


def test_comet_weeth_factors():
    # weETH in the WETH market: borrow CF 0.82, liquidate CF 0.87, liquidation factor 0.92. Loop at 0.8:
    # collateral 180, debt 80; HF = 180 P 0.87 / 80 = 1.9575 P. P = 0.5: HF 0.97875 -> absorb: value 90,
    # credit 90 x 0.92 = 82.8 -> 2.8 WETH excess back as base asset; penalty 7.2.
    m = comet_market([1.0, 0.5, 0.5], bcf=0.82, lcf=0.87, lf=0.92)

    def fn(out):
        s = out.summaries[0]
        assert s["liq_count"] == 1
        assert s["liq_penalty"] == pytest.approx(7.2, rel=1e-12)
        assert s["end_cash"] == pytest.approx(2.8, rel=1e-9)
    check_both(m, params(**COMET, target_ltv=0.8), fn)


# ============================================================================================== generic
def test_generic_fixed_close_factor_repeated_within_the_block():
    # close factor 0.3, bonus 5 %, protocol fee 20 %, LT 0.95. P = 0.47: HF = 190 x 0.47 x 0.95 / 90 = 0.942611.
    # Round 1: repay 0.3 x 90 = 27, seize 27 x 1.05 / 0.47 = 60.319149 tokens; fee = (60.319149 - 60.319149 /
    # 1.05) x 0.2 = 0.574468 tokens. Left: 129.680851 tokens, debt 63: HF = 129.680851 x 0.47 x 0.95 / 63 =
    # 0.919087 < 1 -> round 2 in the same block: repay 18.9, seize 42.223404 ...
    m = market([1.0, 0.47, 0.47], bonus=0.05, pfee=0.2)
    p = params(protocol="generic", cf_ovr=0.3)

    def fn(out):
        ev = liq_events(out)
        assert len(ev) >= 2 and np.all(ev["idx"] == 1)
        assert -ev["debt"][0] == pytest.approx(27.0, rel=1e-12)
        assert -ev["coll"][0] == pytest.approx(27 * 1.05 / 0.47, rel=1e-12)
        assert ev["hf"][0] == pytest.approx((190 - 27 * 1.05 / 0.47) * 0.47 * 0.95 / 63, rel=1e-12)
        assert ev["hf"][0] == pytest.approx(0.919087, rel=1e-6)
        assert -ev["debt"][1] == pytest.approx(18.9, rel=1e-12)
        assert -ev["coll"][1] == pytest.approx(18.9 * 1.05 / 0.47, rel=1e-12)
        fee0 = (27 * 1.05 / 0.47) * (1 - 1 / 1.05) * 0.2
        assert fee0 == pytest.approx(0.574468, rel=1e-6)
        assert out.summaries[0]["liq_protocol_fee"] >= fee0 * 0.47
    check_both(m, p, fn)


def test_generic_ignores_the_aave_v33_usd_rules():
    # ETH at $20 and v3.3 "in force": Aave v3 would close 100 % (collateral worth < $2,000); the generic venue
    # keeps its configured close factor 0.5: repay 45 at P = 0.49 (HF 0.98272), seize 45 x 1.01 / 0.49.
    m = market([1.0, 0.49, 0.49], eth_usd=20.0)

    def fn(out):
        ev = liq_events(out)
        assert -ev["debt"][0] == pytest.approx(45.0, rel=1e-12)
        assert -ev["coll"][0] == pytest.approx(45 * 1.01 / 0.49, rel=1e-12)
    check_both(m, params(protocol="generic", cf_ovr=0.5, v33_from=0), fn)
    # the same market on Aave v3.3 takes everything (test_aave_rules.py)
    def full(out):
        assert -liq_events(out)["debt"][0] == pytest.approx(90.0, rel=1e-12)
    check_both(m, params(v33_from=0), full)


def test_generic_without_a_close_factor_is_refused_by_the_core():
    m = market([1.0, 0.5])
    with pytest.raises(ValueError, match="generic venue needs a close factor"):
        run_core(m, params(protocol="generic"), [Lane("market", 0.0, 3600, "generic")], record_indices(m, -1), 300)


def test_a_lane_of_another_protocol_is_refused():
    # the market-level indices follow one protocol's index math: a Morpho configuration cannot run on Aave's
    m = market([1.0, 0.5])
    with pytest.raises(ValueError, match="lane follows aave-v3"):
        run_core(m, params(**MORPHO), [Lane("market", 0.0, 3600, "aave-v3")], record_indices(m, -1), 300)


# ==================================================================================== AdaptiveCurveIRM
def test_irm_curve_by_hand():
    # r_T = 4 %. err = (U - 0.9)/0.9 below the target, (U - 0.9)/0.1 above.
    # U = 0.9: err 0 -> 4 %; U = 1: err 1 -> (3 + 1) x 4 % = 16 %; U = 0: err -1 -> (1 - 0.75) x 4 % = 1 %;
    # U = 0.45: err -0.5 -> 0.625 x 4 % = 2.5 %; U = 0.95: err 0.5 -> 2.5 x 4 % = 10 %.
    for u, err, rate in [(0.9, 0.0, 0.04), (1.0, 1.0, 0.16), (0.0, -1.0, 0.01), (0.45, -0.5, 0.025),
                         (0.95, 0.5, 0.10)]:
        assert irm_err(u) == pytest.approx(err, abs=1e-15)
        assert irm_curve(0.04, irm_err(u)) == pytest.approx(rate, rel=1e-12)


def test_irm_step_trapezoid_by_hand():
    # U = 1 for one day from r_T = 4 %: adaptation = 50 x 1 x 1/365 = 0.1369863.
    # end = 4 % x e^0.1369863 = 4 % x 1.1468124 = 4.587250 %; mid = 4 % x e^0.0684932 = 4 % x 1.0708933
    # = 4.283573 %; average r_T = (4 + 4.587250 + 2 x 4.283573) / 4 % = 4.288599 %; rate = 4 x that = 17.15440 %
    rate, end = irm_step(0.04, 1.0, DAY)
    assert end == pytest.approx(0.04 * math.exp(50 / 365), rel=1e-14)
    assert end == pytest.approx(0.04587250, rel=1e-6)
    avg = (0.04 + end + 2 * 0.04 * math.exp(25 / 365)) / 4
    assert avg == pytest.approx(0.04288599, rel=1e-6)
    assert rate == pytest.approx(4 * avg, rel=1e-14)
    assert rate == pytest.approx(0.1715440, rel=1e-6)
    # at the target nothing moves: rate = r_T, end = start
    assert irm_step(0.04, 0.9, DAY) == (0.04, 0.04)


def test_irm_rate_at_target_bounds():
    # U = 0 for a year from 4 %: 4 % x e^-50 is far below the 0.1 % floor, so end = mid = 0.1 %;
    # average r_T = (4 + 0.1 + 0.2) / 4 % = 1.075 %, rate = (1 - 0.75) x 1.075 % = 0.26875 %.
    rate, end = irm_step(0.04, 0.0, Y)
    assert end == 0.001 and rate == pytest.approx(0.0026875, rel=1e-12)
    # U = 1 for a year: capped at 200 %: average (0.04 + 2 + 4) / 4 = 1.51, rate 4 x 1.51 = 604 %
    rate, end = irm_step(0.04, 1.0, Y)
    assert end == 2.0 and rate == pytest.approx(6.04, rel=1e-12)


def test_irm_path_in_the_core_by_hand():
    # three daily blocks at U = 0.95 (err 0.5, adaptation 50 x 0.5 / 365 = 0.0684932 a day) from r_T = 4 %:
    # r_T: 4 %, 4 % x e^0.0684932 = 4.283573 %, 4 % x e^0.1369863 = 4.587250 %.
    # rate[0] = 2.5 x (4 + 4.283573 + 2 x 4 % x e^0.0342466 = 2 x 4.139359) / 4 % = 2.5 x 4.140573 % = 10.351432 %
    ts = np.array([0, DAY, 2 * DAY], dtype=np.int64)
    u = np.full(3, 0.95)
    rate, rt = _core.adaptive_curve_rates(ts, u, 0.04)
    assert rt[1] == pytest.approx(0.04 * math.exp(25 / 365), rel=1e-14)
    assert rt[2] == pytest.approx(0.04 * math.exp(50 / 365), rel=1e-14)
    assert rate[0] == pytest.approx(2.5 * (0.04 + rt[1] + 2 * 0.04 * math.exp(12.5 / 365)) / 4, rel=1e-14)
    assert rate[0] == pytest.approx(0.10351432, rel=1e-6)
    assert rate[2] == pytest.approx(2.5 * rt[2], rel=1e-14)           # the last block: the curve at its r_T
    ref_rate, ref_rt = adaptive_curve_rates(ts, u, 0.04)
    assert np.allclose(rate, ref_rate, rtol=1e-14) and np.allclose(rt, ref_rt, rtol=1e-14)


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 300), rt0=st.floats(0.001, 2.0))
def test_irm_core_equals_reference(seed, n, rt0):
    rng = np.random.default_rng(seed)
    ts = np.cumsum(rng.integers(1, 7200, n)).astype(np.int64)
    u = np.clip(rng.normal(0.9, 0.1, n), -0.1, 1.1)          # includes values outside [0, 1] (clamped)
    a, ra = _core.adaptive_curve_rates(ts, u, rt0)
    b, rb = adaptive_curve_rates(ts, u, rt0)
    assert np.allclose(a, b, rtol=1e-13, atol=0) and np.allclose(ra, rb, rtol=1e-13, atol=0)
    assert np.all(ra >= 0.001 - 1e-18) and np.all(ra <= 2.0 + 1e-15)


def test_irm_rates_drive_the_morpho_debt():
    # the IRM path above charged through the engines: debt = 90 x T(rate[0], 1 d) x T(rate[1], 1 d), with
    # T(r, dt) = 1 + x + x^2/2 + x^3/6, x = r dt / Y (Morpho's Taylor)
    m = morpho_market(np.ones(3), t0=1_700_006_400, dt=DAY)
    m.utilization[:] = 0.95
    m = apply_irm(m, 0.04)
    rate, _ = adaptive_curve_rates(m.ts, m.utilization, 0.04)
    assert np.array_equal(m.borrow_apr, rate) or np.allclose(m.borrow_apr, rate, rtol=1e-14)
    want = 90 * morpho_borrow_growth(rate[0], DAY) * morpho_borrow_growth(rate[1], DAY)

    def fn(out):
        assert out.summaries[0]["end_debt"] == pytest.approx(want, rel=1e-12)
        assert want / 90 - 1 == pytest.approx((0.10351432 + rate[1]) / 365, rel=2e-3)
    check_both(m, params(**MORPHO), fn)


def test_irm_overlays_utilization_and_rate_spike():
    # a utilisation overlay (+0.1, step) for 2 of 4 daily blocks lifts U from 0.9 to 1.0 there (err 1: the rate
    # quadruples); a rate spike (+5 %) on block 0 is added on top of the IRM's rate
    m = morpho_market(np.ones(4), t0=1_700_006_400, dt=DAY)
    m.utilization[:] = 0.9
    t0 = int(m.ts[0])
    sc = [ScenarioConfig("utilization", "WETH", t0 + DAY, 0.1, 2 * DAY, "step"),
          ScenarioConfig("rate_spike", "WETH", t0, 0.05, DAY, "step")]
    m = apply_irm(apply_scenarios(m, sc, collateral="wstETH", debt="WETH"), 0.04)
    assert m.utilization.tolist() == [0.9, 1.0, 1.0, 0.9]
    assert m.borrow_apr[0] == pytest.approx(0.04 + 0.05, rel=1e-14)         # at target + the spike
    rate1, rt2 = irm_step(0.04, 1.0, DAY)
    assert m.borrow_apr[1] == pytest.approx(rate1, rel=1e-14) and rate1 == pytest.approx(0.1715440, rel=1e-6)
    # NaN utilisation is a data error
    bad = morpho_market(np.ones(3))
    with pytest.raises(DataError, match="utilization"):
        apply_irm(bad)


# ======================================================================================== enums, params
def test_protocol_codes_match_the_core():
    assert _core.protocol_codes() == PROTOCOLS


def test_venue_default_params():
    # Morpho: (0, LLTV, LLTV, LIF - 1, 0); Comet WETH market: (0, borrow CF, liquidate CF, 1 - LF, 0)
    [(t, ltv, lt, bonus, fee)] = default_params("morpho-blue", "wstETH", None)
    assert (t, ltv, lt, fee) == (0, 0.945, 0.945, 0.0) and bonus == pytest.approx(1 / 0.9835 - 1, rel=1e-12)
    assert default_params("morpho-blue", "ezETH", None)[0][2] == 0.86
    assert default_params("compound-v3", "wstETH", None) == [(0, 0.90, 0.93, pytest.approx(0.05), 0.0)]
    assert default_params("compound-v3", "cbETH", None)[0][1:3] == (0.90, 0.93)
    [(_, ltv, lt, bonus, _)] = default_params("compound-v3", "weETH", None)
    assert (ltv, lt) == (0.82, 0.87) and bonus == pytest.approx(0.08, rel=1e-12)
    with pytest.raises(DataError, match="debt='USDC'.*market.lltv"):
        default_params("morpho-blue", "wstETH", None, debt="USDC")
    with pytest.raises(DataError, match="liquidation_factor"):
        default_params("compound-v3", "rETH", None)


# =============================================================================================== config
BASE = """
[run]
name = "t"
start = "2024-06-01"
end = "2025-06-01"

[market]
{market}

[strategy]
kind = "loop"
target_ltv = 0.8
loops = 5
{extra}
"""


def cfg_text(market_lines: str, extra: str = "") -> str:
    return BASE.format(market=market_lines, extra=extra)


def load_text(tmp_path, market_lines: str, extra: str = ""):
    from backtest.config import load_config

    path = tmp_path / "venue.toml"
    path.write_text(cfg_text(market_lines, extra))
    return load_config(path)


def fails(tmp_path, market_lines: str, extra: str = "") -> str:
    from backtest.errors import ConfigError

    with pytest.raises(ConfigError) as ei:
        load_text(tmp_path, market_lines, extra)
    return str(ei.value)


def line_of(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


def test_config_morpho_market(tmp_path):
    cfg = load_text(tmp_path, 'protocol = "morpho-blue"\nlltv = 0.945\nirm = "adaptive-curve"\n'
                              'rate_at_target = 0.03\nutilization = 0.92')
    mk = cfg.market
    assert (mk.protocol, mk.lltv, mk.irm, mk.rate_at_target, mk.utilization, mk.emode) == \
        ("morpho-blue", 0.945, "adaptive-curve", 0.03, 0.92, None)


@pytest.mark.parametrize("protocol, line, fragment", [
    ("morpho-blue", "ltv = 0.9", "one LLTV for borrowing and liquidation: set market.lltv"),
    ("morpho-blue", "liquidation_threshold = 0.9", "set market.lltv"),
    ("morpho-blue", "liquidation_bonus = 0.05", "follows from the LLTV"),
    ("morpho-blue", "close_factor = 0.5", "no close factor: a liquidator may repay all the debt"),
    ("morpho-blue", "liquidation_protocol_fee = 0.1", "takes no liquidation protocol fee"),
    ("morpho-blue", "supply_rate = 0.01", "not lent out and earns no interest"),
    ("morpho-blue", 'emode = "eth-correlated"', "morpho-blue has no E-mode"),
    ("morpho-blue", "liquidation_factor = 0.95", "liquidation_factor is a compound-v3 parameter"),
    ("compound-v3", "lltv = 0.945", "lltv is the liquidation LTV of a morpho-blue market"),
    ("compound-v3", "liquidation_bonus = 0.05", "absorb() credits the collateral's value x market.liquidation_factor"),
    ("compound-v3", "close_factor = 0.5", "absorb() takes the whole position"),
    ("compound-v3", 'irm = "adaptive-curve"', "AdaptiveCurveIRM"),
    ("compound-v3", "v33_from = \"2025-01-01\"", "Aave v3.3"),
    ("aave-v3", "rate_at_target = 0.04", "AdaptiveCurveIRM"),
    ("aave-v3", "liquidation_factor = 0.95", "use market.liquidation_bonus"),
])
def test_config_rejects_keys_of_other_venues(tmp_path, protocol, line, fragment):
    text = f'protocol = "{protocol}"\n{line}'
    msg = fails(tmp_path, text)
    key = line.split("=")[0].strip()
    assert f"venue.toml:{line_of(cfg_text(text), line)}: market.{key}" in msg, msg
    assert fragment in msg, msg


def test_config_generic_requires_every_parameter(tmp_path):
    full = {"ltv": 0.85, "liquidation_threshold": 0.9, "liquidation_bonus": 0.05, "close_factor": 0.5,
            "liquidation_protocol_fee": 0.1}
    lines = "\n".join(f"{k} = {v}" for k, v in full.items())
    cfg = load_text(tmp_path, f'protocol = "generic"\n{lines}\nrates_from = "kamino"')
    assert cfg.market.close_factor == 0.5 and cfg.market.rates_from == "kamino" and cfg.market.emode is None
    for k in full:
        lines = "\n".join(f"{j} = {v}" for j, v in full.items() if j != k)
        msg = fails(tmp_path, f'protocol = "generic"\n{lines}')
        assert f"market.{k}: missing required key in [market]: a generic venue takes" in msg, msg


def test_config_target_ltv_below_the_lltv(tmp_path):
    msg = fails(tmp_path, 'protocol = "morpho-blue"\nlltv = 0.77')
    assert "strategy.target_ltv = 0.8: must be below market.lltv (0.77)" in msg


def test_config_irm_rules(tmp_path):
    msg = fails(tmp_path, 'protocol = "morpho-blue"\nirm = "adaptive-curve"\nborrow_rate = 0.03')
    assert "market.borrow_rate = 0.03: conflicts with market.irm" in msg
    msg = fails(tmp_path, 'protocol = "morpho-blue"\nutilization = 0.9')
    assert 'market.utilization = 0.9: only used with market.irm = "adaptive-curve"' in msg
    msg = fails(tmp_path, 'protocol = "morpho-blue"\nirm = "curvy"')
    assert "must be one of data, adaptive-curve" in msg
    msg = fails(tmp_path, 'protocol = "morpho-blue"\nirm = "adaptive-curve"\nrate_at_target = 3.0')
    assert "market.rate_at_target = 3.0: must be in [0.001, 2]" in msg
    over = '\n[[scenario]]\nkind = "utilization"\nasset = "WETH"\nat = "2024-07-01"\ndepth = 0.1\nduration = "1d"\n'
    cfg = load_text(tmp_path, 'protocol = "morpho-blue"\nirm = "adaptive-curve"', over)
    assert cfg.scenarios[0].kind == "utilization"
    msg = fails(tmp_path, 'protocol = "morpho-blue"', over)
    assert "a utilization overlay drives Morpho's AdaptiveCurveIRM" in msg
    msg = fails(tmp_path, 'protocol = "morpho-blue"\nirm = "adaptive-curve"', over.replace('"WETH"', '"wstETH"'))
    assert "must be market.debt ('WETH')" in msg


def test_config_comet_factors(tmp_path):
    cfg = load_text(tmp_path, 'protocol = "compound-v3"\nltv = 0.9\nliquidation_threshold = 0.93\n'
                              'liquidation_factor = 0.95')
    assert (cfg.market.ltv, cfg.market.liquidation_threshold, cfg.market.liquidation_factor) == (0.9, 0.93, 0.95)
    msg = fails(tmp_path, 'protocol = "compound-v3"\nliquidation_factor = 1.2')
    assert "market.liquidation_factor = 1.2: must be in (0, 1]" in msg


# ================================================================================================ align
def venue_lake(d, with_util=True):
    """Two days of hourly wstETH/WETH prices and rates under every venue's label."""
    import polars as pl
    from backtest.data import lake_write

    s0 = 1_717_200_000 - 86400                   # 2024-05-31 00:00 UTC
    ts = np.arange(s0, s0 + 4 * 86400, 3600, dtype=np.int64)
    n = len(ts)
    lake_write.write_table(d, "prices", pl.DataFrame({"ts": ts, "base": "wstETH", "quote": "WETH",
                                                "price": np.full(n, 1.17), "source": "dex"}), "p")
    lake_write.write_table(d, "exchange_rates", pl.DataFrame({"ts": ts, "token": "wstETH", "underlying": "stETH",
                                                        "rate": np.full(n, 1.18), "source": "lido"}), "x")
    frames = []
    for proto, b in (("morpho-blue", 0.031), ("compound-v3", 0.027), ("aave-v3", 0.025), ("kamino", 0.06)):
        frames.append(pl.DataFrame({"ts": ts, "protocol": proto, "asset": "WETH", "supply_apr": 0.02,
                                    "borrow_apr": b, "utilization": 0.95 if with_util else None},
                                   schema_overrides={"utilization": pl.Float64}))
    frames.append(pl.DataFrame({"ts": ts, "protocol": "kamino", "asset": "wstETH", "supply_apr": 0.001,
                                "borrow_apr": 0.01, "utilization": 0.1}))
    lake_write.write_table(d, "rates", pl.concat(frames), "r")
    return d


def venue_cfg(d, **market):
    from backtest.config_types import Config, CostsConfig, MarketConfig, RunConfig, StrategyConfig

    start = 1_717_200_000
    return Config(run=RunConfig(name="t", start=start, end=start + 86400, data=d),
                  market=MarketConfig(**{"emode": None, **market}), strategy=StrategyConfig(),
                  costs=CostsConfig(gas=5.0))


def test_align_morpho_reads_no_supply_series_and_sets_ltv_to_the_lltv(tmp_path):
    from backtest.plan import market_for

    venue_lake(tmp_path)
    m = market_for(venue_cfg(tmp_path, protocol="morpho-blue"))            # defaults: wstETH/WETH LLTV 94.5 %
    assert np.all(m.ltv == 0.945) and np.all(m.lt == 0.945) and np.all(m.pfee == 0.0)
    assert np.allclose(m.bonus, 1 / 0.9835 - 1) and np.all(m.supply_apr == 0.0) and np.all(m.borrow_apr == 0.031)
    assert not any(s.key.endswith("supply_apr") for s in m.series)
    m = market_for(venue_cfg(tmp_path, protocol="morpho-blue", lltv=0.965))
    assert np.all(m.ltv == 0.965) and np.all(m.lt == 0.965)
    # the adaptive-curve IRM from the lake's utilisation (0.95: err 0.5 -> 2.5 x r_T), or a constant one
    m = market_for(venue_cfg(tmp_path, protocol="morpho-blue", irm="adaptive-curve"))
    assert np.all(m.utilization == 0.95) and m.borrow_apr[0] == pytest.approx(
        irm_step(0.04, 0.95, 12.0)[0], rel=1e-14)
    assert m.borrow_apr[-2] > m.borrow_apr[0]                          # r_T climbs above the target
    m = market_for(venue_cfg(tmp_path, protocol="morpho-blue", irm="adaptive-curve", utilization=0.9,
                        rate_at_target=0.03))
    assert np.allclose(m.borrow_apr, 0.03)                             # at the target nothing moves
    # Aave's WETH rates as a documented stand-in
    m = market_for(venue_cfg(tmp_path, protocol="morpho-blue", rates_from="aave-v3"))
    assert np.all(m.borrow_apr == 0.025)


def test_align_adaptive_curve_needs_utilization(tmp_path):
    from backtest.plan import market_for

    venue_lake(tmp_path, with_util=False)
    with pytest.raises(DataError, match=r"rates morpho-blue:WETH:utilization: no utilization at"):
        market_for(venue_cfg(tmp_path, protocol="morpho-blue", irm="adaptive-curve"))


def test_align_comet_factors(tmp_path):
    from backtest.plan import market_for

    venue_lake(tmp_path)
    m = market_for(venue_cfg(tmp_path, protocol="compound-v3"))              # launch defaults 0.90 / 0.93 / 0.95
    assert np.all(m.ltv == 0.90) and np.all(m.lt == 0.93) and np.allclose(m.bonus, 0.05)
    assert np.all(m.pfee == 0.0) and np.all(m.supply_apr == 0.0) and np.all(m.borrow_apr == 0.027)
    m = market_for(venue_cfg(tmp_path, protocol="compound-v3", liquidation_factor=0.92, ltv=0.82,
                        liquidation_threshold=0.87))
    assert np.all(m.ltv == 0.82) and np.all(m.lt == 0.87) and np.allclose(m.bonus, 0.08)


def test_align_generic_takes_everything_from_the_config(tmp_path):
    from backtest.plan import market_for

    venue_lake(tmp_path)
    m = market_for(venue_cfg(tmp_path, protocol="generic", ltv=0.7, liquidation_threshold=0.75, liquidation_bonus=0.08,
                        close_factor=0.5, liquidation_protocol_fee=0.05, rates_from="kamino"))
    assert (m.ltv[0], m.lt[0], m.bonus[0], m.pfee[0]) == (0.7, 0.75, 0.08, 0.05)
    assert np.all(m.borrow_apr == 0.06) and np.all(m.supply_apr == 0.001)
    assert not any(s.table == "market_params" for s in m.series)
    with pytest.raises(DataError, match="rates generic:WETH:borrow_apr"):
        market_for(venue_cfg(tmp_path, protocol="generic", ltv=0.7, liquidation_threshold=0.75, liquidation_bonus=0.08,
                        close_factor=0.5, liquidation_protocol_fee=0.05))


def test_check_against_market_morpho_target_at_the_lltv(tmp_path):
    import dataclasses

    from backtest.plan import market_for
    from backtest.engine import check_against_market
    from backtest.errors import ConfigError

    venue_lake(tmp_path)
    cfg = venue_cfg(tmp_path, protocol="morpho-blue")
    cfg = dataclasses.replace(cfg, strategy=dataclasses.replace(cfg.strategy, target_ltv=0.945))
    with pytest.raises(ConfigError, match="at or above the LLTV 0.945 of the morpho-blue wstETH/WETH market"):
        check_against_market(cfg, market_for(cfg))
