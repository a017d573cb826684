"""The fetchers against a local HTTP server on 127.0.0.1 (started here, in a thread) that answers in the
documented formats of CoinGecko, DefiLlama and Ethereum JSON-RPC, with timeouts, 429s, 5xx, truncated
bodies and Range requests. Nothing here contacts any other address.
"""
from __future__ import annotations

import json
import logging
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable

import pytest
from click.testing import CliRunner

from backtest.cli import cli
from backtest.data import lake
from backtest.data.sources import abi, coingecko, defillama, download, rpc
from backtest.errors import DataError, InputError

DAY = 86400
T0 = 1_651_363_200                 # 2022-05-01


# ============================================================================================ the server
class Loopback:
    """Scripted answers per path: a list of actions, consumed in order (the last one repeats)."""

    def __init__(self):
        self.routes: dict[str, list] = {}
        self.dynamic: dict[str, Callable] = {}
        self.log: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):          # quiet
                pass

            def _serve(self, method: str):
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n) if n else b""
                path, _, query = self.path.partition("?")
                rec = {"method": method, "path": path, "query": urllib.parse.parse_qs(query),
                       "headers": dict(self.headers.items()), "body": body}
                with outer.lock:
                    outer.log.append(rec)
                    if path in outer.dynamic:
                        action = outer.dynamic[path]
                    else:
                        queue = outer.routes.get(path)
                        if not queue:
                            action = ("status", 404, {}, b'{"error": "not found"}')
                        else:
                            action = queue.pop(0) if len(queue) > 1 else queue[0]
                try:
                    outer.act(self, action, rec)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def do_GET(self):
                self._serve("GET")

            def do_POST(self):
                self._serve("POST")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
        self.thread.start()

    @staticmethod
    def send(h, status: int, body: bytes, headers: dict | None = None, length: int | None = None, close=False):
        h.send_response(status)
        for k, v in (headers or {}).items():
            h.send_header(k, v)
        h.send_header("Content-Type", "application/json")
        if length is not False:
            h.send_header("Content-Length", str(len(body) if length is None else length))
        if close or length is False:
            h.send_header("Connection", "close")
            h.close_connection = True
        h.end_headers()
        h.wfile.write(body)
        h.wfile.flush()

    def act(self, h, action, rec):
        if callable(action):
            action = action(rec)
        kind = action[0]
        if kind == "json":
            self.send(h, 200, json.dumps(action[1]).encode())
        elif kind == "status":
            _, code, headers, body = action
            self.send(h, code, body, headers, close=True)
        elif kind == "slow":
            time.sleep(action[1])
            self.send(h, 200, json.dumps(action[2]).encode())
        elif kind == "truncate":        # announce the full length, send part, hang up
            body = json.dumps(action[1]).encode()
            self.send(h, 200, body[: action[2]], length=len(body), close=True)
        elif kind == "cut-json":        # no length, the connection just ends mid-document
            body = json.dumps(action[1]).encode()
            self.send(h, 200, body[: action[2]], length=False)
        elif kind == "blob":            # a file with Range support; optional truncation of this answer
            data, cut = action[1], action[2] if len(action) > 2 else None
            rng = rec["headers"].get("Range")
            if rng:
                start = int(rng.split("=")[1].split("-")[0])
                part = data[start:]
                hdr = {"Content-Range": f"bytes {start}-{len(data) - 1}/{len(data)}", "Accept-Ranges": "bytes"}
                self.send(h, 206, part[:cut] if cut else part, hdr, length=len(part), close=bool(cut))
            else:
                self.send(h, 200, data[:cut] if cut else data, {"Accept-Ranges": "bytes"}, length=len(data),
                          close=bool(cut))
        else:  # pragma: no cover
            raise AssertionError(action)

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture()
def srv():
    s = Loopback()
    yield s
    s.close()


@pytest.fixture()
def sleeps():
    return []


def client(sleeps, **kw) -> download.HttpClient:
    kw.setdefault("timeout", 2.0)
    kw.setdefault("retries", 3)
    return download.HttpClient(sleep=sleeps.append, backoff=0.5, **kw)


def chart(start: int, n: int, step: int = 3600, price: float = 1000.0) -> dict:
    pts = [[(start + k * step) * 1000, price + k] for k in range(n)]
    return {"prices": pts, "market_caps": [[p[0], 1e9] for p in pts], "total_volumes": [[p[0], 1e6] for p in pts]}


CG_PATH = "/coins/staked-ether/market_chart/range"


