"""Paths: market variants the core replays as a second axis beside the configurations.

A path varies one series, the collateral's price, by a multiplicative factor sampled at the series' own
resolution: ``price_factor[k, s]`` is path k's factor on sample s, and block b reads sample ``sample_idx[b]``
(non-decreasing, from the block times and the sample interval), so a path costs one row of samples, not a
copy of the market. The factor multiplies the market (DEX) price, the oracle feed and, when the hold token is
the collateral, the hold benchmark's price: the oracle price follows wherever the lane's oracle reads the
market price or the feed; an exchange-rate or CAPO oracle does not move with a de-peg (as on-chain).
A factor of exactly 1.0 everywhere reproduces the plain run bit for bit (x * 1.0 == x).

A path may also vary the debt's borrow rate: ``borrow_delta[k, s]`` is added to the market's borrow APR
(floored at 0) at every block of sample s. The core's one-pass paths kernel varies the price only, so paths
with a borrow delta are replayed one path at a time on the path's market built explicitly (scale_market:
the borrow index and every lane are rebuilt per path, O(blocks) memory, configurations of a path in one
core pass); a delta of exactly 0.0 is the plain run bit for bit (x + 0.0 == x).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from backtest.errors import DataError


@dataclass
class Paths:
    sample_idx: np.ndarray      # int64 [block] -> sample, non-decreasing
    price_factor: np.ndarray    # f8 [path, sample]: multiplier on the collateral's price (1.0 = unchanged)
    borrow_delta: np.ndarray | None = None   # f8 [path, sample]: apr added to the borrow rate (0.0 = unchanged)

    def __post_init__(self) -> None:
        if self.borrow_delta is not None:
            self.borrow_delta = np.ascontiguousarray(np.atleast_2d(self.borrow_delta), dtype=np.float64)
            if self.borrow_delta.shape != np.atleast_2d(self.price_factor).shape:
                raise DataError("paths: borrow_delta must have price_factor's shape [paths, samples]")
            if not np.all(np.isfinite(self.borrow_delta)):
                raise DataError("paths: borrow_delta must be finite (an apr offset)")
        self.sample_idx = np.ascontiguousarray(self.sample_idx, dtype=np.int64)
        self.price_factor = np.ascontiguousarray(np.atleast_2d(self.price_factor), dtype=np.float64)
        si, f = self.sample_idx, self.price_factor
        if si.ndim != 1 or f.ndim != 2 or f.shape[0] == 0 or f.shape[1] == 0:
            raise DataError("paths: sample_idx must be 1-D and price_factor [paths, samples] non-empty")
        if len(si) and (si[0] < 0 or si[-1] >= f.shape[1] or np.any(np.diff(si) < 0)):
            raise DataError(f"paths: sample_idx must be non-decreasing in 0..{f.shape[1] - 1}")
        bad = np.argwhere(~(np.isfinite(f) & (f > 0)))
        if len(bad):
            k, s = (int(x) for x in bad[0])
            raise DataError(f"paths: price_factor[{k}, {s}] = {f[k, s]!r} is not a positive finite factor")

    @property
    def n_paths(self) -> int:
        return int(self.price_factor.shape[0])

    @classmethod
    def from_times(cls, ts: np.ndarray, interval: int, price_factor: np.ndarray) -> "Paths":
        """Samples every `interval` seconds from the first block: block b reads (ts[b] - ts[0]) // interval."""
        ts = np.asarray(ts, dtype=np.int64)
        if interval <= 0:
            raise DataError(f"paths: the sample interval must be > 0 seconds, got {interval}")
        return cls((ts - ts[0]) // int(interval), price_factor)

    def block_factor(self, k: int) -> np.ndarray:
        """Path k's factor at every block (what the reference engine multiplies the market by)."""
        return self.price_factor[k][self.sample_idx]


def scale_market(market, paths: Paths, k: int, scale_hold: bool):
    """The market of path k built explicitly: price and oracle feed (and the hold price when scale_hold)
    times the path's factor at each block. The reference engine replays it; the core never builds it."""
    import copy

    g = paths.block_factor(k)
    out = copy.copy(market)     # a shallow copy keeps every other array and attribute (CAPO points, legs)
    out.price = market.price * g
    out.oracle_feed = market.oracle_feed * g
    out.hold_price = market.hold_price * g if scale_hold else market.hold_price
    if paths.borrow_delta is not None:
        out.borrow_apr = np.maximum(market.borrow_apr + paths.borrow_delta[k][paths.sample_idx], 0.0)
    return out


def hold_follows_price(market) -> bool:
    """The hold benchmark's token is the collateral (no restaking): its price is the collateral's."""
    return bool(np.array_equal(market.hold_price, market.price) and np.array_equal(market.hold_xrate,
                                                                                    market.xrate))
