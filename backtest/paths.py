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

The same route (the path's market built explicitly, one core pass per path) carries the other series a Monte
Carlo path resamples (backtest/montecarlo.py), each [path, sample]:

* ``xrate``: the path's exchange rate, held through each sample's blocks (the bootstrap's resolution is the
  sample); the market price follows it at the path's de-peg ratio (price x factor x path rate / block rate, so
  price / (rate x underlying) is the history's ratio times the factor at every block), and so do the oracle
  feed and, when the hold token is the collateral, the hold benchmark. ``slash`` is then the fraction the
  path's rate was cut by a slash at each sample's first block (0 elsewhere).
* ``usd_factor``: the path's USD price of the chain's gas token (ETH/USD) over the history's. With the gas
  token as the debt, the debt's USD price (eth_usd) follows it; with another debt (USDC), every price of the
  gas token or the collateral's underlying in the debt asset does (the market price, the feed, the hold price,
  underlying_price, gas_token_price), which needs the underlying to be the gas token (an ETH LST on Ethereum).
* ``gas_delta``: gwei added to the market's gas price (floored at 0) at every block of a sample, as the borrow
  delta: the path's level at each sample's first block, stacked on a [[scenario]] gas spike.
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
    xrate: np.ndarray | None = None          # f8 [path, sample]: the path's exchange rate (None: the market's)
    slash: np.ndarray | None = None          # f8 [path, sample]: slash cut of the path's rate at the sample's start
    usd_factor: np.ndarray | None = None     # f8 [path, sample]: the path's ETH/USD over the history's
    gas_delta: np.ndarray | None = None      # f8 [path, sample]: gwei added to the gas price (0.0 = unchanged)

    def __post_init__(self) -> None:
        shape = np.atleast_2d(self.price_factor).shape
        for name, lo in (("xrate", 0.0), ("slash", None), ("usd_factor", 0.0), ("gas_delta", None)):
            v = getattr(self, name)
            if v is None:
                continue
            v = np.ascontiguousarray(np.atleast_2d(v), dtype=np.float64)
            if v.shape != shape:
                raise DataError(f"paths: {name} must have price_factor's shape [paths, samples]")
            if not np.all(np.isfinite(v) & ((v > lo) if lo is not None else True)):
                raise DataError(f"paths: {name} must be finite{'' if lo is None else ' and > 0'}")
            setattr(self, name, v)
        if self.slash is not None and (self.xrate is None or np.any(self.slash >= 1.0) or np.any(self.slash < 0)):
            raise DataError("paths: slash goes with xrate (the path's rate it cuts) and must be in [0, 1)")
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

    @property
    def by_market(self) -> bool:
        """Whether a path varies more than the collateral's price: its market is then built explicitly."""
        return any(x is not None for x in (self.borrow_delta, self.xrate, self.usd_factor, self.gas_delta))

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
    times the path's factor at each block, and the other series the path varies (module docstring). The
    reference engine replays it; the core replays it too when the path varies more than the price."""
    import copy

    si = paths.sample_idx
    g = paths.block_factor(k)
    out = copy.copy(market)     # a shallow copy keeps every other array and attribute (CAPO points, legs)
    if paths.xrate is not None:
        xr = paths.xrate[k][si]
        g = g * (xr / market.xrate)            # the market price at the path's rate and de-peg ratio
        out.xrate = xr
        first = np.flatnonzero(np.diff(si, prepend=-1) > 0)     # each sample's first block
        out.slash = np.zeros(len(si))
        if paths.slash is not None:
            out.slash[first] = paths.slash[k][si[first]]
        if scale_hold:
            out.hold_xrate = xr
    if paths.usd_factor is not None:
        u = paths.usd_factor[k][si]
        if usd_debt(market):
            g = g * u
            out.underlying_price = market.underlying_price * u
            out.gas_token_price = market.gas_token_price * u
            if not scale_hold:
                out.hold_price = market.hold_price * u
        else:
            out.eth_usd = market.eth_usd * u
    out.price = market.price * g
    out.oracle_feed = market.oracle_feed * g
    if scale_hold:
        out.hold_price = market.hold_price * g
    elif paths.usd_factor is None or not usd_debt(market):
        out.hold_price = market.hold_price
    if paths.borrow_delta is not None:
        out.borrow_apr = np.maximum(market.borrow_apr + paths.borrow_delta[k][si], 0.0)
    if paths.gas_delta is not None:
        out.gas_gwei = np.maximum(market.gas_gwei + paths.gas_delta[k][si], 0.0)
    return out


def last_marks(market, paths: Paths, ks) -> tuple[np.ndarray, np.ndarray]:
    """(market price, exchange-rate value in the debt asset) at the last block on each path of `ks`, as
    scale_market builds them (the end-of-run invariants mark the balances with these)."""
    last = len(market) - 1
    ks = np.asarray(ks, dtype=np.int64)
    s = paths.sample_idx[last]
    g = paths.price_factor[ks, s]
    rate = np.full(len(ks), float(market.xrate[last]))
    up = np.full(len(ks), float(market.underlying_price[last]))
    if paths.xrate is not None:
        rate = paths.xrate[ks, s]
        g = g * (rate / market.xrate[last])
    if paths.usd_factor is not None and usd_debt(market):
        g = g * paths.usd_factor[ks, s]
        up = up * paths.usd_factor[ks, s]
    return market.price[last] * g, rate * up


def usd_debt(market) -> bool:
    """ETH/USD moves the debt's own USD price (False: the debt is the chain's gas token, gas_token_price 1.0
    throughout) or every ETH price in the debt asset (True); the latter needs the collateral's underlying to
    be the gas token (an ETH LST against USDC), else DataError."""
    if bool(np.all(market.gas_token_price == 1.0)):
        return False
    if not np.array_equal(market.underlying_price, market.gas_token_price):
        raise DataError("montecarlo resample eth_usd: the collateral's underlying is not the chain's gas token and "
                        "the debt is neither; an ETH/USD path would not say how the collateral moves")
    return True


def hold_follows_price(market) -> bool:
    """The hold benchmark's token is the collateral (no restaking): its price is the collateral's."""
    return bool(np.array_equal(market.hold_price, market.price) and np.array_equal(market.hold_xrate,
                                                                                    market.xrate))
