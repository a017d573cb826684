"""A lake's provenance (``<lake>/provenance.json``, written by scripts/build_lake.py): where each file came from
and what is assumed in it. :func:`for_files` picks the entries of the files a run read, for its manifest, so a
result set says which of its series are synthetic or assumed (held constant, filled, cut), never silently."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Iterable

from backtest.errors import DataError

FILE = "provenance.json"


def load(lake: str | os.PathLike) -> dict[str, Any] | None:
    """The lake's provenance, or None when it has none (a lake a user imported); DataError when unreadable."""
    path = Path(lake) / FILE
    if not path.is_file():
        return None
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: not a readable provenance file ({exc})") from exc
    if not isinstance(doc, dict) or not isinstance(doc.get("files"), dict) or not isinstance(doc.get("steps"), list):
        raise DataError(f"{path}: not a lake provenance file (needs 'files' and 'steps')")
    return doc


def for_files(lake: str | os.PathLike, files: Iterable[str]) -> dict[str, Any] | None:
    """For the manifest: per lake file read (relative path) its step, source and flags, then the assumptions
    of those files (each once, in step order) and the synthetic files among them. None without provenance."""
    doc = load(lake)
    if doc is None:
        return None
    steps = {s["step"]: s for s in doc["steps"]}
    read = sorted(set(files))
    out_files, assumptions, unknown = {}, [], []
    for rel in read:
        entry = doc["files"].get(rel)
        if entry is None:
            unknown.append(rel)            # added to the lake after it was built: no provenance
            continue
        st = steps.get(entry["step"], {})
        out_files[rel] = {"step": entry["step"], "importer": st.get("importer"), "inputs": st.get("inputs", []),
                          "synthetic": bool(entry.get("synthetic")), "assumed": bool(entry.get("assumed"))}
        for a in st.get("assumptions", []):
            if a not in assumptions:
                assumptions.append(a)
    return {"file": FILE, "built_by": doc.get("built_by"), "files": out_files, "assumptions": assumptions,
            "synthetic": sorted(r for r, e in out_files.items() if e["synthetic"]),
            "assumed": sorted(r for r, e in out_files.items() if e["assumed"]),
            "without_provenance": unknown}
