"""modelsign's own signatures and attestations are never part of a model, in any command.

``model.sig``, ``claims.jsonl`` and ``model.provenance.sig`` in a signed folder are left out by
``manifest``, ``inspect``, ``diff`` and ``sbom`` as ``sign`` left them out — but only when they
are signatures: a renamed pickle called ``model.sig`` is a model file like any other.
"""

from __future__ import annotations

import json
import pickle
import re
import shutil
from pathlib import Path

from click.testing import CliRunner

from modelsign.cli import cli
from tests.helpers.signing import KeyPair

OWN = ("model.sig", "claims.jsonl", "model.provenance.sig")


def run(*args: str | Path) -> tuple[int, str, str]:
    r = CliRunner().invoke(cli, [str(a) for a in args])
    return r.exit_code, r.stdout, r.stderr


def digest_in(text: str) -> str:
    found = re.search(r"manifest digest: (sha256:[0-9a-f]{64})", text)
    assert found is not None, text
    return found.group(1)


def signed_release(model: Path, keypair: KeyPair) -> str:
    """Sign ``model`` and attest its provenance on the command line; the digest sign printed."""
    code, _, err = run("sign", model, "--key", keypair.key_path)
    assert code == 0, err
    code, _, prov_err = run("attest", "provenance", model, "--key", keypair.key_path)
    assert code == 0, prov_err
    assert all((model / name).is_file() for name in OWN)
    return digest_in(err)


def test_manifest_and_inspect_of_a_signed_folder_give_the_signed_digest(
    tiny_model: Path, keypair: KeyPair
) -> None:
    signed = signed_release(tiny_model, keypair)
    code, out, err = run("manifest", tiny_model)
    assert code == 0, err
    assert digest_in(err) == signed
    assert not {f["path"] for f in json.loads(out)["files"]} & set(OWN)
    assert json.loads(out)["ignored"]["paths"] == []  # not even as ignored files
    code, out, err = run("inspect", tiny_model)
    assert code == 0, err
    assert f"manifest {signed}" in out and "4 files" in out
    assert not any(name in out for name in OWN)
    # Signing again (--force) signs the same manifest: the old signature is not listed either.
    code, _, err = run("sign", tiny_model, "--key", keypair.key_path, "--force")
    assert code == 0 and digest_in(err) == signed
    code, _, _ = run("verify", tiny_model, "--key", keypair.pub_path, "--provenance")
    assert code == 0


def test_diff_of_two_releases_and_sbom_leave_them_out(
    tiny_model: Path, keypair: KeyPair, tmp_path: Path
) -> None:
    old = tmp_path / "v1"
    shutil.copytree(tiny_model, old)
    signed_release(old, keypair)
    new = tmp_path / "v2"
    shutil.copytree(tiny_model, new)
    code, _, err = run("sign", new, "--key", keypair.key_path)  # no provenance this time
    assert code == 0, err
    code, out, err = run("diff", old, new)
    assert code == 0, out + err
    assert "identical: 4 files, 21 tensors" in out
    assert not any(name in out for name in OWN)
    code, out, err = run("sbom", old)
    assert code == 0, err
    names = {c["name"] for c in json.loads(out)["metadata"]["component"]["components"]}
    assert names == {"LICENSE", "README.md", "config.json", "model.safetensors"}


def test_a_model_sig_that_is_no_signature_is_a_model_file(tiny_model: Path) -> None:
    (tiny_model / "model.sig").write_bytes(pickle.dumps({"not": "a signature"}))
    (tiny_model / "claims.jsonl").write_text('{"a": 1}\n')  # JSON, but no bundle
    code, out, err = run("sbom", tiny_model)
    assert code == 0, err
    files = {c["name"]: c for c in json.loads(out)["metadata"]["component"]["components"]}
    assert {"model.sig", "claims.jsonl"} <= set(files)
    props = {p["name"]: p["value"] for p in files["model.sig"]["properties"]}
    assert props["modelsign:file:format"] == "pickle"
    code, out, err = run("inspect", tiny_model)
    assert code == 0, err
    assert "PICKLE_UNSAFE" in out and "model.sig" in out
    code, out, _ = run("manifest", tiny_model)
    findings = json.loads(out)["findings"]
    assert {(f["code"], f["path"]) for f in findings} >= {("PICKLE_UNSAFE", "model.sig")}
