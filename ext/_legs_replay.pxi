# Multi-collateral positions: the replay loop (chunk skip with the proven lower bound of ext/_legs.pxi) and
# run_batch_legs. Included into _core.pyx after _legs.pxi.

# ------------------------------------------------------------------------------------------------ replay
cdef inline double l_equity(const LState* st, const LMkt* m, Py_ssize_t b, bint at_rate) noexcept nogil:
    cdef double e = 0.0, mark
    cdef Py_ssize_t i
    for i in range(m.L):
        mark = rate_value(&m.v[i], b) if at_rate else m.v[i].price[b]
        e += (l_coll(st, m, i, b) + st.w[i]) * mark
    return e + st.cash + st.queued - l_debt(st, m, b)


cdef inline void l_record(const LState* st, const LMkt* m, LOut* o, Py_ssize_t r, Py_ssize_t b) noexcept nogil:
    cdef double* row = o.rec + r * N_RECORD
    cdef double* lr = o.lrec + r * m.L * N_LEG_RECORD
    cdef double tokens = 0.0, exposure = 0.0, coll_val = 0.0, t, e = l_equity(st, m, b, False)
    cdef double debt = l_debt(st, m, b)
    cdef Py_ssize_t i
    for i in range(m.L):
        t = l_coll(st, m, i, b) + st.w[i]
        tokens += t
        exposure += t * m.v[i].price[b]
        coll_val += l_coll(st, m, i, b) * m.por[i][b]
        lr[i * N_LEG_RECORD + 0] = t
        lr[i * N_LEG_RECORD + 1] = m.por[i][b]
        lr[i * N_LEG_RECORD + 2] = m.v[i].price[b]
        lr[i * N_LEG_RECORD + 3] = m.v[i].xrate[b]
    row[0] = tokens
    row[1] = debt
    row[2] = st.cash + st.queued
    row[3] = l_hf(st, m, b)
    row[4] = debt / coll_val if coll_val > 0 else 0.0
    if e > 0:
        row[5] = exposure / e
    else:
        row[5] = 0.0 if tokens == 0 else INFINITY
    row[6] = NAN            # one price per leg: leg records
    row[7] = NAN
    row[8] = NAN
    row[9] = e
    row[10] = l_equity(st, m, b, True)


cdef inline void l_metric(LState* st, const LMkt* m, LOut* o, Py_ssize_t b) noexcept nogil:
    cdef double e = l_equity(st, m, b, False), dd, tokens = 0.0, exposure = 0.0, t
    cdef Py_ssize_t i
    if e > st.peak:
        st.peak = e
    if st.peak > 0:
        dd = 1.0 - e / st.peak
        if dd > o.sm.max_drawdown:
            o.sm.max_drawdown = dd
    for i in range(m.L):
        t = l_coll(st, m, i, b) + st.w[i]
        tokens += t
        exposure += t * m.v[i].price[b]
    if e > 0 and tokens > 0:
        o.sm.lev_sum += exposure / e
        o.sm.lev_n += 1


cdef inline bint l_can_skip(const LState* st, const Params* p, const LMkt* m, const double* r, Py_ssize_t c,
                            Py_ssize_t lo, Py_ssize_t hi) noexcept nogil:
    cdef double lower = 0.0, upper = 0.0
    cdef Py_ssize_t i
    if lo == 0 or hi == m.n:
        return False
    if m.schunk[c] > 0:
        return False
    if st.queued > 0 and m.ts[hi - 1] >= st.release_ts:
        return False
    if st.d > 0:
        for i in range(m.L):
            lower += r[i] * m.amin[i][c]
            upper += r[i] * m.amax[i][c]
        if not (lower >= 1.05):
            return False
        if (p.reb_on and not st.closed and m.ts[hi - 1] >= st.next_check
                and (p.kind == KIND_LOOP or p.kind == KIND_FLASH)):
            if not (lower >= p.delev_below) or not (upper <= p.relev_above):
                return False
    if p.exit_on and not st.closed and not (m.qmin[c] >= p.depeg_below):
        return False
    return True


cdef inline bint l_action_due(const LState* st, const Params* p, const LMkt* m, Py_ssize_t b) noexcept nogil:
    if b == 0 or b == m.n - 1:
        return True
    if st.queued > 0 and m.ts[b] >= st.release_ts:
        return True
    if st.closed:
        return False
    if p.exit_on and l_depegged(p, m, b):
        return True
    return p.reb_on and m.ts[b] >= st.next_check


cdef inline void l_ratios(const LState* st, const LMkt* m, double* r) noexcept nogil:
    cdef Py_ssize_t i
    for i in range(m.L):
        r[i] = st.s[i] / st.d if st.d > 0 else 0.0


