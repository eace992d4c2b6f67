"""The OMS v1.0 statement: written spec-valid, read strictly.

What modelsign writes is exactly what the OMS v1.0 schema allows: a
predicate holding ``resources`` and ``serialization`` and nothing else. The
first resource descriptor carries one annotation, a signed marker saying that
a modelsign attestation (the manifest, in ``claims.jsonl``) extends this
statement; in-toto resource descriptors are the one place the spec leaves
open ("verifiers MUST ignore unrecognized fields", §5.2.1). The payload is
RFC 8785 canonical JSON, so the signed bytes are deterministic.

Reading validates the statement against the v1.0 schema's rules, naming the
field at fault, and tolerates only the documented deviations of deployed
``model_signing`` versions: per-component resource order, a float
``shard_size``, the ``"."`` name of a single file, the ``Digests/v0.1``
predicate, and (from earlier modelsign versions) the manifest inside the
predicate.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Literal

from ...codes import Code
from ...errors import DiscoveryError, ManifestError, VerificationError
from .._json import canonical_dumps, strict_loads
from ..discover import GIT_PATHS, check_relative_name
from ..manifest import FileEntry, Manifest, manifest_from_json
from .shards import Shard, parse_shard_name, resource_hash, shard_size_of, tile_shards

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_V1 = "https://model_signing/signature/v1.0"
PREDICATE_LEGACY = "https://model_signing/Digests/v0.1"
#: Where modelsign < 0.2 put its manifest (inside the OMS predicate, which the
#: v1.0 schema forbids); still read, with a warning to re-sign.
LEGACY_MANIFEST_FIELD = "https://modelsign.dev/manifest/v1"
#: The predicate type of modelsign's attestation (see ``attestation``).
ATTESTATION_TYPE = "https://modelsign.dev/attestation/v1"
#: The annotation on a resource descriptor that says the attestation exists.
MARKER = "dev.modelsign.attestation"
SINGLE_FILE_RESOURCE = "."  # how the OMS tool names the resource of a single-file model

#: The OMS algorithm registry: file hash → hex digits of its digest.
HASH_HEX_LENGTH = {"sha256": 64, "blake2b": 128, "blake3": 64}
_HEX = re.compile(r"^[0-9a-f]+$")
_PREDICATE_KEYS = {"resources", "serialization"}
_SERIALIZATION_KEYS = {"method", "hash_type", "allow_symlinks", "ignore_paths", "shard_size"}
_STATEMENT_KEYS = {"_type", "subject", "predicateType", "predicate"}

SingleFileName = Literal["oms-tool", "spec"]


@dataclass(frozen=True)
class Resource:
    """One signed resource: a file (or a shard of one) and its digest."""

    name: str
    algorithm: str  # the file hash ("sha256", ...), also for model_signing's "-sharded-N" form
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
    #: The modelsign manifest: from the bound attestation, or from an old
    #: modelsign signature's predicate (``legacy_manifest``).
    manifest: Manifest | None
    payload_sha256: str = ""  # SHA-256 of the signed payload bytes: what an attestation binds to
    attestation_type: str | None = None  # the signed marker: an attestation must extend this
    legacy_manifest: bool = False
    release: str | None = None  # the release the bound attestation names (``sign --release``)
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

    @cached_property
    def _entries(self) -> dict[str, FileEntry]:
        # Looked up once per file: a manifest scan per lookup is quadratic.
        return {e.path: e for e in self.manifest.files} if self.manifest else {}

    def entry(self, name: str) -> FileEntry | None:
        """The signed manifest's entry for the file ``name`` (the one file of a single-file one)."""
        if self.manifest is not None and self.manifest.single_file:
            return self.manifest.files[0]
        return self._entries.get(name)

    def signed_size(self, name: str) -> int | None:
        """The size the signature records for ``name``: its manifest entry, else its last shard."""
        entry = self.entry(name)
        if entry is not None:
            return entry.size
        tiles = self.shards.get(name)
        return tiles[-1].end if tiles else None

    @property
    def single_file_name(self) -> str | None:
        """The one resource's file name when the statement may cover a single file."""
        names = self.files
        return next(iter(names)) if len(names) == 1 else None


def resource_file(name: str, method: str) -> str:
    """The file a resource named ``name`` covers, under serialization ``method``."""
    return name.rsplit(":", 2)[0] if method == "shards" else name


