# The strategy book's kernels (included from _core.pyx): a Curve StableSwap LP share (lp), a fee-charging
# vault over a lend or loop (vault), a re-weighted basket (basket) and a liquidity-mining farm (farm).
# Each is a nogil loop over plain arrays of the aligned market; the def wrappers only check lengths and hand
# out numpy buffers. backtest/reference_book.py is the same arithmetic in plain Python, operation for
# operation (tests/unit/test_differential_book.py keeps the two equal).
from libc.math cimport fabs
from _rates cimport index_growth as _book_index_growth
from _types cimport EV_OPEN, EV_REBALANCE, EV_LIQUIDATION, EV_EXIT, EV_REWARD_SALE

cdef enum:
    BOOK_NEWTON_ITERS = 255     # Curve's get_D loops at most 255 times, stopping when D moves by <= 1 unit
    BOOK_MAX_LIQ = 64           # liquidation calls per block (as the loop engine)


cdef inline double stableswap_d(double x0, double x1, double amp) noexcept nogil:
    # Curve's get_D for 2 coins, A the invariant's A (Ann = A n^n = 4 A): Newton on
    # Ann S + D = Ann D + D^3 / (4 x0 x1), stopping when D moves by <= 1e-15 D (floats, not wei)
    cdef double s = x0 + x1, d, dp, prev, ann = amp * 4.0
    cdef int i
    if s <= 0:
        return 0.0
    d = s
    for i in range(BOOK_NEWTON_ITERS):
        dp = d * d / (x0 * 2.0) * d / (x1 * 2.0)
        prev = d
        d = (ann * s + dp * 2.0) * d / ((ann - 1.0) * d + 3.0 * dp)
        if d - prev <= 1e-15 * d and prev - d <= 1e-15 * d:
            break
    return d


cdef inline double stableswap_price(double x0, double x1, double amp, double d) noexcept nogil:
    # the pool's price of coin 1 in coin 0: -dx0/dx1 along the invariant at these balances, F_x1 / F_x0 with
    # F = Ann (x0 + x1) + D - Ann D - D^3 / (4 x0 x1)
    cdef double ann = amp * 4.0, d3 = d * d * d
    return (ann + d3 / (4.0 * x1 * x1 * x0)) / (ann + d3 / (4.0 * x1 * x0 * x0))


# ------------------------------------------------------------------------------------------------- lp
cdef void _book_lp(Py_ssize_t n, const double* r0, const double* r1, const double* vp, const double* amp,
                   const double* price, const double* gas, double capital, double gas_open, double gas_close,
                   double* value, double* hold, double* share1, double* out) noexcept nogil:
    # out: tokens, fee_income, impermanent_loss, gas_cost, min_value, min_value_idx, share1_at_min,
    #      max_share1, max_drawdown, end_value, hold_end, pool_price_end, d0, supply0
    cdef Py_ssize_t b, imin = 0
    cdef double d, supply, tokens, g0, g1, h0, h1, v, peak, dd = 0.0, vmin, s1max = 0.0, pool_px
    d = stableswap_d(r0[0], r1[0], amp[0])
    supply = d / vp[0]
    out[12] = d
    out[13] = supply
    g0 = gas_open * gas[0] * 1e-9
    # the deposit buys the share at its market value: capital less the open's gas, over the share's value
    tokens = (capital - g0) / ((r0[0] + r1[0] * price[0]) / supply)
    h0 = tokens / supply * r0[0]          # the coins the share stood for at the deposit (held instead)
    h1 = tokens / supply * r1[0]
    peak = -INFINITY
    vmin = INFINITY
    for b in range(n):
        d = stableswap_d(r0[b], r1[b], amp[b])
        supply = d / vp[b]
        v = tokens * (r0[b] + r1[b] * price[b]) / supply
        value[b] = v
        hold[b] = h0 + h1 * price[b]
        share1[b] = r1[b] / (r0[b] + r1[b])
        if share1[b] > s1max:
            s1max = share1[b]
        if v < vmin:
            vmin = v
            imin = b
        if v > peak:
            peak = v
        if peak > 0 and (peak - v) / peak > dd:
            dd = (peak - v) / peak
    g1 = gas_close * gas[n - 1] * 1e-9
    pool_px = stableswap_price(r0[n - 1], r1[n - 1], amp[n - 1], d)
    out[0] = tokens
    out[1] = tokens * (vp[n - 1] - vp[0])
    # the share's market value with the fee growth taken out, against the deposit's coins held
    out[2] = value[n - 1] * (vp[0] / vp[n - 1]) - hold[n - 1]
    out[3] = g0 + g1
    out[4] = vmin
    out[5] = <double>imin
    out[6] = share1[imin]
    out[7] = s1max
    out[8] = dd
    out[9] = value[n - 1] - g1
    out[10] = hold[n - 1]
    out[11] = pool_px


