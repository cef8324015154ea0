"""Run every stage of the main job in order, skipping the ones whose outputs are current.

sources → build → train → verify → delta → evaluate → report. Each stage writes its outputs under ``out`` and a
stamp (``out/.stamps/<stage>.json``); an interrupted run continues where it stopped because each stage resumes
its own partial work (the build from its last chunk, training from ``last.ckpt``, evaluation from its cache).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bamkit import __version__, atomic
from bamkit.config import to_dict
from bamkit.errors import CheckFailed
from bamkit.pipeline import stamps
from bamkit.pipeline.config import RunConfig, resolve

log = logging.getLogger("bamkit.run")

STAGES = ("sources", "build", "train", "verify", "delta", "evaluate", "report")


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


@dataclass(frozen=True)
class Layout:
    """Where each stage writes, relative to the run folder."""

    out: Path

    @property
    def sources(self) -> Path:
        return self.out / "sources"

    @property
    def data(self) -> Path:
        return self.out / "data" / "dataset.h5"

    @property
    def delta(self) -> Path:
        return self.out / "data" / "delta.h5"

    @property
    def models(self) -> Path:
        return self.out / "models"

    @property
    def verify(self) -> Path:
        return self.out / "verify"

    @property
    def results(self) -> Path:
        return self.out / "results"

    @property
    def report(self) -> Path:
        return self.out / "report"

    def rel(self, p: Path) -> str:
        return str(p.relative_to(self.out))


def _source_paths(rc: RunConfig, lay: Layout, base: Path) -> dict[str, str]:
    if rc.sources.synthetic:
        root = lay.sources
        return {
            "coco_annotations": str(root / "coco" / "annotations" / "instances_train2017.json"),
            "coco_images": str(root / "coco" / "train2017"),
            "miniplaces": str(root / "miniplaces"),
        }
    s = rc.sources
    return {
        k: str(resolve(v, base))
        for k, v in (
            ("coco_annotations", s.coco_annotations),
            ("coco_images", s.coco_images),
            ("miniplaces", s.miniplaces),
        )
    }


def _stage_sources(rc: RunConfig, lay: Layout, base: Path) -> tuple[list[str], dict]:
    if not rc.sources.synthetic:
        paths = _source_paths(rc, lay, base)
        return [], {"real": paths}
    from bamkit.sources.synth import write_sources

    summary = write_sources(lay.sources, scale=rc.sources.scale, seed=rc.sources.seed)
    return [lay.rel(lay.sources)], {"summary": summary}


def _recipe(rc: RunConfig, lay: Layout, base: Path):
    from bamkit.data.recipe import load_recipe

    return load_recipe(resolve(rc.recipe, base), **_source_paths(rc, lay, base))


def _stage_build(rc: RunConfig, lay: Layout, base: Path) -> tuple[list[str], dict]:
    from bamkit.data.build import build_dataset

    build_dataset(_recipe(rc, lay, base), lay.data, workers=rc.workers)
    return [lay.rel(lay.data)], {}


def _stage_train(rc: RunConfig, lay: Layout, base: Path) -> tuple[list[str], dict]:
    from bamkit.train.runner import train_config

    ckpts = train_config(resolve(rc.train, base), data=lay.data, out=lay.models, smoke=rc.smoke)
    return [lay.rel(Path(c)) for c in ckpts], {"checkpoints": [Path(c).name for c in ckpts]}


def _stage_verify(rc: RunConfig, lay: Layout, base: Path) -> tuple[list[str], dict]:
    from bamkit.verify import verify_models

    res = verify_models(lay.data, lay.models)
    lay.verify.mkdir(parents=True, exist_ok=True)
    atomic.write_text(lay.verify / "verify.json", json.dumps(res.to_dict(), indent=2, default=str))
    atomic.write_text(lay.verify / "verify.txt", res.table() + "\n")
    print(res.table())
    if not res.passed:
        msg = f"verification: expected orderings failed: {'; '.join(map(str, res.failures))}"
        if rc.verify_strict:
            raise CheckFailed(msg + f" (see {lay.verify / 'verify.txt'})")
        log.warning("%s; continuing (set verify_strict: true to stop here)", msg)
    return [lay.rel(lay.verify / "verify.json")], {"passed": bool(res.passed)}


def _stage_delta(rc: RunConfig, lay: Layout, base: Path) -> tuple[list[str], dict]:
    from bamkit.delta.craft import craft_file

    summary = craft_file(lay.data, lay.models / f"{rc.delta_model}.ckpt", out=lay.delta, **rc.delta)
    return [lay.rel(lay.delta)], {"summary": summary}


def _stage_evaluate(rc: RunConfig, lay: Layout, base: Path) -> tuple[list[str], dict]:
    from bamkit.evaluate import run_suite

    results = run_suite(
        resolve(rc.suite, base),
        data=lay.data,
        models=lay.models,
        out=lay.results,
        patch_data=lay.delta,
        verify=lay.verify / "verify.json",
        smoke=rc.smoke or None,
    )
    return [lay.rel(Path(results))], {}


def _stage_report(rc: RunConfig, lay: Layout, base: Path) -> tuple[list[str], dict]:
    from bamkit.report import write_report

    page = write_report(lay.results, out=lay.report)
    return [lay.rel(Path(page))], {}


_RUNNERS: dict[str, Callable[[RunConfig, Layout, Path], tuple[list[str], dict]]] = {
    "sources": _stage_sources,
    "build": _stage_build,
    "train": _stage_train,
    "verify": _stage_verify,
    "delta": _stage_delta,
    "evaluate": _stage_evaluate,
    "report": _stage_report,
}


def _file_text(path: Path) -> str:
    return path.read_text(encoding="utf-8") if path.is_file() else ""


def _stage_config(stage: str, rc: RunConfig, lay: Layout, base: Path) -> Any:
    """What a stage's result depends on besides its upstream stages (never the worker count)."""
    if stage == "sources":
        return {"sources": to_dict(rc.sources), "version": __version__}
    if stage == "build":
        from bamkit.config import dump_yaml

        return {"recipe": dump_yaml(_recipe(rc, lay, base)), "version": __version__}
    if stage == "train":
        return {"train": _file_text(resolve(rc.train, base)), "smoke": rc.smoke, "version": __version__}
    if stage == "verify":
        return {"strict": rc.verify_strict, "version": __version__}
    if stage == "delta":
        return {"model": rc.delta_model, "options": rc.delta, "version": __version__}
    if stage == "evaluate":
        return {"suite": _file_text(resolve(rc.suite, base)), "smoke": rc.smoke, "version": __version__}
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


