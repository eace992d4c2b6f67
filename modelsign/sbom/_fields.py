"""Small helpers of the BOM: bounded property values, Hub links and purls, hashes."""

from __future__ import annotations

import json
import re
from typing import Final
from urllib.parse import quote

from cyclonedx.exception.model import InvalidUriException
from cyclonedx.model import (
    HashAlgorithm,
    HashType,
    Property,
    XsUri,
)
from packageurl import PackageURL

#: Prefix of every property name modelsign writes.
NAMESPACE: Final = "modelsign:"

HUB: Final = "https://huggingface.co"
# A Hub repo id ("org/name" or a legacy "name"), as parse_source accepts it.
HUB_ID = re.compile(r"^(?:[A-Za-z0-9][A-Za-z0-9._-]{0,95}/)?[A-Za-z0-9][A-Za-z0-9._-]{0,95}$")
HUB_URL = re.compile(r"^https://huggingface\.co/([A-Za-z0-9][A-Za-z0-9._-]{0,95}/[^/?#\s]+)/?$")
# Links from untrusted files (card license_link, GGUF repo_url): plain http(s) only.
_WEB_URL = re.compile(r"^https?://[^\s<>\"{}|\\^`]+$")
# Untrusted card lists are cut here: a BOM is for people and scanners.
MAX_ITEMS: Final = 256
MAX_TEXT: Final = 1024


def prop(name: str, value: object) -> Property:
    return Property(name=NAMESPACE + name, value=bounded_text(value))


def bounded_text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value[:MAX_TEXT]
    if value is None:
        return ""
    if isinstance(value, (int, float)):
        return str(value)
    return json.dumps(value, sort_keys=True, ensure_ascii=False)[:MAX_TEXT]


def bounded_strings(value: object) -> list[str]:
    """A card field that is a string or a list of strings, as a bounded list."""
    items = value if isinstance(value, list) else [value]
    out: list[str] = []
    for item in items:
        if isinstance(item, str) and item.strip() and item.strip() not in out:
            out.append(item.strip()[:MAX_TEXT])
        if len(out) >= MAX_ITEMS:
            break
    return out


def web_url(text: str | None) -> XsUri | None:
    if text is None or len(text) > MAX_TEXT or not _WEB_URL.fullmatch(text):
        return None
    try:
        return XsUri(text)
    except InvalidUriException:
        return None


def hub_url(repo: str, *parts: str) -> XsUri | None:
    if not HUB_ID.fullmatch(repo):
        return None
    tail = "".join("/" + quote(p, safe="") for p in parts)
    return XsUri(f"{HUB}/{repo}{tail}")


def hub_purl(repo: str, revision: str | None = None) -> PackageURL | None:
    """``pkg:huggingface/org/name@revision`` (purl spec: the revision lower-cased)."""
    if not HUB_ID.fullmatch(repo):
        return None
    namespace, _, name = repo.rpartition("/")
    return PackageURL(
        type="huggingface",
        namespace=namespace or None,
        name=name,
        version=revision.lower() if revision else None,
    )


def sha256_hash(hex_digest: str) -> HashType:
    return HashType(alg=HashAlgorithm.SHA_256, content=hex_digest)


# The manifest digest (canonical JSON of the whole manifest, tensors included) is
# worked out once per model and handed down: it names the component, its model
# card and the BOM's serial number.
def ref_of(digest: str) -> str:
    return "model:" + digest
