"""The geometry of several views of one scene (issue #24): points moved between the camera frames
of two views (`to_frame`, the reference-frame conversion of a multi-view detect block) and the
camera-motion answer between two views from their poses (`camera_motion`).

The multi-view reward rules (the reference frame a detect block names, the detect reward against
that frame's centers, camera-motion accuracy, and the two flaws of the released code that they
do not copy) live with the other rewards, in `workbench.tasks.rewards` ("Multi-view rules").
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from workbench.world.scenes import camera_from_world, world_from_camera

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
    return camera_from_world(world_from_camera(points, from_camera_to_world), to_camera_to_world)


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


def magnitude(value: float, digits: int) -> str:
    """|value| rounded to `digits` decimals as a camera-motion answer writes it (whole numbers
    without a point).

    >>> magnitude(-0.349, 1), magnitude(59.6, 0)
    ('0.3', '60')
    """
    size = round(abs(value), digits)
    return f"{size:.{digits}f}" if digits else f"{int(size)}"


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
    components = camera_motion_components(from_camera_to_world, to_camera_to_world)
    parts = []
    for name, positive, negative, digits in _KEYS:
        value = components[name]
        text = magnitude(value, digits)
        if float(text) == 0:
            continue
        parts.append(f"{positive if value > 0 else negative}:{text}")
    if not parts:
        raise ValueError("the two views have the same pose (no move rounds to a nonzero value)")
    return ",".join(parts)
