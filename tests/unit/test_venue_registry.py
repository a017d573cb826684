"""The venue registry (backtest/venues): one record per market.protocol, agreeing with the enums, the kernel, the
data layer's constants and the config; and Aave v4's config keys, messages and checks through it."""
from pathlib import Path

import numpy as np
import pytest

from backtest import _core, venues
from backtest.config import loads_config
from backtest.config.schema import CHAIN_PROTOCOLS, PROTOCOLS as CONFIG_PROTOCOLS
from backtest.data.market import Market
from backtest.engine import check_against_market, encode_params, lane_of
from backtest.errors import ConfigError, DataError
from backtest.reference import index_growth
from backtest.schema import PARAMS_DTYPE, PROTOCOLS
from backtest.sweep import market_key

ROOT = Path(__file__).resolve().parents[2]


def test_the_registry_holds_every_protocol_of_the_schema_in_its_order():
    assert tuple(venues.REGISTRY) == tuple(PROTOCOLS) == CONFIG_PROTOCOLS
    assert _core.protocol_codes() == PROTOCOLS
    # the rate models: the registry's names at their positions are the kernel's codes
    from backtest.venues.base import BORROW_GROWTH, SUPPLY_GROWTH
    supply, borrow = _core.growth_codes()
    assert supply == {name: i for i, name in enumerate(SUPPLY_GROWTH)}
    assert borrow == {name: i for i, name in enumerate(BORROW_GROWTH)}
    for v in venues.REGISTRY.values():
        assert v.problems() == [], v.protocol


def test_the_registry_says_which_venues_lend_collateral_out_and_where_they_run():
    # collateral on Morpho Blue and Compound III is not lent out (PROTOCOLS.md): the data build reads no
    # supply_apr series for them and their supply index stays 1
    assert venues.no_supply_yield() == ("morpho-blue", "compound-v3")
    assert CHAIN_PROTOCOLS == {"cosmos": ("generic",), "solana": ("generic",)}


# the modules that replay, check and build a market ask the venue registry (backtest/venues/) what a venue does;
# none of them branches on a venue's name
NO_VENUE_NAMES = ("backtest/engine.py", "backtest/engine_legs.py", "backtest/data/build.py", "backtest/plan.py",
                  "backtest/legs.py", "backtest/sweep.py", "backtest/irm.py",
                  *sorted(str(p.relative_to(ROOT)) for p in (ROOT / "backtest" / "reference").glob("*.py")))


@pytest.mark.parametrize("path", NO_VENUE_NAMES)
def test_no_venue_branch_outside_the_registry(path):
    import ast

    names = set(PROTOCOLS)
    found = []
    for node in ast.walk(ast.parse((ROOT / path).read_text())):
        if isinstance(node, ast.Compare):          # protocol == "morpho-blue", proto in ("compound-v3", ...)
            found += [f"{path}:{node.lineno} {c.value!r}" for part in (node.left, *node.comparators)
                      for c in ast.walk(part) if isinstance(c, ast.Constant) and c.value in names]
        elif isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant) and node.slice.value in names:
            found.append(f"{path}:{node.lineno} [{node.slice.value!r}]")    # PROTOCOLS["aave-v2"]
    assert found == [], found


def test_the_venue_branch_check_finds_a_branch():
    import ast

    tree = ast.parse('if p == "morpho-blue" or q in ("spark",) or r == PROTOCOLS["aave-v2"]: pass')
    comps = [c.value for n in ast.walk(tree) if isinstance(n, ast.Compare)
             for part in (n.left, *n.comparators) for c in ast.walk(part) if isinstance(c, ast.Constant)]
    assert comps == ["morpho-blue", "spark", "aave-v2"]


