"""One shared training loop for every network in genrefine (flows, classifiers, refiners,
critics): shuffled mini-batches on the data's device, exponential learning-rate decay per
epoch, a progress bar, and resumable checkpoints (safetensors + JSON, written atomically).

The model-specific part is a ``step(*batch) -> dict[str, float]`` callback that computes its
losses and steps its own optimizers, so GANs (several optimizers, k critic steps per
generator step) and maximum-likelihood models share the same loop.

Numeric faults are errors: a non-finite logged loss stops training with the epoch and the
value named (checked once per epoch on the sums the loop already keeps, so it costs no extra
device synchronisation and no random draw). A checkpoint carries a SHA-256 of its tensors and
its bookkeeping in the same file, so a truncated, overwritten or mismatched checkpoint is
refused in one line instead of resuming from wrong weights.
"""

from __future__ import annotations

import hashlib
import math
import numbers
import os
import time
import warnings
from typing import Callable

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from genrefine import distributed
from genrefine.checkpoint import load_with_record, module_state, restore_state, save_with_record

_META_KEY = "genrefine.training"  # safetensors metadata entry holding the checkpoint's JSON


def whole_number(value, name: str, minimum: int = 0) -> int:
    """``value`` as an int if it is a whole number >= ``minimum`` (2.0 passes, 2.5 and True do
    not); otherwise a one-line ValueError naming ``name``."""
    ok = isinstance(value, numbers.Integral) and not isinstance(value, bool)
    if not ok and isinstance(value, numbers.Real) and not isinstance(value, bool):
        ok = math.isfinite(value) and float(value).is_integer()
    if not ok or int(value) < minimum:
        raise ValueError(f"{name} must be a whole number >= {minimum}, got {value!r}")
    return int(value)


#: the key of an ``on_epoch_end`` record that ends training after its epoch
STOP = "stop"

#: largest learning rate: Adam moves each parameter by up to ``lr`` a step, beyond 1 it only diverges
MAX_LEARNING_RATE = 1.0
#: a logged loss this many times larger than in the first epoch (or than 1) means training diverged
EXPLODED = 1e6


