"""Tier 3: every notebook in notebooks/ runs headlessly under papermill on its smoke defaults.

The notebooks run in order in one run folder, exactly as `workbench run` runs them (the
`smoke_run` fixture), so a later notebook finds the earlier one's outputs.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from workbench.run import STAGES

NOTEBOOK_DIR = Path(__file__).resolve().parents[1] / "notebooks"
ALL_NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("[0-9][0-9]_*.ipynb"))
STUDY_NOTEBOOKS = ("07_claims.ipynb",)
"""Numbered notebooks outside `workbench run`: the claims study (hours of runs; tests/test_study.py
executes it on a smoke study)."""
NOTEBOOKS = [nb for nb in ALL_NOTEBOOKS if nb.name not in STUDY_NOTEBOOKS]


def test_every_notebook_is_a_stage_and_stripped():
    assert [nb.name for nb in NOTEBOOKS] == [notebook for _, notebook in STAGES]
    assert [nb.name for nb in ALL_NOTEBOOKS] == [notebook for _, notebook in STAGES] + list(STUDY_NOTEBOOKS)
    for nb in ALL_NOTEBOOKS:
        cells = json.loads(nb.read_text())["cells"]
        title = "".join(cells[0]["source"]).splitlines()[0]
        assert title.startswith(f"# {nb.name[:2]} · "), f"{nb.name}: its title is numbered {title!r}"
        code = [c for c in cells if c["cell_type"] == "code"]
        assert all(not c.get("outputs") and not c.get("execution_count") for c in code), f"{nb.name} has outputs"
        tagged = [c for c in code if "parameters" in c.get("metadata", {}).get("tags", [])]
        assert len(tagged) == 1, f"{nb.name} needs exactly one cell tagged 'parameters'"
        assert code.index(tagged[0]) == 0, f"{nb.name}: the parameters cell must be the first code cell"
        source = "".join(tagged[0]["source"])
        if nb.name in STUDY_NOTEBOOKS:
            assert 'preset = "smoke"' in source and "seeds =" in source and "out =" in source, nb.name
            continue
        for name in ("profile", "run_dir", "seed", "model"):
            assert f"{name} =" in source, f"{nb.name}: parameters cell lacks {name!r}"
        assert 'profile = "smoke"' in source, f"{nb.name}: parameter defaults must be the smoke profile"


MAX_DISPLAYS_PER_CELL = 8
"""Bounded outputs: notebook 01 once showed 84 from one cell and notebook 03 17; questions with
their traces are now one folded output (`viz.examples_html`, `viz.answers_html`)."""


@pytest.mark.slow
@pytest.mark.parametrize("notebook", [nb.name for nb in NOTEBOOKS])
def test_notebook_executes_without_errors(notebook, smoke_run):
    out, manifest = smoke_run
    executed = json.loads((out / "notebooks" / notebook).read_text())
    code = [c for c in executed["cells"] if c["cell_type"] == "code"]
    assert all(c.get("execution_count") for c in code), f"{notebook}: not every cell ran"
    errors = [o for c in code for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors, f"{notebook}: {errors[0].get('ename')}: {errors[0].get('evalue')}"
    shown = [sum(o.get("output_type") == "display_data" for o in c.get("outputs", [])) for c in code]
    assert max(shown) <= MAX_DISPLAYS_PER_CELL, (
        f"{notebook}: a cell shows {max(shown)} outputs; fold them into one (e.g. viz.examples_html)")
    # a saved notebook has no widget state: widgets are static snapshots, library progress bars off
    widgets = [o["data"].get("text/plain", "")[:60] for c in code for o in c.get("outputs", [])
               if "application/vnd.jupyter.widget-view+json" in o.get("data", {})]
    assert not widgets, f"{notebook}: widget outputs saved without state: {widgets}"


def test_jupyterlab_starts_without_the_build_dialog():
    """scripts/setup.sh turns off JupyterLab's build check (open3d's dash dependency brings a
    source extension that would ask for a rebuild on every launch)."""
    from jupyterlab_server.config import get_static_page_config

    config = get_static_page_config(level="all")
    assert config.get("buildCheck") is False and config.get("buildAvailable") is False


def test_jupyterlab_does_not_ask_about_the_news_feed():
    """scripts/setup.sh sets JupyterLab's news and update checks off by default (a first launch
    otherwise opens with a toast asking whether to fetch the Jupyter news)."""
    import sys

    path = Path(sys.prefix) / "share" / "jupyter" / "lab" / "settings" / "overrides.json"
    notification = json.loads(path.read_text())["@jupyterlab/apputils-extension:notification"]
    assert notification == {"fetchNews": "false", "checkForUpdates": False}
