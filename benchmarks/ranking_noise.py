"""How often the run's ranking picks the method that is best on plenty of fresh truth, with the
energy distance on one block of sample rows against the mean over disjoint blocks.

    python benchmarks/ranking_noise.py [--cases modes10,ring] [--seeds 0,1,2] [--draws 30]

Each case is a user's generator that misses the data (built here, handed over with
``genrefine.compare``, 5000 data rows, so 500 held-out truth rows per half, 2000 samples per
method). The report's samples of every method are then scored ``draws`` times against 500
fresh truth rows, as the run scores them: the energy distance on one block of 500 sample
rows, or the mean over the disjoint blocks (:data:`genrefine.metrics.suite.ENERGY_BLOCKS` at
most). The reference is each method's energy against 20,000 fresh truth rows. Writes
``docs/ranking_noise.json`` and ``docs/ranking_noise.md``: how often each rule picks the
reference's best method, and the mean excess of the picked method's reference energy over the
best's (regret).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np
import torch

import genrefine
from genrefine.checkpoint import atomic_write_text
from genrefine.metrics import energy_distance
from genrefine.metrics.suite import ENERGY_BLOCKS

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
METHODS = ["rejection", "sir-dctr", "hmc", "laser", "laser-flow"]
TRUTH_ROWS = 500


class ModeGen(torch.nn.Module):
    """Three 10-D modes drawn in equal shares (z_0 cut at the prior's terciles, a smooth step)
    where the data hold 0.70 / 0.27 / 0.03."""

    def __init__(self, centres: np.ndarray, scale: float) -> None:
        super().__init__()
        self.register_buffer("mu", torch.as_tensor(centres, dtype=torch.float32))
        self.register_buffer("cuts", torch.tensor([-0.4307, 0.4307]))
        self.scale = scale

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        step = torch.sigmoid(25.0 * (z[:, :1] - self.cuts))
        centre = self.mu[0] + (step.unsqueeze(-1) * (self.mu[1:] - self.mu[:-1])).sum(1)
        return centre + self.scale * z[:, 1:]


def modes10_case():
    centres = np.random.default_rng(123).normal(0.0, 2.5, size=(3, 10))
    share = np.array([0.70, 0.27, 0.03])

    def truth(n, rng):
        k = rng.choice(3, size=n, p=share)
        return (centres[k] + 0.5 * rng.standard_normal((n, 10))).astype(np.float32)
    return genrefine.as_generator(ModeGen(centres, 0.5), latent_dim=11), truth


def ring_case():
    """An annulus (radius 2, width 0.25) and a linear generator that fills its hole."""
    def truth(n, rng):
        th, r = rng.uniform(0, 2 * np.pi, n), rng.normal(2.0, 0.25, n)
        return np.stack([r * np.cos(th), r * np.sin(th)], 1).astype(np.float32)
    net = torch.nn.Linear(2, 2)
    with torch.no_grad():
        net.weight.copy_(1.5 * torch.eye(2))
        net.bias.zero_()
    return genrefine.as_generator(net, latent_dim=2), truth


CASES = {"modes10": modes10_case, "ring": ring_case}


def block_energy(truth: np.ndarray, sample: np.ndarray, blocks: int, rng: np.random.Generator) -> float:
    """The run's energy of ``sample`` against ``truth``: the mean over up to ``blocks`` disjoint
    blocks of ``len(truth)`` sample rows (one block: a single draw of them)."""
    n = len(truth)
    k = max(1, min(blocks, len(sample) // n))
    js = rng.choice(len(sample), k * n, replace=False).reshape(k, n)
    return float(np.mean([energy_distance(truth, sample[j], mm=True) for j in js]))


def study(case: str, seed: int, draws: int, methods: list[str]) -> dict:
    gen, truth = CASES[case]()
    data = truth(5000, np.random.default_rng(seed))
    t0 = time.perf_counter()
    report = genrefine.compare(gen, data, methods=methods, n_samples=2000, seed=seed, progress=False)
    seconds = time.perf_counter() - t0
    samples = {m: np.asarray(x, dtype=np.float64) for m, x in report.samples.items() if m in report.generators}
    big = truth(20_000, np.random.default_rng(10_000 + seed))
    reference = {m: energy_distance(big, x, mm=True) for m, x in samples.items()}
    best = min(reference, key=reference.get)
    rules = {"one block": 1, f"mean of up to {ENERGY_BLOCKS} blocks": ENERGY_BLOCKS}
    picks = {r: [] for r in rules}
    rng = np.random.default_rng(seed)
    for d in range(draws):
        t = truth(TRUTH_ROWS, np.random.default_rng(20_000 + 100 * seed + d))
        for rule, blocks in rules.items():
            values = {m: block_energy(t, x, blocks, rng) for m, x in samples.items()}
            picks[rule].append(min(values, key=values.get))
    out = {"case": case, "seed": seed, "seconds_compare": seconds, "reference": reference, "best": best,
           "recommended_by_run": report.recommended, "rules": {}}
    for rule, got in picks.items():
        out["rules"][rule] = {"hit_rate": float(np.mean([g == best for g in got])),
                              "regret": float(np.mean([reference[g] - reference[best] for g in got])),
                              "picks": {m: got.count(m) for m in sorted(set(got))}}
    print(json.dumps(out), flush=True)
    return out


def render(rows: list[dict]) -> str:
    rules = list(rows[0]["rules"])
    lines = ["# Ranking noise: one block of sample rows against a mean over blocks", "",
             "Written by `benchmarks/ranking_noise.py` (command in `docs/ranking_noise.json`). Per case and seed: "
             "`genrefine.compare` on 5000 data rows (500 truth rows per half, 2000 samples per method); then the "
             "report's samples scored against 500 fresh truth rows per draw with each rule. *Hit*: the rule picked "
             "the method best against 20,000 fresh truth rows; *regret*: the picked method's excess energy over "
             "that best, mean over draws.", "",
             "| case | seed | best on 20,000 rows | run's pick | " + " | ".join(f"{r}: hit, regret" for r in rules) + " |",
             "|---|---|---|---|" + "---|" * len(rules)]
    for r in rows:
        cells = [f"{100 * r['rules'][k]['hit_rate']:.0f}%, {r['rules'][k]['regret']:.4f}" for k in rules]
        lines.append(f"| {r['case']} | {r['seed']} | {r['best']} | {r['recommended_by_run']} | " + " | ".join(cells) + " |")
    means = [f"{100 * np.mean([r['rules'][k]['hit_rate'] for r in rows]):.0f}%, "
             f"{np.mean([r['rules'][k]['regret'] for r in rows]):.4f}" for k in rules]
    lines.append("| all | | | | " + " | ".join(means) + " |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", default=",".join(CASES))
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--draws", type=int, default=30)
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--docs", default=os.path.join(ROOT, "docs"))
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    rows = [study(c, int(s), args.draws, args.methods.split(","))
            for c in args.cases.split(",") for s in args.seeds.split(",")]
    doc = {"command": "python benchmarks/ranking_noise.py " + " ".join(argv if argv is not None else sys.argv[1:]),
           "rows": rows}
    os.makedirs(args.docs, exist_ok=True)
    atomic_write_text(os.path.join(args.docs, "ranking_noise.json"), json.dumps(doc, indent=2))
    atomic_write_text(os.path.join(args.docs, "ranking_noise.md"), render(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
