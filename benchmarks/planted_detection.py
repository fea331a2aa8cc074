"""Planted-teleconnection detection: how often attention, gradient sensitivity and the lagged correlation
find a planted source, across seeds, couplings and a 2-step lag.

Data: :func:`gridvit.examples.planted_teleconnection` (16×32 global grid, the target box B follows the
source box A ~15 400 km away ``lag`` steps later with strength ``coupling``; the control has no link).
Per seed (data and training), a tiny model is trained for a fixed number of epochs (not a time budget: the
machine is shared) and B's forecast is asked where it comes from:

- sensitivity: the peak of B's gradient-sensitivity map outside B's own patches lies within one patch of A;
- attention: the peak of the attention map of B's farthest-reaching head lies within one patch of A;
- correlation: some cell of A is significant in the lagged-correlation map (phase-randomised-index null,
  Benjamini–Hochberg FDR 0.05) — the data's own answer, no model.

The control (coupling 2 with the link removed) gives the false-positive rate of each criterion. Writes
``results/planted_detection.{json,md}``. ``--quick`` (44 models) took 44 min with 2 workers at load average ~10:

    python benchmarks/planted_detection.py --quick
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, load_span, write_results  # noqa: E402

SOURCE = {"lat": (0.0, 40.0), "lon": (40.0, 80.0)}
TARGET = {"lat": (-40.0, 0.0), "lon": (175.0, 220.0)}
TARGET_CENTRE = {"lat": -20.0, "lon": 197.0}
LONG_RANGE_KM = 14_000.0
EPOCHS = 80
TRAINING = dict(patch=4, dim=32, depth=2, heads=2, epochs=EPOCHS, batch_size=16, lr=1e-2, val_fraction=0.0,
                patience=1000, calendar=False, climatology=None, progress=False)


def patch_mask(mask: np.ndarray, p: int) -> np.ndarray:
    """(nh, nw) bool: patches holding a cell of the (H, W) mask."""
    h, w = mask.shape
    return mask.reshape(h // p, p, w // p, p).any(axis=(1, 3))


def gap(cell: tuple[int, int], target: np.ndarray, p: int) -> int:
    """Chebyshev distance in patches from the patch of ``cell`` to the nearest patch of ``target`` (lon wraps)."""
    rows, cols = np.nonzero(target)
    dc = np.abs(cols - cell[1] // p)
    return int(np.min(np.maximum(np.abs(rows - cell[0] // p), np.minimum(dc, target.shape[1] - dc))))


def one(job: tuple[float, int, int, bool]) -> dict:
    """Train on one planted dataset and score the three criteria."""
    import torch

    torch.set_num_threads(1)
    import gridvit
    from gridvit import analysis
    from gridvit.examples import planted_teleconnection

    coupling, lag, seed, coupled = job
    ds = planted_teleconnection(coupled=coupled, coupling=coupling, lag=lag, seed=seed)
    t0 = time.perf_counter()
    sur = gridvit.train(ds, history=lag, seed=seed, **TRAINING)
    train_s = time.perf_counter() - t0
    p = sur.model.cfg.patch
    a_patches = patch_mask(analysis.region_mask(sur.spec, SOURCE), p)
    own = np.kron(patch_mask(analysis.region_mask(sur.spec, TARGET), p), np.ones((p, p), bool))  # (H, W)
    sens = analysis.sensitivity(sur, ds, region=TARGET).sensitivity.values
    peak_s = np.unravel_index(int(np.nanargmax(np.where(own, -np.inf, sens))), sens.shape)
    tele = analysis.teleconnection(sur, ds, region=TARGET, min_distance_km=LONG_RANGE_KM)
    top = {k: int(v) for k, v in tele.long_range_fraction.argmax(...).items()}
    att = analysis.attention_maps(sur, ds, at=TARGET_CENTRE, **top).values
    peak_a = np.unravel_index(int(att.argmax()), att.shape)
    corr = analysis.correlation_significance(ds, region=TARGET, lag=-lag, n_null=200, seed=seed)
    in_a = analysis.region_mask(sur.spec, SOURCE)
    return {"coupling": coupling, "lag": lag, "seed": seed, "coupled": coupled, "train_seconds": round(train_s, 1),
            "sensitivity_found": gap(peak_s, a_patches, p) <= 1, "attention_found": gap(peak_a, a_patches, p) <= 1,
            "correlation_found": bool(corr.significant.values[in_a].any()),
            "sensitivity_source_share": round(float(np.nansum(sens[in_a]) / np.nansum(np.where(own, 0, sens))), 3),
            "top_head_long_range_fraction": round(float(tele.long_range_fraction.isel(top)), 3),
            "top_head_beyond_prior": bool(tele.beyond_prior.isel(top)),
            "correlation_min_p_fdr_in_source": float(np.nanmin(corr.p_fdr.values[in_a]))}


def summarise(runs: list[dict]) -> list[dict]:
    """Detection rates per (lag, coupling, coupled)."""
    keys = sorted({(r["lag"], r["coupling"], r["coupled"]) for r in runs}, key=lambda k: (k[0], not k[2], k[1]))
    out = []
    for lag, coupling, coupled in keys:
        rs = [r for r in runs if (r["lag"], r["coupling"], r["coupled"]) == (lag, coupling, coupled)]
        out.append({"lag": lag, "coupling": coupling, "coupled": coupled, "seeds": len(rs),
                    **{f"{k}_found": sum(r[f"{k}_found"] for r in rs) for k in ("sensitivity", "attention", "correlation")},
                    "median_source_share": float(np.median([r["sensitivity_source_share"] for r in rs]))})
    return out


def markdown(result: dict) -> str:
    rows = "\n".join(
        f"| {s['lag']} | {s['coupling'] if s['coupled'] else 'control (no link)'} | {s['seeds']} | "
        f"{s['sensitivity_found']}/{s['seeds']} | {s['median_source_share']:.2f} | {s['attention_found']}/{s['seeds']} | "
        f"{s['correlation_found']}/{s['seeds']} |"
        for s in result["summary"])
    s = {(r["lag"], r["coupling"], r["coupled"]): r for r in result["summary"]}
    reading = ""
    if (1, 2.0, False) in s:
        c, m = s[(1, 2.0, False)], s[(1, 2.0, True)]
        reading = (f"In the control the attention peak still lands near A in {c['attention_found']}/{c['seeds']} seeds "
                   f"(A's strong, unpredictable index draws attention without any link), the sensitivity peak in "
                   f"{c['sensitivity_found']}/{c['seeds']} with A holding a median {c['median_source_share']:.2f} of "
                   f"the sensitivity (coupled: {m['median_source_share']:.2f}): where a head looks is weak evidence, "
                   "what the forecast depends on separates a link from a salient region.")
    return f"""# Planted teleconnection: detection rate vs coupling

