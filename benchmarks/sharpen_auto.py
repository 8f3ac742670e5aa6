"""Issue 23's bar with one command for every MNIST generator: ``classifier.sharpen=auto``, the
sharpening power of the classifier's weights chosen on held-out rows, sampled by latent
rejection and SIR.

    python benchmarks/sharpen_auto.py [--models vae,wgan-gp,...,published-gan,published-vae]
        [--repeats 10] [--max-proposals-per-image 1000] [--members K]

For each model, the base is a saved zoo run's (``runs/zoo/mnist_FAMILY``, written by
``python benchmarks/zoo.py --cases mnist:FAMILY``) or a published one (``published-gan``,
``published-vae``: ``examples/published_mnist_models.py``, converted by
``benchmarks/published_mnist.py``). Each is refined by the same call, the user's own
``genrefine refine DATA --model ... --method rejection,sir-dctr --set classifier.sharpen=auto``
(the zoo's split of the MNIST test file, seed 0) into ``runs/sharpen_auto/mnist_MODEL``, then
scored as ``benchmarks/image_bar.py`` scores: precision, recall and Frechet distance in the
features of a classifier trained on the labelled training images, 10 paired evaluations of
1000 fresh images against 1000 of the 2,000 held-out images. Writes
``docs/image_bar_runs/sharpen_auto.json`` (with the power each run chose and its held-out
scores) and ``docs/image_bar_runs/sharpen_auto.md``; with ``--members K`` (K > 1) the classifier is
an ensemble of K (``--set classifier.members=K``), the runs go to ``runs/sharpen_auto_membersK`` and
the files are ``sharpen_auto_membersK.{json,md}``. ``--classifier-seed S`` sets ``classifier.seed``
(the members' seeds are then ``S .. S+K-1``): other classifiers on the same split, generated rows
and evaluation, to see how much a result owes to one draw of the classifiers (tag ``_cseedS``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "examples"))
sys.path.insert(0, os.path.join(ROOT, "benchmarks"))

import image_bar  # noqa: E402
import published_mnist_models as published  # noqa: E402

from genrefine.api import load_generator  # noqa: E402
from genrefine.checkpoint import atomic_write_text  # noqa: E402
from genrefine.experiments.run import run_refinement  # noqa: E402
from genrefine.generators import as_generator  # noqa: E402

PUBLISHED = {"published-gan": published.published_gan, "published-vae": published.published_vae}
MODELS = image_bar.FAMILIES + list(PUBLISHED)
METHODS = "base,rejection,sir-dctr"
SETTINGS = {"classifier": {"sharpen": "auto"}}
MNIST_FILE = os.path.join(image_bar.MNIST, "t10k-images-idx3-ubyte.gz")


def base_of(model: str, zoo: str):
    """``(generator, user module or None)``: a zoo run's saved base, or a published model."""
    if model in PUBLISHED:
        module = PUBLISHED[model]()
        return as_generator(module, latent_dim=module.latent_dim), PUBLISHED[model]()
    run = os.path.join(zoo, f"mnist_{model}")
    if not os.path.isdir(os.path.join(run, "models", "base")):
        raise SystemExit(f"error: {run}: no saved zoo run (python benchmarks/zoo.py --cases mnist:{model})")
    return load_generator(os.path.join(run, "models", "base")), None


def refine(model: str, zoo: str, out: str, seed: int, settings: dict) -> tuple[dict, object]:
    """The one call every model gets; returns its record and the user module (or None)."""
    base, module = base_of(model, zoo)
    t0 = time.perf_counter()
    res = run_refinement(MNIST_FILE, methods=METHODS, base=base, scoring="suite", seed=seed, n_samples=5_000,
                         progress=False, out=out, settings=settings)
    diag = res.metrics["diagnostics"]
    chosen = (diag.get("classifier") or {}).get("sharpening") or {}
    return {"refine_seconds": time.perf_counter() - t0, "power": chosen.get("power"),
            "held_out": {k: chosen.get(k) for k in ("scores", "unweighted", "skipped",
                                                    "eligible", "capped")},
            "run_failed": res.metrics["failed"]}, module


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--zoo", default=os.path.join("runs", "zoo"))
    ap.add_argument("--runs", default=None, help="default runs/sharpen_auto[_membersK][_cseedS]")
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--eval-n", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--max-proposals-per-image", type=int, default=1000)
    ap.add_argument("--docs", default=os.path.join(ROOT, "docs", "image_bar_runs"))
    ap.add_argument("--members", type=int, default=1, help="classifiers in the ensemble (classifier.members)")
    ap.add_argument("--classifier-seed", type=int, default=None,
                    help="classifier.seed: other classifiers on the same split, generated rows and evaluation")
    args = ap.parse_args(argv)
    tag = (f"_members{args.members}" if args.members > 1 else "") + (
        f"_cseed{args.classifier_seed}" if args.classifier_seed is not None else "")
    settings = {"classifier": {**SETTINGS["classifier"], **({"members": args.members} if args.members > 1 else {}),
                               **({"seed": args.classifier_seed} if args.classifier_seed is not None else {})}}
    runs = args.runs or os.path.join("runs", "sharpen_auto" + tag)
    models = args.models.split(",")
    if unknown := [m for m in models if m not in MODELS]:
        raise SystemExit(f"error: unknown model(s) {unknown}; choose from {MODELS}")
    torch.set_num_threads(1)
    os.environ.setdefault("GENREFINE_PUBLISHED", os.path.join("runs", "published"))
    net, held, accuracy = image_bar.feature_net(args.seed)
    path = os.path.join(args.docs, f"sharpen_auto{tag}.json")
    doc = json.load(open(path)) if os.path.exists(path) else {"families": {}}
    doc.update(command="python benchmarks/sharpen_auto.py " + " ".join(argv if argv is not None else sys.argv[1:]),
               repeats=args.repeats, eval_n=args.eval_n, feature_accuracy=accuracy, settings=settings,
               floor=image_bar.floor(net, held, args.eval_n, args.repeats, args.seed))
    for model in models:
        out = os.path.join(runs, f"mnist_{model}")
        record, module = refine(model, args.zoo, out, args.seed, settings)
        t0 = time.perf_counter()
        res = image_bar.evaluate(out, net, held, args.eval_n, args.repeats, args.seed, user_model=module,
                                 max_per_image=args.max_proposals_per_image, sharpen="auto")
        doc["families"][model] = {**res, **record, "eval_seconds": time.perf_counter() - t0}
        atomic_write_text(path, json.dumps(doc, indent=2, default=float))
        atomic_write_text(os.path.join(args.docs, f"sharpen_auto{tag}.md"), image_bar.render(
            doc, "Issue 23's bar with classifier.sharpen=auto" + (f" and {args.members} classifiers" if args.members > 1 else "")
            + (f", classifier seed {args.classifier_seed}" if args.classifier_seed is not None else "")
            + ", one command for all"))
        print(model, record["power"], json.dumps({m: r.get("meets_bar") for m, r in res["methods"].items()}),
              res["failed"], flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
