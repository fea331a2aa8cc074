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

    def same_geometry(self, other: "Grid") -> bool:
        """True when both grids have the same kind, shape, coordinates and periodicity."""
        return self.key == other.key


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
    """For each patch along an axis of length n, the positions it covers (unwrapped if periodic)."""
    from gridvit.patches import patch_grid_shape

    count = patch_grid_shape((n, n), patch)[0]
    out = []
    for k in range(count):
        pos = np.arange(k * patch, (k + 1) * patch)
        out.append(pos if periodic else np.unique(np.minimum(pos, n - 1)))  # edge padding adds no cell
    return out


def patch_centres(grid: Grid, patch: int) -> np.ndarray:
    """Patch centres (N, 2), patches row-major as in :func:`gridvit.patches.patchify`.

    On a sphere: (lat, lon) in degrees of the area-weighted mean direction of the patch's cells (correct for
    irregular latitudes and either order). On a plane: (y, x) in grid units (index space; along a periodic
    axis the centre of a wrapped patch may exceed the axis length — distances wrap it).
    """
    rows = _patch_cells(grid.shape[0], patch, grid.periodic_y)
    cols = _patch_cells(grid.shape[1], patch, grid.periodic_x)
    if grid.kind == "plane":
        cy = np.array([r.mean() for r in rows])
        cx = np.array([c.mean() for c in cols])
        yy, xx = np.meshgrid(cy, cx, indexing="ij")
        return np.stack([yy.ravel(), xx.ravel()], axis=1)
    lat = np.deg2rad(grid.y.astype(np.float64))
    lon = np.deg2rad(grid.x.astype(np.float64))
    w = latitude_weights(grid.y)
    h, wd = grid.shape
    out = np.empty((len(rows) * len(cols), 2))
    for i, r in enumerate(rows):
        r = r % h
        for j, c in enumerate(cols):
            c = c % wd
            la, lo = np.meshgrid(lat[r], lon[c], indexing="ij")
            wt = np.broadcast_to(w[r][:, None], la.shape)
            v = np.stack([np.cos(la) * np.cos(lo), np.cos(la) * np.sin(lo), np.sin(la)])  # (3, p, q)
            m = (v * wt).sum(axis=(1, 2))
            m /= np.linalg.norm(m)
            out[i * len(cols) + j] = np.rad2deg([np.arcsin(np.clip(m[2], -1, 1)), np.arctan2(m[1], m[0])])
    return out


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
