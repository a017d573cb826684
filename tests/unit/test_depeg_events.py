"""The depeg_start / depeg_end rows of events.parquet on hand-made series (backtest.episodes.depeg_event_frame,
backtest.results.with_depeg_events): at which blocks, with which amounts, for which configurations, in which
order among the position's events. Every expected number is worked out here from the series written in the
test; the kinds' codes are the schema's (Python only: the kernel never emits them)."""
from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest

from backtest import _core
from backtest.engine import Lane
from backtest.episodes import DEPEG_EVENT_SCHEMA, depeg_event_frame, extra_record_indices, find_episodes, \
    number_episodes
from backtest.results import with_depeg_events
from backtest.schema import DERIVED_EVENT_KINDS, EVENT_KINDS, EVENT_NAMES, KERNEL_EVENT_KINDS, N_RECORD, \
    RECORD_FIELDS
from tests.helpers import market

H = 3600
T0 = 1_700_000_000                      # tests.helpers.market's first block time
B0 = 20_000_000                         # and its first block number
T = 0.005
HF = RECORD_FIELDS.index("hf")
MARKET_LANE = [Lane("market", 0.0, 86400)]


def _frame(prices, cids=(3, 7), gap=0, hf=None, **kw):
    """The depeg rows of configurations cids on the market `prices` (hourly blocks); records: HF = hf[config]
    + block index / 100 at every recorded block."""
    m = market(np.asarray(prices, dtype=float), dt=H, **kw)
    eps = find_episodes(m, ("stETH",), MARKET_LANE, None, T, gap)
    number_episodes([eps])
    run_idx = extra_record_indices(eps)
    base = np.asarray(hf if hf is not None else [1.5, 1.2][: len(cids)], dtype=float)
    rec = np.zeros((len(cids), len(run_idx), N_RECORD))
    rec[:, :, HF] = base[:, None] + run_idx[None, :] / 100.0
    return eps, depeg_event_frame(eps, m, list(cids), [0] * len(cids), rec, run_idx)


def test_the_new_kinds_follow_the_kernels_codes_which_stay_unchanged():
    assert DERIVED_EVENT_KINDS == {"depeg_start": 10, "depeg_end": 11}
    assert EVENT_KINDS == {**KERNEL_EVENT_KINDS, **DERIVED_EVENT_KINDS}
    assert _core.enum_codes()["event"] == KERNEL_EVENT_KINDS          # the kernel knows only what it emits
    assert sorted(EVENT_KINDS.values()) == list(range(len(EVENT_KINDS)))
    assert EVENT_NAMES[10] == "depeg_start" and EVENT_NAMES[11] == "depeg_end"


def test_an_episode_gives_every_configuration_a_start_and_an_end_row():
    # prices 1.0, 1.0, 0.9, 0.8, 0.95, 1.0: discounts 0, 0, 0.1, 0.2, 0.05, 0 -> one episode over blocks 2-4,
    # deepest at 3 (0.2); the window's last block (5) is outside it, so the episode ended
    eps, df = _frame([1.0, 1.0, 0.9, 0.8, 0.95, 1.0])
    assert [(e.start, e.end, e.worst) for e in eps] == [(2, 4, 3)]
    assert df.columns == ["config_id", "block", "ts", "kind", "collateral_change", "debt_change", "cost",
                          "hf_after", "time_utc", *DEPEG_EVENT_SCHEMA]
    assert df["config_id"].to_list() == [3, 3, 7, 7]
    assert df["kind"].to_list() == ["depeg_start", "depeg_end"] * 2
    assert df["block"].to_list() == [B0 + 2, B0 + 4] * 2
    assert df["ts"].to_list() == [T0 + 2 * H, T0 + 4 * H] * 2
    assert [t.timestamp() for t in df["time_utc"]] == [T0 + 2 * H, T0 + 4 * H] * 2
    # no collateral or debt moves and nothing is paid
    assert (df["collateral_change"] == 0.0).all() and (df["debt_change"] == 0.0).all() and (df["cost"] == 0.0).all()
    # the health factor recorded at the block: 1.5 + 2/100, 1.5 + 4/100 (config 3); 1.2 + ... (config 7)
    assert df["hf_after"].to_list() == [1.5 + 0.02, 1.5 + 0.04, 1.2 + 0.02, 1.2 + 0.04]
    # the discount at the block, 1 - price / (rate 1.0 x underlying 1.0); the worst only on the end row
    assert df["discount"].to_list() == [1.0 - 0.9, 1.0 - 0.95] * 2
    assert df["worst_discount"].to_list() == [None, 1.0 - 0.8] * 2
    assert df["episode_id"].to_list() == [0, 0, 0, 0]


def test_the_discount_reads_the_rate_and_the_underlying():
    # a USDC debt: ETH at 2000 USDC, rate 1.1 -> fair 2200 USDC; 2178 is 1 % below it, 2156 is 2 %
    eps, df = _frame([2200.0, 2178.0, 2156.0, 2200.0], cids=(0,), xrate=1.1, underlying_price=2000.0)
    assert df["discount"].to_list() == [pytest.approx(0.01, abs=1e-15), pytest.approx(0.02, abs=1e-15)]
    assert df["discount"][0] == 1.0 - 2178.0 / (1.1 * 2000.0)
    assert df["worst_discount"][1] == eps[0].worst_discount == 1.0 - 2156.0 / (1.1 * 2000.0)


