"""From a run configuration to its aligned market: the translation above the data layer.

``request_for`` turns a :class:`~backtest.config_types.Config` into the data layer's plain
:class:`~backtest.data.request.MarketRequest` (chain facts included, so the data layer never reads the
config module); ``market_for`` builds the market and adds what runs in the kernel (Morpho's
AdaptiveCurveIRM). :class:`Markets` shares one lake read among configurations whose requests differ only in
constants or overlays (a sweep over ``market.ltv``): one DuckDB join, each value's market assembled from it.
"""
from __future__ import annotations

import time

from backtest.config import CHAINS
from backtest.config_types import Config
from backtest.data.build import Read, assemble, read
from backtest.data.market import Market
from backtest.data.prices import underlying_of
from backtest.data.request import MarketRequest, RewardsSpec, Scenario, read_key
from backtest.irm import IRM_INITIAL_RATE, apply_irm

#: the token each chain's gas is paid in
GAS_TOKENS = {"ethereum": "ETH", "cosmos": "ATOM", "solana": "SOL"}
SLOT = 12                           # seconds per Ethereum slot after the Merge


def request_for(config: Config) -> MarketRequest:
    """The data layer's request for ``config``'s market."""
    run, mk, st = config.run, config.market, config.strategy
    # the token the position holds: the LRT of strategy.restake (its price, exchange rate, venue parameters,
    # rewards and slashes), else market.collateral; the hold benchmark stays market.collateral
    coll = st.restake if st.restake != "none" else mk.collateral
    gas = config.costs.gas
    gas_fixed = isinstance(gas, (int, float)) and not isinstance(gas, bool)
    rw = st.rewards
    return MarketRequest(
        lake=run.data, start=run.start, end=run.end, block_time=run.block_time, chain=run.chain,
        # the chain's own block (slot) time, not the replay step, extrapolates beyond the known blocks
        chain_block_seconds=SLOT if run.chain == "ethereum" else (
            CHAINS[run.chain][0] / 1000 if run.chain in CHAINS else run.block_time),
        block_anchor=run.chain == "ethereum", gas_token=GAS_TOKENS.get(run.chain, "ETH"),
        collateral=coll, underlying=underlying_of(coll), hold=mk.collateral, debt=mk.debt,
        protocol=mk.protocol, emode=mk.emode, oracle=mk.oracle, rates_from=mk.rates_from, irm=mk.irm,
        capo_snapshot_age=mk.capo_snapshot_age,
        ltv=mk.ltv, liquidation_threshold=mk.liquidation_threshold, liquidation_bonus=mk.liquidation_bonus,
        liquidation_protocol_fee=mk.liquidation_protocol_fee, lltv=mk.lltv, liquidation_factor=mk.liquidation_factor,
        borrow_rate=mk.borrow_rate, supply_rate=mk.supply_rate, utilization=mk.utilization,
        gas_gwei=float(gas) if gas_fixed else None,
        scenarios=tuple(_scenario(s, mk, coll) for s in config.scenarios),
        read_utilization=mk.irm != "adaptive-curve" and any(s.kind == "utilization" for s in config.scenarios),
        rewards=None if rw is None else RewardsSpec(rw.value, rw.price_per_point, rw.token),
        sources=tuple(run.sources), allow=tuple(run.allow),
    )


def _scenario(s, mk, coll: str) -> Scenario:
    """The data layer's overlay of one [[scenario]]; a capo_snapshot's growth defaults to the CAPO lane's
    (market.capo_growth, else the asset's deployed max yearly growth)."""
    growth = s.growth
    if s.kind == "capo_snapshot" and growth is None:
        from backtest.engine import CAPO_GROWTH     # the lanes' defaults live with the lanes

        growth = mk.capo_growth if mk.capo_growth is not None else CAPO_GROWTH.get(s.asset)
    return Scenario(s.kind, s.asset, s.at, s.depth, s.duration, s.shape, s.recovery, s.level, s.multiple, s.ratio,
                    s.snapshot_at, growth)


def finish(market: Market, config: Config) -> Market:
    """What runs in the kernel on the assembled market: the AdaptiveCurveIRM's borrow rate (after the
    overlays, from the utilisation path)."""
    mk = config.market
    if mk.irm == "adaptive-curve":
        market = apply_irm(market, mk.rate_at_target if mk.rate_at_target is not None else IRM_INITIAL_RATE)
    return market


def market_for(config: Config, checks: bool = False) -> Market:
    """The aligned market of ``config`` (``checks``: hold the window's points to ``data check``'s rules)."""
    return finish(assemble(read(request_for(config), checks), request_for(config)), config)


class Markets:
    """Markets of many configurations, sharing one lake read per :func:`read_key` (constants and overlays
    are applied to it; the read's arrays are shared, never modified). ``reads`` counts the lake reads."""

    def __init__(self, checks: bool = True):
        self.checks = checks
        self.reads = 0
        self._cache: dict[MarketRequest, Read] = {}

    def __call__(self, config: Config) -> Market:
        req = request_for(config)
        key = read_key(req)
        rd = self._cache.get(key)
        if rd is None:
            rd = self._cache[key] = read(req, self.checks)
            self.reads += 1
        return finish(assemble(rd, req), config)

    def clear(self) -> None:
        self._cache.clear()


def timed_market(config: Config) -> tuple[Market, float]:
    """:func:`market_for` and the seconds it took (for benchmarks and the CLI's verbose output)."""
    t0 = time.perf_counter()
    m = market_for(config)
    return m, time.perf_counter() - t0
