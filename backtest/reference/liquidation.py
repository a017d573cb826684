"""Step 4 of the replay, per venue (the venue record's ``liquidation`` names the rule): the Aave family's
liquidationCall (close factor, bonus, protocol fee, the v3.3 $2,000 / $1,000 rules and the deficit; the
generic venue is Aave v2 with the configured close factor), Morpho Blue's liquidate (no close factor, LIF from
the LLTV, bad debt written off) and Compound III's absorb (the liquidation factor). Aave v4's step is its venue
module's (``backtest.venues.aave_v4.reference_liquidation``).

:func:`aave_liquidation_size` sizes one Aave-family call from one collateral's balance and price; the
one-collateral replay and the multi-collateral one (``backtest.reference.legs``, on the leg liquidated) share it.
"""
from __future__ import annotations

from backtest.schema import PROTOCOL_NAMES
from backtest.venues import venue

MAX_LIQUIDATIONS_PER_BLOCK = 64
LIQ_SEARCH_ITERS = 80                     # ternary-search steps of a profit-sizing liquidator (ext/_aave.pxd)
CLOSE_FACTOR_HF_THRESHOLD = 0.95
MIN_BASE_MAX_CLOSE_FACTOR_USD = 2000.0    # v3.3: below this, 100 % close factor
MIN_LEFTOVER_USD = 1000.0                 # v3.3: leftovers of a partial liquidation must be at least this


def morpho_lif(lltv: float) -> float:
    """Morpho Blue liquidation incentive factor: min(1.15, 1 / (1 - 0.3 (1 - LLTV)))."""
    return min(1.15, 1.0 / (1.0 - 0.3 * (1.0 - lltv)))


def aave_liquidation_size(protocol: int, s, ts: int, hf: float, coll: float, debt: float, pc: float, lb: float,
                          usd: float, dust: float) -> tuple[float, float] | None:
    """(debt repaid, collateral tokens seized) of one Aave-family liquidationCall on a collateral of ``coll``
    tokens at oracle price ``pc`` and bonus ``lb`` (1 + bonus), the account at health factor ``hf`` owing
    ``debt``, under the configuration's Settings ``s``; ``usd`` is USD per debt-asset unit. None: the v3.3 leftover rule leaves nothing to repay.

    Close factor: the configuration's (market.close_factor, the generic venue's), else the venue's fixed one
    (Aave v2: 50 %), else 50 % while HF > 0.95 and 100 % at or below; from v33_from (venues following v3.3) also
    100 % when the collateral's or the debt's value is below $2,000. The seizure is capped at the balance (the
    repay then shrinks to value / LB). v3.3 MUST_NOT_LEAVE_DUST: a partial liquidation leaves >= $1,000 of
    debt and collateral; the liquidator shrinks its repay to the largest amount that passes."""
    v = venue(PROTOCOL_NAMES[protocol])
    v33 = v.v33 and ts >= s.v33_from
    if s.close_factor is not None:
        max_repay = s.close_factor * debt
    elif v.close_factor is not None:
        max_repay = v.close_factor * debt
    elif v33:
        big = coll * pc * usd >= MIN_BASE_MAX_CLOSE_FACTOR_USD and debt * usd >= MIN_BASE_MAX_CLOSE_FACTOR_USD
        max_repay = 0.5 * debt if (big and hf > CLOSE_FACTOR_HF_THRESHOLD) else debt
    else:
        max_repay = 0.5 * debt if hf > CLOSE_FACTOR_HF_THRESHOLD else debt
    repay = max_repay
    seized = repay * lb / pc
    if seized >= coll:
        seized = coll
        repay = seized * pc / lb
    if v33 and repay < debt and seized < coll:
        if (debt - repay) * usd < MIN_LEFTOVER_USD or (coll - seized) * pc * usd < MIN_LEFTOVER_USD:
            r1 = debt - MIN_LEFTOVER_USD / usd
            r2 = (coll * pc - MIN_LEFTOVER_USD / usd) / lb
            repay = min(repay, r1, r2)
            # a repay within rounding of zero (debt already at the $1,000 floor) is no liquidation
            if repay <= dust:
                return None
            seized = repay * lb / pc
    return repay, seized


