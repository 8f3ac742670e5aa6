"""Issue 23's bar on MNIST generators that genrefine did not train: the published MLP GAN and
VAE of csinva/gan-vae-pretrained-pytorch (``examples/published_mnist_models.py``), refined by the same
settings as the zoo's MNIST rows and scored as ``benchmarks/image_bar.py`` scores them.

    python benchmarks/published_mnist.py --weights DIR [--models gan,vae] [--repeats 10]

``DIR`` holds the published files as they are (``mnist_gan_mlp/weights/G--300.ckpt`` and
``mnist_vae/weights/vae_epoch_25.pth`` of that repository). They are PyTorch pickles: they are
read once here with ``torch.load(weights_only=True)``, which refuses anything but tensors, and
written as safetensors into ``runs/published`` (``$GENREFINE_PUBLISHED``); nothing else reads
them. Each model is then handed to ``run_refinement`` as a user's module (quick preset, suite
scoring, the zoo's MNIST methods and sizes, seed 0) into ``runs/zoo/mnist_published-MODEL``, and
its base and refinements are scored over ``repeats`` paired evaluations of 1,000 fresh images
against 1,000 of the split's 2,000 held-out MNIST test images, which neither the published
models (trained on the 60,000 training images) nor the run's classifier saw. Writes
``docs/published_mnist.json`` and ``docs/published_mnist.md``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time

import torch
from safetensors.torch import save_file

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "examples"))
sys.path.insert(0, os.path.join(ROOT, "benchmarks"))

import image_bar  # noqa: E402
import published_mnist_models as published  # noqa: E402

from genrefine.checkpoint import atomic_write_text  # noqa: E402
from genrefine.experiments.run import run_refinement  # noqa: E402
from genrefine.generators import as_generator  # noqa: E402

#: model -> (published file, converted file, factory)
MODELS = {"gan": ("G--300.ckpt", published.GAN_FILE, published.published_gan),
          "vae": ("vae_epoch_25.pth", published.VAE_FILE, published.published_vae)}
METHODS, N_SAMPLES = "base,dctr,rejection,sir-dctr", 5_000  # the zoo's MNIST rows
MNIST_FILE = os.path.join(image_bar.MNIST, "t10k-images-idx3-ubyte.gz")


def convert(src: str, dst: str) -> str:
    """Write the tensors of the published file ``src`` to ``dst`` (safetensors); returns the
    sha256 of ``src`` so the record names exactly which weights were scored."""
    if not os.path.exists(src):
        raise SystemExit(f"error: {src}: no such file (pass --weights, the directory holding the published files)")
    state = torch.load(src, map_location="cpu", weights_only=True)
    tmp = dst + ".tmp"
    save_file({k: v.contiguous() for k, v in state.items()}, tmp)
    os.replace(tmp, dst)
    with open(src, "rb") as fh:
        return hashlib.sha256(fh.read()).hexdigest()


def refine(model: str, seed: int) -> tuple[str, dict]:
    """The zoo's MNIST refinement of the published ``model``, into its own run directory."""
    module = MODELS[model][2]()
    out = os.path.join("runs", "zoo", f"mnist_published-{model}")
    t0 = time.perf_counter()
    res = run_refinement(MNIST_FILE, methods=METHODS, base=as_generator(module, latent_dim=module.latent_dim),
                         scoring="suite", seed=seed, n_samples=N_SAMPLES, progress=False, out=out)
    m = res.metrics
    return out, {"wall_seconds": time.perf_counter() - t0, "latent_dim": module.latent_dim,
                 "classifier": m["diagnostics"].get("classifier"), "run_failed": m["failed"]}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--weights", required=True, help="directory holding the published files")
    ap.add_argument("--models", default="gan,vae")
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--eval-n", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--max-proposals-per-image", type=int, default=image_bar.MAX_PROPOSALS_PER_IMAGE,
                    help="latent rejection is refused beyond this many proposals an image")
    image_bar.add_sharpen_argument(ap)
    ap.add_argument("--reuse", action="store_true", help="score the run directories an earlier call refined")
    ap.add_argument("--docs", default=os.path.join(ROOT, "docs"))
    args = ap.parse_args(argv)
    sharpen = image_bar.sharpen_setting(args)
    models = args.models.split(",")
    if unknown := [m for m in models if m not in MODELS]:
        raise SystemExit(f"error: unknown model(s) {unknown}; choose from {sorted(MODELS)}")
    if not os.path.exists(MNIST_FILE):
        raise SystemExit(f"error: {MNIST_FILE}: the MNIST test images are needed")
    torch.set_num_threads(1)
    store = os.environ.setdefault("GENREFINE_PUBLISHED", os.path.join("runs", "published"))
    os.makedirs(store, exist_ok=True)
    net, held, accuracy = image_bar.feature_net(args.seed)
    path = os.path.join(args.docs, "published_mnist.json")
    doc = json.load(open(path)) if os.path.exists(path) else {"families": {}}
    doc.update(command="python benchmarks/published_mnist.py " + " ".join(argv if argv is not None else sys.argv[1:]),
               repeats=args.repeats, eval_n=args.eval_n, feature_accuracy=accuracy,
               source="github.com/csinva/gan-vae-pretrained-pytorch (MIT)",
               floor=image_bar.floor(net, held, args.eval_n, args.repeats, args.seed))
    for model in models:
        src, dst, factory = MODELS[model]
        sha = convert(os.path.join(args.weights, src), os.path.join(store, dst))
        reused = os.path.join("runs", "zoo", f"mnist_published-{model}")
        if args.reuse and os.path.isdir(os.path.join(reused, "models", "classifier")):
            run, record = reused, {"reused": True}
        else:
            run, record = refine(model, args.seed)
        t0 = time.perf_counter()
        res = image_bar.evaluate(run, net, held, args.eval_n, args.repeats, args.seed, user_model=factory(),
                                 max_per_image=args.max_proposals_per_image, sharpen=sharpen)
        doc["families"][f"published-{model}"] = {**res, **record, "weights_file": src, "weights_sha256": sha,
                                                 "eval_seconds": time.perf_counter() - t0}
        atomic_write_text(path, json.dumps(doc, indent=2, default=float))
        atomic_write_text(os.path.join(args.docs, "published_mnist.md"),
                          image_bar.render(doc, "Issue 23's bar on published MNIST generators, with intervals"))
        print(model, json.dumps({m: r.get("meets_bar") for m, r in res["methods"].items()}), res["failed"], flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
