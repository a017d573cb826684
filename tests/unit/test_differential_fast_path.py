"""The block loop's quiet-stretch fast path (ext/_quiet.pxd) gives bit-identical outputs to the full block body.

Between the blocks where the full body can act, the core runs only HF = r x a[b], its running minimum (and
block) and the count of blocks below HF 1.05, and stops a stretch where something else can happen: HF < 1, a
block at or after the next rebalance check or queue release, a de-peg ratio below the exit level, a slash, a
record, a metric sample, a chunk's edge, the last block. `_core.set_full_body_only(True)` (private, for tests)
runs the full body at every replayed block instead; summaries, events and records must be equal bit for bit,
both on the dense path and with the chunk skip.

The markets are built to stop stretches in every way: HF paths that cross 1.05 and 1 between checks (V-shaped
de-pegs on a market oracle, borrow-rate spikes on an exchange-rate oracle), de-peg exits whose level is crossed
inside a chunk, queued withdrawals released later, slashes, records and checks at any spacing (so at stretch
edges), and HF paths flat to the bit (quantised prices, zero rates) where the running minimum's block is decided
by ties. `test_generator_reaches_every_exit` checks, on fixed seeds, that the generator does reach each of them
at a block where nothing else stops a stretch.
"""
from __future__ import annotations

import math
from contextlib import contextmanager

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from backtest import _core
from backtest.data.market import Market
from backtest.engine import Lane, record_indices, run_core
from backtest.schema import EVENT_KINDS, PROTOCOL_NAMES
from tests.helpers import params
from tests.unit.test_differential import VENUES, assert_same, restake_leg, venue_market
from tests.unit.test_differential_debt import redenominate


@contextmanager
def full_body_only():
    _core.set_full_body_only(True)
    try:
        yield
    finally:
        _core.set_full_body_only(False)


