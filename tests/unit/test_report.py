"""`backtest report`: what the page shows is the result set's own numbers, chosen as the options say.

One real sweep (tests/report_sweep.py: 15 configurations of the June 2022 replay on the bundled lake, one
liquidated) is written once; each test reads it (or a copy with a hand-made episodes / book table beside it).
"""
from __future__ import annotations

import json
import re
import shutil

import numpy as np
import polars as pl
import pytest
from click.testing import CliRunner

from backtest.cli import cli
from backtest.report import build, figures_series, figures_sweep, load, select, write_report
from backtest.report.selection import parse_filter
from tests.report_sweep import GRID, run_sweep


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    return run_sweep(tmp_path_factory.mktemp("report"))


@pytest.fixture()
def copy(sweep, tmp_path):
    dest = tmp_path / "set"
    shutil.copytree(sweep, dest)
    return dest


def _figure_json(page: str, div_id: str) -> list:
    """The data array passed to Plotly.newPlot for one figure div."""
    m = re.search(r'Plotly\.newPlot\(\s*"' + re.escape(div_id) + r'",\s*(\[.*?\]),\s*\{', page, re.S)
    assert m, f"no newPlot call for {div_id}"
    return json.loads(m.group(1))


def test_the_two_swept_keys_are_the_heatmap_axes_and_a_key_swept_with_one_value_is_not(sweep):
    rs = load(sweep)
    assert sorted(rs.parameters) == sorted(GRID)
    one = rs.summary.with_columns(pl.lit(3).alias("strategy.extra"))
    rs.summary = one
    assert "strategy.extra" not in rs.parameters


def test_top_and_bottom_are_the_largest_and_smallest_of_the_metric(sweep):
    s = load(sweep).summary
    sel = select(s, "net_apy", top=3)
    ranked = s.sort(["net_apy", "config_id"], descending=[True, False])["config_id"].to_list()
    assert sel.top == ranked[:3]
    assert sel.bottom == list(reversed(ranked))[:3]
    assert sel.chosen == sel.top + sel.bottom
    by_hf = select(s, "min_hf", top=1)
    assert by_hf.top == [s.sort("min_hf", descending=True)["config_id"][0]]
    assert by_hf.bottom == [s.sort("min_hf")["config_id"][0]]


def test_filters_keep_only_the_rows_they_name_and_ranking_runs_inside_them(sweep):
    s = load(sweep).summary
    sel = select(s, "net_apy", top=2, filters=("strategy.loops>=5", "strategy.target_ltv!=0.8"))
    kept = sel.filtered
    assert kept.height == 8
    assert set(kept["strategy.loops"].to_list()) == {5, 10}
    assert 0.8 not in kept["strategy.target_ltv"].to_list()
    assert set(sel.chosen) <= set(kept["config_id"].to_list())
    for text, want in (("liq_count=1", pl.col("liq_count") == 1), ("liq_count==0", pl.col("liq_count") == 0),
                       ("net_apy<0", pl.col("net_apy") < 0), ("strategy.loops<=2", pl.col("strategy.loops") <= 2),
                       ("strategy.target_ltv>0.75", pl.col("strategy.target_ltv") > 0.75),
                       ("min_hf >= 1.2", pl.col("min_hf") >= 1.2), ("debt_asset=WETH", pl.col("debt_asset") == "WETH")):
        got = s.filter(parse_filter(text, s))["config_id"].to_list()
        assert got == s.filter(want)["config_id"].to_list() and 0 < len(got), text
    assert s.filter(parse_filter("liq_count=1", s))["config_id"].to_list() == [14]


def test_config_ids_asked_for_are_drawn_first(sweep):
    sel = select(load(sweep).summary, "net_apy", top=1, config_ids=(7,))
    assert sel.chosen[0] == 7 and len(sel.chosen) == 3


