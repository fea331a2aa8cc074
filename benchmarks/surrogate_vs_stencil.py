"""Trained surrogates against gridvit's own classical schemes, at equal accuracy.

The comparison follows McGreivy & Hakim (2024): errors and wall times are measured on the same grid, test
trajectories and hardware; each surrogate's speed is quoted at *equal error* against the accuracy-vs-cost
front of every shipped scheme at several resolutions and steps; where a surrogate loses, the table says so.

For each PDE (heat, 2-D viscous Burgers, 2-D Navier–Stokes in vorticity form, all doubly periodic):

- **Evaluation grid**: ``N²`` (32² with ``--quick``, 64² in the full setting), the grid the surrogates work on.
- **Reference**: the most accurate shipped scheme (heat: the exact spectral propagator; Burgers: central
  differences; Navier–Stokes: Arakawa's Jacobian; SSP-RK3 at half the stability limit, re-chosen at every
  saved step; float32) on a grid ``4×`` finer, restricted to ``N²`` by **spectral truncation** (Fourier
  modes ``|k| < N/2``, phase-shifted to the coarse cell centres: point values, as finite differences carry).
  A one-off check (2 trajectories, float64) found 128² and 256² runs ≤ 0.3 % apart on 32² for Burgers
  (T ≤ 1) and ≤ 1 % for Navier–Stokes (T ≤ 2): the reference error is far below the errors compared.
- **Data**: training (seed 1) and test (seed 2, never used for training) trajectories from band-limited
  Gaussian random fields drawn on the fine grid, simulated with the reference and restricted. They are
  generated once and cached under ``benchmarks/.cache/`` (git-ignored; one ``.npz`` per hash of the case's
  physics, initial conditions, reference, step, grid, refinement, trajectory count and length, seed and a
  code version: a changed case regenerates). Generation time is reported apart; ``--data-only`` fills the
  cache and stops.
- **Classical candidates**: every shipped scheme of the PDE at resolutions ``N × (0.5, 1, 1.25, 1.5, 2, 3)``
  (3×: so that a correction more accurate than 2N² is matched, not bounded), from the restricted initial state; explicit schemes at 0.9 and 0.45 of their
  stability limit (a fixed dt from the test initial states' CFL rate), unconditionally stable ones
  (Crank–Nicolson, spectral) at 1 and 4 steps per surrogate step; each at its fastest shipped
  implementation: ``scheme.run(u, steps)`` where the scheme has it (a loop of fused compiled steps on the
  CPU, a replayed CUDA graph on GPUs), else ``scheme(u)`` step by step. Their states at each horizon are
  resampled spectrally to ``N²``. A candidate that blows up or exceeds its CFL limit is kept in the JSON as
  unstable and left off the front.
- **Surrogates** (``_surrogate_models.py``), one step Δt = many CFL steps of the coarse scheme, history 1,
  the case's recipe (``rollout_steps``, learning rate, ``random_shift`` translation augmentation, a conv
  stem), each trained on the same data for the same budget
  and threads:
  ``pure`` (``gridvit.train``); ``corrected`` (``gridvit.train(ds, solver=scheme)``: the network corrects
  ``k`` steps of the PDE's cheapest scheme that is stable on the training data at ``N²``, ``dt = Δt / k``
  at 0.9 of its limit; the *bare coarse* scheme alone is reported beside it); ``peer`` (neuraloperator's
  FNO, modes 16², width 32, residual, trained like gridvit with the pure model's recipe; skipped with a
  note without the ``bench`` extra). All are rolled out with ``step(u)`` (the solvers' ``(B, C, H, W)`` signature).
- **Errors**: nRMSE (PDEBench: ``‖pred − ref‖₂ / ‖ref‖₂`` per sample and channel, averaged) at three
  horizons ``T1 < T2 < T3``.
- **Wall time**: the whole batch of test trajectories advanced together (batch = test trajectories),
  float32 for classical schemes and surrogates alike, on ``--threads`` threads (default 1, for everyone);
  the median over ``--repeats`` runs after a warm-up, cumulative to each horizon; resampling excluded.
- **Equal error**: the classical front (Pareto lower envelope over all stable candidates, in log time vs
  log error) is interpolated linearly in log-log at a surrogate's error; the speed ratio is classical
  time / surrogate time. Outside the front's error range no interpolation is made: a surrogate less
  accurate than the cheapest classical point is reported against that point (classical is then at least
  as accurate); one more accurate than the most accurate point gets a lower bound ("≥").
- **Headline**: the best equal-error ratio among surrogate points with nRMSE ≤ 0.1 (a faster surrogate
  nobody would use does not count); the per-PDE tables keep every point.
- **Costs**: data generation and training time are reported separately, with the break-even number of
  trajectories ``(train + data) / (classical time at equal error − surrogate time)`` per trajectory, or
  "never".

Settings (``--help`` lists the overrides):

- ``--quick``: N = 32 (reference 128²), 16 test and 256 training trajectories, 20 s (heat) and 120 s
  (Burgers, Navier–Stokes) of training per surrogate, 3 timing repeats: about 16 min on a quiet 2-core CPU
  with the data cached, plus about 6 min to generate them once (``--quick --data-only``).
- default (full; for one GPU, ``--device cuda``): N = 64 (reference 256²), 32 test and 256 training
  trajectories, 10 s (heat) and 40 s (Burgers, Navier–Stokes) of training per surrogate (4.5 min in all),
  models twice as wide, resolutions up to 3×, 5 repeats: about 7 min on one H100 from an empty cache
  (data about 1.5 min, classical candidates about 1 min).
- ``--smoke``: N = 16, seconds of everything, for development; prints, writes nothing.

    .venv/bin/python benchmarks/surrogate_vs_stencil.py --quick --data-only  # fill the cache (once)
    .venv/bin/python benchmarks/surrogate_vs_stencil.py --quick              # CPU, writes benchmarks/results/
    .venv/bin/python benchmarks/surrogate_vs_stencil.py --device cuda        # the full setting on one GPU
    # (it rewrites benchmarks/results/surrogate_vs_stencil.*: copy them away to keep the quick CPU results)
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

sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parents[1])]
from _common import RESULTS, load_span, write_results  # noqa: E402
from _surrogate_data import advance, initial_states, resample, trajectories  # noqa: E402
from _surrogate_data import as_dataset, reference  # noqa: E402, F401  (re-exported: surrogate_ablation.py)
from _surrogate_models import coarse_scheme, train_all  # noqa: E402
from _surrogate_report import USEFUL, counts, headline, markdown, plot, verdict  # noqa: E402

NAME = "surrogate_vs_stencil"


# --- pure helpers: Pareto front, equal-error interpolation ---------------------------------------

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
    """One PDE's benchmark: physics, initial conditions, reference, candidates and the surrogates' step."""

    pde: str
    extent: float
    params: dict[str, float]
    ic: dict[str, float]  # gaussian_random_field options (+ amplitude)
    reference: str  # the scheme used for the reference and the training data
    step: float  # the surrogates' Δt (one saved step of their training data)
    horizons: tuple[int, ...]  # in surrogate steps
    train_steps: int  # saved steps per training trajectory
    coarse: tuple[str, ...]  # schemes the learned correction may sit on (the cheapest stable one is used)
    model: dict[str, Any] = field(default_factory=dict)  # gridvit.train options of the pure surrogate
    corrected: dict[str, Any] = field(default_factory=dict)  # the corrected surrogate's changes to ``model``

    @property
    def channels(self) -> int:
        import gridvit.solvers as gs

        return len(gs.PDES[self.pde].fields)


# The decoder that sees the input cell by cell ("conv_skip") at patch 4. Measured on this benchmark's cached quick
# data, equal epochs, 1 thread: Burgers corrected (upwind ×18) T=0.2/0.5/1 nRMSE 0.061/0.085/0.098 (patch 2,
# "conv", 4 epochs) -> 0.052/0.069/0.083 ("conv_skip") -> 0.039/0.044/0.055 (patch 4, 8 epochs in ~1.1× the
# time; patch 8: 0.055/0.062/0.068); Navier–Stokes corrected 0.0076/0.014/0.037. results/surrogate_ablation.md
# has the earlier steps (patch 2 and "conv": Burgers T=0.5 0.41 -> 0.15). The corrected models train on the
# one-step loss: unrolling through the solver costs 3× a step, and 3 pushforward steps (patch 2, 4 epochs) gave
# 0.060/0.074/0.086, worse than one. The decoder's convolutions dominate a training step at 32² (patch 4: 26 ms
# without them, 54 ms at width 32, 36 ms at width 16); in 120 s, width 16 saw 1.33× the samples and reached
# 0.042/0.048/0.059 against width 32's 0.043/0.052/0.063 (same run). With this decoder the pure surrogates no
# longer need the unrolled loss (120 s each, 1 thread, two runs at a time, nRMSE at the three horizons):
# Burgers pure rollout 3: 0.17/0.19/0.23 (the previous results), rollout 1: 0.088/0.103/0.125, rollout 1 at
# lr 2e-3: 0.073/0.077/0.091; Navier–Stokes pure rollout 3 / 2 / 1 / 1 at lr 2e-3: 0.064/0.107/0.200,
# 0.056/0.098/0.187, 0.049/0.088/0.170, 0.045/0.081/0.155 (dim 128, "learnable" slopes: no better; no bias:
# 0.23/0.45/0.77). lr 2e-3 also helps the NS correction (0.0079/0.015/0.039 vs 0.0098/0.018/0.047) and is
# neutral on the Burgers one (0.040/0.046/0.057 vs 0.040/0.047/0.056). The FNO takes the same recipe and gains
# as much or more: rollout 1, lr 2e-3: NS 0.034/0.060/0.120 (rollout 3, lr 1e-3: 0.059/0.108/0.213), Burgers
# 0.096/0.115/0.146 (0.25/0.30/0.35). The corrections are cheaper to run at depth 2 and decoder width 8 (NS step
# at batch 16: ~18 vs ~24 ms, the coarse scheme's 10 substeps ~7 ms of it) and no less accurate in 120 s: NS
# 0.0085/0.014/0.033 (depth 3, width 16: 0.0079/0.014/0.032), Burgers 0.037/0.039/0.046 (0.039/0.044/0.053).
# Translation augmentation (random_shift: every window rolled by a random periodic offset; these PDEs are
# homogeneous) buys ~3 % (pairs run side by side): NS pure 0.045/0.080/0.153 vs 0.046/0.083/0.159, Burgers pure
# 0.071/0.074/0.090 vs 0.074/0.076/0.091; the FNO (not shift-equivariant: grid positional embedding) gets it too,
# NS 0.033/0.060/0.117 vs 0.034/0.061/0.121; neutral on the corrections (NS 0.0089/0.015/0.037 both). Other NS
# pure variants in 120 s (pairs): decoder width 32 0.043/0.076/0.142 (and with the shift 0.044/0.078/0.146) at
# 1.4× the step time; depth 4 with MLP ratio 2 0.043/0.078/0.151; 8 heads 0.047/0.084/0.159; batch 16 at lr 3e-3
# 0.044/0.079/0.149, batch 32 at 4e-3 0.047/0.084/0.163. None closes the gap to the FNO (it sees 3× fewer samples
# in the budget and still wins). What does is a convolutional stem (stem_width: two 3×3 convolutions make cell
# features the patch tokens embed beside the raw fields): NS pure 0.036/0.061/0.112 vs 0.044/0.078/0.150 (pair),
# stem 32 no better (0.036/0.061/0.116), with decoder "conv" instead of "conv_skip" 0.035/0.062/0.119; Burgers
# pure 0.070/0.071/0.086; NS correction with stem 8 0.0072/0.013/0.029 and 16 0.0069/0.012/0.028 (vs
# 0.0089/0.015/0.036), Burgers correction with stem 8 0.037/0.041/0.048 (vs 0.038/0.043/0.051). With the stem,
# lr 3e-3 helps the pure models (NS 0.033/0.056/0.105 vs 0.036/0.061/0.112 at 2e-3; Burgers 0.063/0.061/0.071 vs
# 0.070/0.072/0.085) and the FNO as much (NS 0.031/0.055/0.107 vs 0.033/0.060/0.117); the corrections keep 2e-3.
# With the stem the pure models do better at depth 2 than 3 (more samples in the budget; pairs): NS
# 0.0315/0.054/0.100 vs 0.033/0.056/0.105, beside the FNO 0.0322/0.0544/0.102 vs 0.0307/0.0554/0.107; Burgers
# 0.057/0.055/0.068 vs 0.061/0.059/0.069. No better on NS at depth 2: weight decay 0 (0.031/0.053/0.099), dim 96
# (0.031/0.053/0.101), decoder width 24 (0.032/0.055/0.102), stem 24 (0.034/0.058/0.108); patch 2 at depth 3
# 0.037/0.070/0.153 (a third of the samples). Burgers' correction sits on the third-order upwind-biased scheme
# (burgers/upwind3): stable at 32² where central is not, 0.041/0.045/0.044 bare against first-order upwind's
# 0.21/0.28/0.33, and its fused step is no dearer (180 steps at 32², batch 16: 32 vs 52 ms). Corrected on it
# (120 s, pair): 0.013/0.011/0.011 against 0.032/0.035/0.040 on upwind, so upwind is no longer a candidate
# (the cheapest-stable rule would otherwise pick between the two on timing noise).
_SMALL_GRID = {"patch": 4, "decoder": "conv_skip", "decoder_width": 16, "dim": 64, "depth": 2, "heads": 4,
               "rollout_steps": 1, "lr": 3e-3, "random_shift": True, "stem_width": 16}
_LEAN = {"decoder_width": 8, "stem_width": 8, "lr": 2e-3}  # the corrected surrogates' changes
CASES = {  # heat's coarse candidates leave out the spectral propagator: it is exact for these fields
    "heat": Case("heat", 1.0, {"diffusivity": 0.01}, {"k_max": 8.0}, "spectral", 0.02, (2, 5, 10), 12,
                 ("ftcs", "crank_nicolson"), {"patch": 4, "decoder": "conv_skip", "decoder_width": 16, "dim": 64,
                                               "depth": 2, "heads": 4, "rollout_steps": 2}),
    "burgers": Case("burgers", 1.0, {"viscosity": 0.01}, {"k_max": 4.0, "amplitude": 0.5}, "central", 0.1,
                    (2, 5, 10), 12, ("upwind3", "central"), _SMALL_GRID, _LEAN),
    "navier_stokes": Case("navier_stokes", 2 * math.pi, {"viscosity": 1e-3}, {"k_max": 4.0}, "arakawa", 0.5,
                          (1, 2, 4), 10, ("central", "arakawa"), _SMALL_GRID, _LEAN),
}


@dataclass(frozen=True)
class Settings:
    """The size of a run (see the module docstring for the three presets)."""

    grid: int
    fine: int  # reference refinement factor
    test_samples: int
    train_samples: int
    budget: dict[str, float]  # training seconds per pde, for each surrogate
    resolutions: tuple[float, ...]
    repeats: int
    model_scale: int = 1  # multiplies the model width of the case
    write: bool = True


PRESETS = {
    "quick": Settings(32, 4, 16, 256, {"heat": 20.0, "burgers": 120.0, "navier_stokes": 120.0},
                      (0.5, 1.0, 1.25, 1.5, 2.0, 3.0), 3),
    "full": Settings(64, 4, 32, 256, {"heat": 10.0, "burgers": 40.0, "navier_stokes": 40.0},
                     (0.5, 1.0, 1.25, 1.5, 2.0, 3.0), 5, model_scale=2),
    "smoke": Settings(16, 2, 4, 6, {"heat": 2.0, "burgers": 3.0, "navier_stokes": 3.0}, (1.0, 2.0), 1,
                      write=False),
}
SAFETIES = (0.9, 0.45)  # explicit schemes: fractions of the stability limit
SUBSTEPS = (1, 4)  # unconditionally stable schemes: steps per surrogate step
TEST_SEED, TRAIN_SEED = 2, 1


# --- timing a stepper to every horizon ---------------------------------------------------------------

def implementation(step: Callable[[torch.Tensor], torch.Tensor], device: str) -> str:
    """How :func:`_surrogate_data.advance` runs ``step``: the scheme's multi-step ``run`` (fused CPU loop, CUDA
    graph) where it has one, else step by step."""
    if hasattr(step, "run"):
        fused = " (fused)" if getattr(step, "has_fused", False) else ""
        return "scheme.run" + (" (CUDA graph)" if device.startswith("cuda") else fused)
    return "scheme(u) per step" if hasattr(step, "cfl_limit") else "step(u) per step"


def run_to_horizons(step: Callable[[torch.Tensor], torch.Tensor], u0: torch.Tensor, substeps: int,
                    horizons: tuple[int, ...], *, repeats: int, sync: Callable[[], Any] | None = None
                    ) -> tuple[list[np.ndarray], list[float]]:
    """Advance u0 (B, C, H, W) by ``substeps`` steps of ``step`` per surrogate step up to every horizon (by
    :func:`_surrogate_data.advance`: a scheme's ``run`` where it has one).

    Returns the (B, C, H, W) states at the horizons and the median cumulative wall time to each (seconds,
    over ``repeats`` runs after a warm-up of one surrogate step).
    """
    sync = sync or (lambda: None)
    with torch.inference_mode():
        advance(step, u0, substeps)  # warm-up: caches (FFT multipliers, attention bias, graphs), allocator
        runs = []
        for _ in range(repeats):
            u, done, marks, states = u0, 0, [], []
            sync()
            start = time.perf_counter()
            for h in horizons:
                u = advance(step, u, (h - done) * substeps)
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


# --- the classical side ------------------------------------------------------------------------------

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
                               "nrmse": errors if stable else [math.inf] * len(errors),
                               "implementation": implementation(scheme, device)})
                print(f"  {case.pde}/{name} {n}² {label} (dt {scheme.dt:.3g}): nRMSE "
                      + " ".join(f"{e:.3g}" for e in points[-1]["nrmse"]) + "; s "
                      + " ".join(f"{t:.3g}" for t in times),
                      flush=True)
    return points


# --- the surrogate side ------------------------------------------------------------------------------

def surrogate_points(case: Case, st: Settings, ref: np.ndarray, device: str, sync: Callable[[], Any],
                     budget: float) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """Training data (cached), the coarse scheme, the three surrogates, and every one rolled out on the test set.

    Returns:
        ``(surrogates, coarse, data)``: per model its errors, times and costs (or a skip note); the bare
        coarse scheme's choice, errors and times; the training data's description and generation cost.
    """
    traj, data = trajectories(case, grid=st.grid, fine=st.fine, samples=st.train_samples,
                              steps=case.train_steps, seed=TRAIN_SEED, device=device)  # (S, T, C, N, N)
    data.update(samples=st.train_samples, steps=case.train_steps)
    print(f"  {case.pde}: training data {'loaded' if data['cached'] else 'generated'} "
          f"({data['generation_s']:.0f} s to generate)", flush=True)
    scheme, k, coarse = coarse_scheme(case, st.grid, traj, device)
    x0 = torch.tensor(ref[:, 0], dtype=torch.float32, device=device)  # (B, C, N, N)

    def evaluate(step: Callable[[torch.Tensor], torch.Tensor], substeps: int) -> dict[str, Any]:
        states, times = run_to_horizons(step, x0, substeps, case.horizons, repeats=st.repeats, sync=sync)
        return {"nrmse": [nrmse(s, ref[:, h]) for s, h in zip(states, case.horizons)], "time_s": times,
                "implementation": implementation(step, device)}

    coarse.update(evaluate(scheme, k))
    print(f"  {case.pde}/bare {coarse['scheme']} {st.grid}² ×{k}: nRMSE "
          + " ".join(f"{e:.3g}" for e in coarse["nrmse"]), flush=True)
    surrogates = {}
    for model, (step, info) in train_all(case, st, traj, scheme, device, budget).items():
        if step is not None:
            info.update(evaluate(step, 1))
            print(f"  {case.pde}/{model}: nRMSE " + " ".join(f"{e:.3g}" for e in info["nrmse"]) + "; s "
                  + " ".join(f"{t:.3g}" for t in info["time_s"]) + f" (training {info['train_s']:.0f} s)", flush=True)
        else:
            print(f"  {case.pde}/{model}: skipped — {info['skipped']}", flush=True)
        surrogates[model] = info
    return surrogates, coarse, data


def compare(case: Case, classical: list[dict[str, Any]], surrogates: dict[str, Any], data_s: float,
            batch: int) -> list[dict[str, Any]]:
    """Per surrogate and horizon: its point against the classical front at equal error, and the break-even."""
    rows = []
    for model, sur in surrogates.items():
        if "skipped" in sur:
            continue
        for k, h in enumerate(case.horizons):
            front = pareto_front([(p["time_s"][k], p["nrmse"][k]) for p in classical if p["stable"]])
            err, t_s = sur["nrmse"][k], sur["time_s"][k]
            row = {"model": model, "horizon": h, "T": h * case.step, "surrogate_nrmse": err, "surrogate_s": t_s,
                   "front": front, **speed_ratio(front, err, t_s)}
            better = [p for p in classical if p["stable"] and p["nrmse"][k] <= err]
            cheapest = min(better, key=lambda p: p["time_s"][k]) if better else None
            row["cheapest_as_accurate"] = None if cheapest is None else {
                "label": f"{cheapest['scheme']} {cheapest['grid']}² {cheapest['step']}",
                "time_s": cheapest["time_s"][k], "nrmse": cheapest["nrmse"][k]}
            n = None
            if row["status"] != "less_accurate":
                n = break_even(data_s + sur["train_s"], row["classical_s"] / batch, t_s / batch)
            row["break_even_trajectories"] = n
            row["counts"] = counts(row)
            rows.append(row)
    return rows



# --- main --------------------------------------------------------------------------------------------

def run_case(case: Case, st: Settings, device: str, sync: Callable[[], Any], budget: float) -> dict[str, Any]:
    """Reference, classical candidates, surrogates, bare coarse scheme and comparison of one PDE."""
    ref, test = trajectories(case, grid=st.grid, fine=st.fine, samples=st.test_samples, steps=max(case.horizons),
                             seed=TEST_SEED, device=device)  # (S, T, C, N, N)
    print(f"{case.pde}: test reference {st.fine * st.grid}² {'loaded' if test['cached'] else 'generated'} "
          f"({test['generation_s']:.0f} s to generate)", flush=True)
    u0_fine = initial_states(case, st.fine * st.grid, st.test_samples, seed=TEST_SEED)  # the test seed
    classical = classical_points(case, u0_fine, ref, st, device, sync)
    surrogates, coarse, data = surrogate_points(case, st, ref, device, sync, budget)
    rows = compare(case, classical, surrogates, data["generation_s"], st.test_samples)
    for row in rows:
        print("  " + verdict(case.pde, row), flush=True)
    desc = {"pde": case.pde, "extent": case.extent, "params": case.params, "ic": case.ic,
            "reference": f"{case.reference} on {st.fine * st.grid}², SSP-RK3 at half the CFL limit"
            if case.reference != "spectral" else f"spectral (exact) on {st.fine * st.grid}²",
            "step": case.step, "horizons": list(case.horizons), "T": [h * case.step for h in case.horizons],
            "budget_s": budget}
    return {"case": desc, "test_data": test, "train_data": data, "classical": classical, "coarse": coarse,
            "surrogates": surrogates, "comparison": rows}


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog="Full setting (default): "
                                 "64² evaluation grid, 256² reference, 256 training trajectories, meant for "
                                 "--device cuda (≤ 8 min on one GPU). See the module docstring.")
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="32² grid, ~16 min on a 2-core CPU once the data are "
                      "cached; writes results")
    mode.add_argument("--smoke", action="store_true", help="16², seconds; prints only (development)")
    ap.add_argument("--data-only", action="store_true", help="generate (or find) the cached data and stop")
    ap.add_argument("--device", default="cpu", help="torch device for every method (default cpu)")
    ap.add_argument("--threads", type=int, default=1, help="torch/BLAS threads for every method (default 1)")
    ap.add_argument("--pdes", default=",".join(CASES), help=f"comma-separated subset of {','.join(CASES)}")
    ap.add_argument("--budget", type=float, help="training seconds per surrogate and PDE (overrides the preset)")
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
    pdes = args.pdes.split(",")
    if args.data_only:
        for p in pdes:
            for samples, steps, seed in ((st.test_samples, max(CASES[p].horizons), TEST_SEED),
                                         (st.train_samples, CASES[p].train_steps, TRAIN_SEED)):
                _, info = trajectories(CASES[p], grid=st.grid, fine=st.fine, samples=samples, steps=steps,
                                       seed=seed, device=args.device)
                print(f"{p}: {samples} trajectories {'in the cache' if info['cached'] else 'generated'} "
                      f"({info['generation_s']:.0f} s to generate), key {info['key']}", flush=True)
        return
    sync = torch.cuda.synchronize if device == "cuda" else None
    load_start = os.getloadavg()
    cases = {p: run_case(CASES[p], st, args.device, sync, st.budget[p]) for p in pdes}
    settings = {"preset": preset, "grid": st.grid, "fine": st.fine, "test_samples": st.test_samples,
                "train_samples": st.train_samples, "resolutions": list(st.resolutions), "repeats": st.repeats,
                "budget_s": st.budget, "threads": args.threads, "device": args.device, "dtype": "float32",
                "safeties": list(SAFETIES), "substeps": list(SUBSTEPS), "useful_nrmse": USEFUL,
                "load_average": load_span(load_start)}  # other work on the machine, start/end
    payload = {"mode": preset, "settings": settings, "cases": cases}  # mode: make_readme marks quick runs
    md = markdown(payload)
    if st.write:
        write_results(NAME, payload, md)
        plot(payload, RESULTS / f"{NAME}.png")
    print(md)
    for row in headline(payload):
        print(f"{row['result']}: {row['value']} (goal {row['goal'] or '-'}, met {row['met']})")


if __name__ == "__main__":
    main()
