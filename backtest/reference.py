"""The replay semantics in plain Python: slow, readable, the spec the Cython core must match.

One configuration, one block at a time, in the order of DESIGN.md section 5:
  1. read the aligned market state at block b;
  2. accrue interest since b-1 with the protocol's own index math, applied every block as the reserve is
     touched every block: Aave family and generic: per-second 3-term binomial on the variable borrow index,
     linear supply index; Morpho Blue: wTaylorCompounded x + x^2/2 + x^3/6 on the debt, collateral earns
     nothing; Compound III: linear borrow index per accrual, collateral earns nothing;
  3. price the collateral with the market's oracle mode;
  4. liquidation while HF < 1, per venue: Aave (close factor, bonus, protocol fee, v3.3 dust and deficit
     rules), generic (Aave v2 with the configured close factor and fee), Morpho Blue (no close factor, LIF from
     the LLTV, bad debt written off), Compound III (absorb with the liquidation factor);
  5. the strategy acts (open at the first block, queue release, de-peg exit, rebalance), paying gas,
     swap fee, slippage and flash-loan fees;
  6. record (time-series samples at the record blocks; metric samples every ``metric_every`` blocks).

Restaking (market-level, prepared by align): ``Market.reward`` is the cumulative reward value per collateral
token held, accrued in step 2 on the tokens held over (b-1, b] into ``restaking_rewards`` (not into equity);
``Market.slash[b]`` is the fraction the exchange rate was cut at b (already in ``xrate``): after step 2 a
configuration holding tokens records a ``slash`` event; the hold benchmark is bought and marked with
``Market.hold_price`` / ``hold_xrate`` (the base LST); a queued withdrawal requested at or after
``queue_late_from`` (when > 0) waits ``queue_delay_late`` instead of ``queue_delay``.

Unlike the core, this engine keeps *actual* balances and multiplies them by each block's growth factor,
computes every oracle price itself and evaluates the health factor from balances, so the differential test
compares two independent implementations of one semantics. All amounts are in units of the debt asset
(WETH, USDC, ...) except collateral, which is in collateral tokens. The exchange rate is underlying per token: a
value in the debt asset is xrate x ``Market.underlying_price`` (1.0 for a WETH debt, ETH/USDC for a USDC debt),
and gas (gwei of the chain's gas token) is converted at ``Market.gas_token_price``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from backtest.data.market import Market
from backtest.venues import aave_v4, venue
from backtest.schema import (
    ENTRIES,
    EVENT_KINDS,
    EXIT_ROUTES,
    N_RECORD,
    PROTOCOL_NAMES,
    PROTOCOLS,
    SECONDS_PER_YEAR,
    SLIPPAGE,
    STRATEGIES,
    SUMMARY_DTYPE,
)

Y = float(SECONDS_PER_YEAR)
INF = math.inf
FIXED_POINT_ITERS = 30          # fixed-point solves for sizes under slippage use exactly this many rounds
MAX_LIQUIDATIONS_PER_BLOCK = 64
CLOSE_FACTOR_HF_THRESHOLD = 0.95
MIN_BASE_MAX_CLOSE_FACTOR_USD = 2000.0    # v3.3: below this, 100 % close factor
MIN_LEFTOVER_USD = 1000.0                 # v3.3: leftovers of a partial liquidation must be at least this
DUST_REL = 1e-12     # dust is relative: balances and amounts at or below DUST_REL x capital count as zero


# ------------------------------------------------------------------------------------------------ math
def aave_borrow_growth(rate: float, dt: float) -> float:
    """Aave MathUtils.calculateCompoundedInterest: 1 + rt/Y + t(t-1)(r/Y)^2/2 + t(t-1)(t-2)(r/Y)^3/6."""
    if dt <= 0:
        return 1.0
    rps = rate / Y
    return 1.0 + rps * dt + dt * (dt - 1.0) * rps * rps / 2.0 + dt * (dt - 1.0) * (dt - 2.0) * rps * rps * rps / 6.0


def aave_supply_growth(rate: float, dt: float) -> float:
    """Aave MathUtils.calculateLinearInterest: 1 + rt/Y."""
    if dt <= 0:
        return 1.0
    return 1.0 + rate * dt / Y


def morpho_borrow_growth(rate: float, dt: float) -> float:
    """Morpho Blue MathLib.wTaylorCompounded: 1 + x + x^2/2 + x^3/6, x = rate * dt / Y (e^x to 3 terms)."""
    if dt <= 0:
        return 1.0
    x = rate * dt / Y
    return 1.0 + x + x * x / 2.0 + x * x * x / 6.0


def linear_growth(rate: float, dt: float) -> float:
    """Compound III accruedInterestIndices: index += index * rate * dt (simple interest per accrual)."""
    if dt <= 0:
        return 1.0
    return 1.0 + rate * dt / Y


BORROW_GROWTH = {"binomial": aave_borrow_growth, "taylor": morpho_borrow_growth, "linear": linear_growth}


def index_growth(protocol: int, supply_apr: float, borrow_apr: float, dt: float) -> tuple[float, float]:
    """(supply index growth of the collateral, borrow index growth of the debt) over dt seconds, by the
    venue's rate model (Venue.growth: Aave family and generic linear / binomial, Morpho none / Taylor, Comet
    none / linear, Aave v4 linear / linear drawn index)."""
    supply, borrow = venue(PROTOCOL_NAMES[protocol]).growth
    gs = 1.0 if supply == "none" else aave_supply_growth(supply_apr, dt)
    return gs, BORROW_GROWTH[borrow](borrow_apr, dt)


def supply_increment(protocol: int, supply_apr: float, dt: float) -> float:
    """gs - 1 computed directly (1 + 1e-10 minus 1 keeps only ~6 digits): the supply yield per token."""
    if not venue(PROTOCOL_NAMES[protocol]).supply_yield or dt <= 0:
        return 0.0
    return supply_apr * dt / Y


def morpho_lif(lltv: float) -> float:
    """Morpho Blue liquidation incentive factor: min(1.15, 1 / (1 - 0.3 (1 - LLTV)))."""
    return min(1.15, 1.0 / (1.0 - 0.3 * (1.0 - lltv)))


# AdaptiveCurveIRM (morpho-org/morpho-blue-irm, ConstantsLib): per-year rates
IRM_TARGET_U = 0.9
IRM_STEEPNESS = 4.0
IRM_SPEED = 50.0
IRM_INITIAL_RT = 0.04
IRM_MIN_RT = 0.001
IRM_MAX_RT = 2.0


def irm_err(u: float) -> float:
    """(U - 0.9) / 0.9 below the target, (U - 0.9) / 0.1 above; U clamped to [0, 1]."""
    u = min(max(u, 0.0), 1.0)
    if u > IRM_TARGET_U:
        return (u - IRM_TARGET_U) / (1.0 - IRM_TARGET_U)
    return (u - IRM_TARGET_U) / IRM_TARGET_U


def irm_curve(rate_at_target: float, err: float) -> float:
    """(0.75 err + 1) r_T below the target, (3 err + 1) r_T at or above it (steepness 4)."""
    if err < 0:
        return ((1.0 - 1.0 / IRM_STEEPNESS) * err + 1.0) * rate_at_target
    return ((IRM_STEEPNESS - 1.0) * err + 1.0) * rate_at_target


def irm_new_rate_at_target(start: float, linear_adaptation: float) -> float:
    return min(max(start * math.exp(linear_adaptation), IRM_MIN_RT), IRM_MAX_RT)


def irm_step(start_rt: float, u: float, dt: float) -> tuple[float, float]:
    """(average borrow rate over the interval, rate at target at its end): AdaptiveCurveIrm._borrowRate with
    r_T(t) = r_T exp(50 err t) bounded to [0.1 %, 200 %] and the trapezoid (start + end + 2 mid) / 4."""
    err = irm_err(u)
    lin = IRM_SPEED * err * dt / Y
    if lin == 0.0:
        return irm_curve(start_rt, err), start_rt
    end = irm_new_rate_at_target(start_rt, lin)
    mid = irm_new_rate_at_target(start_rt, lin / 2.0)
    return irm_curve((start_rt + end + 2.0 * mid) / 4.0, err), end


def adaptive_curve_rates(ts, utilization, rate_at_target0: float = IRM_INITIAL_RT) -> tuple[np.ndarray, np.ndarray]:
    """The IRM along a utilisation path, one value per block: borrow[b] is the rate charged from b to b+1
    (utilisation of block b), rate_at_target[b] is r_T at b (r_T[0] = rate_at_target0); the last borrow rate
    is the curve at the last r_T (never charged)."""
    n = len(ts)
    rate = np.empty(n)
    rt = np.empty(n)
    rt[0] = rate_at_target0
    for b in range(n - 1):
        rate[b], rt[b + 1] = irm_step(float(rt[b]), float(utilization[b]), float(ts[b + 1] - ts[b]))
    rate[n - 1] = irm_curve(float(rt[n - 1]), irm_err(float(utilization[n - 1])))
    return rate, rt


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


def slippage_fraction(model: int, notional: float, p) -> float:
    """Fraction of a trade's value lost to price impact (the swap fee is separate)."""
    if notional <= 0 or model == SLIPPAGE["none"]:
        return 0.0
    if model == SLIPPAGE["linear"]:
        return min(p["slip_param"] * notional / 1e4, 0.99)
    if model == SLIPPAGE["constant-product"]:
        return notional / (p["pool_depth"] + notional)
    if model == SLIPPAGE["stableswap"]:
        return 1.0 - stableswap_out(notional, p["pool_depth"], p["amp"]) / notional
    raise ValueError(f"unknown slippage model {model}")


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


