"""CycloneDX ML-BOMs: schema-valid, deterministic, faithful to the manifest."""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import uuid
from datetime import datetime, timezone
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import rfc8785
from click.testing import CliRunner
from cyclonedx.model.component import Component, ComponentType
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator

import modelsign.cli.sbom  # noqa: F401  (registers the command until cli/__init__ imports it)
from modelsign import KeySigner, sign
from modelsign._internal.manifest import Manifest, load_manifest
from modelsign._internal.metadata.card import parse_model_card
from modelsign._internal.metadata.licence import Licence
from modelsign._internal.metadata.provenance import SourceRepo
from modelsign.cli import cli
from modelsign.sbom import (
    SERIAL_NAMESPACE,
    BomBuilder,
    ml_bom,
    ml_bom_json,
    model_card,
    model_component,
)
from modelsign.sign import build_manifest
from tests.helpers.onnx_files import quantized_model, save_external
from tests.helpers.signing import payload_of, shared_key, sign_payload, strip_marker

MODEL_TYPE = "machine-learning-model"


@cache
def _validator() -> JsonStrictValidator:
    return JsonStrictValidator(SchemaVersion.V1_6)


def valid(text: str) -> dict[str, Any]:
    """Parse a BOM after checking it against the CycloneDX 1.6 JSON schema."""
    errors = _validator().validate_str(text, all_errors=True)
    assert errors is None, [str(e) for e in errors]
    doc: dict[str, Any] = json.loads(text)
    assert doc["bomFormat"] == "CycloneDX" and doc["specVersion"] == "1.6"
    return doc


