"""Do the averaged logits of K classifiers select better images than one classifier's? On a
saved MNIST run's base: K feature-space classifiers (seeds 0..K-1) fitted on the zoo split's
training images against 16,000 of the base's images, all on one held-out split (as
``classifier.members=K`` fits them; ``--own-splits``: each seed its own split), then a pool of
100,000 base images resampled with probabilities ``∝ min(w, c)^e`` (``c`` the 99th percentile)
for exponents e of 0.5-2, by the first two classifiers alone and by the ensemble.

    python benchmarks/image_ensemble.py --family wgan-gp [--members 5] [--own-splits]
        [--runs runs/sharpen_auto] [--repeats 6]

Scored as ``benchmarks/image_bar.py`` scores (precision, recall and Frechet distance in the
features of a classifier trained on the labelled training images, against 1000 held-out images
per evaluation, mean of ``--repeats``). Prints one line per setting and writes
``docs/image_bar_runs/ensemble_FAMILY.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import image_bar as ib  # noqa: E402
import image_sharpen  # noqa: E402

import genrefine.weights.classifier as classifier_module  # noqa: E402
from genrefine.checkpoint import atomic_write_text  # noqa: E402
from genrefine.weights.feature_classifier import FeatureRatioClassifier  # noqa: E402

EXPONENTS = (0.5, 1.0, 1.5, 2.0)


def pool_log_weights(base, x_train, pool_x, members: int, shared: bool) -> list:
    """Each member's log weights on the pool (members differ by seed; ``shared``: one split)."""
    split = classifier_module.stratified_split
    if shared:  # the ensemble's split: seed 0 for every member
        classifier_module.stratified_split = lambda a, b, f, seed, paired=False: split(a, b, f, 0, paired)
    out = []
    try:
        for k in range(members):
            with torch.no_grad():
                xg = base.sample(2 * len(x_train))
            clf = FeatureRatioClassifier((1, 28, 28), seed=k).fit(x_train, xg, epochs=50, progress=False)
            with torch.no_grad():
                out.append(torch.cat([clf.log_weight(c) for c in pool_x.split(5000)]).double())
            print("member", k, "held-out AUC", round(clf.diagnostics_["auc"], 4), flush=True)
    finally:
        classifier_module.stratified_split = split
    return out


def capped_scores(score, e, pool_x, net, truth, repeats: int, seed: int) -> dict:
    """:func:`image_sharpen.resampled_scores` of the pool drawn ``∝ min(s, c)^e``, ``c`` the 99th percentile."""
    capped = torch.minimum(score, torch.quantile(score.float(), 0.99).double())
    p = torch.softmax(e * capped, 0).float()
    return image_sharpen.resampled_scores(lambda idx: pool_x[idx].numpy(), p, net, truth, repeats,
                                          np.random.default_rng(seed))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--family", default="wgan-gp")
    ap.add_argument("--runs", default=os.path.join("runs", "sharpen_auto"))
    ap.add_argument("--members", type=int, default=5)
    ap.add_argument("--own-splits", action="store_true", help="each member its own held-out split")
    ap.add_argument("--pool", type=int, default=100_000)
    ap.add_argument("--repeats", type=int, default=6)
    ap.add_argument("--docs", default=os.path.join(ib.ROOT, "docs", "image_bar_runs"))
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    torch.manual_seed(0)
    net, held, _ = ib.feature_net(0)
    truth = net.features(held)
    x_train = torch.as_tensor(ib.labelled_split(0)[0]).reshape(-1, 1, 28, 28)
    base, _ = ib.load_run(os.path.join(args.runs, f"mnist_{args.family}"))
    with torch.no_grad():
        pool_x = torch.cat([base.generate(c) for c in torch.randn(args.pool, base.latent_dim).split(5000)])
    lws = pool_log_weights(base, x_train, pool_x, args.members, not args.own_splits)
    settings = {"single0": lws[0], "single1": lws[1], f"mean{args.members}": torch.stack(lws).mean(0)}
    rows = [{"weights": "base", "exponent": 0.0, **capped_scores(lws[0], 0.0, pool_x, net, truth, args.repeats, 1)}]
    rows += [{"weights": name, "exponent": e, **capped_scores(s, e, pool_x, net, truth, args.repeats, 1)}
             for name, s in settings.items() for e in EXPONENTS]
    for r in rows:
        print(json.dumps(r, default=float), flush=True)
    doc = {"command": "python benchmarks/image_ensemble.py " + " ".join(argv if argv is not None else sys.argv[1:]),
           "family": args.family, "members": args.members, "shared_split": not args.own_splits, "rows": rows}
    tag = "_own_splits" if args.own_splits else ""
    atomic_write_text(os.path.join(args.docs, f"ensemble_{args.family}{tag}.json"), json.dumps(doc, indent=2, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())
