"""Training end to end on the tiny built dataset: smoke run, export, skip-if-current, resume, CLI, DDP."""

from __future__ import annotations

import math

import numpy as np
import pytest
import pytorch_lightning as pl
import torch

from bamkit.cli import main
from bamkit.data.h5 import BamFile
from bamkit.models import load_classifier, read_checkpoint
from bamkit.paths import shipped
from bamkit.testing.train import TINY_TRAIN_OVERRIDES, built_tiny_dataset
from bamkit.train.config import load_configs
from bamkit.train.runner import train_config, train_one

TINY = [
    *TINY_TRAIN_OVERRIDES,
    "data.batch_size=50",
    "optim.name=adamw",
    "optim.lr=0.01",
    "optim.backbone_lr=null",
    "optim.warmup_steps=0",
]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return built_tiny_dataset(tmp_path_factory.getbasetemp() / "bamkit_tiny")


def _cfg(name="f_o.yaml", *extra):
    return load_configs(shipped(f"train/{name}"), TINY + list(extra))[0][0]


def test_trained_checkpoint_reports_its_own_validation_accuracy(tiny, tmp_path):
    """Exported weights are the best-validation ones: re-measuring them on the val rows gives meta.val_acc."""
    (path,) = train_config(
        shipped("train/f_o.yaml"), data=tiny, out=tmp_path, overrides=TINY + ["trainer.max_epochs=2"]
    )
    model, meta = load_classifier(path)
    raw = read_checkpoint(path)["meta"]
    with BamFile(tiny) as bf:
        v = bf["obj_scene"]
        val = v.read("split") == 1
        x, y = meta.preprocess(torch.from_numpy(v.read("images")[val])), v.read("object_label")[val]
    with torch.no_grad():
        acc = float((model(x).argmax(1).numpy() == y).mean())
    assert math.isclose(acc, raw["val_acc"], abs_tol=1e-6)
    assert raw["epochs"] == 2 and raw["global_step"] == 2 * (600 // 50)
    assert (
        meta.label_field == "object_label" and meta.train_set == "obj_scene" and meta.class_names[2] == "dog"
    )
    assert (tmp_path / "f_o.yaml").is_file() and (tmp_path / "f_o" / "last.ckpt").is_file()


def test_current_checkpoints_are_skipped_and_changes_retrain(tiny, tmp_path):
    args = {"data": tiny, "out": tmp_path, "smoke": True, "overrides": TINY}
    (p,) = train_config(shipped("train/f_s.yaml"), **args)
    stamp = p.stat().st_mtime_ns
    assert train_config(shipped("train/f_s.yaml"), **args) == [p] and p.stat().st_mtime_ns == stamp
    train_config(shipped("train/f_s.yaml"), **{**args, "overrides": TINY + ["seed=1"]})
    assert p.stat().st_mtime_ns != stamp and read_checkpoint(p)["meta"]["config"]["seed"] == 1


class _Interrupt(pl.Callback):
    """Crash in the middle of the second epoch, after the first epoch's last.ckpt was written."""

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if trainer.current_epoch == 1 and batch_idx == 1:
            raise RuntimeError("simulated interruption")


def test_interrupted_run_resumes_and_matches_an_uninterrupted_one(tiny, tmp_path):
    cfg = _cfg("f_k0.5.yaml", "trainer.max_epochs=2", "data.batch_size=20")
    steps = 60 // 20
    with pytest.raises(RuntimeError, match="simulated interruption"):
        train_one(cfg, tiny, tmp_path / "a", callbacks=[_Interrupt()])
    last = torch.load(tmp_path / "a" / "f_k0.5" / "last.ckpt", weights_only=False)
    assert last["global_step"] == steps and not (tmp_path / "a" / "f_k0.5.ckpt").exists()
    resumed = read_checkpoint(train_one(cfg, tiny, tmp_path / "a"))
    assert resumed["meta"]["global_step"] == 2 * steps and resumed["meta"]["epochs"] == 2
    straight = read_checkpoint(train_one(cfg, tiny, tmp_path / "b"))
    for k, v in straight["state_dict"].items():
        torch.testing.assert_close(resumed["state_dict"][k], v, rtol=1e-5, atol=1e-6, msg=k)
    # the same bytes (nothing of the run's timing in the file): its hash keys the caches and the δ file
    assert (tmp_path / "a" / "f_k0.5.ckpt").read_bytes() == (tmp_path / "b" / "f_k0.5.ckpt").read_bytes()


def test_cli_train_with_overrides_and_sweep_smoke(tiny, tmp_path, capsys):
    rc = main(
        [
            "train",
            "train/f_empty.yaml",
            "--data",
            str(tiny),
            "--out",
            str(tmp_path),
            "--smoke",
            *[a for o in TINY for a in ("--set", o)],
        ]
    )
    assert rc == 0 and (tmp_path / "f_empty.ckpt").is_file()
    assert capsys.readouterr().out.strip().endswith("f_empty.ckpt")
    meta = read_checkpoint(tmp_path / "f_empty.ckpt")["meta"]
    assert meta["config"]["smoke"] and meta["global_step"] == 2 and meta["train_set"] == "scene_only"
    assert main(["train", "train/f_o.yaml", "--data", str(tiny), "--set", "optim.lrr=1"]) == 2
    assert "did you mean 'lr'" in capsys.readouterr().err


@pytest.mark.slow
def test_ddp_two_cpu_processes_gloo(tiny, tmp_path):
    """Two gloo processes split the batches (half the steps each) and train without error."""
    cfg = _cfg(
        "f_k1.0.yaml",
        "trainer.max_epochs=1",
        "data.batch_size=10",
        "trainer.devices=2",
        "trainer.strategy=ddp_spawn",
    )
    path = train_one(cfg, tiny, tmp_path)
    meta = read_checkpoint(path)["meta"]
    assert meta["global_step"] == 3  # 60 train rows / (10 per batch x 2 ranks)
    assert meta["epochs"] == 1
    model, m = load_classifier(path)
    assert np.isfinite(sum(float(p.sum()) for p in model.parameters()))
    # the reported val_acc (synchronised over both ranks) is the exported model's accuracy on the val rows
    with BamFile(tiny) as bf:
        v = bf["commonality/k1.0"]
        val = v.read("split") == 1
        with torch.no_grad():
            pred = model(m.preprocess(torch.from_numpy(v.read("images")[val]))).argmax(1).numpy()
        acc = float((pred == v.read("scene_label")[val]).mean())
    assert meta["val_acc"] == pytest.approx(acc, abs=1.0 / val.sum())


class _LayoutProbe(pl.Callback):
    """Records whether the convolution weights and the inputs the network sees are NHWC during training."""

    def __init__(self):
        self.weights, self.inputs = [], []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        conv = next(m for m in pl_module.net.modules() if isinstance(m, torch.nn.Conv2d))
        self.weights.append(conv.weight.is_contiguous(memory_format=torch.channels_last))
        handle = conv.register_forward_pre_hook(
            lambda mod, args: self.inputs.append(args[0].is_contiguous(memory_format=torch.channels_last))
        )
        pl_module._probe_handle = handle

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        pl_module._probe_handle.remove()


def test_channels_last_training_keeps_nhwc_and_the_same_weights(tiny, tmp_path):
    """``trainer.channels_last: true`` trains with NHWC weights and inputs (probed on every step) and gives the
    weights of the default NCHW run up to float rounding; ``auto`` is off on a machine without a GPU."""
    from bamkit.train.runner import _channels_last

    cfg = _cfg("f_k0.5.yaml", "data.batch_size=20")
    assert _channels_last(cfg) is torch.cuda.is_available()
    probe = _LayoutProbe()
    nhwc = read_checkpoint(
        train_one(
            _cfg("f_k0.5.yaml", "data.batch_size=20", "trainer.channels_last=true"),
            tiny,
            tmp_path / "nhwc",
            callbacks=[probe],
        )
    )
    assert probe.weights and all(probe.weights) and all(probe.inputs)
    assert nhwc["meta"]["config"]["trainer"]["channels_last"] is True
    nchw = read_checkpoint(
        train_one(
            _cfg("f_k0.5.yaml", "data.batch_size=20", "trainer.channels_last=false"), tiny, tmp_path / "nchw"
        )
    )
    for k, v in nchw["state_dict"].items():
        torch.testing.assert_close(nhwc["state_dict"][k], v, rtol=1e-4, atol=1e-5, msg=k)
