"""``load_safetensors``: the runtime gets exactly the bytes that were verified.

Full and partial loads (numpy and torch, BF16/FP8, sharded through the index),
and the attacks a load-time check exists for: a file swapped or rewritten
between check and load, shards added or removed, tensors renamed, header
metadata edited, a pickle dropped beside the weights. Each refusal must name
the file (and the tensor, where there is one).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from safetensors.numpy import load_file as np_load_file

import modelsign
import modelsign.load._context as load_context
import modelsign.load.safetensors as st_loader
from modelsign._internal.signature import keys
from modelsign.errors import InputError, VerificationError
from modelsign.load import ModelsignWarning, load_safetensors
from modelsign.policy import Policy
from tests.helpers.paths import ROOT
from tests.helpers.safetensors_files import (
    header_json,
    raw_safetensors,
    split_safetensors,
    write_safetensors,
    write_safetensors_torch,
    write_sharded,
)
from tests.helpers.signing import KeyPair, flip_byte, shared_key

WEIGHTS = "model.safetensors"
# Two tensors of the tiny model (a matrix and a norm), and one never requested.
WANTED = ["model.layers.0.self_attn.q_proj.weight", "model.norm.weight"]
OTHER = "model.layers.1.mlp.up_proj.weight"


def sign(model: Path, keypair: KeyPair, **kw: Any) -> None:
    modelsign.sign(model, signer=keypair.signer, env={}, **kw)


def refused(call: Any) -> VerificationError:
    with pytest.raises(VerificationError) as info:
        call()
    return info.value


def codes(exc: VerificationError) -> set[str]:
    return {p.code for p in exc.findings}


def layout(path: Path) -> tuple[int, dict[str, tuple[int, int]]]:
    """(data start, {tensor: (absolute start, absolute end)}) from the file's own header."""
    raw = path.read_bytes()
    (n,) = struct.unpack_from("<Q", raw)
    header = json.loads(raw[8 : 8 + n])
    start = 8 + n
    return start, {
        k: (start + v["data_offsets"][0], start + v["data_offsets"][1])
        for k, v in header.items()
        if k != "__metadata__"
    }


def adapted_policy(tmp_path: Path, name: str, keypair: KeyPair) -> Policy:
    """A shipped policy with its ``keys/release.pub`` pointed at the test key."""
    folder = tmp_path / f"policy-{name}"
    (folder / "keys").mkdir(parents=True)
    shutil.copy(ROOT / "policies" / name, folder / name)
    (folder / "keys" / "release.pub").write_bytes(keys.public_key_pem(keypair.public))
    return Policy.load(folder / name)


# -- full loads -------------------------------------------------------------------------------


def test_full_load_numpy_equals_safetensors(signed: Path, keypair: KeyPair, verifier: Any) -> None:
    out = load_safetensors(signed, verifier=verifier)
    ref = np_load_file(str(signed / WEIGHTS))
    assert set(out) == set(ref)
    for name, want in ref.items():
        assert isinstance(out[name], np.ndarray)
        assert out[name].dtype == want.dtype and out[name].shape == want.shape
        np.testing.assert_array_equal(out[name], want)
    r = out.report
    assert r.verified and not r.partial and r.warnings == []
    assert r.files == [WEIGHTS]
    assert sorted(r.tensors) == sorted(ref)
    assert r.bytes_verified == (signed / WEIGHTS).stat().st_size
    assert r.signer is not None and r.signer.key_hint == keys.key_hint(keypair.public)


def test_full_load_torch_equals_safetensors(signed: Path, verifier: Any) -> None:
    import torch
    from safetensors.torch import load_file

    out = load_safetensors(signed, verifier=verifier, framework="torch")
    ref = load_file(str(signed / WEIGHTS))
    assert set(out) == set(ref)
    for name, want in ref.items():
        assert isinstance(out[name], torch.Tensor)
        assert out[name].dtype == want.dtype and out[name].shape == want.shape
        assert torch.equal(out[name], want)
    assert out.report.bytes_verified == (signed / WEIGHTS).stat().st_size


