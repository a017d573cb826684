"""`backtest data fetch`: download history from public APIs and an Ethereum node into the lake.

Three sources, each a small client on the standard library (``urllib``):

- **CoinGecko** ``/coins/{id}/market_chart/range`` in windows of at most 89 days (CoinGecko then answers
  hourly points), with the API key (if any) in the ``x-cg-demo-api-key`` / ``x-cg-pro-api-key`` header;
  -> ``prices`` SYMBOL/VS (source ``coingecko:market_chart``).
- **DefiLlama** coins chart ``coins.llama.fi/chart/{coin}?start&span&period`` (in windows of ``span``
  points) -> ``prices``; the pool charts ``yields.llama.fi/chart/{pool}`` (free; -> an exchange rate
  compounded from the base APY) and ``chartLendBorrow/{pool}`` (Pro: the key is part of the URL path,
  ``pro-api.llama.fi/{key}/yields/...``) -> ``rates`` with utilization from the totals.
- **Ethereum JSON-RPC** (an endpoint the user names): ``eth_call`` at chosen blocks, with the calls encoded
  here (selectors are keccak-256 of the signature, computed by :func:`keccak256`): wstETH
  ``stEthPerToken()`` -> ``exchange_rates``; Aave ``getReserveData(address)`` (v2 and v3 layouts) ->
  ``rates`` + ``market_params``; Chainlink ``latestRoundData()`` / ``decimals()`` -> ``prices``; Curve
  ``get_dy(int128,int128,uint256)`` -> ``prices``; ``eth_getBlockByNumber`` for every block's time ->
  ``blocks``.

Robustness (:class:`HttpClient`): a timeout per request; retries with exponential backoff on timeouts,
connection errors, truncated bodies (fewer bytes than Content-Length, or JSON that does not parse), HTTP 5xx,
408 and 429 (waiting ``Retry-After`` seconds when the server says so, up to a cap); other 4xx fail at once
with the status. Every request's label is built from non-secret parts, and every message is scrubbed of the
API key and the RPC URL, which never reach a log line, an error message, the fetch manifest or the lake.

Resumability: each job (its non-secret parameters hashed) keeps what it has under
``<lake>/.fetch/<source>/<job>/``: one file per finished window (CoinGecko, DefiLlama), one JSON line per
finished block (RPC), and single downloads as ``<file>.part`` continued with an HTTP ``Range`` request. A
job that stopped (network down, Ctrl-C, a 429 beyond the cap) continues where it stopped when run again;
nothing is written to the lake until every window is in, and then all at once through the importers
(validated first, atomic per file, idempotent).
"""
from __future__ import annotations

import base64
import datetime as _dt
import email.utils
import hashlib
import http.client
import ipaddress
import json
import logging
import os
import socket
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import polars as pl

from backtest import __version__
from backtest.data import importers as _imp
from backtest.errors import BacktestError, DataError, InputError

log = logging.getLogger("backtest.data.fetch")

COINGECKO_URL = "https://api.coingecko.com/api/v3"
COINGECKO_PRO_URL = "https://pro-api.coingecko.com/api/v3"
LLAMA_COINS_URL = "https://coins.llama.fi"
LLAMA_YIELDS_URL = "https://yields.llama.fi"
LLAMA_PRO_URL = "https://pro-api.llama.fi"
DAY = 86400


class FetchError(BacktestError):
    """A download that failed after its retries (network, server): exit code 1."""


# ============================================================================================ secrets
def redact(url: str) -> str:
    """``scheme://host/…`` of a URL: enough to say where, never a path or query that may carry a key."""
    try:
        p = urllib.parse.urlsplit(url)
    except ValueError:
        return "<url>"
    host = p.hostname or "?"
    return f"{p.scheme}://{host}/…" if p.path not in ("", "/") or p.query else f"{p.scheme}://{host}"


