"""The surrogates of ``surrogate_vs_stencil.py`` and the coarse scheme under the learned correction.

Three surrogates per PDE, each trained on the same cached trajectories for the same wall-clock budget on
the same device and threads, each exposed as ``step(u: (B, C, H, W)) -> (B, C, H, W)`` in physical units:

- ``pure``: ``gridvit.train(ds, history=1, lead=1, ...)``, the distance-biased ViT alone.
- ``corrected``: ``gridvit.train(ds, solver=scheme, ...)``, the same network correcting ``k`` steps of the
  PDE's cheapest stable coarse scheme on the evaluation grid (:func:`coarse_scheme`).
- ``peer``: neuraloperator's FNO (:mod:`_peer_fno`); skipped with a note when neuraloperator is missing.
"""

from __future__ import annotations

import math
import time
from typing import Any, Callable

import numpy as np
import torch

from _peer_fno import available, train_fno
from _surrogate_data import advance, as_dataset

SAFETY = 0.9  # the coarse scheme's dt: this fraction of its stability limit on the training data
PATIENCE = 20  # epochs without validation improvement before training stops early (best weights kept)
MODELS = ("pure", "corrected", "peer")

Stepper = Callable[[torch.Tensor], torch.Tensor]


def substeps_for(probe: Any, states: torch.Tensor, dt: float, safety: float = SAFETY) -> int:
    """The fewest steps of ``probe``'s scheme per ``dt`` keeping ``states`` (B, C, H, W) at ``safety`` × its
    stability limit (1 for unconditionally stable schemes)."""
    if math.isinf(probe.cfl_limit):
        return 1
    return max(1, math.ceil(dt * probe.rate(states) / (safety * probe.cfl_limit) - 1e-9))


def coarse_scheme(case: Any, grid: int, traj: np.ndarray, device: str) -> tuple[Any, int, dict[str, Any]]:
    """The cheapest of ``case.coarse`` that is stable on the training trajectories at the evaluation grid.

    Each candidate is built for the grid (``dx = dy = extent / grid``) with ``dt = Δt / k``, ``k`` from
    :func:`substeps_for` over every training state, then run from the training initial states for the
    trajectories' length; it is stable when every state stays finite and within its CFL limit. The
    cheapest stable one (wall time of that run) is returned.

    Returns:
        ``(scheme, k, record)``; ``record`` lists every candidate (k, dt, stable, seconds).

    Raises:
        RuntimeError: no candidate is stable.
    """
    import gridvit.solvers as gs

    s, t, c = traj.shape[:3]
    states = torch.tensor(traj.reshape(s * t, c, grid, grid), device=device)  # (S*T, C, N, N)
    u0 = torch.tensor(traj[:, 0], device=device)  # (S, C, N, N)
    dx = case.extent / grid
    tried = []
    for name in case.coarse:
        probe = gs.scheme_for(case.pde, name, dt=1e-12 * case.step, dx=dx, dy=dx, **case.params)
        k = substeps_for(probe, states, case.step)
        scheme = probe.with_dt(case.step / k)
        u, worst, seconds = u0, 0.0, 0.0
        with torch.inference_mode():
            for _ in range(t - 1):  # every saved step: k scheme steps, then its CFL number
                start = time.perf_counter()
                u = advance(scheme, u, k)
                seconds += time.perf_counter() - start
                worst = max(worst, scheme.cfl(u) if bool(torch.isfinite(u).all()) else math.inf)
                if worst > scheme.cfl_limit:
                    break
        tried.append({"scheme": name, "k": k, "dt": scheme.dt, "stable": worst <= scheme.cfl_limit,
                      "seconds": seconds, "_scheme": scheme})
    stable = [r for r in tried if r["stable"]]
    if not stable:
        raise RuntimeError(f"{case.pde}: none of {case.coarse} is stable on the {grid}² training data")
    best = min(stable, key=lambda r: r["seconds"])
    record = {"scheme": best["scheme"], "k": best["k"], "dt": best["dt"], "grid": grid,
              "candidates": [{k: v for k, v in r.items() if k != "_scheme"} for r in tried]}
    return best["_scheme"], best["k"], record


def gridvit_options(model: dict[str, Any], st: Any, device: str, budget: float) -> dict[str, Any]:
    """``gridvit.train`` options: the case's ``model`` options (width × the preset's scale) and the shared ones."""
    options = dict(model)
    options["dim"] = options["dim"] * st.model_scale
    return dict(history=1, lead=1, time_budget=budget, climatology=None, calendar=False, progress=False,
                device=device, seed=0, patience=PATIENCE, **options)


def train_all(case: Any, st: Any, traj: np.ndarray, scheme: Any, device: str,
              budget: float) -> dict[str, tuple[Stepper | None, dict[str, Any]]]:
    """Train the three surrogates on ``traj`` (S, T, C, N, N); each gets ``budget`` seconds.

    Returns:
        ``{model: (step or None, info)}``; a skipped model has ``step`` None and ``info["skipped"]`` saying why.
    """
    import gridvit
    from gridvit.config import TrainConfig

    ds = as_dataset(case, traj)
    options = gridvit_options(case.model, st, device, budget)
    out: dict[str, tuple[Stepper | None, dict[str, Any]]] = {}
    for model in MODELS:
        start = time.perf_counter()
        if model == "peer":
            reason = available()
            if reason is not None:
                out[model] = (None, {"skipped": reason})
                continue
            recipe = {"rollout": options.get("rollout_steps", 1), "input_noise": options.get("input_noise", 0.0),
                      "random_shift": options.get("random_shift", False),
                      "pushforward": options.get("pushforward") is not False,  # the pure model's (None: True)
                      "lr": options.get("lr", TrainConfig.lr)}
            step, info = train_fno(traj, budget=budget, device=device, patience=PATIENCE, **recipe)
            info["model"] = {"modes": 16, "width": 32, **recipe}
        else:
            mine = {**case.model, **case.corrected} if model == "corrected" else case.model
            # a fresh copy of the scheme: constants it cached under inference_mode cannot enter autograd
            extra = {"solver": scheme.with_dt(scheme.dt)} if model == "corrected" else {}
            sur = gridvit.train(ds, **gridvit_options(mine, st, device, budget), **extra)
            step = sur.step
            info = {"parameters": sum(p.numel() for p in sur.model.parameters()),
                    "model": {**mine, "dim": mine["dim"] * st.model_scale}}
        info["train_s"] = time.perf_counter() - start
        out[model] = (step, info)
    return out
