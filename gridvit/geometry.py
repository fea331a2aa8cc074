"""Grid geometry: the horizontal grid, cell area weights, patch centres and pairwise patch distances.

Two geometries:

- ``"sphere"``: latitude/longitude in degrees. Cell area weights follow WeatherBench 2: the area of a cell
  is ``sin(upper) - sin(lower)`` of its latitude bounds (midpoints between neighbouring latitudes, the
  outer bounds half a spacing beyond the first/last latitude, capped at ±90°), normalised to mean 1
  (≈ cos(lat) on regular grids). Distances between patches are great-circle distances in km
  (R = 6371.0 km); longitude wraps by construction.
- ``"plane"``: y/x in any units. Distances are Euclidean in *grid units* (index spacing), wrapping along
  each periodic axis.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np

EARTH_RADIUS_KM = 6371.0


@dataclass(frozen=True, eq=False)
class Grid:
    """A horizontal grid of shape (H, W).

    Args:
        kind: ``"sphere"`` (y = latitude, x = longitude, degrees) or ``"plane"``.
        y: (H,) coordinate values along the first spatial dim (any order; descending latitude is kept).
        x: (W,) coordinate values along the second spatial dim.
        periodic_y: whether the grid wraps along y (planes only; never on a sphere).
        periodic_x: whether the grid wraps along x (a global longitude circle, or a periodic plane).
    """

    kind: str
    y: np.ndarray
    x: np.ndarray
    periodic_y: bool = False
    periodic_x: bool = False
    _cache: dict = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.kind not in ("sphere", "plane"):
            raise ValueError(f"grid kind must be 'sphere' or 'plane', got {self.kind!r}")
        object.__setattr__(self, "y", np.asarray(self.y))
        object.__setattr__(self, "x", np.asarray(self.x))
        if self.kind == "sphere":
            lat = self.y.astype(np.float64)
            if not np.all(np.isfinite(lat)) or np.any(np.abs(lat) > 90.0):
                bad = lat[~np.isfinite(lat) | (np.abs(lat) > 90.0)]
                raise ValueError(
                    f"latitude values must lie in [-90, 90] degrees; found {bad[:5].tolist()}"
                )
            if self.periodic_y:
                raise ValueError("a lat-lon grid cannot be periodic in latitude")

    @property
    def shape(self) -> tuple[int, int]:
        """(H, W)."""
        return (self.y.size, self.x.size)

    @property
    def periodic(self) -> tuple[bool, bool]:
        """(periodic along y, periodic along x)."""
        return (bool(self.periodic_y), bool(self.periodic_x))

    @cached_property
    def key(self) -> tuple:
        """A hashable identity of the grid, used to cache attention biases."""
        return (self.kind, self.y.tobytes(), self.x.tobytes(), self.periodic)

    def area_weights(self) -> np.ndarray:
        """Cell area weights (H, W), mean 1: WeatherBench 2 latitude weights on a sphere, ones on a plane."""
        h, w = self.shape
        if self.kind == "plane":
            return np.ones((h, w))
        return np.broadcast_to(latitude_weights(self.y)[:, None], (h, w)).copy()

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable description (saved with models)."""
        return {
            "kind": self.kind,
            "y": self.y.tolist(),
            "x": self.x.tolist(),
            "y_dtype": str(self.y.dtype),
            "x_dtype": str(self.x.dtype),
            "periodic_y": bool(self.periodic_y),
            "periodic_x": bool(self.periodic_x),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Grid":
        """Inverse of :meth:`to_dict`."""
        return cls(
            kind=d["kind"],
            y=np.asarray(d["y"], dtype=d.get("y_dtype", "float64")),
            x=np.asarray(d["x"], dtype=d.get("x_dtype", "float64")),
            periodic_y=bool(d["periodic_y"]),
            periodic_x=bool(d["periodic_x"]),
        )


def latitude_bounds(lat: np.ndarray) -> np.ndarray:
    """Cell bounds (H+1,) in degrees for cell-centred latitudes in any monotonic order, capped at ±90°."""
    lat = np.asarray(lat, dtype=np.float64)
    if lat.size == 1:
        return np.clip(lat + np.array([-0.5, 0.5]), -90.0, 90.0)
    mid = 0.5 * (lat[1:] + lat[:-1])
    first = lat[0] - 0.5 * (lat[1] - lat[0])
    last = lat[-1] + 0.5 * (lat[-1] - lat[-2])
    return np.clip(np.concatenate([[first], mid, [last]]), -90.0, 90.0)


def latitude_weights(lat: np.ndarray) -> np.ndarray:
    """WeatherBench 2 area weights (H,) for latitudes in degrees: ``|sin(upper) − sin(lower)|``, mean 1."""
    b = np.deg2rad(latitude_bounds(lat))
    w = np.abs(np.sin(b[1:]) - np.sin(b[:-1]))
    return w / w.mean()


def is_global_longitude(lon: np.ndarray, *, rtol: float = 1e-3) -> bool:
    """True when evenly spaced longitudes (degrees) close the full circle: W · Δλ = 360°."""
    lon = np.asarray(lon, dtype=np.float64)
    if lon.size < 3:
        return False
    step = np.diff(lon) % 360.0
    return bool(np.allclose(step, step[0], rtol=rtol, atol=1e-6) and abs(lon.size * step[0] - 360.0) < rtol * 360.0)


def _patch_cells(n: int, patch: int, periodic: bool) -> list[np.ndarray]:
    """For each patch along an axis of length n, the cell indices it covers (in ``range(n)``).

    Matches :func:`gridvit.patches.pad`: along a periodic axis the last patch wraps round to the first
    cells; along a bounded axis edge padding repeats the last cell, which adds no new cell.
    """
    from gridvit.patches import patch_grid_shape

    count = patch_grid_shape((n, n), patch)[0]
    out = []
    for k in range(count):
        pos = np.arange(k * patch, (k + 1) * patch)
        out.append(pos % n if periodic else np.unique(np.minimum(pos, n - 1)))
    return out


def _patch_sums(values: np.ndarray, cells: list[np.ndarray]) -> np.ndarray:
    """Sum of ``values`` (n, k) over each patch's cells along the axis -> (patches, k)."""
    return np.stack([values[c].sum(axis=0) for c in cells])


def _plane_centres(cells: list[np.ndarray], patch: int, n: int) -> np.ndarray:
    """Index-space centre of each patch; a patch that wraps is centred past the end of the axis."""
    return np.array([(k * patch + (c - k * patch) % n).mean() for k, c in enumerate(cells)])


def patch_centres(grid: Grid, patch: int) -> np.ndarray:
    """Patch centres (N, 2), patches row-major as in :func:`gridvit.patches.patchify`.

    On a sphere: (lat, lon) in degrees of the area-weighted mean direction of the patch's cells (correct for
    irregular latitudes and either order); longitudes in (-180, 180]. On a plane: (y, x) in grid units
    (index space; along a periodic axis the centre of a wrapped patch may exceed the axis length —
    distances wrap it).
    """
    from gridvit.patches import check_patch

    check_patch(grid.shape, patch)
    h, w = grid.shape
    rows = _patch_cells(h, patch, grid.periodic_y)
    cols = _patch_cells(w, patch, grid.periodic_x)
    if grid.kind == "plane":
        cy = _plane_centres(rows, patch, h)
        cx = _plane_centres(cols, patch, w)
        yy, xx = np.meshgrid(cy, cx, indexing="ij")
        return np.stack([yy.ravel(), xx.ravel()], axis=1)
    # The weighted sum of unit vectors over a patch's cells separates into a latitude factor and a
    # longitude factor: sum_{r,c} w_r (cos φ_r cos λ_c, cos φ_r sin λ_c, sin φ_r).
    lat = np.deg2rad(grid.y.astype(np.float64))
    lon = np.deg2rad(grid.x.astype(np.float64))
    wlat = latitude_weights(grid.y)
    ry = _patch_sums(np.stack([wlat * np.cos(lat), wlat * np.sin(lat)], axis=1), rows)  # (nh, 2)
    rx = _patch_sums(np.stack([np.cos(lon), np.sin(lon), np.ones_like(lon)], axis=1), cols)  # (nw, 3)
    v = np.stack(
        [
            ry[:, None, 0] * rx[None, :, 0],
            ry[:, None, 0] * rx[None, :, 1],
            ry[:, None, 1] * rx[None, :, 2],
        ],
        axis=-1,
    ).reshape(-1, 3)  # (N, 3) unnormalised mean directions
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    return np.rad2deg(np.stack([np.arcsin(np.clip(v[:, 2], -1.0, 1.0)), np.arctan2(v[:, 1], v[:, 0])], axis=1))


def great_circle_km(lat1, lon1, lat2, lon2) -> np.ndarray:
    """Great-circle distance in km (haversine, R = 6371.0 km) between points given in degrees; broadcasts."""
    p1, p2 = np.deg2rad(lat1), np.deg2rad(lat2)
    dphi = p2 - p1
    dlam = np.deg2rad(lon2) - np.deg2rad(lon1)
    a = np.sin(dphi / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(dlam / 2) ** 2
    return 2.0 * EARTH_RADIUS_KM * np.arcsin(np.sqrt(np.clip(a, 0.0, 1.0)))


def patch_distances(grid: Grid, patch: int) -> np.ndarray:
    """Pairwise distances (N, N) between patch centres: km on a sphere, grid units on a plane.

    Symmetric with a zero diagonal. On a plane each periodic axis wraps (``min(d, L - d)``).
    """
    cache_key = ("distances", patch)
    if cache_key in grid._cache:
        return grid._cache[cache_key]
    c = patch_centres(grid, patch)
    if grid.kind == "sphere":
        d = great_circle_km(c[:, None, 0], c[:, None, 1], c[None, :, 0], c[None, :, 1])
    else:
        delta = np.abs(c[:, None, :] - c[None, :, :])  # (N, N, 2)
        for axis, (periodic, n) in enumerate(zip(grid.periodic, grid.shape)):
            if periodic:
                delta[..., axis] = np.minimum(delta[..., axis] % n, n - delta[..., axis] % n)
        d = np.sqrt((delta**2).sum(-1))
    d = 0.5 * (d + d.T)
    np.fill_diagonal(d, 0.0)
    d.setflags(write=False)
    grid._cache[cache_key] = d
    return d


def length_scale(distances: np.ndarray) -> float:
    """The grid's length scale L: the median distance from each patch to its nearest neighbour."""
    d = np.array(distances, dtype=np.float64)
    if d.shape[0] < 2:
        return 1.0
    np.fill_diagonal(d, np.inf)
    return float(np.median(d.min(axis=1)))


def patch_coordinates(grid: Grid, patch: int) -> tuple[np.ndarray, tuple[float | None, ...]]:
    """Per-patch coordinates from which :func:`patch_distances` follows, O(N) memory.

    Returns:
        ``(coords, periods)``. On a sphere: unit vectors (N, 3) of the patch centres, so that the
        great-circle distance is ``2 R asin(|u_i − u_j| / 2)`` (the haversine of :func:`great_circle_km`
        written with the chord), periods ``(None, None, None)``. On a plane: the centres (N, 2) in grid
        units (index space) and, per axis, the period (the axis length) when it wraps, else None.
    """
    c = patch_centres(grid, patch)  # (N, 2)
    if grid.kind == "plane":
        return c, tuple(float(n) if periodic else None for periodic, n in zip(grid.periodic, grid.shape))
    lat, lon = np.deg2rad(c[:, 0]), np.deg2rad(c[:, 1])
    xyz = np.stack([np.cos(lat) * np.cos(lon), np.cos(lat) * np.sin(lon), np.sin(lat)], axis=1)  # (N, 3)
    return xyz, (None, None, None)
