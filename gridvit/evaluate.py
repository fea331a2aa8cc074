"""Forecast skill against the baselines every skill table carries: persistence and climatology.

``forecast_skill`` rolls a surrogate out from several initial times and scores each lead with the
WeatherBench 2 metrics of :mod:`gridvit.metrics` (area-weighted RMSE; uncentred ACC against a climatology
from the training period only). Baselines:

- persistence: the state at the initial time, held;
- climatology: the training-period mean for the calendar component of the valid time (``by``: ``"hour"``
  for sub-daily data — a diurnal climatology —, ``"month"`` for monthly data);
- anomaly persistence: climatology of the valid time + the anomaly at the initial time (the stronger
  baseline for slowly varying fields such as SST);
- linear: per-cell least squares on the model's own inputs (anomalies from that climatology for the last
  ``history`` states, calendar channels), one regression per lead, fitted on the training period only (:class:`gridvit.baselines.LinearBaseline`; WeatherBench/ClimateLearn's linear
  regression baseline).

It also reports the seam ratio (:func:`gridvit.metrics.seam_ratio`) of gridvit's first-lead change
(forecast − initial state) and of the true change, over all forecasts.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import xarray as xr

from gridvit.baselines import LinearBaseline
from gridvit.metrics import acc, climatology, climatology_at, mse_per_forecast, seam_ratio

METHODS = ("gridvit", "persistence", "climatology", "anomaly_persistence", "linear")


def forecast_skill(model, ds: xr.Dataset, *, variable: str, inits: Sequence, steps: int,
                   train: xr.Dataset, by: str) -> xr.Dataset:
    """Area-weighted RMSE and ACC per lead for gridvit and the baselines.

    Args:
        model: a trained :class:`gridvit.Surrogate`.
        ds: data covering every initial time's history and the ``steps`` valid times after it.
        variable: the variable scored. inits: initial times (values of ``ds``'s time coordinate).
        steps: forecast steps (each ``model.config.lead`` saved steps).
        train: the training period (for the climatology and the linear baseline). by: ``"hour"``, ``"month"``,
            ``"dayofyear"``.

    Returns:
        Dataset with ``rmse`` and ``acc`` (forecast, lead), ``lead`` in saved time steps; attrs: the number of
        forecasts, ``seam_ratio_gridvit`` and ``seam_ratio_truth`` (NaN for patch 1).
    """
    t = model.spec.dims.time
    grid_dims = tuple(model.spec.grid_dims)
    clim = climatology(train[variable], time_dim=t, by=by)
    leads = model.config.lead * np.arange(1, steps + 1)
    h = model.config.history
    anomaly = ds[variable].transpose(t, ...) - climatology_at(clim, ds[t].values, time_dim=t, by=by)  # the model's own units
    train_anomaly = anomaly.sel({t: train[t].values})
    linear = LinearBaseline.fit(train_anomaly, leads=leads.tolist(), history=h, time=model.spec.time,
                                grid=model.spec.grid, dims=(t, *grid_dims), calendar=model.forcing_names)
    series = anomaly.transpose(t, *grid_dims)
    index = ds.get_index(t)
    w = model.spec.grid.area_weights()
    valid = model.normaliser.valid[model.spec.channel_names.index(variable)]
    se, changes = {m: [] for m in METHODS}, []
    accs = {m: [] for m in METHODS}
    for t0 in inits:
        fc = model.rollout(ds.sel({t: slice(None, t0)}), steps=steps)
        times = fc[t].values
        truth = ds[variable].sel({t: times}).transpose(t, *model.spec.grid_dims).values  # (L, H, W)
        c_valid = climatology_at(clim, times, time_dim=t, by=by)
        x0 = ds[variable].sel({t: t0}).transpose(*model.spec.grid_dims).values
        c0 = climatology_at(clim, [t0], time_dim=t, by=by)[0]
        i0 = index.get_loc(t0)
        past = series.isel({t: slice(i0 - h + 1, i0 + 1)}).values  # (h, H, W)
        preds = {"gridvit": fc[variable].transpose(t, *model.spec.grid_dims).values,
                 "persistence": np.broadcast_to(x0, truth.shape),
                 "climatology": c_valid, "anomaly_persistence": c_valid + (x0 - c0),
                 "linear": c_valid + np.stack([linear.predict(past, t0, int(k)) for k in leads])}
        changes.append((preds["gridvit"][0] - x0, truth[0] - x0))
        for m, p in preds.items():
            se[m].append(mse_per_forecast(p, truth, weights=w, valid=valid))  # (L,)
            accs[m].append([acc(p[k], truth[k], c_valid[k], weights=w, valid=valid) for k in range(steps)])
    patch = model.model.cfg.patch
    seams = [float(seam_ratio(np.stack(c), patch)) if patch > 1 else np.nan for c in zip(*changes)]
    rmse = np.sqrt(np.mean([se[m] for m in METHODS], axis=1))  # (forecast, L)
    return xr.Dataset(
        {"rmse": (("forecast", "lead"), rmse, {"units": train[variable].attrs.get("units", ""),
                                              "long_name": "area-weighted RMSE (WeatherBench 2)"}),
         "acc": (("forecast", "lead"), np.mean([accs[m] for m in METHODS], axis=1),
                 {"long_name": "uncentred ACC vs training climatology (WeatherBench 2)"})},
        coords={"forecast": list(METHODS), "lead": ("lead", leads, {"units": f"time steps of {model.spec.time.step}"})},
        attrs={"variable": variable, "forecasts": len(inits), "climatology_by": by,
               "seam_ratio_gridvit": seams[0], "seam_ratio_truth": seams[1]},
    )
