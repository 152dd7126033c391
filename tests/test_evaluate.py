"""Evaluation: metric definitions on hand cases, scoring of single predictions and baselines
(`workbench.eval.metrics`), and `workbench eval` end to end on the smoke dataset (files written, every
aggregate re-derived independently from predictions.jsonl by the SPEC definitions, the oracle at 100%)."""

from __future__ import annotations

import json
import math
import re
import statistics
from collections import defaultdict

import numpy as np
import pytest

from workbench import cli
from workbench.dataset import views
from workbench.eval import baselines, metrics
from workbench.eval import evaluate as E
from workbench.eval.baselines import chance_completion
from workbench.eval.metrics import (
    METRIC_COLUMNS,
    answers_agree,
    group_metrics,
    mean_relative_accuracy,
    median,
    read_predictions,
    rescore,
    score_prediction,
    score_predictions,
    stated_option_of,
    success_25,
)
from workbench.tasks import questions, rewards

IDENTITY = np.eye(4).tolist()


# --- metric primitives -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "x, g, mra",
    [
        (1.0, 1.0, 1.0),
        (1.04, 1.0, 1.0),  # 4% off: below every 1 - t (smallest 0.05)
        (1.05, 1.0, 0.9),  # exactly 5% off fails t = 0.95 (strict <), float noise must not flip it
        (0.95, 1.0, 0.9),
        (1.3, 1.0, 0.4),  # 30%: passes t = 0.50 .. 0.65
        (1.45, 1.0, 0.1),  # 45% passes only t = 0.50 (exact boundary 0.45 of t = 0.55 fails)
        (0.51, 1.0, 0.1),
        (0.5, 1.0, 0.0),
        (2.0, 1.0, 0.0),
        (-1.0, 1.0, 0.0),
        (2.2, 2.0, 0.8),  # 10% of a larger truth
        (None, 1.0, 0.0),  # no (parsable) answer
    ],
)
def test_mean_relative_accuracy(x, g, mra):
    assert mean_relative_accuracy(x, g) == pytest.approx(mra)


@pytest.mark.parametrize(
    "x, g, ok",
    [
        (1.25, 1.0, True),
        (0.75, 1.0, True),
        (1.26, 1.0, False),
        (0.74, 1.0, False),
        (2.5, 2.0, True),
        (None, 1.0, False),
    ],
)
def test_success_25(x, g, ok):
    assert success_25(x, g) is ok


@pytest.mark.parametrize(
    "values, expected",
    [([], None), ([0.3], 0.3), ([0.1, 0.0, 0.3], 0.1), ([0.4, 0.1, 0.2, 0.3], 0.25)],
)
def test_median(values, expected):
    assert median(values) == (None if expected is None else pytest.approx(expected))


@pytest.mark.parametrize(
    "stated, implied, kind, agree",
    [
        ("B", "B", "choice", True),
        ("(b)", "B", "choice", True),
        ("A", "B", "choice", False),
        ("1.04", "1.00", "number", True),  # within 0.05 m
        ("1.06", "1.00", "number", False),
        ("4.15", "4.00", "number", True),  # within 5% of a larger value
        ("4.25", "4.00", "number", False),
        ("1 m", "1.00", "number", False),
        (None, "1.00", "number", False),
    ],
)
def test_answers_agree(stated, implied, kind, agree):
    assert answers_agree(stated, implied, kind) is agree


# --- one prediction ----------------------------------------------------------------------------


def dtr_text(centers: dict[str, tuple], answer: str, think: str = "t") -> str:
    boxes = "".join(
        f'\n<3d_box center="{",".join(str(v) for v in c)}">cube ({label})</3d_box>'
        for label, c in centers.items()
    )
    return f"<detect>Find {len(centers)} relevant objects:{boxes}</detect>\n<think>{think}</think>\n<answer>{answer}</answer>"


