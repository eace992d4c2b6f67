"""Verification: the signature, the statement, the model on disk — with tensor-level verdicts."""

from __future__ import annotations

import base64
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import rfc8785
from safetensors.numpy import load_file, save_file

from modelsign._internal.signature import keys
from modelsign._internal.signature.signers import KeySigner
from modelsign._internal.signature.verifiers import CertificateVerifier, KeyVerifier
from modelsign.errors import InputError, VerificationError
from modelsign.sign import sign
from modelsign.verify import verify
from tests.helpers.pki import build_pki, write_pki
from tests.helpers.signing import flip_byte, payload_of, shared_key, sign_payload

KEY = shared_key()  # the key of the ``keypair`` fixture, which ``signed`` signs with
SIGNER = KeySigner(KEY)
VERIFIER = KeyVerifier(KEY.public_key())


def codes(exc: VerificationError) -> set[str]:
    return {p.code for p in exc.findings if p.severity == "error"}


def failing(model: Path, **kw: object) -> VerificationError:
    with pytest.raises(VerificationError) as e:
        verify(model, verifier=kw.pop("verifier", VERIFIER), **kw)  # type: ignore[arg-type]
    return e.value


def test_verified_by_tensor_digests(signed: Path) -> None:
    r = verify(signed, verifier=VERIFIER)
    assert r.verdict == "verified" and r.files_verified == 4
    assert r.files_by_tensor_digests == 1 and r.tensors_verified == 21
    assert r.signer is not None and r.signer.kind == "key"
    assert r.signer.key_hint == keys.key_hint(KEY.public_key())
    assert r.manifest_digest and r.weights_digest and r.problems == []


def test_modified_tensor_is_named_with_hex_digests(signed: Path) -> None:
    flip_byte(signed / "model.safetensors", 5, tensor="model.layers.0.self_attn.k_proj.weight")
    exc = failing(signed)
    assert codes(exc) == {"FILE_MODIFIED", "TENSOR_MODIFIED"}
    (t,) = [p for p in exc.findings if p.code == "TENSOR_MODIFIED"]
    assert t.file == "model.safetensors" and t.tensor == "model.layers.0.self_attn.k_proj.weight"
    assert t.expected and t.actual and len(t.expected) == 64 and t.expected != t.actual
    assert exc.result is not None and exc.result.verdict == "failed"


def test_metadata_change_with_identical_tensor_bytes(signed: Path) -> None:
    path = signed / "model.safetensors"
    save_file(load_file(path), str(path), metadata={"format": "pt", "evil": "1"})
    exc = failing(signed)
    assert "METADATA_MODIFIED" in codes(exc) and "TENSOR_MODIFIED" not in codes(exc)


def test_renamed_tensor(signed: Path) -> None:
    path = signed / "model.safetensors"
    tensors = load_file(path)
    tensors["model.norm.renamed"] = tensors.pop("model.norm.weight")
    save_file(tensors, str(path), metadata={"format": "pt"})
    exc = failing(signed)
    removed = [p for p in exc.findings if p.code == "TENSOR_REMOVED"]
    added = [p for p in exc.findings if p.code == "TENSOR_ADDED"]
    assert [p.tensor for p in removed] == ["model.norm.weight"]
    assert [p.tensor for p in added] == ["model.norm.renamed"]


def test_gguf_tensor_and_chat_template(tiny_models: tuple[Path, Path], tmp_path: Path) -> None:
    from modelsign._internal.formats import read_layout
    from tests.helpers.gguf_files import write_gguf

    folder = tiny_models[1]
    sign(folder, signer=SIGNER, env={})
    path = folder / "tiny-model-Q8_0.gguf"
    layout = read_layout(path)
    span = next(t for t in layout.tensors if t.dtype == "Q8_0")
    flip_byte(path, span.start + 7, mask=0xFF)
    exc = failing(folder)
    assert any(p.code == "TENSOR_MODIFIED" and p.tensor == span.name for p in exc.findings)

    chat = tmp_path / "chat"
    chat.mkdir()
    weights = {"w": np.ones(64, dtype=np.float32)}
    write_gguf(chat / "m.gguf", tensors=weights, chat_template="{{ messages }}")
    sign(chat, signer=SIGNER, env={})
    write_gguf(chat / "m.gguf", tensors=weights, chat_template="{{ cycler.__init__ }}")
    exc = failing(chat)
    assert "CHAT_TEMPLATE_MODIFIED" in codes(exc) and "TENSOR_MODIFIED" not in codes(exc)