def test_an_episode_still_on_at_the_last_block_has_no_end_row():
    # on from block 2 to the window's last block (3): a depeg_end there would claim a recovery never seen
    _, df = _frame([1.0, 1.0, 0.9, 0.9], cids=(0,))
    assert df["kind"].to_list() == ["depeg_start"] and df["block"].to_list() == [B0 + 2]


def test_an_episode_on_at_the_first_block_starts_there():
    _, df = _frame([0.9, 0.95, 1.0, 1.0], cids=(0,))
    assert df["kind"].to_list() == ["depeg_start", "depeg_end"] and df["block"].to_list() == [B0, B0 + 1]
    assert df["hf_after"].to_list() == [1.5, 1.5 + 0.01]


def test_a_one_block_episode_starts_before_it_ends():
    _, df = _frame([1.0, 0.9, 1.0, 1.0], cids=(0,))
    assert df["kind"].to_list() == ["depeg_start", "depeg_end"] and df["block"].to_list() == [B0 + 1] * 2
    assert df["worst_discount"].to_list() == [None, 1.0 - 0.9]


def test_the_merge_gap_decides_one_episode_or_two():
    # stretches [1, 2] and [5, 5]: 3 h apart (ts[5] - ts[2])
    prices = [1.0, 0.98, 0.99, 1.0, 1.0, 0.97, 1.0, 1.0]
    _, one = _frame(prices, cids=(0,), gap=3 * H + 1)
    assert one["kind"].to_list() == ["depeg_start", "depeg_end"]
    assert one["block"].to_list() == [B0 + 1, B0 + 5] and one["episode_id"].to_list() == [0, 0]
    assert one["worst_discount"][1] == 1.0 - 0.97
    _, two = _frame(prices, cids=(0,), gap=3 * H)             # "closer than" the gap: 3 h is not
    assert two["kind"].to_list() == ["depeg_start", "depeg_end"] * 2
    assert two["block"].to_list() == [B0 + 1, B0 + 2, B0 + 5, B0 + 5]
    assert two["episode_id"].to_list() == [0, 0, 1, 1]
    assert two["worst_discount"].to_list() == [None, 1.0 - 0.98, None, 1.0 - 0.97]


def test_no_episode_no_rows():
    eps, df = _frame([1.0, 0.996, 1.0, 1.0])                 # a 0.4 % discount is not more than 0.5 %
    assert eps == [] and df.height == 0
    assert df.schema["episode_id"] == pl.Int64 and df.schema["kind"] == pl.Utf8


def test_an_oracle_episode_gives_rows_to_its_lanes_configurations_only():
    # the DEX price stays at the rate; the chainlink lane's oracle price is 2 % below it at blocks 2-3
    n = 6
    m = market(np.full(n, 1.2), xrate=1.2, dt=H)
    lanes = [Lane("market", 0.0, 86400), Lane("chainlink", 0.0, 86400)]
    por = np.full((2, 1, n), 1.2)
    por[1, 0, 2:4] = 1.2 * 0.98
    eps = find_episodes(m, ("wstETH",), lanes, por, T, 0)
    number_episodes([eps])
    run_idx = extra_record_indices(eps)
    rec = np.ones((3, len(run_idx), N_RECORD))
    df = depeg_event_frame(eps, m, [0, 1, 2], [0, 1, 1], rec, run_idx, por)
    assert df["config_id"].to_list() == [1, 1, 2, 2]
    assert df["discount"].to_list() == [pytest.approx(0.02, abs=1e-15)] * 4
    assert df["discount"][0] == 1.0 - (1.2 * 0.98) / 1.2


def test_a_block_not_recorded_is_refused():
    m = market(np.array([1.0, 0.9, 1.0]), dt=H)
    eps = find_episodes(m, ("stETH",), MARKET_LANE, None, T, 0)
    with pytest.raises(ValueError, match="not recorded"):
        depeg_event_frame(eps, m, [0], [0], np.ones((1, 1, N_RECORD)), np.array([2]))


def test_depeg_rows_come_after_the_position_events_of_their_block_which_keep_their_order():
    events = pl.DataFrame({
        "config_id": [3, 3, 3, 3, 7], "block": [B0, B0, B0 + 2, B0 + 4, B0],
        "ts": [T0, T0, T0 + 2 * H, T0 + 4 * H, T0],
        "kind": ["open", "loop", "liquidation", "rebalance", "open"],
        "collateral_change": [100.0, 50.0, -10.0, -1.0, 100.0], "debt_change": [0.0, 45.0, -8.0, -1.0, 0.0],
        "cost": [0.5, 0.1, 1.0, 0.2, 0.5], "hf_after": [math.inf, 1.3, 1.01, 1.2, math.inf],
    }).with_columns(pl.from_epoch("ts").dt.replace_time_zone("UTC").dt.cast_time_unit("us").alias("time_utc"),
                    *[pl.lit(None, t).alias(c) for c, t in DEPEG_EVENT_SCHEMA.items()])
    _, depeg = _frame([1.0, 1.0, 0.9, 0.8, 0.95, 1.0])
    both = with_depeg_events(events, depeg)
    assert both.schema == events.schema
    assert list(zip(both["config_id"], both["block"] - B0, both["kind"])) == [
        (3, 0, "open"), (3, 0, "loop"), (3, 2, "liquidation"), (3, 2, "depeg_start"), (3, 4, "rebalance"),
        (3, 4, "depeg_end"), (7, 0, "open"), (7, 2, "depeg_start"), (7, 4, "depeg_end")]
    # the position's rows are the events table's, bit for bit and in its order
    assert both.filter(pl.col("episode_id").is_null()).equals(events)
    assert with_depeg_events(events, depeg.clear()) is events
