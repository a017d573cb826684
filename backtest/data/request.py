"""What the data layer is asked for: one market, as plain data (no config module, no engine).

:func:`backtest.data.build.build` turns a :class:`MarketRequest` into an aligned
:class:`~backtest.data.market.Market`; ``backtest.plan`` translates a run configuration into one. Chain
facts the data layer needs (the chain's own block time, its gas token) travel in the request, so the data
layer never reads the config module.
"""
from __future__ import annotations

from dataclasses import dataclass, fields, replace
from pathlib import Path


@dataclass(frozen=True)
class Scenario:
    """One ``[[scenario]]`` overlay (:mod:`backtest.data.scenarios` says what each kind moves and in what order)."""
    kind: str                      # depeg | rate_spike | utilization | slash | gas_spike | oracle | capo_snapshot
    asset: str
    at: int                        # epoch seconds
    depth: float | None            # depeg / oracle: fractional drop; rate_spike: APR added; utilization:
                                   # utilisation added (clipped to 1); slash: fraction of the exchange rate cut;
                                   # gas_spike: gwei added; capo_snapshot: the snapshot's ratio below the live rate
    duration: int                  # seconds (0 for a slash: it is one cut)
    shape: str = "v"               # v | step | linear
    recovery: int = 0              # seconds: after the shape, the overlay fades linearly to 0 (step / linear)
    level: float | None = None     # rate_spike: the borrow APR during the spike; gas_spike: the gas price, gwei
    multiple: float | None = None  # rate_spike / gas_spike: a factor on the series during the spike
    ratio: float | None = None     # capo_snapshot: the snapshot ratio itself (exchange-rate units)
    snapshot_at: int | None = None # capo_snapshot: the snapshot's timestamp (default: at)
    growth: float | None = None    # capo_snapshot: the cap's max yearly ratio growth (filled from the config)


@dataclass(frozen=True)
class RewardsSpec:
    """How rewards accrued on the held token are valued: "zero", "points" (times ``price_per_point``, debt
    asset per point) or "token" (rows of kind ``token``, valued with the lake's price of that token)."""
    value: str = "zero"            # zero | points | token
    price_per_point: float | None = None
    token: str | None = None


@dataclass(frozen=True)
class MarketRequest:
    """One aligned market: the lake, the window, the pair, the venue and the constants that replace series.

    ``None`` in an override means "read the lake's series" (or the venue's defaults)."""
    # the lake and the clock
    lake: Path
    start: int                     # UTC epoch seconds (inclusive)
    end: int                       # UTC epoch seconds (exclusive)
    block_time: int = 12           # seconds per replayed step
    chain: str = "ethereum"
    chain_block_seconds: float = 12   # the chain's own block (slot) time: extrapolates block numbers
    block_anchor: bool = True      # estimate block numbers from the Merge anchor when the lake has no blocks
    gas_token: str = "ETH"         # the chain's gas token (gas is paid in it)
    # the pair
    collateral: str = "wstETH"     # the token the position holds (the LRT when restaking)
    underlying: str = "ETH"        # what the collateral's exchange rate is in (ETH for an ETH LST / LRT)
    hold: str = "wstETH"           # the hold benchmark's token (the base LST when restaking)
    debt: str = "WETH"
    # the venue
    protocol: str = "aave-v3"
    emode: str | None = None
    oracle: str = "exchange-rate"  # exchange-rate | market | capo | chainlink
    rates_from: str | None = None  # the lake's protocol label for the venue's rates; None = protocol
    irm: str = "data"              # "data" (lake borrow APR) | "adaptive-curve" (utilisation read instead)
    capo_snapshot_age: int = 7 * 86400
    # constants that replace a series (None = read it)
    ltv: float | None = None
    liquidation_threshold: float | None = None
    liquidation_bonus: float | None = None
    liquidation_protocol_fee: float | None = None
    lltv: float | None = None                     # morpho-blue
    liquidation_factor: float | None = None       # compound-v3
    borrow_rate: float | None = None
    supply_rate: float | None = None
    utilization: float | None = None              # adaptive-curve
    gas_gwei: float | None = None                 # a fixed gas price; None = the lake's gas series
    # overlays, rewards, how the lake is read
    scenarios: tuple[Scenario, ...] = ()
    read_utilization: bool = False               # read the debt reserve's utilisation too (an Aave utilization
                                                 # overlay moves the rate along the curve from it)
    rewards: RewardsSpec | None = None
    sources: tuple[tuple[str, str], ...] = ()     # ("prices ETH/USD", "coingecko"): the source to read
    allow: tuple[str, ...] = ()                   # data checks downgraded to warnings

    @property
    def restaked(self) -> bool:
        return self.hold != self.collateral


#: the request fields that only set a constant array: changing their value never re-reads the lake
CONSTANTS = ("ltv", "liquidation_threshold", "liquidation_bonus", "liquidation_protocol_fee", "lltv",
             "liquidation_factor", "borrow_rate", "supply_rate", "utilization", "gas_gwei")
#: fields applied after the read too (overlays on the arrays)
AFTER_READ = CONSTANTS + ("scenarios",)


def read_key(req: MarketRequest) -> MarketRequest:
    """The part of a request that decides what is read from the lake: requests with equal keys share one
    read (and one DuckDB join); their constants and overlays are applied to it afterwards."""
    blank = {f.name: (None if getattr(req, f.name) is None else 0.0) for f in fields(req) if f.name in CONSTANTS}
    return replace(req, **blank, scenarios=())
