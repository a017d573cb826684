"""The report of real sweeps (the June 2022 replay on the bundled lake, tests/report_sweep.py) opened in
headless Chromium as a person would: no console error, no request leaving the file (it opens offline), every
figure rendered by plotly with its traces, and a screenshot that is not blank, figure by figure.

Chromium is Debian's `chromium` package (.ci/run installs it). Without a chromium binary this test skips on a
developer's machine and FAILS under CI=true, so CI can never pass without having looked at the page.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from backtest.report import write_report
from tests.chromium import Browser, find
from tests.report_sweep import run_real_2022, run_sweep

CHROMIUM = find()
IN_CI = os.environ.get("CI", "").lower() in ("true", "1")
FIGURES = ["fig-heatmap-net-apy", "fig-heatmap-liq-loss", "fig-equity", "fig-health", "fig-prices",
           "fig-breakdown"]
SHOT = os.environ.get("BACKTEST_REPORT_SCREENSHOT")     # keep the screenshot there (to look at it)

# waits (up to 60 s, a busy CI machine) until every listed figure has plotly's layout and its SVG, then
# describes each one
RENDERED = """(async () => {
  const ids = document.body.dataset.figures.split(' ');
  const done = id => {
    const d = document.getElementById(id);
    return d && d._fullLayout && d.querySelector('.main-svg');
  };
  for (let i = 0; i < 600 && !ids.every(done); i++) await new Promise(r => setTimeout(r, 100));
  return ids.map(id => {
    const d = document.getElementById(id), r = d.getBoundingClientRect();
    return {id, rendered: !!done(id), traces: (d.data || []).length,
            drawn: d.querySelectorAll('.trace, .hm, .point, .bars path').length,
            x: r.left + window.scrollX, y: r.top + window.scrollY, w: r.width, h: r.height};
  });
})()"""


def _need_chromium() -> str:
    if CHROMIUM:
        return CHROMIUM
    if IN_CI:
        pytest.fail("CI=true but no chromium binary: .ci/run installs Debian's chromium with apt-get")
    pytest.skip("no chromium binary (apt-get install chromium); CI fails instead of skipping")


def _spread(img) -> float:
    """Standard deviation of the grey levels: 0 for a blank (one-colour) image."""
    from PIL import ImageStat
    return ImageStat.Stat(img.convert("L")).stddev[0]


def _open(binary: str, page: Path, shot: Path) -> tuple[list, list, list]:
    with Browser(binary) as b:
        b.open(page.resolve().as_uri())
        figures = b.evaluate(RENDERED)
        b.screenshot(shot)
        return figures, b.errors(), b.requests()


def _check_page(figures, errors, requests, shot: Path, expected=FIGURES) -> dict:
    from PIL import Image

    assert errors == []
    assert [u for u in requests if not u.startswith(("file:", "data:", "about:"))] == []
    assert [f["id"] for f in figures] == list(expected)
    for f in figures:
        assert f["rendered"] and f["traces"] >= 1 and f["drawn"] >= 1, f
        assert f["w"] > 300 and f["h"] > 200, f
    img = Image.open(shot)
    assert img.width >= 1000 and img.height > 600 * len(expected)
    assert _spread(img) > 20
    for f in figures:           # each figure's own area is not blank either
        box = tuple(int(v) for v in (f["x"], f["y"], f["x"] + f["w"], f["y"] + f["h"]))
        assert _spread(img.crop(box)) > 10, f["id"]
    return {f["id"]: f for f in figures}


def test_the_report_of_the_june_2022_replay_renders_in_headless_chromium(tmp_path):
    binary = _need_chromium()
    results = run_real_2022(tmp_path)
    page = write_report(results, tmp_path / "report.html")
    by_id = _check_page(*_open(binary, page, tmp_path / "real.png"), tmp_path / "real.png")
    # 11 target LTVs: 5 top and 5 bottom drawn (+ the hold line / the liquidation markers of 0.78 and 0.80)
    assert by_id["fig-equity"]["traces"] == by_id["fig-health"]["traces"] == 11
    text = page.read_text()
    assert "episode(s) found" in text and "2 of 11 configuration(s) liquidated at least once" in text


def test_the_report_of_a_real_sweep_renders_in_headless_chromium(tmp_path):
    binary = _need_chromium()
    page = write_report(run_sweep(tmp_path / "results"), tmp_path / "report.html")
    shot = Path(SHOT) if SHOT else tmp_path / "report.png"
    by_id = _check_page(*_open(binary, page, shot), shot)
    # 15 configurations: the top 5 and bottom 5 drawn, with the hold line / the liquidation markers
    assert by_id["fig-equity"]["traces"] == by_id["fig-health"]["traces"] == 11
    # the two heatmaps (5 target LTVs x 3 loop counts) are taller than one row
    assert by_id["fig-heatmap-net-apy"]["h"] >= 400


def test_a_strategy_books_page_renders_in_headless_chromium(tmp_path):
    import shutil

    import polars as pl

    binary = _need_chromium()
    root = tmp_path / "book"
    shutil.copytree(run_sweep(tmp_path / "results"), root / "book-loop")
    s = pl.read_parquet(root / "book-loop" / "summary.parquet").row(0, named=True)
    wr = s["end_equity"] / s["capital"] - 1.0
    pl.DataFrame([{"strategy": "loop", "kind": "loop", "window": "june-2022", "capital_usd": 1000.0,
                   "status": "replayed", "realized_apy": s["net_apy"], "advertised_low": 0.10,
                   "advertised_high": 0.20, "end_value": s["end_equity"], "window_return": wr,
                   "ending_value_usd": 1000.0 * (1.0 + wr), "result_set": str(root / "book-loop")}]
                 ).write_parquet(root / "book.parquet")
    page = write_report(root)
    _check_page(*_open(binary, page, tmp_path / "book.png"), tmp_path / "book.png",
                expected=["fig-book-apy", "fig-book-value"])
