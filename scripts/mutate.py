"""Mutation check: does the test suite notice a wrong protocol rule?

Each mutation is one small wrong-rule edit (PROTOCOLS.md section named in `rule`) applied to the Cython kernel
(ext/) and, where the rule is duplicated, to the plain-Python twin (backtest/reference/) at the same time, so
the differential test alone cannot kill it: the rule tests must. One mutation at a time, in a throw-away copy
of the tracked files (never in this checkout): apply, rebuild the extension if ext/ changed, run the tests with
-x (hypothesis seeded, so a rerun gives the same table), restore. A mutation whose `old` text is not found
exactly once is an error (the list must follow the code). The differential tests run last: a mutant only they
kill (marked *) got past every rule test.

    python scripts/mutate.py              # the whole list, a table at the end
    python scripts/mutate.py --list       # ids, rules, files
    python scripts/mutate.py --only ID [--only ID2]
    python scripts/mutate.py --jobs 2     # that many copies in parallel (default 1: the machine is shared)
"""
from __future__ import annotations

import argparse
import concurrent.futures as cf
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
K_MATH, K_AAVE, K_MORPHO, K_COMET, K_RATES = "ext/_math.pxd", "ext/_aave.pxd", "ext/_morpho.pxd", "ext/_comet.pxd", "ext/_rates.pxd"
K_POS, K_STRAT, K_CORE = "ext/_position.pxd", "ext/_strategies.pxd", "ext/_core.pyx"
# the reference engine's files (backtest/reference/), by step; the IRM's plain-Python model; the Aave family's records
R_STATE, R_RATES, R_LIQ = "backtest/reference/state.py", "backtest/reference/rates.py", "backtest/reference/liquidation.py"
R_COSTS, R_STRAT, R_REPLAY = "backtest/reference/costs.py", "backtest/reference/strategy.py", "backtest/reference/replay.py"
IRM, AAVE3 = "backtest/irm.py", "backtest/venues/aave_v3.py"
ALIGN = "backtest/data/restaking.py"
COMET = "backtest/venues/compound_v3.py"     # the reference engine reads each venue's rate model from its record

# The rule tests, in the order they run (fast, hand-worked ones first); any other tests/unit file not listed in
# NOT_RULES (I/O, config parsing, importers) is appended, so tests added later are picked up.
RULE_FILES = ["test_aave_rules.py", "test_venues.py", "test_restaking.py", "test_properties.py",
              "test_venue_examples.py", "test_chains.py", "test_differential.py"]
NOT_RULES = {"test_align.py", "test_check.py", "test_cli.py", "test_config.py", "test_fetch.py",
             "test_importers.py", "test_lake.py", "test_params.py", "test_schema.py", "test_sweep.py",
             "test_synth.py", "test_config_fuzz.py", "test_output_safety.py", "test_run_refuses.py", "test_lake_formats.py",
             "test_lake_fuzz.py"}


@dataclass(frozen=True)
class Mutation:
    id: str
    rule: str
    edits: tuple          # ((path, old, new), ...): every edit of one wrong rule, kernel and reference together
    first: tuple = ()     # test files to run before the rest of the rule tests (the likeliest killers)


def M(id, rule, *edits, first=()):
    return Mutation(id, rule, tuple(edits), tuple(first))


AR, VE, RS = "test_aave_rules.py", "test_venues.py", "test_restaking.py"

