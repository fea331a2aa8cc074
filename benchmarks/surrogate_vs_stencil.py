"""A trained gridvit surrogate against gridvit's own classical schemes, at equal accuracy.

The comparison follows McGreivy & Hakim (2024): errors and wall times are measured on the same grid, test
trajectories and hardware; the surrogate's speed is quoted at *equal error* against the accuracy-vs-cost
front of every shipped scheme at several resolutions and steps; where the surrogate loses, the table says so.

For each PDE (heat, 2-D viscous Burgers, 2-D Navier–Stokes in vorticity form, all doubly periodic):

- **Evaluation grid**: ``N²`` (32² with ``--quick``, 64² in the full setting), the grid the surrogate works on.
- **Reference**: the most accurate shipped scheme (heat: the exact spectral propagator; Burgers: central
  differences; Navier–Stokes: Arakawa's Jacobian; SSP-RK3 at half the stability limit, re-chosen at every
  saved step; float32) on a grid ``4×`` finer, restricted to ``N²`` by **spectral truncation** (Fourier
  modes ``|k| < N/2``, phase-shifted to the coarse cell centres: point values, as finite differences carry).
  A one-off check (2 trajectories, float64) found 128² and 256² runs ≤ 0.3 % apart on 32² for Burgers
  (T ≤ 1) and ≤ 1 % for Navier–Stokes (T ≤ 2): the reference error is far below the errors compared.
- **Test set**: the preset's test trajectories from band-limited Gaussian random fields drawn with a seed
  never used for training (test seed 2, training seed 1), drawn on the fine grid and restricted.
- **Classical candidates**: every shipped scheme of the PDE at resolutions ``N × (0.5, 1, 1.25, 1.5, 2)``
  (the full setting adds 3×), starting from the restricted initial state; explicit schemes at 0.9 and 0.45 of their
  stability limit (a fixed dt from the test initial states' CFL rate), unconditionally stable ones
  (Crank–Nicolson, spectral) at 1 and 4 steps per surrogate step. Their states at each horizon are
  resampled spectrally to ``N²``. A candidate that blows up or exceeds its CFL limit is kept in the JSON as
  unstable and left off the front.
- **Surrogate**: ``gridvit.train`` (history 1, a large step Δt = many CFL steps of the coarse scheme,
  ``rollout_steps`` unrolled training for stability) on trajectories simulated with the reference scheme on
  the fine grid and restricted to ``N²`` (learning a coarse solver, as in Kochkov et al. 2021); rolled
  out with ``Surrogate.step`` (the solvers' ``(B, C, H, W)`` signature) from the same initial states.
- **Errors**: nRMSE (PDEBench: ``‖pred − ref‖₂ / ‖ref‖₂`` per sample and channel, averaged) at three
  horizons ``T1 < T2 < T3``.
- **Wall time**: the whole batch of test trajectories advanced together (batch = test trajectories),
  float32 for classical schemes and surrogate alike, on ``--threads`` threads (default 1, for everyone);
  the median over ``--repeats`` runs after a warm-up, cumulative to each horizon; resampling excluded.
- **Equal error**: the classical front (Pareto lower envelope over all stable candidates, in log time vs
  log error) is interpolated linearly in log-log at the surrogate's error; the speed ratio is classical
  time / surrogate time. Outside the front's error range no interpolation is made: a surrogate less
  accurate than the cheapest classical point is reported against that point (classical is then at least
  as accurate); one more accurate than the most accurate point gets a lower bound ("≥").
- **Costs**: data generation (fine-grid simulation + restriction of the training set) and training time
  are reported separately, with the break-even number of trajectories
  ``(train + data) / (classical time at equal error − surrogate time)`` per trajectory, or "never".

Settings (``--help`` lists the overrides):

- ``--quick``: N = 32 (reference 128²), 16 test and 64 training trajectories, training budgets 30 s (heat)
  and 180 s (Burgers, Navier–Stokes), 3 timing repeats; ≤ 15 min on a quiet 2-core CPU.
- default (full; meant for a GPU, ``--device cuda``): N = 64 (reference 256²), 32 test and 256 training
  trajectories, training budgets 300 s / 1800 s, models twice as wide, resolutions up to 3×, 5 repeats.
- ``--smoke``: N = 16, seconds of everything, for development; prints, writes nothing.

    .venv/bin/python benchmarks/surrogate_vs_stencil.py --quick         # CPU, writes benchmarks/results/
    .venv/bin/python benchmarks/surrogate_vs_stencil.py --device cuda   # the full setting on a GPU
"""

