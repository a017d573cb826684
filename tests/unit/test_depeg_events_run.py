"""depeg_start / depeg_end rows in a written result set: a wstETH loop on the bundled lake's calm 1-2 June 2024
(its DEX price stays within 0.05 % of the exchange rate) with step de-pegs laid on by [[scenario]], recorded at
every block, so each row can be checked against the time series and episodes.parquet. A run, a sweep, the
merge gap, an episode still on at the end, a run without episodes, a re-run's bytes and `backtest show`."""
from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import polars as pl
import pytest
from click.testing import CliRunner

import backtest
from backtest.cli import cli

REPO = Path(__file__).resolve().parents[2]
DEPEG = ("depeg_start", "depeg_end")

BASE = f"""[run]
name = "depeg-events"
start = "2024-06-01"
end = "2024-06-02"
data = "{REPO / 'data'}"
record = "block"

[market]
protocol = "aave-v3"
collateral = "wstETH"
debt = "WETH"
emode = "eth-correlated"
oracle = "market"

[strategy]
kind = "loop"
capital = 100.0
target_ltv = 0.8
loops = 5

[episodes]
merge_gap = "{{gap}}"
"""

STEP = """
[[scenario]]
kind = "depeg"
asset = "wstETH"
at = "{at}"
depth = 0.05
duration = "{duration}"
shape = "step"
"""


def _ts(text: str) -> int:
    return int(dt.datetime.fromisoformat(text).replace(tzinfo=dt.timezone.utc).timestamp())


def _run(tmp: Path, steps=(), gap="1h", grids=None, name="run"):
    text = BASE.format(gap=gap) + "".join(STEP.format(at=a, duration=d) for a, d in steps)
    cfg = tmp / f"{name}.toml"
    cfg.write_text(text)
    return backtest.run(cfg, overrides={"run.output": str(tmp / "out"), "run.name": name}, grids=grids)


def _series(res, cid=0) -> pl.DataFrame:
    return pl.read_parquet(Path(res["path"]) / "timeseries" / f"config_id={cid}" / "part-0.parquet")


def _depeg(res) -> pl.DataFrame:
    return pl.read_parquet(Path(res["path"]) / "events.parquet").filter(pl.col("kind").is_in(DEPEG))


# two 5 % step de-pegs, 06:00-08:00 and 09:00-10:00: 1 h apart
TWO = (("2024-06-01T06:00:00Z", "2h"), ("2024-06-01T09:00:00Z", "1h"))


@pytest.fixture(scope="module")
def merged(tmp_path_factory):
    """The two steps with a 2 h merge gap: one episode, 06:00 to 10:00."""
    return _run(tmp_path_factory.mktemp("merged"), TWO, gap="2h")


def test_one_episode_one_start_and_one_end_row_at_its_blocks(merged):
    ev, ts = _depeg(merged), _series(merged)
    assert ev["kind"].to_list() == ["depeg_start", "depeg_end"]
    # the step is on for t in [at, at + duration): the first block at or after 06:00, the last before 10:00
    first = ts.filter(pl.col("ts") >= _ts("2024-06-01T06:00:00")).row(0, named=True)
    last = ts.filter(pl.col("ts") < _ts("2024-06-01T10:00:00")).row(-1, named=True)
    assert ev["block"].to_list() == [first["block"], last["block"]]
    assert ev["ts"].to_list() == [first["ts"], last["ts"]]
    assert [t.timestamp() for t in ev["time_utc"]] == ev["ts"].to_list()
    # the episode's price is the DEX price: discount = 1 - market price / exchange rate (a WETH debt: the
    # underlying is 1), 5 % of the price on top of a calm discount below 0.05 %
    want = [1.0 - r["market_price"] / r["exchange_rate"] for r in (first, last)]
    assert ev["discount"].to_list() == want
    assert all(0.05 <= d < 0.05 + 0.95 * 0.0005 for d in want)
    # the health factor at the block, as recorded; no collateral, debt or cost moves
    assert ev["hf_after"].to_list() == [first["hf"], last["hf"]]
    assert ev.select("collateral_change", "debt_change", "cost").sum().row(0) == (0.0, 0.0, 0.0)
    ep = merged["episodes"].row(0, named=True)
    assert merged["episodes"].height == 1
    assert ev["worst_discount"].to_list() == [None, ep["worst_discount"]]
    assert ev["episode_id"].to_list() == [ep["episode_id"]] * 2
    assert (ep["start_block"], ep["end_block"]) == (first["block"], last["block"])
    # the worst is the deepest discount of the recorded blocks inside
    inside = ts.filter(pl.col("ts").is_between(first["ts"], last["ts"]))
    assert ep["worst_discount"] == (1.0 - inside["market_price"] / inside["exchange_rate"]).max()


def test_the_position_events_keep_their_rows_and_the_depeg_rows_follow_them(merged):
    ev = pl.read_parquet(Path(merged["path"]) / "events.parquet")
    assert ev.columns[-3:] == ["episode_id", "discount", "worst_discount"]
    own = ev.filter(~pl.col("kind").is_in(DEPEG))
    assert own["episode_id"].null_count() == own.height and own["discount"].null_count() == own.height
    assert own.height == merged["summary"]["n_events"][0]
    # sorted by config_id and block; at one block the position's events come first
    assert ev.select("config_id", "block").equals(ev.select("config_id", "block").sort(["config_id", "block"]))
    for b in ev.filter(pl.col("kind").is_in(DEPEG))["block"].to_list():
        kinds = ev.filter(pl.col("block") == b)["kind"].to_list()
        assert kinds == [k for k in kinds if k not in DEPEG] + [k for k in kinds if k in DEPEG]


