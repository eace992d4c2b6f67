"""The command line: outputs, exit codes, errors without tracebacks."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from modelsign._internal.manifest import load_manifest
from modelsign.cli import cli
from tests.helpers.torch_files import save


def run(*args: str) -> tuple[int, str, str]:
    r = CliRunner().invoke(cli, list(args))
    return r.exit_code, r.stdout, r.stderr


def test_manifest_to_file_and_stdout(tiny_model: Path, tmp_path: Path) -> None:
    out = tmp_path / "m.json"
    code, _, err = run("manifest", str(tiny_model), "-o", str(out))
    assert code == 0, err
    m = load_manifest(out)
    assert f"manifest digest: {m.digest()}" in err
    code, stdout, _ = run("manifest", str(tiny_model))
    assert code == 0 and stdout.strip().encode() == m.canonical_bytes()


def test_output_not_overwritten_without_force(tiny_model: Path, tmp_path: Path) -> None:
    out = tmp_path / "m.json"
    out.write_text("keep me")
    code, _, err = run("manifest", str(tiny_model), "-o", str(out))
    assert code == 2 and "OUTPUT_EXISTS" in err and out.read_text() == "keep me"
    code, _, err = run("manifest", str(tiny_model), "-o", str(out), "--force")
    assert code == 0 and load_manifest(out).name == "tiny-model"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".modelsign-")]


def test_bad_input_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "m.safetensors").write_bytes(b"\xff" * 16)
    code, _, err = run("manifest", str(tmp_path))
    assert code == 2 and "Traceback" not in err
    assert err.startswith("error[SAFETENSORS_BAD_HEADER_SIZE]: m.safetensors:")
    code, _, err = run("manifest", str(tmp_path / "missing"))
    assert code == 2 and "error[NOT_FOUND]" in err


def test_options(tiny_model: Path, tmp_path: Path) -> None:
    (tiny_model / "notes.tmp").write_text("x")
    parent = tmp_path / "parent.json"
    run("manifest", str(tiny_model), "-o", str(parent))
    out = tmp_path / "m.json"
    code, _, err = run(
        "manifest",
        str(tiny_model),
        "-o",
        str(out),
        "--no-tensors",
        "--ignore",
        "*.tmp",
        "--source",
        "acme/tiny@" + "d" * 40,
        "--parent",
        str(parent),
        "-j",
        "1",
    )
    assert code == 0, err
    m = load_manifest(out)
    assert m.hashing.tensor is None and "notes.tmp" in m.ignored.paths
    assert m.provenance.source and m.provenance.source.revision == "d" * 40
    assert m.provenance.parents[0].digest == load_manifest(parent).digest()
    code, _, err = run("manifest", str(tiny_model), "--source", "not a repo")
    assert code == 2 and "BAD_SOURCE" in err


def test_inspect_model_and_manifest(tiny_model: Path, tmp_path: Path) -> None:
    code, text, err = run("inspect", str(tiny_model))
    assert code == 0, err
    for needle in ("model.safetensors", "F16×16", "Apache-2.0", "tiny-base", "safetensors"):
        assert needle in text
    out = tmp_path / "m.json"
    run("manifest", str(tiny_model), "-o", str(out))
    code, text, _ = run("inspect", str(out), "--tensors")
    assert code == 0 and "model.layers.1.mlp.down_proj.weight" in text
    code, text, _ = run("inspect", str(out), "--json")
    assert json.loads(text)["name"] == "tiny-model"


def rows(text: str) -> dict[str, list[str]]:
    """The rows of every table printed, by their first cell."""
    cells = [[c.strip() for c in line.strip("│").split("│")] for line in text.splitlines()]
    return {
        row[0]: row for row, line in zip(cells, text.splitlines(), strict=True) if line[:1] == "│"
    }


def test_inspect_shows_storages_and_the_views_in_them(tmp_path: Path) -> None:
    import torch

    base = torch.arange(12, dtype=torch.float32).reshape(3, 4)
    sd = {"base": base, "row": base[1], "cols": base[:, :2], "other": torch.ones(3)}
    model = save(sd, tmp_path / "m" / "pytorch_model.bin").parent
    code, text, err = run("inspect", str(model), "--tensors")
    assert code == 0, err
    found = rows(text)
    zero, one = "pytorch_model/data/0", "pytorch_model/data/1"
    assert [found[t][3] for t in ("base", "row", "cols", "other")] == [zero, zero, zero, one]
    assert (
        found["cols"][6]
        == f"view of storage {zero} (no digest of its own: the storage's covers it)"
    )
    assert len(found["row"][6]) == 64  # a contiguous view has a digest of its own
    assert found[zero][1:3] == [found["base"][4], "48"] and found[zero][4] == "base, cols, row"
    assert found[one][4] == "other" and found[zero][3] == found["base"][6]
    code, text, _ = run("inspect", str(model), "--json")
    w = json.loads(text)["files"][0]["weights"]
    cols = next(t for t in w["tensors"] if t["name"] == "cols")
    assert (cols["storage"], cols["digest"]) == (zero, None)
    assert [(s["name"], len(s["digest"])) for s in w["storages"]] == [(zero, 64), (one, 64)]
    out = tmp_path / "unhashed.json"
    run("manifest", str(model), "--no-tensors", "-o", str(out))
    code, text, _ = run("inspect", str(out), "--tensors")
    assert code == 0 and rows(text)["cols"][6] == "" and "view of" not in text


def test_inspect_a_signature_shows_its_attested_manifest(signed: Path) -> None:
    code, text, err = run("inspect", str(signed / "model.sig"), "--json")
    assert code == 0, err
    assert json.loads(text)["name"] == "tiny-model" and "NOT verified" in err
    # A signed folder is shown without its signature files.
    code, text, _ = run("inspect", str(signed), "--json")
    names = {f["path"] for f in json.loads(text)["files"]}
    assert code == 0 and not names & {"model.sig", "claims.jsonl"}
    (signed / "claims.jsonl").unlink()
    code, _, err = run("inspect", str(signed / "model.sig"))
    assert code == 2 and "ATTESTATION_MISSING" in err and "Traceback" not in err


@pytest.mark.slow
def test_python_dash_m_and_help() -> None:
    r = subprocess.run(
        [sys.executable, "-m", "modelsign", "--help"], capture_output=True, text=True, check=True
    )
    assert "manifest" in r.stdout and "inspect" in r.stdout


@pytest.mark.slow
def test_fifo_inputs_are_refused_without_hanging(tiny_model: Path, tmp_path: Path) -> None:
    """Every user-supplied file is opened non-blocking and must be a regular file."""
    import os

    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    f = str(fifo)
    cases = [
        ["policy", "check", f],
        ["verify", str(tiny_model), "--key", f],
        ["verify", str(tiny_model), "--policy", f],
        ["verify", str(tiny_model), "--cert-chain", f],
        ["sign", str(tiny_model), "--key", f],
        ["manifest", str(tiny_model), "--parent", f],
        ["inspect", f],
        ["sbom", f],
        ["diff", f, str(tiny_model)],
    ]
    for args in cases:
        r = subprocess.run(
            [sys.executable, "-m", "modelsign", *args],
            capture_output=True,
            text=True,
            timeout=60,
            stdin=subprocess.DEVNULL,
        )
        assert r.returncode == 2, (args, r.stderr)
        assert r.stderr.startswith("error[") and "Traceback" not in r.stderr, (args, r.stderr)
