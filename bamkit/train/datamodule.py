"""Lightning DataModule over one set of a BAM HDF5 file (docs/design.md#the-dataset-file; the split rule of docs/dataset.md#splits).

Reading pattern. HDF5 stores each set in compressed chunks of ``chunk_rows`` rows, so reading rows one by one in
a random order decodes every chunk once per row. Instead the sampler shuffles *chunk-aligned blocks*, mixes the
rows of ``shuffle_blocks`` consecutive blocks in a window and cuts batches from it; a batch is one dataset item
(``batch_size=None`` in the loader), read with one contiguous slice per block through a bounded per-process
block cache. Each process opens the file itself (:class:`bamkit.data.h5.BamFile` re-opens after fork/spawn),
so no h5py handle crosses a process boundary.

Determinism. Batch composition depends only on ``(seed, epoch)`` and the augmentation of a batch only on
``(seed, epoch, batch number)``, never on the worker count or on which rank reads it; across ranks the batch list
is split like ``DistributedSampler`` (padded by repetition so every rank takes the same number of steps).

Preprocessing. Training: albumentations ``Resize`` to the model side (cv2 ``INTER_LINEAR``: bilinear, half-pixel
centres, no antialiasing) and ``HorizontalFlip`` on uint8 HWC, then ImageNet normalisation. Validation and every
later stage use :class:`bamkit.preprocess.Preprocess` (torch bilinear, ``align_corners=False``, no antialiasing):
the same interpolation, up to the uint8 rounding of albumentations' output (≤ 0.5/255).
"""

from __future__ import annotations

import collections
from collections.abc import Iterator

import cv2
import h5py
import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from bamkit.classes import LABEL_FIELDS
from bamkit.data.h5 import SPLIT_TRAIN, SPLIT_VAL, BamFile
from bamkit.errors import ConfigError, DataError
from bamkit.preprocess import Preprocess


def chunk_rows_of(path: str, set_name: str, default: int = 64) -> int:
    """Rows per HDF5 chunk of a set's images (the natural read unit); ``default`` if unchunked."""
    with h5py.File(path, "r") as f:
        chunks = f[set_name]["images"].chunks
    return int(chunks[0]) if chunks else default


