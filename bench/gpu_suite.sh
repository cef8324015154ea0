#!/usr/bin/env bash
# GPU checks and benchmarks in one go (run on a CUDA machine from the repo root):
#   bash bench/gpu_suite.sh [tests|scale|attr|delta|train|metrics|all] [OUTDIR]
# `scale` first: issue 14's figures (paper_scale ratio/hours/memory/cache, training projection) fit one short lease.
# Writes each log to OUTDIR (default ./gpu_logs). Python packages missing there can be installed beforehand.
set -uo pipefail
what=${1:-all}
out=${2:-gpu_logs}
mkdir -p "$out"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 BAMKIT_PROGRESS=0
py=${PYTHON:-python3}
run() { local name=$1; shift; echo "== $name: $*"; ( time "$@" ) 2>&1 | tee "$out/$name.log"; }
case $what in tests|all)
  run gpu_tests $py -m pytest -q -p no:cacheprovider -m gpu tests ;;
esac
case $what in scale|all)
  run paper_scale $py bench/paper_scale.py --device cuda --json "$out/paper_scale.json"
  run train_paper $py bench/train.py --device cuda --arch resnet50 --size 224 --stored 128 --workers 8 --channels-last ;;
esac
case $what in attr|all)
  run attr_fp32 $py bench/attribution.py --device cuda --size 224 --batch 64 --precision fp32 --json "$out/attr_fp32.json"
  run attr_bf16 $py bench/attribution.py --device cuda --size 224 --batch 256 --precision bf16 --channels-last --skip-captum --json "$out/attr_bf16.json"
  run attr_bf16_compile $py bench/attribution.py --device cuda --size 224 --batch 256 --precision bf16 --channels-last --compile --skip-captum --json "$out/attr_bf16_compile.json" ;;
esac
case $what in delta|all)
  run delta $py bench/delta.py --preset gpu --device cuda ;;
esac
case $what in metrics|all)
  run metrics $py bench/bench_metrics.py --device cuda --n 64 --batch-size 256 ;;
esac
case $what in train|all)
  run train $py bench/train.py --device cuda ;;
esac
