"""The replay semantics of a multi-collateral position in plain Python: the spec ext/_legs.pxi must match.

One debt, several collateral legs (``backtest.legs.LegsMarket``; weights per configuration). The block order is
the one of ``backtest.reference`` (``state.BlockLoop``: accrue, slash, liquidation, strategy, record); what changes with legs:

* health factor: the protocol's, summed over the account's collateral, HF = sum_i coll_i x oracle_i x LT_i / debt
  (Aave GenericLogic.calculateUserAccountData; Compound III isLiquidatable with the liquidate CF per asset);
* Aave-family liquidation: each call names one collateral (LiquidationLogic.executeLiquidationCall). The
  liquidator here takes the leg of the largest oracle value (ties: the first leg): with an E-mode's one bonus it
  is the leg that lets it repay the most. Bonus, price and protocol fee are that leg's; the v3.3 $2,000 full-close
  rule reads that leg's collateral value (userReserveCollateralInBaseCurrency) and the debt, the $1,000 leftover
  rule that leg's remainder; debt is written off only when no collateral is left on any leg
  (hasNoCollateralLeft = totalCollateralInBaseCurrency == collateralToLiquidateInBaseCurrency);
* Compound III absorb: every leg is seized, the credit is sum_i value_i x liquidation factor_i;
* strategies: every buy (the capital, each loop's borrow, a flash loan, a releverage) is split by weight, each
  leg quoted on its own DEX (the configured slippage per leg's pool); a deleverage sells the same fraction of
  every leg; the de-peg exit fires when any leg's ratio falls below the threshold and closes every leg (the
  queue route sells the same fraction of every leg to repay the flash loan and queues the rest);
* amounts in collateral tokens (events, records, summary end_collateral / liq_coll_seized) are summed over the
  legs; the per-leg balances come in ``leg_summary`` and ``leg_records``.
"""
from __future__ import annotations

import math

import numpy as np

from backtest.reference.strategy import frozen_wait
from backtest.reference.liquidation import (
    MAX_LIQUIDATIONS_PER_BLOCK,
    aave_liquidation_size,
    protocol_fee_share,
)
from backtest.reference.costs import slippage_fraction
from backtest.reference.rates import index_growth, supply_increment
from backtest.reference.replay import Replay
from backtest.reference.settings import Settings
from backtest.reference.state import DUST_REL, FIXED_POINT_ITERS, INF, Y, BlockLoop, annualise, new_summary, next_check_after
from backtest.schema import EVENT_KINDS, N_RECORD, PROTOCOL_NAMES, PROTOCOLS
from backtest.venues import venue

LEG_SUMMARY = ("end_collateral", "liq_coll_seized", "liq_coll_seized_value")
LEG_RECORD = ("collateral", "oracle_price", "market_price", "exchange_rate")


