"""The Python API: run a config (and every point of its sweep), write the result set, return frames."""
from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import os
import shutil
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable

from backtest import __version__
from backtest.config_types import Config
from backtest.data.market import Market
from backtest.errors import ConfigError
from backtest.store import FORMAT_VERSION, MARKER, Store, disk_full_error, is_disk_full
from backtest.sweep import WorkDir, group_points, prepare, run_dask, run_local

EXECUTORS = ("local", "dask")
ENGINES = ("core", "reference")
MAX_WORKERS = 1024     # threads or processes; more is a typo (and OpenMP would try to start them)


def _load(config, overrides=None) -> Config:
    from backtest.config import load_config

    if isinstance(config, Config):
        if overrides:
            raise ConfigError("overrides need a config file path, not a Config object")
        return config
    return load_config(Path(config), overrides)


def _align(cfg: Config, markets=None) -> Market:
    """The aligned market of ``cfg``, holding the window to `data check`'s error rules; ``markets``
    (a backtest.plan.Markets) shares one lake read among configurations that differ only in constants."""
    from backtest.plan import Markets

    from backtest.legs import align_legs

    # [[strategy.collateral]]: once per leg token (the same window, debt and venue), stacked
    return align_legs(cfg, markets if markets is not None else Markets(checks=True))


def run(config, overrides: dict | None = None, grids: dict | None = None, zip_: bool = False,
        engine: str = "core", dense: bool = False, workers: int = 0, write: bool = True,
        executor: str = "local", address: str | None = None, resume: bool = False, batch_size: int = 256,
        force: bool = False, montecarlo=None,
        progress: Callable[[int, int], None] | None = None,
        on_start: Callable[[int, int], None] | None = None,
        on_align: Callable[[int, int], None] | None = None, progress_every: int = 0) -> dict[str, Any]:
    """Replay a config (a TOML path or a Config) and every point of its sweep.

    Returns {"summary", "events", "episodes": polars DataFrames, "path": the result set folder (None with
    write=False), "manifest": dict}. The result set goes to <run.output>/<run.name>/, built in a work folder
    and renamed into place; with resume=True an interrupted sweep of the same configs over the same data
    continues where it stopped. progress(configs, config_blocks) is called after each batch;
    on_start(total_configs, total_config_blocks) once before the first; on_align(done, total) before each
    market group is aligned and once after the last; progress_every > 0 asks for about that many progress
    calls (smaller batches, never below one configuration per core; results unchanged). batch_size bounds the
    configurations replayed (and written) per batch. An existing <run.name>/ is replaced only when it is a
    result set of this project, and one of different configurations only with force=True. montecarlo (a
    backtest.montecarlo.MonteCarlo, used as given; or a dict of the CLI's options, each replacing its key of the
    config's [montecarlo] table; None: the table, if any): every configuration on N bootstrapped paths; the
    summary is then one row of path statistics per configuration and paths.parquet holds every (configuration,
    path) row."""
    from backtest.config import config_hash, config_to_dict, expand_sweep

    if executor not in EXECUTORS:
        raise ConfigError(f"--executor {executor!r}: use one of {', '.join(EXECUTORS)}")
    if engine not in ENGINES:
        raise ConfigError(f"--engine {engine!r}: use one of {', '.join(ENGINES)}")
    if isinstance(workers, bool) or not isinstance(workers, int) or not 0 <= workers <= MAX_WORKERS:
        raise ConfigError(f"--workers {workers!r}: must be a whole number from 0 (all cores) to {MAX_WORKERS}")
    if executor == "dask" and engine != "core":
        raise ConfigError("--executor dask runs the core engine only")
    started = time.time()
    timings: dict[str, float] = {}
    clock = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        timings[name] = round(timings.get(name, 0.0) + now - clock, 4)
        clock = now

    cfg = _load(config, overrides)
    from backtest.montecarlo import MonteCarlo, resolve

    if not isinstance(montecarlo, MonteCarlo):      # the CLI's flags (a dict) over the [montecarlo] table
        montecarlo = resolve(cfg.montecarlo, montecarlo)
    if montecarlo is not None and (engine != "core" or dense):
        raise ConfigError("--paths runs the core engine (the reference engine replays paths in the tests)")
    from backtest.strategy_book import BOOK_KINDS

    if cfg.strategy.kind in BOOK_KINDS and montecarlo is not None:
        raise ConfigError(f"[montecarlo] / --paths: strategy.kind = {cfg.strategy.kind!r} (the strategy book) "
                          f"takes no Monte Carlo paths")
    if cfg.strategy.kind in BOOK_KINDS:        # the strategy book's kinds have their own engines
        from backtest.strategy_book import run_book_config

        res = run_book_config(cfg, engine, write=write, force=force, grids=grids, zip_=zip_)
        return {"summary": res["summary"], "events": res["events"], "path": res["path"], "manifest": None}
    points = expand_sweep(cfg, grids, zip_)
    groups = group_points(points, list(range(len(points))))
    hashes = [config_hash(c) for _, c in points]
    dest = Path(cfg.run.output) / cfg.run.name
    # the destination is checked and locked before alignment: a mistake there costs no work
    store = Store(dest, hashes, force, cfg.run.data) if write else None
    try:
        return _run(cfg, points, groups, hashes, dest, store, engine, dense, workers, executor, address, resume,
                    batch_size, progress, on_start, started, timings, lap, on_align, progress_every, montecarlo)
    finally:
        if store is not None:
            store.release()


