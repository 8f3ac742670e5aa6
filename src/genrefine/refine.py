"""The refined generator ``x = g(Φ(y))`` and the refinement pipeline pieces."""

from __future__ import annotations

import copy
import math
from typing import Any

import torch
from torch import Tensor
from torch.distributions import Distribution

from genrefine.generators.base import Generator, build_generator, generator_spec, register_family
from genrefine.samplers.data_rejection import DataRejection
from genrefine.samplers.rejection import (CANDIDATE_BATCH, DATA_STUDENT_STEPS, LATENT_STUDENT_STEPS, SMALL_NET_CHUNK,
                                         RejectionPrior, accept_loop)
from genrefine.samplers.squeeze import SQUEEZE_MIN_ROWS, squeezed_keep
from genrefine.validation import check_array, check_count


@register_family("refined")
class RefinedGenerator(Generator):
    """``x = base(refiner(y))`` with ``y ~ refiner.prior``: itself a :class:`Generator`.

    It samples, saves and loads like any generator, and can be refined again (its latent
    space is the refiner's auxiliary space, and its prior the refiner's: a standard normal,
    thinned by the refiner's rejection step when it has one). When both parts are invertible it has an exact
    density: ``log p(x) = log p_base(x) + log q_Φ(z) - log p(z)`` with ``z = base⁻¹(x)``.

    With a fitted ``data_rejection`` step (:meth:`fit_data_rejection`,
    :class:`~genrefine.samplers.data_rejection.DataRejection`) the outputs are thinned once more,
    in data space, by ``a(x)``: the prior is then the refiner's thinned by ``a(base(refiner(y)))``,
    and an exact density gains ``log a(x) - log Z``.

    Example:
        >>> refined = RefinedGenerator(base, RefinerGAN(2).fit(z, w))
        >>> refined.fit_data_rejection(x_data, classifier=dctr_classifier)   # optional last step
        >>> x = refined.sample(100_000); save_generator(refined, "models/laser")
    """

    def __init__(self, base: Generator, refiner: Generator, data_rejection: DataRejection | None = None) -> None:
        if refiner.data_dim != base.latent_dim:
            raise ValueError(f"refiner outputs {refiner.data_dim}-d latents but the base generator takes {base.latent_dim}-d")
        # the refiner's prior is ours; rows keep the base's layout
        super().__init__(latent_dim=refiner.latent_dim, data_dim=base.data_dim, own_prior=False,
                         data_shape=base.data_shape)
        self.base, self.refiner = base, refiner
        self.invertible = base.invertible and refiner.invertible
        self.differentiable = base.differentiable and refiner.differentiable
        self.stochastic = base.stochastic or refiner.stochastic
        if data_rejection is not None and data_rejection.dim != base.data_dim:
            raise ValueError(f"the data rejection step takes {data_rejection.dim}-d points but the base generator "
                             f"makes {base.data_dim}-d ones")
        self.data_rejection = data_rejection

    @property
    def chunk_size(self) -> int:  # type: ignore[override]
        """Rows per chunk when a whole refined pass runs at once: the base's, which costs most."""
        return self.base.chunk_size

    @property
    def rejects_data(self) -> bool:
        """Whether sampling ends with a fitted data-space rejection step."""
        return self.data_rejection is not None and self.data_rejection.fitted

    @property
    def prior(self) -> Distribution:
        """The refiner's latent distribution (with its rejection step, if it has one), thinned by
        the data rejection step when there is one fitted."""
        p = self.refiner.prior
        if not self.rejects_data:
            return p
        root, inner, log_z = (p.proposal, p.log_accept, p.log_z) if isinstance(p, RejectionPrior) else (p, None, 0.0)

        def log_accept(y: Tensor) -> Tensor:
            la = self.data_rejection.log_accept(self.base(self.refiner(y)))
            return la if inner is None else la + inner(y)
        return RejectionPrior(root, log_accept, log_z + self.data_rejection.log_z)

    @torch.no_grad()
    def propose(self, m: int, batch_size: int | None = None) -> tuple[Tensor, Tensor, Tensor]:
        """At most ``m`` candidates ``(log a(x), y, x)``: ``m`` draws of the refiner's proposal,
        thinned by its own rejection step before the base runs (so the base runs only on the
        survivors), then scored by the data rejection step (``log a = 0`` without one). Each part
        runs in its own chunk size unless ``batch_size`` is given. A large batch whose data step
        can be tabulated comes decided, ``(keep, y, x)`` (:mod:`genrefine.samplers.squeeze`)."""
        la, y, z = self.refiner.propose(m, batch_size)
        keep = la if la.dtype == torch.bool else torch.rand(len(la), device=la.device).log() < la
        if not bool(keep.all()):
            y, z = y[keep], z[keep]
        x = self.base.generate(z, batch_size)
        if not self.rejects_data:
            return x.new_zeros(len(x)), y, x
        chunk = int(batch_size or SMALL_NET_CHUNK)
        envelope = self.data_rejection.envelope() if len(x) >= SQUEEZE_MIN_ROWS else None
        if envelope is not None:  # decided here, with the uniforms thin would draw
            log_u = torch.rand(len(x), dtype=x.dtype, device=x.device).log()
            return squeezed_keep(log_u, x, self.data_rejection.log_accept, envelope, chunk), y, x
        return torch.cat([self.data_rejection.log_accept(c) for c in x.split(chunk)]), y, x

    @torch.no_grad()
    def sample_with_latents(self, n: int, batch_size: int | None = None) -> tuple[Tensor, Tensor]:
        """``(y, base(refiner(y)))`` with ``y`` from :attr:`prior`; the refiner's pass is not
        repeated. With rejection steps (the refiner's in its latent space, the data step here),
        one vectorised loop draws candidates in batches of :data:`CANDIDATE_BATCH`, thins them
        by the refiner's step, runs the base once on the survivors and thins those by the data
        step (:meth:`propose`)."""
        check_count(n, "n", minimum=0)
        rate = math.exp(self.refiner_log_z + (self.data_rejection.log_z if self.rejects_data else 0.0))
        if rate == 1.0 and not self.rejects_data:
            y, z = self.refiner.sample_with_latents(n, batch_size)
            return y, self.base.generate(z, batch_size)
        return accept_loop(lambda m: self.propose(m, batch_size), n, rate, CANDIDATE_BATCH)

    @property
    def refiner_log_z(self) -> float:
        """``log`` of the refiner's own acceptance rate (0 when its prior is not thinned)."""
        p = self.refiner.prior
        return float(p.log_z) if isinstance(p, RejectionPrior) else 0.0

    def fit_data_rejection(self, data, classifier=None, epochs: int = 5, generated_per_data: float = 2.0,
                           quantile: float = 0.5, hidden: int = 32, layers: int = 3, steps: int = DATA_STUDENT_STEPS,
                           batch_size: int = 2000, lr: float = 1e-3, gamma: float = 0.999, progress: bool = True,
                           checkpoint: str | None = None, boost: dict | None = None) -> "RefinedGenerator":
        """Fit the data-space rejection step (:mod:`genrefine.samplers.data_rejection`).

        A copy of ``classifier`` (the DCTR classifier of the base; a new
        :class:`~genrefine.weights.DensityRatioClassifier` when None, then give it more
        ``epochs``) is trained on ``data`` against ``generated_per_data x len(data)`` samples of
        this generator, then distilled into a ``layers x hidden`` student with the bound at its
        ``quantile``. Replaces an earlier step. With ``boost`` (keyword arguments of
        :meth:`fit_boost`, e.g. ``{"quantile": 0.99, "min_acceptance": 0.7}``) and a refiner
        with a latent rejection step, the part of the correction that raises mass moves into
        that step. Fills :attr:`data_rejection_diagnostics_`.
        """
        from genrefine.weights.classifier import DensityRatioClassifier

        x_data = torch.as_tensor(check_array(data, name="data", dim=self.data_dim, min_rows=2), device=self.device)
        self.data_rejection = None  # the classifier must see this generator's samples without an old step
        n_gen = max(2, int(round(float(generated_per_data) * len(x_data))))
        x_gen = self.sample(n_gen)
        clf = copy.deepcopy(classifier) if classifier is not None else DensityRatioClassifier(self.data_dim)
        if classifier is not None:  # a short warm-started fine-tune: every row trains, no early stop
            clf.val_fraction = 0.0
        clf = clf.to(self.device)
        clf.fit(x_data, x_gen, epochs=epochs, batch_size=batch_size, lr=lr, gamma=gamma, progress=progress,
                checkpoint=checkpoint)
        step = DataRejection(self.data_dim, hidden, layers).to(self.device)
        step.fit(clf, x_gen, quantile=quantile, steps=steps, progress=progress)
        self.data_rejection = step
        self.data_rejection_diagnostics_ = {**step.diagnostics_, "classifier_epochs": int(epochs),
                                            "warm_start": classifier is not None, "generated": int(n_gen)}
        if boost is not None and self.can_boost:
            self.fit_boost(progress=progress, **boost)
            self.data_rejection_diagnostics_["boost"] = self.boost_diagnostics_
        return self

    @property
    def can_boost(self) -> bool:
        """Whether the refiner has a fitted latent rejection step that :meth:`fit_boost` can extend."""
        return hasattr(self.refiner, "fit_boost") and bool(getattr(self.refiner, "rejects", False))

    def fit_boost(self, quantile: float = 0.99, min_acceptance: float = 0.7, n: int = 400_000,
                  steps: int = LATENT_STUDENT_STEPS, progress: bool = True) -> "RefinedGenerator":
        """Move the raising half of the data rejection step into the refiner's latent step.

        The data step accepts ``min(1, exp(s(x) - b))``: it thins where its classifier score
        ``s`` is below the bound ``b`` and leaves the rest alone, so regions the classifier
        wants *raised* are not (with ``b`` at the median that shifts broad mass the wrong way).
        The missing factor ``exp(max(0, s - b))`` is folded into the refiner's latent step
        (:meth:`~genrefine.samplers.refiner_gan.RefinerGAN.fit_boost`, evaluated at
        ``x = base(z)`` while it is distilled), where a rejected candidate costs the refiner
        and its student, not a base pass: together the two steps apply ``exp(s - b)``, the whole
        correction, up to the latent bound (``quantile``, lowered to keep the latent
        acceptance at ``min_acceptance``). The data step's ``log Z`` is then re-estimated on
        the refiner's new outputs, so :attr:`prior` and :meth:`log_prob` stay normalised.
        Fills :attr:`boost_diagnostics_`.
        """
        if not self.rejects_data:
            raise ValueError("fit_boost needs a fitted data rejection step (call fit_data_rejection first)")
        if not self.can_boost:
            raise ValueError("fit_boost needs a refiner with a fitted latent rejection step (a RefinerGAN with drs_hidden > 0)")
        step = self.data_rejection
        b = step.state[0].clone()
        self.refiner.fit_boost(lambda z: (step.score(self.base(z)) - b).clamp(min=0.0), quantile=quantile,
                               min_acceptance=min_acceptance, n=n, steps=steps, progress=progress)
        with torch.no_grad():  # the data step's acceptance on the new candidates
            x = self.base.generate(self.refiner.sample(int(n)))
            acc = torch.cat([step.log_accept(c) for c in x.split(SMALL_NET_CHUNK)]).exp().mean()
            step.state[1] = acc.log()
        self.boost_diagnostics_ = {**self.refiner.boost_diagnostics_, "data_acceptance_after": acc.item()}
        return self

    @property
    def prior_loc(self) -> Tensor:  # type: ignore[override]
        return self.refiner.prior_loc

    @property
    def prior_scale(self) -> Tensor:  # type: ignore[override]
        return self.refiner.prior_scale

    @property
    def depth(self) -> int:
        """How many refinements are stacked on the original base generator."""
        return 1 + (self.base.depth if isinstance(self.base, RefinedGenerator) else 0)

    def config(self) -> dict:
        return {"base": generator_spec(self.base), "refiner": generator_spec(self.refiner),
                "data_rejection": None if self.data_rejection is None else self.data_rejection.config()}

    @classmethod
    def from_config(cls, cfg: dict, user: Any = None) -> "RefinedGenerator":
        """Rebuild from :meth:`config`; ``user`` (the user's model under the base, if any) goes
        down to the generator that wraps it."""
        dr = cfg.get("data_rejection")
        try:
            step = None if dr is None else DataRejection(**dr)
        except TypeError as exc:
            raise ValueError(f"the refined generator's data rejection config does not fit ({exc})") from None
        return cls(build_generator(cfg.get("base"), user), build_generator(cfg.get("refiner"), user), step)

    def forward(self, y: Tensor) -> Tensor:
        return self.base(self.refiner(y))

    def check_chunk(self, x: Tensor) -> Tensor:
        """Outputs are the base's: its own check applies (a user's model is checked finite)."""
        return self.base.check_chunk(x)

    @torch.no_grad()
    def base_latent(self, y: Tensor) -> Tensor:
        """The point in the original base generator's latent space that ``y`` maps to."""
        z = self.refiner.generate(y)
        return self.base.base_latent(z) if isinstance(self.base, RefinedGenerator) else z

    def inverse(self, x: Tensor) -> Tensor:
        if not self.invertible:
            raise ValueError("this refined generator is not invertible (its refiner or base is not)")
        return self.refiner.inverse(self.base.inverse(x))

    def log_prob(self, x: Tensor) -> Tensor:
        if not self.invertible:
            raise ValueError("this refined generator has no explicit density (its refiner or base is not invertible)")
        z = self.base.inverse(x)
        lp = self.base.log_prob(x) + self.refiner.log_prob(z) - self.base.prior.log_prob(z)
        if self.rejects_data:
            lp = lp + self.data_rejection.log_accept(x) - self.data_rejection.log_z
        return lp