def stressed_market(seed: int, n: int, irregular: bool, quantised: bool, restake: bool) -> Market:
    """A market whose HF crosses 1.05 and 1 and whose de-peg ratio dips, at random blocks."""
    rng = np.random.default_rng(seed)
    dts = rng.integers(1, 40, n) if irregular else np.full(n, 12)
    ts = 1_735_000_000 + np.concatenate([[0], np.cumsum(dts[1:])])
    xrate = 1.0 + rng.uniform(0, 0.2) + np.cumsum((rng.random(n) < 0.05) * rng.uniform(0, 0.001, n))
    peg = 1.0 + np.cumsum(rng.normal(0, 0.0005, n))
    for _ in range(int(rng.integers(0, 4))):     # V-shaped de-pegs of random depth and width
        c, w, depth = rng.integers(0, n), rng.integers(2, max(3, n // 3)), rng.uniform(0.005, 0.3)
        peg -= depth * np.clip(1 - np.abs(np.arange(n) - c) / w, 0, None)
    peg = np.clip(peg, 0.5, 1.1)
    borrow = np.full(n, rng.uniform(0, 0.1))
    supply = rng.uniform(0, 0.02)
    if rng.random() < 0.5:                        # a rate spike: HF falls block by block on any oracle
        a = rng.integers(0, n)
        borrow[a: a + rng.integers(1, n)] = rng.uniform(0.5, 50.0)
    if quantised:                                 # flat stretches: HF equal to the bit over many blocks
        peg = np.round(peg, 3)
        xrate = np.round(xrate, 3)
        borrow[:] = 0.0
        supply = 0.0
    ltv = rng.uniform(0.7, 0.93)
    lt = min(ltv + rng.uniform(0.005, 0.04), 0.97)
    m = Market.from_arrays(
        n, ts=ts, block=19_000_000 + np.arange(n), price=xrate * peg, xrate=xrate,
        eth_usd=float(rng.choice([3.0, 3000.0])), borrow_apr=borrow, supply_apr=supply, ltv=ltv, lt=lt,
        bonus=rng.uniform(0.005, 0.1), pfee=rng.uniform(0, 0.2), gas_gwei=rng.uniform(0.1, 50, n),
        oracle_feed=xrate * np.clip(peg + 0.005, 0.5, 1.1),
    )
    if restake:
        m = restake_leg(m, np.random.default_rng(seed + 2))
    return m


def stressed_params(rng: np.random.Generator, m: Market, kind: str, protocol: str) -> np.ndarray:
    """A position opened close to its max LTV (HF a few % above 1), with checks, exits and queues drawn."""
    n = len(m)
    q = m.price / (m.xrate * m.underlying_price)      # the de-peg ratio, whatever the debt asset
    delev = rng.uniform(1.0, 1.1)
    target = delev + rng.uniform(0.01, 0.15)
    return params(
        protocol=protocol, kind=kind, entry=str(rng.choice(["swap", "stake"])), loops=int(rng.integers(1, 12)),
        target_ltv=float(m.ltv[0]) * rng.uniform(0.85, 1.0), slip_model=str(rng.choice(["none", "linear"])),
        slip_param=rng.uniform(0, 1), swap_fee=rng.uniform(0, 0.001), flash_fee=rng.choice([0.0, 0.0005]),
        reb_on=int(rng.random() < 0.5), delev_below=delev, target_hf=target,
        relev_above=target + rng.uniform(0.01, 0.3) if rng.random() < 0.7 else math.inf,
        check_every=int(rng.choice([12, 36, 600, 3600, int(rng.integers(1, 20_000))])),
        exit_on=int(rng.random() < 0.5), depeg_below=rng.uniform(min(float(q.min()), 1.0), 1.0),
        exit_route=int(rng.integers(0, 2)), queue_delay=int(rng.integers(0, max(1, int(m.ts[-1] - m.ts[0])))),
        queue_delay_late=int(rng.integers(0, 6000)),
        queue_late_from=int(m.ts[rng.integers(0, n)]) if rng.random() < 0.3 else 0,
        unwind_at_end=int(rng.random() < 0.3), capital=float(rng.choice([1.0, 100.0])),
        gas_gwei=math.nan if rng.random() < 0.5 else 5.0, gas_open=6e5, gas_loop=2.5e5, gas_reb=4e5,
        gas_close=5e5, cf_ovr=rng.uniform(0.1, 1.0) if protocol == "generic" else math.nan,
    )


def build_case(seed, n, irregular, quantised, restake, oracle, protocol, n_configs, stablecoin=False):
    m = venue_market(stressed_market(seed, n, irregular, quantised, restake), protocol)
    rng = np.random.default_rng(seed + 1)
    if stablecoin:      # a USDC debt: the de-peg ratio the quiet loop watches divides by the underlying's price
        m, _, _ = redenominate("stablecoin")(m, None, oracle, np.random.default_rng(seed + 3))
    kinds = ["loop", "flash-loan", "loop", "flash-loan", "lend", "hold"]
    p = np.concatenate([stressed_params(rng, m, str(rng.choice(kinds)), protocol) for _ in range(n_configs)])
    lanes = [Lane(oracle, 0.0968, int(rng.choice([600, 3600])), PROTOCOL_NAMES[int(p[0]["protocol"])])]
    return m, p, lanes


def replay(m, p, lanes, rec, me, chunk, dense):
    return run_core(m, p, lanes, rec, me, chunk=chunk, dense=dense, event_cap=64)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(2, 2500),
    irregular=st.booleans(),
    quantised=st.booleans(),
    restake=st.booleans(),
    oracle=st.sampled_from(["exchange-rate", "market", "capo", "chainlink"]),
    protocol=st.sampled_from(VENUES),
    chunk=st.integers(1, 300),
    me=st.integers(1, 400),
    record=st.sampled_from([-1, 0, 60, 600, 3600, 7777]),
    n_configs=st.integers(1, 4),
    stablecoin=st.booleans(),
)
def test_fast_path_equals_full_body(seed, n, irregular, quantised, restake, oracle, protocol, chunk, me, record,
                                    n_configs, stablecoin):
    m, p, lanes = build_case(seed, n, irregular, quantised, restake, oracle, protocol, n_configs, stablecoin)
    rec = record_indices(m, record)
    for dense in (True, False):
        fast = replay(m, p, lanes, rec, me, chunk, dense)
        with full_body_only():
            full = replay(m, p, lanes, rec, me, chunk, dense)
        assert_same(fast, full, exact=True)


def quiet_blocks(m: Market, p, rec: np.ndarray, me: int, chunk: int) -> np.ndarray:
    """Blocks where no stretch ends for a reason known in advance: not the first or last block, not a chunk's
    first block, a metric sample, a record or a rebalance check (a block whose time enters a new check_every
    interval from the start)."""
    n = len(m)
    b = np.arange(n)
    ok = (b > 0) & (b < n - 1) & (b % chunk != 0) & (b % me != 0)
    ok[rec] = False
    if p["reb_on"]:
        k = (m.ts - m.ts[0]) // int(p["check_every"])
        ok[1:] &= k[1:] == k[:-1]
    return ok


def test_generator_reaches_every_exit():
    """On fixed seeds, the generator stops a stretch for each reason the fast path watches, at a block that is
    no chunk edge, record, metric sample or check: a liquidation (HF < 1), a de-peg exit, a queue release, a
    slash; and it produces blocks below HF 1.05 that are not liquidated, and ties of the minimum HF."""
    seen = set()
    rng = np.random.default_rng(20261202)
    for _ in range(120):
        seed = int(rng.integers(0, 2**32 - 1))
        n, chunk, me = int(rng.integers(200, 2500)), int(rng.integers(16, 300)), int(rng.integers(50, 400))
        quantised = bool(rng.random() < 0.3)
        m, p, lanes = build_case(seed, n, bool(rng.random() < 0.5), quantised, bool(rng.random() < 0.3),
                                 str(rng.choice(["exchange-rate", "market"])), str(rng.choice(VENUES)), 2)
        rec = record_indices(m, int(rng.choice([-1, 3600])))
        fast = replay(m, p, lanes, rec, me, chunk, True)
        with full_body_only():
            full = replay(m, p, lanes, rec, me, chunk, True)
        assert_same(fast, full, exact=True)
        for i in range(len(p)):
            ok = quiet_blocks(m, p[i], rec, me, chunk)
            ev = fast.events[i]
            for name in ("liquidation", "exit", "queue_release", "slash"):
                blocks = ev["idx"][ev["kind"] == EVENT_KINDS[name]]
                if np.any(ok[blocks]):
                    seen.add(name)
            s = fast.summaries[i]
            if s["blocks_below_105"] > 0 and s["liq_count"] == 0:
                seen.add("below 1.05")
        if len(seen) == 5:
            break
    assert seen == {"liquidation", "exit", "queue_release", "slash", "below 1.05"}


def test_minimum_ties_keep_the_first_block():
    """A price 1 with dips to 0.9 at blocks k, k + 1 + j, ... (j = 0..5): on a market oracle with zero rates HF is
    r x 0.9 x LT at every dip, equal to the bit, so the lowest HF is first reached at block k and min_hf_idx
    must be k however the dips fall on the fast path's four minimum lanes and its stretch edges."""
    from tests.helpers import market

    for k in range(1, 12):
        for gap in range(1, 7):
            prices = np.ones(64)
            prices[k::gap] = 0.9
            m = market(prices, ltv=0.5, lt=0.8)
            p = params(kind="loop", entry="stake", target_ltv=0.5, loops=1)
            lanes = [Lane("market", 0.0968, 3600, "aave-v3")]
            for me, chunk in ((300, 256), (5, 7), (3, 64)):
                fast = replay(m, p, lanes, record_indices(m, -1), me, chunk, True)
                with full_body_only():
                    full = replay(m, p, lanes, record_indices(m, -1), me, chunk, True)
                assert_same(fast, full, exact=True)
                assert int(fast.summaries["min_hf_idx"][0]) == k, (k, gap, me, chunk)
