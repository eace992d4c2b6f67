"""modelsign's attestation: written beside the OMS bundle, bound to it, and never silently lost."""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import rfc8785

from modelsign._internal.signature.attestation import claims_path, load_signature
from modelsign._internal.signature.bundle import Envelope
from modelsign._internal.signature.signers import KeySigner
from modelsign._internal.signature.statement import (
    ATTESTATION_TYPE,
    LEGACY_MANIFEST_FIELD,
    MARKER,
    PREDICATE_V1,
)
from modelsign._internal.signature.verifiers import KeyVerifier, SignerInfo
from modelsign.errors import InputError, VerificationError
from modelsign.sign import sign
from modelsign.verify import verify
from tests.helpers.signing import (
    attestation_of,
    error_codes,
    flip_byte,
    manifest_of,
    payload_bytes,
    payload_of,
    shared_key,
    sign_payload,
    statement_in,
    strip_marker,
)

KEY = shared_key()  # the key of the ``keypair`` fixture, which ``signed`` signs with
OTHER = shared_key("other")
VERIFIER = KeyVerifier(KEY.public_key())


class EitherKey:
    """A verifier trusting two keys (as a policy listing two signers does)."""

    def verify_envelope(self, envelope: Envelope) -> SignerInfo:
        try:
            return KeyVerifier(KEY.public_key()).verify_envelope(envelope)
        except VerificationError:
            return KeyVerifier(OTHER.public_key()).verify_envelope(envelope)


codes = error_codes


def failing(model: Path, **kw: Any) -> VerificationError:
    """``verify`` (trusting KEY unless told otherwise) that must fail."""
    with pytest.raises(VerificationError) as e:
        verify(model, **{"verifier": VERIFIER, **kw})
    return e.value


def test_the_oms_bundle_is_plain_and_marks_its_attestation(signed: Path) -> None:
    st = payload_of(signed / "model.sig")
    assert st["predicateType"] == PREDICATE_V1
    assert set(st["predicate"]) == {"resources", "serialization"}
    first, *rest = st["predicate"]["resources"]
    assert first["annotations"] == {MARKER: ATTESTATION_TYPE}
    assert all("annotations" not in r for r in rest)
    assert {"model.sig", "claims.jsonl"} <= set(st["predicate"]["serialization"]["ignore_paths"])


def test_the_attestation_names_the_oms_payload_and_subject(signed: Path) -> None:
    att = attestation_of(signed / "model.sig")
    oms = payload_of(signed / "model.sig")
    assert att["predicateType"] == ATTESTATION_TYPE
    assert att["subject"] == oms["subject"]
    ref = att["predicate"]["statement"]
    assert ref == {
        "predicateType": PREDICATE_V1,
        "sha256": hashlib.sha256(payload_bytes(signed / "model.sig")).hexdigest(),
    }
    assert att["predicate"]["manifest"]["name"] == "tiny-model"
    # One compact JSON bundle per line.
    (line,) = (signed / "claims.jsonl").read_bytes().splitlines()
    assert b"\n" not in line and json.loads(line)["dsseEnvelope"]


def test_attestation_removed_is_a_failure(signed: Path) -> None:
    (signed / "claims.jsonl").unlink()
    exc = failing(signed)
    assert codes(exc) == {"ATTESTATION_MISSING"}
    (signed / "claims.jsonl").write_text("")
    assert codes(failing(signed)) == {"ATTESTATION_UNBOUND"}


def test_attestation_of_another_model_is_not_bound(
    signed: Path, tiny_models: tuple[Path, Path]
) -> None:
    other = tiny_models[1]
    sign(other, signer=KeySigner(KEY), env={})
    shutil.copy(other / "claims.jsonl", signed / "claims.jsonl")
    exc = failing(signed)
    assert codes(exc) == {"ATTESTATION_UNBOUND"}
    assert "extends another statement" in exc.findings[0].message


