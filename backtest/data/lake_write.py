"""Writing the lake: validated, merged, atomic file writes and multi-file transactions with a journal.

``write_table`` merges new rows into ``<lake>/<table>/<name>.parquet`` (de-duplicating on the key columns +
``ts``, the new row wins) through a temporary file renamed into place. ``transaction`` stages every file an
import writes and commits them together (the journal is the commit point); ``recover`` finishes a committed
transaction after a kill, or drops an uncommitted one. Reading is :mod:`backtest.data.lake`.
"""
from __future__ import annotations

import json
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import polars as pl
import pyarrow.parquet as pq

from backtest.data.lake import KEYS, schema, validate
from backtest.errors import DataError


def _sort_cols(table: str) -> list[str]:
    return [*KEYS[table], "ts"]


def _normalise_name(name: str) -> str:
    name = name[: -len(".parquet")] if name.endswith(".parquet") else name
    if not name or "/" in name or "\\" in name or name.startswith("."):
        raise DataError(f"bad lake file name {name!r}: a plain name without folders or a leading dot")
    return name


# ----------------------------------------------------------------------------------------------- write
def write_table(lake: str | os.PathLike, table: str, df: pl.DataFrame, name: str,
                *, metadata: dict[str, str] | None = None) -> Path:
    """Validate ``df`` and merge it into ``<lake>/<table>/<name>.parquet``; return the file's path.

    Rows already in the file with the same key columns + ``ts`` are replaced by the new ones; the result is
    sorted by key columns then ``ts``. The file is written to a temporary name in the same folder and
    renamed into place (``os.replace``), so readers never see a partial file. ``metadata`` (e.g.
    ``{"source": "aavescan"}``) is stored as Parquet key-value metadata.
    """
    new = validate(table, df)
    name = _normalise_name(name)
    folder = Path(lake) / table
    tx_dirs = _TX_DIRS.get(os.path.realpath(lake))
    if tx_dirs is not None and not folder.exists():
        tx_dirs.append(folder)           # a failed transaction removes the folders it made
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.parquet"
    source = _existing_merge_source(path)
    if source.exists():
        try:
            old = pl.from_arrow(pq.read_table(source))
        except Exception as exc:  # noqa: BLE001 - a corrupt file is the user's data problem
            raise DataError(f"{table}: cannot read existing lake file {path}: {exc}") from exc
        old = validate(table, old)
        merged = pl.concat([old, new], how="vertical")
    else:
        merged = new
    merged = merged.unique(subset=_sort_cols(table), keep="last", maintain_order=True)
    merged = merged.sort(_sort_cols(table), nulls_last=False, maintain_order=True)
    sch = schema(table)
    if metadata:
        sch = sch.with_metadata({k.encode(): str(v).encode() for k, v in metadata.items()})
    arrow = merged.to_arrow().cast(sch)
    tx = _TX.get(os.path.realpath(lake))
    if tx is not None:                   # inside transaction(): staged, renamed with the others at its end
        staged = folder / f".{name}.parquet{STAGE}{os.getpid()}"
        try:
            pq.write_table(arrow, staged, compression="zstd")
        except BaseException:
            staged.unlink(missing_ok=True)
            raise
        tx[path] = staged
        return path
    tmp = folder / f".{name}.parquet.tmp-{os.getpid()}"
    try:
        pq.write_table(arrow, tmp, compression="zstd")
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


# ------------------------------------------------------------------------------------------ transactions
# An import writes several files; a kill between two renames would leave half an import. Inside
# transaction() every file is staged first; a journal naming all of them is the commit point; the renames
# follow, and recover() finishes them after a kill (or removes the staged files of an uncommitted import).
JOURNAL = ".commit.json"
LAKE_LOCK = ".lake.lock"
STAGE = ".stage-"
_TX: dict[str, dict[Path, Path]] = {}
_TX_DIRS: dict[str, list[Path]] = {}


