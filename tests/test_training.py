"""gridvit.train, Surrogate predict/rollout/save/load, checkpoints and resume, the CLI."""

import numpy as np
import pytest
import torch
import xarray as xr

import gridvit
from gridvit.checkpoint import load_checkpoint
from gridvit.examples import toy_climate
from gridvit.training import auto_patch

TINY = dict(dim=16, depth=1, heads=2, patch=4, batch_size=4, progress=False)


@pytest.fixture(scope="module")
def data() -> xr.Dataset:
    return toy_climate(n_time=40, shape=(16, 32), seed=2)


@pytest.fixture(scope="module")
def model(data):
    return gridvit.train(data.isel(time=slice(0, 30)), epochs=2, **TINY)


def _state(m):
    return {k: v.clone() for k, v in m.model.state_dict().items()}


def test_rollout_continues_time_and_keeps_coords_and_attrs(model, data):
    fc = model.rollout(data.isel(time=slice(0, 30)), steps=3)
    assert fc.t2m.dims == ("time", "lat", "lon") and fc.sizes["time"] == 3
    np.testing.assert_array_equal(fc.time.values, data.time.values[30:33])
    xr.testing.assert_identical(fc.lat, data.lat)
    xr.testing.assert_identical(fc.lon, data.lon)
    assert fc.t2m.attrs == data.t2m.attrs and fc.attrs == data.attrs
    assert np.isfinite(fc.t2m.values).all()
    one = model.predict(data.isel(time=slice(0, 30)))
    xr.testing.assert_allclose(one, fc.isel(time=[0]))


def test_model_inputs_feed_the_network_like_predict(model, data):
    ds = data.isel(time=slice(0, 30))
    x = model.model_inputs(ds)
    assert x.shape == (1, 2 + 4, 16, 32)  # history 2 × 1 variable + 4 calendar channels
    with torch.no_grad():
        z = model.model(x, model.spec.grid)[0].numpy()  # (C, H, W) normalised
    t_next = data.time.values[30:31]
    phys = model.normaliser.denormalise(z[None], t_next)[0, 0]
    np.testing.assert_allclose(model.predict(ds).t2m.values[0], phys, rtol=1e-6)


def test_untrained_model_is_persistence_or_anomaly_persistence(data):
    ds = data.isel(time=slice(0, 20))
    plain = gridvit.train(ds, epochs=1, lr=1e-12, warmup=0.0, climatology=None, **TINY)
    np.testing.assert_allclose(plain.predict(ds).t2m.values[0], ds.t2m.values[19], atol=1e-3)
    anom = gridvit.train(ds, epochs=1, lr=1e-12, warmup=0.0, **TINY)  # 6-hourly: diurnal climatology
    clim = ds.t2m.isel(time=slice(0, 18)).groupby("time.hour").mean("time")  # training split (val 10 %)
    expected = clim.sel(hour=0).values + ds.t2m.values[19] - clim.sel(hour=18).values  # step 20 is 00 UTC
    assert anom.normaliser.clim_by == "hour"
    np.testing.assert_allclose(anom.predict(ds).t2m.values[0], expected, atol=1e-3)


def test_training_beats_persistence_on_travelling_waves():
    ds = toy_climate(n_time=140, shape=(16, 32), seed=2)
    m = gridvit.train(ds.isel(time=slice(0, 120)), epochs=10, lr=3e-3, **{**TINY, "dim": 32, "batch_size": 8})
    w = m.spec.grid.area_weights()
    model_err, pers_err = [], []
    for start in range(120, 138):
        fc = m.predict(ds.isel(time=slice(0, start)))
        truth = ds.t2m.values[start]
        model_err.append(gridvit.metrics.rmse(fc.t2m.values[0], truth, weights=w))
        pers_err.append(gridvit.metrics.rmse(ds.t2m.values[start - 1], truth, weights=w))
    assert np.mean(model_err) < 0.85 * np.mean(pers_err)  # measured 0.74 with seed 0


def test_mask_is_kept_as_nan(data):
    ds = data.isel(time=slice(0, 24)).copy(deep=True)
    ds["t2m"][:, 4:8, 10:20] = np.nan  # "land"
    m = gridvit.train(ds, epochs=1, **TINY)
    fc = m.rollout(ds, steps=2)
    land = np.isnan(ds.t2m.values[0])
    assert (np.isnan(fc.t2m.values) == land).all()


def test_save_load_predicts_bit_identically(model, data, tmp_path):
    path = model.save(tmp_path / "toy.gvt")
    again = gridvit.load(path)
    a = model.rollout(data.isel(time=slice(0, 30)), steps=2)
    b = again.rollout(data.isel(time=slice(0, 30)), steps=2)
    xr.testing.assert_identical(a, b)
    assert again.config == model.config and again.spec.channel_names == ["t2m"]


