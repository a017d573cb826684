"""One test per Aave rule of PROTOCOLS.md, with the arithmetic worked by hand in each test.

Every scenario runs through both engines (the Cython core and the reference) and both must give the
hand-worked numbers. The common set-up, unless a test says otherwise: capital 100 WETH, stake entry at an
exchange rate of 1 (no fees), one loop at LTV 0.9, so after opening: collateral 100 + 90 = 190 tokens, debt
90 WETH. LT 0.95, bonus 1 % (LB 1.01), protocol fee 10 %, rates 0, gas 0, oracle = market price.
HF at price P = 190 * P * 0.95 / 90 = 2.00556 * P.
"""
import math

import numpy as np
import pytest

from backtest.reference import aave_borrow_growth, aave_supply_growth, stableswap_out
from backtest.schema import EVENT_KINDS
from tests.helpers import both, check_both, liq_events, market, params

Y = 365 * 86400
LIQ, BAD = EVENT_KINDS["liquidation"], EVENT_KINDS["bad_debt"]



# --- interest --------------------------------------------------------------------------------------
def test_borrow_index_binomial_by_hand():
    # r = 20 %/yr over t = 12 s: x = r/Y = 0.2/31536000 = 6.3420e-9 per second
    # 1 + x*t + t(t-1)x^2/2 + t(t-1)(t-2)x^3/6 = 1 + 7.61035e-8 + 66 * 4.02211e-17 + 220 * 2.5508e-25
    x = 0.2 / 31536000
    hand = 1 + 12 * x + 12 * 11 * x * x / 2 + 12 * 11 * 10 * x ** 3 / 6
    assert aave_borrow_growth(0.2, 12) == pytest.approx(hand, rel=1e-15)
    assert aave_borrow_growth(0.2, 12) - 1 == pytest.approx(7.6103500761e-8 + 2.6546e-15, rel=1e-9)
    # over a year in one step the binomial stays below e^r: 1 + 0.2 + 0.02 + 0.0013333 = 1.2213333 < 1.2214028
    assert aave_borrow_growth(0.2, Y) == pytest.approx(1.2213333, rel=1e-6)
    assert aave_borrow_growth(0.2, Y) < math.exp(0.2)


def test_supply_index_linear_by_hand():
    # 1 + r t / Y: 3 % over one day = 1 + 0.03 / 365 = 1.0000821918
    assert aave_supply_growth(0.03, 86400) == pytest.approx(1.0000821918, rel=1e-10)


def test_debt_accrues_per_block_with_the_borrow_index():
    # 100 blocks of 12 s at 10 %/yr on a debt of 90: growth = g(0.1, 12)^99 (99 intervals)
    m = market(np.ones(100), borrow_apr=0.10)
    p = params()
    g = aave_borrow_growth(0.10, 12) ** 99

    def fn(out):
        s = out.summaries[0]
        assert s["end_debt"] == pytest.approx(90 * g, rel=1e-12)
        assert s["interest_paid"] == pytest.approx(90 * (g - 1), rel=1e-9)
    check_both(m, p, fn)


# --- loop arithmetic ----------------------------------------------------------------------------------
def test_n_loops_reach_sum_of_powers():
    # 5 loops at x = 0.8: collateral = 100 * (1 + .8 + .64 + .512 + .4096 + .32768) = 368.928
    # debt = 268.928; each loop borrows x * (value of the previous deposit)
    m = market(np.ones(3))
    p = params(loops=5, target_ltv=0.8)

    def fn(out):
        s = out.summaries[0]
        assert s["end_collateral"] == pytest.approx(368.928, rel=1e-12)
        assert s["end_debt"] == pytest.approx(268.928, rel=1e-12)
        assert (out.events[0]["kind"] == EVENT_KINDS["loop"]).sum() == 5
    check_both(m, p, fn)


def test_flash_loan_lands_on_the_target_ltv():
    # no costs: debt D = x * (C + D) -> D = C x / (1 - x) = 100 * 0.9 / 0.1 = 900, collateral 1000
    # with a 5 bps flash fee: F (1+f) = x (C + F)  -> F = C x / (1 + f - x) = 90 / 0.1005 = 895.522;
    # debt = F * 1.0005 = 895.970, collateral = 995.522, LTV = 0.9 exactly
    m = market(np.ones(3))
    p = params(kind="flash-loan", target_ltv=0.9, flash_fee=0.0005)

    def fn(out):
        s = out.summaries[0]
        assert s["end_collateral"] == pytest.approx(100 + 90 / 0.1005, rel=1e-10)
        assert s["end_debt"] == pytest.approx(90 / 0.1005 * 1.0005, rel=1e-10)
        assert s["end_debt"] / s["end_collateral"] == pytest.approx(0.9, rel=1e-10)
        assert s["flash_fee_cost"] == pytest.approx(90 / 0.1005 * 0.0005, rel=1e-10)
    check_both(m, p, fn)


