"""Outputs never destroy anything: what may be replaced, locks, leftovers of killed runs, a full disk."""
from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import polars as pl
import pytest
from click.testing import CliRunner

import backtest
from backtest.cli import cli
from backtest.errors import InputError
from backtest.store import MARKER, Store, recover
from tests.helpers import snapshot

REPO = Path(__file__).resolve().parents[2]
NAME = "wsteth-aave-emode-loop"          # run.name of examples/loop.toml
SHORT = ["--set", 'run.end="2024-06-03"', "--set", 'run.record="1d"']


@pytest.fixture
def proj(tmp_path, monkeypatch):
    """A copy of the bundled lake and examples/loop.toml in tmp_path (the cwd): never the repo's data/."""
    shutil.copytree(REPO / "data", tmp_path / "data")
    shutil.copy(REPO / "examples" / "loop.toml", tmp_path / "loop.toml")
    monkeypatch.chdir(tmp_path)
    return tmp_path




def run(*args):
    return CliRunner().invoke(cli, ["run", "loop.toml", "--quiet", *SHORT, *map(str, args)])


def first_line(r) -> str:
    return r.output.strip().splitlines()[0] if r.output.strip() else ""


VOLATILE = ("started", "finished", "wall_seconds", "timings")     # run times: the manifest says when it ran


# ------------------------------------------------------------------------------------- what is replaced
def test_run_named_like_the_lake_never_replaces_it(proj):
    # the reported case: run.name = "data", run.output = "." used to replace the whole data lake
    before = snapshot(proj)
    r = run("--set", 'run.name="data"', "--set", 'run.output="."')
    assert r.exit_code == 2
    assert "is the data lake" in r.output and "data" in first_line(r)
    assert snapshot(proj) == before                       # no lock file, no work folder, lake untouched


def test_results_inside_the_lake_are_refused(proj):
    # a result set under data/prices/ would be read back as price files
    before = snapshot(proj)
    r = run("--set", 'run.output="data"', "--set", 'run.name="prices"')
    assert r.exit_code == 2 and "inside the data lake" in r.output
    r = run("--set", 'run.output="data/prices"')
    assert r.exit_code == 2 and "inside the data lake" in r.output
    assert snapshot(proj) == before


def test_a_folder_that_is_not_a_result_set_is_refused(proj):
    mine = proj / "results" / NAME
    mine.mkdir(parents=True)
    (mine / "thesis.tex").write_text("years of work\n")
    before = snapshot(proj)
    r = run()
    assert r.exit_code == 2
    assert f"results/{NAME} exists and is not a result set of this project" in r.output
    assert "refusing to replace it" in r.output
    assert snapshot(proj) == before


def test_a_manifest_of_someone_else_is_not_ours(proj):
    mine = proj / "results" / NAME
    mine.mkdir(parents=True)
    (mine / "manifest.json").write_text(json.dumps({"name": NAME, "tool": "other"}))
    (mine / "summary.parquet").write_text("not ours")
    before = snapshot(proj)
    r = run()
    assert r.exit_code == 2 and "not a result set of this project" in r.output
    assert snapshot(proj) == before


def test_a_file_where_the_result_set_goes_is_refused(proj):
    (proj / "results").mkdir()
    (proj / "results" / NAME).write_text("a file\n")
    before = snapshot(proj)
    r = run()
    assert r.exit_code == 2 and f"results/{NAME} is a file, not a result set" in r.output
    assert snapshot(proj) == before


def test_a_symlink_where_the_result_set_goes_is_refused(proj):
    (proj / "results").mkdir()
    (proj / "elsewhere").mkdir()
    os.symlink(proj / "elsewhere", proj / "results" / NAME)
    before = snapshot(proj)
    r = run()
    assert r.exit_code == 2 and "is a symbolic link" in r.output
    assert snapshot(proj) == before


def test_run_output_that_is_a_file_is_refused(proj):
    (proj / "out.txt").write_text("x\n")
    before = snapshot(proj)
    r = run("--set", 'run.output="out.txt"')
    assert r.exit_code == 2 and "run.output out.txt: out.txt is a file, not a folder" in r.output
    r = run("--set", 'run.output="out.txt/deeper/still"')    # a file further up the path
    assert r.exit_code == 2 and "out.txt is a file, not a folder" in r.output
    assert snapshot(proj) == before