def test_bf16_and_fp8_with_torch_numpy_refuses_bf16(
    tmp_path: Path, keypair: KeyPair, verifier: Any
) -> None:
    import torch
    from safetensors.torch import load_file

    model = tmp_path / "lowp"
    g = torch.Generator().manual_seed(7)
    tensors = {
        "bf16": torch.randn(8, 16, generator=g).to(torch.bfloat16),
        "e4m3": torch.randn(4, 32, generator=g).to(torch.float8_e4m3fn),
        "e5m2": torch.randn(16, generator=g).to(torch.float8_e5m2),
        "f32": torch.randn(3, 5, generator=g),
        "empty": torch.zeros(0, 4, dtype=torch.bfloat16),
    }
    write_safetensors_torch(model / WEIGHTS, tensors, {"format": "pt"})
    sign(model, keypair)
    out = load_safetensors(model, verifier=verifier, framework="torch")
    ref = load_file(str(model / WEIGHTS))
    assert set(out) == set(ref) == set(tensors)
    for name, want in ref.items():
        got = out[name]
        assert got.dtype == want.dtype and got.shape == want.shape
        # torch.equal has no FP8 kernel on CPU: compare the stored bytes
        assert torch.equal(got.view(torch.uint8), want.view(torch.uint8)), name
    assert out["bf16"].dtype == torch.bfloat16 and out["e4m3"].dtype == torch.float8_e4m3fn

    with pytest.raises(InputError) as info:
        load_safetensors(model, verifier=verifier, framework="numpy")
    assert info.value.code == "UNSUPPORTED_DTYPE"
    assert info.value.tensor in ("bf16", "empty", "e4m3", "e5m2")


def test_sharded_model_through_its_index(tmp_path: Path, keypair: KeyPair, verifier: Any) -> None:
    rng = np.random.default_rng(3)
    tensors = {
        f"layer.{i}.weight": rng.standard_normal((8, 4)).astype(np.float32) for i in range(7)
    }
    index, shards = write_sharded(tmp_path / "sharded", tensors, 3)
    model = index.parent
    sign(model, keypair)
    out = load_safetensors(model, verifier=verifier)
    assert set(out) == set(tensors)
    for shard in shards:
        for name, want in np_load_file(str(shard)).items():
            np.testing.assert_array_equal(out[name], want)
    r = out.report
    assert set(r.files) == {index.name} | {s.name for s in shards}
    assert sorted(r.tensors) == sorted(tensors)
    assert r.bytes_verified == sum(p.stat().st_size for p in [index, *shards])


def test_a_tensor_in_two_signed_files_is_refused(
    tmp_path: Path, keypair: KeyPair, verifier: Any
) -> None:
    model = tmp_path / "twice"
    write_safetensors(model / "a.safetensors", {"w": np.arange(4, dtype=np.float32)})
    write_safetensors(model / "b.safetensors", {"w": np.ones(4, dtype=np.float32)})
    sign(model, keypair)
    err = refused(lambda: load_safetensors(model, verifier=verifier))
    assert err.code == "DUPLICATE_TENSOR"
    assert err.message == "tensor w appears in two files"
    assert [(p.code, p.file, p.tensor) for p in err.findings] == [
        ("DUPLICATE_TENSOR", "b.safetensors", "w")
    ]


def test_a_single_file_signature(tmp_path: Path, keypair: KeyPair, verifier: Any) -> None:
    path = write_safetensors(tmp_path / "one" / WEIGHTS, {"w": np.arange(6.0).reshape(2, 3)})
    sign(path, keypair)
    assert (path.parent / (WEIGHTS + ".sig")).exists()
    out = load_safetensors(path, verifier=verifier)
    np.testing.assert_array_equal(out["w"], np.arange(6.0).reshape(2, 3))
    assert out.report.files == [WEIGHTS]


def test_a_file_signed_by_its_digest_alone_is_refused_with_that_digest(
    tmp_path: Path, keypair: KeyPair, verifier: Any
) -> None:
    path = write_safetensors(tmp_path / "one" / WEIGHTS, {"w": np.arange(6.0).reshape(2, 3)})
    sign(path.parent, keypair, tensor_hash=None)
    flip_byte(path, path.stat().st_size - 1)
    exc = refused(lambda: load_safetensors(path.parent, verifier=verifier))
    (p,) = exc.findings
    assert (p.code, p.file) == ("FILE_MODIFIED", WEIGHTS)
    assert p.actual == hashlib.sha256(path.read_bytes()).hexdigest() != p.expected


