"""LightningModule for the BAM classifiers (docs/dataset.md#models: every layer fine-tuned, new head for the set's classes)."""

from __future__ import annotations

import math

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torchmetrics.classification import MulticlassAccuracy

from bamkit.config import from_dict, to_dict
from bamkit.models import build_network
from bamkit.train.config import ModelConfig, OptimConfig


def _section(schema: type, value, where: str):
    """A config section given as its dataclass, a mapping (a Lightning checkpoint's hparams) or None."""
    if value is None:
        return schema()
    return value if isinstance(value, schema) else from_dict(schema, dict(value), where=where)


class BamClassifier(pl.LightningModule):
    """Cross-entropy fine-tuning of :func:`bamkit.models.build_network` with top-1 accuracy.

    The two config sections are the schema (:class:`~bamkit.train.config.ModelConfig`,
    :class:`~bamkit.train.config.OptimConfig`): the module is built by keyword from them, and saves them as plain
    mappings with ``save_hyperparameters`` so a Lightning checkpoint rebuilds the module by itself (resume) and
    the exported bamkit checkpoint can quote it.

    Args:
        num_classes: size of the new head.
        model: the ``model:`` section (arch, weights, input_size, width), a mapping or the dataclass.
        optim: the ``optim:`` section (name, lr, backbone_lr, momentum, weight_decay, schedule, warmup_steps).

    Shape:
        batch ``(x, y)``: x (B, 3, S, S) normalised, y (B,) long -> logits (B, num_classes).
    """

    def __init__(
        self,
        num_classes: int = 10,
        model: dict | ModelConfig | None = None,
        optim: dict | OptimConfig | None = None,
    ) -> None:
        super().__init__()
        self.model_cfg = _section(ModelConfig, model, "model")
        self.optim_cfg = _section(OptimConfig, optim, "optim")
        self.save_hyperparameters(
            {"num_classes": num_classes, "model": to_dict(self.model_cfg), "optim": to_dict(self.optim_cfg)}
        )
        m = self.model_cfg
        self.net = build_network(m.arch, num_classes, weights=m.weights, width=m.width)
        self.channels_last = False
        self.train_acc = MulticlassAccuracy(num_classes=num_classes, average="micro")
        self.val_acc = MulticlassAccuracy(num_classes=num_classes, average="micro")

    def use_channels_last(self) -> None:
        """NHWC weights and inputs (``trainer.channels_last``): same numbers, the layout tensor cores prefer.
        Called before ``fit``; moving to the device and loading a resumed state keep the layout."""
        self.channels_last = True
        self.net.to(memory_format=torch.channels_last)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return self.net(x)

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        x, y = batch
        logits = self(x)
        loss = F.cross_entropy(logits, y, label_smoothing=self.optim_cfg.label_smoothing)
        self.train_acc(logits, y)
        self.log("train_loss", loss, prog_bar=True, batch_size=len(y))
        self.log("train_acc", self.train_acc, on_step=False, on_epoch=True, batch_size=len(y))
        return loss

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        x, y = batch
        logits = self(x)
        self.val_acc(logits, y)
        self.log("val_loss", F.cross_entropy(logits, y), sync_dist=True, batch_size=len(y))
        self.log("val_acc", self.val_acc, on_step=False, on_epoch=True, prog_bar=True, batch_size=len(y))

    def configure_optimizers(self):
        hp = self.optim_cfg
        head = [p for n, p in self.net.named_parameters() if n.startswith("fc.")]
        body = [p for n, p in self.net.named_parameters() if not n.startswith("fc.")]
        # No weight decay on BatchNorm/bias parameters (1-D), the usual fine-tuning practice.
        groups = []
        for params, lr in ((body, hp.backbone_lr or hp.lr), (head, hp.lr)):
            decay = [p for p in params if p.ndim > 1]
            no_decay = [p for p in params if p.ndim <= 1]
            groups += [
                {"params": decay, "lr": lr, "weight_decay": hp.weight_decay},
                {"params": no_decay, "lr": lr, "weight_decay": 0.0},
            ]
        groups = [g for g in groups if g["params"]]
        if hp.name == "sgd":
            opt = torch.optim.SGD(groups, lr=hp.lr, momentum=hp.momentum, nesterov=hp.momentum > 0)
        else:
            opt = torch.optim.AdamW(groups, lr=hp.lr)
        if hp.schedule == "none" and hp.warmup_steps == 0:
            return opt
        total = max(1, int(self.trainer.estimated_stepping_batches))
        warm = min(int(hp.warmup_steps), total - 1)
        cosine = hp.schedule == "cosine"

        def factor(step: int) -> float:
            if step < warm:
                return (step + 1) / (warm + 1)
            if not cosine:
                return 1.0
            t = (step - warm) / max(1, total - warm)
            return 0.5 * (1.0 + math.cos(math.pi * min(1.0, t)))

        sched = torch.optim.lr_scheduler.LambdaLR(opt, factor)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}
