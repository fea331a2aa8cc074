"""The data layer: xarray -> windows -> tensors -> xarray, on toy and real data (bad inputs: test_bad_inputs.py)."""

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch
import xarray as xr

from gridvit.data import describe, make_splits, make_windows, open_data, prepare, to_dataset
from gridvit.data.reader import FieldReader
from gridvit.examples import toy_climate


def _roundtrip(ds: xr.Dataset, **kw) -> xr.Dataset:
    spec = describe(ds, **kw)
    reader = FieldReader(ds, spec)
    s = spec.dims.sample
    arr = np.stack([reader.read(i, slice(None)) for i in range(reader.n_samples)]) if s else reader.read(0, slice(None))
    return to_dataset(arr, spec, times=ds[spec.dims.time].values, samples=ds[s].values if s else None)


def _plane(n_sample=2, n_time=6, shape=(8, 12), seed=0) -> xr.Dataset:
    rng = np.random.default_rng(seed)
    return xr.Dataset(
        {"u": (("sample", "time", "y", "x"), rng.standard_normal((n_sample, n_time, *shape)).astype(np.float32), {"units": "1"})},
        coords={"sample": np.arange(n_sample), "time": ("time", 0.1 * np.arange(n_time), {"units": "s"}),
                "y": ("y", np.arange(shape[0]) + 0.5, {"units": "m", "periodic": 1}),
                "x": ("x", np.arange(shape[1]) + 0.5, {"units": "m", "periodic": 0})},
        attrs={"pde": "heat"},
    )


# --------------------------------------------------------------------------- round trips


def test_roundtrip_toy_identical(toy):
    xr.testing.assert_identical(_roundtrip(toy), toy)


def test_roundtrip_levels_become_channels_and_back(toy):
    z = xr.concat([toy.t2m * 0 + 5000.0, toy.t2m * 0 + 1500.0], dim=pd.Index([500, 850], name="level"))
    z = z.transpose("time", "level", "lat", "lon").rename("z").assign_attrs(units="m2 s-2")
    ds = toy.assign(z=z)
    ds["level"].attrs = {"units": "hPa"}
    spec = describe(ds)
    assert spec.channel_names == ["t2m", "z@500", "z@850"]
    xr.testing.assert_identical(_roundtrip(ds), ds)


def test_roundtrip_sample_dim_plane_with_periodic_attr():
    ds = _plane()
    spec = describe(ds)
    assert spec.dims.sample == "sample" and spec.grid.kind == "plane"
    assert spec.grid.periodic == (True, False)
    xr.testing.assert_identical(_roundtrip(ds), ds)


def test_roundtrip_dims_in_another_order(toy):
    ds = toy.transpose("lon", "time", "lat")
    out = _roundtrip(ds)
    assert out.t2m.dims == ("lon", "time", "lat")
    xr.testing.assert_identical(out, ds)


def test_roundtrip_cftime_360_day_and_advance():
    ds = toy_climate(n_time=8, shape=(8, 16))
    ds = ds.assign_coords(time=xr.date_range("2000-01-01", periods=8, freq="MS", calendar="360_day", use_cftime=True))
    spec = describe(ds)
    assert spec.time.kind == "cftime" and spec.time.calendar == "360_day"
    xr.testing.assert_identical(_roundtrip(ds), ds)
    nxt = spec.time.advance(ds.time.values[-1], 2)
    assert [(t.year, t.month, t.day) for t in nxt] == [(2000, 9, 1), (2000, 10, 1)]


def test_roundtrip_real_data_keeps_descending_latitude(era5, ersst):
    for ds in (era5.isel(time=slice(0, 10)), ersst.isel(time=slice(0, 10))):
        out = _roundtrip(ds.load())
        xr.testing.assert_identical(out, ds)
        lat = out[describe(ds).dims.y].values
        assert lat[0] > lat[-1]


def test_time_advances_by_lead_times_step(era5, ersst):
    h = describe(era5).time
    np.testing.assert_array_equal(h.advance(era5.time.values[-1], 2),
                                  np.array(["2019-04-01T00", "2019-04-01T01"], dtype="datetime64[ns]"))
    m = describe(ersst).time
    assert m.step == "MS"
    np.testing.assert_array_equal(m.advance(ersst.time.values[-1], 2),
                                  np.array(["2020-09-01", "2020-10-01"], dtype="datetime64[ns]"))


# --------------------------------------------------------------------------- detection and geometry


def test_cf_attributes_win_over_names():
    ds = toy_climate(n_time=4, shape=(8, 16)).rename(lat="a", lon="b", time="c")
    ds["c"].attrs = {"axis": "T"}
    spec = describe(ds)
    assert (spec.dims.time, spec.dims.y, spec.dims.x, spec.grid.kind) == ("c", "a", "b", "sphere")


