"""The formats rule: pickle checkpoints (signed or not), unknown weight-like files, Python code,
chat templates, allow lists.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from modelsign._internal.signature.verifiers import KeyVerifier
from tests.helpers.gguf_files import QT, random_quant, write_gguf
from tests.helpers.signing import KeyPair
from tests.policy.helpers import (
    MODES,
    NOT_COVERED,
    assert_fails,
    assert_passes,
    judge,
    key_sign,
    load,
    rule_of,
    rule_policy,
    statuses,
)


@pytest.mark.parametrize("mode", MODES)
def test_formats_signed_pickle_checkpoint(
    tmp_path: Path, pickle_model: Path, release: KeyPair, mode: str
) -> None:
    key_sign(pickle_model, release)
    verifier = release.verifier
    policy = rule_policy(tmp_path, "formats", mode)  # pickle is denied by default
    assert_fails(
        pickle_model,
        policy,
        "formats",
        mode,
        ["pytorch_model.bin: format pickle is denied"],
        verifier=verifier,
    )
    allowed = rule_policy(tmp_path, "formats", mode, deny=[])
    assert_passes(pickle_model, allowed, "formats", verifier=verifier)


@pytest.mark.parametrize("mode", MODES)
def test_formats_unsigned_pickle_beside_a_signed_model(
    tmp_path: Path, copy_signed: Path, torch_checkpoint: bytes, release: KeyPair, mode: str
) -> None:
    (copy_signed / "pytorch_model.bin").write_bytes(torch_checkpoint)
    # Coverage tolerates the unsigned file: only the formats rule catches it.
    policy = load(tmp_path, {"mode": mode, "formats": {}, "coverage": {"unsigned_files": "allow"}})
    result = assert_fails(
        copy_signed,
        policy,
        "formats",
        mode,
        ["pytorch_model.bin (unsigned): format pickle is denied"],
        verifier=release.verifier,
    )
    assert statuses(result)["signers"] == "pass"
    assert statuses(result)["coverage"] == "pass"
    (extra,) = result.problems
    assert (extra.code, extra.file, extra.severity) == ("FILE_EXTRA", "pytorch_model.bin", "info")


def test_formats_unsigned_pickle_without_a_coverage_rule(
    tmp_path: Path, copy_signed: Path, torch_checkpoint: bytes, release: KeyPair
) -> None:
    (copy_signed / "pytorch_model.bin").write_bytes(torch_checkpoint)
    policy = load(tmp_path, {"formats": {}})
    result, err = judge(copy_signed, policy, verifier=release.verifier)
    assert err is not None and err.code == "FILE_EXTRA"
    # The extra file fails the signature; the formats rule judges the model on disk.
    assert rule_of(result, "signers").reasons == [f"FILE_EXTRA: pytorch_model.bin: {NOT_COVERED}"]
    assert rule_of(result, "formats").reasons == ["pytorch_model.bin: format pickle is denied"]
    assert statuses(result) == {"signers": "fail", "formats": "fail"}


@pytest.mark.parametrize("mode", MODES)
def test_formats_unknown_weight_like_file(
    tmp_path: Path, tiny_model: Path, release: KeyPair, mode: str
) -> None:
    (tiny_model / "extra_weights.tflite").write_bytes(np.arange(16, dtype=np.float32).tobytes())
    key_sign(tiny_model, release)
    verifier = release.verifier
    policy = rule_policy(tmp_path, "formats", mode, deny=["pickle", "unknown"])
    assert_fails(
        tiny_model,
        policy,
        "formats",
        mode,
        ["extra_weights.tflite: format unknown is denied"],
        verifier=verifier,
    )
    # Without "unknown" in the deny list, the opaque file passes.
    assert_passes(tiny_model, rule_policy(tmp_path, "formats", mode), "formats", verifier=verifier)


@pytest.mark.parametrize("mode", MODES)
def test_formats_allow_list(
    tmp_path: Path, signed_st: Path, signed_gguf: Path, release_verifier: KeyVerifier, mode: str
) -> None:
    ok = rule_policy(tmp_path, "formats", mode, allow=["safetensors"])
    assert_passes(signed_st, ok, "formats", verifier=release_verifier)  # opaque always allowed
    only_gguf = rule_policy(tmp_path, "formats", mode, allow=["gguf", "opaque"])
    assert_passes(signed_gguf, only_gguf, "formats", verifier=release_verifier)
    assert_fails(
        signed_st,
        only_gguf,
        "formats",
        mode,
        ["model.safetensors: format safetensors is not allowed"],
        verifier=release_verifier,
    )


def test_formats_allow_list_refuses_unknown(
    tmp_path: Path, tiny_model: Path, release: KeyPair
) -> None:
    (tiny_model / "model.tflite").write_bytes(b"TFL3" + bytes(32))
    key_sign(tiny_model, release)
    policy = rule_policy(tmp_path, "formats", "enforce", allow=["safetensors"], deny=[])
    assert_fails(
        tiny_model,
        policy,
        "formats",
        "enforce",
        ["model.tflite: format unknown is not allowed"],
        verifier=release.verifier,
    )


@pytest.mark.parametrize("mode", MODES)
def test_formats_python_code(tmp_path: Path, tiny_model: Path, release: KeyPair, mode: str) -> None:
    (tiny_model / "modeling_x.py").write_text("import os\nos.system('true')\n")
    key_sign(tiny_model, release)
    verifier = release.verifier
    refused = rule_policy(tmp_path, "formats", mode, allow_python_code=False)
    assert_fails(
        tiny_model,
        refused,
        "formats",
        mode,
        ["modeling_x.py: Python code in the model (runs with trust_remote_code)"],
        verifier=verifier,
    )
    assert_fails(
        tiny_model,
        rule_policy(tmp_path, "formats", mode),
        "formats",
        mode,
        ["modeling_x.py: Python code in the model (runs with trust_remote_code)"],
        verifier=verifier,
    )  # refused by default
    allowed = rule_policy(tmp_path, "formats", mode, allow_python_code=True)
    assert_passes(tiny_model, allowed, "formats", verifier=verifier)


@pytest.mark.parametrize("mode", MODES)
def test_formats_chat_template(tmp_path: Path, release: KeyPair, mode: str) -> None:
    model = tmp_path / "chat"
    model.mkdir()
    tensors = {"w": random_quant((4, 32), QT.Q8_0)}
    write_gguf(
        model / "chat.gguf",
        tensors=tensors,
        license="mit",
        chat_template="{% for m in messages %}{{ m.content }}{% endfor %}",
    )
    write_gguf(tmp_path / "plain.gguf", tensors=tensors, license="mit")
    key_sign(model, release)
    verifier = release.verifier
    refused = rule_policy(tmp_path, "formats", mode, allow_chat_templates=False)
    assert_fails(
        model,
        refused,
        "formats",
        mode,
        ["chat.gguf: carries a chat template (a Jinja program the runtime runs)"],
        verifier=verifier,
    )
    assert_passes(model, rule_policy(tmp_path, "formats", mode), "formats", verifier=verifier)
    key_sign(tmp_path / "plain.gguf", release)  # a single file without a template
    assert_passes(tmp_path / "plain.gguf", refused, "formats", verifier=verifier)
