"""Geometry: patch centres on regular, descending and Gaussian latitudes; periodic, symmetric distances."""

import numpy as np
import pytest

from gridvit.geometry import (
    EARTH_RADIUS_KM,
    Grid,
    great_circle_km,
    latitude_weights,
    length_scale,
    patch_centres,
    patch_distances,
)


def ersst_grid() -> Grid:
    """The ERSST v5 layout: 2°, latitude 88 -> -88 (descending), longitude 0 -> 358 (global)."""
    return Grid("sphere", np.arange(88.0, -89.0, -2.0), np.arange(0.0, 360.0, 2.0), periodic_x=True)


def gaussian_latitudes(n: int) -> np.ndarray:
    return np.rad2deg(np.arcsin(np.polynomial.legendre.leggauss(n)[0]))


def brute_force_centre(lat: np.ndarray, lon: np.ndarray, weights: np.ndarray) -> tuple[float, float]:
    """Area-weighted mean direction of the cells (lat[r], lon[c]), computed cell by cell."""
    total = np.zeros(3)
    for la, w in zip(np.deg2rad(lat), weights):
        for lo in np.deg2rad(lon):
            total += w * np.array([np.cos(la) * np.cos(lo), np.cos(la) * np.sin(lo), np.sin(la)])
    total /= np.linalg.norm(total)
    return float(np.rad2deg(np.arcsin(total[2]))), float(np.rad2deg(np.arctan2(total[1], total[0])))


def test_great_circle_known_distances():
    assert great_circle_km(0, 0, 90, 0) == pytest.approx(np.pi * EARTH_RADIUS_KM / 2)
    assert great_circle_km(0, 0, 0, 180) == pytest.approx(np.pi * EARTH_RADIUS_KM)
    assert great_circle_km(10, 0, 10, 360) == pytest.approx(0, abs=1e-9)
    assert great_circle_km(0, -1, 0, 1) == pytest.approx(great_circle_km(0, 359, 0, 1))


