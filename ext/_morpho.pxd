# Morpho Blue liquidation, inline and nogil. PROTOCOLS.md; morpho-org/morpho-blue src/Morpho.sol liquidate().
from _types cimport Params, Mkt, State, Out, EV_LIQUIDATION, EV_BAD_DEBT
from _math cimport morpho_lif
from _position cimport DUST, coll_of, debt_of, hf_of, settle, set_balances, push_event


cdef inline void morpho_liquidate(State* st, const Params* p, const Mkt* m, Out* o, Py_ssize_t b) noexcept nogil:
    # Unhealthy iff collateral x oracle x LLTV < debt (HF < 1, lt = LLTV). No close factor: the liquidator
    # repays all the debt, seizing repaid x LIF / price; if that exceeds the collateral it seizes all of it and
    # repays collateral x price / LIF. No protocol fee. Collateral at zero: the remaining debt is bad debt,
    # written off against the suppliers (Morpho realises it in the same call).
    cdef double coll, debt, pc, lif, repay, seized, penalty, bad
    settle(st, m, o, b)
    coll = coll_of(st, m, b)
    debt = debt_of(st, m, b)
    if debt <= DUST or coll <= DUST:
        return
    if not hf_of(st, m, b) < 1.0:
        return
    pc = m.por[b]
    lif = morpho_lif(m.lt[b])
    repay = debt
    seized = repay * lif / pc
    if seized >= coll:
        seized = coll
        repay = seized * pc / lif
    coll = coll - seized
    debt = debt - repay
    if coll <= DUST:
        coll = 0.0
    set_balances(st, m, b, coll, debt)
    penalty = seized * pc - repay
    o.sm.liq_count += 1
    o.sm.liq_debt_repaid += repay
    o.sm.liq_coll_seized += seized
    o.sm.liq_coll_seized_value += seized * pc
    o.sm.liq_penalty += penalty
    push_event(st, m, o, b, EV_LIQUIDATION, -seized, -repay, penalty)
    if coll == 0.0 and debt > DUST:
        bad = debt
        o.sm.bad_debt += bad
        st.d = 0.0
        push_event(st, m, o, b, EV_BAD_DEBT, 0.0, -bad, bad)
