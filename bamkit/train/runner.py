"""``bamkit train``: train one BAM model, or every model of a sweep, into ``<out>/<name>.ckpt``.

Re-runs are cheap: a model whose exported checkpoint has the same config hash and training-data hash is skipped.
An interrupted run resumes from Lightning's ``<out>/<name>/last.ckpt`` (kept with ``best.ckpt`` for resuming),
unless the config or data changed, in which case that stale state is discarded and training starts over.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
import warnings
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import torch

from bamkit import atomic, progress
from bamkit.config import to_dict
from bamkit.devices import LIGHTNING_PRECISION, decide
from bamkit.errors import ConfigError, DataError
from bamkit.locks import output_lock
from bamkit.models import preprocess_for
from bamkit.train.checkpoint import config_hash, export, is_current, set_hash
from bamkit.train.config import TrainConfig, load_configs

log = logging.getLogger(__name__)
_PL_LOGGERS = ("pytorch_lightning", "lightning.pytorch", "lightning_fabric", "lightning")


@contextlib.contextmanager
def _quiet_lightning():
    """Lightning's banner lines (GPU available, seed set …) only with ``-vv``; its hints about few workers on
    tiny data are not actionable here."""
    level = (
        logging.INFO if logging.getLogger("bamkit").getEffectiveLevel() <= logging.DEBUG else logging.WARNING
    )
    saved = {n: logging.getLogger(n).level for n in _PL_LOGGERS}
    for n in _PL_LOGGERS:
        logging.getLogger(n).setLevel(level)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r".*does not have many workers.*")
            warnings.filterwarnings(
                "ignore", message=r".*number of training batches.*smaller than the logging.*"
            )
            warnings.filterwarnings("ignore", message=r".*Checkpoint directory .* exists and is not empty.*")
            warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\).*")
            warnings.filterwarnings(
                "ignore", message=r".*Experiment logs directory .* exists and is not empty.*"
            )
            yield
    finally:
        for n, lv in saved.items():
            logging.getLogger(n).setLevel(lv)


def _device(cfg: TrainConfig) -> str:
    """Where the trainer will run, as the ``auto`` settings below are decided by: ``cuda`` or ``cpu``."""
    gpu = cfg.trainer.accelerator in ("auto", "gpu", "cuda") and torch.cuda.is_available()
    return "cuda" if gpu else "cpu"


def _precision(cfg: TrainConfig) -> str:
    """``trainer.precision`` with ``auto`` decided by the rule evaluation uses too (:func:`bamkit.devices.decide`),
    as Lightning names it; any other value is Lightning's own string."""
    t = cfg.trainer
    if t.precision != "auto":
        return t.precision
    return LIGHTNING_PRECISION[decide(_device(cfg)).precision]


def _channels_last(cfg: TrainConfig) -> bool:
    """``trainer.channels_last`` with ``auto`` decided by :func:`bamkit.devices.decide`."""
    return decide(_device(cfg), channels_last=cfg.trainer.channels_last).channels_last


def _state_dir(out: Path, cfg: TrainConfig, data_hash: str, fresh: bool = False) -> Path:
    """``<out>/<name>/`` for Lightning's checkpoints; wiped of stale state when config or data changed (or
    ``fresh``: ``--force`` trains from the start)."""
    work = out / cfg.name
    work.mkdir(parents=True, exist_ok=True)
    stamp = {"config_hash": config_hash(cfg), "data_hash": data_hash}
    f = work / "run.json"
    old = json.loads(f.read_text()) if f.is_file() else None
    if old != stamp or fresh:
        for name in ("last.ckpt", "best.ckpt"):
            with contextlib.suppress(FileNotFoundError):
                (work / name).unlink()
        atomic.write_text(f, json.dumps(stamp, indent=2))
    return work


def _readable_state(path: Path) -> bool:
    """Whether ``path`` is a resumable training state, read safely (``weights_only``: nothing in it runs). An
    unreadable or hostile one is moved aside with a message, and training starts afresh instead of failing."""
    try:
        torch.load(path, map_location="cpu", weights_only=True)
        return True
    except Exception as e:  # corrupt bytes, a truncated file, or pickled code weights_only refuses
        aside = path.with_name(f"{path.name}.unreadable-{int(time.time())}")
        os.replace(path, aside)
        first = (str(e).strip().splitlines() or [""])[0][:160]
        log.warning(
            "%s cannot be resumed from (%s: %s); moved it to %s and training starts afresh",
            path,
            type(e).__name__,
            first,
            aside.name,
        )
        return False


def _load_weights(module, ckpt: Path) -> None:
    state = torch.load(ckpt, map_location="cpu", weights_only=True)["state_dict"]
    module.load_state_dict(state)


