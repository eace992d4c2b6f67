"""SoftHSM2 tokens for the PKCS#11 tests: a real PKCS#11 module in a temporary token folder.

``make_softhsm`` writes a SoftHSM2 configuration whose token folder is under
``tmp_path`` and points ``SOFTHSM2_CONF`` at it for the test; ``init_token``
makes tokens there with ``softhsm2-util``. Objects modelsign does not make
itself (an RSA key, certificates, a second key with the same label) are put on a
token with PyKCS11 directly. At teardown no module may still be loaded: every
session modelsign opened was closed.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import ExtendedKeyUsageOID

from modelsign._internal.signature import keys

from . import pki

MODULE = Path("/usr/lib/softhsm/libsofthsm2.so")
PIN = "1234"
SO_PIN = "5678"
TIMEOUT = 60


@dataclass
class SoftHsm:
    """A SoftHSM2 configuration with its own token folder."""

    conf: Path
    tokens: Path
    module: str = str(MODULE)

    def init_token(self, label: str = "release", pin: str = PIN) -> None:
        """A new token in a free slot: ``softhsm2-util --init-token --free``."""
        util = shutil.which("softhsm2-util")
        if util is None:
            pytest.fail("softhsm2-util is not on PATH, yet the SoftHSM2 module is installed")
        subprocess.run(
            [util, "--init-token", "--free", "--label", label, "--pin", pin, "--so-pin", SO_PIN],
            env={"SOFTHSM2_CONF": str(self.conf), "PATH": "/usr/bin:/bin"},
            check=True,
            capture_output=True,
            timeout=TIMEOUT,
        )

    def uri(
        self,
        object: str | None = "signing",
        *,
        token: str | None = "release",
        pin: str | None = None,
        **attributes: str,
    ) -> str:
        """``pkcs11:token=…;object=…?module-path=…[&pin-value=…]``; more path attributes as
        keyword arguments (``slot_id="3"`` is ``slot-id=3``), written as given."""
        path = [f"token={token}"] if token is not None else []
        path += [f"object={object}"] if object is not None else []
        path += [f"{k.replace('_', '-')}={v}" for k, v in attributes.items()]
        query = f"module-path={self.module}" + (f"&pin-value={pin}" if pin is not None else "")
        return f"pkcs11:{';'.join(path)}?{query}"

    @contextlib.contextmanager
    def session(self, token: str = "release", pin: str = PIN) -> Iterator[Any]:
        """A logged-in read-write PyKCS11 session with ``token``, for putting objects there."""
        import PyKCS11

        lib = PyKCS11.PyKCS11Lib().load(self.module)
        try:
            slot = next(
                s
                for s in lib.getSlotList(tokenPresent=True)
                if lib.getTokenInfo(s).label.rstrip() == token
            )
            session = lib.openSession(slot, PyKCS11.CKF_SERIAL_SESSION | PyKCS11.CKF_RW_SESSION)
            session.login(pin)
            try:
                yield session
            finally:
                session.closeSession()
        finally:
            lib.unload()

    def put_rsa_key(self, label: str, key_id: bytes, token: str = "release") -> None:
        """An RSA-2048 key pair generated on the token."""
        import PyKCS11

        common = [(PyKCS11.CKA_TOKEN, PyKCS11.CK_TRUE), (PyKCS11.CKA_LABEL, label)]
        common.append((PyKCS11.CKA_ID, key_id))
        with self.session(token) as session:
            session.generateKeyPair(
                [
                    *common,
                    (PyKCS11.CKA_CLASS, PyKCS11.CKO_PUBLIC_KEY),
                    (PyKCS11.CKA_KEY_TYPE, PyKCS11.CKK_RSA),
                    (PyKCS11.CKA_MODULUS_BITS, 2048),
                    (PyKCS11.CKA_PUBLIC_EXPONENT, (0x01, 0x00, 0x01)),
                    (PyKCS11.CKA_VERIFY, PyKCS11.CK_TRUE),
                ],
                [
                    *common,
                    (PyKCS11.CKA_CLASS, PyKCS11.CKO_PRIVATE_KEY),
                    (PyKCS11.CKA_KEY_TYPE, PyKCS11.CKK_RSA),
                    (PyKCS11.CKA_PRIVATE, PyKCS11.CK_TRUE),
                    (PyKCS11.CKA_SENSITIVE, PyKCS11.CK_TRUE),
                    (PyKCS11.CKA_SIGN, PyKCS11.CK_TRUE),
                ],
                mecha=PyKCS11.Mechanism(PyKCS11.CKM_RSA_PKCS_KEY_PAIR_GEN, None),
            )

    def put_ec_key(
        self,
        label: str,
        key_id: bytes,
        params: bytes,
        *,
        token: str = "release",
        private_public_key: bool = False,
    ) -> None:
        """An EC key pair generated on the token (``params``: DER ECParameters); its public
        object private (readable only after logging in) when ``private_public_key``."""
        import PyKCS11

        common = [
            (PyKCS11.CKA_TOKEN, PyKCS11.CK_TRUE),
            (PyKCS11.CKA_LABEL, label),
            (PyKCS11.CKA_ID, key_id),
            (PyKCS11.CKA_KEY_TYPE, PyKCS11.CKK_EC),
        ]
        private_flag = PyKCS11.CK_TRUE if private_public_key else PyKCS11.CK_FALSE
        with self.session(token) as session:
            session.generateKeyPair(
                [
                    *common,
                    (PyKCS11.CKA_CLASS, PyKCS11.CKO_PUBLIC_KEY),
                    (PyKCS11.CKA_PRIVATE, private_flag),
                    (PyKCS11.CKA_EC_PARAMS, params),
                    (PyKCS11.CKA_VERIFY, PyKCS11.CK_TRUE),
                ],
                [
                    *common,
                    (PyKCS11.CKA_CLASS, PyKCS11.CKO_PRIVATE_KEY),
                    (PyKCS11.CKA_PRIVATE, PyKCS11.CK_TRUE),
                    (PyKCS11.CKA_SENSITIVE, PyKCS11.CK_TRUE),
                    (PyKCS11.CKA_SIGN, PyKCS11.CK_TRUE),
                ],
                mecha=PyKCS11.Mechanism(PyKCS11.CKM_EC_KEY_PAIR_GEN, None),
            )

    def objects(
        self, cls: str, label: str | None = None, token: str = "release"
    ) -> list[dict[str, Any]]:
        """The objects of class ``cls`` (``CKO_PUBLIC_KEY``, …): label, id, and the flags a
        test looks at (``CKA_PRIVATE``, and for private keys sensitive and extractable)."""
        import PyKCS11

        template = [(PyKCS11.CKA_CLASS, getattr(PyKCS11, cls))]
        template += [(PyKCS11.CKA_LABEL, label)] if label is not None else []
        names = ["CKA_LABEL", "CKA_ID", "CKA_PRIVATE"]
        if cls == "CKO_PRIVATE_KEY":
            names += ["CKA_SENSITIVE", "CKA_EXTRACTABLE", "CKA_SIGN"]
        with self.session(token) as session:
            found = []
            for handle in session.findObjects(template):
                values = session.getAttributeValue(handle, [getattr(PyKCS11, n) for n in names])
                found.append(dict(zip(names, values, strict=True)))
                found[-1]["CKA_ID"] = bytes(found[-1]["CKA_ID"])
            return found

    def destroy(self, cls: str, key_id: bytes, token: str = "release") -> None:
        """Delete the objects of class ``cls`` with id ``key_id``."""
        import PyKCS11

        template = [(PyKCS11.CKA_CLASS, getattr(PyKCS11, cls)), (PyKCS11.CKA_ID, key_id)]
        with self.session(token) as session:
            for handle in session.findObjects(template):
                session.destroyObject(handle)

    def set_id(self, cls: str, key_id: bytes, new_id: bytes, token: str = "release") -> None:
        """Give the objects of class ``cls`` with id ``key_id`` the id ``new_id``."""
        import PyKCS11

        template = [(PyKCS11.CKA_CLASS, getattr(PyKCS11, cls)), (PyKCS11.CKA_ID, key_id)]
        with self.session(token) as session:
            for handle in session.findObjects(template):
                session.setAttributeValue(handle, [(PyKCS11.CKA_ID, new_id)])

    def serial(self, token: str = "release") -> str:
        """The token's serial number (CK_TOKEN_INFO)."""
        import PyKCS11

        lib = PyKCS11.PyKCS11Lib().load(self.module)
        try:
            for slot in lib.getSlotList(tokenPresent=True):
                info = lib.getTokenInfo(slot)
                if info.label.rstrip() == token:
                    return str(info.serialNumber).rstrip()
        finally:
            lib.unload()
        raise AssertionError(f"no token {token!r}")

    def put_certificate(
        self, cert: x509.Certificate, label: str, key_id: bytes, token: str = "release"
    ) -> None:
        """A CKO_CERTIFICATE (X.509) object holding ``cert``."""
        import PyKCS11

        der = cert.public_bytes(serialization.Encoding.DER)
        with self.session(token) as session:
            session.createObject(
                [
                    (PyKCS11.CKA_CLASS, PyKCS11.CKO_CERTIFICATE),
                    (PyKCS11.CKA_CERTIFICATE_TYPE, PyKCS11.CKC_X_509),
                    (PyKCS11.CKA_TOKEN, PyKCS11.CK_TRUE),
                    (PyKCS11.CKA_PRIVATE, PyKCS11.CK_FALSE),
                    (PyKCS11.CKA_LABEL, label),
                    (PyKCS11.CKA_ID, key_id),
                    (PyKCS11.CKA_SUBJECT, cert.subject.public_bytes()),
                    (PyKCS11.CKA_ISSUER, cert.issuer.public_bytes()),
                    (PyKCS11.CKA_VALUE, der),
                ]
            )

    def loaded_modules(self) -> list[str]:
        """The PKCS#11 modules PyKCS11 holds loaded in this process."""
        import PyKCS11

        return sorted(PyKCS11.PyKCS11Lib._loaded_libs)