@pytest.mark.parametrize("args, message", [
    (["--metric", "nope"], "--metric 'nope': not a numeric column"),
    (["--metric", "debt_asset"], "--metric 'debt_asset': not a numeric column"),
    (["--filter", "loops>=3"], "the summary has no column 'loops'"),
    (["--filter", "strategy.loops~3"], "expected COLUMN OP VALUE"),
    (["--filter", "strategy.loops>=many"], "'many' is not a value of column 'strategy.loops'"),
    (["--filter", "debt_asset<WETH"], "only = and != compare it"),
    (["--filter", "strategy.loops>100"], "no configuration of the 15 is left"),
    (["--config", "99"], "--config 99: no such configuration"),
    (["--top", "-1"], "--top -1: must be a whole number"),
    (["--axes", "strategy.loops,nope"], "the summary has no column 'nope'"),
])
def test_bad_options_exit_2_with_one_message_and_write_nothing(copy, args, message):
    res = CliRunner().invoke(cli, ["report", str(copy), *args])
    assert res.exit_code == 2, res.output
    assert message in res.output
    assert not (copy / "report.html").exists()


def test_a_folder_that_is_not_a_result_set_is_refused(tmp_path):
    res = CliRunner().invoke(cli, ["report", str(tmp_path)])
    assert res.exit_code == 2 and "not a result set (no manifest.json)" in res.output
    (tmp_path / "manifest.json").write_text('{"format": "something else"}')
    res = CliRunner().invoke(cli, ["report", str(tmp_path)])
    assert res.exit_code == 2 and "not the manifest of a backtest result set" in res.output


def test_an_output_in_a_missing_folder_or_on_a_folder_is_refused(copy, tmp_path):
    res = CliRunner().invoke(cli, ["report", str(copy), "-o", str(tmp_path / "no" / "r.html")])
    assert res.exit_code == 2 and "does not exist" in res.output
    res = CliRunner().invoke(cli, ["report", str(copy), "-o", str(tmp_path)])
    assert res.exit_code == 2 and "is a folder" in res.output


def test_the_page_is_self_contained_and_the_same_bytes_each_time(copy, tmp_path):
    res = CliRunner().invoke(cli, ["report", str(copy), "-o", str(tmp_path / "a.html")])
    assert res.exit_code == 0, res.output
    write_report(copy, tmp_path / "b.html")
    a = (tmp_path / "a.html").read_bytes()
    assert a == (tmp_path / "b.html").read_bytes()
    page = a.decode()
    assert "<script src" not in page and "<link" not in page and "cdn.plot.ly" not in page.split("</script>", 1)[1]
    assert "Plotly.newPlot" in page and len(page) > 3_000_000     # plotly.js itself is inlined
    assert not list(tmp_path.glob(".*tmp*"))                      # the temp file was renamed away


def test_the_heatmap_cells_are_the_summarys_values(sweep):
    page = build(sweep)
    rs = load(sweep)
    s = rs.summary
    x, y = rs.parameters            # the most varied first: target_ltv (5 values) along x, loops (3) along y
    assert (x, y) == ("strategy.target_ltv", "strategy.loops")
    (net,) = _figure_json(page, "fig-heatmap-net-apy")
    assert len(net["x"]) == 5 and len(net["y"]) == 3
    for yi, loops in enumerate(net["y"]):
        for xi, ltv in enumerate(net["x"]):
            row = s.filter((pl.col(y) == int(loops)) & (pl.col(x) == float(ltv)))
            assert net["z"][yi][xi] == pytest.approx(row["net_apy"][0] * 100, rel=1e-12)
    (loss,) = _figure_json(page, "fig-heatmap-liq-loss")
    col = figures_sweep.loss_column(s)
    flat = [v for r in loss["z"] for v in r]
    assert sorted(flat) == pytest.approx(sorted(s[col].to_list()))
    assert sum(1 for v in flat if v > 0) == s.filter(pl.col("liq_count") > 0).height == 1


def test_a_third_swept_key_is_held_at_the_best_configurations_value(sweep):
    rs = load(sweep)
    rs.summary = rs.summary.with_columns((pl.col("config_id") % 2).alias("market.extra"))
    rs.manifest = {**rs.manifest, "points": [{"labels": {"strategy.target_ltv": 0, "strategy.loops": 0,
                                                          "market.extra": 0}}]}
    best = rs.summary.sort("net_apy", descending=True).row(0, named=True)
    df, held = figures_sweep.heatmap_slice(rs, rs.summary, ("strategy.target_ltv", "strategy.loops"), best)
    assert held == f"other parameters at the best configuration's: extra={best['market.extra']}"
    assert set(df["market.extra"].to_list()) == {best["market.extra"]}


