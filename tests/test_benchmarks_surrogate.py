"""The pure helpers behind benchmarks/surrogate_vs_stencil.py: the equal-error speed ratio users quote."""

import importlib.util
import math
import sys
from pathlib import Path

import numpy as np
import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "surrogate_vs_stencil.py"
spec = importlib.util.spec_from_file_location("surrogate_vs_stencil", SCRIPT)
svs = importlib.util.module_from_spec(spec)
sys.modules[spec.name] = svs  # dataclasses look their module up there
spec.loader.exec_module(svs)


def test_pareto_front_drops_dominated_and_unstable_points():
    points = [(10.0, 0.01), (1.0, 0.1), (2.0, 0.2), (5.0, 0.05), (6.0, 0.05), (3.0, math.inf), (0.5, 0.3)]
    assert svs.pareto_front(points) == [(0.5, 0.3), (1.0, 0.1), (5.0, 0.05), (10.0, 0.01)]
    assert svs.pareto_front([(1.0, math.inf), (math.inf, 0.1)]) == []


def test_equal_error_time_interpolates_a_power_law_exactly():
    # classical cost t = 1e-3 / e**1.5 (a second-order scheme in 2-D + time): straight in log-log
    errors = [0.3, 0.1, 0.03, 0.01]
    front = [(1e-3 / e**1.5, e) for e in errors]
    t, status = svs.equal_error_time(front, 0.05)
    assert status == "interpolated"
    assert t == pytest.approx(1e-3 / 0.05**1.5, rel=1e-12)
    assert svs.equal_error_time(front, 0.1) == (pytest.approx(1e-3 / 0.1**1.5), "interpolated")
    ratio = svs.speed_ratio(front, 0.05, time_s=1e-3 / 0.05**1.5 / 8.0)
    assert ratio["ratio"] == pytest.approx(8.0) and ratio["status"] == "interpolated"


def test_equal_error_time_outside_the_front_says_so():
    front = [(1.0, 0.1), (10.0, 0.01)]
    assert svs.equal_error_time(front, 0.5) == (1.0, "less_accurate")  # the cheapest point, more accurate
    assert svs.equal_error_time(front, 0.001) == (10.0, "more_accurate")  # a lower bound of the cost
    assert svs.equal_error_time(front, 0.1) == (1.0, "interpolated")
    with pytest.raises(ValueError, match="front is empty"):
        svs.equal_error_time([], 0.1)
    with pytest.raises(ValueError, match="positive finite"):
        svs.equal_error_time(front, math.nan)


def test_break_even_counts_trajectories_or_never():
    assert svs.break_even(100.0, classical_s=3.0, surrogate_s=1.0) == pytest.approx(50.0)
    assert svs.break_even(100.0, classical_s=1.0, surrogate_s=1.0) is None
    assert svs.break_even(100.0, classical_s=0.5, surrogate_s=1.0) is None


def test_resample_is_exact_for_band_limited_cell_centred_fields():
    def field(h, w):
        y, x = np.meshgrid((np.arange(h) + 0.5) / h, (np.arange(w) + 0.5) / w, indexing="ij")
        return np.sin(2 * np.pi * (3 * x + 2 * y) + 1.0) + 0.3 * np.cos(2 * np.pi * 5 * y + 0.2)

    np.testing.assert_allclose(svs.resample(field(128, 128)[None], (32, 32))[0], field(32, 32), atol=1e-12)
    np.testing.assert_allclose(svs.resample(field(16, 16), (64, 48)), field(64, 48), atol=1e-12)
    # modes at or above the coarse Nyquist frequency are dropped, not aliased
    fine = field(64, 64) + np.cos(2 * np.pi * 20 * (np.arange(64) + 0.5) / 64)[None, :]
    np.testing.assert_allclose(svs.resample(fine, (32, 32)), field(32, 32), atol=1e-12)


def _payload(ratios):
    rows = [{"T": 0.1 * (k + 1), "ratio": r, "status": s} for k, (r, s) in enumerate(ratios)]
    return {"cases": {"burgers": {"comparison": rows}}}


def test_headline_goal_ignores_points_without_an_equal_error_match():
    rows = svs.headline(_payload([(9.0, "less_accurate"), (3.0, "interpolated")]))
    assert rows[-1]["met"] is False and rows[-1]["value"].startswith("3×")
    assert "n/a" in rows[0]["value"] and "3×" in rows[0]["value"]
    rows = svs.headline(_payload([(6.0, "interpolated"), (2.0, "more_accurate")]))
    assert rows[-1]["met"] is True and rows[-1]["value"].startswith("6×")
    assert "≥ 2×" in rows[0]["value"]
