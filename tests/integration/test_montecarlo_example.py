"""The Monte Carlo example (examples/stress/mc-steth-2022-ltv.toml): 200 paths x 50 configurations through the
CLI, as README shows it; the worst path replayed alone gives its row again, and the statistics hold together."""
from __future__ import annotations

import polars as pl
from click.testing import CliRunner

from backtest.cli import cli
from tests.pins import REPO

EXAMPLE = REPO / "examples" / "stress" / "mc-steth-2022-ltv.toml"


def test_the_200_by_50_example(tmp_path):
    sets = ["--set", f"run.data={REPO / 'data'}", "--set", f"run.output={tmp_path}"]
    r = CliRunner().invoke(cli, ["sweep", str(EXAMPLE), "--paths", "200", "--seed", "7", "--quiet", *sets])
    assert r.exit_code == 0, r.output
    out = tmp_path / "mc-steth-2022-ltv"
    s = pl.read_parquet(out / "summary.parquet")
    pairs = pl.read_parquet(out / "paths.parquet")
    assert s.height == 50 and set(s["n_paths"]) == {200} and pairs.height == 10_000
    assert (s["cvar95"] >= s["var95"]).all() and (s["net_apy_p5"] <= s["net_apy_p50"]).all()
    assert (s["net_apy_p50"] <= s["net_apy_p95"]).all()
    # the most leveraged configuration is liquidated on some paths, the least on none
    top = s.filter((pl.col("strategy.target_ltv") == s["strategy.target_ltv"].max()) & (pl.col("strategy.loops") == 10))
    low = s.filter((pl.col("strategy.target_ltv") == s["strategy.target_ltv"].min()) & (pl.col("strategy.loops") == 2))
    assert top["liq_probability"][0] > 0 and low["liq_probability"][0] == 0
    # the worst path of the last configuration, alone: the same ending equity
    cid, worst = int(top["config_id"][0]), int(top["worst_path"][0])
    alone_dir = tmp_path / "alone"
    r = CliRunner().invoke(cli, ["sweep", str(EXAMPLE), "--paths", "200", "--seed", "7", "--path", str(worst),
                                 "--quiet", "--set", f"run.data={REPO / 'data'}", "--set", f"run.output={alone_dir}"])
    assert r.exit_code == 0, r.output
    alone = pl.read_parquet(alone_dir / "mc-steth-2022-ltv" / "paths.parquet")
    assert alone["path"].unique().to_list() == [worst]
    assert alone.filter(pl.col("config_id") == cid)["end_equity"][0] == top["worst_end_equity"][0]
