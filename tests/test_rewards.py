"""Rewards (SPEC section 4): hand-made cases per rule, literal-regex cross-checks, fuzzing, TRL functions."""

from __future__ import annotations

import doctest
import math
import pickle
import re
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from workbench.tasks import parsing, rewards
from workbench.tasks.rewards import (
    RewardFunc,
    RewardSettings,
    center_score,
    format_ok,
    normalize,
    parse_answer,
    parse_centers,
    parse_number,
    reward_funcs,
    score,
    tag_counts,
)

RED = {"red box": [0.0, 0.0, 1.0]}
TWO = {"red box": [0.0, 0.0, 1.0], "blue box": [1.0, 0.0, 2.0]}


def lor(answer="B", think="the cube is left"):
    return f"<think>{think}</think>\n<answer>{answer}</answer>"


def box(center, text):
    return f'<3d_box center="{center}">{text}</3d_box>'


def dtr(boxes=(("0,0,1", "cube (red box)"),), answer="B", think="use the centers"):
    body = "\n".join(box(c, t) for c, t in boxes)
    return f"<detect>Find {len(boxes)} relevant objects:\n{body}</detect>\n<think>{think}</think>\n<answer>{answer}</answer>"


def test_doctests_pass():
    result = doctest.testmod(rewards, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
    assert result.attempted >= 20


# ----------------------------------------------------------------------------- normalisation, parsing


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("< think >a</ think >", "<think>a</think>"),
        ("<answer> ( C ) </answer>", "<answer>( C )</answer>"),
        ("a / b\n\t<x>  y", "a/b<x>y"),
        ("two  words", "two  words"),  # white space not next to < > / stays
        ("   ", "   "),
        ("", ""),
    ],
)
def test_normalize(raw, expected):
    assert normalize(raw) == expected


@pytest.mark.parametrize(
    "text, expected",
    [
        ("0.72", 0.72), ("+3", 3.0), ("-0.5", -0.5), (".5", 0.5), ("3.", 3.0), ("1e5", 1e5), ("2E-2", 0.02),
        (" 3 ", 3.0), ("3 m", None), ("3m", None), ("three", None), ("nan", None), ("NaN", None), ("inf", None),
        ("-Infinity", None), ("1e999999", None), ("1_000", None), ("\u0663", None), ("0x10", None), ("1.2.3", None),
        ("", None), ("e5", None), (".", None), ("1 000", None),
    ],
)  # fmt: skip
def test_parse_number_accepts_bare_ascii_floats_only(text, expected):
    assert parse_number(text) == expected


def test_parse_answer_first_stripped_and_none_when_absent():
    assert parse_answer("<answer> 1 </answer><answer>2</answer>") == "1"
    assert parse_answer("</answer><answer>B") is None
    assert parse_answer("< answer >\n(b)\n</ answer >") == "(b)"


def test_tag_counts_after_normalisation():
    counts = tag_counts("< think >a</think><think><answer>")
    assert counts["<think>"] == 2 and counts["</think>"] == 1 and counts["<answer>"] == 1
    assert counts["</answer>"] == 0 and counts["<detect>"] == 0


def test_parse_centers_keys_by_text_repeated_keeps_last():
    text = dtr([("0,0,1", "cube (red box)"), ("1,1,1", "ball (blue box)"), ("0,0,2", "cube (red box)")])
    assert parse_centers(text) == {"cube (red box)": (0.0, 0.0, 2.0), "ball (blue box)": (1.0, 1.0, 1.0)}
    assert list(parse_centers(text)) == ["cube (red box)", "ball (blue box)"]  # first-seen order
    assert parse_centers(lor()) == {}
    assert parse_centers(dtr([("0, 0 ,1", "a")])) == {"a": (0.0, 0.0, 1.0)}  # spaces around numbers ok
    assert parse_centers('<3d_box center="0,0,1">outside</3d_box><detect></detect>') == {}


@pytest.mark.parametrize(
    "center", ["0,0", "0,0,1,2", "a,b,c", "nan,0,1", "0,inf,1", "1e999999,0,0", "", "0;0;1"]
)
def test_parse_centers_none_when_a_center_fails(center):
    assert parse_centers(dtr([("0,0,1", "cube (red box)"), (center, "ball (blue box)")])) is None


