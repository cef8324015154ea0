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
