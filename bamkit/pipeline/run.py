"""Run every stage of the main job in order, skipping the ones whose outputs are current.

sources → build → train → verify → delta → evaluate → report. Each stage writes its outputs under ``out`` and a
stamp (``out/.stamps/<stage>.json``); an interrupted run continues where it stopped because each stage resumes
its own partial work (the build from its last chunk, training from ``last.ckpt``, evaluation from its cache).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from bamkit import __version__
from bamkit.config import dump_yaml, to_dict
from bamkit.errors import CheckFailed
from bamkit.locks import output_lock
from bamkit.pipeline import stamps
from bamkit.pipeline.config import RunConfig, RunPaths, resolve_paths
from bamkit.verify.result import Thresholds

log = logging.getLogger("bamkit.run")

STAGES = ("sources", "build", "train", "verify", "delta", "evaluate", "report")


@dataclass(frozen=True)
class RunOptions:
    """What the command line adds to a run config: ``force`` (every stage again), ``methods`` (scored beside
    the suite's)."""

    force: bool = False
    methods: tuple[str, ...] = ()


@dataclass
class StageResult:
    stage: str
    status: str  # "ran" | "skipped"
    seconds: float
    info: dict[str, Any] = field(default_factory=dict)


@dataclass
class PipelineResult:
    out: Path
    stages: list[StageResult]

    @property
    def report(self) -> Path:
        return self.out / "report" / "index.html"

    def table(self) -> str:
        rows = [f"{'stage':<10} {'status':<8} {'seconds':>8}"]
        rows += [f"{s.stage:<10} {s.status:<8} {s.seconds:>8.1f}" for s in self.stages]
        total = sum(s.seconds for s in self.stages)
        rows.append(f"{'total':<10} {'':<8} {total:>8.1f}")
        return "\n".join(rows)


# Where each stage writes, relative to the run folder.
_LAYOUT = {
    "sources": "sources",
    "data": "data/dataset.h5",
    "delta": "data/delta.h5",
    "models": "models",
    "verify": "verify",
    "results": "results",
    "report": "report",
}


@dataclass(frozen=True)
class Layout:
    """Where each stage writes: ``lay.data`` is ``<out>/data/dataset.h5`` and so on (:data:`_LAYOUT`)."""

    out: Path

    def __getattr__(self, name: str) -> Path:
        if name in _LAYOUT:
            return self.out / _LAYOUT[name]
        raise AttributeError(name)

    def rel(self, p: Path) -> str:
        return str(p.relative_to(self.out))


def _source_paths(rc: RunConfig, lay: Layout, paths: RunPaths) -> dict[str, str]:
    if rc.sources.synthetic:
        root = lay.sources
        return {
            "coco_annotations": str(root / "coco" / "annotations" / "instances_train2017.json"),
            "coco_images": str(root / "coco" / "train2017"),
            "miniplaces": str(root / "miniplaces"),
        }
    return {k: str(getattr(paths, k)) for k in ("coco_annotations", "coco_images", "miniplaces")}


def _seed(rc: RunConfig) -> dict[str, int]:
    """The run seed as an override of a stage's own seed (none when the run config leaves it null)."""
    return {} if rc.seed is None else {"seed": rc.seed}


def _recipe(rc: RunConfig, lay: Layout, paths: RunPaths):
    from bamkit.data.recipe import load_recipe

    return load_recipe(paths.recipe, **_source_paths(rc, lay, paths), **_seed(rc))


def _train_overrides(rc: RunConfig) -> list[str]:
    return [f"seed={rc.seed}"] if rc.seed is not None else []


def _train_configs(rc: RunConfig, paths: RunPaths) -> list:
    from bamkit.train.config import load_configs

    configs = [c for c, _ in load_configs(paths.train, _train_overrides(rc))]
    return [replace(c, smoke=True) if rc.smoke else c for c in configs]


def _delta_options(rc: RunConfig):
    from bamkit.delta.options import DeltaOptions

    return DeltaOptions.from_kwargs(**{**rc.delta, **_seed(rc)})


def _suite(rc: RunConfig, lay: Layout, paths: RunPaths, methods: tuple[str, ...] = ()):
    from bamkit.evaluate import load_suite

    return load_suite(
        paths.suite,
        methods=methods,
        data=lay.data,
        models=lay.models,
        patch_data=lay.delta,
        verify=lay.verify / "verify.json",
        smoke=rc.smoke or None,
        **_seed(rc),
    )


def _stage_sources(rc: RunConfig, lay: Layout, paths: RunPaths, opt: RunOptions) -> tuple[list[str], dict]:
    if not rc.sources.synthetic:
        return [], {"real": _source_paths(rc, lay, paths)}
    from bamkit.sources.synth import write_sources

    summary = write_sources(lay.sources, scale=rc.sources.scale, seed=rc.sources_seed, workers=rc.workers)
    return [lay.rel(lay.sources)], {"summary": summary}


def _stage_build(rc: RunConfig, lay: Layout, paths: RunPaths, opt: RunOptions) -> tuple[list[str], dict]:
    from bamkit.data.build import build_dataset

    build_dataset(_recipe(rc, lay, paths), lay.data, workers=rc.workers, force=opt.force)
    return [lay.rel(lay.data)], {}


def _stage_train(rc: RunConfig, lay: Layout, paths: RunPaths, opt: RunOptions) -> tuple[list[str], dict]:
    from bamkit.train.runner import train_config

    ckpts = train_config(
        paths.train,
        data=lay.data,
        out=lay.models,
        smoke=rc.smoke,
        overrides=_train_overrides(rc),
        force=opt.force,
    )
    return [lay.rel(Path(c)) for c in ckpts], {"checkpoints": [Path(c).name for c in ckpts]}


def _stage_verify(rc: RunConfig, lay: Layout, paths: RunPaths, opt: RunOptions) -> tuple[list[str], dict]:
    from bamkit.verify import verify_models

    res = verify_models(lay.data, lay.models, max_pairs=rc.verify_max_pairs, seed=rc.seed or 0)
    lay.verify.mkdir(parents=True, exist_ok=True)
    res.save(lay.verify / "verify.json")
    print(res.table())
    if not res.passed:
        msg = f"verification: expected orderings failed: {'; '.join(map(str, res.failures))}"
        if rc.verify_strict:
            raise CheckFailed(msg + f" (see {lay.verify / 'verify.txt'})")
        log.warning("%s; continuing (set verify_strict: true to stop here)", msg)
    return [lay.rel(lay.verify / "verify.json")], {"passed": bool(res.passed)}


def _stage_delta(rc: RunConfig, lay: Layout, paths: RunPaths, opt: RunOptions) -> tuple[list[str], dict]:
    from bamkit.delta.craft import craft_file

    options = {**rc.delta, **_seed(rc)}
    summary = craft_file(
        lay.data, lay.models / f"{rc.delta_model}.ckpt", out=lay.delta, force=opt.force, **options
    )
    return [lay.rel(lay.delta)], {"summary": summary}


def _stage_evaluate(rc: RunConfig, lay: Layout, paths: RunPaths, opt: RunOptions) -> tuple[list[str], dict]:
    from bamkit.evaluate import evaluate

    results = evaluate(_suite(rc, lay, paths, opt.methods), lay.results, force=opt.force)
    return [lay.rel(Path(results))], {}


def _stage_report(rc: RunConfig, lay: Layout, paths: RunPaths, opt: RunOptions) -> tuple[list[str], dict]:
    from bamkit.report import write_report

    page = write_report(lay.results, out=lay.report)
    return [lay.rel(Path(page))], {}


_RUNNERS: dict[str, Callable[[RunConfig, Layout, RunPaths, RunOptions], tuple[list[str], dict]]] = {
    "sources": _stage_sources,
    "build": _stage_build,
    "train": _stage_train,
    "verify": _stage_verify,
    "delta": _stage_delta,
    "evaluate": _stage_evaluate,
    "report": _stage_report,
}


def _stage_config(stage: str, rc: RunConfig, lay: Layout, paths: RunPaths, opt: RunOptions) -> Any:
    """What a stage's result depends on besides its upstream stages: the resolved configuration the stage
    actually reads (bases merged, per-model files, overrides and the run seed applied; never the worker count),
    so any edit of a config file re-runs exactly the stages it affects."""
    if stage == "sources":
        return {"sources": to_dict(rc.sources), "seed": rc.sources_seed, "version": __version__}
    if stage == "build":
        return {"recipe": dump_yaml(_recipe(rc, lay, paths)), "version": __version__}
    if stage == "train":
        return {
            "models": [c.smoke_applied().to_dict() for c in _train_configs(rc, paths)],
            "version": __version__,
        }
    if stage == "verify":
        return {
            "strict": rc.verify_strict,
            "max_pairs": rc.verify_max_pairs,
            "seed": rc.seed,
            "thresholds": to_dict(Thresholds()),
            "version": __version__,
        }
    if stage == "delta":
        return {"model": rc.delta_model, "options": _delta_options(rc).to_dict(), "version": __version__}
    if stage == "evaluate":
        return {"suite": _suite(rc, lay, paths, opt.methods).to_dict(), "version": __version__}
    return {"version": __version__}


_UPSTREAM = {
    "sources": (),
    "build": ("sources",),
    "train": ("build",),
    "verify": ("build", "train"),
    "delta": ("build", "train"),
    "evaluate": ("build", "train", "verify", "delta"),
    "report": ("evaluate",),
}


def run_pipeline(
    rc: RunConfig,
    config_file: Path,
    out: str | Path,
    only: tuple[str, ...] = (),
    force: bool = False,
    methods: tuple[str, ...] = (),
) -> PipelineResult:
    """Run the stages of ``rc`` (read from ``config_file``, whose folder its relative paths start from) into
    ``out``; ``only`` restricts to the named stages (their inputs must exist); ``force`` runs every stage again
    (each recomputing its outputs) even where they are current; ``methods`` are scored beside the suite's
    (``--method``)."""
    paths = resolve_paths(rc, Path(config_file))
    lay = Layout(Path(out).resolve())
    lay.out.mkdir(parents=True, exist_ok=True)
    with output_lock(lay.out, "run folder", folder=True):
        return _run(rc, paths, lay, only, RunOptions(force, tuple(methods)))


def _run(
    rc: RunConfig, paths: RunPaths, lay: Layout, only: tuple[str, ...], opt: RunOptions
) -> PipelineResult:
    """:func:`run_pipeline` under the run folder's lock."""
    keys: dict[str, str] = {}
    results: list[StageResult] = []
    for stage in STAGES:
        key = stamps.stage_key(
            stage, _stage_config(stage, rc, lay, paths, opt), {u: keys[u] for u in _UPSTREAM[stage]}
        )
        keys[stage] = key
        if (only and stage not in only) or (not opt.force and stamps.is_current(lay.out, stage, key)):
            results.append(StageResult(stage, "skipped", 0.0))
            print(f"[bamkit run] {stage}: current, skipped", flush=True)
            continue
        print(f"[bamkit run] {stage}: running", flush=True)
        t0 = time.perf_counter()
        outputs, info = _RUNNERS[stage](rc, lay, paths, opt)
        dt = time.perf_counter() - t0
        stamps.write(lay.out, stage, key, outputs, dt, info)
        results.append(StageResult(stage, "ran", dt, info))
        print(f"[bamkit run] {stage}: done in {dt:.1f} s", flush=True)
    return PipelineResult(lay.out, results)