MUTATIONS = [
    # --- Aave v3: health factor, close factor, bonus, fee, cap ------------------------------------------------
    M("aave-hf-no-lt", "Aave v3 / health factor (LT)",
      (K_CORE, "a[b] = por[b] * lt[b] * sidx[b] / bidx[b]", "a[b] = por[b] * sidx[b] / bidx[b]"),
      (R_REPLAY, "return pos.coll * self.oracle_price(b) * self.lt(b) / pos.debt",
            "return pos.coll * self.oracle_price(b) / pos.debt"), first=(AR,)),
    M("aave-hf-below-098", "Aave v3 / liquidatable when HF < 1",
      (K_CORE, "if hf < 1.0:\n                liquidate(", "if hf < 0.98:\n                liquidate("),
      (K_AAVE, "if not hf < 1.0:", "if not hf < 0.98:"),
      (R_STATE, "if hf < 1.0:\n                    self.liquidate(b)", "if hf < 0.98:\n                    self.liquidate(b)"),
      (R_LIQ, "            if not hf < 1.0:\n                return", "            if not hf < 0.98:\n                return"),
      first=(AR,)),
    M("aave-cf-60", "Aave v3 / close factor 50 %",
      (K_AAVE, "max_repay = 0.5 * debt if hf > CLOSE_FACTOR_HF_THRESHOLD else debt",
               "max_repay = 0.6 * debt if hf > CLOSE_FACTOR_HF_THRESHOLD else debt"),
      (R_LIQ, 'max_repay = 0.5 * debt if hf > CLOSE_FACTOR_HF_THRESHOLD else debt',
            'max_repay = 0.6 * debt if hf > CLOSE_FACTOR_HF_THRESHOLD else debt'), first=(AR,)),
    M("aave-cf-no-100", "Aave v3 / close factor 100 % at HF <= 0.95",
      (K_AAVE, "max_repay = 0.5 * debt if hf > CLOSE_FACTOR_HF_THRESHOLD else debt", "max_repay = 0.5 * debt"),
      (R_LIQ, 'max_repay = 0.5 * debt if hf > CLOSE_FACTOR_HF_THRESHOLD else debt',
            'max_repay = 0.5 * debt'), first=(AR,)),
    M("aave-cf-threshold-090", "Aave v3 / CLOSE_FACTOR_HF_THRESHOLD 0.95",
      (K_AAVE, "#define BT_CLOSE_FACTOR_HF_THRESHOLD 0.95", "#define BT_CLOSE_FACTOR_HF_THRESHOLD 0.90"),
      (R_LIQ, "CLOSE_FACTOR_HF_THRESHOLD = 0.95", "CLOSE_FACTOR_HF_THRESHOLD = 0.90"), first=(AR,)),
    M("aave-cf-threshold-strict", "Aave v3 / 100 % when HF <= 0.95 (not <)",
      (K_AAVE, "max_repay = 0.5 * debt if hf > CLOSE_FACTOR_HF_THRESHOLD else debt",
               "max_repay = 0.5 * debt if hf >= CLOSE_FACTOR_HF_THRESHOLD else debt"),
      (R_LIQ, 'max_repay = 0.5 * debt if hf > CLOSE_FACTOR_HF_THRESHOLD else debt',
            'max_repay = 0.5 * debt if hf >= CLOSE_FACTOR_HF_THRESHOLD else debt'), first=(AR,)),
    M("aave-no-bonus", "Aave v3 / seized = repaid x LB / price",
      (K_AAVE, "lb = 1.0 + m.bonus[b]", "lb = 1.0"),
      (R_LIQ, 'lb = 1.0 + float(r["liquidation_bonus"][b])', "lb = 1.0"), first=(AR,)),
    M("aave-cap-keeps-repay", "Aave v3 / seizure capped at the balance, repaid = value / LB",
      (K_AAVE, "seized = coll\n            repay = seized * pc / lb", "seized = coll"),
      (R_LIQ, 'seized = coll\n        repay = seized * pc / lb',
            'seized = coll'), first=(AR,)),
    M("aave-fee-on-seized", "Aave v3 / protocol fee = (seized - seized/LB) x fee",
      (K_AAVE, "fee_tokens = (seized - seized / lb) * pf", "fee_tokens = seized * pf"),
      (R_LIQ, "fee_tokens = (seized - seized / lb) * pf", "fee_tokens = seized * pf"), first=(AR,)),
    M("aave-one-liq-per-block", "Aave v3 / repeated liquidations within a block while HF < 1",
      (K_AAVE, "MAX_LIQUIDATIONS_PER_BLOCK = 64", "MAX_LIQUIDATIONS_PER_BLOCK = 1"),
      (R_LIQ, "MAX_LIQUIDATIONS_PER_BLOCK = 64", "MAX_LIQUIDATIONS_PER_BLOCK = 1"), first=(AR,)),
    # --- Aave v3.3 -------------------------------------------------------------------------------------------
    M("v33-date-ignored", "Aave v3.3 / activation date (market.v33_from)",
      (K_AAVE, "and m.ts[b] >= p.v33_from", "and True"),
      (R_LIQ, 'v33 = v.v33 and ts >= s.v33_from',
            'v33 = v.v33 and True'), first=(AR,)),
    M("v33-2000-and-to-or", "Aave v3.3 / 100 % below $2,000 of collateral OR debt",
      (K_AAVE, "and debt * usd >= MIN_BASE_MAX_CLOSE_FACTOR_USD", "or debt * usd >= MIN_BASE_MAX_CLOSE_FACTOR_USD"),
      (R_LIQ, 'and debt * usd >= MIN_BASE_MAX_CLOSE_FACTOR_USD',
            'or debt * usd >= MIN_BASE_MAX_CLOSE_FACTOR_USD'),
      first=(AR,)),
    M("v33-2000-is-4000", "Aave v3.3 / $2,000 threshold",
      (K_AAVE, "#define BT_MIN_BASE_MAX_CLOSE_FACTOR_USD 2000.0", "#define BT_MIN_BASE_MAX_CLOSE_FACTOR_USD 4000.0"),
      (R_LIQ, "MIN_BASE_MAX_CLOSE_FACTOR_USD = 2000.0", "MIN_BASE_MAX_CLOSE_FACTOR_USD = 4000.0"), first=(AR,)),
    M("v33-1000-is-100", "Aave v3.3 / $1,000 leftover",
      (K_AAVE, "#define BT_MIN_LEFTOVER_USD 1000.0", "#define BT_MIN_LEFTOVER_USD 100.0"),
      (R_LIQ, "MIN_LEFTOVER_USD = 1000.0", "MIN_LEFTOVER_USD = 100.0"), first=(AR,)),
    M("v33-leftover-debt-only", "Aave v3.3 / leftover of BOTH collateral and debt",
      (K_AAVE, "repay = min(repay, min(r1, r2))", "repay = min(repay, r1)"),
      (R_LIQ, "repay = min(repay, r1, r2)", "repay = min(repay, r1)"), first=(AR,)),
    M("v33-no-write-off", "Aave v3.3 / bad debt write-off",
      (K_AAVE, "write_off_bad_debt(st, m, o, b, debt)\n            return", "return"),
      (R_LIQ, "self.write_off(b)\n                return", "return"), first=(AR,)),
    M("v33-applies-to-v2", "Aave v3.3 / only v3 and Spark (not v2)",
      (K_AAVE, "v33 = (p.protocol == PROTO_AAVE_V3 or p.protocol == PROTO_SPARK) and",
               "v33 = (p.protocol == PROTO_AAVE_V3 or p.protocol == PROTO_SPARK or p.protocol == PROTO_AAVE_V2) and"),
      (AAVE3, 'AAVE_V2 = Venue("aave-v2", defaults=_aave_v2_defaults, close_factor=0.5',
            'AAVE_V2 = Venue("aave-v2", defaults=_aave_v2_defaults, v33=True, close_factor=0.5'), first=(AR,)),
    # --- Aave v2 ---------------------------------------------------------------------------------------------
    M("v2-cf-100", "Aave v2 / close factor fixed at 50 %",
      (K_AAVE, "max_repay = 0.5 * debt\n        elif v33", "max_repay = debt\n        elif v33"),
      (AAVE3, 'close_factor=0.5, protocol_fee=False',
            'close_factor=1.0, protocol_fee=False'), first=(AR,)),
    M("v2-has-fee", "Aave v2 / no protocol fee",
      (K_AAVE, "pf = 0.0 if p.protocol == PROTO_AAVE_V2 else m.pfee[b]", "pf = m.pfee[b]"),
      (AAVE3, 'close_factor=0.5, protocol_fee=False',
            'close_factor=0.5, protocol_fee=True'),
      first=(AR,)),
    # --- Aave interest ---------------------------------------------------------------------------------------
    M("aave-index-no-cubic", "Aave v3 / binomial borrow index, cubic term",
      (K_MATH, "\n            + dt * (dt - 1.0) * (dt - 2.0) * rps * rps * rps / 6.0)", ")"),
      (R_RATES, " + dt * (dt - 1.0) * (dt - 2.0) * rps * rps * rps / 6.0", ""), first=(AR,)),
    M("aave-index-no-square", "Aave v3 / binomial borrow index, square term",
      (K_MATH, "1.0 + rps * dt + dt * (dt - 1.0) * rps * rps / 2.0", "1.0 + rps * dt"),
      (R_RATES, "1.0 + rps * dt + dt * (dt - 1.0) * rps * rps / 2.0", "1.0 + rps * dt"), first=(AR,)),
    M("aave-supply-compounds", "Aave v3 / linear supply (liquidity) index",
      (K_MATH, "# calculateLinearInterest: 1 + rt/Y\n    if dt <= 0:\n        return 1.0\n    return 1.0 + rate * dt / SECONDS_PER_YEAR",
               "# calculateLinearInterest: 1 + rt/Y\n    return aave_borrow_growth(rate, dt)"),
      (R_RATES, "calculateLinearInterest: 1 + rt/Y.\"\"\"\n    if dt <= 0:\n        return 1.0\n    return 1.0 + rate * dt / Y",
            "calculateLinearInterest: 1 + rt/Y.\"\"\"\n    return aave_borrow_growth(rate, dt)"), first=(AR,)),
    # --- Morpho Blue -----------------------------------------------------------------------------------------
    M("morpho-liq-below-098", "Morpho Blue / unhealthy iff coll x price x LLTV < debt",
      (K_MORPHO, "if not hf_of(st, m, b) < 1.0:", "if not hf_of(st, m, b) < 0.98:"),
      (R_LIQ, "not self.hf(b) < 1.0:\n            return\n        pc = self.oracle_price(b)\n        lif",
            "not self.hf(b) < 0.98:\n            return\n        pc = self.oracle_price(b)\n        lif"), first=(VE,)),
    M("morpho-lif-03-to-05", "Morpho Blue / LIF = min(1.15, 1/(0.3 LLTV + 0.7))",
      (K_MATH, "1.0 / (1.0 - 0.3 * (1.0 - lltv))", "1.0 / (1.0 - 0.5 * (1.0 - lltv))"),
      (R_LIQ, "1.0 / (1.0 - 0.3 * (1.0 - lltv))", "1.0 / (1.0 - 0.5 * (1.0 - lltv))"), first=(VE,)),
    M("morpho-lif-no-cap", "Morpho Blue / LIF capped at 1.15",
      (K_MATH, "return f if f < 1.15 else 1.15", "return f"),
      (R_LIQ, "return min(1.15, 1.0 / (1.0 - 0.3 * (1.0 - lltv)))", "return 1.0 / (1.0 - 0.3 * (1.0 - lltv))"),
      first=(VE,)),
    M("morpho-half-repay", "Morpho Blue / no close factor (repay all)",
      (K_MORPHO, "repay = debt\n    seized = repay * lif / pc", "repay = 0.5 * debt\n    seized = repay * lif / pc"),
      (R_LIQ, "repay = pos.debt\n        seized = repay * lif / pc", "repay = 0.5 * pos.debt\n        seized = repay * lif / pc"),
      first=(VE,)),
    M("morpho-no-bad-debt", "Morpho Blue / bad debt written off",
      (K_MORPHO, "if coll == 0.0 and debt >", "if False and debt >"),
      (R_LIQ, "self.write_off(b)\n\n    def absorb_comet", "pass\n\n    def absorb_comet"), first=(VE,)),
    M("morpho-taylor-no-cubic", "Morpho Blue / Taylor interest x + x^2/2 + x^3/6",
      (K_MATH, "return 1.0 + x + x * x / 2.0 + x * x * x / 6.0", "return 1.0 + x + x * x / 2.0"),
      (R_RATES, "return 1.0 + x + x * x / 2.0 + x * x * x / 6.0", "return 1.0 + x + x * x / 2.0"), first=(VE,)),
    M("morpho-taylor-no-square", "Morpho Blue / Taylor interest x^2/2",
      (K_MATH, "return 1.0 + x + x * x / 2.0 + x * x * x / 6.0", "return 1.0 + x + x * x * x / 6.0"),
      (R_RATES, "return 1.0 + x + x * x / 2.0 + x * x * x / 6.0", "return 1.0 + x + x * x * x / 6.0"), first=(VE,)),
    M("irm-target-08", "Morpho AdaptiveCurveIRM / target utilisation 0.9",
      (K_RATES, "#define BT_IRM_TARGET_U 0.9", "#define BT_IRM_TARGET_U 0.8"),
      (IRM, "IRM_TARGET_U = 0.9", "IRM_TARGET_U = 0.8"), first=(VE,)),
    M("irm-steepness-3", "Morpho AdaptiveCurveIRM / curve steepness 4",
      (K_RATES, "#define BT_IRM_STEEPNESS 4.0", "#define BT_IRM_STEEPNESS 3.0"),
      (IRM, "IRM_STEEPNESS = 4.0", "IRM_STEEPNESS = 3.0"), first=(VE,)),
    M("irm-speed-25", "Morpho AdaptiveCurveIRM / adjustment speed 50/yr",
      (K_RATES, "#define BT_IRM_SPEED 50.0", "#define BT_IRM_SPEED 25.0"),
      (IRM, "IRM_SPEED = 50.0", "IRM_SPEED = 25.0"), first=(VE,)),
    M("irm-no-max-bound", "Morpho AdaptiveCurveIRM / r_T bounded to [0.1 %, 200 %]",
      (K_RATES, "#define BT_IRM_MAX_RT 2.0", "#define BT_IRM_MAX_RT 1e9"),
      (IRM, "IRM_MAX_RT = 2.0", "IRM_MAX_RT = 1e9"), first=(VE,)),
    M("irm-no-min-bound", "Morpho AdaptiveCurveIRM / r_T bounded to [0.1 %, 200 %]",
      (K_RATES, "#define BT_IRM_MIN_RT 0.001", "#define BT_IRM_MIN_RT 0.0"),
      (IRM, "IRM_MIN_RT = 0.001", "IRM_MIN_RT = 0.0"), first=(VE,)),
    M("irm-end-rate-not-trapezoid", "Morpho AdaptiveCurveIRM / trapezoid (start + end + 2 mid)/4",
      (K_RATES, "avg = (start_rt + end_rt[0] + 2.0 * mid) / 4.0", "avg = end_rt[0]"),
      (IRM, "return irm_curve((start_rt + end + 2.0 * mid) / 4.0, err), end", "return irm_curve(end, err), end"),
      first=(VE,)),
    M("irm-below-curve-steep", "Morpho AdaptiveCurveIRM / (0.75 err + 1) r_T below target",
      (K_RATES, "return ((1.0 - 1.0 / IRM_STEEPNESS) * err + 1.0) * rate_at_target",
                "return ((IRM_STEEPNESS - 1.0) * err + 1.0) * rate_at_target"),
      (IRM, "return ((1.0 - 1.0 / IRM_STEEPNESS) * err + 1.0) * rate_at_target",
            "return ((IRM_STEEPNESS - 1.0) * err + 1.0) * rate_at_target"), first=(VE,)),
    # --- Compound III ----------------------------------------------------------------------------------------
    M("comet-no-liq-factor", "Compound III / absorb credits value x liquidation factor",
      (K_COMET, "credit = value * (1.0 - m.bonus[b])", "credit = value"),
      (R_LIQ, 'credit = value * float(self.risk["liquidation_factor"][b])', "credit = value"), first=(VE,)),
    M("comet-excess-lost", "Compound III / excess credit becomes the borrower's base asset",
      (K_COMET, "st.cash += excess", "st.cash += 0.0"),
      (R_LIQ, "pos.cash += credit - repay", "pos.cash += 0.0"), first=(VE,)),
    M("comet-no-bad-debt", "Compound III / shortfall covered by reserves (bad debt)",
      (K_COMET, "if shortfall >", "if False and shortfall >"),
      (R_LIQ, "if shortfall >", "if False and shortfall >"), first=(VE,)),
    # both engines read Comet's rate model from its venue record (the kernel as its codes): one edit mutates both
    M("comet-index-compounds", "Compound III / borrow index linear per accrual",
      (COMET, 'growth=("none", "linear")', 'growth=("none", "binomial")'),
      first=(VE,)),
    M("comet-collateral-earns", "Compound III / collateral earns nothing",
      (COMET, 'supply_yield=False, growth=("none", "linear")', 'supply_yield=True, growth=("linear", "linear")'),
      first=(VE,)),
    # --- oracles ---------------------------------------------------------------------------------------------
    M("capo-no-growth-time", "Aave oracle / CAPO cap = snapshot x (1 + g dt / Y)",
      (K_CORE, "(1.0 + capo_growth * <double>(ts[b] - snap_ts) / SECONDS_PER_YEAR)", "(1.0 + capo_growth)"),
      (R_REPLAY, "cap = snap * (1.0 + self.capo_growth * (ts - snap_ts) / Y)", "cap = snap * (1.0 + self.capo_growth)"),
      first=(AR,)),
    M("capo-uncapped", "Aave oracle / CAPO price = min(live, cap)",
      (K_CORE, "por[b] = xrate[b] if xrate[b] < cap else cap", "por[b] = xrate[b]"),
      (R_REPLAY, "return min(float(m.xrate[b]), cap)", "return float(m.xrate[b])"), first=(AR,)),
    M("capo-fresh-snapshot", "Aave oracle / CAPO snapshot at least 7 days old",
      (K_CORE, "snap_ts = (ts[b] // capo_age) * capo_age - capo_age", "snap_ts = (ts[b] // capo_age) * capo_age"),
      (R_REPLAY, "snap_ts = (ts // age) * age - age", "snap_ts = (ts // age) * age"), first=(AR,)),
    M("oracle-rate-is-market", "Aave oracle / exchange-rate mode ignores the DEX",
      (K_CORE, "por[b] = xrate[b]\n        elif oracle == ORACLE_MARKET:", "por[b] = price[b]\n        elif oracle == ORACLE_MARKET:"),
      (R_REPLAY, 'return float(m.xrate[b])\n        if self.oracle == "market":', 'return float(m.price[b])\n        if self.oracle == "market":'),
      first=(AR,)),
    M("oracle-market-is-rate", "Aave oracle / market mode is the DEX price (pre-2023-06 de-pegs)",
      (K_CORE, "por[b] = price[b]\n        elif oracle == ORACLE_FEED:", "por[b] = xrate[b]\n        elif oracle == ORACLE_FEED:"),
      (R_REPLAY, 'return float(m.price[b])\n        if self.oracle == "chainlink":', 'return float(m.xrate[b])\n        if self.oracle == "chainlink":'),
      first=(AR,)),
    M("oracle-feed-is-rate", "Aave oracle / chainlink mode reads oracle_prices",
      (K_CORE, "por[b] = feed[b]", "por[b] = xrate[b]"),
      (R_REPLAY, "return float(m.oracle_feed[b])", "return float(m.xrate[b])"), first=(AR,)),
    # --- rebalancing -----------------------------------------------------------------------------------------
    M("delev-half-size", "Strategy / deleverage back to target_hf",
      (K_STRAT, "delta = (h * debt - coll * pc * lt) / denom", "delta = 0.5 * (h * debt - coll * pc * lt) / denom"),
      (R_STRAT, "delta = (h * pos.debt - pos.coll * pc * lt) / denom", "delta = 0.5 * (h * pos.debt - pos.coll * pc * lt) / denom"),
      first=(AR,)),
    M("delev-no-flash-fee", "Strategy / flash fee in the deleverage size",
      (K_STRAT, "denom = h * px * k / (1.0 + ff) - pc * lt", "denom = h * px * k - pc * lt"),
      (R_STRAT, "denom = h * px * k / (1.0 + ff) - pc * lt", "denom = h * px * k - pc * lt"), first=(AR,)),
    M("delev-no-swap-costs", "Strategy / swap fee and slippage in the deleverage size",
      (K_STRAT, "        k = out / (delta * px)", "        k = 1.0"),
      (R_STRAT, "            k = out / (delta * px)", "            k = 1.0"), first=(AR,)),
    M("delev-no-close-all", "Strategy / deleverage closes everything when it cannot reach the target",
      (K_STRAT, "if out >= debt * (1.0 + ff):", "if False:"),
      (R_STRAT, "if out >= pos.debt * (1.0 + ff):", "if False:"), first=(AR,)),
    M("relev-no-ltv-cap", "Strategy / releverage never above the max LTV",
      (K_STRAT, "f = min(f_h, f_c)", "f = f_h"),
      (R_STRAT, "f = min(f_h, f_c)", "f = f_h"), first=(AR,)),
    M("relev-no-flash-fee", "Strategy / flash fee in the releverage size",
      (K_STRAT, "d_h = h * (1.0 + ff) - kq * pc * lt / px", "d_h = h - kq * pc * lt / px"),
      (R_STRAT, "d_h = h * (1.0 + ff) - kq * pc * lt / px", "d_h = h - kq * pc * lt / px"), first=(AR,)),
    M("relev-no-slippage-sizing", "Strategy / swap costs in the releverage size",
      (K_STRAT, "kq = t * px / f", "kq = kq"),
      (R_STRAT, "kq = t * px / f", "kq = kq"), first=(AR,)),
    M("loop-no-ltv-room", "Strategy / loops never borrow above the max LTV",
      (K_STRAT, "if borrow > room:", "if False:"),
      (R_STRAT, "if borrow > room:", "if False:"), first=(AR,)),
    M("flash-open-no-fee-debt", "Costs / flash fee added to the flash-loan debt",
      (K_STRAT, "debt_of(st, m, b) + f * (1.0 + ff))", "debt_of(st, m, b) + f)"),
      (R_STRAT, "pos.debt += f * (1.0 + ff)\n            self.tidy()", "pos.debt += f\n            self.tidy()"),
      first=(AR,)),
    M("close-no-flash-fee", "Costs / flash fee when closing (exit, unwind)",
      (K_STRAT, "ff = p.flash_fee if debt >", "ff = 0.0 if debt >"),
      (R_STRAT, 'ff = s.costs.flash_fee if debt >', "ff = 0.0 if debt >"), first=(AR,)),
    # --- slippage, gas, queue --------------------------------------------------------------------------------
    M("slip-cp-wrong", "Costs / constant-product slippage dx/(depth + dx)",
      (K_MATH, "return notional / (depth + notional)", "return notional / depth"),
      (R_COSTS, 'return notional / (c.pool_depth + notional)', 'return notional / c.pool_depth'), first=(AR,)),
    M("slip-linear-bp", "Costs / linear slippage in bp per unit",
      (K_MATH, "min(slip_param * notional / 1e4, 0.99)", "min(slip_param * notional / 1e3, 0.99)"),
      (R_COSTS, 'min(c.slippage_bps * notional / 1e4, 0.99)', 'min(c.slippage_bps * notional / 1e3, 0.99)'),
      first=(AR,)),
    M("slip-stableswap-amp", "Costs / StableSwap A n^n (n = 2)",
      (K_MATH, "ann = amp * 4.0", "ann = amp * 2.0"),
      (R_COSTS, "ann = amp * 4.0", "ann = amp * 2.0"), first=(AR,)),
    M("gas-fixed-ignored", "Costs / gas at a fixed price (costs.gas_gwei)",
      (K_POS, "cdef double price = m.gas[b] if isnan(p.gas_gwei) else p.gas_gwei", "cdef double price = m.gas[b]"),
      (R_COSTS, "price = float(self.m.gas_gwei[b]) if g is None else g", "price = float(self.m.gas_gwei[b])"),
      first=(AR,)),
    M("gas-series-ignored", "Costs / gas from the gas-price series",
      (K_POS, "cdef double price = m.gas[b] if isnan(p.gas_gwei) else p.gas_gwei",
              "cdef double price = 0.0 if isnan(p.gas_gwei) else p.gas_gwei"),
      (R_COSTS, "price = float(self.m.gas_gwei[b]) if g is None else g",
            "price = 0.0 if g is None else g"), first=(AR,)),
    M("queue-no-delay", "Strategy / withdrawal queue delay",
      (K_STRAT, "if p.queue_late_from > 0 and m.ts[b] >= p.queue_late_from:\n            st.release_ts = m.ts[b] + p.queue_delay_late\n"
                "        else:\n            st.release_ts = m.ts[b] + p.queue_delay", "st.release_ts = m.ts[b]"),
      (R_STRAT, 'pos.release_ts = int(self.m.ts[b]) + (ex.queue_delay_late if late else ex.queue_delay)',
            "pos.release_ts = int(self.m.ts[b])"), first=(RS,)),
    M("queue-late-delay-ignored", "Restaking / EigenLayer delay 7 d -> 14 d from 2025",
      (K_STRAT, "st.release_ts = m.ts[b] + p.queue_delay_late", "st.release_ts = m.ts[b] + p.queue_delay"),
      (R_STRAT, '(ex.queue_delay_late if late else ex.queue_delay)', 'ex.queue_delay'), first=(RS,)),
    # --- restaking -------------------------------------------------------------------------------------------
    M("reward-wallet-only", "Restaking / rewards accrue on the collateral tokens held",
      (K_POS, "o.sm.restaking_rewards += st.s * (m.KR[b] - m.KR[b0]) + st.w", "o.sm.restaking_rewards += st.w"),
      (R_REPLAY, 'sm["restaking_rewards"] += (pos.coll + pos.wallet) *', 'sm["restaking_rewards"] += pos.wallet *'),
      first=(RS,)),
    M("slash-cost-after-cut", "Restaking / slash cost at the rate before the cut",
      (K_CORE, "tokens * m.xrate[b] * m.slash[b] / (1.0 - m.slash[b])", "tokens * m.xrate[b] * m.slash[b]"),
      (R_REPLAY, "tokens * float(m.xrate[b]) * f / (1.0 - f)", "tokens * float(m.xrate[b]) * f"), first=(RS,)),
    M("slash-no-cut", "Restaking / a slash cuts the exchange rate (align, Python layer)",
      (ALIGN, "xrate[i:] *= 1.0 - f", "pass"), first=(RS,)),
]


