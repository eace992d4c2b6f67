"""``modelsign inventory`` over realistic stores built on disk (``stores.py``: the device).

Every status is produced and asserted, with and without a policy and ``--verify``.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator

import modelsign.inventory as inventory_module
from modelsign import KeySigner, Policy, sign
from modelsign._internal.signature import keys
from modelsign.errors import InputError
from modelsign.inventory import (
    SMALL_FILE,
    STATUS_ORDER,
    Inventory,
    cyclonedx_json,
    scan,
    sort_models,
    store_locations,
)
from tests.helpers.deep import make_deep, remove_deep
from tests.inventory.stores import (
    HF_GGUF,
    HF_PARTIAL,
    HF_SIGNED,
    HF_TAMPERED,
    LM,
    MODEL,
    OLLAMA_PARTIAL,
    OTHER,
    REV_SIGNED,
    REV_TAMPERED,
    TRUSTED,
    Device,
    by_name,
    gguf_bytes,
    model_folder,
    ollama_model,
    run,
    safetensors_bytes,
    sha256,
    statuses,
)

# --- statuses -----------------------------------------------------------------------------


def test_every_status_under_a_policy_with_verify(device: Device) -> None:
    policy = Policy.load(device.policy)
    inv = scan([device.root], env=device.env, policy=policy, verify=True)
    assert statuses(inv) == {
        HF_SIGNED: "verified",
        HF_TAMPERED: "tampered",
        HF_GGUF: "unsigned",
        HF_PARTIAL: "unreadable",
        "tinyllama:latest": "unsigned",
        "acme/altered:v1": "tampered",
        "grown:latest": "tampered",
        OLLAMA_PARTIAL: "unreadable",
        LM + "tiny-Q8_0.gguf": "unsigned",
        LM + "tiny-Q8_0-copy.gguf": "unsigned",
        LM + "broken.gguf": "unreadable",
        LM + "fifo.gguf": "unreadable",
        LM + "elsewhere.gguf": "unreadable",
        "legacy": "unsafe-format",
        "signed-model": "verified",
        "other-signer": "signed-untrusted",
        "tampered-signed": "tampered",
        "no-licence": "policy-failed",
        "loose/single.safetensors": "unsigned",
    }
    assert set(STATUS_ORDER) == {m.status for m in inv.models}
    m = by_name(inv)

    v = m[HF_SIGNED]
    assert v.store == "huggingface" and v.revision == REV_SIGNED and v.refs == ["main"]
    assert v.signature and v.signature.endswith(f"{REV_SIGNED}/model.sig")
    assert v.signer == f"key {keys.key_hint(TRUSTED.public_key())[:16]}"
    assert v.checked == "signature" and v.licence == "Apache-2.0" and not v.blocked
    assert [f.name for f in v.files] == ["README.md", "config.json", "model.safetensors"]
    assert all(f.sha256 and f.content_address for f in v.files)
    assert v.policy is not None and {r.status for r in v.policy} == {"pass"}

    t = m[HF_TAMPERED]
    assert t.checked == "sha256" and t.blocked and t.refs == ["refs/pr/1"]
    assert "model.safetensors: content sha256" in (t.reason or "")
    assert "is not its name blobs/" in (t.reason or "")

    assert "blob is" not in (m["acme/altered:v1"].reason or "")
    assert "content sha256" in (m["acme/altered:v1"].reason or "")
    assert "the store's manifest says" in (m["grown:latest"].reason or "")
    assert m["tampered-signed"].reason is not None
    assert m["tampered-signed"].reason.startswith("TENSOR_MODIFIED: model.safetensors [w]")
    assert m["tampered-signed"].checked == "signature"
    assert "SIGNER_NOT_TRUSTED" in (m["other-signer"].reason or "")
    other = keys.key_hint(OTHER.public_key())[:16]
    assert m["other-signer"].signer == f"key {other} (not verified)"
    assert "licences: no licence" in (m["no-licence"].reason or "")
    assert "pickle (loading it runs code): pytorch_model.bin" in (m["legacy"].reason or "")
    assert "dangling symlink" in (m[LM + "broken.gguf"].reason or "")
    assert "a FIFO" in (m[LM + "fifo.gguf"].reason or "")
    assert "leaves the store" in (m[LM + "elsewhere.gguf"].reason or "")
    assert "d" * 64 + ".incomplete" in (m[HF_PARTIAL].reason or "")
    assert "-partial" in (m[OLLAMA_PARTIAL].reason or "")
    # Under a policy every model is judged; only passing ones are not blocked.
    assert {n for n, e in m.items() if not e.blocked} == {HF_SIGNED, "signed-model"}
    assert inv.blocked


def test_cheap_scan_hashes_no_weights(device: Device) -> None:
    """Without --verify: headers and small files only; sizes and small blobs still checked."""
    inv = scan([device.root], env=device.env)
    m = by_name(inv)
    # No trust configured: a signature is reported, not believed.
    for name in (HF_SIGNED, "signed-model", "other-signer", "tampered-signed", "no-licence"):
        assert m[name].status == "signed-untrusted", name
        assert "signature not checked" in (m[name].reason or "")
        assert (m[name].signer or "").endswith("(not verified)")
    # The altered LFS blob is 1.2 MB: not hashed, so not found, and it says so.
    t = m[HF_TAMPERED]
    assert t.status == "unsigned" and t.checked == "none"
    big = next(f for f in t.files if f.name == "model.safetensors")
    assert big.size > SMALL_FILE and big.sha256 is None and big.content_address
    assert next(f for f in t.files if f.name == "config.json").sha256  # small: hashed
    # Ollama: the size is checked always, so the grown blob is caught; the one altered in
    # place is not (its size is right), and the entry says only sizes were checked.
    assert m["grown:latest"].status == "tampered"
    assert (m["acme/altered:v1"].status, m["acme/altered:v1"].checked) == ("unsigned", "size")
    # Small blobs are hashed while reading their header: exact without --verify.
    assert m["tinyllama:latest"].checked == "sha256"
    assert m[HF_GGUF].checked == "sha256" and m[HF_GGUF].status == "unsigned"
    assert m["legacy"].status == "unsafe-format"
    assert m["tinyllama:latest"].licence == "MIT"  # from the licence layer and GGUF metadata
    q = m["tinyllama:latest"].quantization
    assert q is not None and q.quantized and q.scheme == "MOSTLY_Q8_0"
    assert m["tinyllama:latest"].formats == ["gguf", "opaque"]
    assert all(e.policy is None for e in inv.models)
    # Without a policy or trust, only what is found tampered fails the scan.
    assert inv.blocked and {n for n, e in m.items() if e.blocked} == {"grown:latest"}


def test_verify_without_policy_finds_tampering_but_trusts_nobody(device: Device) -> None:
    m = by_name(scan([device.root], env=device.env, verify=True))
    assert m["tampered-signed"].status == "tampered"
    assert m[HF_TAMPERED].status == "tampered" and m["acme/altered:v1"].status == "tampered"
    for name in (HF_SIGNED, "signed-model", "other-signer"):
        assert m[name].status == "signed-untrusted" and m[name].checked == "signature"
        assert "content matches the signature" in (m[name].reason or "")
    assert m["loose/single.safetensors"].files[0].sha256  # everything hashed


def test_verify_reads_a_signed_file_again_only_when_it_differs(
    device: Device, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--verify hashes every file once; verify() reuses those digests for matching files."""
    import importlib

    verify_module = importlib.import_module("modelsign._observe")  # reads the model for verify()
    read: list[str] = []
    real_open, real_hash_file = verify_module.open_checked, verify_module.hash_file
    real_hash_files = verify_module.hash_files

    def spy_open(f: Any, *args: Any) -> int:
        read.append(f.real)
        return real_open(f, *args)

    def spy_hash_file(f: Any, **kw: Any) -> Any:
        read.append(f.real)
        return real_hash_file(f, **kw)

    def spy_hash_files(files: Any, **kw: Any) -> Any:
        read.extend(f.real for f in files)
        return real_hash_files(files, **kw)

    monkeypatch.setattr(verify_module, "open_checked", spy_open)
    monkeypatch.setattr(verify_module, "hash_file", spy_hash_file)
    monkeypatch.setattr(verify_module, "hash_files", spy_hash_files)
    m = by_name(scan([device.root], env=device.env, policy=Policy.load(device.policy), verify=True))
    assert m["signed-model"].status == "verified" and m["signed-model"].checked == "signature"
    assert m["tampered-signed"].status == "tampered"
    assert "model.safetensors" in (m["tampered-signed"].reason or "")
    assert not [p for p in read if f"{os.sep}signed-model{os.sep}" in p]
    assert [p for p in read if f"{os.sep}tampered-signed{os.sep}" in p]  # read to name the change


