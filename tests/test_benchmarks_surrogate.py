"""benchmarks/surrogate_vs_stencil.py: the equal-error speed ratio users quote, the headline rule, the data
cache, the coarse scheme under the learned correction, the peer FNO and a smoke run end to end."""

import functools
from dataclasses import replace
import importlib.util
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "surrogate_vs_stencil.py"
spec = importlib.util.spec_from_file_location("surrogate_vs_stencil", SCRIPT)
svs = importlib.util.module_from_spec(spec)
sys.modules[spec.name] = svs  # dataclasses look their module up there
spec.loader.exec_module(svs)
data_module = sys.modules["_surrogate_data"]  # imported by the script from benchmarks/


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


def _row(model, t, err, ratio, status="interpolated"):
    return {"model": model, "T": t, "surrogate_nrmse": err, "ratio": ratio, "status": status}


def _payload(rows, coarse=None):
    res = {"comparison": rows}
    if coarse is not None:
        res["coarse"] = coarse
    return {"cases": {"burgers": res}}


def test_headline_counts_only_useful_points_at_equal_error():
    rows = svs.headline(_payload([_row("pure", 0.5, 0.3, 20.0), _row("corrected", 0.5, 0.04, 6.0),
                                  _row("peer", 0.5, 0.05, 9.0, "less_accurate")]))
    best = next(r for r in rows if r["result"].startswith("best equal-error"))
    assert best["met"] is True and best["value"].startswith("6×") and "learned correction" in best["value"]
    rows = svs.headline(_payload([_row("pure", 0.5, 0.3, 20.0), _row("corrected", 0.5, 0.09, 3.0)]))
    best = next(r for r in rows if r["result"].startswith("best equal-error"))
    assert best["met"] is False and best["value"].startswith("3×")
    rows = svs.headline(_payload([_row("pure", 0.5, 0.3, 20.0)]))
    best = next(r for r in rows if r["result"].startswith("best equal-error"))
    assert best["met"] is False and best["value"].startswith("none")
    assert "n/a" not in rows[0]["value"] and "20×" in rows[0]["value"]  # every point stays in the PDE row


def test_headline_reads_results_written_before_the_three_surrogates():
    old = [{"T": 0.5, "surrogate_nrmse": 0.08, "ratio": 7.0, "status": "more_accurate"},
           {"T": 1.0, "surrogate_nrmse": 0.2, "ratio": 2.0, "status": "less_accurate"}]
    rows = svs.headline(_payload(old))
    assert rows[0]["value"].startswith("pure: ") and "≥ 7×" in rows[0]["value"] and "n/a" in rows[0]["value"]
    best = next(r for r in rows if r["result"].startswith("best equal-error"))
    assert best["met"] is True and "gridvit (pure)" in best["value"]
    accuracy = next(r for r in rows if r["result"].startswith("burgers: best gridvit"))
    assert accuracy["met"] is False and "T=0.5: 0.08 (pure)" in accuracy["value"]


def test_goal_rows_for_accuracy_peer_and_correction():
    rows = [_row("pure", 0.5, 0.06, 1.0), _row("pure", 1.0, 0.2, 1.0),
            _row("corrected", 0.5, 0.04, 1.0), _row("corrected", 1.0, 0.09, 1.0),
            _row("peer", 0.5, 0.05, 1.0), _row("peer", 1.0, 0.3, 1.0)]
    coarse = {"scheme": "upwind", "grid": 32, "k": 7, "nrmse": [0.2, 0.18]}
    out = {r["result"]: r for r in svs.headline(_payload(rows, coarse))}
    accuracy = out["burgers: best gridvit nRMSE (pure or corrected)"]
    assert accuracy["met"] is True and "T=0.5: 0.04 (corrected)" in accuracy["value"]
    peer = next(r for k, r in out.items() if "FNO" in k)
    assert peer["met"] is False and "T=0.5 0.06 vs 0.05" in peer["value"]  # pure loses to the peer at T=0.5
    correction = next(r for k, r in out.items() if k.startswith("learned correction"))
    assert correction["met"] is True and "5×" in correction["value"] and "2×" in correction["value"]
    coarse["nrmse"] = [0.2, 0.17]  # 1.89× at T = 1: below the 2× goal
    correction = next(r for r in svs.headline(_payload(rows, coarse)) if r["result"].startswith("learned"))
    assert correction["met"] is False


