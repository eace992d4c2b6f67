"""Keys in a PKCS#11 token, with SoftHSM2 as the token: sign, verify, certificates, errors.

Every test has its own token folder (``tests/helpers/softhsm.py``); at teardown
no PKCS#11 module may still be loaded, so every path here also checks that
modelsign closed what it opened.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

import modelsign
from modelsign._internal.signature import keys
from modelsign._internal.signature.keyrefs import (
    Secrets,
    held_public_key,
    load_public_key_ref,
    open_held_key,
    refuse_secret_in_argument,
)
from modelsign._internal.signature.signers import KeySigner
from modelsign._internal.signature.verifiers import CertificateVerifier, KeyVerifier
from modelsign.errors import ModelsignError, VerificationError
from tests.helpers import pki
from tests.helpers.softhsm import PIN, SoftHsm, leaf_for

PyKCS11 = pytest.importorskip("PyKCS11", reason="PyKCS11 is not installed (pip install .[pkcs11])")
from modelsign._internal.signature.keyrefs import pkcs11  # noqa: E402 (needs PyKCS11)
from modelsign._internal.signature.keyrefs.pkcs11_token import error_for  # noqa: E402

WITH_PIN = Secrets(pin=PIN)
P256 = pkcs11.CURVES["ec-p256"][0]
SECP256K1 = bytes.fromhex("06052b8104000a")


@pytest.fixture
def key_uri(hsm: SoftHsm) -> str:
    """The URI of an EC P-256 key ``signing`` made by ``generate_key`` on ``release``."""
    uri = hsm.uri("signing")
    pkcs11.generate_key(uri, "ec-p256", secrets=WITH_PIN, env={})
    return uri


def sign_with(uri: str, model: Path, secrets: Secrets = WITH_PIN) -> Path:
    """Sign ``model`` with the held key ``uri``, closing it after; the bundle's path."""
    signer = KeySigner.from_uri(uri, secrets=secrets)
    try:
        modelsign.sign(model, signer=signer, env={})
    finally:
        assert isinstance(signer.key, pkcs11.Pkcs11Key)
        signer.key.close()
    return model / "model.sig"


def failure(call: Callable[[], object], code: str, *, secret: str = PIN) -> ModelsignError:
    """The modelsign error ``call`` raises: ``code``, the URI as where, no PIN, no chained
    PyKCS11 traceback."""
    with pytest.raises(ModelsignError) as info:
        call()
    error = info.value
    assert error.code == code, error.diagnostics()
    assert error.diagnostics().startswith(f"error[{code}]: pkcs11:")
    assert secret not in error.diagnostics()
    assert error.__cause__ is None
    assert error.__context__ is None or error.__suppress_context__
    return error


def bundle(sig: Path) -> dict[str, Any]:
    return json.loads(sig.read_bytes())  # type: ignore[no-any-return]


# -- signing and verifying ------------------------------------------------------------------


@pytest.mark.parametrize("curve", ["ec-p256", "ec-p384", "ec-p521"])
def test_round_trip(hsm: SoftHsm, tiny_model: Path, tmp_path: Path, curve: keys.KeyType) -> None:
    uri = hsm.uri(f"model-{curve}")
    made = pkcs11.generate_key(uri, curve, secrets=WITH_PIN, env={})
    assert keys.key_type(made) == curve
    (private,) = hsm.objects("CKO_PRIVATE_KEY")
    assert private["CKA_LABEL"] == f"model-{curve}" and len(private["CKA_ID"]) == 16
    assert private["CKA_SENSITIVE"] and not private["CKA_EXTRACTABLE"] and private["CKA_PRIVATE"]
    (public,) = hsm.objects("CKO_PUBLIC_KEY")
    assert public["CKA_ID"] == private["CKA_ID"] and not public["CKA_PRIVATE"]

    sig = sign_with(uri, tiny_model)
    assert bundle(sig)["verificationMaterial"]["publicKey"]["hint"] == keys.key_hint(made)
    read = held_public_key(uri)  # no PIN: the public key object is public
    assert keys.public_key_pem(read) == keys.public_key_pem(made)
    assert keys.public_key_pem(load_public_key_ref(uri)) == keys.public_key_pem(made)
    pem = tmp_path / "exported.pub"
    pem.write_bytes(keys.public_key_pem(read))
    for verifier in (KeyVerifier(read), KeyVerifier.from_file(str(pem))):
        result = modelsign.verify(tiny_model, verifier=verifier)
        assert result.verdict == "verified" and result.signer is not None
        assert (result.signer.key_type, result.signer.key_hint) == (curve, keys.key_hint(made))

    tampered = bundle(sig)
    raw = bytearray(base64.b64decode(tampered["dsseEnvelope"]["signatures"][0]["sig"]))
    raw[-1] ^= 1
    tampered["dsseEnvelope"]["signatures"][0]["sig"] = base64.b64encode(bytes(raw)).decode()
    sig.write_text(json.dumps(tampered))
    with pytest.raises(VerificationError) as info:
        modelsign.verify(tiny_model, verifier=KeyVerifier(read))
    assert {p.code for p in info.value.findings if p.severity == "error"} == {"BAD_SIGNATURE"}