class Secrets:
    """Strings that must never appear in a message (API keys, RPC URLs and their path/query parts)."""

    def __init__(self, values: Iterable[str | None] = ()):
        self.values: list[str] = []
        for v in values:
            self.add(v)

    def add(self, value: str | None) -> None:
        if not value:
            return
        self.values.append(value)
        if "://" in value:
            p = urllib.parse.urlsplit(value)
            for part in (p.path, p.query, p.netloc):
                if part and part not in ("/",) and len(part) >= 6 and part != p.hostname:
                    self.values.append(part)
            for seg in p.path.split("/"):
                if len(seg) >= 12:
                    self.values.append(seg)
            if "@" in p.netloc:                  # user:pass@, and the password on its own
                self.values.append(p.netloc.rpartition("@")[0])
                if p.password and len(p.password) >= 4:
                    self.values.append(p.password)
        self.values.sort(key=len, reverse=True)

    def scrub(self, text: str) -> str:
        for v in self.values:
            if v:
                text = text.replace(v, "***")
        return text


# ============================================================================================ http
def _is_loopback(url: str) -> bool:
    host = urllib.parse.urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class _Retry(Exception):
    def __init__(self, reason: str, wait: float | None = None):
        super().__init__(reason)
        self.reason = reason
        self.wait = wait


class _RangeReset(_Retry):
    """HTTP 416: the partial file does not fit what the server has; start the download over."""


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=_dt.timezone.utc)
    return max(0.0, (when - _dt.datetime.now(_dt.timezone.utc)).total_seconds())


class _SameHostRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):
        if urllib.parse.urlsplit(newurl).hostname != urllib.parse.urlsplit(req.full_url).hostname:
            raise urllib.error.HTTPError(req.full_url, code, "redirect to another host refused", headers, fp)
        return super().redirect_request(req, fp, code, msg, headers, newurl)


