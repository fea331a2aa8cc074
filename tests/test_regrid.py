"""Zero-shot resolution transfer: Surrogate.predict/rollout(ds, regrid=True) on a finer grid of the same domain."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

import gridvit
from gridvit.examples import toy_climate
from gridvit.regrid import Interpolator
from gridvit.solvers import coarsen, simulate

TINY = dict(dim=16, depth=1, heads=2, patch=4, batch_size=4, progress=False)


@pytest.fixture(scope="module")
def masked_pair():
    """Toy climate on 16×32 and 32×64 (same global domain), "land" on the same region of both."""
    coarse, fine = toy_climate(n_time=30, shape=(16, 32), seed=2), toy_climate(n_time=30, shape=(32, 64), seed=2)
    coarse["t2m"][:, 4:8, 10:20] = np.nan  # lat 45°…0°, lon 106.875°…219.375° (cell bounds)
    fine["t2m"][:, 8:16, 20:39] = np.nan  # the fine cells whose centres lie inside it (cols 19, 39 sit on its edges)
    return coarse, fine


@pytest.fixture(scope="module")
def model(masked_pair):
    return gridvit.train(masked_pair[0], epochs=1, **TINY)


def test_a_coarse_model_predicts_on_the_fine_grid_with_regrid(model, masked_pair):
    _, fine = masked_pair
    fc = model.rollout(fine, steps=2, regrid=True)
    assert fc.t2m.shape == (2, 32, 64)
    xr.testing.assert_identical(fc.lat, fine.lat)
    xr.testing.assert_identical(fc.lon, fine.lon)
    land = np.isnan(fine.t2m.values[0])
    assert (np.isnan(fc.t2m.values) == land).all()  # the new grid's mask
    assert np.isfinite(fc.t2m.values[:, ~land]).all()
    assert float(np.abs(fc.t2m.isel(time=0) - fine.t2m.isel(time=-1)).max()) < 30  # a forecast, in kelvin
    one = model.predict(fine, regrid=True)
    xr.testing.assert_allclose(one, fc.isel(time=[0]))
    assert model.spec.grid.shape == (16, 32)  # the model itself is unchanged


def test_without_regrid_the_clear_error_stays(model, masked_pair):
    with pytest.raises(ValueError, match=r"differs from the one the model was trained on.*pass regrid=True"):
        model.predict(masked_pair[1])


def test_regrid_on_the_training_grid_changes_nothing(model, masked_pair):
    coarse, _ = masked_pair
    xr.testing.assert_identical(model.predict(coarse, regrid=True), model.predict(coarse))


def test_another_extent_is_refused(model, masked_pair):
    _, fine = masked_pair
    with pytest.raises(ValueError, match=r"needs the same extent: the data's y cells span \[0, 90\]"):
        model.predict(fine.isel(lat=slice(0, 16)), regrid=True)


def test_a_periodic_pde_model_runs_on_the_doubled_grid():
    fine = simulate("heat", shape=(32, 32), t_end=0.02, save_every=0.002, samples=4, seed=0)
    coarse = coarsen(fine, 2)
    m = gridvit.train(coarse, epochs=2, history=1, val_fraction=0.25, **TINY)
    fc = m.predict(fine.isel(time=slice(0, 5)), regrid=True)
    assert fc.u.shape == (4, 1, 32, 32) and np.isfinite(fc.u.values).all()
    xr.testing.assert_identical(fc.x, fine.x)
    err = float(np.sqrt(((fc.u.isel(time=0) - fine.u.isel(time=5)) ** 2).mean()))
    scale = float(np.sqrt((fine.u.isel(time=5) ** 2).mean()))
    assert err < 0.5 * scale


def test_bilinear_interpolation_wraps_periodic_axes():
    old = (np.arange(8) + 0.5) / 8
    new = (np.arange(16) + 0.5) / 16
    f = np.cos(2 * np.pi * old)
    wrapped = Interpolator(old, new, True, 1)(f[None, :])[0]
    clamped = Interpolator(old, new, False, 1)(f[None, :])[0]
    np.testing.assert_allclose(wrapped[0], 0.75 * f[0] + 0.25 * f[-1])  # between the last and first centres
    np.testing.assert_allclose(clamped[0], f[0])  # nearest beyond a bounded axis's outermost centre
    np.testing.assert_allclose(wrapped[1:-1], clamped[1:-1])
    lon_old, lon_new = np.arange(0, 360, 90.0), np.array([315.0, -45.0, 45.0])
    v = Interpolator(lon_old, lon_new, True, 1, sphere=True)(np.array([[0.0, 1.0, 2.0, 3.0]]))[0]
    np.testing.assert_allclose(v, [1.5, 1.5, 0.5])
