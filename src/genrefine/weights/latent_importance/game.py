"""The game of Alg. 1 (Eq. (6)) of the latent-reweighting paper (Issenhuth et al.).

With the generator ``G`` frozen, a weight player ``w >= 0`` and a critic ``D`` play

    critic (WGAN-GP):  max_D  E_data D(x) - E_z [w(z) / mean_batch(w)] D(G(z)) - λ_GP · GP       (Eq. (5))
    weights:           max_w  E_z w(z) (D(G(z)) - Δ) - λ1 (E_z w(z) - 1)² - λ2 E_z max(0, w(z) - m)²  (Eq. (6))

with ``Δ = min_batch D(G(z))``, so the reward never pushes weights to zero. The player is
``w_φ(z)`` itself (Alg. 1) or a network on the generated point, ``w(z) = h(G(z))``
(:class:`DataWeightNetwork`), which :mod:`.distillation` turns into ``w_φ(z)`` afterwards.

Two rules beyond Alg. 1 as printed, both needed for it to converge: the critic sees ``w``
divided by its detached batch mean (with raw ``w`` the critic drifts by a constant while
``E w != 1``), and its gradient-penalty weight is 10. Only forward passes of ``G`` are made, on
a pool drawn once. After every epoch the player (or its parameter average, ``ema``) is scored
by :meth:`~.selection.HeldOut.score` on the validation set; the best epoch, the start included,
is kept.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from genrefine.generators.critic import Critic, gradient_penalty
from genrefine.nn import mlp
from genrefine.training import STOP, train_loop
from genrefine.weights.latent_importance.selection import HeldOut, weigh_with


class DataWeightNetwork(nn.Module):
    """``h(x) >= 0`` on standardised data-space points: the weight player when
    ``LatentImportanceNetwork.fit(inputs="data")``; same ReLU MLP and start (w ≈ 1) as ``w_φ``."""

    on_latent = False  # read at G(z)

    def __init__(self, data_dim: int, hidden: int, layers: int) -> None:
        super().__init__()
        self.net = mlp(int(data_dim), 1, int(hidden), int(layers), activation="relu")
        nn.init.constant_(self.net[-1].bias, 1.0)
        nn.init.normal_(self.net[-1].weight, std=1e-3)
        self.register_buffer("loc", torch.zeros(int(data_dim)))
        self.register_buffer("scale", torch.ones(int(data_dim)))

    def set_scale(self, x: Tensor) -> None:
        self.loc.copy_(x.mean(0))
        self.scale.copy_(x.std(0).clamp_min(1e-6))

    def forward(self, x: Tensor) -> Tensor:
        return torch.relu(self.net((x - self.loc) / self.scale).squeeze(-1))


@dataclass
class GameResult:
    """What :func:`play` leaves: the player's MLP state at the start and at the kept epoch
    (``epoch`` 0: the start), their validation scores, the per-epoch history and the critic."""

    initial: dict
    best: dict
    epoch: int
    val_emd: float
    initial_val_emd: float
    history: list
    critic: Critic


class _Steps:
    """One critic step and one weight step of Alg. 1 on batches of a fixed generated pool."""

    def __init__(self, player: nn.Module, critic: Critic, pool: tuple[Tensor, Tensor], m: float, s) -> None:
        self.player, self.critic, self.m, self.s = player, critic, float(m), s
        self.weigh = weigh_with(player)
        self.z_pool, self.x_pool = pool
        for p in list(critic.parameters()) + list(player.parameters()):
            p.requires_grad_(True)
        self.opt_w = torch.optim.Adam(player.parameters(), lr=s.lr_w, betas=tuple(s.betas))
        self.opt_d = torch.optim.Adam(critic.parameters(), lr=s.lr_d, betas=tuple(s.betas))
        self.ema = copy.deepcopy(player.net) if s.ema else None
        self.calls = 0

    def fakes(self, b: int) -> tuple[Tensor, Tensor]:
        idx = torch.randint(len(self.z_pool), (b,), device=self.z_pool.device)
        return self.z_pool[idx], self.x_pool[idx]

    def critic_step(self, xb: Tensor, use_w: bool = True) -> float:
        """Eq. (5) with the gradient penalty; the fakes weighted by ``w / mean_batch(w)``."""
        zf, xf = self.fakes(len(xb))
        if use_w:
            with torch.no_grad():
                w = self.weigh(zf, xf)
                w = w / w.mean().clamp_min(1e-12)
        else:
            w = torch.ones(len(xb), device=xb.device)
        w_dist = self.critic(xb).mean() - (w * self.critic(xf)).mean()
        loss = -w_dist + self.s.gp_weight * gradient_penalty(self.critic, xb, xf)
        self.opt_d.zero_grad(set_to_none=True)
        loss.backward()
        self.opt_d.step()
        return w_dist.item()

    def weight_step(self, b: int) -> dict:
        """Eq. (6): reward ``E w (D - Δ)``, self-normalisation λ1, soft-clipping λ2 at ``m``."""
        zf, xf = self.fakes(b)
        with torch.no_grad():
            d = self.critic(xf)
            d = d - d.min()
        w = self.weigh(zf, xf)
        reward = (w * d).mean()
        r_norm = (w.mean() - 1).pow(2)
        r_clip = torch.relu(w - self.m).pow(2).mean()
        loss = -reward + self.s.lambda1 * r_norm + self.s.lambda2 * r_clip
        self.opt_w.zero_grad(set_to_none=True)
        loss.backward()
        self.opt_w.step()
        if self.ema is not None:
            with torch.no_grad():
                for pa, p in zip(self.ema.parameters(), self.player.net.parameters()):
                    pa.lerp_(p, 1 - self.s.ema)
        return {"mean_w": w.mean().item(), "frac_above_m": (w > self.m).float().mean().item(),
                "frac_zero": (w == 0).float().mean().item()}

    def __call__(self, xb: Tensor) -> dict:
        """Alg. 1's inner loop: a critic step per batch, a weight step every ``n_critic`` batches."""
        logs = {"wasserstein": self.critic_step(xb)}
        self.calls += 1
        if self.calls % self.s.n_critic == 0:
            logs.update(self.weight_step(len(xb)))
        return logs


