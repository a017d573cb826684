"""Multi-collateral positions by hand: the health factor summed over the legs, an Aave liquidation per leg
(close factor, each leg's bonus and fee, the leg of the largest value seized), a Compound III absorb of every
leg, the Morpho Blue refusal. Every expected number is worked out here from the protocol's formula."""
import math

import numpy as np
import pytest

from backtest.engine import Lane, record_indices, run_core, run_reference_batch
from backtest.legs import legs_market
from backtest.schema import EVENT_KINDS, RECORD_FIELDS
from tests.helpers import market, params

HF = RECORD_FIELDS.index("hf")


def two_legs(p_wst, p_wee, *, lt=(0.95, 0.93), ltv=(0.93, 0.90), bonus=(0.01, 0.015), pfee=(0.1, 0.2)):
    """wstETH (rate 1.2) and weETH (rate 1.05) against WETH; prices per block in WETH (oracle = market)."""
    a = market(p_wst, xrate=1.2, lt=lt[0], ltv=ltv[0], bonus=bonus[0], pfee=pfee[0])
    b = market(p_wee, xrate=1.05, lt=lt[1], ltv=ltv[1], bonus=bonus[1], pfee=pfee[1])
    return legs_market((a, b), ("wstETH", "weETH"))


def run_both(m, p, w, oracle="market"):
    lanes = [Lane(oracle, 0.0, 7 * 86400, "aave-v3" if p["protocol"][0] != 4 else "compound-v3")]
    rec = record_indices(m, 0)
    w = np.asarray([w], dtype=float)
    core = run_core(m, p, lanes, rec, 300, chunk=1, weights=w)
    ref = run_reference_batch(m, p, lanes, rec, 300, weights=w)
    return core, ref


def opened():
    """100 WETH staked 60/40, one loop at LTV 0.9: the balances after block 0, by hand."""
    wst = 60 / 1.2 + 0.9 * 100 * 0.6 / 1.2          # 50 + 45 tokens: the loop borrows 0.9 x the value bought (100)
    wee = 40 / 1.05 + 0.9 * 100 * 0.4 / 1.05
    return wst, wee, 90.0


def test_health_factor_is_the_sum_over_both_legs():
    m = two_legs([1.2, 1.2], [1.05, 1.05])
    p = params(kind="loop", loops=1, target_ltv=0.9)
    wst, wee, debt = opened()
    # Aave GenericLogic: sum over reserves of balance x price x LT (each leg its own LT), over the debt
    hf = (wst * 1.2 * 0.95 + wee * 1.05 * 0.93) / debt
    assert hf == pytest.approx((95 * 1.14 + 76 * 0.93) / 90, rel=1e-12)     # = 178.98 / 90
    for out in run_both(m, p, [0.6, 0.4]):
        assert out.records[0, 0, HF] == pytest.approx(hf, rel=1e-12)
        assert out.leg_records[0, 0, :, 0] == pytest.approx([wst, wee], rel=1e-12)
        assert out.summaries["end_collateral"][0] == pytest.approx(wst + wee, rel=1e-12)
        assert out.leg_summary[0, :, 0] == pytest.approx([wst, wee], rel=1e-12)
        assert out.summaries["end_debt"][0] == pytest.approx(debt, rel=1e-12)


def test_aave_liquidation_seizes_the_largest_leg_with_its_own_bonus_call_after_call():
    # block 1: wstETH 0.5, weETH 0.63 WETH; HF in (0.95, 1): a 50 % close factor (v3.0-3.2 rules)
    m = two_legs([1.2, 0.5], [1.05, 0.63])
    p = params(kind="loop", loops=1, target_ltv=0.9)
    wst, wee, debt = opened()
    hf1 = (wst * 0.5 * 0.95 + wee * 0.63 * 0.93) / debt
    assert 0.95 < hf1 < 1.0
    # call 1: wstETH is worth more (47.5 vs 45.6 WETH), so it is seized, at its bonus 1 % and fee 10 %
    assert wst * 0.5 > wee * 0.63
    repay1 = 0.5 * debt
    seized1 = repay1 * 1.01 / 0.5
    fee1 = (seized1 - seized1 / 1.01) * 0.1
    wst2, debt2 = wst - seized1, debt - repay1
    hf2 = (wst2 * 0.5 * 0.95 + wee * 0.63 * 0.93) / debt2
    assert 0.95 < hf2 < 1.0
    # call 2 (same block, HF still below 1): now weETH is the larger leg; its bonus 1.5 % and fee 20 %
    assert wee * 0.63 > wst2 * 0.5
    repay2 = 0.5 * debt2
    seized2 = repay2 * 1.015 / 0.63
    fee2 = (seized2 - seized2 / 1.015) * 0.2
    wee3, debt3 = wee - seized2, debt2 - repay2
    hf3 = (wst2 * 0.5 * 0.95 + wee3 * 0.63 * 0.93) / debt3
    assert hf3 > 1.0
    for out in run_both(m, p, [0.6, 0.4]):
        ev = out.events[0]
        liq = ev["kind"] == EVENT_KINDS["liquidation"]
        assert list(out.event_legs[0][liq]) == [0, 1]
        assert ev["coll"][liq] == pytest.approx([-seized1, -seized2], rel=1e-12)
        assert ev["debt"][liq] == pytest.approx([-repay1, -repay2], rel=1e-12)
        assert ev["hf"][liq] == pytest.approx([hf2, hf3], rel=1e-12)
        sm = out.summaries[0]
        assert sm["liq_count"] == 2
        assert sm["liq_protocol_fee"] == pytest.approx(fee1 * 0.5 + fee2 * 0.63, rel=1e-12)
        assert sm["liq_penalty"] == pytest.approx(seized1 * 0.5 - repay1 + seized2 * 0.63 - repay2, rel=1e-12)
        assert sm["min_hf"] == pytest.approx(hf1, rel=1e-12)
        assert out.leg_summary[0, :, 1] == pytest.approx([seized1, seized2], rel=1e-12)
        assert out.leg_summary[0, :, 0] == pytest.approx([wst2, wee3], rel=1e-12)
        assert sm["bad_debt"] == 0.0


