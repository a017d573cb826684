"""Aave v4 rules by hand (backtest/venues/aave_v4.py; LiquidationLogic.sol, Spoke.sol, UserPositionDebt.sol).

Common spoke unless said otherwise: CF 0.8, maxLB 1.10, liquidation bonus factor 0.5 (minLB = 1 + 0.10 x 0.5
= 1.05), HF for max bonus 0.8, target HF 1.05, liquidation fee 10 %, collateral risk 20 %. Debt WETH at
$2,000, collateral wstETH at $2,500 (oracle 1.25 ETH). Every expected number is worked out in the comments
from the formula, not taken from a run.
"""
import math

import pytest

from backtest.errors import ConfigError
from backtest.venues import aave_v4 as v4

SP = v4.Spoke(collateral_factor=0.8, max_liquidation_bonus=0.10, liquidation_bonus_factor=0.5,
              health_factor_for_max_bonus=0.8, target_health_factor=1.05, liquidation_fee=0.10,
              collateral_risk=0.20)
ETH, WST = 2000.0, 2500.0
Y = 365 * 86400
REL = 1e-12


def lb(hf):
    return v4.liquidation_bonus(hf, SP.max_lb, SP.liquidation_bonus_factor, SP.health_factor_for_max_bonus)


# --- bonus ----------------------------------------------------------------------------------------------
def test_bonus_above_health_factor_for_max_bonus_interpolates_from_min_bonus():
    # HF 0.95: minLB + (maxLB - minLB) (1 - HF) / (1 - 0.8) = 1.05 + 0.05 x 0.05 / 0.2 = 1.0625
    assert lb(0.95) == pytest.approx(1.0625, rel=REL)
    # HF 0.9: 1.05 + 0.05 x 0.1 / 0.2 = 1.075; at HF 1 the line starts at minLB 1.05
    assert lb(0.9) == pytest.approx(1.075, rel=REL)
    assert lb(1.0) == pytest.approx(1.05, rel=REL)


def test_bonus_at_and_below_health_factor_for_max_bonus_is_the_max():
    assert lb(0.8) == 1.10
    assert lb(0.5) == 1.10


def test_bonus_factor_one_makes_the_bonus_flat():
    # factor 1: minLB = 1 + 0.10 = maxLB, so every HF pays 1.10
    assert v4.liquidation_bonus(0.99, 1.10, 1.0, 0.8) == pytest.approx(1.10, rel=REL)


# --- debt to target -------------------------------------------------------------------------------------
def test_debt_to_target():
    # $200,000 of debt at HF 0.95, LB 1.0625, CF 0.8: 200,000 x (1.05 - 0.95) / ((1.05 - 1.0625 x 0.8) x 2,000)
    # = 20,000 / (0.2 x 2,000) = 50 WETH
    assert v4.debt_to_target(200_000.0, 0.95, 1.05, 1.0625, 0.8, ETH) == pytest.approx(50.0, rel=REL)


# --- one liquidation ------------------------------------------------------------------------------------
def test_liquidation_to_the_target_health_factor_in_usd():
    # 95 wstETH ($237,500) against 100 WETH ($200,000): HF = 237,500 x 0.8 / 200,000 = 0.95, LB 1.0625.
    # Repaid = debt to target = 50 WETH ($100,000 left, above $1,000).
    # Seized = 50 x 2,000 x 1.0625 / 2,500 = 42.5 wstETH (52.5 left = $131,250).
    # Fee = 42.5 x 0.10 x 0.0625 / 1.0625 = 0.25 wstETH (the bonus 42.5 - 42.5 / 1.0625 = 2.5, x 10 %).
    # HF after = 52.5 x 2,500 x 0.8 / (50 x 2,000) = 105,000 / 100,000 = 1.05 = target.
    q = v4.liquidate(95.0, 100.0, WST, ETH, SP)
    assert q.hf == pytest.approx(0.95, rel=REL) and q.lb == pytest.approx(1.0625, rel=REL)
    assert q.repaid == pytest.approx(50.0, rel=REL)
    assert q.seized == pytest.approx(42.5, rel=REL)
    assert q.fee == pytest.approx(0.25, rel=REL)
    assert q.to_liquidator == pytest.approx(42.25, rel=REL)
    assert q.coll_after == pytest.approx(52.5, rel=REL) and q.debt_after == pytest.approx(50.0, rel=REL)
    assert q.deficit == 0.0
    after = v4.health_factor(q.coll_after, WST, 0.8, q.debt_after, ETH)
    assert after == pytest.approx(1.05, rel=1e-12)


