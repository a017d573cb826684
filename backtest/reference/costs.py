"""Trading costs in the replay: the swap quotes (swap fee, the configured slippage model), gas in the debt
asset, and their booking into the summary (swap_fee_cost, slippage_cost, gas_cost)."""
from __future__ import annotations

import math

from backtest.reference.settings import Costs


def stableswap_out(dx: float, depth: float, amp: float) -> float:
    """Output of a 2-coin Curve StableSwap pool with balances (depth, depth) for an input dx.

    Invariant A·n^n·Σx + D = A·D·n^n + D^(n+1)/(n^n·Πx), n = 2, ann = A·n^n = 4·amp. At balance D = 2·depth
    exactly. Curve's get_y solves y² + (x + D/ann − D)·y = D³/(4·ann·x) for the new balance y at x = depth + dx;
    with y = depth − u and the invariant holding at (depth, depth) this is u² − B·u + C = 0,
    B = depth + dx + 2·depth/ann, C = dx·(depth + 2·depth²/(ann·(depth + dx))). The smaller root, written
    2C / (B + √(B² − 4C)), is the output without the cancellation of y0 − y (which loses ~1e-15·depth)."""
    if dx <= 0:
        return 0.0
    ann = amp * 4.0
    bq = depth + dx + 2.0 * depth / ann
    cq = dx * (depth + 2.0 * depth * depth / (ann * (depth + dx)))
    return 2.0 * cq / (bq + math.sqrt(bq * bq - 4.0 * cq))


def slippage_fraction(c: Costs, notional: float) -> float:
    """Fraction of a trade's value lost to price impact under costs.slippage (the swap fee is separate)."""
    model = c.slippage
    if notional <= 0 or model == "none":
        return 0.0
    if model == "linear":
        return min(c.slippage_bps * notional / 1e4, 0.99)
    if model == "constant-product":
        return notional / (c.pool_depth + notional)
    if model == "stableswap":
        return 1.0 - stableswap_out(notional, c.pool_depth, c.amp) / notional
    raise ValueError(f"unknown slippage model {model}")


class Trading:
    """The replay's quotes and costs (a mixin of Replay: reads self.m, self.s, self.pos, self.sm)."""

    def gas(self, b: int, units: float) -> float:
        g = self.s.costs.gas_gwei
        price = float(self.m.gas_gwei[b]) if g is None else g
        # gwei of the chain's gas token, in the debt asset at the block's gas-token price
        cost = units * price * 1e-9 * float(self.m.gas_token_price[b])
        self.pos.cash -= cost
        self.sm["gas_cost"] += cost
        return cost

    # --- swaps ------------------------------------------------------------------------------------
    def buy_quote(self, b: int, amount: float) -> tuple[float, float, float]:
        """Tokens received for `amount` of debt asset, with (fee, slippage) costs in the debt asset."""
        c = self.s.costs
        if amount <= 0:
            return 0.0, 0.0, 0.0
        if self.s.entry == "stake":
            # the debt asset buys the underlying at its price; the underlying is minted at the exchange rate
            return amount / float(self.m.underlying_price[b]) / float(self.m.xrate[b]), 0.0, 0.0
        fee = amount * c.swap_fee
        net = amount - fee
        slip = net * slippage_fraction(c, net)
        return (net - slip) / float(self.m.price[b]), fee, slip

    def sell_quote(self, b: int, tokens: float) -> tuple[float, float, float]:
        """Debt asset received for `tokens` sold on the DEX, with (fee, slippage) costs."""
        c = self.s.costs
        if tokens <= 0:
            return 0.0, 0.0, 0.0
        value = tokens * float(self.m.price[b])
        fee = value * c.swap_fee
        net = value - fee
        slip = net * slippage_fraction(c, net)
        return net - slip, fee, slip

    def book_swap(self, fee: float, slip: float) -> None:
        self.sm["swap_fee_cost"] += fee
        self.sm["slippage_cost"] += slip

