"""Dataset recipes: frozen dataclasses loaded from YAML (``data_recipes/*.yaml``), validated on load.

A recipe says which sources, classes, sizes, seed and sets a build uses (BAM §3.1-3.2; docs/dataset.md). Unknown keys
and impossible values are :class:`~bamkit.errors.ConfigError` naming the key. Paths in a recipe are relative
to the recipe file unless absolute; ``sources.coco_annotations``, ``sources.coco_images`` and
``sources.miniplaces`` are relative to ``sources.root`` when it is given (so a caller can point one root at a
generated source tree), else to the recipe file. Keyword overrides (CLI flags) replace recipe fields.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from bamkit.classes import ALWAYS_SCENE, BAM_OBJECTS, BAM_SCENES, COMMON_FEATURE
from bamkit.config import dump_yaml, from_dict, load_yaml, overridden, to_dict
from bamkit.errors import ConfigError
from bamkit.published import K_GRID, k_label

SET_KINDS = (
    "obj_scene",
    "scene_only",
    "obj_gray",
    "commonality",
    "dog_bedroom",
    "bamboo_forest",
    "dog_bamboo_forest",
)
# BAM's paste size: the larger relative side becomes a random int in [int(S/sqrt 3), int(S/sqrt 2)) (docs/dataset.md#pasting).
DEFAULT_SCALE = (1.0 / math.sqrt(3.0), 1.0 / math.sqrt(2.0))
SMOKE_IMAGES_PER_PAIR = 8
MAX_SIZE = 2048  # BAM stores 128 px; larger sides are allowed up to what one chunk of rows can hold in memory

_SOURCE_OVERRIDES = ("root", "coco_annotations", "coco_images", "miniplaces", "miniplaces_split")


@dataclass(frozen=True)
class Sources:
    """Where the objects (COCO instances) and scenes (MiniPlaces) come from (docs/dataset.md#source-formats)."""

    root: Path | None = None
    coco_annotations: Path = Path("coco/annotations/instances_train2017.json")
    coco_images: Path = Path("coco/train2017")
    miniplaces: Path = Path("miniplaces")
    miniplaces_split: Literal["train", "val"] = "train"


@dataclass(frozen=True)
class SceneFilterSpec:
    """Exclusion of scene images that already show a BAM object (BAM §3.1: "no scenes originally have dogs").

    ``kind: none`` keeps every scene (BAM's released code). ``kind: torchvision`` runs torchvision's COCO Faster
    R-CNN (:mod:`bamkit.data.detector`) with ``weights`` (a file, or ``auto``: torch's hub cache when the weights
    were downloaded there; without them the filter is off and the build says so). ``kind: list`` drops the files
    named in ``exclude_list`` (a text file, one path per line, relative to the MiniPlaces root or absolute).
    ``kind: detector`` calls ``detector`` (``"module:callable"``, see :mod:`bamkit.data.filters`). The detectors
    drop a scene where any of the recipe's objects scores at or above ``threshold``.
    """

    kind: Literal["none", "list", "detector", "torchvision"] = "none"
    exclude_list: Path | None = None
    detector: str | None = None
    weights: str = "auto"
    threshold: float = 0.5


@dataclass(frozen=True)
class Recipe:
    """A BAM dataset recipe (docs/dataset.md). Field order is the documented order of the YAML files."""

    name: str = "bam"
    sources: Sources = field(default_factory=Sources)
    objects: tuple[str, ...] = BAM_OBJECTS
    scenes: tuple[str, ...] = BAM_SCENES
    images_per_pair: int = 1000
    size: int = 128
    val_fraction: float = 0.1
    seed: int = 0
    gray_value: int = 128
    common_feature: str = COMMON_FEATURE
    always_scene: str = ALWAYS_SCENE
    contrast_scene: str = "bedroom"
    k_values: tuple[float, ...] = K_GRID
    commonality_images_per_class: int | None = None
    scale_range: tuple[float, float] = DEFAULT_SCALE
    min_object_area: float = 0.0
    scene_filter: SceneFilterSpec = field(default_factory=SceneFilterSpec)
    sets: tuple[str, ...] = SET_KINDS
    chunk_rows: int = 64
    compress_images: bool = False
    smoke: bool = False

    def __post_init__(self) -> None:
        _validate(self)

    # -- derived quantities ------------------------------------------------------------------------------
    @property
    def n_val(self) -> int:
        """Validation images per pair: the last ``n_val`` indices (BAM: 100 of 1,000, docs/dataset.md#splits)."""
        return int(round(self.images_per_pair * self.val_fraction))

    @property
    def n_commonality(self) -> int:
        """Scene images per class in each commonality set X^k (BAM: 1,000, the same as ``images_per_pair``).

        Images ``0 … images_per_pair − 1`` are the pairs' scene images (same split); a larger
        ``commonality_images_per_class`` adds training scenes ``images_per_pair …`` to the X^k sets only, so the
        k-models of a recipe with few images per pair can train on more scenes than its pairs have (BAM's and
        the demo's recipes leave it unset: the same scenes).
        """
        return self.commonality_images_per_class or self.images_per_pair

    @property
    def n_scene_images(self) -> int:
        """Scene images the build reads per class: the pairs' and the commonality sets' extra ones."""
        return (
            max(self.images_per_pair, self.n_commonality)
            if "commonality" in self.sets
            else self.images_per_pair
        )

    @property
    def size_range(self) -> tuple[int, int]:
        """``[lo, hi)`` in pixels of the pasted object's larger relative side (BAM: 73..88 at 128 px)."""
        return int(self.size * self.scale_range[0]), int(self.size * self.scale_range[1])

    def k_scene_count(self, k: float) -> int:
        """Scene classes carrying the common feature in commonality set ``k``: ``round(k * n_scenes)``."""
        return int(round(k * len(self.scenes)))

    def set_names(self) -> list[str]:
        """The HDF5 set names this recipe builds, in build order."""
        out: list[str] = []
        for kind in self.sets:
            if kind == "commonality":
                out.extend(commonality_name(k) for k in self.k_values)
            else:
                out.append(kind)
        return out

    def to_dict(self) -> dict[str, Any]:
        """Plain data (paths as strings)."""
        return to_dict(self)

    def to_yaml(self) -> str:
        """The resolved recipe as YAML text (stored in the dataset file)."""
        return dump_yaml(self)


def commonality_name(k: float) -> str:
    """``0.1`` -> ``"commonality/k0.1"`` (the dataset file's set names, docs/design.md)."""
    return f"commonality/k{k_label(k)}"


def _fail(key: str, got: Any, expected: str) -> None:
    raise ConfigError(f"recipe key {key!r}: got {got!r}; expected {expected}")


def _validate(r: Recipe) -> None:
    if r.images_per_pair < 1:
        _fail("images_per_pair", r.images_per_pair, "an integer >= 1")
    if not 8 <= r.size <= MAX_SIZE:
        _fail("size", r.size, f"an image side from 8 to {MAX_SIZE} pixels (BAM uses 128)")
    if r.seed < 0:
        _fail("seed", r.seed, "an integer >= 0")
    if not 0.0 < r.val_fraction < 1.0:
        _fail("val_fraction", r.val_fraction, "a fraction strictly between 0 and 1 (BAM: 0.1)")
    if not 1 <= r.n_val < r.images_per_pair:
        _fail(
            "val_fraction",
            r.val_fraction,
            f"a fraction giving 1..{r.images_per_pair - 1} validation images of {r.images_per_pair} per pair "
            f"(got {r.n_val}); raise images_per_pair or change val_fraction",
        )
    if not 0 <= r.gray_value <= 255:
        _fail("gray_value", r.gray_value, "an integer in 0..255")
    if not r.objects or len(set(r.objects)) != len(r.objects):
        _fail("objects", list(r.objects), "a non-empty list of distinct COCO category names")
    if not r.scenes or len(set(r.scenes)) != len(r.scenes):
        _fail("scenes", list(r.scenes), "a non-empty list of distinct MiniPlaces class names")
    if r.common_feature not in r.objects:
        _fail("common_feature", r.common_feature, f"one of objects {list(r.objects)}")
    for key in ("always_scene", "contrast_scene"):
        if getattr(r, key) not in r.scenes:
            _fail(key, getattr(r, key), f"one of scenes {list(r.scenes)}")
    if r.commonality_images_per_class is not None and not (
        isinstance(r.commonality_images_per_class, int)
        and r.commonality_images_per_class >= r.images_per_pair
    ):
        _fail(
            "commonality_images_per_class",
            r.commonality_images_per_class,
            f"null or an integer >= images_per_pair ({r.images_per_pair}): the X^k sets hold the pairs' scene "
            "images plus extra training scenes",
        )
    if not r.k_values or len(set(r.k_values)) != len(r.k_values):
        _fail("k_values", list(r.k_values), "a non-empty list of distinct fractions in (0, 1]")
    for k in r.k_values:
        if not 0.0 < k <= 1.0 or r.k_scene_count(k) < 1:
            _fail("k_values", k, f"a fraction in (0, 1] with round(k * {len(r.scenes)} scenes) >= 1")
    lo_f, hi_f = r.scale_range
    if not 0.0 < lo_f < hi_f < 1.0:
        _fail("scale_range", list(r.scale_range), "[lo, hi] with 0 < lo < hi < 1 (BAM: [1/sqrt 3, 1/sqrt 2])")
    lo, hi = r.size_range
    if lo < 1 or hi <= lo:
        _fail("scale_range", list(r.scale_range), f"a range giving at least one pixel size at size {r.size}")
    if r.min_object_area < 0 or not math.isfinite(r.min_object_area):
        _fail("min_object_area", r.min_object_area, "a finite number of pixels >= 0")
    unknown = [s for s in r.sets if s not in SET_KINDS]
    if unknown or not r.sets or len(set(r.sets)) != len(r.sets):
        _fail("sets", list(r.sets), f"distinct names among {list(SET_KINDS)}")
    if r.chunk_rows < 1:
        _fail("chunk_rows", r.chunk_rows, "an integer >= 1 (rows per HDF5 chunk)")
    f = r.scene_filter
    if f.kind == "list" and f.exclude_list is None:
        _fail(
            "scene_filter.exclude_list", None, "a text file of scene paths when scene_filter.kind is 'list'"
        )
    if f.kind == "detector" and not (f.detector and ":" in f.detector):
        _fail("scene_filter.detector", f.detector, "'module:callable' when scene_filter.kind is 'detector'")
    if not 0.0 <= f.threshold <= 1.0:
        _fail("scene_filter.threshold", f.threshold, "a score threshold in [0, 1]")


def _resolve(p: Path | None, base: Path) -> Path | None:
    if p is None:
        return None
    p = Path(p).expanduser()
    return p if p.is_absolute() else (base / p).resolve()


def resolve_paths(recipe: Recipe, base: Path) -> Recipe:
    """Make every path absolute: ``sources.root`` against ``base``; the other sources against the root."""
    s = recipe.sources
    root = _resolve(s.root, base)
    src_base = root if root is not None else base
    sources = dataclasses.replace(
        s,
        root=root,
        coco_annotations=_resolve(s.coco_annotations, src_base),
        coco_images=_resolve(s.coco_images, src_base),
        miniplaces=_resolve(s.miniplaces, src_base),
    )
    sf = dataclasses.replace(
        recipe.scene_filter, exclude_list=_resolve(recipe.scene_filter.exclude_list, base)
    )
    return dataclasses.replace(recipe, sources=sources, scene_filter=sf)


def smoke_applied(recipe: Recipe) -> Recipe:
    """The smoke-run version of a recipe: at most 8 images per pair (a quarter or more of them validation)."""
    if not recipe.smoke:
        return recipe
    n = min(recipe.images_per_pair, SMOKE_IMAGES_PER_PAIR)
    val = recipe.val_fraction if round(n * recipe.val_fraction) >= 1 else 0.25
    return dataclasses.replace(recipe, images_per_pair=n, val_fraction=val, commonality_images_per_class=None)


def recipe_from_dict(
    data: dict[str, Any], base: str | Path = ".", where: str = "recipe", **overrides: Any
) -> Recipe:
    """Build a recipe from plain data (a parsed YAML mapping) plus overrides; paths resolved against ``base``.

    Override keys are recipe fields (``images_per_pair``, ``size``, ``seed`` …) or source fields
    (``root``, ``coco_annotations``, ``coco_images``, ``miniplaces``, ``miniplaces_split``); ``None`` values
    are ignored so CLI flags that were not given change nothing. Override paths are taken relative to the
    current directory.
    """
    data = dict(data)
    sources = dict(data.get("sources") or {})
    for key, value in overrides.items():
        if value is None:
            continue
        if key in _SOURCE_OVERRIDES:
            sources[key] = str(Path(value).expanduser().resolve()) if key != "miniplaces_split" else value
        elif key in {f.name for f in dataclasses.fields(Recipe)}:
            data[key] = value
        else:
            raise ConfigError(
                f"recipe override {key!r} is not a recipe field; expected one of "
                f"{', '.join([f.name for f in dataclasses.fields(Recipe)] + list(_SOURCE_OVERRIDES))}"
            )
    if sources:
        data["sources"] = sources
    recipe = from_dict(Recipe, data, where=where)
    return smoke_applied(resolve_paths(recipe, Path(base).resolve()))


def load_recipe(path: str | Path, set_values: Sequence[str] = (), **overrides: Any) -> Recipe:
    """Load and validate a recipe YAML file.

    Args:
        path: the recipe (``data_recipes/bam.yaml``); a shipped name such as ``"data_recipes/demo.yaml"`` is
            found in the source checkout.
        set_values: ``--set KEY=VALUE`` values for any key of the recipe (``scale_range=[0.4, 0.6]``).
        **overrides: recipe or source fields that replace the file's (see :func:`recipe_from_dict`).

    Returns:
        the validated :class:`Recipe` with absolute paths (smoke-shrunk when ``smoke`` is true).
    """
    from bamkit.paths import shipped

    p = shipped(path)

    def build(data: dict[str, Any], where: str) -> Recipe:
        return recipe_from_dict(data, base=p.parent, where=where, **overrides)

    return overridden(load_yaml(p), set_values, build, str(p))
