"""The Aave-family liquidation sizing both reference replays share (backtest.reference.liquidation.
aave_liquidation_size: one collateral, or the leg a multi-collateral liquidation takes), by hand.

Every case: the collateral at oracle price 1 debt unit per token, LB = 1.05, USD = 1 per debt unit unless told
(so values are dollars), dust 1e-10. PROTOCOLS.md "Aave v3": 50 % of the debt while HF > 0.95, 100 % at or
below; seized = repaid x LB / price, capped at the balance (then repaid = balance x price / LB); Aave v2 50 %
fixed; from v33_from also 100 % when the collateral or the debt is below $2,000, and a partial liquidation
leaves >= $1,000 of each (the repay shrinks to the largest that passes)."""
from __future__ import annotations

import pytest

from backtest.reference import Settings, aave_liquidation_size
from backtest.schema import PROTOCOLS
from tests.helpers import params

LB, DUST, T = 1.05, 1e-10, 1_000


def size(protocol="aave-v3", hf=0.97, coll=110.0, debt=100.0, v33=False, usd=1.0, **kw):
    s = Settings.of_params(params(protocol=protocol, v33_from=0 if v33 else 2 ** 62, **kw)[0])
    return aave_liquidation_size(PROTOCOLS[protocol], s, T, hf, coll, debt, 1.0, LB, usd, DUST)


def test_half_the_debt_above_hf_095_and_all_of_it_at_095():
    assert size(hf=0.97) == pytest.approx((50.0, 52.5), rel=1e-15)          # 50 x 1.05 = 52.5 tokens
    assert size(hf=0.95) == pytest.approx((100.0, 105.0), rel=1e-15)        # not > 0.95: 100 %


def test_the_seizure_is_capped_at_the_balance():
    # 100 % of 100 would seize 105 of 100 tokens: all 100 go, repaying 100 / 1.05 = 95.238095...
    repay, seized = size(hf=0.9, coll=100.0)
    assert seized == 100.0 and repay == pytest.approx(100.0 / 1.05, rel=1e-15)


def test_aave_v2_closes_half_even_below_095_and_a_configured_close_factor_wins():
    assert size("aave-v2", hf=0.9) == pytest.approx((50.0, 52.5), rel=1e-15)
    assert size("generic", hf=0.9, cf_ovr=0.3) == pytest.approx((30.0, 31.5), rel=1e-15)


def test_v33_closes_small_positions_fully():
    # $1,500 of debt is below $2,000: 100 % at HF 0.97; the same position before v33_from: 50 %
    assert size(v33=True, coll=1600.0, debt=1500.0) == pytest.approx((1500.0, 1575.0), rel=1e-15)
    assert size(v33=False, coll=1600.0, debt=1500.0) == pytest.approx((750.0, 787.5), rel=1e-15)


def test_v33_leftover_rule_shrinks_the_repay():
    # debt 2,000, collateral 2,040: 50 % repays 1,000 and seizes 1,050, leaving $990 of collateral (< $1,000):
    # r1 = 2,000 - 1,000 = 1,000, r2 = (2,040 - 1,000) / 1.05 = 990.476..., so repay 990.476 and seize 1,040
    repay, seized = size(v33=True, coll=2040.0, debt=2000.0)
    assert repay == pytest.approx(1040.0 / 1.05, rel=1e-15) and seized == pytest.approx(1040.0, rel=1e-15)
    # leaving exactly $1,000 of each passes unchanged: debt 2,000, collateral 2,050
    assert size(v33=True, coll=2050.0, debt=2000.0) == pytest.approx((1000.0, 1050.0), rel=1e-15)


def test_a_shrunk_repay_within_the_dust_is_no_liquidation():
    # the leftover case above shrinks the repay to 990.476; with a dust of 1,000 (a capital of 1e15) that is
    # within rounding of zero: no liquidation (None), where a dust of 990 still liquidates
    s = Settings.of_params(params(protocol="aave-v3", v33_from=0)[0])
    code = PROTOCOLS["aave-v3"]
    assert aave_liquidation_size(code, s, T, 0.97, 2040.0, 2000.0, 1.0, LB, 1.0, 1000.0) is None
    repay, _ = aave_liquidation_size(code, s, T, 0.97, 2040.0, 2000.0, 1.0, LB, 1.0, 990.0)
    assert repay == pytest.approx(1040.0 / 1.05, rel=1e-15)
