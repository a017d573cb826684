"""`data synth` and `data derive` are atomic per command: every file is staged first and all are renamed into
place together, so a failure while writing the Nth file (or a validation error) leaves the lake as it was:
no new files or folders, no changed bytes, no temp files."""
from __future__ import annotations

import errno
import hashlib

import polars as pl
import pyarrow.parquet as pq
import pytest

from backtest.cli import main
from backtest.data import derive, lake, lake_write, synth as synth_mod
from backtest.data.sources.commit import commit
from backtest.data.sources.toolkit import Series
from backtest.data.synth import synth
from backtest.errors import DataError
from tests.helpers import snapshot

H = 3600
T0 = 1_700_000_000 - 1_700_000_000 % H


def fail_on_write(monkeypatch, n: int, exc: BaseException) -> list[int]:
    """Make the n-th Parquet write (1-based) raise ``exc``; return the call counter."""
    calls = [0]
    real = pq.write_table

    def write(*a, **k):
        calls[0] += 1
        if calls[0] == n:
            raise exc
        return real(*a, **k)

    monkeypatch.setattr(pq, "write_table", write)
    return calls


def run(args: list[str], capsys) -> tuple[int, str]:
    with pytest.raises(SystemExit) as e:
        main(args)
    out = capsys.readouterr()
    return e.value.code, out.out + out.err


def test_synth_failing_on_the_third_file_leaves_an_existing_lake_as_it_was(tmp_path, monkeypatch, capsys):
    lk = tmp_path / "lake"
    synth("calm", lk)
    before = snapshot(lk)
    calls = fail_on_write(monkeypatch, 3, OSError(errno.EIO, "Input/output error"))
    code, out = run(["data", "synth", "steth-depeg", "--into", str(lk)], capsys)
    assert code == 1 and "Input/output error" in out
    assert calls[0] == 3                                # two files were staged before the failure
    assert snapshot(lk) == before                       # no new file or folder, no temp file, same bytes


def test_synth_failing_into_a_new_lake_leaves_no_folder(tmp_path, monkeypatch, capsys):
    fail_on_write(monkeypatch, 3, OSError(errno.ENOSPC, "No space left on device"))
    code, out = run(["data", "synth", "calm", "--into", str(tmp_path / "new")], capsys)
    assert code == 1 and "disk full" in out and "nothing was written" in out
    assert list(tmp_path.iterdir()) == []


def test_synth_with_a_bad_frame_writes_nothing_and_exits_2(tmp_path, monkeypatch, capsys):
    lk = tmp_path / "lake"
    synth("calm", lk)
    before = snapshot(lk)
    build = synth_mod._BUILDERS["rate-spike"]

    def bad(out):
        build(out)
        out.add("gas", pl.DataFrame({"ts": [T0], "base_fee_gwei": [float("inf")]}))   # not finite

    monkeypatch.setitem(synth_mod._BUILDERS, "rate-spike", bad)
    code, out = run(["data", "synth", "rate-spike", "--into", str(lk)], capsys)
    assert code == 2 and "gas: column 'base_fee_gwei'" in out
    assert snapshot(lk) == before


def test_a_successful_synth_leaves_only_its_parquet_files(tmp_path):
    lk = tmp_path / "lake"
    paths = synth("calm", lk)
    files = sorted(p for p in lk.rglob("*") if p.is_file())
    assert files == paths and all(not p.name.startswith(".") for p in files)


def test_synth_module_main_writes_all_scenarios_or_none(tmp_path, monkeypatch):
    lk = tmp_path / "lake"
    synth("calm", lk)
    before = snapshot(lk)
    fail_on_write(monkeypatch, 7, OSError(errno.EIO, "Input/output error"))   # in the second scenario
    with pytest.raises(OSError):
        synth_mod.main(["calm", "steth-depeg", "--into", str(lk)])
    assert snapshot(lk) == before


