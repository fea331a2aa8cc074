"""``simulate``: run a scheme from seeded initial conditions and return an ``xr.Dataset``.

The dataset has one variable per field with dims ``(sample, time, y, x)``; ``sample`` indexes
independent trajectories (the data layer never windows across two samples), ``y``/``x`` are cell
centres in physical units with an int ``periodic`` attr, ``time`` is physical time. Attributes record
the pde, scheme, dt, CFL number, the parameters and the seed.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import xarray as xr

from gridvit.solvers import initial
from gridvit.solvers.advection import AdvectionLaxWendroff, AdvectionUpwind
from gridvit.solvers.base import Scheme, check_number
from gridvit.solvers.burgers import BurgersCentral, BurgersUpwind, BurgersUpwind3
from gridvit.solvers.heat import HeatCrankNicolson, HeatFTCS, HeatSpectral
from gridvit.solvers.navier_stokes import NavierStokesArakawa, NavierStokesCentral
from gridvit.solvers.reaction_diffusion import GrayScottExplicit, GrayScottIMEX


@dataclass(frozen=True)
class PDESpec:
    """What ``simulate`` needs to know about a PDE: its fields, schemes and defaults."""

    fields: tuple[str, ...]
    schemes: dict[str, type[Scheme]]
    default_scheme: str
    default_ic: str
    default_extent: float
    ics: tuple[str, ...]


PDES: dict[str, PDESpec] = {
    "heat": PDESpec(("u",), {"ftcs": HeatFTCS, "spectral": HeatSpectral, "crank_nicolson": HeatCrankNicolson},
                    "ftcs", "grf", 1.0, ("grf", "bump", "sine")),
    "advection": PDESpec(("u",), {"upwind": AdvectionUpwind, "lax_wendroff": AdvectionLaxWendroff},
                         "lax_wendroff", "grf", 1.0, ("grf", "bump", "sine")),
    "burgers": PDESpec(("u", "v"), {"upwind": BurgersUpwind, "central": BurgersCentral,
                                               "upwind3": BurgersUpwind3},
                       "upwind", "grf", 1.0, ("grf", "taylor_green")),
    "gray_scott": PDESpec(("u", "v"), {"imex": GrayScottIMEX, "explicit": GrayScottExplicit},
                          "imex", "spots", 1.0, ("spots",)),
    "navier_stokes": PDESpec(("vorticity",), {"arakawa": NavierStokesArakawa, "central": NavierStokesCentral},
                             "arakawa", "grf", 2 * math.pi, ("grf", "taylor_green")),
}
ALIASES = {"diffusion": "heat", "reaction_diffusion": "gray_scott"}

# Target CFL number (as a fraction of the limit) when dt is chosen for the user.
SAFETY = {True: 0.5, False: 0.9}  # keyed by state_dependent
# Unconditionally stable schemes: target diffusion number for accuracy (None: one step per save).
UNCONDITIONAL_TARGET = {"crank_nicolson": 2.0, "spectral": None}


def _spec(pde: str) -> tuple[str, PDESpec]:
    if not isinstance(pde, str):
        raise TypeError(f"pde must be a string, one of {sorted(PDES)}, got {type(pde).__name__}")
    name = ALIASES.get(pde, pde)
    if name not in PDES:
        raise ValueError(f"unknown pde {pde!r}; accepted: {sorted(PDES)} (aliases {sorted(ALIASES)})")
    return name, PDES[name]


def scheme_for(pde: str, scheme: str | None = None, *, dt: float, dx: float, dy: float, **params: Any) -> Scheme:
    """Construct a step by names: ``scheme_for("heat", "ftcs", dt=1e-4, dx=0.01, dy=0.01, diffusivity=0.1)``."""
    name, spec = _spec(pde)
    scheme = spec.default_scheme if scheme is None else scheme
    if scheme not in spec.schemes:
        raise ValueError(f"unknown scheme {scheme!r} for pde {name!r}; accepted: {sorted(spec.schemes)}")
    cls = spec.schemes[scheme]
    names = [f.name for f in dataclasses.fields(cls) if f.init and f.name not in ("dt", "dx", "dy")]
    accepted = sorted(names, key=lambda n: n.startswith("bc"))  # the physical parameters first
    unknown = sorted(set(params) - set(accepted))
    if unknown:
        raise TypeError(f"{name}/{scheme} got unknown parameter(s) {unknown}; accepted: {accepted}")
    return cls(dt=dt, dx=dx, dy=dy, **params)


def _pair(name: str, value: Any, kind: type) -> tuple:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = (value, value)
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        raise TypeError(f"{name} must be a number or a (y, x) pair, got {value!r}")
    if kind is int:
        if not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in value):
            raise TypeError(f"{name} must be ints (H, W), got {value!r}")
        if min(value) < 3:
            raise ValueError(f"{name} must be at least 3 points along each axis, got {tuple(value)}")
        return int(value[0]), int(value[1])
    return tuple(check_number(f"{name}", v, positive=True) for v in value)


def _initial_state(spec: PDESpec, pde: str, ic: Any, shape, extent, samples: int, seed: int, options: dict) -> torch.Tensor:
    """(S, C, H, W) float64 initial state from a name or an array."""
    c = len(spec.fields)
    if not isinstance(ic, str):
        arr = torch.as_tensor(np.asarray(ic), dtype=torch.float64)
        if arr.ndim == 2 and c == 1:
            arr = arr[None]
        if arr.ndim == 3:
            arr = arr[None]
        if arr.ndim != 4 or tuple(arr.shape[1:]) != (c, *shape) or arr.shape[0] not in (1, samples):
            raise ValueError(f"ic array must have shape ({c}, {shape[0]}, {shape[1]}) or "
                             f"({samples}, {c}, {shape[0]}, {shape[1]}) for pde {pde!r}, got {tuple(arr.shape)}")
        return arr.expand(samples, -1, -1, -1).clone()
    if ic not in spec.ics:
        raise ValueError(f"unknown ic {ic!r} for pde {pde!r}; accepted: {list(spec.ics)} or an array")
    opts = dict(options)
    amplitude = float(opts.pop("amplitude", 1.0))
    if ic == "grf":
        u0 = initial.gaussian_random_field(shape, extent, samples=samples, channels=c, seed=seed, **opts)
    elif ic == "bump":
        u0 = initial.gaussian_bump(shape, extent, **opts)
    elif ic == "sine":
        u0 = initial.sine_mode(shape, extent, **opts)
    elif ic == "taylor_green":
        field = "velocity" if c == 2 else "vorticity"
        u0 = initial.taylor_green(shape, extent, field=field, **opts)
    else:  # spots
        return initial.gray_scott_spots(shape, samples=samples, seed=seed, **opts)
    return (amplitude * u0).expand(samples, c, -1, -1).clone()


def _choose_dt(probe: Scheme, state: torch.Tensor, dt: float | None, adapt: bool, save_every: float) -> float:
    """The dt to use for the next save interval (before rounding to divide ``save_every``)."""
    rate = probe.rate(state)
    if math.isinf(probe.cfl_limit):
        target = UNCONDITIONAL_TARGET.get(probe.name)
        auto = save_every if (target is None or rate == 0.0) else target / rate
    else:
        auto = math.inf if rate == 0.0 else SAFETY[probe.state_dependent] * probe.cfl_limit / rate
    if dt is None:
        return min(save_every, auto)
    if adapt and not math.isinf(probe.cfl_limit) and dt * rate > probe.cfl_limit:
        return min(save_every, auto)
    return dt


def _run(scheme: Scheme, state: torch.Tensor, *, saves: int, save_every: float, dt: float | None,
         adapt: bool, out: np.ndarray) -> tuple[Scheme, dict[str, float]]:
    """Advance ``state`` (S, C, H, W), writing every saved state into ``out`` (S, T, C, H, W).

    The step count per save interval is fixed at the start (or, with ``adapt`` and a state-dependent
    scheme, at every interval from the current state), and dt = save_every / count.
    """
    out[:, 0] = state.cpu().numpy()
    stats = {"dt_min": scheme.dt, "dt_max": scheme.dt, "cfl": scheme.check(state), "steps": 0}
    n = 0
    for k in range(1, saves + 1):
        if k == 1 or (adapt and scheme.state_dependent):
            n = max(1, math.ceil(save_every / _choose_dt(scheme, state, dt, adapt, save_every) - 1e-9))
            scheme = scheme.with_dt(save_every / n)
            stats["dt_min"] = scheme.dt if k == 1 else min(stats["dt_min"], scheme.dt)
            stats["dt_max"] = scheme.dt if k == 1 else max(stats["dt_max"], scheme.dt)
            stats["cfl"] = max(stats["cfl"] if k > 1 else 0.0, scheme.check(state))
        state = scheme.run(state, n)  # fused loop on the CPU, a replayed CUDA graph on GPUs
        stats["steps"] += n
        t = k * save_every
        if not bool(torch.isfinite(state).all()):
            raise ValueError(f"{scheme.label}: the solution became non-finite by t = {t:.4g} (dt = {scheme.dt:.4g}); "
                             "lower dt or pass adapt_dt=True, or resolve the flow better (finer grid, more viscosity)")
        if scheme.state_dependent:
            c = scheme.cfl(state)
            stats["cfl"] = max(stats["cfl"], c)
            if not adapt and c > scheme.cfl_limit:
                raise ValueError(f"at t = {t:.4g}: {_cfl_message(scheme, state)}")
        out[:, k] = state.cpu().numpy()
    return scheme, stats


def _cfl_message(scheme: Scheme, state: torch.Tensor) -> str:
    try:
        scheme.check(state)
    except ValueError as err:
        return str(err)
    return f"{scheme.label}: CFL number exceeded"


def simulate(
    pde: str,
    *,
    shape: int | tuple[int, int],
    t_end: float,
    save_every: float,
    extent: float | tuple[float, float] | None = None,
    samples: int = 1,
    seed: int = 0,
    scheme: str | None = None,
    dt: float | None = None,
    adapt_dt: bool = False,
    ic: Any = None,
    ic_options: dict[str, Any] | None = None,
    dtype: str = "float32",
    device: str | torch.device | None = None,
    space_units: str = "1",
    time_units: str = "1",
    **params: Any,
) -> xr.Dataset:
    """Simulate ``samples`` independent trajectories of a PDE and return them as an ``xr.Dataset``.

    Args:
        pde: ``"heat"``, ``"advection"``, ``"burgers"``, ``"gray_scott"`` or ``"navier_stokes"``.
        shape: grid (H, W) (or one int for both), at least 3 points per axis.
        t_end: last time; states are saved at ``0, save_every, 2 save_every, ... <= t_end``.
        save_every: the time between saved states; the time step is rounded down to divide it.
        extent: domain size (L_y, L_x) (one number for both); default 1 (2π for Navier–Stokes).
        samples: number of trajectories, each from its own seeded initial condition.
        seed: seed of the initial conditions.
        scheme: the scheme's name (default per pde; see ``PDES[pde].schemes``).
        dt: time step; None picks a stable one. An unstable dt raises ValueError unless ``adapt_dt``.
        adapt_dt: lower an unstable dt, and re-choose dt from the state at every saved step for
            state-dependent (nonlinear) schemes.
        ic: ``"grf"`` (seeded band-limited Gaussian random field), ``"bump"``, ``"sine"``,
            ``"taylor_green"``, ``"spots"`` (Gray–Scott) as the pde allows, or an array
            (C, H, W) / (S, C, H, W). Default per pde.
        ic_options: keyword options of the initial condition (e.g. ``{"alpha": 3, "amplitude": 0.5}``).
        dtype: stored dtype, ``"float32"`` (default) or ``"float64"``; the computation is float64.
        device: torch device to compute on (default CPU).
        space_units, time_units: ``units`` attrs of the coordinates.
        **params: the scheme's parameters (``diffusivity``, ``vx``/``vy``, ``viscosity``, ``du``/``dv``/
            ``feed``/``kill``, ``drag``/``forcing``/``forcing_wavenumber``, ``bc``/``bc_value``).

    Returns:
        Dataset with one variable per field (heat/advection ``u``; Burgers ``u``, ``v``; Gray–Scott ``u``,
        ``v``; Navier–Stokes ``vorticity``), dims ``(sample, time, y, x)``. To train on a coarser grid, simulate
        finely and use :func:`gridvit.solvers.coarsen` (block mean, or spectral truncation on periodic axes):
        unlike ``ds.coarsen(...).mean()`` it keeps the coordinates' ``periodic`` and ``units`` attributes.
    """
    name, spec = _spec(pde)
    h, w = _pair("shape", shape, int)
    ly, lx = _pair("extent", spec.default_extent if extent is None else extent, float)
    t_end, save_every = check_number("t_end", t_end, nonnegative=True), check_number("save_every", save_every, positive=True)
    for label, value in (("samples", samples), ("seed", seed)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < (1 if label == "samples" else 0):
            raise ValueError(f"{label} must be an int >= {1 if label == 'samples' else 0}, got {value!r}")
    if dtype not in ("float32", "float64"):
        raise ValueError(f"dtype must be 'float32' or 'float64', got {dtype!r}")
    if dt is not None:
        dt = check_number("dt", dt, positive=True)
    dx, dy = lx / w, ly / h
    probe = scheme_for(name, scheme, dt=1e-12 * save_every, dx=dx, dy=dy, **params)
    state = _initial_state(spec, name, spec.default_ic if ic is None else ic, (h, w), (ly, lx), int(samples), int(seed),
                           ic_options or {}).to(device=device)
    dt0 = _choose_dt(probe, state, dt, adapt_dt, save_every)
    first = probe.with_dt(dt0)  # raises the CFL error for a bad state-independent dt
    first.check(state)  # and for a bad state-dependent one
    saves = int(math.floor(t_end / save_every + 1e-9))
    out = np.empty((int(samples), saves + 1, len(spec.fields), h, w), dtype=dtype)
    last, stats = _run(first, state, saves=saves, save_every=save_every, dt=dt, adapt=adapt_dt, out=out)
    return _dataset(spec, name, last, stats, out, (ly, lx), save_every, seed=int(seed), adapt=adapt_dt,
                    ic=ic if isinstance(ic, str) else ("array" if ic is not None else spec.default_ic),
                    units=(space_units, time_units))


def _dataset(spec: PDESpec, name: str, scheme: Scheme, stats: dict, out: np.ndarray, extent, save_every: float,
             *, seed: int, adapt: bool, ic: str, units: tuple[str, str]) -> xr.Dataset:
    """Wrap (S, T, C, H, W) into the documented dataset layout."""
    s, t, _, h, w = out.shape
    coords = {
        "sample": ("sample", np.arange(s)),
        "time": ("time", np.arange(t) * save_every, {"units": units[1], "long_name": "time"}),
        "y": ("y", initial.cell_centres(h, extent[0]).numpy(), {"units": units[0], "periodic": int(scheme.bcs[0].periodic)}),
        "x": ("x", initial.cell_centres(w, extent[1]).numpy(), {"units": units[0], "periodic": int(scheme.bcs[1].periodic)}),
    }
    data = {f: (("sample", "time", "y", "x"), out[:, :, c]) for c, f in enumerate(spec.fields)}
    attrs: dict[str, str | int | float] = {
        "pde": name, "scheme": scheme.name, "dt": stats["dt_min"], "cfl": float(stats["cfl"]),
        "cfl_formula": scheme.cfl_formula, "steps": int(stats["steps"]), "adapt_dt": int(adapt),
        "seed": seed, "ic": ic, "extent_y": float(extent[0]), "extent_x": float(extent[1]),
    }
    if not math.isinf(scheme.cfl_limit):
        attrs["cfl_limit"] = float(scheme.cfl_limit)
    if stats["dt_max"] != stats["dt_min"]:
        attrs["dt_max"] = stats["dt_max"]
    attrs.update(scheme.params())
    return xr.Dataset(data, coords=coords, attrs=attrs)
