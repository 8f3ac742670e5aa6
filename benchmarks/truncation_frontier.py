"""Can any latent truncation reach issue 23's bar on a model that is already more precise
than the data? The truncation trick (latents drawn from ``N(0, τ² I)``, ``τ < 1``) is the usual
way to buy a GAN precision with recall; here it is scored alone and on top of the run's
refinement, to see whether precision +3 points with recall inside the base's interval lies
anywhere on that frontier.

    python benchmarks/truncation_frontier.py [--model published-gan] [--taus 1,0.9,0.8,0.7,0.6]
        [--run runs/sharpen_auto_members5/mnist_published-gan] [--repeats 10]

``--run`` is a saved refinement of the model (``benchmarks/sharpen_auto.py --members 5`` writes
it). For each ``τ``: ``truncated τ``, the base's images from the truncated prior; ``refined τ``,
SIR from 10 truncated candidates an image on the run's weights (sharpened as the run chose),
i.e. the target ``N(z; 0, τ² I) w(z)``. ``τ = 1``'s truncated row is the base itself. Scored as
``benchmarks/image_bar.py`` scores (precision, recall, Frechet distance in the independent
features, paired evaluations, 97% intervals). Writes
``docs/image_bar_runs/truncation_MODEL.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "benchmarks"))

import image_bar  # noqa: E402
import sharpen_auto  # noqa: E402

from genrefine.checkpoint import atomic_write_text  # noqa: E402
from genrefine.samplers.rejection import practical_bound, sharpened  # noqa: E402
from genrefine.weights.classifier import latent_target  # noqa: E402

CANDIDATES = 10  # SIR candidates per delivered image


def draws(run: str, model: str, taus: list[float]) -> dict:
    """``{method: draw(n) -> (images, None)}``: the truncated base and the truncated refinement per τ."""
    module = sharpen_auto.PUBLISHED[model]() if model in sharpen_auto.PUBLISHED else None
    base, clf = image_bar.load_run(run, module)
    power = float(clf.sharpen_power)
    target = latent_target(base, clf)
    target = (sharpened(target, power, image_bar.SHARPEN_QUANTILE) if power != 1.0 or bool(clf.sharpen_capped)
              else practical_bound(target))

    def truncated(tau):
        return lambda n: (base.generate(base.prior.sample((n,)) * tau).numpy(), None)

    def refined(tau):
        def draw(n):
            z = base.prior.sample((n, CANDIDATES)) * tau
            w = target.weight(z.reshape(n * CANDIDATES, -1)).reshape(n, CANDIDATES)
            pick = torch.multinomial(w / w.sum(1, keepdim=True), 1).squeeze(1)
            return base.generate(z[torch.arange(n), pick]).numpy(), None
        return draw
    out = {"base": truncated(1.0)}
    for tau in taus:
        if tau != 1.0:
            out[f"truncated {tau:g}"] = truncated(tau)
        out[f"refined {tau:g}"] = refined(tau)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="published-gan")
    ap.add_argument("--run", default=None, help="default runs/sharpen_auto_members5/mnist_MODEL")
    ap.add_argument("--taus", default="1,0.9,0.8,0.7,0.6")
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--eval-n", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--docs", default=os.path.join(ROOT, "docs", "image_bar_runs"))
    args = ap.parse_args(argv)
    taus = [float(t) for t in args.taus.split(",")]
    if any(not 0 < t <= 1 for t in taus):
        raise SystemExit(f"error: --taus must lie in (0, 1], got {args.taus}")
    run = args.run or os.path.join("runs", "sharpen_auto_members5", f"mnist_{args.model}")
    if not os.path.isdir(os.path.join(run, "models", "classifier")):
        raise SystemExit(f"error: {run}: no saved refinement (python benchmarks/sharpen_auto.py --members 5 "
                         f"--models {args.model})")
    torch.set_num_threads(1)
    os.environ.setdefault("GENREFINE_PUBLISHED", os.path.join("runs", "published"))
    net, held, accuracy = image_bar.feature_net(args.seed)
    methods = draws(run, args.model, taus)
    rng = np.random.default_rng(args.seed)
    torch.manual_seed(args.seed)
    res = image_bar.score_draws(methods, net, held, args.eval_n, args.repeats, rng)
    doc = {"command": "python benchmarks/truncation_frontier.py " + " ".join(argv if argv is not None else sys.argv[1:]),
           "repeats": args.repeats, "eval_n": args.eval_n, "feature_accuracy": accuracy, "run": run,
           "floor": image_bar.floor(net, held, args.eval_n, args.repeats, args.seed), "families": {args.model: res}}
    stem = os.path.join(args.docs, f"truncation_{args.model}")
    atomic_write_text(stem + ".json", json.dumps(doc, indent=2, default=float))
    atomic_write_text(stem + ".md", image_bar.render(doc, f"Truncation against issue 23's bar: {args.model}"))
    print(json.dumps({m: r.get("meets_bar") for m, r in res["methods"].items()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
