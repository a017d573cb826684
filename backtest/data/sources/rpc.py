"""Ethereum JSON-RPC (an endpoint the user names): ``eth_call`` at chosen blocks, with the calls encoded by
:mod:`backtest.data.sources.abi`: wstETH ``stEthPerToken()`` -> ``exchange_rates``; Aave
``getReserveData(address)`` (v2 and v3 layouts) -> ``rates`` + ``market_params``; Chainlink
``latestRoundData()`` / ``decimals()`` -> ``prices``; Curve ``get_dy(int128,int128,uint256)`` -> ``prices``;
``eth_getBlockByNumber`` for every block's time -> ``blocks``. The URL is a secret (providers put keys in it)
and is never shown; a job resumes block by block (one JSON line per finished block).

These are the one-call-per-request readers; the batched presets (LST / LRT rates, Morpho, Comet, Aave at every
rate change, oracles, CAPO, pools) are :mod:`backtest.data.sources.rpc_presets`, run by
:mod:`backtest.data.sources.rpc_jobs` over :mod:`backtest.data.sources.rpc_batch`."""
from __future__ import annotations

import base64
import json
import os
import urllib.parse
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import polars as pl

from backtest.data.sources.abi import decode_words, encode_call, signed_int
from backtest.data.sources.commit import ImportReport, commit
from backtest.data.sources.curve import CURVE_STETH_POOL
from backtest.data.sources.download import HttpClient, finished_blocks, job_dir, write_manifest
from backtest.data.sources.toolkit import Series, safe_name
from backtest.errors import DataError, InputError


WSTETH = "0x7f39C581F595B53c5cb19bD0b3f8dA6c935E2Ca0"
AAVE_V3_POOL = "0x87870Bca3F3fD6335C3F4ce8392D69350B4fA4E2"
AAVE_V2_POOL = "0x7d2768dE32b0b80b7a3454c06BdAc94A69DDc7A9"
CURVE_STETH = CURVE_STETH_POOL          # the stETH/ETH pool: the default of the curve-dy reader
RAY = 1e27


def _split_userinfo(url: str) -> tuple[str, str | None]:
    """``scheme://user:pass@host/path`` -> (the URL without ``user:pass@``, its ``Basic ...`` header value)."""
    p = urllib.parse.urlsplit(url)
    if "@" not in p.netloc:
        return url, None
    userinfo, _, hostport = p.netloc.rpartition("@")
    user, _, password = userinfo.partition(":")
    token = base64.b64encode(f"{urllib.parse.unquote(user)}:{urllib.parse.unquote(password)}".encode()).decode()
    return urllib.parse.urlunsplit((p.scheme, hostport, p.path, p.query, p.fragment)), f"Basic {token}"


class RpcClient:
    """JSON-RPC over HTTP POST; the URL is a secret (providers put keys in it) and is never shown."""

    def __init__(self, url: str, client: HttpClient | None = None):
        if not url or "://" not in url:
            raise InputError("an RPC URL is needed (http(s)://...): set it in the environment variable named by "
                             "--rpc-url-env (default ETH_RPC_URL)")
        self.client = client or HttpClient()
        self.client.secrets.add(url)
        self.url, auth = _split_userinfo(url)
        if auth is not None:
            # urllib cannot send user:pass@ itself (it reads "user:pass@host" as the host): HTTP basic auth
            self.client.secrets.add(auth)
            self.client.headers["Authorization"] = auth
        self._id = 0

    def call(self, method: str, params: list[Any], label: str) -> Any:
        for attempt in range(self.client.retries + 1):
            self._id += 1
            resp = self.client.post_json(self.url, {"jsonrpc": "2.0", "id": self._id, "method": method,
                                                    "params": params}, label)
            if not isinstance(resp, dict):
                reason = "malformed JSON-RPC response"
            elif resp.get("error"):
                err = resp["error"] if isinstance(resp["error"], dict) else {"message": str(resp["error"])}
                msg = str(err.get("message", ""))
                code = err.get("code")
                if code in (-32005, 429) or "rate" in msg.lower() or "limit" in msg.lower():
                    reason = f"rate limited by the node ({code}: {msg[:80]})"
                else:
                    raise DataError(self.client.secrets.scrub(f"{label}: the node answered error {code}: {msg[:200]}"))
            elif "result" not in resp:
                reason = "JSON-RPC response without a result"
            else:
                return resp["result"]
            self.client._wait(attempt, None, label, reason)
        raise AssertionError("unreachable")  # pragma: no cover

    def block(self, number: int) -> tuple[int, int]:
        """(number, timestamp) of a block."""
        res = self.call("eth_getBlockByNumber", [hex(number), False], f"rpc eth_getBlockByNumber {number}")
        if not isinstance(res, dict) or "timestamp" not in res:
            raise DataError(f"rpc block {number}: not found (beyond the chain head?)")
        return int(res.get("number", hex(number)), 16), int(res["timestamp"], 16)

    def eth_call(self, to: str, data: str, block: int, what: str) -> list[int]:
        label = f"rpc eth_call {what} at block {block}"
        res = self.call("eth_call", [{"to": to, "data": data}, hex(block)], label)
        return decode_words(res, label)


