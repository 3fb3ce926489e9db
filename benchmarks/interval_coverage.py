"""Are babyface's 95% intervals honest when images share identities? Coverage of the image-level and the group-level
(cluster) bootstrap interval of accuracy, on simulated test sets.

Simulated at the level of predictions (cheap, CPU-light, and it isolates the statistics from any model): a test set
holds G infants drawn from a population; infant i contributes 1 + Poisson(m - 1) images and is recognised with its own
probability p_i = sigmoid(logit(a) + s * z_i), z_i ~ N(0, 1), so the images of one infant are right or wrong together
more often than chance (s = 0: independent images). Each image gets a class (each infant has its own mix of happy,
neutral and sad) and a wrong prediction is one of the other classes. The true accuracy, the expected share of right
images in a test set from this population, is E[p_i] (infants' image counts do not depend on p_i), computed by
Gauss-Hermite quadrature.

For every simulated test set both intervals are computed exactly as ``babyface evaluate`` computes them
(``babyface.metrics``: the stratified image bootstrap's percentile interval, and the cluster bootstrap's
logit-scale t interval, 1,000 resamples each) and the table reports how often each contains the true accuracy (it
should be 95%), with the mean interval widths; a third column shows the plain percentile interval of the same cluster
bootstrap, to show why babyface does not use it.

    OMP_NUM_THREADS=1 PYTHONPATH=src python benchmarks/interval_coverage.py                 # the table in README.md
    OMP_NUM_THREADS=1 PYTHONPATH=src python benchmarks/interval_coverage.py --sets 200 --groups 30   # a quick look
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass

import numpy as np

from babyface.metrics import bootstrap_scores, cluster_bootstrap_scores, group_interval, percentile_interval


@dataclass(frozen=True)
class Population:
    accuracy: float = 0.8  # the accuracy of an average infant (before the identity effect)
    spread: float = 1.5  # s: standard deviation of the identity effect on the logit scale (0 = independent images)
    images: float = 10.0  # m: mean images per infant

    def true_accuracy(self) -> float:
        """E[sigmoid(logit(a) + s z)], z ~ N(0, 1), by 80-point Gauss-Hermite quadrature."""
        nodes, weights = np.polynomial.hermite_e.hermegauss(80)
        logit = np.log(self.accuracy / (1 - self.accuracy))
        return float(np.sum(weights / (1 + np.exp(-(logit + self.spread * nodes)))) / np.sqrt(2 * np.pi))


def simulate_test_set(population: Population, n_groups: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(true class, predicted class, group) of every image of one simulated test set."""
    sizes = 1 + rng.poisson(population.images - 1, size=n_groups)
    logit = np.log(population.accuracy / (1 - population.accuracy))
    p_right = 1 / (1 + np.exp(-(logit + population.spread * rng.standard_normal(n_groups))))
    groups = np.repeat(np.arange(n_groups), sizes)
    mixes = rng.dirichlet(np.ones(3), size=n_groups)  # each infant's own share of happy, neutral, sad
    true = (rng.random(len(groups))[:, None] > np.cumsum(mixes[groups], axis=1)).sum(1).clip(0, 2)
    right = rng.random(len(groups)) < p_right[groups]
    pred = np.where(right, true, (true + rng.integers(1, 3, len(groups))) % 3)
    return true, pred, groups


def coverage(population: Population, n_groups: int, n_sets: int = 200, resamples: int = 1000, seed: int = 0) -> dict:
    """How often each 95% interval contains the true accuracy over ``n_sets`` simulated test sets."""
    rng = np.random.default_rng(seed)
    truth = population.true_accuracy()
    kinds = ("image", "group", "plain")
    hits = dict.fromkeys(kinds, 0)
    widths: dict[str, list[float]] = {kind: [] for kind in kinds}
    images = []
    for index in range(n_sets):
        true, pred, groups = simulate_test_set(population, n_groups, rng)
        images.append(len(true))
        clustered = cluster_bootstrap_scores(true, pred, groups.astype(str), 3, resamples, seed=index)["accuracy"]
        intervals = {
            "image": percentile_interval(bootstrap_scores(true, pred, 3, resamples, seed=index)["accuracy"]),
            "group": group_interval(clustered, float(np.mean(true == pred)), n_groups, len(true)),
            "plain": percentile_interval(clustered),
        }
        for kind, (low, high) in intervals.items():
            hits[kind] += low <= truth <= high
            widths[kind].append(high - low)
    return {"groups": n_groups, "sets": n_sets, "mean_images": float(np.mean(images)), "true_accuracy": truth,
            "spread": population.spread,
            **{f"{kind}_coverage": hits[kind] / n_sets for kind in kinds},
            **{f"{kind}_width": float(np.mean(widths[kind])) for kind in kinds}}


def format_table(rows: list[dict]) -> str:
    lines = ["| infants (groups) | images per set (mean) | identity spread s | true accuracy | image-level: coverage "
             "(mean width) | group-level (babyface) | group-level, plain percentile |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        cells = [f"{r[kind + '_coverage']:.1%} ({r[kind + '_width']:.3f})" for kind in ("image", "group", "plain")]
        lines.append(f"| {r['groups']} | {r['mean_images']:.0f} | {r['spread']:g} | {r['true_accuracy']:.3f} | "
                     + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sets", type=int, default=1000, help="simulated test sets per row (default: 1000)")
    parser.add_argument("--groups", default="8,13,30,100", help="infants per test set, comma-separated (default: 8,13,30,100)")
    parser.add_argument("--spreads", default="1.5,0.5,0", help="identity effects s, comma-separated (default: 1.5,0.5,0)")
    parser.add_argument("--images", type=float, default=10.0, help="mean images per infant (default: 10)")
    parser.add_argument("--accuracy", type=float, default=0.8, help="accuracy of an average infant (default: 0.8)")
    parser.add_argument("--resamples", type=int, default=1000, help="bootstrap resamples per interval (default: 1000)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    args = parser.parse_args()
    start = time.perf_counter()
    rows = [coverage(Population(args.accuracy, float(spread), args.images), int(groups), args.sets, args.resamples, args.seed)
            for spread in args.spreads.split(",") for groups in args.groups.split(",")]
    print(format_table(rows))
    print(f"\n{args.sets} simulated test sets per row, {args.resamples} resamples per interval; {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
