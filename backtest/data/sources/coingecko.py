"""CoinGecko: the CSV exports and the API's ``market_chart`` JSON -> ``prices`` SYMBOL/USD, and the fetcher.

Import: ``symbol,timestamp[ms],USD_price`` or ``date,symbol,price_usd`` CSVs, or ``{"prices": [[ms, price],
...]}``. Fetch: ``/coins/{id}/market_chart/range`` in windows of at most 89 days (CoinGecko then answers
hourly points), with the API key (if any) in the ``x-cg-demo-api-key`` / ``x-cg-pro-api-key`` header;
-> ``prices`` SYMBOL/VS (source ``coingecko:market_chart``).
"""
from __future__ import annotations

import json
import os
import urllib.parse
from pathlib import Path
from typing import Any, Callable

import polars as pl

from backtest.data.sources.commit import ImportReport, commit
from backtest.data.sources.download import (HttpClient, MalformedResponse, fetch_windows, job_dir, time_windows,
                                            write_manifest)
from backtest.data.sources.toolkit import (DAY, Series, drop_missing, new_series, numeric_gaps, parse_times,
                                           price_frame, read_json, read_text_table, safe_name, utc_text)
from backtest.errors import DataError, InputError


#: CoinGecko API ids -> the symbols the lake uses
COINGECKO_IDS: dict[str, str] = {
    "ethereum": "ETH", "weth": "WETH", "staked-ether": "stETH", "wrapped-steth": "wstETH",
    "wrapped-eeth": "weETH", "rocket-pool-eth": "rETH", "coinbase-wrapped-staked-eth": "cbETH",
    "kelp-dao-restaked-eth": "rsETH", "renzo-restaked-eth": "ezETH", "stakewise-v3-oseth": "osETH",
    "ether-fi-staked-eth": "eETH", "restaked-swell-eth": "rswETH", "stader-ethx": "ETHx",
}


COINGECKO_URL = "https://api.coingecko.com/api/v3"
COINGECKO_PRO_URL = "https://pro-api.coingecko.com/api/v3"


def parse_coingecko(path: Path, base: str | None = None, quote: str | None = None, **_: Any) -> list[Series]:
    if path.suffix.lower() == ".json":
        return _parse_coingecko_json(path, base, quote)
    df = read_text_table(path)
    cols = set(df.columns)
    if {"symbol", "timestamp"} <= cols and any(c.lower().endswith("_price") for c in df.columns):
        # bhemen/aave-data style: symbol, timestamp (ms), USD_price
        pcol = next(c for c in df.columns if c.lower().endswith("_price"))
        q = quote or pcol[: -len("_price")].upper()
        ts = parse_times(df["timestamp"], path, "timestamp")
        frame = pl.DataFrame({"ts": ts, "symbol": df["symbol"].str.strip_chars(),
                              "price": numeric_gaps(df, path, pcol)})
    elif {"date", "symbol"} <= cols and any(c.lower().startswith("price_") for c in df.columns):
        # daily long table: date, symbol, price_usd
        pcol = next(c for c in df.columns if c.lower().startswith("price_"))
        q = quote or pcol[len("price_"):].upper()
        frame = pl.DataFrame({"ts": parse_times(df["date"], path, "date"),
                              "symbol": df["symbol"].str.strip_chars(), "price": numeric_gaps(df, path, pcol)})
    else:
        raise DataError(f"{path}: not a CoinGecko CSV export (expected columns symbol,timestamp,<QUOTE>_price "
                        f"or date,symbol,price_<quote>; found {', '.join(df.columns)})")
    if frame["ts"].null_count():
        i = int(frame["ts"].is_null().arg_max())
        raise DataError(f"{path}: empty time in data row {i + 1}")
    items = []
    for (sym,), g in frame.group_by(["symbol"], maintain_order=True):
        b = base or str(sym)
        src = f"coingecko:{path.stem}"
        # a zero or negative price is "no price", not a price: a gap like an empty cell
        g = g.with_columns(pl.when(pl.col("price") > 0).then(pl.col("price")).otherwise(None).alias("price"))
        kept, info = drop_missing(g, ["price"], f"{b} price", path)
        items.append(new_series("prices", price_frame(kept["ts"], kept["price"], b, q, src),
                                f"coingecko-{path.stem}-{b}-{q}", src, path, info))
    return items