def test_policy_without_verify_still_verifies_signed_models(device: Device) -> None:
    m = by_name(scan([device.root], env=device.env, policy=Policy.load(device.policy)))
    assert m[HF_SIGNED].status == "verified" and m["signed-model"].status == "verified"
    assert m["tampered-signed"].status == "tampered"
    assert m[HF_TAMPERED].status == "unsigned" and m[HF_TAMPERED].blocked  # not hashed


# --- stores -------------------------------------------------------------------------------


def test_store_locations_from_env(tmp_path: Path) -> None:
    home = str(tmp_path)
    got = {(s.kind, s.path, s.origin) for s in store_locations({"HOME": home})}
    assert got == {
        ("huggingface", f"{home}/.cache/huggingface/hub", "default"),
        ("ollama", f"{home}/.ollama/models", "default"),
        ("ollama", "/usr/share/ollama/.ollama/models", "default"),
        ("lmstudio", f"{home}/.lmstudio/models", "default"),
        ("lmstudio", f"{home}/.cache/lm-studio/models", "default"),
        ("llama.cpp", f"{home}/.cache/llama.cpp", "default"),
    }
    env = {
        "HOME": home,
        "HF_HOME": "~/hf",
        "OLLAMA_MODELS": "/o",
        "LMSTUDIO_MODELS": "/l",
        "XDG_CACHE_HOME": "/x",
    }
    got = {(s.kind, s.path, s.origin) for s in store_locations(env)}
    assert got == {
        ("huggingface", f"{home}/hf/hub", "HF_HOME"),
        ("ollama", "/o", "OLLAMA_MODELS"),
        ("lmstudio", "/l", "LMSTUDIO_MODELS"),
        ("llama.cpp", "/x/llama.cpp", "default"),
    }
    env |= {"HF_HUB_CACHE": "/h", "LLAMA_CACHE": "/c"}
    got = {(s.kind, s.path, s.origin) for s in store_locations(env)}
    assert {("huggingface", "/h", "HF_HUB_CACHE"), ("llama.cpp", "/c", "LLAMA_CACHE")} <= got
    assert [s.kind for s in store_locations({})] == ["ollama"]  # no HOME: the system path only


