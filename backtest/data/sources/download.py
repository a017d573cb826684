"""The HTTP plumbing every fetcher shares (standard library ``urllib`` only).

Robustness (:class:`HttpClient`): a timeout per request; retries with exponential backoff on timeouts,
connection errors, truncated bodies (fewer bytes than Content-Length, or JSON that does not parse), HTTP 5xx,
408 and 429 (waiting ``Retry-After`` seconds when the server says so, up to a cap); other 4xx fail at once
with the status. Every request's label is built from non-secret parts, and every message is scrubbed of the
API key and the RPC URL (:class:`Secrets`), which never reach a log line, an error message, the fetch
manifest or the lake.

Resumability: each job (its non-secret parameters hashed) keeps what it has under
``<lake>/.fetch/<source>/<job>/`` (:func:`job_dir`): one file per finished window (:func:`fetch_windows`), one
JSON line per finished block (RPC), and single downloads as ``<file>.part`` continued with an HTTP ``Range``
request (:meth:`HttpClient.download`). A job that stopped (network down, Ctrl-C, a 429 beyond the cap)
continues where it stopped when run again; nothing is written to the lake until every window is in, and then
all at once through :func:`backtest.data.sources.commit.commit` (validated first, atomic per file, idempotent).
"""
from __future__ import annotations

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
from typing import Any, Callable, Iterable

from backtest import __version__
from backtest.data.sources.toolkit import utc_text
from backtest.errors import BacktestError, InputError

# the log of `backtest data fetch` keeps its name, which users filter on
log = logging.getLogger("backtest.data.fetch")


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
def job_dir(lake: str | os.PathLike, source: str, params: dict[str, Any]) -> Path:
    key = hashlib.sha256(json.dumps(params, sort_keys=True, default=str).encode()).hexdigest()[:16]
    return Path(lake) / ".fetch" / source / key


def _write_json_atomic(path: Path, obj: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(obj, sort_keys=True, default=str))
    os.replace(tmp, path)


def write_manifest(job: Path, source: str, params: dict[str, Any], status: str, **extra: Any) -> None:
    """The job's manifest: non-secret parameters only (the API key and RPC URL are never passed here)."""
    _write_json_atomic(job / "job.json", {"source": source, "params": params, "status": status,
                                          "package_version": __version__, **extra})


def time_windows(start: int, end: int, step: int) -> list[tuple[int, int]]:
    if end <= start:
        raise InputError(f"--end {utc_text(end)} is not after --start {utc_text(start)}")
    out, a = [], start
    while a < end:
        b = min(end, a + step)
        out.append((a, b))
        a = b
    return out


def fetch_windows(client: HttpClient, job: Path, windows: list[tuple[int, int]], url_of: Callable[[int, int], str],
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


class MalformedResponse(ValueError):
    pass


def finished_blocks(path, key: str) -> dict[int, dict]:
    """The blocks a resumable job already read: its JSON lines keyed by ``rec[key]`` (a line cut by an
    interruption is skipped, so that block is read again)."""
    done: dict[int, dict] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            try:
                rec = json.loads(line)
                done[int(rec[key])] = rec
            except (ValueError, KeyError, TypeError):
                continue
    return done
