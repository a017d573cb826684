"""Step 2 of the replay: how the reserve indices grow per accrual, by the venue's rate model (its record's
``growth``), and Morpho's AdaptiveCurveIRM (the one plain-Python model, in ``backtest.irm``)."""
from __future__ import annotations

from backtest.irm import (  # noqa: F401  (re-exported: the IRM is part of the spec)
    IRM_INITIAL_RATE as IRM_INITIAL_RT,
    IRM_MAX_RT,
    IRM_MIN_RT,
    IRM_SPEED,
    IRM_STEEPNESS,
    IRM_TARGET_U,
    adaptive_curve_rates,
    irm_curve,
    irm_err,
    irm_new_rate_at_target,
    irm_step,
)
from backtest.reference.state import Y
from backtest.schema import PROTOCOL_NAMES
from backtest.venues import venue


def aave_borrow_growth(rate: float, dt: float) -> float:
    """Aave MathUtils.calculateCompoundedInterest: 1 + rt/Y + t(t-1)(r/Y)^2/2 + t(t-1)(t-2)(r/Y)^3/6."""
    if dt <= 0:
        return 1.0
    rps = rate / Y
    return 1.0 + rps * dt + dt * (dt - 1.0) * rps * rps / 2.0 + dt * (dt - 1.0) * (dt - 2.0) * rps * rps * rps / 6.0


def aave_supply_growth(rate: float, dt: float) -> float:
    """Aave MathUtils.calculateLinearInterest: 1 + rt/Y."""
    if dt <= 0:
        return 1.0
    return 1.0 + rate * dt / Y


def morpho_borrow_growth(rate: float, dt: float) -> float:
    """Morpho Blue MathLib.wTaylorCompounded: 1 + x + x^2/2 + x^3/6, x = rate * dt / Y (e^x to 3 terms)."""
    if dt <= 0:
        return 1.0
    x = rate * dt / Y
    return 1.0 + x + x * x / 2.0 + x * x * x / 6.0


def linear_growth(rate: float, dt: float) -> float:
    """Compound III accruedInterestIndices: index += index * rate * dt (simple interest per accrual)."""
    if dt <= 0:
        return 1.0
    return 1.0 + rate * dt / Y


BORROW_GROWTH = {"binomial": aave_borrow_growth, "taylor": morpho_borrow_growth, "linear": linear_growth}


def index_growth(protocol: int, supply_apr: float, borrow_apr: float, dt: float) -> tuple[float, float]:
    """(supply index growth of the collateral, borrow index growth of the debt) over dt seconds, by the
    venue's rate model (Venue.growth: Aave family and generic linear / binomial, Morpho none / Taylor, Comet
    none / linear, Aave v4 linear / linear drawn index)."""
    supply, borrow = venue(PROTOCOL_NAMES[protocol]).growth
    gs = 1.0 if supply == "none" else aave_supply_growth(supply_apr, dt)
    return gs, BORROW_GROWTH[borrow](borrow_apr, dt)


def supply_increment(protocol: int, supply_apr: float, dt: float) -> float:
    """gs - 1 computed directly (1 + 1e-10 minus 1 keeps only ~6 digits): the supply yield per token."""
    if not venue(PROTOCOL_NAMES[protocol]).supply_yield or dt <= 0:
        return 0.0
    return supply_apr * dt / Y

