#!/usr/bin/env bash
# The GPU check (issue #21): on one CUDA machine, in about 8 minutes, set up, run the tests marked
# `gpu`, a shortened `gpu` profile run and a generation benchmark, and write a report.
#
#   bash scripts/gpu_check.sh [--out DIR] [--skip-setup]
#
#   --out DIR      the report and everything else (default: runs/gpu_check in the repository)
#   --skip-setup   use .venv as it is (by default scripts/setup.sh runs unless .venv has a CUDA torch)
#
# Phases, each timed, its output on the terminal and in DIR/PHASE.log:
#   setup     bash scripts/setup.sh: the default (CUDA) torch, requirements/lock.txt, the project
#   tests     pytest -m gpu tests (tests/test_gpu.py)                        -> DIR/pytest.xml
#   run       workbench run --profile gpu --params scripts/gpu_check.yaml    -> DIR/run
#   generate  benchmarks/gpu_generate.py: tokens/s in bf16 and float32       -> DIR/generate.json
# Then scripts/gpu_report.py writes DIR/report.json and DIR/report.md: the time of each phase, the
# GPU and driver, torch and CUDA, the pytest summary, tokens/s and peak GPU memory.
# Without a CUDA GPU it prints "no CUDA GPU: skipping the GPU parts", writes a report with status
# "skipped" and exits 0. Exit status: 0 passed or skipped, 1 failed, 2 a bad argument.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
USAGE="usage: bash scripts/gpu_check.sh [--out DIR] [--skip-setup]"
OUT=$ROOT/runs/gpu_check
SKIP_SETUP=0
while [ $# -gt 0 ]; do
  case $1 in
    --out)
      if [ $# -lt 2 ] || [ -z "$2" ]; then echo "gpu_check: --out needs a folder ($USAGE)" >&2; exit 2; fi
      OUT=$2; shift 2 ;;
    --out=*) OUT=${1#--out=}; shift ;;
    --skip-setup) SKIP_SETUP=1; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "gpu_check: unknown argument '$1' ($USAGE)" >&2; exit 2 ;;
  esac
done
mkdir -p "$OUT" 2>/dev/null && OUT=$(cd "$OUT" && pwd) || { echo "gpu_check: cannot make the folder --out '$OUT'" >&2; exit 2; }
cd "$ROOT"

# Phase time limits (seconds; 0 = none): a hung process (NCCL, vLLM) fails its phase instead of the
# whole check never ending. Together with setup they are more than the 8-minute budget on purpose:
# the report says how long each phase took and whether the total stayed within it.
TESTS_LIMIT=300
RUN_LIMIT=420
GENERATE_LIMIT=120

PY=${PYTHON:-python3}   # runs the report (standard library only): it works before .venv exists
VENV_PY=.venv/bin/python
rm -f "$OUT"/{phases.tsv,nvidia-smi.csv,torch.json,pytest.xml,generate.json,memory.csv,report.json,report.md}

record() {  # record PHASE STATUS SECONDS NOTE: one line of DIR/phases.tsv
  printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" >>"$OUT/phases.tsv"
}

phase() {  # phase NAME LIMIT COMMAND...: run COMMAND (at most LIMIT s), log it, record its status and time
  local name=$1 limit=$2 start=$SECONDS rc=0 status=passed note
  shift 2
  note="$*"
  echo "gpu_check: [$name] $note"
  if [ "$limit" -gt 0 ]; then
    timeout "$limit" "$@" 2>&1 | tee "$OUT/$name.log" || rc=$?
  else
    "$@" 2>&1 | tee "$OUT/$name.log" || rc=$?
  fi
  if [ "$rc" -eq 124 ]; then
    status="timed out"; note="stopped after $limit s: $note"
  elif [ "$rc" -ne 0 ]; then
    status=failed; note="exit $rc: $note"
  fi
  record "$name" "$status" $((SECONDS - start)) "$note"
  echo "gpu_check: [$name] $status in $((SECONDS - start)) s"
  [ "$rc" -eq 0 ]
}

sampler=""   # the nvidia-smi that samples the memory used during the GPU phases
stop_sampler() {
  if [ -n "$sampler" ]; then
    kill "$sampler" 2>/dev/null || true
    wait "$sampler" 2>/dev/null || true
    sampler=""
  fi
}
trap stop_sampler EXIT