# --- health factor and close factor -----------------------------------------------------------------
def test_no_liquidation_at_hf_just_above_one():
    # P = 0.5: HF = 190 * 0.5 * 0.95 / 90 = 1.002778 -> healthy
    m = market([1.0, 0.5, 0.5])

    def fn(out):
        assert out.summaries[0]["liq_count"] == 0
        assert out.summaries[0]["min_hf"] == pytest.approx(190 * 0.5 * 0.95 / 90, rel=1e-12)
    check_both(m, params(), fn)


def test_close_factor_50_percent_above_095():
    # P = 0.49: HF = 190 * .49 * .95 / 90 = 0.98272 > 0.95 -> 50 %: repay 45
    # seized = 45 * 1.01 / 0.49 = 92.7551 tokens; fee = (92.7551 - 92.7551/1.01) * 0.1 = 0.0918367 tokens
    # penalty = 92.7551 * 0.49 - 45 = 0.45 WETH; after: coll 97.2449, debt 45, HF 1.00595 -> stop
    m = market([1.0, 0.49, 0.49])

    def fn(out):
        ev = liq_events(out)
        assert len(ev) == 1
        assert -ev["debt"][0] == pytest.approx(45.0, rel=1e-12)
        assert -ev["coll"][0] == pytest.approx(45 * 1.01 / 0.49, rel=1e-12)
        assert ev["cost"][0] == pytest.approx(0.45, rel=1e-9)
        assert ev["hf"][0] == pytest.approx((190 - 45 * 1.01 / 0.49) * 0.49 * 0.95 / 45, rel=1e-12)
        s = out.summaries[0]
        assert s["liq_protocol_fee"] == pytest.approx((92.755102 - 92.755102 / 1.01) * 0.1 * 0.49, rel=1e-6)
        assert s["liq_penalty"] == pytest.approx(0.45, rel=1e-9)
    check_both(m, params(), fn)


def test_close_factor_100_percent_at_or_below_095_and_all_collateral_case():
    # P = 0.47: HF = 0.942611 <= 0.95 -> 100 %: repay 90 would seize 90 * 1.01 / .47 = 193.40 > 190
    # -> all 190 tokens seized, repay = 190 * 0.47 / 1.01 = 88.41584; 1.58416 of debt is left with no
    # collateral: bad debt (written off: v3.3 deficit; before v3.3 an abandoned account)
    m = market([1.0, 0.47, 0.47])

    def fn(out):
        ev = liq_events(out)
        assert len(ev) == 1
        assert -ev["coll"][0] == pytest.approx(190.0, rel=1e-12)
        assert -ev["debt"][0] == pytest.approx(190 * 0.47 / 1.01, rel=1e-12)
        s = out.summaries[0]
        assert s["bad_debt"] == pytest.approx(90 - 190 * 0.47 / 1.01, rel=1e-10)
        assert s["end_debt"] == 0.0 and s["end_collateral"] == 0.0
        assert (out.events[0]["kind"] == BAD).sum() == 1
    check_both(m, params(), fn)


def test_aave_v2_close_factor_fixed_50_no_fee_repeated_in_block():
    # v2: 50 % even at HF 0.9426 (P = 0.47), no protocol fee. Round 1: repay 45, seize 96.7021
    # (45 * 1.01 / .47); HF = (190 - 96.7021) * .47 * .95 / 45 = 0.92573 < 1 -> round 2 in the same block:
    # repay 22.5, seize 48.3511 ... while still liquidatable.
    m = market([1.0, 0.47, 0.47])
    p = params(protocol="aave-v2")

    def fn(out):
        ev = liq_events(out)
        assert len(ev) >= 2
        assert -ev["debt"][0] == pytest.approx(45.0, rel=1e-12)
        assert -ev["coll"][0] == pytest.approx(45 * 1.01 / 0.47, rel=1e-12)
        assert -ev["debt"][1] == pytest.approx(22.5, rel=1e-12)
        assert ev["hf"][0] == pytest.approx((190 - 45 * 1.01 / 0.47) * 0.47 * 0.95 / 45, rel=1e-12)
        assert out.summaries[0]["liq_protocol_fee"] == 0.0
        assert np.all(ev["idx"] == 1)
    check_both(m, p, fn)


