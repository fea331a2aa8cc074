"""Zero-shot resolution transfer: a surrogate's per-cell fields moved onto another grid of the same domain.

The network itself runs on any grid of its geometry (no absolute position embedding by default; the
distance bias is rebuilt for each grid's patch grid). What ties a trained surrogate to its grid are the
per-cell fields: the valid-cell mask, the climatology and the static input fields. :func:`on_grid` gives a
surrogate for another grid of the same kind, periodicity and extent (e.g. a model trained at 2° applied at
1°, a 32² PDE model on 64²), with those fields interpolated:

- **bilinear** (separable linear in y then x) between the old cell centres, wrapping around periodic axes
  (a global longitude circle, a periodic plane axis); beyond the outermost centres of a bounded axis, the
  nearest centre's value (the cells there lie within the old domain's edge cells);
- the climatology is interpolated from valid cells only (weights renormalised over valid neighbours);
- the **mask** is the bilinear interpolation of the old mask thresholded at 0.5: a new cell is valid when
  at least half of its interpolation weight falls on valid old cells: a new cell whose centre lies inside
  a masked old cell is masked, one on the edge between a masked and a valid old cell is valid.

Channel means, standard deviations and divergence bounds are per channel and carry over unchanged.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

import numpy as np

from gridvit.data import DataSpec, Normaliser
from gridvit.geometry import Grid
from gridvit.patches import check_patch

if TYPE_CHECKING:
    from gridvit.surrogate import Surrogate

EXTENT_RTOL = 0.01  # domains agree when their bounds differ by under 1 % of the extent


def on_grid(sur: Surrogate, spec: DataSpec) -> Surrogate:
    """``sur`` for the grid of ``spec`` (the data's layout), sharing its network; ``sur`` itself when the
    grids already match.

    Raises:
        ValueError: another geometry, periodicity or extent, a learned correction (its scheme is built for
            the training grid), or a grid smaller than one patch.
    """
    from gridvit.surrogate import Surrogate, _grid_difference

    if not _grid_difference(spec, sur.spec):
        return sur
    old, new = sur.spec.grid, spec.grid
    if old.kind != new.kind or old.periodic != new.periodic:
        raise ValueError(f"regrid=True needs a grid of the same geometry: the data's is a {new.kind} grid periodic "
                         f"(y, x) {new.periodic}, the model's a {old.kind} grid periodic {old.periodic}")
    _check_extent("y", old.y, new.y)
    if not (old.kind == "sphere" and old.periodic_x):  # a global longitude circle is the whole circle at any grid
        _check_extent("x", old.x, new.x)
    if sur.solver is not None:
        raise ValueError("regrid=True is not available for a learned correction: its classical scheme is built "
                         "for the training grid's spacing; simulate or regrid the data to the model's grid")
    if sur.model.cell_linear is not None:
        raise ValueError("regrid=True is not available for a model with a per-cell linear base (linear_base=True): "
                         "its regressions are fitted per cell of the training grid")
    try:
        check_patch(new.shape, sur.model.cfg.patch)
    except ValueError as err:
        raise ValueError(f"the data's grid {new.shape} is too small for the model: {err}") from None
    mapping = [Interpolator(old.y, new.y, old.periodic_y, 0), Interpolator(old.x, new.x, old.periodic_x, 1,
                                                                           sphere=old.kind == "sphere")]
    d = sur.spec.dims
    coords = {**sur.spec.coords, d.y: spec.coords[d.y], d.x: spec.coords[d.x]}
    target = dataclasses.replace(sur.spec, grid=Grid(new.kind, new.y, new.x, periodic_y=new.periodic_y,
                                                     periodic_x=new.periodic_x), coords=coords)
    static = None if sur.static is None else _apply(mapping, sur.static.numpy()).astype(np.float32)
    return Surrogate(sur.model, config=sur.config, spec=target, normaliser=_normaliser(sur.normaliser, mapping),
                     static=static, static_names=sur.static_names, forcing_names=sur.forcing_names,
                     history=sur.history)


def _check_extent(role: str, a: np.ndarray, b: np.ndarray) -> None:
    """Refuse a ``b`` axis (cell centres) whose domain bounds differ from ``a``'s by over EXTENT_RTOL."""
    lo_a, hi_a = _bounds(a)
    lo_b, hi_b = _bounds(b)
    tol = EXTENT_RTOL * (hi_a - lo_a)
    if abs(lo_a - lo_b) > tol or abs(hi_a - hi_b) > tol:
        raise ValueError(f"regrid=True needs the same extent: the data's {role} cells span [{lo_b:g}, {hi_b:g}], the "
                         f"model's [{lo_a:g}, {hi_a:g}]; select the model's domain first")


def _bounds(centres: np.ndarray) -> tuple[float, float]:
    """The domain an axis of cell centres covers: half a spacing beyond the outermost centres."""
    v = np.sort(np.asarray(centres, np.float64))
    half = (v[-1] - v[0]) / (len(v) - 1) / 2 if len(v) > 1 else 0.5
    return float(v[0] - half), float(v[-1] + half)


class Interpolator:
    """Linear interpolation along one axis of an array: ``new[j] = (1 - w_j)·old[i0_j] + w_j·old[i1_j]``.

    Args:
        old, new: cell centres (any monotonic order). periodic: wrap around (period: 360° on a sphere's
            longitude, else the axis length × its mean spacing). axis: which axis of (…, H, W) arrays,
            counted from the last two (0: y, 1: x).
    """

    def __init__(self, old: np.ndarray, new: np.ndarray, periodic: bool, axis: int, *, sphere: bool = False):
        old, new = np.asarray(old, np.float64), np.asarray(new, np.float64)
        n, order = len(old), np.argsort(old)
        xs = old[order]
        self.axis = axis
        if periodic:
            period = 360.0 if sphere else n * (xs[-1] - xs[0]) / (n - 1)
            xs = np.append(xs, xs[0] + period)
            q = xs[0] + (new - xs[0]) % period
            i1 = np.clip(np.searchsorted(xs, q, side="right"), 1, n)
            w = (q - xs[i1 - 1]) / (xs[i1] - xs[i1 - 1])
            self.i0, self.i1 = order[(i1 - 1) % n], order[i1 % n]
        else:
            i1 = np.clip(np.searchsorted(xs, new, side="right"), 1, n - 1) if n > 1 else np.zeros(len(new), int)
            span = xs[i1] - xs[i1 - 1] if n > 1 else np.ones(len(new))
            w = np.clip((new - xs[i1 - 1]) / np.where(span == 0, 1, span), 0.0, 1.0)  # nearest beyond the ends
            self.i0, self.i1 = order[i1 - 1], order[i1]
        self.w = w

    def __call__(self, a: np.ndarray) -> np.ndarray:
        ax = a.ndim - 2 + self.axis
        shape = [1] * a.ndim
        shape[ax] = len(self.w)
        w = self.w.reshape(shape)
        return (1.0 - w) * np.take(a, self.i0, axis=ax) + w * np.take(a, self.i1, axis=ax)


def _apply(mapping: list[Interpolator], a: np.ndarray) -> np.ndarray:
    """Bilinear interpolation of (…, H, W) ``a`` onto the new grid: y, then x."""
    for interp in mapping:
        a = interp(np.asarray(a, np.float64))
    return a


def _normaliser(norm: Normaliser, mapping: list[Interpolator]) -> Normaliser:
    """The statistics on the new grid: mask thresholded at 0.5, climatology from valid cells only."""
    share = _apply(mapping, norm.valid.astype(np.float64))  # (C, H', W')
    valid = share >= 0.5
    clim = None
    if norm.clim is not None:
        known = np.where(norm.valid, np.nan_to_num(norm.clim), 0.0)  # (G, C, H, W)
        weight = np.maximum(share, 1e-12)
        clim = np.where(share > 0, _apply(mapping, known) / weight, norm.mean[:, None, None])
        clim = clim.astype(norm.clim.dtype)
    return Normaliser(norm.mean, norm.std, valid, clim, norm.clim_by, norm.zmax)
