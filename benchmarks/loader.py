"""Training data loader: batches/s from memory, lazy netCDF and zarr; the share of a train step spent waiting.

gridvit's loader is what :func:`gridvit.train` iterates: ``prepare(ds).dataset("train")`` through a torch
``DataLoader(batch_size=8, shuffle=True)`` (no workers), each item a normalised, masked window of history 2
→ 1 target (x (T·C, H, W), y, valid). Sources, for two datasets:

- ``era5``: the real ERA5 UK t2m file (744 h × 33 × 49): in memory; the shared netCDF file opened lazily
  (``xr.open_dataset``, ``prepare(..., in_memory=False)``: each item reads its own time steps); zarr
  (written on the fly to a temporary folder, chunks of 24 steps, opened with ``xr.open_zarr``: the
  dask-backed object a notebook user holds);
- ``global1deg``: a synthetic 1° global dataset (two variables, daily, 180 × 360), written to a temporary
  netCDF file and zarr store (chunks of 8 steps) and read the same ways;
- ``zarr-nodask``: the same zarr store opened with ``chunks=None`` (xarray's lazy indexing, no dask graph per
  read), ``prepare(..., in_memory=False)``;
- ``netcdf-dask``: the netCDF file as a dask-backed object (``xr.open_dataset(path, chunks={})``);
- ``mfdataset``: the data written as two netCDF files split in time, opened with ``xr.open_mfdataset``
  (dask-backed, one chunk per file).

Rates: median over repeats of batches/s over a fixed number of batches after a warm-up batch. Where
``xbatcher`` is installed, its documented PyTorch path (``BatchGenerator`` with ``input_dims`` = the window,
``input_overlap`` = 2 steps, over the same training split, through ``xbatcher.loaders.torch.MapDataset`` and
the same ``DataLoader``) is timed on the same windows and sources; it yields raw (un-normalised, unmasked)
windows, so it does less work per item than gridvit.

Data wait: a real training loop of the default model (``TrainConfig()`` defaults: D=128, depth 4, auto patch,
batch 8, AdamW) for a few steps per source; the share of wall time spent in ``next(iterator)`` over the
whole step (first step excluded as warm-up). Goal ≤ 10 %.

    .venv/bin/python benchmarks/loader.py            # full: 365-day synthetic set, more batches and steps
    .venv/bin/python benchmarks/loader.py --quick    # 120-day synthetic set (≤ 4 min)
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import torch
import xarray as xr

sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parents[1])]
from _common import load_span, write_results  # noqa: E402

from gridvit.config import TrainConfig  # noqa: E402
from gridvit.data import prepare  # noqa: E402
from gridvit.training import Trainer, build_surrogate  # noqa: E402

DATA = Path(os.environ.get("GRIDVIT_SHARED_DATA", Path(__file__).resolve().parents[1].parent / "shared" / "data"))
ERA5 = DATA / "era5_t2m_uk_2019-03.nc"
BATCH, HISTORY, ROLLOUT = 8, 2, 1
WAIT_GOAL, XBATCHER_GOAL = 0.10, 3.0


def synthetic_global(days: int, seed: int = 0) -> xr.Dataset:
    """Two smooth-plus-noise daily fields on a 1° global grid: (time, lat 180, lon 360) float32."""
    rng = np.random.default_rng(seed)
    lat = np.linspace(89.5, -89.5, 180)
    lon = np.arange(360) + 0.5
    t = np.arange(days)[:, None, None]
    la, lo = np.deg2rad(lat)[None, :, None], np.deg2rad(lon)[None, None, :]
    base = 288 - 30 * np.sin(la) ** 2 + 5 * np.cos(2 * np.pi * t / 365) * np.sin(la)  # (T, H, 1)
    temp = base + 2 * np.sin(3 * lo - 0.2 * t) * np.cos(la) + rng.normal(0, 0.5, (days, 180, 360))
    wind = 10 * np.cos(la) * np.sin(2 * lo + 0.1 * t) + rng.normal(0, 1.0, (days, 180, 360))
    coords = {"time": pd.date_range("2000-01-01", periods=days, freq="D"), "lat": lat, "lon": lon}
    return xr.Dataset({"t": (("time", "lat", "lon"), temp.astype(np.float32), {"units": "K"}),
                       "u": (("time", "lat", "lon"), wind.astype(np.float32), {"units": "m s-1"})}, coords=coords)


def sources(name: str, tmp: Path, days: int) -> dict[str, Callable[[], tuple[xr.Dataset, bool | None]]]:
    """Openers for the sources of ``name``: each returns (dataset, ``in_memory`` for prepare)."""
    if name == "era5":
        mem, nc = xr.open_dataset(ERA5).load(), ERA5
        zarr_chunks = {"time": 24}
    else:
        mem, nc = synthetic_global(days), tmp / f"{name}.nc"
        mem.to_netcdf(nc)
        zarr_chunks = {"time": 8}
    store = tmp / f"{name}.zarr"
    mem.chunk(zarr_chunks).to_zarr(store, mode="w")
    half = mem.sizes["time"] // 2
    parts = [tmp / f"{name}-a.nc", tmp / f"{name}-b.nc"]
    mem.isel(time=slice(0, half)).to_netcdf(parts[0])
    mem.isel(time=slice(half, None)).to_netcdf(parts[1])
    return {"memory": lambda: (mem, True),
            "netcdf": lambda: (xr.open_dataset(nc), False),
            "netcdf-dask": lambda: (xr.open_dataset(nc, chunks={}), None),
            "mfdataset": lambda: (xr.open_mfdataset(parts, combine="by_coords"), None),
            "zarr": lambda: (xr.open_zarr(store), None),
            "zarr-nodask": lambda: (xr.open_zarr(store, chunks=None), False)}


def batches_per_s(make_loader: Callable[[], torch.utils.data.DataLoader], n: int, repeats: int) -> dict:
    """Median batches/s over ``repeats`` runs of ``n`` batches, each after one warm-up batch."""
    rates = []
    for _ in range(repeats):
        it = iter(make_loader())
        next(it)
        t0 = time.perf_counter()
        for _ in range(n):
            next(it)
        rates.append(n / (time.perf_counter() - t0))
    return {"batches_per_s": statistics.median(rates), "min": min(rates), "max": max(rates), "batches": n,
            "repeats": repeats}


def gridvit_loader(prep, seed: int = 0) -> Callable[[], torch.utils.data.DataLoader]:
    """The loader as :class:`gridvit.training.Trainer` builds it each epoch."""
    def make() -> torch.utils.data.DataLoader:
        gen = torch.Generator().manual_seed(seed)
        return torch.utils.data.DataLoader(prep.dataset("train"), batch_size=BATCH, shuffle=True, generator=gen)

    return make


def xbatcher_loader(ds: xr.Dataset, prep) -> Callable[[], torch.utils.data.DataLoader] | None:
    """xbatcher's PyTorch path over the same training windows (None when xbatcher is not installed)."""
    try:
        import xbatcher
        from xbatcher.loaders.torch import MapDataset
    except ImportError:
        return None
    d = prep.spec.dims
    train = prep.splits["train"].times
    sub = ds[[v.name for v in prep.spec.variables]].isel({d.time: slice(train.start, train.stop)})
    span = HISTORY + ROLLOUT
    gen = xbatcher.BatchGenerator(sub, input_dims={d.time: span, d.y: sub.sizes[d.y], d.x: sub.sizes[d.x]},
                                  input_overlap={d.time: span - 1})

    def to_tensor(window: xr.Dataset) -> torch.Tensor:
        return torch.as_tensor(window.to_array("variable").values)  # (V, T, H, W); xbatcher's own squeezes V

    def make() -> torch.utils.data.DataLoader:
        return torch.utils.data.DataLoader(MapDataset(gen, transform=to_tensor), batch_size=BATCH, shuffle=True,
                                           generator=torch.Generator().manual_seed(0))

    return make


