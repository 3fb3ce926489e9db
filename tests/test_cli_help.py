"""Every option of every command is generated from its config model, explained, and shows its default."""

from __future__ import annotations

import argparse

import pytest

from babyface.cli import build_parser, leaves, main


def commands(parser: argparse.ArgumentParser, prefix: str = "") -> dict[str, argparse.ArgumentParser]:
    """Every (sub)command's parser by its full name, e.g. 'train' and 'data audit'."""
    found = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found[f"{prefix}{name}"] = sub
                found.update(commands(sub, f"{prefix}{name} "))
    return found


COMMANDS = commands(build_parser())
LEAF_COMMANDS = {name: p for name, p in COMMANDS.items() if p.get_default("func") is not None}
OPTIONS = [(name, action) for name, p in LEAF_COMMANDS.items() for action in p._actions
           if action.option_strings and not isinstance(action, (argparse._HelpAction, argparse._VersionAction))]


def test_every_command_is_found() -> None:
    expected = {"synth", "train", "cv", "evaluate", "predict", "export", "ensemble", "explain", "report", "compare", "serve",
                "watch", "measure", "code", "agree", "models", "data audit", "data split", "data crop", "demo"}
    assert set(LEAF_COMMANDS) == expected


@pytest.mark.parametrize(("command", "action"), OPTIONS, ids=[f"{c} {a.option_strings[0]}" for c, a in OPTIONS])
def test_every_option_is_explained_and_shows_its_default(command: str, action: argparse.Action) -> None:
    text = action.help or ""
    assert "(default: " in text, f"babyface {command} {action.option_strings[0]}: no default in its help"
    explanation = text.split("(default: ")[0].strip()
    assert len(explanation) >= 10, f"babyface {command} {action.option_strings[0]}: help {text!r} explains nothing"


def test_every_positional_is_explained() -> None:
    for name, parser in LEAF_COMMANDS.items():
        for action in parser._actions:
            if not action.option_strings and not isinstance(action, argparse._SubParsersAction):
                assert action.help and len(action.help) >= 10, f"babyface {name} {action.dest}: no help"


def test_every_config_field_is_an_option_or_positional() -> None:
    for name, parser in LEAF_COMMANDS.items():
        dests = {action.dest for action in parser._actions}
        for leaf in leaves(parser.get_default("config_model")):
            assert leaf.dest in dests, f"babyface {name}: {leaf.dest} has no flag"


def test_train_help_is_grouped(capsys) -> None:
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = capsys.readouterr().out
    headings = ["data:", "sources (several datasets):", "model:", "optimisation:", "augmentation:", "output and runtime:"]
    positions = [text.find(f"\n{heading}\n") for heading in headings]
    assert all(p > 0 for p in positions) and positions == sorted(positions), text
    assert "--hflip X" in text.split("\naugmentation:\n")[1].split("\noutput and runtime:\n")[0]
    assert "{adam,adamw,sgd}" in text and "--augment, --no-augment" in text


def test_predict_help_groups_video_options(capsys) -> None:
    with pytest.raises(SystemExit):
        main(["predict", "--help"])
    text = capsys.readouterr().out
    assert "\nvideos:\n" in text and "--detect-every" in text.split("\nvideos:\n")[1]
    assert "\nfaces:\n" in text and "--min-score" in text.split("\nfaces:\n")[1]


def count_options() -> tuple[int, int]:
    """(options with an explanation and their default, all options): printed by ``python -m tests.test_cli_help``."""
    helped = sum("(default: " in (a.help or "") and len((a.help or "").split("(default: ")[0].strip()) >= 10
                 for _, a in OPTIONS)
    return helped, len(OPTIONS)


if __name__ == "__main__":
    print("%d of %d options have help and a default" % count_options())
