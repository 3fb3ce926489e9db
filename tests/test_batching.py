"""Micro-batching of the classifier across concurrent requests (babyface.serve.batching)."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import torch

from babyface.serve.batching import MicroBatcher


def crops(first: int, count: int) -> list[np.ndarray]:
    return [np.full((4, 4, 3), first + n, np.uint8) for n in range(count)]


def mean_rows(batch: list[np.ndarray]) -> torch.Tensor:
    return torch.tensor([[float(crop.mean()), float(len(batch))] for crop in batch])


def test_each_caller_gets_its_own_rows_and_waiting_callers_share_a_batch() -> None:
    release, sizes = threading.Event(), []

    def run_batch(batch):
        sizes.append(len(batch))
        release.wait(timeout=10)  # the first batch blocks so that the other callers queue up behind it
        return mean_rows(batch)

    batcher = MicroBatcher(run_batch)
    with ThreadPoolExecutor(max_workers=5) as pool:
        first = pool.submit(batcher.classify, crops(0, 1))
        while not sizes:
            threading.Event().wait(0.01)
        rest = [pool.submit(batcher.classify, crops(10 * n, n)) for n in (1, 2, 3)]
        while batcher.jobs.qsize() < 3:
            threading.Event().wait(0.01)
        release.set()
        results = [first.result(timeout=10), *(f.result(timeout=10) for f in rest)]
    batcher.close()
    assert sizes == [1, 6]  # the three waiting callers went through the classifier in one call
    assert results[0][:, 0].tolist() == [0.0]
    for n, rows in zip((1, 2, 3), results[1:]):
        assert rows[:, 0].tolist() == [10.0 * n + k for k in range(n)]


def test_an_error_reaches_every_caller_of_the_batch_and_the_batcher_keeps_working() -> None:
    def run_batch(batch):
        if any(crop.mean() == 99 for crop in batch):
            raise ValueError("bad crop")
        return mean_rows(batch)

    batcher = MicroBatcher(run_batch)
    with pytest.raises(ValueError, match="bad crop"):
        batcher.classify(crops(99, 1))
    assert batcher.classify(crops(5, 2))[:, 0].tolist() == [5.0, 6.0]
    batcher.close()
    assert not batcher.thread.is_alive()
