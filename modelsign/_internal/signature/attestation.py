"""modelsign's attestation: the manifest in its own statement, bound to the OMS one.

The OMS v1.0 predicate allows nothing beyond ``resources`` and
``serialization``, so the manifest (tensor digests, quantization, licence,
provenance) travels as a second in-toto statement about the same subject,
signed by the same signer in the same run. It names the OMS statement it
extends by the SHA-256 of that statement's payload; the OMS statement carries
a signed marker saying that such an attestation exists, so removing it is a
failure rather than a silent downgrade to file-level checks.

Layout (the unified layout proposed for OMS, ossf/model-signing-spec PR #5):
``model.sig`` stays a plain OMS bundle, and the attestation is one line of
``claims.jsonl`` beside it, each line a complete Sigstore bundle. Lines of
other tools are kept when modelsign rewrites the file.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from ...codes import Code
from ...errors import InputError, ManifestError, VerificationError
from .._atomic import open_regular
from .._json import canonical_dumps, paused_gc
from ..manifest import Manifest, manifest_from_json
from .bundle import MAX_SIGNATURE_BYTES, Envelope, read_bundle, read_signature_file
from .location import claims_path
from .statement import (
    ATTESTATION_TYPE,
    PREDICATE_V1,
    STATEMENT_TYPE,
    SignedStatement,
    check_manifest_matches,
    parse_statement,
    strict_json,
)
from .verifiers import SignerInfo


@dataclass(frozen=True)
class Attestation:
    """modelsign's attestation as read from one claims line (signature not yet checked)."""

    subject_name: str
    subject_digest: str
    statement_sha256: str  # the OMS payload it extends
    manifest: Manifest
    release: str | None = None  # the version this signature speaks for, as the signer said


@dataclass
class Signed:
    """A signature read (and, with a verifier, verified) together with its attestation."""

    envelope: Envelope
    statement: SignedStatement
    signer: SignerInfo | None = None
    claims: str | None = None  # the claims file the manifest came from
    notes: list[str] = field(default_factory=list)


def build_attestation(
    manifest: Manifest, oms_statement: bytes, *, release: str | None = None
) -> bytes:
    """The canonical attestation bytes extending ``oms_statement`` with ``manifest``.

    ``release`` names the version the signature speaks for (``v1.4``): signed,
    it lets a verifier refuse an older release put back in place.
    """
    subject = json.loads(oms_statement)["subject"]
    predicate: dict[str, Any] = {
        "statement": {
            "predicateType": PREDICATE_V1,
            "sha256": hashlib.sha256(oms_statement).hexdigest(),
        },
        "manifest": manifest.model_dump(mode="json"),
    }
    if release is not None:
        predicate["release"] = release
    statement = {
        "_type": STATEMENT_TYPE,
        "subject": subject,
        "predicateType": ATTESTATION_TYPE,
        "predicate": predicate,
    }
    return canonical_dumps(statement)


def _fail(message: str, code: str = "ATTESTATION_INVALID") -> VerificationError:
    return VerificationError(message, code=code)


def _object(
    value: object, keys: set[str], where: str, optional: frozenset[str] = frozenset()
) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _fail(f"{where} is not a JSON object")
    if not keys <= set(value) <= keys | optional:
        raise _fail(f"{where} must have exactly the fields {sorted(keys)}, has {sorted(value)}")
    return value


def parse_attestation(payload: bytes) -> Attestation:
    """Read a modelsign attestation strictly (its own format: no unknown fields)."""
    return _attestation(strict_json(payload, "the attestation"))


