"""Refining a black-box simulator with hidden randomness: the base, the direct pull-back of the
classifier's weights, and OmniFold's latent weights, on the toy simulators of
genrefine.data.simulators (whose truth is the same simulator at other parameter values).

    python benchmarks/omnifold_demo.py [--sims detector,calorimeter] [--seeds 0,1,2] [--docs docs]

Each (simulator, seed) is one ``genrefine refine --data SIM --base sim:SIM`` run of the quick
preset (100,000 training rows of the truth; 20,000 samples per method scored against fresh
truth, each score with its truth-against-truth floor) with the methods:

- ``rejection``, ``laser``: the direct pull-back ``w(g(z, ε))`` (one noisy draw per latent);
- ``omnifold``, ``rejection-omnifold``, ``hmc-omnifold``, ``laser-omnifold``: OmniFold's latent
  weights ``ν(z)``, weighted, sampled and refined.

Besides the scores, each method's latents are compared with the latent density the base needs
to reproduce the truth, which is known for these simulators (``true_latent``): the largest
error of the per-coordinate mean and standard deviation. Numbers go to
``docs/omnifold/<sim>_seed<s>.json``; ``docs/omnifold.md`` (table, command) and
``docs/figures/omnifold_detector.png`` are rebuilt from all of them.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import time

import numpy as np

from genrefine.checkpoint import atomic_write_text
from genrefine.data.simulators import simulate_truth, true_latent
from genrefine.pipeline import run_refinement

METHODS = "base,rejection,laser,omnifold,rejection-omnifold,hmc-omnifold,laser-omnifold"
KEYS = ("hist_jsd", "marginal_jsd", "energy", "c2st_auc")
N_SAMPLES = 20_000


def latent_errors(z: np.ndarray, weights: np.ndarray | None, sim: str) -> dict:
    """Largest error of the per-coordinate latent mean and standard deviation against the
    latent density that reproduces the truth."""
    mean, std = true_latent(sim)
    w = np.ones(len(z)) if weights is None else weights / weights.sum() * len(z)
    m = (w[:, None] * z).sum(0) / w.sum()
    s = np.sqrt((w[:, None] * (z - m) ** 2).sum(0) / w.sum())
    return {"mean": m.tolist(), "std": s.tolist(), "mean_error": float(np.abs(m - mean).max()),
            "std_error": float(np.abs(s - std).max())}


def run_case(sim: str, seed: int, out_root: str) -> dict:
    from genrefine.api import _as_base
    from genrefine.usercode import load_user_object

    base = _as_base(load_user_object(f"sim:{sim}"))
    t0 = time.perf_counter()
    out = os.path.join(out_root, f"{sim}_seed{seed}")
    res = run_refinement(sim, methods=METHODS, base=base, scoring="suite", seed=seed, n_samples=N_SAMPLES,
                         progress=False, out=out)
    m = res.metrics
    latents = {name: latent_errors(res.latents[name], res.weights.get(name), sim) for name in res.latents}
    diag = m["diagnostics"]
    return {"simulator": sim, "seed": seed, "wall_seconds": time.perf_counter() - t0, "scores": m["scores"],
            "latents": latents, "true_latent": [v.tolist() for v in true_latent(sim)],
            "timings_seconds": m["timings_seconds"], "failed": m["failed"],
            "pullback_spread": diag.get("pullback_spread"), "omnifold": diag.get("omnifold_weights"),
            "run_dir": out,
            "command": f"python benchmarks/omnifold_demo.py --sims {sim} --seeds {seed}"}


def _mean_sd(values: list[float]) -> str:
    v = np.asarray([x for x in values if x is not None], dtype=float)
    if len(v) == 0:
        return "-"
    return f"{v.mean():.4f}" if len(v) == 1 else f"{v.mean():.4f} ± {v.std(ddof=1):.4f}"


def render(docs: str) -> str:
    cases = [json.load(open(p)) for p in sorted(glob.glob(os.path.join(docs, "omnifold", "*_seed*.json")))]
    lines = ["# Black-box simulators: direct pull-back against OmniFold's latent weights", "",
             "Written by `benchmarks/omnifold_demo.py` (each case's command is in its JSON under "
             "`docs/omnifold/`). Quick preset, 100,000 truth rows trained on, 20,000 samples per method; "
             "mean ± standard deviation over seeds. Lower is better for every score (C2ST AUC: closer to 0.5). "
             "`latent mean/std error`: the largest error of the per-coordinate latent mean and standard deviation "
             "against the latent density that reproduces the truth (known for these simulators).", ""]
    for sim in sorted({c["simulator"] for c in cases}):
        group = [c for c in cases if c["simulator"] == sim]
        keys = [k for k in KEYS if k in group[0]["scores"]["base"]]
        seeds = ", ".join(str(c["seed"]) for c in group)
        lines += [f"## {sim} (seeds {seeds}; {np.mean([c['wall_seconds'] for c in group]):.0f} s per run)", "",
                  "| method | " + " | ".join(keys) + " | latent mean error | latent std error |",
                  "|---" * (len(keys) + 3) + "|"]
        for name in group[0]["scores"]:
            row = [_mean_sd([c["scores"][name][k]["value"] for c in group if name in c["scores"]]) for k in keys]
            lat = [_mean_sd([c["latents"][name][k] for c in group if name in c["latents"]])
                   for k in ("mean_error", "std_error")]
            lines.append(f"| {name} | " + " | ".join(row + lat) + " |")
        floors = [_mean_sd([c["scores"]["base"][k]["floor"] for c in group]) for k in keys]
        lines.append("| truth floor | " + " | ".join(floors) + " | 0 | 0 |")
        train = {k: _mean_sd([c["timings_seconds"].get(k) for c in group])
                 for k in ("train_classifier", "train_omnifold", "train_laser_it1", "train_laser-omnifold_it1")}
        lines += ["", "Training seconds (one thread, beside another job): "
                  + ", ".join(f"{k} {v}" for k, v in train.items()) + "."]
        spread = [c["pullback_spread"]["noise_fraction"] for c in group if c.get("pullback_spread")]
        if spread:
            lines += ["", f"Direct pull-back: {_mean_sd(spread)} of the variance of log w lies among "
                          "the hidden noise of one z (pullback_spread.noise_fraction)."]
        lines.append("")
    fig = figure(cases, docs)
    if fig:
        lines += [f"![detector: truth, base, direct pull-back, OmniFold]({os.path.relpath(fig, docs)})", ""]
    text = "\n".join(lines)
    atomic_write_text(os.path.join(docs, "omnifold.md"), text + "\n")
    return text


def figure(cases: list[dict], docs: str) -> str | None:
    """2-D histograms of the detector's truth, base, direct pull-back and OmniFold samples, and
    the first latent coordinate of each against the density that reproduces the truth (from the
    first seed's run directory, when it is still there)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    case = next((c for c in cases if c["simulator"] == "detector" and os.path.isdir(c["run_dir"])), None)
    if case is None:
        return None
    run = case["run_dir"]
    names = ["base", "rejection", "rejection-omnifold"]
    truth = simulate_truth("detector", N_SAMPLES, seed=12345)  # fresh truth, as many rows as each method's
    lo, hi = np.quantile(truth, 0.005, axis=0), np.quantile(truth, 0.995, axis=0)
    fig, axes = plt.subplots(1, 5, figsize=(20, 4))
    for ax, (title, x) in zip(axes, [("truth", truth)] + [(n, np.load(os.path.join(run, "samples", f"{n}.npy")))
                                                          for n in names]):
        ax.hist2d(x[:, 0], x[:, 1], bins=60, range=[[lo[0], hi[0]], [lo[1], hi[1]]], cmap="viridis")
        ax.set_title({"rejection": "direct pull-back (rejection)",
                      "rejection-omnifold": "OmniFold (rejection)"}.get(title, title))
    mean, std = true_latent("detector")
    grid = np.linspace(-3, 3, 200)
    ax = axes[-1]
    for n in names:
        ax.hist(np.load(os.path.join(run, "latents", f"{n}.npy"))[:, 0], bins=60, range=(-3, 3), density=True,
                histtype="step", label=n)
    ax.plot(grid, np.exp(-(grid - mean[0]) ** 2 / (2 * std[0] ** 2)) / (std[0] * np.sqrt(2 * np.pi)), "k--",
            label="latent that reproduces the truth")
    ax.set_title("latent z1")
    ax.legend(fontsize=7)
    path = os.path.join(docs, "figures", "omnifold_detector.png")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sims", default="detector,calorimeter")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--out", default="runs/omnifold")
    ap.add_argument("--docs", default="docs")
    ap.add_argument("--render-only", action="store_true")
    args = ap.parse_args()
    if not args.render_only:
        for sim in args.sims.split(","):
            for seed in (int(s) for s in args.seeds.split(",")):
                rec = run_case(sim, seed, args.out)
                atomic_write_text(os.path.join(args.docs, "omnifold", f"{sim}_seed{seed}.json"),
                                  json.dumps(rec, indent=1, default=float))
                print(f"{sim} seed {seed}: {rec['wall_seconds']:.0f} s", flush=True)
    print(render(args.docs))


if __name__ == "__main__":
    main()