def test_healthy_position_is_not_liquidated():
    # 100 wstETH against 100 WETH: HF = 250,000 x 0.8 / 200,000 = 1.0
    assert v4.liquidate(100.0, 100.0, WST, ETH, SP) is None


def test_less_than_1000_usd_of_debt_left_means_all_of_it():
    # 0.855 wstETH ($2,137.50) against 0.9 WETH ($1,800): HF = 2,137.5 x 0.8 / 1,800 = 0.95, LB 1.0625.
    # Debt to target = 1,800 x 0.1 / (0.2 x 2,000) = 0.45 WETH, which would leave $900 < $1,000: repay 0.9.
    # Seized = 0.9 x 2,000 x 1.0625 / 2,500 = 0.765 wstETH; 0.09 ($225) stays: the collateral-dust rule only
    # applies while debt remains. Fee = 0.765 x 0.1 x 0.0625 / 1.0625 = 0.0045.
    q = v4.liquidate(0.855, 0.9, WST, ETH, SP)
    assert q.repaid == pytest.approx(0.9, rel=REL) and q.debt_after == 0.0
    assert q.seized == pytest.approx(0.765, rel=REL)
    assert q.coll_after == pytest.approx(0.09, rel=1e-9)
    assert q.fee == pytest.approx(0.0045, rel=REL)
    assert q.deficit == 0.0


def test_seized_cap_collateral_exhausted_repaid_is_value_over_bonus():
    # Account: 100 WETH debt ($200,000) at HF 0.95 with two collaterals; the seized one holds 1 wstETH ($2,500).
    # Debt to target 50 WETH would seize 42.5 wstETH > 1: all 1 wstETH is seized and
    # repaid = 2,500 / (2,000 x 1.0625) = 1.176470588... WETH; the other collateral remains: no deficit.
    q = v4.liquidate(1.0, 100.0, WST, ETH, SP, other_collateral=True, hf=0.95, total_debt_value=200_000.0)
    assert q.seized == 1.0 and q.coll_after == 0.0
    assert q.repaid == pytest.approx(2500.0 / 2125.0, rel=REL)
    assert q.debt_after == pytest.approx(100.0 - 2500.0 / 2125.0, rel=REL)
    assert q.deficit == 0.0


def test_less_than_1000_usd_of_collateral_left_while_debt_remains_seizes_it_all():
    # As above with 42.8 wstETH in the seized reserve: the 42.5 to target would leave 0.3 wstETH = $750 < $1,000
    # while 50 of 100 WETH stay owed, so all 42.8 are seized and repaid = 42.8 x 2,500 / (2,000 x 1.0625)
    # = 107,000 / 2,125 = 50.3529... WETH (0.3529 WETH = $705.88 more than the target asked, under $1,000).
    q = v4.liquidate(42.8, 100.0, WST, ETH, SP, other_collateral=True, hf=0.95, total_debt_value=200_000.0)
    assert q.seized == 42.8 and q.coll_after == 0.0
    assert q.repaid == pytest.approx(107_000.0 / 2125.0, rel=REL)
    assert (q.repaid - 50.0) * ETH == pytest.approx(705.882352941, rel=1e-9)


def test_offer_below_what_the_dust_rules_require_reverts():
    # The 0.9 WETH case above must repay all 0.9; a liquidator offering 0.5 gets MustNotLeaveDust (no call).
    assert v4.liquidate(0.855, 0.9, WST, ETH, SP, offered=0.5) is None
    # an offer below the debt to target is simply the amount repaid: 95 wstETH / 100 WETH, offer 20 WETH
    q = v4.liquidate(95.0, 100.0, WST, ETH, SP, offered=20.0)
    assert q.repaid == 20.0 and q.seized == pytest.approx(20.0 * 2000.0 * 1.0625 / 2500.0, rel=REL)


def test_deficit_when_the_only_collateral_is_gone():
    # 80 wstETH ($200,000) against 100 WETH ($200,000): HF = 0.8 <= 0.8, LB = 1.10. Debt to target =
    # 200,000 x 0.25 / ((1.05 - 0.88) x 2,000) = 147.06 > 100, so repay 100; seized 100 x 2,000 x 1.1 / 2,500
    # = 88 > 80: seize all 80, repaid = 200,000 / (2,000 x 1.1) = 1,000 / 11 WETH. The 100 / 11 WETH left has
    # no collateral: deficit. Fee = 80 x 0.1 x 0.1 / 1.1 = 8 / 11 wstETH.
    q = v4.liquidate(80.0, 100.0, WST, ETH, SP)
    assert q.lb == 1.10
    assert q.repaid == pytest.approx(1000.0 / 11.0, rel=REL)
    assert q.seized == 80.0 and q.coll_after == 0.0
    assert q.deficit == pytest.approx(100.0 / 11.0, rel=1e-12) and q.debt_after == 0.0
    assert q.fee == pytest.approx(8.0 / 11.0, rel=REL)


