"""The LaSeR refiner GAN ``z = Φ(y)``: an unweighted generator of the weighted latent space.

Trained on weighted latents ``(z_i, w_i)`` with the weighted binary cross-entropy of
Backes et al. (LaSeR Ref. [98]): the discriminator's real term is weighted,

    L_D = - Σ_i w_i log D(z_i) / Σ_i w_i - E_y log(1 - D(Φ(y))) + (γ/2) Σ_i w_i |∇D(z_i)|² / Σ_i w_i,
    L_Φ = - E_y log D(Φ(y)),

so at the optimum ``Φ(y)`` with ``y ~ N(0, I_L)`` is distributed as ``q(z) ∝ p(z) w(z)``.
Paper defaults (Sec. 4.1): L = 4, generator and discriminator MLPs 7 x 100 leaky ReLU,
Adam(1e-4, β = (0.5, 0.9)), lr x 0.999 per epoch, 4 discriminator updates per generator
update. Three additions make it converge fast and precisely (see docs/laser.md):

- residual start: ``Φ(y) = y[:N] + MLP(y)`` with a zero last layer, so training starts at
  the base latent p(z) and only has to move the mass that w moves;
- an exponential moving average of the generator's parameters, used for sampling;
- coupled auxiliary noise (common random numbers): the training latents ``z_i`` are prior
  draws, so ``y_i = (z_i, ε_i)`` with ``ε_i ~ N(0, I_{L-N})`` is an exact draw of
  ``N(0, I_L)``. Feeding the fake batch these ``y_i`` leaves every expectation in the loss
  unchanged, but while ``Φ`` is near the identity the real and fake batches sit on the same
  points, so the discriminator sees the weights' signal without the sampling noise of two
  independent batches. Without it the discriminator cannot resolve the small weight
  differences of a good base model (measured: its loss never leaves 2 log 2).
- an R1 gradient penalty on the (weighted) real latents (Mescheder et al. 2018), off by
  default: the weights' signal is small and a penalty strong enough to matter flattens it.

Discriminator rejection (``drs_hidden > 0``, on in the quick preset). A trained Φ leaves
thin bridges between modes that come from latent strips narrower than the generator can
resolve (docs/laser.md, "Where the GAN's residual sits"). The discriminator sees them: at its
optimum ``D(z) = log q(z) - log q_Φ(z)``. So after training, a small MLP ``s(z)`` (the
*student*, ``drs_layers`` hidden layers of ``drs_hidden`` units) is regressed on D's logits at Φ's own outputs
(distillation kept D's gain; a 4 x 48 student has about a ninth of D's multiply-adds), and sampling accepts ``y`` with
probability ``a(y) = min(1, exp(s(Φ(y)) - b))``, with the bound ``b`` at a quantile
(``fit_rejection(quantile=0.95)``) of ``s`` over Φ's outputs (discriminator rejection sampling, Azadi et al.
2019, with a quantile bound instead of the maximum: the few points above it are accepted
always, which keeps the acceptance near 0.9). The refiner's latent distribution is then the
:class:`RejectionPrior` ``N(y; 0, I) a(y) / Z``: ``prior.sample`` and ``prior.log_prob`` say
so, so HMC, rejection and a further refinement of the refined generator see the right density.
"""

from __future__ import annotations

import copy
import math
import warnings

import torch
from torch import Tensor, nn
from torch.distributions import Distribution
from torch.nn import functional as F

from genrefine.generators.base import Generator, register_family
from genrefine.samplers.rejection import (CANDIDATE_BATCH, LATENT_STUDENT_STEPS, SMALL_NET_CHUNK, RejectionPrior,
                                         accept_loop, check_bound_args, quantile_bound)
from genrefine.nn import mlp
from genrefine.samplers.squeeze import (MAX_DIM, SPAN_SIGMAS, SQUEEZE_MIN_ROWS, TabulatedBounds, squeezed_keep,
                                        student_bounds)