def test_truncated_weight_file(signed: Path) -> None:
    path = signed / "model.safetensors"
    path.write_bytes(path.read_bytes()[:-100])
    exc = failing(signed)
    # Refused by its size, unread; the header (still there) says why it no longer parses.
    (p,) = [p for p in exc.findings if p.code == "FILE_SIZE_MISMATCH"]
    assert "no longer parses" in p.message and "TRUNCATED" in p.message
    assert int(p.expected or 0) - int(p.actual or 0) == 100


def test_missing_extra_renamed(signed: Path) -> None:
    os.rename(signed / "LICENSE", signed / "LICENSE.txt")
    (signed / "config.json").unlink()
    (signed / "new.py").write_text("import os\n")
    exc = failing(signed)
    by = {(p.code, p.file) for p in exc.findings}
    assert ("FILE_RENAMED", "LICENSE") in by
    assert ("FILE_MISSING", "config.json") in by
    assert ("FILE_EXTRA", "new.py") in by


def test_verifier_ignore_excuses_only_unsigned_files(signed: Path) -> None:
    (signed / "notes.txt").write_text("local notes")
    r = verify(signed, verifier=VERIFIER, ignore=["*.txt"])
    assert [p.code for p in r.problems] == ["FILE_UNSIGNED_IGNORED"]
    (signed / "README.md").write_text("changed")
    exc = failing(signed, ignore=["*.md", "*.txt"])
    assert ("FILE_SIZE_MISMATCH", "README.md") in {(p.code, p.file) for p in exc.findings}


def test_signed_ignore_paths_apply(tiny_model: Path) -> None:
    (tiny_model / "logs").mkdir()
    (tiny_model / "logs" / "a.txt").write_text("1")
    sign(tiny_model, signer=SIGNER, ignore=["logs"], env={})
    (tiny_model / "logs" / "a.txt").write_text("2")
    (tiny_model / "logs" / "b.txt").write_text("new")
    verify(tiny_model, verifier=VERIFIER)


def test_symlink_policy_cannot_be_loosened(signed: Path) -> None:
    os.symlink("README.md", signed / "CARD.md")
    exc = failing(signed)
    assert "SYMLINK_REFUSED" in codes(exc)


def test_wrong_key_and_tampered_signature(signed: Path) -> None:
    other = shared_key("other")
    exc = failing(signed, verifier=KeyVerifier(other.public_key()))
    assert codes(exc) == {"KEY_HINT_MISMATCH"}
    sig = signed / "model.sig"
    b = json.loads(sig.read_bytes())
    del b["verificationMaterial"]["publicKey"]["hint"]
    sig.write_text(json.dumps(b))
    assert codes(failing(signed, verifier=KeyVerifier(other.public_key()))) == {"BAD_SIGNATURE"}
    raw = bytearray(base64.b64decode(b["dsseEnvelope"]["signatures"][0]["sig"]))
    raw[-1] ^= 1
    b["dsseEnvelope"]["signatures"][0]["sig"] = base64.b64encode(bytes(raw)).decode()
    sig.write_text(json.dumps(b))
    assert codes(failing(signed)) == {"BAD_SIGNATURE"}


def test_tampered_statement(signed: Path) -> None:
    sig = signed / "model.sig"
    b = json.loads(sig.read_bytes())
    st = payload_of(sig)
    st["predicate"]["resources"][0]["digest"] = "0" * 64
    b["dsseEnvelope"]["payload"] = base64.b64encode(rfc8785.dumps(st)).decode()
    sig.write_text(json.dumps(b))
    assert codes(failing(signed)) == {"BAD_SIGNATURE"}