class BlockShuffleSampler(Sampler):
    """Yields ``(rows, batch_seed)`` keys: sorted row indices of one batch and its augmentation seed.

    Args:
        rows: (n,) increasing row indices of the split in the set.
        batch_size: rows per batch.
        block_rows: rows per HDF5 chunk; blocks are ``row // block_rows``.
        shuffle: shuffle blocks and rows within windows (training); otherwise sequential batches.
        shuffle_blocks: blocks per shuffle window (0 = all: a full shuffle).
        seed: base seed; the order of epoch ``e`` comes from ``(seed, e)``.
        drop_last: drop a final partial batch (training keeps BatchNorm statistics sane).
        num_replicas, rank: split the batches across processes like ``DistributedSampler``.
        pad: repeat batches so every rank has the same count (needed for training under DDP).
    """

    def __init__(
        self,
        rows: np.ndarray,
        batch_size: int,
        block_rows: int,
        shuffle: bool,
        shuffle_blocks: int = 64,
        seed: int = 0,
        drop_last: bool = False,
        num_replicas: int = 1,
        rank: int = 0,
        pad: bool = True,
    ) -> None:
        if not 0 <= rank < num_replicas:
            raise ValueError(f"rank {rank} is not in [0, {num_replicas})")
        self.rows = np.asarray(rows, dtype=np.int64)
        self.batch_size, self.block_rows = int(batch_size), int(block_rows)
        self.shuffle, self.shuffle_blocks, self.seed = shuffle, int(shuffle_blocks), int(seed)
        self.drop_last = drop_last and len(self.rows) >= batch_size
        self.num_replicas, self.rank, self.pad = int(num_replicas), int(rank), pad
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Lightning calls this at the start of every epoch."""
        self.epoch = int(epoch)

    def _order(self) -> np.ndarray:
        if not self.shuffle:
            return self.rows
        rng = np.random.default_rng([self.seed, self.epoch])
        block_of = self.rows // self.block_rows
        starts = np.flatnonzero(np.r_[True, block_of[1:] != block_of[:-1]])
        blocks = np.split(self.rows, starts[1:])
        perm = rng.permutation(len(blocks))
        out = []
        step = self.shuffle_blocks or len(perm)
        for w in range(0, len(perm), step):
            window = np.concatenate([blocks[i] for i in perm[w : w + step]])
            out.append(rng.permutation(window))
        return np.concatenate(out) if out else self.rows[:0]

    def batches(self) -> list[np.ndarray]:
        """Every batch of this epoch, all ranks (global batch number = list position)."""
        order = self._order()
        n = len(order)
        stop = n - n % self.batch_size if self.drop_last else n
        return [order[i : i + self.batch_size] for i in range(0, stop, self.batch_size)]

    def _mine(self) -> list[tuple[int, np.ndarray]]:
        allb = list(enumerate(self.batches()))
        if self.num_replicas > 1 and self.pad and allb:
            per = -(-len(allb) // self.num_replicas)
            allb = (allb * (-(-per * self.num_replicas // len(allb))))[: per * self.num_replicas]
        return allb[self.rank :: self.num_replicas]

    def __iter__(self) -> Iterator[tuple[np.ndarray, int]]:
        for i, b in self._mine():
            # The seed depends on the global batch number only: same flips whatever worker/rank reads it.
            bseed = int(np.random.SeedSequence([self.seed, self.epoch, i]).generate_state(1)[0])
            yield np.sort(b), bseed

    def __len__(self) -> int:
        return len(self._mine())


class BatchTransform:
    """uint8 (B, H, W, 3) -> normalised float (B, 3, S, S); train-time augmentation seeded per batch."""

    def __init__(self, pre: Preprocess, train: bool, hflip: bool = True, on_device: bool = False) -> None:
        self.pre = pre
        self.train = train
        self.hflip = hflip
        self.on_device = on_device
        self._aug = None

    def _compose(self):
        if self._aug is None:
            import albumentations as A

            ops = [A.Resize(self.pre.input_size, self.pre.input_size, interpolation=cv2.INTER_LINEAR)]
            if self.hflip:
                ops.append(A.HorizontalFlip(p=0.5))
            self._aug = A.Compose(ops)
        return self._aug

    def __call__(self, images: np.ndarray, seed: int) -> torch.Tensor:
        if self.on_device:
            # Only the cheap part here (a seeded flip of the stored uint8 pixels); resizing and normalising
            # happen on the accelerator after transfer (BamDataModule.on_after_batch_transfer), which moves
            # 128-px uint8 instead of 224-px float32 and keeps the loader off the critical path on a GPU.
            if self.train and self.hflip:
                flip = np.random.default_rng(seed).random(len(images)) < 0.5
                images = images.copy()
                images[flip] = images[flip, :, ::-1]
            return torch.from_numpy(np.ascontiguousarray(images))
        if not self.train:
            return self.pre(torch.from_numpy(np.ascontiguousarray(images)))
        aug = self._compose()
        aug.set_random_seed(seed)
        out = np.stack([aug(image=im)["image"] for im in images])
        return self.pre.normalize(torch.from_numpy(out).permute(0, 3, 1, 2).float().div_(255.0))


class BamBatchDataset(Dataset):
    """Items are whole batches: ``ds[(rows, seed)] -> (x (B,3,S,S) float, y (B,) long)``.

    Args:
        bf: the (picklable) dataset file.
        set_name: the set to read.
        labels: (N,) int labels of every row of the set.
        block_rows: rows per read block (the chunk height).
        transform: the batch transform.
        cache_mb: bound of this process's decoded-block cache.
    """

    def __init__(
        self,
        bf: BamFile,
        set_name: str,
        labels: np.ndarray,
        block_rows: int,
        transform: BatchTransform,
        cache_mb: int = 1024,
    ) -> None:
        self.bf, self.set_name = bf, set_name
        self.labels = torch.from_numpy(labels.astype(np.int64))
        self.block_rows, self.transform = block_rows, transform
        self.cache_bytes = int(cache_mb) << 20
        self._cache: collections.OrderedDict[int, np.ndarray] = collections.OrderedDict()
        self._cached = 0
        self._n = len(labels)

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_cache"], state["_cached"] = collections.OrderedDict(), 0  # each process fills its own
        return state

    def _block(self, b: int) -> np.ndarray:
        hit = self._cache.get(b)
        if hit is not None:
            self._cache.move_to_end(b)
            return hit
        lo = b * self.block_rows
        arr = self.bf[self.set_name].read("images", slice(lo, min(lo + self.block_rows, self._n)))
        self._cache[b] = arr
        self._cached += arr.nbytes
        while self._cached > self.cache_bytes and len(self._cache) > 1:
            _, old = self._cache.popitem(last=False)
            self._cached -= old.nbytes
        return arr

    def images(self, rows: np.ndarray) -> np.ndarray:
        """uint8 (B, H, W, 3) for increasing ``rows``, one contiguous read per block touched."""
        blocks = rows // self.block_rows
        parts = [self._block(int(b))[rows[blocks == b] - b * self.block_rows] for b in np.unique(blocks)]
        return np.concatenate(parts)

    def __getitem__(self, key: tuple[np.ndarray, int]) -> tuple[torch.Tensor, torch.Tensor]:
        rows, seed = key
        return self.transform(self.images(rows), seed), self.labels[torch.from_numpy(rows)]

    def __len__(self) -> int:  # batches are addressed by key; kept for tools that ask
        return self._n


class BamDataModule(pl.LightningDataModule):
    """Train/val batches of one BAM set with the labels of one field.

    Args:
        path: the HDF5 dataset file.
        train_set: set name (``obj_scene``, ``scene_only``, ``commonality/k0.3`` …).
        label_field: ``object_label`` or ``scene_label``.
        input_size: model input side.
        batch_size: rows per batch per process.
        num_workers: loader processes (0 = in the training process).
        hflip: random horizontal flip at train time.
        seed: shuffling/augmentation seed.
        shuffle_blocks: chunks per shuffle window; 0 = as many as ``cache_mb`` holds (a full shuffle when
            the set fits).
        cache_mb: bound of each process's decoded-chunk cache (see :class:`bamkit.train.config.DataConfig`).
        val_max_images: validate on a seeded sample (``seed``) of this many validation rows, in stored order;
            ``None`` = all.
        device_transforms: resize + normalise on the training device after transfer (uint8 batches leave the
            loader); ``None`` = on when training on CUDA, where the CPU-side albumentations resize to 224 px
            made the loader the bottleneck (0.54x of in-memory throughput on an H100).
    """

    def __init__(
        self,
        path: str,
        train_set: str = "obj_scene",
        label_field: str = "scene_label",
        input_size: int = 224,
        batch_size: int = 64,
        num_workers: int = 0,
        hflip: bool = True,
        seed: int = 0,
        shuffle_blocks: int = 0,
        cache_mb: int = 1024,
        val_max_images: int | None = None,
        device_transforms: bool | None = None,
        preprocess: Preprocess | None = None,
    ) -> None:
        super().__init__()
        self.device_transforms = device_transforms
        self._pre = preprocess if preprocess is not None else Preprocess(input_size)
        if self._pre.input_size != input_size:
            raise ConfigError(f"preprocess.input_size {self._pre.input_size} != input_size {input_size}")
        if label_field not in LABEL_FIELDS:
            raise ConfigError(f"label_field must be one of {', '.join(LABEL_FIELDS)}, got {label_field!r}")
        self.path, self.train_set, self.label_field = str(path), train_set, label_field
        self.input_size, self.batch_size, self.num_workers = input_size, batch_size, num_workers
        self.hflip, self.seed, self.shuffle_blocks, self.cache_mb = hflip, seed, shuffle_blocks, cache_mb
        self.bf = BamFile(self.path)
        view = self.bf[train_set]  # DataError naming the sets present if missing
        self.class_names: list[str] = list(
            self.bf.object_classes if label_field == "object_label" else self.bf.scene_classes
        )
        self.labels = view.read(label_field).astype(np.int64)
        split = view.read("split")
        self.train_rows = np.flatnonzero(split == SPLIT_TRAIN)
        self.val_rows = np.flatnonzero(split == SPLIT_VAL)
        if len(self.train_rows) == 0:
            raise DataError(f"set {train_set!r} of {self.path!r} has no training rows (split == 0)")
        used = self.labels[np.r_[self.train_rows, self.val_rows]]
        if used.min() < 0 or used.max() >= len(self.class_names):
            raise DataError(
                f"set {train_set!r} has {label_field} values outside [0, {len(self.class_names)}) "
                f"(min {used.min()}, max {used.max()}); does this set carry {label_field}s?"
            )
        if val_max_images is not None and val_max_images < len(self.val_rows):
            # a seeded sample across every class (rows are stored sorted by class), sorted back into stored order
            # so that whole chunks are read
            pick = np.random.default_rng(seed).choice(len(self.val_rows), val_max_images, replace=False)
            self.val_rows = self.val_rows[np.sort(pick)]
        self.block_rows = chunk_rows_of(self.path, train_set)
        if shuffle_blocks == 0:
            # As many chunks per shuffle window as the block cache holds (all of them when the set fits).
            block_bytes = self.block_rows * int(np.prod(view.read("images", slice(0, 1)).shape[1:]))
            self.shuffle_blocks = max(1, (int(cache_mb) << 20) // max(1, block_bytes))

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def _rank(self) -> tuple[int, int]:
        t = getattr(self, "trainer", None)
        return (int(t.world_size), int(t.global_rank)) if t is not None else (1, 0)

    def _sampler(self, rows: np.ndarray, train: bool) -> BlockShuffleSampler:
        world, rank = self._rank()
        return BlockShuffleSampler(
            rows,
            self.batch_size,
            self.block_rows,
            shuffle=train,
            shuffle_blocks=self.shuffle_blocks,
            seed=self.seed,
            drop_last=train,
            num_replicas=world,
            rank=rank,
            pad=train,
        )

    def _on_cuda(self) -> bool:
        t = getattr(self, "trainer", None)
        return t is not None and type(t.accelerator).__name__ == "CUDAAccelerator"

    def _device_side(self) -> bool:
        return self._on_cuda() if self.device_transforms is None else bool(self.device_transforms)

    def on_after_batch_transfer(self, batch, dataloader_idx: int):
        x, y = batch
        if x.dtype == torch.uint8:  # device-side transforms: same bilinear resize + normalisation as eval
            x = self._pre(x)
        return x, y

    def _loader(self, rows: np.ndarray, train: bool) -> DataLoader:
        ds = BamBatchDataset(
            self.bf,
            self.train_set,
            self.labels,
            self.block_rows,
            BatchTransform(self._pre, train=train, hflip=self.hflip, on_device=self._device_side()),
            self.cache_mb,
        )
        pin = self._on_cuda()
        return DataLoader(
            ds,
            sampler=self._sampler(rows, train),
            batch_size=None,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            pin_memory=pin,
            prefetch_factor=4 if self.num_workers > 0 else None,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_rows, train=True)

    def val_dataloader(self) -> DataLoader | list:
        return self._loader(self.val_rows, train=False) if len(self.val_rows) else []
