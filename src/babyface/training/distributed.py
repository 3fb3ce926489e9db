"""Distributed data-parallel training under ``torchrun`` (gloo on CPU, NCCL on CUDA).

``--batch-size`` is per process: the global batch is ``batch_size × world_size``. Every process
holds the whole (small) decoded dataset, walks the same shuffled order and draws the same
augmentation parameters for the whole global batch, then trains on its own slice; gradients are
averaged by DistributedDataParallel, so N processes match one process with the global batch.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from babyface.forward import resolve_device


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    owns_group: bool = False  # this call started the process group, so its shutdown ends it

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def local_slice(self, n: int) -> slice:
        """This process's contiguous share of a global batch of ``n`` (sizes differ by at most one)."""
        base, extra = divmod(n, self.world_size)
        start = self.rank * base + min(self.rank, extra)
        return slice(start, start + base + (1 if self.rank < extra else 0))


def launched_by_torchrun() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def init_distributed(device_name: str) -> tuple[DistInfo, torch.device]:
    """Join the process group when started by torchrun; otherwise a single process. A group started earlier (e.g.
    by ``babyface cv``, around several trainings) is joined and left running."""
    if not launched_by_torchrun():
        return DistInfo(), resolve_device(device_name)
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = resolve_device(device_name)
    if device.type == "cuda":
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    owner = not dist.is_initialized()
    if owner:
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return DistInfo(dist.get_rank(), dist.get_world_size(), local_rank, owner), device


def sum_across(values: list[float], info: DistInfo, device: torch.device) -> list[float]:
    if not info.enabled:
        return values
    tensor = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor.tolist()


def rank0_flag(flag: bool, info: DistInfo, device: torch.device) -> bool:
    """Rank 0's ``flag`` in every process: a choice each process measured (the memory layout) must be one choice."""
    if not info.enabled:
        return flag
    value = torch.tensor([int(flag)], device=device)
    dist.broadcast(value, src=0)
    return bool(value.item())


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()


def shutdown(info: DistInfo) -> None:
    """End the process group if ``info``'s init_distributed started it."""
    if info.enabled and info.owns_group and dist.is_initialized():
        dist.destroy_process_group()
