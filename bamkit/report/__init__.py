"""The report of a results folder (``bamkit report``): HTML + Markdown + CSV with plots and saliency grids.

``write_report(results_dir, out)`` writes ``out/index.html`` (self-contained: opens from disk, no network),
``out/report.md`` with ``out/figures/*.png``, and ``out/leaderboard.csv`` / ``agreement.csv`` /
``paired_tests.csv`` / ``stability.csv``. Everything comes from the files ``bamkit evaluate`` wrote (``summary.json``,
``examples/``, ``verify.json``), so a report can be rebuilt without models or data.

Modules: :mod:`~bamkit.report.document` (section order), :mod:`~bamkit.report.sections`,
:mod:`~bamkit.report.stability`, :mod:`~bamkit.report.grids`, :mod:`~bamkit.report.plots`,
:mod:`~bamkit.report.html` (Doc and renderers), :mod:`~bamkit.report.write`.
"""

from bamkit.report.document import build_document
from bamkit.report.write import write_report

__all__ = ["write_report", "build_document"]
