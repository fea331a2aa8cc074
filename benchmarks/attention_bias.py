"""Train-step cost of distance-biased attention: gridvit vs unbiased SDPA vs a seed-style explicit ViT.

Times one train step (forward + backward + AdamW) of a D=128, 4-head, depth-4 ViT at 512, 1024 and 2048
tokens (patch 4 on global lat-lon grids), batch 8, for:

- ``sdpa-unbiased``: GridViT with ``bias="none"`` (SDPA, no mask) — the baseline of every ratio;
- ``gridvit-alibi``: GridViT's default (fixed great-circle ALiBi bias, fused SDPA path);
- ``gridvit-learnable``: GridViT with learnable slopes (the bias needs a gradient);
- ``reference``: a seed-style ViT with explicit ``softmax(Q Kᵀ/√d + B) V`` (the classic tutorial layout);
- the same unbiased/alibi/reference steps under bf16 autocast (``*-bf16``; AMX on this CPU).

Each variant is timed in blocks (warm-up, then timed steps, as a training loop runs), the blocks taken
round-robin over the variants (two rounds; the slow reference one) so drift is shared; medians pool the timed
steps, and ratios divide by ``sdpa-unbiased`` (``sdpa-unbiased-bf16`` for bf16 rows) from the same run. A second
table times one attention op (fwd + bwd) under each bias layout tried. The machine may be shared: every block
records the CPU share other processes took, and ``--max-others 0.1`` re-times blocks they disturbed.

    .venv/bin/python benchmarks/attention_bias.py                    # full run (~4 min), writes results/
    .venv/bin/python benchmarks/attention_bias.py --max-others 0.1   # on a shared machine
    .venv/bin/python benchmarks/attention_bias.py --quick            # 512 tokens only, nothing written
    .venv/bin/python benchmarks/attention_bias.py --compiled         # adds torch.compile rows (slow start)
    .venv/bin/python benchmarks/attention_bias.py --device cuda      # the GPU benchmark: attention_bias_cuda.py
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parents[1])]
from _common import write_results  # noqa: E402

from gridvit.geometry import Grid  # noqa: E402
from gridvit.model import GridViT, ModelConfig  # noqa: E402
from gridvit.model.bias import DistanceBias  # noqa: E402
from gridvit.patches import patchify, unpatchify  # noqa: E402

PATCH, DIM, HEADS, DEPTH, BATCH, HISTORY, CHANNELS = 4, 128, 4, 4, 8, 2, 4
PATCH_GRIDS = {512: (16, 32), 1024: (32, 32), 2048: (32, 64)}  # (nh, nw) patches -> N tokens


def global_grid(nlat: int, nlon: int) -> Grid:
    """A regular global lat-lon grid with cell-centred latitudes."""
    dlat = 180.0 / nlat
    lat = np.linspace(-90 + dlat / 2, 90 - dlat / 2, nlat)
    return Grid("sphere", lat, np.arange(nlon) * 360.0 / nlon, periodic_x=True)


# --- seed-style reference: the classic tutorial ViT with explicit attention ------------------------------


class RefAttention(nn.Module):
    """``softmax(Q Kᵀ / √d + B) V`` written out, as in the classic tutorial ViTs."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads, self.scale = heads, (dim // heads) ** -0.5
        self.to_qkv = nn.Linear(dim, 3 * dim)
        self.to_out = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        q, k, v = (t.reshape(b, n, self.heads, -1).transpose(1, 2) for t in self.to_qkv(x).chunk(3, dim=-1))
        dots = torch.matmul(q, k.transpose(-1, -2)) * self.scale + bias  # (B, h, N, N)
        out = torch.matmul(dots.softmax(dim=-1), v)  # (B, h, N, d)
        return self.to_out(out.transpose(1, 2).reshape(b, n, d))


