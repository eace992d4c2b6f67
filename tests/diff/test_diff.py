"""modelsign.diff: files, tensors by layer, quantization, licence, provenance and signers."""

from __future__ import annotations

import base64
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import rfc8785
from cryptography import x509
from cryptography.x509.oid import ObjectIdentifier
from gguf import GGUFReader

from modelsign._internal.metadata.provenance import parse_source
from modelsign._internal.signature import keys
from modelsign._internal.signature.signers import KeySigner
from modelsign.diff import UNVERIFIED_NOTE, ModelDiff, diff_models, layer_index, layer_ranges
from modelsign.errors import InputError, SignatureError
from modelsign.sign import build_manifest, sign
from tests.helpers.gguf_files import QT, quantized, random_quant, write_gguf
from tests.helpers.keras_files import WEIGHTS, dense, keras_archive
from tests.helpers.pki import build_pki, issue, leaf_usage, make_key
from tests.helpers.signing import flip_byte, payload_of, shared_key, sign_payload, strip_marker

KEY_A = shared_key()
KEY_B = shared_key("other")
CHANGED = "model.layers.1.mlp.up_proj.weight"


def codes(d: ModelDiff) -> list[tuple[str, str | None, str | None]]:
    return sorted((c.code, c.path, c.tensor) for c in d.changes)


def edited_copy(model: Path, dest: Path) -> Path:
    """The model with one tensor of layer 1 changed and its README edited."""
    shutil.copytree(model, dest)
    flip_byte(dest / "model.safetensors", tensor=CHANGED)
    readme = dest / "README.md"
    readme.write_text(readme.read_text() + "\nNow with a changed layer.\n")
    return dest


def write_manifest(model: Path, out: Path, **kw: object) -> Path:
    out.write_bytes(build_manifest(model, env={}, **kw).canonical_bytes())  # type: ignore[arg-type]
    return out


# --- real models ---------------------------------------------------------------------


def test_one_tensor_and_readme_changed(tiny_model: Path, tmp_path: Path) -> None:
    """A file whose content differs is ``FILE_MODIFIED``, as in a verification.

    Split meaning: diff version 1 said ``FILE_CHANGED``, which stays the code
    of a file that changed while being read.
    """
    new = edited_copy(tiny_model, tmp_path / "v2")
    d = diff_models(tiny_model, new)
    assert not d.identical
    assert codes(d) == [
        ("FILE_MODIFIED", "README.md", None),
        ("FILE_MODIFIED", "model.safetensors", None),
        ("TENSOR_MODIFIED", "model.safetensors", CHANGED),
        ("WEIGHTS_DIGEST_CHANGED", None, None),
    ]
    (t,) = d.tensors
    assert t.layer == 1 and t.old_dtype == t.new_dtype == "F16" and t.new_shape == [128, 64]
    assert t.old and t.new and t.old != t.new and len(t.new) == 64  # BLAKE3 hex
    assert d.tensor_digests_compared and d.old.tensor_hash == "blake3"
    assert d.summary == (
        "1 of 21 tensors changed, all in layer 1; "
        "2 of 4 files changed (README.md, model.safetensors)"
    )
    c = d.counts
    assert (c.files_changed, c.tensors_modified, c.tensors_new, c.model_changes) == (2, 1, 21, 1)
    readme = d.files[0]
    assert readme.old == "sha256:" + build_manifest(tiny_model).files[1].sha256
    assert d.old.kind == d.new.kind == "model" and d.notes == []


