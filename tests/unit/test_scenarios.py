"""[[scenario]] overlays on hand-made series (backtest.data.scenarios): each kind, its shapes and the stacking
order, with the numbers worked by hand from the formulas in the module docstring."""
import math

import numpy as np
import pytest

from backtest.data.market import Market
from backtest.data.request import Scenario
from backtest.data.scenarios import apply_scenarios, scenario_shape
from backtest.errors import DataError
from backtest.schema import RECORD_FIELDS
from backtest.venues.base import utc_date
from tests.helpers import both, liq_events, market, params

H = 3600
Y = 365 * 86400
F = {name: i for i, name in enumerate(RECORD_FIELDS)}


def hourly(n=10, t0=0, **kw) -> Market:
    base = dict(price=1.0, xrate=1.0, eth_usd=3000.0, borrow_apr=0.03, supply_apr=0.0, ltv=0.93, lt=0.95,
                bonus=0.01, pfee=0.1, gas_gwei=10.0)
    base.update(kw)
    return Market.from_arrays(n, ts=t0 + np.arange(n, dtype=np.int64) * H, **base)


def sc(kind, asset="wstETH", at=H, depth=None, duration=4 * H, **kw):
    return Scenario(kind, asset, at, depth, duration, **kw)


# ------------------------------------------------------------------------------------------------ shapes
def test_linear_fall_then_recovery():
    # at 1 h, 4 h down (s = (t - 1h) / 4h), then 2 h back up from 1: hours 0..7
    s = scenario_shape(np.arange(8) * H, H, 4 * H, "linear", recovery=2 * H)
    assert s.tolist() == [0.0, 0.0, 0.25, 0.5, 0.75, 1.0, 0.5, 0.0]


def test_step_with_recovery_and_v():
    assert scenario_shape(np.arange(8) * H, H, 2 * H, "step", 4 * H).tolist() == [0, 1, 1, 1, 0.75, 0.5, 0.25, 0]
    assert scenario_shape(np.arange(6) * H, H, 4 * H, "v").tolist() == [0, 0, 0.5, 1, 0.5, 0]
    with pytest.raises(DataError, match="recovery needs shape step or linear"):
        scenario_shape(np.arange(6) * H, H, 4 * H, "v", recovery=H)


def test_depeg_linear_with_recovery_moves_only_the_market_price():
    m = hourly(price=1.2, xrate=1.2)
    out = apply_scenarios(m, [sc("depeg", depth=0.2, shape="linear", recovery=2 * H)], collateral="wstETH")
    # 1.2 x (1 - 0.2 s): s = 0, 0.25, 0.5, 0.75 | 1, 0.5 | 0 -> 1.2, 1.14, 1.08, 1.02, 0.96, 1.08, 1.2
    assert out.price[:8] == pytest.approx([1.2, 1.2, 1.14, 1.08, 1.02, 0.96, 1.08, 1.2], rel=1e-15)
    assert (out.xrate == 1.2).all() and (m.price == 1.2).all()     # the input is not modified


# ------------------------------------------------------------------------------------------- rate spikes
def test_rate_spike_level_and_multiple_stack_in_config_order():
    m = hourly(borrow_apr=0.03)
    x3 = sc("rate_spike", "WETH", at=H, duration=2 * H, multiple=3.0)       # hours 1, 2: 0.09
    lvl = sc("rate_spike", "WETH", at=2 * H, duration=2 * H, level=0.5)     # hours 2, 3: 0.5
    a = apply_scenarios(m, [x3, lvl], debt="WETH").borrow_apr
    assert a[:5] == pytest.approx([0.03, 0.09, 0.5, 0.5, 0.03], rel=1e-15)
    b = apply_scenarios(m, [lvl, x3], debt="WETH").borrow_apr              # the level first, then x 3
    assert b[:5] == pytest.approx([0.03, 0.09, 1.5, 0.5, 0.03], rel=1e-15)
    add = apply_scenarios(m, [sc("rate_spike", "WETH", depth=0.2, duration=H)], debt="WETH").borrow_apr
    assert add[:3] == pytest.approx([0.03, 0.23, 0.03], rel=1e-15)


