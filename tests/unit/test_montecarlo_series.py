"""The series a Monte Carlo path resamples beyond the de-peg ratio (montecarlo.resample): the exchange-rate steps
(with their slash cuts), ETH/USD and gas, on the same day-blocks as the discount. Hand-worked path values from
a tiny window and a fixed index draw; the joint draw on a real draw; the path's market as scale_market builds it
(WETH and USDC debts); the core equal to the reference engine on such paths (hypothesis); the default's
results unchanged."""
from __future__ import annotations

import hashlib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from backtest import montecarlo as mcm
from backtest.engine import Lane, record_indices, run_core, run_core_paths
from backtest.errors import DataError
from backtest.invariants import check_records
from backtest.montecarlo import MonteCarlo, bootstrap_paths, walk
from backtest.paths import Paths, hold_follows_price, last_marks, scale_market
from backtest.reference import run_reference_paths
from tests.helpers import market
from tests.unit.test_differential import assert_same, make_market, make_params
from tests.unit.test_paths import ref_outputs, rows, same_exact

ALL = ("discount", "exchange_rate", "eth_usd", "gas", "borrow_rate")

# a 6-hour window of 2 blocks an hour; per hour (its first block): the exchange rate, ETH/USD, gas
X_H = [2.0, 2.0, 2.2, 2.2, 1.1, 1.1]          # a 50 % slash at block 7 (hour 3's second block)
E_H = [2000.0, 2200.0, 2200.0, 1980.0, 1980.0, 2000.0]
G_H = [10.0, 20.0, 30.0, 40.0, 50.0, 60.0]
H = np.array([0, 4, 5, 2, 3, 1])               # the fixed draw: path sample s reads history sample H[s]


def tiny():
    xr = np.repeat(X_H, 2)
    xr[7] = 1.1                                # the slash lands mid-hour: blocks 7 on
    slash = np.zeros(12)
    slash[7] = 0.5
    m = market(0.99 * xr, xrate=xr, eth_usd=np.repeat(E_H, 2), gas=np.repeat(G_H, 2), dt=1800,
               borrow_apr=np.repeat([0.01, 0.02, 0.03, 0.04, 0.05, 0.06], 2))
    m.slash = slash
    return m


@pytest.fixture
def fixed_draw(monkeypatch):
    monkeypatch.setattr(mcm, "path_draw", lambda qs, seed, k, block: (np.ones(len(qs)), H.copy()))


def test_history_per_hour():
    h = mcm.history_of(tiny(), resample=ALL)
    assert list(h.xrate) == X_H and list(h.eth_usd) == E_H and list(h.gas) == G_H
    # the cut of each step (first block of hour j - 1, first block of hour j]: the slash is in step 4's
    assert np.allclose(h.slash, [0, 0, 0, 0, 0.5, 0], rtol=0, atol=1e-15)


def test_hand_worked_paths_from_a_fixed_draw(fixed_draw):
    p = bootstrap_paths(tiny(), MonteCarlo(paths=1, resample=ALL), [0])
    # rate: 2.0, then the steps into hours 4 (x 1.1 / 2.2), 5 (x 1), 2 (x 2.2 / 2.0), 3 (x 1), 1 (x 1)
    assert np.allclose(p.xrate[0], [2.0, 1.0, 1.0, 1.1, 1.1, 1.1], rtol=1e-15, atol=0)
    assert list(p.slash[0]) == [0.0, 0.5, 0.0, 0.0, 0.0, 0.0]      # the slash moves with its step
    # ETH/USD: 2000, then x 1980/1980, x 2000/1980, x 2200/2200, x 1980/2200, x 2200/2000
    want_e = np.array([2000.0, 2000.0, 2000 * 2000 / 1980, 2000 * 2000 / 1980, 1800.0 * 2000 / 1980, 1980.0 *
                       2000 / 1980])
    assert np.allclose(p.usd_factor[0] * E_H, want_e, rtol=1e-14, atol=0)
    # gas: the drawn hours' levels, as deltas on each hour's own level
    assert list(p.gas_delta[0] + G_H) == [10.0, 50.0, 60.0, 30.0, 40.0, 20.0]
    assert np.allclose(p.borrow_delta[0] + [0.01, 0.02, 0.03, 0.04, 0.05, 0.06],
                       [0.01, 0.05, 0.06, 0.03, 0.04, 0.02], rtol=0, atol=1e-15)
    assert list(p.price_factor[0]) == [1.0] * 6