def protocol_fee_share(protocol: int, pfee: float) -> float:
    """The share of the bonus the protocol keeps: the market's, on a venue that takes one (not Aave v2)."""
    return float(pfee) if venue(PROTOCOL_NAMES[protocol]).protocol_fee else 0.0


class Liquidation:
    """The one-collateral replay's step 4 (a mixin of Replay: reads self.m, self.s, self.pos, self.sm)."""

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
        lif = morpho_lif(float(self.risk["lltv"][b]))
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
        all the collateral and credits value x liquidation factor. Shortfall: reserves cover
        it (bad debt, debt to 0). Excess: the borrower's supplied base asset, held here as cash. The protocol
        keeps value x (1 - LF), which is also the borrower's penalty."""
        pos = self.pos
        if pos.debt <= self.dust or pos.coll <= self.dust or not self.hf(b) < 1.0:
            return
        pc = self.oracle_price(b)
        coll, debt = pos.coll, pos.debt
        value = coll * pc
        credit = value * float(self.risk["liquidation_factor"][b])
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

    def liq_profit(self, b: int, repay: float, lb: float, pc: float, pf: float, gas_cost: float) -> float:
        """What a liquidator earns repaying ``repay``: its share of the seized tokens (the protocol fee is out of
        it) sold on the pool (swap fee, slippage against the pool's depth), minus the repay and its gas."""
        seized = repay * lb / pc
        keep = seized - (seized - seized / lb) * pf
        return self.sell_quote(b, keep)[0] - repay - gas_cost

    def liquidator_repay(self, b: int, max_repay: float, lb: float, pc: float, pf: float) -> float:
        """The repay in (0, max_repay] that maximises :meth:`liq_profit` (concave: a ternary search; the full amount
        when it earns at least as much); 0 when the best earns nothing."""
        g = self.s.costs.gas_gwei
        price = float(self.m.gas_gwei[b]) if g is None else g
        gas_cost = self.s.liquidation_gas * price * 1e-9 * float(self.m.gas_token_price[b])
        lo, hi = 0.0, max_repay
        for _ in range(LIQ_SEARCH_ITERS):
            x1 = lo + (hi - lo) / 3.0
            x2 = hi - (hi - lo) / 3.0
            if self.liq_profit(b, x1, lb, pc, pf, gas_cost) < self.liq_profit(b, x2, lb, pc, pf, gas_cost):
                lo = x1
            else:
                hi = x2
        r = 0.5 * (lo + hi)
        if self.liq_profit(b, max_repay, lb, pc, pf, gas_cost) >= self.liq_profit(b, r, lb, pc, pf, gas_cost):
            r = max_repay
        if not self.liq_profit(b, r, lb, pc, pf, gas_cost) > 0.0:
            return 0.0
        return r

    def liquidate_aave(self, b: int) -> None:
        """Aave v3 / v2, Spark and the generic venue (Aave v2 rules with the configured close factor)."""
        m, pos, s = self.m, self.pos, self.s
        for _ in range(MAX_LIQUIDATIONS_PER_BLOCK):
            if pos.debt <= self.dust or pos.coll <= self.dust:
                return
            hf = self.hf(b)
            if not hf < 1.0:
                return
            pc = self.oracle_price(b)
            r = self.risk
            lb = 1.0 + float(r["liquidation_bonus"][b])
            pf = protocol_fee_share(self.protocol, r["liquidation_protocol_fee"][b])
            size = aave_liquidation_size(self.protocol, s, int(m.ts[b]), hf, pos.coll, pos.debt, pc, lb,
                                         float(m.eth_usd[b]), self.dust)
            if size is None:
                return
            repay, seized = size
            partial = False
            if s.liquidation_gas > 0.0:
                # market.liquidation_gas: the liquidator sizes its repay for profit; a v3.3 partial must still
                # leave $1,000 of debt, or it cannot be made
                r1 = self.liquidator_repay(b, repay, lb, pc, pf)
                usd = float(m.eth_usd[b])
                v33 = venue(PROTOCOL_NAMES[self.protocol]).v33 and int(m.ts[b]) >= s.v33_from
                if r1 <= self.dust or (v33 and r1 < pos.debt and (pos.debt - r1) * usd < MIN_LEFTOVER_USD):
                    return
                partial = r1 < repay
                repay = r1
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
            if partial:
                return          # one profit-sized liquidation per block: the pool's depth is spent