class SampledGenerator(Generator):
    """``x = g(z)`` with ``z`` drawn by a latent sampler of ``q(z) ∝ p(z) w(z)`` (rejection,
    HMC, DDLS, SIR, latentRS, ...): the refined generator of a sampling method.

    ``make_sampler() -> LatentSampler`` builds a fresh sampler for every draw, so each
    :meth:`sample` call is an independent run of the sampler (its diagnostics are kept in
    :attr:`diagnostics_`). It is a generator for sampling and scoring; it is not saveable
    (its weights live in the sampler's estimator), which :func:`genrefine.save_generator` says.
    """

    family = "sampled"

    def __init__(self, base: Generator, make_sampler, method: str = "sampler") -> None:
        super().__init__(base.latent_dim, base.data_dim, own_prior=False, data_shape=tuple(base.data_shape))
        self.base, self.make_sampler, self.method = base, make_sampler, method
        self.differentiable = False
        self.stochastic = True  # the sampler's own randomness sits between the prior and g
        self.diagnostics_: dict = {}

    @property
    def prior(self) -> Distribution:
        return self.base.prior

    @property
    def device(self) -> torch.device:  # type: ignore[override]
        return self.base.device

    @property
    def chunk_size(self) -> int:  # type: ignore[override]
        return self.base.chunk_size

    def forward(self, z: Tensor) -> Tensor:
        return self.base(z)

    @torch.no_grad()
    def sample_with_latents(self, n: int, batch_size: int | None = None) -> tuple[Tensor, Tensor]:
        """``(z, g(z))`` with ``z`` from a fresh run of the sampler."""
        check_count(n, "n", minimum=0)
        if n == 0:  # as every generator: an empty sample, without running the sampler
            z = self.prior.sample((0,))
            return z, self.base.generate(z, batch_size)
        sampler = self.make_sampler()
        z = sampler.sample(int(n)).detach()
        self.diagnostics_ = dict(getattr(sampler, "diagnostics", {}))
        return z, self.base.generate(z, batch_size)

    def config(self) -> dict:
        raise ValueError(f"a generator refined by the {self.method} sampler is not saveable (its weights live in "
                         "the sampler); save a refiner's generator (laser, laser-flow) instead")