def book_lp(const double[::1] reserve0, const double[::1] reserve1, const double[::1] virtual_price,
            const double[::1] amp, const double[::1] price, const double[::1] gas_gwei, double capital,
            double gas_open, double gas_close):
    """A Curve StableSwap (2 coins: coin 0 the native, coin 1 the LST) share bought with ``capital`` (native
    units) at block 0 and marked at market prices every block. Returns (summary vector, value, hold, share1);
    backtest.reference_book.LP_FIELDS names the vector."""
    cdef Py_ssize_t n = reserve0.shape[0]
    if n == 0:
        raise ValueError("book_lp needs blocks")
    if (reserve1.shape[0] != n or virtual_price.shape[0] != n or amp.shape[0] != n or price.shape[0] != n
            or gas_gwei.shape[0] != n):
        raise ValueError("book_lp: arrays differ in length")
    value = np.empty(n)
    hold = np.empty(n)
    share1 = np.empty(n)
    out = np.zeros(14)
    cdef double[::1] v = value, h = hold, s = share1, o = out
    with nogil:
        _book_lp(n, &reserve0[0], &reserve1[0], &virtual_price[0], &amp[0], &price[0], &gas_gwei[0], capital,
                 gas_open, gas_close, &v[0], &h[0], &s[0], &o[0])
    return out, value, hold, share1


def stableswap_invariant(double x0, double x1, double amp):
    """D of a 2-coin StableSwap pool at balances x0, x1 (the kernel's Newton iteration)."""
    return stableswap_d(x0, x1, amp)


def stableswap_pool_price(double x0, double x1, double amp):
    """The pool's price of coin 1 in coin 0 at these balances (dy/dx along the invariant)."""
    return stableswap_price(x0, x1, amp, stableswap_d(x0, x1, amp))


# ---------------------------------------------------------------------------------------------- vault
cdef inline void _book_event(double* ev, Py_ssize_t cap, Py_ssize_t* ne, Py_ssize_t b, long kind, double coll,
                             double debt, double cost, double hf) noexcept nogil:
    # one EVENT_DTYPE row (idx, kind, coll, debt, cost, hf) while there is room; ne counts every event
    cdef double* r
    if ne[0] < cap:
        r = ev + 6 * ne[0]
        r[0] = <double>b
        r[1] = <double>kind
        r[2] = coll
        r[3] = debt
        r[4] = cost
        r[5] = hf
    ne[0] += 1