def positive_rate(value, name: str) -> float:
    """``value`` as a float if it lies in (0, :data:`MAX_LEARNING_RATE`] (a learning rate); else a
    one-line ValueError."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        v = math.nan
    if not (math.isfinite(v) and 0 < v <= MAX_LEARNING_RATE):
        raise ValueError(f"{name} must be a number in (0, {MAX_LEARNING_RATE:g}], got {value!r}")
    return v


def check_train_args(epochs, batch_size, gamma, optimizers: dict, checkpoint_every, desc: str) -> tuple[int, int]:
    """Validate :func:`train_loop`'s arguments at the edge; returns ``(epochs, batch_size)``."""
    epochs = whole_number(epochs, f"{desc}: epochs")
    batch_size = whole_number(batch_size, f"{desc}: batch_size", 1)
    whole_number(checkpoint_every, f"{desc}: checkpoint_every", 1)
    try:
        g = float(gamma)
    except (TypeError, ValueError):
        g = math.nan
    if not 0 < g <= 1:  # NaN fails too
        raise ValueError(f"{desc}: gamma (learning-rate decay per epoch) must lie in (0, 1], got {gamma!r}")
    for name, opt in optimizers.items():
        for group in opt.param_groups:
            positive_rate(group["lr"], f"{desc}: learning rate of '{name}'")
    return epochs, batch_size


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
    on_epoch_end: Callable[[int], dict | None] | None = None,
) -> list[dict]:
    """Run ``epochs`` passes over ``tensors`` (aligned along dim 0) in shuffled batches.

    Args:
        step: called with one batch slice of each tensor; does its own backward/optimizer
            steps and returns scalar logs (losses, diagnostics), all expected finite.
        modules, optimizers: what a checkpoint holds (by name).
        epochs: whole number >= 0; batch_size: >= 1 (capped at the number of rows).
        gamma: learning rates are multiplied by ``gamma`` in (0, 1] after each epoch.
        on_epoch_end: called with the epoch's index after its record is made; a dict it returns
            joins that record (a monitor's score), an exception it raises ends training, and
            ``{STOP: True}`` in it ends training after this epoch (early stopping: the checkpoint
            records it, so a resumed run stops there too).
        checkpoint: path prefix; ``<prefix>.safetensors`` (+ a readable ``<prefix>.json``) is
            written every ``checkpoint_every`` epochs and at the end. If it exists, training
            resumes there; one that does not fit ``modules`` or fails its hash is refused.

    Returns:
        One dict per epoch with the mean of each logged value and the epoch's seconds.

    Raises:
        ValueError: a bad argument, an unusable checkpoint, or a non-finite logged value
            (training stops at that epoch; no checkpoint of the diverged state is written).
    """
    epochs, batch_size = check_train_args(epochs, batch_size, gamma, optimizers, checkpoint_every, desc)
    n = len(tensors[0])
    if n == 0:
        raise ValueError(f"{desc}: no training data")
    if any(len(t) != n for t in tensors):
        raise ValueError(f"{desc}: training tensors have different lengths")
    batch_size = min(batch_size, n)
    scheds = [torch.optim.lr_scheduler.ExponentialLR(o, gamma=gamma) for o in optimizers.values()]
    device = tensors[0].device
    history, start, epochs = _resume_point(checkpoint, modules, optimizers, scheds, device, desc, epochs)
    n_batches = n // batch_size
    rank = distributed.rank_and_size()[0]
    ranks = _Ranks.join(modules, optimizers, batch_size, desc)
    bar = tqdm(range(start, epochs), desc=desc, disable=not progress or rank != 0, leave=False, initial=start,
               total=epochs)
    try:
        for epoch in bar:
            t0 = time.perf_counter()
            for m in modules.values():
                m.train()
            sums = _epoch(step, tensors, n, batch_size, n_batches, device, ranks)
            _step_schedules(scheds)
            rec = {k: v / n_batches for k, v in sums.items()}
            _check_finite_logs(rec, epoch + 1, epochs, desc, history[0] if history else rec)
            rec["epoch"] = epoch + 1
            rec["seconds"] = time.perf_counter() - t0
            history.append(rec)
            bar.set_postfix({k: f"{v:.4g}" for k, v in rec.items() if k not in ("epoch", "seconds")})
            stop = _monitor(on_epoch_end, epoch, rec)
            if checkpoint and rank == 0 and (stop or (epoch + 1) % checkpoint_every == 0 or epoch + 1 == epochs):
                save_training_checkpoint(checkpoint, modules, optimizers, scheds, epoch + 1, history, stopped=stop)
            if stop:
                break
    finally:
        if ranks is not None:
            ranks.close()
    bar.close()
    for m in modules.values():
        m.eval()
    return history


