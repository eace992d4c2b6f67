"""Conformance with the OMS v1.0 specification's schemas and test vectors.

(a) The spec's test vectors (``../shared/conformance/oms-spec-v1.0/test-vectors``):
``valid/`` bundles pass the schemas and verify with modelsign over the OMS
vector models they were made for; ``invalid/`` and ``invalid-payload/`` fail the
schemas and modelsign refuses each with a stable error code.
(b) Every way modelsign signs writes a ``model.sig`` that passes the OMS
schemas, and every line of ``claims.jsonl`` beside it (one Sigstore bundle per
line, modelsign's own attestations) passes the bundle and in-toto schemas.

The module is skipped, visibly, when the shared folder is absent.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from modelsign._internal.signature.attestation import claims_path
from modelsign._internal.signature.bundle import read_bundle
from modelsign._internal.signature.sigstore import SigstoreVerifier, shipped_trusted_root
from modelsign._internal.signature.statement import parse_statement
from modelsign._internal.signature.verifiers import CertificateVerifier, KeyVerifier, Verifier
from modelsign.errors import ModelsignError, VerificationError
from modelsign.verify import verify
from tests.helpers import oms
from tests.helpers.oms_cases import CASES, Case
from tests.helpers.oms_schema import SKIP_REASON, VIOLATIONS, attestation_errors, oms_errors
from tests.helpers.paths import CONFORMANCE
from tests.helpers.pki import build_pki
from tests.helpers.signing import KeyPair, flip_byte, payload_of, sign_payload, statement_in
from tests.sigstore_standin import DEFAULT_IDENTITY, DEFAULT_ISSUER, SigstoreStandin

SHARED = CONFORMANCE
SPEC_VECTORS = SHARED / "oms-spec-v1.0" / "test-vectors" / "v1.0"
OMS_VECTORS = SHARED / "oms-vectors"
if not (SPEC_VECTORS.is_dir() and OMS_VECTORS.is_dir()):
    pytest.skip(SKIP_REASON, allow_module_level=True)

KEYS = OMS_VECTORS / "keys" / "certificate"
IBM_IDENTITY = "stefanb@us.ibm.com"  # the v*-sigstore vectors' signer (shared README)
IBM_ISSUER = "https://sigstore.verify.ibm.com/oauth2"


# -- (a) the spec's test vectors --------------------------------------------------------------


def _key() -> Verifier:
    return KeyVerifier.from_file(str(KEYS / "signing-key-pub.pem"))  # EC P-384


def _certificate() -> Verifier:
    return CertificateVerifier.from_files([str(KEYS / "ca-cert.pem")])


def _sigstore() -> Verifier:
    return SigstoreVerifier(shipped_trusted_root(), identity=IBM_IDENTITY, issuer=IBM_ISSUER)


#: vector → (the OMS vector folder holding its model, the folder name it signed, its verifier).
#: key and certificate sign signme-1/-2 of the elliptic-key model under the subject name
#: "model"; sigstore is the v1.1.0-sigstore folder's own signature.
VALID = {
    "key.bundle.json": ("v1.1.0-elliptic-key", "model", _key),
    "certificate.bundle.json": ("v1.1.0-elliptic-key", "model", _certificate),
    "sigstore.bundle.json": ("v1.1.0-sigstore", "v1.1.0-sigstore", _sigstore),
}


def _vector_model(vector: Path, source: str, name: str, dest: Path) -> Path:
    """A writable copy of OMS vector model ``source`` named ``name``, the vector as model.sig."""
    model = Path(shutil.copytree(OMS_VECTORS / source, dest / name))
    for p in model.iterdir():  # the shared folder is read-only
        p.chmod(p.stat().st_mode | stat.S_IWUSR)
    shutil.copyfile(vector, model / "model.sig")
    return model


def test_the_spec_vectors_are_there() -> None:
    found = {p.relative_to(SPEC_VECTORS).as_posix() for p in SPEC_VECTORS.glob("*/*.json")}
    assert {f"valid/{n}" for n in VALID} <= found
    assert {f"{kind}/{n}" for kind, n, _code in INVALID} <= found


@pytest.mark.parametrize("name", sorted(VALID))
def test_valid_vector_passes_the_schemas_and_verifies(name: str, tmp_path: Path) -> None:
    vector = SPEC_VECTORS / "valid" / name
    assert oms_errors(vector.read_bytes()) == []
    source, folder, verifier = VALID[name]
    model = _vector_model(vector, source, folder, tmp_path)
    result = verify(model, verifier=verifier())
    assert result.verdict == "verified" and result.errors == []
    assert result.files_verified == 2  # signme-1, signme-2; ignore-me is a signed ignore path
    assert result.subject is not None and result.subject.name == folder

    flip_byte(model / "signme-2", 0, mask=0xFF)
    with pytest.raises(VerificationError) as info:
        verify(model, verifier=verifier())
    assert [(p.code, p.file) for p in info.value.findings] == [("FILE_MODIFIED", "signme-2")]


#: (folder, vector, the code modelsign refuses it with when verifying it as the valid vector
#: of the same method would be). The names say which: all but one derive from key.bundle.json.
INVALID = [
    ("invalid", "empty.bundle.json", "MALFORMED_JSON"),
    ("invalid", "missing-envelope.bundle.json", "BUNDLE_INVALID"),
    ("invalid", "missing-verification-material.bundle.json", "BUNDLE_INVALID"),
    # sigstore.bundle.json without its transparency log entry: sigstore refuses to load it.
    ("invalid", "missing-tlog-entries.bundle.json", "SIGSTORE_BUNDLE_INVALID"),
    # key.bundle.json with its predicate type changed: the signature no longer covers it.
    ("invalid-payload", "wrong-predicate.bundle.json", "BAD_SIGNATURE"),
]


@pytest.mark.parametrize(("kind", "name", "code"), INVALID, ids=[n for _k, n, _c in INVALID])
def test_invalid_vector_fails_the_schemas_and_is_refused(
    kind: str, name: str, code: str, tmp_path: Path
) -> None:
    vector = SPEC_VECTORS / kind / name
    assert oms_errors(vector.read_bytes()) != []
    source, folder, verifier = VALID[
        "sigstore.bundle.json" if "tlog" in name else "key.bundle.json"
    ]
    model = _vector_model(vector, source, folder, tmp_path)
    with pytest.raises(VerificationError) as info:
        verify(model, verifier=verifier())
    assert [p.code for p in info.value.findings] == [code]
    assert info.value.result is not None and info.value.result.verdict == "failed"


@pytest.mark.parametrize(
    ("name", "code"),
    [
        ("empty.bundle.json", "MALFORMED_JSON"),
        ("missing-envelope.bundle.json", "BUNDLE_INVALID"),
        ("missing-verification-material.bundle.json", "BUNDLE_INVALID"),
    ],
)
def test_invalid_bundle_is_refused_when_read(name: str, code: str) -> None:
    with pytest.raises(ModelsignError) as info:
        read_bundle((SPEC_VECTORS / "invalid" / name).read_bytes())
    assert info.value.code == code


def test_missing_tlog_entries_fails_every_verifier(tmp_path: Path) -> None:
    """Without its log entry the bundle proves nothing, whatever the verifier trusts."""
    vector = SPEC_VECTORS / "invalid" / "missing-tlog-entries.bundle.json"
    envelope = read_bundle(vector.read_bytes())
    # A single `certificate` is the Sigstore method's material (§11.1): key and
    # certificate verifiers refuse it for what it is.
    assert envelope.method == "sigstore"
    for verifier, code in ((_key, "METHOD_MISMATCH"), (_certificate, "METHOD_MISMATCH")):
        with pytest.raises(VerificationError) as info:
            verifier().verify_envelope(envelope)
        assert info.value.code == code


def test_wrong_predicate_type_is_refused_even_when_validly_signed(tmp_path: Path) -> None:
    vector = SPEC_VECTORS / "invalid-payload" / "wrong-predicate.bundle.json"
    payload = read_bundle(vector.read_bytes()).payload
    with pytest.raises(VerificationError) as info:
        parse_statement(payload)
    assert info.value.code == "PREDICATE_TYPE"
    assert "https://example.com/wrong-predicate/v1.0" in info.value.message

    key = ec.generate_private_key(ec.SECP384R1())
    model = _vector_model(vector, "v1.1.0-elliptic-key", "model", tmp_path)
    (model / "model.sig").write_bytes(sign_payload(key, payload))
    with pytest.raises(VerificationError) as info:
        verify(model, verifier=KeyVerifier(key.public_key()))
    assert [p.code for p in info.value.findings] == ["PREDICATE_TYPE"]


# -- the autouse schema check (tests/conftest.py) is active ----------------------------------


def _statement(predicate_type: str, predicate: dict[str, Any]) -> bytes:
    subject = [{"name": "model", "digest": {"sha256": "ab" * 32}}]
    return json.dumps(
        {
            "_type": "https://in-toto.io/Statement/v1",
            "subject": subject,
            "predicateType": predicate_type,
            "predicate": predicate,
        }
    ).encode()


OMS_PREDICATE = {
    "resources": [{"name": "w.bin", "algorithm": "sha256", "digest": "ab" * 32}],
    "serialization": {"method": "files", "hash_type": "sha256", "allow_symlinks": False},
}


def test_every_bundle_signed_in_process_is_checked(
    request: pytest.FixtureRequest, keypair: KeyPair
) -> None:
    signer = keypair.signer
    oms_type = "https://model_signing/signature/v1.0"
    signer.sign_statement(_statement(oms_type, OMS_PREDICATE))
    signer.sign_statement(_statement("https://modelsign.dev/test/v1", {"anything": 1}))
    bad = [
        _statement(oms_type, {**OMS_PREDICATE, "https://modelsign.dev/manifest/v1": {}}),
        _statement("https://modelsign.dev/test/v1", []),  # type: ignore[arg-type]
    ]
    for statement in bad:
        with pytest.raises(AssertionError, match="failing the schemas"):
            signer.sign_statement(statement)
    # The fixture would also fail this test at teardown: these were expected.
    violations = request.node.stash[VIOLATIONS]
    assert len(violations) == 2
    violations.clear()


# -- (b) everything modelsign writes passes the schemas ---------------------------------------


def check_written(signature: Path) -> None:
    """``model.sig`` passes the OMS schemas; each line of ``claims.jsonl`` beside it passes
    the bundle and in-toto schemas and is about the same subject."""
    data = signature.read_bytes()
    assert oms_errors(data) == [], signature
    claims = Path(claims_path(str(signature)))
    assert claims.is_file(), f"modelsign writes its attestation to {claims}"
    subject = statement_in(data)["subject"]
    lines = claims.read_bytes().splitlines()
    assert lines, f"{claims} is empty"
    for i, line in enumerate(lines):
        assert attestation_errors(line) == [], f"{claims} line {i + 1}"
        statement = statement_in(line)
        assert statement["predicateType"].startswith("https://modelsign.dev/")
        assert statement["subject"] == subject


def _signature_of(case: Case, model: Path) -> Path:
    return model.with_name(model.name + ".sig") if case.single_file else model / "model.sig"


def _ignore_args(case: Case) -> list[str]:
    return [a for name in case.ignored for a in ("--ignore", name.rstrip("/"))]


@pytest.mark.slow
def test_every_model_layout_signs_schema_valid(tmp_path: Path) -> None:
    private, public = oms.write_ec_key(tmp_path / "keys", ec.SECP256R1())
    creds = oms.Credentials.for_key(private, public)
    models = [c.build(tmp_path / c.name) for c in CASES]
    procs = oms.run_all(
        [creds.ms_sign(m, *_ignore_args(c)) for c, m in zip(CASES, models, strict=True)]
    )
    failures = {}
    for case, model, proc in zip(CASES, models, procs, strict=True):
        oms.ok(proc)
        try:
            check_written(_signature_of(case, model))
        except AssertionError as exc:
            failures[case.name] = str(exc).splitlines()[:3]
    assert failures == {}


@pytest.mark.slow
@pytest.mark.parametrize(
    "curve", [ec.SECP256R1(), ec.SECP384R1(), ec.SECP521R1()], ids=["p256", "p384", "p521"]
)
def test_every_key_signs_schema_valid(curve: ec.EllipticCurve, tmp_path: Path) -> None:
    creds = oms.Credentials.for_key(*oms.write_ec_key(tmp_path / "keys", curve))
    model = CASES[1].build(tmp_path)
    oms.ok(oms.run(creds.ms_sign(model)))
    check_written(model / "model.sig")


@pytest.mark.slow
@pytest.mark.parametrize("extra", [["--shard-size", "1000"], ["--single-file-name", "spec"]])
def test_shard_and_spec_name_signatures_are_schema_valid(extra: list[str], tmp_path: Path) -> None:
    """The spec's shard form (integer shard_size, plain algorithm) and single-file name."""
    creds = oms.Credentials.for_key(*oms.write_ec_key(tmp_path / "keys", ec.SECP256R1()))
    model = CASES[1].build(tmp_path)
    target = next(p for p in sorted(model.rglob("*")) if p.is_file() and p.stat().st_size > 0)
    signed = model if extra[0] == "--shard-size" else target
    oms.ok(oms.run(creds.ms_sign(signed, *extra)))
    sig = signed / "model.sig" if signed.is_dir() else Path(f"{signed}.sig")
    check_written(sig)
    statement = payload_of(sig)
    serialization = statement["predicate"]["serialization"]
    if extra[0] == "--shard-size":
        assert serialization["method"] == "shards" and serialization["shard_size"] == 1000
    else:
        assert [r["name"] for r in statement["predicate"]["resources"]] == [target.name]
    oms.ok(oms.run(creds.ms_verify(signed)))


