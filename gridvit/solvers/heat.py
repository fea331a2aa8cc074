"""Heat / diffusion equation ``∂u/∂t = ν ∇²u``: explicit FTCS, the exact spectral propagator, Crank–Nicolson.

Each channel of (B, C, H, W) diffuses independently.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch

from gridvit.solvers import fused
from gridvit.solvers.base import BoundedScheme
from gridvit.solvers.grid_ops import five_point, stencil
from gridvit.solvers.spectral import LaplaceEigen, continuous_k2, fourier_multiplier, irfft2, rfft2


@dataclass(frozen=True, eq=False, kw_only=True)
class _Heat(BoundedScheme):
    """Shared parameters: diffusivity ν >= 0 and boundary conditions (see :func:`grid_ops.boundaries`)."""

    diffusivity: float = 1.0
    pde: ClassVar[str] = "heat"
    cfl_formula: ClassVar[str] = "ν·dt·(1/dx² + 1/dy²)"

    def _validate(self) -> None:
        self._numbers("diffusivity", nonnegative=True)

    def rate(self, u: torch.Tensor | None = None) -> float:
        return self.diffusivity * (1.0 / self.dx**2 + 1.0 / self.dy**2)

    def params(self) -> dict[str, str | int | float]:
        return {"diffusivity": self.diffusivity, **super().params()}


@dataclass(frozen=True, eq=False, kw_only=True)
class HeatFTCS(_Heat):
    """Forward-time centred-space: ``u' = u + ν dt ∇²_h u`` with the 5-point Laplacian ∇²_h.

    First order in time, second in space; stable for ``ν dt (1/dx² + 1/dy²) <= 1/2``.
    Periodic, Dirichlet or Neumann boundaries.
    """

    name: ClassVar[str] = "ftcs"
    cfl_limit: ClassVar[float] = 0.5
    has_fused: ClassVar[bool] = True

    def coefficients(self) -> tuple[float, dict[tuple[int, int], float]]:
        """(centre, {(axis, offset): coefficient}) of the update stencil."""
        ry, rx = self.diffusivity * self.dt / self.dy**2, self.diffusivity * self.dt / self.dx**2
        return 1.0 - 2.0 * (ry + rx), five_point(ry, rx)

    def _step(self, u: torch.Tensor) -> torch.Tensor:
        return stencil(u, *self.coefficients(), self.bcs, self.spacing)  # (B, C, H, W)

    def stencil5(self, dtype: np.dtype) -> tuple:
        """The fused 5-point kernel's (coefficients, y boundary, x boundary) for arrays of ``dtype``."""
        return fused.constants(fused.five_point(*self.coefficients()), self.bcs, self.spacing, dtype)

    def _fused(self, dtype: np.dtype, kernels):
        return fused.bind(kernels.stencil5, *self.stencil5(dtype))


@dataclass(frozen=True, eq=False, kw_only=True)
class HeatSpectral(_Heat):
    """Exact propagator on a periodic grid: ``û(k, t+dt) = exp(-ν |k|² dt) û(k, t)`` via ``rfft2``.

    No time or space discretisation error for band-limited data; unconditionally stable. The CFL
    number is reported (as for FTCS) but not limited.
    """

    name: ClassVar[str] = "spectral"

    def _validate(self) -> None:
        super()._validate()
        self._require_periodic(self.bcs, "crank_nicolson")

    def _step(self, u: torch.Tensor) -> torch.Tensor:
        shape = tuple(u.shape[-2:])
        m = self.cached(("mult", shape, u.dtype, u.device), lambda: fourier_multiplier(torch.exp(
            -self.diffusivity * self.dt * continuous_k2(shape, self.spacing, dtype=torch.float64, device=u.device)
        ), u.dtype))  # (H, W//2+1)
        return irfft2(rfft2(u).mul_(m), shape)  # (B, C, H, W)


@dataclass(frozen=True, eq=False, kw_only=True)
class HeatCrankNicolson(_Heat):
    """Crank–Nicolson: ``(I - ν dt/2 ∇²_h) u' = (I + ν dt/2 ∇²_h) u + ν dt S`` (S: boundary source).

    Second order in time and space, unconditionally stable. Solved exactly in the eigenbasis of the
    5-point Laplacian: FFT on periodic grids, dense per-axis eigenvectors with bounded axes.
    """

    name: ClassVar[str] = "crank_nicolson"

    def _factors(self, shape: tuple[int, int], u: torch.Tensor) -> tuple[LaplaceEigen, torch.Tensor, torch.Tensor | None]:
        eig = LaplaceEigen(shape, self.spacing, self.bcs, dtype=u.dtype, device=u.device)
        a = 0.5 * self.diffusivity * self.dt
        denom = 1.0 - a * eig.eigenvalues
        mult = eig.multiplier((1.0 + a * eig.eigenvalues) / denom)
        src = None if eig.source is None else eig.multiplier(self.diffusivity * self.dt * eig.source / denom)
        return eig, mult, src

    def _step(self, u: torch.Tensor) -> torch.Tensor:
        shape = tuple(u.shape[-2:])
        eig, mult, src = self.cached(("cn", shape, u.dtype, u.device), lambda: self._factors(shape, u))
        c = eig.forward(u).mul_(mult)  # coefficients (B, C, H, W') in the eigenbasis
        if src is not None:
            c.add_(src)
        return eig.inverse(c)  # (B, C, H, W)