def prediction(
    completion: str,
    answer: str = "1.00",
    category: str = "distance",
    path: str = "dtr",
    choices=(),
    split: str = "test",
    model: str = "m",
) -> dict:
    """A prediction row as `evaluate` writes it, before scoring: red box at (0, 0, 1), blue at (1, 0, 1)."""
    labels = ["red box", "blue box"]
    return {
        "model": model,
        "path": path,
        "resolved_path": path,
        "id": f"x-{len(completion)}-{answer}",
        "split": split,
        "task": "region_qa",
        "category": category,
        "answer_type": "number" if not choices else "choice",
        "answer": answer,
        "choices": list(choices),
        "question": "q",
        "regions": [
            {"label": lab, "kind": "box", "object_index": i, "bbox_2d": [0, 0, 1, 1]}
            for i, lab in enumerate(labels)
        ],
        "role_labels": labels,
        "gt_centers": {"red box": [0.0, 0.0, 1.0], "blue box": [1.0, 0.0, 1.0]},
        "camera_to_world": IDENTITY,
        "completion": completion,
    }


def test_score_prediction_dtr_number():
    # Red box 0.1 m off (step score 0.8), blue exact (1.0): detect 0.9; the implied distance is
    # sqrt(1 + 0.01) = 1.005 -> "1.00", which the stated 1.00 matches.
    p = score_prediction(prediction(dtr_text({"red box": (0, 0, 1.1), "blue box": (1, 0, 1)}, "1.00")))
    assert p["format"] == 1.0 and p["accuracy"] == 1.0 and p["correct"]
    assert p["detect"] == pytest.approx(0.9)
    assert p["center_errors"] == pytest.approx({"red box": 0.1, "blue box": 0.0})
    assert p["center_error_m"] == pytest.approx(0.05)
    assert p["implied_answer"] == "1.00" and p["implied_agrees"] and p["implied_correct"]
    assert p["pred_centers"] == {"cube (red box)": [0.0, 0.0, 1.1], "cube (blue box)": [1.0, 0.0, 1.0]}

    # The same centers but the stated answer 1.50: a reasoning error (centers imply the truth).
    q = score_prediction(prediction(dtr_text({"red box": (0, 0, 1.1), "blue box": (1, 0, 1)}, "1.50")))
    assert (
        not q["correct"]
        and q["implied_answer"] == "1.00"
        and q["implied_agrees"] is False
        and q["implied_correct"]
    )
    assert q["rel_error"] == pytest.approx(0.5)


def test_score_prediction_choice_rules():
    right = "<think>a</think>\n<answer>(b)</answer>"
    twice = "<think>a</think><think>b</think>\n<answer>B</answer>"  # accuracy needs each tag once
    for text, correct in ((right, True), (twice, False), ("<answer>B</answer>", False), ("", False)):
        p = score_prediction(
            prediction(text, answer="B", category="left_right", path="lor", choices=("left", "right"))
        )
        assert p["correct"] is correct, text
        assert p["accuracy"] == float(correct)
        assert p["center_errors"] == {} and p["detect"] is None and p["implied_answer"] is None


def test_unparsable_centers_match_nothing():
    text = dtr_text({"red box": (0, 0), "blue box": (1, 0, 1)}, "1.00")  # one center lacks z
    p = score_prediction(prediction(text))
    assert p["pred_centers"] is None and p["center_errors"] == {} and p["detect"] == 0.0
    assert p["implied_answer"] is None and p["implied_agrees"] is None


def test_group_metrics_hand_table():
    preds = [
        prediction(dtr_text({"red box": (0, 0, 1.1), "blue box": (1, 0, 1)}, "1.00")),  # errors 0.1, 0
        prediction(dtr_text({"red box": (0, 0, 1.3), "blue box": (1, 0, 1)}, "1.30")),  # errors 0.3, 0
        prediction(dtr_text({"blue box": (1, 0, 1.5)}, "2 m")),  # error 0.5; red unmatched; no number
        prediction(
            "<detect></detect><think>x</think><answer>A</answer>",
            answer="A",
            category="left_right",
            choices=("left", "right"),
        ),
    ]
    m = group_metrics(score_predictions(preds))
    assert m["n"] == 4
    assert m["choice_accuracy"] == 1.0
    # MRA per numeric row: 1.00 vs 1.00 -> 1; 1.30 vs 1.00 -> 0.4; unparsable -> 0.
    assert m["number_mra"] == pytest.approx((1.0 + 0.4 + 0.0) / 3)
    assert m["success_25"] == pytest.approx(1 / 3)
    assert m["center_error_m"] == pytest.approx(statistics.median([0.1, 0.0, 0.3, 0.0, 0.5]))
    assert m["format_rate"] == 1.0
    # Implied answers exist for the first two rows (both roles matched): 1.00 vs 1.00, and
    # sqrt(1 + 0.09) = 1.044 -> "1.04" vs the stated 1.30: disagree.
    assert m["implied_answer_agreement"] == pytest.approx(0.5)
    # Labels named: both, both, blue only, none (the LOR-style row names no box).
    assert m["label_recall"] == pytest.approx((1 + 1 + 0.5 + 0) / 4)
    assert m["top_letter_share"] == 1.0  # the one choice row answered A


