"""Morpho's AdaptiveCurveIRM applied to an aligned market (above the data layer: it runs in the kernel)."""
from __future__ import annotations

import datetime as _dt

import numpy as np

from backtest.data.market import Market
from backtest.errors import DataError

IRM_INITIAL_RATE = 0.04     # AdaptiveCurveIrm ConstantsLib.INITIAL_RATE_AT_TARGET (4 %/yr)


def apply_irm(market: Market, rate_at_target0: float = IRM_INITIAL_RATE) -> Market:
    """Morpho's AdaptiveCurveIRM as a market-level precomputation: the borrow APR charged from each block to
    the next, from the utilisation path (after the overlays), added to what ``borrow_apr`` already holds (0,
    or a ``rate_spike`` overlay on top of the IRM). The rate at target starts at ``rate_at_target0``.
    Runs in the core (``backtest._core.adaptive_curve_rates``); ``backtest.reference.adaptive_curve_rates`` is
    the same model in plain Python, and tests/unit/test_venues.py keeps the two equal."""
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
    return Market(**kw, series=list(market.series), data_hash=market.data_hash)
