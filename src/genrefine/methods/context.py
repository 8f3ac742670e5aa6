"""What every method of a run shares: the base generator, the data, the settings, and the
weight estimators, each fitted once on first request (lazily) and reused by every method that
asks for it.

Every estimator, the base sample, and each method's fit and draw run on a random stream of
their own, seeded by the run's seed and their name (:meth:`RunContext.stream`): a method gives
the same numbers whichever other methods share the run, in whatever order, and whether an
estimator was trained or loaded from a checkpoint.
"""

from __future__ import annotations

import contextlib
import dataclasses
import warnings
import zlib
from typing import Callable, Iterator

import torch
from torch import Tensor

from genrefine.generators.base import Generator
from genrefine.methods.estimators import (ClassifierFit, fit_critic_ratio, fit_dctr_classifier, fit_dot_critic,
                                          fit_omnifold, fit_w_phi, train_critic)
from genrefine.samplers.base import LatentTarget, weight_diagnostics
from genrefine.samplers.rejection import practical_bound, probe_bound, sharpen_log_cap, sharpened
from genrefine.timing import timed
from genrefine.weights.classifier import latent_target
from genrefine.weights.omnifold import pullback_spread

#: a direct pull-back whose log-weight variance lies this much among the noise of one z is
#: worth a warning: its weights are not a function of z
NOISY_PULLBACK = 0.1


