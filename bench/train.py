"""Training throughput: the HDF5 loader against the same model fed from device memory, and the loader alone.

The loader must not be the bottleneck: (train step fed by the HDF5 DataModule) / (train step on tensors already
on the device, the raw training step) should be ≥ 0.95 on a GPU. It also projects the paper's training time: the
13 models of ``train/all.yaml`` over their epochs on the sets ``data_recipes/bam.yaml`` builds, at the measured
HDF5-fed rate (validation passes counted at one third of a training step: forward only). Run on a GPU with the
paper's settings (bf16 autocast and channels_last, as ``trainer.precision``/``channels_last: auto`` choose there)::

    .venv/bin/python bench/train.py --device cuda --arch resnet50 --size 224 --stored 128 --workers 8 --channels-last

    .venv/bin/python bench/train.py --device cuda --arch resnet50 --size 224 --stored 128 --workers 8
    .venv/bin/python bench/train.py --device cpu --arch small_cnn --size 64 --stored 64 --workers 2

Without ``--data`` a synthetic BAM-layout file is written first (``bamkit.testing.train.write_tiny_bam``).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from bamkit.models import build_network
from bamkit.train.datamodule import BamDataModule


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def loader_rate(dm: BamDataModule, batches: int) -> float:
    """Images per second the train loader delivers (no model), after one warm-up batch."""
    it = iter(dm.train_dataloader())
    next(it)
    n, t0 = 0, time.perf_counter()
    for _ in range(batches):
        try:
            x, _ = next(it)
        except StopIteration:
            it = iter(dm.train_dataloader())
            x, _ = next(it)
        n += len(x)
    return n / (time.perf_counter() - t0)


def train_rate(
    model: torch.nn.Module,
    batches,
    steps: int,
    device: torch.device,
    bf16: bool,
    channels_last: bool,
    post=None,
) -> float:
    """Images per second of full SGD steps (forward, backward, update) fed by ``batches``."""
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    model.train()
    n = 0
    t0 = None
    for i in range(steps + 3):  # 3 warm-up steps (cuDNN autotune, allocator, worker start)
        if i == 3:
            _sync(device)
            t0, n = time.perf_counter(), 0
        x, y = next(batches)
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        if post is not None:  # the DataModule's device-side transforms, as Lightning applies them
            x, y = post((x, y), 0)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        n += len(y)
    _sync(device)
    return n / (time.perf_counter() - t0)


def _cycle(dm: BamDataModule):
    # One DataLoader for all epochs, as Lightning uses it: persistent workers keep their chunk caches.
    dl = dm.train_dataloader()
    epoch = 0
    while True:
        dl.sampler.set_epoch(epoch)
        yield from dl
        epoch += 1


def _memory(batch: int, size: int, classes: int, device: torch.device):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(batch, 3, size, size, generator=g).to(device)
    y = torch.randint(0, classes, (batch,), generator=g).to(device)
    while True:
        yield x, y


def paper_training_images() -> tuple[int, int]:
    """(training, validation) images the paper's 13 models see over all their epochs, from the shipped recipe
    (set sizes and split) and training configs (which set, how many epochs): one source for both."""
    from bamkit.data.plan import make_plan
    from bamkit.data.recipe import load_recipe
    from bamkit.paths import shipped
    from bamkit.train.config import load_configs

    recipe = load_recipe(shipped("data_recipes/bam.yaml"))
    rows = {s: g.n_rows for g in make_plan(recipe).groups for s in g.sets}
    val_share = recipe.n_val / recipe.images_per_pair
    train = val = 0
    for cfg, _ in load_configs(shipped("train/all.yaml")):
        n = rows[cfg.data.train_set]
        train += round(n * (1 - val_share)) * cfg.trainer.max_epochs
        val += round(n * val_share) * cfg.trainer.max_epochs
    return train, val


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cpu")
    p.add_argument("--arch", default="small_cnn", choices=("small_cnn", "resnet18", "resnet50"))
    p.add_argument("--size", type=int, default=64, help="model input side")
    p.add_argument("--stored", type=int, default=64, help="stored image side of the synthetic file")
    p.add_argument("--per-pair", type=int, default=20, help="synthetic images per (object, scene) pair")
    p.add_argument("--data", help="an existing BAM .h5 (default: write a synthetic one)")
    p.add_argument("--set", default="obj_scene")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--width", type=int, default=16, help="small_cnn width")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = leave as is)")
    p.add_argument("--channels-last", action="store_true")
    p.add_argument("--no-bf16", action="store_true", help="fp32 on CUDA (bf16 autocast is the default there)")
    a = p.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    device = torch.device(a.device)
    bf16 = device.type == "cuda" and not a.no_bf16
    tmp = tempfile.TemporaryDirectory()
    data = Path(a.data) if a.data else None
    if data is None:
        from bamkit.testing.train import write_tiny_bam

        t0 = time.perf_counter()
        data = write_tiny_bam(Path(tmp.name) / "bench.h5", size=a.stored, per_pair=a.per_pair, k_values=())
        print(
            f"wrote synthetic {data.name}: {a.stored}px, {100 * a.per_pair} rows ({time.perf_counter() - t0:.1f} s)"
        )

    def dm(workers: int) -> BamDataModule:
        return BamDataModule(
            str(data),
            a.set,
            "scene_label",
            a.size,
            a.batch_size,
            workers,
            seed=0,
            device_transforms=device.type == "cuda",
        )

    rows = []
    for w in sorted({0, a.workers}):
        r = loader_rate(dm(w), max(10, a.steps))
        rows.append((f"loader alone, {w} workers", r, r / max(1, w)))
    model = build_network(a.arch, 10, weights=None, width=a.width).to(device)
    if a.channels_last:
        model = model.to(memory_format=torch.channels_last)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    mem = train_rate(model, _memory(a.batch_size, a.size, 10, device), a.steps, device, bf16, a.channels_last)
    model.load_state_dict(state)
    dmw = dm(a.workers)
    h5 = train_rate(
        model, _cycle(dmw), a.steps, device, bf16, a.channels_last, post=dmw.on_after_batch_transfer
    )
    rows += [
        ("train step, tensors in device memory", mem, None),
        (f"train step, HDF5 loader ({a.workers} workers)", h5, None),
    ]
    print(
        f"\ndevice {device} ({torch.cuda.get_device_name(device) if device.type == 'cuda' else 'cpu'}), "
        f"arch {a.arch}, input {a.size}px, batch {a.batch_size}, bf16 {bf16}, torch threads "
        f"{torch.get_num_threads()}"
    )
    print(f"{'measurement':<44} {'images/s':>10} {'per worker':>11}")
    for name, rate, per in rows:
        print(f"{name:<44} {rate:>10.1f} {'' if per is None else f'{per:>11.1f}'}")
    print(f"{'HDF5 / in-memory training throughput':<44} {h5 / mem:>10.3f}   (target >= 0.95 on a GPU)")
    n_train, n_val = paper_training_images()
    hours = (n_train + n_val / 3) / h5 / 3600
    print(
        f"paper scale: 13 models, {n_train:,} training + {n_val:,} validation images over their epochs -> "
        f"{hours:.2f} h at the HDF5-fed rate (arch {a.arch} at {a.size}px on this device)"
    )
    tmp.cleanup()


if __name__ == "__main__":
    main()
