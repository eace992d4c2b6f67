"""Google Cloud KMS keys, ``gcpkms://`` + a key version's resource name, through google-cloud-kms.

::

    gcpkms://projects/P/locations/L/keyRings/R/cryptoKeys/K/cryptoKeyVersions/V

Cloud KMS signs with a key *version*, so the URI names one (cosign's form
without ``/cryptoKeyVersions/V`` is refused: which version would sign is not
something to guess). The version's algorithm must be ``EC_SIGN_P256_SHA256`` or
``EC_SIGN_P384_SHA384`` (Cloud KMS has no P-521 keys).

Credentials are the SDK's Application Default Credentials
(``GOOGLE_APPLICATION_CREDENTIALS``, ``gcloud auth application-default login``,
the metadata server). ``MODELSIGN_GCPKMS_ENDPOINT`` (``https://HOST[:PORT]``, or
``http://`` for ``localhost`` / ``127.0.0.1``) sends the calls to another endpoint
over the REST transport; otherwise the SDK's default applies.

Only the digest goes to KMS, with its CRC32C; the integrity fields of each
reply (``verifiedDigestCrc32c``, ``signatureCrc32c``, ``pemCrc32c``, ``name``)
are checked, as Google's documentation asks. Calls have bounded timeouts and
retries.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any
from urllib.parse import urlsplit

import requests
from google.api_core import exceptions as api
from google.api_core import retry as retries
from google.auth import credentials as ga_credentials
from google.auth import exceptions as auth
from google.cloud import kms

from ....codes import Code
from ....errors import ModelsignError
from .. import keys
from . import HeldKey, Secrets
from ._kms import CURVES, KmsKey, ec_public_key, kms_error, public_key_reader

#: The environment variable naming another Cloud KMS endpoint (a stand-in, a private one).
ENDPOINT_VARIABLE = "MODELSIGN_GCPKMS_ENDPOINT"

_KEY = (
    r"projects/(?:[a-z0-9.-]+:)?[a-z0-9][a-z0-9-]{0,62}/locations/[a-z0-9-]{1,63}"
    r"/keyRings/[A-Za-z0-9_-]{1,63}/cryptoKeys/[A-Za-z0-9_-]{1,63}"
)
_URI = re.compile(rf"gcpkms://(?P<name>{_KEY}(?P<version>/cryptoKeyVersions/[1-9][0-9]{{0,17}})?)")
_FORM = "gcpkms://projects/P/locations/L/keyRings/R/cryptoKeys/K/cryptoKeyVersions/V"
_LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})

_Algorithm = kms.CryptoKeyVersion.CryptoKeyVersionAlgorithm
#: Each algorithm modelsign signs with: its curve and its hash.
_ALGORITHMS: dict[int, tuple[str, str]] = {
    _Algorithm.EC_SIGN_P256_SHA256: ("P-256", "sha256"),
    _Algorithm.EC_SIGN_P384_SHA384: ("P-384", "sha384"),
}

# Bounded: a KMS that does not answer fails in seconds, not the SDK's default minute.
_TIMEOUT = 20.0
_RETRY = retries.Retry(
    initial=0.25,
    maximum=2.0,
    multiplier=2.0,
    timeout=10.0,
    predicate=retries.if_exception_type(api.ServiceUnavailable, api.DeadlineExceeded),
)

# The exceptions the SDK and its transports raise: each becomes a modelsign error.
_SDK_ERRORS = (api.GoogleAPIError, auth.GoogleAuthError, requests.RequestException)
_UNREACHABLE = (
    api.ServiceUnavailable,
    api.DeadlineExceeded,
    api.RetryError,
    auth.TransportError,
    requests.ConnectionError,
)


def _crc32c_table() -> tuple[int, ...]:
    table = []
    for i in range(256):
        crc = i
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
        table.append(crc)
    return tuple(table)


_CRC32C_TABLE = _crc32c_table()


def crc32c(data: bytes) -> int:
    """CRC-32C (Castagnoli), the checksum Cloud KMS puts on what it sends and receives."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc = _CRC32C_TABLE[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def _parse(uri: str) -> str:
    """The key version's resource name in ``uri``."""
    scheme, sep, rest = uri.partition("://")
    match = _URI.fullmatch(f"gcpkms://{rest}") if sep and scheme.lower() == "gcpkms" else None
    if match is None:
        raise kms_error(uri, Code.KEY_URI_INVALID, f"not a Cloud KMS key URI; the form is {_FORM}")
    if match["version"] is None:
        raise kms_error(
            uri,
            Code.KEY_URI_INVALID,
            "Cloud KMS signs with a key version: end the URI with /cryptoKeyVersions/V",
        )
    return match["name"]


def _endpoint(uri: str, env: Mapping[str, str]) -> str | None:
    """``MODELSIGN_GCPKMS_ENDPOINT``, checked: https, or http to this machine only."""
    endpoint = env.get(ENDPOINT_VARIABLE)
    if not endpoint:
        return None
    parts = urlsplit(endpoint)
    local = parts.scheme == "http" and parts.hostname in _LOCAL_HOSTS
    if not (parts.scheme == "https" or local) or not parts.hostname or parts.path not in ("", "/"):
        raise kms_error(
            uri,
            Code.KEY_URI_INVALID,
            f"{ENDPOINT_VARIABLE}={endpoint!r} is not https://HOST[:PORT] "
            "(or http:// to localhost or 127.0.0.1)",
        )
    return endpoint.rstrip("/")


