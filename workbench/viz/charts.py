"""Charts of results and training: metric tables and bars per path, split and category, and the
live loss / reward dashboard (`reward_dashboard`). Taught in `notebooks/05_evaluate.ipynb`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

import plotly.graph_objects as go

from workbench.eval.metrics import KEY_COLUMNS, METRIC_COLUMNS
from workbench.schema import CHOICE_CATEGORIES, GENERAL_ONLY_CATEGORIES, NUMERIC_CATEGORIES
from workbench.viz.scenes import PALETTE

METRICS = tuple(c for c in METRIC_COLUMNS if c != "n")
"""Metric columns of `metrics.json` rows (SPEC section 7); `n` counts the examples."""
METRIC_KEYS = KEY_COLUMNS
"""Columns that identify a `metrics.json` row."""


# ----------------------------------------------------------------------------- charts of metrics


def _category_order(categories: Iterable[str]) -> list[str]:
    known = ("all", *NUMERIC_CATEGORIES, *CHOICE_CATEGORIES, *GENERAL_ONLY_CATEGORIES)
    cats = list(dict.fromkeys(categories))
    return [c for c in known if c in cats] + sorted(c for c in cats if c not in known)


def metric_value(v: Any) -> float | None:
    """`v` as a finite float, or None (a metric that does not apply is None or nan in `metrics.json`)."""
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def filter_rows(metrics_rows: Iterable[Mapping[str, Any]], **where: Any) -> list[Mapping[str, Any]]:
    """Rows whose column equals each `where` value (a list / tuple / set value: any of them)."""
    out = []
    for r in metrics_rows:
        ok = True
        for k, v in where.items():
            if v is None:
                continue
            allowed = v if isinstance(v, (list, tuple, set, frozenset)) else (v,)
            if r.get(k) not in allowed:
                ok = False
                break
        if ok:
            out.append(r)
    return out


def metric_table(
    metrics_rows: Iterable[Mapping[str, Any]], metric: str, by: str, **where: Any
) -> dict[str, dict[str, tuple[float, Any]]]:
    """{by value: {category: (metric value, n)}} of the rows matching `where`; rows where the
    metric does not apply (None / nan) are left out. Two rows for one (by, category) raise
    ValueError naming the columns to filter on."""
    if metric not in (*METRICS, "n"):
        raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")
    if by not in METRIC_KEYS:
        raise ValueError(f"by must be one of {METRIC_KEYS}, got {by!r}")
    table: dict[str, dict[str, tuple[float, Any]]] = {}
    seen: dict[tuple[str, str], Mapping[str, Any]] = {}
    for r in filter_rows(metrics_rows, **where):
        value = metric_value(r.get(metric))
        if value is None:
            continue
        key = (str(r.get(by)), str(r.get("category")))
        if key in seen:
            varying = [k for k in METRIC_KEYS if k not in (by, "category") and seen[key].get(k) != r.get(k)]
            raise ValueError(
                f"several rows for {by}={key[0]!r}, category={key[1]!r}: they differ in {varying}; "
                f"filter them, e.g. {varying[0] if varying else 'split'}={r.get(varying[0] if varying else 'split')!r}"
            )
        seen[key] = r
        table.setdefault(key[0], {})[key[1]] = (value, r.get("n"))
    return table


def _where_text(where: Mapping[str, Any]) -> str:
    items = [f"{k}={v}" for k, v in where.items() if v is not None]
    return f" ({', '.join(items)})" if items else ""


def category_bars(
    metrics_rows: Iterable[Mapping[str, Any]], metric: str = "choice_accuracy", by: str = "path", **where: Any
) -> go.Figure:
    """Grouped bars of `metric` per category, one bar group member per value of `by` (path,
    model, split). Filter with keyword columns, e.g. `split="test", model="rl"`."""
    table = metric_table(metrics_rows, metric, by, **where)
    cats = _category_order(c for series in table.values() for c in series)
    fig = go.Figure()
    for i, (name, series) in enumerate(table.items()):
        xs = [c for c in cats if c in series]
        ys = [series[c][0] for c in xs]
        fig.add_bar(
            x=xs,
            y=ys,
            name=name,
            marker_color=PALETTE[i % len(PALETTE)],
            text=[f"{y:.2f}" for y in ys],
            textposition="outside",
            customdata=[series[c][1] for c in xs],
            hovertemplate=f"{name}<br>%{{x}}: %{{y:.3f}}<br>n=%{{customdata}}<extra></extra>",
        )
    fig.update_layout(
        barmode="group",
        title=f"{metric} by category and {by}{_where_text(where)}",
        yaxis_title=metric,
        xaxis_title="category",
        legend_title=by,
        margin=dict(t=50),
    )
    if metric != "center_error_m":
        fig.update_yaxes(range=[0, 1.1])
    return fig


def path_comparison(
    metrics_rows: Iterable[Mapping[str, Any]],
    metric: str = "choice_accuracy",
    paths: tuple[str, str] = ("lor", "dtr"),
    **where: Any,
) -> go.Figure:
    """`paths[0]` vs `paths[1]` per category: grouped bars (top) and the difference
    `paths[1] - paths[0]` (bottom; green where the second path is better, for center error
    where it is lower). Filter with keyword columns, e.g. `split="test", model="rl"`."""
    from plotly.subplots import make_subplots

    a, b = paths
    table = metric_table(metrics_rows, metric, "path", path=list(paths), **where)
    cats = _category_order(c for series in table.values() for c in series)
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, row_heights=[0.68, 0.32], vertical_spacing=0.06)
    for i, p in enumerate(paths):
        series = table.get(p, {})
        xs = [c for c in cats if c in series]
        fig.add_bar(
            x=xs,
            y=[series[c][0] for c in xs],
            name=p,
            marker_color=PALETTE[i],
            row=1,
            col=1,
            customdata=[series[c][1] for c in xs],
            hovertemplate=f"{p}<br>%{{x}}: %{{y:.3f}}<br>n=%{{customdata}}<extra></extra>",
        )
    both = [c for c in cats if c in table.get(a, {}) and c in table.get(b, {})]
    delta = [table[b][c][0] - table[a][c][0] for c in both]
    lower_better = metric == "center_error_m"
    colors = ["#1a9850" if (d < 0 if lower_better else d > 0) else "#d73027" for d in delta]
    fig.add_bar(
        x=both,
        y=delta,
        name=f"{b} - {a}",
        marker_color=colors,
        row=2,
        col=1,
        text=[f"{d:+.2f}" for d in delta],
        textposition="outside",
        showlegend=False,
    )
    fig.update_layout(
        barmode="group", title=f"{a.upper()} vs {b.upper()}: {metric}{_where_text(where)}", margin=dict(t=50)
    )
    fig.update_yaxes(title_text=metric, row=1, col=1)
    fig.update_yaxes(title_text=f"{b} - {a}", zeroline=True, row=2, col=1)
    return fig


# ----------------------------------------------------------------------------- training logs

STAGE_PANELS = {
    "grpo": ("loss", "rewards", "groups", "lengths"),
    "sft": ("loss", "token_accuracy", "learning_rate", "grad_norm"),
    "base": ("loss", "token_accuracy", "learning_rate", "grad_norm"),
}
"""The four panels of each stage's dashboard (`training_dashboard`, the live
`workbench.widgets.dashboard.TrainingDashboard`): GRPO watches its rewards and groups, the
supervised stages (base, cold-start SFT) how well they predict the next token."""
STAGES = tuple(STAGE_PANELS)
PANELS = STAGE_PANELS["grpo"]
"""Panels of `reward_dashboard` (GRPO)."""
PANEL_TITLES = {
    "loss": "loss",
    "rewards": "reward and its components",
    "groups": "groups: kept / zero-std; clipped",
    "lengths": "completion length (tokens)",
    "token_accuracy": "next-token accuracy on the targets",
    "learning_rate": "learning rate",
    "grad_norm": "gradient norm (before clipping)",
}


def check_stage(stage: str) -> tuple[str, ...]:
    """The panels of `stage`; a ValueError naming it when it is not one of `STAGES`."""
    if stage not in STAGE_PANELS:
        raise ValueError(f"stage {stage!r} is not one of {STAGES}")
    return STAGE_PANELS[stage]


def panel_of(key: str, stage: str = "grpo") -> str | None:
    """Which panel of `stage`'s dashboard a logged key belongs to, or None for keys not drawn.

    Losses: `loss`, `*_loss`, `*/loss` (not the end-of-training summary `train_loss`);
    rewards: TRL's `reward` and `rewards/<func>/mean` (and the per-path means that
    `workbench.tasks.rewards.RewardFunc` logs, `rewards/<func>/<path>`), never `*/std`; groups: any
    key containing `kept` (dynamic sampling), `frac_reward_zero_std`,
    `completions/clipped_ratio`; lengths: `completions/*length*`; token accuracy: TRL's
    `mean_token_accuracy` (and `eval_mean_token_accuracy`); `learning_rate`; `grad_norm`.
    A key whose panel the stage does not draw is None.

    >>> [panel_of(k) for k in ("loss", "rewards/accuracy/mean", "rewards/accuracy/std", "dynamic_sampling/kept_fraction")]
    ['loss', 'rewards', None, 'groups']
    >>> [panel_of(k, "sft") for k in ("mean_token_accuracy", "grad_norm", "reward")]
    ['token_accuracy', 'grad_norm', None]
    """
    panel = _panel(key)
    return panel if panel in check_stage(stage) else None


def _panel(key: str) -> str | None:
    if key in ("train_loss", "total_flos") or key.startswith(("train_", "eval_runtime")):
        return None
    if key == "loss" or key.endswith(("_loss", "/loss")):
        return "loss"
    if key == "reward" or (key.startswith("rewards/") and not key.endswith("/std")):
        return "rewards"
    if "kept" in key or key in ("frac_reward_zero_std", "completions/clipped_ratio"):
        return "groups"
    if key.startswith("completions/") and "length" in key and "terminated" not in key:
        return "lengths"
    if key.endswith("mean_token_accuracy"):
        return "token_accuracy"
    if key in ("learning_rate", "grad_norm"):
        return key
    return None


def log_series(log_history: Iterable[Mapping[str, Any]], stage: str = "grpo") -> dict[str, dict[str, tuple[list, list]]]:
    """{panel: {key: (steps, values)}} of `stage`'s panels from a trainer's `state.log_history` (a
    list of dicts with `step`; an entry without it counts as the next step)."""
    out: dict[str, dict[str, tuple[list, list]]] = {p: {} for p in check_stage(stage)}
    for i, entry in enumerate(log_history):
        step = entry.get("step", i + 1)
        for key, value in entry.items():
            panel = panel_of(str(key), stage)
            v = metric_value(value)
            if panel is None or v is None:
                continue
            xs, ys = out[panel].setdefault(str(key), ([], []))
            xs.append(step)
            ys.append(v)
    return out


def loss_curve(log_history: Iterable[Mapping[str, Any]]) -> go.Figure:
    """Every loss in `log_history` (`loss`, `eval_loss`, ...) against the step."""
    fig = go.Figure()
    for i, (key, (xs, ys)) in enumerate(log_series(log_history)["loss"].items()):
        fig.add_scatter(
            x=xs, y=ys, mode="lines+markers", name=key, line=dict(color=PALETTE[i % len(PALETTE)])
        )
    fig.update_layout(title="loss", xaxis_title="step", yaxis_title="loss", margin=dict(t=50))
    return fig


def dashboard_layout(fig: go.Figure) -> go.Figure:
    """Titles and axes of the 2 x 2 training dashboard (made with `make_subplots(2, 2)`)."""
    fig.update_layout(height=560, margin=dict(t=60, l=40, r=10, b=40))
    for k in range(1, 5):
        fig.update_xaxes(title_text="step", row=(k - 1) // 2 + 1, col=(k - 1) % 2 + 1)
    return fig


def empty_dashboard(stage: str = "grpo") -> go.Figure:
    """The 2 x 2 dashboard of `stage` (`STAGE_PANELS`) with its panel titles, a legend inside each
    panel's top right corner (`panel_legend`), and no data."""
    from plotly.subplots import make_subplots

    panels = check_stage(stage)
    fig = make_subplots(rows=2, cols=2, subplot_titles=[PANEL_TITLES[p] for p in panels])
    for k, panel in enumerate(panels):
        suffix = "" if k == 0 else str(k + 1)
        x, y = fig.layout[f"xaxis{suffix}"].domain, fig.layout[f"yaxis{suffix}"].domain
        fig.layout[panel_legend(panel, stage)] = dict(x=x[1], y=y[1], xanchor="right", yanchor="top",
                                                      bgcolor="rgba(255,255,255,0.7)", font=dict(size=9))
    return dashboard_layout(fig)


