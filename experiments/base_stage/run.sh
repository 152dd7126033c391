#!/usr/bin/env bash
# The base stage's effect on cold start (issue #19, part 3): the `default` base stage (copy
# warm-up, region -> 3D center grounding on every marked region of the train questions), then the
# `default` cold-start SFT from it, then the default evaluation (200 questions per split and path,
# chance, oracle and the blank-image baseline), on the data of a finished
# `workbench run --profile default`, so that it pairs with that run's SFT model question by question.
#
#   bash experiments/base_stage/run.sh RUN_DIR [OUT]         # OUT defaults to runs/base_stage
#   BASE_STEPS=1000 bash ...                                 # grounding steps (default: the profile's)
#   PROFILE=smoke bash ...                                   # a quick check of the script
#   GRPO=1 bash ...                                          # then GRPO from that SFT model, evaluated
#                                                            # into OUT/eval_grpo
#
# Resumable step by step: a killed stage continues from its last checkpoint when the command is
# repeated; a finished stage is skipped. Results: OUT/base/base_summary.json (grounding of val
# regions), OUT/eval/metrics.json, OUT/eval/predictions.jsonl.
set -euo pipefail
run_dir=${1:?RUN_DIR of a finished default run}
out=${2:-runs/base_stage}
bin=$(dirname "$0")/../../.venv/bin
profile=${PROFILE:-default}
steps=()
[ -n "${BASE_STEPS:-}" ] && steps=(--max-steps "$BASE_STEPS")
mkdir -p "$out"
if [ ! -f "$out/base/base_summary.json" ]; then
  resume=()
  [ -d "$out/base" ] && resume=(--resume)
  "$bin/workbench" base --data "$run_dir/data" --out "$out/base" --profile "$profile" "${steps[@]}" "${resume[@]}"
fi
if [ ! -f "$out/sft/sft_summary.json" ]; then
  resume=()
  [ -d "$out/sft" ] && resume=(--resume)
  "$bin/workbench" sft --model "$out/base" --data "$run_dir/data" --out "$out/sft" --profile "$profile" --no-eval \
    "${resume[@]}"
fi
if [ ! -f "$out/eval/metrics.json" ]; then
  "$bin/workbench" eval --model "sft=$out/sft" --data "$run_dir/data" --out "$out/eval" --profile "$profile" \
    --baselines chance,oracle,language_prior --no-progress --overwrite
fi
if [ -n "${GRPO:-}" ]; then
  if [ ! -f "$out/grpo/config.json" ]; then
    resume=()
    [ -d "$out/grpo" ] && resume=(--resume)
    "$bin/workbench" grpo --model "$out/sft" --data "$run_dir/data" --out "$out/grpo" --profile "$profile" "${resume[@]}"
  fi
  if [ ! -f "$out/eval_grpo/metrics.json" ]; then
    "$bin/workbench" eval --model "grpo=$out/grpo" --data "$run_dir/data" --out "$out/eval_grpo" --profile "$profile" \
      --baselines chance,oracle,language_prior --no-progress --overwrite
  fi
  echo "done: $out/eval_grpo/metrics.json"
fi
echo "done: $out/eval/metrics.json"
