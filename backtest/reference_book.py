"""The strategy book in plain Python: the same arithmetic as ext/_book.pxi, operation for operation.

``lp`` (a Curve StableSwap share marked at market prices, PROTOCOLS.md "Pools and farms"), ``vault`` (a lend or
loop with management and performance fees charged block by block as shares minted to the manager), ``basket``
(weights across tokens, re-weighted every period) and ``farm`` (a deposit earning an emission schedule whose
reward token is sold on a schedule). Each returns (summary vector, per-block arrays) exactly as the kernel's
``book_*`` functions; the *_FIELDS tuples name the vectors. tests/unit/test_differential_book.py keeps the two
engines equal.
"""
from __future__ import annotations

import math

import numpy as np

from backtest.reference import index_growth
from backtest.schema import EVENT_KINDS, SECONDS_PER_YEAR as Y

NEWTON_ITERS = 255
MAX_LIQ = 64

LP_FIELDS = ("lp_tokens", "fee_income", "impermanent_loss", "gas_cost", "min_value", "min_value_idx",
             "lst_share_at_min", "max_lst_share", "max_drawdown", "end_value", "hold_end_value", "pool_price_end",
             "d0", "supply0")
VAULT_PARAMS = ("protocol", "loop", "capital", "target_ltv", "band", "check_every", "swap_fee", "gas_open",
                "gas_rebalance", "gas_close", "management_fee", "performance_fee", "supply_model", "borrow_model")
VAULT_FIELDS = ("end_value", "end_value_rate", "management_fee_paid", "performance_fee_paid", "gas_cost",
                "swap_fee_cost", "liq_count", "liq_penalty", "min_hf", "n_rebalances", "max_drawdown",
                "interest_paid", "end_collateral", "end_debt", "vault_end_value", "hold_end_value", "n_events")


class Events:
    """Event rows (idx, kind, coll, debt, cost, hf) as the kernel writes them: the first ``cap`` kept, all counted."""

    def __init__(self, cap: int):
        self.cap, self.n, self.rows = cap, 0, []

    def __call__(self, b, kind: str, coll: float, debt: float, cost: float, hf: float = math.inf) -> None:
        if self.n < self.cap:
            self.rows.append([float(b), float(EVENT_KINDS[kind]), coll, debt, cost, hf])
        self.n += 1

    def array(self) -> np.ndarray:
        return np.array(self.rows, dtype=np.float64).reshape(len(self.rows), 6)


# ------------------------------------------------------------------------------------ Curve StableSwap
def stableswap_d(x0: float, x1: float, amp: float) -> float:
    """Curve's get_D for 2 coins (Ann = A n^n = 4 A): Newton on Ann S + D = Ann D + D^3 / (4 x0 x1)."""
    s = x0 + x1
    ann = amp * 4.0
    if s <= 0:
        return 0.0
    d = s
    for _ in range(NEWTON_ITERS):
        dp = d * d / (x0 * 2.0) * d / (x1 * 2.0)
        prev = d
        d = (ann * s + dp * 2.0) * d / ((ann - 1.0) * d + 3.0 * dp)
        if d - prev <= 1e-15 * d and prev - d <= 1e-15 * d:
            break
    return d


def stableswap_price(x0: float, x1: float, amp: float, d: float | None = None) -> float:
    """The pool's price of coin 1 in coin 0 at these balances: F_x1 / F_x0 along the invariant."""
    if d is None:
        d = stableswap_d(x0, x1, amp)
    ann = amp * 4.0
    d3 = d * d * d
    return (ann + d3 / (4.0 * x1 * x1 * x0)) / (ann + d3 / (4.0 * x1 * x0 * x0))


