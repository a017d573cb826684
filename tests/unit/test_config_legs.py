"""[[strategy.collateral]]: the rules of a multi-collateral position, each message naming the key and its line."""
import pytest

from backtest.config import config_hash, config_to_dict, loads_config
from backtest.errors import ConfigError

HEAD = """[run]
name = "mc"
start = "2024-06-01"
end = "2024-06-08"

[market]
protocol = "{protocol}"
debt = "WETH"
{market}
[strategy]
kind = "loop"
target_ltv = 0.8
{strategy}
"""


def toml(legs, protocol="aave-v3", market="", strategy=""):
    body = "".join(f'\n[[strategy.collateral]]\ntoken = "{t}"\nweight = {w}\n' for t, w in legs)
    return HEAD.format(protocol=protocol, market=market, strategy=strategy) + body


def refused(text, *needles):
    with pytest.raises(ConfigError) as e:
        loads_config(text, "mc.toml")
    msg = str(e.value)
    for n in needles:
        assert n in msg, msg
    return msg


def test_two_legs_are_read_in_order_and_market_collateral_is_the_first():
    c = loads_config(toml([("wstETH", 0.6), ("weETH", 0.4)]), "mc.toml")
    assert [(leg.token, leg.weight) for leg in c.strategy.collateral] == [("wstETH", 0.6), ("weETH", 0.4)]
    assert c.market.collateral == "wstETH"
    assert config_to_dict(c)["strategy"]["collateral"] == [{"token": "wstETH", "weight": 0.6},
                                                           {"token": "weETH", "weight": 0.4}]


def test_one_leg_is_the_short_form_with_the_same_hash():
    one = loads_config(toml([("weETH", 1.0)]), "mc.toml")
    short = loads_config(HEAD.format(protocol="aave-v3", market='collateral = "weETH"\n', strategy=""), "mc.toml")
    assert one.strategy.collateral == () and one.market.collateral == "weETH"
    assert config_hash(one) == config_hash(short)
    assert "collateral" not in config_to_dict(short)["strategy"]      # the one-collateral hash is unchanged


def test_weights_must_sum_to_one_within_1e9():
    # 0.6 + 0.4000000001 is 1 + 1e-10: accepted; 0.6 + 0.41 is not, named at the last weight's line (21)
    loads_config(toml([("wstETH", 0.6), ("weETH", 0.4000000001)]), "mc.toml")
    refused(toml([("wstETH", 0.6), ("weETH", 0.41)]), "mc.toml:21", "strategy.collateral[1].weight = 0.41",
            "sum to 1.01", "must sum to 1")


def test_weights_must_be_positive():
    refused(toml([("wstETH", 1.0), ("weETH", 0.0)]), "mc.toml:21", "strategy.collateral[1].weight")


def test_tokens_must_be_distinct_and_not_the_debt():
    refused(toml([("wstETH", 0.5), ("wstETH", 0.5)]), "mc.toml:20", "strategy.collateral[1].token",
            "same collateral as strategy.collateral[0]")
    refused(toml([("wstETH", 0.5), ("WETH", 0.5)]), "strategy.collateral[1].token", "the debt asset")


def test_at_most_four_legs():
    legs = [(t, 0.2) for t in ("wstETH", "weETH", "rETH", "cbETH", "ezETH")]
    refused(toml(legs), "strategy.collateral", "at most 4 collateral legs", "names 5")


def test_morpho_blue_refuses_more_than_one_leg():
    refused(toml([("wstETH", 0.6), ("weETH", 0.4)], protocol="morpho-blue", market="lltv = 0.945\n"),
            "strategy.collateral[1]", "Morpho Blue market has one collateral")


def test_restake_rewards_and_one_capo_growth_are_refused_with_legs():
    refused(toml([("wstETH", 0.6), ("weETH", 0.4)], strategy='restake = "ezETH"\n'), "mc.toml:13",
            "strategy.restake", "several [[strategy.collateral]]")
    refused(toml([("wstETH", 0.6), ("weETH", 0.4)], market='oracle = "capo"\ncapo_growth = 0.09\n'),
            "market.capo_growth", "each leg takes its token's default")


def test_market_collateral_must_agree_with_the_first_leg():
    refused(toml([("wstETH", 0.6), ("weETH", 0.4)], market='collateral = "rETH"\n'), "mc.toml:9",
            'market.collateral = "rETH"', "first leg's token ('wstETH')")
    c = loads_config(toml([("wstETH", 0.6), ("weETH", 0.4)], market='collateral = "wstETH"\n'), "mc.toml")
    assert c.market.collateral == "wstETH"


def test_collateral_must_be_an_array_of_tables_with_token_and_weight():
    bad = HEAD.format(protocol="aave-v3", market="", strategy="") + '\n[strategy.collateral]\ntoken = "wstETH"\n'
    refused(bad, "strategy.collateral", "array of tables")
    refused(toml([("wstETH", 0.6)]).replace("weight = 0.6\n", ""), "strategy.collateral[0].weight",
            "missing required key")
    refused(toml([("wstETH", 1.0)]).replace("weight = 1.0\n", "weight = 1.0\nwieght = 2\n"),
            "strategy.collateral[0].wieght", "unknown key")


def test_a_depeg_of_one_leg_is_that_legs_alignment_only():
    from backtest.legs import leg_config, leg_tokens

    text = toml([("wstETH", 0.6), ("weETH", 0.4)]) + """
[[scenario]]
kind = "depeg"
asset = "weETH"
at = "2024-06-03"
depth = 0.1
duration = "1d"

[[scenario]]
kind = "rate_spike"
asset = "WETH"
at = "2024-06-04"
depth = 0.2
duration = "1d"
"""
    c = loads_config(text, "mc.toml")
    assert leg_tokens(c) == ("wstETH", "weETH")
    wst, wee = leg_config(c, "wstETH"), leg_config(c, "weETH")
    assert [s.asset for s in wst.scenarios] == ["WETH"]               # the debt's overlay applies to every leg
    assert [s.asset for s in wee.scenarios] == ["weETH", "WETH"]
    assert wee.market.collateral == "weETH" and wee.strategy.collateral == ()
