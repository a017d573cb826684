"""Step 5 of the replay, the strategy acts: the open at the first block (hold, lend, loop, flash-loan), the
queue release, the de-peg exit, the rebalance (deleverage to target_hf, releverage to it within the max LTV)
and the unwind at the end, each sized by fixed-point solves under the swap costs and paying its gas."""
from __future__ import annotations

import math

from backtest.reference.state import FIXED_POINT_ITERS, INF, next_check_after
from backtest.schema import EVENT_KINDS


def frozen_wait(ex, ts: int) -> int:
    """The extra wait of a queue request at ``ts`` under a [[scenario]] withdrawals_frozen (``ex``: the Exit
    settings): until the freeze ends."""
    return ex.queue_frozen_until - ts if ex.queue_frozen_from <= ts < ex.queue_frozen_until else 0

class Strategy:
    """The one-collateral replay's step 5 (a mixin of Replay)."""

    def open(self, b: int) -> None:
        s, pos = self.s, self.pos
        kind = s.strategy
        cap = s.capital
        pc = self.oracle_price(b)
        if kind == "flash-loan":
            x = s.target_ltv
            ff = s.costs.flash_fee
            # F (1 + ff) = x * pc * q * (C + F), q = tokens per unit bought (depends on F via slippage)
            # no finite F reaches x when a unit bought is worth more than (1 + ff) / x at the oracle (a deep
            # DEX discount): the loan is then sized at cost, C x / (1 - x)
            f = cap * x / (1.0 - x)
            for _ in range(FIXED_POINT_ITERS):
                tokens, _, _ = self.buy_quote(b, cap + f)
                q = tokens / (cap + f)
                if not (1.0 + ff) - x * pc * q > 0:
                    f = cap * x / (1.0 - x)
                    break
                f = x * pc * q * cap / ((1.0 + ff) - x * pc * q)
            tokens, fee, slip = self.buy_quote(b, cap + f)
            self.book_swap(fee, slip)
            pos.cash -= cap
            pos.coll += tokens
            pos.debt += f * (1.0 + ff)
            self.tidy()                 # a flash loan within the dust is stored as no debt (core: set_balances)
            self.sm["flash_fee_cost"] += f * ff
            pos.open = True
            g = self.gas(b, s.costs.gas_open)
            self.event(b, "open", tokens, f * (1.0 + ff), fee + slip + f * ff + g)
            return
        tokens, fee, slip = self.buy_quote(b, cap)
        self.book_swap(fee, slip)
        pos.cash -= cap
        if kind == "hold":
            pos.wallet += tokens
        else:
            pos.coll += tokens
        pos.open = True
        g = self.gas(b, s.costs.gas_open)
        self.event(b, "open", tokens, 0.0, fee + slip + g)
        if kind != "loop":
            return
        x = s.target_ltv
        last = tokens
        for _ in range(s.loops):
            borrow = x * last * pc
            room = float(self.m.ltv[b]) * pos.coll * pc - pos.debt
            if borrow > room:
                borrow = max(room, 0.0)
            if borrow <= self.dust:     # no room, or room within rounding of zero (x at the max LTV)
                break
            t, fee, slip = self.buy_quote(b, borrow)
            self.book_swap(fee, slip)
            pos.debt += borrow
            pos.coll += t
            last = t
            g = self.gas(b, s.costs.gas_loop)
            self.event(b, "loop", t, borrow, fee + slip + g)

    def close_all(self, b: int, kind: str, route: str) -> None:
        """Unwind everything: flash-repay the debt, sell (dex) or queue (queue) the collateral."""
        pos, s, sm = self.pos, self.s, self.sm
        tokens = pos.coll + pos.wallet
        debt = pos.debt
        ff = s.costs.flash_fee if debt > self.dust else 0.0
        owed = debt * (1.0 + ff)
        cost = 0.0
        sold = tokens
        if route == "queue" and tokens > 0:
            # sell just enough on the DEX to cover the flash loan; queue the rest at the exchange rate
            sold = 0.0
            if owed > 0:
                k = 1.0 - s.costs.swap_fee
                price = float(self.m.price[b])
                for _ in range(FIXED_POINT_ITERS):
                    # the sizes only grow; once the debt takes every token (a sale yielding nothing gives
                    # k = 0, an infinite size) they are all sold
                    sold = owed / (price * k) if price * k > 0 else math.inf
                    if not sold < tokens:
                        break
                    out, _, _ = self.sell_quote(b, sold)
                    k = out / (sold * price)
                if not sold < tokens:
                    sold = tokens
        out, fee, slip = self.sell_quote(b, sold)
        self.book_swap(fee, slip)
        cost += fee + slip + debt * ff
        sm["flash_fee_cost"] += debt * ff
        pos.cash += out - owed
        rest = tokens - sold
        if rest > self.dust:
            pos.queued += rest * self.rate_value(b)    # redeemed at the exchange rate, in the debt asset
            ex = s.exit                                # only the queue route leaves tokens to redeem
            late = ex.queue_late_from > 0 and int(self.m.ts[b]) >= ex.queue_late_from
            pos.release_ts = int(self.m.ts[b]) + (ex.queue_delay_late if late else ex.queue_delay)
            pos.release_ts += frozen_wait(ex, int(self.m.ts[b]))
        pos.coll = 0.0
        pos.wallet = 0.0
        pos.debt = 0.0
        pos.closed = True
        cost += self.gas(b, s.costs.gas_close)
        self.event(b, kind, -tokens, -debt, cost)

    def deleverage(self, b: int) -> bool:
        pos, s, m = self.pos, self.s, self.m
        h = s.rebalance.target_hf
        pc, lt, px = self.oracle_price(b), self.lt(b), float(m.price[b])
        ff = s.costs.flash_fee
        k = 1.0 - s.costs.swap_fee
        delta = 0.0
        for _ in range(FIXED_POINT_ITERS):
            denom = h * px * k / (1.0 + ff) - pc * lt
            delta = (h * pos.debt - pos.coll * pc * lt) / denom if denom > 0 else INF
            if not delta < pos.coll:
                break
            out, _, _ = self.sell_quote(b, delta)
            k = out / (delta * px)
        if not delta < pos.coll:
            out, _, _ = self.sell_quote(b, pos.coll)
            if out >= pos.debt * (1.0 + ff):
                self.close_all(b, "rebalance", "dex")
                self.sm["n_rebalances"] += 1
                return True
            return False
        if delta <= self.dust:
            return False
        out, fee, slip = self.sell_quote(b, delta)
        self.book_swap(fee, slip)
        repay = out / (1.0 + ff)
        pos.coll -= delta
        pos.debt -= repay
        self.tidy()
        self.sm["flash_fee_cost"] += repay * ff
        g = self.gas(b, s.costs.gas_rebalance)
        self.sm["n_rebalances"] += 1
        self.event(b, "rebalance", -delta, -repay, fee + slip + repay * ff + g)
        return True

    def releverage(self, b: int) -> bool:
        pos, s, m = self.pos, self.s, self.m
        h = s.rebalance.target_hf
        pc, lt, px = self.oracle_price(b), self.lt(b), float(m.price[b])
        ltv = float(m.ltv[b])
        ff = s.costs.flash_fee
        kq, _, _ = self.buy_quote(b, 1.0)
        kq *= px                                   # tokens per unit of debt asset, times price
        f = 0.0
        for _ in range(FIXED_POINT_ITERS):
            d_h = h * (1.0 + ff) - kq * pc * lt / px
            d_c = (1.0 + ff) - ltv * kq * pc / px
            f_h = (pos.coll * pc * lt - h * pos.debt) / d_h if d_h > 0 else INF
            f_c = (ltv * pos.coll * pc - pos.debt) / d_c if d_c > 0 else INF
            f = min(f_h, f_c)
            if not (self.dust < f < INF):   # no room (at the max LTV to rounding) or no need
                return False
            t, _, _ = self.buy_quote(b, f)
            kq = t * px / f
        t, fee, slip = self.buy_quote(b, f)
        self.book_swap(fee, slip)
        pos.coll += t
        pos.debt += f * (1.0 + ff)
        self.sm["flash_fee_cost"] += f * ff
        g = self.gas(b, s.costs.gas_rebalance)
        self.sm["n_rebalances"] += 1
        self.event(b, "rebalance", t, f * (1.0 + ff), fee + slip + f * ff + g)
        return True

    def strategy(self, b: int) -> None:
        pos, s, m = self.pos, self.s, self.m
        ts = int(m.ts[b])
        reb, ex = s.rebalance, s.exit
        if b == 0:
            self.open(b)
            if reb is not None:
                pos.next_check = int(m.ts[0]) + reb.check_every
            return
        if pos.queued > 0 and ts >= pos.release_ts:
            amt = pos.queued
            pos.cash += amt
            pos.queued = 0.0
            self.events.append((b, EVENT_KINDS["queue_release"], 0.0, 0.0, 0.0, self.hf(b)))
        if pos.closed:
            return
        if ex is not None and self.depeg_ratio(b) < ex.depeg_below:
            self.close_all(b, "exit", ex.route)
            self.sm["exit_idx"] = b
            return
        if reb is not None and ts >= pos.next_check:
            pos.next_check = next_check_after(ts, int(m.ts[0]), reb.check_every)
            if pos.debt > self.dust and s.levered:
                hf = self.hf(b)
                if hf < reb.deleverage_below_hf:
                    self.deleverage(b)
                elif hf > reb.releverage_above_hf:
                    self.releverage(b)
        if b == len(m) - 1 and s.unwind_at_end:
            self.close_all(b, "unwind", "dex")
