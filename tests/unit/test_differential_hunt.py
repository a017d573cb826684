"""The differential test, hunting: long markets and generators that force the rare branches.

`check_case` (tests/unit/test_differential.py) builds a market from its seed, draws configurations, and compares
the core with the reference at the tolerances argued there. Here:

- long markets (1,000-5,000 blocks, rebalancing on): deleverage / releverage sequences and liquidation
  cascades that short markets rarely reach;
- targeted generators (`FORCES`), each pushing every configuration into one rare branch of both engines:
  the loop's LTV room cap, deleverage's close-everything, releverage without room under the max LTV, the
  64-liquidations-per-block cap, and Aave v3.3's $1,000 leftover rule;
- `test_forced_generators_reach_their_branch`: each generator does reach its branch (counted on the
  reference engine, whose steps are plain Python methods), so the targeted test is not vacuous.
"""
from contextlib import contextmanager

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from backtest import reference
from backtest.schema import EVENT_KINDS, PROTOCOLS, STRATEGIES
from tests.unit.test_differential import VENUES, check_case

LIQ = EVENT_KINDS["liquidation"]


def force_ltv_cap(m, p, oracle, rng):
    # a loop whose target LTV is above the max LTV in force: every loop step after the first is capped at the
    # room ltv x collateral x price - debt (validation refuses this in a config; the engines must still agree)
    p["kind"] = STRATEGIES["loop"]
    p["loops"] = rng.integers(3, 12, len(p))
    p["target_ltv"] = np.minimum(m.ltv[0] * rng.uniform(1.0, 1.05, len(p)), m.lt[0] * 0.999)
    return m, p, oracle


def force_close_all(m, p, oracle, rng):
    # deleverage when no partial sale reaches the target: the DEX price far below the oracle's (a de-peg under
    # the exchange-rate oracle), so selling collateral cannot lift HF. Note: the close-everything branch
    # behind it is reachable only on a tie. delta >= collateral means debt (1 + ff) >= coll px k_i (k_i: the
    # fraction kept when selling delta_i), and closing needs coll px k_all >= debt (1 + ff); slippage grows
    # with size, so k_all <= k_i, and both hold only when equal. The generator reaches the "cannot reach"
    # test and its no-action result in both engines; the close itself stays a tie.
    m.price[1:] *= rng.uniform(0.4, 0.75)            # from the block after the opening
    p["kind"] = rng.choice([STRATEGIES["loop"], STRATEGIES["flash-loan"]], len(p))
    p["target_ltv"] = m.ltv[0] * rng.uniform(0.97, 1.0, len(p))
    p["reb_on"] = 1
    p["check_every"] = 12
    p["delev_below"] = rng.uniform(1.1, 1.5, len(p))
    p["target_hf"] = p["delev_below"] + rng.uniform(0.01, 1.0, len(p))
    p["relev_above"] = np.inf
    p["unwind_at_end"] = 0
    p["exit_on"] = 0
    return m, p, "exchange-rate"


def force_relev_no_room(m, p, oracle, rng):
    # at the max LTV with HF above the releverage line: the LTV cap leaves no room (f <= 0, no action) or
    # binds before the target HF does
    p["kind"] = STRATEGIES["loop"]
    p["loops"] = 30
    p["target_ltv"] = m.ltv[0] * rng.uniform(0.995, 1.0, len(p))
    p["reb_on"] = 1
    p["check_every"] = rng.choice([12, 60, 600], len(p))
    p["delev_below"] = 0.5
    p["target_hf"] = rng.uniform(0.9, 1.0, len(p))
    p["relev_above"] = p["target_hf"]
    p["exit_on"] = 0
    return m, p, oracle