# ----------------------------------------------------------------------------- format


@pytest.mark.parametrize(
    "text, path, expected",
    [
        (lor(), "lor", 1.0),
        ("<think>a</think><answer>B</answer>", "lor", 1.0),
        ("< think >a</think >\n \n< answer >B</ answer >\n", "lor", 1.0),  # normalised first
        ("<think></think><answer></answer>", "lor", 1.0),
        ("x" + lor(), "lor", 0.0),  # whole completion must match
        (lor() + "x", "lor", 0.0),
        ("<think>a</think>x<answer>B</answer>", "lor", 0.0),  # only white space between
        ("<answer>B</answer>", "lor", 0.0),
        ("<think>a<think>b</think><answer>B</answer>", "lor", 0.0),  # a tag twice
        ("<think>a</think><answer>B</answer></answer>", "lor", 0.0),
        ("<think>a</think><answer><detect>B</answer>", "lor", 1.0),  # other tags are free on LOR
        (dtr(), "lor", 0.0),
        (dtr(), "dtr", 1.0),
        ("<detect></detect><think></think><answer></answer>", "dtr", 1.0),
        (lor(), "dtr", 0.0),
        ("x" + dtr(), "dtr", 0.0),
        ("<detect>a</detect>b<think>c</think><answer>B</answer>", "dtr", 0.0),
        # Decision 1: DTR format is the literal full match, repeated tags allowed ...
        ("<detect>a</detect><think>b</think><think>c</think><answer>B</answer>", "dtr", 1.0),
        ("<detect>a</detect><detect>b</detect><think>c</think><answer>B</answer></answer>", "dtr", 1.0),
    ],
)
def test_format(text, path, expected):
    assert score(text, "B", path=path)["format"] == expected
    assert format_ok(text, path) is bool(expected)


def test_dtr_repeated_tags_format_but_no_accuracy():
    text = "<detect>a</detect><think>b</think><think>c</think><answer>B</answer>"
    assert score(text, "B", path="dtr") == {"overall": 0.2, "format": 1.0, "accuracy": 0.0}


# ----------------------------------------------------------------------------- accuracy


@pytest.mark.parametrize(
    "answer, truth, expected",
    [
        ("C", "C", 1.0), ("c", "C", 1.0), ("(C)", "C", 1.0), ("(c)", "C", 1.0), (" ( c ) ", "C", 1.0),
        ("B", "C", 0.0), ("C.", "C", 0.0), ("(C", "C", 0.0), ("C)", "C", 0.0), ("Option C", "C", 0.0),
        ("((C))", "C", 0.0), ("", "C", 0.0), ("A", "(a)", 1.0),
        ("0.72", "0.72", 1.0), ("+0.72", "0.72", 1.0), ("7.2e-1", "0.72", 1.0), ("0.720", "0.72", 1.0),
        ("2.1", "2.00", 0.91),  # exp(-2 * 0.1 / 2.01) = 0.905
        ("1.0", "2.00", 0.37),  # exp(-2 * 1 / 2.01) = 0.370
        ("0.01", "0", 0.14),  # exp(-2): the 0.01 keeps g = 0 finite
        ("0", "0", 1.0), ("-2", "2", 0.02), ("1e300", "2", 0.0), ("-1.7e308", "1.7e308", 0.0),
        ("2 m", "2", 0.0), ("2m", "2", 0.0), ("two", "2", 0.0), ("nan", "2", 0.0), ("inf", "2", 0.0),
        ("1e999999", "2", 0.0), ("", "2", 0.0), ("B", "2", 0.0),
    ],
)  # fmt: skip
def test_accuracy(answer, truth, expected):
    result = score(lor(answer=answer), truth)
    assert result["accuracy"] == expected
    assert result["overall"] == pytest.approx(0.8 * expected + 0.2)


@pytest.mark.parametrize(
    "text",
    [
        "<answer>B</answer>",
        "<think>a</think><think>b</think><answer>B</answer>",
        "<think>a</think><answer>B</answer><answer>B</answer>",
        "<think>a</think></answer>B<answer>",  # once each but in the wrong order
        "<think>a</think><answer>B",
    ],
)
def test_accuracy_needs_each_think_answer_tag_once(text):
    assert score(text, "B")["accuracy"] == 0.0
    assert score(text, "B", path="dtr")["accuracy"] == 0.0