def test_aave_full_close_below_095_and_no_bad_debt_while_a_leg_is_left():
    # HF < 0.95: close factor 100 %; the first leg seized whole caps the repay, the debt stays against the other
    m = two_legs([1.2, 0.3], [1.05, 0.55])
    p = params(kind="loop", loops=1, target_ltv=0.9)
    wst, wee, debt = opened()
    hf1 = (wst * 0.3 * 0.95 + wee * 0.55 * 0.93) / debt
    assert hf1 < 0.95 and wee * 0.55 > wst * 0.3             # weETH (39.8 WETH) is the larger leg
    seized = wee                                             # 100 % of the debt needs more than all of it
    assert debt * 1.015 / 0.55 > wee
    repay = wee * 0.55 / 1.015
    for out in run_both(m, p, [0.6, 0.4]):
        ev = out.events[0]
        liq = np.flatnonzero(ev["kind"] == EVENT_KINDS["liquidation"])
        assert out.event_legs[0][liq[0]] == 1
        assert ev["coll"][liq[0]] == pytest.approx(-seized, rel=1e-12)
        assert ev["debt"][liq[0]] == pytest.approx(-repay, rel=1e-12)
        # then wstETH (the only leg left) is liquidated in turn; bad debt only once both legs are empty
        assert out.event_legs[0][liq[1]] == 0
        left = debt - repay
        assert ev["debt"][liq[1]] == pytest.approx(-wst * 0.3 / 1.01, rel=1e-12)
        assert out.summaries["bad_debt"][0] == pytest.approx(left - wst * 0.3 / 1.01, rel=1e-12)
        assert ev["kind"][-1] == EVENT_KINDS["bad_debt"]


def test_compound_v3_absorbs_every_leg_with_its_own_liquidation_factor():
    # liquidate CF 0.90 / 0.88 (lt), borrow CF 0.88 / 0.85, liquidation factor 0.95 / 0.93 (bonus = 1 - LF)
    m = two_legs([1.2, 0.55], [1.05, 0.5], lt=(0.90, 0.88), ltv=(0.88, 0.85), bonus=(0.05, 0.07), pfee=(0, 0))
    p = params(protocol="compound-v3", kind="loop", loops=1, target_ltv=0.85)
    wst = 60 / 1.2 + 0.85 * 100 * 0.6 / 1.2
    wee = 40 / 1.05 + 0.85 * 100 * 0.4 / 1.05
    debt = 85.0
    hf1 = (wst * 0.55 * 0.90 + wee * 0.5 * 0.88) / debt
    assert hf1 < 1.0
    value = wst * 0.55 + wee * 0.5
    credit = wst * 0.55 * 0.95 + wee * 0.5 * 0.93               # absorbInternal: sum of value x LF per asset
    assert credit < debt
    for out in run_both(m, p, [0.6, 0.4]):
        sm = out.summaries[0]
        ev = out.events[0]
        liq = np.flatnonzero(ev["kind"] == EVENT_KINDS["liquidation"])
        assert len(liq) == 1 and out.event_legs[0][liq[0]] == -1
        assert sm["liq_coll_seized"] == pytest.approx(wst + wee, rel=1e-12)
        assert out.leg_summary[0, :, 1] == pytest.approx([wst, wee], rel=1e-12)
        assert out.leg_summary[0, :, 2] == pytest.approx([wst * 0.55, wee * 0.5], rel=1e-12)
        assert sm["liq_debt_repaid"] == pytest.approx(credit, rel=1e-12)
        assert sm["liq_penalty"] == pytest.approx(value - credit, rel=1e-12)
        assert sm["bad_debt"] == pytest.approx(debt - credit, rel=1e-12)
        assert sm["end_collateral"] == 0.0 and sm["end_debt"] == 0.0


