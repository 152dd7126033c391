"""System prompts of the two reasoning paths and `to_messages`, the ONE function that turns a
dataset row into chat messages. SFT, GRPO, evaluation, `workbench ask` and the demo all call it,
so the prompt a model is trained on is the prompt it is evaluated on. Taught in
`notebooks/03_cold_start_sft.ipynb`.

Messages are in TRL's conversational format with typed content parts:

    [{"role": "system", "content": [{"type": "text", "text": SYSTEM_DTR}]},
     {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": question}]},
     {"role": "assistant", "content": [{"type": "text", "text": target}]}]   # with_target=True

The image part is a placeholder; TRL fills it from the dataset's `image` column
(`embed_image=True` puts the row's PIL image in it, for direct use with a processor). Every
content is a list of parts so that a `datasets` column of messages has one arrow type.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from workbench.schema import QA_TASKS, REGION_TOKEN, TASKS

PATH_CHOICES = ("lor", "dtr", "auto")
LETTERS = "ABCDEFGH"

SYSTEM_LOR = (
    "You look at an image and answer a question about where things are in 3D. "
    "Reason step by step between <think> and </think>. "
    "Then write only the final answer between <answer> and </answer>: "
    "the option letter if options are listed, otherwise a plain number of meters without unit."
)
"""Language-only reasoning (LOR): think in words, then answer."""

SYSTEM_DTR = (
    "You look at an image and answer a question about where things are in 3D. "
    "First find the objects the question refers to, between <detect> and </detect>: "
    "write 'Find N relevant objects:' and then one line per object, "
    '<3d_box center="x,y,z">object (label)</3d_box>, '
    "with the center of the object in meters in the camera frame (x right, y down, z forward), "
    "2 decimals, no spaces, and the label the question uses for it. "
    "Then reason with these centers between <think> and </think>. "
    "Then write only the final answer between <answer> and </answer>: "
    "the option letter if options are listed, otherwise a plain number of meters without unit."
)
"""Detect-then-reason (DTR): write 3D centers, reason with them, then answer."""

SYSTEM_PLAIN = "You look at an image and do exactly what the request asks, in the requested form."
"""Blend tasks (ground_3d, ground_2d, caption): plain targets without tags."""

SYSTEM_PROMPTS = {"lor": SYSTEM_LOR, "dtr": SYSTEM_DTR, "plain": SYSTEM_PLAIN}

SYSTEM_PROMPTS_SHORT = {
    "lor": "Think, then answer.",
    "dtr": "Detect, think, then answer.",
    "plain": "Do what is asked.",
}
"""One-line system prompts for the built-in model (`ModelSettings.system_prompts = "short"`). A
model trained from scratch reads no instructions: the system prompt only has to tell the paths
apart, and every token of it is one more position the question's labels compete with for
attention. Measured in docs/experiments.md: with the full prompts the tiny model's DTR completions
named the question's region labels 18-21% of the time, with these 45-54%."""

SYSTEM_STYLES = ("full", "short")

OPTION_STYLES = ("letter_first", "letter_after")
"""How the options of a choice question are listed: `letter_first` ("A. left", the usual form,
for real pretrained VLMs) or `letter_after` ("- left (A)", the built-in model). A choice trace
ends "so the answer is left (A)"; with `letter_after` the option line holds the same two tokens
(" left", " (A)") in the same order, so writing the letter is one induction copy (find the
earlier " left", write what followed it) instead of a look-back across the line. Measured in
docs/experiments.md (issue #3)."""


def option_lines(choices: list[str], style: str = "letter_first") -> str:
    """The options as lines in `style` (`OPTION_STYLES`).

    >>> option_lines(["left", "right"], "letter_after")
    '- left (A)\\n- right (B)'
    """
    if style not in OPTION_STYLES:
        raise ValueError(f"option style {style!r} is not one of {OPTION_STYLES}")
    if style == "letter_first":
        return "\n".join(f"{LETTERS[i]}. {choice}" for i, choice in enumerate(choices))
    return "\n".join(f"- {choice} ({LETTERS[i]})" for i, choice in enumerate(choices))


def system_prompt(kind: str, style: str = "full") -> str:
    """The system prompt of `kind` (lor | dtr | plain) in `style` (full | short)."""
    if style not in SYSTEM_STYLES:
        raise ValueError(f"system prompt style {style!r} is not one of {SYSTEM_STYLES}")
    return (SYSTEM_PROMPTS if style == "full" else SYSTEM_PROMPTS_SHORT)[kind]


def resolve_path(row: Mapping[str, Any], path: str) -> str:
    """The path a QA row is asked on: `lor`/`dtr` as given; `auto` = dtr if it has regions else lor."""
    if path not in PATH_CHOICES:
        raise ValueError(f"path {path!r} is not one of {PATH_CHOICES}")
    if path == "auto":
        return "dtr" if row.get("regions") else "lor"
    return path


def _region_tokens(row: Mapping[str, Any], region_coords: bool) -> list[str]:
    """Each region of `row` as the model reads it: `<region>` and, with `region_coords`, its
    location tokens (the built-in model), plus the one naming its image in a multi-view row
    (`region_frames`)."""
    from workbench.tasks.locations import encode_region_tokens

    regions = list(row.get("regions") or [])
    if not (region_coords and regions):
        return [REGION_TOKEN] * len(regions)
    image = row.get("image")
    if image is None or not hasattr(image, "size"):
        raise ValueError(f"row {row.get('id', '?')!r}: region coordinates need the row's image")
    frames = region_frames(row) or [None] * len(regions)
    tokens = []
    for k, (region, frame) in enumerate(zip(regions, frames)):
        try:
            tokens.append(encode_region_tokens(region["bbox_2d"], image.size, frame))
        except ValueError as err:
            raise ValueError(f"row {row.get('id', '?')!r}, region {k} ({region.get('label')!r}): {err}") from err
    return tokens


