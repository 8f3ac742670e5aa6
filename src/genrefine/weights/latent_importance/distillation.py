"""Distillation: ``w_φ(z)`` learns a kept teacher, so latent rejection still rejects before ``G``.

A teacher read on generated points, ``t(G(z))`` (the game's ``h`` or a classifier ratio), is
turned into a latent weight by least squares over fresh prior draws::

    min_φ  E_{z ~ γ} (w_φ(z) - min(t(G(z)), m))²

which is the clipped weight that latent rejection (Alg. 3 of the latent-reweighting paper)
uses with bound ``m``. A teacher that is itself a latent net of ``w_φ``'s shape is copied as it is.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from genrefine.weights.transport import regress_epochs


def _read(teacher: nn.Module, z: torch.Tensor, x: torch.Tensor, m: float) -> torch.Tensor:
    """``min(t, m)`` of ``teacher`` at ``z`` (``on_latent``) or at ``G(z) = x``, in chunks."""
    inputs = z if getattr(teacher, "on_latent", False) else x
    return torch.cat([teacher(c) for c in inputs.split(100_000)]).clamp(max=m)


def distil(student: nn.Module, generator, teacher: nn.Module, n: int, epochs: int, batch_size: int = 2000,
           patience: int | None = 3) -> dict:
    """Regress ``student(z)`` on ``min(teacher, m)`` over ``n`` prior draws for at most ``epochs``
    epochs (:func:`~genrefine.weights.transport.regress_epochs`: MSE, Adam 1e-3, cosine schedule),
    stopped once ``n / 10`` further draws held out of the fit stop improving for ``patience``
    epochs (None: every epoch runs). Returns :func:`agreement` on fresh draws with ``n``,
    ``epochs`` and the epochs run; ``{"copied": True}`` when the teacher is a latent net of the
    student's own class and configuration."""
    if getattr(teacher, "on_latent", False) and type(teacher) is type(student) and teacher.config() == student.config():
        student.load_state_dict(teacher.state_dict())
        student.eval()
        for p in student.parameters():
            p.requires_grad_(False)
        return {"corr": 1.0, "rel_rmse": 0.0, "copied": True}
    n_val = 0 if patience is None else max(n // 10, 2)
    with torch.no_grad():
        z, xg = generator.sample_with_latents(n + n_val)
        target = _read(teacher, z, xg, student.m)
    val = (z[n:], target[n:]) if n_val else None
    regress_epochs(student, z[:n], target[:n], epochs, batch_size, val=val, patience=patience or 0)
    return {**agreement(student, generator, teacher, n), "n": n, "epochs": epochs,
            "epochs_run": student.regress_["epochs_run"]}


@torch.no_grad()
def agreement(student: nn.Module, generator, teacher: nn.Module, n: int) -> dict:
    """How well ``student`` reproduces ``min(teacher, m)`` on ``n / 4`` fresh prior draws: their
    correlation and the RMSE relative to the teacher's standard deviation."""
    zc, xc = generator.sample_with_latents(max(n // 4, 2))
    tc = _read(teacher, zc, xc, student.m).double()
    wc = student.weight(zc).double()
    corr = float(torch.corrcoef(torch.stack([wc, tc]))[0, 1]) if tc.std() > 0 and wc.std() > 0 else math.nan
    rel_rmse = float((wc - tc).pow(2).mean().sqrt() / tc.std().clamp_min(1e-12))
    return {"corr": corr, "rel_rmse": rel_rmse}
