"""The public API: a small ``__all__``, every name importable, moved names deprecated."""

from __future__ import annotations

import importlib

import pytest

import modelsign

PUBLIC_SUBPACKAGES = (
    "modelsign.load",
    "modelsign.guard",
    "modelsign.policy",
    "modelsign.inventory",
    "modelsign.watch",
    "modelsign.diff",
    "modelsign.sbom",
    "modelsign.provenance",
)


def test_all_is_small_and_every_name_resolves() -> None:
    assert len(modelsign.__all__) <= 30
    assert len(set(modelsign.__all__)) == len(modelsign.__all__)
    for name in modelsign.__all__:
        assert getattr(modelsign, name) is not None, name


@pytest.mark.parametrize("module", PUBLIC_SUBPACKAGES)
def test_public_subpackages_list_their_api(module: str) -> None:
    mod = importlib.import_module(module)
    names = mod.__all__
    assert names, module
    for name in names:
        assert hasattr(mod, name), f"{module}.{name}"


@pytest.mark.parametrize("name", sorted(modelsign._MOVED))
def test_moved_names_still_import_with_a_warning(name: str) -> None:
    home = importlib.import_module(modelsign._MOVED[name])
    with pytest.warns(DeprecationWarning, match=name):
        value = getattr(modelsign, name)
    assert value is getattr(home, name)
    assert name not in modelsign.__all__


def test_unknown_names_are_attribute_errors() -> None:
    with pytest.raises(AttributeError, match="no_such_name"):
        modelsign.no_such_name  # noqa: B018


def test_the_version_has_one_source() -> None:
    """``modelsign.__version__`` is ``_version``'s; the built wheel's metadata has it too
    (tests/test_packaging.py), read from there by pyproject.toml."""
    from modelsign._version import __version__

    assert modelsign.__version__ == __version__


def test_modelsign_warning_is_the_loaders_warning() -> None:
    from modelsign.load import ModelsignWarning

    assert ModelsignWarning is modelsign.ModelsignWarning
    assert issubclass(modelsign.ModelsignWarning, UserWarning)