def _run(cfg, points, groups, hashes, dest, store, engine, dense, workers, executor, address, resume, batch_size,
         progress, on_start, started, timings, lap, on_align=None, progress_every=0, mc=None) -> dict[str, Any]:
    from backtest.config import config_hash, config_to_dict

    from backtest.data.lake_write import recover

    recover(cfg.run.data)                 # an import killed while committing is finished before we read
    lap("config")
    if engine == "reference":             # slow engine: small batches for progress and resume granularity
        batch_size = min(batch_size, 8)
    from backtest.plan import Markets

    markets = Markets(checks=True)        # one lake read per distinct set of series (constants are cheap)
    preps = []
    for k, g in enumerate(groups):                              # bad data first
        if on_align is not None:
            on_align(k, len(groups))
        preps.append(prepare(g, points, lambda c: _align(c, markets), batch_size))
    if on_align is not None:
        on_align(len(groups), len(groups))
    markets.clear()
    from backtest.episodes import number_episodes

    number_episodes([p.episodes for p in preps])    # one id per distinct episode over the result set
    lap("align")
    # [episodes] is not in the config hash; a resumed work folder must have found the same episodes
    ep = f"episodes {cfg.episodes.threshold!r} {cfg.episodes.merge_gap}"
    sweep_hash = hashlib.sha256(
        "\n".join(hashes + sorted(p.market.data_hash for p in preps) + [engine, ep]
                  + ([json.dumps(mc.manifest(), sort_keys=True)] if mc is not None else [])).encode()).hexdigest()

    tmp = None
    write = store is not None
    if not write:
        tmp = tempfile.TemporaryDirectory(prefix="backtest-")
        dest = Path(tmp.name) / cfg.run.name
    work = None
    try:
        work = WorkDir(dest, sweep_hash, resume)
        done = work.done_ids() if work.resumed else set()
        jobs = [(prep, [i for i in g.ids if i not in done]) for g, prep in zip(groups, preps)]
        if progress_every > 0 and mc is None:   # progress from the first configurations, also below one batch
            total = sum(len(t) for _, t in jobs)
            least = workers if workers > 0 else (os.cpu_count() or 1)
            for prep, _ in jobs:
                prep.batch = min(prep.batch, max(least, -(-total // progress_every)))
        if mc is not None:
            from backtest import montecarlo as _mc

            npaths = len(mc.path_ids())
            if on_start is not None:
                on_start(npaths * len(points), npaths * sum(len(t) * len(p.market) for p, t in jobs))
            # [[scenario]] overlays stack on the paths: the bootstrap reads the history without them
            histories = {g: _mc.history_of(_align(dataclasses.replace(grp.first, scenarios=())), mc.interval,
                                           mc.resample)
                         for g, grp in enumerate(groups) if grp.first.scenarios}
            _mc.run_paths(points, jobs, work.path, mc, executor, workers, address, progress, histories)
        else:
            if on_start is not None:
                on_start(sum(len(t) for _, t in jobs), sum(len(t) * len(p.market) for p, t in jobs))
            if executor == "dask":
                run_dask(points, jobs, work, dense, workers, address, progress)
            else:
                run_local(points, jobs, work, engine, dense, workers, progress)
        lap("replay")
        if mc is not None:
            summary, events = _mc.finish(points, work.path)
            episodes = work.collect_episodes()         # none: the paths keep no events
        else:
            summary, events = work.collect()
            episodes = work.collect_episodes()
        manifest = {
            "format": MARKER,
            "format_version": FORMAT_VERSION,
            "set_hash": store.set_hash if store is not None else None,
            "name": cfg.run.name,
            "config": config_to_dict(cfg),
            "config_hash": config_hash(cfg),
            "sweep_hash": sweep_hash,
            "points": [{"config_id": i, "labels": lab, "config_hash": hashes[i]}
                       for i, (lab, _) in enumerate(points)],
            "data_hash": sorted({p.market.data_hash for p in preps}),
            "series": [asdict(s) for p in preps for s in p.market.series],
            "lake_provenance": _lake_provenance(cfg, preps),
            "blocks": int(sum(len(p.market) for p in preps)),
            "engine": engine,
            "executor": executor,
            "resumed_configs": len(done),
            "computed_configs": len(points) - len(done),
            "package_version": __version__,
            "started": dt.datetime.fromtimestamp(started, dt.timezone.utc).isoformat(),
            "finished": dt.datetime.now(dt.timezone.utc).isoformat(),
            "wall_seconds": round(time.time() - started, 3),
            "timings": timings,
            "status": "complete",
        }
        manifest["columns"] = _columns(points, summary, events, episodes)
        if mc is not None:
            manifest["montecarlo"] = mc.manifest()
            debts = [c.market.debt for _, c in points]
            manifest["columns"]["summary"] = _mc.column_entries(summary.columns, debts)
            manifest["columns"]["paths"] = _mc.column_entries(list(_mc.PAIR_COLUMNS), debts)
            manifest["columns"]["paths"][:0] = _mc.column_entries(["config_id", "path"], debts)
        path = work.finalize(summary, events, manifest, episodes)
        if mc is not None:
            shutil.rmtree(path / "mc", ignore_errors=True)
        lap("write")
        manifest["timings"] = timings
    except Exception as exc:
        if is_disk_full(exc):
            # a partial work folder would only keep the disk full
            shutil.rmtree(dest.with_name(f".{dest.name}.work"), ignore_errors=True)
            raise disk_full_error(dest, exc) from None
        raise
    finally:
        if tmp is not None:
            tmp.cleanup()
    return {"summary": summary, "events": events, "episodes": episodes, "path": path if write else None,
            "manifest": manifest}


def _lake_provenance(cfg: Config, preps) -> dict | None:
    """What the lake's provenance.json says about the files this run read (sources, assumptions, synthetic)."""
    from backtest.data.provenance import for_files
    return for_files(cfg.run.data, [f for p in preps for f in p.market.files])


def _columns(points, summary, events, episodes) -> dict:
    """The manifest's column dictionary (name, unit, meaning) of the summary, events, time series, episodes."""
    from backtest.engine import collateral_token
    from backtest.results import column_dictionary
    from backtest.schema import RECORD_FIELDS

    from backtest.results import LEG_RECORD_COLUMNS

    legs = sorted({leg.token for _, c in points for leg in c.strategy.collateral})
    per_leg = [f"{base}_{tok}" for tok in legs for base in LEG_RECORD_COLUMNS]
    return column_dictionary({"summary": summary.columns, "events": events.columns,
                              "timeseries": ["block", "ts", *RECORD_FIELDS, *per_leg, "config_id", "time_utc"],
                              "episodes": episodes.columns},
                             [c.market.debt for _, c in points],
                             # several legs: token amounts are summed over them ("wstETH+weETH tokens")
                             ["+".join(leg.token for leg in c.strategy.collateral) or collateral_token(c)
                              for _, c in points])


def sweep(config, grids: dict | None = None, **kwargs) -> dict[str, Any]:
    """`run` with command-line style grids ({dotted key: [values]}) added to the config's [sweep]."""
    return run(config, grids=grids, **kwargs)
