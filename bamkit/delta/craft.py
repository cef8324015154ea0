"""The δ-patch stage: read inputs, optimise in resumable batches, verify what is stored, write the set, summarise.

``craft_file`` is what ``bamkit delta`` and the ``bamkit run`` orchestrator call. The stage is skipped when the output already holds a patch set made from
the same inputs, checkpoint and options (its ``key`` attribute), unless ``force=True``.
"""

from __future__ import annotations

import hashlib
import logging
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bamkit import progress
from bamkit.delta import store
from bamkit.delta.optimize import optimize_batch
from bamkit.delta.options import DeltaOptions
from bamkit.delta.verify import FIGURES, VERIFIED, patch_figures
from bamkit.errors import ConfigError, DataError
from bamkit.locks import output_lock
from bamkit.preprocess import Preprocess
from bamkit.provenance import json_hash, versions

log = logging.getLogger(__name__)


def run_key(input_hash: str, checkpoint_hash: str, options: DeltaOptions) -> str:
    """Identity of a run: equal keys give identical patches (the optimisation is deterministic on one device)."""
    return json_hash({"inputs": input_hash, "model": checkpoint_hash, "options": options.to_dict()})


def craft_arrays(
    model: torch.nn.Module,
    preprocess: Preprocess,
    inputs: store.DeltaInputs,
    options: DeltaOptions,
    device: torch.device | str = "cpu",
    partial: store.PartialRun | None = None,
    max_batches: int | None = None,
) -> dict[str, np.ndarray] | None:
    """Optimise every image in index-ordered batches of ``options.batch_size``.

    Args:
        model: classifier (already on ``device``); preprocess: its preprocessing.
        inputs: from :func:`bamkit.delta.store.read_inputs`.
        options: the optimisation options.
        device: where the images go (the model's device).
        partial: side store of finished batches: those are loaded instead of recomputed, new ones are saved.
        max_batches: compute at most this many new batches, then return None (a deliberate pause; the next call
            resumes). None = finish.

    Returns:
        ``{"images": uint8 (N,H,W,3), "clipped": bool (N,H,W), "steps_run": (N,), "n_clipped": (N,),
        "loss_first": (N,), "loss_last": (N,)}``, or None when stopped by ``max_batches``.
    """
    n, bs = len(inputs), options.batch_size
    starts = list(range(0, n, bs))
    parts: list[dict[str, np.ndarray]] = []
    computed = 0
    with progress.bar(total=len(starts) * options.steps, desc="δ patches", unit="step") as bar:
        for b, lo in enumerate(starts):
            hi = min(lo + bs, n)
            saved = partial.load(b) if partial is not None else None
            if saved is None:
                if max_batches is not None and computed >= max_batches:
                    return None
                r = optimize_batch(
                    model,
                    preprocess,
                    torch.from_numpy(inputs.scene[lo:hi]).to(device),
                    torch.from_numpy(inputs.dog[lo:hi]).to(device),
                    torch.from_numpy(inputs.masks[lo:hi]).to(device),
                    options,
                    indices=np.arange(lo, hi),
                    progress=bar,
                )
                hist = r.history.cpu().numpy()
                saved = {
                    "images": r.patched.cpu().numpy(),
                    "clipped": r.clipped.cpu().numpy(),
                    "steps_run": r.steps_run.cpu().numpy(),
                    "n_clipped": r.clipped.flatten(1).sum(1).cpu().numpy(),
                    "loss_first": hist[0] if len(hist) else r.loss.cpu().numpy(),
                    "loss_last": r.loss.cpu().numpy(),
                }
                computed += 1
                if partial is not None:
                    partial.save(b, saved)
            else:
                bar.update(options.steps)
            parts.append(saved)
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]} if parts else None


def summarize(figures: dict[str, np.ndarray], threshold: float) -> dict[str, Any]:
    """Counts and medians of the per-image figures (what the stage prints)."""
    n = len(figures["passed"])
    failed = np.flatnonzero(~figures["passed"].astype(bool))

    def med(k: str) -> float:
        return float(statistics.median(figures[k].astype(float).tolist())) if n else float("nan")

    return {
        "n_images": n,
        "n_functionally_similar": int(figures["functionally_similar"].sum()),
        "n_same_prediction": int(figures["same_prediction"].sum()),
        "n_failed": int(failed.size),
        "failed_rows": failed.tolist(),
        "n_images_clipped": int((figures["n_clipped"] > 0).sum()),
        "max_outside": int(figures["outside_max"].max()) if n else 0,
        "median_logit_change": med("logit_change"),
        "median_logit_norm": med("logit_norm"),
        "median_ratio": med("ratio"),
        "median_delta_norm": med("delta_norm"),
        "threshold": float(threshold),
    }


