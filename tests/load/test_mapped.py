"""``memory="mapped"``: zero-copy verified loads whose bytes still never change.

The page cache is mapped under a read lease. The tests write to the file the
ways an attacker (or a careless job) would once the tensors are out, and check
the tensors keep the verified bytes, the writer is not kept waiting for the
kernel's 45 s, and every situation where the lease cannot guarantee that is
refused (``"mapped"``) or copied (``"auto"``) with the reason.
"""

from __future__ import annotations

import gc
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import modelsign.load._mapped as mapped
from modelsign._internal.signature import keys
from modelsign.errors import InputError, VerificationError
from modelsign.load import ModelsignWarning, load_safetensors
from tests.helpers.signing import KeyPair, flip_byte

WEIGHTS = "model.safetensors"
TENSOR = "model.layers.1.mlp.up_proj.weight"

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="mapped loading needs Linux file leases"
)


@pytest.fixture(autouse=True)
def map_small_files(monkeypatch: pytest.MonkeyPatch) -> None:
    """The example model is 230 KB, below the size worth mapping."""
    monkeypatch.setattr(mapped, "MIN_MAPPED", 1)


@pytest.fixture
def signed(signed: Path) -> Path:
    """The signed example, where a lease can guard it."""
    if mapped.filesystem_of(os.stat(signed).st_dev) not in mapped.LEASE_SAFE_FILESYSTEMS:
        pytest.skip("the test folder is not on a local filesystem that supports leases")
    return signed


def load(model: Path, verifier: Any, **kw: Any) -> Any:
    return load_safetensors(model, verifier=verifier, memory="mapped", **kw)


def lease_held(path: Path) -> bool:
    """Whether someone holds a lease: a non-blocking open for writing is then refused.

    (Refused opens start a lease break, so the keeper copies the region out.)
    """
    try:
        fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
    except BlockingIOError:
        return True
    os.close(fd)
    return False


def copies(tensors: dict[str, Any]) -> dict[str, bytes]:
    return {k: np.asarray(v).tobytes() for k, v in tensors.items()}


def wait_for(check: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.01)


def test_mapped_load_equals_a_copied_load(signed: Path, verifier: Any) -> None:
    copied = load_safetensors(signed, verifier=verifier)
    out = load(signed, verifier)
    assert out.report.mapped == [WEIGHTS]
    assert out.report.verified and out.report.tensors == copied.report.tensors
    assert copies(out) == copies(copied)
    assert all(v.flags.writeable for v in out.values())  # private, copy-on-write
    assert copied.report.mapped == []


def test_mapped_torch_tensors(signed: Path, verifier: Any) -> None:
    import torch

    out = load(signed, verifier, framework="torch")
    ref = load_safetensors(signed, verifier=verifier, framework="torch")
    assert out.keys() == ref.keys()
    assert all(torch.equal(out[k], ref[k]) for k in out)


def test_a_tampered_file_is_refused_naming_the_tensor(signed: Path, verifier: Any) -> None:
    flip_byte(signed / WEIGHTS, 3, tensor=TENSOR)
    with pytest.raises(VerificationError) as info:
        load(signed, verifier)
    assert [(p.code, p.file, p.tensor) for p in info.value.findings][-1] == (
        "TENSOR_MODIFIED",
        WEIGHTS,
        TENSOR,
    )


