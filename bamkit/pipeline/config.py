"""The main job's config: which sources, recipe, training sweep, δ options and evaluation suite to chain.

Relative paths in a run config resolve against the run config file's own folder — nothing else — so a config
means the same wherever it is run from; the shipped configs refer to each other as ``../train/demo.yaml``.
A path that does not exist is reported with the key that holds it and the path as written, every missing one at
once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from bamkit import config as cfg
from bamkit.errors import ConfigError
from bamkit.paths import shipped


@dataclass(frozen=True)
class SourcesConfig:
    """Synthetic sources (the embedded default) or the user's real COCO and MiniPlaces.

    Attributes:
        seed: seed of the synthetic sources; ``null`` = the run's ``seed``.
    """

    synthetic: bool = True
    scale: Literal["tiny", "demo"] = "demo"
    seed: int | None = None
    coco_annotations: str | None = None
    coco_images: str | None = None
    miniplaces: str | None = None

    def __post_init__(self) -> None:
        cfg.check_choices(self, "sources:")
        if not self.synthetic and not (self.coco_annotations and self.coco_images and self.miniplaces):
            raise ConfigError(
                "sources: with synthetic: false, set coco_annotations, coco_images and miniplaces "
                "to your COCO instances JSON, COCO image folder and MiniPlaces root"
            )
        if self.seed is not None and self.seed < 0:
            raise ConfigError(f"sources.seed must be >= 0, got {self.seed}")


@dataclass(frozen=True)
class RunConfig:
    """Every stage of the main job (``bamkit run``).

    Attributes:
        recipe, train, suite: the stage configs, relative to this file.
        workers: processes of the dataset build (the bytes do not depend on it).
        verify_strict: a failed verification check stops the run.
        verify_max_pairs: Figure 2 (top) on a seeded sample of this many validation pairs (``null``: all).
        delta_model: the model the δ patches are crafted for (BAM: the scene-only model).
        delta: :class:`~bamkit.delta.options.DeltaOptions` fields.
        seed: the run's seed: it replaces the seed of the recipe, of every model's training, of the δ patches and
            of the evaluation suite (and of the synthetic sources unless ``sources.seed`` is set), so
            ``bamkit run --seed 1`` is a whole independent repetition; ``null`` keeps each config's own.
        smoke: shrink training and evaluation to a wiring check (tests).
    """

    name: str = "demo"
    sources: SourcesConfig = field(default_factory=SourcesConfig)
    recipe: str = "../data_recipes/demo.yaml"
    workers: int = 2
    train: str = "../train/demo.yaml"
    verify_strict: bool = False
    verify_max_pairs: int | None = None
    delta_model: str = "f_empty"
    delta: dict[str, Any] = field(default_factory=dict)
    suite: str = "../evaluate/demo.yaml"
    seed: int | None = 0
    smoke: bool = False

    def __post_init__(self) -> None:
        if self.workers < 1:
            raise ConfigError(f"workers must be >= 1, got {self.workers}")
        if self.seed is not None and self.seed < 0:
            raise ConfigError(f"seed must be >= 0, got {self.seed}; any non-negative integer works")

    @property
    def sources_seed(self) -> int:
        return self.sources.seed if self.sources.seed is not None else (self.seed or 0)


@dataclass(frozen=True)
class RunPaths:
    """The files a run config names, resolved against the config's folder."""

    recipe: Path
    train: Path
    suite: Path
    coco_annotations: Path | None = None
    coco_images: Path | None = None
    miniplaces: Path | None = None


def load_run_config(path: str | Path | None, overrides: Sequence[str] = ()) -> tuple[RunConfig, Path]:
    """The run config at ``path`` (or the embedded demo) with ``--set KEY=VALUE`` overrides, and the file it
    came from."""
    p = shipped("pipelines/demo.yaml") if path is None else shipped(path)
    rc = cfg.overridden(cfg.load_yaml(p), overrides, lambda d, w: cfg.from_dict(RunConfig, d, w), str(p))
    return rc, p.resolve()


def resolve_paths(rc: RunConfig, config_file: Path) -> RunPaths:
    """Every path of ``rc`` against ``config_file``'s folder; all missing ones in one ConfigError."""
    base = config_file.parent
    keys = {"recipe": rc.recipe, "train": rc.train, "suite": rc.suite}
    if not rc.sources.synthetic:
        keys.update(
            {
                f"sources.{k}": getattr(rc.sources, k)
                for k in ("coco_annotations", "coco_images", "miniplaces")
            }
        )
    out: dict[str, Path] = {}
    missing = []
    for key, written in keys.items():
        p = Path(written).expanduser()
        p = p if p.is_absolute() else (base / p)
        if not p.exists():
            missing.append(f"{key}: {written!r} (looked for {p})")
        out[key.removeprefix("sources.")] = p.resolve()
    if missing:
        raise ConfigError(
            f"{config_file}: {len(missing)} path(s) do not exist — "
            + "; ".join(missing)
            + ". Relative paths are relative to the run config's folder; fix them in the config"
        )
    return RunPaths(**out)


def with_overrides(rc: RunConfig, **kw: Any) -> RunConfig:
    return replace(rc, **{k: v for k, v in kw.items() if v is not None})