def test_accuracy_ignores_format_and_uses_first_answer_region():
    assert score("junk <think>a</think> junk <answer>B</answer> junk", "B") == {
        "overall": 0.8, "format": 0.0, "accuracy": 1.0,
    }  # fmt: skip


def test_answer_type_overrides_inference():
    assert score(lor(answer="3"), "3", answer_type="choice")["accuracy"] == 1.0
    assert score(lor(answer="3.0"), "3", answer_type="choice")["accuracy"] == 0.0
    assert score(lor(answer="Yes"), "yes", answer_type="text")["accuracy"] == 1.0
    assert score(lor(answer="a red cube"), "A red cube")["accuracy"] == 1.0  # inferred text


@pytest.mark.parametrize(
    "kwargs",
    [
        {"answer": None},
        {"answer": "B", "answer_type": "number"},
        {"answer": "nan", "answer_type": "number"},
        {"answer": "B", "answer_type": "letter"},
        {"answer": "B", "path": "auto"},
        {"answer": "B", "path": "dtr", "centers": "not json"},
        {"answer": "B", "path": "dtr", "centers": {"red box": [0, 1]}},
        {"answer": "B", "path": "dtr", "centers": {"red box": [0, float("nan"), 1]}},
        {"answer": "B", "path": "dtr", "centers": {"": [0, 0, 1]}},
        {"answer": "B", "path": "dtr", "centers": [[0, 0, 1]]},
    ],
)
def test_bad_ground_truth_raises_value_error(kwargs):
    with pytest.raises(ValueError):
        score(lor(), **kwargs)


# ----------------------------------------------------------------------------- detect


@pytest.mark.parametrize(
    "d, expected",
    [
        (0.0, 1.0), (0.0999, 1.0), (0.1, 0.8), (0.1999, 0.8), (0.2, 0.6), (0.3, 0.4), (0.3999, 0.4),
        (0.4, 0.2), (0.5999, 0.2), (0.6, 0.1), (0.9999, 0.1), (1.0, 0.0), (50.0, 0.0), (math.inf, 0.0),
        (math.nan, 0.0),
    ],
)  # fmt: skip
def test_center_score_step_boundaries(d, expected):
    assert center_score(d) == expected


@pytest.mark.parametrize(
    "x, expected", [("0.05", 1.0), ("0.1", 0.8), ("0.25", 0.6), ("0.6", 0.1), ("1", 0.0)]
)
def test_detect_step_from_parsed_center(x, expected):
    assert score(dtr([(f"{x},0,1", "cube (red box)")]), "B", RED, path="dtr")["detect"] == expected


@pytest.mark.parametrize(
    "boxes, centers, expected",
    [
        ([("0,0,1", "cube (red box)")], RED, 1.0),
        ([("0,0,1", "cube (red box)"), ("5,5,5", "ball (blue box)")], RED, 0.5),  # divided by #predicted
        ([("0,0,1", "cube (red box)"), ("1,0,2.15", "ball (blue box)")], TWO, 0.9),  # (1.0 + 0.8) / 2
        ([("0,0,1", "cube (red box)")], TWO, 1.0),  # a missed label costs nothing (SPEC)
        ([("0,0,1", "red box")], RED, 1.0),  # containment, not equality
        ([("0,0,1", "cube (Red box)")], RED, 0.0),  # case-sensitive
        ([("0,0,1", "cube (green box)")], RED, 0.0),  # nothing matched
        ([("9,9,9", "cube (red box) a"), ("0,0,1", "cube (red box) b")], RED, 0.0),  # first containing wins
        ([("9,9,9", "cube (red box)"), ("0,0,1", "cube (red box)")], RED, 1.0),  # repeated text keeps last
        ([("0,0,1", "x"), ("0,0,1", "x"), ("0,0,1", "cube (red box)")], RED, 0.5),  # distinct texts
        ([("0,0,1", "cube (red box)"), ("0,0", "ball (blue box)")], TWO, 0.0),  # a center fails to parse
        ([("0,0", "cube (red box)"), ("0,0,1", "cube (red box)")], RED, 0.0),  # ... even if overwritten
        (
            [("0.5,0,1", "cube (red box) and (blue box)")],
            {"red box": [0, 0, 1], "blue box": [0.5, 0, 1]},
            1.0,
        ),
        ([], RED, 0.0),
    ],
)
def test_detect(boxes, centers, expected):
    assert score(dtr(boxes), "B", centers, path="dtr")["detect"] == pytest.approx(expected)


