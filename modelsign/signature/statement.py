"""The in-toto statement: OMS v1.0 on the wire, the modelsign manifest inside.

What OMS v1.0 verifiers read is ``predicate.serialization`` and
``predicate.resources`` (one SHA-256 per file, the subject digest over them in
listed order). The full manifest rides in one extra, namespaced predicate
field, which the OMS spec tells v1.0 verifiers to ignore. The payload is RFC
8785 canonical JSON, so the signed bytes are deterministic.

Reading accepts what the OMS tool writes (v1.0, and the legacy
``Digests/v0.1`` predicate of its pre-1.0 releases), strictly: duplicate JSON
keys, unknown algorithms and unsafe resource names are errors.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import rfc8785

from .._json import strict_loads
from ..discover import GIT_PATHS, check_relative_name
from ..errors import DiscoveryError, ManifestError, VerificationError
from ..manifest import Manifest, manifest_from_json
from .shards import (
    Shard,
    known_shard_algorithm,
    parse_shard_name,
    shard_hash,
    shard_size_of,
    tile_shards,
)

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_V1 = "https://model_signing/signature/v1.0"
PREDICATE_LEGACY = "https://model_signing/Digests/v0.1"
#: The predicate field carrying the modelsign manifest (ignored by OMS v1.0 verifiers).
MANIFEST_FIELD = "https://modelsign.dev/manifest/v1"
SINGLE_FILE_RESOURCE = "."  # how the OMS tool names the resource of a single-file model

_HEX64 = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class Resource:
    """One signed resource: a file (or a shard of one) and its digest."""

    name: str
    algorithm: str
    digest: str


@dataclass(frozen=True)
class SignedStatement:
    """A statement read back from a signature, checked for consistency."""

    predicate_type: str
    subject_name: str
    subject_digest: str
    resources: tuple[Resource, ...]
    method: str  # "files" or "shards"
    hash_type: str
    allow_symlinks: bool
    ignore_paths: tuple[str, ...]
    manifest: Manifest | None  # present when modelsign signed it
    shard_size: int | None = None  # method "shards" only
    # method "shards": each file's ranges in offset order, checked to tile it from 0
    shards: Mapping[str, tuple[Shard, ...]] = field(default_factory=dict)

    def file_of(self, r: Resource) -> str:
        """The file a resource covers (a shard is named ``FILE:START:END``)."""
        return resource_file(r.name, self.method)

    @property
    def files(self) -> set[str]:
        """The names of every file the resources cover."""
        return {self.file_of(r) for r in self.resources}


def resource_file(name: str, method: str) -> str:
    """The file a resource named ``name`` covers, under serialization ``method``."""
    return name.rsplit(":", 2)[0] if method == "shards" else name


def root_digest(resources: list[Resource] | tuple[Resource, ...]) -> str:
    """SHA-256 over the raw bytes of every resource digest, in listed order (as OMS does)."""
    h = hashlib.sha256()
    for r in resources:
        h.update(bytes.fromhex(r.digest))
    return h.hexdigest()


def build_statement(manifest: Manifest, *, ignore_paths: list[str]) -> bytes:
    """The canonical statement bytes for ``manifest``.

    ``ignore_paths`` are the concrete relative paths to record (the OMS tool
    re-applies them as paths, not patterns, when verifying).
    """
    if manifest.single_file:
        (f,) = manifest.files
        resources = [Resource(SINGLE_FILE_RESOURCE, "sha256", f.sha256)]
    else:
        # Unicode code point order of the POSIX name, as the spec says.
        resources = [Resource(f.path, "sha256", f.sha256) for f in manifest.files]
    statement: dict[str, Any] = {
        "_type": STATEMENT_TYPE,
        "subject": [{"name": manifest.name, "digest": {"sha256": root_digest(resources)}}],
        "predicateType": PREDICATE_V1,
        "predicate": {
            "serialization": {
                "method": "files",
                "hash_type": "sha256",
                "allow_symlinks": manifest.allow_symlinks,
                "ignore_paths": sorted(set(ignore_paths)),
            },
            "resources": [
                {"name": r.name, "algorithm": r.algorithm, "digest": r.digest} for r in resources
            ],
            MANIFEST_FIELD: manifest.model_dump(mode="json"),
        },
    }
    return rfc8785.dumps(statement)


def strict_json(data: bytes, what: str) -> Any:
    """Parse JSON, refusing duplicate keys (parsers disagree on which one wins)."""

    return strict_loads(
        data,
        lambda k: VerificationError(
            f"{what} has a duplicate JSON key {k!r}", code="DUPLICATE_JSON_KEY"
        ),
        lambda why: VerificationError(f"{what} is not valid JSON: {why}", code="MALFORMED_JSON"),
    )


def _fail(message: str, code: str = "STATEMENT_INVALID") -> VerificationError:
    return VerificationError(message, code=code)


def _str(obj: dict[str, Any], key: str, where: str) -> str:
    value = obj.get(key)
    if not isinstance(value, str):
        raise _fail(f"{where}.{key} must be a string, got {type(value).__name__}")
    return value


def parse_statement(payload: bytes) -> SignedStatement:
    """Read a statement from a DSSE payload and check it is self-consistent."""
    st = strict_json(payload, "the signed statement")
    if not isinstance(st, dict):
        raise _fail("the statement is not a JSON object")
    if st.get("_type") != STATEMENT_TYPE:
        raise _fail(
            f"statement _type is {st.get('_type')!r}, not {STATEMENT_TYPE}", "STATEMENT_TYPE"
        )
    ptype = st.get("predicateType")
    subjects = st.get("subject")
    if not isinstance(subjects, list) or not subjects:
        raise _fail("the statement has no subject")
    if ptype == PREDICATE_LEGACY:
        return _parse_legacy(subjects)
    if ptype != PREDICATE_V1:
        raise _fail(f"unsupported predicate type {ptype!r}", "PREDICATE_TYPE")
    if len(subjects) != 1 or not isinstance(subjects[0], dict):
        raise _fail(f"an OMS v1.0 statement has exactly one subject, got {len(subjects)}")
    subject = subjects[0]
    name = _str(subject, "name", "subject")
    digest = subject.get("digest")
    if not isinstance(digest, dict) or not isinstance(digest.get("sha256"), str):
        raise _fail("subject digest must hold a sha256 value")
    predicate = st.get("predicate")
    if not isinstance(predicate, dict):
        raise _fail("the predicate is not a JSON object")
    ser = predicate.get("serialization")
    if not isinstance(ser, dict):
        raise _fail("predicate.serialization is missing")
    method = _str(ser, "method", "serialization")
    hash_type = _str(ser, "hash_type", "serialization")
    if method not in ("files", "shards"):
        raise _fail(f"unknown serialization method {method!r}", "UNSUPPORTED_METHOD")
    allow = ser.get("allow_symlinks", False)
    if isinstance(allow, str):  # the legacy compat path of the OMS tool writes "false"
        allow = allow.lower() == "true"
    if not isinstance(allow, bool):
        raise _fail("serialization.allow_symlinks must be a boolean")
    # model_signing < 1.1 left the git paths out without recording them.
    ignore = ser.get("ignore_paths", list(GIT_PATHS))
    if not isinstance(ignore, list) or not all(isinstance(p, str) for p in ignore):
        raise _fail("serialization.ignore_paths must be a list of strings")
    resources = _resources(predicate.get("resources"), method)
    shard_size, shards = None, {}
    if method == "shards":
        # Both wire forms: the spec's, and model_signing's "<hash>-sharded-N" + float size.
        shard_size = shard_size_of(ser, [r.algorithm for r in resources])
        resources = [
            replace(r, algorithm=shard_hash(r.algorithm, hash_type, r.name)) for r in resources
        ]
        shards = tile_shards(resources, shard_size)
    elif "shard_size" in ser:
        raise _fail("serialization.shard_size must be absent when method is 'files'")
    actual = root_digest(resources)
    if actual != digest["sha256"]:
        raise VerificationError(
            "the subject digest does not match the signed resources",
            code="SUBJECT_DIGEST_MISMATCH",
            expected=digest["sha256"],
            actual=actual,
        )
    manifest = None
    if MANIFEST_FIELD in predicate:
        try:
            # Already parsed with the payload (duplicate keys refused there).
            manifest = manifest_from_json(predicate[MANIFEST_FIELD], "the signed manifest")
        except ManifestError as exc:
            raise _fail(
                f"the signed manifest is invalid: {exc.message}", "MANIFEST_INVALID"
            ) from exc
        _check_manifest_matches(manifest, resources, shards if shard_size else None)
    return SignedStatement(
        PREDICATE_V1,
        name,
        digest["sha256"],
        tuple(resources),
        method,
        hash_type,
        allow,
        tuple(_safe_name(p.rstrip("/"), "ignore path") for p in ignore),
        manifest,
        shard_size,
        shards,
    )


def _safe_name(path: str, where: str) -> str:
    """``path`` if it is a safe relative POSIX name, else an UNSAFE_NAME failure."""
    try:
        return check_relative_name(path, where=where)
    except DiscoveryError as exc:
        raise _fail(exc.message, "UNSAFE_NAME") from exc


def _resources(raw: object, method: str) -> list[Resource]:
    if not isinstance(raw, list):
        raise _fail("predicate.resources must be a list")
    out: list[Resource] = []
    seen: set[str] = set()
    for i, item in enumerate(raw):
        if not isinstance(item, dict):
            raise _fail(f"resource {i} is not an object")
        name = _str(item, "name", f"resources[{i}]")
        algorithm = _str(item, "algorithm", f"resources[{i}]")
        digest = _str(item, "digest", f"resources[{i}]").lower()
        known = (
            algorithm in ("sha256", "blake2b", "blake3")
            if method == "files"
            else known_shard_algorithm(algorithm)
        )
        if not known:
            raise _fail(
                f"resource {name!r}: unknown hash algorithm {algorithm!r}", "UNKNOWN_ALGORITHM"
            )
        want = 128 if algorithm.startswith("blake2b") else 64
        if len(digest) != want or not all(c in "0123456789abcdef" for c in digest):
            raise _fail(f"resource {name!r}: digest is not {want} hex digits")
        path = parse_shard_name(name)[0] if method == "shards" else name
        if path != SINGLE_FILE_RESOURCE:
            _safe_name(path, "resource name")
        if name in seen:
            raise _fail(f"resource {name!r} is listed twice", "DUPLICATE_RESOURCE")
        seen.add(name)
        out.append(Resource(name, algorithm, digest))
    return out


def _check_manifest_matches(
    manifest: Manifest, resources: list[Resource], shards: Mapping[str, tuple[Shard, ...]] | None
) -> None:
    """The manifest and the OMS resources are signed together: they must agree."""
    if shards is not None:
        # Shards carry no whole-file digest: the files and their sizes must agree.
        sizes = {n: s[-1].end for n, s in shards.items()}
        files = {f.path: f.size for f in manifest.files if f.size}
        ok = sizes == files or (
            manifest.single_file and list(sizes.values()) == list(files.values())
        )
    elif manifest.single_file:
        ok = len(resources) == 1 and len(manifest.files) == 1
        ok = ok and resources[0].digest == manifest.files[0].sha256
    else:
        ok = {(r.name, r.digest) for r in resources} == {(f.path, f.sha256) for f in manifest.files}
    if not ok:
        raise _fail("the signed manifest disagrees with the signed resources", "MANIFEST_MISMATCH")


def _parse_legacy(subjects: list[Any]) -> SignedStatement:
    """``Digests/v0.1``: one subject per file, SHA-256 only, nothing else recorded."""
    resources: list[Resource] = []
    for i, s in enumerate(subjects):
        if not isinstance(s, dict):
            raise _fail(f"subject {i} is not an object")
        name = _str(s, "name", f"subject[{i}]")
        digest = s.get("digest")
        if not isinstance(digest, dict) or not isinstance(digest.get("sha256"), str):
            raise _fail(f"subject {name!r} has no sha256 digest", "UNKNOWN_ALGORITHM")
        value = digest["sha256"].lower()
        if not _HEX64.match(value):
            raise _fail(f"subject {name!r}: digest is not 64 hex digits")
        _safe_name(name, "subject name")
        resources.append(Resource(name, "sha256", value))
    return SignedStatement(
        PREDICATE_LEGACY,
        "",
        root_digest(resources),
        tuple(resources),
        "files",
        "sha256",
        False,
        GIT_PATHS,
        None,
    )
