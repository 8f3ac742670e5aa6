"""Can sharper weights buy issue 23's precision on a zoo image generator? Importance resampling
of a large pool of the base's images with probabilities ``∝ s(x)^β`` for β beyond 1, where ``s``
is the run's DCTR classifier ratio (capped at a quantile) or ``exp`` of its standardised critic.

    python benchmarks/image_sharpen.py [--family wgan-gp] [--pool 200000] [--repeats 5]
        [--betas 0,1,2] [--caps 1,0.99] [--no-critic] [--seed S] [--tag _confirm]

β = 1 on the classifier ratio is the target every sampler aims at (SIR with a pool this large is
close to exact); β > 1 trades recall for typicality, as the truncation trick and DRS's shift do.
Scored as ``benchmarks/image_bar.py`` scores (precision and recall with k = 3 and the Frechet
distance, in the features of a classifier trained on the labelled training images, against
1000 held-out images per evaluation). Writes ``docs/image_bar_runs/sharpen_FAMILY.json`` and
prints one line per setting.
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

from genrefine.api import load_critic  # noqa: E402
from genrefine.checkpoint import atomic_write_text  # noqa: E402
from genrefine.metrics import frechet_distance  # noqa: E402
from genrefine.metrics.suite import weighted_precision_recall  # noqa: E402

BETAS = (0.0, 1.0, 1.5, 2.0, 3.0)
CAPS = (1.0, 0.999, 0.99)


def pool_scores(run: str, n: int, chunk: int = 5000) -> tuple:
    """The base, ``n`` pool latents, and their log classifier ratios and standardised critic values
    (zeros for a family without a critic)."""
    base, clf = ib.load_run(run)
    has_critic = os.path.isdir(os.path.join(run, "models", "critic"))
    critic = load_critic(os.path.join(run, "models", "critic")) if has_critic else (lambda x: torch.zeros(len(x)))
    z = torch.randn(n, base.latent_dim)
    log_w, crit = [], []
    with torch.no_grad():
        for zc in z.split(chunk):
            x = base.generate(zc)
            log_w.append(torch.log(clf.weight(x)).double())
            crit.append(critic(x).reshape(-1).double())
    crit = torch.cat(crit)
    return base, z, torch.cat(log_w), (crit - crit.mean()) / crit.std().clamp_min(1e-12)


def resampled_scores(images, p: torch.Tensor, net, truth, repeats: int, rng) -> dict:
    """Mean precision, recall (%, k = 3) and Frechet distance of ``repeats`` draws of 1000 pool
    rows with probabilities ``p`` (``images(idx)``: those rows as images), each against 1000
    truth rows, and the effective sample of ``p``."""
    rows = []
    for _ in range(repeats):
        t = truth[rng.choice(len(truth), 1000, replace=False)]
        idx = torch.multinomial(p, 1000, replacement=True)
        s = net.features(images(idx))
        prec, rec = weighted_precision_recall(t, s, None, rng, 3)
        rows.append([100 * prec, 100 * rec, frechet_distance(t, s)])
    m = np.mean(rows, 0)
    return {"precision": m[0], "recall": m[1], "frechet": m[2], "ess": float(1.0 / (p.double() ** 2).sum())}


def evaluate(base, z, score, beta, net, truth, repeats, rng) -> dict:
    p = torch.softmax(beta * score, 0).float()
    return resampled_scores(lambda idx: base.generate(z[idx]).numpy(), p, net, truth, repeats, rng)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--family", default="wgan-gp")
    ap.add_argument("--runs", default=os.path.join("runs", "zoo"))
    ap.add_argument("--pool", type=int, default=200_000)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--betas", default=",".join(str(b) for b in BETAS))
    ap.add_argument("--caps", default=",".join(str(c) for c in CAPS), help="quantiles the classifier ratio is capped at")
    ap.add_argument("--no-critic", action="store_true", help="only the classifier ratio")
    ap.add_argument("--seed", type=int, default=0, help="the pool's and the evaluations' seed")
    ap.add_argument("--tag", default="", help="appended to the output file's name")
    ap.add_argument("--docs", default=os.path.join(ib.ROOT, "docs"))
    args = ap.parse_args(argv)
    betas, caps = [float(b) for b in args.betas.split(",")], [float(c) for c in args.caps.split(",")]
    torch.manual_seed(args.seed)
    net, held, _ = ib.feature_net(0)
    truth = net.features(held)
    base, z, log_w, crit = pool_scores(os.path.join(args.runs, f"mnist_{args.family}"), args.pool)
    rng, out = np.random.default_rng(args.seed), []
    scores = [("classifier", log_w, caps)] + ([] if args.no_critic else [("critic", crit, (1.0,))])
    for name, score, qs in scores:
        for q in qs:
            capped = torch.minimum(score, torch.quantile(score.float(), q).double()) if q < 1 else score
            for beta in betas:
                rec = {"score": name, "cap_quantile": q, "beta": beta,
                       **evaluate(base, z, capped, beta, net, truth, args.repeats, rng)}
                print(json.dumps(rec), flush=True)
                out.append(rec)
    doc = {"command": "python benchmarks/image_sharpen.py " + " ".join(sys.argv[1:] if argv is None else argv),
           "family": args.family, "pool": args.pool, "repeats": args.repeats, "rows": out}
    path = os.path.join(args.docs, "image_bar_runs", f"sharpen_{args.family}{args.tag}.json")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    atomic_write_text(path, json.dumps(doc, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
