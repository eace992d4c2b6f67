"""open_gguf: the loader reopens the verified descriptor, never the path."""

from __future__ import annotations

import os
from pathlib import Path

import gguf
import numpy as np
import pytest

import modelsign
from modelsign._internal.signature import keys
from modelsign._internal.signature.verifiers import KeyVerifier
from modelsign.errors import InputError, ModelsignWarning, VerificationError
from modelsign.load import gguf as gguf_load
from modelsign.load.gguf import VerifiedGGUF, open_gguf
from modelsign.policy import Policy
from tests.helpers.gguf_files import (
    QT,
    TensorValue,
    quantized,
    random_quant,
    tensor_bytes,
    write_gguf,
)
from tests.helpers.signing import flip_byte, shared_key

KEY = shared_key()
VERIFIER = KeyVerifier(KEY.public_key())


def model_tensors(seed: int) -> dict[str, TensorValue]:
    """An F32, a Q8_0 and a Q4_K tensor."""
    rng = np.random.default_rng(seed)
    return {
        "token_embd.weight": rng.standard_normal((8, 32)).astype(np.float32),
        "blk.0.attn_q.weight": quantized(rng.standard_normal((4, 64))),
        "blk.0.ffn_down.weight": random_quant((2, 256), QT.Q4_K, seed=seed),
    }


def sign(target: Path) -> None:
    modelsign.sign(target, signer=modelsign.KeySigner(KEY), env={})


def read_tensors(path: str) -> dict[str, bytes]:
    reader = gguf.GGUFReader(path)
    return {t.name: t.data.tobytes() for t in reader.tensors}


def expected(tensors: dict[str, TensorValue]) -> dict[str, bytes]:
    return {k: tensor_bytes(v) for k, v in tensors.items()}


def open_fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


@pytest.fixture
def single(tmp_path: Path) -> tuple[Path, dict[str, TensorValue]]:
    """One GGUF file with a single-file signature beside it."""
    tensors = model_tensors(0)
    path = write_gguf(tmp_path / "model.gguf", tensors=tensors, name="tiny")
    sign(path)
    return path, tensors


SPLIT = [f"x-{i:05d}-of-00003.gguf" for i in (1, 2, 3)]


@pytest.fixture
def split(tmp_path: Path) -> tuple[Path, list[dict[str, TensorValue]]]:
    """Three GGUF files named as a split set, signed as a folder."""
    folder = tmp_path / "split"
    folder.mkdir()
    parts = []
    for i, name in enumerate(SPLIT):
        tensors = {k.replace("blk.0.", f"blk.{i}."): v for k, v in model_tensors(i + 1).items()}
        write_gguf(folder / name, tensors=tensors)
        parts.append(tensors)
    sign(folder)
    return folder, parts


def failing(path: Path, **kw: object) -> VerificationError:
    before = open_fds()
    with pytest.raises(VerificationError) as e:
        open_gguf(path, **{"verifier": VERIFIER, **kw})  # type: ignore[arg-type]
    assert open_fds() == before  # nothing left open
    return e.value


def test_verified_open_reads_the_signed_tensors(
    single: tuple[Path, dict[str, TensorValue]],
) -> None:
    path, tensors = single
    with open_gguf(path, verifier=VERIFIER) as handle:
        assert handle.path == handle.paths[0] == f"/proc/self/fd/{handle.fds[0]}"
        assert read_tensors(handle.path) == expected(tensors)
        report = handle.report
        assert report.verified and report.files == ["model.gguf"]
        assert sorted(report.tensors) == sorted(tensors)
        assert report.bytes_verified == path.stat().st_size
        assert report.signer is not None and report.signer.key_hint == keys.key_hint(
            KEY.public_key()
        )
        assert handle.llama_path == handle.path
        handle.check_unchanged()
        fd = handle.fds[0]
    assert handle.closed
    with pytest.raises(OSError):
        os.fstat(fd)


def test_folder_signature_opens_the_file_or_the_folder(tmp_path: Path) -> None:
    tensors = model_tensors(4)
    write_gguf(tmp_path / "model.gguf", tensors=tensors)
    sign(tmp_path)
    for target in (tmp_path, tmp_path / "model.gguf"):
        with open_gguf(target, verifier=VERIFIER) as handle:
            assert handle.names == ["model.gguf"]
            assert read_tensors(handle.path) == expected(tensors)