def test_the_path_market_built_by_hand(fixed_draw):
    m = tiny()
    p = bootstrap_paths(m, MonteCarlo(paths=1, resample=ALL), [0])
    sm = scale_market(m, p, 0, hold_follows_price(m))
    xr = np.repeat([2.0, 1.0, 1.0, 1.1, 1.1, 1.1], 2)
    assert np.allclose(sm.xrate, xr, rtol=1e-15, atol=0) and np.array_equal(sm.hold_xrate, sm.xrate)
    assert np.allclose(sm.price / sm.xrate, 0.99, rtol=1e-15, atol=0)    # the history's de-peg ratio kept
    assert list(sm.slash) == [0, 0, 0.5] + [0] * 9              # at hour 1's first block
    assert np.allclose(sm.eth_usd, np.repeat(p.usd_factor[0] * E_H, 2), rtol=1e-15, atol=0)
    assert list(sm.gas_gwei) == list(np.repeat([10.0, 50.0, 60.0, 30.0, 40.0, 20.0], 2))
    m.gas_gwei = m.gas_gwei + np.repeat([0, 0, 0, 0, 100.0, 0], 2)        # a gas spike overlay in hour 4
    assert list(scale_market(m, p, 0, True).gas_gwei[8:10]) == [140.0, 140.0]   # stacks on hour 4's draw
    assert np.array_equal(sm.underlying_price, m.underlying_price)      # a WETH debt: ETH prices stay 1.0
    price, rv = last_marks(m, p, [0])
    assert price[0] == sm.price[-1] and np.isclose(rv[0], sm.xrate[-1], rtol=1e-15)


def test_usdc_debt_moves_every_eth_price():
    n = 12
    eth = np.linspace(3000, 3300, n)
    m = market(1.2 * eth, xrate=1.2, eth_usd=1.0, underlying_price=eth, gas_token_price=eth, dt=1800)
    u = np.array([[1.0, 0.9, 0.8, 0.8, 1.1, 1.2]])
    p = Paths(np.repeat(np.arange(6), 2), np.ones((1, 6)), usd_factor=u)
    sm = scale_market(m, p, 0, True)
    g = np.repeat(u[0], 2)
    for name in ("price", "underlying_price", "gas_token_price", "hold_price"):
        assert np.array_equal(getattr(sm, name), getattr(m, name) * g), name
    assert np.array_equal(sm.eth_usd, m.eth_usd)                # USD per USDC does not move with ETH
    m.gas_token_price = np.full(n, 2.0)                         # an underlying that is not the gas token
    with pytest.raises(DataError, match="not the chain's gas token"):
        scale_market(m, p, 0, True)


def test_every_series_rides_on_the_discount_draw():
    # 10 days of hourly history: with a real draw each series' step at path sample s is its step into the
    # history sample h_s the de-peg return was drawn from (the joint bootstrap)
    rng = np.random.default_rng(3)
    n_h = 240
    q = np.exp(-np.cumsum(rng.uniform(1e-5, 1e-4, n_h)))
    x = 1.1 * np.exp(np.cumsum(rng.uniform(0, 1e-5, n_h)))
    e = 3000 * np.exp(np.cumsum(rng.normal(0, 1e-3, n_h)))
    m = market(np.repeat(q * x, 3), xrate=np.repeat(x, 3), eth_usd=np.repeat(e, 3),
               gas=np.repeat(rng.uniform(1, 100, n_h), 3), dt=1200)
    mc = MonteCarlo(paths=3, seed=4, block_days=1.0, resample=ALL)
    p = bootstrap_paths(m, mc, range(3))
    h = mcm.history_of(m, resample=ALL)
    for k in range(3):
        _, hk = mcm.path_draw(h.qs, 4, k, 24)
        assert np.allclose(np.diff(np.log(p.xrate[k])), np.diff(np.log(x))[hk[1:] - 1], rtol=0, atol=1e-12)
        assert np.allclose(np.diff(np.log(p.usd_factor[k] * e)), np.diff(np.log(e))[hk[1:] - 1], rtol=0,
                           atol=1e-12)
        assert np.allclose(p.gas_delta[k] + h.gas, h.gas[hk], rtol=1e-15, atol=1e-13)
    # the de-peg factors are the discount-only bootstrap's: the other series add no draws
    assert np.array_equal(p.price_factor, bootstrap_paths(m, MonteCarlo(paths=3, seed=4, block_days=1.0),
                                                          range(3)).price_factor)
    gas_only = bootstrap_paths(m, MonteCarlo(paths=1, seed=4, resample=("gas",)), [0])
    assert np.all(gas_only.price_factor == 1.0) and gas_only.xrate is None and gas_only.by_market



