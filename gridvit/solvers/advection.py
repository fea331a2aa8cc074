"""Linear advection ``∂u/∂t + a ∂u/∂x + b ∂u/∂y = 0`` with a constant velocity (a, b) = (vx, vy).

Each channel of (B, C, H, W) is advected independently. Both schemes are a constant-coefficient
stencil, so a step is a handful of fused in-place slice updates.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch

from gridvit.solvers import fused
from gridvit.solvers.base import BoundedScheme
from gridvit.solvers.grid_ops import stencil


@dataclass(frozen=True, eq=False, kw_only=True)
class _Advection(BoundedScheme):
    """Shared parameters: velocity components ``vx`` (along x, W) and ``vy`` (along y, H), boundaries."""

    vx: float = 1.0
    vy: float = 0.0
    pde: ClassVar[str] = "advection"
    cfl_limit: ClassVar[float] = 1.0
    has_fused: ClassVar[bool] = True

    def _validate(self) -> None:
        self._numbers("vx", "vy")

    def params(self) -> dict[str, str | int | float]:
        return {"vx": self.vx, "vy": self.vy, **super().params()}


@dataclass(frozen=True, eq=False, kw_only=True)
class AdvectionUpwind(_Advection):
    """First-order upwind, forward Euler (unsplit):

    ``u' = u - (a dt/dx)(u_i - u_{i-1}) - (b dt/dy)(u_j - u_{j-1})`` for a, b > 0, mirrored for negative
    velocities. First order in space and time; stable (and monotone) for
    ``|a| dt/dx + |b| dt/dy <= 1``; conserves the total of u on a periodic grid.
    """

    name: ClassVar[str] = "upwind"
    cfl_formula: ClassVar[str] = "dt·(|vx|/dx + |vy|/dy)"

    def rate(self, u: torch.Tensor | None = None) -> float:
        return abs(self.vx) / self.dx + abs(self.vy) / self.dy

    def coefficients(self) -> tuple[float, dict[tuple[int, int], float]]:
        """(centre, {(axis, offset): coefficient}) of the update stencil."""
        cy, cx = self.vy * self.dt / self.dy, self.vx * self.dt / self.dx
        nb = {(0, -1 if cy > 0 else 1): abs(cy), (1, -1 if cx > 0 else 1): abs(cx)}
        return 1.0 - abs(cy) - abs(cx), nb

    def _step(self, u: torch.Tensor) -> torch.Tensor:
        centre, nb = self.cached(("coef",), self.coefficients)
        return stencil(u, centre, nb, self.bcs, self.spacing)  # (B, C, H, W)

    def stencil5(self, dtype: np.dtype) -> tuple:
        """The fused 5-point kernel's (coefficients, y boundary, x boundary) for arrays of ``dtype``."""
        return fused.constants(fused.five_point(*self.coefficients()), self.bcs, self.spacing, dtype)

    def _fused(self, dtype: np.dtype, kernels):
        return fused.bind(kernels.stencil5, *self.stencil5(dtype))


@dataclass(frozen=True, eq=False, kw_only=True)
class AdvectionLaxWendroff(_Advection):
    """Lax–Wendroff, dimensionally split (an x sweep, then a y sweep), each with Courant number c:

    ``u' = u - (c/2)(u_{i+1} - u_{i-1}) + (c²/2)(u_{i+1} - 2u_i + u_{i-1})``.
    Second order in space and time (the constant-coefficient sweeps commute on a periodic grid);
    stable for ``max(|a| dt/dx, |b| dt/dy) <= 1``; conserves the total of u on a periodic grid.
    """

    name: ClassVar[str] = "lax_wendroff"
    cfl_formula: ClassVar[str] = "dt·max(|vx|/dx, |vy|/dy)"

    def rate(self, u: torch.Tensor | None = None) -> float:
        return max(abs(self.vx) / self.dx, abs(self.vy) / self.dy)

    @staticmethod
    def sweep(c: float, axis: int) -> tuple[float, dict[tuple[int, int], float]]:
        """(centre, neighbours) of a 1-D Lax–Wendroff sweep with Courant number c along ``axis``."""
        return 1.0 - c * c, {(axis, -1): 0.5 * (c * c + c), (axis, 1): 0.5 * (c * c - c)}

    def sweeps(self) -> list[tuple[float, dict[tuple[int, int], float]]]:
        """The (centre, neighbours) of the x sweep, then the y sweep, leaving out a zero Courant number."""
        cx, cy = self.vx * self.dt / self.dx, self.vy * self.dt / self.dy
        return [self.sweep(c, axis) for c, axis in ((cx, 1), (cy, 0)) if c != 0.0]

    def _step(self, u: torch.Tensor) -> torch.Tensor:
        sweeps = self.sweeps()
        for centre, nb in sweeps:
            u = stencil(u, centre, nb, self.bcs, self.spacing)  # (B, C, H, W)
        return u if sweeps else u.clone()

    def _fused(self, dtype: np.dtype, kernels):
        kernel = kernels.stencil5
        sweeps = [fused.constants(fused.five_point(*sw), self.bcs, self.spacing, dtype) for sw in self.sweeps()]

        def step(a: np.ndarray, out: np.ndarray) -> None:
            if len(sweeps) == 2:  # x sweep into a temporary, y sweep into out
                tmp = np.empty_like(a)
                kernel(a, tmp, *sweeps[0])
                kernel(tmp, out, *sweeps[1])
            elif sweeps:
                kernel(a, out, *sweeps[0])
            else:
                out[...] = a

        return step