def test_attestation_signed_by_another_key_is_not_bound(signed: Path) -> None:
    att = attestation_of(signed / "model.sig")
    forged = sign_payload(OTHER, rfc8785.dumps(att))
    compact = json.dumps(json.loads(forged), separators=(",", ":")).encode()
    (signed / "claims.jsonl").write_bytes(compact + b"\n")
    assert codes(failing(signed)) == {"ATTESTATION_UNBOUND"}
    # Even when the verifier trusts both keys, the attestation must be the model signer's.
    exc = failing(signed, verifier=EitherKey())
    assert codes(exc) == {"ATTESTATION_UNBOUND"}
    assert "someone other than the model's signer" in exc.findings[0].message


def test_a_changed_attested_manifest_is_not_bound(signed: Path) -> None:
    """The attestation's own signature covers the manifest: a swapped one fails its check."""
    line = (signed / "claims.jsonl").read_bytes()
    bundle = json.loads(line)
    st = statement_in(line)
    st["predicate"]["manifest"]["name"] = "another-model"
    bundle["dsseEnvelope"]["payload"] = base64.b64encode(rfc8785.dumps(st)).decode()
    (signed / "claims.jsonl").write_text(json.dumps(bundle) + "\n")
    exc = failing(signed)
    assert codes(exc) == {"ATTESTATION_UNBOUND"}
    assert "signature" in exc.findings[0].message.lower()


def test_tensor_verdicts_come_from_the_attestation(signed: Path) -> None:
    r = verify(signed, verifier=VERIFIER)
    assert r.files_by_tensor_digests == 1 and r.tensors_verified == 21
    flip_byte(signed / "model.safetensors", 3, tensor="model.layers.0.self_attn.k_proj.weight")
    assert {"FILE_MODIFIED", "TENSOR_MODIFIED"} <= codes(failing(signed))


def test_an_oms_only_signature_verifies_by_file(signed: Path, tmp_path: Path) -> None:
    st = strip_marker(payload_of(signed / "model.sig"))
    (signed / "model.sig").write_bytes(sign_payload(KEY, rfc8785.dumps(st)))
    (signed / "claims.jsonl").unlink()
    r = verify(signed, verifier=VERIFIER)
    assert r.verdict == "verified" and r.files_by_tensor_digests == 0 and r.tensors_verified == 0


def test_legacy_signature_verifies_with_a_warning(signed: Path) -> None:
    """modelsign < 0.2 put the manifest inside the predicate: still read, re-signing suggested."""
    st = strip_marker(payload_of(signed / "model.sig"))
    st["predicate"][LEGACY_MANIFEST_FIELD] = manifest_of(signed / "model.sig")
    (signed / "model.sig").write_bytes(sign_payload(KEY, rfc8785.dumps(st)))
    (signed / "claims.jsonl").unlink()
    r = verify(signed, verifier=VERIFIER)
    assert r.verdict == "verified" and r.tensors_verified == 21
    (warning,) = r.problems
    assert warning.code == "LEGACY_SIGNATURE" and warning.severity == "warning"
    assert "re-sign" in warning.message
    # Any other extra predicate field is refused (the v1.0 schema forbids them).
    st["predicate"]["https://example.com/other"] = 1
    (signed / "model.sig").write_bytes(sign_payload(KEY, rfc8785.dumps(st)))
    assert codes(failing(signed)) == {"STATEMENT_SCHEMA"}


def test_resigning_keeps_other_claims_and_replaces_its_own(signed: Path) -> None:
    foreign = json.dumps({"mediaType": "x", "note": "another tool's claim"})
    with open(signed / "claims.jsonl", "a") as fh:
        fh.write(foreign + "\n")
    sign(signed, signer=KeySigner(KEY), env={}, force=True)
    lines = (signed / "claims.jsonl").read_text().splitlines()
    assert len(lines) == 2 and json.loads(lines[0]) == json.loads(foreign)
    assert verify(signed, verifier=VERIFIER).verdict == "verified"


