"""backtest.config: one test per rule (DESIGN.md section 3).

Every error test checks that the message names the file, the TOML line of the key, the dotted key and the problem.
"""
from __future__ import annotations

import copy
import json
import math
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from backtest.config import (
    config_from_dict,
    config_hash,
    config_to_dict,
    expand_sweep,
    load_config,
    loads_config,
    parse_date,
    parse_duration,
    parse_grid,
    parse_grid_option,
    sweep_keys,
)
from backtest.config_types import Config, CostsConfig, MarketConfig, StrategyConfig
from backtest.errors import ConfigError

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

# section -> key -> the value as written in TOML; rendered in this order
BASE = {
    "run": {"name": '"t"', "start": '"2024-06-01"', "end": '"2025-06-01"'},
    "market": {"protocol": '"aave-v3"'},
    "strategy": {"kind": '"loop"', "target_ltv": "0.8", "loops": "5"},
    "costs": {"gas": '"data"'},
}


def render(changes: dict | None = None, drop: tuple = (), extra: str = "") -> str:
    secs = copy.deepcopy(BASE)
    for sec, kv in (changes or {}).items():
        secs.setdefault(sec, {}).update(kv)
    for dotted in drop:
        sec, key = dotted.rsplit(".", 1)
        secs[sec].pop(key)
    out = []
    for sec, kv in secs.items():
        out.append(f"[{sec}]")
        out += [f"{k} = {v}" for k, v in kv.items()]
        out.append("")
    return "\n".join(out) + extra


def write(tmp_path: Path, text: str, name: str = "loop.toml") -> Path:
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def load(tmp_path: Path, changes: dict | None = None, drop: tuple = (), extra: str = "", **kw) -> Config:
    return load_config(write(tmp_path, render(changes, drop, extra)), **kw)


def line_of(text: str, needle: str, nth: int = 1) -> int:
    seen = 0
    for i, line in enumerate(text.splitlines(), 1):
        if needle in line:
            seen += 1
            if seen == nth:
                return i
    raise AssertionError(f"{needle!r} not in text")


def fails(tmp_path: Path, text: str, **kw) -> str:
    with pytest.raises(ConfigError) as ei:
        load_config(write(tmp_path, text), **kw)
    return ei.value.message


def assert_error(tmp_path, changes, needle, key, *fragments, drop=(), extra="", nth=1, **kw) -> str:
    """Load a config that must fail; the message names file:line, the key and each fragment."""
    text = render(changes, drop, extra)
    msg = fails(tmp_path, text, **kw)
    lineno = line_of(text, needle, nth)
    assert f"loop.toml:{lineno}: {key}" in msg, msg
    for frag in fragments:
        assert frag in msg, msg
    return msg


# ---------------------------------------------------------------------------------------------------------
# a valid config resolves to the dataclasses
# ---------------------------------------------------------------------------------------------------------
def test_minimal_config_resolves_with_defaults(tmp_path):
    cfg = load(tmp_path)
    assert cfg.run.name == "t"
    assert cfg.run.start == 1717200000          # 2024-06-01: 19875 days × 86400
    assert cfg.run.end == 1748736000            # 2025-06-01: 20240 days × 86400
    assert cfg.run.chain == "ethereum" and cfg.run.block_time == 12
    assert cfg.run.record == 3600 and cfg.run.unwind_at_end is False
    assert cfg.run.data == Path("data") and cfg.run.output == Path("results")
    assert cfg.market == MarketConfig()
    assert cfg.strategy == StrategyConfig(target_ltv=0.8, loops=5)
    assert cfg.costs == CostsConfig()
    assert cfg.scenarios == () and cfg.sweep == {}
    assert cfg.source == tmp_path / "loop.toml"
    assert cfg.raw["strategy"]["target_ltv"] == 0.8


def test_every_field_converts(tmp_path):
    cfg = load(tmp_path, {
        "run": {"record": '"block"', "data": '"lake/x"', "output": '"out"', "unwind_at_end": "true"},
        "market": {"protocol": '"spark"', "emode": '"none"', "oracle": '"capo"', "ltv": "0.9",
                   "liquidation_threshold": "0.93", "liquidation_bonus": "0.01", "close_factor": "0.5",
                   "borrow_rate": "0.03", "capo_growth": "0.0968", "capo_snapshot_age": '"7d"',
                   "v33_from": '"2025-03-01"'},
        "strategy": {"kind": '"flash-loan"', "capital": "100", "entry": '"stake"'},
        "strategy.rebalance": {"deleverage_below_hf": "1.05", "target_hf": "1.15", "check_every": '"4h"'},
        "strategy.exit": {"depeg_below": "0.97", "route": '"queue"', "queue_delay": '"2d"'},
        "costs": {"gas": "20", "gas_units": "{ open = 700000, close = 1 }", "slippage": '"linear"',
                  "slippage_bps": "2.5", "amp": "100"},
    })
    assert cfg.run.record == 0
    assert cfg.run.data == Path("lake/x") and isinstance(cfg.run.output, Path)
    assert cfg.run.unwind_at_end is True
    assert cfg.market.emode is None and cfg.market.protocol == "spark" and cfg.market.oracle == "capo"
    assert cfg.market.capo_snapshot_age == 7 * 86400
    assert cfg.market.v33_from == 1740787200    # 2025-03-01: 20148 days × 86400
    assert isinstance(cfg.strategy.capital, float) and cfg.strategy.capital == 100.0
    assert cfg.strategy.rebalance.check_every == 4 * 3600 and cfg.strategy.rebalance.releverage_above_hf is None
    assert cfg.strategy.exit.queue_delay == 2 * 86400 and cfg.strategy.exit.route == "queue"
    assert cfg.costs.gas == 20.0 and isinstance(cfg.costs.gas, float)
    # a partial gas_units table keeps the defaults of the keys it omits
    assert cfg.costs.gas_units == {"open": 700000.0, "loop_step": 250000.0, "rebalance": 400000.0, "close": 1.0}
    assert cfg.costs.slippage_bps == 2.5 and cfg.costs.amp == 100.0


