# Aave liquidation (v2, v3.0-3.2, v3.3; Spark) and the generic venue, inline and nogil. PROTOCOLS.md,
# LiquidationLogic.sol. The generic venue follows Aave v2 with its close factor from the config (cf_ovr).
from libc.math cimport isnan
from _types cimport (Params, Mkt, State, Out, PROTO_AAVE_V2, PROTO_AAVE_V3, PROTO_SPARK, EV_LIQUIDATION,
                     EV_BAD_DEBT)
from _position cimport (coll_of, debt_of, hf_of, settle, set_balances, push_event, book_liquidation,
                        write_off_bad_debt, sell_quote)

cdef extern from *:
    """
    #define BT_CLOSE_FACTOR_HF_THRESHOLD 0.95
    #define BT_MIN_BASE_MAX_CLOSE_FACTOR_USD 2000.0
    #define BT_MIN_LEFTOVER_USD 1000.0
    """
    const double CLOSE_FACTOR_HF_THRESHOLD "BT_CLOSE_FACTOR_HF_THRESHOLD"      # LiquidationLogic: 0.95e18
    const double MIN_BASE_MAX_CLOSE_FACTOR_USD "BT_MIN_BASE_MAX_CLOSE_FACTOR_USD"  # v3.3: $2,000
    const double MIN_LEFTOVER_USD "BT_MIN_LEFTOVER_USD"                        # v3.3: $1,000

cdef enum:
    MAX_LIQUIDATIONS_PER_BLOCK = 64
    LIQ_SEARCH_ITERS = 80           # ternary-search steps of a profit-sizing liquidator


cdef inline double liq_profit(const Params* p, const Mkt* m, Py_ssize_t b, double repay, double lb, double pc,
                              double pf, double gas_cost) noexcept nogil:
    # what a liquidator earns repaying `repay`: its share of the seized tokens (the protocol fee is out of it) sold
    # on the pool (swap fee, slippage against the pool's depth), minus the repay and its gas
    cdef double seized = repay * lb / pc, fee, slip
    cdef double keep = seized - (seized - seized / lb) * pf
    return sell_quote(p, m, b, keep, &fee, &slip) - repay - gas_cost


cdef inline double liquidator_repay(const Params* p, const Mkt* m, Py_ssize_t b, double max_repay, double lb,
                                    double pc, double pf) noexcept nogil:
    # the repay in (0, max_repay] that maximises liq_profit (concave: a ternary search; the full amount when it
    # earns at least as much); 0 when the best earns nothing (the bonus does not cover the gas and the slippage)
    cdef double gas_cost = p.liq_gas * (m.gas[b] if isnan(p.gas_gwei) else p.gas_gwei) * 1e-9 * m.gtp[b]
    cdef double lo = 0.0, hi = max_repay, x1, x2, r
    cdef int k
    for k in range(LIQ_SEARCH_ITERS):
        x1 = lo + (hi - lo) / 3.0
        x2 = hi - (hi - lo) / 3.0
        if liq_profit(p, m, b, x1, lb, pc, pf, gas_cost) < liq_profit(p, m, b, x2, lb, pc, pf, gas_cost):
            lo = x1
        else:
            hi = x2
    r = 0.5 * (lo + hi)
    if liq_profit(p, m, b, max_repay, lb, pc, pf, gas_cost) >= liq_profit(p, m, b, r, lb, pc, pf, gas_cost):
        r = max_repay
    if not liq_profit(p, m, b, r, lb, pc, pf, gas_cost) > 0.0:
        return 0.0
    return r


cdef inline void aave_liquidate(State* st, const Params* p, const Mkt* m, Out* o, Py_ssize_t b) noexcept nogil:
    # Liquidators act while HF < 1: repay up to the close factor, seize repay * LB / price (capped at the
    # balance), protocol fee = (seized - seized / LB) * fee out of the liquidator's share; v3.3 adds the
    # $2,000 full-close rule, the $1,000 leftover rule and the deficit write-off (Aave v3 and Spark only).
    cdef double coll, debt, hf, pc, lb, pf, usd, max_repay, repay, seized, fee_tokens, penalty, r1, r2, bad
    cdef bint v33, big, partial = False
    cdef int i
    settle(st, m, o, b)
    for i in range(MAX_LIQUIDATIONS_PER_BLOCK):
        coll = coll_of(st, m, b)
        debt = debt_of(st, m, b)
        if debt <= st.dust or coll <= st.dust:
            return
        hf = hf_of(st, m, b)
        if not hf < 1.0:
            return
        pc = m.por[b]
        lb = 1.0 + m.bonus[b]
        pf = 0.0 if p.protocol == PROTO_AAVE_V2 else m.pfee[b]
        usd = m.eth_usd[b]
        v33 = (p.protocol == PROTO_AAVE_V3 or p.protocol == PROTO_SPARK) and m.ts[b] >= p.v33_from
        if not isnan(p.cf_ovr):
            max_repay = p.cf_ovr * debt
        elif p.protocol == PROTO_AAVE_V2:
            max_repay = 0.5 * debt
        elif v33:
            big = (coll * pc * usd >= MIN_BASE_MAX_CLOSE_FACTOR_USD
                   and debt * usd >= MIN_BASE_MAX_CLOSE_FACTOR_USD)
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
                repay = min(repay, min(r1, r2))
                # a repay within rounding of zero (debt already at the $1,000 floor) is no liquidation
                if repay <= st.dust:
                    return
                seized = repay * lb / pc
        if p.liq_gas > 0.0:
            # market.liquidation_gas: the liquidator sizes its repay for profit; a v3.3 partial must still leave
            # $1,000 of debt, or it cannot be made
            r1 = liquidator_repay(p, m, b, repay, lb, pc, pf)
            if r1 <= st.dust or (v33 and r1 < debt and (debt - r1) * usd < MIN_LEFTOVER_USD):
                return
            partial = r1 < repay
            repay = r1
            seized = repay * lb / pc
        fee_tokens = (seized - seized / lb) * pf
        coll = coll - seized
        debt = debt - repay
        if coll <= st.dust:
            coll = 0.0
        set_balances(st, m, b, coll, debt)
        book_liquidation(st, m, o, b, seized, repay, seized * pc, seized * pc - repay, fee_tokens * pc)
        if coll == 0.0 and debt > st.dust:
            write_off_bad_debt(st, m, o, b, debt)
            return
        if partial:
            return              # one profit-sized liquidation per block: the pool's depth is spent
