"""WeatherBench 2 metrics, PDEBench nRMSE, calendar forcings, climatology in model files."""

import numpy as np
import pandas as pd
import pytest
import xarray as xr

import gridvit
from gridvit.data.timeaxis import time_axis
from gridvit.examples import toy_climate
from gridvit.forcings import calendar_channels, calendar_names
from gridvit.geometry import Grid
from gridvit.metrics import acc, nrmse, rmse


def test_rmse_is_sqrt_of_mean_weighted_mse():
    rng = np.random.default_rng(0)
    pred, truth = rng.standard_normal((2, 3, 4, 5))
    w = rng.uniform(0.5, 1.5, (4, 5))
    per = [(w * (pred[i] - truth[i]) ** 2).sum() / w.sum() for i in range(3)]
    assert rmse(pred, truth, weights=w) == pytest.approx(np.sqrt(np.mean(per)))
    truth[0, 0, 0] = np.nan  # NaN cells are excluded, not propagated
    assert np.isfinite(rmse(pred, truth, weights=w))


def test_acc_uncentred_and_bounded():
    rng = np.random.default_rng(1)
    clim = rng.standard_normal((4, 5))
    truth = clim + rng.standard_normal((2, 4, 5))
    assert acc(truth, truth, clim) == pytest.approx(1.0)
    assert acc(2 * truth - clim, truth, clim) == pytest.approx(1.0)  # scale-free
    assert acc(2 * clim - truth, truth, clim) == pytest.approx(-1.0)


def test_nrmse_pdebench():
    ref = np.ones((2, 1, 4, 4))
    assert nrmse(1.1 * ref, ref) == pytest.approx(0.1)
    with pytest.raises(ValueError, match="equal"):
        nrmse(ref[0], ref)


def test_calendar_channels_use_local_solar_time_on_the_sphere():
    grid = Grid("sphere", np.array([10.0, -10.0]), np.array([0.0, 90.0, 180.0, 270.0]), periodic_x=True)
    times = pd.date_range("2001-06-21T06", periods=2, freq="6h").values
    axis = time_axis(times)
    assert calendar_names(axis) == ("sin_hour", "cos_hour", "sin_doy", "cos_doy")
    f = calendar_channels(times, axis, grid)  # (B, F, H, W)
    assert f.shape == (2, 4, 2, 4)
    np.testing.assert_allclose(f[0, 0, 0], np.sin(2 * np.pi * (6 + np.array([0, 6, 12, 18])) / 24), atol=1e-6)
    assert (f[:, 2:] == f[:, 2:, :1, :1]).all()  # day-of-year channels are uniform in space
    monthly = time_axis(pd.date_range("2000-01-01", periods=4, freq="MS").values)
    assert calendar_names(monthly) == ("sin_doy", "cos_doy")
    assert calendar_names(time_axis(np.arange(3.0))) == ()


def test_climatology_roundtrips_through_model_files(tmp_path):
    ds = toy_climate(n_time=24, shape=(8, 16))
    m = gridvit.train(ds, epochs=1, dim=16, depth=1, heads=2, patch=4, progress=False)
    again = gridvit.load(m.save(tmp_path / "m.gvt"))
    np.testing.assert_array_equal(again.normaliser.clim, m.normaliser.clim)
    xr.testing.assert_identical(again.rollout(ds, steps=2), m.rollout(ds, steps=2))
