"""The engine side of multi-collateral positions: checks against the per-leg market, the per-leg lanes, and
the calls into the kernel (``_core.run_batch_legs``) and the reference (``backtest.reference.legs``).

``backtest.engine`` hands a market with several legs (``backtest.legs.LegsMarket``) to this module; a
one-collateral market never comes here. Outputs are those of one collateral (the summary, events and records
with token amounts summed over the legs, the three per-leg prices of a record NaN) plus ``event_legs`` (the leg
an Aave-family liquidation seized, -1 for events of every leg), ``leg_summary`` [config, leg, (end collateral,
tokens seized, their value)] and ``leg_records`` [config, record, leg, (tokens, oracle price, market price,
exchange rate)].
"""
from __future__ import annotations

import math

import numpy as np

from backtest import venues as _venues
from backtest.config_types import Config
from backtest.errors import ConfigError
from backtest.legs import n_legs, stacked
from backtest.reference.legs import LEG_RECORD, LEG_SUMMARY
from backtest.schema import EVENT_DTYPE, N_RECORD, ORACLE_CODES, PROTOCOLS, SUMMARY_DTYPE

LEG_ARRAYS = ("price", "xrate", "underlying_price", "ltv", "lt", "bonus", "pfee", "slash", "hold_price", "hold_xrate")


def capo_growths(market, lane) -> list[float]:
    """Each leg's CAPO growth (its token's default; market.capo_growth is refused with legs)."""
    from backtest.engine import CAPO_GROWTH

    if lane.oracle != "capo":
        return [0.0] * n_legs(market)
    out = []
    for t in market.tokens:
        g = CAPO_GROWTH.get(t, math.nan)
        if math.isnan(g):
            raise ConfigError(f"strategy.collateral: no default CAPO growth for {t}; use another market.oracle")
        out.append(float(g))
    return out


def check_legs_against_market(cfg: Config, market) -> None:
    """The one-collateral checks per leg, and the target LTV against the weighted max LTV / LT at the start:
    an account's max LTV and liquidation threshold are the collateral-value-weighted averages of its reserves'
    (GenericLogic.calculateUserAccountData), and at the open the values are split by the weights."""
    from backtest.engine import _check_market, _check_oracle_fits_debt

    st, mk = cfg.strategy, cfg.market
    one_only = _venues.venue(mk.protocol).one_collateral      # the config refuses these legs already
    if one_only:
        raise ConfigError(f"strategy.collateral: {one_only}")
    w = [leg.weight for leg in st.collateral]
    if st.kind in ("loop", "flash-loan"):
        ltv0 = sum(wi * float(m.ltv[0]) for wi, m in zip(w, market.legs))
        lt0 = sum(wi * float(m.lt[0]) for wi, m in zip(w, market.legs))
        what = _venues.venue(mk.protocol).ltv_name
        if st.target_ltv > ltv0:
            raise ConfigError(f"strategy.target_ltv = {st.target_ltv} is above the weighted {what} {ltv0:g} of "
                              f"{', '.join(market.tokens)} at the start ({mk.protocol}); lower it")
        if st.target_ltv >= lt0:
            raise ConfigError(f"strategy.target_ltv = {st.target_ltv} is at or above the weighted liquidation "
                              f"threshold {lt0:g} of {', '.join(market.tokens)}")
    for tok, m in zip(market.tokens, market.legs):
        _check_market(m, mk.protocol, mk.v33_from, mk.debt, mk.oracle == "chainlink")
        from dataclasses import replace
        _check_oracle_fits_debt(replace(cfg, market=replace(mk, collateral=tok),
                                        strategy=replace(st, collateral=())), m)


def build_lanes_legs(market, lanes, chunk: int) -> dict[str, np.ndarray]:
    from backtest import _core
    from backtest.engine import capo_history

    L, n, nl = n_legs(market), len(market), len(lanes)
    nch = (n + chunk - 1) // chunk
    protocols = {ln.protocol for ln in lanes}
    if len(protocols) != 1:
        raise ValueError(f"build_lanes: one replay follows one protocol's index math, got {sorted(protocols)}")
    growth = _venues.growth_codes(protocols.pop())        # the venue's rate model (Venue.growth)
    out = {k: np.empty((L, n)) for k in ("sidx", "K", "K2", "KW")}
    for i, m in enumerate(market.legs):
        ix = _core.build_indices(m.ts, m.xrate, m.supply_apr, m.borrow_apr, *growth, m.underlying_price)
        for k in ("sidx", "K", "K2", "KW"):
            out[k][i] = ix[k]
        out["bidx"] = ix["bidx"]            # the one debt: the same at every leg (one borrow APR)
    out["por"] = np.empty((nl, L, n))
    out["a"] = np.empty((nl, L, n))
    out["amin"] = np.empty((nl, L, nch))
    out["amax"] = np.empty((nl, L, nch))
    out["aarg"] = np.empty((nl, L, nch), dtype=np.int64)
    for j, ln in enumerate(lanes):
        growth = capo_growths(market, ln)
        for i, m in enumerate(market.legs):
            pre_ts, pre_x = capo_history(m)
            _core.build_lane(m.ts, m.xrate, m.price, m.oracle_feed, m.lt, out["sidx"][i], out["bidx"],
                             ORACLE_CODES[ln.oracle], growth[i], ln.capo_age, chunk, out["por"][j, i], out["a"][j, i],
                             out["amin"][j, i], out["amax"][j, i], out["aarg"][j, i], pre_ts, pre_x,
                             m.underlying_price, m.oracle_scale, m.oracle_cap)
    out["qmin"] = np.min([_core.chunk_qmin(m.price, m.xrate, chunk, m.underlying_price) for m in market.legs], axis=0)
    starts = np.arange(0, n, chunk)
    out["schunk"] = np.ascontiguousarray(np.max([np.maximum.reduceat(m.slash, starts) for m in market.legs], axis=0),
                                         dtype=np.float64)
    out["chunk"] = chunk
    return out


