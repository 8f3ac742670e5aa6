"""How w_φ's check scores a teacher: weighted pool against accepted points.

    python benchmarks/lrw_check_bias.py [--run runs/lrw] [--sets swissroll,gaussians25] [--parts 12]

On the saved base of a ``lrw_table1.py`` run, trains the quick preset's teacher candidates
(read from the preset: classifier ratios of the plain and the blurred samples, s = 0.1, each
also calibrated on 40 k-means cells, and w = 1 calibrated) on the first 65k training rows against 100k generated
points, then scores each, paired with the base, on ``--parts`` fresh truth parts of 2000 points
in two ways:

* *weighted*: the EMD between the truth part and a pool of 2000 generated points weighted by
  ``min(w, m)`` (how the check scored until 2026-12-04);
* *accepted*: the EMD between the truth part and the first 2000 points that latent rejection
  accepts from a pool of ``2m`` x 2000 (``_accepted_emd``, how it scores now, and what latentRS
  delivers).

The weighted pool's effective sample size ``(Σw)²/Σw²`` is below 2000 for a non-flat ``w``, and the
EMD between finite samples grows as they shrink, so the weighted score understates every gain.
The bias alone is measured first, with no generator: a truth part against more truth points
given random weights independent of position (Gamma with shape 4 and 1.5, so an effective sample
size of about 0.8 and 0.6), which changes nothing in the distribution; the weighted and the
accepted EMD are compared with the plain EMD of 2000 unweighted truth points.
Writes docs/lrw/check_bias.json (each set with the command that made it).
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np
import torch
from torch import nn

from genrefine.api import load_generator
from genrefine.checkpoint import atomic_write_text
from genrefine.data import load_data
from genrefine.metrics import exact_emd
from genrefine.presets import get_preset
from genrefine.samplers.base import effective_sample_size
from genrefine.weights.latent_importance import (CellCalibrated, KMeansCells, SmoothedRatio, _accepted_emd,
                                                 pool_factor)


class Flat(nn.Module):
    def forward(self, x):
        return torch.ones(len(x), device=x.device)


def weighted_emd(x_real: torch.Tensor, pool: torch.Tensor, w: torch.Tensor) -> tuple[float, float]:
    """The old check's score: the EMD between ``x_real`` (n points) and the first n pool points
    weighted by ``w``, with the effective sample size fraction of those weights."""
    n = len(x_real)
    wa = w[:n].double()
    return (exact_emd(x_real.numpy(), pool[:n].numpy(), weights_y=(wa / wa.sum()).numpy()),
            effective_sample_size(wa))


def noise_only(name: str, parts: int, n: int = 2000, m: float = 3.0) -> dict:
    """The weighted and the accepted EMD minus the unweighted one, for weights that change nothing."""
    k = pool_factor(m)
    t = torch.as_tensor(load_data(name, (1 + k) * n * parts, seed=5)).float()
    rng = np.random.default_rng(0)
    out = {}
    for shape in (4.0, 1.5):
        rows = []
        for p in range(parts):
            blk = t[p * (1 + k) * n:(p + 1) * (1 + k) * n]
            xt, pool = blk[:n], blk[n:]
            w = torch.as_tensor(rng.gamma(shape, 1 / shape, len(pool))).clamp(max=m)
            plain = exact_emd(xt.numpy(), pool[:n].numpy())
            emd_w, ess = weighted_emd(xt, pool, w)
            rows.append((emd_w - plain, _accepted_emd(xt, pool, w, m) - plain, ess))
        r = np.array(rows)
        se = r.std(0, ddof=1) / np.sqrt(parts)
        out[f"gamma shape {shape:g}"] = {"ess_fraction": float(r[:, 2].mean()),
                                         "weighted_minus_plain": {"mean": float(r[:, 0].mean()), "se": float(se[0])},
                                         "accepted_minus_plain": {"mean": float(r[:, 1].mean()), "se": float(se[1])}}
    return out


def run_set(name: str, run: str, parts: int, n: int = 2000) -> dict:
    cfg = get_preset("quick", name, "wgan-gp")
    fit, m = cfg["lrw"]["w_phi"]["fit"], float(cfg["lrw"]["w_phi"]["m"])
    torch.manual_seed(0)
    g = load_generator(os.path.join(run, name, "models", "base")).freeze()
    x = torch.as_tensor(load_data(name, cfg["n_train"], seed=0)).float()[:65_000]
    _, xp = g.sample_with_latents(int(fit.get("pool_size", 100_000)))
    cells = KMeansCells(int(fit["calibrate"]), x)
    cands = {"w = 1, calibrated": CellCalibrated(Flat(), cells, m).fit(x, xp)}
    for s in fit["smoothed_ratio"]:  # the preset's classifier ratios, each plain and calibrated
        label = "plain ratio" if s == 0 else f"blurred ratio s={s:g}"
        ratio = SmoothedRatio(2).fit(x, xp, s, epochs=int(fit.get("smoothed_epochs", 20)), progress=False)
        cands[label] = ratio
        cands[label.split(" s=")[0] + ", calibrated"] = CellCalibrated(ratio, cells, m).fit(x, xp)
    truth = torch.as_tensor(load_data(name, parts * n, seed=777)).float()
    res = {k: {"weighted": [], "accepted": [], "ess": []} for k in cands}
    for p in range(parts):
        xt = truth[p * n:(p + 1) * n]
        _, pool = g.sample_with_latents(pool_factor(m) * n)
        base_w = exact_emd(xt.numpy(), pool[:n].numpy())
        base_a = _accepted_emd(xt, pool, torch.ones(len(pool)), m)
        for k, c in cands.items():
            with torch.no_grad():
                w = c(pool).clamp(max=m).double()
            emd_w, ess = weighted_emd(xt, pool, w)
            res[k]["weighted"].append(base_w - emd_w)
            res[k]["accepted"].append(base_a - _accepted_emd(xt, pool, w, m))
            res[k]["ess"].append(ess)
        print(f"{name}: part {p + 1}/{parts}", file=sys.stderr, flush=True)
    out = {}
    for k, r in res.items():
        row = {"ess_fraction": float(np.mean(r["ess"]))}
        for key in ("weighted", "accepted"):
            v = np.array(r[key])
            row[f"gain_{key}"] = {"mean": float(v.mean()), "se": float(v.std(ddof=1) / np.sqrt(len(v))),
                                  "parts_better": int((v > 0).sum())}
        out[k] = row
    return {"parts": parts, "n": n, "m": m, "noise_only": noise_only(name, parts, n, m), "candidates": out}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--run", default="runs/lrw")
    ap.add_argument("--sets", default="swissroll,gaussians25")
    ap.add_argument("--parts", type=int, default=12)
    ap.add_argument("--docs", default="docs")
    args = ap.parse_args()
    path = os.path.join(args.docs, "lrw", "check_bias.json")
    result = {"sets": {}}
    if os.path.exists(path):  # sets run separately are kept, each with its own command
        with open(path) as f:
            result = json.load(f)
    cmd = "python benchmarks/lrw_check_bias.py " + " ".join(sys.argv[1:])
    for name in args.sets.split(","):
        result["sets"][name] = {"command": cmd, **run_set(name, args.run, args.parts)}
        for k, r in result["sets"][name]["noise_only"].items():
            a, b = r["weighted_minus_plain"], r["accepted_minus_plain"]
            print(f"{name:12s} {'random weights, ' + k:28s} ESS {r['ess_fraction']:.2f}  weighted - plain "
                  f"{a['mean']:+.4f} ± {a['se']:.4f}  accepted - plain {b['mean']:+.4f} ± {b['se']:.4f}")
        for k, r in result["sets"][name]["candidates"].items():
            a, b = r["gain_weighted"], r["gain_accepted"]
            print(f"{name:12s} {k:28s} ESS {r['ess_fraction']:.2f}  weighted {a['mean']:+.4f} ± {a['se']:.4f}"
                  f"  accepted {b['mean']:+.4f} ± {b['se']:.4f}")
    os.makedirs(os.path.join(args.docs, "lrw"), exist_ok=True)
    atomic_write_text(path, json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
