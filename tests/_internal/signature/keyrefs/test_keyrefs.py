"""The held-key layer: URI dispatch, digest signing and its check, secrets on command lines.

The holder here is an in-memory key (:class:`MemoryHolder`): what the layer
does with any holder is under test; the token and KMS backends have their own
tests against SoftHSM2 and local KMS servers.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, utils

from modelsign._internal.signature import keyrefs, keys
from modelsign._internal.signature.bundle import read_bundle
from modelsign._internal.signature.signers import KeySigner
from modelsign._internal.signature.verifiers import KeyVerifier
from modelsign.codes import Code
from modelsign.errors import InputError, SignatureError
from modelsign.sign import sign
from modelsign.verify import verify
from tests.helpers.examples import build_example


@dataclass
class MemoryHolder:
    """A held key whose private half is an in-memory key; ``signer`` may be another key."""

    key: ec.EllipticCurvePrivateKey
    signer: ec.EllipticCurvePrivateKey | None = None
    calls: list[tuple[bytes, str]] = field(default_factory=list)
    closed: bool = False
    where: str = "pkcs11:token=mem;object=k"

    def public_key(self) -> keys.PublicKey:
        return self.key.public_key()

    def sign_digest(self, digest: bytes, algorithm: hashes.HashAlgorithm) -> bytes:
        self.calls.append((digest, algorithm.name))
        return (self.signer or self.key).sign(digest, ec.ECDSA(utils.Prehashed(algorithm)))

    def certificates(self) -> list[x509.Certificate]:
        return []

    def close(self) -> None:
        self.closed = True


@pytest.mark.parametrize(
    ("curve", "hash_name"),
    [(ec.SECP256R1(), "sha256"), (ec.SECP384R1(), "sha384"), (ec.SECP521R1(), "sha512")],
)
def test_a_held_key_signs_the_curves_digest(curve: ec.EllipticCurve, hash_name: str) -> None:
    holder = MemoryHolder(ec.generate_private_key(curve))
    signature = keyrefs.sign_held(holder, b"statement bytes")
    ((digest, used),) = holder.calls
    assert used == hash_name
    h = hashes.Hash(keys.hash_for(holder.key.public_key()))
    h.update(b"statement bytes")
    assert digest == h.finalize()  # only the digest left the process
    assert keys.verify_bytes(holder.key.public_key(), signature, b"statement bytes")


def test_a_holder_that_signs_with_another_key_is_caught() -> None:
    holder = MemoryHolder(ec.generate_private_key(ec.SECP256R1()))
    holder.signer = ec.generate_private_key(ec.SECP256R1())
    with pytest.raises(SignatureError) as e:
        keyrefs.sign_held(holder, b"x")
    assert e.value.code is Code.HELD_KEY_BAD_SIGNATURE
    assert holder.where in e.value.message
    assert keys.key_hint(holder.key.public_key()) in e.value.message


def test_a_held_key_on_another_curve_is_refused() -> None:
    holder = MemoryHolder(ec.generate_private_key(ec.SECP256K1()))
    with pytest.raises(InputError) as e:
        keyrefs.sign_held(holder, b"x")
    assert e.value.code is Code.KEY_UNSUPPORTED


def test_a_model_signed_with_a_held_key_verifies_with_its_public_key(tmp_path: Path) -> None:
    holder = MemoryHolder(ec.generate_private_key(ec.SECP384R1()))
    signer = KeySigner(holder)
    model = build_example(tmp_path)[0]
    sign(model, signer=signer, env={})
    signer.close()
    assert holder.closed and len(holder.calls) == 2  # model.sig and the claims line
    result = verify(model, verifier=KeyVerifier(holder.key.public_key()))
    assert result.signer is not None
    assert result.signer.key_hint == keys.key_hint(holder.key.public_key())
    envelope = read_bundle((model / "model.sig").read_bytes())
    assert envelope.key_hint == result.signer.key_hint  # the bundle names the key by its hint


@pytest.mark.parametrize(
    ("ref", "scheme"),
    [
        ("pkcs11:token=t;object=k", "pkcs11"),
        ("PKCS11:token=t", "pkcs11"),
        ("awskms:///alias/release", "awskms"),
        ("gcpkms://projects/p/locations/l/keyRings/r/cryptoKeys/k", "gcpkms"),
        ("azurekms://vault.vault.azure.net/key", "azurekms"),
        ("keys/release.pub", None),
        ("pkcs11.pub", None),
        ("C:\\keys\\release.pub", None),
        ("hashivault://key", None),  # not a scheme served here: a (missing) file name
    ],
)
def test_uris_are_told_from_file_names(ref: str, scheme: str | None) -> None:
    assert keyrefs.scheme_of(ref) == scheme
    assert keyrefs.is_key_uri(ref) == (scheme is not None)


@pytest.mark.parametrize(
    "uri",
    [
        "pkcs11:token=t;object=k?pin-value=1234",
        "pkcs11:token=t;object=k?module-path=/x.so&PIN-VALUE=1234",
    ],
)
def test_a_pin_in_a_command_line_uri_is_refused(uri: str) -> None:
    with pytest.raises(InputError) as e:
        keyrefs.refuse_secret_in_argument(uri)
    assert e.value.code is Code.PKCS11_PIN_IN_ARGUMENTS
    assert "1234" not in e.value.message
    assert "MODELSIGN_PKCS11_PIN" in e.value.message


def test_a_pin_source_is_no_secret_in_the_argument() -> None:
    keyrefs.refuse_secret_in_argument("pkcs11:token=t;object=k?pin-source=file:/run/pin")
    keyrefs.refuse_secret_in_argument("awskms:///alias/pin-value=x")  # not a PKCS#11 query


@pytest.mark.parametrize(
    ("uri", "sdk", "extra"),
    [
        ("pkcs11:token=t;object=k", "PyKCS11", "pkcs11"),
        ("awskms:///alias/release", "boto3", "aws"),
        (
            "gcpkms://projects/p/locations/l/keyRings/r/cryptoKeys/k/cryptoKeyVersions/1",
            "google.cloud.kms",
            "gcp",
        ),
        ("azurekms://v.vault.azure.net/k", "azure.keyvault.keys", "azure"),
    ],
)
def test_a_missing_sdk_names_the_extra_to_install(
    monkeypatch: pytest.MonkeyPatch, uri: str, sdk: str, extra: str
) -> None:
    backend = f"modelsign._internal.signature.keyrefs.{keyrefs.BACKENDS[uri.partition(':')[0]]}"
    monkeypatch.delitem(sys.modules, backend, raising=False)
    monkeypatch.setitem(sys.modules, sdk, None)  # import fails as if not installed
    parent, _, name = sdk.rpartition(".")
    if parent in sys.modules:  # `from google.cloud import kms` finds an imported one here
        monkeypatch.delattr(sys.modules[parent], name, raising=False)
    with pytest.raises(InputError) as e:
        keyrefs.held_public_key(uri, env={})
    assert e.value.code is Code.KEY_BACKEND_MISSING
    assert f"pip install 'modelsign-oms[{extra}]'" in e.value.message


def test_keys_are_made_only_on_tokens() -> None:
    with pytest.raises(InputError) as e:
        keyrefs.generate_held_key("awskms:///alias/x", "ec-p256")
    assert e.value.code is Code.KEY_URI_INVALID
    with pytest.raises(InputError) as e:
        keyrefs.generate_held_key("pkcs11:token=t;object=k", "ed25519")
    assert e.value.code is Code.KEY_UNSUPPORTED