cdef void _book_vault(Py_ssize_t n, const int64_t* ts, const double* price, const double* orc,
                      const double* supply_apr, const double* borrow_apr, const double* lt, const double* bonus,
                      const double* gas, const double* p, double* value, double* out, double* ev,
                      Py_ssize_t ecap) noexcept nogil:
    # p: protocol, loop (0/1), capital, target_ltv, band, check_every, swap_fee, gas_open, gas_reb, gas_close,
    #    mgmt_fee (per year on assets), perf_fee (of gains over the high-water mark), the venue's supply and
    #    borrow rate-model codes (backtest.venues.growth_codes: the kernel grows the indices by them)
    # out: end_value, end_value_rate, mgmt_fee_paid, perf_fee_paid, gas_cost, swap_fee_cost, liq_count,
    #      liq_penalty, min_hf, n_rebalances, max_drawdown, interest_paid, end_collateral, end_debt,
    #      vault_end_value, hold_end_value, n_events (events: the first ecap rows of idx, kind, coll, debt,
    #      cost, hf)
    cdef long supply_model = <long>p[12], borrow_model = <long>p[13]
    cdef bint loop = p[1] != 0
    cdef double cap = p[2], x = p[3], band = p[4], fee = p[6], mfee = p[10], pfee = p[11]
    cdef int64_t every = <int64_t>p[5], last_check = ts[0]
    cdef Py_ssize_t b
    cdef int k
    cdef double q, f, tokens, cs, ds, sidx = 1.0, bidx = 1.0, gs, gb, dt, coll, debt, o, hf, cf, rep, seize
    cdef double cash = 0.0, S = cap, H = cap, hwm, nav, navm, fm, fp, tot, pps, ltv, s, g, peak = -INFINITY
    cdef double dd = 0.0, hv, mpaid = 0.0, ppaid = 0.0, gpaid = 0.0, spaid = 0.0, pen = 0.0, minhf = INFINITY
    cdef double nliq = 0.0, nreb = 0.0, interest = 0.0, old
    cdef Py_ssize_t ne = 0
    navm = 0.0
    nav = 0.0
    dt = 0.0
    # open at block 0: lend buys the token; loop borrows F in one flash transaction so that the LTV at the
    # oracle is the target: F = x (C + F) q, q = oracle x (1 - fee) / price
    f = 0.0
    if loop:
        q = orc[0] * (1.0 - fee) / price[0]
        # a DEX discount deep enough that x q >= 1 reaches no finite loan: sized at cost, C x / (1 - x), the
        # vault then opens below its target LTV (as the loop core's flash-loan open)
        f = x * q * cap / (1.0 - x * q) if x * q < 1.0 else cap * x / (1.0 - x)
    tokens = (cap + f) * (1.0 - fee) / price[0]
    spaid = (cap + f) * fee
    cs = tokens
    ds = f
    g = p[7] * gas[0] * 1e-9
    cash -= g
    gpaid += g
    _book_event(ev, ecap, &ne, 0, EV_OPEN, tokens, f, spaid + g, tokens * orc[0] * lt[0] / f if f > 0 else INFINITY)
    hwm = (cs * orc[0] - ds + cash) / S
    for b in range(n):
        if b > 0:
            dt = <double>(ts[b] - ts[b - 1])
            _book_index_growth(supply_model, borrow_model, supply_apr[b - 1], borrow_apr[b - 1], dt, &gs, &gb)
            sidx = sidx * gs
            old = ds * bidx
            bidx = bidx * gb
            interest += ds * bidx - old
        coll = cs * sidx
        debt = ds * bidx
        o = orc[b]
        # liquidation (Aave's rule at the oracle: 50 % close factor above HF 0.95, all of it at or below)
        for k in range(BOOK_MAX_LIQ):
            if not (debt > 0) or not (coll > 0):
                break          # no collateral left: the rest is bad debt, nothing to seize
            hf = coll * o * lt[b] / debt
            if hf >= 1.0:
                break
            cf = 0.5 if hf > 0.95 else 1.0
            rep = cf * debt
            seize = rep * (1.0 + bonus[b]) / o
            if seize > coll:
                seize = coll
                rep = coll * o / (1.0 + bonus[b])
            pen += seize * o - rep
            coll -= seize
            debt -= rep
            cs = coll / sidx
            ds = debt / bidx
            nliq += 1.0
            _book_event(ev, ecap, &ne, b, EV_LIQUIDATION, -seize, -rep, seize * o - rep,
                        coll * o * lt[b] / debt if debt > 0 else INFINITY)
        if debt > 0:
            hf = coll * o * lt[b] / debt
            if hf < minhf:
                minhf = hf
        # the vault's rebalancing rule: every check_every, back to the target LTV when outside target +- band
        if loop and b > 0 and ts[b] - last_check >= every:
            last_check = ts[b]
            ltv = debt / (coll * o) if coll > 0 else 0.0
            if coll > 0 and ltv > x + band and price[b] * (1.0 - fee) - x * o > 0:
                # sell s tokens, repay with the proceeds: debt - s P (1 - fee) = x (coll - s) o
                s = (debt - x * coll * o) / (price[b] * (1.0 - fee) - x * o)
                if s > coll:
                    s = coll
                old = debt
                coll -= s
                debt -= s * price[b] * (1.0 - fee)
                spaid += s * price[b] * fee
                if debt < 0:
                    cash -= debt
                    debt = 0.0
                cs = coll / sidx
                ds = debt / bidx
                g = p[8] * gas[b] * 1e-9
                cash -= g
                gpaid += g
                nreb += 1.0
                _book_event(ev, ecap, &ne, b, EV_REBALANCE, -s, debt - old, s * price[b] * fee + g,
                            coll * o * lt[b] / debt if debt > 0 else INFINITY)
            elif coll > 0 and ltv < x - band and 1.0 - x * o * (1.0 - fee) / price[b] > 0:
                # borrow F and buy: debt + F = x (coll + F (1 - fee) / P) o
                f = (x * coll * o - debt) / (1.0 - x * o * (1.0 - fee) / price[b])
                old = f * (1.0 - fee) / price[b]
                coll += old
                debt += f
                spaid += f * fee
                cs = coll / sidx
                ds = debt / bidx
                g = p[8] * gas[b] * 1e-9
                cash -= g
                gpaid += g
                nreb += 1.0
                _book_event(ev, ecap, &ne, b, EV_REBALANCE, old, f, f * fee + g,
                            coll * o * lt[b] / debt if debt > 0 else INFINITY)
        # fees, block by block, by minting vault shares to the manager (the assets stay invested)
        nav = coll * o - debt + cash
        if b > 0 and nav > 0:
            fm = nav * mfee * dt / SECONDS_PER_YEAR
            pps = nav / S
            fp = pfee * (pps - hwm) * S if pps > hwm else 0.0
            tot = fm + fp
            if tot > 0 and nav - tot > 0:
                mpaid += fm * H / S
                ppaid += fp * H / S
                S = S + tot * S / (nav - tot)
            if nav / S > hwm:
                hwm = nav / S
        navm = coll * price[b] - debt + cash
        hv = navm * H / S
        value[b] = hv
        if hv > peak:
            peak = hv
        if peak > 0 and (peak - hv) / peak > dd:
            dd = (peak - hv) / peak
    g = p[9] * gas[n - 1] * 1e-9
    gpaid += g
    out[0] = (navm - g) * H / S
    out[1] = (nav - g) * H / S
    out[2] = mpaid
    out[3] = ppaid
    out[4] = gpaid
    out[5] = spaid
    out[6] = nliq
    out[7] = pen
    out[8] = minhf
    out[9] = nreb
    out[10] = dd
    out[11] = interest
    out[12] = coll
    out[13] = debt
    out[14] = navm - g
    out[15] = cap * (1.0 - fee) / price[0] * price[n - 1]
    out[16] = <double>ne


