"""The tasks: spatial questions with exact answers (`questions`, over the shared `vocab`), the
reasoning traces of both paths (`traces`), the rewards that score completions (`rewards`), how a
row becomes a prompt (`prompts`) and the location tokens of region boxes (`locations`). A task owns
its answers, as in nanochat: the reward starts out as the evaluation."""
