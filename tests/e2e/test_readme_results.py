"""The README's Results commands run as printed, on a small synthetic stand-in for the data they name.

Each command gets only a smaller budget appended (fewer images, epochs, folds and seeds: argparse lets the last
flag win), so a renamed file (``layout.csv``), a dropped option or a step that needs an earlier one's output fails
here. The numbers themselves are measured on the real data (docs/results.md)."""

from __future__ import annotations

import csv
import re
import shlex
import shutil
from pathlib import Path

from babyface.cli import main
from babyface.tools.synthetic import SynthConfig, generate_dataset

README = Path(__file__).resolve().parents[2] / "README.md"
# what each command gets appended so that it runs in seconds; the demo is `make demo`'s own command
BUDGET = {"demo": ["--n", "60", "--epochs", "1", "--models", "fast"], "train": ["--epochs", "1"],
          "cv": ["--folds", "2", "--seeds", "0", "--epochs", "1"], "code": ["--no-progress"]}
MAKE_DEMO = ["demo", "--overwrite"]  # the Makefile's demo target


def results_commands() -> list[list[str]]:
    """The commands of the README's Results block, each as argv (``make demo`` as the command it runs)."""
    section = README.read_text(encoding="utf-8").split("## Results", 1)[1]
    block = re.search(r"```bash\n(.*?)```", section, re.S).group(1).replace("\\\n", " ")
    commands = []
    for line in block.splitlines():
        line = line.split(" #")[0].strip()
        if line == "make demo":
            commands.append(list(MAKE_DEMO))
        elif line.startswith("babyface "):
            commands.append(shlex.split(line)[1:])
    return commands


def test_the_makefile_demo_is_the_command_assumed() -> None:
    makefile = (README.parent / "Makefile").read_text()
    assert "$(BIN)/babyface " + " ".join(MAKE_DEMO) in makefile


def synthetic_infant_web(folder: Path) -> Path:
    """Class folders and a manifest with an identity_group column, as ../shared/data/infant-web has."""
    generate_dataset(folder / "gen", SynthConfig(n=72, size=64, seed=3), progress=False)
    rows = []
    for index, image in enumerate(sorted((folder / "gen").glob("*/*/*.jpg"))):
        target = folder / "IW" / image.parent.name / image.name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(image, target)
        rows.append({"file": f"{image.parent.name}/{image.name}", "identity_group": f"infant{index // 2}"})
    with open(folder / "IW" / "manifest.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, ["file", "identity_group"])
        writer.writeheader()
        writer.writerows(rows)
    return folder / "IW"


def code_stand_ins(argv: list[str]) -> list[str]:
    """Row 8's inputs, made small: the demo's model as SESSION_RUN, two generated sessions as SESSIONS, and their codes
    from a local run as CODED_LARGEST. Without the Ray extra (make test alone), the same command without --ray."""
    import importlib.util

    shutil.copytree("demo_out/fast", "SESSION_RUN")
    assert main(["synth", "SESSIONS", "--video", "--videos", "2", "--seconds", "6", "--quiet"]) == 0
    assert main(["code", "SESSION_RUN", "SESSIONS", "--out", "CODED_LARGEST", "--no-progress"]) == 0
    return argv if importlib.util.find_spec("ray") else [a for a in argv if a != "--ray"]


def test_the_results_commands_run_in_order(tmp_path, monkeypatch) -> None:
    commands = results_commands()
    assert [c[0] for c in commands] == ["demo", "data", "train", "evaluate", "cv", "evaluate", "code"]
    monkeypatch.chdir(tmp_path)
    synthetic_infant_web(tmp_path)
    for argv in commands:
        if argv[0] == "code":
            argv = code_stand_ins(argv)
        if "runs/probe" in argv:  # trained as docs/results.md says, on the stand-in split the commands before wrote
            assert main(["train", "data/iw", "--recipe", "infant", "--seeds", "", "--out", "runs/probe",
                         "--no-progress", *BUDGET["train"]]) == 0
        code = main([*argv, *BUDGET.get(argv[0], [])])
        assert code == 0, f"README command failed: babyface {shlex.join(argv)}"
    assert (tmp_path / "demo_out" / "results.md").is_file()
    assert (tmp_path / "data" / "iw" / "layout.csv").is_file()
    assert (tmp_path / "runs" / "iw-resnet18" / "evaluation" / "metrics.json").is_file()
    assert (tmp_path / "runs" / "probe" / "evaluation").is_dir()
    assert "kappa 1.000" in (tmp_path / "coded-ray" / "agreement" / "agreement.md").read_text()  # Ray's codes = local
