"""Training of the BAM ground-truth models (Lightning), their checkpoints, and the Figure 2 verification.

Entry points: :func:`bamkit.train.runner.train_config` (``bamkit train``) and
:func:`bamkit.verify.verify_models` (``bamkit verify``). Submodules import Lightning lazily, so
``import bamkit.train`` stays cheap.
"""