def _step_schedules(scheds) -> None:
    """One epoch's step of every learning-rate schedule. The schedule is per epoch: an optimizer
    that steps every k-th batch (a GAN's generator) may not have stepped yet in a short first
    epoch, which PyTorch warns of; that warning says nothing to a user and is not shown."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"Detected call of `lr_scheduler\.step\(\)`")
        for s in scheds:
            s.step()


def _resume_point(checkpoint, modules, optimizers, scheds, device, desc: str, epochs: int) -> tuple[list, int, int]:
    """``(history, first epoch, last epoch)``: from the checkpoint when there is one (a run that
    ended early there, by :data:`STOP`, has nothing left to train), else from the start."""
    if not (checkpoint and _checkpoint_exists(checkpoint)):
        return [], 0, epochs
    history, start, stopped = resume_training(checkpoint, modules, optimizers, scheds, device, desc)
    return history, start, (start if stopped else epochs)


def _monitor(on_epoch_end, epoch: int, rec: dict) -> bool:
    """Call ``on_epoch_end``: a dict it returns joins the epoch's record (a monitor's score);
    returns whether it asked to stop (:data:`STOP`)."""
    extra = on_epoch_end(epoch) if on_epoch_end is not None else None
    if not isinstance(extra, dict):
        return False
    stop = bool(extra.pop(STOP, False))
    rec.update(extra)
    return stop


def _epoch(step, tensors, n: int, batch_size: int, n_batches: int, device, ranks) -> dict[str, float]:
    """One pass of shuffled batches; returns the summed logs. Under torchrun (``ranks``) every
    rank draws the same permutation and steps on its own share of each batch."""
    if ranks is None:
        perm = torch.randperm(n, device=device)
    else:
        perm = torch.randperm(n, generator=ranks.order, device="cpu").to(device)
    sums: dict[str, float] = {}
    for b in range(n_batches):
        idx = perm[b * batch_size:(b + 1) * batch_size]
        if ranks is not None:
            idx = idx[ranks.rank::ranks.world]
            ranks.sync.share = len(idx) / batch_size
        logs = step(*(t[idx] for t in tensors))
        for k, v in logs.items():
            sums[k] = sums.get(k, 0.0) + float(v) * (1.0 if ranks is None else ranks.sync.share)
    if ranks is not None:
        sums = ranks.sync.sum(sums)
        ranks.sync.sync_buffers()
    return sums


class _Ranks:
    """A training loop's state under torchrun: the gradient averaging
    (:class:`~genrefine.distributed.DataParallel`), the batch order every rank shares, and each
    rank's own random stream for what the steps draw (latents, noise); on :meth:`close` the
    ranks go back to one shared stream."""

    @classmethod
    def join(cls, modules: dict, optimizers: dict, batch_size: int, desc: str) -> "_Ranks | None":
        """The loop's state under torchrun; None in one process."""
        world = distributed.rank_and_size()[1]
        if world == 1:
            return None
        if world > batch_size:
            raise ValueError(f"{desc}: batch_size {batch_size} is smaller than the {world} processes sharing each batch")
        return cls(modules, optimizers)

    def __init__(self, modules: dict, optimizers: dict) -> None:
        self.rank, self.world = distributed.rank_and_size()
        self.seed = distributed.shared_seed()
        self.order = torch.Generator().manual_seed(self.seed)
        self.sync = distributed.DataParallel(modules, optimizers)
        torch.manual_seed(self.seed + 1 + self.rank)

    def close(self) -> None:
        self.sync.close()
        torch.manual_seed(self.seed)


def _check_finite_logs(rec: dict, epoch: int, epochs: int, desc: str, first: dict) -> None:
    # A NaN or inf in any batch makes the epoch's sum non-finite, so one test per epoch sees it;
    # a finite loss can still have exploded (EXPLODED times the first epoch's)
    for k, v in rec.items():
        exploded = math.isfinite(v) and abs(v) > EXPLODED * max(1.0, abs(first.get(k, 0.0)))
        if not math.isfinite(v) or exploded:
            what = "exploded" if exploded else "non-finite"
            raise ValueError(f"{desc}: {what} loss at epoch {epoch} of {epochs}: {k} = {v:.4g} "
                             "(training diverged; a smaller learning rate often helps)")


