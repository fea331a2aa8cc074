"""The fused CPU path: each explicit scheme's step (or Runge–Kutta stage) as one compiled numba loop.

``scheme(u)`` takes this path by itself when it can: ``u`` on the CPU, float32 or float64, and no
gradient to record (``torch.is_grad_enabled()`` and ``u.requires_grad`` not both true). The torch path
stays for GPUs and autograd, and the two agree to rounding (1e-12 in float64; tested). Fused:

- ``heat/ftcs``, ``advection/upwind``, ``advection/lax_wendroff`` (each sweep): the 5-point kernel;
- ``burgers/upwind``, ``burgers/central``: one kernel per SSP-RK3 stage;
- ``gray_scott/explicit``: one kernel per step;
- ``navier_stokes/arakawa``, ``navier_stokes/central``: one kernel per stage (Jacobian, Laplacian, drag,
  forcing and the stage combination); ψ still comes from torch's FFT.

all with periodic, Dirichlet and Neumann boundaries on either axis (Navier–Stokes is periodic only).
The spectral, Crank–Nicolson and IMEX schemes are FFT/matrix work and stay on torch.

Compiled code is cached on disk (numba's ``cache=True``), so the first call on a machine compiles
(a few seconds per kernel and dtype) and later processes load it. Threads: numba runs as many threads
as torch (``torch.get_num_threads()``), over the batch. :func:`torch_path` forces the torch path.
"""

from __future__ import annotations

import contextlib
import importlib.util
from typing import Any, Iterator, Sequence

import numpy as np
import torch

from gridvit.solvers.grid_ops import Boundaries, Boundary

AVAILABLE = importlib.util.find_spec("numba") is not None
_state = {"enabled": True, "threads": 0}


@contextlib.contextmanager
def torch_path() -> Iterator[None]:
    """Within this block every scheme runs its torch path (for tests and benchmarks)."""
    before = _state["enabled"]
    _state["enabled"] = False
    try:
        yield
    finally:
        _state["enabled"] = before


def eligible(u: torch.Tensor) -> bool:
    """True when ``scheme(u)`` may take the fused path: numba present and enabled, CPU, float32/64, no grad."""
    return (_state["enabled"] and AVAILABLE and u.device.type == "cpu" and u.dtype in (torch.float32, torch.float64)
            and not (u.requires_grad and torch.is_grad_enabled()))


def compiled() -> Any:
    """The kernel module, imported (with numba) on first use; numba's threads follow torch's."""
    from gridvit.solvers.fused import kernels as k
    import numba

    n = min(torch.get_num_threads(), numba.config.NUMBA_NUM_THREADS)
    if n != _state["threads"]:
        numba.set_num_threads(n)
        _state["threads"] = n
    return k


def bc_array(b: Boundary, h: float) -> np.ndarray:
    """``(periodic, a, b)`` of one axis for the kernels (ghost = a * u_edge + b when not periodic)."""
    return np.array([1.0, 0.0, 0.0] if b.periodic else [0.0, *b.ghost(h)])


def constants(values: Sequence[float], bcs: Boundaries, spacing: tuple[float, float], dtype: torch.dtype) -> tuple:
    """(coefficients in ``dtype``, y boundary, x boundary) as the kernels take them."""
    coef = np.array(values, dtype=np.float32 if dtype == torch.float32 else np.float64)
    return coef, bc_array(bcs[0], spacing[0]), bc_array(bcs[1], spacing[1])


def planes(u: torch.Tensor) -> np.ndarray:
    """Contiguous (B, C, H, W) -> its (B·C, H, W) numpy view."""
    return u.numpy().reshape(-1, *u.shape[-2:])  # (B·C, H, W)


def five_point(centre: float, neighbours: dict[tuple[int, int], float]) -> list[float]:
    """(centre, S, N, W, E) coefficients from ``{(axis, offset): c}`` (axis 0 = y, 1 = x)."""
    return [centre, *(neighbours.get(k, 0.0) for k in ((0, -1), (0, 1), (1, -1), (1, 1)))]


def stencil(u: torch.Tensor, consts: tuple) -> torch.Tensor:
    """One 5-point constant-coefficient stencil (see :func:`constants`, :func:`five_point`): (B, C, H, W)."""
    out = torch.empty(u.shape, dtype=u.dtype)
    compiled().stencil5(planes(u), planes(out), *consts)
    return out


STAGES = ((0.0, 1.0), (0.75, 0.25), (1.0 / 3.0, 2.0 / 3.0))  # SSP-RK3 stage k: out = α u0 + β (v + dt L(v))


def stage_constants(values: Sequence[float], bcs: Boundaries, spacing: tuple[float, float], dtype: torch.dtype) -> list:
    """:func:`constants` of the three SSP-RK3 stages, ``(α, β, *values)`` each (see :data:`STAGES`)."""
    return [constants((a, b, *values), bcs, spacing, dtype) for a, b in STAGES]


def ssprk3(stage, u: torch.Tensor) -> torch.Tensor:
    """SSP-RK3 by three fused stages: ``stage(v, u0, out, k)`` writes stage k's ``α u0 + β (v + dt L(v))``."""
    u1, u2, u3 = (torch.empty(u.shape, dtype=u.dtype) for _ in range(3))
    stage(u, u, u1, 0)
    stage(u1, u, u2, 1)
    stage(u2, u, u3, 2)
    return u3
