# Multi-collateral positions ([[strategy.collateral]]): several collateral legs against one debt. Included into
# _core.pyx; the spec is backtest/reference_legs.py. One-collateral configurations never come here (run_batch),
# so their results stay bit for bit what they were.
#
# Balances are scaled per leg (actual = s[i] x sidx[i][b]); HF = sum_i (s[i] / d) x a[i][b] with
# a[i] = oracle[i] x LT[i] x sidx[i] / bidx. The chunk skip needs a proven lower bound of HF over the chunk:
# sum_i r[i] x amin[i][c] with r[i] = s[i] / d >= 0. Round-to-nearest multiplication by r >= 0 and addition are
# monotone, so fl(sum_i r[i] x amin[i][c]) <= fl(sum_i r[i] x a[i][b]) for every block b of the chunk: the
# bound holds in floating point, not only in exact arithmetic (and sum_i r[i] x amax[i][c] bounds HF above).
# The per-leg minima do not give the minimum of the sum, so a skipped chunk still scans its HF (no actions).

cdef enum:
    MAX_LEGS = 4
    N_LEG_RECORD = 4        # per leg: tokens, oracle price, market price, exchange rate
    N_LEG_SUMMARY = 3       # per leg: end collateral (tokens), tokens seized, their value (debt asset)

cdef struct LMkt:
    Py_ssize_t n
    Py_ssize_t L
    const int64_t* ts
    const double* gtp
    const double* eth_usd
    const double* gas
    const double* bidx
    Mkt v[MAX_LEGS]         # per-leg quote views (price, xrate, up) for buy_quote / sell_quote / depeg_ratio
    const double* ltv[MAX_LEGS]
    const double* lt[MAX_LEGS]
    const double* bonus[MAX_LEGS]
    const double* pfee[MAX_LEGS]
    const double* por[MAX_LEGS]
    const double* sidx[MAX_LEGS]
    const double* a[MAX_LEGS]
    const double* K[MAX_LEGS]
    const double* K2[MAX_LEGS]
    const double* KW[MAX_LEGS]
    const double* slash[MAX_LEGS]
    const double* hprice[MAX_LEGS]
    const double* hxrate[MAX_LEGS]
    const double* amin[MAX_LEGS]
    const double* amax[MAX_LEGS]
    const int64_t* aarg[MAX_LEGS]
    const double* qmin      # per chunk: min over legs of the de-peg ratio
    const double* schunk    # per chunk: max over legs of slash
    Py_ssize_t chunk
    Py_ssize_t nchunks
    const int64_t* rec_idx
    Py_ssize_t n_rec
    Py_ssize_t metric_every

cdef struct LState:
    double s[MAX_LEGS]
    double w[MAX_LEGS]      # wallet tokens per leg (hold)
    double wt[MAX_LEGS]     # weights
    double d
    double cash
    double queued
    int64_t release_ts
    int64_t next_check
    int closed
    Py_ssize_t seg0
    double peak
    double dust
    Py_ssize_t n_ev

cdef struct LOut:
    Summary* sm
    Event* ev
    int64_t* evleg          # per event: the leg seized by an Aave-family liquidation, -1 otherwise
    Py_ssize_t ev_cap
    double* rec             # n_rec x N_RECORD
    double* lrec            # n_rec x L x N_LEG_RECORD
    double* lsm             # L x N_LEG_SUMMARY


cdef inline double l_coll(const LState* st, const LMkt* m, Py_ssize_t i, Py_ssize_t b) noexcept nogil:
    return st.s[i] * m.sidx[i][b]


cdef inline double l_debt(const LState* st, const LMkt* m, Py_ssize_t b) noexcept nogil:
    return st.d * m.bidx[b]


cdef inline double l_hf(const LState* st, const LMkt* m, Py_ssize_t b) noexcept nogil:
    cdef double h = 0.0
    cdef Py_ssize_t i
    if st.d == 0:
        return INFINITY
    for i in range(m.L):
        h += (st.s[i] / st.d) * m.a[i][b]
    return h


