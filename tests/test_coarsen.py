"""gridvit.solvers.coarsen: block mean and spectral truncation, attributes kept, clear errors."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

import gridvit
from gridvit.data import describe
from gridvit.solvers import coarsen, simulate


@pytest.fixture(scope="module")
def fine() -> xr.Dataset:
    return simulate("burgers", shape=(16, 32), t_end=0.2, save_every=0.02, samples=2, seed=0)


def test_mean_is_the_block_average_and_keeps_attributes(fine):
    c = coarsen(fine, 2)
    assert c.sizes == {"sample": 2, "time": 11, "y": 8, "x": 16} and c.u.dtype == fine.u.dtype
    expected = fine.u.values.reshape(2, 11, 8, 2, 16, 2).mean(axis=(3, 5))
    np.testing.assert_allclose(c.u.values, expected, rtol=1e-6)
    np.testing.assert_allclose(c.x.values, (np.arange(16) + 0.5) / 16)  # the coarse cell centres
    for dim in ("x", "y"):
        assert c[dim].attrs == fine[dim].attrs and c[dim].attrs["periodic"] == 1 and "units" in c[dim].attrs
    assert c.attrs["pde"] == "burgers" and c.attrs["coarsen_factor"] == [2, 2]
    assert describe(c).grid.periodic == (True, True)


def test_spectral_is_exact_on_resolved_modes_and_drops_the_rest():
    n, f = 32, 4
    x = (np.arange(n) + 0.5) / n
    xc = (np.arange(n // f) + 0.5) / (n // f)
    low, high = np.sin(2 * np.pi * 3 * x), np.cos(2 * np.pi * 11 * x)  # 3 < n_c/2 = 4 <= 11
    ds = xr.Dataset({"u": (("y", "x"), np.tile(low + high, (4, 1)))},
                    coords={"y": ("y", np.arange(4.0), {"periodic": 1}), "x": ("x", x, {"periodic": 1, "units": "m"})})
    c = coarsen(ds, {"x": f}, method="spectral")
    np.testing.assert_allclose(c.u.values, np.tile(np.sin(2 * np.pi * 3 * xc), (4, 1)), atol=1e-12)
    np.testing.assert_allclose(c.x.values, xc)
    assert c.x.attrs == {"periodic": 1, "units": "m"} and c.sizes["y"] == 4


def test_both_methods_conserve_the_domain_mean(fine):
    for method in ("mean", "spectral"):
        c = coarsen(fine, 4, method=method)
        np.testing.assert_allclose(c.u.mean(("y", "x")), fine.u.mean(("y", "x")), atol=1e-5, err_msg=method)


def test_bad_arguments_are_refused(fine):
    with pytest.raises(ValueError, match="positive divisor of its length 32, got 3"):
        coarsen(fine, {"x": 3})
    with pytest.raises(ValueError, match="unknown method 'cubic'"):
        coarsen(fine, 2, method="cubic")
    with pytest.raises(TypeError, match="must be an int"):
        coarsen(fine, 2.0)
    with pytest.raises(ValueError, match="lacks the spatial dim"):
        coarsen(fine.rename(x="lon"), 2)
    walled = fine.assign_coords(x=fine.x.assign_attrs(periodic=0))
    with pytest.raises(ValueError, match=r"spectral truncation needs periodic axes; \['x'\] is not periodic"):
        coarsen(walled, 2, method="spectral")
    assert coarsen(walled, 2).x.attrs["periodic"] == 0


def test_coarse_output_trains_as_periodic(fine):
    m = gridvit.train(coarsen(fine, 2), epochs=1, history=1, dim=16, depth=1, heads=2, patch=4, batch_size=4,
                      progress=False)
    assert m.spec.grid.periodic == (True, True) and m.spec.grid.shape == (8, 16)
    assert np.isfinite(m.predict(coarsen(fine, 2).isel(time=slice(0, 3))).u.values).all()
