"""The [[scenario]] keys of each kind (backtest.config.rules.scenario_rules): what each takes and refuses."""
import pytest

from backtest.engine import CAPO_GROWTH
from backtest.plan import request_for
from tests.unit.test_config import fails, load, render, scenario


def test_new_kinds_resolve_with_their_defaults(tmp_path):
    cfg = load(tmp_path, changes={"market": {"oracle": '"capo"'}}, extra=(
        scenario(shape='"linear"', recovery='"2d"')
        + scenario(kind='"rate_spike"', asset='"WETH"', depth=None, level="0.2", duration='"1d"', shape=None)
        + scenario(kind='"slash"', depth="0.05", duration=None, shape=None)
        + scenario(kind='"gas_spike"', asset=None, depth=None, multiple="10", duration='"6h"', shape=None)
        + scenario(kind='"oracle"', depth="0.0285", duration='"1d"', shape=None)
        + scenario(kind='"capo_snapshot"', depth="0.0285", duration=None, shape=None)
        + scenario(kind='"withdrawals_frozen"', depth=None, duration='"10d"', shape=None)))
    dep, spike, slash, gas, orc, capo, frozen = cfg.scenarios
    assert (dep.shape, dep.recovery) == ("linear", 2 * 86400)
    assert (spike.level, spike.depth) == (0.2, None)
    assert slash.duration == 0 and gas.asset == "gas" and gas.shape == "step" and orc.shape == "step"
    assert capo.duration == cfg.run.end - capo.at                 # until the window ends unless told
    assert frozen.duration == 10 * 86400
    # the data layer's capo_snapshot takes the CAPO lane's growth (wstETH: 9.68 %/yr)
    req = request_for(cfg)
    assert req.scenarios[5].growth == CAPO_GROWTH["wstETH"] == 0.0968


@pytest.mark.parametrize("extra, key, fragment", [
    (scenario(kind='"capo_snapshot"', depth="0.03", duration=None, shape=None), "kind", 'market.oracle = "capo"'),
    (scenario(kind='"rate_spike"', asset='"WETH"', depth=None, level="0.2", multiple="2", shape=None), "kind",
     "exactly one of depth, level, multiple"),
    (scenario(recovery='"1d"'), "recovery", "recovery needs"),
    (scenario(kind='"slash"', depth="1.0", duration=None, shape=None), "depth", "must be in (0, 1)"),
    (scenario(kind='"slash"', asset='"WETH"', duration=None, shape=None), "asset", "applies to the collateral"),
    (scenario(kind='"oracle"', recovery=None, level="0.5", shape=None), "level", "not a key of a oracle scenario"),
    (scenario(kind='"withdrawals_frozen"', shape=None), "depth", "has no depth"),
    (scenario(kind='"utilization"', asset='"WETH"', depth="0.1"), "kind", "market.borrow_rate fixes"),
])
def test_kind_rules(tmp_path, extra, key, fragment):
    changes = {"market": {"borrow_rate": "0.03"}} if "utilization" in extra else None
    msg = fails(tmp_path, render(changes, extra=extra))
    assert f"scenario[0].{key}" in msg and fragment in msg, msg


def test_one_freeze_per_run(tmp_path):
    two = scenario(kind='"withdrawals_frozen"', depth=None, shape=None) * 2
    msg = fails(tmp_path, render(extra=two))
    assert "scenario[1].kind" in msg and "one withdrawals_frozen" in msg
