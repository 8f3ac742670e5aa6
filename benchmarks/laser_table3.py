"""Reproduce LaSeR Table 3 (EMD and JSD of base, HMC, LaSeR and DCTR on three 2-D sets) with
the quick preset, plus the rejection and refiner-flow methods and an unseen set.

    python benchmarks/laser_table3.py [--sets gaussians4,double_donut,rings3,checkerboard] [--out runs/table3]

Writes docs/laser_table3.json (every number, with the command), docs/laser_table3.md (the
table with the paper's values beside ours, and the issue's quality checks) and
docs/figures/<set>.png. ``checkerboard`` is not a built-in set: it is written to a .npy file
and run through the user-file path, as data the project has never seen.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time

import numpy as np

from genrefine.checkpoint import atomic_write_text
from genrefine.pipeline import run_refinement

# LaSeR Table 3: value (error) in the paper's convention, 2M points per sample.
PAPER = {
    "gaussians4": {"base": (0.28, 0.66), "hmc": (0.22, 0.12), "laser": (0.21, 0.24), "dctr": (0.09, 0.09), "err": (0.02, 0.04)},
    "double_donut": {"base": (0.23, 0.27), "hmc": (0.06, 0.07), "laser": (0.09, 0.09), "dctr": (0.11, 0.05), "err": (0.02, 0.04)},
    "rings3": {"base": (0.067, 0.21), "hmc": (0.137, 0.07), "laser": (0.047, 0.08), "dctr": (0.037, 0.04), "err": (0.006, 0.02)},
}
METHODS = ["base", "dctr", "rejection", "hmc", "laser", "laser-flow"]


def checkerboard(n: int, seed: int) -> np.ndarray:
    """A 4x4 checkerboard on [-4, 4]^2 (8 filled squares): separated modes with sharp edges."""
    rng = np.random.default_rng(seed)
    cells = np.array([(i, j) for i in range(4) for j in range(4) if (i + j) % 2 == 0])
    c = cells[rng.integers(len(cells), size=n)]
    return ((c + rng.uniform(size=(n, 2))) * 2 - 4).astype(np.float32)


def reduction(scores: dict, metric: str, method: str) -> float:
    b, m = scores["base"][metric]["value"], scores[method][metric]["value"]
    return (b - m) / b


def checks(scores: dict, conv: str = "prob") -> dict:
    """The issue's quality bars: DCTR cuts JSD >= 40%; HMC >= 90% and LaSeR >= 80% of DCTR's
    JSD reduction; HMC and LaSeR >= 50% of DCTR's EMD reduction (in convention ``conv``)."""
    out = {}
    j, e = f"jsd_{conv}", f"emd_{conv}"
    j_dctr = scores["base"][j]["value"] - scores["dctr"][j]["value"]
    e_dctr = scores["base"][e]["value"] - scores["dctr"][e]["value"]
    out["dctr_jsd_cut"] = reduction(scores, j, "dctr")
    for m in ("hmc", "laser", "laser-flow", "rejection"):
        if m in scores:
            out[f"{m}_share_of_dctr_jsd_cut"] = (scores["base"][j]["value"] - scores[m][j]["value"]) / j_dctr
            out[f"{m}_share_of_dctr_emd_cut"] = (scores["base"][e]["value"] - scores[m][e]["value"]) / e_dctr
    return out


