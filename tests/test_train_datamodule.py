"""The HDF5 DataModule: labels/splits, determinism, rank split, augmentation and chunk-wise reading."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bamkit.data.h5 import BamFile
from bamkit.errors import DataError
from bamkit.preprocess import Preprocess
from bamkit.testing.train import write_tiny_bam
from bamkit.train.datamodule import BamDataModule, BlockShuffleSampler

SIZE = 16


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return write_tiny_bam(
        tmp_path_factory.mktemp("dm") / "tiny.h5", size=SIZE, per_pair=4, k_values=(0.5,), per_scene_k=4
    )


def _dm(path, **kw) -> BamDataModule:
    args = {
        "train_set": "obj_scene",
        "label_field": "object_label",
        "input_size": SIZE,
        "batch_size": 24,
        "num_workers": 0,
        "seed": 3,
        "shuffle_blocks": 2,
    }
    return BamDataModule(str(path), **{**args, **kw})


def _epoch(loader, epoch: int = 0):
    loader.sampler.set_epoch(epoch)
    return [(x.clone(), y.clone()) for x, y in loader]


def test_batches_carry_the_split_and_labels_of_the_file(tiny):
    dm = _dm(tiny)
    with BamFile(tiny) as bf:
        v = bf["obj_scene"]
        split, labels, images = v.read("split"), v.read("object_label"), v.read("images")
    sampler = dm.train_dataloader().sampler
    rows = np.concatenate([r for r, _ in sampler])
    # drop_last: every full batch of the epoch, each training row at most once, no validation row.
    assert len(rows) == len(dm.train_rows) // 24 * 24 and len(np.unique(rows)) == len(rows)
    assert (split[rows] == 0).all()
    val = dm.val_dataloader()
    vx, vy = zip(*list(val))
    assert torch.cat(vy).tolist() == labels[split == 1].tolist()
    # Validation uses exactly the evaluation preprocessing of later stages.
    torch.testing.assert_close(
        torch.cat(vx), Preprocess(SIZE)(torch.from_numpy(images[split == 1])), rtol=0, atol=0
    )
    assert dm.class_names[2] == "dog" and dm.num_classes == 10


def test_train_images_are_the_stored_ones_or_their_mirror(tiny):
    """Only resize + horizontal flip: each augmented image equals the stored image or its mirror image."""
    dm = _dm(tiny, batch_size=40)
    with BamFile(tiny) as bf:
        images = torch.from_numpy(bf["obj_scene"].read("images"))
    pre = Preprocess(SIZE)
    flips = []
    key = next(iter(dm.train_dataloader().sampler))
    x, y = dm.train_dataloader().dataset[key]
    ref = pre(images[torch.from_numpy(key[0])])
    for a, b in zip(x, ref):
        if torch.allclose(a, b, atol=1e-6):
            flips.append(False)
        else:
            torch.testing.assert_close(a, b.flip(-1), rtol=0, atol=1e-6)
            flips.append(True)
    assert 5 < sum(flips) < 35  # p = 0.5 flips on 40 images


def test_same_seed_same_batches_whatever_the_worker_count(tiny):
    a = _epoch(_dm(tiny).train_dataloader(), epoch=1)
    b = _epoch(_dm(tiny, num_workers=2).train_dataloader(), epoch=1)
    assert len(a) == len(b) > 3
    for (xa, ya), (xb, yb) in zip(a, b):
        torch.testing.assert_close(xa, xb, rtol=0, atol=0)
        assert torch.equal(ya, yb)
    c = _epoch(_dm(tiny, seed=4).train_dataloader(), epoch=1)
    d = _epoch(_dm(tiny).train_dataloader(), epoch=2)
    assert not torch.equal(a[0][1], c[0][1]) and not torch.equal(a[0][1], d[0][1])


def test_sampler_splits_batches_across_ranks_like_distributed_sampler():
    rows = np.arange(3, 203)
    full = BlockShuffleSampler(rows, 16, 8, shuffle=True, seed=1, drop_last=True)
    full.set_epoch(5)
    every = [tuple(r) for r, _ in full]
    parts = []
    for rank in range(3):
        s = BlockShuffleSampler(rows, 16, 8, shuffle=True, seed=1, drop_last=True, num_replicas=3, rank=rank)
        s.set_epoch(5)
        parts.append([(tuple(r), seed) for r, seed in s])
    assert len({len(p) for p in parts}) == 1  # equal step counts: no DDP hang
    got = [r for p in parts for r, _ in p]
    assert set(got) == set(every)  # every batch is trained on; padding only repeats batches
    assert len(got) == -(-len(every) // 3) * 3
    # The augmentation seed belongs to the batch, not to the rank that reads it.
    seeds = {r: sd for p in parts for r, sd in p}
    assert seeds == {tuple(r): sd for r, sd in full}


def test_block_shuffle_mixes_within_windows_only():
    rows = np.arange(64)
    s = BlockShuffleSampler(rows, 8, block_rows=8, shuffle=True, shuffle_blocks=2, seed=0)
    order = s._order()
    assert sorted(order.tolist()) == rows.tolist() and not np.array_equal(order, rows)
    # Each consecutive 16 rows come from exactly two chunk-aligned blocks.
    for w in range(4):
        assert len(np.unique(order[16 * w : 16 * (w + 1)] // 8)) == 2


def test_chunked_reading_equals_direct_reading(tiny):
    dm = _dm(tiny)
    ds = dm.train_dataloader().dataset
    rng = np.random.default_rng(0)
    with BamFile(tiny) as bf:
        v = bf["obj_scene"]
        for _ in range(3):
            rows = np.sort(rng.choice(len(v), 30, replace=False))
            np.testing.assert_array_equal(ds.images(rows), v.read("images", rows))


def test_missing_labels_and_sets_are_one_line_errors(tiny):
    with pytest.raises(DataError, match="object_label values outside"):
        _dm(tiny, train_set="scene_only")
    with pytest.raises(DataError, match="set 'nope' is not in"):
        _dm(tiny, train_set="nope")


def test_device_side_transforms_equal_the_evaluation_preprocessing(tiny):
    """With device_transforms the loader yields stored uint8 (flipped or not) and the DataModule's
    on_after_batch_transfer applies exactly bamkit.preprocess.Preprocess (here with a real resize)."""
    side = 2 * SIZE
    dm = _dm(tiny, batch_size=40, input_size=side, device_transforms=True)
    with BamFile(tiny) as bf:
        images = torch.from_numpy(bf["obj_scene"].read("images"))
    pre = Preprocess(side)
    key = next(iter(dm.train_dataloader().sampler))
    raw, y = dm.train_dataloader().dataset[key]
    assert raw.dtype == torch.uint8 and raw.shape[1:] == images.shape[1:]
    x, y2 = dm.on_after_batch_transfer((raw, y), 0)
    assert torch.equal(y, y2) and x.shape == (40, 3, side, side)
    stored = images[torch.from_numpy(key[0])]
    flips = []
    for a, s in zip(x, stored):
        same = pre(s[None])[0]
        if torch.allclose(a, same, atol=1e-6):
            flips.append(False)
        else:
            torch.testing.assert_close(a, pre(s.flip(1)[None])[0], rtol=0, atol=1e-6)
            flips.append(True)
    assert 5 < sum(flips) < 35
    # validation: no flip, identical to the evaluation preprocessing
    vx = [dm.on_after_batch_transfer(b, 0)[0] for b in dm.val_dataloader()]
    with BamFile(tiny) as bf:
        split = bf["obj_scene"].read("split")
    torch.testing.assert_close(torch.cat(vx), pre(images[torch.from_numpy(split == 1)]), rtol=0, atol=0)


def test_val_max_images_validates_on_a_seeded_sample_of_the_validation_rows(tiny):
    full = _dm(tiny)
    with BamFile(tiny) as bf:
        v = bf["obj_scene"]
        labels, images = v.read("object_label"), v.read("images")
    n = len(full.val_rows) // 3
    dm = _dm(tiny, val_max_images=n)
    rows = dm.val_rows
    # n distinct validation rows in stored order, drawn across the file (not its first n: rows are sorted by
    # class), the same for the same seed and another for another seed
    assert len(rows) == n and np.all(np.diff(rows) > 0) and np.isin(rows, full.val_rows).all()
    assert not np.array_equal(rows, full.val_rows[:n])
    assert len(np.unique(labels[rows])) > len(np.unique(labels[full.val_rows[:n]]))
    assert np.array_equal(_dm(tiny, val_max_images=n).val_rows, rows)
    assert not np.array_equal(_dm(tiny, val_max_images=n, seed=4).val_rows, rows)
    vx, vy = zip(*list(dm.val_dataloader()))
    assert torch.cat(vy).tolist() == labels[rows].tolist()
    torch.testing.assert_close(
        torch.cat(vx), Preprocess(SIZE)(torch.from_numpy(images[rows])), rtol=0, atol=0
    )
    # more than there are: every validation row
    assert np.array_equal(_dm(tiny, val_max_images=10**6).val_rows, full.val_rows)
