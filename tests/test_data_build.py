"""Building, inspecting and previewing a dataset on real-format synthetic sources (issue 3 properties)."""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
import yaml
from PIL import Image

from bamkit.cli import main as cli
from bamkit.data.build import build_dataset
from bamkit.data.h5 import BamFile
from bamkit.data.inspect import inspect_file
from bamkit.data.plan import commonality_classes
from bamkit.errors import ConfigError, DataError
from bamkit.testing.data import make_sources, tiny_recipe

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    return make_sources(tmp_path_factory.mktemp("src"), scale="tiny", corrupt=1)


@pytest.fixture(scope="module")
def built(sources, tmp_path_factory):
    return build_dataset(tiny_recipe(sources), tmp_path_factory.mktemp("b") / "tiny.h5", workers=1)


def test_file_layout_and_attributes(built):
    with BamFile(built) as bf:
        r = tiny_recipe(Path(bf.attrs["provenance"]["sources"]["coco_images"]).parents[1])
        n, nO, nS = r.images_per_pair, len(r.objects), len(r.scenes)
        assert bf.sets()[:3] == ["obj_scene", "scene_only", "obj_gray"]
        assert len(bf["obj_scene"]) == nO * nS * n and len(bf["commonality/k0.3"]) == nS * n
        assert len(bf["dog_bedroom"]) == len(bf["bamboo_forest"]) == r.n_val
        assert bf.object_classes == list(r.objects) and bf.scene_classes == list(r.scenes)
        assert yaml.safe_load(bf.attrs["recipe"])["images_per_pair"] == n and bf.attrs["seed"] == r.seed
        assert bf.attrs["schema_version"] == 1 and "bamkit_version" in bf.attrs
        prov = bf.attrs["provenance"]
        assert sum(prov["skips"]["object_skips"].values()) >= 1  # the corrupt source files were skipped
        # pair_index = (o * nS + s) * n + i; labels follow it; validation = the last n_val indices.
        v = bf["obj_scene"]
        pidx, obj, scn, split = (v.read(k) for k in ("pair_index", "object_label", "scene_label", "split"))
        rows = np.arange(len(v))
        assert (pidx == rows).all() and (obj == rows // (nS * n)).all() and (scn == (rows // n) % nS).all()
        assert (split == (rows % n >= n - r.n_val)).all()
        # Source provenance per image: the same COCO instance for index i in every scene; scene file per (s, i).
        ids = v.read("source_object").reshape(nO, nS, n, 2)
        assert (ids == ids[:, :1]).all() and (ids > 0).all()
        files = v.read("source_scene").reshape(nO, nS, n)
        assert (files == files[:1]).all() and len(set(files[0].ravel().tolist())) == nS * n


def test_pixel_exact_pairing_independently(built):
    with BamFile(built) as bf:
        a, b, g = (bf[s].read("images") for s in ("obj_scene", "scene_only", "obj_gray"))
        m = bf["obj_scene"].read("masks")
        assert m.any(axis=(1, 2)).all()
        assert (a[~m] == b[~m]).all() and (a[m] == g[m]).all() and (g[~m] == 128).all()
        assert not (a[m] == b[m]).all()  # the object really changes the scene
        # Scene image i of class s is the same in every object's row (object i into scene i, as BAM).
        n, nS = 8, 10
        b = b.reshape(10, nS, n, *b.shape[1:])
        assert (b == b[:1]).all()


def test_commonality_sets_follow_the_recorded_choice(built):
    with BamFile(built) as bf:
        r = tiny_recipe(".")
        chosen = commonality_classes(r)
        prev: set[int] = set()
        for k in r.k_values:
            v = bf[f"commonality/k{k:.1f}"]
            labels = v.attrs["feature_scene_labels"]
            assert tuple(labels) == chosen[f"commonality/k{k:.1f}"] and 0 in labels
            assert len(labels) == round(k * 10) and prev <= set(labels)  # nested, bamboo forest always in
            prev = set(labels)
            scn, obj, pidx = v.read("scene_label"), v.read("object_label"), v.read("pair_index")
            has = np.isin(scn, labels)
            assert ((obj == 2) == has).all() and ((obj == -1) == ~has).all()
            imgs = v.read("images")
            ref = np.where(
                has[:, None, None, None],
                bf["obj_scene"].read("images", pidx),
                bf["scene_only"].read("images", pidx),
            )
            assert (imgs == ref).all()
            assert not v.read("masks")[~has].any()


def test_inspect_passes_and_cli_summary(built, capsys):
    rep = inspect_file(built)
    assert rep.passed, rep.failures
    assert rep.sets["obj_scene"]["per_object"]["2"] == [60, 20]
    assert cli(["inspect", str(built)]) == 0
    assert "checks: all passed" in capsys.readouterr().out


@pytest.mark.parametrize(
    "damage, check",
    [
        ("scene_only_pixel", "pairing"),
        ("empty_mask", "masks"),
        ("split", "split"),
        ("commonality_pixel", "commonality"),
        ("label", "labels"),
    ],
)
def test_inspect_detects_violations(built, tmp_path, damage, check, capsys):
    p = tmp_path / "bad.h5"
    shutil.copy(built, p)
    with h5py.File(p, "r+") as f:
        if damage == "scene_only_pixel":
            m = f["obj_scene/masks"][5]
            y, x = np.argwhere(~m)[0]
            img = f["scene_only/images"][5]
            img[y, x] = 255 - img[y, x]
            f["scene_only/images"][5] = img
        elif damage == "empty_mask":
            f["obj_gray/masks"][3] = np.zeros_like(f["obj_gray/masks"][3])
        elif damage == "split":
            f["obj_scene/split"][0] = 1
        elif damage == "commonality_pixel":
            f["commonality/k1.0/images"][4] = 255 - f["commonality/k1.0/images"][4]
        else:
            f["obj_scene/object_label"][1] = 99
    rep = inspect_file(p)
    assert check in {c for c, _ in rep.failures}
    if damage == "scene_only_pixel":  # the command turns a failure into exit code 1 naming the check
        assert cli(["inspect", str(p)]) == 1
        assert f"check '{rep.failures[0][0]}' failed" in capsys.readouterr().err


def test_preview_writes_contact_sheet(built, tmp_path):
    out = tmp_path / "sheet.png"
    assert cli(["preview", str(built), "--set", "obj_scene", "--out", str(out), "--n", "16"]) == 0
    im = np.asarray(Image.open(out))
    assert im.shape[1] == 8 * 128 and im.shape[0] == 2 * (128 + 14)
    assert (im == (255, 40, 200)).all(axis=-1).any()  # the mask outlines are drawn


def test_deterministic_across_worker_counts(sources, built, tmp_path):
    other = build_dataset(tiny_recipe(sources), tmp_path / "w2.h5", workers=2)
    assert other.read_bytes() == built.read_bytes()
    assert not (tmp_path / "w2.h5.parts").exists() and not (tmp_path / "w2.h5.tmp").exists()


def test_different_seed_changes_placements(sources, built, tmp_path):
    other = build_dataset(tiny_recipe(sources, seed=1, sets=["obj_scene"]), tmp_path / "s1.h5")
    with BamFile(other) as a, BamFile(built) as b:
        assert not (a["obj_scene"].read("boxes") == b["obj_scene"].read("boxes")).all()
        assert (a["obj_scene"].read("source_object") == b["obj_scene"].read("source_object")).all()


def test_too_few_sources_fails_before_work(sources, tmp_path):
    with pytest.raises(DataError, match=r"too few source images for images_per_pair=500: .*needed"):
        build_dataset(tiny_recipe(sources, images_per_pair=500), tmp_path / "x.h5")
    assert not list(tmp_path.iterdir())  # nothing was started


@pytest.mark.parametrize("replay_killed", [False, True])
def test_resume_after_kill_is_byte_identical(sources, tmp_path, caplog, replay_killed):
    recipe_file = tmp_path / "slow.yaml"
    data = yaml.safe_load((ROOT / "data_recipes" / "tiny.yaml").read_text())
    data["chunk_rows"] = 2  # many small chunks, so the kill lands in the middle of composing
    data["sets"] = ["obj_scene", "scene_only", "bamboo_forest"]
    data["sources"]["root"] = str(sources)
    recipe_file.write_text(yaml.safe_dump(data))
    out = tmp_path / "r.h5"
    parts = tmp_path / "r.h5.parts"
    env = {**os.environ, "BAMKIT_PROGRESS": "0"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "bamkit", "build", str(recipe_file), "--out", str(out), "--workers", "1"],
        env=env,
        cwd=ROOT,
    )
    journal = parts / "current" / "journal.txt"

    def done() -> int:  # chunk tasks the build has written and journalled so far
        return journal.read_bytes().count(b"\n") if journal.exists() else 0

    deadline = time.time() + 120
    while time.time() < deadline and done() < 30:
        if proc.poll() is not None:
            break
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = done()
    assert not out.exists() and done >= 30, "the build must be killed mid-way"
    if replay_killed:
        # The state a kill leaves while a resume copies the journalled chunks: the interrupted run's folder
        # renamed previous/, and a partial current/ whose journal ends in a cut line.
        os.replace(parts / "current", parts / "previous")
        (parts / "current").mkdir()
        (parts / "current" / "data.h5").write_bytes(b"\0" * 4096)
        (parts / "current" / "journal.txt").write_bytes(b"0 4096:10 4096:10\n1 99")
    from bamkit.data.recipe import load_recipe

    recipe = load_recipe(recipe_file)
    with caplog.at_level(logging.INFO, logger="bamkit.data.build"):
        resumed = build_dataset(recipe, out, workers=1)
    assert any("resuming" in r.message for r in caplog.records)
    fresh = build_dataset(recipe, tmp_path / "fresh.h5", workers=1)
    assert resumed.read_bytes() == fresh.read_bytes()
    assert inspect_file(resumed).passed


