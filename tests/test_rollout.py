"""Long rollouts stay finite; divergence beyond a bound from the training data stops them at the step it happens."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import gridvit
from gridvit.data.normalise import DIVERGENCE_FACTOR, FALLBACK_BOUND, Normaliser
from gridvit.examples import toy_climate
from gridvit.surrogate import RolloutDivergedError, Surrogate

TINY = dict(dim=16, depth=1, heads=2, patch=4, batch_size=4, progress=False, seed=0)


@pytest.fixture(scope="module")
def data():
    return toy_climate(n_time=40, shape=(8, 16), seed=4)


@pytest.fixture(scope="module")
def model(data, one_thread):
    # lr 3e-4: near persistence, stable for 1000 steps; at lr 1e-3 this tiny model creeps past the bound
    # near step 960 (the check below catches exactly that)
    return gridvit.train(data, epochs=3, lr=3e-4, climatology=None, **TINY)


def _heads_bias_shift(model, shift: float) -> Surrogate:
    """A copy of ``model`` whose output head adds ``shift`` standard deviations everywhere at every step."""
    m = Surrogate.from_meta(model.meta(), {f"model.{k}": v.clone() for k, v in model.model.state_dict().items()})
    with torch.no_grad():
        m.model.head.bias.add_(shift)
    return m


def test_divergence_bound_is_derived_from_the_training_data(model, data):
    n_train = 36  # val_fraction 0.1 of 40 steps held out
    z = (data.t2m.values[:n_train] - model.normaliser.mean[0]) / model.normaliser.std[0]
    assert model.normaliser.zmax[0] == pytest.approx(np.abs(z).max(), rel=1e-6)
    np.testing.assert_allclose(model.normaliser.divergence_bound(), DIVERGENCE_FACTOR * np.abs(z).max(), rtol=1e-6)
    again = Normaliser.from_dict(model.normaliser.to_dict())
    np.testing.assert_array_equal(again.zmax, model.normaliser.zmax)
    old = {k: v for k, v in model.normaliser.to_dict().items() if k != "zmax"}  # files saved before zmax
    assert Normaliser.from_dict(old).divergence_bound().tolist() == [FALLBACK_BOUND]


def test_thousand_step_rollout_stays_finite(model, data):
    fc = model.rollout(data, steps=1000)
    assert fc.t2m.shape == (1000, 8, 16) and np.isfinite(fc.t2m.values).all()
    z = (fc.t2m.values - model.normaliser.mean[0]) / model.normaliser.std[0]
    assert np.abs(z).max() <= model.normaliser.divergence_bound()[0]
    step = np.diff(fc.time.values).astype("timedelta64[h]").astype(int)
    assert (step == 6).all()


def test_divergence_is_reported_at_the_step_it_happens_and_stops_the_rollout(model, data):
    m = _heads_bias_shift(model, 0.5)
    bound = float(m.normaliser.divergence_bound()[0])
    # the same stepping by hand: the first step whose largest |normalised value| passes the bound
    states, times = m._initial_states(data)
    expected = None
    with torch.no_grad():
        for k in range(1, 200):
            nxt = m.forward(states, [times[-1]])
            if float(nxt.abs().max()) > bound:
                expected = k
                break
            states = torch.cat([states[:, 1:], nxt], dim=1)
    assert expected is not None and expected > 5  # it creeps up: a late step, not the first
    with pytest.raises(RolloutDivergedError, match=rf"rollout diverged at step {expected}: 't2m' reached .* beyond "
                                                   r"the bound .*the rollout was stopped") as info:
        m.rollout(data, steps=1000)
    assert info.value.step == expected and info.value.peak > bound and info.value.bound == pytest.approx(bound)
    m.rollout(data, steps=expected - 1)  # everything before it is within bounds


def test_non_finite_values_stop_the_rollout_at_step_one(model, data):
    m = _heads_bias_shift(model, float("inf"))
    with pytest.raises(RolloutDivergedError, match="step 1: 't2m' reached non-finite values") as info:
        m.rollout(data, steps=3)
    assert info.value.step == 1
