"""Reading (T, C, H, W) float32 blocks of channels from an xarray dataset, from memory or lazily.

In memory, the whole dataset is stacked once into an (S, T, C, H, W) array. Lazily (dask-backed data, or
``in_memory=False``), each read indexes the source variables and loads only the requested time steps, so
a store far larger than memory can be streamed; both paths return identical arrays. A dask array that only
opens files is read from the files' backend arrays directly (no graph per read, :mod:`gridvit.data.store`);
computed dask arrays run dask's synchronous scheduler (no thread pool). So a reader works inside forked
DataLoader workers and pickles (a lazy one as references to its files, not their values) for spawned ones.
"""

from __future__ import annotations

import ctypes
import os
import sys
from functools import cache
from typing import Any, Sequence

import numpy as np
import xarray as xr

from gridvit.data.dims import Dims
from gridvit.data.spec import Channel, DataSpec, as_dataset
from gridvit.data.store import backend_pieces, read_pieces

IN_MEMORY_MAX_BYTES = 2 * 1024**3
MMAP_THRESHOLD = 1024**2  # glibc serves allocations of at least this many bytes with mmap (lazy reads)


@cache
def return_freed_fields() -> bool:
    """On Linux/glibc, let freed field-sized buffers (≥ 1 MiB) go straight back to the system.

    glibc raises its mmap threshold after large frees and then keeps freed buffers in its heap, so a lazy
    reader's per-window arrays pile up: training from a 4 GiB zarr store peaked at 1.12 GiB RSS with the
    default and 0.74 GiB with this (``benchmarks/out_of_core.py``). Same as ``MALLOC_MMAP_THRESHOLD_=1048576``;
    nothing is changed when that variable is set or off glibc. Returns whether the threshold was set.
    """
    if not sys.platform.startswith("linux") or "MALLOC_MMAP_THRESHOLD_" in os.environ:
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    m_mmap_threshold = -3  # from <malloc.h>
    return bool(libc.mallopt(m_mmap_threshold, MMAP_THRESHOLD))


def as_slice(steps: np.ndarray) -> slice | np.ndarray:
    """Evenly spaced increasing ``steps`` (a window's time indices) as a slice — cheap to index lazily, where
    a list of indices costs dask a fancy-indexing graph per read; other index arrays unchanged."""
    if steps.ndim != 1 or len(steps) == 0:
        return steps
    stride = int(steps[1] - steps[0]) if len(steps) > 1 else 1
    if stride > 0 and np.array_equal(steps, np.arange(steps[0], steps[0] + stride * len(steps), stride)):
        return slice(int(steps[0]), int(steps[0]) + stride * (len(steps) - 1) + 1, stride)
    return steps


