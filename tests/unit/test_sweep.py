"""Sweeps at scale: executors agree, an interrupted sweep resumes to the same result, results stream."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pytest

import backtest

REPO = Path(__file__).resolve().parents[2]
LOOP = REPO / "examples" / "loop.toml"
GRIDS = {"strategy.target_ltv": [0.6, 0.7, 0.8, 0.9], "strategy.loops": [1, 3, 6, 10]}


@pytest.fixture(autouse=True)
def at_repo_root(monkeypatch):
    monkeypatch.chdir(REPO)


def overrides(tmp_path, days=3):
    # loop.toml replays real history from 2024-05-14: `days` days from 2024-06-01 (a reference sweep is slow)
    return {"run.output": str(tmp_path), "run.start": "2024-06-01", "run.end": f"2024-06-{1 + days:02d}"}


def read_all(root: Path):
    ts = {p.parent.name: pl.read_parquet(p) for p in sorted((root / "timeseries").glob("*/part-0.parquet"))}
    return pl.read_parquet(root / "summary.parquet"), pl.read_parquet(root / "events.parquet"), ts


def test_dask_local_cluster_equals_the_local_executor(tmp_path):
    local = backtest.run(LOOP, overrides=overrides(tmp_path / "local"), grids=GRIDS)
    dask = backtest.run(LOOP, overrides=overrides(tmp_path / "dask"), grids=GRIDS, executor="dask", workers=2)
    assert dask["manifest"]["executor"] == "dask"
    s1, e1, t1 = read_all(local["path"])
    s2, e2, t2 = read_all(dask["path"])
    assert s1.height == 16 and s1.equals(s2)
    assert e1.equals(e2)
    assert t1.keys() == t2.keys() and len(t1) == 16
    assert all(t1[k].equals(t2[k]) for k in t1)


def test_sweep_labels_and_zip(tmp_path):
    res = backtest.run(LOOP, overrides=overrides(tmp_path), grids={"strategy.target_ltv": [0.6, 0.8],
                                                                    "strategy.loops": [2, 4]}, zip_=True)
    s = res["summary"]
    assert s.height == 2
    assert s.select("strategy.target_ltv", "strategy.loops").rows() == [(0.6, 2), (0.8, 4)]


def test_sigkill_then_resume_equals_an_uninterrupted_run(tmp_path):
    out_killed, out_clean = tmp_path / "killed", tmp_path / "clean"
    grids = {"strategy.target_ltv": [0.5, 0.6, 0.7, 0.8, 0.9], "strategy.loops": list(range(1, 9))}
    script = (
        "import backtest, json, sys; "
        f"backtest.run({str(LOOP)!r}, overrides={json.dumps(overrides(out_killed, 1))}, "
        f"grids={json.dumps(grids)}, engine='reference', batch_size=1)"
    )
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=REPO)
    work = out_killed / ".wsteth-aave-emode-loop.work"
    deadline = time.time() + 120
    while time.time() < deadline:
        if len(list((work / "summary").glob("part-*.parquet"))) >= 5 if (work / "summary").exists() else False:
            break
        if proc.poll() is not None:
            pytest.fail("the sweep finished before it could be killed")
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (out_killed / "wsteth-aave-emode-loop").exists()          # nothing published half way
    for part in work.rglob("*.parquet"):                                  # every file left behind is whole
        pl.read_parquet(part)
    n_done = len(list((work / "summary").glob("part-*.parquet")))
    assert 5 <= n_done < 40

    resumed = backtest.run(LOOP, overrides=overrides(out_killed, 1), grids=grids, engine="reference", resume=True)
    assert resumed["manifest"]["resumed_configs"] >= n_done
    assert resumed["manifest"]["computed_configs"] == 40 - resumed["manifest"]["resumed_configs"]
    clean = backtest.run(LOOP, overrides=overrides(out_clean, 1), grids=grids, engine="reference")
    s1, e1, t1 = read_all(resumed["path"])
    s2, e2, t2 = read_all(clean["path"])
    assert s1.height == 40 and s1.equals(s2) and e1.equals(e2)
    assert t1.keys() == t2.keys() and all(t1[k].equals(t2[k]) for k in t1)
    assert not work.exists()


def test_resume_after_a_change_starts_afresh(tmp_path):
    backtest.run(LOOP, overrides=overrides(tmp_path), grids={"strategy.loops": [1, 2]})
    # a leftover work folder of another sweep is not reused
    work = tmp_path / ".wsteth-aave-emode-loop.work"
    (work / "summary").mkdir(parents=True)
    (work / "state.json").write_text('{"sweep_hash": "something else"}')
    res = backtest.run(LOOP, overrides=overrides(tmp_path), grids={"strategy.loops": [1, 2, 3]}, resume=True,
                       force=True)   # another configuration's result set is replaced only with force
    assert res["manifest"]["resumed_configs"] == 0 and res["summary"].height == 3


def test_summary_only_sweep_writes_no_timeseries(tmp_path):
    res = backtest.run(LOOP, overrides={**overrides(tmp_path), "run.record": "none"}, grids=GRIDS)
    assert res["summary"].height == 16
    assert not (res["path"] / "timeseries").exists()


def test_a_second_writer_of_the_same_result_set_is_refused(tmp_path):
    from backtest.errors import InputError
    from backtest.store import Store

    first = Store(tmp_path / "x", ["h"], force=False)
    with pytest.raises(InputError, match="another process"):
        Store(tmp_path / "x", ["h"], force=False)
    first.release()
    Store(tmp_path / "x", ["h"], force=False).release()


LTVS = [0.80, 0.85, 0.88, 0.90, 0.92]


def test_a_constant_sweep_aligns_once_and_equals_single_runs(tmp_path, monkeypatch):
    # market.ltv only sets a constant array: one DuckDB join for the five values (backtest.plan.Markets)
    from backtest.data.asof import Aligner

    joins = []
    real = Aligner.join
    monkeypatch.setattr(Aligner, "join", lambda self: joins.append(1) or real(self))
    ov = {**overrides(tmp_path / "sweep"), "strategy.target_ltv": 0.75}
    swept = backtest.run(LOOP, overrides=ov, grids={"market.ltv": LTVS, "strategy.loops": [3, 6]})
    assert len(joins) == 1
    s, e, t = read_all(swept["path"])
    assert s.height == 10
    for i, ltv in enumerate(LTVS):
        for j, loops in enumerate((3, 6)):
            one = backtest.run(LOOP, overrides={**overrides(tmp_path / f"one-{i}-{j}"), "strategy.target_ltv": 0.75,
                                                "market.ltv": ltv, "strategy.loops": loops})
            s1, e1, t1 = read_all(one["path"])
            cid = swept["manifest"]["points"][[p["labels"] for p in swept["manifest"]["points"]].index(
                {"market.ltv": ltv, "strategy.loops": loops})]["config_id"]
            row = s.filter(pl.col("config_id") == cid)
            cols = [c for c in s1.columns if c != "config_id" and c in row.columns]
            assert row.select(cols).equals(s1.select(cols)), (ltv, loops)
            assert e.filter(pl.col("config_id") == cid).drop("config_id").equals(e1.drop("config_id"))
            assert t[f"config_id={cid}"].drop("config_id", strict=False).equals(
                t1["config_id=0"].drop("config_id", strict=False))
    assert len(joins) == 1 + 10                       # each single run joins once


def test_a_dask_task_returns_its_time_series_and_writes_nothing(tmp_path):
    # a worker on another machine cannot reach the driver's work folder: the task returns everything
    from backtest.config import expand_sweep, load_config
    from backtest.engine import encode_params, lane_of
    from backtest.plan import market_for
    from backtest.sweep import Group, _dask_batch, prepare

    cfg = load_config(LOOP, overrides(tmp_path))
    points = expand_sweep(cfg, {"strategy.loops": [1, 3]}, False)
    prep = prepare(Group([0, 1], points[0][1]), points, market_for)
    before = sorted(p.name for p in tmp_path.rglob("*")) + sorted(p.name for p in REPO.rglob(".*.work"))
    payload = {"market": prep.market, "lanes": prep.lanes, "rec_idx": prep.rec_idx,
               "metric_every": prep.metric_every, "key": "t"}
    ids, summaries, events, records = _dask_batch(payload, encode_params([c for _, c in points], prep.lanes),
                                                  [0, 1], False)
    assert ids == [0, 1] and len(summaries) == 2 and len(events) == 2
    assert records.shape[:2] == (2, len(prep.rec_idx)) and len(prep.rec_idx) > 0
    assert sorted(p.name for p in tmp_path.rglob("*")) + sorted(p.name for p in REPO.rglob(".*.work")) == before
    assert lane_of(points[0][1]) in prep.lanes
