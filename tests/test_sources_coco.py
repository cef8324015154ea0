"""COCO object reader on real files through real pycocotools (docs/dataset.md#object-extraction)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from bamkit.classes import BAM_OBJECTS
from bamkit.errors import DataError
from bamkit.sources.coco import CocoObjects
from bamkit.sources.synth_coco import coco_plan, render_coco_image
from bamkit.testing.sources import cached_synth, write_coco_fixture

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # pycocotools' numpy-2 __array__ notice


@pytest.fixture(scope="module")
def fixture(tmp_path_factory):
    return write_coco_fixture(tmp_path_factory.mktemp("coco"))


@pytest.fixture()
def reader(fixture):
    return CocoObjects(fixture["annotations"], fixture["images"])


# -- instance choice ----------------------------------------------------------------------------------------
def test_largest_noncrowd_instance_per_image_in_sorted_id_order(reader, fixture):
    # image 101 has a 400-px crowd, a 256-px dog and a 36-px dog: the 256-px one is BAM's choice.
    assert reader.candidates("dog") == fixture["expected"]["dog"]
    assert reader.candidates("stop sign") == fixture["expected"]["stop sign"]
    # image 107 holds only a crowd: not a candidate, counted
    assert reader.skips.counts == {"crowd": 1}


def test_candidates_are_cached_and_skips_counted_once(reader):
    first = reader.candidates("dog")
    first.append((0, 0))  # the caller's copy, not the cache
    assert reader.candidates("dog")[-1] != (0, 0)
    assert reader.skips.total == 1


def test_min_area_filter_is_counted(fixture):
    r = CocoObjects(fixture["annotations"], fixture["images"], min_area=5)
    ids = [i for i, _ in r.candidates("dog")]
    assert 108 not in ids and len(ids) == len(fixture["expected"]["dog"]) - 1
    assert r.skips.counts["small"] == 1
    with pytest.raises(DataError, match="min_area"):
        CocoObjects(fixture["annotations"], fixture["images"], min_area=-1)


# -- decoding -------------------------------------------------------------------------------------------------
def test_polygon_instance_decodes_to_its_rectangle(reader, fixture):
    image_id, ann_id = fixture["expected"]["dog"][0]
    cut = reader.load(image_id, ann_id)
    # polygon x∈[4,20), y∈[6,22): the crop is exactly the 16×16 box and the mask fills it
    assert cut.mask.shape == (16, 16) and cut.mask.all() and cut.area == 256
    assert (cut.rgb == np.array([200, 120, 40], np.uint8)).all()
    assert cut.category == "dog" and cut.file_name == "rgb.png"


def test_compressed_rle_decodes_exactly_and_grayscale_becomes_rgb(reader, fixture):
    image_id, ann_id = fixture["expected"]["dog"][1]
    cut = reader.load(image_id, ann_id)
    x0, y0, x1, y1 = fixture["expected"]["rle_box"]
    assert cut.mask.shape == (y1 - y0, x1 - x0) and cut.mask.all()
    assert cut.rgb.shape == (y1 - y0, x1 - x0, 3) and cut.rgb.dtype == np.uint8
    assert np.abs(cut.rgb.astype(int) - 100).max() <= 2  # gray JPEG value 100 on all three channels


def test_box_running_past_the_edge_is_clipped_and_cmyk_becomes_rgb(reader, fixture):
    image_id, ann_id = fixture["expected"]["dog"][2]
    cut = reader.load(image_id, ann_id)
    y0, y1, x0, x1 = fixture["expected"]["clip_box"]
    assert cut.rgb.shape == (y1 - y0, x1 - x0, 3) and cut.mask.all()
    assert np.abs(cut.rgb.astype(int) - [255, 0, 0]).max() <= 3  # CMYK (0, 255, 255, 0) is red


def test_palette_rgba_and_16bit_images_come_out_rgb(reader, fixture):
    ((pid, pann),) = fixture["expected"]["stop sign"]
    cut = reader.load(pid, pann)
    assert (cut.rgb == np.array([10, 200, 30], np.uint8)).all()
    rgba = reader.load(*fixture["expected"]["dog"][3])
    assert (rgba.rgb == np.array([50, 60, 70], np.uint8)).all()  # alpha dropped, colour kept
    gray16 = reader.load(*fixture["expected"]["dog"][4])
    assert (gray16.rgb == 128).all()  # 32896 / 65535 * 255 = 128, not clipped to white


def test_each_kind_of_bad_file_is_skipped_and_counted(reader, fixture):
    cuts = list(reader.iter_objects("dog"))
    good = [p for p in fixture["expected"]["dog"] if p[0] < 109]
    assert [(c.image_id, c.ann_id) for c in cuts] == good
    for reason, n in fixture["expected"]["bad"].items():
        assert reader.skips.counts[reason] == n
    assert reader.skips.summary() == "skipped 4 source files: 1 crowd, 1 missing, 1 truncated, 1 unreadable"


def test_iter_objects_limit_counts_loaded_objects(reader, fixture):
    assert [c.image_id for c in reader.iter_objects("dog", limit=2)] == [101, 102]


def test_size_mismatch_between_json_and_file_is_skipped(tmp_path, fixture):
    data = json.loads(fixture["annotations"].read_text())
    for img in data["images"]:
        if img["id"] == 101:
            img["width"] = 41
    p = tmp_path / "a.json"
    p.write_text(json.dumps(data))
    r = CocoObjects(p, fixture["images"])
    assert r.load(*fixture["expected"]["dog"][0]) is None
    assert r.skips.counts == {"size_mismatch": 1}


# -- names and files ------------------------------------------------------------------------------------------
def test_stop_sign_resolves_and_stop_underscore_sign_suggests_it(reader):
    assert reader.resolve("stop sign") == 13
    with pytest.raises(DataError, match="did you mean 'stop sign'"):
        reader.resolve("stop_sign")
    with pytest.raises(DataError) as e:
        reader.resolve("zebra")
    assert "person, stop sign, dog" in str(e.value)  # the available names, in id order


def test_missing_corrupt_and_wrong_json_name_the_file(tmp_path, fixture):
    with pytest.raises(DataError, match="no file .*nope.json"):
        CocoObjects(tmp_path / "nope.json", fixture["images"])
    bad = tmp_path / "bad.json"
    bad.write_text('{"images": [')
    with pytest.raises(DataError, match="bad.json: not valid JSON"):
        CocoObjects(bad, fixture["images"])
    captions = tmp_path / "captions.json"
    captions.write_text(json.dumps({"images": [], "annotations": []}))
    with pytest.raises(DataError, match="missing key.*categories"):
        CocoObjects(captions, fixture["images"])
    with pytest.raises(DataError, match="no folder"):
        CocoObjects(fixture["annotations"], tmp_path / "no_images")


def test_unknown_ids_are_a_caller_error(reader):
    with pytest.raises(DataError, match="candidates"):
        reader.load(999, 1000)


# -- the synthetic tree: decoded masks match what was drawn ----------------------------------------------------
def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max((a | b).sum(), 1))


def test_synthetic_instances_decode_to_the_drawn_shapes_and_the_main_one_is_chosen():
    root = cached_synth("tiny", 0, 0)
    reader = CocoObjects(root / "coco/annotations/instances_train2017.json", root / "coco/train2017")
    plan = {image_id: (name, index) for image_id, name, index, _ in coco_plan("tiny", 0, 0)}
    crowd_larger = rle_seen = 0
    for category in BAM_OBJECTS:
        for image_id, ann_id in reader.candidates(category):
            name, index = plan[image_id]
            assert name == category
            drawn = render_coco_image(0, name, index)
            main = next(i for i in drawn.instances if i.role == "main")
            ann = reader.coco.anns[ann_id]
            decoded = reader.coco.annToMask(ann).astype(bool)
            if isinstance(ann["segmentation"], dict):  # compressed RLE: exact
                rle_seen += 1
                assert np.array_equal(decoded, main.mask)
            else:  # polygon rasterised by pycocotools vs PIL's fill of the same polygon
                assert _iou(decoded, main.mask) > 0.9
            crowds = [
                a
                for a in reader.coco.imgToAnns[image_id]
                if a["iscrowd"] and a["category_id"] == ann["category_id"]
            ]
            for c in crowds:
                assert isinstance(c["segmentation"]["counts"], list)  # uncompressed RLE, as real crowds
                crowd = next(i for i in drawn.instances if i.role == "crowd")
                assert np.array_equal(reader.coco.annToMask(c).astype(bool), crowd.mask)
                crowd_larger += c["area"] > ann["area"]
    assert rle_seen >= len(BAM_OBJECTS) and crowd_larger >= len(BAM_OBJECTS)


def test_synthetic_grayscale_jpegs_come_out_rgb():
    root = cached_synth("tiny", 0, 0)
    reader = CocoObjects(root / "coco/annotations/instances_train2017.json", root / "coco/train2017")
    gray = [
        (i, info)
        for i, info in reader.coco.imgs.items()
        if Image.open(root / "coco/train2017" / info["file_name"]).mode == "L"
    ]
    assert gray
    image_id, _ = gray[0]
    ann = max((a for a in reader.coco.imgToAnns[image_id] if not a["iscrowd"]), key=lambda a: a["area"])
    cut = reader.load(image_id, ann["id"])
    assert cut.rgb.ndim == 3 and cut.rgb.shape[2] == 3
    assert (cut.rgb[..., 0] == cut.rgb[..., 1]).all() and (cut.rgb[..., 1] == cut.rgb[..., 2]).all()
