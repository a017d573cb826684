# Morpho Blue liquidation, inline and nogil. PROTOCOLS.md; morpho-org/morpho-blue src/Morpho.sol liquidate().
from _types cimport Params, Mkt, State, Out, EV_LIQUIDATION, EV_BAD_DEBT
from _math cimport morpho_lif
from _position cimport coll_of, debt_of, hf_of, settle, set_balances, push_event, book_liquidation, write_off_bad_debt


cdef inline void morpho_liquidate(State* st, const Params* p, const Mkt* m, Out* o, Py_ssize_t b) noexcept nogil:
    # Unhealthy iff collateral x oracle x LLTV < debt (HF < 1, lt = LLTV). No close factor: the liquidator
    # repays all the debt, seizing repaid x LIF / price; if that exceeds the collateral it seizes all of it and
    # repays collateral x price / LIF. No protocol fee. Collateral at zero: the remaining debt is bad debt,
    # written off against the suppliers (Morpho realises it in the same call).
    cdef double coll, debt, pc, lif, repay, seized
    settle(st, m, o, b)
    coll = coll_of(st, m, b)
    debt = debt_of(st, m, b)
    if debt <= st.dust or coll <= st.dust:
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
    if coll <= st.dust:
        coll = 0.0
    set_balances(st, m, b, coll, debt)
    book_liquidation(st, m, o, b, seized, repay, seized * pc, seized * pc - repay, 0.0)
    if coll == 0.0 and debt > st.dust:
        write_off_bad_debt(st, m, o, b, debt)
