"""The reference engine reads a configuration's resolved values (backtest.reference.settings.Settings), and
reading them from the Config gives what decoding the kernel's row gives: the two engines replay one thing."""
from __future__ import annotations

import math
from pathlib import Path

import pytest

from backtest.config import load_config, loads_config
from backtest.config.sweep import expand_sweep
from backtest.engine import encode_params, lane_of
from backtest.reference import Settings

EXAMPLES = sorted((Path(__file__).resolve().parents[2] / "examples").glob("*.toml"))


def both(cfg):
    return Settings.of_config(cfg), Settings.of_params(encode_params([cfg], [lane_of(cfg)])[0])


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_every_example_reads_the_same_from_its_config_and_from_its_row(path):
    for _, cfg in expand_sweep(load_config(path)):
        a, b = both(cfg)
        assert a == b


BASE = """
[run]
name = "t"
start = "2024-01-01"
end = "2024-02-01"
[market]
protocol = "aave-v3"
collateral = "wstETH"
[strategy]
kind = "loop"
capital = 10.0
target_ltv = 0.7
"""


def test_what_the_config_leaves_out_reads_as_absent_not_as_codes():
    s = Settings.of_config(loads_config(BASE))
    assert (s.protocol, s.strategy, s.entry, s.loops) == ("aave-v3", "loop", "swap", 5)
    assert s.rebalance is None and s.exit is None and s.close_factor is None
    assert s.costs.gas_gwei is None                       # gas = "data": the lake's series
    assert s.costs.slippage == "none" and s.venue == {}


def test_exit_and_rebalance_in_the_configs_words():
    cfg = loads_config(BASE + """
[strategy.rebalance]
deleverage_below_hf = 1.1
target_hf = 1.3
[strategy.exit]
depeg_below = 0.97
route = "queue"
[costs]
gas = 12.5
slippage = "stableswap"
""")
    s = Settings.of_config(cfg)
    assert s.rebalance.target_hf == 1.3 and s.rebalance.releverage_above_hf == math.inf
    # wstETH is not restaked: the queue pays out after the engine's default 5 days, no later delay
    assert (s.exit.route, s.exit.depeg_below, s.exit.queue_delay, s.exit.queue_late_from) == \
        ("queue", 0.97, 5 * 86400, 0)
    assert s.costs.gas_gwei == 12.5 and s.costs.slippage == "stableswap"
    assert s == both(cfg)[1]


def test_aave_v4_spoke_keys_by_their_config_names():
    cfg = loads_config(BASE.replace('protocol = "aave-v3"', 'protocol = "aave-v4"\ncollateral_risk = 0.25')
                       .replace("target_ltv = 0.7", "target_ltv = 0.5"))
    s = Settings.of_config(cfg)
    assert s.venue["collateral_risk"] == 0.25
    assert set(s.venue) == {"liquidation_bonus_factor", "health_factor_for_max_bonus", "target_health_factor",
                            "collateral_risk"}
    assert s == both(cfg)[1]


def test_a_row_with_an_unknown_code_is_refused_not_guessed():
    from tests.helpers import params

    row = params()[0]
    row["slip_model"] = 9
    with pytest.raises(ValueError, match="unknown code 9"):
        Settings.of_params(row)
