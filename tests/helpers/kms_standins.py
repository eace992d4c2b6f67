"""Local stand-ins for the cloud KMSs the held-key backends talk to, through their real SDKs.

- **AWS KMS**: moto's KMS server (``moto[server]``), run in a thread on
  127.0.0.1 by :func:`moto_kms`; boto3 talks to it over HTTP as to AWS. moto
  5.2.6 does not implement ``Sign`` with ``MessageType=DIGEST``: its
  ``KmsResponse.sign`` hashes the ``Message`` again as if it were ``RAW``. While
  the server runs, that method is replaced (in-process: the server thread is in
  the test process) by :func:`_sign`, which does what AWS documents for
  ``DIGEST``: the digest's length must be the algorithm's, and it is signed as
  given (``ECDSA(Prehashed(hash))``, DER out). It also does two things AWS does
  and moto's ``Sign`` does not: it refuses a disabled key (``DisabledException``)
  and a key whose key policy denies ``kms:Sign`` (``AccessDeniedException``,
  through moto's own policy check, which moto applies to ``kms:DescribeKey``
  only). ``RAW`` signing, and everything else, stays moto's.
- **Cloud KMS**: :class:`CloudKmsStandin`, an HTTP server on 127.0.0.1 speaking
  the KMS v1 REST protocol for the two requests a signer makes.
- **Azure Key Vault**: :class:`KeyVaultStandin`, answering in-process through
  the SDK's transport hook (``transport=``), with :class:`VaultCredential` as the
  ``TokenCredential``.

:func:`round_trip` is the sign → verify → tamper check each backend's tests make.
"""

from __future__ import annotations

import base64
import io
import json
import logging
import re
import secrets
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest
import requests
import requests.adapters
import urllib3
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, utils

AWS_REGION = "us-east-1"
AWS_ACCOUNT = "123456789012"  # moto's default account
AWS_TEST_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
}
_DIGEST_HASHES = {
    "ECDSA_SHA_256": hashes.SHA256(),
    "ECDSA_SHA_384": hashes.SHA384(),
    "ECDSA_SHA_512": hashes.SHA512(),
}


def _sign(self: Any) -> str:
    """moto's ``KmsResponse.sign``, with ``MessageType=DIGEST`` done as AWS documents it."""
    from moto.core.exceptions import JsonRESTError
    from moto.kms.exceptions import ValidationException
    from moto.kms.responses import KmsResponse
    from moto.kms.utils import ECDSAPrivateKey

    if self._get_param("MessageType") != "DIGEST":
        return KmsResponse._modelsign_moto_sign(self)  # type: ignore[attr-defined,no-any-return]
    key_id = self._get_param("KeyId")
    algorithm = self._get_param("SigningAlgorithm")
    digest = self._get_param("Message")
    self._validate_key_id(key_id)
    key = self.kms_backend.describe_key(key_id)
    self._validate_key_policy(key.id, "kms:Sign")
    if not key.enabled:
        raise JsonRESTError("DisabledException", f"{key.arn} is disabled.")
    if key.key_usage != "SIGN_VERIFY" or algorithm not in key.signing_algorithms:
        raise ValidationException(f"{algorithm} is not a signing algorithm of key {key.arn}")
    if not isinstance(key.private_key, ECDSAPrivateKey):
        raise ValidationException("this stand-in signs digests with ECC keys only")
    hash_ = _DIGEST_HASHES[algorithm]
    if len(digest) != hash_.digest_size:
        raise ValidationException(f"Digest is invalid length for algorithm {algorithm}.")
    signature = key.private_key.private_key.sign(digest, ec.ECDSA(utils.Prehashed(hash_)))
    return json.dumps(
        {
            "KeyId": key.arn,
            "Signature": base64.b64encode(signature).decode(),
            "SigningAlgorithm": algorithm,
        }
    )