def test_held_key_signs_digests(key_uri: str) -> None:
    """``sign_digest`` turns the token's r || s into DER that verifies with the public half."""
    with pkcs11.open_key(key_uri, secrets=WITH_PIN, env={}) as key:
        public = key.public_key()
        assert isinstance(public, ec.EllipticCurvePublicKey)
        h = hashes.Hash(hashes.SHA256())
        h.update(b"statement")
        signature = key.sign_digest(h.finalize(), hashes.SHA256())
        public.verify(signature, b"statement", ec.ECDSA(hashes.SHA256()))
        assert key.certificates() == []  # none on the token
        assert key.where == key_uri
    key.close()  # again: nothing happens


def test_key_by_id_and_label(hsm: SoftHsm, tiny_model: Path) -> None:
    made = pkcs11.generate_key(hsm.uri("k", id="%c0%ff%ee"), "ec-p384", secrets=WITH_PIN, env={})
    (private,) = hsm.objects("CKO_PRIVATE_KEY")
    assert private["CKA_ID"] == b"\xc0\xff\xee"
    by_id = hsm.uri(None, id="%c0%ff%ee")
    sign_with(by_id, tiny_model)
    assert modelsign.verify(tiny_model, verifier=KeyVerifier(made)).verdict == "verified"
    assert keys.public_key_pem(held_public_key(by_id)) == keys.public_key_pem(made)


def test_module_by_name_and_from_the_environment(hsm: SoftHsm, key_uri: str) -> None:
    by_name = "pkcs11:token=release;object=signing?module-name=softhsm2"
    with pkcs11.open_key(by_name, secrets=WITH_PIN, env={}) as key:
        assert key.label == "signing"
    no_module = "pkcs11:token=release;object=signing"
    env = {"MODELSIGN_PKCS11_MODULE": hsm.module}
    with pkcs11.open_key(no_module, secrets=WITH_PIN, env=env) as key:
        assert key.label == "signing"
    folder = "pkcs11:token=release;object=signing?module-path=/usr/lib/softhsm&module-name=softhsm2"
    assert keys.key_hint(held_public_key(folder)) == keys.key_hint(held_public_key(key_uri))


def test_token_chosen_by_its_attributes(hsm: SoftHsm, key_uri: str) -> None:
    hsm.init_token("spare")
    serial = hsm.serial("release")
    lib = "library-manufacturer=SoftHSM;library-version=2.6;manufacturer=SoftHSM%20project"
    for path in (f"serial={serial}", f"token=release;{lib}"):
        uri = f"pkcs11:object=signing;{path}?module-path={hsm.module}"
        with pkcs11.open_key(uri, secrets=WITH_PIN, env={}) as key:
            assert key.token.label == "release"
    either = f"pkcs11:object=signing?module-path={hsm.module}"
    error = failure(
        lambda: pkcs11.open_key(either, secrets=WITH_PIN, env={}), "PKCS11_TOKEN_NOT_FOUND"
    )
    assert "2 tokens match the URI: name one with token=, serial= or slot-id=" in error.message


# -- the PIN ----------------------------------------------------------------------------------