def test_dims_override_always_works():
    ds = toy_climate(n_time=4, shape=(8, 16)).rename(lat="rows", lon="cols", time="step")
    for v in ("rows", "cols"):
        ds[v].attrs = {}
    ds["step"].attrs = {}
    spec = describe(ds, dims={"time": "step", "y": "rows", "x": "cols"})
    assert spec.dims.y == "rows" and spec.grid.kind == "plane"


def test_regional_grid_is_not_periodic(era5):
    spec = describe(era5)
    assert spec.grid.kind == "sphere" and spec.grid.periodic == (False, False)


# --------------------------------------------------------------------------- normalisation, masks, splits


def test_normalisation_uses_training_split_only(toy):
    ds = toy.copy(deep=True)
    n = ds.sizes["time"]
    ds["t2m"][n // 2:] += 1000.0  # a huge jump in the held-out half must not leak into the statistics
    p = prepare(ds, val_fraction=0.25, test_fraction=0.25, climatology=None)
    train = ds.t2m.isel(time=slice(0, n // 2))
    w = np.broadcast_to(p.spec.grid.area_weights(), train.shape)
    mean = np.average(train.values, weights=w)
    assert p.normaliser.mean[0] == pytest.approx(mean, rel=1e-6)
    assert p.normaliser.std[0] == pytest.approx(np.sqrt(np.average((train.values - mean) ** 2, weights=w)), rel=1e-5)


def test_climatology_normalisation_uses_training_split_only():
    ds = toy_climate(n_time=96, shape=(8, 16), freq="1h")  # 4 days of hourly data: 3 training days
    ds["t2m"][72:] += 1000.0  # held-out day must not leak into the diurnal climatology
    p = prepare(ds, val_fraction=0.25)
    assert p.normaliser.clim_by == "hour" and p.normaliser.clim.shape == (24, 1, 8, 16)
    train = ds.t2m.isel(time=slice(0, 72))
    clim = train.groupby("time.hour").mean("time").values  # (24, H, W)
    np.testing.assert_allclose(p.normaliser.clim[:, 0], clim, rtol=1e-6)
    anom = train.values - clim[np.arange(72) % 24]
    w = np.broadcast_to(p.spec.grid.area_weights(), anom.shape)
    assert p.normaliser.std[0] == pytest.approx(np.sqrt(np.average(anom**2, weights=w)), rel=1e-5)
    item = p.dataset("train")[5]  # inputs at hours 5 (and 6), target hour 7
    np.testing.assert_allclose(item["x"][0].numpy(), anom[5] / p.normaliser.std[0], rtol=1e-4, atol=1e-5)
    assert prepare(ds, val_fraction=0.25, climatology=None).normaliser.clim is None
    assert prepare(ds.isel(time=slice(0, 30)), val_fraction=0.0).normaliser.clim is None  # < 2 days: no groups


def test_area_weights_follow_weatherbench2():
    spec = describe(toy_climate(n_time=3, shape=(18, 36)))
    lat = spec.grid.y
    bounds = np.clip(np.r_[lat[0] + 5, 0.5 * (lat[1:] + lat[:-1]), lat[-1] - 5], -90, 90)
    w = np.abs(np.diff(np.sin(np.deg2rad(bounds))))
    np.testing.assert_allclose(spec.grid.area_weights()[:, 0], w / w.mean())


def test_splits_leak_nothing():
    splits = make_splits(1, 100, val_fraction=0.2, test_fraction=0.1)
    used = {}
    for name, split in splits.items():
        wins = make_windows(split, history=3, lead=2, rollout=2)
        steps = {int(s) + k for _, s in wins for k in range(1 + 2 * (3 - 1 + 2))}
        assert steps <= set(split.times), name
        used[name] = steps
    assert not (used["train"] & used["val"]) and not (used["val"] & used["test"])
    assert max(used["train"]) < min(used["val"]) < min(used["test"])


def test_samples_are_independent_trajectories():
    ds = _plane(n_sample=5, n_time=6)
    p = prepare(ds, history=2, val_fraction=0.2)
    assert p.splits["train"].samples == (0, 1, 2, 3) and p.splits["val"].samples == (4,)
    wins = p.windows("train")
    assert len(wins) == 4 * (6 - 3 + 1)  # no window crosses a trajectory boundary
    item = p.dataset("train")[len(wins) - 1]
    raw = ds.u.isel(sample=3, time=slice(3, 6)).values
    z = (raw - p.normaliser.mean[0]) / p.normaliser.std[0]
    np.testing.assert_allclose(item["x"].numpy(), z[:2], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(item["y"][0, 0].numpy(), z[2], rtol=1e-5, atol=1e-6)


def test_ersst_mask_and_periodic_longitude(ersst):
    p = prepare(ersst, val_fraction=0.2)
    assert p.spec.grid.periodic == (False, True)
    assert p.normaliser.masked_fraction == pytest.approx(0.314, abs=0.002)
    item = p.dataset("train")[0]
    assert torch.isfinite(item["x"]).all()
    land = ~p.normaliser.valid[0]
    assert not item["valid"][0, 0][land].any() and item["valid"][0, 0][~land].all()
    assert p.normaliser.clim_by == "month"
    out = to_dataset(p.normaliser.denormalise(item["y"][0].numpy()[None], ersst.time.values[1:2]), p.spec,
                     times=ersst.time.values[1:2], valid=p.normaliser.valid)
    truth = ersst.sst.isel(time=1).values
    np.testing.assert_allclose(out.sst.values[0][~land], truth[~land], rtol=1e-5, atol=1e-4)
    assert out.sst.isel(time=0).isnull().values.tolist() == land.tolist()


def test_era5_windows(era5):
    p = prepare(era5, history=3, lead=2, val_fraction=0.1)
    assert p.normaliser.clim_by == "hour"
    item = p.dataset("train")[5]
    raw = era5.t2m.isel(time=[5, 7, 9, 11]).values  # inputs lead=2 steps apart, then the target
    z = (raw - p.normaliser.clim[[5, 7, 9, 11], 0]) / p.normaliser.std[0]
    np.testing.assert_allclose(item["x"].numpy(), z[:3], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(item["y"][0, 0].numpy(), z[3], rtol=1e-5, atol=1e-5)
    assert item["x"].shape == (3, 33, 49)
    val = p.windows("val")
    assert val[:, 1].min() >= p.splits["val"].times.start


def test_static_channels_are_appended(toy):
    land = (toy.t2m.isel(time=0) > 288).astype("float32").drop_vars("time").rename("land")
    p = prepare(toy, history=2, static=land)
    assert p.static.shape == (1, 16, 32) and p.static_names == ("land",)
    v = land.values
    w = p.spec.grid.area_weights()
    np.testing.assert_allclose(p.static[0], (v - np.average(v, weights=w)) / np.sqrt(np.cov(v.ravel(), aweights=w.ravel(), bias=True)), rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="static field 'land'"):
        prepare(toy, static=land.isel(lat=slice(0, 4)).rename(lat="rows"))


# --------------------------------------------------------------------------- lazy reads


@pytest.mark.parametrize("zarr_format", [2, 3])
def test_lazy_zarr_batches_equal_in_memory_batches(tmp_path, zarr_format):
    ds = toy_climate(n_time=20, shape=(16, 32), seed=1)
    ds["t2m"][:, :3, :5] = np.nan  # a masked corner
    path = tmp_path / f"toy{zarr_format}.zarr"
    ds.chunk({"time": 4}).to_zarr(path, zarr_format=zarr_format, consolidated=False)
    lazy_ds = xr.open_zarr(path, consolidated=False)
    lazy = prepare(lazy_ds, history=2, rollout=2)
    eager = prepare(ds, history=2, rollout=2)
    assert not lazy.reader.in_memory and eager.reader.in_memory
    np.testing.assert_allclose(lazy.normaliser.mean, eager.normaliser.mean, rtol=1e-10)
    for a, b in zip(lazy.loader(batch_size=4, shuffle=True, seed=3), eager.loader(batch_size=4, shuffle=True, seed=3)):
        for k in ("x", "y", "valid", "start"):
            assert torch.equal(a[k], b[k]), k


def test_zarr_path_opens_without_dask_and_reads_like_memory(tmp_path):
    ds = toy_climate(n_time=20, shape=(16, 32), seed=1)
    path = tmp_path / "toy.zarr"
    ds.chunk({"time": 4}).to_zarr(path, consolidated=False)
    assert open_data(path)["t2m"].chunks is None  # lazily indexed, no dask graph per read
    lazy = prepare(str(path), history=2, lead=2, in_memory=False)  # lead 2: windows read as strided slices
    eager = prepare(ds, history=2, lead=2)
    assert not lazy.reader.in_memory
    for a, b in zip(lazy.loader(batch_size=4, shuffle=True, seed=3), eager.loader(batch_size=4, shuffle=True, seed=3)):
        for k in ("x", "y", "valid", "start"):
            assert torch.equal(a[k], b[k]), k


def test_lazy_netcdf_reads_equal_in_memory(era5):
    lazy = prepare(era5, history=2, in_memory=False)
    eager = prepare(era5.load(), history=2)
    assert not lazy.reader.in_memory
    a, b = lazy.dataset()[17], eager.dataset()[17]
    assert torch.equal(a["x"], b["x"]) and torch.equal(a["y"], b["y"])


def test_import_is_light():
    code = "import sys, time; t=time.time(); import gridvit; print(time.time()-t, 'matplotlib' in sys.modules, 'dask' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert float(out[0]) < 2.0 and out[1:] == ["False", "False"]