def run(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    r = CliRunner().invoke(cli, ["sbom", *args], env=env)
    return r.exit_code, r.stdout, r.stderr


def props(component: dict[str, Any], name: str) -> list[str]:
    return [p["value"] for p in component.get("properties", []) if p["name"] == f"modelsign:{name}"]


def prop(component: dict[str, Any], name: str) -> str:
    (value,) = props(component, name)
    return value


def subject(doc: dict[str, Any]) -> dict[str, Any]:
    c: dict[str, Any] = doc["metadata"]["component"]
    assert c["type"] == MODEL_TYPE
    return c


def depends_on(doc: dict[str, Any], ref: str) -> list[str]:
    deps = {d["ref"]: d.get("dependsOn", []) for d in doc["dependencies"]}
    return list(deps[ref])


def bom_of(target: Path, *extra: str) -> tuple[dict[str, Any], str]:
    code, out, err = run(str(target), *extra)
    assert code == 0, err
    return valid(out), out


# --- models, manifests, signatures through the CLI -----------------------------


def test_tiny_model(tiny_model: Path) -> None:
    doc, _ = bom_of(tiny_model)
    model = subject(doc)
    m = build_manifest(tiny_model)
    assert model["name"] == "tiny-model"
    assert model["bom-ref"] == f"model:{m.digest()}"
    assert prop(model, "manifest:digest") == m.digest()
    assert prop(model, "manifest:origin") == "model"
    assert prop(model, "weights:digest") == m.weights_digest
    assert prop(model, "tensor_count") == "21"
    assert prop(model, "hashing:tensor") == "blake3"
    # licence: an SPDX id, declared; the evidence as properties
    assert model["licenses"] == [{"license": {"id": "Apache-2.0", "acknowledgement": "declared"}}]
    assert prop(model, "licence:agree") == "true"
    assert len(props(model, "licence:source")) == 2
    # every file a sub-component whose hash is the file's SHA-256
    files = {c["name"]: c for c in model["components"]}
    assert set(files) == {"LICENSE", "README.md", "config.json", "model.safetensors"}
    for name, c in files.items():
        assert c["type"] == "file"
        digest = hashlib.sha256((tiny_model / name).read_bytes()).hexdigest()
        assert c["hashes"] == [{"alg": "SHA-256", "content": digest}]
    weights = files["model.safetensors"]
    assert prop(weights, "file:format") == "safetensors"
    assert prop(weights, "tensor_count") == "21"
    assert prop(weights, "file:dtypes") == "F16=16,F32=5"
    assert prop(files["config.json"], "file:format") == "opaque"
    # the base model: a component the model depends on
    (base,) = doc["components"]
    assert base["type"] == MODEL_TYPE and base["name"] == "modelsign-examples/tiny-base"
    assert base["purl"] == "pkg:huggingface/modelsign-examples/tiny-base"
    assert depends_on(doc, model["bom-ref"]) == [base["bom-ref"]]
    assert props(model, "base_model") == [
        "modelsign-examples/tiny-base (finetune) from README.md:base_model"
    ]
    # the card's front matter reaches the model card
    assert model["modelCard"]["properties"] == [
        {"name": "modelsign:card:library_name", "value": "transformers"}
    ]
    assert doc["metadata"]["tools"]["components"][0]["name"] == "modelsign"
    assert "timestamp" not in doc["metadata"]


def test_gguf_derivative(tiny_models: tuple[Path, Path]) -> None:
    doc, _ = bom_of(tiny_models[1])
    model = subject(doc)
    assert prop(model, "quantization:quantized") == "true"
    assert prop(model, "quantization:scheme") == "MOSTLY_Q8_0"
    assert prop(model, "quantization:file_type") == "MOSTLY_Q8_0"
    assert prop(model, "quantization:source") == "tiny-model-Q8_0.gguf:general.file_type"
    assert float(prop(model, "quantization:bits_per_weight")) == pytest.approx(8.57, abs=0.01)
    (gguf,) = model["components"]
    assert prop(gguf, "file:format") == "gguf"
    assert prop(gguf, "quantization:file_type") == "MOSTLY_Q8_0"
    assert prop(gguf, "file:dtypes") == "F32=5,Q8_0=16"
    assert prop(gguf, "gguf:version") == "3"
    digest = hashlib.sha256((tiny_models[1] / "tiny-model-Q8_0.gguf").read_bytes()).hexdigest()
    assert gguf["hashes"][0]["content"] == digest
    assert model["licenses"][0]["license"]["id"] == "Apache-2.0"
    assert model["modelCard"]["modelParameters"] == {"architectureFamily": "llama"}
    # the GGUF names its base model by name and organization
    (base,) = doc["components"]
    assert base["name"] == "tiny-model" and base["manufacturer"] == {"name": "modelsign-examples"}
    assert "purl" not in base
    assert depends_on(doc, model["bom-ref"]) == ["base-model:tiny-model"]


def test_onnx_model_with_external_data(tmp_path: Path) -> None:
    proto = quantized_model("qdq")
    proto.producer_name, proto.producer_version = "acme-export", "2.1"
    save_external(proto, tmp_path / "m" / "model.onnx", "model.onnx_data")
    doc, _ = bom_of(tmp_path / "m")
    model = subject(doc)
    assert prop(model, "quantization:scheme") == "onnx-qdq"
    assert prop(model, "quantization:bits") == "8"
    assert prop(model, "quantization:source") == "model.onnx:graph"
    files = {c["name"]: c for c in model["components"]}
    onnx_file, data = files["model.onnx"], files["model.onnx_data"]
    assert prop(onnx_file, "file:format") == prop(data, "file:format") == "onnx"
    assert prop(onnx_file, "onnx:producer") == "acme-export 2.1"
    assert prop(onnx_file, "onnx:ir_version") == str(proto.ir_version)
    assert props(onnx_file, "onnx:opset") == [f"ai.onnx={proto.opset_import[0].version}"]
    assert prop(onnx_file, "onnx:initializers") == "3"  # w_q, w_scale, w_zero
    assert (prop(onnx_file, "quantization:scheme"), prop(onnx_file, "quantization:bits")) == (
        "onnx-qdq",
        "8",
    )
    assert prop(onnx_file, "tensor_count") == "0"  # all three are in the data file
    assert prop(data, "onnx:external_data_of") == "model.onnx"
    assert prop(data, "tensor_count") == "3" and prop(data, "file:dtypes") == "F32=1,I8=2"
    assert not props(data, "onnx:opset") and not props(data, "quantization:scheme")


@pytest.mark.slow
def test_real_model(real_model_dir: Path) -> None:
    doc, _ = bom_of(real_model_dir)
    model = subject(doc)
    assert model["licenses"][0]["license"]["id"] == "Apache-2.0"
    assert prop(model, "tensor_count") == "104"
    weights = next(c for c in model["components"] if c["name"] == "model.safetensors")
    assert prop(weights, "tensor_count") == "104"
    assert prop(model, "ignored:path") == ".gitattributes"
    assert "1_Pooling/config.json" in {c["name"] for c in model["components"]}
    card = model["modelCard"]
    assert card["modelParameters"]["task"] == "sentence-similarity"
    datasets = card["modelParameters"]["datasets"]
    assert len(datasets) == 21 and all(d["type"] == "dataset" for d in datasets)
    assert {"type": "dataset", "name": "ms_marco"} | {
        "contents": {"url": "https://huggingface.co/datasets/ms_marco"}
    } in datasets
    assert {"name": "modelsign:card:language", "value": "en"} in card["properties"]
    assert "sentence-similarity" in model["tags"]
    assert doc.get("components", []) == []  # no base model stated


def test_hf_cache_snapshot(tiny_model: Path, tmp_path: Path) -> None:
    rev = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "models--acme--tiny"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(rev)
    shutil.copytree(tiny_model, repo / "snapshots" / rev)
    doc, _ = bom_of(repo)
    model = subject(doc)
    assert model["name"] == "acme/tiny" and model["version"] == rev
    assert model["purl"] == f"pkg:huggingface/acme/tiny@{rev}"
    refs = {r["type"]: r["url"] for r in model["externalReferences"]}
    assert refs["vcs"] == "https://huggingface.co/acme/tiny"
    assert prop(model, "source:origin") == "hf-cache"
    assert model["modelCard"]["properties"][0]["value"] == "transformers"  # card read


def test_manifest_file_input(tiny_model: Path, tmp_path: Path) -> None:
    manifest = tmp_path / "m.json"
    assert (
        CliRunner().invoke(cli, ["manifest", str(tiny_model), "-o", str(manifest)]).exit_code == 0
    )
    doc, _ = bom_of(manifest)
    model = subject(doc)
    m = load_manifest(manifest)
    assert model["bom-ref"] == f"model:{m.digest()}"
    assert prop(model, "manifest:origin") == "manifest"
    assert prop(model, "manifest:digest") == m.digest()
    assert len(model["components"]) == 4
    assert "modelCard" not in model  # the manifest holds no card data and no GGUF


def _signed(tiny_model: Path) -> tuple[Path, Manifest]:
    result = sign(tiny_model, signer=KeySigner(shared_key()))
    return Path(result.signature), result.manifest


def test_signature_input_is_marked_unverified(tiny_model: Path) -> None:
    sig, signed = _signed(tiny_model)
    code, out, err = run(str(sig))
    assert code == 0, err
    assert "not verified" in err
    model = subject(valid(out))
    assert prop(model, "manifest:origin") == "signature"
    assert prop(model, "signature:verified") == "false"
    assert "modelsign verify" in prop(model, "signature:note")
    assert prop(model, "manifest:digest") == signed.digest()
    # The folder now holds model.sig: it is left out as `sign` left it out,
    # so the model's BOM describes the signed manifest.
    doc, _ = bom_of(tiny_model)
    assert prop(subject(doc), "manifest:digest") == signed.digest()
    assert "model.sig" not in {c["name"] for c in subject(doc)["components"]}
    doc, _ = bom_of(tiny_model, "--ignore", "*.sig")  # asked for: recorded
    assert prop(subject(doc), "ignored:path") == "model.sig"


def test_signature_without_manifest(tiny_model: Path, tmp_path: Path) -> None:
    sig, _ = _signed(tiny_model)
    statement = payload_of(sig)
    strip_marker(statement)
    oms_only = tmp_path / "oms.sig"
    oms_only.write_bytes(sign_payload(shared_key(), rfc8785.dumps(statement)))
    code, _, err = run(str(oms_only))
    assert code == 2 and "error[SIGNATURE_NO_MANIFEST]" in err
    broken = json.loads(sig.read_bytes())
    broken["dsseEnvelope"]["payload"] = base64.b64encode(b"[]").decode()
    bad = tmp_path / "bad.sig"
    bad.write_text(json.dumps(broken))
    code, _, err = run(str(bad))
    assert code == 2 and "cannot read the signature" in err and "Traceback" not in err


# --- determinism, output handling -----------------------------------------------


def test_deterministic(tiny_model: Path, tmp_path: Path) -> None:
    _, first = bom_of(tiny_model)
    _, second = bom_of(tiny_model)
    assert first == second
    out = tmp_path / "bom.json"
    assert run(str(tiny_model), "-o", str(out))[0] == 0
    assert out.read_text(encoding="utf-8") == first
    digest = build_manifest(tiny_model).digest()
    assert json.loads(first)["serialNumber"] == f"urn:uuid:{uuid.uuid5(SERIAL_NAMESPACE, digest)}"


def test_timestamp_on_request(tiny_model: Path) -> None:
    code, out, err = run(str(tiny_model), "--timestamp", env={"SOURCE_DATE_EPOCH": "1700000000"})
    assert code == 0, err
    assert valid(out)["metadata"]["timestamp"] == "2023-11-14T22:13:20+00:00"
    code, _, err = run(str(tiny_model), "--timestamp", env={"SOURCE_DATE_EPOCH": "soon"})
    assert code == 2 and "BAD_SOURCE_DATE_EPOCH" in err


def test_output_exists_needs_force(tiny_model: Path, tmp_path: Path) -> None:
    out = tmp_path / "bom.json"
    out.write_text("keep me")
    code, _, err = run(str(tiny_model), "-o", str(out))
    assert code == 2 and "error[OUTPUT_EXISTS]" in err and out.read_text() == "keep me"
    code, _, err = run(str(tiny_model), "-o", str(out), "--force")
    assert code == 0 and f"wrote {out}" in err
    valid(out.read_text(encoding="utf-8"))
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".modelsign-")]


