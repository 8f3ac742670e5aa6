"""Reproduce Table 1 of the latent reweighting paper (Issenhuth et al.): EMD of a WGAN-GP base
and of latentRS, latentGA, latentRS+GA, DRS, MH-GAN, SIR and DOT on the swiss roll and the 25
Gaussians, with the inference cost of every method and a precision-against-time figure (the
paper's Fig. 3), using the quick preset.

    python benchmarks/lrw_table1.py [--sets swissroll,gaussians25] [--out runs/lrw]

Every method is scored on the same truth slices, so beside each mean the table gives the
change from the base *paired* on those slices (mean and 97% interval of the per-evaluation
differences). Twenty evaluations, not the paper's ten: one exact EMD of the swiss roll at
n = 5000 varies by about 0.01 between evaluations (which arm of the roll holds a few percent
more points), while the gains of the reweighting methods are 0.002-0.005; with ten
evaluations a real gain of 0.003 shows in the mean only about four times in five
(docs/latent_reweighting.md, "Status").

Writes docs/lrw_table1.json (every number, with the command), docs/lrw_table1.md (the tables
with the paper's values beside ours), docs/lrw/<set>.json and docs/figures/lrw_<set>.png,
docs/figures/lrw_precision_time.png.
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
from genrefine.metrics.precision_recall import mean_interval
from genrefine.pipeline import run_refinement

# Table 1 of the paper: EMD ± 97% interval (n not stated; see docs/latent_reweighting.md).
PAPER = {
    "swissroll": {"base": "0.030 ± 0.002", "drs": "0.036 ± 0.004", "sir": "0.037 ± 0.003", "dot": "0.029 ± 0.003",
                  "latentrs": "0.025 ± 0.002"},
    "gaussians25": {"base": "0.044 ± 0.001", "drs": "0.038 ± 0.002", "sir": "0.041 ± 0.001", "dot": "0.035 ± 0.002",
                    "latentrs": "0.036 ± 0.001"},
}
METHODS = ["base", "latentrs", "latentga", "latentrsga", "drs", "mhgan", "sir", "dot", "drs-dctr", "mhgan-dctr",
           "sir-dctr"]
LABELS = {"base": "WGAN-GP", "latentrs": "latentRS", "latentga": "latentGA", "latentrsga": "latentRS+GA", "drs": "DRS",
          "mhgan": "MH-GAN", "sir": "SIR", "dot": "DOT", "drs-dctr": "DRS (DCTR ratios)",
          "mhgan-dctr": "MH-GAN (DCTR ratios)", "sir-dctr": "SIR (DCTR ratios)"}


def pm(d: dict | None, digits: int = 4) -> str:
    return "-" if d is None else f"{d['mean']:.{digits}f} ± {d['interval']:.{digits}f}"


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sets", default="swissroll,gaussians25")
    ap.add_argument("--out", default="runs/lrw")
    ap.add_argument("--n-samples", type=int, default=None, help="samples per method (default: eval-n x repeats)")
    ap.add_argument("--eval-n", type=int, default=5000)
    ap.add_argument("--repeats", type=int, default=20,
                    help="evaluations per method (the paper: 10; see the module docstring for why 20)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--docs", default="docs")
    ap.add_argument("--render-only", action="store_true", help="rewrite the docs from docs/lrw/*.json")
    args = ap.parse_args()
    n_samples = args.n_samples or args.eval_n * args.repeats
    for name in ([] if args.render_only else args.sets.split(",")):
        t0 = time.perf_counter()
        res = run_refinement(name, methods=METHODS, preset="quick", seed=args.seed, n_samples=n_samples,
                             out=os.path.join(args.out, name), progress=False, base_family="wgan-gp", scoring="lrw",
                             overrides={"evaluation": {"n": args.eval_n, "repeats": args.repeats, "k": 3,
                                                       "cost_n": 50_000}})
        wall = time.perf_counter() - t0
        m = res.metrics
        out = {"scores": {k: v["lrw"] for k, v in m["scores"].items()}, "inference_cost": m["inference_cost"],
               "timings_seconds": m["timings_seconds"], "wall_seconds": wall, "n_samples": m["n_samples"],
               "n_train": m["n_train"], "config": {k: m["config"][k] for k in ("wgan", "lrw", "evaluation")},
               "w_phi": {k: v for k, v in m["diagnostics"].get("w_phi", {}).items() if k != "history"},
               "diagnostics": {k: m["diagnostics"].get(k) for k in METHODS[1:] if k in m["diagnostics"]},
               "command": ("python benchmarks/lrw_table1.py " + " ".join(sys.argv[1:])).strip()}
        os.makedirs(os.path.join(args.docs, "lrw"), exist_ok=True)
        os.makedirs(os.path.join(args.docs, "figures"), exist_ok=True)
        atomic_write_text(os.path.join(args.docs, "lrw", f"{name}.json"), json.dumps(out, indent=2, default=float))
        shutil.copy(os.path.join(args.out, name, "figures", "refinement.png"),
                    os.path.join(args.docs, "figures", f"lrw_{name}.png"))
        print(f"{name}: {wall:.0f} s; EMD " + ", ".join(f"{k} {v['emd']['mean']:.4f}" for k, v in out["scores"].items()),
              flush=True)
    results = {}
    for name in ("swissroll", "gaussians25"):
        f = os.path.join(args.docs, "lrw", f"{name}.json")
        if os.path.exists(f):
            with open(f) as fh:
                results[name] = json.load(fh)
    doc = {"command": " ; ".join(sorted({r["command"] for r in results.values()})), "preset": "quick",
           "seed": args.seed, "results": results}
    text = render(doc)  # before anything is written, so a rendering error leaves the docs as they were
    atomic_write_text(os.path.join(args.docs, "lrw_table1.json"), json.dumps(doc, indent=2))
    atomic_write_text(os.path.join(args.docs, "lrw_table1.md"), text)
    precision_time_figure(results, os.path.join(args.docs, "figures", "lrw_precision_time.png"))
    return 0


def render(doc: dict) -> str:
    lines = ["# Latent reweighting, Table 1 reproduced (quick preset)\n",
             f"Command: `{doc['command']}` (seed {doc['seed']}, 2 CPU cores).\n",
             "EMD is the exact earth mover's distance between n generated and n real points (mean Euclidean cost of "
             "the optimal matching, POT); precision and recall use k = 3 nearest neighbours. Each is the mean ± 97% "
             "interval (Student t) over the evaluations on fresh generated points; every method is scored on the same "
             "truth slices, and *change (paired)* is the mean and 97% interval of its per-evaluation difference from "
             "the base's EMD on the same slice (negative: lower than the base). **The EMD's scale depends on n**: the "
             "real-against-real row is the floor at the same n. The paper does not state its n for Table 1; its "
             "values (0.03-0.04) are at the level of our floor at n = 5000 or more, so compare the *changes* from the "
             "base, not the absolute values.\n"]
    for name, r in doc["results"].items():
        s, cost = r["scores"], r["inference_cost"]
        first = next(iter(s.values()))
        lines.append(f"\n## {name} (n = {first['n']}, {first['repeats']} evaluations; wall time {r['wall_seconds']:.0f} s)\n")
        lines.append("| method | EMD (ours) | change (paired) | lower in | EMD (paper) | precision | recall | ms / sample "
                     "| cost ÷ raw |")
        lines.append("|---|---|---|---|---|---|---|---|---|")
        base_v = np.array(s["base"]["emd"]["values"]) if "base" in s else None
        for m in METHODS:
            if m not in s:
                continue
            c = cost.get(m, {}) if m != "base" else {"ms_per_sample": cost["raw_ms"], "cost_over_raw": 1.0}
            paired, lower = "-", "-"
            if base_v is not None and m != "base" and len(s[m]["emd"]["values"]) == len(base_v):
                d = np.array(s[m]["emd"]["values"]) - base_v
                paired = f"{d.mean():+.4f} ± {mean_interval(d, s[m]['emd'].get('level', 0.97))['interval']:.4f}"
                lower = f"{int((d < 0).sum())} of {len(d)}"
            lines.append(f"| {LABELS[m]} | {pm(s[m]['emd'])} | {paired} | {lower} | {PAPER.get(name, {}).get(m, '-')} "
                         f"| {pm(s[m]['precision'], 3)} "
                         f"| {pm(s[m]['recall'], 3)} | {c.get('ms_per_sample', float('nan')):.5f} | {c.get('cost_over_raw', float('nan')):.2f} |")
        lines.append(f"| real vs real (floor) | {pm(first['emd']['floor'])} | | | - | {pm(first['precision']['floor'], 3)} "
                     f"| {pm(first['recall']['floor'], 3)} | | |")
        w = r.get("w_phi", {})
        if w:
            lines.append(f"\nw_phi (learned from: {w.get('source') or 'game'}): {w_phi_text(w)}.")
        lines.append(f"\n![{name}](figures/lrw_{name}.png)\n")
    lines.append("\n## Precision against inference time\n\n![precision vs time](figures/lrw_precision_time.png)\n")
    return "\n".join(lines) + "\n"


def _gain(initial: list, selected: list) -> str:
    g = np.array(initial) - np.array(selected)
    se = g.std(ddof=1) / np.sqrt(len(g)) if len(g) > 1 else float("nan")
    return f"mean gain {g.mean():.4f} ± {se:.4f}, better on {int((g > 0).sum())} of {len(g)}"


def w_phi_text(w: dict) -> str:
    """One paragraph on how w_phi was chosen: every teacher candidate's EMD on the check parts
    (and on the validation set), the test of the best one, and the distillation."""
    chk = w.get("check_emd") or {}
    cands = w.get("candidates") or [{"source": "game", "epoch": w.get("best_epoch"), "val_emd": w.get("val_emd_best")}]
    cands = [c for c in cands if c.get("val_emd") is not None]
    msg = ("the game was played by a data-space weight net h(G(z)). " if w.get("inputs") == "data" else "")

    def name(c: dict) -> str:
        return f"{c['source']}{' (epoch %d)' % c['epoch'] if c.get('epoch') else ''}"
    on_check = any("check_emd" in c for c in cands)
    if on_check:
        where = (f"{len(chk.get('initial_parts', []))} check parts of its {chk['folds']} cross-fitted folds (each "
                 "copy trained on the other rows)" if chk.get("folds") else
                 f"{len(chk.get('initial_parts', []))} held-out check parts")
        msg += (f"Mean EMD of each teacher candidate on the {where} against the start's (w ≈ 1) "
                f"{chk['initial']:.4f} (validation EMD in parentheses): "
                + ", ".join(f"{name(c)} {c['check_emd']:.4f} ({c['val_emd']:.4f})" for c in cands))
    else:
        msg += (f"Validation EMD of each teacher candidate against the start's (w ≈ 1) {w['val_emd_initial']:.4f}: "
                + ", ".join(f"{name(c)} {c['val_emd']:.4f}" for c in cands))
    if w.get("confirmed") is None:
        return msg + "; none beat the start, so w_phi kept it and latentRS delivers the base distribution"
    thr = chk.get("threshold", 1.0)
    rule = f"the mean gain must be at least {'its standard error' if thr == 1 else '%g standard errors' % thr}"
    if on_check:
        best = min(cands, key=lambda c: c["check_emd"])
        msg += f". The best, {best['source']}: {_gain(chk['initial_parts'], chk['selected_parts'])} ({rule})"
    else:
        best = min(cands, key=lambda c: c["val_emd"])
        msg += (f". The best ({best['source']}) scored {chk['selected']:.4f} against the start's {chk['initial']:.4f} "
                f"on {len(chk.get('initial_parts', []))} held-out check parts "
                f"({_gain(chk['initial_parts'], chk['selected_parts'])}; {rule})")
    dl = w.get("delivered")
    if dl:  # the passing kinds as latentRS would deliver them (data-space kinds distilled)
        def how(d: dict) -> str:
            if all(c == 1.0 for c in d["fold_corr"]):
                return "taken as it is"
            return "distilled, correlation " + "/".join(f"{c:.2f}" for c in d["fold_corr"]) + " per fold copy"
        msg += (". Scored as latentRS would deliver them (mean gain on the same parts): "
                + "; ".join(f"{d['source']} ({how(d)}) {chk['initial'] - d['check_emd']:.4f}"
                            + ("" if d["confirmed"] else ", failed the check") for d in dl))
        if w["confirmed"]:
            d = w.get("distil") or {}
            if "refit" in d:
                how_learned = (f"w_phi(z) refitted on the transport weights of all training rows ({d['refit']['pairs']:,} "
                               f"pairs; correlation with the mean of the fold copies {d['corr']:.3f})")
            else:
                how_learned = f"w_phi(z) learned from the mean of its fold copies (correlation {d['corr']:.3f})"
            return msg + f". Kept: {w['source']}, delivered {_gain(chk['initial_parts'], d['check_parts'])}; " + how_learned
        return msg + ", so w_phi fell back to its start (w ≈ 1) and latentRS delivers the base distribution"
    if not w["confirmed"]:
        d = w.get("distil")
        if d and d.get("confirmed") is False:
            return msg + (f"; the distilled w_phi(z) (correlation {d['corr']:.3f}) failed the check (its mean gain "
                          "must be at least its standard error), so w_phi fell back to its start (w ≈ 1) and "
                          "latentRS delivers the base distribution")
        return msg + ", so w_phi fell back to its start (w ≈ 1) and latentRS delivers the base distribution"
    d = w.get("distil")
    if d and d.get("val_emd") is not None:
        what = "the mean of its fold copies" if chk.get("folds") else "it"
        msg += (f"; w_phi(z) distilled from {what}: correlation {d['corr']:.3f}, validation EMD {d['val_emd']:.4f}, "
                f"on the check parts {_gain(chk['initial_parts'], d['check_parts'])}"
                + (" (each fold copy distilled and scored on its own held-out fold)" if chk.get("folds") else ""))
    return msg


def precision_time_figure(results: dict, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(results), figsize=(5.2 * len(results), 4), squeeze=False)
    colors = plt.get_cmap("tab20")
    markers = "osD^v<>phX*"
    for ax, (name, r) in zip(axes[0], results.items()):
        s, cost = r["scores"], r["inference_cost"]
        for i, m in enumerate(METHODS):
            if m not in s:
                continue
            ms = cost["raw_ms"] if m == "base" else cost.get(m, {}).get("ms_per_sample")
            if ms is None:
                continue
            p = s[m]["precision"]
            ax.errorbar([ms], [p["mean"]], yerr=[p["interval"]], fmt=markers[i % len(markers)], color=colors(i),
                        capsize=3, label=LABELS[m])
        ax.set_xscale("log")
        ax.set_xlabel("ms per delivered sample (log scale, CPU)")
        ax.set_ylabel("precision (k = 3)")
        ax.set_title(name)
        ax.grid(alpha=0.3)
    axes[0, -1].legend(fontsize=7, loc="best")
    fig.tight_layout()
    tmp = path + ".tmp.png"
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    os.replace(tmp, path)


if __name__ == "__main__":
    sys.exit(main())
