"""Distance-biased attention at GPU scale: train-step time, peak memory, TFLOP/s and MFU per attention path.

One train step (forward + backward + AdamW, bf16 autocast) of GridViT D 256, 8 heads, depth 8, patch 4 on
global lat-lon grids, batch 4 (the 0.25° grid: batch 1), for:

- ``flash``: ``bias="none"``, SDPA (flash kernel) — the baseline of every ratio;
- ``flex-unbiased``: ``bias="none"`` through FlexAttention without ``score_mod`` (the Flex kernel's own cost);
- ``dense-sdpa``: ALiBi as a dense (1, h, N, N) ``attn_mask`` to SDPA (``attention="sdpa"``);
- ``flex-dense``: ALiBi read from the dense (h, N, N) table in FlexAttention's ``score_mod``;
- ``flex-coords``: ALiBi computed in the kernel from O(N) token coordinates, every block;
- ``flex-coords-mask``: the same with the per-head block mask (the ``attention="flex"`` path on CUDA);
- ``learnable``: learnable slopes on the default path (coordinates + block mask, slopes' gradient from one
  more Flex forward); ``learnable-dense``: learnable slopes on the dense SDPA path.

Before those, the attention op alone (forward, and forward + backward; B 4, 8 heads of 32, bf16, 16k tokens):
SDPA flash (also with 4 heads of 64: the same FLOPs), Flex without ``score_mod``, Flex with a 1-D ALiBi
``score_mod`` (``−w_h |i − j|``: the floor of any bias), with the chord ``|a − b|`` (the floor of any distance
on the sphere), gridvit's great circle (``flex-coords``, ± mask, learnable slopes) and the arcsine form it
replaced (``flex-asin-mask``): where the time goes.

Per configuration: 3 warm-up steps (the first compiles; its time is recorded), then 10 timed steps
(synchronised wall clock; the 0.25° grid 2 + 5): medians, peak memory of the timed steps, model TFLOP/s
(3 × forward FLOPs, attention 4·B·N²·D per layer, counted dense also where blocks are skipped) and MFU
against the card's measured bf16 matmul rate. Ratios divide by ``flash`` of the same size in the same run.
Each configuration runs in try/except (out of memory is recorded as ``oom``, other failures as ``error``).
They run in priority order — the attention op alone, a float32 check of the compiled Flex path (forward,
q and slope gradients) against the dense bias on 512 tokens, the default paths at 16k and 8k tokens and the
0.25° grid, 2k, 32k, extras — and none starts after ``--budget-s`` seconds, so the results are written
whatever the time allows.

    python benchmarks/attention_bias.py --device cuda                 # ≤ ~4 min on one H100/H200; writes results/
    python benchmarks/attention_bias_cuda.py --budget-s 120           # the same, stopping earlier
    python benchmarks/attention_bias_cuda.py --device cpu --smoke     # tiny CPU run of every path (eager Flex), no files

Needs no netCDF4/zarr/dask. Results: ``results/attention_bias_cuda.{json,md}``.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import gc
import math
import statistics
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parents[1])]
from _common import write_results  # noqa: E402

from gridvit.geometry import Grid  # noqa: E402
from gridvit.model import GridViT, ModelConfig  # noqa: E402

FULL = dict(dim=256, heads=8, depth=8, patch=4, history=2, channels=4)
SMOKE = dict(dim=32, heads=4, depth=2, patch=4, history=2, channels=4)
SIZES = {  # name: (grid H, W, batch); tokens = (H/4)·(W/4) with the last patch row padded
    "2k": (128, 256, 4), "8k": (256, 512, 4), "16k": (360, 720, 4), "32k": (512, 1024, 4), "0.25deg": (721, 1440, 1),
}
SMOKE_SIZES = {"2k": (32, 64, 2), "8k": (64, 64, 2), "16k": (48, 96, 2), "32k": (64, 128, 1), "0.25deg": (37, 72, 1)}
VARIANTS = {  # name: (bias, attention, block_sparse, model class)
    "flash": ("none", "sdpa", False, "GridViT"),
    "flex-unbiased": ("none", "flex", False, "UnbiasedFlexGridViT"),
    "dense-sdpa": ("alibi", "sdpa", False, "GridViT"),
    "flex-dense": ("alibi", "flex", False, "DenseTableGridViT"),
    "flex-coords": ("alibi", "flex", False, "GridViT"),
    "flex-coords-mask": ("alibi", "flex", True, "GridViT"),
    "learnable": ("learnable", "flex", True, "GridViT"),
    "learnable-dense": ("learnable", "sdpa", False, "GridViT"),
}
ALL = ["flash", "flex-coords-mask", "learnable", "flex-coords", "dense-sdpa", "flex-unbiased", "flex-dense"]
PLAN = (  # priority order: the goals first; "kernel" times the attention op alone, "check" is the float32 check
    [("kernel", ""), ("check", "")] + [("16k", v) for v in ALL[:5]] + [("8k", v) for v in ALL[:5]]
    + [("0.25deg", "flash"), ("0.25deg", "flex-coords-mask"), ("0.25deg", "learnable")]
    + [("2k", v) for v in ALL[:5]] + [("32k", v) for v in ("flash", "flex-coords-mask", "learnable")]
    + [("16k", v) for v in ALL[5:]] + [("8k", v) for v in ALL[5:]] + [("8k", "learnable-dense")]
)
KERNELS = ["sdpa", "sdpa-d64", "flex-none", "flex-trivial", "flex-chord-mask", "flex-coords", "flex-coords-mask",
           "flex-coords-learnable", "flex-asin-mask"]
ORDER = {name: i for i, name in enumerate(SIZES)}


def global_grid(nlat: int, nlon: int) -> Grid:
    """A regular global lat-lon grid with cell-centred latitudes (721 rows: 0.25° with both poles)."""
    if nlat % 2:  # ERA5-style: the poles are grid rows
        lat = np.linspace(90.0, -90.0, nlat)
    else:
        dlat = 180.0 / nlat
        lat = np.linspace(90 - dlat / 2, -90 + dlat / 2, nlat)
    return Grid("sphere", lat, np.arange(nlon) * 360.0 / nlon, periodic_x=True)


class DenseTableGridViT(GridViT):
    """GridViT whose Flex path reads the dense (1, h, N, N) bias table (the pre-coordinates layout)."""

    def _biases(self, grid, z, *, dense):
        return super()._biases(grid, z, dense=True)


def reference_score_mod(td, form: str):
    """``score − w_h r`` with r the chord ``|a − b|`` (``"chord"``) or the central angle from arcsines
    (``"asin"``, gridvit's form before the polynomial one) — kernel timings only."""
    coords, weights = td.coords, td.weights

    def score_mod(score, b, hh, q_idx, kv_idx):
        a, c = tuple(x[q_idx] for x in coords), tuple(x[kv_idx] for x in coords)
        minus = sum((x - y) * (x - y) for x, y in zip(a, c))
        if form == "chord":
            return score - weights[hh] * torch.sqrt(minus)
        plus = sum((x + y) * (x + y) for x, y in zip(a, c))
        dot = sum(x * y for x, y in zip(a, c))
        near, far = minus < 1.0, plus < 1.0
        chord = torch.sqrt(torch.where(near, minus, plus)) * 0.5
        t = torch.asin(torch.clamp(torch.where(near | far, chord, dot), min=-0.5, max=0.5))
        r = torch.where(near, 2.0 * t, torch.where(far, math.pi - 2.0 * t, 0.5 * math.pi - t))
        return score - weights[hh] * r

    return score_mod


class UnbiasedFlexGridViT(GridViT):
    """GridViT without bias whose attention runs FlexAttention with no ``score_mod`` (Flex's own cost)."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__(cfg)
        from gridvit.model.attention import _flex_attention

        def attend(q, k, v, bias, *, need_weights):
            return _flex_attention(q, k, v, None, compile=q.device.type == "cuda"), None

        for block in self.blocks:
            block.attn._attend = attend


def step_flops(tokens: int, batch: int, m: dict) -> float:
    """Model FLOPs of one train step: 3 × forward; forward = linears 2·B·N·(12 D² per layer + embed + head)
    + attention 4·B·N²·D per layer (q·kᵀ and P·v)."""
    d, p, cin = m["dim"], m["patch"], m["history"] * m["channels"]
    linear = 2 * batch * tokens * (m["depth"] * 12 * d * d + p * p * cin * d + d * p * p * m["channels"])
    attn = m["depth"] * 4 * batch * tokens**2 * d
    return 3.0 * (linear + attn)


def matmul_rate(device: torch.device, size: int) -> float:
    """Measured dense matmul rate in FLOP/s (bf16 on CUDA, float32 on CPU): the MFU denominator."""
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    a, b = (torch.randn(size, size, device=device, dtype=dtype) for _ in range(2))
    reps = 20 if device.type == "cuda" else 3
    for _ in range(3):
        a @ b
    sync(device)
    t0 = time.perf_counter()
    for _ in range(reps):
        a @ b
    sync(device)
    return 2.0 * size**3 * reps / (time.perf_counter() - t0)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


_GRIDS: dict[tuple[int, int], Grid] = {}  # one Grid per size: its dense distances are cached on it


def build(variant: str, size: str, args) -> tuple:
    """Model, inputs, targets and grid for one configuration."""
    bias, attention, block_sparse, cls = VARIANTS[variant]
    h, w, batch = args.sizes[size]
    grid = _GRIDS.setdefault((h, w), global_grid(h, w))
    m = args.model
    cfg = ModelConfig(history=m["history"], channels=m["channels"], patch=m["patch"], dim=m["dim"], depth=m["depth"],
                      heads=m["heads"], bias=bias, attention=attention, block_sparse=block_sparse)
    torch.manual_seed(0)
    model = globals()[cls](cfg).to(args.device)
    gen = torch.Generator(device=args.device).manual_seed(0)
    x = torch.randn(batch, cfg.in_channels, h, w, device=args.device, generator=gen)
    y = torch.randn(batch, cfg.channels, h, w, device=args.device, generator=gen)
    return model, x, y, grid


def time_config(size: str, variant: str, args) -> dict:
    """Warm up, then time train steps of one configuration; the row for the results."""
    model, x, y, grid = build(variant, size, args)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    dev = args.device
    ctx = (lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if dev.type == "cuda" else contextlib.nullcontext

    def step() -> None:
        with ctx():
            loss = F.mse_loss(model(x, grid).float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    big = size == "0.25deg" and not args.smoke
    warmup, repeats = (2, 5) if big else (args.warmup, args.repeats)
    t0 = time.perf_counter()
    step()
    sync(dev)
    first = time.perf_counter() - t0
    for _ in range(warmup - 1):
        step()
    sync(dev)
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        step()
        sync(dev)
        times.append(time.perf_counter() - t0)
    peak = torch.cuda.max_memory_allocated(dev) if dev.type == "cuda" else float("nan")
    h, w, batch = args.sizes[size]
    tokens = token_count(h, w, args.model["patch"])
    med = statistics.median(times)
    flops = step_flops(tokens, batch, args.model)
    return {"size": size, "tokens": tokens, "grid": [h, w], "batch": batch, "variant": variant, "status": "ok",
            "median_ms": med * 1e3, "min_ms": min(times) * 1e3, "max_ms": max(times) * 1e3, "repeats": repeats,
            "first_step_s": first, "peak_gib": peak / 2**30, "tflops": flops / med / 1e12,
            "mfu": flops / med / args.rate, "skipped_blocks": skipped_blocks(model, grid, dev)}


def kernel_ops(args) -> tuple[dict, object]:
    """The attention op of each :data:`KERNELS` variant at the 16k size — name -> (fn(q, k, v), heads, head
    dim) — and the TokenDistance they share."""
    from gridvit.model.attention import _flex_fn, _flex_token_distance
    from gridvit.model.bias import DistanceBias

    dev, m = args.device, args.model
    h, w, _ = args.sizes["16k"]
    grid = _GRIDS.setdefault((h, w), global_grid(h, w))
    heads, d = m["heads"], m["dim"] // m["heads"]
    dtype = torch.bfloat16 if dev.type == "cuda" else torch.float32
    td = DistanceBias(heads=heads, layers=1).to(dev).token_distances(grid, m["patch"], device=dev, dtype=dtype)[0]
    learn = dataclasses.replace(td, weights=td.weights.detach().clone().requires_grad_())
    flex, compile = _flex_fn(dev.type == "cuda"), dev.type == "cuda"
    weights = td.weights

    def trivial(score, b, hh, q_idx, kv_idx):
        return score - weights[hh] * torch.abs(q_idx - kv_idx)

    def dist(bias):
        return lambda q, k, v: _flex_token_distance(q, k, v, bias, compile=compile)

    def reference(form):
        score_mod = reference_score_mod(td, form)
        return lambda q, k, v: flex(q, k, v, score_mod=score_mod, block_mask=td.block_mask)

    return {
        "sdpa": (F.scaled_dot_product_attention, heads, d),
        "sdpa-d64": (F.scaled_dot_product_attention, heads // 2, 2 * d),
        "flex-none": (lambda q, k, v: flex(q, k, v), heads, d),
        "flex-trivial": (lambda q, k, v: flex(q, k, v, score_mod=trivial), heads, d),
        "flex-chord-mask": (reference("chord"), heads, d),
        "flex-coords": (dist(dataclasses.replace(td, block_mask=None)), heads, d),
        "flex-coords-mask": (dist(td), heads, d),
        "flex-coords-learnable": (dist(learn), heads, d),
        "flex-asin-mask": (reference("asin"), heads, d),
    }, td


def kernel_rows(args) -> list[dict]:
    """Forward and forward + backward of the attention op alone per :data:`KERNELS` variant (16k size)."""
    dev = args.device
    ops, td = kernel_ops(args)
    batch, n = args.sizes["16k"][2], td.tokens
    dtype = torch.bfloat16 if dev.type == "cuda" else torch.float32
    rows = []
    for name in KERNELS:
        fn, heads, d = ops[name]
        row = {"variant": name, "tokens": n, "batch": batch, "heads": heads, "head_dim": d}
        try:
            gen = torch.Generator(device=dev).manual_seed(0)
            q, k, v, g = (torch.randn(batch, heads, n, d, device=dev, dtype=dtype, generator=gen) for _ in range(4))
            q.requires_grad_(), k.requires_grad_(), v.requires_grad_()
            times = {}
            t0 = time.perf_counter()
            fn(q, k, v).backward(g)
            sync(dev)
            row["first_s"] = time.perf_counter() - t0
            for _ in range(args.warmup - 1):
                fn(q, k, v).backward(g)
            for key, run in (("fwd", lambda: fn(q, k, v)), ("fwd_bwd", lambda: fn(q, k, v).backward(g))):
                if dev.type == "cuda":
                    torch.cuda.reset_peak_memory_stats(dev)  # the peak reported is the last (fwd + bwd) loop's
                ts = []
                for _ in range(args.repeats):
                    sync(dev)
                    t0 = time.perf_counter()
                    run()
                    sync(dev)
                    ts.append(time.perf_counter() - t0)
                times[key] = statistics.median(ts)
            flops = 4.0 * batch * heads * n * n * d  # forward: q·kᵀ and P·v; backward counted 2.5 × forward
            row.update(status="ok", fwd_ms=times["fwd"] * 1e3, fwd_bwd_ms=times["fwd_bwd"] * 1e3,
                       fwd_tflops=flops / times["fwd"] / 1e12, fwd_bwd_tflops=3.5 * flops / times["fwd_bwd"] / 1e12,
                       peak_gib=(torch.cuda.max_memory_allocated(dev) if dev.type == "cuda" else float("nan")) / 2**30)
            print(f"  kernel {name:22s} fwd {row['fwd_ms']:8.2f} ms  fwd+bwd {row['fwd_bwd_ms']:8.2f} ms  "
                  f"{row['fwd_bwd_tflops']:6.1f} TFLOP/s  first {row['first_s']:5.1f} s", flush=True)
        except Exception as err:  # recorded, and the plan goes on
            row["status"] = f"error: {type(err).__name__}: {one_line(err)}"
            print(f"  kernel {name:22s} {row['status']}", flush=True)
        rows.append(row)
        gc.collect()
    base = next((r for r in rows if r["variant"] == "sdpa" and r["status"] == "ok"), None)
    for r in rows:
        if base is not None and r["status"] == "ok":
            r["fwd_ratio"], r["fwd_bwd_ratio"] = r["fwd_ms"] / base["fwd_ms"], r["fwd_bwd_ms"] / base["fwd_bwd_ms"]
    return rows


def kernel_table(rows: list[dict]) -> str:
    lines = ["| variant | heads × dim | fwd ms | × sdpa | fwd + bwd ms | × sdpa | TFLOP/s (fwd + bwd) | peak GiB |"
             " first call s |", "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        if r["status"] != "ok":
            lines.append(f"| {r['variant']} | {r['heads']} × {r['head_dim']} | {r['status']} |" + "  |" * 6)
            continue
        lines.append(f"| {r['variant']} | {r['heads']} × {r['head_dim']} | {r['fwd_ms']:.2f} | "
                     f"{r.get('fwd_ratio', float('nan')):.2f} | {r['fwd_bwd_ms']:.2f} | "
                     f"{r.get('fwd_bwd_ratio', float('nan')):.2f} | {r['fwd_bwd_tflops']:.1f} | {r['peak_gib']:.2f} | "
                     f"{r['first_s']:.1f} |")
    return "\n".join(lines)


def token_count(h: int, w: int, patch: int) -> int:
    """N for an H×W grid: patches per axis, the last one padded."""
    return -(-h // patch) * -(-w // patch)


def skipped_blocks(model: GridViT, grid: Grid, device: torch.device) -> float | None:
    """Share of (head, query block, key block) tiles the first layer's block mask skips (None: no mask)."""
    if not (model.cfg.attention != "sdpa" and model.cfg.block_sparse and model.cfg.bias != "none"):
        return None
    with torch.no_grad():
        td = model.distance_bias.token_distances(grid, model.cfg.patch, device=device, dtype=torch.bfloat16)[0]
    if td.block_mask is None:
        return 0.0
    return float(td.block_mask.sparsity()) / 100.0


def run_plan(args) -> list[dict]:
    """Every planned configuration in priority order, within the time budget."""
    rows, start = [], time.monotonic()
    args.check, args.kernels = {"status": "skipped (time budget)"}, []
    for size, variant in PLAN:
        if size == "check":
            if time.monotonic() - start <= args.budget_s:
                args.check = run_check(args)
            continue
        if size == "kernel":
            if "16k" in args.only and not args.no_kernels:
                args.kernels = kernel_rows(args)
            continue
        if size not in args.only:
            continue
        h, w, batch = args.sizes[size]
        base = {"size": size, "tokens": token_count(h, w, args.model["patch"]), "grid": [h, w], "batch": batch,
                "variant": variant}
        if time.monotonic() - start > args.budget_s:
            rows.append({**base, "status": "skipped (time budget)"})
            print(f"  {size:8s} {variant:18s} skipped (time budget)", flush=True)
            continue
        try:
            row = time_config(size, variant, args)
            print(f"  {size:8s} {variant:18s} {row['median_ms']:9.1f} ms  {row['peak_gib']:6.2f} GiB  "
                  f"{row['tflops']:6.1f} TFLOP/s  first step {row['first_step_s']:5.1f} s", flush=True)
        except torch.cuda.OutOfMemoryError:
            row = {**base, "status": "oom"}
            print(f"  {size:8s} {variant:18s} out of memory", flush=True)
        except Exception as err:  # recorded, and the plan goes on
            row = {**base, "status": f"error: {type(err).__name__}: {one_line(err)}"}
            print(f"  {size:8s} {variant:18s} {row['status']}", flush=True)
        rows.append(row)
        gc.collect()
        if args.device.type == "cuda":
            torch.cuda.empty_cache()
    add_ratios(rows)
    return rows


def one_line(err: Exception) -> str:
    """An exception's first line, table-safe."""
    return (str(err).strip().splitlines() or [""])[0][:200].replace("|", "/")


def add_ratios(rows: list[dict]) -> None:
    """Time and peak-memory ratios to ``flash`` of the same size."""
    flash = {r["size"]: r for r in rows if r["variant"] == "flash" and r["status"] == "ok"}
    for r in rows:
        if r["status"] == "ok" and r["size"] in flash:
            r["time_ratio"] = r["median_ms"] / flash[r["size"]]["median_ms"]
            r["memory_ratio"] = r["peak_gib"] / flash[r["size"]]["peak_gib"]


def run_check(args) -> dict:
    """:func:`correctness`, its failure recorded instead of raised."""
    try:
        check = correctness(args)
    except Exception as err:
        check = {"error": f"{type(err).__name__}: {one_line(err)}"}
    print(f"  check (float32, Flex vs dense): {check}", flush=True)
    return check


def correctness(args) -> dict:
    """float32: the compiled Flex path (coordinates, learnable slopes) against the dense bias, 512 tokens.

    Returns the largest relative differences of the attention output, dq and the slopes' gradient."""
    from gridvit.model.attention import _flex_token_distance
    from gridvit.model.bias import DistanceBias

    dev, heads, d = args.device, 8, 32
    grid = global_grid(64, 128)
    db = DistanceBias(heads=heads, layers=1, mode="learnable").to(dev)
    gen = torch.Generator(device=dev).manual_seed(0)
    q, k, v = (torch.randn(2, heads, 512, d, device=dev, generator=gen) for _ in range(3))
    out = {}
    for name, path in (("flex", True), ("dense", False)):
        qq = q.clone().requires_grad_()
        db.zero_grad(set_to_none=True)
        if path:
            td = db.token_distances(grid, 4, device=dev, dtype=torch.float32)[0]
            o = _flex_token_distance(qq, k, v, td, compile=dev.type == "cuda")
        else:
            bias = db(grid, 4, device=dev, dtype=torch.float32)[0].dense(torch.float32)  # (1, h, N, N)
            o = F.scaled_dot_product_attention(qq, k, v, attn_mask=bias)
        (o * torch.linspace(-1, 1, d, device=dev)).sum().backward()
        out[name] = (o.detach(), qq.grad, db.raw_slopes.grad.clone())

    def rel(a, b):
        return float((a - b).abs().max() / b.abs().max())

    (o1, dq1, ds1), (o0, dq0, ds0) = out["flex"], out["dense"]
    return {"tokens": 512, "dtype": "float32", "out_rel": rel(o1, o0), "dq_rel": rel(dq1, dq0),
            "dslopes_rel": rel(ds1, ds0)}


def table(rows: list[dict]) -> str:
    lines = ["| tokens | grid | batch | variant | ms/step | × flash | peak GiB | × flash mem | TFLOP/s | MFU | "
             "blocks skipped | first step s |", "|---:|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in sorted(rows, key=lambda r: (ORDER[r["size"]], list(VARIANTS).index(r["variant"]))):
        grid = f"{r['grid'][0]}×{r['grid'][1]}"
        if r["status"] != "ok":
            lines.append(f"| {r['tokens']} | {grid} | {r['batch']} | {r['variant']} | {r['status']} |"
                         + "  |" * 7)
            continue
        ratio = f"{r['time_ratio']:.2f}" if "time_ratio" in r else ""
        mem = f"{r['memory_ratio']:.2f}" if "memory_ratio" in r else ""
        skipped = "" if r.get("skipped_blocks") is None else f"{100 * r['skipped_blocks']:.0f} %"
        lines.append(f"| {r['tokens']} | {grid} | {r['batch']} | {r['variant']} | {r['median_ms']:.1f} | {ratio} | "
                     f"{r['peak_gib']:.2f} | {mem} | {r['tflops']:.1f} | {100 * r['mfu']:.1f} % | {skipped} | "
                     f"{r['first_step_s']:.1f} |")
    return "\n".join(lines)


def _ok(result: dict, size: str, variant: str) -> dict | None:
    for r in result.get("rows", []):
        if r["size"] == size and r["variant"] == variant and r["status"] == "ok":
            return r
    return None


def headline(result: dict) -> list[dict]:
    """Summary rows for benchmarks/README.md (goals of the GPU issue); rows not measured say so, met None."""
    if result.get("machine", {}).get("gpu") is None or result.get("smoke"):
        return [{"result": "GPU attention benchmark", "value": "not run on a GPU", "goal": "", "met": None}]

    def ratios(variant: str, sizes: tuple, key: str = "time_ratio"):
        got = [_ok(result, s, variant) for s in sizes]
        if any(r is None or key not in r for r in got):
            return "not measured", None
        vals = [r[key] for r in got]
        return " / ".join(f"{v:.2f}×" for v in vals), vals

    rows = []
    for variant, sizes, goal in (("flex-coords", ("8k", "16k"), 1.10), ("flex-coords-mask", ("8k", "16k"), 1.10),
                                 ("flex-coords-mask", ("16k",), 1.0), ("learnable", ("8k", "16k"), 1.15)):
        text, vals = ratios(variant, sizes)
        rows.append({"result": f"train step, {variant} ÷ unbiased flash at {' / '.join(sizes)} tokens",
                     "value": text, "goal": f"≤ {goal:.2f}×", "met": None if vals is None else max(vals) <= goal})
    text, vals = ratios("learnable", ("8k", "16k"), "memory_ratio")
    rows.append({"result": "peak memory, learnable ÷ unbiased flash at 8k / 16k tokens", "value": text, "goal": "≤ 1.2×",
                 "met": None if vals is None else max(vals) <= 1.2})
    mem = [r for r in result.get("rows", []) if r["variant"] == "flex-coords-mask" and "memory_ratio" in r]
    if mem:
        mem.sort(key=lambda r: ORDER[r["size"]])
        rows.append({"result": f"peak memory, flex-coords-mask ÷ unbiased at {' / '.join(r['size'] for r in mem)}",
                     "value": " / ".join(f"{r['memory_ratio']:.2f}×" for r in mem), "goal": "≤ 1.1× at every size",
                     "met": max(r["memory_ratio"] for r in mem) <= 1.1})
    big = _ok(result, "0.25deg", "flex-coords-mask")
    rows.append({"result": "0.25° grid (721×1440, patch 4, batch 1), biased train step",
                 "value": "not measured" if big is None else f"{big['median_ms']:.0f} ms, {big['peak_gib']:.1f} GiB",
                 "goal": "fits 80 GB", "met": None if big is None else big["peak_gib"] * 2**30 <= 80e9})
    mfu = [_ok(result, "16k", v) for v in ("flash", "flex-coords-mask")]
    rows.append({"result": "MFU at 16k tokens, unbiased flash / flex-coords-mask (vs measured bf16 matmul)",
                 "value": "not measured" if None in mfu else " / ".join(f"{100 * r['mfu']:.0f} %" for r in mfu),
                 "goal": "≥ 35 %", "met": None if None in mfu else min(r["mfu"] for r in mfu) >= 0.35})
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="cuda", help="cuda (the benchmark) or cpu (with --smoke: a code check)")
    ap.add_argument("--budget-s", type=float, default=170.0, help="start no configuration after this many seconds")
    ap.add_argument("--warmup", type=int, default=3, help="untimed steps (the first compiles)")
    ap.add_argument("--repeats", type=int, default=10, help="timed steps")
    ap.add_argument("--only", nargs="+", choices=list(SIZES), default=list(SIZES), help="run only these sizes")
    ap.add_argument("--no-kernels", action="store_true", help="skip the attention-op timings (16k size)")
    ap.add_argument("--smoke", action="store_true", help="tiny model and grids, 1 + 2 steps, nothing written")
    ap.add_argument("--no-write", action="store_true", help="print only; leave benchmarks/results/ alone")
    args = ap.parse_args(argv)
    args.device = torch.device(args.device)
    if args.device.type == "cuda" and not torch.cuda.is_available():
        print("no CUDA device: run with --device cpu --smoke for a code check")
        return 1
    args.model, args.sizes = (SMOKE, SMOKE_SIZES) if args.smoke else (FULL, SIZES)
    if args.smoke:
        args.warmup, args.repeats = 1, 2
    for name, value in (("cache_size_limit", 256), ("recompile_limit", 256), ("accumulated_cache_size_limit", 4096)):
        if hasattr(torch._dynamo.config, name):
            setattr(torch._dynamo.config, name, value)  # one compiled Flex kernel per (size, score_mod)
    with contextlib.ExitStack() as stack:
        if args.device.type == "cpu":  # the eager (unfused) Flex path, to check the code, not to time it
            from torch.nn.attention import flex_attention as fa

            from gridvit.model import attention

            stack.enter_context(warnings.catch_warnings())
            warnings.simplefilter("ignore")
            saved = (attention.flex_available, fa._validate_device)
            attention.flex_available, fa._validate_device = (lambda device: True), (lambda *a: None)
            stack.callback(lambda: (setattr(attention, "flex_available", saved[0]), setattr(fa, "_validate_device", saved[1])))
        t_start = time.perf_counter()
        args.rate = matmul_rate(args.device, 8192 if args.device.type == "cuda" else 512)
        print(f"{torch.cuda.get_device_name(args.device) if args.device.type == 'cuda' else 'CPU'}: "
              f"matmul {args.rate / 1e12:.1f} TFLOP/s; torch {torch.__version__}", flush=True)
        rows = run_plan(args)
        check = args.check
        total = time.perf_counter() - t_start
    if args.kernels:
        print(kernel_table(args.kernels))
    print(table(rows))
    print(f"total {total:.0f} s")
    if args.smoke or args.no_write:
        return 0
    settings = {**args.model, "warmup": args.warmup, "repeats": args.repeats, "budget_s": args.budget_s,
                "matmul_tflops": args.rate / 1e12, "total_s": total, "autocast": "bf16"}
    md = "\n".join([
        "# Distance-biased attention on a GPU: train step (fwd + bwd + AdamW) per attention path",
        "",
        f"GridViT D {args.model['dim']}, {args.model['heads']} heads, depth {args.model['depth']}, patch "
        f"{args.model['patch']}, global lat-lon grids, bf16 autocast. Medians of {args.repeats} steps after "
        f"{args.warmup} warm-up (0.25° grid: 5 after 2); `× flash` divides by the same size's unbiased flash "
        "step of this run; peak GiB: `torch.cuda.max_memory_allocated` over the timed steps; TFLOP/s: model FLOPs "
        "(3 × forward, attention counted dense also where the block mask skips blocks) per second; MFU against "
        f"the measured bf16 matmul rate ({args.rate / 1e12:.0f} TFLOP/s, 8192³). Variants: see "
        "`benchmarks/attention_bias_cuda.py`. `first step s` includes compiling the Flex kernels.",
        "",
        f"Check (float32, 512 tokens, compiled Flex with coordinates and learnable slopes vs the dense bias): {check}.",
        "",
        "## The attention op alone",
        "",
        "q, k, v (B, heads, N, dim) in bf16 at the 16k size (4 × 16200 tokens); medians of "
        f"{args.repeats} after {args.warmup} warm-up; TFLOP/s counts q·kᵀ and P·v (backward 2.5 × forward), dense "
        "also where the block mask skips blocks. `sdpa-d64`: 4 heads of 64, the same FLOPs as 8 of 32.",
        "",
        kernel_table(args.kernels) if args.kernels else "not run",
        "",
        "## Train steps",
        "",
        table(rows),
        "",
        f"{total:.0f} s in all.",
    ])
    write_results("attention_bias_cuda", {"settings": settings, "check": check, "kernels": args.kernels, "rows": rows}, md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
