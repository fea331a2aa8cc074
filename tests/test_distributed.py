"""Data-parallel training under torchrun (2 CPU processes, gloo), batch sharding and the memory options."""

import os
import signal
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.distributed as dist

import gridvit
from gridvit.checkpoint import load_checkpoint
from gridvit.distributed import TORCHRUN_VARS, shard_batches
from gridvit.examples import toy_climate
from gridvit.geometry import Grid
from gridvit.model import GridViT, ModelConfig

# 38 steps, a quarter held out: 25 training windows of span 4 -> global batches 6, 6, 6, 6, 1 (the last
# leaves rank 1 without a window), and 7 validation windows (4 + 3 over the ranks).
OPTS = dict(epochs=3, dim=16, depth=1, heads=2, patch=4, batch_size=6, rollout_steps=2, val_fraction=0.25,
            seed=3, progress=False, activation_checkpointing=True)
WORKER = """
import os, sys, torch, xarray as xr, gridvit
torch.set_num_threads(1)
model = gridvit.train(xr.open_dataset(sys.argv[1]), checkpoint_dir=sys.argv[2], **{opts!r})
torch.save(model.model.state_dict(), os.path.join(sys.argv[2], f"rank{{os.environ['RANK']}}.pt"))
"""
LOSS_RTOL = 1e-4  # per-epoch losses, 2 ranks vs 1 process; measured max relative difference 6e-8


@pytest.fixture(scope="module")
def toy_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("ddp") / "toy.nc"
    toy_climate(n_time=38, shape=(16, 32), seed=4).to_netcdf(path)
    return path


def _torchrun(*args: str, timeout: float = 120) -> str:
    """Run ``torchrun --standalone --nproc_per_node=2 ARGS`` (a free port; its own process group, killed
    whole on timeout so no worker outlives the test); return its output, failing on a non-zero exit."""
    env = {k: v for k, v in os.environ.items() if k not in (*TORCHRUN_VARS, "MASTER_ADDR", "MASTER_PORT")}
    env["OMP_NUM_THREADS"] = "1"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", *args]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise
    assert proc.returncode == 0, out
    return out


def test_two_gloo_ranks_match_one_process(toy_file, tmp_path):
    script = tmp_path / "worker.py"
    script.write_text(WORKER.format(opts={**OPTS, "num_workers": 1}))  # workers change nothing but speed
    _torchrun(str(script), str(toy_file), str(tmp_path / "ddp"))
    ranks = [torch.load(tmp_path / "ddp" / f"rank{r}.pt") for r in (0, 1)]
    for name, value in ranks[0].items():
        assert torch.equal(value, ranks[1][name]), f"{name} differs between ranks"

    import xarray as xr

    single = gridvit.train(xr.open_dataset(toy_file), checkpoint_dir=tmp_path / "one", distributed=False, **OPTS)
    log2 = load_checkpoint(tmp_path / "ddp" / "last.pt")["log"]
    log1 = load_checkpoint(tmp_path / "one" / "last.pt")["log"]
    assert len(log2) == len(log1) == 3
    for key in ("loss", "val_loss"):
        np.testing.assert_allclose([e[key] for e in log2], [e[key] for e in log1], rtol=LOSS_RTOL)
    assert log1[-1]["loss"] < log1[0]["loss"]  # it trained
    for name, value in single.model.state_dict().items():
        torch.testing.assert_close(ranks[0][name], value, rtol=1e-4, atol=1e-6, msg=name)  # measured ≤ 4e-8


def test_torchrun_cli_writes_output_once(toy_file, tmp_path):
    out = _torchrun("-m", "gridvit", "train", str(toy_file), "--out", str(tmp_path / "run"), "--epochs", "1",
                    "--dim", "16", "--depth", "1", "--heads", "2", "--patch", "4", "--batch-size", "4", "--quiet")
    assert out.count("saved ") == 1  # rank 0 only
    model = gridvit.load(tmp_path / "run" / "model.gvt")
    assert (tmp_path / "run" / "checkpoints" / "last.pt").exists()
    import xarray as xr

    fc = model.predict(xr.open_dataset(toy_file))
    assert np.isfinite(fc.t2m.values).all()


def test_batch_not_divisible_by_world_size_is_refused(monkeypatch):
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_RANK", "0")
    ds = toy_climate(n_time=12, shape=(8, 16), seed=0)
    with pytest.raises(ValueError, match=r"batch_size=5 is the global batch and must be divisible by the world "
                                         r"size 2.*use e\.g\. 4 or 6"):
        gridvit.train(ds, batch_size=5, epochs=1, dim=8, depth=1, heads=2, progress=False)
    assert not dist.is_initialized()


def test_distributed_true_outside_torchrun_is_refused(monkeypatch):
    for v in TORCHRUN_VARS:
        monkeypatch.delenv(v, raising=False)
    with pytest.raises(ValueError, match="distributed=True needs a torchrun launch"):
        gridvit.train(toy_climate(n_time=12, shape=(8, 16), seed=0), distributed=True, epochs=1, progress=False)
    with pytest.raises(TypeError, match="distributed must be True, False or None"):
        gridvit.train(toy_climate(n_time=12, shape=(8, 16), seed=0), distributed="yes", epochs=1)


@pytest.mark.parametrize("n, batch, world", [(25, 6, 2), (7, 4, 4), (12, 4, 2), (3, 8, 4)])
def test_shards_cover_each_global_batch_once(n, batch, world):
    order = list(np.random.default_rng(0).permutation(n))
    per_rank = [shard_batches(order, batch, r, world) for r in range(world)]
    assert len({len(s) for s in per_rank}) == 1  # every rank takes the same number of steps
    for i, shards in enumerate(zip(*per_rank)):
        glob = order[i * batch:(i + 1) * batch]
        real = [s.indices for s in shards if s.real]
        assert sum(real, []) == glob and all(s.global_size == len(glob) for s in shards)
        sizes = [len(s.indices) for s in shards if s.real]
        assert max(sizes) - min(sizes) <= 1
        assert all(len(s.indices) == 1 for s in shards if not s.real)  # a placeholder, given zero weight


@pytest.mark.parametrize("bias", ["alibi", "learnable"])
def test_activation_checkpointing_gives_the_same_gradients(bias, one_thread):
    grid = Grid("sphere", np.linspace(78.75, -78.75, 8), np.arange(16) * 22.5, periodic_x=True)
    torch.manual_seed(0)
    model = GridViT(ModelConfig(history=2, channels=1, patch=4, dim=16, depth=2, heads=2, bias=bias))
    torch.nn.init.normal_(model.head.weight, std=0.02)  # a non-zero head, so every block gets a gradient
    x = torch.randn(3, 2, 8, 16)
    grads = []
    for flag in (False, True):
        model.zero_grad()
        model.activation_checkpointing = flag
        model(x, grid).square().sum().backward()
        grads.append({n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None})
    assert grads[0].keys() == grads[1].keys() and len(grads[0]) == len(list(model.parameters()))
    for n in grads[0]:
        torch.testing.assert_close(grads[1][n], grads[0][n], rtol=1e-5, atol=1e-7, msg=n)