# ------------------------------------------------------------------------------------------------ machinery
def rule_tests(copy: Path, first: tuple) -> list[str]:
    unit = copy / "tests" / "unit"
    present = sorted(p.name for p in unit.glob("test_*.py"))
    order = list(first) + [f for f in RULE_FILES if f not in first]
    order += [f for f in present if f not in order and f not in NOT_RULES]
    # the differential tests last: a mutant they alone kill got past every rule test (flagged in the table)
    order = [f for f in order if not is_differential(f)] + [f for f in order if is_differential(f)]
    return [f"tests/unit/{f}" for f in order if f in present]


def is_differential(test: str) -> bool:
    return test.split("/")[-1].split("::")[0].startswith("test_differential")


def make_copy(dest: Path) -> None:
    """The tracked files as they are in the working tree (not the untracked build products)."""
    files = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, check=True, capture_output=True).stdout
    for rel in filter(None, files.decode().split("\0")):
        src = ROOT / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    # -O0: the mutants need correct code, not fast code; the compile is most of a mutant's time
    setup = dest / "setup.py"
    setup.write_text(setup.read_text().replace('"-O3"', '"-O0"'))


def env_for(copy: Path) -> dict:
    env = dict(os.environ, PYTHONPATH=str(copy), PYTHONDONTWRITEBYTECODE="1")
    env.pop("PYTEST_ADDOPTS", None)
    return env


