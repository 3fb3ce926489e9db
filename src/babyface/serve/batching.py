"""Micro-batching: the face crops of requests that arrive together go through the classifier in one call.

One thread owns the classifier. It takes whatever crops are waiting, runs them as one batch and hands each
request its own rows. Nothing waits on purpose: a lone request runs at once, and under load the crops that
queue up while a batch runs form the next one (one batch of 8 crops costs far less than 8 calls).
"""

from __future__ import annotations

import queue
import threading
from concurrent.futures import Future
from typing import Callable, Sequence

import numpy as np
import torch

Job = tuple[Sequence[np.ndarray], Future]


class MicroBatcher:
    """``classify(crops)`` from any thread returns ``run_batch(crops)``, computed together with other callers' crops."""

    def __init__(self, run_batch: Callable[[list[np.ndarray]], torch.Tensor], max_crops: int = 64):
        self.run_batch = run_batch
        self.max_crops = max_crops
        self.jobs: queue.SimpleQueue[Job | None] = queue.SimpleQueue()
        self.thread = threading.Thread(target=self._serve, name="babyface-classifier", daemon=True)
        self.thread.start()

    def classify(self, crops: Sequence[np.ndarray]) -> torch.Tensor:
        future: Future = Future()
        self.jobs.put((crops, future))
        return future.result()

    def close(self) -> None:
        self.jobs.put(None)
        self.thread.join(timeout=10)

    def _serve(self) -> None:
        while (batch := self._next_batch()) is not None:
            self._run(batch)

    def _next_batch(self) -> list[Job] | None:
        """The oldest waiting job and every other one already queued (up to ``max_crops``); None to stop."""
        first = self.jobs.get()
        if first is None:
            return None
        batch, crops = [first], len(first[0])
        while crops < self.max_crops:
            try:
                job = self.jobs.get_nowait()
            except queue.Empty:
                break
            if job is None:
                self.jobs.put(None)  # stop after this batch
                break
            batch.append(job)
            crops += len(job[0])
        return batch

    def _run(self, batch: list[Job]) -> None:
        try:
            rows = self.run_batch([crop for crops, _ in batch for crop in crops])
        except BaseException as exc:  # every waiting request gets the error instead of hanging
            for _, future in batch:
                future.set_exception(exc)
            return
        start = 0
        for crops, future in batch:
            future.set_result(rows[start:start + len(crops)])
            start += len(crops)
