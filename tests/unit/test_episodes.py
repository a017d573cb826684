"""De-peg episodes on hand-made series (backtest/episodes.py): where they start and end, how close stretches
merge, the deepest discount, oracle-only episodes, and what a configuration and its hold benchmark did inside.
Every expected number is worked out here from the series written in the test."""
from __future__ import annotations

import math

import numpy as np
import pytest

from backtest.engine import Lane, Outputs, record_indices, run_core
from backtest.episodes import (
    EPISODE_SCHEMA,
    episode_frame,
    extra_record_indices,
    find_episodes,
    find_runs,
    number_episodes,
)
from backtest.schema import EVENT_DTYPE, EVENT_KINDS, N_RECORD, RECORD_FIELDS, SUMMARY_DTYPE
from tests.helpers import market, params

H = 3600
TS = np.arange(10, dtype=np.int64) * H          # ten hourly blocks
T = 0.005                                        # the default threshold


def runs(d, gap=0):
    return find_runs(TS[: len(d)], np.asarray(d, dtype=float), T, gap)


def test_no_episode_when_the_discount_never_exceeds_the_threshold():
    # 0.004 is a discount, but not more than 0.5 %; a premium (negative discount) is no episode either
    assert runs([0.0, 0.004, 0.0049, -0.02, 0.0, 0.001, 0.0, 0.0, 0.0, 0.0]) == []


def test_an_episode_at_the_window_start():
    # on from block 0, deepest (0.03) at block 1, over after block 2
    assert runs([0.02, 0.03, 0.01, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]) == [(0, 2, 1)]


def test_an_episode_at_the_window_end():
    # still on at the last block (9)
    assert runs([0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.01, 0.04, 0.02]) == [(7, 9, 8)]


def test_two_stretches_closer_than_the_gap_are_one_episode():
    d = [0.0, 0.02, 0.01, 0.0, 0.0, 0.03, 0.0, 0.0, 0.0, 0.0]
    # stretches [1, 2] and [5, 5]: the gap is ts[5] - ts[2] = 3 h
    assert runs(d, gap=3 * H + 1) == [(1, 5, 5)]
    # "closer than" the gap: exactly 3 h apart with a 3 h gap stays two episodes
    assert runs(d, gap=3 * H) == [(1, 2, 1), (5, 5, 5)]
    assert runs(d, gap=0) == [(1, 2, 1), (5, 5, 5)]


def test_the_worst_block_is_the_first_of_the_deepest_discount():
    assert runs([0.0, 0.02, 0.05, 0.05, 0.01, 0.0, 0.0, 0.0, 0.0, 0.0]) == [(1, 4, 2)]


def test_market_episodes_read_price_against_rate_times_the_underlying():
    # a USDC debt: ETH at 2000 USDC, the token's rate 1.1 ETH, so its fair value is 2200 USDC; the DEX price
    # 2190 is a 0.45 % discount (not more than 0.5 %), 2178 a 1 % one
    up = 2000.0
    prices = np.array([2200.0, 2190.0, 2178.0, 2200.0])
    m = market(prices, xrate=1.1, underlying_price=up, dt=H)
    eps = find_episodes(m, ("wstETH",), [Lane("market", 0.0, 86400)], None, T, 0)
    assert [(e.kind, e.start, e.end, e.worst) for e in eps] == [("market", 2, 2, 2)]
    assert eps[0].worst_discount == pytest.approx(1 - 2178.0 / 2200.0)
    assert eps[0].oracle is None and eps[0].lane is None


def test_an_oracle_only_episode():
    # the DEX price stays at the rate (no market episode); a chainlink lane's oracle price is 2 % below it at
    # blocks 3-4: one oracle episode, for that lane; the market-oracle lane adds nothing (its price is the DEX's)
    n = 8
    m = market(np.full(n, 1.2), xrate=1.2, dt=H)
    lanes = [Lane("market", 0.0, 86400), Lane("chainlink", 0.0, 86400)]
    por = np.full((2, 1, n), 1.2)
    por[1, 0, 3:5] = 1.2 * 0.98
    eps = find_episodes(m, ("wstETH",), lanes, por, T, 0)
    assert [(e.kind, e.oracle, e.lane, e.start, e.end) for e in eps] == [("oracle", "chainlink", 1, 3, 4)]
    assert eps[0].worst_discount == pytest.approx(0.02)


def test_the_chainlink_lane_reads_the_lake_oracle_feed():
    # through the core's own lane builder: the chainlink oracle price is the lake's feed
    from backtest.engine import build_lanes

    n = 8
    feed = np.full(n, 1.2)
    feed[5] = 1.2 * 0.97
    m = market(np.full(n, 1.2), xrate=1.2, dt=H, oracle_feed=feed)
    lanes = [Lane("chainlink", 0.0, 86400)]
    por = build_lanes(m, lanes)["por"][:, None, :]
    eps = find_episodes(m, ("wstETH",), lanes, por, T, 0)
    assert [(e.kind, e.start, e.end) for e in eps] == [("oracle", 5, 5)]
    assert eps[0].worst_discount == pytest.approx(0.03)


