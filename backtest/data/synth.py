"""Deterministic synthetic markets: the bundled default data and stress shapes for tests.

``synth(name, lake)`` writes one scenario into a lake (hourly resolution) and returns the files written.
Every number comes from ``numpy.random.Generator(PCG64)`` streams with fixed seeds, so two runs give the same
tables. The three scenarios cover disjoint windows, so all of them can live in one lake (``data/``).

Calibration (PROTOCOLS.md, and the real series under ../shared/data where noted):

- market price of the collateral in WETH = exchange rate x a stETH/ETH peg ratio process;
- exchange rate: wstETH ``stEthPerToken`` steps once a day at 12:00 UTC (the Lido oracle report) by a daily
  APR draw (~3 %/yr; ~4 %/yr in 2022), each step capped at +0.075 % as Lido's oracle caps positive rebases;
  stETH's exchange rate is the same rebase growth, starting at 1.0;
- lending rates through the Aave rate model: borrow = base + slope1 * U/U_opt below U_opt, + slope2 *
  (U - U_opt)/(1 - U_opt) above; supply = borrow * U * (1 - reserve factor 0.15). The base is 0 % from 2024
  (the aavescan WETH export is reproduced exactly with base 0, slope1 2.7-2.8 %, U_opt 90 %, slope2 80 %);
  2022 uses PROTOCOLS.md's earliest WETH model (Feb 2023: base 1 %, slope1 3.8 %, slope2 80 %, U_opt 80 %) as
  an approximation for both Aave v2 and v3. The collateral's own supply APR is small (~0.01 %);
- ETH/USD: an hourly mean-reverting log random walk around 3,000 (~60 %/yr volatility);
- gas: hourly base fee lognormal with median 8 gwei (AR(1) in log space), priority fee lognormal (median
  0.3 gwei);
- market_params: the dated defaults of :mod:`backtest.params` for the scenario's protocol/asset/E-mode (the
  entry in force at the window start, dated at the start, plus changes inside the window);
- Morpho Blue wstETH/WETH (``calm`` and ``steth-depeg``): the WETH borrow rate is Morpho's AdaptiveCurveIRM
  (``backtest.irm.irm_step``, hourly) along a utilisation path with a feedback: U = 0.9 - 0.05 ln(r_T /
  2.2 %) + an OU noise (sd ~0.9 pt), so borrowers leave when the market's rate at target is above 2.2 % and
  come back below it; r_T starts at 2.2 %. Borrow median ~2.8 %, 95th percentile ~3.8 %, max ~5.8 %. The
  rows carry the utilisation, so ``market.irm = "adaptive-curve"`` (with ``market.rate_at_target = 0.022``)
  recomputes the same path block by block. Supply APR = borrow x U (no fee). market_params rows: LLTV 94.5 %;
- Compound III WETH market (``calm`` and ``steth-depeg``): utilisation OU around 85 % through a synthetic
  two-slope model (base 1 %, +2.25 % up to the 90 % kink, +80 % above it; not Comet's governance values);
  market_params rows: wstETH borrow CF 0.90, liquidate CF 0.93, liquidation factor 0.95 (the
  ``liquidation_bonus`` column holds 1 - 0.95).

Scenarios (:data:`SCENARIOS`):

- ``calm`` (2024-06-01 -> 2025-06-01): a year of carry on Aave v3 wstETH/WETH E-mode "eth-correlated";
  peg within +-0.1 %, WETH borrow ~2-3 %. Also a weETH restaking leg (its own seed stream, see ``_weeth``):
  weETH rate and price, Aave v3 weETH rates and params, a synthetic 0.5 % slash (``events``), ether.fi points
  and EIGEN rows (``rewards``) and an EIGEN/USD price; and daily mSOL / stATOM series for the Solana and
  Cosmos clocks (``_other_chains``).
- ``steth-depeg`` (2022-05-01 -> 2022-09-30): the June 2022 stETH de-peg. stETH/ETH wobbles to ~0.95 on
  May 12, falls ~7 % (to ~0.935) between 2022-06-10 and 2022-06-18, recovers to ~0.97 by the end of July and
  ~0.99 by September while the exchange rate keeps accruing. Both wstETH/WETH (Aave v3, E-mode
  "eth-correlated", a counterfactual: v3 Ethereum launched in 2023) and stETH/WETH (Aave v2, no E-mode) are
  written, with WETH rates for both protocols; the WETH borrow rate rises to ~5-6 % during the de-peg as
  loopers unwind.
- stablecoin debt (``calm`` and ``steth-depeg``, :func:`_stablecoin_debt`): USDC/USD, Aave v3 USDC rates
  and wstETH (and, in ``calm``, weETH) parameters outside E-mode, so wstETH/USDC and weETH/USDC loops replay
  (their price is the cross through ETH/USD); ``steth-depeg``'s ETH/USD falls from 3,000 to ~2,230
  (-26 %, 44 % below its high) inside the window, deep enough to liquidate a 0.75-LTV wstETH/USDC loop.
- ``rate-spike`` (2025-06-01 -> 2025-10-01): WETH borrow ~2.5 %, above 20 % for about one day (2025-07-08,
  modelled on July 2024) and above 10 % for about a week (2025-07-20 -> 07-27, modelled on July 2025).
"""
from __future__ import annotations

