"""Safe, atomic files: model files (safetensors + JSON) and training checkpoints (weights-only torch).

Nothing here ever runs code from a file: model files are safetensors (tensors and a JSON header only);
training checkpoints are read with ``torch.load(weights_only=True)``, which refuses any pickled object
other than tensors and plain containers. Every write goes to a temporary file in the target folder,
is flushed to disk, then renamed over the target, so a crash never leaves a half-written file under the
target's name (a process killed mid-write leaves a hidden ``.<name>.*.tmp`` file, removed by the next write
of that target). Nothing here takes a path from a file's contents: files are only written where the caller
says.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch

MODEL_FORMAT = "gridvit-surrogate"
FORMAT_VERSION = "2"  # 2: a SHA-256 digest of header and tensors; 1 (still read): none
DEFAULT_MAX_MODEL_BYTES = 2 * 2**30
MAX_BYTES_ENV = "GRIDVIT_MAX_MODEL_BYTES"
CHECKPOINT_FACTOR = 5  # a training checkpoint may be this many times the model-file limit
_DTYPES = {"F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
           "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8,
           "BOOL": torch.bool}


class CheckpointError(ValueError):
    """A file is not a gridvit model/checkpoint, is damaged, or holds something unsafe to load."""


def atomic_write(path: str | Path, write: Callable[[str], Any]) -> Path:
    """Call ``write(tmp_path)`` then fsync and rename onto ``path`` (same folder, so the rename is atomic).

    Raises:
        OSError: the write failed (full disk, no permission…), with the errno kept and a message naming
            ``path``; the temporary file is removed and any previous file at ``path`` is left intact.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as err:
        Path(tmp).unlink(missing_ok=True)
        raise _os_error(err, f"could not write {str(path)!r} ({err.strerror or err}); nothing was half-written "
                        "and the previous file, if any, is intact") from err
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    for stale in path.parent.glob(f".{path.name}.*.tmp"):  # left by a process killed mid-write
        stale.unlink(missing_ok=True)
    return path


def _os_error(err: OSError, message: str) -> OSError:
    """An OSError of the same errno (ENOSPC, EACCES…) as ``err`` with a clearer ``message``."""
    return OSError(err.errno, message) if err.errno is not None else OSError(message)


def check_writable(folder: str | Path) -> Path:
    """Create ``folder`` if needed and prove a file can be written there; a clear error otherwise."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        atomic_write(folder / ".gridvit-write-test", lambda p: Path(p).write_bytes(b"ok")).unlink()
    except OSError as err:
        reason = getattr(err.__cause__, "strerror", None) or err.strerror or err
        raise _os_error(err, f"checkpoint_dir {str(folder)!r} is not writable ({reason}); give a folder you "
                        "can write to") from err
    return folder


def max_model_bytes(max_bytes: int | None = None) -> int:
    """The largest model file gridvit loads: ``max_bytes``, else ``$GRIDVIT_MAX_MODEL_BYTES``, else 2 GiB."""
    if max_bytes is None:
        env = os.environ.get(MAX_BYTES_ENV)
        try:
            max_bytes = DEFAULT_MAX_MODEL_BYTES if env is None else int(env)
        except ValueError:
            raise ValueError(f"${MAX_BYTES_ENV} must be a whole number of bytes, got {env!r}") from None
    if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes < 1:
        raise ValueError(f"max_bytes must be a positive int (bytes), got {max_bytes!r}")
    return max_bytes


def save_model_file(path: str | Path, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> Path:
    """Write tensors + a JSON ``meta`` header as one safetensors file, atomically, with a SHA-256 digest of
    both (so a damaged file is refused on load instead of loading changed numbers)."""
    from safetensors.torch import save_file

    tensors = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    text = json.dumps(meta)
    header = {"format": MODEL_FORMAT, "version": FORMAT_VERSION, "meta": text, "sha256": digest(text, tensors)}
    return atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata=header))


def digest(meta: str, tensors: Mapping[str, torch.Tensor]) -> str:
    """SHA-256 of the meta text and every tensor's name, dtype, shape and bytes (in name order)."""
    h = hashlib.sha256(meta.encode())
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous()
        h.update(f"\0{name}\0{t.dtype}\0{tuple(t.shape)}\0".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy())  # the raw bytes, as stored
    return h.hexdigest()


