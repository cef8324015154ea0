"""Networks and self-describing checkpoints (bamkit.models, bamkit.train.checkpoint)."""

from __future__ import annotations

import hashlib
import pickle

import pytest
import torch
from torch import nn

from bamkit.errors import BamkitError, ConfigError, DataError
from bamkit.models import CHECKPOINT_FORMAT, build_network, load_classifier, read_checkpoint
from bamkit.nets.small_cnn import SmallCNN
from bamkit.train.checkpoint import export
from bamkit.train.config import TrainConfig, from_dict


def _calibrated(net: nn.Module, size: int = 32) -> nn.Module:
    """Give BatchNorm non-trivial running statistics so eval-mode differences would show."""
    net.train()
    with torch.no_grad():
        net(torch.randn(8, 3, size, size) * 2 + 0.5)
    return net.eval()


def _cfg(**model) -> TrainConfig:
    return from_dict(
        TrainConfig,
        {
            "name": "f_s",
            "data": {"train_set": "obj_scene", "label_field": "scene_label"},
            "model": {"arch": "small_cnn", "weights": "none", "input_size": 32, **model},
        },
    )


def test_small_cnn_relus_are_not_reused_and_layer4_exists():
    """Guided backprop/LRP need one ReLU module per activation: count calls per module in one forward."""
    net = SmallCNN(10, width=4)
    calls: dict[int, int] = {}
    hooks = [
        m.register_forward_hook(lambda m, i, o: calls.__setitem__(id(m), calls.get(id(m), 0) + 1))
        for m in net.modules()
        if isinstance(m, nn.ReLU)
    ]
    try:
        out = net(torch.randn(2, 3, 32, 32))
    finally:
        for h in hooks:
            h.remove()
    assert len(calls) == 9 and set(calls.values()) == {1}  # stem + 4 stages x 2 blocks, each used once
    assert out.shape == (2, 10)


@pytest.mark.parametrize("pool", ["max", "avg"])
def test_small_cnn_head_pools_layer4_globally(pool):
    """layer4 is the last conv stage: its per-channel spatial max (default) or mean feeds ``fc`` directly."""
    net = _calibrated(SmallCNN(10, width=4, pool=pool))
    x = torch.randn(3, 3, 32, 32)
    feats = net.layer4(net.layer3(net.layer2(net.layer1(net.stem(x)))))
    assert feats.shape == (3, 32, 2, 2)
    pooled = feats.amax((2, 3)) if pool == "max" else feats.mean((2, 3))
    torch.testing.assert_close(net.fc(pooled), net(x))


def test_small_cnn_bam_models_max_pool_and_unknown_pool_is_rejected(tmp_path):
    # build_network (bamkit train) and load_classifier must agree: every small_cnn checkpoint is max-pooled.
    assert isinstance(SmallCNN(10, width=4).pool, nn.AdaptiveAvgPool2d)  # torchvision-style class default
    net = _calibrated(build_network("small_cnn", 10, width=4))
    assert isinstance(net.pool, nn.AdaptiveMaxPool2d)
    model, _ = load_classifier(export(net, _cfg(width=4), [f"s{i}" for i in range(10)], tmp_path, "h"))
    assert isinstance(model.pool, nn.AdaptiveMaxPool2d)
    x = torch.randn(2, 3, 32, 32)
    torch.testing.assert_close(model(x), net(x), rtol=0, atol=0)
    with pytest.raises(ConfigError, match="pool must be 'max' or 'avg', got 'sum'"):
        SmallCNN(10, pool="sum")


def test_resnet18_head_and_local_weights(tmp_path):
    src = build_network("resnet18", 7, weights=None)
    torch.save(src.state_dict(), tmp_path / "w.pt")
    net = build_network("resnet18", 10, weights=str(tmp_path / "w.pt"))
    assert net.fc.out_features == 10
    torch.testing.assert_close(net.conv1.weight, src.conv1.weight, rtol=0, atol=0)
    torch.testing.assert_close(net.layer4[1].bn2.running_var, src.layer4[1].bn2.running_var, rtol=0, atol=0)


def test_build_network_rejects_bad_arguments(tmp_path):
    with pytest.raises(BamkitError, match="unknown network architecture 'resnet5'; did you mean 'resnet50'"):
        build_network("resnet5", 10)
    with pytest.raises(ConfigError, match="small_cnn has no 'imagenet' checkpoint"):
        build_network("small_cnn", 10, weights="imagenet")
    with pytest.raises(ConfigError, match="is not a file"):
        build_network("small_cnn", 10, weights=str(tmp_path / "missing.pt"))


def test_export_load_round_trip(tmp_path):
    net = _calibrated(build_network("small_cnn", 10, width=4))  # what bamkit train builds
    cfg = _cfg(width=4)
    names = [f"s{i}" for i in range(10)]
    path = export(net, cfg, names, tmp_path, data_hash="abc", extra={"val_acc": 0.5})
    assert path == tmp_path / "f_s.ckpt" and (tmp_path / "f_s.yaml").is_file()
    model, meta = load_classifier(path)
    assert not model.training
    x = torch.randn(3, 3, 32, 32)
    torch.testing.assert_close(model(x), net(x), rtol=0, atol=0)
    assert meta.name == "f_s" and meta.class_names == tuple(names) and meta.label_field == "scene_label"
    assert meta.train_set == "obj_scene" and meta.preprocess.input_size == 32 and meta.data_hash == "abc"
    assert meta.checkpoint_hash == hashlib.sha256(path.read_bytes()).hexdigest()
    assert meta.config["model"]["width"] == 4
    # The file is weights_only-safe: plain containers and tensors only.
    raw = torch.load(path, weights_only=True)
    assert raw["format"] == CHECKPOINT_FORMAT and raw["meta"]["val_acc"] == 0.5


