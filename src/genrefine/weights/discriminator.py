"""Density ratios from a GAN discriminator fine-tuned with binary cross-entropy (the baselines
DRS, MH-GAN and SIR of the latent reweighting paper, Appendix E).

The critic at the end of adversarial training is copied and fine-tuned as a classifier of
real against generated samples with BCE, keeping a gradient penalty (the paper found
unregularised fine-tuning degrades fast). At the optimum ``D = p_data / (p_data + p_G)``, so
``r(x) = D / (1 - D) = exp(logit D(x))``. The epoch whose SIR samples are closest to held-out
data in exact EMD is kept ("select the best model in terms of EMD").

A few epochs of BCE do not turn a WGAN critic, whose scale is arbitrary, into calibrated odds:
its logit can span tens of nats where the true log ratio spans one, and the weights then sit
on a few points. So, unless ``calibrate=False`` (the paper's protocol, which has no such
step), the logit is rescaled by Platt scaling: ``a logit + b`` with ``a >= 0`` and ``b``
minimising the class-balanced BCE on the held-out rows, folded into the critic's last layer.
"""

from __future__ import annotations

import copy

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional as F

from genrefine.generators.base import Generator
from genrefine.generators.critic import Critic, gradient_penalty
from genrefine.training import train_loop
from genrefine.validation import check_array, check_positive

#: least share of the data held out (up to 2000 rows) to Platt-scale the critic's logit on
CALIBRATION_FRACTION = 0.1


class DiscriminatorRatio(nn.Module):
    """``r(x) = exp(logit D(x))`` from a fine-tuned copy of a critic; duck-compatible with
    :class:`~genrefine.weights.DensityRatioClassifier` (``log_weight``, ``weight``,
    ``log_weight_max``), so :func:`~genrefine.weights.latent_target` pulls it back to z."""

    def __init__(self, critic: Critic) -> None:
        super().__init__()
        self.critic = copy.deepcopy(critic)
        self.register_buffer("log_weight_max", torch.tensor(float("inf")))

    def logit(self, x: Tensor) -> Tensor:
        return self.critic(x)

    def log_weight(self, x: Tensor) -> Tensor:
        return self.critic(x)

    @torch.no_grad()
    def weight(self, x: Tensor, batch_size: int = 100_000) -> Tensor:
        x = torch.as_tensor(x, dtype=torch.float32, device=self.log_weight_max.device)
        return torch.cat([self.log_weight(c).exp() for c in x.split(batch_size)])

    def fit(self, generator: Generator, data, epochs: int = 5, batch_size: int = 256, lr: float = 1e-4,
            betas=(0.5, 0.9), gp_weight: float = 0.1, pool_size: int = 100_000, val_fraction: float = 0.02,
            select: bool = True, calibrate: bool = True, progress: bool = True,
            checkpoint: str | None = None) -> "DiscriminatorRatio":
        """Fine-tune with BCE (real = 1, ``G(z)`` = 0, balanced batches) plus ``gp_weight`` x the
        WGAN-GP penalty; keep the epoch (the start included) whose SIR draws from a fixed
        validation pool have the lowest exact EMD to held-out data; then, with ``calibrate``,
        Platt-scale the logit on the held-out rows (at least :data:`CALIBRATION_FRACTION` of the
        data, up to 2000 rows)."""
        check_positive(gp_weight, "gp_weight", allow_zero=True)
        dev = self.log_weight_max.device
        x = check_array(data, name="training data", dim=generator.data_dim, min_rows=4)
        perm = np.random.default_rng(1).permutation(len(x))
        held = max(val_fraction, CALIBRATION_FRACTION) if calibrate else val_fraction
        n_val = min(2000, max(2, int(held * len(x)))) if (select or calibrate) else 0
        x_val, x = torch.as_tensor(x[perm[:n_val]], device=dev).float(), torch.as_tensor(x[perm[n_val:]], device=dev).float()
        generator = generator.to(dev).freeze()
        _, x_pool = generator.sample_with_latents(int(pool_size))
        _, x_gval = generator.sample_with_latents(max(n_val, 1) * 10)
        gumbel = -torch.log(-torch.log(torch.rand(max(n_val, 1), 10, device=dev).clamp_min(1e-12)))
        for p in self.critic.parameters():
            p.requires_grad_(True)
        opt = torch.optim.Adam(self.critic.parameters(), lr=lr, betas=tuple(betas))
        best = copy.deepcopy(self.critic)

        def step(xb: Tensor) -> dict:
            xf = x_pool[torch.randint(len(x_pool), (len(xb),), device=dev)]
            loss = F.softplus(-self.critic(xb)).mean() + F.softplus(self.critic(xf)).mean()
            if gp_weight > 0:
                loss = loss + gp_weight * gradient_penalty(self.critic, xb, xf)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            return {"bce": loss.item()}

        scores = [self._val_emd(x_val, x_gval, gumbel)] if select else []
        best_epoch = [0]

        def on_epoch_end(epoch: int) -> None:
            if select:
                s = self._val_emd(x_val, x_gval, gumbel)
                if s < min(scores):
                    best_epoch[0] = epoch + 1
                    best.load_state_dict(self.critic.state_dict())
                scores.append(s)

        self.history_ = train_loop(step, (x,), {"discriminator": self.critic, "best": best}, {"adam": opt}, epochs,
                                   min(batch_size, len(x)), 1.0, desc="discriminator (BCE)", progress=progress,
                                   checkpoint=checkpoint, on_epoch_end=on_epoch_end)
        if select:
            self.critic.load_state_dict(best.state_dict())
            self.val_emd_, self.selected_epoch_ = scores[best_epoch[0]], best_epoch[0]
            self.val_emd_history_ = scores
        self.eval()
        for p in self.parameters():
            p.requires_grad_(False)
        if calibrate:
            self.platt_ = self._platt_scale(x_val, x_gval)
        with torch.no_grad():
            self.log_weight_max.fill_(float(self.log_weight(x_pool).max()))
        return self

    def _platt_scale(self, real: Tensor, fake: Tensor) -> tuple[float, float]:
        """Fold ``logit -> a logit + b`` into the critic's last layer, ``a >= 0`` and ``b`` minimising
        the class-balanced BCE of the held-out ``real`` against ``fake`` rows; returns ``(a, b)``."""
        with torch.no_grad():
            lr, lf = self.critic(real).double(), self.critic(fake).double()
        ab = torch.tensor([1.0, 0.0], dtype=torch.float64, requires_grad=True)
        opt = torch.optim.LBFGS([ab], lr=1.0, max_iter=200, line_search_fn="strong_wolfe")

        def loss() -> Tensor:
            opt.zero_grad()
            a = ab[0].clamp(min=0.0)
            value = F.softplus(-(a * lr + ab[1])).mean() + F.softplus(a * lf + ab[1]).mean()
            value.backward()
            return value
        opt.step(loss)
        a, b = max(float(ab[0].detach()), 0.0), float(ab[1].detach())
        last = [m for m in self.critic.modules() if isinstance(m, nn.Linear)][-1]  # the scalar output layer
        with torch.no_grad():
            last.weight.mul_(a)
            last.bias.mul_(a).add_(b)
        return a, b

    @torch.no_grad()
    def _val_emd(self, x_val: Tensor, x_gen: Tensor, gumbel: Tensor) -> float:
        """Exact EMD between the validation data and SIR draws (10 candidates each) from a
        fixed pool with fixed Gumbel noise (common random numbers across epochs)."""
        from genrefine.metrics import exact_emd

        lw = self.log_weight(x_gen).view(len(x_val), -1)
        pick = (lw + gumbel).argmax(1)
        chosen = x_gen.view(len(x_val), -1, x_gen.shape[-1])[torch.arange(len(x_val), device=x_gen.device), pick]
        return exact_emd(x_val.cpu().numpy(), chosen.cpu().numpy())