def format_summary(s: dict[str, Any]) -> str:
    """The stage's one-paragraph printout."""
    lines = [
        f"δ patches → {s.get('out')} [{s.get('set', store.PATCH_SET)}]"
        + (" (current, skipped)" if s.get("skipped") else ""),
        f"  images: {s['n_images']}, functionally similar (same class and ratio < {s['threshold']:g}): "
        f"{s['n_functionally_similar']}, same prediction: {s['n_same_prediction']}, failed: {s['n_failed']}",
        f"  median ‖f(x+δ) − f(x)‖₂ = {s['median_logit_change']:.4g} (median ‖f(x)‖₂ = {s['median_logit_norm']:.4g}, "
        f"median ratio {s['median_ratio']:.3%}), median ‖δ‖₂ = {s['median_delta_norm']:.4g} px",
        f"  images with clipped pixels: {s['n_images_clipped']}, max |δ| outside the mask: {s['max_outside']}",
    ]
    if s["n_failed"]:
        shown = ", ".join(map(str, s["failed_rows"][:20])) + (" …" if s["n_failed"] > 20 else "")
        lines.append(f"  failed rows (kept, flagged passed=False): {shown}")
    if "time_s" in s:
        lines.append(f"  time: {s['time_s']:.1f} s")
    return "\n".join(lines)


def _resolve_device(device: str | torch.device | None) -> torch.device:
    dev = torch.device(device if device is not None else "cpu")
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {str(dev)!r} was requested but CUDA is not available; pass --device cpu")
    return dev


def craft_file(
    data: str | Path,
    model_path: str | Path,
    out: str | Path | None = None,
    *,
    device: str | torch.device | None = "cpu",
    force: bool = False,
    max_batches: int | None = None,
    **options: Any,
) -> dict[str, Any]:
    """Craft, verify and store the IIR δ patches of a dataset file (BAM §4.4; docs/dataset.md#the-delta-patch).

    Args:
        data: the dataset file holding ``bamboo_forest`` and ``obj_scene``.
        model_path: the scene model's checkpoint (BAM: the scene-only model, bamkit's ``f_empty``).
        out: where the ``bamboo_forest_patch`` set goes: None or ``data`` = into the data file itself; another
            path = a new small dataset file holding ``bamboo_forest`` and ``bamboo_forest_patch``
            (see :func:`bamkit.delta.store.write_patch_set`).
        device: where to optimise (``"cpu"``, ``"cuda"``, ``"cuda:1"`` …); never chosen automatically.
        force: recompute even when the output holds a current set.
        max_batches: stop after this many newly computed batches (they are kept in ``<out>.delta-parts``; the
            next call resumes); the summary then has ``complete=False`` and no set is written.
        **options: :class:`~bamkit.delta.options.DeltaOptions` fields (``steps``, ``lr``, ``optimizer``,
            ``batch_size``, ``projection``, ``tol``, ``threshold``, ``seed`` …).

    Returns:
        the summary (:func:`summarize` plus ``out``, ``set``, ``model``, ``time_s``, ``skipped``, ``complete``).
    """
    from bamkit.models import load_classifier

    opts = DeltaOptions.from_kwargs(**options)
    data = Path(data)
    out = Path(out) if out is not None else data
    dev = _resolve_device(device)
    inputs = store.read_inputs(data)
    model, meta = load_classifier(model_path)
    if meta.label_field != "scene_label":
        log.warning("model %s predicts %s; BAM's δ uses a scene model (f_empty)", meta.name, meta.label_field)
    key = run_key(inputs.input_hash, meta.checkpoint_hash, opts)
    with output_lock(out, "δ patch file"):
        return _craft(model, meta, inputs, opts, data, out, key, dev, force, max_batches)


