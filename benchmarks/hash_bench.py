"""Hashing benchmark: modelsign manifest vs model_signing vs the all-core bounds.

Builds (once, under ``--workdir``) a multi-file model (``--shards`` safetensors
shards) and a single-file model (one large safetensors file), warms the page
cache, then times on each, best of ``--repeat``:

- the all-core bounds: ``hashlib.sha256`` and BLAKE3 over the same bytes,
  split into ranges across all cores (no single digest is that fast; it is the
  ceiling for any tool on this machine);
- ``model_signing``'s hashing (package ``model-signing``, whole-file SHA-256);
- ``modelsign`` manifest with ``--no-tensors``, BLAKE3 and SHA-256 tensor digests;
- peak RSS of a ``modelsign manifest`` process (BLAKE3) on the single-file model.

Prints times, GB/s and the ratios the targets are stated in. Example:

    python benchmarks/hash_bench.py --multi-gb 2 --single-gb 2
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import struct
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import blake3

GB = 1_000_000_000
BLOCK = 64 << 20


def write_safetensors(path: Path, nbytes: int, seed: int) -> None:
    """A safetensors file of F16 matrices totalling about ``nbytes``, streamed to disk."""
    if path.exists() and path.stat().st_size >= nbytes:
        return
    rows = 4096
    per_tensor = 64 << 20
    count = max(1, nbytes // per_tensor)
    header: dict[str, object] = {"__metadata__": {"format": "pt"}}
    offset = 0
    for i in range(count):
        cols = per_tensor // 2 // rows
        size = rows * cols * 2
        header[f"model.layers.{i}.weight"] = {
            "dtype": "F16",
            "shape": [rows, cols],
            "data_offsets": [offset, offset + size],
        }
        offset += size
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    block = bytearray(os.urandom(BLOCK))
    tmp = path.with_suffix(".tmp")
    with open(tmp, "wb") as fh:
        fh.write(struct.pack("<Q", len(raw)) + raw)
        left = offset
        i = seed
        while left:
            block[:8] = struct.pack("<Q", i)  # no two blocks alike
            i += 1
            n = min(left, BLOCK)
            fh.write(block[:n])
            left -= n
    os.replace(tmp, path)


def warm(paths: list[Path]) -> None:
    for p in paths:
        with open(p, "rb", buffering=0) as fh:
            while fh.read(BLOCK):
                pass


def all_core(paths: list[Path], make: Callable[[], object], threads: int | None = None) -> None:
    """Hash the files' bytes in 64 MiB ranges on ``threads`` threads (all cores by default).

    Reads go through a reused 1 MiB buffer per range, as a real hasher would.
    With one thread this is the single-stream bound: what one file's SHA-256
    can reach, since a file digest is sequential.
    """
    jobs = [(p, off) for p in paths for off in range(0, p.stat().st_size, BLOCK)]

    def one(job: tuple[Path, int]) -> None:
        p, off = job
        buf = bytearray(1 << 20)
        view = memoryview(buf)
        h = make()
        with open(p, "rb", buffering=0) as fh:
            fh.seek(off)
            left = min(BLOCK, p.stat().st_size - off)
            while left:
                n = fh.readinto(view[: min(len(buf), left)]) or 0
                h.update(view[:n])  # type: ignore[attr-defined]
                left -= n

    with ThreadPoolExecutor(threads or os.cpu_count()) as pool:
        list(pool.map(one, jobs))


def best(fn: Callable[[], object], repeat: int) -> float:
    """The fastest of ``repeat`` runs; what ``fn`` returns is freed after the clock stops."""
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
        del out
    return min(times)


def model_signing_hash(root: Path) -> None:
    import model_signing.hashing as msh

    msh.Config().use_file_serialization(hashing_algorithm="sha256").hash(root)


def modelsign_hash(root: Path, tensor_hash: str | None) -> None:
    from modelsign.sign import build_manifest

    build_manifest(root, tensor_hash=tensor_hash, env={})  # type: ignore[arg-type]


def peak_rss_mb(root: Path) -> float:
    code = (
        "import sys; from modelsign.sign import build_manifest; build_manifest(sys.argv[1], env={})"
    )
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    subprocess.run([sys.executable, "-c", code, str(root)], check=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(before, after) / 1024


def measure(root: Path, repeat: int) -> tuple[int, int, dict[str, float]]:
    files = sorted(p for p in root.iterdir() if p.suffix == ".safetensors")
    warm(files)
    rows = {
        "sha256 all-core bound": best(lambda: all_core(files, hashlib.sha256), repeat),
        "sha256 one-stream bound": best(lambda: all_core(files, hashlib.sha256, 1), repeat),
        "blake3 all-core bound": best(lambda: all_core(files, blake3.blake3), repeat),
        "model_signing (sha256 files)": best(lambda: model_signing_hash(root), repeat),
        "modelsign --no-tensors": best(lambda: modelsign_hash(root, None), repeat),
        "modelsign blake3 tensors": best(lambda: modelsign_hash(root, "blake3"), repeat),
        "modelsign sha256 tensors": best(lambda: modelsign_hash(root, "sha256"), repeat),
    }
    return len(files), sum(p.stat().st_size for p in files), rows


def report(label: str, root: Path, repeat: int) -> None:
    count, total, rows = measure(root, repeat)
    print(f"\n{label} model: {count} file(s), {total / GB:.2f} GB")
    for name, t in rows.items():
        print(f"  {name:32s} {t:7.3f} s  {total / GB / t:6.2f} GB/s")
    ms = rows["model_signing (sha256 files)"]
    bound = rows["sha256 all-core bound"]
    nt = rows["modelsign --no-tensors"]
    b3 = rows["modelsign blake3 tensors"]
    s2 = rows["modelsign sha256 tensors"]
    limit = 1.15 if label == "single-file" else 1.6
    print(f"  --no-tensors vs sha256 all-core bound (speed): {bound / nt:.2f}x  (target >= 0.9)")
    one = rows["sha256 one-stream bound"]
    print(f"  --no-tensors vs sha256 one-stream bound (speed): {one / nt:.2f}x")
    print(f"  --no-tensors vs model_signing (time): {nt / ms:.2f}x  (target <= 1.0)")
    print(f"  blake3 tensors vs model_signing (time): {b3 / ms:.2f}x  (target <= {limit})")
    print(f"  sha256 tensors vs model_signing (time): {s2 / ms:.2f}x")


def model_args(description: str | None) -> argparse.ArgumentParser:
    """The command-line options every benchmark over these models takes."""
    ap = argparse.ArgumentParser(
        description=description, formatter_class=argparse.RawTextHelpFormatter
    )
    ap.add_argument("--workdir", type=Path, default=Path(__file__).parent / "out")
    ap.add_argument("--multi-gb", type=float, default=2.0)
    ap.add_argument("--shards", type=int, default=4)
    ap.add_argument("--single-gb", type=float, default=2.0)
    ap.add_argument("--repeat", type=int, default=3)
    return ap


def build_models(args: argparse.Namespace) -> tuple[Path, Path]:
    """The multi-file and single-file models (built once, reused by later runs)."""
    multi = args.workdir / f"multi-{args.multi_gb:g}gb"
    single = args.workdir / f"single-{args.single_gb:g}gb"
    multi.mkdir(parents=True, exist_ok=True)
    single.mkdir(parents=True, exist_ok=True)
    for i in range(args.shards):
        write_safetensors(
            multi / f"model-{i + 1:05d}-of-{args.shards:05d}.safetensors",
            int(args.multi_gb * GB / args.shards),
            seed=i << 32,
        )
    write_safetensors(single / "model.safetensors", int(args.single_gb * GB), seed=99 << 32)
    return multi, single


def main() -> None:
    args = model_args(__doc__).parse_args()
    multi, single = build_models(args)

    print(f"cores: {os.cpu_count()}; repeat: best of {args.repeat}")
    for label, root in (("multi-file", multi), ("single-file", single)):
        report(label, root, args.repeat)
    print(f"\npeak RSS, modelsign manifest of the single-file model: {peak_rss_mb(single):.0f} MB")


if __name__ == "__main__":
    main()
