"""Choosing the number and size of gradient steps (latentGA, latentRS+GA, DOT) on held-out data:
the latent reweighting paper's grid search (Appendix E)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

import numpy as np
import torch

from genrefine.generators.base import Generator
from genrefine.metrics import exact_emd

if TYPE_CHECKING:  # pragma: no cover
    from genrefine.methods.context import RunContext


def select_by_val_emd(make: Callable[[int, float], object], base: Generator, x_val: np.ndarray,
                      grid_steps=(0, 2, 5, 10, 50), grid_eps=(0.01, 0.05, 0.1), seed: int = 0) -> dict:
    """The paper's grid search for gradient-step samplers (Appendix E): for every
    ``(n_steps, step_size)`` draw ``len(x_val)`` samples with ``make(n_steps, step_size)``
    (same seed for every candidate, so all start from the same latents) and keep the pair whose
    samples have the lowest exact EMD to the held-out ``x_val``; ties go to the earlier pair, so
    put ``0`` (no steps) first in ``grid_steps`` to prefer leaving the samples alone.
    Returns ``{"n_steps", "step_size", "val_emd", "grid"}``."""
    grid = []
    for n_steps in grid_steps:
        for eps in (grid_eps[:1] if int(n_steps) == 0 else grid_eps):  # no steps: ε is irrelevant
            torch.manual_seed(seed)
            z = make(int(n_steps), float(eps)).sample(len(x_val))
            grid.append({"n_steps": int(n_steps), "step_size": float(eps),
                         "val_emd": exact_emd(x_val, base.generate(z).cpu().numpy())})
    best = min(grid, key=lambda g: g["val_emd"])
    return {**best, "grid": grid}


def choose_steps(ctx: "RunContext", name: str, make: Callable[[int, float], object], n_steps: int = 10,
                 step_size: float = 0.05, select: bool = False, grid_steps=(0, 2, 5, 10, 50),
                 grid_eps=(0.01, 0.05, 0.1)) -> dict:
    """``{"n_steps", "step_size"}`` of method ``name``: the given pair, or with ``select`` the
    pair :func:`select_by_val_emd` picks on ``ctx.x_val()`` (its grid goes to
    ``ctx.diagnostics[name + "_selection"]``)."""
    if not select:
        return {"n_steps": n_steps, "step_size": step_size}
    sel = ctx.timed(f"select_{name}", lambda: select_by_val_emd(make, ctx.base, ctx.x_val(), grid_steps, grid_eps))
    ctx.diagnostics[f"{name}_selection"] = sel
    return {"n_steps": sel["n_steps"], "step_size": sel["step_size"]}
