"""Transcendental functions that give the same bits on every x86-64 machine.

NumPy picks its float64 ``exp`` / ``log`` / ``power`` loops by CPU at import: with AVX-512 it runs its own SIMD
code, elsewhere the C library's. The two differ in the last bit for some inputs, so a lake, a derived rate or a
Monte Carlo path written on one machine had other bytes on another (the pinned outputs of six cases moved when
the project changed machines). These call the C library's functions element by element (``math`` is a thin
wrapper over them): ~0.2 µs an element, used where the result is stored or pinned, never in the core's loop.
Outside a function's real domain they give NumPy's answers (inf, -inf, NaN), not math's exceptions.
"""
from __future__ import annotations

import math
from typing import Callable

import numpy as np


def _exp1(x: float) -> float:
    try:
        return math.exp(x)
    except OverflowError:           # NumPy's answer past the float range
        return math.inf


def _expm11(x: float) -> float:
    try:
        return math.expm1(x)
    except OverflowError:
        return math.inf


def _log_of(fn: Callable[[float], float], zero_at: float) -> Callable[[float], float]:
    """``fn`` (log or log1p) where it is defined, -inf where its argument reaches ``zero_at``, NaN below."""
    def one(x: float) -> float:
        if x > zero_at or x != x:   # inside the domain, or NaN: the C library's answer
            return fn(x)
        return -math.inf if x == zero_at else math.nan
    return one


def _pow1(b: float, e: float) -> float:
    try:
        return math.pow(b, e)
    except (OverflowError, ValueError):     # out of range, 0 to a negative power, a negative base to a fraction:
        with np.errstate(all="ignore"):     # NumPy's inf / nan (no last-bit question there)
            return float(np.power(b, e))


def _elementwise(one: Callable[[float], float], doc: str) -> Callable:
    ufunc = np.frompyfunc(one, 1, 1)

    def apply(x):
        a = np.asarray(x, dtype=np.float64)
        return ufunc(a).astype(np.float64) if a.ndim else np.float64(one(float(a)))
    apply.__doc__ = doc
    return apply


exp = _elementwise(_exp1, "``e ** x`` per element (float64), the C library's result whatever the CPU.")
expm1 = _elementwise(_expm11, "``exp(x) - 1`` per element, exact near 0 (the C library's expm1).")
log = _elementwise(_log_of(math.log, 0.0), "Natural logarithm per element: -inf at 0 and NaN below, as NumPy.")
log1p = _elementwise(_log_of(math.log1p, -1.0), "``log(1 + x)`` per element, exact near 0; -inf at -1, NaN below.")
_pow = np.frompyfunc(_pow1, 2, 1)


def power(base, exponent) -> np.ndarray:
    """``base ** exponent`` per element (float64, broadcast), the C library's ``pow``."""
    b, e = np.broadcast_arrays(np.asarray(base, dtype=np.float64), np.asarray(exponent, dtype=np.float64))
    return _pow(b, e).astype(np.float64) if b.ndim else np.float64(_pow1(float(b), float(e)))
