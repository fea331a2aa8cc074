"""gridvit.solvers: the step contract, conservation, clear errors, and simulate()'s dataset layout."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import gridvit.solvers as gs
from gridvit.solvers import (
    AdvectionLaxWendroff,
    AdvectionUpwind,
    BurgersUpwind,
    GrayScottExplicit,
    GrayScottIMEX,
    HeatCrankNicolson,
    HeatFTCS,
    HeatSpectral,
    NavierStokesArakawa,
    jacobian_arakawa,
    simulate,
    streamfunction,
)

H = W = 16


pytestmark = pytest.mark.usefixtures("one_thread")
D = 1.0 / H


def grf(channels: int = 1, seed: int = 0, samples: int = 2) -> torch.Tensor:
    return gs.gaussian_random_field((H, W), (1.0, 1.0), samples=samples, channels=channels, seed=seed)


def every_scheme():
    """One stable instance of every scheme, with a matching state."""
    one, two = grf(1), grf(2) * 0.1
    gray = gs.gray_scott_spots((H, W), samples=2, seed=0)
    return [
        (HeatFTCS(dt=1e-4, dx=D, dy=D, diffusivity=0.1), one),
        (HeatSpectral(dt=1e-2, dx=D, dy=D, diffusivity=0.1), one),
        (HeatCrankNicolson(dt=1e-2, dx=D, dy=D, diffusivity=0.1, bc="neumann"), one),
        (AdvectionUpwind(dt=1e-2, dx=D, dy=D, vx=1.0, vy=-0.5), one),
        (AdvectionLaxWendroff(dt=1e-2, dx=D, dy=D, vx=1.0, vy=-0.5, bc="dirichlet"), one),
        (BurgersUpwind(dt=1e-3, dx=D, dy=D, viscosity=0.01), two),
        (gs.BurgersCentral(dt=1e-3, dx=D, dy=D, viscosity=0.05), two),
        (gs.BurgersUpwind3(dt=1e-3, dx=D, dy=D, viscosity=0.01), two),
        (GrayScottExplicit(dt=0.5, dx=D, dy=D), gray),
        (GrayScottIMEX(dt=0.5, dx=D, dy=D, bc="neumann"), gray),
        (NavierStokesArakawa(dt=1e-2, dx=2 * math.pi * D, dy=2 * math.pi * D, viscosity=1e-3, forcing=0.1, drag=0.1), one),
        (gs.NavierStokesCentral(dt=1e-2, dx=2 * math.pi * D, dy=2 * math.pi * D), one),
    ]


@pytest.mark.parametrize("scheme, u", every_scheme(), ids=lambda v: getattr(v, "label", ""))
def test_step_contract_batched_dtypes(scheme, u):
    # (B, C, H, W) -> (B, C, H, W), same dtype; the batch is independent; float32 follows float64.
    out64 = scheme(u)
    assert out64.shape == u.shape and out64.dtype == torch.float64
    assert torch.isfinite(out64).all()
    torch.testing.assert_close(scheme(u[1:2]), out64[1:2], rtol=1e-12, atol=1e-12)
    out32 = scheme(u.float())
    assert out32.dtype == torch.float32
    assert float((out32.double() - out64).abs().max()) < 1e-4 * max(1.0, float(out64.abs().max()))
    assert scheme.cfl(u) <= scheme.cfl_limit


def test_step_does_not_modify_its_input():
    for scheme, u in every_scheme():
        before = u.clone()
        scheme(u)
        assert torch.equal(u, before), scheme.label


# --- conservation -----------------------------------------------------------------------------------

@pytest.mark.parametrize("scheme", [
    HeatFTCS(dt=1e-4, dx=D, dy=D, diffusivity=0.1),
    HeatFTCS(dt=1e-4, dx=D, dy=D, diffusivity=0.1, bc="neumann"),  # zero flux conserves too
    HeatSpectral(dt=1e-2, dx=D, dy=D, diffusivity=0.1),
    HeatCrankNicolson(dt=1e-2, dx=D, dy=D, diffusivity=0.1),
    AdvectionUpwind(dt=1e-2, dx=D, dy=D, vx=1.0, vy=-0.5),
    AdvectionLaxWendroff(dt=1e-2, dx=D, dy=D, vx=1.0, vy=-0.5),
], ids=lambda s: f"{s.label}-{s.bcs[0].kind}")
def test_mass_is_conserved(scheme):
    u = grf() + 3.0
    mass0 = u.sum(dim=(-2, -1))
    for _ in range(50):
        u = scheme(u)
    torch.testing.assert_close(u.sum(dim=(-2, -1)), mass0, rtol=1e-12, atol=0.0)


def test_navier_stokes_conserves_circulation():
    h = 2 * math.pi / H
    step = NavierStokesArakawa(dt=0.02, dx=h, dy=h, viscosity=1e-3, drag=0.05, forcing=0.5)
    w = grf()
    for _ in range(50):
        w = step(w)
    assert float(w.sum(dim=(-2, -1)).abs().max()) < 1e-10 * float(w.abs().sum())


def test_kolmogorov_forcing_reaches_the_laminar_state():
    # From rest, ω -> the steady solution of ν ∇²_h ω + f = 0: ω = -A k_f cos(k_f y) / (ν λ_h), where
    # λ_h = (4/h²) sin²(k_f h/2) is the 5-point Laplacian's eigenvalue (J vanishes on a function of y).
    n, nu, amp = 16, 0.5, 1.0
    h = 2 * math.pi / n
    step = NavierStokesArakawa(dt=0.04, dx=h, dy=h, viscosity=nu, forcing=amp, forcing_wavenumber=1)
    w = torch.zeros(1, 1, n, n, dtype=torch.float64)
    for _ in range(1000):  # t = 40, twenty e-folding times
        w = step(w)
    y, _ = gs.initial.mesh((n, n), (2 * math.pi, 2 * math.pi))
    lam = (4 / h**2) * math.sin(h / 2) ** 2
    torch.testing.assert_close(w[0, 0], -amp * torch.cos(y) / (nu * lam), rtol=0, atol=1e-6)


def test_arakawa_jacobian_identities():
    # Antisymmetric, zero domain sum, and Σ ψ J = Σ ω J = 0 (energy and enstrophy): to rounding.
    psi, om = grf(seed=1), grf(seed=2)
    j = jacobian_arakawa(psi, om, (D, D))
    scale = float(j.abs().sum())
    torch.testing.assert_close(jacobian_arakawa(om, psi, (D, D)), -j, rtol=0, atol=1e-10 * scale)
    for weight in (torch.ones_like(om), psi, om):
        assert float((weight * j).sum(dim=(-2, -1)).abs().max()) < 1e-12 * scale * float(weight.abs().max())


def test_streamfunction_inverts_the_laplacian():
    y, x = gs.initial.mesh((H, W), (2 * math.pi, 2 * math.pi))
    omega = (torch.cos(x) * torch.sin(2 * y))[None, None]
    psi = streamfunction(omega, (2 * math.pi / H, 2 * math.pi / W))
    torch.testing.assert_close(psi, omega / 5.0, rtol=0, atol=1e-12)


# --- errors -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("make, message", [
    (lambda: HeatFTCS(dt=1e-2, dx=D, dy=D, diffusivity=1.0), r"CFL number 5\.12 exceeds the stability limit 0\.5"),
    (lambda: HeatFTCS(dt=1e-4, dx=D, dy=D, diffusivity=-1.0), "diffusivity must be >= 0, got -1.0"),
    (lambda: AdvectionUpwind(dt=0.1, dx=D, dy=D, vx=1.0), r"CFL number 1\.6 exceeds the stability limit 1"),
    (lambda: AdvectionLaxWendroff(dt=0.1, dx=D, dy=D, vx=1.0), "exceeds the stability limit 1"),
    (lambda: HeatFTCS(dt=0.0, dx=D, dy=D), "dt must be > 0"),
    (lambda: HeatFTCS(dt=1e-4, dx=D, dy=D, bc="wrapped"), "boundary condition must be one of"),
    (lambda: HeatSpectral(dt=1e-4, dx=D, dy=D, bc="dirichlet"), "needs periodic boundaries.*crank_nicolson"),
    (lambda: BurgersUpwind(dt=1e-3, dx=D, dy=D, viscosity=-0.1), "viscosity must be >= 0"),
    (lambda: GrayScottIMEX(dt=1.0, dx=D, dy=D, feed=-0.1), "feed must be >= 0"),
    (lambda: NavierStokesArakawa(dt=1.0, dx=D, dy=D, forcing_wavenumber=0), "forcing_wavenumber must be an int >= 1"),
])
def test_bad_settings_raise_clear_errors(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_bad_inputs_raise_clear_errors():
    step = HeatFTCS(dt=1e-4, dx=D, dy=D, diffusivity=0.1)
    with pytest.raises(ValueError, match=r"at least 3×3 points, got 2×16"):
        step(torch.zeros(1, 1, 2, 16))
    with pytest.raises(ValueError, match=r"\(B, C, H, W\) tensor, got shape \(16, 16\)"):
        step(torch.zeros(16, 16))
    with pytest.raises(TypeError, match="floating-point"):
        step(torch.zeros(1, 1, 8, 8, dtype=torch.int64))
    with pytest.raises(ValueError, match="C = 2 channels, got 1"):
        BurgersUpwind(dt=1e-3, dx=D, dy=D)(torch.zeros(1, 1, 8, 8))
    with pytest.raises(TypeError, match="diffusivity must be a real number"):
        HeatFTCS(dt=1e-4, dx=D, dy=D, diffusivity="0.1")


def test_state_dependent_cfl_is_checked():
    step = BurgersUpwind(dt=0.1, dx=D, dy=D, viscosity=0.0)
    u = torch.ones(1, 2, H, W)
    with pytest.raises(ValueError, match=r"CFL number 3\.2 exceeds the stability limit 1"):
        step.check(u)
    assert step.max_dt(u) == pytest.approx(D / 2)


# --- simulate ---------------------------------------------------------------------------------------

FIELDS = {"heat": ["u"], "advection": ["u"], "burgers": ["u", "v"], "gray_scott": ["u", "v"], "navier_stokes": ["vorticity"]}


@pytest.mark.parametrize("pde", sorted(FIELDS))
def test_simulate_dataset_layout(pde):
    params = {"viscosity": 0.05} if pde == "burgers" else {}
    ds = simulate(pde, shape=(12, 16), extent=(0.75, 1.0), t_end=0.2, save_every=0.1, samples=2, seed=3, **params)
    assert sorted(ds.data_vars) == FIELDS[pde]
    for name in FIELDS[pde]:
        assert ds[name].dims == ("sample", "time", "y", "x")
        assert ds[name].dtype == np.float32
        assert np.isfinite(ds[name].values).all()
    assert ds.sizes == {"sample": 2, "time": 3, "y": 12, "x": 16}
    np.testing.assert_allclose(ds.time.values, [0.0, 0.1, 0.2])
    np.testing.assert_allclose(ds.x.values, (np.arange(16) + 0.5) / 16)
    np.testing.assert_allclose(ds.y.values, (np.arange(12) + 0.5) * 0.75 / 12)
    for axis in ("y", "x"):
        assert ds[axis].attrs["periodic"] == 1 and isinstance(ds[axis].attrs["periodic"], int)
        assert "units" in ds[axis].attrs
    assert "units" in ds.time.attrs
    assert list(ds.sample.values) == [0, 1]
    assert ds.attrs["pde"] == pde and ds.attrs["seed"] == 3
    assert ds.attrs["scheme"] in gs.PDES[pde].schemes
    assert ds.attrs["dt"] > 0 and ds.attrs["cfl"] <= ds.attrs.get("cfl_limit", math.inf)
    for value in ds.attrs.values():
        assert isinstance(value, (str, int, float)), value


def test_simulate_is_seeded_and_samples_differ():
    a = simulate("heat", shape=8, t_end=0.01, save_every=0.01, samples=2, seed=1, diffusivity=0.1)
    b = simulate("heat", shape=8, t_end=0.01, save_every=0.01, samples=2, seed=1, diffusivity=0.1)
    c = simulate("heat", shape=8, t_end=0.01, save_every=0.01, samples=2, seed=2, diffusivity=0.1)
    assert a.identical(b)
    assert not np.allclose(a.u.values, c.u.values)
    assert not np.allclose(a.u.isel(sample=0).values, a.u.isel(sample=1).values)


def test_simulate_bounded_axes_are_marked_and_dtype_kept():
    ds = simulate("heat", shape=8, t_end=0.02, save_every=0.01, bc=("dirichlet", "periodic"), dtype="float64",
                  scheme="crank_nicolson", diffusivity=0.1)
    assert ds.y.attrs["periodic"] == 0 and ds.x.attrs["periodic"] == 1
    assert ds.u.dtype == np.float64
    assert ds.attrs["bc"] == "y:dirichlet=0,x:periodic"


def test_simulate_matches_stepping_by_hand():
    ds = simulate("advection", shape=16, t_end=0.1, save_every=0.05, dt=0.025, scheme="upwind", ic="bump",
                  vx=1.0, vy=0.0, dtype="float64")
    u = gs.gaussian_bump((16, 16), (1.0, 1.0))
    step = AdvectionUpwind(dt=0.025, dx=1 / 16, dy=1 / 16, vx=1.0, vy=0.0)
    for _ in range(4):
        u = step(u)
    np.testing.assert_allclose(ds.u.isel(sample=0, time=-1).values, u[0, 0].numpy(), rtol=0, atol=1e-14)
    assert ds.attrs["steps"] == 4 and ds.attrs["dt"] == 0.025


def test_simulate_refuses_or_adapts_an_unstable_dt():
    with pytest.raises(ValueError, match=r"CFL number .* exceeds the stability limit 0\.5.*adapt_dt=True"):
        simulate("heat", shape=16, t_end=0.1, save_every=0.1, dt=0.01, diffusivity=1.0)
    ds = simulate("heat", shape=16, t_end=0.1, save_every=0.1, dt=0.01, diffusivity=1.0, adapt_dt=True)
    assert ds.attrs["cfl"] <= 0.5 and ds.attrs["dt"] < 0.01
    with pytest.raises(ValueError, match="exceeds the stability limit 1"):
        simulate("burgers", shape=16, t_end=0.1, save_every=0.1, dt=0.05, viscosity=0.01)
    ds = simulate("burgers", shape=16, t_end=0.2, save_every=0.1, dt=0.05, viscosity=0.01, adapt_dt=True)
    assert ds.attrs["adapt_dt"] == 1 and ds.attrs["cfl"] <= 1.0 and np.isfinite(ds.u.values).all()


@pytest.mark.parametrize("kwargs, error, message", [
    (dict(pde="wave"), ValueError, r"unknown pde 'wave'; accepted: \['advection', 'burgers'"),
    (dict(pde="heat", scheme="rk4"), ValueError, r"unknown scheme 'rk4' for pde 'heat'; accepted: \['crank_nicolson', 'ftcs', 'spectral'\]"),
    (dict(pde="heat", shape=(2, 8)), ValueError, r"shape must be at least 3 points"),
    (dict(pde="heat", diffusivity=-0.1), ValueError, "diffusivity must be >= 0"),
    (dict(pde="heat", viscosity=0.1), TypeError, r"unknown parameter\(s\) \['viscosity'\]; accepted: \['diffusivity'"),
    (dict(pde="heat", ic="vortex"), ValueError, r"unknown ic 'vortex' for pde 'heat'; accepted: \['grf', 'bump', 'sine'\]"),
    (dict(pde="heat", ic=np.zeros((3, 8))), ValueError, r"ic array must have shape \(1, 8, 8\)"),
    (dict(pde="heat", save_every=0.0), ValueError, "save_every must be > 0"),
    (dict(pde="navier_stokes", bc="dirichlet"), TypeError, r"unknown parameter\(s\) \['bc'\]"),
])
def test_simulate_bad_arguments(kwargs, error, message):
    args = dict(shape=8, t_end=0.01, save_every=0.01) | kwargs
    with pytest.raises(error, match=message):
        simulate(args.pop("pde"), **args)


def test_simulate_taylor_green_and_array_ic():
    ds = simulate("navier_stokes", shape=16, t_end=0.5, save_every=0.25, ic="taylor_green", viscosity=0.1, dtype="float64")
    w = ds.vorticity.isel(sample=0)
    ratio = float(np.abs(w.isel(time=-1)).max() / np.abs(w.isel(time=0)).max())
    assert ratio == pytest.approx(math.exp(-0.1 * 2 * 0.5), rel=1e-2)
    ic = np.zeros((2, 16, 16))
    ds = simulate("gray_scott", shape=16, t_end=1.0, save_every=1.0, ic=ic)
    assert float(np.abs(ds.v).max()) == 0.0  # without v there is no reaction: v stays 0
    np.testing.assert_allclose(ds.u.isel(time=-1).values, 0.04, rtol=1e-6)  # u' = F (1 - u) ≈ F for dt·F << 1


@pytest.mark.parametrize("name", ["arakawa", "central"])
def test_navier_stokes_is_differentiable(name):
    """Autograd differentiates a Navier–Stokes step (out-of-place stages while recording) and the recorded
    step equals the in-place one."""
    from gridvit.solvers import NavierStokesArakawa, NavierStokesCentral

    cls = {"arakawa": NavierStokesArakawa, "central": NavierStokesCentral}[name]
    scheme = cls(dt=1e-3, dx=0.1, dy=0.13, viscosity=1e-2, drag=0.1, forcing=0.5)
    u = torch.randn(2, 1, 7, 9, dtype=torch.float64, generator=torch.Generator().manual_seed(0), requires_grad=True)
    assert torch.autograd.gradcheck(scheme, (u,))
    with torch.no_grad():
        fast = scheme(u)
    torch.testing.assert_close(scheme(u), fast, rtol=0, atol=1e-12)


def tiny_schemes():
    """Every scheme on a 5×6 grid (dx != dy, bounded boundaries where the scheme takes them)."""
    h = {"dx": 0.2, "dy": 0.25}
    return [
        HeatFTCS(dt=1e-3, diffusivity=0.1, bc="dirichlet", bc_value=0.5, **h),
        HeatSpectral(dt=1e-2, diffusivity=0.1, **h),
        HeatCrankNicolson(dt=1e-2, diffusivity=0.1, bc="neumann", bc_value=0.2, **h),
        AdvectionUpwind(dt=1e-2, vx=1.0, vy=-0.5, bc=("periodic", "neumann"), **h),
        AdvectionLaxWendroff(dt=1e-2, vx=1.0, vy=-0.5, bc="dirichlet", **h),
        BurgersUpwind(dt=1e-3, viscosity=0.01, bc="neumann", **h),
        gs.BurgersCentral(dt=1e-3, viscosity=0.05, **h),
        gs.BurgersUpwind3(dt=1e-3, viscosity=0.01, **h),
        GrayScottExplicit(dt=0.5, bc="neumann", **h),
        GrayScottIMEX(dt=0.5, bc="dirichlet", **h),
        NavierStokesArakawa(dt=1e-2, viscosity=1e-2, drag=0.1, forcing=0.5, **h),
        gs.NavierStokesCentral(dt=1e-2, viscosity=1e-2, **h),
    ]


@pytest.mark.parametrize("scheme", tiny_schemes(), ids=lambda s: s.label)
def test_every_scheme_gradcheck(scheme):
    """Autograd differentiates every scheme (the torch path, taken whenever a gradient is recorded), checked
    against finite differences; without recording, the fused/no-grad step gives the same values."""
    g = torch.Generator().manual_seed(1)
    u = torch.rand(2, scheme.channels or 1, 5, 6, dtype=torch.float64, generator=g)
    u = (0.5 * u if scheme.pde == "gray_scott" else u - 0.5).requires_grad_(True)
    assert torch.autograd.gradcheck(scheme, (u,))
    with torch.no_grad():
        fast = scheme(u)
    torch.testing.assert_close(scheme(u).detach(), fast, rtol=1e-12, atol=1e-12)