def test_detect_reads_only_the_first_detect_block():
    text = "<detect></detect>" + dtr()
    assert score(text, "B", RED, path="dtr")["detect"] == 0.0
    assert (
        score(dtr() + "<detect>" + box("9,9,9", "cube (red box)") + "</detect>", "B", RED, path="dtr")[
            "detect"
        ]
        == 1.0
    )


def test_detect_variants_are_options():
    text = dtr([("0.3,0,1", "cube (red box)")])
    assert score(text, "B", RED, path="dtr")["detect"] == 0.4
    exp = score(text, "B", RED, path="dtr", settings=RewardSettings(center_reward="exp", center_scale=0.3))
    assert exp["detect"] == pytest.approx(math.exp(-1.0))
    recall = RewardSettings(detect_denominator="max")
    assert score(dtr(), "B", TWO, path="dtr")["detect"] == 1.0
    assert score(dtr(), "B", TWO, path="dtr", settings=recall)["detect"] == 0.5
    with pytest.raises(ValueError):
        RewardSettings(center_reward="linear")
    with pytest.raises(ValueError):
        RewardSettings(center_scale=0.0)


# ----------------------------------------------------------------------------- overall


@pytest.mark.parametrize(
    "text, path, centers, expected",
    [
        (lor(), "lor", None, {"overall": 1.0, "format": 1.0, "accuracy": 1.0}),
        (lor(answer="A"), "lor", None, {"overall": 0.2, "format": 1.0, "accuracy": 0.0}),
        (lor(), "lor", RED, {"overall": 1.0, "format": 1.0, "accuracy": 1.0}),  # centers unused on LOR
        (dtr(), "dtr", RED, {"overall": 1.0, "format": 1.0, "accuracy": 1.0, "detect": 1.0}),
        (
            dtr([("0.15,0,1", "cube (red box)")]),
            "dtr",
            RED,
            {"overall": 0.98, "format": 1.0, "accuracy": 1.0, "detect": 0.8},
        ),
        (dtr(answer="A"), "dtr", RED, {"overall": 0.2, "format": 1.0, "accuracy": 0.0, "detect": 1.0}),
        (lor(), "dtr", RED, {"overall": 0.8, "format": 0.0, "accuracy": 1.0, "detect": 0.0}),
        (dtr(), "dtr", None, {"overall": 1.0, "format": 1.0, "accuracy": 1.0}),  # no centers: 0.8 / 0.2
        (dtr(answer="A"), "dtr", {}, {"overall": 0.2, "format": 1.0, "accuracy": 0.0}),
        (dtr(answer="A"), "dtr", "", {"overall": 0.2, "format": 1.0, "accuracy": 0.0}),
        (
            dtr(answer="A"),
            "dtr",
            '{"red box": [0, 0, 1]}',
            {"overall": 0.2, "format": 1.0, "accuracy": 0.0, "detect": 1.0},
        ),
        (None, "dtr", RED, {"overall": 0.0, "format": 0.0, "accuracy": 0.0, "detect": 0.0}),
        (None, "lor", None, {"overall": 0.0, "format": 0.0, "accuracy": 0.0}),
        ("", "lor", None, {"overall": 0.0, "format": 0.0, "accuracy": 0.0}),
    ],
)
def test_overall_weights(text, path, centers, expected):
    result = score(text, "B", centers, path=path)
    assert result == pytest.approx(expected)
    assert list(result) == list(expected)


def test_score_reads_chat_messages_and_rejects_other_types():
    messages = [{"role": "user", "content": "q"}, {"role": "assistant", "content": lor()}]
    assert score(messages, "B")["overall"] == 1.0
    parts = [{"role": "assistant", "content": [{"type": "text", "text": lor()}]}]
    assert score(parts, "B")["overall"] == 1.0
    with pytest.raises(TypeError):
        score(42, "B")


# ----------------------------------------------------------------------------- TRL reward functions

