"""The evaluate stage: a suite's attributions and metrics into a results folder (``bamkit evaluate``).

Results folder::

    suite.yaml          the resolved, validated suite
    per_image.csv       tidy per-image table (+ .parquet with pyarrow)
    per_pair.csv        per-pair BAM metric values with the correctness filter
    stability.csv       mean Kendall τ and cosine per method × protocol × level (stability scenario)
    summary.csv         leaderboard: metric × method, value, trials mean/std, 95 % CI, rank
    summary.json        everything the report reads (+ paired tests, ranking agreement, provenance)
    verify.json         the verification result used for RMCS's accuracy drop (when found)
    cache/*.h5          the attribution cache (one file per writer process)
    examples/           one input per scenario with every method's map (saliency grids)
    shards/             per-shard tables of ``--shard i/n`` and multi-process runs (merged when complete)

Modules: :mod:`~bamkit.evaluate.suite` (schema), :mod:`~bamkit.evaluate.validate` (checks, loading),
:mod:`~bamkit.evaluate.methods` (method entries), :mod:`~bamkit.evaluate.scenarios` (one module per scenario and
the loops over them), :mod:`~bamkit.evaluate.legs` (what a scenario plans), :mod:`~bamkit.evaluate.runner`
(attributions and per-image scores), :mod:`~bamkit.evaluate.cache`, :mod:`~bamkit.evaluate.pairs` and
:mod:`~bamkit.evaluate.tables` (per pair, summary), :mod:`~bamkit.evaluate.shards`,
:mod:`~bamkit.evaluate.distributed`, :mod:`~bamkit.evaluate.merge`, :mod:`~bamkit.evaluate.stage` (entry
points), :mod:`~bamkit.evaluate.score` (your methods beside a finished run).
"""

from bamkit.evaluate.merge import merge_shards
from bamkit.evaluate.shards import parse_shard
from bamkit.evaluate.stage import evaluate, run_suite
from bamkit.evaluate.suite import Suite
from bamkit.evaluate.validate import load_suite, suite_from_dict

__all__ = ["run_suite", "evaluate", "parse_shard", "merge_shards", "Suite", "load_suite", "suite_from_dict"]
