"""Where things are: a query point or region on the grid, the patches that hold it, and patch values as maps.

Points and regions are given in the grid's own coordinates, keyed by dim name or role: ``{"lat": -5,
"lon": 190}`` or ``{"y": 0.3, "x": 0.7}``, or a ``(y, x)`` pair. Longitudes (and periodic plane axes) wrap.
A cell belongs to the patch ``(row // P, col // P)`` for painting maps (a cell that a periodic axis's last
patch wraps round to is painted with its first patch); patch weights count every cell a patch covers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import xarray as xr

from gridvit.data import DataSpec
from gridvit.geometry import Grid
from gridvit.patches import check_patch, patch_grid_shape, source_index


def _number(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a real number, got {value!r} ({type(value).__name__})")
    if not np.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    return float(value)


def _by_axis(spec: DataSpec, value: Any, what: str) -> dict[int, Any]:
    """``{axis: value}`` (0 = y, 1 = x) from a mapping keyed by dim name or role, or a (y, x) pair."""
    names = spec.grid_dims
    if isinstance(value, Mapping):
        out = {}
        for key, v in value.items():
            if key in (names[0], "y"):
                out[0] = v
            elif key in (names[1], "x"):
                out[1] = v
            else:
                raise ValueError(f"{what} key {key!r} is not a spatial dim; use {names[0]!r}/{names[1]!r} "
                                 "(or 'y'/'x')")
        return out
    if isinstance(value, Sequence) and not isinstance(value, str) and len(value) == 2:
        return {0: value[0], 1: value[1]}
    raise TypeError(f"{what} must be a mapping like {{{names[0]!r}: ..., {names[1]!r}: ...}} or a "
                    f"({names[0]}, {names[1]}) pair, got {value!r}")


def _axis_offsets(grid: Grid, axis: int, value: float) -> np.ndarray:
    """Signed offsets (n,) from ``value`` to each coordinate along ``axis``, wrapped where the axis is periodic."""
    coord = (grid.y if axis == 0 else grid.x).astype(np.float64)
    delta = coord - value
    if axis == 1 and grid.kind == "sphere":
        return (delta + 180.0) % 360.0 - 180.0
    if grid.periodic[axis] and coord.size > 1:
        span = abs(coord[-1] - coord[0]) * coord.size / (coord.size - 1)
        return (delta + span / 2) % span - span / 2
    return delta


def _spacing(coord: np.ndarray) -> float:
    return float(np.median(np.abs(np.diff(coord)))) if coord.size > 1 else np.inf


def locate(spec: DataSpec, at: Any) -> tuple[int, int]:
    """The (row, col) of the grid cell nearest to the point ``at``.

    Raises:
        TypeError: ``at`` is not a mapping or pair of numbers.
        ValueError: a coordinate is missing, or lies outside the grid (beyond half a cell from its edge
            along a bounded axis).
    """
    grid, names = spec.grid, spec.grid_dims
    point = _by_axis(spec, at, "at")
    if set(point) != {0, 1}:
        raise ValueError(f"at={at!r} must give both {names[0]!r} and {names[1]!r}")
    index = []
    for axis in (0, 1):
        value = _number(f"at[{names[axis]!r}]", point[axis])
        coord = (grid.y if axis == 0 else grid.x).astype(np.float64)
        offsets = np.abs(_axis_offsets(grid, axis, value))
        if not grid.periodic[axis] and offsets.min() > 0.5 * _spacing(coord) + 1e-9:
            raise ValueError(f"at: {names[axis]}={value} lies outside the grid ({names[axis]} from "
                             f"{coord.min():g} to {coord.max():g})")
        index.append(int(offsets.argmin()))
    return index[0], index[1]


def region_mask(spec: DataSpec, region: Any) -> np.ndarray:
    """(H, W) bool mask of the cells inside ``region``: ``{dim: (lo, hi)}`` bounds, inclusive.

    A dim left out spans the whole axis. On a sphere longitudes are taken modulo 360° and a box may cross
    0° (``{"lon": (350, 10)}`` or ``(-10, 10)``); Niño-3.4 is ``{"lat": (-5, 5), "lon": (-170, -120)}``.

    Raises:
        ValueError: bounds that are not (lo, hi) numbers, or a region holding no cell.
    """
    grid, names = spec.grid, spec.grid_dims
    if not isinstance(region, Mapping):
        raise TypeError(f"region must be a mapping like {{{names[0]!r}: (lo, hi), {names[1]!r}: (lo, hi)}}, "
                        f"got {region!r}")
    bounds = _by_axis(spec, region, "region")
    masks = []
    for axis in (0, 1):
        coord = (grid.y if axis == 0 else grid.x).astype(np.float64)
        if axis not in bounds:
            masks.append(np.ones(coord.size, dtype=bool))
            continue
        b = bounds[axis]
        if not isinstance(b, Sequence) or isinstance(b, str) or len(b) != 2:
            raise ValueError(f"region[{names[axis]!r}] must be a (lo, hi) pair, got {b!r}")
        lo, hi = (_number(f"region[{names[axis]!r}]", v) for v in b)
        if axis == 1 and grid.kind == "sphere":
            c, lo, hi = coord % 360.0, lo % 360.0, hi % 360.0
            inside = (c >= lo) & (c <= hi) if lo <= hi else (c >= lo) | (c <= hi)
        else:
            inside = (coord >= min(lo, hi)) & (coord <= max(lo, hi))
        masks.append(inside)
    mask = masks[0][:, None] & masks[1][None, :]  # (H, W)
    if not mask.any():
        raise ValueError(f"region {dict(region)} holds no grid cell ({names[0]} from {grid.y.min():g} to "
                         f"{grid.y.max():g}, {names[1]} from {grid.x.min():g} to {grid.x.max():g})")
    return mask


def _membership(n: int, patch: int, periodic: bool) -> np.ndarray:
    """(patches, n) 0/1 matrix: which cells along an axis each patch covers (padding adds no new cell)."""
    count = patch_grid_shape((n, n), patch)[0]
    src = source_index(n, patch, periodic).reshape(count, patch)  # (patches, P)
    out = np.zeros((count, n))
    np.put_along_axis(out, src, 1.0, axis=1)
    return out


def patch_sums(grid: Grid, patch: int, cells: np.ndarray) -> np.ndarray:
    """Sum of a cell field (H, W) over the cells each patch covers -> (N,), patches row-major."""
    check_patch(grid.shape, patch)
    rows = _membership(grid.shape[0], patch, grid.periodic_y)  # (nh, H)
    cols = _membership(grid.shape[1], patch, grid.periodic_x)  # (nw, W)
    return (rows @ np.asarray(cells, dtype=np.float64) @ cols.T).reshape(-1)  # (nh, nw) -> (N,)


def cell_patch(grid: Grid, patch: int) -> np.ndarray:
    """(H, W) int: the index of the patch each cell is painted with (row-major ``(r // P) * nw + c // P``)."""
    h, w = grid.shape
    nw = patch_grid_shape((h, w), patch)[1]
    return (np.arange(h)[:, None] // patch) * nw + np.arange(w)[None, :] // patch


def distance_units(grid: Grid) -> str:
    """``"km"`` on a sphere, ``"grid units"`` on a plane (the units of :func:`gridvit.geometry.patch_distances`)."""
    return "km" if grid.kind == "sphere" else "grid units"


def spatial_coords(spec: DataSpec) -> dict[str, Any]:
    """The (y, x) coordinates of ``spec``'s grid with their attrs, for building DataArrays."""
    out = {}
    for name, values in zip(spec.grid_dims, (spec.grid.y, spec.grid.x)):
        out[name] = (name, np.asarray(values), dict(spec.coords.get(name, {}).get("attrs", {})))
    return out


def patch_map(spec: DataSpec, patch: int, values: np.ndarray, dims: tuple[str, ...] = (),
              coords: Mapping[str, Any] | None = None, attrs: Mapping[str, Any] | None = None) -> xr.DataArray:
    """Paint per-patch values (..., N) onto the grid as a DataArray (..., y, x)."""
    values = np.asarray(values)
    grid_values = values[..., cell_patch(spec.grid, patch)]  # (..., H, W)
    return xr.DataArray(grid_values, dims=(*dims, *spec.grid_dims),
                        coords={**(coords or {}), **spatial_coords(spec)}, attrs=dict(attrs or {}))
