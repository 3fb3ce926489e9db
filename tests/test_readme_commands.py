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
