"""Viscous Burgers equation in 2-D for the velocity (u, v), channels 0 and 1 of (B, 2, H, W):

    ∂u/∂t + u ∂u/∂x + v ∂u/∂y = ν ∇²u
    ∂v/∂t + u ∂v/∂x + v ∂v/∂y = ν ∇²v

Method of lines: the advective term by first-order upwind, second-order central or third-order
upwind-biased differences, the viscous term by the 5-point Laplacian, time by SSP-RK3. The step size is limited by
``dt (max|u|/dx + max|v|/dy) + 2 ν dt (1/dx² + 1/dy²) <= 1`` (the forward-Euler bound of upwind +
diffusion; SSP-RK3 keeps it, and it also lies inside RK3's stability region for the central scheme),
which depends on the state: ``simulate(..., adapt_dt=True)`` re-chooses dt at every saved step (the
third-order scheme keeps the same bound; it was measured stable up to 1.5× it on the benchmark's fields).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch

from gridvit.solvers import fused
from gridvit.solvers.base import BoundedScheme, ssprk3
from gridvit.solvers.grid_ops import pad, shifted


@dataclass(frozen=True, eq=False, kw_only=True)
class _Burgers(BoundedScheme):
    """Shared parameters: viscosity ν >= 0 and boundary conditions of both velocity components."""

    viscosity: float = 0.01
    pde: ClassVar[str] = "burgers"
    channels: ClassVar[int | None] = 2
    cfl_limit: ClassVar[float] = 1.0
    cfl_formula: ClassVar[str] = "dt·(max|u|/dx + max|v|/dy) + 2·ν·dt·(1/dx² + 1/dy²)"
    state_dependent: ClassVar[bool] = True
    has_fused: ClassVar[bool] = True
    ghosts: ClassVar[int] = 1  # ghost cells a side the advective stencil reaches

    def _validate(self) -> None:
        self._numbers("viscosity", nonnegative=True)

    def params(self) -> dict[str, str | int | float]:
        return {"viscosity": self.viscosity, **super().params()}

    def rate(self, u: torch.Tensor | None = None) -> float:
        diffusion = 2.0 * self.viscosity * (1.0 / self.dx**2 + 1.0 / self.dy**2)
        if u is None:
            return diffusion
        vmax = u.detach().abs().amax(dim=(0, 2, 3)).double().cpu()  # (2,): max|u|, max|v|
        return float(vmax[0]) / self.dx + float(vmax[1]) / self.dy + diffusion

    def _advection(self, u: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
        """``(u·∇)u`` from u (B, 2, H, W) and u padded by :attr:`ghosts` -> (B, 2, H, W)."""
        raise NotImplementedError

    def rhs(self, u: torch.Tensor) -> torch.Tensor:
        """``-(u·∇)u + ν ∇²u`` for (B, 2, H, W) -> (B, 2, H, W)."""
        g = self.ghosts
        p = pad(u, self.bcs, self.spacing, g)  # (B, 2, H+2g, W+2g)
        cy, cx = self.viscosity / self.dy**2, self.viscosity / self.dx**2
        lap = (shifted(p, 0, -1, g) + shifted(p, 0, 1, g)).mul_(cx)
        lap.add_(shifted(p, -1, 0, g) + shifted(p, 1, 0, g), alpha=cy).add_(u, alpha=-2.0 * (cx + cy))
        return lap.sub_(self._advection(u, p))

    def _step(self, u: torch.Tensor) -> torch.Tensor:
        return ssprk3(self.rhs, u, self.dt)

    def _fused(self, dtype: np.dtype, kernels):
        dy, dx, nu = self.dy, self.dx, self.viscosity
        stages = fused.stage_constants(
            (self.dt, nu / dy**2, nu / dx**2, 1.0 / dy, 1.0 / dx, 0.5 / dy, 0.5 / dx, -2.0 * nu * (1.0 / dy**2 + 1.0 / dx**2)),
            self.bcs, self.spacing, dtype)
        kernel, upwind = kernels.burgers_stage, self.name == "upwind"

        def stage(v: np.ndarray, u0: np.ndarray, dst: np.ndarray, k: int) -> None:  # (B, 2, H, W) each
            kernel(v, u0, dst, *stages[k], upwind)

        return fused.ssprk3(stage)


@dataclass(frozen=True, eq=False, kw_only=True)
class BurgersUpwind(_Burgers):
    """First-order upwind advection (``u ∂u/∂x ≈ u (u_i - u_{i-1})/dx`` if u > 0, else forward) + SSP-RK3.

    First order in space, third in time.
    """

    name: ClassVar[str] = "upwind"

    def _advection(self, u: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
        a, b = u[:, 0:1], u[:, 1:2]  # (B, 1, H, W) each: advecting velocity
        ddx = torch.where(a > 0, u - shifted(p, 0, -1), shifted(p, 0, 1) - u).mul_(a / self.dx)
        ddy = torch.where(b > 0, u - shifted(p, -1, 0), shifted(p, 1, 0) - u).mul_(b / self.dy)
        return ddx.add_(ddy)  # (B, 2, H, W)


@dataclass(frozen=True, eq=False, kw_only=True)
class BurgersCentral(_Burgers):
    """Second-order central advection (``u ∂u/∂x ≈ u (u_{i+1} - u_{i-1})/(2dx)``) + SSP-RK3.

    Second order in space, third in time; needs enough viscosity to resolve gradients (cell Reynolds
    number ``max|u| dx / ν`` of order 2 or less), else it oscillates where upwind would smear.
    """

    name: ClassVar[str] = "central"

    def _advection(self, u: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
        a, b = u[:, 0:1], u[:, 1:2]  # (B, 1, H, W)
        ddx = (shifted(p, 0, 1) - shifted(p, 0, -1)).mul_(a * (0.5 / self.dx))
        ddy = (shifted(p, 1, 0) - shifted(p, -1, 0)).mul_(b * (0.5 / self.dy))
        return ddx.add_(ddy)  # (B, 2, H, W)


@dataclass(frozen=True, eq=False, kw_only=True)
class BurgersUpwind3(_Burgers):
    """Third-order upwind-biased advection + SSP-RK3, periodic boundaries only.

    ``u ∂u/∂x ≈ u (2u_{i+1} + 3u_i - 6u_{i-1} + u_{i-2}) / (6dx)`` if u > 0, the mirror image otherwise (the
    κ = 1/3 upwind-biased scheme): third order, with a fourth-derivative dissipation ``|u| dx³/12 ∂⁴u`` that
    keeps it stable at cell Reynolds numbers where central differences oscillate, without upwind's
    first-order smearing. Five points per axis (two ghost cells), hence periodic only.
    """

    name: ClassVar[str] = "upwind3"
    ghosts: ClassVar[int] = 2

    def _validate(self) -> None:
        super()._validate()
        self._require_periodic(self.bcs, "BurgersUpwind or BurgersCentral")

    def _advection(self, u: torch.Tensor, p: torch.Tensor) -> torch.Tensor:  # p: (B, 2, H+4, W+4)
        a, b = u[:, 0:1], u[:, 1:2]  # (B, 1, H, W)
        e, w, ee, ww = (shifted(p, 0, d, 2) for d in (1, -1, 2, -2))
        n, s, nn, ss = (shifted(p, d, 0, 2) for d in (1, -1, 2, -2))
        ddx = torch.where(a > 0, 2 * e + 3 * u - 6 * w + ww, 6 * e - ee - 3 * u - 2 * w).mul_(a / (6 * self.dx))
        ddy = torch.where(b > 0, 2 * n + 3 * u - 6 * s + ss, 6 * n - nn - 3 * u - 2 * s).mul_(b / (6 * self.dy))
        return ddx.add_(ddy)  # (B, 2, H, W)

    def _fused(self, dtype: np.dtype, kernels):
        dy, dx, nu = self.dy, self.dx, self.viscosity
        stages = fused.stage_constants(
            (self.dt, nu / dy**2, nu / dx**2, 1.0 / (6 * dy), 1.0 / (6 * dx), -2.0 * nu * (1.0 / dy**2 + 1.0 / dx**2)),
            self.bcs, self.spacing, dtype)
        kernel = kernels.burgers_upwind3_stage

        def stage(v: np.ndarray, u0: np.ndarray, dst: np.ndarray, k: int) -> None:  # (B, 2, H, W) each
            kernel(v, u0, dst, stages[k][0])

        return fused.ssprk3(stage)