def test_name_defaults_to_file_stem(tmp_path):
    cfg = load_config(write(tmp_path, render(drop=("run.name",)), "my-loop.toml"))
    assert cfg.run.name == "my-loop"


def test_name_missing_and_stem_unsafe(tmp_path):
    text = render(drop=("run.name",))
    with pytest.raises(ConfigError) as ei:
        load_config(write(tmp_path, text, "my loop.toml"))
    assert "run.name" in ei.value.message and "missing required key" in ei.value.message


# ---------------------------------------------------------------------------------------------------------
# dates, durations, record
# ---------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("text, epoch", [
    ("2024-06-01", 1717200000),
    ("2024-06-01T12:00:00Z", 1717200000 + 12 * 3600),
    ("2024-06-01 12:00", 1717200000 + 12 * 3600),
    ("2024-06-01T14:00:00+02:00", 1717200000 + 12 * 3600),
    ("2022-05-01", 1651363200),                 # 19113 days × 86400
    ("1970-01-02", 86400),
])
def test_parse_date(text, epoch):
    assert parse_date(text) == epoch


def test_toml_native_dates(tmp_path):
    cfg = load(tmp_path, {"run": {"start": "2024-06-01", "end": "2024-06-02T06:00:00Z"}})
    assert cfg.run.start == 1717200000
    assert cfg.run.end == 1717200000 + 86400 + 6 * 3600


@pytest.mark.parametrize("value, fragment", [
    ('"2024-13-01"', "not a valid date"),
    ('"June 1 2024"', "not a date"),
    ("1717200000", "not a number"),
    ("12:00:00", "must be a date"),          # a TOML local time
])
def test_bad_date(tmp_path, value, fragment):
    assert_error(tmp_path, {"run": {"start": value}}, f"start = {value}", "run.start", fragment)


def test_start_before_ethereum_genesis(tmp_path):
    assert_error(tmp_path, {"run": {"start": '"2015-01-01"'}}, "start =", "run.start", "genesis")


@pytest.mark.parametrize("text, secs", [
    ("12s", 12), ("30m", 1800), ("1h", 3600), ("3d", 3 * 86400), ("2w", 14 * 86400),
    ("1h30m", 5400), ("1.5h", 5400), (" 2d ", 2 * 86400), ("0s", 0),
])
def test_parse_duration(text, secs):
    assert parse_duration(text) == secs


@pytest.mark.parametrize("bad", ["", "1", "1x", "h", "0.5s", "-1h", 5, True, None])
def test_parse_duration_rejects(bad):
    with pytest.raises(ValueError):
        parse_duration(bad)


@pytest.mark.parametrize("value, secs", [('"block"', 0), ('"none"', -1), ('"1h"', 3600), ('"1d"', 86400),
                                         ('"15m"', 900)])
def test_record(tmp_path, value, secs):
    assert load(tmp_path, {"run": {"record": value}}).run.record == secs


@pytest.mark.parametrize("value, fragment", [('"0s"', "> 0"), ("3600", '"block", "none" or a duration'),
                                             ('"hourly"', '"block", "none" or a duration')])
def test_bad_record(tmp_path, value, fragment):
    assert_error(tmp_path, {"run": {"record": value}}, "record =", "run.record", fragment)


def test_zero_duration_rejected(tmp_path):
    assert_error(tmp_path, {"strategy.rebalance": {"deleverage_below_hf": "1.05", "target_hf": "1.2",
                                                   "check_every": '"0m"'}},
                 "check_every", "strategy.rebalance.check_every", "> 0")


# ---------------------------------------------------------------------------------------------------------
# unknown names
# ---------------------------------------------------------------------------------------------------------
def test_unknown_key_with_suggestion_and_line(tmp_path):
    msg = assert_error(tmp_path, {"strategy": {"target_lvt": "0.7"}}, "target_lvt", "strategy.target_lvt",
                       "unknown key in [strategy]", "did you mean 'target_ltv'?")
    assert msg.startswith(str(tmp_path / "loop.toml") + ":")


def test_unknown_key_without_close_match_has_no_suggestion(tmp_path):
    msg = assert_error(tmp_path, {"market": {"zzzzzz": "1"}}, "zzzzzz", "market.zzzzzz", "unknown key")
    assert "did you mean" not in msg


def test_unknown_section_with_suggestion(tmp_path):
    text = render().replace("[strategy]", "[stratgy]")
    msg = fails(tmp_path, text)
    assert f"loop.toml:{line_of(text, '[stratgy]')}: stratgy" in msg
    assert "unknown section [stratgy]" in msg and "did you mean 'strategy'?" in msg


def test_nested_section_at_top_level_suggested(tmp_path):
    msg = fails(tmp_path, render(extra="[rebalance]\ntarget_hf = 1.2\n"))
    assert "unknown section [rebalance]" in msg and "did you mean 'strategy.rebalance'?" in msg


def test_unknown_top_level_key(tmp_path):
    text = 'record = "1h"\n' + render()
    msg = fails(tmp_path, text)
    assert "loop.toml:1: record" in msg and "did you mean 'run.record'?" in msg


def test_unknown_key_in_inline_gas_units(tmp_path):
    assert_error(tmp_path, {"costs": {"gas_units": "{ open = 1, loop_stp = 2 }"}}, "gas_units",
                 "costs.gas_units.loop_stp", "did you mean 'loop_step'?")


