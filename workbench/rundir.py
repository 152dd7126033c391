"""The run folder: its layout, the guard every stage puts on its output folder, the last
checkpoint to resume from, and the atomic save of a finished model.

One run of `workbench run` (or of the notebooks by hand) fills one folder:

    RUN/data/            the dataset (`workbench data`), with data_card.json
    RUN/base/            the built-in model after its base stage (copying, grounding)
    RUN/sft/             the cold-start SFT model; checkpoint-N/ while it trains
    RUN/grpo/            the GRPO model; checkpoint-N/ while it trains
    RUN/eval/            predictions.jsonl, metrics.json, eval_settings.json
    RUN/notebooks/       the executed notebooks
    RUN/manifest.json    profile, parameters, seeds, versions, stage status (written by `run`)
    RUN/metrics.json     the evaluation table, copied from RUN/eval
    RUN/report.html      the self-contained report

A model folder is finished when its `config.json` exists: `save_model` writes that file last.
Every stage refuses to write into a folder that holds something else, or a run of its own kind
unless told to resume it or overwrite it (`check_output_dir`).
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import subprocess
import zipfile
from collections.abc import Callable
from pathlib import Path

logger = logging.getLogger(__name__)

DATA, BASE, SFT, GRPO, EVAL, NOTEBOOKS = "data", "base", "sft", "grpo", "eval", "notebooks"
"""Stage folders of a run folder."""
MANIFEST, METRICS, REPORT = "manifest.json", "metrics.json", "report.html"
"""Files of a run folder."""
PROGRESS = "progress.json"
"""A training stage's progress in its output folder (`train.progress.ProgressCallback`)."""
MODEL_STAGES = (SFT, GRPO)
"""Model folders of a run folder that answer questions, in training order (the last finished one is
the main model); `BASE` only grounds, so evaluation leaves it out."""


def model_dirs(run_dir: str | os.PathLike) -> dict[str, Path]:
    """{stage: folder} of the finished models of a run folder, in `MODEL_STAGES` order."""
    run = Path(run_dir)
    return {stage: run / stage for stage in MODEL_STAGES if is_finished_model(run / stage)}


def is_finished_model(folder: str | os.PathLike) -> bool:
    """Whether `folder` holds a finished model (its `config.json`, which `save_model` writes last)."""
    return (Path(folder) / "config.json").is_file()


