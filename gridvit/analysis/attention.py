"""Attention of a trained surrogate: where a patch attends, how far (mean attention distance), rollout.

Attention is read from the model's manual attention path (``return_attention=True``) on the exact network
inputs of forecasts started at ``inits`` times spread evenly over ``ds`` (every sample of a dataset with a
sample dim), and averaged over those forecasts ("samples"). Patches are numbered row-major over the
(nh, nw) patch grid, as in :func:`gridvit.patches.patchify`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
import xarray as xr

from gridvit.analysis.locate import cell_patch, distance_units, locate, patch_map, patch_sums
from gridvit.data.spec import as_dataset
from gridvit.geometry import patch_centres, patch_distances
from gridvit.model.bias import SlopedDistance
from gridvit.patches import patch_grid_shape
from gridvit.surrogate import Surrogate

CHUNK_BYTES = 256 * 1024**2  # attention weights held at once: (L, b, h, N, N) float32


def _check_surrogate(surrogate: Any) -> Surrogate:
    if not isinstance(surrogate, Surrogate):
        raise TypeError(f"surrogate must be a gridvit.Surrogate (from gridvit.train or gridvit.load), got "
                        f"{type(surrogate).__name__}")
    return surrogate


def _first_end(sur: Surrogate, n: int) -> int:
    """Index of the first forecast's last input step: after the history, and no earlier than the 5th step, so
    that the prefix handed to ``model_inputs`` shows a calendar time step (month or year starts) unambiguously."""
    return min(max(1 + sur.config.lead * (sur.config.history - 1), 5), n) - 1


def _forecast_ends(sur: Surrogate, data: xr.Dataset, inits: int | None) -> np.ndarray:
    """Index of the last input step of each forecast: ``inits`` spread evenly over the possible ones."""
    if inits is not None and (isinstance(inits, bool) or not isinstance(inits, int) or inits < 1):
        raise ValueError(f"inits must be a positive int or None, got {inits!r}")
    t = sur.spec.dims.time
    if t not in data.dims:
        raise ValueError(f"the dataset has no time dim {t!r} (dims {dict(data.sizes)})")
    n, steps = data.sizes[t], 1 + sur.config.lead * (sur.config.history - 1)
    if n < steps:
        raise ValueError(f"the dataset has {n} time steps; a forecast needs {steps}")
    ends = np.arange(_first_end(sur, n), n)
    if inits is not None and inits < ends.size:
        ends = ends[np.unique(np.linspace(0, ends.size - 1, inits).round().astype(int))]
    return ends


def forecast_inputs(surrogate: Surrogate, ds: xr.Dataset | xr.DataArray, *, inits: int | None = 32) -> torch.Tensor:
    """Network inputs (I·S, T·C + E, H, W) for forecasts from ``inits`` start times spread evenly over ``ds``.

    Args:
        surrogate: the trained model.
        ds: data laid out like the training data (S samples when it has a sample dim).
        inits: number of start times (None: every time with a complete history, from the 5th step on where
            the history is shorter, so that a calendar time step is recognisable).

    Raises:
        ValueError: ``inits`` is not a positive int, or ``ds`` is too short for one forecast.
    """
    sur = _check_surrogate(surrogate)
    data, t = as_dataset(ds), sur.spec.dims.time
    ends = _forecast_ends(sur, data, inits)
    return torch.cat([sur.model_inputs(data.isel({t: slice(0, k + 1)})) for k in ends])  # each (S, T*C+E, H, W)


def attention_chunks(surrogate: Surrogate, ds: xr.Dataset | xr.DataArray, *,
                     inits: int | None = 32) -> Iterator[torch.Tensor]:
    """Yield the attention weights (L, b, h, N, N) float32 of the forecasts, a few samples at a time."""
    sur = _check_surrogate(surrogate)
    x = forecast_inputs(sur, ds, inits=inits)  # (I*S, T*C+E, H, W)
    cfg, grid = sur.model.cfg, sur.spec.grid
    n = int(np.prod(patch_grid_shape(grid.shape, cfg.patch)))
    b = max(1, CHUNK_BYTES // (4 * cfg.depth * cfg.heads * n * n))
    sur.model.eval()
    with torch.no_grad():
        for start in range(0, x.shape[0], b):
            _, weights = sur.model(x[start : start + b], grid, return_attention=True)
            yield torch.stack(weights).float()  # (L, b, h, N, N)


def mean_attention(surrogate: Surrogate, ds: xr.Dataset | xr.DataArray, *, inits: int | None = 32) -> np.ndarray:
    """Attention averaged over samples: (L, h, N, N) float64."""
    total, count = 0.0, 0
    for a in attention_chunks(surrogate, ds, inits=inits):  # (L, b, h, N, N)
        total, count = total + a.double().sum(1).cpu().numpy(), count + a.shape[1]  # (L, h, N, N)
    return total / count


def _rollout(a: torch.Tensor, queries: np.ndarray) -> torch.Tensor:
    """Rollout rows (b, q, N) of the query patches from attention (L, b, h, N, N) (Abnar & Zuidema 2020).

    Per layer the head-averaged attention plus the identity (the residual), rows renormalised:
    ``Â = (A + I) / 2``; the rollout is ``Â_L ⋯ Â_1``, and its row ``i`` says how much each input patch
    flows into output patch ``i``.
    """
    a = a.double().mean(2)  # (L, b, N, N) head average
    eye = torch.eye(a.shape[-1], dtype=a.dtype, device=a.device)
    a = 0.5 * (a + eye)
    a = a / a.sum(-1, keepdim=True)
    r = eye[torch.as_tensor(queries, device=a.device)].expand(a.shape[1], -1, -1)  # (b, q, N)
    for layer in reversed(range(a.shape[0])):
        r = r @ a[layer]  # (b, q, N)
    return r


def query_rows(surrogate: Surrogate, ds: xr.Dataset | xr.DataArray, queries: np.ndarray, *,
               inits: int | None = 32, far: np.ndarray | None = None) -> tuple[np.ndarray, ...]:
    """Attention rows (L, h, q, N) and rollout rows (q, N) of the query patches, averaged over samples.

    With ``far`` (q, N) weights (e.g. query weight × "key beyond a distance"), also the per-sample sums
    ``Σ_qn far·a`` (S, L, h) and ``Σ_qn far·rollout`` (S,), for statistics over forecast starts.
    """
    queries = np.asarray(queries, dtype=np.int64)
    rows, roll, count, per, per_roll = 0.0, 0.0, 0, [], []
    for a in attention_chunks(surrogate, ds, inits=inits):  # (L, b, h, N, N)
        q = a[..., torch.as_tensor(queries, device=a.device), :].double().cpu().numpy()  # (L, b, h, q, N)
        r = _rollout(a, queries).cpu().numpy()  # (b, q, N)
        rows, roll, count = rows + q.sum(1), roll + r.sum(0), count + a.shape[1]
        if far is not None:
            per.append(np.einsum("lbhqn,qn->blh", q, far))
            per_roll.append(np.einsum("bqn,qn->b", r, far))
    if far is None:
        return rows / count, roll / count
    return rows / count, roll / count, np.concatenate(per), np.concatenate(per_roll)


def query_weights(surrogate: Surrogate, cells: np.ndarray | None = None) -> np.ndarray:
    """Per-patch query weights (N,): the area (WeatherBench 2 weights) of the patch's unmasked cells.

    ``cells`` (H, W) multiplies the cell weights (a region mask); patches with no such cell weigh 0.
    """
    sur = _check_surrogate(surrogate)
    grid = sur.spec.grid
    valid = np.asarray(sur.normaliser.valid).any(axis=0)  # (H, W): unmasked in some channel
    w = grid.area_weights() * valid * (1.0 if cells is None else np.asarray(cells, dtype=np.float64))
    return patch_sums(grid, sur.model.cfg.patch, w)  # (N,)


def _normalised(attention: Any, distances: np.ndarray, query_weights: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Rows-normalised attention (..., N, N) and query weights (N,) summing to 1, checked against distances."""
    a = attention.detach().cpu().double().numpy() if isinstance(attention, torch.Tensor) else np.asarray(attention, dtype=np.float64)
    d = np.asarray(distances, dtype=np.float64)
    n = d.shape[0]
    if d.shape != (n, n) or a.ndim < 2 or a.shape[-2:] != (n, n):
        raise ValueError(f"attention (..., N, N) {a.shape} and distances (N, N) {d.shape} do not match")
    rowsum = a.sum(-1, keepdims=True)  # (..., N, 1)
    if np.any(a < 0) or np.any(rowsum <= 0):
        raise ValueError("attention weights must be >= 0 with a positive sum in every row")
    w = np.ones(n) if query_weights is None else np.asarray(query_weights, dtype=np.float64)
    if w.shape != (n,) or np.any(w < 0) or w.sum() <= 0:
        raise ValueError(f"query_weights must be (N,) = ({n},) non-negative weights with a positive sum")
    return a / rowsum, w / w.sum()


