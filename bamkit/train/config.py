"""Typed training configs: one frozen dataclass per section; a YAML file is one instance.

bamkit uses its own typed loader (:mod:`bamkit.config`) instead of ``LightningCLI`` (jsonargparse is not a
dependency); the effect is the same: every option has a type and a default, unknown keys are errors, any key can
be overridden from the command line with a dotted path (``--set trainer.max_epochs=3``), and the resolved
config is saved beside the checkpoint.

A training file may name a ``base:`` file (relative to itself) whose mapping it deep-merges over, so the thirteen
BAM models share one definition. A *sweep* file instead lists ``models:`` (training files) and ``set:``
overrides applied to each of them.
"""

from __future__ import annotations

import copy
import fnmatch
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from bamkit.classes import LabelField
from bamkit.config import apply_overrides, from_dict, load_yaml, overridden, to_dict
from bamkit.errors import ConfigError
from bamkit.nets import NETWORKS


@dataclass(frozen=True)
class DataConfig:
    """Which HDF5 set and labels to train on, and how to load it.

    Attributes:
        path: the dataset file (``bamkit build``); ``--data`` overrides it.
        train_set: set name in the file (``obj_scene``, ``scene_only``, ``commonality/k0.3`` …).
        label_field: ``object_label`` (f_o) or ``scene_label`` (every other BAM model).
        batch_size: images per optimiser step (per device).
        num_workers: loader processes per device (0 = read in the training process).
        hflip: random horizontal flip (the only augmentation: no additive noise, docs/dataset.md#models).
        shuffle_blocks: how many HDF5 chunks (in random order) are mixed into one shuffle window; 0 (default) =
            as many as ``cache_mb`` holds, i.e. a full shuffle when the set fits. Small windows give batches
            with few classes (sets are stored sorted by class) and train badly.
        cache_mb: per-process cache of decoded chunks; a set that fits is decoded once per process.
        val_max_images: validate on a seeded sample of this many validation rows (the training seed; the same
            sample every epoch); ``None`` (default) = all of them. Sets are stored sorted by class, so a sample,
            not ``trainer.limit_val_batches`` (the first batches), gives an unbiased ``val_acc`` when the full
            validation pass costs too much.
    """

    path: str | None = None
    train_set: str = "obj_scene"
    label_field: LabelField = "scene_label"
    batch_size: int = 64
    num_workers: int = 4
    hflip: bool = True
    shuffle_blocks: int = 0
    cache_mb: int = 1024
    val_max_images: int | None = None

    def __post_init__(self) -> None:
        if self.val_max_images is not None and self.val_max_images < 1:  # its type: checked by the loader
            raise ConfigError(
                f"data.val_max_images must be an integer >= 1 or null (all validation rows), got {self.val_max_images!r}"
            )
        if self.batch_size < 1:
            raise ConfigError(f"data.batch_size must be >= 1, got {self.batch_size}")
        if self.num_workers < 0:
            raise ConfigError(f"data.num_workers must be >= 0, got {self.num_workers}")
        if self.shuffle_blocks < 0:
            raise ConfigError(
                f"data.shuffle_blocks must be >= 0 (0 = shuffle all rows), got {self.shuffle_blocks}"
            )


@dataclass(frozen=True)
class ModelConfig:
    """The network (BAM App. D: an ImageNet ResNet-50, every layer fine-tuned).

    Attributes:
        arch: a registered network (:data:`bamkit.nets.NETWORKS`): ``resnet50``, ``resnet18``,
            ``efficientnet_lite0``, ``small_cnn``; or your own as ``package.module:NETWORK``.
        weights: a named checkpoint of the network (``imagenet``, ``imagenet_v2``), ``none``, or a local
            state-dict path.
        input_size: side of the square model input (224 for ResNet-50; stored 128 px images are resized).
        width: ``small_cnn`` first-stage channels.
    """

    arch: str = "resnet50"
    weights: str = "imagenet"
    input_size: int = 224
    width: int = 16

    def __post_init__(self) -> None:
        if (
            self.arch not in NETWORKS and ":" not in self.arch
        ):  # package.module:NETWORK is imported when built
            raise ConfigError(
                f"model.arch: {NETWORKS.unknown_message(self.arch)}; known: {', '.join(NETWORKS.names())}"
            )
        if self.input_size < 16:
            raise ConfigError(f"model.input_size must be >= 16, got {self.input_size}")


