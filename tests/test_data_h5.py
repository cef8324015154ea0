"""The HDF5 schema, writer and reader (docs/design.md#the-dataset-file), against h5py's own reads."""

from __future__ import annotations

import multiprocessing
import pickle

import h5py
import numpy as np
import pytest

from bamkit.data import h5_write as h5w
from bamkit.data.h5 import FIELDS, BamFile
from bamkit.data.h5_write import open_for_append, write_set
from bamkit.errors import DataError


def _arrays(n, size=8, seed=0):
    rng = np.random.default_rng(seed)
    masks = rng.random((n, size, size)) > 0.5
    return {
        "images": rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8),
        "masks": masks,
        "boxes": np.tile(np.array([0, 0, size, size], np.int32), (n, 1)),
        "object_label": rng.integers(0, 2, n).astype(np.int64),  # other int dtypes are accepted when they fit
        "scene_label": np.zeros(n, np.int16),
        "split": (np.arange(n) >= n - 2).astype(np.uint8),
        "pair_index": np.arange(n, dtype=np.int32),
    }


@pytest.fixture
def empty_file(tmp_path):
    p = tmp_path / "d.h5"
    h5w.create_file(
        p, ["a", "b"], ["s"], 8, {"seed": 5, "recipe": "x: 1", "provenance": {"k": [1, 2]}}
    ).close()
    return p


def test_round_trip_and_dtypes(empty_file):
    arr = _arrays(11)
    with open_for_append(empty_file) as h5:
        write_set(h5, "commonality/k0.5", arr, attrs={"k": 0.5, "feature_scenes": ["s"]}, chunk_rows=4)
    with BamFile(empty_file) as bf:
        assert bf.sets() == ["commonality/k0.5"] and bf.has("commonality/k0.5") and not bf.has("obj_scene")
        assert (
            bf.object_classes == ["a", "b"]
            and bf.attrs["seed"] == 5
            and bf.attrs["provenance"] == {"k": [1, 2]}
        )
        v = bf["commonality/k0.5"]
        assert len(v) == 11 and v.attrs["feature_scenes"] == ["s"] and v.attrs["k"] == 0.5
        for k, dt in FIELDS.items():
            got = v.read(k)
            assert got.dtype == dt and (got == arr[k]).all()
        idx = np.array([7, 2, 7, 0])
        assert (v.read("images", idx) == arr["images"][idx]).all()
        assert (v.read("masks", 3) == arr["masks"][3]).all()
        assert (v.read("boxes", slice(2, 5)) == arr["boxes"][2:5]).all()
        assert v.read("split", np.arange(11) % 2 == 0).tolist() == arr["split"][::2].tolist()
    with h5py.File(empty_file) as f:  # the layout, read by h5py directly
        d = f["commonality/k0.5/images"]
        assert d.chunks == (4, 8, 8, 3) and d.compression is None  # images raw by default (bench/build.py)
        assert f["commonality/k0.5/masks"].compression == "gzip"


def test_write_set_replaces_and_validates(empty_file):
    with open_for_append(empty_file) as h5:
        write_set(h5, "x", _arrays(5))
        write_set(h5, "x", _arrays(3, seed=1))
        bad = _arrays(3)
        bad["object_label"] = np.array([0, 1, 40000])
        with pytest.raises(DataError, match="object_label"):
            write_set(h5, "y", bad)
        missing = _arrays(3)
        del missing["pair_index"]
        with pytest.raises(DataError, match="pair_index"):
            write_set(h5, "y", missing)
        wrong = _arrays(3, size=16)
        with pytest.raises(DataError, match="16 px"):
            write_set(h5, "y", wrong)
        short = _arrays(3)
        short["split"] = short["split"][:2]
        with pytest.raises(DataError, match="split"):
            write_set(h5, "y", short)
    with BamFile(empty_file) as bf:
        assert bf.sets() == ["x"] and len(bf["x"]) == 3
        assert (bf["x"].read("images") == _arrays(3, seed=1)["images"]).all()


def test_incomplete_set_is_invisible(empty_file):
    with open_for_append(empty_file) as h5:
        h5w.create_set(h5, "half", 4, 8)  # written but never marked complete (an interrupted writer)
    with BamFile(empty_file) as bf:
        assert bf.sets() == [] and not bf.has("half")
        with pytest.raises(DataError, match="not in"):
            bf["half"]


@pytest.mark.parametrize("compress_images", [False, True])
def test_direct_chunks_equal_normal_writes(tmp_path, compress_images):
    p = tmp_path / "c.h5"
    h5w.create_file(p, ["a", "b"], ["s"], 8, compress_images=compress_images).close()
    arr = _arrays(10)
    with open_for_append(p) as h5:
        g = h5w.create_set(h5, "direct", 10, 8, chunk_rows=4)
        for field in FIELDS:
            data = np.asarray(arr[field]).astype(FIELDS[field])
            for j in range(3):
                chunk = h5w.encode_chunk(data[j * 4 : (j + 1) * 4], 4, h5w.compressed(field, compress_images))
                h5w.write_chunk(g[field], j, chunk)
        h5w.mark_complete(g)
        assert (g["images"].compression == "gzip") == compress_images
    with BamFile(p) as bf:
        for field in FIELDS:
            assert (bf["direct"].read(field) == arr[field]).all()


def test_files_are_byte_reproducible(tmp_path):
    paths = []
    for name in ("a.h5", "b.h5"):
        p = tmp_path / name
        with h5w.create_file(p, ["a"], ["s"], 8, {"seed": 1}) as h5:
            write_set(h5, "obj_scene", _arrays(6), attrs={"n": 6})
        paths.append(p.read_bytes())
    assert paths[0] == paths[1]


def test_schema_and_missing_file_errors(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        BamFile(tmp_path / "nope.h5")
    (tmp_path / "t.txt").write_text("x")
    with pytest.raises(DataError, match="not an HDF5"):
        BamFile(tmp_path / "t.txt")
    p = tmp_path / "old.h5"
    with h5py.File(p, "w") as f:
        f.attrs["schema_version"] = 99
    with pytest.raises(DataError, match="schema_version 99"):
        BamFile(p)


def _read_in_child(bf_bytes):
    bf = pickle.loads(bf_bytes)
    return bf["s"].read("pair_index").tolist()


def test_bamfile_pickles_across_processes(empty_file):
    with open_for_append(empty_file) as h5:
        write_set(h5, "s", _arrays(5))
    bf = BamFile(empty_file)
    bf["s"].read("images", 0)  # open a handle in this process first
    blob = pickle.dumps(bf)
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        assert pool.apply(_read_in_child, (blob,)) == list(range(5))
    bf.close()
