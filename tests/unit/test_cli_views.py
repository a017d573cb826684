"""Terminal views through click's CliRunner: the summary table fits the width it is given (columns by priority,
the rest named), --sort / --top list the top configurations, `show --sql --format csv|json` prints for scripts,
and progress starts at alignment and reaches the first configurations of a small sweep."""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import polars as pl
import pytest
from click.testing import CliRunner

from backtest import cli_views
from backtest.cli import cli
from tests.synth_lake import synth_lake

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "steth-2022-v2.toml"      # a sweep of 10 target LTVs, 0.50 to 0.68


@pytest.fixture(autouse=True)
def at_repo_root(monkeypatch):
    monkeypatch.chdir(REPO)


def invoke(*args, env=None):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False, env=env)


@pytest.fixture(scope="module")
def result_set(tmp_path_factory):
    out = tmp_path_factory.mktemp("views")
    r = CliRunner().invoke(cli, ["run", str(EXAMPLE), "--set", f'run.output="{out}"', "--set",
                                 f'run.data="{synth_lake()}"', "--quiet"],
                           catch_exceptions=False)
    assert r.exit_code == 0, r.output
    return out / "steth-2022-aave-v2"


def table_lines(output: str) -> list[str]:
    return [ln for ln in output.splitlines() if ln.startswith(("┃", "│", "┏", "└"))]


@pytest.mark.parametrize("width", [60, 90, 140, 250])
def test_the_summary_table_fits_the_width(result_set, width):
    r = invoke("show", result_set, env={"COLUMNS": str(width)})
    assert r.exit_code == 0, r.output
    lines = table_lines(r.output)
    assert lines and max(len(ln) for ln in lines) <= width
    header = lines[1]
    assert "id" in header and "target_ltv" in header          # always: which configuration
    if width >= 90:
        assert "net APY" in header and "return" in header     # the first by priority
    if width < 250:
        assert "not shown (terminal too narrow)" in r.output
    else:
        assert "hold @rate" in header and "not shown" not in r.output


def test_priority_keeps_the_first_columns_that_fit():
    rows = [{"config_id": 0, "net_apy": 0.01, "window_return": 0.002, "excess_apy": -0.01, "min_hf": 1.2}]
    cols, hidden = cli_views.fit_columns(rows, [], ["net_apy", "window_return", "excess_apy", "min_hf"], 40)
    # id (2+3) + border 1 = 6; net APY 7+3 = 10 -> 16; return 6+3 -> 25; excess 6+3 -> 34; min HF 6+3 -> 43 > 40
    assert [c for c, _, _ in cols] == ["config_id", "net_apy", "window_return", "excess_apy"]
    assert hidden == ["min_hf"]


def test_sort_and_top_list_the_best_configurations(result_set):
    s = pl.read_parquet(result_set / "summary.parquet")
    r = invoke("show", result_set, "--sort", "min_hf", "--top", "3", env={"COLUMNS": "120"})
    assert r.exit_code == 0, r.output
    body = [ln for ln in table_lines(r.output) if ln.startswith("│")]
    ids = [int(ln.split("│")[1]) for ln in body]
    want = s.sort("min_hf", descending=True)["config_id"].head(3).to_list()
    assert ids == want and len(ids) == 3
    assert "top 3 of 10 configuration(s), by min_hf (highest first)" in r.output
    r = invoke("show", result_set, "--sort", "min_hf", "--ascending", "--top", "2", env={"COLUMNS": "120"})
    ids = [int(ln.split("│")[1]) for ln in table_lines(r.output) if ln.startswith("│")]
    assert ids == s.sort("min_hf")["config_id"].head(2).to_list()


def test_sort_by_an_unknown_metric_exits_2_with_a_suggestion(result_set):
    r = invoke("show", result_set, "--sort", "nett_apy")
    assert r.exit_code == 2 and "did you mean 'net_apy'" in r.output


