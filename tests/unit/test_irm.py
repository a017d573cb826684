"""The synthetic lake's plain-Python AdaptiveCurveIRM (backtest.irm) is the reference engine's model."""
from __future__ import annotations

import math

from backtest import irm, reference


def test_the_reference_engine_reads_the_one_plain_python_irm():
    # one model, not two copies kept equal: the reference engine's names are backtest.irm's
    for name in ("irm_step", "irm_curve", "irm_err", "adaptive_curve_rates", "IRM_TARGET_U", "IRM_MAX_RT"):
        assert getattr(reference, name) is getattr(irm, name), name
    assert reference.IRM_INITIAL_RT == irm.IRM_INITIAL_RATE == 0.04


def test_adaptive_curve_rates_steps_irm_step_along_the_path():
    # two blocks a day apart at U = 0.95, then U = 0.45: rate[0] and r_T[1] are one irm_step from r_T0;
    # the last rate is the curve at r_T[1] with err = (0.45 - 0.9) / 0.9 = -0.5: (0.75 x -0.5 + 1) r_T
    rate, rt = irm.adaptive_curve_rates([0, 86400], [0.95, 0.45], 0.04)
    r0, rt1 = irm.irm_step(0.04, 0.95, 86400.0)
    assert (rate[0], rt[0], rt[1]) == (r0, 0.04, rt1)
    assert math.isclose(rate[1], (0.75 * -0.5 + 1) * rt1, rel_tol=1e-15)


def test_irm_step_by_hand():
    # U = 0.95: err = (0.95 - 0.9) / 0.1 = 0.5; one day: lin = 50 x 0.5 x 86400 / 31536000
    lin = 50 * 0.5 * 86400 / 31536000
    end, mid = 0.04 * math.exp(lin), 0.04 * math.exp(lin / 2)
    rate, rt = irm.irm_step(0.04, 0.95, 86400.0)
    assert rt == end
    assert math.isclose(rate, (3 * 0.5 + 1) * (0.04 + end + 2 * mid) / 4, rel_tol=1e-15)
