"""Significance of analysis maps under stated nulls, with false-discovery-rate control over a map's cells.

Three nulls, each named in the results it produces:

- **phase-randomised index** (Ebisuzaki 1997) for lagged-correlation maps: the region's index is replaced
  by series with the same power spectrum (so the same autocorrelation: a red index like Niño-3.4 holds few
  independent samples) and random Fourier phases, the field is kept (so its spatial structure is kept), and
  the map is recomputed. H0: the field is unrelated to the index beyond what an index of that spectrum gives
  by chance.
- the same null for **pattern correlations** between a model map (attention, rollout, sensitivity) and
  the data's ``|r|`` map: how alike the model map is to correlation maps of random same-spectrum indices.
  Its partial form removes what a distance-prior map explains of both first.
- **moving-block bootstrap over forecast starts** for "more attention beyond a distance than the
  distance bias alone gives" (:func:`bootstrap_pvalue`): a statement about the trained model on these
  starts, not about the data.

Per-cell p-values are empirical, ``(1 + #{null >= observed}) / (K + 1)``, and a map's cells are controlled
together by Benjamini–Hochberg (:func:`benjamini_hochberg`, Wilks 2016's field significance).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import xarray as xr
from scipy import special

from gridvit.analysis.locate import spatial_coords
from gridvit.analysis.stats import _alpha, _positive_int, benjamini_hochberg, empirical_pvalues, phase_randomise
from gridvit.analysis.teleconnection import correlate, lagged_pairs, region_anomalies


def correlation_significance(ds: xr.Dataset | xr.DataArray, *, region: Any, lag: int, variable: str | None = None,
                             climatology: str | None = "auto", n_null: int = 500, alpha: float = 0.05,
                             seed: int = 0) -> xr.Dataset:
    """The lagged-correlation map with per-cell p-values under a phase-randomised-index null and BH control.

    See :func:`gridvit.analysis.lagged_correlation` for ``region``, ``lag``, ``variable`` and
    ``climatology``. The index is phase-randomised per sample over its whole record, then paired with the
    field exactly as the observed index is. Two-sided p-values from a normal fit to the null's Fisher
    ``z = atanh(r)`` per cell (mean 0, its standard deviation over the ``n_null`` maps, ≈ 1/√(N_eff − 3)),
    so that p-values far below ``1 / n_null`` — which a map of many cells needs to pass the FDR control —
    are resolved.

    Returns:
        Dataset with ``r``, ``p``, ``p_fdr`` (Benjamini–Hochberg adjusted over the map's cells) and
        ``significant`` (``p_fdr <= alpha``), all (y, x); ``null_abs_r_95``, the 95th percentile of the
        null's ``|r|`` per cell.
    """
    if isinstance(lag, bool) or not isinstance(lag, (int, np.integer)):
        raise TypeError(f"lag must be an int number of time steps, got {lag!r}")
    n_null, alpha = _positive_int("n_null", n_null), _alpha(alpha)
    a = region_anomalies(ds, region=region, variable=variable, climatology=climatology)
    idx, fld = lagged_pairs(a.index, a.field, int(lag))  # (P,), (P, H, W)
    r = np.where(a.ok, correlate(idx[None], fld)[0], np.nan)  # (H, W)
    null_idx, _ = lagged_pairs(phase_randomise(a.index, n_null, seed=seed), a.field, int(lag))  # (K, P)
    null = np.abs(correlate(null_idx, fld))  # (K, H, W)
    sd = np.sqrt((np.arctanh(np.clip(null, 0.0, 1 - 1e-12)) ** 2).mean(0))  # (H, W) null sd of Fisher z (mean 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        z = np.arctanh(np.clip(np.abs(r), 0.0, 1 - 1e-12)) / sd
    p = np.where(a.ok, special.erfc(z / np.sqrt(2.0)), np.nan)  # two-sided normal tail
    p_fdr, reject = benjamini_hochberg(p, alpha=alpha)
    dims = a.spec.grid_dims
    attrs = {"null": "region index phase-randomised (Ebisuzaki 1997), field kept", "n_null": n_null,
             "alpha": alpha, "lag": int(lag), "region": str(dict(region)), "pairs": int(idx.size)}
    return xr.Dataset(
        {"r": (dims, r, {"units": "1", "long_name": f"correlation of {a.variable} at t{lag:+d} with the region index at t"}),
         "p": (dims, p, {"units": "1", "long_name": "two-sided p-value under the phase-randomised-index null"}),
         "p_fdr": (dims, p_fdr, {"units": "1", "long_name": "Benjamini-Hochberg adjusted p-value"}),
         "significant": (dims, reject, {"long_name": f"significant at false discovery rate {alpha:g}"}),
         "null_abs_r_95": (dims, np.where(a.ok, np.percentile(null, 95, axis=0), np.nan),
                           {"units": "1", "long_name": "95th percentile of |r| under the null"})},
        coords=spatial_coords(a.spec), attrs=attrs,
    )


def _residual(values: np.ndarray, on: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Weighted least-squares residual of values (K, M) on [1, on] (M,) with weights w (M,)."""
    design = np.stack([np.ones_like(on), on], axis=1)  # (M, 2)
    sw = np.sqrt(w)[:, None]
    coef, *_ = np.linalg.lstsq(design * sw, (values * sw.T).T, rcond=None)  # (2, K)
    return values - (design @ coef).T


def pattern_significance(maps: dict[str, xr.DataArray], ds: xr.Dataset | xr.DataArray, *, region: Any, lag: int,
                         prior: xr.DataArray | None = None, variable: str | None = None,
                         climatology: str | None = "auto", n_null: int = 500, seed: int = 0) -> dict[str, dict]:
    """Pattern correlation of each map with the data's ``|r|`` map, with p-values under the phase-randomised null.

    For each map: ``pattern`` = area-weighted correlation with ``|r|`` (r from
    :func:`gridvit.analysis.lagged_correlation`) and ``p``, the share of ``n_null`` phase-randomised-index
    ``|r|`` maps the map resembles as much. With ``prior`` (e.g. the distance bias alone, or any map that
    only decays with distance): ``partial`` = the correlation of the two maps' residuals after regressing
    each on the prior (area-weighted), and ``p_partial`` under the same null — a map that only adds
    locality to the prior scores no better than chance there.

    Returns:
        ``{name: {"pattern", "p", "partial", "p_partial"}}`` (the last two only with a prior), plus
        ``{"_null": {"n_null", "null"}}`` describing the null.
    """
    n_null = _positive_int("n_null", n_null)
    a = region_anomalies(ds, region=region, variable=variable, climatology=climatology)
    idx, fld = lagged_pairs(a.index, a.field, int(lag))
    null_idx, _ = lagged_pairs(phase_randomise(a.index, n_null, seed=seed), a.field, int(lag))
    target = np.abs(correlate(np.concatenate([idx[None], null_idx]), fld))  # (1 + K, H, W)
    w = a.spec.grid.area_weights()  # (H, W)
    dims = a.spec.grid_dims
    pr = None if prior is None else prior.transpose(*dims).values
    out: dict[str, dict] = {}
    for name, m in maps.items():
        mv = m.transpose(*dims).values
        ok = a.ok & np.isfinite(target).all(0) & np.isfinite(mv) & (True if pr is None else np.isfinite(pr))  # (H, W)
        if ok.sum() < 3:
            raise ValueError(f"map {name!r} shares {int(ok.sum())} finite cells with |r|; need at least 3")
        ww = w[ok] / w[ok].sum()
        both = np.concatenate([mv[ok][None], target[:, ok]])  # (2 + K, M): map, |r|, null |r| maps
        corr = _weighted_corr(both[0], both[1:], ww)  # (1 + K,)
        res = {"pattern": float(corr[0]), "p": float(empirical_pvalues(corr[0], corr[1:]))}
        if pr is not None:
            resid = _residual(both, pr[ok], ww)  # (2 + K, M)
            part = _weighted_corr(resid[0], resid[1:], ww)  # (1 + K,)
            res["partial"], res["p_partial"] = float(part[0]), float(empirical_pvalues(part[0], part[1:]))
        out[name] = res
    out["_null"] = {"n_null": n_null, "null": "region index phase-randomised (Ebisuzaki 1997), field kept; "
                    "one-sided p = share of null |r| maps the map correlates with at least as well"}
    return out


def _weighted_corr(x: np.ndarray, ys: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Weighted Pearson correlation of x (M,) with each row of ys (K, M) -> (K,)."""
    x = x - w @ x
    ys = ys - (ys @ w)[:, None]
    return (ys @ (w * x)) / np.sqrt((w @ x**2) * ((ys**2) @ w))


