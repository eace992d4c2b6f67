"""What changed between two versions of a model: files, tensors, quantization, licence, origin.

Each side is a model on disk (its manifest is built), a manifest file, a
signature (the modelsign manifest inside its statement, or only the OMS file
list of a foreign signature) or a :class:`~modelsign._internal.manifest.Manifest`. Two
manifests are enough: a reviewer needs no weights.

Signatures are read, never verified: what a signature claims (its manifest and
its signer) is reported as a claim, and :attr:`ModelDiff.notes` says so.
Tensor-level differences come from :func:`modelsign._internal.check.compare.diff_weights`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from ._compare import compare
from ._sides import BuildOptions, Pending, build, classify
from ._sides import Target as Target
from .report import DIFF_KIND as DIFF_KIND
from .report import DIFF_VERSION as DIFF_VERSION
from .report import (
    UNVERIFIED_NOTE,
    Change,
    ChangeCode,
    DiffCounts,
    DiffSide,
    ModelDiff,
    SignerClaim,
    TensorChange,
    layer_index,
    layer_ranges,
)

__all__ = [
    "UNVERIFIED_NOTE",
    "Change",
    "ChangeCode",
    "DiffCounts",
    "DiffSide",
    "ModelDiff",
    "SignerClaim",
    "TensorChange",
    "diff_models",
    "layer_index",
    "layer_ranges",
]


def diff_models(
    old: Target,
    new: Target,
    *,
    ignore: Sequence[str] = (),
    allow_symlinks: bool = False,
    jobs: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> ModelDiff:
    """Compare two models; each a model path, a manifest file, a signature or a Manifest.

    A model on disk is built with BLAKE3 tensor digests, or with the other
    side's algorithm when that is a manifest or a signature (no tensor digests
    against a signature without a modelsign manifest), leaving out what the
    other side left out and any ``model.sig`` in the folder. ``ignore`` and
    ``allow_symlinks`` apply to models on disk. Signatures are read, never
    verified. Raises :class:`~modelsign.errors.ModelsignError` subclasses
    (exit code 2) for unreadable inputs; a difference is not an error.
    """
    opts = BuildOptions(ignore, allow_symlinks, jobs, progress)
    a, b = classify(old), classify(new)
    if isinstance(a, Pending):
        a = build(a, b, opts)
    if isinstance(b, Pending):
        b = build(b, a, opts)
    return compare(a, b)
