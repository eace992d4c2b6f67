"""The YAML front matter of a Hugging Face model card (``README.md``).

The card is captured by the hashing pipeline from the bytes it hashed, so this
module parses bytes and never opens files. A card is untrusted input: it is
parsed with ``yaml.safe_load`` (no object construction), the front-matter block
is located exactly as ``huggingface_hub`` locates it, and any problem becomes a
``MODEL_CARD_INVALID`` finding instead of an exception.
"""

from __future__ import annotations

import base64
import datetime
import math

import yaml

from ...codes import Code
from .._json import SAFE_INT
from ..findings import Finding

__all__ = ["parse_model_card"]

# Bounds on the converted front matter: YAML aliases let a few hundred bytes
# describe an exponentially large (or self-referencing) tree.
_MAX_NODES = 100_000
_MAX_DEPTH = 64


class _CardError(Exception):
    """Front matter that cannot become a JSON object."""


class _Converter:
    """Turns ``yaml.safe_load`` output into JSON-compatible values, bounded."""

    def __init__(self) -> None:
        self.nodes = 0

    def convert(self, value: object, depth: int) -> object:
        self.nodes += 1
        if self.nodes > _MAX_NODES:
            raise _CardError(f"front matter has more than {_MAX_NODES} values")
        if depth > _MAX_DEPTH:
            raise _CardError(f"front matter is nested deeper than {_MAX_DEPTH} levels")
        if value is None or isinstance(value, (bool, str)):
            return value
        if isinstance(value, int):
            return value if abs(value) <= SAFE_INT else str(value)
        if isinstance(value, float):
            # NaN and infinities have no JSON form; keep YAML's spelling as text.
            if math.isnan(value):
                return ".nan"
            if math.isinf(value):
                return ".inf" if value > 0 else "-.inf"
            return value
        if isinstance(value, (datetime.date, datetime.datetime)):
            return value.isoformat()
        if isinstance(value, bytes):
            return base64.b64encode(value).decode("ascii")
        if isinstance(value, dict):
            return self.mapping(value, depth)
        if isinstance(value, list):
            return [self.convert(item, depth + 1) for item in value]
        if isinstance(value, (set, frozenset)):
            return sorted((self.convert(item, depth + 1) for item in value), key=repr)
        raise _CardError(f"front matter holds an unsupported {type(value).__name__} value")

    def mapping(self, value: dict[object, object], depth: int) -> dict[str, object]:
        out: dict[str, object] = {}
        for key, item in value.items():
            name = key if isinstance(key, str) else str(self.convert(key, depth + 1))
            if name in out:
                raise _CardError(f"front matter key {name!r} occurs twice after conversion")
            out[name] = self.convert(item, depth + 1)
        return out


def _invalid(path: str, problem: str) -> tuple[dict[str, object], list[Finding]]:
    finding = Finding(
        code=Code.MODEL_CARD_INVALID,
        severity="warning",
        message=f"model card front matter ignored: {problem}",
        file=path,
    )
    return {}, [finding]


def parse_model_card(text: bytes, path: str) -> tuple[dict[str, object], list[Finding]]:
    """Return the front-matter mapping of a model card and any findings.

    No front matter gives ``({}, [])``. Invalid UTF-8, invalid YAML, a block that
    is not a mapping, or one that is too large once aliases are expanded gives
    ``({}, [MODEL_CARD_INVALID])``. Values are made JSON-safe: dates become ISO
    strings, ``!!binary`` base64, sets sorted lists, NaN/infinity and integers
    beyond 2**53 strings, non-string keys strings.
    """
    try:
        # utf-8-sig: the Hub reads cards the same way, tolerating a BOM.
        content = text.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        return _invalid(path, f"not valid UTF-8 ({exc.reason} at byte {exc.start})")

    # Imported here: huggingface_hub.repocard costs a quarter second to import,
    # which every CLI call (and every verified load) would otherwise pay.
    from huggingface_hub.repocard import REGEX_YAML_BLOCK

    match = REGEX_YAML_BLOCK.search(content)
    if match is None:
        return {}, []

    try:
        loaded: object = yaml.safe_load(match.group(2))
    except yaml.YAMLError as exc:
        return _invalid(path, f"invalid YAML: {' '.join(str(exc).split())}")
    except ValueError as exc:
        # PyYAML's constructors raise ValueError for e.g. impossible dates.
        return _invalid(path, f"invalid YAML value: {exc}")
    except RecursionError:
        return _invalid(path, "YAML nested too deeply to parse")

    if loaded is None:
        return {}, []
    if not isinstance(loaded, dict):
        return _invalid(path, f"expected a mapping, got a {_yaml_kind(loaded)}")

    try:
        return _Converter().mapping(loaded, 0), []
    except _CardError as exc:
        return _invalid(path, str(exc))


def _yaml_kind(value: object) -> str:
    if isinstance(value, list):
        return "list"
    if isinstance(value, str):
        return "string"
    return type(value).__name__