def _epochs_done(state: dict) -> int:
    """Epochs trained so far according to a Lightning checkpoint (its ``epoch`` is saved before completion)."""
    try:
        return int(state["loops"]["fit_loop"]["epoch_progress"]["total"]["processed"])
    except (KeyError, TypeError):
        return int(state["epoch"]) + 1


def _log_progress(name: str) -> list:
    """In a log (not a terminal): a plain line every 30 s / 10 % of the steps, on rank 0 (bamkit.progress)."""
    if progress.mode() != "log":
        return []
    import pytorch_lightning as pl

    class LogSteps(pl.Callback):
        def on_train_start(self, trainer, module) -> None:
            self.bar = progress.LogProgress(
                None, int(trainer.estimated_stepping_batches), f"train {name}", "step"
            )

        def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
            if trainer.is_global_zero:
                self.bar.update(1)

        def on_train_end(self, trainer, module) -> None:
            if trainer.is_global_zero:
                self.bar.close()

    return [LogSteps()]


def train_one(
    cfg: TrainConfig, data: str | Path, out: str | Path, callbacks: Sequence = (), fresh: bool = False
) -> Path:
    """Train (or resume) one model and export ``<out>/<cfg.name>.ckpt``; no skip check (see :func:`train_config`).

    Args:
        cfg: the model's config (``cfg.smoke`` shrinks it).
        data: the HDF5 dataset file.
        out: the models folder.
        callbacks: extra Lightning callbacks (tests use one to interrupt a run).
        fresh: start from the first step even where an interrupted run's state could be resumed.

    Returns:
        the exported checkpoint path.
    """

    run = cfg.smoke_applied()
    out = Path(out)
    if not Path(data).is_file():
        raise DataError(
            f"dataset file {str(data)!r} does not exist; build it with 'bamkit build' or pass --data"
        )
    data_hash = set_hash(data, run.data.train_set, run.data.label_field)
    # one writer per model; the ranks a launcher re-runs (ddp) train alongside rank 0, which holds the lock
    rank0 = os.environ.get("LOCAL_RANK", "0") == "0" and os.environ.get("NODE_RANK", "0") == "0"
    lock = output_lock(out / run.name, f"model {run.name!r}") if rank0 else contextlib.nullcontext()
    with lock:
        return _train(cfg, run, data, out, data_hash, callbacks, fresh)


