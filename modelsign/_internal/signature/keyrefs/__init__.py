"""Keys named by URI: held in a PKCS#11 token or a cloud KMS, never on disk.

``--key`` takes a file path or one of these URIs (RFC 7512 for PKCS#11, the
names cosign uses for the KMSs)::

    pkcs11:token=release;object=model-key?module-path=/usr/lib/softhsm/libsofthsm2.so
    awskms:///arn:aws:kms:eu-west-1:111122223333:key/1234abcd-...   (or awskms://HOST:PORT/ID)
    gcpkms://projects/P/locations/L/keyRings/R/cryptoKeys/K/cryptoKeyVersions/1
    azurekms://VAULT.vault.azure.net/KEY[/VERSION]

A held key signs digests: the statement's DSSE pre-authentication encoding is
hashed here with the curve's SHA-2 and only the digest goes to the token or
KMS. Each backend is imported when a URI of its scheme is used, so its SDK is
an optional extra; a missing one is ``KEY_BACKEND_MISSING`` naming the extra.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, utils

from ....codes import Code
from ....errors import InputError, SignatureError
from .. import keys
from . import pkcs11_uri

#: Each URI scheme and the module that serves it, which is also the extra that installs its SDK.
BACKENDS: dict[str, str] = {
    "pkcs11": "pkcs11",
    "awskms": "aws",
    "gcpkms": "gcp",
    "azurekms": "azure",
}

#: Asks for a secret (a token's PIN), given the prompt; None when nobody can be asked.
AskSecret = Callable[[str], str]


class HeldKey(Protocol):
    """A private key held elsewhere: it says its public key and signs digests."""

    @property
    def where(self) -> str:
        """The key's URI without secrets, for messages."""

    def public_key(self) -> keys.PublicKey:
        """The public half, read from the token or KMS."""

    def sign_digest(self, digest: bytes, algorithm: hashes.HashAlgorithm) -> bytes:
        """A DER ECDSA signature of ``digest`` (made with ``algorithm``)."""

    def certificates(self) -> list[x509.Certificate]:
        """The key's certificate and its chain (leaf first) where the holder keeps them."""

    def close(self) -> None:
        """End the session with the holder."""


@dataclass(frozen=True)
class Secrets:
    """Where a held key's PIN may come from, besides its URI's ``pin-source``.

    ``pin``: given by the caller (an environment variable the CLI read).
    ``ask``: a prompt, when a terminal is there to answer it.
    (A ``pin-value`` in the URI is honoured too: a URI from a command line is
    refused by :func:`refuse_secret_in_argument` first.)
    """

    pin: str | None = None
    ask: AskSecret | None = None


NO_SECRETS = Secrets()


def scheme_of(ref: str) -> str | None:
    """The held-key scheme ``ref`` names, or None for a file path."""
    scheme, colon, _ = ref.partition(":")
    if colon and scheme.lower() in BACKENDS:
        return scheme.lower()
    return None


def is_key_uri(ref: str) -> bool:
    """Whether ``ref`` names a held key rather than a key file."""
    return scheme_of(ref) is not None


class _Backend(Protocol):
    def open_key(
        self, uri: str, *, secrets: Secrets, env: Mapping[str, str]
    ) -> HeldKey: ...  # pragma: no cover - a protocol

    def public_key(
        self, uri: str, *, env: Mapping[str, str]
    ) -> keys.PublicKey: ...  # pragma: no cover - a protocol


#: Where a PIN may come from besides the command line (named where one is missing or refused).
PIN_SOURCES = (
    "pin-source=file:/path/to/pin-file in the URI, by --password-env VAR, "
    "in the environment variable MODELSIGN_PKCS11_PIN, or at the prompt"
)


def refuse_secret_in_argument(uri: str) -> None:
    """Refuse a key URI from a command line that carries its PIN (``pin-value``).

    A command line is visible to every user of the machine (``ps``, /proc) and
    lands in shell histories and CI logs.
    """
    if scheme_of(uri) != "pkcs11":
        return
    if pkcs11_uri.holds_pin_value(uri):
        raise InputError(
            "the URI carries the PIN (pin-value), and a command line is visible to every user "
            f"of this machine: give the PIN by {PIN_SOURCES}",
            code=Code.PKCS11_PIN_IN_ARGUMENTS,
            path=pkcs11_uri.redact(uri),
        )


