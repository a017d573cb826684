"""Where a result set lives and how it is replaced without destroying anything.

``<run.output>/<name>/`` is only ever replaced by a run that holds ``.<name>.lock`` (an flock with the holder's
PID in it), and only when it already holds a result set of this project (``manifest.json`` with
:data:`MARKER`) of the same configurations, or of different ones with ``force``. Everything is checked before
alignment, so a mistake costs nothing and writes nothing. Leftovers of a killed run are put right here, under
the lock: a ``.<name>.old-PID`` folder (killed between the two renames of :meth:`WorkDir.finalize`) is
restored, or a finished work folder renamed into place; temporary files are removed. The work folder itself
is resumed or removed by ``WorkDir``.
"""
from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import os
import re
import shutil
from pathlib import Path
from typing import Any

from backtest.errors import BacktestError, InputError

MARKER = "backtest result set"          # manifest["format"]: what makes a folder ours to replace
FORMAT_VERSION = 1
DISK_FULL = (errno.ENOSPC, errno.EDQUOT)
_TMP_RE = re.compile(r"^\..+\.tmp-\d+$")


def set_hash(point_hashes: list[str]) -> str:
    """The configurations of a result set, known before alignment (data changes do not make it 'different')."""
    return hashlib.sha256("\n".join(point_hashes).encode()).hexdigest()


def _manifest_set_hash(manifest: dict[str, Any]) -> str | None:
    if manifest.get("set_hash"):
        return manifest["set_hash"]
    points = manifest.get("points")
    if isinstance(points, list) and all(isinstance(p, dict) and "config_hash" in p for p in points):
        return set_hash([p["config_hash"] for p in points])
    return None


