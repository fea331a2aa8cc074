"""The shared step contract: a frozen scheme object, ``step(u: (B, C, H, W)) -> (B, C, H, W)``.

Every scheme fixes its parameters (dt, dx, dy, coefficients, boundary conditions) at construction and
validates them there. Its stability number is linear in dt, ``cfl = dt * rate(u)``, compared against
``cfl_limit``; schemes whose rate does not depend on the state refuse an unstable dt at construction,
nonlinear ones through :meth:`Scheme.check` (``simulate`` calls it on every saved state).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar

import numpy as np
import torch

from gridvit.solvers import fused
from gridvit.solvers.grid_ops import Boundaries, boundaries, check_grid, describe


def check_number(name: str, value: Any, *, positive: bool = False, nonnegative: bool = False) -> float:
    """Return ``value`` as a float, or raise a clear TypeError/ValueError naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a real number, got {value!r} ({type(value).__name__})")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    if positive and value <= 0.0:
        raise ValueError(f"{name} must be > 0, got {value}")
    if nonnegative and value < 0.0:
        raise ValueError(f"{name} must be >= 0, got {value}")
    return value


@dataclass(frozen=True, eq=False, kw_only=True)
class Scheme:
    """Base class of all time steppers.

    Args:
        dt: time step.
        dx: grid spacing along x (the last dim, W).
        dy: grid spacing along y (dim -2, H).
    """

    dt: float
    dx: float
    dy: float
    _cache: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    pde: ClassVar[str] = ""
    name: ClassVar[str] = ""
    channels: ClassVar[int | None] = None  # None: any number of independent channels
    cfl_limit: ClassVar[float] = math.inf
    cfl_formula: ClassVar[str] = ""
    state_dependent: ClassVar[bool] = False  # True when rate() needs the state u
    has_fused: ClassVar[bool] = False  # True when _fused() implements the step (gridvit.solvers.fused)

    def __post_init__(self) -> None:
        self._numbers("dt", "dx", "dy", positive=True)
        self._validate()
        if not self.state_dependent:
            self.check()

    @property
    def label(self) -> str:
        """``"pde/scheme"``, e.g. ``"heat/ftcs"`` (used in error messages)."""
        return f"{self.pde}/{self.name}"

    @property
    def spacing(self) -> tuple[float, float]:
        """(dy, dx), in the order of the (H, W) dims."""
        return (self.dy, self.dx)

    def _validate(self) -> None:
        """Check and normalise the scheme's own parameters (subclasses)."""

    def _numbers(self, *names: str, **checks: bool) -> None:
        """Validate the named float fields (see :func:`check_number`) and store them as floats."""
        for name in names:
            object.__setattr__(self, name, check_number(f"{self.label}: {name}", getattr(self, name), **checks))

    def _set_bcs(self, bc: Any, value: Any = 0.0) -> Boundaries:
        value = check_number(f"{self.label}: bc_value", value)
        try:
            bcs = boundaries(bc, value)
        except (TypeError, ValueError) as err:
            raise type(err)(f"{self.label}: {err}") from None
        object.__setattr__(self, "bcs", bcs)
        return bcs

    def _require_periodic(self, bcs: Boundaries, alternative: str) -> None:
        if not (bcs[0].periodic and bcs[1].periodic):
            raise ValueError(f"{self.label} needs periodic boundaries on both axes; for bounded ones use {alternative}")

    def rate(self, u: torch.Tensor | None = None) -> float:
        """The stability number per unit time step (``cfl = dt * rate``)."""
        return 0.0

    def cfl(self, u: torch.Tensor | None = None) -> float:
        """The scheme's stability number at this dt (see ``cfl_formula``; must stay <= ``cfl_limit``)."""
        return self.dt * self.rate(u)

    def max_dt(self, u: torch.Tensor | None = None) -> float:
        """The largest stable dt for this state (inf for unconditionally stable schemes)."""
        r = self.rate(u)
        return math.inf if r <= 0.0 or math.isinf(self.cfl_limit) else self.cfl_limit / r

    def check(self, u: torch.Tensor | None = None) -> float:
        """Return the CFL number, or raise ValueError naming it and the limit when it is exceeded."""
        if self.state_dependent and u is None:
            return math.nan
        c = self.cfl(u)
        if not math.isfinite(c):
            raise ValueError(f"{self.label}: the state is not finite (CFL number {c}); the solution has blown up")
        if c > self.cfl_limit * (1.0 + 1e-12):
            raise ValueError(
                f"{self.label}: CFL number {c:.4g} exceeds the stability limit {self.cfl_limit:g} "
                f"(CFL = {self.cfl_formula}, dt={self.dt:.4g}, dx={self.dx:.4g}, dy={self.dy:.4g}); "
                f"use dt <= {self.max_dt(u):.4g} or simulate(..., adapt_dt=True)"
            )
        return c

    def with_dt(self, dt: float) -> "Scheme":
        """The same scheme with another time step (validated again)."""
        return dataclasses.replace(self, dt=dt)

    def params(self) -> dict[str, str | int | float]:
        """The scheme's physical parameters as netCDF-storable values (subclasses extend)."""
        return {}

    def __call__(self, u: torch.Tensor) -> torch.Tensor:
        """Advance (B, C, H, W) by one step of ``dt`` -> (B, C, H, W).

        On the CPU with no gradient to record, explicit schemes run one compiled loop per step or stage
        (:mod:`gridvit.solvers.fused`); otherwise, and on GPUs, the torch path.
        """
        check_grid(u, self.channels, self.label)
        if self.has_fused and fused.eligible(u):
            return fused.step(self, u)
        return self._step(u)

    def run(self, u: torch.Tensor, steps: int) -> torch.Tensor:
        """Advance (B, C, H, W) by ``steps`` steps -> (B, C, H, W); equal to calling the scheme ``steps`` times.

        On CUDA (no gradient recorded) the steps replay a captured CUDA graph, so small grids are not
        bound by kernel launches; on the CPU they loop over the fused step (see :func:`runner.run`).
        """
        from gridvit.solvers.runner import run

        return run(self, u, steps)

    def _step(self, u: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _fused(self, dtype: np.dtype, kernels: Any) -> Callable[[np.ndarray, np.ndarray], None]:
        """The fused CPU step ``f(a, out)`` of (B, C, H, W) arrays of ``dtype`` (schemes with ``has_fused``),
        calling ``kernels`` (:func:`gridvit.solvers.fused.compiled`: threaded, or the serial twins)."""
        raise NotImplementedError

    def cached(self, key: tuple, make: Callable[[], Any]) -> Any:
        """Memoise per-grid constants (FFT multipliers, eigenvectors) on this scheme."""
        if key not in self._cache:
            self._cache[key] = make()
        return self._cache[key]


@dataclass(frozen=True, eq=False, kw_only=True)
class BoundedScheme(Scheme):
    """A scheme that takes boundary conditions.

    Args:
        bc: ``"periodic"``, ``"dirichlet"``, ``"neumann"``, a :class:`Boundary`, a (y, x) pair or a
            ``{"y": ..., "x": ...}`` mapping of those (see :func:`gridvit.solvers.grid_ops.boundaries`).
        bc_value: the Dirichlet value / outward normal derivative of the axes given by name.
    """

    bc: Any = "periodic"
    bc_value: float = 0.0

    def __post_init__(self) -> None:
        self._set_bcs(self.bc, self.bc_value)
        super().__post_init__()

    def params(self) -> dict[str, str | int | float]:
        return {"bc": describe(self.bcs)}


def ssprk3(rhs: Callable[[torch.Tensor], torch.Tensor], u: torch.Tensor, dt: float) -> torch.Tensor:
    """One step of the three-stage, third-order strong-stability-preserving Runge–Kutta (Shu–Osher).

    ``u1 = u + dt L(u)``; ``u2 = 3/4 u + 1/4 (u1 + dt L(u1))``; ``u' = 1/3 u + 2/3 (u2 + dt L(u2))``.
    Stages update in place unless autograd records the step (then out of place, so it is differentiable).
    """
    u1 = torch.add(u, rhs(u), alpha=dt)  # (B, C, H, W)
    if torch.is_grad_enabled() and u1.requires_grad:
        u2 = (u1 + dt * rhs(u1)) * 0.25 + 0.75 * u
        return (u2 + dt * rhs(u2)) * (2.0 / 3.0) + u * (1.0 / 3.0)
    u2 = u1.add_(rhs(u1), alpha=dt).mul_(0.25).add_(u, alpha=0.75)
    return u2.add_(rhs(u2), alpha=dt).mul_(2.0 / 3.0).add_(u, alpha=1.0 / 3.0)
