"""Verified-loading benchmark: ``load_safetensors`` vs hashing alone vs load-then-hash.

Uses the single-file model of ``hash_bench.py`` (built there if missing, same
size and folder ``single-<gb>gb``), signs it once with BLAKE3 and once with
SHA-256 tensor digests, warms the page cache, then times, best of ``--repeat``:

- (a) the floor: one all-core BLAKE3 and SHA-256 pass over the same bytes;
- (b) what a careful user does today: ``safetensors.torch.load_file`` plus a
  separate SHA-256 pass over the file (a file digest is one sequential stream);
- (c) ``load_safetensors(..., framework="torch")``: read once, every header,
  tensor and padding digest checked from that buffer, tensors built over it;
  ``memory="copy"`` (private memory) and ``memory="mapped"`` (the page cache
  mapped under a read lease, the mapping itself hashed);
- (d) a partial load of 10% of the tensors (a tensor-parallel rank's slice).

Prints times, GB/s and the ratios the targets are stated in: a verified load
within 1.1x the all-core pass of the same hash, a 10% partial load within
0.15x a full verified load, and the speed-up over (b). Example:

    python benchmarks/load_bench.py --gb 2

``--gguf`` measures ``open_gguf`` instead, on a GGUF file of ``--gb`` GB:
``memory="file"`` (the file's descriptor) against ``memory="copy"`` (a sealed
memfd copy, hashed and handed out), each followed by one read of every byte
through ``handle.path`` as a loader with ``use_mmap=False`` does:

    python benchmarks/load_bench.py --gguf --gb 1
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import struct
import sys
import time
from pathlib import Path
from typing import Any

import blake3

sys.path.insert(0, str(Path(__file__).resolve().parent))
from hash_bench import GB, all_core, best, warm, write_safetensors


def sha256_file(path: Path) -> str:
    """The file's SHA-256, streamed through a reused 1 MiB buffer (as sha256sum does)."""
    h = hashlib.sha256()
    buf = bytearray(1 << 20)
    view = memoryview(buf)
    with open(path, "rb", buffering=0) as fh:
        while n := fh.readinto(buf):
            h.update(view[:n])
    return h.hexdigest()


def load_then_hash(path: Path, pinned: str) -> object:
    from safetensors.torch import load_file

    tensors = load_file(str(path))
    if sha256_file(path) != pinned:
        raise SystemExit("the pinned SHA-256 does not match")
    return tensors


def tensor_names(path: Path) -> list[str]:
    with open(path, "rb") as fh:
        (n,) = struct.unpack("<Q", fh.read(8))
        header = json.loads(fh.read(n))
    return [k for k in header if k != "__metadata__"]


