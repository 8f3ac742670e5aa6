"""In which space should ``classifier.sharpen=auto`` score its candidate powers? The rule of
``genrefine.weights.sharpening`` applied to one zoo MNIST run's weights in three spaces: the
pixels, the feature classifier's autoencoder code, and the features of an independent digit
classifier trained on the labelled training images (the space the issue's bar is scored in,
which a user does not have).

    python benchmarks/sharpen_spaces.py [--families wgan-gp,vae] [--generated 20000] [--held 2000]

``generated`` fresh images of the run's base and ``held`` of the split's held-out images (never
trained on). A space is a good stand-in when its precision moves with the independent one's as
the power grows. Writes ``docs/image_bar_runs/sharpen_spaces.json`` and prints a line per
family and space.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import image_bar as ib  # noqa: E402

from genrefine.checkpoint import atomic_write_text  # noqa: E402
from genrefine.weights.sharpening import select_sharpening  # noqa: E402


def spaces(run: str, net, held, n_generated: int, seed: int) -> dict:
    """``{space: select_sharpening record}`` for the run's base and classifier."""
    base, clf = ib.load_run(run)
    torch.manual_seed(seed + 5)
    with torch.no_grad():
        xg = base.sample(n_generated)
        lw = torch.cat([clf.log_weight(c) for c in xg.split(2000)])
    xd = torch.as_tensor(held)
    rows = {"pixels": (xd, xg),
            "independent": tuple(torch.as_tensor(net.features(v.numpy())) for v in (xd, xg))}
    if hasattr(clf, "code"):
        with torch.no_grad():
            rows["code"] = tuple(torch.cat([clf.code(c) for c in v.float().split(2000)]) for v in (xd, xg))
    return {name: select_sharpening(lw, fd, fg, seed=seed) for name, (fd, fg) in rows.items()}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--families", default="wgan-gp,vae")
    ap.add_argument("--runs", default=os.path.join("runs", "zoo"))
    ap.add_argument("--generated", type=int, default=20_000)
    ap.add_argument("--held", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--docs", default=os.path.join(ib.ROOT, "docs", "image_bar_runs"))
    args = ap.parse_args(argv)
    net, held, _ = ib.feature_net(args.seed)
    doc = {"command": "python benchmarks/sharpen_spaces.py " + " ".join(argv if argv is not None else sys.argv[1:]),
           "families": {}}
    for fam in args.families.split(","):
        res = spaces(os.path.join(args.runs, f"mnist_{fam}"), net, held[:args.held], args.generated, args.seed)
        doc["families"][fam] = res
        for name, r in res.items():
            cells = {p: f"{100 * v['precision']:.1f}/{100 * v['recall']:.1f}" for p, v in r["scores"].items()}
            print(fam, name, "chose", r["power"], "precision/recall by power:", cells, flush=True)
        atomic_write_text(os.path.join(args.docs, "sharpen_spaces.json"), json.dumps(doc, indent=2, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())
