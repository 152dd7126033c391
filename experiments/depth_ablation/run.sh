#!/usr/bin/env bash
# The 3D positional embedding ablation (issue #19): cold-start SFT of the `default` profile with
# one depth mode on the data of a finished `workbench run --profile default`, then the default
# evaluation (200 questions per split and path, chance, oracle and the blank-image baseline).
#
#   bash experiments/depth_ablation/run.sh RUN_DIR MODE [OUT_ROOT]     # MODE: none | relative | metric
#   PROFILE=smoke bash ...                                              # a quick check of the script
#
# Resumable run by run: a killed SFT continues from its last checkpoint when the command is
# repeated; a finished step is skipped. Results: OUT_ROOT/MODE/eval/metrics.json.
set -euo pipefail
run_dir=${1:?RUN_DIR of a finished default run}
mode=${2:?MODE: none, relative or metric}
root=${3:-runs/depth_ablation}
bin=$(dirname "$0")/../../.venv/bin
out=$root/$mode
mkdir -p "$out"
if [ ! -f "$out/sft/sft_summary.json" ]; then
  resume=()
  [ -d "$out/sft" ] && resume=(--resume)
  "$bin/workbench" sft --data "$run_dir/data" --out "$out/sft" --profile "${PROFILE:-default}" --no-eval \
    --set depth_embedding="$mode" "${resume[@]}"
fi
if [ ! -f "$out/eval/metrics.json" ]; then
  "$bin/workbench" eval --model "sft=$out/sft" --data "$run_dir/data" --out "$out/eval" --profile "${PROFILE:-default}" \
    --baselines chance,oracle,language_prior --no-progress --overwrite
fi
echo "done: $out/eval/metrics.json"
