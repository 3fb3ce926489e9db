"""The built-in demo: synthetic faces → CNN and ResNet-18 → evaluation → a results table."""

from __future__ import annotations

import copy
import logging
import time

from babyface.config import DemoConfig, EvalConfig, TrainConfig
from babyface.evaluation.evaluate import evaluate_run
from babyface.outputs import prepare_output_dir, write_text
from babyface.tools.synthetic import SynthConfig, generate_dataset
from babyface.training.fit import fit

log = logging.getLogger("babyface")

# `make demo` on a fresh clone (venv included) must end within 7 minutes on 2 CPU cores, so the demo trains each
# model for 6 epochs (DemoConfig's defaults) on a cosine schedule; training is ~90% of its time (see run_demo).
# The faces are drawn at the models' input size: larger ones would only be shrunk to it when decoded.
DEMO_IMAGE_SIZE = 64
# What each model is trained with besides the reference defaults (Adam 1e-3, batch 20). With the reference dropout of
# 0.5 after each of its three hidden layers (4096→1024→512→128) the CNN stays at chance for ~13 epochs here, and a
# lower learning rate alone does not help within 6; with dropout 0.25 and Adam 5e-4 it learns from the second epoch.
DEMO_SETTINGS = {"cnn": {"scheduler": "cosine", "lr": 5e-4, "model_args": {"drop_rate": 0.25}},
                 "resnet18": {"scheduler": "cosine"}}


def run_demo(config: DemoConfig) -> list[dict]:
    """Synthesise, train both models, evaluate both, write and print the results table.

    Measured (seed 0, 1,800 faces, one thread, alone on the 2-core machine): synthesis 5 s; CNN 6 epochs ~65 s and
    ResNet-18 6 epochs ~95 s; evaluation with its leakage check ~4 s each; about 3 minutes in all (the demo
    before, 128-px faces and 20 + 10 epochs on a step schedule: 6.5 minutes)."""
    out = prepare_output_dir(config.out, overwrite=config.overwrite)
    data = out / "data"
    log.info("1/3 synthesising %d infant faces in %s", config.n, data)
    generate_dataset(data, SynthConfig(n=config.n, seed=config.seed, size=DEMO_IMAGE_SIZE), overwrite=True)
    epochs = {"cnn": config.cnn_epochs, "resnet18": config.resnet_epochs}
    rows = []
    for step, (model, n_epochs) in enumerate(epochs.items(), start=2):
        log.info("%d/3 training %s for %d epochs", step, model, n_epochs)
        start = time.perf_counter()
        run = fit(TrainConfig(data=str(data), out=str(out / model), model=model, epochs=n_epochs, seed=config.seed,
                              device=config.device, overwrite=config.overwrite, **copy.deepcopy(DEMO_SETTINGS[model])))
        seconds = time.perf_counter() - start
        # synthetic images are already tight face crops, framed like the training images: no face detection
        metrics = evaluate_run(EvalConfig(run=str(run), data=str(data), device=config.device, overwrite=config.overwrite,
                                          framing="whole"))
        rows.append({"model": model, "epochs": n_epochs, "accuracy": metrics["accuracy"], "macro_f1": metrics["macro_f1"],
                     "n_test": metrics["n"], "train_seconds": round(seconds, 1), "run": str(run)})
    table = results_table(rows, config)
    write_text(out / "results.md", table)
    print("\n" + table)
    print(f"outputs in {out}/: data/, cnn/ and resnet18/ (learning_curves.png, evaluation/confusion_matrix.png, "
          f"evaluation/predictions_grid.png), results.md")
    return rows


def results_table(rows: list[dict], config: DemoConfig) -> str:
    lines = [
        f"Synthetic test split ({rows[0]['n_test']} images; `babyface demo --n {config.n} --seed {config.seed}`)",
        "",
        "| model | epochs | test accuracy | test macro-F1 | training time (s) |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(f"| {r['model']} | {r['epochs']} | {r['accuracy']:.2%} | {r['macro_f1']:.3f} | {r['train_seconds']} |")
    return "\n".join(lines) + "\n"
