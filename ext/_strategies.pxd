# Strategy actions, inline and nogil: open (hold / lend / loop / flash-loan), close (de-peg exit through the
# DEX or the withdrawal queue, unwind), deleverage and releverage to a target HF. Sizes under slippage are
# solved by a fixed number of fixed-point rounds, the same in the reference engine.
from libc.math cimport INFINITY
from libc.stdint cimport int64_t
from _types cimport (Params, Mkt, State, Out, KIND_HOLD, KIND_LOOP, KIND_FLASH, ROUTE_DEX, ROUTE_QUEUE,
                     EV_OPEN, EV_LOOP, EV_REBALANCE, EV_EXIT, EV_QUEUE_RELEASE, EV_UNWIND)
from _position cimport (coll_of, debt_of, hf_of, settle, set_balances, pay_gas, buy_quote,
                        sell_quote, book_swap, push_event, rate_value, depeg_ratio)

cdef enum:
    FIXED_POINT_ITERS = 30


cdef inline void open_position(State* st, const Params* p, const Mkt* m, Out* o, Py_ssize_t b) noexcept nogil:
    cdef double cap = p.capital, pc = m.por[b], x = p.target_ltv, ff = p.flash_fee
    cdef double f, q, tokens, fee, slip, g, coll, debt, last, borrow, room, t
    cdef int i
    settle(st, m, o, b)
    if p.kind == KIND_FLASH:
        # F (1 + ff) = x * pc * q * (C + F), q = tokens per unit bought (depends on F via slippage). When the
        # oracle values a unit bought above (1 + ff) / x (a deep DEX discount) no finite F reaches x: the loan is
        # then sized at cost, F = C x / (1 - x), and the position opens below the target LTV.
        f = cap * x / (1.0 - x)
        for i in range(FIXED_POINT_ITERS):
            tokens = buy_quote(p, m, b, cap + f, &fee, &slip)
            q = tokens / (cap + f)
            if not ((1.0 + ff) - x * pc * q > 0):
                f = cap * x / (1.0 - x)
                break
            f = x * pc * q * cap / ((1.0 + ff) - x * pc * q)
        tokens = buy_quote(p, m, b, cap + f, &fee, &slip)
        book_swap(o, fee, slip)
        st.cash -= cap
        set_balances(st, m, b, coll_of(st, m, b) + tokens, debt_of(st, m, b) + f * (1.0 + ff))
        o.sm.flash_fee_cost += f * ff
        g = pay_gas(st, p, m, o, b, p.gas_open)
        push_event(st, m, o, b, EV_OPEN, tokens, f * (1.0 + ff), fee + slip + f * ff + g)
        return
    tokens = buy_quote(p, m, b, cap, &fee, &slip)
    book_swap(o, fee, slip)
    st.cash -= cap
    if p.kind == KIND_HOLD:
        st.w += tokens
    else:
        set_balances(st, m, b, coll_of(st, m, b) + tokens, debt_of(st, m, b))
    g = pay_gas(st, p, m, o, b, p.gas_open)
    push_event(st, m, o, b, EV_OPEN, tokens, 0.0, fee + slip + g)
    if p.kind != KIND_LOOP:
        return
    last = tokens
    for i in range(p.loops):
        coll = coll_of(st, m, b)
        debt = debt_of(st, m, b)
        borrow = x * last * pc
        room = m.ltv[b] * coll * pc - debt
        if borrow > room:
            borrow = room if room > 0 else 0.0
        if borrow <= st.dust:           # no room, or room within rounding of zero (x at the max LTV)
            break
        t = buy_quote(p, m, b, borrow, &fee, &slip)
        book_swap(o, fee, slip)
        set_balances(st, m, b, coll + t, debt + borrow)
        last = t
        g = pay_gas(st, p, m, o, b, p.gas_loop)
        push_event(st, m, o, b, EV_LOOP, t, borrow, fee + slip + g)


cdef inline void close_all(State* st, const Params* p, const Mkt* m, Out* o, Py_ssize_t b,
                           long kind, long route) noexcept nogil:
    # flash-repay the debt, then sell everything (dex) or sell just enough and queue the rest (queue)
    cdef double tokens, debt, ff, owed, cost = 0.0, sold, k, out, fee, slip, rest
    cdef int i
    settle(st, m, o, b)
    tokens = coll_of(st, m, b) + st.w
    debt = debt_of(st, m, b)
    ff = p.flash_fee if debt > st.dust else 0.0
    owed = debt * (1.0 + ff)
    sold = tokens
    if route == ROUTE_QUEUE and tokens > 0:
        sold = 0.0
        if owed > 0:
            k = 1.0 - p.swap_fee
            for i in range(FIXED_POINT_ITERS):
                sold = owed / (m.price[b] * k)
                out = sell_quote(p, m, b, sold, &fee, &slip)
                k = out / (sold * m.price[b])
            sold = min(sold, tokens)
    out = sell_quote(p, m, b, sold, &fee, &slip)
    book_swap(o, fee, slip)
    cost += fee + slip + debt * ff
    o.sm.flash_fee_cost += debt * ff
    st.cash += out - owed
    rest = tokens - sold
    if rest > st.dust:
        st.queued += rest * rate_value(m, b)     # redeemed at the exchange rate, in the debt asset
        if p.queue_late_from > 0 and m.ts[b] >= p.queue_late_from:
            st.release_ts = m.ts[b] + p.queue_delay_late
        else:
            st.release_ts = m.ts[b] + p.queue_delay
        if m.ts[b] >= p.queue_frozen_from and m.ts[b] < p.queue_frozen_until:
            st.release_ts += p.queue_frozen_until - m.ts[b]     # a frozen queue takes requests from its end
    st.s = 0.0
    st.d = 0.0
    st.ps = 0.0             # an Aave v4 premium is repaid with the rest
    st.po = 0.0
    st.w = 0.0
    st.closed = 1
    cost += pay_gas(st, p, m, o, b, p.gas_close)
    push_event(st, m, o, b, kind, -tokens, -debt, cost)


