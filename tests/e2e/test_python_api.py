"""The README's Python example runs as written, and the API takes paths, PIL images and arrays alike."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import babyface
from babyface.tools.synthetic import SynthConfig, generate_dataset

README = Path(__file__).resolve().parents[2] / "README.md"


def readme_python_example() -> str:
    section = README.read_text(encoding="utf-8").split("## Python", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


@pytest.fixture(scope="module")
def api_run(tmp_path_factory) -> tuple[Path, dict]:
    """The README example executed in a folder holding what it names: faces/, baby.jpg, a PIL image and an array."""
    folder = tmp_path_factory.mktemp("api")
    generate_dataset(folder / "faces", SynthConfig(n=120, seed=3, size=64), progress=False)
    face = next((folder / "faces" / "test" / "happy").iterdir())
    Image.open(face).convert("RGB").save(folder / "baby.jpg")
    namespace = {"pil_image": Image.open(face), "numpy_rgb_array": np.asarray(Image.open(face).convert("RGB"))}
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(folder)
        exec(compile(readme_python_example(), str(README), "exec"), namespace)
    return folder, namespace


@pytest.mark.slow
def test_readme_python_example_runs(api_run) -> None:
    folder, namespace = api_run
    assert (folder / "runs" / "cnn" / "model.json").is_file() and (folder / "runs" / "cnn" / "evaluation" / "metrics.json").is_file()
    assert 0 <= namespace["metrics"].accuracy <= 1 and namespace["metrics"].n > 0  # a typed record
    assert isinstance(namespace["model"], babyface.Classifier)


@pytest.mark.slow
def test_a_path_a_pil_image_and_an_array_get_the_same_prediction(api_run) -> None:
    folder, namespace = api_run
    model = babyface.load(folder / "runs" / "cnn", framing="whole")
    from_path = model.predict(folder / "baby.jpg")
    from_pil, from_array = model.predict([namespace["pil_image"], namespace["numpy_rgb_array"]])
    assert isinstance(from_path, babyface.Prediction) and from_path.file.endswith("baby.jpg")
    for other in (from_pil, from_array):
        assert other.label == from_path.label
        assert other.probabilities == pytest.approx(from_path.probabilities, abs=0.02)  # JPEG re-encoding of baby.jpg
        assert other.face_found is None  # framing whole: no face was looked for


def test_the_api_is_listed_and_lazy() -> None:
    assert {"load", "train", "evaluate", "Classifier", "Prediction", "TrainConfig", "EvalConfig"} <= set(babyface.__all__)
    with pytest.raises(AttributeError):
        babyface.no_such_thing  # noqa: B018


def test_a_bad_array_is_a_one_line_error(untrained_run) -> None:
    model = babyface.load(untrained_run, framing="whole")
    with pytest.raises(babyface.errors.DataError, match="uint8"):
        model.predict(np.zeros((8, 8, 3), dtype=np.float32))


def _in_mode(rgb: Image.Image, mode: str) -> Image.Image:
    if mode == "I;16":
        return Image.fromarray((np.asarray(rgb.convert("L")).astype(np.uint16) * 257))
    return rgb.convert(mode)


@pytest.mark.slow
@pytest.mark.filterwarnings("error")  # any warning (PyTorch's "NumPy array is not writable", Pillow's, ...) fails
@pytest.mark.parametrize("framing", ["whole", "face"])
def test_images_of_every_mode_read_only_arrays_and_lists_predict_without_a_warning(api_run, framing) -> None:
    folder, namespace = api_run
    model = babyface.load(folder / "runs" / "cnn", framing=framing)
    rgb = Image.open(folder / "baby.jpg").convert("RGB")
    images = [_in_mode(rgb, mode) for mode in ("RGB", "L", "LA", "RGBA", "P", "CMYK", "I;16", "I", "F", "1")]
    read_only = np.asarray(rgb)
    assert not read_only.flags.writeable  # what np.asarray(Image.open(f)) hands a notebook user
    gray_read_only = np.asarray(rgb.convert("L"))
    predictions = model.predict([*images, read_only, gray_read_only])
    assert len(predictions) == len(images) + 2
    assert model.predict(read_only).label == predictions[0].label
    assert all(set(p.probabilities) == set(predictions[0].probabilities) for p in predictions)
