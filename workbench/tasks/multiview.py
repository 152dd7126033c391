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
scores 0, an extra key costs nothing (as the released code scores them). `camera_motion` computes
that answer between two views from their poses, and `to_frame` moves points between frames.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

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


# ----------------------------------------------------------------------------- geometry of views

MOVE_DECIMALS = 1
"""Camera-motion answers give moves in meters to this many decimals ..."""
TURN_DECIMALS = 0
"""... and turns in whole degrees (the paper's style: `move_right:0.4,rotate_right:60`)."""


def to_frame(points: Any, from_camera_to_world: Any, to_camera_to_world: Any) -> np.ndarray:
    """Points (..., 3) given in one view's camera frame, in another view's camera frame (OpenCV axes,
    meters): the reference-frame conversion of a multi-view detect block.

    >>> a = np.eye(4); b = np.eye(4); b[:3, 3] = [1.0, 0.0, 0.0]  # b: one meter to the right of a
    >>> to_frame([1.0, 0.0, 2.0], a, b).tolist()
    [0.0, 0.0, 2.0]
    """
    a = np.asarray(from_camera_to_world, dtype=np.float64)
    b = np.asarray(to_camera_to_world, dtype=np.float64)
    p = np.asarray(points, dtype=np.float64)
    world = p @ a[:3, :3].T + a[:3, 3]
    return (world - b[:3, 3]) @ b[:3, :3]


def camera_motion_components(from_camera_to_world: Any, to_camera_to_world: Any) -> dict[str, float]:
    """How the camera moved from one view to the next, unrounded: `right`, `forward`, `up` (meters,
    along the first view's horizontal right and forward directions and the world's up, z) and
    `turn_right`, `turn_up` (degrees: the change of heading, positive to the right, and of the
    optical axis' elevation, positive upwards). Zero-roll cameras, world z up (SPEC section 6)."""
    a = np.asarray(from_camera_to_world, dtype=np.float64)
    b = np.asarray(to_camera_to_world, dtype=np.float64)
    forward_a, forward_b = a[:3, 2], b[:3, 2]
    flat = np.array([forward_a[0], forward_a[1], 0.0])
    if np.linalg.norm(flat) < 1e-9:
        raise ValueError("the first view looks straight up or down: its heading is undefined")
    flat /= np.linalg.norm(flat)
    right = np.array([flat[1], -flat[0], 0.0])  # the heading frame's +x (forward x up)
    move = b[:3, 3] - a[:3, 3]
    turn = math.degrees(math.atan2(float(forward_b @ right), float(forward_b @ flat)))
    elevation = math.degrees(math.asin(max(-1.0, min(1.0, float(forward_b[2]))))
                             - math.asin(max(-1.0, min(1.0, float(forward_a[2])))))
    return {"right": float(move @ right), "forward": float(move @ flat), "up": float(move[2]),
            "turn_right": turn, "turn_up": elevation}


_KEYS = (("right", "move_right", "move_left", MOVE_DECIMALS), ("forward", "move_forward", "move_backward", MOVE_DECIMALS),
         ("up", "move_up", "move_down", MOVE_DECIMALS), ("turn_right", "rotate_right", "rotate_left", TURN_DECIMALS),
         ("turn_up", "rotate_up", "rotate_down", TURN_DECIMALS))


def camera_motion(from_camera_to_world: Any, to_camera_to_world: Any) -> str:
    """The camera-motion answer between two views (`camera_motion_components`, rounded: moves to
    `MOVE_DECIMALS`, turns to `TURN_DECIMALS`), a `key:value` pair per component that does not round
    to 0, with the key of its sign (`move_left:0.3`, not `move_right:-0.3`); an error when nothing moved.

    >>> from workbench.world.scenes import look_at
    >>> a = look_at(np.array([0.0, 0.0, 1.5]), np.array([0.0, 5.0, 1.5]))  # level, looking along world +y
    >>> camera_motion(a, look_at(np.array([0.4, 2.4, 1.5]), np.array([5.4, 7.4, 1.5])))
    'move_right:0.4,move_forward:2.4,rotate_right:45'
    """
    parts = []
    for name, positive, negative, digits in _KEYS:
        value = camera_motion_components(from_camera_to_world, to_camera_to_world)[name]
        size = round(abs(value), digits)
        if size == 0:
            continue
        text = f"{size:.{digits}f}" if digits else f"{int(size)}"
        parts.append(f"{positive if value > 0 else negative}:{text}")
    if not parts:
        raise ValueError("the two views have the same pose (no move rounds to a nonzero value)")
    return ",".join(parts)
