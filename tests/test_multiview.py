"""Multi-view DTR's reward rules (issue #24, item 3; `workbench.tasks.rewards`, "Multi-view rules"): the frame rule, both flaws of the released
code (fixed by default, reproduced under `released=True`), camera-motion accuracy; fuzzing."""

from __future__ import annotations

import json
import math
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from workbench.tasks import rewards as mv  # the multi-view rules live with the other rewards

TRUTH = {str(k): {"red box": [0.1 * k, -0.5, 2.0 + k], "blue point": [-0.3, 0.2, 1.0 + k]} for k in range(1, 13)}
"""Each region's center in each of 12 frames' camera coordinates (frames counted from 1)."""


def completion(frame: str, boxes: list[tuple[str, str]], answer: str = "C") -> str:
    lines = "".join(f'\n<3d_box center="{c}">{t}</3d_box>' for c, t in boxes)
    return (f"<detect>After aligning to the reference frame {frame}, find {len(boxes)} relevant objects:{lines}"
            f"</detect>\n<think>t</think>\n<answer>{answer}</answer>")


def exact(frame: int) -> list[tuple[str, str]]:
    red, blue = TRUTH[str(frame)]["red box"], TRUTH[str(frame)]["blue point"]
    return [(",".join(f"{v:.2f}" for v in red), "bin (red box)"), (",".join(f"{v:.2f}" for v in blue), "cup (blue point)")]


@pytest.mark.parametrize("text, required, fixed, released", [
    (completion("1", exact(1)), None, 1.0, 1.0),
    (completion("2", exact(2)), None, 1.0, 1.0),
    (completion("2", exact(1)), None, 0.0, 0.0),          # frame 1's centers named as frame 2's: 1 m off in z
    (completion("12", exact(12)), None, 1.0, 0.0),        # flaw 1: the released code reads "1" (11 m off)
    (completion("10", exact(10)), None, 1.0, 0.0),        # ... frame 10 reads as 1 (z 9 m off)
    (completion("13", exact(12)), None, 0.0, 0.0),        # a frame without ground truth
    (completion("1", exact(1)), 1, 1.0, 0.0),             # flaw 2: a required first frame zeroes the score
    (completion("2", exact(2)), 1, 0.0, 0.0),             # naming another frame than the required one
    ("<detect>Find 2 relevant objects:</detect><think>t</think><answer>C</answer>", None, 0.0, 0.0),
    (completion("x", exact(1)), None, 0.0, 0.0),
    (completion("²", exact(1)), None, 0.0, 0.0),          # a digit to str.isdigit, not a frame number
    (completion("٣", exact(3)), None, 0.0, 0.0),          # nor an Arabic-Indic three
    ("", None, 0.0, 0.0),
])
def test_the_frame_rule_and_the_released_flaws(text, required, fixed, released):
    assert mv.frame_detect(text, TRUTH, required_frame=required) == pytest.approx(fixed)
    assert mv.frame_detect(text, TRUTH, required_frame=required, released=True) == pytest.approx(released)


def test_white_space_around_tags_is_ignored_as_in_the_spec():
    text = completion("3", exact(3)).replace("<detect>", "< detect >")
    assert mv.reference_frame(text) == 3 and mv.frame_detect(text, TRUTH) == 1.0


@pytest.mark.parametrize("answer, truth, score", [
    ("move_right:0.4,move_forward:2.4,rotate_right:60", "move_right:0.4,move_forward:2.4,rotate_right:60", 1.0),
    ("rotate_right:60,move_right:0.4,move_forward:2.4", "move_right:0.4,move_forward:2.4,rotate_right:60", 1.0),
    ("move_right:0.4", "move_right:0.4,rotate_right:60", 0.5),                      # a missing key scores 0
    ("move_right:0.4,move_up:3", "move_right:0.4", 1.0),                             # an extra key costs nothing
    ("move_right:0.2", "move_right:0.4", round(math.exp(-2 * 0.2 / 0.41), 2)),
    ("move_right:-0.4", "move_left:0.4", 0.0),                                       # keys, not directions
    ("left a bit", "move_right:0.4", 0.0),
    (None, "move_right:0.4", 0.0),
])
def test_camera_motion_accuracy(answer, truth, score):
    assert mv.camera_motion_accuracy(answer, truth) == pytest.approx(score)


