"""Bad (and awkward but valid) inputs: one table, every case through the entry point a user would hit.

Each error case asserts the exception type (ValueError/TypeError or a gridvit subclass) and a message naming
the problem; each must-work case asserts what the user relies on. ``python tests/test_bad_inputs.py`` prints
the table with the real messages (case -> message).
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd
import pytest
import torch
import xarray as xr

import gridvit
from gridvit.data import DataFileError, DataFileNotFoundError, prepare
from gridvit.examples import toy_climate

TINY = dict(dim=16, depth=1, heads=2, patch=4, batch_size=4, progress=False)


def toy(n_time: int = 12, shape: tuple[int, int] = (8, 16)) -> xr.Dataset:
    return toy_climate(n_time=n_time, shape=shape, seed=0)


def train_tiny(ds: xr.Dataset, **kw: Any) -> gridvit.Surrogate:
    return gridvit.train(ds, **{"epochs": 1, "seed": 0, **TINY, **kw})


@dataclass
class Case:
    """``make(tmp_path) -> data`` goes through ``call`` (prepare, train, predict, rollout, loader) with ``kw``;
    ``expect`` is (exception type, message regex) or a check of the result."""

    id: str
    make: Callable[[Path], Any]
    call: str = "prepare"
    kw: dict[str, Any] = field(default_factory=dict)
    expect: tuple[type, str] | Callable[[Any, Any], None] = (ValueError, "")


# --------------------------------------------------------------------------- builders


def _toy(_: Path) -> xr.Dataset:
    return toy()


def _with(ds: xr.Dataset, edit: Callable[[np.ndarray], None]) -> xr.Dataset:
    ds = ds.copy(deep=True)
    edit(ds["t2m"].values)
    return ds


def _retime(ds: xr.Dataset, times: np.ndarray) -> xr.Dataset:
    return ds.assign_coords(time=("time", times, ds.time.attrs))


def _gaussian_mixed_lon() -> xr.Dataset:
    lat = np.rad2deg(np.arcsin(np.polynomial.legendre.leggauss(16)[0]))[::-1]  # Gaussian, descending
    lon = np.r_[np.arange(16) * 11.25, np.arange(16) * 11.25 - 180.0]  # 0 … 168.75, then −180 … −11.25
    ds = toy(shape=(16, 32)).assign_coords(lat=lat, lon=lon)
    ds.lat.attrs, ds.lon.attrs = {"units": "degrees_north"}, {"units": "degrees_east"}
    return ds


def _packed(tmp: Path) -> xr.Dataset:
    path = tmp / "packed.nc"
    toy().to_netcdf(path, encoding={"t2m": {"dtype": "int16", "scale_factor": 0.01, "add_offset": 280.0,
                                            "_FillValue": -32767}})
    return xr.open_dataset(path)


def _truncated(tmp: Path, fmt: str) -> Path:
    path = tmp / f"cut-{fmt}.nc"
    toy().to_netcdf(path, format=fmt)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) * 6 // 10])  # cut mid-way through the data
    return path


def _cftime_360(n: int = 24) -> xr.Dataset:
    return _retime(toy(n_time=n), xr.date_range("2000-01-01", periods=n, freq="MS", calendar="360_day",
                                                use_cftime=True))


def _levels_instead() -> xr.Dataset:  # same variable name, but with two levels: other channels
    t = toy(n_time=6, shape=(16, 32)).t2m
    da = xr.concat([t, t + 1.0], dim=pd.Index([500, 850], name="level"))
    ds = da.transpose("time", "level", "lat", "lon").to_dataset()
    ds.level.attrs = {"units": "hPa"}
    return ds


def _predict_data(n: int = 6) -> xr.Dataset:
    return toy(n_time=n, shape=(16, 32))  # the fixture model's grid


# --------------------------------------------------------------------------- must-work checks


def _weighted_mean(ds: xr.Dataset) -> float:
    return float(ds.t2m.weighted(np.cos(np.deg2rad(ds.lat))).mean())


def _check_descending(p, data) -> None:
    assert p.spec.grid.y[0] > p.spec.grid.y[-1]
    asc = prepare(data.sortby("lat"), climatology=None)
    assert p.normaliser.mean[0] == pytest.approx(asc.normaliser.mean[0], rel=1e-9)
    np.testing.assert_array_equal(p.normaliser.valid, asc.normaliser.valid)


def _check_gaussian_mixed_lon(p, data) -> None:
    assert p.spec.grid.kind == "sphere" and p.spec.grid.periodic_x  # 32 × 11.25° closes the circle
    w = p.spec.grid.area_weights()[:, 0]
    assert w.mean() == pytest.approx(1.0) and w[8] > 3 * w[0]  # equator rows outweigh the polar rows


def _check_packed(p, data) -> None:
    assert data.t2m.encoding["dtype"] == np.int16
    assert abs(p.normaliser.mean[0] - _weighted_mean(toy())) < 0.01  # decoded: scale 0.01 K
    assert np.isfinite(p.dataset("train")[0]["x"].numpy()).all()


def _check_cftime_model(model, data) -> None:
    assert model.spec.time.kind == "cftime" and model.spec.time.calendar == "360_day"
    fc = model.predict(data)
    t = fc.time.values[0]
    assert (t.calendar, t.year, t.month, t.day) == ("360_day", 2002, 1, 1)
    assert np.isfinite(fc.t2m.values).all()


def _relabelled_grid() -> xr.Dataset:  # float32 coordinates, longitudes written −180…180
    ds = _predict_data()
    lon = ((ds.lon.values + 180.0) % 360.0 - 180.0).astype(np.float32)
    return ds.assign_coords(lat=ds.lat.astype(np.float32), lon=("lon", lon, ds.lon.attrs))


def _check_same_forecast(fc, data) -> None:
    assert fc.t2m.shape == (1, 16, 32) and np.isfinite(fc.t2m.values).all()
    xr.testing.assert_identical(fc, CACHE["model"].predict(_predict_data()))


def _check_dims_order(p, data) -> None:
    assert (p.spec.dims.time, p.spec.dims.y, p.spec.dims.x) == ("time", "lat", "lon")
    np.testing.assert_array_equal(p.reader.read(0, slice(None))[:, 0], data.t2m.transpose("time", "lat", "lon").values)


# --------------------------------------------------------------------------- the table


CASES = [
    # layout
    Case("no time dim", lambda _: toy().isel(time=0, drop=True), expect=(ValueError, "no time dimension found")),
    Case("1-D data (time only)", lambda _: toy().isel(lat=0, lon=0, drop=True),
         expect=(ValueError, "exactly two spatial dims")),
    Case("2-D data (one spatial dim)", lambda _: toy().isel(lat=0, drop=True),
         expect=(ValueError, r"exactly two spatial dims .*found y=None")),
    Case("4-D data without override", lambda _: toy().t2m.expand_dims(z=[0.0, 1.0], axis=1).to_dataset(),
         expect=(ValueError, r"unrecognised dims \['z'\].*dims=\{'channels'")),
    Case("override naming a missing dim", _toy, kw={"dims": {"y": "rows"}},
         expect=(ValueError, "y='rows': no such dim")),
    Case("unknown override key", _toy, kw={"dims": {"lat": "lat"}}, expect=(ValueError, "unknown keys.*accepted keys")),
    Case("dims in another order (works)", lambda _: toy().transpose("lon", "time", "lat"), expect=_check_dims_order),
    # values
    Case("all-NaN variable", lambda _: toy().assign(t2m=toy().t2m * np.nan),
         expect=(ValueError, r"\['t2m'\] are NaN everywhere")),
    Case("all-NaN time step", lambda _: _with(toy(), lambda v: v.__setitem__(2, np.nan)),
         expect=(ValueError, "'t2m' is NaN everywhere at time index 2")),
    Case("inf values", lambda _: _with(toy(), lambda v: v.__setitem__((1, 2, 3), np.inf)),
         expect=(ValueError, r"\['t2m'\] contain inf values")),
    Case("string variable", lambda _: toy().assign(name=toy().t2m.astype(str)), kw={"variables": ["name"]},
         expect=(TypeError, "'name' has dtype <U.*numeric")),
    Case("boolean variable", lambda _: toy().assign(flag=toy().t2m > 280), kw={"variables": "flag"},
         expect=(TypeError, "'flag' has dtype bool.*numeric")),
    Case("int16 packed with scale_factor/add_offset (works)", _packed, kw={"climatology": None},
         expect=_check_packed),
    # time axis
    Case("fewer steps than history + lead", lambda _: toy().isel(time=slice(0, 3)),
         kw={"history": 3, "val_fraction": 0.0}, expect=(ValueError, "3 steps .* fewer than one window needs")),
    Case("non-monotonic time", lambda _: toy().isel(time=[0, 2, 1, 3, 4, 5]),
         expect=(ValueError, "not monotonically increasing; sort it")),
    Case("duplicated time", lambda _: _retime(toy(), np.r_[toy().time.values[:3], toy().time.values[2:11]]),
         expect=(ValueError, "duplicated times")),
    Case("irregular time", lambda _: _retime(toy(), toy().time.values + (np.arange(12) >= 4) * np.timedelta64(1, "h")),
         expect=(ValueError, "irregular .*regular step")),
    Case("object dtype time (strings)", lambda _: _retime(toy(), toy().time.values.astype(str).astype(object)),
         expect=(TypeError, "object dtype .*expected datetime64, cftime dates or numbers")),
    Case("cftime 360_day calendar (works)", lambda _: _cftime_360(), call="train", expect=_check_cftime_model),
    # grid
    Case("latitude beyond ±90", lambda _: toy().assign_coords(lat=toy().lat + 20),
         expect=(ValueError, r"latitude values must lie in \[-90, 90\] degrees; found \[98.75\]")),
    Case("NaN in a spatial coordinate", lambda _: toy().assign_coords(lat=np.r_[np.nan, toy().lat.values[1:]]),
         expect=(ValueError, "'lat' has non-finite values")),
    Case("longitude jumping back and forth", lambda _: toy().assign_coords(lon=np.r_[0, 90, 45, toy().lon.values[3:]]),
         expect=(ValueError, "longitude 'lon' must increase")),
    Case("descending latitudes (works)", lambda _: toy(), kw={"climatology": None}, expect=_check_descending),
    Case("Gaussian latitudes, longitudes mixing -180..180 and 0..360 (works)", lambda _: _gaussian_mixed_lon(),
         expect=_check_gaussian_mixed_lon),
    Case("grid smaller than one patch", lambda _: toy(shape=(3, 5)), call="train",
         expect=(ValueError, "patch 4 is larger than the grid 3×5")),
    Case("patch larger than the grid", _toy, call="train", kw={"patch": 64},
         expect=(ValueError, "patch 64 is larger than the grid 8×16.*patch <= 8")),
    Case("bad periodic option", _toy, kw={"periodic": "yes"}, expect=(TypeError, "periodic must be a bool")),
    # variables and containers
    Case("missing variable name", _toy, kw={"variables": ["sst"]},
         expect=(ValueError, r"\['sst'\] not in the dataset; available: \['t2m'\]")),
    Case("empty dataset", lambda _: xr.Dataset(), expect=(ValueError, "no data variables")),
    Case("DataArray without a name", lambda _: toy().t2m.rename(None),
         expect=(ValueError, "DataArray has no name")),
    Case("numpy array instead of xarray", lambda _: toy().t2m.values, expect=(TypeError, "got ndarray")),
    # files
    Case("zarr store path that does not exist", lambda tmp: tmp / "nowhere.zarr",
         expect=(DataFileNotFoundError, "no netCDF file or zarr store.*nowhere.zarr")),
    Case("netCDF-4 file truncated mid-way", lambda tmp: _truncated(tmp, "NETCDF4"),
         expect=(DataFileError, "cut-NETCDF4.nc.*damaged, truncated")),
    Case("classic netCDF file truncated mid-way", lambda tmp: str(_truncated(tmp, "NETCDF3_64BIT")),
         expect=(DataFileError, "cut-NETCDF3_64BIT.nc.*truncated")),
    # training options
    Case("negative time_budget", _toy, call="train", kw={"time_budget": -5},
         expect=(ValueError, "time_budget must be a positive number of seconds")),
    Case("batch_size 0", _toy, call="train", kw={"batch_size": 0},
         expect=(ValueError, "batch_size must be a positive int, got 0")),
    Case("loader batch_size 0", _toy, call="loader", kw={"batch_size": 0},
         expect=(ValueError, "batch_size must be a positive int")),
    Case("history 0", _toy, kw={"history": 0}, expect=(ValueError, "history must be a positive int, got 0")),
    Case("epochs 0", _toy, call="train", kw={"epochs": 0}, expect=(ValueError, "epochs must be a positive int")),
    Case("negative lr", _toy, call="train", kw={"lr": -1.0}, expect=(ValueError, "lr must be a positive number")),
    Case("unknown training option", _toy, call="train", kw={"learning_rate": 1e-3},
         expect=(TypeError, r"unknown training option\(s\) \['learning_rate'\]; accepted")),
    Case("unknown device", _toy, call="train", kw={"device": "tpu"}, expect=(ValueError, "device must be 'auto'")),
    # forecasting with a saved model (trained on 16×32, history 2, 6-hourly, variable t2m)
    Case("checkpoint from another grid geometry", lambda _: toy(n_time=6, shape=(8, 16)), call="predict",
         expect=(ValueError, r"grid \(sphere \(8, 16\)\) differs from the one the model was trained on "
                             r"\(sphere \(16, 32\)\).*regrid")),
    Case("same grid shape, shifted coordinates", lambda _: _predict_data().assign_coords(lon=_predict_data().lon + 5.0),
         call="predict", expect=(ValueError, r"the x coordinate 'lon' differs \(index 0: 5, expected 0\)")),
    Case("predict input with fewer than history steps", lambda _: _predict_data(1), call="predict",
         expect=(ValueError, "has 1 time steps; the model needs the last 2")),
    Case("different variables than training", lambda _: _predict_data().rename(t2m="sst"), call="predict",
         expect=(ValueError, r"lacks variable\(s\) \['t2m'\] the model was trained on.*it has \['sst'\]")),
    Case("same variable with other levels", lambda _: _levels_instead(), call="predict",
         expect=(ValueError, r"channels \['t2m@500', 't2m@850'\] differ from the model's \['t2m'\]")),
    Case("another time step", lambda _: toy_climate(n_time=6, shape=(16, 32), freq="12h"), call="predict",
         expect=(ValueError, "time step '12h' .*differs from the model's '6h'")),
    Case("inf in predict input", lambda _: _with(_predict_data(), lambda v: v.__setitem__((5, 0, 0), np.inf)),
         call="predict", expect=(ValueError, r"inf values in \['t2m'\]")),
    Case("all-NaN last input step", lambda _: _with(_predict_data(), lambda v: v.__setitem__(5, np.nan)),
         call="predict", expect=(ValueError, "'t2m' is NaN at every cell at input time 2000-01-02T06")),
    Case("same grid, float32 coordinates and -180..180 longitudes (works)", lambda _: _relabelled_grid(),
         call="predict", expect=_check_same_forecast),
    Case("rollout steps 0", lambda _: _predict_data(), call="rollout", kw={"steps": 0},
         expect=(ValueError, "steps must be a positive int, got 0")),
]


# --------------------------------------------------------------------------- running the table


CACHE: dict[str, gridvit.Surrogate] = {}


def saved_model(folder: Path) -> gridvit.Surrogate:
    """A tiny model trained on a 16×32 6-hourly toy, saved and loaded back from its file (built once)."""
    if "model" not in CACHE:
        path = train_tiny(toy(n_time=24, shape=(16, 32))).save(folder / "toy.gvt")
        CACHE["model"] = gridvit.load(path)
    return CACHE["model"]


def run_case(case: Case, tmp: Path) -> tuple[Any, Any]:
    """(data, result) of ``case``'s call."""
    data = case.make(tmp)
    if case.call == "prepare":
        return data, prepare(data, **case.kw)
    if case.call == "loader":
        return data, prepare(data).loader(**case.kw)
    if case.call == "train":
        return data, train_tiny(data, **case.kw)
    if case.call == "predict":
        return data, saved_model(tmp).predict(data)
    if case.call == "rollout":
        return data, saved_model(tmp).rollout(data, **case.kw)
    raise AssertionError(f"unknown call {case.call!r}")


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input(case: Case, tmp_path: Path, one_thread):
    if callable(case.expect):
        data, result = run_case(case, tmp_path)
        case.expect(result, data)
        return
    exc, pattern = case.expect
    assert issubclass(exc, (ValueError, TypeError))
    with pytest.raises(exc, match=pattern) as info:
        run_case(case, tmp_path)
    assert "torch" not in type(info.value).__module__ and "numpy" not in type(info.value).__module__


def test_table_covers_the_issue():
    assert len(CASES) >= 30 and len({c.id for c in CASES}) == len(CASES)


if __name__ == "__main__":  # print "case -> message" for every row (the closing note of issue 10)
    import tempfile

    torch.set_num_threads(1)
    print("| case | entry point | result |\n|---|---|---|")
    for c in CASES:
        try:
            run_case(c, Path(tempfile.mkdtemp()))
            msg = "works"
        except (ValueError, TypeError) as err:
            msg = f"{type(err).__name__}: {err}"
        print(f"| {c.id} | {c.call} | {re.sub(r'[|]', '/', msg)} |")
    sys.exit(0)
