"""Cloud KMS keys (``gcpkms://``) through google-cloud-kms, against a local REST stand-in.

The SDK's own client and REST transport make every request; the stand-in
(``tests/helpers/kms_standins.py``, ``CloudKmsStandin``) answers on 127.0.0.1
as Cloud KMS's v1 REST API does. The client gets anonymous credentials through
the backend's client factory; everything else is the SDK's.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from google.api_core import exceptions as api
from google.auth import exceptions as auth
from google.auth.credentials import AnonymousCredentials

import modelsign
from modelsign._internal.signature import keys
from modelsign._internal.signature.keyrefs import gcp, held_public_key, open_held_key
from modelsign._internal.signature.signers import KeySigner
from modelsign.codes import Code
from modelsign.errors import ModelsignError
from tests.helpers.kms_standins import CloudKmsStandin, closed_port, round_trip
from tests.helpers.oms import bundle_of

RING = "projects/modelsign-test/locations/global/keyRings/release"
SDK_CLIENT = gcp._client


@pytest.fixture(scope="module")
def standin() -> Iterator[CloudKmsStandin]:
    with CloudKmsStandin() as running:
        yield running


@pytest.fixture(autouse=True)
def anonymous(monkeypatch: pytest.MonkeyPatch, standin: CloudKmsStandin) -> None:
    """The stand-in's endpoint, and anonymous credentials through the client factory."""
    monkeypatch.setenv(gcp.ENDPOINT_VARIABLE, standin.endpoint)
    factory = functools.partial(SDK_CLIENT, credentials=AnonymousCredentials())
    monkeypatch.setattr(gcp, "_client", factory)


def _version(standin: CloudKmsStandin, key: str, algorithm: str = "EC_SIGN_P256_SHA256") -> str:
    return standin.add_version(f"{RING}/cryptoKeys/{key}/cryptoKeyVersions/1", algorithm)


# -- URIs, endpoints, checksums -------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        f"{RING}/cryptoKeys/model/cryptoKeyVersions/1",
        "projects/example.com:release-42/locations/europe-west4/keyRings/r_1/cryptoKeys/K-2/"
        "cryptoKeyVersions/17",
        "projects/123456789012/locations/us/keyRings/r/cryptoKeys/k/cryptoKeyVersions/3",
    ],
)
def test_key_version_uris_parse(name: str) -> None:
    assert gcp._parse(f"gcpkms://{name}") == name


@pytest.mark.parametrize(
    "uri",
    [
        "gcpkms://",
        f"gcpkms:///{RING}/cryptoKeys/model/cryptoKeyVersions/1",
        f"gcpkms://{RING}/cryptoKeys/model/cryptoKeyVersions/",
        f"gcpkms://{RING}/cryptoKeys/model/cryptoKeyVersions/0",
        f"gcpkms://{RING}/cryptoKeys/model/cryptoKeyVersions/1/",
        f"gcpkms://{RING}/cryptoKeys/model/cryptoKeyVersions/one",
        f"gcpkms://{RING}/cryptoKeys/mo del/cryptoKeyVersions/1",
        "gcpkms://projects/p/keyRings/r/cryptoKeys/k/cryptoKeyVersions/1",
    ],
)
def test_malformed_uris_are_refused(uri: str) -> None:
    with pytest.raises(ModelsignError) as exc:
        open_held_key(uri)
    assert exc.value.code == Code.KEY_URI_INVALID
    assert uri in exc.value.message


def test_a_key_without_a_version_is_refused() -> None:
    uri = f"gcpkms://{RING}/cryptoKeys/model"
    with pytest.raises(ModelsignError) as exc:
        held_public_key(uri)
    assert exc.value.code == Code.KEY_URI_INVALID
    assert "/cryptoKeyVersions/V" in exc.value.message


@pytest.mark.parametrize(
    "endpoint", ["http://kms.example.com", "ftp://127.0.0.1:1", "https://", "https://h/v1"]
)
def test_an_endpoint_sending_credentials_in_the_clear_is_refused(
    monkeypatch: pytest.MonkeyPatch, endpoint: str
) -> None:
    monkeypatch.setenv(gcp.ENDPOINT_VARIABLE, endpoint)
    with pytest.raises(ModelsignError) as exc:
        held_public_key(f"gcpkms://{RING}/cryptoKeys/model/cryptoKeyVersions/1")
    assert exc.value.code == Code.KEY_URI_INVALID
    assert gcp.ENDPOINT_VARIABLE in exc.value.message


def test_without_an_endpoint_the_sdk_default_is_used() -> None:
    """gRPC to cloudkms.googleapis.com, the SDK's own choice (no request is made here)."""
    client = SDK_CLIENT("gcpkms://x", {}, credentials=AnonymousCredentials())
    try:
        assert client.transport.kind == "grpc"
        assert client.api_endpoint == "cloudkms.googleapis.com"
    finally:
        client.transport.close()


def test_crc32c_is_castagnoli() -> None:
    """The check value and RFC 3720's vectors (B.4)."""
    assert gcp.crc32c(b"123456789") == 0xE3069283
    assert gcp.crc32c(bytes(32)) == 0x8A9136AA
    assert gcp.crc32c(b"\xff" * 32) == 0x62A8AB43
    assert gcp.crc32c(bytes(range(32))) == 0x46DD794E


# -- signing and verifying ----------------------------------------------------------------


