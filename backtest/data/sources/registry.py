"""The vendors by name: the one place ``backtest data import SOURCE`` (:data:`SOURCES`) and
``backtest data fetch SOURCE`` (:data:`FETCHERS`) look them up. Adding a vendor is one module in this
package (its parser, its ``import_*`` function, its fetcher if it has one) and one line here.

==================  ==============================================================================================
``coingecko``       CoinGecko CSV (``symbol,timestamp[ms],USD_price`` or ``date,symbol,price_usd``) and the API's
                    ``market_chart`` JSON (``{"prices": [[ms, price], ...]}``) -> ``prices`` SYMBOL/USD
``aavescan``        AaveScan reserve export -> ``rates`` (utilization from the totals), ``oracle_prices``
                    ASSET/USD (Aave's oracle) and, for WETH, ``prices`` WETH/USD
``aave-snapshots``  Aave v3 daily reserve snapshot table -> ``rates`` and ``market_params`` (non-E-mode)
``comet``           Compound v3 (Comet) oracle price CSV -> ``oracle_prices`` compound-v3 (USD for WETH and
                    wstETH, ETH for the LST/LRT collateral feeds) and, for WETH, ``prices`` WETH/USD
``etherscan``       Etherscan chart export: AvgGasPrice (wei) -> ``gas`` (gwei); EtherPrice -> ``prices`` ETH/USD
``gas-hourly``      hourly gas samples -> ``gas`` (:func:`gas_hourly.import_gas_hourly`)
``peg-hourly``      LST peg analysis -> ``prices`` TOKEN/WETH + ``exchange_rates``
                    (:func:`peg_hourly.import_peg_hourly`)
``curve``           Curve pool balances -> ``liquidity`` (needs that table in lake.TABLES)
``rocketpool``      Rocket Pool BalancesUpdated reports -> ``exchange_rates`` rETH/ETH = total ETH / rETH supply
``etherfi``         ether.fi reward tables -> ``rewards`` (needs that table in lake.TABLES)
``defillama``       DefiLlama JSON: coins chart -> ``prices``; lend-borrow chart -> ``rates`` (+ utilization);
                    yields chart -> ``exchange_rates`` by compounding the base APY (``--set token=...``)
``dune``            a Dune query result (CSV or the API's JSON) with a column mapping
``csv``             any CSV with a column mapping (``--table prices --map ts=time --map price=close
                    --set base=wstETH --set quote=WETH``)
==================  ==============================================================================================

Fetchers: ``coingecko`` (market_chart/range), ``defillama-coins`` and ``defillama-pool`` (coins chart, pool
charts), ``rpc`` (``eth_call`` on an Ethereum node, :mod:`backtest.data.sources.rpc`; the batched presets of
``backtest data fetch rpc PRESET`` are :mod:`backtest.data.sources.rpc_presets`). Dune results of the documented
episodes: :mod:`backtest.data.sources.dune_recipes` (``data import dune FILE --recipe NAME``).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from backtest.data.sources import (aave_snapshots, aavescan, coingecko, comet, csv_mapping, curve, defillama, dune,
                                   etherfi, etherscan, gas_hourly, peg_hourly, rocketpool, rpc)
from backtest.data.sources.commit import ImportReport, commit
from backtest.data.sources.toolkit import Series
from backtest.errors import DataError


def _sets_only(fn, allowed):
    """A per-file parser that takes ``--set`` options (only those named in ``allowed``) and no mapping."""
    def run(paths, sets=None, **opts):
        sets = dict(sets or {})
        extra = sorted(k for k, v in opts.items() if v not in (None, {}, ()))
        bad = sorted(set(sets) - set(allowed))
        if extra or bad:
            raise DataError(f"option(s) {', '.join(extra + [f'--set {b}' for b in bad])} do not apply to this "
                            f"source (--set takes: {', '.join(allowed) or 'nothing'})")
        out: list[Series] = []
        for p in paths:
            out.extend(fn(Path(p), **sets))
        return out
    return run


def _mapped(fn):
    """A per-file parser driven by ``--table`` / ``--map`` / ``--set``."""
    def run(paths, table=None, mapping=None, sets=None):
        return [s for p in paths for s in fn(Path(p), table, mapping, sets)]
    return run


def _reject_map(opts: Mapping[str, Any], source: str) -> None:
    extra = sorted(k for k, v in opts.items() if v not in (None, {}, ()))
    if extra:
        raise DataError(f"option(s) {', '.join(extra)} do not apply to {source} (use --set)")


#: source name -> (parser(paths, table=, mapping=, sets=) -> [Series], one-line description)
SOURCES: dict[str, tuple[Callable[..., list[Series]], str]] = {
    "coingecko": (_sets_only(coingecko.parse_coingecko, ("base", "quote")),
                  "CoinGecko CSV (ms or s timestamps; or date,symbol,price_usd) or market_chart JSON -> prices"),
    "aavescan": (_sets_only(lambda p, protocol="aave-v3": aavescan.parse_aavescan(p, protocol), ("protocol",)),
                 "AaveScan reserve export -> rates, oracle_prices (+ prices WETH/USD)"),
    "aave-snapshots": (_sets_only(aave_snapshots.parse_aave_snapshots, ("protocol",)),
                       "Aave v3 daily reserve snapshots -> rates, market_params (non-E-mode)"),
    "comet": (_sets_only(comet.parse_comet, ("quote", "protocol")),
              "Compound v3 oracle price CSV -> oracle_prices compound-v3 (+ prices WETH/USD)"),
    "etherscan": (_sets_only(etherscan.parse_etherscan, ("kind",)),
                  "Etherscan chart export: AvgGasPrice -> gas, EtherPrice -> prices ETH/USD"),
    "gas-hourly": (_sets_only(lambda p: gas_hourly.parse_gas_hourly(p), ()), "hourly gas samples -> gas"),
    "peg-hourly": (_sets_only(lambda p: peg_hourly.parse_peg(p), ()),
                   "LST peg analysis -> prices TOKEN/WETH, exchange_rates TOKEN/ETH"),
    "curve": (_sets_only(curve.parse_curve, ("pool", "token0", "token1", "amp")),
              "Curve pool balances -> liquidity (table not in the lake yet)"),
    "rocketpool": (_sets_only(rocketpool.parse_rocketpool, ()),
                   "Rocket Pool balance reports -> exchange_rates rETH/ETH"),
    "etherfi": (_sets_only(etherfi.parse_etherfi, ("token",)),
                "ether.fi reward tables -> rewards (table not in the lake yet)"),
    "defillama": (lambda paths, sets=None, **o: _reject_map(o, "defillama") or defillama.parse_defillama(
        [Path(p) for p in paths], **dict(sets or {})),
                  "DefiLlama coins chart -> prices; lend-borrow chart -> rates; yields chart -> exchange_rates"),
    "dune": (_mapped(dune.parse_dune), "Dune query export (CSV or API JSON) with --table/--map/--set"),
    "csv": (_mapped(lambda p, table, mapping, sets: csv_mapping.parse_mapped(p, table, mapping, sets, "csv")),
            "any CSV with --table/--map/--set"),
}

#: `backtest data fetch SOURCE`: name -> the function that downloads (resumably) and imports
FETCHERS: dict[str, Callable[..., ImportReport]] = {
    "coingecko": coingecko.fetch_coingecko,
    "defillama-coins": defillama.fetch_defillama_coins,
    "defillama-pool": defillama.fetch_defillama_pool,
    "rpc": rpc.fetch_rpc,
}


def normalise(source: str, paths: Sequence[str | os.PathLike], *, table: str | None = None,
              mapping: Mapping[str, tuple[str, str | None]] | None = None,
              sets: Mapping[str, Any] | None = None) -> list[Series]:
    """Parse and convert ``paths`` of ``source`` without writing anything (see :func:`import_files`)."""
    if source not in SOURCES:
        raise DataError(f"unknown import source {source!r}; choose one of: {', '.join(SOURCES)}")
    if not paths:
        raise DataError(f"{source}: no files given")
    parser = SOURCES[source][0]
    return parser([Path(p) for p in paths], table=table, mapping=mapping, sets=sets)


def import_files(source: str, paths: Sequence[str | os.PathLike], lake: str | os.PathLike, *,
                 table: str | None = None, mapping: Mapping[str, tuple[str, str | None]] | None = None,
                 sets: Mapping[str, Any] | None = None) -> ImportReport:
    """Import every file of ``paths`` (all parsed and validated before the first write) from ``source``."""
    return commit(lake, normalise(source, paths, table=table, mapping=mapping, sets=sets))