def test_utilization_drain_raises_the_aave_rate_through_its_dated_curve():
    # July 2024: base 1 %, slope1 2.7 %, slope2 80 %, U_opt 90 %. U 0.85 -> 0.95 (a 10 pt supply drain):
    # curve(0.85) = 0.01 + 0.027 x 0.85 / 0.9 = 0.0355; curve(0.95) = 0.01 + 0.027 + 0.8 x 0.05 / 0.1 = 0.437;
    # the lake's 0.0255 (base 0 there) rises by the difference, 0.4015, to 0.427
    t0 = utc_date("2024-07-01")
    m = hourly(t0=t0, borrow_apr=0.0255, utilization=0.85)
    out = apply_scenarios(m, [sc("utilization", "WETH", at=t0 + H, depth=0.10, duration=2 * H, shape="step")],
                          debt="WETH", protocol="aave-v3")
    assert out.borrow_apr[:4] == pytest.approx([0.0255, 0.427, 0.427, 0.0255], rel=1e-12)
    assert out.utilization[:4] == pytest.approx([0.85, 0.95, 0.95, 0.85], rel=1e-15)
    # 2026: slope1 2.2 %, slope2 6 %, U_opt 92 %; 0.90 -> 1.0 (capped): 0.092 - (0.01 + 0.022 x 0.9 / 0.92)
    t1 = utc_date("2026-03-01")
    m = hourly(t0=t1, borrow_apr=0.03, utilization=0.90)
    out = apply_scenarios(m, [sc("utilization", "WETH", at=t1, depth=0.5, duration=H, shape="step")],
                          debt="WETH", protocol="aave-v3")
    assert out.borrow_apr[0] == pytest.approx(0.03 + 0.092 - (0.01 + 0.022 * 0.9 / 0.92), rel=1e-12)
    assert out.utilization[0] == 1.0


def test_utilization_on_aave_needs_the_lakes_utilisation():
    m = hourly(t0=utc_date("2024-07-01"))          # utilization NaN: not read
    with pytest.raises(DataError, match="utilization"):
        apply_scenarios(m, [sc("utilization", "WETH", at=int(m.ts[1]), depth=0.1, shape="step")], debt="WETH",
                        protocol="aave-v3")


# --------------------------------------------------------------------------------------- slash, gas, oracle
def test_slash_cuts_the_rate_and_price_from_the_first_block_at_or_after_it():
    m = hourly(price=1.19, xrate=1.2)
    two = [sc("slash", at=2 * H + 1800, depth=0.1), sc("slash", at=3 * H, depth=0.5)]
    out = apply_scenarios(m, two, collateral="wstETH")
    # both land on block 3 (the first at or after 2.5 h): 1.2 x 0.9 x 0.5 = 0.54, 1.19 x 0.45 = 0.5355
    assert out.xrate[:5] == pytest.approx([1.2, 1.2, 1.2, 0.54, 0.54], rel=1e-15)
    assert out.price[3] == pytest.approx(0.5355, rel=1e-15)
    assert out.slash[3] == pytest.approx(1 - 0.9 * 0.5, rel=1e-15) and out.slash.sum() == out.slash[3]


def test_gas_spike_level_multiple_and_added_gwei():
    m = hourly(gas_gwei=10.0)
    lvl = apply_scenarios(m, [sc("gas_spike", "gas", at=H, duration=2 * H, level=200.0, shape="step")])
    assert lvl.gas_gwei[:4].tolist() == [10.0, 200.0, 200.0, 10.0]
    # v over 4 h with x 5: weight 0, 0.5, 1, 0.5 -> 10 x (1 + 4 s) = 10, 30, 50, 30
    mul = apply_scenarios(m, [sc("gas_spike", "gas", at=H, duration=4 * H, multiple=5.0, shape="v")])
    assert mul.gas_gwei[1:6].tolist() == [10.0, 30.0, 50.0, 30.0, 10.0]
    add = apply_scenarios(m, [sc("gas_spike", "gas", at=H, duration=H, depth=90.0, shape="step")])
    assert add.gas_gwei[:3].tolist() == [10.0, 100.0, 10.0]


def test_oracle_offset_and_capo_snapshot_arrays():
    m = hourly(xrate=1.20)
    off = apply_scenarios(m, [sc("oracle", depth=0.0285, duration=2 * H, shape="step")], collateral="wstETH")
    assert off.oracle_scale[:4].tolist() == [1.0, 1.0 - 0.0285, 1.0 - 0.0285, 1.0]
    # a snapshot 2.85 % below the live 1.20 at 1 h, growing 9.68 %/yr from then: cap(t) = 1.1658 (1 + g (t - 1h)/Y)
    cap = apply_scenarios(m, [sc("capo_snapshot", depth=0.0285, duration=3 * H, growth=0.0968)],
                          collateral="wstETH").oracle_cap
    assert math.isnan(cap[0]) and math.isnan(cap[4])
    assert cap[1:4] == pytest.approx([1.1658 * (1 + 0.0968 * k * H / Y) for k in range(3)], rel=1e-15)
    given = apply_scenarios(m, [sc("capo_snapshot", ratio=1.1, snapshot_at=0, duration=H, growth=0.1)],
                            collateral="wstETH").oracle_cap
    assert given[1] == pytest.approx(1.1 * (1 + 0.1 * H / Y), rel=1e-15)