def tensor_digest(tensors: dict[str, Tensor]) -> str:
    """SHA-256 over the tensors' names, dtypes, shapes and bytes, in name order (CPU tensors):
    the hash training checkpoints record (saved models use :func:`genrefine.checkpoint.tensor_digest`;
    each keeps its own so files already written still verify)."""
    h = hashlib.sha256()
    for k in sorted(tensors):
        t = tensors[k].detach().contiguous()
        h.update(f"{k}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy())
    return h.hexdigest()


def _checkpoint_exists(prefix: str) -> bool:
    return os.path.exists(prefix + ".safetensors")


def save_training_checkpoint(prefix, modules, optimizers, scheds, epoch, history, stopped: bool = False) -> None:
    """Write ``<prefix>.safetensors`` holding the tensors and, in its metadata, the JSON
    bookkeeping with the tensors' hash: one atomic file, so a crash never pairs new weights
    with old bookkeeping. ``<prefix>.json`` repeats the bookkeeping for people to read."""
    tensors, info = module_state(modules, optimizers)
    tensors["rng.cpu"] = torch.get_rng_state()
    info.update(epoch=epoch, history=history, sched_last_epoch=[s.last_epoch for s in scheds], stopped=bool(stopped))
    save_with_record(prefix, info, tensors, _META_KEY, digest=tensor_digest)


def _load_checkpoint(prefix: str, device) -> tuple[dict, dict]:
    """``(tensors, info)`` of a training checkpoint; every failure is one ValueError line."""
    info, tensors = load_with_record(prefix, _META_KEY, "training checkpoint", device, digest=tensor_digest)
    if not isinstance(info.get("epoch"), int):
        raise ValueError(f"{prefix}.safetensors: training checkpoint lacks its bookkeeping (epoch)")
    return tensors, info


def _check_shapes(tensors: dict, modules: dict[str, nn.Module]) -> str | None:
    """The first way the saved module tensors differ from ``modules`` (None if they fit)."""
    for name, m in modules.items():
        prefix = f"module.{name}."
        saved = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
        own = m.state_dict()
        for k, v in own.items():
            if k not in saved:
                return f"'{name}' has '{k}' but the checkpoint does not"
            if tuple(saved[k].shape) != tuple(v.shape):
                return f"'{name}.{k}' has shape {tuple(v.shape)}, the checkpoint {tuple(saved[k].shape)}"
        extra = sorted(set(saved) - set(own))
        if extra:
            return f"the checkpoint has '{name}.{extra[0]}', which the model lacks"
    return None


def resume_training(prefix: str, modules, optimizers, scheds, device, desc: str) -> tuple[list, int, bool]:
    """Restore modules, optimizers, schedules and the CPU random state from ``prefix``;
    returns ``(history, epoch, stopped)`` (``stopped``: training ended early there). A
    checkpoint that does not fit is one ValueError line."""
    path = prefix + ".safetensors"
    tensors, info = _load_checkpoint(prefix, device)
    bad = _check_shapes(tensors, modules)
    if bad is None and "rng.cpu" not in tensors:
        bad = "it has no random state"
    if bad is None:
        try:
            restore_state(tensors, info, modules, optimizers)
            lasts = list(info["sched_last_epoch"])
            if len(lasts) != len(scheds):
                raise ValueError(f"{len(lasts)} schedules saved, {len(scheds)} in use")
            for s, last in zip(scheds, lasts):
                s.last_epoch = int(last)
            torch.set_rng_state(tensors["rng.cpu"].cpu())
            history = list(info["history"])
        except (KeyError, ValueError, RuntimeError, TypeError) as exc:
            bad = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if bad is not None:
        raise ValueError(f"{desc}: cannot resume from {path}: {bad}; remove it to train from scratch")
    return history, int(info["epoch"]), bool(info.get("stopped", False))


def regress(predict: Callable[[Tensor], Tensor], params, x: Tensor, target: Tensor, steps: int, batch_size: int,
            lr: float, desc: str, progress: bool = True) -> None:
    """Distillation: fit ``predict(x[j]) ≈ target[j]`` by mean squared error, Adam with a cosine
    schedule, ``steps`` random batches of ``batch_size`` rows (the rejection steps' students).

    The losses are summed on the device (float64) and checked at the loop's existing
    synchronisation points (every 100 steps and at the end): a non-finite loss is a
    ValueError naming ``desc``, the step and the value.
    """
    steps = whole_number(steps, f"{desc}: steps")
    batch_size = whole_number(batch_size, f"{desc}: batch_size", 1)
    lr = positive_rate(lr, f"{desc}: learning rate")
    if len(x) == 0:
        raise ValueError(f"{desc}: no training data")
    opt = torch.optim.Adam(params, lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    total = torch.zeros((), dtype=torch.float64, device=x.device)
    bar = tqdm(range(steps), desc=desc, disable=not progress, leave=False)
    for i in bar:
        j = torch.randint(0, len(x), (batch_size,), device=x.device)
        loss = (predict(x[j]) - target[j]).pow(2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        total += loss.detach()
        if i % 100 == 0:
            value = loss.item()
            _check_regress(total, value, i + 1, steps, desc)
            bar.set_postfix(mse=f"{value:.3g}")
    bar.close()
    if steps:
        _check_regress(total, loss.item(), steps, steps, desc)


def _check_regress(total: Tensor, value: float, step: int, steps: int, desc: str) -> None:
    # float64 sum of float32 squares: non-finite only if some step's loss was.
    if not math.isfinite(total.item()):
        raise ValueError(f"{desc}: non-finite loss by step {step} of {steps}: mse = {value} "
                         "(training diverged; a smaller learning rate often helps)")
