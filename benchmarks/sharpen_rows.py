"""Could sharpen=auto score its choice on the training data rows? Per saved run, the held-out
pixel precision gain of each power over p = 1 measured against 2,000 training rows (which the
classifier saw) and against 2,000 rows it never saw (the image bar's held-out images): equal
gains would mean the training rows add no bias, and four times the rows would halve the
standard error that now decides the power.

    python benchmarks/sharpen_rows.py [--models wgan-gp,dcgan,...] [--runs runs/sharpen_auto]

Writes ``docs/image_bar_runs/sharpen_rows.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "benchmarks"))

import image_bar  # noqa: E402

from genrefine.checkpoint import atomic_write_text  # noqa: E402
from genrefine.weights.sharpening import select_sharpening  # noqa: E402


def gains(run: str, rows: dict, n_gen: int, seed: int) -> dict:
    """Per set of data rows: every power's precision, gain over p = 1 and its paired error."""
    base, clf = image_bar.load_run(run)
    torch.manual_seed(seed)
    with torch.no_grad():
        x = base.sample(n_gen)
        lw = torch.cat([clf.log_weight(c) for c in x.split(2000)])
    out = {}
    for name, t in rows.items():
        rec = select_sharpening(lw, torch.as_tensor(t).reshape(len(t), 1, 28, 28), x, seed=seed)
        one = rec["scores"]["1.0"]["precision"]
        out[name] = {p: {"precision": s["precision"], "gain": s["precision"] - one, "gain_error": s["gain_error"]}
                     for p, s in rec["scores"].items()} | {"power": rec["power"]}
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="wgan-gp,wgan-clip,dcgan,hinge-gp")
    ap.add_argument("--runs", default=os.path.join("runs", "sharpen_auto"))
    ap.add_argument("--n-gen", type=int, default=20_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--docs", default=os.path.join(ROOT, "docs", "image_bar_runs"))
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    x_train, _, held, _ = image_bar.labelled_split(args.seed)
    pick = torch.randperm(len(x_train), generator=torch.Generator().manual_seed(args.seed))[:len(held)].numpy()
    rows = {"training_rows": x_train[pick], "unseen_rows": held}
    doc = {"command": "python benchmarks/sharpen_rows.py " + " ".join(argv if argv is not None else sys.argv[1:]),
           "n_gen": args.n_gen, "data_rows": len(held), "models": {}}
    for model in args.models.split(","):
        doc["models"][model] = gains(os.path.join(args.runs, f"mnist_{model}"), rows, args.n_gen, args.seed)
        atomic_write_text(os.path.join(args.docs, "sharpen_rows.json"), json.dumps(doc, indent=2, default=float))
        for name, r in doc["models"][model].items():
            print(model, name, r["power"], {p: f"{100 * v['gain']:+.2f}±{100 * v['gain_error']:.2f}"
                                            for p, v in r.items() if p != "power"}, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