def build(copy: Path) -> tuple[bool, str]:
    for c in copy.glob("ext/_core.c"):
        c.unlink()                    # force cythonize: it decides on mtimes
    r = subprocess.run(["nice", "-n", "10", sys.executable, "setup.py", "-q", "build_ext", "--inplace"],
                       cwd=copy, env=env_for(copy), capture_output=True, text=True)
    return r.returncode == 0, (r.stdout + r.stderr)[-3000:]


def check_import(copy: Path) -> None:
    r = subprocess.run([sys.executable, "-c", "import backtest, backtest._core as c; print(backtest.__file__); print(c.__file__)"],
                       cwd=copy, env=env_for(copy), capture_output=True, text=True, check=True)
    for line in r.stdout.split():
        if not Path(line).resolve().is_relative_to(copy.resolve()):
            sys.exit(f"mutate: the copy imports {line}, not its own package: refusing to go on")


def run_tests(copy: Path, files: list[str]) -> tuple[bool, str, str]:
    """(all passed, first failing test id or the error tail, pytest's output tail)."""
    r = subprocess.run(["nice", "-n", "10", sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider",
                        "-o", "addopts=", "--no-header", "-rf", "--hypothesis-seed=0", *files],
                       cwd=copy, env=env_for(copy), capture_output=True, text=True)
    tail = "\n".join((r.stdout + r.stderr).strip().splitlines()[-40:])
    if r.returncode == 0:
        return True, "", tail
    m = re.search(r"^FAILED (\S+)", r.stdout, re.M) or re.search(r"^ERROR (\S+)", r.stdout, re.M)
    return False, m.group(1) if m else tail.splitlines()[-1][:120], tail