def test_safetensors_vs_gguf_derivative_is_a_format_change(
    tiny_models: tuple[Path, Path],
) -> None:
    d = diff_models(*tiny_models)
    fmt = [c for c in d.files if c.code == "FORMAT_CHANGED"]
    assert [(c.path, c.old_path, c.old, c.new) for c in fmt] == [
        ("tiny-model-Q8_0.gguf", "model.safetensors", "safetensors", "gguf")
    ]
    # Every matrix was quantized; shapes compare across formats (GGUF dims reversed): each is
    # shown as its file records it, as inspect shows it (GGUF: fastest dimension first).
    retyped = [t for t in d.tensors if t.code == "TENSOR_RETYPED"]
    assert len(retyped) == 16 == d.counts.tensors_retyped and len(d.tensors) == 16
    assert {(t.old_dtype, t.new_dtype) for t in retyped} == {("F16", "Q8_0")}
    assert all(t.old_shape == list(reversed(t.new_shape or [])) for t in retyped)
    gguf = {t.name: t.shape for t in GGUFReader(tiny_models[1] / "tiny-model-Q8_0.gguf").tensors}
    assert all(t.new_shape == [int(x) for x in gguf[t.tensor or ""]] for t in retyped)
    lm_head = next(t for t in retyped if t.tensor == "lm_head.weight")
    assert lm_head.message == (
        "retyped F16[256,64] → Q8_0[64,256] (same shape: GGUF lists dimensions fastest first)"
    )
    # The F32 norms are the same bytes in both files.
    assert all("norm" not in (t.tensor or "") for t in d.tensors)
    assert {(c.field, c.old, c.new) for c in d.files if c.code == "QUANTIZATION_CHANGED"} >= {
        ("quantization.file_type", None, "MOSTLY_Q8_0"),
        ("quantization.dtypes", "F16:16, F32:5", "F32:5, Q8_0:16"),
    }
    scheme = [c for c in d.model if c.field == "quantization.scheme"]
    assert [(c.old, c.new) for c in scheme] == [(None, "MOSTLY_Q8_0")]
    assert d.summary.startswith(
        "16 of 21 tensors changed (layers 0–1, lm_head.weight, model.embed_tokens.weight); "
        "retyped F16 → Q8_0; format safetensors → gguf; quantization F16 → Q8_0; "
    )
    # The derivative states its base model in GGUF metadata, the original its card's.
    prov = {(c.old, c.new) for c in d.model if c.code == "PROVENANCE_CHANGED"}
    assert prov == {
        ("modelsign-examples/tiny-base (finetune)", None),
        (None, "modelsign-examples/tiny-model"),
    }
    assert not any(c.field == "licence.spdx" for c in d.model)  # Apache-2.0 both


def _gguf(path: Path, qtype: QT, file_type: int) -> Path:
    rng = np.random.default_rng(7)
    tensors = {
        f"blk.{i}.attn_q.weight": quantized(rng.standard_normal((4, 64)), qtype) for i in range(3)
    }
    return write_gguf(
        path,
        tensors={**tensors, "output_norm.weight": np.ones(64, np.float32)},
        file_type=file_type,
    )


def test_two_gguf_quantizations(tmp_path: Path) -> None:
    """(``FILE_MODIFIED``: ``FILE_CHANGED`` in diff version 1; see the first test.)"""
    old = _gguf(tmp_path / "tiny-Q8_0.gguf", QT.Q8_0, 7)
    new = _gguf(tmp_path / "tiny-Q4_0.gguf", QT.Q4_0, 2)
    d = diff_models(old, new)
    # Single-file models: the one file is compared whatever its name.
    changed = [c for c in d.files if c.code == "FILE_MODIFIED"]
    assert [(c.path, c.old_path) for c in changed] == [("tiny-Q4_0.gguf", "tiny-Q8_0.gguf")]
    assert {c.code for c in d.files} >= {"HEADER_MODIFIED", "METADATA_MODIFIED"}
    assert "general.file_type" in next(c.message for c in d.files if c.code == "METADATA_MODIFIED")
    assert {(t.tensor, t.old_dtype, t.new_dtype) for t in d.tensors} == {
        (f"blk.{i}.attn_q.weight", "Q8_0", "Q4_0") for i in range(3)
    }
    scheme = next(c for c in d.model if c.field == "quantization.scheme")
    assert (scheme.old, scheme.new) == ("MOSTLY_Q8_0", "MOSTLY_Q4_0")
    assert "3 of 4 tensors changed, all in layers 0–2; retyped Q8_0 → Q4_0" in d.summary
    assert "quantization Q8_0 → Q4_0" in d.summary


def test_requantized_layers_are_grouped(tmp_path: Path) -> None:
    def model(path: Path, top: QT, file_type: int) -> Path:
        tensors = {
            f"blk.{i}.ffn_down.weight": random_quant((2, 256), top if i >= 30 else QT.Q4_K, seed=i)
            for i in range(32)
        }
        tensors["output_norm.weight"] = np.ones(256, np.float32)  # type: ignore[assignment]
        return write_gguf(path, tensors=tensors, file_type=file_type)

    d = diff_models(
        model(tmp_path / "a.gguf", QT.Q4_K, 15), model(tmp_path / "b.gguf", QT.Q5_K, 17)
    )
    assert d.summary.startswith(
        "2 of 33 tensors changed, all in layers 30–31; retyped Q4_K → Q5_K; "
        "quantization Q4_K_M → Q5_K_M; 1 of 1 file changed (b.gguf)"
    )
    assert [t.layer for t in d.tensors] == [30, 31]