def play(player: nn.Module, critic: Critic, x: Tensor, pool: tuple[Tensor, Tensor], val: HeldOut, m: float, s,
         progress: bool = True, checkpoint: str | None = None) -> GameResult:
    """Play Alg. 1 for ``s.epochs`` epochs over the rows ``x`` after ``s.warmup`` critic-only steps,
    score the player (its ``ema`` average when set) on ``val`` after every epoch and leave the
    player at the best epoch (the start if none beat it); with ``s.patience``, stop once that many
    epochs pass without a new best. ``checkpoint`` makes it resumable. With ``s.epochs == 0``
    nothing is played: the start is scored and kept."""
    if not int(s.epochs):  # no game: the start is what is kept, and the critic is not needed
        state, score = copy.deepcopy(player.net.state_dict()), val.score(weigh_with(player), m)
        return GameResult(state, copy.deepcopy(state), 0, score, score, [], critic)
    steps = _Steps(player, critic, pool, m, s)
    nb = min(s.batch_size, len(x))
    for _ in range(int(s.warmup)):
        steps.critic_step(x[torch.randint(len(x), (nb,), device=x.device)], use_w=False)
    weigh = weigh_with(player)
    initial_val = val.score(weigh, m)
    initial = copy.deepcopy(player.net.state_dict())
    best, kept = copy.deepcopy(player.net), {"epoch": 0, "val_emd": initial_val}
    records: list[dict] = []

    def on_epoch_end(epoch: int) -> dict:
        if steps.ema is None:
            score = val.score(weigh, m)
        else:  # score the averaged weights, then go on with the live ones
            live = copy.deepcopy(player.net.state_dict())
            player.net.load_state_dict(steps.ema.state_dict())
            score = val.score(weigh, m)
            player.net.load_state_dict(live)
        records.append({"epoch": epoch + 1, "val_emd": score})
        if score < kept["val_emd"]:
            kept.update(epoch=epoch + 1, val_emd=score)
            best.load_state_dict((player.net if steps.ema is None else steps.ema).state_dict())
        # early stopping: ``patience`` epochs without a new best end the game
        return {STOP: bool(s.patience) and epoch + 1 - kept["epoch"] >= int(s.patience)}

    name = "h" if isinstance(player, DataWeightNetwork) else "w_phi"  # checkpoint names
    modules = {name: player, "critic": critic, "best": best, **({"ema": steps.ema} if steps.ema is not None else {})}
    history = train_loop(steps, (x,), modules, {name: steps.opt_w, "critic": steps.opt_d}, s.epochs, nb, 1.0,
                         desc="latent importance w_phi", progress=progress, checkpoint=checkpoint,
                         on_epoch_end=on_epoch_end)
    for rec, r in zip(history[-len(records):] if records else [], records):
        rec.update(r)
    player.net.load_state_dict(best.state_dict())
    return GameResult(initial, copy.deepcopy(best.state_dict()), kept["epoch"], kept["val_emd"], initial_val, history,
                      critic)
