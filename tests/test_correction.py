"""Learned correction on a classical scheme: ``gridvit.train(ds, solver=scheme)``."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import gridvit
from gridvit.checkpoint import CheckpointError, load_model_file, save_model_file
from gridvit.solvers import BurgersCentral, BurgersUpwind, NavierStokesCentral, simulate

SAVE = 0.05  # saved step of the data


@pytest.fixture(scope="module")
def burgers():
    return simulate("burgers", shape=16, t_end=0.4, save_every=SAVE, samples=4, seed=0, viscosity=0.02,
                    ic_options={"amplitude": 0.5})


def scheme(k: int = 5, **kw) -> BurgersCentral:
    """Central Burgers on the fixture's 16² unit square, k steps per saved step."""
    return BurgersCentral(dt=SAVE / k, dx=1 / 16, dy=1 / 16, viscosity=0.02, **kw)


def _train(ds, solver, **kw):
    opts = dict(history=1, epochs=1, batch_size=4, patch=4, dim=16, depth=1, heads=2, progress=False,
                climatology=None, calendar=False, val_fraction=0.0, seed=0)
    opts.update(kw)
    return gridvit.train(ds, solver=solver, **opts)


def _states(ds, t: int = 0) -> torch.Tensor:
    return torch.from_numpy(np.stack([ds.u.values[:, t], ds.v.values[:, t]], axis=1))  # (S, 2, H, W)


def test_zero_initialised_correction_is_the_bare_scheme(burgers):
    sur = _train(burgers, scheme(), epochs=None, time_budget=None, lr=1e-12)
    torch.nn.init.zeros_(sur.model.head.weight)
    torch.nn.init.zeros_(sur.model.head.bias)
    u = _states(burgers, 2)
    bare = u.double()
    for _ in range(5):
        bare = scheme()(bare)
    with torch.no_grad():
        out = sur.step(u)
    np.testing.assert_allclose(out.numpy(), bare.float().numpy(), atol=1e-6, rtol=0)
    assert sur.solver.substeps == 5


def test_gradients_reach_the_model_through_the_solver(burgers):
    """The corrected step is differentiable (float64 gradcheck through the substeps), and an unrolled loss
    that backpropagates through the solver gives other parameter gradients than the detached one."""
    sur = _train(burgers, scheme(k=2), rollout_steps=2)
    sur.model.double()
    torch.nn.init.normal_(sur.model.head.weight, std=1e-2)
    z = torch.randn(1, 2, 16, 16, dtype=torch.float64, generator=torch.Generator().manual_seed(0)) * 0.3

    def step(x):
        with torch.autocast("cpu", enabled=False):
            return sur.model(torch.cat([x, sur.solver(x)], dim=1), sur.spec.grid)

    grads = []
    for detach in (True, False):
        sur.model.zero_grad()
        one = step(z)
        two = step(one.detach() if detach else one)
        two.square().mean().backward()
        grads.append(sur.model.embed.weight.grad.clone())
    assert not torch.allclose(grads[0], grads[1])
    zz = z.clone().requires_grad_(True)
    assert torch.autograd.gradcheck(step, (zz,), eps=1e-6, atol=1e-5, fast_mode=True)


def test_save_load_rebuilds_the_scheme_and_predicts_identically(burgers, tmp_path):
    sur = _train(burgers, scheme(), rollout_steps=2)
    path = sur.save(tmp_path / "m.gvt")
    back = gridvit.load(path)
    assert type(back.solver.scheme) is BurgersCentral and back.solver.substeps == 5
    assert back.solver.scheme.viscosity == 0.02
    u = _states(burgers, 3)
    with torch.no_grad():
        assert torch.equal(sur.step(u), back.step(u))
    a, b = sur.rollout(burgers.isel(time=slice(0, 2)), steps=3), back.rollout(burgers.isel(time=slice(0, 2)), steps=3)
    np.testing.assert_array_equal(a.u.values, b.u.values)


def test_a_hostile_file_cannot_name_an_arbitrary_class(burgers, tmp_path):
    sur = _train(burgers, scheme())
    tensors, meta = load_model_file(sur.save(tmp_path / "m.gvt"))
    for bad in ({"class": "os.system", "params": {}}, {"class": "Scheme", "params": {"dt": 1, "dx": 1, "dy": 1}},
                {"class": "BurgersCentral", "params": {**meta["solver"]["scheme"]["params"], "exec": "x"}}):
        meta["solver"]["scheme"] = bad
        save_model_file(tmp_path / "bad.gvt", tensors, json.loads(json.dumps(meta)))
        with pytest.raises(CheckpointError):
            gridvit.load(tmp_path / "bad.gvt")


def test_bad_solvers_are_refused_clearly(burgers):
    with pytest.raises(ValueError, match="does not divide"):
        _train(burgers, BurgersCentral(dt=SAVE / 2.5, dx=1 / 16, dy=1 / 16, viscosity=0.02))
    with pytest.raises(ValueError, match="dx=0.03125"):
        _train(burgers, BurgersCentral(dt=SAVE / 5, dx=1 / 32, dy=1 / 16, viscosity=0.02))
    with pytest.raises(ValueError, match="periodic"):
        _train(burgers, scheme(bc="dirichlet"))
    with pytest.raises(ValueError, match="1 field"):
        _train(burgers, NavierStokesCentral(dt=SAVE, dx=1 / 16, dy=1 / 16))
    with pytest.raises(TypeError, match="scheme instance"):
        _train(burgers, "central")
    with pytest.raises(ValueError, match="climatology=None"):
        _train(burgers, scheme(), climatology="hour")


def test_learned_correction_beats_its_bare_scheme():
    """Upwind Burgers (first order: numerical diffusion) on 16², corrected on data of central differences:
    40 short epochs more than halve the bare scheme's one-step error on unseen trajectories."""
    opts = dict(shape=16, t_end=1.0, save_every=0.05, scheme="central", viscosity=0.02, ic_options={"amplitude": 0.5})
    ds, test = simulate("burgers", samples=8, seed=1, **opts), simulate("burgers", samples=4, seed=7, **opts)
    coarse = BurgersUpwind(dt=0.01, dx=1 / 16, dy=1 / 16, viscosity=0.02)
    sur = _train(ds, coarse, epochs=40, patch=2, dim=32, depth=2, lr=3e-3, batch_size=16)
    u, ref = _states(test, 5), _states(test, 6)
    with torch.no_grad():
        corrected, bare = sur.step(u), u
        for _ in range(5):
            bare = coarse(bare)
    err = lambda a: float((a - ref).norm() / ref.norm())  # noqa: E731
    assert err(corrected) < 0.5 * err(bare), (err(corrected), err(bare))