`gridvit.examples.planted_teleconnection` (16×32 cells, B follows A ~15 400 km away `lag` steps later with
strength `coupling`; A's index has std 2, the background std 1). Per seed a tiny model (2 layers × 2 heads,
dim 32, patch 4, history = lag) trained {EPOCHS} epochs (fixed, {result['mode']} mode) and asked where B's
forecast comes from. Found = the peak of B's **sensitivity** map outside B's own patches, or of its
farthest-reaching **attention** head, lies within one patch of A; **correlation** = some cell of A
significant in the lag-`lag` correlation map (phase-randomised-index null, Benjamini–Hochberg FDR 0.05).
The control rows (same data, link removed) are false-positive rates; "within one patch of A" covers 9 of the
31 patches outside B, so a peak placed at random lands there about 30 % of the time — A's share of the
sensitivity outside B (next column) separates a link from chance.

| lag | coupling | seeds | sensitivity | A's share of sensitivity (median) | attention | correlation |
|---|---|---|---|---|---|---|
{rows}

{reading}

Wall time {result['seconds']:.0f} s ({result['workers']} worker processes, 1 thread each); load average
{result['load']}. Training per model: median {result['median_train_s']:.0f} s.
"""


def headline(result: dict) -> list[dict]:
    """Rows for benchmarks/README.md; the goal is the issue's: 12/12 seeds at coupling 2 by sensitivity."""
    s = {(r["lag"], r["coupling"], r["coupled"]): r for r in result["summary"]}
    main = s[(1, 2.0, True)]
    ctrl = s.get((1, 2.0, False))
    curve = ", ".join(f"{c:g}: {r['sensitivity_found']}/{r['seeds']}" for (lag, c, cp), r in sorted(s.items())
                      if lag == 1 and cp)
    lag2 = ", ".join(f"{c:g}: {r['sensitivity_found']}/{r['seeds']}" for (lag, c, cp), r in sorted(s.items())
                     if lag == 2 and cp)
    rows = [{"result": "planted link (coupling 2), seeds whose sensitivity map names the source",
             "value": f"{main['sensitivity_found']}/{main['seeds']} (attention {main['attention_found']}/{main['seeds']}"
                      + (f"; control false positives {ctrl['sensitivity_found']}/{ctrl['seeds']})" if ctrl else ")"),
             "goal": "12/12", "met": main["sensitivity_found"] == main["seeds"] >= 12},
            {"result": "sensitivity detection vs coupling (lag 1)", "value": curve, "goal": "", "met": None}]
    if lag2:
        rows.append({"result": "sensitivity detection vs coupling (lag 2)", "value": lag2, "goal": "", "met": None})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="12 seeds at coupling 2, 4 per other point")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--render", action="store_true", help="only rewrite the markdown from the results JSON")
    args = ap.parse_args()
    if args.render:
        result = json.loads((RESULTS / "planted_detection.json").read_text())
        result = {k: v for k, v in result.items() if k not in ("machine", "date")}
        result["summary"] = summarise(result["runs"])
        write_results("planted_detection", result, markdown(result))
        return
    os.environ["OMP_NUM_THREADS"] = "1"
    curve_seeds = range(4) if args.quick else range(12)
    jobs = [(2.0, 1, s, c) for s in range(12) for c in (True, False)]
    jobs += [(c, 1, s, True) for c in (0.25, 0.5, 1.0) for s in curve_seeds]
    jobs += [(c, 2, s, True) for c in (0.5, 2.0) for s in curve_seeds]
    load0, t0 = os.getloadavg(), time.perf_counter()
    with ProcessPoolExecutor(args.workers) as pool:
        runs = list(pool.map(one, jobs))
    result = {"mode": "quick" if args.quick else "full", "epochs": EPOCHS, "workers": args.workers,
              "seconds": time.perf_counter() - t0, "load": load_span(load0),
              "median_train_s": float(np.median([r["train_seconds"] for r in runs])),
              "summary": summarise(runs), "runs": runs}
    text = markdown(result)
    write_results("planted_detection", result, text)
    print(text)


if __name__ == "__main__":
    main()
