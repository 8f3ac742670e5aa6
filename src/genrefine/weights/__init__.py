"""Weight estimators: where the generator over- or under-produces."""

from genrefine.weights.classifier import DensityRatioClassifier, latent_target
from genrefine.weights.ensemble import RatioEnsemble
from genrefine.weights.omnifold import OmniFold, pullback_spread

__all__ = ["DensityRatioClassifier", "OmniFold", "RatioEnsemble", "latent_target", "pullback_spread"]
