"""episodes.parquet and the new columns in a written result set (the 2022-style stETH de-peg example on the
bundled lake), the [episodes] keys, and that a re-run gives the same bytes."""
from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

import backtest
from backtest.config import config_hash, load_config
from backtest.episodes import EPISODE_SCHEMA
from backtest.errors import ConfigError
from tests.synth_lake import synth_lake

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "steth-2022-v2.toml"     # on the synthetic stETH de-peg lake


def _run(out: Path, **extra):
    ov = {"run.output": str(out), "run.data": str(synth_lake()), **extra}
    return backtest.run(EXAMPLE, overrides=ov)


@pytest.fixture(scope="module")
def result(tmp_path_factory):
    return _run(tmp_path_factory.mktemp("ep"), **{"episodes.threshold": 0.01, "episodes.merge_gap": "6h"})


def test_episodes_parquet_has_one_row_per_episode_and_configuration(result):
    path = Path(result["path"])
    ep = pl.read_parquet(path / "episodes.parquet")
    assert dict(ep.schema) == EPISODE_SCHEMA
    n_cfg = result["summary"].height
    n_ep = ep["episode_id"].n_unique()
    assert n_ep >= 1 and ep.height == n_ep * n_cfg            # market episodes: every configuration
    assert (ep["worst_discount"] > 0.01).all() and (ep["threshold"] == 0.01).all()
    assert (ep["end_ts"] >= ep["start_ts"]).all()
    assert (ep["episode_pnl"] - (ep["equity_after"] - ep["equity_before"])).abs().max() == 0.0
    # the same episode, the same market: the hold benchmark is one figure per capital and entry
    assert ep.group_by("episode_id").agg(pl.col("hold_pnl").n_unique())["hold_pnl"].max() == 1


@pytest.fixture(scope="module")
def every_block(tmp_path_factory):
    """Six days of the June 2022 de-peg recorded at every block: one episode from the first to the last block."""
    return _run(tmp_path_factory.mktemp("ep-block"), **{"run.start": "2022-06-10", "run.end": "2022-06-16",
                                                          "run.record": "block", "episodes.threshold": 0.03})


def test_an_episode_over_the_whole_window_agrees_with_every_block(every_block):
    path = Path(every_block["path"])
    ep = pl.read_parquet(path / "episodes.parquet")
    s = every_block["summary"]
    assert ep["episode_id"].n_unique() == 1 and ep.height == s.height
    r = ep.row(0, named=True)
    assert r["at_window_start"] and r["at_window_end"]
    for row in ep.iter_rows(named=True):
        cid = row["config_id"]
        ts = pl.read_parquet(path / "timeseries" / f"config_id={cid}" / "part-0.parquet")
        sm = s.filter(pl.col("config_id") == cid).row(0, named=True)
        # from the capital (it starts at the first block) to the equity of the last block, as recorded
        assert row["equity_before"] == sm["capital"]
        assert row["equity_after"] == ts["equity"][-1] == sm["end_equity"]
        # every block is inside: the episode's lowest HF is the run's, and its worst discount the series'
        assert row["episode_min_hf"] == sm["min_hf"] == ts["hf"].min()
        assert row["worst_discount"] == (1 - ts["market_price"] / ts["exchange_rate"]).max()
        assert row["hold_pnl"] == pytest.approx(sm["hold_end_equity"] - sm["capital"], rel=1e-12)


def test_episodes_do_not_depend_on_the_time_series_sampling(result, tmp_path):
    # with no time series the core still records hourly inside the episodes: the same rows, lowest HF included
    none = _run(tmp_path, **{"episodes.threshold": 0.01, "episodes.merge_gap": "6h", "run.record": "none"})
    assert not (Path(none["path"]) / "timeseries").exists()
    assert none["episodes"].equals(result["episodes"])


def test_the_discount_is_the_lake_price_against_the_rate(result):
    # the worst discount, recomputed from the time series (hourly) cannot be deeper than the per-block one
    path = Path(result["path"])
    ep = pl.read_parquet(path / "episodes.parquet").filter(pl.col("config_id") == 0)
    ts = pl.read_parquet(path / "timeseries" / "config_id=0" / "part-0.parquet")
    for r in ep.iter_rows(named=True):
        inside = ts.filter((pl.col("block") >= r["start_block"]) & (pl.col("block") <= r["end_block"]))
        d = (1 - inside["market_price"] / inside["exchange_rate"]).max()
        assert d <= r["worst_discount"] + 1e-15