cdef inline bint l_empty(const LState* st, const LMkt* m, Py_ssize_t b) noexcept nogil:
    cdef Py_ssize_t i
    for i in range(m.L):
        if l_coll(st, m, i, b) > st.dust:
            return False
    return True


cdef inline void l_settle(LState* st, const LMkt* m, LOut* o, Py_ssize_t b) noexcept nogil:
    cdef Py_ssize_t b0 = st.seg0, i
    if b > b0:
        for i in range(m.L):
            o.sm.staking_yield += st.s[i] * (m.K[i][b] - m.K[i][b0]) + st.w[i] * (m.KW[i][b] - m.KW[i][b0])
            o.sm.supply_yield += st.s[i] * (m.K2[i][b] - m.K2[i][b0])
        o.sm.interest_paid += st.d * (m.bidx[b] - m.bidx[b0])
    st.seg0 = b


cdef inline void l_set_coll(LState* st, const LMkt* m, Py_ssize_t i, Py_ssize_t b, double coll) noexcept nogil:
    st.s[i] = coll / m.sidx[i][b] if coll > st.dust else 0.0


cdef inline void l_set_debt(LState* st, const LMkt* m, Py_ssize_t b, double debt) noexcept nogil:
    st.d = debt / m.bidx[b] if debt > st.dust else 0.0


cdef inline double l_gas(LState* st, const Params* p, const LMkt* m, LOut* o, Py_ssize_t b,
                         double units) noexcept nogil:
    cdef double price = m.gas[b] if isnan(p.gas_gwei) else p.gas_gwei
    cdef double cost = units * price * 1e-9 * m.gtp[b]
    st.cash -= cost
    o.sm.gas_cost += cost
    return cost


cdef inline void l_push(LState* st, const LMkt* m, LOut* o, Py_ssize_t b, long kind, double coll, double debt,
                        double cost, long leg) noexcept nogil:
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
    e.hf = l_hf(st, m, b)
    o.evleg[st.n_ev] = leg
    st.n_ev += 1


cdef inline void l_book_liq(LState* st, const LMkt* m, LOut* o, Py_ssize_t b, double seized, double value,
                            double repay, double penalty, double fee_value, long leg) noexcept nogil:
    o.sm.liq_count += 1
    o.sm.liq_debt_repaid += repay
    o.sm.liq_coll_seized += seized
    o.sm.liq_coll_seized_value += value
    o.sm.liq_penalty += penalty
    o.sm.liq_protocol_fee += fee_value
    l_push(st, m, o, b, EV_LIQUIDATION, -seized, -repay, penalty, leg)


cdef inline void l_write_off(LState* st, const LMkt* m, LOut* o, Py_ssize_t b, double bad) noexcept nogil:
    o.sm.bad_debt += bad
    st.d = 0.0
    l_push(st, m, o, b, EV_BAD_DEBT, 0.0, -bad, bad, -1)


# ------------------------------------------------------------------------------------------ liquidation
cdef inline void l_absorb(LState* st, const Params* p, const LMkt* m, LOut* o, Py_ssize_t b) noexcept nogil:
    # Compound III absorbInternal: every collateral asset is seized; the credit is sum_i value_i x LF_i
    cdef double debt, value[MAX_LEGS], seized = 0.0, total = 0.0, credit = 0.0, repay
    cdef Py_ssize_t i
    l_settle(st, m, o, b)
    debt = l_debt(st, m, b)
    if debt <= st.dust or l_empty(st, m, b) or not l_hf(st, m, b) < 1.0:
        return
    for i in range(m.L):
        value[i] = l_coll(st, m, i, b) * m.por[i][b]
    for i in range(m.L):
        credit += value[i] * (1.0 - m.bonus[i][b])
    repay = credit if credit < debt else debt
    for i in range(m.L):
        seized += l_coll(st, m, i, b)
        total += value[i]
        o.lsm[i * N_LEG_SUMMARY + 1] += l_coll(st, m, i, b)
        o.lsm[i * N_LEG_SUMMARY + 2] += value[i]
        st.s[i] = 0.0
    st.d = 0.0
    st.cash += credit - repay
    l_book_liq(st, m, o, b, seized, total, repay, total - credit, total - credit, -1)
    if debt - repay > st.dust:
        l_write_off(st, m, o, b, debt - repay)


