"""JSON-RPC batches over one reused HTTP connection pool (urllib3).

The HTTP layer is urllib3's ``PoolManager`` (keep-alive: one TCP connection reused for every batch) with its
``Retry``: connection errors, dropped connections (the node closes the socket mid-answer), HTTP 5xx and
HTTP 429 are retried with exponential backoff, waiting the ``Retry-After`` the node sends (refused past
``max_retry_after`` seconds: run again later, the job resumes). On top, the JSON-RPC layer: a batch is one
POST of a JSON array; replies are matched by ``id`` (nodes answer in any order); a call answered with a
rate-limit error (``-32005``, code 429, "rate limit" / "too many requests") is sent again after a backoff,
alone with the other such calls; any other error is a :class:`DataError` naming the call.

The URL is a secret (providers put the key in its path or query): it is never in a message, a log line
(urllib3's own retry warnings go through a scrubbing filter), a manifest or the lake.
"""
from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import urllib3
from urllib3.util.retry import Retry

from backtest.data.sources.download import FetchError, Secrets, log
from backtest.data.sources.rpc import _split_userinfo
from backtest.errors import DataError, InputError

RATE_LIMIT_CODES = (-32005, 429, -32029)
# a logger's filters see only its own records (not its children's): every urllib3 module that logs a URL
_URLLIB3_LOGGERS = ("urllib3", "urllib3.connectionpool", "urllib3.poolmanager", "urllib3.connection",
                    "urllib3.response", "urllib3.util.retry")


@dataclass
class RpcRequest:
    """One call of a batch: ``label`` (non-secret, for messages) names it."""

    method: str
    params: list[Any]
    label: str


class _ScrubFilter(logging.Filter):
    """urllib3 logs its retries with the request path (which may hold the key): scrub every such record."""

    def __init__(self, secrets: Secrets):
        super().__init__()
        self.secrets = secrets

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            msg = record.getMessage()
        except Exception:  # noqa: BLE001
            msg = str(record.msg)
        record.msg, record.args = self.secrets.scrub(msg), ()
        return True


class _CappedRetry(Retry):
    """urllib3's Retry, refusing a ``Retry-After`` longer than ``max_retry_after`` (the job resumes later)."""

    max_retry_after: float = 600.0

    def get_retry_after(self, response):  # noqa: ANN001
        wait = super().get_retry_after(response)
        if wait is not None and wait > self.max_retry_after:
            raise FetchError(f"the node asks to wait {wait:.0f} s (more than {self.max_retry_after:.0f} s): run the "
                             "same command again later, it resumes where it stopped")
        return wait


def _is_rate_limited(err: dict) -> bool:
    msg = str(err.get("message", "")).lower()
    if "more than" in msg or "results" in msg or "range" in msg:
        return False          # -32005 "query returned more than 10000 results": a window too wide, not a limit
    return err.get("code") in RATE_LIMIT_CODES or "rate limit" in msg or "too many requests" in msg