def test_unknown_key_in_subsection(tmp_path):
    assert_error(tmp_path, {"strategy.exit": {"depeg_below": "0.97", "rout": '"dex"'}}, "rout =",
                 "strategy.exit.rout", "did you mean 'route'?")


def test_lltv_rejected_as_morpho_only(tmp_path):
    assert_error(tmp_path, {"market": {"lltv": "0.945"}}, "lltv", "market.lltv",
                 "lltv is the liquidation LTV of a morpho-blue market", "set market.ltv")


def test_block_windows_rejected(tmp_path):
    assert_error(tmp_path, {"run": {"start_block": "19000000"}}, "start_block", "run.start_block",
                 "block-number windows are not supported yet", "use dates")


def test_missing_required_key(tmp_path):
    msg = fails(tmp_path, render(drop=("run.start",)))
    assert "run.start: missing required key in [run]" in msg


# ---------------------------------------------------------------------------------------------------------
# types
# ---------------------------------------------------------------------------------------------------------
def test_string_where_number_wanted(tmp_path):
    assert_error(tmp_path, {"strategy": {"target_ltv": '"0.8"'}}, "target_ltv", 'strategy.target_ltv = "0.8"',
                 "must be a number, not a string", "without quotes")


def test_bool_where_number_wanted(tmp_path):
    assert_error(tmp_path, {"strategy": {"capital": "true"}}, "capital", "strategy.capital = true",
                 "not a boolean")


def test_bool_where_integer_wanted(tmp_path):
    assert_error(tmp_path, {"strategy": {"loops": "true"}}, "loops", "strategy.loops", "not a boolean")


def test_int_accepted_where_float_wanted(tmp_path):
    cfg = load(tmp_path, {"strategy": {"capital": "250"}, "costs": {"pool_depth": "1000"}})
    assert cfg.strategy.capital == 250.0 and type(cfg.strategy.capital) is float
    assert type(cfg.costs.pool_depth) is float


@pytest.mark.parametrize("value", ["2.5", "5.0"])
def test_loops_must_be_integer(tmp_path, value):
    assert_error(tmp_path, {"strategy": {"loops": value}}, "loops", "strategy.loops", "must be an integer")


def test_table_where_value_wanted(tmp_path):
    assert_error(tmp_path, {"market": {"collateral": "{ a = 1 }"}}, "collateral", "market.collateral",
                 "must be a string, not a table")


def test_section_must_be_table(tmp_path):
    msg = fails(tmp_path, 'strategy = 5\n[run]\nstart = "2024-06-01"\nend = "2024-07-01"\n')
    assert "loop.toml:1: strategy = 5" in msg and "must be a table" in msg


def test_bool_field_rejects_string(tmp_path):
    assert_error(tmp_path, {"run": {"unwind_at_end": '"yes"'}}, "unwind_at_end", "run.unwind_at_end",
                 "must be true or false")


def test_non_finite_rejected(tmp_path):
    assert_error(tmp_path, {"strategy": {"capital": "inf"}}, "capital", "strategy.capital", "finite")


# ---------------------------------------------------------------------------------------------------------
# enums and unsupported features
# ---------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("section, key, value, suggestion", [
    ("market", "protocol", "aave_v3", "aave-v3"),
    ("market", "oracle", "exchange_rate", "exchange-rate"),
    ("strategy", "kind", "flashloan", "flash-loan"),
    ("strategy", "entry", "swapp", "swap"),
    ("costs", "slippage", "stable-swap", "stableswap"),
])
def test_enum_with_suggestion(tmp_path, section, key, value, suggestion):
    assert_error(tmp_path, {section: {key: f'"{value}"'}}, f"{key} =", f'{section}.{key} = "{value}"',
                 "must be one of", f"did you mean '{suggestion}'?")


def test_exit_route_enum(tmp_path):
    assert_error(tmp_path, {"strategy.exit": {"depeg_below": "0.97", "route": '"bridge"'}}, "route",
                 "strategy.exit.route", "must be one of dex, queue")


@pytest.mark.parametrize("venue", ["morpho-blue", "compound-v3"])
def test_other_venues_accepted_without_emode(tmp_path, venue):
    # the BASE config sets no emode: Morpho Blue and Compound III have none (tests/unit/test_venues.py has
    # the per-venue key rules)
    cfg = load(tmp_path, {"market": {"protocol": f'"{venue}"'}})
    assert cfg.market.protocol == venue and cfg.market.emode is None


def test_unsupported_chain(tmp_path):
    assert_error(tmp_path, {"run": {"chain": '"arbitrum"'}}, "chain", "run.chain", "not supported yet")


def test_misspelled_chain_suggested(tmp_path):
    assert_error(tmp_path, {"run": {"chain": '"etherium"'}}, "chain", "run.chain", "did you mean 'ethereum'?")


def test_restake_lrt_accepted(tmp_path):
    assert load(tmp_path, {"strategy": {"restake": '"ezETH"'}}).strategy.restake == "ezETH"


def test_restake_same_as_collateral_rejected(tmp_path):
    assert_error(tmp_path, {"market": {"collateral": '"weETH"'}, "strategy": {"restake": '"weETH"'}}, "restake",
                 "strategy.restake", "must differ from market.collateral")


def test_restake_none_ok(tmp_path):
    assert load(tmp_path, {"strategy": {"restake": '"none"'}}).strategy.restake == "none"


