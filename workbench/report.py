"""The self-contained `report.html` of a run (written by `workbench run`).

It opens with a summary (what the profile's numbers mean, the base stage's grounding, the headline
table per model, path and split next to chance and the blank-image baseline, the GRPO alarms),
then a few held-out traces of the last trained model beside their 3D view (`example_traces`),
the training curves, and ends with the full metric table folded. It reads only files on disk:
`manifest.json`, `eval/metrics.json`, `eval/predictions.jsonl`, the dataset in `data/`,
`base/base_summary.json`, `grpo/alarms.jsonl` and the `trainer_state.json` (Hugging Face
Trainer's `log_history`) the training stages save, so it can be re-made for any finished run
folder: `workbench.report.render(Path("runs/smoke"), manifest)`.
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

from workbench import rundir
from workbench.eval.metrics import KEY_COLUMNS, METRIC_COLUMNS, read_predictions
from workbench.model import shipped

EXAMPLES = 3
"""Traces the report shows: DTR's closest and farthest centers on `test`, and one LOR answer."""


def render(out: Path, manifest: dict[str, Any]) -> str:
    """HTML text of the report; plotly.js is inlined once so the file works offline."""
    import plotly.io as pio

    out = Path(out)
    metrics = _read_json(out / rundir.EVAL / rundir.METRICS) or []
    figures = []
    for stage in (rundir.BASE, *rundir.MODEL_STAGES):
        history = training_history(out / stage)
        if history:
            figures.append((f"{stage.upper()} training", _history_figure(history, stage)))
    if metrics:
        figures.append(("Headline numbers per model and path (all categories)", _summary_figure(metrics)))

    include = ["inline"]  # plotly.js once per page, with the first figure

    def figure_html(fig) -> str:
        text = pio.to_html(fig, include_plotlyjs=include[0], full_html=False)
        include[0] = False
        return text

    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>SR-ReaL workbench run</title>",
        "<style>body{font-family:sans-serif;margin:2em;max-width:1200px}"
        "table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ccc;padding:3px 6px;text-align:right}"
        "th{background:#f0f0f0}td.l{text-align:left}</style></head><body>",
        "<h1>SR-ReaL workbench run</h1>",
        f"<p>{html.escape(PROFILE_NOTES.get(str(manifest.get('profile')), ''))}</p>",
        _base_line(out),
        "<h2>Headline numbers</h2>",
        headline_table(metrics) if metrics else "<p>No evaluation metrics in this run.</p>",
        _shipped_line(metrics),
        _alarms(out),
        *example_traces(out, figure_html),
        "<h2>Run</h2>",
        _summary_table(manifest),
    ]
    for title, fig in figures:
        parts.append(f"<h2>{html.escape(title)}</h2>")
        parts.append(figure_html(fig))
    if metrics:
        parts.append(f"<details><summary>Full table: every model, path, split and category ({len(metrics)} rows)"
                     f"</summary>{metrics_table(metrics)}</details>")
    parts.append("</body></html>")
    return "\n".join(parts)


PROFILE_NOTES = {
    "smoke": "A smoke run checks that the whole pipeline runs, in minutes on a laptop CPU. Its models "
             "train for a few steps on a few dozen examples: scores near zero, empty completions and "
             "flat GRPO curves are expected here. Numbers that mean something come from --profile default. "
             "The shipped model (a checkpoint trained on default data, inside the package) answers the same "
             "questions beside them, so the example traces below are those of a model that has learned.",
    "default": "The real small run on a CPU: the built-in tiny model, its base stage, cold-start SFT and "
               "GRPO, evaluated on held-out questions next to chance, the blank-image baseline and the oracle.",
    "gpu": "The GPU profile: more data and steps, or a pretrained VLM with LoRA.",
}
"""What a profile's numbers show, the report's first line."""
BASELINE_NAMES = {"chance": "chance", "language_prior": "blank image", "oracle": "oracle"}
"""Baseline models of the evaluation, as the headline table names them."""


def headline_table(metrics: list[dict[str, Any]]) -> str:
    """The `all` rows of the LOR and DTR paths: one row per model and path (baselines first), one
    column group per split: choice accuracy, numeric MRA, DTR center error and n."""
    rows = [r for r in metrics if r.get("category") == "all" and r.get("path") in ("lor", "dtr")]
    splits = [s for s in ("val", "test", "test_ood") if any(r["split"] == s for r in rows)]
    splits += sorted({r["split"] for r in rows} - set(splits))
    trained = {r["model"] for r in rows} - set(BASELINE_NAMES)
    order = [*BASELINE_NAMES, *[m for m in rundir.MODEL_STAGES if m in trained], *sorted(trained - set(rundir.MODEL_STAGES))]
    keys = sorted({(r["model"], r["path"]) for r in rows}, key=lambda k: (order.index(k[0]), k[1] != "lor"))
    by_key = {(r["model"], r["path"], r["split"]): r for r in rows}
    head = "<tr><th rowspan=2>model</th><th rowspan=2>path</th>" + "".join(
        f"<th colspan=4>{html.escape(s)}</th>" for s in splits) + "</tr><tr>" + "".join(
        "<th>choice</th><th>MRA</th><th>center (m)</th><th>n</th>" for _ in splits) + "</tr>"
    body = []
    for model, path in keys:
        cells = f"<td class='l'>{html.escape(BASELINE_NAMES.get(model, model))}</td><td class='l'>{path}</td>"
        for split in splits:
            r = by_key.get((model, path, split), {})
            cells += "".join(f"<td>{_fmt(r.get(k))}</td>" for k in ("choice_accuracy", "number_mra", "center_error_m", "n"))
        style = " style='color:#777'" if model in BASELINE_NAMES else ""
        body.append(f"<tr{style}>{cells}</tr>")
    return f"<table>{head}{''.join(body)}</table>"