class LegsReplay(BlockLoop):
    """One configuration (its Settings, or a PARAMS_DTYPE row decoded into them) over a LegsMarket, bought by
    `weights`; `views[i]` prices leg i (a one-leg Replay used for its quotes)."""

    def __init__(self, market, p, weights, oracle: str, capo_growths, capo_age: int, rec_idx, metric_every: int):
        s = p if isinstance(p, Settings) else Settings.of_params(p)
        self.m = market
        self.s = s
        self.L = len(market.legs)
        self.w = [float(x) for x in weights]
        self.views = [Replay(leg, s, oracle, g, capo_age, rec_idx, metric_every)
                      for leg, g in zip(market.legs, capo_growths)]
        self.rec_idx = np.asarray(rec_idx, dtype=np.int64)
        self.metric_every = int(metric_every)
        self.coll = [0.0] * self.L
        self.wallet = [0.0] * self.L
        self.debt = 0.0
        self.cash = s.capital
        self.queued = 0.0
        self.release_ts = 0
        self.closed = False
        self.next_check = 0
        self.sm = new_summary()
        self.leg_sm = np.zeros((self.L, len(LEG_SUMMARY)))
        self.events: list = []
        self.event_legs: list = []
        self.peak = -INF
        self.protocol = PROTOCOLS[s.protocol]
        self.risks = [v.risk for v in self.views]            # each leg's risk parameters by the venue's names
        self.dust = DUST_REL * s.capital
        self.rec = np.zeros((len(self.rec_idx), N_RECORD))
        self.leg_rec = np.zeros((len(self.rec_idx), self.L, len(LEG_RECORD)))

    # --- market views ----------------------------------------------------------------------------
    def pc(self, i, b):
        return self.views[i].oracle_price(b)

    def px(self, i, b):
        return float(self.m.legs[i].price[b])

    def hf(self, b):
        if self.debt <= self.dust:
            return INF
        return sum(self.coll[i] * self.pc(i, b) * float(self.m.legs[i].lt[b]) for i in range(self.L)) / self.debt

    def tidy(self):
        for i in range(self.L):
            if self.coll[i] <= self.dust:
                self.coll[i] = 0.0
        if self.debt <= self.dust:
            self.debt = 0.0

    def empty(self):
        return all(c <= self.dust for c in self.coll)

    def gas(self, b, units):
        g = self.s.costs.gas_gwei
        price = float(self.m.gas_gwei[b]) if g is None else g
        cost = units * price * 1e-9 * float(self.m.gas_token_price[b])
        self.cash -= cost
        self.sm["gas_cost"] += cost
        return cost

    def buy(self, i, b, amount):
        return self.views[i].buy_quote(b, amount)

    def sell(self, i, b, tokens):
        return self.views[i].sell_quote(b, tokens)

    def book_swap(self, fee, slip):
        self.sm["swap_fee_cost"] += fee
        self.sm["slippage_cost"] += slip

    def event(self, b, kind, coll, debt, cost, leg=-1):
        self.events.append((b, EVENT_KINDS[kind], coll, debt, cost, self.hf(b)))
        self.event_legs.append(leg)

    # --- step 2 ---------------------------------------------------------------------------------------
    def accrue(self, b):
        m, sm = self.m, self.sm
        dt = float(m.ts[b] - m.ts[b - 1])
        gb = 1.0
        for i, lm in enumerate(m.legs):
            dr = float(lm.xrate[b] - lm.xrate[b - 1])
            up = float(lm.underlying_price[b])
            sm["staking_yield"] += (self.coll[i] + self.wallet[i]) * dr * up
            gs, gb = index_growth(self.protocol, float(lm.supply_apr[b - 1]), float(m.borrow_apr[b - 1]), dt)
            sm["supply_yield"] += self.coll[i] * supply_increment(self.protocol, float(lm.supply_apr[b - 1]), dt) \
                * float(lm.xrate[b]) * up
            self.coll[i] *= gs
        sm["interest_paid"] += self.debt * (gb - 1.0)
        self.debt *= gb

    # --- step 4 ---------------------------------------------------------------------------------------
    def book_liquidation(self, b, leg_seized, leg_value, repay, penalty, fee_value, leg):
        sm = self.sm
        sm["liq_count"] += 1
        sm["liq_debt_repaid"] += repay
        sm["liq_coll_seized"] += sum(leg_seized)
        sm["liq_coll_seized_value"] += sum(leg_value)
        sm["liq_penalty"] += penalty
        sm["liq_protocol_fee"] += fee_value
        for i in range(self.L):
            self.leg_sm[i, 1] += leg_seized[i]
            self.leg_sm[i, 2] += leg_value[i]
        self.event(b, "liquidation", -sum(leg_seized), -repay, penalty, leg)

    def write_off(self, b, bad):
        self.sm["bad_debt"] += bad
        self.debt = 0.0
        self.event(b, "bad_debt", 0.0, -bad, bad)

    def liquidate(self, b):
        v = venue(PROTOCOL_NAMES[self.protocol])
        if v.one_collateral:
            raise ValueError(v.one_collateral)
        if v.liquidation == "comet":
            self.absorb(b)
        else:
            self.liquidate_aave(b)

    def absorb(self, b):
        if self.debt <= self.dust or self.empty() or not self.hf(b) < 1.0:
            return
        seized = list(self.coll)
        value = [self.coll[i] * self.pc(i, b) for i in range(self.L)]
        credit = sum(value[i] * float(self.risks[i]["liquidation_factor"][b]) for i in range(self.L))
        debt = self.debt
        repay = min(credit, debt)
        total = sum(value)
        self.coll = [0.0] * self.L
        self.debt = 0.0
        self.cash += credit - repay
        self.book_liquidation(b, seized, value, repay, total - credit, total - credit, -1)
        if debt - repay > self.dust:
            self.write_off(b, debt - repay)

    def liquidate_aave(self, b):
        m, s = self.m, self.s
        for _ in range(MAX_LIQUIDATIONS_PER_BLOCK):
            if self.debt <= self.dust or self.empty():
                return
            hf = self.hf(b)
            if not hf < 1.0:
                return
            j, best = 0, -1.0
            for i in range(self.L):                  # the leg of the largest oracle value, first on ties
                v = self.coll[i] * self.pc(i, b)
                if self.coll[i] > self.dust and v > best:
                    j, best = i, v
            coll, debt = self.coll[j], self.debt
            pc = self.pc(j, b)
            lb = 1.0 + float(self.risks[j]["liquidation_bonus"][b])
            pf = protocol_fee_share(self.protocol, self.risks[j]["liquidation_protocol_fee"][b])
            size = aave_liquidation_size(self.protocol, s, int(m.ts[b]), hf, coll, debt, pc, lb,
                                         float(m.eth_usd[b]), self.dust)
            if size is None:
                return
            repay, seized = size
            fee_tokens = (seized - seized / lb) * pf
            self.coll[j] = coll - seized
            self.debt = debt - repay
            self.tidy()
            leg_seized = [seized if i == j else 0.0 for i in range(self.L)]
            leg_value = [seized * pc if i == j else 0.0 for i in range(self.L)]
            self.book_liquidation(b, leg_seized, leg_value, repay, seized * pc - repay, fee_tokens * pc, j)
            if self.empty() and self.debt > self.dust:
                self.write_off(b, self.debt)
                return

    # --- step 5 ---------------------------------------------------------------------------------------
    def open(self, b):
        s = self.s
        kind = s.strategy
        cap = s.capital
        L, w = self.L, self.w
        pcs = [self.pc(i, b) for i in range(L)]
        if kind == "flash-loan":
            x, ff = s.target_ltv, s.costs.flash_fee
            # F (1 + ff) = x Q (C + F), Q = oracle value bought per unit spent, summed over the legs
            f = cap * x / (1.0 - x)
            for _ in range(FIXED_POINT_ITERS):
                q = sum(self.buy(i, b, w[i] * (cap + f))[0] * pcs[i] for i in range(L)) / (cap + f)
                if not (1.0 + ff) - x * q > 0:
                    f = cap * x / (1.0 - x)
                    break
                f = x * q * cap / ((1.0 + ff) - x * q)
            got, cost = self.buy_all(b, cap + f)
            self.cash -= cap
            for i in range(L):
                self.coll[i] += got[i]
            self.debt += f * (1.0 + ff)
            self.sm["flash_fee_cost"] += f * ff
            g = self.gas(b, s.costs.gas_open)
            self.event(b, "open", sum(got), f * (1.0 + ff), cost + f * ff + g)
            return
        got, cost = self.buy_all(b, cap)
        self.cash -= cap
        for i in range(L):
            if kind == "hold":
                self.wallet[i] += got[i]
            else:
                self.coll[i] += got[i]
        g = self.gas(b, s.costs.gas_open)
        self.event(b, "open", sum(got), 0.0, cost + g)
        if kind != "loop":
            return
        x = s.target_ltv
        last = sum(got[i] * pcs[i] for i in range(L))
        for _ in range(s.loops):
            borrow = x * last
            room = sum(float(self.m.legs[i].ltv[b]) * self.coll[i] * pcs[i] for i in range(L)) - self.debt
            if borrow > room:
                borrow = max(room, 0.0)
            if borrow <= self.dust:
                break
            got, cost = self.buy_all(b, borrow)
            for i in range(L):
                self.coll[i] += got[i]
            self.debt += borrow
            last = sum(got[i] * pcs[i] for i in range(L))
            g = self.gas(b, s.costs.gas_loop)
            self.event(b, "loop", sum(got), borrow, cost + g)

    def buy_all(self, b, amount):
        """Spend `amount` split by weight; (tokens per leg, fee + slippage)."""
        got, cost = [], 0.0
        for i in range(self.L):
            t, fee, slip = self.buy(i, b, self.w[i] * amount)
            self.book_swap(fee, slip)
            got.append(t)
            cost += fee + slip
        return got, cost

    def sell_all(self, b, amounts, book):
        out, cost = 0.0, 0.0
        for i in range(self.L):
            o, fee, slip = self.sell(i, b, amounts[i])
            if book:
                self.book_swap(fee, slip)
            out += o
            cost += fee + slip
        return out, cost

    def close_all(self, b, kind, route):
        s, sm, L = self.s, self.sm, self.L
        tokens = [self.coll[i] + self.wallet[i] for i in range(L)]
        debt = self.debt
        ff = s.costs.flash_fee if debt > self.dust else 0.0
        owed = debt * (1.0 + ff)
        sold = list(tokens)
        if route == "queue" and sum(tokens) > 0:
            # sell the same fraction of every leg, just enough to repay the flash loan; queue the rest
            phi = 0.0
            if owed > 0:
                v = sum(tokens[i] * self.px(i, b) for i in range(L))
                k = 1.0 - s.costs.swap_fee
                for _ in range(FIXED_POINT_ITERS):
                    phi = owed / (v * k) if v * k > 0 else math.inf
                    if not phi < 1.0:          # the debt takes every token: sell them all (see close_all)
                        break
                    out, _ = self.sell_all(b, [phi * t for t in tokens], False)
                    k = out / (phi * v)
                if not phi < 1.0:
                    phi = 1.0
            sold = [phi * t for t in tokens]
        out, cost = self.sell_all(b, sold, True)
        cost += debt * ff
        sm["flash_fee_cost"] += debt * ff
        self.cash += out - owed
        for i in range(L):
            rest = tokens[i] - sold[i]
            if rest > self.dust:
                ex = s.exit                            # only the queue route leaves tokens to redeem
                late = ex.queue_late_from > 0 and int(self.m.ts[b]) >= ex.queue_late_from
                self.queued += rest * self.views[i].rate_value(b)
                self.release_ts = int(self.m.ts[b]) + (ex.queue_delay_late if late else ex.queue_delay)
                self.release_ts += frozen_wait(ex, int(self.m.ts[b]))
        self.coll = [0.0] * L
        self.wallet = [0.0] * L
        self.debt = 0.0
        self.closed = True
        cost += self.gas(b, s.costs.gas_close)
        self.event(b, kind, -sum(tokens), -debt, cost)

    def deleverage(self, b):
        s, L = self.s, self.L
        h, ff = s.rebalance.target_hf, s.costs.flash_fee
        k = 1.0 - s.costs.swap_fee
        a = sum(self.coll[i] * self.pc(i, b) * float(self.m.legs[i].lt[b]) for i in range(L))
        v = sum(self.coll[i] * self.px(i, b) for i in range(L))
        phi = 0.0
        for _ in range(FIXED_POINT_ITERS):
            denom = h * v * k / (1.0 + ff) - a
            phi = (h * self.debt - a) / denom if denom > 0 else INF
            if not phi < 1.0:
                break
            out, _ = self.sell_all(b, [phi * c for c in self.coll], False)
            k = out / (phi * v)
        if not phi < 1.0:
            out, _ = self.sell_all(b, self.coll, False)
            if out >= self.debt * (1.0 + ff):
                self.close_all(b, "rebalance", "dex")
                self.sm["n_rebalances"] += 1
                return True
            return False
        delta = [phi * c for c in self.coll]
        if sum(delta) <= self.dust:
            return False
        out, cost = self.sell_all(b, delta, True)
        repay = out / (1.0 + ff)
        for i in range(L):
            self.coll[i] -= delta[i]
        self.debt -= repay
        self.tidy()
        self.sm["flash_fee_cost"] += repay * ff
        g = self.gas(b, s.costs.gas_rebalance)
        self.sm["n_rebalances"] += 1
        self.event(b, "rebalance", -sum(delta), -repay, cost + repay * ff + g)
        return True

    def releverage(self, b):
        s, L, w = self.s, self.L, self.w
        h, ff = s.rebalance.target_hf, s.costs.flash_fee
        pcs = [self.pc(i, b) for i in range(L)]
        lts = [float(self.m.legs[i].lt[b]) for i in range(L)]
        ltvs = [float(self.m.legs[i].ltv[b]) for i in range(L)]
        a = sum(self.coll[i] * pcs[i] * lts[i] for i in range(L))
        cap_l = sum(self.coll[i] * pcs[i] * ltvs[i] for i in range(L))

        def gains(f):
            t = [self.buy(i, b, w[i] * f)[0] for i in range(L)]
            return (sum(t[i] * pcs[i] * lts[i] for i in range(L)) / f,
                    sum(t[i] * pcs[i] * ltvs[i] for i in range(L)) / f)

        g_h, g_c = gains(1.0)
        f = 0.0
        for _ in range(FIXED_POINT_ITERS):
            d_h = h * (1.0 + ff) - g_h
            d_c = (1.0 + ff) - g_c
            f_h = (a - h * self.debt) / d_h if d_h > 0 else INF
            f_c = (cap_l - self.debt) / d_c if d_c > 0 else INF
            f = min(f_h, f_c)
            if not (self.dust < f < INF):
                return False
            g_h, g_c = gains(f)
        got, cost = self.buy_all(b, f)
        for i in range(L):
            self.coll[i] += got[i]
        self.debt += f * (1.0 + ff)
        self.sm["flash_fee_cost"] += f * ff
        g = self.gas(b, s.costs.gas_rebalance)
        self.sm["n_rebalances"] += 1
        self.event(b, "rebalance", sum(got), f * (1.0 + ff), cost + f * ff + g)
        return True

    def depegged(self, b):
        return any(v.depeg_ratio(b) < self.s.exit.depeg_below for v in self.views)

    def strategy(self, b):
        s, m = self.s, self.m
        ts = int(m.ts[b])
        reb, ex = s.rebalance, s.exit
        if b == 0:
            self.open(b)
            if reb is not None:
                self.next_check = int(m.ts[0]) + reb.check_every
            return
        if self.queued > 0 and ts >= self.release_ts:
            self.cash += self.queued
            self.queued = 0.0
            self.event(b, "queue_release", 0.0, 0.0, 0.0)
        if self.closed:
            return
        if ex is not None and self.depegged(b):
            self.close_all(b, "exit", ex.route)
            self.sm["exit_idx"] = b
            return
        if reb is not None and ts >= self.next_check:
            self.next_check = next_check_after(ts, int(m.ts[0]), reb.check_every)
            if self.debt > self.dust and s.levered:
                hf = self.hf(b)
                if hf < reb.deleverage_below_hf:
                    self.deleverage(b)
                elif hf > reb.releverage_above_hf:
                    self.releverage(b)
        if b == len(m) - 1 and s.unwind_at_end:
            self.close_all(b, "unwind", "dex")

    # --- step 6 ---------------------------------------------------------------------------------------
    def equity(self, b, marks):
        return sum((self.coll[i] + self.wallet[i]) * marks[i] for i in range(self.L)) + self.cash + self.queued \
            - self.debt

    def record_row(self, b):
        L = self.L
        pxs = [self.px(i, b) for i in range(L)]
        pcs = [self.pc(i, b) for i in range(L)]
        e = self.equity(b, pxs)
        tokens = sum(self.coll[i] + self.wallet[i] for i in range(L))
        exposure = sum((self.coll[i] + self.wallet[i]) * pxs[i] for i in range(L))
        coll_val = sum(self.coll[i] * pcs[i] for i in range(L))
        row = [tokens, self.debt, self.cash + self.queued, self.hf(b),
               self.debt / coll_val if coll_val > 0 else 0.0,
               exposure / e if e > 0 else (0.0 if tokens == 0 else INF),
               math.nan, math.nan, math.nan, e, self.equity(b, [v.rate_value(b) for v in self.views])]
        legs = [[self.coll[i] + self.wallet[i], pcs[i], pxs[i], float(self.m.legs[i].xrate[b])] for i in range(L)]
        return row, legs

    def metric_sample(self, b):
        pxs = [self.px(i, b) for i in range(self.L)]
        e = self.equity(b, pxs)
        sm = self.sm
        if e > self.peak:
            self.peak = e
        if self.peak > 0:
            dd = 1.0 - e / self.peak
            if dd > sm["max_drawdown"]:
                sm["max_drawdown"] = dd
        tokens = sum(self.coll[i] + self.wallet[i] for i in range(self.L))
        if e > 0 and tokens > 0:
            sm["lev_sum"] += sum((self.coll[i] + self.wallet[i]) * pxs[i] for i in range(self.L)) / e
            sm["lev_n"] += 1

    def slash(self, b):
        cost = 0.0
        held = False
        for i, lm in enumerate(self.m.legs):
            f = float(lm.slash[b])
            t = self.coll[i] + self.wallet[i]
            if f > 0 and t > 0:
                held = True
                cost += t * float(lm.xrate[b]) * f / (1.0 - f) * float(lm.underlying_price[b])
        if held:
            self.event(b, "slash", 0.0, 0.0, cost)

    def debt_now(self):
        return self.debt

    def record(self, r, b):
        self.rec[r], self.leg_rec[r] = self.record_row(b)

    def run(self):
        self.run_blocks()
        return self.sm, self.events, self.event_legs, self.rec, self.leg_sm, self.leg_rec

    def finish(self, b):
        m, s, sm, L = self.m, self.s, self.sm, self.L
        cap = s.capital
        sm["end_equity"] = self.equity(b, [self.px(i, b) for i in range(L)])
        sm["end_equity_rate"] = self.equity(b, [v.rate_value(b) for v in self.views])
        sm["end_collateral"] = sum(self.coll[i] + self.wallet[i] for i in range(L))
        for i in range(L):
            self.leg_sm[i, 0] = self.coll[i] + self.wallet[i]
        sm["end_debt"] = self.debt
        sm["end_cash"] = self.cash + self.queued
        years = float(m.ts[b] - m.ts[0]) / Y
        sm["net_apy"] = annualise(sm["end_equity"], cap, years)
        sm["net_apy_rate"] = annualise(sm["end_equity_rate"], cap, years)
        # benchmark: the capital split by weight, bought at the first block through the same entry and held
        hold = 0.0
        for i, lm in enumerate(m.legs):
            c = self.w[i] * cap
            if s.entry == "stake":
                tokens = c / float(lm.underlying_price[0]) / float(lm.hold_xrate[0])
            else:
                fee = c * s.costs.swap_fee
                net = c - fee
                slip = net * slippage_fraction(s.costs, net)
                tokens = (net - slip) / float(lm.hold_price[0])
            hold += tokens * float(lm.hold_price[b])
        sm["hold_end_equity"] = hold
        sm["hold_apy"] = annualise(hold, cap, years)
        sm["n_events"] = len(self.events)