def test_aave_v2_has_no_emode(tmp_path):
    assert load(tmp_path, {"market": {"protocol": '"aave-v2"'}}).market.emode is None
    assert_error(tmp_path, {"market": {"protocol": '"aave-v2"', "emode": '"eth-correlated"'}}, "emode",
                 "market.emode", "aave-v2 has no E-mode")


# ---------------------------------------------------------------------------------------------------------
# impossible values
# ---------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("end", ['"2024-06-01"', '"2024-05-01"'])
def test_end_not_after_start(tmp_path, end):
    assert_error(tmp_path, {"run": {"end": end}}, "end =", f"run.end = {end}", "must be after run.start (2024-06-01)")


@pytest.mark.parametrize("capital", ["0", "-5.0"])
def test_capital_positive(tmp_path, capital):
    assert_error(tmp_path, {"strategy": {"capital": capital}}, "capital", "strategy.capital", "must be > 0")


@pytest.mark.parametrize("ltv", ["0", "1", "1.2", "-0.1"])
def test_target_ltv_open_unit_interval(tmp_path, ltv):
    assert_error(tmp_path, {"strategy": {"target_ltv": ltv}}, "target_ltv", "strategy.target_ltv",
                 "must be in (0, 1)")


def test_target_ltv_above_liquidation_threshold(tmp_path):
    text = render({"market": {"liquidation_threshold": "0.93"}, "strategy": {"target_ltv": "0.95"}})
    msg = fails(tmp_path, text)
    assert msg.startswith(f"{tmp_path / 'loop.toml'}:{line_of(text, 'target_ltv')}: strategy.target_ltv = 0.95: "
                          "must be below market.liquidation_threshold (0.93)"), msg


def test_target_ltv_above_market_ltv(tmp_path):
    assert_error(tmp_path, {"market": {"ltv": "0.69"}, "strategy": {"target_ltv": "0.7"}}, "target_ltv",
                 "strategy.target_ltv = 0.7", "must not exceed market.ltv (0.69)")
    assert load(tmp_path, {"market": {"ltv": "0.69"}, "strategy": {"target_ltv": "0.69"}}).strategy.target_ltv == 0.69


def test_market_ltv_above_threshold(tmp_path):
    assert_error(tmp_path, {"market": {"ltv": "0.9", "liquidation_threshold": "0.8"}}, "ltv =", "market.ltv",
                 "must not exceed market.liquidation_threshold (0.8)")


def test_threshold_times_bonus_above_one(tmp_path):
    assert_error(tmp_path, {"market": {"liquidation_threshold": "0.97", "liquidation_bonus": "0.05"}},
                 "liquidation_bonus", "market.liquidation_bonus", "must not exceed 1")


@pytest.mark.parametrize("key, value, fragment", [
    ("liquidation_threshold", "1.5", "must be in [0, 1]"),
    ("ltv", "-0.1", "must be in [0, 1]"),
    ("liquidation_protocol_fee", "1.1", "must be in [0, 1]"),
    ("liquidation_bonus", "0.6", "must be in [0, 0.5]"),
    ("close_factor", "0", "must be in (0, 1]"),
    ("borrow_rate", "-0.01", "must be in [0, 1]"),
    ("supply_rate", "2", "must be in [0, 1]"),
    ("capo_growth", "1.5", "must be in [0, 1]"),
])
def test_market_override_ranges(tmp_path, key, value, fragment):
    assert_error(tmp_path, {"market": {key: value}}, f"{key} =", f"market.{key} = {value}", fragment)


@pytest.mark.parametrize("value", ["-1", "101"])
def test_loops_range(tmp_path, value):
    assert_error(tmp_path, {"strategy": {"loops": value}}, "loops", "strategy.loops", "must be in [0, 100]")


def test_loops_zero_and_hundred_ok(tmp_path):
    assert load(tmp_path, {"strategy": {"loops": "0"}}).strategy.loops == 0
    assert load(tmp_path, {"strategy": {"loops": "100"}}).strategy.loops == 100


REB = {"deleverage_below_hf": "1.05", "target_hf": "1.15", "releverage_above_hf": "1.3"}


def test_rebalance_valid(tmp_path):
    reb = load(tmp_path, {"strategy.rebalance": REB}).strategy.rebalance
    assert (reb.deleverage_below_hf, reb.target_hf, reb.releverage_above_hf, reb.check_every) == (1.05, 1.15, 1.3, 3600)


def test_rebalance_deleverage_must_exceed_one(tmp_path):
    assert_error(tmp_path, {"strategy.rebalance": {**REB, "deleverage_below_hf": "1.0"}}, "deleverage_below_hf",
                 "strategy.rebalance.deleverage_below_hf = 1.0", "must be > 1")


@pytest.mark.parametrize("target", ["1.05", "1.0001"])
def test_rebalance_target_above_deleverage(tmp_path, target):
    assert_error(tmp_path, {"strategy.rebalance": {**REB, "target_hf": target}}, "target_hf =",
                 f"strategy.rebalance.target_hf = {target}", "must be above strategy.rebalance.deleverage_below_hf")


def test_rebalance_releverage_above_target(tmp_path):
    assert_error(tmp_path, {"strategy.rebalance": {**REB, "releverage_above_hf": "1.15"}}, "releverage_above_hf",
                 "strategy.rebalance.releverage_above_hf", "must be above strategy.rebalance.target_hf (1.15)")


def test_rebalance_required_keys(tmp_path):
    text = render({"strategy.rebalance": {"target_hf": "1.2"}})
    msg = fails(tmp_path, text)
    assert f"loop.toml:{line_of(text, '[strategy.rebalance]')}: strategy.rebalance.deleverage_below_hf" in msg
    assert "missing required key" in msg


