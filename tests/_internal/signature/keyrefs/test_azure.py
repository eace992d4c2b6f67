"""Azure Key Vault keys (``azurekms://``) through azure-keyvault-keys, via its transport hook.

The SDK's ``KeyClient`` and ``CryptographyClient`` make every request through
their whole pipeline (challenge authentication, retries, serialisation, error
mapping); only the socket is replaced: ``KeyVaultStandin`` answers in-process
as Key Vault does (``tests/helpers/kms_standins.py``). The backend's client
factory gets the stand-in's transport and a test ``TokenCredential`` in place
of ``DefaultAzureCredential``.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
from azure.core import exceptions as az
from cryptography.hazmat.primitives.asymmetric import ec, rsa, utils

import modelsign
from modelsign._internal.signature import keys
from modelsign._internal.signature.keyrefs import azure, held_public_key, open_held_key
from modelsign._internal.signature.keyrefs._kms import der_from_raw
from modelsign._internal.signature.signers import KeySigner
from modelsign.codes import Code
from modelsign.errors import ModelsignError
from tests.helpers.kms_standins import (
    VAULT_HOST,
    KeyVaultStandin,
    VaultCredential,
    round_trip,
)
from tests.helpers.oms import bundle_of

SDK_CLIENT = azure._client
VERSION = "0123456789abcdef0123456789abcdef"


@pytest.fixture
def vault() -> KeyVaultStandin:
    return KeyVaultStandin()


@pytest.fixture
def credential() -> VaultCredential:
    return VaultCredential()


@pytest.fixture(autouse=True)
def through_the_standin(
    monkeypatch: pytest.MonkeyPatch, vault: KeyVaultStandin, credential: VaultCredential
) -> None:
    """Each client the backend makes gets the stand-in's transport and the test credential."""

    def client(vault_url: str, **kwargs: Any) -> Any:
        return SDK_CLIENT(vault_url, credential=credential, transport=vault.transport())

    monkeypatch.setattr(azure, "_client", client)


# -- URIs ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("uri", "vault_url", "name", "version"),
    [
        (f"azurekms://{VAULT_HOST}/model-key", f"https://{VAULT_HOST}", "model-key", None),
        (f"azurekms://{VAULT_HOST}/k/{VERSION}", f"https://{VAULT_HOST}", "k", VERSION),
        ("azurekms://Release.Vault.Azure.CN/k", "https://release.vault.azure.cn", "k", None),
        ("AZUREKMS://hsm.managedhsm.azure.net/k", "https://hsm.managedhsm.azure.net", "k", None),
    ],
)
def test_uris_parse(uri: str, vault_url: str, name: str, version: str | None) -> None:
    ref = azure._parse(uri)
    assert (ref.vault_url, ref.name, ref.version) == (vault_url, name, version)


@pytest.mark.parametrize(
    "uri",
    [
        "azurekms://",
        "azurekms://vault/key",  # a vault is named by its DNS name
        f"azurekms://{VAULT_HOST}",
        f"azurekms://{VAULT_HOST}/",
        f"azurekms://{VAULT_HOST}/key_with_underscore",
        f"azurekms://{VAULT_HOST}/key/not-a-version",
        f"azurekms://{VAULT_HOST}/key/{VERSION}/extra",
        f"azurekms://{VAULT_HOST}:8443/key",
        f"azurekms://https://{VAULT_HOST}/key",
    ],
)
def test_malformed_uris_are_refused(uri: str) -> None:
    with pytest.raises(ModelsignError) as exc:
        open_held_key(uri)
    assert exc.value.code == Code.KEY_URI_INVALID
    assert uri in exc.value.message


# -- signing and verifying ----------------------------------------------------------------


@pytest.mark.parametrize("curve", [ec.SECP256R1(), ec.SECP384R1(), ec.SECP521R1()])
def test_sign_and_verify_round_trip(
    vault: KeyVaultStandin, credential: VaultCredential, tiny_model: Path, curve: ec.EllipticCurve
) -> None:
    private = ec.generate_private_key(curve)
    uri = vault.add_key(f"round-trip-{curve.name}", private)
    sig = round_trip(tiny_model, uri)

    hint = keys.key_hint(private.public_key())
    assert keys.key_hint(held_public_key(uri)) == hint
    assert bundle_of(sig)["verificationMaterial"]["publicKey"]["hint"] == hint
    version = vault.keys[f"round-trip-{curve.name}"][1]
    assert ("POST", f"/keys/round-trip-{curve.name}/{version}/sign") in vault.requests
    assert set(credential.scopes) == {"https://vault.azure.net/.default"}


def test_a_named_version_signs_and_another_is_not_found(
    vault: KeyVaultStandin, tiny_model: Path
) -> None:
    uri = vault.add_key("versioned")
    version = vault.keys["versioned"][1]
    round_trip(tiny_model, f"{uri}/{version}")
    with pytest.raises(ModelsignError) as exc:
        held_public_key(f"{uri}/{VERSION}")
    assert exc.value.code == Code.KMS_KEY_NOT_FOUND