def test_each_breakdown_stack_sums_to_the_configurations_pnl(sweep):
    rs = load(sweep)
    chosen = [14, 0, 5]
    fig = figures_sweep.breakdown(rs, chosen)
    bars = [t for t in fig.data if t.type == "bar"]
    (pnl,) = [t for t in fig.data if t.type == "scatter"]
    for i, cid in enumerate(chosen):
        want = rs.summary.filter(pl.col("config_id") == cid)["pnl"][0]
        assert sum(b.y[i] for b in bars) == pytest.approx(want, abs=1e-9)
        assert pnl.y[i] == want
    interest = next(b for b in bars if b.name == "borrow interest")
    assert interest.y[0] == -rs.summary.filter(pl.col("config_id") == 14)["interest_paid"][0]


def test_the_hold_line_ends_at_the_benchmarks_end_equity_and_follows_the_market(sweep):
    rs = load(sweep)
    fig, _ = figures_series.equity(rs, [3, 14])
    hold = fig.data[-1]
    assert hold.name.startswith("hold")
    row = rs.summary.filter(pl.col("config_id") == 3).row(0, named=True)
    assert hold.y[-1] == pytest.approx(row["hold_end_equity"], rel=1e-12)
    mp = rs.series(3)["market_price"].to_numpy()
    np.testing.assert_allclose(np.asarray(hold.y) / hold.y[-1], mp / mp[-1], rtol=1e-12)
    assert [t.name for t in fig.data[:2]] == ["#3 target_ltv=0.65 loops=2", "#14 target_ltv=0.8 loops=10"]


def test_hf_paths_mark_each_liquidation_of_the_drawn_configurations(sweep):
    rs = load(sweep)
    fig, _ = figures_series.health(rs, [14, 0])
    (marks,) = [t for t in fig.data if t.mode == "markers"]
    liq = rs.events.filter((pl.col("kind") == "liquidation") & (pl.col("config_id") == 14))
    assert len(marks.x) == liq.height >= 1
    fig, _ = figures_series.health(rs, [0])
    assert not [t for t in fig.data if t.mode == "markers"]


def test_thinning_keeps_the_lowest_hf_and_the_last_sample():
    n = 20_000
    hf = np.full(n, 2.0)
    hf[12_345] = 0.97
    df = pl.DataFrame({"block": np.arange(n), "ts": np.arange(n) * 12, "hf": hf})
    out = figures_series.thin(df, 1000)
    assert out.height <= 1002
    assert 12_345 in out["block"].to_list() and out["block"][-1] == n - 1 and out["block"][0] == 0
    assert figures_series.thin(df.head(500), 1000).height == 500


def test_without_episodes_parquet_the_section_says_so(copy):
    (copy / "episodes.parquet").unlink(missing_ok=True)
    page = build(copy)
    assert "no episodes found: this result set has no episodes.parquet" in page
    assert "the result set has no episodes.parquet" in page          # the HF figure's note


def test_the_sweeps_own_episodes_are_tabled_with_each_drawn_configurations_pnl(sweep):
    ep = pl.read_parquet(sweep / "episodes.parquet")
    page = build(sweep, top=1)
    section = page.split('id="episodes"')[1].split("</section>")[0]
    n = ep["episode_id"].n_unique()
    assert f"{n} episode(s) found" in section and n >= 1
    for cid in select(load(sweep).summary, "net_apy", top=1).chosen:       # config 0 (best) and 14 (worst)
        row = ep.filter((pl.col("config_id") == cid) & (pl.col("episode_id") == 0)).row(0, named=True)
        assert f"<td>{row['episode_pnl']:.6g}</td>" in section
        assert f"<td>{row['episode_min_hf']:.6g}</td>" in section
    others = ep.filter(~pl.col("config_id").is_in([0, 14]))
    assert f"<td>{others['episode_pnl'][0]:.6g}</td>" not in section