def test_tampered_tensor_is_refused_and_named(single: tuple[Path, dict[str, TensorValue]]) -> None:
    path, _ = single
    flip_byte(path, 3, tensor="blk.0.ffn_down.weight")
    exc = failing(path)
    assert exc.code == "TENSOR_MODIFIED"
    assert "blk.0.ffn_down.weight" in exc.message
    (t,) = [p for p in exc.findings if p.code == "TENSOR_MODIFIED"]
    assert (t.file, t.tensor) == ("model.gguf", "blk.0.ffn_down.weight")
    assert t.expected and t.actual and t.expected != t.actual
    assert {p.code for p in exc.findings} == {"FILE_MODIFIED", "TENSOR_MODIFIED"}


def test_trailing_bytes_are_refused(single: tuple[Path, dict[str, TensorValue]]) -> None:
    path, _ = single
    with open(path, "ab") as fh:
        fh.write(b"\0" * 32)
    exc = failing(path)
    assert exc.code == "FILE_SIZE_MISMATCH"  # refused unread
    assert "were signed" in exc.findings[0].message


def test_split_set_is_verified_from_any_member(
    split: tuple[Path, list[dict[str, TensorValue]]],
) -> None:
    folder, parts = split
    for target in (folder / SPLIT[1], folder):
        with open_gguf(target, verifier=VERIFIER) as handle:
            assert handle.names == SPLIT and len(handle.paths) == 3
            assert handle.report.files == SPLIT
            for p, tensors in zip(handle.paths, parts, strict=True):
                assert read_tensors(p) == expected(tensors)


def test_split_set_llama_path_links_every_member(
    split: tuple[Path, list[dict[str, TensorValue]]],
) -> None:
    """llama.cpp finds members 2..N by name beside member 1: give it named links to the fds."""
    folder, _ = split
    with open_gguf(folder / SPLIT[0], verifier=VERIFIER) as handle:
        first = Path(handle.llama_path)
        assert first.name == SPLIT[0]
        for name, fd in zip(SPLIT, handle.fds, strict=True):
            link = first.parent / name
            assert os.readlink(link) == f"/proc/self/fd/{fd}"
            assert os.stat(link).st_ino == os.fstat(fd).st_ino
    assert not first.parent.exists()


def test_split_member_missing(split: tuple[Path, list[dict[str, TensorValue]]]) -> None:
    folder, _ = split
    (folder / SPLIT[2]).unlink()
    exc = failing(folder / SPLIT[0])
    assert exc.code == "FILE_MISSING"
    assert [p.file for p in exc.findings] == [SPLIT[2]]


def test_no_member_left_is_nothing_to_load_under_a_warn_policy(
    split: tuple[Path, list[dict[str, TensorValue]]], tmp_path: Path
) -> None:
    """The missing members only warn; then there is nothing to load: ``NOTHING_TO_LOAD``.

    Split meaning: this input error was ``FILE_MISSING`` too, the code of a
    signed file that is missing (a verification failure).
    """
    folder, _ = split
    for name in SPLIT:
        (folder / name).unlink()
    with pytest.warns(ModelsignWarning) as warned, pytest.raises(InputError) as e:
        open_gguf(folder, policy=write_policy(tmp_path, "warn"))
    assert e.value.code == "NOTHING_TO_LOAD"
    assert any("FILE_MISSING" in str(w.message) for w in warned)


def test_split_member_tampered(split: tuple[Path, list[dict[str, TensorValue]]]) -> None:
    folder, _ = split
    flip_byte(folder / SPLIT[2], 3, tensor="blk.2.attn_q.weight")
    exc = failing(folder / SPLIT[0])
    assert exc.code == "TENSOR_MODIFIED"
    (t,) = [p for p in exc.findings if p.code == "TENSOR_MODIFIED"]
    assert (t.file, t.tensor) == (SPLIT[2], "blk.2.attn_q.weight")


def test_split_unsigned_extra_member_is_refused(
    split: tuple[Path, list[dict[str, TensorValue]]], tmp_path: Path
) -> None:
    folder, _ = split
    write_gguf(folder / "x-00004-of-00003.gguf", tensors=model_tensors(9))
    # A policy without a coverage rule refuses unsigned files beside the model, as verify does.
    exc = failing(folder / SPLIT[0], verifier=None, policy=write_policy(tmp_path, "enforce"))
    assert exc.code == "POLICY_FAILED"
    extra = [p.file for p in exc.findings if p.code == "FILE_EXTRA"]
    assert extra == ["x-00004-of-00003.gguf"]