cdef inline void l_aave(LState* st, const Params* p, const LMkt* m, LOut* o, Py_ssize_t b) noexcept nogil:
    # executeLiquidationCall with one collateral per call: the leg of the largest oracle value (first on ties);
    # that leg's bonus, price and fee; the v3.3 rules on that leg's collateral; bad debt only with nothing left
    cdef double coll, debt, hf, pc, lb, pf, usd, max_repay, repay, seized, fee_tokens, r1, r2, v, best
    cdef bint v33, big
    cdef Py_ssize_t i, j
    cdef int k
    l_settle(st, m, o, b)
    for k in range(MAX_LIQUIDATIONS_PER_BLOCK):
        debt = l_debt(st, m, b)
        if debt <= st.dust or l_empty(st, m, b):
            return
        hf = l_hf(st, m, b)
        if not hf < 1.0:
            return
        j = 0
        best = -1.0
        for i in range(m.L):
            v = l_coll(st, m, i, b) * m.por[i][b]
            if l_coll(st, m, i, b) > st.dust and v > best:
                j = i
                best = v
        coll = l_coll(st, m, j, b)
        pc = m.por[j][b]
        lb = 1.0 + m.bonus[j][b]
        pf = 0.0 if p.protocol == PROTO_AAVE_V2 else m.pfee[j][b]
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
                if repay <= st.dust:
                    return
                seized = repay * lb / pc
        fee_tokens = (seized - seized / lb) * pf
        l_set_coll(st, m, j, b, coll - seized)
        l_set_debt(st, m, b, debt - repay)
        o.lsm[j * N_LEG_SUMMARY + 1] += seized
        o.lsm[j * N_LEG_SUMMARY + 2] += seized * pc
        l_book_liq(st, m, o, b, seized, seized * pc, repay, seized * pc - repay, fee_tokens * pc, j)
        if l_empty(st, m, b) and debt - repay > st.dust:
            l_write_off(st, m, o, b, debt - repay)
            return


cdef inline void l_liquidate(LState* st, const Params* p, const LMkt* m, LOut* o, Py_ssize_t b) noexcept nogil:
    if p.protocol == PROTO_COMET:
        l_absorb(st, p, m, o, b)
    elif p.protocol != PROTO_MORPHO:        # Morpho Blue has one collateral: refused before the replay
        l_aave(st, p, m, o, b)


# ------------------------------------------------------------------------------------------- strategies
cdef inline double l_buy_all(LState* st, const Params* p, const LMkt* m, LOut* o, Py_ssize_t b, double amount,
                             double* got) noexcept nogil:
    # spend `amount` split by weight, each leg on its own DEX; returns fee + slippage (booked)
    cdef double fee, slip, cost = 0.0
    cdef Py_ssize_t i
    for i in range(m.L):
        got[i] = buy_quote(p, &m.v[i], b, st.wt[i] * amount, &fee, &slip)
        o.sm.swap_fee_cost += fee
        o.sm.slippage_cost += slip
        cost += fee + slip
    return cost


cdef inline double l_sell_all(const Params* p, const LMkt* m, LOut* o, Py_ssize_t b, const double* amounts,
                              bint book, double* cost) noexcept nogil:
    cdef double fee, slip, out = 0.0
    cdef Py_ssize_t i
    cost[0] = 0.0
    for i in range(m.L):
        out += sell_quote(p, &m.v[i], b, amounts[i], &fee, &slip)
        if book:
            o.sm.swap_fee_cost += fee
            o.sm.slippage_cost += slip
        cost[0] += fee + slip
    return out


