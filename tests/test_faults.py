"""Faults during training: kill -9, unwritable folders, a full disk at save, a loss that blows up."""

from __future__ import annotations

import errno
import os
import sys
from pathlib import Path

import pytest
import torch

import gridvit
from gridvit.checkpoint import load_checkpoint
from gridvit.examples import toy_climate

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import stress_kill  # noqa: E402  (the kill harness; benchmarks/stress_kill.py runs it with 20 kills)

TINY = dict(dim=16, depth=1, heads=2, patch=4, batch_size=4, progress=False, seed=0)


@pytest.fixture(scope="module")
def data():
    return toy_climate(n_time=24, shape=(16, 32), seed=2)


def test_kill_9_five_times_loses_at_most_the_epoch_in_progress(tmp_path):
    result = stress_kill.kill_cycle(tmp_path, kills=5, epochs=12, seed=1)  # kills span ≤ 5 × 3 epochs
    kills = result["kills"]
    for r in kills:
        assert r["corrupt"] == [], r  # every file on disk loaded
        assert not r["lost_checkpoint"] and r["epochs_lost"] <= 1, r
        assert r["exitcode"] == -9 or r["finished_before_kill"], r
        assert r["checkpoint_epoch"] is None or r["checked"] == ["last.pt"], r
    assert sum(not r["finished_before_kill"] for r in kills) >= 3  # the kills really interrupted training
    assert result["final_epoch"] == 12 and result["final_corrupt"] == [] and result["final_temp_files"] == []
    assert result["max_abs_weight_diff_vs_uninterrupted"] <= 1e-6  # resumed at epoch boundaries: same model


def test_unwritable_checkpoint_dir_is_reported_before_training(data, tmp_path, monkeypatch):
    started = []
    monkeypatch.setattr(gridvit.training, "prepare", lambda *a, **k: started.append(1))
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(OSError, match=r"checkpoint_dir '.*file/sub' is not writable \(.*\); give a folder"):
        gridvit.train(data, epochs=1, checkpoint_dir=blocker / "sub", **TINY)
    if os.geteuid() != 0:  # root ignores permission bits
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        with pytest.raises(OSError, match="not writable.*Permission denied"):
            gridvit.train(data, epochs=1, checkpoint_dir=locked, **TINY)
    assert started == []  # refused before the data were even prepared


def _full_disk_after(nbytes: int):
    """A writer that writes ``nbytes`` of the file, then fails as a full disk does."""

    def write(obj, path, *args, **kwargs):
        with open(path, "wb") as f:
            f.write(b"\0" * nbytes)
        raise OSError(errno.ENOSPC, "No space left on device")

    return write


def test_full_disk_at_save_keeps_the_previous_files_whole(data, tmp_path, monkeypatch):
    model = gridvit.train(data, epochs=1, checkpoint_dir=tmp_path, **TINY)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    assert sorted(before) == ["last.pt", "model.gvt"]
    monkeypatch.setattr(torch, "save", _full_disk_after(100))
    with pytest.raises(OSError, match=r"could not write '.*last\.pt' \(No space left on device\); nothing was "
                                      "half-written") as info:
        gridvit.train(data, epochs=2, checkpoint_dir=tmp_path, resume=True, **TINY)
    assert info.value.errno == errno.ENOSPC
    import safetensors.torch

    monkeypatch.setattr(safetensors.torch, "save_file", lambda t, path, metadata=None: _full_disk_after(50)(t, path))
    with pytest.raises(OSError, match=r"could not write '.*model\.gvt'"):
        model.save(tmp_path / "model.gvt")
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before  # intact, and no temp file left
    assert load_checkpoint(tmp_path / "last.pt")["epoch"] == 1
    gridvit.load(tmp_path / "model.gvt")


def test_non_finite_loss_stops_with_a_clear_message_and_keeps_the_last_good_checkpoint(data, tmp_path):
    gridvit.train(data, epochs=1, checkpoint_dir=tmp_path, **TINY)
    (tmp_path / "model.gvt").unlink()
    with pytest.raises(FloatingPointError, match=r"loss became non-finite at epoch 2, step \d+; the last good "
                                                 r"checkpoint is '.*last\.pt'; lower lr"):
        gridvit.train(data, epochs=3, lr=1e30, grad_clip=1e30, warmup=0.0, checkpoint_dir=tmp_path, resume=True,
                      **TINY)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt"]  # no model file, no half-written file
    state = load_checkpoint(tmp_path / "last.pt")
    assert state["epoch"] == 1 and all(torch.isfinite(v).all() for v in state["model"].values())
    resumed = gridvit.train(data, epochs=2, checkpoint_dir=tmp_path, resume=True, **TINY)  # recovers from it
    assert load_checkpoint(tmp_path / "last.pt")["epoch"] == 2
    assert all(torch.isfinite(v).all() for v in resumed.model.state_dict().values())