class RunContext:
    """The shared state of one refinement run.

    Args:
        base: the frozen base generator ``g``.
        x_train: training data, a float tensor ``(n, D)`` on ``device``.
        cfg: the run configuration (a preset from :func:`genrefine.presets.get_preset`, overridden).
        n_samples: how many samples each method delivers.
        device: torch device (default: the base's).
        progress: show progress bars.
        ckpt: ``name -> checkpoint path or None`` for resumable training.
        critic: a trained critic for the latent reweighting estimators (default: the base's own
            ``critic_`` if it has one, else one is trained on first request).
        iterations: how many times refiners refine their own output (LaSeR Sec. 3.3).
        seed: the run's seed, from which every named random stream is derived.

    Shared estimators (each fitted on first call): :meth:`classifier`, :meth:`critic`,
    :meth:`w_phi`, :meth:`critic_ratio`, :meth:`dot_critic`, :meth:`omnifold`; :meth:`weights` gives the latent
    target ``q(z) ∝ p(z) w(z)`` of a weight kind. ``timings``, ``diagnostics`` and ``models``
    collect what they produced.
    """

    def __init__(self, base: Generator, x_train: Tensor, cfg: dict, n_samples: int, device=None,
                 progress: bool = True, ckpt: Callable[[str], str | None] | None = None, critic=None,
                 iterations: int = 1, seed: int = 0) -> None:
        self.base, self.x_train, self.cfg, self.n_samples = base, x_train, cfg, int(n_samples)
        self.seed = int(seed)
        self.device = torch.device(device) if device is not None else base.device
        self.progress, self.iterations = bool(progress), int(iterations)
        self.ckpt = ckpt or (lambda name: None)
        self.timings: dict[str, float] = {}
        self.diagnostics: dict[str, dict] = {}
        self.models: dict[str, object] = {}
        self._critic = critic if critic is not None else getattr(base, "critic_", None)
        self._cache: dict[str, object] = {}

    def timed(self, key: str, fn: Callable[[], object]):
        """``fn()``, its wall-clock seconds recorded as ``timings[key]``."""
        out, self.timings[key] = timed(fn, self.device)
        return out

    @contextlib.contextmanager
    def stream(self, key: str) -> Iterator[None]:
        """Run the block on the random stream named ``key``: torch's global generator (and the
        run's CUDA device's) and the base's own streams (a simulator's hidden noise) seeded by the
        run's seed and ``key``, restored afterwards. Streams nest: an estimator first requested
        inside a method's fit still draws from its own."""
        devices = [self.device.index if self.device.index is not None else torch.cuda.current_device()] \
            if self.device.type == "cuda" else []
        seed = zlib.crc32(f"{self.seed}:{key}".encode())
        with torch.random.fork_rng(devices=devices), contextlib.ExitStack() as streams:
            torch.manual_seed(seed)
            for m in self.base.modules():
                if hasattr(m, "seeded_stream"):
                    streams.enter_context(m.seeded_stream(seed))
            yield

    def _once(self, key: str, build: Callable[[], object]):
        if key not in self._cache:
            with self.stream(key):
                self._cache[key] = build()
        return self._cache[key]

    def base_sample(self) -> tuple[Tensor, Tensor]:
        """``(z, g(z))``: ``n_samples`` draws of the base, shared by ``base`` and ``dctr``."""
        return self._once("base_sample", lambda: self.timed(
            "sample_base", lambda: self.base.sample_with_latents(self.n_samples)))

    def fit_classifier(self, gen: Generator, tag: str) -> ClassifierFit:
        """A new DCTR classifier between the data and ``gen`` (refiner iterations use it)."""
        return fit_dctr_classifier(self, gen, tag)

    def classifier(self) -> ClassifierFit:
        """The DCTR classifier against the base, with its training latents and weights."""
        def build() -> ClassifierFit:
            fit = fit_dctr_classifier(self, self.base, "")
            self.models["classifier"] = fit.classifier
            self.diagnostics["weights_train"] = weight_diagnostics(fit.w)
            checks = getattr(fit.classifier, "diagnostics_", None)  # held-out AUC, calibration, degeneracy
            if checks is not None:
                self.diagnostics["classifier"] = checks.as_dict() if hasattr(checks, "as_dict") else checks
            return fit
        return self._once("classifier", build)

    @property
    def critic_model(self):
        """The critic known so far (given, the base's, or trained), without training one."""
        return self._critic

    def critic(self):
        """The base's WGAN-GP critic: the one given, else one trained against the base."""
        if self._critic is None:
            with self.stream("critic"):
                self._critic = train_critic(self)
        self.models["critic"] = self._critic
        return self._critic

    def w_phi(self):
        """The latent importance network ``w_φ``, trained against :meth:`critic`."""
        def build():
            critic = self.critic()  # before w_φ is built: the critic's training draws first
            self.models["w_phi"] = fit_w_phi(self, critic)
            return self.models["w_phi"]
        return self._once("w_phi", build)

    def omnifold(self) -> ClassifierFit:
        """OmniFold's latent weights against the base: the fitted weights (``models["omnifold_weights"]``)
        and the weighted latents ``(z, ν(z))`` a refiner trains on."""
        return self._once("omnifold", lambda: fit_omnifold(self, self.base))

    def fit_omnifold(self, gen: Generator, tag: str) -> ClassifierFit:
        """New OmniFold weights against ``gen`` (refiner iterations use it)."""
        return fit_omnifold(self, gen, tag)

    def critic_ratio(self):
        """The BCE-fine-tuned copy of :meth:`critic` (DRS, MH-GAN, SIR)."""
        def build():
            critic = self.critic()
            self.models["discriminator"] = fit_critic_ratio(self, critic)
            return self.models["discriminator"]
        return self._once("critic_ratio", build)

    def dot_critic(self):
        """The WGAN-GP-fine-tuned copy of :meth:`critic` (DOT)."""
        def build():
            critic = self.critic()
            self.models["dot_critic"] = fit_dot_critic(self, critic)
            return self.models["dot_critic"]
        return self._once("dot_critic", build)

    def weights(self, kind: str) -> LatentTarget:
        """The latent target ``q(z) ∝ p(z) w(z)`` of weight ``kind``: ``"dctr"`` (the classifier
        pulled back, ``w(g(z))`` capped), ``"w_phi"``, ``"critic_ratio"`` or ``"omnifold"``.

        For a generator with hidden randomness the DCTR pull-back is a fresh draw of
        ``w(g(z, ε))`` at every call: how much of its spread is noise goes to
        ``diagnostics["pullback_spread"]`` (with a warning when it is large)."""
        builders = {"dctr": lambda: self._pullback(),
                    "w_phi": self._w_phi_target,
                    "critic_ratio": lambda: latent_target(self.base, self.critic_ratio()),
                    "omnifold": self._omnifold_target}
        if kind not in builders:
            raise ValueError(f"weights: no latent target for {kind!r} (choose from {', '.join(builders)})")
        return self._once("target_" + kind, builders[kind])

    def _w_phi_target(self) -> LatentTarget:
        """``γ_φ ∝ p(z) w_φ(z)`` under the tightest safe rejection bound: ``m``, lowered to 1.1 x the
        largest ``w_φ`` of a probe of the prior when that is below ``m``
        (:func:`~genrefine.samplers.rejection.probe_bound`; the same accepted distribution for
        fewer proposals)."""
        w_phi = self.w_phi()
        target = w_phi.target(self.base.prior)
        return dataclasses.replace(target, bound=probe_bound(target, w_phi.m))

    def _omnifold_target(self) -> LatentTarget:
        self.omnifold()  # fits the weights on first use
        return self.models["omnifold_weights"].target(self.base.prior)

    def _pullback(self) -> LatentTarget:
        clf = self.classifier().classifier
        if self.base.stochastic:
            spread = pullback_spread(self.base, clf)
            self.diagnostics["pullback_spread"] = spread
            if spread["noise_fraction"] > NOISY_PULLBACK:
                warnings.warn(f"the direct pull-back's weights are not a function of z: "
                              f"{spread['noise_fraction']:.0%} of their log-variance is the generator's hidden noise; "
                              f"OmniFold's latent weights (the -omnifold methods) average it out", stacklevel=3)
        target = latent_target(self.base, clf)
        c = self.cfg["classifier"]
        power, quantile = c.get("sharpen", 1.0), float(c.get("sharpen_quantile", 0.99))
        if self.base.stochastic:  # a probe would draw from its own stream and move the run's
            if power != 1.0:
                warnings.warn(f"classifier.sharpen={power} is ignored: a generator with hidden randomness has no "
                              "weight per latent point to sharpen", stacklevel=3)
            return target
        chosen = power == "auto"  # the classifier chose it on held-out rows
        power = float(clf.sharpen_power) if chosen else float(power)
        capped = chosen and bool(clf.sharpen_capped)  # the fitted weights were too concentrated
        if power == 1.0 and not capped:
            return practical_bound(target)
        cap = sharpen_log_cap(target, quantile)
        self.diagnostics["sharpen"] = {"power": power, "quantile": quantile, "log_cap": cap,
                                       "chosen_on_held_out_rows": chosen, "capped": capped}
        return sharpened(target, power, log_cap=cap)  # bounded by 1, exactly

    def x_val(self):
        """Held-out training rows (numpy) for choosing gradient steps: at most 2000, one in 50,
        drawn with their own seed so the run's random stream is untouched."""
        def build():
            n_val = min(2000, max(2, len(self.x_train) // 50))
            perm = torch.randperm(len(self.x_train), generator=torch.Generator().manual_seed(2))
            return self.x_train[perm[:n_val].to(self.x_train.device)].cpu().numpy()
        return self._once("x_val", build)
