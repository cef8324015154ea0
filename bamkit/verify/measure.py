"""``bamkit verify``: BAM's Figure 2 measured on the user's models and data (Yang & Kim 2019, §3.3; docs/reproduction.md#published-numbers).

Top of Figure 2 — relative feature importance of f_o (object labels) and f_s (scene labels), on the validation
rows of each set:

* accuracy on ``obj_scene`` (full input);
* accuracy when the *common feature* (CF) is removed: f_o on ``obj_gray`` (scene removed), f_s on
  ``scene_only`` (object removed);
* the share of inputs classified correctly both times whose softmax probability of the true class *rises* when
  the CF is removed;
* accuracy when only the CF is kept: f_o on ``scene_only``, f_s on ``obj_gray`` — expected near chance.

Bottom — for each commonality model f_k: bamboo-forest accuracy with the dog (``obj_scene`` rows dog × bamboo
forest) and without it (the same composites in ``scene_only``, matched by ``pair_index``), and the drop; the drop
should shrink as k grows.

Rows without a label of their own (``scene_only`` has no object, ``obj_gray`` no scene) take the label of the
composite they pair with in ``obj_scene``. :func:`verify_models` returns the
:class:`~bamkit.verify.result.VerifyResult`; the CLI turns failed checks into a non-zero exit.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import torch

from bamkit import progress
from bamkit.classes import ALWAYS_SCENE, COMMON_FEATURE
from bamkit.data.h5 import SPLIT_VAL, BamFile
from bamkit.errors import ConfigError, DataError
from bamkit.models import ClassifierMeta, load_classifier
from bamkit.verify.checks import Thresholds, k_checks, top_checks
from bamkit.verify.result import ROLE_SETS, VerifyResult

_K_NAME = re.compile(r"^f_k(\d+(?:\.\d+)?)$")
_SAMPLE_TAG = 0x76657269  # stream of the max_pairs sample, apart from every other seeded draw


def true_class_prob(
    model: torch.nn.Module,
    meta: ClassifierMeta,
    bf: BamFile,
    set_name: str,
    rows: np.ndarray,
    labels: np.ndarray,
    batch_size: int = 256,
    desc: str = "",
) -> tuple[np.ndarray, np.ndarray]:
    """Predictions of ``model`` on rows of a set.

    Args:
        rows: (n,) row indices; labels: (n,) true class per row.

    Returns:
        ``(correct, logp_true)``: bool (n,) top-1 correctness and float64 (n,) log of the softmax probability of
        the label. The log-probability is computed in float64 from the logits: a confident model's float32
        softmax rounds many true-class probabilities to exactly 1.0, and then "did the confidence rise" (Fig. 2)
        would compare equal numbers instead of the model's actual confidences.
    """
    view = bf[set_name]
    dev = next(model.parameters()).device
    correct, prob = np.zeros(len(rows), bool), np.zeros(len(rows))
    order = np.argsort(rows, kind="stable")
    with torch.inference_mode():
        for lo in progress.bar(range(0, len(rows), batch_size), desc=desc, unit="batch"):
            sel = order[lo : lo + batch_size]
            x = meta.preprocess(torch.from_numpy(view.read("images", rows[sel])).to(dev))
            logp = torch.log_softmax(model(x).double(), dim=1).cpu().numpy()
            y = labels[sel]
            correct[sel] = logp.argmax(1) == y
            prob[sel] = logp[np.arange(len(sel)), y]
    return correct, prob


class _Pairs:
    """Validation rows of each set and their labels, resolved through ``pair_index`` to ``obj_scene``.

    ``max_pairs`` caps the pairs of Figure 2 (top) at a seeded sample of the validation pairs, the same pairs in
    every set, so the three inputs of a pair stay together; ``None`` keeps them all.
    """

    def __init__(self, bf: BamFile, max_pairs: int | None = None, seed: int = 0) -> None:
        self.bf = bf
        self.ref = None
        self.sample: np.ndarray | None = None
        if bf.has("obj_scene"):
            v = bf["obj_scene"]
            self.ref = {f: v.read(f) for f in ("pair_index", "object_label", "scene_label")}
            self.pos = {int(p): i for i, p in enumerate(self.ref["pair_index"])}
            pairs = self.ref["pair_index"][v.read("split") == SPLIT_VAL]
            if max_pairs is not None and len(pairs) > max_pairs:
                rng = np.random.default_rng(np.random.SeedSequence([seed, _SAMPLE_TAG]))
                self.sample = np.sort(rng.choice(pairs, size=max_pairs, replace=False))

    def val(
        self, set_name: str, label_field: str, sampled: bool = True
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(rows, labels, pair_index) of the set's validation rows that have a label (own or paired).

        ``sampled``: only the rows of the sampled pairs (when ``max_pairs`` drew a sample).
        """
        v = self.bf[set_name]
        rows = np.flatnonzero(v.read("split") == SPLIT_VAL)
        pair = v.read("pair_index")[rows]
        if sampled and self.sample is not None:
            keep = np.isin(pair, self.sample)
            rows, pair = rows[keep], pair[keep]
        lab = v.read(label_field)[rows].astype(np.int64)
        if self.ref is not None and (lab < 0).any():
            ref = np.array(
                [self.ref[label_field][self.pos[int(p)]] if int(p) in self.pos else -1 for p in pair]
            )
            lab = np.where(lab < 0, ref, lab)
        keep = lab >= 0
        return rows[keep], lab[keep], pair[keep]


