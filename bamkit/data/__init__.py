"""The BAM dataset: recipes, seeded paste plans, pixel composition, HDF5 files (BAM §3, docs/dataset.md).

Pipeline: ``recipe.load_recipe`` (YAML -> frozen dataclasses) -> ``plan.make_plan`` (source choice and paste
specs, no pixels) -> ``build.build_dataset`` (decode sources once, compose in worker processes with
``compose``, stream chunks into one HDF5 file written by ``h5``) -> ``inspect`` / ``preview``.
Readers of built files use :class:`bamkit.data.h5.BamFile`.
"""

from bamkit.data.h5 import FIELDS, SCHEMA_VERSION, BamFile, SetView
from bamkit.data.h5_write import open_for_append, write_set

__all__ = ["FIELDS", "SCHEMA_VERSION", "BamFile", "SetView", "open_for_append", "write_set"]