@pytest.mark.parametrize(
    ("mutate", "code"),
    [
        (lambda b: b.update(mediaType="application/json"), "BUNDLE_MEDIA_TYPE"),
        (lambda b: b["dsseEnvelope"].update(payloadType="text/plain"), "PAYLOAD_TYPE"),
        (lambda b: b["dsseEnvelope"].update(payload="***"), "BAD_BASE64"),
        (lambda b: b["dsseEnvelope"].update(signatures=[]), "BUNDLE_INVALID"),
        (lambda b: b.pop("dsseEnvelope"), "BUNDLE_INVALID"),
    ],
)
def test_malformed_bundles(signed: Path, mutate: object, code: str) -> None:
    sig = signed / "model.sig"
    b = json.loads(sig.read_bytes())
    mutate(b)  # type: ignore[operator]
    sig.write_text(json.dumps(b))
    assert codes(failing(signed)) == {code}


def test_malformed_json(signed: Path) -> None:
    (signed / "model.sig").write_text('{"mediaType": ')
    assert codes(failing(signed)) == {"MALFORMED_JSON"}
    (signed / "model.sig").write_text('{"mediaType": "a", "mediaType": "b"}')
    assert codes(failing(signed)) == {"DUPLICATE_JSON_KEY"}


def _resign(model: Path, statement: dict[str, object] | bytes) -> None:
    data = statement if isinstance(statement, bytes) else rfc8785.dumps(statement)
    (model / "model.sig").write_bytes(sign_payload(KEY, data))


@pytest.mark.parametrize(
    ("edit", "code"),
    [
        (lambda st: st["predicate"]["resources"][0].update(algorithm="md5"), "UNKNOWN_ALGORITHM"),
        (lambda st: st["predicate"]["resources"][0].update(name="../secret"), "UNSAFE_NAME"),
        (lambda st: st["predicate"]["resources"][0].update(name="/etc/passwd"), "UNSAFE_NAME"),
        (lambda st: st["subject"][0]["digest"].update(sha256="1" * 64), "SUBJECT_DIGEST_MISMATCH"),
        (lambda st: st.update(predicateType="https://example.com/x"), "PREDICATE_TYPE"),
        (lambda st: st.update(_type="https://in-toto.io/Statement/v0.1"), "STATEMENT_TYPE"),
        (
            lambda st: st["predicate"]["serialization"]["ignore_paths"].append("../x"),
            "UNSAFE_NAME",
        ),
    ],
)
def test_malformed_statements_signed_validly(signed: Path, edit: object, code: str) -> None:
    st = payload_of(signed / "model.sig")
    edit(st)  # type: ignore[operator]
    _resign(signed, st)
    assert codes(failing(signed)) == {code}


def test_duplicate_keys_in_payload(signed: Path) -> None:
    raw = rfc8785.dumps(payload_of(signed / "model.sig"))
    raw = raw.replace(b'"_type":', b'"_type":"x","_type":', 1)
    _resign(signed, raw)
    assert codes(failing(signed)) == {"DUPLICATE_JSON_KEY"}


def test_payloads_no_json_parser_agrees_on_are_refused(signed: Path) -> None:
    """NaN/Infinity (Python extensions) and nesting deeper than any parser recurses."""
    raw = rfc8785.dumps(payload_of(signed / "model.sig"))
    raw = raw.replace(b'"_type":', b'"nan":NaN,"_type":', 1)
    _resign(signed, raw)
    assert codes(failing(signed)) == {"MALFORMED_JSON"}
    _resign(signed, b"[" * 100_000 + b"]" * 100_000)
    assert codes(failing(signed)) == {"MALFORMED_JSON"}


def test_signature_for_another_model(signed: Path, tiny_models: tuple[Path, Path]) -> None:
    other = tiny_models[1]
    shutil.copy(signed / "model.sig", other / "model.sig")
    shutil.copy(signed / "claims.jsonl", other / "claims.jsonl")
    exc = failing(other)
    assert {"FILE_MISSING", "FILE_EXTRA"} <= codes(exc)