def test_top_letter_share_shows_a_model_answering_one_letter():
    rows = [prediction(f"<think>x</think><answer>{a}</answer>", answer=t, category="left_right", path="lor",
                       choices=("left", "right")) for a, t in (("A", "A"), ("A", "B"), ("(a)", "B"), ("B", "B"))]
    m = group_metrics(score_predictions(rows))
    assert m["top_letter_share"] == 0.75 and m["choice_accuracy"] == 0.5
    assert group_metrics(score_predictions(rows[:0] + [prediction(dtr_text({"red box": (0, 0, 1)}, "1.00"))]))[
        "top_letter_share"] is None  # numeric rows only


def choice_prediction(think: str, letter: str, truth: str, choices=("left", "right")) -> dict:
    return prediction(f"<think>{think}</think><answer>{letter}</answer>", answer=truth, category="left_right",
                      path="lor", choices=choices)


def test_option_metrics_tell_reasoning_from_letter_lookup():
    # Right side reasoned every time; the letter is looked up only in the first two rows.
    rows = [
        choice_prediction("so the answer is right (B).", "B", "B"),
        choice_prediction("so the answer is left (B).", "B", "A", choices=("right", "left")),
        choice_prediction("so the answer is right (A).", "A", "B"),  # right text, wrong letter
        choice_prediction("so the answer is left (B).", "B", "B", choices=("right", "left")),  # wrong both
        choice_prediction("it is on the right", "B", "B"),  # states no option: not counted
    ]
    m = group_metrics(score_predictions(rows))
    assert m["choice_accuracy"] == pytest.approx(3 / 5)
    assert m["option_accuracy"] == pytest.approx(3 / 4)  # rows 1-3 name the true side
    assert m["letter_agreement"] == pytest.approx(3 / 4)  # rows 1, 2 and 4 write their option's letter
    lookup_fails = [choice_prediction(f"so the answer is right ({x}).", x, "B") for x in "AAAB"]
    m = group_metrics(score_predictions(lookup_fails))
    assert (m["option_accuracy"], m["letter_agreement"], m["choice_accuracy"]) == (1.0, 0.25, 0.25)
    numbers = group_metrics(score_predictions([prediction(dtr_text({"red box": (0, 0, 1)}, "1.00"))]))
    assert numbers["option_accuracy"] is None and numbers["letter_agreement"] is None


@pytest.mark.parametrize(
    "text, choices, expected",
    [
        ("so the answer is right (B).", ["left", "right"], ("right", "B")),
        ("left (A)? no: right (b)", ["left", "right"], ("right", "B")),  # the last one stated
        ("it is smaller (A)", ["larger", "smaller"], ("smaller", "A")),  # whole words only
        ("The closest is red box (C).", ["green point", "blue box", "red box"], ("red box", "C")),
        ("in front (A)", ["front", "in front"], ("in front", "A")),  # the longer option at a tie
        ("right(B) or right B", ["left", "right"], None),
        ("", ["left", "right"], None),
    ],
)
def test_stated_option_of(text, choices, expected):
    assert stated_option_of(text, choices) == expected


def test_label_recall_counts_the_question_labels_a_completion_names():
    both = score_prediction(prediction("<think>the red box is left of the blue box</think><answer>A</answer>"))
    other = score_prediction(prediction("<think>the magenta box is left of the blue point</think><answer>A</answer>"))
    assert both["label_recall"] == 1.0 and other["label_recall"] == 0.0
    plain = prediction("<think>the red box</think><answer>A</answer>")
    plain["regions"] = []
    assert score_prediction(plain)["label_recall"] is None
    assert group_metrics([score_prediction(plain)])["label_recall"] is None