def pick_examples(preds: list[dict[str, Any]], k: int = EXAMPLES) -> list[dict[str, Any]]:
    """Up to `k` predictions of one model, on `test` if it has any: the DTR answer with the closest
    centers, the one with the farthest, then LOR answers in file order. The model is the shipped
    one when the run evaluated it (a smoke run, whose own models trained for seconds), else the
    last trained model (GRPO, else SFT, else any non-baseline)."""
    trained = [m for m in dict.fromkeys(p["model"] for p in preds) if m not in BASELINE_NAMES]
    if not trained:
        return []
    order = (*rundir.MODEL_STAGES, shipped.SHIPPED)
    model = next((m for m in reversed(order) if m in trained), trained[-1])
    mine = [p for p in preds if p["model"] == model]
    split = "test" if any(p.get("split") == "test" for p in mine) else mine[0].get("split")
    mine = [p for p in mine if p.get("split") == split]
    located = sorted((p for p in mine if p.get("path") == "dtr" and p.get("center_error_m") is not None),
                     key=lambda p: p["center_error_m"])
    picked = located[:1] + located[-1:] if len(located) > 1 else located
    if not picked:  # no center written (a smoke model): DTR answers as they came
        picked = [p for p in mine if p.get("path") == "dtr"][:1]
    picked += [p for p in mine if p.get("path") == "lor"]
    return picked[:k]


def example_traces(out: Path, figure_html) -> list[str]:
    """The report's example section: each picked prediction's question, options and truth, its
    trace (tags and numbers highlighted, each center's distance to the truth), and for DTR the
    scene in 3D with the predicted centers against the true ones. Nothing when the run has no
    predictions; the traces without the 3D view when the dataset is gone."""
    from workbench import viz

    try:
        preds = read_predictions(out / rundir.EVAL)
    except (OSError, ValueError):
        return []
    picked = pick_examples(preds)
    if not picked:
        return []
    try:
        from workbench.dataset import load_dataset_dir

        data = load_dataset_dir(out / rundir.DATA)
    except (OSError, ValueError):
        data = None
    parts = [f"<h2>Example traces ({html.escape(picked[0]['model'])}, {html.escape(str(picked[0].get('split')))})</h2>",
             "<p>Held-out questions: for DTR, the answer whose centers came closest and the one whose centers "
             "were farthest off, with the scene in 3D (predicted centers against the true ones); then an LOR "
             "answer.</p>"]
    for pred in picked:
        error = pred.get("center_error_m")
        title = f"{pred['path'].upper()} · {pred['id']} · {pred.get('category')}"
        said = (f"Answered {pred.get('stated_answer') or 'nothing readable'}"
                + (f"; mean center error {error:.2f} m" if error is not None else "") + ".")
        parts.append(viz.question_html(pred, title=title) + f"<p>{html.escape(said)}</p>")
        parts.append(viz.trace_html(pred.get("completion"), pred.get("gt_centers")))
        if pred["path"] == "dtr" and data is not None and pred.get("split") in data:
            row = data[pred["split"]][int(pred["row_index"])]
            if row.get("id") == pred["id"]:
                fig = viz.scene_figure(row, predicted_centers=pred.get("pred_centers") or None, max_points=2500,
                                       height=380)
                parts.append(figure_html(fig))
    return parts


def _shipped_line(metrics: list[dict[str, Any]]) -> str:
    """What the shipped model was trained on, when the run evaluated it: its numbers on other
    categories are those of a model that never saw them."""
    if not any(r.get("model") == shipped.SHIPPED for r in metrics):
        return ""
    try:
        found = shipped.manifest()
    except (FileNotFoundError, ValueError):
        return ""
    categories = ", ".join(found.get("categories") or []) or "not recorded"
    return (f"<p>The shipped model's training data asked {html.escape(categories)}; the questions of other "
            "categories here are new to it.</p>")


def _base_line(out: Path) -> str:
    """The base stage's grounding of held-out regions, when the run has one."""
    summary = _read_json(out / rundir.BASE / "base_summary.json") or {}
    g = summary.get("grounding") or {}
    if not g.get("n"):
        return ""
    if g.get("center_error_m") is None:
        return f"<p>Base stage: on {g['n']} held-out regions the base model wrote no readable center.</p>"
    return (f"<p>Base stage: on {g['n']} held-out regions the base model writes a readable center for "
            f"{g['parsed']}; their median error is {g['center_error_m']:.2f} m (always answering the mean "
            f"training center: {_fmt(g.get('mean_guess_error_m'))} m).</p>")


