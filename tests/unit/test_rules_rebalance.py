"""Rebalancing rules by hand, through both engines (DESIGN strategies; sizing in backtest/reference/strategy.py).

Common set-up (as test_aave_rules.py): capital 100 WETH, stake entry at rate 1, one loop at LTV 0.9 ->
collateral C = 190 tokens, debt D = 90 WETH; LT 0.95, max LTV 0.93, rates 0, gas 0, market-price oracle.
A check every 12 s, so block 1 (ts0 + 12) is the first check.

Deleverage sells delta tokens at the DEX price px through a flash loan (fee ff), keeping k = 1 - swap_fee of
the proceeds, and repays out / (1 + ff):  HF' = (C - delta) pc LT / (D - delta px k / (1 + ff)) = h  gives
    delta = (h D - C pc LT) / (h px k / (1 + ff) - pc LT).
Releverage flash-borrows f, buys f k / px tokens and owes f (1 + ff); the target-HF size and the max-LTV size:
    f_h = (C pc LT - h D) / (h (1 + ff) - k pc LT / px),   f_c = (LTV C pc - D) / ((1 + ff) - LTV k pc / px)
and it takes the smaller one (the LTV cap).
"""
import numpy as np
import pytest

from backtest.schema import EVENT_KINDS
from tests.helpers import HOLLOW, asserting, check_both, market, params

REB = EVENT_KINDS["rebalance"]
LT, LTV = 0.95, 0.93


def rebalances(out):
    ev = out.events[0]
    return ev[ev["kind"] == REB]


def reb(**kw):
    base = dict(reb_on=1, check_every=12)
    base.update(kw)
    return params(**base)


# --- the helper itself -----------------------------------------------------------------------------
def test_a_check_that_returns_a_value_fails():
    # `lambda out: x == approx(y)` only builds a comparison: the helper must refuse it even when it is True
    with pytest.raises(AssertionError, match=HOLLOW):
        asserting(lambda out: 1.0 == pytest.approx(1.0))(None)
    with pytest.raises(AssertionError, match=HOLLOW):
        check_both(market(np.ones(2)), params(), lambda out: out.summaries[0]["liq_count"] == 0)
    asserting(lambda out: None)(None)      # a check that returns nothing passes


# --- deleverage -----------------------------------------------------------------------------------
def test_deleverage_back_to_the_target_hf_with_the_flash_and_swap_fees_in_the_size():
    # P = 0.5: HF = 190 * .5 * .95 / 90 = 1.002778 < 1.05 -> deleverage to h = 1.2, ff = 1 %, swap fee 0.3 %:
    # delta = (1.2 * 90 - 190 * .5 * .95) / (1.2 * .5 * .997 / 1.01 - .5 * .95) = 17.75 / 0.117277 = 151.35
    # repay = delta * 0.5 * 0.997 / 1.01; the flash fee left out of the size would land HF above 1.2
    P, h, ff, fee = 0.5, 1.2, 0.01, 0.003
    m = market([1.0, P, P])
    p = reb(delev_below=1.05, target_hf=h, flash_fee=ff, swap_fee=fee)
    delta = (h * 90 - 190 * P * LT) / (h * P * (1 - fee) / (1 + ff) - P * LT)
    repay = delta * P * (1 - fee) / (1 + ff)
    assert 151.3 < delta < 151.4

    def fn(out):
        ev = rebalances(out)
        assert len(ev) == 1 and ev["idx"][0] == 1
        assert -ev["coll"][0] == pytest.approx(delta, rel=1e-12)
        assert -ev["debt"][0] == pytest.approx(repay, rel=1e-12)
        assert ev["hf"][0] == pytest.approx(h, rel=1e-12)
        s = out.summaries[0]
        assert s["end_debt"] == pytest.approx(90 - repay, rel=1e-12)
        assert s["end_collateral"] == pytest.approx(190 - delta, rel=1e-12)
        assert s["flash_fee_cost"] == pytest.approx(repay * ff, rel=1e-12)
        assert s["swap_fee_cost"] == pytest.approx(delta * P * fee, rel=1e-12)
        assert s["n_rebalances"] == 1
    check_both(m, p, fn)


def test_deleverage_with_linear_slippage_in_the_size_reaches_the_target():
    # linear slippage s = 2 bps per WETH sold: the fraction kept depends on the size, so the size is a fixed
    # point k = 1 - 2e-4 * (delta * px); at the fixed point HF' = h and the slippage booked is
    # delta * px * 2e-4 * delta * px.
    P, h = 0.5, 1.2
    m = market([1.0, P, P])
    p = reb(delev_below=1.05, target_hf=h, slip_model="linear", slip_param=2.0)

    def fn(out):
        ev = rebalances(out)
        assert len(ev) == 1
        delta = -ev["coll"][0]
        kept = 1 - 2e-4 * delta * P
        assert delta == pytest.approx((h * 90 - 190 * P * LT) / (h * P * kept - P * LT), rel=1e-9)
        assert -ev["debt"][0] == pytest.approx(delta * P * kept, rel=1e-12)
        assert ev["hf"][0] == pytest.approx(h, rel=1e-9)
        assert out.summaries[0]["slippage_cost"] == pytest.approx(delta * P * (1 - kept), rel=1e-12)
    check_both(m, p, fn)


def test_no_rebalance_inside_the_band():
    # P = 0.55: HF = 190 * .55 * .95 / 90 = 1.10306, between delev_below 1.05 and relev_above 1.5: no action
    m = market([1.0, 0.55, 0.55])
    p = reb(delev_below=1.05, target_hf=1.2, relev_above=1.5)

    def fn(out):
        assert len(rebalances(out)) == 0
        s = out.summaries[0]
        assert s["n_rebalances"] == 0
        assert s["end_debt"] == 90.0 and s["end_collateral"] == pytest.approx(190.0, rel=1e-15)
        assert s["min_hf"] == pytest.approx(190 * .55 * .95 / 90, rel=1e-12)
    check_both(m, p, fn)