cdef inline double l_sum(const double* x, Py_ssize_t L) noexcept nogil:
    cdef double t = 0.0
    cdef Py_ssize_t i
    for i in range(L):
        t += x[i]
    return t


cdef inline void l_open(LState* st, const Params* p, const LMkt* m, LOut* o, Py_ssize_t b) noexcept nogil:
    cdef double cap = p.capital, x = p.target_ltv, ff = p.flash_fee
    cdef double f, q, g, cost, borrow, room, last, fee, slip
    cdef double got[MAX_LEGS]
    cdef Py_ssize_t i, L = m.L
    cdef int it
    l_settle(st, m, o, b)
    if p.kind == KIND_FLASH:
        f = cap * x / (1.0 - x)
        for it in range(FIXED_POINT_ITERS):
            q = 0.0
            for i in range(L):
                q += buy_quote(p, &m.v[i], b, st.wt[i] * (cap + f), &fee, &slip) * m.por[i][b]
            q = q / (cap + f)
            if not ((1.0 + ff) - x * q > 0):
                f = cap * x / (1.0 - x)
                break
            f = x * q * cap / ((1.0 + ff) - x * q)
        cost = l_buy_all(st, p, m, o, b, cap + f, got)
        st.cash -= cap
        for i in range(L):
            l_set_coll(st, m, i, b, l_coll(st, m, i, b) + got[i])
        l_set_debt(st, m, b, l_debt(st, m, b) + f * (1.0 + ff))
        o.sm.flash_fee_cost += f * ff
        g = l_gas(st, p, m, o, b, p.gas_open)
        l_push(st, m, o, b, EV_OPEN, l_sum(got, L), f * (1.0 + ff), cost + f * ff + g, -1)
        return
    cost = l_buy_all(st, p, m, o, b, cap, got)
    st.cash -= cap
    for i in range(L):
        if p.kind == KIND_HOLD:
            st.w[i] += got[i]
        else:
            l_set_coll(st, m, i, b, l_coll(st, m, i, b) + got[i])
    g = l_gas(st, p, m, o, b, p.gas_open)
    l_push(st, m, o, b, EV_OPEN, l_sum(got, L), 0.0, cost + g, -1)
    if p.kind != KIND_LOOP:
        return
    last = 0.0
    for i in range(L):
        last += got[i] * m.por[i][b]
    for it in range(p.loops):
        borrow = x * last
        room = 0.0
        for i in range(L):
            room += m.ltv[i][b] * l_coll(st, m, i, b) * m.por[i][b]
        room = room - l_debt(st, m, b)
        if borrow > room:
            borrow = room if room > 0 else 0.0
        if borrow <= st.dust:
            break
        cost = l_buy_all(st, p, m, o, b, borrow, got)
        for i in range(L):
            l_set_coll(st, m, i, b, l_coll(st, m, i, b) + got[i])
        l_set_debt(st, m, b, l_debt(st, m, b) + borrow)
        last = 0.0
        for i in range(L):
            last += got[i] * m.por[i][b]
        g = l_gas(st, p, m, o, b, p.gas_loop)
        l_push(st, m, o, b, EV_LOOP, l_sum(got, L), borrow, cost + g, -1)