# --- manifests and signatures --------------------------------------------------------


def test_manifest_vs_manifest_needs_no_weights(tiny_model: Path, tmp_path: Path) -> None:
    new = edited_copy(tiny_model, tmp_path / "v2")
    a = write_manifest(tiny_model, tmp_path / "a.json")
    b = write_manifest(new, tmp_path / "b.json")
    shutil.rmtree(new)
    d = diff_models(a, b)
    assert d.old.kind == d.new.kind == "manifest" and d.old.path == str(a)
    assert codes(d) == codes(diff_models(tiny_model, edited_copy(tiny_model, tmp_path / "v3")))
    # Manifest objects work too, and a model against its own manifest is identical.
    m = build_manifest(tiny_model, env={})
    same = diff_models(m, tiny_model)
    assert same.identical and same.summary == "identical: 4 files, 21 tensors"
    assert same.old.path is None and same.changes == []


def test_folder_vs_its_manifest_is_identical(tiny_model: Path, tmp_path: Path) -> None:
    out = write_manifest(tiny_model, tmp_path / "m.json", source=parse_source("org/m@v1"))
    d = diff_models(tiny_model, out)
    # The folder cannot carry --source: build-time claims are not compared with it.
    assert d.identical and d.notes == []


def test_tensor_hash_follows_the_manifest(tiny_model: Path, tmp_path: Path) -> None:
    sha = write_manifest(tiny_model, tmp_path / "sha.json", tensor_hash="sha256")
    d = diff_models(sha, edited_copy(tiny_model, tmp_path / "v2"))
    assert d.new.tensor_hash == "sha256" and d.tensor_digests_compared
    assert [t.tensor for t in d.tensors] == [CHANGED]
    # Two manifests with different algorithms: dtypes and shapes only, and it says so.
    b3 = write_manifest(tiny_model, tmp_path / "b3.json")
    d = diff_models(sha, b3)
    assert d.identical and not d.tensor_digests_compared
    assert any("tensor digests not compared" in n for n in d.notes)


def test_signature_vs_signature_with_another_signer(tiny_model: Path, tmp_path: Path) -> None:
    new = edited_copy(tiny_model, tmp_path / "v2")
    sig_a = Path(sign(tiny_model, signer=KeySigner(KEY_A), env={}).signature)
    sig_b = Path(sign(new, signer=KeySigner(KEY_B), env={}).signature)
    d = diff_models(sig_a, sig_b)
    assert d.old.kind == "signature" and d.old.verified is False
    assert d.old.signer is not None and d.old.signer.kind == "key"
    assert d.old.signer.key_hint == keys.key_hint(KEY_A.public_key())
    assert [t.tensor for t in d.tensors] == [CHANGED]
    (signer,) = [c for c in d.model if c.code == "SIGNER_CHANGED"]
    assert signer.old == f"key {keys.key_hint(KEY_A.public_key())}"
    assert signer.new == f"key {keys.key_hint(KEY_B.public_key())}"
    assert "signer key " in d.summary and "(unverified)" in d.summary
    assert d.notes == [f"{sig_a}: {UNVERIFIED_NOTE}", f"{sig_b}: {UNVERIFIED_NOTE}"]
    # Same signer: no signer change; the model folder against its signature: identical.
    sig_a2 = Path(sign(new, signer=KeySigner(KEY_A), env={}, force=True).signature)
    assert not any(c.code == "SIGNER_CHANGED" for c in diff_models(sig_a, sig_a2).model)
    d = diff_models(tiny_model, sig_a)  # model.sig inside the folder is left out
    assert d.identical and d.notes == [f"{sig_a}: {UNVERIFIED_NOTE}"]


def test_signature_is_read_not_verified(tiny_model: Path) -> None:
    sig = Path(sign(tiny_model, signer=KeySigner(KEY_A), env={}).signature)
    bundle = json.loads(sig.read_text())
    bundle["dsseEnvelope"]["signatures"][0]["sig"] = base64.b64encode(b"forged").decode()
    sig.write_text(json.dumps(bundle))
    d = diff_models(sig, tiny_model)
    assert d.identical and UNVERIFIED_NOTE in d.notes[0]


