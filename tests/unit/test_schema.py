"""The numpy dtypes of backtest/schema.py mirror the packed C structs of ext/_types.pxd."""
import pytest

from backtest import _core
from backtest.schema import (DERIVED_EVENT_KINDS, EVENT_DTYPE, EVENT_KINDS, KERNEL_EVENT_KINDS, PARAMS_DTYPE,
                             SUMMARY_DTYPE, N_RECORD, RECORD_FIELDS)


@pytest.mark.parametrize("name,dtype", [("Params", PARAMS_DTYPE), ("Summary", SUMMARY_DTYPE), ("Event", EVENT_DTYPE)])
def test_struct_sizes_match_dtypes(name, dtype):
    assert _core.struct_sizes()[name] == dtype.itemsize


def test_field_order_and_kinds_match_the_pxd():
    # the pxd declares the fields in the same order; the buffer protocol checks kinds at call time, and
    # this parses the header to check the names too
    from pathlib import Path

    text = (Path(__file__).parents[2] / "ext" / "_types.pxd").read_text()
    for struct, dtype in (("Params", PARAMS_DTYPE), ("Summary", SUMMARY_DTYPE), ("Event", EVENT_DTYPE)):
        body = text.split(f"ctypedef packed struct {struct}:")[1].split("\n\n")[0]
        fields = [line.split("#")[0].split()[-1] for line in body.strip().splitlines() if line.strip()]
        assert tuple(fields) == dtype.names, struct
        kinds = ["i" if line.split()[0] == "int64_t" else "f" for line in body.strip().splitlines() if line.strip()]
        assert kinds == [dtype[f].kind for f in dtype.names], struct


def test_event_enum_and_record_width_match():
    text = (__import__("pathlib").Path(__file__).parents[2] / "ext" / "_types.pxd").read_text()
    for name, code in KERNEL_EVENT_KINDS.items():
        assert f"EV_{name.upper()} = {code}" in text
    # the kinds derived in Python after the core (depeg_start / depeg_end) are no EV_ of the kernel, and their
    # codes follow the kernel's
    for name, code in DERIVED_EVENT_KINDS.items():
        assert f"EV_{name.upper()}" not in text and code not in KERNEL_EVENT_KINDS.values()
    assert EVENT_KINDS == {**KERNEL_EVENT_KINDS, **DERIVED_EVENT_KINDS}
    assert min(DERIVED_EVENT_KINDS.values()) == max(KERNEL_EVENT_KINDS.values()) + 1
    assert f"N_RECORD = {N_RECORD}" in text and len(RECORD_FIELDS) == N_RECORD


# --- one source of truth per enum ---------------------------------------------------------------------------
def test_every_enum_matches_the_kernel():
    from backtest.schema import KERNEL_ENUMS

    kernel = _core.enum_codes()
    assert kernel.pop("n_record") == N_RECORD
    assert set(kernel) == set(KERNEL_ENUMS)
    for name, codes in KERNEL_ENUMS.items():
        assert kernel[name] == codes, name
        assert sorted(codes.values()) == list(range(len(codes))), name      # dense codes from 0


def test_the_engine_takes_its_codes_from_the_schema():
    from backtest import engine, schema

    assert engine.ORACLE_CODES is schema.ORACLE_CODES
    assert schema.ORACLES == tuple(schema.ORACLE_CODES)


def test_the_config_domains_equal_the_schema_enums():
    # backtest/config.py still spells its value domains out; until it imports them, they must be the schema's
    from backtest import config, schema

    assert config.PROTOCOLS == tuple(schema.PROTOCOLS)
    assert config.ORACLES == schema.ORACLES
    assert config.STRATEGY_KINDS == tuple(schema.STRATEGIES)
    assert config.ENTRIES == tuple(schema.ENTRIES)
    assert config.SLIPPAGE_MODELS == tuple(schema.SLIPPAGE)
    assert config.EXIT_ROUTES == tuple(schema.EXIT_ROUTES)


# --- the .pyi stub of the compiled module -------------------------------------------------------------------
def _defs(text: str) -> list[str]:
    import re

    return sorted(re.findall(r"^def (\w+)\(", text, flags=re.M))


def test_the_stub_declares_every_def_of_the_core():
    import re
    from pathlib import Path

    root = Path(__file__).parents[2]
    # the module's source: _core.pyx and the files it includes (ext/_legs.pxi)
    src = (root / "ext" / "_core.pyx").read_text()
    for inc in re.findall(r'^include "([^"]+)"', src, flags=re.M):
        src += (root / "ext" / inc).read_text()
    pyx = _defs(src)
    pyi = _defs((root / "backtest" / "_core.pyi").read_text())
    assert pyi == pyx
    public = sorted(n for n in dir(_core) if not n.startswith("_") and callable(getattr(_core, n))
                    and getattr(getattr(_core, n), "__module__", None) == _core.__name__)
    assert public == pyx


def test_the_stub_parameters_match_the_core():
    # Cython keeps each def's argument names in its code object: the stub must name the same, in order
    import ast
    from pathlib import Path

    tree = ast.parse((Path(__file__).parents[2] / "backtest" / "_core.pyi").read_text())
    for node in tree.body:
        if isinstance(node, ast.FunctionDef):
            want = [a.arg for a in node.args.args]
            code = getattr(_core, node.name).__code__
            assert list(code.co_varnames[: code.co_argcount]) == want, node.name