def _existing_merge_source(path: Path) -> Path:
    """The file a write inside a transaction merges with: a file already staged for ``path``, else ``path``."""
    for tx in _TX.values():
        if path in tx:
            return tx[path]
    return path


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _roll_forward(root: Path) -> None:
    """With the lake's lock held: finish a committed transaction, drop the files of an uncommitted one."""
    journal = root / JOURNAL
    if journal.exists():
        try:
            pairs = json.loads(journal.read_text())["renames"]
        except (OSError, ValueError, KeyError) as exc:
            raise DataError(f"{journal}: unreadable commit journal of an interrupted import ({exc}); "
                            f"check the lake and remove the file") from None
        for staged, final in pairs:
            if (root / staged).exists():
                os.replace(root / staged, root / final)
        journal.unlink()
    from backtest.store import pid_alive

    for dirpath, _, files in os.walk(root):
        for f in files:
            if not f.startswith("."):
                continue
            # staged files of an uncommitted import, temp files of a killed single write (synth, derive)
            tmp_of_dead = ".parquet.tmp-" in f and f.rsplit("-", 1)[1].isdigit() \
                and not pid_alive(int(f.rsplit("-", 1)[1]))
            if STAGE in f or tmp_of_dead:
                os.unlink(os.path.join(dirpath, f))
    (root / f".{JOURNAL}.tmp").unlink(missing_ok=True)


def _staged_files(root: Path) -> bool:
    for _, _, files in os.walk(root):
        if any(STAGE in f and f.startswith(".") for f in files):
            return True
    return False


def recover(lake: str | os.PathLike) -> None:
    """Before reading: finish an import that was killed while committing, drop the staged files of one killed
    before (readers skip them anyway); nothing is written when there is nothing to put right."""
    from backtest.errors import InputError
    from backtest.store import Lock

    root = Path(lake)
    committed = (root / JOURNAL).exists()
    # a lock file or journal draft of a killed import is debris too (the flock died with its process)
    debris = (root / LAKE_LOCK).exists() or (root / f".{JOURNAL}.tmp").exists()
    if not root.is_dir() or not (committed or debris or _staged_files(root)):
        return
    try:
        lock = Lock(root / LAKE_LOCK, f"data lake {root}", "wait for it to finish")
    except InputError:
        if committed:        # a live import is renaming its files right now: reading would see half of it
            raise
        return               # a live import is staging: its files are invisible until it commits
    try:
        _roll_forward(root)
    finally:
        lock.release()


@contextmanager
def transaction(lake: str | os.PathLike) -> Iterator[None]:
    """Every ``write_table`` into ``lake`` inside this block lands together, or none does: on any failure the
    lake is left as it was (staged files and the table folders the block made are removed). Re-entrant: a
    transaction inside another on the same lake joins the outer one (e.g. ``commit`` inside an import)."""
    from backtest.store import Lock

    root = Path(lake)
    if os.path.realpath(root) in _TX:
        yield
        return
    if root.exists() and not root.is_dir():
        raise DataError(f"data lake {root} is a file, not a folder; choose another lake folder")
    created = not root.exists()
    root.mkdir(parents=True, exist_ok=True)
    key = os.path.realpath(root)
    lock = Lock(root / LAKE_LOCK, f"data lake {root}", "wait for it to finish")
    staged: dict[Path, Path] = {}
    made: list[Path] = []
    try:
        _roll_forward(root)
        _TX[key] = staged
        _TX_DIRS[key] = made
        try:
            yield
        finally:
            _TX.pop(key, None)
            _TX_DIRS.pop(key, None)
        if staged:
            tmp = root / f".{JOURNAL}.tmp"
            tmp.write_text(json.dumps({"renames": [[str(s.relative_to(root)), str(f.relative_to(root))]
                                                   for f, s in staged.items()]}))
            for s in staged.values():
                _fsync(s)
            _fsync(tmp)
            os.replace(tmp, root / JOURNAL)          # the commit point
            _roll_forward(root)
    except BaseException as exc:
        for s in staged.values():
            s.unlink(missing_ok=True)
        for d in reversed(made):
            if d.is_dir() and not any(d.iterdir()):
                d.rmdir()
        from backtest.store import is_disk_full

        if isinstance(exc, Exception) and is_disk_full(exc):
            from backtest.errors import BacktestError

            raise BacktestError(f"data lake {root}: disk full while importing ({exc}); nothing was written, the "
                                f"lake is as it was: free some space and import again") from None
        raise
    finally:
        lock.release()
        if created and not any(root.iterdir()):
            root.rmdir()                         # a failed first import leaves no empty lake behind