def data_wait(prep, steps: int, seed: int = 0) -> dict:
    """Share of wall time in ``next(iterator)`` during ``steps`` train steps of the default model."""
    cfg = TrainConfig(progress=False, device="cpu", seed=seed, batch_size=BATCH, history=HISTORY)
    sur = build_surrogate(prep, cfg)
    trainer = Trainer(sur, prep, cfg, checkpoint_dir=None, resume=False)
    sur.model.train()
    waits, totals = [], []
    it = iter(gridvit_loader(prep, seed)())
    for k in range(steps + 1):
        t0 = time.perf_counter()
        try:
            batch = next(it)
        except StopIteration:  # a short epoch: start the next one, as training does
            it = iter(gridvit_loader(prep, seed + k)())
            batch = next(it)
        t1 = time.perf_counter()
        loss = trainer._loss(batch)
        trainer.opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(sur.model.parameters(), cfg.grad_clip)
        trainer.opt.step()
        t2 = time.perf_counter()
        if k:  # the first step warms up kernels and caches
            waits.append(t1 - t0)
            totals.append(t2 - t0)
    return {"fraction": sum(waits) / sum(totals), "wait_ms_median": 1e3 * statistics.median(waits),
            "step_ms_median": 1e3 * statistics.median(totals), "steps": steps, "patch": sur.model.cfg.patch,
            "tokens": int(np.prod([-(-s // sur.model.cfg.patch) for s in prep.spec.grid.shape]))}


def bench_dataset(name: str, tmp: Path, args) -> list[dict]:
    rows = []
    t0 = time.perf_counter()
    openers = sources(name, tmp, args.days)
    print(f"{name}: sources ready in {time.perf_counter() - t0:.1f} s", flush=True)
    for source, opener in openers.items():
        ds, in_memory = opener()
        t0 = time.perf_counter()
        prep = prepare(ds, history=HISTORY, lead=1, rollout=ROLLOUT, val_fraction=0.1, in_memory=in_memory)
        row = {"dataset": name, "source": source, "grid": list(prep.spec.grid.shape),
               "variables": [v.name for v in prep.spec.variables], "windows": len(prep.windows("train")),
               "lazy": not prep.reader.in_memory, "prepare_s": time.perf_counter() - t0}
        first = next(iter(gridvit_loader(prep)()))
        row["mb_per_batch"] = sum(first[k].numel() * first[k].element_size() for k in ("x", "y", "valid")) / 1e6
        n = min(args.batches, len(prep.windows("train")) // BATCH - 1)
        row["gridvit"] = batches_per_s(gridvit_loader(prep), n, args.repeats)
        xb = xbatcher_loader(ds, prep)
        if xb is not None:
            row["xbatcher"] = batches_per_s(xb, min(n, args.xbatcher_batches), args.repeats)
            row["gridvit_over_xbatcher"] = row["gridvit"]["batches_per_s"] / row["xbatcher"]["batches_per_s"]
        row["wait"] = data_wait(prep, args.steps)
        rows.append(row)
        print(describe(row), flush=True)
    return rows


def describe(r: dict) -> str:
    xb = (f"   xbatcher {r['xbatcher']['batches_per_s']:7.1f}/s (gridvit {r['gridvit_over_xbatcher']:.1f}×)"
          if "xbatcher" in r else "   xbatcher: not installed")
    return (f"  {r['dataset']:10s} {r['source']:11s} gridvit {r['gridvit']['batches_per_s']:7.1f} batches/s{xb}   "
            f"data wait {100 * r['wait']['fraction']:.1f} % of a {r['wait']['step_ms_median']:.0f} ms step")


def markdown(result: dict) -> str:
    xb = result["xbatcher_version"]
    lines = ["# Training data loader: batches/s and data wait", "",
             f"Mode: {result['mode']}. Batch {BATCH}, history {HISTORY} → {ROLLOUT} target, shuffled, no workers (as "
             "`gridvit.train` loads). batches/s: median of "
             f"{result['settings']['repeats']} runs after a warm-up batch. Data wait: share of each train step of the "
             f"default model (D=128, depth 4, auto patch) spent in `next(iterator)`, over {result['settings']['steps']} "
             f"steps after one warm-up step; goal ≤ {100 * WAIT_GOAL:.0f} %. xbatcher: "
             + (f"{xb}, `BatchGenerator` + `MapDataset` + the same DataLoader on the same training windows (raw "
                "windows: no normalisation or masks); goal gridvit ≥ 3×." if xb else "not installed (skipped)."), "",
             "| dataset | grid | source | lazy | windows | MB/batch | prepare s | gridvit batches/s | xbatcher batches/s "
             "| gridvit ÷ xbatcher | train step ms | data wait ms | data wait share |",
             "|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in result["rows"]:
        x, w = r.get("xbatcher"), r["wait"]
        cells = [r["dataset"], f"{r['grid'][0]}×{r['grid'][1]} × {len(r['variables'])} var", r["source"],
                 "yes" if r["lazy"] else "no", str(r["windows"]), f"{r['mb_per_batch']:.2f}", f"{r['prepare_s']:.2f}",
                 f"{r['gridvit']['batches_per_s']:.1f}", f"{x['batches_per_s']:.1f}" if x else "—",
                 f"{r['gridvit_over_xbatcher']:.1f}×" if x else "—", f"{w['step_ms_median']:.0f}",
                 f"{w['wait_ms_median']:.1f}", f"{100 * w['fraction']:.1f} %"]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", verdict(result), "", f"Load average (1, 5, 15 min) at start {result['load_average']['start']}, "
              f"at end {result['load_average']['end']} on {os.cpu_count()} cores.", ""]
    return "\n".join(lines)


def verdict(result: dict) -> str:
    rows = result["rows"]
    worst = max(rows, key=lambda r: r["wait"]["fraction"])
    out = [f"Worst data wait: {100 * worst['wait']['fraction']:.1f} % ({worst['dataset']}, {worst['source']}) — goal "
           f"≤ {100 * WAIT_GOAL:.0f} % {'met' if worst['wait']['fraction'] <= WAIT_GOAL else '**not met**'}."]
    ratios = [r for r in rows if "gridvit_over_xbatcher" in r]
    if ratios:
        low = min(ratios, key=lambda r: r["gridvit_over_xbatcher"])
        out.append(f"Lowest gridvit ÷ xbatcher: {low['gridvit_over_xbatcher']:.1f}× ({low['dataset']}, {low['source']}) "
                   f"— goal ≥ {XBATCHER_GOAL:.0f}× {'met' if low['gridvit_over_xbatcher'] >= XBATCHER_GOAL else '**not met**'}.")
    return " ".join(out)


def headline(result: dict) -> list[dict]:
    """Summary rows for benchmarks/README.md."""
    rows = result["rows"]
    worst = max(rows, key=lambda r: r["wait"]["fraction"])
    out = [{"result": "share of a train step waiting for data (worst source)",
            "value": f"{100 * worst['wait']['fraction']:.1f} % ({worst['dataset']}, {worst['source']})",
            "goal": f"≤ {100 * WAIT_GOAL:.0f} %", "met": bool(worst["wait"]["fraction"] <= WAIT_GOAL)}]
    for source in ("memory", "netcdf", "netcdf-dask", "mfdataset", "zarr", "zarr-nodask"):
        r = next((r for r in rows if r["dataset"] == "global1deg" and r["source"] == source), None)
        if r is not None:
            out.append({"result": f"loader batches/s, 1° global × 2 var, {source}",
                        "value": f"{r['gridvit']['batches_per_s']:.1f}", "goal": "", "met": None})
    ratios = [r for r in rows if "gridvit_over_xbatcher" in r]
    if ratios:
        low = min(ratios, key=lambda r: r["gridvit_over_xbatcher"])
        out.append({"result": "gridvit ÷ xbatcher batches/s (lowest over sources)",
                    "value": f"{low['gridvit_over_xbatcher']:.1f}× ({low['dataset']}, {low['source']})",
                    "goal": f"≥ {XBATCHER_GOAL:.0f}×", "met": bool(low["gridvit_over_xbatcher"] >= XBATCHER_GOAL)})
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="120-day synthetic set, fewer batches and steps (≤ 4 min)")
    ap.add_argument("--days", type=int, default=365, help="length of the synthetic 1° dataset")
    ap.add_argument("--batches", type=int, default=40, help="batches per gridvit timing")
    ap.add_argument("--xbatcher-batches", type=int, default=20, help="batches per xbatcher timing")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--steps", type=int, default=10, help="train steps for the data-wait share")
    ap.add_argument("--datasets", nargs="+", default=["era5", "global1deg"], choices=["era5", "global1deg"])
    ap.add_argument("--no-write", action="store_true", help="print only; leave benchmarks/results/ alone")
    args = ap.parse_args()
    if args.quick:
        args.days, args.batches, args.xbatcher_batches, args.steps = 120, 20, 10, 8
    if "era5" in args.datasets and not ERA5.exists():
        print(f"skipping era5: {ERA5} not found")
        args.datasets = [d for d in args.datasets if d != "era5"]
    try:
        import xbatcher
        xb_version = xbatcher.__version__
    except ImportError:
        xb_version = None
    t0, load_start = time.perf_counter(), os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="gridvit-loader-") as tmp:
        rows = [r for name in args.datasets for r in bench_dataset(name, Path(tmp), args)]
    result = {"mode": "quick" if args.quick else "full", "xbatcher_version": xb_version,
              "settings": {k: getattr(args, k) for k in ("days", "batches", "xbatcher_batches", "repeats", "steps")}
              | {"batch": BATCH, "history": HISTORY, "torch_threads": torch.get_num_threads()},
              "rows": rows, "seconds": time.perf_counter() - t0,
              "load_average": load_span(load_start)}
    md = markdown(result)
    print(md)
    if not args.no_write:
        write_results("loader", result, md)


if __name__ == "__main__":
    main()