@dataclass(frozen=True)
class MotoKms:
    """A running moto KMS server: its endpoint, and a boto3 client to set keys up with."""

    host: str
    port: int

    @property
    def endpoint(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def authority(self) -> str:
        """``HOST:PORT``, as an ``awskms://HOST:PORT/KEY`` URI names the endpoint."""
        return f"{self.host}:{self.port}"

    def client(self) -> Any:
        import boto3

        return boto3.client(
            "kms",
            endpoint_url=self.endpoint,
            region_name=AWS_REGION,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )

    def create_key(
        self, spec: str = "ECC_NIST_P256", *, alias: str | None = None, policy: str | None = None
    ) -> str:
        """A new signing key of ``spec`` (its key ID), optionally aliased and with a key policy."""
        params: dict[str, Any] = {"KeyUsage": "SIGN_VERIFY", "KeySpec": spec}
        if spec == "SYMMETRIC_DEFAULT":
            params["KeyUsage"] = "ENCRYPT_DECRYPT"
        if policy is not None:
            params["Policy"] = policy
        client = self.client()
        key_id: str = client.create_key(**params)["KeyMetadata"]["KeyId"]
        if alias is not None:
            client.create_alias(AliasName=alias, TargetKeyId=key_id)
        return key_id


@contextmanager
def moto_kms() -> Iterator[MotoKms]:
    """moto's KMS server on 127.0.0.1 (a free port), signing digests as AWS does."""
    from moto.kms import policy_validator
    from moto.kms.responses import KmsResponse
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    access_log = logging.getLogger("werkzeug")  # the server's per-request lines
    level = access_log.level
    access_log.setLevel(logging.WARNING)
    KmsResponse._modelsign_moto_sign = KmsResponse.sign  # type: ignore[attr-defined]
    KmsResponse.sign = _sign  # type: ignore[method-assign]
    policy_validator.ALTERNATIVE_ACTIONS["kms:Sign"] = ["kms:*", "kms:Sign"]
    server.start()
    try:
        host, port = server.get_host_and_port()
        yield MotoKms(host, port)
    finally:
        server.stop()
        KmsResponse.sign = KmsResponse._modelsign_moto_sign  # type: ignore[attr-defined,method-assign]
        del KmsResponse._modelsign_moto_sign  # type: ignore[attr-defined]
        del policy_validator.ALTERNATIVE_ACTIONS["kms:Sign"]
        access_log.setLevel(level)


def isolate_aws(monkeypatch: pytest.MonkeyPatch, folder: Path) -> None:
    """Test credentials and region for boto3; none of the host's profiles, shared files,
    endpoints or instance metadata."""
    for name in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_KMS"):
        monkeypatch.delenv(name, raising=False)
    for name, value in AWS_TEST_CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AWS_REGION", AWS_REGION)
    empty = folder / "aws-empty"
    empty.write_text("")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(empty))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(empty))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


def deny_policy(action: str) -> str:
    """A key policy that lets the account do everything but ``action`` on the key."""
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"AWS": f"arn:aws:iam::{AWS_ACCOUNT}:root"},
                    "Action": "kms:*",
                    "Resource": "*",
                },
                {
                    "Effect": "Deny",
                    "Principal": {"AWS": "*"},
                    "Action": [action],
                    "Resource": "*",
                },
            ],
        }
    )