def test_deleverage_sells_the_same_fraction_of_every_leg():
    # block 1: both prices 5 % lower (oracle = market), HF below 1.9: sell fraction phi of each leg so HF = 2.0
    m = two_legs([1.2, 1.14, 1.14], [1.05, 0.9975, 0.9975])
    p = params(kind="loop", loops=1, target_ltv=0.9, reb_on=1, delev_below=1.9, target_hf=2.0, check_every=12)
    wst, wee, debt = opened()
    a = wst * 1.14 * 0.95 + wee * 0.9975 * 0.93                  # sum coll x oracle x LT
    v = wst * 1.14 + wee * 0.9975                                # the legs' market value
    assert a / debt < 1.9
    # no fees: (1 - phi) a / (debt - phi v) = 2.0  =>  phi = (2.0 debt - a) / (2.0 v - a)
    phi = (2.0 * debt - a) / (2.0 * v - a)
    for out in run_both(m, p, [0.6, 0.4]):
        ev = out.events[0]
        reb = np.flatnonzero(ev["kind"] == EVENT_KINDS["rebalance"])
        assert len(reb) == 1
        assert ev["coll"][reb[0]] == pytest.approx(-phi * (wst + wee), rel=1e-12)
        assert ev["debt"][reb[0]] == pytest.approx(-phi * v, rel=1e-12)
        assert ev["hf"][reb[0]] == pytest.approx(2.0, rel=1e-12)
        assert out.leg_summary[0, :, 0] == pytest.approx([wst * (1 - phi), wee * (1 - phi)], rel=1e-12)


def test_depeg_exit_fires_on_either_leg():
    # weETH alone trades at 0.9 of its exchange rate at block 1: the exit (below 0.95) closes both legs
    m = two_legs([1.2, 1.2, 1.2], [1.05, 0.945, 0.945])
    p = params(kind="loop", loops=1, target_ltv=0.9, exit_on=1, depeg_below=0.95)
    wst, wee, debt = opened()
    for out in run_both(m, p, [0.6, 0.4]):
        sm = out.summaries[0]
        assert sm["exit_idx"] == 1
        assert sm["end_collateral"] == 0.0 and sm["end_debt"] == 0.0
        # no fees: cash = what the legs sell for minus the debt
        assert sm["end_cash"] == pytest.approx(wst * 1.2 + wee * 0.945 - debt, rel=1e-12)


def test_morpho_blue_is_refused_with_several_legs():
    m = two_legs([1.2, 1.2], [1.05, 1.05])
    p = params(protocol="morpho-blue", kind="loop", loops=1, target_ltv=0.9)
    with pytest.raises(ValueError, match="one collateral"):
        run_core(m, p, [Lane("market", 0.0, 7 * 86400, "morpho-blue")], record_indices(m, 0), 300,
                 weights=np.array([[0.6, 0.4]]))


def test_v33_full_close_reads_the_seized_legs_collateral_not_the_total():
    # LiquidationLogic (v3.3): the 50 % close factor needs userReserveCollateralInBaseCurrency >= $2,000, the
    # collateral of the reserve being liquidated. At $40 per WETH: debt $3,600, wstETH $1,900, weETH $1,836 (the
    # total $3,736 would pass; the leg does not), so the close factor is 100 % although HF > 0.95.
    m = two_legs([1.2, 0.5], [1.05, 0.63])
    for leg in m.legs:
        leg.eth_usd[:] = 40.0
    m.eth_usd[:] = 40.0
    p = params(kind="loop", loops=1, target_ltv=0.9, v33_from=0)
    wst, wee, debt = opened()
    usd = 40.0
    assert debt * usd >= 2000 and wst * 0.5 * usd < 2000 and (wst * 0.5 + wee * 0.63) * usd >= 2000
    hf1 = (wst * 0.5 * 0.95 + wee * 0.63 * 0.93) / debt
    assert 0.95 < hf1 < 1.0
    # call 1: all the debt may be repaid; wstETH (the larger leg) caps it: seized whole, repay = value / LB
    repay1 = wst * 0.5 / 1.01
    debt2 = debt - repay1
    # call 2: weETH alone, $1,836 < $2,000: 100 % again; the whole debt is repaid (no leftover rule then)
    seized2 = debt2 * 1.015 / 0.63
    assert seized2 < wee
    for out in run_both(m, p, [0.6, 0.4]):
        ev = out.events[0]
        liq = ev["kind"] == EVENT_KINDS["liquidation"]
        assert list(out.event_legs[0][liq]) == [0, 1]
        assert ev["coll"][liq] == pytest.approx([-wst, -seized2], rel=1e-12)
        assert ev["debt"][liq] == pytest.approx([-repay1, -debt2], rel=1e-12)
        assert out.summaries["end_debt"][0] == 0.0 and out.summaries["bad_debt"][0] == 0.0
        assert out.leg_summary[0, :, 0] == pytest.approx([0.0, wee - seized2], abs=1e-12)
