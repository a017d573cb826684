"""The numpy dtypes of backtest/schema.py mirror the packed C structs of ext/_types.pxd."""
import pytest

from backtest import _core
from backtest.schema import EVENT_DTYPE, EVENT_KINDS, PARAMS_DTYPE, SUMMARY_DTYPE, N_RECORD, RECORD_FIELDS


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
    for name, code in EVENT_KINDS.items():
        assert f"EV_{name.upper()} = {code}" in text
    assert f"N_RECORD = {N_RECORD}" in text and len(RECORD_FIELDS) == N_RECORD