@dataclass
class HttpClient:
    """GET/POST with a timeout, retries with exponential backoff, 429/Retry-After and truncation handling.

    ``headers`` are sent with every request (e.g. an API key header) and never logged; ``secrets`` are
    scrubbed from every message. ``sleep`` is injectable (tests pass a recorder)."""

    timeout: float = 30.0
    retries: int = 5
    backoff: float = 1.0
    max_backoff: float = 60.0
    max_retry_after: float = 600.0
    headers: dict[str, str] = field(default_factory=dict)
    secrets: Secrets = field(default_factory=Secrets)
    sleep: Callable[[float], None] = time.sleep
    chunk: int = 1 << 16

    def __post_init__(self) -> None:
        for v in self.headers.values():
            self.secrets.add(v)

    def _opener(self, url: str) -> urllib.request.OpenerDirector:
        # a loopback address never goes through a proxy from the environment; redirects stay on the host
        # (urllib would otherwise forward the API-key header to wherever a redirect points)
        if _is_loopback(url):
            return urllib.request.build_opener(urllib.request.ProxyHandler({}), _SameHostRedirect())
        return urllib.request.build_opener(_SameHostRedirect())

    def _wait(self, attempt: int, hint: float | None, label: str, reason: str) -> None:
        if attempt >= self.retries:
            raise FetchError(self.secrets.scrub(f"{label}: {reason}; gave up after {self.retries + 1} attempt(s)"))
        if hint is not None:
            if hint > self.max_retry_after:
                raise FetchError(self.secrets.scrub(
                    f"{label}: {reason}; the server asks to wait {hint:.0f} s "
                    f"(more than {self.max_retry_after:.0f} s): "
                    "run the same command again later, it resumes where it stopped"))
            wait = hint
        else:
            wait = min(self.max_backoff, self.backoff * (2 ** attempt))
        log.warning(self.secrets.scrub(f"{label}: {reason}; retry {attempt + 1}/{self.retries} in {wait:.1f} s"))
        self.sleep(wait)

    def _open(self, url: str, label: str, method: str = "GET", body: bytes | None = None,
              headers: dict[str, str] | None = None):
        hdrs = {"User-Agent": f"backtest/{__version__}", "Accept": "application/json", **self.headers,
                **(headers or {})}
        req = urllib.request.Request(url, data=body, headers=hdrs, method=method)
        try:
            return self._opener(url).open(req, timeout=self.timeout)
        except urllib.error.HTTPError as exc:
            code = exc.code
            try:
                snippet = exc.read(300).decode("utf-8", "replace")
            except Exception:  # noqa: BLE001
                snippet = ""
            finally:
                exc.close()
            reason = f"HTTP {code} {exc.reason}"
            if code == 416 and headers and "Range" in headers:
                raise _RangeReset(reason + " (the partial download is discarded)", 0.0) from None
            if code == 429:
                raise _Retry(reason + " (rate limited)", _retry_after(exc.headers.get("Retry-After"))) from None
            if code >= 500 or code == 408:
                raise _Retry(reason, _retry_after(exc.headers.get("Retry-After"))) from None
            detail = f": {snippet.strip()[:200]}" if snippet.strip() else ""
            err = InputError if code in (400, 401, 403, 404, 410, 422) else FetchError
            raise err(self.secrets.scrub(f"{label}: {reason}{detail}")) from None
        except (socket.timeout, TimeoutError) as exc:
            raise _Retry(f"timed out after {self.timeout:g} s") from exc
        except urllib.error.URLError as exc:
            if isinstance(exc.reason, (socket.timeout, TimeoutError)):
                raise _Retry(f"timed out after {self.timeout:g} s") from exc
            raise _Retry(f"connection failed ({type(exc.reason).__name__})") from exc
        except (ConnectionError, http.client.HTTPException, OSError) as exc:
            raise _Retry(f"connection failed ({type(exc).__name__})") from exc

    def request(self, url: str, label: str, method: str = "GET", body: bytes | None = None,
                headers: dict[str, str] | None = None, parse: Callable[[bytes], Any] | None = None) -> Any:
        """The body (or ``parse(body)``), retrying as described; ``parse`` raising ValueError = truncated."""
        for attempt in range(self.retries + 1):
            try:
                resp = self._open(url, label, method, body, headers)
                with resp:
                    expected = resp.headers.get("Content-Length")
                    try:
                        data = resp.read()
                    except http.client.IncompleteRead as exc:
                        raise _Retry(f"truncated response ({len(exc.partial)} of {expected} bytes)") from exc
                    except (socket.timeout, TimeoutError) as exc:
                        raise _Retry(f"timed out reading after {self.timeout:g} s") from exc
                    except (ConnectionError, OSError) as exc:
                        raise _Retry(f"connection lost ({type(exc).__name__})") from exc
                    if expected is not None and expected.isdigit() and len(data) < int(expected):
                        raise _Retry(f"truncated response ({len(data)} of {expected} bytes)")
                if parse is None:
                    return data
                try:
                    return parse(data)
                except ValueError as exc:
                    raise _Retry(f"truncated or malformed response ({len(data)} bytes: {type(exc).__name__})") from exc
            except _Retry as r:
                self._wait(attempt, r.wait, label, r.reason)
        raise AssertionError("unreachable")  # pragma: no cover

    def get_json(self, url: str, label: str) -> Any:
        return self.request(url, label, parse=json.loads)

    def post_json(self, url: str, payload: Any, label: str) -> Any:
        body = json.dumps(payload).encode()
        return self.request(url, label, "POST", body, {"Content-Type": "application/json"}, parse=json.loads)

    def download(self, url: str, dest: Path, label: str) -> Path:
        """Stream ``url`` to ``dest`` through ``dest.part``; a partial file is continued with ``Range``."""
        dest = Path(dest)
        part = dest.with_name(dest.name + ".part")
        dest.parent.mkdir(parents=True, exist_ok=True)
        for attempt in range(self.retries + 1):
            have = part.stat().st_size if part.exists() else 0
            try:
                resp = self._open(url, label, headers={"Range": f"bytes={have}-"} if have else None)
                with resp:
                    status = getattr(resp, "status", 200)
                    length = resp.headers.get("Content-Length")
                    if status == 206:
                        start = _range_start(resp.headers.get("Content-Range"))
                        if start != have:
                            have, mode = 0, "wb"     # the server resent something else: start over
                        else:
                            mode = "ab"
                    else:
                        have, mode = 0, "wb"
                    expected = have + int(length) if length and length.isdigit() else None
                    got = have
                    with open(part, mode) as fh:
                        while True:
                            try:
                                buf = resp.read(self.chunk)
                            except http.client.IncompleteRead as exc:
                                fh.write(exc.partial)
                                got += len(exc.partial)
                                raise _Retry(f"truncated download ({got} of {expected} bytes kept)") from exc
                            except (socket.timeout, TimeoutError, ConnectionError, OSError) as exc:
                                raise _Retry(f"download interrupted ({got} bytes kept; {type(exc).__name__})") from exc
                            if not buf:
                                break
                            fh.write(buf)
                            got += len(buf)
                    if expected is not None and got < expected:
                        raise _Retry(f"truncated download ({got} of {expected} bytes kept)")
                os.replace(part, dest)
                return dest
            except _Retry as r:
                if isinstance(r, _RangeReset):
                    part.unlink(missing_ok=True)
                self._wait(attempt, r.wait, label, r.reason)
        raise AssertionError("unreachable")  # pragma: no cover


