"""Edges a user trips on (issue 8): bad config, window and number inputs through the CLI (exit code, message,
nothing written), gas = 0 as a price, config_hash and the lake's spelling, real block numbers from the
importers, an RPC URL with user:pass@, and the Python API called repeatedly with the CLI's typed errors."""
from __future__ import annotations

import base64
import json
import math
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import click
import numpy as np
import polars as pl
import pytest
from click.testing import CliRunner

import backtest
from backtest.cli import cli
from backtest.config import (MAX_RECORD_SAMPLES, MAX_STEPS, MAX_SWEEP_POINTS, MAX_SWEEP_SAMPLES, config_hash,
                             load_config,
                             parse_date)
from backtest.errors import BacktestError, ConfigError, DataError, InputError

REPO = Path(__file__).resolve().parents[2]
LOOP = REPO / "examples" / "loop.toml"
SHARED = REPO.parent / "shared" / "data"

MINIMAL = """[run]
name = "edge"
start = "2024-06-01"
end = "2024-06-04"
data = "data"
record = "1h"

[market]
protocol = "aave-v3"

[strategy]
kind = "loop"
target_ltv = 0.8
loops = 5
"""


@pytest.fixture(autouse=True)
def at_repo_root(monkeypatch):
    monkeypatch.chdir(REPO)          # run.data = "data" is relative to the working directory


def config(tmp_path: Path, text: str = MINIMAL) -> Path:
    path = tmp_path / "edge.toml"
    path.write_text(text)
    return path


def refused(tmp_path: Path, args: list, *fragments: str) -> str:
    """Run the CLI with run.output under tmp_path: exit 2, every fragment in the message, nothing written."""
    out = tmp_path / "out"
    r = CliRunner().invoke(cli, [str(a) for a in args] + ["--set", f'run.output="{out}"'])
    assert r.exit_code == 2, r.output
    assert "Traceback" not in r.output
    for frag in fragments:
        assert frag in r.output, r.output
    # nothing written (the output folder itself may have been created by the pre-flight check of run.output)
    assert not out.exists() or not list(out.rglob("*")), list(out.rglob("*"))
    return r.output


# ============================================================================================ config
def test_a_config_without_a_strategy_section_is_refused(tmp_path):
    path = config(tmp_path, MINIMAL.split("[strategy]")[0])
    refused(tmp_path, ["run", path], "edge.toml", "missing required section [strategy]")


def test_capital_1e308_is_refused_with_the_bound(tmp_path):
    refused(tmp_path, ["run", config(tmp_path, MINIMAL + "capital = 1e308\n")],
            "edge.toml:", "strategy.capital", "beyond the bound of 1e+12")


def test_gas_units_1e15_are_refused_with_the_bound(tmp_path):
    path = config(tmp_path, MINIMAL + "\n[costs]\ngas_units = { open = 1e15 }\n")
    refused(tmp_path, ["run", path], "costs.gas_units.open", "beyond the bound of 1e+08")


def test_a_gas_price_given_in_wei_is_refused(tmp_path):
    path = config(tmp_path, MINIMAL + "\n[costs]\ngas = 20000000000\n")     # 20 gwei written in wei
    refused(tmp_path, ["run", path], "costs.gas", "beyond the bound of 1e+06 gwei", "not wei")


def test_an_amplification_beyond_curves_cap_is_refused(tmp_path):
    path = config(tmp_path, MINIMAL + '\n[costs]\nslippage = "stableswap"\namp = 1e9\n')
    refused(tmp_path, ["run", path], "costs.amp", "beyond the bound of 1e+06")


def test_an_absurd_override_is_refused_like_the_file(tmp_path):
    refused(tmp_path, ["run", config(tmp_path), "--set", "strategy.capital=1e308"],
            "strategy.capital", "(from override)", "beyond the bound")


@pytest.mark.parametrize("workers", ["-1", "5000"])
def test_workers_below_zero_or_absurd_are_refused(tmp_path, workers):
    refused(tmp_path, ["run", config(tmp_path), "--workers", workers], f"--workers {workers}",
            "from 0 (all cores) to 1024")


