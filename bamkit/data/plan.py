"""Seeded recipe -> what every row of every set is made of (no pixels; BAM §3.1-3.2, docs/dataset.md#pasting).

Rows of ``obj_scene``, ``scene_only`` and ``obj_gray`` are ordered by (object, scene, i) like BAM's sorted file
names ``{obj}-{scene}-{i:04d}``: ``pair_index = (o * n_scenes + s) * n + i``. Object instance ``i`` of every
object class is pasted into scene image ``i`` of every scene class; validation = the last ``n_val`` indices
of each pair (docs/dataset.md#splits), so no object instance or scene image crosses the split.

A row is described by ``(o, s, i)`` and a *kind*:

* ``COMPOSITE`` — object o pasted into scene image (s, i) (``obj_scene``, dog rows of the commonality sets,
  ``dog_bedroom``, ``dog_bamboo_forest``);
* ``SCENE_PAIRED`` — the scene image without the object but with the paired composite's mask and box
  (``scene_only``, ``bamboo_forest``); ``object_label`` is -1 because no object is visible, ``paired_object``
  names the object whose mask it carries;
* ``SCENE_PLAIN`` — the scene image, no mask (commonality rows of classes without the dog);
* ``GRAY`` — object o at the same place over a uniform gray (``obj_gray``).

Every random draw is a function of ``(seed, o, s, i)`` (:func:`bamkit.data.compose.row_hash`), so the pixels of
a row do not depend on which process makes them or in which order.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bamkit.data.recipe import Recipe, commonality_name
from bamkit.errors import DataError

COMPOSITE, SCENE_PAIRED, SCENE_PLAIN, GRAY = 0, 1, 2, 3
# The small validation sets drawn from the pairs (BAM §4.5, docs/dataset.md#sets): name -> (the recipe key naming their
# scene class, the kind of their rows). Each holds the dog's validation indices of that scene.
DERIVED_SETS = {
    "dog_bedroom": ("contrast_scene", COMPOSITE),
    "bamboo_forest": ("always_scene", SCENE_PAIRED),
    "dog_bamboo_forest": ("always_scene", COMPOSITE),
}


def derived_scene(recipe: Recipe, name: str) -> str:
    """The scene class of derived set ``name`` (:data:`DERIVED_SETS`) in ``recipe``."""
    return getattr(recipe, DERIVED_SETS[name][0])


@dataclass(frozen=True)
class Group:
    """Sets that share one row layout and are composed together, chunk by chunk.

    Attributes:
        name: ``"pairs"`` (obj_scene, scene_only, obj_gray), a commonality set, or a set of
            :data:`DERIVED_SETS`.
        sets: set name -> kind of its rows (-1: the kind varies by row, see :meth:`Plan.kinds`).
        n_rows: rows of every set in the group.
    """

    name: str
    sets: dict[str, int]
    n_rows: int


@dataclass(frozen=True)
class SourceChoice:
    """Candidate source items per class, in the order they are tried (sorted ids / sorted files)."""

    objects: dict[str, list[tuple[int, int]]]
    scenes: dict[str, list[Path]]


@dataclass(frozen=True)
class Plan:
    """The row layout of a build (no pixels)."""

    recipe: Recipe
    commonality: dict[str, tuple[int, ...]] = field(default_factory=dict)
    groups: tuple[Group, ...] = ()

    @property
    def n(self) -> int:
        return self.recipe.images_per_pair

    @property
    def n_objects(self) -> int:
        return len(self.recipe.objects)

    @property
    def n_scenes(self) -> int:
        return len(self.recipe.scenes)

    def pair_index(self, o: np.ndarray, s: np.ndarray, i: np.ndarray) -> np.ndarray:
        """Row of composite (o, s, i) in ``obj_scene`` (and ``scene_only``, ``obj_gray``); -1 for a commonality
        set's extra scene (``i >= n``), which has no pair."""
        return np.where(i < self.n, (o * self.n_scenes + s) * self.n + i, -1).astype(np.int32)

    def rows(self, group: Group, start: int, stop: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(o, s, i)`` int arrays of rows ``start … stop-1`` of ``group``."""
        r = np.arange(start, stop, dtype=np.int64)
        n, nS = self.n, self.n_scenes
        dog = self.recipe.objects.index(self.recipe.common_feature)
        val0 = n - self.recipe.n_val
        if group.name == "pairs":
            return r // (nS * n), (r // n) % nS, r % n
        if group.name.startswith("commonality/"):
            nk = self.recipe.n_commonality
            return np.full_like(r, dog), r // nk, r % nk
        scene = self.recipe.scenes.index(derived_scene(self.recipe, group.name))
        return np.full_like(r, dog), np.full_like(r, scene), val0 + r

    def object_instance(self, i: np.ndarray) -> np.ndarray:
        """Object instance pasted into scene image ``i``: instance ``i`` for the pairs' images (BAM: instance i
        into scene i); a commonality set's extra training scene ``i >= n`` reuses a *training* instance,
        ``(i - n) mod (n - n_val)``, so validation objects stay unseen in training."""
        n, n_train = self.n, self.n - self.recipe.n_val
        return np.where(i < n, i, (i - n) % n_train)

    def kinds(self, group: Group, set_name: str, s: np.ndarray) -> np.ndarray:
        """The kind of each row of ``set_name`` (rows given by their scene indices ``s``)."""
        kind = group.sets[set_name]
        if kind >= 0:
            return np.full(s.shape, kind, dtype=np.int8)
        with_dog = np.isin(s, np.asarray(self.commonality[set_name], dtype=np.int64))
        return np.where(with_dog, COMPOSITE, SCENE_PLAIN).astype(np.int8)

    def split(self, i: np.ndarray) -> np.ndarray:
        """0 train / 1 val: the last ``n_val`` indices of each pair are validation (docs/dataset.md#splits); a commonality
        set's extra scenes (``i >= n``) are training images."""
        return ((i >= self.n - self.recipe.n_val) & (i < self.n)).astype(np.uint8)


def commonality_classes(recipe: Recipe) -> dict[str, tuple[int, ...]]:
    """Scene classes carrying the common feature in each commonality set (BAM §3.2, docs/dataset.md#sets).

    ``always_scene`` is always among them; the others are the first ``round(k * n_scenes) - 1`` of the remaining
    classes in the recipe's label order (bamboo_forest, bedroom, bowling_alley, …; docs/dataset.md#sets), so the sets
    are nested (k0.2's dog classes include k0.1's) and the same for every seed. In the paper's code the relative
    MCS is measured on dog-in-bedroom images, and bedroom is the second class to get the dog; a seeded order
    would move it anywhere between k = 0.2 and 1.0 and with it the meaning of that series. The choice is
    recorded in each set's attributes.
    """
    scenes = list(recipe.scenes)
    always = scenes.index(recipe.always_scene)
    order = [j for j in range(len(scenes)) if j != always]
    out = {}
    for k in recipe.k_values:
        m = recipe.k_scene_count(k)
        out[commonality_name(k)] = tuple(sorted([always, *order[: m - 1]]))
    return out


def make_plan(recipe: Recipe) -> Plan:
    """The groups and row layouts of every set the recipe names."""
    nO, nS, n = len(recipe.objects), len(recipe.scenes), recipe.images_per_pair
    groups: list[Group] = []
    pair_sets = {
        name: kind
        for name, kind in (("obj_scene", COMPOSITE), ("scene_only", SCENE_PAIRED), ("obj_gray", GRAY))
        if name in recipe.sets
    }
    if pair_sets:
        groups.append(Group("pairs", pair_sets, nO * nS * n))
    common = commonality_classes(recipe)
    if "commonality" in recipe.sets:
        for k in recipe.k_values:
            name = commonality_name(k)
            groups.append(Group(name, {name: -1}, nS * recipe.n_commonality))
    for name, (_, kind) in DERIVED_SETS.items():
        if name in recipe.sets:
            groups.append(Group(name, {name: kind}, recipe.n_val))
    return Plan(recipe=recipe, commonality=common, groups=tuple(groups))


def choose_sources(recipe: Recipe, coco, places, scene_filter) -> SourceChoice:
    """Candidate objects and scenes per class, checked against the count needed before any pixel work.

    Args:
        recipe: the recipe.
        coco: a :class:`bamkit.sources.coco.CocoObjects`; places: a :class:`bamkit.sources.miniplaces.MiniPlaces`.
        scene_filter: a :class:`bamkit.data.filters.SceneFilter`.

    Raises:
        DataError: an object class has fewer usable candidates than ``images_per_pair`` or a scene class fewer
            than :attr:`Recipe.n_scene_images`; the message lists every such class with how many exist and how
            many are needed.
    """
    n, n_scene = recipe.images_per_pair, recipe.n_scene_images
    short: list[str] = []
    objects = {}
    for name in recipe.objects:
        objects[name] = coco.candidates(name)
        if len(objects[name]) < n:
            short.append(f"object {name!r}: {len(objects[name])} usable COCO instances")
    scenes = {}
    for name in recipe.scenes:
        files = places.files(name)
        scenes[name] = scene_filter.keep(name, files, places.load)
        if len(scenes[name]) < n_scene:
            dropped = len(files) - len(scenes[name])
            extra = f" ({dropped} removed by the scene filter)" if dropped else ""
            short.append(f"scene {name!r}: {len(scenes[name])} images{extra}")
    empty = [s for s in short if ": 0 " in s]
    if empty:  # a class with nothing at all: a wrong folder, split or annotation file, not a size question
        raise DataError(
            "no source images at all for "
            + "; ".join(empty)
            + f" (COCO annotations {recipe.sources.coco_annotations}, "
            f"MiniPlaces {recipe.sources.miniplaces}, split {recipe.sources.miniplaces_split}); check that "
            "sources.* (--coco-annotations, --miniplaces) name the right files and that the class exists there"
        )
    if short:
        raise DataError(
            f"too few source images for images_per_pair={n}: "
            + "; ".join(short)
            + f"; {n} are needed per object class"
            + (
                f" and {n_scene} per scene class (commonality_images_per_class={n_scene})"
                if n_scene > n
                else " and scene class"
            )
            + " — lower images_per_pair (--images-per-pair)"
            + (" or commonality_images_per_class" if n_scene > n else "")
            + (" or min_object_area" if recipe.min_object_area > 0 else "")
            + ", or point the recipe at larger sources"
        )
    return SourceChoice(objects=objects, scenes=scenes)
