"""The config's schema: its sections, their keys, each key's type, bounds and required keys.

The sections are [run], [market], [strategy] (with [strategy.rebalance], [strategy.exit] and
[strategy.rewards]), [costs], [[scenario]] and [sweep]. :data:`SPEC` maps each section's keys to the parser
that reads them (in the order the checks run); the defaults of what is not set are the fields of the frozen
dataclasses in ``backtest.config_types``. This module also holds the value domains (protocols, oracles,
chains...), the parsers of the config's own value types (run.record, costs.gas, run.sources...), how one table
is read against its section (:func:`section_fields`), and which dotted paths an override or a sweep may set
(:data:`FIELDS`, :func:`check_key`). What one key implies for another is in ``backtest.config.rules``.
"""
from __future__ import annotations

import math
import re
from typing import Any, Mapping

from backtest.config.fields import (
    FLOAT_RE,
    Context,
    Parser,
    boolean,
    bounded,
    choice,
    date,
    did_you_mean,
    dotted,
    duration,
    integer,
    not_a_number,
    number,
    parse_duration,
    path_value,
    string,
    suggest,
    type_name,
)
from backtest import venues as _venues
from backtest.config_types import MC_MAX_PATHS, MC_SERIES, CostsConfig
from backtest.venues import aave_v3 as _aave_v3

# --- value domains ------------------------------------------------------------------------------------
PROTOCOLS = _venues.PROTOCOLS                  # the venue registry's market.protocol names
AAVE_FAMILY = tuple(v.protocol for v in _aave_v3.VENUES)
IRMS = ("data", "adaptive-curve")
ORACLES = ("exchange-rate", "market", "capo", "chainlink")
STRATEGY_KINDS = ("hold", "lend", "loop", "flash-loan", "basket", "lp", "vault", "farm")
#: the strategy book's kinds (backtest/book): replayed by `backtest book` / `run`, not by the loop engine
BOOK_KINDS = ("basket", "lp", "vault", "farm")
ENTRIES = ("swap", "stake")
SLIPPAGE_MODELS = ("none", "linear", "stableswap", "constant-product")
EXIT_ROUTES = ("dex", "queue")
SCENARIO_KINDS = ("depeg", "rate_spike", "utilization", "slash", "gas_spike", "oracle", "capo_snapshot",
                  "withdrawals_frozen")
SCENARIO_SHAPES = ("v", "step", "linear")
# chain -> (milliseconds per block or slot, default replay step in whole seconds, genesis UTC epoch seconds)
#   ethereum: 12 s slots since the Merge; genesis 2015-07-30 15:26:13
#   cosmos:   the Cosmos Hub, ~6 s blocks; cosmoshub-1 genesis 2019-03-13 23:00:00
#   solana:   400 ms slots; mainnet-beta genesis 2020-03-16 14:29:00. A year is ~79 M slots, too many for
#             per-block arrays: the default step is 60 s (150 slots, 525,600 steps a year); run.step may be
#             any even number of seconds (a whole number of slots)
CHAINS = {"ethereum": (12000, 12, 1438269973), "cosmos": (6000, 6, 1552518000), "solana": (400, 60, 1584368940)}
GAS_UNIT_KEYS = ("open", "loop_step", "rebalance", "close")
ETHEREUM_GENESIS = 1438269973                   # 2015-07-30 15:26:13 UTC
#: venues that run on each chain other than Ethereum (Venue.chains: the Aave family, Morpho Blue, Compound III
#: and Aave v4 are Ethereum contracts; the generic venue, configured by hand, stands for a lending market on any
#: chain)
CHAIN_PROTOCOLS = {c: _venues.chain_protocols(c) for c in CHAINS if c != "ethereum"}
MAX_LOOPS = 100
# magnitude bounds (schema-valid but absurd values are refused before any arithmetic)
MAX_CAPITAL = 1e12            # debt-asset units: more than all the ETH (~1.2e8) or any stablecoin supply
MAX_GAS_GWEI = 1e6            # fixed gas price: Ethereum's highest daily averages were ~1e3 gwei
MAX_GAS_UNITS = 1e8           # gas per transaction: a block holds 30-45 M
MAX_AMP = 1e6                 # Curve's StableSwap caps A at 1e6
MAX_POOL_DEPTH = 1e15
SWEEP_FORBIDDEN = ("run.name", "run.data", "run.output")   # they name the result set, not a configuration
# they select how the lake is read (which source wins), which a sweep shares; strategy.restake and
# strategy.rewards.* may be swept: they select the held token and its reward series, and the sweep groups
# configurations by them (backtest.sweep.market_key)
SWEEP_MARKET = ("run.sources", "run.allow")
REWARD_VALUES = ("zero", "points", "token")

