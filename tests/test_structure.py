"""``tools/check_structure.py``: module lengths and the size of the public API, with allowlists
that only shrink — and the repository itself within them."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers.paths import ROOT
from tools import check_structure
from tools.check_structure import check_lengths, check_public_names, line_count, public_names


def write_lines(path: Path, n: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"x{i} = {i}\n" for i in range(n)))
    return path


def package(root: Path, names: list[str], lines: dict[str, int]) -> Path:
    """A repository with ``modelsign/__init__.py`` exporting ``names`` and modules of ``lines``."""
    init = root / "modelsign" / "__init__.py"
    init.parent.mkdir(parents=True)
    init.write_text(f'"""A package."""\n\n__all__ = {names!r}\n')
    for rel, n in lines.items():
        write_lines(root / rel, n)
    return root


def test_line_count_is_what_wc_counts(tmp_path: Path) -> None:
    assert line_count(write_lines(tmp_path / "a.py", 3)) == 3
    (tmp_path / "b.py").write_text("a\nb")  # no newline after the last line
    assert line_count(tmp_path / "b.py") == 2
    (tmp_path / "c.py").write_text("")
    assert line_count(tmp_path / "c.py") == 0


def test_a_module_over_the_limit_is_named(tmp_path: Path) -> None:
    root = package(tmp_path, ["a"], {"modelsign/ok.py": 600, "tools/long.py": 601})
    lengths = check_structure.module_lengths(root)
    assert lengths == {"modelsign/__init__.py": 3, "modelsign/ok.py": 600, "tools/long.py": 601}
    assert check_lengths(lengths, allowed={}) == [
        "tools/long.py: 601 lines, over the limit of 600: split it"
    ]


def test_the_length_allowlist_only_shrinks() -> None:
    allowed = {"modelsign/big.py": 700, "modelsign/shrunk.py": 650, "modelsign/gone.py": 900}
    lengths = {"modelsign/big.py": 700, "modelsign/shrunk.py": 600, "modelsign/new.py": 10}
    assert check_lengths(lengths, allowed) == [
        "modelsign/shrunk.py: 600 lines, within the limit of 600 now: "
        "remove it from LONG_MODULES in tools/check_structure.py",
        "modelsign/gone.py: listed in LONG_MODULES but gone: remove the entry",
    ]
    assert check_lengths({"modelsign/big.py": 650}, {"modelsign/big.py": 700}) == []
    assert check_lengths({"modelsign/big.py": 701}, {"modelsign/big.py": 700}) == [
        "modelsign/big.py: 701 lines, grown past the 700 it is allowed while it is over the "
        "limit of 600: split it"
    ]


def test_public_names_over_the_limit(tmp_path: Path) -> None:
    names = [f"n{i}" for i in range(31)]
    root = package(tmp_path, names, {})
    assert public_names(root / "modelsign" / "__init__.py") == names
    assert check_public_names(names[:30], allowed=frozenset()) == []
    (problem,) = check_public_names(names, allowed=frozenset())
    assert problem.startswith("modelsign.__all__: 31 names, over the limit of 30, and n0, n1,")
    assert check_public_names(names, allowed=frozenset(names)) == []
    # Over the limit, a new name is refused even if another left (which is reported too).
    new, gone = check_public_names([*names[1:], "extra"], allowed=frozenset(names))
    assert new.endswith(
        "and extra not among those allowed today: keep the API small "
        "(make the name private, or drop another)"
    )
    assert gone.startswith("modelsign.__all__ no longer lists n0: remove")
    assert check_public_names(names, allowed=frozenset([*names, "z"])) == [
        "modelsign.__all__ no longer lists z: remove from PUBLIC_NAMES_OVER_LIMIT in "
        "tools/check_structure.py"
    ]
    assert check_public_names(names[:30], allowed=frozenset(names)) == [
        "modelsign.__all__: 30 names, within the limit of 30: "
        "empty PUBLIC_NAMES_OVER_LIMIT in tools/check_structure.py"
    ]


def test_a_non_literal_all_is_refused(tmp_path: Path) -> None:
    init = tmp_path / "__init__.py"
    init.write_text("__all__ = sorted(globals())\n")
    with pytest.raises(ValueError, match="no literal __all__"):
        public_names(init)


def test_main_reports_each_offender(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = package(tmp_path, ["a"], {"tools/long.py": 700})
    assert check_structure.main(["--root", str(root)]) == 1
    err = capsys.readouterr().err
    assert "structure: tools/long.py: 700 lines, over the limit of 600: split it" in err
    assert "LONG_MODULES but gone" in err  # the real allowlist names modules not in tmp_path


def test_the_repository_is_within_its_limits(capsys: pytest.CaptureFixture[str]) -> None:
    assert check_structure.main(["--root", str(ROOT)]) == 0, capsys.readouterr().err
    assert capsys.readouterr().out.startswith("structure: ok: ")
