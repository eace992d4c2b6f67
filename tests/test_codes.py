"""Codes are a public interface: one registered enum, the README's table, every code position.

- every member is its own string, with a category and the exit code the category gives;
- the README's error-code table lists exactly the members, with their categories and exit
  codes;
- every code-looking string in a code position of the package source is a member (so paths
  no test runs are checked too);
- the inventory judges a model by its codes' categories, and every category has a verdict.
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from modelsign.codes import Category, Code
from modelsign.inventory.check import VERDICTS, verdict

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "modelsign"

EXIT_CODES = {
    **dict.fromkeys(
        [
            Category.USAGE,
            Category.INPUT,
            Category.CONFIG,
            Category.SERVICE,
            Category.DISCOVERY,
            Category.FORMAT,
            Category.MANIFEST,
            Category.LOAD,
        ],
        2,
    ),
    **dict.fromkeys([Category.SIGNATURE, Category.CONTENT, Category.POLICY, Category.CHANGE], 1),
    **dict.fromkeys([Category.NOTE, Category.FINDING], 0),
    Category.INTERNAL: 3,
    Category.INTERRUPTED: 130,
}


# -- the enum -----------------------------------------------------------------------------


def test_every_code_is_its_own_string_with_a_category_and_an_exit_code() -> None:
    assert len(Code) == len({c.value for c in Code})  # no aliases
    for code in Code:
        assert code.name == code.value == str(code) == f"{code}"
        assert re.fullmatch(r"[A-Z][A-Z0-9]*(_[A-Z0-9]+)*", code.value)
        assert isinstance(code.category, Category)
        assert code.exit_code == code.category.exit_code == EXIT_CODES[code.category]
        assert Code(code.value) is code
    assert set(EXIT_CODES) == set(Category)


def test_a_code_is_a_plain_string_in_text_and_json() -> None:
    code = Code.FILE_MODIFIED
    assert code == "FILE_MODIFIED" and isinstance(code, str)
    assert f"[{code}] [{code:>15}]" == "[FILE_MODIFIED] [  FILE_MODIFIED]"
    assert json.dumps({"code": code}) == '{"code": "FILE_MODIFIED"}'
    assert {"FILE_MODIFIED": 1}[code] == 1
    assert (code.category, code.exit_code) == (Category.CONTENT, 1)
    assert (Code.USAGE.exit_code, Code.PICKLE_UNSAFE.exit_code) == (2, 0)


@pytest.mark.parametrize("text", ["NOT_A_CODE", "file_modified", "", "FILE_MODIFIED "])
def test_a_string_that_is_no_code_is_refused(text: str) -> None:
    with pytest.raises(ValueError):
        Code(text)


def test_split_meanings_have_their_own_codes() -> None:
    """Codes that had two meanings: one kept the string, the other has a new code."""
    assert (Code.CERT_INVALID.category, Code.CERT_MALFORMED.category) == (
        Category.CONFIG,  # a certificate file given (--cert, --cert-chain, a policy's roots)
        Category.SIGNATURE,  # a certificate carried in the signature
    )
    assert (Code.FILE_MISSING.category, Code.NOTHING_TO_LOAD.category) == (
        Category.CONTENT,  # a signed file is missing
        Category.LOAD,  # the loader has no file left to load
    )
    assert (Code.FILE_CHANGED.category, Code.FILE_MODIFIED.category) == (
        Category.DISCOVERY,  # a file changed while being read
        Category.CONTENT,  # content differs from the signed (or, in a diff, the old) one
    )


# -- the inventory judges by category -------------------------------------------------------


def test_every_category_and_so_every_code_has_an_inventory_verdict() -> None:
    assert set(VERDICTS) == set(Category)
    assert {verdict(c) for c in Code} == {"tampered", "untrusted", "config"}


# What the inventory decided by code prefix before: the codes a verification can report or a
# scan can raise keep their verdict.
_WAS_CONTENT = {
    "HEADER_MODIFIED", "METADATA_MODIFIED", "GGUF_KV_MODIFIED", "CHAT_TEMPLATE_MODIFIED",
    "FORMAT_CHANGED", "SIGNATURE_FOR_FILE", "SIGNATURE_FOR_FOLDER", "SPECIAL_FILE", "BAD_NAME",
    "EMPTY_MODEL", "TRUNCATED", "HEADER_TOO_LARGE", "LAYOUT_GAP",
}  # fmt: skip
_WAS_CONTENT_PREFIXES = ("FILE_", "TENSOR_", "SYMLINK_", "SAFETENSORS_", "GGUF_")
_WAS_CONFIG = {"NO_TRUST_ROOT", "USAGE", "BAD_REGEX", "PASSWORD_ENV_UNSET"}
_WAS_CONFIG_PREFIXES = ("KEY_", "CERT_", "TRUST_", "POLICY_")


def test_the_inventory_verdicts_the_prefixes_gave_are_kept() -> None:
    # Never a verification problem: findings, notes (of severity info, or LEGACY_SIGNATURE,
    # always untrusted) and diff changes; raised only inside a verification, where they are
    # problems: the signature and policy codes.
    never = {Category.FINDING, Category.NOTE, Category.CHANGE}
    for code in Code:
        if code.category in never:
            continue
        was_content = code in _WAS_CONTENT or code.startswith(_WAS_CONTENT_PREFIXES)
        if was_content:
            assert verdict(code) == "tampered", code
        was_config = code in _WAS_CONFIG or code.startswith(_WAS_CONFIG_PREFIXES)
        if was_config and code.category not in (Category.SIGNATURE, Category.POLICY):
            assert verdict(code) == "config", code
    # the changes, on purpose: a broken TSA chain in the policy is the policy's fault
    assert verdict("TSA_CHAIN_INVALID") == "config"
    assert verdict("UNREADABLE") == "untrusted"  # as before: a file it cannot open


# -- every code position in the package holds a registered code -------------------------------

CODE_LIKE = re.compile(r"[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+|[A-Z]{4,}")
CODE_PREFIX = re.compile(r"([A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+): ")  # "FILE_EXTRA: a.bin: ..."
CODE_PARAMS = {"code", "missing"}  # parameters that take a code


def _strings(node: ast.AST) -> Iterator[ast.Constant]:
    """The string literals in ``node``, and each ``Code.X`` as if it were ``"X"``."""
    for sub in ast.walk(node):
        if isinstance(sub, ast.Constant) and isinstance(sub.value, str):
            yield sub
        elif (
            isinstance(sub, ast.Attribute)
            and isinstance(sub.value, ast.Name)
            and sub.value.id == "Code"
        ):
            yield ast.Constant(value=sub.attr, lineno=sub.lineno)


def _names(target: ast.AST) -> list[str]:
    if isinstance(target, ast.Name):
        return [target.id]
    if isinstance(target, ast.Attribute):
        return [target.attr]
    if isinstance(target, ast.Tuple):
        return [n for t in target.elts for n in _names(t)]
    return []


def _is_code_operand(node: ast.AST) -> bool:
    """``x.code``, ``code`` or ``getattr(x, "code", ...)``."""
    if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "getattr":
        node = ast.Attribute(value=node.args[0], attr=getattr(node.args[1], "value", ""))
    return (isinstance(node, ast.Attribute) and node.attr == "code") or (
        isinstance(node, ast.Name) and node.id == "code"
    )


def _code_params(trees: list[ast.Module]) -> dict[str, set[int]]:
    """Functions with a code parameter: their name → the positional indexes it may take."""
    out: dict[str, set[int]] = {}
    for tree in trees:
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                params = [*node.args.posonlyargs, *node.args.args]
                if params and params[0].arg in ("self", "cls"):
                    params = params[1:]
                for i, a in enumerate(params):
                    if a.arg in CODE_PARAMS:
                        out.setdefault(node.name, set()).add(i)
    return out


class _CodeScan(ast.NodeVisitor):
    """Collects code-looking strings from the places a code goes, in one module."""

    def __init__(self, path: Path, tree: ast.Module, by_position: dict[str, set[int]]) -> None:
        self.path = str(path.relative_to(ROOT))
        self.by_position = by_position
        self.found: list[tuple[str, int, str]] = []
        self.assigned = {
            n: node.value
            for node in ast.walk(tree)
            if isinstance(node, ast.Assign)
            for t in node.targets
            for n in _names(t)
        }

    def take(self, nodes: Iterator[ast.Constant] | list[ast.Constant]) -> None:
        for c in nodes:
            if CODE_LIKE.fullmatch(c.value):
                self.found.append((self.path, c.lineno, c.value))

    def visit_For(self, node: ast.For) -> None:
        if "code" in _names(node.target):
            # for code, want, ... in checks: (checks = (("MODEL_NAME_MISMATCH", ...), ...))
            source = node.iter
            if isinstance(source, ast.Name) and source.id in self.assigned:
                source = self.assigned[source.id]
            self.take(_strings(source))
        self.generic_visit(node)

    def visit_Call(self, node: ast.Call) -> None:
        # code="X" (and missing="X"), or a code passed by position to a function
        # whose parameter is a code: _fail(msg, "X"), ctx.fail(msg, problems, "X")
        for kw in node.keywords:
            if kw.arg in CODE_PARAMS:
                self.take(_strings(kw.value))
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
        for i in self.by_position.get(name, ()):
            if i < len(node.args):
                self.take(_strings(node.args[i]))
        self.generic_visit(node)

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        # def _fail(message, code="STATEMENT_INVALID")
        args = node.args
        positional = [*args.posonlyargs, *args.args]
        defaults = list(
            zip(positional[len(positional) - len(args.defaults) :], args.defaults, strict=True)
        )
        defaults += [(a, d) for a, d in zip(args.kwonlyargs, args.kw_defaults, strict=True) if d]
        for a, d in defaults:
            if a.arg in CODE_PARAMS:
                self.take(_strings(d))
        self.generic_visit(node)

    visit_AsyncFunctionDef = visit_FunctionDef

    def _assignment(self, names: list[str], value: ast.expr | None) -> None:
        if value is None:
            return
        # code = "X" (a class's code, or a local), state, code = (..., "X")
        # ChangeCode = Literal[...], _TENSOR_CODES = frozenset({...})
        # HF_NOT_CACHED = "HF_NOT_CACHED" (a constant named after its code)
        if any(n == "code" or n.upper().endswith(("CODE", "CODES")) for n in names):
            self.take(_strings(value))
        elif (
            isinstance(value, ast.Constant)
            and isinstance(value.value, str)
            and value.value in names
        ):
            self.take([value])

    def visit_Assign(self, node: ast.Assign) -> None:
        self._assignment([n for t in node.targets for n in _names(t)], node.value)
        self.generic_visit(node)

    def visit_AnnAssign(self, node: ast.AnnAssign) -> None:
        self._assignment(_names(node.target), node.value)
        self.generic_visit(node)

    def visit_Compare(self, node: ast.Compare) -> None:
        # exc.code == "X", p.code in ("X", "Y"), p.code != "X"
        operands = [node.left, *node.comparators]
        if any(_is_code_operand(o) for o in operands):
            for o in operands:
                self.take(_strings(o))
        self.generic_visit(node)


def code_positions() -> list[tuple[str, int, str]]:
    """(file, line, string) of every code-looking string where a code goes, in the package."""
    files = sorted(p for p in PACKAGE.rglob("*.py") if p.name != "codes.py")
    trees = [ast.parse(p.read_text(encoding="utf-8"), str(p)) for p in files]
    by_position = _code_params(trees)
    found: list[tuple[str, int, str]] = []
    for path, tree in zip(files, trees, strict=True):
        scan = _CodeScan(path, tree, by_position)
        scan.visit(tree)
        found += scan.found
        for c in _strings(tree):
            m = CODE_PREFIX.match(c.value)
            if m is not None:  # text led by a code: "TOO_DEEP: folders nest ..."
                found.append((str(path.relative_to(ROOT)), c.lineno, m.group(1)))
    return found


def _code_references() -> set[str]:
    """``Code.X`` attribute references in the package (outside codes.py)."""
    out: set[str] = set()
    for p in PACKAGE.rglob("*.py"):
        if p.name == "codes.py":
            continue
        for node in ast.walk(ast.parse(p.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id == "Code"
            ):
                out.add(node.attr)
    return out


def test_every_code_in_a_code_position_is_registered() -> None:
    found = code_positions()
    unknown = [f"{f}:{line}: {s}" for f, line, s in found if s not in Code.__members__]
    assert unknown == []
    # the scan sees the ways code is written: keywords, helpers' positions, defaults,
    # comparisons, literals, a class's code, a self-named constant, text led by a code
    seen = {s for _, _, s in found}
    assert {
        "FILE_MODIFIED",  # Problem(code=...)
        "SHARD_GAP",  # _fail(message, "SHARD_GAP")
        "STATEMENT_INVALID",  # def _fail(message, code="STATEMENT_INVALID")
        "PROVENANCE_NOT_FOUND",  # read_signature_file(path, missing=...)
        "KEY_PASSWORD_REQUIRED",  # exc.code != "KEY_PASSWORD_REQUIRED"
        "CERT_NOT_YET_VALID",  # state, code = (...)
        "TENSOR_RETYPED",  # ChangeCode = Literal[...]
        "HF_NOT_CACHED",  # HF_NOT_CACHED = "HF_NOT_CACHED"
        "TOO_DEEP",  # f"TOO_DEEP: folders nest ..."
        "GGUF_BAD_MAGIC",  # self.error(message, "GGUF_BAD_MAGIC")
        "SOURCE_MISMATCH",  # for code, ... in checks: (a table of codes)
    } <= seen
    assert len(seen) > 200


def test_every_registered_code_is_used_by_the_package() -> None:
    used = {s for _, _, s in code_positions()} | _code_references()
    assert sorted(set(Code.__members__) - used) == []


# -- the README's tables ----------------------------------------------------------------------

_ROW = re.compile(
    r"\| (?P<codes>`[A-Z0-9_]+`(?:, `[A-Z0-9_]+`)*) \| (?P<category>[a-z]+)"
    r" \| (?P<exit>[0-9]+) \|"
    r" (?P<meaning>.+) \|"
)
_CATEGORY_ROW = re.compile(r"\| `(?P<category>[a-z]+)` \| (?P<exit>[0-9]+) \| (?P<what>.+) \|")


def _errors_section() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    start = text.index("\n## Errors and exit codes\n")
    end = text.index("\n## ", start + 1)
    return text[start:end].splitlines()


def readme_codes() -> dict[str, tuple[str, int]]:
    """The README's code table: each code with its category and exit code."""
    rows: dict[str, tuple[str, int]] = {}
    for line in _errors_section():
        if not line.startswith("| `") or _CATEGORY_ROW.fullmatch(line):
            continue
        m = _ROW.fullmatch(line)
        assert m is not None, f"not a row of the code table: {line}"
        for code in re.findall(r"`([A-Z0-9_]+)`", m.group("codes")):
            assert code not in rows, f"{code} is listed twice"
            rows[code] = (m.group("category"), int(m.group("exit")))
    return rows


def test_the_readme_code_table_is_the_enum() -> None:
    rows = readme_codes()
    assert sorted(set(Code.__members__) - set(rows)) == []  # every code is documented
    assert sorted(set(rows) - set(Code.__members__)) == []  # and nothing else
    for code in Code:
        assert rows[code.value] == (code.category.value, code.exit_code), code


def test_the_readme_category_table_is_the_enum() -> None:
    rows = {
        m.group("category"): int(m.group("exit"))
        for line in _errors_section()
        if (m := _CATEGORY_ROW.fullmatch(line)) is not None
    }
    assert rows == {c.value: c.exit_code for c in Category}
    assert list(rows) == [c.value for c in Category]