def force_cap64(m, p, oracle, rng):
    # the generic venue with a tiny close factor under a deep market-oracle de-peg: each call repays ~1 % of
    # the debt, so HF stays below 1 for more than 64 calls in a block and the per-block cap ends the block
    m.price[len(m) // 3:] *= rng.uniform(0.6, 0.85)
    p["protocol"] = PROTOCOLS["generic"]
    p["kind"] = STRATEGIES["loop"]
    p["loops"] = 10
    p["target_ltv"] = m.ltv[0] * rng.uniform(0.9, 1.0, len(p))
    p["cf_ovr"] = rng.uniform(0.001, 0.01, len(p))
    p["reb_on"] = 0
    p["exit_on"] = 0
    return m, p, "market"


def force_v33_leftover(m, p, oracle, rng):
    # Aave v3.3 from block 0, a de-peg under the market oracle, and a USD scale putting the debt between $2,000
    # and $2,100 (and a large bonus): a 50 % liquidation would leave less than $1,000 of collateral or debt, so the liquidator
    # shrinks its repay to the floor (and the next call finds nothing it may repay)
    # the collateral left by a 50 % liquidation at HF ~ 1 is debt (1 / LT - LB / 2): below $1,000 for a debt
    # just above $2,000 when LB > 2 / LT - 1 (a bonus above 15 % at LT 0.93)
    m.lt[:] = rng.uniform(0.9, 0.95)
    m.ltv[:] = m.lt - 0.02
    m.bonus[:] = 2.0 / m.lt - 2.0 + rng.uniform(0.02, 0.05)
    k = len(m) // 3                                     # a slow slide, so HF crosses 1 above 0.95
    m.price[k:] *= np.linspace(1.0, rng.uniform(0.8, 0.9), len(m) - k)
    p["protocol"] = PROTOCOLS["aave-v3"]
    p["kind"] = STRATEGIES["loop"]
    p["loops"] = 12
    p["target_ltv"] = m.ltv[0] * rng.uniform(0.97, 1.0, len(p))
    p["v33_from"] = int(m.ts[0])
    p["cf_ovr"] = np.nan
    p["reb_on"] = 0
    p["exit_on"] = 0
    # debt after L loops at x: capital x (1 - x^L) / (1 - x) (deposits x^k of the first); a debt just above
    # $2,000 keeps the 50 % close factor and leaves too little collateral after a 50 % liquidation
    x = float(p["target_ltv"][0])
    debt = float(p["capital"][0]) * x * (1.0 - x ** 12) / (1.0 - x)
    m.eth_usd[:] = rng.uniform(2000.0, 2100.0) / debt
    return m, p, "market"


FORCES = {"ltv_cap": force_ltv_cap, "close_all": force_close_all, "relev_no_room": force_relev_no_room,
          "cap64": force_cap64, "v33_leftover": force_v33_leftover}
AAVE_LIKE = ["aave-v3", "aave-v2", "spark", "generic"]      # venues with an LTV below the LT (room to cap)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(1000, 5000),
    irregular=st.booleans(),
    oracle=st.sampled_from(["exchange-rate", "market", "capo", "chainlink"]),
    kind=st.sampled_from(["loop", "flash-loan", "loop", "hold", "lend"]),
    protocol=st.sampled_from(VENUES),
    chunk=st.integers(1, 256),
    record=st.sampled_from([-1, 600, 3600]),
    n_configs=st.integers(1, 3),
    restake=st.booleans(),
)
def test_core_equals_reference_long(seed, n, irregular, oracle, kind, protocol, chunk, record, n_configs, restake):
    check_case(seed, n, irregular, oracle, kind, protocol, chunk, record, n_configs, restake)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    branch=st.sampled_from(sorted(FORCES)),
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(20, 1500),
    irregular=st.booleans(),
    oracle=st.sampled_from(["exchange-rate", "market", "capo", "chainlink"]),
    protocol=st.sampled_from(AAVE_LIKE),
    chunk=st.integers(1, 64),
    record=st.sampled_from([-1, 0, 600]),
    n_configs=st.integers(1, 3),
)
def test_core_equals_reference_targeted(branch, seed, n, irregular, oracle, protocol, chunk, record, n_configs):
    if branch == "v33_leftover":
        n_configs = 1                       # the USD scale is set for one configuration's debt
    check_case(seed, n, irregular, oracle, "loop", protocol, chunk, record, n_configs, False,
               force=FORCES[branch])


# --------------------------------------------------------------------------------- branch counting
@contextmanager
def counting():
    """Count, on the reference engine, the rare branches the forced generators aim at."""
    R = reference.Replay
    hits = dict.fromkeys(FORCES, 0)
    saved = {k: getattr(R, k) for k in ("deleverage", "releverage", "event", "open")}

    def deleverage(self, b):
        pos, c = self.pos, self.s.costs
        kept = 1.0 - c.swap_fee                  # an upper bound of the fraction kept by any sale
        if pos.debt * (1.0 + c.flash_fee) >= pos.coll * float(self.m.price[b]) * kept:
            hits["close_all"] += 1               # delta >= collateral: the target cannot be reached
        return saved["deleverage"](self, b)

    def releverage(self, b):
        done = saved["releverage"](self, b)
        pos = self.pos
        at_cap = pos.debt >= float(self.m.ltv[b]) * pos.coll * self.oracle_price(b) * (1 - 1e-9)
        if not done or at_cap:                   # no room at all, or the LTV cap bound before the target HF
            hits["relev_no_room"] += 1
        return done

    def event(self, b, kind, coll, debt, cost):
        saved["event"](self, b, kind, coll, debt, cost)
        ev = self.events
        if kind == "liquidation" and len(ev) >= 64 and all(e[0] == b and e[1] == LIQ for e in ev[-64:]):
            hits["cap64"] += 1
        if kind == "liquidation" and int(self.m.ts[b]) >= self.s.v33_from:
            usd = float(self.m.eth_usd[b])
            left = min(self.pos.debt * usd, self.pos.coll * self.oracle_price(b) * usd)
            if abs(left - reference.MIN_LEFTOVER_USD) < 1e-6:   # a repay shrunk to leave exactly $1,000
                hits["v33_leftover"] += 1

    def open_(self, b):
        saved["open"](self, b)
        pos, x = self.pos, self.s.target_ltv
        ltv = float(self.m.ltv[b])
        # after the opening deposit the room is ltv x deposit x price < x x deposit x price: the first loop
        # step is capped (and every later one, by the same argument)
        if self.s.strategy == "loop" and x > ltv and pos.debt > 0:
            hits["ltv_cap"] += 1

    for k, fn in (("deleverage", deleverage), ("releverage", releverage), ("event", event),
                  ("open", open_)):
        setattr(R, k, fn)
    try:
        yield hits
    finally:
        for k, fn in saved.items():
            setattr(R, k, fn)


def test_forced_generators_reach_their_branch():
    # 12 fixed seeds per generator (aave-v3, 600 blocks, one configuration): each must reach its branch in at
    # least a quarter of them, or the targeted test above would compare engines on the common path only
    for branch, force in FORCES.items():
        reached = 0
        for seed in range(12):
            with counting() as hits:
                check_case(1000 + seed, 600, False, "exchange-rate", "loop", "aave-v3", 16, -1, 1, False,
                           force=force)
            reached += hits[branch] > 0
        assert reached >= 3, (branch, reached)


def test_ci_profile_is_derandomized():
    # CI=true loads "ci" (tests/conftest.py): a fixed seed per test, no example database, so a CI failure is a
    # real disagreement another CI run reproduces, never a fresh draw
    ci = settings.get_profile("ci")
    assert ci.derandomize is True and ci.database is None and ci.deadline is None
    hunt = settings.get_profile("hunt")
    assert hunt.derandomize is False and hunt.database is None
