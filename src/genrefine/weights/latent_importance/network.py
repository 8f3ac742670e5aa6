"""``w_φ(z)``, the latent importance network of the latent-reweighting paper (Issenhuth et al.,
*Latent reweighting, an almost free improvement for GANs*, Sec. 3): ``dγ_φ = w_φ dγ`` (Eq. (4))
reweights the latent prior so that ``G#γ_φ`` is closer to the data in Wasserstein distance."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from genrefine.generators.base import Generator
from genrefine.generators.critic import Critic
from genrefine.nn import mlp, mlp_bounds
from genrefine.samplers.base import LatentTarget
from genrefine.samplers.squeeze import MAX_DIM, ROUNDING_MARGIN, WEIGHT_GRID_CELLS, TabulatedBounds, prior_box
from genrefine.validation import check_array, check_positive
from genrefine.weights.latent_importance.crossfit import fit_crossfitted
from genrefine.weights.latent_importance.fold import fit_fold
from genrefine.weights.latent_importance.selection import CHECK_PARTS, CHECK_SIZE, holdout_sizes, select_single
from genrefine.weights.latent_importance.settings import LatentImportanceSettings


def _drop_empty_fourier(module, state_dict, prefix, *args) -> None:
    """Checkpoints saved before the random Fourier features were removed hold an empty
    ``fourier_B`` buffer; it carries nothing, so it is dropped on load."""
    key = prefix + "fourier_B"
    if key in state_dict and state_dict[key].numel() == 0:
        del state_dict[key]


class LatentImportanceNetwork(nn.Module):
    """``w_φ(z)``: an MLP with ReLU hidden layers and a ReLU output (weights are >= 0).

    Defaults follow Appendix E (4 hidden layers, λ1 = 10, λ2 = 3, m = 3); the width defaults to
    ``max(32, 4 d)`` (the paper's 4 d is 8 units for a 2-d latent; 32 keeps latent rejection
    cheaper than a generator pass). The output bias starts at 1, so ``w ≈ 1`` at the start and
    the final ReLU is not dead. ``fourier``/``fourier_scale`` exist only so that checkpoints
    saved with ``fourier=0`` load; any other value is refused.

    Example:
        >>> w_phi = LatentImportanceNetwork(gen.latent_dim).fit(gen, x_train, critic=gen.critic_)
        >>> w = w_phi(z)                      # (n,), mean ≈ 1 under the prior, <= m + tolerance
        >>> target = w_phi.target(gen.prior)  # for LatentRejectionSampler (latentRS) etc.
    """

    on_latent = True  # a weight read at z (teachers read at G(z) say False)

    def __init__(self, latent_dim: int, hidden: int | None = None, layers: int = 4, m: float = 3.0, *,
                 fourier: int = 0, fourier_scale: float = 1.0) -> None:
        super().__init__()
        check_positive(m, "m")
        if fourier:
            raise ValueError(f"fourier: random Fourier features of z were removed (see docs/decisions/"
                             f"latent_importance.md); only fourier=0 is accepted, got {fourier!r}")
        self.latent_dim, self.layers = int(latent_dim), int(layers)
        self.hidden = int(hidden) if hidden else max(32, 4 * self.latent_dim)
        self.m = float(m)
        self.net = mlp(self.latent_dim, 1, self.hidden, self.layers, activation="relu")
        nn.init.constant_(self.net[-1].bias, 1.0)
        nn.init.normal_(self.net[-1].weight, std=1e-3)
        self.register_load_state_dict_pre_hook(_drop_empty_fourier)

    def config(self) -> dict:
        return {"latent_dim": self.latent_dim, "hidden": self.hidden, "layers": self.layers, "m": self.m}

    def forward(self, z: Tensor) -> Tensor:
        if torch.is_grad_enabled():
            return torch.relu(self.net(z).squeeze(-1))
        return self._forward_no_grad(z)

    def _forward_no_grad(self, z: Tensor) -> Tensor:
        """The same values as ``self.net`` and the output ReLU, with each layer's bias added by
        the matrix product and its ReLU applied in place (no intermediate tensors: the
        rejection samplers evaluate w_φ millions of times)."""
        h = z
        for mod in self.net:
            if isinstance(mod, nn.Linear):
                h = torch.addmm(mod.bias, h, mod.weight.t())
            else:
                h = h.relu_() if isinstance(mod, nn.ReLU) else mod(h)
        return h.squeeze(-1).relu_()

    def log_weight(self, z: Tensor) -> Tensor:
        """``log w_φ(z)`` (``-inf`` where w = 0)."""
        return torch.log(self(z))

    def clipped_log_weight(self, z: Tensor) -> Tensor:
        """``log min(w_φ(z), m)``: the weight latent rejection uses (Alg. 3 accepts with
        ``min(w, m) / m``; the soft clipping of Eq. (6) lets ``w`` pass ``m`` slightly)."""
        return torch.log(self(z).clamp(max=self.m))

    def target(self, prior) -> LatentTarget:
        """``γ_φ ∝ p(z) min(w_φ(z), m)`` (Eq. (4), clipped as Alg. 3 samples it) with bound ``m``
        (latentRS accepts with ``min(w, m) / m``)."""
        return LatentTarget(prior=prior, log_weight=self.clipped_log_weight, differentiable=True, bound=self.m,
                            envelope=self.envelope(prior))

    def envelope(self, prior) -> TabulatedBounds | None:
        """Bounds of :meth:`clipped_log_weight` tabulated on a grid of ``prior``'s box (the
        squeeze of latent rejection, :mod:`genrefine.samplers.squeeze`), for latents of at most
        ``MAX_DIM`` dimensions; None otherwise."""
        box = prior_box(prior) if self.latent_dim <= MAX_DIM else None
        return None if box is None else TabulatedBounds(self, self._log_weight_bounds, *box, cells=WEIGHT_GRID_CELLS)

    @torch.no_grad()
    def _log_weight_bounds(self, center: Tensor, half: Tensor) -> tuple[Tensor, Tensor]:
        """Bounds of ``log min(w_φ, m)`` over boxes: the network's (:func:`mlp_bounds`, widened for
        its float32 pass) through the output's ReLU, the clip at ``m`` and the log, each monotone."""
        lo, hi = (b.squeeze(-1) for b in mlp_bounds(self.net, center, half))
        margin = ROUNDING_MARGIN * (1 + torch.maximum(lo.abs(), hi.abs()))
        # the log in float32, as clipped_log_weight takes it: at the clip both give the same number
        return tuple(torch.log(b.relu().clamp(max=self.m).float()) for b in (lo - margin, hi + margin))

    @torch.no_grad()
    def weight(self, z: Tensor, batch_size: int = 100_000) -> Tensor:
        z = torch.as_tensor(z, dtype=torch.float32, device=self.net[0].weight.device)
        return torch.cat([self(c) for c in z.split(batch_size)]) if len(z) else z.new_zeros(0)

    def fit(self, generator: Generator, data, critic: Critic | None = None, progress: bool = True,
            checkpoint: str | None = None, **settings) -> "LatentImportanceNetwork":
        """Learn ``w_φ`` by the game of Alg. 1 / Eq. (6) and keep what passes the held-out check.

        Args:
            generator: the frozen base ``G``; only forward passes are made.
            data: real rows ``(n, data_dim)``, ``n >= 68``. A validation set (``val_fraction``, at
                most 3000 rows) picks the game's epoch; ``CHECK_PARTS`` parts of at most
                ``CHECK_SIZE`` rows (or, with ``crossfit=K``, every other row, cut into ``K``
                folds) confirm what is kept (:mod:`.selection`, :mod:`.crossfit`).
            critic: a trained critic to start from (the WGAN-GP base's); a copy is trained.
                ``None`` trains a fresh 3 x 128 critic for ``warmup`` steps first.
            settings: the keywords of :class:`LatentImportanceSettings` (the game's, the teacher
                candidates', the check's and the distillation's); an unknown one is a TypeError.

        Fitted attributes: ``source_`` (``"game"``, a teacher's name, or ``"start"`` when
        nothing passed: ``w ≈ 1``, so latentRS delivers the base), ``confirmed_``,
        ``selected_epoch_``, ``val_emd_`` / ``val_emd_initial_``, ``best_epoch_`` /
        ``val_emd_best_`` (per fold when cross-fitted), ``candidates_`` (every candidate's
        validation and check EMD), ``check_emd_`` (the check's per-part scores and threshold),
        ``delivered_`` (cross-fitted: what each kind delivers through ``w_φ``), ``distil_``,
        ``transport_``, ``teacher_``, ``critic_``, ``history_``.
        Returns self (eval mode, parameters frozen).
        """
        s = LatentImportanceSettings.from_kwargs(settings)
        x = check_array(data, name="training data", dim=generator.data_dim, min_rows=4)
        if len(x) < 4 * (1 + CHECK_PARTS):
            raise ValueError(f"training data: {len(x)} rows are too few to hold out validation and check data "
                             f"(need >= {4 * (1 + CHECK_PARTS)})")
        perm, n_val = holdout_sizes(len(x), s.val_fraction)
        if s.crossfit:
            fit_crossfitted(self, generator, x, perm, n_val, critic, s, progress=progress, checkpoint=checkpoint)
        else:
            dev, n_chk = self.net[0].weight.device, CHECK_PARTS * min(CHECK_SIZE, n_val)
            x_val, x_chk, x_train = (torch.as_tensor(x[i], device=dev).float()
                                     for i in (perm[:n_val], perm[n_val:n_val + n_chk], perm[n_val + n_chk:]))
            fold = fit_fold(self, generator, x_val, x_chk, x_train, critic, s, progress=progress, checkpoint=checkpoint)
            select_single(self, fold, generator, s)
        self.eval()
        for p in self.parameters():
            p.requires_grad_(False)
        return self
