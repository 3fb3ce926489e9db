"""The source–class confound benchmark in small (benchmarks/confound.py): source B (studio look) has no
neutral faces in training; plain training learns "studio ⇒ not neutral", the default settings
(missing-class-aware loss, class-first source balancing, source adversary) must not."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

SEED = 0


def _benchmark():
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "confound.py"
    spec = importlib.util.spec_from_file_location("confound_benchmark", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is made
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def rows(tmp_path_factory) -> dict[str, dict]:
    confound = _benchmark()
    # measured (seed 0): plain A neutral recall 0.60, B/A 0.17; default B/A 0.91. 8 epochs since the synthetic faces got
    # their own geometry: at 6 the plain model's neutral recall on A was 0.33-0.65 depending on the draw, too little to
    # show a collapse on B (before: plain B/A 0.21, default 0.95 at 6 epochs)
    sizes = confound.Sizes(n=600, probe=150, image_size=48, epochs=8)
    configs = [c for c in confound.CONFIGS if c["name"] in ("plain", "default")]
    measured = confound.measure(sizes, [SEED], configs, tmp_path_factory.mktemp("confound"), base={"batch_size": 32}, log=print)
    return {row["config"]: row for row in measured}


def test_plain_training_forgets_neutral_for_the_source_without_it(rows):
    plain = rows["plain"]
    assert plain["A neutral recall"] >= 0.4  # neutral was learned ...
    assert plain["B/A"] < 0.5  # ... but not for the source that had none


def test_default_settings_keep_neutral_for_the_source_without_it(rows):
    default = rows["default"]
    assert default["A neutral recall"] >= 0.4
    assert default["B/A"] >= 0.8
