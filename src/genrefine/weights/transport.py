"""Transport weights: latent importance weights regressed on the exact W1-optimal reweighting
of generated samples.

For ``N`` generated points ``x_i = G(z_i)`` and ``M`` data points ``y_j``, the reweighting
``Σ_i (w_i / N) δ_{x_i}`` with ``0 <= w_i <= m`` and mean weight 1 that is closest to the data in
Wasserstein-1 distance is a linear program: a transport plan in which every generated point
supplies at most ``m / N`` of mass, every data point receives ``1 / M``, and the capacity left
over flows into a sink at zero cost. Solved exactly (POT's network simplex), ``w_i`` is ``N``
times what point ``i`` sends to the data. Where the generator over-produces, points are left
(partly) unused; where it under-produces, the nearest points are filled to ``m`` and the rest of
the data's mass goes to the next-nearest ones. Unlike a density ratio clipped at ``m`` and
renormalised, the excess mass is moved *locally*, which is what the EMD asks (docs/
latent_reweighting.md, item 25).

One chunk's weights are noisy (each point is used or not), but their conditional mean given
``z`` is a smooth reweighting; :func:`fit_transport` regresses a latent network ``w_φ(z)`` on the
weights of many independent chunks (fresh generated points each time), so it is learned directly
in latent space: no data-space teacher, and nothing lost to a distillation.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from genrefine.threads import map_solves, workers
from genrefine.validation import check_positive


@torch.no_grad()
def transport_weights(x_gen: Tensor, x_real: Tensor, m: float) -> Tensor:
    """Weights ``w`` (shape ``(N,)``, each in ``[0, m]``, mean 1) of the reweighting of ``x_gen``
    closest to the empirical measure of ``x_real`` in exact W1 (Euclidean cost). Needs
    ``m >= 1``; at ``m = 1`` every weight is 1.

    The linear program, with ``C_ij = |x_i - y_j|`` and a sink column ``s`` of zero cost::

        min_P  Σ_ij P_ij C_ij   s.t.  Σ_j P_ij + P_is = 1/N,  Σ_i P_ij = 1/(m M),  Σ_i P_is = (m-1)/m,  P >= 0

    and ``w_i = m N Σ_j P_ij``. (POT's ``ot.partial.partial_wasserstein`` solves the same problem
    with an extra zero-mass row; its weights agree with these only to about 1e-14, so seeded fits
    would not repeat, and the sink is built here.)"""
    check_positive(m, "m")
    if m < 1:
        raise ValueError(f"m must be >= 1 for weights of mean 1 bounded by m, got {m}")
    import ot

    n, k = len(x_gen), len(x_real)
    if n == 0 or k == 0:
        raise ValueError("transport_weights: empty generated or data sample")
    cost = torch.cdist(x_gen.double(), x_real.double()).cpu().numpy()
    a = np.full(n, 1.0 / n)
    b = np.full(k, 1.0 / (m * k))
    if m > 1:  # the sink takes the unused capacity at no cost
        cost = np.concatenate([cost, np.zeros((n, 1))], 1)
        b = np.concatenate([b, [(m - 1.0) / m]])
    plan = ot.emd(a, b, cost, numItermax=max(1_000_000, 50 * n * k))
    w = plan[:, :k].sum(1) * m * n
    return torch.as_tensor(w, dtype=x_gen.dtype, device=x_gen.device).clamp_(0.0, m)


def transport_pairs(generator, data: Tensor, m: float, passes: int = 5, chunk: int = 2000,
                    progress: bool = True) -> tuple[Tensor, Tensor]:
    """``(z, w)``: latents of fresh generated points and their transport weights.

    Each pass shuffles ``data`` into chunks of ``chunk`` rows (a remainder smaller than a chunk
    is left out of that pass); each chunk meets ``chunk`` fresh points ``G(z)`` and
    :func:`transport_weights` gives their weights. The points are drawn in order, a few chunks
    at a time, and the plans solved on the threads torch may use
    (:func:`genrefine.threads.map_solves`), so the pairs do not depend on the thread count."""
    check_positive(passes, "passes")
    check_positive(chunk, "chunk")
    data = torch.as_tensor(data, dtype=torch.float32)
    dev = data.device
    size = min(int(chunk), len(data))
    n_chunks = max(1, len(data) // size)
    tasks = [(p, c) for p in range(int(passes)) for c in range(n_chunks)]
    zs, ws, perm = [], [], None
    bar = tqdm(total=len(tasks), desc="transport weights", disable=not progress, leave=False)
    group = 2 * workers()
    for start in range(0, len(tasks), group):
        jobs = []
        for p, c in tasks[start:start + group]:
            if c == 0:
                perm = torch.randperm(len(data), device=dev)
            with torch.no_grad():
                z, xg = generator.sample_with_latents(size)
            zs.append(z.float())
            jobs.append((xg.float(), data[perm[c * size:(c + 1) * size]]))
        ws += [w.float() for w in map_solves(lambda job: transport_weights(*job, m), jobs)]
        bar.update(len(jobs))
    bar.close()
    return torch.cat(zs), torch.cat(ws)


def fit_transport(net: nn.Module, generator, data: Tensor, m: float, passes: int = 5, chunk: int = 2000,
                  epochs: int = 30, batch_size: int = 2000, lr: float = 1e-3, progress: bool = True) -> dict:
    """Train the latent network ``net`` (``z -> w >= 0``) to predict transport weights: the
    pairs of :func:`transport_pairs`, regressed by :func:`fit_on_pairs`. One pass gives too few
    targets (0-or-m values) and learns a blur; five passes are the preset
    (docs/decisions/latent_importance.md). Returns the fit's statistics."""
    data = torch.as_tensor(data, dtype=torch.float32, device=next(net.parameters()).device)
    z, w = transport_pairs(generator, data, m, passes, chunk, progress)
    return fit_on_pairs(net, z, w, epochs, batch_size, lr, passes=passes, chunk=min(int(chunk), len(data)))


