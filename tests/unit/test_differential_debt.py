"""Differential test with any debt asset: the core equals the reference when the market's debt is not the
collateral's underlying.

Reuses tests/unit/test_differential.py (its market and parameter generators, tolerances and ``check_case``)
through its ``force`` hook, which here re-denominates the drawn ETH-debt market into another debt asset:
- ``stablecoin``: a USDC-like debt. ETH/USD is a random walk (with a crash in some draws) and USDC/USD wobbles
  around 1, so the underlying and the gas token cost ETH/USD / USDC/USD debt units (``underlying_price`` =
  ``gas_token_price``), every price the market quotes (DEX, oracle feed, hold token, rewards) is multiplied by
  it, and ``eth_usd`` (USD per debt unit) is USDC/USD times 0.1, 1 or 10, so that the drawn capital (1 to 5,000
  debt units, kept as drawn: the engines' absolute tolerance is for amounts of that size) reaches both sides of
  the Aave v3.3 $2,000 / $1,000 rules.
- ``gas-token``: a debt whose underlying price is 1 but whose gas token is not (a chain whose gas token is not
  the loop's underlying): only ``gas_token_price`` moves.
- ``ones``: the ETH-debt market unchanged (both arrays exactly 1.0).
"""
import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.unit.test_differential import VENUES, check_case


def eth_usd_walk(rng: np.random.Generator, n: int) -> np.ndarray:
    """ETH/USD: a log random walk from $1,000-4,000, with a 20-60 % crash over a random stretch in half the draws."""
    walk = np.cumsum(rng.normal(0, rng.uniform(0.001, 0.02), n))
    if rng.random() < 0.5:
        a, w = int(rng.integers(0, n)), int(rng.integers(1, max(2, n // 3)))
        walk[a:] += np.log(1.0 - rng.uniform(0.2, 0.6)) * np.clip((np.arange(n - a) + 1) / w, 0, 1)
    return rng.uniform(1000, 4000) * np.exp(walk)


def redenominate(kind: str):
    """A ``force`` hook for check_case: the drawn market and configurations in another debt asset."""
    def force(m, p, oracle, rng):
        n = len(m)
        if kind == "ones":
            return m, p, oracle
        if kind == "gas-token":
            m.gas_token_price = rng.uniform(0.01, 50.0) * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
            return m, p, oracle
        usdc = 1.0 + np.cumsum(rng.normal(0, 2e-4, n))
        up = eth_usd_walk(rng, n) / usdc
        m.underlying_price = up
        m.gas_token_price = up.copy()
        for name in ("price", "oracle_feed", "hold_price", "reward"):
            setattr(m, name, getattr(m, name) * up)
        m.eth_usd = usdc * float(rng.choice([0.1, 1.0, 10.0]))
        return m, p, oracle
    return force


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(2, 300),
    irregular=st.booleans(),
    oracle=st.sampled_from(["exchange-rate", "market", "capo", "chainlink"]),
    kind=st.sampled_from(["hold", "lend", "loop", "flash-loan"]),
    protocol=st.sampled_from(VENUES),
    chunk=st.integers(1, 64),
    record=st.sampled_from([-1, 0, 60, 600]),
    n_configs=st.integers(1, 3),
    restake=st.booleans(),
    debt=st.sampled_from(["stablecoin", "stablecoin", "gas-token", "ones"]),
)
def test_core_equals_reference_with_any_debt(seed, n, irregular, oracle, kind, protocol, chunk, record, n_configs,
                                             restake, debt):
    # "exchange-rate" is refused for a stablecoin debt by engine.check_against_market, but both engines must
    # still agree on what it means (the bare rate), so it stays in the draw
    m, p, *_ = check_case(seed, n, irregular, oracle, kind, protocol, chunk, record, n_configs, restake,
                          force=redenominate(debt))
    if debt == "stablecoin":
        assert not np.all(m.underlying_price == 1.0)