def test_loaded_tensors_do_not_follow_the_file(signed: Path, verifier: Any) -> None:
    """Tensors are views of the verified buffer, not of an mmap of the path."""
    out = load_safetensors(signed, verifier=verifier)
    before = out[OTHER].copy()
    flip_byte(signed / WEIGHTS, tensor=OTHER)  # rewritten in place after the load
    np.testing.assert_array_equal(out[OTHER], before)


def test_full_load_survives_short_reads(
    signed: Path, verifier: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_readv = os.readv

    def short_readv(fd: int, buffers: list[Any]) -> int:
        return real_readv(fd, [memoryview(buffers[0])[:4096]])

    monkeypatch.setattr(load_context.os, "readv", short_readv)
    out = load_safetensors(signed, verifier=verifier)
    assert out.report.verified and out.report.bytes_verified == (signed / WEIGHTS).stat().st_size


# -- partial loads ----------------------------------------------------------------------------


def test_partial_returns_only_the_requested_tensors(signed: Path, verifier: Any) -> None:
    out = load_safetensors(signed, verifier=verifier, tensors=WANTED)
    ref = np_load_file(str(signed / WEIGHTS))
    assert sorted(out) == sorted(WANTED)
    for name in WANTED:
        np.testing.assert_array_equal(out[name], ref[name])
    r = out.report
    assert r.partial and r.verified
    assert r.tensors == WANTED
    assert r.files == [WEIGHTS]
    sizes = sum(int(ref[n].nbytes) for n in WANTED)
    data_start, _ = layout(signed / WEIGHTS)
    # their bytes, plus at most the header that was checked with them
    assert sizes <= r.bytes_verified <= sizes + data_start


def test_partial_reads_only_the_header_and_the_requested_tensors(
    signed: Path, verifier: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    data_start, spans = layout(signed / WEIGHTS)
    allowed = [(0, data_start)] + [spans[n] for n in WANTED]
    reads: list[tuple[int, int]] = []
    real_preadv = os.preadv

    def preadv(fd: int, buffers: list[Any], offset: int) -> int:
        n = real_preadv(fd, buffers, offset)
        reads.append((offset, offset + n))
        return n

    def no_stream(*_a: Any, **_k: Any) -> Any:
        raise AssertionError("a partial load must not stream the file")

    monkeypatch.setattr(os, "preadv", preadv)
    monkeypatch.setattr(os, "readv", no_stream)
    monkeypatch.setattr(os, "pread", no_stream)
    load_safetensors(signed, verifier=verifier, tensors=WANTED)
    assert reads, "the loader read nothing"
    read_bytes = sum(b - a for a, b in reads)
    assert read_bytes <= sum(b - a for a, b in allowed)
    for a, b in reads:
        assert any(lo <= a and b <= hi for lo, hi in allowed), f"read [{a}, {b}) is not requested"
    for lo, hi in allowed:  # and every requested byte was read (then hashed)
        assert sum(min(b, hi) - max(a, lo) for a, b in reads if a < hi and b > lo) == hi - lo


def test_partial_ignores_a_tampered_tensor_it_does_not_load(signed: Path, verifier: Any) -> None:
    flip_byte(signed / WEIGHTS, 5, tensor=OTHER)
    out = load_safetensors(signed, verifier=verifier, tensors=WANTED)
    assert sorted(out) == sorted(WANTED) and out.report.verified
    # ...while a full load of the same folder is refused, naming that tensor
    exc = refused(lambda: load_safetensors(signed, verifier=verifier))
    hit = [p for p in exc.findings if p.code == "TENSOR_MODIFIED"]
    assert [(p.file, p.tensor) for p in hit] == [(WEIGHTS, OTHER)]


def test_partial_refuses_a_tampered_requested_tensor(signed: Path, verifier: Any) -> None:
    flip_byte(signed / WEIGHTS, 3, tensor=WANTED[0])
    exc = refused(lambda: load_safetensors(signed, verifier=verifier, tensors=WANTED))
    assert exc.code == "TENSOR_MODIFIED"
    assert [(p.code, p.file, p.tensor) for p in exc.findings] == [
        ("TENSOR_MODIFIED", WEIGHTS, WANTED[0])
    ]
    p = exc.findings[0]
    assert p.expected and p.actual and p.expected != p.actual


def test_partial_unknown_tensor(signed: Path, verifier: Any) -> None:
    with pytest.raises(InputError) as info:
        load_safetensors(signed, verifier=verifier, tensors=[WANTED[0], "no.such.tensor"])
    assert info.value.code == "NO_SUCH_TENSOR"
    assert "no.such.tensor" in info.value.message


def test_partial_across_shards(tmp_path: Path, keypair: KeyPair, verifier: Any) -> None:
    tensors = {f"t{i}": np.full((4,), i, dtype=np.float32) for i in range(6)}
    index, shards = write_sharded(tmp_path / "sharded", tensors, 3)
    sign(index.parent, keypair)
    flip_byte(shards[1], tensor="t2")  # shard 2 holds t2, t3: neither requested
    out = load_safetensors(index.parent, verifier=verifier, tensors=["t5", "t0"])
    assert sorted(out) == ["t0", "t5"] and out.report.partial
    np.testing.assert_array_equal(out["t5"], tensors["t5"])
    assert {shards[0].name, shards[2].name} <= set(out.report.files)
    assert shards[1].name not in out.report.files


# -- attacks ------------------------------------------------------------------------------------


def _evil_copy(signed: Path, tmp_path: Path) -> Path:
    """The signed weights with one tensor changed, same size, outside the model folder."""
    evil = tmp_path / "evil.safetensors"
    shutil.copy(signed / WEIGHTS, evil)
    flip_byte(evil, 7, tensor=OTHER)
    return evil


def test_attack_file_swapped_between_check_and_load(
    signed: Path, tmp_path: Path, verifier: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    evil = _evil_copy(signed, tmp_path)
    real_open_context = st_loader.open_context
    swapped: list[bool] = []

    def open_then_swap(*a: Any, **k: Any) -> Any:
        ctx = real_open_context(*a, **k)  # signature and policy checked, no weight read yet
        os.replace(evil, signed / WEIGHTS)
        swapped.append(True)
        return ctx

    # load_safetensors holds its own reference to open_context
    monkeypatch.setattr(st_loader, "open_context", open_then_swap)
    exc = refused(lambda: load_safetensors(signed, verifier=verifier, framework="torch"))
    assert swapped == [True]
    assert "FILE_MODIFIED" in codes(exc)
    assert exc.findings and all(p.file == WEIGHTS for p in exc.findings)
    assert exc.result.files == []


def test_attack_file_swapped_during_a_partial_load(
    signed: Path, tmp_path: Path, verifier: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The partial path: a swap where OTHER changes but the requested tensors do not is
    harmless (their bytes are checked); a swap of a requested tensor is refused."""
    evil = tmp_path / "evil.safetensors"
    shutil.copy(signed / WEIGHTS, evil)
    flip_byte(evil, tensor=WANTED[1])
    real_open_context = st_loader.open_context

    def open_then_swap(*a: Any, **k: Any) -> Any:
        ctx = real_open_context(*a, **k)
        os.replace(evil, signed / WEIGHTS)
        return ctx

    monkeypatch.setattr(st_loader, "open_context", open_then_swap)
    exc = refused(lambda: load_safetensors(signed, verifier=verifier, tensors=WANTED))
    assert [(p.code, p.file, p.tensor) for p in exc.findings] == [
        ("TENSOR_MODIFIED", WEIGHTS, WANTED[1])
    ]


def test_attack_file_rewritten_in_place_while_read(
    signed: Path, verifier: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = signed / WEIGHTS
    _, spans = layout(path)
    target_start, _ = spans[OTHER]
    real_preadv = os.preadv
    calls: list[int] = []

    def preadv(fd: int, buffers: list[Any], offset: int) -> int:
        calls.append(fd)
        if len(calls) == 1:
            # hand back one small piece, then rewrite the rest of the file on disk
            n = real_preadv(fd, [memoryview(buffers[0])[:4096]], offset)
            with open(path, "r+b") as fh:
                fh.seek(target_start + 3)
                byte = fh.read(1)
                fh.seek(target_start + 3)
                fh.write(bytes([byte[0] ^ 0xFF]))
            return n
        return real_preadv(fd, buffers, offset)

    monkeypatch.setattr(os, "preadv", preadv)
    exc = refused(lambda: load_safetensors(signed, verifier=verifier))
    assert len(calls) >= 2
    assert codes(exc) & {"FILE_CHANGED", "TENSOR_MODIFIED"}
    assert all(p.file == WEIGHTS for p in exc.findings)
    if "TENSOR_MODIFIED" in codes(exc):
        assert [p.tensor for p in exc.findings if p.code == "TENSOR_MODIFIED"] == [OTHER]


@pytest.fixture
def sharded(tmp_path: Path, keypair: KeyPair) -> tuple[Path, Path, list[Path]]:
    tensors = {f"w{i}": np.full((4, 2), i, dtype=np.float16) for i in range(4)}
    index, shards = write_sharded(tmp_path / "sharded", tensors, 2)
    sign(index.parent, keypair)
    return index.parent, index, shards


def _extra_shard(model: Path) -> Path:
    return write_safetensors(
        model / "model-00003-of-00002.safetensors", {"evil": np.ones(4, np.float16)}
    )


def test_attack_extra_shard_with_the_index_edited(
    sharded: tuple[Path, Path, list[Path]], tmp_path: Path, keypair: KeyPair, verifier: Any
) -> None:
    model, index, _ = sharded
    extra = _extra_shard(model)
    data = json.loads(index.read_text())
    data["weight_map"]["evil"] = extra.name
    index.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    # no policy: the unsigned shard beside the model is refused first
    exc = refused(lambda: load_safetensors(model, verifier=verifier))
    assert exc.code == "FILE_EXTRA"
    assert [(p.code, p.file) for p in exc.findings] == [("FILE_EXTRA", extra.name)]
    # a policy that tolerates unsigned files: the edited (signed) index itself is refused
    policy = modelsign.policy.parse_policy(
        "version: 1\nsigners:\n  keys:\n    - file: k.pub\n"
        "coverage:\n  require_tensor_digests: true\n  unsigned_files: allow\n",
        str(tmp_path / "tolerant.yaml"),
    )
    (tmp_path / "k.pub").write_bytes(keys.public_key_pem(keypair.public))
    exc = refused(lambda: load_safetensors(model, policy=policy))
    assert exc.code == "FILE_SIZE_MISMATCH"  # the index grew: refused unread
    assert [(p.code, p.file) for p in exc.findings] == [("FILE_SIZE_MISMATCH", index.name)]


def test_attack_extra_shard_dropped_beside_an_untouched_index(
    sharded: tuple[Path, Path, list[Path]], verifier: Any
) -> None:
    model, _, _ = sharded
    extra = _extra_shard(model)
    for kwargs in ({}, {"tensors": ["w0"]}):
        exc = refused(lambda kwargs=kwargs: load_safetensors(model, verifier=verifier, **kwargs))
        assert exc.code == "FILE_EXTRA"
        assert [(p.code, p.file) for p in exc.findings] == [("FILE_EXTRA", extra.name)]


def test_attack_tensor_renamed(signed: Path, verifier: Any) -> None:
    path = signed / WEIGHTS
    header, data = split_safetensors(path.read_bytes())
    header["lm_head.weight_evil"] = header.pop("lm_head.weight")
    path.write_bytes(raw_safetensors(header_json(header), data))
    exc = refused(lambda: load_safetensors(signed, verifier=verifier))
    found = {(p.code, p.tensor) for p in exc.findings if p.tensor is not None}
    assert found == {("TENSOR_REMOVED", "lm_head.weight"), ("TENSOR_ADDED", "lm_head.weight_evil")}
    assert all(p.file == WEIGHTS for p in exc.findings)


@pytest.mark.parametrize("same_length", [True, False], ids=["same-length", "longer"])
def test_attack_header_metadata_changed_tensors_identical(
    signed: Path, verifier: Any, same_length: bool
) -> None:
    path = signed / WEIGHTS
    raw = path.read_bytes()
    header, data = split_safetensors(raw)
    if same_length:
        (n,) = struct.unpack_from("<Q", raw)
        head = raw[8 : 8 + n]
        assert head.count(b'"format":"pt"') == 1
        new = raw[:8] + head.replace(b'"format":"pt"', b'"format":"tf"') + raw[8 + n :]
        assert len(new) == len(raw)
    else:
        header["__metadata__"] = {"format": "pt", "quantization": "none, trust me"}
        new = raw_safetensors(header_json(header), data)
    path.write_bytes(new)
    assert split_safetensors(path.read_bytes())[1] == data  # tensor bytes untouched
    exc = refused(lambda: load_safetensors(signed, verifier=verifier))
    assert codes(exc) & {"METADATA_MODIFIED", "HEADER_MODIFIED"}
    assert "METADATA_MODIFIED" in codes(exc)
    assert not codes(exc) & {"TENSOR_MODIFIED", "TENSOR_ADDED", "TENSOR_REMOVED"}
    assert all(p.file == WEIGHTS for p in exc.findings)
    # a partial load checks the header too
    exc = refused(lambda: load_safetensors(signed, verifier=verifier, tensors=WANTED))
    assert exc.code in ("HEADER_MODIFIED", "FILE_MODIFIED", "FILE_SIZE_MISMATCH")
    assert all(p.file == WEIGHTS and p.tensor is None for p in exc.findings)


def _drop_pickle(model: Path) -> Path:
    import torch

    target = model / "pytorch_model.bin"
    torch.save({"lm_head.weight": torch.zeros(2, 2)}, target)
    return target


def test_attack_pickle_beside_safetensors_refused_by_the_default_policy(
    signed: Path, tmp_path: Path, keypair: KeyPair
) -> None:
    policy = adapted_policy(tmp_path, "default.yaml", keypair)
    assert load_safetensors(signed, policy=policy).report.verified  # clean before
    pickle_file = _drop_pickle(signed)
    exc = refused(lambda: load_safetensors(signed, policy=policy))
    assert exc.code == "POLICY_FAILED"
    assert pickle_file.name in exc.message and "pickle" in exc.message
    report = exc.result.policy
    assert report is not None and report.blocked
    formats = next(r for r in report.rules if r.rule == "formats")
    assert formats.status == "fail"
    assert any(pickle_file.name in reason and "pickle" in reason for reason in formats.reasons)
    assert exc.result.files == []  # nothing was read


def test_attack_pickle_beside_safetensors_without_a_policy(signed: Path, verifier: Any) -> None:
    pickle_file = _drop_pickle(signed)
    exc = refused(lambda: load_safetensors(signed, verifier=verifier))
    assert exc.code == "FILE_EXTRA"
    assert [(p.code, p.file) for p in exc.findings] == [("FILE_EXTRA", pickle_file.name)]


# -- warn mode ---------------------------------------------------------------------------------


def test_warn_mode_policy_lets_a_tampered_tensor_through_with_a_warning(
    signed: Path, tmp_path: Path, keypair: KeyPair
) -> None:
    policy = adapted_policy(tmp_path, "permissive.yaml", keypair)
    flip_byte(signed / WEIGHTS, tensor=OTHER)
    with pytest.warns(ModelsignWarning) as caught:
        out = load_safetensors(signed, policy=policy)
    assert set(out) == set(np_load_file(str(signed / WEIGHTS)))
    np.testing.assert_array_equal(out[OTHER], np_load_file(str(signed / WEIGHTS))[OTHER])
    assert out.report.verified is False
    texts = [str(w.message) for w in caught]
    assert any("TENSOR_MODIFIED" in t and OTHER in t and WEIGHTS in t for t in texts)
    assert any(OTHER in t for t in out.report.warnings)


def test_enforce_is_the_default_without_a_policy(signed: Path, verifier: Any) -> None:
    flip_byte(signed / WEIGHTS, tensor=OTHER)
    exc = refused(lambda: load_safetensors(signed, verifier=verifier))
    assert exc.result.tensors == [] and exc.result.files == []
    assert [(p.code, p.tensor) for p in exc.findings if p.tensor] == [("TENSOR_MODIFIED", OTHER)]


# -- regressions: bugs found while writing these tests, now fixed -------------------


@pytest.fixture
def two_files(tmp_path: Path, keypair: KeyPair) -> Iterator[Path]:
    """A folder of two safetensors files with no index (e.g. weights + a signed adapter)."""
    model = tmp_path / "two"
    write_safetensors(model / "a.safetensors", {"x": np.arange(4, dtype=np.float32)})
    write_safetensors(model / "b.safetensors", {"y": np.arange(4, dtype=np.float32)})
    sign(model, keypair)
    yield model


def test_a_deleted_signed_weight_file_is_refused(two_files: Path, verifier: Any) -> None:
    """Regression: load_safetensors of a folder without an index loads whatever *.safetensors
    are on disk; a signed file that was deleted is never noticed (verify says FILE_MISSING)."""
    os.remove(two_files / "b.safetensors")
    with pytest.raises(VerificationError) as info:
        modelsign.verify(two_files, verifier=verifier)
    assert info.value.code == "FILE_MISSING"  # what `modelsign verify` says
    exc = refused(lambda: load_safetensors(two_files, verifier=verifier))
    assert ("FILE_MISSING", "b.safetensors") in {(p.code, p.file) for p in exc.findings}


def test_a_deleted_shard_is_reported_missing(
    sharded: tuple[Path, Path, list[Path]], verifier: Any
) -> None:
    """Regression: a shard named by the index and signed, but deleted, is refused as FILE_UNSIGNED
    ("is not in the model": it *is* signed) instead of FILE_MISSING as verify says."""
    model, _, shards = sharded
    os.remove(shards[1])
    exc = refused(lambda: load_safetensors(model, verifier=verifier))
    assert [(p.code, p.file) for p in exc.findings] == [("FILE_MISSING", shards[1].name)]


def test_partial_load_from_a_deleted_shard_names_it(
    sharded: tuple[Path, Path, list[Path]], verifier: Any
) -> None:
    """Regression: a partial load of a tensor whose signed shard was deleted crashes with
    KeyError (ctx.files[name] in _load_partial) instead of a VerificationError."""
    model, _, shards = sharded
    assert sorted(np_load_file(str(shards[1]))) == ["w2", "w3"]
    os.remove(shards[1])
    # a tensor of the shard still there: fine
    assert list(load_safetensors(model, verifier=verifier, tensors=["w0"])) == ["w0"]
    exc = refused(lambda: load_safetensors(model, verifier=verifier, tensors=["w3"]))
    assert (exc.code, exc.findings[0].file) == ("FILE_MISSING", shards[1].name)


def test_a_swapped_file_is_diagnosed_from_the_bytes_read(
    signed: Path, tmp_path: Path, verifier: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Regression: on a mismatch, _context._diagnose re-reads the *path* (hash_file) instead of
    diffing the buffer it already hashed. After a swap the new inode fails hash_file's
    identity check, so the refusal says FILE_CHANGED and never names the tensor that
    differs in the bytes actually read (hash_ranges had its digest in hand)."""
    evil = _evil_copy(signed, tmp_path)
    real_open_context = st_loader.open_context

    def open_then_swap(*a: Any, **k: Any) -> Any:
        ctx = real_open_context(*a, **k)
        os.replace(evil, signed / WEIGHTS)
        return ctx

    monkeypatch.setattr(st_loader, "open_context", open_then_swap)
    exc = refused(lambda: load_safetensors(signed, verifier=verifier))
    assert ("TENSOR_MODIFIED", WEIGHTS, OTHER) in {(p.code, p.file, p.tensor) for p in exc.findings}


def test_a_policy_refusal_carries_findings_naming_the_file(
    signed: Path, tmp_path: Path, keypair: KeyPair
) -> None:
    """Regression: open_context raises POLICY_FAILED with findings=<signature problems only>, so
    an unsigned pickle the formats rule refused is named only inside the message string;
    modelsign.verify with the same policy gives a FILE_EXTRA finding for it."""
    policy = adapted_policy(tmp_path, "default.yaml", keypair)
    pickle_file = _drop_pickle(signed)
    exc = refused(lambda: load_safetensors(signed, policy=policy))
    assert pickle_file.name in {p.file for p in exc.findings}


def test_file_replaced_by_a_symlink_is_a_verification_error(
    signed: Path, tmp_path: Path, verifier: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Regression: a weight file replaced by a symlink (or removed) after the signature
    check escapes as a raw OSError from os.open(O_NOFOLLOW), not a VerificationError
    naming the file. The load is still refused."""
    evil = _evil_copy(signed, tmp_path)
    real_open_context = st_loader.open_context

    def open_then_link(*a: Any, **k: Any) -> Any:
        ctx = real_open_context(*a, **k)
        os.remove(signed / WEIGHTS)
        os.symlink(evil, signed / WEIGHTS)
        return ctx

    monkeypatch.setattr(st_loader, "open_context", open_then_link)
    exc = refused(lambda: load_safetensors(signed, verifier=verifier))
    assert any(p.file == WEIGHTS for p in exc.findings)


def test_partial_load_survives_short_reads(
    signed: Path, verifier: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Regression: _load_partial reads each tensor with ONE os.pread(fd, t.length, t.offset) and
    hashes whatever came back. pread may return fewer bytes (Linux caps one read at
    0x7ffff000 bytes, so any tensor over ~2 GiB always comes back short; FUSE/NFS and
    signals shorten reads too): the signed tensor is then refused as TENSOR_MODIFIED."""
    real_preadv = os.preadv

    def short_preadv(fd: int, buffers: list[Any], offset: int) -> int:
        return real_preadv(fd, [memoryview(buffers[0])[:4096]], offset)  # legal: a short read

    monkeypatch.setattr(os, "preadv", short_preadv)
    out = load_safetensors(signed, verifier=verifier, tensors=["lm_head.weight"])  # 32 KiB
    np.testing.assert_array_equal(
        out["lm_head.weight"], np_load_file(str(signed / WEIGHTS))["lm_head.weight"]
    )


def test_a_callers_verifier_is_enforced_under_a_warn_policy_without_signers(
    signed: Path, tmp_path: Path
) -> None:
    """Regression: the loader let a wrong key through (with a warning) when a warn-mode policy
    listed no signers, while `verify` enforced the same caller-given trust."""
    policy_file = tmp_path / "p.yaml"
    policy_file.write_text("version: 1\nmode: warn\nformats: {}\n")
    stranger = modelsign.KeyVerifier(shared_key("stranger").public_key())
    exc = refused(
        lambda: load_safetensors(
            signed, policy=modelsign.Policy.load(policy_file), verifier=stranger
        )
    )
    assert exc.code == "POLICY_FAILED"
    assert [p.code for p in exc.findings] == ["KEY_HINT_MISMATCH", "POLICY_SIGNERS"]
    with pytest.raises(VerificationError):
        modelsign.verify(signed, policy=modelsign.Policy.load(policy_file), verifier=stranger)


def test_a_signature_kept_in_a_subfolder_of_the_model(
    tiny_model: Path, keypair: KeyPair, verifier: Any
) -> None:
    """It is not one of the model's files, for the loader as for ``verify`` and ``sign``."""
    sig = tiny_model / "signatures" / "release.sig"
    sig.parent.mkdir()
    sign(tiny_model, keypair, signature=sig)
    assert modelsign.verify(tiny_model, signature=sig, verifier=verifier).verdict == "verified"
    out = load_safetensors(tiny_model, signature=sig, verifier=verifier)
    assert out.report.verified and out.report.files == [WEIGHTS]


def test_the_attestation_gives_the_loader_its_tensor_digests(
    signed: Path, keypair: KeyPair, verifier: Any
) -> None:
    """Loaders check tensors against the attested manifest, refuse a stripped one, and
    still read an earlier modelsign signature (manifest in the predicate) with a warning."""
    import rfc8785

    from tests.helpers.signing import manifest_of, payload_of, sign_payload, strip_marker

    out = load_safetensors(signed, verifier=verifier)
    assert set(WANTED) <= set(out) and out.report.verified
    legacy = strip_marker(payload_of(signed / "model.sig"))
    legacy["predicate"]["https://modelsign.dev/manifest/v1"] = manifest_of(signed / "model.sig")
    (signed / "claims.jsonl").unlink()
    assert codes(refused(lambda: load_safetensors(signed, verifier=verifier))) == {
        "ATTESTATION_MISSING"
    }
    (signed / "model.sig").write_bytes(sign_payload(keypair.private, rfc8785.dumps(legacy)))
    with pytest.warns(ModelsignWarning, match="re-sign"):
        out = load_safetensors(signed, verifier=verifier)
    assert set(WANTED) <= set(out) and any("re-sign" in w for w in out.report.warnings)
    flip_byte(signed / WEIGHTS, tensor=WANTED[1])
    with pytest.warns(ModelsignWarning):
        exc = refused(lambda: load_safetensors(signed, verifier=verifier))
    assert "TENSOR_MODIFIED" in codes(exc)
