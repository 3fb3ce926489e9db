"""Class biases fitted on a validation set balanced across the training sources, applied to each held-out infant source.

    PYTHONPATH=src .venv/bin/python benchmarks/source_biases.py benchmarks/results/cross_source/recipe

For each fold of a `cross_source.py` variant (a `babyface cv --folds loso` folder) and each seed: three logit biases
fitted on the seed's validation faces (the training sources' share) by a loss that weighs every source and, within it,
every class alike; then each held-out source's faces, cut tight (MTCNN, margin 0) as the recipe cuts them, classified
with and without the biases, per seed and as the seeds' ensemble. Prints recall per class and macro-F1. Run alone.
"""
import csv
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from babyface.config import FaceDetection
from babyface.faces.framing import Framing, decode_framed
from babyface.inference.classifier import Classifier
from babyface.metrics import macro_f1
from babyface.run import RunFolder

CV = Path(sys.argv[1])
CLASSES = ["happy", "neutral", "sad"]
folds = {}
with open(CV / "folds.csv") as h:
    for r in csv.DictReader(h):
        folds.setdefault(int(r["fold"]), []).append(r)
root = Path(__file__).resolve().parents[2]  # folds.csv names files relative to the folder holding the repository

def fit_bias(logits_by_source, labels_by_source, steps=300):
    b = torch.zeros(3, requires_grad=True)
    opt = torch.optim.Adam([b], lr=0.05)
    for _ in range(steps):
        loss = 0
        for s in logits_by_source:
            lg, lb = logits_by_source[s], labels_by_source[s]
            # class-balanced within source: mean over classes of mean NLL of that class
            per = torch.nn.functional.cross_entropy(lg + b, lb, reduction="none")
            cls = [per[lb == c].mean() for c in lb.unique()]
            loss = loss + torch.stack(cls).mean()
        opt.zero_grad()
        (loss / len(logits_by_source)).backward()
        opt.step()
    return b.detach()

results = []
for fold in sorted(k for k in folds if k):
    held = folds[fold]
    paths = [root / r["file"] for r in held]
    labels = np.array([CLASSES.index(r["label"]) for r in held])
    seeds = sorted((CV / f"fold{fold}").glob("seed*"))
    probe = Classifier(seeds[0])
    tight = Framing("face", FaceDetection(detector="mtcnn", margin=0.0))
    framed = decode_framed(paths, None, probe.image_size, tight, progress=False)
    y = labels[[paths.index(Path(p)) for p in framed.decoded.paths]]
    per_seed = []
    for seed in seeds:
        clf = Classifier(seed)
        manifest = RunFolder(seed).split_manifest()
        val = manifest.files("val")
        by_src = {}
        for row in val:
            if row.label in CLASSES:
                by_src.setdefault(row.source, []).append(row)
        lg_src, lb_src = {}, {}
        for s, rows in by_src.items():
            vp = [manifest.root / r.file for r in rows]
            dec = decode_framed(vp, None, clf.image_size, Framing("whole"), progress=False).decoded
            lg_src[s] = clf.logits(dec.images) / clf.temperature
            lb_src[s] = torch.tensor([CLASSES.index(r.label) for r in rows])[: len(lg_src[s])]
        bias = fit_bias(lg_src, lb_src)
        lg = clf.logits(framed.decoded.images) / clf.temperature
        per_seed.append((lg, bias))
        for name, b in (("plain", torch.zeros(3)), ("biased", bias)):
            pred = (lg + b).argmax(1).numpy()
            rec = {CLASSES[c]: round(float((pred[y == c] == c).mean()), 3) for c in np.unique(y)}
            f1 = macro_f1(y.tolist(), pred.tolist()) if len(np.unique(y)) > 1 else None
            print(fold, seed.name, name, [round(float(v), 2) for v in b], rec, f1, flush=True)
    for name in ("plain", "biased"):
        p = torch.stack([torch.softmax(lg + (b if name == "biased" else 0), 1) for lg, b in per_seed]).mean(0)
        pred = p.argmax(1).numpy()
        rec = {CLASSES[c]: round(float((pred[y == c] == c).mean()), 3) for c in np.unique(y)}
        print(fold, "ensemble", name, rec, macro_f1(y.tolist(), pred.tolist()) if len(np.unique(y)) > 1 else None, flush=True)
