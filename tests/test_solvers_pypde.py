"""Agreement with py-pde (numba backend, explicit Euler) on the schemes both implement, to 1e-10 relative."""

from __future__ import annotations

import numpy as np
import pytest
import torch

pytest.importorskip("pde", reason="py-pde is a test extra: pip install -e '.[test]'")

from gridvit.solvers import AdvectionUpwind, Boundary, GrayScottExplicit, HeatFTCS  # noqa: E402
from gridvit.solvers.pypde import stepper  # noqa: E402

H, W, STEPS = 24, 32, 40  # a rectangular grid, dy != dx
DY, DX = 0.75 / H, 1.0 / W
BACKEND = "numpy"  # the same stencils as its numba backend, without ~10 s of compilation per equation


def agree(scheme, u0: np.ndarray, backend: str = BACKEND) -> float:
    """Max relative difference after STEPS steps of ours and py-pde's from the same (C, H, W) state."""
    advance, state = stepper(scheme, u0, backend=backend)
    advance(STEPS)
    ref = state()
    u = torch.from_numpy(u0)[None]
    for _ in range(STEPS):
        u = scheme(u)
    return float(np.abs(u[0].numpy() - ref).max() / np.abs(ref).max())


def random_state(channels: int = 1, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((channels, H, W))


BCS = [
    "periodic",
    (Boundary("dirichlet", -1.0), Boundary("neumann", 0.5)),
    (Boundary("neumann", 0.0), "periodic"),
]


@pytest.mark.parametrize("bc", BCS, ids=["periodic", "dirichlet-neumann", "neumann-periodic"])
def test_diffusion_matches_pypde(bc):
    scheme = HeatFTCS(dt=2e-4, dx=DX, dy=DY, diffusivity=0.3, bc=bc)
    assert agree(scheme, random_state()) < 1e-10


def test_diffusion_matches_pypde_numba_backend():
    # The backend benchmarks/stencils.py times (which also checks agreement on every py-pde row).
    scheme = HeatFTCS(dt=2e-4, dx=DX, dy=DY, diffusivity=0.3)
    assert agree(scheme, random_state(), backend="numba") < 1e-10


@pytest.mark.parametrize("bc", BCS, ids=["periodic", "dirichlet-neumann", "neumann-periodic"])
@pytest.mark.parametrize("vx, vy", [(0.7, -0.4), (-1.0, 0.3)])
def test_upwind_advection_matches_pypde(bc, vx, vy):
    scheme = AdvectionUpwind(dt=5e-3, dx=DX, dy=DY, vx=vx, vy=vy, bc=bc)
    assert agree(scheme, random_state(seed=1)) < 1e-10


def test_gray_scott_explicit_matches_pypde():
    u0 = np.clip(0.5 + 0.2 * random_state(2, seed=2), 0.0, 1.0)
    scheme = GrayScottExplicit(dt=0.5, dx=DX, dy=DY, du=2e-5, dv=1e-5, feed=0.04, kill=0.06)
    assert agree(scheme, u0) < 1e-10
