"""Dune recipes: for each series the documented episodes need, the Dune query (a published query id, or the SQL
to paste into a new query), the columns its result has, and where they go in the lake.

``backtest data import dune RESULT.csv --recipe NAME --into LAKE`` reads a Dune CSV export (or the API's JSON,
``{"result": {"rows": [...]}}``), maps the columns as the recipe says (``--map`` overrides a column when a
query names it differently) and writes every output of the recipe at once. The column names of the two
published queries (5299669, 5323305) are the ones this recipe expects; they were not checked against the live
queries: neither query's SQL or result columns could be found in public material (searched: web pages, code,
issues; no Dune access here). So each output also accepts ``alternatives``: other names the same value goes by in
Dune's own tables (``minute`` of ``prices.usd``, ``block_time`` / ``block_date`` of ``dex.trades``, ``evt_block_time``
of decoded events, the Liquidate event's ``seizedAssets`` / ``repaidAssets`` / ``badDebtAssets`` in wei); the
first name present in the result is used. A result with none of them fails naming them all, and
``--map lake_column=their_column`` fixes it.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from backtest.data.sources.commit import ImportReport, commit
from backtest.data.sources.csv_mapping import _read_any, parse_mapped
from backtest.data.sources.toolkit import Series, safe_name
from backtest.errors import DataError

Mapping_ = dict[str, tuple[str, str | None]]


@dataclass(frozen=True)
class Output:
    """One lake series from the result: ``table``, {lake column: (result column, unit)}, constants."""

    table: str
    mapping: Mapping_
    sets: dict[str, Any] = field(default_factory=dict)
    #: lake column -> other (result column, unit) names tried in order when the mapping's column is absent
    alternatives: dict[str, tuple[tuple[str, str | None], ...]] = field(default_factory=dict)


@dataclass(frozen=True)
class Recipe:
    description: str
    outputs: tuple[Output, ...]
    query_id: int | None = None          # a published Dune query, when there is one
    sql: str | None = None               # else the query to create (DuneSQL)
    episode: str = ""


_AAVE_RATES_SQL = """-- every Aave v3 WETH rate change (ReserveDataUpdated), rates in ray -> APR
SELECT evt_block_time AS block_time, evt_block_number AS block_number,
       CAST(variableBorrowRate AS DOUBLE) / 1e27 AS borrow_apr,
       CAST(liquidityRate AS DOUBLE) / 1e27 AS supply_apr,
       CAST(variableBorrowIndex AS DOUBLE) / 1e27 AS borrow_index,
       CAST(liquidityIndex AS DOUBLE) / 1e27 AS supply_index
FROM aave_v3_ethereum.Pool_evt_ReserveDataUpdated
WHERE reserve = 0xC02aaA39b223FE8D0A0e5C4F27eAD9083C756Cc2
  AND evt_block_time BETWEEN TIMESTAMP '{{start}}' AND TIMESTAMP '{{end}}'
ORDER BY 1"""

_MORPHO_BORROW_SQL = """-- Morpho Blue market rates at every accrual (AccrueInterest: prevBorrowRate per second, WAD)
SELECT evt_block_time AS block_time, evt_block_number AS block_number,
       CAST(prevBorrowRate AS DOUBLE) / 1e18 * 31536000 AS borrow_apr
FROM morpho_blue_ethereum.MorphoBlue_evt_AccrueInterest
WHERE id = {{market_id}}
  AND evt_block_time BETWEEN TIMESTAMP '{{start}}' AND TIMESTAMP '{{end}}'
