"""``[[scenario]]`` overlays on an aligned market: their shapes in time and what each kind moves."""
from __future__ import annotations

from typing import Sequence

import numpy as np

from backtest.data.request import Scenario
from backtest.data.asof import same_asset
from backtest.data.market import Market
from backtest.errors import DataError


def scenario_shape(ts: np.ndarray, at: int, duration: int, shape: str) -> np.ndarray:
    """The overlay's weight s(t) in [0, 1] at times ``ts``.

    ``step``: 1 on ``[at, at + duration)``, else 0. ``v``: 0 at ``at``, rising linearly to 1 at
    ``at + duration/2`` and back to 0 at ``at + duration``; 0 outside.
    """
    t = np.asarray(ts, dtype=np.float64)
    s = np.zeros(t.shape, dtype=np.float64)
    if duration <= 0:
        return s
    if shape == "step":
        s[(t >= at) & (t < at + duration)] = 1.0
    elif shape == "v":
        half = duration / 2.0
        s = np.clip(1.0 - np.abs(t - (at + half)) / half, 0.0, 1.0)
    else:
        raise DataError(f"unknown scenario shape {shape!r} (v | step)")
    return s


def apply_scenarios(market: Market, scenarios: Sequence[Scenario], collateral: str | None = None,
                    debt: str | None = None, hold: str | None = None) -> Market:
    """Apply ``[[scenario]]`` overlays; returns a new Market (the input's arrays are not modified).

    ``depeg`` multiplies the market price by ``1 - depth * s(t)``; ``rate_spike`` adds ``depth`` to the
    borrow APR during ``[at, at + duration)`` (its ``shape`` is ignored); ``utilization`` adds
    ``depth * s(t)`` to the utilisation (capped at 1), the input of Morpho's AdaptiveCurveIRM. When ``collateral`` / ``debt`` are
    given, a depeg applies only to the collateral and a rate spike only to the debt asset (ETH = WETH);
    others are skipped. Only ``Market.price`` moves under a depeg (not ``oracle_feed``), and
    ``Market.hold_price`` when the depeg's asset is the hold benchmark's token ``hold`` (default: the
    collateral; with a restaked LRT it is the base LST, so a depeg of the LRT leaves the benchmark alone).
    """
    if not scenarios:
        return market
    price = market.price.copy()
    hold_price = market.hold_price.copy()
    hold = hold if hold is not None else collateral
    borrow = market.borrow_apr.copy()
    util = market.utilization.copy()
    for sc in scenarios:
        if sc.kind == "depeg":
            on_price = collateral is None or same_asset(sc.asset, collateral)
            on_hold = hold is None or same_asset(sc.asset, hold)
            if not (on_price or on_hold):
                continue
            lo, hi = np.searchsorted(market.ts, [sc.at, sc.at + sc.duration], side="left")
            if hi > lo:
                s = scenario_shape(market.ts[lo:hi], sc.at, sc.duration, sc.shape)
                if on_price:
                    price[lo:hi] *= 1.0 - sc.depth * s
                if on_hold:
                    hold_price[lo:hi] *= 1.0 - sc.depth * s
        elif sc.kind == "rate_spike":
            if debt is not None and not same_asset(sc.asset, debt):
                continue
            lo, hi = np.searchsorted(market.ts, [sc.at, sc.at + sc.duration], side="left")
            borrow[lo:hi] += sc.depth
        elif sc.kind == "utilization":
            if debt is not None and not same_asset(sc.asset, debt):
                continue
            lo, hi = np.searchsorted(market.ts, [sc.at, sc.at + sc.duration], side="left")
            if hi > lo:
                s = scenario_shape(market.ts[lo:hi], sc.at, sc.duration, sc.shape)
                util[lo:hi] = np.minimum(util[lo:hi] + sc.depth * s, 1.0)
        else:
            raise DataError(f"unknown scenario kind {sc.kind!r} (depeg | rate_spike | utilization)")
    kw = {name: getattr(market, name) for name in Market.ARRAYS}
    kw["price"] = price
    kw["hold_price"] = hold_price
    kw["borrow_apr"] = borrow
    kw["utilization"] = util
    return Market(**kw, series=list(market.series), data_hash=market.data_hash, derived=dict(market.derived))