def test_split_member_signed_alone_is_refused(tmp_path: Path) -> None:
    """Members signed one by one could be mixed across releases: the set needs one signature."""
    for i, name in enumerate(SPLIT):
        sign(write_gguf(tmp_path / name, tensors=model_tensors(i)))
    exc = failing(tmp_path / SPLIT[0])
    assert exc.code == "FILE_UNSIGNED"
    assert [p.file for p in exc.findings] == SPLIT[1:]


def test_swap_after_open_keeps_the_verified_bytes(
    single: tuple[Path, dict[str, TensorValue]],
) -> None:
    path, tensors = single
    other = write_gguf(path.parent / "other.gguf", tensors=model_tensors(7))
    with open_gguf(path, verifier=VERIFIER) as handle:
        os.replace(other, path)
        assert read_tensors(str(path)) == expected(model_tensors(7))
        assert read_tensors(handle.path) == expected(tensors)
        with pytest.raises(VerificationError) as e:
            handle.check_unchanged()
        assert e.value.code == "FILE_CHANGED"
        assert "replaced" in e.value.findings[0].message


def test_rewrite_in_place_after_open_is_detected(
    single: tuple[Path, dict[str, TensorValue]],
) -> None:
    path, _ = single
    # An old mtime, so the rewrite's is different whatever the clock's granularity.
    os.utime(path, ns=(10**18, 10**18))
    with open_gguf(path, verifier=VERIFIER) as handle:
        handle.check_unchanged()
        flip_byte(path, 3, tensor="token_embd.weight")
        with pytest.raises(VerificationError) as e:
            handle.check_unchanged()
        assert e.value.code == "FILE_CHANGED"
        assert "modified" in e.value.findings[0].message


def write_policy(folder: Path, mode: str) -> Policy:
    pem = folder / "signer.pub.pem"
    pem.write_bytes(keys.public_key_pem(KEY.public_key()))
    policy = folder / f"{mode}.yaml"
    policy.write_text(f"version: 1\nmode: {mode}\nsigners:\n  keys:\n    - file: {pem.name}\n")
    return Policy.load(policy)


def test_warn_policy_lets_a_tampered_file_through(
    single: tuple[Path, dict[str, TensorValue]], tmp_path: Path
) -> None:
    path, _ = single
    flip_byte(path, 3, tensor="blk.0.attn_q.weight")
    with (
        pytest.warns(ModelsignWarning, match="blk.0.attn_q.weight"),
        open_gguf(path, policy=write_policy(tmp_path, "warn")) as handle,
    ):
        assert handle.report.verified is False
        assert handle.report.files == []
        assert len(read_tensors(handle.path)) == 3
    exc = failing(path, verifier=None, policy=write_policy(tmp_path, "enforce"))
    assert exc.code == "TENSOR_MODIFIED"


def test_folder_with_two_models_is_ambiguous(tmp_path: Path) -> None:
    write_gguf(tmp_path / "a.gguf", tensors=model_tensors(1))
    write_gguf(tmp_path / "b.gguf", tensors=model_tensors(2))
    sign(tmp_path)
    with pytest.raises(InputError) as e:
        open_gguf(tmp_path, verifier=VERIFIER)
    assert e.value.code == "AMBIGUOUS_MODEL"
    with open_gguf(tmp_path / "b.gguf", verifier=VERIFIER) as handle:
        assert handle.names == ["b.gguf"]


