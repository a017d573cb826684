"""Transcendental functions that give the same bits on every x86-64 machine.

NumPy picks its float64 ``exp`` / ``log`` / ``power`` loops by CPU at import: with AVX-512 it runs its own SIMD
code, elsewhere the C library's. The two differ in the last bit for some inputs, so a lake, a derived rate or a
Monte Carlo path written on one machine had other bytes on another (the pinned outputs of six cases moved when
the project changed machines). These call the C library's functions element by element (``math`` is a thin
wrapper over them): ~0.2 µs an element, used where the result is stored or pinned, never in the core's loop.
"""
from __future__ import annotations

import math

import numpy as np

def _exp1(x: float) -> float:
    try:
        return math.exp(x)
    except OverflowError:           # NumPy's answer past the float range
        return math.inf


def _log1(x: float) -> float:
    if x > 0 or x != x:             # positive or NaN: the C library's log
        return math.log(x)
    return -math.inf if x == 0 else math.nan


def _pow1(b: float, e: float) -> float:
    try:
        return math.pow(b, e)
    except (OverflowError, ValueError):     # out of range, 0 to a negative power, a negative base to a fraction:
        with np.errstate(all="ignore"):     # NumPy's inf / nan (no last-bit question there)
            return float(np.power(b, e))


_exp = np.frompyfunc(_exp1, 1, 1)
_log = np.frompyfunc(_log1, 1, 1)
_pow = np.frompyfunc(_pow1, 2, 1)


def _floats(values) -> np.ndarray:
    return np.asarray(values, dtype=np.float64)


def exp(x) -> np.ndarray:
    """``e ** x`` per element (float64), the C library's result whatever the CPU."""
    a = _floats(x)
    return _exp(a).astype(np.float64) if a.ndim else np.float64(_exp1(float(a)))


def log(x) -> np.ndarray:
    """Natural logarithm per element (float64): -inf at 0 and NaN below, as NumPy gives."""
    a = _floats(x)
    return _log(a).astype(np.float64) if a.ndim else np.float64(_log1(float(a)))


def power(base, exponent) -> np.ndarray:
    """``base ** exponent`` per element (float64, broadcast), the C library's ``pow``."""
    b, e = np.broadcast_arrays(_floats(base), _floats(exponent))
    return _pow(b, e).astype(np.float64) if b.ndim else np.float64(_pow1(float(b), float(e)))


def _log1p1(x: float) -> float:
    if x > -1.0 or x != x:
        return math.log1p(x)
    return -math.inf if x == -1.0 else math.nan


_log1p = np.frompyfunc(_log1p1, 1, 1)
_expm1 = np.frompyfunc(lambda x: math.inf if x > 709.78 else math.expm1(x), 1, 1)


def log1p(x) -> np.ndarray:
    """``log(1 + x)`` per element, exact near 0 (the C library's log1p); -inf at -1, NaN below."""
    a = _floats(x)
    return _log1p(a).astype(np.float64) if a.ndim else np.float64(_log1p1(float(a)))


def expm1(x) -> np.ndarray:
    """``exp(x) - 1`` per element, exact near 0 (the C library's expm1)."""
    a = _floats(x)
    return _expm1(a).astype(np.float64) if a.ndim else np.float64(_expm1(float(a)))