def fine_tune_critic(critic: Critic, generator: Generator, data, epochs: int = 5, batch_size: int = 256,
                     lr: float = 1e-4, betas=(0.5, 0.9), gp_weight: float = 0.1, pool_size: int = 100_000,
                     progress: bool = True, checkpoint: str | None = None) -> Critic:
    """DOT's critic: a copy of ``critic`` fine-tuned with the WGAN-GP loss against the frozen
    generator (Appendix E). Returns the copy, frozen."""
    dev = next(critic.parameters()).device
    x = torch.as_tensor(check_array(data, name="training data", dim=generator.data_dim, min_rows=2), device=dev).float()
    crit = copy.deepcopy(critic)
    for p in crit.parameters():
        p.requires_grad_(True)
    _, x_pool = generator.to(dev).freeze().sample_with_latents(int(pool_size))
    opt = torch.optim.Adam(crit.parameters(), lr=lr, betas=tuple(betas))

    def step(xb: Tensor) -> dict:
        xf = x_pool[torch.randint(len(x_pool), (len(xb),), device=dev)]
        w_dist = crit(xb).mean() - crit(xf).mean()
        loss = -w_dist + gp_weight * gradient_penalty(crit, xb, xf)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return {"wasserstein": w_dist.item()}

    crit.history_ = train_loop(step, (x,), {"critic": crit}, {"adam": opt}, epochs, min(batch_size, len(x)), 1.0,
                               desc="critic (WGAN-GP)", progress=progress, checkpoint=checkpoint)
    crit.eval()
    for p in crit.parameters():
        p.requires_grad_(False)
    return crit