def book_vault(const int64_t[::1] ts, const double[::1] price, const double[::1] oracle,
               const double[::1] supply_apr, const double[::1] borrow_apr, const double[::1] lt,
               const double[::1] bonus, const double[::1] gas_gwei, const double[::1] params,
               Py_ssize_t max_events=100000):
    """A vault over a lend (params[1] = 0) or a loop (1) of one token, fees charged block by block.
    Returns (summary vector, the holder's value per block at market, events: rows of idx, kind, coll, debt,
    cost, hf, the first max_events); backtest.reference_book names them (VAULT_PARAMS, VAULT_FIELDS)."""
    cdef Py_ssize_t n = ts.shape[0]
    if n == 0:
        raise ValueError("book_vault needs blocks")
    if (price.shape[0] != n or oracle.shape[0] != n or supply_apr.shape[0] != n or borrow_apr.shape[0] != n
            or lt.shape[0] != n or bonus.shape[0] != n or gas_gwei.shape[0] != n):
        raise ValueError("book_vault: arrays differ in length")
    if params.shape[0] != 14:
        raise ValueError("book_vault: 14 parameters")
    if not (0 <= params[12] < N_SUPPLY_MODELS and 0 <= params[13] < N_BORROW_MODELS):
        raise ValueError("book_vault: unknown rate model codes")
    if max_events < 1:
        raise ValueError("book_vault: max_events must be >= 1")
    value = np.empty(n)
    out = np.zeros(17)
    events = np.zeros((max_events, 6))
    cdef double[::1] v = value, o = out
    cdef double[:, ::1] e = events
    with nogil:
        _book_vault(n, &ts[0], &price[0], &oracle[0], &supply_apr[0], &borrow_apr[0], &lt[0], &bonus[0],
                    &gas_gwei[0], &params[0], &v[0], &o[0], &e[0, 0], max_events)
    return out, value, events[:min(int(out[16]), max_events)]


