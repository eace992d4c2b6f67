"""Verifying an ONNX model whose tensors live in an external data file."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelsign.errors import VerificationError
from modelsign.verify import verify
from tests.helpers.onnx_files import gemm_model, save_external
from tests.helpers.signing import KeyPair, SignedModel, flip_byte


@pytest.fixture
def external(tmp_path: Path, signed_model: SignedModel) -> Path:
    """``m.onnx`` with its initializers ``W`` (bytes 0:256) and ``B`` in ``w.bin``, signed."""
    save_external(gemm_model(), tmp_path / "m" / "m.onnx")
    return signed_model(tmp_path / "m")


def findings(model: Path, keypair: KeyPair) -> list[tuple[str, str | None, str | None]]:
    with pytest.raises(VerificationError) as info:
        verify(model, verifier=keypair.verifier)
    return sorted((p.code, p.file, p.tensor) for p in info.value.findings if p.severity == "error")


def test_a_changed_data_file_names_its_tensor(external: Path, keypair: KeyPair) -> None:
    assert verify(external, verifier=keypair.verifier).verdict == "verified"
    flip_byte(external / "w.bin", 10)
    assert findings(external, keypair) == [
        ("FILE_MODIFIED", "w.bin", None),
        ("TENSOR_MODIFIED", "w.bin", "W"),
    ]


def test_the_tensor_is_named_when_the_model_file_no_longer_parses(
    external: Path, keypair: KeyPair
) -> None:
    # m.onnx unparsable sends every file of the batch through its own read again:
    # the data file is still laid out as signed there.
    model = external / "m.onnx"
    model.write_bytes(b"\xff" * model.stat().st_size)
    flip_byte(external / "w.bin", 10)
    assert findings(external, keypair) == [
        ("FILE_MODIFIED", "m.onnx", None),
        ("FILE_MODIFIED", "w.bin", None),
        ("TENSOR_MODIFIED", "w.bin", "W"),
    ]


def test_a_data_file_of_another_size_is_not_parsed_as_a_model(
    external: Path, keypair: KeyPair
) -> None:
    with (external / "w.bin").open("ab") as fh:
        fh.write(b"\0")
    with pytest.raises(VerificationError) as info:
        verify(external, verifier=keypair.verifier)
    (p,) = info.value.findings
    assert (p.code, p.file) == ("FILE_SIZE_MISMATCH", "w.bin")
    assert "parse" not in p.message, p.message  # it has no header of its own to parse