@pytest.mark.parametrize("outside", [False, True])
def test_inspect_checks_delta_patch_set(built, tmp_path, outside):
    """A bamboo_forest_patch set written through write_set may change pixels only inside the dog masks."""
    from bamkit.data.h5 import FIELDS
    from bamkit.data.h5_write import open_for_append, write_set

    p = tmp_path / "patched.h5"
    shutil.copy(built, p)
    with BamFile(p) as bf:
        v = bf["bamboo_forest"]
        arrays = {k: v.read(k) for k in FIELDS}
    m = arrays["masks"]
    arrays["images"] = arrays["images"].copy()
    arrays["images"][m] = 255 - arrays["images"][m]  # δ inside the mask only
    if outside:
        arrays["images"][0][~m[0]] = 0
    with open_for_append(p) as h5:
        write_set(h5, "bamboo_forest_patch", arrays, attrs={"model": "f_empty"})
    rep = inspect_file(p)
    assert rep.passed != outside
    assert ("derived" in {c for c, _ in rep.failures}) == outside


def test_commonality_extra_scenes(sources, tmp_path):
    """``commonality_images_per_class`` > ``images_per_pair``: X^k keeps the pairs' rows (same pixels, same
    split) and adds training scenes i >= n whose dogs are training instances; ``dog_bamboo_forest`` equals the
    dog-in-bamboo-forest validation composites of obj_scene."""
    recipe = tiny_recipe(
        sources,
        k_values=[0.1, 1.0],
        commonality_images_per_class=12,
        sets=["obj_scene", "scene_only", "commonality", "dog_bamboo_forest"],
    )
    n, nk, n_val, nS = recipe.images_per_pair, 12, recipe.n_val, len(recipe.scenes)
    path = build_dataset(recipe, tmp_path / "extra.h5", workers=1)
    rep = inspect_file(path)
    assert rep.passed, rep.failures
    with BamFile(path) as bf:
        os_ = bf["obj_scene"]
        for k in (0.1, 1.0):
            v = bf[f"commonality/k{k:.1f}"]
            assert len(v) == nS * nk and v.attrs["n_per_class"] == nk
            rows = np.arange(nS * nk)
            i = rows % nk
            split, pidx = v.read("split"), v.read("pair_index")
            # validation = the pairs' validation scenes exactly; the extra scenes are training images
            assert (split == ((i >= n - n_val) & (i < n))).all()
            assert ((pidx == -1) == (i >= n)).all()
            assert (v.read("scene_label") == rows // nk).all()
            ids = v.read("source_object")
            src = os_.read("source_object")
            dog_rows = os_.read("object_label") == 2
            train_dogs = {tuple(x) for x in src[dog_rows & (os_.read("split") == 0)]}
            val_dogs = {tuple(x) for x in src[dog_rows & (os_.read("split") == 1)]}
            extra = (i >= n) & (v.read("object_label") == 2)
            assert extra.any() and all(tuple(x) in train_dogs for x in ids[extra])
            assert not any(tuple(x) in val_dogs for x in ids[split == 0] if x[0] >= 0)
            # an extra dog is placed anew (its own hash), not a copy of an obj_scene composite
            assert v.read("masks")[extra].reshape(extra.sum(), -1).any(axis=1).all()
        scenes = v.read("source_scene")
        assert len({s for s in scenes[(i >= n) & (v.read("scene_label") == 0)]}) == nk - n  # new scene files
        d = bf["dog_bamboo_forest"]
        assert len(d) == n_val and d.attrs["object"] == "dog" and d.attrs["scene"] == "bamboo_forest"
        assert (d.read("scene_label") == 0).all() and (d.read("split") == 1).all()
        assert (d.read("images") == os_.read("images", d.read("pair_index"))).all()


def test_commonality_images_per_class_must_cover_the_pairs(sources):
    with pytest.raises(ConfigError, match="commonality_images_per_class.*>= images_per_pair"):
        tiny_recipe(sources, commonality_images_per_class=4)
