"""The reference engine's state: the constants of its rules, the position, the result, the block loop.

:class:`BlockLoop` is the replay of DESIGN.md section 5 that every position shape shares (one collateral,
``backtest.reference.replay.Replay``; several legs, ``backtest.reference.legs.LegsReplay``): per block accrue,
slash, the health check and liquidation, the strategy, the records and the metric samples, then the summary.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from backtest.schema import SECONDS_PER_YEAR, SUMMARY_DTYPE
from backtest.venues import aave_v4

Y = float(SECONDS_PER_YEAR)
INF = math.inf
FIXED_POINT_ITERS = 30          # fixed-point solves for sizes under slippage use exactly this many rounds
DUST_REL = 1e-12     # dust is relative: balances and amounts at or below DUST_REL x capital count as zero


# ------------------------------------------------------------------------------------------------ state
@dataclass
class Position:
    coll: float = 0.0        # collateral supplied (tokens, actual balance)
    debt: float = 0.0        # variable debt (debt asset, actual balance)
    wallet: float = 0.0      # collateral tokens held outside the protocol (hold strategy)
    cash: float = 0.0        # debt asset in the wallet
    queued: float = 0.0      # debt asset waiting in a withdrawal queue
    release_ts: int = 0
    open: bool = False
    closed: bool = False     # de-peg exit or forced close done: the strategy does nothing more
    next_check: int = 0


class PremiumDebtPosition(Position):
    """A position whose debt is an Aave v4 Spoke debt: drawn shares and a premium (aave_v4.Debt) on the Hub's
    drawn index ``idx``. Reading ``debt`` gives drawn + premium; setting it borrows (aave_v4.draw) or repays
    (aave_v4.restore: the premium first) the difference and refreshes the premium at the risk premium ``rp``;
    at or below the dust it clears the debt. So the strategy code reads and writes ``debt`` as on any venue."""

    def __init__(self, rp: float, dust: float, **kw):
        self.v4 = aave_v4.Debt(0.0, 0.0, 0.0)
        self.idx = 1.0
        self.rp = rp
        self.dust = dust
        super().__init__(**kw)

    @property
    def debt(self) -> float:
        return self.v4.total(self.idx)

    @debt.setter
    def debt(self, value: float) -> None:
        old = self.v4.total(self.idx)
        if value <= self.dust:
            self.v4 = aave_v4.Debt(0.0, 0.0, 0.0)
        elif value > old:
            self.v4 = aave_v4.draw(self.v4, self.idx, value - old, self.rp)
        elif value < old:
            self.v4 = aave_v4.restore(self.v4, self.idx, old - value, self.rp)

    def grow_debt(self, gb: float) -> float:
        """Accrue one step of the drawn index: the drawn and premium shares both grow with it (the accrued
        premium itself earns nothing); returns the interest."""
        interest = (self.v4.drawn_shares + self.v4.premium_shares) * self.idx * (gb - 1.0)
        self.idx *= gb
        return interest


@dataclass
class Result:
    summary: dict
    events: list = field(default_factory=list)     # tuples (idx, kind, coll, debt, cost, hf)
    records: np.ndarray | None = None


def new_summary() -> dict:
    """Every SUMMARY_DTYPE field at zero; the minimum HF at infinity, its block and the exit block at -1."""
    sm = {name: (0 if SUMMARY_DTYPE[name].kind == "i" else 0.0) for name in SUMMARY_DTYPE.names}
    sm["min_hf"] = INF
    sm["min_hf_idx"] = -1
    sm["exit_idx"] = -1
    return sm


def annualise(end_equity: float, capital: float, years: float) -> float:
    if years <= 0:
        return 0.0
    if end_equity <= 0:
        return -1.0
    try:
        return (end_equity / capital) ** (1.0 / years) - 1.0
    except OverflowError:          # a very short window: C's pow() gives inf, so do we
        return math.inf


class BlockLoop:
    """The block loop of DESIGN.md section 5 over ``self.m``; the position shape supplies the steps:
    ``accrue(b)``, ``slash(b)``, ``debt_now()``, ``hf(b)``, ``liquidate(b)``, ``strategy(b)``, ``record(r, b)``
    (time-series row r at block b), ``metric_sample(b)`` and ``finish(b)``."""

    def run_blocks(self) -> None:
        m, sm = self.m, self.sm
        n = len(m)
        r = 0
        delay = self.s.liquidation_delay      # liquidators act once HF has stayed below 1 this many blocks
        below_since = -1
        for b in range(n):
            if b > 0:
                self.accrue(b)
            self.slash(b)
            if self.debt_now() > self.dust:
                hf = self.hf(b)
                if hf < sm["min_hf"]:
                    sm["min_hf"] = hf
                    sm["min_hf_idx"] = b
                if hf < 1.05:
                    sm["blocks_below_105"] += 1
                if hf < 1.0:
                    if below_since < 0:
                        below_since = b
                    if b - below_since >= delay:
                        self.liquidate(b)
                else:
                    below_since = -1
            else:
                below_since = -1
            self.strategy(b)
            while r < len(self.rec_idx) and self.rec_idx[r] == b:
                self.record(r, b)
                r += 1
            if b % self.metric_every == 0 or b == n - 1:
                self.metric_sample(b)
        self.finish(n - 1)


def next_check_after(ts: int, t0: int, every: int) -> int:
    """The first rebalance check strictly after ``ts`` on the grid t0 + k × every."""
    return t0 + ((ts - t0) // every + 1) * every
