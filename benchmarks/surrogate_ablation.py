"""What each change to the PDE surrogates buys in nRMSE: an ablation at equal optimiser steps.

The data, test set and errors are those of ``surrogate_vs_stencil.py`` (32² evaluation grid, trajectories of
the reference scheme on a 4× finer grid restricted spectrally, nRMSE at the case's three horizons from
unseen initial states). Every variant trains for the same number of optimiser steps (``--steps``, batch 8)
rather than the same wall time, so the table compares accuracy per update independently of the machine;
the wall time of each run is reported beside it. Variants, cumulative where the name says ``+``:

- ``pure`` — today's pure surrogate (patch 4, linear decoder, the case's model and unrolled loss);
- ``+ patch 2`` — 4× more tokens; ``+ conv decoder`` — pixel shuffle and 3×3 convolutions across patches;
- ``+ noise`` — Gaussian input noise (0.01 normalised units) in training;
- ``+ 4× data`` — 4× the training trajectories (same steps, so fewer passes over each);
- ``corrected`` — learned correction on the case's coarse scheme (patch 2, conv decoder), with the bare
  coarse scheme's error beside it, unrolled loss with and without backpropagation through the solver.

    python benchmarks/surrogate_ablation.py --device cuda --budget-s 200   # one H200, writes results
    python benchmarks/surrogate_ablation.py --device cuda --start 5 --budget-s 100  # continue a cut run
    python benchmarks/surrogate_ablation.py --smoke                # CPU, seconds, prints only
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys

if __name__ == "__main__":
    for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(_var, "1")
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parents[1])]
from _common import RESULTS, load_span, write_results  # noqa: E402
from surrogate_vs_stencil import CASES, PRESETS, as_dataset, initial_states, nrmse, reference, run_to_horizons  # noqa: E402

NAME = "surrogate_ablation"
TRAIN = 64  # training trajectories (×4 where a variant says so); the smoke preset keeps its own
# (name, pde, model options over the case's, coarse scheme "name:k" or None, training-trajectory multiple)
VARIANTS: list[tuple[str, str, dict[str, Any], str | None, int]] = [  # in the order they are run
    ("pure", "burgers", {}, None, 1),
    ("+ patch 2", "burgers", {"patch": 2}, None, 1),
    ("+ conv decoder", "burgers", {"patch": 2, "decoder": "conv"}, None, 1),
    ("corrected upwind:6, 1-step loss", "burgers", {"patch": 2, "decoder": "conv", "rollout_steps": 1}, "upwind:6", 1),
    ("corrected central:2, 1-step loss", "navier_stokes", {"patch": 2, "decoder": "conv", "rollout_steps": 1},
     "central:2", 1),
    ("corrected upwind:6, unrolled through solver", "burgers", {"patch": 2, "decoder": "conv"}, "upwind:6", 1),
    ("+ noise", "burgers", {"patch": 2, "decoder": "conv", "input_noise": 0.01}, None, 1),
    ("pure", "navier_stokes", {}, None, 1),
    ("+ patch 2, conv decoder", "navier_stokes", {"patch": 2, "decoder": "conv"}, None, 1),
    ("corrected central:8, 1-step loss", "navier_stokes", {"patch": 2, "decoder": "conv", "rollout_steps": 1},
     "central:8", 1),
    ("+ 4× data", "burgers", {"patch": 2, "decoder": "conv", "input_noise": 0.01}, None, 4),
    ("corrected upwind:6, unrolled, pushforward", "burgers", {"patch": 2, "decoder": "conv", "pushforward": True},
     "upwind:6", 1),
    ("+ 4× data", "navier_stokes", {"patch": 2, "decoder": "conv"}, None, 4),
    ("corrected central:2, unrolled through solver", "navier_stokes", {"patch": 2, "decoder": "conv"}, "central:2", 1),
]


def run_variant(name: str, pde: str, options: dict[str, Any], coarse: str | None, data: dict[str, np.ndarray],
                *, steps: int, device: str) -> dict[str, Any]:
    """Train one variant for ``steps`` optimiser steps and roll it out on the test set."""
    import gridvit
    import gridvit.solvers as gs

    case, n = CASES[pde], data["test"].shape[-1]
    model = {**case.model, **options}
    solver = None
    if coarse is not None:
        scheme, k = coarse.split(":")
        solver = gs.scheme_for(pde, scheme, dt=case.step / int(k), dx=case.extent / n, dy=case.extent / n,
                               **case.params)
    train = data["train"]
    windows = train.shape[0] * (train.shape[1] - model.get("rollout_steps", 1))
    epochs = max(1, round(steps * 8 / windows))
    start = time.perf_counter()
    try:
        sur = gridvit.train(as_dataset(case, train), solver=solver, history=1, lead=1, epochs=epochs, batch_size=8,
                            climatology=None, calendar=False, progress=False, device=device, seed=0, patience=10**6,
                            val_fraction=0.0, **model)
    except FloatingPointError as err:  # a diverged training is a result too
        print(f"{pde:14s} {name:45s} training diverged: {err}", flush=True)
        return {"variant": name, "pde": pde, "options": options, "coarse": coarse, "epochs": epochs, "steps": steps,
                "train_trajectories": train.shape[0], "train_s": time.perf_counter() - start,
                "nrmse": [math.inf] * len(case.horizons), "diverged": str(err)}
    train_s = time.perf_counter() - start
    x0 = torch.tensor(data["test"][:, 0], dtype=torch.float32, device=device)  # (B, C, N, N)
    states, _ = run_to_horizons(sur.step, x0, 1, case.horizons, repeats=1)
    row = {"variant": name, "pde": pde, "options": options, "coarse": coarse, "train_trajectories": train.shape[0],
           "epochs": epochs, "steps": steps, "train_s": train_s,
           "nrmse": [nrmse(s, data["test"][:, h]) for s, h in zip(states, case.horizons)]}
    if solver is not None:
        bare, _ = run_to_horizons(solver, x0, sur.solver.substeps, case.horizons, repeats=1)
        row["bare_nrmse"] = [nrmse(s, data["test"][:, h]) for s, h in zip(bare, case.horizons)]
    print(f"{pde:14s} {name:45s} nRMSE " + " ".join(f"{e:.4f}" for e in row["nrmse"])
          + (" | bare " + " ".join(f"{e:.4f}" for e in row["bare_nrmse"]) if solver is not None else "")
          + f" ({train_s:.0f} s, {epochs} epochs)", flush=True)
    return row


def make_data(pde: str, multiple: int, *, grid: int, fine: int, train: int, test: int, device: str) -> dict[str, np.ndarray]:
    """Training (seed 1) and test (seed 2) trajectories restricted to grid²: (S, T, C, grid, grid) each."""
    case = CASES[pde]
    u_train = initial_states(case, fine * grid, train * multiple, seed=1)
    u_test = initial_states(case, fine * grid, test, seed=2)
    return {"train": reference(case, u_train, grid=grid, steps=case.train_steps, device=device),
            "test": reference(case, u_test, grid=grid, steps=max(case.horizons), device=device)}


def headline(result: dict[str, Any]) -> list[dict[str, Any]]:
    """Per PDE: the best variant at the middle horizon; per learned correction: its gain over the bare scheme."""
    rows = []
    for pde in dict.fromkeys(r["pde"] for r in result["rows"]):
        mine = [r for r in result["rows"] if r["pde"] == pde]
        t = CASES[pde].horizons[1] * CASES[pde].step
        best = min(mine, key=lambda r: r["nrmse"][1])
        pure = [f"pure {r['nrmse'][1]:.3f}" for r in mine if r["variant"] == "pure"]
        rows.append({"result": f"{pde}: lowest nRMSE at T={t:g} ({result['settings']['steps']} steps)",
                     "value": "; ".join([f"{best['nrmse'][1]:.3f} ({best['variant']})", *pure]),
                     "goal": "", "met": None})
        for r in mine:
            if "bare_nrmse" in r and "diverged" not in r:
                gain = min(b / e for b, e in zip(r["bare_nrmse"], r["nrmse"]))
                rows.append({"result": f"{pde}: {r['variant']} vs its bare scheme (worst horizon)",
                             "value": f"{gain:.2f}× more accurate", "goal": "≥ 2×", "met": gain >= 2})
    return rows


def markdown(payload: dict[str, Any]) -> str:
    s = payload["settings"]
    lines = [f"# Surrogate ablation ({s['device']}, {s['steps']} optimiser steps of batch 8 per variant)", "",
             f"{s['grid']}² evaluation grid, reference {s['fine'] * s['grid']}² restricted, {s['train']} training "
             f"trajectories (×4 where marked), {s['test']} unseen test trajectories; nRMSE (PDEBench) at the "
             "case's horizons. Equal optimiser steps, not equal time: the wall time is beside each row.", ""]
    for pde in dict.fromkeys(r["pde"] for r in payload["rows"]):
        ts = [h * CASES[pde].step for h in CASES[pde].horizons]
        lines += [f"## {pde}", "", "| variant | " + " | ".join(f"T={t:g}" for t in ts) + " | bare coarse scheme | "
                  "steps | train s |", "|---|" + "---|" * len(ts) + "---|---|---|"]
        for r in payload["rows"]:
            if r["pde"] == pde:
                bare = " / ".join(f"{e:.3f}" for e in r["bare_nrmse"]) if "bare_nrmse" in r else ""
                if "diverged" in r:
                    bare = "training diverged (loss non-finite)"
                lines.append(f"| {r['variant']} | " + " | ".join(f"{e:.3f}" for e in r["nrmse"])
                             + f" | {bare} | {r.get('steps', s['steps'])} | {r['train_s']:.0f} |")
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--steps", type=int, default=3000, help="optimiser steps per variant (default 3000)")
    ap.add_argument("--smoke", action="store_true", help="16², a few steps, prints only")
    ap.add_argument("--only", default="", help="comma-separated pdes to run (default all)")
    ap.add_argument("--start", type=int, default=0,
                    help="skip the first START variants and append to the rows already in results/ (a continued run)")
    ap.add_argument("--budget-s", type=float, default=float("inf"),
                    help="start no new variant after this many seconds; results so far are written")
    args = ap.parse_args(argv)
    st = PRESETS["smoke" if args.smoke else "quick"]
    steps = 4 if args.smoke else args.steps
    load_start = os.getloadavg()
    data: dict[tuple[str, int], dict[str, np.ndarray]] = {}
    rows, start_all = [], time.perf_counter()
    if args.start:
        rows = json.loads((RESULTS / f"{NAME}.json").read_text())["rows"][: args.start]
    train = st.train_samples if args.smoke else TRAIN
    settings = {"device": args.device, "steps": steps, "grid": st.grid, "fine": st.fine, "train": train,
                "test": st.test_samples}
    def payload() -> dict[str, Any]:
        return {"settings": {**settings, "load_average": load_span(load_start)}, "rows": rows}

    for name, pde, options, coarse, multiple in VARIANTS[args.start:]:
        if time.perf_counter() - start_all > args.budget_s:
            print(f"budget of {args.budget_s:g} s spent: variants from {name!r} ({pde}) on not run", flush=True)
            break
        if args.only and pde not in args.only.split(","):
            continue
        multiple = 1 if args.smoke else multiple  # the smoke grid's coarse reference is unstable on more draws
        if (pde, multiple) not in data:
            start = time.perf_counter()
            data[pde, multiple] = make_data(pde, multiple, grid=st.grid, fine=st.fine, train=train,
                                            test=st.test_samples, device=args.device)
            print(f"{pde}: data ×{multiple} in {time.perf_counter() - start:.0f} s", flush=True)
        rows.append(run_variant(name, pde, options, coarse, data[pde, multiple], steps=steps, device=args.device))
        if not args.smoke:  # after every variant, so a run cut short keeps what it measured
            write_results(NAME, payload(), markdown(payload()))
    print(markdown(payload()))


if __name__ == "__main__":
    main()