def _train(
    cfg: TrainConfig,
    run: TrainConfig,
    data,
    out: Path,
    data_hash: str,
    callbacks: Sequence,
    fresh: bool = False,
) -> Path:
    """:func:`train_one` under the model's lock."""
    import pytorch_lightning as pl
    from pytorch_lightning.callbacks import ModelCheckpoint
    from pytorch_lightning.loggers import CSVLogger

    from bamkit.train.datamodule import BamDataModule
    from bamkit.train.module import BamClassifier

    work = _state_dir(out, cfg, data_hash, fresh)
    d, m, o, t = run.data, run.model, run.optim, run.trainer
    with _quiet_lightning():
        pl.seed_everything(run.seed, workers=True, verbose=False)
        dm = BamDataModule(  # built by keyword from the data section (its fields are the module's parameters)
            data,
            input_size=m.input_size,
            seed=run.seed,
            preprocess=preprocess_for(m.arch, m.input_size),
            **{k: v for k, v in to_dict(d).items() if k != "path"},
        )
        module = BamClassifier(num_classes=dm.num_classes, model=m, optim=o)
        if _channels_last(run):
            module.use_channels_last()
        has_val = len(dm.val_rows) > 0 and t.limit_val_batches != 0
        # Two callbacks: Lightning 2.6 refreshes `save_last` only when a top-k checkpoint is saved, so the best
        # (by val_acc) and the resumable latest state are kept by separate ModelCheckpoints.
        ckpt_cb = ModelCheckpoint(
            dirpath=work,
            filename="best",
            save_top_k=1 if has_val else 0,
            monitor="val_acc" if has_val else None,
            mode="max",
            enable_version_counter=False,
        )
        last_cb = ModelCheckpoint(
            dirpath=work, filename="last", save_top_k=1, monitor=None, enable_version_counter=False
        )
        trainer = pl.Trainer(
            max_epochs=t.max_epochs,
            accelerator=t.accelerator,
            devices=t.devices,
            num_nodes=t.num_nodes,
            strategy=t.strategy,
            precision=_precision(run),
            limit_train_batches=t.limit_train_batches,
            limit_val_batches=t.limit_val_batches if has_val else 0,
            log_every_n_steps=t.log_every_n_steps,
            gradient_clip_val=t.gradient_clip_val,
            deterministic=t.deterministic,
            default_root_dir=work,
            logger=CSVLogger(work, name="logs", version=0),
            callbacks=[ckpt_cb, last_cb, *_log_progress(run.name), *callbacks],
            enable_progress_bar=progress.enabled(),
            enable_model_summary=False,
            use_distributed_sampler=False,
            num_sanity_val_steps=0,
        )
        last = work / "last.ckpt"
        resume = last if last.is_file() and _readable_state(last) else None
        if resume:
            log.info("%s: resuming from %s", run.name, resume)
        t0 = time.perf_counter()
        trainer.fit(module, datamodule=dm, ckpt_path=resume)
    if not trainer.is_global_zero:
        return out / f"{run.name}.ckpt"
    best = Path(ckpt_cb.best_model_path) if ckpt_cb.best_model_path else None
    if best is not None and best.is_file():
        _load_weights(module, best)  # BAM keeps the best validation model; last.ckpt stays for resuming
    state = torch.load(last, map_location="cpu", weights_only=True) if last.is_file() else None
    score = ckpt_cb.best_model_score
    if score is None and state:  # ddp_spawn hands the main process the best path but not the score
        scores = [
            v.get("best_model_score") for v in state.get("callbacks", {}).values() if isinstance(v, dict)
        ]
        score = next((s for s in scores if s is not None), None)
    extra = {
        "val_acc": float(score) if score is not None else None,
        # From last.ckpt, not the trainer: under ddp_spawn the main process's trainer never stepped.
        "epochs": _epochs_done(state) if state else int(trainer.current_epoch),
        "global_step": int(state["global_step"]) if state else int(trainer.global_step),
    }
    # The time goes to the log, not the checkpoint: the same config, data and seed give the same checkpoint
    # bytes, whose hash keys the attribution caches and the δ file.
    seconds = time.perf_counter() - t0
    path = export(module.net, cfg, dm.class_names, out, data_hash, extra)
    log.info(
        "%s: val_acc %s after %d epoch%s (%.1f s) -> %s",
        run.name,
        "n/a" if score is None else f"{float(score):.3f}",
        extra["epochs"],
        "" if extra["epochs"] == 1 else "s",
        seconds,
        path,
    )
    return path


def train_config(
    config_path: str | Path,
    data: str | Path | None = None,
    out: str | Path | None = None,
    smoke: bool = False,
    overrides: Sequence[str] = (),
    force: bool = False,
) -> list[Path]:
    """Train every model a config file names (one model or a sweep), skipping current ones (all of them again
    from the first step with ``force``).

    Args:
        config_path: a training YAML (``train/f_o.yaml``) or a sweep (``train/all.yaml``, ``train/demo.yaml``).
        data: the HDF5 dataset; overrides ``data.path`` of the configs.
        out: the models folder; overrides ``out`` of the configs.
        smoke: shrink every run to a few batches (``smoke: true``).
        overrides: ``KEY=VALUE`` dotted overrides applied to every model (``trainer.max_epochs=3``).
        force: train even the models whose checkpoint is current.

    Returns:
        the checkpoint paths, in config order (skipped ones included).
    """
    configs = load_configs(config_path, overrides)
    todo = []
    for cfg, src in configs:
        if smoke:
            cfg = replace(cfg, smoke=True)
        dpath = data if data is not None else cfg.data.path
        if dpath is None:
            raise ConfigError(f"{str(src)!r}: no dataset file; pass --data FILE.h5 or set data.path")
        if data is None and not Path(dpath).is_absolute():
            dpath = (src.parent / dpath) if (src.parent / dpath).exists() else Path(dpath)
        if not Path(dpath).is_file():
            raise DataError(
                f"dataset file {str(dpath)!r} does not exist; build it with 'bamkit build' and pass --data FILE.h5"
            )
        todo.append((cfg, Path(dpath), Path(out if out is not None else cfg.out)))
    paths = []
    for i, (cfg, dpath, odir) in enumerate(progress.bar(todo, desc="models", unit="model")):
        run = cfg.smoke_applied()
        ckpt = odir / f"{run.name}.ckpt"
        if not force and is_current(ckpt, cfg, set_hash(dpath, run.data.train_set, run.data.label_field)):
            log.info("%s: %s is current; skipped", run.name, ckpt)
            paths.append(ckpt)
            continue
        log.info(
            "[%d/%d] training %s on %s (%s)",
            i + 1,
            len(todo),
            run.name,
            run.data.train_set,
            run.data.label_field,
        )
        paths.append(train_one(cfg, dpath, odir, fresh=force))
    return paths