cdef inline void l_close_all(LState* st, const Params* p, const LMkt* m, LOut* o, Py_ssize_t b,
                             long kind, long route) noexcept nogil:
    cdef double tokens[MAX_LEGS], sold[MAX_LEGS]
    cdef double debt, ff, owed, cost, out, phi, v, k, rest, c2, total
    cdef Py_ssize_t i, L = m.L
    cdef int it
    cdef bint late
    l_settle(st, m, o, b)
    for i in range(L):
        tokens[i] = l_coll(st, m, i, b) + st.w[i]
        sold[i] = tokens[i]
    total = l_sum(tokens, L)
    debt = l_debt(st, m, b)
    ff = p.flash_fee if debt > st.dust else 0.0
    owed = debt * (1.0 + ff)
    if route == ROUTE_QUEUE and total > 0:
        phi = 0.0
        if owed > 0:
            v = 0.0
            for i in range(L):
                v += tokens[i] * m.v[i].price[b]
            k = 1.0 - p.swap_fee
            for it in range(FIXED_POINT_ITERS):
                phi = owed / (v * k)
                for i in range(L):
                    sold[i] = phi * tokens[i]
                out = l_sell_all(p, m, o, b, sold, False, &c2)
                k = out / (phi * v)
            phi = min(phi, 1.0)
        for i in range(L):
            sold[i] = phi * tokens[i]
    out = l_sell_all(p, m, o, b, sold, True, &cost)
    cost += debt * ff
    o.sm.flash_fee_cost += debt * ff
    st.cash += out - owed
    late = p.queue_late_from > 0 and m.ts[b] >= p.queue_late_from
    for i in range(L):
        rest = tokens[i] - sold[i]
        if rest > st.dust:
            st.queued += rest * rate_value(&m.v[i], b)
            st.release_ts = m.ts[b] + (p.queue_delay_late if late else p.queue_delay)
            if m.ts[b] >= p.queue_frozen_from and m.ts[b] < p.queue_frozen_until:
                st.release_ts += p.queue_frozen_until - m.ts[b]     # a frozen queue: from its end
        st.s[i] = 0.0
        st.w[i] = 0.0
    st.d = 0.0
    st.closed = 1
    cost += l_gas(st, p, m, o, b, p.gas_close)
    l_push(st, m, o, b, kind, -total, -debt, cost, -1)


cdef inline bint l_deleverage(LState* st, const Params* p, const LMkt* m, LOut* o, Py_ssize_t b) noexcept nogil:
    # sell the same fraction phi of every leg through a flash loan so that HF returns to target_hf
    cdef double h = p.target_hf, ff = p.flash_fee, k = 1.0 - p.swap_fee, a = 0.0, v = 0.0, phi = 0.0
    cdef double denom, out, cost, repay, g, debt = l_debt(st, m, b)
    cdef double coll[MAX_LEGS], delta[MAX_LEGS]
    cdef Py_ssize_t i, L = m.L
    cdef int it
    for i in range(L):
        coll[i] = l_coll(st, m, i, b)
        a += coll[i] * m.por[i][b] * m.lt[i][b]
    for i in range(L):
        v += coll[i] * m.v[i].price[b]
    for it in range(FIXED_POINT_ITERS):
        denom = h * v * k / (1.0 + ff) - a
        phi = (h * debt - a) / denom if denom > 0 else INFINITY
        if not phi < 1.0:
            break
        for i in range(L):
            delta[i] = phi * coll[i]
        out = l_sell_all(p, m, o, b, delta, False, &cost)
        k = out / (phi * v)
    if not phi < 1.0:
        out = l_sell_all(p, m, o, b, coll, False, &cost)
        if out >= debt * (1.0 + ff):
            l_close_all(st, p, m, o, b, EV_REBALANCE, ROUTE_DEX)
            o.sm.n_rebalances += 1
            return True
        return False
    for i in range(L):
        delta[i] = phi * coll[i]
    if l_sum(delta, L) <= st.dust:
        return False
    l_settle(st, m, o, b)
    out = l_sell_all(p, m, o, b, delta, True, &cost)
    repay = out / (1.0 + ff)
    for i in range(L):
        l_set_coll(st, m, i, b, coll[i] - delta[i])
    l_set_debt(st, m, b, debt - repay)
    o.sm.flash_fee_cost += repay * ff
    g = l_gas(st, p, m, o, b, p.gas_reb)
    o.sm.n_rebalances += 1
    l_push(st, m, o, b, EV_REBALANCE, -l_sum(delta, L), -repay, cost + repay * ff + g, -1)
    return True