def test_new_columns_and_their_dictionary(result):
    path = Path(result["path"])
    m = json.loads((path / "manifest.json").read_text())
    cols = m["columns"]
    for table in ("summary", "events", "timeseries", "episodes"):
        unknown = [c["name"] for c in cols[table] if c["unit"] == "unknown"]
        assert not unknown, (table, unknown)
    assert [c["name"] for c in cols["episodes"]] == list(EPISODE_SCHEMA)
    ev = pl.read_parquet(path / "events.parquet")
    assert ev.schema["time_utc"] == pl.Datetime("us", "UTC")
    assert (ev["time_utc"].dt.epoch("s") == ev["ts"]).all()
    ts = pl.read_parquet(path / "timeseries" / "config_id=3" / "part-0.parquet")
    assert (ts["config_id"] == 3).all() and (ts["time_utc"].dt.epoch("s") == ts["ts"]).all()
    s = result["summary"]
    for c in ("liq_loss_rate", "liq_loss_market", "window_return", "hold_apy_rate", "excess_apy_rate"):
        assert c in s.columns
    assert ((s["window_return"] - (s["end_equity"] / s["capital"] - 1)).abs() < 1e-15).all()
    assert m["config"]["episodes"] == {"threshold": 0.01, "merge_gap": 21600}


def test_a_rerun_gives_the_same_bytes(result, tmp_path):
    again = Path(_run(tmp_path, **{"episodes.threshold": 0.01, "episodes.merge_gap": "6h"})["path"])
    path = Path(result["path"])
    for name in ("episodes.parquet", "summary.parquet", "events.parquet", "timeseries/config_id=2/part-0.parquet"):
        assert (again / name).read_bytes() == (path / name).read_bytes(), name


def test_the_episodes_keys_read_results_and_do_not_change_the_config_hash():
    a = load_config(EXAMPLE)
    b = load_config(EXAMPLE, {"episodes.threshold": 0.02})
    assert b.episodes.threshold == 0.02 and a.episodes.threshold == 0.005 and a.episodes.merge_gap == 86400
    assert config_hash(a) == config_hash(b)
    with pytest.raises(ConfigError, match="episodes.threshold"):
        load_config(EXAMPLE, {"episodes.threshold": 1.5})
    with pytest.raises(ConfigError, match="cannot be swept"):
        backtest.run(EXAMPLE, grids={"episodes.threshold": [0.01, 0.02]}, write=False)


def test_a_stricter_threshold_finds_fewer_or_shallower_episodes(tmp_path):
    res = _run(tmp_path, **{"episodes.threshold": 0.9})
    ep = pl.read_parquet(Path(res["path"]) / "episodes.parquet")
    assert ep.height == 0 and dict(ep.schema) == EPISODE_SCHEMA


class Stop(Exception):
    pass


def test_an_interrupted_sweep_resumes_to_the_same_episodes(tmp_path):
    ov = {"episodes.threshold": 0.01, "episodes.merge_gap": "6h"}
    whole = _run(tmp_path / "whole", **ov)

    def stop_after_the_first_batch(configs, blocks):
        raise Stop

    with pytest.raises(Stop):
        backtest.run(EXAMPLE, overrides={"run.output": str(tmp_path / "cut"), "run.data": str(synth_lake()), **ov},
                     batch_size=4, progress=stop_after_the_first_batch)
    resumed = backtest.run(EXAMPLE, overrides={"run.output": str(tmp_path / "cut"), "run.data": str(synth_lake()),
                                               **ov}, batch_size=4, resume=True)
    assert resumed["manifest"]["resumed_configs"] == 4
    a, b = Path(whole["path"]) / "episodes.parquet", Path(resumed["path"]) / "episodes.parquet"
    assert a.read_bytes() == b.read_bytes()
    # another threshold is another set of episodes: a resume starts afresh
    with pytest.raises(Stop):
        backtest.run(EXAMPLE, overrides={"run.output": str(tmp_path / "cut2"), "run.data": str(synth_lake()), **ov},
                     batch_size=4, progress=stop_after_the_first_batch)
    other = backtest.run(EXAMPLE, overrides={"run.output": str(tmp_path / "cut2"), "run.data": str(synth_lake()),
                                             **ov, "episodes.threshold": 0.02}, batch_size=4, resume=True)
    assert other["manifest"]["resumed_configs"] == 0
    assert (other["episodes"]["threshold"] == 0.02).all()
