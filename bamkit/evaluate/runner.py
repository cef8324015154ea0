"""Image batches → attributions → cache → per-image scores → tidy rows, for one shard of a suite.

Per batch of rows of one leg (one model on one set): read uint8 images and masks, preprocess, one forward pass
for the prediction (the target, docs/conventions.md#target-class: the predicted class of the clean input), attribute the methods that
are not cached yet in one ``attribute_many`` call (samples shared where methods allow), reduce to every 2-D map
the leg's metrics read (``to_saliency``), append to the cache, then score from the cached float16 maps — so a
fresh run and a resumed run give the same numbers.

Randomness: each image gets its own seed derived from (suite seed, model role, set, row) (:func:`attribution_seeds`),
passed to the engine as ``seeds``, so a map does not depend on the batch it was computed in, on sharding or on the
number of processes — and two models never share draws (BAM computes each model's maps on their own; a shared
draw would make f_o's and f_s's random maps identical and their MCS exactly 0).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from bamkit.errors import ConfigError, DataError
from bamkit.evaluate import execution, scenarios
from bamkit.evaluate import methods as methods_mod
from bamkit.evaluate.cache import (
    FLAG_CONSTANT,
    FLAG_NONFINITE,
    AttributionCache,
    check_room,
    map_bytes,
    model_token,
)
from bamkit.evaluate.examples import save_example
from bamkit.evaluate.legs import Leg
from bamkit.evaluate.suite import Suite
from bamkit.metrics.bam import keyed_random_regions, region_attribution
from bamkit.metrics.registry import METRICS, ImageInputs
from bamkit.progress import bar
from bamkit.provenance import derive_seed

log = logging.getLogger(__name__)


@dataclass
class LoadedModel:
    module: nn.Module
    meta: Any  # bamkit.models.ClassifierMeta

    @property
    def key(self) -> str:
        return str(self.meta.checkpoint_hash)


def load_models(suite: Suite, models_dir: str | Path, roles: list[str]) -> dict[str, LoadedModel]:
    """Load the checkpoints ``<models_dir>/<stem>.ckpt`` of the roles that exist (missing ones are skipped)."""
    from bamkit.models import load_classifier

    d = Path(models_dir)
    if not d.is_dir():
        raise DataError(
            f"models folder {str(d)!r} does not exist; train the models with 'bamkit train' or pass "
            "--models DIR"
        )
    out = {}
    for role in roles:
        p = d / f"{suite.role_file(role)}.ckpt"
        if p.is_file():
            module, meta = load_classifier(p)
            out[role] = LoadedModel(module.eval(), meta)
    return out


def all_roles(suite: Suite) -> list[str]:
    """The model roles of every scenario this evaluation runs (each once, in scenario order)."""
    return list(dict.fromkeys(r for sc in scenarios.wanted(suite) for r in sc.roles(suite)))


def _device(model: nn.Module) -> torch.device:
    p = next(iter(model.parameters()), None)
    return p.device if p is not None else torch.device("cpu")


def attribution_seeds(seed: int, role: str, set_name: str, rows: np.ndarray) -> torch.Tensor:
    """Per-image attribution seeds (B,) long, keyed by (suite seed, model role, set, row)."""
    return torch.tensor([derive_seed(seed, role, set_name, int(r)) for r in rows], dtype=torch.long)


def _attribute(
    model, x, target, methods: dict[str, Any], seeds: torch.Tensor, opts
) -> dict[str, torch.Tensor]:
    """``attribute_many`` on Method instances: one engine call shares samples between methods; each
    sampler group draws from fresh per-image generators seeded by ``seeds``, so a method's map does not depend
    on which other methods run beside it (what makes the cache valid)."""
    from bamkit.attribution.engine import run_methods

    return run_methods(model, x, target, methods, seeds=seeds, opts=opts)


def _culprit(model, x, target, methods: dict[str, Any], seeds, opts) -> str:
    """The label of the method that raises on this batch (each re-run alone), for the error message."""
    if len(methods) > 1:
        for label, obj in methods.items():
            try:
                _attribute(model, x, target, {label: obj}, seeds, opts)
            except Exception:
                return repr(label)
    return ", ".join(map(repr, methods))


def _saliency(attr: torch.Tensor, mode: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(N,H,W) map and (N,) degenerate-map flags (docs/conventions.md#saliency-modes)."""
    from bamkit.attribution.postprocess import to_saliency

    return to_saliency(attr, mode=mode, return_flags=True)


