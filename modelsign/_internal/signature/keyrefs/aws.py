"""AWS KMS keys, ``awskms://[HOST[:PORT]]/KEY``, through boto3 (the official SDK).

KEY is what cosign accepts: a key ID (``1234abcd-12ab-34cd-56ef-1234567890ab``,
or ``mrk-…`` for a multi-Region key), a key ARN, an alias name
(``alias/release``) or an alias ARN::

    awskms:///arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab
    awskms:///alias/release
    awskms://localhost:4566/alias/release

``HOST:PORT``, when given, is the KMS endpoint: ``http://`` for ``localhost``,
``127.0.0.1`` and ``[::1]`` (a local KMS-compatible server), ``https://``
otherwise (a VPC endpoint). Without it the SDK picks the endpoint, which
``AWS_ENDPOINT_URL_KMS`` may name. The region is the ARN's, else
``AWS_REGION`` / ``AWS_DEFAULT_REGION``, else the SDK profile's. Credentials come
from the SDK's default chain (environment, shared files, SSO, container and
instance roles).

The key must be an ``ECC_NIST_P256`` / ``P384`` / ``P521`` key for
``SIGN_VERIFY``. Only the digest goes to KMS (``MessageType=DIGEST``, with the
curve's ``ECDSA_SHA_*``), so statements of any size sign; KMS answers with a DER
signature. Each call has bounded timeouts and at most one retry.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any

import boto3
from botocore import exceptions as aws
from botocore.config import Config
from cryptography.hazmat.primitives import serialization

from ....codes import Code
from ....errors import ModelsignError
from .. import keys
from . import HeldKey, Secrets
from ._kms import CURVES, KmsKey, ec_public_key, kms_error, public_key_reader

_UUID = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
_KEY_ID = rf"(?:{_UUID}|mrk-[0-9a-fA-F]{{32}})"
_ALIAS = r"alias/[A-Za-z0-9/_-]{1,250}"
_ARN = r"arn:aws(?:-cn|-us-gov)?:kms:(?P<region>[a-z]{2}(?:-[a-z]+)+-\d{1,2}):\d{12}:"
_HOST = r"(?P<host>(?:[A-Za-z0-9-]+\.)*[A-Za-z0-9-]+|\[[0-9A-Fa-f:.]+\])(?::(?P<port>\d{1,5}))?"
_URI = re.compile(
    rf"awskms://(?:{_HOST})?/(?P<key>{_KEY_ID}|{_ALIAS}|{_ARN}(?:key/{_KEY_ID}|{_ALIAS}))",
    re.ASCII,
)
_LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "[::1]"})
_FORM = "awskms://[HOST[:PORT]]/KEY where KEY is a key ID, alias/NAME, or a key or alias ARN"

#: Each key spec modelsign signs with: its curve, its hash, KMS's name for the algorithm.
_SPECS: dict[str, tuple[str, str, str]] = {
    "ECC_NIST_P256": ("P-256", "sha256", "ECDSA_SHA_256"),
    "ECC_NIST_P384": ("P-384", "sha384", "ECDSA_SHA_384"),
    "ECC_NIST_P521": ("P-521", "sha512", "ECDSA_SHA_512"),
}

# Bounded: a KMS that does not answer fails in seconds, not minutes.
_CONFIG = Config(
    connect_timeout=5,
    read_timeout=20,
    retries={"total_max_attempts": 2, "mode": "standard"},
    user_agent_extra="modelsign",
)

# Error codes AWS gives to a caller it does not know or will not let use the key.
_DENIED = frozenset(
    {
        "AccessDeniedException",
        "AccessDenied",
        "UnrecognizedClientException",
        "InvalidClientTokenId",
        "InvalidSignatureException",
        "SignatureDoesNotMatch",
        "IncompleteSignature",
        "MissingAuthenticationToken",
        "ExpiredToken",
        "ExpiredTokenException",
        "RequestExpired",
    }
)
_NOT_FOUND = frozenset({"NotFoundException", "InvalidArnException"})
_NO_CREDENTIALS = (
    aws.NoCredentialsError,
    aws.PartialCredentialsError,
    aws.CredentialRetrievalError,
    aws.TokenRetrievalError,
    aws.SSOError,
    aws.ProfileNotFound,
)
_UNREACHABLE = (aws.ConnectionError, aws.HTTPClientError)


@dataclass(frozen=True)
class _Ref:
    """A parsed ``awskms://`` URI: where the KMS is, which key, in which region."""

    uri: str
    key_id: str
    endpoint: str | None
    region: str | None


def _parse(uri: str, env: Mapping[str, str]) -> _Ref:
    scheme, sep, rest = uri.partition("://")
    match = _URI.fullmatch(f"awskms://{rest}") if sep and scheme.lower() == "awskms" else None
    if match is None:
        raise kms_error(uri, Code.KEY_URI_INVALID, f"not an AWS KMS key URI; the form is {_FORM}")
    endpoint = None
    if match["host"]:
        port = match["port"]
        if port is not None and not 0 < int(port) < 65536:
            raise kms_error(uri, Code.KEY_URI_INVALID, f"port {port} is out of range")
        host = match["host"]
        scheme = "http" if host.lower() in _LOCAL_HOSTS else "https"
        endpoint = f"{scheme}://{host}" + (f":{port}" if port else "")
    region = match["region"] or env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or None
    return _Ref(uri, match["key"], endpoint, region)


