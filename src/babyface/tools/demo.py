"""The built-in demo: synthetic faces → models trained to convergence → evaluation → a results table.

The table puts each model's test accuracy beside the synthetic task's ceiling: the accuracy of a logistic
regression that sees the true expression parameters the generator drew (metadata.csv), not the pixels."""

from __future__ import annotations

import csv
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from babyface.config import DemoConfig, EvalConfig, TrainConfig, from_dict, with_recipe
from babyface.evaluation.evaluate import evaluate_run
from babyface.outputs import prepare_output_dir, write_text
from babyface.tools.synthetic import EXPRESSION_PARAMETERS, SynthConfig, generate_dataset
from babyface.training.fit import fit

log = logging.getLogger("babyface")

# Faces drawn at 64 px: the CNN's input size; the fast recipe shrinks them to 48 when decoded.
DEMO_IMAGE_SIZE = 64


@dataclass(frozen=True)
class DemoModel:
    """One model of the demo: its training settings (over the reference defaults) and its epochs."""

    what: str
    settings: dict = field(default_factory=dict)
    epochs: int = 10


# Measured on the default 6,000 faces (seed 0, 4,800 training images of which 20% validation; docs/results.md): the
# fast recipe's xception-mini flattens out after about 25 epochs at 87.8% test accuracy; ResNet-18 on the same schedule
# and 48-px gray input costs three times as much per epoch and was still climbing at 12 (77.9%). With the 1,800 faces
# of earlier demos every model stopped near 75% however long it trained: too few images for the task.
DEMO_MODELS = {
    "fast": DemoModel("xception-mini, `--recipe fast`", {"recipe": "fast"}, epochs=30),
    "resnet18": DemoModel("ResNet-18, `--recipe fast --model resnet18`", {"recipe": "fast", "model": "resnet18"},
                          epochs=12),
    # the reference CNN's MLP head stays at chance for many epochs with its dropout 0.5 and Adam 1e-3 here
    "cnn": DemoModel("reference CNN, cosine, Adam 5e-4, dropout 0.25",
                     {"model": "cnn", "scheduler": "cosine", "lr": 5e-4, "model_args": {"drop_rate": 0.25}}, epochs=10),
}


def run_demo(config: DemoConfig) -> list[dict]:
    """Synthesise, train each model, evaluate each, write and print the results table."""
    out = prepare_output_dir(config.out, overwrite=config.overwrite)
    data = out / "data"
    steps = len(config.models) + 1
    log.info("1/%d synthesising %d infant faces in %s", steps, config.n, data)
    generate_dataset(data, SynthConfig(n=config.n, seed=config.seed, size=DEMO_IMAGE_SIZE), overwrite=True)
    rows = [train_and_evaluate(name, config, out, data, step, steps) for step, name in enumerate(config.models, 2)]
    table = results_table(rows, config, expression_ceiling(data))
    write_text(out / "results.md", table)
    print("\n" + table)
    print(f"outputs in {out}/: data/, {', '.join(config.models)} (learning_curves.png, evaluation/confusion_matrix.png, "
          f"evaluation/predictions_grid.png), results.md")
    return rows


def train_and_evaluate(name: str, config: DemoConfig, out: Path, data: Path, step: int, steps: int) -> dict:
    """Train demo model ``name`` on ``data``, evaluate it on the test split; its row of the results table."""
    model = DEMO_MODELS[name]
    epochs = config.epochs or model.epochs
    log.info("%d/%d training %s for %d epochs", step, steps, model.what, epochs)
    values = {**model.settings, "data": str(data), "out": str(out / name), "epochs": epochs, "seed": config.seed,
              "device": config.device, "overwrite": config.overwrite}
    start = time.perf_counter()
    run = fit(from_dict(TrainConfig, with_recipe(values), f"demo model {name}"))
    seconds = time.perf_counter() - start
    # synthetic images are already tight face crops, framed like the training images: no face detection
    metrics = evaluate_run(EvalConfig(run=str(run), data=str(data), device=config.device, overwrite=config.overwrite,
                                      framing="whole"))
    return {"model": name, "what": model.what, "epochs": epochs, "accuracy": metrics["accuracy"],
            "macro_f1": metrics["macro_f1"], "n_test": metrics["n"], "train_seconds": round(seconds, 1), "run": str(run)}


def expression_ceiling(data: Path) -> float | None:
    """Test accuracy of a logistic regression on the true expression parameters of ``data/metadata.csv``: about what
    a model could reach from the pixels, since the classes' parameters overlap; None with too few images to fit it."""
    from sklearn.linear_model import LogisticRegression

    with open(data / "metadata.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    features = np.array([[float(r[c]) for c in EXPRESSION_PARAMETERS] for r in rows])
    labels = np.array([r["label"] for r in rows])
    train = np.array([r["split"] == "train" for r in rows])
    if len(set(labels[train])) < 2 or train.all() or not train.any():
        return None
    model = LogisticRegression(max_iter=2000).fit(features[train], labels[train])
    return float((model.predict(features[~train]) == labels[~train]).mean())


def results_table(rows: list[dict], config: DemoConfig, ceiling: float | None) -> str:
    models = ",".join(config.models)
    lines = [
        f"Synthetic test split ({rows[0]['n_test']} images; `babyface demo --n {config.n} --seed {config.seed} "
        f"--models {models}`)",
        "",
        "| model | trained as | epochs | test accuracy | of the ceiling | test macro-F1 | training time (s) |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        share = f"{r['accuracy'] / ceiling:.0%}" if ceiling else "–"
        lines.append(f"| {r['model']} | {r['what']} | {r['epochs']} | {r['accuracy']:.2%} | {share} | "
                     f"{r['macro_f1']:.3f} | {r['train_seconds']} |")
    if ceiling is not None:
        lines += ["", f"Ceiling: {ceiling:.2%}, a logistic regression on the true expression parameters of the test "
                      f"faces ({', '.join(EXPRESSION_PARAMETERS)}); the classes overlap, so no model reaches 100%."]
    return "\n".join(lines) + "\n"