SECTIONS = ("run", "market", "strategy", "costs", "scenario", "sweep", "episodes", "montecarlo")
#: sections that read or shape the results but are not configurations: --set may set them, a sweep may not
RESULT_SECTIONS = ("episodes.", "montecarlo.")
NAME_RE = re.compile(r"[A-Za-z0-9._-]+")


# ======================================================================================================
# parsers of the config's own value types
# ======================================================================================================
def _record(ctx: Context, path: tuple, v: Any) -> int:
    if v == "block":
        return 0
    if v == "none":
        return -1
    try:
        secs = parse_duration(v)
    except ValueError:
        raise ctx.fail(path, 'must be "block", "none" or a duration such as "1h" or "1d"', v) from None
    if secs <= 0:
        raise ctx.fail(path, 'must be a duration > 0 (or "block" for every block)', v)
    return secs


def _gas(ctx: Context, path: tuple, v: Any) -> str | float:
    if v == "data":
        return "data"
    if isinstance(v, str):
        hint = f" (write {v.strip()} without quotes)" if FLOAT_RE.match(v.strip()) else ""
        raise ctx.fail(path, f'must be "data" (the lake\'s gas series) or a gas price in gwei{hint}', v)
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise not_a_number(ctx, path, v, '"data" or a gas price in gwei')
    x = float(v)
    # 0 gwei is a price (a private or sponsored transaction), not "missing"
    if not math.isfinite(x) or x < 0:
        raise ctx.fail(path, 'must be a gas price >= 0 in gwei (or "data")', v)
    if x > MAX_GAS_GWEI:
        raise ctx.fail(path, f"{x:g} gwei is beyond the bound of {MAX_GAS_GWEI:g} gwei (Ethereum's highest daily "
                             f"averages were ~1,000 gwei); give the price in gwei, not wei", v)
    return x


def _resample(ctx: Context, path: tuple, v: Any) -> tuple[str, ...]:
    """montecarlo.resample: the series a path resamples, a non-empty list of MC_SERIES without repeats."""
    if isinstance(v, str):
        raise ctx.fail(path, f'must be a list such as ["{v}"], not a string', v)
    if not isinstance(v, (list, tuple)) or not v:
        raise ctx.fail(path, f"must be a non-empty list of series: {', '.join(MC_SERIES)}", v)
    pick = choice(MC_SERIES)
    for i, x in enumerate(v):
        pick(ctx, path + (i,), x)
        if x in v[:i]:
            raise ctx.fail(path, f"lists {x!r} twice", v)
    return tuple(v)


def _emode(ctx: Context, path: tuple, v: Any) -> str | None:
    string(ctx, path, v)
    return None if v == "none" else v


def _run_name(ctx: Context, path: tuple, v: Any) -> str:
    string(ctx, path, v)
    if not NAME_RE.fullmatch(v) or set(v) == {"."}:
        raise ctx.fail(path, "must be a safe folder name: letters, digits, '.', '_' and '-' only", v)
    return v


def _sources(ctx: Context, path: tuple, v: Any) -> tuple[tuple[str, str], ...]:
    """run.sources: which source to read for a lake series that has several ("prices WETH/USD" = "coingecko")."""
    if not isinstance(v, Mapping):
        raise ctx.fail(path, 'must be a table such as { "prices WETH/USD" = "coingecko" } (lake series -> source)', v)
    out = []
    for k, x in v.items():
        table, _, key = str(k).partition(" ")
        if table not in ("prices", "exchange_rates") or not key.strip():
            raise ctx.fail(path + (k,), 'must name a lake series that has sources: "prices BASE/QUOTE" or '
                                        '"exchange_rates TOKEN"', x)
        if not isinstance(x, str) or not x.strip():
            raise ctx.fail(path + (k,), 'must be a source name such as "coingecko"', x)
        out.append((str(k), x))
    return tuple(sorted(out))


