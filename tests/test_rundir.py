"""The run folder's one output guard, checkpoint lookup and atomic model save."""

from __future__ import annotations

import json

import pytest

from workbench import rundir


def ours(path):
    return (path / "mark.json").exists()


@pytest.mark.parametrize(
    "content, resume, overwrite, noun, expect",
    [
        (None, False, False, "run", "ok"),             # missing folder
        ({}, False, False, "run", "ok"),               # empty folder
        ({"mark.json": "{}"}, True, False, "run", "kept"),        # resume leaves it alone
        ({"mark.json": "{}"}, False, False, "run", "pass --resume to continue it or --overwrite"),
        ({"mark.json": "{}"}, False, False, "dataset", r"already holds a dataset \(pass --overwrite"),
        ({"mark.json": "{}"}, False, True, "run", "cleared"),
        ({"notes.txt": "mine"}, False, False, "run", "is not a SFT run; refusing"),
        ({"notes.txt": "mine"}, False, True, "run", "is not a SFT run; refusing"),  # never deletes what is not ours
        ({"README.md": "mine"}, True, False, "run", "is not a SFT run; refusing"),  # nor resumes into it
        ({".settings.json.k2j4x9.tmp": "{"}, False, False, "run", "ok"),  # killed in its first atomic write
        ({".settings.json.k2j4x9.tmp": "{", "notes.txt": "mine"}, False, False, "run", "is not a SFT run"),
        ({".hidden.tmp": "mine"}, False, False, "run", "is not a SFT run"),  # not an atomic write's name
    ],
)
def test_check_output_dir_rules(tmp_path, content, resume, overwrite, noun, expect):
    out = tmp_path / "out"
    if content is not None:
        out.mkdir()
        for name, text in content.items():
            (out / name).write_text(text)
    if expect in ("ok", "kept", "cleared"):
        rundir.check_output_dir(out, "SFT run", ours, resume=resume, overwrite=overwrite, noun=noun)
        if expect == "kept":
            assert (out / "mark.json").exists()
        if expect == "cleared":
            assert not out.exists()
    else:
        with pytest.raises(FileExistsError, match=expect):
            rundir.check_output_dir(out, "SFT run", ours, resume=resume, overwrite=overwrite, noun=noun)
        assert all((out / name).read_text() == text for name, text in content.items())


def test_a_file_is_refused_and_clear_false_keeps_the_old_folder(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(FileExistsError, match="exists and is not a folder"):
        rundir.check_output_dir(tmp_path / "f", "SFT run", ours)
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "mark.json").write_text("{}")
    rundir.check_output_dir(tmp_path / "d", "dataset", ours, overwrite=True, clear=False)
    assert (tmp_path / "d" / "mark.json").exists()


def test_last_checkpoint_skips_unfinished_saves(tmp_path):
    assert rundir.last_checkpoint(tmp_path / "none") is None
    for step, finished in ((2, True), (10, True), (12, False)):
        (tmp_path / f"checkpoint-{step}").mkdir()
        if finished:
            (tmp_path / f"checkpoint-{step}" / "trainer_state.json").write_text("{}")
    (tmp_path / "checkpoint-x").mkdir()
    assert rundir.last_checkpoint(tmp_path).name == "checkpoint-10"


class Saves:
    """Stands in for a model or processor: `save_pretrained` writes the named files."""

    def __init__(self, *names, fail=False):
        self.names, self.fail = names, fail

    def save_pretrained(self, folder, **_):
        folder.mkdir(parents=True, exist_ok=True)
        for name in self.names:
            (folder / name).write_text(name)
        if self.fail:
            raise RuntimeError("disk full")


def test_save_model_moves_config_last_and_a_failed_save_looks_unfinished(tmp_path):
    out = tmp_path / "m"
    rundir.save_model(Saves("config.json", "model.safetensors"), Saves("tokenizer.json"), out)
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "model.safetensors", "tokenizer.json"]
    assert rundir.model_dirs(tmp_path) == {} and rundir.is_finished_model(out)
    half = tmp_path / "sft"
    with pytest.raises(RuntimeError, match="disk full"):
        rundir.save_model(Saves("config.json", "model.safetensors", fail=True), Saves("tokenizer.json"), half)
    assert not rundir.is_finished_model(half) and rundir.model_dirs(tmp_path) == {}


def test_a_damaged_checkpoint_is_skipped_for_the_one_before(tmp_path, caplog):
    import torch

    for step in (1, 2):
        ckpt = tmp_path / f"checkpoint-{step}"
        ckpt.mkdir()
        (ckpt / "trainer_state.json").write_text(json.dumps({"global_step": step}))
        torch.save({"state": {}}, ckpt / "optimizer.pt")
    assert rundir.last_checkpoint(tmp_path).name == "checkpoint-2"
    (tmp_path / "checkpoint-2" / "optimizer.pt").write_bytes(b"\x00garbage" * 100)
    with caplog.at_level("WARNING"):
        assert rundir.last_checkpoint(tmp_path).name == "checkpoint-1"
    assert "skipping checkpoint-2: optimizer.pt unreadable" in caplog.text
    (tmp_path / "checkpoint-1" / "trainer_state.json").write_text("{cut")
    assert rundir.last_checkpoint(tmp_path) is None