def _attestation(parsed: object) -> Attestation:
    st = _object(parsed, {"_type", "subject", "predicateType", "predicate"}, "the attestation")
    if st["_type"] != STATEMENT_TYPE or st["predicateType"] != ATTESTATION_TYPE:
        raise _fail(f"not a modelsign attestation ({st['predicateType']!r})")
    subjects = st["subject"]
    if not isinstance(subjects, list) or len(subjects) != 1:
        raise _fail("the attestation must have exactly one subject")
    subject = _object(subjects[0], {"name", "digest"}, "the attestation's subject")
    digest = _object(subject["digest"], {"sha256"}, "the attestation's subject digest")
    predicate = _object(
        st["predicate"],
        {"statement", "manifest"},
        "the attestation's predicate",
        frozenset({"release"}),
    )
    release = predicate.get("release")
    if release is not None and (not isinstance(release, str) or not release):
        raise _fail("the attestation's release must be a non-empty string")
    ref = _object(predicate["statement"], {"predicateType", "sha256"}, "predicate.statement")
    values = (subject["name"], digest["sha256"], ref["sha256"])
    if not all(isinstance(v, str) and v for v in values):
        raise _fail("the attestation's subject and statement reference must be strings")
    try:
        manifest = manifest_from_json(predicate["manifest"], "the attested manifest")
    except ManifestError as exc:
        raise _fail(f"the attested manifest is invalid: {exc.message}", "MANIFEST_INVALID") from exc
    return Attestation(subject["name"], digest["sha256"], ref["sha256"], manifest, release)


def read_claims(path: str) -> list[bytes] | None:
    """The lines of a claims file (None when there is none): regular files only, size-capped."""
    try:
        with open_regular(path) as fh:
            data = fh.read(MAX_SIGNATURE_BYTES + 1)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise InputError(
            f"cannot read the claims file: {exc.strerror}", code=Code.CLAIMS_UNREADABLE, path=path
        ) from exc
    if len(data) > MAX_SIGNATURE_BYTES:
        raise InputError(
            f"the claims file is larger than {MAX_SIGNATURE_BYTES} bytes",
            code=Code.CLAIMS_UNREADABLE,
            path=path,
        )
    return [line for line in data.split(b"\n") if line.strip()]


def _predicate_type(envelope: Envelope) -> object:
    try:
        st = json.loads(envelope.payload)
    except ValueError:
        return None
    return st.get("predicateType") if isinstance(st, dict) else None


def merged_claims(existing: Sequence[bytes], bundle: bytes) -> bytes:
    """The claims file after signing: others' lines kept, modelsign's replaced by ``bundle``."""
    keep: list[bytes] = []
    for line in existing:
        try:
            ours = _predicate_type(read_bundle(line)) == ATTESTATION_TYPE
        except VerificationError:
            ours = False  # not ours to judge: left as it was
        if not ours:
            keep.append(line.strip())
    compact = json.dumps(json.loads(bundle), separators=(",", ":"), sort_keys=True).encode()
    return b"\n".join([*keep, compact]) + b"\n"


def same_signer(a: SignerInfo, b: SignerInfo) -> bool:
    """Whether two verified signatures were made by one signer.

    Keys by their hint, certificates by the leaf itself, Sigstore by the
    certificate's identity and OIDC issuer (a later run gets another
    short-lived certificate for the same identity).
    """
    if a.kind != b.kind:
        return False
    if a.kind == "key":
        return a.key_hint is not None and a.key_hint == b.key_hint
    if a.kind == "certificate":
        return a.fingerprint is not None and a.fingerprint == b.fingerprint
    return a.identity is not None and (a.identity, a.oidc_issuer) == (b.identity, b.oidc_issuer)


