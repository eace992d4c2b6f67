"""Helpers to sign arbitrary (possibly malformed) statements and to tamper with files."""

from __future__ import annotations

import base64
import json
import struct
from pathlib import Path
from typing import Any

from modelsign._internal.signature import bundle, keys


def sign_payload(key: keys.PrivateKey, payload: bytes, *, hint: bool = True) -> bytes:
    """A validly signed bundle around any payload bytes (for statement-level tests)."""
    material: dict[str, Any] = {"tlogEntries": []}
    if hint:
        material["publicKey"] = {"hint": keys.key_hint(key.public_key())}
    return bundle.write_bundle(payload, keys.sign_bytes(key, bundle.pae(payload)), material)


def payload_bytes(sig: Path) -> bytes:
    """The signed statement bytes (the decoded DSSE payload) of a signature file."""
    return base64.b64decode(json.loads(sig.read_bytes())["dsseEnvelope"]["payload"])


def statement_in(bundle: bytes) -> dict[str, Any]:
    """The statement a bundle (a signature file's bytes, a claims.jsonl line) signs, parsed."""
    return json.loads(base64.b64decode(json.loads(bundle)["dsseEnvelope"]["payload"]))  # type: ignore[no-any-return]


def payload_of(sig: Path) -> dict[str, Any]:
    """The signed statement of a signature file, parsed."""
    return json.loads(payload_bytes(sig))  # type: ignore[no-any-return]


def flip_tensor_byte(path: Path, tensor: str, at: int = 0) -> None:
    """Flip one bit inside a safetensors tensor's data."""
    raw = bytearray(path.read_bytes())
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8 : 8 + n])
    raw[8 + n + header[tensor]["data_offsets"][0] + at] ^= 1
    path.write_bytes(bytes(raw))


def attestation_of(sig: Path) -> dict[str, Any]:
    """modelsign's attestation statement from the claims file beside a signature, parsed."""
    from modelsign._internal.signature.attestation import claims_path
    from modelsign._internal.signature.statement import ATTESTATION_TYPE

    for line in Path(claims_path(str(sig))).read_bytes().splitlines():
        st = statement_in(line)
        if st["predicateType"] == ATTESTATION_TYPE:
            return st  # type: ignore[no-any-return]
    raise AssertionError(f"no modelsign attestation beside {sig}")


def manifest_of(sig: Path) -> dict[str, Any]:
    """The modelsign manifest a signature's attestation carries, as JSON."""
    return attestation_of(sig)["predicate"]["manifest"]  # type: ignore[no-any-return]


def strip_marker(statement: dict[str, Any]) -> dict[str, Any]:
    """The OMS statement without modelsign's marker: as the OMS tool would write it."""
    for r in statement["predicate"]["resources"]:
        r.pop("annotations", None)
    return statement


def error_codes(exc: Any) -> set[str]:
    """The codes of a VerificationError's error-severity findings."""
    return {p.code for p in exc.findings if p.severity == "error"}
