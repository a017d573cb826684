"""Frozen dataclasses of a resolved run configuration (DESIGN.md section 3).

Times are UTC epoch seconds; durations are seconds. ``backtest.config.load_config`` builds these from TOML
after validating every key; nothing here is validated again.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class RunConfig:
    name: str
    start: int                     # UTC epoch seconds (inclusive)
    end: int                       # UTC epoch seconds (exclusive of the last block past it)
    chain: str = "ethereum"
    data: Path = Path("data")
    output: Path = Path("results")
    record: int = 3600             # seconds between time-series samples; 0 = every block; -1 = none
    unwind_at_end: bool = False
    block_time: int = 12           # seconds per replayed step (run.step): the chain's block time, or a multiple
                                   # of it (ethereum 12, cosmos 6, solana 60 by default: 150 slots of 0.4 s)
    sources: tuple[tuple[str, str], ...] = ()   # run.sources: ("prices WETH/USD", "coingecko") pairs
    allow: tuple[str, ...] = ()    # run.allow: data checks downgraded to warnings ("jump:exchange_rates wstETH")


@dataclass(frozen=True)
class MarketConfig:
    protocol: str = "aave-v3"      # aave-v3 | aave-v2 | spark | morpho-blue | compound-v3 | generic | aave-v4
    collateral: str = "wstETH"
    debt: str = "WETH"
    emode: str | None = "eth-correlated"          # Aave family only; None elsewhere
    oracle: str = "exchange-rate"  # exchange-rate | market | capo | chainlink
    ltv: float | None = None                      # compound-v3: the borrow collateral factor
    liquidation_threshold: float | None = None    # compound-v3: the liquidate collateral factor
    liquidation_bonus: float | None = None        # fraction, 0.01 = 1 % (Aave family, generic)
    liquidation_protocol_fee: float | None = None
    close_factor: float | None = None             # generic: required; Aave: a fixed override
    borrow_rate: float | None = None              # APR override of the debt asset
    supply_rate: float | None = None              # APR override of the collateral's supply rate
    capo_growth: float | None = None              # CAPO max yearly ratio growth; None = per-asset default
    capo_snapshot_age: int = 7 * 86400
    liquidation_delay: int = 0     # blocks HF stays below 1 before liquidators act (0 = the first block, the default)
    liquidation_gas: float = 0.0   # gas units a liquidation costs its liquidator: > 0, it repays the amount that
                                   # earns it most (a partial when the bonus does not cover gas + slippage); 0 = full
    v33_from: int = 1740441600                    # 2025-02-25 00:00 UTC: Aave v3.3 on Ethereum; the loader
                                                  # sets params.v33_from(protocol): Spark never (2**62)
    lltv: float | None = None                     # morpho-blue: the market's LLTV (max LTV = liquidation LTV)
    liquidation_factor: float | None = None       # compound-v3: share of the collateral value credited at absorb
    irm: str = "data"                             # morpho-blue: "data" (lake borrow APR) | "adaptive-curve"
    utilization: float | None = None              # adaptive-curve: a constant utilisation instead of the lake's
    rate_at_target: float | None = None           # adaptive-curve: r_T at the start; None = the IRM's 4 %
    rates_from: str | None = None                 # the lake's protocol label for this venue's rates; None = protocol
    venue: tuple[tuple[str, float], ...] = ()     # the venue's own keys, resolved (aave-v4: its Spoke parameters,
                                                  # backtest.venues.aave_v4.KEYS order); () for the other venues


@dataclass(frozen=True)
class RebalanceConfig:
    deleverage_below_hf: float
    target_hf: float
    releverage_above_hf: float | None = None
    check_every: int = 3600


@dataclass(frozen=True)
class ExitConfig:
    depeg_below: float
    route: str = "dex"             # dex | queue
    queue_delay: int | None = None  # seconds; None = the token's default (engine.py: an LRT waits EigenLayer's
                                    # withdrawal delay in force, 7 d through 2024 then 14 d; other tokens 5 d)


@dataclass(frozen=True)
class RewardsConfig:
    """How restaking rewards / points accrued on the collateral tokens are valued (lake table ``rewards``,
    token = the collateral token): "zero" (not valued), "points" (kind = "points" rows, points per token per
    day/week/year, times ``price_per_point`` in debt-asset units) or "token" (kind = ``token`` rows, reward
    tokens per collateral token per period, valued with the lake's TOKEN/ETH price or TOKEN/USD / ETH/USD)."""
    value: str = "zero"            # zero | points | token
    price_per_point: float | None = None
    token: str | None = None


@dataclass(frozen=True)
class CollateralLeg:
    """One collateral of a multi-collateral position ([[strategy.collateral]]): the token and the share of every
    buy (the capital and each borrowed amount) that goes into it."""
    token: str
    weight: float


@dataclass(frozen=True)
class LpConfig:
    """[strategy.lp]: a share of a 2-coin Curve StableSwap pool of the lake's ``liquidity`` table (token0 the
    native, token1 the LST), bought at its market value and marked at the LST's market price."""
    pool: str                      # the liquidity table's pool key, e.g. "curve:0xDC24316b9AE028F1497c275EB9192a3Ea0f67022"
    lp_token: str                  # the LP token whose exchange_rates hold the pool's virtual price ("steCRV")
    amp: float | None = None       # the invariant's A where the lake's amp is null (Curve's A() is A n^(n-1))


@dataclass(frozen=True)
class VaultConfig:
    """[strategy.vault]: an auto-compounding wrapper over a lend or a loop of market.collateral, rebalanced to
    strategy.target_ltv when the LTV leaves target +- band (checked every check_every), fees charged block by
    block as shares minted to the manager."""
    over: str = "lend"             # lend | loop
    band: float = 0.02             # LTV tolerance before a rebalance
    check_every: int = 86400       # seconds
    management_fee: float = 0.02   # per year, on the vault's assets
    performance_fee: float = 0.10  # on gains over the high-water mark of the price per share


@dataclass(frozen=True)
class BasketConfig:
    """[strategy.basket]: tokens and weights, re-weighted every ``rebalance_every`` (0: never), valued in USD;
    benchmark: the same weights of each token's native asset."""
    weights: tuple[tuple[str, float], ...]
    rebalance_every: int = 30 * 86400


@dataclass(frozen=True)
class FarmConfig:
    """[strategy.farm]: market.collateral deposited, earning the lake's ``rewards`` rows (token = the deposit,
    kind = reward_token; amount per deposited token per day/week/year), optionally halving every ``halving``,
    sold every ``sell_every`` at the reward token's market price, the deposit sold after ``exit_after``."""
    reward_token: str
    exit_after: int
    sell_every: int = 86400
    halving: int = 0               # seconds; 0 = the rewards rows alone


@dataclass(frozen=True)
class BookConfig:
    """The table of the one book kind a config defines (the others None)."""
    lp: LpConfig | None = None
    vault: VaultConfig | None = None
    basket: BasketConfig | None = None
    farm: FarmConfig | None = None


@dataclass(frozen=True)
class StrategyConfig:
    kind: str = "loop"             # hold | lend | loop | flash-loan
    capital: float = 100.0
    entry: str = "swap"            # swap | stake
    target_ltv: float = 0.8
    loops: int = 5
    restake: str = "none"          # or an LRT symbol: the position holds that token (DESIGN.md, README)
    rebalance: RebalanceConfig | None = None
    exit: ExitConfig | None = None
    rewards: RewardsConfig | None = None
    # [[strategy.collateral]]: two or more collaterals against the one debt (empty = the one market.collateral;
    # a single [[strategy.collateral]] is folded into market.collateral by the loader)
    collateral: tuple[CollateralLeg, ...] = ()
    # the strategy book's kinds (basket, lp, vault, farm): their own table; None for the loop engine's kinds
    book: BookConfig | None = None


@dataclass(frozen=True)
class CostsConfig:
    gas: str | float = "data"      # "data" = the lake's gas series, or a fixed price in gwei
    gas_units: dict[str, float] = field(
        default_factory=lambda: {"open": 600000.0, "loop_step": 250000.0, "rebalance": 400000.0, "close": 500000.0}
    )
    swap_fee: float = 0.0001
    slippage: str = "none"         # none | linear | stableswap | constant-product
    slippage_bps: float = 0.0      # linear model: bps per unit of debt asset traded
    pool_depth: float = 50000.0    # stableswap / constant-product: balance per side, debt-asset units
    amp: float = 50.0              # stableswap amplification
    flash_fee: float = 0.0005


@dataclass(frozen=True)
class ScenarioConfig:
    """One [[scenario]] overlay; backtest.data.request.Scenario says what each field means per kind."""
    kind: str                      # depeg | rate_spike | utilization | slash | gas_spike | oracle | capo_snapshot
    asset: str
    at: int                        # epoch seconds
    depth: float | None            # depeg / oracle: fractional drop; rate_spike: APR added; utilization:
                                   # utilisation added (clipped to 1); slash: fraction cut; gas_spike: gwei added;
                                   # capo_snapshot: the snapshot below the live rate, as a fraction
    duration: int                  # seconds
    shape: str = "v"               # v | step | linear
    recovery: int = 0              # seconds (step / linear): fade back to 0 after the duration
    level: float | None = None     # rate_spike: APR during it; gas_spike: gwei
    multiple: float | None = None  # rate_spike / gas_spike: factor
    ratio: float | None = None     # capo_snapshot: the snapshot ratio itself
    snapshot_at: int | None = None # capo_snapshot: its timestamp (default: at)
    growth: float | None = None    # capo_snapshot: max yearly growth (default: market.capo_growth / the asset's)


#: the series a Monte Carlo path may resample (backtest/montecarlo.py), in the config's words
MC_SERIES = ("discount", "exchange_rate", "eth_usd", "gas", "borrow_rate")
MC_MAX_PATHS = 1_000_000


@dataclass(frozen=True)
class MonteCarloConfig:
    """[montecarlo]: the Monte Carlo options the CLI's --paths / --seed / --block-days / --path /
    --vary-borrow-rate / --resample also set (a flag overrides its key); like [episodes] not part of the config
    hash (the sweep hash holds the resolved options)."""
    paths: int
    seed: int = 0
    block_days: float = 7.0
    path: int | None = None        # replay this one path alone
    vary_borrow_rate: bool = False  # the same as listing "borrow_rate" in resample
    resample: tuple[str, ...] = ("discount",)


@dataclass(frozen=True)
class EpisodesConfig:
    """[episodes]: how de-peg episodes are read from the replayed market (backtest/episodes.py); they read the
    results and change none, so they are not part of the config hash."""
    threshold: float = 0.005       # discount below the exchange-rate value an episode must exceed (fraction)
    merge_gap: int = 86400         # seconds: stretches closer than this are one episode


@dataclass(frozen=True)
class Config:
    run: RunConfig
    market: MarketConfig
    strategy: StrategyConfig
    costs: CostsConfig
    scenarios: tuple[ScenarioConfig, ...] = ()
    sweep: dict[str, list[Any]] = field(default_factory=dict)   # dotted path -> values
    source: Path | None = None     # the TOML file it came from
    raw: dict[str, Any] = field(default_factory=dict)           # the TOML as parsed (for the manifest)
    episodes: EpisodesConfig = EpisodesConfig()
    montecarlo: MonteCarloConfig | None = None   # [montecarlo], when the config has one