def test_deleverage_closes_everything_when_the_target_cannot_be_reached():
    # Flash loan to LTV 0.5 at rate 1: F = 1 * .5 / (1 - .5) = 1 -> C = 2 tokens, D = 1 WETH (exact in binary).
    # Exchange-rate oracle (pc = 1): HF = 2 * .95 / 1 = 1.9 < delev_below 2.0, target 2.5. The DEX price halves
    # (px = 0.5): delta = (2.5 * 1 - 2 * .95) / (2.5 * .5 - .95) = 0.6 / 0.3 = 2 = C: no partial sale reaches
    # 2.5, and selling all 2 tokens brings 2 * 0.5 = 1.0 >= D: close everything (the tie where this branch
    # is reachable, see test_differential_hunt.force_close_all). Cash 0 afterwards: equity 0.
    m = market([1.0, 0.5, 0.5])
    p = reb(kind="flash-loan", target_ltv=0.5, capital=1.0, delev_below=2.0, target_hf=2.5)

    def fn(out):
        ev = rebalances(out)
        assert len(ev) == 1 and ev["idx"][0] == 1
        assert -ev["coll"][0] == 2.0 and -ev["debt"][0] == 1.0
        s = out.summaries[0]
        assert s["end_collateral"] == 0.0 and s["end_debt"] == 0.0
        assert s["n_rebalances"] == 1
        assert s["end_equity"] == pytest.approx(0.0, abs=1e-12)
    check_both(m, p, fn, oracle="exchange-rate")


# --- releverage -----------------------------------------------------------------------------------
def test_releverage_with_room_lands_on_the_target_hf():
    # P = 1: HF = 190 * .95 / 90 = 2.00556 > 1.5 -> releverage to h = 1.5 with ff = 5 bps (stake entry, k = 1):
    # f_h = (180.5 - 135) / (1.5 * 1.0005 - .95) = 45.5 / 0.55075 = 82.615; f_c = (176.7 - 90) / 0.0695 = 1247.5
    # -> f_h binds: collateral 190 + f, debt 90 + f * 1.0005, HF 1.5
    h, ff = 1.5, 0.0005
    m = market(np.ones(3))
    p = reb(target_hf=h, relev_above=1.6, flash_fee=ff)
    f = (190 * LT - h * 90) / (h * (1 + ff) - LT)

    def fn(out):
        ev = rebalances(out)
        assert len(ev) == 1
        assert ev["coll"][0] == pytest.approx(f, rel=1e-12)
        assert ev["debt"][0] == pytest.approx(f * (1 + ff), rel=1e-12)
        assert ev["hf"][0] == pytest.approx(h, rel=1e-12)
        s = out.summaries[0]
        assert s["end_debt"] == pytest.approx(90 + f * (1 + ff), rel=1e-12)
        assert s["flash_fee_cost"] == pytest.approx(f * ff, rel=1e-12)
    check_both(m, p, fn)


def test_releverage_without_room_stops_at_the_max_ltv():
    # target h = 1.0 lies beyond the max LTV (HF at LTV 0.93 = .95 / .93 = 1.0215):
    # f_h = (180.5 - 90) / (1 - .95) = 1810, f_c = (.93 * 190 - 90) / (1 - .93) = 86.7 / 0.07 = 1238.571
    # -> the cap binds: collateral 1428.571, debt 1328.571, LTV exactly 0.93, HF 1.02151 (not 1.0).
    # The checks at blocks 2 and 3 see HF 1.0215 > relev_above 1.01 again, but at the max LTV there is no
    # room left: no second rebalance.
    m = market(np.ones(4))
    p = reb(target_hf=1.0, relev_above=1.01)
    f = (LTV * 190 - 90) / (1 - LTV)

    def fn(out):
        ev = rebalances(out)
        assert len(ev) == 1
        assert ev["debt"][0] == pytest.approx(f, rel=1e-12)
        s = out.summaries[0]
        assert s["end_debt"] / s["end_collateral"] == pytest.approx(LTV, rel=1e-12)
        assert ev["hf"][0] == pytest.approx(LT / LTV, rel=1e-12)
        assert s["liq_count"] == 0 and s["n_rebalances"] == 1
    check_both(m, p, fn)


def test_releverage_size_includes_the_swap_fee():
    # swap entry, fee 0.3 %: open 100 -> 99.7 tokens, loop borrows .9 * 99.7 = 89.73 -> 89.73 * .997 tokens.
    # Releverage at P = 1 to h = 1.5: each WETH borrowed buys k = 0.997 tokens, so
    # f = (C .95 - 1.5 D) / (1.5 - .997 * .95); after: C + .997 f tokens, D + f debt, HF 1.5
    fee, h = 0.003, 1.5
    C = 99.7 + 89.73 * (1 - fee)
    D = 89.73
    f = (C * LT - h * D) / (h - (1 - fee) * LT)
    m = market(np.ones(3))
    p = reb(entry="swap", swap_fee=fee, target_hf=h, relev_above=1.6)

    def fn(out):
        ev = rebalances(out)
        assert len(ev) == 1
        assert ev["debt"][0] == pytest.approx(f, rel=1e-12)
        assert ev["coll"][0] == pytest.approx(f * (1 - fee), rel=1e-12)
        assert ev["hf"][0] == pytest.approx(h, rel=1e-12)
        assert out.summaries[0]["swap_fee_cost"] == pytest.approx((100 + D + f) * fee, rel=1e-12)
    check_both(m, p, fn)
