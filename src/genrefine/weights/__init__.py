"""Weight estimators: where the generator over- or under-produces."""

from genrefine.weights.classifier import DensityRatioClassifier, latent_target

__all__ = ["DensityRatioClassifier", "latent_target"]