from __future__ import annotations

import argparse
import os
import sys

if __name__ == "__main__":  # before numpy and torch start their thread pools (not on import by tests)
    _threads = sys.argv[sys.argv.index("--threads") + 1] if "--threads" in sys.argv else "1"
    for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[_var] = _threads
import math  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from dataclasses import dataclass, field, replace  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any, Callable  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
import xarray as xr  # noqa: E402

sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parents[1])]
from _common import RESULTS, write_results  # noqa: E402
from _surrogate_report import markdown, plot, ratio_text, verdict  # noqa: E402

NAME = "surrogate_vs_stencil"
GOAL = 5.0  # equal-error speed-up to aim for on at least one PDE


# --- pure helpers: spectral resampling, Pareto front, equal-error interpolation ------------------------

def resample_axis(a: np.ndarray, m: int, axis: int) -> np.ndarray:
    """Resample a periodic, cell-centred axis of ``a`` to ``m`` points by Fourier truncation / zero padding.

    Keeps the modes ``|k| < min(n, m)/2`` and shifts their phase from the old cell centres ``(j + 1/2)/n``
    to the new ``(j + 1/2)/m``: exact for fields band-limited below both Nyquist frequencies.
    """
    a = np.moveaxis(np.asarray(a, dtype=np.float64), axis, -1)
    n = a.shape[-1]
    if n != m:
        f = np.fft.fft(a, axis=-1)
        k = np.rint(np.fft.fftfreq(n, 1.0 / n)).astype(int)  # integer wavenumbers (n,)
        keep = np.abs(k) < min(n, m) / 2
        g = np.zeros(a.shape[:-1] + (m,), dtype=complex)  # (..., m) spectrum on the new grid
        g[..., k[keep] % m] = f[..., keep] * np.exp(2j * np.pi * k[keep] * (0.5 / m - 0.5 / n))
        a = np.real(np.fft.ifft(g, axis=-1)) * (m / n)
    return np.moveaxis(a, -1, axis)


