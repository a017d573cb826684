"""Rewrite tests/golden/outputs.json: what every pinned case (tests/pins.py) gives with the engine as it is.

Run it only on purpose, before a redesign that must keep every result (issue 10); the pin test
(tests/integration/test_pinned_outputs.py) then fails on any change of a pinned column.

    python scripts/pin_outputs.py [--only NAME ...]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests import pins  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", nargs="*", help="case names to re-pin (the others are kept)")
    a = ap.parse_args(argv)
    golden = pins.load_golden() if pins.GOLDEN.exists() else {}
    with tempfile.TemporaryDirectory(prefix="pins-") as tmp:
        for name, path, ov, grid in pins.cases(Path(tmp)):
            if a.only and name not in a.only:
                continue
            t = time.perf_counter()
            golden[name] = pins.run_case(path, ov, grid, Path(tmp) / "out", name)
            print(f"{name:40} {golden[name]['summary']['rows']:4} configs  {time.perf_counter() - t:6.1f} s")
    pins.write_golden(golden)
    print(f"wrote {pins.GOLDEN.relative_to(pins.REPO)} ({len(golden)} cases)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