def accuracy_drop(correct_with: np.ndarray, correct_without: np.ndarray) -> float:
    """Accuracy with the common feature minus accuracy without it, over the same ``n`` images (Fig. 2 bottom).

    Computed from the counts, ``(hits_with - hits_without) / n``, in one correctly rounded division: 45 and 42
    hits of 60 give exactly the double nearest 0.05 (the margin's own value), where ``0.75 - 0.7`` gives
    0.05000000000000004 and would fail a drop of exactly 5 points against the "at most 5 points" margin.
    """
    n = len(correct_with)
    return float((int(np.sum(correct_with)) - int(np.sum(correct_without))) / n)


def confidence_rise(
    full: tuple[np.ndarray, np.ndarray, np.ndarray], removed: tuple[np.ndarray, np.ndarray, np.ndarray]
) -> tuple[float, int]:
    """Share of pairs correct on both inputs whose true-class probability rises when the CF is removed.

    Args:
        full, removed: ``(pair_index, correct, confidence)`` arrays for the full inputs and the CF-removed
            ones; the confidence is the true class's probability or any increasing function of it (the
            log-probability of :func:`true_class_prob`).

    Returns:
        ``(share, n_pairs_correct_on_both)``; share is NaN when no pair qualifies.
    """
    pos = {int(p): i for i, p in enumerate(removed[0])}
    both = [(i, pos[int(p)]) for i, p in enumerate(full[0]) if int(p) in pos]
    ok = [(i, j) for i, j in both if full[1][i] and removed[1][j]]
    if not ok:
        return float("nan"), 0
    return float(np.mean([removed[2][j] > full[2][i] for i, j in ok])), len(ok)


def _discover(models_dir: Path) -> dict[str, Path]:
    if not models_dir.is_dir():
        raise DataError(f"models folder {str(models_dir)!r} does not exist; train models with 'bamkit train'")
    found = {p.stem: p for p in sorted(models_dir.glob("*.ckpt"))}
    wanted = {n: p for n, p in found.items() if n in ("f_o", "f_s", "f_empty") or _K_NAME.match(n)}
    if not wanted:
        raise DataError(
            f"no BAM models (f_o.ckpt, f_s.ckpt, f_empty.ckpt, f_k*.ckpt) in {str(models_dir)!r}; "
            "train them with 'bamkit train train/all.yaml'"
        )
    return wanted