# ------------------------------------------------------------------------------------------------- lp
def book_lp(reserve0, reserve1, virtual_price, amp, price, gas_gwei, capital: float, gas_open: float,
            gas_close: float):
    r0, r1, vp, A, P, gas = (np.asarray(a, dtype=np.float64) for a in
                             (reserve0, reserve1, virtual_price, amp, price, gas_gwei))
    n = r0.shape[0]
    if n == 0:
        raise ValueError("book_lp needs blocks")
    value = np.empty(n)
    hold = np.empty(n)
    share1 = np.empty(n)
    out = np.zeros(14)
    d = stableswap_d(r0[0], r1[0], A[0])
    supply = d / vp[0]
    out[12] = d
    out[13] = supply
    g0 = gas_open * gas[0] * 1e-9
    tokens = (capital - g0) / ((r0[0] + r1[0] * P[0]) / supply)
    h0 = tokens / supply * r0[0]
    h1 = tokens / supply * r1[0]
    peak = -math.inf
    vmin = math.inf
    imin = 0
    dd = 0.0
    s1max = 0.0
    for b in range(n):
        d = stableswap_d(r0[b], r1[b], A[b])
        supply = d / vp[b]
        v = tokens * (r0[b] + r1[b] * P[b]) / supply
        value[b] = v
        hold[b] = h0 + h1 * P[b]
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
    out[0] = tokens
    out[1] = tokens * (vp[n - 1] - vp[0])
    out[2] = value[n - 1] * (vp[0] / vp[n - 1]) - hold[n - 1]
    out[3] = g0 + g1
    out[4] = vmin
    out[5] = float(imin)
    out[6] = share1[imin]
    out[7] = s1max
    out[8] = dd
    out[9] = value[n - 1] - g1
    out[10] = hold[n - 1]
    out[11] = stableswap_price(r0[n - 1], r1[n - 1], A[n - 1], d)
    return out, value, hold, share1


