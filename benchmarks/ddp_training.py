"""Training under torchrun: the held-out loss of a classifier trained by 1 and by 2 processes.

    python benchmarks/ddp_training.py [--seeds 0,1,2] [--out docs/ddp_training.json]
    python benchmarks/ddp_training.py --task images --seeds 0,1,2 --out docs/ddp_training_images.json

Writes the JSON and, beside it, ``docs/ddp_training.md`` (the table, with the command).

Each configuration trains the DCTR classifier (``DensityRatioClassifier``, the preset's 8 x 96
network) between two fixed 2-D sets (a ring against a Gaussian, 40,000 rows each) with early
stopping, and reports its held-out BCE on 20,000 fresh rows of each, with the wall time. One
process runs as itself; two run under ``torchrun --nproc-per-node 2`` (gloo, one thread each),
the gradients of every batch averaged over the ranks (:class:`genrefine.distributed.DataParallel`).
The seeds give the noise that "the same within noise" is measured against.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np
import torch

from genrefine import distributed
from genrefine.checkpoint import atomic_write_text


def two_sets(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A noisy ring (the "data") and a standard normal (the "generated" rows)."""
    rng = np.random.default_rng(seed)
    a = rng.uniform(0, 2 * np.pi, n)
    ring = np.c_[np.cos(a), np.sin(a)] * 1.5 + 0.3 * rng.standard_normal((n, 2))
    return ring.astype(np.float32), rng.standard_normal((n, 2)).astype(np.float32)


def two_image_sets(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's 8 x 8 digits (pixels in [0, 1]) drawn with replacement, with pixel noise of
    sd 0.1 (the "data"), against other draws mixed 9:1 with their 3 x 3 box blur, with the same
    noise (the "generated" rows)."""
    from sklearn.datasets import load_digits

    rng = np.random.default_rng(seed)
    imgs = load_digits().images.astype(np.float32) / 16.0
    pick = imgs[rng.integers(0, len(imgs), 2 * n)]
    pad = np.pad(pick[n:], ((0, 0), (1, 1), (1, 1)), mode="edge")
    blur = sum(pad[:, i:i + 8, j:j + 8] for i in range(3) for j in range(3)) / 9.0
    noise = 0.1 * rng.standard_normal((2, n, 8, 8)).astype(np.float32)
    return (pick[:n] + noise[0]).reshape(n, 1, 8, 8), (0.9 * pick[n:] + 0.1 * blur + noise[1]).reshape(n, 1, 8, 8)


TASKS = {"ring": two_sets, "images": two_image_sets}


def held_out_bce(clf, task: str = "ring", n: int = 20_000) -> float:
    xd, xg = TASKS[task](n, 12345)
    with torch.no_grad():
        ld, lg = (clf.logit(torch.as_tensor(v).reshape(len(v), -1)) for v in (xd, xg))
    return float((torch.nn.functional.softplus(-ld).sum() + torch.nn.functional.softplus(lg).sum()) / (2 * n))


def train_one(seed: int, epochs: int, task: str = "ring") -> dict:
    """Train (inside torchrun, or as one process) and return rank 0's record."""
    from genrefine.weights.classifier import ConvRatioClassifier, DensityRatioClassifier

    distributed.init("cpu")
    torch.manual_seed(seed)
    xd, xg = TASKS[task](40_000, seed)
    t0 = time.perf_counter()
    clf = DensityRatioClassifier(2, seed=seed) if task == "ring" else ConvRatioClassifier((1, 8, 8), seed=seed)
    clf.fit(xd, xg, epochs=epochs, batch_size=2000 if task == "ring" else 256, progress=False)
    rec = {"seed": seed, "task": task, "processes": distributed.rank_and_size()[1],
           "seconds": time.perf_counter() - t0, "held_out_bce": held_out_bce(clf, task), "epochs_run": len(clf.history_),
           "best_epoch": clf.diagnostics_.best_epoch if hasattr(clf.diagnostics_, "best_epoch") else None}
    distributed.finish()
    return rec


def launch(seed: int, procs: int, epochs: int, task: str) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, __file__, "--worker", "--seed", str(seed), "--epochs", str(epochs), "--task", task]
    if procs > 1:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(procs)] + cmd[1:]
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True).stdout
    return json.loads([line for line in out.splitlines() if line.startswith("{")][0])


def render(out: dict) -> str:
    what = ("The DCTR classifier (8 x 96) is trained between a noisy ring and a standard normal (40,000 rows "
            "each, batches of 2,000" if out.get("task", "ring") == "ring" else
            "The CNN classifier (channels 32, 64) is trained between scikit-learn's 8 x 8 digits with pixel noise "
            "and the same digits 10% blurred (40,000 rows each, batches of 256")
    lines = ["# Training under torchrun: the same held-out loss", "",
             f"Written by `{out['command']}` ({out['machine']}). {what}, early stopping on "
             "10% held out) by one process, and by two under `torchrun` (gloo), where each rank steps on half "
             "of every batch and the gradients are averaged before each step. The loss is the BCE on 20,000 "
             "fresh rows of each set.", "",
             "| seed | processes | held-out BCE | epochs run | seconds |", "|---|---|---|---|---|"]
    for r in out["rows"]:
        lines.append(f"| {r['seed']} | {r['processes']} | {r['held_out_bce']:.4f} | {r['epochs_run']} | "
                     f"{r['seconds']:.1f} |")
    lines.append("")
    for p, v in out["summary"].items():
        sd = "" if v["sd"] is None else f" ± {v['sd']:.4f} (sd over seeds)"
        lines.append(f"- {p} process(es): mean held-out BCE {v['mean']:.4f}{sd}")
    lines += ["", "The seconds are wall time of the fit alone, one thread per process."]
    if out.get("task", "ring") == "ring":
        lines[-1] += (" They were measured beside another one-thread job, so only roughly comparable. On a network "
                      "this small the all-reduce of every batch costs about what half a batch saves, so two "
                      "processes train no faster here.")
    lines.append("")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--out", default="docs/ddp_training.json")
    ap.add_argument("--task", default="ring", choices=sorted(TASKS),
                    help="ring: the 8 x 96 MLP classifier on 2-D points; images: the CNN classifier on 8 x 8 digits")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        torch.set_num_threads(1)
        rec = train_one(args.seed, args.epochs, args.task)
        if os.environ.get("RANK", "0") == "0":
            print(json.dumps(rec))
        if distributed.launched():
            distributed.leave(0)
        return 0
    rows = [launch(int(s), p, args.epochs, args.task) for s in args.seeds.split(",") for p in (1, 2)]
    for r in rows:
        print(json.dumps(r))
    summary = {}
    for p in (1, 2):
        v = np.array([r["held_out_bce"] for r in rows if r["processes"] == p])
        summary[p] = {"mean": float(v.mean()), "sd": float(v.std(ddof=1)) if len(v) > 1 else None}
    out = {"task": args.task, "rows": rows, "summary": summary, "command": "python benchmarks/ddp_training.py " + " ".join(sys.argv[1:]),
           "machine": "2 cores, no GPU; one thread per process"}
    atomic_write_text(args.out, json.dumps(out, indent=1))
    atomic_write_text(os.path.splitext(args.out)[0] + ".md", render(out))
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
