"""Multi-view DTR's reward rules (SPEC sections 2 and 4; issue #24, item 3): the reference frame a
detect block names, the detect reward against that frame's ground truth, and camera-motion accuracy.

A multi-view detect block starts `<detect>After aligning to the reference frame K, find N relevant
objects:` and gives every center in frame K's camera coordinates (frames counted from 1). The
ground truth of a question holds each region's center in every frame ({frame: {label: [x, y, z]}}),
and the detect reward (`rewards.detect_score`) is taken against the named frame's. A question may
require one frame (`required_frame`: the released code's `first_main_frame`, "the question mentions
the first image"); naming another frame then scores 0.

The released reward code (jiyt17/SR-REAL, `grpo/examples/reward_function/r1v_vila.py`, commit 030d782)
has two flaws the workbench does not copy by default; `released=True` reproduces both, for exact
comparison:
1. it reads the frame as the one character after the prefix, so frame 12 reads as 1 (and frame 10
   as 1, a wrong frame);
2. where a frame is required it compares that character (a string) with the integer 0, which is
   never equal, so the detect score is 0 whatever frame is named.

Camera-motion answers (`move_right:0.4,move_forward:2.4,rotate_right:60`, meters and degrees) score
the SPEC's exponential numeric score per ground-truth key, averaged over those keys: a missing key
scores 0, an extra key costs nothing (as the released code scores them).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence

from workbench.tasks import rewards

FRAME_PREFIX = "<detect>After aligning to the reference frame "
_FRAME = re.compile(re.escape(FRAME_PREFIX) + r"([0-9]{1,6})(?![0-9])")
CAMERA_KEYS = ("move_right", "move_left", "move_up", "move_down", "move_forward", "move_backward",
               "rotate_right", "rotate_left", "rotate_up", "rotate_down")
_MOVE = re.compile(r"(?<!\w)(" + "|".join(CAMERA_KEYS) + r"):([-+]?\d*\.?\d+)")
r"""A key of `CAMERA_KEYS` and its value. The released code takes any `\w+` key, which backtracks
quadratically on a long word; only these keys ever occur in a ground truth, so the scores agree."""


def reference_frame(completion: str, released: bool = False) -> int | None:
    """The frame (counted from 1) a completion's detect block names; None when it names none.

    >>> reference_frame("<detect>After aligning to the reference frame 12, find 1 relevant objects:")
    12
    >>> reference_frame("<detect>After aligning to the reference frame 12, find 1", released=True)
    1
    """
    text = rewards.normalize(completion)
    if released:  # one character at a fixed offset
        char = text[len(FRAME_PREFIX) : len(FRAME_PREFIX) + 1] if text.startswith(FRAME_PREFIX) else ""
        return int(char) if char and char in "0123456789" else None  # "²".isdigit(), but not a frame
    m = _FRAME.match(text)
    return int(m.group(1)) if m else None


def frame_detect(
    completion: str,
    frame_centers: Mapping[int | str, Mapping[str, Sequence[float]]],
    required_frame: int | None = None,
    released: bool = False,
    settings: rewards.RewardSettings | None = None,
) -> float:
    """The multi-view detect reward: the SPEC detect score against the centers of the frame the
    completion names (`frame_centers`: {frame: {label: [x, y, z]}}, frames counted from 1); 0 when it
    names no frame, one without ground truth, or not `required_frame` when the question requires one.

    >>> truth = {1: {"red box": [0.3, -0.8, 3.3]}, 2: {"red box": [0.7, -1.7, 3.1]}}
    >>> done = '<3d_box center="0.3,-0.8,3.3">bin (red box)</3d_box></detect><think>t</think><answer>C</answer>'
    >>> [frame_detect(FRAME_PREFIX + k + ", find 1 relevant objects:\\n" + done, truth) for k in ("1", "2", "3")]
    [1.0, 0.0, 0.0]
    """
    frame = reference_frame(completion, released)
    if frame is None:
        return 0.0
    if required_frame is not None:
        if released:  # the released code compares a string with 0: never equal, so always 0
            return 0.0
        if frame != required_frame:
            return 0.0
    truth = {int(k): v for k, v in frame_centers.items()}.get(frame)
    if not truth:
        return 0.0
    return rewards.detect_score(completion, truth, settings)


def camera_moves(text: str) -> dict[str, float]:
    """{key: value} of a camera-motion string (the last value of a repeated key).

    >>> camera_moves("move_right:0.4, rotate_right:60")
    {'move_right': 0.4, 'rotate_right': 60.0}
    """
    return {k: float(v) for k, v in _MOVE.findall(text)}


def camera_motion_accuracy(answer: str | None, truth: str) -> float:
    """The exponential numeric score per ground-truth key (`exp(-2|x - g| / (|g| + 0.01))`),
    averaged over the ground-truth keys; a missing key scores 0. Rounded to 2 decimals like accuracy.

    >>> camera_motion_accuracy("move_right:0.4,rotate_right:60", "move_right:0.4,rotate_right:60")
    1.0
    >>> camera_motion_accuracy("move_right:0.4", "move_right:0.4,rotate_right:60")
    0.5
    """
    gold = camera_moves(truth)
    if not gold:
        raise ValueError(f"camera-motion ground truth {truth!r} has no key:value pair")
    given = camera_moves(answer or "")
    total = 0.0
    for key, g in gold.items():
        if key in given:
            total += math.exp(-2 * abs(given[key] - g) / (abs(g) + 0.01))
    return round(total / len(gold), 2)