def test_no_tensor_and_sha256_signatures(tiny_model: Path) -> None:
    sign(tiny_model, signer=SIGNER, tensor_hash=None, env={})
    r = verify(tiny_model, verifier=VERIFIER)
    assert r.files_by_tensor_digests == 0 and r.tensors_verified == 0
    sign(tiny_model, signer=SIGNER, tensor_hash="sha256", env={}, force=True)
    r = verify(tiny_model, verifier=VERIFIER)
    assert r.files_by_tensor_digests == 1 and r.tensors_verified == 21


def test_missing_signature_is_an_input_error(tiny_model: Path) -> None:
    with pytest.raises(InputError) as e:
        verify(tiny_model, verifier=VERIFIER)
    assert e.value.code == "SIGNATURE_NOT_FOUND"


def test_certificate_chain(tiny_model: Path, tmp_path: Path) -> None:
    good = write_pki(build_pki(), tmp_path / "good")
    signer = KeySigner.from_files(str(good.leaf_key), cert=str(good.leaf), chain=[str(good.chain)])
    sign(tiny_model, signer=signer, env={})
    r = verify(tiny_model, verifier=CertificateVerifier.from_files([str(good.root)]))
    assert r.signer is not None and r.signer.kind == "certificate"
    assert r.signer.subject and "Model Publisher" in r.signer.subject
    other = write_pki(build_pki(), tmp_path / "other")
    exc = failing(tiny_model, verifier=CertificateVerifier.from_files([str(other.root)]))
    assert codes(exc) == {"CERT_UNTRUSTED"}
    expired = write_pki(build_pki(leaf_validity="expired"), tmp_path / "expired")
    signer = KeySigner.from_files(
        str(expired.leaf_key), cert=str(expired.leaf), chain=[str(expired.chain)]
    )
    sign(tiny_model, signer=signer, env={}, force=True)
    exc = failing(tiny_model, verifier=CertificateVerifier.from_files([str(expired.root)]))
    assert codes(exc) == {"CERT_EXPIRED"}
    # a key-signed bundle checked against certificate roots
    sign(tiny_model, signer=SIGNER, env={}, force=True)
    exc = failing(tiny_model, verifier=CertificateVerifier.from_files([str(good.root)]))
    assert codes(exc) == {"NO_CERTIFICATE"}


def test_ed25519_and_p521(tiny_model: Path) -> None:
    for kind in ("ed25519", "ec-p521"):
        key = keys.generate_key(kind)  # type: ignore[arg-type]
        sign(tiny_model, signer=KeySigner(key), env={}, force=True)
        verify(tiny_model, verifier=KeyVerifier(key.public_key()))


def test_many_tensors_large_file(tmp_path: Path) -> None:
    """Tensors bigger than a read chunk and many small ones, on the parallel path."""
    rng = np.random.default_rng(3)
    tensors = {f"t{i}": rng.standard_normal(1000 + i).astype(np.float32) for i in range(50)}
    tensors["big"] = rng.standard_normal(600_000).astype(np.float32)
    save_file(tensors, str(tmp_path / "m.safetensors"))
    sign(tmp_path, signer=SIGNER, env={})
    r = verify(tmp_path, verifier=VERIFIER, jobs=3)
    assert r.tensors_verified == 51
    flip_byte(tmp_path / "m.safetensors", 2_000_000, tensor="big")
    exc = failing(tmp_path)
    assert [p.tensor for p in exc.findings if p.code == "TENSOR_MODIFIED"] == ["big"]


