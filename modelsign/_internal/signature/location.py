"""Where a model's signatures live: the one rule every verb follows.

- A folder: ``FOLDER/model.sig``, with ``FOLDER/claims.jsonl`` (modelsign's
  attestation) and ``FOLDER/model.provenance.sig`` (the SLSA attestation).
- A single file: ``FILE.sig``, ``FILE.claims.jsonl``, ``FILE.provenance.sig``.
- A Hugging Face cache snapshot (``models--org--name/snapshots/<commit>``) is a
  folder. A cache repo folder (``models--org--name``) is the snapshot its
  ``refs/main`` names: its signatures live in that snapshot, where a repo that
  publishes ``model.sig`` has it, so that the repo folder, the snapshot and the
  repo id all find the same signature — and a signature speaks for one
  revision: a newer snapshot is unsigned until it is signed.
- A signature put elsewhere (``--signature``): its claims beside it
  (``claims.jsonl`` beside a ``model.sig``, else ``NAME.claims.jsonl``).
- modelsign 0.1 signed a cache repo folder into the repo folder itself
  (``models--org--name/model.sig``). Readers still find a signature there, for
  the ``refs/main`` snapshot only and when the snapshot has none, and say so
  (:attr:`SignatureLocation.moved_to`: verify warns ``LEGACY_SIGNATURE_PLACE``);
  writers never put one there (``legacy=False``).

``sign`` writes there; ``verify``, the loaders, the inventory, ``watch`` and
``diff`` read there. Loaders also accept a file of a signed folder: without a
``FILE.sig`` of its own it is checked under the folder's (:func:`covering_location`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from ...errors import DiscoveryError
from ..discover import name_inside, resolve_hf_snapshot

SIGNATURE_FILE = "model.sig"
CLAIMS_FILE = "claims.jsonl"
PROVENANCE_FILE = "model.provenance.sig"
#: What modelsign writes inside a model folder: never part of the model.
SIDECAR_FILES = (SIGNATURE_FILE, CLAIMS_FILE, PROVENANCE_FILE)


@dataclass(frozen=True)
class SignatureLocation:
    """Where one model's signature, claims and provenance attestation are."""

    root: str  # the folder the signed names are relative to (an HF repo folder's snapshot)
    single_file: str | None  # the model's file name, when the model is one file
    signature: str
    claims: str
    provenance: str
    #: Where the signature belongs, when it lies where modelsign 0.1 put it (the cache
    #: repo folder of this snapshot): readers use it, and warn.
    moved_to: str | None = None

    def names_inside(self, *paths: str) -> list[str]:
        """Those of ``paths`` inside the model folder, as names relative to it (to leave out)."""
        if self.single_file is not None:
            return []
        return [rel for p in paths if (rel := name_inside(self.root, p)) is not None]


def claims_path(signature: str) -> str:
    """Where the claims of a signature live: ``claims.jsonl`` beside ``model.sig``,
    else ``NAME.claims.jsonl`` beside ``NAME.sig`` (a single file, a chosen name)."""
    folder, base = os.path.split(signature)
    if base == SIGNATURE_FILE:
        return os.path.join(folder, CLAIMS_FILE)
    return os.path.join(folder, base.removesuffix(".sig") + ".claims.jsonl")


def model_folder(path: str) -> str:
    """The folder whose files a folder model is: a cache repo folder's ``refs/main`` snapshot."""
    try:
        found = resolve_hf_snapshot(path)
    except DiscoveryError:
        return path  # a broken cache repo: discovery says why, where the files are listed
    if found is None or os.path.abspath(path) == found[0]:
        return path  # a plain folder or a snapshot: as given
    return found[0]


def signature_location(
    model: str | os.PathLike[str],
    *,
    signature: str | os.PathLike[str] | None = None,
    claims: str | os.PathLike[str] | None = None,
    legacy: bool = True,
) -> SignatureLocation:
    """Where the signatures of ``model`` (a folder or a file) are, by the rule above.

    ``signature`` and ``claims`` are the caller's choices, when it made them.
    ``legacy``: find a signature modelsign 0.1 left in a cache repo folder
    (readers); a writer passes False, and writes where the rule says.
    """
    path = os.fspath(model)
    if os.path.isdir(path):
        root = model_folder(path)
        single = None
        sig, prov = os.path.join(root, SIGNATURE_FILE), os.path.join(root, PROVENANCE_FILE)
        repo = _legacy_folder(root) if legacy else None
        if repo is not None:
            old_sig, old_prov = (
                os.path.join(repo, SIGNATURE_FILE),
                os.path.join(repo, PROVENANCE_FILE),
            )
            if signature is None and not os.path.lexists(sig) and os.path.lexists(old_sig):
                sig = old_sig
            if not os.path.lexists(prov) and os.path.lexists(old_prov):
                prov = old_prov
    else:
        root, single = os.path.split(os.path.abspath(path))
        sig, prov = path + ".sig", path + PROVENANCE_FILE.removeprefix("model")
        repo = None
    if signature is not None:
        sig = os.fspath(signature)
    where = os.fspath(claims) if claims is not None else claims_path(sig)
    moved = repo is not None and os.path.dirname(os.path.abspath(sig)) == repo
    return SignatureLocation(root, single, sig, where, prov, root if moved else None)


def moved_note(loc: SignatureLocation) -> str | None:
    """What to tell the user when the signature lies where modelsign 0.1 put it (else None)."""
    if loc.moved_to is None:
        return None
    return (
        "signature found in the cache repo folder, where modelsign 0.1 put it (used for the "
        "refs/main snapshot); move model.sig and claims.jsonl (and model.provenance.sig, "
        f"if there is one) into {loc.moved_to}"
    )


def _legacy_folder(root: str) -> str | None:
    """The cache repo folder whose ``refs/main`` names snapshot ``root`` (None if it is not one).

    Where modelsign 0.1 put the signature of ``models--org--name``.
    """
    try:
        found = resolve_hf_snapshot(root)
        if found is None or found[1].ref is not None:
            return None  # not a snapshot (a repo folder was resolved to one already)
        repo = found[1].repo_dir
        main = resolve_hf_snapshot(repo)
    except DiscoveryError:
        return None  # no readable refs/main: the repo folder means no snapshot
    return repo if main is not None and main[0] == os.path.abspath(root) else None


def covering_location(
    path: str | os.PathLike[str], *, signature: str | os.PathLike[str] | None = None
) -> SignatureLocation:
    """The signature a loader checks ``path`` against: :func:`signature_location`'s, except
    that a file without a ``FILE.sig`` is loaded as a file of its folder, under the folder's.
    """
    loc = signature_location(path, signature=signature)
    if signature is None and loc.single_file is not None and not os.path.exists(loc.signature):
        return signature_location(loc.root)
    return loc