def _allow(ctx: Context, path: tuple, v: Any) -> tuple[str, ...]:
    """run.allow: data-check errors the user knows are right, replayed with a warning ("jump:exchange_rates wstETH")."""
    from backtest.data.check import RUN_KINDS, RUN_TABLES

    if not isinstance(v, (list, tuple)):
        raise ctx.fail(path, 'must be a list such as ["jump:exchange_rates wstETH"] (CHECK:TABLE KEY, as the '
                             'refusal message prints it)', v)
    for x in v:
        kind, _, rest = str(x).partition(":") if isinstance(x, str) else ("", "", "")
        table, _, key = rest.partition(" ")
        if kind not in RUN_KINDS or table not in RUN_TABLES or not key.strip():
            raise ctx.fail(path, f"{x!r} is not CHECK:TABLE KEY with CHECK one of {', '.join(RUN_KINDS)} and TABLE "
                                 f"one of {', '.join(RUN_TABLES)} (e.g. \"jump:exchange_rates wstETH\")", v)
    return tuple(sorted(set(v)))


def _chain(ctx: Context, path: tuple, v: Any) -> str:
    string(ctx, path, v)
    if v in CHAINS:
        return v
    s = suggest(v, list(CHAINS))
    if s:
        raise ctx.fail(path, f"unknown chain; did you mean '{s}'?", v)
    raise ctx.fail(path, f"chain {v!r} is not supported yet (supported: {', '.join(CHAINS)})", v)


def _restake(ctx: Context, path: tuple, v: Any) -> str:
    string(ctx, path, v)
    if not v.strip() or v != v.strip():
        raise ctx.fail(path, 'must be "none" or an LRT symbol such as "weETH"', v)
    return v


def _gas_units(ctx: Context, path: tuple, v: Any) -> dict[str, float]:
    if not isinstance(v, Mapping):
        raise ctx.fail(path, "must be a table such as { open = 600000, loop_step = 250000, rebalance = 400000,"
                             " close = 500000 }", v)
    out = dict(CostsConfig().gas_units)
    parse = _GAS_UNITS
    for k, x in v.items():
        if k not in GAS_UNIT_KEYS:
            raise ctx.unknown(path + (k,), GAS_UNIT_KEYS, v)
        out[k] = parse(ctx, path + (k,), x)
    return out


_GAS_UNITS = bounded(number(lo=0), MAX_GAS_UNITS, "gas per transaction; a block holds 30-45 M")