# --------------------------------------------------------------------------------------------- basket
cdef void _book_basket(Py_ssize_t k, Py_ssize_t n, const int64_t* ts, const double* px, const double* nat,
                       const double* w, double capital, double fee, int64_t every, double* value,
                       double* bench, double* u, double* v, double* out, double* ev, Py_ssize_t ecap) noexcept nogil:
    # px, nat: k x n (row i = token i), prices of the tokens and of their natives in one base (USD)
    # out: end_value, bench_end_value, swap_fee_cost, n_rebalances, max_drawdown, bench_max_drawdown,
    #      min_value, bench_fee_cost
    cdef Py_ssize_t i, b
    cdef int64_t last = ts[0]
    cdef double V, B, T, TB, fc = 0.0, fb = 0.0, nreb = 0.0, peak = -INFINITY, dd = 0.0, bpeak = -INFINITY
    cdef double bdd = 0.0, vmin = INFINITY
    cdef Py_ssize_t ne = 0
    for i in range(k):
        u[i] = capital * w[i] * (1.0 - fee) / px[i * n]
        v[i] = capital * w[i] * (1.0 - fee) / nat[i * n]
    fc = capital * fee
    fb = capital * fee
    _book_event(ev, ecap, &ne, 0, EV_OPEN, 0.0, -capital, capital * fee, INFINITY)
    for b in range(n):
        if every > 0 and b > 0 and ts[b] - last >= every:
            # re-weight both to the weights at this block's prices, the swap fee on every leg traded
            last = ts[b]
            V = 0.0
            B = 0.0
            for i in range(k):
                V += u[i] * px[i * n + b]
                B += v[i] * nat[i * n + b]
            T = 0.0
            TB = 0.0
            for i in range(k):
                T += fabs(u[i] * px[i * n + b] - w[i] * V)
                TB += fabs(v[i] * nat[i * n + b] - w[i] * B)
            fc += fee * T
            fb += fee * TB
            V -= fee * T
            B -= fee * TB
            for i in range(k):
                u[i] = w[i] * V / px[i * n + b]
                v[i] = w[i] * B / nat[i * n + b]
            nreb += 1.0
            _book_event(ev, ecap, &ne, b, EV_REBALANCE, 0.0, T, fee * T, INFINITY)
        V = 0.0
        B = 0.0
        for i in range(k):
            V += u[i] * px[i * n + b]
            B += v[i] * nat[i * n + b]
        value[b] = V
        bench[b] = B
        if V < vmin:
            vmin = V
        if V > peak:
            peak = V
        if peak > 0 and (peak - V) / peak > dd:
            dd = (peak - V) / peak
        if B > bpeak:
            bpeak = B
        if bpeak > 0 and (bpeak - B) / bpeak > bdd:
            bdd = (bpeak - B) / bpeak
    out[0] = value[n - 1]
    out[1] = bench[n - 1]
    out[2] = fc
    out[3] = nreb
    out[4] = dd
    out[5] = bdd
    out[6] = vmin
    out[7] = fb
    out[8] = <double>ne


def book_basket(const int64_t[::1] ts, const double[:, ::1] prices, const double[:, ::1] natives,
                const double[::1] weights, double capital, double swap_fee, int64_t every,
                Py_ssize_t max_events=100000):
    """A basket of k tokens (rows of ``prices``, in one base) with ``weights``, re-weighted every ``every``
    seconds (0: never), against the same weights of the natives. Returns (summary vector, value, bench,
    end units, events: open and re-weightings, debt = notional traded); BASKET_FIELDS names the vector."""
    cdef Py_ssize_t n = ts.shape[0], k = weights.shape[0]
    if n == 0 or k == 0:
        raise ValueError("book_basket needs blocks and tokens")
    if prices.shape[0] != k or natives.shape[0] != k or prices.shape[1] != n or natives.shape[1] != n:
        raise ValueError("book_basket: prices and natives must be (tokens, blocks)")
    value = np.empty(n)
    bench = np.empty(n)
    units = np.empty(k)
    nunits = np.empty(k)
    if max_events < 1:
        raise ValueError("book_basket: max_events must be >= 1")
    out = np.zeros(9)
    events = np.zeros((max_events, 6))
    cdef double[::1] va = value, be = bench, u = units, nu = nunits, o = out
    cdef double[:, ::1] e = events
    with nogil:
        _book_basket(k, n, &ts[0], &prices[0, 0], &natives[0, 0], &weights[0], capital, swap_fee, every,
                     &va[0], &be[0], &u[0], &nu[0], &o[0], &e[0, 0], max_events)
    return out, value, bench, units, events[:min(int(out[8]), max_events)]


