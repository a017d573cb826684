"""Dated default risk parameters per (protocol, collateral asset, E-mode), from PROTOCOLS.md and the
protocols' own governance / configuration records.

``align`` uses these when the lake has no ``market_params`` rows for a market (or for the part of the window
before the lake's first row). Each entry is ``(ts, ltv, liquidation_threshold, liquidation_bonus,
protocol_fee)``: the values in force from ``ts`` (UTC epoch seconds; 0 = "from the beginning of the data")
until the next entry. The bonus is a fraction (0.01 = LB 1.01); the protocol fee is the share of the bonus
taken by the protocol.

Sources:
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
- Morpho Blue (no E-mode; a market is collateral/loan/oracle/IRM/LLTV and its LLTV never changes): the WETH
  markets PROTOCOLS.md lists, wstETH/WETH at LLTV 94.5 % and ezETH/WETH at 86 % (the 96.5 % wstETH and 77 %
  ezETH markets are picked with ``market.lltv``). The entry is (0, LLTV, LLTV, LIF - 1, 0): borrowing stops at
  the LLTV, the bonus column carries the liquidation incentive LIF - 1 = min(1.15, 1 / (0.3 LLTV + 0.7)) - 1
  for information (the engines compute the LIF from the LLTV), and there is no fee. Defaults only for a WETH
  (or ETH) loan asset.
- Compound III WETH market (cWETHv3) at launch (PROTOCOLS.md): wstETH and cbETH borrow CF 0.90, liquidate CF
  0.93, liquidation factor 0.95; weETH 0.82 / 0.87 / 0.92. The entry is (0, borrow CF, liquidate CF,
  1 - liquidation factor, 0): the bonus column holds the absorb penalty (the share of the collateral's value
  the borrower is not credited). Defaults only for the WETH base market.
"""
from __future__ import annotations

import datetime as _dt

from backtest.errors import DataError

Entry = tuple[int, float, float, float, float]   # (ts, ltv, liquidation_threshold, liquidation_bonus, protocol_fee)


def _ts(date: str) -> int:
    """UTC midnight of an ISO date as epoch seconds."""
    d = _dt.date.fromisoformat(date)
    return int(_dt.datetime(d.year, d.month, d.day, tzinfo=_dt.timezone.utc).timestamp())


AAVE_V3_EMODE_2024 = _ts("2024-01-21")      # ETH-correlated E-mode 90/93 -> 93/95
AAVE_V3_LIQUID_EMODES = _ts("2025-03-01")   # wstETH/WETH and LRT/WETH liquid E-modes
AAVE_V2_STETH_2022 = _ts("2022-05-01")      # AIP-75 stETH LTV 73 -> 69, LT 75 -> 81 (on-chain 2022-05-19)
SPARK_EMODE_2024 = _ts("2024-03-06")        # Spark ETH E-mode LTV 90 -> 92

AAVE_V3_PROTOCOL_FEE = 0.10

#: Aave v3.3's liquidation rules ($2,000 full close factor, $1,000 leftovers, deficit write-off), from
#: market.v33_from when the config sets it, else from these dates. Aave v3 on Ethereum: 2025-02-25.
#: Spark (an Aave v3 fork) keeps the v3.0-3.2 rules: no source found dates an adoption of v3.3 by Spark
#: (PROTOCOLS.md), so it has no date here and a replay applies v3.3 to Spark only with a dated market.v33_from.
AAVE_V33_FROM = _ts("2025-02-25")
NEVER = 2 ** 62                  # an int64 time no block reaches: "these rules never apply"
V33_FROM: dict[str, int | None] = {"aave-v3": AAVE_V33_FROM, "spark": None}


def v33_from(protocol: str) -> int:
    """When ``protocol`` adopted Aave v3.3's liquidation rules (epoch seconds), or NEVER."""
    ts = V33_FROM.get(protocol)
    return NEVER if ts is None else ts

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


