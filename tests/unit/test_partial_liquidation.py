"""market.liquidation_gas: a liquidator that pays gas and sells the seized collateral into a pool of finite depth
repays the amount that earns it most, a partial liquidation when the bonus does not cover gas and slippage on the
full close factor, and nothing when no amount pays (PROTOCOLS.md "Liquidations as they happen"). Default 0: full
close factor, as before. Both engines, hand-worked numbers."""
import numpy as np
import pytest

from backtest.config import load_config
from backtest.errors import ConfigError
from tests.helpers import both, liq_events, market, params
from tests.unit.test_config import render, write

LB, C = 1.05, 0.002          # bonus 5 %; linear slippage 20 bps per unit traded: fraction = 0.002 x notional


def run(liq_gas, gas_gwei=100.0):
    # Aave v2 (close factor 50 %, no protocol fee), oracle = the market price; from block 3 the price is 0.9 and
    # HF < 1. The liquidator's share of r x LB / 0.9 tokens sells for v = r x LB (0.9 cancels), less v x C x v:
    # profit(r) = r (LB - 1) - C LB^2 r^2 - G, highest at r* = (LB - 1) / (2 C LB^2) = 0.05 / 0.00441 = 11.3379,
    # where it is 0.05^2 / (4 C LB^2) - G = 0.283447 - G; G = liq_gas x gas price x 1e-9
    m = market(np.r_[np.ones(3), np.full(5, 0.9)], xrate=1.0, lt=0.81, ltv=0.8, bonus=LB - 1, pfee=0.0, dt=12)
    p = params(protocol="aave-v2", kind="flash-loan", target_ltv=0.78, slip_model="linear", slip_param=C * 1e4,
               gas_gwei=gas_gwei, liq_gas=liq_gas)
    return both(m, p, oracle="market")


def test_gas_and_slippage_make_the_liquidator_take_the_profit_maximising_bite_once_a_block():
    core, ref = run(1e6)             # G = 1e6 x 100 gwei = 0.1 < 0.2834: it pays
    r_star = (LB - 1) / (2 * C * LB ** 2)
    assert r_star == pytest.approx(11.337868, rel=1e-6)
    for out in (core, ref):
        ev = liq_events(out)
        assert ev["idx"].tolist() == [3, 4, 5, 6, 7]          # one bite per block while HF < 1 (close factor ~117)
        assert (-ev["debt"]) == pytest.approx(np.full(5, r_star), rel=1e-6)
        assert (-ev["coll"]) == pytest.approx(np.full(5, r_star * LB / 0.9), rel=1e-6)
    assert (-liq_events(core)["debt"]) == pytest.approx(-liq_events(ref)["debt"], rel=1e-9)


def test_no_amount_pays_then_no_liquidation():
    core, ref = run(3e6)             # G = 0.3 > 0.2834: the best bite loses money
    for out in (core, ref):
        assert len(liq_events(out)) == 0
        assert out.summaries[0]["min_hf"] < 1.0


def test_off_by_default_full_close_factor():
    core, ref = run(0.0)
    for out in (core, ref):
        ev = liq_events(out)
        assert int(ev[0]["idx"]) == 3
        # 50 % of the debt (~177) at once: far more than the profit-sized r* = 11.34
        assert -ev[0]["debt"] > 10 * (LB - 1) / (2 * C * LB ** 2)


def test_only_for_the_aave_family_with_one_collateral(tmp_path):
    cfg = load_config(write(tmp_path, render({"market": {"liquidation_gas": "500000"}})))
    assert cfg.market.liquidation_gas == 500000
    import backtest.engine as engine

    assert engine.encode_params([cfg], [engine.lane_of(cfg)])[0]["liq_gas"] == 500000
    morpho = load_config(write(tmp_path, render({"market": {"protocol": '"morpho-blue"', "liquidation_gas": "1e5",
                                                            "emode": '"none"'}})))
    with pytest.raises(ConfigError, match="liquidation_gas"):
        engine.encode_params([morpho], [engine.lane_of(morpho)])
