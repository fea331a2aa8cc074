"""Teleconnections: how much of a region's attention reaches far, and the classical lagged correlation map.

``teleconnection`` asks the model (where does the region's forecast look?); ``lagged_correlation`` asks the
data (where does the field co-vary with the region's index?); ``pattern_correlation`` scores how alike
the two maps are.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import xarray as xr

from gridvit.analysis.attention import (_check_surrogate, _layer_head_coords, _rollout, prior_attention, query_rows,
                                        query_weights)
from gridvit.analysis.locate import distance_units, patch_map, region_mask, spatial_coords
from gridvit.analysis.stats import benjamini_hochberg, bootstrap_pvalue
from gridvit.data import describe
from gridvit.data.spec import as_dataset
from gridvit.data.timeaxis import calendar_group, default_climatology
from gridvit.geometry import latitude_weights, patch_distances
from gridvit.surrogate import Surrogate


def teleconnection(surrogate: Surrogate, ds: xr.Dataset | xr.DataArray, *, region: Any, min_distance_km: float,
                   inits: int | None = 32, alpha: float = 0.05, min_excess: float = 0.01,
                   seed: int = 0) -> xr.Dataset:
    """The fraction of a region's attention that lands farther than ``min_distance_km``, and where it goes.

    The region's queries are the patches holding its unmasked cells, weighted by the area of those cells;
    each query's keys are judged by their own distance from that query.

    Args:
        surrogate: the trained model.
        ds: data laid out like the training data.
        region: ``{dim: (lo, hi)}`` in grid coordinates, e.g. ``{"lat": (-5, 5), "lon": (-170, -120)}``.
        min_distance_km: the "long range" threshold (km on a sphere; grid units on a plane).
        inits: forecast start times averaged over.
        alpha: false discovery rate for ``beyond_prior``. seed: the bootstrap's.
        min_excess: the smallest excess of the long-range fraction over the prior's worth a claim (a head
            whose prior fraction is 1e-8 may exceed it "significantly" by 1e-6).

    "Beyond the distance prior" is claimed only under a test: per forecast start, the excess of the
    long-range fraction over the prior's (for the rollout: over the rollout of the prior); H0 "mean
    excess <= 0" by a moving-block bootstrap over the starts (:func:`gridvit.analysis.significance.bootstrap_pvalue`), Benjamini–Hochberg over the
    layers × heads and the rollout. This is a statement about the trained model on these starts (does it
    look farther than its bias alone?), not evidence of a teleconnection in the data.

    Returns:
        Dataset with ``long_range_fraction`` (layer, head); ``attention`` (layer, head, y, x), the region's
        attention map; ``prior`` and ``prior_long_range_fraction``, the same for the distance bias alone
        (``softmax(bias)``: what the model would do with no content preference); ``rollout`` (y, x) and
        ``rollout_long_range_fraction``, through attention rollout; ``region`` (y, x), the region's cells;
        ``p_beyond_prior`` (layer, head) and ``rollout_p_beyond_prior``, BH-adjusted p-values of the excess
        over the prior, and ``beyond_prior`` / ``rollout_beyond_prior``, True only where significant at
        ``alpha`` and the mean excess is at least ``min_excess``; ``prior_rollout_long_range_fraction``.

    Raises:
        ValueError: a region with no cell or only masked cells; a negative threshold.
    """
    sur = _check_surrogate(surrogate)
    if isinstance(min_distance_km, bool) or not isinstance(min_distance_km, (int, float)) or not min_distance_km >= 0:
        raise ValueError(f"min_distance_km must be a number >= 0, got {min_distance_km!r}")
    spec, patch = sur.spec, sur.model.cfg.patch
    mask = region_mask(spec, region)  # (H, W)
    w = query_weights(sur, mask)  # (N,)
    queries = np.flatnonzero(w > 0)
    if queries.size == 0:
        raise ValueError(f"region {dict(region)} holds no unmasked cell, so no patch to query from")
    wq = w[queries] / w[queries].sum()  # (q,)
    far = patch_distances(spec.grid, patch)[queries] > min_distance_km  # (q, N)
    a, r, per, per_roll = query_rows(sur, ds, queries, inits=inits, far=wq[:, None] * far)  # (L, h, q, N), (q, N), (S, L, h), (S,)
    prior_full = prior_attention(sur)  # (L, h, N, N)
    prior = prior_full[:, :, queries]  # (L, h, q, N)
    prior_far = np.einsum("q,lhqn->lh", wq, prior * far)  # (L, h)
    prior_roll_far = float(wq @ (_rollout(torch.from_numpy(prior_full[:, None]), queries)[0].numpy() * far).sum(-1))
    excess = np.concatenate([(per - prior_far).reshape(per.shape[0], -1),
                             (per_roll - prior_roll_far)[:, None]], axis=1)  # (S, L*h + 1)
    p_adj, reject = benjamini_hochberg(bootstrap_pvalue(excess, seed=seed), alpha=alpha)
    reject &= excess.mean(0) >= min_excess
    units = distance_units(spec.grid)
    lh = ("layer", "head")
    test = f"BH-adjusted p-value: long-range fraction beyond {min_distance_km:g} {units} exceeds the distance prior's"

    def fraction(att: np.ndarray, what: str) -> tuple:
        return lh, np.einsum("q,lhqn->lh", wq, att * far), {"units": "1", "long_name": f"{what} beyond {min_distance_km:g} {units}"}

    def region_map(att: np.ndarray, what: str) -> xr.DataArray:
        return patch_map(spec, patch, np.einsum("q,lhqn->lhn", wq, att), lh, _layer_head_coords(*att.shape[:2]),
                         {"units": "1", "long_name": what})

    return xr.Dataset(
        {
            "long_range_fraction": fraction(a, "the region's attention"),
            "prior_long_range_fraction": fraction(prior, "the distance bias alone (softmax(bias))"),
            "attention": region_map(a, "the region's attention"),
            "prior": region_map(prior, "the region's attention under the distance bias alone"),
            "rollout": patch_map(spec, patch, wq @ r, attrs={"units": "1", "long_name": "the region's attention rollout"}),
            "prior_rollout_long_range_fraction": ((), prior_roll_far, {"units": "1", "long_name": "rollout of the "
                                                  f"distance bias alone beyond {min_distance_km:g} {units}"}),
            "rollout_long_range_fraction": ((), float(wq @ (r * far).sum(-1)),
                                            {"units": "1", "long_name": f"rollout beyond {min_distance_km:g} {units}"}),
            "region": (spec.grid_dims, mask, {"long_name": "cells of the region"}),
            "p_beyond_prior": (lh, p_adj[:-1].reshape(prior_far.shape), {"units": "1", "long_name": test}),
            "beyond_prior": (lh, reject[:-1].reshape(prior_far.shape), {"long_name": f"significant at FDR {alpha:g}"}),
            "rollout_p_beyond_prior": ((), float(p_adj[-1]), {"units": "1", "long_name": test + " (rollout)"}),
            "rollout_beyond_prior": ((), bool(reject[-1]), {"long_name": f"significant at FDR {alpha:g}"}),
        },
        attrs={"min_distance": float(min_distance_km), "min_distance_units": units, "region": str(dict(region)),
               "null": "per-start excess over the distance prior has mean <= 0 (moving-block bootstrap over "
                       "forecast starts, Benjamini-Hochberg over heads and rollout)"},
    )


def _time_mean(x: np.ndarray) -> np.ndarray:
    """Mean over (S, T) of (S, T, H, W) ignoring NaN -> (1, 1, H, W); NaN where a cell is never finite."""
    ok = np.isfinite(x)
    count = ok.sum(axis=(0, 1), keepdims=True)
    total = np.where(ok, x, 0.0).sum(axis=(0, 1), keepdims=True)
    return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def _anomalies(x: np.ndarray, times: np.ndarray, by: str | None) -> np.ndarray:
    """(S, T, H, W) minus its time mean (by=None) or its mean per calendar group (hour/month)."""
    if by is None:
        return x - _time_mean(x)
    groups = calendar_group(times, by)
    out = np.empty_like(x)
    for g in np.unique(groups):
        sel = groups == g
        out[:, sel] = x[:, sel] - _time_mean(x[:, sel])
    return out


def lagged_correlation(ds: xr.Dataset | xr.DataArray, *, region: Any, lag: int, variable: str | None = None,
                       climatology: str | None = "auto") -> xr.DataArray:
    """One-point (region-index) lagged correlation map: ``corr(index(t), field(t + lag))`` at every cell.

    The index is the area-weighted mean anomaly over the region's cells. A positive ``lag`` has the field
    lagging the index (where the region's signal goes next); ``lag = -lead`` has the field leading it (where
    the region's next state is predictable from), the counterpart of the region's attention map.
    Time pairs never straddle two samples.

    Args:
        ds: a dataset with time and two spatial dims (and optionally a sample dim).
        region: ``{dim: (lo, hi)}`` (see :func:`gridvit.analysis.locate.region_mask`).
        lag: steps of the time axis.
        variable: the variable (needed when ``ds`` has several).
        climatology: anomalies against the mean per ``"month"`` or ``"hour"``, or the plain time mean
            (None); ``"auto"`` picks as training does (monthly for monthly data, none for numeric time).
            Computed from all of ``ds``.

    Returns:
        DataArray (y, x) of Pearson correlations, NaN where a cell is ever missing or constant.

    Raises:
        ValueError: several variables and none chosen; a variable with level dims; a region with no
            valid cell; ``|lag|`` leaving fewer than 3 pairs.
    """
    if isinstance(lag, bool) or not isinstance(lag, (int, np.integer)):
        raise TypeError(f"lag must be an int number of time steps, got {lag!r}")
    a = region_anomalies(ds, region=region, variable=variable, climatology=climatology)
    idx, fld = lagged_pairs(a.index, a.field, int(lag))  # (P,), (P, H, W)
    r = np.where(a.ok, correlate(idx[None], fld)[0], np.nan)  # (H, W)
    return xr.DataArray(r, dims=a.spec.grid_dims, coords=spatial_coords(a.spec),
                        attrs={"units": "1", "long_name": f"correlation of {a.variable} at t{lag:+d} with the region index at t",
                               "lag": int(lag), "region": str(dict(region)), "climatology": str(a.by), "pairs": int(idx.size)})


@dataclass
class RegionAnomalies:
    """Anomalies of one variable and a region's index, as :func:`lagged_correlation` uses them.

    Attributes:
        spec: the layout. variable: its name. by: the climatology removed ("month", "hour" or None).
        field: (S, T, H, W) anomalies. index: (S, T) area-weighted mean anomaly over the region.
        ok: (H, W) cells never missing.
    """

    spec: Any
    variable: str
    by: str | None
    field: np.ndarray
    index: np.ndarray
    ok: np.ndarray


def region_anomalies(ds: xr.Dataset | xr.DataArray, *, region: Any, variable: str | None = None,
                     climatology: str | None = "auto") -> RegionAnomalies:
    """Anomaly field and region index of ``ds`` (see :func:`lagged_correlation` for the arguments)."""
    data = as_dataset(ds)
    if variable is None:
        if len(data.data_vars) != 1:
            raise ValueError(f"the dataset has variables {list(data.data_vars)}; choose one with variable=")
        variable = next(iter(data.data_vars))
    spec = describe(data, variables=[variable])
    if spec.dims.channels:
        raise ValueError(f"variable {variable!r} has level dims {spec.dims.channels}; select one level first")
    if climatology not in ("auto", "month", "hour", None):
        raise ValueError(f"climatology must be 'auto', 'month', 'hour' or None, got {climatology!r}")
    d = spec.dims
    times = data[d.time].values if d.time in data.coords else np.arange(data.sizes[d.time])
    by = default_climatology(spec.time, times) if climatology == "auto" else climatology
    order = [d.sample, d.time, d.y, d.x] if d.sample else [d.time, d.y, d.x]
    x = np.asarray(data[variable].transpose(*order).values, dtype=np.float64)
    x = _anomalies(x if d.sample else x[None], times, by)  # (S, T, H, W)
    mask = region_mask(spec, region)
    w = spec.grid.area_weights() * mask
    ok = np.isfinite(x).all(axis=(0, 1))  # (H, W) cells never missing
    if not (ok & mask).any():
        raise ValueError(f"region {dict(region)} holds no cell without missing values")
    index = np.einsum("sthw,hw->st", np.where(ok & mask, x, 0.0), w * ok) / (w * ok).sum()  # (S, T)
    return RegionAnomalies(spec, variable, by, np.where(ok, x, 0.0), index, ok)


def lagged_pairs(index: np.ndarray, field: np.ndarray, lag: int) -> tuple[np.ndarray, np.ndarray]:
    """Pairs ``(index(t), field(t + lag))`` within each sample: index (..., S, T), field (S, T, H, W) ->
    (..., P), (P, H, W) with P = S·(T − |lag|).

    Raises:
        ValueError: fewer than 3 pairs.
    """
    n = field.shape[1] - abs(lag)
    if n < 3:
        raise ValueError(f"lag {lag} leaves {max(n, 0)} time pairs; need at least 3")
    i0, f0 = (0, lag) if lag >= 0 else (-lag, 0)
    idx = index[..., i0 : i0 + n]  # (..., S, n)
    return idx.reshape(*idx.shape[:-2], -1), field[:, f0 : f0 + n].reshape(-1, *field.shape[2:])


def correlate(index: np.ndarray, field: np.ndarray) -> np.ndarray:
    """Pearson correlation of each series (K, P) with every cell of (P, H, W) -> (K, H, W); NaN where constant."""
    idx = index - index.mean(axis=-1, keepdims=True)
    fld = field - field.mean(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        r = np.einsum("kt,thw->khw", idx, fld) / np.sqrt((idx**2).sum(-1)[:, None, None] * (fld**2).sum(axis=0))
    return np.where(np.isfinite(r), r, np.nan)


def pattern_correlation(a: xr.DataArray, b: xr.DataArray, *, weights: str | np.ndarray | None = "area") -> float:
    """Area-weighted centred (Pearson) correlation of two maps over the cells finite in both.

    Args:
        a, b: maps with the same two spatial dims (broadcast by xarray; any other dims must be reduced).
        weights: ``"area"`` (WeatherBench 2 latitude weights when a dim is latitude — units
            ``degrees_north`` or standard name ``latitude`` — else equal), None (equal) or an (H, W) array.

    Raises:
        ValueError: maps that do not align to the same 2-D shape, or fewer than 3 common finite cells.
    """
    if a.ndim != 2 or set(a.dims) != set(b.dims):
        raise ValueError(f"pattern_correlation needs two 2-D maps on the same dims, got {a.dims} and {b.dims}")
    try:
        a, b = xr.align(a, b.transpose(*a.dims), join="exact")
    except ValueError as err:
        raise ValueError(f"the two maps have different coordinates: {err}") from None
    if isinstance(weights, str):
        if weights != "area":
            raise ValueError(f"weights must be 'area', None or an array, got {weights!r}")
        w = np.ones(a.shape)
        for axis, dim in enumerate(a.dims):
            c = a[dim] if dim in a.coords else None
            if c is not None and (c.attrs.get("units") == "degrees_north" or c.attrs.get("standard_name") == "latitude"):
                w = w * np.expand_dims(latitude_weights(c.values), 1 - axis)
    else:
        w = np.ones(a.shape) if weights is None else np.broadcast_to(np.asarray(weights, dtype=np.float64), a.shape)
    x, y = a.values.astype(np.float64), b.values.astype(np.float64)
    ok = np.isfinite(x) & np.isfinite(y) & (w > 0)
    if ok.sum() < 3:
        raise ValueError(f"the maps share {int(ok.sum())} finite cells; need at least 3")
    w, x, y = w[ok] / w[ok].sum(), x[ok], y[ok]
    x, y = x - w @ x, y - w @ y
    return float((w @ (x * y)) / np.sqrt((w @ x**2) * (w @ y**2)))
