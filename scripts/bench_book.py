#!/usr/bin/env python
"""The strategy book's kernels: blocks per second over one year of 12-second blocks (2,628,000), per kind.

    python scripts/bench_book.py [--repeat 3] [--reference-blocks 20000]

Synthetic arrays (a de-pegging pool, a crashing vault market, a 4-token basket, a decaying farm); prints the
best of --repeat wall times of the core and the reference engine's rate on a shorter window (both engines
give identical results, tests/unit/test_differential_book.py).
"""
from __future__ import annotations

import argparse
import time

import numpy as np

from backtest import _core
from backtest import reference_book as ref
from backtest.venues import growth_codes

N = 2_628_000


def inputs(n: int):
    rng = np.random.default_rng(0)
    ts = (1_700_000_000 + 12 * np.arange(n)).astype(np.int64)
    walk = np.sin(np.cumsum(rng.normal(0, 0.001, n)))
    r0 = 3e5 * (1.2 + walk)
    r1 = 3e5 * (1.2 - walk)
    vp = 1.0 + np.linspace(0, 0.02, n)
    amp = np.full(n, 50.0)
    px = 0.97 + 0.02 * walk
    gas = np.full(n, 20.0)
    orc = 1.15 * np.cumprod(np.full(n, 1 + 1e-9))
    prices = np.ascontiguousarray(np.stack([3000 * (1.1 + walk * k / 10) for k in range(1, 5)]))
    natives = np.ascontiguousarray(prices * 0.99)
    return {
        "lp": (r0, r1, vp, amp, px, gas, 100.0, 3e5, 2e5),
        "vault": (ts, orc * px, orc, np.full(n, 0.001), np.full(n, 0.025), np.full(n, 0.95), np.full(n, 0.01), gas,
                  np.array([0, 1, 100.0, 0.8, 0.02, 86400, 1e-4, 6e5, 4e5, 5e5, 0.02, 0.1, *growth_codes("aave-v3")])),
        "basket": (ts, prices, natives, np.full(4, 0.25), 1000.0, 5e-4, 30 * 86400),
        "farm": (ts, np.ones(n), np.full(n, 0.01 / 86400), np.linspace(2, 0.5, n), 1000.0, 3e-3, 14 * 86400.0,
                 86400, 180 * 86400),
    }


def best(f, args, repeat):
    t = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        f(*args)
        t.append(time.perf_counter() - t0)
    return min(t)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--reference-blocks", type=int, default=20000)
    a = ap.parse_args()
    full, short = inputs(N), inputs(a.reference_blocks)
    for kind in ("lp", "vault", "basket", "farm"):
        fn = f"book_{kind}"
        tc = best(getattr(_core, fn), full[kind], a.repeat)
        tr = best(getattr(ref, fn), short[kind], 1)
        print(f"{kind:7s} core: {N:,} blocks in {tc:.3f} s = {N / tc:.3g} blocks/s; "
              f"reference: {a.reference_blocks / tr:.3g} blocks/s")


if __name__ == "__main__":
    main()