def _range_start(value: str | None) -> int | None:
    # "bytes 100-199/200"
    if not value or not value.startswith("bytes "):
        return None
    try:
        return int(value[6:].split("-", 1)[0])
    except ValueError:
        return None


# ============================================================================================ jobs
def _job_dir(lake: str | os.PathLike, source: str, params: dict[str, Any]) -> Path:
    key = hashlib.sha256(json.dumps(params, sort_keys=True, default=str).encode()).hexdigest()[:16]
    return Path(lake) / ".fetch" / source / key


def _write_json_atomic(path: Path, obj: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(obj, sort_keys=True, default=str))
    os.replace(tmp, path)


def _manifest(job: Path, source: str, params: dict[str, Any], status: str, **extra: Any) -> None:
    """The job's manifest: non-secret parameters only (the API key and RPC URL are never passed here)."""
    _write_json_atomic(job / "job.json", {"source": source, "params": params, "status": status,
                                          "package_version": __version__, **extra})


def _windows(start: int, end: int, step: int) -> list[tuple[int, int]]:
    if end <= start:
        raise InputError(f"--end {_iso(end)} is not after --start {_iso(start)}")
    out, a = [], start
    while a < end:
        b = min(end, a + step)
        out.append((a, b))
        a = b
    return out


def _iso(ts: int) -> str:
    return _dt.datetime.fromtimestamp(int(ts), _dt.timezone.utc).strftime("%Y-%m-%d %H:%M")


def _fetch_windows(client: HttpClient, job: Path, windows: list[tuple[int, int]], url_of: Callable[[int, int], str],
                   label_of: Callable[[int, int], str], check: Callable[[Any], None] | None = None,
                   progress: Callable[[int, int], None] | None = None) -> list[Path]:
    """Download each window to ``job/w-<start>-<end>.json`` unless already there; return the files."""
    def parse(body: bytes) -> Any:
        doc = json.loads(body)
        if check is not None:
            check(doc)            # a ValueError here counts as a truncated / malformed answer: retried
        return doc

    files = []
    for i, (a, b) in enumerate(windows):
        path = job / f"w-{a}-{b}.json"
        if not path.exists():
            doc = client.request(url_of(a, b), label_of(a, b), parse=parse)
            _write_json_atomic(path, doc)
        files.append(path)
        if progress is not None:
            progress(i + 1, len(windows))
    return files