def test_episodes_are_tabled_and_shaded_on_the_hf_and_price_figures(copy):
    ts0 = int(load(copy).summary["min_hf_ts"][0])
    rows = []
    for eid, (kind, start, end) in enumerate([("market", ts0 - 86400, ts0 + 86400),
                                              ("oracle", ts0 + 10 * 86400, ts0 + 11 * 86400)]):
        for cid in (0, 14):
            rows.append({"episode_id": eid, "episode_kind": kind, "start_ts": start, "end_ts": end,
                         "worst_discount": 0.05 + eid, "config_id": cid, "episode_pnl": -1.5 * (cid + 1)})
    pl.DataFrame(rows).write_parquet(copy / "episodes.parquet")
    rs = load(copy)
    assert figures_series.episode_spans(rs) == [(ts0 - 86400, ts0 + 86400, "market", 0.05),
                                                (ts0 + 10 * 86400, ts0 + 11 * 86400, "oracle", 1.05)]
    fig, note = figures_series.health(rs, [0, 14])
    assert len(fig.layout.shapes) == 2 + 1        # two episodes and the HF 1 line
    assert note.startswith("2 episode(s) shaded")
    page = build(copy, config_ids=(14,))
    section = page.split('id="episodes"')[1].split("</section>")[0]
    assert "-22.5" in section and "2 episode(s)" in section   # config 14's P&L in the first episode


def test_a_book_table_is_shown_when_the_result_set_has_one(copy):
    assert 'id="book"' not in build(copy)
    pl.DataFrame({"kind": ["loop", "lp"], "ending_value": [1043.5, 998.25]}).write_parquet(copy / "book.parquet")
    page = build(copy)
    section = page.split('id="book"')[1].split("</section>")[0]
    assert "1043.5" in section and "998.25" in section and "lp" in section


def test_the_manifest_section_names_config_hash_data_hash_and_version(sweep):
    page = build(sweep)
    m = json.loads((sweep / "manifest.json").read_text())
    section = page.split('id="manifest"')[1]
    assert m["config_hash"] in section and m["data_hash"][0] in section and m["package_version"] in section
    assert "&quot;target_ltv&quot;" in section          # the resolved config, escaped
    assert page.count('class="figure"') == len(page.split('data-figures="')[1].split('"')[0].split())


def _one_run(tmp_path, example: str):
    import backtest
    from tests.report_sweep import REPO

    res = backtest.run(REPO / "examples" / f"{example}.toml",
                       overrides={"run.data": str(REPO / "data"), "run.output": str(tmp_path), "run.name": example,
                                  "run.end": "2024-08-01"})
    return res["path"]


def test_a_single_configuration_has_no_heatmap_but_every_other_figure(tmp_path):
    path = _one_run(tmp_path, "loop")
    page = build(path)
    figures = page.split('data-figures="')[1].split('"')[0].split()
    assert figures == ["fig-equity", "fig-health", "fig-prices", "fig-breakdown"]
    assert "nothing swept varies: no heatmap" in page
    assert "<h3>Bottom" not in page                 # one configuration: it is the top one, none left below


def test_a_multi_collateral_position_draws_each_legs_prices_and_no_one_token_hold_line(tmp_path):
    path = _one_run(tmp_path, "multi-collateral-emode")
    rs = load(path)
    fig, _ = figures_series.prices(rs, [0])
    names = [t.name for t in fig.data]
    assert any(n.startswith("market price wstETH") for n in names)
    assert any(n.startswith("market price weETH") for n in names)
    fig, note = figures_series.equity(rs, [0])
    assert [t.name for t in fig.data] == ["#0"] and "several collateral legs" in note