def test_undefined_metrics_are_none():
    lor = [
        prediction(
            "<think>a</think><answer>B</answer>",
            answer="B",
            category="left_right",
            path="lor",
            choices=("left", "right"),
        )
    ]
    m = group_metrics(score_predictions(lor))
    assert m["choice_accuracy"] == 1.0
    for key in ("number_mra", "success_25", "center_error_m", "detect_reward", "implied_answer_agreement"):
        assert m[key] is None, key


def test_rescore_under_another_reward_variant():
    preds = [prediction(dtr_text({"red box": (0, 0, 1.1), "blue box": (1, 0, 1)}, "1.00"))]
    step = rescore(preds)[0]["detect_reward"]
    cont = rescore(preds, E.EvalSettings(center_reward="exp"))[0]["detect_reward"]
    assert step == pytest.approx(0.9)
    assert cont == pytest.approx((math.exp(-0.1 / 0.3) + 1.0) / 2)


def test_scoring_defaults_are_those_of_eval_settings():
    """Scoring without settings (`rescore(preds)`) is scoring under `EvalSettings()`: the SPEC rewards."""
    assert metrics._scoring(None) == metrics._scoring(E.EvalSettings())
    assert metrics._scoring(None)[0] == rewards.RewardSettings()


# --- baselines ---------------------------------------------------------------------------------


def test_chance_scores_one_over_the_number_of_choices():
    rng = np.random.default_rng(0)
    preds, expected = [], []
    for i in range(3000):
        k = int(rng.integers(2, 5))
        truth = "ABCD"[int(rng.integers(k))]
        row = {
            "id": f"s{i}",
            "answer_type": "choice",
            "choices": [f"o{j}" for j in range(k)],
            "answer": truth,
        }
        text = chance_completion(row, "lor", seed=7)
        preds.append(
            prediction(text, answer=truth, category="left_right", path="lor", choices=row["choices"])
        )
        expected.append(1 / k)
    acc = group_metrics(score_predictions(preds))["choice_accuracy"]
    sd = math.sqrt(sum(p * (1 - p) for p in expected)) / len(expected)
    assert abs(acc - np.mean(expected)) < 4 * sd, (acc, np.mean(expected))
    # Seeded: the same seed gives the same guesses, another seed other guesses.
    row = {"id": "s1", "answer_type": "choice", "choices": ["a", "b", "c", "d"]}
    guesses = lambda seed: [chance_completion({**row, "id": f"s{i}"}, "lor", seed=seed) for i in range(40)]  # noqa: E731
    assert guesses(7) == guesses(7) and guesses(7) != guesses(8)
    number = chance_completion({"id": "n", "answer_type": "number"}, "dtr", number_prior=1.234)
    assert rewards.parse_answer(number) == "1.23" and rewards.format_ok(number, "dtr")


def test_generation_is_batched_and_auto_reuses(monkeypatch, smoke_data):
    """`evaluate` generates each (row, resolved path) once, in batches, and the language prior
    sees the same prompts with a blank image. The model is a stand-in recording its calls."""
    from workbench import model as M
    from workbench.dataset import build as data
    dd = data.load_dataset_dir(smoke_data)
    calls = []

    def fake_generate(model, processor, rows, path="auto", max_new_tokens=0, batch_size=8, **kw):
        calls.append((model, path, [r["id"] for r in rows], [r["image"] for r in rows]))
        return [f"<think>{model}</think>\n<answer>A</answer>" for _ in rows]

    monkeypatch.setattr(M, "generate", fake_generate)
    settings = E.EvalSettings.from_profile("smoke", batch_size=5, baselines=("language_prior",))
    result = E.evaluate({"real": ("real", None)}, dd, None, settings, progress=False)
    rows = [r for s in settings.splits for r in E.load_rows(dd, s, settings.max_examples)]
    n_dtr = sum(bool(r["regions"]) for r in rows)  # auto = dtr exactly for these
    half = len(calls) // 2  # the model's calls, then the language prior's (same stand-in model)
    assert half == 2 * math.ceil(len(rows) / 5)  # 2 paths (auto reused), batches of at most 5
    assert all(len(ids) <= 5 for _, _, ids, _ in calls)
    for part in (calls[:half], calls[half:]):
        for path in ("lor", "dtr"):
            ids = [i for _, p, batch, _ in part if p == path for i in batch]
            assert sorted(ids) == sorted(r["id"] for r in rows), path  # each row once per path
    assert all(np.asarray(img).std() == 0 for *_, imgs in calls[half:] for img in imgs), (
        "language prior: blank image"
    )
    assert all(np.asarray(img).std() > 0 for *_, imgs in calls[:half] for img in imgs)
    auto = [p for p in result.predictions if p["path"] == "auto" and p["model"] == "real"]
    assert sum(p["resolved_path"] == "dtr" for p in auto) == n_dtr
    assert {p["model"] for p in result.predictions} == {"real", "language_prior"}


