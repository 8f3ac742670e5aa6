"""Toy black-box simulators with hidden randomness (numpy, not differentiable): ``x = f(z, rng)``.

Each is a smooth map of a latent point ``z ~ N(0, I)`` (the "physics") followed by smearing drawn
from ``rng`` (the "detector"), with a few physics parameters. The *truth* is the same simulator
at other parameter values, so the data differ from the base simulator only through the
distribution of the physics, and a latent reweighting that matches them exists exactly (the
physics map of one parameter set is a monotone reparametrisation of the other's): what
OmniFold's latent weights should find. The true latent density under the base's map is normal
and known (:func:`true_latent`), so the latent weights can be checked against it.

- ``detector``: a particle's energy ``E = exp(μ + σ z₁)`` and direction ``φ = π tanh(κ z₂)``,
  measured as the 2-D point ``E (cos φ, sin φ)`` with a calorimeter's resolution
  ``(a √E + b E) ε``, ε ~ N(0, I₂). Base ``(μ, σ, κ) = (0, 0.5, 1)``, truth ``(0.3, 0.35, 0.6)``.
- ``calorimeter``: three latent "physics" features, mixed into 10 read-out channels, plus the
  sum of 1,000 hidden cell fluctuations per channel (``B ε``, ε ~ N(0, I₁₀₀₀), ``B`` fixed):
  the scale test of a high-dimensional hidden noise. Base ``(μ, σ, κ) = (0, 1, 1)``, truth
  ``(0.5, 0.7, 0.7)``.

Example:
    >>> sim = simulator("detector")                          # f(z, rng) at the base parameters
    >>> x_data = simulate_truth("detector", 50_000, seed=1)  # data: the truth parameters
    >>> gen = as_generator(sim, latent_dim=SIMULATORS["detector"].latent_dim, stochastic=True)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np


def detector(z: np.ndarray, rng: np.random.Generator, mu: float = 0.0, sigma: float = 0.5, kappa: float = 1.0,
             stochastic_term: float = 0.25, constant_term: float = 0.1) -> np.ndarray:
    """The ``detector`` simulator on latents ``z`` ``(n, 2)``: rows ``(n, 2)``."""
    z = np.asarray(z, dtype=np.float64)
    energy = np.exp(mu + sigma * z[:, 0])
    phi = np.pi * np.tanh(kappa * z[:, 1])
    resolution = stochastic_term * np.sqrt(energy) + constant_term * energy
    x = energy[:, None] * np.stack([np.cos(phi), np.sin(phi)], axis=1)
    return (x + resolution[:, None] * rng.standard_normal(x.shape)).astype(np.float32)


_CAL_CHANNELS, _CAL_CELLS = 10, 1000


def _calorimeter_matrices() -> tuple[np.ndarray, np.ndarray]:
    """The fixed mixing of physics features into channels and of hidden cells into channels."""
    rng = np.random.default_rng(20261206)
    mix = rng.normal(size=(3, _CAL_CHANNELS)) / np.sqrt(3)
    cells = rng.normal(size=(_CAL_CELLS, _CAL_CHANNELS)) * (0.3 / np.sqrt(_CAL_CELLS))  # std 0.3 per channel
    return mix, cells


_CAL_MIX, _CAL_CELLS_B = _calorimeter_matrices()


def calorimeter(z: np.ndarray, rng: np.random.Generator, mu: float = 0.0, sigma: float = 1.0,
                kappa: float = 1.0) -> np.ndarray:
    """The ``calorimeter`` simulator on latents ``z`` ``(n, 3)``: rows ``(n, 10)``, each the
    mixed physics features plus 1,000 hidden cell fluctuations."""
    z = np.asarray(z, dtype=np.float64)
    physics = np.stack([mu + sigma * z[:, 0], np.tanh(kappa * z[:, 1]), np.sinh(0.5 * z[:, 2])], axis=1)
    hidden = rng.standard_normal((len(z), _CAL_CELLS))
    return (physics @ _CAL_MIX + hidden @ _CAL_CELLS_B).astype(np.float32)


@dataclass(frozen=True)
class Simulator:
    """A toy simulator: its function, latent dimension, and base and truth parameters."""

    fn: Callable
    latent_dim: int
    base: dict
    truth: dict


SIMULATORS = {
    "detector": Simulator(detector, 2, {"mu": 0.0, "sigma": 0.5, "kappa": 1.0},
                          {"mu": 0.3, "sigma": 0.35, "kappa": 0.6}),
    "calorimeter": Simulator(calorimeter, 3, {"mu": 0.0, "sigma": 1.0, "kappa": 1.0},
                             {"mu": 0.5, "sigma": 0.7, "kappa": 0.7}),
}


def _known(name: str) -> Simulator:
    if name not in SIMULATORS:
        raise ValueError(f"simulator: unknown {name!r}; choose from {', '.join(SIMULATORS)}")
    return SIMULATORS[name]


def simulator(name: str, truth: bool = False) -> Callable[[np.ndarray, np.random.Generator], np.ndarray]:
    """The simulator ``f(z, rng)`` at its base (or ``truth``) parameters, a plain function of
    ``(z, rng)`` carrying its ``latent_dim``."""
    sim = _known(name)
    params = sim.truth if truth else sim.base

    def simulate(z: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return sim.fn(z, rng, **params)

    simulate.__name__ = f"{name}_{'truth' if truth else 'base'}"
    simulate.latent_dim = sim.latent_dim
    return simulate


def true_latent(name: str) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation (per coordinate, independent normals) of the latent density
    that the base simulator needs to reproduce the truth: the truth's latents mapped through the
    truth's physics and back through the base's (both maps are monotone per coordinate)."""
    sim = _known(name)
    b, t = sim.base, sim.truth
    mean = [(t["mu"] - b["mu"]) / b["sigma"], 0.0] + [0.0] * (sim.latent_dim - 2)
    std = [t["sigma"] / b["sigma"], t["kappa"] / b["kappa"]] + [1.0] * (sim.latent_dim - 2)
    return np.array(mean), np.array(std)


def simulate_truth(name: str, n: int, seed: int | None = 0) -> np.ndarray:
    """``n`` rows of the truth: the simulator at its truth parameters on fresh latents."""
    sim = _known(name)
    rng = np.random.default_rng(seed)
    return simulator(name, truth=True)(rng.standard_normal((int(n), sim.latent_dim)), rng)
