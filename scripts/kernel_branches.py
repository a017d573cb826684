"""Which branches of the Cython kernel does the differential test reach?

In a throw-away copy of the tracked files (never in this checkout) the extension is built with gcc branch
coverage (-O0 --coverage), every differential file (tests/unit/test_differential*.py) and the paths kernel's
core-against-reference tests (MORE_DIFFERENTIAL) run there under the fixed CI seed (CI=true: hypothesis' "ci"
profile, derandomized, so the same draws each time; with --rules the rule tests too), and gcov's per-line branch
counts on the generated ext/_core.c are mapped back to the source lines through the `/* "_aave.pxd":42` markers
Cython writes before the C code of each source line. Every source compiled into the core counts: the .pxd
headers (named by their cimport path, "_aave.pxd", "venues/_aave_v4.pxd"), _core.pyx and the .pxi files it
includes ("ext/_book.pxi", "ext/_legs.pxi", ...: named by their path from the build), all reported as paths
under ext/. Printed: per kernel file, branch outcomes reached / total; the allow-list of branches unreachable
by construction (UNREACHABLE, each with its reason); every other source line with a C branch outcome never
taken. Exit code 1 when the tests fail, when a branch off the list is not taken both ways, or when a listed one
is taken (its reason is then wrong): "every reachable kernel branch is reached" is what exit code 0 says.

Only the cdef functions count (the nogil kernels, C names __pyx_f_*): the def wrappers only check their
arguments with the GIL, and Python-API error branches (`unlikely(...)`, `__PYX_ERR`, `__Pyx_*`) and gcc's own
test at an OpenMP region (`#pragma omp`) are left out wherever they are.

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
# not the source's branches: Python-API error paths, and gcc's own test in an OpenMP region (`#pragma omp`)
NOISE = re.compile(r"unlikely|__PYX_ERR|_error\b|__Pyx_|\bPy[A-Z_]|__pyx_memoryview|__pyx_mstate|^\s*#pragma omp")


def kernel_files(copy: Path) -> set[str]:
    """Every source compiled into the core, as paths under ext/: the .pxd headers (venues/ too), the .pxi files
    _core.pyx includes, and _core.pyx (not _venue_probe.pyx: another extension, not instrumented)."""
    ext = copy / "ext"
    return ({p.relative_to(ext).as_posix() for p in ext.rglob("*.pxd")}
            | {p.relative_to(ext).as_posix() for p in ext.glob("*.pxi")} | {"_core.pyx"})


def source_name(marker: str) -> str:
    # Cython names a .pxd by its cimport path ("_aave.pxd", "venues/_aave_v4.pxd") and the .pyx and the files it
    # includes by their path from the build ("ext/_core.pyx", "ext/_book.pxi"): both become paths under ext/
    return marker[len("ext/"):] if marker.startswith("ext/") else marker


# Core-against-reference tests outside the test_differential* files: the paths kernel (ext/_paths.pxi) is
# compared with the reference engine's path replay there (paths in turn and in parallel)
MORE_DIFFERENTIAL = ["tests/unit/test_paths.py::test_paths_core_equals_reference",
                     "tests/unit/test_paths.py::test_two_paths_identity_and_a_one_day_dip",
                     "tests/unit/test_montecarlo.py::test_two_bootstrapped_paths_core_equals_reference",
                     "tests/unit/test_montecarlo.py::test_borrow_rate_paths_core_equals_reference",
                     "tests/unit/test_montecarlo.py::test_paths_in_parallel_equal_paths_in_turn",
                     "tests/unit/test_montecarlo.py::test_paths_in_parallel_restaking_hold_no_records_core_equals_reference"]


def patch_setup(copy: Path) -> None:
    # make_copy already turned -O3 into -O0; add gcc's coverage instrumentation (atomic: prange threads)
    setup = copy / "setup.py"
    text = setup.read_text()
    # the core's flags only ("-O0", "-fopenmp"): the venue probe extension is not instrumented
    for old, new in (('"-O0", "-fopenmp"', '"-O0", "--coverage", "-fprofile-update=atomic", "-fopenmp"'),
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
            name = source_name(m.group(1))
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


# Branches no input can take, reviewed one by one: (kernel file under ext/, the source line's code, outcomes
# never taken on each line with that code, why). Keyed by the code, not the line number, so an edit elsewhere in
# the file does not move them; where the same code is on several lines, by the line before and the line
# ("\n"-joined). The script fails when one of them IS taken (the reason is wrong: take it out) or when any
# other outcome is not.
UNREACHABLE = [
    ("_position.pxd", "elif debt < old:", 1,
     "set_premium_debt with debt == old: every caller changes a premium debt by more than the dust (a loop borrow, "
     "releverage or flash loan > dust, a deleverage repay > dust; dust = 1e-12 x capital, far above half an ulp of "
     "the debt), the opening buy at zero debt takes `debt <= st.dust`, and v4 liquidations do not call it"),
    ("_position.pxd", "if st.rp == 0.0 and st.ps == 0.0 and st.po == 0.0:", 1,
     "st.ps != 0 with st.rp == 0: st.rp is set once, from Params (0 for every venue but a v4 Spoke with collateral "
     "risk 0), and premium shares are only ever written as drawn shares x the risk premium (0 x d = 0) or 0"),
    ("_quiet.pxd", "if b <= k < e:", 1,
     "quiet_end: rp is the first record not yet written and the quiet loop stops at every record (e = k), so the "
     "full body has written every record before b: k >= b always (the test is k < e)"),
    ("_math.pxd", "if dt <= 0:", 1,
     "aave_borrow/supply_growth, morpho_borrow_growth, linear_growth: dt = ts[b] - ts[b-1] > 0, the block clock "
     "is start + k x block_time with block_time > 0 (data/align.py block_clock)"),
    ("_math.pxd", "if dx <= 0:", 1,
     "stableswap_out's one caller, slippage_fraction, has already returned for notional <= 0"),
    ("_math.pxd", "if notional <= 0 or model == 0:", 1,
     "notional = amount x (1 - swap fee) or tokens x price x (1 - swap fee): the quotes return first for an "
     "amount <= 0, the fee is < 1 (config) and prices are > 0 (data/check.py)"),
    ("_position.pxd", "if amount <= 0:", 1,
     "buy_quote is called with the capital (> 0, config), capital + flash loan, a loop borrow or releverage "
     "loan above the dust, or 1.0"),
    ("_aave.pxd", "repay = min(repay, min(r1, r2))", 1,
     "the leftover clause holds only when repay > r1 ((debt - repay) usd < $1,000) or repay > r2 (the "
     "collateral clause rearranged), so min(r1, r2) < repay: the outer min never keeps repay (barring a tie "
     "to the last ulp)"),
    ("_morpho.pxd", "if debt <= st.dust or coll <= st.dust:", 2,
     "liquidate is called only with d > 0 (_core.pyx replay_one); set_balances stores a balance at or below "
     "the dust as 0 and the indices never fall (rates >= 0), so d > 0 means debt > dust and s > 0 coll > dust"),
    ("_comet.pxd", "if debt <= st.dust or coll <= st.dust:", 2, "as for Morpho: d > 0 and s > 0 exceed the dust"),
    ("_morpho.pxd", "if not hf_of(st, m, b) < 1.0:", 1,
     "one call per block, made only when r x a[b] < 1, and hf_of is the same product (settle moves no balance)"),
    ("_comet.pxd", "if not hf_of(st, m, b) < 1.0:", 1, "as for Morpho: called only when r x a[b] < 1"),
    ("_core.pyx", "if j > b:", 1, "the CAPO snapshot index j only advances while j < b"),
    ("_core.pyx", "if (p.reb_on and not st.closed and m.ts[hi - 1] >= st.next_check", 1,
     "inside `if st.d > 0`: closing a position sets d = 0, so a closed position has no debt"),
    ("_core.pyx", "and (p.kind == KIND_LOOP or p.kind == KIND_FLASH)):", 1,
     "inside `if st.d > 0`: only a loop or a flash loan borrows (the kind is neither: never with debt)"),
    ("_strategies.pxd", "if st.d > 0 and (p.kind == KIND_LOOP or p.kind == KIND_FLASH):", 1,
     "only a loop or a flash loan borrows, so d > 0 with another kind never happens"),
    # the multi-collateral kernel (ext/_legs.pxi, ext/_legs_replay.pxi): the one-collateral reasons, per leg
    ("_legs.pxi", "if debt <= st.dust or l_empty(st, m, b) or not l_hf(st, m, b) < 1.0:", 3,
     "l_absorb is called only inside the replay's `if st.d > 0` when hf_r = sum r_i a_i[b] < 1, the same sum in "
     "the same order as l_hf (l_settle moves no balance); l_set_debt / l_set_coll store a balance at or below "
     "the dust as 0 and the indices never fall, so d > 0 is a debt above the dust; and no path leaves debt "
     "without collateral (a seizure of the last collateral writes the rest off, an absorb takes the debt, every "
     "sale but the close-everything sells a fraction phi < 1 of each leg, and that close repays the debt)"),
    ("_legs.pxi", "repay = min(repay, min(r1, r2))", 1,
     "as in _aave.pxd: the leftover clause holds only when repay > r1 or repay > r2, so the outer min never "
     "keeps repay (barring a tie to the last ulp)"),
    ("_legs.pxi", "elif p.protocol != PROTO_MORPHO:", 1,
     "Morpho Blue has one collateral: run_legs (_legs_replay.pxi) raises for it before any replay"),
    ("_legs.pxi", "if st.d > 0 and (p.kind == KIND_LOOP or p.kind == KIND_FLASH):", 1,
     "as in _strategies.pxd: only a loop or a flash loan borrows, so d > 0 with another kind never happens"),
    ("_legs_replay.pxi", "if (p.reb_on and not st.closed and m.ts[hi - 1] >= st.next_check", 1,
     "as in _core.pyx: inside `if st.d > 0`, and closing a position sets d = 0"),
    ("_legs_replay.pxi", "and (p.kind == KIND_LOOP or p.kind == KIND_FLASH)):", 1,
     "as in _core.pyx: inside `if st.d > 0`, and only a loop or a flash loan borrows"),
    # Aave v4 (ext/venues/_aave_v4.pxd): the core's one caller of the Spoke's functions, aave_v4_liquidate,
    # offers the whole debt (INFINITY), has no other collateral (False) and a debt above the dust; the other
    # callers are ext/_venue_probe.pyx's, another extension, not counted here
    ("venues/_aave_v4.pxd", "if debt <= 0.0:", 1,
     "v4_health_factor's one caller in the core passes owed > st.dust > 0 (aave_v4_liquidate returns first "
     "otherwise)"),
    ("venues/_aave_v4.pxd", "if not hf < 1.0 or coll <= 0.0 or debt <= 0.0 or offered <= 0.0:", 4,
     "aave_v4_liquidate returns first unless coll > st.dust and owed > st.dust, and offers INFINITY; it runs "
     "only when the engine's HF (s / (debt_of / bidx)) x a[b] < 1, and its own hf is the same ratio of the "
     "same factors in another order: >= 1 only for an HF within a few ulps of 1"),
    ("venues/_aave_v4.pxd", "repaid = debt if debt < offered else offered", 1,
     "the core offers INFINITY: the repay starts at the debt"),
    ("venues/_aave_v4.pxd", "if offered < repaid:", 1, "the core offers INFINITY (no MustNotLeaveDust revert)"),
    ("venues/_aave_v4.pxd", "if out.coll_after == 0.0 and not other_collateral and out.debt_after > 0.0:", 1,
     "the core has one collateral: other_collateral is False"),
    ("venues/_aave_v4.pxd", "if owed <= st.dust or coll <= st.dust:", 2,
     "as for Morpho: aave_v4_liquidate runs only with d > 0 (the replay's `if st.d > 0`), set_balances stores "
     "a balance at or below the dust as 0 and the indices never fall, so the debt is above the dust; and a "
     "liquidation that takes all the collateral writes the debt left off, so d > 0 comes with s > 0"),
    ("venues/_aave_v4.pxd", "if not v4_liquidation_amounts(coll, owed, pc * usd, usd,", 1,
     "v4_liquidation_amounts returns False only on its first test (hf >= 1, or no collateral, debt or offer: "
     "see that line) or on `offered < repaid` (the core offers INFINITY)"),
    ("_book.pxi", "_book_event(ev, ecap, &ne, b, EV_REBALANCE, old, f, f * fee + g,\n"
     "coll * o * lt[b] / debt if debt > 0 else INFINITY)", 1,
     "the vault's buy leaves debt > 0: it borrows f > 0 (ltv < x - band means x coll o > debt, the denominator "
     "is > 0 by its test) onto a debt >= 0 (liquidations repay at most the debt, a sale's excess goes to cash)"),
    ("_book.pxi", "if pend > 0 and (ts[b] - last_sale >= sell_every or (dep > 0 and ts[b] - ts[0] >= exit_after)):",
     1, "the farm's dep > 0 is false with pend > 0: rewards accrue only while dep > 0, and the exit block sells "
     "them first (the exit test is in the sale's condition), so after the exit pend stays 0"),
]


def report(copy: Path, owners, counts) -> tuple[str, list[str]]:
    """The table, the allow-listed lines, the lines with outcomes never taken; and the problems (a reachable
    outcome not taken, an allow-listed one taken, an allow-list entry that matches no line)."""
    per_src: dict[tuple[str, int], list[int]] = defaultdict(list)
    for cline, outcomes in counts.items():
        if cline in owners:
            per_src[owners[cline]].extend(outcomes)
    src_text = {name: (copy / "ext" / name).read_text().splitlines() for name in {k[0] for k in per_src}}
    lines = [f"{'kernel file':22} {'branches reached / total':>26}"]
    tot_r = tot_n = 0
    for name in sorted({k[0] for k in per_src}):
        outs = [c for (f, _), v in per_src.items() if f == name for c in v]
        r = sum(c > 0 for c in outs)
        tot_r, tot_n = tot_r + r, tot_n + len(outs)
        lines.append(f"{name:22} {r:>13} / {len(outs):<6} {100.0 * r / len(outs):5.1f} %")
    lines.append(f"{'all kernel files':22} {tot_r:>13} / {tot_n:<6} {100.0 * tot_r / max(tot_n, 1):5.1f} %")
    allowed = {(f, code): (k, why) for f, code, k, why in UNREACHABLE}
    used: set = set()
    listed, missed, problems = [], [], []
    for (name, ln), outs in sorted(per_src.items()):
        src = src_text[name]
        code = (src[ln - 1] if ln <= len(src) else "").split("#")[0].strip()
        two = (src[ln - 2].split("#")[0].strip() + "\n" + code) if 2 <= ln <= len(src) else code
        never = sum(c == 0 for c in outs)
        key = (name, two) if (name, two) in allowed else (name, code)
        entry = allowed.get(key)
        if entry is not None:
            used.add(key)
            k, why = entry
            listed.append(f"  {name}:{ln:<4} {never}/{len(outs)} never  {code[:80]}\n      {why}")
            if never != k:
                problems.append(f"{name}:{ln} {code!r}: {never} outcome(s) never taken, the allow-list says {k}"
                                + (" (it IS reached: take it off the list)" if never < k else ""))
        elif never:
            missed.append(f"  {name}:{ln:<4} {never}/{len(outs)} never  {code[:90]}")
            problems.append(f"{name}:{ln} {code!r}: {never} outcome(s) never taken and not allow-listed")
    for f, code, k, _ in UNREACHABLE:
        if (f, code) not in used:
            problems.append(f"allow-list entry {f} {code!r} matches no kernel line: update the list")
    lines.append(f"\nunreachable by construction (allow-list, {len(UNREACHABLE)} entries; outcomes never taken / "
                 "total):")
    lines += listed or ["  (none)"]
    lines.append("\nreachable outcomes never taken (outcomes never taken / total):")
    lines += missed or ["  none: every reachable kernel branch was taken both ways"]
    return "\n".join(lines), problems


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
    diff = sorted(f"tests/unit/{p.name}" for p in (copy / "tests" / "unit").glob("test_differential*.py"))
    diff += MORE_DIFFERENTIAL
    tests = mutate.rule_tests(copy, ()) if a.rules else diff
    env = dict(mutate.env_for(copy), CI="true")         # the "ci" profile: the fixed, derandomized draws
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-o", "addopts=", *tests],
                       cwd=copy, env=env, capture_output=True, text=True)
    print(f"tests: {' '.join(t.split('/')[-1] for t in tests)}: {r.stdout.strip().splitlines()[-1]}")
    text, problems = report(copy, c_line_owners(copy / "ext" / "_core.c", kernel_files(copy)), gcov_lines(copy))
    print(text)
    if r.returncode != 0:
        problems.insert(0, "the tests failed:\n" + "\n".join((r.stdout + r.stderr).strip().splitlines()[-30:]))
    for msg in problems:
        print("FAIL: " + msg)
    if a.keep:
        print(f"copy kept in {copy}")
    else:
        subprocess.run(["rm", "-rf", str(copy)], check=False)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