def read_manifest(folder: Path) -> dict[str, Any] | None:
    """The manifest of a result set of this project in ``folder``, else None."""
    try:
        m = json.loads((folder / "manifest.json").read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(m, dict):
        return None
    if m.get("format") == MARKER:
        return m
    # result sets written before the marker existed: the same manifest keys and a summary beside it
    if {"sweep_hash", "package_version", "points"} <= m.keys() and (folder / "summary.parquet").is_file():
        return m
    return None


def pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def is_disk_full(exc: BaseException) -> bool:
    """OSError ENOSPC / EDQUOT, or an engine error (polars, pyarrow) carrying that OS message."""
    if isinstance(exc, OSError) and exc.errno in DISK_FULL:
        return True
    text = str(exc)
    return "No space left on device" in text or "Disk quota exceeded" in text


def disk_full_error(dest: Path, exc: BaseException) -> BacktestError:
    kept = "the previous result set is intact" if (dest / "manifest.json").exists() else "nothing was kept"
    return BacktestError(f"{dest}: disk full while writing the result set ({exc}); {kept} and the partial "
                         f"work folder was removed: free some space and run again")


# ------------------------------------------------------------------------------------------------- lock
class Lock:
    """An exclusive, non-blocking flock on ``path`` holding our PID; the file is removed on release."""

    def __init__(self, path: Path, what: str, hint: str = "wait for it to finish or choose another run.name"):
        self.path = Path(path)
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = self._holder(fd)
                os.close(fd)
                raise InputError(f"{what}: another process ({holder}) is writing it (lock {self.path}); "
                                 f"{hint}") from None
            # the previous holder may have unlinked the file between our open and flock: lock the current one
            try:
                same = os.stat(self.path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        # a lock file left by a killed process holds its dead PID; flock has already released it, take it over
        try:
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
        except OSError:
            self.path.unlink(missing_ok=True)      # e.g. a full disk: leave no lock file behind
            os.close(fd)
            raise
        self.fd: int | None = fd

    @staticmethod
    def _holder(fd: int) -> str:
        try:
            pid = int(os.pread(fd, 32, 0).split()[0])
        except (OSError, ValueError, IndexError):
            return "PID unknown"
        return f"PID {pid}" if pid_alive(pid) else f"PID {pid}, not running: a child process of it holds the lock"

    def release(self) -> None:
        if self.fd is None:
            return
        try:
            self.path.unlink()
        except FileNotFoundError:
            pass
        fcntl.flock(self.fd, fcntl.LOCK_UN)
        os.close(self.fd)
        self.fd = None


# --------------------------------------------------------------------------------------------- checks
def _nearest_existing(path: Path) -> Path:
    p = path
    while not os.path.lexists(p):
        if p.parent == p:
            break
        p = p.parent
    return p


def check_output(dest: Path, lake: Path | None) -> None:
    """The output folder can hold ``dest``: no file in the way, writable, not inside or over the data lake."""
    out = dest.parent
    base = _nearest_existing(out)
    if not base.is_dir():
        raise InputError(f"run.output {out}: {base} is a file, not a folder; choose another run.output")
    if not os.access(base, os.W_OK | os.X_OK):
        what = "run.output" if base == out else f"run.output {out}: its parent"
        raise InputError(f"{what} {base} is not writable; choose another run.output")
    if lake is not None:
        d, lk = os.path.realpath(dest), os.path.realpath(lake)
        if d == lk or lk.startswith(d + os.sep):
            raise InputError(f"run.output/run.name {dest} is the data lake run.data {lake} (or holds it); "
                             f"choose another run.name or run.output")
        if d.startswith(lk + os.sep):
            raise InputError(f"run.output/run.name {dest} is inside the data lake run.data {lake}; results "
                             f"there would be read as lake tables: choose another run.output")


def check_dest(dest: Path, new_set_hash: str, force: bool) -> str:
    """May ``dest`` be written? 'new', 'same' (a re-run) or 'forced'; InputError when it may not."""
    if not os.path.lexists(dest):
        return "new"
    if dest.is_symlink() or not dest.is_dir():
        kind = "a symbolic link" if dest.is_symlink() else "a file"
        raise InputError(f"{dest} is {kind}, not a result set of this project; refusing to replace it: choose "
                         f"another run.name or run.output, or move it away")
    m = read_manifest(dest)
    if m is None:
        raise InputError(f"{dest} exists and is not a result set of this project (no manifest.json of "
                         f"backtest); refusing to replace it: choose another run.name or run.output, or move it")
    old = _manifest_set_hash(m)
    if old == new_set_hash:
        return "same"
    if not force:
        raise InputError(f"{dest} holds a result set of a different configuration (config hash "
                         f"{(old or '?')[:12]}, this run {new_set_hash[:12]}); rerun with --force to replace it, "
                         f"or choose another run.name")
    return "forced"


# ------------------------------------------------------------------------------------------- leftovers
def _remove_tmp_files(folder: Path) -> None:
    for dirpath, _, files in os.walk(folder):
        for f in files:
            if _TMP_RE.match(f):
                try:
                    os.unlink(os.path.join(dirpath, f))
                except FileNotFoundError:
                    pass


def recover(dest: Path) -> None:
    """Put right what a killed run of ``dest`` left behind (call with the lock held)."""
    out = dest.parent
    if not out.is_dir():
        return
    work = out / f".{dest.name}.work"
    olds = sorted(p for p in out.glob(f".{dest.name}.old-*") if p.name[len(dest.name) + 6:].isdigit())
    work_done = (work / "manifest.json").is_file() and not (work / "state.json").exists()
    if work_done and not os.path.lexists(dest):
        os.replace(work, dest)                 # killed between the renames: the new set was complete
    elif olds and not os.path.lexists(dest):
        os.replace(olds.pop(), dest)           # killed mid-replace with no finished set: restore the old one
    elif work_done:
        # killed just before the old set was moved aside: the finished set replaces it as it would have
        old = out / f".{dest.name}.old-{os.getpid()}"
        os.replace(dest, old)
        os.replace(work, dest)
        olds.append(old)
    for p in olds:
        shutil.rmtree(p, ignore_errors=True)
    for f in out.iterdir():
        # a temp file beside the set whose writer is dead (a live one may belong to a longer run.name)
        if f.name.startswith(f".{dest.name}.") and _TMP_RE.match(f.name) and f.is_file() \
                and not pid_alive(int(f.name.rsplit("-", 1)[1])):
            f.unlink()
    if work.is_dir():
        _remove_tmp_files(work)


class Store:
    """The checked, locked destination of one run; hold it from before alignment to the final rename."""

    def __init__(self, dest: Path, point_hashes: list[str], force: bool, lake: Path | None = None):
        self.dest = Path(dest)
        self.set_hash = set_hash(point_hashes)
        check_output(self.dest, lake)
        if os.path.lexists(self.dest):       # fail before creating anything (the lock file) when we can
            check_dest(self.dest, self.set_hash, force)
        try:
            self.dest.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise InputError(f"run.output {self.dest.parent}: cannot create it ({exc.strerror})") from None
        try:
            self.lock = Lock(self.dest.with_name(f".{self.dest.name}.lock"), str(self.dest))
        except OSError as exc:
            if is_disk_full(exc):
                raise disk_full_error(self.dest, exc) from None
            raise
        try:
            recover(self.dest)
            self.action = check_dest(self.dest, self.set_hash, force)
        except BaseException:
            self.lock.release()
            raise

    def release(self) -> None:
        self.lock.release()