def test_v33_full_close_factor_below_2000_usd():
    # v3.3, ETH = $20: collateral 190 * .49 * 20 = $1,862 < $2,000 -> 100 % even at HF 0.98272:
    # repay 90, seize 90 * 1.01 / .49 = 185.5102; 4.4898 tokens left, debt 0
    m = market([1.0, 0.49, 0.49], eth_usd=20.0)
    p = params(v33_from=0)

    def fn(out):
        ev = liq_events(out)
        assert len(ev) == 1
        assert -ev["debt"][0] == pytest.approx(90.0, rel=1e-12)
        assert out.summaries[0]["end_collateral"] == pytest.approx(190 - 90 * 1.01 / 0.49, rel=1e-12)
        assert out.summaries[0]["end_debt"] == 0.0
    check_both(m, p, fn)
    # the same market before v3.3 takes only 50 %
    def half(out):
        ev = liq_events(out)
        assert len(ev) == 1
        assert -ev["debt"][0] == pytest.approx(45.0, rel=1e-12)
    check_both(m, params(), half)


def test_v33_dust_rule_shrinks_the_repay():
    # choose collateral worth $2,005 and debt $2,002: U = 2002 / 90 = 22.2444 $/ETH,
    # P = 2005 * 90 / (2002 * 190) = 0.4743941. HF = 0.95 * 2005 / 2002 = 0.951424 > 0.95 -> 50 % (both >= $2,000)
    # 50 % would leave collateral 2005 - 1001 * 1.01 = $994 < $1,000 -> MUST_NOT_LEAVE_DUST; the largest repay
    # that passes: min(45, 90 - 1000/U = 45.04496, (190 P - 1000/U) / 1.01 = (90.13491 - 44.95504) / 1.01 = 44.732495) = 44.732495 ETH,
    # which leaves exactly $1,000 of collateral.
    U = 2002 / 90
    P = 2005 * 90 / (2002 * 190)
    m = market([1.0, P, P], eth_usd=U)
    p = params(v33_from=0)
    r2 = (190 * P - 1000 / U) / 1.01

    def fn(out):
        ev = liq_events(out)
        assert -ev["debt"][0] == pytest.approx(r2, rel=1e-12)
        assert r2 == pytest.approx(44.732495, rel=1e-6)
        left_usd = (190 + ev["coll"][0]) * P * U
        assert left_usd == pytest.approx(1000.0, rel=1e-9)
        # that leaves HF = (2005 - 1000.24 * 1.01)... = 0.94344 <= 0.95, so a second liquidation in the same
        # block may close 100 %: it takes all 94.7631 remaining tokens (repay 94.7631 * P / 1.01 = 44.50995)
        assert ev["hf"][0] == pytest.approx(0.94344261, rel=1e-7)
        assert len(ev) == 2
        assert -ev["coll"][1] == pytest.approx(190 + ev["coll"][0], rel=1e-12)
        assert -ev["debt"][1] == pytest.approx((190 + ev["coll"][0]) * P / 1.01, rel=1e-12)
    check_both(m, p, fn)


def test_protocol_fee_comes_out_of_the_liquidators_share():
    # the borrower loses the whole seized amount; the fee is the protocol's cut of the bonus:
    # (seized - seized/LB) * 10 %. Here LT = 0.90, LB = 1.05, P = 0.52: HF = 190 * .52 * .9 / 90 = 0.988
    # -> 50 %: repay 45, seized = 45 * 1.05 / .52 = 90.8654; after: 99.1346 * .52 * .9 / 45 = 1.0310 -> stop
    m = market([1.0, 0.52, 0.52], bonus=0.05, lt=0.90, ltv=0.90)

    def fn(out):
        seized = 45 * 1.05 / 0.52
        s = out.summaries[0]
        assert s["liq_count"] == 1
        assert s["liq_coll_seized"] == pytest.approx(seized, rel=1e-12)
        assert s["liq_protocol_fee"] == pytest.approx((seized - seized / 1.05) * 0.1 * 0.52, rel=1e-12)
        assert s["end_collateral"] == pytest.approx(190 - seized, rel=1e-12)
    check_both(m, params(), fn)