def test_overlays_on_another_asset_are_skipped():
    m = hourly()
    out = apply_scenarios(m, [sc("depeg", "weETH", depth=0.1), sc("oracle", "weETH", depth=0.1),
                              sc("rate_spike", "USDC", depth=0.1)], collateral="wstETH", debt="WETH")
    assert (out.price == 1.0).all() and (out.oracle_scale == 1.0).all() and (out.borrow_apr == 0.03).all()


# ------------------------------------------------------------------------------------- in both engines
@pytest.mark.parametrize("hf0, liquidated", [(1.02, True), (1.04, False)])
def test_a_capo_snapshot_below_the_rate_liquidates_a_thin_loop_in_both_engines(hf0, liquidated):
    # one flash-loan loop at LT 0.95, opened at block 0 with HF hf0 = 0.95 / LTV at the exchange rate 1.2; from block 3 the
    # cap is 1.2 x (1 - 0.0285) (zero growth): HF x 0.9715 = 0.991 (< 1) at 1.02, 1.0104 at 1.04
    n = 8
    m = market(np.full(n, 1.2), xrate=1.2, lt=0.95, ltv=0.95, bonus=0.01, pfee=0.1, dt=H, t0=10 * 7 * 86400)
    m.oracle_cap = np.where(np.arange(n) >= 3, 1.2 * (1 - 0.0285), np.nan)
    p = params(kind="flash-loan", target_ltv=0.95 / hf0)
    core, ref = both(m, p, oracle="capo", record=0, capo=(0.0, 7 * 86400))
    for out in (core, ref):
        assert out.records[0][2, F["oracle_price"]] == pytest.approx(1.2, rel=1e-15)
        assert out.records[0][3, F["oracle_price"]] == pytest.approx(1.2 * 0.9715, rel=1e-15)
        ev = liq_events(out)
        assert (len(ev) > 0) is liquidated
        if liquidated:
            # seized x 1.2 (the rate) per debt repaid = LB / 0.9715 = 1.01 / 0.9715: a loss of 3.96 % of it
            b, repaid, seized = ev[0]["idx"], -ev[0]["debt"], -ev[0]["coll"]
            assert b == 3
            assert seized * 1.2 / repaid == pytest.approx(1.01 / 0.9715, rel=1e-12)
    assert core.summaries[0]["liq_count"] == ref.summaries[0]["liq_count"]


def test_an_oracle_offset_scales_every_mode_in_both_engines():
    m = market(np.full(4, 1.19), xrate=1.2, dt=H)
    m.oracle_scale = np.array([1.0, 0.9, 0.9, 1.0])
    for mode, live in (("exchange-rate", 1.2), ("market", 1.19)):
        core, ref = both(m, params(kind="lend"), oracle=mode, record=0)
        for out in (core, ref):
            assert out.records[0][:, F["oracle_price"]] == pytest.approx([live, 0.9 * live, 0.9 * live, live],
                                                                        rel=1e-15)


@pytest.mark.parametrize("frozen, release_block", [(None, 12), ((0, 5 * H), 15), ((3 * H, 8 * H), 12)])
def test_a_frozen_queue_serves_a_request_only_after_the_freeze_in_both_engines(frozen, release_block):
    # the peg breaks at block 2 (0.95 < 0.97): the loop exits through the queue, which waits 10 h. Unfrozen: the
    # claim is paid at 2 h + 10 h = block 12. Frozen on [0, 5 h): it waits until 5 h, then 10 h: block 15. A freeze
    # from 3 h starts after the request and changes nothing.
    from backtest.schema import EVENT_KINDS, EXIT_ROUTES

    t0 = 1_700_000_000 - 1_700_000_000 % H
    m = market(np.r_[1.0, 1.0, np.full(28, 0.95)], xrate=1.0, dt=H, t0=t0)
    kw = dict(exit_on=1, exit_route=EXIT_ROUTES["queue"], depeg_below=0.97, queue_delay=10 * H, check_every=H)
    if frozen is not None:
        kw.update(queue_frozen_from=t0 + frozen[0], queue_frozen_until=t0 + frozen[1])
    core, ref = both(m, params(kind="loop", target_ltv=0.5, loops=2, **kw), oracle="exchange-rate")
    for out in (core, ref):
        ev = out.events[0]
        assert ev[ev["kind"] == EVENT_KINDS["exit"]]["idx"].tolist() == [2]
        assert ev[ev["kind"] == EVENT_KINDS["queue_release"]]["idx"].tolist() == [release_block]
    assert core.summaries[0]["end_cash"] == pytest.approx(ref.summaries[0]["end_cash"], rel=1e-12)