# section -> key -> parser; the order is the order of checks
SPEC: dict[str, dict[str, Parser]] = {
    "run": {
        "name": _run_name,
        "start": date,
        "end": date,
        "chain": _chain,
        "data": path_value,
        "output": path_value,
        "record": _record,
        "unwind_at_end": boolean,
        "step": duration(),
        "sources": _sources,
        "allow": _allow,
    },
    "market": {
        "protocol": choice(PROTOCOLS),
        "collateral": string,
        "debt": string,
        "emode": _emode,
        "oracle": choice(ORACLES),
        "ltv": number(0, 1),
        "liquidation_threshold": number(0, 1),
        "liquidation_bonus": number(0, 0.5),
        "liquidation_protocol_fee": number(0, 1),
        "close_factor": number(0, 1, lo_open=True),
        "borrow_rate": number(0, 1),
        "supply_rate": number(0, 1),
        "capo_growth": number(0, 1),
        "capo_snapshot_age": duration(),
        "liquidation_delay": integer(0, 10_000_000),
        "liquidation_gas": number(0, 1e8),
        "v33_from": date,
        "lltv": number(0, 1, lo_open=True, hi_open=True),
        "liquidation_factor": number(0, 1, lo_open=True),
        "irm": choice(IRMS),
        "utilization": number(0, 1),
        "rate_at_target": number(0.001, 2.0),
        "rates_from": string,
        # each venue's own keys (Aave v4's Spoke parameters): numbers, checked by the venue's rules
        **{key: number() for key in _venues.OWN_KEYS},
    },
    "strategy": {
        "kind": choice(STRATEGY_KINDS),
        "capital": bounded(number(0, lo_open=True), MAX_CAPITAL, "debt-asset units; more than all the ETH "
                                                                   "or any stablecoin in existence"),
        "entry": choice(ENTRIES),
        "target_ltv": number(0, 1, lo_open=True, hi_open=True),
        "loops": integer(0, MAX_LOOPS),
        "restake": _restake,
    },
    "strategy.lp": {
        "pool": string,
        "amp": bounded(number(0, lo_open=True), MAX_AMP, "Curve's StableSwap caps A at 1e6"),
        "lp_token": string,
    },
    "strategy.vault": {
        "over": choice(("lend", "loop")),
        "band": number(0, 1),
        "check_every": duration(),
        "management_fee": number(0, 1, hi_open=True),
        "performance_fee": number(0, 1, hi_open=True),
    },
    "strategy.basket": {
        "weights": lambda ctx, path, v: __import__("backtest.config.book", fromlist=["weights"]).weights(ctx, path, v),
        "rebalance_every": duration(allow_zero=True),
    },
    "strategy.farm": {
        "reward_token": string,
        "exit_after": duration(),
        "sell_every": duration(),
        "halving": duration(allow_zero=True),
    },
    "strategy.rebalance": {
        "deleverage_below_hf": number(1.0, lo_open=True),
        "target_hf": number(1.0, lo_open=True),
        "releverage_above_hf": number(1.0, lo_open=True),
        "check_every": duration(),
    },
    "strategy.exit": {
        "depeg_below": number(0, 1, lo_open=True),
        "route": choice(EXIT_ROUTES),
        "queue_delay": duration(allow_zero=True),
    },
    "strategy.collateral": {
        "token": string,
        "weight": number(0, 1, lo_open=True),
    },
    "strategy.rewards": {
        "value": choice(REWARD_VALUES),
        "price_per_point": number(0),
        "token": string,
    },
    "costs": {
        "gas": _gas,
        "gas_units": _gas_units,
        "swap_fee": number(0, 1, hi_open=True),
        "slippage": choice(SLIPPAGE_MODELS),
        "slippage_bps": number(0, 10000, hi_open=True),
        "pool_depth": bounded(number(0, lo_open=True), MAX_POOL_DEPTH, "debt-asset units per side"),
        "amp": bounded(number(0, lo_open=True), MAX_AMP, "Curve's StableSwap caps A at 1e6"),
        "flash_fee": number(0, 1, hi_open=True),
    },
    "episodes": {
        "threshold": number(0, 1, lo_open=True, hi_open=True),
        "merge_gap": duration(allow_zero=True),
    },
    "montecarlo": {
        "paths": integer(1, MC_MAX_PATHS),
        "seed": integer(0),
        "block_days": bounded(number(0, lo_open=True), 36500.0, "days: a hundred years"),
        "path": integer(0),
        "vary_borrow_rate": boolean,
        "resample": _resample,
    },
    "scenario": {
        "kind": choice(SCENARIO_KINDS),
        "asset": string,
        "at": date,
        "depth": number(0, lo_open=True),
        "duration": duration(),
        "shape": choice(SCENARIO_SHAPES),
        "recovery": duration(allow_zero=True),
        "level": number(0),
        "multiple": number(0, lo_open=True),
        "ratio": number(0, lo_open=True),
        "snapshot_at": date,
        "growth": number(0, 1),
    },
}
REQUIRED = {
    "run": ("start", "end"),
    "strategy.rebalance": ("deleverage_below_hf", "target_hf"),
    "strategy.exit": ("depeg_below",),
    "strategy.collateral": ("token", "weight"),
    "strategy.lp": ("pool", "lp_token"),
    "strategy.basket": ("weights",),
    "strategy.farm": ("reward_token", "exit_after"),
    "scenario": ("kind", "at"),      # the other keys each kind needs: config.rules.scenario_rules
    "montecarlo": ("paths",),
}
SPECIAL = {   # known-but-rejected keys: a clearer message than "unknown key"
    "run": {
        "start_block": "block-number windows are not supported yet; use dates (run.start / run.end)",
        "end_block": "block-number windows are not supported yet; use dates (run.start / run.end)",
        "block_time": "the block time follows run.chain (ethereum: 12 s, cosmos: 6 s, solana: 0.4 s) and cannot be "
                      "set; run.step sets the seconds per replayed step",
    },
}
SUBTABLES = {"strategy": ("rebalance", "exit", "rewards", "collateral", "lp", "vault", "basket", "farm")}

# every scalar dotted path that overrides and sweeps may set -> its parser
FIELDS: dict[str, Parser] = {}
for _sec, _spec in SPEC.items():
    if _sec in ("scenario", "strategy.collateral", "strategy.basket"):     # arrays of tables: no single dotted path
        continue
    for _key, _parser in _spec.items():
        if _sec == "costs" and _key == "gas_units":
            for _unit in GAS_UNIT_KEYS:
                FIELDS[f"costs.gas_units.{_unit}"] = _GAS_UNITS
            continue
        FIELDS[f"{_sec}.{_key}"] = _parser
del _sec, _spec, _key, _parser


def sweep_keys() -> list[str]:
    """The dotted config paths a ``[sweep]`` or ``--grid`` may vary."""
    return [k for k in FIELDS if k not in SWEEP_FORBIDDEN and k not in SWEEP_MARKET
            and not k.startswith(RESULT_SECTIONS)]


