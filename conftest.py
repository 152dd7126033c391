"""Shared fixtures of the suite (tests/, experiments/ and the doctests of workbench/). The
expensive ones (a smoke dataset, a smoke run of all notebooks) are session-scoped so the suite
pays for each once."""

from __future__ import annotations

import os

import pytest

# Tests run on 2 cores: keep torch from oversubscribing them, and never reach for a hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory):
    """`workbench run --profile smoke` into a temporary folder: (run folder, manifest)."""
    from workbench.run import RunSettings, run

    out = tmp_path_factory.mktemp("smoke_run") / "run"
    manifest = run(RunSettings(profile="smoke", out=str(out)), progress=False)
    return out, manifest


@pytest.fixture(scope="session")
def smoke_data(tmp_path_factory):
    """Folder of a `smoke`-profile dataset (`workbench data --profile smoke`), built once per session."""
    from workbench.dataset import DataSettings, build_dataset

    out = tmp_path_factory.mktemp("smoke_data") / "data"
    build_dataset(DataSettings.from_profile("smoke"), out, progress=False)
    return out


def pytest_collection_modifyitems(config, items):
    """Tests marked `gpu` are skipped, with the reason, where torch sees no CUDA GPU (torch is
    imported only when such a test was collected)."""
    gpu = [item for item in items if item.get_closest_marker("gpu")]
    if not gpu:
        return
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU: torch.cuda.is_available() is False")
    for item in gpu:
        item.add_marker(skip)
