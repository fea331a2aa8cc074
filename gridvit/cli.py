"""Command line: ``gridvit demo | train | predict | info`` (also ``python -m gridvit ...``)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Sequence


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="gridvit", description="Distance-biased ViT surrogates for xarray grids.")
    sub = ap.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="train on a toy climate gridvit makes itself and print skill vs persistence")
    demo.add_argument("--epochs", type=int, default=6)

    tr = sub.add_parser("train", help="train a surrogate on a netCDF file or zarr store (data-parallel under "
                        "torchrun --nproc_per_node=N -m gridvit train ...; rank 0 writes the output)")
    tr.add_argument("data", help="netCDF file (.nc) or zarr store")
    tr.add_argument("--out", required=True, help="run folder: checkpoints, model.gvt, train_log.json")
    tr.add_argument("--var", action="append", dest="variables", help="variable to model (repeatable)")
    tr.add_argument("--time-budget", type=float, help="seconds of training")
    tr.add_argument("--epochs", type=int)
    tr.add_argument("--history", type=int, default=2)
    tr.add_argument("--lead", type=int, default=1)
    tr.add_argument("--patch", type=int)
    tr.add_argument("--dim", type=int, default=128)
    tr.add_argument("--depth", type=int, default=4)
    tr.add_argument("--heads", type=int, default=4)
    tr.add_argument("--batch-size", type=int, default=8, help="global batch (split over torchrun processes)")
    tr.add_argument("--lr", type=float, default=1e-3)
    tr.add_argument("--rollout-steps", type=int, default=1)
    tr.add_argument("--val-fraction", type=float, default=0.1)
    tr.add_argument("--seed", type=int, default=0)
    tr.add_argument("--device", default="auto")
    tr.add_argument("--num-workers", type=int, default=0, help="DataLoader worker processes reading windows")
    tr.add_argument("--activation-checkpointing", action="store_true",
                    help="recompute block activations in backward (less memory)")
    tr.add_argument("--attention", choices=("auto", "sdpa", "flex"), default="auto",
                    help="auto: FlexAttention with the bias computed in the kernel on CUDA, fused SDPA on CPU")
    tr.add_argument("--resume", action="store_true", help="continue from OUT/checkpoints/last.pt")
    tr.add_argument("--no-calendar", action="store_true", help="no time-of-day/day-of-year channels")
    tr.add_argument("--quiet", action="store_true", help="no progress bar")

    pr = sub.add_parser("predict", help="roll a trained surrogate out from the end of a dataset")
    pr.add_argument("run", help="run folder (or a .gvt model file)")
    pr.add_argument("data", help="netCDF file or zarr store ending at the forecast start")
    pr.add_argument("--steps", type=int, default=1)
    pr.add_argument("--out", required=True, help="forecast file: .nc (netCDF) or .zarr")

    info = sub.add_parser("info", help="describe a trained surrogate")
    info.add_argument("run", help="run folder (or a .gvt model file)")
    return ap


def _demo(args: argparse.Namespace) -> int:
    import gridvit
    from gridvit.examples import toy_climate
    from gridvit.metrics import rmse

    ds = toy_climate(n_time=240, shape=(32, 64), seed=0)
    train_ds, test_ds = ds.isel(time=slice(0, 200)), ds.isel(time=slice(200, None))
    print(f"toy climate: {dict(ds.sizes)}, training on the first 200 steps (6-hourly), testing on the last 40")
    model = gridvit.train(train_ds, epochs=args.epochs, dim=64, depth=3, rollout_steps=2, progress=False)
    w = model.spec.grid.area_weights()
    leads, errs = (1, 2, 4), {k: ([], []) for k in (1, 2, 4)}
    for start in range(2, 36, 4):  # forecasts started every 4 steps in the test period
        fc = model.rollout(test_ds.isel(time=slice(0, start)), steps=4)
        for k in leads:
            truth = test_ds.t2m.isel(time=start + k - 1).values
            errs[k][0].append(rmse(fc.t2m.values[k - 1], truth, weights=w))
            errs[k][1].append(rmse(test_ds.t2m.isel(time=start - 1).values, truth, weights=w))
    print(f"{'lead':>6} {'gridvit RMSE (K)':>17} {'persistence RMSE (K)':>21} {'skill':>7}")
    for k in leads:
        g, p = sum(errs[k][0]) / len(errs[k][0]), sum(errs[k][1]) / len(errs[k][1])
        print(f"{6 * k:>5}h {g:>17.3f} {p:>21.3f} {1 - g / p:>7.1%}")
    return 0


def _train(args: argparse.Namespace) -> int:
    import gridvit

    out = Path(args.out)
    opts = dict(variables=args.variables, time_budget=args.time_budget, epochs=args.epochs, history=args.history,
                lead=args.lead, patch=args.patch, dim=args.dim, depth=args.depth, heads=args.heads,
                batch_size=args.batch_size, lr=args.lr, rollout_steps=args.rollout_steps,
                val_fraction=args.val_fraction, seed=args.seed, device=args.device,
                calendar=not args.no_calendar, progress=not args.quiet, num_workers=args.num_workers,
                activation_checkpointing=args.activation_checkpointing, attention=args.attention)
    model = gridvit.train(args.data, checkpoint_dir=out / "checkpoints", resume=args.resume, **opts)
    if int(os.environ.get("RANK", "0")) == 0:  # under torchrun, only rank 0 writes
        model.save(out / "model.gvt")
        print(f"saved {out / 'model.gvt'}")
    return 0


def _predict(args: argparse.Namespace) -> int:
    import gridvit

    model = gridvit.load(args.run)
    forecast = model.rollout(args.data, steps=args.steps)
    out = Path(args.out)
    if out.suffix == ".zarr":
        forecast.to_zarr(out, mode="w")
    else:
        forecast.to_netcdf(out)
    print(f"wrote {args.steps} step(s) to {out}")
    return 0


def _info(args: argparse.Namespace) -> int:
    import gridvit

    model = gridvit.load(args.run)
    meta = model.meta()
    n_params = sum(p.numel() for p in model.model.parameters())
    print(json.dumps({"variables": model.spec.channel_names, "grid": {"kind": model.spec.grid.kind,
                      "shape": model.spec.grid.shape, "periodic": model.spec.grid.periodic},
                      "time_step": model.spec.time.step, "parameters": n_params,
                      "model_config": meta["model_config"], "train_config": meta["train_config"]}, indent=2))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``gridvit`` command; returns the exit code."""
    args = _parser().parse_args(argv)
    commands = {"demo": _demo, "train": _train, "predict": _predict, "info": _info}
    try:
        return commands[args.command](args)
    except (ValueError, TypeError, OSError) as err:
        print(f"gridvit {args.command}: error: {err}", file=sys.stderr)
        return 2