def test_policy_judges_an_unsigned_model_from_headers_only(
    tiny_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without a trusted signature the content rules read headers, not every weight byte."""
    from modelsign._internal.manifest import build as manifest_module
    from modelsign.policy import Policy

    pem = keys.public_key_pem(KEY.public_key()).decode()
    policy_file = tmp_path / "p.yaml"
    policy_file.write_text(
        json.dumps(
            {
                "version": 1,
                "mode": "warn",
                "signers": {"keys": [{"pem": pem}]},
                "licences": {},
                "formats": {},
            }
        )
    )
    read: list[str] = []
    real = manifest_module.hash_files

    def spy(files, **kw):  # type: ignore[no-untyped-def]
        read.extend(f.path for f in files)
        return real(files, **kw)

    monkeypatch.setattr(manifest_module, "hash_files", spy)
    r = verify(tiny_model, policy=Policy.load(policy_file))  # no signature: warn mode reports
    rules = {x.rule: x.status for x in r.policy.rules}  # type: ignore[union-attr]
    assert rules == {"signers": "warn", "licences": "pass", "formats": "pass"}
    assert "model.safetensors" not in read and "README.md" in read


def test_verification_material_must_match_the_method(tiny_model: Path, tmp_path: Path) -> None:
    """OMS §11.1: a key verifier never accepts a certificate-method bundle, nor the reverse."""
    files = write_pki(build_pki(), tmp_path / "pki")
    signer = KeySigner.from_files(
        str(files.leaf_key), cert=str(files.leaf), chain=[str(files.chain)]
    )
    sign(tiny_model, signer=signer, env={})
    leaf_key = keys.load_private_key(str(files.leaf_key), None)
    exc = failing(tiny_model, verifier=KeyVerifier(leaf_key.public_key()))
    assert codes(exc) == {"METHOD_MISMATCH"} and "--cert-chain" in exc.findings[0].message
    bundle = json.loads((tiny_model / "model.sig").read_bytes())
    bundle["verificationMaterial"]["publicKey"] = {"hint": keys.key_hint(leaf_key.public_key())}
    (tiny_model / "model.sig").write_text(json.dumps(bundle))
    assert codes(failing(tiny_model, verifier=KeyVerifier(leaf_key.public_key()))) == {
        "BUNDLE_INVALID"
    }


def test_substitution_is_caught_by_the_expected_name_and_source(
    tiny_models: tuple[Path, Path], tmp_path: Path
) -> None:
    """Another model signed by the same key, copied over this one, verifies as itself; the
    caller's expected name and source are what tell them apart."""
    from modelsign._internal.metadata.provenance import parse_source

    model, other = tiny_models
    sign(model, signer=SIGNER, env={}, source=parse_source("acme/tiny@" + "a" * 40))
    sign(other, signer=SIGNER, env={}, source=parse_source("evil/other@" + "b" * 40), release="v9")
    shutil.rmtree(model)
    shutil.copytree(other, model)  # the substitution: a validly signed, different model
    r = verify(model, verifier=VERIFIER)
    assert (r.model_name, r.source, r.release) == (
        "tiny-model-gguf",
        "evil/other@" + "b" * 40,
        "v9",
    )
    exc = failing(model, expect_name="tiny-model", expect_source="acme/tiny")
    got = {(p.code, p.expected, p.actual) for p in exc.findings}
    assert got == {
        ("MODEL_NAME_MISMATCH", "tiny-model", "tiny-model-gguf"),
        ("SOURCE_MISMATCH", "acme/tiny", "evil/other@" + "b" * 40),
    }
    assert verify(model, verifier=VERIFIER, expect_source="evil/other").verdict == "verified"
    assert codes(failing(model, expect_source="evil/other@" + "c" * 40)) == {"SOURCE_MISMATCH"}


def test_an_oms_only_signature_cannot_meet_an_expected_name(tiny_model: Path) -> None:
    from tests.helpers.signing import strip_marker

    sign(tiny_model, signer=SIGNER, env={})
    st = strip_marker(payload_of(tiny_model / "model.sig"))
    (tiny_model / "model.sig").write_bytes(sign_payload(KEY, rfc8785.dumps(st)))
    (tiny_model / "claims.jsonl").unlink()
    exc = failing(tiny_model, expect_name="tiny-model")
    assert codes(exc) == {"MODEL_NAME_MISMATCH"} and "names no" in exc.findings[0].message