def test_missing_history_names_the_series():
    m = tiny()
    m.eth_usd = np.full(12, np.nan)
    with pytest.raises(DataError, match="resample eth_usd"):
        bootstrap_paths(m, MonteCarlo(paths=1, resample=("eth_usd",)), [0])
    assert walk(np.array([1.0, 2.0, 4.0]), np.array([0, 2, 1]), "x")[-1] == pytest.approx(4.0, rel=1e-15)


def test_default_resample_keeps_todays_paths():
    m = tiny()
    base = bootstrap_paths(m, MonteCarlo(paths=2, seed=1, block_days=0.05), [0, 1])
    assert not base.by_market and base.xrate is None and base.gas_delta is None
    same = bootstrap_paths(m, MonteCarlo(paths=2, seed=1, block_days=0.05, resample=("discount",)), [0, 1])
    assert np.array_equal(same.price_factor, base.price_factor)


def test_default_sweep_values_are_todays(tmp_path):
    # the tiny sweep's per-pair values as the code gave them before [montecarlo].resample existed
    # (a hash of the values, not of the Parquet bytes: the writer's bytes may change with its version)
    from backtest.api import run
    from tests.pins import REPO
    from tests.unit.test_montecarlo import CONFIG

    p = tmp_path / "mc.toml"
    p.write_text(CONFIG.format(data=REPO / "data", out=tmp_path / "out"))
    res = run(p, montecarlo=MonteCarlo(paths=4, seed=3, block_days=1.0), workers=1)
    import polars as pl

    pairs = pl.read_parquet(res["path"] / "paths.parquet")
    digest = hashlib.sha256(pairs.select(mcm.PAIR_COLUMNS).to_numpy().tobytes()).hexdigest()
    assert digest == "9fed2442455248d9db45b4d51d57dd58cb40dfe3c8048d3b8e90fff5e4b1c41e"
    summary = res["summary"].drop(["debt_asset"]).to_numpy()
    assert summary.dtype == np.float64 and hashlib.sha256(summary.tobytes()).hexdigest() == \
        "a5f4199e6d8fe2847f7908dd161d2bb5eb2945c42742072be25c735c33f38713"


def test_sweep_resampling_every_series(tmp_path):
    # end to end through the CLI: the end-of-run invariants mark each pair at its path's own rate and price
    import json

    import polars as pl
    from click.testing import CliRunner

    from backtest.cli import cli
    from tests.pins import REPO
    from tests.unit.test_montecarlo import CONFIG

    p = tmp_path / "mc.toml"
    p.write_text(CONFIG.format(data=REPO / "data", out=tmp_path / "out"))
    out = tmp_path / "out" / "mc-test"
    r = CliRunner().invoke(cli, ["sweep", str(p), "--paths", "3", "--seed", "2", "--block-days", "1", "--quiet"])
    assert r.exit_code == 0, r.output
    base = pl.read_parquet(out / "paths.parquet")
    r = CliRunner().invoke(cli, ["sweep", str(p), "--paths", "3", "--seed", "2", "--block-days", "1", "--quiet",
                                 "--force", "--resample", "discount,exchange_rate,eth_usd,gas,borrow_rate"])
    assert r.exit_code == 0, r.output
    man = json.loads((out / "manifest.json").read_text())["montecarlo"]
    assert man["resample"] == list(ALL) and "exchange-rate steps" in man["series"]
    every = pl.read_parquet(out / "paths.parquet")
    assert every.height == base.height and not every["end_equity"].equals(base["end_equity"])
    r = CliRunner().invoke(cli, ["sweep", str(p), "--paths", "3", "--resample", "discount,fx", "--force"])
    assert r.exit_code == 2 and "--resample 'discount,fx'" in r.output, r.output


