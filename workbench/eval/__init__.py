"""Evaluation: models and baselines answer every question on each path (`evaluate`), predictions
are scored into the metrics table (`metrics`), the pseudo-models and ground truth (`baselines`), and
where errors come from (`diagnostics`)."""