# ============================================================================================ http behaviour
def test_timeout_is_retried_with_backoff(srv, sleeps, tmp_path):
    srv.routes[CG_PATH] = [("slow", 1.0, chart(T0, 3)), ("json", chart(T0, 3))]
    rep = coingecko.fetch_coingecko("staked-ether", tmp_path, T0, T0 + DAY, base_url=srv.url,
                            client=client(sleeps, timeout=0.2))
    p = lake.read_series(tmp_path, "prices", base="stETH", quote="USD")
    assert p.select("ts", "price").rows() == [(T0, 1000.0), (T0 + 3600, 1001.0), (T0 + 7200, 1002.0)]
    assert p["source"][0] == "coingecko:market_chart" and len(rep) == 1
    assert len(srv.log) == 2 and sleeps == [0.5]
    q = srv.log[0]["query"]
    assert q["vs_currency"] == ["usd"] and q["from"] == [str(T0)] and q["to"] == [str(T0 + DAY)]


def test_429_waits_retry_after_then_gives_up_beyond_the_cap(srv, sleeps, tmp_path, caplog):
    srv.routes[CG_PATH] = [("status", 429, {"Retry-After": "7"}, b'{"status": {"error_code": 429}}'),
                           ("status", 503, {}, b""), ("json", chart(T0, 2))]
    with caplog.at_level(logging.WARNING, logger="backtest.data.fetch"):
        coingecko.fetch_coingecko("staked-ether", tmp_path, T0, T0 + DAY, base_url=srv.url, client=client(sleeps))
    assert sleeps == [7.0, 1.0]                  # Retry-After honoured; then exponential backoff (0.5 x 2)
    assert "HTTP 429" in caplog.text and "rate limited" in caplog.text and "retry 1/3 in 7.0 s" in caplog.text
    srv.routes[CG_PATH] = [("status", 429, {"Retry-After": "3600"}, b"")]
    with pytest.raises(download.FetchError, match=r"asks to wait 3600 s .* run the same command again later"):
        coingecko.fetch_coingecko("staked-ether", tmp_path / "b", T0, T0 + DAY, base_url=srv.url,
                          client=client(sleeps, max_retry_after=60))
    assert download._retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0 and download._retry_after("12") == 12.0


def test_truncated_responses_are_retried(srv, sleeps, tmp_path):
    srv.routes[CG_PATH] = [("truncate", chart(T0, 5), 40), ("cut-json", chart(T0, 5), 60), ("json", chart(T0, 5))]
    coingecko.fetch_coingecko("staked-ether", tmp_path, T0, T0 + DAY, base_url=srv.url, client=client(sleeps))
    assert lake.read_series(tmp_path, "prices", base="stETH").height == 5
    assert len(srv.log) == 3 and len(sleeps) == 2


def test_client_errors_fail_at_once_and_retries_are_bounded(srv, sleeps, tmp_path):
    with pytest.raises(InputError, match=r"coingecko nope .*HTTP 404"):
        coingecko.fetch_coingecko("nope", tmp_path, T0, T0 + DAY, symbol="X", base_url=srv.url, client=client(sleeps))
    assert len(srv.log) == 1 and sleeps == []
    srv.routes[CG_PATH] = [("status", 500, {}, b"boom")]
    with pytest.raises(download.FetchError, match=r"HTTP 500 .* gave up after 4 attempt\(s\)"):
        coingecko.fetch_coingecko("staked-ether", tmp_path, T0, T0 + DAY, base_url=srv.url, client=client(sleeps))
    assert sleeps == [0.5, 1.0, 2.0] and not list(tmp_path.rglob("*.parquet"))


