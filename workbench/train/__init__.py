"""Training: cold-start SFT (`sft`, on `examples`, after the `copying` warm-up of a fresh built-in
model) and GRPO (`grpo`, `grpo_settings`, with `dynamic_sampling`, `alarms` and the `reward_lab`),
both on TRL's trainers; `quick_eval` is the short check a stage runs when it ends."""