# ======================================================================================================
# reading a table against its section
# ======================================================================================================
def read_table(ctx: Context, parent: Mapping, path: tuple) -> dict:
    """The table at `path` (absent: empty); anything else is refused naming the [section] to write."""
    v = parent.get(path[-1], {})
    if not isinstance(v, Mapping):
        hint = f"; write it as [{dotted(path)}]"
        raise ctx.fail(path, f"must be a table, not {type_name(v)}{hint}", v)
    return dict(v)


def section_fields(ctx: Context, table: Mapping, path: tuple, section: str) -> dict[str, Any]:
    """The keys of `table` read by `section`'s parsers; an unknown, rejected or missing key is refused."""
    spec = SPEC[section]
    extra = SUBTABLES.get(section, ())
    special = SPECIAL.get(section, {})
    for k, v in table.items():
        if k in spec or k in extra:
            continue
        if k in special:
            raise ctx.fail(path + (k,), special[k], v)
        raise ctx.unknown(path + (k,), list(spec) + list(extra), table)
    for k in REQUIRED.get(section, ()):
        if k not in table:
            raise ctx.missing(path + (k,))
    return {k: parser(ctx, path + (k,), table[k]) for k, parser in spec.items() if k in table}


def check_top_level(ctx: Context, data: Mapping) -> None:
    """Only the known sections at the top level; a key written outside its section names the section."""
    section_names = list(SECTIONS) + ["strategy.rebalance", "strategy.exit", "strategy.rewards",
                                      "strategy.collateral"]
    for k, v in data.items():
        if k in SECTIONS:
            continue
        if isinstance(v, Mapping):
            raise ctx.fail((k,), f"unknown section [{k}]{did_you_mean(k, section_names)}")
        owners = [f"{sec}.{k}" for sec, spec in SPEC.items() if k in spec and sec != "scenario"]
        hint = f"; keys belong in a section: did you mean '{owners[0]}'?" if owners else \
            f"; keys belong in a section ({', '.join('[' + s + ']' for s in SECTIONS[:4])})"
        raise ctx.fail((k,), f"unknown top-level key{hint}")


# ======================================================================================================
# dotted paths set by an override or a sweep
# ======================================================================================================
def check_key(ctx: Context, key: Any, err_path: tuple, *, sweep: bool) -> None:
    """`key` must be a settable scalar dotted path (sweeps also exclude run.name / run.data / run.output)."""
    if not isinstance(key, str):
        raise ctx.fail(err_path, "a config path must be a string such as 'strategy.target_ltv'")
    if key in FIELDS and not (sweep and (key in SWEEP_FORBIDDEN or key in SWEEP_MARKET
                                         or key.startswith(RESULT_SECTIONS))):
        return
    if sweep and key in SWEEP_FORBIDDEN:
        raise ctx.fail(err_path, f"{key} names the result set and cannot be swept")
    if sweep and key.startswith("episodes.") and key in FIELDS:
        raise ctx.fail(err_path, f"{key} reads the results (which episodes are found), one value per result set, "
                                 f"and cannot be swept; set it with --set or in [episodes]")
    if sweep and key.startswith("montecarlo.") and key in FIELDS:
        raise ctx.fail(err_path, f"{key} sets the Monte Carlo paths every configuration runs on, one value per "
                                 f"result set, and cannot be swept; set it with --set, a flag or in [montecarlo]")
    if sweep and key in SWEEP_MARKET:
        raise ctx.fail(err_path, f"{key} selects how the lake is read (which source each series comes from) "
                                 f"and cannot be swept; run one config per value")
    valid = sweep_keys() if sweep else list(FIELDS)
    if key in ("costs.gas_units", "strategy.rebalance", "strategy.exit", "strategy.rewards",
               "strategy.collateral") or key.startswith("scenario"):
        raise ctx.fail(err_path, f"{key} is not a single value; "
                                 f"{'sweep' if sweep else 'override'} one of its keys instead")
    raise ctx.fail(err_path, f"unknown config key{did_you_mean(key, valid)}")


def set_path(data: dict, key: str, value: Any) -> None:
    """Set the dotted `key` in the nested tables of `data`, creating the tables on the way."""
    parts = key.split(".")
    d = data
    for p in parts[:-1]:
        nxt = d.get(p)
        if not isinstance(nxt, dict):
            nxt = {}
            d[p] = nxt
        d = nxt
    d[parts[-1]] = value

