"""The attribution cache: round trip, append-only resume after a killed write, several writer files."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from bamkit.evaluate.cache import AttributionCache, group_name


def _rows(rng, rows):
    n = len(rows)
    return dict(
        maps=rng.random((n, 6, 5)).astype(np.float32),
        prediction=np.arange(n),
        target=np.arange(n) + 1,
        logit=rng.random(n).astype(np.float32),
        flag=np.arange(n) % 2 == 0,
    )


def test_round_trip_in_any_row_order(tmp_path):
    rng = np.random.default_rng(0)
    rows = np.array([7, 3, 11, 0])
    d = _rows(rng, rows)
    with AttributionCache(tmp_path) as c:
        c.write("abc", "obj_scene", "vg-1", "bam", rows, **d)
    with AttributionCache(tmp_path) as c:
        assert c.present("abc", "obj_scene", "vg-1", "bam", np.array([0, 1, 3])).tolist() == [
            True,
            False,
            True,
        ]
        q = np.array([11, 0, 7])
        e = c.read("abc", "obj_scene", "vg-1", "bam", q)
        pos = [2, 3, 0]
        np.testing.assert_array_equal(e.maps, d["maps"][pos].astype(np.float16).astype(np.float32))
        np.testing.assert_array_equal(e.target, d["target"][pos])
        np.testing.assert_array_equal(e.flag, d["flag"][pos])
        with pytest.raises(KeyError):
            c.read("abc", "obj_scene", "vg-1", "bam", np.array([1]))
        # other keys are separate
        assert not c.present("abc", "obj_scene", "vg-1", "abs_minmax", q).any()


def test_rows_past_n_done_are_ignored_and_overwritten(tmp_path):
    """A kill after writing rows but before advancing n_done loses only that chunk."""
    rng = np.random.default_rng(1)
    with AttributionCache(tmp_path) as c:
        c.write("m", "s", "k", "bam", np.array([0, 1]), **_rows(rng, [0, 1]))
    name = group_name("m", "s", "k", "bam")
    with h5py.File(tmp_path / "main.h5", "a") as f:  # simulate the killed write: data without the done mark
        g = f[name]
        for key in g:
            g[key].resize(4, axis=0)
        g["row"][2:4] = [5, 6]
    with AttributionCache(tmp_path) as c:
        assert c.present("m", "s", "k", "bam", np.array([0, 1, 5, 6])).tolist() == [True, True, False, False]
        d = _rows(rng, [9])
        c.write("m", "s", "k", "bam", np.array([9]), **d)
    with h5py.File(tmp_path / "main.h5", "r") as f:
        assert f[name].attrs["n_done"] == 3 and f[name]["row"].shape[0] == 3
    with AttributionCache(tmp_path) as c:
        np.testing.assert_allclose(c.read("m", "s", "k", "bam", np.array([9])).maps, d["maps"], atol=1e-3)


def test_reads_across_writer_files_but_skips_concurrent_ones(tmp_path):
    rng = np.random.default_rng(2)
    with AttributionCache(tmp_path, "shard0of2") as c:
        c.write("m", "s", "k", "bam", np.array([0, 2]), **_rows(rng, [0, 2]))
    with AttributionCache(tmp_path, "shard1of2") as c:
        c.write("m", "s", "k", "bam", np.array([1, 3]), **_rows(rng, [1, 3]))
    with AttributionCache(tmp_path, "main") as c:
        assert c.present("m", "s", "k", "bam", np.arange(4)).all()
        assert c.read("m", "s", "k", "bam", np.array([3, 0])).prediction.tolist() == [1, 0]
    with AttributionCache(tmp_path, "main", concurrent=("shard1of2",)) as c:
        assert c.present("m", "s", "k", "bam", np.arange(4)).tolist() == [True, False, True, False]


def test_a_corrupt_writer_file_is_moved_aside(tmp_path):
    (tmp_path / "main.h5").write_bytes(b"not an hdf5 file")
    with AttributionCache(tmp_path) as c:
        assert not c.present("m", "s", "k", "bam", np.array([0])).any()
    assert (tmp_path / "main.h5.corrupt").is_file()
