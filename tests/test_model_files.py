"""Model files that cannot lie: strict loading, no allocation from header claims, allow-listed schemes, a fuzz."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import re
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import gridvit
from gridvit import solvers
from gridvit.checkpoint import CheckpointError, load_checkpoint, load_model_file, save_checkpoint, save_model_file
from gridvit.solvers.base import Scheme
from gridvit.solvers.grid_ops import Boundary
from gridvit.solvers.registry import ALLOWED, scheme_from_dict, scheme_to_dict

FIXTURES = Path(__file__).resolve().parent / "fixtures"
SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "fuzz_loader.py"
spec = importlib.util.spec_from_file_location("fuzz_loader", SCRIPT)
fuzz = importlib.util.module_from_spec(spec)
sys.modules[spec.name] = fuzz
spec.loader.exec_module(fuzz)

MiB = 2**20


@pytest.fixture(scope="module")
def base(tmp_path_factory, one_thread):
    """(path, tensors, meta) of the fixture saved in today's format."""
    path = fuzz.base_file(tmp_path_factory.mktemp("base"))
    tensors, meta = load_model_file(path)
    return path, tensors, meta


@pytest.fixture(scope="module")
def forecast_input():
    return fuzz.forecast_input()


def _refused(path: Path, match: str) -> int:
    """Assert ``gridvit.load(path)`` raises CheckpointError matching ``match``; return the RSS growth (bytes)."""
    _, err, grew = fuzz.peak_growth(lambda: gridvit.load(path))
    assert isinstance(err, CheckpointError), repr(err)
    assert re.search(match, str(err)), str(err)
    return grew


def test_a_file_of_the_previous_format_loads_and_forecasts_as_before(forecast_input, one_thread):
    sur = gridvit.load(FIXTURES / "tiny_v1.gvt")
    fc = sur.rollout(forecast_input, steps=2)
    np.testing.assert_array_equal(fc["t2m"].values, np.load(FIXTURES / "tiny_v1_rollout.npy"))
    buffers = dict(sur.model.named_buffers())
    assert buffers["distance_bias.fixed_slopes"].device.type == "cpu"
    torch.testing.assert_close(buffers["distance_bias.fixed_slopes"], torch.tensor([1.0, 1 / 64]))
    assert all(not t.is_meta for t in sur.model.state_dict().values())


def test_loading_leaves_the_callers_random_stream_alone(base):
    torch.manual_seed(5)
    expected = torch.rand(3)
    torch.manual_seed(5)
    gridvit.load(base[0])
    assert torch.equal(torch.rand(3), expected)


def test_a_file_without_its_weights_is_refused_without_allocating(base, tmp_path):
    path, tensors, meta = base
    weightless = {k: v for k, v in tensors.items() if not k.startswith("model.")}
    save_model_file(tmp_path / "weightless.gvt", weightless, meta)
    assert _refused(tmp_path / "weightless.gvt", r"no model weights \(no 'model\.\*' tensors\)") < 64 * MiB


@pytest.mark.parametrize("inflate", [{"dim": 2048, "depth": 16}, {"dim": 2048}, {"depth": 10**9},
                                     {"dim": 2**40, "heads": 2**20}, {"mlp_ratio": 1e300}])
def test_an_inflated_header_is_refused_before_anything_is_allocated(base, tmp_path, inflate):
    path, tensors, meta = base
    meta = json.loads(json.dumps(meta))
    meta["model_config"].update(inflate)
    for name, kept in (("inflated.gvt", tensors), ("inflated-weightless.gvt",
                                                   {k: v for k, v in tensors.items() if not k.startswith("model.")})):
        save_model_file(tmp_path / name, kept, meta)
        grew = _refused(tmp_path / name, r"implies|cannot be built|no model weights|refused")
        assert grew < 64 * MiB, f"{inflate}: RSS grew {grew / MiB:.0f} MiB"