def test_a_stopped_job_resumes_where_it_stopped(srv, sleeps, tmp_path):
    """Three 1-day windows; the second fails past its retries; the rerun asks only for what is missing."""
    w = [(T0 + k * DAY, T0 + (k + 1) * DAY) for k in range(3)]
    calls: list[int] = []
    broken = {"on": True}

    def answer(rec):
        a = int(rec["query"]["from"][0])
        calls.append(a)
        if a == w[1][0] and broken["on"]:
            return ("status", 502, {}, b"")
        return ("json", chart(a, 24))
    srv.dynamic[CG_PATH] = answer
    with pytest.raises(download.FetchError):
        coingecko.fetch_coingecko("staked-ether", tmp_path, T0, T0 + 3 * DAY, base_url=srv.url, window_days=1,
                          client=client(sleeps, retries=1))
    assert calls == [w[0][0], w[1][0], w[1][0]]
    assert not list(tmp_path.rglob("*.parquet"))                 # nothing in the lake until every window is in
    job = next((tmp_path / ".fetch" / "coingecko").iterdir())
    assert json.loads((job / "job.json").read_text())["status"] == "running"
    broken["on"] = False
    calls.clear()
    coingecko.fetch_coingecko("staked-ether", tmp_path, T0, T0 + 3 * DAY, base_url=srv.url, window_days=1,
                      client=client(sleeps))
    assert calls == [w[1][0], w[2][0]]                            # window 1 came from the job folder
    p = lake.read_series(tmp_path, "prices", base="stETH")
    assert p.height == 72 and p["ts"][0] == T0 and p["ts"][-1] == T0 + 3 * DAY - 3600
    assert json.loads((job / "job.json").read_text())["status"] == "complete"


def test_download_continues_with_a_range_request(srv, sleeps, tmp_path):
    lb = {"status": "success", "data": [
        {"timestamp": f"2024-05-{12 + k:02d}T23:01:38.000Z", "totalSupplyUsd": 1000.0 + k, "totalBorrowUsd": 800.0,
         "debtCeilingUsd": None, "apyBase": 1.5, "apyReward": None, "apyBaseBorrow": 2.5, "apyRewardBorrow": None}
        for k in range(10)]}
    data = json.dumps(lb).encode()
    key = "LLAMA-KEY-7d3f9a1e5c"
    path = f"/{key}/yields/chartLendBorrow/747c1d2a-c668-4682-b9f9-296708a3dd90"
    srv.routes[path] = [("blob", data, 300), ("blob", data)]
    defillama.fetch_defillama_pool("747c1d2a-c668-4682-b9f9-296708a3dd90", tmp_path, chart="lend-borrow",
                           protocol="aave-v3", asset="WETH", api_key=key, base_url=srv.url, client=client(sleeps))
    assert "Range" not in srv.log[0]["headers"] and srv.log[1]["headers"]["Range"] == "bytes=300-"
    r = lake.read_series(tmp_path, "rates", protocol="aave-v3", asset="WETH")
    assert r.height == 10 and r["borrow_apr"][0] == pytest.approx(0.024692612590371255)    # ln(1.025)
    assert r["utilization"][0] == pytest.approx(0.8)
    everything = b"".join(p.read_bytes() for p in tmp_path.rglob("*") if p.is_file())
    assert key.encode() not in everything


def test_a_partial_file_the_server_cannot_continue_is_downloaded_again(srv, sleeps, tmp_path):
    data = json.dumps({"status": "success", "data": [{"timestamp": "2022-01-01T00:00:00.000Z", "apy": 4.0,
                                                      "apyBase": 4.0, "tvlUsd": 1.0}]}).encode()
    dest = tmp_path / "y.json"
    dest.with_name("y.json.part").write_bytes(b"x" * (len(data) + 50))     # longer than the file: stale
    srv.routes["/chart/p"] = [("status", 416, {"Content-Range": f"bytes */{len(data)}"}, b""), ("blob", data)]
    client(sleeps).download(srv.url + "/chart/p", dest, "probe")
    assert dest.read_bytes() == data and not dest.with_name("y.json.part").exists()
    assert srv.log[0]["headers"]["Range"] == f"bytes={len(data) + 50}-" and "Range" not in srv.log[1]["headers"]


