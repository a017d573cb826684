"""The Aave family: Aave v3 (``aave-v3``), Aave v2 (``aave-v2``) and SparkLend (``spark``, an Aave v3 fork).

Rules (PROTOCOLS.md "Aave v3"; the kernel's ext/_aave.pxd, the reference's Replay.liquidate_aave): HF = collateral
value x LT / debt; liquidation while HF < 1 with the close factor (50 % above HF 0.95, 100 % at or below; Aave v2
a fixed 50 %), seized = repaid x LB / price, the protocol fee (seized - seized / LB) x fee (none on v2); Aave v3
and Spark follow the v3.3 rules ($2,000 full close, $1,000 leftovers, deficit) from their v33_from. Interest:
linear liquidity index, 3-term binomial variable borrow index (MathUtils).

Dated default risk parameters, per (protocol, collateral asset, E-mode), as ``(ts, ltv, liquidation_threshold,
liquidation_bonus, protocol_fee)`` entries in force from ``ts`` (0 = from the beginning of the data) until the
next one; the bonus is a fraction (0.01 = LB 1.01), the fee the protocol's share of the bonus. Sources:
- Aave v3 E-mode "ETH correlated" (category 1): 90 / 93 / 1 % until 2024-01-21, then 93 / 95 / 1 %
  (PROTOCOLS.md). Aave v3 Ethereum launched on 2023-01-27; entries before that date are counterfactual (they
  let the 2022 de-peg be replayed "as if" on v3).
- Aave v3 liquid E-modes (2025-03): wstETH/WETH 94.5 / 96 / 1 %; weETH, rsETH, ezETH/WETH 93 / 95 / 1 %
  (PROTOCOLS.md). Dated 2025-03-01 here (the month they were created).
- Aave v3 liquidation protocol fee: 10 % for WETH and the ETH LSTs/LRTs (PROTOCOLS.md).
- Aave v2 stETH (no E-mode): listed with LTV 70 % / LT 75 % / bonus 7.5 % (Aave governance ARC "Add support
  for stETH (Lido)" and Lido's listing constants ``liquidationBonus: 10750`` in lidofinance/
  aave-asteth-deployment). AIP-75 (Gauntlet, "Freezing UST and Updating stETH Parameters", executed on-chain
  2022-05-19) states the values in force before it as LTV 73 % / LT 75 % and set LTV 69 % / LT 81 %, leaving
  the 7.5 % bonus unchanged. PROTOCOLS.md dates the change "May 2022"; it is dated 2022-05-01 here so that
  a replay of the whole of May 2022 uses the post-AIP values (the on-chain switch was 2022-05-19).
  Aave v2 has no liquidation protocol fee (0).
- Spark (SparkLend, an Aave v3 fork) E-mode "ETH" (category 1): 90 / 93 / 1 % at launch (Spark's own
  deployment config ``script/input/1/config.json`` in marsfoundation/sparklend-deployments), LTV raised to
  92 % (LT 93 %, bonus 1 % unchanged) by the Spark spell of 2024-03-06 (marsfoundation/spark-spells
  ``SparkEthereum_20240306``; its on-chain execution date is a few days later and is not confirmed here).
  Spark admitted WETH, wstETH and rETH to that category (weETH, ezETH, rsETH were listed outside it).
  Spark's liquidation protocol fee for these reserves is not confirmed; 10 % is used as for Aave v3 (Spark's
  newer listings set 10 %).
"""
from __future__ import annotations

from typing import Any, Callable, Mapping

from backtest.errors import ConfigError, DataError
from backtest.venues.base import NEVER, Entry, Venue, utc_date

AAVE_V3_EMODE_2024 = utc_date("2024-01-21")      # ETH-correlated E-mode 90/93 -> 93/95
AAVE_V3_LIQUID_EMODES = utc_date("2025-03-01")   # wstETH/WETH and LRT/WETH liquid E-modes
AAVE_V2_STETH_2022 = utc_date("2022-05-01")      # AIP-75 stETH LTV 73 -> 69, LT 75 -> 81 (on-chain 2022-05-19)
SPARK_EMODE_2024 = utc_date("2024-03-06")        # Spark ETH E-mode LTV 90 -> 92

AAVE_V3_PROTOCOL_FEE = 0.10

#: Aave v3.3's liquidation rules ($2,000 full close factor, $1,000 leftovers, deficit write-off), from
#: market.v33_from when the config sets it, else from these dates. Aave v3 on Ethereum: 2025-02-25.
#: Spark (an Aave v3 fork) keeps the v3.0-3.2 rules: no source found dates an adoption of v3.3 by Spark
#: (PROTOCOLS.md), so it has no date here and a replay applies v3.3 to Spark only with a dated market.v33_from.
AAVE_V33_FROM = utc_date("2025-02-25")
V33_FROM: dict[str, int | None] = {"aave-v3": AAVE_V33_FROM, "spark": None}

