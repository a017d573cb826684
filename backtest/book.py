"""`backtest book`: every strategy the guides advertise, one config each (examples/book/), over one window.

Each config is replayed with the window's dates and ``--capital`` dollars (converted into the strategy's unit
at the window's first ETH/USD price when that unit is ETH), then compared with the range the guides print.
Writes ``<output>/book/<strategy>/`` (a result set per strategy) and ``<output>/book/book.parquet`` (DESIGN §6).
A strategy whose series the lake does not hold is still a row: ``status`` says what is missing.
"""
from __future__ import annotations

import datetime as dt
import json
import math
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from backtest.errors import BacktestError, InputError

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "book"

#: window name -> (start, end) dates
#: june-2022 opens on 2 May: 1 May 2022 was the Otherside mint (Etherscan's daily average gas 474.6 gwei), which
#: would make any $1,000 position a gas story rather than a de-peg one
WINDOWS = {"real-2024": ("2024-05-14", "2025-09-18"), "june-2022": ("2022-05-02", "2022-09-30")}


@dataclass(frozen=True)
class Advertised:
    text: str
    low: float | None           # APY fractions; None: no range ("highly variable")
    high: float | None
    over_base: bool = False     # the range is added to the base (hold the LST) APY


#: the guides' "$1,000 after a year" ranges, by the book config's name (examples/book/<name>.toml)
ADVERTISED = {
    "hold-lst": Advertised("3-5 %", 0.03, 0.05),
    "hold-lrt": Advertised("8-12 %", 0.08, 0.12),
    "basket": Advertised("5-8 %", 0.05, 0.08),
    "lend": Advertised("base + 0.5-2 %", 0.005, 0.02, True),
    "lp": Advertised("7-12 %", 0.07, 0.12),
    "vault": Advertised("base + 1-4 %", 0.01, 0.04, True),
    "loop": Advertised("10-20 %", 0.10, 0.20),
    "restake-lrt": Advertised("8-18 %", 0.08, 0.18),
    "farm": Advertised("highly variable", None, None),
}
ORDER = tuple(ADVERTISED)
#: book.parquet's column dictionary (name -> unit, meaning), written beside it as book.json
COLUMNS = {
    "strategy": ("", "the book config's name (examples/book/<strategy>.toml)"),
    "kind": ("", "strategy.kind"), "tokens": ("", "what the position holds / against what"),
    "venue": ("", "market.protocol, the pool, or - for a plain holding"), "window": ("", "the --window"),
    "capital_usd": ("USD", "dollars put in"), "status": ("", "replayed, or why not (the series missing)"),
    "unit": ("", "the strategy's unit of account (its debt asset, or USD)"),
    "ending_value_usd": ("USD", "what the capital became: capital x end_value / capital in the unit"),
    "end_value": ("unit", "ending value in the strategy's unit"),
    "realized_apy": ("apy", "(end / capital)^(1 / years) - 1"), "window_return": ("fraction", "end / capital - 1"),
    "advertised": ("", "the guides' range"), "advertised_low": ("apy", "range low (base added where relative)"),
    "advertised_high": ("apy", "range high"), "verdict": ("", "inside / below / above the range, n/a"),
    "liquidations": ("count", "liquidation calls"), "worst_drawdown": ("fraction", "max peak-to-trough of the value"),
    "costs": ("unit", "gas, swap fees, slippage, flash fees and vault fees"),
    "hold_apy": ("apy", "the benchmark: the token held (basket: its natives)"),
    "rewards_value": ("unit", "restaking rewards valued as the config says (beside the value, not in it)"),
    "apy_with_rewards": ("apy", "realized APY with the rewards added to the ending value"),
    "notes": ("", "what is synthetic, assumed or clipped"), "result_set": ("", "the strategy's result set"),
    "result_row": ("", "its summary row (config_id)"), "config": ("", "the config file"),
    "fee_income": ("unit", "lp: tokens x (virtual price end - start)"),
    "impermanent_loss": ("unit", "lp: the share without fee growth minus the deposit's coins held"),
    "max_lst_share": ("fraction", "lp: the pool's largest LST share"),
    "lst_share_at_min": ("fraction", "lp: the pool's LST share when the LP value was lowest"),
    "min_value": ("unit", "lp: the lowest value of the share"), "min_value_ts": ("epoch s", "lp: when"),
    "management_fee_paid": ("unit", "vault: the holder's share of the management fee"),
    "performance_fee_paid": ("unit", "vault: the holder's share of the performance fee"),
    "n_rebalances": ("count", "vault / basket re-balancings"), "bench_end_value": ("USD", "basket: the natives"),
    "bench_apy": ("apy", "basket: the natives' APY"), "rewards_sold_value": ("unit", "farm: reward sales, net"),
    "reward_tokens_sold": ("tokens", "farm: reward tokens sold"), "min_hf": ("", "lowest health factor"),
}
#: per-kind figures carried into book.parquet (null where a kind has none)
DETAIL = ("fee_income", "impermanent_loss", "max_lst_share", "lst_share_at_min", "min_value", "min_value_ts",
          "management_fee_paid", "performance_fee_paid", "n_rebalances", "bench_end_value", "bench_apy",
          "rewards_sold_value", "reward_tokens_sold", "min_hf")


