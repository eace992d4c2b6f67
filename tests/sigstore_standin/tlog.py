"""A Rekor-like transparency log: RFC 6962 Merkle tree, signed checkpoints, SETs.

Two front doors, matching sigstore's two clients:

* Rekor v1 ``POST /api/v1/log/entries`` takes a ``dsse`` or ``hashedrekord`` 0.0.1 proposed
  entry and answers ``{uuid: {body, integratedTime, logID, logIndex, verification}}`` with an
  inclusion proof, a checkpoint and a signed entry timestamp (SET).
* Rekor v2 ``POST /api/v2/log/entries`` takes a ``hashedRekordRequestV002`` (sigstore 4.5 logs
  DSSE envelopes that way too) and answers a protobuf-JSON ``TransparencyLogEntry`` with an
  inclusion proof and checkpoint but no integrated time: time must come from a TSA.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
import time
from collections.abc import Mapping
from typing import Any

import rfc8785
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, utils

from .ca import key_id, new_key


class LogError(Exception):
    """A refused entry (the server answers HTTP 400 with Rekor's error JSON)."""


def leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two strictly below ``n`` (RFC 6962 §2.1)."""
    return 1 << ((n - 1).bit_length() - 1)


class MerkleTree:
    """Append-only RFC 6962 tree; recomputes subtrees on demand (logs here stay small)."""

    def __init__(self) -> None:
        self._leaves: list[bytes] = []

    def __len__(self) -> int:
        return len(self._leaves)

    def append(self, data: bytes) -> int:
        self._leaves.append(leaf_hash(data))
        return len(self._leaves) - 1

    def root(self, size: int | None = None) -> bytes:
        size = len(self._leaves) if size is None else size
        return self._subtree(0, size) if size else hashlib.sha256(b"").digest()

    def inclusion_proof(self, index: int, size: int) -> list[bytes]:
        """``PATH(index, D[0:size])``, lowest level first — the order verifiers chain it."""
        if not 0 <= index < size <= len(self._leaves):
            raise ValueError(f"no leaf {index} in a tree of size {size}")
        return self._path(index, 0, size)

    def _subtree(self, lo: int, hi: int) -> bytes:
        if hi - lo == 1:
            return self._leaves[lo]
        k = _split(hi - lo)
        return node_hash(self._subtree(lo, lo + k), self._subtree(lo + k, hi))

    def _path(self, m: int, lo: int, hi: int) -> list[bytes]:
        if hi - lo == 1:
            return []
        k = _split(hi - lo)
        if m < lo + k:
            return [*self._path(m, lo, lo + k), self._subtree(lo + k, hi)]
        return [*self._path(m, lo + k, hi), self._subtree(lo, lo + k)]


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _pem_b64(cert: x509.Certificate) -> str:
    return _b64(cert.public_bytes(serialization.Encoding.PEM))


def _load_pem_b64(value: object) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(base64.b64decode(str(value), validate=True))
    except ValueError as exc:
        raise LogError(f"verifier is not a base64 PEM certificate: {exc}") from exc


def _ec_key(cert: x509.Certificate) -> ec.EllipticCurvePublicKey:
    key = cert.public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise LogError("only ECDSA verifiers are supported")
    return key


def _pae(payload_type: str, payload: bytes) -> bytes:
    kind = payload_type.encode()
    return b"DSSEv1 %d %s %d %s" % (len(kind), kind, len(payload), payload)


def _dsse_body(spec: Mapping[str, Any]) -> dict[str, Any]:
    """The canonical ``dsse`` 0.0.1 body Rekor stores for a proposed envelope."""
    try:
        raw_envelope = str(spec["proposedContent"]["envelope"])
        verifiers = [_load_pem_b64(v) for v in spec["proposedContent"]["verifiers"]]
        envelope = json.loads(raw_envelope)
        payload = base64.b64decode(envelope["payload"], validate=True)
        pae = _pae(str(envelope["payloadType"]), payload)
        sigs = [base64.b64decode(s["sig"], validate=True) for s in envelope["signatures"]]
    except (KeyError, TypeError, ValueError) as exc:
        raise LogError(f"malformed dsse entry: {exc}") from exc
    if not sigs or not verifiers:
        raise LogError("dsse entry needs signatures and verifiers")
    signatures = []
    for sig in sigs:
        # Like Rekor: each signature must verify under one of the supplied verifiers.
        signer = next((c for c in verifiers if _verifies(c, sig, pae)), None)
        if signer is None:
            raise LogError("a dsse signature verifies under none of the verifiers")
        signatures.append({"signature": _b64(sig), "verifier": _pem_b64(signer)})
    return {
        "apiVersion": "0.0.1",
        "kind": "dsse",
        "spec": {
            "envelopeHash": {
                "algorithm": "sha256",
                "value": hashlib.sha256(raw_envelope.encode()).hexdigest(),
            },
            "payloadHash": {"algorithm": "sha256", "value": hashlib.sha256(payload).hexdigest()},
            "signatures": sorted(signatures, key=lambda s: s["signature"]),
        },
    }


def _verifies(cert: x509.Certificate, signature: bytes, data: bytes) -> bool:
    try:
        _ec_key(cert).verify(signature, data, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        return False
    return True


def _verify_prehashed(cert: x509.Certificate, signature: bytes, digest: bytes) -> None:
    try:
        _ec_key(cert).verify(signature, digest, ec.ECDSA(utils.Prehashed(hashes.SHA256())))
    except InvalidSignature as exc:
        raise LogError("signature does not verify over the digest") from exc


def _hashedrekord_v1_body(spec: Mapping[str, Any]) -> dict[str, Any]:
    try:
        cert = _load_pem_b64(spec["signature"]["publicKey"]["content"])
        signature = base64.b64decode(spec["signature"]["content"], validate=True)
        algorithm = str(spec["data"]["hash"]["algorithm"])
        digest = bytes.fromhex(spec["data"]["hash"]["value"])
    except (KeyError, TypeError, ValueError) as exc:
        raise LogError(f"malformed hashedrekord entry: {exc}") from exc
    if algorithm != "sha256" or len(digest) != 32:
        raise LogError("only sha256 hashedrekord entries are supported")
    _verify_prehashed(cert, signature, digest)
    return {
        "apiVersion": "0.0.1",
        "kind": "hashedrekord",
        "spec": {
            "data": {"hash": {"algorithm": "sha256", "value": digest.hex()}},
            "signature": {"content": _b64(signature), "publicKey": {"content": _pem_b64(cert)}},
        },
    }


def _hashedrekord_v2_body(request: Mapping[str, Any]) -> dict[str, Any]:
    try:
        inner = request["hashedRekordRequestV002"]
        digest = base64.b64decode(inner["digest"], validate=True)
        signature = base64.b64decode(inner["signature"]["content"], validate=True)
        verifier = inner["signature"]["verifier"]
        cert_der = base64.b64decode(verifier["x509Certificate"]["rawBytes"], validate=True)
        key_details = str(verifier["keyDetails"])
        cert = x509.load_der_x509_certificate(cert_der)
    except (KeyError, TypeError, ValueError) as exc:
        raise LogError(f"malformed hashedRekordRequestV002: {exc}") from exc
    if key_details != "PKIX_ECDSA_P256_SHA_256" or len(digest) != 32:
        raise LogError("only ECDSA P-256 / SHA-256 entries are supported")
    _verify_prehashed(cert, signature, digest)
    return {
        "kind": "hashedrekord",
        "apiVersion": "0.0.2",
        "spec": {
            "hashedRekordV002": {
                "data": {"algorithm": "SHA2_256", "digest": _b64(digest)},
                "signature": {
                    "content": _b64(signature),
                    "verifier": {
                        "x509Certificate": {"rawBytes": _b64(cert_der)},
                        "keyDetails": key_details,
                    },
                },
            }
        },
    }


class TransparencyLog:
    def __init__(self, name: str = "rekor.standin.test") -> None:
        self.key = new_key()
        self.log_id = key_id(self.key.public_key())
        self._name = name
        self._origin = f"{name} - {secrets.randbits(63)}"
        self._tree = MerkleTree()
        self._lock = threading.Lock()

    def _sign(self, data: bytes) -> bytes:
        return self.key.sign(data, ec.ECDSA(hashes.SHA256()))

    def checkpoint(self, size: int, root: bytes) -> str:
        """A signed note: ``origin\\nsize\\nb64(root)\\n\\n— name b64(keyid[:4] + sig)\\n``."""
        note = f"{self._origin}\n{size}\n{_b64(root)}\n"
        sig = self.log_id[:4] + self._sign(note.encode())
        return f"{note}\n\u2014 {self._name} {_b64(sig)}\n"

    def _append(self, body: bytes) -> tuple[int, int, bytes, list[bytes]]:
        with self._lock:
            index = self._tree.append(body)
            size = len(self._tree)
            return index, size, self._tree.root(size), self._tree.inclusion_proof(index, size)

    def add_v1(self, proposed: Mapping[str, Any]) -> dict[str, Any]:
        kind, version = proposed.get("kind"), proposed.get("apiVersion")
        spec = proposed.get("spec")
        if version != "0.0.1" or not isinstance(spec, Mapping):
            raise LogError(f"unsupported entry {kind}/{version}")
        if kind == "dsse":
            body_obj = _dsse_body(spec)
        elif kind == "hashedrekord":
            body_obj = _hashedrekord_v1_body(spec)
        else:
            raise LogError(f"unsupported entry kind {kind!r}")

        body = rfc8785.dumps(body_obj)
        integrated_time = int(time.time())
        index, size, root, proof = self._append(body)
        body_b64 = _b64(body)
        # The SET: RFC 8785 JSON of exactly these four fields (models.TransparencyLogEntry).
        promise: dict[str, str | int] = {
            "body": body_b64,
            "integratedTime": integrated_time,
            "logID": self.log_id.hex(),
            "logIndex": index,
        }
        entry = {
            **promise,
            "verification": {
                "inclusionProof": {
                    "logIndex": index,
                    "rootHash": root.hex(),
                    "treeSize": size,
                    "hashes": [h.hex() for h in proof],
                    "checkpoint": self.checkpoint(size, root),
                },
                "signedEntryTimestamp": _b64(self._sign(rfc8785.dumps(promise))),
            },
        }
        return {leaf_hash(body).hex(): entry}

    def add_v2(self, request: Mapping[str, Any]) -> dict[str, Any]:
        if "hashedRekordRequestV002" not in request:
            raise LogError("only hashedRekordRequestV002 entries are supported")
        body = json.dumps(_hashedrekord_v2_body(request)).encode()
        index, size, root, proof = self._append(body)
        return {
            "logIndex": str(index),
            "logId": {"keyId": _b64(self.log_id)},
            "kindVersion": {"kind": "hashedrekord", "version": "0.0.2"},
            "inclusionProof": {
                "logIndex": str(index),
                "rootHash": _b64(root),
                "treeSize": str(size),
                "hashes": [_b64(h) for h in proof],
                "checkpoint": {"envelope": self.checkpoint(size, root)},
            },
            "canonicalizedBody": _b64(body),
        }
