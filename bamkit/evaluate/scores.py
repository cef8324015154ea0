"""Per-image scores of the faithfulness scenario, each read from the 2-D map its family uses (SPEC §1.3).

Model-calling metrics (RCAP, DAUC/IAUC, AUPC) run the perturbed images through the model in large batches
inside :mod:`bamkit.metrics`; mask metrics compare the map with the object mask (GAG's ImageNet-S protocol).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from bamkit.evaluate.suite import METRIC_REDUCER, Suite

ScoreFn = Callable[..., torch.Tensor]


def _norm(pre) -> dict:
    return {"mean": tuple(pre.mean), "std": tuple(pre.std)}


def compute_scores(
    names: tuple[str, ...],
    model: nn.Module,
    x: torch.Tensor,
    maps: dict[str, torch.Tensor],
    target: torch.Tensor,
    masks: torch.Tensor,
    pre,
    suite: Suite,
    seeds: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """``{metric: (N,) float64}`` for a batch.

    Args:
        x: (N,C,S,S) normalised inputs; maps: reducer -> (N,S,S) maps; target: (N,) long; masks: (N,S,S) bool.
        pre: the model's :class:`~bamkit.preprocess.Preprocess` (its mean/std place black and mean fills).
        seeds: (N,) per-image seeds for stochastic metrics (AUPC), so results do not depend on batching.
    """
    import bamkit.metrics as M
    from bamkit.metrics import faithfulness as F
    from bamkit.metrics import localisation as L

    f = suite.scenarios.faithfulness
    bs = suite.execution.sample_batch_size
    out: dict[str, np.ndarray] = {}
    for name in names:
        m = maps[METRIC_REDUCER[name]]
        if name == "rcap":
            v = M.rcap(
                model,
                x,
                m,
                target,
                lower_bound=f.lower_bound,
                interval=f.interval,
                batch_size=bs,
                **_norm(pre),
            )
        elif name == "dauc":
            v = F.deletion_auc(model, x, m, target, protocol=f.auc_protocol, batch_size=bs, **_norm(pre)).auc
        elif name == "iauc":
            v = F.insertion_auc(model, x, m, target, protocol=f.auc_protocol, batch_size=bs, **_norm(pre)).auc
        elif name == "aupc":
            # one seed per image (the image's own draws, independent of the batch it falls in); one call
            # shares the forward passes of all images (``aupc(x, seeds=s)[i] == aupc(x[i:i+1], seed=s[i])``)
            per_image = [int(s) for s in seeds] if seeds is not None else list(range(x.shape[0]))
            v = F.aupc(model, x, m, target, seeds=per_image, batch_size=bs, **_norm(pre)).aupc
        elif name == "dice":
            v = L.dice(m, masks)
        elif name == "logcosh_dice":
            v = L.logcosh_dice(m, masks)
        elif name == "mae":
            v = L.mae(m, masks)
        elif name == "sqrt_mae":
            v = L.sqrt_mae(m, masks)
        elif name == "rmse":
            v = L.rmse(m, masks)
        elif name == "pointing_game":
            v = L.pointing_game(m, masks)
        elif name == "autvc":
            from bamkit.metrics import stability as S

            v = S.autvc(m).autvc
        elif name == "mutual_information":
            from bamkit.metrics import stability as S

            v = S.mutual_information(pre.denormalize(x).clamp(0, 1), m)
        else:  # validated earlier; reaching here is a bug
            raise KeyError(name)
        out[name] = torch.as_tensor(v).double().cpu().numpy()
    return out
