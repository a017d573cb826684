# Test-only extension (backtest._venue_probe): Python wrappers around the venue headers' inline helpers, so a
# venue's kernel rules can be compiled and compared with its Python spec before any engine dispatches on them.
# Nothing in the package imports it; tests/unit/test_aave_v4_probe.py does.
from libc.string cimport memset
from libc.math cimport INFINITY
from libc.stdint cimport int64_t
from _types cimport Params, Summary, Event, Mkt, State, Out
from venues._aave_v4 cimport (V4Spoke, V4Debt, V4Liq, v4_health_factor, v4_liquidation_bonus,
                              v4_debt_to_target, v4_liquidation_amounts, v4_risk_premium, v4_borrow_rate,
                              v4_drawn_index_growth, v4_premium, v4_total_debt, v4_refresh, v4_draw,
                              v4_restore, aave_v4_liquidate)


cdef V4Spoke _spoke(sp):
    # sp: backtest.venues.aave_v4.Spoke
    cdef V4Spoke s
    s.collateral_factor = sp.collateral_factor
    s.max_lb = 1.0 + sp.max_liquidation_bonus
    s.bonus_factor = sp.liquidation_bonus_factor
    s.hf_for_max_bonus = sp.health_factor_for_max_bonus
    s.target_hf = sp.target_health_factor
    s.liquidation_fee = sp.liquidation_fee
    s.collateral_risk = sp.collateral_risk
    return s


cdef V4Debt _debt(t):
    cdef V4Debt d
    d.drawn_shares, d.premium_shares, d.premium_offset = t
    return d


def health_factor(double coll, double p_coll, double cf, double debt, double p_debt):
    return v4_health_factor(coll, p_coll, cf, debt, p_debt)


def liquidation_bonus(double hf, double max_lb, double bonus_factor, double hf_for_max_bonus):
    return v4_liquidation_bonus(hf, max_lb, bonus_factor, hf_for_max_bonus)


def debt_to_target(double total_debt_value, double hf, double target_hf, double lb, double cf, double p_debt):
    return v4_debt_to_target(total_debt_value, hf, target_hf, lb, cf, p_debt)


def liquidation_amounts(double coll, double debt, double p_coll, double p_debt, sp,
                        double offered=INFINITY, bint other_collateral=False, hf=None, total_debt_value=None):
    """(repaid, seized, fee, coll_after, debt_after, deficit, hf, lb), or None (healthy / the call reverts);
    hf and total_debt_value default to this collateral and debt's, as in the spec."""
    cdef V4Spoke s = _spoke(sp)
    cdef V4Liq q
    cdef double h = (v4_health_factor(coll, p_coll, s.collateral_factor, debt, p_debt) if hf is None
                     else <double>hf)
    cdef double tdv = debt * p_debt if total_debt_value is None else <double>total_debt_value
    if not v4_liquidation_amounts(coll, debt, p_coll, p_debt, h, tdv, &s, offered, other_collateral, &q):
        return None
    return (q.repaid, q.seized, q.fee, q.coll_after, q.debt_after, q.deficit, q.hf, q.lb)


def risk_premium(values, risks, double total_debt_value):
    cdef double v[64]
    cdef double r[64]
    cdef Py_ssize_t i, n = len(values)
    if n > 64 or len(risks) != n:
        raise ValueError("at most 64 collaterals, one risk per value")
    for i in range(n):
        v[i] = values[i]
        r[i] = risks[i]
    return v4_risk_premium(v, r, n, total_debt_value)


def borrow_rate(double drawn_rate, double risk_premium):
    return v4_borrow_rate(drawn_rate, risk_premium)


def drawn_index_growth(double drawn_rate, double dt):
    return v4_drawn_index_growth(drawn_rate, dt)


def premium(debt, double index):
    cdef V4Debt d = _debt(debt)
    return v4_premium(&d, index)


def total_debt(debt, double index):
    cdef V4Debt d = _debt(debt)
    return v4_total_debt(&d, index)


def refresh(debt, double index, double risk_premium, double restored_premium=0.0):
    cdef V4Debt d = _debt(debt)
    v4_refresh(&d, index, risk_premium, restored_premium)
    return (d.drawn_shares, d.premium_shares, d.premium_offset)


def draw(debt, double index, double amount, double risk_premium):
    cdef V4Debt d = _debt(debt)
    v4_draw(&d, index, amount, risk_premium)
    return (d.drawn_shares, d.premium_shares, d.premium_offset)


def restore(debt, double index, double amount, double risk_premium):
    cdef V4Debt d = _debt(debt)
    v4_restore(&d, index, amount, risk_premium)
    return (d.drawn_shares, d.premium_shares, d.premium_offset)


def liquidate_state(double coll, debt, double por, double eth_usd, double sidx, double bidx, sp,
                    double dust=0.0):
    """aave_v4_liquidate on a one-block market: collateral coll tokens (st.s = coll / sidx), the debt as
    (drawn shares, premium shares, offset) on the drawn index bidx. Returns the summary's liquidation
    figures, the balances after and the events as (kind, coll, debt, cost)."""
    cdef int64_t ts = 0
    cdef double price = por, xrate = 1.0, zero = 0.0, one = 1.0, a = 1.0, lt = sp.collateral_factor
    cdef Mkt m
    cdef State st
    cdef Out o
    cdef Summary sm
    cdef Event ev[4]
    cdef Params p
    cdef V4Spoke s = _spoke(sp)
    cdef V4Debt d = _debt(debt)
    memset(&m, 0, sizeof(Mkt))
    memset(&st, 0, sizeof(State))
    memset(&sm, 0, sizeof(Summary))
    memset(&p, 0, sizeof(Params))
    m.n = 1
    m.ts = &ts
    m.price = &price
    m.xrate = &xrate
    m.eth_usd = &eth_usd
    m.ltv = &lt
    m.lt = &lt
    m.bonus = &zero
    m.pfee = &zero
    m.gas = &zero
    m.por = &por
    m.sidx = &sidx
    m.bidx = &bidx
    m.a = &a
    m.K = &zero
    m.K2 = &zero
    m.rwd = &zero
    m.KR = &zero
    m.slash = &zero
    m.hprice = &price
    m.hxrate = &xrate
    st.s = coll / sidx
    st.d = d.drawn_shares
    st.dust = dust
    o.sm = &sm
    o.ev = ev
    o.ev_cap = 4
    o.rec = NULL
    with nogil:
        aave_v4_liquidate(&st, &p, &m, &o, 0, &s, &d)
    return {
        "liq_count": sm.liq_count, "liq_debt_repaid": sm.liq_debt_repaid, "liq_coll_seized": sm.liq_coll_seized,
        "liq_penalty": sm.liq_penalty, "liq_protocol_fee": sm.liq_protocol_fee, "bad_debt": sm.bad_debt,
        "coll": st.s * sidx, "drawn_shares": st.d, "debt": (d.drawn_shares, d.premium_shares, d.premium_offset),
        "events": [(ev[i].kind, ev[i].coll, ev[i].debt, ev[i].cost) for i in range(min(st.n_ev, 4))],
    }