cdef inline bint deleverage(State* st, const Params* p, const Mkt* m, Out* o, Py_ssize_t b) noexcept nogil:
    # sell delta collateral through a flash loan so that HF returns to target_hf
    cdef double h = p.target_hf, pc = m.por[b], lt = m.lt[b], px = m.price[b], ff = p.flash_fee
    cdef double k = 1.0 - p.swap_fee, delta = 0.0, denom, out, fee, slip, repay, g
    cdef double coll = coll_of(st, m, b), debt = debt_of(st, m, b)
    cdef int i
    for i in range(FIXED_POINT_ITERS):
        denom = h * px * k / (1.0 + ff) - pc * lt
        delta = (h * debt - coll * pc * lt) / denom if denom > 0 else INFINITY
        if not delta < coll:
            break
        out = sell_quote(p, m, b, delta, &fee, &slip)
        k = out / (delta * px)
    if not delta < coll:
        out = sell_quote(p, m, b, coll, &fee, &slip)
        if out >= debt * (1.0 + ff):
            close_all(st, p, m, o, b, EV_REBALANCE, ROUTE_DEX)
            o.sm.n_rebalances += 1
            return True
        return False
    if delta <= st.dust:
        return False
    settle(st, m, o, b)
    out = sell_quote(p, m, b, delta, &fee, &slip)
    book_swap(o, fee, slip)
    repay = out / (1.0 + ff)
    set_balances(st, m, b, coll - delta, debt - repay)
    o.sm.flash_fee_cost += repay * ff
    g = pay_gas(st, p, m, o, b, p.gas_reb)
    o.sm.n_rebalances += 1
    push_event(st, m, o, b, EV_REBALANCE, -delta, -repay, fee + slip + repay * ff + g)
    return True


cdef inline bint releverage(State* st, const Params* p, const Mkt* m, Out* o, Py_ssize_t b) noexcept nogil:
    # flash-borrow f, buy collateral, borrow f (1 + fee): up to target_hf, never above the max LTV
    cdef double h = p.target_hf, pc = m.por[b], lt = m.lt[b], px = m.price[b], ltv = m.ltv[b]
    cdef double ff = p.flash_fee, kq, f = 0.0, d_h, d_c, f_h, f_c, t, fee, slip, g
    cdef double coll = coll_of(st, m, b), debt = debt_of(st, m, b)
    cdef int i
    kq = buy_quote(p, m, b, 1.0, &fee, &slip) * px
    for i in range(FIXED_POINT_ITERS):
        d_h = h * (1.0 + ff) - kq * pc * lt / px
        d_c = (1.0 + ff) - ltv * kq * pc / px
        f_h = (coll * pc * lt - h * debt) / d_h if d_h > 0 else INFINITY
        f_c = (ltv * coll * pc - debt) / d_c if d_c > 0 else INFINITY
        f = min(f_h, f_c)
        if not (st.dust < f < INFINITY):      # no room (at the max LTV to rounding) or no need
            return False
        t = buy_quote(p, m, b, f, &fee, &slip)
        kq = t * px / f
    settle(st, m, o, b)
    t = buy_quote(p, m, b, f, &fee, &slip)
    book_swap(o, fee, slip)
    set_balances(st, m, b, coll + t, debt + f * (1.0 + ff))
    o.sm.flash_fee_cost += f * ff
    g = pay_gas(st, p, m, o, b, p.gas_reb)
    o.sm.n_rebalances += 1
    push_event(st, m, o, b, EV_REBALANCE, t, f * (1.0 + ff), fee + slip + f * ff + g)
    return True


cdef inline void strategy_step(State* st, const Params* p, const Mkt* m, Out* o, Py_ssize_t b) noexcept nogil:
    cdef int64_t ts = m.ts[b], t0 = m.ts[0], every = p.check_every
    cdef double hf
    if b == 0:
        open_position(st, p, m, o, b)
        st.next_check = t0 + every
        return
    if st.queued > 0 and ts >= st.release_ts:
        st.cash += st.queued
        st.queued = 0.0
        push_event(st, m, o, b, EV_QUEUE_RELEASE, 0.0, 0.0, 0.0)
    if st.closed:
        return
    if p.exit_on and depeg_ratio(m, b) < p.depeg_below:
        close_all(st, p, m, o, b, EV_EXIT, p.exit_route)
        o.sm.exit_idx = b
        return
    if p.reb_on and ts >= st.next_check:
        st.next_check = t0 + ((ts - t0) // every + 1) * every
        if st.d > 0 and (p.kind == KIND_LOOP or p.kind == KIND_FLASH):
            hf = hf_of(st, m, b)
            if hf < p.delev_below:
                deleverage(st, p, m, o, b)
            elif hf > p.relev_above:
                releverage(st, p, m, o, b)
    if b == m.n - 1 and p.unwind_at_end:
        close_all(st, p, m, o, b, EV_UNWIND, ROUTE_DEX)