def run_pipeline(rc: RunConfig, base: Path, out: str | Path, only: tuple[str, ...] = ()) -> PipelineResult:
    """Run the stages of ``rc`` into ``out``; ``only`` restricts to the named stages (their inputs must exist)."""
    lay = Layout(Path(out).resolve())
    lay.out.mkdir(parents=True, exist_ok=True)
    keys: dict[str, str] = {}
    results: list[StageResult] = []
    for stage in STAGES:
        key = stamps.stage_key(
            stage, _stage_config(stage, rc, lay, base), {u: keys[u] for u in _UPSTREAM[stage]}
        )
        keys[stage] = key
        if (only and stage not in only) or stamps.is_current(lay.out, stage, key):
            results.append(StageResult(stage, "skipped", 0.0))
            print(f"[bamkit run] {stage}: current, skipped", flush=True)
            continue
        print(f"[bamkit run] {stage}: running", flush=True)
        t0 = time.perf_counter()
        outputs, info = _RUNNERS[stage](rc, lay, base)
        dt = time.perf_counter() - t0
        stamps.write(lay.out, stage, key, outputs, dt, info)
        results.append(StageResult(stage, "ran", dt, info))
        print(f"[bamkit run] {stage}: done in {dt:.1f} s", flush=True)
    return PipelineResult(lay.out, results)