def weighted_mean_distance(attention: Any, distances: np.ndarray, *,
                           query_weights: np.ndarray | None = None) -> np.ndarray:
    """Mean attention distance (the ViT paper's Fig. 7): ``Σ_i w_i Σ_j a_ij d_ij / Σ_i w_i``.

    Args:
        attention: (..., N, N) weights, rows = queries (each row is normalised to sum 1).
        distances: (N, N) query–key distances.
        query_weights: (N,) weights of the queries (default equal).

    Returns:
        (...) mean distances, in the units of ``distances``.
    """
    a, w = _normalised(attention, distances, query_weights)
    per_query = (a * np.asarray(distances, dtype=np.float64)).sum(-1)  # (..., N)
    return per_query @ w


def attention_histogram(attention: Any, distances: np.ndarray, edges: np.ndarray, *,
                        query_weights: np.ndarray | None = None) -> np.ndarray:
    """Fraction of the (query-weighted) attention falling in each distance bin: (..., K) for K+1 ``edges``.

    Bins are ``[e_k, e_k+1)``, the last one closed; each row of the result sums to 1.
    """
    a, w = _normalised(attention, distances, query_weights)
    edges = np.asarray(edges, dtype=np.float64)
    k = edges.size - 1
    idx = np.clip(np.digitize(distances, edges[1:-1]), 0, k - 1).ravel()  # (N*N,) bin of each pair
    mass = (a * w[:, None]).reshape(-1, idx.size)  # (M, N*N)
    out = np.stack([np.bincount(idx, weights=m, minlength=k) for m in mass])  # (M, K)
    return out.reshape(*a.shape[:-2], k)


