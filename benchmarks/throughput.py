"""Train throughput (tokens/s) and peak memory vs token count, and the largest global grid that trains.

Two models with the same widths (D=128, 4 heads, depth 4, history 2 × 4 channels, patch 4):

- ``gridvit``: :class:`gridvit.model.GridViT` with its defaults (fixed great-circle ALiBi bias, fused SDPA);
- ``reference``: the seed-style ViT with explicit ``softmax(Q Kᵀ/√d + B) V`` from
  ``benchmarks/attention_bias.py`` (same bias values, kept as one (h, N, N) tensor).

Token sweep: 256, 512, 1024, 2048, 4096 tokens (global lat-lon grids of 64×64 … 256×256 cells at patch 4),
batch 4, one train step = forward + MSE + backward + AdamW. Each configuration runs in a fresh subprocess,
so its peak resident memory is its own: ``ru_maxrss`` of the child at the end, and the same reading taken
right after imports (the baseline: Python, torch, gridvit); the table gives both and the difference (model,
optimiser state, activations, bias and data). Step times are medians after warm-up steps.

Large grid: a 1° global grid (180×360 cells, sphere) at batch 1, at the auto patch size
(:func:`gridvit.training.auto_patch`, ≤ 1100 tokens) and smaller patches, for both models (the reference only
where its (B, h, N, N) attention matrices can fit). A child's address space is capped at
``min(24 GiB, available memory − 1 GiB)``, so a configuration that does not fit fails with an allocation
error (recorded) instead of pushing the machine into swap or the OOM killer.

    .venv/bin/python benchmarks/throughput.py            # full: 2 warm-up + 5 timed steps; 180×360 at patches
                                                         # 8, 4, 3, 2 (reference: estimate only at 2) (~25 min)
    .venv/bin/python benchmarks/throughput.py --quick    # 1 warm-up + 2 timed steps; 180×360 at 8, 4, 3
                                                         # (reference at 8, 4) (≤ 6 min on an idle 2-core CPU)
    .venv/bin/python benchmarks/throughput.py --quick --threads 1   # steadier on a shared machine
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]
import torch  # noqa: E402
from _common import load_span, write_results  # noqa: E402
from attention_bias import CHANNELS, DEPTH, DIM, HEADS, HISTORY, RefViT, global_grid, make_step  # noqa: E402

from gridvit.model import GridViT, ModelConfig  # noqa: E402
from gridvit.patches import patch_grid_shape  # noqa: E402
from gridvit.training import auto_patch  # noqa: E402

GIB = 1024**3
TOKEN_GRIDS = {256: (16, 16), 512: (16, 32), 1024: (32, 32), 2048: (32, 64), 4096: (64, 64)}  # N -> (nh, nw)
BATCH = 4
BIG_GRID = (180, 360)
CAP_BYTES = 24 * GIB


def rss_bytes() -> int:
    """Peak resident set size of this process so far (``ru_maxrss``, KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


# --- child: one configuration in a fresh process ----------------------------------------------------------


def child(spec: dict) -> dict:
    """Build the model and data for ``spec``, time train steps, and report peak RSS (runs in the child)."""
    torch.set_num_threads(spec["threads"])
    baseline = rss_bytes()  # after imports: Python, torch, gridvit
    grid = global_grid(*spec["grid"])
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(spec["batch"], HISTORY * CHANNELS, *grid.shape, generator=gen)  # (B, T*C, H, W)
    y = torch.randn(spec["batch"], CHANNELS, *grid.shape, generator=gen)  # (B, C, H, W)
    torch.manual_seed(0)
    cfg = ModelConfig(history=HISTORY, channels=CHANNELS, patch=spec["patch"], dim=DIM, depth=DEPTH, heads=HEADS)
    model = RefViT(cfg) if spec["model"] == "reference" else GridViT(cfg)
    step = make_step(model, x, y, grid, bf16=False)
    t0 = time.perf_counter()
    for _ in range(spec["warmup"]):
        step()
    first = time.perf_counter() - t0
    times = []
    for _ in range(spec["repeats"]):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    return {"baseline_rss_gib": baseline / GIB, "peak_rss_gib": rss_bytes() / GIB,
            "delta_rss_gib": (rss_bytes() - baseline) / GIB, "warmup_s": first,
            "median_s": statistics.median(times), "min_s": min(times), "max_s": max(times)}


def available_bytes() -> int:
    """MemAvailable from /proc/meminfo (total RAM where unreadable)."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def run_child(spec: dict, timeout: float) -> dict:
    """Run ``spec`` in a fresh interpreter under an address-space cap; the result or the failure."""
    cap = min(CAP_BYTES, available_bytes() - GIB)

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))

    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", json.dumps(spec)]
    env = {**os.environ, "OMP_NUM_THREADS": str(spec["threads"])}
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, preexec_fn=limit, env=env)
    except subprocess.TimeoutExpired:
        return {**spec, "fits": None, "error": f"timed out after {timeout:.0f} s", "cap_gib": cap / GIB}
    wall = time.perf_counter() - t0
    out = {**spec, "cap_gib": cap / GIB, "child_wall_s": wall}
    if proc.returncode == 0:
        return {**out, "fits": True, **json.loads(proc.stdout.strip().splitlines()[-1])}
    err = (proc.stderr.strip().splitlines() or [f"exit status {proc.returncode}"])[-1]
    oom = any(s in proc.stderr for s in ("MemoryError", "can't allocate memory", "DefaultCPUAllocator", "std::bad_alloc"))
    return {**out, "fits": False if oom else None, "error": err[:300]}


# --- parent: sweeps and tables ------------------------------------------------------------------------------


def token_sweep(args) -> list[dict]:
    rows = []
    for n in args.tokens:
        nh, nw = TOKEN_GRIDS[n]
        for model in ("gridvit", "reference"):
            spec = {"part": "tokens", "model": model, "tokens": n, "grid": [4 * nh, 4 * nw], "patch": 4,
                    "batch": BATCH, "warmup": args.warmup, "repeats": args.repeats, "threads": args.threads}
            r = run_child(spec, args.child_timeout)
            if r.get("fits"):
                r["tokens_per_s"] = BATCH * n / r["median_s"]
            rows.append(r)
            print(describe(r), flush=True)
    return rows


def big_grid(args) -> list[dict]:
    auto = auto_patch(BIG_GRID)
    patches = sorted({auto, *args.big_patches}, reverse=True)
    rows = []
    for model in ("gridvit", "reference"):
        for p in patches:
            nh, nw = patch_grid_shape(BIG_GRID, p)
            spec = {"part": "big_grid", "model": model, "tokens": nh * nw, "grid": list(BIG_GRID), "patch": p,
                    "auto_patch": p == auto, "batch": 1, "warmup": 1, "repeats": args.big_repeats,
                    "threads": args.threads}
            # reference keeps ~3 (B, h, N, N) float32 tensors per layer for backward
            need = 3 * DEPTH * HEADS * (nh * nw) ** 2 * 4
            if model == "reference" and p < args.reference_min_patch:
                continue
            if model == "reference" and need > CAP_BYTES:
                rows.append({**spec, "fits": False, "error": f"not run: its attention matrices alone need "
                                                            f"~{need / GIB:.0f} GiB > 24 GiB (estimate)"})
            else:
                rows.append(run_child(spec, args.child_timeout))
                if rows[-1].get("fits"):
                    rows[-1]["tokens_per_s"] = nh * nw / rows[-1]["median_s"]
            print(describe(rows[-1]), flush=True)
    return rows


def describe(r: dict) -> str:
    where = f"{r['model']:9s} N={r['tokens']:5d} grid {r['grid'][0]}×{r['grid'][1]} p{r['patch']} B{r['batch']}"
    if not r.get("fits"):
        return f"  {where}: {'does not fit' if r.get('fits') is False else 'failed'} ({r.get('error')})"
    return (f"  {where}: {r['median_s'] * 1e3:9.1f} ms/step  {r.get('tokens_per_s', 0):9.0f} tokens/s  "
            f"peak RSS {r['peak_rss_gib']:.2f} GiB (baseline {r['baseline_rss_gib']:.2f}, +{r['delta_rss_gib']:.2f})")


def fmt_row(r: dict) -> str:
    patch = str(r["patch"]) + (" (auto)" if r.get("auto_patch") else "")
    cells = [r["model"], str(r["tokens"]), f"{r['grid'][0]}×{r['grid'][1]}", patch, str(r["batch"])]
    if not r.get("fits"):
        cells += ["no" if r.get("fits") is False else "failed", "—", "—", "—", "—", r.get("error", "")]
    else:
        cells += ["yes", f"{r['median_s'] * 1e3:.0f}", f"{r['tokens_per_s']:.0f}", f"{r['peak_rss_gib']:.2f}",
                  f"{r['baseline_rss_gib']:.2f} / +{r['delta_rss_gib']:.2f}", ""]
    return "| " + " | ".join(cells) + " |"


def ratios(rows: list[dict]) -> list[dict]:
    """gridvit ÷ reference throughput and memory per token count (same run)."""
    out = []
    for n in sorted({r["tokens"] for r in rows}):
        g = next((r for r in rows if r["tokens"] == n and r["model"] == "gridvit" and r.get("fits")), None)
        f = next((r for r in rows if r["tokens"] == n and r["model"] == "reference" and r.get("fits")), None)
        if g and f:
            out.append({"tokens": n, "speedup": g["tokens_per_s"] / f["tokens_per_s"],
                        "memory_ratio": f["delta_rss_gib"] / g["delta_rss_gib"]})
    return out


def markdown(result: dict) -> str:
    head = ("| model | tokens | grid | patch | batch | fits | median ms/step | tokens/s | peak RSS GiB | "
            "baseline / + training GiB | note |\n|---|---:|---|---|---:|---|---:|---:|---:|---|---|")
    s = result["settings"]
    lines = ["# Train throughput and peak memory vs token count", "",
             f"Mode: {result['mode']}. D={s['dim']}, {s['heads']} heads, depth {s['depth']}, history {s['history']} × "
             f"{s['channels']} channels, float32, {s['threads']} torch thread(s). One step = forward + MSE + backward + "
             f"AdamW; median of {s['repeats']} timed steps after {s['warmup']} warm-up (large grid: "
             f"{s['big_repeats']} after 1). Every row ran in a fresh subprocess: peak RSS is the child's `ru_maxrss`; "
             "baseline = the same reading right after imports (Python + torch + gridvit); + training = peak − baseline. "
             "tokens/s = batch × tokens / step time. Load average (1, 5, 15 min) at start "
             f"{result['load_average']['start']}, at end {result['load_average']['end']} on "
             f"{os.cpu_count()} cores (other processes slow the steps; ratios share the run's conditions).", "",
             f"## Token sweep (patch 4, batch {BATCH}, global lat-lon grids)", "", head,
             *[fmt_row(r) for r in result["tokens"]], "",
             "| tokens | gridvit ÷ reference tokens/s | reference ÷ gridvit training memory |", "|---:|---:|---:|",
             *[f"| {r['tokens']} | {r['speedup']:.2f}× | {r['memory_ratio']:.2f}× |" for r in result["ratios"]], "",
             f"## Largest grid: 1° global ({BIG_GRID[0]}×{BIG_GRID[1]}, sphere), batch 1", "",
             f"Address space capped at {result['cap_gib']:.1f} GiB per child (24 GiB or the memory available).", "",
             head, *[fmt_row(r) for r in result["big_grid"]], "", verdict(result), ""]
    return "\n".join(lines)


def verdict(result: dict) -> str:
    fit = [r for r in result["big_grid"] if r["model"] == "gridvit" and r.get("fits")]
    if not fit:
        return "**Goal not met:** no gridvit configuration trained on the 180×360 grid within the cap."
    best = max(fit, key=lambda r: r["tokens"])
    return (f"gridvit trains on the 180×360 grid up to patch {best['patch']} ({best['tokens']} tokens): peak RSS "
            f"{best['peak_rss_gib']:.2f} GiB, {best['median_s']:.1f} s/step at batch 1.")


def headline(result: dict) -> list[dict]:
    """Summary rows for benchmarks/README.md."""
    rows = []
    for r in result["ratios"]:
        if r["tokens"] in (1024, 4096):
            g = next(x for x in result["tokens"] if x["tokens"] == r["tokens"] and x["model"] == "gridvit")
            rows.append({"result": f"train tokens/s at {r['tokens']} tokens, gridvit vs reference ViT",
                         "value": f"{g['tokens_per_s']:.0f} tokens/s, {r['speedup']:.2f}× reference; "
                                  f"{r['memory_ratio']:.1f}× less memory", "goal": "faster than reference",
                         "met": bool(r["speedup"] > 1)})
    fit = [r for r in result["big_grid"] if r["model"] == "gridvit" and r.get("fits")]
    best = max(fit, key=lambda r: r["tokens"]) if fit else None
    rows.append({"result": "1° global grid (180×360) train step in 24 GiB",
                 "value": "does not fit" if best is None else
                 f"fits up to patch {best['patch']} ({best['tokens']} tokens), peak {best['peak_rss_gib']:.1f} GiB",
                 "goal": "180×360 trains", "met": best is not None})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--quick", action="store_true", help="1 warm-up + 2 timed steps; large grid: no patch 2, reference ≥ patch 4")
    ap.add_argument("--tokens", type=int, nargs="+", default=sorted(TOKEN_GRIDS), choices=sorted(TOKEN_GRIDS))
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--big-patches", type=int, nargs="*", default=[4, 3, 2], help="patch sides tried on 180×360")
    ap.add_argument("--big-repeats", type=int, default=3)
    ap.add_argument("--reference-min-patch", type=int, default=1, help="smallest patch the reference tries on 180×360")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="torch threads per child")
    ap.add_argument("--child-timeout", type=float, default=900.0)
    ap.add_argument("--no-write", action="store_true", help="print only; leave benchmarks/results/ alone")
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(json.loads(args.child))))
        return
    if args.quick:
        args.warmup, args.repeats, args.big_repeats = 1, 2, 1
        args.big_patches = [p for p in args.big_patches if p >= 3]
        args.reference_min_patch = 4
    t0, load_start = time.perf_counter(), os.getloadavg()
    print(f"token sweep, batch {BATCH}, {args.threads} thread(s) per child", flush=True)
    rows = token_sweep(args)
    print(f"large grid {BIG_GRID[0]}×{BIG_GRID[1]}, batch 1", flush=True)
    big = big_grid(args)
    result = {"mode": "quick" if args.quick else "full",
              "settings": {"dim": DIM, "heads": HEADS, "depth": DEPTH, "history": HISTORY, "channels": CHANNELS, "batch": BATCH,
                           "warmup": args.warmup, "repeats": args.repeats, "big_repeats": args.big_repeats,
                           "threads": args.threads},
              "cap_gib": min(CAP_BYTES, available_bytes() - GIB) / GIB, "tokens": rows, "ratios": ratios(rows),
              "big_grid": big, "seconds": time.perf_counter() - t0,
              "load_average": load_span(load_start)}
    md = markdown(result)
    print(md)
    if not args.no_write:
        write_results("throughput", result, md)


if __name__ == "__main__":
    main()
