"""Gray–Scott reaction–diffusion for (u, v), channels 0 and 1 of (B, 2, H, W):

    ∂u/∂t = D_u ∇²u - u v² + F (1 - u)
    ∂v/∂t = D_v ∇²v + u v² - (F + k) v

with feed rate F (``feed``) and kill rate k (``kill``). The reaction's stiffness is bounded by
``R = max(v²) + 2 max|u v| + F + k`` (a row-sum bound of its Jacobian).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch

from gridvit.solvers import fused
from gridvit.solvers.base import BoundedScheme
from gridvit.solvers.grid_ops import laplacian
from gridvit.solvers.spectral import LaplaceEigen


@dataclass(frozen=True, eq=False, kw_only=True)
class _GrayScott(BoundedScheme):
    """Shared parameters: diffusivities ``du``, ``dv`` >= 0, ``feed``, ``kill`` >= 0, boundaries."""

    du: float = 2e-5
    dv: float = 1e-5
    feed: float = 0.04
    kill: float = 0.06
    pde: ClassVar[str] = "gray_scott"
    channels: ClassVar[int | None] = 2
    cfl_limit: ClassVar[float] = 1.0
    state_dependent: ClassVar[bool] = True

    def _validate(self) -> None:
        self._numbers("du", "dv", "feed", "kill", nonnegative=True)

    def params(self) -> dict[str, str | int | float]:
        return {"du": self.du, "dv": self.dv, "feed": self.feed, "kill": self.kill, **super().params()}

    def reaction_rate(self, u: torch.Tensor | None) -> float:
        """``max(v²) + 2 max|u v| + F + k`` for (B, 2, H, W); ``F + k`` without a state."""
        if u is None:
            return self.feed + self.kill
        a, b = u[:, 0].detach(), u[:, 1].detach()
        return float((b * b).amax()) + 2.0 * float((a * b).abs().amax()) + self.feed + self.kill

    def add_reaction(self, out: torch.Tensor, u: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
        """``out += scale * R(u)`` in place for (B, 2, H, W) tensors; returns ``out``."""
        a, b = u[:, 0:1], u[:, 1:2]  # (B, 1, H, W)
        uv2 = (a * b).mul_(b)
        out[:, 0:1].add_(uv2, alpha=-scale).add_(a, alpha=-scale * self.feed).add_(scale * self.feed)
        out[:, 1:2].add_(uv2, alpha=scale).add_(b, alpha=-scale * (self.feed + self.kill))
        return out


@dataclass(frozen=True, eq=False, kw_only=True)
class GrayScottExplicit(_GrayScott):
    """Forward Euler with the 5-point Laplacian: ``w' = w + dt (D ∇²_h w + R(w))``.

    First order in time, second in space; CFL = ``2 max(D) dt (1/dx² + 1/dy²) + dt R`` <= 1.
    """

    name: ClassVar[str] = "explicit"
    has_fused: ClassVar[bool] = True
    cfl_formula: ClassVar[str] = "2·max(du, dv)·dt·(1/dx² + 1/dy²) + dt·R"

    def rate(self, u: torch.Tensor | None = None) -> float:
        return 2.0 * max(self.du, self.dv) * (1.0 / self.dx**2 + 1.0 / self.dy**2) + self.reaction_rate(u)

    def _step(self, u: torch.Tensor) -> torch.Tensor:
        lap = laplacian(u, self.bcs, self.spacing)  # (B, 2, H, W)
        d = self.cached(("d", u.dtype, u.device), lambda: torch.tensor(
            [self.du, self.dv], dtype=u.dtype, device=u.device).view(1, 2, 1, 1))
        return torch.add(u, self.add_reaction(lap.mul_(d), u), alpha=self.dt)

    def _fused(self, dtype: np.dtype, kernels):
        cy, cx = 1.0 / self.dy**2, 1.0 / self.dx**2
        return fused.bind(kernels.gray_scott, *fused.constants(
            (self.dt, self.du, self.dv, self.feed, self.kill, cy, cx, -2.0 * (cy + cx)), self.bcs, self.spacing, dtype))


@dataclass(frozen=True, eq=False, kw_only=True)
class GrayScottIMEX(_GrayScott):
    """IMEX Euler: diffusion implicit, reaction explicit,

    ``(I - dt D ∇²_h) w' = w + dt R(w) (+ dt D S, the boundary source)``, solved exactly in the
    Laplacian's eigenbasis (FFT on periodic grids). Diffusion puts no limit on dt; the reaction does:
    CFL = ``dt R`` <= 1.
    """

    name: ClassVar[str] = "imex"
    cfl_formula: ClassVar[str] = "dt·R"

    def rate(self, u: torch.Tensor | None = None) -> float:
        return self.reaction_rate(u)

    def _factors(self, shape: tuple[int, int], u: torch.Tensor):
        eig = LaplaceEigen(shape, self.spacing, self.bcs, dtype=u.dtype, device=u.device)
        d = torch.tensor([self.du, self.dv], dtype=torch.float64, device=u.device).view(2, 1, 1)
        denom = 1.0 - self.dt * d * eig.eigenvalues  # (2, H, W')
        src = None if eig.source is None else eig.multiplier(self.dt * d * eig.source / denom)
        return eig, eig.multiplier(1.0 / denom), src

    def _step(self, u: torch.Tensor) -> torch.Tensor:
        shape = tuple(u.shape[-2:])
        eig, inv, src = self.cached(("imex", shape, u.dtype, u.device), lambda: self._factors(shape, u))
        c = eig.forward(self.add_reaction(u.clone(), u, self.dt))  # (B, 2, H, W')
        c.mul_(inv)
        if src is not None:
            c.add_(src)
        return eig.inverse(c)  # (B, 2, H, W)
