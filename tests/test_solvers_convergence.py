"""Observed orders of convergence of the finite-difference solvers against analytic solutions.

Space: refine the grid at a fixed stability number (so a scheme of formal order p in space and q in
time shows p, the time error being O(dx^p) too, or negligible); time: refine dt on a fixed grid against
the exact solution of the semi-discrete (method-of-lines) system, which is analytic for Fourier modes.
The observed order is the slope between the two finest levels; it must be within 0.2 of the formal one.
Run with ``-s`` to see the orders.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from gridvit.solvers import (
    AdvectionLaxWendroff,
    AdvectionUpwind,
    BurgersCentral,
    BurgersUpwind,
    BurgersUpwind3,
    HeatCrankNicolson,
    HeatFTCS,
    HeatSpectral,
    NavierStokesArakawa,
    NavierStokesCentral,
    jacobian_arakawa,
    jacobian_central,
    pad,
)
from gridvit.solvers.initial import mesh

TOL = 0.2


pytestmark = pytest.mark.usefixtures("one_thread")


def observed_order(hs, errors) -> float:
    """Slope of log(error) against log(h) between the two finest levels."""
    return math.log(errors[-2] / errors[-1]) / math.log(hs[-2] / hs[-1])


def check_order(label: str, hs, errors, formal: float) -> None:
    orders = [observed_order(hs[i : i + 2], errors[i : i + 2]) for i in range(len(hs) - 1)]
    print(f"\n{label}: errors {['%.3e' % e for e in errors]} orders {['%.3f' % o for o in orders]} (formal {formal})")
    assert abs(orders[-1] - formal) <= TOL, f"{label}: observed order {orders[-1]:.3f}, formal {formal}"


def run(step, u: torch.Tensor, n: int) -> torch.Tensor:
    for _ in range(n):
        u = step(u)
    return u


def max_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max())


# --- heat: decaying Fourier modes -------------------------------------------------------------------

def heat_mode(n: int, bc: str, extent=(1.0, 1.0)):
    """An eigenmode of the continuous Laplacian satisfying ``bc`` and its decay rate ``|k|²``."""
    y, x = mesh((n, n), extent)
    ky, kx = 2 * math.pi / extent[0], 4 * math.pi / extent[1]  # periodic: sin(2πy) sin(4πx)
    if bc == "periodic":
        f = torch.sin(ky * y) * torch.sin(kx * x)
    elif bc == "dirichlet":  # zero on the faces y, x = 0, L
        ky, kx = math.pi / extent[0], 2 * math.pi / extent[1]
        f = torch.sin(ky * y) * torch.sin(kx * x)
    else:  # zero normal derivative on the faces
        ky, kx = math.pi / extent[0], 2 * math.pi / extent[1]
        f = torch.cos(ky * y) * torch.cos(kx * x)
    return f[None, None], ky**2 + kx**2


@pytest.mark.parametrize("bc", ["periodic", "dirichlet", "neumann"])
@pytest.mark.parametrize("cls, formal", [(HeatFTCS, 2.0), (HeatCrankNicolson, 2.0)])
def test_heat_space_order(cls, formal, bc):
    nu, t_end, hs, errors = 0.05, 0.1, [], []
    for n in (16, 32, 64):
        u0, k2 = heat_mode(n, bc)
        h = 1.0 / n
        # FTCS: fixed diffusion number (dt ∝ dx², time error O(dx²)); CN: dt ∝ dx (time error O(dx²))
        dt_target = 0.2 * h * h / nu if cls is HeatFTCS else 0.5 * h
        steps = math.ceil(t_end / dt_target)
        step = cls(dt=t_end / steps, dx=h, dy=h, diffusivity=nu, bc=bc)
        hs.append(h)
        errors.append(max_err(run(step, u0, steps), u0 * math.exp(-nu * k2 * t_end)))
    check_order(f"heat/{cls.name} space ({bc})", hs, errors, formal)


@pytest.mark.parametrize("cls, formal", [(HeatFTCS, 1.0), (HeatCrankNicolson, 2.0)])
def test_heat_time_order(cls, formal):
    n, nu, t_end = 32, 0.05, 0.2
    u0, _ = heat_mode(n, "periodic")
    h = 1.0 / n
    lam = (4 / h**2) * (math.sin(2 * math.pi * h / 2) ** 2 + math.sin(4 * math.pi * h / 2) ** 2)  # -eig of ∇²_h
    exact = u0 * math.exp(-nu * lam * t_end)  # exact solution of the semi-discrete ODE
    base = math.ceil(t_end / (0.2 * h * h / nu))  # stable for FTCS (CFL 0.4)
    dts, errors = [], []
    for m in (1, 2, 4):
        steps = base * m
        step = cls(dt=t_end / steps, dx=h, dy=h, diffusivity=nu)
        dts.append(t_end / steps)
        errors.append(max_err(run(step, u0, steps), exact))
    check_order(f"heat/{cls.name} time", dts, errors, formal)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_heat_spectral_is_exact(dtype):
    u0, k2 = heat_mode(32, "periodic")
    step = HeatSpectral(dt=0.05, dx=1 / 32, dy=1 / 32, diffusivity=0.05)
    u = run(step, u0.to(dtype), 4)
    tol = 1e-12 if dtype == torch.float64 else 1e-6
    assert u.dtype == dtype
    assert max_err(u.double(), u0 * math.exp(-0.05 * k2 * 0.2)) < tol


def test_heat_inhomogeneous_dirichlet_relaxes_to_boundary_value():
    # u = g + mode: the mode decays, the boundary value stays.
    u0, k2 = heat_mode(32, "dirichlet")
    for cls in (HeatFTCS, HeatCrankNicolson):
        step = cls(dt=1e-4, dx=1 / 32, dy=1 / 32, diffusivity=0.05, bc="dirichlet", bc_value=2.0)
        u = run(step, u0 + 2.0, 200)
        assert max_err(u, 2.0 + u0 * math.exp(-0.05 * k2 * 0.02)) < 2e-3


# --- advection: translated profile ------------------------------------------------------------------

VX, VY = 1.0, 0.5


def advected(n: int, t: float) -> torch.Tensor:
    y, x = mesh((n, n), (1.0, 1.0))
    return torch.sin(2 * math.pi * (x - VX * t) + 2 * math.pi * (y - VY * t))[None, None]


@pytest.mark.parametrize("cls, formal", [(AdvectionUpwind, 1.0), (AdvectionLaxWendroff, 2.0)])
def test_advection_order_at_fixed_courant(cls, formal):
    t_end, hs, errors = 0.5, [], []
    for n in (32, 64, 128):
        h = 1.0 / n
        steps = math.ceil(t_end * (VX + VY) / (0.5 * h))  # Courant number 0.5
        step = cls(dt=t_end / steps, dx=h, dy=h, vx=VX, vy=VY)
        hs.append(h)
        errors.append(max_err(run(step, advected(n, 0.0), steps), advected(n, t_end)))
    check_order(f"advection/{cls.name} space+time", hs, errors, formal)


def test_advection_upwind_time_order():
    # Semi-discrete upwind: du/dt = -(vx (1 - e^{-i kx h})/h + vy (1 - e^{-i ky h})/h) u for u = e^{i k·x}.
    n, t_end = 64, 0.25
    h, k = 1.0 / n, 2 * math.pi
    sigma = -(VX * (1 - np.exp(-1j * k * h)) / h + VY * (1 - np.exp(-1j * k * h)) / h)
    y, x = mesh((n, n), (1.0, 1.0))
    phase = (k * x + k * y).numpy()
    exact = torch.from_numpy(np.imag(np.exp(1j * phase) * np.exp(sigma * t_end)))[None, None]
    base = math.ceil(t_end * (VX + VY) / (0.8 * h))
    dts, errors = [], []
    for m in (2, 4, 8):
        steps = base * m
        step = AdvectionUpwind(dt=t_end / steps, dx=h, dy=h, vx=VX, vy=VY)
        dts.append(t_end / steps)
        errors.append(max_err(run(step, advected(n, 0.0), steps), exact))
    check_order("advection/upwind time", dts, errors, 1.0)


# --- Burgers: Cole–Hopf solution --------------------------------------------------------------------

NU_B = 0.05


def cole_hopf(n: int, t: float) -> torch.Tensor:
    """(u, v) = -2ν ∇ log φ with φ = 3 + e^{-νk²t} (cos kx + cos ky) + ½ e^{-2νk²t} cos kx cos ky, k = 2π."""
    y, x = mesh((n, n), (1.0, 1.0))
    k = 2 * math.pi
    a, b = math.exp(-NU_B * k * k * t), 0.5 * math.exp(-2 * NU_B * k * k * t)
    phi = 3 + a * (torch.cos(k * x) + torch.cos(k * y)) + b * torch.cos(k * x) * torch.cos(k * y)
    phi_x = -k * a * torch.sin(k * x) - k * b * torch.sin(k * x) * torch.cos(k * y)
    phi_y = -k * a * torch.sin(k * y) - k * b * torch.cos(k * x) * torch.sin(k * y)
    return torch.stack([-2 * NU_B * phi_x / phi, -2 * NU_B * phi_y / phi])[None]  # (1, 2, H, W)


@pytest.mark.parametrize("cls, formal", [(BurgersUpwind, 1.0), (BurgersCentral, 2.0), (BurgersUpwind3, 2.0)])
def test_burgers_space_order(cls, formal):
    t_end, hs, errors = 0.1, [], []
    for n in (16, 32, 64) if formal == 2.0 else (32, 64, 128):  # upwind approaches order 1 slowly
        h = 1.0 / n
        u0 = cole_hopf(n, 0.0)
        probe = cls(dt=1.0, dx=h, dy=h, viscosity=NU_B)
        steps = math.ceil(t_end / (0.8 * probe.max_dt(u0)))  # diffusion-limited: dt ∝ dx², RK3 error negligible
        hs.append(h)
        errors.append(max_err(run(probe.with_dt(t_end / steps), u0, steps), cole_hopf(n, t_end)))
    check_order(f"burgers/{cls.name} space", hs, errors, formal)


def test_burgers_upwind3_advection_is_third_order():
    # The advective term alone, (u·∇)u of a smooth periodic field against its exact value: slope 3 (the full
    # step is second order in space through the 5-point Laplacian, which test_burgers_space_order covers).
    hs, errors = [], []
    for n in (16, 32, 64):
        y, x = mesh((n, n), (1.0, 1.0))
        k = 2 * math.pi
        u = torch.stack([torch.sin(k * x) + 0.5 * torch.cos(k * y), -torch.cos(k * x) * torch.sin(k * y)])[None]
        ux, uy = k * torch.cos(k * x), -0.5 * k * torch.sin(k * y)  # ∂u/∂x, ∂u/∂y of channel 0
        vx, vy = k * torch.sin(k * x) * torch.sin(k * y), -k * torch.cos(k * x) * torch.cos(k * y)
        exact = torch.stack([u[0, 0] * ux + u[0, 1] * uy, u[0, 0] * vx + u[0, 1] * vy])[None]
        scheme = BurgersUpwind3(dt=1e-6, dx=1.0 / n, dy=1.0 / n, viscosity=0.0)
        hs.append(1.0 / n)
        errors.append(max_err(scheme._advection(u, pad(u, scheme.bcs, scheme.spacing, 2)), exact))
    check_order("burgers/upwind3 advective term", hs, errors, 3.0)


def test_burgers_upwind3_beats_central_and_upwind_where_cells_are_coarse():
    # Cell Reynolds number max|u| dx / ν ≈ 6 on 32²: central differences blow up or oscillate, upwind smears;
    # the upwind-biased scheme stays stable and is far closer to a 128² central reference restricted to 32².
    from gridvit.solvers import gaussian_random_field
    from gridvit.solvers.coarsen import truncate

    def coarsen_array(u: torch.Tensor, f: int) -> torch.Tensor:  # spectral restriction of (B, C, H, W)
        return torch.from_numpy(truncate(truncate(u.numpy(), f, axis=-2), f, axis=-1))

    nu, t_end = 0.005, 0.5
    fine = 0.5 * gaussian_random_field((128, 128), (1.0, 1.0), samples=2, channels=2, seed=3, k_max=4.0).double()
    ref_scheme = BurgersCentral(dt=1.0, dx=1 / 128, dy=1 / 128, viscosity=nu)
    steps = math.ceil(t_end / (0.5 * ref_scheme.max_dt(fine)))
    ref = coarsen_array(run(ref_scheme.with_dt(t_end / steps), fine, steps), 4)
    u0 = coarsen_array(fine, 4)
    errors = {}
    for cls in (BurgersUpwind, BurgersCentral, BurgersUpwind3):
        probe = cls(dt=1.0, dx=1 / 32, dy=1 / 32, viscosity=nu)
        steps = math.ceil(t_end / (0.9 * probe.max_dt(u0)))
        out = run(probe.with_dt(t_end / steps), u0, steps)
        errors[cls.name] = float((out - ref).norm() / ref.norm()) if torch.isfinite(out).all() else math.inf
    print(f"\nrelative L2 errors on 32² vs 128² central: {errors}")
    assert errors["upwind3"] < 0.6 * errors["upwind"] and errors["upwind3"] < errors["central"]


def test_burgers_time_order():
    # SSP-RK3 against a reference with 16x smaller dt on the same grid (Richardson).
    n, t_end = 32, 0.1
    h = 1.0 / n
    u0 = cole_hopf(n, 0.0)
    probe = BurgersCentral(dt=1.0, dx=h, dy=h, viscosity=NU_B)
    base = math.ceil(t_end / probe.max_dt(u0))
    ref = run(probe.with_dt(t_end / (16 * base)), u0, 16 * base)
    dts, errors = [], []
    for m in (1, 2):
        steps = base * m
        dts.append(t_end / steps)
        errors.append(max_err(run(probe.with_dt(t_end / steps), u0, steps), ref))
    check_order("burgers/central time (vs dt/16 reference)", dts, errors, 3.0)


# --- Navier–Stokes: Taylor–Green decay, and the Jacobian itself --------------------------------------

NU_NS = 0.1


def taylor_green_omega(n: int, t: float, lam: float = 2.0) -> torch.Tensor:
    y, x = mesh((n, n), (2 * math.pi, 2 * math.pi))
    return (torch.cos(x) * torch.cos(y) * math.exp(-NU_NS * lam * t))[None, None]


@pytest.mark.parametrize("cls", [NavierStokesArakawa, NavierStokesCentral])
def test_navier_stokes_taylor_green_space_order(cls):
    t_end, hs, errors = 1.0, [], []
    for n in (8, 16, 32):
        h = 2 * math.pi / n
        w0 = taylor_green_omega(n, 0.0)
        probe = cls(dt=1.0, dx=h, dy=h, viscosity=NU_NS)
        steps = math.ceil(t_end / (0.5 * probe.max_dt(w0)))
        hs.append(h)
        errors.append(max_err(run(probe.with_dt(t_end / steps), w0, steps), taylor_green_omega(n, t_end)))
    check_order(f"navier_stokes/{cls.name} Taylor–Green space", hs, errors, 2.0)


def test_navier_stokes_taylor_green_time_order():
    n, t_end = 16, 2.0
    h = 2 * math.pi / n
    lam = 2 * (4 / h**2) * math.sin(h / 2) ** 2  # -eigenvalue of the 5-point Laplacian for cos x cos y
    w0, exact = taylor_green_omega(n, 0.0), taylor_green_omega(n, t_end, lam)
    probe = NavierStokesArakawa(dt=1.0, dx=h, dy=h, viscosity=NU_NS)
    base = math.ceil(t_end / probe.max_dt(w0))
    dts, errors = [], []
    for m in (1, 2, 4):
        steps = base * m
        dts.append(t_end / steps)
        errors.append(max_err(run(probe.with_dt(t_end / steps), w0, steps), exact))
    check_order("navier_stokes/arakawa Taylor–Green time", dts, errors, 3.0)


@pytest.mark.parametrize("jac", [jacobian_arakawa, jacobian_central])
def test_jacobian_order(jac):
    # A non-trivial pair on a rectangular (dx != dy) periodic grid: J = ψ_x ω_y - ψ_y ω_x.
    hs, errors = [], []
    for n in (16, 32, 64):
        y, x = mesh((n, n), (2 * math.pi, 4 * math.pi))  # dy = 2π/n, dx = 4π/n
        psi = torch.sin(x / 2) * torch.cos(2 * y)
        om = torch.cos(1.5 * x + y) + torch.sin(y)
        exact = (0.5 * torch.cos(x / 2) * torch.cos(2 * y)) * (-torch.sin(1.5 * x + y) + torch.cos(y)) - (
            -2 * torch.sin(x / 2) * torch.sin(2 * y)
        ) * (-1.5 * torch.sin(1.5 * x + y))
        j = jac(psi[None, None], om[None, None], (2 * math.pi / n, 4 * math.pi / n))[0, 0]
        hs.append(2 * math.pi / n)
        errors.append(max_err(j, exact))
    check_order(f"{jac.__name__} operator", hs, errors, 2.0)
