"""market.liquidation_delay: liquidators act only once HF has stayed below 1 for that many blocks (PROTOCOLS.md
"Liquidations as they happen": in a thin market a liquidation can come blocks later); 0, the default, is the first
block, as before. Both engines, every venue family."""
import numpy as np
import pytest

from backtest.config import load_config
from backtest.engine import encode_params, lane_of
from tests.helpers import both, liq_events, market, params
from tests.unit.test_config import render, write


def dip_market():
    # a flash-loan loop at LTV 0.9 (LT 0.95, HF 1.0556 at 1.0): the price is 0.94 on blocks 3-10 (HF 0.992 < 1)
    # and 1.0 again from block 11; the market oracle reads it
    prices = np.r_[np.ones(3), np.full(8, 0.94), np.ones(9)]
    return market(prices, xrate=1.0, lt=0.95, ltv=0.93, bonus=0.01, pfee=0.1, dt=12)


@pytest.mark.parametrize("protocol", ["aave-v3", "morpho-blue", "compound-v3"])
@pytest.mark.parametrize("delay, first", [(0, 3), (1, 4), (4, 7), (7, 10), (8, None), (50, None)])
def test_the_first_liquidation_waits_delay_blocks_below_1(protocol, delay, first):
    # below 1 from block 3: with delay k the liquidators act at block 3 + k while it is still below (block 10 the
    # last); k = 8 would be block 11, where HF is back above 1: never
    p = params(protocol=protocol, kind="flash-loan", target_ltv=0.9, liq_delay=delay)
    core, ref = both(dip_market(), p, oracle="market")
    for out in (core, ref):
        ev = liq_events(out)
        assert (int(ev[0]["idx"]) if len(ev) else None) == first
    assert len(liq_events(core)) == len(liq_events(ref))
    assert core.summaries[0]["end_equity"] == pytest.approx(ref.summaries[0]["end_equity"], rel=1e-12)


def test_a_recovery_restarts_the_count():
    # below 1 on blocks 3-5, above on 6, below again on 7-12: with delay 3 the first run (3 blocks, 3..5) ends
    # before its block 6; the second starts at 7 and is liquidated at 10
    prices = np.r_[np.ones(3), np.full(3, 0.94), [1.0], np.full(6, 0.94), np.ones(5)]
    m = market(prices, xrate=1.0, lt=0.95, ltv=0.93, bonus=0.01, pfee=0.1, dt=12)
    p = params(kind="flash-loan", target_ltv=0.9, liq_delay=3)
    core, ref = both(m, p, oracle="market", chunk=4)
    for out in (core, ref):
        assert int(liq_events(out)[0]["idx"]) == 10


def test_the_config_key_reaches_the_parameters(tmp_path):
    cfg = load_config(write(tmp_path, render({"market": {"liquidation_delay": "25"}})))
    assert cfg.market.liquidation_delay == 25
    assert int(encode_params([cfg], [lane_of(cfg)])[0]["liq_delay"]) == 25
    assert load_config(write(tmp_path, render())).market.liquidation_delay == 0