import argparse
import datetime as _dt
import math
import sys
from pathlib import Path
from typing import Callable

import numpy as np
import polars as pl

from backtest import numerics
from backtest.venues import default_params as venue_defaults
from backtest.data import lake as _lake
from backtest.data import lake_write as _lake_write
from backtest.errors import InputError

HOUR = 3600
DAY = 86400
Y = 365 * DAY
RESERVE_FACTOR = 0.15
LIDO_DAILY_CAP = 0.00075          # max positive rebase per report (0.075 %)

SCENARIOS: dict[str, str] = {
    "calm": "2024-06-01 to 2025-06-01: a year of wstETH/WETH carry on Aave v3 E-mode, peg within 0.1 %, "
            "WETH borrow ~2-3 %; Morpho Blue (94.5 % LLTV, AdaptiveCurveIRM) and Compound III WETH markets",
    "steth-depeg": "2022-05-01 to 2022-09-30: June-2022-style stETH de-peg to ~0.935 (May-12 wobble to ~0.95), "
                   "recovery by September; wstETH on Aave v3 and stETH on Aave v2, WETH borrow up to ~5-6 %; "
                   "counterfactual Morpho Blue and Compound III WETH markets",
    "rate-spike": "2025-06-01 to 2025-10-01: WETH borrow ~2.5 % with a day above 20 % and a week above 10 %",
}


def _ts(s: str) -> int:
    """UTC epoch seconds of an ISO date or 'YYYY-MM-DD HH:MM'."""
    d = _dt.datetime.fromisoformat(s)
    return int(d.replace(tzinfo=_dt.timezone.utc).timestamp())


WINDOWS: dict[str, tuple[int, int]] = {
    "calm": (_ts("2024-06-01"), _ts("2025-06-01")),
    "steth-depeg": (_ts("2022-05-01"), _ts("2022-09-30")),
    "rate-spike": (_ts("2025-06-01"), _ts("2025-10-01")),
}
_SEEDS = {"calm": 20240601, "steth-depeg": 20220501, "rate-spike": 20250601}

# Aave rate-model parameters used by the scenarios: (base, slope1, slope2, U_opt)
MODEL_2022 = (0.01, 0.038, 0.80, 0.80)       # PROTOCOLS.md, WETH Feb 2023 (earliest given)
MODEL_2024 = (0.0, 0.027, 0.80, 0.90)        # WETH from Jun 2024 (base 0 as in the aavescan export)
MODEL_WSTETH = (0.0025, 0.045, 0.80, 0.45)   # wstETH reserve on Aave v3 (matches the aavescan wstETH export)
MODEL_COMET = (0.01, 0.0225, 0.80, 0.90)     # synthetic Compound III WETH model (not governance values)
MORPHO_RT0 = 0.022                           # Morpho rate at target at the start of each window
MORPHO_FEEDBACK = 0.05                       # U = 0.9 - 0.05 ln(r_T / 2.2 %) + noise


# --------------------------------------------------------------------------------------------- pieces
def _hours(start: int, end: int) -> np.ndarray:
    """Hourly times on [start, end) (windows that touch share no point)."""
    return np.arange(start, end, HOUR, dtype=np.int64)


def _ar1(rng: np.random.Generator, n: int, mu: float, theta: float, sigma: float, x0: float | None = None,
         ) -> np.ndarray:
    """x[t+1] = x[t] + theta * (mu - x[t]) + sigma * eps (an hourly Ornstein-Uhlenbeck step)."""
    eps = rng.standard_normal(n)
    x = np.empty(n)
    x[0] = mu if x0 is None else x0
    a = 1.0 - theta
    for i in range(1, n):
        x[i] = mu + a * (x[i - 1] - mu) + sigma * eps[i]
    return x


