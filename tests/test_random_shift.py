"""Translation augmentation (``random_shift``): per-sample periodic rolls, inputs and targets together."""

from __future__ import annotations

import pytest
import torch

import gridvit
from gridvit import TrainConfig
from gridvit.examples import toy_climate
from gridvit.solvers import simulate
from gridvit import training
from gridvit.training import random_shifts


def _offsets(a: torch.Tensor, b: torch.Tensor) -> set[tuple[int, int]]:
    """The (dy, dx) rolls that take a (H, W) to b."""
    h, w = a.shape
    return {(dy, dx) for dy in range(h) for dx in range(w) if torch.equal(torch.roll(a, (dy, dx), (0, 1)), b)}


def test_each_sample_rolls_by_one_offset_shared_by_inputs_and_targets():
    torch.manual_seed(0)
    x = torch.randn(6, 3, 5, 7)  # (B, T*C, H, W)
    y = torch.randn(6, 2, 1, 5, 7)  # (B, K, C, H, W)
    sx, sy = random_shifts([x, y], (True, True))
    assert sx.shape == x.shape and sy.shape == y.shape
    seen = set()
    for b in range(6):
        (offset,) = _offsets(x[b, 0], sx[b, 0])  # random fields: exactly one roll matches
        seen.add(offset)
        torch.testing.assert_close(sx[b], torch.roll(x[b], offset, (-2, -1)), rtol=0, atol=0)
        torch.testing.assert_close(sy[b], torch.roll(y[b], offset, (-2, -1)), rtol=0, atol=0)
    assert len(seen) > 1  # offsets differ between samples


def test_a_bounded_axis_is_never_shifted():
    torch.manual_seed(1)
    x = torch.randn(8, 1, 4, 6)
    (sx,) = random_shifts([x], (False, True))
    for b in range(8):
        assert all(dy == 0 for dy, _ in _offsets(x[b, 0], sx[b, 0]))


def _plane_data():
    return simulate("heat", shape=8, t_end=0.4, save_every=0.1, samples=10, seed=0, diffusivity=0.05)


def test_random_shift_is_refused_where_a_shift_is_not_a_symmetry():
    with pytest.raises(TypeError, match="random_shift"):
        TrainConfig(random_shift="yes")
    with pytest.raises(ValueError, match="random_shift cannot be combined with linear_base"):
        TrainConfig(random_shift=True, linear_base=True)
    opts = dict(epochs=1, dim=16, depth=1, heads=2, patch=4, progress=False, random_shift=True)
    with pytest.raises(ValueError, match="random_shift needs a plane grid with a periodic axis.*sphere"):
        gridvit.train(toy_climate(n_time=16, shape=(8, 16), seed=0), **opts)
    ds = _plane_data()
    plain = dict(climatology=None, calendar=False, **opts)
    with pytest.raises(ValueError, match=r"periodic axis.*plane with periodic \(y, x\) = \(False, False\)"):
        gridvit.train(ds, periodic=False, **plain)
    static = ds["u"].isel(sample=0, time=0, drop=True).rename("orography")
    with pytest.raises(ValueError, match="static fields"):
        gridvit.train(ds, static=static, **plain)
    masked = ds.copy(deep=True)
    masked["u"][:, :, 0, 0] = float("nan")  # one cell never finite: a mask ties the data to fixed cells
    with pytest.raises(ValueError, match="masked"):
        gridvit.train(masked, **plain)


def test_random_shift_reaches_training_and_leaves_validation_alone(monkeypatch):
    ds = _plane_data()
    opts = dict(epochs=2, dim=16, depth=1, heads=2, patch=4, batch_size=4, progress=False, seed=0, history=1,
                climatology=None, calendar=False)
    plain = gridvit.train(ds, **opts)
    calls = []
    monkeypatch.setattr(training, "random_shifts", lambda t, p: calls.append(len(t[0])) or random_shifts(t, p))
    shifted = gridvit.train(ds, random_shift=True, **opts)
    assert not torch.equal(plain.model.embed.weight, shifted.model.embed.weight)
    assert shifted.history.val_loss.notnull().all()  # there was a validation split
    assert sum(calls) == int(shifted.history.samples[-1])  # every training window shifted once, no validation one
