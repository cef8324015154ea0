"""bamkit: benchmark image attribution methods with BAM (Yang & Kim 2019, arXiv:1907.09701).

The package holds all logic; the top-level ``data_recipes/``, ``train/`` and ``evaluate/`` folders hold configs.
Importing ``bamkit`` is cheap: stages import torch and friends lazily.
"""

__version__ = "0.1.0"
