"""Every base family on the moons and on MNIST: its time per epoch, its scores, and its scores
after its best refinement, each with its truth-against-truth floor.

    python benchmarks/zoo.py [--cases moons:vae,mnist:dcgan,...] [--seed 0]

Families on the moons (2-D): realnvp, ot-flow, vae, dcgan, wgan-clip, wgan-gp, hinge-gp; on
MNIST (the 10,000 test images of ../shared/data/mnist, 8,000 trained on, 1,000 held out as
truth and 1,000 for the floors): vae, dcgan, wgan-clip, wgan-gp, hinge-gp, each trained by its
quick preset. Every case runs the DCTR weights, rejection and SIR on them, and on the moons
latentRS (``METHODS``), and scores with the any-dimension suite (images: Frechet distance and
k-NN precision/recall in the features of an autoencoder trained on the truth). A case's
numbers go to docs/zoo/<data>_<family>.json as it ends; docs/zoo.md is rebuilt from all of
them (``--render-only`` rebuilds it alone).
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import sys
import time

from genrefine.checkpoint import atomic_write_text
from genrefine.pipeline import run_refinement

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MNIST = os.path.join(ROOT, "..", "shared", "data", "mnist", "t10k-images-idx3-ubyte.gz")
DOCS = os.path.join(ROOT, "docs", "zoo")
FAMILIES = {"moons": ["realnvp", "ot-flow", "vae", "dcgan", "wgan-clip", "wgan-gp", "hinge-gp"],
            "mnist": ["vae", "dcgan", "wgan-clip", "wgan-gp", "hinge-gp"]}
#: per data set: the DCTR weights with rejection and SIR on them; on the moons also latentRS,
#: whose w_φ is bounded at m and kept only when held-out rows confirm it (where a generator
#: misses part of the data, the DCTR weights are degenerate and get tempered away)
METHODS = {"moons": "base,dctr,rejection,sir-dctr,latentrs", "mnist": "base,dctr,rejection,sir-dctr"}
#: per data set: training rows (the moons are drawn fresh) and samples scored
SIZES = {"moons": {"n_train": 20_000, "n_samples": 20_000}, "mnist": {"n_samples": 5_000}}
KEYS = {"moons": ("energy", "exact_emd", "precision", "recall"),
        "mnist": ("frechet_features", "precision_features", "recall_features", "energy")}


def run_case(data: str, family: str, seed: int, methods: str | None = None) -> dict:
    methods = methods or METHODS[data]
    overrides = {"n_train": SIZES[data]["n_train"]} if "n_train" in SIZES[data] else None
    source = MNIST if data == "mnist" else data
    t0 = time.perf_counter()
    res = run_refinement(source, methods=methods, base_family=family, scoring="suite", seed=seed,
                         n_samples=SIZES[data]["n_samples"], overrides=overrides, progress=False,
                         out=os.path.join("runs", "zoo", f"{data}_{family}"))
    m = res.metrics
    base_diag = m["diagnostics"]["base"]
    history = base_diag.get("history") or []
    epochs = len(history)
    return {"data": data, "family": family, "seed": seed, "wall_seconds": time.perf_counter() - t0,
            "train_base_seconds": m["timings_seconds"].get("train_base"),
            "seconds_per_epoch": (m["timings_seconds"].get("train_base") or 0) / max(epochs, 1), "epochs": epochs,
            "energy_per_epoch": [h.get("energy") for h in history],
            "scores": m["scores"], "ranking": m["ranking"], "failed": m["failed"],
            "classifier": m["diagnostics"].get("classifier"),
            "command": f"python benchmarks/zoo.py --cases {data}:{family} --seed {seed}"
                       + ("" if methods == METHODS[data] else f" --methods {methods}")}


def _cell(score: dict | None) -> str:
    if not score:
        return "-"
    return f"{score['value']:.4g}" + (f" ({score['floor']:.3g})" if score.get("floor") is not None else "")


def render(docs: str) -> str:
    rows = [json.load(open(p)) for p in sorted(glob.glob(os.path.join(docs, "*.json")))]
    lines = ["# The family zoo", "", "Written by `benchmarks/zoo.py`; every number below is in `docs/zoo/*.json` "
             "with the command that made it. Value (truth-against-truth floor).", ""]
    for data in FAMILIES:
        keys = KEYS[data]
        lines += [f"## {data}", "", "| family | s / epoch | epochs | method | " + " | ".join(keys) +
                  " | recommended |", "|---" * (5 + len(keys)) + "|"]
        for r in (r for r in rows if r["data"] == data):
            best = r["ranking"].get("recommended") or r["ranking"].get("best", "base")
            for i, m in enumerate(dict.fromkeys(["base", best])):
                s = r["scores"].get(m, {})
                head = f"| {r['family']} | {r['seconds_per_epoch']:.1f} | {r['epochs']} |" if i == 0 else "| | | |"
                lines.append(f"{head} {m} | " + " | ".join(_cell(s.get(k)) for k in keys) +
                             f" | {best if i == 0 else ''} |")
        lines.append("")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", default=",".join(f"{d}:{f}" for d, fs in FAMILIES.items() for f in fs))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--docs", default=DOCS)
    ap.add_argument("--render-only", action="store_true")
    ap.add_argument("--methods", default=None, help="the methods of every case (default: METHODS of its data set; "
                                                    "rejection may run long on images)")
    args = ap.parse_args(argv)
    os.makedirs(args.docs, exist_ok=True)
    if not args.render_only:
        for case in args.cases.split(","):
            data, family = case.split(":")
            if data == "mnist" and not os.path.exists(MNIST):
                print(f"skipped {case}: {MNIST} is absent", file=sys.stderr)
                continue
            out = run_case(data, family, args.seed, args.methods)
            atomic_write_text(os.path.join(args.docs, f"{data}_{family}.json"), json.dumps(out, indent=2, default=float))
            best = out["ranking"].get("recommended") or out["ranking"].get("best")
            print(f"{case}: {out['wall_seconds']:.0f} s, best {best}", flush=True)
    atomic_write_text(os.path.join(os.path.dirname(args.docs), "zoo.md"), render(args.docs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