@pytest.mark.parametrize(
    "grid",
    [
        ersst_grid(),
        Grid("sphere", gaussian_latitudes(32), np.arange(64) * 5.625, periodic_x=True),
        Grid("plane", np.arange(33.0), np.arange(49.0), periodic_y=True, periodic_x=True),
        Grid("plane", np.arange(33.0), np.arange(49.0)),
    ],
)
def test_distances_symmetric_zero_diagonal_and_cached(grid):
    d = patch_distances(grid, 4)
    n = np.prod([-(-s // 4) for s in grid.shape])
    assert d.shape == (n, n)
    np.testing.assert_array_equal(d, d.T)
    np.testing.assert_array_equal(np.diag(d), 0.0)
    assert (d[~np.eye(n, dtype=bool)] > 0).all()
    assert patch_distances(grid, 4) is d  # computed once per grid


def test_sphere_longitude_wraps_lon_0_and_358_are_neighbours():
    grid = Grid("sphere", np.array([-2.0, 0.0, 2.0]), np.arange(0.0, 360.0, 2.0), periodic_x=True)
    d = patch_distances(grid, 1)  # one patch per cell: lon 0 and lon 358 are both patches
    w = grid.shape[1]
    row = w  # the equator row, lon 0
    d_wrap = d[row, row + w - 1]  # lon 0 -> lon 358
    assert d_wrap == pytest.approx(d[row, row + 1], rel=1e-9)  # lon 0 -> lon 2
    assert d_wrap == pytest.approx(2 * np.pi * EARTH_RADIUS_KM / 180, rel=1e-9)
    assert d_wrap == pytest.approx(np.sort(d[row])[1], rel=1e-9)  # among the nearest patches
    assert d[row, row + w // 2] == pytest.approx(np.pi * EARTH_RADIUS_KM)  # lon 180: antipodal


def test_sphere_patches_wrap_across_the_dateline():
    grid = ersst_grid()
    d = patch_distances(grid, 4)  # 23 × 45 patches
    nw = 45
    row = 11 * nw
    assert d[row, row + nw - 1] == pytest.approx(d[row, row + 1], rel=1e-9)


def test_periodic_plane_first_and_last_patch_in_a_row_are_neighbours():
    grid = Grid("plane", np.arange(32.0), np.arange(64.0), periodic_y=True, periodic_x=True)
    d = patch_distances(grid, 4)  # 8 × 16 patches
    assert d[0, 15] == pytest.approx(4.0)  # first and last in row 0
    assert d[0, 1] == pytest.approx(4.0)
    assert d[0, 7 * 16] == pytest.approx(4.0)  # first and last in column 0
    bounded = patch_distances(Grid("plane", np.arange(32.0), np.arange(64.0)), 4)
    assert bounded[0, 15] == pytest.approx(60.0)


def test_plane_centres_in_grid_units_with_edge_and_wrap_padding():
    bounded = patch_centres(Grid("plane", np.arange(10.0), np.arange(10.0)), 4)
    assert sorted(set(bounded[:, 0])) == [1.5, 5.5, 8.5]  # last patch covers cells 8, 9 only
    wrapped = patch_centres(Grid("plane", np.arange(10.0), np.arange(10.0), periodic_x=True), 4)
    assert sorted(set(wrapped[:, 1])) == [1.5, 5.5, 9.5]  # cells 8, 9, 0, 1 continue the axis


def test_patch_centres_descending_latitudes_mirror_ascending_ones():
    lat = np.linspace(-87.5, 87.5, 36)
    lon = np.arange(72) * 5.0
    up = patch_centres(Grid("sphere", lat, lon, periodic_x=True), 4).reshape(9, 18, 2)
    down = patch_centres(Grid("sphere", lat[::-1], lon, periodic_x=True), 4).reshape(9, 18, 2)
    np.testing.assert_allclose(down, up[::-1], atol=1e-10)


@pytest.mark.parametrize("lat", [gaussian_latitudes(24), gaussian_latitudes(24)[::-1], np.arange(88.0, -89.0, -2.0)])
def test_patch_centres_are_area_weighted_mean_directions(lat):
    lon = np.arange(0.0, 360.0, 7.5)
    grid = Grid("sphere", lat, lon, periodic_x=True)
    centres = patch_centres(grid, 4)
    nw = -(-lon.size // 4)
    w = latitude_weights(lat)
    for i, j in [(0, 0), (1, 3), (2, nw - 1), (len(centres) // nw - 1, 5)]:
        rows = np.unique(np.minimum(np.arange(4 * i, 4 * i + 4), lat.size - 1))
        cols = np.arange(4 * j, 4 * j + 4) % lon.size
        expected = brute_force_centre(lat[rows], lon[cols], w[rows])
        got = centres[i * nw + j]
        assert got[0] == pytest.approx(expected[0], abs=1e-9)
        assert np.cos(np.deg2rad(got[1] - expected[1])) == pytest.approx(1.0, abs=1e-12)


def test_area_weighting_pulls_centres_towards_the_equator():
    lat = np.array([0.0, 30.0, 60.0, 85.0])  # irregular: the low-latitude cells are larger
    lon = np.arange(0.0, 360.0, 0.25)
    centre_lat = patch_centres(Grid("sphere", lat, lon, periodic_x=True), 4)[0, 0]
    unweighted = brute_force_centre(lat, lon[:4], np.ones(4))[0]
    assert 0.0 < centre_lat < unweighted - 5.0
    assert centre_lat == pytest.approx(brute_force_centre(lat, lon[:4], latitude_weights(lat))[0], abs=1e-9)


def test_length_scale_is_median_neighbour_spacing():
    d = patch_distances(Grid("plane", np.arange(32.0), np.arange(64.0), periodic_x=True), 4)
    assert length_scale(d) == pytest.approx(4.0)
    assert length_scale(np.zeros((1, 1))) == 1.0


def test_grid_validation():
    with pytest.raises(ValueError, match="kind"):
        Grid("torus", np.arange(3.0), np.arange(3.0))
    with pytest.raises(ValueError, match="latitude"):
        Grid("sphere", np.array([0.0, 95.0]), np.arange(3.0))
    with pytest.raises(ValueError, match="periodic in latitude"):
        Grid("sphere", np.arange(3.0), np.arange(3.0), periodic_y=True)
    with pytest.raises(ValueError, match="larger than the grid"):
        patch_centres(Grid("plane", np.arange(3.0), np.arange(8.0)), 4)
