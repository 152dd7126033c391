"""Reading a completion (SPEC sections 2 and 4): its text, the tags, the answer, numbers, detected
centers, the output formats, and the frame a multi-view detect block names. The rewards
(`workbench.tasks.rewards`, which re-exports every public name here) score what these read, and
evaluation, viz and the demo read completions through the same functions, so a model is judged by
one parser everywhere. Linear-time by construction: the reasons are in the rewards' docstring.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

from workbench.schema import PATHS

TAGS = ("<detect>", "</detect>", "<think>", "</think>", "<answer>", "</answer>")
"""The tags of both output formats (SPEC section 2), after `normalize`."""

ANSWER_TAGS = ("<think>", "</think>", "<answer>", "</answer>")
"""Each must occur exactly once for accuracy (both paths) and for the LOR format."""

_WS = re.compile(r"\s+")  # a maximal run: no backtracking, one match per run
_BARE_FLOAT = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
# Unambiguous: digits after the point only follow a mandatory point, so a failed fullmatch
# backtracks each quantifier once (linear), unlike `\d+\.?\d*`.
_AROUND_SPECIAL = re.compile(r"(?<=[<>/])\s+|(?<!\s)\s+(?=[<>/])")
# Linear: a run after < > / is taken whole by the first branch; the second only starts at the
# beginning of a run (`(?<!\s)`), so a run followed by nothing special is scanned once, not once
# per position as in the quadratic `\s*([<>/])\s*`.
_BOX_OPEN, _BOX_MID, _BOX_CLOSE = '<3d_box center="', '">', "</3d_box>"


# ----------------------------------------------------------------------------- parsing helpers


def completion_text(completion: Any) -> str | None:
    """The text of a completion as TRL passes it: a string, or a list of chat messages.

    >>> completion_text([{"role": "assistant", "content": "<answer>B</answer>"}])
    '<answer>B</answer>'
    """
    if completion is None or isinstance(completion, str):
        return completion
    if isinstance(completion, Sequence) and all(isinstance(m, Mapping) for m in completion):
        if not completion:
            return ""
        # The reply is the last assistant message (tool calls may precede it).
        replies = [m for m in completion if m.get("role", "assistant") == "assistant"] or list(completion)
        content = replies[-1].get("content")
        if content is None or isinstance(content, str):
            return content
        if isinstance(content, Sequence):  # multimodal parts [{"type": "text", "text": ...}]
            parts = [p.get("text") for p in content if isinstance(p, Mapping)]
            return "".join(t for t in parts if isinstance(t, str))
    raise TypeError(
        f"a completion must be a string or a list of chat messages, got {type(completion).__name__}"
    )


def normalize(completion: str) -> str:
    """Remove white space around `<`, `>` and `/` (SPEC section 4), in linear time.

    >>> normalize("< think > a / b </ think >\\n<answer> C </answer>")
    '<think>a/b</think><answer>C</answer>'
    """
    return _AROUND_SPECIAL.sub("", completion)


def tag_counts(completion: str) -> dict[str, int]:
    """How often each tag of `TAGS` occurs in the normalized completion.

    >>> tag_counts("<think>a</think><think>")["<think>"]
    2
    """
    text = normalize(completion)
    return {tag: text.count(tag) for tag in TAGS}


def _between(text: str, open_: str, close: str) -> str | None:
    """Group 1 of the first `open_(.*?)close` (dot matches newlines), or None."""
    i = text.find(open_)
    if i < 0:
        return None
    j = text.find(close, i + len(open_))
    # If the first opener has no closer after it, no later opener has one either.
    return None if j < 0 else text[i + len(open_) : j]


def parse_answer(completion: str) -> str | None:
    """The first `<answer>(.*?)</answer>` of the normalized completion, stripped; None if absent.

    Tag counts are not checked here (accuracy checks them).

    >>> parse_answer("<think>x</think> <answer> (b) </answer>")
    '(b)'
    """
    answer = _between(normalize(completion), "<answer>", "</answer>")
    return None if answer is None else answer.strip()


def parse_number(text: str) -> float | None:
    """`text` as a finite float if it is a bare ASCII float literal (after strip), else None.

    >>> [parse_number(s) for s in ("0.72", "+3", "1e2", " 2. ", "3 m", "nan", "inf", "1e999999")]
    [0.72, 3.0, 100.0, 2.0, None, None, None, None]
    """
    text = text.strip()
    if not _BARE_FLOAT.fullmatch(text):
        return None
    value = float(text)
    return value if math.isfinite(value) else None  # 1e999999 overflows to inf


def _parse_center(text: str) -> tuple[float, float, float] | None:
    parts = text.split(",")
    if len(parts) != 3:
        return None
    xyz = tuple(parse_number(p) for p in parts)
    return None if None in xyz else xyz  # type: ignore[return-value]


def _boxes(text: str) -> list[tuple[str, str]] | None:
    """(center text, box text) of each `<3d_box center="(.*?)">(.*?)</3d_box>` inside the first
    `<detect>(.*?)</detect>`, in order; None when there is no detect block."""
    block = _between(text, "<detect>", "</detect>")
    if block is None:
        return None
    boxes, pos = [], 0
    while (i := block.find(_BOX_OPEN, pos)) >= 0:
        j = block.find(_BOX_MID, i + len(_BOX_OPEN))
        k = block.find(_BOX_CLOSE, j + len(_BOX_MID)) if j >= 0 else -1
        if k < 0:  # no later opener can be closed either
            break
        boxes.append((block[i + len(_BOX_OPEN) : j], block[j + len(_BOX_MID) : k]))
        pos = k + len(_BOX_CLOSE)
    return boxes


def _predictions(text: str) -> dict[str, tuple[float, float, float]] | None:
    found = {}
    for center, label in _boxes(text) or ():
        xyz = _parse_center(center)
        if xyz is None:
            return None
        found[label] = xyz  # a repeated text keeps the last center (and its first position)
    return found


def parse_centers(completion: str) -> dict[str, tuple[float, float, float]] | None:
    """Predicted centers {box text: (x, y, z)} of the 3d_boxes inside `<detect>`.

    {} when there is no detect block or no box; None when any center fails to parse.

    >>> parse_centers('<detect><3d_box center="0.31,-0.27,1.3">cube (red box)</3d_box></detect>')
    {'cube (red box)': (0.31, -0.27, 1.3)}
    >>> parse_centers('<detect><3d_box center="1,2">cube (red box)</3d_box></detect>') is None
    True
    """
    return _predictions(normalize(completion))


def match_centers(
    predicted: Mapping[str, Sequence[float]], labels: Sequence[str]
) -> dict[str, tuple[float, float, float]]:
    """{label: center of the first prediction whose text contains the label} for labels that match.

    >>> match_centers({"cube (red box)": (0, 0, 1), "ball (blue box)": (1, 0, 1)}, ["blue box", "green box"])
    {'blue box': (1, 0, 1)}
    """
    matched = {}
    for label in labels:
        for text, xyz in predicted.items():
            if label in text:
                matched[label] = tuple(xyz)
                break
    return matched


def _full_match(text: str, pairs: Sequence[tuple[str, str]]) -> bool:
    """Whether `text` fully matches `o1.*?c1\\s*o2.*?c2 ... \\s*on.*?cn` (dot matches newlines).

    Taking, at each `ck\\s*o(k+1)` junction, its earliest occurrence is optimal (the `.*?` gaps are
    free and an earlier junction never ends later), and the white-space runs scanned after the
    candidate `ck` are disjoint, so this is linear.
    """
    if not text.startswith(pairs[0][0]):
        return False
    pos = len(pairs[0][0])
    for (_, close), (open_, _) in zip(pairs, pairs[1:]):
        q = text.find(close, pos)
        while q >= 0:
            m = _WS.match(text, q + len(close))
            after = m.end() if m else q + len(close)
            if text.startswith(open_, after):
                pos = after + len(open_)
                break
            q = text.find(close, q + 1)
        else:
            return False
    last = pairs[-1][1]
    return text.endswith(last) and len(text) - len(last) >= pos


_FORMAT_PAIRS = {
    "lor": (("<think>", "</think>"), ("<answer>", "</answer>")),
    "dtr": (("<detect>", "</detect>"), ("<think>", "</think>"), ("<answer>", "</answer>")),
}


def _format_ok(text: str, path: str) -> bool:
    if path == "lor" and any(text.count(tag) != 1 for tag in ANSWER_TAGS):
        return False  # DTR: the full match alone (decision 1)
    return _full_match(text, _FORMAT_PAIRS[path])


def _check_path(path: str) -> str:
    if path not in PATHS:
        raise ValueError(f"path must be one of {PATHS}, got {path!r}")
    return path


def format_ok(completion: str, path: str) -> bool:
    """Whether the completion has the format of `path` (SPEC section 4).

    >>> format_ok("<think>a</think>\\n<answer>B</answer>", "lor"), format_ok("<answer>B</answer>", "lor")
    (True, False)
    """
    return _format_ok(normalize(completion), _check_path(path))


# ----------------------------------------------------------------------------- multi-view texts

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
    text = normalize(completion)
    if released:  # one character at a fixed offset
        char = text[len(FRAME_PREFIX) : len(FRAME_PREFIX) + 1] if text.startswith(FRAME_PREFIX) else ""
        return int(char) if char and char in "0123456789" else None  # "²".isdigit(), but not a frame
    m = _FRAME.match(text)
    return int(m.group(1)) if m else None


def camera_moves(text: str) -> dict[str, float]:
    """{key: value} of a camera-motion string (the last value of a repeated key).

    >>> camera_moves("move_right:0.4, rotate_right:60")
    {'move_right': 0.4, 'rotate_right': 60.0}
    """
    return {k: float(v) for k, v in _MOVE.findall(text)}