def test_wrong_missing_and_extra_tensors_are_refused_by_name(base, tmp_path):
    path, tensors, meta = base
    cases = {
        "shape": ({**tensors, "model.head.weight": tensors["model.head.weight"].T.contiguous()},
                  r"'head\.weight' is \(8, 16\) float32, expected \(16, 8\) float32"),
        "dtype": ({**tensors, "model.embed.bias": tensors["model.embed.bias"].double()},
                  r"'embed\.bias' is \(8,\) float64, expected \(8,\) float32"),
        "missing": ({k: v for k, v in tensors.items() if k != "model.norm.bias"}, r"implies 18 model tensors, the file holds 17"),
        "extra": ({**tensors, "model.extra.weight": torch.zeros(3)}, r"implies 18 model tensors, the file holds 19"),
        "renamed": ({**{k: v for k, v in tensors.items() if k != "model.norm.bias"},
                     "model.norm.bias_": tensors["model.norm.bias"]}, r"missing 1 tensor\(s\) \['norm\.bias'\]"),
        "stray": ({**tensors, "evil": torch.zeros(2)}, r"unexpected tensor 'evil'"),
        "no climatology": ({k: v for k, v in tensors.items() if k != "climatology"},
                           r"lacks the 'climatology' tensor its header implies \(shape \(24, 1, 8, 16\)\)"),
        "climatology shape": ({**tensors, "climatology": tensors["climatology"][:12]},
                              r"'climatology' tensor is \(12, 1, 8, 16\)"),
        "no static": ({k: v for k, v in tensors.items() if k != "static"}, r"lacks the 'static' tensor"),
    }
    for name, (kept, match) in cases.items():
        save_model_file(tmp_path / f"{name}.gvt", kept, meta)
        _refused(tmp_path / f"{name}.gvt", match)


def test_header_values_that_do_not_fit_the_tensors_or_grid_are_refused(base, tmp_path):
    path, tensors, meta = base
    edits = {
        "heads dropped": (lambda m: m["model_config"].pop("heads"), r"lacks \['heads'\]"),
        "valid mask": (lambda m: m["normaliser"].update(valid_shape=[1, 8, 17]), r"valid mask has shape \[1, 8, 17\]"),
        "huge mask": (lambda m: m["normaliser"].update(valid_shape=[10**6, 10**6, 10**6]), r"valid mask has shape"),
        "std": (lambda m: m["normaliser"].update(std=[-1.0]), r"'std' must be 1 finite numbers > 0"),
        "mean": (lambda m: m["normaliser"].update(mean=[1.0, 2.0]), r"'mean' must be 1 finite numbers"),
        "clim_by": (lambda m: m["normaliser"].update(clim_by="month"), r"'climatology' tensor is \(24, 1, 8, 16\)"),
        "dtype": (lambda m: m["spec"]["grid"].update(y_dtype="U100000000"), r"dtype 'U100000000'"),
        "history": (lambda m: m["train_config"].update(history=3), r"model_config\.history=2 does not match"),
        "patch": (lambda m: m["model_config"].update(patch=16), r"implies|patch"),
        "forcings": (lambda m: m["forcing_names"].reverse(), r"forcing_names .* are not the calendar channels"),
        "time": (lambda m: m["spec"]["time"].update(kind=3), r"time axis is not one gridvit writes"),
        "coordinate": (lambda m: m["spec"]["grid"]["y"].reverse(), r"coordinate 'lat' differs from the grid"),
        "type": (lambda m: m.update(spec=[]), r"'spec' is a list, expected a dict"),
        "deep type": (lambda m: m["spec"].update(coords="../../evil"), r"not mappings"),
    }
    for name, (edit, match) in edits.items():
        m = json.loads(json.dumps(meta))
        edit(m)
        save_model_file(tmp_path / "edited.gvt", tensors, m)
        _refused(tmp_path / "edited.gvt", match)


def test_damaged_bytes_and_oversized_files_are_refused(base, tmp_path, monkeypatch):
    path, tensors, meta = base
    raw = bytearray(path.read_bytes())
    raw[-5] ^= 0x10  # one bit of one weight
    (tmp_path / "flipped.gvt").write_bytes(bytes(raw))
    _refused(tmp_path / "flipped.gvt", r"do not match the SHA-256 digest")
    (tmp_path / "short.gvt").write_bytes(path.read_bytes()[:-100])
    _refused(tmp_path / "short.gvt", r"not a gridvit model file")
    size = path.stat().st_size
    with pytest.raises(CheckpointError, match=r"over the 0\.0 MiB limit on model files; pass max_bytes="):
        gridvit.load(path, max_bytes=size - 1)
    assert gridvit.load(path, max_bytes=size) is not None
    monkeypatch.setenv("GRIDVIT_MAX_MODEL_BYTES", str(size - 1))
    with pytest.raises(CheckpointError, match="GRIDVIT_MAX_MODEL_BYTES"):
        gridvit.load(path)


# ------------------------------------------------------------------------------------------ checkpoints

TINY = dict(dim=16, depth=1, heads=2, patch=4, batch_size=4, progress=False, seed=0)