cdef inline double l_hf_r(const LMkt* m, const double* r, Py_ssize_t b) noexcept nogil:
    # the same sum, in the same order, as l_hf (r[i] = s[i] / d)
    cdef double h = 0.0
    cdef Py_ssize_t i
    for i in range(m.L):
        h += r[i] * m.a[i][b]
    return h


cdef void l_replay(LState* st, const Params* p, const LMkt* m, LOut* o, bint dense) noexcept nogil:
    cdef Summary* sm = o.sm
    cdef Py_ssize_t c, b, lo, hi, i, rp = 0, n = m.n, me = m.metric_every, nm = 0, L = m.L
    cdef double hf, t, cost, f, years, hold, cap_i, fee, slip, lower
    cdef double r[MAX_LEGS]
    cdef bint held
    cdef int64_t t0 = m.ts[0]
    cdef Py_ssize_t below_since = -1     # first block of the current run with HF < 1 (liq_delay)
    for i in range(L):
        r[i] = 0.0
    for c in range(m.nchunks):
        lo = c * m.chunk
        hi = lo + m.chunk if lo + m.chunk < n else n
        if not dense and l_can_skip(st, p, m, r, c, lo, hi):
            # the chunk's HF scan only when its lower bound could beat the minimum so far: every block's HF is
            # >= the bound (the monotone rounding above), so with bound >= min_hf no block updates it
            lower = 0.0
            for i in range(L):
                lower += r[i] * m.amin[i][c]
            if st.d > 0 and lower < sm.min_hf:
                for b in range(lo, hi):
                    hf = l_hf_r(m, r, b)
                    if hf < sm.min_hf:
                        sm.min_hf = hf
                        sm.min_hf_idx = b
            if p.reb_on and not st.closed and m.ts[hi - 1] >= st.next_check:
                st.next_check = t0 + ((m.ts[hi - 1] - t0) // p.check_every + 1) * p.check_every
            while rp < m.n_rec and m.rec_idx[rp] < hi:
                l_record(st, m, o, rp, m.rec_idx[rp])
                rp += 1
            while nm < hi:
                l_metric(st, m, o, nm)
                nm += me
            below_since = -1            # a skipped chunk keeps HF >= 1.05
            continue
        for b in range(lo, hi):
            held = False
            cost = 0.0
            for i in range(L):
                f = m.slash[i][b]
                t = l_coll(st, m, i, b) + st.w[i]
                if f > 0 and t > 0:
                    held = True
                    cost += t * m.v[i].xrate[b] * f / (1.0 - f) * m.v[i].up[b]
            if held:
                l_push(st, m, o, b, EV_SLASH, 0.0, 0.0, cost, -1)
            if st.d > 0:
                hf = l_hf_r(m, r, b)
                if hf < sm.min_hf:
                    sm.min_hf = hf
                    sm.min_hf_idx = b
                if hf < 1.05:
                    sm.blocks_below_105 += 1
                    if hf < 1.0:
                        if below_since < 0:
                            below_since = b
                        if b - below_since >= p.liq_delay:
                            l_liquidate(st, p, m, o, b)
                            l_ratios(st, m, r)
                    else:
                        below_since = -1
                else:
                    below_since = -1
            else:
                below_since = -1
            if l_action_due(st, p, m, b):
                l_strategy(st, p, m, o, b)
                l_ratios(st, m, r)
            while rp < m.n_rec and m.rec_idx[rp] == b:
                l_record(st, m, o, rp, b)
                rp += 1
            if b == nm:
                l_metric(st, m, o, b)
                nm += me
            elif b == n - 1:
                l_metric(st, m, o, b)
    b = n - 1
    l_settle(st, m, o, b)
    sm.end_equity = l_equity(st, m, b, False)
    sm.end_equity_rate = l_equity(st, m, b, True)
    sm.end_collateral = 0.0
    for i in range(L):
        t = l_coll(st, m, i, b) + st.w[i]
        sm.end_collateral += t
        o.lsm[i * N_LEG_SUMMARY + 0] = t
    sm.end_debt = l_debt(st, m, b)
    sm.end_cash = st.cash + st.queued
    years = <double>(m.ts[b] - m.ts[0]) / SECONDS_PER_YEAR
    sm.net_apy = annualise(sm.end_equity, p.capital, years)
    sm.net_apy_rate = annualise(sm.end_equity_rate, p.capital, years)
    # benchmark: the capital split by weight, bought at block 0 through the same entry and held
    cdef Mkt hm
    hold = 0.0
    for i in range(L):
        hm = m.v[i]
        hm.price = m.hprice[i]
        hm.xrate = m.hxrate[i]
        cap_i = st.wt[i] * p.capital
        hold += buy_quote(p, &hm, 0, cap_i, &fee, &slip) * m.hprice[i][b]
    sm.hold_end_equity = hold
    sm.hold_apy = annualise(hold, p.capital, years)


cdef void _run_config_legs(const LMkt* base, const Params* p, const double* wt, Py_ssize_t nlanes_stride,
                           Summary* sm, Event* ev, int64_t* evleg, Py_ssize_t ev_cap, double* rec, double* lrec,
                           double* lsm, const double* por, const double* a, const double* amin, const double* amax,
                           const int64_t* aarg, bint dense) noexcept nogil:
    # por / a: [lane, leg, block]; amin / amax / aarg: [lane, leg, chunk]
    cdef LMkt m = base[0]
    cdef LState st
    cdef LOut o
    cdef Py_ssize_t i, n = base.n, nch = base.nchunks, L = base.L
    for i in range(L):
        m.por[i] = por + (p.lane * L + i) * n
        m.a[i] = a + (p.lane * L + i) * n
        m.amin[i] = amin + (p.lane * L + i) * nch
        m.amax[i] = amax + (p.lane * L + i) * nch
        m.aarg[i] = aarg + (p.lane * L + i) * nch
        st.s[i] = 0.0
        st.w[i] = 0.0
        st.wt[i] = wt[i]
    for i in range(L * N_LEG_SUMMARY):
        lsm[i] = 0.0
    st.d = 0.0
    st.cash = p.capital
    st.queued = 0.0
    st.release_ts = 0
    st.next_check = 0
    st.closed = 0
    st.seg0 = 0
    st.peak = -INFINITY
    st.dust = DUST_REL * p.capital
    st.n_ev = 0
    o.sm = sm
    o.ev = ev
    o.evleg = evleg
    o.ev_cap = ev_cap
    o.rec = rec
    o.lrec = lrec
    o.lsm = lsm
    _zero_summary(sm)
    l_replay(&st, p, &m, &o, dense)


def run_batch_legs(Params[::1] params, const double[:, ::1] weights, dict market, dict legs, dict lanes,
                   const int64_t[::1] rec_idx, Py_ssize_t metric_every, Py_ssize_t chunk,
                   Summary[::1] summaries, Event[:, ::1] events, int64_t[:, ::1] event_legs,
                   double[:, :, ::1] records, double[:, :, :, ::1] leg_records, double[:, :, ::1] leg_summary,
                   bint dense=False, int threads=0):
    """Replay every configuration of `params` over one multi-collateral market (ext/_legs.pxi).

    market: the shared 1-D arrays (ts, eth_usd, gas_gwei, gas_token_price); legs: [leg, block] arrays (price,
    xrate, underlying_price, ltv, lt, bonus, pfee, slash, hold_price, hold_xrate); lanes: [leg, block] bidx-free
    indices (sidx, K, K2, KW), 1-D bidx, [lane, leg, block] por / a, [lane, leg, chunk] amin / amax / aarg,
    per-chunk qmin (min over legs) and schunk (max over legs); weights: [config, leg]."""
    cdef Py_ssize_t nconf = params.shape[0], i, j, ncap = events.shape[1], nrec = rec_idx.shape[0]
    cdef const int64_t[::1] ts = market["ts"]
    cdef const double[::1] eth_usd = market["eth_usd"], gas = market["gas_gwei"], gtp = market["gas_token_price"]
    cdef const double[:, ::1] price = legs["price"], xrate = legs["xrate"], up = legs["underlying_price"]
    cdef const double[:, ::1] ltv = legs["ltv"], lt = legs["lt"], bonus = legs["bonus"], pfee = legs["pfee"]
    cdef const double[:, ::1] slash = legs["slash"], hprice = legs["hold_price"], hxrate = legs["hold_xrate"]
    cdef const double[:, ::1] sidx = lanes["sidx"], K = lanes["K"], K2 = lanes["K2"], KW = lanes["KW"]
    cdef const double[::1] bidx = lanes["bidx"], qmin = lanes["qmin"], schunk = lanes["schunk"]
    cdef const double[:, :, ::1] por = lanes["por"], a = lanes["a"], amin = lanes["amin"], amax = lanes["amax"]
    cdef const int64_t[:, :, ::1] aarg = lanes["aarg"]
    cdef Py_ssize_t n = ts.shape[0], L = price.shape[0], nch, nlanes = por.shape[0]
    cdef LMkt base
    if n == 0 or chunk <= 0 or metric_every <= 0 or ncap <= 0:
        raise ValueError("run_batch_legs needs blocks, chunk > 0, metric_every > 0 and event capacity > 0")
    if not 2 <= L <= MAX_LEGS:
        raise ValueError(f"run_batch_legs: {L} legs; 2 to {MAX_LEGS}")
    nch = (n + chunk - 1) // chunk
    for name in ("price", "xrate", "underlying_price", "ltv", "lt", "bonus", "pfee", "slash", "hold_price",
                 "hold_xrate"):
        if legs[name].shape != (L, n):
            raise ValueError(f"run_batch_legs: legs[{name!r}] must be [leg, block]")
    for name in ("sidx", "K", "K2", "KW"):
        if lanes[name].shape != (L, n):
            raise ValueError(f"run_batch_legs: lanes[{name!r}] must be [leg, block]")
    if (eth_usd.shape[0] != n or gas.shape[0] != n or gtp.shape[0] != n or bidx.shape[0] != n
            or qmin.shape[0] != nch or schunk.shape[0] != nch):
        raise ValueError("run_batch_legs: shared arrays do not match the market")
    if por.shape[1] != L or por.shape[2] != n or a.shape[1] != L or a.shape[2] != n:
        raise ValueError("run_batch_legs: lane arrays must be [lane, leg, block]")
    if (amin.shape[1] != L or amin.shape[2] != nch or amax.shape[1] != L or amax.shape[2] != nch
            or aarg.shape[0] != nlanes or aarg.shape[1] != L or aarg.shape[2] != nch or amin.shape[0] != nlanes
            or amax.shape[0] != nlanes or a.shape[0] != nlanes):
        raise ValueError("run_batch_legs: chunk arrays must be [lane, leg, chunk]")
    if (summaries.shape[0] != nconf or events.shape[0] != nconf or event_legs.shape[0] != nconf
            or event_legs.shape[1] != ncap or weights.shape[0] != nconf or weights.shape[1] != L
            or leg_summary.shape[0] != nconf or leg_summary.shape[1] != L or leg_summary.shape[2] != N_LEG_SUMMARY):
        raise ValueError("run_batch_legs: output arrays do not match the configurations")
    if nrec > 0 and (records.shape[0] != nconf or records.shape[1] != nrec or records.shape[2] != N_RECORD
                     or leg_records.shape[0] != nconf or leg_records.shape[1] != nrec
                     or leg_records.shape[2] != L or leg_records.shape[3] != N_LEG_RECORD):
        raise ValueError("run_batch_legs: record arrays have the wrong shape")
    for i in range(nconf):
        if params[i].lane < 0 or params[i].lane >= nlanes or params[i].check_every <= 0:
            raise ValueError(f"configuration {i}: bad lane or check_every")
        if params[i].protocol < PROTO_AAVE_V3 or params[i].protocol > PROTO_GENERIC:
            raise ValueError(f"configuration {i}: unknown protocol code {params[i].protocol}")
        if params[i].protocol == PROTO_MORPHO:
            raise ValueError(f"configuration {i}: a Morpho Blue market has one collateral")
        if params[i].protocol == PROTO_GENERIC and isnan(params[i].cf_ovr):
            raise ValueError(f"configuration {i}: the generic venue needs a close factor (cf_ovr)")
    base.n = n
    base.L = L
    base.ts = &ts[0]
    base.gtp = &gtp[0]
    base.eth_usd = &eth_usd[0]
    base.gas = &gas[0]
    base.bidx = &bidx[0]
    for j in range(L):
        base.v[j].n = n
        base.v[j].ts = &ts[0]
        base.v[j].price = &price[j, 0]
        base.v[j].xrate = &xrate[j, 0]
        base.v[j].up = &up[j, 0]
        base.ltv[j] = &ltv[j, 0]
        base.lt[j] = &lt[j, 0]
        base.bonus[j] = &bonus[j, 0]
        base.pfee[j] = &pfee[j, 0]
        base.sidx[j] = &sidx[j, 0]
        base.K[j] = &K[j, 0]
        base.K2[j] = &K2[j, 0]
        base.KW[j] = &KW[j, 0]
        base.slash[j] = &slash[j, 0]
        base.hprice[j] = &hprice[j, 0]
        base.hxrate[j] = &hxrate[j, 0]
    base.qmin = &qmin[0]
    base.schunk = &schunk[0]
    base.chunk = chunk
    base.nchunks = nch
    base.rec_idx = &rec_idx[0] if nrec > 0 else NULL
    base.n_rec = nrec
    base.metric_every = metric_every
    with nogil, parallel(num_threads=threads if threads > 0 else 0):
        for i in prange(nconf, schedule="dynamic", chunksize=1):
            _run_config_legs(&base, &params[i], &weights[i, 0], nlanes, &summaries[i], &events[i, 0],
                             &event_legs[i, 0], ncap, &records[i, 0, 0] if nrec > 0 else NULL,
                             &leg_records[i, 0, 0, 0] if nrec > 0 else NULL, &leg_summary[i, 0, 0],
                             &por[0, 0, 0], &a[0, 0, 0], &amin[0, 0, 0], &amax[0, 0, 0], &aarg[0, 0, 0], dense)
