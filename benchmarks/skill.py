"""Skill on real data: ERA5 UK t2m (leads 1–24 h) and ERSST v5 SST (+1 month) vs persistence and climatology.

ERA5: train on 2019-03-01 … 03-24 (``--era5-budget`` seconds, 600 by default), forecasts started every 6 h
from 03-25T00 to 03-30T18 (24 forecasts, each verified to +24 h). ERSST: train on 2010–2018, forecasts
from each month of 2019-01 … 2020-07, verified at +1 month. Metrics: WeatherBench 2 area-weighted RMSE and
uncentred ACC (climatology from the training period only: diurnal (by hour) for ERA5, monthly for ERSST).
Writes benchmarks/results/skill.{json,md}.

    python benchmarks/skill.py                 # full: 600 s ERA5 + 600 s ERSST training
    python benchmarks/skill.py --quick         # 60 s each, for a smoke run
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import write_results  # noqa: E402

import gridvit  # noqa: E402
from gridvit.evaluate import forecast_skill  # noqa: E402

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def era5(budget: float, seed: int) -> tuple[xr.Dataset, dict]:
    ds = xr.open_dataset(DATA / "era5_t2m_uk_2019-03.nc").load()
    train = ds.sel(time=slice(None, "2019-03-24"))
    t0 = time.perf_counter()
    model = gridvit.train(train, time_budget=budget, rollout_steps=2, seed=seed, progress=False)
    train_s = time.perf_counter() - t0
    inits = pd.date_range("2019-03-25T00", "2019-03-30T18", freq="6h").values
    sk = forecast_skill(model, ds, variable="t2m", inits=inits, steps=24, train=train, by="hour")
    return sk, {"train_seconds": train_s, "model": model.meta()["model_config"]}


def ersst(budget: float, seed: int) -> tuple[xr.Dataset, dict]:
    ds = xr.open_dataset(DATA / "ersst_v5_sst_2010-2020.nc").load()
    train = ds.sel(time=slice(None, "2018-12"))
    t0 = time.perf_counter()
    model = gridvit.train(train, time_budget=budget, seed=seed, progress=False)
    train_s = time.perf_counter() - t0
    inits = ds.time.sel(time=slice("2019-01", "2020-07")).values
    sk = forecast_skill(model, ds, variable="sst", inits=inits, steps=1, train=train, by="month")
    return sk, {"train_seconds": train_s, "model": model.meta()["model_config"]}


def table(sk: xr.Dataset, leads: list[int], unit: str) -> str:
    rows = [f"| lead | " + " | ".join(f"RMSE {m}" for m in sk.forecast.values) + " | gridvit vs persistence | ACC gridvit |",
            "|---|" + "---|" * (len(sk.forecast) + 2)]
    for lead in leads:
        r = sk.sel(lead=lead)
        g, p = float(r.rmse.sel(forecast="gridvit")), float(r.rmse.sel(forecast="persistence"))
        rows.append(f"| +{lead} {unit} | " + " | ".join(f"{float(v):.3f}" for v in r.rmse.values)
                    + f" | {100 * (1 - g / p):+.1f} % | {float(r.acc.sel(forecast='gridvit')):.3f} |")
    return "\n".join(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="60 s training budgets")
    ap.add_argument("--era5-budget", type=float, default=600.0)
    ap.add_argument("--ersst-budget", type=float, default=600.0)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    if args.quick:
        args.era5_budget = args.ersst_budget = 60.0
    results, md = {}, ["# Forecast skill on real data", ""]
    sk, info = era5(args.era5_budget, args.seed)
    results["era5_t2m"] = {**info, "budget_s": args.era5_budget, "lead_hours": sk.lead.values.tolist(),
                           **{f"rmse_{m}": sk.rmse.sel(forecast=m).values.tolist() for m in sk.forecast.values},
                           **{f"acc_{m}": sk.acc.sel(forecast=m).values.tolist() for m in sk.forecast.values}}
    md += [f"## ERA5 UK t2m (K), {sk.attrs['forecasts']} forecasts, training budget {args.era5_budget:.0f} s "
           f"(took {info['train_seconds']:.0f} s)", "", table(sk, [1, 3, 6, 12, 24], "h"), ""]
    print("\n".join(md))
    sk, info = ersst(args.ersst_budget, args.seed)
    results["ersst_sst"] = {**info, "budget_s": args.ersst_budget,
                            **{f"rmse_{m}": sk.rmse.sel(forecast=m).values.tolist() for m in sk.forecast.values},
                            **{f"acc_{m}": sk.acc.sel(forecast=m).values.tolist() for m in sk.forecast.values}}
    md += [f"## ERSST v5 SST (°C), {sk.attrs['forecasts']} forecasts, training budget {args.ersst_budget:.0f} s "
           f"(took {info['train_seconds']:.0f} s)", "", table(sk, [1], "month"), "",
           "RMSE is the same for full fields and anomalies (the climatology cancels); anomaly persistence = "
           "climatology of the valid month + the anomaly of the initial month.", ""]
    name = "skill_quick" if args.quick else "skill"
    write_results(name, results, "\n".join(md))
    print("\n".join(md[-6:]))


if __name__ == "__main__":
    main()