BATCH = dict(
    completions=[
        lor(),
        dtr([("0.15,0,1", "cube (red box)")], answer="0.9"),
        dtr(answer="A"),
        "",
        lor(answer="0.9"),
    ],
    answer=["B", "1.00", "B", "B", "1.00"],
    answer_type=["choice", "number", "choice", "choice", "number"],
    path=["lor", "dtr", "dtr", "lor", "dtr"],
    centers=[None, '{"red box": [0, 0, 1]}', None, '{"red box": [0, 0, 1]}', '{"red box": [0, 0, 1]}'],
)


def _weighted_sum(funcs, weights, batch):
    columns = {k: v for k, v in batch.items() if k != "completions"}
    per_func = [f(batch["completions"], **columns) for f in funcs]
    return [sum(w * (r or 0.0) for w, r in zip(weights, row)) for row in zip(*per_func)], per_func


def test_weighted_reward_funcs_sum_to_overall_in_a_mixed_batch():
    funcs, weights = reward_funcs("joint")
    assert [f.__name__ for f in funcs] == ["accuracy", "format", "detect"] and weights == [1.0, 1.0, 1.0]
    total, per_func = _weighted_sum(funcs, weights, BATCH)
    expected = [
        score(c, a, ce, path=p, answer_type=t)["overall"]
        for c, a, t, p, ce in zip(
            *(BATCH[k] for k in ("completions", "answer", "answer_type", "path", "centers"))
        )
    ]
    assert total == pytest.approx(expected, abs=1e-12)
    assert per_func[1] == pytest.approx([0.2, 0.1, 0.2, 0.0, 0.0])  # format weighted by the row's path
    assert per_func[2] == [
        None,
        pytest.approx(0.08),
        None,
        None,
        pytest.approx(0.0),
    ]  # detect only DTR + centers


def test_path_mode_forces_a_path_and_lor_has_no_detect():
    funcs, weights = reward_funcs("lor")
    assert [f.__name__ for f in funcs] == ["accuracy", "format"]
    batch = {k: v for k, v in BATCH.items() if k != "path"}
    total, _ = _weighted_sum(funcs, weights, batch)
    assert total == pytest.approx(
        [score(c, a, path="lor")["overall"] for c, a in zip(batch["completions"], batch["answer"])]
    )
    with pytest.raises(ValueError, match="path"):
        reward_funcs("joint")[0][0](batch["completions"], answer=batch["answer"])
    with pytest.raises(ValueError):
        reward_funcs("auto")
    with pytest.raises(ValueError):
        RewardFunc("length")


def test_unweighted_functions_and_conversational_completions():
    chat = [[{"role": "assistant", "content": c}] for c in BATCH["completions"]]
    columns = {k: v for k, v in BATCH.items() if k != "completions"}
    assert rewards.accuracy_reward(chat, **columns) == [1.0, 0.82, 0.0, 0.0, 0.82]
    assert rewards.format_reward(chat, **columns) == [1.0, 1.0, 1.0, 0.0, 0.0]
    assert rewards.detect_reward(chat, **columns) == [None, 0.8, None, None, 0.0]
    assert rewards.accuracy_reward(["<think>a</think><answer>B</answer>"], answer=["B"]) == [1.0]
    with pytest.raises(ValueError, match="answer"):
        rewards.accuracy_reward(["x"], path=["lor"])
    with pytest.raises(ValueError, match="values"):
        rewards.accuracy_reward(["x", "y"], answer=["B"])


def test_reward_funcs_log_per_path_means_and_pickle():
    logged = []
    funcs, _ = reward_funcs("joint")
    columns = {k: v for k, v in BATCH.items() if k != "completions"}
    funcs[0](BATCH["completions"], log_metric=lambda name, value: logged.append((name, value)), **columns)
    assert dict(logged) == pytest.approx(
        {"rewards/accuracy/lor": 0.5, "rewards/accuracy/dtr": (0.82 + 0 + 0.82) / 3}
    )
    clone = pickle.loads(pickle.dumps(funcs[1]))
    assert clone.__name__ == "format" and clone(BATCH["completions"], **columns) == funcs[1](
        BATCH["completions"], **columns
    )


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from([lor(), lor(answer="0.9"), dtr(), dtr([("0.15,0,1", "cube (red box)")], answer="A"), ""]),
            st.sampled_from([("B", "choice"), ("1.00", "number"), ("B", None)]),
            st.sampled_from(["lor", "dtr"]),
            st.sampled_from([None, "", '{"red box": [0, 0, 1]}', '{"red box": [0, 0, 1], "blue box": [1, 0, 2]}']),
        ),
        min_size=1,
        max_size=8,
    )
)  # fmt: skip
def test_fuzz_weighted_sum_equals_overall(rows):
    batch = {
        "completions": [r[0] for r in rows],
        "answer": [r[1][0] for r in rows],
        "answer_type": [r[1][1] for r in rows],
        "path": [r[2] for r in rows],
        "centers": [r[3] for r in rows],
    }
    total, _ = _weighted_sum(*reward_funcs("joint"), batch)
    expected = [score(c, a, ce, path=p, answer_type=t)["overall"] for c, (a, t), p, ce in rows]
    assert total == pytest.approx(expected, abs=1e-12)


