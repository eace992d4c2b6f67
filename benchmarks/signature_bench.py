"""Signature reading benchmark: a 100k-tensor model's signature against its verification.

Builds one safetensors file with ``--tensors`` tensors (``--tensor-kib`` each),
signs it with an EC key, then times, best of ``--repeat``:

- reading the signature: the OMS bundle and its attestation from claims.jsonl,
  parsed strictly and bound (``load_signature``, no signature check), what
  every ``verify``, load, diff, sbom and inventory does first;
- the whole ``modelsign verify`` of the model (signatures, attestation, every tensor).

The target: reading is under 5% of the verification, and well under a second.
Real models with 100,000 tensors weigh hundreds of gigabytes (MoE models:
several MiB per tensor); ``--sparse`` writes the tensor bytes as a hole, so
such a size costs no disk space (zeros hash as fast as any other bytes, and a
hole reads like cached pages).

Examples:

    python benchmarks/signature_bench.py --tensors 100000 --tensor-kib 16
    python benchmarks/signature_bench.py --tensors 100000 --tensor-kib 1024 --sparse
"""

from __future__ import annotations

import argparse
import json
import struct
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from hash_bench import best


def build(path: Path, tensors: int, size: int, sparse: bool) -> None:
    """A safetensors file of ``tensors`` U8 tensors of ``size`` bytes (zeros when sparse)."""
    header = {
        f"model.layers.{i // 64}.experts.{i % 64}.weight": {
            "dtype": "U8",
            "shape": [size],
            "data_offsets": [i * size, (i + 1) * size],
        }
        for i in range(tensors)
    }
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    block = bytes(range(256)) * (size // 256 + 1)
    with open(path, "wb") as fh:
        fh.write(struct.pack("<Q", len(raw)) + raw)
        if sparse:
            fh.truncate(8 + len(raw) + tensors * size)
            return
        for i in range(tensors):
            fh.write(block[i % 256 : i % 256 + size])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--tensors", type=int, default=100_000)
    ap.add_argument("--tensor-kib", type=int, default=16)
    ap.add_argument("--sparse", action="store_true", help="tensor bytes as a hole (zeros)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--workdir", type=Path, default=Path("benchmarks/out/signature"))
    args = ap.parse_args()

    from modelsign._internal.signature import keys
    from modelsign._internal.signature.attestation import load_signature
    from modelsign._internal.signature.signers import KeySigner
    from modelsign._internal.signature.verifiers import KeyVerifier
    from modelsign.sign import sign
    from modelsign.verify import verify

    model = args.workdir / f"t{args.tensors}-{args.tensor_kib}k{'-sparse' if args.sparse else ''}"
    model.mkdir(parents=True, exist_ok=True)
    weights = model / "model.safetensors"
    size = args.tensor_kib * 1024
    if not weights.exists() or weights.stat().st_size < args.tensors * size:
        build(weights, args.tensors, size, args.sparse)
    key = keys.generate_key("ec-p256")
    res = sign(model, signer=KeySigner(key), force=True, env={})
    sig = Path(res.signature)
    claims = Path(res.claims)
    verifier = KeyVerifier(key.public_key())

    read = best(lambda: load_signature(str(sig)), args.repeat)
    full = best(lambda: verify(model, verifier=verifier), args.repeat)
    gib = weights.stat().st_size / 2**30
    print(
        f"model: {args.tensors} tensors, {gib:.2f} GiB; model.sig {sig.stat().st_size} B, "
        f"claims.jsonl {claims.stat().st_size / 2**20:.1f} MiB"
    )
    print(f"read the signature + attestation: {read:.3f} s")
    print(f"verify the model:                 {full:.3f} s")
    print(f"reading / verification: {100 * read / full:.1f}% (target < 5%)")


if __name__ == "__main__":
    main()
