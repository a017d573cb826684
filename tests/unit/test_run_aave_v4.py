"""Aave v4 through the engines, by hand (PROTOCOLS.md "Aave v4"; backtest/venues/aave_v4.py): a loop liquidated
to the target health factor, the bonus that grows as HF falls, a deficit, and the risk premium's interest. Each
case runs the core and the reference engine (tests.helpers.both) on a synthetic market.

The position: capital 100 WETH staked 1:1 (exchange rate 1), one loop at target LTV 0.8, so 180 wstETH against
80 WETH; CF 0.9, max bonus 5 %, bonus factor 0.5, HF for the max bonus 0.8, target HF 1.05, fee 10 %, USD 1,000
per WETH (the $1,000 rules do not bind: the debt is worth $80,000). The oracle is the market price.
"""
import math

import numpy as np
import pytest

from backtest.data.market import Market
from backtest.schema import SECONDS_PER_YEAR
from tests.helpers import both, params

Y = float(SECONDS_PER_YEAR)
REL = 1e-12


def market(prices, ts=None, borrow=0.0) -> Market:
    n = len(prices)
    return Market.from_arrays(n, ts=np.arange(n) * 12 if ts is None else ts, price=prices, xrate=1.0,
                              eth_usd=1000.0, borrow_apr=borrow, supply_apr=0.0, ltv=0.9, lt=0.9, bonus=0.05,
                              pfee=0.10, gas_gwei=0.0)


def v4_loop(risk: float = 0.0):
    return params(protocol="aave-v4", kind="loop", entry="stake", loops=1, target_ltv=0.8, capital=100.0,
                  v4_bonus_factor=0.5, v4_hf_max_bonus=0.8, v4_target_hf=1.05, v4_collateral_risk=risk)


def liquidation(out):
    ev = out.events[0]
    return ev[ev["kind"] == 3]


def test_a_v4_loop_is_liquidated_to_the_target_health_factor():
    # block 1: price 0.48, HF = 180 x 0.48 x 0.9 / 80 = 0.972, between HF_maxBonus 0.8 and 1
    hf = 180 * 0.48 * 0.9 / 80
    assert hf == pytest.approx(0.972)
    # minLB = 1 + 0.05 x 0.5 = 1.025; LB = 1.025 + (1.05 - 1.025) x (1 - 0.972) / (1 - 0.8) = 1.0285
    lb = 1.025 + 0.025 * (1 - 0.972) / 0.2
    assert lb == pytest.approx(1.0285)
    # debt to target = 80,000 USD x (1.05 - 0.972) / ((1.05 - 1.0285 x 0.9) x 1,000 USD) = 80 x 0.078 / 0.12435
    repaid = 80 * 0.078 / (1.05 - 1.0285 * 0.9)
    assert repaid == pytest.approx(50.180940892641737)
    seized = repaid * 1.0285 / 0.48                 # repaid x P_debt x LB / P_coll
    fee = seized * 0.10 * 0.0285 / 1.0285           # (seized - seized / LB) x fee
    for out in both(market([1.0, 0.48, 0.48]), v4_loop(), oracle="market"):
        sm = out.summaries[0]
        assert sm["liq_count"] == 1
        assert sm["liq_debt_repaid"] == pytest.approx(repaid, rel=REL)
        assert sm["liq_coll_seized"] == pytest.approx(seized, rel=REL)
        assert sm["liq_penalty"] == pytest.approx(seized * 0.48 - repaid, rel=REL)
        assert sm["liq_protocol_fee"] == pytest.approx(fee * 0.48, rel=REL)
        assert sm["end_debt"] == pytest.approx(80 - repaid, rel=REL)
        assert sm["end_collateral"] == pytest.approx(180 - seized, rel=REL)
        # the call restores exactly the target: (180 - seized) x 0.48 x 0.9 / (80 - repaid) = 1.05
        assert liquidation(out)["hf"][0] == pytest.approx(1.05, rel=1e-9)
        assert sm["bad_debt"] == 0.0
        assert sm["min_hf"] == pytest.approx(hf, rel=REL)


def test_the_bonus_grows_as_hf_falls_up_to_the_max_bonus_and_an_empty_position_is_a_deficit():
    # LB = 1 + penalty / repaid (penalty = seized x price - repaid = repaid x (LB - 1))
    def lb_of(sm):
        return 1.0 + sm["liq_penalty"] / sm["liq_debt_repaid"]

    # HF 0.99 -> LB = 1.025 + 0.025 x 0.01 / 0.2 = 1.02625; HF 0.972 -> 1.0285 (the test above)
    p_99 = 0.99 * 80 / (180 * 0.9)
    for out in both(market([1.0, p_99, p_99]), v4_loop(), oracle="market"):
        assert lb_of(out.summaries[0]) == pytest.approx(1.025 + 0.025 * 0.01 / 0.2, rel=1e-9)
    # price 0.39: HF = 180 x 0.39 x 0.9 / 80 = 0.78975 <= 0.8 -> the max bonus, LB = 1.05. Debt to target =
    # 80 x (1.05 - 0.78975) / (1.05 - 1.05 x 0.9) = 198.3 > 80, so all the debt; its collateral 80 x 1.05 / 0.39
    # = 215.4 tokens is more than the 180 held: all 180 are seized for 180 x 0.39 / 1.05 = 66.857 WETH, and the
    # 80 - 66.857 = 13.143 WETH left with no collateral is the deficit (bad debt)
    repaid = 180 * 0.39 / 1.05
    for out in both(market([1.0, 0.39, 0.39]), v4_loop(), oracle="market"):
        sm = out.summaries[0]
        assert lb_of(sm) == pytest.approx(1.05, rel=1e-9)
        assert sm["liq_coll_seized"] == pytest.approx(180.0, rel=REL)
        assert sm["liq_debt_repaid"] == pytest.approx(repaid, rel=REL)
        assert sm["bad_debt"] == pytest.approx(80 - repaid, rel=REL)
        assert sm["end_debt"] == 0.0 and sm["end_collateral"] == 0.0


