# Position bookkeeping shared by the protocol and strategy code: balances from scaled amounts, health
# factor, swaps with fee and slippage, gas, events, and the segment integrals of yield and interest.
from libc.math cimport INFINITY, isnan
from _types cimport Params, Summary, Event, Mkt, State, Out, ENTRY_STAKE, EV_LIQUIDATION, EV_BAD_DEBT
from _math cimport slippage_fraction

cdef extern from *:
    """
    #define BT_DUST_REL 1e-12
    """
    # Dust is relative to the position: a balance or amount at or below DUST_REL x capital counts as zero
    # (st.dust), so a position of 1e-20 ETH behaves as one of 1 ETH scaled, in both engines. 1e-12 is far
    # above the rounding left by a subtraction of balances (~1e-16 x leverage x capital) and far below
    # anything a user could hold on purpose.
    const double DUST_REL "BT_DUST_REL"


cdef inline double coll_of(const State* st, const Mkt* m, Py_ssize_t b) noexcept nogil:
    return st.s * m.sidx[b]


cdef inline double debt_of(const State* st, const Mkt* m, Py_ssize_t b) noexcept nogil:
    # drawn + premium (Aave v4: ps x index - po; 0 + 0 elsewhere, which leaves d x bidx as it is)
    return st.d * m.bidx[b] + (st.ps * m.bidx[b] - st.po)


cdef inline double hf_of(const State* st, const Mkt* m, Py_ssize_t b) noexcept nogil:
    # HF = coll * oracle * LT / debt = (s / d) * a[b] with a = oracle * LT * sidx / bidx; an Aave v4 premium
    # debt is (d + ps - po / bidx) scaled
    if st.d == 0:
        return INFINITY
    if st.ps == 0.0 and st.po == 0.0:
        return (st.s / st.d) * m.a[b]
    return (st.s / (debt_of(st, m, b) / m.bidx[b])) * m.a[b]


cdef inline void settle(State* st, const Mkt* m, Out* o, Py_ssize_t b) noexcept nogil:
    # Book staking yield, supply yield and interest accrued since the segment start (balances were
    # constant in scaled terms), then start a new segment at b. Call before any balance changes.
    cdef Py_ssize_t b0 = st.seg0
    if b > b0:
        o.sm.staking_yield += st.s * (m.K[b] - m.K[b0]) + st.w * (m.KW[b] - m.KW[b0])
        o.sm.supply_yield += st.s * (m.K2[b] - m.K2[b0])
        o.sm.interest_paid += (st.d + st.ps) * (m.bidx[b] - m.bidx[b0])     # premium shares grow as drawn
        o.sm.restaking_rewards += st.s * (m.KR[b] - m.KR[b0]) + st.w * (m.rwd[b] - m.rwd[b0])
    st.seg0 = b


cdef inline double rate_value(const Mkt* m, Py_ssize_t b) noexcept nogil:
    # one token at the exchange rate, in the debt asset: underlying per token x underlying in the debt asset
    return m.xrate[b] * m.up[b]


cdef inline double depeg_ratio(const Mkt* m, Py_ssize_t b) noexcept nogil:
    # market price over the exchange-rate value, both in the debt asset (1 at the peg, whatever the debt)
    return m.price[b] / (m.xrate[b] * m.up[b])


cdef inline void premium_refresh(State* st, double idx, double restored_premium) noexcept nogil:
    # Aave v4 (UserPositionDebt): premium shares from the drawn shares at st.rp, the offset moved so the premium
    # left (accrued - restored) is unchanged (backtest/venues/aave_v4.py refresh)
    cdef double premium_left = (st.ps * idx - st.po) - restored_premium
    st.ps = st.d * st.rp
    st.po = st.ps * idx - premium_left


cdef inline void set_premium_debt(State* st, double idx, double debt) noexcept nogil:
    # Aave v4's debt to `debt`: a borrow of the difference (new drawn shares) or a repay of it (the premium
    # first, then the drawn shares), then a refresh at st.rp (aave_v4.draw / restore)
    cdef double old = st.d * idx + (st.ps * idx - st.po), amount, premium, restored
    if debt <= st.dust:
        st.d = 0.0
        st.ps = 0.0
        st.po = 0.0
    elif debt > old:
        st.d = st.d + (debt - old) / idx
        premium_refresh(st, idx, 0.0)
    elif debt < old:
        amount = old - debt
        premium = st.ps * idx - st.po
        restored = amount if amount < premium else premium
        st.d = st.d - (amount - restored) / idx
        premium_refresh(st, idx, restored)


