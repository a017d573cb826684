"""The cross-field rules: what one key of a config implies for another, checked once every key is valid.

* [run]: the window (after run.start, after the chain's genesis), run.step a whole number of blocks, and the
  arrays the window and run.record ask for small enough to allocate (:func:`check_sizes`);
* [market]: which keys each venue takes and what they imply (each venue's module in ``backtest.venues``:
  the Aave family, Morpho Blue, Compound III, the generic venue, Aave v4), market.ltv <=
  market.liquidation_threshold, a liquidation that cannot seize more than all the collateral, and the venues a
  chain runs;
* [strategy]: strategy.target_ltv below the liquidation limit, the rebalance band in order, the LRT unlike
  the collateral, the rewards' valuation complete;
* [[scenario]]: each overlay applies to an asset of the position and falls inside the window.

Each rule function takes the parsed keys of its table (and the table as written, for the value a message
shows), raises the ConfigError of the first broken rule, and returns the section's frozen dataclass where it
builds one.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Mapping

from backtest import venues as _venues
from backtest.config.fields import MISSING, Context, fmt_date
from backtest.config.schema import CHAIN_PROTOCOLS, CHAINS, NAME_RE
from backtest.config_types import (
    MarketConfig,
    RebalanceConfig,
    RewardsConfig,
    RunConfig,
    ScenarioConfig,
    StrategyConfig,
)

# size bounds, checked before any allocation
#: replayed steps per run: the aligned market costs ~340 bytes a step (README: ~0.9 GB peak for a year of
#: 2,628,000 Ethereum blocks), so 30 M steps (11.4 years of 12 s blocks) is already ~10 GB
MAX_STEPS = 30_000_000
BYTES_PER_STEP = 340
#: time-series samples per configuration (run.record): 11 float64 fields = 88 bytes a sample in memory, so
#: 4 M samples (~1.5 years of 12 s blocks at record = "block") is ~350 MB per configuration
MAX_RECORD_SAMPLES = 4_000_000
BYTES_PER_SAMPLE = 88


# ======================================================================================================
# [run]: the window and the sizes it implies
# ======================================================================================================
def steps_of(run: RunConfig) -> int:
    """Replayed steps of a run window (the block clock's length, align.block_clock)."""
    return max(0, -(-(run.end - run.start) // run.block_time))


def record_samples(run: RunConfig) -> int:
    """Time-series samples per configuration: every step (record = "block"), one per record interval plus
    the last step, or none (engine.record_indices picks the same blocks)."""
    n = steps_of(run)
    if run.record < 0 or n == 0:
        return 0
    if run.record == 0:
        return n
    return min(n, -(-(run.end - run.start) // run.record) + 1)


def gb(nbytes: float) -> str:
    """A size for a message: "1.2 GB", or "350 MB" below 0.1 GB."""
    return f"{nbytes / 1e9:,.1f} GB" if nbytes >= 1e8 else f"{nbytes / 1e6:,.0f} MB"


def check_sizes(ctx: Context, run: RunConfig, run_t: Mapping) -> None:
    """Refuse a window or a record interval whose arrays could not be allocated, before anything is."""
    n = steps_of(run)
    if n > MAX_STEPS:
        raise ctx.fail(("run", "end"), f"the window {fmt_date(run.start)} to {fmt_date(run.end)} is {n:,} steps of "
                                       f"{run.block_time} s (~{gb(n * BYTES_PER_STEP)} of aligned market); the "
                                       f"bound is {MAX_STEPS:,} steps: shorten the window or set a coarser run.step",
                       run_t.get("end"))
    samples = record_samples(run)
    if samples > MAX_RECORD_SAMPLES:
        raise ctx.fail(("run", "record"), f"gives {samples:,} time-series samples per configuration "
                                          f"(~{gb(samples * BYTES_PER_SAMPLE)} each); the bound is "
                                          f"{MAX_RECORD_SAMPLES:,}: use a coarser run.record such as \"1h\"",
                       run_t.get("record", "block" if run.record == 0 else MISSING))


def run_rules(ctx: Context, r: dict[str, Any], run_t: Mapping, source: Path | None) -> RunConfig:
    """[run]: run.name defaults to the file's stem; the window, the chain's genesis, the step and the sizes."""
    if "name" not in r:
        stem = source.stem if source is not None else ""
        if not stem or not NAME_RE.fullmatch(stem) or set(stem) == {"."}:
            raise ctx.missing(("run", "name"))
        r["name"] = stem
    if r["end"] <= r["start"]:
        raise ctx.fail(("run", "end"), f"must be after run.start ({fmt_date(r['start'])})", run_t["end"])
    chain = r.get("chain", "ethereum")
    block_ms, default_step, genesis = CHAINS[chain]
    if r["start"] < genesis:
        raise ctx.fail(("run", "start"), f"is before {chain}'s genesis ({fmt_date(genesis)})", run_t["start"])
    step = r.pop("step", default_step)
    if (step * 1000) % block_ms:
        raise ctx.fail(("run", "step"), f"must be a whole number of {chain} blocks of {block_ms / 1000:g} s "
                                        f"(a multiple of {block_ms // math.gcd(block_ms, 1000)} s)", run_t["step"])
    run = RunConfig(block_time=step, **r)
    check_sizes(ctx, run, run_t)
    return run


# ======================================================================================================
# [market]: the rules every venue shares
# ======================================================================================================
def market_rules(ctx: Context, m: dict[str, Any], market_t: Mapping, chain: str) -> MarketConfig:
    """[market]: the venue's own rules, then the risk parameters against each other, then the chain."""
    protocol = m.get("protocol", "aave-v3")
    _venues.market_rules(ctx, protocol, m, market_t)
    ltv, lt, bonus = m.get("ltv"), m.get("liquidation_threshold"), m.get("liquidation_bonus")
    if ltv is not None and lt is not None and ltv > lt:
        raise ctx.fail(("market", "ltv"), f"must not exceed market.liquidation_threshold ({lt:g})",
                       market_t["ltv"])
    if lt is not None and bonus is not None and lt * (1 + bonus) > 1 + 1e-12:
        raise ctx.fail(("market", "liquidation_bonus"),
                       f"liquidation_threshold × (1 + bonus) = {lt * (1 + bonus):.4g} must not exceed 1 "
                       "(a liquidation at the threshold would seize more than all the collateral)",
                       market_t["liquidation_bonus"])
    market = MarketConfig(**m)
    if chain in CHAIN_PROTOCOLS and protocol not in CHAIN_PROTOCOLS[chain]:
        raise ctx.fail(("market", "protocol"), f"{protocol} does not run on {chain}; use "
                                               f"{' or '.join(repr(p) for p in CHAIN_PROTOCOLS[chain])} with the "
                                               f"venue's parameters in [market]", market_t.get("protocol", protocol))
    return market


# ======================================================================================================
# [strategy]
# ======================================================================================================
def target_ltv_rules(ctx: Context, target: float, strat_t: Mapping, market: MarketConfig) -> None:
    """strategy.target_ltv opens below the liquidation limit and within the borrow limit."""
    own_rule = _venues.venue(market.protocol).target_ltv_rule
    if own_rule is not None:
        own_rule(ctx, market, target, strat_t)
    lt, ltv = market.liquidation_threshold, market.ltv
    if lt is not None and target >= lt:
        raise ctx.fail(("strategy", "target_ltv"),
                       f"must be below market.liquidation_threshold ({lt:g}): the position would open liquidatable",
                       strat_t.get("target_ltv", target))
    if ltv is not None and target > ltv:
        raise ctx.fail(("strategy", "target_ltv"), f"must not exceed market.ltv ({ltv:g}), the borrow limit",
                       strat_t.get("target_ltv", target))


def rebalance_rules(ctx: Context, rb: dict[str, Any], reb_t: Mapping) -> RebalanceConfig:
    """The band in order: deleverage_below_hf < target_hf < releverage_above_hf."""
    path = ("strategy", "rebalance")
    if rb["target_hf"] <= rb["deleverage_below_hf"]:
        raise ctx.fail(path + ("target_hf",),
                       f"must be above strategy.rebalance.deleverage_below_hf ({rb['deleverage_below_hf']:g})",
                       reb_t["target_hf"])
    if "releverage_above_hf" in rb and rb["releverage_above_hf"] <= rb["target_hf"]:
        raise ctx.fail(path + ("releverage_above_hf",),
                       f"must be above strategy.rebalance.target_hf ({rb['target_hf']:g})",
                       reb_t["releverage_above_hf"])
    return RebalanceConfig(**rb)


def restake_rules(ctx: Context, restake: str, strat_t: Mapping, market: MarketConfig) -> None:
    """The LRT the collateral is restaked into is another token than the collateral."""
    if restake != "none" and restake == market.collateral:
        raise ctx.fail(("strategy", "restake"), f"is the LRT the base LST is restaked into; it must differ from "
                                                f"market.collateral ({market.collateral!r})", strat_t["restake"])


def rewards_rules(ctx: Context, rw: dict[str, Any], rw_t: Mapping) -> RewardsConfig:
    """Points need a price per point, token rewards the reward token."""
    path = ("strategy", "rewards")
    value = rw.get("value", "zero")
    if value == "points" and "price_per_point" not in rw:
        raise ctx.fail(path + ("value",), 'points are valued with strategy.rewards.price_per_point (debt-asset '
                                          'units per point); set it', rw_t.get("value"))
    if value == "token" and "token" not in rw:
        raise ctx.fail(path + ("value",), 'token rewards need strategy.rewards.token (e.g. "EIGEN"), the '
                                          'reward token whose price the lake holds', rw_t.get("value"))
    return RewardsConfig(**rw)


# ======================================================================================================
# [[scenario]]
# ======================================================================================================
#: the keys each kind needs (besides kind and at), the one-of groups, and the keys it takes
_SC_NEEDS = {"depeg": ("asset", "depth", "duration"), "rate_spike": ("asset", "duration"),
             "utilization": ("asset", "depth", "duration"), "slash": ("asset", "depth"), "gas_spike": ("duration",),
             "oracle": ("asset", "depth", "duration"), "capo_snapshot": ("asset",),
             "withdrawals_frozen": ("asset", "duration")}
_SC_ONE_OF = {"rate_spike": ("depth", "level", "multiple"), "gas_spike": ("depth", "level", "multiple"),
              "capo_snapshot": ("depth", "ratio")}
_SC_TAKES = {"depeg": ("shape", "recovery"), "rate_spike": ("level", "multiple", "depth", "shape"),   # a step
             "utilization": ("shape", "recovery"), "slash": (), "gas_spike": ("shape", "recovery", "level", "multiple",
                                                                            "depth"),
             "oracle": ("shape", "recovery"), "capo_snapshot": ("depth", "ratio", "snapshot_at", "growth", "duration"),
             "withdrawals_frozen": ()}
_SC_BASE = ("kind", "at", "asset", "depth", "duration")


def scenario_rules(ctx: Context, path: tuple, sc: dict[str, Any], sc_t: Mapping, run: RunConfig,
                   market: MarketConfig, strategy: StrategyConfig) -> ScenarioConfig:
    """An overlay applies to an asset of the position (a depeg to the collateral, a utilisation to the debt)
    and starts inside the run window; each kind takes its own keys (:data:`_SC_NEEDS`, :data:`_SC_TAKES`)."""
    kind = sc["kind"]
    for k in _SC_NEEDS[kind]:
        if k not in sc:
            raise ctx.missing(path + (k,))
    for k in sc:
        if k not in _SC_BASE and k not in _SC_TAKES[kind]:
            raise ctx.fail(path + (k,), f"is not a key of a {kind} scenario (it takes: "
                                        f"{', '.join(dict.fromkeys(_SC_NEEDS[kind] + _SC_TAKES[kind]))})", sc_t[k])
    group = _SC_ONE_OF.get(kind)
    if group is not None:
        given = [k for k in group if k in sc]
        if len(given) != 1:
            raise ctx.fail(path + ("kind",), f"a {kind} scenario takes exactly one of {', '.join(group)} "
                                             f"(given: {', '.join(given) or 'none'})", sc_t["kind"])
    sc.setdefault("depth", None)
    if kind in ("slash", "capo_snapshot"):
        sc.setdefault("duration", 0 if kind == "slash" else max(run.end - sc["at"], 1))
    if kind in ("gas_spike", "oracle"):
        sc.setdefault("shape", "step")          # a dated offset or a fee spike is on or off unless told
    if sc.get("recovery") and sc.get("shape", "v") == "v":
        raise ctx.fail(path + ("recovery",), "a v-shaped scenario recovers within its duration: recovery needs "
                                             'shape = "step" or "linear"', sc_t["recovery"])
    legs = tuple(leg.token for leg in strategy.collateral)       # [[strategy.collateral]]: any leg
    colls = (market.collateral, strategy.restake) + legs
    if kind in ("depeg", "slash", "oracle", "capo_snapshot", "withdrawals_frozen"):
        if kind == "withdrawals_frozen" and sc["depth"] is not None:
            raise ctx.fail(path + ("depth",), "a withdrawals_frozen scenario has no depth: the queue is shut for "
                                              "its duration", sc_t["depth"])
        if kind != "capo_snapshot" and sc["depth"] is not None and not sc["depth"] < 1:
            what = {"depeg": "a fractional price drop", "slash": "the fraction of the exchange rate cut",
                    "oracle": "the fractional drop of the oracle price"}[kind]
            raise ctx.fail(path + ("depth",), f"a {kind} depth is {what}: must be in (0, 1)", sc_t["depth"])
        if sc["asset"] not in colls:
            lrt = f" or strategy.restake ({strategy.restake!r})" if strategy.restake != "none" else ""
            raise ctx.fail(path + ("asset",), f"a {kind} applies to the collateral: must be market.collateral "
                                              f"({market.collateral!r}){lrt}", sc_t["asset"])
        if kind == "capo_snapshot":
            if market.oracle != "capo":
                raise ctx.fail(path + ("kind",), 'a capo_snapshot sets the CAPO oracle\'s snapshot: it needs '
                                                 'market.oracle = "capo"', sc_t["kind"])
            if sc["depth"] is not None and not sc["depth"] < 1:
                raise ctx.fail(path + ("depth",), "a capo_snapshot depth is how far below the live rate the "
                                                  "snapshot is set: must be in (0, 1)", sc_t["depth"])
    elif kind == "utilization":
        if market.irm != "adaptive-curve" and market.protocol not in ("aave-v3", "aave-v2"):
            raise ctx.fail(path + ("kind",), "a utilization overlay drives Morpho's AdaptiveCurveIRM "
                                             '(market.irm = "adaptive-curve") or the Aave v3 / v2 rate curve '
                                             f"(market.protocol is {market.protocol!r})", sc_t["kind"])
        if market.irm != "adaptive-curve" and market.borrow_rate is not None:
            raise ctx.fail(path + ("kind",), "a utilization overlay moves the borrow rate along the reserve's curve "
                                             "from the lake's utilisation; market.borrow_rate fixes the rate instead",
                           sc_t["kind"])
        if not sc["depth"] <= 1:
            raise ctx.fail(path + ("depth",), "a utilization overlay adds a utilisation: must be in (0, 1]",
                           sc_t["depth"])
        if sc["asset"] != market.debt:
            raise ctx.fail(path + ("asset",), f"a utilization overlay applies to the borrowed asset: must be "
                                              f"market.debt ({market.debt!r})", sc_t["asset"])
    elif kind == "rate_spike":
        if sc["asset"] not in (market.collateral, market.debt):
            raise ctx.fail(path + ("asset",), f"must be market.collateral ({market.collateral!r}) or market.debt "
                                              f"({market.debt!r})", sc_t["asset"])
        if market.irm == "adaptive-curve" and "depth" not in sc_t:
            raise ctx.fail(path + ("kind",), "with the AdaptiveCurveIRM the borrow rate is computed above the "
                                             "overlays: a rate_spike can only add (depth)", sc_t["kind"])
    else:                                                        # gas_spike: the chain's gas price
        sc.setdefault("asset", "gas")
    if not run.start <= sc["at"] < run.end:
        raise ctx.fail(path + ("at",), f"is outside the run window ({fmt_date(run.start)} to "
                                       f"{fmt_date(run.end)})", sc_t["at"])
    return ScenarioConfig(**sc)