@pytest.mark.parametrize("algorithm", ["EC_SIGN_P256_SHA256", "EC_SIGN_P384_SHA384"])
def test_sign_and_verify_round_trip(
    standin: CloudKmsStandin, tiny_model: Path, algorithm: str
) -> None:
    uri = _version(standin, f"round-trip-{algorithm.lower().replace('_', '-')}", algorithm)
    sig = round_trip(tiny_model, uri)

    private, _ = standin.versions[uri.removeprefix("gcpkms://")]
    assert keys.key_hint(held_public_key(uri)) == keys.key_hint(private.public_key())
    assert bundle_of(sig)["verificationMaterial"]["publicKey"]["hint"] == keys.key_hint(
        private.public_key()
    )
    name = uri.removeprefix("gcpkms://")
    assert ("POST", f"/v1/{name}:asymmetricSign") in standin.requests


# -- errors -------------------------------------------------------------------------------


def test_permission_denied(standin: CloudKmsStandin, tiny_model: Path) -> None:
    uri = _version(standin, "denied")
    standin.denied.add(uri.removeprefix("gcpkms://"))
    with pytest.raises(ModelsignError) as exc:
        modelsign.sign(tiny_model, signer=KeySigner.from_uri(uri), env={})
    assert exc.value.code == Code.KMS_PERMISSION_DENIED
    assert uri in exc.value.message and "useToSign" in exc.value.message
    assert not (tiny_model / "model.sig").exists()


def test_a_missing_version_is_key_not_found() -> None:
    uri = f"gcpkms://{RING}/cryptoKeys/nobody-made-this/cryptoKeyVersions/1"
    with pytest.raises(ModelsignError) as exc:
        held_public_key(uri)
    assert exc.value.code == Code.KMS_KEY_NOT_FOUND
    assert uri in exc.value.message


@pytest.mark.parametrize("algorithm", ["EC_SIGN_SECP256K1_SHA256", "RSA_SIGN_PSS_2048_SHA256"])
def test_unsupported_algorithms_are_refused(standin: CloudKmsStandin, algorithm: str) -> None:
    uri = _version(standin, f"unsupported-{algorithm.lower().replace('_', '-')}", algorithm)
    with pytest.raises(ModelsignError) as exc:
        KeySigner.from_uri(uri)
    assert exc.value.code == Code.KEY_UNSUPPORTED
    assert algorithm in exc.value.message and uri in exc.value.message


def test_a_damaged_answer_is_a_kms_error(standin: CloudKmsStandin) -> None:
    uri = _version(standin, "damaged")
    standin.damaged.add(uri.removeprefix("gcpkms://"))
    with pytest.raises(ModelsignError) as exc:
        held_public_key(uri)
    assert exc.value.code == Code.KMS_ERROR
    assert "CRC32C" in exc.value.message


def test_a_damaged_signature_is_a_kms_error(standin: CloudKmsStandin, tiny_model: Path) -> None:
    uri = _version(standin, "damaged-signature")
    signer = KeySigner.from_uri(uri)  # the public key arrives intact
    standin.damaged.add(uri.removeprefix("gcpkms://"))
    with pytest.raises(ModelsignError) as exc:
        modelsign.sign(tiny_model, signer=signer, env={})
    assert exc.value.code == Code.KMS_ERROR
    assert "CRC32C" in exc.value.message
    assert not (tiny_model / "model.sig").exists()


def test_a_digest_kms_did_not_check_is_a_kms_error(
    standin: CloudKmsStandin, tiny_model: Path
) -> None:
    uri = _version(standin, "unverified")
    standin.unverified.add(uri.removeprefix("gcpkms://"))
    with pytest.raises(ModelsignError) as exc:
        modelsign.sign(tiny_model, signer=KeySigner.from_uri(uri), env={})
    assert exc.value.code == Code.KMS_ERROR
    assert "did not confirm the digest" in exc.value.message


def test_nothing_listening_is_unreachable_and_quick(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(gcp.ENDPOINT_VARIABLE, f"http://127.0.0.1:{closed_port()}")
    uri = f"gcpkms://{RING}/cryptoKeys/model/cryptoKeyVersions/1"
    started = time.monotonic()
    with pytest.raises(ModelsignError) as exc:
        KeySigner.from_uri(uri)
    assert exc.value.code == Code.KMS_UNREACHABLE
    assert uri in exc.value.message
    assert time.monotonic() - started < 10


def test_no_credentials_is_permission_denied(
    monkeypatch: pytest.MonkeyPatch, standin: CloudKmsStandin, tmp_path: Path
) -> None:
    """Application Default Credentials that name a missing file: the SDK's own lookup fails."""
    monkeypatch.setattr(gcp, "_client", SDK_CLIENT)  # the SDK's credentials, not anonymous
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(tmp_path / "missing.json"))
    uri = _version(standin, "no-credentials")
    with pytest.raises(ModelsignError) as exc:
        held_public_key(uri)
    assert exc.value.code == Code.KMS_PERMISSION_DENIED
    assert uri in exc.value.message


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (api.PermissionDenied("denied"), Code.KMS_PERMISSION_DENIED),
        (api.Unauthenticated("who"), Code.KMS_PERMISSION_DENIED),
        (auth.RefreshError("token expired"), Code.KMS_PERMISSION_DENIED),
        (api.NotFound("gone"), Code.KMS_KEY_NOT_FOUND),
        (api.ServiceUnavailable("down"), Code.KMS_UNREACHABLE),
        (api.DeadlineExceeded("slow"), Code.KMS_UNREACHABLE),
        (api.RetryError("gave up", cause=None), Code.KMS_UNREACHABLE),
        (auth.TransportError("no route"), Code.KMS_UNREACHABLE),
        (api.FailedPrecondition("version is DISABLED"), Code.KMS_ERROR),
    ],
)
def test_sdk_errors_map_to_ours(error: Exception, code: Code) -> None:
    """What the gRPC transport (the SDK's default) raises, which the stand-in cannot."""
    mapped = gcp._error("gcpkms://x", error)
    assert mapped.code == code
    assert mapped.message.startswith("gcpkms://x: ")
