"""``tools/check_structure.py``: module and function lengths and the size of the public API —
and the repository itself within them."""

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


def function(path: Path, body_lines: int, *, decorated: bool = False) -> Path:
    """A module holding one function ``f`` of ``body_lines`` + 1 lines (and maybe a decorator)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    head = "@staticmethod\n" if decorated else ""
    body = "".join(f"    x{i} = {i}\n" for i in range(body_lines))
    path.write_text(f"{head}def f() -> None:\n{body}")
    return path


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
    assert check_lengths(lengths, 600, "a module") == [
        "tools/long.py: a module of 601 lines, over the limit of 600: split it"
    ]


def test_a_function_over_the_limit_is_named(tmp_path: Path) -> None:
    root = package(tmp_path, ["a"], {})
    function(root / "modelsign" / "ok.py", 59, decorated=True)  # 60 lines from def
    function(root / "tools" / "long.py", 60)  # 61 lines
    lengths = check_structure.function_lengths(root)
    assert lengths == {"modelsign/ok.py:2 f": 60, "tools/long.py:1 f": 61}
    assert check_lengths(lengths, 60, "a function") == [
        "tools/long.py:1 f: a function of 61 lines, over the limit of 60: split it"
    ]


def test_public_names_over_the_limit(tmp_path: Path) -> None:
    names = [f"n{i}" for i in range(31)]
    root = package(tmp_path, names, {})
    assert public_names(root / "modelsign" / "__init__.py") == names
    assert check_public_names(names[:30]) == []
    (problem,) = check_public_names(names)
    assert problem.startswith("modelsign.__all__: 31 names, over the limit of 30")


def test_a_non_literal_all_is_refused(tmp_path: Path) -> None:
    init = tmp_path / "__init__.py"
    init.write_text("__all__ = sorted(globals())\n")
    with pytest.raises(ValueError, match="no literal __all__"):
        public_names(init)


def test_main_reports_each_offender(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = package(tmp_path, [f"n{i}" for i in range(31)], {"tools/long.py": 700})
    function(root / "modelsign" / "f.py", 70)
    assert check_structure.main(["--root", str(root)]) == 1
    err = capsys.readouterr().err
    assert "structure: tools/long.py: a module of 700 lines, over the limit of 600" in err
    assert "structure: modelsign/f.py:1 f: a function of 71 lines, over the limit of 60" in err
    assert "structure: modelsign.__all__: 31 names, over the limit of 30" in err


def test_the_repository_is_within_its_limits(capsys: pytest.CaptureFixture[str]) -> None:
    assert check_structure.main(["--root", str(ROOT)]) == 0, capsys.readouterr().err
    assert capsys.readouterr().out.startswith("structure: ok: ")
