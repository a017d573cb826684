"""Synthetic markets: determinism, calibration facts, and the bundled lake equals a fresh synth."""
from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from backtest.config_types import Config, CostsConfig, MarketConfig, RunConfig, StrategyConfig
from backtest.data import lake
from backtest.plan import market_for
from backtest.data.synth import LIDO_DAILY_CAP, SCENARIOS, WINDOWS, rate_model, synth
from backtest.errors import InputError
from tests.synth_lake import synth_lake

REPO = Path(__file__).resolve().parents[2]
BUNDLED = synth_lake()        # what data/ held before it became real history (issue 11)
TABLES = ("prices", "exchange_rates", "rates", "market_params", "gas")


def T(s: str) -> int:
    return int(dt.datetime.fromisoformat(s).replace(tzinfo=dt.timezone.utc).timestamp())


@pytest.fixture(scope="module")
def full(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("synth")
    for name in SCENARIOS:
        synth(name, d)
    return d


def peg_series(d: Path, token: str, source: str) -> tuple[np.ndarray, np.ndarray]:
    """(ts, market price / exchange rate in force) of one synthetic token."""
    p = lake.read_series(d, "prices", base=token, quote="WETH", source=source)
    x = lake.read_series(d, "exchange_rates", token=token, source=source)
    ts = p["ts"].to_numpy()
    xr = x["rate"].to_numpy()[np.searchsorted(x["ts"].to_numpy(), ts, side="right") - 1]
    return ts, p["price"].to_numpy() / xr


def between(ts, v, a, b):
    m = (ts >= T(a)) & (ts < T(b))
    return v[m]


def weth_borrow(d: Path, protocol: str, a: str, b: str) -> tuple[np.ndarray, np.ndarray]:
    r = lake.read_series(d, "rates", protocol=protocol, asset="WETH", start=T(a), end=T(b))
    return r["ts"].to_numpy(), r["borrow_apr"].to_numpy()


# ------------------------------------------------------------------------------------------ determinism
def test_two_runs_give_equal_tables(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    for name in SCENARIOS:
        pa_ = synth(name, a)
        pb_ = synth(name, b)
        assert [p.relative_to(a) for p in pa_] == [p.relative_to(b) for p in pb_]
    for table in TABLES:
        ta, tb = lake.read_table(a, table), lake.read_table(b, table)
        assert ta.height > 0
        assert ta.equals(tb), table


def test_rerun_into_the_same_lake_is_a_no_op(tmp_path):
    synth("rate-spike", tmp_path)
    before = {t: lake.read_table(tmp_path, t) for t in TABLES}
    synth("rate-spike", tmp_path)
    for t in TABLES:
        assert lake.read_table(tmp_path, t).equals(before[t])


def test_unknown_scenario():
    with pytest.raises(InputError, match="unknown synthetic scenario 'ezeth'"):
        synth("ezeth", "/nonexistent")


def test_scenarios_have_descriptions_and_disjoint_windows():
    assert set(SCENARIOS) == {"calm", "steth-depeg", "rate-spike"}
    assert all(isinstance(v, str) and len(v) > 20 for v in SCENARIOS.values())
    spans = sorted(WINDOWS.values())
    assert all(a[1] <= b[0] for a, b in zip(spans, spans[1:]))
    assert WINDOWS["calm"] == (T("2024-06-01"), T("2025-06-01"))
    assert WINDOWS["steth-depeg"] == (T("2022-05-01"), T("2022-09-30"))
    assert WINDOWS["rate-spike"] == (T("2025-06-01"), T("2025-10-01"))


# ------------------------------------------------------------------------------------------ calibration
def test_steth_depeg_june_2022_minimum(full):
    ts, peg = peg_series(full, "stETH", "synth:steth-depeg")
    june = between(ts, peg, "2022-06-01", "2022-07-01")
    assert 0.93 <= june.min() <= 0.94
    t_min = ts[np.argmin(peg)]
    assert T("2022-06-10") <= t_min <= T("2022-06-19")           # the low falls in 2022-06-10 -> 06-18
    assert between(ts, peg, "2022-06-01", "2022-06-08").min() > 0.97     # before the slide
    # wstETH carries the same peg
    ts2, peg2 = peg_series(full, "wstETH", "synth:steth-depeg")
    assert np.allclose(peg, peg2, rtol=1e-12)


def test_steth_depeg_may_wobble_and_recovery(full):
    ts, peg = peg_series(full, "stETH", "synth:steth-depeg")
    may = between(ts, peg, "2022-05-10", "2022-05-15")
    assert 0.945 <= may.min() <= 0.96
    assert between(ts, peg, "2022-05-20", "2022-06-01").min() > 0.975    # the wobble recovers
    assert 0.96 <= between(ts, peg, "2022-07-28", "2022-08-01").mean() <= 0.98
    assert between(ts, peg, "2022-09-01", "2022-09-30").mean() >= 0.985
    assert peg.max() <= 1.0


def test_steth_exchange_rate_keeps_accruing_from_1(full):
    x = lake.read_series(full, "exchange_rates", token="stETH")
    r = x["rate"].to_numpy()
    assert r[0] == 1.0
    assert np.all(np.diff(r) >= 0) and r[-1] > 1.01                       # ~4 %/yr over 5 months
    w = lake.read_series(full, "exchange_rates", token="wstETH", source="synth:steth-depeg")["rate"].to_numpy()
    assert np.allclose(w / w[0], r, rtol=1e-12)


def test_steth_depeg_borrow_rises_to_5_6_pct(full):
    for proto in ("aave-v2", "aave-v3"):
        ts, b = weth_borrow(full, proto, "2022-05-01", "2022-09-30")
        assert 0.05 <= b.max() <= 0.06
        assert T("2022-06-10") <= ts[np.argmax(b)] <= T("2022-06-22")
        assert between(ts, b, "2022-05-01", "2022-05-08").max() < 0.045
    assert lake.read_series(full, "market_params", protocol="aave-v2")["liquidation_threshold"].to_list() == [0.81]


def test_rate_spike_day_above_20pct_and_week_above_10pct(full):
    ts, b = weth_borrow(full, "aave-v3", "2025-06-01", "2025-10-01")
    assert b.max() > 0.20
    above20 = ts[b > 0.20]
    assert 20 <= above20.size <= 30                                      # about one day of hours
    assert T("2025-07-07 20:00") <= above20.min() and above20.max() <= T("2025-07-09 04:00")
    week = between(ts, b, "2025-07-20", "2025-07-27")
    assert week.size == 7 * 24 and week.min() > 0.10
    assert 150 <= (b > 0.10).sum() - above20.size <= 200                  # the week, plus the day's ramps
    quiet = between(ts, b, "2025-08-01", "2025-10-01")
    assert 0.02 <= quiet.mean() <= 0.03 and quiet.max() < 0.03


def test_calm_peg_within_0_1pct_and_borrow_2_to_3pct(full):
    ts, peg = peg_series(full, "wstETH", "synth:calm")
    assert np.abs(peg - 1).max() <= 0.001
    _, b = weth_borrow(full, "aave-v3", "2024-06-01", "2025-06-01")
    assert b.size == 365 * 24 and 0.02 <= b.min() and b.max() <= 0.03
    s = lake.read_series(full, "rates", protocol="aave-v3", asset="wstETH", start=T("2024-06-01"),
                         end=T("2025-06-01"))["supply_apr"]
    assert 0.00002 <= s.mean() <= 0.0003                                 # ~0.01 %


def test_daily_step_at_noon_capped_by_lido_limit(full):
    for source in ("synth:calm", "synth:steth-depeg", "synth:rate-spike"):
        x = lake.read_series(full, "exchange_rates", token="wstETH", source=source)
        ts, r = x["ts"].to_numpy(), x["rate"].to_numpy()
        steps = r[1:] / r[:-1] - 1
        assert np.all(ts[1:] % 86400 == 12 * 3600)                        # one report a day at 12:00 UTC
        assert np.all(np.diff(ts[1:]) == 86400)
        assert steps.max() <= LIDO_DAILY_CAP + 1e-15 and steps.min() >= 0
        assert 0.02 <= (r[-1] / r[0]) ** (365 / (len(r) - 1)) - 1 <= 0.05  # ~3-4 %/yr


def test_rates_follow_the_aave_model(full):
    r = lake.read_series(full, "rates", protocol="aave-v3", asset="WETH", start=T("2025-06-01"))
    u = r["utilization"].to_numpy()
    b, s = rate_model(u, (0.0, 0.027, 0.80, 0.90))
    assert np.allclose(r["borrow_apr"].to_numpy(), b) and np.allclose(r["supply_apr"].to_numpy(), s)
    # supply = borrow * U * (1 - 0.15) and the model's kink at U_opt
    assert np.allclose(s, b * u * 0.85)
    assert rate_model(np.array([0.45, 0.9, 0.95]), (0.0, 0.027, 0.80, 0.90))[0] == pytest.approx([0.0135, 0.027, 0.427])


def test_gas_median_about_8_gwei(full):
    g = lake.read_table(full, "gas")
    assert 6.0 <= g["base_fee_gwei"].median() <= 10.0
    assert g["priority_fee_gwei"].min() >= 0 and g.height == sum((e - s) // 3600 for s, e in WINDOWS.values())


def test_market_params_are_the_dated_defaults(full):
    mp = lake.read_series(full, "market_params", protocol="aave-v3", asset="wstETH", emode="eth-correlated")
    rows = {r["ts"]: (r["ltv"], r["liquidation_threshold"], r["liquidation_bonus"], r["protocol_fee"])
            for r in mp.iter_rows(named=True)}
    assert rows[T("2022-05-01")] == (0.90, 0.93, 0.01, 0.10)
    assert rows[T("2024-06-01")] == (0.93, 0.95, 0.01, 0.10)
    assert rows[T("2025-06-01")] == (0.93, 0.95, 0.01, 0.10)


# ------------------------------------------------------------------------------------------- bundled lake
def _contents(d: Path) -> dict[str, pl.DataFrame]:
    return {t: lake.read_table(d, t) for t in TABLES}


def test_bundled_data_equals_a_fresh_synth(full):
    assert BUNDLED.is_dir(), "data/ (the bundled lake) is missing"
    got, want = _contents(BUNDLED), _contents(full)
    assert {p.relative_to(BUNDLED).as_posix() for t in TABLES for p in lake.table_files(BUNDLED, t)} == \
        {f"{t}/synth-{n}.parquet" for t in TABLES for n in SCENARIOS}
    for t in TABLES:
        a, b = got[t], want[t]
        assert a.columns == b.columns and a.height == b.height, t
        for col in a.columns:
            if a[col].dtype == pl.Float64:
                x, y = a[col].to_numpy(), b[col].to_numpy()
                assert np.array_equal(np.isnan(x), np.isnan(y)), (t, col)
                assert np.allclose(x, y, rtol=1e-12, atol=0, equal_nan=True), (t, col)
            else:
                assert a[col].equals(b[col]), (t, col)


def test_bundled_data_is_small():
    size = sum(p.stat().st_size for p in BUNDLED.rglob("*.parquet"))          # the synthetic lake, ~3.5 MB
    assert 0 < size < 5_000_000


@pytest.mark.parametrize("window,market", [
    (("2024-06-01", "2025-06-01"), {}),
    (("2022-05-01", "2022-09-30"), {}),
    (("2022-05-01", "2022-09-30"), {"protocol": "aave-v2", "collateral": "stETH", "emode": None}),
    (("2025-06-01", "2025-10-01"), {}),
])
def test_bundled_lake_aligns_for_each_scenario(window, market):
    c = Config(run=RunConfig(name="t", start=T(window[0]), end=T(window[1]), data=BUNDLED, block_time=3600),
               market=MarketConfig(**market), strategy=StrategyConfig(), costs=CostsConfig())
    m = market_for(c)
    assert np.isfinite(m.price).all() and np.isfinite(m.eth_usd).all() and np.isfinite(m.gas_gwei).all()
    assert len({s.key for s in m.series}) >= 6
    if market.get("protocol") == "aave-v2":
        assert m.lt[0] == 0.81 and m.bonus[0] == 0.075 and m.pfee[0] == 0.0


def test_the_bundled_lake_replays_stablecoin_debt_markets():
    """wstETH/USDC (calm, steth-depeg) and weETH/USDC (calm) on Aave v3 align from the bundled lake: the price
    is the cross through ETH/USD, and the de-peg window's ETH/USD fall takes wstETH/USDC below what a
    0.75-LTV loop survives (HF at the open LT / LTV = 0.81 / 0.75; liquidation below 0.75 / 0.81 of the start)."""
    from backtest.data.build import build
    from backtest.data.request import MarketRequest

    root = synth_lake()
    for coll, name in (("wstETH", "calm"), ("weETH", "calm"), ("wstETH", "steth-depeg")):
        start, end = WINDOWS[name]
        m = build(MarketRequest(lake=root, start=start, end=end, block_time=3600, collateral=coll, hold=coll,
                                debt="USDC", emode=None), checks=True)
        assert m.derived["price"] == f"{coll}/USDC = {coll}/WETH x ETH/USD / USDC/USD"
        assert m.derived["gas_token"] == m.derived["underlying"] == "ETH/USDC = ETH/USD / USDC/USD"
        assert (m.lt[0], m.ltv[0]) == ((0.81, 0.785) if coll == "wstETH" else (0.75, 0.725))
        # aave-v3 USDC borrow_apr: at most the model at the 95 % utilisation cap, 6.5 % + 60 % x 0.03 / 0.08
        assert 0.0 < m.borrow_apr.min() and m.borrow_apr.max() <= 0.065 + 0.60 * (0.95 - 0.92) / (1 - 0.92) + 1e-12
        assert np.all(np.abs(m.eth_usd - 1.0) <= 0.003)                         # USDC/USD
        if name == "steth-depeg":
            assert m.price.min() / m.price[0] < 0.75 / 0.81