def _question_pieces(row: Mapping[str, Any]) -> list[str]:
    pieces = str(row["question"]).split(REGION_TOKEN)
    n = len(row.get("regions") or [])
    if len(pieces) - 1 != n:
        raise ValueError(f"row {row.get('id', '?')!r}: question has {len(pieces) - 1} {REGION_TOKEN} tokens "
                         f"but {n} regions")
    return pieces


def region_frames(row: Mapping[str, Any]) -> list[int] | None:
    """The frame (counted from 1) of each region of a row that shows several images and places its
    regions in them (`region_frames`), else None: the regions belong to the one image."""
    frames = row.get("region_frames")
    if len(images_of(row)) < 2 or frames is None or not len(row.get("regions") or ()):
        return None
    return [int(f) for f in frames]


def user_text(row: Mapping[str, Any], region_coords: bool = True, option_style: str = "letter_first") -> str:
    """The question of `row` as the model reads it: each `<region>` followed by its location
    tokens (region_coords=True, the built-in model; in a multi-view row one more names the region's
    image), then the options, one line each in `option_style` (`OPTION_STYLES`)."""
    pieces = _question_pieces(row)
    tokens = _region_tokens(row, region_coords)
    text = pieces[0] + "".join(tok + piece for tok, piece in zip(tokens, pieces[1:]))
    choices = list(row.get("choices") or [])
    if choices:
        if len(choices) > len(LETTERS):
            raise ValueError(f"row {row.get('id', '?')!r}: {len(choices)} choices, at most {len(LETTERS)}")
        text += "\n" + option_lines(choices, option_style)
    return text


def images_of(row: Mapping[str, Any]) -> list[Any]:
    """The images a row shows the model, in order: its `images` (several views of one question, as
    in a multi-view benchmark) when it has them, else its one `image` (none for a text-only row)."""
    images = row.get("images")
    if images:
        return list(images)
    image = row.get("image")
    return [] if image is None else [image]


def target_of(row: Mapping[str, Any], path: str) -> str:
    """The assistant text a row is trained on for `path` (blend rows: their plain target)."""
    task = row.get("task", "region_qa")
    if task in QA_TASKS:
        return str(row["dtr_target"] if resolve_path(row, path) == "dtr" else row["lor_target"])
    return str(row["lor_target"])


def to_messages(
    row: Mapping[str, Any],
    path: str = "auto",
    region_coords: bool = True,
    with_target: bool = False,
    embed_image: bool = False,
    system: str = "full",
    option_style: str = "letter_first",
) -> list[dict[str, Any]]:
    """Chat messages of a dataset row: system prompt of the path, user turn (image + question),
    and with `with_target` the assistant target. `path` is lor | dtr | auto for QA tasks and is
    ignored by blend tasks (ground_3d, ground_2d, caption), which use a plain system prompt.

    `region_coords=True` writes location tokens after each `<region>` (built-in model); real
    pretrained VLMs use False. `system` picks the full or the short system prompts (`SYSTEM_STYLES`),
    `option_style` how options are listed (`OPTION_STYLES`). `model.prompt_options(model)` gives all
    three for a model: `to_messages(row, path, **model.prompt_options(model))`.
    """
    task = row.get("task", "region_qa")
    if task not in TASKS:
        raise ValueError(f"row {row.get('id', '?')!r}: task {task!r} is not one of {TASKS}")
    system = system_prompt(resolve_path(row, path) if task in QA_TASKS else "plain", system)
    if task not in QA_TASKS:
        resolve_path(row, path)  # still reject a misspelt path
    user: list[dict[str, Any]] = [{"type": "image", "image": image} if embed_image else {"type": "image"}
                                  for image in images_of(row)]
    user.append({"type": "text", "text": user_text(row, region_coords, option_style)})
    messages = [
        {"role": "system", "content": [{"type": "text", "text": system}]},
        {"role": "user", "content": user},
    ]
    if with_target:
        messages.append({"role": "assistant", "content": [{"type": "text", "text": target_of(row, path)}]})
    return messages


def corpus(rows: Iterable[Mapping[str, Any]], system: str = "full",
           option_style: str = "letter_first") -> Iterator[str]:
    """Texts to train the built-in tokenizer on: the system prompts, then each row's question
    (with options) and targets. Pass it to `model.build_tiny`, with the `system` style and the
    `option_style` the model will be prompted in (`ModelSettings.system_prompts`,
    `ModelSettings.option_style`). No image is needed: for a `datasets` split,
    `split.remove_columns(["image", "depth"])` skips decoding them."""
    for style in SYSTEM_STYLES:
        yield from (system_prompt(kind, style) for kind in ("lor", "dtr", "plain"))
    for row in rows:
        # Every training sequence repeats a system prompt: weigh them as often as they occur, so
        # BPE merges their words (the prompt is a large share of each sequence).
        if row.get("task", "region_qa") in QA_TASKS:
            yield system_prompt("lor", system)
            yield system_prompt("dtr", system)
        else:
            yield system_prompt("plain", system)
        yield user_text(row, region_coords=False, option_style=option_style)
        for key in ("lor_target", "dtr_target"):
            if row.get(key):
                yield str(row[key])
