"""`workbench.compat`: every library internal it names resolves on the pinned versions, and a
moved internal or another version fails or warns with a message naming the package."""

from __future__ import annotations

import warnings

import pytest

from workbench import compat


@pytest.mark.parametrize("name", sorted(compat._INTERNAL_NAMES))
def test_every_internal_resolves_on_the_pinned_versions(name):
    assert getattr(compat, name) is not None


def test_the_pins_are_the_installed_versions():
    for package, version in compat.WRITTEN_FOR.items():
        assert compat.installed_version(package) == version, package


def test_unknown_names_and_missing_hooks_fail_clearly():
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        compat.nope  # noqa: B018
    from trl import GRPOTrainer

    compat.require_hooks(GRPOTrainer)
    with pytest.raises(ImportError, match=r"_generate_and_score_completions.*written for trl"):
        compat.require_hooks(object)


def test_a_moved_internal_names_the_package_and_version(monkeypatch):
    monkeypatch.setitem(compat._INTERNAL_NAMES, "Gone", ("trl", "trl.trainer.utils", "no_such_helper"))
    with pytest.raises(ImportError, match=r"trl\.trainer\.utils\.no_such_helper is gone in trl"):
        compat.Gone  # noqa: B018


def test_another_version_warns_once(monkeypatch):
    monkeypatch.setitem(compat.WRITTEN_FOR, "plotly", "0.0.1")
    monkeypatch.setattr(compat, "_checked", set())
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        compat.check_version("plotly")
        compat.check_version("plotly")
    assert len(caught) == 1 and "plotly==0.0.1" in str(caught[0].message)


def test_quiet_known_warnings_silences_only_the_listed_ones():
    import warnings

    from workbench import compat

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        compat.quiet_known_warnings()
        warnings.warn("`is_gradient_checkpointing` is deprecated and will be removed in v6.", FutureWarning, stacklevel=1)
        warnings.warn("something else is deprecated", FutureWarning, stacklevel=1)
    assert [str(w.message) for w in caught] == ["something else is deprecated"]
