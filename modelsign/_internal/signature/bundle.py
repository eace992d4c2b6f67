"""Sigstore bundle (v0.3 JSON) holding a DSSE envelope: writing and strict reading.

Only the parts modelsign needs for key and certificate signatures are parsed
here; Sigstore (Fulcio / Rekor) bundles are handed to the ``sigstore`` package
as a whole.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Any, Literal

from ...codes import Code
from ...errors import InputError, VerificationError
from .._atomic import open_regular
from .statement import strict_json

BUNDLE_MEDIA_TYPE = "application/vnd.dev.sigstore.bundle.v0.3+json"
#: Media types a reader accepts (Sigstore's older spellings included).
KNOWN_MEDIA_TYPES = (
    BUNDLE_MEDIA_TYPE,
    "application/vnd.dev.sigstore.bundle+json;version=0.1",
    "application/vnd.dev.sigstore.bundle+json;version=0.2",
    "application/vnd.dev.sigstore.bundle+json;version=0.3",
)
PAYLOAD_TYPE = "application/vnd.in-toto+json"
MAX_SIGNATURE_BYTES = 256 << 20  # a manifest of a very large model still fits


def pae(payload: bytes, payload_type: str = PAYLOAD_TYPE) -> bytes:
    """DSSE v1 pre-authentication encoding: what is actually signed."""
    t = payload_type.encode("utf-8")
    return b"DSSEv1 %d %s %d %s" % (len(t), t, len(payload), payload)


def pae_legacy(payload: bytes, payload_type: str = PAYLOAD_TYPE) -> bytes:
    """The encoding ``model_signing`` < 1.0 signed by mistake (``str`` of the bytes).

    Accepted only for statements with the legacy predicate, as the OMS tool does.
    """
    return f"DSSEV1 {len(payload_type)} {payload_type} {len(payload)} {payload!r}".encode()


@dataclass(frozen=True)
class Envelope:
    """A parsed bundle: the DSSE parts and the verification material."""

    media_type: str
    payload: bytes
    payload_type: str
    signature: bytes
    keyid: str
    key_hint: str | None  # verificationMaterial.publicKey.hint
    certificates: tuple[bytes, ...]  # DER, leaf first (x509CertificateChain or certificate)
    raw: dict[str, Any]
    #: The OMS signing method its verification material is for (§4.1): ``publicKey``,
    #: ``x509CertificateChain`` or a single ``certificate``; verifiers match it.
    method: Literal["key", "certificate", "sigstore"] = "key"
    timestamps: tuple[bytes, ...] = ()  # RFC 3161 tokens (DER) over ``signature``


def _b64(value: object, what: str) -> bytes:
    if not isinstance(value, str):
        raise VerificationError(f"{what} is not a base64 string", code=Code.BUNDLE_INVALID)
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise VerificationError(f"{what} is not valid base64", code=Code.BAD_BASE64) from exc


def write_bundle(payload: bytes, signature: bytes, material: dict[str, Any]) -> bytes:
    """Bundle JSON bytes for a key or certificate signature (deterministic)."""
    bundle = {
        "mediaType": BUNDLE_MEDIA_TYPE,
        "verificationMaterial": material,
        "dsseEnvelope": {
            "payload": base64.b64encode(payload).decode("ascii"),
            "payloadType": PAYLOAD_TYPE,
            "signatures": [{"sig": base64.b64encode(signature).decode("ascii"), "keyid": ""}],
        },
    }
    return json.dumps(bundle, indent=2, sort_keys=True).encode("utf-8") + b"\n"


def read_signature_file(path: str, *, missing: str = "SIGNATURE_NOT_FOUND") -> bytes:
    """A signature file's bytes: a regular file only (never blocks on a FIFO), size-capped.

    ``missing`` is the error code for an absent file (a provenance attestation
    has its own). One byte more than the cap is read so :func:`read_bundle`
    can refuse an oversized file.
    """
    try:
        fh = open_regular(path)
    except FileNotFoundError as exc:
        raise InputError("no signature file here", code=missing, path=path) from exc
    except OSError as exc:
        raise InputError(
            f"cannot read the signature: {exc.strerror}", code=missing, path=path
        ) from exc
    with fh:
        return fh.read(MAX_SIGNATURE_BYTES + 1)


def read_bundle(data: bytes) -> Envelope:
    """Parse bundle JSON strictly; the signature itself is checked by a verifier."""
    if len(data) > MAX_SIGNATURE_BYTES:
        raise VerificationError(
            f"signature file is larger than {MAX_SIGNATURE_BYTES} bytes", code=Code.BUNDLE_INVALID
        )
    b = strict_json(data, "the signature bundle")
    if not isinstance(b, dict):
        raise VerificationError("the signature is not a JSON object", code=Code.BUNDLE_INVALID)
    media = b.get("mediaType")
    if media not in KNOWN_MEDIA_TYPES:
        raise VerificationError(
            f"unknown bundle media type {media!r}", code=Code.BUNDLE_MEDIA_TYPE, actual=str(media)
        )
    payload, signature, keyid = _dsse(b)
    vm = b.get("verificationMaterial")
    if not isinstance(vm, dict):
        raise VerificationError("the bundle has no verificationMaterial", code=Code.BUNDLE_INVALID)
    hint, certs = _keys(vm)
    tlog = vm.get("tlogEntries", [])
    if not isinstance(tlog, list):
        raise VerificationError("tlogEntries is not a list", code=Code.BUNDLE_INVALID)
    return Envelope(
        str(media),
        payload,
        PAYLOAD_TYPE,
        signature,
        keyid,
        hint,
        certs,
        b,
        _method(vm, str(media), bool(tlog)),
        _timestamps(vm.get("timestampVerificationData")),
    )


def _dsse(b: dict[str, Any]) -> tuple[bytes, bytes, str]:
    """(payload, signature, key id) of the bundle's one-signature DSSE envelope."""
    env = b.get("dsseEnvelope")
    if not isinstance(env, dict):
        if "messageSignature" in b:
            raise VerificationError(
                "the bundle signs a blob (messageSignature), not a model statement",
                code=Code.BUNDLE_NOT_DSSE,
            )
        raise VerificationError("the bundle has no DSSE envelope", code=Code.BUNDLE_INVALID)
    payload_type = env.get("payloadType")
    if payload_type != PAYLOAD_TYPE:
        raise VerificationError(
            f"DSSE payload type is {payload_type!r}, not {PAYLOAD_TYPE}",
            code=Code.PAYLOAD_TYPE,
            expected=PAYLOAD_TYPE,
            actual=str(payload_type),
        )
    payload = _b64(env.get("payload"), "dsseEnvelope.payload")
    sigs = env.get("signatures")
    if not isinstance(sigs, list) or len(sigs) != 1 or not isinstance(sigs[0], dict):
        raise VerificationError(
            "the DSSE envelope must carry exactly one signature", code=Code.BUNDLE_INVALID
        )
    signature = _b64(sigs[0].get("sig"), "dsseEnvelope.signatures[0].sig")
    # keyid is optional in DSSE; model_signing < 1.1 writes null.
    keyid = sigs[0].get("keyid") or ""
    if not isinstance(keyid, str):
        raise VerificationError("signature keyid is not a string", code=Code.BUNDLE_INVALID)
    return payload, signature, keyid


