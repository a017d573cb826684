"""kill -9 at random (seeded) moments of a run, a sweep and an import: the rerun gives the clean run's bytes,
and the lake is, byte for byte, either the lake before the import or the lake after it."""
from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from backtest.data import lake_write as _lake_write
from tests.helpers import snapshot

REPO = Path(__file__).resolve().parents[2]
SEEDS = (1, 2, 3)
VOLATILE = ("started", "finished", "wall_seconds", "timings", "resumed_configs", "computed_configs")

# loop.toml replays 16 months of real history from 2024-05-14: a few days from 2024-06-01 are enough here
RUN = ["run", "loop.toml", "--quiet", "--set", 'run.name="one"', "--set", 'run.start="2024-06-01"', "--set",
       'run.end="2024-06-04"']
# the reference engine replays in batches of 8: 12 configurations are two batches, each streamed to the work
# folder, so kills land before, between and after the batches and in the final renames
SWEEP = ["sweep", "loop.toml", "--quiet", "--engine", "reference", "--set", 'run.name="grid"',
         "--set", 'run.start="2024-06-01"', "--set", 'run.end="2024-06-01T12:00:00"', "--grid", "strategy.loops=1..3",
         "--grid", "strategy.target_ltv=0.6,0.7,0.8,0.85"]
SYMBOLS = ("stETH", "WETH", "rETH")


def cli(args, cwd: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "backtest.cli", *args], cwd=cwd,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def finish(args, cwd: Path) -> float:
    t0 = time.perf_counter()
    p = cli(args, cwd)
    _, err = p.communicate(timeout=120)
    assert p.returncode == 0, err
    return time.perf_counter() - t0


def finish_counting(args, cwd: Path) -> tuple[float, int]:
    """Run to the end; the seconds it took and how many os.replace calls it made."""
    count = cwd / "renames.txt"
    t0 = time.perf_counter()
    p = subprocess.run([sys.executable, "-c", AT_RENAME, "0", str(count), *args], cwd=cwd, capture_output=True,
                       text=True, timeout=120)
    took = time.perf_counter() - t0
    assert p.returncode == 0, p.stderr
    n = int(count.read_text())
    count.unlink()
    return took, n


def kill_at(args, cwd: Path, delay: float) -> bool:
    """Start the command, SIGKILL it after ``delay`` seconds; True when it was still running."""
    p = cli(args, cwd)
    time.sleep(delay)
    alive = p.poll() is None
    p.send_signal(signal.SIGKILL)
    p.communicate(timeout=120)
    return alive


# the command run with os.replace wrapped: the K-th rename kills the process with SIGKILL before it happens
# (K = 0: count the renames into COUNT_FILE), so every boundary between two renames is hit exactly
AT_RENAME = """
import atexit, os, signal, sys
k, count_file, real, n = int(sys.argv[1]), sys.argv[2], os.replace, [0]
def replace(*a, **kw):
    n[0] += 1
    if n[0] == k:
        os.kill(os.getpid(), signal.SIGKILL)
    return real(*a, **kw)
os.replace = replace
atexit.register(lambda: k or open(count_file, "w").write(str(n[0])))
from backtest.cli import main
main(sys.argv[3:])
"""


def kill_at_rename(args, cwd: Path, k: int) -> None:
    p = subprocess.run([sys.executable, "-c", AT_RENAME, str(k), "-", *args], cwd=cwd, capture_output=True,
                       text=True, timeout=120)
    assert p.returncode == -signal.SIGKILL, (k, p.stderr)


def result_set(folder: Path) -> dict[str, object]:
    """A result set's bytes, the manifest read without the fields that say when and how fast it ran."""
    files = snapshot(folder)
    m = json.loads((folder / "manifest.json").read_text())
    files["manifest.json"] = {k: v for k, v in m.items() if k not in VOLATILE}
    return files


@pytest.fixture
def proj(tmp_path):
    shutil.copytree(REPO / "data", tmp_path / "data")          # never write into the repo's lake
    shutil.copy(REPO / "examples" / "loop.toml", tmp_path / "loop.toml")
    return tmp_path


