"""Training straight from a lazily read zarr store: forked/spawned DataLoader workers, bounded streaming
statistics, and the same batches and weights as the in-memory path."""

import pickle
import platform
import sys

import numpy as np
import pytest
import torch
import xarray as xr

import gridvit
from gridvit.data import normalise, prepare
from gridvit.examples import toy_climate

TINY = dict(dim=16, depth=1, heads=2, patch=4, batch_size=4, epochs=2, progress=False, seed=1)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """A 6-hourly toy climate in a zarr store of one time step per chunk."""
    ds = toy_climate(n_time=30, shape=(16, 32), seed=5)
    path = tmp_path_factory.mktemp("ooc") / "toy.zarr"
    ds.chunk({"time": 1}).to_zarr(path, zarr_format=3, consolidated=False)
    return ds, path


def _lazy(path):
    return xr.open_zarr(path, consolidated=False)


def test_forked_workers_read_the_lazy_store_like_memory(store, one_thread):
    ds, path = store
    lazy, eager = prepare(_lazy(path), history=2), prepare(ds, history=2)  # the lazy pass ran dask here
    assert not lazy.reader.in_memory
    loader = torch.utils.data.DataLoader(lazy.dataset(), batch_size=4, num_workers=2, timeout=60,
                                         multiprocessing_context="fork")  # a hang fails, not stalls
    batches = list(loader)
    expected = list(eager.loader(batch_size=4))
    assert len(batches) == len(expected) == 7  # 25 windows
    for a, b in zip(batches, expected):
        for key in ("x", "y", "valid", "start"):
            assert torch.equal(a[key], b[key]), key


def test_lazy_dataset_pickles_as_references(store):
    ds, path = store
    lazy = prepare(_lazy(path), history=2).dataset()
    blob = pickle.dumps(lazy)  # what a spawned DataLoader worker receives
    in_memory = pickle.dumps(prepare(ds, history=2).dataset())
    assert len(in_memory) - len(blob) > 0.9 * ds.t2m.nbytes  # the store's values are not in it
    again = pickle.loads(blob)
    for i in (0, 7, len(lazy) - 1):
        assert torch.equal(again[i]["x"], lazy[i]["x"]) and torch.equal(again[i]["y"], lazy[i]["y"])


def test_statistics_stream_in_bounded_blocks(store, monkeypatch):
    ds, path = store
    eager = prepare(ds, history=2)
    reader_cls = type(eager.reader)
    real_read, widest = reader_cls.read, []

    def recording_read(self, sample, steps):
        out = real_read(self, sample, steps)
        widest.append(len(out))
        return out

    monkeypatch.setattr(normalise, "BLOCK_BYTES", 3 * 8 * 16 * 32)  # three float64 steps of the grid
    monkeypatch.setattr(reader_cls, "read", recording_read)
    plain = prepare(_lazy(path), history=2, climatology=None)
    assert max(widest) == 3 and sum(widest) == 27  # one pass: the 27 training steps, 3 at a time
    widest.clear()
    lazy = prepare(_lazy(path), history=2)  # 6-hourly: anomalies from an hour-of-day climatology
    assert max(widest) == 3 and sum(widest) == 2 * 27  # a second pass for the anomalies' std and extremes
    np.testing.assert_allclose(lazy.normaliser.mean, eager.normaliser.mean, rtol=1e-12)
    np.testing.assert_allclose(lazy.normaliser.std, eager.normaliser.std, rtol=1e-10)
    np.testing.assert_allclose(lazy.normaliser.clim, eager.normaliser.clim, rtol=1e-6)
    assert plain.normaliser.clim is None


def test_training_from_the_store_with_workers_matches_memory(store, one_thread):
    ds, path = store
    from_store = gridvit.train(_lazy(path), num_workers=2, **TINY)
    in_memory = gridvit.train(ds, **TINY)
    for name, value in in_memory.model.state_dict().items():
        assert torch.equal(from_store.model.state_dict()[name], value), name


def test_lazy_reader_lets_freed_fields_go_back_to_the_system(monkeypatch):
    from gridvit.data import reader

    reader.return_freed_fields.cache_clear()
    monkeypatch.setenv("MALLOC_MMAP_THRESHOLD_", "65536")
    assert reader.return_freed_fields() is False  # the user's own setting wins
    reader.return_freed_fields.cache_clear()
    monkeypatch.delenv("MALLOC_MMAP_THRESHOLD_")
    expected = sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"
    assert reader.return_freed_fields() is expected


@pytest.mark.parametrize("steps", [[3], [3, 4, 5], [2, 4, 6], [1, 2, 4], [5, 4], [7, 7]])
def test_window_steps_index_lazily_like_the_list(steps):
    from gridvit.data.reader import as_slice

    x = np.arange(20) * 10
    idx = as_slice(np.asarray(steps))
    assert np.array_equal(x[idx], x[steps])
    assert isinstance(idx, slice) == (steps in ([3], [3, 4, 5], [2, 4, 6]))
