"""DefiLlama: the coins chart -> ``prices``; the lend-borrow chart -> ``rates`` (+ utilization); the yields chart
-> ``exchange_rates`` by compounding the base APY (``--set token=...``), and the fetchers.

Fetch: the coins chart ``coins.llama.fi/chart/{coin}?start&span&period`` (in windows of ``span`` points) ->
``prices``; the pool charts ``yields.llama.fi/chart/{pool}`` (free; -> an exchange rate compounded from the
base APY) and ``chartLendBorrow/{pool}`` (Pro: the key is part of the URL path,
``pro-api.llama.fi/{key}/yields/...``) -> ``rates`` with utilization from the totals.
"""
from __future__ import annotations

import json
import os
import urllib.parse
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import polars as pl

from backtest import numerics
from backtest.data.sources.coingecko import COINGECKO_IDS
from backtest.data.sources.commit import ImportReport, commit
from backtest.data.sources.download import (FetchError, HttpClient, MalformedResponse, fetch_windows, job_dir,
                                            time_windows, write_manifest)
from backtest.data.sources.toolkit import (DAY, YEAR, Series, apy_to_apr, drop_missing, new_series, parse_times,
                                           price_frame, read_json, safe_name, utc_text, utilization)
from backtest.errors import DataError, InputError


LLAMA_COINS_URL = "https://coins.llama.fi"
LLAMA_YIELDS_URL = "https://yields.llama.fi"
LLAMA_PRO_URL = "https://pro-api.llama.fi"


def _llama_kind(doc: Any) -> str:
    if isinstance(doc, dict) and isinstance(doc.get("coins"), dict):
        return "coins"
    rows = doc.get("data") if isinstance(doc, dict) else doc
    if isinstance(rows, list) and rows and isinstance(rows[0], dict):
        keys = set().union(*(r.keys() for r in rows[:50]))
        if {"totalSupplyUsd", "totalBorrowUsd"} & keys or "apyBaseBorrow" in keys:
            return "lend-borrow"
        if {"apy", "apyBase", "tvlUsd"} & keys:
            return "yields"
    return "unknown"


def _llama_rows(doc: Any, path: Path) -> list[dict]:
    if isinstance(doc, dict) and doc.get("status") not in (None, "success"):
        raise DataError(f"{path}: DefiLlama answered status {doc.get('status')!r}")
    rows = doc.get("data") if isinstance(doc, dict) else doc
    if not isinstance(rows, list) or not rows:
        raise DataError(f"{path}: no data rows")
    return rows


def _col(rows: list[dict], key: str) -> pl.Series:
    return pl.Series(key, [r.get(key) for r in rows], dtype=pl.Float64, strict=False)


def _parse_defillama_doc(path: Path, doc: Any, opts: Mapping[str, Any]) -> tuple[str, list[Series] | pl.DataFrame]:
    kind = _llama_kind(doc)
    if kind == "coins":
        items = []
        for coin, entry in doc["coins"].items():
            pts = entry.get("prices") or []
            if not pts:
                raise DataError(f"{path}: coin {coin!r} has no prices")
            base = opts.get("base") or _llama_symbol(coin, entry.get("symbol"))
            ts = parse_times(pl.Series([p.get("timestamp") for p in pts], dtype=pl.Float64), path, "timestamp", "s")
            frame = pl.DataFrame({"ts": ts, "price": pl.Series([p.get("price") for p in pts], dtype=pl.Float64,
                                                               strict=False)})
            kept, info = drop_missing(frame, ["price"], f"{base} price", path)
            conf = [p.get("confidence") for p in pts if p.get("confidence") is not None]
            notes = []
            if conf and min(conf) < 0.9:
                notes.append(f"{path.name}: {coin} has prices with DefiLlama confidence down to {min(conf):.2f}")
            q = str(opts.get("quote") or "USD")
            items.append(new_series("prices", price_frame(kept["ts"], kept["price"], base, q, "defillama:coins"),
                                    f"defillama-{base}-{q}", "defillama:coins", path, info, notes))
        return kind, items
    if kind in ("lend-borrow", "yields"):
        rows = _llama_rows(doc, path)
        ts = parse_times(pl.Series([r.get("timestamp") for r in rows]), path, "timestamp")
        frame = pl.DataFrame({"ts": ts, **{k: _col(rows, k) for k in
                                           ("apyBase", "apy", "apyBaseBorrow", "totalSupplyUsd", "totalBorrowUsd",
                                            "tvlUsd")}})
        return kind, frame
    raise DataError(f"{path}: not a DefiLlama coins chart, yields chart or lend-borrow chart")


_LLAMA_SYMBOLS = {"WETH": "WETH", "WSTETH": "wstETH", "STETH": "stETH", "WEETH": "weETH", "RETH": "rETH",
                  "CBETH": "cbETH", "EZETH": "ezETH", "RSETH": "rsETH", "ETH": "ETH", "OSETH": "osETH"}