def parse_window(text: str) -> tuple[str, str, str]:
    """(name, start, end) of --window: a named window or START..END dates."""
    if text in WINDOWS:
        return (text, *WINDOWS[text])
    start, sep, end = text.partition("..")
    if not sep or not start or not end:
        raise InputError(f"--window {text!r}: use {', '.join(WINDOWS)} or START..END (e.g. 2024-06-01..2025-06-01)")
    for d in (start, end):
        try:
            dt.date.fromisoformat(d)
        except ValueError:
            raise InputError(f"--window {text!r}: {d!r} is not a date (YYYY-MM-DD)") from None
    if start >= end:
        raise InputError(f"--window {text!r}: the end is not after the start")
    return text, start, end


def verdict(apy: float, adv: Advertised, base: float | None) -> tuple[float | None, float | None, str]:
    if adv.low is None or not math.isfinite(apy):
        return None, None, "n/a"
    lo, hi = adv.low, adv.high
    if adv.over_base:
        if base is None or not math.isfinite(base):
            return None, None, "n/a"
        lo, hi = base + lo, base + hi
    return lo, hi, "below" if apy < lo else "above" if apy > hi else "inside"


def _usd_per_unit(cfg) -> float:
    """The strategy's unit in USD at the window's first step (1 for USD); ETH/USD from the lake."""
    from backtest.data.book_series import BookRequest, price_at

    unit = "USD" if cfg.strategy.kind == "basket" else cfg.market.debt
    if unit in ("USD", "USDC", "USDT", "DAI"):
        return 1.0
    req = BookRequest(Path(cfg.run.data), cfg.run.start, cfg.run.start + cfg.run.block_time, cfg.run.block_time,
                      tuple(cfg.run.sources), tuple(cfg.run.allow))
    return price_at(req, unit, "USD")


def _load(path: Path, data: str, start: str, end: str, output: Path):
    from backtest.config import load_config

    return load_config(path, {"run.start": start, "run.end": end, "run.data": data,
                              "run.output": str(output), "run.record": "1h"})


def _run_existing(cfg, capital: float) -> tuple[dict, str | None]:
    """hold / lend / loop / flash-loan (restake) through the loop engine's `run`, its result set written."""
    from backtest.api import run

    res = run(cfg, write=True, force=True)
    r = res["summary"].row(0, named=True)
    prov = (res.get("manifest") or {}).get("lake_provenance") or {}
    costs = sum(r.get(k, 0.0) or 0.0 for k in ("gas_cost", "swap_fee_cost", "slippage_cost", "flash_fee_cost"))
    row = {"end_value": r["end_equity"], "net_apy": r["net_apy"], "hold_apy": r["hold_apy"],
           "liq_count": float(r["liq_count"]), "max_drawdown": r["max_drawdown"], "total_costs": costs,
           "restaking_rewards": r.get("restaking_rewards", 0.0) or 0.0, "min_hf": r.get("min_hf", math.nan),
           # the lake's own flags on the files this run read (data/provenance.json)
           "flags": [f"{k} series: {', '.join(v)}" for k, v in sorted(prov.items())
                     if k in ("assumed", "synthetic") and v]}
    return row, str(res["path"])


