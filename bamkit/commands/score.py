"""Score your own attribution methods against BAM, beside the methods of a finished run.

Examples:
  bamkit score demo_out my_method.py:gradient_squared
  bamkit score demo_out GSQ=./my_method.py:gradient_squared OCC=captum.attr:Occlusion \
      --set execution.batch_size=16
  bamkit score runs/paper mypkg.saliency:my_method --recompute my_method    # compute its maps again

A method is package.module:callable or ./file.py:callable (a function f(model, inputs, target) -> Tensor, or a
captum Attribution class, built around each model), or a registered name; LABEL= names its rows. Everything
else comes from the run folder (the folder 'bamkit run --out' wrote, or a results folder): its suite, data,
models, δ patches, verification, the maps and TCAV scores it cached. Only the new methods' maps are computed.
The results and the report go to RUN/scores/<labels>/ (--out elsewhere; --in-place into the run's own results);
the run is not modified otherwise. The contract a method meets: docs/score-your-method.md.
"""

from __future__ import annotations

import argparse

from bamkit.cli_options import METHOD_FORMS, METHOD_METAVAR, add_recompute, add_set


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "run", help="a finished run folder (bamkit run --out) or results folder (bamkit evaluate --out)"
    )
    p.add_argument("methods", nargs="+", metavar=METHOD_METAVAR, help=f"a method to score: {METHOD_FORMS}")
    p.add_argument("--out", help="results folder (default RUN/scores/<labels>)")
    p.add_argument("--in-place", action="store_true", help="add the methods to the run's own results folder")
    add_recompute(p)
    p.add_argument("--force", action="store_true", help="compute every new method's maps again")
    add_set(
        p, "the run's suite's execution settings (only those: its rows are reused)", "execution.batch_size=16"
    )


def run(args: argparse.Namespace) -> int:
    import json

    import pandas as pd

    from bamkit.evaluate.score import score_methods
    from bamkit.evaluate.tables import nonfinite_warnings
    from bamkit.report import write_report

    out = score_methods(args.run, args.methods, out=args.out, in_place=args.in_place,
                        recompute=tuple(args.recompute), force=args.force, overrides=tuple(args.overrides))  # fmt: skip
    page = write_report(out)
    df = pd.read_csv(out / "summary.csv")
    labels = json.loads((out / "summary.json").read_text())["scored"]["methods"]
    rows = df[df["method"].isin(labels) & df["higher_is_better"].notna()]
    shown = rows[["method", "metric", "value", "ci_low", "ci_high", "rank"]].copy()
    counts = df[df["higher_is_better"].notna() & ~df["reference"]].groupby("metric")["method"].nunique()
    shown["rank"] = [
        f"{int(r)} of {counts[m]}" if r == r else "-" for r, m in zip(shown["rank"], shown["metric"])
    ]
    print(shown.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    for line in nonfinite_warnings(df, labels):  # why a method of yours shows no rank
        print(line)
    print(f"report: {page}")
    print(out)
    return 0
