"""Sweeping strategy.restake (and strategy.rewards.*): each held token is its own market group (its price,
exchange rate, venue parameters, slashes, rewards), and every point equals the single run of its values."""
from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

import backtest
from backtest.config import config_from_dict
from backtest.config.sweep import expand_sweep
from backtest.errors import ConfigError
from backtest.report import figures_series, load
from backtest.sweep import group_points
from tests.synth_lake import synth_lake

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "restake-weeth.toml"
# the synthetic slash of 2025-02-10 and EIGEN rewards (from 2024-10-01) inside two months
WINDOW = {"run.start": "2025-01-15", "run.end": "2025-03-01"}
WITH_WITHOUT = {"strategy.restake": ["none", "weETH"], "strategy.rewards.value": ["zero", "token"]}


def ov(out: Path, **more) -> dict:
    return {"run.output": str(out), "run.data": str(synth_lake()), **WINDOW, **more}


def without_sweep(tmp_path: Path) -> Path:
    """examples/restake-weeth.toml without its [sweep] of target LTVs."""
    text = EXAMPLE.read_text()
    p = tmp_path / "restake.toml"
    p.write_text(text[:text.index("[sweep]")])
    return p


def test_a_two_point_restake_sweep_equals_the_two_single_runs(tmp_path):
    config = without_sweep(tmp_path)
    swept = backtest.run(config, overrides=ov(tmp_path / "sweep"), grids=WITH_WITHOUT, zip_=True)
    s = swept["summary"].sort("config_id")
    assert s.height == 2
    for point in swept["manifest"]["points"]:
        labels = point["labels"]
        name = f"one-{labels['strategy.restake']}"
        one = backtest.run(config, overrides=ov(tmp_path / name, **{"run.name": name, **labels}))
        s1 = one["summary"]
        assert s1.height == 1
        row = s.filter(pl.col("config_id") == point["config_id"])
        cols = [c for c in s1.columns if c != "config_id" and c in row.columns]
        assert row.select(cols).equals(s1.select(cols)), labels
        e = swept["events"].filter(pl.col("config_id") == point["config_id"]).drop("config_id")
        assert e.equals(one["events"].drop("config_id"))
    restaked = s.filter(pl.col("strategy.restake") == "weETH")
    plain = s.filter(pl.col("strategy.restake") == "none")
    # with restaking: EIGEN rewards and the weETH slash; without: neither; the hold benchmark is wstETH in both
    assert restaked["restaking_rewards"][0] > 0 and plain["restaking_rewards"][0] == 0
    kinds = swept["events"].group_by("config_id").agg(pl.col("kind"))
    slashed = {r["config_id"] for r in kinds.iter_rows(named=True) if "slash" in r["kind"]}
    assert slashed == {restaked["config_id"][0]}
    assert restaked["hold_apy"][0] == plain["hold_apy"][0]
    # the report draws the hold benchmark along the held token's price only where it is the base LST
    rs = load(swept["path"])
    assert "hold benchmark not drawn" in figures_series.equity(rs, [restaked["config_id"][0]])[1]
    assert figures_series.equity(rs, [plain["config_id"][0]])[1] == ""


def test_restake_values_are_grouped_apart_and_other_keys_share_a_group():
    d = {"run": {"name": "t", "start": "2025-01-15", "end": "2025-03-01", "data": str(synth_lake())},
         "market": {"protocol": "aave-v3", "collateral": "wstETH", "emode": "eth-correlated"},
         "strategy": {"kind": "loop", "target_ltv": 0.8, "loops": 3},
         "costs": {"gas": 10.0},
         "sweep": {"strategy.restake": ["none", "weETH", "ezETH"], "strategy.target_ltv": [0.8, 0.85]}}
    points = expand_sweep(config_from_dict(d))
    groups = group_points(points, list(range(len(points))))
    # three held tokens, each with both target LTVs
    assert [[points[i][0]["strategy.restake"] for i in g.ids] for g in groups] == \
        [["none", "none"], ["weETH", "weETH"], ["ezETH", "ezETH"]]
    # the reward valuation shapes the reward series: its own group too
    d["sweep"] = {"strategy.rewards.value": ["zero", "points"], "strategy.target_ltv": [0.8, 0.85]}
    d["strategy"].update(restake="weETH", rewards={"price_per_point": 1e-4})
    points = expand_sweep(config_from_dict(d))
    assert len(group_points(points, list(range(len(points))))) == 2


def test_a_restake_point_that_breaks_a_rule_is_refused_naming_it():
    d = {"run": {"name": "t", "start": "2025-01-15", "end": "2025-03-01", "data": str(synth_lake())},
         "market": {"protocol": "aave-v3", "collateral": "wstETH"},
         "strategy": {"kind": "loop", "target_ltv": 0.8, "loops": 3}, "costs": {"gas": 10.0},
         "sweep": {"strategy.restake": ["weETH", "wstETH"]}}
    with pytest.raises(ConfigError, match="strategy.restake.*must differ from market.collateral"):
        expand_sweep(config_from_dict(d))        # every point is validated when the sweep is expanded
    d["sweep"] = {"run.sources": [["coingecko"]]}
    with pytest.raises(ConfigError, match="run.sources selects how the lake is read .* cannot be swept"):
        config_from_dict(d)