def book(window: str = "real-2024", capital: float = 1000.0, data: str = "data", output: str = "results",
         configs: Path = EXAMPLES, engine: str = "core") -> pl.DataFrame:
    """Replay every config of ``configs`` over ``window``; returns book.parquet's frame (also written)."""
    from backtest.config import load_config  # noqa: F401  (config errors surface before any replay)
    from backtest.strategy_book import BOOK_KINDS, run_book_config

    if not (capital > 0) or capital > 1e12:
        raise InputError(f"--capital {capital!r}: must be a number of dollars > 0 and at most 1e12")
    name, start, end = parse_window(window)
    out_root = Path(output) / "book"
    # a window may keep its own configs (examples/book/june-2022/: the 2022 markets and their assumptions)
    if (configs / name).is_dir():
        configs = configs / name
    paths = sorted(configs.glob("*.toml"), key=lambda p: ORDER.index(p.stem) if p.stem in ORDER else len(ORDER))
    if not paths:
        raise InputError(f"{configs}: no book configs (*.toml)")
    rows = []
    for path in paths:
        cfg = _load(path, data, start, end, out_root)
        adv = ADVERTISED.get(path.stem, Advertised("-", None, None))
        base = {"strategy": path.stem, "kind": cfg.strategy.kind, "window": name, "capital_usd": capital,
                "tokens": _tokens(cfg), "venue": _venue(cfg), "advertised": adv.text, "config": str(path)}
        try:
            usd = _usd_per_unit(cfg)
            from dataclasses import replace

            cfg = replace(cfg, strategy=replace(cfg.strategy, capital=capital / usd))
            if cfg.strategy.kind in BOOK_KINDS:
                res = run_book_config(cfg, engine, force=True)
                row, result = res["row"], str(res["path"])
            else:
                row, result = _run_existing(cfg, capital / usd)
                row["unit"] = cfg.market.debt
                row["notes"] = "; ".join(x for x in [_existing_notes(cfg, row), *row.pop("flags")] if x)
            growth = row["end_value"] / cfg.strategy.capital
            lo, hi, v = verdict(row["net_apy"], adv, row.get("hold_apy") if adv.over_base else None)
            if adv.over_base and path.stem in ("lend", "vault"):
                lo, hi, v = verdict(row["net_apy"], adv, row.get("hold_apy"))
            rows.append({**base, "status": "replayed", "unit": row.get("unit", ""),
                         "ending_value_usd": capital * growth, "end_value": row["end_value"],
                         "realized_apy": row["net_apy"], "window_return": growth - 1.0, "advertised_low": lo, "advertised_high": hi,
                         "verdict": v, "liquidations": int(row.get("liq_count", 0)),
                         "worst_drawdown": row.get("max_drawdown", math.nan),
                         "costs": row.get("total_costs", math.nan), "hold_apy": row.get("hold_apy", math.nan),
                         "rewards_value": row.get("restaking_rewards", 0.0),
                         "apy_with_rewards": _with_rewards(row, cfg), "notes": row.get("notes", ""),
                         "result_set": result, "result_row": 0,
                         **{k: row.get(k) for k in DETAIL}})
        except (BacktestError, InputError) as exc:
            rows.append({**base, "status": f"not replayed: {exc.format_message()}", "verdict": "n/a", "result_set": None,
                         "notes": "the lake lacks a series this strategy needs"})
    have = {p.stem for p in paths}
    for strat in ORDER:               # every advertised strategy is a row, replayed or not
        if strat not in have:
            rows.append({"strategy": strat, "kind": None, "window": name, "capital_usd": capital, "tokens": "-",
                         "venue": "-", "advertised": ADVERTISED[strat].text, "config": None,
                         "status": f"not replayed: no {name} config (no history for it in this window)",
                         "verdict": "n/a", "result_set": None, "notes": "no history for this strategy here"})
    rows.sort(key=lambda r: ORDER.index(r["strategy"]) if r["strategy"] in ORDER else len(ORDER))
    frame = pl.DataFrame(rows, infer_schema_length=None)
    out_root.mkdir(parents=True, exist_ok=True)
    tmp = out_root / ".book.parquet.tmp"
    frame.write_parquet(tmp)
    os.replace(tmp, out_root / "book.parquet")
    doc = {"window": name, "start": start, "end": end, "capital_usd": capital,
           "columns": {"book": [[c, *COLUMNS.get(c, ("", ""))] for c in frame.columns]}}
    tmp = out_root / ".book.json.tmp"
    tmp.write_text(json.dumps(doc, indent=1, sort_keys=True))
    os.replace(tmp, out_root / "book.json")
    return frame


