"""2-D incompressible Navier–Stokes in vorticity–streamfunction form on a doubly periodic grid:

    ∂ω/∂t = J(ψ, ω) + ν ∇²ω - μ ω + f,     ∇²ψ = -ω,     (u, v) = (∂ψ/∂y, -∂ψ/∂x)

with the Jacobian ``J(a, b) = ∂a/∂x ∂b/∂y - ∂a/∂y ∂b/∂x`` (so ``J(ψ, ω) = -(u·∇)ω``), viscosity ν, linear
drag μ and optional Kolmogorov forcing ``f = -A k_f cos(k_f y)`` (the curl of the body force
``(A sin(k_f y), 0)``, ``k_f = 2π n / L_y``). ψ comes from an FFT Poisson solve, J from Arakawa's
energy- and enstrophy-conserving 9-point average (or the plain central J++), ∇² from the 5-point
stencil; time by SSP-RK3. Channel 0 of (B, 1, H, W) is ω.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch

from gridvit.solvers import fused
from gridvit.solvers.base import Scheme, ssprk3
from gridvit.solvers.grid_ops import boundaries, laplacian, pad, shifted
from gridvit.solvers.spectral import continuous_k2, fourier_multiplier, irfft2, rfft2

PERIODIC = boundaries("periodic")


def inverse_k2(shape: tuple[int, int], spacing: tuple[float, float], *, dtype, device) -> torch.Tensor:
    """``1 / (k_y² + k_x²)`` in rfft2 layout (H, W//2+1), 0 for the mean mode, as a complex multiplier."""
    k2 = continuous_k2(shape, spacing, dtype=torch.float64, device=device)
    k2[0, 0] = 1.0
    inv = 1.0 / k2
    inv[0, 0] = 0.0
    return fourier_multiplier(inv, dtype)


def streamfunction(omega: torch.Tensor, spacing: tuple[float, float], inv: torch.Tensor | None = None) -> torch.Tensor:
    """Solve ``∇²ψ = -ω`` spectrally on a periodic grid (mean of ψ set to 0): (B, C, H, W) -> same.

    ``inv``: a precomputed :func:`inverse_k2` for this grid, dtype and device.
    """
    shape = tuple(omega.shape[-2:])
    if inv is None:
        inv = inverse_k2(shape, spacing, dtype=omega.dtype, device=omega.device)
    return irfft2(rfft2(omega).mul_(inv), shape)


def velocity(psi: torch.Tensor, spacing: tuple[float, float]) -> torch.Tensor:
    """``(u, v) = (∂ψ/∂y, -∂ψ/∂x)`` by central differences: (B, 1, H, W) -> (B, 2, H, W)."""
    dy, dx = spacing
    p = pad(psi, PERIODIC, spacing)  # (B, 1, H+2, W+2)
    u = (shifted(p, 1, 0) - shifted(p, -1, 0)) / (2 * dy)
    v = (shifted(p, 0, -1) - shifted(p, 0, 1)) / (2 * dx)
    return torch.cat([u, v], dim=1)


def jacobian_central(psi: torch.Tensor, omega: torch.Tensor, spacing: tuple[float, float]) -> torch.Tensor:
    """J++: ``(ψ_E - ψ_W)(ω_N - ω_S) - (ψ_N - ψ_S)(ω_E - ω_W)`` over ``4 dx dy``, periodic; (B, C, H, W)."""
    dy, dx = spacing
    p, w = pad(psi, PERIODIC, spacing), pad(omega, PERIODIC, spacing)  # (B, C, H+2, W+2)
    j = (shifted(p, 0, 1) - shifted(p, 0, -1)) * (shifted(w, 1, 0) - shifted(w, -1, 0))
    j = j - (shifted(p, 1, 0) - shifted(p, -1, 0)) * (shifted(w, 0, 1) - shifted(w, 0, -1))
    return j * (1.0 / (4 * dx * dy))


def jacobian_arakawa(psi: torch.Tensor, omega: torch.Tensor, spacing: tuple[float, float]) -> torch.Tensor:
    """Arakawa (1966): ``J = (J++ + J+× + J×+) / 3`` on a periodic grid, (B, C, H, W) -> (B, C, H, W).

    Second order; antisymmetric and conserves the domain sums of ω, ω² and ψ ω (circulation,
    enstrophy and energy) under the exact time integration of the semi-discrete system.
    """
    dy, dx = spacing
    p, w = pad(psi, PERIODIC, spacing), pad(omega, PERIODIC, spacing)  # (B, C, H+2, W+2)
    s = shifted  # s(field, dy, dx): value at (j + dy, i + dx)
    pe, pw, pn, ps = s(p, 0, 1), s(p, 0, -1), s(p, 1, 0), s(p, -1, 0)
    we, ww, wn, ws = s(w, 0, 1), s(w, 0, -1), s(w, 1, 0), s(w, -1, 0)
    wne, wnw, wse, wsw = s(w, 1, 1), s(w, 1, -1), s(w, -1, 1), s(w, -1, -1)
    pne, pnw, pse, psw = s(p, 1, 1), s(p, 1, -1), s(p, -1, 1), s(p, -1, -1)
    # out of place throughout, so autograd can differentiate it
    # J++
    jpp = (pe - pw) * (wn - ws) - (pn - ps) * (we - ww)
    # J+x: ψ_E(ω_NE - ω_SE) - ψ_W(ω_NW - ω_SW) - ψ_N(ω_NE - ω_NW) + ψ_S(ω_SE - ω_SW)
    jpx = pe * (wne - wse) - pw * (wnw - wsw) - pn * (wne - wnw) + ps * (wse - wsw)
    # Jx+: ω_N(ψ_NE - ψ_NW) - ω_S(ψ_SE - ψ_SW) - ω_E(ψ_NE - ψ_SE) + ω_W(ψ_NW - ψ_SW)
    jxp = wn * (pne - pnw) - ws * (pse - psw) - we * (pne - pse) + ww * (pnw - psw)
    return (jpp + jpx + jxp) * (1.0 / (12 * dx * dy))


JACOBIANS = {"arakawa": jacobian_arakawa, "central": jacobian_central}


@dataclass(frozen=True, eq=False, kw_only=True)
class _NavierStokes(Scheme):
    """Parameters: viscosity ν >= 0, drag μ >= 0, forcing amplitude A and integer wavenumber n."""

    viscosity: float = 1e-3
    drag: float = 0.0
    forcing: float = 0.0
    forcing_wavenumber: int = 4

    pde: ClassVar[str] = "navier_stokes"
    channels: ClassVar[int | None] = 1
    cfl_limit: ClassVar[float] = 1.0
    cfl_formula: ClassVar[str] = "dt·(max|u|/dx + max|v|/dy) + 2·ν·dt·(1/dx² + 1/dy²) + μ·dt/2"
    state_dependent: ClassVar[bool] = True
    has_fused: ClassVar[bool] = True

    def _validate(self) -> None:
        self._numbers("viscosity", "drag", nonnegative=True)
        self._numbers("forcing")
        n = self.forcing_wavenumber
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"{self.label}: forcing_wavenumber must be an int >= 1, got {n!r}")
        object.__setattr__(self, "bcs", PERIODIC)

    def params(self) -> dict[str, str | int | float]:
        return {"viscosity": self.viscosity, "drag": self.drag, "forcing": self.forcing,
                "forcing_wavenumber": self.forcing_wavenumber, "bc": "periodic"}

    def rate(self, u: torch.Tensor | None = None) -> float:
        r = 2.0 * self.viscosity * (1.0 / self.dx**2 + 1.0 / self.dy**2) + 0.5 * self.drag
        if u is None:
            return r
        vel = velocity(self.streamfunction(u.detach()), self.spacing)  # (B, 2, H, W)
        vmax = vel.abs().amax(dim=(0, 2, 3)).double().cpu()
        return r + float(vmax[0]) / self.dx + float(vmax[1]) / self.dy

    def forcing_field(self, h: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
        """``-A k_f cos(k_f y)`` on the cell-centred y of an H-row grid: (H, 1)."""
        kf = 2.0 * math.pi * self.forcing_wavenumber / (h * self.dy)
        y = (torch.arange(h, dtype=torch.float64, device=device) + 0.5) * self.dy
        return (-self.forcing * kf * torch.cos(kf * y)).to(dtype)[:, None]

    def streamfunction(self, omega: torch.Tensor) -> torch.Tensor:
        """ψ of (B, 1, H, W) vorticity, with the Poisson multiplier cached per grid."""
        shape = tuple(omega.shape[-2:])
        inv = self.cached(("inv_k2", shape, omega.dtype, omega.device),
                          lambda: inverse_k2(shape, self.spacing, dtype=omega.dtype, device=omega.device))
        return streamfunction(omega, self.spacing, inv)

    def rhs(self, omega: torch.Tensor) -> torch.Tensor:
        """``J(ψ, ω) + ν ∇²ω - μ ω + f`` for (B, 1, H, W) -> (B, 1, H, W)."""
        psi = self.streamfunction(omega)
        r = JACOBIANS[self.name](psi, omega, self.spacing)  # a fresh tensor: the in-place adds keep autograd
        if self.viscosity:
            r.add_(laplacian(omega, self.bcs, self.spacing), alpha=self.viscosity)
        if self.drag:
            r.add_(omega, alpha=-self.drag)
        if self.forcing:
            h = omega.shape[-2]
            r.add_(self.cached(("f", h, omega.dtype, omega.device), lambda: self.forcing_field(h, omega.dtype, omega.device)))
        return r

    def _step(self, u: torch.Tensor) -> torch.Tensor:
        return ssprk3(self.rhs, u, self.dt)

    def _fused(self, dtype: np.dtype, kernels):
        dy, dx, nu = self.dy, self.dx, self.viscosity
        stages = fused.stage_constants(
            (self.dt, nu / dy**2, nu / dx**2, self.drag, 0.25 / (dx * dy), 1.0 / (12.0 * dx * dy),
             -2.0 * nu * (1.0 / dy**2 + 1.0 / dx**2)), self.bcs, self.spacing, dtype)
        kernel, arakawa = kernels.navier_stokes_stage, self.name == "arakawa"

        def stage(v: np.ndarray, u0: np.ndarray, dst: np.ndarray, k: int) -> None:  # (B, 1, H, W) each
            h = v.shape[-2]
            force = self.cached(("fused_f", h, dtype), lambda: self.forcing_field(h, torch.float64, torch.device("cpu"))
                                [:, 0].numpy().astype(dtype))  # (H,)
            psi = fused.array(self.streamfunction(torch.from_numpy(v)))  # (B, 1, H, W) by FFT (torch)
            kernel(psi, v, u0, dst, stages[k][0], force, arakawa)

        return fused.ssprk3(stage)


@dataclass(frozen=True, eq=False, kw_only=True)
class NavierStokesArakawa(_NavierStokes):
    """Vorticity form with Arakawa's Jacobian; second order in space, third in time."""

    name: ClassVar[str] = "arakawa"


@dataclass(frozen=True, eq=False, kw_only=True)
class NavierStokesCentral(_NavierStokes):
    """Vorticity form with the central J++ Jacobian; second order in space, third in time."""

    name: ClassVar[str] = "central"
