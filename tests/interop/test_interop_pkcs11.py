"""Keys in a PKCS#11 token (SoftHSM2), both ways with the OMS tool (``model_signing`` 1.1.1).

modelsign signs with a token key, ``model_signing verify`` checks the bundle
with the exported public key (or the root, when the token holds the key's
certificate chain); ``model_signing sign pkcs11-key`` / ``pkcs11-certificate``
signs with the same token key, and modelsign verifies that bundle from its
command line and in-process with the public key read from the token.
model_signing's URI reader wants the PIN in the URI (``pin-value``): fine in a test.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

import modelsign
from modelsign._internal.signature import keys
from modelsign._internal.signature.keyrefs import Secrets, held_public_key
from modelsign._internal.signature.signers import KeySigner
from modelsign._internal.signature.verifiers import KeyVerifier
from tests.helpers import oms
from tests.helpers.oms import ok, output, run, run_all
from tests.helpers.pki import build_pki, write_pem
from tests.helpers.signing import flip_byte
from tests.helpers.softhsm import PIN, SoftHsm, leaf_for

pytestmark = [
    pytest.mark.slow,  # model_signing and modelsign as subprocesses: seconds per case
    pytest.mark.skipif(
        not oms.MODEL_SIGNING.exists(), reason=f"model_signing CLI not found at {oms.MODEL_SIGNING}"
    ),
]

pkcs11 = pytest.importorskip("modelsign._internal.signature.keyrefs.pkcs11")


def _sign(uri: str, model: Path, signature: Path) -> None:
    signer = KeySigner.from_uri(uri, secrets=Secrets(pin=PIN))
    try:
        modelsign.sign(model, signer=signer, signature=signature, env={})
    finally:
        assert isinstance(signer.key, pkcs11.Pkcs11Key)
        signer.key.close()


def _verified(proc: oms.Proc) -> dict[str, object]:
    result: dict[str, object] = json.loads(ok(proc).stdout)
    assert result["verdict"] == "verified", result
    return result


def _oms_ok(proc: oms.Proc) -> None:
    assert "Verification succeeded" in output(ok(proc))


@pytest.mark.parametrize("curve", ["ec-p256", "ec-p384", "ec-p521"])
def test_token_key_bundles_cross_over(
    hsm: SoftHsm, tiny_model: Path, tmp_path: Path, curve: keys.KeyType
) -> None:
    uri = hsm.uri(f"release-{curve}")
    made = pkcs11.generate_key(uri, curve, secrets=Secrets(pin=PIN), env={})
    pem = tmp_path / "exported.pub"
    pem.write_bytes(keys.public_key_pem(held_public_key(uri)))
    ours, theirs = tmp_path / "ours.sig", tmp_path / "theirs.sig"

    _sign(uri, tiny_model, ours)
    ok(
        run(
            oms.model_signing(
                "sign", "pkcs11-key", tiny_model, "--signature", theirs,
                "--pkcs11_uri", hsm.uri(f"release-{curve}", pin=PIN),
            )
        )
    )  # fmt: skip
    for sig in (ours, theirs):  # both name the key by the hint of the same PEM
        hint = oms.bundle_of(sig)["verificationMaterial"]["publicKey"]["hint"]
        assert hint == hashlib.sha256(pem.read_bytes()).hexdigest() == keys.key_hint(made)

    by_them, by_us = run_all(
        [
            oms.model_signing(
                "verify", "key", tiny_model, "--signature", ours, "--public_key", pem
            ),
            oms.modelsign("verify", tiny_model, "--signature", theirs, "--key", pem, "--json"),
        ]
    )
    _oms_ok(by_them)
    signer = _verified(by_us)["signer"]
    assert isinstance(signer, dict)
    assert (signer["kind"], signer["key_type"], signer["key_hint"]) == ("key", curve, hint)
    result = modelsign.verify(
        tiny_model, verifier=KeyVerifier(held_public_key(uri)), signature=theirs
    )
    assert result.verdict == "verified"

    flip_byte(tiny_model / "config.json", 0, mask=0xFF)
    by_them, by_us = run_all(
        [
            oms.model_signing(
                "verify", "key", tiny_model, "--signature", ours, "--public_key", pem
            ),
            oms.modelsign("verify", tiny_model, "--signature", theirs, "--key", pem, "--json"),
        ]
    )
    assert by_them.returncode == 1 and "Hash mismatch for 'config.json'" in output(by_them)
    assert oms.codes(by_us) == [("FILE_MODIFIED", "config.json", None)]


@pytest.fixture
def certified(hsm: SoftHsm, tmp_path: Path) -> tuple[str, Path, Path, Path]:
    """A token key with its certificate and the intermediate on the token, and as files:
    the URI, the leaf and the intermediate (PEM), and the root (each verifier's anchor)."""
    uri = hsm.uri("release", id="%0f")
    made = pkcs11.generate_key(uri, "ec-p256", secrets=Secrets(pin=PIN), env={})
    ca = build_pki()
    leaf = leaf_for(made, ca.intermediate)
    hsm.put_certificate(leaf, "release", b"\x0f")
    hsm.put_certificate(ca.intermediate.cert, "intermediate", b"\x10")
    hsm.put_certificate(ca.root.cert, "root", b"\x11")
    return (
        uri,
        write_pem(tmp_path / "leaf.pem", leaf),
        write_pem(tmp_path / "chain.pem", ca.intermediate.cert),
        write_pem(tmp_path / "root.pem", ca.root.cert),
    )


def test_token_certificate_chain_verifies_in_model_signing(
    certified: tuple[str, Path, Path, Path], tiny_model: Path, tmp_path: Path
) -> None:
    """modelsign reads the key's certificate and intermediate from the token."""
    uri, _, _, root = certified
    ours = tmp_path / "ours.sig"
    _sign(uri, tiny_model, ours)
    chain = oms.bundle_of(ours)["verificationMaterial"]["x509CertificateChain"]["certificates"]
    assert len(chain) == 2  # the leaf and the intermediate; the root stays out
    by_them, by_us = run_all(
        [
            oms.model_signing(
                "verify", "certificate", tiny_model, "--signature", ours,
                "--certificate_chain", root,
            ),
            oms.modelsign(
                "verify", tiny_model, "--signature", ours, "--cert-chain", root, "--json"
            ),
        ]
    )  # fmt: skip
    _oms_ok(by_them)
    signer = _verified(by_us)["signer"]
    assert isinstance(signer, dict) and signer["subject"] == "CN=Token Publisher,O=modelsign tests"


def test_model_signing_pkcs11_certificate_bundle(
    hsm: SoftHsm, certified: tuple[str, Path, Path, Path], tiny_model: Path, tmp_path: Path
) -> None:
    """``model_signing sign pkcs11-certificate``, verified by modelsign against the root.

    model_signing 1.1.1 cannot sign this way: its PKCS#11 certificate signer builds
    verification material its own bundle model refuses (raw DER where base64 is wanted,
    and no ``tlogEntries``; its file-key certificate signer has both right), so signing
    fails; the test says so (xfail) until a version that signs is installed.
    """
    _, leaf, chain, root = certified
    theirs = tmp_path / "theirs.sig"
    proc = run(
        oms.model_signing(
            "sign", "pkcs11-certificate", tiny_model, "--signature", theirs,
            "--pkcs11_uri", hsm.uri("release", pin=PIN),
            "--signing_certificate", leaf, "--certificate_chain", chain,
        )
    )  # fmt: skip
    # Which of the two it trips on depends on the certificate's bytes.
    known = ("for X509Certificate\nraw_bytes\n", "for VerificationMaterial\ntlogEntries\n")
    if proc.returncode != 0 and any(k in output(proc) for k in known):
        pytest.xfail(
            "model_signing 1.1.1's pkcs11-certificate signer fails on its own bundle model "
            "(raw DER certificate bytes where base64 is wanted, no tlogEntries)"
        )
    ok(proc)
    result = _verified(
        run(
            oms.modelsign(
                "verify", tiny_model, "--signature", theirs, "--cert-chain", root, "--json"
            )
        )
    )
    assert result["signer"] is not None