# ============================================================================================ coingecko
def fetch_coingecko(coin: str, lake: str | os.PathLike, start: int, end: int, *, vs: str = "usd",
                    symbol: str | None = None, api_key: str | None = None, pro: bool = False,
                    base_url: str | None = None, window_days: int = 89, client: HttpClient | None = None,
                    progress: Callable[[int, int], None] | None = None) -> _imp.ImportReport:
    """CoinGecko ``market_chart/range`` for ``coin`` (an API id such as ``staked-ether``) over [start, end)
    in windows of ``window_days`` (< 90 days gives hourly points) -> ``prices`` SYMBOL/VS."""
    base = (base_url or (COINGECKO_PRO_URL if pro else COINGECKO_URL)).rstrip("/")
    sym = symbol or _imp.COINGECKO_IDS.get(coin)
    if sym is None:
        raise InputError(f"coingecko {coin}: unknown id; pass --symbol (the lake's name for it)")
    headers = {("x-cg-pro-api-key" if pro else "x-cg-demo-api-key"): api_key} if api_key else {}
    client = client or HttpClient()
    client.headers.update(headers)
    for v in headers.values():
        client.secrets.add(v)
    params = {"coin": coin, "vs": vs.lower(), "start": int(start), "end": int(end), "window_days": window_days,
              "host": urllib.parse.urlsplit(base).hostname}
    job = _job_dir(lake, "coingecko", params)
    _manifest(job, "coingecko", params, "running")
    q = urllib.parse.quote

    def url(a: int, b: int) -> str:
        return f"{base}/coins/{q(coin)}/market_chart/range?vs_currency={q(vs.lower())}&from={a}&to={b}"

    def check(doc: Any) -> None:
        if not isinstance(doc, dict) or not isinstance(doc.get("prices"), list):
            raise _Truncated("not a market_chart response")

    files = _fetch_windows(client, job, _windows(int(start), int(end), window_days * DAY), url,
                           lambda a, b: f"coingecko {coin} {_iso(a)}..{_iso(b)}", check, progress)
    frames, missing = [], 0
    for f in files:
        doc = json.loads(f.read_text())
        if not doc["prices"]:
            continue
        s = _imp._market_chart_series(doc, f, sym, vs.upper())
        frames.append(s.df)
        missing += s.missing
    if not frames:
        raise DataError(f"coingecko {coin}: no prices between {_iso(start)} and {_iso(end)}")
    df = pl.concat(frames).unique(subset=["ts"], keep="last").sort("ts")
    df = df.filter((pl.col("ts") >= int(start)) & (pl.col("ts") < int(end)))
    src = "coingecko:market_chart"
    item = _imp.Series("prices", df, _imp._name(f"coingecko-{sym}-{vs.upper()}"), src, f"coingecko:{coin}", missing)
    report = _imp.commit(lake, [item])
    _manifest(job, "coingecko", params, "complete", windows=len(files), rows=df.height)
    return report


class _Truncated(ValueError):
    pass


