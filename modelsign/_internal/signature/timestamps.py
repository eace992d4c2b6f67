"""RFC 3161 timestamps for key and certificate signatures: a trusted signing time.

A key signature says who signed, never when: an older release signed by the
same key verifies as well as the newest. A timestamp authority (TSA) countersigns
the DSSE signature bytes with its clock, as Sigstore does for keyless bundles,
and the token rides in ``verificationMaterial.timestampVerificationData`` where
any Sigstore-bundle reader expects it. Requesting one is opt-in (``--tsa-url``);
verification trusts only the TSA certificate chains it is given.
"""

from __future__ import annotations

import base64
import hashlib
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from cryptography import x509

from ...codes import Code
from ...errors import InputError, SignatureError, VerificationError
from .certs import load_certificates

MAX_TIMESTAMPS = 32  # more in one bundle is an attack on the verifier's time, not evidence
_TIMEOUT = 30


@dataclass(frozen=True)
class TimestampAuthority:
    """A trusted TSA: its signing certificate, intermediates and root (leaf first)."""

    chain: tuple[x509.Certificate, ...]

    @classmethod
    def from_file(cls, path: str) -> TimestampAuthority:
        chain = tuple(load_certificates(path))
        if len(chain) < 2:
            raise InputError(
                "a TSA chain needs the TSA's certificate and its root (leaf first)",
                code=Code.TSA_CHAIN_INVALID,
                path=path,
            )
        return cls(chain)


def trusted_root_authorities(path: str) -> list[TimestampAuthority]:
    """The timestamp authorities a Sigstore trusted root (JSON) lists."""
    from sigstore.models import TrustedRoot

    try:
        root = TrustedRoot.from_file(path)
        return [
            TimestampAuthority(tuple(ca.certificates(allow_expired=True)))
            for ca in root.get_timestamp_authorities()
        ]
    except Exception as exc:  # protobuf / JSON / certificate errors of several types
        raise InputError(
            f"not a Sigstore trusted root: {exc}", code=Code.TRUST_ROOT_INVALID, path=path
        ) from exc


def request_timestamp(url: str, signature: bytes) -> bytes:
    """A timestamp token (DER) from the TSA at ``url`` over the signature bytes.

    The reply must carry our nonce and the SHA-256 of exactly these bytes: a
    token for something else would date the wrong signature.
    """
    from rfc3161_client import HashAlgorithm, TimestampRequestBuilder, decode_timestamp_response

    request = (
        TimestampRequestBuilder()
        .hash_algorithm(HashAlgorithm.SHA256)
        .data(signature)
        .nonce(nonce=True)
        .build()
    )
    http = urllib.request.Request(
        url,
        data=request.as_bytes(),
        headers={"Content-Type": "application/timestamp-query"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(http, timeout=_TIMEOUT) as reply:
            body = reply.read(1 << 20)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise SignatureError(f"the TSA at {url} failed: {exc}", code=Code.TSA_UNREACHABLE) from exc
    try:
        response = decode_timestamp_response(body)
    except ValueError as exc:
        raise SignatureError(
            f"the TSA at {url} sent no timestamp: {exc}", code=Code.TSA_BAD_RESPONSE
        ) from exc
    info = response.tst_info
    if (
        info.nonce != request.nonce
        or info.message_imprint.message != hashlib.sha256(signature).digest()
    ):
        raise SignatureError(
            f"the TSA at {url} timestamped something else (nonce or digest differ)",
            code=Code.TSA_BAD_RESPONSE,
        )
    return bytes(response.as_bytes())


def timestamp_material(tokens: Sequence[bytes]) -> dict[str, object]:
    """The bundle's ``timestampVerificationData`` for these tokens."""
    return {
        "rfc3161Timestamps": [
            {"signedTimestamp": base64.b64encode(t).decode("ascii")} for t in tokens
        ]
    }


def verified_time(
    tokens: Sequence[bytes], signature: bytes, authorities: Sequence[TimestampAuthority]
) -> datetime | None:
    """The earliest time a trusted TSA vouches for over ``signature``; None without tokens.

    A token that no trusted authority verifies is a failure, not something to
    skip: a bundle claiming a time must prove it.
    """
    from rfc3161_client import VerificationError as TsaError
    from rfc3161_client import VerifierBuilder, decode_timestamp_response

    if not tokens or not authorities:
        return None  # no time claimed, or none asked for: the signature alone still counts
    if len(tokens) > MAX_TIMESTAMPS:
        raise VerificationError(
            f"{len(tokens)} timestamps in one bundle (at most {MAX_TIMESTAMPS})",
            code=Code.TIMESTAMP_INVALID,
        )
    times: list[datetime] = []
    for i, token in enumerate(tokens):
        try:
            response = decode_timestamp_response(token)
        except ValueError as exc:
            raise VerificationError(
                f"timestamp {i} is not an RFC 3161 response: {exc}", code=Code.TIMESTAMP_INVALID
            ) from exc
        for tsa in authorities:
            builder = VerifierBuilder().tsa_certificate(tsa.chain[0])
            builder = builder.add_root_certificate(tsa.chain[-1])
            for mid in tsa.chain[1:-1]:
                builder = builder.add_intermediate_certificate(mid)
            try:
                builder.build().verify_message(response, signature)
            except (TsaError, ValueError):
                continue
            times.append(response.tst_info.gen_time)
            break
        else:
            raise VerificationError(
                f"timestamp {i} is not signed by a trusted TSA over this signature",
                code=Code.TIMESTAMP_UNTRUSTED,
            )
    return min(times)
