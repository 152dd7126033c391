"""scripts/gpu_check.sh without a GPU, in seconds: it skips the GPU parts cleanly and reports so,
fails when a GPU is there but torch cannot see it, refuses bad arguments; its report reads the
phases and the pytest summary; its shortened `gpu` run names only parameters the notebooks have.
A fake `nvidia-smi` first on PATH stands for the driver, so these run the same on any machine
(CUDA_VISIBLE_DEVICES="" keeps a real GPU out of the way), and nothing installs or trains."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "gpu_check.sh"
H200 = "NVIDIA H200, 570.86.15, 143771 MiB"


def fake_nvidia_smi(folder: Path, line: str | None) -> Path:
    """A bin folder whose `nvidia-smi` prints `line`, or fails as it does without a driver (None)."""
    folder.mkdir(exist_ok=True)
    script = folder / "nvidia-smi"
    failure = "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver."
    body = f'echo "{line}"' if line else f'echo "{failure}" >&2; exit 9'
    script.write_text(f"#!/bin/sh\n{body}\n")
    script.chmod(0o755)
    return folder


def check(args: list[str], bin_dir: Path | None = None, **env: str | None) -> subprocess.CompletedProcess:
    """`bash scripts/gpu_check.sh ARGS` with `bin_dir` first on PATH; an `env` value of None unsets it."""
    environ = {k: v for k, v in {**os.environ, "PYTHON": sys.executable, **env}.items() if v is not None}
    if bin_dir is not None:
        environ["PATH"] = f"{bin_dir}{os.pathsep}{environ['PATH']}"
    return subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True, env=environ,
                          cwd=ROOT, timeout=120)


def test_without_a_gpu_it_skips_the_gpu_parts_and_reports_it(tmp_path):
    out = tmp_path / "check"
    (out / "run").mkdir(parents=True)  # an earlier check's run: not this one's
    (out / "run" / "manifest.json").write_text('{"stages": {"data": {"status": "done"}}}')
    result = check(["--out", str(out), "--skip-setup"], fake_nvidia_smi(tmp_path / "bin", None))
    assert result.returncode == 0, result.stderr
    assert "no CUDA GPU: skipping the GPU parts" in result.stdout
    report = json.loads((out / "report.json").read_text())
    assert report["status"] == "skipped" and "nvidia-smi finds no GPU" in report["reason"]
    assert [(p["name"], p["status"]) for p in report["phases"]] == [
        ("setup", "skipped"), ("tests", "skipped"), ("run", "skipped"), ("generate", "skipped")]
    assert report["machine"]["gpus"] == [] and report["pytest"] is None and report["run"] is None
    assert (out / "report.md").read_text().startswith("# GPU check: skipped")
    assert not (out / "setup.log").exists()


def test_a_gpu_hidden_from_torch_is_skipped_and_named(tmp_path):
    out = tmp_path / "check"
    result = check(["--out", str(out), "--skip-setup"], fake_nvidia_smi(tmp_path / "bin", H200),
                   CUDA_VISIBLE_DEVICES="")
    assert result.returncode == 0, result.stderr
    assert "no CUDA GPU: skipping the GPU parts" in result.stdout
    report = json.loads((out / "report.json").read_text())
    assert report["status"] == "skipped" and "CUDA_VISIBLE_DEVICES" in report["reason"]
    assert report["machine"]["gpus"] == [{"name": "NVIDIA H200", "driver": "570.86.15", "memory": "143771 MiB"}]
    assert report["phases"][0] == {"name": "setup", "status": "skipped", "seconds": 0.0, "note": "--skip-setup"}


@pytest.mark.skipif(not (ROOT / ".venv" / "bin" / "python").exists(), reason="needs the project's .venv")
def test_a_gpu_that_torch_cannot_see_fails_the_check(tmp_path):
    torch_sees = subprocess.run([str(ROOT / ".venv" / "bin" / "python"), "-c",
                                 "import sys, torch; sys.exit(torch.cuda.is_available())"])
    if torch_sees.returncode:
        pytest.skip("torch sees a real GPU here: the check would run")
    out = tmp_path / "check"
    result = check(["--out", str(out), "--skip-setup"], fake_nvidia_smi(tmp_path / "bin", H200),
                   CUDA_VISIBLE_DEVICES=None)
    assert result.returncode == 1
    assert "nvidia-smi sees a GPU but torch" in result.stderr
    report = json.loads((out / "report.json").read_text())
    assert report["status"] == "failed" and "torch" in report["reason"]
    assert [p["status"] for p in report["phases"][1:]] == ["not run"] * 3


@pytest.mark.parametrize(
    "args, message",
    [
        (["--bogus"], "unknown argument '--bogus'"),
        (["--out"], "--out needs a folder"),
        (["--out", ""], "--out needs a folder"),
        (["--skip-setup", "extra"], "unknown argument 'extra'"),
    ],
)
def test_bad_arguments_exit_2_naming_them(tmp_path, args, message):
    result = check(args, fake_nvidia_smi(tmp_path / "bin", None))
    assert result.returncode == 2
    assert message in result.stderr and "usage: bash scripts/gpu_check.sh" in result.stderr
    assert "no CUDA GPU" not in result.stdout  # it stopped before anything else


def test_an_out_that_is_a_file_exits_2(tmp_path):
    (tmp_path / "file").write_text("")
    result = check(["--out", str(tmp_path / "file")], fake_nvidia_smi(tmp_path / "bin", None))
    assert result.returncode == 2 and "cannot make the folder --out" in result.stderr


def test_help_lists_the_options():
    result = check(["--help"])
    assert result.returncode == 0 and "--skip-setup" in result.stdout and "report.json" in result.stdout


# --------------------------------------------------------------------------- the report


PYTEST_XML = """<?xml version="1.0" encoding="utf-8"?><testsuites><testsuite name="pytest" tests="3">
<testcase classname="tests.test_gpu" name="test_a" time="1.5"/>
<testcase classname="tests.test_gpu" name="test_b" time="2.0"><failure message="AssertionError: loss is nan&#10;more">tb</failure></testcase>
<testcase classname="tests.test_gpu" name="test_c" time="0"><skipped message="vllm does not import here"/></testcase>
</testsuite></testsuites>"""


def test_the_report_fails_on_a_failed_phase_and_summarises_pytest(tmp_path):
    (tmp_path / "phases.tsv").write_text("setup\tpassed\t150\tbash scripts/setup.sh\n"
                                         "tests\tfailed\t90\texit 1: pytest\nrun\ttimed out\t420\tstopped after 420 s\n")
    (tmp_path / "pytest.xml").write_text(PYTEST_XML)
    (tmp_path / "memory.csv").write_text("1200\n35000\n800\n")
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / "gpu_report.py"), str(tmp_path),
                             "--total-seconds", "660"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["status"] == "failed" and report["reason"] == "tests failed; run timed out; generate not run"
    assert not report["within_budget"]
    tests = report["pytest"]
    assert (tests["tests"], tests["passed"], tests["failed"], tests["skipped"]) == (3, 1, 1, 1)
    assert tests["cases"][1]["message"] == "AssertionError: loss is nan"
    assert report["peak_gpu_memory"] == {"allocated_gib": None, "used_mib": 35000.0}
    text = (tmp_path / "report.md").read_text()
    assert text.startswith("# GPU check: failed") and "over the 480 s budget" in text
    assert "| tests.test_gpu::test_b | failed | 2.0 | AssertionError: loss is nan |" in text


# --------------------------------------------------------------------------- the shortened run


def test_the_shortened_run_names_only_parameters_of_its_notebooks():
    """An unknown name would be injected by papermill and ignored: the full gpu profile would run."""
    import papermill
    import yaml

    from workbench.run import STAGES, RunSettings

    params = yaml.safe_load((ROOT / "scripts" / "gpu_check.yaml").read_text())
    RunSettings(profile="gpu", params=params)  # stage names known
    notebooks = dict(STAGES)
    for stage, values in params["stages"].items():
        declared = papermill.inspect_notebook(str(ROOT / "notebooks" / notebooks[stage]))
        assert set(values) <= set(declared), f"{stage}: {sorted(set(values) - set(declared))} are not parameters"
    stages = params["stages"]
    assert stages["data"]["num_scenes"] <= 500 and all(stages[s]["max_steps"] <= 50 for s in ("base", "sft", "grpo"))
