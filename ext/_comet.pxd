# Compound III (Comet) absorb, inline and nogil. PROTOCOLS.md; compound-finance/comet contracts/Comet.sol
# isLiquidatable() and absorbInternal().
from _types cimport Params, Mkt, State, Out, EV_LIQUIDATION, EV_BAD_DEBT
from _position cimport coll_of, debt_of, hf_of, settle, push_event, book_liquidation, write_off_bad_debt


cdef inline void comet_absorb(State* st, const Params* p, const Mkt* m, Out* o, Py_ssize_t b) noexcept nogil:
    # Liquidatable when collateral x price x liquidate CF < debt (HF < 1, lt = liquidate CF). absorb(): the
    # protocol takes all the collateral and credits the borrower value x liquidation factor (LF = 1 - bonus).
    # A credit short of the debt leaves a shortfall the reserves cover (bad debt; the borrower's debt goes to
    # 0); a credit above it becomes the borrower's supplied base asset, modelled as cash in the wallet.
    # The protocol keeps the discount value x (1 - LF): it is both the penalty and the protocol's cut.
    cdef double coll, debt, pc, value, credit, repay, excess, shortfall, penalty
    settle(st, m, o, b)
    coll = coll_of(st, m, b)
    debt = debt_of(st, m, b)
    if debt <= st.dust or coll <= st.dust:
        return
    if not hf_of(st, m, b) < 1.0:
        return
    pc = m.por[b]
    value = coll * pc
    credit = value * (1.0 - m.bonus[b])
    repay = credit if credit < debt else debt
    excess = credit - repay
    shortfall = debt - repay
    penalty = value - credit
    st.s = 0.0
    st.d = 0.0
    st.cash += excess
    book_liquidation(st, m, o, b, coll, repay, value, penalty, penalty)
    if shortfall > st.dust:
        write_off_bad_debt(st, m, o, b, shortfall)
