"""The episode examples (examples/episodes/) replayed on lakes built by their own fetch / import commands from the
SYNTHETIC recorded fixtures of tests/fixtures/episodes/ (a JSON-RPC node on 127.0.0.1 and Dune CSVs). The
fixtures are made up, shaped after PROTOCOLS.md's documented facts; these tests check the pipeline and the
direction and order of magnitude of what each replay finds against those facts:

- ezETH 24 Apr 2024: the market oracle below 0.8, the DEX far lower; the 86 % market's loop liquidated on the day
  Dune counts the liquidations, the incentive LIF = 1 / (0.3 LLTV + 0.7) on the oracle, the loss at the exchange
  rate tens of % of the debt repaid; the 77 % market's loop at LTV 0.60 not liquidated.
- CAPO 10 Mar 2026: wstETH priced 2.85 % below its rate; the HF 1.02 loop liquidated (min HF 1.02 x 0.9715),
  the HF 1.04 loop not; the loss ~4 % of the debt repaid (bonus 1 %).
- July 2024 / July 2025: WETH borrow APR above 20 % / 10 % inside the day (in 2025 not at any 00:00 snapshot);
  the loop's interest equals the rate integrated block by block.
"""
from __future__ import annotations

import datetime as dt
from pathlib import Path

import polars as pl
import pytest

import backtest.api as api
from tests.episodes_lake import EXAMPLES, build_lake

YEAR = 365 * 86400


def lake_table(lake: Path, name: str) -> pl.DataFrame:
    return pl.read_parquet(sorted((lake / name).rglob("*.parquet")))


def day(ts: int) -> str:
    return dt.datetime.fromtimestamp(ts, dt.timezone.utc).strftime("%Y-%m-%d")


def replay(example: str, lake: Path, out: Path, **over):
    res = api.run(EXAMPLES / f"{example}.toml", overrides={"run.data": str(lake), "run.output": str(out), **over})
    return res["summary"], res["events"]