class Replay:
    """One configuration replayed over one market."""

    def __init__(self, market: Market, p, oracle: str, capo_growth: float, capo_age: int,
                 rec_idx: np.ndarray, metric_every: int):
        self.m = market
        self.p = p
        self.oracle = oracle
        self.capo_growth = capo_growth
        self.capo_age = int(capo_age)
        self.rec_idx = np.asarray(rec_idx, dtype=np.int64)
        self.metric_every = int(metric_every)
        self.dust = DUST_REL * float(p["capital"])
        if venue(PROTOCOL_NAMES[int(p["protocol"])]).premium_debt:
            self.pos = PremiumDebtPosition(float(p["v4_collateral_risk"]), self.dust, cash=float(p["capital"]))
        else:
            self.pos = Position(cash=float(p["capital"]))
        self.sm = {name: (0 if SUMMARY_DTYPE[name].kind == "i" else 0.0) for name in SUMMARY_DTYPE.names}
        self.sm["min_hf"] = INF
        self.sm["min_hf_idx"] = -1
        self.sm["exit_idx"] = -1
        self.events: list = []
        self.peak = -INF
        self.protocol = int(p["protocol"])

    # --- market views -----------------------------------------------------------------------------
    def oracle_price(self, b: int) -> float:
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

    def gas(self, b: int, units: float) -> float:
        g = self.p["gas_gwei"]
        price = float(self.m.gas_gwei[b]) if math.isnan(g) else float(g)
        # gwei of the chain's gas token, in the debt asset at the block's gas-token price
        cost = units * price * 1e-9 * float(self.m.gas_token_price[b])
        self.pos.cash -= cost
        self.sm["gas_cost"] += cost
        return cost

    # --- swaps ------------------------------------------------------------------------------------
    def buy_quote(self, b: int, amount: float) -> tuple[float, float, float]:
        """Tokens received for `amount` of debt asset, with (fee, slippage) costs in the debt asset."""
        p = self.p
        if amount <= 0:
            return 0.0, 0.0, 0.0
        if p["entry"] == ENTRIES["stake"]:
            # the debt asset buys the underlying at its price; the underlying is minted at the exchange rate
            return amount / float(self.m.underlying_price[b]) / float(self.m.xrate[b]), 0.0, 0.0
        fee = amount * p["swap_fee"]
        net = amount - fee
        slip = net * slippage_fraction(int(p["slip_model"]), net, p)
        return (net - slip) / float(self.m.price[b]), fee, slip

    def sell_quote(self, b: int, tokens: float) -> tuple[float, float, float]:
        """Debt asset received for `tokens` sold on the DEX, with (fee, slippage) costs."""
        p = self.p
        if tokens <= 0:
            return 0.0, 0.0, 0.0
        value = tokens * float(self.m.price[b])
        fee = value * p["swap_fee"]
        net = value - fee
        slip = net * slippage_fraction(int(p["slip_model"]), net, p)
        return net - slip, fee, slip

    def book_swap(self, fee: float, slip: float) -> None:
        self.sm["swap_fee_cost"] += fee
        self.sm["slippage_cost"] += slip

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

    # --- step 4: liquidation ----------------------------------------------------------------------
    def liquidate(self, b: int) -> None:
        """The venue's liquidation rule (Venue.liquidation: a rule's name, or the venue's own step)."""
        rule = venue(PROTOCOL_NAMES[self.protocol]).liquidation
        if rule == "morpho":
            self.liquidate_morpho(b)
        elif rule == "comet":
            self.absorb_comet(b)
        elif callable(rule):
            rule(self, b)                        # a venue's own step (Aave v4: aave_v4.reference_liquidation)
        else:
            self.liquidate_aave(b)

    def book_liquidation(self, seized: float, pc: float, repay: float, fee_value: float,
                         penalty: float | None = None) -> float:
        """Book one liquidation; the penalty is seized value - repaid unless given (Comet: value - credit)."""
        sm = self.sm
        if penalty is None:
            penalty = seized * pc - repay
        sm["liq_count"] += 1
        sm["liq_debt_repaid"] += repay
        sm["liq_coll_seized"] += seized
        sm["liq_coll_seized_value"] += seized * pc
        sm["liq_penalty"] += penalty
        sm["liq_protocol_fee"] += fee_value
        return penalty

    def write_off(self, b: int) -> None:
        """No collateral left: the remaining debt is bad debt; the borrower walks away from it."""
        bad = self.pos.debt
        self.sm["bad_debt"] += bad
        self.pos.debt = 0.0
        self.event(b, "bad_debt", 0.0, -bad, bad)

    def liquidate_morpho(self, b: int) -> None:
        """Morpho Blue (Morpho.sol liquidate): unhealthy iff coll x price x LLTV < debt. No close factor: the
        liquidator repays everything, seizing repaid x LIF / price, capped at the collateral (then repaid =
        collateral x price / LIF). No fee. Collateral at zero: the rest of the debt is written off."""
        pos = self.pos
        if pos.debt <= self.dust or pos.coll <= self.dust or not self.hf(b) < 1.0:
            return
        pc = self.oracle_price(b)
        lif = morpho_lif(self.lt(b))
        repay = pos.debt
        seized = repay * lif / pc
        if seized >= pos.coll:
            seized = pos.coll
            repay = seized * pc / lif
        pos.coll -= seized
        pos.debt -= repay
        self.tidy()
        penalty = self.book_liquidation(seized, pc, repay, 0.0)
        self.event(b, "liquidation", -seized, -repay, penalty)
        if pos.coll == 0.0 and pos.debt > self.dust:
            self.write_off(b)

    def absorb_comet(self, b: int) -> None:
        """Compound III (Comet.sol absorbInternal): when coll x price x liquidate CF < debt, the protocol takes
        all the collateral and credits value x liquidation factor (LF = 1 - bonus). Shortfall: reserves cover
        it (bad debt, debt to 0). Excess: the borrower's supplied base asset, held here as cash. The protocol
        keeps value x (1 - LF), which is also the borrower's penalty."""
        pos = self.pos
        if pos.debt <= self.dust or pos.coll <= self.dust or not self.hf(b) < 1.0:
            return
        pc = self.oracle_price(b)
        coll, debt = pos.coll, pos.debt
        value = coll * pc
        credit = value * (1.0 - float(self.m.bonus[b]))
        repay = min(credit, debt)
        pos.coll = 0.0
        pos.debt = 0.0
        pos.cash += credit - repay
        penalty = value - credit
        self.book_liquidation(coll, pc, repay, penalty, penalty)
        self.event(b, "liquidation", -coll, -repay, penalty)
        shortfall = debt - repay
        if shortfall > self.dust:
            self.sm["bad_debt"] += shortfall
            self.event(b, "bad_debt", 0.0, -shortfall, shortfall)

    def liquidate_aave(self, b: int) -> None:
        """Aave v3 / v2, Spark and the generic venue (Aave v2 rules with the configured close factor)."""
        m, pos, p = self.m, self.pos, self.p
        for _ in range(MAX_LIQUIDATIONS_PER_BLOCK):
            if pos.debt <= self.dust or pos.coll <= self.dust:
                return
            hf = self.hf(b)
            if not hf < 1.0:
                return
            pc = self.oracle_price(b)
            lb = 1.0 + float(m.bonus[b])
            pf = 0.0 if self.protocol == PROTOCOLS["aave-v2"] else float(m.pfee[b])
            usd = float(m.eth_usd[b])
            v33 = (self.protocol in (PROTOCOLS["aave-v3"], PROTOCOLS["spark"])
                   and int(m.ts[b]) >= int(p["v33_from"]))
            if not math.isnan(p["cf_ovr"]):
                max_repay = p["cf_ovr"] * pos.debt
            elif self.protocol == PROTOCOLS["aave-v2"]:
                max_repay = 0.5 * pos.debt
            elif v33:
                big = (pos.coll * pc * usd >= MIN_BASE_MAX_CLOSE_FACTOR_USD
                       and pos.debt * usd >= MIN_BASE_MAX_CLOSE_FACTOR_USD)
                max_repay = 0.5 * pos.debt if (big and hf > CLOSE_FACTOR_HF_THRESHOLD) else pos.debt
            else:
                max_repay = 0.5 * pos.debt if hf > CLOSE_FACTOR_HF_THRESHOLD else pos.debt
            repay = max_repay
            seized = repay * lb / pc
            if seized >= pos.coll:
                seized = pos.coll
                repay = seized * pc / lb
            if v33 and repay < pos.debt and seized < pos.coll:
                # v3.3 MUST_NOT_LEAVE_DUST: a partial liquidation leaves >= $1,000 of debt and collateral;
                # the liquidator shrinks its repay to the largest amount that passes.
                if (pos.debt - repay) * usd < MIN_LEFTOVER_USD or (pos.coll - seized) * pc * usd < MIN_LEFTOVER_USD:
                    r1 = pos.debt - MIN_LEFTOVER_USD / usd
                    r2 = (pos.coll * pc - MIN_LEFTOVER_USD / usd) / lb
                    repay = min(repay, r1, r2)
                    # a repay within rounding of zero (debt already at the $1,000 floor) is no liquidation
                    if repay <= self.dust:
                        return
                    seized = repay * lb / pc
            fee_tokens = (seized - seized / lb) * pf
            pos.coll -= seized
            pos.debt -= repay
            self.tidy()
            penalty = self.book_liquidation(seized, pc, repay, fee_tokens * pc)
            self.event(b, "liquidation", -seized, -repay, penalty)
            if pos.coll == 0.0 and pos.debt > self.dust:
                # no collateral left: the remaining debt is bad debt (v3.3 burns it into the reserve's
                # deficit; before, it lingers on an abandoned account). Either way the borrower walks away.
                self.write_off(b)
                return

    # --- step 5: strategy -------------------------------------------------------------------------
    def open(self, b: int) -> None:
        p, pos = self.p, self.pos
        kind = int(p["kind"])
        cap = float(p["capital"])
        pc = self.oracle_price(b)
        if kind == STRATEGIES["flash-loan"]:
            x = float(p["target_ltv"])
            ff = float(p["flash_fee"])
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
            g = self.gas(b, p["gas_open"])
            self.event(b, "open", tokens, f * (1.0 + ff), fee + slip + f * ff + g)
            return
        tokens, fee, slip = self.buy_quote(b, cap)
        self.book_swap(fee, slip)
        pos.cash -= cap
        if kind == STRATEGIES["hold"]:
            pos.wallet += tokens
        else:
            pos.coll += tokens
        pos.open = True
        g = self.gas(b, p["gas_open"])
        self.event(b, "open", tokens, 0.0, fee + slip + g)
        if kind != STRATEGIES["loop"]:
            return
        x = float(p["target_ltv"])
        last = tokens
        for _ in range(int(p["loops"])):
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
            g = self.gas(b, p["gas_loop"])
            self.event(b, "loop", t, borrow, fee + slip + g)

    def close_all(self, b: int, kind: str, route: int) -> None:
        """Unwind everything: flash-repay the debt, sell (dex) or queue (queue) the collateral."""
        pos, p, sm = self.pos, self.p, self.sm
        tokens = pos.coll + pos.wallet
        debt = pos.debt
        ff = float(p["flash_fee"]) if debt > self.dust else 0.0
        owed = debt * (1.0 + ff)
        cost = 0.0
        sold = tokens
        if route == EXIT_ROUTES["queue"] and tokens > 0:
            # sell just enough on the DEX to cover the flash loan; queue the rest at the exchange rate
            sold = 0.0
            if owed > 0:
                k = 1.0 - float(p["swap_fee"])
                for _ in range(FIXED_POINT_ITERS):
                    sold = owed / (float(self.m.price[b]) * k)
                    out, _, _ = self.sell_quote(b, sold)
                    k = out / (sold * float(self.m.price[b]))
                sold = min(sold, tokens)
        out, fee, slip = self.sell_quote(b, sold)
        self.book_swap(fee, slip)
        cost += fee + slip + debt * ff
        sm["flash_fee_cost"] += debt * ff
        pos.cash += out - owed
        rest = tokens - sold
        if rest > self.dust:
            pos.queued += rest * self.rate_value(b)    # redeemed at the exchange rate, in the debt asset
            late = int(p["queue_late_from"]) > 0 and int(self.m.ts[b]) >= int(p["queue_late_from"])
            pos.release_ts = int(self.m.ts[b]) + int(p["queue_delay_late"] if late else p["queue_delay"])
        pos.coll = 0.0
        pos.wallet = 0.0
        pos.debt = 0.0
        pos.closed = True
        cost += self.gas(b, p["gas_close"])
        self.event(b, kind, -tokens, -debt, cost)

    def deleverage(self, b: int) -> bool:
        pos, p, m = self.pos, self.p, self.m
        h = float(p["target_hf"])
        pc, lt, px = self.oracle_price(b), self.lt(b), float(m.price[b])
        ff = float(p["flash_fee"])
        k = 1.0 - float(p["swap_fee"])
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
                self.close_all(b, "rebalance", EXIT_ROUTES["dex"])
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
        g = self.gas(b, p["gas_reb"])
        self.sm["n_rebalances"] += 1
        self.event(b, "rebalance", -delta, -repay, fee + slip + repay * ff + g)
        return True

    def releverage(self, b: int) -> bool:
        pos, p, m = self.pos, self.p, self.m
        h = float(p["target_hf"])
        pc, lt, px = self.oracle_price(b), self.lt(b), float(m.price[b])
        ltv = float(m.ltv[b])
        ff = float(p["flash_fee"])
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
        g = self.gas(b, p["gas_reb"])
        self.sm["n_rebalances"] += 1
        self.event(b, "rebalance", t, f * (1.0 + ff), fee + slip + f * ff + g)
        return True

    def strategy(self, b: int) -> None:
        pos, p, m = self.pos, self.p, self.m
        ts = int(m.ts[b])
        if b == 0:
            self.open(b)
            pos.next_check = int(m.ts[0]) + int(p["check_every"])
            return
        if pos.queued > 0 and ts >= pos.release_ts:
            amt = pos.queued
            pos.cash += amt
            pos.queued = 0.0
            self.events.append((b, EVENT_KINDS["queue_release"], 0.0, 0.0, 0.0, self.hf(b)))
        if pos.closed:
            return
        if p["exit_on"] and self.depeg_ratio(b) < p["depeg_below"]:
            self.close_all(b, "exit", int(p["exit_route"]))
            self.sm["exit_idx"] = b
            return
        if p["reb_on"] and ts >= pos.next_check:
            every = int(p["check_every"])
            t0 = int(m.ts[0])
            pos.next_check = t0 + ((ts - t0) // every + 1) * every
            if pos.debt > self.dust and int(p["kind"]) in (STRATEGIES["loop"], STRATEGIES["flash-loan"]):
                hf = self.hf(b)
                if hf < p["delev_below"]:
                    self.deleverage(b)
                elif hf > p["relev_above"]:
                    self.releverage(b)
        if b == len(m) - 1 and p["unwind_at_end"]:
            self.close_all(b, "unwind", EXIT_ROUTES["dex"])

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

    # --- the loop -----------------------------------------------------------------------------------
    def run(self) -> Result:
        m, sm, pos = self.m, self.sm, self.pos
        n = len(m)
        rec = np.zeros((len(self.rec_idx), N_RECORD))
        r = 0
        for b in range(n):
            if b > 0:
                self.accrue(b)
            f = float(m.slash[b])
            if f > 0 and pos.coll + pos.wallet > 0:
                # a slash cut the exchange rate at this block (already in m.xrate): the value lost by the
                # tokens held, at the rate before the cut, xrate / (1 - f) - xrate = xrate f / (1 - f)
                tokens = pos.coll + pos.wallet
                self.event(b, "slash", 0.0, 0.0,
                           tokens * float(m.xrate[b]) * f / (1.0 - f) * float(m.underlying_price[b]))
            if pos.debt > self.dust:
                hf = self.hf(b)
                if hf < sm["min_hf"]:
                    sm["min_hf"] = hf
                    sm["min_hf_idx"] = b
                if hf < 1.05:
                    sm["blocks_below_105"] += 1
                if hf < 1.0:
                    self.liquidate(b)
            self.strategy(b)
            while r < len(self.rec_idx) and self.rec_idx[r] == b:
                rec[r] = self.record_row(b)
                r += 1
            if b % self.metric_every == 0 or b == n - 1:
                self.metric_sample(b)
        self.finish(n - 1)
        return Result(summary=sm, events=self.events, records=rec)

    def finish(self, b: int) -> None:
        m, p, pos, sm = self.m, self.p, self.pos, self.sm
        px, xr = float(m.price[b]), self.rate_value(b)
        cap = float(p["capital"])
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
        if int(p["entry"]) == ENTRIES["stake"]:
            # the hold token's underlying is the collateral's: bought at underlying_price, minted at hold_xrate
            tokens = cap / float(m.underlying_price[0]) / float(m.hold_xrate[0])
        else:
            fee = cap * float(p["swap_fee"])
            net = cap - fee
            slip = net * slippage_fraction(int(p["slip_model"]), net, p)
            tokens = (net - slip) / float(m.hold_price[0])
        sm["hold_end_equity"] = tokens * float(m.hold_price[b])
        sm["hold_apy"] = annualise(sm["hold_end_equity"], cap, years)
        sm["n_events"] = len(self.events)


def annualise(end_equity: float, capital: float, years: float) -> float:
    if years <= 0:
        return 0.0
    if end_equity <= 0:
        return -1.0
    try:
        return (end_equity / capital) ** (1.0 / years) - 1.0
    except OverflowError:          # a very short window: C's pow() gives inf, so do we
        return math.inf


def run_reference(market: Market, params, oracle: str, capo_growth: float, capo_age: int,
                  rec_idx, metric_every: int) -> Result:
    """Replay one configuration (a row of PARAMS_DTYPE) with the reference engine."""
    return Replay(market, params, oracle, capo_growth, capo_age, rec_idx, metric_every).run()


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
        for mk in markets:
            out.append(run_reference(mk, params[i], ln.oracle, ln.capo_growth, ln.capo_age, rec_idx, metric_every))
    return out