def usd(lk, base: str, prices: list[float]) -> None:
    lake_write.write_table(lk, "prices", pl.DataFrame({"ts": [T0 + k * H for k in range(len(prices))], "base": base,
                                                       "quote": "USD", "price": prices, "source": "cg"}),
                           f"{base}-cg")


def test_derive_ratio_failing_on_the_second_file_changes_no_file(tmp_path, monkeypatch, capsys):
    lk = tmp_path / "lake"
    usd(lk, "stETH", [990.0, 980.0])
    usd(lk, "WETH", [1000.0, 1000.0])
    derive.derive_ratio(lk, "stETH", "WETH")                 # prices derived-stETH-WETH: 0.99, 0.98
    usd(lk, "stETH", [990.0, 980.0, 970.0])                  # a new hour: the next derive changes that file
    usd(lk, "WETH", [1000.0, 1000.0, 1000.0])
    before = snapshot(lk)
    fail_on_write(monkeypatch, 2, OSError(errno.EIO, "Input/output error"))
    code, out = run(["data", "derive", "ratio", "stETH", "WETH", "--rebase-apr", "0.04", "--into", str(lk)], capsys)
    assert code == 1 and "Input/output error" in out
    assert snapshot(lk) == before                            # neither the prices nor the exchange-rate file
    monkeypatch.undo()
    derive.derive_ratio(lk, "stETH", "WETH", rebase_apr=0.04)  # without the failure both land
    after = snapshot(lk)
    assert after["prices/derived-stETH-WETH.parquet"] != before["prices/derived-stETH-WETH.parquet"]
    assert lake.read_series(lk, "exchange_rates", token="stETH").height == 3


def test_derive_oracle_rate_failing_on_the_second_file_adds_no_file(tmp_path, monkeypatch):
    lk = tmp_path / "lake"
    for asset, px in (("WETH", [3000.0, 3100.0]), ("wstETH", [3540.0, 3658.31])):
        lake_write.write_table(lk, "oracle_prices", pl.DataFrame({
            "ts": [T0, T0 + 86400], "block": [1, 2], "protocol": "aave-v3", "asset": asset, "quote": "USD",
            "price": px}), asset)
    before = snapshot(lk)
    fail_on_write(monkeypatch, 2, OSError(errno.EIO, "Input/output error"))
    with pytest.raises(OSError):
        derive.derive_oracle_rate(lk, "aave-v3", "wstETH", quote="WETH", exchange_rate=True)
    assert snapshot(lk) == before


def test_a_bad_second_series_of_a_commit_writes_not_even_the_first(tmp_path):
    lk = tmp_path / "lake"
    usd(lk, "WETH", [1000.0])
    before = snapshot(lk)
    good = Series("prices", pl.DataFrame({"ts": [T0], "base": "stETH", "quote": "WETH", "price": [0.99],
                                          "source": "x"}), "ok", "x")
    bad = Series("gas", pl.DataFrame({"ts": [T0], "base_fee_gwei": [float("nan")]}), "bad", "x")
    with pytest.raises(DataError, match="gas"):
        commit(lk, [good, bad])
    assert snapshot(lk) == before


def test_a_successful_synth_has_the_bytes_of_a_per_file_write(tmp_path, monkeypatch):
    """Staging does not change a byte: the same scenario written file by file (the old way) is identical."""
    a, b = tmp_path / "a", tmp_path / "b"
    synth("rate-spike", a)
    monkeypatch.setattr(lake_write, "transaction", _no_transaction)
    synth("rate-spike", b)
    digest = lambda d: {p.relative_to(d).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()  # noqa: E731
                        for p in d.rglob("*.parquet")}
    assert digest(a) == digest(b) and len(digest(a)) >= 5


class _no_transaction:
    def __init__(self, lake):
        pass

    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False


def test_derive_error_types_are_data_errors(tmp_path):
    lk = tmp_path / "lake"
    usd(lk, "WETH", [1000.0])
    with pytest.raises(DataError, match="stETH/USD: no rows"):
        derive.derive_ratio(lk, "stETH", "WETH")
    assert not any(p.name.startswith(".") for p in lk.rglob("*"))
