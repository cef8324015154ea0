"""GradCAM (Selvaraju et al. 2017), its squared SmoothGrad and Guided GradCAM, as BAM computes them.

BAM / PAIR saliency 0.0.5 recipe (docs/methods.md): with ``A`` the activation (K,h,w) of a layer (torchvision
ResNet: the ``layer4`` output) and ``f_c`` the target logit,

* ``w_k = mean_{i,j} ∂f_c/∂A_k[i,j]`` (global-average-pooled gradients),
* ``cam = ReLU(Σ_k w_k A_k)``, divided by its maximum (an all-zero CAM stays zero: PAIR divides by zero here),
* bilinear upsampling to the input size (``F.interpolate(mode="bilinear", align_corners=False)``, the half-pixel
  convention of captum's ``LayerAttribution.interpolate``; TF1's legacy ``resize_bilinear`` that BAM used has no
  half-pixel offset, a sub-pixel shift).

Normalising before upsampling (as BAM does) equals normalising after up to the upsampled maximum, which bilinear
interpolation can leave slightly below 1. Guided GradCAM (docs/methods.md) is ``GB ⊙ GC`` with the normalised,
upsampled CAM broadcast over channels; GGC-SG is ``GB-SG ⊙ GC-SG`` (BAM ``gbs_mask * gcs_mask``).
"""

from __future__ import annotations

import contextlib
import difflib
from collections.abc import Hashable, Iterator

import torch
import torch.nn.functional as F
from torch import nn

from bamkit.attribution import reducers as R
from bamkit.attribution import samplers as S
from bamkit.attribution.backprop import (
    BAM_PAPER,
    GuidedBackprop,
    GuidedBackpropSmoothGrad,
    eager,
    target_score,
)
from bamkit.attribution.base import (
    ExecOptions,
    Kernel,
    KernelFn,
    Method,
    functional,
    hyper_parameters,
    register,
)
from bamkit.attribution.engine import CompositeMethod, SampledMethod
from bamkit.attribution.forward import forward_context
from bamkit.attribution.smoothing import NOISE, Smoothed
from bamkit.errors import ConfigError

DEFAULT_LAYER = (
    "layer4"  # torchvision ResNet's last residual stage: the layer BAM's GradCAM reads (docs/methods.md)
)


def cam_layer(model: nn.Module, name: str = "auto") -> str:
    """The layer name ``"auto"`` stands for: the model's own ``cam_layer`` attribute (the last convolutional
    activation, e.g. EfficientNet-Lite0's ``head``), else ResNet's ``layer4``."""
    return getattr(model, "cam_layer", DEFAULT_LAYER) if name == "auto" else name


def find_module(model: nn.Module, name: str) -> nn.Module:
    """The sub-module of ``model`` called ``name`` (as in ``named_modules()``), with close names on a miss;
    ``"auto"`` resolves through :func:`cam_layer`."""
    name = cam_layer(model, name)
    modules = dict(model.named_modules())
    if name not in modules or name == "":
        close = difflib.get_close_matches(name, [n for n in modules if n], n=3, cutoff=0.4)
        hint = (
            f"did you mean {' or '.join(repr(c) for c in close)}?"
            if close
            else f"top-level modules: {', '.join(n for n, _ in model.named_children())}"
        )
        raise ConfigError(
            f"model {type(model).__name__} has no module {name!r}; {hint} "
            f"(pass layer=<name from model.named_modules()>)"
        )
    return modules[name]


@contextlib.contextmanager
def capture_output(module: nn.Module, name: str) -> Iterator[list[torch.Tensor]]:
    """Collect ``module``'s forward outputs in a list while the block runs; the hook is removed on exit.

    The hook returns a clone so that in-place operations after the layer (ReLU(inplace=True)) cannot modify the
    captured tensor, which stays in the autograd graph for ``torch.autograd.grad``.
    """
    store: list[torch.Tensor] = []

    def hook(_mod: nn.Module, _inp: tuple, out: torch.Tensor) -> torch.Tensor:
        if not isinstance(out, torch.Tensor):
            raise ConfigError(
                f"layer {name!r} returns {type(out).__name__}, expected one tensor; "
                f"choose a layer whose output is a tensor"
            )
        store.append(out)
        return out.clone()

    handle = module.register_forward_hook(hook)
    try:
        yield store
    finally:
        handle.remove()


def single_output(store: list[torch.Tensor], name: str) -> torch.Tensor:
    """The one activation a forward pass produced at layer ``name`` (a layer run twice is ambiguous)."""
    if len(store) != 1:
        raise ConfigError(
            f"layer {name!r} ran {len(store)} times in one forward pass, expected once; "
            f"choose a layer that is called exactly once (e.g. 'layer4')"
        )
    return store[0]


def normalize_max(cam: torch.Tensor) -> torch.Tensor:
    """Divide each (1,h,w) map of ``cam`` (B,1,h,w) by its maximum; all-zero maps stay zero (no NaN)."""
    peak = cam.amax(dim=(1, 2, 3), keepdim=True)
    return torch.where(peak > 0, cam / peak.clamp_min(torch.finfo(cam.dtype).tiny), torch.zeros_like(cam))


