"""Data-parallel training is exact: 2 gloo processes with batch B each = 1 process with batch 2B."""

from __future__ import annotations

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from babyface.config import TrainConfig
from babyface.data.decoded import DecodedImages
from babyface.training.distributed import DistInfo
from babyface.training.fit import train_one_epoch
from babyface.training.objective import Objective
from babyface.training.prepare import PreparedData
from babyface.training.trainer import Trainer


def toy_model() -> nn.Module:
    """No BatchNorm: its per-process statistics are the one thing DDP does not make equal."""
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(16, 3))


def toy_data() -> DecodedImages:
    generator = torch.Generator().manual_seed(1)
    images = torch.randint(0, 256, (26, 3, 16, 16), dtype=torch.uint8, generator=generator)
    labels = torch.arange(26) % 3
    return DecodedImages(images, labels, [f"{i}.png" for i in range(26)])


def run_epochs(model: nn.Module, batch_size: int, info: DistInfo) -> nn.Module:
    config = TrainConfig(batch_size=batch_size, progress=False)
    trained = DistributedDataParallel(model) if info.enabled else model
    optimizer = torch.optim.SGD(trained.parameters(), lr=0.1)
    generator = torch.Generator().manual_seed(5)
    trainer = Trainer(config, PreparedData.bare(toy_data(), [0.5] * 3, [0.25] * 3), trained, Objective.plain(toy_data()),
                      optimizer, generator, torch.device("cpu"), dist=info)
    for _ in range(2):
        train_one_epoch(trainer)
    return model


def _worker(rank: int, store: str, result_path: str) -> None:
    torch.set_num_threads(1)
    # a file rendezvous: no TCP port that another process could take between choosing and binding it
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=2)
    try:
        model = run_epochs(toy_model(), batch_size=4, info=DistInfo(rank, 2, rank))
        if rank == 0:
            torch.save(model.state_dict(), result_path)
        dist.barrier()  # neither tears gloo down while the other still talks to it: that aborted one process in CI
    finally:
        dist.destroy_process_group()


def test_two_processes_match_one_process_with_the_global_batch(tmp_path):
    result = tmp_path / "ddp.pt"
    mp.spawn(_worker, args=(str(tmp_path / "rendezvous"), str(result)), nprocs=2, join=True)
    distributed = torch.load(result, weights_only=True)
    single = run_epochs(toy_model(), batch_size=8, info=DistInfo()).state_dict()
    for key, value in single.items():
        torch.testing.assert_close(distributed[key], value, rtol=1e-4, atol=1e-5)
    assert not torch.equal(single["4.weight"], toy_model().state_dict()["4.weight"])  # it did train


@pytest.mark.parametrize("n, world", [(8, 2), (9, 2), (3, 4), (21, 3)])
def test_local_slices_cover_the_batch_once(n, world):
    slices = [DistInfo(rank, world).local_slice(n) for rank in range(world)]
    covered = [i for s in slices for i in range(n)[s]]
    assert covered == list(range(n))
    assert max(len(range(n)[s]) for s in slices) - min(len(range(n)[s]) for s in slices) <= 1


def _flag_worker(rank: int, store: str, result_path: str) -> None:
    from babyface.training.distributed import rank0_flag

    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=2)
    try:  # each process measured its own layout: rank 0 says channels-last, rank 1 says NCHW
        agreed = rank0_flag(rank == 0, DistInfo(rank=rank, world_size=2, local_rank=rank), torch.device("cpu"))
        torch.save(agreed, f"{result_path}.{rank}")
        dist.barrier()
    finally:
        dist.destroy_process_group()


def test_every_process_takes_rank_0s_measured_layout(tmp_path):
    result = tmp_path / "flag"
    mp.spawn(_flag_worker, args=(str(tmp_path / "rendezvous"), str(result)), nprocs=2, join=True)
    assert [torch.load(f"{result}.{rank}") for rank in (0, 1)] == [True, True]
