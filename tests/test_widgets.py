"""Widgets: they build from fixture data and their displayed content follows their controls."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import plotly.graph_objects as go
import pytest
from test_viz import LOG_HISTORY, METRICS_ROWS, SFT_LOG, make_row, real_data  # noqa: F401, F811 (a fixture)

from workbench.widgets._common import ALL, STATIC_ENV, FigureBox, RowIndex
from workbench.widgets.dashboard import TrainingDashboard
from workbench.widgets.results_table import results_table
from workbench.widgets.scene_browser import scene_browser
from workbench.widgets.trace_browser import PREDICTION_KEYS, trace_browser


@pytest.fixture(scope="module")
def rows():
    """Two scenes: s0 with three questions, s1 (another view) with two."""
    return [
        make_row("s0-q0", "s0", "distance"),
        make_row("s0-q1", "s0", "horizontal_distance"),
        make_row("s0-q2", "s0", "vertical_distance"),
        make_row("s1-q0", "s1", "distance", heading=-0.3),
        make_row("s1-q1", "s1", "width", heading=-0.3),
    ]


def prediction(row, model, path, correct, offset=0.0):
    centers = {f"cube ({label})": (np.asarray(c) + offset).round(2).tolist()
               for label, c in json.loads(row["centers"]).items()}  # fmt: skip
    answer = row["answer"] if correct else "9.99"
    if path == "lor":
        completion = f"<think>guess for {row['id']}</think><answer>{answer}</answer>"
        centers = {}
    else:
        boxes = "".join(f'<3d_box center="{",".join(map(str, c))}">{t}</3d_box>' for t, c in centers.items())
        completion = f"<detect>{boxes}</detect><think>computed for {row['id']}</think><answer>{answer}</answer>"
    return dict(id=row["id"], model=model, path=path, split=row["split"], category=row["category"],
                answer_type=row["answer_type"], answer=row["answer"], completion=completion,
                pred_answer=answer, pred_centers=centers, correct=correct)  # fmt: skip


@pytest.fixture(scope="module")
def predictions(rows):
    preds = []
    for k, row in enumerate(rows):
        preds.append(prediction(row, "rl", "lor", correct=k % 2 == 0))
        preds.append(prediction(row, "rl", "dtr", correct=True, offset=0.1 * k))
    preds.append(prediction(rows[0], "sft", "dtr", correct=False, offset=0.5))
    preds[-1]["completion"] += "<script>alert(1)</script>"
    assert set(PREDICTION_KEYS) <= set(preds[0])
    return preds


def names(fig):
    return [t.name for t in fig.data]


# ----------------------------------------------------------------------------- scene browser


def test_scene_browser_follows_slider_and_dropdown(rows):
    sb = scene_browser(rows)
    assert len(sb.dropdown.options) == 3 and "s0-q0" in sb.info.value
    assert bytes(sb.image.value).startswith(b"\x89PNG")
    assert "&lt;detect&gt;" in sb.dtr.value and "&lt;think&gt;" in sb.lor.value
    assert names(sb.plot.figure)[0] == "point cloud" and "camera" in names(sb.plot.figure)
    first_image, first_box = bytes(sb.image.value), sb.plot.figure.data[1].x

    sb.slider.value = 1
    assert [v for _, v in sb.dropdown.options] == [3, 4]
    assert "s1-q0" in sb.info.value and "s0-q0" not in sb.info.value
    assert bytes(sb.image.value) != first_image
    assert sb.plot.figure.data[1].x != first_box  # another view: the box moves in the camera frame

    sb.dropdown.value = 4
    assert "s1-q1" in sb.info.value and "width" in sb.info.value
    sb.frame.value = "world"
    assert sb.plot.figure.layout.scene.zaxis.title.text == "world z up (m)"
    assert "s1-q1" in sb.plot.figure.layout.title.text


def test_scene_browser_without_3d_and_bad_input(rows):
    sb = scene_browser(rows[:1], show_3d=False)
    assert sb.plot is None and sb.slider.max == 0
    with pytest.raises(ValueError, match="at least one row"):
        scene_browser([])


def test_scene_browser_on_a_real_dataset(real_data):  # noqa: F811
    split = real_data["train"]  # with blend rows (answer_type text, no regions)
    sb = scene_browser(split)
    assert sb.slider.max == len(set(split["scene_id"])) - 1 > 0
    before = sb.info.value
    sb.slider.value = sb.slider.max
    assert sb.info.value != before
    assert sb.row["scene_id"] == sb.scene_ids[-1]


# ----------------------------------------------------------------------------- trace browser


def test_trace_browser_filters(rows, predictions):
    tb = trace_browser(rows, predictions)
    assert len(tb.example.options) == 6  # 5 rl examples + 1 sft
    tb.model.value = "rl"
    assert len(tb.example.options) == 5
    tb.correct.value = "wrong"  # rl's lor answers are wrong on rows 1 and 3
    assert [key for _, key in tb.example.options] == [("rl", "s0-q1"), ("rl", "s1-q0")]
    tb.path.value = "dtr"  # dtr is always right for rl
    assert tb.example.options == () and "no prediction" in tb.header.value
    tb.path.value = ALL
    tb.correct.value = ALL
    tb.category.value = "distance"
    assert [key for _, key in tb.example.options] == [("rl", "s0-q0"), ("rl", "s1-q0")]


def expected_errors(row, offset):
    return [f"error {label}: {np.linalg.norm((np.asarray(c) + offset).round(2) - c):.2f} m"
            for label, c in json.loads(row["centers"]).items()]  # fmt: skip


def test_trace_browser_shows_both_traces_and_centers(rows, predictions):
    tb = trace_browser(rows, predictions)
    tb.model.value = "rl"
    tb.example.value = ("rl", "s0-q1")
    lor, dtr = (w.value for w in tb.traces.children)
    assert "LOR: answered 9.99 (wrong" in lor and "guess for s0-q1" in lor
    assert "DTR: answered" in dtr and "computed for s0-q1" in dtr and "\u0394 0.17 m" in dtr
    assert "s0-q1" in tb.header.value and bytes(tb.image.value).startswith(b"\x89PNG")
    errors = [n for n in names(tb.plot.figure) if n.startswith("error ")]
    assert errors == expected_errors(rows[1], 0.1) and errors[0].startswith("error red box: 0.1")

    tb.example.value = ("rl", "s1-q1")
    assert "computed for s1-q1" in tb.traces.children[1].value and "s1-q1" in tb.header.value
    assert [n for n in names(tb.plot.figure) if n.startswith("error ")] == expected_errors(rows[4], 0.4)

    tb.model.value = "sft"
    assert len(tb.traces.children) == 1
    assert "<script" not in tb.traces.children[0].value and "&lt;script&gt;" in tb.traces.children[0].value


def test_trace_browser_reads_jsonl_and_tolerates_missing_rows(tmp_path, rows, predictions):
    path = tmp_path / "predictions.jsonl"
    path.write_text("".join(json.dumps(p) + "\n" for p in predictions))
    tb = trace_browser(rows[:1], path, show_3d=False)  # only s0-q0 has a row
    assert len(tb.example.options) == 6
    tb.example.value = ("rl", "s0-q1")
    assert "no dataset row" in tb.header.value and tb.image.value == b""
    with pytest.raises(ValueError, match="lacks keys"):
        trace_browser(rows, [{"id": "x", "path": "lor"}])


def test_row_index_prefers_split_then_id(rows):
    other = dict(rows[0], split="val", question="another split")
    index = RowIndex({"test": rows, "val": [other]})
    assert index.get("s0-q0", "val")["question"] == "another split"
    assert index.get("s0-q0", "test")["split"] == "test"
    assert index.get("s1-q1")["id"] == "s1-q1" and index.get("nope") is None
    assert RowIndex({r["id"]: r for r in rows}).get("s1-q0")["id"] == "s1-q0"


# ----------------------------------------------------------------------------- results table


def test_results_table_filters_and_sorts():
    rt = results_table(METRICS_ROWS)
    assert rt.html.value.count("<tr>") == len(METRICS_ROWS)
    rt.filters["path"].value = "dtr"
    assert rt.html.value.count("<tr>") == 4 and ">lor<" not in rt.html.value
    rt.filters["split"].value = "test"
    rt.sort.value = "choice_accuracy"
    assert [r["category"] for r in rt.shown()] == ["left_right", "all", "distance"]  # None last
    rt.sort.value = "number_mra"
    assert [r["category"] for r in rt.shown()][:2] == ["distance", "all"]
    assert "3 of 8 rows" in rt.count.value


def test_results_table_reads_metrics_json(tmp_path):
    path = tmp_path / "metrics.json"
    path.write_text(json.dumps(METRICS_ROWS))
    assert results_table(path).html.value.count("<tr>") == len(METRICS_ROWS)


def test_widgets_display_a_static_snapshot_in_a_headless_run(rows, monkeypatch):
    """`workbench run` sets STATIC_ENV for its kernels: a saved notebook keeps what each widget
    showed (question, marked image, traces, the table), not a widget view without state."""
    sb, rt, dash = scene_browser(rows), results_table(METRICS_ROWS), TrainingDashboard("GRPO")
    assert "application/vnd.jupyter.widget-view+json" in sb._repr_mimebundle_()
    monkeypatch.setenv(STATIC_ENV, "1")
    bundle = sb._repr_mimebundle_()
    assert set(bundle) == {"text/html", "text/plain"}
    page = bundle["text/html"]
    assert "static snapshot" in page and "s0-q0" in page and "data:image/png;base64," in page
    assert "&lt;detect&gt;" in page and "IntSlider" not in page
    table = rt._repr_mimebundle_()["text/html"]
    assert table.count("<tr>") == len(METRICS_ROWS) and "overflow:auto" in table
    live_plot = dash.widget._repr_mimebundle_()["text/html"]
    assert "GRPO: the live training plot" in live_plot and "waiting" not in live_plot
    monkeypatch.setenv(STATIC_ENV, "0")
    assert "application/vnd.jupyter.widget-view+json" in rt._repr_mimebundle_()


# ----------------------------------------------------------------------------- dashboard


def state(step, main=True):
    return SimpleNamespace(global_step=step, is_world_process_zero=main)


def trace_y(fig, name):
    [t] = [t for t in fig.data if t.name == name]
    return list(t.y)


def test_dashboard_callback_updates_on_log():
    from transformers import TrainerCallback

    dash = TrainingDashboard("grpo")
    cb = dash.callback()
    assert isinstance(cb, TrainerCallback)
    assert "waiting" in dash.status.value and len(dash.figure.data) == 0
    cb.on_log(None, state(1), None, logs={"loss": 2.0, "reward": 0.3})
    cb.on_log(None, state(2), None, logs={"loss": 1.5, "reward": 0.4, "dynamic_sampling/kept_group_fraction": 0.5})
    cb.on_log(None, state(3, main=False), None, logs={"loss": 99.0})  # other processes do not draw
    assert trace_y(dash.figure, "loss") == [2.0, 1.5]
    assert trace_y(dash.figure, "dynamic_sampling/kept_group_fraction") == [0.5]
    assert list(next(t for t in dash.figure.data if t.name == "loss").x) == [1, 2]
    assert "step 2" in dash.status.value and len(dash.history) == 2


def test_dashboard_from_history_matches_reward_dashboard():
    from workbench.viz import reward_dashboard

    dash = TrainingDashboard(log_history=LOG_HISTORY)
    expected = {t.name: (list(t.y), t.xaxis) for t in reward_dashboard(LOG_HISTORY).data}
    assert {t.name: (list(t.y), t.xaxis) for t in dash.figure.data} == expected
    dash.update({"completions/mean_length": 30.0}, step=3)
    assert trace_y(dash.figure, "completions/mean_length") == [40.0, 35.0, 30.0]


def test_figure_state_is_complete_when_a_box_is_displayed(rows, predictions):
    # Traces added before a front end exists travel as messages it can miss; displaying the box
    # copies the whole figure into the synced state (a JupyterLab-rendering bug this guards).
    for widget in (TrainingDashboard(log_history=LOG_HISTORY).widget, trace_browser(rows, predictions), scene_browser(rows)):
        fig = widget._figure_boxes[0].figure
        widget._repr_mimebundle_()
        state = fig.get_state()
        assert len(state["_widget_data"]) == len(fig.data) > 0
        assert [t.get("name") for t in state["_widget_data"]] == [t.name for t in fig.data]


def test_figure_box_without_anywidget(monkeypatch):
    # plotly >= 6 raises ImportError for FigureWidget without anywidget: the widgets fall back.
    def no_widget(*args, **kwargs):
        raise ImportError("Please install anywidget to use the FigureWidget class")

    monkeypatch.setattr(go, "FigureWidget", no_widget)
    box = FigureBox()
    assert not box.live
    box.show(go.Figure(go.Scatter(x=[1], y=[2], name="a")))
    assert [t.name for t in box.figure.data] == ["a"]
    dash = TrainingDashboard(log_history=LOG_HISTORY)
    assert not dash._box.live and trace_y(dash.figure, "loss") == [2.0, 1.5]


# ----------------------------------------------------------------------------- real evaluation output


@pytest.fixture(scope="module")
def real_eval(real_data):  # noqa: F811
    """Scored predictions and metrics of the oracle and chance baselines (no model needed)."""
    evaluate = pytest.importorskip("workbench.eval.evaluate")
    settings = evaluate.EvalSettings(splits=("test",), paths=("lor", "dtr", "auto"), max_examples=12,
                                     baselines=("chance", "oracle"))  # fmt: skip
    return evaluate.evaluate(None, real_data, settings=settings, progress=False)


def test_widgets_and_charts_on_real_evaluation_output(real_data, real_eval):  # noqa: F811
    from workbench import viz
    tb = trace_browser(real_data, real_eval.predictions)
    assert len(tb.example.options) == len({(p["model"], p["id"]) for p in real_eval.predictions})
    tb.model.value = "oracle"
    tb.path.value = "dtr"
    tb.correct.value = "wrong"
    assert tb.example.options == ()  # the oracle is always right
    tb.correct.value = "correct"
    assert len(tb.example.options) > 0
    key = next(k for _, k in tb.example.options if any(p["pred_centers"] for p in tb.groups[k]))
    tb.example.value = key
    errors = [t.name for t in tb.plot.figure.data if t.name.startswith("error ")]
    assert errors and all(float(n.split(": ")[-1].removesuffix(" m")) <= 0.01 for n in errors)
    assert len(tb.traces.children) == 3 and "\u0394 0.0" in tb.traces.children[1].value

    rt = results_table(real_eval.metrics)
    rt.filters["model"].value = "oracle"
    rt.filters["category"].value = "all"
    assert rt.shown() and all(r["model"] == "oracle" and r["category"] == "all" for r in rt.shown())
    fig = viz.category_bars(real_eval.metrics, "choice_accuracy", by="model", path="dtr", split="test")
    assert [t.name for t in fig.data] == ["chance", "oracle"] and set(fig.data[1].y) == {1.0}
    fig = viz.path_comparison(real_eval.metrics, "number_mra", model="oracle", split="test")
    assert set(next(t for t in fig.data if t.name == "dtr - lor").y) == {0.0}


def test_a_stage_dashboard_draws_that_stages_panels_live():
    from workbench import viz

    dash = TrainingDashboard("cold-start SFT", stage="sft")
    cb = dash.callback()
    for entry in SFT_LOG:
        cb.on_log(None, state(entry["step"]), None, logs={k: v for k, v in entry.items() if k != "step"})
    expected = {t.name: (list(t.y), t.xaxis) for t in viz.training_dashboard(SFT_LOG, "sft").data}
    assert {t.name: (list(t.y), t.xaxis) for t in dash.figure.data} == expected
    assert {t.name: t.legend for t in dash.figure.data} == {t.name: t.legend for t in viz.training_dashboard(SFT_LOG, "sft").data}
    assert [a.text for a in dash.figure.layout.annotations][1] == viz.PANEL_TITLES["token_accuracy"]
    assert "mean_token_accuracy 0.5" in dash.status.value
    with pytest.raises(ValueError, match="stage 'ppo'"):
        TrainingDashboard(stage="ppo")