def _fulcio_like(tiny_model: Path, dest: Path, email: str) -> Path:
    """A certificate bundle dressed as Sigstore's: SAN e-mail, issuer extension, tlog entry."""
    pki = build_pki()
    url = b"https://accounts.example.com"
    issuer = x509.UnrecognizedExtension(
        ObjectIdentifier("1.3.6.1.4.1.57264.1.8"),
        bytes([0x0C, len(url)]) + url,  # DER UTF8String
    )
    leaf = issue(
        x509.Name([]),
        make_key("ec-p256"),
        pki.intermediate,
        ca=False,
        key_usage=leaf_usage(),
        san_email=email,
        extra=[(issuer, False)],
    )
    signer = KeySigner(leaf.key, [leaf.cert, pki.intermediate.cert])  # type: ignore[arg-type]
    sig = Path(sign(tiny_model, signer=signer, signature=dest, env={}).signature)
    bundle = json.loads(sig.read_text())
    material = bundle["verificationMaterial"]
    # Sigstore v0.3 shape: one `certificate` (not a chain) and a log entry.
    material["certificate"] = material.pop("x509CertificateChain")["certificates"][0]
    material["tlogEntries"] = [{"logIndex": "1"}]
    sig.write_text(json.dumps(bundle))
    return sig


def test_certificate_and_sigstore_signers(tiny_model: Path, tmp_path: Path) -> None:
    pki = build_pki()
    cert_sig = Path(
        sign(
            tiny_model,
            signer=KeySigner(pki.leaf.key, [pki.leaf.cert, pki.intermediate.cert]),  # type: ignore[arg-type]
            signature=tmp_path / "cert.sig",
            env={},
        ).signature
    )
    alice = _fulcio_like(tiny_model, tmp_path / "alice.sig", "alice@example.com")
    bob = _fulcio_like(tiny_model, tmp_path / "bob.sig", "bob@example.com")
    d = diff_models(cert_sig, alice)
    assert d.old.signer is not None and d.old.signer.kind == "certificate"
    assert d.old.signer.subject is not None and "CN=Model Publisher" in d.old.signer.subject
    (c,) = d.changes
    assert c.code == "SIGNER_CHANGED" and c.new == (
        "sigstore alice@example.com via https://accounts.example.com"
    )
    assert not d.identical and d.files == d.tensors == []
    (c,) = diff_models(alice, bob).changes
    assert (c.old, c.new) == (
        "sigstore alice@example.com via https://accounts.example.com",
        "sigstore bob@example.com via https://accounts.example.com",
    )
    assert diff_models(
        alice, _fulcio_like(tiny_model, tmp_path / "a2.sig", "alice@example.com")
    ).identical


def _oms_only(tiny_model: Path, dest: Path) -> Path:
    """A signature as the OMS tool writes it: the file list, no modelsign manifest."""
    sig = Path(sign(tiny_model, signer=KeySigner(KEY_A), signature=dest, env={}).signature)
    statement = payload_of(sig)
    strip_marker(statement)
    dest.write_bytes(sign_payload(KEY_A, rfc8785.dumps(statement)))
    return dest


def test_oms_signature_diffs_files_by_digest(tiny_model: Path, tmp_path: Path) -> None:
    """(``FILE_MODIFIED``: ``FILE_CHANGED`` in diff version 1; see the first test.)"""
    oms = _oms_only(tiny_model, tmp_path / "oms.sig")
    same = diff_models(oms, tiny_model)
    assert same.identical and same.new.tensor_hash is None  # no tensor hashing needed
    assert same.summary == "identical: 4 files"
    new = edited_copy(tiny_model, tmp_path / "v2")
    d = diff_models(oms, new)
    assert codes(d) == [
        ("FILE_MODIFIED", "README.md", None),
        ("FILE_MODIFIED", "model.safetensors", None),
    ]
    assert d.old.manifest_digest is None and d.old.tensors == 0
    assert any("without a modelsign manifest" in n for n in d.notes)


# --- files, licence, provenance ----------------------------------------------------


def test_renamed_file(tiny_model: Path, tmp_path: Path) -> None:
    new = tmp_path / "v2"
    shutil.copytree(tiny_model, new)
    (new / "model.safetensors").rename(new / "model-00001-of-00001.safetensors")
    d = diff_models(tiny_model, new)
    (c,) = d.changes  # tensors are compared across files: nothing moved is a change
    assert (c.code, c.old_path, c.path) == (
        "FILE_RENAMED",
        "model.safetensors",
        "model-00001-of-00001.safetensors",
    )
    assert c.old == c.new and c.old is not None and c.old.startswith("sha256:")
    assert d.summary == "1 file renamed (model.safetensors → model-00001-of-00001.safetensors)"


