"""The noisy-gradient family's one base: SmoothGrad (Smilkov et al. 2017) and every method that averages a
kernel over Gaussian copies ``x + ε_i`` (BAM's SG, SG×Input, VarGrad, AbsoluteGrad, Guided AbsoluteGrad,
IG-SmoothGrad, SmoothTaylor, GB-SG, GradCAM-SG).

Their hyper-parameters (``n_samples``, ``sigma``, ``noise_space``, ``mean``, ``std``, often ``magnitude``) are
declared per method with :func:`~bamkit.attribution.base.hyper_parameters` (the defaults differ: BAM 25 copies,
GAG 20), validated by :meth:`Smoothed.check` and turned into samples by
:func:`~bamkit.attribution.samplers.gaussian_sampler` — so equal settings share one pass in ``attribute_many``.
"""

from __future__ import annotations

from typing import ClassVar

from bamkit.attribution import reducers as R
from bamkit.attribution import samplers as S
from bamkit.attribution.base import Kernel
from bamkit.attribution.engine import SampledMethod
from bamkit.attribution.kernels import InputGradient
from bamkit.preprocess import IMAGENET_MEAN, IMAGENET_STD

#: The noise settings every member of the family takes (after its ``n_samples`` and ``sigma``).
NOISE = {"noise_space": "input", "mean": IMAGENET_MEAN, "std": IMAGENET_STD}


class Smoothed(SampledMethod):
    """A kernel (the input gradient unless overridden) averaged over Gaussian noisy copies; ``magnitude``
    squares each sample (PAIR saliency's ``magnitude=True``, BAM's "SmoothGrad"); σ is a fraction of each image's
    (max − min) unless ``sigma_mode="absolute"`` (docs/methods.md).

    Attributes:
        min_samples: the fewest copies the reducer is defined for (a variance needs 2).
    """

    stochastic = True
    min_samples: ClassVar[int] = 1
    min_samples_reason: ClassVar[str] = ""
    magnitude: bool = False

    def check(self) -> None:
        self.n_samples = S.check_count(
            f"{self.name}: n_samples", self.n_samples, self.min_samples, self.min_samples_reason
        )
        self.sigma = float(self.sigma)
        self.magnitude = bool(self.magnitude)
        self.sampler()  # noise_space, sigma, mean/std: the sampler's own checks, before any model runs

    def kernel(self) -> Kernel:
        return InputGradient()

    def sampler(self) -> S.Sampler:
        return S.gaussian_sampler(self)

    def reducer(self) -> R.Reducer:
        return R.MeanSquare() if self.magnitude else R.Mean()