def test_stdout_and_errors(tiny_model: Path, tmp_path: Path) -> None:
    code, out, err = run(str(tiny_model), "--ignore", "LICENSE")
    assert code == 0 and json.loads(out)["bomFormat"] == "CycloneDX"
    assert "manifest digest: sha256:" in err
    assert prop(subject(json.loads(out)), "ignored:path") == "LICENSE"
    code, _, err = run(str(tmp_path / "missing"))
    assert code == 2 and "error[NOT_FOUND]" in err


# --- the library ------------------------------------------------------------------


def _with(m: Manifest, **update: Any) -> Manifest:
    return m.model_copy(update=update)


def test_licence_expressions(tiny_model: Path) -> None:
    m = build_manifest(tiny_model)
    for spdx in (
        "Apache-2.0 OR MIT",
        "LicenseRef-llama3",
        "GPL-2.0-only WITH Classpath-exception-2.0",
    ):
        lic = Licence(spdx=spdx, sources=[], agree=False)
        model = subject(valid(ml_bom_json(_with(m, licence=lic))))
        assert model["licenses"] == [{"expression": spdx, "acknowledgement": "declared"}]
        assert prop(model, "licence:agree") == "false"
    none = Licence(spdx=None, sources=[], agree=True)
    assert "licenses" not in subject(valid(ml_bom_json(_with(m, licence=none))))