def bind(
    signed: Signed,
    lines: Sequence[bytes] | None,
    verify: Callable[[Envelope], SignerInfo] | None,
) -> Signed:
    """Attach the attestation that extends ``signed``'s statement, or fail if one is promised.

    A line counts when it is a modelsign attestation naming this exact OMS
    payload and subject; with ``verify`` its signature must verify and be the
    OMS signer's. Without ``verify`` (reading a signature to show or compare
    it) the binding is by digest only.
    """
    st = signed.statement
    if st.legacy_manifest:
        signed.notes.append(
            "signed by an earlier modelsign version (the manifest inside the OMS predicate, "
            "which OMS v1.0 forbids): re-sign to get a spec-valid signature"
        )
        return signed
    why: list[str] = []
    invalid: VerificationError | None = None  # a modelsign attestation whose manifest is invalid
    for i, line in enumerate(lines or ()):
        try:
            read = _read_line(line)
        except VerificationError as exc:
            why.append(f"line {i + 1}: {exc.message}")
            if exc.code == "MANIFEST_INVALID" and invalid is None:
                invalid = _fail(f"{signed.claims} line {i + 1}: {exc.message}", exc.code)
            continue
        if read is None:
            continue
        env, att = read
        try:
            _check_bound(signed, env, att, verify)
        except VerificationError as exc:
            why.append(f"line {i + 1}: {exc.message}")
            continue
        signed.statement = replace(st, manifest=att.manifest, release=att.release)
        return signed
    return _none_bound(signed, lines, why, invalid)


def _read_line(line: bytes) -> tuple[Envelope, Attestation] | None:
    """A claims line as a modelsign attestation (None: a line of another kind)."""
    env = read_bundle(line)
    # Parsed once, strictly (a large model's manifest is tens of megabytes).
    parsed = strict_json(env.payload, "the attestation")
    if not isinstance(parsed, dict) or parsed.get("predicateType") != ATTESTATION_TYPE:
        return None
    return env, _attestation(parsed)


def _check_bound(
    signed: Signed,
    env: Envelope,
    att: Attestation,
    verify: Callable[[Envelope], SignerInfo] | None,
) -> None:
    """Refuse an attestation of another statement, another manifest or another signer."""
    st = signed.statement
    if att.statement_sha256 != st.payload_sha256 or att.subject_digest != st.subject_digest:
        raise _fail(f"extends another statement (sha256 {att.statement_sha256})")
    check_manifest_matches(att.manifest, st.resources, st.shards)
    if verify is not None:
        who = verify(env)
        if signed.signer is None or not same_signer(who, signed.signer):
            raise _fail("signed by someone other than the model's signer", "ATTESTATION_SIGNER")


def _none_bound(
    signed: Signed,
    lines: Sequence[bytes] | None,
    why: Sequence[str],
    invalid: VerificationError | None,
) -> Signed:
    """No line extends the statement: fine only when the signature promises none."""
    st = signed.statement
    if st.attestation_type is None:
        return signed  # an OMS signature with nothing more promised: file-level checks
    if st.attestation_type != ATTESTATION_TYPE:
        raise _fail(
            f"the signature promises an attestation of type {st.attestation_type!r}, "
            "which this modelsign cannot check",
            "ATTESTATION_UNSUPPORTED",
        )
    where = signed.claims or "the claims file"
    if lines is None:
        raise _fail(
            f"the signature says a modelsign attestation extends it, but {where} is missing",
            "ATTESTATION_MISSING",
        )
    if invalid is not None:
        raise invalid  # the manifest's own fault, said with its code (nothing else bound)
    detail = "; ".join(why[:3]) or "no modelsign attestation in it"
    raise _fail(
        f"no attestation in {where} is bound to this signature ({detail})", "ATTESTATION_UNBOUND"
    )


def load_signature(
    path: str,
    *,
    verify: Callable[[Envelope], SignerInfo] | None = None,
    claims: str | None = None,
    data: bytes | None = None,
) -> Signed:
    """Read the OMS bundle at ``path`` (verifying it with ``verify``) and bind its attestation.

    ``claims`` defaults to :func:`claims_path` of ``path``.
    """
    envelope = read_bundle(read_signature_file(path) if data is None else data)
    signer = verify(envelope) if verify is not None else None
    statement = parse_statement(envelope.payload)
    where = claims if claims is not None else claims_path(path)
    signed = Signed(envelope, statement, signer, where)
    lines = None if statement.predicate_type != PREDICATE_V1 else read_claims(where)
    with paused_gc():  # one collection after the manifest is built, not one per step
        return bind(signed, lines, verify)