# --- risk premium and interest --------------------------------------------------------------------------
def test_risk_premium_on_the_borrow_rate():
    # one collateral: RP = its collateral risk 20 %; drawn rate 4 % -> 4 % x 1.2 = 4.8 %
    rp = v4.user_risk_premium([(237_500.0, 0.20)], 200_000.0)
    assert rp == pytest.approx(0.20, rel=REL)
    assert v4.borrow_rate(0.04, rp) == pytest.approx(0.048, rel=REL)


def test_risk_premium_lowest_risk_collateral_covers_the_debt_first():
    # $100,000 of debt; B $80,000 at 50 % listed before A $60,000 at 10 %: A covers 60,000, B the other 40,000:
    # RP = (60,000 x 0.1 + 40,000 x 0.5) / 100,000 = 26,000 / 100,000 = 0.26
    assert v4.user_risk_premium([(80_000.0, 0.5), (60_000.0, 0.1)], 100_000.0) == pytest.approx(0.26, rel=REL)
    # debt above all collateral ($50,000 of it): RP over what covers it = (30,000 x 0.1 + 20,000 x 0.6) / 50,000
    assert v4.user_risk_premium([(20_000.0, 0.6), (30_000.0, 0.1)], 100_000.0) == pytest.approx(0.3, rel=REL)
    assert v4.user_risk_premium([(30_000.0, 0.1)], 0.0) == 0.0


def test_drawn_index_growth_over_a_year():
    # one accrual over a year at 5 %: 1 + 0.05; two half-year accruals: 1.025^2 = 1.050625 (linear between
    # accruals, compounded across them)
    assert v4.drawn_index_growth(0.05, Y) == pytest.approx(1.05, rel=REL)
    half = v4.drawn_index_growth(0.05, Y / 2)
    assert half * half == pytest.approx(1.050625, rel=REL)
    assert v4.drawn_index_growth(0.05, 0) == 1.0


def test_premium_debt_grows_at_the_premium_rate_and_does_not_compound():
    # Borrow 100 WETH at index 1 with RP 0.2: 100 drawn shares, 20 premium shares, offset 20 (premium 0).
    d = v4.draw(v4.Debt(0.0, 0.0, 0.0), 1.0, 100.0, 0.2)
    assert (d.drawn_shares, d.premium_shares, d.premium_offset) == pytest.approx((100.0, 20.0, 20.0), rel=REL)
    # a year at 5 % (index 1.05): drawn 105, premium 20 x 1.05 - 20 = 1, total 106 = 100 x (1 + 5 % x 1.2)
    assert d.total(1.05) == pytest.approx(106.0, rel=REL)
    # a second year (index 1.1025): drawn 110.25, premium 20 x 1.1025 - 20 = 2.05, total 112.30: the accrued
    # premium earns nothing (compounding the total at 6 % would give 106 x 1.06 = 112.36)
    assert d.total(1.1025) == pytest.approx(112.30, rel=REL)


def test_refresh_keeps_the_accrued_premium_and_changes_its_rate():
    # at index 1.05 the premium is 1.0; a refresh at RP 0.1: shares 10, offset 10 x 1.05 - 1.0 = 9.5
    d = v4.refresh(v4.Debt(100.0, 20.0, 20.0), 1.05, 0.1)
    assert (d.premium_shares, d.premium_offset) == pytest.approx((10.0, 9.5), rel=REL)
    assert d.premium(1.05) == pytest.approx(1.0, rel=REL)
    # then to 1.1025: premium 10 x 1.1025 - 9.5 = 1.525 = 1.0 + 10 x 0.0525
    assert d.premium(1.1025) == pytest.approx(1.525, rel=REL)