def _craft(model, meta, inputs, opts, data: Path, out: Path, key: str, dev, force: bool, max_batches) -> dict:
    """:func:`craft_file` under the output's lock."""
    base = {"out": str(out), "set": store.PATCH_SET, "model": meta.name, "steps": opts.steps}
    if not force and store.stored_key(out) == key:
        _, figures, _ = store.read_patch_set(out)
        return {**summarize(figures, opts.threshold), **base, "skipped": True, "complete": True}

    model = model.to(dev).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    partial = store.PartialRun(out.with_name(out.name + ".delta-parts"), key)
    t0 = time.perf_counter()
    res = craft_arrays(model, meta.preprocess, inputs, opts, dev, partial=partial, max_batches=max_batches)
    elapsed = time.perf_counter() - t0
    if res is None:
        return {
            **base,
            "complete": False,
            "batches_done": partial.done(),
            "time_s": elapsed,
            "skipped": False,
        }

    figures = patch_figures(
        model,
        meta.preprocess,
        inputs.scene,
        res["images"],
        inputs.masks,
        opts.threshold,
        device=dev,
        batch_size=max(opts.batch_size, 1),
    )
    figures.update(steps_run=res["steps_run"], n_clipped=res["n_clipped"])
    images_sha = hashlib.sha256(np.ascontiguousarray(res["images"]).tobytes()).hexdigest()
    attrs = {
        "key": key,
        "options": opts.to_dict(),
        "seed": opts.seed,
        "threshold": opts.threshold,
        "model": meta.name,
        "model_checkpoint_hash": meta.checkpoint_hash,
        "model_train_set": meta.train_set,
        "input_hash": inputs.input_hash,
        "images_sha256": images_sha,
        "scene_set": store.SCENE_SET,
        "source_set": store.SOURCE_SET,
        "versions": versions(),
    }
    fields = {**inputs.fields, "images": res["images"]}
    store.write_patch_set(data, out, fields, figures, res["clipped"], attrs)
    # The figures were computed from res["images"]; check the stored bytes are exactly those (lossless storage).
    stored, _, _ = store.read_patch_set(out)
    if hashlib.sha256(np.ascontiguousarray(stored).tobytes()).hexdigest() != images_sha:
        raise DataError(
            f"the patched images read back from {str(out)!r} differ from those written; the file or "
            "disk is faulty — re-run 'bamkit delta --force'"
        )
    partial.clear()
    summary = summarize(figures, opts.threshold)
    return {**summary, **base, "time_s": elapsed, "skipped": False, "complete": True}


def verify_file(
    path: str | Path,
    model_path: str | Path,
    device: str | torch.device | None = "cpu",
    atol: float = 1e-4,
) -> dict[str, Any]:
    """Recompute every verified figure of a stored patch set from its stored images and compare.

    Args:
        path: a file holding ``bamboo_forest`` and ``bamboo_forest_patch``.
        model_path: the checkpoint the set was made with (its hash must match the set's).
        device: where to run the model.
        atol: tolerance on float figures (float32 storage; a different device may differ in the last bits).

    Returns:
        ``{"ok": bool, "mismatches": [figure names], "summary": summarize(...)}``.
    """
    from bamkit.models import load_classifier

    model, meta = load_classifier(model_path)
    images, figures, attrs = store.read_patch_set(path)
    if attrs.get("model_checkpoint_hash") not in (None, meta.checkpoint_hash):
        raise DataError(
            f"set {store.PATCH_SET!r} of {str(path)!r} was made with another checkpoint than "
            f"{str(model_path)!r}; pass the model it was made with (its name: {attrs.get('model')!r})"
        )
    dev = _resolve_device(device)
    from bamkit.data.h5 import BamFile

    with BamFile(path) as bf:
        scene = bf[attrs.get("scene_set", store.SCENE_SET)].read("images")
        masks = bf[store.PATCH_SET].read("masks")
    threshold = float(attrs.get("threshold", DeltaOptions().threshold))
    again = patch_figures(model.to(dev).eval(), meta.preprocess, scene, images, masks, threshold, device=dev)
    mismatches = []
    for k in VERIFIED:
        a, b = np.asarray(figures[k]), np.asarray(again[k]).astype(FIGURES[k])
        ok = np.allclose(a, b, rtol=1e-5, atol=atol) if a.dtype.kind == "f" else np.array_equal(a, b)
        if not ok:
            mismatches.append(k)
    return {"ok": not mismatches, "mismatches": mismatches, "summary": summarize(figures, threshold)}
