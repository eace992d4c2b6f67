"""What the cloud KMS backends share: their errors and the checks on what a KMS returns.

Every SDK exception a backend meets becomes one of these errors, its code saying
what went wrong and its message naming the key's URI (the SDK's own words after
it); nothing an SDK raises reaches the caller as a traceback.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Generic, Protocol, TypeVar

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, utils

from ....codes import Category, Code
from ....errors import InputError, ModelsignError, SignatureError
from .. import keys
from . import NO_SECRETS, HeldKey

#: The curves a KMS key may be on, by the names each provider gives them.
CURVES: dict[str, ec.EllipticCurve] = {
    "P-256": ec.SECP256R1(),
    "P-384": ec.SECP384R1(),
    "P-521": ec.SECP521R1(),
}


def kms_error(uri: str, code: Code, text: str) -> ModelsignError:
    """The error ``code`` for the key at ``uri``: a config error or a service error.

    Codes of the ``config`` category (a bad URI, a missing key, an unsupported
    key) are :class:`InputError`; the others (denied, unreachable, failed) are
    :class:`SignatureError`, as the other signing services' errors are.
    """
    cls = InputError if code.category is Category.CONFIG else SignatureError
    return cls(f"{uri}: {text}", code=code)


def ec_public_key(
    public: object, uri: str, curve: ec.EllipticCurve, kind: str
) -> ec.EllipticCurvePublicKey:
    """``public``, checked to be on ``curve``, the curve the KMS says its key (``kind``) is on."""
    if not isinstance(public, ec.EllipticCurvePublicKey) or public.curve.name != curve.name:
        raise kms_error(
            uri,
            Code.KMS_ERROR,
            f"the KMS says the key is {kind} but returned a public key of another type",
        )
    return public


def check_digest(uri: str, digest: bytes, algorithm: hashes.HashAlgorithm, wanted: str) -> None:
    """Refuse a digest the key's signing algorithm (hash ``wanted``) would not take."""
    if algorithm.name != wanted or len(digest) != algorithm.digest_size:
        raise kms_error(
            uri,
            Code.KEY_UNSUPPORTED,
            f"the key signs {wanted} digests; asked to sign a {len(digest)}-byte "
            f"{algorithm.name} digest",
        )


def der_from_raw(uri: str, raw: bytes, curve: ec.EllipticCurve) -> bytes:
    """An ECDSA signature as r || s (JOSE, fixed width) turned into DER."""
    width = (curve.key_size + 7) // 8
    if len(raw) != 2 * width:
        raise kms_error(
            uri,
            Code.KMS_ERROR,
            f"the KMS returned a {len(raw)}-byte signature; a {curve.name} signature "
            f"is {2 * width} bytes (r || s)",
        )
    r, s = int.from_bytes(raw[:width], "big"), int.from_bytes(raw[width:], "big")
    return utils.encode_dss_signature(r, s)


class KmsPublic(Protocol):
    """What a KMS says of its key: the public key and the hash its algorithm signs."""

    @property
    def key(self) -> keys.PublicKey: ...  # pragma: no cover - a protocol

    @property
    def hash_name(self) -> str: ...  # pragma: no cover - a protocol


P = TypeVar("P", bound=KmsPublic)


class KmsKey(Generic[P]):
    """A key held in a cloud KMS: its public key read once, then each digest signed there.

    ``read`` asks the KMS for the public key (and what the provider needs to
    sign with it: an ARN, a version); ``sign`` signs a digest checked to be the
    one the key's algorithm takes and returns DER; ``close`` ends the client.
    """

    def __init__(
        self,
        uri: str,
        read: Callable[[], P],
        sign: Callable[[P, bytes], bytes],
        close: Callable[[], None],
    ) -> None:
        self._uri, self._read_public, self._sign, self._close = uri, read, sign, close
        self._public: P | None = None

    @property
    def where(self) -> str:
        return self._uri

    def _read(self) -> P:
        if self._public is None:
            self._public = self._read_public()
        return self._public

    def public_key(self) -> keys.PublicKey:
        return self._read().key

    def sign_digest(self, digest: bytes, algorithm: hashes.HashAlgorithm) -> bytes:
        public = self._read()
        check_digest(self._uri, digest, algorithm, public.hash_name)
        return self._sign(public, digest)

    def certificates(self) -> list[x509.Certificate]:
        return []  # a KMS keeps no certificates (--cert gives one)

    def close(self) -> None:
        self._close()


def public_key_reader(
    open_key: Callable[..., HeldKey],
) -> Callable[..., keys.PublicKey]:
    """A backend's ``public_key(uri, *, env)``: open the key, read its public half, close."""

    def public_key(uri: str, *, env: Mapping[str, str]) -> keys.PublicKey:
        key = open_key(uri, secrets=NO_SECRETS, env=env)
        try:
            return key.public_key()
        finally:
            key.close()

    return public_key


__all__ = [
    "CURVES",
    "KmsKey",
    "KmsPublic",
    "check_digest",
    "der_from_raw",
    "ec_public_key",
    "kms_error",
    "public_key_reader",
]
