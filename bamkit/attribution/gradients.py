"""Input-gradient methods on the engine: vanilla gradient, SmoothGrad family, IG family, SmoothTaylor, feature
suppression (docs/methods.md, with the defaults of each method's paper).

Every method here is :class:`~bamkit.attribution.kernels.InputGradient` (∂ logit_target / ∂ input) evaluated on a
sampler's inputs and reduced by a reducer; methods with equal sampler parameters share one pass in
``attribute_many``. Hyper-parameters are declared once per method with ``hyper_parameters``; the noisy family's
checks and sampler are :class:`~bamkit.attribution.smoothing.Smoothed`'s.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence

import torch
from torch import nn

from bamkit.attribution import reducers as R
from bamkit.attribution import samplers as S
from bamkit.attribution.base import ExecOptions, hyper_parameters, register
from bamkit.attribution.engine import SampledMethod, resolve_seeds
from bamkit.attribution.kernels import InputGradient
from bamkit.attribution.smoothing import NOISE, Smoothed
from bamkit.errors import ConfigError
from bamkit.preprocess import IMAGENET_MEAN, IMAGENET_STD

log = logging.getLogger(__name__)

BAM = "Yang & Kim 2019, Benchmarking Attribution Methods with Relative Feature Importance (arXiv 1907.09701)"
SIMONYAN = "Simonyan et al. 2014, Deep Inside Convolutional Networks (arXiv 1312.6034)"
SMILKOV = "Smilkov et al. 2017, SmoothGrad: removing noise by adding noise (arXiv 1706.03825)"
SHRIKUMAR = "Shrikumar et al. 2016, Not Just a Black Box (arXiv 1605.01713)"
ADEBAYO = "Adebayo et al. 2018, Local explanation methods for deep neural networks lack sensitivity (VarGrad)"
GAG = "Huang & Liu 2024, Guided AbsoluteGrad: magnitude of gradients matters (arXiv 2404.15564)"
SUNDARARAJAN = "Sundararajan et al. 2017, Axiomatic Attribution for Deep Networks (arXiv 1703.01365)"
GOH = "Goh et al. 2020, Understanding Integrated Gradients with SmoothTaylor (ICPR; arXiv 2004.10484)"
LUO = "Luo, McDermott & O'Riordan 2025, Sampling Matters in Explanations (arXiv 2506.19442)"


@register("vanilla_gradient", paper=SIMONYAN)
@hyper_parameters()
class VanillaGradient(SampledMethod):
    """``a = ∂f_c/∂x`` at the clean input (BAM App. E "GB"/"VG"; docs/methods.md)."""

    def kernel(self):
        return InputGradient()

    def sampler(self):
        return S.Identity()

    def reducer(self):
        return R.Mean()


@register("gradient_x_input", paper=SHRIKUMAR)
@hyper_parameters()
class GradientXInput(VanillaGradient):
    """``a = x ⊙ ∂f_c/∂x`` on the model input (docs/methods.md; equals BAM's mean-subtracted GxI up to a factor)."""

    def reducer(self):
        return R.TimesInput(R.Mean())


@register("smoothgrad", paper=SMILKOV)
@hyper_parameters(n_samples=20, sigma=0.15, magnitude=False, **NOISE)
class SmoothGrad(Smoothed):
    """``a = (1/n) Σ_i g(x + ε_i)`` (or of ``g²`` with ``magnitude=True``), ε_i ~ N(0, σ²), σ a fraction of the
    image's range (docs/methods.md; defaults: GAG's n 20, 15 %, mean).

    Args:
        n_samples: noisy copies. sigma: noise scale (fraction of max − min). magnitude: square the gradients
        (PAIR saliency ``magnitude=True``, BAM's "SmoothGrad"). noise_space: ``"input"`` or ``"pixel"``.
        mean, std: the model's input normalisation (used by ``noise_space="pixel"``).
    """


@register("smoothgrad_sq", paper=BAM + "; " + SMILKOV)
@hyper_parameters(n_samples=25, sigma=0.15, **NOISE)
class SmoothGradSquared(Smoothed):
    """BAM's "SmoothGrad": ``(1/n) Σ_i g(x + ε_i)²``, n 25, σ 15 % (PAIR saliency 0.0.5 defaults; docs/methods.md)."""

    magnitude = True


@register("smoothgrad_x_input", paper=BAM + "; " + SMILKOV)
@hyper_parameters(n_samples=25, sigma=0.15, magnitude=False, **NOISE)
class SmoothGradXInput(Smoothed):
    """``x ⊙ SmoothGrad(x)`` (BAM method index 11; n 25, σ 15 % so it shares BAM's SmoothGrad samples)."""

    def reducer(self):
        return R.TimesInput(super().reducer())


@register("vargrad", paper=ADEBAYO + "; " + GAG)
@hyper_parameters(n_samples=20, sigma=0.15, **NOISE)
class VarGrad(Smoothed):
    """Unbiased variance of the noisy gradients (docs/methods.md; GAG n 20, 15 %)."""

    min_samples, min_samples_reason = 2, " (unbiased variance)"

    def reducer(self):
        return R.Variance()


@register("absolutegrad", paper=GAG)
@hyper_parameters(n_samples=20, sigma=0.15, **NOISE)
class AbsoluteGrad(Smoothed):
    """``(1/n) Σ_i |g(x + ε_i)|`` (GAG eq. 2, "GAG-0"; docs/methods.md; n 20, 15 %)."""

    def reducer(self):
        return R.MeanAbs()


@register("guided_absolutegrad", paper=GAG)
@hyper_parameters(n_samples=20, sigma=0.15, p=0.85, guide_normalize=False, **NOISE)
class GuidedAbsoluteGrad(Smoothed):
    """Guided AbsoluteGrad: mean |g| weighted by a variance guide (GAG §3.2, Alg. 1; docs/methods.md; n 20, 15 %,
    p = 0.85 = the 85th percentile, per image and channel).

    Args:
        p: variance percentile as a fraction. guide_normalize: the scale-free guide variant (docs/methods.md).
    """

    min_samples, min_samples_reason = 2, " (its guide is a variance)"

    def check(self) -> None:
        self.p, self.guide_normalize = float(self.p), bool(self.guide_normalize)
        super().check()
        self.reducer()

    def reducer(self):
        return R.GuidedAbs(self.p, self.guide_normalize)


@register("integrated_gradients", paper=SUNDARARAJAN + "; " + BAM)
@hyper_parameters(n_steps=25, baseline="black", rule="trapezoid", mean=IMAGENET_MEAN, std=IMAGENET_STD)
class IntegratedGradients(SampledMethod):
    """``a = (x − x') ⊙ ∫_0^1 ∇f_c(x' + α(x − x')) dα`` by quadrature (docs/methods.md).

    Args:
        n_steps: gradient evaluations on the path (BAM 25). baseline: ``"black"`` (BAM), ``"mean"``, a number or
        a tensor. rule: ``trapezoid`` (default), ``left``, ``right``, ``middle``, ``gausslegendre`` or BAM's
        ``bam_linspace``. mean, std: the model's input normalisation (to place black).
    """

    def check(self) -> None:
        self.n_steps = S.check_count("n_steps", self.n_steps)
        self.sampler()

    def kernel(self):
        return InputGradient()

    def sampler(self):
        return S.StraightPath(self.n_steps, self.baseline, self.rule, self.mean, self.std)

    def reducer(self):
        return R.PathIntegral()


@register("ig_smoothgrad", paper=BAM + "; " + SMILKOV)
@hyper_parameters(
    n_samples=25, sigma=0.15, n_steps=25, baseline="black", rule="trapezoid", magnitude=True, **NOISE
)
class IGSmoothGrad(Smoothed):
    """SmoothGrad of Integrated Gradients: mean over noisy copies of IG (squared with ``magnitude=True``, as
    BAM's smoothing wrapper: 25 copies × 25 steps; docs/methods.md). The noise is added to x, the baseline is fixed."""

    def check(self) -> None:
        self.n_steps = S.check_count("n_steps", self.n_steps)
        super().check()

    def sampler(self):
        return S.NoisyPath(
            self.n_samples,
            self.sigma,
            self.n_steps,
            self.baseline,
            self.rule,
            self.noise_space,
            self.mean,
            self.std,
        )

    def reducer(self):
        return R.NoisyPathIntegral(self.magnitude)


@register("feature_suppression", paper=LUO)
@hyper_parameters(
    n_samples=50,
    drop_p=0.7,
    per="pixel",
    fill="black",
    times_input=False,
    mean=IMAGENET_MEAN,
    std=IMAGENET_STD,
)
class FeatureSuppression(SampledMethod):
    """Mean |gradient| over Bernoulli pixel-dropped copies ``b ⊙ x`` (Luo et al. 2025 §4.1; docs/methods.md).

    Args:
        n_samples: dropped copies (paper 50). drop_p: drop probability (paper 0.7). per: ``"pixel"`` (shared by
        the channels) or ``"element"``. fill: ``"black"``, ``"mean"`` or a number. times_input: multiply by x.
    """

    stochastic = True

    def check(self) -> None:
        self.times_input = bool(self.times_input)
        self.sampler()

    def kernel(self):
        return InputGradient()

    def sampler(self):
        return S.BernoulliDrop(self.n_samples, self.drop_p, self.per, self.fill, self.mean, self.std)

    def reducer(self):
        return R.TimesInput(R.MeanAbs()) if self.times_input else R.MeanAbs()


Objective = Callable[[nn.Module, torch.Tensor, torch.Tensor, torch.Tensor], float]


def total_variation(model: nn.Module, x: torch.Tensor, target: torch.Tensor, heatmap: torch.Tensor) -> float:
    """Average total variation (L1) of the ``abs_p99``-normalised heat-map (SmoothTaylor's noise level at one
    scale; docs/metrics.md#aupc-and-autvc). Lower = smoother. ``heatmap`` (1,H,W) signed."""
    from bamkit.attribution.postprocess import to_saliency

    m = to_saliency(heatmap[:, None], mode="abs_p99")[0]
    return float(((m[1:] - m[:-1]).abs().sum() + (m[:, 1:] - m[:, :-1]).abs().sum()) / m.numel())


def default_objective(
    mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD
) -> Objective:
    """AUPC from ``bamkit.metrics`` when it is available (SmoothTaylor's default), else :func:`total_variation`."""
    try:
        from bamkit.metrics import aupc
    except ImportError:
        return total_variation

    def objective(model: nn.Module, x: torch.Tensor, target: torch.Tensor, heatmap: torch.Tensor) -> float:
        return float(aupc(model, x, heatmap, target, mean=mean, std=std).aupc.float().mean())

    return objective


@register("smooth_taylor", paper=GOH)
@hyper_parameters(
    n_samples=150,
    sigma=0.5,
    sigma_mode="absolute",
    noise_space="input",
    adaptive=False,
    objective="auto",
    lr=0.1,
    decay=0.9,
    patience=3,
    max_iter=20,
    mean=IMAGENET_MEAN,
    std=IMAGENET_STD,
)
class SmoothTaylor(Smoothed):
    """``R(x) = (1/N) Σ_i (x − z_i) ⊙ ∇f_c(z_i)``, roots ``z_i = x + σ ε_i`` (docs/methods.md; N 150, σ 0.5 absolute
    in normalised units). With ``adaptive=True``, σ is optimised per image to minimise ``objective``
    (adaptive noising: start at mean |x|, step ``lr`` decayed by ``decay`` on failure, stop after ``patience``
    failures or ``max_iter`` iterations; each step costs N gradients plus the objective).

    Args:
        objective: ``"auto"`` (AUPC from ``bamkit.metrics`` if present, else total variation),
            ``"total_variation"``, or a callable ``(model, x (1,C,H,W), target (1,), heatmap (1,H,W)) -> float``
            (lower is better).
    """

    def check(self) -> None:
        if not (callable(self.objective) or self.objective in ("auto", "total_variation")):
            raise ConfigError(
                f"objective {self.objective!r} is not 'auto', 'total_variation' or a callable "
                "(model, x, target, heatmap) -> float"
            )
        self.adaptive, self.lr, self.decay = bool(self.adaptive), float(self.lr), float(self.decay)
        self.patience, self.max_iter = int(self.patience), int(self.max_iter)
        super().check()

    def sampled(self) -> bool:
        return not self.adaptive

    def reducer(self):
        return R.Taylor()

    def _fixed(self, sigma: float) -> SmoothTaylor:
        return SmoothTaylor(self.n_samples, sigma, "absolute", self.noise_space, mean=self.mean, std=self.std)

    def attribute(self, model, inputs, target, *, generator=None, seeds=None, opts=ExecOptions()):
        if not self.adaptive:
            return super().attribute(model, inputs, target, generator=generator, seeds=seeds, opts=opts)
        seeds = resolve_seeds(inputs.shape[0], generator, seeds)
        if self.objective == "auto":
            objective = default_objective(self.mean, self.std)
        elif self.objective == "total_variation":
            objective = total_variation
        else:
            objective = self.objective
        out = [
            self._adapt(model, inputs[j : j + 1], target[j : j + 1], seeds[j : j + 1], objective, opts)
            for j in range(inputs.shape[0])
        ]
        return torch.cat(out) if out else inputs.new_zeros(inputs.shape)

    def _adapt(self, model, x, t, seed, objective: Objective, opts: ExecOptions) -> torch.Tensor:
        """Adaptive noising for one image (docs/methods.md, after the reference ``adapt_noise``)."""

        def run(sigma: float) -> tuple[float, torch.Tensor]:
            a = self._fixed(sigma).attribute(model, x, t, seeds=seed, opts=opts)
            return objective(model, x, t, a.sum(1)), a

        sigma = float(x.abs().mean())
        score, attr = run(sigma)
        best = (score, attr)
        lr, fails = self.lr, 0
        for _ in range(self.max_iter):
            cand = abs(sigma + lr)
            c_score, c_attr = run(cand)
            if c_score > score:
                cand = abs(sigma - lr)
                c_score, c_attr = run(cand)
            if c_score > score or not math.isfinite(c_score):
                fails += 1
                lr *= self.decay
            else:
                fails = 0
            sigma, score = cand, c_score
            if c_score < best[0]:
                best = (c_score, c_attr)
            if fails >= self.patience:
                break
        log.debug("smooth_taylor adaptive noising: final sigma %.4f, best objective %.4g", sigma, best[0])
        return best[1]
