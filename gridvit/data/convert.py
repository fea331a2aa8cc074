"""Back to xarray: (T, C, H, W) or (S, T, C, H, W) arrays in physical units -> ``xr.Dataset``.

Outputs keep the source's per-variable dim order, spatial coordinates (descending latitude stays
descending), level coordinates, variable/coordinate/dataset attrs, and get the given time coordinate.
Masked cells are written back as NaN.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import xarray as xr

from gridvit.data.spec import DataSpec


def to_dataset(values: Any, spec: DataSpec, *, times: Any, samples: Any = None,
               valid: np.ndarray | None = None) -> xr.Dataset:
    """Wrap ``values`` as a dataset laid out like the source ``spec`` describes.

    Args:
        values: (T, C, H, W), or (S, T, C, H, W) when the source has a sample dim; numpy or torch.
        spec: the source layout.
        times: (T,) time coordinate values.
        samples: (S,) sample coordinate values (default 0..S-1).
        valid: optional (C, H, W) bool mask; False cells become NaN.
    """
    arr = values.detach().cpu().numpy() if hasattr(values, "detach") else np.asarray(values)
    d = spec.dims
    c, (h, w) = len(spec.channels), spec.grid.shape
    if arr.ndim == 4 and d.sample:
        raise ValueError(f"values of shape {arr.shape} lack the sample dim {d.sample!r}: expected (S, T, C, H, W)")
    lead_shape = arr.shape[:-3]
    if arr.ndim not in (4, 5) or arr.shape[-3:] != (c, h, w):
        raise ValueError(f"values of shape {arr.shape} do not match (..., C, H, W) = (..., {c}, {h}, {w})")
    if valid is not None:
        arr = np.where(valid, arr, np.nan)
    times = np.asarray(times)
    if times.shape != (lead_shape[-1],):
        raise ValueError(f"times has shape {times.shape}, expected ({lead_shape[-1]},)")
    lead_dims = ([d.sample] if d.sample else []) + [d.time]
    coords: dict[str, Any] = {d.time: (d.time, times, spec.coords.get(d.time, {}).get("attrs", {}))}
    if d.sample:
        s = np.arange(lead_shape[0]) if samples is None else np.asarray(samples)
        coords[d.sample] = (d.sample, s, spec.coords.get(d.sample, {}).get("attrs", {}))
    for name in (d.y, d.x, *d.channels):
        if name in spec.coords:
            coords[name] = (name, spec.coords[name]["values"], spec.coords[name]["attrs"])
    out = {}
    k = 0
    for var in spec.variables:
        chans = [ch for ch in spec.channels if ch.variable == var.name]
        extra = [dim for dim in var.dims if dim in d.channels]
        sizes = [len(np.unique([ch.at[e] for ch in chans])) for e in extra]
        block = arr[..., k : k + len(chans), :, :]  # (..., C_var, H, W)
        k += len(chans)
        block = block.reshape(*lead_shape, *sizes, h, w)  # (..., *levels, H, W)
        dtype = np.result_type(np.dtype(var.dtype), np.float32)
        da = xr.DataArray(block.astype(dtype, copy=False), dims=(*lead_dims, *extra, d.y, d.x), attrs=var.attrs)
        out[var.name] = da.transpose(*var.dims)
    ds = xr.Dataset(out, attrs=spec.attrs)
    return ds.assign_coords({n: xr.Variable(*c) for n, c in coords.items() if n in ds.dims})
