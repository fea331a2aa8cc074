"""Skill metrics shared by training, benchmarks and analysis.

Conventions (WeatherBench 2, Rasp et al. 2024):

- area weights: cell area ``sin(upper) − sin(lower)`` of the latitude bounds, mean 1
  (:meth:`gridvit.geometry.Grid.area_weights`; ones on planes);
- RMSE: ``sqrt( mean_over_forecasts( Σ w·(f − o)² / Σ w ) )`` — the square root is taken after averaging
  the area-weighted mean squared error over forecasts (init times, samples);
- ACC: uncentred anomaly correlation ``Σ w f'o' / sqrt(Σ w f'² · Σ w o'²)`` per forecast, then averaged,
  with anomalies ``f' = f − c``, ``o' = o − c`` against a climatology ``c`` from the training period only;
- nRMSE (PDEBench): ``‖pred − ref‖₂ / ‖ref‖₂`` per sample and channel, then averaged;
- seam ratio: mean squared jump between neighbouring cells across patch borders ÷ the same inside patches
  (about 1 for a smooth field; ≫ 1 when a patch decoder leaves seams).

Masked (NaN) cells are excluded everywhere. Arrays are (..., H, W); leading dims are forecasts.
"""

from __future__ import annotations

import numpy as np
import torch
import xarray as xr


def _prep(pred, truth, weights, valid):
    pred, truth = np.asarray(pred, dtype=np.float64), np.asarray(truth, dtype=np.float64)
    if pred.shape != truth.shape:
        raise ValueError(f"prediction shape {pred.shape} differs from truth shape {truth.shape}")
    w = np.ones(pred.shape[-2:]) if weights is None else np.asarray(weights, dtype=np.float64)
    ok = np.isfinite(pred) & np.isfinite(truth)
    if valid is not None:
        ok &= np.asarray(valid, dtype=bool)
    return pred, truth, np.broadcast_to(w, pred.shape) * ok, ok


def mse_per_forecast(pred, truth, *, weights=None, valid=None) -> np.ndarray:
    """Area-weighted mean squared error over (H, W) for each leading index: (...,) array."""
    pred, truth, w, ok = _prep(pred, truth, weights, valid)
    err = np.where(ok, pred - truth, 0.0)
    return (w * err**2).sum(axis=(-2, -1)) / w.sum(axis=(-2, -1))


def rmse(pred, truth, *, weights=None, valid=None) -> float:
    """WeatherBench 2 RMSE: sqrt of the forecast-mean of the area-weighted spatial MSE.

    ``pred``/``truth`` (..., H, W) in the variable's units (leading dims are forecasts), ``weights`` (H, W)
    area weights (None: equal), ``valid`` (H, W) bool cells to score (NaN cells are skipped anyway).
    Returns a float in the variable's units.
    """
    return float(np.sqrt(np.mean(mse_per_forecast(pred, truth, weights=weights, valid=valid))))


def acc(pred, truth, climatology, *, weights=None, valid=None) -> float:
    """WeatherBench 2 uncentred anomaly correlation, averaged over forecasts.

    ``pred``/``truth`` (..., H, W), ``climatology`` broadcastable to them (from the training period only),
    ``weights``/``valid`` (H, W) as in :func:`rmse`. Returns a float in [-1, 1] (units "1").
    """
    pred, truth, w, ok = _prep(pred, truth, weights, valid)
    clim = np.broadcast_to(np.asarray(climatology, dtype=np.float64), pred.shape)
    fa, oa = np.where(ok, pred - clim, 0.0), np.where(ok, truth - clim, 0.0)
    num = (w * fa * oa).sum(axis=(-2, -1))
    den = np.sqrt((w * fa**2).sum(axis=(-2, -1)) * (w * oa**2).sum(axis=(-2, -1)))
    return float(np.mean(num / np.where(den > 0, den, np.nan)))


def nrmse(pred, ref) -> float:
    """PDEBench nRMSE for (S, C, H, W) arrays: ‖pred − ref‖₂ / ‖ref‖₂ per sample and channel, averaged."""
    pred, ref = np.asarray(pred, dtype=np.float64), np.asarray(ref, dtype=np.float64)
    if pred.shape != ref.shape or pred.ndim < 3:
        raise ValueError(f"nrmse needs equal (S, C, H, W) shapes, got {pred.shape} and {ref.shape}")
    num = np.sqrt(np.nansum((pred - ref) ** 2, axis=(-2, -1)))
    den = np.sqrt(np.nansum(ref**2, axis=(-2, -1)))
    return float(np.mean(num / den))


def seam_ratio(field, patch: int) -> float:
    """Mean squared jump between neighbouring cells across patch borders ÷ the same inside patches.

    ``field`` (..., H, W), e.g. a predicted change (forecast − last state); patches of side ``patch`` start at
    cell 0 of each axis (gridvit pads at the end, see :mod:`gridvit.patches`). NaN jumps are skipped; the wrap
    around a periodic axis is not counted. About 1 for a field without seams.

    Raises:
        ValueError: a patch < 2 (no border inside the grid to compare) or a grid with no inner pair.
    """
    f = np.asarray(field, dtype=np.float64)
    if isinstance(patch, bool) or not isinstance(patch, (int, np.integer)) or patch < 2:
        raise ValueError(f"seam_ratio needs a patch side >= 2, got {patch!r}")
    if f.ndim < 2 or min(f.shape[-2:]) <= patch:
        raise ValueError(f"seam_ratio needs a (..., H, W) field larger than one patch ({patch}), got {f.shape}")
    jx = np.diff(f, axis=-1) ** 2  # (..., H, W-1): cell j to j+1
    jy = np.diff(f, axis=-2) ** 2  # (..., H-1, W)
    bx = np.arange(1, f.shape[-1]) % patch == 0  # (W-1,) the pair (j-1, j) straddles a border when j % P == 0
    by = np.arange(1, f.shape[-2]) % patch == 0
    across = np.concatenate([jx[..., bx].ravel(), jy[..., by, :].ravel()])
    inside = np.concatenate([jx[..., ~bx].ravel(), jy[..., ~by, :].ravel()])
    return float(np.nanmean(across) / np.nanmean(inside))


def climatology(da: xr.DataArray, *, time_dim: str = "time", by: str = "month") -> xr.DataArray:
    """Mean of ``da`` grouped by a calendar component (``"month"``, ``"hour"``, ``"dayofyear"``).

    Compute it from the training period only; look values up with :func:`climatology_at`.
    """
    return da.groupby(f"{time_dim}.{by}").mean(time_dim)


def climatology_at(clim: xr.DataArray, times, *, time_dim: str = "time", by: str = "month") -> np.ndarray:
    """Climatology values for the given times: (len(times), ...) array."""
    key = getattr(xr.DataArray(np.asarray(times), dims=time_dim).dt, by).values
    return clim.sel({by: key}).values


def weighted_mse_loss(pred: torch.Tensor, target: torch.Tensor, valid: torch.Tensor,
                      weights: torch.Tensor) -> torch.Tensor:
    """Training loss: area-weighted MSE over valid cells. pred/target/valid (B, C, H, W), weights (H, W) or,
    per window, (B, 1, H, W)."""
    w = weights * valid  # (B, C, H, W)
    return (w * (pred - target) ** 2).sum() / w.sum().clamp_min(1e-12)