def write_gguf(path: Path, nbytes: int) -> None:
    """A GGUF file of about ``nbytes`` of F32 tensors (64 MiB each), built once."""
    if path.exists() and abs(path.stat().st_size - nbytes) < (128 << 20):
        return
    import gguf
    import numpy as np

    rng = np.random.default_rng(7)
    writer = gguf.GGUFWriter(str(path), "llama")
    per = (64 << 20) // 4
    for i in range(max(1, nbytes // (per * 4))):
        writer.add_tensor(f"blk.{i}.ffn_up.weight", rng.standard_normal(per, dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def read_all(path: str) -> int:
    """Every byte through ``path``, as a loader without mmap reads it."""
    total = 0
    buf = bytearray(16 << 20)
    with open(path, "rb", buffering=0) as fh:
        while n := fh.readinto(buf):
            total += n
    return total


def gguf_section(args: argparse.Namespace) -> None:
    from modelsign._internal.signature import keys
    from modelsign._internal.signature.signers import KeySigner
    from modelsign._internal.signature.verifiers import KeyVerifier
    from modelsign.load import open_gguf
    from modelsign.sign import sign

    root = args.workdir / f"gguf-{args.gb:g}gb"
    root.mkdir(parents=True, exist_ok=True)
    path = root / "model.gguf"
    write_gguf(path, int(args.gb * GB))
    key = keys.generate_key("ec-p256")
    sig = args.workdir / "sigs" / f"load-{root.name}.sig"
    sig.parent.mkdir(exist_ok=True)
    sign(path, signer=KeySigner(key), signature=sig, force=True, env={})
    verifier = KeyVerifier(key.public_key())
    size = path.stat().st_size
    warm([path])

    def opened(memory: str, read: bool) -> None:
        with open_gguf(path, signature=sig, verifier=verifier, memory=memory) as h:  # type: ignore[arg-type]
            if read:
                assert read_all(h.path) == size

    r = args.repeat
    rows = {
        "open_gguf, memory='file'": best(lambda: opened("file", False), r),
        "open_gguf, memory='copy'": best(lambda: opened("copy", False), r),
        "  + read all, 'file'": best(lambda: opened("file", True), r),
        "  + read all, 'copy'": best(lambda: opened("copy", True), r),
    }
    print(f"\ncores: {os.cpu_count()}; repeat: best of {r}; GGUF {size / GB:.2f} GB")
    for name, t in rows.items():
        print(f"  {name:30s} {t:7.3f} s  {size / GB / t:6.2f} GB/s")
    ratio = rows["open_gguf, memory='copy'"] / rows["open_gguf, memory='file'"]
    print(f"  sealed copy vs file: {ratio:.2f}x the time, +{size / GB:.2f} GB of shared memory")


def sign_both(root: Path, sigs: Path, key: Any) -> dict[str, Path]:
    """Signatures of ``root`` with BLAKE3 and with SHA-256 tensor digests, by hash."""
    from modelsign._internal.signature.signers import KeySigner
    from modelsign.sign import sign

    sigs.mkdir(exist_ok=True)
    ours: dict[str, Path] = {}
    for th in ("blake3", "sha256"):
        sig = sigs / f"load-{root.name}-{th}.sig"
        t = time.perf_counter()
        sign(root, signer=KeySigner(key), signature=sig, tensor_hash=th, force=True, env={})
        print(f"signed with {th} tensor digests in {time.perf_counter() - t:.1f} s")
        ours[th] = sig
    return ours


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--workdir", type=Path, default=Path(__file__).parent / "out")
    ap.add_argument("--gb", type=float, default=2.0)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--fraction", type=float, default=0.1, help="share of tensors, partial load")
    ap.add_argument("--gguf", action="store_true", help="measure open_gguf's memory modes")
    args = ap.parse_args()
    if args.gguf:
        gguf_section(args)
        return

    from safetensors.torch import load_file

    from modelsign._internal.signature import keys
    from modelsign._internal.signature.verifiers import KeyVerifier
    from modelsign.load import load_safetensors

    root = args.workdir / f"single-{args.gb:g}gb"
    root.mkdir(parents=True, exist_ok=True)
    path = root / "model.safetensors"
    write_safetensors(path, int(args.gb * GB), seed=99 << 32)
    stray = sorted(p.name for p in root.iterdir() if p != path)
    if stray:
        raise SystemExit(f"{root} holds files other than model.safetensors: {stray}")
    size = path.stat().st_size
    files = [path]

    key = keys.generate_key("ec-p256")
    verifier = KeyVerifier(key.public_key())
    warm(files)
    ours = sign_both(root, args.workdir / "sigs", key)

    names = tensor_names(path)
    count = max(1, round(len(names) * args.fraction))
    step = len(names) / count
    part = [names[int(i * step)] for i in range(count)]
    check = load_safetensors(
        root, signature=ours["blake3"], verifier=verifier, framework="torch", tensors=part
    )
    part_bytes = check.report.bytes_verified
    del check
    pinned = sha256_file(path)

    def verified(th: str, tensors: list[str] | None = None, memory: str = "copy") -> object:
        out = load_safetensors(
            root,
            signature=ours[th],
            verifier=verifier,
            framework="torch",
            tensors=tensors,
            memory=memory,  # type: ignore[arg-type]
        )
        assert out.report.verified
        assert out.report.mapped == ([] if memory == "copy" else [path.name])
        return out  # freed by best() after the clock stops, as a runtime keeps it

    r = args.repeat
    rows = {
        "(a) blake3 all-core pass": best(lambda: all_core(files, blake3.blake3), r),
        "(a) sha256 all-core pass": best(lambda: all_core(files, hashlib.sha256), r),
        "(b) load_file + sha256 file": best(lambda: load_then_hash(path, pinned), r),
        "    load_file alone": best(lambda: load_file(str(path)), r),
        "(c) verified load, blake3": best(lambda: verified("blake3"), r),
        "(c) verified load, sha256": best(lambda: verified("sha256"), r),
        "(c) mapped verified, blake3": best(lambda: verified("blake3", memory="mapped"), r),
        "(c) mapped verified, sha256": best(lambda: verified("sha256", memory="mapped"), r),
        "(d) partial load, blake3": best(lambda: verified("blake3", part), r),
        "(d) partial load, sha256": best(lambda: verified("sha256", part), r),
        "(d) partial mapped, blake3": best(lambda: verified("blake3", part, "mapped"), r),
        "(d) partial mapped, sha256": best(lambda: verified("sha256", part, "mapped"), r),
    }

    print(f"\ncores: {os.cpu_count()}; repeat: best of {r}")
    print(f"single-file model: {len(names)} tensors, {size / GB:.2f} GB")
    print(
        f"partial: {len(part)} of {len(names)} tensors, "
        f"{part_bytes / GB:.3f} GB ({part_bytes / size:.1%} of the file)"
    )
    for name, t in rows.items():
        gbps = (part_bytes if name.startswith("(d)") else size) / GB / t
        print(f"  {name:30s} {t:7.3f} s  {gbps:6.2f} GB/s")
    b3, s2 = rows["(c) verified load, blake3"], rows["(c) verified load, sha256"]
    careful = rows["(b) load_file + sha256 file"]
    fb3, fs2 = rows["(a) blake3 all-core pass"], rows["(a) sha256 all-core pass"]
    mb3, ms2 = rows["(c) mapped verified, blake3"], rows["(c) mapped verified, sha256"]
    print(
        f"  verified load vs all-core pass of the same hash (time, target <= 1.1):\n"
        f"    memory='mapped': blake3 {mb3 / fb3:.2f}x, sha256 {ms2 / fs2:.2f}x\n"
        f"    memory='copy':   blake3 {b3 / fb3:.2f}x, sha256 {s2 / fs2:.2f}x"
        "  (a private copy: zero-fill + copy of every byte)"
    )
    print(
        f"  partial {args.fraction:.0%} vs full load, same memory (time, target <= 0.15):\n"
        f"    memory='mapped': blake3 {rows['(d) partial mapped, blake3'] / mb3:.2f}x, "
        f"sha256 {rows['(d) partial mapped, sha256'] / ms2:.2f}x\n"
        f"    memory='copy':   blake3 {rows['(d) partial load, blake3'] / b3:.2f}x, "
        f"sha256 {rows['(d) partial load, sha256'] / s2:.2f}x"
    )
    print("  (load_file only maps the file: its tensors are read on first use, from a path")
    print("   that can change after the SHA-256 pass)")
    print(
        f"  speed-up vs load_file + sha256 file: "
        f"blake3 {careful / b3:.2f}x, sha256 {careful / s2:.2f}x"
    )


if __name__ == "__main__":
    main()
