"""One shared training loop for every network in genrefine (flows, classifiers, refiners,
critics): shuffled mini-batches on the data's device, exponential learning-rate decay per
epoch, a progress bar, and resumable checkpoints (safetensors + JSON, written atomically).

The model-specific part is a ``step(*batch) -> dict[str, float]`` callback that computes its
losses and steps its own optimizers, so GANs (several optimizers, k critic steps per
generator step) and maximum-likelihood models share the same loop.
"""

from __future__ import annotations

import json
import os
import time
from typing import Callable

import torch
from safetensors.torch import load_file
from torch import Tensor, nn
from tqdm.auto import tqdm

from genrefine.checkpoint import atomic_save_tensors, atomic_write_text, module_state, restore_state


def train_loop(
    step: Callable[..., dict],
    tensors: tuple[Tensor, ...],
    modules: dict[str, nn.Module],
    optimizers: dict[str, torch.optim.Optimizer],
    epochs: int,
    batch_size: int,
    gamma: float = 0.999,
    desc: str = "training",
    progress: bool = True,
    checkpoint: str | None = None,
    checkpoint_every: int = 10,
    on_epoch_end: Callable[[int], None] | None = None,
) -> list[dict]:
    """Run ``epochs`` passes over ``tensors`` (aligned along dim 0) in shuffled batches.

    Args:
        step: called with one batch slice of each tensor; does its own backward/optimizer
            steps and returns scalar logs.
        modules, optimizers: what a checkpoint holds (by name).
        gamma: learning rates are multiplied by ``gamma`` after each epoch.
        checkpoint: path prefix; ``<prefix>.safetensors`` + ``<prefix>.json`` are written every
            ``checkpoint_every`` epochs and at the end. If they exist, training resumes there.

    Returns:
        One dict per epoch with the mean of each logged value and the epoch's seconds.
    """
    n = len(tensors[0])
    if n == 0:
        raise ValueError(f"{desc}: no training data")
    if any(len(t) != n for t in tensors):
        raise ValueError(f"{desc}: training tensors have different lengths")
    batch_size = min(int(batch_size), n)
    scheds = [torch.optim.lr_scheduler.ExponentialLR(o, gamma=gamma) for o in optimizers.values()]
    history: list[dict] = []
    start = 0
    device = tensors[0].device
    if checkpoint and os.path.exists(checkpoint + ".json") and os.path.exists(checkpoint + ".safetensors"):
        with open(checkpoint + ".json") as fh:
            info = json.load(fh)
        saved = load_file(checkpoint + ".safetensors", device=str(device))
        restore_state(saved, info, modules, optimizers)
        for s, last in zip(scheds, info["sched_last_epoch"]):
            s.last_epoch = last
        torch.set_rng_state(saved["rng.cpu"].cpu())
        history = info["history"]
        start = info["epoch"]
    n_batches = n // batch_size
    bar = tqdm(range(start, epochs), desc=desc, disable=not progress, leave=False, initial=start, total=epochs)
    for epoch in bar:
        t0 = time.perf_counter()
        for m in modules.values():
            m.train()
        perm = torch.randperm(n, device=device)
        sums: dict[str, float] = {}
        for b in range(n_batches):
            idx = perm[b * batch_size:(b + 1) * batch_size]
            logs = step(*(t[idx] for t in tensors))
            for k, v in logs.items():
                sums[k] = sums.get(k, 0.0) + float(v)
        for s in scheds:
            s.step()
        rec = {k: v / n_batches for k, v in sums.items()}
        rec["epoch"] = epoch + 1
        rec["seconds"] = time.perf_counter() - t0
        history.append(rec)
        bar.set_postfix({k: f"{v:.4g}" for k, v in rec.items() if k not in ("epoch", "seconds")})
        if on_epoch_end is not None:
            on_epoch_end(epoch)
        if checkpoint and ((epoch + 1) % checkpoint_every == 0 or epoch + 1 == epochs):
            save_training_checkpoint(checkpoint, modules, optimizers, scheds, epoch + 1, history)
    bar.close()
    for m in modules.values():
        m.eval()
    return history


def save_training_checkpoint(prefix, modules, optimizers, scheds, epoch, history) -> None:
    tensors, info = module_state(modules, optimizers)
    tensors["rng.cpu"] = torch.get_rng_state()
    info.update(epoch=epoch, history=history, sched_last_epoch=[s.last_epoch for s in scheds])
    atomic_save_tensors(tensors, prefix + ".safetensors")
    atomic_write_text(prefix + ".json", json.dumps(info))


def regress(predict: Callable[[Tensor], Tensor], params, x: Tensor, target: Tensor, steps: int, batch_size: int,
            lr: float, desc: str, progress: bool = True) -> None:
    """Distillation: fit ``predict(x[j]) ≈ target[j]`` by mean squared error, Adam with a cosine
    schedule, ``steps`` random batches of ``batch_size`` rows (the rejection steps' students)."""
    opt = torch.optim.Adam(params, lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, int(steps))
    bar = tqdm(range(int(steps)), desc=desc, disable=not progress, leave=False)
    for i in bar:
        j = torch.randint(0, len(x), (int(batch_size),), device=x.device)
        loss = (predict(x[j]) - target[j]).pow(2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if i % 100 == 0:
            bar.set_postfix(mse=f"{loss.item():.3g}")
    bar.close()