def test_a_camera_truth_without_keys_is_refused():
    with pytest.raises(ValueError, match="has no key:value pair"):
        mv.camera_motion_accuracy("move_right:1", "turn left")


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300), st.one_of(st.none(), st.integers(min_value=1, max_value=12)), st.booleans())
def test_fuzz_any_text_scores_in_range(text, required, released):
    for t in (text, mv.FRAME_PREFIX + text):
        value = mv.frame_detect(t, TRUTH, required_frame=required, released=released)
        assert math.isfinite(value) and 0.0 <= value <= 1.0
    value = mv.camera_motion_accuracy(text, "move_right:0.4,rotate_up:5")
    assert math.isfinite(value) and 0.0 <= value <= 1.0


@pytest.mark.parametrize("text", [
    mv.FRAME_PREFIX + "9" * 100_000,
    mv.FRAME_PREFIX + "1, " + '<3d_box center="0,0,1">x (red box)</3d_box>' * 2_500,
    "move_right:" * 10_000 + "1",
    "1" * 100_000,
])
def test_adversarial_100kb_strings_are_fast(text):
    start = time.process_time()
    mv.frame_detect(text, TRUTH)
    mv.frame_detect(text, TRUTH, released=True)
    mv.camera_motion_accuracy(text, "move_right:0.4")
    # a safety bound for pathological input (CPU time), as for the single-view rewards
    assert time.process_time() - start < 1.0


# ----------------------------------------------------------------------------- through rewards.score


def test_score_takes_the_multiview_rules():
    """`rewards.score` scores a multi-view row's detect block against the frame it names (frame 12
    included), the released flaws only under `RewardSettings(released_multiview=True)`, and a
    camera-motion answer by its per-key score."""
    from workbench.tasks import rewards

    text = completion("12", exact(12), answer="C")
    truth = json.dumps(TRUTH)
    fixed = rewards.score(text, "C", TRUTH["12"], "dtr", "choice", frame_centers=truth)
    assert fixed == {"overall": 1.0, "format": 1.0, "accuracy": 1.0, "detect": 1.0}
    released = rewards.score(text, "C", TRUTH["12"], "dtr", "choice", rewards.RewardSettings(released_multiview=True),
                             frame_centers=truth)
    assert released["detect"] == 0.0 and released["overall"] == pytest.approx(0.9)
    required = rewards.score(completion("2", exact(2)), "C", TRUTH["2"], "dtr", "choice", frame_centers=truth,
                             reference_frame=1)
    assert required["detect"] == 0.0
    # a single-view row ("{}") scores its boxes against `centers` alone, whatever frame the text names
    assert rewards.score(completion("3", exact(12)), "C", TRUTH["12"], "dtr", "choice", frame_centers="{}")["detect"] == 1.0
    motion = "<think>t</think>\n<answer>move_right:0.4,rotate_right:60</answer>"
    assert rewards.score(motion, "move_right:0.4,rotate_right:60", path="lor", answer_type="motion")["accuracy"] == 1.0
    assert rewards.score(motion, "move_right:0.4,move_up:1.0", path="lor", answer_type="motion")["accuracy"] == 0.5
    with pytest.raises(ValueError, match="camera motion 'left' has no key:value pair"):
        rewards.score(motion, "left", path="lor", answer_type="motion")
    with pytest.raises(ValueError, match="frame_centers must be"):
        rewards.score(text, "C", TRUTH["12"], "dtr", "choice", frame_centers="[1, 2]")
