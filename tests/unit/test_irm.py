"""The synthetic lake's plain-Python AdaptiveCurveIRM (backtest.irm) is the reference engine's model."""
from __future__ import annotations

import math

from backtest import irm, reference


def test_irm_step_equals_the_reference_engines_on_a_grid():
    for rt in (0.001, 0.04, 0.5, 2.0):
        for u in (0.0, 0.45, 0.9, 0.95, 1.0, 1.2):
            for dt in (0.0, 12.0, 3600.0, 86400.0 * 30):
                assert irm.irm_step(rt, u, dt) == reference.irm_step(rt, u, dt)


def test_irm_step_by_hand():
    # U = 0.95: err = (0.95 - 0.9) / 0.1 = 0.5; one day: lin = 50 x 0.5 x 86400 / 31536000
    lin = 50 * 0.5 * 86400 / 31536000
    end, mid = 0.04 * math.exp(lin), 0.04 * math.exp(lin / 2)
    rate, rt = irm.irm_step(0.04, 0.95, 86400.0)
    assert rt == end
    assert math.isclose(rate, (3 * 0.5 + 1) * (0.04 + end + 2 * mid) / 4, rel_tol=1e-15)
