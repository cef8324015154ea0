"""LightningModule for the BAM classifiers (SPEC §4.7: every layer fine-tuned, new head for the set's classes)."""

from __future__ import annotations

import math

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torchmetrics.classification import MulticlassAccuracy

from bamkit.models import build_network


class BamClassifier(pl.LightningModule):
    """Cross-entropy fine-tuning of :func:`bamkit.models.build_network` with top-1 accuracy.

    Every constructor argument is saved with ``save_hyperparameters`` so a Lightning checkpoint rebuilds the
    module by itself (resume) and the exported bamkit checkpoint can quote it.

    Args:
        arch, weights, width: passed to :func:`bamkit.models.build_network`.
        num_classes: size of the head.
        optimizer: ``sgd`` (momentum) or ``adamw``.
        lr: head learning rate; backbone_lr: every other parameter's (``None`` = ``lr``).
        momentum, weight_decay: optimiser settings.
        schedule: ``cosine`` (per step to zero over the whole run) or ``none``.
        warmup_steps: linear warm-up before the schedule.

    Shape:
        batch ``(x, y)``: x (B, 3, S, S) normalised, y (B,) long -> logits (B, num_classes).
    """

    def __init__(
        self,
        arch: str = "resnet50",
        num_classes: int = 10,
        weights: str | None = "imagenet",
        width: int = 16,
        optimizer: str = "sgd",
        lr: float = 0.01,
        backbone_lr: float | None = 0.001,
        momentum: float = 0.9,
        weight_decay: float = 1e-4,
        schedule: str = "cosine",
        warmup_steps: int = 0,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.net = build_network(arch, num_classes, weights=weights, width=width)
        self.train_acc = MulticlassAccuracy(num_classes=num_classes, average="micro")
        self.val_acc = MulticlassAccuracy(num_classes=num_classes, average="micro")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        x, y = batch
        logits = self(x)
        loss = F.cross_entropy(logits, y)
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
        hp = self.hparams
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
        if hp.optimizer == "sgd":
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
