"""Azure Key Vault keys, ``azurekms://VAULT-HOST/KEY[/VERSION]``, through azure-keyvault-keys.

::

    azurekms://release-vault.vault.azure.net/model-key
    azurekms://release-vault.vault.azure.net/model-key/0123456789abcdef0123456789abcdef

VAULT-HOST is the vault's DNS name (a Key Vault or a Managed HSM, in any Azure
cloud); the vault URL is ``https://VAULT-HOST``. Without a VERSION the key's
current version signs, and verifying with the URI trusts the current version
only: name the version to keep verifying after a rotation. Credentials are
azure-identity's ``DefaultAzureCredential`` (environment, workload identity,
managed identity, Azure CLI, …).

The key must be an EC key (``EC`` or ``EC-HSM``) on P-256, P-384 or P-521 that
allows ``sign``. Only the digest goes to Key Vault (ES256 / ES384 / ES512);
its r || s answer is turned into DER. Calls have bounded timeouts and one retry.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any

from azure.core import exceptions as az
from azure.core.credentials import TokenCredential
from azure.core.pipeline.transport import HttpTransport
from azure.identity import DefaultAzureCredential
from azure.keyvault.keys import KeyClient
from azure.keyvault.keys.crypto import SignatureAlgorithm
from cryptography.hazmat.primitives.asymmetric import ec

from ....codes import Code
from ....errors import ModelsignError
from . import HeldKey, Secrets
from ._kms import CURVES, KmsKey, der_from_raw, kms_error, public_key_reader

_URI = re.compile(
    r"azurekms://(?P<host>(?:[A-Za-z0-9-]{1,63}\.)+[A-Za-z0-9-]{1,63})"
    r"/(?P<name>[A-Za-z0-9-]{1,127})(?:/(?P<version>[0-9A-Fa-f]{32}))?",
    re.ASCII,
)
_FORM = "azurekms://VAULT.vault.azure.net/KEY[/VERSION]"

#: Each curve modelsign signs with: its hash and Key Vault's name for the algorithm.
_ALGORITHMS: dict[str, tuple[str, SignatureAlgorithm]] = {
    "P-256": ("sha256", SignatureAlgorithm.es256),
    "P-384": ("sha384", SignatureAlgorithm.es384),
    "P-521": ("sha512", SignatureAlgorithm.es512),
}
_EC_TYPES = frozenset({"EC", "EC-HSM"})

# Bounded: a vault that does not answer fails in seconds; one retry, soon.
_PIPELINE: dict[str, Any] = {
    "connection_timeout": 5,
    "read_timeout": 20,
    "retry_total": 1,
    "retry_backoff_factor": 0.5,
    "retry_backoff_max": 2,
}

_UNREACHABLE = (az.ServiceRequestError, az.ServiceResponseError)


@dataclass(frozen=True)
class _Ref:
    uri: str
    vault_url: str
    name: str
    version: str | None


def _parse(uri: str) -> _Ref:
    scheme, sep, rest = uri.partition("://")
    match = _URI.fullmatch(f"azurekms://{rest}") if sep and scheme.lower() == "azurekms" else None
    if match is None:
        raise kms_error(
            uri, Code.KEY_URI_INVALID, f"not an Azure Key Vault key URI; the form is {_FORM}"
        )
    return _Ref(uri, f"https://{match['host'].lower()}", match["name"], match["version"])


def _error(uri: str, exc: Exception) -> ModelsignError:
    """The modelsign error for an exception the SDK raised while using the key at ``uri``."""
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    status = getattr(exc, "status_code", None)
    if isinstance(exc, az.ResourceNotFoundError) or status == 404:
        return kms_error(uri, Code.KMS_KEY_NOT_FOUND, f"the vault has no such key ({text})")
    if isinstance(exc, az.ClientAuthenticationError) and status is None:
        return kms_error(
            uri,
            Code.KMS_PERMISSION_DENIED,
            f"no usable Azure credentials ({text}); DefaultAzureCredential looks in the "
            "environment (AZURE_CLIENT_ID, …), at workload and managed identities, and at "
            "the Azure CLI",
        )
    if isinstance(exc, az.ClientAuthenticationError) or status == 403:
        return kms_error(
            uri,
            Code.KMS_PERMISSION_DENIED,
            f"Key Vault refused the caller ({text}); check the Azure credentials and the "
            "key's get and sign permissions",
        )
    if isinstance(exc, _UNREACHABLE):
        return kms_error(uri, Code.KMS_UNREACHABLE, f"the vault cannot be reached: {text}")
    if isinstance(exc, az.HttpResponseError):
        return kms_error(uri, Code.KMS_ERROR, f"Key Vault failed (HTTP {status}: {text})")
    return kms_error(uri, Code.KMS_ERROR, f"the Key Vault SDK failed: {type(exc).__name__}: {text}")


def _call(uri: str, method: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """One Key Vault call; every SDK exception becomes a modelsign error naming ``uri``.

    ``ValueError`` is what the SDK's challenge policy raises for a vault whose
    authentication challenge names another domain.
    """
    try:
        return method(*args, **kwargs)
    except (az.AzureError, ValueError) as exc:
        raise _error(uri, exc) from exc


def _client(
    vault_url: str,
    *,
    credential: TokenCredential | None = None,
    transport: HttpTransport[Any, Any] | None = None,
) -> tuple[KeyClient, Callable[[], None]]:
    """A Key Vault client for ``vault_url`` and what closes it.

    ``credential`` defaults to ``DefaultAzureCredential`` (closed with the client);
    tests give a credential of their own and an in-process ``transport``
    (through this factory) that answers as Key Vault does.
    """
    owned = None
    if credential is None:
        credential = owned = DefaultAzureCredential()
    options = dict(_PIPELINE) if transport is None else {**_PIPELINE, "transport": transport}
    client = KeyClient(vault_url, credential, **options)

    def close() -> None:
        client.close()
        if owned is not None:
            owned.close()

    return client, close


@dataclass(frozen=True)
class _Public:
    key: ec.EllipticCurvePublicKey
    hash_name: str
    algorithm: SignatureAlgorithm
    version: str  # the version read, so the same version signs


def _sign(ref: _Ref, client: KeyClient, public: _Public, digest: bytes) -> bytes:
    """Sign with the version read; Key Vault answers r || s, turned into DER."""
    crypto = client.get_cryptography_client(ref.name, key_version=public.version)
    result = _call(ref.uri, crypto.sign, public.algorithm, digest)
    return der_from_raw(ref.uri, bytes(result.signature), public.key.curve)


def _text(value: object) -> str:
    """A JWK field as Key Vault spells it (the SDK gives some as str enums)."""
    return str(getattr(value, "value", value))


def _read_public(ref: _Ref, client: KeyClient) -> _Public:
    """get_key, checked: an EC key on a NIST curve that may sign; its JWK as a public key."""
    uri = ref.uri
    found = _call(uri, client.get_key, ref.name, version=ref.version)
    jwk = found.key
    kty, crv = _text(jwk.kty), _text(jwk.crv)
    if kty not in _EC_TYPES or crv not in _ALGORITHMS:
        kind = f"{kty} {crv}" if kty in _EC_TYPES else kty
        raise kms_error(
            uri,
            Code.KEY_UNSUPPORTED,
            f"the key is {kind}; modelsign signs with EC P-256, P-384 or P-521 keys "
            "(what OMS verifiers accept)",
        )
    if jwk.key_ops is not None and "sign" not in [_text(op) for op in jwk.key_ops]:
        raise kms_error(uri, Code.KEY_UNSUPPORTED, "the key's permitted operations leave out sign")
    try:
        numbers = ec.EllipticCurvePublicNumbers(
            int.from_bytes(jwk.x, "big"), int.from_bytes(jwk.y, "big"), CURVES[crv]
        )
        public = numbers.public_key()  # on CURVES[crv] by construction: nothing to check
    except (TypeError, ValueError) as exc:
        raise kms_error(uri, Code.KMS_ERROR, f"the vault returned an unusable key: {exc}") from exc
    hash_name, algorithm = _ALGORITHMS[crv]
    version = found.properties.version or ref.version or ""
    return _Public(public, hash_name, algorithm, version)


def open_key(uri: str, *, secrets: Secrets, env: Mapping[str, str]) -> HeldKey:
    """The Key Vault key ``uri`` names (``secrets`` are unused: Key Vault has no PIN)."""
    ref = _parse(uri)
    client, close = _client(ref.vault_url)
    return KmsKey(uri, partial(_read_public, ref, client), partial(_sign, ref, client), close)


#: The public half of the key a URI names, read from the KMS (no PIN: KMS has none).
public_key = public_key_reader(open_key)


__all__ = ["open_key", "public_key"]