def test_sweep_workers_below_zero_are_refused(tmp_path):
    refused(tmp_path, ["sweep", config(tmp_path), "--grid", "strategy.loops=1..2", "--workers", "-1"],
            "--workers -1")


# ============================================================================================ window
def test_an_end_date_in_9999_fails_at_once_with_the_size_and_the_bound(tmp_path):
    path = config(tmp_path, MINIMAL.replace('end = "2024-06-04"', 'end = "9999-01-01"'))
    steps = math.ceil((parse_date("9999-01-01") - parse_date("2024-06-01")) / 12)
    t0 = time.perf_counter()
    msg = refused(tmp_path, ["run", path], "run.end", f"{steps:,} steps of 12 s", f"bound is {MAX_STEPS:,}",
                  "GB of aligned market")
    assert time.perf_counter() - t0 < 5.0, "checked before any allocation"
    assert steps > MAX_STEPS, msg


def test_record_block_over_years_fails_with_the_samples_and_the_bound(tmp_path):
    text = MINIMAL.replace('end = "2024-06-04"', 'end = "2027-06-01"').replace('record = "1h"', 'record = "block"')
    steps = math.ceil((parse_date("2027-06-01") - parse_date("2024-06-01")) / 12)     # one sample a block
    assert steps > MAX_RECORD_SAMPLES
    refused(tmp_path, ["run", config(tmp_path, text)], "run.record", f"{steps:,} time-series samples",
            f"bound is {MAX_RECORD_SAMPLES:,}", '"1h"')


def test_record_block_over_a_sweep_fails_with_the_total(tmp_path):
    text = MINIMAL.replace('end = "2024-06-04"', 'end = "2025-06-01"').replace('record = "1h"', 'record = "block"')
    steps = (parse_date("2025-06-01") - parse_date("2024-06-01")) // 12                # 2,628,000 blocks
    total = 40 * steps                                                                 # 40 grid points
    assert steps <= MAX_RECORD_SAMPLES < MAX_SWEEP_SAMPLES < total
    refused(tmp_path, ["sweep", config(tmp_path, text), "--grid", "strategy.loops=1..40"],
            f"40 configurations x {steps:,}", f"{total:,} samples", f"bound is {MAX_SWEEP_SAMPLES:,}")


def test_a_sweep_of_too_many_points_is_refused_before_expanding(tmp_path):
    text = MINIMAL + ('\n[sweep]\n"strategy.capital" = { start = 1, stop = 100000, step = 1 }\n'
                      '"costs.swap_fee" = { start = 0, stop = 0.0999, step = 0.000001 }\n')
    # 100,000 capitals x 99,900 fees (0 to 0.0999 by 1e-6: 99,901 values) ~ 1e10 configurations
    fees = math.floor(0.0999 / 0.000001 + 1e-9) + 1
    t0 = time.perf_counter()
    refused(tmp_path, ["run", config(tmp_path, text)], f"100,000 (strategy.capital) x {fees:,} (costs.swap_fee)",
            f"{100_000 * fees:,} configurations", f"bound is {MAX_SWEEP_POINTS:,}")
    assert time.perf_counter() - t0 < 10.0


def test_a_window_beyond_the_data_names_the_series_and_its_last_point(tmp_path):
    text = MINIMAL.replace('start = "2024-06-01"', 'start = "2030-01-01"').replace('end = "2024-06-04"',
                                                                                 'end = "2030-02-01"')
    t0 = time.perf_counter()
    refused(tmp_path, ["run", config(tmp_path, text)], "last point", "before the run end 2030-02-01")
    assert time.perf_counter() - t0 < 20.0


def test_a_window_before_genesis_is_refused(tmp_path):
    text = MINIMAL.replace('start = "2024-06-01"', 'start = "2015-01-01"')
    refused(tmp_path, ["run", config(tmp_path, text)], "run.start", "before ethereum's genesis")


