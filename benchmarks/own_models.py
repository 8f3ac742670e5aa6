"""A user's own generator through the front door, on three kinds of data (issue 21's bars).

    python benchmarks/own_models.py --case ring2d      # a user's 2-D MLP GAN: bridges, a starved mode
    python benchmarks/own_models.py --case tabular16   # 16-D, four separated modes, a flow that bridges them
    python benchmarks/own_models.py --case mnist       # 784-D: the Eq. (5) generator on the MNIST test images

Each case builds the user's model outside genrefine (examples/), hands it over with
``as_generator`` and runs ``genrefine.compare`` on held-out truth: every score with its
truth-against-truth floor, the methods ranked, the recommended one named. It then scores the
recommended method once more on fresh truth the ranking never saw (ring2d, tabular16: the
data are generated; mnist: the 10,000 images are all there is, so its ranking truth is the
only truth). Writes ``docs/own_models/<case>.json`` with the command and wall time.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "examples"))

import genrefine  # noqa: E402
from genrefine.checkpoint import atomic_write_text  # noqa: E402
from genrefine.metrics import energy_distance  # noqa: E402

MNIST = os.path.join(ROOT, "..", "shared", "data", "mnist", "t10k-images-idx3-ubyte.gz")


def modes16(n: int, seed: int) -> np.ndarray:
    """Four Gaussian modes in 16-D, 8 apart, each with its own random covariance (scale ~0.6)."""
    rng, fixed = np.random.default_rng(seed), np.random.default_rng(123)
    centres = fixed.standard_normal((4, 16))
    centres = 8.0 * centres / np.linalg.norm(centres, axis=1, keepdims=True)
    mix = fixed.standard_normal((4, 16, 16)) * 0.15 + 0.5 * np.eye(16)
    k = rng.integers(0, 4, n)
    return (centres[k] + np.einsum("nij,nj->ni", mix[k], rng.standard_normal((n, 16)))).astype(np.float32)


def ring2d_case(seed: int):
    from ring_gan import ring_data, train_gan

    gen = train_gan(ring_data(50_000, seed=seed), seed=seed)
    data = ring_data(50_000, seed=seed + 1)
    fresh = lambda n, s: ring_data(n, seed=1000 + s)  # noqa: E731
    methods = ["rejection", "sir-dctr", "hmc", "laser"]
    return genrefine.as_generator(gen, latent_dim=2), data, fresh, methods, {}


def tabular16_case(seed: int):
    from genrefine.generators import RealNVPGenerator

    x = modes16(60_000, seed)
    torch.manual_seed(seed)
    flow = RealNVPGenerator(16, 8, [64, 64]).fit(torch.as_tensor(x), epochs=15, batch_size=1000, lr=2e-3,
                                                 progress=False).freeze()
    fresh = lambda n, s: modes16(n, 1000 + s)  # noqa: E731
    return flow, x, fresh, ["rejection", "sir-dctr", "laser", "laser-flow"], {}


def mnist_case(seed: int):
    from genrefine.data import load_array
    from mnist_eq5 import train_vae

    if not os.path.exists(MNIST):
        raise SystemExit(f"skipped: {MNIST} is absent")
    images = load_array(MNIST)  # (10000, 28, 28) in [0, 1]
    dec = train_vae(torch.as_tensor(images[:8000]).reshape(-1, 1, 28, 28), epochs=3, seed=seed)
    return genrefine.as_generator(dec, latent_dim=2), images, None, ["rejection", "sir-dctr"], {}


CASES = {"ring2d": ring2d_case, "tabular16": tabular16_case, "mnist": mnist_case}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--case", choices=list(CASES), required=True)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--n-samples", type=int, default=20_000)
    p.add_argument("--out", default=os.path.join(ROOT, "docs", "own_models"))
    args = p.parse_args(argv)
    t0 = time.perf_counter()
    gen, data, fresh, methods, settings = CASES[args.case](args.seed)
    t_model = time.perf_counter() - t0
    report = genrefine.compare(gen, data, methods=methods, n_samples=args.n_samples, settings=settings,
                               seed=args.seed, progress=False)
    wall = time.perf_counter() - t0
    out = {"command": f"python benchmarks/own_models.py --case {args.case} --seed {args.seed}",
           "seconds_user_model": t_model, "seconds_total": wall, "report": report.to_dict()}
    if fresh is not None:  # the recommended method against the base on truth the ranking never saw
        n = 5000
        best = report.recommended
        checks = []
        for s in range(5):
            truth = fresh(n, s)
            base_x = gen.sample(n).cpu().numpy()
            best_x = report.generators[best].sample(n).cpu().numpy() if best != "base" else base_x
            checks.append({"base": energy_distance(truth, base_x, mm=True),
                           best: energy_distance(truth, best_x, mm=True)})
        out["fresh_truth_energy"] = checks
    os.makedirs(args.out, exist_ok=True)
    atomic_write_text(os.path.join(args.out, f"{args.case}.json"), json.dumps(out, indent=2))
    print(report.summary())
    print(f"\n{args.case}: {wall:.0f} s in all ({t_model:.0f} s for the user's model); "
          f"wrote {os.path.join(args.out, args.case + '.json')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
