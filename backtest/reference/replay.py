"""One configuration replayed over one market, one collateral against one debt: the position's market views
(the oracle modes, the health factor), its accrual (step 2), its records (step 6) and the summary at the end;
the block loop is ``state.BlockLoop``, the costs ``costs.Trading``, liquidation ``liquidation.Liquidation``,
the strategy ``strategy.Strategy``."""
from __future__ import annotations

import math

import numpy as np

from backtest.data.market import Market
from backtest.reference.costs import Trading, slippage_fraction
from backtest.reference.liquidation import Liquidation
from backtest.reference.rates import index_growth, supply_increment
from backtest.reference.settings import Settings
from backtest.reference.state import (
    DUST_REL,
    INF,
    Y,
    BlockLoop,
    Position,
    PremiumDebtPosition,
    Result,
    annualise,
    new_summary,
)
from backtest.reference.strategy import Strategy
from backtest.schema import EVENT_KINDS, N_RECORD, PROTOCOLS
from backtest.venues import risk_parameters, venue


class Replay(BlockLoop, Trading, Liquidation, Strategy):
    """One configuration (its Settings) replayed over one market, the collateral priced by the oracle mode
    ``oracle`` (with CAPO's growth and snapshot age)."""

    def __init__(self, market: Market, s: Settings, oracle: str, capo_growth: float, capo_age: int,
                 rec_idx: np.ndarray, metric_every: int):
        self.m = market
        self.s = s
        self.oracle = oracle
        self.capo_growth = capo_growth
        self.capo_age = int(capo_age)
        self.rec_idx = np.asarray(rec_idx, dtype=np.int64)
        self.metric_every = int(metric_every)
        self.dust = DUST_REL * s.capital
        if venue(s.protocol).premium_debt:
            # the user risk premium: with one collateral, its collateral risk
            self.pos = PremiumDebtPosition(s.venue["collateral_risk"], self.dust, cash=s.capital)
        else:
            self.pos = Position(cash=s.capital)
        self.sm = new_summary()
        self.events: list = []
        self.peak = -INF
        self.protocol = PROTOCOLS[s.protocol]
        self.risk = risk_parameters(s.protocol, market)     # the venue's risk parameters by their names
        self.rec = np.zeros((len(self.rec_idx), N_RECORD))

    # --- market views -----------------------------------------------------------------------------
    def oracle_price(self, b: int) -> float:
        # a [[scenario]] oracle offset scales every mode's price (Market.oracle_scale, 1.0 = none)
        return self._oracle_mode_price(b) * float(self.m.oracle_scale[b])

    def _oracle_mode_price(self, b: int) -> float:
        m = self.m
        if self.oracle == "exchange-rate":
            return float(m.xrate[b])
        if self.oracle == "market":
            return float(m.price[b])
        if self.oracle == "chainlink":
            return float(m.oracle_feed[b])
        # capo: min(live ratio, snapshot * (1 + g * dt / Y)); the snapshot refreshes every `age`
        # seconds and is taken `age` before its refresh time, so it is always at least `age` old. A snapshot
        # time before the window reads the lake's rate as of then (market.capo_pre_*), never one inside it.
        age = self.capo_age
        ts = int(m.ts[b])
        snap_ts = (ts // age) * age - age
        pre_ts, pre_x = getattr(m, "capo_pre_ts", None), getattr(m, "capo_pre_xrate", None)
        if snap_ts < int(m.ts[0]) and pre_ts is not None and len(pre_ts):
            k = max(int(np.searchsorted(pre_ts, snap_ts, side="right")) - 1, 0)
            snap = float(pre_x[k])
        else:
            j = int(np.searchsorted(m.ts, snap_ts, side="left"))
            j = min(max(j, 0), b)
            snap = float(m.xrate[j])
        cap = snap * (1.0 + self.capo_growth * (ts - snap_ts) / Y)
        if not math.isnan(float(m.oracle_cap[b])):     # a governance-set snapshot ([[scenario]] capo_snapshot)
            cap = float(m.oracle_cap[b])
        # Aave's CAPO adapter prices the token in USD (capped ratio x ETH/USD); over the debt's USD price that is
        # the capped ratio x the underlying's price in the debt asset (1.0 for a WETH debt)
        return min(float(m.xrate[b]), cap) * float(m.underlying_price[b])

    def rate_value(self, b: int) -> float:
        """One token at the exchange rate, in the debt asset: underlying per token x the underlying's price."""
        return float(self.m.xrate[b]) * float(self.m.underlying_price[b])

    def depeg_ratio(self, b: int) -> float:
        """Market price over the exchange-rate value, both in the debt asset (1 at the peg)."""
        m = self.m
        return float(m.price[b]) / (float(m.xrate[b]) * float(m.underlying_price[b]))

    def lt(self, b):
        return float(self.m.lt[b])

    def hf(self, b: int) -> float:
        pos = self.pos
        if pos.debt <= self.dust:
            return INF
        return pos.coll * self.oracle_price(b) * self.lt(b) / pos.debt

    def tidy(self) -> None:
        """Balances at or below the dust (DUST_REL x capital) are zero (as the core stores them)."""
        if self.pos.coll <= self.dust:
            self.pos.coll = 0.0
        if self.pos.debt <= self.dust:
            self.pos.debt = 0.0

    def event(self, b: int, kind: str, coll: float, debt: float, cost: float) -> None:
        self.events.append((b, EVENT_KINDS[kind], coll, debt, cost, self.hf(b)))

    # --- step 2: accrual --------------------------------------------------------------------------
    def accrue(self, b: int) -> None:
        m, pos, sm = self.m, self.pos, self.sm
        dt = float(m.ts[b] - m.ts[b - 1])
        dr = float(m.xrate[b] - m.xrate[b - 1])
        up = float(m.underlying_price[b])           # the step's value in the debt asset at this block
        sm["staking_yield"] += (pos.coll + pos.wallet) * dr * up
        gs, gb = index_growth(self.protocol, float(m.supply_apr[b - 1]), float(m.borrow_apr[b - 1]), dt)
        supplied = pos.coll * supply_increment(self.protocol, float(m.supply_apr[b - 1]), dt)
        sm["supply_yield"] += supplied * float(m.xrate[b]) * up
        # restaking rewards accrue on the collateral tokens held over (b-1, b], like the staking yield
        sm["restaking_rewards"] += (pos.coll + pos.wallet) * float(m.reward[b] - m.reward[b - 1])
        pos.coll *= gs
        if isinstance(pos, PremiumDebtPosition):
            sm["interest_paid"] += pos.grow_debt(gb)
        else:
            sm["interest_paid"] += pos.debt * (gb - 1.0)
            pos.debt *= gb

    def slash(self, b: int) -> None:
        m, pos = self.m, self.pos
        f = float(m.slash[b])
        if f > 0 and pos.coll + pos.wallet > 0:
            # a slash cut the exchange rate at this block (already in m.xrate): the value lost by the
            # tokens held, at the rate before the cut, xrate / (1 - f) - xrate = xrate f / (1 - f)
            tokens = pos.coll + pos.wallet
            self.event(b, "slash", 0.0, 0.0,
                       tokens * float(m.xrate[b]) * f / (1.0 - f) * float(m.underlying_price[b]))

    def debt_now(self) -> float:
        return self.pos.debt

    # --- step 6: record -----------------------------------------------------------------------------
    def equity(self, b: int, mark: float) -> float:
        pos = self.pos
        return (pos.coll + pos.wallet) * mark + pos.cash + pos.queued - pos.debt

    def record_row(self, b: int) -> list[float]:
        pos, m = self.pos, self.m
        pc = self.oracle_price(b)
        px = float(m.price[b])
        e = self.equity(b, px)
        tokens = pos.coll + pos.wallet
        coll_val = pos.coll * pc
        return [
            tokens, pos.debt, pos.cash + pos.queued, self.hf(b),
            pos.debt / coll_val if coll_val > 0 else 0.0,
            tokens * px / e if e > 0 else (0.0 if tokens == 0 else INF),
            pc, px, float(m.xrate[b]), e, self.equity(b, self.rate_value(b)),
        ]

    def metric_sample(self, b: int) -> None:
        e = self.equity(b, float(self.m.price[b]))
        sm = self.sm
        if e > self.peak:
            self.peak = e
        if self.peak > 0:
            dd = 1.0 - e / self.peak
            if dd > sm["max_drawdown"]:
                sm["max_drawdown"] = dd
        tokens = self.pos.coll + self.pos.wallet
        if e > 0 and tokens > 0:
            sm["lev_sum"] += tokens * float(self.m.price[b]) / e
            sm["lev_n"] += 1

    def record(self, r: int, b: int) -> None:
        self.rec[r] = self.record_row(b)

    # --- the loop -----------------------------------------------------------------------------------
    def run(self) -> Result:
        self.run_blocks()
        return Result(summary=self.sm, events=self.events, records=self.rec)

    def finish(self, b: int) -> None:
        m, s, pos, sm = self.m, self.s, self.pos, self.sm
        px, xr = float(m.price[b]), self.rate_value(b)
        cap = s.capital
        sm["end_equity"] = self.equity(b, px)
        sm["end_equity_rate"] = self.equity(b, xr)
        sm["end_collateral"] = pos.coll + pos.wallet
        sm["end_debt"] = pos.debt
        sm["end_cash"] = pos.cash + pos.queued
        years = float(m.ts[b] - m.ts[0]) / Y
        sm["net_apy"] = annualise(sm["end_equity"], cap, years)
        sm["net_apy_rate"] = annualise(sm["end_equity_rate"], cap, years)
        # benchmark: the same capital bought through the same entry at the first block and held, in the hold
        # token (the base LST when restaking: Market.hold_price / hold_xrate)
        if s.entry == "stake":
            # the hold token's underlying is the collateral's: bought at underlying_price, minted at hold_xrate
            tokens = cap / float(m.underlying_price[0]) / float(m.hold_xrate[0])
        else:
            fee = cap * s.costs.swap_fee
            net = cap - fee
            slip = net * slippage_fraction(s.costs, net)
            tokens = (net - slip) / float(m.hold_price[0])
        sm["hold_end_equity"] = tokens * float(m.hold_price[b])
        sm["hold_apy"] = annualise(sm["hold_end_equity"], cap, years)
        sm["n_events"] = len(self.events)



def run_reference(market: Market, params, oracle: str, capo_growth: float, capo_age: int,
                  rec_idx, metric_every: int) -> Result:
    """Replay one configuration with the reference engine: its Settings (Settings.of_config of a resolved
    Config), or a row of PARAMS_DTYPE, decoded into them."""
    s = params if isinstance(params, Settings) else Settings.of_params(params)
    return Replay(market, s, oracle, capo_growth, capo_age, rec_idx, metric_every).run()


def run_reference_paths(market: Market, params, lanes, rec_idx, metric_every: int, paths) -> list[Result]:
    """Every (configuration, path) pair, configuration-major, each path's market built explicitly (the
    collateral's price times the path's factor per block, backtest.paths.scale_market) and replayed.
    lanes: the engine's Lane per lane index (oracle, capo_growth, capo_age)."""
    from backtest.paths import hold_follows_price, scale_market

    scale_hold = hold_follows_price(market)
    markets = [scale_market(market, paths, k, scale_hold) for k in range(paths.n_paths)]
    out = []
    for i in range(len(params)):
        ln = lanes[int(params[i]["lane"])]
        s = Settings.of_params(params[i])
        for mk in markets:
            out.append(run_reference(mk, s, ln.oracle, ln.capo_growth, ln.capo_age, rec_idx, metric_every))
    return out