@dataclass(frozen=True)
class ModelFile:
    """A model file opened for checking: its header, and each tensor's shape and dtype, read without the
    tensor data (:meth:`read` reads them).

    Attributes:
        path: the file. size: its size in bytes. text: the JSON header as written; meta: parsed (a dict).
        shapes: ``{name: (shape, dtype)}`` of every tensor in the file.
        sha256: the digest written with the file (None in format-1 files, which had none).
    """

    path: Path
    size: int
    text: str
    meta: dict[str, Any]
    shapes: dict[str, tuple[tuple[int, ...], torch.dtype]]
    sha256: str | None

    def read(self) -> dict[str, torch.Tensor]:
        """Every tensor of the file, checked against the digest when the file has one."""
        tensors = _read_safetensors(self.path, lambda f: {k: f.get_tensor(k) for k in f.keys()})
        if self.sha256 is not None and digest(self.text, tensors) != self.sha256:
            raise CheckpointError(f"{str(self.path)!r} is damaged: its header and tensors do not match the SHA-256 "
                                  "digest written with them")
        return tensors


def open_model_file(path: str | Path, *, max_bytes: int | None = None) -> ModelFile:
    """Open a file written by :func:`save_model_file` and read its header and tensor shapes (no tensor data).

    Args:
        max_bytes: refuse files larger than this (default :func:`max_model_bytes`: 2 GiB, or
            ``$GRIDVIT_MAX_MODEL_BYTES``).

    Raises:
        FileNotFoundError: no file at ``path``.
        CheckpointError: too large, not a gridvit model file (a pickle is refused unread), or a damaged header.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no gridvit model file at {str(path)!r}")
    cap, size = max_model_bytes(max_bytes), path.stat().st_size
    if size > cap:
        raise CheckpointError(f"{str(path)!r} is {size / 2**20:.1f} MiB, over the {cap / 2**20:.1f} MiB limit on model "
                              f"files; pass max_bytes= to gridvit.load or set ${MAX_BYTES_ENV} to load larger ones")

    def header(f) -> tuple[dict[str, str], dict[str, tuple[tuple[int, ...], torch.dtype]]]:
        shapes = {}
        for k in f.keys():
            piece = f.get_slice(k)
            shapes[k] = (tuple(int(n) for n in piece.get_shape()), _DTYPES.get(piece.get_dtype()))
        return f.metadata() or {}, shapes

    head, shapes = _read_safetensors(path, header)
    if head.get("format") != MODEL_FORMAT:
        raise CheckpointError(f"{str(path)!r} is a safetensors file but not a gridvit model (format "
                              f"{str(head.get('format'))[:80]!r})")
    version = head.get("version")
    if version not in ("1", FORMAT_VERSION):
        raise CheckpointError(f"{str(path)!r} is a gridvit model file of format version {str(version)[:20]!r}; this "
                              f"gridvit reads versions 1 and {FORMAT_VERSION}")
    untyped = [k for k, (_, dtype) in shapes.items() if dtype is None]
    if untyped:
        raise CheckpointError(f"{str(path)!r}: tensor {untyped[0][:80]!r} has a dtype gridvit does not use")
    sha = head.get("sha256")
    if version == FORMAT_VERSION and not (isinstance(sha, str) and len(sha) == 64):
        raise CheckpointError(f"{str(path)!r} is damaged: a format-{FORMAT_VERSION} file without its SHA-256 digest")
    try:
        text = head["meta"]
        meta = json.loads(text)
    except Exception as err:  # a missing key, bad JSON, nesting deep enough to exhaust recursion
        raise CheckpointError(f"{str(path)!r} is a gridvit model file with a damaged header "
                              f"({type(err).__name__}: {str(err)[:200]})") from None
    if not isinstance(meta, dict):
        raise CheckpointError(f"{str(path)!r} is a gridvit model file with a damaged header (meta is a "
                              f"{type(meta).__name__}, not a mapping)")
    return ModelFile(path, size, text, meta, shapes, sha if version == FORMAT_VERSION else None)


def load_model_file(path: str | Path, *, max_bytes: int | None = None) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read a file written by :func:`save_model_file`: (tensors, meta). Executes nothing from the file.

    Checks the size cap, the format and the digest (see :func:`open_model_file`); not the tensors against
    the header (that is :func:`gridvit.load`'s job).
    """
    mf = open_model_file(path, max_bytes=max_bytes)
    return mf.read(), mf.meta


