"""What a region's forecast depends on: input-gradient sensitivity maps and occlusion maps.

Attention weights say where a head looks, not what the forecast uses (Jain & Wallace 2019); the gradient
of the forecast with respect to its inputs does. Both maps here are of one scalar, the region's forecast
``F = Σ w·ŷ`` — the area-weighted (WeatherBench 2 weights) mean over the region's unmasked cells of one
variable's forecast — and are averaged over forecasts started at ``inits`` times spread over ``ds`` (as in
:func:`gridvit.analysis.forecast_inputs`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import xarray as xr

from gridvit.analysis.attention import _forecast_ends
from gridvit.analysis.locate import region_mask, spatial_coords
from gridvit.data import DataSpec, FieldReader, describe
from gridvit.data.spec import as_dataset
from gridvit.patches import check_patch
from gridvit.surrogate import Surrogate

OCCLUSION_BATCH = 64  # occluded copies run through the model at once
GRADIENT_BATCH = 8  # forecasts differentiated at once (the graph holds their attention weights)


class _Forecast:
    """The region's forecast as a differentiable function of the input states, for a Surrogate or a step.

    Attributes:
        spec: the data layout. states: (I·S, T·C, H, W) input states of the forecasts. times: (I·S,) times of
        their last input. valid: (C, H, W) cells that hold data. scale: (C,) units of ``states`` per
        physical unit (1/σ for a Surrogate's normalised inputs, 1 for a step's physical ones).
    """

    def __init__(self, model: Any, ds: xr.Dataset | xr.DataArray, inits: int | None):
        data = as_dataset(ds)
        if isinstance(model, Surrogate):
            self.spec, self.history, self.lead = model.spec, model.config.history, model.config.lead
            t = self.spec.dims.time
            ends = _forecast_ends(model, data, inits)
            times = data[t].values if t in data.coords else np.arange(data.sizes[t])
            c = len(self.spec.channels)
            parts = [model.model_inputs(data.isel({t: slice(0, k + 1)}))[:, : self.history * c] for k in ends]
            self.states = torch.cat(parts).detach()  # (I*S, T*C, H, W) normalised
            self.times = np.concatenate([[times[k]] * p.shape[0] for k, p in zip(ends, parts)])
            self.valid = np.asarray(model.normaliser.valid, dtype=bool)  # (C, H, W)
            self.scale = 1.0 / np.asarray(model.normaliser.std, dtype=np.float64)  # (C,)
            self._fn: Callable = model.forward
            model.model.eval()
        elif callable(model):
            self.spec, self.history, self.lead = describe(data), 1, 1
            self.states, self.times, self.valid = _step_states(data, self.spec, inits)
            self.scale = np.ones(len(self.spec.channels))
            self._fn = lambda u, times: model(u)
        else:
            raise TypeError(f"model must be a gridvit.Surrogate or a step(u: (B, C, H, W)) -> (B, C, H, W) callable, "
                            f"got {type(model).__name__}")

    def weights(self, region: Any, channel: int) -> torch.Tensor:
        """(H, W) area weights of the region's valid cells of ``channel``, summing to 1."""
        mask = region_mask(self.spec, region) & self.valid[channel]
        if not mask.any():
            raise ValueError(f"region {dict(region)} holds no unmasked cell of {self.spec.channel_names[channel]!r}")
        w = self.spec.grid.area_weights() * mask
        return torch.as_tensor(w / w.sum(), dtype=self.states.dtype)

    def __call__(self, states: torch.Tensor, times: np.ndarray, w: torch.Tensor, channel: int) -> torch.Tensor:
        """The region's forecast (B,) in the units of ``states``, from states (B, T·C, H, W)."""
        out = self._fn(states, list(times))
        if not isinstance(out, torch.Tensor) or out.shape[0] != states.shape[0] or out.ndim != 4:
            raise TypeError(f"the step must return a (B, C, H, W) tensor, got "
                            f"{tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__}")
        return (out[:, channel] * w.to(out)).sum(dim=(-2, -1))  # (B,)