def test_a_damaged_training_checkpoint_is_refused_by_name_and_changes_nothing(tmp_path, one_thread):
    from gridvit.examples import toy_climate

    data = toy_climate(n_time=16, shape=(8, 16), seed=3)
    gridvit.train(data, epochs=1, checkpoint_dir=tmp_path, **TINY)
    good = load_checkpoint(tmp_path / "last.pt")
    w = good["model"]["head.weight"]
    opt = good["optimizer"]
    edits = {
        "model shape": ({"model": {**good["model"], "head.weight": w[:, :-1]}}, r"model weights does not match"),
        "model extra": ({"model": {**good["model"], "evil": w}}, r"unexpected tensor\(s\) \['evil'\]"),
        "model missing": ({"model": {k: v for k, v in good["model"].items() if k != "head.bias"}}, r"missing"),
        "best": ({"best_state": {"head.weight": w}}, r"best weights does not match"),
        "optimizer": ({"optimizer": {**opt, "state": {0: {"exp_avg": torch.zeros(3), "exp_avg_sq": torch.zeros(3),
                                                          "step": torch.tensor(1.0)}}}}, r"'exp_avg' of parameter 0"),
        "groups": ({"optimizer": {**opt, "param_groups": []}}, r"has 0 parameter groups"),
        "counter": ({"epoch": -1}, r"counters, log or random state"),
        "rng": ({"torch_rng": torch.zeros(3, dtype=torch.uint8)}, r"counters, log or random state"),
        "meta": ({"meta": "{"}, r"damaged header"),
        "key": ({"log": None, "optimizer": None}, r"optimizer state"),
    }
    for name, (change, match) in edits.items():
        save_checkpoint(tmp_path / "last.pt", {**good, **change})
        before = (tmp_path / "last.pt").read_bytes()
        with pytest.raises(CheckpointError, match=match):
            gridvit.train(data, epochs=2, checkpoint_dir=tmp_path, resume=True, **TINY)
        assert (tmp_path / "last.pt").read_bytes() == before, name
    save_checkpoint(tmp_path / "last.pt", {k: v for k, v in good.items() if k != "torch_rng"})
    with pytest.raises(CheckpointError, match=r"lacks \['torch_rng'\]"):
        gridvit.train(data, epochs=2, checkpoint_dir=tmp_path, resume=True, **TINY)


# ------------------------------------------------------------------------------------------ schemes


def _schemes() -> list[Scheme]:
    periodic = dict(dt=1e-3, dx=0.1, dy=0.1)
    return [
        solvers.HeatFTCS(**periodic, diffusivity=0.5, bc={"y": "dirichlet", "x": Boundary("neumann", 0.5)}, bc_value=2.0),
        solvers.HeatSpectral(**periodic, diffusivity=0.3),
        solvers.HeatCrankNicolson(**periodic, bc=("neumann", "dirichlet"), bc_value=-1.0),
        solvers.AdvectionUpwind(**periodic, vx=1.0, vy=-0.5),
        solvers.AdvectionLaxWendroff(**periodic, vx=-0.7, bc="dirichlet", bc_value=0.25),
        solvers.BurgersUpwind(**periodic, viscosity=0.02),
        solvers.BurgersCentral(**periodic, viscosity=0.01, bc=Boundary("dirichlet", 0.0)),
        solvers.BurgersUpwind3(**periodic, viscosity=0.01),
        solvers.GrayScottExplicit(dt=0.5, dx=1.0, dy=1.0, du=0.2, dv=0.1),
        solvers.GrayScottIMEX(dt=0.5, dx=1.0, dy=1.0, feed=0.03, kill=0.062, bc="neumann"),
        solvers.NavierStokesArakawa(**periodic, viscosity=1e-3, drag=0.1, forcing=0.5, forcing_wavenumber=3),
        solvers.NavierStokesCentral(**periodic),
    ]


def test_every_shipped_scheme_round_trips_through_json_and_steps_the_same():
    shipped = {n for n in solvers.__all__ if isinstance(getattr(solvers, n), type)
               and issubclass(getattr(solvers, n), Scheme) and getattr(solvers, n) is not Scheme}
    assert set(ALLOWED) == shipped
    schemes = _schemes()
    assert {type(s).__name__ for s in schemes} == shipped
    gen = torch.Generator().manual_seed(0)
    for s in schemes:
        d = json.loads(json.dumps(scheme_to_dict(s)))
        again = scheme_from_dict(d)
        assert type(again) is type(s)
        if hasattr(s, "bcs"):
            assert again.bcs == s.bcs
        u = torch.rand(2, s.channels or 1, 12, 10, generator=gen, dtype=torch.float64) * 0.1
        torch.testing.assert_close(again(u), s(u), rtol=0, atol=0, msg=type(s).__name__)