def _error(uri: str, exc: Exception) -> ModelsignError:
    """The modelsign error for an exception boto3 raised while using the key at ``uri``."""
    if isinstance(exc, aws.ClientError):
        error = exc.response.get("Error", {})
        code, message = str(error.get("Code", "")), str(error.get("Message", ""))
        detail = f"{code}: {message}" if message else code
        if code in _NOT_FOUND:
            return kms_error(uri, Code.KMS_KEY_NOT_FOUND, f"AWS KMS has no such key ({detail})")
        if code in _DENIED:
            return kms_error(
                uri,
                Code.KMS_PERMISSION_DENIED,
                f"AWS KMS refused the request ({detail}); check the credentials and the "
                "key policy (kms:GetPublicKey, kms:Sign)",
            )
        return kms_error(uri, Code.KMS_ERROR, f"AWS KMS failed ({detail})")
    if isinstance(exc, _NO_CREDENTIALS):
        return kms_error(
            uri,
            Code.KMS_PERMISSION_DENIED,
            f"no usable AWS credentials ({exc}); the SDK looks in the environment, the "
            "shared credentials and config files (AWS_PROFILE), SSO, and container and "
            "instance roles",
        )
    if isinstance(exc, _UNREACHABLE):
        return kms_error(uri, Code.KMS_UNREACHABLE, f"AWS KMS cannot be reached: {exc}")
    if isinstance(exc, aws.NoRegionError):
        return kms_error(
            uri,
            Code.KEY_URI_INVALID,
            "no AWS region: name the key by its ARN, or set AWS_REGION (or a profile's region)",
        )
    return kms_error(uri, Code.KMS_ERROR, f"the AWS SDK failed: {type(exc).__name__}: {exc}")


def _call(uri: str, method: Callable[..., Any], **params: Any) -> dict[str, Any]:
    """One KMS call; every SDK exception becomes a modelsign error naming ``uri``."""
    try:
        reply: dict[str, Any] = method(**params)
    except (aws.BotoCoreError, aws.ClientError) as exc:
        raise _error(uri, exc) from exc
    return reply


def _client(ref: _Ref) -> Any:
    """A KMS client for ``ref``: its endpoint and region, the SDK's credentials, bounded calls."""
    try:
        session = boto3.session.Session()
        return session.client(
            "kms", region_name=ref.region, endpoint_url=ref.endpoint, config=_CONFIG
        )
    except aws.BotoCoreError as exc:
        raise _error(ref.uri, exc) from exc


@dataclass(frozen=True)
class _Public:
    """What GetPublicKey said: the key, the hash and algorithm it signs with, its ARN."""

    key: keys.PublicKey
    hash_name: str
    algorithm: str
    key_id: str  # the key's ARN, so Sign uses the key read here even if an alias moves


def _sign(ref: _Ref, client: Any, public: _Public, digest: bytes) -> bytes:
    """Sign with the key GetPublicKey read (by its ARN); KMS answers in DER."""
    reply = _call(
        ref.uri,
        client.sign,
        KeyId=public.key_id,
        Message=digest,
        MessageType="DIGEST",
        SigningAlgorithm=public.algorithm,
    )
    return bytes(reply["Signature"])


def _read_public(ref: _Ref, client: Any) -> _Public:
    """GetPublicKey, checked: a SIGN_VERIFY key on a NIST curve, its DER key on that curve."""
    uri = ref.uri
    reply = _call(uri, client.get_public_key, KeyId=ref.key_id)
    usage = reply.get("KeyUsage")
    spec = str(reply.get("KeySpec") or reply.get("CustomerMasterKeySpec"))
    if usage != "SIGN_VERIFY":
        raise kms_error(uri, Code.KEY_UNSUPPORTED, f"the key's usage is {usage}, not SIGN_VERIFY")
    if spec not in _SPECS:
        raise kms_error(
            uri,
            Code.KEY_UNSUPPORTED,
            f"the key spec is {spec}; modelsign signs with ECC_NIST_P256, ECC_NIST_P384 or "
            "ECC_NIST_P521 keys (what OMS verifiers accept)",
        )
    curve, hash_name, algorithm = _SPECS[spec]
    try:
        loaded = serialization.load_der_public_key(bytes(reply["PublicKey"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise kms_error(uri, Code.KMS_ERROR, f"unreadable public key from KMS: {exc}") from exc
    public = ec_public_key(loaded, uri, CURVES[curve], spec)
    return _Public(public, hash_name, algorithm, str(reply.get("KeyId") or ref.key_id))


def open_key(uri: str, *, secrets: Secrets, env: Mapping[str, str]) -> HeldKey:
    """The AWS KMS key ``uri`` names (``secrets`` are unused: KMS has no PIN)."""
    ref = _parse(uri, env)
    client = _client(ref)
    return KmsKey(
        uri, partial(_read_public, ref, client), partial(_sign, ref, client), client.close
    )


#: The public half of the key a URI names, read from the KMS (no PIN: KMS has none).
public_key = public_key_reader(open_key)


__all__ = ["open_key", "public_key"]
