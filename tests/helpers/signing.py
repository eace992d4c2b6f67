"""Signing helpers shared by the tests: key pairs, signing arbitrary (possibly malformed)
statements, reading signatures back, and tampering with files (``flip_byte``).

The ``keypair``, ``make_keypair``, ``signed_model`` and ``signed`` fixtures in
``tests/conftest.py`` are built on these.
"""

from __future__ import annotations

import base64
import json
import os
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

from modelsign._internal.hashing import TensorHash
from modelsign._internal.signature import bundle, keys
from modelsign._internal.signature.signers import KeySigner, Signer
from modelsign._internal.signature.verifiers import KeyVerifier

_SHARED_KEYS: dict[str, keys.PrivateKey] = {}


def shared_key(name: str = "release") -> keys.PrivateKey:
    """One EC P-256 key per name for the whole test process.

    For tests that need *a* key, not a fresh one: key generation is done once, and
    the ``keypair`` fixture holds the same ``"release"`` key with its PEM files.
    Distinct names give distinct keys (``shared_key("stranger")`` for an untrusted one).
    """
    if name not in _SHARED_KEYS:  # (not functools.cache: f() and f("release") are two entries)
        _SHARED_KEYS[name] = keys.generate_key("ec-p256")
    return _SHARED_KEYS[name]


@dataclass(frozen=True)
class KeyPair:
    """An EC P-256 key pair: the private key object and its unencrypted PEM files.

    The files are shared (session-scoped fixtures hand out the same pair): read, never change.
    """

    private: keys.PrivateKey
    key_path: Path
    pub_path: Path

    @property
    def public(self) -> keys.PublicKey:
        return self.private.public_key()

    @property
    def hint(self) -> str:
        return keys.key_hint(self.public)

    @property
    def pem(self) -> str:
        """The public key, PEM text (as a policy lists it inline)."""
        return keys.public_key_pem(self.public).decode()

    @property
    def signer(self) -> KeySigner:
        return KeySigner(self.private)

    @property
    def verifier(self) -> KeyVerifier:
        return KeyVerifier(self.public)


def write_keypair(
    folder: Path, name: str = "key", private: keys.PrivateKey | None = None
) -> KeyPair:
    """Write ``private`` (a fresh EC P-256 key when None) as ``folder/name.key`` and ``.pub``."""
    folder.mkdir(parents=True, exist_ok=True)
    private = keys.generate_key("ec-p256") if private is None else private
    key_path, pub_path = keys.write_keypair(str(folder / name), private, password=None)
    return KeyPair(private, Path(key_path), Path(pub_path))


class MakeKeyPair(Protocol):
    """The ``make_keypair`` fixture."""

    def __call__(self, name: str = "release", *, fresh: bool = False) -> KeyPair: ...


class SignedModel(Protocol):
    """The ``signed_model`` fixture."""

    def __call__(
        self,
        model: Path | None = None,
        *,
        signer: Signer | None = None,
        tensor_hash: TensorHash | None = "blake3",
        example: Literal["safetensors", "gguf"] = "safetensors",
        env: Mapping[str, str] | None = None,
        **sign_options: Any,
    ) -> Path: ...


def tensor_data_offset(path: Path, tensor: str) -> int:
    """Where ``tensor``'s data starts in a safetensors or GGUF file."""
    with open(path, "rb") as fh:
        magic = fh.read(4)
    if magic == b"GGUF":
        import gguf

        reader = gguf.GGUFReader(path)
        return next(int(t.data_offset) for t in reader.tensors if t.name == tensor)
    raw = path.read_bytes()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8 : 8 + n])
    return 8 + n + int(header[tensor]["data_offsets"][0])


def flip_byte(path: Path, offset: int = 0, *, tensor: str | None = None, mask: int = 0x01) -> int:
    """Flip the ``mask`` bits of one byte of a file, in place (same inode, same size).

    ``offset`` counts from the start of the file (negative: from its end) or, with
    ``tensor``, from the start of that tensor's data (safetensors or GGUF). Returns the
    byte's offset in the file.
    """
    if tensor is not None:
        offset += tensor_data_offset(path, tensor)
    with open(path, "r+b") as fh:
        size = fh.seek(0, os.SEEK_END)
        at = offset + size if offset < 0 else offset
        if not 0 <= at < size:
            raise AssertionError(f"byte {offset} is outside {path} ({size} bytes)")
        fh.seek(at)
        byte = fh.read(1)[0]
        fh.seek(at)
        fh.write(bytes([byte ^ mask]))
    return at


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