def test_env_overrides_and_no_default_stores(device: Device, tmp_path: Path) -> None:
    moved = tmp_path / "elsewhere-cache"
    (Path(device.env["HOME"]) / ".cache" / "huggingface" / "hub").rename(moved)
    inv = scan(env={**device.env, "HF_HUB_CACHE": str(moved)})
    assert HF_SIGNED in by_name(inv)
    assert any(s.origin == "HF_HUB_CACHE" and s.present for s in inv.stores)
    only_root = scan([device.root], env=device.env, default_stores=False)
    assert {m.store for m in only_root.models} == {"path"}
    # The same cache given as a ROOT too: inventoried once.
    twice = scan([moved], env={**device.env, "HF_HUB_CACHE": str(moved)})
    assert [m.name for m in twice.models].count(HF_SIGNED) == 1


def test_stores_found_under_a_root(device: Device) -> None:
    """A ROOT holding an HF cache and an Ollama store is scanned as those stores."""
    inv = scan([device.env["HOME"]], env={}, default_stores=False)
    m = by_name(inv)
    assert m[HF_SIGNED].store == "huggingface" and m["grown:latest"].store == "ollama"
    assert m[".lmstudio/models/pub/tiny-GGUF/tiny-Q8_0.gguf"].store == "path"


def test_hf_corrupted_repo_keeps_its_other_revisions(device: Device) -> None:
    hub = Path(device.env["HOME"]) / ".cache" / "huggingface" / "hub"
    snap = hub / "models--acme--tiny" / "snapshots" / REV_TAMPERED
    os.symlink("../../blobs/" + "f" * 64, snap / "extra.safetensors")
    m = by_name(scan(env=device.env))
    # huggingface_hub's scanner drops the whole repo; each revision is read on its own.
    assert m[HF_SIGNED].status == "signed-untrusted"
    assert m[HF_TAMPERED].status == "unreadable"
    assert "SYMLINK_DANGLING: extra.safetensors" in (m[HF_TAMPERED].reason or "")