class FieldReader:
    """Reads blocks of the spec's channels: ``read(sample, steps) -> (T, C, H, W)`` float32.

    Lazily, each channel is read in the fastest way that gives the same values: a dask array that only opens
    files (``xr.open_zarr``, ``open_dataset(chunks=...)``, ``open_mfdataset``) by indexing those files'
    backend arrays directly (:mod:`gridvit.data.store`); any other dask array (a computed variable) through
    dask, all channels of a read in one synchronous compute; a variable without dask by xarray's lazy indexing.

    Args:
        data: the dataset described by ``spec``.
        spec: from :func:`gridvit.data.describe`.
        in_memory: stack everything into memory once (default: when not dask-backed and ≤ 2 GiB as float32).
    """

    def __init__(self, data: xr.Dataset | xr.DataArray, spec: DataSpec, *, in_memory: bool | None = None):
        ds = as_dataset(data)
        d = spec.dims
        first = ds[spec.channels[0].variable]
        self.n_samples = first.sizes[d.sample] if d.sample else 1
        self.n_times = first.sizes[d.time]
        self.shape = spec.grid.shape
        self._n_channels = len(spec.channels)
        nbytes = 4 * self.n_samples * self.n_times * self.shape[0] * self.shape[1] * self._n_channels
        if in_memory is None:
            in_memory = first.chunks is None and nbytes <= IN_MEMORY_MAX_BYTES
        self._stacked, self._channels = None, []
        if in_memory:
            order = [d.sample, d.time, d.y, d.x] if d.sample else [d.time, d.y, d.x]
            arrays = []
            for ch in spec.channels:
                da = (ds[ch.variable].sel(ch.at) if ch.at else ds[ch.variable]).transpose(*order)
                arrays.append(np.asarray(da.values, dtype=np.float32).reshape(-1, *da.shape[-3:]))  # (S, T, H, W)
            self._stacked = np.stack(arrays, axis=2)  # (S, T, C, H, W)
        else:
            self._channels = [_LazyChannel(ds, ch, d) for ch in spec.channels]
            return_freed_fields()

    @property
    def in_memory(self) -> bool:
        return self._stacked is not None

    def read(self, sample: int, steps: slice | Sequence[int] | np.ndarray) -> np.ndarray:
        """Channels of ``sample`` at time indices ``steps`` -> (T, C, H, W) float32 (NaN where missing)."""
        if self._stacked is not None:
            return self._stacked[sample, steps]  # (T, C, H, W)
        idx = steps if isinstance(steps, slice) else as_slice(np.asarray(steps))
        pick = None
        if not isinstance(idx, slice):  # uneven steps: read their span, then pick them
            idx = np.asarray(idx)
            pick, idx = idx - idx.min(), slice(int(idx.min()), int(idx.max()) + 1)
        blocks: list = [ch.read(sample, idx) for ch in self._channels]  # C x (T, H, W), or a dask array
        lazy = [i for i, b in enumerate(blocks) if not isinstance(b, np.ndarray)]
        if lazy:
            import dask

            # one graph for every computed channel; dask's threaded pool would hang in a forked DataLoader worker
            done = dask.compute(*[blocks[i] for i in lazy], scheduler="synchronous")
            for i, value in zip(lazy, done):
                blocks[i] = self._channels[i].arrange(np.asarray(value))
        out = np.stack([np.asarray(b, dtype=np.float32) for b in blocks], axis=1)  # (T, C, H, W)
        return out if pick is None else out[pick]

    def steps_within(self, nbytes: int) -> int:
        """How many time steps of one sample (all channels, as float64) fit in ``nbytes``; at least 1."""
        per_step = 8 * self._n_channels * self.shape[0] * self.shape[1]
        return max(1, nbytes // per_step)


class _LazyChannel:
    """One channel read lazily: its variable's data, the fixed positions of its sample/level dims, and the
    source (backend pieces, a dask array or a lazily indexed variable)."""

    def __init__(self, ds: xr.Dataset, ch: Channel, d: Dims):
        da = ds[ch.variable]
        var = da.variable
        self.dims = var.dims
        self.time, self.sample = d.time, d.sample
        self.levels = {dim: _position(da, dim, value) for dim, value in ch.at.items()}
        kept = [dim for dim in var.dims if dim not in self.levels and dim != d.sample]  # after int indexing
        self.order = tuple(kept.index(dim) for dim in (d.time, d.y, d.x))  # -> (T, H, W)
        self.pieces = self.data = None
        if var.chunks is not None:
            self.pieces = backend_pieces(var.data)
            self.data = var.data if self.pieces is None else None
        else:
            self.data = var

    def key(self, sample: int, steps: slice) -> tuple:
        fixed = {**self.levels, **({self.sample: sample} if self.sample else {}), self.time: steps}
        return tuple(fixed.get(dim, slice(None)) for dim in self.dims)

    def arrange(self, block: np.ndarray) -> np.ndarray:
        return block.transpose(self.order)  # (T, H, W)

    def read(self, sample: int, steps: slice) -> Any:
        """(T, H, W) values, or a dask array of them for :meth:`FieldReader.read` to compute."""
        key = self.key(sample, steps)
        if self.pieces is not None:
            return self.arrange(read_pieces(*self.pieces, key))
        if isinstance(self.data, xr.Variable):
            return self.arrange(np.asarray(self.data[key].values))
        return self.data[key]


def _position(da: xr.DataArray, dim: str, value: Any) -> int:
    """The index along ``dim`` of the label ``value`` (what ``da.sel({dim: value})`` selects)."""
    loc = da.get_index(dim).get_loc(value)
    if not isinstance(loc, (int, np.integer)):
        raise ValueError(f"the {dim!r} label {value!r} of variable {da.name!r} is not unique")
    return int(loc)