@pytest.mark.parametrize("value, ok", [("0", False), ("1.0", True), ("1.01", False), ("0.5", True)])
def test_exit_depeg_below_range(tmp_path, value, ok):
    changes = {"strategy.exit": {"depeg_below": value}}
    if ok:
        assert load(tmp_path, changes).strategy.exit.depeg_below == float(value)
    else:
        assert_error(tmp_path, changes, "depeg_below", "strategy.exit.depeg_below", "must be in (0, 1]")


@pytest.mark.parametrize("key, value, fragment", [
    ("swap_fee", "1.0", "must be in [0, 1)"),
    ("swap_fee", "-0.001", "must be in [0, 1)"),
    ("flash_fee", "1", "must be in [0, 1)"),
    ("slippage_bps", "-1", "must be in [0, 10000)"),
    ("pool_depth", "0", "must be > 0"),
    ("amp", "0", "must be > 0"),
    ("gas", "-3", "gas price >= 0"),
    ("gas", "2000000", "beyond the bound of 1e+06 gwei"),
    ("gas", '"fast"', 'must be "data"'),
    ("gas", '"20"', "without quotes"),
    ("gas", "true", "not a boolean"),
])
def test_cost_ranges(tmp_path, key, value, fragment):
    assert_error(tmp_path, {"costs": {key: value}}, f"{key} =", f"costs.{key} = {value}", fragment)


def test_gas_units_non_negative(tmp_path):
    assert_error(tmp_path, {"costs": {"gas_units": "{ open = -1 }"}}, "gas_units", "costs.gas_units.open = -1",
                 "must be >= 0")


@pytest.mark.parametrize("name", ['"my run"', '"../escape"', '".."', '""', '"a/b"'])
def test_run_name_must_be_safe(tmp_path, name):
    assert_error(tmp_path, {"run": {"name": name}}, "name =", "run.name")


# ---------------------------------------------------------------------------------------------------------
# scenarios
# ---------------------------------------------------------------------------------------------------------
def scenario(**kw) -> str:
    fields = {"kind": '"depeg"', "asset": '"wstETH"', "at": '"2025-01-10"', "depth": "0.08",
              "duration": '"3d"', "shape": '"v"', **kw}
    return "\n[[scenario]]\n" + "".join(f"{k} = {v}\n" for k, v in fields.items() if v is not None)


def test_scenarios_resolve(tmp_path):
    cfg = load(tmp_path, extra=scenario() + scenario(kind='"rate_spike"', asset='"WETH"', depth="0.25",
                                                      duration='"1d"', shape='"step"'))
    a, b = cfg.scenarios
    assert (a.kind, a.asset, a.at, a.depth, a.duration, a.shape) == ("depeg", "wstETH", 1736467200, 0.08,
                                                                      3 * 86400, "v")
    assert (b.kind, b.depth, b.duration, b.shape) == ("rate_spike", 0.25, 86400, "step")


def test_scenario_error_names_entry_and_its_line(tmp_path):
    text = render(extra=scenario() + scenario(depth="1.0"))
    msg = fails(tmp_path, text)
    assert f"loop.toml:{line_of(text, 'depth = 1.0')}: scenario[1].depth = 1.0" in msg
    assert "must be in (0, 1)" in msg


def test_scenario_rate_spike_depth_positive(tmp_path):
    text = render(extra=scenario(kind='"rate_spike"', asset='"WETH"', depth="0"))
    msg = fails(tmp_path, text)
    assert f"loop.toml:{line_of(text, 'depth = 0')}: scenario[0].depth" in msg and "must be > 0" in msg


@pytest.mark.parametrize("kw, key, fragment", [
    ({"kind": '"crash"'}, "kind", "must be one of depeg, rate_spike"),
    ({"shape": '"u"'}, "shape", "must be one of v, step"),
    ({"duration": '"0h"'}, "duration", "> 0"),
    ({"at": '"2026-01-01"'}, "at", "outside the run window"),
    ({"asset": '"rETH"'}, "asset", "market.collateral"),
    ({"depth": None}, "depth", "missing required key"),
])
def test_scenario_rules(tmp_path, kw, key, fragment):
    msg = fails(tmp_path, render(extra=scenario(**kw)))
    assert f"scenario[0].{key}" in msg and fragment in msg, msg


def test_scenario_must_be_array_of_tables(tmp_path):
    msg = fails(tmp_path, render(extra='\n[scenario]\nkind = "depeg"\n'))
    assert "scenario" in msg and "[[scenario]]" in msg


def test_semicolon_separated_keys_get_a_hint(tmp_path):
    text = render(extra='\n[[scenario]]\nkind = "depeg"; asset = "wstETH"\n')
    msg = fails(tmp_path, text)
    assert f"loop.toml:{line_of(text, 'kind = ' + chr(34) + 'depeg')}: invalid TOML" in msg
    assert "no ';' separator" in msg


# ---------------------------------------------------------------------------------------------------------
# files and overrides
# ---------------------------------------------------------------------------------------------------------
def test_toml_syntax_error_has_line(tmp_path):
    text = render().replace("loops = 5", "loops = = 5")
    msg = fails(tmp_path, text)
    assert f"loop.toml:{line_of(text, 'loops = = 5')}: invalid TOML" in msg


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "nope.toml")


def test_config_error_is_exit_code_2_and_value_error(tmp_path):
    with pytest.raises(ValueError) as ei:
        load(tmp_path, {"strategy": {"capital": "-1"}})
    assert ei.value.exit_code == 2