from genrefine.training import regress, train_loop
from genrefine.validation import check_array, check_weights


#: auxiliary noise dimensions beyond the latent's: the paper's L = 4 for a 2-d latent, and the
#: residual start ``Φ(y) = y[:N] + MLP(y)`` needs ``L >= N`` in any dimension
EXTRA_AUX_DIMS = 2


def default_aux_dim(latent_dim: int) -> int:
    """The refiner's noise dimension ``L = N + 2`` for a latent of dimension ``N``."""
    return int(latent_dim) + EXTRA_AUX_DIMS


@register_family("refiner_gan")
class RefinerGAN(Generator):
    """``z = Φ(y)``, ``y ~ N(0, I_aux_dim)``: a latent-space generator trained by weighted BCE.

    Example:
        >>> phi = RefinerGAN(latent_dim=2).fit(z, w, epochs=20)
        >>> z_refined = phi.sample(100_000)
    """

    def __init__(self, latent_dim: int, aux_dim: int | None = None, hidden: int = 100, layers: int = 7,
                 residual: bool = True, drs_hidden: int = 0, drs_layers: int = 4) -> None:
        aux_dim = default_aux_dim(latent_dim) if aux_dim is None else int(aux_dim)
        if residual and aux_dim < latent_dim:
            warnings.warn(f"refiner GAN: aux_dim {aux_dim} < latent dimension {latent_dim} turns off the residual "
                          f"start and the coupled noise, and Φ trains from scratch (it can collapse onto one mode); "
                          f"leave aux_dim unset ({default_aux_dim(latent_dim)} here) or set it >= {latent_dim}",
                          stacklevel=2)
        super().__init__(latent_dim=aux_dim, data_dim=latent_dim)
        self.aux_dim, self.hidden, self.layers = aux_dim, int(hidden), int(layers)
        self.residual = bool(residual) and self.aux_dim >= latent_dim
        self.net = mlp(self.aux_dim, latent_dim, self.hidden, self.layers)
        if self.residual:
            nn.init.zeros_(self.net[-1].weight)
            nn.init.zeros_(self.net[-1].bias)
        self.drs_hidden, self.drs_layers = int(drs_hidden), int(drs_layers)
        if self.drs_hidden < 0 or self.drs_layers < 0:
            raise ValueError(f"drs_hidden and drs_layers must be >= 0, got {drs_hidden} and {drs_layers}")
        if self.drs_hidden:
            self.student = mlp(latent_dim, 1, self.drs_hidden, self.drs_layers)
            # [bound b, log Z]; NaN until fitted (then sampling is plain Φ(y))
            self.register_buffer("drs_state", torch.full((2,), float("nan")))

    def config(self) -> dict:
        return {"latent_dim": self.data_dim, "aux_dim": self.aux_dim, "hidden": self.hidden,
                "layers": self.layers, "residual": self.residual, "drs_hidden": self.drs_hidden,
                "drs_layers": self.drs_layers}

    def forward(self, y: Tensor) -> Tensor:
        out = self.net(y)
        return out + y[:, : self.data_dim] if self.residual else out

    @property
    def rejects(self) -> bool:
        """Whether sampling thins Φ's outputs by the distilled discriminator (fitted DRS)."""
        return bool(self.drs_hidden) and bool(torch.isfinite(self.drs_state).all())

    def _log_accept_z(self, z: Tensor) -> Tensor:
        return (self.student(z).squeeze(-1) - self.drs_state[0]).clamp(max=0.0)

    def log_accept(self, y: Tensor) -> Tensor:
        """``log a(y) = min(0, s(Φ(y)) - b)``; zero when the refiner does not reject."""
        if not self.rejects:
            return torch.zeros(len(y), device=y.device)
        return self._log_accept_z(self(y))

    @property
    def prior(self) -> Distribution:
        """``N(0, I)`` on y, thinned by the rejection step when it is fitted (:class:`RejectionPrior`)."""
        base = super().prior
        if not self.rejects:
            return base
        return RejectionPrior(base, self.log_accept, self.drs_state[1].item())

    chunk_size = SMALL_NET_CHUNK

    @torch.no_grad()
    def propose(self, m: int, batch_size: int | None = None) -> tuple[Tensor, Tensor, Tensor]:
        """``m`` candidates ``(log a(y), y, Φ(y))`` with ``y ~ N(0, I)``: Φ and the rejection
        step's student run once per candidate, chunk by chunk (``log a = 0`` without the step).
        A batch of at least ``SQUEEZE_MIN_ROWS`` candidates of a latent the step can tabulate
        comes decided instead: ``(keep, y, Φ(y))``, the uniforms drawn here as :func:`thin` would
        draw them, and the student run only where its tabulated bounds leave ``keep`` open."""
        y = super().prior.sample((int(m),))
        chunk = int(batch_size or self.chunk_size)
        if not self.rejects:
            z = self.generate(y, batch_size)
            return z.new_zeros(len(z)), y, z
        envelope = self.envelope() if len(y) >= SQUEEZE_MIN_ROWS else None
        if envelope is not None:
            z = self.generate(y, chunk)
            log_u = torch.rand(len(z), dtype=z.dtype, device=z.device).log()
            return squeezed_keep(log_u, z, self._log_accept_z, envelope, chunk), y, z
        out = torch.cat([self._phi_and_log_accept(c) for c in y.split(chunk)])
        return out[:, -1], y, out[:, :-1]

    def envelope(self) -> TabulatedBounds | None:
        """Bounds of ``log a(z)`` tabulated over ``z ∈ [-5, 5]^N`` (the base latent's box) for
        latents of at most ``MAX_DIM`` dimensions (:mod:`genrefine.samplers.squeeze`); None
        otherwise. Built on first use, and again when the student or the bound changes."""
        if self.data_dim > MAX_DIM:
            return None
        if getattr(self, "_envelope", None) is None:
            span = torch.full((self.data_dim,), SPAN_SIGMAS)
            self._envelope = TabulatedBounds(self, lambda c, h: student_bounds(self.student, self.drs_state[0])(c, h),
                                             -span, span)
        return self._envelope

    def _phi_and_log_accept(self, y: Tensor) -> Tensor:
        z = self(y)
        return torch.cat([z, self._log_accept_z(z)[:, None]], 1)

    @torch.no_grad()
    def sample_with_latents(self, n: int, batch_size: int | None = None) -> tuple[Tensor, Tensor]:
        """``(y, Φ(y))`` with ``y`` from :attr:`prior`; with the rejection step, Φ runs once per
        candidate and its outputs are kept for the accepted ones."""
        if not self.rejects:
            return super().sample_with_latents(n, batch_size)
        return accept_loop(self.propose, n, math.exp(self.drs_state[1].item()), CANDIDATE_BATCH)

    def fit(self, z, w, epochs: int = 200, batch_size: int = 2000, lr: float = 1e-4, betas=(0.5, 0.9),
            gamma: float = 0.999, n_critic: int = 4, r1: float = 0.0, ema: float = 0.99, coupled: bool = True,
            disc_hidden: int = 100, disc_layers: int = 7, lr_d: float | None = None, progress: bool = True,
            checkpoint: str | None = None, drs: dict | None = None) -> "RefinerGAN":
        """Train on latent points ``z`` (n, N) with weights ``w`` (n,); returns self, frozen.

        ``z`` must be draws of this refiner's target prior p(z) when ``coupled`` (the LaSeR
        setting: z_i ~ p, x_i = g(z_i), w_i = w(x_i)). To refine a generator whose prior is a
        :class:`RejectionPrior`, pass proposals ``z ~ prior.proposal`` with weights
        ``w(g(z)) * exp(prior.log_ratio(z))`` (what ``genrefine refine --iterations`` does).
        ``lr_d`` is the discriminator's learning rate (default: ``lr``). When the refiner was
        built with ``drs_hidden > 0``, the rejection step is fitted afterwards by
        :meth:`fit_rejection` with the keyword arguments in ``drs``.
        """
        dev = self.device
        z = torch.as_tensor(check_array(z, name="latent points", dim=self.data_dim, min_rows=2), device=dev).float()
        w = torch.as_tensor(check_weights(w, name="latent weights", n=len(z)), device=dev).float()
        w = w / w.mean()
        disc = mlp(self.data_dim, 1, disc_hidden, disc_layers).to(dev)

        def D(v: Tensor) -> Tensor:
            return disc(v).squeeze(-1)
        self.__dict__["discriminator_"] = disc  # kept for inspection, not part of the saved model
        for p in self.parameters():
            p.requires_grad_(True)
        avg = copy.deepcopy(self.net)
        for p in avg.parameters():
            p.requires_grad_(False)
        opt_g = torch.optim.Adam(self.net.parameters(), lr=lr, betas=tuple(betas))
        opt_d = torch.optim.Adam(disc.parameters(), lr=lr if lr_d is None else lr_d, betas=tuple(betas))
        calls = [0]
        coupled = coupled and self.residual

        def aux(zb: Tensor) -> Tensor:
            eps = torch.randn(len(zb), self.aux_dim - (self.data_dim if coupled else 0), device=dev)
            return torch.cat([zb, eps], 1) if coupled else eps

        def step(zb: Tensor, wb: Tensor) -> dict:
            y = aux(zb)
            with torch.no_grad():
                fake = self(y)
            zr = zb.requires_grad_(r1 > 0)
            d_real = D(zr)
            d_fake = D(fake)
            wn = wb / wb.sum()
            loss_d = (wn * F.softplus(-d_real)).sum() + F.softplus(d_fake).mean()
            if r1 > 0:
                (grad,) = torch.autograd.grad(d_real.sum(), zr, create_graph=True)
                loss_d = loss_d + 0.5 * r1 * (wn * grad.pow(2).sum(-1)).sum()
            opt_d.zero_grad(set_to_none=True)
            loss_d.backward()
            opt_d.step()
            logs = {"loss_d": loss_d.item()}
            calls[0] += 1
            if calls[0] % n_critic == 0:
                loss_g = F.softplus(-D(self(y))).mean()
                opt_g.zero_grad(set_to_none=True)
                loss_g.backward()
                opt_g.step()
                with torch.no_grad():
                    for pa, p in zip(avg.parameters(), self.net.parameters()):
                        pa.lerp_(p, 1 - ema)
                logs["loss_g"] = loss_g.item() * n_critic  # averaged over all calls by the loop
            return logs

        self.history_ = train_loop(step, (z, w), {"refiner": self, "discriminator": disc, "ema": avg},
                                   {"generator": opt_g, "discriminator": opt_d}, epochs, batch_size, gamma,
                                   desc="LaSeR refiner GAN", progress=progress, checkpoint=checkpoint)
        self.net.load_state_dict(avg.state_dict())
        self.freeze()
        if self.drs_hidden:
            self.fit_rejection(disc, progress=progress, **(drs or {}))
        return self

    def fit_rejection(self, discriminator: nn.Module, quantile: float = 0.95, n: int = 400_000,
                      steps: int = LATENT_STUDENT_STEPS, batch_size: int = 2000, lr: float = 3e-3, progress: bool = True) -> "RefinerGAN":
        """Distil ``discriminator`` (logits at Φ's outputs) into the student and set the bound.

        The student is regressed (MSE, Adam, cosine schedule) on the discriminator's logits at
        ``n`` points ``Φ(y)``; the bound ``b`` is the ``quantile`` of its logits over ``n`` fresh
        ``Φ(y)``, and ``log Z`` the log mean acceptance there. Fills :attr:`drs_diagnostics_`.
        """
        if not self.drs_hidden:
            raise ValueError("this refiner has no rejection step (drs_hidden = 0)")
        discriminator.eval()
        for p in discriminator.parameters():
            p.requires_grad_(False)
        self.drs_diagnostics_ = self._distil_step(lambda z: discriminator(z).squeeze(-1), quantile, 0.0, n, steps,
                                                  batch_size, lr, "LaSeR rejection (distil D)", progress)
        return self

    def fit_boost(self, extra_log_weight, quantile: float = 0.99, min_acceptance: float = 0.7, n: int = 400_000,
                  steps: int = LATENT_STUDENT_STEPS, batch_size: int = 2000, lr: float = 3e-3, progress: bool = True) -> "RefinerGAN":
        """Fold ``extra_log_weight(z) >= 0`` (a further log weight of Φ's outputs) into the
        rejection step: the student is distilled anew from ``log a(z) + extra(z)`` (the current
        step's log acceptance plus the extra), with its bound at the ``quantile`` of the new
        scores, lowered if needed to keep the acceptance at ``min_acceptance`` or more.

        The refined generator uses it to move the *raising* part of its data-space correction
        before the base generator runs (:meth:`~genrefine.refine.RefinedGenerator.fit_boost`):
        there a rejected candidate costs Φ and the student, not a base pass. Fills
        :attr:`boost_diagnostics_`."""
        if not self.rejects:
            raise ValueError("fit_boost needs a fitted rejection step (call fit_rejection first)")
        self.boost_diagnostics_ = self._distil_step(lambda z: self._log_accept_z(z) + extra_log_weight(z), quantile,
                                                    min_acceptance, n, steps, batch_size, lr,
                                                    "LaSeR rejection (distil boost)", progress, reset=True)
        return self

    def _distil_step(self, target_fn, quantile: float, min_acceptance: float, n: int, steps: int, batch_size: int,
                     lr: float, desc: str, progress: bool, reset: bool = False) -> dict:
        """Regress the student on ``target_fn`` at ``n`` outputs ``Φ(y)`` (from fresh weights
        when ``reset``; the targets are computed first, so they may use the current student)
        and set ``[b, log Z]`` from ``n`` fresh ones (:func:`quantile_bound`); returns the
        diagnostics."""
        check_bound_args(quantile, min_acceptance, "rejection step")
        dev = self.device
        with torch.no_grad():
            z = self.generate(torch.randn(int(n), self.aux_dim, device=dev))
            t = torch.cat([target_fn(c) for c in z.split(50_000)])
        bad = int((~torch.isfinite(t)).sum())
        if bad:
            raise ValueError(f"rejection step: the target gave {bad} non-finite logits (log weights) at the refiner's outputs")
        if reset:
            for m in self.student.modules():
                if isinstance(m, nn.Linear):
                    m.reset_parameters()
        self.drs_state.fill_(float("nan"))  # not a valid step while the student is refitted
        for p in self.student.parameters():
            p.requires_grad_(True)
        self.student.train()
        regress(lambda v: self.student(v).squeeze(-1), self.student.parameters(), z, t, steps, batch_size, lr,
                desc, progress)
        self.freeze()
        with torch.no_grad():
            s_fit = torch.cat([self.student(c).squeeze(-1) for c in z.split(50_000)])
            corr = torch.corrcoef(torch.stack([s_fit, t]))[0, 1].item()
            z2 = self.generate(torch.randn(int(n), self.aux_dim, device=dev))
            s2 = torch.cat([self.student(c).squeeze(-1) for c in z2.split(50_000)])
            bound, acc = quantile_bound(s2, quantile, "rejection step", min_acceptance)
            self.drs_state.copy_(torch.stack([bound, acc.log()]))
        return {"quantile": float(quantile), "min_acceptance": float(min_acceptance), "bound": bound.item(),
                "acceptance_rate": acc.item(), "student_corr": corr, "student_mse": ((s_fit - t) ** 2).mean().item(),
                "above_bound": (s2 > bound).float().mean().item()}
