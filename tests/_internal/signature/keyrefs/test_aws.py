"""AWS KMS keys (``awskms://``) through boto3, against moto's KMS server on 127.0.0.1.

The server is moto's, with ``Sign`` honouring ``MessageType=DIGEST`` as AWS
does (``tests/helpers/kms_standins.py`` says how): what boto3 sends and
receives is what it would with AWS.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
from botocore.exceptions import ClientError, NoRegionError, ReadTimeoutError
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

import modelsign
from modelsign._internal.signature import bundle, keys
from modelsign._internal.signature.keyrefs import aws, held_public_key, open_held_key
from modelsign._internal.signature.signers import KeySigner
from modelsign._internal.signature.verifiers import KeyVerifier
from modelsign.codes import Code
from modelsign.errors import ModelsignError
from tests.helpers import kms_standins
from tests.helpers.kms_standins import (
    AWS_ACCOUNT,
    AWS_REGION,
    MotoKms,
    closed_port,
    deny_policy,
    round_trip,
)
from tests.helpers.oms import bundle_of
from tests.helpers.safetensors_files import write_safetensors

ARN = f"arn:aws:kms:{AWS_REGION}:{AWS_ACCOUNT}"
UUID = "1234abcd-12ab-34cd-56ef-1234567890ab"


@pytest.fixture(autouse=True)
def aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    kms_standins.isolate_aws(monkeypatch, tmp_path)


def _code(exc: pytest.ExceptionInfo[ModelsignError]) -> Code:
    return exc.value.code


# -- URIs -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("uri", "key_id", "endpoint", "region"),
    [
        (f"awskms:///{UUID}", UUID, None, "env-region-1"),
        ("awskms:///mrk-1234abcd12ab34cd56ef1234567890ab", "mrk-1234abcd12ab34cd56ef1234567890ab",
         None, "env-region-1"),
        (f"awskms:///{ARN}:key/{UUID}", f"{ARN}:key/{UUID}", None, AWS_REGION),
        ("awskms:///alias/release", "alias/release", None, "env-region-1"),
        (f"awskms:///{ARN}:alias/team/release", f"{ARN}:alias/team/release", None, AWS_REGION),
        ("awskms://localhost:4566/alias/x", "alias/x", "http://localhost:4566", "env-region-1"),
        ("awskms://127.0.0.1:4566/alias/x", "alias/x", "http://127.0.0.1:4566", "env-region-1"),
        ("awskms://[::1]:4566/alias/x", "alias/x", "http://[::1]:4566", "env-region-1"),
        ("awskms://kms.internal.example/alias/x", "alias/x", "https://kms.internal.example",
         "env-region-1"),
        (f"AWSKMS://vpce.example:443/arn:aws-us-gov:kms:us-gov-west-1:{AWS_ACCOUNT}:key/{UUID}",
         f"arn:aws-us-gov:kms:us-gov-west-1:{AWS_ACCOUNT}:key/{UUID}", "https://vpce.example:443",
         "us-gov-west-1"),
    ],
)  # fmt: skip
def test_uris_cosign_accepts_parse(
    uri: str, key_id: str, endpoint: str | None, region: str
) -> None:
    ref = aws._parse(uri, {"AWS_REGION": "env-region-1"})
    assert (ref.key_id, ref.endpoint, ref.region) == (key_id, endpoint, region)


@pytest.mark.parametrize(
    "uri",
    [
        "awskms://",
        "awskms:///",
        "awskms:/alias/x",
        "awskms://alias/x",  # the alias taken for a host: no key after it
        "awskms:///alias/",
        "awskms:///alias/has space",
        "awskms:///1234abcd",
        f"awskms:///{UUID}/extra",
        f"awskms:///arn:aws:kms:{AWS_REGION}:1234:key/{UUID}",  # an account is 12 digits
        f"awskms:///arn:aws:s3:{AWS_REGION}:{AWS_ACCOUNT}:key/{UUID}",
        f"awskms:///{ARN}:key/not-a-uuid",
        "awskms://host:99999/alias/x",
        "awskms://ho/st/alias/x",
        "awskms:///alias/x?region=us-east-1",
    ],
)
def test_malformed_uris_are_refused(uri: str) -> None:
    with pytest.raises(ModelsignError) as exc:
        open_held_key(uri)
    assert _code(exc) == Code.KEY_URI_INVALID
    assert uri in exc.value.message


def test_region_comes_from_the_arn_then_the_environment() -> None:
    assert aws._parse(f"awskms:///{ARN}:alias/x", {"AWS_REGION": "eu-west-1"}).region == AWS_REGION
    assert (
        aws._parse("awskms:///alias/x", {"AWS_DEFAULT_REGION": "eu-west-2"}).region == "eu-west-2"
    )
    both = {"AWS_REGION": "eu-west-1", "AWS_DEFAULT_REGION": "eu-west-2"}
    assert aws._parse("awskms:///alias/x", both).region == "eu-west-1"
    assert aws._parse("awskms:///alias/x", {}).region is None


def test_no_region_anywhere_is_a_uri_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_REGION")
    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)
    with pytest.raises(ModelsignError) as exc:
        held_public_key("awskms:///alias/release")
    assert _code(exc) == Code.KEY_URI_INVALID
    assert "AWS_REGION" in exc.value.message


# -- signing and verifying ----------------------------------------------------------------


@pytest.mark.parametrize("spec", ["ECC_NIST_P256", "ECC_NIST_P384", "ECC_NIST_P521"])
def test_sign_and_verify_round_trip(kms: MotoKms, tiny_model: Path, spec: str) -> None:
    key_id = kms.create_key(spec, alias=f"alias/round-trip-{spec.lower()}")
    uri = f"awskms://{kms.authority}/alias/round-trip-{spec.lower()}"
    sig = round_trip(tiny_model, uri)

    der = kms.client().get_public_key(KeyId=key_id)["PublicKey"]
    public = serialization.load_der_public_key(der)
    assert isinstance(public, ec.EllipticCurvePublicKey)
    assert keys.key_hint(held_public_key(uri)) == keys.key_hint(public)
    assert bundle_of(sig)["verificationMaterial"]["publicKey"]["hint"] == keys.key_hint(public)


@pytest.mark.parametrize("form", ["key-id", "key-arn", "alias-arn"])
def test_every_way_of_naming_the_key_signs(kms: MotoKms, tiny_model: Path, form: str) -> None:
    key_id = kms.create_key(alias=f"alias/named-{form}")
    key = {
        "key-id": key_id,
        "key-arn": f"{ARN}:key/{key_id}",
        "alias-arn": f"{ARN}:alias/named-{form}",
    }[form]
    round_trip(tiny_model, f"awskms://{kms.authority}/{key}")


def test_a_statement_over_the_raw_message_limit_signs(kms: MotoKms, tmp_path: Path) -> None:
    """KMS takes at most 4096 bytes as a RAW message; the digest is all that is sent."""
    kms.create_key(alias="alias/large")
    model = tmp_path / "many-tensors"
    tensors = {f"layers.{i}.weight": np.full((2, 2), i, dtype=np.float32) for i in range(200)}
    write_safetensors(model / "model.safetensors", tensors)
    uri = f"awskms://{kms.authority}/alias/large"
    signer = KeySigner.from_uri(uri)
    result = modelsign.sign(model, signer=signer, env={})
    signer.key.close()  # type: ignore[union-attr]
    assert len(result.attestation) > 4096  # the claims line: every tensor's digest
    assert len(bundle.pae(result.attestation)) > 4096
    modelsign.verify(model, verifier=KeyVerifier(held_public_key(uri)), claims=result.claims)


def test_a_kms_signing_something_else_is_caught_before_writing(
    kms: MotoKms, tiny_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """moto's own Sign hashes the digest again (DIGEST taken as RAW): that signature does
    not verify, and the signer says so instead of writing a bundle that would not verify."""
    from moto.kms.responses import KmsResponse

    monkeypatch.setattr(KmsResponse, "sign", KmsResponse._modelsign_moto_sign)
    kms.create_key(alias="alias/moto-as-is")
    uri = f"awskms://{kms.authority}/alias/moto-as-is"
    with pytest.raises(ModelsignError) as exc:
        modelsign.sign(tiny_model, signer=KeySigner.from_uri(uri), env={})
    assert _code(exc) == Code.HELD_KEY_BAD_SIGNATURE
    assert not (tiny_model / "model.sig").exists()


# -- errors -------------------------------------------------------------------------------


def test_a_key_policy_denying_sign_is_permission_denied(kms: MotoKms, tiny_model: Path) -> None:
    kms.create_key(alias="alias/no-sign", policy=deny_policy("kms:Sign"))
    uri = f"awskms://{kms.authority}/alias/no-sign"
    held_public_key(uri)  # reading the public key is allowed
    with pytest.raises(ModelsignError) as exc:
        modelsign.sign(tiny_model, signer=KeySigner.from_uri(uri), env={})
    assert _code(exc) == Code.KMS_PERMISSION_DENIED
    assert uri in exc.value.message and "AccessDeniedException" in exc.value.message
    assert not (tiny_model / "model.sig").exists()  # nothing written


def test_a_missing_alias_is_key_not_found(kms: MotoKms) -> None:
    uri = f"awskms://{kms.authority}/alias/nobody-made-this"
    with pytest.raises(ModelsignError) as exc:
        held_public_key(uri)
    assert _code(exc) == Code.KMS_KEY_NOT_FOUND
    assert uri in exc.value.message


def test_a_missing_key_id_is_key_not_found(kms: MotoKms) -> None:
    with pytest.raises(ModelsignError) as exc:
        KeySigner.from_uri(f"awskms://{kms.authority}/{ARN}:key/{UUID}")
    assert _code(exc) == Code.KMS_KEY_NOT_FOUND


@pytest.mark.parametrize(
    ("spec", "named"),
    [
        ("RSA_2048", "RSA_2048"),
        ("ECC_SECG_P256K1", "ECC_SECG_P256K1"),
        ("SYMMETRIC_DEFAULT", "ENCRYPT_DECRYPT"),
    ],
)
def test_unsupported_keys_are_refused(kms: MotoKms, spec: str, named: str) -> None:
    alias = f"alias/unsupported-{spec.lower()}"
    kms.create_key(spec, alias=alias)
    uri = f"awskms://{kms.authority}/{alias}"
    with pytest.raises(ModelsignError) as exc:
        KeySigner.from_uri(uri)
    assert _code(exc) == Code.KEY_UNSUPPORTED
    assert named in exc.value.message and uri in exc.value.message


def test_a_disabled_key_fails_with_the_aws_error(kms: MotoKms, tiny_model: Path) -> None:
    key_id = kms.create_key(alias="alias/disabled")
    kms.client().disable_key(KeyId=key_id)
    with pytest.raises(ModelsignError) as exc:
        modelsign.sign(
            tiny_model,
            signer=KeySigner.from_uri(f"awskms://{kms.authority}/alias/disabled"),
            env={},
        )
    assert _code(exc) == Code.KMS_ERROR
    assert "DisabledException" in exc.value.message


def test_nothing_listening_is_unreachable_and_quick() -> None:
    uri = f"awskms://127.0.0.1:{closed_port()}/alias/release"
    started = time.monotonic()
    with pytest.raises(ModelsignError) as exc:
        KeySigner.from_uri(uri)
    assert _code(exc) == Code.KMS_UNREACHABLE
    assert uri in exc.value.message
    assert time.monotonic() - started < 10


def test_no_credentials_is_permission_denied(kms: MotoKms, monkeypatch: pytest.MonkeyPatch) -> None:
    kms.create_key(alias="alias/no-credentials")
    for name in kms_standins.AWS_TEST_CREDENTIALS:
        monkeypatch.delenv(name)
    with pytest.raises(ModelsignError) as exc:
        held_public_key(f"awskms://{kms.authority}/alias/no-credentials")
    assert _code(exc) == Code.KMS_PERMISSION_DENIED
    assert "credentials" in exc.value.message


def test_a_missing_profile_is_permission_denied(
    kms: MotoKms, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_PROFILE", "nobody-configured-this")
    with pytest.raises(ModelsignError) as exc:
        held_public_key(f"awskms://{kms.authority}/alias/any")
    assert _code(exc) == Code.KMS_PERMISSION_DENIED
    assert "nobody-configured-this" in exc.value.message


@pytest.mark.parametrize(
    ("error", "code"),
    [
        ("UnrecognizedClientException", Code.KMS_PERMISSION_DENIED),
        ("InvalidSignatureException", Code.KMS_PERMISSION_DENIED),
        ("ExpiredTokenException", Code.KMS_PERMISSION_DENIED),
        ("AccessDeniedException", Code.KMS_PERMISSION_DENIED),
        ("NotFoundException", Code.KMS_KEY_NOT_FOUND),
        ("InvalidArnException", Code.KMS_KEY_NOT_FOUND),
        ("KMSInvalidStateException", Code.KMS_ERROR),
        ("ThrottlingException", Code.KMS_ERROR),
    ],
)
def test_aws_error_codes_map_to_ours(error: str, code: Code) -> None:
    """The codes moto cannot be made to answer, as AWS answers them."""
    exc = ClientError({"Error": {"Code": error, "Message": "said AWS"}}, "Sign")
    mapped = aws._error("awskms:///alias/x", exc)
    assert mapped.code == code
    assert mapped.message.startswith("awskms:///alias/x: ")
    assert f"{error}: said AWS" in mapped.message


def test_sdk_exceptions_map_to_ours() -> None:
    timeout = ReadTimeoutError(endpoint_url="https://kms.us-east-1.amazonaws.com")
    assert aws._error("awskms:///alias/x", timeout).code == Code.KMS_UNREACHABLE
    assert aws._error("awskms:///alias/x", NoRegionError()).code == Code.KEY_URI_INVALID