def test_source_repository(tiny_model: Path) -> None:
    m = build_manifest(tiny_model)
    rev = "0123456789ABCDEF0123456789abcdef01234567"
    source = SourceRepo(repository="acme/tiny", revision=rev, origin="cli")
    m = _with(m, provenance=m.provenance.model_copy(update={"source": source}))
    model = subject(valid(ml_bom_json(m)))
    assert model["version"] == rev
    assert model["purl"] == f"pkg:huggingface/acme/tiny@{rev.lower()}"
    refs = {r["type"]: r["url"] for r in model["externalReferences"]}
    assert refs == {
        "vcs": "https://huggingface.co/acme/tiny",
        "distribution": f"https://huggingface.co/acme/tiny/tree/{rev}",
        "model-card": f"https://huggingface.co/acme/tiny/blob/{rev}/README.md",
    }
    assert prop(model, "source:revision") == rev


def test_findings_and_flags(tmp_path: Path) -> None:
    (tmp_path / "modeling.py").write_text("print('hi')\n")
    (tmp_path / "weights.bin").write_bytes(b"\x80\x02}q\x00.")
    m = build_manifest(tmp_path)
    model = subject(valid(ml_bom_json(m)))
    findings = props(model, "finding")
    assert "CODE_FILE: modeling.py" in findings
    assert any(f.startswith("PICKLE_UNSAFE: weights.bin") for f in findings)
    assert "code: modeling.py" in props(model, "flagged")
    files = {c["name"]: c for c in model["components"]}
    assert prop(files["weights.bin"], "file:format") == "pickle"
    assert props(files["weights.bin"], "file:flag") == ["safe-state-dict", "unsafe-format"]
    assert prop(model, "quantization:quantized") == "false"