def test_ceiling_row_divides_the_classical_time_by_the_bare_scheme_time():
    # The correction runs its coarse scheme, so classical time at its error ÷ the bare scheme's time bounds
    # its speed ratio; the network's share is the rest of the corrected step's time.
    rows = [{**_row("corrected", 0.5, 0.01, 0.5), "classical_s": 0.08, "surrogate_s": 0.16},
            {**_row("corrected", 1.0, 0.02, 0.4, "more_accurate"), "classical_s": 0.12, "surrogate_s": 0.3},
            {**_row("corrected", 2.0, 0.5, 0.1, "less_accurate"), "classical_s": 0.01, "surrogate_s": 0.6}]
    coarse = {"scheme": "upwind3", "grid": 32, "k": 18, "nrmse": [0.04, 0.05, 0.06], "time_s": [0.02, 0.04, 0.08]}
    ceiling = next(r for r in svs.headline(_payload(rows, coarse)) if r["result"].startswith("ceiling"))
    assert ceiling["value"] == ("burgers T=0.5 4× (network share 88%), T=1 ≥ 3× (network share 87%), "
                                "T=2 n/a (less accurate than every classical point)")
    del coarse["time_s"]  # results written before the bare scheme was timed: no ceiling row
    assert not any(r["result"].startswith("ceiling") for r in svs.headline(_payload(rows, coarse)))


TINY = svs.Case("heat", 1.0, {"diffusivity": 0.01}, {"k_max": 2.0}, "spectral", 0.02, (1, 2), 2, ("ftcs",),
                {"patch": 4, "dim": 16, "depth": 1, "heads": 2})


def test_cached_trajectories_are_reused_and_regenerated_when_the_case_changes(tmp_path, monkeypatch):
    calls = []
    real = data_module.reference
    monkeypatch.setattr(data_module, "reference", lambda *a, **k: calls.append(1) or real(*a, **k))
    get = functools.partial(svs.trajectories, grid=8, fine=2, samples=2, steps=2, seed=1, device="cpu",
                            cache=tmp_path)
    first, info = get(TINY)
    assert first.shape == (2, 3, 1, 8, 8) and not info["cached"] and len(calls) == 1
    again, info2 = get(TINY)
    assert info2["cached"] and info2["key"] == info["key"] and len(calls) == 1  # loaded, not recomputed
    np.testing.assert_array_equal(again, first)
    changed = replace(TINY, params={"diffusivity": 0.02})
    other, info3 = get(changed)
    assert not info3["cached"] and info3["key"] != info["key"] and len(calls) == 2
    assert not np.allclose(other[:, -1], first[:, -1])  # more diffusion: really another trajectory
    _, info4 = get.func(TINY, grid=8, fine=2, samples=3, steps=2, seed=1, device="cpu", cache=tmp_path)
    assert not info4["cached"] and len(calls) == 3  # a changed preset too
    assert len(list(tmp_path.glob("*.npz"))) == 3 and not list(tmp_path.glob("*.tmp*"))


def test_coarse_scheme_skips_an_unstable_candidate():
    case = replace(svs.CASES["burgers"], coarse=("central", "upwind"), train_steps=6)
    traj, _ = svs.trajectories(case, grid=16, fine=2, samples=3, steps=6, seed=1, device="cpu", cache=None)
    scheme, k, record = svs.coarse_scheme(case, 16, traj, "cpu")
    assert k > 1 and record["scheme"] == scheme.name == "upwind" and scheme.dt == pytest.approx(case.step / k)
    central = next(c for c in record["candidates"] if c["scheme"] == "central")
    assert central["stable"] is False  # central differences blow up at this cell Reynolds number
    states = torch.tensor(traj.reshape(-1, 2, 16, 16))
    assert scheme.cfl(states) <= 0.9 * scheme.cfl_limit + 1e-9 < scheme.with_dt(case.step / (k - 1)).cfl(states)


def test_peer_fno_trains_and_steps_in_physical_units():
    pytest.importorskip("neuralop")
    import _peer_fno

    traj = np.random.default_rng(0).normal(3.0, 2.0, size=(4, 5, 2, 16, 16)).astype(np.float32)
    x, y = _peer_fno.windows(traj, rollout=2)
    assert x.shape == (4 * 3, 2, 16, 16) and y.shape == (4 * 3, 2, 2, 16, 16)
    np.testing.assert_array_equal(y[1, 0], traj[0, 2])
    step, info = _peer_fno.train_fno(traj, budget=1.0, rollout=2, device="cpu", pushforward=False, input_noise=0.05,
                                     random_shift=True)
    assert info["epochs"] >= 1 and 0.5e6 < info["parameters"] < 0.7e6
    with torch.no_grad():
        out = step(torch.tensor(traj[:, 0]))
    assert out.shape == (4, 2, 16, 16) and abs(float(out.mean()) - 3.0) < 1.5  # denormalised


def test_smoke_run_end_to_end(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(svs, "trajectories", functools.partial(svs.trajectories, cache=tmp_path))
    svs.main(["--smoke", "--pdes", "heat", "--budget", "1", "--repeats", "1"])
    out = capsys.readouterr().out
    assert "## nRMSE per PDE and horizon" in out and "| heat | 0.04 |" in out and "bare coarse: " in out
    assert "best equal-error speed ratio, surrogate points with nRMSE ≤ 0.1" in out
    assert len(list(tmp_path.glob("heat-*.npz"))) == 2  # test and training data, cached
