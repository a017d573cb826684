"""Nightly-style hunt: run the differential tests again and again, each run with a fresh random seed.

    python scripts/hunt.py --runs 50 [--tests tests/unit/test_differential.py ...] [--stop-on-failure]

By default every differential file (tests/unit/test_differential*.py).

Each run is ``pytest --hypothesis-profile=hunt --hypothesis-seed=SEED`` (tests/conftest.py: fresh draws, no
example database), so runs are independent and any failure reproduces with the printed command. A failing run
prints hypothesis' falsifying example (its ``seed`` argument builds the market) and the reproduction blob.
Exit code 0 when every run passed, 1 otherwise.
"""
from __future__ import annotations

import argparse
import random
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TESTS = sorted(str(f.relative_to(ROOT)) for f in (ROOT / "tests" / "unit").glob("test_differential*.py"))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=50, help="runs, each with a fresh random seed (default 50)")
    ap.add_argument("--tests", nargs="+", default=TESTS, help="test files (default: the differential tests)")
    ap.add_argument("--stop-on-failure", action="store_true", help="stop at the first failing run")
    args = ap.parse_args(argv)
    if args.runs < 1:
        ap.error("--runs must be at least 1")
    draw = random.SystemRandom()
    failed: list[int] = []
    t0 = time.time()
    for k in range(1, args.runs + 1):
        seed = draw.randrange(2**32)
        cmd = [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", "-o", "addopts=",
               "--hypothesis-profile=hunt",
               f"--hypothesis-seed={seed}", *args.tests]
        t = time.time()
        res = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
        status = "ok" if res.returncode == 0 else "FAILED"
        print(f"run {k}/{args.runs} seed {seed}: {status} ({time.time() - t:.0f} s)", flush=True)
        if res.returncode != 0:
            failed.append(seed)
            print(res.stdout[-8000:], res.stderr[-2000:], sep="\n")
            print("reproduce: " + " ".join(cmd[1:] if cmd[0] == sys.executable else cmd), flush=True)
            if args.stop_on_failure:
                break
    done = k
    print(f"{done - len(failed)} of {done} runs passed in {time.time() - t0:.0f} s"
          + (f"; failing seeds: {', '.join(map(str, failed))}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
