"""YAML for policies: a safe loader with bounds, and the line of each field.

Knows nothing of the policy's fields (:mod:`.schema` validates them), so the
document can be read, bounded and located before any rule is judged.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import yaml
from pydantic import ValidationError

from .._internal._atomic import open_regular
from ..codes import Code
from ..errors import InputError

#: Bounds on a policy document: a policy is a few dozen lines, never deep or huge,
#: and the recursive composer must never meet a nesting Python's stack cannot hold.
MAX_POLICY_BYTES = 1 << 20
MAX_POLICY_DEPTH = 32
MAX_POLICY_NODES = 100_000


class _ShapeError(yaml.MarkedYAMLError):
    """Valid YAML, but not the shape any policy has (too deep, too large, a non-scalar key)."""


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate and non-scalar keys, and bounds depth and size.

    Depth is checked as the node tree is composed (the composer recurses, so
    5,000 nested brackets would otherwise end in a RecursionError), and the
    count of composed nodes, aliases included, bounds the work after it.
    """

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0
        self._nodes = 0

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        self._depth += 1
        self._nodes += 1
        try:
            if self._depth > MAX_POLICY_DEPTH or self._nodes > MAX_POLICY_NODES:
                what = (
                    f"nested deeper than {MAX_POLICY_DEPTH} levels"
                    if self._depth > MAX_POLICY_DEPTH
                    else f"more than {MAX_POLICY_NODES} values"
                )
                mark = self.peek_event().start_mark  # type: ignore[no-untyped-call]
                raise _ShapeError(None, None, what, mark)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def _construct_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode, deep: bool = False) -> Any:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        if not isinstance(key_node, yaml.ScalarNode):
            # A list or mapping as a key is legal YAML, but unhashable in Python and
            # meaningless in a policy: refused with its line, never a TypeError.
            kind = "list" if isinstance(key_node, yaml.SequenceNode) else "mapping"
            raise _ShapeError(
                None, None, f"a key must be a plain value, not a {kind}", key_node.start_mark
            )
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark
            )
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG,
    _construct_mapping,
)


def line_of(root: yaml.Node | None, loc: Sequence[int | str]) -> int | None:
    """The 1-based line of the YAML node at a pydantic error location."""
    node = root
    line = node.start_mark.line + 1 if node is not None else None
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            pair = next(((k, v) for k, v in node.value if k.value == part), None)
            if pair is None:
                return line
            # The field is named on its key's line (a block value starts below it).
            line = pair[0].start_mark.line + 1
            node = pair[1]
            continue
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            if part >= len(node.value):
                return line
            node = node.value[part]
        else:
            return line
        line = node.start_mark.line + 1
    return line


def read_policy_text(path: str) -> str:
    """The text of a policy file, read no further than a policy can be long."""
    try:
        with open_regular(path, "r", encoding="utf-8") as fh:
            return fh.read(MAX_POLICY_BYTES + 1)
    except FileNotFoundError as exc:
        raise InputError("no such policy file", code=Code.POLICY_NOT_FOUND, path=path) from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(
            f"cannot read the policy: {exc}", code=Code.POLICY_INVALID, path=path
        ) from exc


def parse_yaml(text: str, where: str) -> tuple[yaml.Node | None, Any]:
    """The document's node tree (for the lines of errors) and the data built from it."""
    if len(text) > MAX_POLICY_BYTES:
        raise InputError(
            f"larger than {MAX_POLICY_BYTES} characters: not a policy",
            code=Code.POLICY_INVALID,
            path=where,
        )
    try:
        loader = _UniqueKeyLoader(text)
    except yaml.YAMLError as exc:  # the reader refuses control characters before parsing
        raise InputError(f"not valid YAML: {exc}", code=Code.POLICY_INVALID, path=where) from exc
    try:
        # Parsed once: the node tree gives the lines of errors, the data is built from it.
        root = loader.get_single_node()
        data = loader.construct_document(root) if root is not None else None
    except yaml.YAMLError as exc:
        raise _yaml_error(exc, where) from exc
    finally:
        loader.dispose()
    return root, data


def _yaml_error(exc: yaml.YAMLError, where: str) -> InputError:
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    at = f" (line {mark.line + 1})" if mark is not None else ""
    problem = getattr(exc, "problem", None) or str(exc)
    what = "not a policy" if isinstance(exc, _ShapeError) else "not valid YAML"
    return InputError(f"{what}{at}: {problem}", code=Code.POLICY_INVALID, path=where)


def field_text(loc: Sequence[int | str], line: int | None) -> str:
    """``field signers.keys.1.file (line 6)``: a field by its dotted name, and its line."""
    name = ".".join(str(x) for x in loc) or "(top level)"
    return f"field {name}" + (f" (line {line})" if line is not None else "")


def field_error(root: yaml.Node | None, exc: ValidationError, where: str) -> InputError:
    """The first validation error, as the field's dotted name, its line and the problem."""
    err = exc.errors()[0]
    loc = [x for x in err["loc"] if not (isinstance(x, str) and x.startswith("function-"))]
    msg = err["msg"].removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        msg = "unknown field"
    return InputError(
        f"{field_text(loc, line_of(root, loc))}: {msg}", code=Code.POLICY_INVALID, path=where
    )
