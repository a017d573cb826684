"""The aligned market: every series ASOF-joined onto the block clock, as contiguous numpy arrays.

This is what both engines replay. All prices are in units of the debt asset (WETH = ETH) per collateral
token (derived through USD or ETH where the lake has no direct pair, see :mod:`backtest.data.prices`); rates are APR fractions; the clock is one entry per block.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class SeriesInfo:
    table: str
    key: str            # e.g. "wstETH/WETH", "aave-v3:WETH:borrow_apr"
    rows: int           # rows read inside [first, last]
    first_ts: int
    last_ts: int
    max_gap: int        # largest gap between consecutive points inside the window, seconds


@dataclass
class Market:
    ts: np.ndarray          # int64, block times (UTC epoch seconds), strictly increasing
    block: np.ndarray       # int64, block numbers (exact where the lake has a block table, else estimated)
    price: np.ndarray       # f8, DEX market price of the collateral in the debt asset
    xrate: np.ndarray       # f8, exchange rate: underlying (ETH) per collateral token (e.g. stEthPerToken)
    eth_usd: np.ndarray     # f8, USD per unit of debt asset; NaN where unknown
    borrow_apr: np.ndarray  # f8, variable borrow APR of the debt asset
    supply_apr: np.ndarray  # f8, supply APR of the collateral asset (aToken interest; 0 where collateral
                            # earns nothing: Morpho Blue, Compound III)
    oracle_feed: np.ndarray # f8, the protocol oracle's collateral/debt ratio where the lake has it; NaN else
    ltv: np.ndarray         # f8, max LTV in force (E-mode resolved; Comet: borrow CF; Morpho: the LLTV)
    lt: np.ndarray          # f8, liquidation threshold in force (Comet: liquidate CF; Morpho: the LLTV)
    bonus: np.ndarray       # f8, liquidation bonus as a fraction (0.01 = LB 1.01); Comet: 1 - liquidation
                            # factor (the absorb penalty); Morpho: LIF - 1, for information (the engines
                            # derive the LIF from the LLTV)
    pfee: np.ndarray        # f8, liquidation protocol fee fraction (0 on Morpho and Comet)
    gas_gwei: np.ndarray    # f8, gas price (base + priority) in gwei
    utilization: np.ndarray | None = None   # f8, utilisation of the debt asset's market where read (the
                                            # AdaptiveCurveIRM's input); NaN where unknown
    reward: np.ndarray | None = None        # f8, cumulative reward value (debt asset) per collateral token held
                                            # since block 0 (0 at block 0; zeros = no rewards valued)
    slash: np.ndarray | None = None         # f8, fraction of the exchange rate cut at this block by a slash
                                            # (already applied to xrate; 0 = none)
    hold_price: np.ndarray | None = None    # f8, DEX price of the hold benchmark's token (the base LST when
                                            # restaking; = price otherwise)
    hold_xrate: np.ndarray | None = None    # f8, exchange rate of the hold benchmark's token (= xrate otherwise)
    underlying_price: np.ndarray | None = None  # f8, the collateral's underlying (ETH for an ETH LST) in the debt
                                            # asset: exactly 1.0 where they are the same asset (WETH debt)
    gas_token_price: np.ndarray | None = None   # f8, the chain's gas token (ETH on Ethereum) in the debt asset:
                                            # exactly 1.0 where the debt is the gas token
    oracle_scale: np.ndarray | None = None  # f8, [[scenario]] oracle offset: a factor on the protocol oracle's price
                                            # in every oracle mode (1.0 = none)
    oracle_cap: np.ndarray | None = None    # f8, [[scenario]] capo_snapshot: a governance-set CAPO cap in exchange-rate
                                            # units that replaces the snapshot rule's cap on a CAPO oracle (NaN = the rule)
    series: list[SeriesInfo] = field(default_factory=list)
    data_hash: str = ""
    derived: dict[str, str] = field(default_factory=dict)  # market array -> how it was derived from the lake
                                            # when not read directly, e.g. "wstETH/USDC = wstETH/USD / USDC/USD"
    files: list[str] = field(default_factory=list)  # lake files read, relative to the lake (provenance.json)

    ARRAYS = ("ts", "block", "price", "xrate", "eth_usd", "borrow_apr", "supply_apr", "oracle_feed",
              "ltv", "lt", "bonus", "pfee", "gas_gwei", "utilization", "reward", "slash", "hold_price", "hold_xrate",
              "underlying_price", "gas_token_price", "oracle_scale", "oracle_cap")

    def __post_init__(self) -> None:
        n = self.ts.shape[0]
        if self.utilization is None:
            self.utilization = np.full(n, np.nan)
        if self.reward is None:
            self.reward = np.zeros(n)
        if self.slash is None:
            self.slash = np.zeros(n)
        if self.hold_price is None:
            self.hold_price = self.price.copy()
        if self.hold_xrate is None:
            self.hold_xrate = self.xrate.copy()
        if self.underlying_price is None:
            self.underlying_price = np.ones(n)
        if self.gas_token_price is None:
            self.gas_token_price = np.ones(n)
        if self.oracle_scale is None:
            self.oracle_scale = np.ones(n)
        if self.oracle_cap is None:
            self.oracle_cap = np.full(n, np.nan)

    def __len__(self) -> int:
        return int(self.ts.shape[0])

    def slice(self, start: int, stop: int) -> "Market":
        kw = {name: np.ascontiguousarray(getattr(self, name)[start:stop]) for name in self.ARRAYS}
        return Market(**kw, series=list(self.series), data_hash=self.data_hash, derived=dict(self.derived))

    @classmethod
    def from_arrays(cls, n: int, **arrays) -> "Market":
        """Build a market from scalars or arrays (scalars are broadcast); used by tests and synth."""
        out = {}
        for name in cls.ARRAYS:
            v = arrays.pop(name, None)
            dtype = np.int64 if name in ("ts", "block") else np.float64
            if v is None:
                if name == "ts":
                    v = np.arange(n, dtype=np.int64) * 12
                elif name == "block":
                    v = np.arange(n, dtype=np.int64)
                elif name in ("eth_usd", "oracle_feed", "utilization", "oracle_cap"):
                    v = np.nan
                elif name in ("reward", "slash"):
                    v = 0.0
                elif name in ("underlying_price", "gas_token_price", "oracle_scale"):
                    v = 1.0
                elif name == "hold_price":
                    v = out["price"]
                elif name == "hold_xrate":
                    v = out["xrate"]
                else:
                    raise TypeError(f"missing market array {name}")
            out[name] = np.ascontiguousarray(np.broadcast_to(np.asarray(v, dtype=dtype), (n,)).copy())
        if arrays:
            raise TypeError(f"unknown market arrays {sorted(arrays)}")
        return cls(**out)
