"""babyface.config (defaults, from_dict, YAML, merge), cli.build_config precedence, and babyface.outputs output safety."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from babyface.cli import build_config, build_parser
from babyface.config import (
    EvalConfig,
    PredictConfig,
    TrainConfig,
    from_dict,
    load_yaml,
    merge,
    save_yaml,
    to_dict,
)
from babyface.errors import BabyfaceError, OutputExistsError
from babyface.outputs import atomic_path, prepare_output_dir, write_json, write_text


def one_line_error(exc_info, *needles: str) -> str:
    message = str(exc_info.value)
    assert "\n" not in message
    for needle in needles:
        assert needle in message, message
    return message


# ---------------------------------------------------------------- defaults


def test_defaults_match_reference() -> None:
    config = TrainConfig()
    assert config.data_options.image_size == 64
    assert config.lr == pytest.approx(1e-3)
    assert config.scheduler == "step" and config.step_size == 15 and config.gamma == pytest.approx(0.3)
    assert config.batch_size == 20 and config.epochs == 23
    assert config.data_options.val_fraction == pytest.approx(0.2)
    assert config.optimizer == "adam" and config.model == "cnn"
    aug = config.augment
    assert aug.enabled is True
    assert aug.hflip == 0.5 and aug.rotation == 15 and aug.shear == 10
    assert (aug.scale_min, aug.scale_max) == (0.8, 1.2)
    assert aug.brightness == aug.contrast == aug.saturation == pytest.approx(0.2)
    assert aug.grayscale == pytest.approx(0.2)


def test_default_mutables_are_not_shared() -> None:
    first, second = TrainConfig(), TrainConfig()
    first.model_args["x"] = 1
    first.augment.hflip = 0.0
    assert second.model_args == {} and second.augment.hflip == 0.5


# ---------------------------------------------------------------- from_dict


def test_from_dict_nested_partial() -> None:
    config = from_dict(TrainConfig, {"lr": 0.01, "augment": {"hflip": 0.1}, "data_options": {"image_size": 96}})
    assert config.lr == 0.01
    assert config.augment.hflip == 0.1 and config.augment.rotation == 15.0  # untouched siblings keep defaults
    assert config.data_options.image_size == 96 and config.data_options.val_fraction == 0.2
    assert config.epochs == 23


def test_from_dict_empty_and_none() -> None:
    assert from_dict(TrainConfig, {}) == TrainConfig()
    assert from_dict(TrainConfig, None) == TrainConfig()
    assert from_dict(TrainConfig, {"augment": None}) == TrainConfig()


def test_from_dict_coerces_sensible_types() -> None:
    config = from_dict(TrainConfig, {"lr": "1e-3", "epochs": 5.0, "batch_size": "8", "gamma": 1, "model_args": {"stem": "small"}})
    assert config.lr == 0.001 and isinstance(config.lr, float)
    assert config.epochs == 5 and isinstance(config.epochs, int)
    assert config.batch_size == 8 and isinstance(config.batch_size, int)
    assert config.gamma == 1.0 and isinstance(config.gamma, float)
    assert config.model_args == {"stem": "small"}
    assert from_dict(PredictConfig, {"inputs": ("a.jpg", "b")}).inputs == ["a.jpg", "b"]


@pytest.mark.parametrize(
    ("values", "needle"),
    [
        ({"learning_rate": 0.1}, "learning_rate"),
        ({"augment": {"flip": 0.5}}, "flip"),
        ({"data_options": {"size": 64}}, "size"),
    ],
)
def test_unknown_keys_are_named(values: dict, needle: str) -> None:
    with pytest.raises(BabyfaceError) as info:
        from_dict(TrainConfig, values)
    one_line_error(info, needle, "unknown")


@pytest.mark.parametrize(
    ("values", "needle"),
    [
        ({"epochs": "many"}, "epochs"),
        ({"epochs": 2.5}, "epochs"),  # not silently truncated to 2
        ({"epochs": True}, "epochs"),  # a bool is not a number of epochs
        ({"lr": True}, "lr"),
        ({"lr": None}, "lr"),
        ({"lr": -0.1}, "lr"),
        ({"lr": 0}, "lr"),
        ({"epochs": 0}, "epochs"),
        ({"batch_size": 0}, "batch-size"),
        ({"optimizer": "rmsprop"}, "optimizer"),
        ({"scheduler": "plateau"}, "scheduler"),
        ({"class_balance": "oversample"}, "class-balance"),
        ({"gamma": 0}, "gamma"),
        ({"gamma": 1.5}, "gamma"),
        ({"overwrite": "yes"}, "overwrite"),
        ({"model_args": "stem=small"}, "model_args"),
        ({"model": ["cnn"]}, "model"),
        ({"augment": {"hflip": 1.5}}, "hflip"),
        ({"augment": {"grayscale": -0.1}}, "grayscale"),
        ({"augment": {"scale_min": 1.5, "scale_max": 1.2}}, "scale"),
        ({"augment": {"enabled": 1}}, "enabled"),
        ({"augment": "off"}, "augment"),
        ({"data_options": {"image_size": 8}}, "image-size"),
        ({"data_options": {"val_fraction": 1.0}}, "val-fraction"),
        ({"data_options": {"max_pixels": 0}}, "max-pixels"),
    ],
)
def test_bad_values_are_named(values: dict, needle: str) -> None:
    with pytest.raises(BabyfaceError) as info:
        from_dict(TrainConfig, values)
    one_line_error(info, needle)


def test_predict_inputs_string_is_not_split_into_characters() -> None:
    with pytest.raises(BabyfaceError) as info:
        from_dict(PredictConfig, {"inputs": "photo.jpg"})
    one_line_error(info, "inputs")


def test_non_mapping_is_rejected() -> None:
    with pytest.raises(BabyfaceError) as info:
        from_dict(TrainConfig, [1, 2])
    one_line_error(info, "mapping")


@pytest.mark.parametrize("fmt", ["json", "csv", "table"])
def test_predict_format_choices(fmt: str) -> None:
    assert from_dict(PredictConfig, {"format": fmt}).format == fmt


def test_predict_format_invalid() -> None:
    with pytest.raises(BabyfaceError) as info:
        from_dict(PredictConfig, {"format": "xml"})
    one_line_error(info, "format", "xml")


# ---------------------------------------------------------------- YAML and merge


def test_yaml_round_trip(tmp_path: Path) -> None:
    config = from_dict(TrainConfig, {
        "data": "DATA", "lr": 0.0005, "model": "resnet18", "model_args": {"stem": "small"},
        "augment": {"enabled": False, "rotation": 5.0}, "data_options": {"image_size": 48, "strict": True},
    })
    path = save_yaml(config, tmp_path / "config.yaml")
    assert path == tmp_path / "config.yaml"
    loaded = load_yaml(path)
    assert loaded == to_dict(config)
    assert from_dict(TrainConfig, loaded) == config
    for cls in (EvalConfig, PredictConfig):
        save_yaml(cls(), tmp_path / f"{cls.__name__}.yaml")
        assert from_dict(cls, load_yaml(tmp_path / f"{cls.__name__}.yaml")) == cls()


def test_load_yaml_empty_file(tmp_path: Path) -> None:
    (tmp_path / "empty.yaml").write_text("")
    assert load_yaml(tmp_path / "empty.yaml") == {}


@pytest.mark.parametrize(("content", "needle"), [("lr: [1, 2\n", "YAML"), ("- 1\n- 2\n", "mapping")])
def test_load_yaml_errors(tmp_path: Path, content: str, needle: str) -> None:
    (tmp_path / "bad.yaml").write_text(content)
    with pytest.raises(BabyfaceError) as info:
        load_yaml(tmp_path / "bad.yaml")
    one_line_error(info, str(tmp_path / "bad.yaml"), needle)


def test_load_yaml_missing(tmp_path: Path) -> None:
    with pytest.raises(BabyfaceError) as info:
        load_yaml(tmp_path / "nope.yaml")
    one_line_error(info, "nope.yaml", "not found")


def test_merge() -> None:
    base = from_dict(TrainConfig, {"lr": 0.01, "model_args": {"stem": "small", "drop_rate": 0.1}, "augment": {"hflip": 0.2}})
    merged = merge(base, {"epochs": 3, "augment": {"rotation": 0.0}, "model_args": {"drop_rate": 0.3}})
    assert merged.lr == 0.01 and merged.epochs == 3
    assert merged.augment.hflip == 0.2 and merged.augment.rotation == 0.0  # nested update, not replacement
    assert merged.model_args == {"drop_rate": 0.3}  # model options are replaced as a whole
    assert base.epochs == 23 and base.augment.rotation == 15.0  # the original is untouched
    with pytest.raises(BabyfaceError):
        merge(base, {"augment": {"hflip": 2.0}})
    with pytest.raises(BabyfaceError):
        merge(base, {"nonsense": 1})


# ---------------------------------------------------------------- CLI precedence


def _train_config(argv: list[str]) -> TrainConfig:
    args = build_parser().parse_args(argv)
    return build_config(TrainConfig, args, data=args.data)


def test_cli_defaults() -> None:
    config = _train_config(["train", "DATA"])
    assert config == TrainConfig(data="DATA")


def test_cli_precedence_defaults_yaml_flags(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({
        "lr": 0.5, "epochs": 7, "data": "FROM_YAML",
        "augment": {"hflip": 0.1, "rotation": 3.0}, "data_options": {"image_size": 48},
    }))
    only_yaml = _train_config(["train", "DATA", "--config", str(path)])
    assert only_yaml.lr == 0.5 and only_yaml.epochs == 7
    assert only_yaml.augment.hflip == 0.1 and only_yaml.augment.rotation == 3.0
    assert only_yaml.data_options.image_size == 48
    assert only_yaml.batch_size == 20  # default where YAML is silent
    assert only_yaml.data == "DATA"  # the positional wins

    flags = _train_config(["train", "DATA", "--config", str(path), "--lr", "0.01", "--hflip", "0.9", "--image-size", "32"])
    assert flags.lr == 0.01 and flags.augment.hflip == 0.9 and flags.data_options.image_size == 32
    assert flags.epochs == 7 and flags.augment.rotation == 3.0  # YAML values not overridden survive


def test_cli_boolean_flags(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("augment:\n  enabled: false\noverwrite: true\n")
    assert _train_config(["train", "D", "--config", str(path)]).augment.enabled is False
    config = _train_config(["train", "D", "--config", str(path), "--augment", "--no-overwrite"])
    assert config.augment.enabled is True and config.overwrite is False
    assert _train_config(["train", "D", "--no-augment"]).augment.enabled is False


def test_cli_bad_yaml_value_is_named(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("epochs: lots\n")
    with pytest.raises(BabyfaceError) as info:
        _train_config(["train", "D", "--config", str(path)])
    one_line_error(info, "epochs")


def test_cli_eval_and_predict_configs(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("batch_size: 5\nformat: json\n")
    args = build_parser().parse_args(["predict", "RUN", "a.jpg", "b", "--config", str(path), "--batch-size", "9"])
    config = build_config(PredictConfig, args, run=args.run, inputs=args.inputs)
    assert config.batch_size == 9 and config.format == "json" and config.inputs == ["a.jpg", "b"] and config.run == "RUN"
    args = build_parser().parse_args(["evaluate", "RUN", "DATA", "--grid-size", "4"])
    config = build_config(EvalConfig, args, run=args.run, data=args.data)
    assert config.grid_size == 4 and config.batch_size == 64


# ---------------------------------------------------------------- io


def test_prepare_output_dir(tmp_path: Path) -> None:
    out = prepare_output_dir(tmp_path / "a" / "b")
    assert out.is_dir()
    assert prepare_output_dir(out) == out  # empty: fine
    (out / "result.txt").write_text("old")
    with pytest.raises(OutputExistsError) as info:
        prepare_output_dir(out)
    one_line_error(info, str(out), "--overwrite")
    assert prepare_output_dir(out, overwrite=True) == out
    assert (out / "result.txt").read_text() == "old"  # overwrite allows, it does not wipe


def test_prepare_output_dir_on_a_file(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("x")
    with pytest.raises(OutputExistsError) as info:
        prepare_output_dir(tmp_path / "f", overwrite=True)
    one_line_error(info, str(tmp_path / "f"))


def test_atomic_path_success(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "out.txt"
    with atomic_path(target) as tmp:
        assert tmp.parent == target.parent and tmp != target
        tmp.write_text("new")
        assert not target.exists()
    assert target.read_text() == "new"
    assert os.listdir(target.parent) == ["out.txt"]
    umask = os.umask(0)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask  # like any new file, not mkstemp's 0600


def test_atomic_path_failure_keeps_old_content(tmp_path: Path) -> None:
    target = tmp_path / "out.txt"
    target.write_text("previous")
    with pytest.raises(RuntimeError, match="boom"):
        with atomic_path(target) as tmp:
            tmp.write_text("half-written")
            raise RuntimeError("boom")
    assert target.read_text() == "previous"
    assert os.listdir(tmp_path) == ["out.txt"]


def test_atomic_path_failure_without_writing(tmp_path: Path) -> None:
    with pytest.raises(KeyError):
        with atomic_path(tmp_path / "x.json"):
            raise KeyError("x")
    assert os.listdir(tmp_path) == []


def test_write_helpers(tmp_path: Path) -> None:
    write_json(tmp_path / "a.json", {"a": [1, 2], "p": tmp_path})
    assert yaml.safe_load((tmp_path / "a.json").read_text()) == {"a": [1, 2], "p": str(tmp_path)}
    write_text(tmp_path / "a.json", "replaced")
    assert (tmp_path / "a.json").read_text() == "replaced"
    assert sorted(os.listdir(tmp_path)) == ["a.json"]


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root ignores folder permissions")
def test_write_into_read_only_folder(tmp_path: Path) -> None:
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        with pytest.raises(BabyfaceError) as info:
            write_text(folder / "x.txt", "data")
        one_line_error(info, str(folder / "x.txt"), "cannot write")
        with pytest.raises(BabyfaceError):
            prepare_output_dir(folder / "sub")
    finally:
        folder.chmod(0o755)


@pytest.mark.parametrize(("errno_code", "needle"), [(13, "cannot write here"), (30, "cannot write here"), (28, "disk full")])
def test_os_errors_while_writing_become_babyface_errors(tmp_path: Path, monkeypatch, errno_code: int, needle: str) -> None:
    import tempfile

    def refuse(*args, **kwargs):
        raise OSError(errno_code, os.strerror(errno_code))

    monkeypatch.setattr(tempfile, "mkstemp", refuse)
    with pytest.raises(BabyfaceError) as info:
        write_text(tmp_path / "x.txt", "data")
    one_line_error(info, str(tmp_path / "x.txt"), needle)
    assert os.listdir(tmp_path) == []


def test_write_below_a_file_gives_babyface_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(BabyfaceError) as info:
        write_text(tmp_path / "file" / "x.txt", "data")
    one_line_error(info, str(tmp_path / "file" / "x.txt"))