def _llama_symbol(coin: str, symbol: str | None) -> str:
    if coin.startswith("coingecko:") and coin.split(":", 1)[1] in COINGECKO_IDS:
        return COINGECKO_IDS[coin.split(":", 1)[1]]
    if symbol:
        return _LLAMA_SYMBOLS.get(symbol.upper(), symbol)
    raise DataError(f"coin {coin!r} has no symbol: pass --set base=SYMBOL")


def parse_defillama(paths: Sequence[Path], **opts: Any) -> list[Series]:
    items: list[Series] = []
    lend: list[tuple[Path, pl.DataFrame]] = []
    yields: list[tuple[Path, pl.DataFrame]] = []
    for path in paths:
        kind, out = _parse_defillama_doc(path, read_json(path), opts)
        if kind == "coins":
            items.extend(out)
        elif kind == "lend-borrow":
            lend.append((path, out))
        else:
            yields.append((path, out))
    for path, f in lend:
        protocol, asset = opts.get("protocol"), opts.get("asset")
        if not protocol or not asset:
            raise DataError(f"{path}: a lend-borrow chart needs --set protocol=... --set asset=... "
                            "(DefiLlama pools are UUIDs)")
        supply = f["apyBase"]
        f = f.with_columns(supply_apr=apy_to_apr(supply / 100.0), borrow_apr=apy_to_apr(f["apyBaseBorrow"] / 100.0),
                           utilization=utilization(f["totalBorrowUsd"], f["totalSupplyUsd"]))
        kept, info = drop_missing(f, ["supply_apr", "borrow_apr"], f"{asset} APY", path)
        rates = kept.select("ts", pl.lit(protocol).alias("protocol"), pl.lit(asset).alias("asset"), "supply_apr",
                            "borrow_apr", "utilization")
        items.append(new_series("rates", rates, f"defillama-{protocol}-{asset}", "defillama:lend-borrow", path, info,
                                [f"{path.name}: apyBase / apyBaseBorrow (percent APY) -> APR ln(1 + apy); "
                                 "utilization = totalBorrowUsd / totalSupplyUsd"]))
    for path, f in yields:
        token = opts.get("token")
        if not token:
            raise DataError(f"{path}: a yields chart has only the supply APY (the lake's rates need the borrow "
                            "APR too: import the pool's lend-borrow chart); to turn a staking pool's APY into an "
                            "exchange-rate path pass --set token=SYMBOL [--set underlying=ETH]")
        col = "apyBase" if f["apyBase"].drop_nulls().len() else "apy"
        kept, info = drop_missing(f.select("ts", pl.col(col).alias("y")), ["y"], f"{token} APY", path)
        kept = kept.sort("ts")
        apr = apy_to_apr(kept["y"] / 100.0).to_numpy()
        t = kept["ts"].to_numpy()
        # the rate grows at the APR in force since the previous point, from 1.0 at the first point
        growth = np.concatenate([[0.0], np.cumsum(apr[:-1] * np.diff(t) / YEAR)])
        rate = float(opts.get("anchor", 1.0)) * numerics.exp(growth)
        und = str(opts.get("underlying") or "ETH")
        xr = pl.DataFrame({"ts": t, "token": token, "underlying": und, "rate": rate,
                           "source": "defillama:yields-compounded"})
        items.append(new_series("exchange_rates", xr, f"defillama-{token}-{und}-compounded",
                                "defillama:yields-compounded", path, info,
                                [f"{path.name}: exchange rate DERIVED by compounding {col} (percent APY) from "
                                 f"{float(opts.get('anchor', 1.0)):g} at the first point; not an on-chain rate"]))
    return items


def import_defillama(paths: Sequence[str | os.PathLike] | str | os.PathLike, lake: str | os.PathLike,
                     **opts: Any) -> ImportReport:
    """DefiLlama JSON: a coins chart (``{"coins": {"chain:addr": {"symbol", "prices": [{"timestamp",
    "price"}]}}}``) -> ``prices`` SYMBOL/USD; a lend-borrow chart (``{"status", "data": [{"timestamp",
    "totalSupplyUsd", "totalBorrowUsd", "apyBase", "apyBaseBorrow", ...}]}``, needs ``protocol`` and
    ``asset``) -> ``rates``; a yields chart (``{"data": [{"timestamp", "tvlUsd", "apy", "apyBase", ...}]}``,
    needs ``token``) -> ``exchange_rates`` compounded from the base APY."""
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    return commit(lake, parse_defillama([Path(p) for p in paths], **opts))