report() {  # report [--skipped REASON | --failed REASON]: write the report; exit 1 when the check failed
  stop_sampler
  "$PY" scripts/gpu_report.py "$OUT" --total-seconds "$SECONDS" "$@"
}

skip() {  # skip REASON
  echo "no CUDA GPU: skipping the GPU parts ($1)"
  report --skipped "$1"
  exit 0
}

# --- is there a GPU? (nvidia-smi needs no Python)
if ! nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader >"$OUT/nvidia-smi.csv" 2>/dev/null \
    || [ ! -s "$OUT/nvidia-smi.csv" ]; then
  rm -f "$OUT/nvidia-smi.csv"
  skip "nvidia-smi finds no GPU"
fi
echo "gpu_check: GPU: $(head -n 1 "$OUT/nvidia-smi.csv")"

# --- setup
has_cuda_torch() { [ -x "$VENV_PY" ] && "$VENV_PY" -c 'import sys, torch; sys.exit(torch.version.cuda is None)' 2>/dev/null; }
if [ "$SKIP_SETUP" = 1 ]; then
  record setup skipped 0 "--skip-setup"
elif has_cuda_torch; then
  record setup skipped 0 ".venv already has a CUDA torch"
  echo "gpu_check: [setup] skipped: .venv already has a CUDA torch"
else
  phase setup 0 bash scripts/setup.sh || { report --failed "scripts/setup.sh failed (see $OUT/setup.log)"; exit 1; }
fi

# --- does torch see it?
cuda_rc=0
"$VENV_PY" - "$OUT/torch.json" >"$OUT/torch.log" 2>&1 <<'PY' || cuda_rc=$?
import json, sys
import torch
cuda = torch.cuda.is_available()
info = {"torch": torch.__version__, "cuda": torch.version.cuda, "cuda_available": cuda,
        "device": torch.cuda.get_device_name(0) if cuda else None,
        "bf16": bool(cuda and torch.cuda.is_bf16_supported())}
open(sys.argv[1], "w").write(json.dumps(info) + "\n")
sys.exit(0 if cuda else 3)
PY
if [ "$cuda_rc" -ne 0 ]; then
  if [ "${CUDA_VISIBLE_DEVICES-unset}" = "" ] || [ "${CUDA_VISIBLE_DEVICES-}" = "-1" ]; then
    skip "CUDA_VISIBLE_DEVICES='${CUDA_VISIBLE_DEVICES}' hides the GPU from torch"
  fi
  if [ "$cuda_rc" -eq 3 ]; then
    version=$("$PY" -c 'import json, sys; print(json.load(open(sys.argv[1]))["torch"])' "$OUT/torch.json")
    why="nvidia-smi sees a GPU but torch $version in .venv does not"
    case $version in  # setup.sh keeps an installed torch of the locked version, +cpu or not
      *+cpu) why+=" (a CPU build, which setup.sh keeps: remove .venv and run again without --skip-setup)" ;;
      *) why+=" (is the driver older than torch's CUDA? see $OUT/nvidia-smi.csv and $OUT/torch.json)" ;;
    esac
  else
    why="torch does not import from .venv (see $OUT/torch.log); run without --skip-setup"
  fi
  echo "gpu_check: $why" >&2
  report --failed "$why"
  exit 1
fi

# --- the GPU phases; nvidia-smi samples the memory used meanwhile
nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 500 >"$OUT/memory.csv" 2>/dev/null &
sampler=$!
phase tests "$TESTS_LIMIT" "$VENV_PY" -m pytest -m gpu tests --junitxml="$OUT/pytest.xml" || true
phase run "$RUN_LIMIT" .venv/bin/workbench run --profile gpu --params scripts/gpu_check.yaml --out "$OUT/run" --overwrite \
  && data=(--data "$OUT/run/data") || data=()   # the benchmark builds a smoke dataset when the run failed
phase generate "$GENERATE_LIMIT" "$VENV_PY" benchmarks/gpu_generate.py --json "$OUT/generate.json" ${data[@]+"${data[@]}"} || true
report