def root_digest(resources: Sequence[Resource]) -> str:
    """SHA-256 over the raw bytes of every resource digest, in listed order (OMS §6.5.1)."""
    h = hashlib.sha256()
    for r in resources:
        h.update(bytes.fromhex(r.digest))
    return h.hexdigest()


def build_statement(
    manifest: Manifest,
    *,
    subject_name: str,
    ignore_paths: Sequence[str],
    single_file_name: SingleFileName = "oms-tool",
    shards: Sequence[Mapping[str, str]] | None = None,
    shard_size: int | None = None,
    attested: bool = True,
) -> bytes:
    """The canonical OMS statement bytes for ``manifest``.

    ``ignore_paths`` are concrete relative paths (the spec forbids patterns).
    ``shards`` (spec-form resource dicts) with ``shard_size`` select the shard
    serialization. With ``attested`` the first resource carries the marker
    that a modelsign attestation extends this statement.
    """
    items: list[dict[str, Any]]
    if shards is not None:
        items = [dict(r) for r in shards]
    elif manifest.single_file:
        (f,) = manifest.files
        name = SINGLE_FILE_RESOURCE if single_file_name == "oms-tool" else f.path
        items = [{"name": name, "algorithm": "sha256", "digest": f.sha256}]
    else:
        items = [
            {"name": f.path, "algorithm": "sha256", "digest": f.sha256} for f in manifest.files
        ]
    items.sort(key=lambda r: r["name"])  # Unicode code point order (§5.2.1)
    if not items:
        # Only zero-length files under shard serialization: nothing to sign (§6.1).
        raise ManifestError(
            "no resource to sign: every file is empty (shards skip empty files)",
            code=Code.EMPTY_MODEL,
        )
    if attested:
        items[0]["annotations"] = {MARKER: ATTESTATION_TYPE}
    serialization: dict[str, Any] = {
        "method": "shards" if shards is not None else "files",
        "hash_type": "sha256",
        "allow_symlinks": manifest.allow_symlinks,
        "ignore_paths": sorted(set(ignore_paths)),
    }
    if shards is not None:
        serialization["shard_size"] = shard_size
    resources = [Resource(r["name"], r["algorithm"], r["digest"]) for r in items]
    statement: dict[str, Any] = {
        "_type": STATEMENT_TYPE,
        "subject": [{"name": subject_name, "digest": {"sha256": root_digest(resources)}}],
        "predicateType": PREDICATE_V1,
        "predicate": {"serialization": serialization, "resources": items},
    }
    return canonical_dumps(statement)


def strict_json(data: bytes, what: str) -> Any:
    """Parse JSON, refusing duplicate keys (parsers disagree on which one wins)."""

    return strict_loads(
        data,
        lambda k: VerificationError(
            f"{what} has a duplicate JSON key {k!r}", code=Code.DUPLICATE_JSON_KEY
        ),
        lambda why: VerificationError(f"{what} is not valid JSON: {why}", code=Code.MALFORMED_JSON),
    )


def _fail(message: str, code: str = "STATEMENT_INVALID") -> VerificationError:
    return VerificationError(message, code=code)


def _str(obj: Mapping[str, Any], key: str, where: str, *, empty: bool = False) -> str:
    value = obj.get(key)
    if not isinstance(value, str):
        got = "missing" if key not in obj else f"a {type(value).__name__}"
        raise _fail(f"{where}.{key} must be a string, got {got}")
    if not value and not empty:
        raise _fail(f"{where}.{key} must not be empty")
    return value


def _no_extra(obj: Mapping[str, Any], allowed: set[str], where: str) -> None:
    extra = sorted(set(obj) - allowed)
    if extra:
        raise _fail(
            f"{where} has a field the OMS v1.0 schema does not allow: {extra[0]!r}",
            "STATEMENT_SCHEMA",
        )