def _backend(uri: str) -> _Backend:
    scheme = scheme_of(uri)
    if scheme is None:
        raise InputError(
            f"not a key URI: {uri!r} (pkcs11:, awskms://, gcpkms:// or azurekms://)",
            code=Code.KEY_URI_INVALID,
        )
    module = BACKENDS[scheme]
    try:
        found: _Backend = importlib.import_module(f"{__name__}.{module}")
    except ImportError as exc:
        raise InputError(
            f"{scheme} keys need the SDK that {scheme}: URIs use, which is not installed "
            f"({exc.name or exc}): pip install 'modelsign-oms[{module}]'",
            code=Code.KEY_BACKEND_MISSING,
        ) from None
    return found


def open_held_key(
    uri: str, *, secrets: Secrets = NO_SECRETS, env: Mapping[str, str] | None = None
) -> HeldKey:
    """The signing key ``uri`` names, opened (logged in, for a token)."""
    return _backend(uri).open_key(uri, secrets=secrets, env=os.environ if env is None else env)


def held_public_key(uri: str, *, env: Mapping[str, str] | None = None) -> keys.PublicKey:
    """The public key ``uri`` names, read from its holder (no PIN needed)."""
    return _backend(uri).public_key(uri, env=os.environ if env is None else env)


def load_public_key_ref(ref: str, *, env: Mapping[str, str] | None = None) -> keys.PublicKey:
    """A trusted public key: a PEM file, or the public half of a held key by URI."""
    return held_public_key(ref, env=env) if is_key_uri(ref) else keys.load_public_key(ref)


def generate_held_key(
    uri: str,
    key_type: keys.KeyType,
    *,
    secrets: Secrets = NO_SECRETS,
    env: Mapping[str, str] | None = None,
) -> keys.PublicKey:
    """Create an EC key pair of ``key_type`` on the PKCS#11 token ``uri`` names.

    The private key is made on the token (sensitive, never extractable); its
    label and id are the URI's ``object`` and ``id``. Only tokens make keys
    here: a KMS key is made with the provider's own tools and its policies.
    """
    if scheme_of(uri) != "pkcs11":
        raise InputError(
            f"keys are made here only on PKCS#11 tokens, not at {uri.partition(':')[0]}: URIs",
            code=Code.KEY_URI_INVALID,
        )
    if key_type == "ed25519":
        raise InputError(
            "a token key is EC (P-256, P-384 or P-521): OMS verifiers accept no other",
            code=Code.KEY_UNSUPPORTED,
        )
    backend = _backend(uri)
    make: Callable[..., keys.PublicKey] = backend.generate_key  # type: ignore[attr-defined]
    return make(uri, key_type, secrets=secrets, env=os.environ if env is None else env)


def sign_held(key: HeldKey, data: bytes) -> bytes:
    """Sign ``data`` with a held key: its curve's SHA-2 digest goes to the holder.

    The signature is checked against the key's public half before it is used,
    so a holder that signed with another key or hash is caught before any
    bundle is written.
    """
    public = key.public_key()
    if not isinstance(public, ec.EllipticCurvePublicKey):
        raise InputError(
            f"{key.where}: only EC P-256, P-384 and P-521 keys can be held keys",
            code=Code.KEY_UNSUPPORTED,
        )
    algorithm = keys.hash_for(public)
    h = hashes.Hash(algorithm)
    h.update(data)
    digest = h.finalize()
    signature = key.sign_digest(digest, algorithm)
    try:  # checked against the digest: ``data`` is not hashed a second time
        public.verify(signature, digest, ec.ECDSA(utils.Prehashed(algorithm)))
    except InvalidSignature:
        raise SignatureError(
            f"{key.where}: the signature returned does not verify with the key's public half "
            f"(key hint {keys.key_hint(public)})",
            code=Code.HELD_KEY_BAD_SIGNATURE,
        ) from None
    return signature


__all__ = [
    "BACKENDS",
    "NO_SECRETS",
    "PIN_SOURCES",
    "AskSecret",
    "HeldKey",
    "Secrets",
    "generate_held_key",
    "held_public_key",
    "is_key_uri",
    "load_public_key_ref",
    "open_held_key",
    "refuse_secret_in_argument",
    "scheme_of",
    "sign_held",
]
