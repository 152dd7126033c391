"""Tier 3: every notebook in notebooks/ runs headlessly under papermill on its smoke defaults.

The notebooks run in order in one temporary run folder, as `workbench run` runs them, so a
later notebook finds the earlier one's outputs; each also regenerates missing inputs itself.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("[0-9][0-9]_*.ipynb"))


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("notebook_run")


def test_notebooks_exist_and_are_stripped():
    assert NOTEBOOKS, "no numbered notebooks in notebooks/"
    for nb in NOTEBOOKS:
        cells = json.loads(nb.read_text())["cells"]
        code = [c for c in cells if c["cell_type"] == "code"]
        assert all(not c.get("outputs") and not c.get("execution_count") for c in code), f"{nb.name} has outputs"
        tagged = [c for c in code if "parameters" in c.get("metadata", {}).get("tags", [])]
        assert len(tagged) == 1, f"{nb.name} needs exactly one cell tagged 'parameters'"
        assert code.index(tagged[0]) == 0, f"{nb.name}: the parameters cell must be the first code cell"


@pytest.mark.slow
@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=[nb.stem for nb in NOTEBOOKS])
def test_notebook_runs(notebook, run_dir):
    import papermill as pm

    out = run_dir / "executed" / notebook.name
    out.parent.mkdir(exist_ok=True)
    pm.execute_notebook(
        str(notebook),
        str(out),
        parameters={"profile": "smoke", "run_dir": str(run_dir), "seed": 0},
        kernel_name="python3",
        cwd=str(notebook.parent),
        progress_bar=False,
    )
    executed = json.loads(out.read_text())
    errors = [o for c in executed["cells"] for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors, f"{notebook.name}: {errors[0].get('ename')}: {errors[0].get('evalue')}"
