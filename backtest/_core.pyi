"""Python signatures of the compiled replay core (ext/_core.pyx, built as backtest._core).

Arrays are C-contiguous numpy arrays: int64 for times and indices, float64 otherwise; ``Params``, ``Summary``
and ``Event`` arrays use backtest.schema's PARAMS_DTYPE, SUMMARY_DTYPE and EVENT_DTYPE. tests/unit/test_schema.py
checks that every def of ext/_core.pyx is declared here and nothing else.
"""
from typing import Any

import numpy as np
from numpy.typing import NDArray

F64 = NDArray[np.float64]
I64 = NDArray[np.int64]


def build_indices(ts: I64, xrate: F64, supply_apr: F64, borrow_apr: F64, supply_model: int = 0,
                  borrow_model: int = 0, underlying_price: F64 | None = None) -> dict[str, F64]:
    """{"sidx", "bidx", "K", "K2", "KW"}: the reserve indices and the yield integrals (debt asset), grown by the
    rate model's codes (backtest.venues.growth_codes)."""


def growth_codes() -> tuple[dict[str, int], dict[str, int]]:
    """The rate-model codes (supply, borrow) by name."""


def adaptive_curve_rates(ts: I64, utilization: F64, rate_at_target0: float) -> tuple[F64, F64]:
    """Morpho's AdaptiveCurveIRM along a utilisation path: (borrow APR, rate at target) per block."""


def liquidation_incentive_factor(lltv: float) -> float:
    """Morpho Blue's LIF = min(1.15, 1 / (0.3 LLTV + 0.7))."""


def protocol_codes() -> dict[str, int]:
    """The PROTO_* enum values by venue name."""


def enum_codes() -> dict[str, Any]:
    """Every enum of ext/_types.pxd by its config name ({"protocol": {...}, "kind": {...}, ...,
    "n_record": int})."""


def build_lane(ts: I64, xrate: F64, price: F64, feed: F64, lt: F64, sidx: F64, bidx: F64, oracle: int,
               capo_growth: float, capo_age: int, chunk: int, por: F64, a: F64, amin: F64, amax: F64, aarg: I64,
               pre_ts: I64 | None = None, pre_xrate: F64 | None = None,
               underlying_price: F64 | None = None, oracle_scale: F64 | None = None,
               oracle_cap: F64 | None = None) -> None:
    """Fill one lane in place: oracle price, a = oracle x LT x sidx / bidx, per-chunk min / max / argmin of a.
    oracle_scale / oracle_cap: the [[scenario]] oracle offset and governance CAPO cap (None: none)."""


def chunk_qmin(price: F64, xrate: F64, chunk: int, underlying_price: F64 | None = None) -> F64:
    """Per-chunk minimum of the de-peg ratio price / (xrate x underlying_price)."""


def run_batch(params: np.ndarray, market: dict[str, np.ndarray], lanes: dict[str, Any], qmin: F64, rec_idx: I64,
              metric_every: int, chunk: int, summaries: np.ndarray, events: np.ndarray, records: F64,
              dense: bool = False, threads: int = 0) -> None:
    """Replay every configuration of params over one market, writing summaries, events and records in place."""


def run_batch_legs(params: np.ndarray, weights: F64, market: dict[str, np.ndarray], legs: dict[str, np.ndarray],
                   lanes: dict[str, Any], rec_idx: I64, metric_every: int, chunk: int, summaries: np.ndarray,
                   events: np.ndarray, event_legs: I64, records: F64, leg_records: F64, leg_summary: F64,
                   dense: bool = False, threads: int = 0) -> None:
    """Replay every configuration over one multi-collateral market (ext/_legs.pxi): weights [config, leg],
    per-leg market and lane arrays [leg, block] / [lane, leg, block]; outputs written in place."""


def run_batch_paths(params: np.ndarray, pair_path: I64, market: dict[str, np.ndarray], lanes: dict[str, Any],
                    sample_idx: I64, factor: F64, lane_modes: dict[str, np.ndarray], rec_idx: I64,
                    metric_every: int, chunk: int, summaries: np.ndarray, events: np.ndarray, records: F64,
                    scale_hold: bool, dense: bool = False, threads: int = 0) -> None:
    """Replay (params[i], path pair_path[i]) pairs, the collateral's price x factor[path, sample_idx[b]]
    (ext/_paths.pxi); outputs written in place."""


def set_full_body_only(on: bool) -> None:
    """Private, for tests: replay every block the chunk skip does not skip with the full block body (no
    quiet-stretch fast path); outputs are bit-identical either way."""


def struct_sizes() -> dict[str, int]:
    """sizeof of the packed Params, Summary and Event structs."""


# --- the strategy book (ext/_book.pxi); backtest/reference_book.py names the summary vectors
def stableswap_invariant(x0: float, x1: float, amp: float) -> float:
    """D of a 2-coin StableSwap pool at balances x0, x1."""


def stableswap_pool_price(x0: float, x1: float, amp: float) -> float:
    """The pool's price of coin 1 in coin 0 at these balances."""


def book_lp(reserve0: F64, reserve1: F64, virtual_price: F64, amp: F64, price: F64, gas_gwei: F64,
            capital: float, gas_open: float, gas_close: float) -> tuple[F64, F64, F64, F64]:
    """A Curve StableSwap share marked at market prices: (LP_FIELDS vector, value, hold, LST share)."""


def book_vault(ts: I64, price: F64, oracle: F64, supply_apr: F64, borrow_apr: F64, lt: F64, bonus: F64,
               gas_gwei: F64, params: F64, max_events: int = 100000) -> tuple[F64, F64, F64]:
    """A lend / loop vault with fees charged block by block: (VAULT_FIELDS vector, holder value, event rows)."""


def book_basket(ts: I64, prices: F64, natives: F64, weights: F64, capital: float, swap_fee: float,
                every: int, max_events: int = 100000) -> tuple[F64, F64, F64, F64, F64]:
    """A re-weighted basket against the natives: (BASKET_FIELDS vector, value, bench, end units, event rows)."""


def book_farm(ts: I64, deposit_price: F64, reward_rate: F64, reward_price: F64, capital: float,
              swap_fee: float, halving: float, sell_every: int, exit_after: int,
              max_events: int = 100000) -> tuple[F64, F64, F64]:
    """A liquidity-mining deposit: (FARM_FIELDS vector, value, event rows)."""