def _replay_killed(proj: Path, args: list[str], name: str, rerun_extra: list[str], at_renames: bool) -> None:
    clean_dir = proj / "clean"
    clean_dir.mkdir()
    shutil.copy(proj / "loop.toml", clean_dir / "loop.toml")
    os.symlink(proj / "data", clean_dir / "data")
    took, n = finish_counting(args, clean_dir)
    clean = result_set(clean_dir / "results" / name)
    rng = random.Random(f"{name}")
    killed = 0
    for seed in SEEDS:
        rng.seed(seed)
        killed += kill_at(args, proj, rng.uniform(0.15, 1.0) * took)
        finish(args + rerun_extra, proj)
        assert result_set(proj / "results" / name) == clean, f"seed {seed}"
        assert sorted(os.listdir(proj / "results")) == [name]       # no .work, .old-*, temp file or lock
    assert killed >= 1                  # at least one kill hit a running process (not only finished ones)
    if not at_renames:
        return
    # over the set now in place: killed before moving the old set aside, and between the two renames that
    # swap the sets (the last two renames of a run)
    for k in (n - 1, n):
        kill_at_rename(args, proj, k)
        assert os.path.exists(proj / "results" / name) or any(
            p.startswith(f".{name}.old-") for p in os.listdir(proj / "results"))   # the old set is never lost
        finish(args + rerun_extra, proj)
        assert result_set(proj / "results" / name) == clean, f"rename {k} of {n}"
        assert sorted(os.listdir(proj / "results")) == [name]


def test_kill_a_run_then_rerun_gives_the_clean_bytes(proj):
    _replay_killed(proj, RUN, "one", [], at_renames=True)


def test_kill_a_sweep_then_resume_gives_the_clean_bytes(proj):
    # (the rename points of a sweep are a run's: shown by the test above, skipped here for time)
    _replay_killed(proj, SWEEP, "grid", ["--resume"], at_renames=False)


def _csv(path: Path, sym: str, rows: int, bump: float) -> None:
    r = random.Random(sym)
    t, p = 1_600_000_000_000, 2000.0
    lines = ["symbol,timestamp,USD_price"]
    for _ in range(rows):
        t += 3_600_000
        p *= 1 + r.uniform(-1e-3, 1e-3)
        lines.append(f"{sym},{t},{p * bump!r}")
    path.write_text("\n".join(lines) + "\n")


def test_kill_an_import_leaves_the_old_lake_or_the_new_one(proj):
    # the old lake already holds a first version of the three files; the import merges a longer, revised one
    src = proj / "src"
    src.mkdir()
    files = [src / f"{s}_usd.csv" for s in SYMBOLS]
    for f, s in zip(files, SYMBOLS):
        _csv(f, s, 20_000, 1.0)
    first = ["data", "import", "coingecko", *map(str, files), "--into", "lake", "--quiet"]
    lake = proj / "lake"
    shutil.copytree(proj / "data", lake)
    finish(first, proj)
    for f, s in zip(files, SYMBOLS):
        _csv(f, s, 40_000, 1.01)                                # every old row revised, as many new
    old = snapshot(lake)
    spare = proj / "lake-old"
    shutil.copytree(lake, spare)
    took, n = finish_counting(first, proj)                      # the clean import: the new lake
    new = snapshot(lake)
    assert new != old
    rng = random.Random("import")
    killed = 0
    for seed in SEEDS:
        shutil.rmtree(lake)
        shutil.copytree(spare, lake)
        rng.seed(seed)
        killed += kill_at(first, proj, rng.uniform(0.15, 1.0) * took)
        _lake_write.recover(lake)                                     # what the next read or import does first
        assert snapshot(lake) in (old, new), f"seed {seed}: a lake that is neither the old nor the new one"
        finish(first, proj)
        assert snapshot(lake) == new, f"seed {seed}"
    assert killed >= 1
    # killed at each rename of the commit: the journal, then one per lake file
    assert n == 1 + len(SYMBOLS)
    for k in (1, 2, n):                  # the journal, the first file, the last file
        shutil.rmtree(lake)
        shutil.copytree(spare, lake)
        kill_at_rename(first, proj, k)
        _lake_write.recover(lake)
        assert snapshot(lake) == (old if k == 1 else new), f"rename {k}: before the journal old, after it new"