# ============================================================================================ defillama
def fetch_defillama_coins(coin: str, lake: str | os.PathLike, start: int, end: int, *, period: str = "1h",
                          symbol: str | None = None, span: int = 500, base_url: str | None = None,
                          client: HttpClient | None = None,
                          progress: Callable[[int, int], None] | None = None) -> _imp.ImportReport:
    """DefiLlama coins chart for ``coin`` (``ethereum:0x…`` or ``coingecko:id``) every ``period`` over
    [start, end), ``span`` points per request -> ``prices`` SYMBOL/USD (source ``defillama:coins``)."""
    base = (base_url or LLAMA_COINS_URL).rstrip("/")
    step = _period_seconds(period)
    client = client or HttpClient()
    params = {"coin": coin, "start": int(start), "end": int(end), "period": period, "span": span,
              "host": urllib.parse.urlsplit(base).hostname}
    job = _job_dir(lake, "defillama-coins", params)
    _manifest(job, "defillama-coins", params, "running")
    q = urllib.parse.quote

    def url(a: int, b: int) -> str:
        n = max(1, (b - a + step - 1) // step)
        return f"{base}/chart/{q(coin, safe=':,')}?start={a}&span={n}&period={q(period)}&searchWidth=600"

    def check(doc: Any) -> None:
        if not isinstance(doc, dict) or not isinstance(doc.get("coins"), dict):
            raise _Truncated("not a coins chart")

    files = _fetch_windows(client, job, _windows(int(start), int(end), span * step), url,
                           lambda a, b: f"defillama coins {coin} {_iso(a)}..{_iso(b)}", check, progress)
    opts = {"base": symbol} if symbol else {}
    src_items = []
    for f in files:
        doc = json.loads(f.read_text())
        if not any(e.get("prices") for e in doc["coins"].values()):
            continue
        _, items = _imp._parse_defillama_doc(f, doc, opts)
        src_items.extend(items)
    if not src_items:
        raise DataError(f"defillama {coin}: no prices between {_iso(start)} and {_iso(end)}")
    df = pl.concat([s.df for s in src_items]).unique(subset=["base", "ts"], keep="last").sort("ts")
    df = df.filter((pl.col("ts") >= int(start)) & (pl.col("ts") < int(end)))
    base_sym = df["base"][0]
    item = _imp.Series("prices", df, _imp._name(f"defillama-{base_sym}-USD"), "defillama:coins", f"defillama:{coin}",
                       sum(s.missing for s in src_items))
    report = _imp.commit(lake, [item])
    _manifest(job, "defillama-coins", params, "complete", windows=len(files), rows=df.height)
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
                         client: HttpClient | None = None) -> _imp.ImportReport:
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
    job = _job_dir(lake, "defillama-pool", params)
    _manifest(job, "defillama-pool", params, "running")
    path = job / f"{chart}-{pool}.json"
    if not path.exists():
        client.download(url, path, f"defillama {chart} {pool}")
    try:
        json.loads(path.read_text())
    except ValueError:
        path.unlink()
        raise FetchError(f"defillama {chart} {pool}: the download is not valid JSON (removed; run again)") from None
    report = _imp.commit(lake, _imp._parse_defillama([path], **{k: v for k, v in opts.items() if v}))
    _manifest(job, "defillama-pool", params, "complete")
    return report


# ============================================================================================ keccak / ABI
_RC = [0x0000000000000001, 0x0000000000008082, 0x800000000000808A, 0x8000000080008000, 0x000000000000808B,
       0x0000000080000001, 0x8000000080008081, 0x8000000000008009, 0x000000000000008A, 0x0000000000000088,
       0x0000000080008009, 0x000000008000000A, 0x000000008000808B, 0x800000000000008B, 0x8000000000008089,
       0x8000000000008003, 0x8000000000008002, 0x8000000000000080, 0x000000000000800A, 0x800000008000000A,
       0x8000000080008081, 0x8000000000008080, 0x0000000080000001, 0x8000000080008008]
_ROT = [[0, 36, 3, 41, 18], [1, 44, 10, 45, 2], [62, 6, 43, 15, 61], [28, 55, 25, 21, 56], [27, 20, 39, 8, 14]]
_M64 = (1 << 64) - 1


def _rotl(v: int, n: int) -> int:
    return ((v << n) | (v >> (64 - n))) & _M64 if n else v


