"""Classical finite-difference solvers: PDE training data and the baselines a surrogate must beat.

Every scheme is a frozen object with the surrogate's signature, ``step(u: (B, C, H, W)) -> (B, C, H, W)``,
parameters fixed at construction (``dt``, ``dx``, ``dy``, coefficients, boundary conditions), batched and
running on whatever device and floating dtype ``u`` has:

========================  ===========================================  ===============================
pde (fields)              schemes                                      formal order (space, time)
========================  ===========================================  ===============================
heat (u)                  HeatFTCS, HeatSpectral, HeatCrankNicolson    (2, 1), exact, (2, 2)
advection (u)             AdvectionUpwind, AdvectionLaxWendroff        (1, 1), (2, 2)
burgers (u, v)            BurgersUpwind, BurgersCentral,               (1, 3), (2, 3),
                          BurgersUpwind3 (periodic only)               (3 advective / 2 viscous, 3)
gray_scott (u, v)         GrayScottExplicit, GrayScottIMEX             (2, 1), (2, 1)
navier_stokes (vorticity) NavierStokesArakawa, NavierStokesCentral     (2, 3), (2, 3)
========================  ===========================================  ===============================

``simulate(pde, shape=..., t_end=..., save_every=..., ...)`` runs one from seeded initial conditions
(:mod:`gridvit.solvers.initial`) and returns an ``xr.Dataset`` with dims (sample, time, y, x);
``coarsen(ds, factor, method="mean" | "spectral")`` puts it on a coarser grid keeping the coordinates'
``periodic`` and ``units`` attributes.

Speed: on the CPU with no gradient to record, ``step(u)`` of the explicit schemes (FTCS, upwind,
Lax–Wendroff, Burgers, Gray–Scott explicit, Navier–Stokes) runs compiled numba loops
(:mod:`gridvit.solvers.fused`; ``fused.torch_path()`` forces torch); ``step.run(u, steps)`` advances many
steps at once, replaying a captured CUDA graph on GPUs (:mod:`gridvit.solvers.runner`). Autograd and GPUs
use the torch path, which every scheme has.
"""

from gridvit.solvers.advection import AdvectionLaxWendroff, AdvectionUpwind
from gridvit.solvers.base import Scheme, ssprk3
from gridvit.solvers.burgers import BurgersCentral, BurgersUpwind, BurgersUpwind3
from gridvit.solvers.coarsen import coarsen
from gridvit.solvers.grid_ops import Boundary, boundaries, laplacian, pad, stencil
from gridvit.solvers.heat import HeatCrankNicolson, HeatFTCS, HeatSpectral
from gridvit.solvers.initial import gaussian_bump, gaussian_random_field, gray_scott_spots, sine_mode, taylor_green
from gridvit.solvers.navier_stokes import (
    NavierStokesArakawa,
    NavierStokesCentral,
    jacobian_arakawa,
    jacobian_central,
    streamfunction,
)
from gridvit.solvers.reaction_diffusion import GrayScottExplicit, GrayScottIMEX
from gridvit.solvers.simulate import PDES, scheme_for, simulate

__all__ = [
    "AdvectionLaxWendroff",
    "AdvectionUpwind",
    "Boundary",
    "BurgersCentral",
    "BurgersUpwind",
    "BurgersUpwind3",
    "GrayScottExplicit",
    "GrayScottIMEX",
    "HeatCrankNicolson",
    "HeatFTCS",
    "HeatSpectral",
    "NavierStokesArakawa",
    "NavierStokesCentral",
    "PDES",
    "Scheme",
    "boundaries",
    "coarsen",
    "gaussian_bump",
    "gaussian_random_field",
    "gray_scott_spots",
    "jacobian_arakawa",
    "jacobian_central",
    "laplacian",
    "pad",
    "scheme_for",
    "simulate",
    "sine_mode",
    "ssprk3",
    "stencil",
    "streamfunction",
    "taylor_green",
]