class ShardRunner:
    """Evaluates the legs of a suite that fall into shard ``index`` of ``count`` (see :meth:`Leg.shard`).

    Args:
        suite: a validated suite.
        bam: the :class:`DataSets` to read.
        models: role -> loaded model (on the device the caller chose).
        cache: the attribution cache this process writes.
        examples_dir: where example inputs + maps for the report's saliency grids go (None: not written).
    """

    def __init__(
        self,
        suite: Suite,
        bam,
        models: Mapping[str, LoadedModel],
        cache: AttributionCache,
        index: int = 0,
        count: int = 1,
        examples_dir: Path | None = None,
    ) -> None:
        self.bam, self.models, self.cache = bam, models, cache
        self.execution, self.seed = suite.execution, suite.seed
        self.scenarios = {sc.name: sc for sc in scenarios.bound(suite)}
        # the settings each image metric runs with (its function's defaults, updated by the suite's entry)
        self.metric_params = {m: suite.metric_params(m) for m in suite.metric_names}
        self.index, self.count = index, count
        self.examples_dir = examples_dir
        self.methods = {m.label: (m, methods_mod.build(m)) for m in suite.map_methods()}
        self.keys = {m.label: m.key for m in suite.map_methods()}  # a code method's key hashes its code: once
        first = next(iter(models.values()), None)
        dev = _device(first.module) if first is not None else torch.device("cpu")
        self.opts = execution.exec_options(suite.execution, dev)
        self.exec_record = execution.record(self.opts, dev)  # what ran; fidelity filled at the first batch
        self.key_suffix = execution.cache_suffix(self.opts)  # off-fp32 maps are cached apart
        self.legs, self.skipped = scenarios.plan_legs(suite, bam, set(models))

    # -- attributions -------------------------------------------------------------------------------------
    def _ensure_cached(
        self,
        leg: Leg,
        lm: LoadedModel,
        rows: np.ndarray,
        x: torch.Tensor,
        target: torch.Tensor,
        logit: torch.Tensor,
    ) -> None:
        missing = {}
        for label, (_, obj) in self.methods.items():
            have = all(
                self.cache.present(
                    lm.key, self.bam.token(leg.set), self.keys[label] + self.key_suffix, r, rows
                ).all()
                for r in leg.modes
            )
            if not have:
                missing[label] = obj
        if not missing:
            return
        seeds = attribution_seeds(self.seed, leg.role, leg.set, rows)
        try:
            execution.measure_fidelity(self.exec_record, lm.module, x, target, missing, seeds, self.opts)
            attrs = _attribute(lm.module, x, target, missing, seeds, self.opts)
        except torch.cuda.OutOfMemoryError as e:  # the settings' fault, not a method's: say which to lower
            raise ConfigError(execution.out_of_memory(self.execution, x.device, leg.scenario, e)) from e
        except Exception as e:  # a method's own failure (a user's callable, a plug-in): name what and where
            culprit = _culprit(lm.module, x, target, missing, seeds, self.opts)
            raise DataError(
                f"method {culprit} failed in scenario {leg.scenario!r} (model {leg.role}, set {leg.set}, rows "
                f"{int(rows.min())}-{int(rows.max())}): {type(e).__name__}: {e}; "
                "run with -v for the full traceback"
            ) from e
        pred = target.cpu().numpy()
        for label, attr in attrs.items():
            # NaN/Inf anywhere in an image's attributions: the image is flagged, and excluded from every score
            nonfinite = (~torch.isfinite(attr.detach())).flatten(1).any(1).cpu().numpy()
            for mode in leg.modes:
                maps, constant = _saliency(attr.detach(), mode)
                flags = np.where(constant.cpu().numpy(), FLAG_CONSTANT, 0) | np.where(
                    nonfinite, FLAG_NONFINITE, 0
                )
                self.cache.write(
                    lm.key,
                    self.bam.token(leg.set),
                    self.keys[label] + self.key_suffix,
                    mode,
                    rows,
                    maps.float().cpu().numpy(),
                    pred,
                    pred,
                    logit.cpu().numpy(),
                    flags.astype(np.uint8),
                )

    # -- one leg ------------------------------------------------------------------------------------------
    def run_leg(self, leg: Leg) -> list[pd.DataFrame]:
        """The per-image rows of ``leg``, computed as its scenario says (by default :meth:`run_map_leg`)."""
        return self.scenarios[leg.scenario].run_leg(self, leg)

    def run_map_leg(self, leg: Leg) -> list[pd.DataFrame]:
        """Maps (cached), ``g_c`` with the leg's region and the random one, and the image metrics."""
        lm = self.models[leg.role]
        view = self.bam[leg.set]
        pre = lm.meta.preprocess
        dev = _device(lm.module)
        bs = self.execution.batch_size
        frames = []
        example_pair = int(np.min(leg.pool_pairs)) if len(leg.pool_pairs) else -1
        steps = range(0, len(leg.rows), bs)
        for s in bar(steps, total=len(steps), desc=f"{leg.scenario} {leg.role} {leg.set}", unit="batch"):
            rows, pairs = leg.rows[s : s + bs], leg.pairs[s : s + bs]
            images = torch.from_numpy(view.read("images", rows)).to(dev)
            masks_raw = torch.from_numpy(view.read("masks", rows))
            labels = view.read(lm.meta.label_field, rows).astype(np.int64)
            x = pre(images)
            masks = pre.masks(masks_raw.to(dev))
            if leg.region == "background":
                masks = ~masks
            with torch.no_grad():
                logits = lm.module(x)
            target = logits.argmax(1)
            logit = logits.gather(1, target[:, None])[:, 0].float()
            self._ensure_cached(leg, lm, rows, x, target, logit)
            rand = None
            if leg.random_baseline:
                rand = keyed_random_regions(
                    lambda r: view.read("masks", r),
                    pairs,
                    leg.pool_pairs,
                    self._pool_rows(leg),
                    tuple(masks_raw.shape[1:]),
                    self.seed,
                    leg.scenario,
                )
                rand = pre.masks(torch.from_numpy(rand).to(dev))
            for label in self.methods:
                entries = {
                    m: self.cache.read(
                        lm.key, self.bam.token(leg.set), self.keys[label] + self.key_suffix, m, rows
                    )
                    for m in leg.modes
                }
                frames.append(self._rows(leg, lm, label, rows, pairs, labels, entries, masks, rand, x))
                if example_pair in set(pairs.tolist()) and self.examples_dir is not None:
                    i = int(np.flatnonzero(pairs == example_pair)[0])
                    save_example(self.examples_dir, leg, lm.meta, label, int(rows[i]), x[i], masks[i], entries,
                                 i, labels[i])  # fmt: skip
        return frames

    def _pool_rows(self, leg: Leg) -> np.ndarray:
        """Rows of ``leg.set`` for each pool pair key (same order as ``leg.pool_pairs``)."""
        if leg.pair_key == "row":
            return leg.pool_pairs
        pidx = np.asarray(self.bam[leg.set].read("pair_index", None), dtype=np.int64)
        where = {int(p): i for i, p in enumerate(pidx.tolist())}
        return np.array([where[int(p)] for p in leg.pool_pairs], dtype=np.int64)

    def _rows(self, leg: Leg, lm: LoadedModel, label: str, rows, pairs, labels, entries, masks, rand, x):
        df = self._scored_rows(leg, lm, label, rows, pairs, labels, entries, masks, rand, x)
        # an image whose attributions hold NaN/Inf has no score: its values become NaN (never counted), and
        # the summary shows how many were excluded and leaves the method unranked (bamkit.evaluate.tables)
        nonfinite = np.zeros(len(rows), bool)
        for e in entries.values():
            nonfinite |= (e.flag & FLAG_NONFINITE) > 0
        df["nonfinite"] = nonfinite
        if nonfinite.any():
            for col in ("g_c", "g_c_random", *leg.scores):
                if col in df:
                    df.loc[nonfinite, col] = np.nan
        return df

    def _scored_rows(self, leg, lm, label, rows, pairs, labels, entries, masks, rand, x) -> pd.DataFrame:
        first = next(iter(entries.values()))
        pred = first.prediction
        df = pd.DataFrame(
            {
                "scenario": leg.scenario,
                "model": leg.role,
                "model_hash": model_token(lm.key),
                "set": leg.set,
                "image": rows.astype(np.int64),
                "pair": pairs.astype(np.int64),
                "method": label,
                "label": labels,
                "target": first.target,
                "prediction": pred,
                "correct": pred == labels,
                "logit": first.logit,
            }
        )
        dev = masks.device
        df["region_px"] = masks.flatten(1).sum(1).cpu().numpy()  # the region's area at the model's resolution
        view = self.bam[leg.set]
        for column, dataset, default in leg.fields:  # per-row columns the scenario reads (IIR: δ passed)
            df[column] = (
                view.read(dataset, rows).astype(type(default)) if view.has_field(dataset) else default
            )
        if "bam" in entries:
            sal = torch.from_numpy(entries["bam"].maps).to(dev)
            df["g_c"] = region_attribution(sal, masks).double().cpu().numpy()
            df["flag"] = entries["bam"].flag
            if rand is not None:
                df["g_c_random"] = region_attribution(sal, rand).double().cpu().numpy()
        if leg.scores:
            pre = lm.meta.preprocess
            inp = ImageInputs(
                model=lm.module,
                x=x,
                target=torch.from_numpy(first.target).to(dev),
                maps={r: torch.from_numpy(e.maps).to(dev) for r, e in entries.items()},
                masks=masks,
                mean=pre.mean,
                std=pre.std,
                seeds=[derive_seed(self.seed, "score", leg.set, int(r)) % (2**31) for r in rows],
                batch_size=self.execution.sample_batch_size,
            )
            for name in leg.scores:  # each metric's registered function, with the suite's settings for it
                values = METRICS.get(name).image_values(inp, **self.metric_params[name])
                df[name] = torch.as_tensor(values).double().cpu().numpy()
        return df

    def cache_bytes(self, parts: list[Leg]) -> int:
        """What this shard's legs ``parts`` put in the cache (:func:`map_bytes`; legs without maps cache none)."""
        return sum(
            map_bytes(len(p.rows), self.models[p.role].meta.preprocess.input_size, len(self.methods),
                      len(p.modes))
            for p in parts
            if p.modes
        )  # fmt: skip

    def run(self) -> pd.DataFrame:
        """All legs of this shard as one tidy per-image DataFrame."""
        frames: list[pd.DataFrame] = []
        self.timings: list[dict] = []
        parts = [leg.shard(self.index, self.count) for leg in self.legs]
        self.cache_estimate = self.cache_bytes(parts)
        check_room(self.cache.folder, self.cache_estimate, self.cache.size())
        for part in parts:
            if len(part.rows):
                t0 = time.perf_counter()
                frames.extend(self.run_leg(part))
                self.timings.append(
                    {
                        "scenario": part.scenario,
                        "model": part.role,
                        "set": part.set,
                        "images": int(len(part.rows)),
                        "seconds": time.perf_counter() - t0,
                    }
                )
        if not frames:
            return pd.DataFrame()
        return sort_per_image(pd.concat(frames, ignore_index=True))


# the columns that identify a row of the per-image table (its sort order; the report checks them)
PER_IMAGE_KEYS = ("scenario", "model", "set", "method", "image")


def sort_per_image(df: pd.DataFrame) -> pd.DataFrame:
    """The canonical row order of the per-image table (identical for sharded and unsharded runs)."""
    if df.empty:
        return df
    keys = [*PER_IMAGE_KEYS] + [c for c in ("protocol", "level") if c in df]
    return df.sort_values(keys, kind="stable").reset_index(drop=True)