def _rewrite_in_child(path: Path) -> float:
    """Rewrite every byte of the file from another process; return how long it took."""
    code = textwrap.dedent(
        f"""
        import time
        t = time.monotonic()
        with open({str(path)!r}, "r+b") as fh:
            size = fh.seek(0, 2)
            fh.seek(0)
            fh.write(b"\\xee" * size)
        print(time.monotonic() - t)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    return float(done.stdout)


def test_a_rewrite_after_the_load_does_not_reach_the_tensors(signed: Path, verifier: Any) -> None:
    out = load(signed, verifier)
    before = copies(out)
    assert lease_held(signed / WEIGHTS) is True  # this starts the copy-out already
    took = _rewrite_in_child(signed / WEIGHTS)
    assert (signed / WEIGHTS).read_bytes()[:16] == b"\xee" * 16
    assert copies(out) == before
    assert took < 10  # held for the copy only, not the kernel's 45 s lease-break time


def test_a_writer_is_held_until_the_bytes_are_copied_out(signed: Path, verifier: Any) -> None:
    out = load(signed, verifier)
    before = copies(out)
    took = _rewrite_in_child(signed / WEIGHTS)
    assert copies(out) == before
    assert took < 10
    # Copied out, the region no longer holds the file.
    assert not lease_held(signed / WEIGHTS)
    assert mapped.is_guarded(out[TENSOR])


@pytest.mark.slow
def test_truncation_and_replacement_after_the_load(
    signed: Path, keypair: KeyPair, tmp_path: Path
) -> None:
    """A truncated file mapping raises SIGBUS on access: run where that cannot kill pytest."""
    public = tmp_path / "key.pub"
    public.write_bytes(keys.public_key_pem(keypair.public))
    code = textwrap.dedent(
        f"""
        import os, subprocess, sys
        import modelsign
        import modelsign.load._mapped as mapped
        from modelsign._internal.signature import keys
        mapped.MIN_MAPPED = 1
        model = {str(signed)!r}
        verifier = modelsign.KeyVerifier(keys.load_public_key({str(public)!r}))
        out = modelsign.load.load_safetensors(model, verifier=verifier, memory="mapped")
        assert out.report.mapped == ["model.safetensors"]
        before = {{k: v.tobytes() for k, v in out.items()}}
        path = os.path.join(model, "model.safetensors")
        truncate = f"import os; os.truncate({{path!r}}, 0)"
        subprocess.run([sys.executable, "-c", truncate], check=True, timeout=60)
        assert os.path.getsize(path) == 0
        os.replace(os.path.join(model, "config.json"), path)
        assert {{k: v.tobytes() for k, v in out.items()}} == before
        print("intact")
        """
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "intact"


@pytest.mark.slow
def test_the_lease_lives_as_long_as_any_tensor(signed: Path, verifier: Any) -> None:
    import torch

    out = load(signed, verifier, framework="torch")
    keep = out[TENSOR]
    expected = keep.clone()
    del out
    gc.collect()
    assert lease_held(signed / WEIGHTS)  # also starts the copy-out
    wait_for(lambda: not lease_held(signed / WEIGHTS))
    assert torch.equal(keep, expected)
    del keep
    gc.collect()
    assert not lease_held(signed / WEIGHTS)


def test_dropping_the_tensors_releases_the_lease(signed: Path, verifier: Any) -> None:
    out = load(signed, verifier)
    region_count = len(mapped._keeper().regions)
    assert region_count >= 1
    del out
    gc.collect()
    assert not lease_held(signed / WEIGHTS)


def test_file_open_for_writing_elsewhere(signed: Path, verifier: Any) -> None:
    writer = os.open(signed / WEIGHTS, os.O_RDWR)
    try:
        with pytest.raises(InputError) as info:
            load(signed, verifier)
        assert info.value.code == "MAPPING_UNAVAILABLE"
        assert "open for writing" in info.value.message and WEIGHTS in info.value.message
        out = load_safetensors(signed, verifier=verifier, memory="auto")
        assert out.report.mapped == []
        assert "open for writing" in out.report.not_mapped[WEIGHTS]
        assert copies(out) == copies(load_safetensors(signed, verifier=verifier))
    finally:
        os.close(writer)


def test_a_filesystem_without_safe_leases(
    signed: Path, verifier: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(mapped, "filesystem_of", lambda dev: "nfs4")
    with pytest.raises(InputError) as info:
        load(signed, verifier)
    assert info.value.code == "MAPPING_UNAVAILABLE" and "nfs4 filesystem" in info.value.message
    out = load_safetensors(signed, verifier=verifier, memory="auto")
    assert out.report.mapped == [] and "nfs4" in out.report.not_mapped[WEIGHTS]
    monkeypatch.setattr(mapped, "filesystem_of", lambda dev: None)  # not in mountinfo
    with pytest.raises(InputError, match="an unknown filesystem"):
        load(signed, verifier)


def test_filesystem_of_this_folder(tmp_path: Path) -> None:
    fs = mapped.filesystem_of(os.stat(tmp_path).st_dev)
    with open("/proc/self/mountinfo", encoding="utf-8") as fh:
        types = {line.split(" - ", 1)[1].split()[0] for line in fh if " - " in line}
    assert fs in types
    assert mapped.filesystem_of(os.makedev(4095, 4095)) is None


def test_an_application_sigurg_handler(signed: Path, verifier: Any) -> None:
    previous = signal.signal(signal.SIGURG, lambda *a: None)
    try:
        with pytest.raises(InputError) as info:
            load(signed, verifier)
        assert "SIGURG" in info.value.message
    finally:
        signal.signal(signal.SIGURG, previous)


def test_small_files_are_copied(
    signed: Path, verifier: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(mapped, "MIN_MAPPED", 1 << 30)
    out = load(signed, verifier)
    assert out.report.mapped == [] and out.report.not_mapped == {}


def test_unknown_memory_mode(signed: Path, verifier: Any) -> None:
    with pytest.raises(InputError) as info:
        load_safetensors(signed, verifier=verifier, memory="shared")  # type: ignore[arg-type]
    assert info.value.code == "USAGE"


def test_partial_loads_map_and_check_only_what_they_load(signed: Path, verifier: Any) -> None:
    other = "model.layers.0.mlp.up_proj.weight"
    flip_byte(signed / WEIGHTS, 5, tensor=other)  # not requested: neither read nor judged
    out = load(signed, verifier, tensors=[TENSOR])
    assert out.report.partial and out.report.mapped == [WEIGHTS] and list(out) == [TENSOR]
    assert out.report.tensors == [TENSOR]
    ref = load_safetensors(signed, verifier=verifier, tensors=[TENSOR])
    assert copies(out) == copies(ref)
    before = copies(out)
    _rewrite_in_child(signed / WEIGHTS)
    assert copies(out) == before
    with pytest.raises(VerificationError) as info:
        load(signed, verifier, tensors=[TENSOR])
    assert {(p.code, p.tensor) for p in info.value.findings} >= {("TENSOR_MODIFIED", TENSOR)}


def test_a_failed_copy_out_warns_and_marks_the_weights_unguarded(
    signed: Path, verifier: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_memory(addr: int, size: int) -> None:
        raise OSError(12, "Cannot allocate memory")

    monkeypatch.setattr(mapped, "_copy_in_place", no_memory)
    out = load(signed, verifier)
    assert mapped.is_guarded(out[TENSOR])
    with pytest.warns(ModelsignWarning, match="could not be copied out"):
        assert lease_held(signed / WEIGHTS)
        wait_for(lambda: not mapped.is_guarded(out[TENSOR]))


def _all_guarded() -> bool:
    keeper = mapped._keeper()
    with keeper.lock:
        return all(r.guarded for r in keeper.regions.values())


def test_a_starved_keeper_warns(
    signed: Path, verifier: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    keeper = mapped._keeper()
    monkeypatch.setattr(keeper, "break_time", 0.0)
    with pytest.warns(ModelsignWarning, match="lease-break time"):
        out = load(signed, verifier)
        wait_for(lambda: not _all_guarded())
    del out


def test_a_forked_child_keeps_the_verified_bytes(signed: Path, verifier: Any) -> None:
    """A forked child (a preloading server's worker) shares the parent's lease, which the
    parent lets go once its own pages are copied: the child must hold its own."""
    import warnings

    out = load(signed, verifier)
    before = copies(out)
    ready_r, ready_w = os.pipe()
    go_r, go_w = os.pipe()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # fork with threads (3.12+)
        pid = os.fork()
    if pid == 0:  # the child: report, wait for the parent's writer, then check
        status = 2
        try:
            os.write(ready_w, b"r")
            os.read(go_r, 1)
            status = 0 if copies(out) == before else 1
        finally:
            os._exit(status)
    os.close(ready_w)
    os.close(go_r)
    assert os.read(ready_r, 1) == b"r"
    took = _rewrite_in_child(signed / WEIGHTS)
    os.write(go_w, b"g")
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, "the child saw the rewritten bytes"
    assert copies(out) == before
    assert took < 10


@pytest.mark.slow
@pytest.mark.parametrize("refill", [False, True])
def test_an_open_with_o_trunc_for_reading_is_not_held_back_and_is_told(
    signed: Path, keypair: KeyPair, tmp_path: Path, refill: bool
) -> None:
    """``open(path, O_RDONLY | O_TRUNC)`` truncates without breaking a read lease.

    The kernel then takes the pages away (SIGBUS on access): no lease can stop
    it, so is_guarded must say False, and the bytes must never silently change,
    even when the file is then written back to its old size.
    """
    public = tmp_path / "key.pub"
    public.write_bytes(keys.public_key_pem(keypair.public))
    code = textwrap.dedent(
        f"""
        import os, subprocess, sys, time
        import modelsign
        import modelsign.load._mapped as mapped
        from modelsign._internal.signature import keys
        mapped.MIN_MAPPED = 1
        model = {str(signed)!r}
        verifier = modelsign.KeyVerifier(keys.load_public_key({str(public)!r}))
        out = modelsign.load.load_safetensors(model, verifier=verifier, memory="mapped")
        tensor = out[{TENSOR!r}]
        assert mapped.is_guarded(tensor)
        path = os.path.join(model, "model.safetensors")
        size = os.path.getsize(path)
        attack = f"import os; os.close(os.open({{path!r}}, os.O_RDONLY | os.O_TRUNC))"
        if {refill!r}:
            attack += f"; open({{path!r}}, 'r+b').write(b'X' * {{size}})"
        subprocess.run([sys.executable, "-c", attack], check=True, timeout=60)
        assert os.path.getsize(path) == (size if {refill!r} else 0)
        print("guarded" if mapped.is_guarded(tensor) else "unguarded", flush=True)
        tensor.tobytes()  # the kernel took the pages: SIGBUS, never other bytes
        print("read", flush=True)
        """
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.stdout.split() == ["unguarded"], done.stderr
    assert done.returncode in (-signal.SIGBUS, -signal.SIGSEGV)  # the pages, or poisoned


def test_a_file_others_can_write_is_not_mapped(signed: Path, verifier: Any) -> None:
    """Anyone with write permission can truncate past the lease: only the owner may write."""
    os.chmod(signed / WEIGHTS, 0o664)
    with pytest.raises(InputError) as info:
        load(signed, verifier)
    assert info.value.code == "MAPPING_UNAVAILABLE" and "writable by" in info.value.message
    out = load_safetensors(signed, verifier=verifier, memory="auto")
    assert out.report.mapped == [] and "writable by" in out.report.not_mapped[WEIGHTS]