ORDER BY 1"""

# other names for the same values (unverified against the two published queries: see the module docstring)
_MINUTE = (("block_minute", None), ("block_time", None), ("time", None), ("ts", None), ("evt_block_time", None))
_DAY = (("block_date", None), ("date", None), ("time", None), ("block_time", None), ("evt_block_time", None))
_PRICE = {"price": (("ezeth_price", None), ("price_weth", None), ("weth_per_ezeth", None), ("ezeth_weth", None),
                    ("avg_price", None))}
_LIQ = {"liquidations": (("liquidation_count", None), ("n_liquidations", None), ("count", None)),
        "seized_ezeth": (("seized", None), ("collateral_seized", None), ("seizedAssets", "wei")),
        "repaid_weth": (("repaid", None), ("debt_repaid", None), ("repaidAssets", "wei")),
        "bad_debt_weth": (("bad_debt", None), ("badDebtAssets", "wei"))}


def _liq(col: str, kind: str) -> Output:
    return Output("events", {"ts": ("day", None), "value": (col, None)}, {"token": "ezETH", "kind": kind},
                  {"ts": _DAY, "value": _LIQ[col]})


RECIPES: dict[str, Recipe] = {
    "ezeth-balancer-minute": Recipe(
        "minute ezETH/WETH price on the Balancer ezETH/WETH pool (WETH per ezETH) -> prices ezETH/WETH",
        (Output("prices", {"ts": ("minute", None), "price": ("price", None)},
                {"base": "ezETH", "quote": "WETH", "source": "dune:balancer-ezeth-weth"}, {"ts": _MINUTE, **_PRICE}),),
        query_id=5299669, episode="ezETH de-peg, 23-26 Apr 2024"),
    "ezeth-morpho-liquidations-daily": Recipe(
        "daily Morpho Blue ezETH liquidations: count, ezETH seized, WETH repaid, WETH bad debt -> events ezETH",
        (_liq("liquidations", "morpho-liquidations"), _liq("seized_ezeth", "morpho-seized-ezeth"),
         _liq("repaid_weth", "morpho-repaid-weth"), _liq("bad_debt_weth", "morpho-bad-debt-weth")),
        query_id=5323305, episode="ezETH de-peg, 23-26 Apr 2024"),
    "aave-v3-weth-rates-intraday": Recipe(
        "Aave v3 WETH rates at every ReserveDataUpdated -> rates aave-v3 WETH (intraday)",
        (Output("rates", {"ts": ("block_time", None), "block": ("block_number", None),
                          "borrow_apr": ("borrow_apr", None), "supply_apr": ("supply_apr", None),
                          "borrow_index": ("borrow_index", None), "supply_index": ("supply_index", None)},
                {"protocol": "aave-v3", "asset": "WETH"}),),
        sql=_AAVE_RATES_SQL, episode="WETH rate spikes, July 2024 / July 2025"),
    "morpho-market-rates": Recipe(
        "a Morpho Blue market's borrow APR at every accrual -> rates morpho-blue WETH (supply 0: not in the event)",
        (Output("rates", {"ts": ("block_time", None), "block": ("block_number", None),
                          "borrow_apr": ("borrow_apr", None)},
                {"protocol": "morpho-blue", "asset": "WETH", "supply_apr": 0.0}),),
        sql=_MORPHO_BORROW_SQL, episode="ezETH de-peg, 23-26 Apr 2024"),
}


def recipe(name: str) -> Recipe:
    try:
        return RECIPES[name]
    except KeyError:
        lines = "\n".join(f"  {k:<34} {r.description}" for k, r in RECIPES.items())
        raise DataError(f"unknown dune recipe {name!r}; choose one of:\n{lines}") from None


def parse_recipe(path: Path, name: str, overrides: Mapping_ | None = None,
                 sets: Mapping[str, Any] | None = None) -> list[Series]:
    """Every output of recipe ``name`` from one Dune result file; ``overrides`` rename result columns
    ({lake column: (result column, unit)}), ``sets`` add or replace constants."""
    rec = recipe(name)
    header = set(_read_any(Path(path)).columns) if any(o.alternatives for o in rec.outputs) else set()
    out: list[Series] = []
    for o in rec.outputs:
        mapping = dict(o.mapping)
        for col, alts in o.alternatives.items():
            if col in (overrides or {}) or mapping[col][0] in header:
                continue
            found = [a for a in alts if a[0] in header]
            if not found:
                names = ", ".join(n for n, _ in (mapping[col], *alts))
                raise DataError(f"{path}: recipe {name}: no column for {o.table}.{col} (tried {names}; columns: "
                                f"{', '.join(sorted(header))}); pass --map {col}=COLUMN")
            mapping[col] = found[0]
        for col, src in (overrides or {}).items():
            if col in mapping or col == "ts":
                mapping[col] = src
        consts = {**o.sets, **{k: v for k, v in (sets or {}).items() if k in o.sets or k == "source"}}
        for s in parse_mapped(Path(path), o.table, mapping, consts, "dune"):
            label = f"dune:{rec.query_id}" if rec.query_id else f"dune:{name}"
            s.source = str(consts.get("source") or label)
            # one lake file per output (the four event kinds of one result must not share a file name)
            tag = consts.get("kind") or consts.get("asset") or consts.get("base") or o.table
            s.name = safe_name(f"dune-{name}-{tag}")
            out.append(s)
    return out


def import_recipe(paths: list[str | os.PathLike], lake: str | os.PathLike, name: str,
                  overrides: Mapping_ | None = None, sets: Mapping[str, Any] | None = None) -> ImportReport:
    """All files checked first, then every series written together."""
    items = [s for p in paths for s in parse_recipe(Path(p), name, overrides, sets)]
    return commit(lake, items)
