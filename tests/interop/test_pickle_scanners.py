"""modelsign's pickle analyser on the pickle corpus, and beside picklescan and modelscan.

Every malicious corpus file is flagged dangerous, naming the globals it uses; no
benign file (real checkpoints) is flagged at all: each is ``safe``. Whatever
picklescan or modelscan flags dangerous, modelsign flags too; and every global
either blocks, modelsign classifies dangerous. ``tools/compare_pickle_scanners.py``
prints the README's confusion table from the same corpus and adapters.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from modelsign._internal.formats.pickle_allow import classify
from tests.helpers import pickle_scanners as sc
from tests.helpers.pickle_corpus import CorpusFile, CorpusSpec, corpus_specs, modelsign_verdict

SPECS = corpus_specs()
MALICIOUS = [s for s in SPECS if s.kind == "malicious"]
BENIGN = [s for s in SPECS if s.kind == "benign"]
Build = Callable[[CorpusSpec], CorpusFile]
NO_MODELSCAN = (
    "modelscan is not installed (make install-test makes .venv-modelscan; or set $MODELSCAN)"
)


def _ids(spec: CorpusSpec) -> str:
    return spec.name


@pytest.fixture(scope="module")
def corpus_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("pickle-corpus")


@pytest.fixture(scope="module")
def build(corpus_root: Path) -> Build:
    """A corpus file, written once per module; skipped if what it needs is missing."""
    cache: dict[str, CorpusFile] = {}

    def get(spec: CorpusSpec) -> CorpusFile:
        if not spec.available:
            pytest.skip(f"{spec.name} needs {', '.join(spec.needs)}, not installed")
        if spec.name not in cache:
            cache[spec.name] = spec.build(corpus_root)
        return cache[spec.name]

    return get


def test_the_corpus_is_large_enough() -> None:
    assert len(MALICIOUS) >= 60 and len(BENIGN) >= 20
    assert len({s.name for s in SPECS}) == len(SPECS)
    assert all(s.expect for s in MALICIOUS) and not any(s.expect for s in BENIGN)


# -- (a) and (b): modelsign alone ------------------------------------------------------


@pytest.mark.parametrize("spec", MALICIOUS, ids=_ids)
def test_modelsign_flags_every_malicious_file_naming_its_globals(
    spec: CorpusSpec, build: Build
) -> None:
    verdict, names = modelsign_verdict(build(spec).path)
    assert verdict == "dangerous"
    assert spec.expect <= names, f"not named: {sorted(spec.expect - names)}"


@pytest.mark.parametrize("spec", BENIGN, ids=_ids)
def test_modelsign_finds_every_benign_checkpoint_safe(spec: CorpusSpec, build: Build) -> None:
    # Stricter than "not dangerous": no benign file has even an unknown global.
    assert modelsign_verdict(build(spec).path) == ("safe", set())


# -- (c): whatever picklescan or modelscan flags, modelsign flags ----------------------


def test_every_global_picklescan_blocks_is_dangerous_to_modelsign() -> None:
    if not sc.picklescan_available():
        pytest.skip("picklescan is not installed (pip install -e '.[test]')")
    from picklescan.scanner import _unsafe_globals  # private; the version is pinned

    assert len(_unsafe_globals) > 50
    for module, names in _unsafe_globals.items():
        for name in _names(names):
            assert classify(module, name) == "dangerous", f"{module}.{name}"


def _names(names: str | list[str] | set[str]) -> list[str]:
    """The names a scanner's table entry blocks: ``*`` (every name) or some."""
    if names == "*":
        return ["anything", "system"]
    return [names] if isinstance(names, str) else sorted(names)


def test_the_picklescan_adapter_sees_what_picklescan_flags(build: Build) -> None:
    if not sc.picklescan_available():
        pytest.skip("picklescan is not installed (pip install -e '.[test]')")
    spec = next(s for s in MALICIOUS if s.name == "p0_os_system.pkl")
    assert sc.run_picklescan(build(spec).path) == sc.Result(
        "dangerous", "dangerous", frozenset({"os.system"})
    )


@pytest.mark.parametrize("spec", SPECS, ids=_ids)
def test_modelsign_flags_whatever_picklescan_flags(spec: CorpusSpec, build: Build) -> None:
    if not sc.picklescan_available():
        pytest.skip("picklescan is not installed (pip install -e '.[test]')")
    path = build(spec).path
    if sc.run_picklescan(path).outcome == "dangerous":
        assert sc.run_modelsign(path).outcome == "dangerous"


@pytest.mark.slow  # modelscan runs as a command
def test_every_global_modelscan_blocks_is_dangerous_to_modelsign() -> None:
    if sc.modelscan_python() is None:
        pytest.skip(NO_MODELSCAN)
    table = sc.modelscan_unsafe_globals()
    assert set(table) >= {"CRITICAL", "HIGH"}
    for modules in table.values():
        for module, names in modules.items():
            for name in _names(names):
                assert classify(module, name) == "dangerous", f"{module}.{name}"


@pytest.mark.slow  # modelscan runs as a command, over the whole corpus at once
@pytest.mark.torch  # the corpus holds torch checkpoints when torch imports
def test_modelsign_flags_whatever_modelscan_flags(build: Build, corpus_root: Path) -> None:
    if sc.modelscan_command() is None:
        pytest.skip(NO_MODELSCAN)
    files = [build(s) for s in SPECS if s.available]
    results = sc.run_modelscan(corpus_root, [f.name for f in files])
    flagged = [f for f in files if results[f.name].outcome == "dangerous"]
    assert len(flagged) >= 40  # modelscan did run and read its report
    missed = [f.name for f in flagged if sc.run_modelsign(f.path).outcome != "dangerous"]
    assert missed == []
    assert not [f.name for f in flagged if f.kind == "benign"]
