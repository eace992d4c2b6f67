"""Signing: manifest → OMS statement → signer → bundle written atomically."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from ._internal import _statcache
from ._internal._atomic import write_atomic
from ._internal.discover import GIT_PATHS, ModelTree
from ._internal.findings import Finding
from ._internal.hashing import FileDigests, TensorHash, hash_shards
from ._internal.manifest import FileEntry, Manifest, manifest_for_tree
from ._internal.manifest.build import hash_tree, manifest_from_digests
from ._internal.metadata.provenance import SourceRepo
from ._internal.signature.attestation import build_attestation, load_signature, merged_claims
from ._internal.signature.attestation import read_claims as _read_claims
from ._internal.signature.bundle import read_signature_file
from ._internal.signature.location import (
    CLAIMS_FILE,
    PROVENANCE_FILE,
    SIGNATURE_FILE,
    SignatureLocation,
    claims_path,
    signature_location,
)
from ._internal.signature.own import model_tree
from ._internal.signature.shards import shard_resources
from ._internal.signature.signers import Signer, sign_all
from ._internal.signature.statement import SingleFileName, build_statement
from .codes import Code
from .errors import InputError, ModelsignError

DEFAULT_SIGNATURE = SIGNATURE_FILE
DEFAULT_CLAIMS = CLAIMS_FILE  # modelsign's attestation beside model.sig
DEFAULT_PROVENANCE = PROVENANCE_FILE  # see modelsign.provenance
#: What ``sign`` writes inside a model folder by default: never part of the model.
SIGNATURE_FILES = (DEFAULT_SIGNATURE, DEFAULT_CLAIMS)


@dataclass(frozen=True)
class SignResult:
    """What was signed and where the signature went."""

    manifest: Manifest
    signature: str
    statement: bytes  # the OMS statement (in ``signature``)
    claims: str  # the claims file holding the attestation
    attestation: bytes  # modelsign's attestation statement (one line of ``claims``)
    #: Files whose manifest entries came from ``reuse``'s signature, not read for them.
    reused: int = 0
    #: Files read: hashed for the manifest or, reused ones, for their shard digests only.
    read: int = 0


def build_manifest(
    model: str | os.PathLike[str],
    *,
    tensor_hash: TensorHash | None = "blake3",
    ignore: Sequence[str] = (),
    exclude: Sequence[str] = (),
    allow_symlinks: bool = False,
    source: SourceRepo | None = None,
    parents: Sequence[Manifest] = (),
    env: Mapping[str, str] | None = None,
    jobs: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Manifest:
    """Discover, strictly parse and digest ``model``; return the manifest ``sign`` would sign.

    modelsign's own signature and claims files are never part of a model, so
    a signed model's manifest (and its digest) is the one its signing made.
    ``tensor_hash=None`` skips tensor digests: files are still parsed strictly
    and fully digested. ``progress(done, total)`` gets byte counts from the
    hashing threads.
    """
    tree, _ = model_tree(model, ignore=ignore, exclude=exclude, allow_symlinks=allow_symlinks)
    return manifest_for_tree(
        tree,
        tensor_hash=tensor_hash,
        source=source,
        parents=parents,
        env=env,
        jobs=jobs,
        progress=progress,
    )


def sign(
    model: str | os.PathLike[str],
    *,
    signer: Signer,
    signature: str | os.PathLike[str] | None = None,
    force: bool = False,
    tensor_hash: TensorHash | None = "blake3",
    ignore: Sequence[str] = (),
    allow_symlinks: bool = False,
    source: SourceRepo | None = None,
    parents: Sequence[Manifest] = (),
    env: Mapping[str, str] | None = None,
    jobs: int | None = None,
    progress: Callable[[int, int], None] | None = None,
    reuse: str | os.PathLike[str] | None = None,
    shard_size: int | None = None,
    single_file_name: SingleFileName = "oms-tool",
    claims: str | os.PathLike[str] | None = None,
    release: str | None = None,
) -> SignResult:
    """Sign ``model``: write the OMS bundle and, in the claims file beside it, the attestation.

    The OMS bundle (``model.sig``) is a plain OMS v1.0 signature; modelsign's
    manifest goes into an attestation signed by the same signer, one line of
    ``claims.jsonl`` (other lines are kept). Both files are left out of what is
    signed and recorded in ``ignore_paths``; an existing signature is kept
    unless ``force``; a failure leaves no signature behind. With ``reuse`` (an
    earlier signature of this model made on this machine, or a copy of it) only
    files whose size, mtime, inode or ctime changed since are read again
    (``SignResult.reused`` and ``read`` say how many). ``shard_size``
    selects the OMS shard serialization; ``single_file_name="spec"`` names a
    single file's resource after the file instead of ``"."``. ``claims``
    defaults to ``claims.jsonl`` beside ``model.sig`` (else ``NAME.claims.jsonl``).
    ``release`` (``v1.4``) is signed into the attestation: the version the
    signature speaks for, which verifiers and policies can require.
    """
    _check_arguments(shard_size, release)
    loc = signature_location(model, signature=signature, claims=claims, legacy=False)
    sig_path, claims = _outputs(loc, force)
    tree, ignore_paths = _discover(model, loc, ignore, allow_symlinks)
    reusable = _reusable(tree, os.fspath(reuse), tensor_hash, claims) if reuse is not None else None
    manifest, shards, hashed = _manifest_and_shards(
        tree, tensor_hash, reusable, source, parents, env, jobs, progress, shard_size
    )
    statement = build_statement(
        manifest,
        subject_name=tree.files[0].path if tree.single_file else os.path.basename(tree.root),
        ignore_paths=ignore_paths,
        single_file_name=single_file_name,
        shards=shards,
        shard_size=shard_size,
    )
    attestation = build_attestation(manifest, statement, release=release)
    bundle = _write(signer, sig_path, claims, [statement, attestation], force)
    _remember(bundle, tree, manifest)
    # With shards, a reused file is still read for its shard digests.
    read = len(tree.files) if shard_size is not None else hashed
    reused = len(tree.files) - hashed
    return SignResult(manifest, sig_path, statement, claims, attestation, reused, read)


def _check_arguments(shard_size: int | None, release: str | None) -> None:
    """Arguments are checked before anything is read: hashing a large model first would
    only waste the time."""
    if shard_size is not None and shard_size <= 0:
        raise InputError("--shard-size must be a positive number of bytes", code=Code.USAGE)
    if release is not None and (not release.strip() or len(release) > 200):
        raise InputError("--release must be a short non-empty version", code=Code.USAGE)


def _outputs(loc: SignatureLocation, force: bool) -> tuple[str, str]:
    """Where the signature and the claims file go; an existing signature needs ``force``."""
    sig_path, claims = loc.signature, loc.claims
    if os.path.abspath(claims) == os.path.abspath(sig_path):
        raise InputError("the claims file cannot be the signature", code=Code.USAGE, path=claims)
    if os.path.lexists(sig_path) and not force:
        raise InputError(
            "a signature already exists; pass --force to replace it",
            code=Code.OUTPUT_EXISTS,
            path=sig_path,
        )
    return sig_path, claims


def _discover(
    model: str | os.PathLike[str],
    loc: SignatureLocation,
    ignore: Sequence[str],
    allow_symlinks: bool,
) -> tuple[ModelTree, list[str]]:
    """The model's files, and the ``ignore_paths`` to record: what sign writes is left out."""
    sig_path = loc.signature
    # The release's provenance attestation sits beside the model's signature,
    # whichever is made first: it is left out too, and so is any other file of
    # modelsign's own (a signature of one file of the folder, say).
    sidecars = loc.names_inside(sig_path, loc.claims, loc.provenance)
    tree, own = model_tree(model, ignore=ignore, allow_symlinks=allow_symlinks, sidecars=sidecars)
    if tree.single_file and os.path.abspath(sig_path) == os.path.join(
        tree.root, tree.files[0].path
    ):
        raise InputError("the signature would overwrite the model", code=Code.USAGE, path=sig_path)
    # The signature is recorded even before it exists, so re-signing and the
    # OMS tool's verifier both leave it out.
    recorded = set(GIT_PATHS) | set(tree.ignored) | set(sidecars) | set(own)
    ignore_paths = [] if tree.single_file else sorted(recorded)
    _check_concrete(ignore_paths)
    return tree, ignore_paths


