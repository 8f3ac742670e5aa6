"""Issue 23's bar on MNIST, with intervals: does refining a zoo run's image generator raise
precision by 0.03 without a worse Frechet distance or recall?

    python benchmarks/image_bar.py [--families hinge-gp,dcgan,...] [--runs runs/zoo] [--repeats 10]

Reads each family's saved zoo run (``python benchmarks/zoo.py --cases mnist:FAMILY`` writes
``runs/zoo/mnist_FAMILY``: its base and its DCTR classifier) and scores, ``repeats`` times,
``eval-n`` fresh images of the base and of each refinement the classifier's weights give
(the base's images weighted, as the zoo's ``dctr``; SIR with 10 candidates; latent rejection,
refused beyond 200 proposals an image) against ``eval-n`` of the run's 2,000 held-out
images, drawn anew each time and shared by the methods of one evaluation (paired). Precision
and recall (k = 3) and the Frechet distance are in the features of a classifier trained on the
labelled training images of the run's own split (as ``benchmarks/lrw_table3.py``), a network
the weights never saw. Writes ``docs/image_bar.json`` and ``docs/image_bar.md``: each score's
mean and 97% interval, and the paired change from the base with its interval.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np
import torch

from genrefine.api import load_classifier, load_generator
from genrefine.checkpoint import atomic_write_text
from genrefine.data import load_array, read_idx
from genrefine.metrics import FeatureNet, frechet_distance
from genrefine.metrics.precision_recall import mean_interval
from genrefine.metrics.suite import weighted_precision_recall
from genrefine.samplers.rejection import LatentRejectionSampler, practical_bound, sharpened
from genrefine.samplers.ratio import SIRSampler
from genrefine.weights.classifier import latent_target
from genrefine.weights.sharpening import QUANTILE as SHARPEN_QUANTILE

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MNIST = os.path.join(ROOT, "..", "shared", "data", "mnist")
FAMILIES = ["vae", "dcgan", "wgan-clip", "wgan-gp", "hinge-gp"]
PRECISION_GAIN = 3.0  # percentage points


def labelled_split(seed: int = 0, holdout: float = 0.2):
    """The zoo run's split of the MNIST test file (experiments/run.py: seeded permutation,
    ``holdout`` kept aside): training images with labels, and the held-out images with theirs."""
    images = load_array(os.path.join(MNIST, "t10k-images-idx3-ubyte.gz")).reshape(-1, 784).astype(np.float32)
    labels = read_idx(os.path.join(MNIST, "t10k-labels-idx1-ubyte.gz")).astype(np.int64)
    perm = np.random.default_rng(seed).permutation(len(images))
    n_hold = max(2, int(round(holdout * len(images))))
    return images[perm[n_hold:]], labels[perm[n_hold:]], images[perm[:n_hold]], labels[perm[:n_hold]]


#: most proposals latent rejection may make per delivered image: a weighting that needs more
#: (the hinge-GP's tempered weights reach 1000 x their mean: ~1e-3 acceptance) is reported as
#: refused instead of running for hours
MAX_PROPOSALS_PER_IMAGE = 200


def feature_net(seed: int) -> tuple[FeatureNet, np.ndarray, float]:
    """The independent feature network (a classifier trained on the labelled training images
    of the run's split), the held-out images, and the network's accuracy on them."""
    x_train, y_train, held, y_held = labelled_split(seed)
    net = FeatureNet((1, 28, 28), seed=seed, epochs=5).fit(x_train, labels=y_train)
    with torch.no_grad():
        predicted = net.net_(net._images(held, "held-out images")).argmax(1).numpy()
    return net, held, round(float((net.classes_[predicted] == y_held).mean()), 4)


def load_run(run: str, user_model=None):
    """``(base, classifier)`` of a saved run (``user_model``: the user's module it was built on)."""
    return (load_generator(os.path.join(run, "models", "base"), base=user_model),
            load_classifier(os.path.join(run, "models", "classifier")))


def samplers(run: str, user_model=None, max_per_image: int = MAX_PROPOSALS_PER_IMAGE,
             sharpen: tuple[float, float] | None = None) -> dict:
    """``{method: draw(n) -> (images, weights or None)}`` of a saved run's base and of its
    classifier's weights: the base's images weighted (``dctr``), SIR, latent rejection.
    ``user_model`` is the user's module when the run was built on one (its weights are filled
    from the run's checkpoint). ``sharpen = (power, quantile)``: every method on the sharpened
    weights ``min(w, c)^power`` (:func:`~genrefine.samplers.rejection.sharpened`), as a run with
    ``--set classifier.sharpen=POWER`` samples them; ``"auto"``: the power the run's classifier
    chose (``--set classifier.sharpen=auto``)."""
    base, clf = load_run(run, user_model)
    target = latent_target(base, clf)
    if sharpen == "auto":  # the power the run chose on held-out rows (classifier.sharpen=auto)
        power = float(clf.sharpen_power)
        sharpen = None if power == 1.0 and not bool(clf.sharpen_capped) else (power, SHARPEN_QUANTILE)
    target = practical_bound(target) if sharpen is None else sharpened(target, *sharpen)

    def weighted(n):
        if sharpen is None:
            x = base.sample(n)
            return x.numpy(), clf.weight(x).numpy()
        z = base.prior.sample((n,))
        return base.generate(z).numpy(), target.weight(z).numpy()

    def rejection(n):
        sampler = LatentRejectionSampler(target, progress=False, max_proposals=max_per_image * n)
        return base.generate(sampler.sample(n)).numpy(), None
    return {"base": lambda n: (base.sample(n).numpy(), None), "dctr": weighted,
            "sir": lambda n: (base.generate(SIRSampler(target, n_candidates=10).sample(n)).numpy(), None),
            "rejection": rejection}


def evaluate(run: str, net: FeatureNet, held: np.ndarray, n: int, repeats: int, seed: int,
             user_model=None, max_per_image: int = MAX_PROPOSALS_PER_IMAGE, sharpen=None) -> dict:
    """Every method's scores per evaluation (paired on the truth rows), then summarised."""
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    return score_draws(samplers(run, user_model, max_per_image, sharpen), net, held, n, repeats, rng)


def score_draws(draws: dict, net: FeatureNet, held: np.ndarray, n: int, repeats: int, rng) -> dict:
    """``repeats`` evaluations of ``{method: draw(n) -> (images, weights or None)}``: each draws
    ``n`` held-out images with ``rng`` and scores every method against them (paired), a method
    that refuses (a ValueError) is reported once in ``failed``; then summarised."""
    rows, failed = {}, {}
    truth_f = net.features(held)
    for r in range(repeats):
        t = truth_f[rng.choice(len(truth_f), n, replace=False)]
        for m, draw in draws.items():
            if m in failed:
                continue
            try:
                x, w = draw(n)
            except ValueError as exc:  # a sampler that refuses (acceptance too low) says why
                failed[m] = str(exc).splitlines()[0]
                continue
            s = net.features(x)
            p, q = weighted_precision_recall(t, s, w, rng, 3)
            rows.setdefault(m, []).append({"precision": 100 * p, "recall": 100 * q,
                                           "frechet": frechet_distance(t, s, weights_y=w)})
    return summarise(rows, failed)


def floor(net: FeatureNet, held: np.ndarray, n: int, repeats: int, seed: int) -> dict:
    """Real against real: the scores of ``n`` held-out images against ``n`` others, split anew
    ``repeats`` times. A generator cannot be expected to beat them; a precision above the floor
    means the generator is more typical than the data (its diversity is missing)."""
    rng = np.random.default_rng(seed)
    feats, rows = net.features(held), []
    for _ in range(repeats):
        perm = rng.permutation(len(feats))
        t, s = feats[perm[:n]], feats[perm[n:2 * n]]
        p, q = weighted_precision_recall(t, s, None, rng, 3)
        rows.append({"precision": 100 * p, "recall": 100 * q, "frechet": frechet_distance(t, s)})
    return {k: mean_interval([r[k] for r in rows]) for k in ("precision", "recall", "frechet")}


def summarise(rows: dict, failed: dict) -> dict:
    out = {"failed": failed, "methods": {}}
    base = rows["base"]
    for m, rs in rows.items():
        rec = {k: mean_interval([r[k] for r in rs]) for k in ("precision", "recall", "frechet")}
        if m != "base":
            rec["change"] = {k: mean_interval([a[k] - b[k] for a, b in zip(rs, base)]) for k in ("precision", "recall", "frechet")}
            rec["meets_bar"] = meets_bar(rec, out["methods"]["base"])
        out["methods"][m] = rec
    return out


def meets_bar(rec: dict, base: dict) -> bool:
    """Precision up by :data:`PRECISION_GAIN` points (mean paired change) and neither the Frechet
    distance above nor recall below the base's 97% interval."""
    return bool(rec["change"]["precision"]["mean"] >= PRECISION_GAIN
                and rec["frechet"]["mean"] <= base["frechet"]["mean"] + base["frechet"]["interval"]
                and rec["recall"]["mean"] >= base["recall"]["mean"] - base["recall"]["interval"])


def render(doc: dict, title: str = "Issue 23's bar on MNIST, with intervals") -> str:
    lines = [f"# {title}", "",
             f"Command: `{doc['command']}`; {doc['repeats']} evaluations of {doc['eval_n']} images each, paired on "
             "the truth rows. Precision and recall (%, k = 3) and the Frechet distance in the features of a "
             "classifier trained on the labelled training images (accuracy on the held-out images "
             f"{doc['feature_accuracy']}); mean ± 97% interval, and the paired change from the base. The bar: "
             f"precision +{PRECISION_GAIN:g} points, Frechet distance and recall within the base's interval.", "",
             "| family | method | precision | recall | Frechet | Δ precision | Δ recall | Δ Frechet | bar |",
             "|---|---|---|---|---|---|---|---|---|"]
    if "floor" in doc:
        f = doc["floor"]
        lines.append(f"| real against real | (floor) | {_pm(f['precision'])} | {_pm(f['recall'])} | "
                     f"{_pm(f['frechet'], 2)} | | | | |")
    for fam, res in doc["families"].items():
        for m, r in res["methods"].items():
            ch = r.get("change")
            delta = " | ".join(_pm(ch[k], 2) for k in ("precision", "recall", "frechet")) if ch else "- | - | -"
            bar = "" if m == "base" else ("met" if r["meets_bar"] else "not met")
            lines.append(f"| {fam} | {m} | {_pm(r['precision'])} | {_pm(r['recall'])} | {_pm(r['frechet'], 2)} | "
                         f"{delta} | {bar} |")
        for m, why in res["failed"].items():
            lines.append(f"| {fam} | {m} | refused: {why} | | | | | | |")
    commands = [f"- {fam}: `{res['command']}`" for fam, res in doc["families"].items() if "command" in res]
    return "\n".join(lines + ([""] + commands if commands else [])) + "\n"


def _pm(d: dict, digits: int = 1) -> str:
    return f"{d['mean']:.{digits}f} ± {d['interval']:.{digits}f}"


def add_sharpen_argument(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--sharpen", default=None, metavar="POWER[,QUANTILE]",
                    help="sample the sharpened weights min(w, c)^POWER, c their QUANTILE (default 0.99); "
                         "auto: the power the run's classifier chose")


def sharpen_setting(args) -> tuple[float, float] | None:
    """``--sharpen POWER[,QUANTILE]`` as ``(power, quantile)``, or None."""
    if not args.sharpen:
        return None
    if args.sharpen == "auto":
        return "auto"
    parts = [float(v) for v in args.sharpen.split(",")]
    return parts[0], parts[1] if len(parts) > 1 else 0.99


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--families", default=",".join(FAMILIES))
    ap.add_argument("--runs", default=os.path.join("runs", "zoo"))
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--eval-n", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--max-proposals-per-image", type=int, default=MAX_PROPOSALS_PER_IMAGE,
                    help="latent rejection is refused beyond this many proposals an image")
    add_sharpen_argument(ap)
    ap.add_argument("--docs", default=os.path.join(ROOT, "docs"))
    args = ap.parse_args(argv)
    sharpen = sharpen_setting(args)
    torch.set_num_threads(1)
    net, held, accuracy = feature_net(args.seed)
    path = os.path.join(args.docs, "image_bar.json")
    doc = json.load(open(path)) if os.path.exists(path) else {"families": {}}
    command = "python benchmarks/image_bar.py " + " ".join(argv if argv is not None else sys.argv[1:])
    doc.update(command="python benchmarks/image_bar.py [--families F,...] (each family's own command is in the JSON)",
               repeats=args.repeats, eval_n=args.eval_n, feature_accuracy=accuracy,
               floor=floor(net, held, args.eval_n, args.repeats, args.seed))
    for fam in filter(None, args.families.split(",")):
        t0 = time.perf_counter()
        res = evaluate(os.path.join(args.runs, f"mnist_{fam}"), net, held, args.eval_n, args.repeats, args.seed,
                       max_per_image=args.max_proposals_per_image, sharpen=sharpen)
        doc["families"][fam] = {**res, "seconds": time.perf_counter() - t0, "command": command}
        atomic_write_text(path, json.dumps(doc, indent=2, default=float))
        atomic_write_text(os.path.join(args.docs, "image_bar.md"), render(doc))
        print(fam, json.dumps({m: r.get("meets_bar") for m, r in res["methods"].items()}), res["failed"], flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