def _step_states(data: xr.Dataset, spec: DataSpec, inits: int | None) -> tuple[torch.Tensor, np.ndarray, np.ndarray]:
    """Physical states (I·S, C, H, W) float64 at ``inits`` times spread over ``data``; NaN set to 0."""
    if inits is not None and (isinstance(inits, bool) or not isinstance(inits, int) or inits < 1):
        raise ValueError(f"inits must be a positive int or None, got {inits!r}")
    reader = FieldReader(data, spec, in_memory=False)
    ends = np.arange(reader.n_times)
    if inits is not None and inits < ends.size:
        ends = ends[np.unique(np.linspace(0, ends.size - 1, inits).round().astype(int))]
    raw = np.stack([reader.read(s, ends) for s in range(reader.n_samples)])  # (S, I, C, H, W)
    valid = np.isfinite(raw).any(axis=(0, 1))  # (C, H, W)
    raw = np.nan_to_num(raw.reshape(-1, *raw.shape[2:]))  # (S*I, C, H, W)
    return torch.from_numpy(raw.astype(np.float64)), ends.repeat(reader.n_samples), valid


def _channel(spec: DataSpec, variable: str | None) -> int:
    names = spec.channel_names
    if variable is None:
        if len(names) != 1:
            raise ValueError(f"the model forecasts channels {names}; choose one with variable=")
        return 0
    if variable not in names:
        raise ValueError(f"variable {variable!r} is not one of the model's channels {names}")
    return names.index(variable)


def _units(spec: DataSpec, channel: int) -> str:
    by_name = {v.name: v for v in spec.variables}
    return str(by_name[spec.channels[channel].variable].attrs.get("units", ""))


def sensitivity(model: Any, ds: xr.Dataset | xr.DataArray, *, region: Any, variable: str | None = None,
                inits: int | None = 32) -> xr.Dataset:
    """Gradient sensitivity of a region's forecast: ``mean over starts of |∂F / ∂x|`` per input cell.

    ``F`` is the area-weighted mean forecast of ``variable`` over the region. The derivative is taken with
    respect to each input state (every history step and channel) and standardised,
    ``|∂F/∂x_c| · σ_c / σ_F`` (σ: the training standard deviations), so channels of different units add up;
    for a single-variable model this is exactly ``|∂F/∂x|`` in physical units. For a step callable the raw
    ``|∂F/∂u|`` is used (physical units, history 1).

    Args:
        model: a trained :class:`gridvit.Surrogate` (sphere or plane, any history, climatology, calendar
            channels), or a differentiable ``step(u: (B, C, H, W)) -> (B, C, H, W)`` (e.g. a solver scheme).
        ds: data laid out like the training data.
        region: ``{dim: (lo, hi)}`` in grid coordinates (see :func:`gridvit.analysis.region_mask`).
        variable: the forecast channel (needed when the model has several).
        inits: forecast start times averaged over (None: all).

    Returns:
        Dataset with ``sensitivity`` (y, x), summed over history steps and channels; ``per_step``
        (lag, y, x), summed over channels (lag in time steps, 0 = the last input); ``per_channel``
        (channel, y, x), summed over steps; ``region`` (y, x). NaN at masked cells.

    Raises:
        TypeError: ``model`` is neither a Surrogate nor a step callable, or is not differentiable.
        ValueError: a region holding no unmasked cell; an unknown variable; bad ``inits``.
    """
    f = _Forecast(model, ds, inits)
    o = _channel(f.spec, variable)
    w = f.weights(region, o)
    total = 0.0
    for k in range(0, f.states.shape[0], GRADIENT_BATCH):
        x = f.states[k : k + GRADIENT_BATCH].clone().requires_grad_(True)
        out = f(x, f.times[k : k + GRADIENT_BATCH], w, o)  # (b,)
        if not out.requires_grad:
            raise TypeError("the forecast does not depend on its input through autograd; sensitivity needs a "
                            "differentiable model")
        (g,) = torch.autograd.grad(out.sum(), x)  # (b, T*C, H, W): each start's F depends on its own input only
        total = total + g.detach().double().abs().sum(0)  # (T*C, H, W)
    c, n = len(f.spec.channels), f.states.shape[0]
    g = (total / n).reshape(f.history, c, *f.states.shape[-2:]).numpy()  # (T, C, H, W)
    g = g / f.scale[o] * f.scale[None, :, None, None]  # standardised: |dF/dx_c| * sigma_c / sigma_F
    g = np.where(f.valid[None], g, 0.0)
    masked = ~f.valid.any(axis=0)  # (H, W) no channel holds data
    nan = np.where(masked, np.nan, 1.0)
    dims, coords = f.spec.grid_dims, spatial_coords(f.spec)
    attrs = {"units": "1", "long_name": "mean |dF/dx| * sigma_x / sigma_F of the region's forecast F",
             "region": str(dict(region)), "variable": f.spec.channel_names[o], "samples": int(n)}
    return xr.Dataset(
        {"sensitivity": (dims, g.sum(axis=(0, 1)) * nan, attrs),
         "per_step": (("lag", *dims), g.sum(axis=1) * nan, attrs),
         "per_channel": (("channel", *dims), g.sum(axis=0) * nan, attrs),
         "region": (dims, region_mask(f.spec, region), {"long_name": "cells of the region"})},
        coords={**coords, "lag": ("lag", -f.lead * np.arange(f.history)[::-1], {"long_name": "input step relative to the last input",
                                                     "units": "time steps"}),
                "channel": ("channel", list(f.spec.channel_names))},
        attrs=attrs,
    )


