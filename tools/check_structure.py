"""Structural limits the code is held to, run by ``make structure`` (and so ``make test``).

- No module under ``modelsign/`` or ``tools/`` is longer than ``MAX_LINES`` lines.
- ``modelsign.__all__`` (the public API) lists at most ``MAX_PUBLIC_NAMES`` names.

The two allowlists hold what exceeds a limit today. They only shrink: a listed module
may not grow past the length recorded here, a new name over the limit is refused, and an
entry no longer needed (the module is within the limit, the name left ``__all__``) is an
error until it is removed. Both must become empty.

Exit status 0 when every limit holds; 1, naming each offender, otherwise.
"""

from __future__ import annotations

import argparse
import ast
import sys
from collections.abc import Mapping, Sequence, Set
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHECKED_DIRS = ("modelsign", "tools")
MAX_LINES = 600
MAX_PUBLIC_NAMES = 30

#: Modules longer than MAX_LINES today, each with the length it may not exceed.
#: Temporary: the branches splitting these modules empty it. Must become empty.
LONG_MODULES: Mapping[str, int] = {
    "modelsign/verify.py": 846,
    "modelsign/sbom.py": 686,
    "modelsign/_internal/metadata/licence.py": 681,
    "modelsign/_internal/hashing.py": 676,
    "modelsign/guard.py": 673,
    "modelsign/cli/signing.py": 644,
    "modelsign/_internal/manifest.py": 601,
}

#: ``modelsign.__all__`` today, over MAX_PUBLIC_NAMES. While it is over, no name outside
#: this set may be added; a name that leaves ``__all__`` leaves this set. Must become empty.
PUBLIC_NAMES_OVER_LIMIT: Set[str] = frozenset(
    {
        "CertificateVerifier",
        "DiscoveryError",
        "Finding",
        "FormatError",
        "InputError",
        "Inventory",
        "InventoryEntry",
        "KeySigner",
        "KeyVerifier",
        "LoadReport",
        "Manifest",
        "ManifestError",
        "ModelDiff",
        "ModelsignError",
        "ModelsignWarning",
        "Policy",
        "PolicyReport",
        "Problem",
        "RuleResult",
        "SignResult",
        "SignatureError",
        "Signer",
        "SignerInfo",
        "SigstoreSigner",
        "SigstoreVerifier",
        "VerificationError",
        "VerificationResult",
        "VerifiedGGUF",
        "VerifiedTensors",
        "Verifier",
        "Watcher",
        "__version__",
        "build_manifest",
        "diff_models",
        "load_manifest",
        "load_safetensors",
        "load_transformers",
        "load_trusted_root",
        "ml_bom",
        "ml_bom_json",
        "open_gguf",
        "sign",
        "snapshot_path",
        "verify",
        "verify_hf_snapshot",
    }
)


def line_count(path: Path) -> int:
    """Lines in a file, as ``wc -l`` counts them (a last line without a newline counts too)."""
    data = path.read_bytes()
    return data.count(b"\n") + (1 if data and not data.endswith(b"\n") else 0)


def module_lengths(root: Path, dirs: Sequence[str] = CHECKED_DIRS) -> dict[str, int]:
    """Every ``.py`` file under ``dirs`` of ``root``: its POSIX path relative to root, its lines."""
    found: dict[str, int] = {}
    for name in dirs:
        for path in sorted((root / name).rglob("*.py")):
            if "__pycache__" not in path.parts:
                found[path.relative_to(root).as_posix()] = line_count(path)
    return found


def check_lengths(
    lengths: Mapping[str, int],
    allowed: Mapping[str, int] = LONG_MODULES,
    limit: int = MAX_LINES,
) -> list[str]:
    """One message per module over ``limit`` and per allowlist entry that is wrong or stale."""
    problems = []
    for path, lines in sorted(lengths.items()):
        ceiling = allowed.get(path)
        if ceiling is None and lines > limit:
            problems.append(f"{path}: {lines} lines, over the limit of {limit}: split it")
        elif ceiling is not None and lines > ceiling:
            problems.append(
                f"{path}: {lines} lines, grown past the {ceiling} it is allowed while it is "
                f"over the limit of {limit}: split it"
            )
        elif ceiling is not None and lines <= limit:
            problems.append(
                f"{path}: {lines} lines, within the limit of {limit} now: "
                "remove it from LONG_MODULES in tools/check_structure.py"
            )
    for path in sorted(set(allowed) - set(lengths)):
        problems.append(f"{path}: listed in LONG_MODULES but gone: remove the entry")
    return problems


def public_names(init: Path) -> list[str]:
    """The literal ``__all__`` of a package's ``__init__.py`` (read, not imported)."""
    tree = ast.parse(init.read_text(encoding="utf-8"), filename=str(init))
    for node in tree.body:
        if not isinstance(node, ast.Assign):
            continue
        if any(isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets):
            try:
                value = ast.literal_eval(node.value)
            except ValueError:
                break
            if isinstance(value, list | tuple) and all(isinstance(n, str) for n in value):
                return list(value)
    raise ValueError(f"{init}: no literal __all__ list of names")


def check_public_names(
    names: Sequence[str],
    allowed: Set[str] = PUBLIC_NAMES_OVER_LIMIT,
    limit: int = MAX_PUBLIC_NAMES,
) -> list[str]:
    """One message if ``__all__`` is over ``limit`` with names not allowlisted, or the
    allowlist is stale."""
    problems = []
    if len(names) > limit:
        new = sorted(set(names) - set(allowed))
        if new:
            problems.append(
                f"modelsign.__all__: {len(names)} names, over the limit of {limit}, and "
                f"{', '.join(new)} not among those allowed today: keep the API small "
                "(make the name private, or drop another)"
            )
        gone = sorted(set(allowed) - set(names))
        if gone:
            problems.append(
                f"modelsign.__all__ no longer lists {', '.join(gone)}: remove "
                "from PUBLIC_NAMES_OVER_LIMIT in tools/check_structure.py"
            )
    elif allowed:
        problems.append(
            f"modelsign.__all__: {len(names)} names, within the limit of {limit}: "
            "empty PUBLIC_NAMES_OVER_LIMIT in tools/check_structure.py"
        )
    return problems


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--root", type=Path, default=ROOT, help="the repository (default: this)")
    args = parser.parse_args(argv)
    root: Path = args.root
    lengths = module_lengths(root)
    names = public_names(root / "modelsign" / "__init__.py")
    problems = check_lengths(lengths) + check_public_names(names)
    for problem in problems:
        print(f"structure: {problem}", file=sys.stderr)
    if problems:
        return 1
    longest = max(lengths.items(), key=lambda item: item[1])
    print(
        f"structure: ok: {len(lengths)} modules, none over {MAX_LINES} lines outside "
        f"{len(LONG_MODULES)} allowlisted (longest {longest[0]}, {longest[1]}); "
        f"modelsign.__all__ {len(names)} names"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
