"""Helpers for tests and benchmarks: tiny models, synthetic tensors and files (one module per area)."""