#: ETH and the ETH LSTs/LRTs that the defaults cover in the Aave v3 "eth-correlated" category
ETH_ASSETS = frozenset({"WETH", "ETH", "wstETH", "stETH", "rETH", "cbETH", "weETH", "osETH", "ETHx", "ezETH",
                        "rsETH"})
LRT_LIQUID = frozenset({"weETH", "rsETH", "ezETH"})
SPARK_ETH_EMODE = frozenset({"WETH", "ETH", "wstETH", "rETH"})

_AAVE_V3_ETH_CORRELATED: list[Entry] = [
    (0, 0.90, 0.93, 0.01, AAVE_V3_PROTOCOL_FEE),
    (AAVE_V3_EMODE_2024, 0.93, 0.95, 0.01, AAVE_V3_PROTOCOL_FEE),
]
_AAVE_V3_WSTETH_WETH: list[Entry] = [(AAVE_V3_LIQUID_EMODES, 0.945, 0.96, 0.01, AAVE_V3_PROTOCOL_FEE)]
_AAVE_V3_LRT_WETH: list[Entry] = [(AAVE_V3_LIQUID_EMODES, 0.93, 0.95, 0.01, AAVE_V3_PROTOCOL_FEE)]
_AAVE_V2_STETH: list[Entry] = [
    (0, 0.73, 0.75, 0.075, 0.0),
    (AAVE_V2_STETH_2022, 0.69, 0.81, 0.075, 0.0),
]
_SPARK_ETH: list[Entry] = [
    (0, 0.90, 0.93, 0.01, AAVE_V3_PROTOCOL_FEE),
    (SPARK_EMODE_2024, 0.92, 0.93, 0.01, AAVE_V3_PROTOCOL_FEE),
]


def _aave_v3_defaults(asset: str, emode: str | None, debt: str) -> list[Entry] | None:
    em = emode.lower() if isinstance(emode, str) else None
    if em == "eth-correlated" and asset in ETH_ASSETS:
        return _AAVE_V3_ETH_CORRELATED
    if em == "wsteth-weth" and asset == "wstETH":
        return _AAVE_V3_WSTETH_WETH
    if em == "lrt-weth" and asset in LRT_LIQUID:
        return _AAVE_V3_LRT_WETH
    return None


def _aave_v2_defaults(asset: str, emode: str | None, debt: str) -> list[Entry] | None:
    em = emode.lower() if isinstance(emode, str) else None
    return _AAVE_V2_STETH if em is None and asset == "stETH" else None


def _spark_defaults(asset: str, emode: str | None, debt: str) -> list[Entry] | None:
    em = emode.lower() if isinstance(emode, str) else None
    return _SPARK_ETH if em == "eth-correlated" and asset in SPARK_ETH_EMODE else None


# ---------------------------------------------------------------------------------------------- config
KEYS = ("emode", "ltv", "liquidation_threshold", "liquidation_bonus", "liquidation_protocol_fee",
        "close_factor", "supply_rate", "v33_from")
#: what the Aave family's own keys mean, told to a venue that does not take them
MEANINGS = {
    "v33_from": "v33_from dates the Aave v3.3 liquidation rules, which {protocol} does not follow",
}


def _rules(ctx: Any, protocol: str, m: dict, table: Mapping, refuse: Callable[[], None]) -> None:
    """aave-v2 has no E-mode; aave-v3 and Spark date the v3.3 liquidation rules (v33_from)."""
    if protocol == "aave-v2":
        if m.get("emode") is not None:
            raise ctx.fail(("market", "emode"), 'aave-v2 has no E-mode; use emode = "none"', table["emode"])
        m["emode"] = None
    refuse()
    if protocol in V33_FROM and "v33_from" not in m:
        m["v33_from"] = v33_from(protocol)     # Spark: never, unless a dated market.v33_from


def v33_from(protocol: str) -> int:
    """When ``protocol`` adopted Aave v3.3's liquidation rules (epoch seconds), or NEVER."""
    ts = V33_FROM.get(protocol)
    return NEVER if ts is None else ts


def check_target(cfg: Any, market: Any, coll: str) -> None:
    """strategy.target_ltv within the max LTV and below the liquidation threshold in force at the start
    (Aave family and the generic venue; Compound III says "borrow collateral factor")."""
    st, mk = cfg.strategy, cfg.market
    if st.kind not in ("loop", "flash-loan"):
        return
    ltv0, lt0 = float(market.ltv[0]), float(market.lt[0])
    from backtest.venues import venue

    what = venue(mk.protocol).ltv_name
    where = f" (emode {mk.emode})" if mk.emode is not None else ""
    if st.target_ltv > ltv0:
        raise ConfigError(
            f"strategy.target_ltv = {st.target_ltv} is above the {what} {ltv0:g} in force at the start "
            f"for {mk.protocol} {coll}/{mk.debt}{where}; lower it or set market.ltv"
        )
    if st.target_ltv >= lt0:
        raise ConfigError(
            f"strategy.target_ltv = {st.target_ltv} is at or above the liquidation threshold {lt0:g}"
        )


