"""The market of a multi-collateral position ([[strategy.collateral]]): one aligned market per collateral token,
stacked.

A position with several collaterals against one debt needs, per collateral, its DEX price and oracle feed in the
debt asset, its exchange rate, its underlying's price, its supply APR, its risk parameters (max LTV, LT, bonus,
protocol fee) and its slashes. Everything about the debt and the chain (the clock, the borrow APR, gas, the
debt's USD price, the gas token's price) is shared. This module builds that market above the data layer: it calls
the single-collateral alignment once per leg token (same window, debt and venue; each leg's [[scenario]] depegs
applied to its own alignment only), asserts that the shared arrays are identical and returns a
:class:`LegsMarket`: a Market whose own arrays are the first leg's (so every reader of the shared arrays works
as before) plus ``legs``, the per-leg Markets.

Later, in the data layer: one alignment that reads the debt-side series once and the collateral-side series
per token (``backtest/data/build.py``), and data checks per leg.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable

import numpy as np

from backtest.config_types import Config
from backtest.data.market import Market
from backtest.errors import ConfigError, DataError

#: arrays every leg's alignment must give bit for bit alike (they describe the debt and the chain, not a leg)
SHARED = ("ts", "block", "eth_usd", "borrow_apr", "gas_gwei", "gas_token_price", "utilization")
#: per-leg arrays (the kernel stacks these [leg, block])
PER_LEG = ("price", "xrate", "underlying_price", "supply_apr", "oracle_feed", "ltv", "lt", "bonus", "pfee",
           "slash", "hold_price", "hold_xrate")


@dataclass
class LegsMarket(Market):
    """A Market (the first leg's arrays) with the per-leg Markets of a multi-collateral position."""
    legs: tuple = ()                  # tuple[Market, ...], one per collateral token, in config order
    tokens: tuple = ()                # tuple[str, ...]

    def slice(self, start: int, stop: int) -> "LegsMarket":
        parts = tuple(m.slice(start, stop) for m in self.legs)
        return legs_market(parts, self.tokens)


def n_legs(market: Market) -> int:
    """Collateral legs of the market: 1 for a plain Market."""
    return len(getattr(market, "legs", ())) or 1


def leg_tokens(cfg: Config) -> tuple[str, ...]:
    """The collateral tokens of a configuration, in order (one for the short form)."""
    legs = cfg.strategy.collateral
    return tuple(leg.token for leg in legs) if legs else (cfg.market.collateral,)


def stacked(market: Market, name: str) -> np.ndarray:
    """A per-leg array as [leg, block] (C-contiguous)."""
    return np.ascontiguousarray(np.stack([getattr(m, name) for m in market.legs]), dtype=np.float64)


def legs_market(parts: tuple[Market, ...], tokens: tuple[str, ...]) -> LegsMarket:
    """Stack per-leg Markets; the shared arrays must be identical (NaN equal to NaN)."""
    first = parts[0]
    for name in SHARED:
        a = getattr(first, name)
        for tok, m in zip(tokens[1:], parts[1:]):
            if not np.array_equal(a, getattr(m, name), equal_nan=True):
                raise DataError(f"market series {name}: the alignments for {tokens[0]} and {tok} differ; a "
                                f"multi-collateral position needs one clock, one debt and one chain")
    kw = {name: getattr(first, name) for name in Market.ARRAYS}
    series = [s for m in parts for s in m.series]
    digest = ":".join(m.data_hash for m in parts)
    out = LegsMarket(**kw, series=series, data_hash=digest, legs=tuple(parts), tokens=tuple(tokens))
    if hasattr(first, "capo_pre_ts"):
        out.capo_pre_ts, out.capo_pre_xrate = first.capo_pre_ts, first.capo_pre_xrate
    return out


def leg_config(cfg: Config, token: str) -> Config:
    """The one-collateral configuration whose alignment is leg `token`'s market: market.collateral = token, and
    of the scenarios those on the debt and this token (a depeg of another leg is that leg's)."""
    others = set(leg_tokens(cfg)) - {token}
    scen = tuple(s for s in cfg.scenarios if s.asset not in others)
    return replace(cfg, market=replace(cfg.market, collateral=token),
                   strategy=replace(cfg.strategy, collateral=()), scenarios=scen)


def align_legs(cfg: Config, align: Callable[[Config], Market]) -> Market:
    """The market of `cfg`: align() itself for one collateral, else the stacked per-leg alignments."""
    tokens = leg_tokens(cfg)
    if len(tokens) == 1:
        return align(cfg)
    parts = tuple(align(leg_config(cfg, t)) for t in tokens)
    for t, m in zip(tokens, parts):
        if np.any(m.reward != 0):
            raise DataError(f"rewards {t}: reward valuation with several collateral legs is not supported yet")
    return legs_market(parts, tokens)


def leg_weights(configs: list[Config], market: Market) -> np.ndarray:
    """[config, leg] weights in the market's leg order; every configuration must hold exactly its legs."""
    tokens = tuple(getattr(market, "tokens", ())) or None
    out = np.zeros((len(configs), n_legs(market)))
    for i, cfg in enumerate(configs):
        mine = leg_tokens(cfg)
        if tokens is None:
            out[i, 0] = 1.0
            continue
        if mine != tokens:
            raise ConfigError(f"strategy.collateral: configuration {i} holds {list(mine)}, but its market was "
                              f"aligned for {list(tokens)}")
        out[i] = [leg.weight for leg in cfg.strategy.collateral]
    return out