def test_run_output_that_is_not_writable_is_refused(proj, monkeypatch):
    # tests run as root, for whom chmod means nothing: the permission answer is what is patched
    (proj / "ro").mkdir()
    real = os.access
    monkeypatch.setattr("backtest.store.os.access",
                        lambda p, mode: False if Path(p).name == "ro" else real(p, mode))
    before = snapshot(proj)
    r = run("--set", 'run.output="ro/results"')
    assert r.exit_code == 2 and "its parent ro is not writable" in r.output
    r = run("--set", 'run.output="ro"')
    assert r.exit_code == 2 and "run.output ro is not writable" in r.output
    assert snapshot(proj) == before


def test_output_checks_come_before_alignment(proj, monkeypatch):
    # a refused destination costs no work: alignment is never reached
    calls = []
    monkeypatch.setattr("backtest.api._align", lambda cfg: calls.append(cfg) or 1 / 0)
    (proj / "results" / NAME).mkdir(parents=True)
    r = run()
    assert r.exit_code == 2 and calls == []


def test_output_folder_is_created_when_its_parents_are_missing(proj):
    r = run("--set", 'run.output="a/b/c"')
    assert r.exit_code == 0, r.output
    assert (proj / "a" / "b" / "c" / NAME / "manifest.json").is_file()
    assert sorted(p.name for p in (proj / "a" / "b" / "c").iterdir()) == [NAME]    # lock released, removed


def test_same_config_rerun_replaces_with_byte_identical_files(proj):
    assert run().exit_code == 0
    root = proj / "results" / NAME
    m1 = json.loads((root / "manifest.json").read_text())
    assert m1["format"] == MARKER
    first = {k: v for k, v in snapshot(root).items() if k != "manifest.json"}
    assert run().exit_code == 0
    assert {k: v for k, v in snapshot(root).items() if k != "manifest.json"} == first
    m2 = json.loads((root / "manifest.json").read_text())
    assert {k: v for k, v in m2.items() if k not in VOLATILE} == {k: v for k, v in m1.items() if k not in VOLATILE}
    assert sorted(p.name for p in (proj / "results").iterdir()) == [NAME]           # no .old, .work or lock


def test_a_different_configuration_is_replaced_only_with_force(proj):
    assert run().exit_code == 0
    root = proj / "results" / NAME
    before = snapshot(proj)
    r = run("--set", "strategy.loops=3")
    assert r.exit_code == 2
    assert "holds a result set of a different configuration" in r.output and "--force" in r.output
    assert snapshot(proj) == before
    r = CliRunner().invoke(cli, ["sweep", "loop.toml", "--quiet", *SHORT, "--grid", "strategy.loops=1..2"])
    assert r.exit_code == 2 and "--force" in r.output          # sweep refuses it the same way
    assert snapshot(proj) == before
    r = run("--set", "strategy.loops=3", "--force")
    assert r.exit_code == 0, r.output
    assert json.loads((root / "manifest.json").read_text())["config"]["strategy"]["loops"] == 3
    r = CliRunner().invoke(cli, ["sweep", "loop.toml", "--quiet", *SHORT, "--grid", "strategy.loops=1..2",
                                 "--force"])
    assert r.exit_code == 0, r.output
    assert pl.read_parquet(root / "summary.parquet")["strategy.loops"].to_list() == [1, 2]


def test_the_python_api_raises_the_same_typed_error(proj):
    backtest.run("loop.toml", overrides={"run.end": "2024-06-03", "run.record": "1d"})
    with pytest.raises(InputError, match="force"):
        backtest.run("loop.toml", overrides={"run.end": "2024-06-03", "run.record": "1d", "strategy.loops": 2})
    res = backtest.run("loop.toml", overrides={"run.end": "2024-06-03", "run.record": "1d",
                                               "strategy.loops": 2}, force=True)
    assert res["manifest"]["config"]["strategy"]["loops"] == 2


