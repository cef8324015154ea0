"""The main job's config: which sources, recipe, training sweep, δ options and evaluation suite to chain.

Paths of shipped configs (``data_recipes/demo.yaml`` …) resolve against bamkit's config root
(:mod:`bamkit.paths`); other relative paths resolve against the run config file's folder.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from bamkit import config as cfg
from bamkit.errors import ConfigError
from bamkit.paths import shipped


@dataclass(frozen=True)
class SourcesConfig:
    """Synthetic sources (the embedded default) or the user's real COCO and MiniPlaces."""

    synthetic: bool = True
    scale: str = "demo"
    seed: int = 0
    coco_annotations: str | None = None
    coco_images: str | None = None
    miniplaces: str | None = None

    def __post_init__(self) -> None:
        if self.synthetic and self.scale not in ("tiny", "demo"):
            raise ConfigError(f"sources.scale: {self.scale!r} is not one of 'tiny', 'demo'")
        if not self.synthetic and not (self.coco_annotations and self.coco_images and self.miniplaces):
            raise ConfigError(
                "sources: with synthetic: false, set coco_annotations, coco_images and miniplaces "
                "to your COCO instances JSON, COCO image folder and MiniPlaces root"
            )


@dataclass(frozen=True)
class RunConfig:
    """Every stage of the main job (`bamkit run`)."""

    name: str = "demo"
    sources: SourcesConfig = field(default_factory=SourcesConfig)
    recipe: str = "data_recipes/demo.yaml"
    workers: int = 2
    train: str = "train/demo.yaml"
    verify_strict: bool = False
    delta_model: str = "f_empty"
    delta: dict[str, Any] = field(default_factory=dict)
    suite: str = "evaluate/demo.yaml"
    seed: int = 0
    smoke: bool = False  # shrink training and evaluation to a wiring check (tests)

    def __post_init__(self) -> None:
        if self.workers < 1:
            raise ConfigError(f"workers must be >= 1, got {self.workers}")


def load_run_config(path: str | Path | None) -> tuple[RunConfig, Path]:
    """The run config at ``path`` (or the embedded demo) and the folder its relative paths resolve against."""
    if path is None:
        path = shipped("pipelines/demo.yaml")
    p = Path(path)
    rc = cfg.load(RunConfig, p)
    return rc, p.resolve().parent


def resolve(path: str, base: Path) -> Path:
    """A config path: absolute, relative to the run config, or a shipped config."""
    p = Path(path)
    if p.is_absolute():
        return p
    if (base / p).exists():
        return (base / p).resolve()
    return shipped(p).resolve()


def with_overrides(rc: RunConfig, **kw: Any) -> RunConfig:
    return replace(rc, **{k: v for k, v in kw.items() if v is not None})