def test_added_and_removed_files(tiny_model: Path, tmp_path: Path) -> None:
    new = tmp_path / "v2"
    shutil.copytree(tiny_model, new)
    (new / "config.json").unlink()
    (new / "tokenizer.json").write_text("{}")
    d = diff_models(tiny_model, new)
    assert [(c.code, c.path) for c in d.files] == [
        ("FILE_REMOVED", "config.json"),
        ("FILE_ADDED", "tokenizer.json"),
    ]
    assert "1 file added (tokenizer.json); 1 file removed (config.json)" in d.summary


def test_licence_change(tiny_model: Path, tmp_path: Path) -> None:
    new = tmp_path / "v2"
    shutil.copytree(tiny_model, new)
    (new / "LICENSE").unlink()
    readme = new / "README.md"
    readme.write_text(readme.read_text().replace("license: apache-2.0", "license: mit"))
    d = diff_models(tiny_model, new)
    lic = [(c.field, c.path, c.old, c.new) for c in d.model if c.code == "LICENCE_CHANGED"]
    assert lic == [
        ("licence.spdx", None, "Apache-2.0", "MIT"),
        ("licence.source", "LICENSE", "Apache License (Apache-2.0)", None),
        ("licence.source", "README.md:license", "apache-2.0 (Apache-2.0)", "mit (MIT)"),
    ]
    assert "licence Apache-2.0 → MIT" in d.summary


def test_provenance_change(tiny_model: Path, tmp_path: Path) -> None:
    a = write_manifest(tiny_model, tmp_path / "a.json", source=parse_source("org/tiny@v1"))
    b = build_manifest(
        tiny_model,
        source=parse_source("org/tiny@v2"),
        env={"GITHUB_ACTIONS": "true", "GITHUB_REPOSITORY": "org/tiny", "GITHUB_SHA": "ab" * 20},
    )
    d = diff_models(a, b)
    prov = [(c.field, c.old, c.new) for c in d.model]
    assert prov == [
        ("provenance.source", "org/tiny@v1", "org/tiny@v2"),
        ("provenance.builder", None, "github-actions org/tiny abababababab"),
    ]
    assert d.summary == "provenance changed (builder, source)"
    assert d.files == d.tensors == []


def test_a_keras_weights_member_that_changed_is_named(tmp_path: Path) -> None:
    old = keras_archive(tmp_path / "v1" / "model.keras", dense("a"))
    new = keras_archive(tmp_path / "v2" / "model.keras", dense("a"), weights=WEIGHTS[:-1] + b"\1")
    d = diff_models(old.parent, new.parent)
    assert codes(d) == [
        ("FILE_MODIFIED", "model.keras", None),
        ("HEADER_MODIFIED", "model.keras", None),  # the member's CRC-32 in its headers
        ("STORAGE_MODIFIED", "model.keras", None),
    ]
    (change,) = [c for c in d.changes if c.code == "STORAGE_MODIFIED"]
    assert change.message.startswith("storage model.weights.h5 changed")
    # Storage digests taken with different algorithms are not compared.
    sha = write_manifest(old.parent, tmp_path / "sha.json", tensor_hash="sha256")
    b3 = write_manifest(new.parent, tmp_path / "b3.json", tensor_hash="blake3")
    assert codes(diff_models(sha, b3)) == [("FILE_MODIFIED", "model.keras", None)]


# --- helpers and errors ------------------------------------------------------------


def test_layer_names_and_ranges() -> None:
    assert layer_index("model.layers.7.mlp.up_proj.weight") == 7
    assert layer_index("blk.12.attn_q.weight") == 12
    assert layer_index("transformer.h.3.attn.c_attn.weight") == 3
    assert layer_index("bert.encoder.layer.2.output.dense.weight") == 2
    assert layer_index("lm_head.weight") is None and layer_index("model.layers.x.w") is None
    assert layer_ranges([1]) == "layer 1"
    assert layer_ranges([31, 30]) == "layers 30–31"
    assert layer_ranges([5, 1, 3, 4, 9]) == "layers 1, 3–5, 9"


def test_unreadable_inputs(tiny_model: Path, tmp_path: Path) -> None:
    with pytest.raises(InputError) as e:
        diff_models(tmp_path / "missing", tiny_model)
    assert e.value.code == "NOT_FOUND" and e.value.exit_code == 2
    bad = tmp_path / "bad.sig"
    bad.write_text('{"mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json"}')
    with pytest.raises(SignatureError) as s:
        diff_models(bad, tiny_model)
    assert s.value.code == "BUNDLE_INVALID" and s.value.exit_code == 2
    bad.write_text("not json")
    with pytest.raises(SignatureError):
        diff_models(tiny_model, bad)