def _error(uri: str, exc: Exception) -> ModelsignError:
    """The modelsign error for an exception the SDK raised while using the key at ``uri``."""
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    if isinstance(exc, api.NotFound):
        return kms_error(uri, Code.KMS_KEY_NOT_FOUND, f"Cloud KMS has no such key version ({text})")
    if isinstance(exc, auth.DefaultCredentialsError):
        return kms_error(
            uri,
            Code.KMS_PERMISSION_DENIED,
            f"no usable Google credentials ({text}); set GOOGLE_APPLICATION_CREDENTIALS or "
            "run 'gcloud auth application-default login'",
        )
    if isinstance(exc, api.Forbidden | api.Unauthorized):
        return kms_error(
            uri,
            Code.KMS_PERMISSION_DENIED,
            f"Cloud KMS refused the caller ({text}); check the credentials and the "
            "cloudkms.cryptoKeyVersions.viewPublicKey / useToSign permissions",
        )
    if isinstance(exc, auth.RefreshError):
        return kms_error(uri, Code.KMS_PERMISSION_DENIED, f"Google credentials failed: {text}")
    if isinstance(exc, _UNREACHABLE):
        return kms_error(uri, Code.KMS_UNREACHABLE, f"Cloud KMS cannot be reached: {text}")
    if isinstance(exc, requests.Timeout):
        return kms_error(uri, Code.KMS_UNREACHABLE, f"Cloud KMS did not answer in time: {text}")
    if isinstance(exc, api.GoogleAPICallError):
        return kms_error(uri, Code.KMS_ERROR, f"Cloud KMS failed ({text})")
    return kms_error(uri, Code.KMS_ERROR, f"the Cloud KMS SDK failed: {type(exc).__name__}: {text}")


def _call(uri: str, method: Callable[..., Any], request: dict[str, Any]) -> Any:
    """One KMS call with bounded retries and timeout; every SDK exception becomes ours."""
    try:
        return method(request=request, retry=_RETRY, timeout=_TIMEOUT)
    except _SDK_ERRORS as exc:
        raise _error(uri, exc) from exc


def _client(
    uri: str, env: Mapping[str, str], *, credentials: ga_credentials.Credentials | None = None
) -> kms.KeyManagementServiceClient:
    """A Cloud KMS client: the SDK's default, or REST to ``MODELSIGN_GCPKMS_ENDPOINT``.

    ``credentials`` default to Application Default Credentials; tests give
    anonymous ones (through this factory) to talk to a local stand-in.
    """
    endpoint = _endpoint(uri, env)
    try:
        if endpoint is None:
            return kms.KeyManagementServiceClient(credentials=credentials)
        return kms.KeyManagementServiceClient(
            credentials=credentials, transport="rest", client_options={"api_endpoint": endpoint}
        )
    except _SDK_ERRORS as exc:
        raise _error(uri, exc) from exc


@dataclass(frozen=True)
class _Public:
    key: keys.PublicKey
    hash_name: str


def _sign(
    uri: str, name: str, client: kms.KeyManagementServiceClient, public: _Public, digest: bytes
) -> bytes:
    """AsymmetricSign, its CRC32C checks both ways (the digest it signed, the signature)."""
    request = {"name": name, "digest": {public.hash_name: digest}, "digest_crc32c": crc32c(digest)}
    reply = _call(uri, client.asymmetric_sign, request)
    signature = bytes(reply.signature)
    if not reply.verified_digest_crc32c or (reply.name and reply.name != name):
        raise kms_error(
            uri, Code.KMS_ERROR, "Cloud KMS did not confirm the digest it signed (CRC32C)"
        )
    if reply.signature_crc32c != crc32c(signature):
        raise kms_error(
            uri, Code.KMS_ERROR, "the signature was damaged in transit (CRC32C mismatch)"
        )
    return signature


def _read_public(uri: str, name: str, client: kms.KeyManagementServiceClient) -> _Public:
    """GetPublicKey, checked: its CRC32C, its name, an EC P-256 / P-384 signing algorithm."""
    reply = _call(uri, client.get_public_key, {"name": name})
    pem = str(reply.pem).encode()
    if reply.pem_crc32c != crc32c(pem) or (reply.name and reply.name != name):
        raise kms_error(uri, Code.KMS_ERROR, "the public key was damaged in transit (CRC32C)")
    found = _ALGORITHMS.get(int(reply.algorithm))
    if found is None:
        raise kms_error(
            uri,
            Code.KEY_UNSUPPORTED,
            f"the key version's algorithm is {_Algorithm(reply.algorithm).name}; modelsign "
            "signs with EC_SIGN_P256_SHA256 or EC_SIGN_P384_SHA384 (what OMS verifiers accept)",
        )
    curve, hash_name = found
    public = keys.load_public_key_pem(pem, uri)
    return _Public(
        ec_public_key(public, uri, CURVES[curve], _Algorithm(reply.algorithm).name), hash_name
    )


def open_key(uri: str, *, secrets: Secrets, env: Mapping[str, str]) -> HeldKey:
    """The Cloud KMS key version ``uri`` names (``secrets`` are unused: KMS has no PIN)."""
    name, client = _parse(uri), _client(uri, env)
    return KmsKey(
        uri,
        partial(_read_public, uri, name, client),
        partial(_sign, uri, name, client),
        client.transport.close,
    )


#: The public half of the key a URI names, read from the KMS (no PIN: KMS has none).
public_key = public_key_reader(open_key)


__all__ = ["ENDPOINT_VARIABLE", "crc32c", "open_key", "public_key"]
