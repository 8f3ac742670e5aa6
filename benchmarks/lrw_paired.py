"""latentRS against its base, paired on the same truth points, over many evaluations.

Usage (after ``benchmarks/lrw_table1.py`` has saved the models under runs/lrw/<set>/models):

    python benchmarks/lrw_paired.py --sets swissroll,gaussians25 [--repeats 40] [--n 5000]

The paper's protocol (10 evaluations, each method on its own fresh points) cannot resolve a
gain smaller than the exact EMD's evaluation-to-evaluation spread: on the swiss roll one
n = 5000 evaluation varies by about 0.01 (which arm of the roll holds a few percent more
points), while a useful reweighting gains 0.002-0.003. Here every evaluation scores the base
and latentRS against the same fresh truth points, and the paired differences are averaged
over ``--repeats`` evaluations. Writes docs/lrw/paired_<set>.json with the command.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np
import torch

from genrefine.api import load_generator, load_latent_importance
from genrefine.checkpoint import atomic_write_text
from genrefine.data import load_data
from genrefine.metrics import exact_emd
from genrefine.samplers.rejection import LatentRejectionSampler


def _table1_source(docs: str, name: str) -> str | None:
    """Which teacher w_phi learned from, as recorded by the Table 1 run that saved the models."""
    path = os.path.join(docs, "lrw", f"{name}.json")
    return json.load(open(path))["w_phi"].get("source") if os.path.exists(path) else None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sets", default="swissroll,gaussians25")
    ap.add_argument("--runs", default="runs/lrw")
    ap.add_argument("--repeats", type=int, default=40)
    ap.add_argument("--n", type=int, default=5000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--docs", default="docs")
    args = ap.parse_args()
    for name in args.sets.split(","):
        models = os.path.join(args.runs, name, "models")
        if not os.path.isdir(models):
            sys.exit(f"error: {models} not found; run benchmarks/lrw_table1.py --sets {name} first")
        torch.manual_seed(args.seed)
        g = load_generator(os.path.join(models, "base"))
        w_phi = load_latent_importance(os.path.join(models, "w_phi"))
        rs = LatentRejectionSampler(w_phi.target(g.prior))
        n, r_total = args.n, args.repeats
        truth = load_data(name, n * r_total, seed=7_000_003 + args.seed)  # never the training or Table 1 truth seeds
        with torch.no_grad():
            x_base = g.sample(n * r_total).cpu().numpy()
            x_rs = g.generate(rs.sample(n * r_total)).cpu().numpy()
        pairs = []
        for r in range(r_total):
            sl = slice(r * n, (r + 1) * n)
            pairs.append((exact_emd(truth[sl], x_base[sl]), exact_emd(truth[sl], x_rs[sl])))
            print(f"{name} {r + 1}/{r_total}: base {pairs[-1][0]:.4f} latentRS {pairs[-1][1]:.4f}", flush=True)
        p = np.array(pairs)
        diff = p[:, 1] - p[:, 0]
        se = float(diff.std(ddof=1) / np.sqrt(len(diff)))
        out = {"set": name, "n": n, "repeats": r_total, "base_emd": float(p[:, 0].mean()),
               "latentrs_emd": float(p[:, 1].mean()), "paired_difference": float(diff.mean()),
               "paired_difference_se": se, "latentrs_lower_in": int((diff < 0).sum()),
               "median_difference": float(np.median(diff)), "values": p.tolist(),
               "w_phi_source": _table1_source(args.docs, name),
               "command": ("python benchmarks/lrw_paired.py " + " ".join(sys.argv[1:])).strip()}
        os.makedirs(os.path.join(args.docs, "lrw"), exist_ok=True)
        atomic_write_text(os.path.join(args.docs, "lrw", f"paired_{name}.json"), json.dumps(out, indent=2))
        print(f"{name}: base {out['base_emd']:.4f}, latentRS {out['latentrs_emd']:.4f}, paired difference "
              f"{out['paired_difference']:+.4f} ± {se:.4f} (lower in {out['latentrs_lower_in']} of {r_total})", flush=True)


if __name__ == "__main__":
    main()
