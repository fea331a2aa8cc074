"""Reading (T, C, H, W) float32 blocks of channels from an xarray dataset, from memory or lazily.

In memory, the whole dataset is stacked once into an (S, T, C, H, W) array. Lazily (dask-backed data, or
``in_memory=False``), each read indexes the source variables and loads only the requested time steps, so
a store far larger than memory can be streamed; both paths return identical arrays. Lazy reads run dask's
synchronous scheduler (no thread pool), so a reader works inside forked DataLoader workers and pickles
(a lazy one as references to its files, not their values) for spawned ones.
"""

from __future__ import annotations

import ctypes
import os
import sys
from functools import cache
from typing import Sequence

import numpy as np
import xarray as xr

from gridvit.data.spec import DataSpec, as_dataset

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

    Args:
        data: the dataset described by ``spec``.
        spec: from :func:`gridvit.data.describe`.
        in_memory: stack everything into memory once (default: when not dask-backed and ≤ 2 GiB as float32).
    """

    def __init__(self, data: xr.Dataset | xr.DataArray, spec: DataSpec, *, in_memory: bool | None = None):
        ds = as_dataset(data)
        d = spec.dims
        order = [d.sample, d.time, d.y, d.x] if d.sample else [d.time, d.y, d.x]
        self._arrays = []
        for ch in spec.channels:
            da = ds[ch.variable].sel(ch.at) if ch.at else ds[ch.variable]
            da = da.transpose(*order)
            self._arrays.append(da if d.sample else da.expand_dims("__sample__"))  # (S, T, H, W)
        first = self._arrays[0]
        self.n_samples, self.n_times = first.shape[0], first.shape[1]
        self.shape = spec.grid.shape
        nbytes = 4 * first.size * len(self._arrays)
        if in_memory is None:
            in_memory = first.chunks is None and nbytes <= IN_MEMORY_MAX_BYTES
        self._stacked = None
        if in_memory:
            self._stacked = np.stack([np.asarray(a.values, dtype=np.float32) for a in self._arrays], axis=2)
        else:
            return_freed_fields()

    @property
    def in_memory(self) -> bool:
        return self._stacked is not None

    def read(self, sample: int, steps: slice | Sequence[int] | np.ndarray) -> np.ndarray:
        """Channels of ``sample`` at time indices ``steps`` -> (T, C, H, W) float32 (NaN where missing)."""
        if self._stacked is not None:
            return self._stacked[sample, steps]  # (T, C, H, W)
        idx = steps if isinstance(steps, slice) else as_slice(np.asarray(steps))
        # dask's threaded pool would hang in a forked DataLoader worker; a window is a few chunks anyway
        blocks = [np.asarray(a[sample, idx].compute(scheduler="synchronous").values, dtype=np.float32)
                  for a in self._arrays]  # C x (T, H, W)
        return np.stack(blocks, axis=1)  # (T, C, H, W)

    def steps_within(self, nbytes: int) -> int:
        """How many time steps of one sample (all channels, as float64) fit in ``nbytes``; at least 1."""
        per_step = 8 * len(self._arrays) * self.shape[0] * self.shape[1]
        return max(1, nbytes // per_step)