@pytest.mark.parametrize("protocol", list(PROTOCOLS))
def test_each_venues_rate_model_is_the_kernels(protocol):
    # the kernel's build_indices (ext/_rates.pxd, on the venue's rate-model codes) and the reference's
    # index_growth (the registry's Venue.growth) give the same indices over two steps of a year at 12 % borrow,
    # 3 % supply
    ts = np.array([0, 31536000, 63072000], dtype=np.int64)
    out = _core.build_indices(ts, np.ones(3), np.full(3, 0.03), np.full(3, 0.12), *venues.growth_codes(protocol))
    gs, gb = index_growth(PROTOCOLS[protocol], 0.03, 0.12, 31536000.0)
    assert out["sidx"][2] == pytest.approx(gs * gs, rel=1e-15)
    assert out["bidx"][2] == pytest.approx(gb * gb, rel=1e-15)
    supply, borrow = venues.venue(protocol).growth
    assert (gs == 1.0) == (supply == "none")
    # one year at 12 %: linear 1.12; Taylor 1 + x + x^2/2 + x^3/6 = 1.127488; Aave's binomial the same three
    # terms with t (t - 1) / t^2 and t (t - 1) (t - 2) / t^3 factors, t = 31,536,000 s: 1.127488 to ~1e-9
    taylor = 1 + 0.12 + 0.12 ** 2 / 2 + 0.12 ** 3 / 6
    assert taylor == pytest.approx(1.127488, rel=1e-15)
    expected = {"linear": (1.12, 1e-15), "taylor": (taylor, 1e-15), "binomial": (taylor, 1e-9)}[borrow]
    assert gb == pytest.approx(expected[0], rel=expected[1])
    assert borrow != "binomial" or gb < taylor          # the (t - 1) / t factors are below 1


V4 = """
[run]
name = "v4"
start = "2024-06-01"
end = "2024-06-02"

[market]
protocol = "aave-v4"
collateral = "wstETH"
debt = "WETH"
{market}

[strategy]
kind = "loop"
target_ltv = {target}
loops = 3
"""


def v4(market: str = "", target: float = 0.9):
    return loads_config(V4.format(market=market, target=target), source="v4.toml")


def test_an_aave_v4_config_resolves_its_spoke():
    cfg = v4("collateral_factor = 0.93\ncollateral_risk = 0.5")
    mk = cfg.market
    spoke = dict(mk.venue)
    assert spoke["collateral_factor"] == 0.93 and spoke["collateral_risk"] == 0.5
    assert spoke["target_health_factor"] == 1.05             # the documented example default
    # the aligned market carries CF as ltv and lt, the max bonus and the fee
    assert (mk.ltv, mk.liquidation_threshold, mk.liquidation_bonus, mk.liquidation_protocol_fee) == \
        (0.93, 0.93, 0.01, 0.10)
    assert mk.emode is None
    row = encode_params([cfg], [lane_of(cfg)])[0]
    assert row["protocol"] == 6
    assert (row["v4_bonus_factor"], row["v4_hf_max_bonus"], row["v4_target_hf"], row["v4_collateral_risk"]) == \
        (0.8, 0.95, 1.05, 0.5)


@pytest.mark.parametrize("market, key, words", [
    ("ltv = 0.9", "market.ltv", "no separate LTV"),
    ("liquidation_bonus = 0.05", "market.liquidation_bonus", "market.max_liquidation_bonus"),
    ("close_factor = 0.5", "market.close_factor", "no close factor"),
    ("lltv = 0.9", "market.lltv", "liquidation LTV of a morpho-blue market"),
    ('emode = "eth-correlated"', "market.emode", "has no E-mode"),
    ("collateral_factor = 1.0", "market.collateral_factor", "must be in (0, 1)"),
    ("collateral_factor = 0.99\nmax_liquidation_bonus = 0.02", "market.max_liquidation_bonus", "below 1"),
    ("target_health_factor = 0.9", "market.target_health_factor", "must be >= 1"),
    ("collateral_risk = 11", "market.collateral_risk", "1000 %"),
])
def test_aave_v4_refuses_with_the_key_and_why(market, key, words):
    with pytest.raises(ConfigError) as ei:
        v4(market)
    msg = str(ei.value)
    assert msg.startswith("v4.toml:") and f"{key}" in msg and words in msg, msg


def test_aave_v4_keys_are_refused_by_another_venue():
    text = V4.format(market="collateral_risk = 0.2", target=0.8).replace('"aave-v4"', '"aave-v3"')
    with pytest.raises(ConfigError, match=r"market.collateral_risk = 0.2.*Aave v4 Spoke parameter.*aave-v3"):
        loads_config(text, source="v3.toml")


def test_aave_v4_target_ltv_must_be_below_the_collateral_factor():
    with pytest.raises(ConfigError, match=r"strategy.target_ltv = 0.955.*below market.collateral_factor \(0.955\)"):
        v4(target=0.955)


def market(n=3, eth_usd=2000.0, lt=0.955):
    return Market.from_arrays(n, price=1.0, xrate=1.0, eth_usd=eth_usd, borrow_apr=0.03, supply_apr=0.0,
                              ltv=lt, lt=lt, bonus=0.01, pfee=0.1, gas_gwei=1.0)