def test_hostile_card_stays_valid(tiny_model: Path) -> None:
    m = build_manifest(tiny_model)
    text = b"""---
pipeline_tag: text-generation
datasets: [squad, 42, "", "a b c", {x: 1}]
license_link: "javascript:alert(1)"
tags: [one, two, one]
co2_eq_emissions: {emissions: 12.5, source: "codecarbon", nested: {a: 1}}
model-index:
- name: x
  results:
  - task: {type: text-generation}
    dataset: {name: MMLU, type: cais/mmlu, split: test}
    metrics:
    - {type: accuracy, value: 0.61}
    - {name: f1, value: "0.5"}
    - {type: bad, value: {nested: true}}
    - just a string
  - not a mapping
---
"""
    card, findings = parse_model_card(text, "README.md")
    assert not findings
    mc = model_card(m, card)
    assert mc is not None
    assert mc["modelParameters"]["task"] == "text-generation"
    assert [d["name"] for d in mc["modelParameters"]["datasets"]] == ["squad", "a b c"]
    assert "contents" not in mc["modelParameters"]["datasets"][1]
    assert mc["quantitativeAnalysis"]["performanceMetrics"] == [
        {"type": "accuracy", "value": "0.61", "slice": "text-generation: MMLU (test)"},
        {"type": "f1", "value": "0.5", "slice": "text-generation: MMLU (test)"},
    ]
    env = mc["considerations"]["environmentalConsiderations"]["properties"]
    assert [p["name"] for p in env] == [
        "modelsign:card:co2_eq_emissions.emissions",
        "modelsign:card:co2_eq_emissions.source",
    ]
    model = subject(valid(ml_bom_json(m, card=card)))
    assert model["modelCard"] == mc
    assert model["tags"] == ["one", "two"]
    assert model_card(m, {}) is None  # nothing known: no model card


def test_ml_bom_object(tiny_model: Path) -> None:
    m = build_manifest(tiny_model)
    bom = ml_bom(m)
    assert bom.metadata.component is not None
    assert bom.metadata.component.type is ComponentType.MACHINE_LEARNING_MODEL
    assert str(bom.serial_number) == str(uuid.uuid5(SERIAL_NAMESPACE, m.digest()))
    stamped = ml_bom_json(m, timestamp=datetime(2024, 1, 2, 3, 4, 5, tzinfo=timezone.utc))
    assert valid(stamped)["metadata"]["timestamp"] == "2024-01-02T03:04:05+00:00"
    c = model_component(m)
    assert c.type is ComponentType.MACHINE_LEARNING_MODEL and len(c.components) == 4


def test_device_inventory(tiny_models: tuple[Path, Path]) -> None:
    base_m, quant_m = (build_manifest(p) for p in tiny_models)
    device = Component(type=ComponentType.DEVICE, name="edge-box-7", bom_ref="device:edge-box-7")
    builder = BomBuilder(device)
    a = builder.add_model(quant_m)
    b = builder.add_model(base_m, card={"pipeline_tag": "text-generation"})
    assert builder.add_model(quant_m) is a  # the same manifest is one component
    doc = valid(builder.to_json())
    assert doc["metadata"]["component"]["name"] == "edge-box-7"
    refs = {c["bom-ref"]: c for c in doc["components"]}
    assert {str(a.bom_ref), str(b.bom_ref)} <= set(refs)
    assert sorted(depends_on(doc, "device:edge-box-7")) == sorted([str(a.bom_ref), str(b.bom_ref)])
    assert depends_on(doc, str(a.bom_ref)) == ["base-model:tiny-model"]
    assert depends_on(doc, str(b.bom_ref)) == ["base-model:modelsign-examples/tiny-base"]
    assert refs[str(b.bom_ref)]["modelCard"]["modelParameters"]["task"] == "text-generation"
    assert refs[str(a.bom_ref)]["modelCard"]["modelParameters"]["architectureFamily"] == "llama"
    again = BomBuilder(device)
    again.add_model(base_m, card={"pipeline_tag": "text-generation"})
    again.add_model(quant_m)
    assert again.to_json() == builder.to_json()  # order of adding does not matter
    with pytest.raises(ValueError):
        builder.add_model(_with(base_m, name="other"), subject=True)