def _keccak_f(a: list[int]) -> list[int]:
    for rc in _RC:
        c = [a[x] ^ a[x + 5] ^ a[x + 10] ^ a[x + 15] ^ a[x + 20] for x in range(5)]
        d = [c[(x - 1) % 5] ^ _rotl(c[(x + 1) % 5], 1) for x in range(5)]
        a = [a[i] ^ d[i % 5] for i in range(25)]
        b = [0] * 25
        for x in range(5):
            for y in range(5):
                b[y + 5 * ((2 * x + 3 * y) % 5)] = _rotl(a[x + 5 * y], _ROT[x][y])
        a = [b[i] ^ ((~b[(i % 5 + 1) % 5 + 5 * (i // 5)]) & b[(i % 5 + 2) % 5 + 5 * (i // 5)]) for i in range(25)]
        a[0] ^= rc
    return a


def keccak256(data: bytes) -> bytes:
    """Keccak-256 (Ethereum's hash; not NIST SHA3-256, whose padding differs)."""
    rate = 136
    p = bytearray(data)
    p.append(0x01)
    while len(p) % rate:
        p.append(0)
    p[-1] |= 0x80
    state = [0] * 25
    for off in range(0, len(p), rate):
        for i in range(rate // 8):
            state[i] ^= int.from_bytes(p[off + 8 * i: off + 8 * i + 8], "little")
        state = _keccak_f(state)
    return b"".join(state[i].to_bytes(8, "little") for i in range(4))


def selector(signature: str) -> str:
    """The 4-byte function selector of a canonical signature, as 0x-hex (``transfer(address,uint256)``)."""
    return "0x" + keccak256(signature.encode()).hex()[:8]


def _word_address(addr: str) -> str:
    a = addr.lower().removeprefix("0x")
    if len(a) != 40 or any(c not in "0123456789abcdef" for c in a):
        raise InputError(f"{addr!r} is not an address (0x + 40 hex digits)")
    return a.rjust(64, "0")


def _word_int(v: int, signed: bool = False) -> str:
    if not signed and v < 0:
        raise InputError(f"{v} is negative for an unsigned argument")
    return (v & ((1 << 256) - 1)).to_bytes(32, "big").hex()


def encode_call(signature: str, *args: Any) -> str:
    """ABI-encode a call with static arguments (address, uintN, intN, bool) -> 0x data."""
    types = signature[signature.index("(") + 1: -1].split(",") if not signature.endswith("()") else []
    if len(types) != len(args):
        raise InputError(f"{signature}: {len(args)} argument(s) for {len(types)} parameter(s)")
    out = selector(signature)[2:]
    for t, v in zip(types, args):
        t = t.strip()
        if t == "address":
            out += _word_address(v)
        elif t.startswith("uint"):
            out += _word_int(int(v))
        elif t.startswith("int"):
            out += _word_int(int(v), signed=True)
        elif t == "bool":
            out += _word_int(1 if v else 0)
        else:
            raise InputError(f"{signature}: argument type {t} is not supported")
    return "0x" + out


def decode_words(data: str, label: str) -> list[int]:
    """The 32-byte words of an ``eth_call`` result as unsigned ints; DataError when empty or ragged."""
    h = (data or "").removeprefix("0x")
    if not h or len(h) % 64:
        raise DataError(f"{label}: empty or malformed call result ({len(h) // 2} bytes): wrong contract or block "
                        "before it existed?")
    return [int(h[i: i + 64], 16) for i in range(0, len(h), 64)]


def _signed(v: int, bits: int = 256) -> int:
    return v - (1 << bits) if v >> (bits - 1) else v


# ============================================================================================ rpc
WSTETH = "0x7f39C581F595B53c5cb19bD0b3f8dA6c935E2Ca0"
AAVE_V3_POOL = "0x87870Bca3F3fD6335C3F4ce8392D69350B4fA4E2"
AAVE_V2_POOL = "0x7d2768dE32b0b80b7a3454c06BdAc94A69DDc7A9"
CURVE_STETH = "0xDC24316b9AE028F1497c275EB9192a3Ea0f67022"
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
    to_series: Callable[[pl.DataFrame], list[_imp.Series]]


def wsteth_reader(address: str = WSTETH) -> Reader:
    data = encode_call("stEthPerToken()")

    def read(rpc: RpcClient, block: int) -> dict[str, Any]:
        (v,) = rpc.eth_call(address, data, block, "wstETH.stEthPerToken()")[:1]
        return {"rate": v / 1e18}

    def series(df: pl.DataFrame) -> list[_imp.Series]:
        src = "rpc:wstETH.stEthPerToken"
        xr = df.select("ts", "block", pl.lit("wstETH").alias("token"), pl.lit("stETH").alias("underlying"), "rate",
                       pl.lit(src).alias("source"))
        return [_imp.Series("exchange_rates", xr, "rpc-wstETH-stETH", src, "rpc")]
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

    def series(df: pl.DataFrame) -> list[_imp.Series]:
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
        out = [_imp.Series("rates", rates, _imp._name(f"rpc-{protocol}-{symbol}"), src, "rpc")]
        if params.height:
            out.append(_imp.Series("market_params", params, _imp._name(f"rpc-{protocol}-{symbol}-params"), src, "rpc"))
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
        answer = _signed(w[1])
        if answer <= 0:
            return {"price": None, "updated_at": w[3]}
        return {"price": answer / 10 ** decimals["d"], "updated_at": w[3]}

    def series(df: pl.DataFrame) -> list[_imp.Series]:
        src = f"chainlink:{feed.lower()}"
        kept = df.filter(pl.col("price").is_not_null())
        missing = df.height - kept.height
        px = kept.select("ts", "block", pl.lit(base).alias("base"), pl.lit(quote).alias("quote"), "price",
                         pl.lit(src).alias("source"))
        return [_imp.Series("prices", px, _imp._name(f"rpc-chainlink-{base}-{quote}"), src, "rpc", missing)]
    return Reader("chainlink", {"feed": feed.lower(), "base": base, "quote": quote}, read, series)


def curve_dy_reader(pool: str, i: int, j: int, base: str, quote: str, dx: float = 1.0) -> Reader:
    amount = int(round(dx * 1e18))
    data = encode_call("get_dy(int128,int128,uint256)", i, j, amount)

    def read(rpc: RpcClient, block: int) -> dict[str, Any]:
        (dy,) = rpc.eth_call(pool, data, block, f"curve get_dy({i},{j},{dx:g})")[:1]
        return {"price": dy / amount if dy else None}

    def series(df: pl.DataFrame) -> list[_imp.Series]:
        src = f"curve:{pool.lower()}:get_dy"
        kept = df.filter(pl.col("price").is_not_null())
        px = kept.select("ts", "block", pl.lit(base).alias("base"), pl.lit(quote).alias("quote"), "price",
                         pl.lit(src).alias("source"))
        return [_imp.Series("prices", px, _imp._name(f"rpc-curve-{base}-{quote}"), src, "rpc", df.height - kept.height)]
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
              ) -> _imp.ImportReport:
    """Read ``reader`` at every block (plus the block's time), resumably (one JSON line per finished block
    under the job folder), then write its series and the ``blocks`` table to the lake."""
    rpc = RpcClient(rpc_url, client)
    params = {"reader": reader.name, **reader.params, "first": min(blocks), "last": max(blocks), "n": len(blocks)}
    job = _job_dir(lake, "rpc", params)
    job.mkdir(parents=True, exist_ok=True)
    _manifest(job, "rpc", params, "running")
    done_path = job / "blocks.jsonl"
    done: dict[int, dict] = {}
    if done_path.exists():
        for line in done_path.read_text().splitlines():
            try:
                rec = json.loads(line)
                done[int(rec["block"])] = rec
            except (ValueError, KeyError, TypeError):
                continue          # a line cut by an interruption: read that block again
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
    items.append(_imp.Series("blocks", df.select("ts", "block").unique(subset=["ts"], keep="last").sort("ts"),
                             "rpc-blocks", "rpc:eth_getBlockByNumber", "rpc"))
    report = _imp.commit(lake, items)
    _manifest(job, "rpc", params, "complete", rows=len(rows))
    return report


__all__ = ["FetchError", "HttpClient", "RpcClient", "Secrets", "aave_reserve_reader", "blocks_reader",
           "chainlink_reader", "curve_dy_reader", "decode_words", "encode_call", "fetch_coingecko",
           "fetch_defillama_coins", "fetch_defillama_pool", "fetch_rpc", "keccak256", "parse_blocks", "redact",
           "selector", "wsteth_reader"]
