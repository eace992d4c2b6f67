"""Structural limits the code is held to, run by ``make structure`` (and so ``make test``).

- No module under ``modelsign/`` or ``tools/`` is longer than ``MAX_LINES`` lines.
- No function there is longer than ``MAX_FUNCTION_LINES`` lines, from ``def`` to its
  last line, docstring included (decorators, such as a command's click options,
  declare an interface and are not counted); ruff holds branches, statements and
  complexity.
- ``modelsign.__all__`` (the public API) lists at most ``MAX_PUBLIC_NAMES`` names.

Exit status 0 when every limit holds; 1, naming each offender, otherwise.
"""

from __future__ import annotations

import argparse
import ast
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHECKED_DIRS = ("modelsign", "tools")
MAX_LINES = 600
MAX_FUNCTION_LINES = 60
MAX_PUBLIC_NAMES = 30


def line_count(path: Path) -> int:
    """Lines as ``wc -l`` counts them, plus a last line without its newline."""
    data = path.read_bytes()
    return data.count(b"\n") + (1 if data and not data.endswith(b"\n") else 0)


def _sources(root: Path, dirs: Sequence[str]) -> list[Path]:
    return [
        path
        for name in dirs
        for path in sorted((root / name).rglob("*.py"))
        if "__pycache__" not in path.parts
    ]


def module_lengths(root: Path, dirs: Sequence[str] = CHECKED_DIRS) -> dict[str, int]:
    """Every ``.py`` file under ``dirs`` of ``root``: its POSIX path relative to root, its lines."""
    return {p.relative_to(root).as_posix(): line_count(p) for p in _sources(root, dirs)}


def function_lengths(root: Path, dirs: Sequence[str] = CHECKED_DIRS) -> dict[str, int]:
    """``path:line name`` of every function and method under ``dirs``: its length in lines."""
    found: dict[str, int] = {}
    for path in _sources(root, dirs):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                end = node.end_lineno or node.lineno
                where = f"{path.relative_to(root).as_posix()}:{node.lineno} {node.name}"
                found[where] = end - node.lineno + 1
    return found


def check_lengths(lengths: Mapping[str, int], limit: int, what: str) -> list[str]:
    """One message per entry over ``limit``."""
    return [
        f"{where}: {what} of {n} lines, over the limit of {limit}: split it"
        for where, n in sorted(lengths.items())
        if n > limit
    ]


def public_names(init: Path) -> list[str]:
    """The literal ``__all__`` of a package's ``__init__.py`` (read, not imported)."""
    tree = ast.parse(init.read_text(encoding="utf-8"), filename=str(init))
    for node in tree.body:
        if not isinstance(node, ast.Assign):
            continue
        if any(isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets):
            try:
                value = ast.literal_eval(node.value)
            except ValueError:
                break
            if isinstance(value, list | tuple) and all(isinstance(n, str) for n in value):
                return list(value)
    raise ValueError(f"{init}: no literal __all__ list of names")


def check_public_names(names: Sequence[str], limit: int = MAX_PUBLIC_NAMES) -> list[str]:
    """One message if ``__all__`` is over ``limit``."""
    if len(names) <= limit:
        return []
    return [
        f"modelsign.__all__: {len(names)} names, over the limit of {limit}: keep the API "
        "small (move the name to a public subpackage, make it private, or drop another)"
    ]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--root", type=Path, default=ROOT, help="the repository (default: this)")
    args = parser.parse_args(argv)
    root: Path = args.root
    modules = module_lengths(root)
    functions = function_lengths(root)
    names = public_names(root / "modelsign" / "__init__.py")
    problems = (
        check_lengths(modules, MAX_LINES, "a module")
        + check_lengths(functions, MAX_FUNCTION_LINES, "a function")
        + check_public_names(names)
    )
    for problem in problems:
        print(f"structure: {problem}", file=sys.stderr)
    if problems:
        return 1
    longest = max(modules.items(), key=lambda item: item[1])
    longest_fn = max(functions.items(), key=lambda item: item[1])
    print(
        f"structure: ok: {len(modules)} modules (longest {longest[0]}, {longest[1]} lines), "
        f"{len(functions)} functions (longest {longest_fn[0]}, {longest_fn[1]} lines); "
        f"modelsign.__all__ {len(names)} names"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
