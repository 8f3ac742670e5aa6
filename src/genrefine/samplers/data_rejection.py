"""Rejection in data space after a refined generator: the last correction of LaSeR's output.

A refiner in the latent space (the GAN Φ, even with its own discriminator rejection step)
leaves mass on bridges between modes that come from latent strips a few hundredths wide
(docs/laser.md, "Where the GAN's residual sits"). In data space the same bridges are wide,
and a classifier between the data and the *refined* samples sees them at once. So after the
refiner is trained:

1. a copy of the DCTR classifier is trained on for a few epochs on the data against the
   refined generator's samples (warm start: the refined samples differ from the base's only
   a little, so it needs ~5 epochs instead of 50); its odds estimate
   ``w₂(x) = p_data(x) / p_refined(x)``;
2. a small MLP (the *student*) is regressed on ``log w₂`` at refined samples, so that each
   candidate costs a tenth of a base pass, not a full classifier pass;
3. sampling draws candidates from the refiner, runs the base generator once on them, and
   keeps ``x`` with probability ``a(x) = min(1, exp(s(x) - b))``, ``b`` a quantile of ``s``
   over refined samples. A candidate rejected here has cost a base pass, so the quick preset
   puts ``b`` at the *median*: the residual is excess mass (bridges), which a low bound
   removes while accepting 96-99% of the candidates; points the classifier finds
   under-produced are accepted always and not raised here. The raising half,
   ``exp(max(0, s - b))``, can be folded into the refiner's latent step, where a rejection
   costs no base pass (:meth:`~genrefine.refine.RefinedGenerator.fit_boost`; on in the quick
   preset).

The refined generator's latent distribution is then the refiner's thinned by ``a(g(Φ(y)))``
(a :class:`~genrefine.samplers.rejection.RejectionPrior`), so HMC, a density of an invertible
refined generator, and a further refinement all see the right density.

Measured on the saved Table 3 models (share of DCTR's JSD cut; docs/laser.md, "Rejection in
data space"): with a 3 x 32 student and the bound at the median, gaussians4 66-69% → 78-80%
and the checkerboard 71% → 90%.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from genrefine.samplers.rejection import DATA_STUDENT_STEPS, check_bound_args, quantile_bound
from genrefine.nn import mlp
from genrefine.samplers.squeeze import MAX_DIM, SPAN_SIGMAS, TabulatedBounds, student_bounds
from genrefine.training import regress


class DataRejection(nn.Module):
    """Acceptance ``a(x) = min(1, exp(s(x) - b))`` with a small MLP ``s`` on standardised ``x``.

    Args:
        dim: data dimension.
        hidden, layers: the student MLP (leaky ReLU), ``layers`` hidden layers of ``hidden`` units.

    Unfitted (``fitted`` is False) it accepts everything. :meth:`fit` distils a classifier's
    ``log_weight`` into the student and sets the bound ``b`` and ``log Z``, the log of the
    mean acceptance over the samples it was fitted on. Everything is a parameter or a buffer,
    so it is saved with the generator that holds it.
    """

    def __init__(self, dim: int, hidden: int = 32, layers: int = 3) -> None:
        super().__init__()
        if int(dim) < 1 or int(hidden) < 1 or int(layers) < 1:
            raise ValueError(f"data rejection needs dim, hidden and layers >= 1, got {dim}, {hidden}, {layers}")
        self.dim, self.hidden, self.layers = int(dim), int(hidden), int(layers)
        self.student = mlp(self.dim, 1, self.hidden, self.layers)
        self.register_buffer("loc", torch.zeros(self.dim))
        self.register_buffer("scale", torch.ones(self.dim))
        self.register_buffer("state", torch.full((2,), float("nan")))  # [bound b, log Z]; NaN until fitted

    def config(self) -> dict:
        return {"dim": self.dim, "hidden": self.hidden, "layers": self.layers}

    @property
    def fitted(self) -> bool:
        return bool(torch.isfinite(self.state).all())

    @property
    def log_z(self) -> float:
        """``log E[a(x)]`` over the samples it was fitted on (0 when not fitted)."""
        return self.state[1].item() if self.fitted else 0.0

    def score(self, x: Tensor) -> Tensor:
        """The student's estimate of ``log w₂(x)``, shape ``(n,)``."""
        return self.student((x - self.loc) / self.scale).squeeze(-1)

    def log_accept(self, x: Tensor) -> Tensor:
        """``log a(x) = min(0, s(x) - b)``; zero when not fitted."""
        if not self.fitted:
            return torch.zeros(len(x), device=x.device)
        return (self.score(x) - self.state[0]).clamp(max=0.0)

    def envelope(self) -> TabulatedBounds | None:
        """Bounds of ``log a(x)`` tabulated over ``loc ± 5 scale`` for data of at most
        ``MAX_DIM`` dimensions (:mod:`genrefine.samplers.squeeze`); None otherwise or unfitted.
        Built on first use, and again when the student, the bound or the standardisation changes."""
        if self.dim > MAX_DIM or not self.fitted:
            return None
        if getattr(self, "_envelope", None) is None:
            def bounds(center: Tensor, half: Tensor) -> tuple[Tensor, Tensor]:  # the student reads (x - loc) / scale
                loc, scale = self.loc.double(), self.scale.double()
                return student_bounds(self.student, self.state[0])((center - loc) / scale, half / scale)
            self._envelope = TabulatedBounds(self, bounds, self.loc - SPAN_SIGMAS * self.scale,
                                             self.loc + SPAN_SIGMAS * self.scale)
        return self._envelope

    def fit(self, classifier: nn.Module, x: Tensor, quantile: float = 0.5, steps: int = DATA_STUDENT_STEPS,
            batch_size: int = 2000, lr: float = 3e-3, progress: bool = True) -> "DataRejection":
        """Distil ``classifier.log_weight`` at the samples ``x`` (the refined generator's) into the
        student (MSE, Adam, cosine schedule) and set the bound at its ``quantile`` over ``x``.
        Fills :attr:`diagnostics_`."""
        check_bound_args(quantile, 0.0, "data rejection")
        x = torch.as_tensor(x, dtype=torch.float32, device=self.loc.device)
        if x.ndim != 2 or x.shape[1] != self.dim or len(x) < 2:
            raise ValueError(f"data rejection: need refined samples of shape (n >= 2, {self.dim}), got {tuple(x.shape)}")
        classifier.eval()
        with torch.no_grad():
            t = torch.cat([classifier.log_weight(c) for c in x.split(50_000)])
        bad = int((~torch.isfinite(t)).sum())
        if bad:
            raise ValueError(f"data rejection: the classifier gave {bad} non-finite log weights at the refined samples")
        self.loc.copy_(x.mean(0))
        self.scale.copy_(x.std(0).clamp_min(1e-6))
        for p in self.student.parameters():
            p.requires_grad_(True)
        self.student.train()
        regress(self.score, self.student.parameters(), x, t, steps, batch_size, lr, "data rejection (distil)", progress)
        self.eval()
        for p in self.parameters():
            p.requires_grad_(False)
        with torch.no_grad():
            s = torch.cat([self.score(c) for c in x.split(50_000)])
            corr = torch.corrcoef(torch.stack([s, t]))[0, 1].item()
            bound, acc = quantile_bound(s, quantile, "data rejection")
            self.state.copy_(torch.stack([bound, acc.log()]))
        self.diagnostics_ = {"quantile": float(quantile), "bound": bound.item(), "acceptance_rate": acc.item(),
                             "student_corr": corr, "student_mse": ((s - t) ** 2).mean().item(),
                             "above_bound": (s > bound).float().mean().item(), "n": int(len(x))}
        return self

    def extra_repr(self) -> str:
        return f"dim={self.dim}, hidden={self.hidden}, layers={self.layers}, fitted={self.fitted}"
