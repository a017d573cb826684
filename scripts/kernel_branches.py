"""Which branches of the Cython kernel does the differential test reach?

In a throw-away copy of the tracked files (never in this checkout) the extension is built with gcc branch
coverage (-O0 --coverage), tests/unit/test_differential.py runs there (with --rules, the rule tests too;
hypothesis seeded, so the same draws each time), and gcov's per-line branch counts on the generated ext/_core.c
are mapped back to the .pxd / .pyx lines through the `/* "_aave.pxd":42` markers Cython writes before the C
code of each source line. Printed: per kernel file, branch outcomes reached / total, then every conditional source line (if / elif / while / ternary / and-or)
whose C branches were not all taken (never reached, or only one way).

Only the cdef functions count (the nogil kernels, C names __pyx_f_*): the def wrappers of _core.pyx only check
their arguments with the GIL, and Python-API error branches (`unlikely(...)`, `__PYX_ERR`, `__Pyx_*`) are left
out wherever they are.

    python scripts/kernel_branches.py [--rules] [--keep]
"""
from __future__ import annotations

import argparse
import gzip
import json
import re
import subprocess
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import mutate  # noqa: E402  (make_copy, env_for, rule_tests: one way to make and use a copy)

MARKER = re.compile(r'^\s*/\* "([^"]+)":(\d+)\s*$')
C_FUNC = re.compile(r"^static [^;]*?\b(__pyx_\w+)\(.*[^;]\s*$")   # a C function definition at column 0
NOISE = re.compile(r"unlikely|__PYX_ERR|_error\b|__Pyx_|\bPy[A-Z_]|__pyx_memoryview|__pyx_mstate")
CONDITIONAL = re.compile(r"^(if|elif|while)\b|\bif\b.*\belse\b|^(and|or)\b|\b(and|or)$")


def kernel_files(copy: Path) -> set[str]:
    return {p.name for p in (copy / "ext").glob("*.pxd")} | {"_core.pyx"}


def patch_setup(copy: Path) -> None:
    # make_copy already turned -O3 into -O0; add gcc's coverage instrumentation (atomic: prange threads)
    setup = copy / "setup.py"
    text = setup.read_text()
    for old, new in (('"-O0"', '"-O0", "--coverage", "-fprofile-update=atomic"'),
                     ('extra_link_args=["-fopenmp"]', 'extra_link_args=["-fopenmp", "--coverage"]')):
        if text.count(old) != 1:
            sys.exit(f"kernel_branches: setup.py no longer has {old} exactly once: update this script")
        text = text.replace(old, new)
    setup.write_text(text)


def c_line_owners(c_file: Path, kernels: set[str]) -> dict[int, tuple[str, int]]:
    """C line number -> (kernel file, source line) for the C code following each Cython marker."""
    owners: dict[int, tuple[str, int]] = {}
    cur = None
    in_cdef = False
    for i, line in enumerate(c_file.read_text().splitlines(), start=1):
        f = C_FUNC.match(line)
        if f:
            # only cdef functions (__pyx_f_*: the nogil kernels); def wrappers check arguments with the GIL
            in_cdef = f.group(1).startswith("__pyx_f_")
            cur = None
            continue
        m = MARKER.match(line)
        if m and not in_cdef:
            cur = None
            continue
        if m:
            name = Path(m.group(1)).name
            cur = (name, int(m.group(2))) if name in kernels else None
            continue
        if cur is not None and not NOISE.search(line):
            owners[i] = cur
    return owners


def gcov_lines(copy: Path) -> dict[int, list[int]]:
    """C line number -> branch outcome counts, from gcov's JSON for ext/_core.c."""
    gcda = list(copy.glob("build/**/_core.gcda"))
    if not gcda:
        sys.exit("kernel_branches: no .gcda written: did the tests import the copy's extension?")
    subprocess.run(["gcov", "--json-format", "--branch-counts", "--branch-probabilities", "-o", str(gcda[0].parent),
                    "ext/_core.c"], cwd=copy, check=True, capture_output=True)
    js = sorted(copy.glob("_core*.gcov.json.gz"))     # gcc 12 names it _core.gcov.json.gz, others _core.c.gcov...
    if not js:
        sys.exit("kernel_branches: gcov wrote no JSON report")
    data = json.loads(gzip.decompress(js[0].read_bytes()))
    out: dict[int, list[int]] = {}
    for f in data["files"]:
        if f["file"].endswith("_core.c"):
            for ln in f["lines"]:
                if ln.get("branches"):
                    out.setdefault(ln["line_number"], []).extend(b["count"] for b in ln["branches"])
    return out


def report(copy: Path, owners, counts) -> str:
    per_src: dict[tuple[str, int], list[int]] = defaultdict(list)
    for cline, outcomes in counts.items():
        if cline in owners:
            per_src[owners[cline]].extend(outcomes)
    src_text = {name: (copy / "ext" / name).read_text().splitlines() for name in {k[0] for k in per_src}}
    lines = [f"{'kernel file':18} {'branches reached / total':>26}"]
    tot_r = tot_n = 0
    for name in sorted({k[0] for k in per_src}):
        outs = [c for (f, _), v in per_src.items() if f == name for c in v]
        r = sum(c > 0 for c in outs)
        tot_r, tot_n = tot_r + r, tot_n + len(outs)
        lines.append(f"{name:18} {r:>13} / {len(outs):<6} {100.0 * r / len(outs):5.1f} %")
    lines.append(f"{'all kernel files':18} {tot_r:>13} / {tot_n:<6} {100.0 * tot_r / max(tot_n, 1):5.1f} %")
    lines.append("\nconditional lines not taken both ways (outcomes taken / total; 0 = never reached):")
    for (name, ln), outs in sorted(per_src.items()):
        text = src_text[name][ln - 1].strip() if ln <= len(src_text[name]) else ""
        code = text.split("#")[0].strip()
        if CONDITIONAL.search(code) and min(outs) == 0:
            lines.append(f"  {name}:{ln:<4} {sum(c > 0 for c in outs)}/{len(outs)}  {code[:90]}")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rules", action="store_true", help="also run the rule tests, not only the differential one")
    ap.add_argument("--keep", action="store_true", help="keep the copy (its path is printed)")
    a = ap.parse_args(argv)
    tmp = tempfile.mkdtemp(prefix="kernel-branches-")
    copy = Path(tmp)
    mutate.make_copy(copy)
    patch_setup(copy)
    ok, out = mutate.build(copy)
    if not ok:
        sys.exit(f"kernel_branches: the instrumented copy does not build:\n{out}")
    mutate.check_import(copy)
    tests = mutate.rule_tests(copy, ()) if a.rules else ["tests/unit/test_differential.py"]
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-o", "addopts=", "--hypothesis-seed=0", *tests],
                       cwd=copy, env=mutate.env_for(copy), capture_output=True, text=True)
    print(f"tests: {' '.join(t.split('/')[-1] for t in tests)}: {r.stdout.strip().splitlines()[-1]}")
    print(report(copy, c_line_owners(copy / "ext" / "_core.c", kernel_files(copy)), gcov_lines(copy)))
    if a.keep:
        print(f"copy kept in {copy}")
    else:
        subprocess.run(["rm", "-rf", str(copy)], check=False)
    return 0 if r.returncode == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
