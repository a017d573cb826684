"""[[strategy.collateral]]: several collaterals against one debt (a multi-collateral position).

Each leg names a token and its weight, the share of every buy (the capital, each loop's borrow, a
releverage) that goes into it. The rules: weights > 0 that sum to 1 (within 1e-9), distinct tokens, at most
MAX_LEGS legs, and a venue that can hold them: a Morpho Blue market has exactly one collateral (its
MarketParams.collateralToken), so it takes one leg only. Restaking (strategy.restake) and reward valuation
([strategy.rewards]) follow one held token and are refused with several legs for now. One leg is the short
form: it is folded into market.collateral.
"""
from __future__ import annotations

import math
from dataclasses import replace
from typing import Any, Mapping

from backtest import venues as _venues
from backtest.config.fields import Context, type_name
from backtest.config.schema import section_fields
from backtest.config_types import CollateralLeg, MarketConfig

MAX_LEGS = 4            # the kernel's fixed per-leg arrays (ext/_legs.pxi)
WEIGHT_SUM_TOL = 1e-9


def read_legs(ctx: Context, strat_t: Mapping) -> tuple[CollateralLeg, ...]:
    """The [[strategy.collateral]] tables as legs, each read against its schema (token, weight)."""
    if "collateral" not in strat_t:
        return ()
    path = ("strategy", "collateral")
    v = strat_t["collateral"]
    if isinstance(v, Mapping):
        raise ctx.fail(path, "must be an array of tables: write each collateral as [[strategy.collateral]] "
                             "with token and weight")
    if not isinstance(v, list) or not v:
        raise ctx.fail(path, "must be a non-empty array of tables ([[strategy.collateral]] with token and weight)",
                       v)
    legs = []
    for i, t in enumerate(v):
        p = path + (i,)
        if not isinstance(t, Mapping):
            raise ctx.fail(p, f"must be a table, not {type_name(t)}", t)
        f = section_fields(ctx, t, p, "strategy.collateral")
        legs.append(CollateralLeg(token=f["token"], weight=float(f["weight"])))
    return tuple(legs)


def collateral_rules(ctx: Context, legs: tuple[CollateralLeg, ...], strat_t: Mapping, market_t: Mapping,
                     market: MarketConfig, s: dict[str, Any]) -> tuple[tuple[CollateralLeg, ...], MarketConfig]:
    """Check the legs; return (the legs of a multi-collateral position or (), the market with market.collateral
    set to the first leg's token)."""
    if not legs:
        return (), market
    path = ("strategy", "collateral")
    raw = strat_t["collateral"]
    if len(legs) > MAX_LEGS:
        raise ctx.fail(path + (MAX_LEGS,), f"at most {MAX_LEGS} collateral legs; this position names {len(legs)}")
    seen: dict[str, int] = {}
    for i, leg in enumerate(legs):
        if not leg.token.strip() or leg.token != leg.token.strip():
            raise ctx.fail(path + (i, "token"), "must be a token symbol such as \"weETH\"", raw[i]["token"])
        if leg.token in seen:
            raise ctx.fail(path + (i, "token"), f"names the same collateral as strategy.collateral[{seen[leg.token]}]"
                                                f"; each leg holds a distinct token", raw[i]["token"])
        seen[leg.token] = i
        if leg.token == market.debt:
            raise ctx.fail(path + (i, "token"), f"is the debt asset (market.debt = {market.debt!r})", raw[i]["token"])
    total = math.fsum(leg.weight for leg in legs)
    if abs(total - 1.0) > WEIGHT_SUM_TOL:
        raise ctx.fail(path + (len(legs) - 1, "weight"),
                       f"the weights of strategy.collateral sum to {total!r}; they must sum to 1 (within "
                       f"{WEIGHT_SUM_TOL:g})", raw[-1]["weight"])
    first = legs[0].token
    if "collateral" in market_t and market_t["collateral"] != first:
        raise ctx.fail(("market", "collateral"), f"[[strategy.collateral]] names the collaterals; market.collateral "
                                                 f"must be left out or be the first leg's token ({first!r})",
                       market_t["collateral"])
    market = replace(market, collateral=first)
    if len(legs) == 1:
        return (), market                           # the short form
    one_only = _venues.venue(market.protocol).one_collateral
    if one_only:
        raise ctx.fail(path + (1,), one_only)
    if s.get("restake", "none") != "none":
        raise ctx.fail(("strategy", "restake"), "restaking follows one held token: it cannot be combined with "
                                                "several [[strategy.collateral]] legs yet", strat_t["restake"])
    if "rewards" in strat_t:
        raise ctx.fail(("strategy", "rewards"), "reward valuation follows one held token: it cannot be combined "
                                                "with several [[strategy.collateral]] legs yet")
    if market.capo_growth is not None:
        raise ctx.fail(("market", "capo_growth"), "is one CAPO growth for several collaterals; with "
                                                  "[[strategy.collateral]] each leg takes its token's default",
                       market_t.get("capo_growth"))
    return legs, market