def test_nan_sorts_last():
    df = pl.DataFrame({"config_id": [0, 1, 2], "m": [float("nan"), 0.5, 0.7]})
    assert cli_views.sort_summary(df, "m")["config_id"].to_list() == [2, 1, 0]
    assert cli_views.sort_summary(df, "m", ascending=True)["config_id"].to_list() == [1, 2, 0]


def test_show_sql_as_csv_and_json(result_set):
    sql = "SELECT config_id, net_apy, time_utc FROM summary JOIN (SELECT config_id, min(time_utc) AS time_utc " \
          "FROM events GROUP BY config_id) USING (config_id) ORDER BY config_id"
    r = invoke("show", result_set, "--sql", sql, "--format", "csv")
    assert r.exit_code == 0, r.output
    rows = list(csv.DictReader(io.StringIO(r.output)))
    s = pl.read_parquet(result_set / "summary.parquet").sort("config_id")
    assert [int(x["config_id"]) for x in rows] == s["config_id"].to_list()
    assert [float(x["net_apy"]) for x in rows] == s["net_apy"].to_list()       # full precision
    assert rows[0]["time_utc"].startswith("2022-05-01T00:00:00")
    r = invoke("show", result_set, "--sql", sql, "--format", "json")
    data = json.loads(r.output)
    assert [d["net_apy"] for d in data] == s["net_apy"].to_list()
    r = invoke("show", result_set, "--sql", "SELECT count(*) AS n FROM episodes", "--format", "json")
    assert json.loads(r.output)[0]["n"] == pl.read_parquet(result_set / "episodes.parquet").height
    r = invoke("show", result_set, "--format", "csv")
    assert r.exit_code == 2 and "--format goes with --sql" in r.output


def test_timeseries_view_reads_config_id_from_files_and_partitions(result_set):
    r = invoke("show", result_set, "--sql", "SELECT DISTINCT config_id FROM timeseries ORDER BY 1", "--format",
               "json")
    assert [d["config_id"] for d in json.loads(r.output)] == list(range(10))


def test_progress_starts_at_alignment_and_reaches_the_first_configurations(tmp_path, monkeypatch):
    # a terminal is pretended; the progress object records what the run reports, in order
    calls = []

    class Spy(cli_views.Progress):
        def __init__(self, enabled):
            super().__init__(enabled, terminal=True)

        def _ensure(self):
            return None

        def align(self, done, total):
            calls.append(("align", done, total))

        def start(self, configs, blocks):
            calls.append(("start", configs))

        def advance(self, configs, blocks):
            calls.append(("advance", configs))

    monkeypatch.setattr("backtest.cli.Progress", Spy)
    lake = ["--set", f'run.data="{synth_lake()}"']
    r = invoke("run", EXAMPLE, "--set", f'run.output="{tmp_path}"', "--set", 'run.end="2022-05-10"', *lake,
               "--workers", "2")
    assert r.exit_code == 0, r.output
    assert calls[0] == ("align", 0, 1) and calls[1] == ("align", 1, 1) and calls[2] == ("start", 10)
    advances = [c[1] for c in calls if c[0] == "advance"]
    # 10 configurations (< one 256 batch) still report in steps: two at a time (one per core)
    assert sum(advances) == 10 and len(advances) == 5
    # and the result set is the one a run without progress writes
    quiet = invoke("run", EXAMPLE, "--set", f'run.output="{tmp_path / "q"}"', "--set", 'run.end="2022-05-10"',
                   *lake, "--quiet")
    assert quiet.exit_code == 0
    for name in ("summary.parquet", "events.parquet", "episodes.parquet"):
        a = (tmp_path / "steth-2022-aave-v2" / name).read_bytes()
        b = (tmp_path / "q" / "steth-2022-aave-v2" / name).read_bytes()
        assert a == b, name


def test_no_progress_without_a_terminal():
    assert not cli_views.Progress(True, terminal=False).enabled
    assert not cli_views.Progress(False, terminal=True).enabled
