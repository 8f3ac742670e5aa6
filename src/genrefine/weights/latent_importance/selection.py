"""Which weights ``w_φ`` keeps: scores of what latent rejection delivers, and the check rule.

Every epoch of the game, every teacher candidate and every distilled ``w_φ`` is scored the same
way: the exact EMD between ``n`` held-out real points and the first ``n`` points that latent
rejection (Alg. 3 of the latent-reweighting paper: accept ``G(z)`` with probability
``min(w(z), m) / m``) accepts from a fixed generated pool ``pool_factor(m)`` times larger
(:func:`accepted_emd`). The uniforms are fixed per pool position, so two weight functions scored
on one pool accept the same points where they agree (paired scores).

A candidate replaces the start ``w ≈ 1`` only if it beats it on independent held-out parts
(:func:`confirms`): the mean paired gain over the parts must be positive and at least
``threshold`` standard errors (1 for one candidate, 2 for the best of several).
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from torch import Tensor, nn

from genrefine.threads import map_solves
from genrefine.weights.latent_importance.distillation import distil

#: held-out parts on which a candidate must confirm its gain over the start, and their size (at
#: most; never more than the validation set): more parts raise the check's t for the same gain
#: faster than larger ones (docs/decisions/latent_importance.md)
CHECK_PARTS = 16
CHECK_SIZE = 1000

Weigh = Callable[[Tensor, Tensor], Tensor]  # (z, G(z)) -> w


def pool_factor(m: float) -> int:
    """Generated draws per real point in the pools that :func:`accepted_emd` scores: ``2 m``
    (rounded up), so that about twice as many points as needed are accepted at mean weight 1."""
    return max(2, int(math.ceil(2 * float(m))))


def accepted_indices(w: Tensor, m: float, n: int) -> Tensor:
    """Positions of the first ``n`` pool points that latent rejection accepts, ``u < min(w, m) / m``,
    with the uniforms ``u`` fixed per pool position (seed 0): where two weight functions agree
    they accept the same points, so candidates scored on one pool are paired."""
    w = w.double().clamp(0, float(m))
    u = torch.rand(len(w), generator=torch.Generator().manual_seed(0), dtype=torch.float64).to(w.device)
    return torch.nonzero(u * float(m) < w).squeeze(1)[:int(n)]


def accepted_emd(x_real: Tensor, x_gen: Tensor, w: Tensor, m: float) -> float:
    """Exact EMD between ``x_real`` (n points) and the first n points of the pool ``x_gen`` that
    latent rejection accepts (:func:`accepted_indices`): what latentRS delivers, n unweighted
    draws of the reweighted distribution. (A pool *weighted* by ``w`` has an effective size
    ``(Σw)² / Σw²`` below n, and the EMD of finite samples grows as they shrink, so it would
    be biased against every non-flat ``w``.) ``inf`` when nothing is accepted."""
    return _emd_of(_accepted(x_real, x_gen, w, m))


def _accepted(x_real: Tensor, x_gen: Tensor, w: Tensor, m: float) -> tuple:
    """``(x_real, accepted points)`` as arrays for :func:`_emd_of`; ``None`` when nothing is accepted."""
    acc = accepted_indices(w, m, len(x_real))
    return None if len(acc) == 0 else (x_real.cpu().numpy(), x_gen[acc].cpu().numpy())


def _emd_of(pair: tuple | None) -> float:
    from genrefine.metrics import exact_emd

    return math.inf if pair is None else exact_emd(*pair)


def confirms(selected: list[float], initial: list[float], threshold: float = 1.0) -> bool:
    """The check's rule: the mean gain over the held-out parts (EMD of the start minus EMD of
    the candidate, paired on the same points) is positive and at least ``threshold`` standard
    errors (a one-sided paired t). With sixteen parts, t >= 1 passes a candidate that changes
    nothing 16% of the time; t >= 2 on the best of six passes a neutral set 17% of the time."""
    gains = np.array([b - a for a, b in zip(selected, initial)], dtype=float)
    if len(gains) < 2:
        return bool(len(gains) == 1 and gains[0] > 0)
    se = gains.std(ddof=1) / math.sqrt(len(gains))
    return bool(gains.mean() > 0 and gains.mean() >= threshold * se)


def weigh_with(module: nn.Module) -> Weigh:
    """``(z, G(z)) -> w`` of a weight network: read at ``z`` if it is ``on_latent``, else at ``G(z)``."""
    if getattr(module, "on_latent", False):
        return lambda z, x: module(z)
    return lambda z, x: module(x)


@dataclass
class HeldOut:
    """Held-out real rows ``x`` and their generated pool ``(z, G(z))``, ``pool_factor(m)`` times
    larger, cut into ``parts`` aligned parts."""

    x: Tensor
    z: Tensor
    xg: Tensor
    parts: int = 1

    @torch.no_grad()
    def score(self, weigh: Weigh, m: float) -> float:
        """:func:`accepted_emd` of the whole set."""
        return accepted_emd(self.x, self.xg, weigh(self.z, self.xg), m)

    @torch.no_grad()
    def scores(self, weigh: Weigh, m: float) -> list[float]:
        """:func:`accepted_emd` of every part (the parts' exact EMDs solved side by side)."""
        k = self.parts
        chunks = zip(self.x.chunk(k), self.z.chunk(k), self.xg.chunk(k))
        return map_solves(_emd_of, [_accepted(x, xg, weigh(z, xg), m) for x, z, xg in chunks])


def holdout_sizes(n: int, val_fraction: float) -> tuple[np.ndarray, int]:
    """The seeded permutation of ``n`` rows and the validation set's size: ``val_fraction`` of
    the rows, at most 3000 and at most ``n / (2 (1 + CHECK_PARTS))``, so that the validation set
    and the check's parts together hold out at most half the data."""
    perm = np.random.default_rng(0).permutation(n)
    return perm, min(3000, max(2, int(val_fraction * n)), n // (2 * (1 + CHECK_PARTS)))


def select_single(net, fold, generator, settings) -> None:
    """Choose ``w_φ``'s weights from one split's fold (:func:`~.fold.fit_fold`) and set the fitted
    attributes: the candidate (the game's selected epoch or a teacher) with the lowest mean on
    the check parts, if it :func:`confirms` its gain over the start; with ``inputs="data"`` its
    distillation into ``w_φ`` must confirm it again (t >= 1), else ``w_φ`` keeps its start."""
    game = fold.game
    net.history_, net.val_emd_initial_ = game.history, game.initial_val_emd
    net.selected_epoch_, net.val_emd_ = game.epoch, game.val_emd
    net.best_epoch_, net.val_emd_best_ = game.epoch, game.val_emd
    net.confirmed_, net.source_ = None, "game"
    net.candidates_ = fold.records or [{"source": "game", "epoch": game.epoch, "val_emd": game.val_emd}]
    if fold.transport is not None:
        net.transport_ = fold.transport
    chosen = fold.player
    if not fold.pool:  # the game never beat its start: nothing to check
        net.source_ = "start"
    else:
        i = int(np.argmin([r["check_emd"] for r in fold.records]))
        threshold = 2.0 if len(fold.pool) > 1 else 1.0  # the bar for the best of several
        net.check_emd_ = {"selected": fold.records[i]["check_emd"], "initial": float(np.mean(fold.initial_parts)),
                          "selected_parts": fold.parts[i], "initial_parts": fold.initial_parts, "threshold": threshold}
        net.confirmed_ = confirms(fold.parts[i], fold.initial_parts, threshold)
        if not net.confirmed_:
            net.selected_epoch_, net.val_emd_, net.source_ = 0, game.initial_val_emd, "start"
        elif fold.pool[i][0] == "game":
            fold.player.net.load_state_dict(game.best)
        else:
            net.source_, net.val_emd_, net.selected_epoch_ = fold.pool[i][0], fold.records[i]["val_emd"], None
            chosen = fold.pool[i][1].eval()
    net.__dict__["critic_"] = fold.critic
    if fold.player is not net:
        _distil_checked(net, fold, chosen, generator, settings)


def _distil_checked(net, fold, teacher: nn.Module, generator, settings) -> None:
    """``inputs="data"``: distil the kept teacher into ``w_φ``; the distilled net must pass the
    t >= 1 check on the same parts, else ``w_φ`` falls back to its start."""
    fold.player.eval()
    for p in fold.player.parameters():
        p.requires_grad_(False)
    net.__dict__["teacher_"] = teacher
    net.distil_ = None
    if net.source_ == "start":  # w_φ keeps its start, w ≈ 1
        return
    start = copy.deepcopy(net.net.state_dict())
    net.distil_ = distil(net, generator, teacher, int(settings.distil_size), int(settings.distil_epochs),
                         patience=settings.distil_patience)
    net.distil_["val_emd"] = fold.val.score(weigh_with(net), net.m)
    own = fold.check.scores(weigh_with(net), net.m)
    net.distil_["check_parts"] = own
    net.distil_["confirmed"] = confirms(own, net.check_emd_["initial_parts"])
    if not net.distil_["confirmed"]:
        net.net.load_state_dict(start)
        net.confirmed_ = False
        net.selected_epoch_, net.val_emd_, net.source_ = 0, net.val_emd_initial_, "start"
