"""modelsign's own files: signatures and attestations are never part of a model.

The one rule every command follows (``manifest``, ``inspect``, ``sign``,
``verify``, the loaders, ``diff``, ``sbom``), beside :mod:`.location`'s rule
for where they live. A file is modelsign's own when both hold:

- its name is one modelsign gives them: ``*.sig`` (``model.sig``,
  ``model.provenance.sig``, ``NAME.sig``, ``NAME.provenance.sig``),
  ``claims.jsonl`` or ``NAME.claims.jsonl``, at any depth;
- its content is one: a Sigstore (DSSE) bundle, or for a claims file lines that
  each are one. A ``model.sig`` that is anything else (a renamed pickle) is a
  model file like any other, judged by the format rules.

The content is read only for a file with such a name, and only when it starts
like JSON, no further than a signature can be long.

``sign`` records what it leaves out in the signature's ``ignore_paths`` (as
OMS requires: a verifier that knows nothing of this rule still skips them);
``verify`` and the loaders leave out only files the signature does not cover
— what a signature lists is always checked.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Collection, Iterable, Sequence

from ...codes import Code
from ...errors import DiscoveryError, ModelsignError
from .._atomic import open_regular
from ..discover import ModelFile, ModelTree, discover, matches_pattern
from .bundle import MAX_SIGNATURE_BYTES, read_bundle
from .location import CLAIMS_FILE

_CLAIMS_SUFFIX = "." + CLAIMS_FILE  # NAME.claims.jsonl
_SIG_SUFFIX = ".sig"


def is_own_signature_name(name: str) -> bool:
    """Whether ``name`` (a path or a base name) is named as modelsign names its own files."""
    base = name.replace(os.sep, "/").rsplit("/", 1)[-1]
    return base == CLAIMS_FILE or base.endswith((_CLAIMS_SUFFIX, _SIG_SUFFIX))


def is_own_signature_file(path: str | os.PathLike[str], *, name: str | None = None) -> bool:
    """Whether the file at ``path`` is a modelsign signature or attestation (name and content).

    ``name`` is the file's name when ``path`` is not named like it (a Hugging
    Face snapshot link's blob). Anything unreadable, or not a regular file, is not.
    """
    given = os.fspath(path)
    base = (name or given).replace(os.sep, "/").rsplit("/", 1)[-1]
    if not is_own_signature_name(base):
        return False
    data = _json_bytes(given)
    if data is None:
        return False
    if base.endswith(_SIG_SUFFIX):
        return _is_bundle(data)
    lines = [line for line in data.split(b"\n") if line.strip()]
    return bool(lines) and all(_is_bundle(line) for line in lines)


def own_files(files: Iterable[ModelFile], *, signed: Collection[str] = ()) -> list[str]:
    """The names of ``files`` that are modelsign's own (never part of a model), sorted.

    Names in ``signed`` are kept out of it: what a signature lists is checked, whatever it is.
    """
    return sorted(
        f.path for f in files if f.path not in signed and is_own_signature_file(f.real, name=f.path)
    )


def model_tree(
    model: str | os.PathLike[str],
    *,
    ignore: Sequence[str] = (),
    exclude: Sequence[str] = (),
    allow_symlinks: bool = False,
    sidecars: Sequence[str] = (),
) -> tuple[ModelTree, list[str]]:
    """The files of ``model`` without modelsign's own, and the names of those left out.

    ``sidecars`` are left out by name, whatever they hold: the signature, claims
    and provenance files ``sign`` is writing. Neither they nor the own files
    found are listed as ignored (the manifest is the same before and after a
    model is signed), unless an ``ignore`` pattern or ``exclude`` names them.
    A single-file model is what was asked for: it is never left out.
    """
    tree = discover(
        model, ignore=ignore, exclude=[*exclude, *sidecars], allow_symlinks=allow_symlinks
    )
    if tree.single_file:
        return tree, []
    own = own_files(tree.files)
    unasked = {
        n
        for n in sidecars
        if n in tree.ignored and n not in exclude and not matches_pattern(n, ignore)
    }
    files = tuple(f for f in tree.files if f.path not in own)
    if not files:
        raise DiscoveryError(
            f"the model has no files to record: only modelsign's own signatures ({', '.join(own)})",
            code=Code.EMPTY_MODEL,
            path=os.fspath(model),
        )
    ignored = tuple(n for n in tree.ignored if n not in unasked)
    return dataclasses.replace(tree, files=files, ignored=ignored), sorted({*own, *unasked})


def _json_bytes(path: str) -> bytes | None:
    """The bytes of ``path`` when it starts like JSON and is no larger than a signature."""
    try:
        with open_regular(path) as fh:
            if os.fstat(fh.fileno()).st_size > MAX_SIGNATURE_BYTES:
                return None
            head = fh.read(64)
            if head.lstrip()[:1] != b"{":
                return None
            return head + fh.read(MAX_SIGNATURE_BYTES + 1 - len(head))
    except OSError:
        return None


def _is_bundle(data: bytes) -> bool:
    try:
        read_bundle(data)
    except (ModelsignError, ValueError, RecursionError):
        return False
    return True