def _one_line(err: pytest.ExceptionInfo) -> str:
    msg = str(err.value)
    assert "\n" not in msg
    return msg


def test_load_classifier_rejects_bad_files(tmp_path):
    with pytest.raises(DataError, match="does not exist") as e:
        load_classifier(tmp_path / "nope.ckpt")
    _one_line(e)
    (tmp_path / "junk.ckpt").write_bytes(b"\x00not a checkpoint" * 10)
    with pytest.raises(DataError, match="cannot read checkpoint") as e:
        load_classifier(tmp_path / "junk.ckpt")
    _one_line(e)
    torch.save({"state_dict": {}}, tmp_path / "other.ckpt")
    with pytest.raises(DataError, match="not a bamkit classifier checkpoint"):
        load_classifier(tmp_path / "other.ckpt")
    torch.save({"pytorch-lightning_version": "2", "state_dict": {}}, tmp_path / "pl.ckpt")
    with pytest.raises(DataError, match="Lightning training checkpoint"):
        load_classifier(tmp_path / "pl.ckpt")
    # Arbitrary pickled objects are refused by weights_only loading, not executed.
    with open(tmp_path / "evil.ckpt", "wb") as f:
        pickle.dump({"format": CHECKPOINT_FORMAT, "obj": ConfigError("x")}, f, protocol=2)
    with pytest.raises(DataError, match="not a safe torch file|cannot read") as e:
        read_checkpoint(tmp_path / "evil.ckpt")
    _one_line(e)


def test_load_classifier_rejects_truncated_and_mismatched(tmp_path):
    net = SmallCNN(10, width=4)
    path = export(net, _cfg(width=4), [f"s{i}" for i in range(10)], tmp_path, data_hash="h")
    data = path.read_bytes()
    (tmp_path / "cut.ckpt").write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError) as e:
        load_classifier(tmp_path / "cut.ckpt")
    _one_line(e)
    # Weights that do not fit the architecture the metadata names.
    raw = torch.load(path, weights_only=True)
    raw["meta"]["arch_kwargs"]["width"] = 8
    torch.save(raw, tmp_path / "wide.ckpt")
    with pytest.raises(DataError, match="inconsistent") as e:
        load_classifier(tmp_path / "wide.ckpt")
    _one_line(e)


@pytest.mark.parametrize("pool", ["avg", "max"])
def test_checkpoint_remembers_what_the_state_dict_cannot(tmp_path, pool):
    """Max and average pooling have no parameters: the checkpoint must record which one was trained,
    or a reloaded model silently computes something else (same weights, other outputs)."""
    net = _calibrated(build_network("small_cnn", 10, width=4, pool=pool))
    path = export(net, _cfg(width=4), [f"s{i}" for i in range(10)], tmp_path, data_hash="abc")
    model, _ = load_classifier(path)
    x = torch.randn(3, 3, 32, 32)
    torch.testing.assert_close(model(x), net(x), rtol=0, atol=0)
    other = build_network("small_cnn", 10, width=4, pool="max" if pool == "avg" else "avg")
    other.load_state_dict(net.state_dict())
    other.eval()
    assert not torch.allclose(other(x), net(x))  # the test would catch a wrong pooling


@pytest.mark.parametrize("content", [b"hi\n", b"\x80\x02}q\x00.", bytes(range(256)) * 4])
def test_arbitrary_bytes_are_a_one_line_error(tmp_path, content):
    """Whatever the unpickler raises on garbage (KeyError, IndexError, ...), the user sees one DataError line."""
    bad = tmp_path / "bad.ckpt"
    bad.write_bytes(content)
    with pytest.raises(DataError) as e:
        load_classifier(bad)
    _one_line(e)


def test_a_network_of_ones_own_by_module_path(tmp_path, monkeypatch):
    """``model.arch: package.module:NETWORK`` builds a network defined outside bamkit, with its preprocessing,
    and a name that is neither registered nor importable is one line naming it."""
    from bamkit.models import preprocess_for
    from bamkit.train.config import ModelConfig

    (tmp_path / "my_nets.py").write_text(
        "from torch import nn\nfrom bamkit.nets import Network\nfrom bamkit.preprocess import Preprocess\n"
        "def build(num_classes, weights, **_):\n"
        "    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, num_classes))\n"
        "TINY = Network('tiny', build, (), lambda s: Preprocess(s, (0.5,) * 3, (0.25,) * 3), 'a test network')\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    assert ModelConfig(arch="my_nets:TINY").arch == "my_nets:TINY"
    net = build_network("my_nets:TINY", 7)
    assert net(torch.zeros(2, 3, 16, 16)).shape == (2, 7)
    assert preprocess_for("my_nets:TINY", 16).std == (0.25,) * 3
    with pytest.raises(
        ConfigError, match="model.arch 'no_such_module_xyz:NET': cannot import 'no_such_module_xyz'"
    ):
        build_network("no_such_module_xyz:NET", 7)
    with pytest.raises(ConfigError, match="model.arch: unknown network architecture 'resnet5'"):
        ModelConfig(arch="resnet5")
