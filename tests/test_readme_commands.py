"""Every `babyface ...` command printed in the README (the CLI tour and its Results) and in docs/results.md parses
with the real command line: a renamed or dropped flag, or a value out of its choices, fails here before a reader meets it."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from babyface.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", ROOT / "docs" / "results.md"]


def readme_commands() -> list[str]:
    blocks = [block for page in PAGES for block in re.findall(r"```bash\n(.*?)```", page.read_text(encoding="utf-8"), re.S)]
    lines = " ".join(blocks).replace("\\\n", " ").splitlines()
    commands = []
    for line in lines:
        line = line.split(" #")[0].strip()
        if line.startswith("babyface "):
            commands.append(line)
    return commands


def test_the_readme_prints_commands() -> None:
    commands = readme_commands()
    assert len(commands) >= 40  # the CLI tour, the README's results and every block of docs/results.md
    assert any(c.startswith("babyface evaluate runs/probe") for c in commands)  # the Results section is included


@pytest.mark.parametrize("command", readme_commands())
def test_a_readme_command_parses(command: str, capsys) -> None:
    argv = shlex.split(command)[1:]
    try:
        args = build_parser().parse_args(argv)
    except SystemExit:
        pytest.fail(f"README command does not parse: {command}\n{capsys.readouterr().err}")
    assert callable(args.func)


# how the README and `demo --help` name each demo model
DEMO_MODEL_WORDS = {"fast": "xception-mini", "resnet18": "ResNet-18", "cnn": "CNN"}


def test_the_readme_and_demo_help_name_the_models_the_demo_trains() -> None:
    from babyface.config import DemoConfig
    from babyface.tools.demo import DEMO_MODELS

    assert set(DEMO_MODEL_WORDS) == set(DEMO_MODELS)
    trained = set(DemoConfig().models)
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    line = re.search(r"make demo +#(.*\n +#.*)", readme).group(1)
    demo_help = build_parser()._subparsers._group_actions[0].choices["demo"].description
    for model, word in DEMO_MODEL_WORDS.items():
        assert (word in line) == (model in trained), f"README's make demo line and the demo's models disagree on {model}"
        trained_words = demo_help.split(";")[0]  # what follows ';' lists the models --models can add
        assert (word in trained_words) == (model in trained), f"demo --help and the demo's models disagree on {model}"