# ============================================================================================ secrets
def test_api_key_and_rpc_url_never_leak(srv, tmp_path, monkeypatch, caplog):
    key = "CG-secret-0123456789abcdef"
    rpc = f"{srv.url}/v2/alchemy-secret-{'9' * 20}"
    srv.routes[CG_PATH] = [("status", 401, {}, f'{{"error": "invalid api key {key}"}}'.encode())]
    srv.routes[urllib.parse.urlsplit(rpc).path] = [("status", 503, {}, b"")]
    monkeypatch.setenv("COINGECKO_API_KEY", key)
    monkeypatch.setenv("ETH_RPC_URL", rpc)
    import backtest.cli_data as cd
    monkeypatch.setattr(cd, "_client", lambda timeout, retries: download.HttpClient(timeout=timeout, retries=retries,
                                                                                    sleep=lambda s: None))
    lk = tmp_path / "lake"
    with caplog.at_level(logging.DEBUG):
        r1 = CliRunner().invoke(cli, ["data", "fetch", "coingecko", "staked-ether", "--start", "2022-05-01",
                                      "--end", "2022-05-02", "--base-url", srv.url, "--into", str(lk),
                                      "--retries", "1"])
        r2 = CliRunner().invoke(cli, ["data", "fetch", "rpc", "wsteth", "--blocks", "15000000:15000002",
                                      "--into", str(lk), "--retries", "1"])
    assert r1.exit_code == 2 and "HTTP 401" in r1.output
    assert r2.exit_code == 1 and "HTTP 503" in r2.output
    sent = {k.lower(): v for k, v in srv.log[0]["headers"].items()}
    assert sent["x-cg-demo-api-key"] == key                              # it was sent...
    files = b"".join(p.read_bytes() for p in lk.rglob("*") if p.is_file())
    for secret in (key, rpc, "alchemy-secret", urllib.parse.urlsplit(rpc).path):
        assert secret not in r1.output and secret not in r2.output      # ...but never shown or stored
        assert secret not in caplog.text and secret.encode() not in files
    assert "invalid api key ***" in r1.output                            # the echoed key was scrubbed
    manifests = [json.loads(p.read_text()) for p in lk.rglob("job.json")]
    assert {m["source"] for m in manifests} == {"coingecko", "rpc"}
    r3 = CliRunner().invoke(cli, ["data", "fetch", "rpc", "wsteth", "--blocks", "1:2", "--into", str(lk),
                                  "--rpc-url-env", "NO_SUCH_VAR_X"])
    assert r3.exit_code == 2 and "set the environment variable NO_SUCH_VAR_X" in r3.output


