"""Code-signing certificate chains: loading, path validation, identity."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import ExtendedKeyUsageOID

from modelsign._internal.signature import certs
from modelsign.errors import InputError, VerificationError
from tests.helpers import pki
from tests.helpers.paths import CONFORMANCE
from tests.helpers.pki import DAY, NOW

OMS_CERTS = CONFORMANCE / "oms-vectors" / "keys" / "certificate"
CODE_SIGNING = [ExtendedKeyUsageOID.CODE_SIGNING]


@pytest.fixture(scope="module")
def good() -> pki.Pki:
    return pki.build_pki()


def verify(p: pki.Pki, at: dt.datetime = NOW) -> list[x509.Certificate]:
    return certs.verify_chain(p.leaf.cert, [p.intermediate.cert], [p.root.cert], at=at)


def refused(
    code: str,
    leaf: x509.Certificate,
    inter: list[x509.Certificate],
    roots: list[x509.Certificate],
    at: dt.datetime = NOW,
) -> VerificationError:
    with pytest.raises(VerificationError) as exc:
        certs.verify_chain(leaf, inter, roots, at=at)
    assert exc.value.code == code, exc.value.diagnostics()
    return exc.value


def refused_pki(code: str, p: pki.Pki) -> VerificationError:
    """``refused`` for a whole built chain (as ``verify`` takes one)."""
    return refused(code, p.leaf.cert, [p.intermediate.cert], [p.root.cert])


def signing_leaf(issuer: pki.Issued, **kwargs: object) -> pki.Issued:
    defaults: dict[str, object] = dict(
        key_usage=pki.leaf_usage(), eku=CODE_SIGNING, not_before=NOW - DAY, not_after=NOW + DAY
    )
    defaults.update(kwargs)
    return pki.issue("Model Publisher", pki.make_key("ec-p256"), issuer, ca=False, **defaults)  # type: ignore[arg-type]


def test_good_chain(good: pki.Pki) -> None:
    path = verify(good)
    assert path == [good.leaf.cert, good.intermediate.cert, good.root.cert]


@pytest.mark.parametrize(
    ("root_key", "leaf_key"), [("rsa", "ec-p256"), ("ec-p256", "ec-p384"), ("ec-p384", "ed25519")]
)
def test_key_algorithms(root_key: pki.KeyKind, leaf_key: pki.KeyKind) -> None:
    p = pki.build_pki(root_key=root_key, leaf_key=leaf_key)
    assert len(verify(p)) == 3
    assert certs.leaf_public_key(p.leaf.cert) == p.leaf.key.public_key()


def test_expired_leaf() -> None:
    p = pki.build_pki(leaf_validity="expired")
    error = refused_pki("CERT_EXPIRED", p)
    assert "leaf certificate 'CN=Model Publisher" in error.message
    assert error.expected is not None and "valid from" in error.expected
    assert len(verify(p, at=NOW - 10 * DAY)) == 3  # inside its window


def test_not_yet_valid_leaf() -> None:
    p = pki.build_pki(leaf_validity="not-yet-valid")
    refused_pki("CERT_NOT_YET_VALID", p)
    assert len(verify(p, at=NOW + 2 * DAY)) == 3


def test_expired_intermediate_is_named(good: pki.Pki) -> None:
    stale = pki.issue(
        good.intermediate.cert.subject,
        good.intermediate.key,
        good.root,
        ca=True,
        key_usage=pki.ca_usage(),
        not_before=NOW - 30 * DAY,
        not_after=NOW - DAY,
    )
    error = refused("CERT_EXPIRED", good.leaf.cert, [stale.cert], [good.root.cert])
    assert "intermediate certificate 'CN=Test Intermediate CA" in error.message


def test_naive_time_is_a_programming_error(good: pki.Pki) -> None:
    with pytest.raises(ValueError):
        verify(good, at=NOW.replace(tzinfo=None))


def test_untrusted_root(good: pki.Pki) -> None:
    other = pki.build_pki()  # same names, different keys
    error = refused("CERT_UNTRUSTED", good.leaf.cert, [good.intermediate.cert], [other.root.cert])
    assert "not signed by the key of trusted root" in error.message


def test_root_from_the_bundle_is_not_trusted(good: pki.Pki) -> None:
    other = pki.build_pki()
    bundle = [good.intermediate.cert, good.root.cert]
    error = refused("CERT_UNTRUSTED", good.leaf.cert, bundle, [other.root.cert])
    assert "not a trusted root" in error.message


def test_missing_intermediate(good: pki.Pki) -> None:
    error = refused("CERT_UNTRUSTED", good.leaf.cert, [], [good.root.cert])
    assert "'CN=Test Intermediate CA,O=modelsign tests'" in error.message


def test_no_roots(good: pki.Pki) -> None:
    refused("CERT_UNTRUSTED", good.leaf.cert, [good.intermediate.cert], [])


def test_intermediate_without_ca() -> None:
    p = pki.build_pki(intermediate_ca=False)
    error = refused_pki("CERT_BAD_CA", p)
    assert "not a CA" in error.message


def test_intermediate_without_key_cert_sign(good: pki.Pki) -> None:
    inter = pki.issue(
        "Signing-only CA", pki.make_key("ec-p256"), good.root, ca=True, key_usage=pki.leaf_usage()
    )
    leaf = signing_leaf(inter)
    error = refused("CERT_BAD_CA", leaf.cert, [inter.cert], [good.root.cert])
    assert "keyCertSign" in error.message


def test_intermediate_restricted_to_other_purposes(good: pki.Pki) -> None:
    tls_only = [ExtendedKeyUsageOID.SERVER_AUTH]
    inter = pki.issue(
        "TLS CA",
        pki.make_key("ec-p256"),
        good.root,
        ca=True,
        key_usage=pki.ca_usage(),
        eku=tls_only,
    )
    refused("CERT_BAD_CA", signing_leaf(inter).cert, [inter.cert], [good.root.cert])
    signing_ca = pki.issue(
        "Code CA",
        pki.make_key("ec-p256"),
        good.root,
        ca=True,
        key_usage=pki.ca_usage(),
        eku=CODE_SIGNING,
    )
    leaf = signing_leaf(signing_ca)
    assert len(certs.verify_chain(leaf.cert, [signing_ca.cert], [good.root.cert], at=NOW)) == 3


def test_path_length_constraint(good: pki.Pki) -> None:
    # good.intermediate has pathLenConstraint 0: it may not issue another CA.
    nested = pki.issue(
        "Nested CA", pki.make_key("ec-p256"), good.intermediate, ca=True, key_usage=pki.ca_usage()
    )
    leaf = signing_leaf(nested)
    refused("CERT_BAD_CA", leaf.cert, [good.intermediate.cert, nested.cert], [good.root.cert])


def test_leaf_without_code_signing_eku() -> None:
    p = pki.build_pki(leaf_eku=False)
    error = refused_pki("CERT_BAD_USAGE", p)
    assert "codeSigning" in error.message


def test_leaf_with_other_eku(good: pki.Pki) -> None:
    leaf = signing_leaf(good.intermediate, eku=[ExtendedKeyUsageOID.CLIENT_AUTH])
    refused("CERT_BAD_USAGE", leaf.cert, [good.intermediate.cert], [good.root.cert])


def test_leaf_with_key_cert_sign_only() -> None:
    p = pki.build_pki(leaf_key_usage="key-cert-sign")
    error = refused_pki("CERT_BAD_USAGE", p)
    assert "digitalSignature" in error.message


def test_leaf_without_key_usage_is_accepted() -> None:
    assert len(verify(pki.build_pki(leaf_key_usage="none"))) == 3


def test_ca_leaf_is_accepted() -> None:
    assert len(verify(pki.build_pki(leaf_ca=True))) == 3


def test_wrong_signature(good: pki.Pki) -> None:
    impostor = pki.Issued(good.intermediate.cert, pki.make_key("ec-p256"))  # same name, other key
    forged = signing_leaf(impostor)
    assert forged.cert.issuer == good.intermediate.cert.subject
    error = refused("CERT_UNTRUSTED", forged.cert, [good.intermediate.cert], [good.root.cert])
    assert "not signed by the key of certificate 'CN=Test Intermediate CA" in error.message


def test_loop_of_self_named_certificates_terminates(good: pki.Pki) -> None:
    key_a, key_b = pki.make_key("ec-p256"), pki.make_key("ec-p256")
    a = pki.issue("Loop", key_a, None, ca=True, key_usage=pki.ca_usage())
    b = pki.issue("Loop", key_b, a, ca=True, key_usage=pki.ca_usage())
    a_by_b = pki.issue("Loop", key_a, b, ca=True, key_usage=pki.ca_usage())
    leaf = signing_leaf(b)
    bundle = [a.cert, b.cert, a_by_b.cert] * 4
    refused("CERT_UNTRUSTED", leaf.cert, bundle, [good.root.cert])


def test_unknown_critical_extension(good: pki.Pki) -> None:
    odd = x509.UnrecognizedExtension(x509.ObjectIdentifier("1.3.6.1.4.1.99999.1"), b"\x05\x00")
    leaf = signing_leaf(good.intermediate, extra=[(odd, True)])
    error = refused(
        "CERT_UNSUPPORTED_CRITICAL", leaf.cert, [good.intermediate.cert], [good.root.cert]
    )
    assert "1.3.6.1.4.1.99999.1" in error.message
    harmless = signing_leaf(good.intermediate, extra=[(odd, False)])
    assert (
        len(certs.verify_chain(harmless.cert, [good.intermediate.cert], [good.root.cert], at=NOW))
        == 3
    )


def test_name_constraints_are_refused(good: pki.Pki) -> None:
    constraints = x509.NameConstraints(
        permitted_subtrees=[x509.RFC822Name("example.com")], excluded_subtrees=None
    )
    inter = pki.issue(
        "Constrained CA",
        pki.make_key("ec-p256"),
        good.root,
        ca=True,
        key_usage=pki.ca_usage(),
        extra=[(constraints, True)],
    )
    leaf = signing_leaf(inter, san_email="publisher@example.com")
    refused("CERT_UNSUPPORTED_CRITICAL", leaf.cert, [inter.cert], [good.root.cert])


def test_ed25519_ca_is_rejected_by_the_x509_policy() -> None:
    p = pki.build_pki(root_key="ed25519", intermediate_key="ed25519")
    error = refused_pki("CERT_REJECTED", p)
    assert "Ed25519" in error.message


OmsChain = tuple[x509.Certificate, x509.Certificate, x509.Certificate]


@pytest.fixture(scope="module")
def oms_chain() -> OmsChain:
    """The OMS conformance vectors' chain: leaf, intermediate, root."""
    if not CONFORMANCE.is_dir():
        pytest.skip(f"conformance vectors absent: {CONFORMANCE}")
    [leaf] = certs.load_certificates(str(OMS_CERTS / "signing-key-cert.pem"))
    [inter] = certs.load_certificates(str(OMS_CERTS / "int-ca-cert.pem"))
    [root] = certs.load_certificates(str(OMS_CERTS / "ca-cert.pem"))
    return leaf, inter, root


