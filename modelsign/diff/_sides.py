"""Reading each side of a diff: a model on disk, a manifest file, a signature or a Manifest."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal, TypeAlias

from .._internal._atomic import open_regular
from .._internal.hashing import TensorHash
from .._internal.manifest import (
    Manifest,
    WeightsInfo,
    looks_like_manifest,
    manifest_for_tree,
    parse_manifest,
)
from .._internal.signature.attestation import load_signature
from .._internal.signature.bundle import KNOWN_MEDIA_TYPES, MAX_SIGNATURE_BYTES, Envelope
from .._internal.signature.certs import certificate_identity, load_der_certificate
from .._internal.signature.own import model_tree
from .._internal.signature.sigstore import fulcio_identity
from .._internal.signature.statement import SINGLE_FILE_RESOURCE, SignedStatement
from ..codes import Code
from ..errors import InputError, SignatureError, VerificationError
from .report import UNVERIFIED_NOTE, DiffSide, SignerClaim


@dataclass(frozen=True)
class File:
    path: str
    digest: str  # "<algorithm>:<hex>"
    size: int | None
    weights: WeightsInfo | None


@dataclass
class Side:
    info: DiffSide
    manifest: Manifest | None
    files: dict[str, File]
    single_file: bool
    from_disk: bool  # built here from the model: it carries no build-time claims
    ignore_paths: tuple[str, ...] = ()
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Pending:
    """A model on disk, built once the other side says which tensor hash to use."""

    path: str


Target: TypeAlias = str | os.PathLike[str] | Manifest


def _files_of(m: Manifest) -> dict[str, File]:
    return {f.path: File(f.path, f"sha256:{f.sha256}", f.size, f.weights) for f in m.files}


def _side_of_manifest(
    m: Manifest,
    kind: Literal["model", "manifest", "signature"],
    path: str | None,
    *,
    signer: SignerClaim | None = None,
    predicate_type: str | None = None,
) -> Side:
    info = DiffSide(
        kind=kind,
        path=path,
        name=m.name,
        manifest_digest=m.digest(),
        weights_digest=m.weights_digest,
        tensor_hash=m.hashing.tensor,
        files=len(m.files),
        tensors=m.tensor_count,
        signer=signer,
        predicate_type=predicate_type,
    )
    return Side(info, m, _files_of(m), m.single_file, from_disk=kind == "model")


def _looks_like_bundle(data: bytes) -> bool:
    try:
        obj = json.loads(data)
    except ValueError:
        return False
    return isinstance(obj, dict) and (
        obj.get("mediaType") in KNOWN_MEDIA_TYPES or "dsseEnvelope" in obj
    )


def _read_small(path: str) -> bytes | None:
    """The bytes of a file that may be a manifest or a signature, else None."""
    if not os.path.isfile(path):
        return None
    is_sig = path.endswith(".sig")
    try:
        size = os.path.getsize(path)
        if size > MAX_SIGNATURE_BYTES:
            if is_sig:
                raise SignatureError(
                    f"signature file is larger than {MAX_SIGNATURE_BYTES} bytes",
                    code=Code.BUNDLE_INVALID,
                    path=path,
                )
            return None
        with open_regular(path) as fh:
            head = fh.read(64)
            if not is_sig and not head.lstrip().startswith(b"{"):
                return None  # a weight file or other model file: never read whole here
            return head + fh.read()
    except OSError as exc:
        raise InputError(f"cannot read: {exc.strerror}", code=Code.UNREADABLE, path=path) from exc


def classify(target: Target) -> Side | Pending:
    if isinstance(target, Manifest):
        return _side_of_manifest(target, "manifest", None)
    path = os.fspath(target)
    if not os.path.lexists(path):
        raise InputError(f"no such file or folder: {path}", code=Code.NOT_FOUND, path=path)
    data = _read_small(path)
    if data is None:
        return Pending(path)
    if looks_like_manifest(data):
        return _side_of_manifest(parse_manifest(data, path), "manifest", path)
    if path.endswith(".sig") or _looks_like_bundle(data):
        return _side_of_signature(data, path)
    return Pending(path)


def _signer_claim(envelope: Envelope) -> SignerClaim:
    """Who the bundle names, without checking anything."""
    if not envelope.certificates:
        return SignerClaim(kind="key", key_hint=envelope.key_hint)
    leaf = load_der_certificate(envelope.certificates[0], "the signing certificate")
    if envelope.method == "sigstore":
        identity, issuer, _ = fulcio_identity(leaf)
        return SignerClaim(kind="sigstore", identity=identity, oidc_issuer=issuer)
    ident = certificate_identity(leaf)
    return SignerClaim(
        kind="certificate",
        subject=ident.get("subject"),
        issuer=ident.get("issuer"),
        fingerprint=ident.get("fingerprint"),
    )


def _oms_files(st: SignedStatement) -> dict[str, File]:
    """Files of a signature without a modelsign manifest: names and digests only."""
    if st.method == "files":
        out: dict[str, File] = {}
        for r in st.resources:
            name = st.subject_name if r.name == SINGLE_FILE_RESOURCE else r.name
            out[name] = File(name, f"{r.algorithm}:{r.digest}", None, None)
        return out
    # Shards ("name:start:end"): one digest per file over its shard digests in order.
    shards: dict[str, list[tuple[int, str, str]]] = {}
    for r in st.resources:
        name, start, _end = r.name.rsplit(":", 2)
        name = st.subject_name if name == SINGLE_FILE_RESOURCE else name
        shards.setdefault(name, []).append((int(start), r.algorithm, r.digest))
    files = {}
    for name, parts in shards.items():
        parts.sort()
        h = hashlib.sha256(b"".join(bytes.fromhex(d) for _, _, d in parts)).hexdigest()
        files[name] = File(name, f"{parts[0][1]}:{h}", None, None)
    return files


def _side_of_signature(data: bytes, path: str) -> Side:
    try:
        signed = load_signature(path, data=data)
        envelope, st = signed.envelope, signed.statement
        signer = _signer_claim(envelope)
    except VerificationError as exc:
        raise SignatureError(
            f"cannot read the signature: {exc.message}",
            code=exc.code,
            path=path,
            expected=exc.expected,
            actual=exc.actual,
        ) from exc
    notes = [f"{path}: {UNVERIFIED_NOTE}"]
    if st.manifest is not None:
        side = _side_of_manifest(
            st.manifest, "signature", path, signer=signer, predicate_type=st.predicate_type
        )
        side.ignore_paths, side.notes = st.ignore_paths, notes
        return side
    files = _oms_files(st)
    names = st.files
    notes.append(
        f"{path}: an OMS signature without a modelsign manifest: files are compared by digest only"
    )
    info = DiffSide(
        kind="signature",
        path=path,
        name=st.subject_name or os.path.basename(path),
        manifest_digest=None,
        weights_digest=None,
        tensor_hash=None,
        files=len(files),
        tensors=0,
        signer=signer,
        predicate_type=st.predicate_type,
    )
    single = names == {SINGLE_FILE_RESOURCE}
    return Side(info, None, files, single, False, st.ignore_paths, notes)


@dataclass(frozen=True)
class BuildOptions:
    ignore: Sequence[str]
    allow_symlinks: bool
    jobs: int | None
    progress: Callable[[int, int], None] | None


def build(pending: Pending, other: Side | Pending, opts: BuildOptions) -> Side:
    """Build the manifest of a model on disk, comparable with ``other``."""
    tensor_hash: TensorHash | None = "blake3"
    ignore = list(opts.ignore)
    exclude: list[str] = []
    if isinstance(other, Side):
        # The other side's digests decide the algorithm (None: it has no tensor digests).
        tensor_hash = other.manifest.hashing.tensor if other.manifest is not None else None
        # Leave out what the other side left out, so both describe the same files.
        exclude += other.ignore_paths
        if other.manifest is not None:
            ignore += other.manifest.ignored.patterns
            exclude += other.manifest.ignored.paths
    # modelsign's own signatures are never part of a model (own.py).
    tree, _ = model_tree(
        pending.path,
        ignore=sorted(set(ignore)),
        exclude=sorted(set(exclude)),
        allow_symlinks=opts.allow_symlinks,
    )
    m = manifest_for_tree(
        tree,
        tensor_hash=tensor_hash,
        env={},  # the differ's own CI is not the model's builder
        jobs=opts.jobs,
        progress=opts.progress,
    )
    return _side_of_manifest(m, "model", pending.path)
