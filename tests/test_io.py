"""Atomic writes: complete or absent, never half-written; usual permissions on what is published.
Appended jsonl logs: a cut last line is skipped."""

from __future__ import annotations

import os
import stat

import pytest

from workbench import io


def test_write_text_replaces_atomically_with_usual_mode(tmp_path):
    target = tmp_path / "sub" / "a.json"
    io.write_json(target, {"b": 1, "a": [1, 2]})
    io.write_json(target, {"c": 3})
    assert target.read_text() == '{\n  "c": 3\n}\n'
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o666 & ~_umask()
    assert [p.name for p in target.parent.iterdir()] == ["a.json"], "temporary files left behind"


def test_atomic_dir_leaves_target_untouched_when_the_body_fails(tmp_path):
    target = tmp_path / "out"
    with io.atomic_dir(target) as tmp:
        (tmp / "x").write_text("first")
    with pytest.raises(RuntimeError), io.atomic_dir(target, overwrite=True) as tmp:
        (tmp / "x").write_text("half")
        raise RuntimeError("killed mid-write")
    assert (target / "x").read_text() == "first"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"], "temporary folder left behind"
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o777 & ~_umask()


def test_atomic_dir_refuses_an_existing_target_without_overwrite(tmp_path):
    (tmp_path / "out").mkdir()
    with pytest.raises(FileExistsError, match="already exists"), io.atomic_dir(tmp_path / "out"):
        pass


def test_read_jsonl_skips_a_cut_last_line(tmp_path):
    path = tmp_path / "samples.jsonl"
    path.write_text('{"a": 1}\n{"a": 2}\n{"a": ')
    assert io.read_jsonl(path) == [{"a": 1}, {"a": 2}]
    assert io.read_jsonl(tmp_path / "missing.jsonl") == []


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_leftovers_of_a_killed_build_are_removed_by_the_next_one(tmp_path):
    import os

    from workbench import io

    dead = tmp_path / ".data.tmp-999999999-abc"  # no such process
    (dead / "train").mkdir(parents=True)
    unnamed = tmp_path / ".data.cache-x1y2"  # an older build's name without a process id
    unnamed.mkdir()
    alive = tmp_path / f".data.tmp-{os.getpid()}-live"  # a build still running
    alive.mkdir()
    other = tmp_path / ".other.tmp-999999999-abc"  # another folder's: not ours to touch
    other.mkdir()
    with io.atomic_dir(tmp_path / "data") as tmp:
        (tmp / "x.txt").write_text("new")
    assert not dead.exists() and not unnamed.exists() and alive.exists() and other.exists()
    assert (tmp_path / "data" / "x.txt").read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([alive.name, other.name, "data"])