def test_without_fd_paths_the_platform_is_refused(
    single: tuple[Path, dict[str, TensorValue]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(gguf_load, "_FD_DIRS", ("/nonexistent/fd",))
    with pytest.raises(InputError) as e:
        open_gguf(single[0], verifier=VERIFIER)
    assert e.value.code == "UNSUPPORTED_PLATFORM"


def test_closed_handle_refuses_checks(single: tuple[Path, dict[str, TensorValue]]) -> None:
    handle: VerifiedGGUF = open_gguf(single[0], verifier=VERIFIER)
    handle.close()
    handle.close()
    with pytest.raises(InputError):
        handle.check_unchanged()


def test_file_made_a_symlink_after_listing_is_refused(
    single: tuple[Path, dict[str, TensorValue]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The path turns into a symlink between the signature check and the open: O_NOFOLLOW."""
    path, _ = single
    real_open = gguf_load.open_context  # type: ignore[attr-defined]

    def swap_after_listing(*args: object, **kw: object) -> object:
        ctx = real_open(*args, **kw)  # type: ignore[arg-type]
        decoy = path.with_name("decoy.gguf")
        os.replace(path, decoy)
        path.symlink_to(decoy)
        return ctx

    monkeypatch.setattr(gguf_load, "open_context", swap_after_listing)
    exc = failing(path)
    assert exc.code == "FILE_CHANGED"


needs_memfd = pytest.mark.skipif(
    not hasattr(os, "memfd_create"), reason="sealed copies need memfd_create (Linux)"
)


@needs_memfd
def test_sealed_copy_serves_the_verified_bytes_after_a_rewrite(
    single: tuple[Path, dict[str, TensorValue]],
) -> None:
    """``memory="copy"``: an in-place rewrite of the file cannot reach the loader at all."""
    path, tensors = single
    with open_gguf(path, verifier=VERIFIER, memory="copy") as handle:
        flip_byte(path, 3, tensor="token_embd.weight")  # same inode, after the check
        with open(path, "r+b") as fh:
            fh.truncate(10)
        assert read_tensors(handle.path) == expected(tensors)
        handle.check_unchanged()  # nothing the handle serves can have changed
        assert handle.report.verified and handle.report.files == ["model.gguf"]


@needs_memfd
def test_sealed_copy_refuses_every_write(single: tuple[Path, dict[str, TensorValue]]) -> None:
    import fcntl
    import mmap

    path, _ = single
    with open_gguf(path, verifier=VERIFIER, memory="copy") as handle:
        fd = handle.fds[0]
        seals = fcntl.fcntl(fd, fcntl.F_GET_SEALS)
        want = fcntl.F_SEAL_WRITE | fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_SEAL
        assert seals & want == want
        size = os.fstat(fd).st_size
        reopened = os.open(handle.path, os.O_RDWR)  # what a loader (or anyone) could get
        try:
            for target in (fd, reopened):
                with pytest.raises(PermissionError):
                    os.pwrite(target, b"x", 0)
                with pytest.raises(PermissionError):
                    os.ftruncate(target, 0)
                with pytest.raises(PermissionError):
                    os.ftruncate(target, size + 1)
                with pytest.raises(PermissionError):
                    mmap.mmap(target, size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        finally:
            os.close(reopened)
        assert os.fstat(fd).st_size == size


@needs_memfd
def test_sealed_copy_of_a_split_set(split: tuple[Path, list[dict[str, TensorValue]]]) -> None:
    folder, parts = split
    with open_gguf(folder, verifier=VERIFIER, memory="copy") as handle:
        for name in SPLIT:
            flip_byte(folder / name, 3, tensor="token_embd.weight")
        for p, tensors in zip(handle.paths, parts, strict=True):
            assert read_tensors(p) == expected(tensors)
        linked = os.path.dirname(handle.llama_path)
        assert read_tensors(os.path.join(linked, SPLIT[2])) == expected(parts[2])


def test_sealed_copy_unavailable_is_a_clear_error(
    single: tuple[Path, dict[str, TensorValue]], monkeypatch: pytest.MonkeyPatch
) -> None:
    path, _ = single

    def no_memfd(name: str, flags: int = 0) -> int:
        raise OSError(38, "Function not implemented")

    monkeypatch.setattr(os, "memfd_create", no_memfd, raising=False)
    before = open_fds()
    with pytest.raises(InputError) as e:
        open_gguf(path, verifier=VERIFIER, memory="copy")
    assert e.value.code == "SEALING_UNAVAILABLE" and "memfd" in e.value.message
    assert open_fds() == before
    monkeypatch.delattr(os, "memfd_create")
    with pytest.raises(InputError) as e:
        open_gguf(path, verifier=VERIFIER, memory="copy")
    assert e.value.code == "SEALING_UNAVAILABLE"
    with pytest.raises(InputError) as e:
        open_gguf(path, verifier=VERIFIER, memory="mapped")  # type: ignore[arg-type]
    assert e.value.code == "USAGE" and "file, copy" in e.value.message