def leaf_for(public: keys.PublicKey, issuer: pki.Issued) -> x509.Certificate:
    """A code-signing certificate for a key held in a token, issued by ``issuer``.

    What ``pki.issue`` makes for a leaf, for a key whose private half is not at hand.
    """
    not_before, not_after = pki.validity("valid")
    usage = pki.leaf_usage()
    assert usage is not None
    return (
        x509.CertificateBuilder()
        .subject_name(pki.name("Token Publisher"))
        .issuer_name(issuer.cert.subject)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.key.public_key()),
            critical=False,
        )
        .add_extension(usage, critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), critical=False)
        .add_extension(
            x509.SubjectAlternativeName([x509.RFC822Name("token@example.com")]), critical=False
        )
        .sign(issuer.key, hashes.SHA256())
    )


def make_softhsm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[SoftHsm]:
    """A SoftHSM2 set-up with no token yet (``init_token`` makes them); the body of a fixture.

    Skips, saying why, only when the SoftHSM2 module is not installed.
    """
    if not MODULE.exists():
        pytest.skip(f"SoftHSM2 is not installed ({MODULE} is absent; apt-get install softhsm2)")
    pytest.importorskip("PyKCS11", reason="PyKCS11 is not installed (pip install .[pkcs11])")
    tokens = tmp_path / "softhsm-tokens"
    tokens.mkdir()
    conf = tmp_path / "softhsm2.conf"
    conf.write_text(
        f"directories.tokendir = {tokens}\nobjectstore.backend = file\nlog.level = ERROR\n"
    )
    monkeypatch.setenv("SOFTHSM2_CONF", str(conf))
    monkeypatch.delenv("MODELSIGN_PKCS11_PIN", raising=False)
    monkeypatch.delenv("MODELSIGN_PKCS11_MODULE", raising=False)
    hsm = SoftHsm(conf, tokens)
    yield hsm
    assert hsm.loaded_modules() == [], "a PKCS#11 session was left open"