# --- oracle modes -----------------------------------------------------------------------------------
def test_exchange_rate_oracle_ignores_a_dex_depeg():
    # market price falls 10 % but the exchange-rate oracle stays at 1.0: HF stays 2.00556
    m = market([1.0, 0.9, 0.9])
    def at_rate(out):
        assert out.summaries[0]["min_hf"] == pytest.approx(190 * .95 / 90, rel=1e-12)
    check_both(m, params(), at_rate, oracle="exchange-rate")

    def at_market(out):
        assert out.summaries[0]["min_hf"] == pytest.approx(190 * .9 * .95 / 90, rel=1e-12)
    check_both(m, params(), at_market, oracle="market")


def test_capo_caps_a_jump_of_the_exchange_rate():
    # 1-day blocks, CAPO g = 9.68 %/yr, age 7 days. At day 20 the rate jumps from 1.0 to 1.10.
    # snapshot time = floor(ts/7d)*7d - 7d, snapshot = rate then (1.0); cap = 1.0 * (1 + .0968 * dt / Y)
    day = 86400
    t0 = 7 * day * 3000            # a multiple of 7 days
    n = 30
    xr = np.where(np.arange(n) >= 20, 1.10, 1.0)
    m = market(np.ones(n), xrate=xr, t0=t0, dt=day)
    core, ref = both(m, params(loops=0), oracle="capo", record=0, capo=(0.0968, 7 * day))
    ts20 = t0 + 20 * day
    snap_ts = (ts20 // (7 * day)) * 7 * day - 7 * day
    hand = 1.0 * (1 + 0.0968 * (ts20 - snap_ts) / Y)      # 20 days = 2*7d + 6d -> dt = 13 days: 1.0034477
    assert hand == pytest.approx(1 + 0.0968 * 13 / 365, rel=1e-12)
    for out in (core, ref):
        assert out.records[0, 20, 6] == pytest.approx(hand, rel=1e-12)   # oracle_price column
        assert out.records[0, 19, 6] == 1.0


# --- costs --------------------------------------------------------------------------------------------
def test_gas_cost_is_units_times_price():
    # open 600k + 2 loop steps of 250k at 20 gwei = 1.1e6 * 20e-9 = 0.022 ETH
    m = market(np.ones(3), gas=20.0)
    p = params(loops=2, gas_gwei=math.nan, gas_open=6e5, gas_loop=2.5e5)
    def fn(out):
        assert out.summaries[0]["gas_cost"] == pytest.approx(1.1e6 * 20 * 1e-9, rel=1e-12)
    check_both(m, p, fn)


def test_swap_fee_and_linear_slippage_by_hand():
    # swap entry, fee 10 bps, linear slippage 0.5 bps per ETH: 100 ETH -> fee 0.1, net 99.9,
    # slippage fraction 0.5 * 99.9 / 1e4 = 0.004995 -> 0.4990005; tokens = (99.9 - 0.4990005) / 1.0
    m = market(np.ones(3))
    p = params(kind="lend", entry="swap", swap_fee=0.001, slip_model="linear", slip_param=0.5)

    def fn(out):
        s = out.summaries[0]
        assert s["swap_fee_cost"] == pytest.approx(0.1, rel=1e-12)
        assert s["slippage_cost"] == pytest.approx(99.9 * 0.004995, rel=1e-12)
        assert s["end_collateral"] == pytest.approx(99.9 * (1 - 0.004995), rel=1e-12)
    check_both(m, p, fn)


def test_stableswap_keeps_the_invariant():
    # balances (1000, 1000), A = 50: D = 2000. Selling 100 in: the new balances (1100, 1000 - dy) must give
    # the same D, i.e. 4A(x+y) + D = 4A D + D^3 / (4 x y).
    dy = stableswap_out(100.0, 1000.0, 50.0)
    x, y, A, D = 1100.0, 1000.0 - dy, 50.0, 2000.0
    assert 4 * A * (x + y) + D == pytest.approx(4 * A * D + D ** 3 / (4 * x * y), rel=1e-12)
    assert 99.0 < dy < 100.0          # a deep stable pool gives slightly less than 1:1
    assert stableswap_out(1.0, 1000.0, 50.0) == pytest.approx(1.0, rel=1e-4)
