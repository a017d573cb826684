"""Build an episode's lake the way its example says: run the `backtest data ...` commands written in the example's
header comment (lines ``#   backtest data ...``) against the SYNTHETIC recorded node of
tests/fixtures/episodes/<episode>/ (tests/rpc_node.py, on 127.0.0.1) and its Dune CSVs."""
from __future__ import annotations

import shlex
from pathlib import Path

from click.testing import CliRunner

from backtest.cli import cli
from tests.rpc_node import RecordedNode

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples" / "episodes"
FIXTURES = REPO / "tests" / "fixtures" / "episodes"


def commands(example: str) -> list[list[str]]:
    """The ``backtest data ...`` commands in the header of ``examples/episodes/<example>.toml``."""
    out = []
    for line in (EXAMPLES / f"{example}.toml").read_text().splitlines():
        text = line.lstrip("#").strip()
        if line.startswith("#") and text.startswith("backtest data "):
            out.append(shlex.split(text)[1:])
    return out


def build_lake(example: str, fixture: str, lake: Path, monkeypatch) -> RecordedNode:
    """Run every data command of ``example`` into ``lake``; returns the node (closed by the caller)."""
    node = RecordedNode.from_file(FIXTURES / fixture / "node.json.gz")
    monkeypatch.setenv("ETH_RPC_URL", node.url)
    for args in commands(example):
        args = [str(lake) if a == "LAKE" else a for a in args]
        if args[:2] == ["data", "import"]:
            args = [str(FIXTURES / fixture / a) if a.endswith(".csv") else a for a in args]
        r = CliRunner().invoke(cli, args)
        if r.exit_code != 0:
            node.close()
            raise AssertionError(f"{' '.join(args)} -> exit {r.exit_code}: {r.output}")
    return node
