"""``babyface code --ray [ADDRESS]``: the per-video work of ``babyface code`` as Ray tasks.

Each video is one task of one CPU running ``code_in_worker``, which loads the model once per Ray worker process (Ray
reuses its workers, so a node loads it once per core) and returns the codes and per-frame rows; the driver writes every
file, atomically, as each video finishes, exactly as a local run does. A task whose worker dies is retried once by Ray
(``max_retries=1``); a video that still fails is reported as failed and the others go on. Nodes read the videos and the
model bundle by the paths the driver gives, so a cluster needs them on storage every node mounts at the same path
(docs/coding.md, "A thousand hours").
"""

from __future__ import annotations

import logging
import os
import socket
from typing import Any, Callable, Iterator, Sequence

from babyface.config.coding import LOCAL_RAY, CodeConfig
from babyface.errors import BabyfaceError

INSTALL = "pip install 'babyface[ray]'"
CONNECT_TIMEOUT = 5.0  # seconds: Ray itself waits much longer (and prints retries) for an address that does not answer


def import_ray():
    try:
        import ray
    except ImportError:
        raise BabyfaceError(f"--ray needs Ray, which is not installed here; install it with {INSTALL}") from None
    return ray


def check_reachable(address: str, timeout: float = CONNECT_TIMEOUT) -> None:
    """One line, before anything is written, when a cluster address does not answer."""
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise BabyfaceError(f"--ray {address}: not an address; give HOST:PORT of the cluster's head (e.g. 10.0.0.5:6379), "
                            "ray://HOST:10001 for Ray Client, auto for the cluster this machine belongs to, or no value "
                            "for a local Ray")
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as exc:
        raise BabyfaceError(f"--ray {address}: no Ray cluster answers there ({exc.strerror or exc}); start one with "
                            "'ray start --head' on the head node, or pass --ray without an address for a local Ray") from None


class RayRunner:
    """A connection to Ray that codes a corpus's pending videos (``babyface.video.corpus.Runner``)."""

    def __init__(self, ray: Any, started: bool, limit: int | None = None) -> None:
        self.ray = ray
        self.started = started  # whether this runner connected (then it disconnects, and stops a local Ray it started)
        self.limit = limit

    @classmethod
    def connect(cls, address: str, cpus: int | None = None) -> "RayRunner":
        """``address`` 'local' starts a Ray on this machine with ``cpus`` CPUs (None: all); any other address joins
        that cluster. A Ray already initialised in this process (by a Python caller) is used as it is."""
        ray = import_ray()
        if ray.is_initialized():
            return cls(ray, started=False, limit=cpus)
        quiet = {"log_to_driver": False, "logging_level": logging.WARNING, "configure_logging": False}
        if address == LOCAL_RAY:
            ray.init(num_cpus=cpus or os.cpu_count(), include_dashboard=False, **quiet)
        else:
            if address != "auto":
                check_reachable(address)
            try:
                ray.init(address=address, **quiet)
            except ConnectionError as exc:
                raise BabyfaceError(f"--ray {address}: {str(exc).splitlines()[0]}") from None
        return cls(ray, started=True, limit=cpus if address != LOCAL_RAY else None)

    def __call__(self, config: CodeConfig, jobs: list, code_map: dict[str, str]) -> Iterator[tuple[Any, Any]]:
        from babyface.video.corpus import code_in_worker

        worker_config = config.replace(progress=False)
        arguments = [(worker_config, job.video.resolve(), code_map) for job in jobs]
        try:
            for index, outcome in ray_map(self.ray, code_in_worker, arguments, self.limit):
                if isinstance(outcome, BaseException):
                    outcome = f"{jobs[index].video}: the Ray task coding it failed twice ({_one_line(outcome)})"
                yield jobs[index], outcome
        finally:
            if self.started:
                self.ray.shutdown()


def ray_map(ray: Any, function: Callable, arguments: Sequence[tuple], limit: int | None = None,
            retries: int = 1) -> Iterator[tuple[int, Any]]:
    """``function(*args)`` for every tuple of ``arguments`` as Ray tasks of one CPU, yielded as ``(index, result)``
    in the order they finish; a task that raised, or whose worker died ``retries + 1`` times, yields its exception.
    ``limit`` caps the tasks in flight (None: as many as Ray schedules)."""
    remote = ray.remote(num_cpus=1, max_retries=retries)(function)
    waiting = list(enumerate(arguments))
    running: dict[Any, int] = {}
    while waiting or running:
        while waiting and (limit is None or len(running) < limit):
            index, args = waiting.pop(0)
            running[remote.remote(*args)] = index
        finished, _ = ray.wait(list(running), num_returns=1)
        index = running.pop(finished[0])
        try:
            yield index, ray.get(finished[0])
        except Exception as exc:  # noqa: BLE001 - a task's failure is reported as that video's, the others go on
            yield index, exc


def _one_line(error: BaseException) -> str:
    text = str(getattr(error, "cause", None) or error).strip().splitlines()
    return f"{type(error).__name__}: {text[-1] if text else ''}".strip(": ")


__all__ = ["INSTALL", "RayRunner", "check_reachable", "import_ray", "ray_map"]