def fmt(s: dict) -> str:
    return f"{s['value']:.3g}"


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sets", default="gaussians4,double_donut,rings3,checkerboard")
    ap.add_argument("--out", default="runs/table3")
    ap.add_argument("--n-samples", type=int, default=200_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--docs", default="docs")
    args = ap.parse_args()
    results = {}
    for name in args.sets.split(","):
        data, extra = name, {}
        if name == "checkerboard":
            os.makedirs(args.out, exist_ok=True)
            data = os.path.join(args.out, "checkerboard.npy")
            # 100k training rows like the built-in sets, and truth samples as large as theirs: with
            # the default 20% hold-out the truth had 12.5k rows, whose own noise dominated the JSD
            n_rows = 100_000 + 2 * args.n_samples
            np.save(data, checkerboard(n_rows, seed=args.seed))
            extra = {"holdout": 2 * args.n_samples / n_rows}
        t0 = time.perf_counter()
        res = run_refinement(data, methods=METHODS, preset="quick", seed=args.seed, n_samples=args.n_samples,
                             out=os.path.join(args.out, name), progress=False, **extra)
        wall = time.perf_counter() - t0
        m = res.metrics
        results[name] = {"scores": m["scores"], "timings_seconds": m["timings_seconds"], "wall_seconds": wall,
                         "samples_per_second": m["samples_per_second"], "checks": checks(m["scores"]), "checks_paper_convention": checks(m["scores"], "paper"),
                         "n_samples": m["n_samples"], "n_train": m["n_train"], "n_truth": m["n_truth"],
                         "hmc": {k: m["diagnostics"]["hmc"].get(k) for k in ("acceptance_rate", "step_size", "divergences", "seconds")},
                         "rejection": {k: m["diagnostics"]["rejection"].get(k) for k in ("acceptance_rate", "bound")}}
        os.makedirs(os.path.join(args.docs, "figures"), exist_ok=True)
        shutil.copy(os.path.join(args.out, name, "figures", "refinement.png"), os.path.join(args.docs, "figures", f"{name}.png"))
        results[name]["command"] = ("python benchmarks/laser_table3.py " + " ".join(sys.argv[1:])).strip()
        os.makedirs(os.path.join(args.docs, "table3"), exist_ok=True)
        atomic_write_text(os.path.join(args.docs, "table3", f"{name}.json"), json.dumps(results[name], indent=2))
        print(f"{name}: {wall:.0f} s; checks {json.dumps(results[name]['checks'])}", flush=True)
    # merge every set measured so far (sets may be run by separate processes)
    results = {}
    for name in ["gaussians4", "double_donut", "rings3", "checkerboard"]:
        f = os.path.join(args.docs, "table3", f"{name}.json")
        if os.path.exists(f):
            with open(f) as fh:
                results[name] = json.load(fh)
    commands = sorted({r["command"] for r in results.values()})
    doc = {"command": " ; ".join(commands), "preset": "quick", "seed": args.seed, "results": results}
    text = render(doc)  # before anything is written, so a rendering error leaves the docs as they were
    atomic_write_text(os.path.join(args.docs, "laser_table3.json"), json.dumps(doc, indent=2))
    atomic_write_text(os.path.join(args.docs, "laser_table3.md"), text)
    return 0


def render(doc: dict) -> str:
    lines = ["# LaSeR Table 3, reproduced (quick preset)\n", f"Command: `{doc['command']}` (seed {doc['seed']}, one torch thread on a 2-core machine, with a second benchmark process on the other core).\n",
             "Scores in the paper's convention (100x100 `density=True` histograms, ground distance / its maximum); "
             "our samples have 200,000 points where the paper used 2M, so our truth floor (the error in parentheses, "
             "an independent truth sample scored the same way) is higher than the paper's.\n"]
    for name, r in doc["results"].items():
        s = r["scores"]
        lines.append(f"\n## {name}\n")
        lines.append("| method | EMD (ours) | JSD (ours) | EMD (paper) | JSD (paper) | exact EMD (n=%d) | energy |" % s["base"]["exact_emd"]["n"])
        lines.append("|---|---|---|---|---|---|---|")
        p = PAPER.get(name, {})
        for m in METHODS:
            if m not in s:
                continue
            pe = f"{p[m][0]} ({p['err'][0]})" if m in p else "-"
            pj = f"{p[m][1]} ({p['err'][1]})" if m in p else "-"
            lines.append(f"| {m} | {fmt(s[m]['emd_paper'])} ({s[m]['emd_paper']['floor']:.2g}) | {fmt(s[m]['jsd_paper'])} ({s[m]['jsd_paper']['floor']:.2g}) "
                         f"| {pe} | {pj} | {fmt(s[m]['exact_emd'])} ({s[m]['exact_emd']['floor']:.2g}) | {s[m]['energy']['value']:.2g} ({s[m]['energy']['floor']:.2g}) |")
        lines.append("")
        lines.append("In the probability convention (40x40 bins, EMD in data units; floor in parentheses): "
                     + ", ".join(f"{m} JSD {s[m]['jsd_prob']['value']:.3g} ({s[m]['jsd_prob']['floor']:.2g}) EMD {s[m]['emd_prob']['value']:.3g} ({s[m]['emd_prob']['floor']:.2g})" for m in METHODS if m in s) + ".")
        c = r["checks"]
        lines.append("")
        lines.append(f"Quality bars, probability convention: DCTR cuts the base JSD by {100 * c['dctr_jsd_cut']:.0f}% (bar: 40%). Share of DCTR's reduction reached: "
                     + ", ".join(f"{m} JSD {100 * c[f'{m}_share_of_dctr_jsd_cut']:.0f}% / EMD {100 * c[f'{m}_share_of_dctr_emd_cut']:.0f}%"
                                 for m in ("hmc", "laser", "laser-flow", "rejection") if f"{m}_share_of_dctr_jsd_cut" in c)
                     + " (bars: HMC 90%, LaSeR 80% of the JSD cut; 50% of the EMD cut).")
        sp = r["samples_per_second"]
        lines.append(f"\nWall time {r['wall_seconds']:.0f} s for all six methods (bar: 600 s). Sampling: base {sp['base']:,.0f}/s, "
                     f"LaSeR {sp.get('laser', float('nan')):,.0f}/s = {sp.get('laser_over_base', float('nan')):.2f}x the base (bar: 0.7x).")
        lines.append(f"\n![{name}](figures/{name}.png)\n")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