def test_overrides_apply_and_show_in_raw(tmp_path):
    cfg = load(tmp_path, overrides={"strategy.target_ltv": 0.7, "run.record": "block",
                                    "strategy.rebalance.deleverage_below_hf": 1.1,
                                    "strategy.rebalance.target_hf": 1.2})
    assert cfg.strategy.target_ltv == 0.7 and cfg.run.record == 0
    assert cfg.strategy.rebalance.target_hf == 1.2
    assert cfg.raw["strategy"]["target_ltv"] == 0.7


def test_override_unknown_key_suggests(tmp_path):
    with pytest.raises(ConfigError) as ei:
        load(tmp_path, overrides={"strategy.target_lvt": 0.7})
    assert "strategy.target_lvt (from override): unknown config key" in ei.value.message
    assert "did you mean 'strategy.target_ltv'?" in ei.value.message


def test_override_without_section_suggests_full_path(tmp_path):
    with pytest.raises(ConfigError, match=r"did you mean 'strategy\.target_ltv'\?"):
        load(tmp_path, overrides={"target_ltv": 0.7})


def test_override_impossible_value_is_marked(tmp_path):
    with pytest.raises(ConfigError) as ei:
        load(tmp_path, {"market": {"liquidation_threshold": "0.81"}}, overrides={"strategy.target_ltv": 0.85})
    assert "strategy.target_ltv = 0.85 (from override): must be below market.liquidation_threshold (0.81)" \
        in ei.value.message


def test_loads_config_and_config_from_dict_agree(tmp_path):
    text = render()
    a = loads_config(text, source="x.toml")
    b = config_from_dict({"run": {"name": "t", "start": "2024-06-01", "end": "2025-06-01"},
                          "strategy": {"target_ltv": 0.8, "loops": 5}})
    assert config_hash(a) == config_hash(b)
    with pytest.raises(ConfigError, match="x.toml:"):
        loads_config(text.replace("loops = 5", "loops = -5"), source="x.toml")


# ---------------------------------------------------------------------------------------------------------
# line lookup edge cases
# ---------------------------------------------------------------------------------------------------------
def test_line_of_top_level_dotted_key(tmp_path):
    text = 'strategy.kind = "loop"\nstrategy.target_ltv = 1.5\n' + render().split("[strategy]")[0]
    msg = fails(tmp_path, text)
    assert "loop.toml:2: strategy.target_ltv = 1.5" in msg


def test_line_of_key_after_multiline_array(tmp_path):
    text = render(extra='\n[sweep]\n"strategy.loops" = [\n  1,\n  2,\n]\n"strategy.capital" = [1, -1]\n')
    msg = fails(tmp_path, text)
    assert f"loop.toml:{line_of(text, 'strategy.capital')}: strategy.capital = -1 (from [sweep])" in msg


# ---------------------------------------------------------------------------------------------------------
# sweeps: [sweep] section and --grid
# ---------------------------------------------------------------------------------------------------------
def test_sweep_range_rounds_floats(tmp_path):
    cfg = load(tmp_path, extra='\n[sweep]\n"strategy.target_ltv" = { start = 0.5, stop = 0.9, step = 0.05 }\n')
    values = cfg.sweep["strategy.target_ltv"]
    assert len(values) == 9
    # unrounded, 0.5 + 7 × 0.05 is 0.8500000000000001
    assert values == [0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9]
    assert all(v == float(f"{v:.12g}") for v in values)


def test_sweep_range_inclusive_despite_float_error(tmp_path):
    cfg = load(tmp_path, extra='\n[sweep]\n"strategy.target_ltv" = { start = 0.50, stop = 0.68, step = 0.02 }\n')
    # unrounded, 0.5 + 9 × 0.02 is 0.6799999999999999
    assert len(cfg.sweep["strategy.target_ltv"]) == 10 and cfg.sweep["strategy.target_ltv"][-1] == 0.68


def test_sweep_integer_range_stays_int(tmp_path):
    cfg = load(tmp_path, extra='\n[sweep]\n"strategy.loops" = { start = 1, stop = 9, step = 2 }\n')
    assert cfg.sweep["strategy.loops"] == [1, 3, 5, 7, 9]
    assert all(type(v) is int for v in cfg.sweep["strategy.loops"])


def test_sweep_lists_and_unquoted_keys(tmp_path):
    cfg = load(tmp_path, extra='\n[sweep]\nstrategy.loops = [1, 2]\n"market.oracle" = ["exchange-rate", "market"]\n')
    assert cfg.sweep == {"strategy.loops": [1, 2], "market.oracle": ["exchange-rate", "market"]}


def test_sweep_unknown_key_suggests_with_line(tmp_path):
    text = render(extra='\n[sweep]\n"strategy.target_lvt" = [0.5]\n')
    msg = fails(tmp_path, text)
    assert f"loop.toml:{line_of(text, 'target_lvt')}:" in msg
    assert "unknown config key" in msg and "did you mean 'strategy.target_ltv'?" in msg


def test_sweep_bad_value_named_at_sweep_line(tmp_path):
    text = render(extra='\n[sweep]\n"strategy.loops" = [1, 2.5]\n')
    msg = fails(tmp_path, text)
    assert f"loop.toml:{line_of(text, 'strategy.loops')}: strategy.loops = 2.5 (from [sweep]): must be an integer" \
        in msg


@pytest.mark.parametrize("spec, fragment", [
    ("{ start = 0.5, stop = 0.9 }", "missing step"),
    ("{ start = 0.5, stop = 0.9, stpe = 0.1 }", "did you mean 'step'?"),
    ("{ start = 0.5, stop = 0.9, step = 0 }", "step must be > 0"),
    ("{ start = 0.9, stop = 0.5, step = 0.1 }", "stop must be >= start"),
    ("[]", "at least one value"),
    ("[1, 1]", "twice"),
    ("3", "must be a list of values or a range"),
])
def test_sweep_bad_specs(tmp_path, spec, fragment):
    text = render(extra=f'\n[sweep]\n"strategy.loops" = {spec}\n')
    msg = fails(tmp_path, text)
    assert f"loop.toml:{line_of(text, 'strategy.loops')}:" in msg and fragment in msg, msg


