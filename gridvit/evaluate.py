"""Forecast skill against the baselines every skill table carries: persistence and climatology.

``forecast_skill`` rolls a surrogate out from several initial times and scores each lead with the
WeatherBench 2 metrics of :mod:`gridvit.metrics` (area-weighted RMSE; uncentred ACC against a climatology
from the training period only). Baselines:

- persistence: the state at the initial time, held;
- climatology: the training-period mean for the calendar component of the valid time (``by``: ``"hour"``
  for sub-daily data — a diurnal climatology —, ``"month"`` for monthly data);
- anomaly persistence: climatology of the valid time + the anomaly at the initial time (the stronger
  baseline for slowly varying fields such as SST).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import xarray as xr

from gridvit.metrics import acc, climatology, climatology_at, mse_per_forecast

METHODS = ("gridvit", "persistence", "climatology", "anomaly_persistence")


def forecast_skill(model, ds: xr.Dataset, *, variable: str, inits: Sequence, steps: int,
                   train: xr.Dataset, by: str) -> xr.Dataset:
    """Area-weighted RMSE and ACC per lead for gridvit and the baselines.

    Args:
        model: a trained :class:`gridvit.Surrogate`.
        ds: data covering every initial time's history and the ``steps`` valid times after it.
        variable: the variable scored. inits: initial times (values of ``ds``'s time coordinate).
        steps: forecast steps (each ``model.config.lead`` saved steps).
        train: the training period (for the climatology). by: ``"hour"``, ``"month"``, ``"dayofyear"``.

    Returns:
        Dataset with ``rmse`` and ``acc`` (forecast, lead), ``lead`` in saved time steps, and the number of
        forecasts in attrs.
    """
    t = model.spec.dims.time
    clim = climatology(train[variable], time_dim=t, by=by)
    w = model.spec.grid.area_weights()
    valid = model.normaliser.valid[model.spec.channel_names.index(variable)]
    se = {m: [] for m in METHODS}
    accs = {m: [] for m in METHODS}
    for t0 in inits:
        fc = model.rollout(ds.sel({t: slice(None, t0)}), steps=steps)
        times = fc[t].values
        truth = ds[variable].sel({t: times}).transpose(t, *model.spec.grid_dims).values  # (L, H, W)
        c_valid = climatology_at(clim, times, time_dim=t, by=by)
        x0 = ds[variable].sel({t: t0}).transpose(*model.spec.grid_dims).values
        c0 = climatology_at(clim, [t0], time_dim=t, by=by)[0]
        preds = {"gridvit": fc[variable].transpose(t, *model.spec.grid_dims).values,
                 "persistence": np.broadcast_to(x0, truth.shape),
                 "climatology": c_valid, "anomaly_persistence": c_valid + (x0 - c0)}
        for m, p in preds.items():
            se[m].append(mse_per_forecast(p, truth, weights=w, valid=valid))  # (L,)
            accs[m].append([acc(p[k], truth[k], c_valid[k], weights=w, valid=valid) for k in range(steps)])
    lead = model.config.lead * np.arange(1, steps + 1)
    rmse = np.sqrt(np.mean([se[m] for m in METHODS], axis=1))  # (forecast, L)
    return xr.Dataset(
        {"rmse": (("forecast", "lead"), rmse, {"units": train[variable].attrs.get("units", ""),
                                              "long_name": "area-weighted RMSE (WeatherBench 2)"}),
         "acc": (("forecast", "lead"), np.mean([accs[m] for m in METHODS], axis=1),
                 {"long_name": "uncentred ACC vs training climatology (WeatherBench 2)"})},
        coords={"forecast": list(METHODS), "lead": ("lead", lead, {"units": f"time steps of {model.spec.time.step}"})},
        attrs={"variable": variable, "forecasts": len(inits), "climatology_by": by},
    )
