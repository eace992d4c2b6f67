"""A certificate-transparency log that only signs SCTs (RFC 6962 §3.2).

Nothing is logged: sigstore checks only the SCT's signature, over the TBS
precertificate plus the SHA-256 hash of the issuer's public key (``_internal/sct.py``).
"""

from __future__ import annotations

import struct

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from . import _der
from .ca import key_id, new_key

SCT_LIST_OID = "1.3.6.1.4.1.11129.2.4.2"

_V1 = 0
_CERTIFICATE_TIMESTAMP = 0
_PRECERT_ENTRY = 1
_SHA256 = 4
_ECDSA = 3


def _u24(n: int) -> bytes:
    return n.to_bytes(3, "big")


def _u16_prefixed(data: bytes) -> bytes:
    return struct.pack("!H", len(data)) + data


class CTLog:
    def __init__(self) -> None:
        self.key = new_key()
        self.log_id = key_id(self.key.public_key())

    def sign_precertificate(
        self, tbs_precert: bytes, issuer_key_hash: bytes, when_ms: int
    ) -> bytes:
        """One serialized ``SignedCertificateTimestamp`` for a precertificate entry."""
        extensions = b""
        signed = (
            struct.pack("!BBQH", _V1, _CERTIFICATE_TIMESTAMP, when_ms, _PRECERT_ENTRY)
            + issuer_key_hash
            + _u24(len(tbs_precert))
            + tbs_precert
            + _u16_prefixed(extensions)
        )
        signature = self.key.sign(signed, ec.ECDSA(hashes.SHA256()))
        return (
            struct.pack("!B", _V1)
            + self.log_id
            + struct.pack("!Q", when_ms)
            + _u16_prefixed(extensions)
            + struct.pack("!BB", _SHA256, _ECDSA)
            + _u16_prefixed(signature)
        )


def sct_list_extension_value(scts: list[bytes]) -> bytes:
    """The extension's DER value: OCTET STRING of a TLS ``SignedCertificateTimestampList``."""
    return _der.octet_string(_u16_prefixed(b"".join(_u16_prefixed(s) for s in scts)))
