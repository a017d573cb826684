"""``[[scenario]]`` overlays on an aligned market: their shapes in time and what each kind moves.

Overlays stack: they apply in the order the config lists them, each to the arrays the previous ones left, so a
``rate_spike`` with ``level`` after a ``multiple`` sets the level, and two depegs multiply. What each kind moves
(``s(t)`` is the weight of :func:`scenario_shape`, 0 outside the overlay):

=================  ==========================================================================================
kind               effect
=================  ==========================================================================================
depeg              market price (and the hold benchmark's when it is that token) x ``1 - depth * s(t)``
rate_spike         borrow APR on ``[at, at + duration)`` (a step): ``+ depth``, ``= level`` or ``x multiple``
utilization        utilisation ``+ depth * s(t)`` (capped at 1). Morpho (AdaptiveCurveIRM): the IRM reads it.
                   Aave (``market.irm = "data"``): the borrow APR moves along the reserve's own dated rate curve
                   (:func:`backtest.venues.aave_v3.curve_rate`): ``+ curve(u + du) - curve(u)`` with ``u`` the
                   lake's utilisation, so a supply drain past the kink meets slope2
slash              the exchange rate and the market price x ``1 - depth`` from the first block at or after ``at``
                   (one cut, recorded in ``Market.slash``; the market reprices the token at its new value)
gas_spike          gas price: ``+ depth * s(t)`` gwei, ``-> level`` gwei or ``x multiple`` (weighted by s(t))
oracle             the protocol oracle's price, in every oracle mode, x ``1 - depth * s(t)`` (a dated offset)
capo_snapshot      a governance-set CAPO snapshot on ``[at, at + duration)``: cap = ratio x (1 + growth x (t -
                   snapshot_at) / Y) replaces the snapshot rule's cap (ratio = the exchange rate at ``at`` x
                   ``1 - depth`` unless given), as on 10 Mar 2026 when a snapshot set below the rate priced wstETH
                   2.85 % under it (PROTOCOLS.md)
withdrawals_frozen no queue request is served on ``[at, at + duration)``: a queue exit requested then waits until
                   the freeze ends, then its delay (the engines' ``queue_frozen_from`` / ``queue_frozen_until``
                   parameters, set by ``backtest.engine``; one freeze per run; ezETH had no withdrawals in Apr 2024)
=================  ==========================================================================================

Shapes: ``step`` 1 on the duration; ``v`` down to full depth at mid-duration and back; ``linear`` a straight
fall from 0 at ``at`` to full depth at ``at + duration``. ``recovery`` (step / linear) then fades the overlay
linearly to 0 over that many seconds.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from backtest.data.asof import same_asset
from backtest.data.market import Market
from backtest.data.request import Scenario
from backtest.errors import DataError

Y = 365 * 86400
SHAPES = ("v", "step", "linear")


def scenario_shape(ts: np.ndarray, at: int, duration: int, shape: str, recovery: int = 0) -> np.ndarray:
    """The overlay's weight s(t) in [0, 1] at times ``ts``.

    ``step``: 1 on ``[at, at + duration)``. ``v``: 0 at ``at``, rising linearly to 1 at ``at + duration/2`` and
    back to 0 at ``at + duration``. ``linear``: ``(t - at) / duration`` on ``[at, at + duration)``. With
    ``recovery`` (step and linear), 1 at ``at + duration`` falling linearly to 0 at ``at + duration + recovery``.
    0 elsewhere."""
    t = np.asarray(ts, dtype=np.float64)
    s = np.zeros(t.shape, dtype=np.float64)
    if duration <= 0:
        return s
    end = at + duration
    if shape == "step":
        s[(t >= at) & (t < end)] = 1.0
    elif shape == "v":
        if recovery:
            raise DataError("a v-shaped scenario recovers within its duration: recovery needs shape step or linear")
        half = duration / 2.0
        s = np.clip(1.0 - np.abs(t - (at + half)) / half, 0.0, 1.0)
    elif shape == "linear":
        on = (t >= at) & (t < end)
        s[on] = (t[on] - at) / duration
    else:
        raise DataError(f"unknown scenario shape {shape!r} ({' | '.join(SHAPES)})")
    if recovery > 0:
        back = (t >= end) & (t < end + recovery)
        s[back] = 1.0 - (t[back] - end) / recovery
    return s


def _span(market: Market, sc: Scenario) -> tuple[int, int]:
    """The blocks the overlay can touch: ``[at, at + duration + recovery)``."""
    lo, hi = np.searchsorted(market.ts, [sc.at, sc.at + sc.duration + sc.recovery], side="left")
    return int(lo), int(hi)


def apply_scenarios(market: Market, scenarios: Sequence[Scenario], collateral: str | None = None,
                    debt: str | None = None, hold: str | None = None, protocol: str | None = None,
                    irm: str = "data") -> Market:
    """Apply ``[[scenario]]`` overlays in their order; returns a new Market (the input's arrays are not modified).

    When ``collateral`` / ``debt`` are given, an overlay on the collateral (depeg, slash, oracle, capo_snapshot)
    applies only to that token and one on the debt (rate_spike, utilization) only to the
    debt asset (ETH = WETH); others are skipped (a leg's overlays are that leg's). A depeg moves only
    ``Market.price`` (not ``oracle_feed``) and ``Market.hold_price`` when the depeg's asset is the hold
    benchmark's token ``hold`` (default: the collateral; with a restaked LRT it is the base LST). ``protocol`` /
    ``irm`` choose how a utilization overlay reaches the borrow rate (module docstring)."""
    if not scenarios:
        return market
    out = {name: getattr(market, name) for name in Market.ARRAYS}
    copied: set[str] = set()

    def arr(name: str) -> np.ndarray:
        if name not in copied:
            out[name] = np.array(out[name], dtype=np.float64, copy=True)
            copied.add(name)
        return out[name]

    hold = hold if hold is not None else collateral
    ts = market.ts
    for sc in scenarios:
        on_coll = collateral is None or same_asset(sc.asset, collateral)
        on_debt = debt is None or same_asset(sc.asset, debt)
        lo, hi = _span(market, sc)
        if sc.kind == "depeg":
            on_hold = hold is None or same_asset(sc.asset, hold)
            if hi > lo and (on_coll or on_hold):
                f = 1.0 - sc.depth * scenario_shape(ts[lo:hi], sc.at, sc.duration, sc.shape, sc.recovery)
                if on_coll:
                    arr("price")[lo:hi] *= f
                if on_hold:
                    arr("hold_price")[lo:hi] *= f
        elif sc.kind == "rate_spike":
            if on_debt:
                _rate_spike(arr("borrow_apr"), lo, hi, sc)
        elif sc.kind == "utilization":
            if on_debt and hi > lo:
                _utilization(arr, ts, lo, hi, sc, protocol, debt, irm)
        elif sc.kind == "slash":
            if sc.depth is None or not 0 < sc.depth < 1:
                raise DataError(f"scenario slash of {sc.asset}: depth {sc.depth!r} must be a fraction in (0, 1)")
            b = int(np.searchsorted(ts, sc.at, side="left"))
            if b < ts.shape[0]:
                targets = (("xrate", "price", "slash") if on_coll else ()) + (
                    ("hold_xrate", "hold_price") if hold is not None and same_asset(sc.asset, hold)
                    and not (collateral is not None and same_asset(hold, collateral)) else ())
                for name in targets:
                    if name == "slash":
                        arr("slash")[b] = 1.0 - (1.0 - arr("slash")[b]) * (1.0 - sc.depth)
                    else:
                        arr(name)[b:] *= 1.0 - sc.depth
        elif sc.kind == "gas_spike":
            if hi > lo:
                s = scenario_shape(ts[lo:hi], sc.at, sc.duration, sc.shape, sc.recovery)
                g = arr("gas_gwei")
                if sc.level is not None:
                    g[lo:hi] += s * (sc.level - g[lo:hi])
                elif sc.multiple is not None:
                    g[lo:hi] *= 1.0 + (sc.multiple - 1.0) * s
                else:
                    g[lo:hi] += sc.depth * s
        elif sc.kind == "oracle":
            if on_coll and hi > lo:
                arr("oracle_scale")[lo:hi] *= 1.0 - sc.depth * scenario_shape(ts[lo:hi], sc.at, sc.duration,
                                                                              sc.shape, sc.recovery)
        elif sc.kind == "capo_snapshot":
            if on_coll and hi > lo:
                _capo_snapshot(arr("oracle_cap"), market, lo, hi, sc)
        elif sc.kind == "withdrawals_frozen":
            pass            # a replay parameter, not a market series (the engines' queue_frozen_from / until)
        else:
            raise DataError(f"unknown scenario kind {sc.kind!r}")
    return Market(**out, series=list(market.series), data_hash=market.data_hash, derived=dict(market.derived))


def _rate_spike(borrow: np.ndarray, lo: int, hi: int, sc: Scenario) -> None:
    """``+ depth``, ``= level`` or ``x multiple`` on ``[at, at + duration)`` (a step: the spike's shape is not
    used)."""
    if sc.level is not None:
        borrow[lo:hi] = sc.level
    elif sc.multiple is not None:
        borrow[lo:hi] *= sc.multiple
    else:
        borrow[lo:hi] += sc.depth


def _utilization(arr, ts: np.ndarray, lo: int, hi: int, sc: Scenario, protocol: str | None, debt: str | None,
                 irm: str) -> None:
    s = scenario_shape(ts[lo:hi], sc.at, sc.duration, sc.shape, sc.recovery)
    util = arr("utilization")
    u0 = util[lo:hi].copy()
    u1 = np.minimum(u0 + sc.depth * s, 1.0)
    if irm == "data" and protocol is not None:   # the venue's dated curve (aave_v3.RATE_CURVES; else an error)
        if not np.all(np.isfinite(u0)):
            i = lo + int(np.argmax(~np.isfinite(u0)))
            raise DataError(f"rates {protocol}:{debt}:utilization: no value at block {i} (ts {int(ts[i])}); a "
                            "utilization overlay on an Aave reserve moves its rate along the curve from the lake's "
                            "utilisation")
        # imported here: the venue module holds the curve, the data layer only applies it
        from backtest.venues.aave_v3 import curve_rate
        asset = debt if debt is not None else sc.asset
        t = ts[lo:hi]
        arr("borrow_apr")[lo:hi] += curve_rate(protocol, asset, t, u1) - curve_rate(protocol, asset, t, u0)
    util[lo:hi] = u1


def _capo_snapshot(cap: np.ndarray, market: Market, lo: int, hi: int, sc: Scenario) -> None:
    if sc.growth is None:
        raise DataError(f"scenario capo_snapshot of {sc.asset}: no CAPO growth (set market.capo_growth)")
    ratio = sc.ratio if sc.ratio is not None else float(market.xrate[lo]) * (1.0 - sc.depth)
    snap_ts = sc.snapshot_at if sc.snapshot_at is not None else sc.at
    t = market.ts[lo:hi].astype(np.float64)
    cap[lo:hi] = ratio * (1.0 + sc.growth * (t - snap_ts) / Y)