def test_the_first_request_is_challenged_then_carries_the_token(
    monkeypatch: pytest.MonkeyPatch, credential: VaultCredential
) -> None:
    """The SDK's challenge policy: no token until the vault's 401 names the resource.

    A vault host of its own: the SDK caches a vault's challenge for the process.
    """
    vault = KeyVaultStandin(f"challenge-{uuid.uuid4().hex[:12]}.vault.azure.net")
    monkeypatch.setattr(
        azure,
        "_client",
        lambda url, **kw: SDK_CLIENT(url, credential=credential, transport=vault.transport()),
    )
    held_public_key(vault.add_key("challenged"))
    assert vault.challenges == 1
    assert vault.requests == [("GET", "/keys/challenged/")] * 2
    assert credential.scopes == ["https://vault.azure.net/.default"]


# -- errors -------------------------------------------------------------------------------


def test_forbidden_is_permission_denied(vault: KeyVaultStandin) -> None:
    uri = vault.add_key("forbidden")
    vault.denied.add("forbidden")
    with pytest.raises(ModelsignError) as exc:
        KeySigner.from_uri(uri)
    assert exc.value.code == Code.KMS_PERMISSION_DENIED
    assert uri in exc.value.message and "not authorized" in exc.value.message


def test_sign_forbidden_after_reading_is_permission_denied(
    vault: KeyVaultStandin, tiny_model: Path
) -> None:
    uri = vault.add_key("sign-forbidden")
    signer = KeySigner.from_uri(uri)
    vault.denied.add("sign-forbidden")
    with pytest.raises(ModelsignError) as exc:
        modelsign.sign(tiny_model, signer=signer, env={})
    assert exc.value.code == Code.KMS_PERMISSION_DENIED
    assert not (tiny_model / "model.sig").exists()


def test_a_missing_key_is_key_not_found() -> None:
    uri = f"azurekms://{VAULT_HOST}/nobody-made-this"
    with pytest.raises(ModelsignError) as exc:
        held_public_key(uri)
    assert exc.value.code == Code.KMS_KEY_NOT_FOUND
    assert uri in exc.value.message and "KeyNotFound" in exc.value.message


@pytest.mark.parametrize(
    ("key", "named"),
    [
        (rsa.generate_private_key(public_exponent=65537, key_size=2048), "RSA"),
        (ec.generate_private_key(ec.SECP256K1()), "EC P-256K"),
    ],
)
def test_unsupported_keys_are_refused(vault: KeyVaultStandin, key: Any, named: str) -> None:
    uri = vault.add_key("unsupported", key)
    with pytest.raises(ModelsignError) as exc:
        KeySigner.from_uri(uri)
    assert exc.value.code == Code.KEY_UNSUPPORTED
    assert f"the key is {named};" in exc.value.message and uri in exc.value.message


def test_an_unreachable_vault_is_unreachable(vault: KeyVaultStandin) -> None:
    uri = vault.add_key("unreachable")
    vault.unreachable.add(VAULT_HOST)
    with pytest.raises(ModelsignError) as exc:
        held_public_key(uri)
    assert exc.value.code == Code.KMS_UNREACHABLE
    assert uri in exc.value.message


def test_no_credential_is_permission_denied(
    vault: KeyVaultStandin, credential: VaultCredential
) -> None:
    """What DefaultAzureCredential raises when no credential is configured."""
    credential.error = az.ClientAuthenticationError(
        "DefaultAzureCredential failed to retrieve a token from the included credentials."
    )
    uri = vault.add_key("no-credential")
    with pytest.raises(ModelsignError) as exc:
        held_public_key(uri)
    assert exc.value.code == Code.KMS_PERMISSION_DENIED
    assert "DefaultAzureCredential" in exc.value.message


@pytest.mark.parametrize("curve", [ec.SECP256R1(), ec.SECP384R1(), ec.SECP521R1()])
def test_jose_signatures_become_der(curve: ec.EllipticCurve) -> None:
    private = ec.generate_private_key(curve)
    r, s = utils.decode_dss_signature(
        private.sign(b"data", ec.ECDSA(keys.hash_for(private.public_key())))
    )
    size = (curve.key_size + 7) // 8
    raw = r.to_bytes(size, "big") + s.to_bytes(size, "big")
    der = der_from_raw("azurekms://v.vault.azure.net/k", raw, curve)
    assert keys.verify_bytes(private.public_key(), der, b"data")
    with pytest.raises(ModelsignError) as exc:
        der_from_raw("azurekms://v.vault.azure.net/k", raw[:-1], curve)
    assert exc.value.code == Code.KMS_ERROR


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (az.ServiceResponseError("connection reset"), Code.KMS_UNREACHABLE),
        (az.ServiceRequestTimeoutError("timed out"), Code.KMS_UNREACHABLE),
        (az.ResourceNotFoundError("gone"), Code.KMS_KEY_NOT_FOUND),
        (az.HttpResponseError("throttled"), Code.KMS_ERROR),
        (ValueError("The challenge resource 'evil.example' does not match"), Code.KMS_ERROR),
    ],
)
def test_sdk_errors_map_to_ours(error: Exception, code: Code) -> None:
    mapped = azure._error("azurekms://v.vault.azure.net/k", error)
    assert mapped.code == code
    assert mapped.message.startswith("azurekms://v.vault.azure.net/k: ")
