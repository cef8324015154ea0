"""Synthetic sources: genuine formats, determinism, corruption, CLI (docs/dataset.md#source-formats)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bamkit.classes import BAM_OBJECTS, BAM_SCENES, COCO_IDS, MINIPLACES_IDS
from bamkit.cli import main
from bamkit.errors import ConfigError, DataError
from bamkit.sources.coco import CocoObjects
from bamkit.sources.synth import write_sources
from bamkit.sources.synth_base import SCALES
from bamkit.sources.synth_coco import uncompressed_rle
from bamkit.testing.sources import cached_synth

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # pycocotools' numpy-2 __array__ notice


def _tree(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name != "synth.json"
    }


def test_same_seed_gives_byte_identical_files_and_another_seed_differs(tmp_path):
    a = _tree(cached_synth("tiny", 0, 0))
    write_sources(tmp_path / "again", "tiny", seed=0)
    assert _tree(tmp_path / "again") == a
    assert main(["sources", "synth", "--out", str(tmp_path / "cli"), "--scale", "tiny", "--seed", "1"]) == 0
    b = _tree(tmp_path / "cli")
    jpgs = [k for k in a if k.endswith(".jpg") and "miniplaces" in k]
    assert sum(a[k] != b.get(k) for k in jpgs) == len(jpgs)  # every scene image changes with the seed
    assert a["coco/annotations/instances_train2017.json"] != b["coco/annotations/instances_train2017.json"]


def test_worker_processes_draw_the_same_bytes(tmp_path):
    """Two worker processes (the demo's) write the tree one process writes, corrupt files included."""
    write_sources(tmp_path / "one", "tiny", seed=3, corrupt=1, workers=1)
    write_sources(tmp_path / "two", "tiny", seed=3, corrupt=1, workers=2)
    one = _tree(tmp_path / "one")
    assert _tree(tmp_path / "two") == one
    assert sum(k.endswith(".jpg") for k in one) > 100


def test_cli_prints_a_summary_and_reports_errors_in_one_line(tmp_path, capsys):
    out = tmp_path / "x"
    (out / "coco").mkdir(parents=True)  # someone's real data: not ours to overwrite
    assert main(["sources", "synth", "--out", str(out), "--scale", "tiny"]) == DataError.exit_code
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "refusing to overwrite" in err
    assert main(["sources", "synth", "--out", str(out), "--corrupt", "-1"]) == ConfigError.exit_code


def test_coco_file_is_a_genuine_instances_file():
    root = cached_synth("tiny", 0, 0)
    data = json.loads((root / "coco/annotations/instances_train2017.json").read_text())
    assert set(data) == {"info", "licenses", "images", "annotations", "categories"}
    cats = {c["name"]: c["id"] for c in data["categories"]}
    assert {n: cats[n] for n in COCO_IDS} == COCO_IDS  # the real COCO ids of the BAM objects
    assert {"person": 1, "car": 3, "chair": 62}.items() <= cats.items()
    assert all(set(c) == {"supercategory", "id", "name"} for c in data["categories"])
    assert all({"file_name", "width", "height", "id"} <= set(i) for i in data["images"])
    kinds = set()
    for a in data["annotations"]:
        assert {"segmentation", "area", "bbox", "iscrowd", "category_id", "id", "image_id"} <= set(a)
        seg = a["segmentation"]
        if a["iscrowd"]:
            assert isinstance(seg["counts"], list)
            kinds.add("crowd")
        else:
            kinds.add("polygon" if isinstance(seg, list) else "rle")
            if isinstance(seg, dict):
                assert isinstance(seg["counts"], str)
    assert kinds == {"polygon", "rle", "crowd"}
    ids = [i["id"] for i in data["images"]]
    assert ids != sorted(ids)  # sparse ids in file order unrelated to id order, as real COCO
    modes = {Image.open(root / "coco/train2017" / i["file_name"]).mode for i in data["images"]}
    assert modes == {"RGB", "L"}
    # several instances per image: the main object, smaller same-category ones and distractors
    per_image = np.bincount([ids.index(a["image_id"]) for a in data["annotations"]])
    assert per_image.mean() > 2


def test_every_bam_object_has_the_promised_number_of_usable_instances():
    root = cached_synth("tiny", 0, 1)
    reader = CocoObjects(root / "coco/annotations/instances_train2017.json", root / "coco/train2017")
    n = SCALES["tiny"].objects_per_class
    assert {c: len(list(reader.iter_objects(c))) for c in BAM_OBJECTS} == dict.fromkeys(BAM_OBJECTS, n)
    assert reader.skips.counts == {"missing": 1, "truncated": 1, "unreadable": 1}
    assert SCALES["demo"].objects_per_class >= 72 and SCALES["demo"].scenes_train >= 72


def test_miniplaces_index_files_use_the_official_line_formats():
    root = cached_synth("tiny", 0, 0) / "miniplaces"
    cats = dict(line.split() for line in (root / "categories.txt").read_text().splitlines())
    for scene in BAM_SCENES:
        assert cats[f"/{scene[0]}/{scene}"] == str(MINIPLACES_IDS[scene])
    for line in (root / "train.txt").read_text().splitlines():
        m = re.fullmatch(r"train/([a-z])/([a-z_/]+)/(\d{8})\.jpg (\d+)", line)
        assert m and cats[f"/{m[1]}/{m[2]}"] == m[4]
        assert Image.open(root / "images" / line.split()[0]).size == (128, 128)
    val = (root / "val.txt").read_text().splitlines()
    assert all(re.fullmatch(r"val/\d{8}\.jpg \d+", line) for line in val)
    assert len({line.split()[1] for line in val[:10]}) > 1  # classes interleaved, as the official file


def test_corrupt_files_are_each_kind_in_both_sources():
    root = cached_synth("tiny", 0, 1)
    summary = json.loads((root / "synth.json").read_text())
    for source, base in (("coco", root / "coco/train2017"), ("miniplaces", root / "miniplaces/images")):
        bad = summary[source]["corrupt"]
        assert {k: len(v) for k, v in bad.items()} == {"missing": 1, "truncated": 1, "not_image": 1}
        assert not (base / bad["missing"][0]).exists()
        assert not (base / bad["not_image"][0]).read_bytes().startswith(b"\xff\xd8")
        assert (base / bad["truncated"][0]).read_bytes().startswith(b"\xff\xd8")


@pytest.mark.parametrize("shape", [(5, 7), (1, 1), (16, 3)])
def test_uncompressed_rle_round_trips_through_pycocotools(shape):
    from pycocotools import mask as mask_utils

    rng = np.random.default_rng(shape[0])
    for mask in (rng.random(shape) < 0.4, np.ones(shape, bool), np.zeros(shape, bool)):
        rle = uncompressed_rle(mask)
        assert sum(rle["counts"]) == mask.size
        decoded = mask_utils.decode(mask_utils.frPyObjects(rle, *shape)).astype(bool)
        assert np.array_equal(decoded, mask)


def test_bad_arguments(tmp_path):
    with pytest.raises(ConfigError, match="scale='huge'"):
        write_sources(tmp_path, "huge")
    with pytest.raises(ConfigError, match="corrupt"):
        write_sources(tmp_path, "tiny", corrupt=-2)


@pytest.mark.slow
def test_synthetic_classes_are_learnable_by_a_small_cnn_at_64px(tmp_path):
    """A small CNN learns both labels of BAM-style composites of the demo sources (chance = 0.1).

    Composites follow BAM's paste (docs/dataset.md#pasting): the object's longer relative side is set to
    [S/√3, S/√2) of the 128-px scene, alpha-pasted at a random position, then the image is resized to 64 px.
    Measured on 2 shared CPU cores after 12 epochs on 720 composites: object ≈ 0.75, scene ≈ 0.99.
    """
    import torch
    import torch.nn.functional as F

    from bamkit.sources.miniplaces import MiniPlaces

    root = tmp_path / "src"
    write_sources(root, "demo", seed=0)
    coco = CocoObjects(root / "coco/annotations/instances_train2017.json", root / "coco/train2017")
    places = MiniPlaces(root / "miniplaces")
    n, side = 80, 128
    objects = [list(coco.iter_objects(o, n)) for o in BAM_OBJECTS]
    scenes = [[places.load(f) for f in places.files(s)[:n]] for s in BAM_SCENES]
    rng = np.random.default_rng(0)
    xs, yo, ys, idx = [], [], [], []
    for i in range(n):
        for p in rng.choice(100, 12, replace=False):
            o, s = divmod(int(p), 10)
            cut = objects[o][i]
            h, w = cut.mask.shape
            length = int(rng.integers(int(side / np.sqrt(3)), int(side / np.sqrt(2))))
            nh, nw = (length, max(1, w * length // h)) if h >= w else (max(1, h * length // w), length)
            rgba = Image.fromarray(np.dstack([cut.rgb, cut.mask.astype(np.uint8) * 255]), "RGBA")
            rgba = rgba.resize((nw, nh), Image.BILINEAR)
            scene = Image.fromarray(scenes[s][i])
            scene.paste(rgba, (int(rng.integers(0, side - nw)), int(rng.integers(0, side - nh))), rgba)
            xs.append(np.asarray(scene.resize((64, 64), Image.BILINEAR)))
            yo.append(o), ys.append(s), idx.append(i)
    x = torch.tensor(np.stack(xs)).permute(0, 3, 1, 2).float() / 255 - 0.5
    yo, ys = torch.tensor(yo), torch.tensor(ys)
    train = torch.tensor(np.array(idx) < 60)  # like BAM: val objects and scenes never seen in training
    torch.manual_seed(0)
    layers, c_in = [], 3
    for c_out in (32, 64, 96, 128):
        layers += [
            torch.nn.Conv2d(c_in, c_out, 3, padding=1),
            torch.nn.BatchNorm2d(c_out),
            torch.nn.ReLU(),
            torch.nn.MaxPool2d(2),
        ]
        c_in = c_out
    net = torch.nn.Sequential(
        *layers[:-1], torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(128, 20)
    )
    opt = torch.optim.Adam(net.parameters(), 2e-3)
    xt, ot, st = x[train], yo[train], ys[train]
    for _ in range(12):
        net.train()
        perm = torch.randperm(len(xt))
        for k in range(0, len(xt), 64):
            b = perm[k : k + 64]
            out = net(xt[b])
            loss = F.cross_entropy(out[:, :10], ot[b]) + F.cross_entropy(out[:, 10:], st[b])
            opt.zero_grad()
            loss.backward()
            opt.step()
    net.eval()
    with torch.no_grad():
        out = net(x[~train])
    acc_obj = (out[:, :10].argmax(1) == yo[~train]).float().mean().item()
    acc_scene = (out[:, 10:].argmax(1) == ys[~train]).float().mean().item()
    assert acc_scene > 0.9 and acc_obj > 0.5, (acc_obj, acc_scene)
