"""torch.distributed for :func:`gridvit.train`: the process group, collectives and batch sharding.

Launched by ``torchrun`` (which sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR/PORT``), every
process runs the same ``gridvit.train(...)`` call. :func:`process_group` joins them (NCCL on CUDA with
device ``cuda:LOCAL_RANK``, gloo on CPU); :class:`Comm` is the handful of collectives the trainer needs and
is a no-op in a single process, so one code path serves both. :func:`shard_batches` splits each global
batch of the single-process run's shuffle across the ranks, so a run on W ranks takes the same optimiser
steps as one process with the same ``batch_size``.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from typing import Iterator, NamedTuple, Sequence

import torch
import torch.distributed as dist

TORCHRUN_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK")


class Launch(NamedTuple):
    """Where this process sits: global rank, world size, rank on its node."""

    rank: int
    world: int
    local_rank: int


def detect(distributed: bool | None = None) -> Launch | None:
    """The launch this process belongs to, or None for a plain single-process run.

    Args:
        distributed: None: distributed when a process group is already initialised or torchrun's
            ``RANK``/``WORLD_SIZE``/``LOCAL_RANK`` are set; True: require one of those; False: never.

    Raises:
        ValueError: ``distributed=True`` outside torchrun without an initialised process group, or
            malformed torchrun variables.
    """
    if distributed is not None and not isinstance(distributed, bool):
        raise TypeError(f"distributed must be True, False or None (auto), got {distributed!r}")
    if distributed is False:
        return None
    if dist.is_available() and dist.is_initialized():
        local = int(os.environ.get("LOCAL_RANK", dist.get_rank()))
        return Launch(dist.get_rank(), dist.get_world_size(), local)
    if all(v in os.environ for v in TORCHRUN_VARS):
        try:
            launch = Launch(*(int(os.environ[v]) for v in TORCHRUN_VARS))
        except ValueError:
            raise ValueError("torchrun variables RANK, WORLD_SIZE, LOCAL_RANK must be integers, got "
                             f"{[os.environ[v] for v in TORCHRUN_VARS]}") from None
        if not 0 <= launch.rank < launch.world:
            raise ValueError(f"RANK={launch.rank} is outside WORLD_SIZE={launch.world}")
        return launch
    if distributed:
        raise ValueError("distributed=True needs a torchrun launch (RANK, WORLD_SIZE and LOCAL_RANK set: "
                         "torchrun --nproc_per_node=N -m gridvit train ...) or an initialised "
                         "torch.distributed process group")
    return None


def local_batch_size(batch_size: int, world: int) -> int:
    """Per-rank batch: the global ``batch_size`` split evenly over ``world`` ranks.

    Raises:
        ValueError: ``batch_size`` is not a multiple of ``world``.
    """
    if batch_size % world:
        lower, upper = world * max(batch_size // world, 1), world * (batch_size // world + 1)
        raise ValueError(f"batch_size={batch_size} is the global batch and must be divisible by the world size "
                         f"{world} (each rank takes batch_size / world windows); use e.g. {lower} or {upper}")
    return batch_size // world


def resolve_device(name: str, launch: Launch | None = None) -> torch.device:
    """``"auto"``/``"cpu"``/``"cuda[:N]"`` -> a device; under a launch, ``"auto"``/``"cuda"`` mean
    ``cuda:LOCAL_RANK`` (one GPU per process)."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} requested but CUDA is not available; use device='cpu' or 'auto'")
    if name == "cuda" and launch is not None:
        return torch.device("cuda", launch.local_rank)
    return torch.device(name)


@dataclass
class Comm:
    """The collectives of one training run; with ``world == 1`` and no process group, all are no-ops."""

    device: torch.device
    rank: int = 0
    world: int = 1
    active: bool = False  # a process group is in use (also for a world of one, e.g. 1-GPU DDP)

    @property
    def is_main(self) -> bool:
        """Rank 0: the process that writes checkpoints, model files and progress."""
        return self.rank == 0

    def sum_(self, t: torch.Tensor) -> torch.Tensor:
        """All-reduce ``t`` in place (sum over ranks) and return it."""
        if self.active:
            dist.all_reduce(t, op=dist.ReduceOp.SUM)
        return t

    def from_main(self, values: Sequence[float]) -> list[float]:
        """Rank 0's ``values`` on every rank (for decisions that must agree: time, early stopping)."""
        if not self.active:
            return list(values)
        t = torch.tensor(list(values), dtype=torch.float64, device=self.device)
        dist.broadcast(t, src=0)
        return t.tolist()

    def barrier(self) -> None:
        if self.active:
            dist.barrier(device_ids=[self.device.index] if self.device.type == "cuda" else None)

    def wrap(self, model: torch.nn.Module) -> torch.nn.Module:
        """``model`` in DistributedDataParallel when a process group is in use (else ``model`` itself)."""
        if not self.active:
            return model
        from torch.nn.parallel import DistributedDataParallel

        ids = [self.device.index] if self.device.type == "cuda" else None
        # The only buffers are constant (ALiBi slopes): synced once at construction, not every forward.
        return DistributedDataParallel(model, device_ids=ids, forward_sync_buffers=False)


@contextlib.contextmanager
def process_group(launch: Launch | None, device_name: str) -> Iterator[Comm]:
    """A :class:`Comm` for ``launch``: joins (and afterwards destroys) a process group unless one exists.

    NCCL when the device is CUDA (``cuda:LOCAL_RANK`` for ``"auto"``/``"cuda"``), gloo on CPU. A group
    that was initialised before is used as it is and left alone.
    """
    device = resolve_device(device_name, launch)
    if launch is None:
        yield Comm(device)
        return
    created = not dist.is_initialized()
    if created:
        if device.type == "cuda":
            torch.cuda.set_device(device)
        backend = "nccl" if device.type == "cuda" else "gloo"
        kwargs = {"device_id": device} if device.type == "cuda" else {}
        dist.init_process_group(backend, rank=launch.rank, world_size=launch.world, **kwargs)
    try:
        yield Comm(device, rank=launch.rank, world=launch.world, active=True)
    finally:
        if created:
            dist.destroy_process_group()


class Shard(NamedTuple):
    """This rank's part of one global batch: window indices, whether they are real (False: a placeholder
    for a rank left without windows in a short last batch, to be given zero weight) and the global size."""

    indices: list[int]
    real: bool
    global_size: int


def shard_batches(order: Sequence[int], batch_size: int, rank: int = 0, world: int = 1) -> list[Shard]:
    """Cut ``order`` (a shuffled window order) into global batches of ``batch_size`` and give rank
    ``rank`` its contiguous share of each (``batch_size / world``; a short last batch is split as evenly
    as possible). Every rank gets the same number of shards, so collectives stay in step."""
    order = [int(i) for i in order]
    shards = []
    for start in range(0, len(order), batch_size):
        batch = order[start:start + batch_size]
        base, extra = divmod(len(batch), world)
        lo = rank * base + min(rank, extra)
        mine = batch[lo:lo + base + (rank < extra)]
        shards.append(Shard(mine or batch[:1], bool(mine), len(batch)))
    return shards