def prior_attention(surrogate: Surrogate) -> np.ndarray:
    """The attention the distance bias alone gives (q·k = 0): ``softmax(bias)``, (L, h, N, N) float64."""
    sur = _check_surrogate(surrogate)
    model, grid, cfg = sur.model, sur.spec.grid, sur.model.cfg
    n = int(np.prod(patch_grid_shape(grid.shape, cfg.patch)))
    out = []
    with torch.no_grad():
        for bias in model.distance_bias(grid, cfg.patch, device=sur.device, dtype=torch.float64):
            if bias is None:
                logits = torch.zeros(cfg.heads, n, n, dtype=torch.float64)  # (h, N, N)
            else:
                logits = (bias.dense() if isinstance(bias, SlopedDistance) else bias)[0]  # (h, N, N)
            out.append(logits.softmax(-1).cpu().numpy())
    return np.stack(out)  # (L, h, N, N)


def _query_patch(sur: Surrogate, at: Any) -> tuple[int, dict[str, Any]]:
    """The patch holding the cell nearest to ``at``, and attrs describing the query."""
    spec, patch = sur.spec, sur.model.cfg.patch
    r, c = locate(spec, at)
    q = int(cell_patch(spec.grid, patch)[r, c])
    y, x = spec.grid_dims
    attrs = {"query_patch": q, f"query_{y}": float(spec.grid.y[r]), f"query_{x}": float(spec.grid.x[c])}
    if spec.grid.kind == "sphere":
        centre = patch_centres(spec.grid, patch)[q]
        attrs.update({"query_patch_lat": float(centre[0]), "query_patch_lon": float(centre[1])})
    return q, attrs


def _layer_head_coords(l: int, h: int) -> dict[str, Any]:
    return {"layer": ("layer", np.arange(l)), "head": ("head", np.arange(h))}


def _select(da: xr.DataArray, layer: int | None, head: int | None) -> xr.DataArray:
    for dim, value in (("layer", layer), ("head", head)):
        if value is None:
            continue
        size = da.sizes[dim]
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not -size <= value < size:
            raise ValueError(f"{dim} must be an int in [0, {size}) (negative counts from the end), got {value!r}")
        da = da.isel({dim: int(value)})
    return da


def attention_maps(surrogate: Surrogate, ds: xr.Dataset | xr.DataArray, *, at: Any, layer: int | None = None,
                   head: int | None = None, inits: int | None = 32) -> xr.DataArray:
    """Where the patch holding the point ``at`` attends, per layer and head, averaged over samples.

    Args:
        surrogate: the trained model.
        ds: data laid out like the training data.
        at: the query point in grid coordinates, ``{"lat": 0, "lon": 200}`` or ``{"y": .., "x": ..}`` or a pair.
        layer, head: select one (dropping that dim); default all.
        inits: forecast start times averaged over (see :func:`forecast_inputs`).

    Returns:
        DataArray (layer, head, y, x): each cell holds the attention weight of the key patch it lies in
        (a probability over patches; units "1").

    Raises:
        ValueError: ``at`` outside the grid, or ``layer``/``head`` out of range.
    """
    sur = _check_surrogate(surrogate)
    q, attrs = _query_patch(sur, at)
    rows = query_rows(sur, ds, [q], inits=inits)[0][:, :, 0]  # (L, h, N)
    da = patch_map(sur.spec, sur.model.cfg.patch, rows, ("layer", "head"), _layer_head_coords(*rows.shape[:2]),
                   {"units": "1", "long_name": "attention weight of the key patch", **attrs})
    return _select(da, layer, head)


