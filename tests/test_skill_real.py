"""Skill on the real datasets with small settings (the full figures come from benchmarks/climate_skill.py)."""

import numpy as np
import pandas as pd

import gridvit
from gridvit.evaluate import forecast_skill

SMALL = dict(dim=32, depth=2, heads=2, batch_size=8, progress=False, seed=0)


def test_era5_beats_persistence_at_one_hour_and_rolls_out_a_day(era5):
    ds = era5.load()
    train = ds.sel(time=slice(None, "2019-03-24"))
    model = gridvit.train(train, epochs=2, rollout_steps=2, **SMALL)
    inits = pd.date_range("2019-03-25T00", "2019-03-30T18", freq="12h").values
    sk = forecast_skill(model, ds, variable="t2m", inits=inits, steps=24, train=train, by="hour")
    rmse = sk.rmse.sel(lead=1)
    assert float(rmse.sel(forecast="gridvit")) < 0.85 * float(rmse.sel(forecast="persistence"))
    assert np.isfinite(sk.rmse.sel(forecast="gridvit").values).all()  # the +24 h rollout stays finite
    fc = model.rollout(ds.sel(time=slice(None, "2019-03-25T00")), steps=24)
    assert fc.latitude.values[0] > fc.latitude.values[-1] and np.isfinite(fc.t2m.values).all()


def test_ersst_beats_persistence_and_climatology_at_one_month(ersst):
    ds = ersst.load()
    train = ds.sel(time=slice(None, "2018-12"))
    model = gridvit.train(train, epochs=2, **SMALL)
    assert model.model.cfg.patch == 4 and model.normaliser.clim_by == "month"
    inits = ds.time.sel(time=slice("2019-01", "2020-07")).values
    sk = forecast_skill(model, ds, variable="sst", inits=inits, steps=1, train=train, by="month")
    r = sk.rmse.sel(lead=1)
    assert float(r.sel(forecast="gridvit")) < float(r.sel(forecast="persistence"))
    assert float(r.sel(forecast="gridvit")) < float(r.sel(forecast="climatology"))
    fc = model.predict(ds)
    assert (np.isnan(fc.sst.values[0]) == ~model.normaliser.valid[0]).all()  # land stays NaN
