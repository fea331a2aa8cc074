"""Zero-shot resolution transfer: a model trained on a coarse grid applied to the fine grid (``regrid=True``)
vs a model trained on the fine grid, same architecture and the same number of epochs.

Two cases:

- ``toy climate``: :func:`gridvit.examples.toy_climate` on 16×32 (coarse) and 32×64 (fine) — the same
  travelling waves sampled at two resolutions; trained on the first ``n_train`` 6-hourly steps, scored
  one step ahead from every later start (area-weighted RMSE, K);
- ``Burgers``: :func:`gridvit.solvers.simulate` on 32² (fine), the coarse data ``coarsen(fine, 2)`` (16²,
  block mean); trained on the first samples, scored one saved step ahead on held-out samples (nRMSE).

Persistence (the last input state) is the baseline. Fixed epochs, not a time budget, so the comparison
holds on a loaded machine; the fine model sees 4× the tokens per window (more compute per epoch).

    .venv/bin/python benchmarks/resolution_transfer.py --quick
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parents[1])]
from _common import load_span, write_results  # noqa: E402

import gridvit  # noqa: E402
from gridvit.examples import toy_climate  # noqa: E402
from gridvit.metrics import nrmse, rmse  # noqa: E402
from gridvit.solvers import coarsen, simulate  # noqa: E402

MODEL = dict(dim=32, depth=2, heads=4, patch=4, batch_size=8, lr=3e-3, progress=False, seed=0)


def climate_case(epochs: int, n_time: int) -> dict:
    coarse = toy_climate(n_time=n_time, shape=(16, 32), seed=2)
    fine = toy_climate(n_time=n_time, shape=(32, 64), seed=2)
    n_train = int(0.8 * n_time)
    models = {name: gridvit.train(ds.isel(time=slice(0, n_train)), epochs=epochs, **MODEL)
              for name, ds in (("coarse", coarse), ("fine", fine))}
    w = models["fine"].spec.grid.area_weights()
    errs = {"fine-trained": [], "coarse-trained, regrid=True": [], "persistence": []}
    for start in range(n_train, n_time - 1):
        ds, truth = fine.isel(time=slice(0, start)), fine.t2m.values[start]
        errs["fine-trained"].append(rmse(models["fine"].predict(ds).t2m.values[0], truth, weights=w))
        errs["coarse-trained, regrid=True"].append(rmse(models["coarse"].predict(ds, regrid=True).t2m.values[0], truth,
                                                        weights=w))
        errs["persistence"].append(rmse(fine.t2m.values[start - 1], truth, weights=w))
    return {"case": "toy climate 16×32 → 32×64", "metric": "RMSE (K), one 6 h step",
            "scores": {k: float(np.mean(v)) for k, v in errs.items()}, "starts": n_time - 1 - n_train}


def burgers_case(epochs: int, samples: int) -> dict:
    fine = simulate("burgers", shape=(32, 32), t_end=0.5, save_every=0.05, samples=samples, seed=0)
    coarse = coarsen(fine, 2)
    n_train = samples - 2
    opts = dict(MODEL, history=1, val_fraction=0.0)
    models = {name: gridvit.train(ds.isel(sample=slice(0, n_train)), epochs=epochs, **opts)
              for name, ds in (("coarse", coarse), ("fine", fine))}
    test = fine.isel(sample=slice(n_train, None))
    errs = {"fine-trained": [], "coarse-trained, regrid=True": [], "persistence": []}
    for k in range(1, test.sizes["time"]):
        ds = test.isel(time=slice(0, k))
        truth = test[["u", "v"]].isel(time=k).to_array("c").transpose("sample", "c", ...)  # (S, C, H, W)
        for name, pred in (("fine-trained", models["fine"].predict(ds)),
                           ("coarse-trained, regrid=True", models["coarse"].predict(ds, regrid=True)),
                           ("persistence", ds.isel(time=[-1]))):
            p = pred[["u", "v"]].isel(time=0).to_array("c").transpose("sample", "c", ...)
            errs[name].append(nrmse(p.values, truth.values))
    return {"case": "Burgers 16² → 32²", "metric": "nRMSE, one saved step (Δt 0.05)",
            "scores": {k: float(np.mean(v)) for k, v in errs.items()}, "starts": (test.sizes["time"] - 1) * 2}


def markdown(result: dict) -> str:
    lines = ["# Zero-shot resolution transfer", "",
             f"Mode: {result['mode']}. Same model (D=32, depth 2, patch 4) and {result['epochs']} epochs for both; the "
             "coarse-trained model runs on the fine grid through `predict(ds, regrid=True)` (mask, climatology and "
             "static fields interpolated, distance bias rebuilt). Scores on the fine grid, held-out data.", "",
             "| case | metric | fine-trained | coarse-trained, regrid=True | persistence | transfer ÷ fine |",
             "|---|---|---:|---:|---:|---:|"]
    for r in result["rows"]:
        s = r["scores"]
        moved = s["coarse-trained, regrid=True"]
        lines.append(f"| {r['case']} | {r['metric']} | {s['fine-trained']:.4f} | {moved:.4f} | "
                     f"{s['persistence']:.4f} | {moved / s['fine-trained']:.2f}× |")
    lines += ["", f"Load average (1, 5, 15 min) at start {result['load_average']['start']}, at end "
              f"{result['load_average']['end']} on {os.cpu_count()} cores; {result['seconds']:.0f} s.", ""]
    return "\n".join(lines)


def headline(result: dict) -> list[dict]:
    """Summary rows for benchmarks/README.md (no goal: a measurement)."""
    return [{"result": f"resolution transfer, {r['case']}: coarse-trained (regrid=True) ÷ fine-trained error",
             "value": f"{r['scores']['coarse-trained, regrid=True'] / r['scores']['fine-trained']:.2f}× "
                      f"(persistence {r['scores']['persistence'] / r['scores']['fine-trained']:.2f}×)",
             "goal": "", "met": None} for r in result["rows"]]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer epochs and samples (≈ 2 min on 2 cores)")
    ap.add_argument("--no-write", action="store_true", help="print only; leave benchmarks/results/ alone")
    args = ap.parse_args()
    torch.set_num_threads(1)
    epochs, n_time, samples = (6, 120, 8) if args.quick else (20, 240, 24)
    t0, load_start = time.perf_counter(), os.getloadavg()
    rows = [climate_case(epochs, n_time), burgers_case(epochs, samples)]
    result = {"mode": "quick" if args.quick else "full", "epochs": epochs, "rows": rows,
              "seconds": time.perf_counter() - t0, "load_average": load_span(load_start)}
    md = markdown(result)
    print(md)
    if not args.no_write:
        write_results("resolution_transfer", result, md)


if __name__ == "__main__":
    main()