def test_schemes_outside_the_allow_list_or_with_bad_params_are_refused():
    good = scheme_to_dict(_schemes()[0])
    bad = {
        "class": ({**good, "class": "os.system"}, r"'os\.system' is not one of gridvit's shipped schemes"),
        "base": ({**good, "class": "Scheme"}, r"not one of gridvit's shipped schemes"),
        "keys": ({**good, "module": "os"}, r"exactly the keys 'class' and 'params'"),
        "unknown": ({**good, "params": {**good["params"], "cmd": "rm"}}, r"unknown parameter\(s\) \['cmd'\]"),
        "missing": ({**good, "params": {k: v for k, v in good["params"].items() if k != "dt"}},
                    r"missing parameter\(s\) \['dt'\]"),
        "type": ({**good, "params": {**good["params"], "dt": "0.1"}}, r"parameter 'dt' must be float, got str"),
        "bool": ({**good, "params": {**good["params"], "dx": True}}, r"parameter 'dx' must be float, got bool"),
        "nan": ({**good, "params": {**good["params"], "dt": float("nan")}}, r"'dt' must be finite"),
        "unstable": ({**good, "params": {**good["params"], "dt": 10.0}}, r"CFL number .* exceeds"),
        "bc": ({**good, "params": {**good["params"], "bc": {"y": "periodic", "x": {"kind": "evil", "value": 0}}}},
               r"boundary condition must be one of"),
        "bc type": ({**good, "params": {**good["params"], "bc": 3}}, r"bc must be a kind"),
    }
    for name, (d, match) in bad.items():
        with pytest.raises(ValueError, match=match):
            scheme_from_dict(d)

    @dataclasses.dataclass(frozen=True, eq=False, kw_only=True)
    class HeatFTCS(solvers.HeatFTCS):  # a look-alike of a shipped class
        pass

    with pytest.raises(TypeError, match="only gridvit's shipped schemes"):
        scheme_to_dict(HeatFTCS(dt=1e-3, dx=0.1, dy=0.1))


def test_a_model_file_naming_a_scheme_outside_the_allow_list_is_refused(base, tmp_path):
    path, tensors, meta = base
    good = scheme_to_dict(_schemes()[1])
    for solver, match in (({"scheme": {"class": "subprocess.Popen", "params": {}}, "substeps": 1},
                           r"'solver' is refused: ValueError: scheme class 'subprocess\.Popen' is not one"),
                          ({"scheme": {"class": "HeatFTCS", "params": {"dt": 1.0}}, "substeps": 1}, r"missing parameter"),
                          ({"scheme": good, "substeps": 10**9}, r"substeps must be an int"),
                          ({"scheme": good, "substeps": "2"}, r"substeps must be an int"),
                          (good, r"exactly the keys 'scheme' and 'substeps'"),
                          ({"scheme": good, "substeps": 1}, r"model_config\.history=2 does not match")):  # a pure net
        save_model_file(tmp_path / "solver.gvt", tensors, {**meta, "solver": solver})
        _refused(tmp_path / "solver.gvt", match)


# ------------------------------------------------------------------------------------------ fuzz


def test_quick_fuzz_of_the_loader(base, forecast_input):
    """200 seeded mutations: each refused with CheckpointError or loaded holding exactly the file's weights;
    no other exception, no random model, no load growing RSS past max(4 × file, 64 MiB)."""
    path = base[0]
    reference = gridvit.load(path).rollout(forecast_input, steps=1)["t2m"].values
    outcomes = {}
    for i, (kind, what, data) in enumerate(fuzz.mutations(200, 7, path)):
        f = path.parent / "mutant.gvt"
        f.write_bytes(data)
        res = fuzz.classify(f, reference, forecast_input)
        assert res["outcome"] not in fuzz.FAILURES, (kind, what, res)
        outcomes.setdefault(kind, []).append(res["outcome"])
    for kind in fuzz.BYTE_KINDS + ("tensor:drop_weights", "tensor:retype", "tensor:extra", "header:inflate"):
        assert set(outcomes[kind]) == {"refused"}, kind
    assert sum(o == "refused" for v in outcomes.values() for o in v) > 150
