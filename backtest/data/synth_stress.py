"""Synthetic stress markets calibrated to documented episodes (``backtest data synth ezeth-2024 | capo-2026``).

Both are SYNTHETIC: shapes fitted to the few facts PROTOCOLS.md documents, not replays of on-chain history.
Everything else (ETH/USD, gas, the peg noise) comes from the seeded generators of :mod:`backtest.data.synth`.

- ``ezeth-2024`` (2024-04-01 -> 2024-05-15): the ezETH crash of 24 Apr 2024 on Morpho Blue's ezETH/WETH 86 %
  LLTV market. Documented (PROTOCOLS.md): ezETH "fell below 0.8 on the oracle and far lower on DEXes on 24 Apr
  2024 (Morpho 86 % LLTV market: 138 liquidations, some bad debt)"; Renzo had no withdrawals then (no queue exit).
  Calibration: the exchange rate grows ~3 %/yr from 1.0130 (daily steps); the oracle (``oracle_prices``
  morpho-blue ezETH/WETH, for ``market.oracle = "chainlink"``) and the DEX price follow the peg x rate with a
  crash on 2024-04-24: the oracle's peg falls to 0.79 at 01:00 UTC (below 0.8, as documented), the DEX's to
  0.68 ("far lower": the DEX depth is not documented, 0.68 is an assumption), both back to ~0.97 by
  2024-04-25 and ~0.99 a week later. The WETH borrow rate is Morpho's AdaptiveCurveIRM along a utilisation
  path (as ``calm``'s Morpho market). market_params: LLTV 86 %. The hours of the trough and the recovery path
  are assumptions; the depths are the documented facts.
- ``capo-2026`` (2026-02-01 -> 2026-04-01): a calm wstETH/WETH market for the Aave v3 CAPO incident of
  10 Mar 2026, replayed with a ``capo_snapshot`` scenario (the snapshot set 2.85 % below the live rate,
  PROTOCOLS.md). The lake itself holds no incident: wstETH's rate grows ~2.5 %/yr from 1.2250, the peg is
  ``calm``'s, Aave v3 WETH rates follow the 2026 curve (slope1 2.2 %, slope2 6 %, U_opt 92 %, base 0 as in the
  aavescan export) along a utilisation near 88 %, and the wstETH/WETH liquid E-mode parameters (94.5 / 96 / 1 %).
"""
from __future__ import annotations

import numpy as np
import polars as pl

from backtest.data import synth as S

WINDOWS = {"ezeth-2024": (S._ts("2024-04-01"), S._ts("2024-05-15")),
           "capo-2026": (S._ts("2026-02-01"), S._ts("2026-04-01"))}
SEEDS = {"ezeth-2024": 20240424, "capo-2026": 20260310}
SCENARIOS = {
    "ezeth-2024": "2024-04-01 to 2024-05-15: SYNTHETIC, calibrated to the documented ezETH crash of 24 Apr 2024 "
                  "(oracle below 0.8, DEX far lower; Morpho ezETH/WETH 86 % LLTV)",
    "capo-2026": "2026-02-01 to 2026-04-01: SYNTHETIC calm wstETH/WETH on Aave v3 (liquid E-mode) for the CAPO "
                 "incident of 10 Mar 2026 (replayed with a capo_snapshot scenario)",
}

EZETH_LLTV = 0.86
# (time, peg) anchors of the crash: the oracle's and the DEX's ezETH/ETH ratio over the exchange rate
EZETH_ORACLE_PEG = [("2024-04-01", 0.998), ("2024-04-23 20:00", 0.996), ("2024-04-24 01:00", 0.79),
                    ("2024-04-24 06:00", 0.93), ("2024-04-25", 0.97), ("2024-05-01", 0.99), ("2024-05-15", 0.995)]
EZETH_DEX_PEG = [("2024-04-01", 0.997), ("2024-04-23 20:00", 0.995), ("2024-04-24 01:00", 0.68),
                 ("2024-04-24 06:00", 0.92), ("2024-04-25", 0.97), ("2024-05-01", 0.99), ("2024-05-15", 0.995)]
MODEL_2026 = (0.0, 0.022, 0.06, 0.92)


def _streams(name: str) -> list[np.random.Generator]:
    return [np.random.Generator(np.random.PCG64(s)) for s in np.random.SeedSequence(SEEDS[name]).spawn(10)]


def ezeth_2024(out) -> None:
    start, end = WINDOWS["ezeth-2024"]
    ts = S._hours(start, end)
    n = ts.shape[0]
    rngs = _streams("ezeth-2024")
    src = "synth:ezeth-2024"
    x_ts, x_val = S.lido_steps(rngs[1], start, end, 1.0130, 0.030, 0.002)
    out.add("exchange_rates", pl.DataFrame({"ts": x_ts, "token": "ezETH", "underlying": "ETH", "rate": x_val,
                                            "source": src}))
    rate = S._step_value(x_ts, x_val, ts)
    noise = S._ar1(rngs[0], n, 0.0, 0.1, 0.0003)
    dex = np.minimum(S._path(ts, EZETH_DEX_PEG) * (1.0 + noise), 1.0) * rate
    out.add("prices", S._prices(ts, "ezETH", "WETH", dex, src))
    oracle = S._path(ts, EZETH_ORACLE_PEG) * rate
    out.add("oracle_prices", pl.DataFrame({"ts": ts, "protocol": "morpho-blue", "asset": "ezETH", "quote": "WETH",
                                           "price": oracle}))
    u, b = S.morpho_rates(rngs[3], ts)
    out.add("rates", S._rates(ts, "morpho-blue", "WETH", u, b, b * u))
    out.add("market_params", pl.DataFrame({"ts": [start], "protocol": "morpho-blue", "asset": "ezETH",
                                           "emode": [None], "ltv": [EZETH_LLTV],
                                           "liquidation_threshold": [EZETH_LLTV],
                                           "liquidation_bonus": [min(1.15, 1 / (0.3 * EZETH_LLTV + 0.7)) - 1],
                                           "protocol_fee": [0.0]}, schema_overrides={"emode": pl.String}))
    S._common(out, ts, rngs, src)


def capo_2026(out) -> None:
    start, end = WINDOWS["capo-2026"]
    ts = S._hours(start, end)
    n = ts.shape[0]
    rngs = _streams("capo-2026")
    src = "synth:capo-2026"
    x_ts, x_val = S.lido_steps(rngs[1], start, end, 1.2250, 0.025, 0.002)
    out.add("exchange_rates", pl.DataFrame({"ts": x_ts, "token": "wstETH", "underlying": "stETH", "rate": x_val,
                                            "source": src}))
    out.add("prices", S._prices(ts, "wstETH", "WETH", S._step_value(x_ts, x_val, ts) * S._calm_peg(rngs[0], n), src))
    u = np.clip(S._ar1(rngs[3], n, 0.88, 0.02, 0.004), 0.75, 0.915)
    b, s = S.rate_model(u, MODEL_2026)
    out.add("rates", S._rates(ts, "aave-v3", "WETH", u, b, s))
    S._wsteth_collateral_rates(out, ts, rngs[5], "aave-v3")
    out.add("market_params", S._market_params("aave-v3", "wstETH", "wsteth-weth", start, end))
    S._common(out, ts, rngs, src)


BUILDERS = {"ezeth-2024": ezeth_2024, "capo-2026": capo_2026}
