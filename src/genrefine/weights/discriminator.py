"""Density ratios from a GAN discriminator fine-tuned with binary cross-entropy (the baselines
DRS, MH-GAN and SIR of the latent reweighting paper, Appendix E).

The critic at the end of adversarial training is copied and fine-tuned as a classifier of
real against generated samples with BCE, keeping a gradient penalty (the paper found
unregularised fine-tuning degrades fast), and without an explicit calibration step. At the
optimum ``D = p_data / (p_data + p_G)``, so ``r(x) = D / (1 - D) = exp(logit D(x))``. The epoch
whose SIR samples are closest to held-out data in exact EMD is kept ("select the best model in terms of
EMD").
"""

from __future__ import annotations

import copy
import math

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional as F

from genrefine.generators.base import Generator
from genrefine.generators.critic import Critic, gradient_penalty
from genrefine.training import train_loop
from genrefine.validation import check_array, check_positive


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
            select: bool = True, progress: bool = True, checkpoint: str | None = None) -> "DiscriminatorRatio":
        """Fine-tune with BCE (real = 1, ``G(z)`` = 0, balanced batches) plus ``gp_weight`` x the
        WGAN-GP penalty; keep the epoch (the start included) whose SIR draws from a fixed
        validation pool have the lowest exact EMD to held-out data."""
        check_positive(gp_weight, "gp_weight", allow_zero=True)
        dev = self.log_weight_max.device
        x = check_array(data, name="training data", dim=generator.data_dim, min_rows=4)
        perm = np.random.default_rng(1).permutation(len(x))
        n_val = min(2000, max(2, int(val_fraction * len(x)))) if select else 0
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
        with torch.no_grad():
            self.log_weight_max.fill_(float(self.log_weight(x_pool).max()))
        return self

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