def test_repay_restores_the_premium_first():
    # at index 1.05: drawn 105, premium 1.0. Repay 3: premium 1.0, drawn 2.0 -> drawn shares 100 - 2 / 1.05;
    # the refresh at RP 0.2 sets shares 0.2 x that and the offset to shares x 1.05 (no premium left).
    d = v4.restore(v4.Debt(100.0, 20.0, 20.0), 1.05, 3.0, 0.2)
    assert d.drawn_shares == pytest.approx(100.0 - 2.0 / 1.05, rel=REL)
    assert d.premium(1.05) == pytest.approx(0.0, abs=1e-12)
    assert d.total(1.05) == pytest.approx(103.0, rel=REL)
    # repaying less than the premium leaves the drawn shares alone
    d = v4.restore(v4.Debt(100.0, 20.0, 20.0), 1.05, 0.4, 0.2)
    assert d.drawn_shares == 100.0 and d.premium(1.05) == pytest.approx(0.6, rel=REL)
    assert v4.restore(v4.Debt(100.0, 20.0, 20.0), 1.05, 106.0, 0.2) == v4.Debt(0.0, 0.0, 0.0)


# --- config keys and checks -----------------------------------------------------------------------------
def test_defaults_resolve_and_each_default_says_where_it_comes_from():
    sp = v4.resolve({})
    assert sp.collateral_factor == 0.955 and sp.max_lb == pytest.approx(1.01, rel=REL)
    assert (1.0 + sp.max_liquidation_bonus) * sp.collateral_factor < 1.0
    for key, (meaning, _) in v4.KEYS.items():
        assert "Example" in meaning, key


@pytest.mark.parametrize("key, value, words", [
    ("collateral_factor", 1.0, "(0, 1)"),
    ("collateral_factor", 0.0, "no collateral"),
    ("max_liquidation_bonus", -0.01, ">= 0"),
    ("max_liquidation_bonus", 0.05, "below 1"),          # 1.05 x 0.955 = 1.00275
    ("liquidation_bonus_factor", 1.5, "[0, 1]"),
    ("health_factor_for_max_bonus", 1.0, "[0, 1)"),
    ("target_health_factor", 0.99, ">= 1"),
    ("target_health_factor", math.inf, "finite"),
    ("liquidation_fee", -0.1, "[0, 1]"),
    ("collateral_risk", 10.5, "1000 %"),
    ("collateral_risk", math.nan, "a number"),
])
def test_impossible_values_are_refused_naming_the_key(key, value, words):
    with pytest.raises(ConfigError) as e:
        v4.resolve({key: value})
    assert f"market.{key}" in str(e.value) and words in str(e.value)


def test_unknown_key_is_refused_naming_it():
    with pytest.raises(ConfigError, match="market.liquidation_threshold: not an aave-v4 key"):
        v4.resolve({"liquidation_threshold": 0.9})


def test_the_example_uses_only_valid_venue_keys():
    # examples/aave-v4-wsteth-loop.toml: its [market] risk values are the venue's keys, pass its checks, and
    # its target LTV opens above HF 1 (0.955 / 0.90 = 1.061)
    import tomllib
    from pathlib import Path
    path = Path(__file__).resolve().parents[2] / "examples" / "aave-v4-wsteth-loop.toml"
    cfg = tomllib.loads(path.read_text())
    market = cfg["market"]
    assert market["protocol"] == v4.PROTOCOL
    sp = v4.resolve({k: market[k] for k in v4.KEYS if k in market})
    assert sp.collateral_factor / cfg["strategy"]["target_ltv"] == pytest.approx(1.0611, rel=1e-4)


def test_liquidation_step_repays_the_premium_first_then_refreshes_it():
    # The USD example on shares: index 1, 99 drawn shares and premium 19.8 x 1 - 18.8 = 1.0: debt 100 WETH.
    # wstETH at 1.25 ETH x $2,000 = $2,500. The call repays 50 (as above): the premium 1.0, then 49 drawn
    # -> 50 drawn shares; refreshed at RP 0.2: 10 premium shares, offset 10 x 1 - 0 = 10. 52.5 wstETH stay.
    step = v4.liquidation_step(95.0, v4.Debt(99.0, 19.8, 18.8), 1.0, 1.25, ETH, SP)
    assert step.liquidation.repaid == pytest.approx(50.0, rel=REL)
    assert step.coll == pytest.approx(52.5, rel=REL) and step.bad_debt == 0.0
    d = step.debt
    assert (d.drawn_shares, d.premium_shares, d.premium_offset) == pytest.approx((50.0, 10.0, 10.0), rel=REL)


def test_liquidation_step_writes_off_the_deficit():
    # 80 wstETH against 100 WETH (the deficit example): 1,000 / 11 repaid, the 100 / 11 left is bad debt and
    # the position is empty
    step = v4.liquidation_step(80.0, v4.Debt(100.0, 20.0, 20.0), 1.0, 1.25, ETH, SP)
    assert step.coll == 0.0 and step.debt == v4.Debt(0.0, 0.0, 0.0)
    assert step.bad_debt == pytest.approx(100.0 / 11.0, rel=1e-12)
