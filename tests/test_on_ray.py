"""babyface.video.on_ray: Ray's absence is one line; a task whose worker dies is retried once, then reported as that
task's failure while the others finish (on a real local Ray)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from babyface.errors import BabyfaceError
from babyface.video.on_ray import check_reachable, import_ray, ray_map


def test_ray_missing_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(BabyfaceError, match=r"pip install 'babyface\[ray\]'"):
        import_ray()


def test_an_address_without_a_port_is_refused_with_the_forms_it_takes():
    with pytest.raises(BabyfaceError, match="HOST:PORT"):
        check_reachable("my-cluster")


def die_on_first_try(marker: str, value: int) -> int:
    """Kills its worker process the first time it runs for ``value`` (a marker file remembers), then succeeds."""
    path = Path(marker)
    if not path.exists():
        path.write_text("tried")
        os._exit(1)
    return value * 10


def always_die(value: int) -> int:
    if value == 2:
        os._exit(1)
    return value * 10


@pytest.fixture(scope="module")
def local_ray():
    ray = pytest.importorskip("ray", reason="Ray is an extra: pip install 'babyface[ray]' (.ci/run installs it)")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the workers cannot import this test module
    yield ray
    ray.shutdown()


def test_a_task_whose_worker_dies_is_retried_once(local_ray, tmp_path):
    results = dict(ray_map(local_ray, die_on_first_try, [(str(tmp_path / "marker"), 4)]))
    assert results == {0: 40}


def test_a_task_that_keeps_dying_fails_alone(local_ray):
    results = dict(ray_map(local_ray, always_die, [(1,), (2,), (3,)], limit=2))
    assert results[0] == 10 and results[2] == 30
    assert isinstance(results[1], Exception)