def mean_attention_distance(surrogate: Surrogate, ds: xr.Dataset | xr.DataArray, *, inits: int | None = 32,
                            bins: int = 20) -> xr.Dataset:
    """Attention-weighted mean query–key patch distance per layer and head (the ViT paper's Fig. 7).

    Distances are great-circle km between patch centres on a sphere, grid units on a plane
    (:func:`gridvit.geometry.patch_distances`). The mean runs over key patches weighted by attention, then
    over query patches weighted by their area (WeatherBench 2 cell weights of their unmasked cells, so
    polar and land-only patches count for what they cover), then over samples.

    Returns:
        Dataset with ``mean_distance`` (layer, head); ``uniform_distance`` (equal attention to every
        patch: the "no preference" reference); ``prior_distance`` (layer, head), the distance bias alone
        (``softmax(bias)``); ``histogram`` (layer, head, distance) and ``uniform_histogram`` (distance),
        the fraction of attention per distance bin, with ``distance_bounds``.
    """
    sur = _check_surrogate(surrogate)
    if isinstance(bins, bool) or not isinstance(bins, int) or bins < 1:
        raise ValueError(f"bins must be a positive int, got {bins!r}")
    grid, patch = sur.spec.grid, sur.model.cfg.patch
    d = patch_distances(grid, patch)  # (N, N)
    w = query_weights(sur)  # (N,)
    a = mean_attention(sur, ds, inits=inits)  # (L, h, N, N)
    uniform = np.full(d.shape, 1.0 / d.shape[0])  # (N, N)
    edges = np.linspace(0.0, float(d.max()), bins + 1)
    units = distance_units(grid)
    dist = {"units": units}
    coords = {**_layer_head_coords(*a.shape[:2]),
              "distance": ("distance", 0.5 * (edges[1:] + edges[:-1]), {**dist, "bounds": "distance_bounds"})}
    return xr.Dataset(
        {
            "mean_distance": (("layer", "head"), weighted_mean_distance(a, d, query_weights=w),
                              {**dist, "long_name": "attention-weighted mean query-key distance"}),
            "uniform_distance": ((), float(weighted_mean_distance(uniform, d, query_weights=w)),
                                 {**dist, "long_name": "mean distance under uniform attention"}),
            "prior_distance": (("layer", "head"), weighted_mean_distance(prior_attention(sur), d, query_weights=w),
                               {**dist, "long_name": "mean distance under the distance bias alone"}),
            "histogram": (("layer", "head", "distance"), attention_histogram(a, d, edges, query_weights=w),
                          {"units": "1", "long_name": "fraction of attention per distance bin"}),
            "uniform_histogram": (("distance",), attention_histogram(uniform, d, edges, query_weights=w),
                                  {"units": "1", "long_name": "fraction of uniform attention per distance bin"}),
            "distance_bounds": (("distance", "bound"), np.stack([edges[:-1], edges[1:]], axis=1), dist),
        },
        coords=coords,
        attrs={"query_weighting": "area of the query patch's unmasked cells (WeatherBench 2 weights)",
               "samples": len(_forecast_ends(sur, as_dataset(ds), inits)) * _n_samples(sur, ds), "geometry": grid.kind},
    )


def _n_samples(sur: Surrogate, ds: xr.Dataset | xr.DataArray) -> int:
    sample = sur.spec.dims.sample
    return as_dataset(ds).sizes[sample] if sample else 1


def attention_rollout(surrogate: Surrogate, ds: xr.Dataset | xr.DataArray, *, at: Any,
                      inits: int | None = 32) -> xr.DataArray:
    """Attention rollout (Abnar & Zuidema 2020) from the patch holding ``at``, as a map (y, x).

    Per layer the head-averaged attention plus the identity (the residual), rows renormalised,
    ``Â = (A + I) / 2``; the rollout ``Â_L ⋯ Â_1`` is averaged over samples.

    Each cell holds the rollout weight of the input patch it lies in (sums to 1 over patches; units "1").
    """
    sur = _check_surrogate(surrogate)
    q, attrs = _query_patch(sur, at)
    row = query_rows(sur, ds, [q], inits=inits)[1][0]  # (N,)
    return patch_map(sur.spec, sur.model.cfg.patch, row,
                     attrs={"units": "1", "long_name": "attention rollout weight of the input patch", **attrs})
