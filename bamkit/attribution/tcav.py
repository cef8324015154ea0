"""TCAV, Testing with Concept Activation Vectors (Kim et al. 2018), as BAM uses it (App. F; docs/methods.md).

For each bottleneck layer (a module name; torchvision ResNet: ``layer1`` … ``layer4`` and ``fc``):

1. Activations of the concept images and of each random set are taken with a forward hook (flattened).
2. One CAV per (concept, random set ``i``): a linear classifier ``SGDClassifier(alpha, max_iter=1000, tol=1e-3)``
   (hinge loss) on balanced classes (both sets cut to the smaller size), fit on a seeded stratified 67 % split;
   the CAV is the normal pointing toward the concept (TCAV labels the concept 0, so the coefficient's sign flips).
3. The directional derivative of each target image is ``∇_a CE(f(x), target) · v``; the image counts when it is
   negative (moving along the concept lowers the target-class loss). TCAV score = fraction of target images counted.
4. Null distribution: the same with a random *counterpart* set in place of the concept against each random set.
   Two-sided Student t-test (``scipy.stats.ttest_ind``, equal variances) of the concept's scores against the null
   scores; BAM keeps the layers with p ≤ 0.01 and averages their mean TCAV scores (NaN, flagged, when none survive).

Layers are taken in groups whose activations fit a memory budget (:mod:`bamkit.attribution.activations`), each
group in one forward pass per image set, so memory stays bounded whatever the model; the CAV fits of a random set
run side by side on a thread pool. Randomness comes only from ``seed`` (split and classifier of repeat ``i`` use
``seed + i``), so the result does not depend on the grouping or the number of threads. BAM's script used
``num_random=2`` (the ``bam2019`` preset); bamkit defaults to 10 because two repeats give the t-test almost no
power.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from bamkit.attribution.activations import layer_activations, layer_groups, loss_gradients
from bamkit.attribution.base import ExecOptions, Method, model_guard, register
from bamkit.attribution.cam import find_module
from bamkit.errors import ConfigError
from bamkit.progress import bar

RESNET_BOTTLENECKS = ("layer1", "layer2", "layer3", "layer4", "fc")


def bottlenecks(model: nn.Module, layers: Sequence[str] | str = "auto") -> tuple[str, ...]:
    """The layers ``"auto"`` stands for: the model's own ``tcav_layers`` (e.g. EfficientNet-Lite0's), else
    torchvision ResNet's ``layer1..layer4`` and ``fc`` (BAM's block_layer1..4 and logit)."""
    if layers == "auto":
        return tuple(getattr(model, "tcav_layers", RESNET_BOTTLENECKS))
    if isinstance(layers, str) or not layers:
        raise ConfigError(f"tcav: layers must be 'auto' or a non-empty list of module names, got {layers!r}")
    return tuple(layers)


@dataclass(frozen=True)
class TCAVResult:
    """Outcome of :func:`tcav` for one (model, target class, concept).

    Attributes:
        layers: the bottlenecks tested, in order.
        scores: layer -> the concept's TCAV score for each random repeat (``num_random`` values in [0,1]).
        random_scores: layer -> the null scores (random counterpart vs each random set).
        p_values: layer -> two-sided t-test p-value of ``scores`` vs ``random_scores`` (1.0 when undefined).
        cav_accuracy: layer -> held-out accuracy of each concept CAV.
        kept_layers: layers with p ≤ ``p_threshold``.
        concept_score: mean over kept layers of the mean TCAV score; NaN when no layer is kept.
        no_significant_layer: True when no layer survived the test (the score is then NaN).
        p_threshold: the significance level used.
        repeat_scores: per random repeat, the mean over kept layers of that repeat's score (their mean is
            ``concept_score``): the spread behind a TCAV score's confidence interval.
        random_score: the same mean for the null (random counterpart) scores: TCAV's random baseline.
    """

    layers: tuple[str, ...]
    scores: dict[str, list[float]]
    random_scores: dict[str, list[float]]
    p_values: dict[str, float]
    cav_accuracy: dict[str, list[float]]
    kept_layers: tuple[str, ...]
    concept_score: float
    no_significant_layer: bool
    p_threshold: float = 0.01
    repeat_scores: tuple[float, ...] = ()
    random_score: float = float("nan")
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def random_repeat_scores(self) -> tuple[float, ...]:
        """Per random repeat, the mean over kept layers of the null score (their mean is ``random_score``): the
        spread behind the random baseline's interval."""
        kept = self.kept_layers
        n = len(self.repeat_scores)
        return tuple(
            float(np.mean([self.random_scores[k][i] for k in kept])) if kept else math.nan for i in range(n)
        )

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TCAVResult:
        """The inverse of :meth:`to_dict` (a cached result)."""
        names = set(cls.__dataclass_fields__) - {"meta"}
        tuples = ("layers", "kept_layers", "repeat_scores")
        kw = {k: tuple(v) if k in tuples else v for k, v in d.items() if k in names}
        return cls(**kw, meta={k: v for k, v in d.items() if k not in names})

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (NaN stays a float NaN)."""
        return {
            "layers": list(self.layers),
            "scores": self.scores,
            "random_scores": self.random_scores,
            "p_values": self.p_values,
            "cav_accuracy": self.cav_accuracy,
            "kept_layers": list(self.kept_layers),
            "concept_score": self.concept_score,
            "no_significant_layer": self.no_significant_layer,
            "p_threshold": self.p_threshold,
            "repeat_scores": list(self.repeat_scores),
            "random_score": self.random_score,
            **self.meta,
        }


def train_cav(concept: np.ndarray, negative: np.ndarray, alpha: float, seed: int) -> tuple[np.ndarray, float]:
    """CAV (D,) pointing toward ``concept`` and its held-out accuracy (TCAV ``cav.py`` recipe)."""
    from sklearn.linear_model import SGDClassifier
    from sklearn.model_selection import train_test_split

    n = min(len(concept), len(negative))
    # float64 whatever the activations' dtype: the classifier then fits the same way on every sklearn version
    feats = np.concatenate([concept[:n], negative[:n]]).astype(np.float64)
    labels = np.concatenate([np.zeros(n, dtype=int), np.ones(n, dtype=int)])  # concept = 0, as in TCAV
    x_tr, x_te, y_tr, y_te = train_test_split(
        feats, labels, test_size=0.33, stratify=labels, random_state=seed
    )
    clf = SGDClassifier(alpha=alpha, max_iter=1000, tol=1e-3, random_state=seed)
    clf.fit(x_tr, y_tr)
    cav = -clf.coef_[0]  # the coefficient points to label 1 (random); flip toward the concept
    norm = np.linalg.norm(cav)
    return (cav / norm if norm > 0 else cav), float(clf.score(x_te, y_te))


def tcav_score(grads: np.ndarray, cav: np.ndarray) -> float:
    """Fraction of rows of ``grads`` (N, D) with a negative directional derivative along ``cav``."""
    return float(np.mean(np.asarray(grads, dtype=np.float64) @ cav < 0))


def t_test(scores: Sequence[float], null: Sequence[float]) -> float:
    """Two-sided Student t-test p-value; 1.0 where undefined (both samples constant and equal)."""
    from scipy.stats import ttest_ind

    with warnings.catch_warnings():
        # a constant sample (e.g. every concept score 1.0) triggers scipy's precision warning; the pooled
        # variance of the two samples keeps the statistic well defined
        warnings.simplefilter("ignore", RuntimeWarning)
        p = float(ttest_ind(np.asarray(scores), np.asarray(null)).pvalue)
    return 1.0 if math.isnan(p) else p


def _check_images(name: str, images: object, like: torch.Tensor | None = None) -> torch.Tensor:
    if (
        not isinstance(images, torch.Tensor)
        or images.ndim != 4
        or not images.is_floating_point()
        or not len(images)
    ):
        got = (
            f"{images.dtype} {tuple(images.shape)}"
            if isinstance(images, torch.Tensor)
            else type(images).__name__
        )
        raise ConfigError(
            f"tcav: {name} must be a non-empty float tensor (M,C,H,W) of preprocessed images, got {got}"
        )
    if like is not None and images.shape[1:] != like.shape[1:]:
        raise ConfigError(
            f"tcav: {name} has image shape {tuple(images.shape[1:])}, the target images "
            f"{tuple(like.shape[1:])}; preprocess every set the same way"
        )
    return images


def tcav(
    model: nn.Module,
    target_images: torch.Tensor,
    target_class: int,
    concept_images: torch.Tensor,
    random_sets: Sequence[torch.Tensor],
    layers: Sequence[str] | str = "auto",
    num_random: int = 10,
    alpha: float = 0.1,
    seed: int = 0,
    batch_size: int = 64,
    *,
    random_counterpart: torch.Tensor | None = None,
    p_threshold: float = 0.01,
) -> TCAVResult:
    """TCAV score of a concept for one class with BAM's significance filter (docs/methods.md).

    Args:
        model: classifier returning logits for preprocessed (N,C,H,W) inputs.
        target_images: (N,C,H,W) images of the target class (BAM: ``dog_bedroom``).
        target_class: index of the class whose loss is differentiated (BAM: dog for f_o, bedroom for f_s).
        concept_images: (M,C,H,W) concept examples (BAM: dogs in any scene).
        random_sets: random image sets (M_i,C,H,W); the first ``num_random`` are the negatives. Without
            ``random_counterpart`` the set after them (index ``num_random``) is the counterpart.
        layers: bottleneck module names, or ``"auto"`` (:func:`bottlenecks`).
        num_random: random repeats per layer (BAM 2, bamkit default 10).
        alpha: SGDClassifier regularisation (BAM 0.1).
        seed: base seed of the splits and classifiers (repeat i uses ``seed + i``).
        batch_size: images per forward pass.
        random_counterpart: (M,C,H,W) random images standing in for the concept in the null runs.
        p_threshold: keep layers with p ≤ this (BAM 0.01).

    Returns:
        A :class:`TCAVResult`.
    """
    target_images = _check_images("target_images", target_images)
    concept_images = _check_images("concept_images", concept_images, target_images)
    if not isinstance(num_random, int) or num_random < 2:
        raise ConfigError(
            f"tcav: num_random must be an integer >= 2 (the t-test needs two repeats), got {num_random!r}"
        )
    need = num_random if random_counterpart is not None else num_random + 1
    if len(random_sets) < need:
        raise ConfigError(
            f"tcav: got {len(random_sets)} random sets, need {need} ({num_random} negatives"
            f"{'' if random_counterpart is not None else ' + 1 counterpart'}); pass more random sets, "
            f"lower num_random or give random_counterpart="
        )
    negatives = [
        _check_images(f"random_sets[{i}]", r, target_images) for i, r in enumerate(random_sets[:num_random])
    ]
    counterpart = _check_images(
        "random_counterpart",
        random_counterpart if random_counterpart is not None else random_sets[num_random],
        target_images,
    )
    if not isinstance(target_class, int) or target_class < 0:
        raise ConfigError(f"tcav: target_class must be a class index >= 0, got {target_class!r}")
    layers = bottlenecks(model, layers)
    for layer in layers:
        find_module(model, layer)

    scores, null, pvals, accs = {}, {}, {}, {}
    with model_guard(model), ThreadPoolExecutor(max(1, torch.get_num_threads())) as pool:
        probe = layer_activations(model, target_images[:1], layers, 1)
        # held at once: the target gradients, the concept, the counterpart and one random set (the random sets
        # are taken one by one)
        held = len(target_images) + len(concept_images) + len(counterpart) + max(len(n) for n in negatives)
        groups = layer_groups({k: v.shape[1] for k, v in probe.items()}, held)
        done = bar(total=len(layers), desc="tcav", unit="layer")
        for group in groups:
            grads = loss_gradients(model, target_images, target_class, group, batch_size)
            concept = layer_activations(model, concept_images, group, batch_size)
            other = layer_activations(model, counterpart, group, batch_size)
            cavs: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {layer: [] for layer in group}
            for layer in group:
                accs[layer] = []
            for i, neg_images in enumerate(negatives):
                neg = layer_activations(model, neg_images, group, batch_size)
                # the fits are independent and seeded, and sklearn's SGD releases the GIL: run them side by side
                # (the same CAVs as one after another)
                fits = {
                    layer: [
                        pool.submit(train_cav, pos[layer], neg[layer], alpha, seed + i)
                        for pos in (concept, other)
                    ]
                    for layer in group
                }
                for layer in group:
                    (cav, acc), (null_cav, _) = (f.result() for f in fits[layer])
                    cavs[layer].append((cav, null_cav))
                    accs[layer].append(acc)
            for layer in group:
                # the float64 copy of a layer's gradients is made once for its 2 x num_random scores, not per CAV
                g = np.asarray(grads.pop(layer), dtype=np.float64)
                scores[layer] = [tcav_score(g, cav) for cav, _ in cavs[layer]]
                null[layer] = [tcav_score(g, null_cav) for _, null_cav in cavs[layer]]
                pvals[layer] = t_test(scores[layer], null[layer])
            done.update(len(group))
        done.close()
    kept = tuple(layer for layer in layers if pvals[layer] <= p_threshold)
    concept_score = float(np.mean([np.mean(scores[k]) for k in kept])) if kept else float("nan")
    nan = float("nan")
    repeats = tuple(float(np.mean([scores[k][i] for k in kept])) if kept else nan for i in range(num_random))
    random_score = float(np.mean([np.mean(null[k]) for k in kept])) if kept else nan
    return TCAVResult(
        layers=tuple(layers),
        scores=scores,
        random_scores=null,
        p_values=pvals,
        cav_accuracy=accs,
        kept_layers=kept,
        concept_score=concept_score,
        no_significant_layer=not kept,
        p_threshold=p_threshold,
        repeat_scores=repeats,
        random_score=random_score,
        meta={"target_class": target_class, "num_random": num_random, "alpha": alpha, "seed": seed},
    )


@register("tcav", paper="Kim et al. 2018, TCAV (BAM App. F: significance-filtered concept score)")
class TCAV(Method):
    """The concept method TCAV: not a saliency map; use :meth:`score` (the ``tcav`` function) with image sets.

    Args:
        layers: bottleneck module names, or ``"auto"`` (default: the model's ``tcav_layers``, else torchvision
            ResNet's ``layer1..layer4`` and ``fc``).
        num_random: random repeats per layer (BAM preset 2).
        alpha: CAV classifier regularisation.
        seed: base seed.
        p_threshold: significance level of the layer filter.
    """

    output = "concept"

    def __init__(
        self,
        layers: Sequence[str] | str = "auto",
        num_random: int = 10,
        alpha: float = 0.1,
        seed: int = 0,
        p_threshold: float = 0.01,
    ) -> None:
        super().__init__()
        if layers != "auto" and (isinstance(layers, str) or not layers):
            raise ConfigError(
                f"tcav: layers must be 'auto' or a non-empty list of module names, got {layers!r}"
            )
        if not isinstance(num_random, int) or num_random < 2:
            raise ConfigError(f"tcav: num_random must be an integer >= 2, got {num_random!r}")
        if not alpha > 0 or not 0 < p_threshold <= 1:
            raise ConfigError(f"tcav: need alpha > 0 and 0 < p_threshold <= 1, got {alpha}, {p_threshold}")
        self.layers = layers if layers == "auto" else tuple(layers)
        self.num_random, self.alpha = num_random, float(alpha)
        self.seed, self.p_threshold = int(seed), float(p_threshold)

    def score(
        self,
        model: nn.Module,
        target_images: torch.Tensor,
        target_class: int,
        concept_images: torch.Tensor,
        random_sets: Sequence[torch.Tensor],
        *,
        random_counterpart: torch.Tensor | None = None,
        opts: ExecOptions = ExecOptions(),
    ) -> TCAVResult:
        """Run :func:`tcav` with this instance's hyper-parameters."""
        return tcav(
            model,
            target_images,
            target_class,
            concept_images,
            random_sets,
            layers=self.layers,
            num_random=self.num_random,
            alpha=self.alpha,
            seed=self.seed,
            batch_size=opts.batch_size,
            random_counterpart=random_counterpart,
            p_threshold=self.p_threshold,
        )

    def attribute(
        self,
        model: nn.Module,
        inputs: torch.Tensor,
        target: torch.Tensor,
        *,
        generator: torch.Generator | None = None,
        seeds: torch.Tensor | None = None,
        opts: ExecOptions = ExecOptions(),
    ) -> torch.Tensor:
        raise ConfigError(
            "tcav is a concept method and makes no per-pixel map; call "
            "bamkit.attribution.tcav.tcav(model, target_images, target_class, concept_images, "
            "random_sets) or TCAV(...).score(...)"
        )
