"""Atomic writes: a killed process never leaves a half-written file or folder behind.

Every stage writes its outputs through these helpers: a temporary sibling is written
completely, then renamed over the target in one step. Growing logs written during training
(GRPO's `samples.jsonl`, `alarms.jsonl`) are the exception: `append_jsonl` appends line by line
and `read_jsonl` skips the one cut line a kill can leave.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _publish_mode(path: Path, directory: bool) -> None:
    """mkstemp/mkdtemp create private (0600/0700) entries; give the final ones the usual mode."""
    os.chmod(path, (0o777 if directory else 0o666) & ~_umask())


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Write `text` to `path` atomically (temp file in the same folder, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        _publish_mode(Path(tmp), directory=False)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return path


def write_json(path: str | os.PathLike, obj: Any) -> Path:
    return write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=_jsonable) + "\n")


def write_jsonl(path: str | os.PathLike, rows: list[dict]) -> Path:
    return write_text(path, "".join(json.dumps(r, sort_keys=True, default=_jsonable) + "\n" for r in rows))


def append_jsonl(path: Path, rows: Sequence[dict], **extra: Any) -> None:
    """Append rows to a growing log. Not `write_jsonl`: rewriting the whole log every step is
    quadratic; a kill can at worst cut the last line, which `read_jsonl` skips."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps({**extra, **row}, sort_keys=True, default=str) + "\n")
        f.flush()


def truncate_jsonl(path: str | os.PathLike, last_step: int | None) -> None:
    """Make a growing log agree with a resumed run: keep only the rows whose `step` is at most
    `last_step` (the checkpoint resumed from); None (a fresh start) removes the log. Atomic."""
    path = Path(path)
    if not path.exists():
        return
    if last_step is None:
        path.unlink()
        return
    text = path.read_text(encoding="utf-8")
    rows = _parse_jsonl(text)
    kept = [r for r in rows if not isinstance(r.get("step"), int) or r["step"] <= last_step]
    if len(kept) != len(rows) or text.count("\n") != len(rows):  # dropped rows, or a cut last line
        write_jsonl(path, kept)


def read_jsonl(path: str | os.PathLike) -> list[dict]:
    """Rows of a jsonl log (samples.jsonl, alarms.jsonl); [] if it does not exist; a cut last line is skipped."""
    path = Path(path)
    return _parse_jsonl(path.read_text(encoding="utf-8")) if path.exists() else []


def _parse_jsonl(text: str) -> list[dict]:
    """The rows of jsonl `text`; a line that does not parse (one cut by a kill) is skipped."""
    rows = []
    for line in text.splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return rows


def _jsonable(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


def temp_prefix(path: Path, kind: str) -> str:
    """Name prefix of a hidden working sibling of `path` (`kind`: tmp, cache, old), carrying the
    process id so that `remove_stale` can tell a dead process's leftovers from a live one's."""
    return f".{path.name}.{kind}-{os.getpid()}-"


def remove_stale(path: str | os.PathLike) -> list[Path]:
    """Delete the hidden working siblings of `path` (`.NAME.tmp-*`, `.NAME.cache-*`, `.NAME.old-*`)
    that a killed process left behind: those whose process id is not running (or that carry none).
    Returns what was removed."""
    path = Path(path)
    if not path.parent.is_dir():
        return []
    removed = []
    for kind in ("tmp", "cache", "old"):
        for leftover in path.parent.glob(f".{glob_escape(path.name)}.{kind}-*"):
            pid = leftover.name[len(f".{path.name}.{kind}-"):].split("-")[0]
            if pid.isdigit() and alive(int(pid)):
                continue
            if leftover.is_dir():
                shutil.rmtree(leftover, ignore_errors=True)
            else:
                leftover.unlink(missing_ok=True)
            removed.append(leftover)
    return removed


def glob_escape(name: str) -> str:
    return "".join(f"[{c}]" if c in "*?[" else c for c in name)


def alive(pid: int) -> bool:
    """Whether process `pid` is running (another user's counts as running)."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary folder; on success it replaces `path` in one rename.

    If the body raises (or the process dies), `path` is untouched and the temporary folder is
    removed (or, after a kill, left as a `.name.tmp-PID-*` sibling that the next `atomic_dir` or
    `remove_stale` of the same path deletes).
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} already exists (pass overwrite to replace it)")
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale(path)  # what a killed build of the same folder left behind
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=temp_prefix(path, "tmp")))
    try:
        yield tmp
        _publish_mode(tmp, directory=True)
        if path.exists():
            old = path.with_name(temp_prefix(path, "old") + "0")
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