# --- end to end --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_model_dir(smoke_data, tmp_path_factory):
    """An untrained built-in model (tokenizer trained on the smoke train split), saved."""
    from workbench import model as M
    from workbench.dataset import build as data
    from workbench.tasks import prompts
    train = views.remove_columns(data.load_dataset_dir(smoke_data)["train"], ["image", "depth"])
    model, processor = M.build_tiny(prompts.corpus(train), M.ModelSettings.from_profile("smoke"))
    out = tmp_path_factory.mktemp("models") / "tiny"
    model.save_pretrained(out)
    processor.save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def cli_eval(smoke_data, tiny_model_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("eval") / "e"
    code = cli.main(
        [
            "eval",
            "--model",
            str(tiny_model_dir),
            "--model",
            f"again={tiny_model_dir}",
            "--data",
            str(smoke_data),
            "--out",
            str(out),
            "--profile",
            "smoke",
            "--max-new-tokens",
            "12",
            "--baselines",
            "chance,oracle",
            "--no-progress",
        ]
    )
    assert code == 0
    return out


def test_eval_writes_both_files_with_one_table(cli_eval):
    metrics = json.loads((cli_eval / "metrics.json").read_text())
    preds = read_predictions(cli_eval)
    assert {m["model"] for m in metrics} == {"tiny", "again", "chance", "oracle"}
    keys = ("model", "path", "split", "category", *METRIC_COLUMNS)
    assert all(tuple(m) == keys or set(m) == set(keys) for m in metrics)
    for key in (
        "id",
        "model",
        "path",
        "split",
        "category",
        "answer_type",
        "answer",
        "completion",
        "pred_answer",
        "pred_centers",
        "correct",
        "gt_centers",
        "camera_to_world",
        "choices",
    ):
        assert all(key in p for p in preds), key
    n_rows = len({(p["split"], p["id"]) for p in preds})
    assert len(preds) == 4 * 3 * n_rows  # models x paths x rows
    for m in metrics:
        if m["category"] == "all":
            assert m["n"] == sum(
                1 for p in preds if (p["model"], p["path"], p["split"]) == (m["model"], m["path"], m["split"])
            )


def spec_metrics(preds: list[dict]) -> dict[tuple, dict]:
    """Every aggregate of metrics.json re-derived from predictions.jsonl alone by the SPEC
    section 7 wording, without `workbench.eval.evaluate`'s scoring code."""
    groups = defaultdict(list)
    for p in preds:
        for cat in ("all", p["category"]):
            groups[(p["model"], p["path"], p["split"], cat)].append(p)
    out = {}
    for key, rows in groups.items():
        choice_hits, mra, success, errors, detect, fmt, agree = [], [], [], [], [], [], []
        for p in rows:
            text, path = p["completion"], p["resolved_path"]
            centers = p["gt_centers"] if path == "dtr" else None
            s = rewards.score(text, p["answer"], centers, path, p["answer_type"])
            fmt.append(s["format"])
            ok_tags = all(rewards.tag_counts(text)[t] == 1 for t in rewards.ANSWER_TAGS)
            stated = rewards.parse_answer(text) if ok_tags else None
            if p["answer_type"] == "choice":
                choice_hits.append(s["accuracy"])  # the SPEC accuracy of a choice is exactly the hit
            else:
                g = float(p["answer"])
                x = rewards.parse_number(stated) if stated is not None else None
                rel = math.inf if x is None else abs(x - g) / abs(g)
                # Thresholds in integer percent: 1[100 |x-g| < (100 - t%) |g|], t% = 50, 55, ..., 95.
                mra.append(np.mean([round(100 * rel, 6) < 100 - t for t in range(50, 100, 5)]))
                success.append(round(100 * rel, 6) <= 25)
            if path == "dtr":
                if "detect" in s:
                    detect.append(s["detect"])
                found = rewards.parse_centers(text) or {}
                matched = {}
                for label in p["gt_centers"]:
                    text_of = next((t for t in found if label in t), None)
                    if text_of is not None:
                        matched[label] = found[text_of]
                        errors.append(
                            float(np.linalg.norm(np.subtract(found[text_of], p["gt_centers"][label])))
                        )
                if matched and p["category"] in questions.REGION_CATEGORIES:
                    truth = {
                        "id": p["id"],
                        "task": p["task"],
                        "regions": p["regions"],
                        "choices": p["choices"],
                        "camera_to_world": p["camera_to_world"],
                        "centers": {lab: p["gt_centers"][lab] for lab in p["role_labels"]},
                    }
                    implied = questions.answer_from_centers(p["category"], matched, truth)
                    if implied is not None:
                        if stated is None:
                            agree.append(False)
                        elif p["answer_type"] == "number":
                            x, y = rewards.parse_number(stated), float(implied)
                            agree.append(x is not None and abs(x - y) <= max(0.05, 0.05 * abs(y)) + 1e-9)
                        else:
                            agree.append(stated.strip("() ").upper() == implied)
        mean = lambda v: float(np.mean(v)) if len(v) else None  # noqa: E731
        out[key] = {
            "n": len(rows),
            "choice_accuracy": mean(choice_hits),
            "number_mra": mean(mra),
            "success_25": mean(success),
            "center_error_m": float(np.median(errors)) if errors else None,
            "detect_reward": mean(detect),
            "format_rate": mean(fmt),
            "implied_answer_agreement": mean(agree),
        }
    return out


def noisy_copy(preds: list[dict], seed: int = 0) -> list[dict]:
    """The oracle's predictions with perturbed centers, answers and tags, as model `noisy`:
    every metric takes values strictly between its extremes."""
    rng = np.random.default_rng(seed)

    def jitter(m: re.Match) -> str:
        sigma = float(rng.choice([0.0, 0.02, 0.3]))  # exact, slightly off, far off
        xyz = [float(v) + float(rng.normal(0, sigma)) for v in m.group(1).split(",")]
        return 'center="' + ",".join(f"{v:.2f}" for v in xyz) + '"'

    out, seen = [], defaultdict(int)
    for p in (q for q in preds if q["model"] == "oracle"):
        i = seen[p["answer_type"]] = seen[p["answer_type"]] + 1  # alternate within every group
        text = re.sub(r'center="([^"]*)"', jitter, p["completion"])
        if p["answer_type"] == "number":
            value = float(p["answer"]) * (1.0, 1.03, 1.2, 1.5, 0.6)[i % 5]
            text = re.sub(r"<answer>.*</answer>", f"<answer>{value:.2f}</answer>", text)
        elif i % 2 == 0:  # a wrong letter
            text = text.replace(
                f"<answer>{p['answer']}</answer>",
                "<answer>A</answer>" if p["answer"] != "A" else "<answer>(b)</answer>",
            )
        if rng.random() < 0.1:
            text = text.replace("</think>", "</think></think>")  # breaks format and accuracy
        out.append({**p, "model": "noisy", "completion": text})
    return out


def test_rescoring_predictions_reproduces_metrics(cli_eval):
    metrics = json.loads((cli_eval / "metrics.json").read_text())
    preds = read_predictions(cli_eval)
    assert rescore(preds) == metrics  # the library's own re-scoring: identical
    preds += noisy_copy(preds)
    metrics = rescore(preds)
    noisy = [m for m in metrics if m["model"] == "noisy" and m["path"] == "dtr" and m["category"] == "all"]
    for key in ("choice_accuracy", "number_mra", "detect_reward", "implied_answer_agreement"):
        assert all(0.0 < m[key] < 1.0 for m in noisy), key  # the comparison below is not vacuous
    assert all(m["center_error_m"] > 0.01 for m in noisy)
    expected = spec_metrics(preds)
    assert set(expected) == {(m["model"], m["path"], m["split"], m["category"]) for m in metrics}
    for m in metrics:
        want = expected[(m["model"], m["path"], m["split"], m["category"])]
        for key, value in want.items():
            assert (m[key] is None) == (value is None), (m, key)
            if value is not None:
                assert m[key] == pytest.approx(value, abs=1e-9), (
                    m["model"],
                    m["path"],
                    m["split"],
                    m["category"],
                    key,
                )


def test_cli_rescore_offline(cli_eval, tmp_path):
    """`workbench eval --rescore` needs neither model nor data; a reward variant changes only detect."""
    metrics = json.loads((cli_eval / "metrics.json").read_text())
    assert cli.main(["eval", "--rescore", str(cli_eval), "--out", str(tmp_path / "same")]) == 0
    assert json.loads((tmp_path / "same" / "metrics.json").read_text()) == metrics
    args = ["eval", "--rescore", str(cli_eval / "predictions.jsonl"), "--out", str(tmp_path / "exp")]
    assert cli.main([*args, "--center-reward", "exp"]) == 0
    changed = json.loads((tmp_path / "exp" / "metrics.json").read_text())
    for old, new in zip(metrics, changed):
        assert {k: v for k, v in old.items() if k != "detect_reward"} == {
            k: v for k, v in new.items() if k != "detect_reward"
        }
        if old["model"] == "oracle" and old["detect_reward"] is not None:
            assert 0.95 < new["detect_reward"] < 1.0 == old["detect_reward"]  # exp(-d / 0.3), d < 0.01 m


def test_oracle_scores_100_percent_on_every_split(cli_eval):
    metrics = [m for m in json.loads((cli_eval / "metrics.json").read_text()) if m["model"] == "oracle"]
    assert {m["split"] for m in metrics} == set(E.EvalSettings.from_profile("smoke").splits)
    for m in metrics:
        where = (m["path"], m["split"], m["category"])
        for key in ("choice_accuracy", "number_mra", "success_25", "format_rate"):
            assert m[key] in (None, 1.0), (where, key, m[key])
        if m["path"] != "lor" and m["category"] == "all":
            assert m["detect_reward"] == 1.0 and m["implied_answer_agreement"] == 1.0, where
            # The true centers, written with the format's 2 decimals: off by at most sqrt(3) * 0.005 m.
            assert 0.0 <= m["center_error_m"] <= math.sqrt(3) * 0.005 + 1e-9, where
    alls = [m for m in metrics if m["category"] == "all"]
    assert all(m["choice_accuracy"] == 1.0 and m["number_mra"] == 1.0 for m in alls)


def test_eval_errors_name_the_bad_value(smoke_data, tmp_path, capsys):
    assert (
        cli.main(["eval", "--data", str(smoke_data), "--out", str(tmp_path / "e"), "--splits", "tset"]) == 2
    )
    assert "tset" in capsys.readouterr().err
    assert (
        cli.main(
            [
                "eval",
                "--model",
                str(tmp_path / "nope"),
                "--data",
                str(smoke_data),
                "--out",
                str(tmp_path / "e"),
                "--profile",
                "smoke",
            ]
        )
        == 2
    )
    assert "nope" in capsys.readouterr().err
    with pytest.raises(ValueError, match="nothing to evaluate"):
        E.evaluate([], smoke_data, None, E.EvalSettings.from_profile("smoke"))
    with pytest.raises(ValueError, match="max_new_tokens"):
        E.EvalSettings(max_new_tokens=0)


def numbers_prediction(stated: tuple[float, float], truth: tuple[float, float], category: str = "front_behind"):
    think = "the red box is {:.2f} m away and the blue box {:.2f} m, so the answer is in front (A)."
    row = choice_prediction(think.format(*stated), "A", "A", choices=("in front", "behind"))
    row["category"] = category
    row["reference_targets"] = {"lor": f"<think>{think.format(*truth)}</think><answer>A</answer>"}
    return row


def test_think_number_corr_tells_perceived_numbers_from_a_template():
    truths = [(1.0, 2.0), (3.0, 1.5), (2.2, 2.8), (0.9, 3.4)]
    perceived = [numbers_prediction((a + 0.1, b - 0.1), (a, b)) for a, b in truths]
    scored = score_predictions(perceived)
    assert scored[0]["think_numbers"] == [[1.0, 1.1], [2.0, 1.9]]
    assert group_metrics(scored)["think_number_corr"] > 0.95
    template = [numbers_prediction(stated, t) for stated, t in zip([(2.01, 2.04), (2.04, 2.01), (2.01, 2.01),
                                                                     (2.04, 2.04)], truths)]
    assert abs(group_metrics(score_predictions(template))["think_number_corr"]) < 0.5
    # Each position near its usual value: pooled, the two scales would correlate; apart, they do not.
    scales = [numbers_prediction((1.0 + d, 3.0 - d), (1.0 + e, 3.0 + e)) for d, e in
              ((0.01, 0.3), (0.02, -0.2), (0.03, 0.25), (0.04, -0.3))]
    assert abs(group_metrics(score_predictions(scales))["think_number_corr"]) < 0.5
    constant = [numbers_prediction((2.0, 2.0), t) for t in truths]
    assert group_metrics(score_predictions(constant))["think_number_corr"] is None  # a constant side has no corr
    # A row stating another count of numbers, or no reference, gives no pairs.
    short = choice_prediction("so the answer is in front (A).", "A", "A", choices=("in front", "behind"))
    short["reference_targets"] = perceived[0]["reference_targets"]
    assert score_predictions([short])[0]["think_numbers"] is None
    assert score_predictions([choice_prediction("x 1 2", "A", "A")])[0]["think_numbers"] is None
    # Categories and positions are correlated apart and pooled by pairs: scales never mix.
    pixels = [numbers_prediction((a * 30, b * 30), (a * 30, b * 30), "left_right") for a, b in truths]
    both = group_metrics(score_predictions(template + pixels))["think_number_corr"]
    assert both == pytest.approx((group_metrics(score_predictions(template))["think_number_corr"] + 1.0) / 2)


def test_truth_fields_carry_the_reference_traces():
    row = {"id": "r", "split": "val", "task": "region_qa", "category": "distance", "question": "q",
           "answer_type": "number", "answer": "1.00", "regions": [], "centers": {}, "lor_target": "<think>1</think>",
           "dtr_target": "<detect></detect><think>1</think>"}
    fields = baselines.truth_fields(row)
    assert fields["reference_targets"] == {"lor": "<think>1</think>", "dtr": "<detect></detect><think>1</think>"}


def test_eval_never_overwrites_without_being_asked(cli_eval, tmp_path, capsys):
    before = (cli_eval / "metrics.json").read_bytes()
    again = ["eval", "--rescore", str(cli_eval / "predictions.jsonl"), "--out", str(cli_eval)]
    assert cli.main([*again, "--center-reward", "exp"]) == 2
    assert "already holds an evaluation (pass --overwrite to replace it)" in capsys.readouterr().err
    assert (cli_eval / "metrics.json").read_bytes() == before
    copy = tmp_path / "copy"
    copy.mkdir()
    (copy / "predictions.jsonl").write_bytes((cli_eval / "predictions.jsonl").read_bytes())
    assert cli.main(["eval", "--rescore", str(copy / "predictions.jsonl"), "--out", str(copy), "--overwrite"]) == 0
    assert json.loads((copy / "metrics.json").read_text()) == json.loads(before)
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.md").write_text("mine")
    for flags in ([], ["--overwrite"]):
        assert cli.main(["eval", "--rescore", str(copy / "predictions.jsonl"), "--out", str(mine), *flags]) == 2
        assert "exists and is not an evaluation; refusing to write into it" in capsys.readouterr().err
    assert sorted(p.name for p in mine.iterdir()) == ["notes.md"]


def test_rescoring_a_file_that_is_not_predictions_names_it(tmp_path, capsys):
    bad = tmp_path / "notes.txt"
    bad.write_text('{"model": "a"}\nnot json\n')
    assert cli.main(["eval", "--rescore", str(bad), "--out", str(tmp_path / "e")]) == 2
    assert f"{bad} line 2 is not a JSON prediction row" in capsys.readouterr().err