# ---------------------------------------------------------------------------------------------- locks
HOLD = textwrap.dedent("""
    import fcntl, os, sys, time
    fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)
    os.write(fd, f"{os.getpid()}\\n".encode())
    print("locked", flush=True)
    time.sleep(60)
""")


def hold_lock(path: Path) -> subprocess.Popen:
    p = subprocess.Popen([sys.executable, "-c", HOLD, str(path)], stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "locked"
    return p


def test_a_live_lock_of_another_process_is_an_error_naming_it(proj):
    assert run().exit_code == 0
    holder = hold_lock(proj / "results" / f".{NAME}.lock")
    try:
        before = snapshot(proj)
        r = run()
        assert r.exit_code == 2
        assert f"another process (PID {holder.pid}) is writing it" in r.output
        assert snapshot(proj) == before
    finally:
        holder.kill()
        holder.wait()


def test_a_stale_lock_of_a_dead_process_is_taken_over(proj):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()                                    # its PID now names no process
    (proj / "results").mkdir()
    (proj / "results" / f".{NAME}.lock").write_text(f"{dead.pid}\n")
    r = run()
    assert r.exit_code == 0, r.output
    assert sorted(p.name for p in (proj / "results").iterdir()) == [NAME]


def test_a_live_lake_lock_refuses_an_import_naming_the_process(proj):
    csv = proj / "q.csv"
    csv.write_text("symbol,timestamp,USD_price\nwstETH,1717200000000,4000.0\n")
    holder = hold_lock(proj / "data" / ".lake.lock")
    try:
        before = snapshot(proj / "data")
        r = CliRunner().invoke(cli, ["data", "import", "coingecko", str(csv), "--into", "data", "--quiet"])
        assert r.exit_code == 2 and f"data lake data: another process (PID {holder.pid})" in r.output
        assert snapshot(proj / "data") == before
    finally:
        holder.kill()
        holder.wait()


# ------------------------------------------------------------------------------------------ leftovers
def test_leftovers_of_killed_runs_are_removed(proj):
    assert run().exit_code == 0
    out = proj / "results"
    (out / f".{NAME}.old-4242").mkdir()                           # killed after the new set was in place
    (out / f".{NAME}.old-4242" / "manifest.json").write_text("{}")
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (out / f".{NAME}.manifest.json.tmp-{dead.pid}").write_text("half")   # a dead writer's temp file
    work = out / f".{NAME}.work"
    (work / "summary").mkdir(parents=True)                        # a work folder of another sweep
    (work / "summary" / ".part-000000000.parquet.tmp-4244").write_bytes(b"\0" * 100)
    (work / "state.json").write_text('{"sweep_hash": "other"}')
    (out / "unrelated").mkdir()                                   # not ours: left alone
    r = run()
    assert r.exit_code == 0, r.output
    assert sorted(p.name for p in out.iterdir()) == ["unrelated", NAME]


def finished_set(folder: Path, loops: int) -> None:
    folder.mkdir(parents=True)
    (folder / "manifest.json").write_text(json.dumps({"format": MARKER, "set_hash": f"h{loops}"}))
    (folder / "summary.parquet").write_text(f"loops {loops}")


def test_killed_between_the_renames_the_finished_set_goes_into_place(tmp_path):
    dest = tmp_path / "x"
    finished_set(tmp_path / ".x.old-77", 1)          # the old set, moved aside
    finished_set(tmp_path / ".x.work", 2)            # the new one, complete (no state.json), not yet renamed
    recover(dest)
    assert (dest / "summary.parquet").read_text() == "loops 2"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x"]


def test_killed_after_the_old_set_moved_aside_without_a_new_one_restores_it(tmp_path):
    dest = tmp_path / "x"
    finished_set(tmp_path / ".x.old-77", 1)
    recover(dest)
    assert (dest / "summary.parquet").read_text() == "loops 1"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x"]


def test_a_finished_work_folder_replaces_the_set_it_was_made_for(tmp_path):
    finished_set(tmp_path / "x", 1)
    finished_set(tmp_path / ".x.work", 2)
    s = Store(tmp_path / "x", ["any"], force=True)
    s.release()
    assert (tmp_path / "x" / "summary.parquet").read_text() == "loops 2"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x"]


def test_an_import_killed_while_committing_is_finished_on_the_next_read(proj):
    from backtest.data import lake
    from backtest.data import lake_write

    # a committed journal whose second rename never happened: the lake must get both files, not one
    files = sorted((proj / "data" / "prices").glob("*.parquet"))[:1]
    staged_a = proj / "data" / "prices" / f".a.parquet{lake_write.STAGE}999"
    staged_b = proj / "data" / "gas" / f".b.parquet{lake_write.STAGE}999"
    shutil.copy(files[0], staged_a)
    shutil.copy(files[0], proj / "data" / "prices" / "a.parquet")     # first rename done
    staged_a.unlink()
    staged_b.write_bytes(b"B")
    (proj / "data" / lake_write.JOURNAL).write_text(json.dumps(
        {"renames": [["prices/.a.parquet.stage-999", "prices/a.parquet"], ["gas/.b.parquet.stage-999", "gas/b.parquet"]]}))
    lake_write.recover(proj / "data")
    assert (proj / "data" / "gas" / "b.parquet").read_bytes() == b"B"
    assert not (proj / "data" / lake_write.JOURNAL).exists() and not staged_b.exists()


def test_an_uncommitted_import_leaves_the_lake_as_it_was(proj):
    from backtest.data import lake
    from backtest.data import lake_write

    before = snapshot(proj / "data")
    with pytest.raises(RuntimeError):
        with lake_write.transaction(proj / "data"):
            lake_write.write_table(proj / "data", "gas", pl.DataFrame({"ts": [1717200000], "base_fee_gwei": [5.0]}),
                             "extra")
            raise RuntimeError("killed here")
    assert snapshot(proj / "data") == before


def test_the_lock_file_of_a_killed_import_is_removed_on_the_next_read(proj):
    from backtest.data import lake
    from backtest.data import lake_write

    before = snapshot(proj / "data")
    (proj / "data" / lake_write.LAKE_LOCK).write_text("999999999\n")      # no such PID: its flock died with it
    lake_write.recover(proj / "data")
    assert snapshot(proj / "data") == before


def test_a_full_disk_during_an_import_leaves_the_lake_as_it_was(proj, monkeypatch):
    import pyarrow.parquet as pq

    csvs = []
    for sym in ("stETH", "WETH"):
        csvs.append(proj / f"{sym}.csv")
        csvs[-1].write_text(f"symbol,timestamp,USD_price\n{sym},1717200000000,4000.0\n")
    before = snapshot(proj / "data")
    real, calls = pq.write_table, []

    def full(table, where, *a, **k):
        calls.append(where)
        if len(calls) == 2:                          # the first file is staged, the second does not fit
            Path(where).write_bytes(b"\0" * 100)
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(table, where, *a, **k)

    monkeypatch.setattr(pq, "write_table", full)
    r = CliRunner().invoke(cli, ["data", "import", "coingecko", *map(str, csvs), "--into", "data", "--quiet"])
    assert r.exit_code == 1 and len(calls) == 2
    assert first_line(r).startswith("Error: data lake data: disk full while importing")
    assert "the lake is as it was" in r.output
    assert snapshot(proj / "data") == before


def test_a_result_set_written_before_the_marker_is_still_ours(proj):
    # older versions wrote no "format" key: their manifest keys and summary.parquet identify them
    old = proj / "results" / NAME
    old.mkdir(parents=True)
    (old / "manifest.json").write_text(json.dumps({"sweep_hash": "s", "package_version": "0.1",
                                                   "points": [{"config_id": 0, "config_hash": "other"}]}))
    (old / "summary.parquet").write_bytes(b"PAR1")
    before = snapshot(proj)
    r = run()
    assert r.exit_code == 2 and "a result set of a different configuration" in r.output   # not "not ours"
    assert snapshot(proj) == before
    assert run("--force").exit_code == 0
    assert json.loads((old / "manifest.json").read_text())["format"] == MARKER


def test_import_into_a_file_is_refused(proj):
    (proj / "lake.txt").write_text("x\n")
    csv = proj / "q.csv"
    csv.write_text("symbol,timestamp,USD_price\nwstETH,1717200000000,4000.0\n")
    r = CliRunner().invoke(cli, ["data", "import", "coingecko", str(csv), "--into", "lake.txt", "--quiet"])
    assert r.exit_code == 2 and "'--into': Directory 'lake.txt' is a file" in r.output
    from backtest.data import lake_write                        # the library call says it in its own words
    with pytest.raises(InputError, match="data lake lake.txt is a file, not a folder"):
        with lake_write.transaction("lake.txt"):
            pass
    assert (proj / "lake.txt").read_text() == "x\n"


# ------------------------------------------------------------------------------------------ full disk
def test_a_full_disk_fails_cleanly_and_keeps_the_previous_set(proj, monkeypatch):
    assert run().exit_code == 0
    before = snapshot(proj)
    real = pl.DataFrame.write_parquet
    calls = []

    def full(self, path, *a, **k):
        calls.append(path)
        if len(calls) >= 2:                       # the first part fits, the second does not
            Path(path).write_bytes(b"\0" * 1000)  # a partial file, as a real full disk leaves
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(self, path, *a, **k)

    monkeypatch.setattr(pl.DataFrame, "write_parquet", full)
    r = CliRunner().invoke(cli, ["run", "loop.toml", "--quiet", *SHORT, "--set", "strategy.loops=2", "--force"])
    assert r.exit_code == 1
    assert first_line(r).startswith(f"Error: results/{NAME}: disk full while writing the result set")
    assert "the previous result set is intact" in r.output and "Traceback" not in r.output
    assert snapshot(proj) == before                     # no work folder, no temp file, old set byte for byte


def test_a_full_disk_from_the_cli_has_no_traceback(proj):
    # the patched writer in a real subprocess: one message, exit 1
    code = textwrap.dedent("""
        import errno, sys, polars as pl
        def full(self, path, *a, **k):
            raise OSError(errno.ENOSPC, "No space left on device")
        pl.DataFrame.write_parquet = full
        from backtest.cli import main
        main(["run", "loop.toml", "--quiet", "--set", 'run.end="2024-06-03"', "--set", 'run.record="1d"'])
    """)
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=proj)
    assert p.returncode == 1
    assert p.stderr.startswith(f"Error: results/{NAME}: disk full") and "Traceback" not in p.stderr
    assert sorted(os.listdir(proj / "results")) == []


