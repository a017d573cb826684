"""Morpho's AdaptiveCurveIRM: applied to an aligned market (:func:`apply_irm`, in the kernel, so above the
data layer) and in plain Python (:func:`irm_step`, :func:`adaptive_curve_rates`): the one plain-Python model,
read by the synthetic lake and by the reference engine (``backtest.reference`` re-exports it)."""
from __future__ import annotations

import datetime as _dt
import math

import numpy as np

from backtest.data.market import Market
from backtest.errors import DataError

IRM_INITIAL_RATE = 0.04     # AdaptiveCurveIrm ConstantsLib.INITIAL_RATE_AT_TARGET (4 %/yr)


def apply_irm(market: Market, rate_at_target0: float = IRM_INITIAL_RATE) -> Market:
    """Morpho's AdaptiveCurveIRM as a market-level precomputation: the borrow APR charged from each block to
    the next, from the utilisation path (after the overlays), added to what ``borrow_apr`` already holds (0,
    or a ``rate_spike`` overlay on top of the IRM). The rate at target starts at ``rate_at_target0``.
    Runs in the core (``backtest._core.adaptive_curve_rates``); :func:`adaptive_curve_rates` below is the same
    model in plain Python, and tests/unit/test_venues.py keeps the two equal."""
    from backtest import _core

    u = np.ascontiguousarray(market.utilization, dtype=np.float64)
    if not np.all(np.isfinite(u)):
        i = int(np.argmax(~np.isfinite(u)))
        at = _dt.datetime.fromtimestamp(int(market.ts[i]), _dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        raise DataError(f"utilization (rates ...:utilization, or market.utilization): no value at block time {at} "
                        f"({int((~np.isfinite(u)).sum())} of {u.size} blocks); the AdaptiveCurveIRM needs one per "
                        "block")
    rate, _ = _core.adaptive_curve_rates(market.ts, u, float(rate_at_target0))
    kw = {name: getattr(market, name) for name in Market.ARRAYS}
    kw["borrow_apr"] = market.borrow_apr + rate
    return Market(**kw, series=list(market.series), data_hash=market.data_hash, derived=dict(market.derived))


# The AdaptiveCurveIRM in plain Python (morpho-org/morpho-blue-irm, ConstantsLib; per-year rates): what the
# synthetic lake generates Morpho rates with and what the reference engine replays (it lives here, not in the
# reference engine, so that synthetic data does not import the reference engine).
SECONDS_PER_YEAR = 365 * 24 * 3600
IRM_TARGET_U = 0.9
IRM_STEEPNESS = 4.0
IRM_SPEED = 50.0
IRM_MIN_RT = 0.001
IRM_MAX_RT = 2.0


def irm_err(u: float) -> float:
    """(U - 0.9) / 0.9 below the target, (U - 0.9) / 0.1 above; U clamped to [0, 1]."""
    u = min(max(u, 0.0), 1.0)
    if u > IRM_TARGET_U:
        return (u - IRM_TARGET_U) / (1.0 - IRM_TARGET_U)
    return (u - IRM_TARGET_U) / IRM_TARGET_U


def irm_curve(rate_at_target: float, err: float) -> float:
    """(0.75 err + 1) r_T below the target, (3 err + 1) r_T at or above it (steepness 4)."""
    if err < 0:
        return ((1.0 - 1.0 / IRM_STEEPNESS) * err + 1.0) * rate_at_target
    return ((IRM_STEEPNESS - 1.0) * err + 1.0) * rate_at_target


def irm_new_rate_at_target(start: float, linear_adaptation: float) -> float:
    return min(max(start * math.exp(linear_adaptation), IRM_MIN_RT), IRM_MAX_RT)


def irm_step(start_rt: float, u: float, dt: float) -> tuple[float, float]:
    """(average borrow rate over the interval, rate at target at its end): AdaptiveCurveIrm._borrowRate with
    r_T(t) = r_T exp(50 err t) bounded to [0.1 %, 200 %] and the trapezoid (start + end + 2 mid) / 4."""
    err = irm_err(u)
    lin = IRM_SPEED * err * dt / float(SECONDS_PER_YEAR)
    if lin == 0.0:
        return irm_curve(start_rt, err), start_rt
    end = irm_new_rate_at_target(start_rt, lin)
    mid = irm_new_rate_at_target(start_rt, lin / 2.0)
    return irm_curve((start_rt + end + 2.0 * mid) / 4.0, err), end


def adaptive_curve_rates(ts, utilization, rate_at_target0: float = IRM_INITIAL_RATE) -> tuple[np.ndarray, np.ndarray]:
    """The IRM along a utilisation path, one value per block: borrow[b] is the rate charged from b to b+1
    (utilisation of block b), rate_at_target[b] is r_T at b (r_T[0] = rate_at_target0); the last borrow rate
    is the curve at the last r_T (never charged)."""
    n = len(ts)
    rate = np.empty(n)
    rt = np.empty(n)
    rt[0] = rate_at_target0
    for b in range(n - 1):
        rate[b], rt[b + 1] = irm_step(float(rt[b]), float(utilization[b]), float(ts[b + 1] - ts[b]))
    rate[n - 1] = irm_curve(float(rt[n - 1]), irm_err(float(utilization[n - 1])))
    return rate, rt
