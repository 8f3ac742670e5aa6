"""Latent importance weights ``w_φ(z)`` learned against a Wasserstein critic (Issenhuth et al.,
*Latent reweighting, an almost free improvement for GANs*, Sec. 3, Eq. (6), Alg. 1).

The generator ``G`` stays frozen; ``w_φ(z) >= 0`` reweights the latent prior so that ``G``'s
reweighted output is closer to the data in Wasserstein distance. The fit has four parts, one
module each:

- :mod:`.game`: the game of Alg. 1 / Eq. (6) between a weight player and a critic;
- :mod:`.teachers`: teacher candidates besides the game (smoothed ratios, cell calibration,
  transport weights);
- :mod:`.selection` and :mod:`.crossfit`: every candidate scored by what latent rejection
  delivers (accepted-points EMD) on held-out parts, kept only if it beats ``w ≈ 1`` there;
- :mod:`.distillation`: ``w_φ(z)`` learns a kept data-space teacher.

Why the pieces are as they are, and the variants that were tried and removed:
docs/latent_reweighting.md and docs/decisions/latent_importance.md.
"""

from genrefine.weights.latent_importance.game import DataWeightNetwork
from genrefine.weights.latent_importance.network import LatentImportanceNetwork
from genrefine.weights.latent_importance.selection import (CHECK_PARTS, CHECK_SIZE, accepted_emd, accepted_indices,
                                                           confirms, pool_factor)
from genrefine.weights.latent_importance.settings import LatentImportanceSettings
from genrefine.weights.latent_importance.teachers import (TRANSPORT_KIND, AveragedTeacher, CellCalibrated, KMeansCells,
                                                          SmoothedRatio)

_accepted_emd = accepted_emd  # the name benchmarks/lrw_check_bias.py imports

__all__ = ["LatentImportanceNetwork", "LatentImportanceSettings", "DataWeightNetwork", "SmoothedRatio", "KMeansCells",
           "CellCalibrated", "AveragedTeacher", "TRANSPORT_KIND", "CHECK_PARTS", "CHECK_SIZE", "accepted_emd",
           "accepted_indices", "confirms", "pool_factor"]
