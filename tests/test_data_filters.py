"""The scene-filter hook (off by default; a list or a user detector drops scenes that show BAM objects)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from bamkit.data.filters import DetectorFilter, ListFilter, SceneFilter, make_filter
from bamkit.data.recipe import SceneFilterSpec
from bamkit.errors import ConfigError, DataError
from bamkit.sources.miniplaces import MiniPlaces


@pytest.fixture
def scenes(tmp_path):
    root = tmp_path / "places"
    for name, colours in (
        ("bedroom", [(200, 0, 0), (0, 200, 0), (210, 10, 10)]),
        ("runway", [(0, 0, 90)] * 2),
    ):
        d = root / name
        d.mkdir(parents=True)
        for k, c in enumerate(colours):
            Image.fromarray(np.full((16, 16, 3), c, np.uint8)).save(d / f"{k:08d}.png")
    return MiniPlaces(root)


def test_default_keeps_everything(scenes, tmp_path):
    f = make_filter(SceneFilterSpec(), tmp_path, ["dog"])
    files = scenes.files("bedroom")
    assert type(f) is SceneFilter and f.keep("bedroom", files, scenes.load) == files


def test_list_filter_drops_named_files(scenes, tmp_path):
    files = scenes.files("bedroom")
    lst = tmp_path / "exclude.txt"
    lst.write_text(f"# scenes with a dog\nbedroom/{files[1].name}\n\n{files[2]}\n")
    f = make_filter(SceneFilterSpec(kind="list", exclude_list=lst), scenes.root, ["dog"])
    assert isinstance(f, ListFilter)
    assert f.keep("bedroom", files, scenes.load) == [files[0]]
    assert f.keep("runway", scenes.files("runway"), scenes.load) == scenes.files("runway")
    with pytest.raises(ConfigError, match="exclude_list"):
        ListFilter(tmp_path / "missing.txt", scenes.root)


def test_detector_filter_uses_user_callable(scenes):
    f = make_filter(
        SceneFilterSpec(kind="detector", detector="bamkit.testing.data:red_detector", threshold=0.5),
        scenes.root,
        ["dog", "bird"],
    )
    assert isinstance(f, DetectorFilter)
    files = scenes.files("bedroom")
    assert f.keep("bedroom", files, scenes.load) == [files[1]]  # the two red scenes are dropped
    assert f.describe()["detector"] == "bamkit.testing.data:red_detector"


def test_detector_errors(scenes):
    with pytest.raises(ConfigError, match="cannot import"):
        DetectorFilter("bamkit.nowhere:fn", ["dog"], 0.5)
    bad = DetectorFilter("bamkit.testing.data:red_detector", ["dog"], 0.5)
    bad.fn = lambda images, objects: np.zeros(len(images))  # a detector returning one score per image
    with pytest.raises(DataError, match="returned shape"):
        bad.keep("bedroom", scenes.files("bedroom"), scenes.load)


def test_detector_filter_records_what_it_removed(scenes):
    f = make_filter(
        SceneFilterSpec(kind="detector", detector="bamkit.testing.data:red_detector", threshold=0.5),
        scenes.root,
        ["dog", "bird"],
    )
    files = scenes.files("bedroom")
    f.keep("bedroom", files, scenes.load)
    d = f.describe()
    assert d["n_removed"] == 2 and [r["file"] for r in d["removed"]["bedroom"]] == [
        files[0].name,
        files[2].name,
    ]
    assert all(r["score"] >= 0.5 for r in d["removed"]["bedroom"])


def test_torchvision_filter_without_weights_is_off_and_says_how_to_turn_it_on(
    scenes, tmp_path, monkeypatch, caplog
):
    """``weights: auto`` with no cached weights: everything kept, one warning naming the file and the fix."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    f = make_filter(SceneFilterSpec(kind="torchvision"), scenes.root, ["dog"])
    files = scenes.files("bedroom")
    assert f.keep("bedroom", files, scenes.load) == files
    d = f.describe()
    assert d["kind"] == "torchvision" and d["active"] is False
    assert "fasterrcnn_resnet50_fpn_coco" in d["reason"] and "scene_filter.weights" in d["reason"]
    assert any("scene filter off" in r.getMessage() for r in caplog.records)
    with pytest.raises(ConfigError, match="scene_filter.weights: .*nope.pth.* is not a file"):
        make_filter(
            SceneFilterSpec(kind="torchvision", weights=str(tmp_path / "nope.pth")), scenes.root, ["dog"]
        )


def test_torchvision_detector_mechanism_with_planted_weights(scenes, tmp_path):
    """The real torchvision Faster R-CNN with planted weights: its box predictor always answers 'dog' with the
    score the image's red channel gives, so red scenes are removed and the rest kept (the score plumbing,
    COCO label mapping and threshold are what is tested; no download involved)."""
    import torch
    from torchvision.models.detection import fasterrcnn_resnet50_fpn

    from bamkit.data import detector as D

    net = fasterrcnn_resnet50_fpn(weights=None, weights_backbone=None, num_classes=91)
    path = tmp_path / "frcnn.pth"
    torch.save(net.state_dict(), path)
    det = D.TorchvisionDetector(path, min_size=64)
    dog = det.label_of("dog")
    assert det.categories[dog] == "dog" and dog == 18  # COCO id of dog

    class Planted(torch.nn.Module):
        def forward(self, images):
            return [
                {
                    "labels": torch.tensor([dog]),
                    "scores": torch.tensor([float(im[0].mean() > 0.5)]),
                    "boxes": torch.zeros(1, 4),
                }
                for im in images
            ]

    det.model = Planted()
    f = DetectorFilter("planted torchvision", ["dog", "bird"], 0.5, det)
    files = scenes.files("bedroom")
    assert f.keep("bedroom", files, scenes.load) == [files[1]]
    assert f.describe()["removed"]["bedroom"][0]["object"] == "dog"
    with pytest.raises(ConfigError, match="COCO has no category 'dragon'"):
        det.label_of("dragon")