class GradCAMKernel(Kernel):
    """Per-sample GradCAM map (B,1,H,W) at input resolution, in [0,1], for the layer named ``layer``.

    The forward hook lives only inside :meth:`bind`; runs eagerly (``opts.compile`` is ignored, the hook must see
    the layer), precision and memory format follow ``opts``.
    """

    def __init__(self, layer: str = "auto") -> None:
        self.layer = layer

    def key(self) -> Hashable:
        return ("gradcam", self.layer)

    @contextlib.contextmanager
    def bind(self, model: nn.Module, opts: ExecOptions) -> Iterator[KernelFn]:
        module = find_module(model, self.layer)
        with (
            forward_context(model, eager(opts), self.key()) as forward,
            capture_output(module, self.layer) as store,
        ):

            def fn(x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
                store.clear()
                xg = (
                    x.detach().clone().requires_grad_(True)
                )  # gives the activation a graph (weights are frozen)
                with torch.enable_grad():
                    score = target_score(forward(xg), target)
                act = single_output(store, self.layer)
                store.clear()
                if act.ndim != 4:
                    raise ConfigError(
                        f"GradCAM needs a (B,K,h,w) activation at layer {self.layer!r}, got shape "
                        f"{tuple(act.shape)}; choose a convolutional layer"
                    )
                (grad,) = torch.autograd.grad(score, act)
                weights = grad.float().mean(dim=(2, 3), keepdim=True)  # w_k, (B,K,1,1)
                cam = F.relu((weights * act.detach().float()).sum(dim=1, keepdim=True))
                cam = normalize_max(cam)
                cam = F.interpolate(cam, size=tuple(x.shape[-2:]), mode="bilinear", align_corners=False)
                return cam.to(x.dtype)

            yield fn


def check_layer(layer: object) -> str:
    """``layer`` if it is a non-empty module name, else a ConfigError."""
    if not isinstance(layer, str) or not layer:
        raise ConfigError(f"layer must be a module name such as 'layer4', got {layer!r}")
    return layer


@register("gradcam", paper="Selvaraju et al. 2017, Grad-CAM (BAM/PAIR 0.0.5 recipe)")
class GradCAM(SampledMethod):
    """GradCAM at layer ``layer`` (default ``"auto"``: the model's ``cam_layer``, else ``"layer4"``, the last
    residual stage of a torchvision ResNet).

    Returns:
        (N,1,H,W) maps in [0,1] at input resolution (each divided by its own maximum before upsampling).
    """

    output = "map"

    def __init__(self, layer: str = "auto") -> None:
        super().__init__()
        self.layer = check_layer(layer)

    def kernel(self) -> Kernel:
        return GradCAMKernel(self.layer)

    def sampler(self) -> S.Sampler:
        return S.Identity()

    def reducer(self) -> R.Reducer:
        return R.Mean()


@register("gradcam_smoothgrad", paper=BAM_PAPER + "; Smilkov et al. 2017, SmoothGrad")
@hyper_parameters(layer="auto", n_samples=25, sigma=0.15, magnitude=True, **NOISE)
class GradCAMSmoothGrad(Smoothed):
    """BAM's GC-SG: ``(1/n) Σ_i GC(x + ε_i)²`` of the per-sample normalised maps (docs/methods.md).

    Args:
        layer: module name. n_samples, sigma, magnitude, noise_space, mean, std: as ``guided_backprop_smoothgrad``.

    Returns:
        (N,1,H,W) maps at input resolution.
    """

    output = "map"

    def check(self) -> None:
        self.layer = check_layer(self.layer)
        super().check()

    def kernel(self) -> Kernel:
        return GradCAMKernel(self.layer)


@register("guided_gradcam", paper="Selvaraju et al. 2017, Grad-CAM (Guided Grad-CAM = GB ⊙ GC)")
class GuidedGradCAM(CompositeMethod):
    """``GB(x) ⊙ GC(x)``, the normalised upsampled CAM broadcast over channels (docs/methods.md); (N,C,H,W)."""

    output = "input"

    def __init__(self, layer: str = "auto") -> None:
        super().__init__()
        self.layer = check_layer(layer)

    def parts(self) -> dict[str, Method]:
        return {"guided_backprop": GuidedBackprop(), "gradcam": GradCAM(self.layer)}

    def combine(self, results: dict[str, torch.Tensor], inputs: torch.Tensor) -> torch.Tensor:
        return results["guided_backprop"] * results["gradcam"]


@register("guided_gradcam_smoothgrad", paper=BAM_PAPER + " (GGC-SG = GB-SG ⊙ GC-SG)")
@hyper_parameters(layer="auto", n_samples=25, sigma=0.15, magnitude=True, **NOISE)
class GuidedGradCAMSmoothGrad(CompositeMethod):
    """BAM's GGC-SG: ``GB-SG(x) ⊙ GC-SG(x)`` with the same smoothing parameters (BAM ``gbs_mask * gcs_mask``)."""

    output = "input"
    stochastic = True

    def check(self) -> None:
        self.layer = check_layer(self.layer)
        self.parts()  # both parts validate the shared smoothing settings

    def _smoothing(self) -> dict:
        return {
            "n_samples": self.n_samples,
            "sigma": self.sigma,
            "magnitude": self.magnitude,
            "noise_space": self.noise_space,
            "mean": self.mean,
            "std": self.std,
        }

    def parts(self) -> dict[str, Method]:
        return {
            "guided_backprop_smoothgrad": GuidedBackpropSmoothGrad(**self._smoothing()),
            "gradcam_smoothgrad": GradCAMSmoothGrad(self.layer, **self._smoothing()),
        }

    def combine(self, results: dict[str, torch.Tensor], inputs: torch.Tensor) -> torch.Tensor:
        return results["guided_backprop_smoothgrad"] * results["gradcam_smoothgrad"]


gradcam = functional(GradCAM)


guided_gradcam = functional(GuidedGradCAM)