def test_pin_sources_in_order(
    hsm: SoftHsm, key_uri: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    asked: list[str] = []

    def ask(prompt: str) -> str:
        asked.append(prompt)
        return PIN

    def opens(uri: str, secrets: Secrets, env: dict[str, str]) -> None:
        pkcs11.open_key(uri, secrets=secrets, env=env).close()

    pin_file = tmp_path / "pin"
    pin_file.write_text(PIN + "\n")
    wrong = Secrets(pin="0000", ask=ask)
    opens(hsm.uri("signing", pin=PIN), wrong, {"MODELSIGN_PKCS11_PIN": "0000"})
    opens(f"{key_uri}&pin-source=file:{pin_file}", wrong, {"MODELSIGN_PKCS11_PIN": "0000"})
    opens(f"{key_uri}&pin-source={pin_file}", wrong, {})
    opens(key_uri, Secrets(pin=PIN, ask=ask), {"MODELSIGN_PKCS11_PIN": "0000"})
    opens(key_uri, Secrets(ask=ask), {"MODELSIGN_PKCS11_PIN": PIN})
    assert asked == []
    opens(key_uri, Secrets(ask=ask), {})
    assert asked == ["PIN for PKCS#11 token 'release': "]
    monkeypatch.setenv("MODELSIGN_PKCS11_PIN", PIN)  # open_held_key's env defaults to os.environ
    open_held_key(key_uri).close()


def test_wrong_pin(key_uri: str, tmp_path: Path) -> None:
    error = failure(
        lambda: pkcs11.open_key(key_uri, secrets=Secrets(pin="9999"), env={}),
        "PKCS11_PIN_INCORRECT",
        secret="9999",
    )
    assert error.message == "the PIN is incorrect (CKR_PIN_INCORRECT)"
    pin_file = tmp_path / "pin"
    pin_file.write_text("4321\n")
    from_file = f"{key_uri}&pin-source=file:{pin_file}"
    failure(lambda: pkcs11.open_key(from_file, env={}), "PKCS11_PIN_INCORRECT", secret="4321")


def test_no_pin(key_uri: str, tmp_path: Path) -> None:
    error = failure(lambda: pkcs11.open_key(key_uri, env={}), "PKCS11_PIN_REQUIRED")
    assert "token 'release' needs its PIN" in error.message
    assert "MODELSIGN_PKCS11_PIN" in error.message and "pin-source=file:" in error.message
    missing = f"{key_uri}&pin-source={tmp_path / 'no-such-pin'}"
    error = failure(lambda: pkcs11.open_key(missing, env={}), "PKCS11_PIN_REQUIRED")
    assert "cannot read the pin-source file" in error.message


def test_pin_value_refused_from_a_command_line(hsm: SoftHsm, key_uri: str) -> None:
    uri = hsm.uri("signing", pin=PIN)
    error = failure(lambda: refuse_secret_in_argument(uri), "PKCS11_PIN_IN_ARGUMENTS")
    for way in ("pin-source=file:", "--password-env VAR", "MODELSIGN_PKCS11_PIN", "prompt"):
        assert way in error.message
    assert error.path == key_uri  # the URI without its pin-value
    failure(lambda: refuse_secret_in_argument(hsm.uri("new", pin=PIN)), "PKCS11_PIN_IN_ARGUMENTS")
    pkcs11.open_key(uri, secrets=Secrets(), env={}).close()  # allowed from Python


def test_locked_pin(key_uri: str) -> None:
    """Wrong PINs until the token locks the PIN, where it does; then even the right one fails."""
    wrong = Secrets(pin="9999")
    for _ in range(12):
        with pytest.raises(ModelsignError) as info:
            pkcs11.open_key(key_uri, secrets=wrong, env={})
        if info.value.code == "PKCS11_PIN_LOCKED":
            break
        assert info.value.code == "PKCS11_PIN_INCORRECT"
    else:
        pytest.skip(
            "SoftHSM2 keeps no failed-login counter: 12 wrong PINs did not lock it "
            "(test_pkcs11_errors_become_codes checks how CKR_PIN_LOCKED is reported)"
        )
    failure(lambda: pkcs11.open_key(key_uri, secrets=WITH_PIN, env={}), "PKCS11_PIN_LOCKED")


def test_pkcs11_errors_become_codes() -> None:
    where = "pkcs11:object=k"
    cases = {
        PyKCS11.CKR_PIN_LOCKED: ("PKCS11_PIN_LOCKED", "the PIN is locked (CKR_PIN_LOCKED)"),
        PyKCS11.CKR_PIN_INCORRECT: ("PKCS11_PIN_INCORRECT", "(CKR_PIN_INCORRECT)"),
        PyKCS11.CKR_PIN_LEN_RANGE: ("PKCS11_PIN_INCORRECT", "(CKR_PIN_LEN_RANGE)"),
        PyKCS11.CKR_TOKEN_NOT_PRESENT: ("PKCS11_TOKEN_NOT_FOUND", "CKR_TOKEN_NOT_PRESENT"),
        PyKCS11.CKR_DEVICE_ERROR: ("PKCS11_ERROR", "CKR_DEVICE_ERROR while signing"),
        0x80000123: ("PKCS11_ERROR", "CKR 0x80000123 while signing"),
    }
    for value, (code, says) in cases.items():
        error = error_for(PyKCS11.PyKCS11Error(value), where, "signing")
        assert (error.code, error.path) == (code, where)
        assert says in error.message


# -- what is on the token ---------------------------------------------------------------------


def test_missing_object(hsm: SoftHsm, key_uri: str) -> None:
    uri = hsm.uri("nothing-here")
    error = failure(
        lambda: pkcs11.open_key(uri, secrets=WITH_PIN, env={}), "PKCS11_OBJECT_NOT_FOUND"
    )
    assert "no private key with object='nothing-here' on token 'release'" in error.message
    assert "private keys there: object='signing' id=%" in error.message
    error = failure(lambda: held_public_key(uri), "PKCS11_OBJECT_NOT_FOUND")
    assert "no public key or certificate object with object='nothing-here'" in error.message


def test_missing_token(hsm: SoftHsm) -> None:
    uri = hsm.uri("signing", token="elsewhere")
    error = failure(
        lambda: pkcs11.open_key(uri, secrets=WITH_PIN, env={}), "PKCS11_TOKEN_NOT_FOUND"
    )
    assert "no token matches token='elsewhere' (tokens seen: 'release' (serial" in error.message
    failure(lambda: held_public_key(uri), "PKCS11_TOKEN_NOT_FOUND")


def test_ambiguous_object(hsm: SoftHsm) -> None:
    hsm.put_ec_key("twin", b"\x01", P256)
    hsm.put_ec_key("twin", b"\x02", P256)
    uri = hsm.uri("twin")
    error = failure(
        lambda: pkcs11.open_key(uri, secrets=WITH_PIN, env={}), "PKCS11_OBJECT_NOT_FOUND"
    )
    assert "2 private keys match object='twin' on token 'release': name one by id=" in error.message
    failure(lambda: held_public_key(uri), "PKCS11_OBJECT_NOT_FOUND")
    with pkcs11.open_key(hsm.uri("twin", id="%02"), secrets=WITH_PIN, env={}) as key:
        assert key.key_id == b"\x02"


@pytest.mark.parametrize(
    ("module", "says"),
    [
        ("module-path=/usr/lib/nowhere/libnone.so", "'/usr/lib/nowhere/libnone.so' does not exist"),
        ("module-name=none", "no module named 'none' in /usr/lib/softhsm, "),
    ],
)
def test_module_not_found(hsm: SoftHsm, module: str, says: str) -> None:
    uri = f"pkcs11:token=release;object=signing?{module}"
    error = failure(
        lambda: pkcs11.open_key(uri, secrets=WITH_PIN, env={}), "PKCS11_MODULE_NOT_FOUND"
    )
    assert says in error.message
    failure(lambda: held_public_key(uri), "PKCS11_MODULE_NOT_FOUND")


def test_module_not_usable(hsm: SoftHsm, tmp_path: Path) -> None:
    not_a_module = tmp_path / "libfake.so"
    not_a_module.write_text("not a shared object\n")
    cases = {
        f"module-path={not_a_module}": f"cannot load '{not_a_module}' as a PKCS#11 module",
        f"module-path={tmp_path}": "is a folder: add module-name=NAME",
        "": "the URI names no PKCS#11 module",
    }
    for query, says in cases.items():
        uri = f"pkcs11:token=release;object=signing?{query}".rstrip("?")
        error = failure(partial(held_public_key, uri, env={}), "PKCS11_MODULE_NOT_FOUND")
        assert says in error.message
    env = {"MODELSIGN_PKCS11_MODULE": str(tmp_path / "none.so")}
    failure(lambda: held_public_key("pkcs11:object=k", env=env), "PKCS11_MODULE_NOT_FOUND")
    other = f"pkcs11:object=k;library-manufacturer=Other?module-path={hsm.module}"
    error = failure(lambda: held_public_key(other), "PKCS11_MODULE_NOT_FOUND")
    assert "is not the one the URI describes (library-manufacturer)" in error.message


def test_rsa_key_refused(hsm: SoftHsm) -> None:
    hsm.put_rsa_key("rsa", b"\x0a")
    uri = hsm.uri("rsa")
    error = failure(lambda: pkcs11.open_key(uri, secrets=WITH_PIN, env={}), "KEY_UNSUPPORTED")
    assert "the private key object='rsa' id=%0a is a CKK_RSA key" in error.message
    assert "only EC keys on P-256, P-384 or P-521" in error.message
    error = failure(lambda: held_public_key(uri), "KEY_UNSUPPORTED")
    assert "the public key object='rsa' id=%0a is a CKK_RSA key" in error.message


def test_other_curve_refused(hsm: SoftHsm) -> None:
    hsm.put_ec_key("k1", b"\x0b", SECP256K1)
    uri = hsm.uri("k1")
    error = failure(lambda: pkcs11.open_key(uri, secrets=WITH_PIN, env={}), "KEY_UNSUPPORTED")
    assert "is on the curve secp256k1" in error.message


def test_uri_that_names_no_key(hsm: SoftHsm) -> None:
    for uri in (hsm.uri(None), hsm.uri("signing", type="cert")):
        failure(partial(pkcs11.open_key, uri, secrets=WITH_PIN, env={}), "KEY_URI_INVALID")
    failure(lambda: held_public_key(hsm.uri("signing", type="data")), "KEY_URI_INVALID")


def test_public_key_behind_the_login(hsm: SoftHsm) -> None:
    """A public key object marked private is read after logging in, when a PIN is at hand."""
    hsm.put_ec_key("hidden", b"\x0c", P256, private_public_key=True)
    uri = hsm.uri("hidden")
    error = failure(lambda: held_public_key(uri, env={}), "PKCS11_OBJECT_NOT_FOUND")
    assert "visible only after logging in" in error.message
    found = held_public_key(uri, env={"MODELSIGN_PKCS11_PIN": PIN})
    assert isinstance(found, ec.EllipticCurvePublicKey)
    with pkcs11.open_key(uri, secrets=WITH_PIN, env={}) as key:
        assert keys.public_key_pem(key.public_key()) == keys.public_key_pem(found)
    failure(
        lambda: held_public_key(uri, env={"MODELSIGN_PKCS11_PIN": "0000"}),
        "PKCS11_PIN_INCORRECT",
        secret="0000",
    )


def test_public_half_that_does_not_match(hsm: SoftHsm, tiny_model: Path) -> None:
    """Another key's public object under the key's id: caught before any bundle is written."""
    hsm.put_ec_key("mine", b"\x01", P256)
    hsm.put_ec_key("other", b"\x02", P256)
    hsm.destroy("CKO_PUBLIC_KEY", b"\x01")
    hsm.set_id("CKO_PUBLIC_KEY", b"\x02", b"\x01")
    failure(lambda: sign_with(hsm.uri("mine"), tiny_model), "HELD_KEY_BAD_SIGNATURE")
    assert not (tiny_model / "model.sig").exists()


def test_no_public_half(hsm: SoftHsm) -> None:
    hsm.put_ec_key("lonely", b"\x0d", P256)
    hsm.destroy("CKO_PUBLIC_KEY", b"\x0d")
    error = failure(
        lambda: pkcs11.open_key(hsm.uri("lonely"), secrets=WITH_PIN, env={}),
        "PKCS11_OBJECT_NOT_FOUND",
    )
    assert "no public key or certificate object with object='lonely' id=%0d" in error.message


def test_generate_refuses_what_exists(hsm: SoftHsm, key_uri: str) -> None:
    (existing,) = hsm.objects("CKO_PRIVATE_KEY")
    key_id = "".join(f"%{b:02x}" for b in existing["CKA_ID"])
    for uri in (key_uri, hsm.uri("fresh", id=key_id)):
        error = failure(
            partial(pkcs11.generate_key, uri, secrets=WITH_PIN, env={}), "OUTPUT_EXISTS"
        )
        assert "token 'release' already holds an object with" in error.message
    failure(
        lambda: pkcs11.generate_key(hsm.uri("ed"), "ed25519", secrets=WITH_PIN, env={}),
        "KEY_UNSUPPORTED",
    )
    assert len(hsm.objects("CKO_PRIVATE_KEY")) == 1


# -- certificates on the token --------------------------------------------------------------


def test_certificate_chain_from_the_token(hsm: SoftHsm, tiny_model: Path) -> None:
    made = pkcs11.generate_key(hsm.uri("signing", id="%42"), "ec-p256", secrets=WITH_PIN, env={})
    ours, unrelated = pki.build_pki(), pki.build_pki(root_common_name="Unrelated Root")
    leaf = leaf_for(made, ours.intermediate)
    # In no particular order, with certificates that chain nothing.
    hsm.put_certificate(ours.root.cert, "root", b"\x01")
    hsm.put_certificate(unrelated.intermediate.cert, "other-ca", b"\x02")
    hsm.put_certificate(leaf, "signing", b"\x42")
    hsm.put_certificate(ours.intermediate.cert, "ca", b"\x03")
    hsm.put_certificate(unrelated.leaf.cert, "other-leaf", b"\x04")

    with pkcs11.open_key(hsm.uri("signing"), secrets=WITH_PIN, env={}) as key:
        assert key.certificates() == [leaf, ours.intermediate.cert]  # the root stays out
    sig = sign_with(hsm.uri("signing"), tiny_model)
    chain = bundle(sig)["verificationMaterial"]["x509CertificateChain"]["certificates"]
    der = [base64.b64decode(c["rawBytes"]) for c in chain]
    assert der == [
        c.public_bytes(serialization.Encoding.DER) for c in (leaf, ours.intermediate.cert)
    ]
    result = modelsign.verify(tiny_model, verifier=CertificateVerifier([ours.root.cert]))
    assert result.verdict == "verified" and result.signer is not None
    assert result.signer.subject == "CN=Token Publisher,O=modelsign tests"
    with pytest.raises(VerificationError):
        modelsign.verify(tiny_model, verifier=CertificateVerifier([unrelated.root.cert]))


def test_public_key_from_a_certificate(hsm: SoftHsm, tiny_model: Path) -> None:
    """No public key object: the public half comes from the certificate stored with the key."""
    made = pkcs11.generate_key(hsm.uri("signing", id="%07"), "ec-p384", secrets=WITH_PIN, env={})
    issuer = pki.build_pki().intermediate
    hsm.destroy("CKO_PUBLIC_KEY", b"\x07")
    hsm.put_certificate(leaf_for(made, issuer), "signing", b"\x07")
    assert keys.public_key_pem(held_public_key(hsm.uri("signing"))) == keys.public_key_pem(made)
    cert_only = hsm.uri("signing", type="cert")
    assert keys.key_hint(held_public_key(cert_only)) == keys.key_hint(made)
    sign_with(hsm.uri("signing"), tiny_model)
    assert (
        len(
            bundle(tiny_model / "model.sig")["verificationMaterial"]["x509CertificateChain"][
                "certificates"
            ]
        )
        == 1
    )


def test_certificate_for_another_key(hsm: SoftHsm) -> None:
    pkcs11.generate_key(hsm.uri("signing", id="%08"), "ec-p256", secrets=WITH_PIN, env={})
    stranger = pki.build_pki()
    hsm.put_certificate(stranger.leaf.cert, "signing", b"\x08")
    error = failure(
        lambda: KeySigner.from_uri(hsm.uri("signing"), secrets=WITH_PIN), "CERT_KEY_MISMATCH"
    )
    assert "the certificate stored with the key (object='signing' id=%08)" in error.message