def test_groups_sharing_a_market_share_episode_ids():
    m = market(np.array([1.0, 0.9, 1.0, 1.0, 0.9]), dt=H)
    a = find_episodes(m, ("stETH",), [Lane("market", 0.0, 86400)], None, T, 0)
    b = find_episodes(m, ("stETH",), [Lane("market", 0.0, 86400)], None, T, 0)
    number_episodes([a, b])
    assert [e.episode_id for e in a] == [0, 1] and [e.episode_id for e in b] == [0, 1]


# --- what each configuration did inside ------------------------------------------------------------------
def _events(rows):
    ev = np.zeros(len(rows), dtype=EVENT_DTYPE)
    for j, (idx, kind, coll, debt, cost, hf) in enumerate(rows):
        ev[j] = (idx, EVENT_KINDS[kind], coll, debt, cost, hf)
    return ev


def test_episode_rows_read_equity_before_and_after_events_inside_and_the_hold_benchmark():
    # 6 blocks; the hold token's price 1.0, 1.0, 0.9, 0.8, 0.95, 1.0 -> an episode over blocks 2-4 (worst 3)
    hp = np.array([1.0, 1.0, 0.9, 0.8, 0.95, 1.0])
    m = market(hp, dt=H)
    eps = find_episodes(m, ("stETH",), [Lane("market", 0.0, 86400)], None, T, 0)
    assert [(e.start, e.end, e.worst) for e in eps] == [(2, 4, 3)]
    number_episodes([eps])
    run_idx = np.array([0, 1, 3, 4, 5])     # records: before (1), a sample inside (3), the last block (4)
    rec = np.zeros((1, len(run_idx), N_RECORD))
    eq, eqr, hf = (RECORD_FIELDS.index(k) for k in ("equity", "equity_rate", "hf"))
    rec[0, :, eq] = [100.0, 101.0, 80.0, 90.0, 99.0]
    rec[0, :, eqr] = [100.0, 101.5, 102.0, 102.5, 103.0]
    rec[0, :, hf] = [1.3, 1.3, 1.04, 1.1, 1.2]
    sm = np.zeros(1, dtype=SUMMARY_DTYPE)
    sm["hold_end_equity"] = 50.0            # 50 tokens at the last price 1.0
    sm["min_hf"], sm["min_hf_idx"] = 0.98, 3
    # inside: a liquidation at 3 (seized 10 tokens, repaid 8, penalty 1.0) and a rebalance at 4 (cost 0.2);
    # outside: the open at 0 (cost 0.5)
    ev = _events([(0, "open", 100.0, 50.0, 0.5, 1.3), (3, "liquidation", -10.0, -8.0, 1.0, 1.01),
                  (4, "rebalance", -1.0, -1.0, 0.2, 1.2)])
    loss = (np.array([0.0, 2.0, 0.0]), np.array([0.0, 1.0, 0.0]))
    df = episode_frame(eps, m, T, [7], [0], [100.0], ["WETH"], sm, [ev], [loss], rec, run_idx)
    assert df.schema == EPISODE_SCHEMA
    r = df.row(0, named=True)
    assert (r["start_block"], r["end_block"], r["worst_block"]) == (20_000_002, 20_000_004, 20_000_003)
    assert r["duration_s"] == 2 * H and r["worst_discount"] == pytest.approx(0.2)
    assert not r["at_window_start"] and not r["at_window_end"]
    assert r["start_utc"].timestamp() == r["start_ts"]
    assert r["config_id"] == 7 and r["debt_asset"] == "WETH"
    assert (r["equity_before"], r["equity_after"]) == (101.0, 90.0)
    assert r["episode_pnl"] == pytest.approx(-11.0)
    assert r["episode_return"] == pytest.approx(-11.0 / 101.0)
    assert r["episode_pnl_rate"] == pytest.approx(102.5 - 101.5)
    assert r["episode_min_hf"] == pytest.approx(0.98)          # the run's min (block 3) is inside
    assert r["episode_liq_count"] == 1 and r["episode_liq_debt_repaid"] == pytest.approx(8.0)
    assert r["episode_liq_penalty"] == pytest.approx(1.0)
    assert (r["episode_liq_loss_rate"], r["episode_liq_loss_market"]) == (2.0, 1.0)
    assert r["episode_costs"] == pytest.approx(0.2) and r["episode_events"] == 2
    # the hold benchmark: 50 tokens, 1.0 before (block 1) and 0.95 at the end (block 4)
    assert r["hold_pnl"] == pytest.approx(50 * (0.95 - 1.0))
    assert r["hold_episode_return"] == pytest.approx(-0.05)
    assert r["excess_pnl"] == pytest.approx(-11.0 - 50 * (0.95 - 1.0))


