"""Bundle tampering for negative tests: each function takes and returns bundle JSON text.

Every change keeps the bundle well-formed (``Bundle.from_json`` still loads it), so the
failure a test sees comes from verification, not parsing.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable
from typing import Any


def edit(bundle_json: str, change: Callable[[dict[str, Any]], None]) -> str:
    """Apply ``change`` to the parsed bundle and serialise it again."""
    bundle: dict[str, Any] = json.loads(bundle_json)
    change(bundle)
    return json.dumps(bundle)


def flip_b64(value: str, index: int = -1) -> str:
    """Flip the low bit of one decoded byte (the last by default: DER stays parseable)."""
    raw = bytearray(base64.b64decode(value))
    raw[index] ^= 0x01
    return base64.b64encode(bytes(raw)).decode()


def _entry(bundle: dict[str, Any]) -> dict[str, Any]:
    entry: dict[str, Any] = bundle["verificationMaterial"]["tlogEntries"][0]
    return entry


def dsse_signature(bundle_json: str) -> str:
    def change(b: dict[str, Any]) -> None:
        sig = b["dsseEnvelope"]["signatures"][0]
        sig["sig"] = flip_b64(sig["sig"])

    return edit(bundle_json, change)


def dsse_payload(bundle_json: str, payload: bytes) -> str:
    """Swap in another payload, leaving the signature over the old one."""

    def change(b: dict[str, Any]) -> None:
        b["dsseEnvelope"]["payload"] = base64.b64encode(payload).decode()

    return edit(bundle_json, change)


def checkpoint_signature(bundle_json: str) -> str:
    def change(b: dict[str, Any]) -> None:
        proof = _entry(b)["inclusionProof"]
        note: str = proof["checkpoint"]["envelope"]
        match = re.search(r"\u2014 (\S+) (\S+)\n$", note)
        if match is None:
            raise ValueError("checkpoint has no signature line")
        proof["checkpoint"]["envelope"] = note[: match.start(2)] + flip_b64(match[2]) + "\n"

    return edit(bundle_json, change)


def inclusion_proof(bundle_json: str) -> str:
    """Alter the first audit-path hash, or the root hash when the path is empty (tree of one)."""

    def change(b: dict[str, Any]) -> None:
        proof = _entry(b)["inclusionProof"]
        if proof["hashes"]:
            proof["hashes"][0] = flip_b64(proof["hashes"][0])
        else:
            proof["rootHash"] = flip_b64(proof["rootHash"])

    return edit(bundle_json, change)


def integrated_time(bundle_json: str, delta_s: int = 1) -> str:
    """Shift the Rekor v1 integrated time, which the signed entry timestamp covers."""

    def change(b: dict[str, Any]) -> None:
        entry = _entry(b)
        entry["integratedTime"] = str(int(entry["integratedTime"]) + delta_s)

    return edit(bundle_json, change)


def drop_timestamps(bundle_json: str) -> str:
    """Remove the RFC 3161 timestamps, leaving the log's evidence of time alone."""

    def change(b: dict[str, Any]) -> None:
        b["verificationMaterial"]["timestampVerificationData"] = {"rfc3161Timestamps": []}

    return edit(bundle_json, change)


def timestamp_signature(bundle_json: str) -> str:
    """Corrupt the first RFC 3161 token's signature (the last bytes of its DER)."""

    def change(b: dict[str, Any]) -> None:
        token = b["verificationMaterial"]["timestampVerificationData"]["rfc3161Timestamps"][0]
        token["signedTimestamp"] = flip_b64(token["signedTimestamp"])

    return edit(bundle_json, change)
