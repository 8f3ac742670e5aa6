"""One split of the rows: play the game, train the teacher candidates, score them all on the
held-out check parts. A single-split fit runs one fold; a cross-fitted fit runs ``K``."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor, nn

from genrefine.generators.critic import Critic
from genrefine.weights.latent_importance.game import DataWeightNetwork, GameResult, play
from genrefine.weights.latent_importance.selection import CHECK_SIZE, HeldOut, pool_factor, weigh_with
from genrefine.weights.latent_importance.teachers import train_teachers


@dataclass
class Fold:
    """A played and scored split. ``pool`` lists the candidates ``(source, module)`` that were
    scored (the game's epoch first, when it beat its start), ``records`` their validation and
    mean check scores, ``parts`` their per-part check scores, ``initial_parts`` the start's."""

    player: nn.Module
    critic: Critic
    game: GameResult
    val: HeldOut
    check: HeldOut
    pool: list = field(default_factory=list)
    records: list = field(default_factory=list)
    parts: list = field(default_factory=list)
    initial_parts: list = field(default_factory=list)
    transport: dict | None = None


def check_generated(x: Tensor, name: str) -> None:
    bad = ~torch.isfinite(x)
    if bad.any():
        raise ValueError(f"{name}: returned {int(bad.any(-1).sum())} samples with NaN or inf values")


def fit_fold(student: nn.Module, generator, x_val: Tensor, x_chk: Tensor, x: Tensor, critic: Critic | None, s,
             progress: bool = True, checkpoint: str | None = None, transport_pairs: tuple | None = None) -> Fold:
    """Train on the rows ``x``; pick the game's epoch on ``x_val``; score on ``x_chk``, cut into
    parts of the validation set's size (at most ``CHECK_SIZE``).

    ``student`` is this fold's latent net ``w_φ``: the player when ``s.inputs == "latent"``,
    else ``h(G(z))`` plays and ``student`` only gives ``m`` and the shape of latent candidates.
    The generated pools (game, validation, check) are drawn first, in that order; the critic
    starts from a copy of ``critic`` or, when ``None``, from a fresh 3 x 128 :class:`Critic`.
    ``transport_pairs`` (``(z, w)`` solved on ``x``'s rows beforehand) spare the transport
    candidate its own plans."""
    dev, m = x.device, student.m
    n_chk = min(CHECK_SIZE, len(x_val))
    n_parts = len(x_chk) // n_chk
    generator = generator.to(dev).freeze()
    z_pool, x_pool = generator.sample_with_latents(int(s.pool_size))
    check_generated(x_pool, "generator")
    k = pool_factor(m)
    val = HeldOut(x_val, *generator.sample_with_latents(max(k * len(x_val), 1)))
    check = HeldOut(x_chk, *generator.sample_with_latents(max(k * n_parts * n_chk, 1)), parts=n_parts)
    if s.inputs == "data":
        player = DataWeightNetwork(generator.data_dim, s.teacher_hidden, student.layers).to(dev)
        player.set_scale(x)
    else:
        player = student
    crit = copy.deepcopy(critic) if critic is not None else Critic(generator.data_dim, 128, 3,
                                                                    data_shape=generator.data_shape)
    crit = crit.to(dev)
    game = play(player, crit, x, (z_pool, x_pool), val, m, s, progress=progress, checkpoint=checkpoint)
    fold = Fold(player, crit, game, val, check)
    kept = copy.deepcopy(player).eval()  # the game's selected epoch (its start if none)
    if s.has_candidates:
        def new_latent_net() -> nn.Module:
            return type(student)(**student.config()).to(dev)
        candidates, fold.transport = train_teachers(("game" if game.epoch else "start", kept), x, x_pool, generator, m,
                                                    s, new_latent_net, progress=progress, pairs=transport_pairs)
    else:
        candidates = []
    fold.pool = ([("game", kept)] if game.epoch else []) + candidates
    if fold.pool:
        _score(fold, m)
    crit.eval()
    for p in crit.parameters():
        p.requires_grad_(False)
    return fold


def _score(fold: Fold, m: float) -> None:
    """Score the start and every candidate on the check parts (and the teachers on the
    validation set; the game's epoch keeps its validation score)."""
    game = fold.game
    fold.player.net.load_state_dict(game.initial)
    fold.initial_parts = fold.check.scores(weigh_with(fold.player), m)
    for src, cand in fold.pool:
        weigh = weigh_with(cand)
        if src == "game":
            rec = {"source": src, "epoch": game.epoch, "val_emd": game.val_emd}
        else:
            rec = {"source": src, "val_emd": fold.val.score(weigh, m)}
        fold.parts.append(fold.check.scores(weigh, m))
        rec["check_emd"] = float(np.mean(fold.parts[-1]))
        fold.records.append(rec)
