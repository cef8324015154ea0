"""The ``bamkit`` command line (docs/design.md#the-command-line). Each subcommand lives in ``bamkit/commands/<name>.py`` with
``add_arguments(parser)`` and ``run(args) -> int | None``; its module docstring, plain text, is its ``--help``.

bamkit's own errors (:class:`~bamkit.errors.BamkitError`) print one line and exit non-zero; anything else is a
bug and keeps its traceback. ``-v`` (more log output, ``-vv`` for debug) is accepted before or after the
subcommand.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import logging
import shutil
import sys
import traceback
from pathlib import Path

from bamkit import __version__
from bamkit.allocator import tune_allocator
from bamkit.cli_options import verbosity
from bamkit.errors import BamkitError

# (command, module, one-line help). Order is the order in `bamkit --help`.
COMMANDS: list[tuple[str, str, str]] = [
    ("sources", "sources", "write synthetic source data in the real COCO / MiniPlaces formats"),
    ("build", "build", "build every set a dataset recipe names into one HDF5 file"),
    ("inspect", "inspect", "summarise a dataset file and check its invariants"),
    ("preview", "preview", "write a contact sheet of a set's images with mask outlines"),
    ("train", "train", "train one BAM model, or every model of a sweep config (Lightning)"),
    ("verify", "verify", "check the models' relative feature importance (BAM Figure 2)"),
    ("delta", "delta", "craft the IIR δ patches into the bamboo_forest_patch set"),
    ("evaluate", "evaluate", "compute attributions and metrics into a results folder"),
    ("score", "score", "score your own attribution methods beside a finished run's"),
    ("report", "report", "write the HTML/Markdown/CSV report of a results folder"),
    ("run", "run", "the main job: every stage in order (default: the embedded demo)"),
    ("methods", "methods", "list the registered attribution methods with their defaults"),
    ("metrics", "metrics", "list the registered metrics"),
    ("configs", "configs", "copy the shipped configs into a folder to edit, or print where they are"),
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bamkit",
        description="Benchmark image attribution methods with BAM (Yang & Kim 2019).",
    )
    parser.add_argument("--version", action="version", version=f"bamkit {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-vv for debug)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, module, help_text in COMMANDS:
        mod = importlib.import_module(f"bamkit.commands.{module}")
        p = sub.add_parser(
            name,
            help=help_text,
            description=(mod.__doc__ or help_text).strip(),
            formatter_class=argparse.RawDescriptionHelpFormatter,
            parents=[verbosity()],
        )
        mod.add_arguments(p)
        p.set_defaults(_module=mod)
    return parser


def os_error_message(e: OSError) -> str | None:
    """One line for the file-system faults a user meets (read-only output, permission, full disk), naming the
    path; None for anything else."""
    import errno

    where = e.filename or "the output"
    if e.errno == errno.ENOSPC:
        free = ""
        with contextlib.suppress(OSError):
            free = f" ({shutil.disk_usage(Path(where).parent if e.filename else '.').free / 1e6:.0f} MB free there)"
        return (
            f"disk full while writing {where}{free}; nothing incomplete was left under a final name — free space "
            "or choose another output folder, then run the same command again to resume"
        )
    if e.errno == errno.ENOENT and e.filename:  # a path the user gave that is not there
        return f"no such file or folder: {where}; check the path"
    if e.errno == errno.EFBIG:
        return (
            f"file size limit reached while writing {where} (ulimit -f); nothing incomplete was left under a "
            "final name — raise the limit or write elsewhere, then run the same command again to resume"
        )
    if e.errno == errno.EROFS:
        return (
            f"cannot write {where}: read-only file system; choose an output folder you can write to (--out)"
        )
    if e.errno in (errno.EACCES, errno.EPERM):
        return (
            f"permission denied on {where}; choose inputs you can read and an output folder you can write to "
            "(--out), or fix the permissions"
        )
    return None


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    args.verbose += getattr(args, "verbose_after", 0)
    tune_allocator()  # fewer page faults in the long tensor loops (bamkit.allocator)
    logging.basicConfig(
        level=logging.WARNING - 10 * min(args.verbose + 1, 2),
        format="%(levelname)s %(name)s: %(message)s" if args.verbose > 1 else "%(message)s",
        stream=sys.stderr,
    )
    # h5py logs every dtype converter it creates at DEBUG: noise, not bamkit's log
    logging.getLogger("h5py").setLevel(logging.WARNING)
    try:
        rc = args._module.run(args)
    except BamkitError as e:
        if args.verbose and e.__cause__ is not None:  # a user's method raised: its traceback behind -v
            traceback.print_exception(e.__cause__, file=sys.stderr)
        print(f"bamkit {args.command}: error: {e}", file=sys.stderr)
        return e.exit_code
    except OSError as e:
        msg = os_error_message(e)
        if msg is None:
            raise  # not the user's file system: a bug keeps its traceback
        print(f"bamkit {args.command}: error: {msg}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"bamkit {args.command}: interrupted; re-run the same command to resume", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # `bamkit methods | head`: the reader went away; that is not an error of ours.
        import os

        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    return int(rc or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