def panel_cell(panel: str, stage: str = "grpo") -> tuple[int, int]:
    """(row, col) of `panel` in `stage`'s dashboard."""
    k = check_stage(stage).index(panel)
    return k // 2 + 1, k % 2 + 1


def panel_legend(panel: str, stage: str = "grpo") -> str:
    """The layout key of `panel`'s own legend in `stage`'s dashboard (legend, legend2, ...): each
    panel lists only its own curves, with colors counted from the first again."""
    k = check_stage(stage).index(panel)
    return "legend" if k == 0 else f"legend{k + 1}"


def training_dashboard(log_history: Iterable[Mapping[str, Any]], stage: str = "grpo") -> go.Figure:
    """2 x 2 panels over the steps of a finished run of `stage` (`STAGE_PANELS`): GRPO's loss, mean
    reward and its components, group statistics (kept-group fraction of dynamic sampling, share
    of zero-std groups, share of clipped completions) and completion lengths; a supervised
    stage's loss, next-token accuracy, learning rate and gradient norm. Which keys go where:
    `panel_of`."""
    fig = empty_dashboard(stage)
    series = log_series(log_history, stage)
    for panel in check_stage(stage):
        row, col = panel_cell(panel, stage)
        for i, (key, (xs, ys)) in enumerate(series[panel].items()):
            fig.add_scatter(
                x=xs,
                y=ys,
                mode="lines+markers",
                name=key,
                row=row,
                col=col,
                legend=panel_legend(panel, stage),
                line=dict(color=PALETTE[i % len(PALETTE)]),
                marker=dict(size=4),
            )
    fig.update_layout(title={"grpo": "GRPO", "sft": "cold-start SFT", "base": "base stage"}[stage])
    return fig


def reward_dashboard(log_history: Iterable[Mapping[str, Any]]) -> go.Figure:
    """The GRPO dashboard of a finished run (`training_dashboard(log_history, "grpo")`)."""
    return training_dashboard(log_history, "grpo")