def test_less_than_1000_usd_of_debt_left_repays_all_of_it():
    # at 100 USD per WETH the 80 WETH debt is worth $8,000; the target-HF repay of 50.18 WETH would leave
    # 29.82 WETH = $2,982 (kept); at 20 USD it would leave $596 < $1,000, so all 80 are repaid, seizing
    # 80 x 1.0285 / 0.48 = 171.425 of the 180 tokens
    m = market([1.0, 0.48, 0.48])
    m.eth_usd[:] = 20.0
    for out in both(m, v4_loop(), oracle="market"):
        sm = out.summaries[0]
        assert sm["liq_debt_repaid"] == pytest.approx(80.0, rel=REL)
        assert sm["liq_coll_seized"] == pytest.approx(80 * 1.0285 / 0.48, rel=REL)
        assert sm["end_debt"] == 0.0


def test_the_risk_premium_raises_the_interest_and_the_accrued_premium_earns_none():
    # two steps of half a year at a drawn rate of 10 %: the drawn index is 1.05 then 1.05 x 1.05 = 1.1025.
    # RP 0.18: premium shares 80 x 0.18 = 14.4, offset 14.4 x 1 (drawn at index 1). Debt = 80 x 1.1025 +
    # (14.4 x 1.1025 - 14.4) = 88.2 + 1.476 = 89.676: interest (80 + 14.4) x 0.1025 = 9.676, where RP 0 pays
    # 80 x 0.1025 = 8.2; had the accrued premium itself earned interest, the debt would be 80 x 1.1025 x
    # (1 + 0.18 x 1.025 ...) > 89.676
    ts = np.array([0, int(Y / 2), int(Y)])
    m = market([1.0, 1.0, 1.0], ts=ts, borrow=0.10)
    g1 = 1 + 0.10 * int(Y / 2) / Y
    g2 = 1 + 0.10 * (int(Y) - int(Y / 2)) / Y
    idx = g1 * g2
    assert idx == pytest.approx(1.1025, rel=1e-9)
    for risk, interest in ((0.0, 80 * (idx - 1)), (0.18, (80 + 80 * 0.18) * (idx - 1))):
        for out in both(m, v4_loop(risk), oracle="market"):
            sm = out.summaries[0]
            assert sm["interest_paid"] == pytest.approx(interest, rel=REL)
            assert sm["end_debt"] == pytest.approx(80 + interest, rel=REL)
    assert (80 + 80 * 0.18) * (idx - 1) == pytest.approx(9.676, rel=1e-9)


def test_a_repay_restores_the_premium_first():
    # RP 0.18, drawn rate 10 %, steps of half a year. Block 1: index 1.05, debt 80 x 1.05 + 14.4 x 0.05 = 84.72
    # (premium 0.72), HF = 180 x 0.9 / 84.72 = 1.912 < 2.0: deleverage to HF 2.2, selling (costless, price 1)
    # delta = (2.2 x 84.72 - 180 x 0.9) / (2.2 - 0.9) tokens to repay as much. The repay restores the premium
    # 0.72 first, then drawn shares (delta - 0.72) / 1.05; the premium is refreshed: shares 0.18 x drawn,
    # offset 0.18 x drawn x 1.05. Block 2 (index 1.1025): debt = drawn x 1.1025 + 0.18 x drawn x 0.0525
    # (HF 2.08 > 2.0: no second rebalance)
    ts = np.array([0, int(Y / 2), int(Y)])
    m = market([1.0, 1.0, 1.0], ts=ts, borrow=0.10)
    p = v4_loop(0.18)
    p["reb_on"], p["delev_below"], p["target_hf"], p["check_every"] = 1, 2.0, 2.2, int(Y / 2)
    g1 = 1 + 0.10 * int(Y / 2) / Y
    g2 = g1 * (1 + 0.10 * (int(Y) - int(Y / 2)) / Y)
    debt1 = 80 * g1 + 14.4 * (g1 - 1)
    delta = (2.2 * debt1 - 180 * 0.9) / (2.2 - 0.9)
    drawn = 80 - (delta - 14.4 * (g1 - 1)) / g1
    end_debt = drawn * g2 + 0.18 * drawn * (g2 - g1)
    assert end_debt == pytest.approx(62.822 * 1.1025 + 0.18 * 62.822 * 0.0525, rel=1e-4)
    for out in both(m, p, oracle="market"):
        ev = out.events[0]
        reb = ev[ev["kind"] == 2]
        assert len(reb) == 1 and reb["idx"][0] == 1
        assert -reb["debt"][0] == pytest.approx(delta, rel=1e-9)
        assert reb["hf"][0] == pytest.approx(2.2, rel=1e-9)
        assert out.summaries[0]["end_debt"] == pytest.approx(end_debt, rel=1e-9)