# ---------------------------------------------------------------------------------------------- vault
def book_vault(ts, price, oracle, supply_apr, borrow_apr, lt, bonus, gas_gwei, params, max_events: int = 100000):
    ts = np.asarray(ts, dtype=np.int64)
    P, orc, sa, ba, LT, LB, gas = (np.asarray(a, dtype=np.float64) for a in
                                   (price, oracle, supply_apr, borrow_apr, lt, bonus, gas_gwei))
    p = [float(v) for v in params]
    n = ts.shape[0]
    if n == 0:
        raise ValueError("book_vault needs blocks")
    protocol = int(p[0])
    loop = p[1] != 0
    cap, x, band, fee, mfee, pfee = p[2], p[3], p[4], p[6], p[10], p[11]
    every = int(p[5])
    last_check = int(ts[0])
    value = np.empty(n)
    sidx = bidx = 1.0
    cash = 0.0
    S = H = cap
    peak = -math.inf
    dd = mpaid = ppaid = gpaid = spaid = pen = 0.0
    minhf = math.inf
    nliq = nreb = interest = 0.0
    nav = navm = dt = 0.0
    f = 0.0
    if loop:
        q = orc[0] * (1.0 - fee) / P[0]
        f = x * q * cap / (1.0 - x * q) if x * q < 1.0 else cap * x / (1.0 - x)
    tokens = (cap + f) * (1.0 - fee) / P[0]
    spaid = (cap + f) * fee
    cs = tokens
    ds = f
    g = p[7] * gas[0] * 1e-9
    cash -= g
    gpaid += g
    events: list[list[float]] = []
    n_ev = 0

    def event(b, kind, c, d, cost, hf):
        nonlocal n_ev
        if n_ev < max_events:
            events.append([float(b), float(kind), c, d, cost, hf])
        n_ev += 1

    event(0, EVENT_KINDS["open"], tokens, f, spaid + g, tokens * orc[0] * LT[0] / f if f > 0 else math.inf)
    hwm = (cs * orc[0] - ds + cash) / S
    coll = debt = 0.0
    for b in range(n):
        if b > 0:
            dt = float(ts[b] - ts[b - 1])
            gs, gb = index_growth(protocol, sa[b - 1], ba[b - 1], dt)
            sidx = sidx * gs
            old = ds * bidx
            bidx = bidx * gb
            interest += ds * bidx - old
        coll = cs * sidx
        debt = ds * bidx
        o = orc[b]
        for _ in range(MAX_LIQ):
            if not (debt > 0) or not (coll > 0):
                break
            hf = coll * o * LT[b] / debt
            if hf >= 1.0:
                break
            cf = 0.5 if hf > 0.95 else 1.0
            rep = cf * debt
            seize = rep * (1.0 + LB[b]) / o
            if seize > coll:
                seize = coll
                rep = coll * o / (1.0 + LB[b])
            pen += seize * o - rep
            coll -= seize
            debt -= rep
            cs = coll / sidx
            ds = debt / bidx
            nliq += 1.0
            event(b, EVENT_KINDS["liquidation"], -seize, -rep, seize * o - rep,
                  coll * o * LT[b] / debt if debt > 0 else math.inf)
        if debt > 0:
            hf = coll * o * LT[b] / debt
            if hf < minhf:
                minhf = hf
        if loop and b > 0 and int(ts[b]) - last_check >= every:
            last_check = int(ts[b])
            ltv = debt / (coll * o) if coll > 0 else 0.0
            if coll > 0 and ltv > x + band and P[b] * (1.0 - fee) - x * o > 0:
                s = (debt - x * coll * o) / (P[b] * (1.0 - fee) - x * o)
                if s > coll:
                    s = coll
                old = debt
                coll -= s
                debt -= s * P[b] * (1.0 - fee)
                spaid += s * P[b] * fee
                if debt < 0:
                    cash -= debt
                    debt = 0.0
                cs = coll / sidx
                ds = debt / bidx
                g = p[8] * gas[b] * 1e-9
                cash -= g
                gpaid += g
                nreb += 1.0
                event(b, EVENT_KINDS["rebalance"], -s, debt - old, s * P[b] * fee + g,
                      coll * o * LT[b] / debt if debt > 0 else math.inf)
            elif coll > 0 and ltv < x - band and 1.0 - x * o * (1.0 - fee) / P[b] > 0:
                f = (x * coll * o - debt) / (1.0 - x * o * (1.0 - fee) / P[b])
                old = f * (1.0 - fee) / P[b]
                coll += old
                debt += f
                spaid += f * fee
                cs = coll / sidx
                ds = debt / bidx
                g = p[8] * gas[b] * 1e-9
                cash -= g
                gpaid += g
                nreb += 1.0
                event(b, EVENT_KINDS["rebalance"], old, f, f * fee + g,
                      coll * o * LT[b] / debt if debt > 0 else math.inf)
        nav = coll * o - debt + cash
        if b > 0 and nav > 0:
            fm = nav * mfee * dt / Y
            pps = nav / S
            fp = pfee * (pps - hwm) * S if pps > hwm else 0.0
            tot = fm + fp
            if tot > 0 and nav - tot > 0:
                mpaid += fm * H / S
                ppaid += fp * H / S
                S = S + tot * S / (nav - tot)
            if nav / S > hwm:
                hwm = nav / S
        navm = coll * P[b] - debt + cash
        hv = navm * H / S
        value[b] = hv
        if hv > peak:
            peak = hv
        if peak > 0 and (peak - hv) / peak > dd:
            dd = (peak - hv) / peak
    g = p[9] * gas[n - 1] * 1e-9
    gpaid += g
    out = np.array([(navm - g) * H / S, (nav - g) * H / S, mpaid, ppaid, gpaid, spaid, nliq, pen, minhf, nreb,
                    dd, interest, coll, debt, navm - g, cap * (1.0 - fee) / P[0] * P[n - 1], float(n_ev)])
    return out, value, np.array(events, dtype=np.float64).reshape(len(events), 6)


# --------------------------------------------------------------------------------------------- basket
BASKET_FIELDS = ("end_value", "bench_end_value", "swap_fee_cost", "n_rebalances", "max_drawdown",
                 "bench_max_drawdown", "min_value", "bench_fee_cost", "n_events")


