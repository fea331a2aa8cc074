"""Dask-backed input: variables that only open files are read from the files directly, bit for bit as in
memory; computed dask variables still go through dask, correctly; open_mfdataset works."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
import xarray as xr

from gridvit.data import prepare
from gridvit.data.store import backend_pieces, read_pieces
from gridvit.examples import toy_climate


@pytest.fixture(scope="module")
def toy() -> xr.Dataset:
    ds = toy_climate(n_time=24, shape=(16, 32), seed=1)
    ds["t2m"][:, :3, :5] = np.nan  # a masked corner
    ds["t2m"].attrs["units"] = "K"
    return ds


@pytest.fixture(scope="module")
def files(toy, tmp_path_factory):
    """The toy dataset as a zarr store (chunks of 5 steps), one netCDF file, and two netCDF files split in time."""
    tmp = tmp_path_factory.mktemp("dask")
    toy.chunk({"time": 5}).to_zarr(tmp / "toy.zarr", consolidated=False)
    toy.to_netcdf(tmp / "toy.nc")
    toy.isel(time=slice(0, 11)).to_netcdf(tmp / "a.nc")
    toy.isel(time=slice(11, None)).to_netcdf(tmp / "b.nc")
    return tmp


def _opened(files, kind: str) -> xr.Dataset:
    if kind == "zarr":
        return xr.open_zarr(files / "toy.zarr", consolidated=False)
    if kind == "netcdf":
        return xr.open_dataset(files / "toy.nc", chunks={"time": 7})
    return xr.open_mfdataset([files / "a.nc", files / "b.nc"], combine="by_coords")


def _assert_same_batches(lazy, eager):
    assert not lazy.reader.in_memory and eager.reader.in_memory
    np.testing.assert_array_equal(lazy.normaliser.mean, eager.normaliser.mean)
    for a, b in zip(lazy.loader(batch_size=4, shuffle=True, seed=3), eager.loader(batch_size=4, shuffle=True, seed=3),
                    strict=True):
        for k in ("x", "y", "valid", "start"):
            assert torch.equal(a[k], b[k]), k


@pytest.mark.parametrize("kind", ["zarr", "netcdf", "mfdataset"])
def test_dask_backed_files_are_read_directly_and_bit_for_bit(toy, files, kind):
    ds = _opened(files, kind)
    assert ds.t2m.chunks is not None
    axis, pieces = backend_pieces(ds.t2m.data)
    assert axis == 0 and [p[:2] for p in pieces] == ([(0, 11), (11, 24)] if kind == "mfdataset" else [(0, 24)])
    _assert_same_batches(prepare(ds, history=2, rollout=2), prepare(toy, history=2, rollout=2))
    lead2 = prepare(ds, history=2, lead=2)  # strided windows
    np.testing.assert_array_equal(lead2.reader.read(0, [3, 5, 7]), toy.t2m.values[[3, 5, 7], None])


def test_pieces_read_any_basic_key_across_files(toy, files):
    ds = _opened(files, "mfdataset")
    axis, pieces = backend_pieces(ds.t2m.data)
    for key in [(slice(9, 14), slice(None), slice(None)), (slice(2, 20, 3), 4, slice(1, 9)), (12, slice(None), 0)]:
        np.testing.assert_array_equal(read_pieces(axis, pieces, key), toy.t2m.values[key])


def test_a_computed_variable_goes_through_dask_correctly(toy, files):
    ds = _opened(files, "zarr")
    celsius = (ds.t2m - 273.15).rename("t2m_c").to_dataset()
    assert backend_pieces(celsius.t2m_c.data) is None  # not a plain read: dask computes it
    assert backend_pieces(ds.t2m.isel(time=slice(2, None)).data) is None
    lazy = prepare(celsius, history=2, rollout=2)
    eager = prepare((toy.t2m - 273.15).rename("t2m_c").to_dataset(), history=2, rollout=2)
    assert not lazy.reader.in_memory
    np.testing.assert_allclose(lazy.reader.read(0, slice(4, 9)), eager.reader.read(0, slice(4, 9)), rtol=1e-6)
    for a, b in zip(lazy.loader(batch_size=4, seed=3), eager.loader(batch_size=4, seed=3), strict=True):
        torch.testing.assert_close(a["x"], b["x"], rtol=1e-5, atol=1e-5)


def test_levels_and_samples_are_indexed_in_the_store(tmp_path):
    rng = np.random.default_rng(0)
    ds = xr.Dataset({"z": (("sample", "time", "level", "y", "x"), rng.standard_normal((2, 6, 3, 8, 8)).astype("f4"))},
                    coords={"time": np.arange(6.0), "level": [850, 500, 250], "y": np.arange(8.0), "x": np.arange(8.0)})
    ds.chunk({"time": 2}).to_zarr(tmp_path / "s.zarr", consolidated=False)
    lazy = prepare(xr.open_zarr(tmp_path / "s.zarr", consolidated=False), history=1, val_fraction=0.25)
    eager = prepare(ds, history=1, val_fraction=0.25)
    assert lazy.spec.channel_names == eager.spec.channel_names == ["z@850", "z@500", "z@250"]
    for s in (0, 1):
        np.testing.assert_array_equal(lazy.reader.read(s, slice(1, 5)), eager.reader.read(s, slice(1, 5)))


def test_a_direct_reader_pickles_as_references(toy, files):
    lazy = prepare(_opened(files, "mfdataset"), history=2).dataset()
    blob = pickle.dumps(lazy)
    assert len(pickle.dumps(prepare(toy, history=2).dataset())) - len(blob) > 0.9 * toy.t2m.nbytes  # no values
    again = pickle.loads(blob)
    assert torch.equal(again[5]["x"], lazy[5]["x"])
