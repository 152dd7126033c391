"""LOR and DTR chain-of-thought targets (SPEC section 2), written from the exact geometry.

    LOR: <think>...</think>\\n<answer>B</answer>
    DTR: <detect>Find 2 relevant objects:\\n<3d_box center="x,y,z">cube (red box)</3d_box>\\n
         <3d_box ...>ball (blue box)</3d_box></detect>\\n<think>...</think>\\n<answer>0.72</answer>

LOR reasoning estimates in words with rounded real numbers and ends at the true answer. DTR
reasoning starts from the detected centers as written (2 decimals) and does the arithmetic
step by step; `questions` only keeps numeric questions where that written arithmetic lands on
the true 2-decimal answer, so a trace never contradicts its own numbers. Targets stay short
(a tiny model learns them on a CPU) and use a few fixed templates. Taught in
`notebooks/01_build_data.ipynb`.

Two styles (`STYLES`, `DataSettings.trace_style`): `numbers_first` states the evidence and
concludes; `verdict_first` opens the reasoning of a comparison (two regions, or the closest of
several) with the verdict in the option's own word, "The green point versus the magenta point:
right.", then gives the same evidence. The verdict is one decision read off the two regions,
where the numbers before a conclusion are several digit read-outs that a small model writes
near their mean (issue #3).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from workbench.tasks import vocab as Q
from workbench.world.scenes import camera_pitch, project, world_from_camera

# ----------------------------------------------------------------------------- formats


def fmt_center(center: Sequence[float]) -> str:
    """`0.31,-0.27,1.30`: camera-frame center, 2 decimals, no spaces."""
    return ",".join(Q.fmt(float(v)) for v in center)


def box3d(center: Sequence[float], name: str, label: str) -> str:
    return f'<3d_box center="{fmt_center(center)}">{name} ({label})</3d_box>'


def box2d(bbox: Sequence[int], name: str, label: str) -> str:
    """2D grounding target: `<2d_box bbox="x1,y1,x2,y2">cube (red box)</2d_box>` (pixels)."""
    return f'<2d_box bbox="{",".join(str(int(v)) for v in bbox)}">{name} ({label})</2d_box>'


def lor(think: str, answer: str) -> str:
    return f"<think>{think}</think>\n<answer>{answer}</answer>"


def dtr(boxes: Sequence[str], think: str, answer: str) -> str:
    n = len(boxes)
    head = f"Find {n} relevant object{'' if n == 1 else 's'}:"
    return (
        f"<detect>{head}"
        + "".join("\n" + b for b in boxes)
        + f"</detect>\n<think>{think}</think>\n<answer>{answer}</answer>"
    )


# ----------------------------------------------------------------------------- exact arithmetic on written numbers


def _h(v: float) -> int:
    """Hundredths of a 2-decimal number, exactly."""
    return int(round(float(v) * 100))


def _round_div(n: int, k: int) -> int:
    """n / k rounded half away from zero (the rounding a reader expects)."""
    q = (abs(n) + k // 2) // k
    return q if n >= 0 else -q


def _num(n: int, scale: int) -> str:
    """Integer n in units of 1/10**scale as a decimal string."""
    s = f"{abs(n) / 10**scale:.{scale}f}"
    return s if n >= 0 else "-" + s


def _paren(n: int, scale: int) -> str:
    s = _num(n, scale)
    return f"({s})" if n < 0 else s


def _diff(axis: str, b: int, a: int) -> str:
    return f"{axis} = {_num(b, 2)} - {_paren(a, 2)} = {_num(b - a, 2)}"


def _pitch_terms(c2w: Any) -> tuple[int, int, str]:
    """cos and sin of the downward camera pitch in thousandths, and the sentence stating them."""
    m = np.asarray(c2w, dtype=np.float64)
    assert abs(m[2, 0]) < 1e-6, "traces assume a camera without roll"
    p = camera_pitch(m)
    c, s = int(round(math.cos(p) * 1000)), int(round(math.sin(p) * 1000))
    return (
        c,
        s,
        f"The camera looks {abs(round(math.degrees(p)))}° {'down' if p >= 0 else 'up'} (cos {_num(c, 3)}, sin {_num(s, 3)}).",
    )


def numeric_steps(category: str, centers: Sequence[Sequence[float]], camera_to_world: Any) -> tuple[str, str]:
    """(think text, 2-decimal result) of the DTR arithmetic from 2-decimal role centers."""
    a = [_h(v) for v in centers[0]]
    if category == "camera_distance":
        sq = sum(v * v for v in a)
        val = Q.fmt(math.sqrt(sq) / 100)
        text = (
            f"The camera is at the origin, so the distance is sqrt({_num(abs(a[0]), 2)}^2 + {_num(abs(a[1]), 2)}^2 + "
            f"{_num(abs(a[2]), 2)}^2) = sqrt({_num(sq, 4)}) = {val}."
        )
        return text, val
    b = [_h(v) for v in centers[1]]
    if category == "distance":
        d = [bi - ai for ai, bi in zip(a, b)]
        sq = sum(v * v for v in d)
        val = Q.fmt(math.sqrt(sq) / 100)
        text = (
            f"{_diff('dx', b[0], a[0])}, {_diff('dy', b[1], a[1])}, {_diff('dz', b[2], a[2])}. Distance = "
            f"sqrt({_num(abs(d[0]), 2)}^2 + {_num(abs(d[1]), 2)}^2 + {_num(abs(d[2]), 2)}^2) = sqrt({_num(sq, 4)}) = {val}."
        )
        return text, val
    c, s, head = _pitch_terms(camera_to_world)
    if category == "horizontal_distance":
        dx, dy, dz = b[0] - a[0], b[1] - a[1], b[2] - a[2]
        fwd = _round_div(c * dz - s * dy, 100)  # thousandths
        val = Q.fmt(math.sqrt((10 * dx) ** 2 + fwd**2) / 1000)
        text = (
            f"{head} Sideways: {_diff('dx', b[0], a[0])}. Along the floor: {_num(c, 3)}*{_paren(dz, 2)} - "
            f"{_num(s, 3)}*{_paren(dy, 2)} = {_num(fwd, 3)}. Horizontal distance = sqrt({_num(abs(dx), 2)}^2 + "
            f"{_num(abs(fwd), 3)}^2) = {val}."
        )
        return text, val
    if category in ("vertical_distance", "above_below"):
        dy, dz = a[1] - b[1], a[2] - b[2]
        up = _round_div(-(c * dy + s * dz), 100)  # thousandths: height of A minus height of B
        val = _num(_round_div(abs(up), 10), 2)
        text = (
            f"{head} {_diff('dy', a[1], b[1])}, {_diff('dz', a[2], b[2])}. Height change = "
            f"-({_num(c, 3)}*{_paren(dy, 2)} + {_num(s, 3)}*{_paren(dz, 2)}) = {_num(up, 3)}."
        )
        return text, val
    raise ValueError(f"no center arithmetic for category {category!r}")


# ----------------------------------------------------------------------------- targets

STYLES = ("numbers_first", "verdict_first")
"""How the reasoning of a comparison is ordered: evidence then conclusion, or verdict first."""

COMPARISONS = ("left_right", "above_below", "front_behind", "bigger_smaller", "taller_shorter", "wider_thinner")
"""Choice categories that compare two regions (the verdict is the chosen option's word)."""


def _roles(row: Mapping[str, Any]):
    idx = Q.roles(row)
    objs = [row["objects"][i] for i in idx]
    return idx, objs, Q.role_labels(row)


def _pick(rng: np.random.Generator | None, options: Sequence[str]) -> str:
    return options[0] if rng is None else options[int(rng.integers(len(options)))]


def _option(row: Mapping[str, Any]) -> str:
    """`right (B)`: the chosen option's text and letter."""
    letter = row["answer"]
    return f"{row['choices'][Q.LETTERS.index(letter)]} ({letter})"


def verdict(row: Mapping[str, Any]) -> str | None:
    """The opening verdict of a `verdict_first` trace, or None where the style changes nothing.

    "The green point versus the magenta point: right." for a comparison of two regions (or of two
    described objects in a general question), "Closest to the blue box: the red box." for
    `closest_to`; None for counts, existence and numbers.
    """
    if row.get("answer_type") != "choice":
        return None
    cat = row["category"]
    if cat not in COMPARISONS and cat != "closest_to":
        return None
    labels = Q.role_labels(row)
    word = row["choices"][Q.LETTERS.index(row["answer"])]
    if cat == "closest_to":
        return f"Closest to the {labels[0]}: the {word}."
    return f"The {labels[0]} versus the {labels[1]}: {word}."


def _styled(row: Mapping[str, Any], think: str, style: str) -> str:
    if style not in STYLES:
        raise ValueError(f"unknown trace style {style!r}; choose one of {STYLES}")
    head = verdict(row) if style == "verdict_first" else None
    return f"{head} {think}" if head else think


def _lor_name(row: Mapping[str, Any], obj: Mapping[str, Any], label: str) -> str:
    if row["task"] == "region_qa":
        return f"the {obj['color']} {obj['name']} in the {label}"
    return f"the {label}"


def where(obj: Mapping[str, Any], intrinsics: Sequence[float]) -> str:
    """`on the left` / `in the middle` / `on the right`: where an object's center appears."""
    u = project(np.asarray(obj["center"], dtype=np.float64), intrinsics)[0]
    width = 2 * float(intrinsics[2])
    return "on the left" if u < width / 3 else ("on the right" if u > 2 * width / 3 else "in the middle")


def _n2(v: float) -> str:
    return Q.fmt(v)


def _size_text(obj: Mapping[str, Any]) -> str:
    sx, sy, sz = (Q.fmt(v) for v in obj["size"])
    return f"{sx} x {sy} x {sz} m"


def _world_parts(cams: Sequence[Any], c2w: Any) -> tuple[float, float, float]:
    """|sideways|, |vertical|, |depth along the floor| of B - A in the world (they add in quadrature)."""
    m = np.asarray(c2w, dtype=np.float64)
    w = world_from_camera(np.asarray(cams[:2], dtype=np.float64), m)
    d = w[1] - w[0]
    right = m[:3, 0]
    fwd = np.array([m[0, 2], m[1, 2], 0.0])
    fwd = fwd / max(np.linalg.norm(fwd), 1e-9)
    return abs(float(d @ right)), abs(float(d[2])), abs(float(d @ fwd))


def lor_target(row: Mapping[str, Any], rng: np.random.Generator | None = None, style: str = "numbers_first") -> str:
    """`<think>..</think>\\n<answer>..</answer>` for a region_qa / general_qa row, in `style`."""
    return lor(_styled(row, lor_think(row, rng), style), row["answer"])


def lor_think(row: Mapping[str, Any], rng: np.random.Generator | None = None) -> str:
    cat, ans = row["category"], row["answer"]
    if cat in ("count", "exists"):
        return _general_only_think(row, rng)
    _, objs, labels = _roles(row)
    names = [_lor_name(row, o, lab) for o, lab in zip(objs, labels)]
    cams = [np.asarray(o["center"], dtype=np.float64) for o in objs]
    c2w = row["camera_to_world"]
    about = _pick(rng, ("about", "roughly", "around"))
    if cat == "distance":
        side, up, depth = _world_parts(cams, c2w)
        return (
            f"{names[0].capitalize()} is {about} {_n2(np.linalg.norm(cams[0]))} m from the camera and {names[1]} "
            f"{about} {_n2(np.linalg.norm(cams[1]))} m. Their centers differ by {_n2(side)} m sideways, {_n2(up)} m "
            f"in height and {_n2(depth)} m in depth, so they are {ans} m apart."
        )
    if cat == "horizontal_distance":
        side, _, depth = _world_parts(cams, c2w)
        return (
            f"On the floor, {names[0]} and {names[1]} are {about} {_n2(side)} m apart sideways and {_n2(depth)} m "
            f"in depth. Ignoring height, the distance is {ans} m."
        )
    if cat == "vertical_distance":
        z = world_from_camera(np.stack(cams), c2w)[:, 2]
        return (
            f"The center of {names[0]} is {about} {_n2(z[0])} m above the floor and that of {names[1]} "
            f"{about} {_n2(z[1])} m, so the vertical distance is {ans} m."
        )
    if cat == "width":
        return (
            f"{names[0].capitalize()} measures {about} {_size_text(objs[0])} (width x depth x height). "
            f"Its width, the larger horizontal side, is {ans} m."
        )
    if cat == "height":
        return f"{names[0].capitalize()} measures {about} {_size_text(objs[0])} (width x depth x height), so it is {ans} m tall."
    if cat == "camera_distance":
        off = float(np.linalg.norm(cams[0][:2]))
        return (
            f"{names[0].capitalize()} is {where(objs[0], row['intrinsics'])}, {about} {_n2(cams[0][2])} m deep and {_n2(off)} m off "
            f"the view axis, so it is {ans} m from the camera."
        )
    opt = _option(row)
    if cat == "left_right":
        u = project(np.stack(cams), row["intrinsics"])[:, 0]
        return (
            f"In the image {names[0]} is at x = {u[0]:.0f} px and {names[1]} at x = {u[1]:.0f} px, "
            f"so the answer is {opt}."
        )
    if cat == "above_below":
        z = world_from_camera(np.stack(cams), c2w)[:, 2]
        return (
            f"The center of {names[0]} is {about} {_n2(z[0])} m above the floor and that of {names[1]} "
            f"{about} {_n2(z[1])} m, so the answer is {opt}."
        )
    if cat == "front_behind":
        return (
            f"{names[0].capitalize()} is {about} {_n2(np.linalg.norm(cams[0]))} m from the camera and {names[1]} "
            f"{about} {_n2(np.linalg.norm(cams[1]))} m, so the answer is {opt}."
        )
    if cat in ("bigger_smaller", "taller_shorter", "wider_thinner"):
        return (
            f"{names[0].capitalize()} is {about} {_size_text(objs[0])} and {names[1]} {about} {_size_text(objs[1])} "
            f"(width x depth x height), so the answer is {opt}."
        )
    if cat == "closest_to":
        d = [np.linalg.norm(c - cams[0]) for c in cams[1:]]
        parts = ", ".join(f"{n} {_n2(v)} m" for n, v in zip(names[1:], d))
        return f"Distances from {names[0]}: {parts}. The closest is {opt}."
    raise ValueError(f"no LOR trace for category {cat!r}")


def _general_only_think(row: Mapping[str, Any], rng) -> str:
    cat = row["category"]
    color, name = Q.parse_target(row["question"], cat)
    found = [o for o in row["objects"] if Q.matches(o, color, name)]
    opt = _option(row)
    if cat == "count":
        listed = (
            "; ".join(f"the {o['color']} {o['name']} {where(o, row['intrinsics'])}" for o in found) or "none"
        )
        return f"Matching objects: {listed}. That makes {len(found)}, so the answer is {opt}."
    seen = ", ".join(f"{o['color']} {o['name']}" for o in row["objects"][:6])
    target = f"{color} {name}" if color else name
    verdict = "is" if found else "is no"
    return f"I see: {seen}. There {verdict} {target}, so the answer is {opt}."


def dtr_target(row: Mapping[str, Any], rng: np.random.Generator | None = None, style: str = "numbers_first") -> str:
    """`<detect>..</detect>\\n<think>..</think>\\n<answer>..</answer>` for a question row, in `style`."""
    cat, ans = row["category"], row["answer"]
    if cat in ("count", "exists"):
        color, name = Q.parse_target(row["question"], cat)
        found = [o for o in row["objects"] if Q.matches(o, color, name)]
        boxes = [box3d(o["center"], o["name"], f"{o['color']} {o['name']}") for o in found]
        n = len(found)
        verdict = f"That makes {n}" if cat == "count" else ("One is there" if n else "None is there")
        return dtr(boxes, f"{verdict}, so the answer is {_option(row)}.", ans)
    _, objs, labels = _roles(row)
    boxes = [box3d(o["center"], o["name"], lab) for o, lab in zip(objs, labels)]
    return dtr(boxes, _styled(row, dtr_think(row, rng), style), ans)


def dtr_think(row: Mapping[str, Any], rng: np.random.Generator | None = None) -> str:
    cat, ans = row["category"], row["answer"]
    _, objs, labels = _roles(row)
    cams = [[float(Q.fmt(v)) for v in o["center"]] for o in objs]  # what the detect block wrote
    c2w = row["camera_to_world"]
    if cat in ("distance", "horizontal_distance", "vertical_distance", "camera_distance"):
        text, value = numeric_steps(cat, cams, c2w)
        assert value == ans, f"row {row.get('id')!r}: trace arithmetic gives {value}, answer is {ans}"
        if cat == "vertical_distance":
            text += f" Vertical distance = {ans}."
        return text
    if cat == "width":
        sx, sy = (Q.fmt(v) for v in objs[0]["size"][:2])
        return f"The {labels[0]} object measures {_size_text(objs[0])}. Its width is the larger of {sx} and {sy}: {ans}."
    if cat == "height":
        return f"The {labels[0]} object measures {_size_text(objs[0])}. Its height is {ans}."
    opt = _option(row)
    if cat == "left_right":
        x0, x1 = Q.fmt(cams[0][0]), Q.fmt(cams[1][0])
        rel = ">" if cams[0][0] > cams[1][0] else "<"
        return f"x of {labels[0]} = {x0}, x of {labels[1]} = {x1}. {x0} {rel} {x1}, so the answer is {opt}."
    if cat == "above_below":
        text, _ = numeric_steps("above_below", cams, c2w)
        sign = "positive" if Q.WORD_SIGN[cat][row["choices"][Q.LETTERS.index(ans)]] > 0 else "negative"
        return f"{text} It is {sign}, so the answer is {opt}."
    if cat == "front_behind":
        n0, n1 = (Q.fmt(float(np.linalg.norm(c))) for c in cams[:2])
        return f"Distance to the camera: {labels[0]} {n0}, {labels[1]} {n1}. So the answer is {opt}."
    if cat == "bigger_smaller":
        vols = [f"{Q.volume([float(Q.fmt(v)) for v in o['size']]):.4f}" for o in objs]
        return (
            f"Volumes: {labels[0]} {_size_text(objs[0])} = {vols[0]} m^3, {labels[1]} {_size_text(objs[1])} = "
            f"{vols[1]} m^3. So the answer is {opt}."
        )
    if cat == "taller_shorter":
        h0, h1 = (Q.fmt(o["size"][2]) for o in objs)
        return f"Heights: {labels[0]} {h0} m, {labels[1]} {h1} m. So the answer is {opt}."
    if cat == "wider_thinner":
        w0, w1 = (Q.fmt(Q.width_of(o["size"])) for o in objs)
        return f"Widths (larger horizontal side): {labels[0]} {w0} m, {labels[1]} {w1} m. So the answer is {opt}."
    if cat == "closest_to":
        ref = np.asarray(cams[0])
        parts = ", ".join(
            f"{lab} {Q.fmt(float(np.linalg.norm(np.asarray(c) - ref)))}"
            for lab, c in zip(labels[1:], cams[1:])
        )
        return f"Distances from {labels[0]}: {parts}. The smallest is {opt}."
    raise ValueError(f"no DTR trace for category {cat!r}")
