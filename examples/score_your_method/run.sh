#!/usr/bin/env bash
# The README's "Score your method" walk: score methods of your own beside a finished run.
#
#   examples/score_your_method/run.sh RUN_DIR [[LABEL=]module:callable ...]
#
# Without methods it scores this folder's my_method:gradient_squared; this folder is put on the import path,
# so a module beside my_method.py works too. The last line printed is the results folder.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
run="${1:?usage: run.sh RUN_DIR [[LABEL=]module:callable ...]}"
shift
methods=("$@")
[ ${#methods[@]} -gt 0 ] || methods=("my_method:gradient_squared")
bamkit="${BAMKIT:-$here/../../.venv/bin/bamkit}"
[ -x "$bamkit" ] || bamkit="$(command -v bamkit)"
PYTHONPATH="$here${PYTHONPATH:+:$PYTHONPATH}" "$bamkit" score "$run" "${methods[@]}"