# ----------------------------------------------------------------------------- literal regex cross-checks

PIECES = [
    "<think>", "</think>", "<answer>", "</answer>", "<detect>", "</detect>", "< think >", "</ answer>",
    '<3d_box center="', '">', "</3d_box>", "<", ">", "/", '"', ",", " ", "\n", "\t", "\u00a0", "a", "B",
    "(b)", "0.1", "-1e3", "nan", "inf", "1e999999", "red box", "cube (red box)", "0,0,1", "0.15,0,1",
]  # fmt: skip
near_valid = st.lists(st.sampled_from(PIECES) | st.text(max_size=3), max_size=30).map("".join)


def _tag(tag):  # mostly right, sometimes missing, doubled or spaced
    return st.sampled_from([tag, tag, tag, "", tag + tag, tag.replace("<", " < ").replace(">", " > ")])


_junk = st.lists(st.sampled_from(PIECES) | st.text(max_size=2), max_size=4).map("".join)
_gap = st.sampled_from(["", "", " ", "\n", "\n \t", "x", "<"])
skeleton = st.tuples(
    st.sampled_from(["", "", "", " ", "x"]),
    st.sampled_from([(), (), ("<detect>", "</detect>")]),
    _junk, _gap, _tag("<think>"), _junk, _tag("</think>"), _gap, _tag("<answer>"), _junk, _tag("</answer>"),
    st.sampled_from(["", "", "", " ", "x", "</answer>"]),
).map(
    lambda p: p[0] + (f"{p[1][0]}{p[2]}{p[1][1]}{p[3]}" if p[1] else "") + "".join(p[4:7]) + "".join(p[7:])
)  # fmt: skip
"""Completions shaped like the formats, mutated: hits both sides of each format decision."""


def ref_normalize(text):  # the obvious regex: correct, but quadratic on long white-space runs
    return re.sub(r"\s*([<>/])\s*", r"\1", text)


def ref_format(text, path):
    if path == "lor":
        ok = re.fullmatch(r"<think>.*?</think>\s*<answer>.*?</answer>", text, re.S)
        return bool(ok) and all(text.count(t) == 1 for t in rewards.ANSWER_TAGS)
    return bool(re.fullmatch(r"<detect>.*?</detect>\s*<think>.*?</think>\s*<answer>.*?</answer>", text, re.S))


def ref_boxes(text):
    block = re.search(r"<detect>(.*?)</detect>", text, re.S)
    return (
        None if block is None else re.findall(r'<3d_box center="(.*?)">(.*?)</3d_box>', block.group(1), re.S)
    )


@settings(max_examples=400, deadline=None)
@given(st.one_of(near_valid, skeleton))
def test_scans_agree_with_the_literal_regexes(raw):
    text = normalize(raw)
    assert text == ref_normalize(raw)
    assert normalize(text) == text
    for path in ("lor", "dtr"):
        assert parsing._format_ok(text, path) == ref_format(text, path)
    answer = re.search(r"<answer>(.*?)</answer>", text, re.S)
    assert parse_answer(raw) == (answer.group(1).strip() if answer else None)
    assert parsing._boxes(text) == ref_boxes(text)


# ----------------------------------------------------------------------------- fuzzing and adversarial input


def assert_valid(result, path, centers):
    expected_keys = {"overall", "format", "accuracy"} | ({"detect"} if path == "dtr" and centers else set())
    assert set(result) == expected_keys
    for value in result.values():
        assert isinstance(value, float) and math.isfinite(value) and 0.0 <= value <= 1.0