def test_hf_scanner_failure_falls_back_repo_by_repo(
    device: Device, monkeypatch: pytest.MonkeyPatch
) -> None:
    import huggingface_hub

    def refuse(cache_dir: object = None) -> object:
        raise PermissionError(13, "Permission denied", str(cache_dir))

    monkeypatch.setattr(huggingface_hub, "scan_cache_dir", refuse)
    m = by_name(scan(env=device.env))
    assert m[HF_SIGNED].refs == ["main"] and m[HF_SIGNED].status == "signed-untrusted"
    assert m[HF_GGUF].status == "unsigned"


def test_hf_ref_to_a_missing_snapshot(device: Device) -> None:
    hub = Path(device.env["HOME"]) / ".cache" / "huggingface" / "hub"
    (hub / "models--other--gguf" / "refs" / "main").parent.mkdir(parents=True, exist_ok=True)
    (hub / "models--other--gguf" / "refs" / "main").write_text("9" * 40)
    m = by_name(scan(env=device.env))
    assert m[HF_GGUF].status == "unsigned"
    assert "main points to '9999" in (m["other/gguf@" + "9" * 40].reason or "")


def test_ollama_names_blobs_and_signature(device: Device, tmp_path: Path) -> None:
    ollama = Path(device.env["HOME"]) / ".ollama" / "models"
    blobs = ollama_model(
        ollama, ("hf.co", "acme", "repo", "Q8_0"), {MODEL: gguf_bytes(tmp_path, seed=20)}
    )
    m = by_name(scan(env=device.env))
    t = m["tinyllama:latest"]
    assert t.location.endswith("manifests/registry.ollama.ai/library/tinyllama/latest")
    assert [f.name for f in t.files] == ["LICENSE", "config", "model.gguf", "params", "template"]
    assert all(f.content_address and Path(f.path).name == f"sha256-{f.content_address}"
               for f in t.files)  # fmt: skip
    assert "hf.co/acme/repo:Q8_0" in m
    # A signature of the GGUF beside its blob (FILE.sig) is found and verified.
    sign(blobs[MODEL], signer=KeySigner(TRUSTED), env={})
    policy = Policy.load(_licence_free_policy(tmp_path))
    m = by_name(scan(env=device.env, policy=policy))
    assert m["hf.co/acme/repo:Q8_0"].status == "verified"
    assert m["hf.co/acme/repo:Q8_0"].signature == str(blobs[MODEL]) + ".sig"