def parse_statement(payload: bytes) -> SignedStatement:
    """Read an OMS statement from a DSSE payload and check it against the v1.0 rules."""
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
    _no_extra(st, _STATEMENT_KEYS, "the statement")
    name, subject_digest = _subject(subjects)
    predicate = st.get("predicate")
    if not isinstance(predicate, dict):
        raise _fail("the predicate is not a JSON object")
    legacy = LEGACY_MANIFEST_FIELD in predicate
    _no_extra(
        predicate, _PREDICATE_KEYS | ({LEGACY_MANIFEST_FIELD} if legacy else set()), "predicate"
    )
    ser = _serialization(predicate.get("serialization"))
    raw = predicate.get("resources")
    shard_size = _shard_size(ser, raw)
    resources = _resources(raw, ser.method, ser.hash_type)
    shards = tile_shards(resources, shard_size) if shard_size is not None else {}
    actual = root_digest(resources)
    if actual != subject_digest:
        raise VerificationError(
            "the subject digest does not match the signed resources",
            code=Code.SUBJECT_DIGEST_MISMATCH,
            expected=subject_digest,
            actual=actual,
        )
    manifest = _legacy_manifest(predicate[LEGACY_MANIFEST_FIELD], resources) if legacy else None
    return SignedStatement(
        PREDICATE_V1,
        name,
        subject_digest,
        tuple(resources),
        ser.method,
        ser.hash_type,
        ser.allow_symlinks,
        ser.ignore_paths,
        manifest,
        payload_sha256=hashlib.sha256(payload).hexdigest(),
        attestation_type=_marker(raw),
        legacy_manifest=legacy,
        shard_size=shard_size,
        shards=shards,
    )


@dataclass(frozen=True)
class _Serialization:
    method: str
    hash_type: str
    allow_symlinks: bool
    ignore_paths: tuple[str, ...]
    raw: Mapping[str, Any]


def _serialization(ser: object) -> _Serialization:
    """``predicate.serialization``, checked against the v1.0 schema."""
    if not isinstance(ser, dict):
        raise _fail("predicate.serialization is missing or not an object")
    _no_extra(ser, _SERIALIZATION_KEYS, "predicate.serialization")
    method = _str(ser, "method", "serialization")
    hash_type = _str(ser, "hash_type", "serialization")
    if method not in ("files", "shards"):
        raise _fail(f"unknown serialization method {method!r}", "UNSUPPORTED_METHOD")
    if hash_type not in HASH_HEX_LENGTH:
        raise _fail(
            f"serialization.hash_type {hash_type!r} is not in the OMS algorithm registry",
            "UNKNOWN_ALGORITHM",
        )
    allow = ser.get("allow_symlinks")
    if not isinstance(allow, bool):
        raise _fail("serialization.allow_symlinks is required and must be a boolean")
    # model_signing < 1.1 left the git paths out without recording them (§11.2).
    ignore = ser.get("ignore_paths", list(GIT_PATHS))
    if not isinstance(ignore, list) or not all(isinstance(p, str) and p for p in ignore):
        raise _fail("serialization.ignore_paths must be a list of non-empty strings")
    for p in ignore:
        if any(c in p for c in "*?["):
            raise _fail(f"serialization.ignore_paths entry {p!r} has a glob character")
    names = tuple(_safe_name(p.rstrip("/"), "ignore path") for p in ignore)
    return _Serialization(method, hash_type, allow, names, ser)


def _shard_size(ser: _Serialization, raw: object) -> int | None:
    """The shard size of a shard statement (both wire forms); a files statement has none."""
    if ser.method == "files":
        if "shard_size" in ser.raw:
            raise _fail("serialization.shard_size must be absent when the method is 'files'")
        return None
    # The spec's form, and model_signing's "<hash>-sharded-N" with a float size.
    items = raw if isinstance(raw, list) else []
    algorithms = [r.get("algorithm") for r in items if isinstance(r, dict)]
    return shard_size_of(ser.raw, [a for a in algorithms if isinstance(a, str)])


def _subject(subjects: list[Any]) -> tuple[str, str]:
    if len(subjects) != 1 or not isinstance(subjects[0], dict):
        raise _fail(f"an OMS v1.0 statement has exactly one subject, got {len(subjects)}")
    subject = subjects[0]
    name = _str(subject, "name", "subject[0]")
    digest = subject.get("digest")
    if not isinstance(digest, dict) or not isinstance(digest.get("sha256"), str):
        raise _fail("subject[0].digest must hold a sha256 value")
    for alg, value in digest.items():
        if not isinstance(value, str) or not _HEX.match(value):
            raise _fail(f"subject[0].digest.{alg} is not lower-case hex")
    if len(digest["sha256"]) != 64:
        raise _fail("subject[0].digest.sha256 is not 64 hex digits")
    return name, digest["sha256"]


