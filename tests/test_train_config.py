"""Typed training configs: shipped files, base merging, dotted overrides, sweeps, smoke shrink."""

from __future__ import annotations

import pytest

from bamkit.config import parse_override
from bamkit.errors import ConfigError
from bamkit.paths import shipped
from bamkit.train.checkpoint import config_hash
from bamkit.train.config import load_configs

K = ["0.1", "0.2", "0.3", "0.4", "0.5", "0.6", "0.7", "0.8", "0.9", "1.0"]


def test_the_shipped_sweep_names_every_bam_model_with_its_set_and_labels():
    cfgs = {c.name: c for c, _ in load_configs(shipped("train/all.yaml"))}
    assert list(cfgs) == ["f_o", "f_s", "f_empty", *[f"f_k{k}" for k in K]]
    assert (cfgs["f_o"].data.train_set, cfgs["f_o"].data.label_field) == ("obj_scene", "object_label")
    assert (cfgs["f_s"].data.train_set, cfgs["f_s"].data.label_field) == ("obj_scene", "scene_label")
    assert (cfgs["f_empty"].data.train_set, cfgs["f_empty"].data.label_field) == ("scene_only", "scene_label")
    for k in K:
        assert cfgs[f"f_k{k}"].data.train_set == f"commonality/k{k}"
    # docs/dataset.md#models defaults come from the shared base file.
    o = cfgs["f_o"]
    assert (o.model.arch, o.model.weights, o.model.input_size) == ("resnet50", "imagenet", 224)
    assert (o.optim.lr, o.optim.backbone_lr, o.optim.momentum, o.data.hflip) == (0.01, 0.001, 0.9, True)


def test_demo_sweep_applies_set_then_match_then_command_line():
    cfgs = {c.name: c for c, _ in load_configs(shipped("train/demo.yaml"), ["trainer.max_epochs=9"])}
    assert cfgs["f_o"].model.arch == "efficientnet_lite0" and cfgs["f_o"].model.input_size == 80
    assert cfgs["f_k0.3"].data.batch_size == 32 and cfgs["f_o"].data.batch_size == 64
    assert {c.trainer.max_epochs for c in cfgs.values()} == {9}  # the command line wins


def test_overrides_are_typed_and_unknown_keys_suggest_the_fix():
    assert parse_override("trainer.devices=4") == ("trainer.devices", 4)
    assert parse_override("optim.backbone_lr=null") == ("optim.backbone_lr", None)
    assert parse_override("--trainer.strategy=ddp") == ("trainer.strategy", "ddp")
    assert parse_override("optim.lr=1e-4") == ("optim.lr", 1e-4)
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        parse_override("trainer.devices")
    with pytest.raises(ConfigError, match="did you mean 'max_epochs'"):
        load_configs(shipped("train/f_o.yaml"), ["trainer.max_epoch=3"])
    with pytest.raises(ConfigError, match="expected an integer"):
        load_configs(shipped("train/f_o.yaml"), ["trainer.max_epochs=three"])
    with pytest.raises(ConfigError, match="not one of"):
        load_configs(shipped("train/f_o.yaml"), ["data.label_field=obj"])
    with pytest.raises(ConfigError, match="val_max_images must be an integer >= 1 or null"):
        load_configs(shipped("train/f_o.yaml"), ["data.val_max_images=0"])


def test_smoke_shrinks_the_run_and_changes_the_hash(tmp_path):
    ((cfg, _),) = load_configs(shipped("train/f_s.yaml"), ["smoke=true"])
    run = cfg.smoke_applied()
    assert (run.trainer.max_epochs, run.trainer.limit_train_batches, run.data.batch_size) == (1, 2, 16)
    ((full, _),) = load_configs(shipped("train/f_s.yaml"))
    assert config_hash(cfg) != config_hash(full)
    # Where outputs go and how many loader processes read do not change the weights: same hash.
    ((moved, _),) = load_configs(shipped("train/f_s.yaml"), ["out=/elsewhere", "data.num_workers=1"])
    assert config_hash(moved) == config_hash(full)


def test_base_cycles_and_duplicate_sweep_names_are_errors(tmp_path):
    (tmp_path / "a.yaml").write_text("base: b.yaml\nname: a\n")
    (tmp_path / "b.yaml").write_text("base: a.yaml\n")
    with pytest.raises(ConfigError, match="cycle"):
        load_configs(tmp_path / "a.yaml")
    (tmp_path / "m.yaml").write_text("name: m\n")
    (tmp_path / "s.yaml").write_text("models: [m.yaml, m.yaml]\n")
    with pytest.raises(ConfigError, match="appear twice"):
        load_configs(tmp_path / "s.yaml")
