"""PKCS#11 URIs (RFC 7512), read strictly.

``pkcs11:PATH[?QUERY]``: the path's ``;``-separated attributes name the
library, slot, token and object; the query's ``&``-separated attributes say how
to reach them (``module-path``, ``module-name``) and where the PIN is
(``pin-value``, ``pin-source``). Values are percent-encoded UTF-8 text, except
``id``, which is bytes. Anything the RFC's grammar does not allow is refused
with ``KEY_URI_INVALID`` naming the attribute: an unknown attribute, one given
twice, a bad ``%`` escape, a character that must be escaped. Vendor attributes
(``x-`` names) are accepted and ignored, as the RFC asks.

``where`` is the URI as written without its ``pin-value``: what messages show.
"""

from __future__ import annotations

import os
import re
import string
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final, Literal

from ....codes import Code
from ....errors import InputError

SCHEME: Final = "pkcs11:"

ObjectType = Literal["private", "public", "cert", "secret-key", "data"]
OBJECT_TYPES: Final[tuple[ObjectType, ...]] = ("private", "public", "cert", "secret-key", "data")

#: The token's attributes (CK_TOKEN_INFO), by URI name.
TOKEN_ATTRIBUTES: Final = ("token", "manufacturer", "serial", "model")
#: The slot's attributes (CK_SLOT_INFO and its id).
SLOT_ATTRIBUTES: Final = ("slot-id", "slot-description", "slot-manufacturer")
#: The module's attributes (CK_INFO).
LIBRARY_ATTRIBUTES: Final = ("library-manufacturer", "library-description", "library-version")
PATH_ATTRIBUTES: Final = (
    *TOKEN_ATTRIBUTES,
    *SLOT_ATTRIBUTES,
    *LIBRARY_ATTRIBUTES,
    "object",
    "id",
    "type",
)
QUERY_ATTRIBUTES: Final = ("module-path", "module-name", "pin-value", "pin-source")

# RFC 7512 §2.3: pk11-unreserved (RFC 3986 unreserved and pk11-res-avail), plus "&"
# in the path and "/", "?", "|" in the query; anything else is percent-encoded.
_UNRESERVED = frozenset(string.ascii_letters + string.digits + "-._~" + ":[]@!$'()*+,=")
_PATH_CHARS = _UNRESERVED | {"&"}
_QUERY_CHARS = _UNRESERVED | {"/", "?", "|"}
_VENDOR_NAME = re.compile(r"x-[A-Za-z0-9_-]+")
_HEX = frozenset(string.hexdigits)


@dataclass(frozen=True)
class Pkcs11Uri:
    """A parsed PKCS#11 URI: decoded attributes, and the URI to show in messages."""

    where: str
    path: Mapping[str, str] = field(default_factory=dict)  # text attributes (not ``id``)
    id: bytes | None = None
    module_path: str | None = None
    module_name: str | None = None
    pin_value: str | None = field(default=None, repr=False)
    pin_source: str | None = None  # a local file (from a ``file:`` URI or a plain path)

    @property
    def object(self) -> str | None:
        """The object's label (CKA_LABEL)."""
        return self.path.get("object")

    @property
    def type(self) -> ObjectType | None:
        """The object's class, as the URI names it."""
        value = self.path.get("type")
        for known in OBJECT_TYPES:
            if value == known:
                return known
        return None

    @property
    def slot_id(self) -> int | None:
        value = self.path.get("slot-id")
        return None if value is None else int(value)

    @property
    def library_version(self) -> tuple[int, int] | None:
        """``library-version=M`` means M.0 (RFC 7512 §2.3)."""
        value = self.path.get("library-version")
        if value is None:
            return None
        major, _, minor = value.partition(".")
        return int(major), int(minor or "0")

    def names_object(self) -> bool:
        """Whether the URI names an object by label or id."""
        return self.object is not None or self.id is not None

    def describe_object(self) -> str:
        """``object='release' id=%01%02``: how the URI names its object, for messages."""
        parts = []
        if self.object is not None:
            parts.append(f"object={self.object!r}")
        if self.id is not None:
            parts.append(f"id={format_id(self.id)}")
        return " ".join(parts) or "no object"


def format_id(value: bytes) -> str:
    """An object id as a URI writes it: every byte percent-encoded."""
    return "".join(f"%{b:02x}" for b in value) or "''"


def redact(uri: str) -> str:
    """``uri`` without its ``pin-value`` attribute, as written otherwise.

    A ``pin-value`` misplaced in the path is left out too: a URI refused for it
    is shown in the message.
    """
    path, question, query = uri.partition("?")
    path = ";".join(a for a in path.split(";") if not _is_pin_value(a))
    if not question:
        return path
    kept = [a for a in query.split("&") if not _is_pin_value(a)]
    return f"{path}?{'&'.join(kept)}" if kept else path


def holds_pin_value(uri: str) -> bool:
    """Whether ``uri`` carries a ``pin-value`` attribute (in its query or, misplaced, its path)."""
    return redact(uri) != uri


def _is_pin_value(attribute: str) -> bool:
    return attribute.partition("=")[0].strip().lower() == "pin-value"