def test_claims_place_follows_the_signature(tiny_model: Path, tmp_path: Path) -> None:
    assert claims_path("/m/model.sig") == "/m/claims.jsonl"
    assert claims_path("/m/w.gguf.sig") == "/m/w.gguf.claims.jsonl"
    assert claims_path("/m/sig") == "/m/sig.claims.jsonl"
    res = sign(tiny_model, signer=KeySigner(KEY), signature=tmp_path / "r.sig", env={})
    assert res.claims == str(tmp_path / "r.claims.jsonl")
    custom = tmp_path / "elsewhere.jsonl"
    sign(tiny_model, signer=KeySigner(KEY), signature=tmp_path / "s.sig", claims=custom, env={})
    assert custom.is_file()
    sig = tmp_path / "s.sig"
    assert codes(failing(tiny_model, signature=sig)) == {"ATTESTATION_MISSING"}
    r = verify(tiny_model, verifier=VERIFIER, signature=sig, claims=custom)
    assert r.tensors_verified == 21
    with pytest.raises(InputError) as e:
        sign(tiny_model, signer=KeySigner(KEY), signature=sig, claims=sig, force=True, env={})
    assert e.value.code == "USAGE"


def test_readers_bind_by_digest_without_verifying(signed: Path) -> None:
    s = load_signature(str(signed / "model.sig"))
    assert s.signer is None and s.statement.manifest is not None
    assert s.claims == claims_path(str(signed / "model.sig"))


def test_single_file_spec_name(tiny_models: tuple[Path, Path]) -> None:
    gguf = tiny_models[1] / "tiny-model-Q8_0.gguf"
    res = sign(gguf, signer=KeySigner(KEY), single_file_name="spec", env={})
    st = payload_of(Path(res.signature))
    assert [r["name"] for r in st["predicate"]["resources"]] == [gguf.name]
    assert st["subject"][0]["name"] == gguf.name
    r = verify(gguf, verifier=VERIFIER)
    assert r.verdict == "verified" and r.tensors_verified > 0


def test_ignored_path_with_glob_characters_is_refused(tiny_model: Path) -> None:
    (tiny_model / "notes[1].txt").write_text("x")
    with pytest.raises(InputError) as e:
        sign(tiny_model, signer=KeySigner(KEY), ignore=["notes*"], env={})
    assert e.value.code == "IGNORE_PATH_GLOB" and not (tiny_model / "model.sig").exists()


def test_recorded_patterns_are_not_expanded_again(tiny_model: Path) -> None:
    (tiny_model / "a.tmp").write_text("x")
    sign(tiny_model, signer=KeySigner(KEY), ignore=["*.tmp"], env={})
    assert (
        "a.tmp"
        in payload_of(tiny_model / "model.sig")["predicate"]["serialization"]["ignore_paths"]
    )
    (tiny_model / "b.tmp").write_text("dropped later")
    exc = failing(tiny_model)
    assert codes(exc) == {"FILE_EXTRA"} and exc.findings[0].file == "b.tmp"


def test_nested_git_folders_are_signed(tiny_model: Path) -> None:
    (tiny_model / ".git").mkdir()
    (tiny_model / ".git" / "HEAD").write_text("ref")
    (tiny_model / "sub" / ".git").mkdir(parents=True)
    (tiny_model / "sub" / ".git" / "HEAD").write_text("ref")
    sign(tiny_model, signer=KeySigner(KEY), env={})
    names = [r["name"] for r in payload_of(tiny_model / "model.sig")["predicate"]["resources"]]
    assert "sub/.git/HEAD" in names and ".git/HEAD" not in names
    (tiny_model / "sub" / ".git" / "HEAD").write_text("REF")  # same size: the content is compared
    assert codes(failing(tiny_model)) == {"FILE_MODIFIED"}