def test_oms_chain_verifies_now(oms_chain: OmsChain) -> None:
    leaf, inter, root = oms_chain
    now = dt.datetime.now(dt.timezone.utc)
    # The leaf asserts CA:TRUE and is named like its issuer, yet is signed by it.
    assert leaf.subject == leaf.issuer == inter.subject
    assert certs.verify_chain(leaf, [inter], [root], at=now) == [leaf, inter, root]
    assert certs.leaf_public_key(leaf).curve.name == "secp384r1"  # type: ignore[union-attr]


def test_oms_chain_with_an_unrelated_root(oms_chain: OmsChain, good: pki.Pki) -> None:
    leaf, inter, _ = oms_chain
    now = dt.datetime.now(dt.timezone.utc)
    refused("CERT_UNTRUSTED", leaf, [inter], [good.root.cert], at=now)


def test_oms_chain_without_its_intermediate(oms_chain: OmsChain) -> None:
    leaf, _, root = oms_chain
    refused("CERT_UNTRUSTED", leaf, [], [root], at=dt.datetime.now(dt.timezone.utc))


def test_oms_chain_before_issuance(oms_chain: OmsChain) -> None:
    leaf, inter, root = oms_chain
    at = dt.datetime(2025, 1, 1, tzinfo=dt.timezone.utc)
    refused("CERT_NOT_YET_VALID", leaf, [inter], [root], at=at)