def test_a_disk_too_full_for_the_lock_file_leaves_nothing(tmp_path, monkeypatch):
    from backtest.errors import BacktestError

    def full(fd, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("backtest.store.os.write", full)
    with pytest.raises(BacktestError, match="disk full while writing the result set"):
        Store(tmp_path / "x", ["h"], force=False)
    assert os.listdir(tmp_path) == []


@pytest.fixture
def tmpfs(tmp_path):
    mnt = tmp_path / "small"
    mnt.mkdir()
    p = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mnt)], capture_output=True, text=True)
    if p.returncode != 0:
        pytest.skip(f"cannot mount a 2 MB tmpfs here: {p.stderr.strip() or p.returncode}")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_a_real_full_disk_keeps_the_previous_set_and_leaves_no_debris(proj, tmpfs):
    out = f'run.output="{tmpfs}"'
    r = run("--set", out)                                   # 2 days, daily samples: a few KB
    assert r.exit_code == 0, r.output
    before = snapshot(tmpfs)
    # a 3-month sweep sampled every block does not fit in 2 MB
    p = subprocess.run([sys.executable, "-m", "backtest.cli", "sweep", "loop.toml", "--quiet", "--force",
                        "--set", out, "--set", 'run.end="2024-09-01"', "--set", 'run.record="12s"',
                        "--grid", "strategy.loops=1..3"], capture_output=True, text=True, cwd=proj)
    assert p.returncode == 1, p.stderr
    assert "disk full while writing the result set" in p.stderr and "Traceback" not in p.stderr
    assert snapshot(tmpfs) == before                         # the old set byte for byte, nothing else