def _manifest_and_shards(
    tree: ModelTree,
    tensor_hash: TensorHash | None,
    reuse: Mapping[str, tuple[FileEntry, list[Finding]]] | None,
    source: SourceRepo | None,
    parents: Sequence[Manifest],
    env: Mapping[str, str] | None,
    jobs: int | None,
    progress: Callable[[int, int], None] | None,
    shard_size: int | None,
) -> tuple[Manifest, list[dict[str, str]] | None, int]:
    """The manifest, with a shard size the shard resources, and how many files were hashed.

    One read per file for both; a reused file is read for its shard digests alone.
    """
    digests = hash_tree(
        tree,
        tensor_hash=tensor_hash,
        reuse=reuse,
        jobs=jobs,
        progress=progress,
        shard_size=shard_size,
    )
    manifest = manifest_from_digests(
        tree,
        digests,
        tensor_hash=tensor_hash,
        reuse=reuse,
        source=source,
        parents=parents,
        env=env,
    )
    shards = _shards(tree, digests, shard_size, jobs) if shard_size is not None else None
    return manifest, shards, len(digests)


def _write(
    signer: Signer, sig_path: str, claims: str, statements: list[bytes], force: bool
) -> bytes:
    """Sign the statements; the bundle goes to ``sig_path``, the attestation into ``claims``."""
    existing = _read_claims(claims) or []
    bundle, attested = sign_all(signer, statements)
    write_atomic(sig_path, bundle, force=force)
    try:
        write_atomic(claims, merged_claims(existing, attested), force=True)
    except BaseException:
        os.unlink(sig_path)  # a marker without its attestation would only fail later
        raise
    return bundle