cdef inline void set_balances(State* st, const Mkt* m, Py_ssize_t b, double coll, double debt) noexcept nogil:
    # store actual balances as scaled ones; dust is zero
    st.s = coll / m.sidx[b] if coll > st.dust else 0.0
    if st.rp == 0.0 and st.ps == 0.0 and st.po == 0.0:
        st.d = debt / m.bidx[b] if debt > st.dust else 0.0
    else:
        set_premium_debt(st, m.bidx[b], debt)


cdef inline double pay_gas(State* st, const Params* p, const Mkt* m, Out* o, Py_ssize_t b,
                           double units) noexcept nogil:
    # gwei of the chain's gas token, converted into the debt asset at the block's gas-token price
    cdef double price = m.gas[b] if isnan(p.gas_gwei) else p.gas_gwei
    cdef double cost = units * price * 1e-9 * m.gtp[b]
    st.cash -= cost
    o.sm.gas_cost += cost
    return cost


cdef inline double buy_quote(const Params* p, const Mkt* m, Py_ssize_t b, double amount,
                             double* fee, double* slip) noexcept nogil:
    # tokens received for `amount` of debt asset: staked at the exchange rate, or swapped on the DEX
    cdef double net
    fee[0] = 0.0
    slip[0] = 0.0
    if amount <= 0:
        return 0.0
    if p.entry == ENTRY_STAKE:
        # the debt asset buys the underlying at its price, which is minted into tokens at the exchange rate
        return amount / m.up[b] / m.xrate[b]
    fee[0] = amount * p.swap_fee
    net = amount - fee[0]
    slip[0] = net * slippage_fraction(p.slip_model, net, p.slip_param, p.pool_depth, p.amp)
    return (net - slip[0]) / m.price[b]


cdef inline double sell_quote(const Params* p, const Mkt* m, Py_ssize_t b, double tokens,
                              double* fee, double* slip) noexcept nogil:
    # debt asset received for `tokens` sold on the DEX
    cdef double value, net
    fee[0] = 0.0
    slip[0] = 0.0
    if tokens <= 0:
        return 0.0
    value = tokens * m.price[b]
    fee[0] = value * p.swap_fee
    net = value - fee[0]
    slip[0] = net * slippage_fraction(p.slip_model, net, p.slip_param, p.pool_depth, p.amp)
    return net - slip[0]


cdef inline void book_swap(Out* o, double fee, double slip) noexcept nogil:
    o.sm.swap_fee_cost += fee
    o.sm.slippage_cost += slip


cdef inline void push_event(State* st, const Mkt* m, Out* o, Py_ssize_t b, long kind,
                            double coll, double debt, double cost) noexcept nogil:
    cdef Event* e
    o.sm.n_events += 1
    if st.n_ev >= o.ev_cap:
        o.sm.events_dropped += 1
        return
    e = &o.ev[st.n_ev]
    e.idx = b
    e.kind = kind
    e.coll = coll
    e.debt = debt
    e.cost = cost
    e.hf = hf_of(st, m, b)
    st.n_ev += 1


cdef inline double equity(const State* st, const Mkt* m, Py_ssize_t b, double mark) noexcept nogil:
    return (coll_of(st, m, b) + st.w) * mark + st.cash + st.queued - debt_of(st, m, b)


cdef inline void book_liquidation(State* st, const Mkt* m, Out* o, Py_ssize_t b, double seized, double repay,
                                  double seized_value, double penalty, double fee_value) noexcept nogil:
    # one liquidation call of any venue: the summary's liquidation figures and its event
    o.sm.liq_count += 1
    o.sm.liq_debt_repaid += repay
    o.sm.liq_coll_seized += seized
    o.sm.liq_coll_seized_value += seized_value
    o.sm.liq_penalty += penalty
    o.sm.liq_protocol_fee += fee_value
    push_event(st, m, o, b, EV_LIQUIDATION, -seized, -repay, penalty)


cdef inline void write_off_bad_debt(State* st, const Mkt* m, Out* o, Py_ssize_t b, double bad) noexcept nogil:
    # debt left with no collateral: recorded as bad debt and gone from the borrower's books
    o.sm.bad_debt += bad
    st.d = 0.0
    st.ps = 0.0
    st.po = 0.0
    push_event(st, m, o, b, EV_BAD_DEBT, 0.0, -bad, bad)
