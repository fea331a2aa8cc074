"""``coarsen``: a simulated (or any gridded) dataset on a grid ``factor`` times coarser, attributes kept.

Two methods:

- ``"mean"``: block (cell) average of ``factor × factor`` fine cells — the finite-volume restriction; the
  coarse cell centres are the means of the fine ones.
- ``"spectral"``: ideal low-pass and resampling at the coarse cell centres, for periodic axes only: the
  Fourier modes ``|k| < n_coarse / 2`` are kept (the coarse grid's Nyquist mode is dropped) and evaluated at
  the coarse centres, which lie ``(factor - 1) / 2`` fine cells past every ``factor``-th fine centre.

Unlike ``ds.coarsen(...).mean()``, the spatial coordinates keep every attribute (``periodic``, ``units``),
the variables and the dataset keep theirs, and the dataset records ``coarsen_method``/``coarsen_factor``.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import xarray as xr

METHODS = ("mean", "spectral")


def coarsen(ds: xr.Dataset, factor: int | Mapping[str, int], *, method: str = "mean",
            dims: tuple[str, str] = ("y", "x")) -> xr.Dataset:
    """``ds`` on a grid coarser by ``factor`` along its two spatial dims.

    Args:
        ds: a Dataset with spatial dims ``dims`` (e.g. from :func:`gridvit.solvers.simulate`); variables
            without both dims are copied unchanged.
        factor: cells merged per coarse cell along each spatial dim (an int), or keyed by dim name
            (``{"y": 2, "x": 4}``; a dim left out keeps its resolution). Must divide the axis length.
        method: ``"mean"`` (block average) or ``"spectral"`` (Fourier truncation; needs every coarsened axis
            to be periodic, i.e. its coordinate has a true ``periodic`` attribute).
        dims: the names of the (y, x) dims.

    Returns:
        The coarse Dataset: same variables, dtypes, attrs and coordinate attrs (``periodic``, ``units``).

    Raises:
        TypeError: ``ds`` is not a Dataset, or a factor is not an int.
        ValueError: an unknown method or dim, a factor < 1 or not dividing its axis, or ``"spectral"`` on a
            non-periodic axis.
    """
    if not isinstance(ds, xr.Dataset):
        raise TypeError(f"ds must be an xr.Dataset, got {type(ds).__name__}")
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; accepted: {list(METHODS)}")
    factors = _factors(ds, factor, dims)
    if method == "spectral":
        flat = [d for d, f in factors.items() if f > 1 and not _periodic(ds, d)]
        if flat:
            raise ValueError(f"spectral truncation needs periodic axes; {flat} is not periodic (its coordinate has "
                             "no true 'periodic' attribute); use method='mean'")
    out = ds.coarsen(factors, boundary="exact").mean(keep_attrs=True) if method == "mean" else _spectral(ds, factors)
    for name, var in ds.variables.items():  # coarsen/mean may drop attrs; restore them, and the dtypes
        if name in out.variables:
            out[name].attrs = dict(var.attrs)
            if name in ds.data_vars and out[name].dtype != var.dtype:
                out[name] = out[name].astype(var.dtype)
    out.attrs = {**ds.attrs, "coarsen_method": method, "coarsen_factor": [int(factors[d]) for d in dims]}
    return out


def _factors(ds: xr.Dataset, factor: Any, dims: tuple[str, str]) -> dict[str, int]:
    missing = [d for d in dims if d not in ds.dims]
    if missing:
        raise ValueError(f"the dataset lacks the spatial dim(s) {missing}; it has {list(ds.dims)} (pass dims=)")
    given = dict(factor) if isinstance(factor, Mapping) else {d: factor for d in dims}
    unknown = sorted(set(given) - set(dims))
    if unknown:
        raise ValueError(f"factor names dim(s) {unknown}; accepted: {list(dims)}")
    out = {}
    for d in dims:
        f = given.get(d, 1)
        if isinstance(f, bool) or not isinstance(f, (int, np.integer)):
            raise TypeError(f"the factor for {d!r} must be an int, got {type(f).__name__}")
        if f < 1 or ds.sizes[d] % f:
            raise ValueError(f"the factor for {d!r} must be a positive divisor of its length {ds.sizes[d]}, got {f}")
        out[d] = int(f)
    return out


def _periodic(ds: xr.Dataset, dim: str) -> bool:
    value = ds[dim].attrs.get("periodic", 0) if dim in ds.coords else 0
    return str(value).strip().lower() in ("1", "true", "yes", "periodic")


def _spectral(ds: xr.Dataset, factors: dict[str, int]) -> xr.Dataset:
    """Fourier truncation along each coarsened (periodic) dim; coordinates block-averaged (cell centres)."""
    out = ds.coarsen(factors, boundary="exact").mean(keep_attrs=True)  # the coordinates and the layout
    for name, var in ds.data_vars.items():
        if not set(factors) <= set(var.dims):
            out[name] = var
            continue
        values = np.asarray(var.values, dtype=np.float64)
        for d, f in factors.items():
            if f > 1:
                values = truncate(values, f, axis=var.dims.index(d))
        out[name] = (var.dims, values.astype(var.dtype), var.attrs)
    return out


def truncate(u: np.ndarray, factor: int, *, axis: int) -> np.ndarray:
    """Spectral coarsening of a periodic ``axis`` of length n to n/factor cells (see the module docstring).

    With ``F_k`` the DFT of u over n cells, the coarse values are ``(1/n) Σ_{|k| < n_c/2} F_k e^{2πik(f·i + s)/n}``
    at coarse index i, s = (f - 1)/2 fine cells (coarse cell centres), computed as an inverse DFT of length n_c.
    """
    n = u.shape[axis]
    nc = n // factor
    spec = np.fft.fft(u, axis=axis)
    k = np.fft.fftfreq(n, d=1.0 / n)  # integer wavenumbers
    shift = np.exp(2j * np.pi * k * (factor - 1) / 2 / n)  # evaluate at the coarse cell centres
    keep = np.abs(k) < nc / 2
    shape = [1] * u.ndim
    shape[axis] = n
    spec = spec * (shift * keep).reshape(shape)
    coarse = np.concatenate([np.take(spec, np.arange(0, nc - nc // 2), axis=axis),  # k = 0 … ⌈n_c/2⌉ - 1
                             np.take(spec, np.arange(n - nc // 2, n), axis=axis)], axis=axis)  # k = -n_c/2 … -1
    return np.fft.ifft(coarse, axis=axis).real * (nc / n)