def resample(a: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """(..., H, W) periodic cell-centred field -> (..., h, w), spectrally (see :func:`resample_axis`)."""
    return resample_axis(resample_axis(a, shape[0], -2), shape[1], -1)


def pareto_front(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """The (time, error) points no other point beats in both: sorted by time up, error strictly down.

    Non-finite or non-positive points (unstable runs) are ignored.
    """
    good = sorted((t, e) for t, e in points if math.isfinite(t) and math.isfinite(e) and t > 0 and e > 0)
    front: list[tuple[float, float]] = []
    for t, e in good:
        if not front or e < front[-1][1]:
            front.append((t, e))
    return front


def equal_error_time(front: list[tuple[float, float]], error: float) -> tuple[float, str]:
    """Classical time at ``error`` on ``front`` (from :func:`pareto_front`), interpolated in log-log.

    Returns:
        ``(time, status)`` with status ``"interpolated"`` (inside the front's error range);
        ``"less_accurate"`` (``error`` above the cheapest point's: its time is returned, and classical is
        at least as accurate there); ``"more_accurate"`` (``error`` below the most accurate point's: that
        point's time, a lower bound of the classical cost).
    """
    if not front:
        raise ValueError("the classical front is empty (every candidate was unstable)")
    if not (math.isfinite(error) and error > 0):
        raise ValueError(f"error must be a positive finite number, got {error!r}")
    if error >= front[0][1]:
        return front[0][0], "less_accurate" if error > front[0][1] else "interpolated"
    if error < front[-1][1]:
        return front[-1][0], "more_accurate"
    for (t0, e0), (t1, e1) in zip(front, front[1:]):
        if e1 <= error <= e0:
            w = (math.log(error) - math.log(e0)) / (math.log(e1) - math.log(e0))
            return math.exp(math.log(t0) + w * (math.log(t1) - math.log(t0))), "interpolated"
    raise AssertionError("unreachable: the front is sorted by decreasing error")


def speed_ratio(front: list[tuple[float, float]], error: float, time_s: float) -> dict[str, Any]:
    """Classical time at equal error / surrogate time, with the status of :func:`equal_error_time`."""
    t, status = equal_error_time(front, error)
    return {"classical_s": t, "status": status, "ratio": t / time_s}


def break_even(cost_s: float, classical_s: float, surrogate_s: float) -> float | None:
    """Trajectories after which ``cost_s`` (training + data) pays off; None when it never does."""
    saving = classical_s - surrogate_s
    return cost_s / saving if saving > 0 else None


# --- cases and settings ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Case:
    """One PDE's benchmark: physics, initial conditions, reference, candidates and the surrogate's step."""

    pde: str
    extent: float
    params: dict[str, float]
    ic: dict[str, float]  # gaussian_random_field options (+ amplitude)
    reference: str  # the scheme used for the reference and the training data
    step: float  # the surrogate's Δt (one saved step of its training data)
    horizons: tuple[int, ...]  # in surrogate steps
    train_steps: int  # saved steps per training trajectory
    model: dict[str, Any] = field(default_factory=dict)

    @property
    def channels(self) -> int:
        import gridvit.solvers as gs

        return len(gs.PDES[self.pde].fields)


CASES = {
    "heat": Case("heat", 1.0, {"diffusivity": 0.01}, {"k_max": 8.0}, "spectral", 0.02, (2, 5, 10), 12,
                 {"patch": 4, "dim": 64, "depth": 2, "heads": 4, "rollout_steps": 2}),
    "burgers": Case("burgers", 1.0, {"viscosity": 0.01}, {"k_max": 4.0, "amplitude": 0.5}, "central", 0.1,
                    (2, 5, 10), 12, {"patch": 4, "dim": 64, "depth": 3, "heads": 4, "rollout_steps": 3}),
    "navier_stokes": Case("navier_stokes", 2 * math.pi, {"viscosity": 1e-3}, {"k_max": 4.0}, "arakawa", 0.5,
                          (1, 2, 4), 10, {"patch": 4, "dim": 64, "depth": 3, "heads": 4, "rollout_steps": 3}),
}


@dataclass(frozen=True)
class Settings:
    """The size of a run (see the module docstring for the three presets)."""

    grid: int
    fine: int  # reference refinement factor
    test_samples: int
    train_samples: int
    budget: dict[str, float]  # training seconds per pde
    resolutions: tuple[float, ...]
    repeats: int
    model_scale: int = 1  # multiplies the model width of the case
    write: bool = True


PRESETS = {
    "quick": Settings(32, 4, 16, 64, {"heat": 30.0, "burgers": 180.0, "navier_stokes": 180.0},
                      (0.5, 1.0, 1.25, 1.5, 2.0), 3),
    "full": Settings(64, 4, 32, 256, {"heat": 300.0, "burgers": 1800.0, "navier_stokes": 1800.0},
                     (0.5, 1.0, 1.25, 1.5, 2.0, 3.0), 5, model_scale=2),
    "smoke": Settings(16, 2, 4, 6, {"heat": 3.0, "burgers": 4.0, "navier_stokes": 4.0}, (1.0, 2.0), 1,
                      write=False),
}
SAFETIES = (0.9, 0.45)  # explicit schemes: fractions of the stability limit
SUBSTEPS = (1, 4)  # unconditionally stable schemes: steps per surrogate step
PATIENCE = 20  # epochs without validation improvement before training stops early (best weights kept)


# --- data: fine-grid trajectories restricted to the evaluation grid ----------------------------------

def initial_states(case: Case, n: int, samples: int, seed: int) -> np.ndarray:
    """(S, C, n, n) float64 band-limited random initial states (drawn on the n² grid)."""
    from gridvit.solvers.initial import gaussian_random_field

    opts = dict(case.ic)
    amplitude = opts.pop("amplitude", 1.0)
    u0 = gaussian_random_field((n, n), (case.extent, case.extent), samples=samples, channels=case.channels,
                               seed=seed, **opts)
    return amplitude * u0.numpy()


def reference(case: Case, u0: np.ndarray, *, grid: int, steps: int, device: str) -> np.ndarray:
    """Fine-grid trajectories of ``case.reference`` from ``u0`` (S, C, n_f, n_f), restricted to grid²:
    (S, steps + 1, C, grid, grid), saved every surrogate step.

    float32 (roundoff far below the discretisation error); explicit schemes at half their stability limit,
    re-chosen from the state at every saved step (``simulate(..., adapt_dt=True)``'s rule).
    """
    import gridvit.solvers as gs

    n = u0.shape[-1]
    scheme = gs.scheme_for(case.pde, case.reference, dt=case.step, dx=case.extent / n, dy=case.extent / n,
                           **case.params)  # unconditionally stable references take the surrogate's step
    u = torch.tensor(u0, dtype=torch.float32, device=device)  # (S, C, n_f, n_f)
    out = [resample(u0, (grid, grid))]
    with torch.inference_mode():
        for _ in range(steps):
            m = 1 if math.isinf(scheme.cfl_limit) else math.ceil(case.step * scheme.rate(u) / (0.5 * scheme.cfl_limit))
            scheme = scheme.with_dt(case.step / m)
            for _ in range(m):
                u = scheme(u)
            if not bool(torch.isfinite(u).all()):
                raise FloatingPointError(f"{case.pde}: the {n}² reference blew up; lower the step")
            out.append(resample(u.double().cpu().numpy(), (grid, grid)))
    return np.stack(out, axis=1)  # (S, T, C, grid, grid)


def as_dataset(case: Case, traj: np.ndarray) -> xr.Dataset:
    """(S, T, C, H, W) trajectories -> the (sample, time, y, x) layout of ``gridvit.solvers.simulate``."""
    import gridvit.solvers as gs

    s, t, _, h, w = traj.shape
    centres = lambda k: (np.arange(k) + 0.5) * case.extent / k  # noqa: E731
    coords = {"sample": np.arange(s), "time": np.arange(t) * case.step,
              "y": ("y", centres(h), {"periodic": 1}), "x": ("x", centres(w), {"periodic": 1})}
    data = {f: (("sample", "time", "y", "x"), traj[:, :, c].astype(np.float32))
            for c, f in enumerate(gs.PDES[case.pde].fields)}
    return xr.Dataset(data, coords=coords)


# --- timing a stepper to every horizon ---------------------------------------------------------------

def run_to_horizons(step: Callable[[torch.Tensor], torch.Tensor], u0: torch.Tensor, substeps: int,
                    horizons: tuple[int, ...], *, repeats: int, sync: Callable[[], Any] | None = None
                    ) -> tuple[list[np.ndarray], list[float]]:
    """Advance u0 (B, C, H, W) by ``substeps`` steps per surrogate step up to every horizon.

    Returns the (B, C, H, W) states at the horizons and the median cumulative wall time to each (seconds,
    over ``repeats`` runs after a warm-up of one surrogate step).
    """
    sync = sync or (lambda: None)
    with torch.inference_mode():
        u = u0
        for _ in range(substeps):  # warm-up: caches (FFT multipliers, attention bias), allocator
            u = step(u)
        runs = []
        for _ in range(repeats):
            u, done, marks, states = u0, 0, [], []
            sync()
            start = time.perf_counter()
            for h in horizons:
                for _ in range((h - done) * substeps):
                    u = step(u)
                done = h
                sync()
                marks.append(time.perf_counter() - start)
                states.append(u)
            runs.append(marks)
    times = [statistics.median(r[k] for r in runs) for k in range(len(horizons))]
    return [s.double().cpu().numpy() for s in states], times


def nrmse(pred: np.ndarray, ref: np.ndarray) -> float:
    """gridvit.metrics.nrmse, infinite for non-finite predictions (an unstable run)."""
    from gridvit.metrics import nrmse as _nrmse

    return _nrmse(pred, ref) if np.isfinite(pred).all() else math.inf


# --- the two sides -----------------------------------------------------------------------------------

def candidate_steps(probe: Any, u0: torch.Tensor, dt_max: float) -> list[tuple[str, int]]:
    """(label, steps per surrogate step) for a scheme: fractions of the CFL limit, or fixed substeps."""
    if math.isinf(probe.cfl_limit):
        return [(f"{m}/Δt", m) for m in SUBSTEPS]
    rate = probe.rate(u0.double())
    out: dict[int, str] = {}
    for s in SAFETIES:
        m = max(1, math.ceil(dt_max * rate / (s * probe.cfl_limit) - 1e-9))
        out.setdefault(m, f"{s:g}×CFL")
    return [(label, m) for m, label in out.items()]


def classical_points(case: Case, u0_fine: np.ndarray, ref: np.ndarray, st: Settings, device: str,
                     sync: Callable[[], Any]) -> list[dict[str, Any]]:
    """Every shipped scheme × resolution × step: errors against ``ref`` (S, T, C, N, N) and wall times."""
    import gridvit.solvers as gs

    points = []
    for name in gs.PDES[case.pde].schemes:
        for factor in st.resolutions:
            n = int(round(factor * st.grid))
            u0 = torch.tensor(resample(u0_fine, (n, n)), dtype=torch.float32, device=device)  # (B, C, n, n)
            probe = gs.scheme_for(case.pde, name, dt=1e-12 * case.step, dx=case.extent / n, dy=case.extent / n,
                                  **case.params)
            for label, m in candidate_steps(probe, u0, case.step):
                scheme = probe.with_dt(case.step / m)
                states, _ = run_to_horizons(scheme, u0, m, case.horizons, repeats=1, sync=sync)
                cfl = [scheme.cfl(torch.as_tensor(s)) for s in states] if np.isfinite(states[-1]).all() else [math.inf]
                stable = max(cfl) <= scheme.cfl_limit * (1 + 1e-9)
                times = [math.inf] * len(case.horizons)
                if stable:
                    states, times = run_to_horizons(scheme, u0, m, case.horizons, repeats=st.repeats, sync=sync)
                errors = [nrmse(resample(s, (st.grid, st.grid)), ref[:, h]) for s, h in zip(states, case.horizons)]
                points.append({"scheme": name, "grid": n, "factor": factor, "step": label, "substeps": m,
                               "dt": scheme.dt, "max_cfl": max(cfl), "stable": stable, "time_s": times,
                               "nrmse": errors if stable else [math.inf] * len(errors)})
                print(f"  {case.pde}/{name} {n}² {label} (dt {scheme.dt:.3g}): nRMSE "
                      + " ".join(f"{e:.3g}" for e in points[-1]["nrmse"]) + "; s "
                      + " ".join(f"{t:.3g}" for t in times),
                      flush=True)
    return points


def surrogate_point(case: Case, st: Settings, u0_test: np.ndarray, ref: np.ndarray, device: str,
                    sync: Callable[[], Any], budget: float) -> dict[str, Any]:
    """Simulate training data, train, and roll the surrogate out on the test set."""
    import gridvit

    start = time.perf_counter()
    u0 = initial_states(case, st.fine * st.grid, st.train_samples, seed=1)
    traj = reference(case, u0, grid=st.grid, steps=case.train_steps, device=device)  # (S, T, C, N, N)
    data_s = time.perf_counter() - start
    options = dict(case.model)
    options["dim"] = options["dim"] * st.model_scale
    start = time.perf_counter()
    sur = gridvit.train(as_dataset(case, traj), history=1, lead=1, time_budget=budget, climatology=None,
                        calendar=False, progress=False, device=device, seed=0, patience=PATIENCE,
                        **options)
    train_s = time.perf_counter() - start
    x0 = torch.tensor(u0_test, dtype=torch.float32, device=device)  # (B, C, N, N)
    states, times = run_to_horizons(sur.step, x0, 1, case.horizons, repeats=st.repeats, sync=sync)
    errors = [nrmse(s, ref[:, h]) for s, h in zip(states, case.horizons)]
    print(f"  {case.pde}/surrogate: nRMSE " + " ".join(f"{e:.3g}" for e in errors) + "; s "
          + " ".join(f"{t:.3g}" for t in times) + f" (data {data_s:.0f} s, training {train_s:.0f} s)", flush=True)
    return {"model": options, "train_samples": st.train_samples, "train_steps": case.train_steps,
            "data_s": data_s, "train_s": train_s, "time_s": times, "nrmse": errors}


def compare(case: Case, classical: list[dict[str, Any]], sur: dict[str, Any], batch: int) -> list[dict[str, Any]]:
    """Per horizon: the surrogate's point against the classical front at equal error, and the break-even."""
    rows = []
    for k, h in enumerate(case.horizons):
        pts = [(p["time_s"][k], p["nrmse"][k]) for p in classical if p["stable"]]
        front = pareto_front(pts)
        err, t_s = sur["nrmse"][k], sur["time_s"][k]
        row = {"horizon": h, "T": h * case.step, "surrogate_nrmse": err, "surrogate_s": t_s,
               "front": front, **speed_ratio(front, err, t_s)}
        better = [p for p in classical if p["stable"] and p["nrmse"][k] <= err]
        cheapest = min(better, key=lambda p: p["time_s"][k]) if better else None
        row["cheapest_as_accurate"] = None if cheapest is None else {
            "label": f"{cheapest['scheme']} {cheapest['grid']}² {cheapest['step']}",
            "time_s": cheapest["time_s"][k], "nrmse": cheapest["nrmse"][k]}
        n = None
        if row["status"] != "less_accurate":
            n = break_even(sur["data_s"] + sur["train_s"], row["classical_s"] / batch, t_s / batch)
        row["break_even_trajectories"] = n
        rows.append(row)
    return rows


# --- summary rows for benchmarks/README.md ----------------------------------------------------------

def headline(result: dict[str, Any]) -> list[dict[str, Any]]:
    """Summary rows: the equal-error speed ratio per PDE and horizon, and the ≥ 5× goal."""
    rows, best = [], None
    for pde, res in result["cases"].items():
        cells = [f"T={r['T']:g}: {ratio_text(r)}" for r in res["comparison"]]
        rows.append({"result": f"equal-error speed ratio, {pde} (surrogate vs best classical)",
                     "value": "; ".join(cells), "goal": "", "met": None})
        for r in res["comparison"]:
            if r["status"] != "less_accurate" and (best is None or r["ratio"] > best[0]):
                best = (r["ratio"], pde, r["T"])
    value = "no PDE/horizon at equal error" if best is None else f"{best[0]:.3g}× ({best[1]}, T={best[2]:g})"
    rows.append({"result": "best equal-error speed ratio", "value": value,
                 "goal": f"≥ {GOAL:g}× on at least one PDE",
                 "met": best is not None and best[0] >= GOAL})
    return rows


# --- main --------------------------------------------------------------------------------------------

def run_case(case: Case, st: Settings, device: str, sync: Callable[[], Any]) -> dict[str, Any]:
    """Reference, classical candidates, surrogate and comparison of one PDE."""
    u0_fine = initial_states(case, st.fine * st.grid, st.test_samples, seed=2)  # the test seed
    start = time.perf_counter()
    ref = reference(case, u0_fine, grid=st.grid, steps=max(case.horizons), device=device)  # (S, T, C, N, N)
    print(f"{case.pde}: reference {st.fine * st.grid}² in {time.perf_counter() - start:.0f} s", flush=True)
    classical = classical_points(case, u0_fine, ref, st, device, sync)
    sur = surrogate_point(case, st, ref[:, 0], ref, device, sync, st.budget[case.pde])
    rows = compare(case, classical, sur, st.test_samples)
    for row in rows:
        print("  " + verdict(case.pde, row), flush=True)
    desc = {"pde": case.pde, "extent": case.extent, "params": case.params, "ic": case.ic,
            "reference": f"{case.reference} on {st.fine * st.grid}², SSP-RK3 at half the CFL limit"
            if case.reference != "spectral" else f"spectral (exact) on {st.fine * st.grid}²",
            "step": case.step, "horizons": list(case.horizons), "T": [h * case.step for h in case.horizons]}
    return {"case": desc, "classical": classical, "surrogate": sur, "comparison": rows}


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog="Full setting (default): "
                                 "64² evaluation grid, 256² reference, 256 training trajectories, 30 min of training "
                                 "per nonlinear PDE, meant for --device cuda. See the module docstring.")
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="32² grid, ≤ 15 min on a 2-core CPU; writes results")
    mode.add_argument("--smoke", action="store_true", help="16², seconds; prints only (development)")
    ap.add_argument("--device", default="cpu", help="torch device for every method (default cpu)")
    ap.add_argument("--threads", type=int, default=1, help="torch/BLAS threads for every method (default 1)")
    ap.add_argument("--pdes", default=",".join(CASES), help=f"comma-separated subset of {','.join(CASES)}")
    ap.add_argument("--budget", type=float, help="training seconds per PDE (overrides the preset)")
    ap.add_argument("--repeats", type=int, help="timing repeats (overrides the preset)")
    args = ap.parse_args(argv)
    unknown = sorted(set(args.pdes.split(",")) - set(CASES))
    if unknown:
        ap.error(f"unknown pde(s) {unknown}; accepted: {sorted(CASES)}")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse(argv)
    preset = "quick" if args.quick else "smoke" if args.smoke else "full"
    st = PRESETS[preset]
    if args.budget is not None:
        st = replace(st, budget={k: args.budget for k in st.budget})
    if args.repeats is not None:
        st = replace(st, repeats=args.repeats)
    torch.set_num_threads(args.threads)
    device = torch.device(args.device).type if args.device != "cpu" else "cpu"
    sync = torch.cuda.synchronize if device == "cuda" else None
    load_start = os.getloadavg()[0]
    cases = {p: run_case(CASES[p], st, args.device, sync) for p in args.pdes.split(",")}
    settings = {"preset": preset, "grid": st.grid, "fine": st.fine, "test_samples": st.test_samples,
                "train_samples": st.train_samples, "resolutions": list(st.resolutions), "repeats": st.repeats,
                "budget_s": st.budget, "threads": args.threads, "device": args.device, "dtype": "float32",
                "safeties": list(SAFETIES), "substeps": list(SUBSTEPS),
                "load_average_1min": [load_start, os.getloadavg()[0]]}  # other work on the machine, start/end
    payload = {"settings": settings, "cases": cases}
    md = markdown(payload)
    if st.write:
        write_results(NAME, payload, md)
        plot(payload, RESULTS / f"{NAME}.png")
    print(md)
    for row in headline(payload):
        print(f"{row['result']}: {row['value']} (goal {row['goal'] or '-'}, met {row['met']})")


if __name__ == "__main__":
    main()
