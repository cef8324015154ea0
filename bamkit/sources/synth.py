"""Synthetic source data in the real COCO-instances and MiniPlaces formats (docs/dataset.md#source-formats).

``write_sources`` is the embedded default of ``bamkit run`` and the fixture generator of every data test: it
writes a genuine COCO 2017 instances file with JPEG images, and a genuine MiniPlaces tree, so the readers
(coco.py, miniplaces.py) and the builder run on exactly the code path real data take:

* COCO: the ten BAM categories and three distractors with their real ids; several instances per image (the
  intended object is the largest of its category, plus smaller same-category instances and distractors);
  polygons for single instances, compressed RLE for some of them (as third-party exports do), uncompressed
  RLE for ``iscrowd=1`` crowds (which are larger than the intended object, so a reader that forgets to skip
  crowds picks the wrong one); grayscale JPEGs among the RGB ones; sparse image ids.
* MiniPlaces: the ten BAM scenes with their official indices plus distractor categories (one nested),
  ``images/train/<letter>/<name>/<8 digits>.jpg``, ``images/val/<8 digits>.jpg``, ``train.txt``,
  ``val.txt`` and ``categories.txt`` in the official line formats.

Everything is seeded per item (``SeedSequence([seed, kind, class, index])``), JPEGs use a fixed quality and
carry no metadata, and the JSON has no timestamps: the same seed writes byte-identical files.
``corrupt=N`` adds N bad files of each kind (missing, truncated, not an image) to both sources, for tests.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict
from pathlib import Path

import numpy as np

from bamkit.atomic import write_text
from bamkit.classes import BAM_SCENES
from bamkit.data.pool import ordered_pool
from bamkit.errors import ConfigError, DataError
from bamkit.locks import output_lock
from bamkit.progress import bar
from bamkit.sources.synth_base import CORRUPT_KINDS, LAYOUT, MARKER, SCALES, SCENE, SynthScale, jpeg, rng
from bamkit.sources.synth_coco import write_coco
from bamkit.sources.synth_render import render_scene
from bamkit.sources.synth_scenes import SCENES


# -- MiniPlaces -----------------------------------------------------------------------------------------
def _letter_path(name: str) -> str:
    return f"{name[0]}/{name}"


def render_scene_file(task: tuple[int, str, int]) -> bytes:
    """``(seed, scene, k)`` -> the JPEG bytes of scene ``scene``'s image ``k`` (its own random stream: the same
    bytes in whichever worker process draws it)."""
    seed, name, k = task
    return jpeg(render_scene(name, rng(seed, SCENE, SCENES[name][0], k)))


def _write_miniplaces(
    root: Path, final: Path, scale: SynthScale, seed: int, corrupt: int, summary: dict, workers: int = 1
) -> None:
    """Write the MiniPlaces tree under ``root`` (a temporary folder that becomes ``final``), the images drawn by
    ``workers`` processes."""
    (root / "images" / "val").mkdir(parents=True)
    order = sorted(SCENES, key=lambda n: SCENES[n][0])
    (root / "categories.txt").write_text("".join(f"/{_letter_path(n)} {SCENES[n][0]}\n" for n in order))
    bad: dict[str, list[str]] = {}
    for j, kind in enumerate(k for k in CORRUPT_KINDS for _ in range(corrupt)):
        bad.setdefault(BAM_SCENES[j % len(BAM_SCENES)], []).append(kind)
    corrupted: dict[str, list[str]] = {k: [] for k in CORRUPT_KINDS}
    train_lines, val_items = [], []
    layout = rng(seed, LAYOUT)
    jobs = []
    for name in order:
        index = SCENES[name][0]
        n_good = scale.scenes_train if name in BAM_SCENES else scale.distractor_scenes
        kinds = bad.get(name, [])
        slots = np.full(n_good + len(kinds), "", dtype=object)
        # bad files are interleaved with the good ones, so a reader meets them mid-list
        slots[np.sort(layout.choice(len(slots), size=len(kinds), replace=False))] = kinds
        good = 0
        for slot, kind in enumerate(slots):
            rel = f"train/{_letter_path(name)}/{slot + 1:08d}.jpg"
            train_lines.append(f"{rel} {index}")
            # per-image stream: good images by ordinal (unchanged by corruption), bad ones by slot
            jobs.append((root / "images" / rel, name, 50_000 + slot if kind else good, kind))
            if kind:
                corrupted[kind].append(rel)
            else:
                good += 1
        n_val = scale.scenes_val if name in BAM_SCENES else scale.distractor_scenes
        val_items += [(name, k) for k in range(n_val)]
    val_order = layout.permutation(len(val_items))  # the official val.txt interleaves the classes
    val_lines = []
    for pos, item in enumerate(val_order.tolist(), 1):
        name, k = val_items[item]
        rel = f"val/{pos:08d}.jpg"
        val_lines.append(f"{rel} {SCENES[name][0]}")
        jobs.append((root / "images" / rel, name, 100_000 + k, ""))
    drawn = [job for job in jobs if job[3] not in ("missing", "not_image")]
    with ordered_pool(workers) as pool:
        images = pool.map(render_scene_file, ((seed, name, k) for _, name, k, _ in drawn))
        for (path, _, _, kind), data in zip(
            drawn, bar(images, total=len(drawn), desc="synth MiniPlaces", unit="img"), strict=True
        ):
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data[: len(data) // 2] if kind == "truncated" else data)
    for path, _, _, kind in jobs:
        if kind == "not_image":
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(b"this is not a JPEG file\n")
    (root / "train.txt").write_text("".join(line + "\n" for line in train_lines))
    (root / "val.txt").write_text("".join(line + "\n" for line in val_lines))
    summary["miniplaces"] = {
        "root": str(final),
        "train_per_scene": scale.scenes_train,
        "val_per_scene": scale.scenes_val,
        "n_train": len(train_lines),
        "n_val": len(val_lines),
        "corrupt": corrupted,
    }


# -- entry point ----------------------------------------------------------------------------------------
def write_sources(
    out: str | Path, scale: str = "demo", seed: int = 0, *, corrupt: int = 0, workers: int = 1
) -> dict:
    """Write a synthetic COCO + MiniPlaces source tree under ``out``.

    Layout: ``out/coco/annotations/instances_train2017.json``, ``out/coco/train2017/*.jpg``,
    ``out/miniplaces/{categories.txt, train.txt, val.txt, images/train/..., images/val/...}`` and
    ``out/synth.json`` (this summary; written last, it marks the tree as complete and regenerable).
    The trees are written under temporary names and moved into place when complete.

    Args:
        out: output folder (created).
        scale: a key of :data:`SCALES` (``"tiny"``: ~12 per class in ~1-2 s; ``"demo"``: 200 objects and 200
            scenes per class).
        seed: master seed; the same seed gives byte-identical files.
        corrupt: number of bad files of each kind (missing, truncated, not an image) per source.
        workers: processes drawing the images (each image has its own random stream: the same bytes for any
            number).

    Returns:
        A JSON-able summary: paths, counts, the corrupted file names, scale and seed.

    Raises:
        ConfigError: unknown scale or negative ``corrupt``.
        DataError: ``out`` holds a ``coco/`` or ``miniplaces/`` folder that bamkit did not generate.
    """
    if scale not in SCALES:
        raise ConfigError(f"sources synth: scale={scale!r}; expected one of {sorted(SCALES)}")
    if not isinstance(corrupt, int) or corrupt < 0:
        raise ConfigError(f"sources synth: corrupt={corrupt!r}; expected an integer >= 0")
    if not isinstance(seed, int) or seed < 0:
        raise ConfigError(f"sources synth: seed={seed!r}; expected an integer >= 0")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    with output_lock(out, "source folder", folder=True):
        return _write(out, scale, seed, corrupt, workers)


def _write(out: Path, scale: str, seed: int, corrupt: int, workers: int = 1) -> dict:
    """:func:`write_sources` under the folder's lock."""
    sizes = SCALES[scale]
    existing = [p for p in (out / "coco", out / "miniplaces") if p.exists()]
    if existing and not (out / MARKER).is_file():
        raise DataError(
            f"sources synth: {existing[0]} exists and was not written by bamkit (no {MARKER}); "
            "refusing to overwrite it — choose another --out"
        )
    tmp = out / ".synth.tmp"
    if tmp.exists():
        shutil.rmtree(tmp)  # leftovers of an interrupted run
    tmp.mkdir(parents=True)
    summary: dict = {"scale": scale, "seed": seed, "corrupt": corrupt, "sizes": asdict(sizes)}
    write_coco(tmp / "coco", out / "coco", sizes, seed, corrupt, summary, workers)
    _write_miniplaces(tmp / "miniplaces", out / "miniplaces", sizes, seed, corrupt, summary, workers)
    (out / MARKER).unlink(missing_ok=True)
    for name in ("coco", "miniplaces"):
        if (out / name).exists():
            shutil.rmtree(out / name)
        (tmp / name).rename(out / name)
    tmp.rmdir()
    write_text(out / MARKER, json.dumps(summary, indent=1, sort_keys=True) + "\n")
    return summary