def parse(uri: str) -> Pkcs11Uri:
    """Read a PKCS#11 URI; ``KEY_URI_INVALID`` for anything RFC 7512 does not allow."""
    where = redact(uri)
    if uri[: len(SCHEME)].lower() != SCHEME:
        raise _invalid(where, "a PKCS#11 URI starts with 'pkcs11:'")
    path_part, _, query_part = uri[len(SCHEME) :].partition("?")
    path = _attributes(where, path_part, ";", PATH_ATTRIBUTES, _PATH_CHARS, "path")
    query = _attributes(where, query_part, "&", QUERY_ATTRIBUTES, _QUERY_CHARS, "query")
    text = {name: _text(where, name, value) for name, value in path.items() if name != "id"}
    _check_path(where, text)
    module_path = _optional_text(where, query, "module-path")
    if module_path is not None and not os.path.isabs(module_path):
        raise _invalid(where, f"module-path must be an absolute path, not {module_path!r}")
    module_name = _optional_text(where, query, "module-name")
    if module_name is not None and (not module_name or "/" in module_name):
        raise _invalid(where, f"module-name is a module's name, not a path: {module_name!r}")
    if "pin-value" in query and "pin-source" in query:
        raise _invalid(where, "give the PIN by pin-value or by pin-source, not both")
    pin_source = _optional_text(where, query, "pin-source")
    return Pkcs11Uri(
        where=where,
        path=text,
        id=path.get("id"),
        module_path=module_path,
        module_name=module_name,
        pin_value=_optional_text(where, query, "pin-value"),
        pin_source=None if pin_source is None else _pin_file(where, pin_source),
    )


def _attributes(
    where: str,
    part: str,
    separator: str,
    known: tuple[str, ...],
    allowed: frozenset[str],
    kind: str,
) -> dict[str, bytes]:
    """The decoded values of one component's attributes, vendor (``x-``) ones left out."""
    found: dict[str, bytes] = {}
    if not part:
        return found
    seen: set[str] = set()
    for attribute in part.split(separator):
        name, equals, raw = attribute.partition("=")
        if not equals:
            raise _invalid(where, f"{kind} attribute {attribute!r} has no '=' (NAME=VALUE)")
        if name in seen:
            raise _invalid(where, f"{kind} attribute {name!r} is given twice")
        seen.add(name)
        vendor = _VENDOR_NAME.fullmatch(name) is not None
        if name not in known and not vendor:
            raise _invalid(
                where,
                f"unknown {kind} attribute {name!r} (RFC 7512 names {', '.join(known)}; "
                "vendor attributes start with 'x-')",
            )
        value = _decode(where, name, raw, allowed)
        if not vendor:
            found[name] = value
    return found


def _decode(where: str, name: str, raw: str, allowed: frozenset[str]) -> bytes:
    """Percent-decode one value strictly: every escape two hex digits, no bare specials."""
    secret = name == "pin-value"  # never quoted in a message
    out = bytearray()
    i = 0
    while i < len(raw):
        c = raw[i]
        if c == "%":
            pair = raw[i + 1 : i + 3]
            if len(pair) != 2 or not set(pair) <= _HEX:
                shown = "" if secret else f" {raw[i : i + 3]!r}"
                raise _invalid(where, f"{name}: bad percent-escape{shown}")
            out.append(int(pair, 16))
            i += 3
            continue
        if c not in allowed:
            if secret:
                raise _invalid(where, f"{name}: a character must be percent-encoded")
            escaped = "".join(f"%{b:02X}" for b in c.encode("utf-8"))
            raise _invalid(where, f"{name}: the character {c!r} must be written {escaped}")
        out += c.encode("ascii")
        i += 1
    return bytes(out)


def _text(where: str, name: str, value: bytes) -> str:
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        raise _invalid(where, f"{name}: the value is not UTF-8 text") from None


def _optional_text(where: str, attributes: Mapping[str, bytes], name: str) -> str | None:
    value = attributes.get(name)
    return None if value is None else _text(where, name, value)


def _check_path(where: str, path: Mapping[str, str]) -> None:
    """The path attributes with a grammar of their own: slot-id, library-version, type."""
    slot_id = path.get("slot-id")
    if slot_id is not None and not (slot_id.isascii() and slot_id.isdigit()):
        raise _invalid(where, f"slot-id must be a decimal number, not {slot_id!r}")
    version = path.get("library-version")
    if version is not None and re.fullmatch(r"[0-9]+(\.[0-9]+)?", version) is None:
        raise _invalid(where, f"library-version must be MAJOR[.MINOR], not {version!r}")
    kind = path.get("type")
    if kind is not None and kind not in OBJECT_TYPES:
        raise _invalid(where, f"type must be one of {', '.join(OBJECT_TYPES)}, not {kind!r}")


def _pin_file(where: str, source: str) -> str:
    """The local file a ``pin-source`` names: a ``file:`` URI or an absolute path.

    RFC 7512 also allows ``|program``; modelsign runs no program named in a URI.
    """
    if source.startswith("|"):
        raise _invalid(where, "pin-source: modelsign does not run a program for the PIN")
    if source.lower().startswith("file:"):
        parts = urllib.parse.urlsplit(source)
        if parts.netloc not in ("", "localhost") or parts.query or parts.fragment:
            raise _invalid(where, f"pin-source: only a local file: URI is read, not {source!r}")
        path = urllib.parse.unquote(parts.path)
    elif re.match(r"[A-Za-z][A-Za-z0-9+.-]*:", source):
        raise _invalid(where, f"pin-source: only file: URIs are read, not {source!r}")
    else:
        path = source
    if not os.path.isabs(path):
        raise _invalid(where, f"pin-source must name an absolute path, not {source!r}")
    return path


def _invalid(where: str, message: str) -> InputError:
    return InputError(message, code=Code.KEY_URI_INVALID, path=where)


__all__ = [
    "LIBRARY_ATTRIBUTES",
    "OBJECT_TYPES",
    "PATH_ATTRIBUTES",
    "QUERY_ATTRIBUTES",
    "SLOT_ATTRIBUTES",
    "TOKEN_ATTRIBUTES",
    "ObjectType",
    "Pkcs11Uri",
    "format_id",
    "holds_pin_value",
    "parse",
    "redact",
]
