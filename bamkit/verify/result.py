"""The verification result (BAM Figure 2): thresholds, checks and the measured numbers, and their JSON form.

:class:`VerifyResult` knows how to write itself (``verify.json``, the table beside it, the k plot) and how to
read itself back (:meth:`VerifyResult.from_dict`, :func:`load_result`), so later stages (RMCS's accuracy drop,
the report) read one serialisation instead of guessing at its nesting.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from bamkit import atomic
from bamkit.errors import DataError
from bamkit.published import BAM_FIG2_TOP, BAM_K_ACCURACY
from bamkit.verify.checks import Check, Thresholds

# f_o keeps the object: its CF is the scene; f_s keeps the scene: its CF is the object.
ROLE_SETS = {"f_o": ("obj_gray", "scene_only"), "f_s": ("scene_only", "obj_gray")}


def published_fractions() -> dict[str, Any]:
    """BAM Fig. 2 (docs/reproduction.md#published-numbers) as fractions, the unit of the measured numbers."""
    return {
        "top": {role: {k: v / 100 for k, v in r.items()} for role, r in BAM_FIG2_TOP.items()},
        "k": {str(k): {"with": w / 100, "without": wo / 100} for k, (w, wo) in BAM_K_ACCURACY.items()},
    }


@dataclass
class VerifyResult:
    """Measured Figure 2 numbers, the published ones, and the checks."""

    data: str
    models_dir: str
    thresholds: Thresholds
    top: dict[str, dict[str, Any]] = field(default_factory=dict)
    extra: dict[str, dict[str, Any]] = field(default_factory=dict)
    k_series: list[dict[str, Any]] = field(default_factory=list)
    k_rho: float | None = None
    checks: list[Check] = field(default_factory=list)
    sample: dict[str, Any] = field(default_factory=dict)  # max_pairs, seed, n_pairs of Fig. 2 (top)

    @property
    def failures(self) -> list[Check]:
        return [c for c in self.checks if not c.passed]

    @property
    def passed(self) -> bool:
        return not self.failures

    def acc_drop(self) -> dict[float, float]:
        """k -> bamboo-forest accuracy drop in percentage points (the x axis of BAM Fig. 6/13)."""
        return {round(float(r["k"]), 1): 100.0 * float(r["drop"]) for r in self.k_series}

    def to_dict(self) -> dict[str, Any]:
        return {
            "data": self.data,
            "models_dir": self.models_dir,
            "passed": self.passed,
            "thresholds": asdict(self.thresholds),
            "top": self.top,
            "other_models": self.extra,
            "k_series": self.k_series,
            "k_spearman_rho": self.k_rho,
            "checks": [asdict(c) for c in self.checks],
            "sample": self.sample,
            "published": published_fractions(),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> VerifyResult:
        """The inverse of :meth:`to_dict` (unknown threshold keys of newer files are ignored)."""
        try:
            known = {f.name for f in fields(Thresholds)}
            th = Thresholds(**{k: v for k, v in (d.get("thresholds") or {}).items() if k in known})
            rho = d.get("k_spearman_rho")
            return cls(
                data=str(d.get("data", "")),
                models_dir=str(d.get("models_dir", "")),
                thresholds=th,
                top=dict(d.get("top") or {}),
                extra=dict(d.get("other_models") or {}),
                k_series=list(d.get("k_series") or []),
                k_rho=None if rho is None else float(rho),
                checks=[Check(**c) for c in d.get("checks") or []],
                sample=dict(d.get("sample") or {}),
            )
        except (TypeError, ValueError, AttributeError) as e:
            raise DataError(f"verification result is malformed ({e}); re-run 'bamkit verify'") from None

    def table(self) -> str:
        from bamkit.verify.render import table

        return table(self)

    def save(self, out_json: str | Path) -> list[Path]:
        """Write ``X.json``, ``X.txt`` (the table) and, with k-models, ``X_k.png``; returns the paths."""
        from bamkit.verify.render import k_series_png

        j = Path(out_json)
        atomic.write_text(j, json.dumps(self.to_dict(), indent=2, default=float) + "\n")
        txt = j.with_suffix(".txt")
        atomic.write_text(txt, self.table() + "\n")
        paths = [j, txt]
        if self.k_series:
            png = j.with_name(j.stem + "_k.png")
            atomic.write_bytes(png, k_series_png(self.k_series))
            paths.append(png)
        return paths


def load_result(path: str | Path) -> VerifyResult:
    """Read a ``verify.json`` written by :meth:`VerifyResult.save`; a missing or unreadable file is a DataError."""
    p = Path(path)
    try:
        d = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"verification result {str(p)!r} does not exist; run 'bamkit verify' first") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise DataError(
            f"cannot read verification result {str(p)!r} ({type(e).__name__}); re-run 'bamkit verify'"
        ) from None
    if not isinstance(d, dict):
        raise DataError(f"{str(p)!r} is not a verification result (expected a JSON object)")
    return VerifyResult.from_dict(d)