@pytest.fixture(scope="module")
def ezeth_lake(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    lake = tmp_path_factory.mktemp("ezeth") / "lake"
    node = build_lake("ezeth-morpho-86", "ezeth-morpho-2024", lake, mp)
    node.close()
    node = build_lake("ezeth-morpho-77", "ezeth-morpho-2024", lake, mp)
    node.close()
    mp.undo()
    return lake


def test_ezeth_lake_holds_the_documented_shape(ezeth_lake):
    orc = lake_table(ezeth_lake, "oracle_prices").filter(pl.col("protocol") == "morpho-blue")
    dex = lake_table(ezeth_lake, "prices").filter(pl.col("base") == "ezETH")
    assert orc["price"].min() < 0.8 < orc["price"].max()                  # the oracle fell below 0.8
    assert dex["price"].min() < orc["price"].min() - 0.1                  # the DEX far lower
    assert day(int(orc.sort("price")["ts"][0])) == "2024-04-24"
    ev = lake_table(ezeth_lake, "events").filter(pl.col("kind") == "morpho-liquidations")
    assert day(int(ev.sort("value", descending=True)["ts"][0])) == "2024-04-24"
    rates = lake_table(ezeth_lake, "rates")
    assert set(rates["protocol"].unique()) == {"morpho-ezeth-86", "morpho-ezeth-77"}
    assert rates["utilization"].max() > 0.95                              # the markets drained in the crash


def test_ezeth_86_market_loop_is_liquidated_on_the_day_dune_counts(ezeth_lake, tmp_path):
    s, ev = replay("ezeth-morpho-86", ezeth_lake, tmp_path)
    row = s.row(0, named=True)
    assert row["liq_count"] >= 1
    liq = ev.filter(pl.col("kind") == "liquidation")
    dune = lake_table(ezeth_lake, "events").filter(pl.col("kind") == "morpho-liquidations")
    assert day(int(liq["ts"][0])) == day(int(dune.sort("value", descending=True)["ts"][0])) == "2024-04-24"
    lif = 1 / (0.3 * 0.86 + 0.7)                                          # Morpho: 1.0438 at LLTV 0.86
    assert row["liq_penalty"] / row["liq_debt_repaid"] == pytest.approx(lif - 1, rel=1e-3)
    # the borrower's loss at the exchange rate: collateral seized on an oracle ~15 % below the rate
    xr = lake_table(ezeth_lake, "exchange_rates")["rate"].mean()
    loss = (row["liq_coll_seized"] * xr - row["liq_debt_repaid"]) / row["liq_debt_repaid"]
    assert 0.1 < loss < 0.5
    assert row["pnl"] < -50                                                # most of the 100 WETH gone


def test_ezeth_77_market_loop_at_ltv_060_survives_the_dip(ezeth_lake, tmp_path):
    s, _ = replay("ezeth-morpho-77", ezeth_lake, tmp_path)
    row = s.row(0, named=True)
    assert row["liq_count"] == 0
    # HF at the open 0.77 / 0.60 = 1.283; at the oracle's low (0.795 against 1.006 at the open): ~1.014
    assert 1.0 < row["min_hf"] < 1.05
    assert day(int(row["min_hf_ts"])) in ("2024-04-24", "2024-04-25")


def test_capo_incident_liquidates_the_hf_102_loop_only(tmp_path, monkeypatch):
    lake = tmp_path / "lake"
    build_lake("capo-2026", "capo-2026", lake, monkeypatch).close()
    # the governance-set cap below the live ratio during the incident
    ev = lake_table(lake, "events").pivot(on="kind", index="ts", values="value").sort("ts")
    cap = ev["capo-snapshot-ratio"] * (1 + ev["capo-max-growth-apr"] * (ev["ts"] - ev["capo-snapshot-ts"]) / YEAR)
    below = (cap < ev["capo-ratio"])
    assert below.any() and not below.all()
    assert {day(int(t)) for t in ev.filter(below)["ts"]} == {"2026-03-10"}
    s, events = replay("capo-2026", lake, tmp_path / "out")
    s = s.sort("target_ltv", descending=True) if "target_ltv" in s.columns else s
    hi, lo = s.row(0, named=True), s.row(1, named=True)                    # HF 1.02 and HF 1.04 at the open
    assert hi["liq_count"] >= 1 and lo["liq_count"] == 0
    assert hi["min_hf"] == pytest.approx(1.02 * (1 - 0.0285), abs=2e-3)   # priced 2.85 % below the rate
    assert lo["min_hf"] > 1.0
    xr = lake_table(lake, "exchange_rates")["rate"].mean()
    loss = (hi["liq_coll_seized"] * xr - hi["liq_debt_repaid"]) / hi["liq_debt_repaid"]
    assert loss == pytest.approx(1.01 / (1 - 0.0285) - 1, abs=5e-3)       # ~4 % (bonus 1 %)
    liq = events.filter(pl.col("kind") == "liquidation")
    assert {day(int(t)) for t in liq["ts"]} == {"2026-03-10"}


def _integrated(rates: pl.DataFrame, start: int, end: int) -> float:
    """∫ borrow_apr dt / YEAR over [start, end], the rate held from each change to the next."""
    r = rates.sort("ts")
    ts, apr = r["ts"].to_list(), r["borrow_apr"].to_list()
    total = 0.0
    for k in range(len(ts)):
        a, b = max(ts[k], start), min(ts[k + 1] if k + 1 < len(ts) else end, end)
        if b > a:
            total += apr[k] * (b - a)
    return total / YEAR


@pytest.mark.parametrize("year, start, end, peak", [(2024, "2024-07-03", "2024-07-08", 0.20),
                                                    (2025, "2025-07-13", "2025-07-21", 0.10)])
def test_rate_spike_intraday_rates_and_interest(year, start, end, peak, tmp_path, monkeypatch):
    lake = tmp_path / "lake"
    build_lake(f"rate-spike-{year}", f"rate-spike-{year}", lake, monkeypatch).close()
    weth = lake_table(lake, "rates").filter(pl.col("asset") == "WETH")
    assert weth.height > 100                                               # every ReserveDataUpdated, not daily
    assert weth["borrow_apr"].max() > peak
    # what a 00:00 UTC daily snapshot would have seen (the rate in force at each midnight)
    mids = pl.DataFrame({"ts": list(range(int(weth["ts"].min()) // 86400 * 86400 + 86400,
                                          int(weth["ts"].max()), 86400))})
    at_mid = mids.join_asof(weth.sort("ts").select("ts", "borrow_apr"), on="ts")["borrow_apr"]
    if year == 2025:
        assert at_mid.max() < peak                                         # the daily view hides the peak
    s, _ = replay(f"rate-spike-{year}", lake, tmp_path / "out")
    row = s.row(0, named=True)
    t0 = int(dt.datetime.fromisoformat(start).replace(tzinfo=dt.timezone.utc).timestamp())
    t1 = int(dt.datetime.fromisoformat(end).replace(tzinfo=dt.timezone.utc).timestamp())
    debt = 899.552607                 # the open's debt: 100 WETH x 9 at LTV 0.90, less the entry costs
    expected = debt * _integrated(weth, t0, t1)
    assert row["interest_paid"] == pytest.approx(expected, rel=0.02)
    base = weth.filter(pl.col("ts") < t0 + 86400)["borrow_apr"].min()
    assert row["interest_paid"] > 1.1 * debt * base * (t1 - t0) / YEAR    # the spike cost more than the base rate


def test_the_fixtures_are_what_their_generator_writes(tmp_path):
    """The committed fixtures and scripts/make_episode_fixtures.py do not drift apart."""
    import importlib.util

    from tests.episodes_lake import FIXTURES, REPO

    spec = importlib.util.spec_from_file_location("make_episode_fixtures", REPO / "scripts" / "make_episode_fixtures.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    mod.main(tmp_path)
    made = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file())
    kept = sorted(p.relative_to(FIXTURES) for p in FIXTURES.rglob("*") if p.is_file() and p.name != "README.md")
    assert made == kept
    for rel in made:
        assert (tmp_path / rel).read_bytes() == (FIXTURES / rel).read_bytes(), rel