def _remember(bundle: bytes, tree: ModelTree, manifest: Manifest) -> None:
    """Record each file's identity at this signing, so ``reuse`` can skip the untouched ones."""
    real = {f.path: f.real for f in tree.files}
    _statcache.save(
        bundle,
        [(e.path, real[e.path], e.model_dump(mode="json")) for e in manifest.files],
    )


def _check_concrete(ignore_paths: list[str]) -> None:
    """OMS §6.2.1: ignore_paths are concrete paths, never patterns."""
    globbed = [p for p in ignore_paths if any(c in p for c in "*?[")]
    if globbed:
        raise InputError(
            f"{globbed[0]!r} cannot be recorded in ignore_paths: the OMS spec forbids "
            "'*', '?' and '[' there; rename it or leave it in the model",
            code=Code.IGNORE_PATH_GLOB,
            path=globbed[0],
        )


def _shards(
    tree: ModelTree, read: Sequence[FileDigests], shard_size: int, jobs: int | None
) -> list[dict[str, str]]:
    """The spec-form shard resources of every file.

    A file read for the manifest has its shard digests from that read; a
    reused one (not read again) is read for its shards alone, on all cores.
    """
    digests = {d.file.path: d.shard_digests for d in read if d.shard_digests is not None}
    unread = [f for f in tree.files if f.path not in digests]
    digests.update(hash_shards(unread, shard_size, "sha256", jobs=jobs))
    sizes = {f.path: f.size for f in tree.files}
    return shard_resources(digests, sizes, shard_size, "sha256")


def _reusable(
    tree: ModelTree, old_signature: str, tensor_hash: TensorHash | None, claims: str
) -> dict[str, tuple[FileEntry, list[Finding]]]:
    """Entries of the old signature whose files are provably untouched since it was made.

    A file qualifies when the local cache recorded its exact identity (device,
    inode, size, mtime, ctime) at that signing — found by the signature's
    content, wherever it lies — and the old signature holds the same entry.
    The old signature is only read for its manifest here; it is not trusted for
    anything else. Its attestation is in the claims file beside it or, for a
    copy kept without one, in the model's ``claims`` (not yet rewritten: the
    attestation must name this very statement either way).
    """
    data = read_signature_file(old_signature)
    beside = claims_path(old_signature)
    lone = not os.path.lexists(beside)
    try:
        signed = load_signature(old_signature, data=data, claims=claims if lone else beside)
    except ModelsignError as exc:
        hint = f"; keep its claims file beside it ({beside})" if lone else ""
        raise InputError(
            f"cannot reuse this signature: {exc.message}{hint}",
            code=Code.REUSE_INVALID,
            path=old_signature,
        ) from exc
    old = signed.statement.manifest
    if old is None or old.hashing.tensor != tensor_hash:
        return {}  # an OMS-only signature, or another tensor hash: nothing to reuse
    cached = _statcache.load(data)
    out: dict[str, tuple[FileEntry, list[Finding]]] = {}
    for f in tree.files:
        rec = cached.get(f.path)
        entry = old.file(f.path)
        if rec is None or entry is None or rec.get("real") != f.real:
            continue
        if rec.get("entry") != entry.model_dump(mode="json"):
            continue
        if rec.get("identity") != _statcache.identity(f.real):
            continue
        out[f.path] = (entry, [x for x in old.findings if x.path == f.path])
    return out