def test_sweep_cannot_vary_result_location(tmp_path):
    msg = fails(tmp_path, render(extra='\n[sweep]\n"run.output" = ["a", "b"]\n'))
    assert "run.output names the result set and cannot be swept" in msg


def test_sweep_keys_are_scalar_paths():
    keys = sweep_keys()
    assert "strategy.target_ltv" in keys and "costs.gas_units.open" in keys
    assert "strategy.rebalance.target_hf" in keys and "run.name" not in keys and "costs.gas_units" not in keys


def test_parse_grid_float_range():
    values = parse_grid("0.5:0.9:0.05")
    assert len(values) == 9 and values[-1] == 0.9 and values[7] == 0.85
    assert values == sorted(values)


def test_parse_grid_int_range_forms():
    assert parse_grid("1..10") == list(range(1, 11))
    assert parse_grid("1:10:3") == [1, 4, 7, 10]
    assert parse_grid("-2..1") == [-2, -1, 0, 1]


def test_parse_grid_comma_lists():
    assert parse_grid("exchange-rate,market, capo") == ["exchange-rate", "market", "capo"]
    got = parse_grid("1,2.5,1e-3,x,true")
    assert got == [1, 2.5, 0.001, "x", True]
    assert [type(v) for v in got] == [int, float, float, str, bool]
    assert parse_grid("0.7") == [0.7]
    # colons inside non-numeric items do not make a range
    assert parse_grid("2024-06-01T00:00:00Z,2024-07-01") == ["2024-06-01T00:00:00Z", "2024-07-01"]


@pytest.mark.parametrize("spec, fragment", [
    ("0.5:0.9", "start:stop:step"),
    ("0.5:0.9:0", "step must be > 0"),
    ("0.9:0.5:0.1", "stop must be >= start"),
    ("5..1", "5"),
    ("0.5..0.9", "a..b takes integers"),
    ("1,,2", "empty item"),
    ("", "empty grid"),
])
def test_parse_grid_errors_name_the_key(spec, fragment):
    with pytest.raises(ConfigError) as ei:
        parse_grid(spec, "strategy.target_ltv")
    assert "--grid strategy.target_ltv" in ei.value.message and fragment in ei.value.message


def test_parse_grid_option():
    assert parse_grid_option("strategy.loops=1..3") == ("strategy.loops", [1, 2, 3])
    with pytest.raises(ConfigError, match="expected KEY=SPEC"):
        parse_grid_option("strategy.loops")
    with pytest.raises(ConfigError, match=r"did you mean 'strategy\.loops'\?"):
        parse_grid_option("strategy.lops=1..3")


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 900), st.integers(0, 400), st.integers(1, 100))
def test_parse_grid_range_property(a, span, step):
    start, stop, d = a / 1000, (a + span) / 1000, step / 1000
    values = parse_grid(f"{start}:{stop}:{d}")
    assert values[0] == start
    assert values[-1] <= stop + 1e-12 and values[-1] > stop - d - 1e-12
    assert len(values) == span // step + 1
    assert all(b > x for x, b in zip(values, values[1:]))
    assert all(v == float(f"{v:.12g}") for v in values)


# ---------------------------------------------------------------------------------------------------------
# expand_sweep
# ---------------------------------------------------------------------------------------------------------
SWEEP = '\n[sweep]\n"strategy.target_ltv" = [0.6, 0.7]\n"strategy.loops" = [1, 2, 3]\n'


def test_expand_without_sweep_is_one_point(tmp_path):
    cfg = load(tmp_path)
    assert expand_sweep(cfg) == [({}, cfg)]


def test_expand_product_order_labels_and_values(tmp_path):
    points = expand_sweep(load(tmp_path, extra=SWEEP))
    assert [labels for labels, _ in points] == [
        {"strategy.target_ltv": t, "strategy.loops": n} for t in (0.6, 0.7) for n in (1, 2, 3)]
    for labels, cfg in points:
        assert cfg.strategy.target_ltv == labels["strategy.target_ltv"]
        assert cfg.strategy.loops == labels["strategy.loops"]
        assert cfg.sweep == {} and "sweep" not in cfg.raw
    assert len({config_hash(c) for _, c in points}) == 6


def test_expand_converts_swept_values(tmp_path):
    points = expand_sweep(load(tmp_path), {"run.record": ["block", "1d"], "market.emode": ["none", "eth-correlated"]})
    assert [(c.run.record, c.market.emode) for _, c in points] == [
        (0, None), (0, "eth-correlated"), (86400, None), (86400, "eth-correlated")]


def test_expand_grids_override_and_extend(tmp_path):
    cfg = load(tmp_path, extra=SWEEP)
    points = expand_sweep(cfg, {"strategy.loops": [4], "costs.swap_fee": [0.0, 0.001]})
    assert [tuple(lab.values()) for lab, _ in points] == [
        (0.6, 4, 0.0), (0.6, 4, 0.001), (0.7, 4, 0.0), (0.7, 4, 0.001)]
    assert list(points[0][0]) == ["strategy.target_ltv", "strategy.loops", "costs.swap_fee"]
    assert points[-1][1].costs.swap_fee == 0.001


def test_expand_zip(tmp_path):
    cfg = load(tmp_path)
    points = expand_sweep(cfg, {"strategy.target_ltv": [0.6, 0.7], "strategy.loops": [2, 4]}, zip_=True)
    assert [(c.strategy.target_ltv, c.strategy.loops) for _, c in points] == [(0.6, 2), (0.7, 4)]