def book_basket(ts, prices, natives, weights, capital: float, swap_fee: float, every: int, max_events: int = 100000):
    ts = np.asarray(ts, dtype=np.int64)
    px = np.asarray(prices, dtype=np.float64)
    nat = np.asarray(natives, dtype=np.float64)
    w = [float(x) for x in weights]
    k, n = len(w), ts.shape[0]
    if n == 0 or k == 0:
        raise ValueError("book_basket needs blocks and tokens")
    fee = swap_fee
    value = np.empty(n)
    bench = np.empty(n)
    u = [capital * w[i] * (1.0 - fee) / px[i, 0] for i in range(k)]
    v = [capital * w[i] * (1.0 - fee) / nat[i, 0] for i in range(k)]
    fc = capital * fee
    fb = capital * fee
    ev = Events(max_events)
    ev(0, "open", 0.0, -capital, capital * fee)
    nreb = dd = bdd = 0.0
    peak = bpeak = -math.inf
    vmin = math.inf
    last = int(ts[0])
    for b in range(n):
        if every > 0 and b > 0 and int(ts[b]) - last >= every:
            last = int(ts[b])
            V = 0.0
            B = 0.0
            for i in range(k):
                V += u[i] * px[i, b]
                B += v[i] * nat[i, b]
            T = 0.0
            TB = 0.0
            for i in range(k):
                T += abs(u[i] * px[i, b] - w[i] * V)
                TB += abs(v[i] * nat[i, b] - w[i] * B)
            fc += fee * T
            fb += fee * TB
            V -= fee * T
            B -= fee * TB
            for i in range(k):
                u[i] = w[i] * V / px[i, b]
                v[i] = w[i] * B / nat[i, b]
            nreb += 1.0
            ev(b, "rebalance", 0.0, T, fee * T)
        V = 0.0
        B = 0.0
        for i in range(k):
            V += u[i] * px[i, b]
            B += v[i] * nat[i, b]
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
    out = np.array([value[n - 1], bench[n - 1], fc, nreb, dd, bdd, vmin, fb, float(ev.n)])
    return out, value, bench, np.array(u), ev.array()


# ----------------------------------------------------------------------------------------------- farm
FARM_FIELDS = ("end_value", "reward_tokens_earned", "reward_tokens_sold", "rewards_sold_value", "swap_fee_cost",
               "max_drawdown", "exit_idx", "hold_end_value", "unsold_reward_value", "n_events")


def book_farm(ts, deposit_price, reward_rate, reward_price, capital: float, swap_fee: float, halving: float,
              sell_every: int, exit_after: int, max_events: int = 100000):
    ts = np.asarray(ts, dtype=np.int64)
    dp, rate, rp = (np.asarray(a, dtype=np.float64) for a in (deposit_price, reward_rate, reward_price))
    n = ts.shape[0]
    if n == 0:
        raise ValueError("book_farm needs blocks")
    fee = swap_fee
    value = np.empty(n)
    exit_idx = -1
    last_sale = int(ts[0])
    t_emit = -1
    pend = cash = earned = sold = sold_v = 0.0
    peak = -math.inf
    dd = 0.0
    dep = capital * (1.0 - fee) / dp[0]
    fc = capital * fee
    ev = Events(max_events)
    ev(0, "open", dep, -capital, capital * fee)
    for b in range(n):
        if b > 0 and dep > 0:
            dt = float(ts[b] - ts[b - 1])
            r = rate[b - 1]
            if r != 0 and t_emit < 0:
                t_emit = int(ts[b - 1])
            if halving > 0 and r != 0:
                r = r * math.pow(0.5, float(ts[b - 1] - t_emit) / halving)
            pend += dep * r * dt
            earned += dep * r * dt
        if pend > 0 and (int(ts[b]) - last_sale >= sell_every or (dep > 0 and int(ts[b] - ts[0]) >= exit_after)):
            last_sale = int(ts[b])
            ev(b, "reward_sale", pend, pend * rp[b] * (1.0 - fee), pend * rp[b] * fee)
            sold += pend
            sold_v += pend * rp[b] * (1.0 - fee)
            fc += pend * rp[b] * fee
            cash += pend * rp[b] * (1.0 - fee)
            pend = 0.0
        if dep > 0 and int(ts[b] - ts[0]) >= exit_after:
            ev(b, "exit", -dep, dep * dp[b] * (1.0 - fee), dep * dp[b] * fee)
            cash += dep * dp[b] * (1.0 - fee)
            fc += dep * dp[b] * fee
            dep = 0.0
            exit_idx = b
        V = dep * dp[b] + cash + (pend * rp[b] if pend > 0 else 0.0)
        value[b] = V
        if V > peak:
            peak = V
        if peak > 0 and (peak - V) / peak > dd:
            dd = (peak - V) / peak
    out = np.array([value[n - 1], earned, sold, sold_v, fc, dd, float(exit_idx),
                    capital * (1.0 - fee) / dp[0] * dp[n - 1], pend * rp[n - 1] if pend > 0 else 0.0, float(ev.n)])
    return out, value, ev.array()
