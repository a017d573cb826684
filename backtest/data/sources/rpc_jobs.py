"""Run a :class:`~backtest.data.sources.rpc_presets.Preset` over blocks, resumably, in JSON-RPC batches.

Blocks are a chosen list, a range with a step (:func:`backtest.data.sources.rpc.parse_blocks`), or every block
where an event of a kind was emitted inside a range (:func:`event_blocks`, ``eth_getLogs`` in windows that
halve when the node says a window holds too many logs). A chunk of blocks is one batch per round: every
block's ``eth_getBlockByNumber`` (its real time, for the ``blocks`` table) with round 0's calls, then the
calls that depend on them. Each finished block is one JSON line under ``<lake>/.fetch/rpc/<job>/``; a job
run again reads only the blocks it is missing. Nothing is written to the lake until every block is in.
"""
from __future__ import annotations

import json
import os
from typing import Callable, Sequence

import polars as pl

from backtest.data.sources.abi import decode_words, topic
from backtest.data.sources.commit import ImportReport, commit
from backtest.data.sources.download import finished_blocks, job_dir, write_manifest
from backtest.data.sources.rpc_batch import BatchRpc, RpcRequest
from backtest.data.sources.rpc_presets import EVENTS, Preset
from backtest.data.sources.toolkit import Series
from backtest.errors import DataError, InputError

TOO_MANY_LOGS = ("more than", "too many", "limit exceeded", "range too large", "block range", "10000 results")


def _chunk_rows(rpc: BatchRpc, preset: Preset, blocks: Sequence[int]) -> list[dict]:
    # the block headers travel in the first round's batch
    heads = [RpcRequest("eth_getBlockByNumber", [hex(b), False], f"rpc eth_getBlockByNumber {b}") for b in blocks]
    head: list = []
    got: list[dict[str, list[int]]] = [{} for _ in blocks]
    for rnd in range(preset.rounds):
        reqs, where = (list(heads), [None] * len(heads)) if rnd == 0 else ([], [])
        for k, b in enumerate(blocks):
            for c in preset.calls(rnd, b, got[k]):
                reqs.append(RpcRequest("eth_call", [{"to": c.to, "data": c.data}, hex(b)],
                                       f"rpc eth_call {preset.label} ({c.key}) at block {b}"))
                where.append((k, c.key))
        for spot, res, req in zip(where, rpc.run(reqs), reqs):
            if spot is None:
                head.append(res)
            else:
                got[spot[0]][spot[1]] = decode_words(res, req.label)
    if not head:                       # a preset without calls (blocks only)
        head = rpc.run(heads)
    rows = []
    for k, b in enumerate(blocks):
        h = head[k]
        if not isinstance(h, dict) or "timestamp" not in h:
            raise DataError(f"rpc block {b}: not found (beyond the chain head?)")
        rows.append({"block": int(h.get("number", hex(b)), 16), "ts": int(h["timestamp"], 16),
                     **preset.decode(b, got[k])})
    return rows


def fetch_preset(preset: Preset, blocks: Sequence[int], lake: str | os.PathLike, rpc: BatchRpc, *,
                 chunk: int = 50, progress: Callable[[int, int], None] | None = None,
                 extra_params: dict | None = None) -> ImportReport:
    """Read ``preset`` at every block (plus the block's time), then write its series and ``blocks``."""
    if not blocks:
        raise InputError(f"rpc {preset.name}: no blocks to read")
    blocks = sorted(set(int(b) for b in blocks))
    params = {"preset": preset.name, **preset.params, **(extra_params or {}), "first": blocks[0],
              "last": blocks[-1], "n": len(blocks)}
    job = job_dir(lake, "rpc", params)
    job.mkdir(parents=True, exist_ok=True)
    write_manifest(job, "rpc", params, "running")
    done_path = job / "blocks.jsonl"
    done = finished_blocks(done_path, "requested")
    todo = [b for b in blocks if b not in done]
    with open(done_path, "a") as fh:
        for lo in range(0, len(todo), chunk):
            part = todo[lo: lo + chunk]
            for b, row in zip(part, _chunk_rows(rpc, preset, part)):
                rec = {"requested": b, **row}
                fh.write(json.dumps(rec) + "\n")
                done[b] = rec
            fh.flush()
            if progress is not None:
                progress(len(blocks) - len(todo) + lo + len(part), len(blocks))
    rows = [{k: v for k, v in done[b].items() if k != "requested"} for b in blocks]
    df = pl.DataFrame(rows, infer_schema_length=None).sort("block")
    items = preset.to_series(df)
    items.append(Series("blocks", df.select("ts", "block").unique(subset=["ts"], keep="last").sort("ts"),
                        "rpc-blocks", "rpc:eth_getBlockByNumber", "rpc"))
    report = commit(lake, items)
    write_manifest(job, "rpc", params, "complete", rows=len(rows))
    return report


