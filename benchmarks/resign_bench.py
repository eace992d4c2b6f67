"""Incremental re-signing benchmark: a README edit on a multi-GB model.

Builds (or reuses) the multi-file model of ``hash_bench.py`` plus a model card,
ages its files (as a downloaded model is), signs it in full, edits the README,
and re-signs with ``--reuse`` of the first signature. Best of ``--repeat``;
prints both times and the ratio (target: re-signing costs < 2% of a full sign).

    python benchmarks/resign_bench.py --gb 2
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from hash_bench import GB, warm, write_safetensors


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--workdir", type=Path, default=Path(__file__).parent / "out")
    ap.add_argument("--gb", type=float, default=2.0)
    ap.add_argument("--shards", type=int, default=4)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    os.environ.setdefault("MODELSIGN_CACHE_DIR", tempfile.mkdtemp(prefix="modelsign-cache-"))

    from modelsign._internal.signature import keys
    from modelsign._internal.signature.signers import KeySigner
    from modelsign.sign import sign

    model = args.workdir / f"resign-{args.gb:g}gb"
    model.mkdir(parents=True, exist_ok=True)
    for i in range(args.shards):
        write_safetensors(
            model / f"model-{i + 1:05d}-of-{args.shards:05d}.safetensors",
            int(args.gb * GB / args.shards),
            seed=(i + 7) << 32,
        )
    card = model / "README.md"
    card.write_text("---\nlicense: apache-2.0\n---\n# benchmark model\n")
    old = time.time() - 3600
    for p in model.iterdir():
        os.utime(p, (old, old))
    files = sorted(model.glob("*.safetensors"))
    warm(files)
    signer = KeySigner(keys.generate_key("ec-p256"))
    sig = model / "model.sig"

    full, again = [], []
    for i in range(args.repeat):
        t = time.perf_counter()
        sign(model, signer=signer, force=True, env={})
        full.append(time.perf_counter() - t)
        card.write_text(card.read_text() + f"\nrelease note {i}\n")
        t = time.perf_counter()
        sign(model, signer=signer, force=True, env={}, reuse=sig)
        again.append(time.perf_counter() - t)
        for p in model.iterdir():  # age the card again for the next full signing
            os.utime(p, (old, old))
    total = sum(p.stat().st_size for p in files)
    f, r = min(full), min(again)
    print(f"model: {len(files)} shards, {total / GB:.2f} GB; best of {args.repeat}")
    print(f"  full sign                      {f:7.3f} s")
    print(f"  re-sign after a README edit    {r:7.3f} s")
    print(f"  re-sign / full: {r / f * 100:.2f}%  (target < 2%)")


if __name__ == "__main__":
    main()