def test_aave_v4_needs_usd_prices_at_every_block():
    cfg = v4()
    check_against_market(cfg, market())
    m = market()
    m.eth_usd[1] = np.nan
    with pytest.raises(DataError, match=r"eth_usd .* at ts 12 \(block 1\); aave-v4 values positions in USD"):
        check_against_market(cfg, m)
    # the collateral factor in force at the start bounds the target LTV
    with pytest.raises(ConfigError, match=r"at or above the collateral factor 0.85 of the aave-v4 wstETH/WETH"):
        check_against_market(cfg, market(lt=0.85))


def test_a_sweep_of_a_per_configuration_spoke_key_shares_one_aligned_market():
    a, b = v4("target_health_factor = 1.05"), v4("target_health_factor = 1.2")
    c = v4("collateral_factor = 0.93")
    assert market_key(a) == market_key(b) != market_key(c)


def test_params_fields_of_the_venue_are_in_the_schema():
    for v in venues.REGISTRY.values():
        if v.encode is not None:
            cfg = v4() if v.protocol == "aave-v4" else None
            assert set(v.encode(cfg.market)) <= set(PARAMS_DTYPE.names)


def test_aave_v4_takes_one_collateral_leg():
    # the multi-collateral engines follow the Aave v3 / Morpho / Comet rules; a v4 account of several reserves
    # (the risk premium sorted over them) is not modelled, so it is refused rather than replayed as Aave v3
    text = V4.format(market="", target=0.8).replace('collateral = "wstETH"\n', "") + (
        '[[strategy.collateral]]\ntoken = "wstETH"\nweight = 0.5\n\n'
        '[[strategy.collateral]]\ntoken = "weETH"\nweight = 0.5\n')
    with pytest.raises(ConfigError, match=r"strategy.collateral\[1\]: aave-v4 is modelled with one collateral"):
        loads_config(text, source="v4.toml")


def test_the_config_hash_of_a_venue_without_own_keys_is_what_it_was():
    # result sets written before the registry resume only if their hash is unchanged: a venue without own keys
    # adds nothing to the hashed dict; Aave v4's Spoke parameters are hashed
    from backtest.config import config_to_dict, load_config
    root = Path(__file__).resolve().parents[2] / "examples"
    assert "venue" not in config_to_dict(load_config(root / "loop.toml"))["market"]
    v4 = config_to_dict(load_config(root / "aave-v4-wsteth-loop.toml"))["market"]
    assert v4["venue"] and all(len(kv) == 2 for kv in v4["venue"])


def test_each_venue_names_its_own_risk_parameters():
    from tests.helpers import market

    # Compound III's market holds bonus = 1 - liquidation factor (0.92 for weETH on cWETHv3, PROTOCOLS.md):
    # read by name it is the factor itself, and the collateral factors are the market's ltv and lt
    m = market([1.0, 1.0], ltv=0.82, lt=0.87, bonus=1.0 - 0.92, pfee=0.0)
    comet = venues.risk_parameters("compound-v3", m)
    assert set(comet) == {"borrow_collateral_factor", "liquidate_collateral_factor", "liquidation_factor"}
    assert np.allclose(comet["liquidation_factor"], 0.92, rtol=0, atol=1e-15)
    assert np.all(comet["borrow_collateral_factor"] == 0.82) and np.all(comet["liquidate_collateral_factor"] == 0.87)
    # Morpho Blue: one LLTV; LIF = 1 + the bonus column (1 / (0.3 x 0.945 + 0.7) = 1.016777 at LLTV 94.5 %)
    lif = 1.0 / (0.3 * 0.945 + 0.7)
    morpho = venues.risk_parameters("morpho-blue", market([1.0], ltv=0.945, lt=0.945, bonus=lif - 1.0, pfee=0.0))
    assert set(morpho) == {"lltv", "liquidation_incentive_factor"}
    assert morpho["lltv"][0] == 0.945 and abs(morpho["liquidation_incentive_factor"][0] - lif) < 1e-15
    v4 = venues.risk_parameters("aave-v4", market([1.0], ltv=0.955, lt=0.955, bonus=0.01, pfee=0.1))
    assert (v4["collateral_factor"][0], v4["max_liquidation_bonus"][0], v4["liquidation_fee"][0]) == (0.955, 0.01, 0.1)
    aave = venues.risk_parameters("aave-v3", m)
    assert set(aave) == {"ltv", "liquidation_threshold", "liquidation_bonus", "liquidation_protocol_fee"}
    with pytest.raises(KeyError, match="compound-v3 has no risk parameter 'liquidation_bonus'"):
        comet["liquidation_bonus"]