def occlusion(model: Surrogate, ds: xr.Dataset | xr.DataArray, *, region: Any, patch: int | None = None,
              variable: str | None = None, inits: int | None = 32) -> xr.Dataset:
    """Occlusion map: how much a region's forecast changes when one input patch is replaced by its climatology.

    Each ``patch``×``patch`` tile of the input (every history step and channel) in turn is set to the
    model's reference state — its monthly/hourly climatology when it was trained with one, otherwise the
    training mean (plane data and ``climatology=None``): 0 in normalised units — and the region's forecast
    ``F`` (area-weighted mean of ``variable``) is recomputed. Tiles run row-major from the grid's first
    cell; the last row/column of tiles may be narrower.

    Args:
        model: a trained :class:`gridvit.Surrogate`.
        ds: data laid out like the training data.
        region: ``{dim: (lo, hi)}`` in grid coordinates.
        patch: tile side in cells (default the model's patch).
        variable: the forecast channel (needed when the model has several).
        inits: forecast start times averaged over.

    Returns:
        Dataset with ``occlusion`` (y, x): mean over starts of ``|F(occluded) − F|`` in the variable's units,
        painted on the tile's cells; ``signed`` (y, x): the mean of ``F(occluded) − F``; ``region``.
        NaN at cells masked in every channel.

    Raises:
        TypeError: ``model`` is not a Surrogate; ``patch`` not an int.
        ValueError: a region holding no unmasked cell; a patch larger than the grid; an unknown variable.
    """
    if not isinstance(model, Surrogate):
        raise TypeError(f"occlusion needs a gridvit.Surrogate (it occludes with the model's climatology), got "
                        f"{type(model).__name__}")
    f = _Forecast(model, ds, inits)
    o = _channel(f.spec, variable)
    w = f.weights(region, o)
    grid = f.spec.grid
    patch = model.model.cfg.patch if patch is None else patch
    check_patch(grid.shape, patch)
    h, wd = grid.shape
    tile = (np.arange(h)[:, None] // patch) * (-(-wd // patch)) + np.arange(wd)[None, :] // patch  # (H, W) tile id
    n_tiles = int(tile.max()) + 1
    masks = torch.as_tensor(tile[None] == np.arange(n_tiles)[:, None, None])  # (K, H, W)
    change = np.zeros((2, n_tiles))  # |dF| and dF summed over starts
    with torch.no_grad():
        for b in range(f.states.shape[0]):
            x, t = f.states[b : b + 1], f.times[b : b + 1]  # (1, T*C, H, W)
            base = f(x, t, w, o)  # (1,)
            for k in range(0, n_tiles, OCCLUSION_BATCH):
                m = masks[k : k + OCCLUSION_BATCH, None]  # (k, 1, H, W)
                occluded = x.expand(m.shape[0], -1, -1, -1).masked_fill(m, 0.0)  # (k, T*C, H, W)
                d = (f(occluded, np.repeat(t, m.shape[0]), w, o) - base).double().numpy() / f.scale[o]  # (k,)
                change[0, k : k + d.size] += np.abs(d)
                change[1, k : k + d.size] += d
    change /= f.states.shape[0]
    nan = np.where(~f.valid.any(axis=0), np.nan, 1.0)  # (H, W)
    units = _units(f.spec, o)
    name = f.spec.channel_names[o]
    dims = f.spec.grid_dims
    common = {"region": str(dict(region)), "variable": name, "patch": int(patch), "samples": int(f.states.shape[0]),
              "reference": "climatology" if model.normaliser.clim is not None else "training mean"}
    return xr.Dataset(
        {"occlusion": (dims, change[0][tile] * nan, {"units": units, **common,
                       "long_name": f"mean |change| of the region's {name} forecast when the tile is occluded"}),
         "signed": (dims, change[1][tile] * nan, {"units": units, **common,
                    "long_name": f"mean change of the region's {name} forecast when the tile is occluded"}),
         "region": (dims, region_mask(f.spec, region), {"long_name": "cells of the region"})},
        coords=spatial_coords(f.spec), attrs=common,
    )
