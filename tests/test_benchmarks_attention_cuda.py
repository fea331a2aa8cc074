"""The pure helpers of benchmarks/attention_bias_cuda.py (the GPU attention benchmark): FLOP count, ratios,
table and headline rows for GPU results, partial GPU results and results without a GPU."""

import importlib.util
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "attention_bias_cuda.py"
spec = importlib.util.spec_from_file_location("attention_bias_cuda", SCRIPT)
abc = importlib.util.module_from_spec(spec)
sys.modules[spec.name] = abc
spec.loader.exec_module(abc)


def row(size, variant, ms, gib, mfu=0.3, status="ok"):
    h, w, batch = abc.SIZES[size]
    r = {"size": size, "tokens": abc.token_count(h, w, 4), "grid": [h, w], "batch": batch, "variant": variant,
         "status": status}
    if status == "ok":
        r.update(median_ms=ms, peak_gib=gib, tflops=100.0, mfu=mfu, first_step_s=5.0, skipped_blocks=None)
    return r


def test_step_flops_matches_the_issue_figure():
    # 16200 tokens, batch 4, D 256, depth 8: 178 TFLOP/s at 158.8 ms (the issue's unbiased H200 step)
    flops = abc.step_flops(16200, 4, abc.FULL)
    assert flops / 0.1588 / 1e12 == pytest.approx(178, rel=0.02)
    assert abc.token_count(721, 1440, 4) == 181 * 360


def test_headline_scores_goals_and_says_what_was_not_measured():
    rows = [row("8k", "flash", 40.0, 2.0), row("8k", "flex-coords", 42.0, 2.1), row("8k", "flex-coords-mask", 41.0, 2.1),
            row("8k", "learnable", 45.0, 2.2), row("16k", "flash", 150.0, 4.0, mfu=0.36),
            row("16k", "flex-coords", 170.0, 4.2), row("16k", "flex-coords-mask", 149.0, 4.2, mfu=0.36),
            row("16k", "learnable", 160.0, 4.4), row("0.25deg", "flex-coords-mask", 600.0, 30.0),
            row("32k", "learnable", 0, 0, status="oom")]
    abc.add_ratios(rows)
    result = {"machine": {"gpu": "NVIDIA H200"}, "rows": rows}
    got = {r["result"]: r for r in abc.headline(result)}
    coords = got["train step, flex-coords ÷ unbiased flash at 8k / 16k tokens"]
    assert coords["value"] == "1.05× / 1.13×" and coords["met"] is False
    assert got["train step, flex-coords-mask ÷ unbiased flash at 16k tokens"]["met"] is True
    assert got["train step, learnable ÷ unbiased flash at 8k / 16k tokens"]["met"] is True
    assert got["0.25° grid (721×1440, patch 4, batch 1), biased train step"]["met"] is True
    assert got["MFU at 16k tokens, unbiased flash / flex-coords-mask (vs measured bf16 matmul)"]["met"] is True
    table = abc.table(rows)
    assert "| oom |" in table and table.count("\n") == len(rows) + 1
    partial = abc.headline({"machine": {"gpu": "NVIDIA H200"}, "rows": rows[:4]})
    assert {r["value"] for r in partial if "16k" in r["result"]} == {"not measured"}
    assert abc.headline({"machine": {"cpu": "x"}, "rows": []})[0]["met"] is None


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="checks the message shown without a GPU")
def test_attention_bias_device_cuda_hands_over_to_the_gpu_script(capsys):
    sys.path.insert(0, str(SCRIPT.parent))
    import attention_bias

    assert attention_bias.main(["--device", "cuda"]) == 1
    assert "no CUDA device" in capsys.readouterr().out


def test_kernel_table_keeps_failed_variants_and_ratios():
    ok = {"variant": "flex-coords-mask", "heads": 8, "head_dim": 32, "status": "ok", "fwd_ms": 20.0, "fwd_bwd_ms": 76.0,
          "fwd_ratio": 4.0, "fwd_bwd_ratio": 4.5, "fwd_bwd_tflops": 49.3, "peak_gib": 0.38, "first_s": 5.1}
    failed = {"variant": "flex-chord-mask", "heads": 8, "head_dim": 32, "status": "error: RuntimeError: x"}
    lines = abc.kernel_table([ok, failed]).splitlines()
    assert len(lines) == 4 and "| 4.50 |" in lines[2] and "error: RuntimeError: x" in lines[3]
    assert lines[3].count("|") == lines[0].count("|")
