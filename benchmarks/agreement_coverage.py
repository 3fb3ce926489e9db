"""Do `babyface agree`'s 95% intervals cover the truth? Coverage of the pooled kappa's bootstrap interval (over videos)
and of pingouin's ICC(A,1) interval of each video's share of time in a code, on simulated pairs of coders.

Simulated at the level of codes (cheap, and it isolates the statistics from any model): each video has its own mix of
affect (Dirichlet) and a latent timeline of bouts (geometric lengths, mean 4 epochs); each coder codes every epoch as
the latent code, except that with the video's own error rate (Beta, so some videos are harder for both) a coder
gives another code for a whole short bout of epochs: errors cluster within videos, as real coders' do. The truths are
the population values, measured on one very large simulated corpus: the pooled kappa of all its epochs, and the
ICC(A,1) of its videos' shares. For every simulated study of --videos videos the intervals are computed exactly as
`babyface agree` computes them (``babyface.video.agreement``), and the table reports how often each contains the
truth (it should be near 95%) and the mean width.

    OMP_NUM_THREADS=1 PYTHONPATH=src python benchmarks/agreement_coverage.py               # the table in benchmarks/README.md
    OMP_NUM_THREADS=1 PYTHONPATH=src python benchmarks/agreement_coverage.py --studies 40  # a quick look
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from babyface.video.agreement import Paired, agreement_of, bootstrap_intervals, pooled_agreement, share_icc, shares
from babyface.video.coding import AFFECT_CODES


def latent_timeline(rng: np.random.Generator, epochs: int) -> list[str]:
    mix = rng.dirichlet([3.0, 4.0, 2.0])
    codes: list[str] = []
    while len(codes) < epochs:
        codes += [AFFECT_CODES[rng.choice(3, p=mix)]] * int(rng.geometric(1 / 4))
    return codes[:epochs]


def coder(rng: np.random.Generator, latent: list[str], error_rate: float) -> list[str]:
    """The latent codes with errors in short runs: where an error starts, 1-3 epochs get one other code."""
    codes = list(latent)
    index = 0
    while index < len(codes):
        if rng.random() < error_rate / 2:
            wrong = AFFECT_CODES[rng.choice([i for i, c in enumerate(AFFECT_CODES) if c != latent[index]])]
            run = int(rng.integers(1, 4))
            codes[index:index + run] = [wrong] * len(codes[index:index + run])
            index += run
        else:
            index += 1
    return codes


def simulate_study(rng: np.random.Generator, videos: int, epochs: int) -> list[Paired]:
    pairs = []
    for video in range(videos):
        latent = latent_timeline(rng, epochs)
        error_rate = rng.beta(2, 8)  # mean 0.2, varying by video
        pairs.append(Paired(f"v{video}", coder(rng, latent, error_rate), coder(rng, latent, error_rate)))
    return pairs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--studies", type=int, default=200, help="simulated studies")
    parser.add_argument("--videos", type=int, default=20, help="videos per study")
    parser.add_argument("--epochs", type=int, default=180, help="1-s epochs per video (3-minute episodes)")
    parser.add_argument("--resamples", type=int, default=500, help="bootstrap resamples per study")
    parser.add_argument("--population", type=int, default=5000, help="videos of the corpus the truths are measured on")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    started = time.perf_counter()
    population = simulate_study(rng, args.population, args.epochs)
    true_kappa = pooled_agreement(population, include_uncodable=False).kappa
    true_icc = {code: share_icc(shares(population, code, False)).icc for code in AFFECT_CODES}
    covered = {"kappa": 0, **{code: 0 for code in AFFECT_CODES}}
    widths: dict[str, list[float]] = {key: [] for key in covered}
    for study in range(args.studies):
        pairs = simulate_study(rng, args.videos, args.epochs)
        confusions = [agreement_of(p.video, p.first, p.second, False).confusion for p in pairs]
        kappa_ci, _ = bootstrap_intervals(confusions, args.resamples, seed=study)
        intervals = {"kappa": (kappa_ci, true_kappa)}
        for code in AFFECT_CODES:
            record = share_icc(shares(pairs, code, False))
            intervals[code] = (record.ci if record else None, true_icc[code])
        for key, (ci, truth) in intervals.items():
            if ci:
                covered[key] += ci[0] <= truth <= ci[1]
                widths[key].append(ci[1] - ci[0])
    print(f"{args.studies} studies of {args.videos} videos × {args.epochs} epochs; {args.resamples} bootstrap resamples; "
          f"truths from {args.population} videos; {time.perf_counter() - started:.0f} s\n")
    print("| interval | truth | coverage | mean width |\n|---|---|---|---|")
    print(f"| pooled kappa, bootstrap over videos | {true_kappa:.3f} | {covered['kappa'] / args.studies:.1%} "
          f"| {np.mean(widths['kappa']):.3f} |")
    for code in AFFECT_CODES:
        print(f"| ICC(A,1) of the share of {code} (pingouin, F-based) | {true_icc[code]:.3f} "
              f"| {covered[code] / args.studies:.1%} | {np.mean(widths[code]):.3f} |")


if __name__ == "__main__":
    main()