def test_a_monte_carlo_summary_ranks_by_mean_net_apy_and_maps_the_path_statistics(copy):
    # the shape `sweep --paths` writes: one row per configuration with statistics over its paths, no events,
    # no time series
    s = pl.read_parquet(copy / "summary.parquet")
    mc = s.select("config_id", "strategy.target_ltv", "strategy.loops", "capital", "debt_asset").with_columns(
        net_apy_mean=s["net_apy"] - 0.01, net_apy_p5=s["net_apy"] - 0.05, liq_probability=s["liq_count"] * 0.25,
        cvar95=pl.lit(3.0), n_paths=pl.lit(200))
    mc.write_parquet(copy / "summary.parquet")
    shutil.rmtree(copy / "timeseries")
    for f in ("events.parquet", "episodes.parquet"):
        (copy / f).unlink(missing_ok=True)
    page = build(copy)
    figures = page.split('data-figures="')[1].split('"')[0].split()
    assert figures == ["fig-heatmap-net-apy", "fig-heatmap-liq-probability", "fig-heatmap-net-apy-p5",
                       "fig-heatmap-cvar95"]
    assert "Top 5 by net_apy_mean" in page
    (prob,) = _figure_json(page, "fig-heatmap-liq-probability")
    assert sorted(v for r in prob["z"] for v in r) == sorted(mc["liq_probability"].to_numpy() * 100)
    assert "the summary itemises no yields or costs" in page and "no time series recorded" in page


def test_a_strategy_book_folder_shows_realized_against_advertised_and_what_the_capital_became(sweep, tmp_path):
    # the layout `backtest book` writes: <output>/book/book.parquet beside one result set per strategy
    root = tmp_path / "book"
    shutil.copytree(sweep, root / "book-loop")
    s = pl.read_parquet(root / "book-loop" / "summary.parquet").row(0, named=True)
    wr = s["end_equity"] / s["capital"] - 1.0
    pl.DataFrame([
        {"strategy": "loop", "kind": "loop", "window": "june-2022", "capital_usd": 1000.0, "status": "replayed",
         "realized_apy": 0.021, "advertised_low": 0.10, "advertised_high": 0.20, "end_value": s["end_equity"],
         "window_return": wr, "ending_value_usd": 1000.0 * (1.0 + wr), "notes": "x" * 200,
         "result_set": str(tmp_path / "moved-away" / "book-loop")},
        {"strategy": "lp", "kind": "lp", "window": "june-2022", "capital_usd": 1000.0,
         "status": "not replayed: no liquidity", "realized_apy": None, "advertised_low": 0.07,
         "advertised_high": 0.12, "end_value": None, "window_return": None, "ending_value_usd": None,
         "notes": "", "result_set": None},
    ]).write_parquet(root / "book.parquet")
    page = build(root)
    assert page.split('data-figures="')[1].split('"')[0].split() == ["fig-book-apy", "fig-book-value"]
    rng, realized = _figure_json(page, "fig-book-apy")
    assert realized["x"] == ["loop"] and realized["y"] == [pytest.approx(2.1)]
    assert rng["base"] == [pytest.approx(10.0)] and rng["y"] == [pytest.approx(10.0)]
    from backtest.report.book import value_figure
    fig, _ = value_figure(root, pl.read_parquet(root / "book.parquet"))
    (line,) = fig.data
    last_equity = load(root / "book-loop").series(0)["equity"][-1]
    assert line.y[-1] == pytest.approx(last_equity / s["capital"] * 1000.0, rel=1e-12)
    assert "not replayed: no liquidity" in page and "x" * 71 + "…" in page       # long notes cut, whole on hover
    assert f"backtest report {root / 'book-loop'}" in page


def test_at_a_glance_counts_the_liquidated_configurations_and_names_the_best_and_worst(sweep):
    s = load(sweep).summary
    page = build(sweep)
    glance = page.split("<b>At a glance:</b>")[1].split("</p>")[0]
    liquidated = s.filter(pl.col("liq_count") > 0).height
    assert f"{liquidated} of {s.height} configuration(s) liquidated at least once" in glance and liquidated == 1
    best = s.sort("net_apy", descending=True).row(0, named=True)
    worst = s.sort("net_apy").row(0, named=True)
    assert f"best net_apy {best['net_apy'] * 100:.2f} % (#{best['config_id']} " in glance
    assert f"worst net_apy {worst['net_apy'] * 100:.2f} % (#{worst['config_id']} " in glance
