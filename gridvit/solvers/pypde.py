"""The same schemes run by py-pde (an optional, test-only dependency): for verification and benchmarks.

py-pde uses the same cell-centred grid and ghost cells, so its explicit Euler step of the 5-point
diffusion, first-order upwind advection and Gray–Scott equations is the same arithmetic as
:class:`HeatFTCS`, :class:`AdvectionUpwind` and :class:`GrayScottExplicit`. py-pde's grid is built
with its axis 0 along our x (W) and axis 1 along our y (H), so its data is our (H, W) transposed.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from gridvit.solvers.advection import AdvectionUpwind
from gridvit.solvers.base import Scheme
from gridvit.solvers.grid_ops import Boundary
from gridvit.solvers.heat import HeatFTCS
from gridvit.solvers.reaction_diffusion import GrayScottExplicit

SUPPORTED = (HeatFTCS, AdvectionUpwind, GrayScottExplicit)


def _bc(b: Boundary) -> Any:
    if b.periodic:
        return "periodic"
    return {"value": b.value} if b.kind == "dirichlet" else {"derivative": b.value}


def equation(scheme: Scheme, backend: str = "numba"):
    """The py-pde PDE equivalent to ``scheme`` (one of :data:`SUPPORTED`).

    On the numba backend: py-pde's ``DiffusionPDE`` and expression ``PDE`` (with its
    ``d_dx_backward``-style operators), compiled (~10 s per equation). Otherwise a small PDE class
    applying py-pde's scipy operators (``laplace``, ``gradient(method=...)``): the same stencils, no
    compilation.
    """
    import pde

    bc = {"x": _bc(scheme.bcs[1]), "y": _bc(scheme.bcs[0])}  # py-pde's x is our x (W)
    if not isinstance(scheme, SUPPORTED):
        raise TypeError(f"no py-pde equivalent for {type(scheme).__name__}; supported: {[c.__name__ for c in SUPPORTED]}")
    if backend != "numba":
        return _scipy_equation(scheme, bc)
    if isinstance(scheme, HeatFTCS):
        return pde.DiffusionPDE(diffusivity=scheme.diffusivity, bc=bc)
    if isinstance(scheme, AdvectionUpwind):
        ddx = "d_dx_backward" if scheme.vx > 0 else "d_dx_forward"
        ddy = "d_dy_backward" if scheme.vy > 0 else "d_dy_forward"
        return pde.PDE({"u": f"-({scheme.vx!r}) * {ddx}(u) - ({scheme.vy!r}) * {ddy}(u)"}, bc=bc)
    f, k = repr(scheme.feed), repr(scheme.kill)
    return pde.PDE({
        "u": f"{scheme.du!r} * laplace(u) - u * v**2 + {f} * (1 - u)",
        "v": f"{scheme.dv!r} * laplace(v) + u * v**2 - ({f} + {k}) * v",
    }, bc=bc)


def _scipy_equation(scheme: Scheme, bc: dict):
    """The right-hand side of ``scheme`` with py-pde's scipy operators, for its numpy backend."""
    import pde
    from pde.pdes.base import PDEBase

    def grad(field, axis: int, velocity: float) -> np.ndarray:
        return field.gradient(bc, method="backward" if velocity > 0 else "forward", backend="scipy").data[axis]

    def rate(fields: list) -> list[np.ndarray]:
        if isinstance(scheme, HeatFTCS):
            return [scheme.diffusivity * fields[0].laplace(bc, backend="scipy").data]
        if isinstance(scheme, AdvectionUpwind):
            return [-(scheme.vx * grad(fields[0], 0, scheme.vx) + scheme.vy * grad(fields[0], 1, scheme.vy))]
        (u, v), (lu, lv) = [f.data for f in fields], [f.laplace(bc, backend="scipy").data for f in fields]
        return [scheme.du * lu - u * v**2 + scheme.feed * (1 - u),
                scheme.dv * lv + u * v**2 - (scheme.feed + scheme.kill) * v]

    class Equation(PDEBase):
        def evolution_rate(self, state, t=0.0):
            fields = [state] if isinstance(state, pde.ScalarField) else list(state)
            out = [pde.ScalarField(state.grid, r) for r in rate(fields)]
            return out[0] if len(out) == 1 else pde.FieldCollection(out)

    return Equation()


def stepper(scheme: Scheme, u0: np.ndarray, *, backend: str = "numba") -> tuple[Callable[[int], None], Callable[[], np.ndarray]]:
    """Compile py-pde's explicit Euler for ``scheme`` from one state ``u0`` (C, H, W).

    Returns:
        ``advance(steps)``, which runs that many Euler steps inside py-pde's compiled loop, and
        ``state()``, the current state as (C, H, W).
    """
    import pde

    c, h, w = u0.shape
    grid = pde.CartesianGrid([[0.0, w * scheme.dx], [0.0, h * scheme.dy]], [w, h],
                             periodic=[scheme.bcs[1].periodic, scheme.bcs[0].periodic])
    fields = [pde.ScalarField(grid, np.ascontiguousarray(u0[i].T, dtype=np.float64)) for i in range(c)]
    state = fields[0] if c == 1 else pde.FieldCollection(fields)
    solver = pde.EulerSolver(equation(scheme, backend), backend=backend)
    run = solver.make_stepper(state, dt=scheme.dt)
    clock = {"t": 0.0}

    def advance(steps: int) -> None:
        t1 = clock["t"] + steps * scheme.dt
        run(state, clock["t"], t1)
        clock["t"] = t1

    def current() -> np.ndarray:
        data = state.data if c == 1 else np.stack([f.data for f in state])
        return np.ascontiguousarray(np.swapaxes(data.reshape(c, w, h), -1, -2))

    return advance, current