# ============================================================================================ numbers
def test_gas_zero_is_a_price_not_missing(tmp_path):
    """costs.gas = 0 charges 0 gwei and reads no gas series; 10 gwei charges units x price."""
    res = {}
    for gas in (0, 10):
        r = backtest.run(config(tmp_path), overrides={"costs.gas": gas, "run.output": str(tmp_path / f"g{gas}")})
        res[gas] = r
    s0, s10 = res[0]["summary"], res[10]["summary"]
    assert s0["gas_cost"][0] == 0.0
    assert not any(s["table"] == "gas" for s in res[0]["manifest"]["series"])
    # 10 gwei: 10e-9 ETH per gas unit x (open 600,000 + 250,000 per loop step + 400,000 per rebalance)
    kinds = res[10]["events"]["kind"].to_list()
    units = 600_000 * kinds.count("open") + 250_000 * kinds.count("loop") + 400_000 * kinds.count("rebalance")
    assert kinds.count("open") == 1 and kinds.count("loop") == 5
    assert s10["gas_cost"][0] == pytest.approx(10e-9 * units, rel=1e-12)
    # the gas paid is the only difference in costs
    assert s10["total_costs"][0] - s0["total_costs"][0] == pytest.approx(10e-9 * units, rel=1e-6)


def test_config_hash_does_not_depend_on_how_run_data_is_spelled(tmp_path):
    spellings = ['"data"', '"./data"', f'"{REPO / "data"}"', '"data/"', f'"{REPO / "examples" / ".." / "data"}"']
    hashes = {config_hash(load_config(config(tmp_path), {"run.data": json.loads(s)})) for s in spellings}
    assert len(hashes) == 1
    assert config_hash(load_config(config(tmp_path), {"run.data": "examples"})) not in hashes


def test_resume_sees_the_same_sweep_whatever_the_lake_spelling(tmp_path):
    """--resume continues a work folder whose sweep_hash matches: the same grid over "data" and "./data"."""
    hashes = []
    for data in ("data", "./data", str(REPO / "data")):
        r = backtest.sweep(config(tmp_path), {"strategy.loops": [1, 2]}, write=False,
                           overrides={"run.data": data, "run.end": "2024-06-02"})
        hashes.append(r["manifest"]["sweep_hash"])
    assert len(set(hashes)) == 1


