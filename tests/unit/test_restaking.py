"""The restaking leg (strategy.restake, [strategy.rewards], slashing, EigenLayer's queue delay), with
hand-worked numbers, in both engines; the config rules; align on the bundled lake; the example."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import polars as pl
import pytest

import backtest
from backtest.config import config_from_dict, load_config
from backtest.plan import market_for
from backtest.engine import (EIGEN_DELAY, EIGEN_DELAY_LATE, EIGEN_DELAY_LATE_FROM, Lane, encode_params,
                             lane_of)
from backtest.errors import ConfigError, DataError
from backtest.schema import EVENT_KINDS
from tests.helpers import both, market, params
from tests.synth_lake import synth_lake

REPO = Path(__file__).resolve().parents[2]
DAY = 86400


def _sum(out, name):
    return float(out.summaries[name][0])


# ------------------------------------------------------------------------------------------ rewards
def test_reward_accrues_on_tokens_held_block_by_block():
    # 11 blocks of 12 s; the reward is worth 1e-6 WETH per token per second, so R[b] = 12e-6 b.
    # hold, stake at rate 1: 100 tokens in the wallet; over 10 blocks: 100 x 12e-6 x 10 = 0.012 WETH.
    m = market(np.ones(11))
    m.reward = 12e-6 * np.arange(11)
    p = params(kind="hold")
    for out in both(m, p):
        assert _sum(out, "restaking_rewards") == pytest.approx(0.012, rel=1e-12)
        # not counted in equity: 100 tokens x price 1 = 100 WETH, as without the reward
        assert _sum(out, "end_equity") == pytest.approx(100.0, rel=1e-12)


def test_reward_follows_the_collateral_through_a_loop_and_a_chunk_skip():
    # 1,000 blocks (chunks of 256 skipped in the core). Loop: 100 staked at rate 1, one loop at LTV 0.5 ->
    # 150 tokens supplied. supply APR 0 -> the supply index stays 1, so the 150 tokens are constant.
    # Reward 2e-9 WETH per token per second over 999 x 12 s: 150 x 2e-9 x 11,988 = 3.5964e-3.
    n = 1000
    m = market(np.ones(n))
    m.reward = 2e-9 * 12.0 * np.arange(n)
    p = params(kind="loop", target_ltv=0.5, loops=1)
    core, ref = both(m, p)
    for out in (core, ref):
        assert _sum(out, "restaking_rewards") == pytest.approx(150 * 2e-9 * 999 * 12, rel=1e-12)
    # the reward only starts once held: a reward that rises only at block 0 -> 1 is not earned at the open
    m2 = market(np.ones(3))
    m2.reward = np.array([0.0, 0.0, 1e-3])          # 1e-3 per token from block 1 to 2
    for out in both(m2, params(kind="hold")):
        assert _sum(out, "restaking_rewards") == pytest.approx(100 * 1e-3, rel=1e-12)


# ------------------------------------------------------------------------------------------ slashing
def test_slash_cuts_the_rate_and_the_hf_and_is_an_event():
    # 600 blocks, a 10 % slash at block 300: xrate 1 -> 0.9 from there on (as align cuts it).
    # loop: 100 staked, one loop at 0.5 -> 150 tokens, debt 50; HF = 150 x 1 x 0.95 / 50 = 2.85;
    # after the slash 150 x 0.9 x 0.95 / 50 = 2.565. Event cost: 150 x 0.9 x 0.1 / 0.9 = 15 WETH lost.
    n = 600
    xr = np.where(np.arange(n) >= 300, 0.9, 1.0)
    m = market(xr.copy(), xrate=xr)
    m.slash[300] = 0.1
    p = params(kind="loop", target_ltv=0.5, loops=1)
    for out in both(m, p, oracle="exchange-rate"):
        ev = out.events[0]
        sl = ev[ev["kind"] == EVENT_KINDS["slash"]]
        assert len(sl) == 1 and int(sl["idx"][0]) == 300
        assert sl["cost"][0] == pytest.approx(15.0, rel=1e-12)
        assert sl["hf"][0] == pytest.approx(2.565, rel=1e-12)
        assert _sum(out, "min_hf") == pytest.approx(2.565, rel=1e-12)
        # the staking yield books the cut: 150 tokens x (0.9 - 1) = -15
        assert _sum(out, "staking_yield") == pytest.approx(-15.0, rel=1e-12)


def test_slash_can_liquidate_and_no_event_without_tokens():
    # LT 0.95, loop at 0.9: 100 + 90 = 190 tokens, debt 90: HF = 190 x 0.95 / 90 = 2.0056; a 50 % slash
    # gives 190 x 0.5 x 0.95 / 90 = 1.0028 > 1: no liquidation; a 60 % slash gives 0.8022 < 1: liquidated
    # in the slash block (the slash event comes first).
    n = 300
    for f, liquidated in ((0.5, False), (0.6, True)):
        xr = np.where(np.arange(n) >= 280, 1 - f, 1.0)
        m = market(xr.copy(), xrate=xr)
        m.slash[280] = f
        for out in both(m, params(kind="loop", target_ltv=0.9, loops=1), oracle="exchange-rate"):
            ev = out.events[0]
            kinds = [int(k) for k in ev["kind"]]
            assert kinds[2] == EVENT_KINDS["slash"] and int(ev["idx"][2]) == 280
            assert (_sum(out, "liq_count") > 0) == liquidated
            if liquidated:
                assert kinds[3] == EVENT_KINDS["liquidation"] and int(ev["idx"][3]) == 280
    # nothing held (a de-peg exit through the DEX at block 1): no slash event
    xr = np.where(np.arange(n) >= 280, 0.9, 1.0)
    px = xr.copy()
    px[1] = 0.5
    m = market(px, xrate=xr)
    m.slash[280] = 0.1
    for out in both(m, params(kind="loop", exit_on=1, depeg_below=0.9)):
        assert EVENT_KINDS["slash"] not in [int(k) for k in out.events[0]["kind"]]


# ------------------------------------------------------------------------------------------ queue delay
def _queue_release_idx(t0: int, exit_block: int) -> tuple[int, int]:
    # hourly blocks; the DEX price falls to 0.5 at exit_block -> de-peg exit through the queue (no debt:
    # lend), the tokens wait in the queue; returns (release block of the core, of the reference)
    n = 24 * 20
    px = np.ones(n)
    px[exit_block:] = 0.5
    m = market(px, t0=t0, dt=3600)
    p = params(kind="lend", exit_on=1, depeg_below=0.9, exit_route=1, queue_delay=EIGEN_DELAY,
               queue_delay_late=EIGEN_DELAY_LATE, queue_late_from=EIGEN_DELAY_LATE_FROM)
    out = []
    for o in both(m, p):
        ev = o.events[0]
        out.append(int(ev["idx"][ev["kind"] == EVENT_KINDS["queue_release"]][0]))
    return tuple(out)


def test_eigenlayer_queue_delay_by_date():
    t0 = EIGEN_DELAY_LATE_FROM - 2 * DAY         # 2024-12-30 00:00 UTC, hourly blocks
    # exit at block 5 (2024-12-30 05:00, before 2025): 7 days = 168 hourly blocks later -> block 173
    assert _queue_release_idx(t0, 5) == (173, 173)
    # exit at block 60 (2025-01-01 12:00): 14 days = 336 blocks later -> block 396
    assert _queue_release_idx(t0, 60) == (396, 396)


def _cfg(strategy: dict, **more) -> dict:
    d = {"run": {"name": "t", "start": "2024-06-01", "end": "2025-06-01", "data": str(synth_lake())},
         "market": {"protocol": "aave-v3", "collateral": "wstETH"},
         "strategy": {"kind": "loop", "target_ltv": 0.8, "loops": 3, **strategy},
         "costs": {"gas": 10.0}}
    d.update(more)
    return d


def test_encode_queue_delay_defaults():
    cfgs = [config_from_dict(_cfg({"restake": "weETH", "exit": {"depeg_below": 0.97, "route": "queue"}})),
            config_from_dict(_cfg({"restake": "weETH", "exit": {"depeg_below": 0.97, "queue_delay": "2d"}})),
            config_from_dict(_cfg({"exit": {"depeg_below": 0.97}}))]
    lanes = [lane_of(c) for c in cfgs]
    p = encode_params(cfgs, list(dict.fromkeys(lanes)))
    # an LRT without queue_delay: 7 d, 14 d from 2025-01-01 00:00 UTC (1735689600)
    assert (p["queue_delay"][0], p["queue_delay_late"][0], p["queue_late_from"][0]) == (7 * DAY, 14 * DAY,
                                                                                         1735689600)
    # set explicitly: that delay, whatever the date
    assert (p["queue_delay"][1], p["queue_late_from"][1]) == (2 * DAY, 0)
    # not restaked: the 5-day default
    assert (p["queue_delay"][2], p["queue_late_from"][2]) == (5 * DAY, 0)


# ------------------------------------------------------------------------------------------ config
def test_config_restake_rules():
    c = config_from_dict(_cfg({"restake": "weETH", "rewards": {"value": "points", "price_per_point": 1e-4}}))
    assert c.strategy.restake == "weETH" and c.strategy.rewards.price_per_point == 1e-4
    with pytest.raises(ConfigError, match="must differ from market.collateral"):
        config_from_dict(_cfg({"restake": "wstETH"}))
    with pytest.raises(ConfigError, match="price_per_point"):
        config_from_dict(_cfg({"restake": "weETH", "rewards": {"value": "points"}}))
    with pytest.raises(ConfigError, match="strategy.rewards.token"):
        config_from_dict(_cfg({"restake": "weETH", "rewards": {"value": "token"}}))
    # a sweep may vary the held token (each value is its own market group: tests/unit/test_sweep_restake.py)
    swept = config_from_dict(_cfg({"restake": "weETH"}, sweep={"strategy.restake": ["weETH", "ezETH"]}))
    assert swept.sweep == {"strategy.restake": ["weETH", "ezETH"]}
    # a depeg overlay may name the LRT when restaking
    sc = {"kind": "depeg", "asset": "weETH", "at": "2025-01-10", "depth": 0.05, "duration": "3d"}
    assert config_from_dict(_cfg({"restake": "weETH"}, scenario=[sc])).scenarios[0].asset == "weETH"
    with pytest.raises(ConfigError, match="a depeg applies to the collateral"):
        config_from_dict(_cfg({}, scenario=[sc]))


# ------------------------------------------------------------------------------------------ align
def _asof(lake_ts: np.ndarray, lake_v: np.ndarray, ts: np.ndarray) -> np.ndarray:
    return lake_v[np.searchsorted(lake_ts, ts, side="right") - 1]


def test_align_restaked_market_on_the_bundled_lake():
    # 2025-02-09 -> 2025-02-12: the synthetic 0.5 % weETH slash is at 2025-02-10 12:00 = block 10,800
    d = _cfg({"restake": "weETH", "rewards": {"value": "points", "price_per_point": 1e-4}})
    d["run"].update(start="2025-02-09", end="2025-02-12")
    m = market_for(config_from_dict(d))
    n = len(m)
    assert n == 21600 and int(m.ts[10800]) == 1739188800
    ex = pl.read_parquet(synth_lake() / "exchange_rates").sort("ts")
    w = ex.filter(pl.col("token") == "weETH")
    raw = _asof(w["ts"].to_numpy(), w["rate"].to_numpy(), m.ts)
    # the exchange rate is the lake's until the slash, 0.995 x the lake's from it on
    assert np.array_equal(m.xrate[:10800], raw[:10800])
    assert np.allclose(m.xrate[10800:], raw[10800:] * 0.995, rtol=1e-15)
    # 1 - (1 - 0)(1 - 0.005), the combined cut of the block
    assert m.slash[10800] == pytest.approx(0.005, rel=1e-12) and np.count_nonzero(m.slash) == 1
    # the hold benchmark is wstETH's exchange rate
    s = ex.filter(pl.col("token") == "wstETH")
    assert np.array_equal(m.hold_xrate, _asof(s["ts"].to_numpy(), s["rate"].to_numpy(), m.ts))
    # points: 1 per weETH per day x 1e-4 WETH per point, over 21,599 x 12 s: 1e-4 x 259,188 / 86,400
    assert m.reward[0] == 0.0
    assert m.reward[-1] == pytest.approx(1e-4 * 21599 * 12 / 86400, rel=1e-12)
    # weETH's own E-mode parameters (93 / 95 %)
    assert m.ltv[0] == 0.93 and m.lt[0] == 0.95


def test_align_token_rewards_valued_in_eth():
    # EIGEN: 0.09 per weETH per week, priced EIGEN/USD / ETH/USD at each block (value of block b-1 accrues
    # over (b-1, b]): R[-1] = sum_b<n-1 0.09 / 604,800 x eigen_usd[b] / eth_usd[b] x 12
    d = _cfg({"restake": "weETH", "rewards": {"value": "token", "token": "EIGEN"}})
    d["run"].update(start="2025-02-09", end="2025-02-10")
    m = market_for(config_from_dict(d))
    pr = pl.read_parquet(synth_lake() / "prices").sort("ts")
    e = pr.filter(pl.col("base") == "EIGEN")
    u = pr.filter((pl.col("base") == "ETH") & (pl.col("quote") == "USD"))
    eig = _asof(e["ts"].to_numpy(), e["price"].to_numpy(), m.ts)
    eth = _asof(u["ts"].to_numpy(), u["price"].to_numpy(), m.ts)
    want = np.sum(0.09 / 604800 * eig[:-1] / eth[:-1] * 12.0)
    assert 0 < want and m.reward[-1] == pytest.approx(want, rel=1e-9)
    # before EIGEN's first row (2024-10-01) no token reward accrues
    d["run"].update(start="2024-07-01", end="2024-07-02")
    assert market_for(config_from_dict(d)).reward[-1] == 0.0
    # a reward token without a price is a DataError naming it
    d["strategy"]["rewards"]["token"] = "NOPE"
    with pytest.raises(DataError, match="rewards weETH:NOPE"):
        market_for(config_from_dict(d))


# ------------------------------------------------------------------------------------------ example
@pytest.fixture(scope="module")
def example(tmp_path_factory):
    out = tmp_path_factory.mktemp("restake-example")
    ov = {"run.output": str(out), "run.data": str(synth_lake())}
    run = backtest.run(REPO / "examples" / "restake-weeth.toml", overrides=ov)
    zero = backtest.run(REPO / "examples" / "restake-weeth.toml",
                        overrides={**ov, "run.name": "restake-zero", "strategy.rewards.value": "zero"})
    loop = backtest.run(REPO / "tests" / "golden" / "configs" / "loop.toml", overrides=ov)   # the synthetic-year loop
    return run, zero, loop


def test_restake_example(example):
    run, zero, loop = example
    s, z = run["summary"].sort("config_id"), zero["summary"].sort("config_id")
    assert s.height == 3 and s["liq_count"].sum() == 0
    # EIGEN rewards accrue (~0.5 %/yr of the value from Oct 2024 on: > 0.5 WETH on 100 WETH looped ~4x)
    assert (s["restaking_rewards"] > 0.5).all() and (z["restaking_rewards"] == 0).all()
    # ... but stay outside equity: the same replay without valuing them ends with the same equity
    assert s["end_equity"].to_list() == z["end_equity"].to_list()
    # more leverage, more tokens held, more rewards
    assert s["restaking_rewards"].is_sorted()
    # the hold benchmark is the base LST: the same as examples/loop.toml's wstETH hold (same entry costs)
    assert s["hold_apy"].to_list() == [loop["summary"]["hold_apy"][0]] * 3
    assert np.allclose(s["excess_apy"], s["net_apy"] - s["hold_apy"], rtol=0, atol=0)
    # every configuration gets the slash event at 2025-02-10 12:00
    sl = run["events"].filter(pl.col("kind") == "slash")
    assert sorted(sl["config_id"].to_list()) == s["config_id"].to_list()
    assert set(sl["ts"].to_list()) == {1739188800} and (sl["cost"] > 0).all()


def test_depeg_overlay_hits_the_token_it_names():
    # 10 blocks; a 10 % step depeg from block 0 over the whole window on weETH (held) or wstETH (the hold
    # benchmark): only the named token's price is multiplied by 0.9
    from backtest.config_types import ScenarioConfig
    from backtest.data.scenarios import apply_scenarios

    m = market(np.ones(10))
    m.hold_price = np.full(10, 2.0)
    t0 = int(m.ts[0])
    for asset, price, hold in (("weETH", 0.9, 2.0), ("wstETH", 1.0, 1.8)):
        sc = ScenarioConfig(kind="depeg", asset=asset, at=t0, depth=0.1, duration=10 * 12, shape="step")
        out = apply_scenarios(m, [sc], collateral="weETH", debt="WETH", hold="wstETH")
        assert np.allclose(out.price, price, rtol=1e-15) and np.allclose(out.hold_price, hold, rtol=1e-15)
    # not restaked (hold = the collateral): both move together, as before the restaking leg
    sc = ScenarioConfig(kind="depeg", asset="wstETH", at=t0, depth=0.1, duration=10 * 12, shape="step")
    out = apply_scenarios(market(np.ones(10)), [sc], collateral="wstETH", debt="WETH")
    assert np.allclose(out.price, 0.9, rtol=1e-15) and np.allclose(out.hold_price, 0.9, rtol=1e-15)