def test_cli_fetch_needs_into_like_import(srv, tmp_path, monkeypatch):
    """Every `data fetch` command writes only into a lake the user names (no default into data/), and says so
    before it asks anything of the network."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ETH_RPC_URL", srv.url + "/rpc")
    window = ["--start", "2022-05-01", "--end", "2022-05-02", "--base-url", srv.url]
    cases = {"coingecko": ["coingecko", "staked-ether", *window],
             "defillama coins": ["defillama", "coins", "coingecko:staked-ether", *window],
             "defillama lend-borrow": ["defillama", "lend-borrow", "pool-1", "--protocol", "aave-v3", "--asset",
                                       "WETH", "--base-url", srv.url],
             "defillama yields": ["defillama", "yields", "pool-1", "--token", "stETH", "--base-url", srv.url],
             "rpc wsteth": ["rpc", "wsteth", "--blocks", "1:2"]}
    for name, args in cases.items():
        r = CliRunner().invoke(cli, ["data", "fetch", *args])
        assert r.exit_code == 2, r.output
        assert (f"data fetch {name}: --into DIR is required (the lake to write into, e.g. --into lake; "
                "nothing was written)") in r.output
    assert srv.log == [] and list(tmp_path.iterdir()) == []


def test_redirects_to_another_host_are_refused(srv, sleeps):
    srv.routes["/moved"] = [("status", 302, {"Location": "http://198.51.100.7/steal"}, b"")]
    srv.routes["/here"] = [("status", 302, {"Location": srv.url + "/there"}, b"")]
    srv.routes["/there"] = [("json", {"ok": 1})]
    c = client(sleeps, headers={"x-cg-demo-api-key": "K-0123456789"})
    with pytest.raises(download.FetchError, match="HTTP 302 redirect to another host refused"):
        c.get_json(srv.url + "/moved", "probe")
    assert c.get_json(srv.url + "/here", "probe") == {"ok": 1}
    assert [r["path"] for r in srv.log] == ["/moved", "/here", "/there"]


def test_redact_and_scrub():
    assert (download.redact("https://eth-mainnet.g.alchemy.com/v2/abcdef123456")
            == "https://eth-mainnet.g.alchemy.com/…")
    s = download.Secrets(["https://node.example/key/abcdefghijklmnop?token=zzz123456"])
    assert s.scrub("failed: https://node.example/key/abcdefghijklmnop?token=zzz123456") == "failed: ***"
    assert "abcdefghijklmnop" not in s.scrub("path /key/abcdefghijklmnop")


# ============================================================================================ defillama coins
def test_defillama_coins_in_windows_of_span_points(srv, sleeps, tmp_path):
    coin = "coingecko:staked-ether"

    def answer(rec):
        start = int(rec["query"]["start"][0])
        span = int(rec["query"]["span"][0])
        pts = [{"timestamp": start + k * 3600 + 5, "price": 1000.0 + k, "confidence": 0.99} for k in range(span)]
        return ("json", {"coins": {coin: {"symbol": "STETH", "confidence": 0.99, "prices": pts}}})
    srv.dynamic[f"/chart/{coin}"] = answer
    defillama.fetch_defillama_coins(coin, tmp_path, T0, T0 + 10 * 3600, period="1h", span=4, base_url=srv.url,
                            client=client(sleeps))
    assert [int(r["query"]["start"][0]) for r in srv.log] == [T0, T0 + 4 * 3600, T0 + 8 * 3600]
    assert [r["query"]["span"][0] for r in srv.log] == ["4", "4", "2"]
    p = lake.read_series(tmp_path, "prices", base="stETH", quote="USD")
    assert p.height == 10 and p["source"][0] == "defillama:coins" and p["ts"][0] == T0 + 5


# ============================================================================================ JSON-RPC
def word(v: int) -> str:
    return (v % (1 << 256)).to_bytes(32, "big").hex()


class Node:
    """A toy Ethereum node: block n has time 1.6e9 + 12 n; contracts answer from the block number."""

    def __init__(self):
        self.fail_block: int | None = None
        self.calls: list[tuple[str, int]] = []

    def __call__(self, rec):
        req = json.loads(rec["body"])
        method, params = req["method"], req["params"]
        if method == "eth_getBlockByNumber":
            n = int(params[0], 16)
            if n == self.fail_block:
                return ("status", 502, {}, b"")
            self.calls.append(("block", n))
            return ("json", {"jsonrpc": "2.0", "id": req["id"],
                             "result": {"number": hex(n), "timestamp": hex(1_600_000_000 + 12 * n)}})
        assert method == "eth_call"
        call, n = params[0], int(params[1], 16)
        data = call["data"]
        sel = data[:10]
        self.calls.append((sel, n))
        if sel == abi.selector("stEthPerToken()"):
            out = word(10**18 + n * 10**9)
        elif sel == abi.selector("getReserveData(address)"):
            cfg = 9300 | (9500 << 16) | (10100 << 32) | (18 << 48)
            ray = 10**27
            out = "".join(word(v) for v in (cfg, ray + n * 10**18, 2 * ray // 100, ray + n * 10**19, 3 * ray // 100,
                                             0, 1_700_000_000, 5)) + word(0) * 7
        elif sel == abi.selector("decimals()"):
            out = word(8)
        elif sel == abi.selector("latestRoundData()"):
            out = word(7) + word(300_000_000_000 + n) + word(0) + word(1_600_000_000 + 12 * n) + word(7)
        elif sel == abi.selector("get_dy(int128,int128,uint256)"):
            assert data[10:] == word(1) + word(0) + word(10**18)
            out = word(995 * 10**15)
        elif sel == "0xdeadbeef":
            return ("json", {"jsonrpc": "2.0", "id": req["id"], "error": {"code": 3, "message": "execution reverted"}})
        else:  # pragma: no cover
            raise AssertionError(sel)
        return ("json", {"jsonrpc": "2.0", "id": req["id"], "result": "0x" + out})


def test_keccak_selectors_and_abi_encoding():
    assert abi.keccak256(b"").hex() == "c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470"
    assert abi.selector("transfer(address,uint256)") == "0xa9059cbb"
    assert abi.selector("stEthPerToken()") == "0x035faf82"
    assert abi.selector("latestRoundData()") == "0xfeaf968c"
    assert abi.selector("getReserveData(address)") == "0x35ea6a75"
    assert abi.selector("get_dy(int128,int128,uint256)") == "0x5e0d443f"
    data = abi.encode_call("getReserveData(address)", rpc.WSTETH)
    assert data == "0x35ea6a75" + rpc.WSTETH.lower()[2:].rjust(64, "0")
    assert abi.encode_call("get_dy(int128,int128,uint256)", -1, 0, 5)[10:74] == "f" * 64
    with pytest.raises(InputError, match="not an address"):
        abi.encode_call("getReserveData(address)", "0x1234")
    with pytest.raises(DataError, match="empty or malformed call result"):
        abi.decode_words("0x", "probe")
    assert rpc.parse_blocks(["10:20:5", "7", "3,4"]) == [3, 4, 7, 10, 15, 20]
    with pytest.raises(InputError):
        rpc.parse_blocks(["20:10"])


def test_rpc_readers_decode_and_write_series_and_block_times(srv, sleeps, tmp_path):
    node = Node()
    srv.dynamic["/rpc"] = node
    url = srv.url + "/rpc"
    blocks = [15_000_000, 15_000_300, 15_000_600]
    rpc.fetch_rpc(rpc.wsteth_reader(), blocks, tmp_path, url, client=client(sleeps))
    x = lake.read_series(tmp_path, "exchange_rates", token="wstETH")
    assert x.select("ts", "block", "rate").rows() == [
        (1_600_000_000 + 12 * b, b, pytest.approx(1 + b * 1e-9)) for b in blocks]
    assert x["underlying"][0] == "stETH"
    assert lake.read_table(tmp_path, "blocks").rows() == [(1_600_000_000 + 12 * b, b) for b in blocks]

    rpc.fetch_rpc(rpc.aave_reserve_reader(rpc.WSTETH, "wstETH"), blocks[:1], tmp_path, url, client=client(sleeps))
    r = lake.read_series(tmp_path, "rates", protocol="aave-v3", asset="wstETH").row(0, named=True)
    assert (r["supply_apr"], r["borrow_apr"]) == (pytest.approx(0.02), pytest.approx(0.03))
    assert r["supply_index"] == pytest.approx(1 + 15e-3) and r["borrow_index"] == pytest.approx(1 + 15e-2)
    mp = lake.read_series(tmp_path, "market_params", protocol="aave-v3", asset="wstETH").row(0, named=True)
    assert (mp["ltv"], mp["liquidation_threshold"], mp["liquidation_bonus"]) == (0.93, 0.95, pytest.approx(0.01))

    rpc.fetch_rpc(rpc.chainlink_reader("0x" + "5f" * 20, "ETH", "USD"), blocks[:2], tmp_path, url,
                  client=client(sleeps))
    p = lake.read_series(tmp_path, "prices", base="ETH", quote="USD")
    assert p["price"].to_list() == pytest.approx([3000.15, 3000.150003])
    assert sum(1 for c in node.calls if c[0] == abi.selector("decimals()")) == 1

    rpc.fetch_rpc(rpc.curve_dy_reader(rpc.CURVE_STETH, 1, 0, "stETH", "ETH"), blocks[:1], tmp_path, url,
                  client=client(sleeps))
    assert lake.read_series(tmp_path, "prices", base="stETH", quote="ETH")["price"].to_list() == [0.995]

    bad = rpc.Reader("probe", {}, lambda rpc, b: {"v": rpc.eth_call("0x" + "11" * 20, "0xdeadbeef", b, "probe")[0]},
                     lambda df: [])
    with pytest.raises(DataError, match=r"rpc eth_call probe at block 15000000: the node answered error 3: "
                                        r"execution reverted"):
        rpc.fetch_rpc(bad, blocks[:1], tmp_path, url, client=client(sleeps))


def test_rpc_job_resumes_block_by_block(srv, sleeps, tmp_path):
    node = Node()
    node.fail_block = 15_000_200
    srv.dynamic["/rpc"] = node
    blocks = [15_000_000, 15_000_100, 15_000_200, 15_000_300]
    with pytest.raises(download.FetchError, match=r"rpc eth_getBlockByNumber 15000200: HTTP 502"):
        rpc.fetch_rpc(rpc.wsteth_reader(), blocks, tmp_path, srv.url + "/rpc", client=client(sleeps, retries=1))
    assert not list(tmp_path.rglob("*.parquet"))
    node.fail_block = None
    node.calls.clear()
    rpc.fetch_rpc(rpc.wsteth_reader(), blocks, tmp_path, srv.url + "/rpc", client=client(sleeps))
    assert [c for c in node.calls if c[0] == "block"] == [("block", 15_000_200), ("block", 15_000_300)]
    assert lake.read_series(tmp_path, "exchange_rates", token="wstETH").height == 4


def test_rpc_rate_limit_error_is_retried(srv, sleeps, tmp_path):
    node = Node()
    seen = {"n": 0}

    def limited(rec):
        seen["n"] += 1
        if seen["n"] == 1:
            req = json.loads(rec["body"])
            return ("json", {"jsonrpc": "2.0", "id": req["id"],
                             "error": {"code": -32005,
                                       "message": "daily request count exceeded, request rate limited"}})
        return node(rec)
    srv.dynamic["/rpc"] = limited
    rpc.fetch_rpc(rpc.blocks_reader(), [100], tmp_path, srv.url + "/rpc", client=client(sleeps))
    assert sleeps == [0.5] and lake.read_table(tmp_path, "blocks").rows() == [(1_600_001_200, 100)]