def _alarms(out: Path) -> str:
    """The GRPO alarms (`grpo/alarms.jsonl`), a line each."""
    path = out / rundir.GRPO / "alarms.jsonl"  # train.alarms.ALARMS_LOG, not imported: that module loads transformers
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError:
        return ""
    found = []
    for line in lines:
        try:
            found.append(json.loads(line))
        except json.JSONDecodeError:
            continue  # a line cut by a kill
    if not found:
        return "<p>GRPO raised no training alarm.</p>"
    items = "".join(f"<li>step {_fmt(a.get('step'))} [{html.escape(str(a.get('kind', '?')))}]: "
                    f"{html.escape(str(a.get('message', '')))}</li>" for a in found[:20])
    more = f"<li>... and {len(found) - 20} more in grpo/alarms.jsonl</li>" if len(found) > 20 else ""
    return f"<h3>GRPO alarms ({len(found)})</h3><ul>{items}{more}</ul>"


def training_history(stage_dir: Path) -> list[dict[str, Any]]:
    """`log_history` of a trainer stage folder (final `trainer_state.json`, else the last checkpoint's)."""
    candidates = [stage_dir / "trainer_state.json"]
    candidates += sorted(stage_dir.glob("checkpoint-*/trainer_state.json"), key=lambda p: int(p.parent.name[11:]))[::-1]
    for path in candidates:
        state = _read_json(path)
        if state:
            return state.get("log_history", [])
    return []


def metrics_table(rows: list[dict[str, Any]]) -> str:
    keys = KEY_COLUMNS
    head = "".join(f"<th>{k}</th>" for k in keys + METRIC_COLUMNS)
    body = []
    for row in rows:
        cells = "".join(f"<td class='l'>{html.escape(str(row.get(k, '')))}</td>" for k in keys)
        cells += "".join(f"<td>{_fmt(row.get(k))}</td>" for k in METRIC_COLUMNS)
        body.append(f"<tr>{cells}</tr>")
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


def _summary_table(manifest: dict[str, Any]) -> str:
    rows = [
        ("profile", manifest.get("profile")),
        ("model", manifest.get("model")),
        ("seed", manifest.get("seed")),
        ("git commit", manifest.get("git_commit")),
        ("data fingerprint", manifest.get("data_fingerprint")),
        ("total seconds", manifest.get("total_seconds")),
    ]
    rows += [(f"stage {name}", f"{s.get('status')} in {s.get('seconds')} s") for name, s in manifest.get("stages", {}).items()]
    rows += [(name, version) for name, version in manifest.get("versions", {}).items()]
    body = "".join(f"<tr><th>{html.escape(str(k))}</th><td class='l'>{html.escape(str(v))}</td></tr>" for k, v in rows)
    return f"<table>{body}</table>"


def _history_figure(history: list[dict[str, Any]], stage: str):
    import plotly.graph_objects as go

    fig = go.Figure()
    keys = ["loss"] if stage in (rundir.BASE, rundir.SFT) else ["reward", "rewards/accuracy/mean", "rewards/format/mean", "rewards/detect/mean"]
    keys += [k for k in ("eval_loss", "dynamic_sampling/kept_group_fraction") if any(k in h for h in history)]
    for key in keys:
        points = [(h["step"], h[key]) for h in history if key in h and "step" in h]
        if points:
            steps, values = zip(*points)
            fig.add_scatter(x=steps, y=values, mode="lines+markers", name=key)
    fig.update_layout(xaxis_title="optimizer step", yaxis_title="loss" if keys[0] == "loss" else "reward",
                      height=350, margin=dict(t=20, b=40))
    return fig


def _summary_figure(metrics: list[dict[str, Any]]):
    """Headline numbers: the `all` rows, one group per model and path, one bar per split."""
    from plotly.subplots import make_subplots

    rows = [r for r in metrics if r.get("category") == "all"]
    keys = sorted({(r["model"], r["path"]) for r in rows}, key=str)
    fig = make_subplots(rows=1, cols=2, subplot_titles=("choice accuracy", "numeric MRA"))
    palette = ("#4c78a8", "#f58518", "#54a24b", "#b279a2")
    for i, split in enumerate(sorted({r["split"] for r in rows})):
        by_key = {(r["model"], r["path"]): r for r in rows if r["split"] == split}
        x = [f"{m} / {p}" for m, p in keys]
        for col, metric in ((1, "choice_accuracy"), (2, "number_mra")):
            y = [(by_key.get(k) or {}).get(metric) for k in keys]
            fig.add_bar(x=x, y=y, name=split, legendgroup=split, showlegend=col == 1, row=1, col=col,
                        marker_color=palette[i % len(palette)])
    fig.update_yaxes(range=[0, 1])
    fig.update_yaxes(title_text="share of questions right", row=1, col=1)
    fig.update_yaxes(title_text="mean relative accuracy", row=1, col=2)
    fig.update_layout(barmode="group", height=420, margin=dict(t=40, b=120))
    return fig


def _fmt(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.3f}"
    return html.escape(str(value))


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