def test_the_manifest_describes_the_new_columns(merged):
    man = json.loads((Path(merged["path"]) / "manifest.json").read_text())
    cols = {c["name"]: c for c in man["columns"]["events"]}
    assert cols["discount"]["unit"] == "fraction" and cols["worst_discount"]["unit"] == "fraction"
    assert cols["episode_id"]["unit"] == "id" and "depeg_start" in cols["kind"]["meaning"]


def test_a_gap_shorter_than_the_pause_gives_two_episodes(tmp_path, merged):
    res = _run(tmp_path, TWO, gap="30m")
    ev = _depeg(res)
    assert ev["kind"].to_list() == ["depeg_start", "depeg_end"] * 2
    assert ev["episode_id"].to_list() == [0, 0, 1, 1]
    ts = _series(res)
    starts = [ts.filter(pl.col("ts") >= _ts(t))["block"][0] for t in ("2024-06-01T06:00:00", "2024-06-01T09:00:00")]
    ends = [ts.filter(pl.col("ts") < _ts(t))["block"][-1] for t in ("2024-06-01T08:00:00", "2024-06-01T10:00:00")]
    assert ev["block"].to_list() == [starts[0], ends[0], starts[1], ends[1]]
    # the merged run's episode spans both: its start is the first one's, its end the second one's
    m = _depeg(merged)["block"].to_list()
    assert m == [starts[0], ends[1]]


def test_a_sweep_gives_the_rows_to_every_configuration(tmp_path):
    res = _run(tmp_path, TWO[:1], grids={"strategy.target_ltv": [0.7, 0.8]})
    ev = _depeg(res)
    assert ev["config_id"].to_list() == [0, 0, 1, 1]
    assert ev["kind"].to_list() == ["depeg_start", "depeg_end"] * 2
    a, b = ev.filter(pl.col("config_id") == 0), ev.filter(pl.col("config_id") == 1)
    assert a.select("block", "ts", "discount", "worst_discount").equals(b.select("block", "ts", "discount",
                                                                                 "worst_discount"))
    # each its own health factor (more debt, lower HF), as its time series recorded it
    for cid, rows in ((0, a), (1, b)):
        hf = _series(res, cid).filter(pl.col("block").is_in(rows["block"].to_list()))["hf"]
        assert rows["hf_after"].to_list() == hf.to_list()
    assert (a["hf_after"] > b["hf_after"]).all()


def test_an_episode_still_on_at_the_end_has_no_end_row(tmp_path):
    res = _run(tmp_path, (("2024-06-01T20:00:00Z", "10h"),))
    ev = _depeg(res)
    assert ev["kind"].to_list() == ["depeg_start"]
    ep = res["episodes"].row(0, named=True)
    assert ep["at_window_end"] and ev["block"][0] == ep["start_block"]
    assert ev["worst_discount"].to_list() == [None]


def test_a_run_without_episodes_has_no_depeg_rows(tmp_path):
    res = _run(tmp_path)
    ev = pl.read_parquet(Path(res["path"]) / "events.parquet")
    assert res["episodes"].height == 0 and ev.height > 0
    assert ev.filter(pl.col("kind").is_in(DEPEG)).height == 0
    assert ev["episode_id"].null_count() == ev.height


def test_a_rerun_gives_the_same_bytes(tmp_path, merged):
    again = _run(tmp_path, TWO, gap="2h")
    assert (Path(again["path"]) / "events.parquet").read_bytes() == \
        (Path(merged["path"]) / "events.parquet").read_bytes()


def test_show_lists_the_depeg_rows(merged):
    r = CliRunner().invoke(cli, ["show", str(merged["path"]), "--format", "csv", "--sql",
                                 "SELECT kind, block, discount FROM events WHERE kind LIKE 'depeg%' ORDER BY block"])
    assert r.exit_code == 0, r.output
    lines = r.output.strip().splitlines()
    assert lines[0] == "kind,block,discount" and [ln.split(",")[0] for ln in lines[1:]] == list(DEPEG)


def test_monte_carlo_paths_keep_no_depeg_rows(tmp_path):
    # the paths keep no events and find no episodes (their prices are not the market's): no depeg rows, the
    # events table keeps its columns
    from backtest.montecarlo import MonteCarlo

    text = BASE.format(gap="1h") + "".join(STEP.format(at=a, duration=d) for a, d in TWO)
    cfg = tmp_path / "mc.toml"
    cfg.write_text(text)
    res = backtest.run(cfg, overrides={"run.output": str(tmp_path / "out"), "run.record": "none"},
                       montecarlo=MonteCarlo(2, seed=1, block_days=0.25))
    ev = pl.read_parquet(Path(res["path"]) / "events.parquet")
    assert ev.height == 0 and res["episodes"].height == 0
    assert {"episode_id", "discount", "worst_discount"} <= set(ev.columns)