def _path(ts: np.ndarray, anchors: list[tuple[str, float]]) -> np.ndarray:
    """Piecewise-linear path through (time, level) anchors, flat beyond the ends."""
    at = np.array([_ts(t) for t, _ in anchors], dtype=np.float64)
    lv = np.array([v for _, v in anchors], dtype=np.float64)
    return np.interp(ts.astype(np.float64), at, lv)


def rate_model(u: np.ndarray, model: tuple[float, float, float, float]) -> tuple[np.ndarray, np.ndarray]:
    """(borrow APR, supply APR) of the Aave two-slope model at utilisation ``u``."""
    base, s1, s2, uopt = model
    u = np.asarray(u, dtype=np.float64)
    borrow = np.where(u <= uopt, base + s1 * u / uopt, base + s1 + s2 * (u - uopt) / (1.0 - uopt))
    supply = borrow * u * (1.0 - RESERVE_FACTOR)
    return borrow, supply


def _indices(rate: np.ndarray, dt: float = HOUR) -> np.ndarray:
    """A cumulative index starting at 1.0 that grows by (1 + rate * dt / Y) per step."""
    growth = 1.0 + rate[:-1] * dt / Y
    return np.concatenate([[1.0], np.cumprod(growth)])


def lido_steps(rng: np.random.Generator, start: int, end: int, r0: float, apr: float, apr_sd: float,
               ) -> tuple[np.ndarray, np.ndarray]:
    """Exchange-rate points: (start, r0), then one step per day at 12:00 UTC before ``end``.

    Each step grows the rate by a daily APR draw / 365, floored at 0 and capped at +0.075 %.
    """
    first = (start // DAY) * DAY + 12 * HOUR
    if first <= start:
        first += DAY
    steps = np.arange(first, end, DAY, dtype=np.int64)
    g = np.clip(rng.normal(apr, apr_sd, steps.shape[0]) / 365.0, 0.0, LIDO_DAILY_CAP)
    rates = r0 * np.cumprod(1.0 + g)
    return np.concatenate([[start], steps]), np.concatenate([[r0], rates])


def _step_value(step_ts: np.ndarray, step_val: np.ndarray, ts: np.ndarray) -> np.ndarray:
    return step_val[np.searchsorted(step_ts, ts, side="right") - 1]


def _calm_peg(rng: np.random.Generator, n: int) -> np.ndarray:
    """stETH/ETH near par: OU around -0.04 % (sd ~0.025 %), clipped to +-0.099 %."""
    return 1.0 + np.clip(_ar1(rng, n, -0.0004, 0.05, 0.00008), -0.00099, 0.00099)


def _eth_usd(rng: np.random.Generator, n: int) -> np.ndarray:
    return numerics.exp(_ar1(rng, n, math.log(3000.0), 1.0 / (24 * 60), 0.0065))


def _gas(rng_base: np.random.Generator, rng_prio: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    sd, phi = 0.6, 0.9
    z = _ar1(rng_base, n, 0.0, 1.0 - phi, sd * np.sqrt(1.0 - phi * phi))
    base = 8.0 * numerics.exp(z)
    prio = np.minimum(0.3 * numerics.exp(0.9 * rng_prio.standard_normal(n)), 50.0)
    return base, prio


def _collateral_util(rng: np.random.Generator, n: int) -> np.ndarray:
    return np.clip(_ar1(rng, n, 0.02, 0.02, 0.0006), 0.005, 0.05)


# ------------------------------------------------------------------------------------------- frames
def _prices(ts: np.ndarray, base: str, quote: str, price: np.ndarray, source: str) -> pl.DataFrame:
    return pl.DataFrame({"ts": ts, "base": base, "quote": quote, "price": price, "source": source})


def _rates(ts: np.ndarray, protocol: str, asset: str, u: np.ndarray, borrow: np.ndarray, supply: np.ndarray,
           ) -> pl.DataFrame:
    return pl.DataFrame({
        "ts": ts, "protocol": protocol, "asset": asset, "supply_apr": supply, "borrow_apr": borrow,
        "utilization": u, "supply_index": _indices(supply), "borrow_index": _indices(borrow),
    })


def _market_params(protocol: str, asset: str, emode: str | None, start: int, end: int) -> pl.DataFrame:
    rows = []
    for ts, ltv, lt, bonus, fee in venue_defaults(protocol, asset, emode):
        if ts < end:
            rows.append((max(ts, start), ltv, lt, bonus, fee))
    # keep only the last entry dated at the start (the one in force then) and the later ones
    rows = [r for i, r in enumerate(rows) if not (r[0] == start and i + 1 < len(rows) and rows[i + 1][0] == start)]
    return pl.DataFrame(
        {"ts": [r[0] for r in rows], "protocol": protocol, "asset": asset, "emode": emode,
         "ltv": [r[1] for r in rows], "liquidation_threshold": [r[2] for r in rows],
         "liquidation_bonus": [r[3] for r in rows], "protocol_fee": [r[4] for r in rows]},
        schema_overrides={"emode": pl.String},
    )


def morpho_rates(rng: np.random.Generator, ts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(utilisation, borrow APR) of a Morpho Blue WETH market: the AdaptiveCurveIRM (hourly steps) along a
    utilisation that leans against the rate at target (see the module docstring)."""
    from backtest.irm import irm_step

    n = ts.shape[0]
    noise = _ar1(rng, n, 0.0, 0.05, 0.004)
    u = np.empty(n)
    rate = np.empty(n)
    rt = MORPHO_RT0
    for i in range(n):
        u[i] = min(max(0.9 - MORPHO_FEEDBACK * math.log(rt / MORPHO_RT0) + noise[i], 0.75), 0.99)
        dt = float(ts[i + 1] - ts[i]) if i + 1 < n else float(HOUR)
        rate[i], rt = irm_step(rt, float(u[i]), dt)
    return u, rate


MODEL_USDC = (0.0, 0.065, 0.60, 0.92)        # synthetic Aave v3 USDC two-slope model (not governance values)
#: Aave v3 collateral outside E-mode (against a stablecoin debt): (ltv, lt, bonus, protocol fee); synthetic
#: values near Aave v3 Ethereum's (wstETH 78.5 / 81 / 6 %, weETH 72.5 / 75 / 7 %), not a dated history
AAVE_V3_USD_PARAMS = {"wstETH": (0.785, 0.81, 0.06, 0.10), "weETH": (0.725, 0.75, 0.07, 0.10)}


def _stablecoin_debt(out: _Out, name: str, ts: np.ndarray, start: int, assets: tuple[str, ...], src: str) -> None:
    """What a wstETH/USDC or weETH/USDC loop on Aave v3 needs beyond the ETH-debt series (its own seed stream,
    so every other series is unchanged): USDC/USD (OU around 1.0, within +-0.3 %), Aave v3 USDC rates
    (utilisation OU around 88 % through :data:`MODEL_USDC`) and the collateral's parameters outside E-mode
    (:data:`AAVE_V3_USD_PARAMS`, from the window start). The collateral/USDC price is the lake's cross
    collateral/WETH x ETH/USD / USDC/USD (backtest.data.prices)."""
    rngs = [np.random.Generator(np.random.PCG64(x)) for x in np.random.SeedSequence(_SEEDS[name] + 3).spawn(2)]
    n = ts.shape[0]
    out.add("prices", _prices(ts, "USDC", "USD", 1.0 + np.clip(_ar1(rngs[0], n, 0.0, 0.05, 0.0002), -0.003, 0.003),
                              src))
    u = np.clip(_ar1(rngs[1], n, 0.88, 0.02, 0.004), 0.70, 0.95)
    b, s_ = rate_model(u, MODEL_USDC)
    out.add("rates", _rates(ts, "aave-v3", "USDC", u, b, s_))
    for a in assets:
        ltv, lt, bonus, fee = AAVE_V3_USD_PARAMS[a]
        out.add("market_params", pl.DataFrame({"ts": [start], "protocol": "aave-v3", "asset": a, "emode": [None],
                                               "ltv": [ltv], "liquidation_threshold": [lt],
                                               "liquidation_bonus": [bonus], "protocol_fee": [fee]},
                                              schema_overrides={"emode": pl.String}))


def _venues(out: _Out, ts: np.ndarray, rngs: list[np.random.Generator], start: int, end: int) -> None:
    """Morpho Blue and Compound III WETH markets with wstETH collateral."""
    u, b = morpho_rates(rngs[8], ts)
    out.add("rates", _rates(ts, "morpho-blue", "WETH", u, b, b * u))
    out.add("market_params", _market_params("morpho-blue", "wstETH", None, start, end))
    u = np.clip(_ar1(rngs[9], ts.shape[0], 0.85, 0.02, 0.004), 0.60, 0.95)
    b, s = rate_model(u, MODEL_COMET)
    out.add("rates", _rates(ts, "compound-v3", "WETH", u, b, s))
    out.add("market_params", _market_params("compound-v3", "wstETH", None, start, end))


class _Out:
    """Collects the frames of one scenario per table, then writes them (one file per table)."""

    def __init__(self, name: str):
        self.name = name
        self.frames: dict[str, list[pl.DataFrame]] = {}

    def add(self, table: str, df: pl.DataFrame) -> None:
        self.frames.setdefault(table, []).append(df)

    def write(self, lake: str | Path) -> list[Path]:
        checked = {t: _lake.validate(t, pl.concat(fs, how="diagonal_relaxed")) for t, fs in self.frames.items()}
        paths = []
        with _lake_write.transaction(lake):   # every file of the scenario lands, or none does
            for table, df in checked.items():
                paths.append(_lake_write.write_table(lake, table, df, f"synth-{self.name}",
                                                     metadata={"source": f"synth:{self.name}"}))
        return sorted(paths)


# ------------------------------------------------------------------------------------------ scenarios
def _streams(name: str, k: int = 10) -> list[np.random.Generator]:
    return [np.random.Generator(np.random.PCG64(s)) for s in np.random.SeedSequence(_SEEDS[name]).spawn(k)]


def _common(out: _Out, ts: np.ndarray, rngs: list[np.random.Generator], src: str) -> None:
    out.add("prices", _prices(ts, "ETH", "USD", _eth_usd(rngs[2], ts.shape[0]), src))
    base, prio = _gas(rngs[6], rngs[7], ts.shape[0])
    out.add("gas", pl.DataFrame({"ts": ts, "base_fee_gwei": base, "priority_fee_gwei": prio}))


def _wsteth_collateral_rates(out: _Out, ts: np.ndarray, rng: np.random.Generator, protocol: str) -> None:
    u = _collateral_util(rng, ts.shape[0])
    b, s = rate_model(u, MODEL_WSTETH)
    out.add("rates", _rates(ts, protocol, "wstETH", u, b, s))


def _calm(out: _Out) -> None:
    start, end = WINDOWS["calm"]
    ts = _hours(start, end)
    n = ts.shape[0]
    rngs = _streams("calm")
    src = "synth:calm"
    x_ts, x_val = lido_steps(rngs[1], start, end, 1.1720, 0.030, 0.002)
    out.add("exchange_rates", pl.DataFrame({"ts": x_ts, "token": "wstETH", "underlying": "stETH", "rate": x_val,
                                            "source": src}))
    peg = _calm_peg(rngs[0], n)
    out.add("prices", _prices(ts, "wstETH", "WETH", _step_value(x_ts, x_val, ts) * peg, src))
    u = np.clip(_ar1(rngs[3], n, 0.85, 0.02, 0.004), 0.70, 0.895)
    b, s = rate_model(u, MODEL_2024)
    out.add("rates", _rates(ts, "aave-v3", "WETH", u, b, s))
    _wsteth_collateral_rates(out, ts, rngs[5], "aave-v3")
    out.add("market_params", _market_params("aave-v3", "wstETH", "eth-correlated", start, end))
    _venues(out, ts, rngs, start, end)
    _common(out, ts, rngs, src)
    _weeth(out, ts, start, end, src)
    _other_chains(out, start, end, src)
    _stablecoin_debt(out, "calm", ts, start, ("wstETH", "weETH"), src)


WEETH_SLASH_AT = "2025-02-10 12:00"    # synthetic: no weETH slash has happened on mainnet
WEETH_SLASH = 0.005                    # fraction of the exchange rate lost
EIGEN_FROM = "2024-10-01"              # EIGEN became transferable on 2024-09-30
EIGEN_PER_WEEK = 0.09                  # EIGEN per weETH per week (~0.5 %/yr of the value at ~3.5 USD)
POINTS_PER_DAY = 1.0                   # ether.fi loyalty points per weETH per day


def _weeth(out: _Out, ts: np.ndarray, start: int, end: int, src: str) -> None:
    """A weETH restaking leg for ``calm`` (its own seed stream, so the wstETH series are unchanged): weETH->eETH
    exchange rate (daily steps ~2.8 %/yr from 1.045; the lake's rate is the un-slashed one), weETH/WETH price =
    rate x peg (OU around -0.1 %, within +-0.3 %), cut by the slash at ``WEETH_SLASH_AT`` (the ``events`` row that
    align applies to the exchange rate), Aave v3 weETH supply rates and E-mode params, ether.fi points (1 per
    weETH per day from the start) and EIGEN (0.09 per weETH per week, weekly rows from 2024-10-01) with an
    EIGEN/USD price (OU around 3.5 USD from 2024-10-01)."""
    rngs = [np.random.Generator(np.random.PCG64(x)) for x in np.random.SeedSequence(_SEEDS["calm"] + 1).spawn(4)]
    n = ts.shape[0]
    x_ts, x_val = lido_steps(rngs[0], start, end, 1.0450, 0.028, 0.002)
    out.add("exchange_rates", pl.DataFrame({"ts": x_ts, "token": "weETH", "underlying": "eETH", "rate": x_val,
                                            "source": src}))
    cut = np.where(ts >= _ts(WEETH_SLASH_AT), 1.0 - WEETH_SLASH, 1.0)
    peg = 1.0 + np.clip(_ar1(rngs[1], n, -0.001, 0.05, 0.0002), -0.003, 0.003)
    out.add("prices", _prices(ts, "weETH", "WETH", _step_value(x_ts, x_val, ts) * peg * cut, src))
    u = _collateral_util(rngs[2], n)
    b, s_ = rate_model(u, MODEL_WSTETH)
    out.add("rates", _rates(ts, "aave-v3", "weETH", u, b, s_))
    out.add("market_params", _market_params("aave-v3", "weETH", "eth-correlated", start, end))
    out.add("events", pl.DataFrame({"ts": [_ts(WEETH_SLASH_AT)], "token": "weETH", "kind": "slash",
                                    "value": [WEETH_SLASH]}))
    weeks = np.arange(_ts(EIGEN_FROM), end, 7 * DAY, dtype=np.int64)
    out.add("rewards", pl.concat([
        pl.DataFrame({"ts": [start], "token": "weETH", "kind": "points", "apr": [None], "amount": [POINTS_PER_DAY],
                      "unit": "points per weETH per day"}, schema_overrides={"apr": pl.Float64}),
        pl.DataFrame({"ts": weeks, "token": "weETH", "kind": "EIGEN", "apr": None,
                      "amount": np.full(weeks.shape[0], EIGEN_PER_WEEK), "unit": "EIGEN per weETH per week"},
                     schema_overrides={"apr": pl.Float64}),
    ]))
    e_ts = ts[ts >= _ts(EIGEN_FROM)]
    out.add("prices", _prices(e_ts, "EIGEN", "USD", numerics.exp(_ar1(rngs[3], e_ts.shape[0], math.log(3.5), 0.01, 0.01)),
                              src))


# (token, underlying, debt, rate at start, staking APR, USD price of the debt asset, lending label, borrow APR)
OTHER_CHAIN_LSTS = (
    ("mSOL", "SOL", "SOL", 1.2400, 0.075, 150.0, "kamino", 0.065),     # Marinade on Solana
    ("stATOM", "ATOM", "ATOM", 1.4500, 0.165, 6.0, "mars", 0.12),      # Stride on the Cosmos Hub
)


def _other_chains(out: _Out, start: int, end: int, src: str) -> None:
    """Daily series (their own seed stream) for the LSTs of the other chain clocks: the exchange rate (daily
    steps at the staking APR, sd 0.5 %), the DEX price = rate x peg (OU around -0.3 %, within +-1 %), the debt
    asset's USD price (OU in log space) and the borrow APR of a synthetic lending market (labelled ``kamino`` /
    ``mars``: not those protocols' real rates), all daily from the window start."""
    rngs = [np.random.Generator(np.random.PCG64(x)) for x in np.random.SeedSequence(_SEEDS["calm"] + 2).spawn(8)]
    ts = np.arange(start, end, DAY, dtype=np.int64)
    n = ts.shape[0]
    for i, (tok, und, debt, r0, apr, usd, label, borrow) in enumerate(OTHER_CHAIN_LSTS):
        g = np.clip(rngs[4 * i].normal(apr, 0.005, n - 1) / 365.0, 0.0, None)
        rate = r0 * np.concatenate([[1.0], np.cumprod(1.0 + g)])
        out.add("exchange_rates", pl.DataFrame({"ts": ts, "token": tok, "underlying": und, "rate": rate,
                                                "source": src}))
        peg = 1.0 + np.clip(_ar1(rngs[4 * i + 1], n, -0.003, 0.2, 0.001), -0.01, 0.01)
        out.add("prices", _prices(ts, tok, debt, rate * peg, src))
        out.add("prices", _prices(ts, debt, "USD", numerics.exp(_ar1(rngs[4 * i + 2], n, math.log(usd), 0.05, 0.04)), src))
        b = np.clip(_ar1(rngs[4 * i + 3], n, borrow, 0.1, 0.004), 0.0, None)
        out.add("rates", pl.DataFrame({"ts": ts, "protocol": label, "asset": debt, "supply_apr": b * 0.7,
                                       "borrow_apr": b}))


DEPEG_PEG_ANCHORS = [
    ("2022-05-01", 0.9985), ("2022-05-07", 0.9965), ("2022-05-10", 0.985), ("2022-05-12 12:00", 0.951),
    ("2022-05-13 12:00", 0.965), ("2022-05-16", 0.982), ("2022-05-31", 0.985), ("2022-06-07", 0.977),
    ("2022-06-10", 0.969), ("2022-06-12", 0.958), ("2022-06-14", 0.945), ("2022-06-16", 0.940),
    ("2022-06-18 06:00", 0.9355), ("2022-06-20", 0.945), ("2022-06-25", 0.955), ("2022-07-05", 0.962),
    ("2022-07-15", 0.967), ("2022-07-31", 0.972), ("2022-08-15", 0.982), ("2022-09-01", 0.990),
    ("2022-09-15", 0.993), ("2022-09-30", 0.995),
]
DEPEG_UTIL_ANCHORS = [
    ("2022-05-01", 0.55), ("2022-05-11", 0.58), ("2022-05-12 12:00", 0.70), ("2022-05-15", 0.62),
    ("2022-06-01", 0.60), ("2022-06-09", 0.66), ("2022-06-12", 0.76), ("2022-06-14", 0.795),
    ("2022-06-15", 0.8022), ("2022-06-19", 0.8022), ("2022-06-22", 0.78), ("2022-07-01", 0.70),
    ("2022-07-31", 0.64), ("2022-09-30", 0.58),
]
DEPEG_U_MAX = 0.8025      # borrow at most 1 + 3.8 + 80 * 0.0025 / 0.2 = 5.8 %


def _steth_depeg(out: _Out) -> None:
    start, end = WINDOWS["steth-depeg"]
    ts = _hours(start, end)
    n = ts.shape[0]
    rngs = _streams("steth-depeg")
    src = "synth:steth-depeg"
    r0 = 1.0740
    x_ts, x_val = lido_steps(rngs[1], start, end, r0, 0.040, 0.003)
    steth_val = x_val / r0
    out.add("exchange_rates", pl.DataFrame({"ts": x_ts, "token": "wstETH", "underlying": "stETH", "rate": x_val,
                                            "source": src}))
    out.add("exchange_rates", pl.DataFrame({"ts": x_ts, "token": "stETH", "underlying": "ETH",
                                            "rate": steth_val, "source": src}))
    noise = _ar1(rngs[0], n, 0.0, 0.1, 0.0004)
    peg = np.minimum(_path(ts, DEPEG_PEG_ANCHORS) * (1.0 + noise), 1.0)
    out.add("prices", _prices(ts, "wstETH", "WETH", _step_value(x_ts, x_val, ts) * peg, src))
    out.add("prices", _prices(ts, "stETH", "WETH", _step_value(x_ts, steth_val, ts) * peg, src))
    path = _path(ts, DEPEG_UTIL_ANCHORS)
    for proto, rng, offset in (("aave-v3", rngs[3], 0.0), ("aave-v2", rngs[4], 0.02)):
        u = np.clip(path + offset + _ar1(rng, n, 0.0, 0.05, 0.001), 0.30, DEPEG_U_MAX)
        b, s = rate_model(u, MODEL_2022)
        out.add("rates", _rates(ts, proto, "WETH", u, b, s))
    _wsteth_collateral_rates(out, ts, rngs[5], "aave-v3")
    zero = np.zeros(n)
    out.add("rates", _rates(ts, "aave-v2", "stETH", zero, zero, zero))   # stETH was not borrowable on v2
    out.add("market_params", _market_params("aave-v3", "wstETH", "eth-correlated", start, end))
    out.add("market_params", _market_params("aave-v2", "stETH", None, start, end))
    _venues(out, ts, rngs, start, end)
    _common(out, ts, rngs, src)
    _stablecoin_debt(out, "steth-depeg", ts, start, ("wstETH",), src)


SPIKE_DAY = ("2025-07-08", "2025-07-09")        # borrow > 20 % (U ~0.928)
SPIKE_WEEK = ("2025-07-20", "2025-07-27")       # borrow > 10 % (U ~0.914)


def _plateau(ts: np.ndarray, base: np.ndarray, level: np.ndarray, t0: int, t1: int, ramp: int) -> np.ndarray:
    """Blend ``base`` into ``level`` on [t0, t1] with linear ramps of ``ramp`` seconds outside it."""
    t = ts.astype(np.float64)
    w = np.clip(np.minimum((t - (t0 - ramp)) / ramp, ((t1 + ramp) - t) / ramp), 0.0, 1.0)
    return base * (1.0 - w) + level * w


def _rate_spike(out: _Out) -> None:
    start, end = WINDOWS["rate-spike"]
    ts = _hours(start, end)
    n = ts.shape[0]
    rngs = _streams("rate-spike")
    src = "synth:rate-spike"
    x_ts, x_val = lido_steps(rngs[1], start, end, 1.2070, 0.028, 0.002)
    out.add("exchange_rates", pl.DataFrame({"ts": x_ts, "token": "wstETH", "underlying": "stETH", "rate": x_val,
                                            "source": src}))
    peg = _calm_peg(rngs[0], n)
    out.add("prices", _prices(ts, "wstETH", "WETH", _step_value(x_ts, x_val, ts) * peg, src))
    u = np.clip(_ar1(rngs[3], n, 0.835, 0.02, 0.003), 0.75, 0.895)
    jitter = rngs[4].standard_normal(n) * 0.002
    day = np.clip(0.928 + jitter, 0.9235, 0.935)
    week = np.clip(0.914 + jitter, 0.9100, 0.919)
    u = _plateau(ts, u, week, _ts(SPIKE_WEEK[0]), _ts(SPIKE_WEEK[1]), 6 * HOUR)
    u = _plateau(ts, u, day, _ts(SPIKE_DAY[0]), _ts(SPIKE_DAY[1]), 3 * HOUR)
    b, s = rate_model(u, MODEL_2024)
    out.add("rates", _rates(ts, "aave-v3", "WETH", u, b, s))
    _wsteth_collateral_rates(out, ts, rngs[5], "aave-v3")
    out.add("market_params", _market_params("aave-v3", "wstETH", "eth-correlated", start, end))
    _common(out, ts, rngs, src)


_BUILDERS: dict[str, Callable[[_Out], None]] = {"calm": _calm, "steth-depeg": _steth_depeg,
                                                "rate-spike": _rate_spike}
#: every market `synth` writes: the three above (the bundled lake, what `python -m backtest.data.synth` writes with
#: no name) and the stress markets of backtest.data.synth_stress, written only when named
ALL_SCENARIOS: dict[str, str] = dict(SCENARIOS)


def _stress() -> None:
    from backtest.data import synth_stress

    ALL_SCENARIOS.update(synth_stress.SCENARIOS)
    _BUILDERS.update(synth_stress.BUILDERS)


_stress()


def synth(name: str, lake: str | Path) -> list[Path]:
    """Write the synthetic scenario ``name`` into ``lake``; return the Parquet files written (sorted).

    Idempotent: files are named ``<table>/synth-<name>.parquet`` and merged on key + ts, so running it again
    rewrites the same rows.
    """
    if name not in _BUILDERS:
        raise InputError(f"unknown synthetic scenario {name!r} (choose from {', '.join(ALL_SCENARIOS)})")
    out = _Out(name)
    _BUILDERS[name](out)
    return out.write(lake)


def main(argv: list[str] | None = None) -> int:
    """``python -m backtest.data.synth [NAME ...] --into DIR`` (all scenarios when no name is given)."""
    ap = argparse.ArgumentParser(prog="python -m backtest.data.synth", description=__doc__.splitlines()[0])
    ap.add_argument("names", nargs="*", help=f"scenarios ({', '.join(SCENARIOS)}); default: all")
    ap.add_argument("--into", default="data", help="lake folder (default: data)")
    args = ap.parse_args(argv)
    names = args.names or list(SCENARIOS)
    with _lake_write.transaction(args.into):  # all scenarios of the command, or none
        paths = [p for name in names for p in synth(name, args.into)]
    for p in paths:
        print(p)
    return 0


if __name__ == "__main__":
    sys.exit(main())
