"""The classical half of a learned-correction step: ``k`` substeps of a gridvit scheme in normalised units.

A corrected surrogate predicts ``u_next = S^k(u) + f_θ(u, S^k(u))`` ("solver in the loop", Um et al. 2020;
Kochkov et al. 2021): :class:`SolverStep` computes ``S^k`` of the last input state, and the network sees it
as one more input state — the last — so its zero-initialised residual head starts as the bare scheme.
``k = Δt_model / scheme.dt`` must be a whole number. The scheme runs in at least float32, outside autocast, and
out of place while autograd records it, so gradients reach earlier steps of an unrolled loss through it; with
no gradient to record (inference, one-step or pushforward training) it takes the scheme's fastest multi-step
path, ``scheme.run`` (a fused CPU loop, a replayed CUDA graph).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from gridvit.data.spec import DataSpec
from gridvit.solvers.base import Scheme

_RTOL = 1e-6  # relative tolerance of grid spacing and time-step matches


class SolverStep:
    """``k`` steps of ``scheme`` applied to normalised states: (B, C, H, W) -> (B, C, H, W).

    Args:
        scheme: a :mod:`gridvit.solvers` scheme built for the data's grid (``dx``, ``dy``, boundaries) whose
            ``dt`` divides the model step.
        substeps: k, scheme steps per model step.
        mean, std: (C,) per-channel statistics that map normalised states to physical ones.
    """

    def __init__(self, scheme: Scheme, substeps: int, mean: np.ndarray, std: np.ndarray) -> None:
        self.scheme, self.substeps = scheme, int(substeps)
        self.mean = torch.as_tensor(np.asarray(mean, np.float32))[:, None, None]  # (C, 1, 1)
        self.std = torch.as_tensor(np.asarray(std, np.float32))[:, None, None]  # (C, 1, 1)

    def __call__(self, z: torch.Tensor) -> torch.Tensor:
        dtype = torch.promote_types(z.dtype, torch.float32)  # never below float32 (bf16 under autocast)
        mean, std = self.mean.to(z.device, dtype), self.std.to(z.device, dtype)
        with torch.autocast(z.device.type, enabled=False):
            u = z.to(dtype) * std + mean  # (B, C, H, W) physical
            u = self.scheme.run(u, self.substeps)  # fused CPU loop / CUDA graph when no gradient is recorded
            return (u - mean) / std


def substeps_for(scheme: Any, spec: DataSpec, *, lead: int, channels: int) -> int:
    """Check that ``scheme`` fits data laid out as ``spec`` and return k = lead·Δt_data / scheme.dt.

    Raises:
        TypeError: ``scheme`` is not a :mod:`gridvit.solvers` scheme.
        ValueError: the data are not on a plane with a numeric time axis; the scheme's grid spacing,
            boundaries or channel count differ from the data's; its dt does not divide the model step.
    """
    if not isinstance(scheme, Scheme):
        raise TypeError(f"solver must be a gridvit.solvers scheme instance (e.g. BurgersCentral(dt=..., dx=..., "
                        f"dy=..., ...)), got {type(scheme).__name__}")
    grid = spec.grid
    if grid.kind != "plane":
        raise ValueError(f"a solver needs data on a plane grid; this grid is a {grid.kind}")
    for role, coord, h in (("y", grid.y, scheme.dy), ("x", grid.x, scheme.dx)):
        steps = np.diff(np.asarray(coord, np.float64))
        if steps.size == 0 or not np.allclose(steps, steps[0], rtol=_RTOL, atol=0):
            raise ValueError(f"a solver needs an evenly spaced {role} coordinate; {spec.grid_dims['yx'.index(role)]!r} "
                             "is not")
        if not math.isclose(abs(steps[0]), h, rel_tol=_RTOL):
            raise ValueError(f"the solver {scheme.label} was built for d{role}={h:g} but the data's {role} spacing "
                             f"is {abs(steps[0]):g}; build the scheme for the data's grid")
    bcs = getattr(scheme, "bcs", None)
    if bcs is not None:
        want = tuple(b.periodic for b in bcs)
        if want != grid.periodic:
            raise ValueError(f"the solver {scheme.label} is periodic along (y, x) = {want} but the data are "
                             f"periodic along {grid.periodic}; give matching boundaries (or periodic= to train)")
    if scheme.channels is not None and scheme.channels != channels:
        raise ValueError(f"the solver {scheme.label} steps {scheme.channels} field(s) but the data have {channels} "
                         "channel(s)")
    if spec.time.kind != "numeric":
        raise ValueError("a solver needs a numeric time axis in the scheme's time units (as simulate writes); "
                         f"this one is {spec.time.kind}")
    dt_model = lead * float(spec.time.step)
    k = dt_model / scheme.dt
    if round(k) < 1 or not math.isclose(k, round(k), rel_tol=_RTOL):
        raise ValueError(f"the solver's dt={scheme.dt:g} does not divide the model step lead·Δt = {lead}·"
                         f"{float(spec.time.step):g} = {dt_model:g} ({k:.6g} substeps); use dt = {dt_model:g}/k")
    return int(round(k))
