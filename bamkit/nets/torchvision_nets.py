"""torchvision's ResNets (BAM fine-tunes an ImageNet ResNet-50, App. D) with their ImageNet weights, which
torchvision downloads on first use (or finds in ``$TORCH_HOME``)."""

from __future__ import annotations

from pathlib import Path

from torch import nn

from bamkit.errors import ConfigError


def build_resnet(arch: str, num_classes: int, weights: str | None) -> nn.Module:
    """torchvision's ``arch`` with ``weights`` (``imagenet``: IMAGENET1K_V1, the closest to BAM's TF checkpoint;
    ``imagenet_v2``) and a fresh ``num_classes``-way ``fc``."""
    import torchvision

    ctor = getattr(torchvision.models, arch)
    tv_weights = None
    if weights in ("imagenet", "imagenet_v2"):
        enum = torchvision.models.get_model_weights(arch)
        tv_weights = (
            enum.IMAGENET1K_V1 if weights == "imagenet" else getattr(enum, "IMAGENET1K_V2", enum.DEFAULT)
        )
    net = _torchvision_net(ctor, arch, weights, tv_weights)
    net.fc = nn.Linear(net.fc.in_features, num_classes)
    return net


def _torchvision_net(ctor, arch: str, w: str | None, tv_weights) -> nn.Module:
    """``ctor(weights=...)``, with a missing, undownloadable or damaged ImageNet file reported in one line that
    names where torch looks for it and the alternatives."""
    try:
        return ctor(weights=tv_weights)
    except (OSError, RuntimeError, EOFError) as e:  # URLError is an OSError; a torn download fails to load
        if tv_weights is None:
            raise
        import torch.hub

        url = tv_weights.url
        path = Path(torch.hub.get_dir()) / "checkpoints" / url.rsplit("/", 1)[-1]
        raise ConfigError(
            f"model.weights={w}: torchvision's ImageNet weights for {arch} are not usable at {path} "
            f"({type(e).__name__}: {str(e).splitlines()[0] if str(e) else 'no detail'}); on a machine without "
            f"internet copy {url} there ($TORCH_HOME sets the folder), or set model.weights to a local "
            "state-dict file, or to none to train from scratch"
        ) from e