@dataclass
class Reader:
    """What to read at each block: ``read(rpc, block) -> dict`` and how the rows become lake series."""

    name: str
    params: dict[str, Any]
    read: Callable[[RpcClient, int], dict[str, Any]]
    to_series: Callable[[pl.DataFrame], list[Series]]


def wsteth_reader(address: str = WSTETH) -> Reader:
    data = encode_call("stEthPerToken()")

    def read(rpc: RpcClient, block: int) -> dict[str, Any]:
        (v,) = rpc.eth_call(address, data, block, "wstETH.stEthPerToken()")[:1]
        return {"rate": v / 1e18}

    def series(df: pl.DataFrame) -> list[Series]:
        src = "rpc:wstETH.stEthPerToken"
        xr = df.select("ts", "block", pl.lit("wstETH").alias("token"), pl.lit("stETH").alias("underlying"), "rate",
                       pl.lit(src).alias("source"))
        return [Series("exchange_rates", xr, "rpc-wstETH-stETH", src, "rpc")]
    return Reader("wsteth", {"address": address.lower()}, read, series)


def aave_reserve_reader(asset: str, symbol: str, *, pool: str | None = None, version: int = 3,
                        protocol: str | None = None) -> Reader:
    """Aave ``getReserveData(asset)``: v3 (ReserveDataLegacy: configuration, liquidityIndex,
    currentLiquidityRate, variableBorrowIndex, currentVariableBorrowRate, ...) or v2 (configuration,
    liquidityIndex, variableBorrowIndex, currentLiquidityRate, currentVariableBorrowRate, ...); rates and
    indices in ray; configuration bits 0-15 LTV, 16-31 liquidation threshold, 32-47 bonus (bps, 10500 =
    5 %)."""
    if version not in (2, 3):
        raise InputError(f"--aave-version {version}: 2 or 3")
    pool = pool or (AAVE_V3_POOL if version == 3 else AAVE_V2_POOL)
    protocol = protocol or f"aave-v{version}"
    data = encode_call("getReserveData(address)", asset)

    def read(rpc: RpcClient, block: int) -> dict[str, Any]:
        w = rpc.eth_call(pool, data, block, f"{protocol} getReserveData({symbol})")
        if len(w) < 7:
            raise DataError(f"rpc {protocol} getReserveData({symbol}) at block {block}: {len(w)} words, expected "
                            "at least 7")
        cfg = w[0]
        if version == 3:
            li, lr, bi, br = w[1], w[2], w[3], w[4]
        else:
            li, bi, lr, br = w[1], w[2], w[3], w[4]
        ltv, lt, bonus = cfg & 0xFFFF, (cfg >> 16) & 0xFFFF, (cfg >> 32) & 0xFFFF
        return {"supply_apr": lr / RAY, "borrow_apr": br / RAY, "supply_index": li / RAY, "borrow_index": bi / RAY,
                "ltv": ltv / 1e4, "liquidation_threshold": lt / 1e4,
                "liquidation_bonus": (bonus / 1e4 - 1.0) if bonus else 0.0}

    def series(df: pl.DataFrame) -> list[Series]:
        src = f"rpc:{protocol}.getReserveData"
        rates = df.select("ts", "block", pl.lit(protocol).alias("protocol"), pl.lit(symbol).alias("asset"),
                          "supply_apr", "borrow_apr", "supply_index", "borrow_index")
        p = df.filter(pl.col("liquidation_threshold") > 0)
        changed = p.select(pl.any_horizontal([pl.col(c).ne(pl.col(c).shift(1)).fill_null(True)
                                              for c in ("ltv", "liquidation_threshold", "liquidation_bonus")]))
        p = p.filter(changed.to_series()) if p.height else p
        params = p.select("ts", pl.lit(protocol).alias("protocol"), pl.lit(symbol).alias("asset"),
                          pl.lit(None, dtype=pl.String).alias("emode"), "ltv", "liquidation_threshold",
                          "liquidation_bonus")
        out = [Series("rates", rates, safe_name(f"rpc-{protocol}-{symbol}"), src, "rpc")]
        if params.height:
            out.append(Series("market_params", params, safe_name(f"rpc-{protocol}-{symbol}-params"), src, "rpc"))
        return out
    return Reader("aave-reserve", {"pool": pool.lower(), "asset": asset.lower(), "symbol": symbol,
                                   "version": version, "protocol": protocol}, read, series)


