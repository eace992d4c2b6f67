"""An RFC 3161 timestamp authority, ``TimeStampResp`` built by hand in DER.

The token is CMS SignedData over a TSTInfo with the signed attributes RFC 3161/5816
require (content type, message digest, ESS signing-certificate-v2), signed by a TSA
leaf whose critical EKU is timeStamping — what ``rfc3161_client``'s verifier checks.
"""

from __future__ import annotations

import hashlib
import itertools
import threading
from datetime import datetime, timezone

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from . import _der
from .ca import CertifiedKey

_SIGNED_DATA = "1.2.840.113549.1.7.2"
_TST_INFO = "1.2.840.113549.1.9.16.1.4"
_CONTENT_TYPE = "1.2.840.113549.1.9.3"
_MESSAGE_DIGEST = "1.2.840.113549.1.9.4"
_SIGNING_CERTIFICATE_V2 = "1.2.840.113549.1.9.16.2.47"
_SHA256 = "2.16.840.1.101.3.4.2.1"
_ECDSA_SHA256 = "1.2.840.10045.4.3.2"
POLICY = "1.3.6.1.4.1.57264.2"
# Imprint hash OIDs the request may use, with their digest lengths.
_IMPRINT_HASHES = {
    _der.oid(_SHA256): 32,
    _der.oid("2.16.840.1.101.3.4.2.2"): 48,
    _der.oid("2.16.840.1.101.3.4.2.3"): 64,
}
_INTEGER, _BOOLEAN, _OID, _SEQUENCE = 0x02, 0x01, 0x06, 0x30


class TimestampError(Exception):
    """A malformed request (the server answers HTTP 400)."""


class _Request:
    """The parts of a ``TimeStampReq`` the reply echoes."""

    def __init__(self, der: bytes) -> None:
        try:
            tag, content = _der.split_tlv(der)
            items = _der.elements(content)
        except ValueError as exc:
            raise TimestampError(f"malformed TimeStampReq: {exc}") from exc
        if tag != _SEQUENCE or len(items) < 2 or items[0][2] != _der.integer(1):
            raise TimestampError("not a version 1 TimeStampReq")
        self.imprint = items[1][2]
        self._check_imprint(items[1][1])
        self.nonce: bytes | None = None
        self.cert_req = False
        for item_tag, _content, encoding in items[2:]:
            if item_tag == _INTEGER:
                self.nonce = encoding
            elif item_tag == _BOOLEAN:
                self.cert_req = encoding == _der.boolean(True)
            elif item_tag == _OID and encoding != _der.oid(POLICY):
                raise TimestampError("unsupported request policy")

    @staticmethod
    def _check_imprint(content: bytes) -> None:
        try:
            (_, alg, _), (digest_tag, digest, _) = _der.elements(content)
            alg_oid = _der.elements(alg)[0][2]
        except (ValueError, IndexError) as exc:
            raise TimestampError(f"malformed messageImprint: {exc}") from exc
        if digest_tag != 0x04 or _IMPRINT_HASHES.get(alg_oid) != len(digest):
            raise TimestampError("messageImprint must be a SHA-2 digest of the right length")


class TimestampAuthority:
    def __init__(self, root: CertifiedKey, signer: CertifiedKey) -> None:
        self.root = root
        self.signer = signer
        self._serials = itertools.count(1)
        self._lock = threading.Lock()

    def respond(self, request_der: bytes) -> bytes:
        request = _Request(request_der)
        with self._lock:
            serial = next(self._serials)
        tst_info = _der.seq(
            _der.integer(1),
            _der.oid(POLICY),
            request.imprint,
            _der.integer(serial),
            _der.generalized_time(datetime.now(timezone.utc)),
            *([request.nonce] if request.nonce else []),
        )
        signer_der = self.signer.cert.public_bytes(serialization.Encoding.DER)

        def attribute(oid: str, value: bytes) -> bytes:
            return _der.seq(_der.oid(oid), _der.set_of(value))

        signed_attrs = _der.set_of(
            attribute(_CONTENT_TYPE, _der.oid(_TST_INFO)),
            attribute(_MESSAGE_DIGEST, _der.octet_string(hashlib.sha256(tst_info).digest())),
            # SigningCertificateV2 { certs: [ESSCertIDv2 { certHash }] }, SHA-256 by default.
            attribute(
                _SIGNING_CERTIFICATE_V2,
                _der.seq(
                    _der.seq(_der.seq(_der.octet_string(hashlib.sha256(signer_der).digest())))
                ),
            ),
        )
        # CMS signs the DER SET OF the attributes, then stores it re-tagged [0] IMPLICIT.
        signature = self.signer.key.sign(signed_attrs, ec.ECDSA(hashes.SHA256()))
        signer_info = _der.seq(
            _der.integer(1),
            _der.seq(
                self.signer.cert.issuer.public_bytes(), _der.integer(self.signer.cert.serial_number)
            ),
            _der.seq(_der.oid(_SHA256)),
            _der.implicit_constructed(0, signed_attrs),
            _der.seq(_der.oid(_ECDSA_SHA256)),
            _der.octet_string(signature),
        )
        certificates = (
            [_der.implicit_constructed(0, _der.set_of(signer_der))] if request.cert_req else []
        )
        signed_data = _der.seq(
            _der.integer(3),
            _der.set_of(_der.seq(_der.oid(_SHA256))),
            _der.seq(_der.oid(_TST_INFO), _der.explicit(0, _der.octet_string(tst_info))),
            *certificates,
            _der.set_of(signer_info),
        )
        token = _der.seq(_der.oid(_SIGNED_DATA), _der.explicit(0, signed_data))
        granted = _der.seq(_der.integer(0))
        return _der.seq(granted, token)