_MATERIAL_KINDS = ("publicKey", "x509CertificateChain", "certificate")


def _keys(vm: dict[str, Any]) -> tuple[str | None, tuple[bytes, ...]]:
    """(public key hint, certificates DER leaf first) of one kind of verification material."""
    kinds = [k for k in _MATERIAL_KINDS if k in vm]
    if not kinds:
        raise VerificationError(
            "verificationMaterial has no public key hint or certificate", code=Code.BUNDLE_INVALID
        )
    if len(kinds) > 1:
        raise VerificationError(
            f"verificationMaterial holds both {kinds[0]} and {kinds[1]}: one signing method only",
            code=Code.BUNDLE_INVALID,
        )
    if kinds == ["publicKey"]:
        pk = vm["publicKey"]
        if not isinstance(pk, dict) or not isinstance(pk.get("hint", ""), str):
            raise VerificationError("publicKey.hint is not a string", code=Code.BUNDLE_INVALID)
        return pk.get("hint") or None, ()
    if kinds == ["certificate"]:
        c = vm["certificate"]
        return None, (_b64(c.get("rawBytes") if isinstance(c, dict) else None, "certificate"),)
    chain = vm["x509CertificateChain"]
    items = chain.get("certificates") if isinstance(chain, dict) else None
    if not isinstance(items, list) or not items:
        raise VerificationError("the certificate chain is empty", code=Code.BUNDLE_INVALID)
    return None, tuple(
        _b64(c.get("rawBytes") if isinstance(c, dict) else None, f"certificate {i}")
        for i, c in enumerate(items)
    )


def _method(
    vm: dict[str, Any], media: str, logged: bool
) -> Literal["key", "certificate", "sigstore"]:
    """The OMS signing method the verification material is for (§4.1)."""
    if "certificate" in vm:
        return "sigstore"
    if "x509CertificateChain" in vm:
        # Sigstore bundles before v0.3 carried the Fulcio certificate as a chain;
        # with log entries such a bundle is keyless, not an OMS certificate one.
        old = media != BUNDLE_MEDIA_TYPE and "0.3" not in media
        return "sigstore" if logged and old else "certificate"
    return "key"


def _timestamps(data: object) -> tuple[bytes, ...]:
    """The RFC 3161 tokens of ``timestampVerificationData`` (absent: none)."""
    if data is None:
        return ()
    items = data.get("rfc3161Timestamps", []) if isinstance(data, dict) else None
    if not isinstance(items, list):
        raise VerificationError("rfc3161Timestamps is not a list", code=Code.BUNDLE_INVALID)
    return tuple(
        _b64(t.get("signedTimestamp") if isinstance(t, dict) else None, f"timestamp {i}")
        for i, t in enumerate(items)
    )