def test_load_certificates(tmp_path: Path, good: pki.Pki) -> None:
    files = pki.write_pki(good, tmp_path)
    bundle = tmp_path / "bundle.pem"
    bundle.write_bytes(
        b"leaf:\n" + good.leaf.cert_pem() + b"\nintermediate:\n" + files.chain.read_bytes()
    )
    assert certs.load_certificates(str(bundle)) == [good.leaf.cert, good.intermediate.cert]

    with pytest.raises(InputError) as exc:
        certs.load_certificates(str(tmp_path / "absent.pem"))
    assert exc.value.code == "CERT_NOT_FOUND"
    for content in (b"", b"hello", good.leaf.key_pem(), good.leaf.cert_pem()[:200]):
        bundle.write_bytes(content)
        with pytest.raises(InputError) as exc:
            certs.load_certificates(str(bundle))
        assert exc.value.code == "CERT_INVALID"
        assert exc.value.path == str(bundle)


def test_load_der_certificate(good: pki.Pki) -> None:
    """A damaged certificate in a bundle is ``CERT_MALFORMED`` (a verification failure).

    Split meaning: it was ``CERT_INVALID``, which stays the code of a
    certificate file given on the command line that is not valid (an input error).
    """
    der = good.leaf.cert.public_bytes(serialization.Encoding.DER)
    assert certs.load_der_certificate(der, "certificate 0") == good.leaf.cert
    with pytest.raises(VerificationError) as exc:
        certs.load_der_certificate(der[:-10], "certificate 0 of the bundle")
    assert exc.value.code == "CERT_MALFORMED"
    assert exc.value.path == "certificate 0 of the bundle"


def test_leaf_public_key_refuses_rsa() -> None:
    p = pki.build_pki(leaf_key="rsa")
    with pytest.raises(VerificationError) as exc:
        certs.leaf_public_key(p.leaf.cert)
    assert exc.value.code == "CERT_UNSUPPORTED_KEY"


def test_certificate_identity(good: pki.Pki) -> None:
    identity = certs.certificate_identity(good.leaf.cert)
    assert identity["subject"] == "CN=Model Publisher,O=modelsign tests"
    assert identity["issuer"] == "CN=Test Intermediate CA,O=modelsign tests"
    assert int(identity["serial"], 16) == good.leaf.cert.serial_number
    assert identity["fingerprint"] == good.leaf.cert.fingerprint(hashes.SHA256()).hex()
    assert identity["san"] == "email:publisher@example.com"
    assert "san" not in certs.certificate_identity(good.root.cert)