# ============================================================================================ blocks
@pytest.mark.skipif(not SHARED.is_dir(), reason="needs ../shared/data")
def test_real_gas_and_aavescan_files_fill_the_blocks_table_used_by_alignment(tmp_path):
    from backtest.data import lake
    from backtest.data.asof import Aligner
    from backtest.data.clock import estimate_blocks
    from backtest.data.sources.aavescan import import_aavescan
    from backtest.data.sources.gas_hourly import import_gas_hourly

    gas_csv = next((SHARED / "eth-gas-hourly-2024-2025").glob("*.csv"))
    scan = sorted((SHARED / "aavescan-v3-eth-rates-daily").glob("*.csv"))
    import_gas_hourly(gas_csv, tmp_path / "lake")
    for f in scan:
        import_aavescan(f, tmp_path / "lake")
    blocks = lake.read_table(tmp_path / "lake", "blocks").sort("ts")
    raw = pl.read_csv(gas_csv)
    gas_pairs = set(zip(raw["block_timestamp"].to_list(), raw["block_number"].to_list()))
    days = set(zip(pl.read_csv(scan[0])["timestamp"].to_list(), pl.read_csv(scan[0])["blockNumber"].to_list()))
    have = set(zip(blocks["ts"].to_list(), blocks["block"].to_list()))
    assert gas_pairs <= have and days <= have
    assert np.all(np.diff(blocks["block"].to_numpy()) > 0)      # both sources agree on the order

    # a 2024 window: the clock at the file's own sample times gets the file's block numbers exactly
    start, end = parse_date("2024-07-01"), parse_date("2024-07-03")
    sample = raw.filter((pl.col("block_timestamp") >= start) & (pl.col("block_timestamp") < end)
                        & ((pl.col("block_timestamp") - start) % 12 == 0))
    al = Aligner(tmp_path / "lake", start, end, 12)
    got = al.blocks()
    k = ((sample["block_timestamp"].to_numpy() - start) // 12).astype(int)
    if k.size:
        assert np.array_equal(got[k], sample["block_number"].to_numpy())
    # and everywhere within the two bracketing samples (12 s slots, a missed slot or two an hour)
    inside = raw.filter((pl.col("block_timestamp") >= start) & (pl.col("block_timestamp") < end))
    ks = ((inside["block_timestamp"].to_numpy() - start) // 12).astype(int)
    assert np.abs(got[ks] - inside["block_number"].to_numpy()).max() <= 1
    # the Merge-anchor estimate it replaces is tens of thousands of blocks off by then
    est = estimate_blocks(al.ts)
    assert np.abs(est[ks] - inside["block_number"].to_numpy()).min() > 20_000
    assert any(s.table == "blocks" for s in al.series)


# ============================================================================================ RPC
class _Recorder(BaseHTTPRequestHandler):
    seen: list = []

    def log_message(self, *a):
        pass

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
        _Recorder.seen.append((self.path, self.headers.get("Authorization")))
        if self.path != "/rpc":
            self.send_response(401)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        out = json.dumps({"jsonrpc": "2.0", "id": body["id"],
                          "result": {"number": "0x5", "timestamp": hex(1_600_000_060)}}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)


def test_an_rpc_url_with_user_and_password_uses_basic_auth_and_never_shows_them():
    from backtest.data.sources.download import HttpClient
    from backtest.data.sources.rpc import RpcClient

    server = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        port = server.server_address[1]
        _Recorder.seen.clear()
        rpc = RpcClient(f"http://alice:s3cr%40t-pw@127.0.0.1:{port}/rpc", HttpClient(retries=0))
        assert rpc.block(5) == (5, 1_600_000_060)
        token = base64.b64encode(b"alice:s3cr@t-pw").decode()          # the password unquoted: %40 is "@"
        assert _Recorder.seen == [("/rpc", f"Basic {token}")]
        bad = RpcClient(f"http://alice:s3cr%40t-pw@127.0.0.1:{port}/wrong", HttpClient(retries=0))
        with pytest.raises(InputError) as ei:
            bad.block(5)
        msg = str(ei.value)
        assert "HTTP 401" in msg
        for secret in ("alice:s3cr", "s3cr%40t-pw", "s3cr@t-pw", token):
            assert secret not in msg
    finally:
        server.shutdown()
        server.server_close()


# ============================================================================================ API
def test_the_python_api_survives_repeated_calls(tmp_path):
    path = config(tmp_path)
    over = {"run.end": "2024-06-02"}
    one = backtest.run(path, overrides=over, write=False)
    first = backtest.sweep(path, {"strategy.loops": [1, 2]}, overrides=over, write=False)
    again = backtest.sweep(path, {"strategy.loops": [1, 2]}, overrides=over, write=False)
    assert callable(backtest.sweep) and callable(backtest.run)
    assert one["summary"].height == 1 and first["summary"].height == 2
    assert first["summary"]["net_apy"].to_list() == again["summary"]["net_apy"].to_list()
    from backtest.sweep import WorkDir          # the submodule is still importable by name
    assert WorkDir.__module__ == "backtest.sweep"


def test_the_python_api_raises_the_clis_typed_errors(tmp_path):
    with pytest.raises(ConfigError) as ei:
        backtest.run(tmp_path / "missing.toml")
    err = ei.value
    assert isinstance(err, ValueError) and isinstance(err, click.ClickException) and err.exit_code == 2
    assert "config file not found" in str(err)
    with pytest.raises(ConfigError, match="unknown config key"):
        backtest.sweep(config(tmp_path), {"strategy.lopps": [1, 2]}, write=False)
    with pytest.raises(ConfigError, match="--workers -1"):
        backtest.run(config(tmp_path), workers=-1, write=False)
    with pytest.raises(ConfigError, match="--engine 'fast'"):
        backtest.run(config(tmp_path), engine="fast", write=False)
    with pytest.raises(DataError) as di:
        backtest.run(config(tmp_path), overrides={"run.data": str(tmp_path / "no-lake")}, write=False)
    assert isinstance(di.value, LookupError) and isinstance(di.value, ValueError) and di.value.exit_code == 2
    assert issubclass(ConfigError, InputError) and BacktestError.exit_code == 1