def _read_safetensors(path: Path, read: Callable[[Any], Any]) -> Any:
    """``read(handle)`` on the opened safetensors file; anything unreadable is a CheckpointError."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            return read(f)
    except (SafetensorError, OSError, ValueError, RuntimeError, KeyError, TypeError) as err:
        with open(path, "rb") as f:
            head = f.read(2)
        pickled = head[:1] == b"\x80" or head == b"PK"  # a bare pickle, or torch.save's zip of one
        what = " it holds a pickle (torch.save), which gridvit never unpickles;" if pickled else ""
        raise CheckpointError(f"{str(path)!r} is not a gridvit model file (safetensors):{what} "
                              f"{str(err)[:300]}") from None


def state_problems(expected: Mapping[str, torch.Tensor], found: Mapping[str, tuple[tuple[int, ...], torch.dtype]]
                   ) -> list[str]:
    """What keeps ``found`` (name -> (shape, dtype)) from being exactly the state ``expected``: missing,
    unexpected, wrong-shape and wrong-dtype entries, in words (empty when it matches)."""
    problems = []
    missing = [k for k in expected if k not in found]
    extra = [k for k in found if k not in expected]
    if missing:
        problems.append(f"missing {len(missing)} tensor(s) {_names(missing)}")
    if extra:
        problems.append(f"{len(extra)} unexpected tensor(s) {_names(extra)}")
    for k, t in expected.items():
        if k in found:
            shape, dtype = found[k]
            if tuple(shape) != tuple(t.shape) or dtype != t.dtype:
                problems.append(f"{k!r} is {_describe(shape, dtype)}, expected {_describe(t.shape, t.dtype)}")
    return problems


def numel(shapes: Iterable[tuple[int, ...]]) -> int:
    """Total elements of tensors of these shapes (Python ints: no overflow)."""
    return sum(math.prod(s) for s in shapes)


def _names(names: list[str], limit: int = 4) -> str:
    shown = ", ".join(repr(n[:80]) for n in names[:limit])
    return f"[{shown}{', …' if len(names) > limit else ''}]"


def _describe(shape: Iterable[int], dtype: torch.dtype) -> str:
    return f"{tuple(shape)} {str(dtype).replace('torch.', '')}"


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> Path:
    """Write a training checkpoint (tensors, numbers, strings, containers) atomically."""
    return atomic_write(path, lambda tmp: torch.save(state, tmp))


def load_checkpoint(path: str | Path, *, max_bytes: int | None = None) -> dict[str, Any]:
    """Read a training checkpoint with ``weights_only=True``; anything else (a pickle) is refused unrun.

    Args:
        max_bytes: refuse larger files (default: :data:`CHECKPOINT_FACTOR` × :func:`max_model_bytes`, room
            for the weights, the best weights and AdamW's two moments).

    Raises:
        FileNotFoundError: no file at ``path``.
        CheckpointError: too large, damaged, not a mapping, or holding objects other than tensors and plain data.
    """
    path = Path(path)
    cap = max_bytes if max_bytes is not None else CHECKPOINT_FACTOR * max_model_bytes()
    size = path.stat().st_size  # FileNotFoundError when absent
    if size > cap:
        raise CheckpointError(f"refusing to load {str(path)!r}: {size / 2**20:.1f} MiB is over the {cap / 2**20:.1f} "
                              f"MiB limit on checkpoints (set ${MAX_BYTES_ENV}, the model-file limit, higher)")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as err:  # unpickling refused, a damaged zip, a truncated stream…
        raise CheckpointError(
            f"refusing to load {str(path)!r}: it is damaged or holds objects other than tensors and plain "
            f"data, and gridvit never unpickles code ({type(err).__name__}: {_first_line(err)})"
        ) from None
    if not isinstance(state, dict):
        raise CheckpointError(f"refusing to load {str(path)!r}: a checkpoint is a mapping, this holds a "
                              f"{type(state).__name__}")
    return state


def require_state(expected: Mapping[str, torch.Tensor], found: Any, what: str) -> dict[str, torch.Tensor]:
    """``found`` as a state dict with exactly ``expected``'s keys, shapes and dtypes, else CheckpointError
    naming ``what`` and every problem."""
    if not isinstance(found, Mapping) or not all(isinstance(k, str) and isinstance(v, torch.Tensor)
                                                 for k, v in found.items()):
        raise CheckpointError(f"{what} is not a mapping of names to tensors")
    problems = state_problems(expected, {k: (tuple(v.shape), v.dtype) for k, v in found.items()})
    if problems:
        raise CheckpointError(f"{what} does not match the model: {'; '.join(problems)}")
    return dict(found)


def _first_line(err: BaseException) -> str:
    lines = str(err).splitlines()
    return lines[0][:200] if lines else ""


def require_optimizer_state(opt: torch.optim.Optimizer, found: Any, what: str) -> dict[str, Any]:
    """``found`` as a state dict ``opt`` can take: the same parameter groups (ids and option names) and,
    per parameter, tensors that are scalars or of that parameter's shape. CheckpointError naming ``what``
    otherwise."""
    now = opt.state_dict()
    if not isinstance(found, Mapping) or set(found) != {"state", "param_groups"}:
        raise CheckpointError(f"{what} is not an optimizer state (a mapping of 'state' and 'param_groups')")
    groups, state = found["param_groups"], found["state"]
    if not isinstance(groups, list) or len(groups) != len(now["param_groups"]):
        raise CheckpointError(f"{what} has {len(groups) if isinstance(groups, list) else 'no'} parameter groups, the "
                              f"optimizer {len(now['param_groups'])}")
    for i, (g, want) in enumerate(zip(groups, now["param_groups"])):
        if not isinstance(g, Mapping) or set(g) != set(want) or g["params"] != want["params"]:
            raise CheckpointError(f"{what}: parameter group {i} does not match the optimizer's (its options or "
                                  "parameter ids differ)")
    shapes = {pid: tuple(p.shape) for pid, p in zip([i for g in now["param_groups"] for i in g["params"]],
                                                    [p for g in opt.param_groups for p in g["params"]])}
    if not isinstance(state, Mapping):
        raise CheckpointError(f"{what}: its per-parameter state is not a mapping")
    for pid, entry in state.items():
        if pid not in shapes or not isinstance(entry, Mapping):
            raise CheckpointError(f"{what}: state for unknown parameter {str(pid)[:20]!r}")
        for key, v in entry.items():
            if not isinstance(v, torch.Tensor) or (v.ndim and tuple(v.shape) != shapes[pid]):
                got = tuple(v.shape) if isinstance(v, torch.Tensor) else type(v).__name__
                raise CheckpointError(f"{what}: {str(key)[:40]!r} of parameter {pid} is {got}, expected a scalar "
                                      f"or {shapes[pid]}")
    return dict(found)
