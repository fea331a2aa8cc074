"""Training from a zarr store larger than the memory budget: peak RSS vs store size, and batches/s by chunking.

1. Out-of-core run: a global 0.25° daily field (721 × 1440 cells, float32, ERA5's grid) of ``--gib`` GiB
   (default 4) is written to a zarr store in a temporary folder, one time step per chunk (zarr's default
   zstd compression). The fields are smooth random weather (a coarse AR(1) field interpolated to the grid),
   made and written one chunk at a time, so creation itself stays in bounded memory. A fresh subprocess
   then trains from ``xr.open_zarr(store)`` as ``gridvit.train(..., time_budget=...)`` does (one streaming
   statistics pass over the training split, then training steps on lazily read windows, batch 4, no
   workers; D=32, depth 2, auto patch) and reports its own peak resident memory (``ru_maxrss``) and the
   same reading right after imports. The same run on the first quarter of the store shows whether memory
   grows with the store's length. A lazy reader sets glibc's mmap threshold to 1 MiB itself
   (``gridvit.data.reader.return_freed_fields``: freed field-sized buffers go back to the system instead of
   staying in glibc's heap); a third run sets ``MALLOC_MMAP_THRESHOLD_=1048576`` in the environment instead
   as a cross-check. Goal: peak RSS ≤ 25 % of the store's size on disk (its uncompressed values are larger
   still), with gridvit's defaults.
2. Same batches: on the first 40 steps of that store, the lazy path's shuffled batches equal those of the
   same data loaded into memory (also covered by tests/test_data.py and tests/test_out_of_core.py).
3. Chunking: a smaller store (``--chunk-gib``, default 0.5 GiB of the same grid) written with 1 step per
   chunk (whole fields), 24 steps per chunk (whole fields) and 1 step per chunk in 4 × 4 spatial tiles; the
   rate of shuffled training batches (batch 8, history 2 → 1 target: 24 fields per batch) read through
   ``DataLoader`` with 0 and 2 workers, median of repeats after a warm-up batch. The store was just written,
   so reads come from the page cache: decompression and indexing are timed, not the disk.

The temporary stores are deleted at the end.

    .venv/bin/python benchmarks/out_of_core.py            # 4 GiB store (~5-10 min on 2 cores)
    .venv/bin/python benchmarks/out_of_core.py --quick    # 1 GiB store, fewer batches (~3 min)
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]
import numpy as np  # noqa: E402
from _common import write_results  # noqa: E402

GIB, MIB = 1024**3, 1024**2
GRID = (721, 1440)  # 0.25° global, ERA5's layout
COARSE = (19, 37)  # the random weather's degrees of freedom before interpolation
RSS_GOAL = 0.25
CHUNKINGS = {"1 step, whole field": (1, None), "24 steps, whole field": (24, None),
             "1 step, 4×4 tiles": (1, (181, 360))}


def _interp_matrix(n_fine: int, n_coarse: int, periodic: bool) -> np.ndarray:
    """(n_fine, n_coarse) linear interpolation weights from a coarse to a fine axis."""
    pos = np.arange(n_fine) * (n_coarse if periodic else n_coarse - 1) / (n_fine - (0 if periodic else 1))
    lo = np.floor(pos).astype(int)
    frac = pos - lo
    m = np.zeros((n_fine, n_coarse))
    m[np.arange(n_fine), lo % n_coarse] += 1 - frac
    m[np.arange(n_fine), (lo + 1) % n_coarse] += frac
    return m


def write_store(path: Path, n_time: int, *, chunk_time: int = 1, tile: tuple[int, int] | None = None,
                seed: int = 0) -> dict:
    """Write a (time, lat, lon) float32 ``t2m`` store of smooth random fields, ``chunk_time`` steps per
    chunk (and (lat, lon) tiles when given), one chunk at a time. Returns sizes and the write time."""
    import dask.array as da
    import xarray as xr
    import zarr

    h, w = GRID
    lat = np.linspace(90.0, -90.0, h)
    lon = np.arange(w) * 360.0 / w
    time_ = np.arange(n_time).astype("timedelta64[D]") + np.datetime64("2000-01-01")
    chunks = (chunk_time, *(tile or GRID))
    template = xr.Dataset(
        {"t2m": (("time", "lat", "lon"), da.zeros((n_time, h, w), dtype=np.float32, chunks=chunks),
                 {"units": "K", "long_name": "2 metre temperature (synthetic)"})},
        coords={"time": time_, "lat": ("lat", lat, {"units": "degrees_north"}),
                "lon": ("lon", lon, {"units": "degrees_east"})})
    t0 = time.perf_counter()
    template.to_zarr(path, compute=False, mode="w", consolidated=False, zarr_format=3)
    arr = zarr.open_group(path, mode="r+")["t2m"]
    rng = np.random.default_rng(seed)
    ly, lx = _interp_matrix(h, COARSE[0], False), _interp_matrix(w, COARSE[1], True)
    base = (288.0 - 30.0 * np.sin(np.deg2rad(lat)) ** 2)[:, None]  # (H, 1) warm equator
    state = rng.standard_normal(COARSE)
    for start in range(0, n_time, chunk_time):
        block = np.empty((min(chunk_time, n_time - start), h, w), dtype=np.float32)  # one chunk row
        for i in range(len(block)):
            state = 0.9 * state + np.sqrt(1 - 0.9**2) * rng.standard_normal(COARSE)  # AR(1) weather
            block[i] = base + 5.0 * (ly @ state @ lx.T)  # (H, W)
        arr[start:start + len(block)] = block
    seconds = time.perf_counter() - t0
    disk = sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
    return {"n_time": n_time, "chunks": list(chunks), "disk_bytes": disk, "array_bytes": 4 * n_time * h * w,
            "write_s": seconds}


# --- child: train from the store in a fresh process --------------------------------------------------------

def child_train(store: str, n_time: int, budget: float, out: str) -> None:
    """Train from the first ``n_time`` steps of ``store`` for ``budget`` seconds, as :func:`gridvit.train`
    does in one process (its two stages timed apart); write peak RSS (self) and timings to ``out``."""
    import torch
    import xarray as xr

    from gridvit.config import TrainConfig
    from gridvit.data import prepare
    from gridvit.training import Trainer, build_surrogate

    torch.set_num_threads(1)
    after_imports = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    cfg = TrainConfig(history=2, val_fraction=0.02, dim=32, depth=2, heads=2, batch_size=4, time_budget=budget,
                      progress=False, seed=0)
    t0 = time.perf_counter()
    ds = xr.open_zarr(store, consolidated=False).isel(time=slice(0, n_time))
    prep = prepare(ds, history=cfg.history, val_fraction=cfg.val_fraction,
                   climatology=cfg.climatology)  # the streaming statistics pass
    stats_s = time.perf_counter() - t0
    after_stats = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    trainer = Trainer(build_surrogate(prep, cfg), prep, cfg, checkpoint_dir=None, resume=False)
    trainer.run()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    Path(out).write_text(json.dumps({
        "rss_after_imports_bytes": after_imports, "rss_after_stats_bytes": after_stats, "peak_rss_bytes": peak,
        "stats_pass_s": stats_s, "train_s": trainer.elapsed, "steps": trainer.step,
        "in_memory": prep.reader.in_memory, "normaliser": prep.normaliser.clim_by or "plain",
        "patch": trainer.sur.model.cfg.patch, "train_windows": len(prep.windows("train"))}))


def run_child(store: Path, info: dict, n_time: int, budget: float, tmp: Path, mmap_threshold: int | None) -> dict:
    """Train in a fresh process from the first ``n_time`` steps of ``store`` (glibc's mmap threshold set when
    given); its readings and the share of the store it read from (``disk_bytes`` scaled by ``n_time``)."""
    out = tmp / "child.json"
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", str(store), "--n-time", str(n_time),
           "--budget", str(budget), "--child-out", str(out)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    if mmap_threshold:
        env["MALLOC_MMAP_THRESHOLD_"] = str(mmap_threshold)
    subprocess.run(cmd, check=True, env=env)
    res = json.loads(out.read_text())
    res["n_time"], res["malloc_mmap_threshold"] = n_time, mmap_threshold
    res["disk_bytes"] = info["disk_bytes"] * n_time / info["n_time"]
    res["array_bytes"] = info["array_bytes"] * n_time / info["n_time"]
    return res


# --- same batches, batches/s ------------------------------------------------------------------------------

def same_batches(store: Path) -> bool:
    """Shuffled batches from the lazy store equal those of the same 40 steps loaded into memory."""
    import torch
    import xarray as xr

    from gridvit.data import prepare

    lazy_ds = xr.open_zarr(store, consolidated=False).isel(time=slice(0, 40))
    lazy, eager = prepare(lazy_ds, history=2), prepare(lazy_ds.load(), history=2)
    assert not lazy.reader.in_memory and eager.reader.in_memory
    pairs = zip(lazy.loader(batch_size=4, shuffle=True, seed=1), eager.loader(batch_size=4, shuffle=True, seed=1))
    return all(torch.equal(a[k], b[k]) for a, b in pairs for k in ("x", "y", "valid"))


def batches_per_s(store: Path, *, workers: int, batches: int, repeats: int) -> dict:
    """Median rate of shuffled batches (8 windows of 2 inputs + 1 target) read lazily from ``store``."""
    import xarray as xr

    from gridvit.data import prepare

    prep = prepare(xr.open_zarr(store, consolidated=False), history=2, climatology=None)
    rates = []
    for r in range(repeats):
        it = iter(prep.loader(batch_size=8, shuffle=True, seed=r, num_workers=workers))
        next(it)  # warm-up: workers started, first chunks read
        t0 = time.perf_counter()
        for _ in range(batches):
            next(it)
        rates.append(batches / (time.perf_counter() - t0))
        del it
    return {"workers": workers, "batches_per_s": statistics.median(rates), "rates": rates}


# --- results ---------------------------------------------------------------------------------------------

def headline(result: dict) -> list[dict]:
    """Summary rows for benchmarks/README.md."""
    ooc = next(o for o in result["out_of_core"][::-1] if not o["malloc_mmap_threshold"])
    ratio = ooc["peak_rss_bytes"] / ooc["disk_bytes"]
    rows = [{"result": "training from a zarr store: peak RSS / store size on disk",
             "value": f"{ooc['peak_rss_bytes'] / GIB:.2f} GiB / {ooc['disk_bytes'] / GIB:.2f} GiB = {ratio:.0%} "
                      f"({ooc['peak_rss_bytes'] / ooc['array_bytes']:.0%} of its {ooc['array_bytes'] / GIB:.1f} GiB "
                      "of values)", "goal": f"≤ {RSS_GOAL:.0%}", "met": bool(ratio <= RSS_GOAL)},
            {"result": "lazy zarr batches equal in-memory batches", "value": str(result["same_batches"]),
             "goal": "equal", "met": bool(result["same_batches"])}]
    for o in result["out_of_core"]:
        if o["malloc_mmap_threshold"]:
            r = o["peak_rss_bytes"] / o["disk_bytes"]
            rows.insert(1, {"result": "the same with MALLOC_MMAP_THRESHOLD_=1 MiB in the environment",
                            "value": f"{o['peak_rss_bytes'] / GIB:.2f} GiB = {r:.0%}",
                            "goal": f"≤ {RSS_GOAL:.0%}", "met": bool(r <= RSS_GOAL)})
    best = {c["chunking"]: max(r["batches_per_s"] for r in c["rates"]) for c in result["chunking"]}
    rows.append({"result": "shuffled batches/s by zarr chunking (batch 8 of 721×1440)",
                 "value": "; ".join(f"{k}: {v:.2f}" for k, v in best.items()), "goal": "", "met": None})
    return rows


def markdown(result: dict) -> str:
    s = result["store"]
    lines = ["# Out-of-core training from zarr", "",
             f"Store: {s['n_time']} daily steps of 721×1440 float32 = {s['array_bytes'] / GIB:.2f} GiB of values, "
             f"{s['disk_bytes'] / GIB:.2f} GiB on disk (zstd), chunks {s['chunks']}; written in {s['write_s']:.0f} s. "
             f"Training: {result['budget_s']:.0f} s budget, batch 4, D=32, depth 2, 1 thread, no workers.", "",
             "| steps read | allocator | on disk (GiB) | RSS after imports | peak after statistics pass "
             "| peak after training | peak / on disk | statistics pass | train steps |",
             "|---|---|---|---|---|---|---|---|---|"]
    for o in result["out_of_core"]:
        alloc = f"mmap ≥ {o['malloc_mmap_threshold'] // 1024**2} MiB" if o["malloc_mmap_threshold"] else "default"
        lines.append(f"| {o['n_time']} | {alloc} | {o['disk_bytes'] / GIB:.2f} "
                     f"| {o['rss_after_imports_bytes'] / GIB:.2f} GiB "
                     f"| {o['rss_after_stats_bytes'] / GIB:.2f} GiB | {o['peak_rss_bytes'] / GIB:.2f} GiB "
                     f"| {o['peak_rss_bytes'] / o['disk_bytes']:.0%} | {o['stats_pass_s']:.0f} s "
                     f"({o['disk_bytes'] / GIB / o['stats_pass_s']:.2f} GiB/s) "
                     f"| {o['steps']} in {o['train_s']:.0f} s |")
    lines += ["", f"Goal: peak RSS ≤ {RSS_GOAL:.0%} of the store on disk. "
              f"Lazy zarr batches equal in-memory batches: {result['same_batches']}.", "",
             f"Chunking ({result['chunk_store_gib']:.2f} GiB stores, shuffled batches of 8 windows × 3 fields, "
             "warm page cache):", "",
             "| chunking | on disk (GiB) | workers | batches/s |", "|---|---|---|---|"]
    for c in result["chunking"]:
        for r in c["rates"]:
            lines.append(f"| {c['chunking']} | {c['disk_bytes'] / GIB:.2f} | {r['workers']} "
                         f"| {r['batches_per_s']:.2f} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="1 GiB store, 0.25 GiB chunking stores, fewer batches")
    ap.add_argument("--gib", type=float, default=4.0, help="size of the out-of-core store (GiB of float32)")
    ap.add_argument("--chunk-gib", type=float, default=0.5)
    ap.add_argument("--budget", type=float, default=30.0, help="training seconds in the out-of-core run")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--child-out", help=argparse.SUPPRESS)
    ap.add_argument("--n-time", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return child_train(args.child, args.n_time, args.budget, args.child_out)
    if args.quick:
        args.gib, args.chunk_gib, args.budget = 1.0, 0.25, 20.0
    batches, repeats = (4, 2) if args.quick else (6, 3)
    step_bytes = 4 * GRID[0] * GRID[1]
    tmp = Path(tempfile.mkdtemp(prefix="gridvit-ooc-"))
    try:
        store = tmp / "big.zarr"
        info = write_store(store, int(round(args.gib * GIB / step_bytes)))
        print(f"wrote {info['disk_bytes'] / GIB:.2f} GiB on disk in {info['write_s']:.0f} s", flush=True)
        ooc = []
        for n, threshold in ((info["n_time"] // 4, None), (info["n_time"], None), (info["n_time"], MIB)):
            ooc.append(run_child(store, info, n, args.budget, tmp, threshold))
            print(f"{n} steps: peak RSS {ooc[-1]['peak_rss_bytes'] / GIB:.2f} GiB = "
                  f"{ooc[-1]['peak_rss_bytes'] / ooc[-1]['disk_bytes']:.1%} of {ooc[-1]['disk_bytes'] / GIB:.2f} GiB "
                  "on disk", flush=True)
        same = same_batches(store)
        shutil.rmtree(store)
        chunking = []
        for name, (ct, tile) in CHUNKINGS.items():
            path = tmp / "chunks.zarr"
            c = write_store(path, int(round(args.chunk_gib * GIB / step_bytes)), chunk_time=ct, tile=tile, seed=1)
            rates = [batches_per_s(path, workers=w, batches=batches, repeats=repeats) for w in (0, 2)]
            chunking.append({"chunking": name, "disk_bytes": c["disk_bytes"], "chunks": c["chunks"], "rates": rates})
            print(name, [f"{r['batches_per_s']:.2f}" for r in rates], flush=True)
            shutil.rmtree(path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    result = {"store": info, "out_of_core": ooc, "same_batches": same, "budget_s": args.budget,
              "chunk_store_gib": args.chunk_gib, "chunking": chunking, "quick": args.quick}
    write_results("out_of_core", result, markdown(result))
    for row in headline(result):
        print(f"{row['result']}: {row['value']} (goal {row['goal'] or '-'}, met {row['met']})")


if __name__ == "__main__":
    main()