def fit_on_pairs(net: nn.Module, z: Tensor, w: Tensor, epochs: int = 30, batch_size: int = 2000, lr: float = 1e-3,
                 passes: int | None = None, chunk: int | None = None) -> dict:
    """Regress ``net`` on transport pairs ``(z, w)`` by least squares (:func:`regress_epochs`),
    so that it learns ``E[w | z]``; returns the fit's statistics (``passes`` and ``chunk`` are
    recorded as given)."""
    regress_epochs(net, z, w, epochs, batch_size, lr)
    with torch.no_grad():
        pred = torch.cat([net(c) for c in z.split(100_000)])
    return {"pairs": int(len(w)), "passes": None if passes is None else int(passes),
            "chunk": None if chunk is None else int(chunk), "epochs": int(epochs),
            "used_fraction": float((w > 0).float().mean()), "mse": float((pred - w).pow(2).mean()),
            "weight_sd": float(pred.std())}


def regress_epochs(net: nn.Module, x: Tensor, target: Tensor, epochs: int, batch_size: int = 2000,
                   lr: float = 1e-3, val: tuple[Tensor, Tensor] | None = None, patience: int = 3) -> nn.Module:
    """Fit ``net(x_i) ≈ target_i`` by mean squared error: ``epochs`` shuffled passes of
    ``len(x) // batch_size`` batches, Adam with a cosine schedule to zero. Returns ``net`` in
    eval mode with its parameters frozen. (The latent weight nets' regression: transport weights
    here, a teacher's weights in the latent-importance distillation.)

    With ``val = (x_val, target_val)``, rows the fit never trains on, training stops once the
    held-out error has not fallen by 1% of its best for ``patience`` epochs, and ``net`` keeps
    the weights of its best epoch. ``net.regress_`` records the epochs run, and with ``val`` the
    best epoch and its held-out error."""
    for p in net.parameters():
        p.requires_grad_(True)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    n_b = max(1, len(target) // int(batch_size))
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, int(epochs) * n_b)
    best_err, best_epoch, best_state, last_gain = math.inf, -1, None, -1  # last_gain: last 1% gain
    ran = 0
    for epoch in range(int(epochs)):
        ran = epoch + 1
        net.train()
        perm = torch.randperm(len(target), device=x.device)
        for b in range(n_b):
            i = perm[b * batch_size:(b + 1) * batch_size]
            loss = (net(x[i]) - target[i]).pow(2).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
        if val is not None:
            err = _held_out_error(net, *val)
            if err < best_err:
                last_gain = epoch if err < 0.99 * best_err else last_gain
                best_err, best_epoch, best_state = err, epoch, {k: v.clone() for k, v in net.state_dict().items()}
            if epoch - last_gain >= int(patience):
                break
    net.regress_ = {"epochs_run": ran}
    if best_state is not None:
        net.load_state_dict(best_state)
        net.regress_.update(best_epoch=best_epoch + 1, val_mse=best_err)
    net.eval()
    for p in net.parameters():
        p.requires_grad_(False)
    return net


@torch.no_grad()
def _held_out_error(net: nn.Module, x: Tensor, target: Tensor) -> float:
    net.eval()
    return float(torch.cat([(net(c) - t).pow(2) for c, t in zip(x.split(100_000), target.split(100_000))]).mean())
