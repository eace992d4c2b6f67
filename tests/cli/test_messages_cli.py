"""What the commands say, as a person reads it: counts with the right number, names and
digests printed as they are, GGUF shapes in one order, only the values an error has."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
from click.testing import CliRunner
from gguf import GGUFReader
from rich.console import Console

from modelsign.cli import cli
from modelsign.cli.inspect import render
from modelsign.errors import InputError, VerificationError
from modelsign.sign import build_manifest
from tests.helpers.gguf_files import write_gguf
from tests.helpers.signing import KeyPair, flip_byte

HEX64 = re.compile(r"\b[0-9a-f]{64}\b")


def folder(path: Path) -> Path:
    path.mkdir(parents=True)
    return path


def run(*args: str | Path) -> tuple[int, str, str]:
    r = CliRunner().invoke(cli, [str(a) for a in args])
    return r.exit_code, r.stdout, r.stderr


def test_one_file_one_tensor_one_problem_in_the_singular(tmp_path: Path, keypair: KeyPair) -> None:
    model = write_gguf(tmp_path / "one.gguf", tensors={"w": np.ones((4, 8), np.float32)})
    code, _, err = run("sign", model, "--key", keypair.key_path)
    assert code == 0, err
    assert "signed one.gguf: 1 file, 1 tensor\n" in err
    code, out, err = run("verify", model, "--key", keypair.pub_path)
    assert code == 0, err
    assert out.startswith(f"verified {model}: 1 file (1 by tensor digests), 1 tensor\n")
    code, out, _ = run("inspect", model)
    assert "\n1 file, " in out and "1 files" not in out
    folder = tmp_path / "folder"
    folder.mkdir()
    shutil.copy(model, folder / "one.gguf")
    code, _, err = run("sign", folder, "--key", keypair.key_path)
    assert code == 0 and "signed folder: 1 file, 1 tensor\n" in err
    (folder / "notes.txt").write_text("added")
    code, out, _ = run("verify", folder, "--key", keypair.pub_path)
    assert code == 1 and out.startswith(f"FAILED {folder}: 1 problem\n")
    assert "problem(s)" not in out
    flip_byte(model, tensor="w")
    code, out, _ = run("verify", model, "--key", keypair.pub_path)
    assert code == 1 and out.startswith(f"FAILED {model}: 2 problems\n")


def test_diff_counts_in_the_singular(tmp_path: Path) -> None:
    old = write_gguf(folder(tmp_path / "a") / "m.gguf", tensors={"w": np.ones((4, 8), np.float32)})
    new = write_gguf(folder(tmp_path / "b") / "m.gguf", tensors={"w": np.zeros((4, 8), np.float32)})
    code, out, _ = run("diff", old, new)
    assert code == 1
    assert "(model 'm.gguf': 1 file, 1 tensor)" in out
    assert "DIFFERENT: 1 of 1 tensor changed" in out


def test_names_and_digests_are_printed_as_they_are(tiny_model: Path, tmp_path: Path) -> None:
    model = tmp_path / "model[v2]"
    shutil.copytree(tiny_model, model)
    (model / "[bold]notes[red].txt").write_text("x")
    code, out, err = run("inspect", model)
    assert code == 0, err
    assert out.startswith("model[v2]  manifest sha256:")
    assert "[bold]notes[red].txt" in out
    # On a terminal, nothing of a digest is coloured (rich highlights numbers by default).
    console = Console(record=True, force_terminal=True, color_system="truecolor", width=300)
    m = build_manifest(model)
    render(m, show_tensors=True, console=console)
    styled = console.export_text(styles=True, clear=False)
    for digest in [m.digest().removeprefix("sha256:"), m.weights_digest or ""]:
        assert digest in styled  # contiguous: no escape code inside
    assert all(t.digest in styled for f in m.files if f.weights for t in f.weights.tensors)
    assert "[bold]notes[red].txt" in console.export_text()


def test_inspect_tensors_prints_whole_digests_unless_short(tiny_model: Path) -> None:
    m = build_manifest(tiny_model)
    digests = {t.digest for f in m.files if f.weights for t in f.weights.tensors}
    code, out, _ = run("inspect", tiny_model, "--tensors")
    assert code == 0 and digests <= set(HEX64.findall(out))
    assert {f.sha256 for f in m.files} <= set(HEX64.findall(out))
    code, out, _ = run("inspect", tiny_model, "--tensors", "--short")
    assert code == 0 and not HEX64.findall(out.split("manifest sha256:", 1)[1].split("\n", 3)[3])
    assert all(f"{d[:16]}…" in out for d in digests)


def test_gguf_shapes_read_in_one_order_everywhere(tmp_path: Path) -> None:
    """GGUF's own order (fastest dimension first), as gguf-py and llama.cpp's gguf-dump list it."""
    old = write_gguf(
        folder(tmp_path / "a") / "m.gguf", tensors={"ffn": np.ones((3, 5), np.float32)}
    )
    new = write_gguf(
        folder(tmp_path / "b") / "m.gguf", tensors={"ffn": np.ones((5, 3), np.float32)}
    )
    (tensor,) = GGUFReader(old).tensors
    assert [int(x) for x in tensor.shape] == [5, 3]  # numpy (3, 5) is ne [5, 3]
    code, out, _ = run("manifest", old)
    assert code == 0
    (entry,) = json.loads(out)["files"][0]["weights"]["tensors"]
    assert entry["shape"] == [5, 3]
    code, out, _ = run("inspect", old, "--tensors")
    assert code == 0
    assert re.search(r"│ ffn\s+│ F32\s+│ 5×3\s+│", out), out
    code, out, _ = run("diff", old, new)
    assert code == 1
    assert "TENSOR_RETYPED           ffn (m.gguf): retyped F32[5,3] → F32[3,5]" in out
    code, out, _ = run("diff", old, new, "--json")
    assert code == 1
    (change,) = json.loads(out)["tensors"]
    assert (change["old_shape"], change["new_shape"]) == ([5, 3], [3, 5])


def test_an_error_prints_only_the_values_it_has() -> None:
    only_expected = InputError("m", code="FILE_MISSING", path="a", expected="ab" * 32)
    assert only_expected.diagnostics() == f"error[FILE_MISSING]: a: m\n  expected: {'ab' * 32}"
    only_actual = VerificationError("m", code="FILE_EXTRA", path="b", actual="cd")
    assert only_actual.diagnostics() == "error[FILE_EXTRA]: b: m\n  actual:   cd"
    both = VerificationError("m", code="FILE_MODIFIED", expected="1", actual="2")
    assert both.diagnostics() == "error[FILE_MODIFIED]: m\n  expected: 1\n  actual:   2"


def test_verify_prints_only_the_values_a_problem_has(
    tiny_model: Path, keypair: KeyPair, tmp_path: Path
) -> None:
    code, _, err = run("sign", tiny_model, "--key", keypair.key_path)
    assert code == 0, err
    (tiny_model / "LICENSE").unlink()  # missing: expected only
    (tiny_model / "extra.txt").write_text("x")  # extra: nothing expected
    code, out, _ = run("verify", tiny_model, "--key", keypair.pub_path)
    assert code == 1 and out.startswith(f"FAILED {tiny_model}: 2 problems\n")
    assert "None" not in out
    lines = out.splitlines()
    missing = next(i for i, line in enumerate(lines) if "FILE_MISSING" in line)
    assert lines[missing + 1].startswith("    expected: ") and "actual" not in lines[missing + 2]