def _marker(raw: object) -> str | None:
    """The attestation type a resource descriptor's annotation promises, if any."""
    assert isinstance(raw, list)
    for item in raw:
        notes = item.get("annotations") if isinstance(item, dict) else None
        if isinstance(notes, dict) and MARKER in notes:
            value = notes[MARKER]
            if not isinstance(value, str) or not value:
                raise _fail(f"the {MARKER} annotation must be a non-empty string")
            return value
    return None


def _safe_name(path: str, where: str) -> str:
    """``path`` if it is a safe relative POSIX name, else an UNSAFE_NAME failure."""
    try:
        return check_relative_name(path, where=where)
    except DiscoveryError as exc:
        raise _fail(exc.message, "UNSAFE_NAME") from exc


def _algorithm(algorithm: str, method: str, hash_type: str, name: str) -> str:
    """The file hash a resource uses, which must be the serialization's ``hash_type``."""
    if method == "files" and algorithm not in HASH_HEX_LENGTH:
        # model_signing's "<hash>-sharded-N" names belong to shard statements only.
        raise _fail(f"resource {name!r}: unknown hash algorithm {algorithm!r}", "UNKNOWN_ALGORITHM")
    return resource_hash(algorithm, hash_type, name)


def _resources(raw: object, method: str, hash_type: str) -> list[Resource]:
    if not isinstance(raw, list):
        raise _fail("predicate.resources must be a list")
    if not raw:
        raise _fail("predicate.resources is empty: an OMS model has at least one file")
    out: list[Resource] = []
    seen: set[str] = set()
    for i, item in enumerate(raw):
        where = f"resources[{i}]"
        if not isinstance(item, dict):
            raise _fail(f"{where} is not an object")
        name = _str(item, "name", where)
        algorithm = _algorithm(_str(item, "algorithm", where), method, hash_type, name)
        digest = _str(item, "digest", where)
        want = HASH_HEX_LENGTH[algorithm]
        if len(digest) != want or not _HEX.match(digest):
            raise _fail(f"{where} ({name!r}): digest is not {want} lower-case hex digits")
        path = parse_shard_name(name)[0] if method == "shards" else name
        if path != SINGLE_FILE_RESOURCE:
            _safe_name(path, "resource name")
        if name in seen:
            raise _fail(f"resource {name!r} is listed twice", "DUPLICATE_RESOURCE")
        seen.add(name)
        out.append(Resource(name, algorithm, digest))
    _check_order(out, method)
    return out


def _check_order(resources: list[Resource], method: str) -> None:
    """Code point order (the spec), or the per-component order ``model_signing`` writes."""
    names = [r.name for r in resources]
    if names == sorted(names):
        return

    def component_key(name: str) -> tuple[list[str], int]:
        if method == "shards":  # names already checked by parse_shard_name
            path, start, _ = parse_shard_name(name)
            return path.split("/"), start
        return name.split("/"), 0

    if names != sorted(names, key=component_key):
        raise _fail(
            "predicate.resources are not in Unicode code point order (§5.2.1)", "RESOURCE_ORDER"
        )


def _legacy_manifest(raw: object, resources: list[Resource]) -> Manifest:
    """The manifest an earlier modelsign put inside the predicate, checked against the resources."""
    try:
        # Already parsed with the payload (duplicate keys refused there).
        manifest = manifest_from_json(raw, "the signed manifest")
    except ManifestError as exc:
        raise _fail(f"the signed manifest is invalid: {exc.message}", "MANIFEST_INVALID") from exc
    check_manifest_matches(manifest, resources)
    return manifest


def check_manifest_matches(
    manifest: Manifest,
    resources: Sequence[Resource],
    shards: Mapping[str, tuple[Shard, ...]] | None = None,
) -> None:
    """A manifest and the OMS resources it extends are signed together: they must agree.

    Under shard serialization (``shards``: each file's tiled ranges) every
    non-empty file of the manifest ends where its last shard does (zero-length
    files have no shard).
    """
    if shards:
        ends = {path: tiles[-1].end for path, tiles in shards.items()}
        files = manifest.files
        if manifest.single_file and len(ends) == 1 and len(files) == 1:
            ok = next(iter(ends.values())) == files[0].size
        else:
            ok = ends == {f.path: f.size for f in files if f.size > 0}
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
        value = digest["sha256"]
        if len(value) != 64 or not _HEX.match(value):
            raise _fail(f"subject {name!r}: digest is not 64 lower-case hex digits")
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