def _with_rewards(row: dict, cfg) -> float:
    """The restaking row's APY with its rewards added to the ending value (they are reported beside it)."""
    from backtest.strategy_book import annualised

    rw = row.get("restaking_rewards", 0.0) or 0.0
    if not rw:
        return row["net_apy"]
    return annualised(row["end_value"] + rw, cfg.strategy.capital, float(cfg.run.end - cfg.run.start))


def _existing_notes(cfg, row: dict) -> str:
    notes = []
    if cfg.strategy.restake != "none":
        rw = cfg.strategy.rewards
        notes.append(f"restaked into {cfg.strategy.restake}; rewards valued as "
                     f"{'zero' if rw is None else rw.value + (' ' + rw.token if rw.token else '')}, "
                     f"APY shown without and with them")
    return "; ".join(notes)


def _tokens(cfg) -> str:
    if cfg.strategy.book is not None and cfg.strategy.book.basket is not None:
        return "+".join(t for t, _ in cfg.strategy.book.basket.weights)
    if cfg.strategy.book is not None and cfg.strategy.book.farm is not None:
        return f"{cfg.market.collateral}+{cfg.strategy.book.farm.reward_token}"
    coll = cfg.strategy.restake if cfg.strategy.restake != "none" else cfg.market.collateral
    return f"{coll}/{cfg.market.debt}"


def _venue(cfg) -> str:
    if cfg.strategy.book is not None and cfg.strategy.book.lp is not None:
        return cfg.strategy.book.lp.pool
    if cfg.strategy.kind in ("basket", "farm", "hold"):
        return "-" if cfg.strategy.kind != "farm" else "farm"
    return cfg.market.protocol


def print_book(frame: pl.DataFrame, capital: float) -> None:
    from rich.console import Console
    from rich.table import Table

    t = Table(title=f"what ${capital:,.0f} became ({frame['window'][0]})")
    for c in ("strategy", "tokens", "ending value", "window return", "realized APY", "advertised", "vs range", "liqs",
              "worst drawdown", "costs", "notes"):
        t.add_column(c, justify="left" if c in ("strategy", "tokens", "advertised", "notes") else "right")
    for r in frame.iter_rows(named=True):
        if r["status"] != "replayed":
            t.add_row(r["strategy"], r["tokens"], "-", "-", "-", r["advertised"], "n/a", "-", "-", "-",
                      _short(r["status"]))
            continue
        apy = r["realized_apy"]
        txt = f"{apy:.2%}"
        if r.get("rewards_value"):
            txt += f" ({r['apy_with_rewards']:.2%} w/ rewards)"
        t.add_row(r["strategy"], r["tokens"], f"${r['ending_value_usd']:,.2f}", f"{r['window_return']:+.2%}", txt,
                  r["advertised"],
                  r["verdict"], str(r["liquidations"]), f"{r['worst_drawdown']:.2%}",
                  f"{r['costs']:.4g} {r['unit']}", _short(r["notes"] or ""))
    Console(width=max(160, Console().width)).print(t)


def _short(text: str, width: int = 90) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."
