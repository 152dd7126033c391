"""The claims study (issue #23): the runner on the smoke preset (two seeds, tiny runs) killed and
resumed, every row kind, the page generator's determinism, notebook 07 under papermill."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from workbench import cli, study
from workbench.eval import metrics

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("fixed, broken, p", [(0, 0, 1.0), (5, 5, 1.0), (10, 0, 2 / 1024), (8, 2, 0.109375)])
def test_mcnemar_exact(fixed, broken, p):
    assert metrics.mcnemar_p(fixed, broken) == pytest.approx(p)


@pytest.mark.parametrize("diffs, better, p, word", [
    ([0.1, 0.2, 0.05], "higher", (), "reproduced"),
    ([0.1, 0.2, 0.05], "higher", (0.01, 0.2, 0.03), "partly reproduced"),
    ([0.1, 0.2, -0.05], "higher", (), "partly reproduced"),
    ([-0.1, -0.2, 0.05], "higher", (), "not reproduced"),
    ([-0.1, -0.2, -0.05], "lower", (), "reproduced"),
    ([], "higher", (), "not measured"),
])
def test_verdicts(diffs, better, p, word):
    assert study._verdict(diffs, better, p).startswith(word)


def test_settings_are_checked():
    with pytest.raises(ValueError, match="unknown study preset 'huge'"):
        study.StudySettings.from_preset("huge")
    with pytest.raises(ValueError, match="seeds must be distinct"):
        study.StudySettings.from_preset("smoke", seeds=(1, 1))
    units = study.plan(study.StudySettings.from_preset("smoke", seeds=(0, 1)), "/tmp/nowhere")
    assert len(units) == 2 * (1 + len(study.SFT_RUNS) + 2 * len(study.RL_RUNS))
    assert [u.key for u in units[:2]] == ["seed0/base/base", "seed0/sft/blend"]
    assert len({u.key for u in units}) == len(units)


@pytest.fixture(scope="module")
def finished_study(tmp_path_factory):
    """The smoke study of two seeds, killed (SIGKILL) once three units are done, then run to the end."""
    out = tmp_path_factory.mktemp("study") / "claims"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "workbench.cli", "study", "claims", "--preset", "smoke", "--seeds", "0,1",
         "--out", str(out)], cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    log = out / study.LOG_FILE
    deadline = time.time() + 600
    while time.time() < deadline and proc.poll() is None:
        if log.is_file() and sum('"done"' in line for line in log.read_text().splitlines()) >= 3:
            break
        time.sleep(0.2)
    assert proc.poll() is None, "the study ended before it could be killed"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    before = [json.loads(line) for line in log.read_text().splitlines()]
    settings = study.StudySettings.from_preset("smoke", seeds=(0, 1))
    rows = study.run_study(settings, out, log=lambda _: None)
    after = [json.loads(line) for line in log.read_text().splitlines()][len(before):]
    return out, rows, before, after


@pytest.mark.slow
def test_a_killed_study_resumes_without_redoing_a_finished_run(finished_study):
    out, rows, before, after = finished_study
    finished = [e["unit"] for e in before if e["status"] == "done"]
    assert len(finished) >= 3
    for unit in finished:  # skipped on the second run, never trained again
        assert {"unit": unit, "status": "skipped (finished)"} in after
        assert not any(e["unit"] == unit and e["status"] == "done" for e in after)
    done = [e["unit"] for e in before + after if e["status"] == "done"]
    assert sorted(done) == sorted(u.key for u in study.plan(study.StudySettings.from_preset("smoke", seeds=(0, 1)), out))


@pytest.mark.slow
def test_every_row_kind(finished_study):
    out, rows, _, _ = finished_study
    assert {r["seed"] for r in rows} == {0, 1}
    assert {r["claim"] for r in rows} == set(study.CLAIMS)
    metrics = {r["metric"] for r in rows}
    assert {"choice_accuracy", "format_rate", "reward_final", "reward_step_sd", "kl_mean", "kept_groups",
            "mcnemar_p", "a_right_b_wrong", "b_right_a_wrong", "questions"} <= metrics
    assert {"center_error_m"} <= metrics  # the oracle's
    assert {r["run"] for r in rows} >= {*study.RL_RUNS, "baselines", "joint vs lor_only", "joint vs no_detect"}
    assert set(rows[0]) == {"claim", "run", "seed", "model", "path", "split", "category", "metric", "value"}
    assert json.loads((out / "results" / "seed1.json").read_text()) == [r for r in rows if r["seed"] == 1]
    # the no-detect run trained without the detection reward, the joint one with it
    joint = json.loads((out / "seed0" / "grpo" / "joint" / "log_history.json").read_text())
    no_detect = json.loads((out / "seed0" / "grpo" / "no_detect" / "log_history.json").read_text())
    assert any("rewards/detect/mean" in h for h in joint)
    assert not any("rewards/detect/mean" in h for h in no_detect)


@pytest.mark.slow
def test_the_page_is_made_from_the_rows_alone_and_deterministically(finished_study, tmp_path):
    out, rows, _, _ = finished_study
    a, b = tmp_path / "a.md", tmp_path / "b.md"
    assert cli.main(["study", "page", "--results", str(out / "results"), "--out", str(a)]) == 0
    assert cli.main(["study", "page", "--results", str(out / "results"), "--out", str(b)]) == 0
    assert a.read_bytes() == b.read_bytes() == study.page(rows).encode()
    text = a.read_text()
    for claim in study.CLAIMS:
        assert f"## Claim {claim}:" in text
    assert "workbench study claims" in text.splitlines()[5]  # the command that regenerates it, at the top
    assert cli.main(["study", "page", "--results", str(tmp_path / "none"), "--out", str(tmp_path / "c.md")]) == 2


@pytest.mark.slow
def test_notebook_07_runs_the_study(finished_study, tmp_path):
    import papermill as pm

    out, rows, _, _ = finished_study
    executed = tmp_path / "07.ipynb"
    pm.execute_notebook(str(ROOT / "notebooks" / "07_claims.ipynb"), str(executed), cwd=str(ROOT),
                        parameters={"preset": "smoke", "seeds": "0,1", "out": str(out),
                                    "page_out": str(tmp_path / "RESULTS.md")}, progress_bar=False)
    assert (tmp_path / "RESULTS.md").read_text() == study.page(rows)
