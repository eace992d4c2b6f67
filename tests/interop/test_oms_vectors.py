"""Signatures made by the OMS tool (``model_signing`` v0.2.0 … v1.1.0) verify with modelsign.

The vectors live outside the repository, in ``../shared/conformance/oms-vectors``
(see its README); the module is skipped when that folder is absent. Each
``v*-elliptic-key`` folder is checked against the public key
``keys/certificate/signing-key-pub.pem`` and each ``v*-certificate`` folder
against the root ``keys/certificate/ca-cert.pem``. Two key vectors sign the
single file ``signme-1``, not the folder. The ``v*-sigstore`` vectors are not
covered here. Vectors are copied to ``tmp_path`` before anything is changed:
the shared folder is read-only.
"""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from modelsign._internal.signature.bundle import read_bundle
from modelsign._internal.signature.verifiers import CertificateVerifier, KeyVerifier, Verifier
from modelsign.errors import VerificationError
from modelsign.verify import VerificationResult, verify
from tests.helpers import oms
from tests.helpers.paths import CONFORMANCE
from tests.helpers.pki import build_pki
from tests.helpers.signing import flip_byte

VECTORS = CONFORMANCE / "oms-vectors"
if not VECTORS.is_dir():
    pytest.skip(
        f"OMS conformance vectors not found at {VECTORS} "
        "(expected ../shared/conformance/ beside the project checkout)",
        allow_module_level=True,
    )

KEYS = VECTORS / "keys" / "certificate"
PUBLIC_KEY = KEYS / "signing-key-pub.pem"  # EC P-384
CA_CERT = KEYS / "ca-cert.pem"
SINGLE_FILE = frozenset({"v0.3.1-elliptic-key", "v1.0.0-elliptic-key"})  # per the README
IGNORE_ME = "ignore-me"  # present in some vectors, never signed, must not matter
VERIFIER_IGNORE = (IGNORE_ME,)

NAMES = sorted(p.name for p in VECTORS.glob("v*-elliptic-key")) + sorted(
    p.name for p in VECTORS.glob("v*-certificate")
)


@dataclass(frozen=True)
class Vector:
    name: str

    @property
    def folder(self) -> Path:
        return VECTORS / self.name

    @property
    def kind(self) -> str:
        return "key" if self.name.endswith("-elliptic-key") else "certificate"

    @property
    def single_file(self) -> bool:
        return self.name in SINGLE_FILE

    @property
    def signed_files(self) -> list[str]:
        return sorted(p.name for p in self.folder.glob("signme-*"))

    @cached_property
    def bundle(self) -> dict[str, Any]:
        return json.loads((self.folder / "model.sig").read_bytes())  # type: ignore[no-any-return]

    @property
    def signed_ignore_paths(self) -> list[str]:
        st = json.loads(base64.b64decode(self.bundle["dsseEnvelope"]["payload"]))
        return list(st["predicate"].get("serialization", {}).get("ignore_paths", []))

    def model(self, root: Path | None = None) -> Path:
        """What to verify: the folder, or its ``signme-1`` for single-file vectors."""
        root = root or self.folder
        return root / "signme-1" if self.single_file else root

    def verifier(self) -> Verifier:
        if self.kind == "key":
            return KeyVerifier.from_file(str(PUBLIC_KEY))
        return CertificateVerifier.from_files([str(CA_CERT)])

    def trust_args(self) -> list[str]:
        if self.kind == "key":
            return ["--key", str(PUBLIC_KEY)]
        return ["--cert-chain", str(CA_CERT)]

    def verify(
        self, root: Path | None = None, *, verifier: Verifier | None = None, ignore: tuple[str, ...]
    ) -> VerificationResult:
        root = root or self.folder
        return verify(
            self.model(root),
            verifier=verifier or self.verifier(),
            signature=root / "model.sig",
            ignore=ignore,
        )

    def copy(self, dest: Path) -> Path:
        """A writable copy of the (flat, read-only) vector folder."""
        dest.mkdir(parents=True)
        for f in self.folder.iterdir():
            assert f.is_file(), f"vector folders are flat: {f}"
            shutil.copyfile(f, dest / f.name)
        return dest