@pytest.mark.slow
def test_certificate_chain_signs_schema_valid(tmp_path: Path) -> None:
    creds = oms.Credentials.for_pki(build_pki(), tmp_path / "pki")
    model = CASES[1].build(tmp_path)
    oms.ok(oms.run(creds.ms_sign(model)))
    check_written(model / "model.sig")
    material = json.loads((model / "model.sig").read_bytes())["verificationMaterial"]
    assert len(material["x509CertificateChain"]["certificates"]) == 2


@pytest.mark.slow
def test_sigstore_signs_schema_valid(standin: SigstoreStandin, tmp_path: Path) -> None:
    model = CASES[1].build(tmp_path)
    # No proxy (the stand-in is on 127.0.0.1) and no ambient CI credentials.
    env = {
        k: v
        for k, v in os.environ.items()
        if "proxy" not in k.lower() and not k.startswith(("GITHUB_", "ACTIONS_", "SIGSTORE_"))
    }
    env.pop("MODELSIGN_IDENTITY_TOKEN", None)
    cmd = oms.modelsign(
        "sign",
        model,
        "--sigstore",
        "--identity-token",
        standin.token(),
        "--trust-config",
        standin.trust_config_path,
    )
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120, check=False)
    oms.ok(proc)
    check_written(model / "model.sig")
    material = json.loads((model / "model.sig").read_bytes())["verificationMaterial"]
    assert material["tlogEntries"] and "certificate" in material
    root = standin.trusted_root()
    verifier = SigstoreVerifier(root, identity=DEFAULT_IDENTITY, issuer=DEFAULT_ISSUER)
    assert verify(model, verifier=verifier).verdict == "verified"
