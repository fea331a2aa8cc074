"""Climate skill per lead: ERA5 UK t2m (+1…24 h) and ERSST v5 SST (+1…6 months) vs the baselines.

For each dataset one **lead-conditioned** gridvit model (``leads=``, the lead as a learned token embedding)
is trained on the training years only, with the conv decoder (no patch seams), a per-cell linear base
(``linear_base=True``: the network learns the residual of a per-cell least-squares regression of its own
inputs) and each lead's loss weighted by the inverse of its base's error (``balance_leads``, the default);
width 64 and depth 2, so that the CPU budget buys many epochs. What the network adds is measured too: the
same model with its output layer zeroed (the base alone). Every lead 1…n is forecast by combining the trained
leads (:meth:`gridvit.Surrogate.rollout`, the mean over the 3 largest leads that fit) from several initial
times and scored with the WeatherBench 2
metrics of :mod:`gridvit.metrics` against persistence, climatology, anomaly persistence and the linear-
regression baseline (:func:`gridvit.evaluate.forecast_skill`). The seam ratio of the first lead's
predicted change is reported beside the true change's. The split is the skill benchmark's:

- ERA5 (hourly, 0.25°, UK): train 2019-03-01 … 03-24, forecasts started every 6 h
  from 03-25T00 to 03-30T18 (24 forecasts), each verified hourly to +24 h; diurnal (by hour) climatology.
- ERSST (monthly, 2°, global ocean): train 2010-01 … 2018-12, forecasts started each month 2019-01 … 2020-02
  (14 forecasts), each verified to +6 months (the data end 2020-08); monthly climatology.

Metrics: RMSE = sqrt of the forecast-mean of the area-weighted spatial MSE; ACC = WeatherBench 2's
*uncentred* anomaly correlation ``Σ w f'o' / sqrt(Σ w f'² Σ w o'²)`` with anomalies against the
training-period climatology, averaged over forecasts. Area weights: cell area ``sin(upper) − sin(lower)``
from the latitude bounds, normalised to mean 1 (≈ cos(lat)); ERSST land (NaN) cells are excluded.

Writes benchmarks/results/climate_skill.{json,md,png}.

    .venv/bin/python benchmarks/climate_skill.py            # full: 600 s training per dataset (~25 min)
    .venv/bin/python benchmarks/climate_skill.py --quick    # 120 s training per dataset (≤ 8 min)
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import xarray as xr

sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parents[1])]
from _common import RESULTS, write_results  # noqa: E402

import gridvit  # noqa: E402
from gridvit.evaluate import METHODS, forecast_skill  # noqa: E402

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
BASELINES = [m for m in METHODS if m != "gridvit"]
LABEL = {"era5_t2m": ("ERA5 UK t2m", "h", "K"), "ersst_sst": ("ERSST v5 SST", "month", "°C")}
TABLE_LEADS = {"era5_t2m": [1, 2, 3, 6, 12, 18, 24], "ersst_sst": [1, 2, 3, 4, 5, 6]}
MODEL = {"era5_t2m": dict(leads=[1, 3, 6, 12, 24], calendar="diurnal", patch=4), "ersst_sst": dict(leads=[1, 2, 3, 6])}
COMMON = dict(decoder="conv", linear_base=True, dim=64, depth=2)


def era5(budget: float, seed: int) -> tuple[xr.Dataset, dict]:
    """Train on 2019-03-01…24 and score 24 forecasts (every 6 h from 03-25T00) at +1…24 h."""
    ds = xr.open_dataset(DATA / "era5_t2m_uk_2019-03.nc").load()
    train = ds.sel(time=slice(None, "2019-03-24"))
    t0 = time.perf_counter()
    model = gridvit.train(train, time_budget=budget, seed=seed, progress=False, **MODEL["era5_t2m"], **COMMON)
    train_s = time.perf_counter() - t0
    inits = pd.date_range("2019-03-25T00", "2019-03-30T18", freq="6h").values
    t0 = time.perf_counter()
    score = dict(variable="t2m", inits=inits, steps=24, train=train, by="hour")
    sk = forecast_skill(model, ds, **score)
    return sk, {"train_seconds": train_s, "eval_seconds": time.perf_counter() - t0, "budget_s": budget,
                "train_period": ["2019-03-01", "2019-03-24"], "inits": [str(inits[0])[:16], str(inits[-1])[:16]],
                **_model_info(model, sk), **_base_only(model, ds, score)}


def ersst(budget: float, seed: int) -> tuple[xr.Dataset, dict]:
    """Train on 2010–2018 and score 14 forecasts (monthly from 2019-01) at +1…6 months."""
    ds = xr.open_dataset(DATA / "ersst_v5_sst_2010-2020.nc").load()
    train = ds.sel(time=slice(None, "2018-12"))
    t0 = time.perf_counter()
    model = gridvit.train(train, time_budget=budget, seed=seed, progress=False, **MODEL["ersst_sst"], **COMMON)
    train_s = time.perf_counter() - t0
    inits = ds.time.sel(time=slice("2019-01", "2020-02")).values
    t0 = time.perf_counter()
    score = dict(variable="sst", inits=inits, steps=6, train=train, by="month")
    sk = forecast_skill(model, ds, **score)
    return sk, {"train_seconds": train_s, "eval_seconds": time.perf_counter() - t0, "budget_s": budget,
                "train_period": ["2010-01", "2018-12"], "inits": [str(inits[0])[:7], str(inits[-1])[:7]],
                **_model_info(model, sk), **_base_only(model, ds, score)}


def _model_info(model, sk: xr.Dataset) -> dict:
    """The model's configuration and the seam ratios of the first lead's predicted and true change."""
    options = {"leads": list(model.leads or [model.config.lead]), "history": model.config.history, **COMMON}
    return {"model": model.meta()["model_config"], "options": options,
            "seam_ratio": {"gridvit": sk.attrs["seam_ratio_gridvit"], "truth": sk.attrs["seam_ratio_truth"]}}


def _base_only(model, ds: xr.Dataset, score: dict) -> dict:
    """RMSE per lead of the same model with its network's output layer zeroed — the per-cell linear base alone,
    leads combined the same way —, and whether training kept the network at all: what the transformer adds."""
    base = copy.deepcopy(model)
    layer = base.model.output_layer
    kept = any(bool(p.any()) for p in layer.parameters())
    with torch.no_grad():
        for p in layer.parameters():
            p.zero_()
    return {"network_kept": kept,
            "base_only_rmse": forecast_skill(base, ds, **score).rmse.sel(forecast="gridvit").values.tolist()}


def base_sentence(rec: dict, leads: list[int], unit: str) -> str:
    """What the network adds to its own linear base, per lead (results written before it lack it: '')."""
    if "base_only_rmse" not in rec:
        return ""
    if not rec["network_kept"]:
        return "Validation kept the linear base alone: the network's output is zero and gridvit is the base."
    parts = []
    for lead in leads:
        i = rec["lead"].index(lead)
        g, b = rec["rmse"]["gridvit"][i], rec["base_only_rmse"][i]
        parts.append(f"{at(lead, unit)} {b:.3f} → {g:.3f} ({100 * (g / b - 1):+.1f} %)")
    return ("What the transformer adds to its own per-cell linear base (RMSE with the network's output zeroed → "
            "gridvit): " + "; ".join(parts) + ".")


def as_record(sk: xr.Dataset, info: dict) -> dict:
    """JSON-ready: per-method RMSE/ACC lists over ``lead`` plus the run information (undefined ACC: None)."""
    return {**info, "forecasts": int(sk.attrs["forecasts"]), "lead": sk.lead.values.tolist(),
            "rmse": {m: sk.rmse.sel(forecast=m).values.tolist() for m in METHODS},
            "acc": {m: [None if np.isnan(v) else v for v in sk.acc.sel(forecast=m).values.tolist()] for m in METHODS}}


def baselines(rec: dict) -> list[str]:
    """The baselines a record scores (results written before the linear baseline existed lack it)."""
    return [m for m in BASELINES if m in rec["rmse"]]


def at(lead: int, unit: str) -> str:
    """'+3 months', '+1 h'."""
    return f"+{lead} {unit}{'s' if unit == 'month' and lead != 1 else ''}"


def losses(rec: dict) -> list[tuple[int, str, float, float]]:
    """Leads where some baseline's RMSE is below gridvit's: (lead, best baseline, its RMSE, gridvit's)."""
    out = []
    for i, lead in enumerate(rec["lead"]):
        best = min(baselines(rec), key=lambda m: rec["rmse"][m][i])
        if rec["rmse"][best][i] < rec["rmse"]["gridvit"][i]:
            out.append((lead, best, rec["rmse"][best][i], rec["rmse"]["gridvit"][i]))
    return out


def table(rec: dict, leads: list[int], unit: str) -> str:
    """Markdown: RMSE and ACC of every method at ``leads``."""
    head = " | ".join(f"RMSE {m}" for m in METHODS) + " | " + " | ".join(f"ACC {m}" for m in METHODS)
    rows = [f"| lead | {head} | gridvit vs best baseline (RMSE) |", "|---|" + "---:|" * (2 * len(METHODS) + 1)]
    for lead in leads:
        i = rec["lead"].index(lead)
        r = [rec["rmse"][m][i] for m in METHODS]
        a = [rec["acc"][m][i] for m in METHODS]
        best = min(baselines(rec), key=lambda m: rec["rmse"][m][i])
        gain = 100 * (1 - rec["rmse"]["gridvit"][i] / rec["rmse"][best][i])
        bold = ["**{:.3f}**".format(v) if v == min(r) else f"{v:.3f}" for v in r]
        accs = ["—" if v is None else f"{v:.3f}" for v in a]
        rows.append(f"| {at(lead, unit)} | " + " | ".join(bold + accs) + f" | {gain:+.1f} % ({best.replace('_', ' ')}) |")
    return "\n".join(rows)


def verdicts(rec: dict, unit: str) -> str:
    """One compact line per lead: gridvit's RMSE, the best baseline's, and ✓/✗."""
    rows = ["| lead | gridvit | best baseline | verdict |", "|---|---:|---:|---|"]
    for i, lead in enumerate(rec["lead"]):
        best = min(baselines(rec), key=lambda m: rec["rmse"][m][i])
        g, b = rec["rmse"]["gridvit"][i], rec["rmse"][best][i]
        rows.append(f"| {at(lead, unit)} | {g:.3f} | {b:.3f} ({best.replace('_', ' ')}) | {'✓' if g < b else '✗'} |")
    return "\n".join(rows)


def loss_sentence(rec: dict, unit: str) -> str:
    """Plain words for where gridvit loses: RMSE against every baseline, ACC against anomaly persistence."""
    lost, n = losses(rec), len(rec["lead"])
    units = unit + ("s" if unit == "month" else "")
    if not lost:
        text = "gridvit has the lowest RMSE at every lead."
    else:
        by = {}
        for lead, best, _, _ in lost:
            by.setdefault(best.replace("_", " "), []).append(f"+{lead}")
        parts = "; ".join(f"{name} at {', '.join(ls)} {units}" for name, ls in by.items())
        text = f"**gridvit loses** (higher RMSE) at {len(lost)} of {n} leads — beaten by {parts}."
    acc_g, acc_a = rec["acc"]["gridvit"], rec["acc"]["anomaly_persistence"]
    below = [f"+{lead}" for lead, g, a in zip(rec["lead"], acc_g, acc_a) if g < a]
    if below:
        where = "every lead" if len(below) == n else f"{len(below)} of {n} leads ({', '.join(below)} {units})"
        text += f" On ACC gridvit is below anomaly persistence at {where}."
    return text


def figure(results: dict, path: Path) -> None:
    """RMSE and ACC vs lead, one row per dataset."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(results), 2, figsize=(10, 3.6 * len(results)), squeeze=False)
    style = {"gridvit": "-o", "persistence": "--", "climatology": ":", "anomaly_persistence": "-.", "linear": "-s"}
    for row, (key, rec) in zip(axes, results.items()):
        name, unit, units = LABEL[key]
        for m in METHODS:
            row[0].plot(rec["lead"], rec["rmse"][m], style[m], label=m.replace("_", " "), ms=3)
            row[1].plot(rec["lead"], np.array(rec["acc"][m], dtype=float), style[m], label=m.replace("_", " "), ms=3)
        row[0].set(title=f"{name}: RMSE", xlabel=f"lead ({unit})", ylabel=f"area-weighted RMSE ({units})")
        row[1].set(title=f"{name}: ACC (uncentred, vs training climatology)", xlabel=f"lead ({unit})", ylabel="ACC")
        row[0].legend(fontsize=8)
        for ax in row:
            ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def markdown(results: dict, mode: str) -> str:
    md = ["# Climate skill per lead: gridvit vs persistence, climatology, anomaly persistence", "",
          f"Mode: {mode}. Multi-lead forecasts are autoregressive rollouts of one trained model. RMSE: "
          "area-weighted (WeatherBench 2: sqrt of the forecast-mean of Σ w (f − o)² / Σ w). ACC: WeatherBench 2's "
          "**uncentred** anomaly correlation Σ w f′o′ / √(Σ w f′² · Σ w o′²), anomalies against the climatology of "
          "the **training period only** (ERA5: by hour of day; ERSST: by month), averaged over forecasts. Area "
          "weights: cell area sin(upper) − sin(lower) from latitude bounds, mean 1 (≈ cos lat); ERSST land cells "
          "excluded. Anomaly persistence = climatology at the valid time + the initial anomaly. Linear = per-cell "
          "least squares on the last `history` anomalies and the calendar channels, one regression per lead, fitted "
          "on the training period only (the WeatherBench/ClimateLearn linear-regression baseline). Climatology's ACC is undefined (its anomaly is zero): —. Best RMSE per lead in bold; the "
          "last column is gridvit's RMSE gain over the best baseline (negative: gridvit loses).", "", "![skill](climate_skill.png)", ""]
    for key, rec in results.items():
        name, unit, units = LABEL[key]
        md += [f"## {name} ({units}), {rec['forecasts']} forecasts from {rec['inits'][0]} to {rec['inits'][1]}, "
               f"trained on {rec['train_period'][0]} … {rec['train_period'][1]}", "",
               f"Training budget {rec['budget_s']:.0f} s (took {rec['train_seconds']:.0f} s); scoring took "
               f"{rec['eval_seconds']:.0f} s. Model: leads {rec['options']['leads']} (every other lead by combining "
               f"them), history {rec['options']['history']}, decoder {rec['options']['decoder']}, per-cell linear "
               f"base {rec['options']['linear_base']}, patch {rec['model']['patch']}, width {rec['model']['dim']}, "
               f"depth {rec['model']['depth']}.", "",
               table(rec, TABLE_LEADS[key], unit), "", loss_sentence(rec, unit), "",
               base_sentence(rec, TABLE_LEADS[key], unit), "",
               f"Seam ratio of the {at(rec['lead'][0], unit)} change (forecast − initial state; mean squared jump "
               f"across patch borders ÷ inside patches, `gridvit.metrics.seam_ratio`): gridvit "
               f"{rec['seam_ratio']['gridvit']:.2f}, true change {rec['seam_ratio']['truth']:.2f}.", "",
               "Every lead, RMSE (✓: gridvit below every baseline):", "", verdicts(rec, unit), ""]
    return "\n".join(md)


def headline(result: dict) -> list[dict]:
    """Summary rows for benchmarks/README.md: every lead's verdict, the issue's ratio goals, the seam ratio."""
    rows = []
    for key, leads in (("era5_t2m", (1, 6, 24)), ("ersst_sst", (1, 3, 6))):
        rec = result.get(key)
        if rec is None:
            continue
        name, unit, units = LABEL[key]
        lost = losses(rec)
        where = ", ".join(f"{at(lead, unit)} ({best.replace('_', ' ')})" for lead, best, _, _ in lost)
        rows.append({"result": f"{name}: leads where gridvit's RMSE is below all {len(baselines(rec))} baselines",
                     "value": f"{len(rec['lead']) - len(lost)} of {len(rec['lead'])}" + (f"; lost at {where}" if lost else ""),
                     "goal": "every lead", "met": not lost})
        for lead in leads:
            i = rec["lead"].index(lead)
            best = min(baselines(rec), key=lambda m: rec["rmse"][m][i])
            g, b = rec["rmse"]["gridvit"][i], rec["rmse"][best][i]
            goal, met = "below every baseline", g < b
            if (key, lead) == ("era5_t2m", 1):
                p = rec["rmse"]["persistence"][i]
                goal, met = "≤ 0.55× persistence", g <= 0.55 * p
                value = f"{g:.3f} K = {g / p:.2f}× persistence; best baseline {b:.3f} ({best.replace('_', ' ')})"
            elif (key, lead) in (("era5_t2m", 24), ("ersst_sst", 1)):
                goal = "≤ 0.9× best baseline" if key == "era5_t2m" else "≥ 10 % below best baseline"
                met = g <= 0.9 * b
                value = f"{g:.3f} vs {b:.3f} {units} ({best.replace('_', ' ')}) = {g / b:.2f}×"
            else:
                value = f"{g:.3f} vs {b:.3f} {units} ({best.replace('_', ' ')}); ACC {rec['acc']['gridvit'][i]:.2f}"
            rows.append({"result": f"{name} {at(lead, unit)}: RMSE gridvit vs best baseline", "value": value,
                         "goal": goal, "met": bool(met)})
        if key == "ersst_sst":
            below = [f"+{lead}" for lead, g, a in zip(rec["lead"], rec["acc"]["gridvit"], rec["acc"]["anomaly_persistence"])
                     if g is not None and a is not None and g <= a]
            rows.append({"result": f"{name}: ACC above anomaly persistence", "value": "every lead" if not below else
                         f"not at {', '.join(below)} months", "goal": "every lead", "met": not below})
        seam = rec.get("seam_ratio")
        if seam:
            ok = abs(seam["gridvit"] - seam["truth"]) <= 0.1 * seam["truth"]
            rows.append({"result": f"{name}: seam ratio of the {at(rec['lead'][0], unit)} change",
                         "value": f"{seam['gridvit']:.2f} (true change {seam['truth']:.2f})",
                         "goal": "within 10 % of the true change's", "met": bool(ok)})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="120 s training per dataset (≤ 8 min in all)")
    ap.add_argument("--era5-budget", type=float, default=None, help="training seconds (default 600, quick 120)")
    ap.add_argument("--ersst-budget", type=float, default=None, help="training seconds (default 600, quick 120)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-write", action="store_true", help="print only; leave benchmarks/results/ alone")
    args = ap.parse_args()
    default = 120.0 if args.quick else 600.0
    budgets = {"era5_t2m": args.era5_budget or default, "ersst_sst": args.ersst_budget or default}
    if not DATA.is_dir():
        raise SystemExit(f"the real datasets are not at {DATA} (see the project README); nothing to score")
    t0 = time.perf_counter()
    results = {}
    for key, run in (("era5_t2m", era5), ("ersst_sst", ersst)):
        sk, info = run(budgets[key], args.seed)
        results[key] = as_record(sk, info)
        name, unit, _ = LABEL[key]
        print(f"{name}: trained {info['train_seconds']:.0f} s, scored {info['eval_seconds']:.0f} s", flush=True)
        print(table(results[key], TABLE_LEADS[key], unit), "\n" + loss_sentence(results[key], unit), "\n"
              + base_sentence(results[key], TABLE_LEADS[key], unit), flush=True)
    mode = "quick" if args.quick else "full"
    md = markdown(results, mode)
    if not args.no_write:
        RESULTS.mkdir(parents=True, exist_ok=True)
        figure(results, RESULTS / "climate_skill.png")
        write_results("climate_skill", {"mode": mode, "seed": args.seed, **results,
                                        "seconds": time.perf_counter() - t0}, md)
    print(f"total {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