@pytest.fixture(params=NAMES)
def vector(request: pytest.FixtureRequest) -> Vector:
    return Vector(request.param)


def _errors(exc: VerificationError) -> list[tuple[str, str | None]]:
    return sorted((p.code, p.file) for p in exc.findings if p.severity == "error")


def _verified(
    vector: Vector, root: Path | None = None, *, ignore: tuple[str, ...]
) -> VerificationResult:
    """Verify through the API; on failure, fail the test with modelsign's problem codes."""
    try:
        result = vector.verify(root, ignore=ignore)
    except VerificationError as exc:
        problems = _errors(exc)
    else:
        assert result.verdict == "verified"
        assert result.files_verified == len(vector.signed_files)
        return result
    pytest.fail(f"{vector.name} does not verify: {problems}")


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_the_vectors_are_there() -> None:
    """The README's vectors were all found (a partial checkout would silently test less)."""
    assert len([n for n in NAMES if n.endswith("-elliptic-key")]) == 4
    assert len([n for n in NAMES if n.endswith("-certificate")]) == 5
    assert PUBLIC_KEY.is_file() and CA_CERT.is_file()


def test_bundle_parses(vector: Vector) -> None:
    """The Sigstore bundle itself is read, whatever the tool version wrote.

    Before v1.1, ``model_signing`` wrote ``"keyid": null`` in the DSSE signature
    (keyid is optional in DSSE) and, for keys, ``publicKey.rawBytes`` instead of a hint.
    """
    envelope = read_bundle((vector.folder / "model.sig").read_bytes())
    raw = vector.bundle
    assert envelope.payload == base64.b64decode(raw["dsseEnvelope"]["payload"])
    assert len(envelope.certificates) == (2 if vector.kind == "certificate" else 0)
    assert envelope.key_hint == raw["verificationMaterial"].get("publicKey", {}).get("hint")


def test_verifies(vector: Vector) -> None:
    result = _verified(vector, ignore=VERIFIER_IGNORE)
    assert result.errors == []
    assert result.signer is not None and result.signer.kind == vector.kind
    assert result.signer.key_type == "ec-p384"
    if vector.kind == "certificate":
        assert result.signer.chain[-1] == "CN=root-ca"


@pytest.mark.slow
def test_cli_verifies_and_fails_after_one_byte_changes(vector: Vector, tmp_path: Path) -> None:
    tampered = vector.copy(tmp_path / vector.name)
    flip_byte(tampered / "signme-1", 0, mask=0xFF)
    good, bad = oms.run_all(
        [
            oms.modelsign(
                "verify",
                vector.model(root),
                "--signature",
                root / "model.sig",
                *vector.trust_args(),
                "--ignore",
                IGNORE_ME,
                "--json",
            )
            for root in (vector.folder, tampered)
        ]
    )
    result = json.loads(oms.ok(good).stdout)
    assert result["verdict"] == "verified"
    assert result["files_verified"] == len(vector.signed_files)
    assert oms.codes(bad) == [("FILE_MODIFIED", "signme-1", None)]


def test_each_signed_file_is_checked(vector: Vector, tmp_path: Path) -> None:
    for name in vector.signed_files:
        copy = vector.copy(tmp_path / name / vector.name)
        signed = _sha256(copy / name)
        flip_byte(copy / name, -1, mask=0xFF)
        with pytest.raises(VerificationError) as info:
            vector.verify(copy, ignore=VERIFIER_IGNORE)
        assert _errors(info.value) == [("FILE_MODIFIED", name)]
        (problem,) = [p for p in info.value.findings if p.severity == "error"]
        assert (problem.expected, problem.actual) == (signed, _sha256(copy / name))


