"""Distributed data parallel plumbing: the torchrun environment, the process group and the data shards.

Under ``torchrun`` (``WORLD_SIZE`` > 1 in the environment) the process group is initialised from the
environment with ``nccl`` on CUDA and ``gloo`` on CPU. Each rank trains on its own shard of every epoch's
shuffled order; only rank 0 writes files. A single process (no ``WORLD_SIZE``) needs none of this.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import Dataset, Sampler


@dataclass(frozen=True)
class DistributedContext:
    """Where this process stands: its rank, the world size and the device it trains on."""

    rank: int
    world_size: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def is_distributed(self) -> bool:
        return self.world_size > 1


def _resolve_device(preference: str, local_rank: int) -> torch.device:
    if preference == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device: cuda was requested but CUDA is not available; use device: cpu or auto")
    if preference in ("cuda", "auto") and torch.cuda.is_available():
        return torch.device("cuda", local_rank % torch.cuda.device_count())
    return torch.device("cpu")


def init_distributed(device: str = "auto") -> DistributedContext:
    """Join the torchrun process group when there is one; otherwise describe a single process."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    resolved = _resolve_device(device, local_rank)
    if world_size > 1 and not dist.is_initialized():
        if resolved.type == "cuda":
            torch.cuda.set_device(resolved)
        dist.init_process_group(backend="nccl" if resolved.type == "cuda" else "gloo", init_method="env://")
    if dist.is_initialized():
        world_size, rank = dist.get_world_size(), dist.get_rank()
    return DistributedContext(rank=rank, world_size=world_size, device=resolved)


def shutdown_distributed() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def all_reduce_mean(values: torch.Tensor, context: DistributedContext) -> torch.Tensor:
    """The mean of ``values`` over ranks (``values`` itself in a single process)."""
    if not context.is_distributed:
        return values
    reduced = values.clone()
    dist.all_reduce(reduced, op=dist.ReduceOp.SUM)
    return reduced / context.world_size


def all_reduce_max(values: torch.Tensor, context: DistributedContext) -> torch.Tensor:
    if not context.is_distributed:
        return values
    reduced = values.clone()
    dist.all_reduce(reduced, op=dist.ReduceOp.MAX)
    return reduced


def gather_objects(obj: Any, context: DistributedContext) -> list[Any]:
    """Every rank's ``obj``, in rank order (``[obj]`` in a single process)."""
    if not context.is_distributed:
        return [obj]
    gathered: list[Any] = [None] * context.world_size
    dist.all_gather_object(gathered, obj)
    return gathered


def broadcast_object(obj: Any, context: DistributedContext) -> Any:
    """Rank 0's ``obj`` on every rank."""
    if not context.is_distributed:
        return obj
    holder = [obj]
    dist.broadcast_object_list(holder, src=0)
    return holder[0]


def barrier(context: DistributedContext) -> None:
    if context.is_distributed:
        dist.barrier()


def epoch_seed(seed: int, epoch: int) -> int:
    """A 63-bit seed for one epoch's shuffle, distinct for every (seed, epoch) pair."""
    return int(np.random.SeedSequence([seed, epoch]).generate_state(1, dtype=np.uint64)[0] >> np.uint64(1))


class ShardedBatchSampler(Sampler[list[tuple[int, int]]]):
    """This rank's batches of ``(epoch, index)`` keys, epoch after epoch, from any starting position.

    Each epoch's order is a permutation of the whole dataset drawn from ``(seed, epoch)`` alone; rank ``r``
    takes every ``world_size``-th index from position ``r`` and keeps whole batches only, so all ranks run
    the same number of iterations. Starting at ``(start_epoch, start_batch)`` skips the batches already
    trained on, which is how a resumed run continues at the exact position in the data order. The stream
    never ends; the training loop stops it. Keys carry the epoch so that samples can be drawn for it in
    any worker process (see :class:`EpochKeyedDataset`).
    """

    def __init__(
        self,
        dataset_size: int,
        *,
        batch_size: int,
        seed: int,
        rank: int = 0,
        world_size: int = 1,
        start_epoch: int = 0,
        start_batch: int = 0,
    ) -> None:
        self.batches_per_epoch = batches_per_epoch(dataset_size, batch_size=batch_size, world_size=world_size)
        if not 0 <= start_batch < self.batches_per_epoch:
            raise ValueError(f"start_batch must be in [0, {self.batches_per_epoch}), got {start_batch}")
        self.dataset_size = dataset_size
        self.batch_size = batch_size
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.start_epoch = start_epoch
        self.start_batch = start_batch

    def epoch_indices(self, epoch: int) -> list[int]:
        """This rank's dataset indices for ``epoch``, in training order (whole batches only)."""
        generator = torch.Generator().manual_seed(epoch_seed(self.seed, epoch))
        order = torch.randperm(self.dataset_size, generator=generator)
        return order[self.rank :: self.world_size][: self.batches_per_epoch * self.batch_size].tolist()

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        epoch, first = self.start_epoch, self.start_batch
        while True:
            indices = self.epoch_indices(epoch)
            for batch in range(first, self.batches_per_epoch):
                yield [(epoch, i) for i in indices[batch * self.batch_size : (batch + 1) * self.batch_size]]
            epoch, first = epoch + 1, 0


class EpochKeyedDataset(Dataset):
    """Serves ``(epoch, index)`` keys: sets the wrapped dataset's epoch, then returns its item ``index``.

    Datasets whose samples are a function of (seed, epoch, index) then give the same sample for a key in
    any process, including persistent DataLoader workers that keep their own copy of the dataset.
    """

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset

    def __getitem__(self, key: tuple[int, int]) -> Any:
        epoch, index = key
        if hasattr(self.dataset, "set_epoch"):
            self.dataset.set_epoch(epoch)
        return self.dataset[index]


def batches_per_epoch(dataset_size: int, *, batch_size: int, world_size: int) -> int:
    """Whole batches each rank gets from one pass over the data (the tail is dropped, as ``drop_last``)."""
    count = dataset_size // world_size // batch_size
    if count < 1:
        raise ValueError(
            f"the training set has {dataset_size} samples, fewer than batch_size × world_size = "
            f"{batch_size} × {world_size}; use a smaller batch or more data"
        )
    return count
