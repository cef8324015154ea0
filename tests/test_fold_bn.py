"""BatchNorm folded into the convolution before it (``ExecOptions.fold_bn``, bamkit.attribution.fold): the fused
weights against the closed form, the same function and maps (up to rounding) on every shipped architecture, a
refusal where a convolution's output is also used raw, and a cache that follows the weights."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import bamkit.attribution as A
from bamkit.attribution.base import ExecOptions
from bamkit.attribution.engine import fidelity
from bamkit.attribution.fold import clear_cache, conv_bn_pairs, fold_batchnorm, folded
from bamkit.errors import ConfigError
from bamkit.nets import network
from bamkit.testing.models import images, tiny_resnet


def _with_statistics(model: nn.Module, seed: int = 0) -> nn.Module:
    """Non-trivial running statistics and affine parameters in every BatchNorm (a fresh one is the identity)."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            c = m.num_features
            m.running_mean.copy_(0.3 * torch.randn(c, generator=g))
            m.running_var.copy_(0.5 + torch.rand(c, generator=g))
            m.weight.data.copy_(0.5 + torch.rand(c, generator=g))
            m.bias.data.copy_(0.2 * torch.randn(c, generator=g))
    return model.eval()


def test_the_fused_convolution_is_the_closed_form():
    """w' = w γ / √(σ² + ε), b' = β − μ γ / √(σ² + ε) (Ioffe & Szegedy 2015), computed here by hand."""
    torch.manual_seed(0)
    net = _with_statistics(
        nn.Sequential(nn.Conv2d(3, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4), nn.ReLU())
    )
    x = images(2, size=8)
    f = fold_batchnorm(net, x)
    conv, bn = net[0], net[1]
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    torch.testing.assert_close(f[0].weight, conv.weight * scale[:, None, None, None])
    torch.testing.assert_close(f[0].bias, bn.bias - bn.running_mean * scale)
    assert isinstance(f[1], nn.Identity) and isinstance(net[1], nn.BatchNorm2d)  # the original is untouched
    torch.testing.assert_close(f(x), net(x), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "build, size, n_bn",
    [
        (lambda: tiny_resnet(width=8, block="bottleneck"), 32, 17),  # ResNet-50's block: conv1/bn1 attributes
        # Sequential blocks
        (lambda: network("efficientnet_lite0").build(num_classes=10, weights=None), 64, 49),
        (lambda: network("small_cnn").build(num_classes=10, weights=None), 32, None),
    ],
)
def test_every_batchnorm_is_folded_and_the_maps_keep_their_ranking(build, size, n_bn):
    torch.manual_seed(0)
    model = _with_statistics(build())
    x = images(4, size=size)
    pairs = conv_bn_pairs(model, x[:2])
    n_bn = n_bn or sum(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    assert len(pairs) == n_bn == sum(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    f = fold_batchnorm(model, x[:2])
    assert not any(isinstance(m, nn.BatchNorm2d) for m in f.modules())
    # every name kept: hooks by name still find their module
    assert [n for n, _ in f.named_modules()] == [n for n, _ in model.named_modules()]
    with torch.no_grad():
        torch.testing.assert_close(f(x), model(x), rtol=1e-4, atol=1e-5)
    methods = {k: A.make(k) for k in ("vanilla_gradient", "guided_backprop", "gradcam")}
    rho = fidelity(model, x, 0, methods, ExecOptions(fold_bn=True))
    assert all(v > 0.999 for v in rho.values()), rho
    # the caller's model comes back as it went in: its BatchNorms, its gradient flags
    assert sum(isinstance(m, nn.BatchNorm2d) for m in model.modules()) == n_bn
    assert all(p.requires_grad for p in model.parameters())


class _RawUse(nn.Module):
    """A convolution whose output feeds its BatchNorm and, raw, a second branch: folding would change it."""

    def __init__(self) -> None:
        super().__init__()
        self.conv, self.bn, self.fc = (
            nn.Conv2d(3, 4, 3, padding=1, bias=False),
            nn.BatchNorm2d(4),
            nn.Linear(4, 2),
        )

    def forward(self, x):
        z = self.conv(x)
        return self.fc((self.bn(z) + z).mean((2, 3)))


def test_a_convolution_also_used_raw_is_refused_not_folded_silently():
    model = _with_statistics(_RawUse())
    with pytest.raises(ConfigError, match="execution.fold_bn: false"):
        fold_batchnorm(model, images(2, size=8))


def test_the_folded_copy_is_cached_until_the_weights_change():
    clear_cache()
    model, x = _with_statistics(tiny_resnet(width=4)), images(2)
    first = folded(model, x)
    assert folded(model, x) is first
    with torch.no_grad():
        model.fc.bias.add_(1.0)  # an optimiser step: in place
    second = folded(model, x)
    assert second is not first
    torch.testing.assert_close(second(x), model(x), rtol=1e-4, atol=1e-5)


def test_attribute_with_fold_bn_matches_the_unfolded_maps():
    """The public API: the same maps up to rounding, GradCAM's hook on its layer included."""
    model, x = _with_statistics(tiny_resnet(width=8)), images(3)
    for name in ("integrated_gradients", "gradcam", "guided_backprop"):
        want = A.attribute(model, x, 1, name)
        got = A.attribute(model, x, 1, name, opts={"fold_bn": True})
        torch.testing.assert_close(got, want, rtol=1e-3, atol=1e-4 * float(want.abs().max()))
