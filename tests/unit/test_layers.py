"""The data layer imports nothing above it: no config module, no engine, no kernel (issue 10)."""
from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DATA = sorted(p for p in (ROOT / "backtest" / "data").rglob("*.py"))
ABOVE = ("backtest.config", "backtest.engine", "backtest.reference", "backtest.api", "backtest.sweep",
         "backtest.plan", "backtest._core", "backtest.cli")


def _module(path: Path) -> str:
    return ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")


def _above(name: str) -> bool:
    return any(name == a or name.startswith(a + ".") or name.startswith(a + "_") for a in ABOVE)


def test_no_data_module_loads_a_higher_layer_on_import():
    mods = [_module(p) for p in DATA]
    code = ("import importlib, json, sys\n"
            f"for m in {mods!r}: importlib.import_module(m)\n"
            "print(json.dumps(sorted(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    loaded = [m for m in json.loads(out.stdout) if _above(m)]
    assert loaded == [], f"importing backtest.data loads {loaded}"


def test_no_data_module_imports_a_higher_layer_anywhere_in_its_source():
    # also the imports inside functions, which a fresh interpreter does not run
    bad = []
    for path in DATA:
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            bad += [f"{path.relative_to(ROOT)}:{node.lineno} {n}" for n in names if _above(n)]
    assert bad == [], bad


def test_the_checks_would_catch_a_higher_import():
    assert _above("backtest.config_types") and _above("backtest.config") and _above("backtest.reference")
    assert _above("backtest._core") and not _above("backtest.params") and not _above("backtest.data.lake")
