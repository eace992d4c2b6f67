"""``modelsign diff`` on the command line: exit codes as diff(1), the report, the JSON schema."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from click.testing import CliRunner

import modelsign.cli.diff  # noqa: F401  (registers the command)
from modelsign._internal.signature import keys
from modelsign._internal.signature.signers import KeySigner
from modelsign.cli import cli
from modelsign.diff import UNVERIFIED_NOTE
from modelsign.sign import build_manifest, sign
from tests.helpers.signing import flip_byte, shared_key

# Diff version 2: a change is an issue (file, expected, actual, severity; version 1 had
# path, old, new).
CHANGE_KEYS = {
    "code", "severity", "message", "file", "tensor", "expected", "actual", "old_path", "field"
}  # fmt: skip
TENSOR_KEYS = CHANGE_KEYS | {"layer", "old_dtype", "new_dtype", "old_shape", "new_shape"}


def run(*args: str | Path) -> tuple[int, str, str]:
    r = CliRunner().invoke(cli, [str(a) for a in args])
    return r.exit_code, r.stdout, r.stderr


def edited_copy(model: Path, dest: Path) -> Path:
    shutil.copytree(model, dest)
    flip_byte(dest / "model.safetensors", tensor="model.layers.1.self_attn.q_proj.weight")
    (dest / "README.md").write_text((dest / "README.md").read_text() + "\nv2\n")
    return dest


def test_identical_exits_0(tiny_model: Path, tmp_path: Path) -> None:
    manifest = tmp_path / "m.json"
    manifest.write_bytes(build_manifest(tiny_model, env={}).canonical_bytes())
    code, out, err = run("diff", tiny_model, manifest)
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == f"old: {tiny_model} (model 'tiny-model': 4 files, 21 tensors)"
    assert lines[1] == f"new: {manifest} (manifest 'tiny-model': 4 files, 21 tensors)"
    assert lines[2] == "identical: 4 files, 21 tensors" and len(lines) == 3


def test_different_exits_1_with_a_summary(tiny_model: Path, tmp_path: Path) -> None:
    """A changed file is ``FILE_MODIFIED`` (split meaning: ``FILE_CHANGED`` before, still a
    file that changed while being read)."""
    code, out, _ = run("diff", tiny_model, edited_copy(tiny_model, tmp_path / "v2"))
    assert code == 1
    assert (
        "DIFFERENT: 1 of 21 tensors changed, all in layer 1; "
        "2 of 4 files changed (README.md, model.safetensors)"
    ) in out
    assert "files:\n  FILE_MODIFIED" in out
    assert (
        "  TENSOR_MODIFIED          model.layers.1.self_attn.q_proj.weight (model.safetensors): "
        "data changed (F16[64,64])"
    ) in out
    assert "WEIGHTS_DIGEST_CHANGED" in out


def test_long_lists_stay_on_one_screen(tiny_models: tuple[Path, Path]) -> None:
    code, out, _ = run("diff", *tiny_models)
    assert code == 1
    assert "  … and 6 more (--json lists all)" in out  # 16 retyped tensors, 10 shown
    assert "format safetensors → gguf; quantization F16 → Q8_0" in out.splitlines()[2]


def test_json_schema(tiny_model: Path, tmp_path: Path) -> None:
    """Version 2: changes are issues (see CHANGE_KEYS); a changed file is ``FILE_MODIFIED``."""
    new = edited_copy(tiny_model, tmp_path / "v2")
    code, out, _ = run("diff", "--json", tiny_model, new)
    assert code == 1
    d = json.loads(out)
    assert set(d) == {
        "kind", "version", "identical", "summary", "old", "new", "tensor_digests_compared",
        "counts", "files", "tensors", "model", "notes",
    }  # fmt: skip
    assert (d["kind"], d["version"], d["identical"]) == ("modelsign.diff", 2, False)
    assert d["summary"].startswith("1 of 21 tensors changed, all in layer 1")
    assert all(set(c) == CHANGE_KEYS for c in d["files"] + d["model"])
    (t,) = d["tensors"]
    assert set(t) == TENSOR_KEYS
    assert (t["code"], t["file"], t["layer"], t["old_shape"]) == (
        "TENSOR_MODIFIED",
        "model.safetensors",
        1,
        [64, 64],
    )
    assert [c["code"] for c in d["files"]] == ["FILE_MODIFIED", "FILE_MODIFIED"]
    assert {c["severity"] for c in d["files"] + d["tensors"] + d["model"]} == {"info"}
    assert d["files"][0]["expected"].startswith("sha256:")
    assert d["counts"]["tensors_modified"] == 1 and d["counts"]["files_changed"] == 2
    assert set(d["old"]) >= {"kind", "path", "name", "manifest_digest", "signer", "verified"}
    code, out, _ = run("diff", "--json", tiny_model, tiny_model)
    assert code == 0 and json.loads(out)["identical"] is True


def test_signatures_are_marked_unverified(tiny_model: Path, tmp_path: Path) -> None:
    key_a, key_b = shared_key(), shared_key("other")
    sig_a = sign(tiny_model, signer=KeySigner(key_a), signature=tmp_path / "a.sig", env={})
    sig_b = sign(tiny_model, signer=KeySigner(key_b), signature=tmp_path / "b.sig", env={})
    code, out, _ = run("diff", sig_a.signature, sig_b.signature)
    assert code == 1
    hint_a = keys.key_hint(key_a.public_key())
    assert f"signed by key {hint_a}, unverified" in out.splitlines()[0]
    assert "SIGNER_CHANGED" in out
    assert f"note: {sig_a.signature}: {UNVERIFIED_NOTE}" in out
    code, out, _ = run("diff", tiny_model, sig_a.signature)
    assert code == 0 and UNVERIFIED_NOTE in out


def test_errors_exit_2(tiny_model: Path, tmp_path: Path) -> None:
    code, _, err = run("diff", tmp_path / "nope", tiny_model)
    assert code == 2 and "error[NOT_FOUND]" in err and "Traceback" not in err
    bad = tmp_path / "broken.sig"
    bad.write_text("{")
    code, _, err = run("diff", tiny_model, bad)
    assert code == 2 and "MALFORMED_JSON" in err and "cannot read the signature" in err
    code, _, err = run("diff", tiny_model)
    assert code == 2 and "Missing argument" in err


def test_names_from_files_are_escaped(tiny_model: Path, tmp_path: Path) -> None:
    m = build_manifest(tiny_model, env={}).model_dump(mode="json")
    (tmp_path / "a.json").write_text(json.dumps(m))
    m["files"][1]["path"] = "READ\x1b[2JME.md"  # a terminal escape in a hostile manifest
    (tmp_path / "b.json").write_text(json.dumps(m))
    code, out, _ = run("diff", tmp_path / "a.json", tmp_path / "b.json")
    assert code == 1 and "\x1b" not in out
    assert "FILE_RENAMED             README.md → READ\\x1b[2JME.md" in out


def test_help_documents_exit_codes() -> None:
    code, out, _ = run("diff", "--help")
    assert code == 0
    assert "0 identical, 1 different, 2 error" in " ".join(out.split())
    assert "WITHOUT verifying" in out