WITH_IGNORE_ME = [n for n in NAMES if (VECTORS / n / IGNORE_ME).exists()]


@pytest.mark.parametrize("name", WITH_IGNORE_ME)
def test_ignore_me_is_not_required(name: str, tmp_path: Path) -> None:
    vector = Vector(name)
    copy = vector.copy(tmp_path / name)
    (copy / IGNORE_ME).write_text("changed after signing\n")
    _verified(vector, copy, ignore=VERIFIER_IGNORE)
    if IGNORE_ME in vector.signed_ignore_paths:
        # Recorded in the signature: no need to tell the verifier.
        _verified(vector, copy, ignore=())
    else:
        # Neither signed nor excused: an extra file, as model_signing says too.
        with pytest.raises(VerificationError) as info:
            vector.verify(copy, ignore=())
        assert _errors(info.value) == [("FILE_EXTRA", IGNORE_ME)]
    (copy / IGNORE_ME).unlink()
    _verified(vector, copy, ignore=())


FOLDER_VECTORS = [n for n in NAMES if n not in SINGLE_FILE]


@pytest.mark.slow
@pytest.mark.parametrize("name", FOLDER_VECTORS)
def test_git_files_are_not_required(name: str, tmp_path: Path) -> None:
    """model_signing leaves out ``.git``, ``.gitattributes``, ``.github`` and ``.gitignore``
    when it signs and when it verifies (its default ``--ignore-git-paths``), whether or not
    the signature records them in ``ignore_paths`` (only v1.1 does): so a git checkout of a
    model signed by any version verifies with model_signing 1.1.1, and must with modelsign.
    """
    vector = Vector(name)
    copy = vector.copy(tmp_path / name)
    (copy / ".git").mkdir()
    (copy / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    (copy / ".github").mkdir()
    (copy / ".github" / "CODEOWNERS").write_text("* @someone\n")
    (copy / ".gitattributes").write_text("*.bin filter=lfs\n")
    (copy / ".gitignore").write_text("*.tmp\n")
    if oms.MODEL_SIGNING.exists():  # the reference tool accepts this checkout
        trust = "--public_key" if vector.kind == "key" else "--certificate_chain"
        args: list[str | Path] = [trust, PUBLIC_KEY if vector.kind == "key" else CA_CERT]
        args += ["--signature", copy / "model.sig", "--ignore-paths", copy / IGNORE_ME]
        cmd = oms.model_signing("verify", vector.kind, copy, *args)
        assert "Verification succeeded" in oms.output(oms.ok(oms.run(cmd)))
    _verified(vector, copy, ignore=VERIFIER_IGNORE)


def test_wrong_key_fails(vector: Vector) -> None:
    wrong = KeyVerifier(ec.generate_private_key(ec.SECP384R1()).public_key())
    with pytest.raises(VerificationError) as info:
        vector.verify(verifier=wrong, ignore=VERIFIER_IGNORE)
    material = vector.bundle["verificationMaterial"]
    has_hint = bool(material.get("publicKey", {}).get("hint"))
    want = "KEY_HINT_MISMATCH" if has_hint else "BAD_SIGNATURE"
    if "publicKey" not in material:  # a key never verifies another method's bundle (§11.1)
        want = "METHOD_MISMATCH"
    assert _errors(info.value) == [(want, None)]
    assert info.value.result is not None and info.value.result.verdict == "failed"


@pytest.fixture(scope="module")
def unrelated_root() -> CertificateVerifier:
    return CertificateVerifier([build_pki().root.cert])


def test_unrelated_root_fails(vector: Vector, unrelated_root: CertificateVerifier) -> None:
    with pytest.raises(VerificationError) as info:
        vector.verify(verifier=unrelated_root, ignore=VERIFIER_IGNORE)
    if vector.kind == "certificate":
        assert _errors(info.value) == [("CERT_UNTRUSTED", None)]
    else:  # a bare-key signature has no chain to check
        assert _errors(info.value) == [("NO_CERTIFICATE", None)]