def test_expand_zip_length_mismatch(tmp_path):
    with pytest.raises(ConfigError) as ei:
        expand_sweep(load(tmp_path, extra=SWEEP), zip_=True)
    assert "equal length" in ei.value.message
    assert "strategy.target_ltv has 2" in ei.value.message and "strategy.loops has 3" in ei.value.message


def test_expand_impossible_point_names_its_key_and_sweep_line(tmp_path):
    text = render({"market": {"liquidation_threshold": "0.93"}},
                  extra='\n[sweep]\n"strategy.target_ltv" = [0.8, 0.95]\n"strategy.loops" = [1]\n')
    cfg = load_config(write(tmp_path, text))
    with pytest.raises(ConfigError) as ei:
        expand_sweep(cfg)
    msg = ei.value.message
    lineno = line_of(text, '"strategy.target_ltv"')
    assert f"loop.toml:{lineno}: strategy.target_ltv = 0.95 (from [sweep]): " \
           "must be below market.liquidation_threshold (0.93)" in msg, msg
    assert "sweep point strategy.target_ltv=0.95, strategy.loops=1" in msg


def test_expand_impossible_grid_point_cross_key(tmp_path):
    cfg = load(tmp_path, {"strategy.rebalance": REB})
    with pytest.raises(ConfigError) as ei:
        expand_sweep(cfg, {"strategy.rebalance.target_hf": [1.2, 1.01]})
    msg = ei.value.message
    assert "strategy.rebalance.target_hf = 1.01 (from --grid): must be above" in msg
    assert "sweep point strategy.rebalance.target_hf=1.01" in msg


def test_expand_grid_bad_value_and_key(tmp_path):
    cfg = load(tmp_path)
    with pytest.raises(ConfigError, match=r"strategy\.loops = 1\.5 \(from --grid\): must be an integer"):
        expand_sweep(cfg, {"strategy.loops": [1, 1.5]})
    with pytest.raises(ConfigError, match=r"unknown config key; did you mean 'strategy\.target_ltv'\?"):
        expand_sweep(cfg, {"strategy.target_lvt": [0.5]})


# ---------------------------------------------------------------------------------------------------------
# config_hash / config_to_dict
# ---------------------------------------------------------------------------------------------------------
def test_hash_stable_across_key_order_and_spelling(tmp_path):
    a = load_config(write(tmp_path, render({"strategy": {"capital": "100"}}), "a.toml"))
    b_text = (
        '[strategy]\nloops = 5\ncapital = 100.0\ntarget_ltv = 0.80\nkind = "loop"\n\n'
        '[costs]\ngas = "data"\n\n'
        '[run]\nend = 2025-06-01\nstart = "2024-06-01T00:00:00Z"\nname = "t"\noutput = "elsewhere"\n\n'
        '[market]\nprotocol = "aave-v3"\n\n[sweep]\n"strategy.loops" = [1, 2]\n'
    )
    b = load_config(write(tmp_path, b_text, "b.toml"))
    h = config_hash(a)
    assert len(h) == 64 and int(h, 16) >= 0
    assert h == config_hash(b)
    assert h == config_hash(load_config(tmp_path / "a.toml"))


@pytest.mark.parametrize("changes", [
    {"strategy": {"target_ltv": "0.81"}},
    {"run": {"record": '"1d"'}},
    {"costs": {"gas_units": "{ open = 1 }"}},
    {"market": {"oracle": '"market"'}},
    {"run": {"data": '"other"'}},
])
def test_hash_changes_with_any_resolved_value(tmp_path, changes):
    assert config_hash(load(tmp_path)) != config_hash(load(tmp_path, changes))


def test_config_to_dict_is_json_safe(tmp_path):
    cfg = load(tmp_path, {"strategy.rebalance": REB}, extra=scenario() + SWEEP)
    d = config_to_dict(cfg)
    back = json.loads(json.dumps(d, allow_nan=False))
    assert back["run"]["start"] == 1717200000 and back["run"]["data"] == "data"
    assert back["strategy"]["rebalance"]["target_hf"] == 1.15
    assert back["scenarios"][0]["duration"] == 3 * 86400
    assert back["sweep"]["strategy.loops"] == [1, 2, 3]
    assert back["source"].endswith("loop.toml")


# ---------------------------------------------------------------------------------------------------------
# examples/
# ---------------------------------------------------------------------------------------------------------
EXAMPLE_FILES = sorted(EXAMPLES.glob("*.toml"))


def test_examples_present():
    names = {p.name for p in EXAMPLE_FILES}
    assert {"loop.toml", "steth-2022-v2.toml", "rate-spike.toml", "depeg-exit.toml"} <= names


@pytest.mark.parametrize("path", EXAMPLE_FILES, ids=lambda p: p.name)
def test_example_loads_and_expands(path):
    cfg = load_config(path)
    points = expand_sweep(cfg)
    assert points and all(isinstance(c, Config) for _, c in points)
    # real history on the bundled lake, or a synthetic scenario on synth/ (backtest data synth ... --into synth)
    assert cfg.run.data in (Path("data"), Path("synth"))
    assert math.isfinite(cfg.strategy.capital)


def test_steth_2022_example_sweep():
    cfg = load_config(EXAMPLES / "steth-2022-v2.toml")
    assert cfg.market.protocol == "aave-v2" and cfg.market.emode is None and cfg.market.oracle == "market"
    values = cfg.sweep["strategy.target_ltv"]
    assert values[0] == 0.5 and values[-1] == 0.68 and len(values) == 10