def morpho_lif(lltv: float) -> float:
    """Morpho Blue's liquidation incentive factor min(1.15, 1 / (0.3 LLTV + 0.7))."""
    return min(1.15, 1.0 / (1.0 - 0.3 * (1.0 - lltv)))


def morpho_entry(lltv: float) -> Entry:
    """A Morpho Blue market's parameters as an entry: ltv = lt = LLTV, bonus = LIF - 1, no fee."""
    return (0, lltv, lltv, morpho_lif(lltv) - 1.0, 0.0)


MORPHO_WETH_LLTV = {"wstETH": 0.945, "ezETH": 0.86}
COMET_WETH: dict[str, tuple[float, float, float]] = {     # asset -> (borrow CF, liquidate CF, liquidation factor)
    "wstETH": (0.90, 0.93, 0.95),
    "cbETH": (0.90, 0.93, 0.95),
    "weETH": (0.82, 0.87, 0.92),
}


def _lookup(protocol: str, asset: str, emode: str | None, debt: str) -> list[Entry] | None:
    em = emode.lower() if isinstance(emode, str) else None
    if protocol == "morpho-blue":
        if em is None and debt in ("WETH", "ETH") and asset in MORPHO_WETH_LLTV:
            return [morpho_entry(MORPHO_WETH_LLTV[asset])]
        return None
    if protocol == "compound-v3":
        if em is None and debt in ("WETH", "ETH") and asset in COMET_WETH:
            bcf, lcf, lf = COMET_WETH[asset]
            return [(0, bcf, lcf, 1.0 - lf, 0.0)]
        return None
    if protocol == "aave-v3":
        if em == "eth-correlated" and asset in ETH_ASSETS:
            return _AAVE_V3_ETH_CORRELATED
        if em == "wsteth-weth" and asset == "wstETH":
            return _AAVE_V3_WSTETH_WETH
        if em == "lrt-weth" and asset in LRT_LIQUID:
            return _AAVE_V3_LRT_WETH
    elif protocol == "aave-v2":
        if em is None and asset == "stETH":
            return _AAVE_V2_STETH
    elif protocol == "spark":
        if em == "eth-correlated" and asset in SPARK_ETH_EMODE:
            return _SPARK_ETH
    return None


def default_params(protocol: str, asset: str, emode: str | None, debt: str = "WETH") -> list[Entry]:
    """The dated default parameters of ``asset`` as collateral on ``protocol`` in E-mode ``emode`` (against
    the loan asset ``debt``, which picks the Morpho Blue / Compound III market).

    Returns a list of ``(ts, ltv, lt, bonus, protocol_fee)`` sorted by ts. Raises DataError naming the
    protocol, asset and E-mode when no defaults are known (the lake must then hold ``market_params`` or the
    config must override them).
    """
    entries = _lookup(protocol, asset, emode, debt)
    if entries is None:
        keys = {"morpho-blue": "market.lltv", "compound-v3": "market.ltv / liquidation_threshold / "
                "liquidation_factor"}.get(protocol, "market.ltv / liquidation_threshold / liquidation_bonus / "
                                                    "liquidation_protocol_fee")
        market = f" debt={debt!r}" if protocol in ("morpho-blue", "compound-v3") else ""
        raise DataError(
            f"no default market parameters for protocol={protocol!r} asset={asset!r} emode={emode!r}{market}: "
            f"add market_params rows to the lake or set {keys} in the config"
        )
    return list(entries)


def params_at(protocol: str, asset: str, emode: str | None, ts: int, debt: str = "WETH") -> Entry:
    """The default entry in force at ``ts``; DataError if the defaults start after ``ts``."""
    entries = default_params(protocol, asset, emode, debt)
    current = None
    for e in entries:
        if e[0] <= ts:
            current = e
    if current is None:
        start = _dt.datetime.fromtimestamp(entries[0][0], _dt.timezone.utc).date().isoformat()
        raise DataError(
            f"default market parameters for protocol={protocol!r} asset={asset!r} emode={emode!r} "
            f"start on {start}, after the requested time"
        )
    return current
