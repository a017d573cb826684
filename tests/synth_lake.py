"""The synthetic lake the tests and the pins replay on: what data/ held until the bundled lake became real
history (issue 11), rebuilt with ``backtest data synth calm|steth-depeg|rate-spike --into DIR`` once per test
process. :func:`synth_lake` checks that every file it wrote has the bytes the bundled files had
(tests/golden/synth_lake.json), so the cases pinned on the old bundled lake replay the same data."""
from __future__ import annotations

import atexit
import hashlib
import json
import shutil
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
HASHES = REPO / "tests" / "golden" / "synth_lake.json"
SCENARIOS = ("calm", "steth-depeg", "rate-spike")
_built: list[Path] = []


def file_hashes(lake: Path) -> dict[str, str]:
    return {p.relative_to(lake).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(lake.rglob("*.parquet"))}


def build(into: Path) -> Path:
    """Write the three scenarios into ``into`` with the CLI command a user runs."""
    from click.testing import CliRunner

    from backtest.cli import cli
    for name in SCENARIOS:
        r = CliRunner().invoke(cli, ["data", "synth", name, "--into", str(into)])
        if r.exit_code != 0:
            raise RuntimeError(f"backtest data synth {name} failed: {r.output}")
    return into


def synth_lake() -> Path:
    """The synthetic lake (built on first use, removed at exit); AssertionError if its bytes differ from the
    lake that was bundled."""
    if not _built:
        d = Path(tempfile.mkdtemp(prefix="synth-lake-"))
        atexit.register(shutil.rmtree, d, True)
        build(d)
        want = json.loads(HASHES.read_text())["files"]
        got = file_hashes(d)
        assert got == want, f"the synthetic lake differs from the one bundled before issue 11: " \
                            f"{sorted(k for k in set(got) | set(want) if got.get(k) != want.get(k))}"
        _built.append(d)
    return _built[0]