def test_same_seed_same_weights(data):
    a = gridvit.train(data.isel(time=slice(0, 24)), epochs=2, seed=5, **TINY)
    b = gridvit.train(data.isel(time=slice(0, 24)), epochs=2, seed=5, **TINY)
    for k, v in _state(a).items():
        assert torch.equal(v, _state(b)[k]), k


def test_resume_after_interruption_matches_uninterrupted(data, tmp_path, crash_in_third_epoch):
    ds = data.isel(time=slice(0, 24))
    full = gridvit.train(ds, epochs=3, seed=1, **TINY)
    crash_in_third_epoch(ds, seed=1, checkpoint_dir=tmp_path, **TINY)
    assert load_checkpoint(tmp_path / "last.pt")["epoch"] == 2
    resumed = gridvit.train(ds, epochs=3, seed=1, checkpoint_dir=tmp_path, resume=True, **TINY)
    for k, v in _state(full).items():
        torch.testing.assert_close(_state(resumed)[k], v, rtol=1e-5, atol=1e-6)
    assert (tmp_path / "model.gvt").exists()


def test_resume_refuses_checkpoint_of_another_model(data, tmp_path):
    ds = data.isel(time=slice(0, 24))
    gridvit.train(ds, epochs=1, checkpoint_dir=tmp_path, **TINY)
    with pytest.raises(ValueError, match="another model config"):
        gridvit.train(ds, epochs=1, checkpoint_dir=tmp_path, resume=True, **{**TINY, "dim": 32})


def test_pde_samples_train_and_step_like_a_solver():
    rng = np.random.default_rng(0)
    u = rng.standard_normal((4, 6, 16, 16)).astype(np.float32)
    ds = xr.Dataset({"u": (("sample", "time", "y", "x"), u)},
                    coords={"time": 0.5 * np.arange(6), "y": np.arange(16.0), "x": np.arange(16.0)})
    m = gridvit.train(ds, epochs=1, history=1, lead=2, val_fraction=0.25, **TINY)
    assert m.forcing_names == () and m.spec.dims.sample == "sample"
    fc = m.rollout(ds.isel(time=slice(0, 3)), steps=2)
    assert fc.u.dims == ("sample", "time", "y", "x") and fc.time.values.tolist() == [2.0, 3.0]
    u0 = torch.from_numpy(u[:, 2, None]).double()  # (B, C, H, W)
    out = m.step(u0)
    assert out.shape == (4, 1, 16, 16) and out.dtype == torch.float64
    np.testing.assert_allclose(out.detach().numpy()[:, 0], fc.u.values[:, 0], rtol=1e-5, atol=1e-5)


def test_auto_patch_aims_for_hundreds_of_tokens():
    assert auto_patch((33, 49)) == 2  # ERA5 UK: 17 × 25 = 425 tokens
    assert auto_patch((89, 180)) == 4  # ERSST: 23 × 45 = 1035 tokens
    assert auto_patch((8, 8)) == 1


def test_predict_from_a_short_monthly_slice():
    ds = toy_climate(n_time=36, shape=(8, 16), freq="MS")
    m = gridvit.train(ds, epochs=1, **{**TINY, "patch": 2})
    fc = m.predict(ds.isel(time=[20, 21]))  # Sep→Oct 2001: 30 days, which alone reads as a fixed step
    assert str(fc.time.values[0])[:10] == "2001-11-01"


def test_cli_train_predict_info(data, tmp_path, capsys):
    from gridvit.cli import main

    src = tmp_path / "toy.nc"
    data.isel(time=slice(0, 24)).to_netcdf(src)
    run = tmp_path / "run"
    assert main(["train", str(src), "--var", "t2m", "--out", str(run), "--epochs", "1", "--dim", "16",
                 "--depth", "1", "--heads", "2", "--patch", "4", "--quiet"]) == 0
    assert (run / "model.gvt").exists() and (run / "checkpoints" / "last.pt").exists()
    out = tmp_path / "fc.nc"
    assert main(["predict", str(run), str(src), "--steps", "3", "--out", str(out)]) == 0
    with xr.open_dataset(out) as fc:
        assert fc.sizes["time"] == 3
    capsys.readouterr()
    assert main(["info", str(run)]) == 0
    assert '"t2m"' in capsys.readouterr().out
    assert main(["predict", str(run), str(tmp_path / "missing.nc"), "--out", str(out)]) != 0