def test_an_episode_from_the_first_block_starts_from_the_capital():
    m = market(np.array([0.9, 0.95, 1.0, 1.0]), dt=H)
    eps = find_episodes(m, ("stETH",), [Lane("market", 0.0, 86400)], None, T, 0)
    number_episodes([eps])
    run_idx = extra_record_indices(eps)
    assert run_idx.tolist() == [0, 1]                   # no block before the first: its first and last block
    rec = np.zeros((1, 2, N_RECORD))
    rec[0, :, RECORD_FIELDS.index("equity")] = [99.0, 97.0]
    rec[0, :, RECORD_FIELDS.index("hf")] = math.inf     # no debt: no health factor
    sm = np.zeros(1, dtype=SUMMARY_DTYPE)
    sm["hold_end_equity"], sm["min_hf_idx"] = 100.0, -1
    df = episode_frame(eps, m, T, [0], [0], [100.0], ["WETH"], sm, [_events([])],
                       [(np.zeros(0), np.zeros(0))], rec, run_idx)
    r = df.row(0, named=True)
    assert r["at_window_start"] and r["equity_before"] == 100.0 and r["episode_pnl"] == pytest.approx(-3.0)
    assert math.isnan(r["episode_min_hf"])
    # the benchmark: 100 tokens (100 / the last price 1.0) from the capital to 0.95 at block 1
    assert r["hold_pnl"] == pytest.approx(100 * 0.95 - 100.0)


def test_oracle_episodes_list_only_their_lanes_configurations():
    n = 4
    m = market(np.full(n, 1.0), dt=H)
    lanes = [Lane("market", 0.0, 86400), Lane("chainlink", 0.0, 86400)]
    por = np.ones((2, 1, n))
    por[1, 0, 2] = 0.9
    eps = find_episodes(m, ("stETH",), lanes, por, T, 0)
    number_episodes([eps])
    run_idx = extra_record_indices(eps)
    sm = np.zeros(2, dtype=SUMMARY_DTYPE)
    sm["hold_end_equity"], sm["min_hf_idx"] = 100.0, -1
    empty = (np.zeros(0), np.zeros(0))
    df = episode_frame(eps, m, T, [0, 1], [0, 1], [100.0, 100.0], ["WETH"] * 2, sm, [_events([])] * 2,
                       [empty, empty], np.ones((2, len(run_idx), N_RECORD)), run_idx)
    assert df["config_id"].to_list() == [1] and df["oracle"].to_list() == ["chainlink"]


def test_episodes_are_recorded_before_at_the_start_and_end_and_at_the_samples_inside():
    m = market(np.array([1.0, 1.0, 0.9, 0.9, 0.9, 1.0, 0.9, 1.0]), dt=H)
    eps = find_episodes(m, ("stETH",), [Lane("market", 0.0, 86400)], None, T, 0)
    assert [(e.start, e.end) for e in eps] == [(2, 4), (6, 6)]
    # the block before each (1, 5), its first (2, 6: the depeg_start event's HF) and its last (4, 6)
    assert extra_record_indices(eps).tolist() == [1, 2, 4, 5, 6]
    # samples: those inside an episode (2, 3, 4, 6) join; 0 is outside
    assert extra_record_indices(eps, np.array([0, 2, 3, 4, 6])).tolist() == [1, 2, 3, 4, 5, 6]


def test_extra_records_leave_the_time_series_bit_identical():
    # the core records at the episodes' blocks too; the samples the time series keeps do not move a bit
    prices = np.concatenate([np.full(300, 1.2), np.linspace(1.2, 1.1, 200), np.full(300, 1.15)])
    m = market(prices, xrate=1.2, dt=12, borrow_apr=0.03, supply_apr=0.01)
    p = params(target_ltv=0.8)
    lanes = [Lane("market", 0.0, 86400, "aave-v3")]
    rec = record_indices(m, 600)
    eps = find_episodes(m, ("wstETH",), lanes, None, T, 0)
    assert eps
    run_idx = np.union1d(rec, extra_record_indices(eps)).astype(np.int64)
    assert len(run_idx) > len(rec)
    a = run_core(m, p, lanes, rec, 300)
    b = run_core(m, p, lanes, run_idx, 300)
    rows = np.searchsorted(run_idx, rec)
    assert a.records.tobytes() == b.records[:, rows].tobytes()
    assert a.summaries.tobytes() == b.summaries.tobytes()
