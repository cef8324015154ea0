"""The main job (`bamkit run`): every stage in order, each skipped when its outputs are current."""

from bamkit.pipeline.config import RunConfig, load_run_config
from bamkit.pipeline.run import run_pipeline

__all__ = ["RunConfig", "load_run_config", "run_pipeline"]
