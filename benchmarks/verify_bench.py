"""Verification benchmark: modelsign verify vs model_signing verify vs the bounds.

Uses the models of ``hash_bench.py`` (built there if missing, same sizes and
folder), signs each once with an EC key by both tools, then times, best of
``--repeat``, on the multi-file and the single-file model:

- the all-core bounds of the tensor hash (BLAKE3 and SHA-256 over the same bytes);
- ``model_signing`` verification (its Python API, what its CLI runs);
- ``modelsign verify`` of signatures with BLAKE3 and with SHA-256 tensor digests
  (header and tensor digests checked in parallel), and with ``--no-tensors``
  (file digests only).

Example:

    python benchmarks/verify_bench.py --multi-gb 2 --single-gb 2
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import blake3

sys.path.insert(0, str(Path(__file__).resolve().parent))
from hash_bench import GB, all_core, best, build_models, model_args, warm


def model_signing_verify(root: Path, sig: Path, pub: str) -> None:
    import model_signing

    (
        model_signing.verifying.Config()
        .use_elliptic_key_verifier(public_key=pub)
        .set_hashing_config(model_signing.hashing.Config().set_ignored_paths(paths=[sig]))
        .verify(root, sig)
    )


def main() -> None:
    args = model_args(__doc__).parse_args()

    import model_signing

    from modelsign._internal.signature import keys
    from modelsign._internal.signature.signers import KeySigner
    from modelsign._internal.signature.verifiers import KeyVerifier
    from modelsign.sign import sign
    from modelsign.verify import verify

    multi, single = build_models(args)

    sigs = args.workdir / "sigs"
    sigs.mkdir(exist_ok=True)
    key = keys.generate_key("ec-p256")
    key_path, pub_path = keys.write_keypair(str(sigs / "bench"), key, password=None, force=True)
    verifier = KeyVerifier(key.public_key())

    print("cores: 2 expected; repeat: best of", args.repeat)
    for label, root in (("multi-file", multi), ("single-file", single)):
        files = sorted(p for p in root.iterdir() if p.suffix == ".safetensors")
        total = sum(p.stat().st_size for p in files)
        warm(files)
        ours = {}
        for th in ("blake3", "sha256", None):
            sig = sigs / f"{root.name}-{th or 'none'}.sig"
            sign(root, signer=KeySigner(key), signature=sig, tensor_hash=th, force=True, env={})
            ours[th] = sig
        ms_sig = sigs / f"{root.name}-oms.sig"
        (
            model_signing.signing.Config()
            .use_elliptic_key_signer(private_key=key_path)
            .sign(root, ms_sig)
        )
        rows = {
            "blake3 all-core bound": best(
                lambda files=files: all_core(files, blake3.blake3), args.repeat
            ),
            "sha256 all-core bound": best(
                lambda files=files: all_core(files, hashlib.sha256), args.repeat
            ),
            "model_signing verify": best(
                lambda root=root, ms_sig=ms_sig: model_signing_verify(root, ms_sig, pub_path),
                args.repeat,
            ),
        }
        for th, sig in ours.items():
            name = f"modelsign verify ({th or 'no'} tensors)"
            rows[name] = best(
                lambda root=root, sig=sig: verify(root, verifier=verifier, signature=sig),
                args.repeat,
            )
        print(f"\n{label} model: {len(files)} file(s), {total / GB:.2f} GB")
        for name, t in rows.items():
            print(f"  {name:34s} {t:7.3f} s  {total / GB / t:6.2f} GB/s")
        ms = rows["model_signing verify"]
        b3 = rows["modelsign verify (blake3 tensors)"]
        s2 = rows["modelsign verify (sha256 tensors)"]
        want = (3.0, 1.8) if label == "single-file" else (1.35, None)
        print(f"  speed-up vs model_signing, blake3 tensors: {ms / b3:.2f}x  (target >= {want[0]})")
        print(
            f"  speed-up vs model_signing, sha256 tensors: {ms / s2:.2f}x"
            + (f"  (target >= {want[1]})" if want[1] else "")
        )
        print(
            f"  vs tensor-hash all-core bound: blake3 {rows['blake3 all-core bound'] / b3:.2f}x, "
            f"sha256 {rows['sha256 all-core bound'] / s2:.2f}x  (target >= 0.85)"
        )


if __name__ == "__main__":
    main()