cdef inline void l_gains(LState* st, const Params* p, const LMkt* m, Py_ssize_t b, double f,
                         double* g_h, double* g_c) noexcept nogil:
    # oracle value x LT (g_h) and x max LTV (g_c) bought per unit borrowed, f split by weight
    cdef double t, fee, slip, sh = 0.0, sc = 0.0
    cdef Py_ssize_t i
    for i in range(m.L):
        t = buy_quote(p, &m.v[i], b, st.wt[i] * f, &fee, &slip)
        sh += t * m.por[i][b] * m.lt[i][b]
        sc += t * m.por[i][b] * m.ltv[i][b]
    g_h[0] = sh / f
    g_c[0] = sc / f


cdef inline bint l_releverage(LState* st, const Params* p, const LMkt* m, LOut* o, Py_ssize_t b) noexcept nogil:
    cdef double h = p.target_hf, ff = p.flash_fee, a = 0.0, capl = 0.0, g_h, g_c, f = 0.0, d_h, d_c, f_h, f_c
    cdef double cost, g, c, debt = l_debt(st, m, b)
    cdef double got[MAX_LEGS]
    cdef Py_ssize_t i, L = m.L
    cdef int it
    for i in range(L):
        c = l_coll(st, m, i, b)
        a += c * m.por[i][b] * m.lt[i][b]
    for i in range(L):
        c = l_coll(st, m, i, b)
        capl += c * m.por[i][b] * m.ltv[i][b]
    l_gains(st, p, m, b, 1.0, &g_h, &g_c)
    for it in range(FIXED_POINT_ITERS):
        d_h = h * (1.0 + ff) - g_h
        d_c = (1.0 + ff) - g_c
        f_h = (a - h * debt) / d_h if d_h > 0 else INFINITY
        f_c = (capl - debt) / d_c if d_c > 0 else INFINITY
        f = min(f_h, f_c)
        if not (st.dust < f < INFINITY):
            return False
        l_gains(st, p, m, b, f, &g_h, &g_c)
    l_settle(st, m, o, b)
    cost = l_buy_all(st, p, m, o, b, f, got)
    for i in range(L):
        l_set_coll(st, m, i, b, l_coll(st, m, i, b) + got[i])
    l_set_debt(st, m, b, debt + f * (1.0 + ff))
    o.sm.flash_fee_cost += f * ff
    g = l_gas(st, p, m, o, b, p.gas_reb)
    o.sm.n_rebalances += 1
    l_push(st, m, o, b, EV_REBALANCE, l_sum(got, L), f * (1.0 + ff), cost + f * ff + g, -1)
    return True


cdef inline bint l_depegged(const Params* p, const LMkt* m, Py_ssize_t b) noexcept nogil:
    cdef Py_ssize_t i
    for i in range(m.L):
        if depeg_ratio(&m.v[i], b) < p.depeg_below:
            return True
    return False


cdef inline void l_strategy(LState* st, const Params* p, const LMkt* m, LOut* o, Py_ssize_t b) noexcept nogil:
    cdef int64_t ts = m.ts[b], t0 = m.ts[0], every = p.check_every
    cdef double hf
    if b == 0:
        l_open(st, p, m, o, b)
        st.next_check = t0 + every
        return
    if st.queued > 0 and ts >= st.release_ts:
        st.cash += st.queued
        st.queued = 0.0
        l_push(st, m, o, b, EV_QUEUE_RELEASE, 0.0, 0.0, 0.0, -1)
    if st.closed:
        return
    if p.exit_on and l_depegged(p, m, b):
        l_close_all(st, p, m, o, b, EV_EXIT, p.exit_route)
        o.sm.exit_idx = b
        return
    if p.reb_on and ts >= st.next_check:
        st.next_check = t0 + ((ts - t0) // every + 1) * every
        if st.d > 0 and (p.kind == KIND_LOOP or p.kind == KIND_FLASH):
            hf = l_hf(st, m, b)
            if hf < p.delev_below:
                l_deleverage(st, p, m, o, b)
            elif hf > p.relev_above:
                l_releverage(st, p, m, o, b)
    if b == m.n - 1 and p.unwind_at_end:
        l_close_all(st, p, m, o, b, EV_UNWIND, ROUTE_DEX)
