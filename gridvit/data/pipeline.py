"""``prepare(ds)``: dataset -> spec, reader, normaliser (training split only), splits and torch datasets."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np
import torch
import xarray as xr

from gridvit.data.io import PathLike
from gridvit.data.normalise import Normaliser, fit_normaliser
from gridvit.data.reader import FieldReader
from gridvit.data.spec import DataSpec, Periodic, as_dataset, describe
from gridvit.data.timeaxis import default_climatology
from gridvit.data.windows import (Split, WindowDataset, check_enough_steps, check_window_options,
                                  make_lead_windows, make_splits, make_windows)
from gridvit.patches import check_patch


@dataclass(eq=False)
class Prepared:
    """A dataset made ready for training: layout, reader, statistics, splits, window options, time values
    (T,) and the normalised static channels (E, H, W) that inputs get appended."""

    spec: DataSpec
    reader: FieldReader
    normaliser: Normaliser
    splits: dict[str, Split]
    history: int
    lead: int
    rollout: int
    times: np.ndarray
    static: np.ndarray | None = None
    static_names: tuple[str, ...] = ()
    leads: tuple[int, ...] | None = None

    def windows(self, split: str = "train") -> np.ndarray:
        """(M, 2) (sample, start) windows of ``split``; (M, 3) with the lead index for lead-conditioned data
        (``leads``; ``lead`` is then the inputs' spacing)."""
        if self.leads is not None:
            return make_lead_windows(self.splits[split], history=self.history, spacing=self.lead, leads=self.leads)
        return make_windows(self.splits[split], history=self.history, lead=self.lead, rollout=self.rollout)

    def dataset(self, split: str = "train") -> WindowDataset:
        """The torch dataset of ``split`` ("train", "val" or "test")."""
        return WindowDataset(self.reader, self.normaliser, self.windows(split), history=self.history,
                             lead=self.lead, rollout=self.rollout, times=self.times, leads=self.leads)

    def loader(self, split: str = "train", *, batch_size: int = 8, shuffle: bool = False, seed: int = 0,
               num_workers: int = 0) -> torch.utils.data.DataLoader:
        """A DataLoader over ``split`` (shuffled reproducibly from ``seed`` when ``shuffle``)."""
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        gen = torch.Generator().manual_seed(seed)
        return torch.utils.data.DataLoader(self.dataset(split), batch_size=batch_size, shuffle=shuffle,
                                           generator=gen, num_workers=num_workers)


def prepare(data: xr.Dataset | xr.DataArray | PathLike, *, variables: str | Sequence[str] | None = None,
            dims: Mapping[str, Any] | None = None, periodic: Periodic = None,
            static: xr.Dataset | xr.DataArray | None = None, history: int = 1, lead: int = 1, rollout: int = 1,
            val_fraction: float = 0.1, test_fraction: float = 0.0, split_by: str | None = None,
            patch: int | None = None, climatology: str | None = "auto", in_memory: bool | None = None,
            leads: Sequence[int] | None = None) -> Prepared:
    """Describe, read and normalise ``data`` for windows of ``history`` steps -> ``lead`` steps ahead.

    Args:
        data: Dataset or named DataArray (in memory, lazily opened netCDF/zarr, or dask-backed), or the path
            of a netCDF file or zarr store (opened lazily).
        variables, dims, periodic: see :func:`gridvit.data.describe`.
        static: extra input channels without time, dims (y, x): a land mask, orography.
        history: input steps T. lead: steps ahead of the last input. rollout: targets per window.
        leads: lead-conditioned windows, one target each at one of ``leads`` (validated by
            :class:`gridvit.config.TrainConfig`); ``lead`` is then the inputs' spacing (``leads[0]``).
        val_fraction, test_fraction: the last fractions of time (or of samples) held out.
        split_by: ``"time"`` or ``"sample"`` (default: ``"sample"`` when a sample dim exists).
        patch: if given, checked against the grid (the grid must hold one patch).
        climatology: normalise as anomalies from a training-split climatology by ``"hour"`` of day or
            ``"month"``; ``"auto"`` picks by time step (sub-daily: hour; weekly or longer: month; else none)
            when every group has 2+ training samples; None for plain mean/std.
        in_memory: load once into memory (default: unless dask-backed or > 2 GiB).

    Raises:
        ValueError/TypeError: naming the dim, variable or value at fault (see ``describe``); a path that
            does not exist or a damaged file (see :func:`gridvit.data.io.open_data`).
    """
    check_window_options(history=history, lead=lead, rollout=rollout)
    data = as_dataset(data)  # a path is opened once here
    spec = describe(data, variables=variables, dims=dims, periodic=periodic)
    if patch is not None:
        check_patch(spec.grid.shape, patch)
    reader = FieldReader(data, spec, in_memory=in_memory)
    by = split_by or ("sample" if spec.dims.sample else "time")
    splits = make_splits(reader.n_samples, reader.n_times, val_fraction=val_fraction,
                         test_fraction=test_fraction, by=by)
    train = splits["train"]
    if leads is not None:
        leads = tuple(leads)
        rollout = 1  # the lead-conditioned windows carry one target each
        need = 1 + lead * (history - 1) + max(leads)
        if len(train.times) < need:
            raise ValueError(f"lead {max(leads)} cannot be trained: one window needs 1 + {lead}·({history} − 1) + "
                             f"{max(leads)} = {need} steps of dim {spec.dims.time!r}, the training split has "
                             f"{len(train.times)}; drop the longest leads or give more steps")
    check_enough_steps(len(train.times), history=history, lead=lead, rollout=rollout, time_dim=spec.dims.time)
    if not train.samples:
        raise ValueError("the training split holds no samples; lower val_fraction/test_fraction")
    t = spec.dims.time
    times = data[t].values if t in data.coords else np.arange(reader.n_times)
    if climatology == "auto":
        climatology = default_climatology(spec.time, times[train.times.start:train.times.stop])
    normaliser = fit_normaliser(reader, spec, samples=train.samples, times=train.times, time_values=times,
                                climatology=climatology)
    names, fields = _static(static, spec)
    return Prepared(spec, reader, normaliser, splits, history, lead, rollout, times, fields, names, leads)


def _static(static: xr.Dataset | xr.DataArray | None, spec: DataSpec) -> tuple[tuple[str, ...], np.ndarray | None]:
    """Static fields as normalised (E, H, W) float32 channels (area-weighted mean/std; NaN -> 0)."""
    if static is None:
        return (), None
    ds = as_dataset(static)
    d, shape = spec.dims, spec.grid.shape
    out = []
    for name in ds.data_vars:
        da = ds[name]
        if set(da.dims) != {d.y, d.x}:
            raise ValueError(f"static field {name!r} has dims {da.dims}; expected exactly ({d.y!r}, {d.x!r})")
        v = np.asarray(da.transpose(d.y, d.x).values, dtype=np.float64)
        if v.shape != shape:
            raise ValueError(f"static field {name!r} has shape {v.shape}, the grid is {shape}")
        w = spec.grid.area_weights() * np.isfinite(v)
        if w.sum() == 0:
            raise ValueError(f"static field {name!r} is NaN everywhere")
        mean = np.nansum(v * w) / w.sum()
        std = np.sqrt(np.nansum((v - mean) ** 2 * w) / w.sum()) or 1.0
        out.append(np.nan_to_num((v - mean) / std))
    return tuple(ds.data_vars), np.stack(out).astype(np.float32)