def verify_models(
    data: str | Path,
    models_dir: str | Path,
    batch_size: int = 256,
    out: str | Path | None = None,
    thresholds: Thresholds | None = None,
    device: str | torch.device | None = None,
    max_pairs: int | None = None,
    seed: int = 0,
) -> VerifyResult:
    """Measure BAM Figure 2 on the models found in ``models_dir`` (whichever of f_o, f_s, f_empty, f_k* exist).

    Args:
        data: the HDF5 dataset (validation rows are used).
        models_dir: folder of ``<name>.ckpt`` files.
        batch_size: images per forward pass.
        out: also write ``out`` (JSON), the table beside it and the k plot.
        thresholds: the orderings' thresholds.
        device: where to run the models (default: where :func:`load_classifier` puts them, the CPU).
        max_pairs: measure Figure 2 (top) on a sample of this many validation pairs (drawn with ``seed``, the
            same pairs for every model and set); ``None`` = all. The k-series always uses every bamboo forest.
        seed: seed of that sample.

    Returns:
        the :class:`VerifyResult` (its ``passed``/``failures`` say whether the orderings held).
    """
    th = thresholds or Thresholds()
    if batch_size < 1:
        raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
    if max_pairs is not None and max_pairs < 1:
        raise ConfigError(f"max_pairs must be >= 1 (or null for every validation pair), got {max_pairs}")
    ckpts = _discover(Path(models_dir))
    res = VerifyResult(str(data), str(models_dir), th)
    with BamFile(data) as bf:
        pairs = _Pairs(bf, max_pairs, seed)
        res.sample = {
            "max_pairs": max_pairs,
            "seed": seed,
            "n_pairs": None if pairs.sample is None else len(pairs.sample),
        }

        def load(name: str):
            model, meta = load_classifier(ckpts[name])
            return (model.to(device) if device is not None else model), meta

        for role, (removed_set, only_set) in ROLE_SETS.items():
            if role not in ckpts:
                continue
            model, meta = load(role)
            chance = 1.0 / meta.num_classes
            runs = {}
            for s in ("obj_scene", removed_set, only_set):
                rows, lab, pair = pairs.val(s, meta.label_field)
                c, p = true_class_prob(model, meta, bf, s, rows, lab, batch_size, desc=f"{role} {s}")
                runs[s] = (pair, c, p)
            rise, n_rise = confidence_rise(runs["obj_scene"], runs[removed_set])
            r = {
                "cf_removed_set": removed_set,
                "only_cf_set": only_set,
                "n": len(runs["obj_scene"][0]),
                "acc_full": float(runs["obj_scene"][1].mean()),
                "acc_cf_removed": float(runs[removed_set][1].mean()),
                "conf_rise": rise,
                "n_conf_rise": n_rise,
                "acc_only_cf": float(runs[only_set][1].mean()),
                "chance": chance,
            }
            res.top[role] = r
            res.checks += top_checks(role, r, th)
        if "f_empty" in ckpts:
            model, meta = load("f_empty")
            res.extra["f_empty"] = {}
            for s in ("scene_only", "obj_scene"):
                if bf.has(s):
                    rows, lab, _ = pairs.val(s, meta.label_field)
                    res.extra["f_empty"][f"acc_{s}"] = float(
                        true_class_prob(model, meta, bf, s, rows, lab, batch_size, desc=f"f_empty {s}")[
                            0
                        ].mean()
                    )
        _k_series(res, ckpts, bf, pairs, load, batch_size)
    if out is not None:
        res.save(out)
    return res


def _k_series(
    res: VerifyResult, ckpts: dict[str, Path], bf: BamFile, pairs: _Pairs, load, batch_size: int
) -> None:
    ks = sorted((float(_K_NAME.match(n).group(1)), n) for n in ckpts if _K_NAME.match(n))
    if not ks:
        return
    for s in ("obj_scene", "scene_only"):
        if not bf.has(s):
            raise DataError(f"the k-series needs set {s!r}, which {str(bf.path)!r} lacks; build it")
    objects, scenes = bf.object_classes, bf.scene_classes
    if COMMON_FEATURE not in objects or ALWAYS_SCENE not in scenes:
        raise DataError(
            f"the k-series needs object {COMMON_FEATURE!r} and scene {ALWAYS_SCENE!r} in the file"
        )
    dog, bamboo = objects.index(COMMON_FEATURE), scenes.index(ALWAYS_SCENE)
    rows_w, _, pair_w = pairs.val("obj_scene", "scene_label", sampled=False)  # every bamboo forest
    v = bf["obj_scene"]
    keep = (v.read("object_label")[rows_w] == dog) & (v.read("scene_label")[rows_w] == bamboo)
    rows_w, pair_w = rows_w[keep], pair_w[keep]
    rows_wo, _, pair_wo = pairs.val("scene_only", "scene_label", sampled=False)
    pos = {int(p): i for i, p in enumerate(pair_wo)}
    matched = np.array([int(p) in pos for p in pair_w], bool)
    rows_w = rows_w[matched]
    rows_wo = rows_wo[[pos[int(p)] for p in pair_w[matched]]]
    if len(rows_w) == 0:
        raise DataError(
            f"no validation {COMMON_FEATURE} x {ALWAYS_SCENE} composites paired in obj_scene/scene_only"
        )
    y = np.full(len(rows_w), bamboo)
    for k, name in ks:
        model, meta = load(name)
        cw = true_class_prob(model, meta, bf, "obj_scene", rows_w, y, batch_size, desc=f"{name} with dog")[0]
        cwo = true_class_prob(model, meta, bf, "scene_only", rows_wo, y, batch_size, desc=f"{name} w/o dog")[
            0
        ]
        res.k_series.append(
            {
                "k": k,
                "model": name,
                "n": len(y),
                "acc_with": float(cw.mean()),
                "acc_without": float(cwo.mean()),
                "drop": accuracy_drop(cw, cwo),
            }
        )
    res.k_rho, checks = k_checks(res.k_series, res.thresholds)
    res.checks += checks