def resumable(out_dir: str | os.PathLike, settings_file: str, expected: dict) -> bool:
    """Whether `out_dir` holds an interrupted training run of the same settings: a finished
    `checkpoint-*`, no final model (`config.json`), and a `settings_file` whose values agree with
    `expected` (compared as JSON, on `expected`'s keys)."""
    out = Path(out_dir)
    if last_checkpoint(out) is None or is_finished_model(out):
        return False
    try:
        saved = json.loads((out / settings_file).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    wanted = json.loads(json.dumps(expected, default=str))
    return all(saved.get(k) == v for k, v in wanted.items())


def resolve_resume(resume: bool | str, overwrite: bool, out_dir: str | os.PathLike, settings_file: str,
                   expected: dict) -> tuple[bool, bool]:
    """(resume, overwrite) for a training stage: `resume="auto"` (a notebook stage run again)
    resumes an interrupted run of the same settings (`resumable`) and otherwise starts over,
    replacing a run of the stage's own kind; True / False are kept as given."""
    if resume != "auto":
        return bool(resume), overwrite
    resume = resumable(out_dir, settings_file, expected)
    return resume, overwrite or not resume


def checkpoint_step(checkpoint: str | os.PathLike) -> int:
    """The optimizer step a `checkpoint-N` folder was saved at (its trainer state's `global_step`)."""
    state = Path(checkpoint) / "trainer_state.json"
    try:
        return int(json.loads(state.read_text(encoding="utf-8"))["global_step"])
    except (OSError, ValueError, KeyError):
        return int(Path(checkpoint).name.rsplit("-", 1)[-1])


def last_checkpoint(out_dir: str | os.PathLike) -> Path | None:
    """The `checkpoint-N` folder with the largest N in `out_dir` whose save finished (it holds a
    trainer state) and whose files are intact (a damaged one is skipped with a warning), or None."""
    out = Path(out_dir)
    if not out.is_dir():
        return None
    found = []
    for child in out.iterdir():
        m = re.fullmatch(r"checkpoint-(\d+)", child.name)
        if m and child.is_dir():
            found.append((int(m.group(1)), child))
    for _, path in sorted(found, reverse=True):
        damaged = _damaged_files(path)
        if not damaged:
            return path
        if (path / "trainer_state.json").is_file():  # a save that finished, damaged since
            logger.warning("skipping %s: %s unreadable; resuming from the checkpoint before it",
                           path.name, ", ".join(damaged))
    return None


def _damaged_files(checkpoint: Path) -> list[str]:
    """Files of a checkpoint that cannot be what they claim (cheap checks: a trainer state that
    parses, torch `.pt` / `.pth` files with an intact zip directory); a missing trainer state means
    the save never finished."""
    state = checkpoint / "trainer_state.json"
    try:
        json.loads(state.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return [state.name]
    return sorted(p.name for p in checkpoint.iterdir() if p.suffix in (".pt", ".pth") and not zipfile.is_zipfile(p))


def check_output_dir(out: str | os.PathLike, what: str, is_ours: Callable[[Path], bool], *,
                     resume: bool = False, overwrite: bool = False, noun: str = "run",
                     clear: bool = True) -> None:
    """Refuse to write `what` (e.g. "SFT run") into `out` unless it is safe; clear it for `overwrite`.
    `noun`: what the folder holds when it is ours ("run": it can be resumed; else only replaced).
    `clear`: delete one of ours at once for `overwrite`; False when the caller replaces the folder
    atomically once its new content is complete (the old one survives a failed build).

    - `out` is a file: refused.
    - `out` is missing or empty: fine, nothing is touched.
    - `out` holds something that is not one of ours (`is_ours(out)` is False): refused, even with
      `resume` or `overwrite` (we never write into or delete what we did not write).
    - `out` holds one of ours and `resume` is set: fine, nothing is touched.
    - `out` holds one of ours: replaced with `overwrite`, else refused with the flags that help.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"{what} output {str(out)!r} exists and is not a folder")
    if not out.is_dir() or not any(out.iterdir()):
        return
    entries = list(out.iterdir())
    if all(is_temp_leftover(p) for p in entries):
        # a stage killed inside its first atomic write leaves only that write's temp file: nothing
        # of value, and ours by its name, so the folder counts as empty
        for p in entries:
            p.unlink()
        return
    if not is_ours(out):  # also with `resume`: a folder of someone else's files is never written into
        raise FileExistsError(f"output folder {str(out)!r} exists and is not {_a(what)}; refusing to write into it")
    if resume:
        return
    if overwrite:
        if clear:
            shutil.rmtree(out)
        return
    hint = "pass --resume to continue it or --overwrite to start over" if noun == "run" else "pass --overwrite to replace it"
    raise FileExistsError(f"output folder {str(out)!r} already holds {_a(noun)} ({hint})")


def is_temp_leftover(path: Path) -> bool:
    """Whether `path` is the temp file of an atomic write that was killed (`io.write_text`:
    `.{name}.XXXXXXXX.tmp`)."""
    name = path.name
    return path.is_file() and name.startswith(".") and name.endswith(".tmp") and name.count(".") >= 3


def _a(noun: str) -> str:
    """`noun` with its indefinite article."""
    return f"{'an' if noun[:1].lower() in 'aeiou' else 'a'} {noun}"


def looks_like_training_run(out: Path, marks: tuple[str, ...]) -> bool:
    """Whether `out` holds a training run: one of the files or folders `marks`, or a checkpoint."""
    return any((out / m).exists() for m in marks) or any(out.glob("checkpoint-*"))


def save_model(model, processor, out_dir: str | os.PathLike) -> None:
    """Model (safetensors) and processor into `out_dir`, readable by `workbench.model.load`.

    Written in a temporary sibling folder and moved in file by file with `config.json` last, so a
    kill never leaves a half-written weight file nor a folder that looks finished but is not."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / f".final-tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp, safe_serialization=True)
    processor.save_pretrained(tmp)
    names = sorted(p.name for p in tmp.iterdir())
    for name in [n for n in names if n != "config.json"] + ["config.json"]:
        os.replace(tmp / name, out / name)
    tmp.rmdir()


def write_progress(out_dir: str | os.PathLike, progress: dict) -> None:
    """`progress` as `{out_dir}/progress.json`, written atomically (a reader never sees half of it)."""
    path = Path(out_dir) / PROGRESS
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{PROGRESS}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(progress, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def read_progress(out_dir: str | os.PathLike) -> dict | None:
    """The progress a training stage last wrote into `out_dir`, or None (none yet, or unreadable)."""
    try:
        found = json.loads((Path(out_dir) / PROGRESS).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return found if isinstance(found, dict) else None


def git_commit() -> str | None:
    """The git commit of the workbench's source tree (what a manifest records), or None outside a
    git checkout or without git."""
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True,
                              cwd=Path(__file__).resolve().parent).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