@dataclass(frozen=True)
class OptimConfig:
    """Optimiser and schedule (docs/dataset.md#models defaults: SGD momentum 0.9, lr 0.01 head / 0.001 backbone, cosine).

    Attributes:
        name: ``sgd`` | ``adamw``.
        lr: learning rate of the new head.
        backbone_lr: learning rate of every other layer; ``null`` = ``lr``.
        momentum: SGD momentum (ignored by AdamW).
        weight_decay: L2 / decoupled weight decay.
        schedule: ``cosine`` (per step, to zero at the end) | ``none``.
        warmup_steps: linear warm-up steps before the schedule.
        label_smoothing: cross-entropy label smoothing ε (Szegedy et al. 2016; 0 = plain cross-entropy).
    """

    name: Literal["sgd", "adamw"] = "sgd"
    lr: float = 0.01
    backbone_lr: float | None = 0.001
    momentum: float = 0.9
    weight_decay: float = 1e-4
    schedule: Literal["cosine", "none"] = "cosine"
    warmup_steps: int = 0
    label_smoothing: float = 0.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.label_smoothing < 1.0:
            raise ConfigError(f"optim.label_smoothing must be in [0, 1), got {self.label_smoothing}")
        if self.lr <= 0 or (self.backbone_lr is not None and self.backbone_lr <= 0):
            raise ConfigError(
                f"optim.lr and optim.backbone_lr must be > 0, got {self.lr}, {self.backbone_lr}"
            )


@dataclass(frozen=True)
class TrainerConfig:
    """Lightning ``Trainer`` options; multi-GPU/multi-node is ``devices``/``num_nodes``/``strategy``.

    Attributes:
        max_epochs: epochs to train.
        accelerator: ``auto`` | ``cpu`` | ``gpu`` | ….
        devices: ``auto``, a count, or a list of ids as a string.
        num_nodes: machines.
        strategy: ``auto`` | ``ddp`` | ``ddp_spawn`` | ….
        precision: ``auto`` (bf16-mixed on a GPU, 32-true elsewhere) or any Lightning precision string.
        channels_last: NHWC weights and inputs; ``auto`` = on a GPU (tensor cores take NHWC convolutions
            without transposes), off on the CPU. The weights are the same numbers either way; only the layout
            of the convolutions' memory changes.
        limit_train_batches, limit_val_batches: fraction (float) or count (int) of batches per epoch.
        log_every_n_steps: CSV log interval.
        gradient_clip_val: optional gradient-norm clip.
        deterministic: ``torch.use_deterministic_algorithms`` (slower on GPU).
    """

    max_epochs: int = 10
    accelerator: str = "auto"
    devices: int | str = "auto"
    num_nodes: int = 1
    strategy: str = "auto"
    precision: str = "auto"
    channels_last: bool | Literal["auto"] = "auto"
    limit_train_batches: int | float = 1.0
    limit_val_batches: int | float = 1.0
    log_every_n_steps: int = 50
    gradient_clip_val: float | None = None
    deterministic: bool = False

    def __post_init__(self) -> None:
        if self.max_epochs < 1:
            raise ConfigError(f"trainer.max_epochs must be >= 1, got {self.max_epochs}")


@dataclass(frozen=True)
class SmokeConfig:
    """What ``smoke: true`` (or ``--smoke``) shrinks a run to: seconds on a CPU, for wiring checks."""

    max_epochs: int = 1
    limit_train_batches: int = 2
    limit_val_batches: int = 2
    batch_size: int = 16
    num_workers: int = 0