ANSWERS = ["B", "0.72", "0", "-1.5", "1e3", "1.7e308", "a red cube"]
CENTERS = [None, RED, TWO, {"red box": [1e308, -1e308, 1e308]}]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.one_of(st.text(max_size=400), near_valid),
    st.sampled_from(ANSWERS),
    st.sampled_from(CENTERS),
    st.sampled_from(["lor", "dtr"]),
    st.sampled_from([RewardSettings(), RewardSettings("exp", 0.05, "max")]),
)
def test_fuzz_scores_are_finite_and_in_unit_interval(text, answer, centers, path, options):
    assert_valid(score(text, answer, centers, path=path, settings=options), path, centers)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(st.sampled_from(["0,0,1", "0.15,0,1", "1e308,1e308,-1e308", "nan,0,0", "1,2"]),
                       st.sampled_from(["cube (red box)", "ball (blue box)", "x", ""])), max_size=6),
    st.sampled_from(["B", "0.9", "nan", "1e999999", "(b)", "  "]),
)  # fmt: skip
def test_fuzz_structured_dtr(boxes, answer):
    for centers in (RED, TWO, None):
        assert_valid(score(dtr(boxes, answer=answer), "B", centers, path="dtr"), "dtr", centers)


N = 100_000
ADVERSARIAL = {
    "open think": "<think>" * (N // 7),
    "nested tags": "<think><answer><detect>" * (N // 23),
    "junctions, no end": "<detect>" + "</detect> <think></think> <answer>" * (N // 34) + "x",
    "white space": " " * N,
    "white space then tag": " " * N + "<" + " " * N,
    "spaced text": "a " * (N // 2),
    "slashes": " / " * (N // 3),
    "digits": f"<think></think><answer>{'1' * N}x</answer>",
    "fraction digits": f"<think></think><answer>1.{'1' * N}x</answer>",
    "huge exponent": f"<think></think><answer>1e{'9' * N}</answer>",
    "1e999999": "<think></think><answer>1e999999</answer>" * 2_000,
    "unclosed boxes": "<detect>" + '<3d_box center="0,0,1">cube (red box)' * (N // 36) + "</detect>",
    "box openers": "<detect>" + '<3d_box center="' * (N // 16) + "</detect>",
    "many boxes": dtr([(f"{i % 9},0,1", f"obj {i} (red box)") for i in range(N // 40)]),
    "long center": dtr([("0," * N + "1", "cube (red box)")]),
    "long answer": lor(answer="(" * N),
}


@pytest.mark.parametrize("name", list(ADVERSARIAL))
def test_adversarial_100kb_strings_are_fast(name):
    text = ADVERSARIAL[name]
    start = time.process_time()
    for path, centers in (("lor", None), ("dtr", TWO)):
        assert_valid(score(text, "0.72", centers, path=path), path, centers)
    parse_answer(text), parse_centers(text), tag_counts(text)
    # A safety bound for pathological input, not a performance target (those live in benchmarks/);
    # CPU time, so a busy machine does not make it flaky. Backtracking regexes take minutes here.
    assert time.process_time() - start < 1.0, name


def test_the_detection_reward_can_be_left_out():
    """The claims study's ablation: DTR rows scored as rows without centers (accuracy 0.8, format 0.2)."""
    dtr = '<detect><3d_box center="3,0,1">cube (red box)</3d_box></detect><think>t</think><answer>B</answer>'
    off = rewards.RewardSettings(detect_reward=False)
    assert rewards.score(dtr, "B", {"red box": [0, 0, 1]}, path="dtr", settings=off) == {
        "overall": 1.0, "format": 1.0, "accuracy": 1.0}
    assert rewards.score(dtr, "B", {"red box": [0, 0, 1]}, path="dtr")["overall"] == pytest.approx(0.9)
    funcs, weights = rewards.reward_funcs("joint", off)
    assert [f.__name__ for f in funcs] == ["accuracy", "format"] and weights == [1.0, 1.0]
    totals = [sum(f([dtr], answer=["B"], path=["dtr"], centers=['{"red box": [0, 0, 1]}'])[0] for f in funcs)]
    assert totals == [1.0]
