"""A JSON-RPC node on 127.0.0.1 (http.server in a thread) answering from recorded replies.

A recording is ``{"blocks": {N: timestamp}, "calls": [{"to", "data", "results": {N: "0x..."}}],
"logs": [{"address", "topics", "blockNumber"}]}``: eth_call answers with the result recorded for (to, data,
block) or ``execution reverted``; eth_getBlockByNumber with the block's time; eth_getLogs with the recorded
logs inside the range (an error "query returned more than 10000 results" above ``max_log_span`` blocks).
Batches (JSON arrays) are answered in reverse order, to check that the client matches replies by id.
``script`` is a list of faults consumed one per HTTP request: ``"429"`` (with Retry-After: 0), ``"429-long"`` (Retry-After: 3600), ``"500"``, ``"drop"``
(the socket closed before any answer), ``"-32005"`` (every call of the batch rate limited), ``"half"``
(the first call of the batch rate limited). Nothing here contacts any other address.
"""
from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


def word(v: int) -> str:
    return (v % (1 << 256)).to_bytes(32, "big").hex()


def words(*vs: int) -> str:
    return "0x" + "".join(word(v) for v in vs)


class RecordedNode:
    def __init__(self, recording: dict[str, Any] | None = None, max_log_span: int = 10 ** 9):
        rec = recording or {}
        self.blocks = {int(k): int(v) for k, v in rec.get("blocks", {}).items()}
        self.calls: dict[tuple[str, str], dict[int, str]] = {}
        for c in rec.get("calls", []):
            self.add_call(c["to"], c["data"], {int(k): v for k, v in c["results"].items()})
        self.logs = list(rec.get("logs", []))
        self.max_log_span = max_log_span
        self.script: list[str] = []
        self.requests: list[Any] = []          # every JSON body received
        self.paths: list[str] = []
        self.peers: list[int] = []
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def do_POST(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(n) or b"null")
                with outer.lock:
                    outer.requests.append(body)
                    outer.paths.append(self.path)
                    outer.peers.append(self.client_address[1])      # the client's port: one per connection
                    fault = outer.script.pop(0) if outer.script else None
                if fault == "drop":
                    self.close_connection = True
                    self.connection.close()
                    return
                if fault == "500":
                    self.send_response(500)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                if fault in ("429", "429-long"):
                    self.send_response(429)
                    self.send_header("Retry-After", "0" if fault == "429" else "3600")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                reply = outer.answer(body, fault)
                data = json.dumps(reply).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
        self.thread.start()

    @classmethod
    def from_file(cls, path, **kw) -> "RecordedNode":
        """A recording saved as JSON (``.json``) or gzip-packed JSON (``.json.gz``)."""
        import gzip
        from pathlib import Path

        raw = Path(path).read_bytes()
        return cls(json.loads(gzip.decompress(raw) if str(path).endswith(".gz") else raw), **kw)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def add_call(self, to: str, data: str, results: dict[int, str]) -> None:
        self.calls.setdefault((to.lower(), data.lower()), {}).update(results)

    # -------------------------------------------------------------------------------------- answers
    def one(self, req: dict) -> dict:
        rid, method, params = req.get("id"), req.get("method"), req.get("params") or []
        ok = lambda result: {"jsonrpc": "2.0", "id": rid, "result": result}  # noqa: E731
        err = lambda code, msg: {"jsonrpc": "2.0", "id": rid, "error": {"code": code, "message": msg}}  # noqa: E731
        if method == "eth_getBlockByNumber":
            b = int(params[0], 16)
            if b not in self.blocks:
                return ok(None)
            return ok({"number": hex(b), "timestamp": hex(self.blocks[b]), "hash": "0x" + word(b)})
        if method == "eth_call":
            call, b = params[0], int(params[1], 16)
            if b not in self.blocks:
                return err(-32000, "header not found")          # what geth answers beyond its head
            res = self.calls.get((call["to"].lower(), call["data"].lower()), {}).get(b)
            return ok(res) if res is not None else err(3, "execution reverted")
        if method == "eth_getLogs":
            f = params[0]
            a, z = int(f["fromBlock"], 16), int(f["toBlock"], 16)
            if z - a + 1 > self.max_log_span:
                return err(-32005, "query returned more than 10000 results")
            topics = [t.lower() for t in f.get("topics", [])]
            out = [lg for lg in self.logs if a <= int(lg["blockNumber"], 16) <= z
                   and lg["address"].lower() == f["address"].lower()
                   and [t.lower() for t in lg["topics"][:len(topics)]] == topics]
            return ok(out)
        return err(-32601, f"method {method} not found")

    def answer(self, body: Any, fault: str | None) -> Any:
        if isinstance(body, list):
            if fault == "-32005":
                return [{"jsonrpc": "2.0", "id": r["id"], "error": {"code": -32005, "message": "limit exceeded"}}
                        for r in body]
            out = [self.one(r) for r in body]
            if fault == "half" and out:
                out[0] = {"jsonrpc": "2.0", "id": body[0]["id"],
                          "error": {"code": 429, "message": "Too Many Requests"}}
            return list(reversed(out))          # out of order: matched by id
        return self.one(body)