@dataclass(frozen=True)
class TrainConfig:
    """One BAM model (docs/dataset.md#models).

    Attributes:
        name: model name and checkpoint file stem (``f_o``, ``f_s``, ``f_empty``, ``f_k0.1`` …).
        seed: seeds weights, shuffling and augmentation.
        out: folder for ``<name>.ckpt``; ``--out`` overrides it.
        smoke: shrink the run as :class:`SmokeConfig` says.
    """

    name: str
    seed: int = 0
    out: str = "models"
    smoke: bool = False
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    smoke_settings: SmokeConfig = field(default_factory=SmokeConfig)

    def __post_init__(self) -> None:
        if not self.name or "/" in self.name or self.name.startswith("."):
            raise ConfigError(f"name must be a plain file stem such as 'f_o', got {self.name!r}")
        if not 0 <= self.seed < 2**32:
            raise ConfigError(f"seed must be an integer in [0, 2**32), got {self.seed}")

    def smoke_applied(self) -> TrainConfig:
        """The config actually run: the smoke shrink applied when ``smoke`` is on."""
        if not self.smoke:
            return self
        s = self.smoke_settings
        return replace(
            self,
            data=replace(
                self.data, batch_size=min(self.data.batch_size, s.batch_size), num_workers=s.num_workers
            ),
            trainer=replace(
                self.trainer,
                max_epochs=s.max_epochs,
                limit_train_batches=s.limit_train_batches,
                limit_val_batches=s.limit_val_batches,
                log_every_n_steps=1,
            ),
        )

    def to_dict(self) -> dict[str, Any]:
        return to_dict(self)


@dataclass(frozen=True)
class SweepConfig:
    """Several models trained one after another (``train/all.yaml``).

    Attributes:
        models: training config files, relative to the sweep file.
        set: dotted overrides applied to every model (``{model.arch: small_cnn}``).
        match: more overrides for the models whose name matches a glob (``{"f_k*": {trainer.max_epochs: 12}}``),
            applied after ``set`` in file order.
    """

    models: tuple[str, ...]
    set: dict[str, Any] = field(default_factory=dict)
    match: dict[str, dict[str, Any]] = field(default_factory=dict)


# ----------------------------------------------------------------------------------------------------------
# YAML loading with base files and dotted overrides


def _deep_merge(base: dict, top: dict) -> dict:
    out = copy.deepcopy(base)
    for k, v in top.items():
        out[k] = (
            _deep_merge(out[k], v)
            if isinstance(v, dict) and isinstance(out.get(k), dict)
            else copy.deepcopy(v)
        )
    return out


def load_raw(path: str | Path, _seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    """A training YAML as a mapping, with its ``base:`` chain merged in (the file's own keys win)."""
    p = Path(path).resolve()
    if p in _seen:
        raise ConfigError(f"{str(path)!r}: 'base' files form a cycle ({' -> '.join(map(str, _seen + (p,)))})")
    data = load_yaml(p)
    base = data.pop("base", None)
    if base is None:
        return data
    if not isinstance(base, str):
        raise ConfigError(f"{str(path)!r}: 'base' must be a file path, got {base!r}")
    return _deep_merge(load_raw(p.parent / base, _seen + (p,)), data)


def is_sweep(data: dict[str, Any]) -> bool:
    return "models" in data


def build_train_config(data: dict[str, Any], where: str) -> TrainConfig:
    """Validate a merged mapping as :class:`TrainConfig` (unknown keys name the closest known one)."""
    return from_dict(TrainConfig, data, where=where)


def _build_with_overrides(
    data: dict[str, Any], where: str, overrides: list[str] | tuple[str, ...]
) -> TrainConfig:
    """The config of ``data`` with the command line's ``--set`` values applied (:func:`bamkit.config.overridden`)."""
    return overridden(data, overrides, lambda d, w: build_train_config(d, w), where)


def load_configs(
    path: str | Path, overrides: list[str] | tuple[str, ...] = ()
) -> list[tuple[TrainConfig, Path]]:
    """Every training config a file names: itself, or each member of a sweep.

    Returns:
        ``[(config, source_file), …]`` with ``overrides`` (``KEY=VALUE`` strings) applied last.
    """
    p = Path(path)
    data = load_raw(p)
    if not is_sweep(data):
        return [(_build_with_overrides(data, str(p), overrides), p)]
    sweep = from_dict(SweepConfig, data, where=str(p))
    if not sweep.models:
        raise ConfigError(f"{str(p)!r}: 'models' is empty; list the training configs to run")
    out = []
    for member in sweep.models:
        mp = p.parent / member
        merged = apply_overrides(load_raw(mp), sweep.set)
        for pattern, extra in sweep.match.items():
            if fnmatch.fnmatchcase(str(merged.get("name", "")), pattern):
                merged = apply_overrides(merged, extra)
        out.append((_build_with_overrides(merged, f"{mp} (from {p.name})", overrides), mp))
    names = [c.name for c, _ in out]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ConfigError(f"{str(p)!r}: model names {dup} appear twice; give each member its own 'name'")
    return out