def _pad_topic(value: str) -> str:
    h = value.lower().removeprefix("0x")
    if len(h) > 64 or any(c not in "0123456789abcdef" for c in h):
        raise InputError(f"{value!r}: not an address or bytes32 to filter the event on")
    return "0x" + h.rjust(64, "0")


def event_blocks(rpc: BatchRpc, kind: str, first: int, last: int, *, address: str | None = None,
                 filter_on: str | None = None, span: int = 10_000,
                 lake: str | os.PathLike | None = None) -> list[int]:
    """Every block in [first, last] holding an event of ``kind`` (:data:`EVENTS`) from ``address``, with
    topic 1 = ``filter_on`` (the reserve's asset, the market id) when the kind filters on one. Logs marked
    ``removed`` (a reorganised block) are left out. With ``lake``, each finished window is one JSON line under
    ``<lake>/.fetch/rpc-logs/<job>/``: a scan run again continues after the last finished window."""
    if kind not in EVENTS:
        raise InputError(f"--events {kind!r}: one of {', '.join(EVENTS)}")
    sig, default, what = EVENTS[kind]
    address = address or default
    if not address:
        raise InputError(f"--events {kind}: give the emitting contract with --address")
    if what and not filter_on:
        raise InputError(f"--events {kind}: needs the {what} to filter on (--asset / --market-id)")
    topics = [topic(sig)] + ([_pad_topic(filter_on)] if what else [])
    out: set[int] = set()
    a = first
    done_path = None
    if lake is not None:
        params = {"kind": kind, "address": address.lower(), "topics": topics, "first": first, "last": last}
        job = job_dir(lake, "rpc-logs", params)
        job.mkdir(parents=True, exist_ok=True)
        write_manifest(job, "rpc-logs", params, "running")
        done_path = job / "windows.jsonl"
        if done_path.exists():
            for line in done_path.read_text().splitlines():
                try:
                    rec = json.loads(line)
                    lo, hi, found = int(rec["from"]), int(rec["to"]), [int(x) for x in rec["blocks"]]
                except (ValueError, KeyError, TypeError):
                    break             # a line cut by an interruption: scan again from there
                if lo != a:
                    break
                out.update(found)
                a = hi + 1
    fh = open(done_path, "a") if done_path is not None else None
    try:
        while a <= last:
            b = min(last, a + span - 1)
            try:
                (logs,) = rpc.run([RpcRequest("eth_getLogs", [{"address": address, "topics": topics,
                                                                "fromBlock": hex(a), "toBlock": hex(b)}],
                                              f"rpc eth_getLogs {kind} {a}-{b}")])
            except DataError as exc:
                if span > 1 and any(s in str(exc).lower() for s in TOO_MANY_LOGS):
                    span = max(1, span // 2)         # the node caps a window's logs: smaller windows
                    continue
                raise
            found = sorted({int(lg["blockNumber"], 16) for lg in logs or [] if not lg.get("removed")})
            out.update(found)
            if fh is not None:
                fh.write(json.dumps({"from": a, "to": b, "blocks": found}) + "\n")
                fh.flush()
            a = b + 1
    finally:
        if fh is not None:
            fh.close()
    if lake is not None:
        write_manifest(job, "rpc-logs", params, "complete", blocks=len(out))
    return sorted(out)
