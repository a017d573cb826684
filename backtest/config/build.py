"""From the TOML's tables to a frozen :class:`~backtest.config_types.Config`.

Section by section, in the order the messages come: each table is read against the schema
(``backtest.config.schema``), then checked by the cross-field rules (``backtest.config.rules``), which build the
section's dataclass. The first broken key stops the build with its ConfigError.
"""
from __future__ import annotations

from pathlib import Path
from typing import Mapping

from backtest.config.collateral import collateral_rules, read_legs
from backtest.config.fields import Context, type_name
from backtest.config.rules import (
    market_rules,
    rebalance_rules,
    restake_rules,
    rewards_rules,
    run_rules,
    scenario_rules,
    target_ltv_rules,
)
from backtest.config.schema import check_top_level, read_table, section_fields
from backtest.config_types import (
    Config,
    CostsConfig,
    EpisodesConfig,
    ExitConfig,
    MonteCarloConfig,
    StrategyConfig,
)
from backtest.errors import ConfigError


def build(data: Mapping, ctx: Context, source: Path | None, sweep: dict[str, list]) -> Config:
    """Validate `data` (shaped like the TOML) and build its Config; `sweep` is kept as given."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"{ctx.file}: a config must be a table of sections, not {type_name(data)}")
    check_top_level(ctx, data)

    # -- [run]
    run_t = read_table(ctx, data, ("run",))
    run = run_rules(ctx, section_fields(ctx, run_t, ("run",), "run"), run_t, source)

    # -- [market]
    market_t = read_table(ctx, data, ("market",))
    market = market_rules(ctx, section_fields(ctx, market_t, ("market",), "market"), market_t, run.chain)

    # -- [strategy], [strategy.rebalance], [strategy.exit], [strategy.rewards]
    if "strategy" not in data:
        # a silent default position (a 5-loop wstETH carry) is not what a config without one meant
        raise ctx.fail(("strategy",), "missing required section [strategy] (at least kind = \"hold\", \"lend\", "
                                      "\"loop\" or \"flash-loan\")")
    strat_t = read_table(ctx, data, ("strategy",))
    s = section_fields(ctx, strat_t, ("strategy",), "strategy")
    legs, market = collateral_rules(ctx, read_legs(ctx, strat_t), strat_t, market_t, market, s)
    target_ltv_rules(ctx, s.get("target_ltv", StrategyConfig.target_ltv), strat_t, market)
    rebalance = exit_ = rewards = None
    if "rebalance" in strat_t:
        path = ("strategy", "rebalance")
        reb_t = read_table(ctx, strat_t, path)
        rebalance = rebalance_rules(ctx, section_fields(ctx, reb_t, path, "strategy.rebalance"), reb_t)
    if "exit" in strat_t:
        path = ("strategy", "exit")
        ex_t = read_table(ctx, strat_t, path)
        exit_ = ExitConfig(**section_fields(ctx, ex_t, path, "strategy.exit"))
    restake_rules(ctx, s.get("restake", "none"), strat_t, market)
    if "rewards" in strat_t:
        path = ("strategy", "rewards")
        rw_t = read_table(ctx, strat_t, path)
        rewards = rewards_rules(ctx, section_fields(ctx, rw_t, path, "strategy.rewards"), rw_t)
    from backtest.config.book import book_rules

    book = book_rules(ctx, s.get("kind", StrategyConfig.kind), strat_t, section_fields, market, market_t)
    strategy = StrategyConfig(rebalance=rebalance, exit=exit_, rewards=rewards, collateral=legs, book=book, **s)

    # -- [costs]
    costs_t = read_table(ctx, data, ("costs",))
    costs = CostsConfig(**section_fields(ctx, costs_t, ("costs",), "costs"))

    # -- [[scenario]]
    scenarios = []
    sc_list = data.get("scenario", [])
    if isinstance(sc_list, Mapping):
        raise ctx.fail(("scenario",), "must be an array of tables: write each overlay as [[scenario]]")
    if not isinstance(sc_list, list):
        raise ctx.fail(("scenario",), "must be an array of tables ([[scenario]])", sc_list)
    for i, sc_t in enumerate(sc_list):
        path = ("scenario", i)
        if not isinstance(sc_t, Mapping):
            raise ctx.fail(path, f"must be a table, not {type_name(sc_t)}", sc_t)
        sc = section_fields(ctx, sc_t, path, "scenario")
        scenarios.append(scenario_rules(ctx, path, sc, sc_t, run, market, strategy))
        if sc["kind"] == "withdrawals_frozen" and sum(s.kind == "withdrawals_frozen" for s in scenarios) > 1:
            raise ctx.fail(path + ("kind",), "one withdrawals_frozen scenario per run (merge the freezes into one)",
                           sc_t["kind"])

    # -- [episodes] (read by backtest/episodes.py; not part of the config hash)
    ep_t = read_table(ctx, data, ("episodes",))
    episodes = EpisodesConfig(**section_fields(ctx, ep_t, ("episodes",), "episodes"))

    # -- [montecarlo] (the paths every configuration runs on; not part of the config hash)
    montecarlo = None
    if "montecarlo" in data:
        mc_t = read_table(ctx, data, ("montecarlo",))
        montecarlo = montecarlo_rules(ctx, section_fields(ctx, mc_t, ("montecarlo",), "montecarlo"), mc_t)

    return Config(run=run, market=market, strategy=strategy, costs=costs, scenarios=tuple(scenarios),
                  sweep=dict(sweep), source=source, raw=dict(data), episodes=episodes, montecarlo=montecarlo)


def montecarlo_rules(ctx: Context, f: dict, table: Mapping) -> MonteCarloConfig:
    """path names one of the paths; vary_borrow_rate is "borrow_rate" in resample (both spellings agree)."""
    if f.get("path") is not None and f["path"] >= f["paths"]:
        raise ctx.fail(("montecarlo", "path"), f"must be a path id from 0 to {f['paths'] - 1} "
                                               f"(montecarlo.paths = {f['paths']})", table["path"])
    resample = f.get("resample", MonteCarloConfig.resample)
    if f.get("vary_borrow_rate") is False and "borrow_rate" in resample:
        raise ctx.fail(("montecarlo", "vary_borrow_rate"), 'is false but montecarlo.resample lists "borrow_rate"; '
                                                           "drop one of the two", False)
    if f.get("vary_borrow_rate") and "borrow_rate" not in resample:
        resample = tuple(resample) + ("borrow_rate",)
    f["resample"] = tuple(resample)
    f["vary_borrow_rate"] = "borrow_rate" in resample
    return MonteCarloConfig(**f)
