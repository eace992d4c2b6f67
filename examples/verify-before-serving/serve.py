"""Serve a model only if it passes the policy: verified loading on the consumer side.

    python serve.py MODEL_DIR [--policy policy.yaml] [--framework numpy|torch]
                    [--memory auto|mapped|copy]

The weights are read once into memory, checked there against the signed
manifest and judged by the policy (``modelsign.load.load_safetensors``), and
the tensors handed on are views of exactly those checked bytes: a file
swapped between a separate check and the load cannot slip in. On any failure
nothing is loaded and the server does not start. ``--memory auto`` (the
default here) serves weights of 1 MiB or more from the page cache, shared with
other workers and held unchanged by a read lease, where the filesystem allows.

"Serving" here is a stand-in: it prints what it would serve. Put your
inference server where ``serve`` is.

Exit codes: 0 served, 1 refused (verification or policy failed), 2 usage or
input error (no signature, unreadable policy or key).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import modelsign
from modelsign.load import load_safetensors

HERE = Path(__file__).resolve().parent


def serve(model: Path, weights: dict[str, Any]) -> None:
    """The inference server would start here, on the verified tensors only."""
    params = sum(int(t.numel()) if hasattr(t, "numel") else int(t.size) for t in weights.values())
    print(f"serving {model.name}: {len(weights)} tensors, {params} parameters")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", type=Path, help="the model folder (or a .safetensors file)")
    parser.add_argument("--policy", type=Path, default=HERE / "policy.yaml")
    parser.add_argument("--framework", choices=["numpy", "torch"], default="numpy")
    parser.add_argument("--memory", choices=["auto", "mapped", "copy"], default="auto")
    args = parser.parse_args(argv)

    try:
        policy = modelsign.Policy.load(str(args.policy))
        weights = load_safetensors(
            args.model, policy=policy, framework=args.framework, memory=args.memory
        )
    except modelsign.VerificationError as exc:
        print(f"refusing to serve {args.model}: {exc.diagnostics()}", file=sys.stderr)
        for p in exc.findings:
            where = (p.file or "") + (f" [tensor {p.tensor}]" if p.tensor else "")
            print(f"  {p.code}: {where + ': ' if where else ''}{p.message}", file=sys.stderr)
        return 1
    except modelsign.ModelsignError as exc:
        print(f"cannot check {args.model}: {exc.diagnostics()}", file=sys.stderr)
        return 2

    report = weights.report
    if not report.verified:  # a warn-mode policy let a failure through: still refuse
        print(f"refusing to serve {args.model}: not verified", file=sys.stderr)
        return 1
    signer = report.signer
    who = None
    if signer is not None:
        who = signer.identity or signer.subject or f"{signer.key_type} key {signer.key_hint}"
    print(f"verified {args.model}: {len(report.tensors)} tensors in {len(report.files)} file(s)")
    print(f"signed by {who}")
    for name in report.mapped:
        print(f"{name}: served from the leased page cache (zero-copy)")
    for name, why in report.not_mapped.items():
        print(f"{name}: copied ({why})")
    serve(args.model, weights)
    return 0


if __name__ == "__main__":
    sys.exit(main())