def apply(copy: Path, mut: Mutation) -> dict[str, str]:
    """Apply every edit of `mut`; return the original texts to restore. Each old text must occur exactly once."""
    saved: dict[str, str] = {}
    for path, old, new in mut.edits:
        f = copy / path
        if path not in saved:
            saved[path] = f.read_text()
        text = f.read_text()
        n = text.count(old)
        if n != 1:
            restore(copy, saved)
            raise SystemExit(f"mutate: {mut.id}: the text to replace occurs {n} times in {path} (must be once):\n{old}")
        f.write_text(text.replace(old, new))
    return saved


def restore(copy: Path, saved: dict[str, str]) -> None:
    for path, text in saved.items():
        (copy / path).write_text(text)


def check_list_against(copy: Path, muts: list[Mutation]) -> None:
    # every `old` must be found exactly once before anything is built (fails loudly, nothing run)
    for mut in muts:
        restore(copy, apply(copy, mut))


def worker(muts: list[Mutation], results: dict, log, show: bool = False) -> None:
    with tempfile.TemporaryDirectory(prefix="mutate-") as tmp:
        copy = Path(tmp)
        make_copy(copy)
        ok, out = build(copy)
        if not ok:
            sys.exit(f"mutate: the unmutated copy does not build:\n{out}")
        check_import(copy)
        so = next(copy.glob("backtest/_core*.so"))
        pristine_so = so.read_bytes()
        for mut in muts:
            t0 = time.time()
            touches_ext = any(p.startswith("ext/") for p, _, _ in mut.edits)
            saved = apply(copy, mut)
            try:
                ok, out = build(copy) if touches_ext else (True, "")
                if not ok:     # a mutant that does not compile says nothing about the tests
                    results[mut.id] = ("build-error", out.strip().splitlines()[-1][:100], time.time() - t0)
                else:
                    passed, first, tail = run_tests(copy, rule_tests(copy, mut.first))
                    results[mut.id] = ("survived" if passed else "killed", first, time.time() - t0)
                    if show and not passed:
                        print(f"--- {mut.id}: pytest says\n{tail}\n---", flush=True)
            finally:
                restore(copy, saved)
                if touches_ext:
                    so.write_bytes(pristine_so)
            log(mut, results[mut.id])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", action="append", metavar="ID", help="run only this mutation (repeatable)")
    ap.add_argument("--list", action="store_true", help="list the mutations and exit")
    ap.add_argument("--jobs", type=int, default=1, help="copies run in parallel (default 1)")
    ap.add_argument("--baseline", action="store_true", help="first check the unmutated copy passes the tests")
    ap.add_argument("--show", action="store_true", help="print pytest's output tail for each killed mutant")
    a = ap.parse_args(argv)
    ids = [m.id for m in MUTATIONS]
    if len(set(ids)) != len(ids):
        sys.exit("mutate: duplicate mutation ids")
    if a.list:
        for m in MUTATIONS:
            print(f"{m.id:28} {m.rule:60} {', '.join(sorted({p for p, _, _ in m.edits}))}")
        return 0
    muts = MUTATIONS
    if a.only:
        unknown = [i for i in a.only if i not in ids]
        if unknown:
            print(f"mutate: unknown mutation id(s) {', '.join(unknown)} (see --list)", file=sys.stderr)
            return 2
        muts = [m for m in MUTATIONS if m.id in a.only]
    if a.jobs < 1:
        print("mutate: --jobs must be >= 1", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="mutate-check-") as tmp:
        make_copy(Path(tmp))
        check_list_against(Path(tmp), muts)
        if a.baseline:
            ok, out = build(Path(tmp))
            if not ok:
                sys.exit(f"mutate: the unmutated copy does not build:\n{out}")
            check_import(Path(tmp))
            passed, first, _ = run_tests(Path(tmp), rule_tests(Path(tmp), ()))
            if not passed:
                sys.exit(f"mutate: the unmutated copy fails {first}: fix the suite first")
            print("baseline: the unmutated copy passes the rule tests", flush=True)

    results: dict = {}
    t0 = time.time()

    def log(mut, res):
        print(f"  {mut.id:28} {res[0]:11} {res[2]:5.0f}s  {res[1]}", flush=True)

    shards = [muts[i::a.jobs] for i in range(a.jobs)]
    with cf.ThreadPoolExecutor(a.jobs) as ex:
        for f in [ex.submit(worker, s, results, log, a.show) for s in shards if s]:
            f.result()
    print(f"\n{'id':28} {'rule':66} {'result':11} first failing test")
    for m in muts:
        st, first, _ = results[m.id]
        if st == "killed" and is_differential(first):
            st = "killed*"
        print(f"{m.id:28} {m.rule:66} {st:11} {first}")
    n_k = sum(r[0] == "killed" for r in results.values())
    n_d = sum(r[0] == "killed" and is_differential(r[1]) for r in results.values())
    print(f"\n{n_k} of {len(muts)} killed ({n_d} of them, marked *, only by the differential test: core and "
          f"reference drifted apart under the mutant, no rule test failed), "
          f"{sum(r[0] == 'survived' for r in results.values())} survived, "
          f"{sum(r[0] == 'build-error' for r in results.values())} did not build; {time.time() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