def run_core_legs(market, params, weights, lanes, rec_idx, me, chunk, dense, threads, event_cap, lane_arrays=None):
    from backtest import _core
    from backtest.engine import Outputs

    n, L = len(params), n_legs(market)
    if lane_arrays is None or lane_arrays["chunk"] != chunk or lane_arrays["por"].ndim != 3:
        lane_arrays = build_lanes_legs(market, lanes, chunk)
    shared = {k: getattr(market, k) for k in ("ts", "eth_usd", "gas_gwei", "gas_token_price")}
    legs = {k: stacked(market, k) for k in LEG_ARRAYS}
    summaries = np.zeros(n, dtype=SUMMARY_DTYPE)
    events = np.zeros((n, event_cap), dtype=EVENT_DTYPE)
    ev_legs = np.full((n, event_cap), -1, dtype=np.int64)
    records = np.zeros((n, len(rec_idx), N_RECORD))
    leg_rec = np.zeros((n, len(rec_idx), L, len(LEG_RECORD)))
    leg_sm = np.zeros((n, L, len(LEG_SUMMARY)))
    w = np.ascontiguousarray(weights, dtype=np.float64)
    _core.run_batch_legs(params, w, shared, legs, lane_arrays, rec_idx, me, chunk, summaries, events, ev_legs,
                         records, leg_rec, leg_sm, dense, threads)
    k = np.minimum(summaries["n_events"], event_cap)
    ev_list = [events[i, : int(k[i])].copy() for i in range(n)]
    evl = [ev_legs[i, : int(k[i])].copy() for i in range(n)]
    overflow = np.flatnonzero(summaries["events_dropped"] > 0)
    if len(overflow):
        cap = int(summaries["n_events"][overflow].max()) + 1
        again = run_core_legs(market, params[overflow].copy(), w[overflow], lanes, rec_idx, me, chunk, dense,
                              threads, cap, lane_arrays)
        for j, i in enumerate(overflow):
            summaries[i] = again.summaries[j]
            ev_list[i] = again.events[j]
            evl[i] = again.event_legs[j]
            records[i] = again.records[j]
            leg_rec[i] = again.leg_records[j]
            leg_sm[i] = again.leg_summary[j]
    return Outputs(summaries, ev_list, records, rec_idx, event_legs=evl, leg_summary=leg_sm, leg_records=leg_rec,
                   tokens=tuple(market.tokens))


def run_reference_legs(market, params, weights, lanes, rec_idx, me, settings=None):
    """settings: per configuration its reference Settings (or its row), default the rows of params."""
    from backtest.engine import Outputs
    from backtest.reference.legs import LegsReplay

    n, L = len(params), n_legs(market)
    summaries = np.zeros(n, dtype=SUMMARY_DTYPE)
    records = np.zeros((n, len(rec_idx), N_RECORD))
    leg_rec = np.zeros((n, len(rec_idx), L, len(LEG_RECORD)))
    leg_sm = np.zeros((n, L, len(LEG_SUMMARY)))
    ev_list, evl = [], []
    for i in range(n):
        ln = lanes[int(params[i]["lane"])]
        s = params[i] if settings is None else settings[i]
        sm, events, legs_of_events, rec, lsm, lrec = LegsReplay(
            market, s, weights[i], ln.oracle, capo_growths(market, ln), ln.capo_age, rec_idx, me).run()
        for k, v in sm.items():
            summaries[i][k] = v
        ev = np.zeros(len(events), dtype=EVENT_DTYPE)
        for j, e in enumerate(events):
            ev[j] = e
        ev_list.append(ev)
        evl.append(np.asarray(legs_of_events, dtype=np.int64))
        records[i] = rec
        leg_rec[i] = lrec
        leg_sm[i] = lsm
    return Outputs(summaries, ev_list, records, rec_idx, event_legs=evl, leg_summary=leg_sm, leg_records=leg_rec,
                   tokens=tuple(market.tokens))
