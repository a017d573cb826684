"""Monte Carlo (backtest/montecarlo.py): the block bootstrap's determinism and block structure, the capped walk,
the statistics on a hand-worked case, a 2-path core / reference differential on bootstrapped paths, and the
sweep end to end (worst path replayed alone, resume, executors)."""
from __future__ import annotations

import json
import math

import numpy as np
import polars as pl
import pytest

from backtest import montecarlo as mcm
from backtest.engine import Lane, record_indices, run_core, run_core_paths
from backtest.errors import ConfigError
from backtest.invariants import check_records
from backtest.montecarlo import MonteCarlo, bootstrap_paths, bootstrap_returns, capped_walk, summarize
from backtest.paths import scale_market
from backtest.reference import run_reference_paths
from tests.helpers import market, params
from tests.unit.test_differential import assert_same, make_market, make_params
from tests.unit.test_paths import ref_outputs, rows, same_exact


def hourly_market(q: np.ndarray, per_hour: int = 3) -> "object":
    """A market sampled `per_hour` times an hour whose de-peg ratio is q[h] during hour h (exchange rate 1.1)."""
    qb = np.repeat(np.asarray(q, dtype=float), per_hour)
    return market(1.1 * qb, xrate=1.1, dt=3600 // per_hour)


# --- the bootstrap -------------------------------------------------------------------------------------------
def test_blocks_are_runs_of_consecutive_history():
    r = np.arange(10, 20, dtype=float)                 # distinct returns: every draw names its position
    out, starts = bootstrap_returns(r, 23, 4, np.random.default_rng([5, 2]))
    assert len(out) == 23 and len(starts) == 6         # ceil(23 / 4) blocks, the last one cut to 3
    for j, s in enumerate(starts):
        block = out[4 * j: 4 * j + 4]
        want = r[(s + np.arange(len(block))) % 10]     # circular: a block may wrap past the end
        assert np.array_equal(block, want)


def test_path_is_the_history_resampled_in_day_blocks():
    # 10 days of hourly ratios falling every hour (all returns < 0), so the ceiling (the first ratio) never
    # binds and the path's hourly log-returns are exactly the history's, in runs of 24 consecutive hours
    rng = np.random.default_rng(0)
    lq = -np.cumsum(rng.uniform(1e-4, 1e-3, 240))
    lq -= lq[0]
    m = hourly_market(np.exp(lq))
    mc = MonteCarlo(paths=3, seed=11, block_days=1.0)
    paths = bootstrap_paths(m, mc, [0, 1, 2])
    hist_r = np.diff(lq)
    for k in range(3):
        qpath = np.exp(lq) * paths.price_factor[k]
        rk = np.diff(np.log(qpath))
        for j in range(0, len(rk), 24):
            block = rk[j: j + 24]
            s = int(np.flatnonzero(np.isclose(hist_r, block[0], rtol=0, atol=1e-15))[0])
            assert np.allclose(block, hist_r[(s + np.arange(len(block))) % len(hist_r)], rtol=0, atol=1e-12)
        assert paths.price_factor[k, 0] == 1.0          # every path starts at the window's own ratio


def test_paths_depend_only_on_seed_and_id():
    m = make_market(3, 400, True)
    mc = MonteCarlo(paths=6, seed=42, block_days=0.01, interval=60)
    all6 = bootstrap_paths(m, mc, range(6)).price_factor
    assert np.array_equal(bootstrap_paths(m, mc, [4]).price_factor[0], all6[4])      # alone = in a batch
    assert np.array_equal(bootstrap_paths(m, mc, [5, 1]).price_factor, all6[[5, 1]])
    again = bootstrap_paths(m, MonteCarlo(paths=6, seed=42, block_days=0.01, interval=60), range(6))
    assert np.array_equal(again.price_factor, all6)
    other = bootstrap_paths(m, MonteCarlo(paths=6, seed=43, block_days=0.01, interval=60), range(6))
    assert not np.array_equal(other.price_factor, all6)
    assert not np.array_equal(all6[0], all6[1])
    assert np.all(all6[:, 0] == 1.0)                  # every path starts at the window's own ratio, exactly


def test_capped_walk_by_hand():
    # x0 = 0, ceiling 0.75: 0 -> 0.5 -> min(1.0, 0.75) = 0.75 -> -0.25 -> min(1.75, 0.75) = 0.75 -> 0.5
    got = capped_walk(0.0, np.array([0.5, 0.5, -1.0, 2.0, -0.25]), 0.75)
    assert np.allclose(got, [0.0, 0.5, 0.75, -0.25, 0.75, 0.5], rtol=0, atol=1e-15)
    assert np.array_equal(capped_walk(1.0, np.array([0.0]), 0.5), [0.5, 0.5])        # a start above is held
    assert capped_walk(-0.03, np.array([0.01]), -0.001)[0] == -0.03                  # the start is exact


def test_options_refused():
    for kw, msg in (({"paths": 0}, "--paths"), ({"paths": 2, "seed": -1}, "--seed"),
                    ({"paths": 2, "block_days": 0.0}, "--block-days"), ({"paths": 2, "path": 2}, "--path")):
        with pytest.raises(ConfigError, match=msg):
            MonteCarlo(**kw)


# --- statistics on a hand-worked case --------------------------------------------------------------------------
def test_statistics_by_hand():
    # 20 paths, capital 100, ending equity 81..100 (path id p has equity 100 - p); net APY = equity / 100 - 1
    eq = np.array([100.0 - p for p in range(20)])        # path 0: 100, ..., path 19: 81
    liq = np.array([0] * 17 + [1, 2, 1])                  # paths 17, 18, 19 liquidated
    bad = np.array([0] * 19 + [1.5])
    pairs = pl.DataFrame({"config_id": [7] * 20, "path": np.arange(20), "end_equity": eq,
                          "net_apy": eq / 100 - 1, "liq_count": liq, "bad_debt": bad, "min_hf": np.ones(20)})
    s = summarize(pairs, {7: 100.0}).row(0, named=True)
    assert s["n_paths"] == 20
    assert s["liq_probability"] == 3 / 20 and s["bad_debt_probability"] == 1 / 20
    # linear quantile at 5 %: position 0.05 x 19 = 0.95 between the sorted 81 and 82 -> 81.95
    assert s["end_equity_p5"] == pytest.approx(81.95, abs=1e-12)
    assert s["var95"] == pytest.approx(100 - 81.95, abs=1e-12)
    # CVaR: the worst ceil(0.05 x 20) = 1 path, equity 81 -> loss 19
    assert s["cvar95"] == pytest.approx(19.0, abs=1e-12)
    # expected shortfall: mean of max(0, 100 - equity) = (0 + 1 + ... + 19) / 20 = 9.5
    assert s["expected_shortfall"] == pytest.approx(9.5, abs=1e-12)
    # APY quantiles: p50 between sorted 10th and 11th (-0.10, -0.09) = -0.095; p95 at 18.05 -> -0.0095
    assert s["net_apy_p50"] == pytest.approx(-0.095, abs=1e-12)
    assert s["net_apy_p5"] == pytest.approx(-0.1805, abs=1e-12)
    assert s["net_apy_p95"] == pytest.approx(-0.0095, abs=1e-12)
    assert s["worst_path"] == 19 and s["worst_end_equity"] == 81.0


def test_cvar_tail_and_ties():
    # 41 paths: ceil(0.05 x 41) = 3 worst paths; equities 50, 50, 60 then 100s; the tie goes to the lower id
    eq = np.full(41, 100.0)
    eq[[30, 12, 5]] = [50.0, 50.0, 60.0]
    pairs = pl.DataFrame({"config_id": [0] * 41, "path": np.arange(41), "end_equity": eq, "net_apy": eq * 0,
                          "liq_count": np.zeros(41, dtype=np.int64), "bad_debt": np.zeros(41),
                          "min_hf": np.ones(41)})
    s = summarize(pairs, {0: 100.0}).row(0, named=True)
    assert s["cvar95"] == pytest.approx(100 - (50 + 50 + 60) / 3, abs=1e-12)
    # 5 % quantile at position 0.05 x 40 = 2.0: the third smallest, 60
    assert s["var95"] == pytest.approx(40.0, abs=1e-12)
    assert s["worst_path"] == 12
    assert s["cvar95"] >= s["var95"]


# --- a 2-path differential on bootstrapped paths ------------------------------------------------------------------
@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_two_bootstrapped_paths_core_equals_reference(seed):
    m = make_market(seed, 250, True)
    rng = np.random.default_rng(seed)
    p = np.concatenate([make_params(rng, m, kind, "aave-v3") for kind in ("loop", "flash-loan")])
    lanes = [Lane("market", 0.0968, 3600, "aave-v3")]
    paths = bootstrap_paths(m, MonteCarlo(paths=2, seed=seed, block_days=0.005, interval=60), [0, 1])
    assert not np.all(paths.price_factor == 1.0)
    rec = record_indices(m, 0)                      # every block, so the invariants are checked at each
    out, _ = run_core_paths(m, p, lanes, rec, 5, paths)
    ref_res = run_reference_paths(m, p, lanes, rec, 5, paths)
    ref = ref_outputs(ref_res, rec)
    ref.summaries["min_hf_idx"] = out.summaries["min_hf_idx"]
    assert_same(out, ref, years=max(float(m.ts[-1] - m.ts[0]), 1.0) / (365 * 86400))
    for i, res in enumerate(ref_res):
        k = i % 2
        check_records(res.records, rec, scale_market(m, paths, k, True), float(p[i // 2]["capital"]),
                      f"config {i // 2} on path {k}")
        # each pair is the plain core run on its path's market built by hand
    for k in range(2):
        same_exact(rows(out, [k, 2 + k]), run_core(scale_market(m, paths, k, True), p, lanes, rec, 5))


# --- the sweep end to end --------------------------------------------------------------------------------------
CONFIG = """
[run]
name = "mc-test"
start = "2024-06-01"
end = "2024-06-15"
data = "{data}"
output = "{out}"
record = "none"

[market]
protocol = "aave-v3"
collateral = "wstETH"
debt = "WETH"
emode = "eth-correlated"
oracle = "market"

[strategy]
kind = "loop"
capital = 100.0
target_ltv = 0.9
loops = 8

[sweep]
"strategy.target_ltv" = [0.85, 0.92]
"""


@pytest.fixture
def cfg_path(tmp_path):
    from tests.pins import REPO

    p = tmp_path / "mc.toml"
    p.write_text(CONFIG.format(data=REPO / "data", out=tmp_path / "out"))
    return p


def test_sweep_worst_path_replays_alone_and_resumes(cfg_path, tmp_path, monkeypatch):
    from backtest.api import run

    mc = MonteCarlo(paths=6, seed=9, block_days=1.0)
    full = run(cfg_path, montecarlo=mc, workers=1)
    s = full["summary"]
    assert s["config_id"].to_list() == [0, 1] and s["n_paths"].to_list() == [6, 6]
    pairs = pl.read_parquet(full["path"] / "paths.parquet")
    assert pairs.height == 12 and full["manifest"]["montecarlo"]["seed"] == 9
    assert not (full["path"] / "mc").exists()
    assert any(c["name"] == "var95" and c["unit"] == "WETH" for c in full["manifest"]["columns"]["summary"])
    worst = int(s["worst_path"][1])
    alone = run(cfg_path, montecarlo=MonteCarlo(paths=6, seed=9, block_days=1.0, path=worst), workers=1,
                write=False)
    one = pl.read_parquet(full["path"] / "paths.parquet").filter(pl.col("path") == worst)
    assert alone["summary"]["worst_end_equity"].to_list() == one["end_equity"].to_list()
    # resume: one path per batch; the third batch fails; the rerun computes only the batches not on disk
    monkeypatch.setattr(mcm, "PAIR_BUDGET", 2)
    calls, failed = [], []
    real = mcm._replay

    def failing(*a, **kw):
        calls.append(a[3])
        if len(calls) == 3 and not failed:
            failed.append(True)
            raise RuntimeError("killed")
        return real(*a, **kw)

    monkeypatch.setattr(mcm, "_replay", failing)
    with pytest.raises(RuntimeError):
        run(cfg_path, montecarlo=mc, workers=1, force=True)
    calls.clear()
    again = run(cfg_path, montecarlo=mc, workers=1, resume=True, force=True)
    assert len(calls) == 4                            # 6 batches, 2 finished before the failure
    assert again["summary"].drop([]).equals(s)
    assert pl.read_parquet(again["path"] / "paths.parquet").equals(pairs)


def test_dask_gives_the_local_result(cfg_path):
    pytest.importorskip("distributed")
    from backtest.api import run

    mc = MonteCarlo(paths=4, seed=3, block_days=2.0)
    local = run(cfg_path, montecarlo=mc, workers=1, write=False)
    dask = run(cfg_path, montecarlo=mc, workers=2, executor="dask", write=False)
    assert dask["summary"].equals(local["summary"])


def test_cli_paths(cfg_path, tmp_path):
    from click.testing import CliRunner

    from backtest.cli import cli

    r = CliRunner().invoke(cli, ["sweep", str(cfg_path), "--paths", "3", "--seed", "1", "--quiet"])
    assert r.exit_code == 0, r.output
    assert pl.read_parquet(tmp_path / "out" / "mc-test" / "paths.parquet").height == 6
    r = CliRunner().invoke(cli, ["show", str(tmp_path / "out" / "mc-test"), "--sql",
                                 "select count(*) as n, max(path) as k from paths"])
    assert r.exit_code == 0 and "6" in r.output and "2" in r.output, r.output
    r = CliRunner().invoke(cli, ["show", str(tmp_path / "out" / "mc-test")])
    assert r.exit_code == 0 and "P(liq)" in r.output, r.output
    r = CliRunner().invoke(cli, ["sweep", str(cfg_path), "--paths", "2", "--seed", "1", "--vary-borrow-rate",
                                 "--quiet", "--force"])
    assert r.exit_code == 0, r.output
    man = json.loads((tmp_path / "out" / "mc-test" / "manifest.json").read_text())
    assert man["montecarlo"]["series"].endswith("borrow rate")
    r = CliRunner().invoke(cli, ["sweep", str(cfg_path), "--path", "1"])
    assert r.exit_code == 2 and "go with --paths" in r.output
    r = CliRunner().invoke(cli, ["sweep", str(cfg_path), "--paths", "3", "--path", "3"])
    assert r.exit_code == 2 and "--path 3" in r.output


# --- the borrow rate as a second varied series ---------------------------------------------------------------
def test_borrow_rate_follows_the_same_blocks():
    # hourly ratio and borrow rate that name their hour: each path sample's rate is the rate of the history
    # sample its de-peg return was drawn from
    n_h = 120
    q = np.exp(-np.cumsum(np.full(n_h, 1e-4)))
    m = hourly_market(q)
    m.borrow_apr = np.repeat(0.01 + 0.001 * np.arange(n_h), 3)
    mc = MonteCarlo(paths=2, seed=5, block_days=0.5, borrow_rate=True)
    paths = bootstrap_paths(m, mc, [0, 1])
    _, _, first = mcm.history_samples(m, 3600, with_first=True)
    for k in range(2):
        _, h = mcm.path_draw(q, 5, k, 12)
        rate = m.borrow_apr[first]
        assert np.allclose(rate + paths.borrow_delta[k], rate[h], rtol=0, atol=1e-15)
        assert paths.borrow_delta[k, 0] == 0.0 and h[0] == 0
        # within a block of 12 hours the drawn hours are consecutive
        assert np.all(np.diff(h[1:13]) % (n_h - 1) == 1)     # (a wrap past the end counts as consecutive)
    # the price factors are the price-only bootstrap's: the rate rides on the same draws
    assert np.array_equal(paths.price_factor, bootstrap_paths(m, MonteCarlo(paths=2, seed=5, block_days=0.5),
                                                              [0, 1]).price_factor)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_borrow_rate_paths_core_equals_reference(seed):
    m = make_market(seed, 200, True)
    rng = np.random.default_rng(seed)
    p = np.concatenate([make_params(rng, m, kind, "aave-v3") for kind in ("loop", "flash-loan")])
    lanes = [Lane("market", 0.0968, 3600, "aave-v3")]
    base = bootstrap_paths(m, MonteCarlo(paths=2, seed=seed, block_days=0.005, interval=60), [0, 1])
    delta = rng.uniform(-0.02, 0.3, base.price_factor.shape)
    delta[0] = 0.0                                  # path 0: the de-peg varies, the rate does not
    paths = mcm.Paths(base.sample_idx, base.price_factor, delta)
    rec = record_indices(m, 0)
    out, _ = run_core_paths(m, p, lanes, rec, 5, paths)
    # a zero delta is the price-only path bit for bit
    price_only, _ = run_core_paths(m, p, lanes, rec, 5, base)
    same_exact(rows(out, [0, 2]), rows(price_only, [0, 2]))
    assert not np.array_equal(out.summaries["interest_paid"][[1, 3]], price_only.summaries["interest_paid"][[1, 3]])
    ref = ref_outputs(run_reference_paths(m, p, lanes, rec, 5, paths), rec)
    ref.summaries["min_hf_idx"] = out.summaries["min_hf_idx"]
    assert_same(out, ref, years=max(float(m.ts[-1] - m.ts[0]), 1.0) / (365 * 86400))
    sm = scale_market(m, paths, 1, True)
    assert np.all(sm.borrow_apr >= 0) and np.array_equal(sm.borrow_apr,
                                                         np.maximum(m.borrow_apr + delta[1][paths.sample_idx], 0))


def test_paths_in_parallel_equal_paths_in_turn():
    # 8 paths on 2 threads: the core runs paths in parallel (each thread its own buffers); on 1 thread one path
    # after the other with its configurations shared out: the same pairs bit for bit, in either row order
    m = make_market(7, 300, True)
    rng = np.random.default_rng(7)
    p = np.concatenate([make_params(rng, m, kind, "aave-v3") for kind in ("loop", "flash-loan", "hold")])
    lanes = [Lane("market", 0.0968, 3600, "aave-v3"), Lane("exchange-rate", 0.0968, 3600, "aave-v3")]
    p["lane"] = [0, 1, 0]
    paths = bootstrap_paths(m, MonteCarlo(paths=8, seed=2, block_days=0.005, interval=60), range(8))
    rec = record_indices(m, 60)
    par, pp = run_core_paths(m, p, lanes, rec, 5, paths, threads=2, event_cap=2)
    one, _ = run_core_paths(m, p, lanes, rec, 5, paths, threads=1, event_cap=2)
    same_exact(par, one)
    assert list(pp) == list(range(8)) * 3
    for k in (0, 5):
        same_exact(rows(par, [k, 8 + k, 16 + k]), run_core(scale_market(m, paths, k, True), p, lanes, rec, 5))


def test_paths_in_parallel_restaking_hold_no_records_core_equals_reference():
    # the parallel mode's other branches: a hold token that is not the collateral (its price does not follow
    # the path) and no records; core in parallel = core in turn = the reference engine
    m = make_market(9, 200, True)
    m.hold_price = m.price * 1.02
    rng = np.random.default_rng(9)
    p = make_params(rng, m, "loop", "aave-v3")
    lanes = [Lane("market", 0.0968, 3600, "aave-v3")]
    paths = bootstrap_paths(m, MonteCarlo(paths=4, seed=3, block_days=0.005, interval=60), range(4))
    rec = record_indices(m, -1)
    par, _ = run_core_paths(m, p, lanes, rec, 5, paths, threads=2, event_cap=2)
    one, _ = run_core_paths(m, p, lanes, rec, 5, paths, threads=1, event_cap=2)
    same_exact(par, one)
    ref = ref_outputs(run_reference_paths(m, p, lanes, rec, 5, paths), rec)
    ref.summaries["min_hf_idx"] = par.summaries["min_hf_idx"]
    assert_same(par, ref, years=max(float(m.ts[-1] - m.ts[0]), 1.0) / (365 * 86400))
    # the hold token's price is not scaled: its APY is the same on every path, while the loop's differs
    assert np.all(par.summaries["hold_apy"] == par.summaries["hold_apy"][0])
    assert len(set(par.summaries["net_apy"].tolist())) > 1


# --- [[scenario]] overlays stack on the paths ------------------------------------------------------------------
def test_overlay_multiplies_each_bootstrapped_path():
    # the bootstrap reads the history without the overlay; on the overlaid market the path's ratio is the
    # bootstrapped ratio times the overlay's multiple at each hour (here 0.85 during hours 30-40)
    n_h = 96
    rng = np.random.default_rng(4)
    q = np.exp(np.cumsum(rng.normal(0, 1e-3, n_h)))
    base = hourly_market(q)
    mult = np.ones(n_h)
    mult[30:41] = 0.85
    over = hourly_market(q * mult)
    mc = MonteCarlo(paths=3, seed=8, block_days=0.25)
    paths = bootstrap_paths(mcm.history_of(base), mc, range(3))
    for k in range(3):
        qb = q * paths.price_factor[k]                  # the bootstrapped ratio without the overlay
        scaled = scale_market(over, paths, k, True)
        got = (scaled.price / scaled.xrate)[::3]        # each hour's first block
        assert np.allclose(got, qb * mult, rtol=1e-14, atol=0)


def test_sweep_with_an_overlay(cfg_path):
    from backtest.api import run

    text = cfg_path.read_text() + """
[[scenario]]
kind = "depeg"
asset = "wstETH"
at = "2024-06-05"
depth = 0.12
duration = "2d"
shape = "v"
"""
    cfg_path.write_text(text)
    mc = MonteCarlo(paths=4, seed=2, block_days=1.0)
    res = run(cfg_path, montecarlo=mc, workers=1, write=False)
    # a 12 % de-peg on a market-priced loop at LTV 0.92 (HF 0.95 / 0.92 = 1.03): liquidated on every path
    assert res["summary"]["liq_probability"].to_list()[1] == 1.0