def fetch_defillama_coins(coin: str, lake: str | os.PathLike, start: int, end: int, *, period: str = "1h",
                          symbol: str | None = None, span: int = 500, base_url: str | None = None,
                          client: HttpClient | None = None,
                          progress: Callable[[int, int], None] | None = None) -> ImportReport:
    """DefiLlama coins chart for ``coin`` (``ethereum:0x…`` or ``coingecko:id``) every ``period`` over
    [start, end), ``span`` points per request -> ``prices`` SYMBOL/USD (source ``defillama:coins``)."""
    base = (base_url or LLAMA_COINS_URL).rstrip("/")
    step = _period_seconds(period)
    client = client or HttpClient()
    params = {"coin": coin, "start": int(start), "end": int(end), "period": period, "span": span,
              "host": urllib.parse.urlsplit(base).hostname}
    job = job_dir(lake, "defillama-coins", params)
    write_manifest(job, "defillama-coins", params, "running")
    q = urllib.parse.quote

    def url(a: int, b: int) -> str:
        n = max(1, (b - a + step - 1) // step)
        return f"{base}/chart/{q(coin, safe=':,')}?start={a}&span={n}&period={q(period)}&searchWidth=600"

    def check(doc: Any) -> None:
        if not isinstance(doc, dict) or not isinstance(doc.get("coins"), dict):
            raise MalformedResponse("not a coins chart")

    files = fetch_windows(client, job, time_windows(int(start), int(end), span * step), url,
                          lambda a, b: f"defillama coins {coin} {utc_text(a)}..{utc_text(b)}", check, progress)
    opts = {"base": symbol} if symbol else {}
    src_items = []
    for f in files:
        doc = json.loads(f.read_text())
        if not any(e.get("prices") for e in doc["coins"].values()):
            continue
        _, items = _parse_defillama_doc(f, doc, opts)
        src_items.extend(items)
    if not src_items:
        raise DataError(f"defillama {coin}: no prices between {utc_text(start)} and {utc_text(end)}")
    df = pl.concat([s.df for s in src_items]).unique(subset=["base", "ts"], keep="last").sort("ts")
    df = df.filter((pl.col("ts") >= int(start)) & (pl.col("ts") < int(end)))
    base_sym = df["base"][0]
    item = Series("prices", df, safe_name(f"defillama-{base_sym}-USD"), "defillama:coins", f"defillama:{coin}",
                  sum(s.missing for s in src_items))
    report = commit(lake, [item])
    write_manifest(job, "defillama-coins", params, "complete", windows=len(files), rows=df.height)
    return report


def _period_seconds(period: str) -> int:
    units = {"m": 60, "h": 3600, "d": DAY, "w": 7 * DAY}
    p = period.strip().lower()
    try:
        return int(p[:-1]) * units[p[-1]]
    except (KeyError, ValueError):
        raise InputError(f"--period {period!r}: use a number and m, h, d or w (e.g. 1h)") from None


def fetch_defillama_pool(pool: str, lake: str | os.PathLike, *, chart: str = "lend-borrow",
                         protocol: str | None = None, asset: str | None = None, token: str | None = None,
                         api_key: str | None = None, base_url: str | None = None,
                         client: HttpClient | None = None) -> ImportReport:
    """A DefiLlama pool chart: ``lend-borrow`` (``chartLendBorrow``, a Pro endpoint: the key goes in the URL
    path and is never shown) -> ``rates``; ``yields`` (``chart``) -> ``exchange_rates`` compounded from the
    base APY of a staking pool (``token``). Downloaded resumably, then imported."""
    client = client or HttpClient()
    if chart == "lend-borrow":
        if api_key:
            client.secrets.add(api_key)
            base = (base_url or LLAMA_PRO_URL).rstrip("/") + f"/{urllib.parse.quote(api_key)}/yields"
        else:
            base = (base_url or LLAMA_YIELDS_URL).rstrip("/")
        url = f"{base}/chartLendBorrow/{urllib.parse.quote(pool)}"
        opts = {"protocol": protocol, "asset": asset}
    elif chart == "yields":
        base = (base_url or LLAMA_YIELDS_URL).rstrip("/")
        url = f"{base}/chart/{urllib.parse.quote(pool)}"
        opts = {"token": token}
    else:
        raise InputError(f"defillama chart {chart!r}: lend-borrow | yields")
    params = {"pool": pool, "chart": chart, "host": urllib.parse.urlsplit(base_url or "").hostname}
    job = job_dir(lake, "defillama-pool", params)
    write_manifest(job, "defillama-pool", params, "running")
    path = job / f"{chart}-{pool}.json"
    if not path.exists():
        client.download(url, path, f"defillama {chart} {pool}")
    try:
        json.loads(path.read_text())
    except ValueError:
        path.unlink()
        raise FetchError(f"defillama {chart} {pool}: the download is not valid JSON (removed; run again)") from None
    report = commit(lake, parse_defillama([path], **{k: v for k, v in opts.items() if v}))
    write_manifest(job, "defillama-pool", params, "complete")
    return report