class BatchRpc:
    """Send :class:`RpcRequest` lists as JSON-RPC batch requests of at most ``batch_size`` calls."""

    def __init__(self, url: str, *, timeout: float = 30.0, retries: int = 5, backoff: float = 1.0,
                 max_retry_after: float = 600.0, batch_size: int = 100, sleep: Callable[[float], None] = time.sleep):
        if not url or "://" not in url:
            raise InputError("an RPC URL is needed (http(s)://...): set it in the environment variable named by "
                             "--rpc-url-env (default ETH_RPC_URL)")
        if batch_size < 1 or retries < 0 or timeout <= 0:
            raise InputError("--batch must be >= 1, --retries >= 0 and --timeout positive")
        self.secrets = Secrets([url])
        self.url, auth = _split_userinfo(url)
        self.headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if auth is not None:
            self.secrets.add(auth)
            self.headers["Authorization"] = auth
        self.retries, self.backoff, self.batch_size, self.sleep = retries, backoff, batch_size, sleep
        retry = type("Retry", (_CappedRetry,), {"max_retry_after": max_retry_after})(
            total=retries, connect=retries, read=retries, status=retries, other=retries,
            status_forcelist=(429, 500, 502, 503, 504), allowed_methods=None,   # eth_call is read-only
            backoff_factor=backoff, backoff_max=60.0, respect_retry_after_header=True, raise_on_status=False,
            raise_on_redirect=True, redirect=0)
        self.pool = urllib3.PoolManager(retries=retry, timeout=urllib3.Timeout(total=timeout), maxsize=1,
                                        block=True)
        self._filter = _ScrubFilter(self.secrets)
        for name in _URLLIB3_LOGGERS:
            logging.getLogger(name).addFilter(self._filter)
        self._next_id = 0
        self.posts = 0                 # HTTP requests sent (for the tests and the progress line)

    def close(self) -> None:
        self.pool.clear()
        for name in _URLLIB3_LOGGERS:
            logging.getLogger(name).removeFilter(self._filter)

    # -------------------------------------------------------------------------------------------- http
    def _post(self, payload: list[dict], what: str) -> Any:
        body = json.dumps(payload).encode()
        for attempt in range(self.retries + 1):
            self.posts += 1
            try:
                resp = self.pool.request("POST", self.url, body=body, headers=self.headers)
            except FetchError as exc:
                raise FetchError(self.secrets.scrub(f"{what}: {exc}")) from None
            except urllib3.exceptions.HTTPError as exc:
                # urllib3's messages carry the URL: only the kind of failure is shown
                reason = type(getattr(exc, "reason", None) or exc).__name__
                raise FetchError(f"{what}: the node could not be reached ({reason}); gave up after "
                                 f"{self.retries + 1} attempt(s)") from None
            if resp.status in (401, 403, 404):
                raise InputError(f"{what}: HTTP {resp.status} from the node (wrong URL or key?)")
            if resp.status >= 400:
                raise FetchError(f"{what}: HTTP {resp.status} from the node after {self.retries + 1} attempt(s)")
            try:
                return json.loads(resp.data)
            except ValueError:
                reason = f"truncated or malformed JSON ({len(resp.data)} bytes)"
            self._backoff(attempt, what, reason)
        raise AssertionError("unreachable")  # pragma: no cover

    def _backoff(self, attempt: int, what: str, reason: str) -> None:
        if attempt >= self.retries:
            raise FetchError(self.secrets.scrub(f"{what}: {reason}; gave up after {self.retries + 1} attempt(s)"))
        wait = min(60.0, self.backoff * (2 ** attempt))
        log.warning(self.secrets.scrub(f"{what}: {reason}; retry {attempt + 1}/{self.retries} in {wait:.1f} s"))
        self.sleep(wait)

    # -------------------------------------------------------------------------------------------- batches
    def run(self, requests: Sequence[RpcRequest]) -> list[Any]:
        """The results of ``requests`` in their order (batched, rate-limited calls re-sent)."""
        out: list[Any] = [None] * len(requests)
        for lo in range(0, len(requests), self.batch_size):
            idx = list(range(lo, min(len(requests), lo + self.batch_size)))
            for attempt in range(self.retries + 1):
                idx = self._one_batch(requests, idx, out)
                if not idx:
                    break
                self._backoff(attempt, f"rpc batch ({requests[idx[0]].label}, ...)",
                              f"{len(idx)} call(s) rate limited by the node")
        return out

    def _one_batch(self, requests: Sequence[RpcRequest], idx: list[int], out: list[Any]) -> list[int]:
        ids = {}
        payload = []
        for i in idx:
            self._next_id += 1
            ids[self._next_id] = i
            payload.append({"jsonrpc": "2.0", "id": self._next_id, "method": requests[i].method,
                            "params": requests[i].params})
        what = f"rpc batch of {len(idx)} ({requests[idx[0]].label}, ...)"
        reply = self._post(payload, what)
        if isinstance(reply, dict):       # one error for the whole batch (a node refusing it, a rate limit)
            err = reply.get("error") if isinstance(reply.get("error"), dict) else {"message": str(reply)[:200]}
            if _is_rate_limited(err):
                return idx
            raise DataError(self.secrets.scrub(f"{what}: the node answered error {err.get('code')}: "
                                               f"{str(err.get('message'))[:200]} (does it take batch requests? "
                                               "try --batch 1)"))
        if not isinstance(reply, list):
            raise DataError(f"{what}: malformed JSON-RPC reply ({type(reply).__name__})")
        seen: set[int] = set()
        again = []
        for item in reply:
            if not isinstance(item, dict) or item.get("id") not in ids:
                continue                   # an unknown id: ignored; the call it should answer is re-sent
            i = ids[item["id"]]
            seen.add(i)
            err = item.get("error")
            if err:
                err = err if isinstance(err, dict) else {"message": str(err)}
                if _is_rate_limited(err):
                    again.append(i)
                    continue
                raise DataError(self.secrets.scrub(f"{requests[i].label}: the node answered error "
                                                   f"{err.get('code')}: {str(err.get('message'))[:200]}"))
            if "result" not in item:
                raise DataError(f"{requests[i].label}: JSON-RPC reply without a result")
            out[i] = item["result"]
        again.extend(i for i in idx if i not in seen)
        return sorted(again)