def _parse_coingecko_json(path: Path, base: str | None, quote: str | None) -> list[Series]:
    doc = read_json(path)
    if not isinstance(doc, dict) or "prices" not in doc:
        raise DataError(f"{path}: not a CoinGecko market_chart response (no 'prices' key)")
    if base is None:
        stem = path.stem.split(".")[0]
        base = COINGECKO_IDS.get(stem) or COINGECKO_IDS.get(stem.split("_")[0])
        if base is None:
            raise DataError(f"{path}: which coin is this? pass --set base=SYMBOL (the file name {path.name!r} is "
                            f"not a known CoinGecko id: {', '.join(sorted(COINGECKO_IDS))})")
    q = (quote or "USD").upper()
    return [_market_chart_series(doc, path, base, q)]


def _market_chart_series(doc: dict, path: Path | str, base: str, quote: str, name: str | None = None) -> Series:
    pts = doc["prices"]
    if not isinstance(pts, list) or not all(isinstance(p, list) and len(p) == 2 for p in pts):
        raise DataError(f"{path}: 'prices' must be a list of [ms, price] pairs")
    if not pts:
        raise DataError(f"{path}: 'prices' is empty")
    ms = pl.Series([p[0] for p in pts], dtype=pl.Float64)
    if ms.null_count():
        raise DataError(f"{path}: a 'prices' entry has no time")
    ts = parse_times(ms, path, "prices[][0]", "ms")
    price = pl.Series([p[1] for p in pts], dtype=pl.Float64, strict=False)
    frame = pl.DataFrame({"ts": ts, "price": price})
    kept, info = drop_missing(frame, ["price"], f"{base} price", path)
    src = "coingecko:market_chart"
    return new_series("prices", price_frame(kept["ts"], kept["price"], base, quote, src),
                      name or f"coingecko-{base}-{quote}", src, path, info)


def fetch_coingecko(coin: str, lake: str | os.PathLike, start: int, end: int, *, vs: str = "usd",
                    symbol: str | None = None, api_key: str | None = None, pro: bool = False,
                    base_url: str | None = None, window_days: int = 89, client: HttpClient | None = None,
                    progress: Callable[[int, int], None] | None = None) -> ImportReport:
    """CoinGecko ``market_chart/range`` for ``coin`` (an API id such as ``staked-ether``) over [start, end)
    in windows of ``window_days`` (< 90 days gives hourly points) -> ``prices`` SYMBOL/VS."""
    base = (base_url or (COINGECKO_PRO_URL if pro else COINGECKO_URL)).rstrip("/")
    sym = symbol or COINGECKO_IDS.get(coin)
    if sym is None:
        raise InputError(f"coingecko {coin}: unknown id; pass --symbol (the lake's name for it)")
    headers = {("x-cg-pro-api-key" if pro else "x-cg-demo-api-key"): api_key} if api_key else {}
    client = client or HttpClient()
    client.headers.update(headers)
    for v in headers.values():
        client.secrets.add(v)
    params = {"coin": coin, "vs": vs.lower(), "start": int(start), "end": int(end), "window_days": window_days,
              "host": urllib.parse.urlsplit(base).hostname}
    job = job_dir(lake, "coingecko", params)
    write_manifest(job, "coingecko", params, "running")
    q = urllib.parse.quote

    def url(a: int, b: int) -> str:
        return f"{base}/coins/{q(coin)}/market_chart/range?vs_currency={q(vs.lower())}&from={a}&to={b}"

    def check(doc: Any) -> None:
        if not isinstance(doc, dict) or not isinstance(doc.get("prices"), list):
            raise MalformedResponse("not a market_chart response")

    files = fetch_windows(client, job, time_windows(int(start), int(end), window_days * DAY), url,
                          lambda a, b: f"coingecko {coin} {utc_text(a)}..{utc_text(b)}", check, progress)
    frames, missing = [], 0
    for f in files:
        doc = json.loads(f.read_text())
        if not doc["prices"]:
            continue
        s = _market_chart_series(doc, f, sym, vs.upper())
        frames.append(s.df)
        missing += s.missing
    if not frames:
        raise DataError(f"coingecko {coin}: no prices between {utc_text(start)} and {utc_text(end)}")
    df = pl.concat(frames).unique(subset=["ts"], keep="last").sort("ts")
    df = df.filter((pl.col("ts") >= int(start)) & (pl.col("ts") < int(end)))
    src = "coingecko:market_chart"
    item = Series("prices", df, safe_name(f"coingecko-{sym}-{vs.upper()}"), src, f"coingecko:{coin}", missing)
    report = commit(lake, [item])
    write_manifest(job, "coingecko", params, "complete", windows=len(files), rows=df.height)
    return report
