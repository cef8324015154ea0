"""MiniPlaces / folder-per-class scene reader on real files (docs/dataset.md#classes-and-sources)."""

from __future__ import annotations

import re

import numpy as np
import pytest
from PIL import Image

from bamkit.classes import BAM_SCENES, MINIPLACES_IDS
from bamkit.errors import DataError
from bamkit.sources.miniplaces import MiniPlaces
from bamkit.testing.sources import cached_synth, write_not_image, write_scene_folders, write_truncated_jpeg


def test_official_layout_names_indices_and_files():
    root = cached_synth("tiny", 0, 0) / "miniplaces"
    mp = MiniPlaces(root)
    assert mp.layout == "miniplaces"
    names = mp.scene_names()
    assert set(BAM_SCENES) <= set(names) and "bakery/shop" in names  # nested names kept whole
    for scene in BAM_SCENES:
        assert mp.index(scene) == MINIPLACES_IDS[scene]
        files = mp.files(scene)
        assert len(files) == 12 and files == sorted(files)
        letter, *rest = files[0].relative_to(root / "images" / "train").parts
        assert letter == scene[0] and "/".join(rest[:-1]) == scene and re.fullmatch(r"\d{8}\.jpg", rest[-1])
    img = mp.load(mp.files("track/outdoor")[0])
    assert img.shape == (128, 128, 3) and img.dtype == np.uint8
    # the name as written in categories.txt also works
    assert mp.files("/t/track/outdoor") == mp.files("track/outdoor")


def test_val_split_reads_val_txt():
    root = cached_synth("tiny", 0, 0) / "miniplaces"
    val = MiniPlaces(root, "val")
    for scene in BAM_SCENES:
        files = val.files(scene)
        assert len(files) == 3
        assert all(f.parent == root / "images" / "val" for f in files)
    # every val image belongs to exactly one class
    all_files = [f for n in val.scene_names() for f in val.files(n)]
    assert len(all_files) == len(set(all_files)) == len((root / "val.txt").read_text().splitlines())


def test_each_kind_of_bad_file_is_skipped_and_counted():
    mp = MiniPlaces(cached_synth("tiny", 0, 1) / "miniplaces")
    loaded = [mp.load(f) for n in mp.scene_names() for f in mp.files(n)]
    assert sum(x is None for x in loaded) == 3
    assert mp.skips.counts == {"missing": 1, "truncated": 1, "unreadable": 1}
    assert mp.skips.summary() == "skipped 3 source files: 1 missing, 1 truncated, 1 unreadable"


def test_unknown_scene_lists_alternatives_close_matches_first():
    mp = MiniPlaces(cached_synth("tiny", 0, 0) / "miniplaces")
    with pytest.raises(DataError) as e:
        mp.files("bambo_forest")
    msg = str(e.value)
    assert "did you mean 'bamboo_forest'" in msg
    assert "available: bamboo_forest," in msg  # close matches first
    with pytest.raises(DataError, match="did you mean 'track/outdoor'"):
        mp.files("track")


def test_plain_folder_layout_with_nested_names(tmp_path):
    written = write_scene_folders(tmp_path, {"bamboo_forest": 3, "track/outdoor": 2, "bedroom": 1})
    mp = MiniPlaces(tmp_path)
    assert mp.layout == "folders" and mp.indices == {}
    assert mp.scene_names() == ["bamboo_forest", "bedroom", "track/outdoor"]
    assert mp.files("track/outdoor") == written["track/outdoor"]
    # files of different classes were not mixed: each class has its own flat colour
    colours = {n: tuple(mp.load(mp.files(n)[0])[8, 8]) for n in mp.scene_names()}
    assert len(set(colours.values())) == 3


def test_places_letter_level_and_split_folder(tmp_path):
    write_scene_folders(tmp_path / "train", {"bamboo_forest": 2, "track/outdoor": 2}, letters=True)
    write_scene_folders(tmp_path / "val", {"bamboo_forest": 1}, letters=True)
    assert MiniPlaces(tmp_path).scene_names() == ["bamboo_forest", "track/outdoor"]
    assert len(MiniPlaces(tmp_path, "val").files("bamboo_forest")) == 1


def test_official_layout_without_train_txt_scans_the_tree(tmp_path):
    (tmp_path / "categories.txt").write_text("/b/bamboo_forest 12\n/t/track/outdoor 95\n")
    write_scene_folders(tmp_path / "images" / "train", {"bamboo_forest": 2, "track/outdoor": 3}, letters=True)
    mp = MiniPlaces(tmp_path)
    assert len(mp.files("track/outdoor")) == 3 and mp.index("track/outdoor") == 95
    with pytest.raises(DataError, match="no val.txt"):
        MiniPlaces(tmp_path, "val")


def test_grayscale_and_cmyk_scenes_come_out_rgb(tmp_path):
    d = tmp_path / "scene"
    d.mkdir()
    Image.new("L", (8, 8), 77).save(d / "a.jpg", quality=95)
    Image.new("CMYK", (8, 8), (255, 0, 255, 0)).save(d / "b.jpg", quality=95)  # green
    mp = MiniPlaces(tmp_path)
    a, b = (mp.load(f) for f in mp.files("scene"))
    assert a.shape == b.shape == (8, 8, 3)
    assert np.abs(a.astype(int) - 77).max() <= 1
    assert np.abs(b.astype(int) - [0, 255, 0]).max() <= 3


def test_bad_files_in_plain_folders(tmp_path):
    write_scene_folders(tmp_path, {"bedroom": 1})
    write_truncated_jpeg(tmp_path / "bedroom" / "x_truncated.jpg")
    write_not_image(tmp_path / "bedroom" / "y_not_image.jpg")
    mp = MiniPlaces(tmp_path)
    assert [mp.load(f) is None for f in mp.files("bedroom")] == [False, True, True]
    assert mp.load(tmp_path / "bedroom" / "gone.jpg") is None
    assert mp.skips.counts == {"truncated": 1, "unreadable": 1, "missing": 1}


def test_neither_layout_or_bad_index_files_raise(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="categories.txt"):
        MiniPlaces(tmp_path / "empty")
    with pytest.raises(DataError, match="no folder"):
        MiniPlaces(tmp_path / "absent")
    with pytest.raises(DataError, match="split"):
        MiniPlaces(tmp_path / "empty", "test")
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "categories.txt").write_text("/b/bamboo_forest twelve\n")
    with pytest.raises(DataError, match=r"categories.txt:1"):
        MiniPlaces(bad)
    (bad / "categories.txt").write_text("/b/bamboo_forest 12\n")
    (bad / "train.txt").write_text("train/b/bamboo_forest/00000001.jpg 13\n")
    with pytest.raises(DataError, match="label 13 is not in categories.txt"):
        MiniPlaces(bad)