def test_a_slash_overlay_is_refused_with_resampled_rates(tmp_path):
    from backtest.api import run
    from backtest.errors import ConfigError
    from tests.pins import REPO
    from tests.unit.test_montecarlo import CONFIG

    p = tmp_path / "mc.toml"
    p.write_text(CONFIG.format(data=REPO / "data", out=tmp_path / "out") + """
[[scenario]]
kind = "slash"
asset = "wstETH"
at = "2024-06-05"
depth = 0.1
""")
    with pytest.raises(ConfigError, match="slash overlays the exchange rate"):
        run(p, montecarlo=MonteCarlo(paths=2, resample=("discount", "exchange_rate")), workers=1, write=False)
    res = run(p, montecarlo=MonteCarlo(paths=2, resample=("discount", "gas")), workers=1, write=False)
    assert res["summary"]["n_paths"].to_list() == [2, 2]


def random_paths(m, rng, n_paths: int, interval: int) -> Paths:
    ns = int((m.ts[-1] - m.ts[0]) // interval) + 1
    shape = (n_paths, ns)
    xr = float(m.xrate[0]) * np.exp(np.cumsum(rng.normal(0, 0.01, shape), axis=1))
    slash = np.where(rng.random(shape) < 0.05, rng.uniform(0, 0.3, shape), 0.0)
    delta = rng.uniform(-0.02, 0.2, shape) if rng.random() < 0.5 else None
    return Paths((m.ts - m.ts[0]) // interval, np.exp(rng.normal(0.0, 0.05, shape)), delta, xrate=xr,
                 slash=slash, usd_factor=np.exp(rng.normal(0, 0.1, shape)),
                 gas_delta=rng.uniform(-100, 300, shape))


def usdc_variant(m, rng):
    """The same market against a USDC debt: ETH at a random walk around 3,000 USDC."""
    eth = 3000 * np.exp(np.cumsum(rng.normal(0, 0.003, len(m))))
    m.price, m.oracle_feed, m.hold_price = m.price * eth, m.oracle_feed * eth, m.hold_price * eth
    m.underlying_price, m.gas_token_price, m.eth_usd = eth, eth.copy(), np.ones(len(m))
    return m


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(2, 250),
       oracle=st.sampled_from(["exchange-rate", "market", "capo", "chainlink"]),
       kind=st.sampled_from(["hold", "lend", "loop", "flash-loan"]), usdc=st.booleans(),
       n_paths=st.integers(1, 3), interval=st.sampled_from([60, 300, 3600]))
def test_series_paths_core_equals_reference(seed, n, oracle, kind, usdc, n_paths, interval):
    m = make_market(seed, n, True)
    rng = np.random.default_rng(seed + 7)
    if usdc:
        if oracle == "exchange-rate":
            oracle = "capo"             # a bare exchange rate does not price in USDC (engine's rule)
        m = usdc_variant(m, rng)
    p = np.concatenate([make_params(rng, m, kind, "aave-v3") for _ in range(2)])
    lanes = [Lane(oracle, 0.0968, int(rng.choice([600, 3600])), "aave-v3")]
    paths = random_paths(m, rng, n_paths, interval)
    rec = record_indices(m, int(rng.choice([-1, 0, 60])))
    out, _ = run_core_paths(m, p, lanes, rec, 5, paths)
    ref_res = run_reference_paths(m, p, lanes, rec, 5, paths)
    ref = ref_outputs(ref_res, rec)
    ref.summaries["min_hf_idx"] = out.summaries["min_hf_idx"]
    assert_same(out, ref, years=max(float(m.ts[-1] - m.ts[0]), 1.0) / (365 * 86400))
    scale_hold = hold_follows_price(m)
    for k in range(n_paths):
        mk = scale_market(m, paths, k, scale_hold)
        same_exact(rows(out, [k, n_paths + k]), run_core(mk, p, lanes, rec, 5))
        if len(rec):
            for i in range(2):
                check_records(ref_res[i * n_paths + k].records, rec, mk, float(p[i]["capital"]),
                              f"config {i} on path {k}")