def chainlink_reader(feed: str, base: str, quote: str) -> Reader:
    lrd = encode_call("latestRoundData()")
    dec = encode_call("decimals()")
    decimals: dict[str, int] = {}

    def read(rpc: RpcClient, block: int) -> dict[str, Any]:
        if "d" not in decimals:
            decimals["d"] = rpc.eth_call(feed, dec, block, f"chainlink {base}/{quote} decimals()")[0]
        w = rpc.eth_call(feed, lrd, block, f"chainlink {base}/{quote} latestRoundData()")
        if len(w) < 5:
            raise DataError(f"rpc chainlink {base}/{quote} at block {block}: {len(w)} words, expected 5")
        answer = signed_int(w[1])
        if answer <= 0:
            return {"price": None, "updated_at": w[3]}
        return {"price": answer / 10 ** decimals["d"], "updated_at": w[3]}

    def series(df: pl.DataFrame) -> list[Series]:
        src = f"chainlink:{feed.lower()}"
        kept = df.filter(pl.col("price").is_not_null())
        missing = df.height - kept.height
        px = kept.select("ts", "block", pl.lit(base).alias("base"), pl.lit(quote).alias("quote"), "price",
                         pl.lit(src).alias("source"))
        return [Series("prices", px, safe_name(f"rpc-chainlink-{base}-{quote}"), src, "rpc", missing)]
    return Reader("chainlink", {"feed": feed.lower(), "base": base, "quote": quote}, read, series)


def curve_dy_reader(pool: str, i: int, j: int, base: str, quote: str, dx: float = 1.0) -> Reader:
    amount = int(round(dx * 1e18))
    data = encode_call("get_dy(int128,int128,uint256)", i, j, amount)

    def read(rpc: RpcClient, block: int) -> dict[str, Any]:
        (dy,) = rpc.eth_call(pool, data, block, f"curve get_dy({i},{j},{dx:g})")[:1]
        return {"price": dy / amount if dy else None}

    def series(df: pl.DataFrame) -> list[Series]:
        src = f"curve:{pool.lower()}:get_dy"
        kept = df.filter(pl.col("price").is_not_null())
        px = kept.select("ts", "block", pl.lit(base).alias("base"), pl.lit(quote).alias("quote"), "price",
                         pl.lit(src).alias("source"))
        return [Series("prices", px, safe_name(f"rpc-curve-{base}-{quote}"), src, "rpc", df.height - kept.height)]
    return Reader("curve-dy", {"pool": pool.lower(), "i": i, "j": j, "dx": dx, "base": base, "quote": quote}, read,
                  series)


def blocks_reader() -> Reader:
    return Reader("blocks", {}, lambda rpc, block: {}, lambda df: [])


def parse_blocks(spec: Sequence[str]) -> list[int]:
    """``A:B:STEP`` (inclusive of B when on the step) and single numbers -> sorted unique block numbers."""
    out: set[int] = set()
    for item in spec:
        for part in str(item).split(","):
            part = part.strip()
            if not part:
                continue
            try:
                if ":" in part:
                    bits = [int(x) for x in part.split(":")]
                    if len(bits) == 2:
                        bits.append(1)
                    a, b, step = bits
                    if step <= 0 or b < a:
                        raise ValueError
                    if (b - a) // step > 1_000_000:
                        raise InputError(f"--blocks {part}: more than a million blocks; use a larger step")
                    out.update(range(a, b + 1, step))
                else:
                    out.add(int(part))
            except ValueError:
                raise InputError(f"--blocks {part!r}: expected N or START:END[:STEP] with START <= END") from None
    if not out:
        raise InputError("no blocks given (--blocks START:END:STEP or --block N)")
    if min(out) < 0:
        raise InputError("block numbers must be >= 0")
    return sorted(out)


def fetch_rpc(reader: Reader, blocks: Sequence[int], lake: str | os.PathLike, rpc_url: str, *,
              client: HttpClient | None = None, progress: Callable[[int, int], None] | None = None
              ) -> ImportReport:
    """Read ``reader`` at every block (plus the block's time), resumably (one JSON line per finished block
    under the job folder), then write its series and the ``blocks`` table to the lake."""
    rpc = RpcClient(rpc_url, client)
    params = {"reader": reader.name, **reader.params, "first": min(blocks), "last": max(blocks), "n": len(blocks)}
    job = job_dir(lake, "rpc", params)
    job.mkdir(parents=True, exist_ok=True)
    write_manifest(job, "rpc", params, "running")
    done_path = job / "blocks.jsonl"
    done = finished_blocks(done_path, "block")
    todo = [b for b in blocks if b not in done]
    with open(done_path, "a") as fh:
        for k, b in enumerate(todo):
            number, ts = rpc.block(b)
            rec = {"block": number, "ts": ts, **reader.read(rpc, b)}
            fh.write(json.dumps(rec) + "\n")
            fh.flush()
            done[b] = rec
            if progress is not None:
                progress(len(blocks) - len(todo) + k + 1, len(blocks))
    rows = [done[b] for b in blocks]
    df = pl.DataFrame(rows, infer_schema_length=None).sort("block")
    items = reader.to_series(df)
    items.append(Series("blocks", df.select("ts", "block").unique(subset=["ts"], keep="last").sort("ts"),
                        "rpc-blocks", "rpc:eth_getBlockByNumber", "rpc"))
    report = commit(lake, items)
    write_manifest(job, "rpc", params, "complete", rows=len(rows))
    return report
