"""Effective stencils: the Jacobian of one step at a cell, for a trained surrogate or a finite-difference scheme.

Any ``step(u: (B, C, H, W)) -> (B, C, H, W)`` differentiable by autograd works (a :class:`gridvit.Surrogate`,
its ``.step``, a :mod:`gridvit.solvers` scheme), so a learned update rule and a classical stencil are read
the same way. For the heat equation :func:`heat_kernel` gives the exact one-step kernel to compare against
(:func:`relative_l2`).
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import torch
import xarray as xr

from gridvit.analysis.locate import locate, spatial_coords
from gridvit.data import DataSpec, FieldReader, describe
from gridvit.data.spec import as_dataset
from gridvit.surrogate import Surrogate


def _state(ds: xr.Dataset | xr.DataArray, step: Any) -> tuple[Callable, DataSpec, torch.Tensor]:
    """The step function, the layout of ``ds`` and its last state (S, C, H, W) float64."""
    data = as_dataset(ds)
    if isinstance(step, Surrogate):
        spec = describe(data, variables=[v.name for v in step.spec.variables])
        fn = step.step
    elif callable(step):
        spec, fn = describe(data), step
    else:
        raise TypeError(f"step must be callable as step(u: (B, C, H, W)) -> (B, C, H, W) (a Surrogate, its .step "
                        f"or a gridvit.solvers scheme), got {type(step).__name__}")
    reader = FieldReader(data, spec, in_memory=False)
    last = [reader.read(s, [reader.n_times - 1])[0] for s in range(reader.n_samples)]  # S × (C, H, W)
    return fn, spec, torch.from_numpy(np.stack(last).astype(np.float64))  # (S, C, H, W)


def effective_stencil(step: Any, ds: xr.Dataset | xr.DataArray, *, at: Any) -> xr.DataArray:
    """The Jacobian of ``step``'s output at the cell ``at`` with respect to the whole input field.

    ``J[o, i, y, x] = ∂ step(u)[o, at] / ∂ u[i, y, x]`` at the last state of ``ds`` (averaged over samples
    when ``ds`` has a sample dim), by autograd in float64 inputs. For a linear scheme this is its stencil
    exactly (FTCS heat: ``1 − 2(r_x + r_y)`` at ``at``, ``r_x = ν dt/dx²`` and ``r_y`` on the
    neighbours); for a surrogate it is the learned update rule linearised about that state.

    Args:
        step: a :class:`gridvit.Surrogate` (history 1, no calendar/climatology), any callable with the shared
            signature (``surrogate.step``, a solver scheme).
        ds: data laid out as the step expects; its last time gives the state and its grid the coordinates.
        at: the output cell, ``{"y": .., "x": ..}`` / ``{"lat": .., "lon": ..}`` or a (y, x) pair.

    Returns:
        DataArray (output, input, y, x), channels named as in ``ds``.

    Raises:
        TypeError: ``step`` is not callable, does not take/return a (B, C, H, W) tensor, or is not
            differentiable by autograd.
        ValueError: ``at`` outside the grid; non-finite derivatives (e.g. masked NaN inputs).
    """
    fn, spec, u = _state(ds, step)
    r, c = locate(spec, at)
    u.requires_grad_(True)
    try:
        out = fn(u)
    except TypeError as err:
        raise TypeError(f"step could not be called as step(u) with u of shape {tuple(u.shape)} "
                        f"(B, C, H, W): {err}") from err
    if not isinstance(out, torch.Tensor) or out.shape != u.shape:
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise TypeError(f"step must return a (B, C, H, W) tensor shaped like its input {tuple(u.shape)}, got {got}")
    if not out.requires_grad:
        raise TypeError("step's output does not depend on its input through autograd (no_grad, numpy or "
                        "detach inside?); effective_stencil needs a differentiable step")
    channels = spec.channel_names
    rows = []
    for o in range(len(channels)):
        try:
            (g,) = torch.autograd.grad(out[:, o, r, c].sum(), u, retain_graph=o < len(channels) - 1)  # (S, C, H, W)
        except RuntimeError as err:  # e.g. in-place updates inside the step
            raise TypeError(f"step is not differentiable by autograd ({str(err).splitlines()[0][:120]}); "
                            "effective_stencil needs a step without in-place updates of its graph") from err
        rows.append(g.mean(0))  # (C, H, W)
    jac = torch.stack(rows).detach().numpy()  # (C_out, C_in, H, W)
    if not np.isfinite(jac).all():
        raise ValueError("the step's derivatives are not finite at this state (masked/NaN inputs?)")
    y, x = spec.grid_dims
    units = {str(v.attrs.get("units", "")) for v in spec.variables}
    return xr.DataArray(
        jac, dims=("output", "input", y, x),
        coords={"output": ("output", channels), "input": ("input", channels), **spatial_coords(spec)},
        attrs={"units": "1" if len(units) == 1 else "output units per input unit",
               "long_name": "effective stencil: d step(u)[output, at] / d u[input, cell]",
               f"at_{y}": float(spec.grid.y[r]), f"at_{x}": float(spec.grid.x[c])},
    )


def _kernel_1d(coord: np.ndarray, i0: int, periodic: bool, nu_dt: float) -> np.ndarray:
    """Exact 1-D heat kernel (n,) for a unit impulse at ``i0`` after ``ν·dt``."""
    n = coord.size
    h = float(np.median(np.abs(np.diff(coord)))) if n > 1 else 1.0
    if periodic:
        k = 2.0 * np.pi * np.fft.fftfreq(n, d=h)  # (n,) wavenumbers
        impulse = np.zeros(n)
        impulse[i0] = 1.0
        return np.fft.ifft(np.fft.fft(impulse) * np.exp(-nu_dt * k**2)).real
    if nu_dt == 0:
        return (np.arange(n) == i0).astype(np.float64)
    return h * np.exp(-((coord - coord[i0]) ** 2) / (4.0 * nu_dt)) / np.sqrt(4.0 * np.pi * nu_dt)


def heat_kernel(ds: xr.Dataset | xr.DataArray, *, at: Any, diffusivity: float, dt: float) -> xr.DataArray:
    """The exact one-step kernel of ``∂u/∂t = ν ∇²u`` over ``dt`` for a unit impulse at the cell ``at``.

    Separable, ``K = k_y ⊗ k_x``: along a periodic axis the exact propagator ``exp(−ν k² dt)`` of
    band-limited grid functions (what :class:`gridvit.solvers.HeatSpectral` applies); along a bounded axis
    the free-space Gaussian sampled at the cells (times the spacing), exact while it stays clear of the
    walls. Spacings are those of the coordinates (physical units, e.g. ``simulate``'s ``y``/``x``).

    Returns:
        DataArray (y, x), comparable with ``effective_stencil(...).sel(output=c, input=c)``.

    Raises:
        ValueError: a lat-lon grid, a negative ``diffusivity`` or ``dt``, or ``at`` outside the grid.
    """
    spec = describe(as_dataset(ds), allow_single_step=True)
    if spec.grid.kind != "plane":
        raise ValueError("heat_kernel needs a plane grid (y, x in length units), not a lat-lon grid")
    for name, value in (("diffusivity", diffusivity), ("dt", dt)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
            raise ValueError(f"{name} must be a number >= 0, got {value!r}")
    r, c = locate(spec, at)
    nu_dt = float(diffusivity) * float(dt)
    ky = _kernel_1d(spec.grid.y.astype(np.float64), r, spec.grid.periodic_y, nu_dt)  # (H,)
    kx = _kernel_1d(spec.grid.x.astype(np.float64), c, spec.grid.periodic_x, nu_dt)  # (W,)
    y, x = spec.grid_dims
    return xr.DataArray(np.outer(ky, kx), dims=spec.grid_dims, coords=spatial_coords(spec),
                        attrs={"units": "1", "long_name": f"exact heat kernel, nu*dt = {nu_dt:g}",
                               f"at_{y}": float(spec.grid.y[r]), f"at_{x}": float(spec.grid.x[c])})


def relative_l2(a: xr.DataArray | np.ndarray, reference: xr.DataArray | np.ndarray) -> float:
    """``‖a − reference‖₂ / ‖reference‖₂`` over all cells (e.g. a learned stencil vs :func:`heat_kernel`)."""
    if isinstance(a, xr.DataArray) and isinstance(reference, xr.DataArray):
        a, reference = xr.align(a, reference, join="exact")
    x, ref = np.asarray(a, dtype=np.float64), np.asarray(reference, dtype=np.float64)
    if x.shape != ref.shape:
        raise ValueError(f"shapes differ: {x.shape} and {ref.shape}")
    norm = np.linalg.norm(ref)
    if norm == 0:
        raise ValueError("the reference is zero everywhere")
    return float(np.linalg.norm(x - ref) / norm)