# ----------------------------------------------------------------------------------------------- farm
cdef void _book_farm(Py_ssize_t n, const int64_t* ts, const double* dprice, const double* rate,
                     const double* rprice, double capital, double fee, double halving, int64_t sell_every,
                     int64_t exit_after, double* value, double* out, double* ev, Py_ssize_t ecap) noexcept nogil:
    # rate: reward tokens per deposited token per second (the rewards rows); halving: seconds per halving of
    # the emission on top of the rows, counted from the first emission (0: the rows alone)
    # out: end_value, reward_tokens_earned, reward_tokens_sold, rewards_sold_value, swap_fee_cost,
    #      max_drawdown, exit_idx, hold_end_value, unsold_reward_value
    cdef Py_ssize_t b, exit_idx = -1
    cdef int64_t last_sale = ts[0], t_emit = -1
    cdef double dep, pend = 0.0, cash = 0.0, earned = 0.0, sold = 0.0, sold_v = 0.0, fc, dt, r, V
    cdef double peak = -INFINITY, dd = 0.0
    cdef Py_ssize_t ne = 0
    dep = capital * (1.0 - fee) / dprice[0]
    fc = capital * fee
    _book_event(ev, ecap, &ne, 0, EV_OPEN, dep, -capital, capital * fee, INFINITY)
    for b in range(n):
        if b > 0 and dep > 0:
            dt = <double>(ts[b] - ts[b - 1])
            r = rate[b - 1]
            if r != 0 and t_emit < 0:
                t_emit = ts[b - 1]      # the schedule halves from the farm's first emission
            if halving > 0 and r != 0:
                r = r * pow(0.5, <double>(ts[b - 1] - t_emit) / halving)
            pend += dep * r * dt
            earned += dep * r * dt
        if pend > 0 and (ts[b] - last_sale >= sell_every or (dep > 0 and ts[b] - ts[0] >= exit_after)):
            # sell what accrued at this block's market price of the reward token
            last_sale = ts[b]
            _book_event(ev, ecap, &ne, b, EV_REWARD_SALE, pend, pend * rprice[b] * (1.0 - fee), pend * rprice[b] * fee,
                        INFINITY)
            sold += pend
            sold_v += pend * rprice[b] * (1.0 - fee)
            fc += pend * rprice[b] * fee
            cash += pend * rprice[b] * (1.0 - fee)
            pend = 0.0
        if dep > 0 and ts[b] - ts[0] >= exit_after:
            _book_event(ev, ecap, &ne, b, EV_EXIT, -dep, dep * dprice[b] * (1.0 - fee), dep * dprice[b] * fee, INFINITY)
            cash += dep * dprice[b] * (1.0 - fee)
            fc += dep * dprice[b] * fee
            dep = 0.0
            exit_idx = b
        V = dep * dprice[b] + cash + (pend * rprice[b] if pend > 0 else 0.0)
        value[b] = V
        if V > peak:
            peak = V
        if peak > 0 and (peak - V) / peak > dd:
            dd = (peak - V) / peak
    out[0] = value[n - 1]
    out[1] = earned
    out[2] = sold
    out[3] = sold_v
    out[4] = fc
    out[5] = dd
    out[6] = <double>exit_idx
    out[7] = capital * (1.0 - fee) / dprice[0] * dprice[n - 1]
    out[8] = pend * rprice[n - 1] if pend > 0 else 0.0
    out[9] = <double>ne


def book_farm(const int64_t[::1] ts, const double[::1] deposit_price, const double[::1] reward_rate,
              const double[::1] reward_price, double capital, double swap_fee, double halving,
              int64_t sell_every, int64_t exit_after, Py_ssize_t max_events=100000):
    """A liquidity-mining deposit: ``capital`` buys the deposit token, which earns ``reward_rate`` reward
    tokens per token per second (halving every ``halving`` seconds on top, 0: not), sold every ``sell_every``
    seconds at ``reward_price``; at ``exit_after`` seconds the deposit is sold. Returns (summary vector,
    value, events: open, reward sales, exit); backtest.reference_book.FARM_FIELDS names the vector."""
    cdef Py_ssize_t n = ts.shape[0]
    if n == 0:
        raise ValueError("book_farm needs blocks")
    if deposit_price.shape[0] != n or reward_rate.shape[0] != n or reward_price.shape[0] != n:
        raise ValueError("book_farm: arrays differ in length")
    if max_events < 1:
        raise ValueError("book_farm: max_events must be >= 1")
    value = np.empty(n)
    out = np.zeros(10)
    events = np.zeros((max_events, 6))
    cdef double[::1] va = value, o = out
    cdef double[:, ::1] e = events
    with nogil:
        _book_farm(n, &ts[0], &deposit_price[0], &reward_rate[0], &reward_price[0], capital, swap_fee, halving,
                   sell_every, exit_after, &va[0], &o[0], &e[0, 0], max_events)
    return out, value, events[:min(int(out[9]), max_events)]