class RefViT(nn.Module):
    """Pre-LN ViT with :class:`RefAttention`, same widths and head as GridViT, and the same bias values
    kept as seed code keeps them: one (h, N, N) tensor per grid, computed once."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg, d = cfg, cfg.dim
        self.embed = nn.Linear(cfg.patch**2 * cfg.in_channels, d)
        self.norms = nn.ModuleList(nn.LayerNorm(d) for _ in range(2 * cfg.depth))
        self.attns = nn.ModuleList(RefAttention(d, cfg.heads) for _ in range(cfg.depth))
        self.mlps = nn.ModuleList(
            nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(), nn.Linear(4 * d, d)) for _ in range(cfg.depth)
        )
        self.norm = nn.LayerNorm(d)
        self.head = nn.Linear(d, cfg.patch**2 * cfg.channels)
        self.bias = DistanceBias(heads=cfg.heads, layers=1)

    def forward(self, x: torch.Tensor, grid: Grid) -> torch.Tensor:
        bias = self.bias(grid, self.cfg.patch, device=x.device, dtype=torch.float32)[0][0]  # (h, N, N)
        z = self.embed(patchify(x, self.cfg.patch, grid.periodic))  # (B, N, D)
        for i, (attn, mlp) in enumerate(zip(self.attns, self.mlps)):
            z = z + attn(self.norms[2 * i](z), bias)
            z = z + mlp(self.norms[2 * i + 1](z))
        last = x[:, (self.cfg.history - 1) * self.cfg.channels : self.cfg.history * self.cfg.channels]
        return last + unpatchify(self.head(self.norm(z)), self.cfg.patch, grid.shape)  # (B, C, H, W)


# --- timing -------------------------------------------------------------------------------------------------


def make_step(model: nn.Module, x: torch.Tensor, y: torch.Tensor, grid: Grid, *, bf16: bool, compiled: bool = False):
    """One optimiser step (forward, MSE loss, backward, AdamW) as a closure."""
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    forward = torch.compile(model) if compiled else model

    def step() -> None:
        ctx = torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
        with ctx:
            loss = F.mse_loss(forward(x, grid).float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


def step_variants(tokens: int, *, compiled: bool) -> tuple[dict, Grid]:
    """The train-step closures for one token count, baseline first."""
    nh, nw = PATCH_GRIDS[tokens]
    grid = global_grid(nh * PATCH, nw * PATCH)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(BATCH, HISTORY * CHANNELS, *grid.shape, generator=gen)
    y = torch.randn(BATCH, CHANNELS, *grid.shape, generator=gen)

    def build(name: str, bias: str, **kw):
        torch.manual_seed(0)
        cfg = ModelConfig(history=HISTORY, channels=CHANNELS, patch=PATCH, dim=DIM, depth=DEPTH, heads=HEADS, bias=bias)
        model = RefViT(cfg) if name.startswith("reference") else GridViT(cfg)
        steps[name] = make_step(model, x, y, grid, **kw)

    steps: dict = {}
    build("sdpa-unbiased", "none", bf16=False)
    build("gridvit-alibi", "alibi", bf16=False)
    build("gridvit-learnable", "learnable", bf16=False)
    build("reference", "alibi", bf16=False)
    build("sdpa-unbiased-bf16", "none", bf16=True)
    build("gridvit-alibi-bf16", "alibi", bf16=True)
    build("reference-bf16", "alibi", bf16=True)
    if compiled:
        build("sdpa-unbiased-compiled", "none", bf16=False, compiled=True)
        build("gridvit-alibi-compiled", "alibi", bf16=False, compiled=True)
    return steps, grid


def attention_variants(tokens: int) -> dict:
    """One attention op, forward + backward, (B, h, N, d) = (8, 4, N, 32), under each bias layout tried."""
    from gridvit.model.attention import _SlopedFlashAttention

    gen = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(BATCH, HEADS, tokens, DIM // HEADS, generator=gen, requires_grad=True) for _ in range(3))
    nh, nw = PATCH_GRIDS[tokens]
    grid = global_grid(nh * PATCH, nw * PATCH)
    bias4 = DistanceBias(heads=HEADS, layers=1)(grid, PATCH, device=q.device, dtype=q.dtype)[0]  # (1, h, N, N)
    slopes = torch.ones(HEADS, requires_grad=True)
    dist = -bias4[0, 0] / DistanceBias(heads=HEADS, layers=1).fixed_slopes[0]  # (N, N), slope 1 head
    log_dist = dist.log()

    def op(mask=None, sloped: bool = False):
        def run() -> None:
            if sloped:
                out = _SlopedFlashAttention.apply(q, k, v, slopes, dist, log_dist)
            else:
                out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask() if callable(mask) else mask)
            out.sum().backward()

        return run

    return {
        "no mask": op(None),
        "(1,h,N,N) fixed [gridvit alibi]": op(bias4),
        "(h,N,N) fixed, 3-D": op(bias4[0]),
        "(B,h,N,N) expanded contiguous": op(bias4.expand(BATCH, -1, -1, -1).contiguous()),
        "(1,h,N,N) needs grad (autograd)": op(lambda: -(slopes[None, :, None, None] * dist)),
        "sloped flash [gridvit learnable]": op(sloped=True),
    }


def load_average() -> float:
    """1-minute load average (other processes on the machine skew timings; it is written with them)."""
    try:
        return float(Path("/proc/loadavg").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return float("nan")


def busy_seconds() -> float:
    """CPU seconds all processes (and the hypervisor's steal) have used since boot, from /proc/stat."""
    try:
        f = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    except (OSError, ValueError):
        return float("nan")
    user, nice, system, _idle, _iowait, irq, softirq, steal = f
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def wait_for_idle(deadline: float) -> None:
    """Sleep until other processes leave the CPUs (< 15 % busy over 2 s) or the deadline passes."""
    while time.monotonic() < deadline:
        b0 = busy_seconds()
        time.sleep(2.0)
        if (busy_seconds() - b0) / (2.0 * (os.cpu_count() or 1)) < 0.15:
            return


def time_block(fn, *, warmup: int, repeats: int, max_others: float, deadline: float) -> dict:
    """Time ``repeats`` calls of ``fn`` after ``warmup`` calls, and who else used the CPUs meanwhile.

    ``cpu_share``: this process's CPU time over wall time × torch threads (≈1 when every thread computed
    throughout; explicit attention stays lower even alone). ``others_share``: the CPU time that other processes
    used, over wall time × CPUs. A block with ``others_share > max_others`` is timed again once the machine is
    idle, until ``deadline``; ``attempts`` counts the blocks.
    """
    for attempt in range(1, 1000):
        for _ in range(warmup):
            fn()
        cpu0, busy0, wall0 = time.process_time(), busy_seconds(), time.perf_counter()
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
        others = max(0.0, busy_seconds() - busy0 - cpu) / (wall * (os.cpu_count() or 1))
        block = {"times": times, "cpu_share": cpu / (wall * torch.get_num_threads()), "others_share": others, "attempts": attempt}
        if others <= max_others or time.monotonic() > deadline:
            return block
        wait_for_idle(deadline)
    return block


def time_variants(steps: dict, *, rounds: dict, warmup: int, repeats: dict, max_others: float, deadline: float) -> dict:
    """Median step time per variant, pooling the timed calls of ``rounds[name]`` blocks taken round-robin
    (each block warms up like a training loop; the rounds spread drift over the variants)."""
    blocks: dict[str, list[dict]] = {name: [] for name in steps}
    for r in range(max(rounds.values())):
        for name, fn in steps.items():
            if r < rounds[name]:
                blocks[name].append(time_block(fn, warmup=warmup, repeats=repeats[name], max_others=max_others, deadline=deadline))
                b = blocks[name][-1]
                print(f"    {name:24s} round {r + 1}: median {statistics.median(b['times']) * 1e3:9.1f} ms"
                      f"   cpu share {b['cpu_share']:.2f}   others {b['others_share']:.2f}", flush=True)
    out = {}
    for name, bs in blocks.items():
        times = [t for b in bs for t in b["times"]]
        out[name] = {
            "median_s": statistics.median(times), "min_s": min(times), "max_s": max(times), "repeats": len(times),
            "round_medians_s": [statistics.median(b["times"]) for b in bs],
            "cpu_share": min(b["cpu_share"] for b in bs), "others_share": max(b["others_share"] for b in bs),
            "attempts": sum(b["attempts"] for b in bs),
        }
    return out


def run_steps(tokens: list[int], args) -> list[dict]:
    rows = []
    for n in tokens:
        steps, grid = step_variants(n, compiled=args.compiled)
        print(f"train step, N = {n} tokens ({grid.shape[0]}×{grid.shape[1]} grid, patch {PATCH}, batch {BATCH})", flush=True)
        for name, fn in steps.items():
            if name.endswith("compiled"):
                t0 = time.perf_counter()
                fn()
                print(f"    {name}: first call (compilation) {time.perf_counter() - t0:.1f} s", flush=True)
        heavy = {name: name.startswith("reference") for name in steps}
        res = time_variants(
            steps,
            rounds={name: 1 if heavy[name] else args.rounds for name in steps},
            warmup=args.warmup,
            repeats={name: args.heavy_repeats if heavy[name] else args.repeats for name in steps},
            max_others=args.max_others,
            deadline=args.deadline,
        )
        for name, r in res.items():
            bf16 = name.endswith("-bf16")
            base = res["sdpa-unbiased-bf16" if bf16 else "sdpa-unbiased"]["median_s"]
            row = {"tokens": n, "grid": list(grid.shape), "variant": name, **r, "ratio": r["median_s"] / base}
            if name.startswith("gridvit"):
                row["reference_over_this"] = res["reference-bf16" if bf16 else "reference"]["median_s"] / r["median_s"]
            rows.append(row)
            extra = f"   reference ÷ this {row['reference_over_this']:5.2f}" if "reference_over_this" in row else ""
            print(f"  {name:24s} median {r['median_s'] * 1e3:9.1f} ms   × unbiased {row['ratio']:6.3f}{extra}", flush=True)
    return rows


def run_attention(tokens: list[int], args) -> list[dict]:
    rows = []
    for n in tokens:
        print(f"attention op (fwd + bwd), N = {n}, (B, h, N, d) = ({BATCH}, {HEADS}, {n}, {DIM // HEADS})", flush=True)
        variants = attention_variants(n)
        res = time_variants(
            variants, rounds=dict.fromkeys(variants, 1), warmup=1, repeats=dict.fromkeys(variants, args.heavy_repeats),
            max_others=args.max_others, deadline=args.deadline,
        )
        base = res["no mask"]["median_s"]
        for name, r in res.items():
            rows.append({"tokens": n, "variant": name, **r, "ratio": r["median_s"] / base})
            print(f"  {name:34s} median {r['median_s'] * 1e3:8.1f} ms   × no mask {r['median_s'] / base:6.3f}", flush=True)
    return rows


def table(rows: list[dict], *, steps: bool) -> str:
    """Markdown rows: medians and ratios."""
    if steps:
        lines = ["| tokens | grid | variant | median ms | round medians ms | × unbiased SDPA | reference ÷ this | cpu share | others |",
                 "|---:|---|---|---:|---|---:|---:|---:|---:|"]
    else:
        lines = ["| tokens | bias layout | median ms | × no mask | others |", "|---:|---|---:|---:|---:|"]
    for r in rows:
        ms = f"{r['median_s'] * 1e3:.1f}"
        if steps:
            speedup = f"{r['reference_over_this']:.2f}" if "reference_over_this" in r else ""
            rounds = ", ".join(f"{t * 1e3:.0f}" for t in r["round_medians_s"])
            lines.append(f"| {r['tokens']} | {r['grid'][0]}×{r['grid'][1]} | {r['variant']} | {ms} | {rounds} | "
                         f"{r['ratio']:.3f} | {speedup} | {r['cpu_share']:.2f} | {r['others_share']:.2f} |")
        else:
            lines.append(f"| {r['tokens']} | {r['variant']} | {ms} | {r['ratio']:.3f} | {r['others_share']:.2f} |")
    return "\n".join(lines)


def headline(result: dict) -> list[dict]:
    """Summary rows for benchmarks/README.md: biased step ÷ unbiased SDPA, and reference ÷ gridvit."""
    rows = {(r["variant"], r["tokens"]): r for r in result["train_steps"]}
    tokens = sorted({n for _, n in rows})
    at = " / ".join(str(n) for n in tokens)

    def series(variant: str, key: str) -> list[float]:
        return [rows[(variant, n)][key] for n in tokens if (variant, n) in rows]

    alibi, learn = series("gridvit-alibi", "ratio"), series("gridvit-learnable", "ratio")
    ref = series("gridvit-alibi", "reference_over_this")
    return [
        {"result": f"train step, gridvit (ALiBi) ÷ unbiased SDPA at {at} tokens",
         "value": " / ".join(f"{v:.2f}×" for v in alibi), "goal": "≤ 1.15×", "met": max(alibi) <= 1.15},
        {"result": f"train step, learnable slopes ÷ unbiased SDPA at {at} tokens",
         "value": " / ".join(f"{v:.2f}×" for v in learn), "goal": "≤ 1.15×", "met": max(learn) <= 1.15},
        {"result": f"train step, explicit reference ViT ÷ gridvit at {at} tokens",
         "value": " / ".join(f"{v:.2f}×" for v in ref), "goal": "≥ 2×", "met": min(ref) >= 2.0},
    ]


def main(argv: list[str] | None = None) -> int:
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--device", default="cpu")
    known, rest = pre.parse_known_args(argv)
    if known.device != "cpu":  # the GPU benchmark (Flex paths, bf16, GridViT at 2k-65k tokens) lives beside this one
        from attention_bias_cuda import main as gpu_main

        return gpu_main(["--device", known.device, *rest])
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="cpu", help="cpu (this benchmark) or cuda (attention_bias_cuda.py's)")
    ap.add_argument("--tokens", type=int, nargs="+", default=sorted(PATCH_GRIDS), choices=sorted(PATCH_GRIDS))
    ap.add_argument("--warmup", type=int, default=1, help="untimed calls before each block")
    ap.add_argument("--repeats", type=int, default=3, help="timed calls per block")
    ap.add_argument("--rounds", type=int, default=2, help="blocks per variant, round-robin (reference: 1)")
    ap.add_argument("--heavy-repeats", type=int, default=2, help="timed calls for the (slow) reference and attention ops")
    ap.add_argument("--compiled", action="store_true", help="also time torch.compile'd models (slow to start)")
    ap.add_argument("--no-attention", action="store_true", help="skip the single attention-op table")
    ap.add_argument("--quick", action="store_true", help="512 tokens, one round, no result files")
    ap.add_argument("--no-write", action="store_true", help="print only; leave benchmarks/results/ alone")
    ap.add_argument("--max-others", type=float, default=1.0,
                    help="re-time a block when other processes used more than this share of the CPUs (shared machines)")
    ap.add_argument("--max-wait", type=float, default=1800.0, help="seconds to wait for idle CPUs, in all")
    args = ap.parse_args(argv)
    if args.quick:
        args.tokens, args.rounds = [512], 1
    args.deadline = time.monotonic() + args.max_wait
    torch.manual_seed(0)
    load_before = load_average()
    if load_before > 0.5:
        print(f"warning: load average {load_before:.2f} before starting: other processes will skew timings")
    t_start = time.perf_counter()
    step_rows = run_steps(args.tokens, args)
    attn_rows = [] if args.no_attention else run_attention(args.tokens, args)
    total, load_after = time.perf_counter() - t_start, load_average()
    print(f"total {total:.0f} s; load average before {load_before:.2f}, after {load_after:.2f}")
    if args.quick or args.no_write:
        return 0
    settings = {
        "patch": PATCH, "dim": DIM, "heads": HEADS, "depth": DEPTH, "batch": BATCH, "history": HISTORY,
        "channels": CHANNELS, "warmup": args.warmup, "repeats": args.repeats, "rounds": args.rounds,
        "heavy_repeats": args.heavy_repeats, "max_others": args.max_others, "torch_threads": torch.get_num_threads(),
        "load_average_before": load_before, "load_average_after": load_after, "total_s": total,
    }
    retimed = sum(r["attempts"] - (1 if "round_medians_s" not in r else len(r["round_medians_s"])) for r in step_rows + attn_rows)
    md = "\n".join([
        "# Distance-biased attention: train-step cost (fwd + bwd + AdamW)",
        "",
        f"D={DIM}, {HEADS} heads, depth {DEPTH}, batch {BATCH}, patch {PATCH}, global lat-lon grids; float32 unless "
        f"`-bf16` (CPU autocast). Each variant is timed in {args.rounds} round-robin blocks of {args.warmup} warm-up + "
        f"{args.repeats} timed steps (reference: 1 block of {args.heavy_repeats}); medians pool the timed steps. "
        "`× unbiased SDPA` divides by the same run's `sdpa-unbiased` (`sdpa-unbiased-bf16` for bf16 rows). "
        "`cpu share`: this process's CPU time over wall × threads; `others`: CPU share other processes used meanwhile "
        f"(the machine is shared; blocks with others > {args.max_others} were re-timed once it was idle: {retimed} re-timed). "
        f"Load average {load_before:.2f} before, {load_after:.2f} after; {total:.0f} s in all.",
        "",
        table(step_rows, steps=True),
        "",
        "## One attention op (fwd + bwd): the bias layouts tried",
        "",
        table(attn_rows, steps=False) if attn_rows else "(skipped)",
    ])
    write_results("attention_bias", {"settings": settings, "train_steps": step_rows, "attention_op": attn_rows}, md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