def check_v33_usd(market: Any, v33_from: int, debt: str) -> None:
    """The v3.3 rules' USD thresholds need the debt asset's USD price at every block from v33_from."""
    import numpy as np

    late = market.ts >= v33_from
    if late.any() and np.isnan(market.eth_usd[late]).any():
        raise DataError(
            f"prices {debt}/USD: missing for blocks after {v33_from} (Aave v3.3 liquidation rules "
            f"use USD thresholds); add a USD price series for {debt} to the lake"
        )


# ------------------------------------------------------------------------------------------- rate curve
#: The WETH reserve's interest-rate curve, dated: ``(from_ts, base, slope1, slope2, U_opt)``, in force from
#: ``from_ts`` until the next entry (PROTOCOLS.md "Rate model", which dates the changes by month or year; the day
#: used here is said per entry). The first entry also stands in before its date (Aave v2 in 2022, whose WETH curve
#: governance aligned with v3's in Jan 2023, and counterfactual v3 replays before its launch).
WETH_RATE_CURVE: list[tuple[int, float, float, float, float]] = [
    (0, 0.01, 0.038, 0.80, 0.80),                       # Feb 2023 (v3 launch 2023-01-27): base 1 %, 3.8 %, 80 %, 80 %
    (utc_date("2023-10-13"), 0.01, 0.028, 0.80, 0.80),  # Oct 2023: slope1 2.8 % (ARFC of 2023-10-13)
    (utc_date("2024-01-01"), 0.01, 0.028, 0.80, 0.90),  # Jan 2024: U_opt 90 % (day not given: the 1st)
    (utc_date("2024-06-01"), 0.01, 0.027, 0.80, 0.90),  # Jun 2024: slope1 2.7 % (day not given: the 1st)
    (utc_date("2025-07-19"), 0.01, 0.027, 0.06, 0.92),  # 2025: U_opt 92 % (Risk Stewards, 2025-07-19), slope2 6 %
                                                        # (PROTOCOLS.md's 2025-26 value; its day is not known)
    (utc_date("2025-09-14"), 0.01, 0.025, 0.06, 0.92),  # slope1 2.7 -> 2.5 % (Risk Stewards, 2025-09-14)
    (utc_date("2026-01-01"), 0.01, 0.022, 0.06, 0.92),  # 2026: slope1 2.2 % (day not given: Jan 1st)
]
#: the reserves whose curve is known: (protocol, debt asset) -> dated curve
RATE_CURVES = {(p, a): WETH_RATE_CURVE for p in ("aave-v3", "aave-v2") for a in ("WETH", "ETH")}


def borrow_rate(u, base, slope1, slope2, u_opt):
    """Aave's variable borrow APR at utilisation ``u`` (arrays broadcast): base + slope1 * U / U_opt up to the
    kink, then base + slope1 + slope2 * (U - U_opt) / (1 - U_opt) (DefaultReserveInterestRateStrategy)."""
    import numpy as np

    u = np.asarray(u, dtype=np.float64)
    return np.where(u <= u_opt, base + slope1 * u / u_opt, base + slope1 + slope2 * (u - u_opt) / (1.0 - u_opt))


def curve_rate(protocol: str, asset: str, ts, u):
    """The borrow APR of ``protocol``'s ``asset`` reserve at utilisation ``u`` and times ``ts`` through the curve in
    force at each time (:data:`RATE_CURVES`); a reserve without a documented curve is an error."""
    import numpy as np

    curve = RATE_CURVES.get((protocol, asset))
    if curve is None:
        raise DataError(f"no documented interest-rate curve for {protocol} {asset} (known: "
                        f"{', '.join(sorted(f'{p} {a}' for p, a in RATE_CURVES))}); a utilization overlay needs one")
    ts = np.asarray(ts, dtype=np.int64)
    starts = np.array([e[0] for e in curve], dtype=np.int64)
    k = np.clip(np.searchsorted(starts, ts, side="right") - 1, 0, None)
    par = np.array([e[1:] for e in curve], dtype=np.float64)[k]
    return borrow_rate(u, par[:, 0], par[:, 1], par[:, 2], par[:, 3])


_COMMON = dict(takes=KEYS, meanings=MEANINGS, rules=_rules, emode=True, check_target=check_target)
AAVE_V3 = Venue("aave-v3", defaults=_aave_v3_defaults, v33=True, **_COMMON)
AAVE_V2 = Venue("aave-v2", defaults=_aave_v2_defaults, close_factor=0.5, protocol_fee=False, **_COMMON)
SPARK = Venue("spark", defaults=_spark_defaults, v33=True, **_COMMON)
VENUES = (AAVE_V3, AAVE_V2, SPARK)