def test_ollama_broken_manifests(device: Device) -> None:
    ollama = Path(device.env["HOME"]) / ".ollama" / "models"
    lib = ollama / "manifests" / "registry.ollama.ai" / "library"
    (lib / "notjson").mkdir()
    (lib / "notjson" / "latest").write_text("{")
    (lib / "escape").mkdir()
    (lib / "escape" / "latest").write_text(
        json.dumps({"layers": [{"mediaType": MODEL, "digest": "sha256:../../x", "size": 1}]})
    )
    (lib / "missing").mkdir()
    (lib / "missing" / "latest").write_text(
        json.dumps({"layers": [{"mediaType": MODEL, "digest": "sha256:" + "1" * 64, "size": 1}]})
    )
    m = by_name(scan(env=device.env))
    assert "not JSON" in (m["notjson:latest"].reason or "")
    assert "is not sha256:<64 hex>" in (m["escape:latest"].reason or "")
    assert "is missing" in (m["missing:latest"].reason or "")
    assert {m[n].status for n in ("notjson:latest", "escape:latest", "missing:latest")} == {
        "unreadable"
    }


def test_unreadable_file_by_permissions(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        pytest.skip(
            "running as root: chmod 000 does not stop root reading; "
            "the FIFO and dangling-symlink cases cover unreadable files"
        )
    p = tmp_path / "locked.gguf"
    p.write_bytes(gguf_bytes(tmp_path))
    p.chmod(0)
    try:
        (e,) = scan([tmp_path], env={}, default_stores=False).models
    finally:
        p.chmod(0o600)
    assert e.status == "unreadable" and "Permission denied" in (e.reason or "")


def test_root_that_is_a_model_or_a_file(device: Device) -> None:
    (e,) = scan([device.root / "signed-model"], env={}, default_stores=False).models
    assert e.name == "signed-model" and e.status == "signed-untrusted"
    single = device.root / "loose" / "single.safetensors"
    (e,) = scan([single], env={}, default_stores=False).models
    assert (e.name, e.status, e.formats) == ("single.safetensors", "unsigned", ["safetensors"])
    with pytest.raises(InputError) as err:
        scan([device.root / "nope"], env={}, default_stores=False)
    assert err.value.code == "NOT_FOUND"


def test_progress_is_reported_per_model(device: Device) -> None:
    calls: list[tuple[int, int]] = []
    inv = scan([device.root], env={}, default_stores=False, progress=lambda *a: calls.append(a))
    n = len(inv.models)
    assert calls == [(i, n) for i in range(1, n + 1)]


def test_a_few_hundred_models_scan_in_seconds(tmp_path: Path) -> None:
    st = safetensors_bytes(tmp_path)
    gg = gguf_bytes(tmp_path)
    root = tmp_path / "many"
    for i in range(150):
        folder = root / f"pub{i % 10}" / f"model{i}"
        folder.mkdir(parents=True)
        (folder / "config.json").write_text('{"model_type": "tiny"}')
        (folder / "model.safetensors").write_bytes(st)
        (root / f"pub{i % 10}" / f"single{i}.gguf").write_bytes(gg)
    start = time.monotonic()
    inv = scan([root], env={}, default_stores=False)
    elapsed = time.monotonic() - start
    assert len(inv.models) == 300 and {m.status for m in inv.models} == {"unsigned"}
    assert elapsed < 10, f"{elapsed:.1f} s"


def test_sort_models(device: Device) -> None:
    models = scan([device.root], env=device.env).models
    by_status = sort_models(models, "status")
    assert [STATUS_ORDER.index(m.status) for m in by_status] == sorted(
        STATUS_ORDER.index(m.status) for m in models
    )
    by_size = sort_models(models, "size")
    assert [m.size for m in by_size] == sorted((m.size for m in models), reverse=True)
    assert [m.name for m in sort_models(models, "name")] == sorted(m.name for m in models)


# --- the command ----------------------------------------------------------------------------------


@cache
def _validator() -> JsonStrictValidator:
    return JsonStrictValidator(SchemaVersion.V1_6)


def test_json_schema_and_exit_codes(device: Device) -> None:
    code, out, _ = run(device.root, "--no-default-stores", "--json")
    assert code == 0
    doc = json.loads(out)
    assert doc["kind"] == "modelsign.inventory" and doc["version"] == 1
    assert set(doc) == {
        "kind", "version", "tool", "host", "scanned_at", "verify", "policy", "stores", "models"
    }  # fmt: skip
    entry = doc["models"][0]
    assert set(entry) == {
        "name", "store", "location", "revision", "refs", "files", "formats", "size",
        "quantization", "licence", "signature", "signer", "status", "reason", "checked",
        "policy", "blocked",
    }  # fmt: skip
    assert set(entry["files"][0]) == {"name", "path", "size", "format", "sha256", "content_address"}
    Inventory.model_validate(doc)
    # --sort status (the default) puts the worst first.
    order = [STATUS_ORDER.index(m["status"]) for m in doc["models"]]
    assert order == sorted(order)

    code, out, _ = run(device.root, "--no-default-stores", "--json", "--policy", device.policy)
    assert code == 1  # models fail the enforced rules
    blocked = {m["name"] for m in json.loads(out)["models"] if m["blocked"]}
    assert {"legacy", "tampered-signed", "no-licence", "other-signer"} <= blocked

    ok = device.root / "signed-model"
    code, out, _ = run(ok, "--no-default-stores", "--policy", device.policy)
    assert code == 0 and "verified" in out and "1 model: 1 verified" in out

    code, _, err = run(device.root, "--no-default-stores", "--json", "--cyclonedx", "x.json")
    assert code == 2 and "not both" in err
    code, _, err = run("--no-default-stores")
    assert code == 2 and "nothing to scan" in err
    code, _, err = run(device.root / "missing", "--no-default-stores")
    assert code == 2 and "NOT_FOUND" in err
    bad = device.policy.with_name("bad.yaml")
    bad.write_text("version: 1\nsurprise: true\n")
    code, _, err = run(device.root, "--no-default-stores", "--policy", bad)
    assert code == 2 and "POLICY_INVALID" in err


def test_table_and_sort_options(device: Device) -> None:
    code, out, _ = run(device.root, "--no-default-stores", "--sort", "size")
    assert code == 0
    rows = [line for line in out.splitlines() if line.lstrip("✗ ").split(" ")[0] in STATUS_ORDER]
    assert rows and "unsafe-format" in out and "signed-untrusted" in out
    code, out, _ = run(device.root, "--no-default-stores", "--json", "--sort", "name")
    names = [m["name"] for m in json.loads(out)["models"]]
    assert names == sorted(names)
    code, out, _ = run(device.root, "--no-default-stores", "--json", "--sort", "size")
    sizes = [m["size"] for m in json.loads(out)["models"]]
    assert sizes == sorted(sizes, reverse=True)
    code, _, _ = run(device.root, "--no-default-stores", "--sort", "colour")
    assert code == 2


@pytest.mark.slow
def test_cyclonedx_device_bom(device: Device, tmp_path: Path) -> None:
    out = tmp_path / "device.cdx.json"
    code, _, err = run(
        device.env["HOME"],
        device.root,
        "--no-default-stores",
        "--verify",
        "--policy",
        device.policy,
        "--cyclonedx",
        out,
    )
    assert code == 1 and f"wrote {out}" in err
    text = out.read_text()
    errors = _validator().validate_str(text, all_errors=True)
    assert errors is None, [str(e) for e in errors]
    doc = json.loads(text)
    assert doc["metadata"]["component"]["type"] == "device"
    models = [c for c in doc["components"] if c["type"] == "machine-learning-model"]
    inv = scan(
        [device.env["HOME"], device.root],
        env={},
        default_stores=False,
        policy=Policy.load(device.policy),
        verify=True,
    )
    assert len(models) == len(inv.models)

    def props(c: dict[str, Any]) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for p in c.get("properties", []):
            out.setdefault(p["name"], []).append(p["value"])
        return out

    by = {props(c)["modelsign:inventory:name"][0]: (c, props(c)) for c in models}
    c, p = by[HF_SIGNED]
    assert p["modelsign:manifest:origin"] == ["verified-signature"]
    assert p["modelsign:inventory:status"][0].startswith("verified: ")
    assert c["version"] == REV_SIGNED and c["purl"] == f"pkg:huggingface/acme/tiny@{REV_SIGNED}"
    c, p = by["tampered-signed"]
    assert p["modelsign:inventory:status"][0].startswith("tampered: ")
    assert all(f["hashes"] for f in c["components"])  # --verify: every file hashed
    assert by["legacy"][1]["modelsign:inventory:policy"]
    # The device BOM depends on every model.
    device_ref = doc["metadata"]["component"]["bom-ref"]
    deps = next(d for d in doc["dependencies"] if d["ref"] == device_ref)
    assert len(deps["dependsOn"]) == len(models)


def test_cyclonedx_of_a_cheap_scan_lists_only_real_hashes(device: Device) -> None:
    inv = scan([device.root], env=device.env)
    text = cyclonedx_json(inv)
    assert _validator().validate_str(text) is None
    doc = json.loads(text)
    names = {c["name"]: c for c in doc["components"]}
    tampered = next(
        c
        for c in doc["components"]
        if any(p["value"] == HF_TAMPERED for p in c.get("properties", []))
    )
    files = {f["name"]: f for f in tampered["components"]}
    assert "hashes" not in files["model.safetensors"]  # 1.2 MB: not hashed, so no hash claimed
    assert files["config.json"]["hashes"][0]["content"] == sha256(b'{"model_type": "tiny"}')
    assert not any(
        p["name"].startswith("modelsign:manifest:") for p in tampered.get("properties", [])
    )
    assert "legacy" in names


def _licence_free_policy(tmp_path: Path) -> Path:
    p = tmp_path / "signers-only.yaml"
    (tmp_path / "t.pub").write_bytes(keys.public_key_pem(TRUSTED.public_key()))
    p.write_text("version: 1\nsigners:\n  keys: [{file: t.pub}]\n")
    return p


def test_policy_without_signers_leaves_signatures_untrusted(device: Device, tmp_path: Path) -> None:
    p = tmp_path / "formats.yaml"
    p.write_text("version: 1\nformats: {deny: [pickle]}\n")
    m = by_name(scan([device.root], env={}, default_stores=False, policy=Policy.load(p)))
    assert m["signed-model"].status == "signed-untrusted"
    assert "the policy lists no signers" in (m["signed-model"].reason or "")
    assert not m["signed-model"].blocked and m["legacy"].blocked
    assert not m["loose/single.safetensors"].blocked


def test_warn_mode_policy_blocks_only_tampering(device: Device, tmp_path: Path) -> None:
    p = tmp_path / "warn.yaml"
    (tmp_path / "w.pub").write_bytes(keys.public_key_pem(TRUSTED.public_key()))
    p.write_text("version: 1\nmode: warn\nsigners:\n  keys: [{file: w.pub}]\nformats: {}\n")
    m = by_name(scan([device.root], env={}, default_stores=False, policy=Policy.load(p)))
    assert m["signed-model"].status == "verified" and not m["signed-model"].blocked
    assert m["tampered-signed"].status == "tampered" and m["tampered-signed"].blocked
    assert m["legacy"].status == "unsafe-format" and not m["legacy"].blocked
    assert not m["loose/single.safetensors"].blocked


def test_module_never_loads_weights() -> None:
    """Only the strict header readers are used: no framework loader is imported."""
    package = Path(inventory_module.__file__).parent
    src = "\n".join(p.read_text() for p in sorted(package.glob("*.py")))
    for loader in ("safe_open", "torch.load", "GGUFReader", "pickle.load", "load_file"):
        assert loader not in src


def test_cache_folders_given_as_roots(device: Device) -> None:
    """A cache repo or snapshot folder as a ROOT is still read as the cache it is."""
    repo = Path(device.env["HOME"]) / ".cache" / "huggingface" / "hub" / "models--acme--tiny"
    names = {m.name: m for m in scan([repo], env={}, default_stores=False).models}
    assert set(names) == {HF_SIGNED, HF_TAMPERED}
    assert names[HF_SIGNED].refs == ["main"] and names[HF_SIGNED].store == "huggingface"
    (e,) = scan([repo / "snapshots" / REV_SIGNED], env={}, default_stores=False).models
    assert (e.name, e.refs, e.status) == (HF_SIGNED, ["main"], "signed-untrusted")
    assert all(f.content_address for f in e.files)


def test_signature_that_is_a_fifo_is_not_opened(tmp_path: Path) -> None:
    folder = model_folder(tmp_path / "m", tmp_path)
    os.mkfifo(folder / "model.sig")
    (e,) = scan([folder], env={}, default_stores=False).models
    assert e.status == "unreadable" and "is a FIFO" in (e.reason or "")


def test_names_are_not_markup(tmp_path: Path) -> None:
    (tmp_path / "[bold]x[red].gguf").write_bytes(gguf_bytes(tmp_path))
    code, out, _ = run(tmp_path, "--no-default-stores")
    assert code == 0 and "[bold]x[red].gguf" in out


def test_permission_denied_is_reported_not_raised(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """EACCES simulated (root reads chmod-000 files): the model is unreadable, the scan goes on."""
    locked = tmp_path / "locked.gguf"
    locked.write_bytes(gguf_bytes(tmp_path))
    (tmp_path / "fine.gguf").write_bytes(gguf_bytes(tmp_path, seed=1))
    real_open = os.open

    def guarded(path: Any, flags: int, *args: Any, **kw: Any) -> int:
        if os.fspath(path) == str(locked):
            raise PermissionError(13, "Permission denied", os.fspath(path))
        return real_open(path, flags, *args, **kw)

    monkeypatch.setattr(inventory_module.os, "open", guarded)
    m = {e.name: e for e in scan([tmp_path], env={}, default_stores=False).models}
    assert m["locked.gguf"].status == "unreadable"
    assert m["locked.gguf"].reason == "UNREADABLE: locked.gguf: cannot open: Permission denied"
    assert m["fine.gguf"].status == "unsigned"


@pytest.mark.slow
def test_folders_nested_too_deep_are_unreadable_and_the_scan_goes_on(
    tiny_model: Path, tmp_path: Path
) -> None:
    """~1,100 nested folders inside a model, or as loose folders: reported, never a crash."""
    root = tmp_path / "root"
    root.mkdir()
    good = Path(shutil.copytree(tiny_model, root / "good"))
    deep_model = Path(shutil.copytree(tiny_model, root / "deep-model"))
    loose = root / "loose"
    loose.mkdir()
    make_deep(deep_model)
    make_deep(loose)
    try:
        for verify in (False, True):
            m = by_name(scan([str(root)], env={}, verify=verify))
            assert m["good"].status == "unsigned", m["good"]
            assert m["deep-model"].status == "unreadable"
            assert "TOO_DEEP" in (m["deep-model"].reason or "")
            (stop,) = [e for e in m.values() if e.name.startswith("loose/d/")]
            assert stop.status == "unreadable" and "TOO_DEEP" in (stop.reason or "")
    finally:
        remove_deep(deep_model)
        remove_deep(loose)
    assert good.is_dir()