def closed_port() -> int:
    """A port on 127.0.0.1 nothing listens on (bound, then released): a KMS that is not there."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


# -- the round trip every backend's tests make -----------------------------------------


def round_trip(model: Path, uri: str) -> Path:
    """Sign ``model`` with the held key ``uri``, verify it with the key's public half read
    by URI, then flip a weight byte: verification must fail on that tensor. The signature."""
    from modelsign._internal.signature import keys
    from modelsign._internal.signature.keyrefs import held_public_key
    from modelsign._internal.signature.signers import KeySigner
    from modelsign._internal.signature.verifiers import KeyVerifier
    from modelsign.errors import VerificationError
    from modelsign.sign import sign
    from modelsign.verify import verify
    from tests.helpers.signing import flip_byte

    signer = KeySigner.from_uri(uri)
    try:
        result = sign(model, signer=signer, env={})
    finally:
        signer.key.close()  # type: ignore[union-attr]
    verifier = KeyVerifier(held_public_key(uri))
    verified = verify(model, verifier=verifier)
    assert verified.signer is not None and verified.signer.key_hint == keys.key_hint(verifier.key)
    weights = model / "model.safetensors"
    flip_byte(weights, weights.stat().st_size - 1)
    with pytest.raises(VerificationError) as failed:
        verify(model, verifier=verifier)
    assert "TENSOR_MODIFIED" in {p.code for p in failed.value.findings}
    return Path(result.signature)


# -- Cloud KMS ------------------------------------------------------------------------------


class CloudKmsStandin:
    """A Cloud KMS v1 REST endpoint on 127.0.0.1 for google-cloud-kms's REST transport.

    It answers the two requests a signer makes, shaped as the SDK's REST
    transport (``key_management_service/transports/rest_base.py``) sends and
    parses them, with real ECDSA keys made by ``cryptography``:

    - ``GET /v1/{name}/publicKey``, ``name`` being
      ``projects/*/locations/*/keyRings/*/cryptoKeys/*/cryptoKeyVersions/*``, → a
      ``PublicKey``: ``name``, ``pem``, ``pemCrc32c``, ``algorithm``, ``protectionLevel``;
    - ``POST /v1/{name}:asymmetricSign`` with an
      ``AsymmetricSignRequest`` body (``digest.sha256`` or ``digest.sha384``,
      base64, and ``digestCrc32c``) → an ``AsymmetricSignResponse``:
      ``signature`` (DER, base64), ``signatureCrc32c``, ``verifiedDigestCrc32c``,
      ``name``, ``protectionLevel``.

    JSON as proto3 maps it: camelCase names, int64 wrappers as decimal strings,
    enums as numbers (the transport asks for ``$alt=json;enum-encoding=int``).
    Errors are ``google.rpc.Status`` bodies (``{"error": {code, message,
    status}}``): 404 ``NOT_FOUND`` for an unknown version, 403
    ``PERMISSION_DENIED`` for a version in :attr:`denied`, 400
    ``INVALID_ARGUMENT`` for a digest of the wrong hash or length or a
    ``digestCrc32c`` that does not match. :attr:`damaged` names versions whose
    answers carry a wrong CRC32C (``signatureCrc32c`` and ``pemCrc32c``);
    :attr:`unverified` those whose signing answers say ``verifiedDigestCrc32c: false``.
    """

    def __init__(self) -> None:
        self.versions: dict[str, tuple[Any, str]] = {}  # name → (private key, algorithm)
        self.denied: set[str] = set()
        self.damaged: set[str] = set()
        self.unverified: set[str] = set()
        self.requests: list[tuple[str, str]] = []  # (method, path) of each request
        self._server: Any = None

    @property
    def endpoint(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def add_version(self, name: str, algorithm: str = "EC_SIGN_P256_SHA256") -> str:
        """A key version called ``name`` with a fresh key for ``algorithm``; its URI."""
        from cryptography.hazmat.primitives.asymmetric import rsa

        curves = {
            "EC_SIGN_P256_SHA256": ec.SECP256R1(),
            "EC_SIGN_P384_SHA384": ec.SECP384R1(),
            "EC_SIGN_SECP256K1_SHA256": ec.SECP256K1(),
        }
        curve = curves.get(algorithm)
        key = (
            ec.generate_private_key(curve)
            if curve is not None
            else rsa.generate_private_key(public_exponent=65537, key_size=2048)
        )
        self.versions[name] = (key, algorithm)
        return f"gcpkms://{name}"

    def __enter__(self) -> CloudKmsStandin:
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _cloud_kms_handler(self))
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def answer(self, method: str, path: str, body: bytes) -> tuple[int, dict[str, Any]]:
        """The status and JSON body for one request."""
        self.requests.append((method, path))
        if method == "GET" and path.startswith("/v1/") and path.endswith("/publicKey"):
            name, action = path[len("/v1/") : -len("/publicKey")], "publicKey"
        elif method == "POST" and path.startswith("/v1/") and path.endswith(":asymmetricSign"):
            name, action = path[len("/v1/") : -len(":asymmetricSign")], "asymmetricSign"
        else:
            return _rpc_error(404, "NOT_FOUND", f"no method {method} {path}")
        if name not in self.versions:
            return _rpc_error(404, "NOT_FOUND", f"{name} not found.")
        if name in self.denied:
            return _rpc_error(
                403,
                "PERMISSION_DENIED",
                f"Permission 'cloudkms.cryptoKeyVersions.useToSign' denied on resource '{name}' "
                "(or it may not exist).",
            )
        if action == "publicKey":
            return 200, self._public_key(name)
        return self._sign(name, json.loads(body))

    def _public_key(self, name: str) -> dict[str, Any]:
        from google.cloud import kms

        from modelsign._internal.signature.keyrefs.gcp import crc32c

        key, algorithm = self.versions[name]
        pem = key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        crc = crc32c(pem) ^ (1 if name in self.damaged else 0)
        return {
            "name": name,
            "pem": pem.decode(),
            "pemCrc32c": str(crc),
            "algorithm": kms.CryptoKeyVersion.CryptoKeyVersionAlgorithm[algorithm].value,
            "protectionLevel": 1,  # SOFTWARE
        }

    def _sign(self, name: str, request: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        from modelsign._internal.signature.keyrefs.gcp import crc32c

        key, algorithm = self.versions[name]
        hash_ = hashes.SHA384() if algorithm == "EC_SIGN_P384_SHA384" else hashes.SHA256()
        encoded = request.get("digest", {}).get(hash_.name)
        digest = base64.b64decode(encoded) if encoded else b""
        if len(digest) != hash_.digest_size:
            return _rpc_error(400, "INVALID_ARGUMENT", f"{algorithm} signs {hash_.name} digests")
        if "digestCrc32c" in request and int(request["digestCrc32c"]) != crc32c(digest):
            return _rpc_error(
                400, "INVALID_ARGUMENT", "The checksum in field digest_crc32c did not match"
            )
        signature = key.sign(digest, ec.ECDSA(utils.Prehashed(hash_)))
        crc = crc32c(signature) ^ (1 if name in self.damaged else 0)
        return 200, {
            "signature": base64.b64encode(signature).decode(),
            "signatureCrc32c": str(crc),
            "verifiedDigestCrc32c": "digestCrc32c" in request and name not in self.unverified,
            "name": name,
            "protectionLevel": 1,
        }


def _rpc_error(status: int, code: str, message: str) -> tuple[int, dict[str, Any]]:
    return status, {"error": {"code": status, "message": message, "status": code}}


def _cloud_kms_handler(standin: CloudKmsStandin) -> type:
    class Handler(BaseHTTPRequestHandler):
        def _reply(self, method: str) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            status, answer = standin.answer(method, unquote(urlsplit(self.path).path), body)
            data = json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=UTF-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            self._reply("GET")

        def do_POST(self) -> None:
            self._reply("POST")

        def log_message(self, format: str, *args: Any) -> None:
            pass  # quiet: the tests look at standin.requests

    return Handler


# -- Azure Key Vault ------------------------------------------------------------------------

VAULT_HOST = "modelsign-test.vault.azure.net"
VAULT_TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
VAULT_TOKEN = "modelsign-test-token"
_JOSE = {"ES256": hashes.SHA256(), "ES384": hashes.SHA384(), "ES512": hashes.SHA512()}
_JWK_CURVES = {"secp256r1": "P-256", "secp384r1": "P-384", "secp521r1": "P-521"}
_CHALLENGE = (
    f'Bearer authorization="https://login.microsoftonline.com/{VAULT_TENANT}", '
    'resource="https://vault.azure.net"'
)
_KEY_PATH = re.compile(r"/keys/([^/]+)(?:/([0-9a-f]*))?(/sign)?")
_Reply = tuple[int, Any, dict[str, str]]  # status, JSON body, headers


class VaultCredential:
    """A ``TokenCredential`` handing out :data:`VAULT_TOKEN` (or raising ``error``)."""

    def __init__(self, error: Exception | None = None) -> None:
        self.error = error
        self.scopes: list[str] = []

    def get_token(self, *scopes: str, **kwargs: Any) -> Any:
        from azure.core.credentials import AccessToken

        self.scopes.extend(scopes)
        if self.error is not None:
            raise self.error
        return AccessToken(VAULT_TOKEN, int(time.time()) + 3600)


class KeyVaultStandin:
    """Azure Key Vault's keys REST API, answered in-process for azure-keyvault-keys.

    :meth:`transport` is an ``HttpTransport`` (the SDK's ``RequestsTransport``,
    a subclass) whose ``requests`` session has an adapter that answers here
    instead of opening a socket, so the SDK's whole pipeline runs: its
    challenge-based authentication, retries, serialisation and error mapping.
    It answers as Key Vault does:

    - a request without ``Authorization: Bearer`` + the test credential's token
      → 401 with ``WWW-Authenticate: Bearer authorization="https://login.microsoftonline.com/
      TENANT", resource="https://vault.azure.net"`` (the challenge the SDK's
      auth policy expects before it asks the credential for a token);
    - ``GET /keys/{name}[/{version}]`` → a key bundle: ``key`` (a JWK: ``kid``,
      ``kty``, ``crv``, ``x``, ``y`` or ``n``, ``e``, ``key_ops``) and ``attributes``;
    - ``POST /keys/{name}/{version}/sign`` with ``{"alg": "ES256"|…, "value": digest}``
      → ``{"kid", "value"}``, the signature as r || s (JOSE), base64url;
    - errors as ``{"error": {"code", "message"}}``: 404 ``KeyNotFound``, 403
      ``Forbidden`` for a key in :attr:`denied`, 400 ``BadParameter`` for a digest
      of the wrong length. A vault host in :attr:`unreachable` fails to connect
      (``requests.ConnectionError``, which the SDK raises as ``ServiceRequestError``).
    """

    def __init__(self, host: str = VAULT_HOST) -> None:
        self.host = host
        self.keys: dict[str, tuple[Any, str]] = {}  # name → (private key, version)
        self.denied: set[str] = set()
        self.unreachable: set[str] = set()
        self.requests: list[tuple[str, str]] = []  # (method, path) of each request
        self.challenges = 0  # requests answered 401 for want of the token

    def add_key(self, name: str, key: Any = None) -> str:
        """A key called ``name`` (a fresh P-256 key unless ``key`` is given); its URI."""
        version = secrets.token_hex(16)
        self.keys[name] = (ec.generate_private_key(ec.SECP256R1()) if key is None else key, version)
        return f"azurekms://{self.host}/{name}"

    def transport(self) -> Any:
        """A fresh transport answering from this vault (a client closes its transport)."""
        from azure.core.pipeline.transport import RequestsTransport

        session = requests.Session()
        session.mount("https://", _VaultAdapter(self))
        return RequestsTransport(session=session, session_owner=False)

    def answer(self, method: str, url: str, headers: Any, body: bytes) -> _Reply:
        """The status, JSON body and headers for one request."""
        path = urlsplit(url).path
        self.requests.append((method, path))
        if headers.get("Authorization") != f"Bearer {VAULT_TOKEN}":
            self.challenges += 1
            missing = "AKV10000: Request is missing a Bearer or PoP token."
            return 401, _vault_error("Unauthorized", missing), {"WWW-Authenticate": _CHALLENGE}
        match = _KEY_PATH.fullmatch(path)
        name, version, sign = match.groups("") if match else ("", "", "")
        if name not in self.keys or version not in ("", self.keys[name][1]):
            missing = f"A key with (name/id) {name}/{version} was not found in this key vault."
            return 404, _vault_error("KeyNotFound", missing), {}
        if name in self.denied:
            refused = "Caller is not authorized to perform action on resource."
            return 403, _vault_error("Forbidden", refused), {}
        if method == "GET" and not sign:
            return 200, self._bundle(name), {}
        if method == "POST" and sign and version:
            return self._sign(name, json.loads(body))
        return 405, _vault_error("BadParameter", f"{method} {path} is not a keys operation"), {}

    def _bundle(self, name: str) -> dict[str, Any]:
        key, version = self.keys[name]
        public = key.public_key()
        jwk: dict[str, Any] = {"kid": f"https://{self.host}/keys/{name}/{version}"}
        if isinstance(public, ec.EllipticCurvePublicKey):
            numbers, size = public.public_numbers(), (public.curve.key_size + 7) // 8
            jwk.update(
                kty="EC",
                crv=_JWK_CURVES.get(public.curve.name, "P-256K"),
                x=_b64url(numbers.x.to_bytes(size, "big")),
                y=_b64url(numbers.y.to_bytes(size, "big")),
                key_ops=["sign", "verify"],
            )
        else:  # RSA
            numbers = public.public_numbers()
            jwk.update(
                kty="RSA",
                n=_b64url(numbers.n.to_bytes((numbers.n.bit_length() + 7) // 8, "big")),
                e=_b64url(numbers.e.to_bytes(3, "big")),
                key_ops=["sign", "verify", "encrypt", "decrypt", "wrapKey", "unwrapKey"],
            )
        attributes = {
            "enabled": True,
            "created": 1767225600,
            "updated": 1767225600,
            "recoveryLevel": "Recoverable+Purgeable",
            "recoverableDays": 90,
        }
        return {"key": jwk, "attributes": attributes}

    def _sign(self, name: str, request: dict[str, Any]) -> _Reply:
        key, version = self.keys[name]
        hash_ = _JOSE.get(request.get("alg", ""))
        digest = base64.urlsafe_b64decode(request.get("value", "") + "==")
        if hash_ is None or len(digest) != hash_.digest_size:
            return 400, _vault_error("BadParameter", "Invalid digest or algorithm"), {}
        r, s = utils.decode_dss_signature(key.sign(digest, ec.ECDSA(utils.Prehashed(hash_))))
        size = (key.curve.key_size + 7) // 8
        raw = r.to_bytes(size, "big") + s.to_bytes(size, "big")
        kid = f"https://{self.host}/keys/{name}/{version}"
        return 200, {"kid": kid, "value": _b64url(raw)}, {}


def _vault_error(code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message}}


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class _VaultAdapter(requests.adapters.HTTPAdapter):
    """A ``requests`` transport adapter answering from a :class:`KeyVaultStandin`, no socket."""

    def __init__(self, vault: KeyVaultStandin) -> None:
        super().__init__()
        self.vault = vault

    def send(self, request: Any, *args: Any, **kwargs: Any) -> requests.Response:
        if urlsplit(request.url).hostname in self.vault.unreachable:
            raise requests.ConnectionError(f"Failed to establish a new connection to {request.url}")
        body = request.body or b""
        status, answer, headers = self.vault.answer(
            request.method,
            request.url,
            request.headers,
            body.encode() if isinstance(body, str) else body,
        )
        data = json.dumps(answer).encode()
        raw = urllib3.HTTPResponse(
            body=io.BytesIO(data),
            headers={
                "Content-Type": "application/json; charset=utf-8",
                "Content-Length": str(len(data)),
                **headers,
            },
            status=status,
            reason=HTTPStatus(status).phrase,
            preload_content=False,
        )
        return self.build_response(request, raw)

    def close(self) -> None:
        pass
