"""Verification: signature → statement → the model on disk → policy → one decision.

The signature is read where :func:`signature_location` says, verified and
bound to its attestation; the model on disk is read (``_observe``) and judged
against the signed statement by the check core (``_internal.check``): the
signed ``ignore_paths`` and symlink rule are re-applied as recorded, the
verifier's own ``--ignore`` patterns can only excuse unsigned extra files,
never a signed one, and any mismatch is diagnosed down to the tensor. The
policy then judges, and a :class:`Decision` says whether the failure raises.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Final, Literal

from pydantic import BaseModel, ConfigDict, PrivateAttr

from ._internal._text import plural
from ._internal.check.compare import Problem
from ._internal.check.decision import Decision, OnFailure, grade
from ._internal.check.facts import Judgement
from ._internal.check.judge import judge
from ._internal.discover import discover
from ._internal.formats import sniff_file
from ._internal.manifest import Manifest, metadata_manifest
from ._internal.metadata.provenance import source_matches, source_text
from ._internal.signature.attestation import Signed
from ._internal.signature.location import SignatureLocation, moved_note, signature_location
from ._internal.signature.statement import SignedStatement
from ._internal.signature.verifiers import SignerInfo, Verifier
from ._observe import ignored_formats, observe, read_signature
from ._trust import Trust, resolve_trust
from .codes import Code
from .errors import InputError, ModelsignError, VerificationError
from .policy import Policy, PolicyReport, evaluate
from .provenance import ProvenanceInfo, builder_disagreement, verify_provenance

RESULT_KIND: Final = "modelsign.verification"


class SubjectInfo(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    sha256: str


class VerificationResult(BaseModel):
    """What was verified, by whom it was signed, and every problem found (stable schema)."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["modelsign.verification"] = RESULT_KIND
    version: Literal[1] = 1
    verdict: Literal["verified", "failed"]
    model: str
    signature: str
    signer: SignerInfo | None = None
    predicate_type: str | None = None
    subject: SubjectInfo | None = None
    manifest_digest: str | None = None
    weights_digest: str | None = None
    model_name: str | None = None  # the signed manifest's name (bind it with expect_name)
    source: str | None = None  # the signed source repository, "org/name[@revision]"
    release: str | None = None  # the release the signature speaks for (sign --release)
    files_verified: int = 0
    files_by_tensor_digests: int = 0
    tensors_verified: int = 0
    bytes_verified: int = 0
    problems: list[Problem] = []
    policy: PolicyReport | None = None
    provenance: ProvenanceInfo | None = None
    # The manifest of the verified signature (not part of the JSON): read once, reused.
    _manifest: Manifest | None = PrivateAttr(default=None)

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]

    @property
    def signed_manifest(self) -> Manifest | None:
        """The manifest the signature's attestation carries (None for an OMS-only signature).

        Authentic once the signature verified: check ``verdict`` first.
        """
        return self._manifest


def verify(
    model: str | os.PathLike[str],
    *,
    verifier: Verifier | None = None,
    policy: Policy | None = None,
    signature: str | os.PathLike[str] | None = None,
    ignore: Sequence[str] = (),
    jobs: int | None = None,
    progress: Callable[[int, int], None] | None = None,
    now: datetime | None = None,
    provenance: str | os.PathLike[str] | bool | None = None,
    claims: str | os.PathLike[str] | None = None,
    expect_name: str | None = None,
    expect_source: str | None = None,
) -> VerificationResult:
    """Verify ``model`` against its signature (and ``policy``); return what was verified.

    Trust follows :class:`~modelsign._trust.Trust`: ``verifier`` (the
    caller's) is always enforced, and the policy's ``signers``, when listed,
    must also verify, as their rule's mode says. Raises
    :class:`VerificationError` (with ``findings`` and ``result``) when anything
    fails — under a policy, when an enforced rule fails — and
    :class:`InputError` for unusable inputs. The signature is found where
    ``signature_location`` says (``model.sig`` in a folder, or in the snapshot
    of a Hugging Face cache repo folder; ``FILE.sig`` beside a file) unless
    ``signature`` names it. ``claims`` is the file holding modelsign's
    attestation (default: ``claims.jsonl`` beside ``model.sig``).
    ``expect_name`` / ``expect_source`` bind the signature to the model the
    caller means: another model signed by the same signer, copied over this
    one, carries another name or source (``org/name``, or ``org/name@rev``).
    """
    return verify_model(
        model,
        verifier=verifier,
        policy=policy,
        signature=signature,
        ignore=ignore,
        jobs=jobs,
        progress=progress,
        now=now,
        provenance=provenance,
        claims=claims,
        expect_name=expect_name,
        expect_source=expect_source,
    )


def verify_model(
    model: str | os.PathLike[str],
    *,
    verifier: Verifier | None = None,
    policy: Policy | None = None,
    signature: str | os.PathLike[str] | None = None,
    ignore: Sequence[str] = (),
    jobs: int | None = None,
    progress: Callable[[int, int], None] | None = None,
    now: datetime | None = None,
    provenance: str | os.PathLike[str] | bool | None = None,
    claims: str | os.PathLike[str] | None = None,
    expect_name: str | None = None,
    expect_source: str | None = None,
    on_failure: OnFailure = "raise",
    known_sha256: Mapping[tuple[int, int], str] | None = None,
) -> VerificationResult:
    """:func:`verify`, for the inventory and ``watch``.

    ``on_failure="report"`` returns a failed result (``verdict="failed"``)
    where :func:`verify` raises. ``known_sha256``: SHA-256 digests of files,
    by (device, inode), that the caller has just computed; a file whose digest
    is the signed one is not read again (a different one is, to say what changed).
    """
    path = os.fspath(model)
    if not os.path.lexists(path):
        raise InputError(f"no such file or folder: {path}", code=Code.NOT_FOUND, path=path)
    trust = resolve_trust(verifier, policy)
    loc = signature_location(path, signature=signature, claims=claims)
    result = VerificationResult(verdict="failed", model=path, signature=loc.signature)
    # Under a policy a missing signature is a failed rule (a warn-mode policy
    # still reports everything else); without one it is an input error.
    signed, result.problems = read_signature(
        loc, trust.verify_envelope, missing_ok=policy is not None
    )
    statement = signed.statement if signed is not None else None
    if signed is not None:
        _describe(result, signed)
        observed = observe(path, loc, signed.statement, ignore=ignore, jobs=jobs,
                           progress=progress, known=known_sha256)  # fmt: skip
        _record(result, judge(signed.statement, observed, ignore=ignore))
        result.problems += _notes(signed, loc) + _expectations(result, expect_name, expect_source)
        result.problems += _builder(signed.statement, result.signer)
    rule = policy.provenance if policy is not None else None
    if provenance or (rule is not None and rule.needs_attestation):
        prov = provenance if isinstance(provenance, (str, os.PathLike)) else loc.provenance
        _check_provenance(result, statement, os.fspath(prov), trust, path)
    result.problems += [
        Problem(code=Code.SIGNER_NOT_TRUSTED, severity="warning", message=w) for w in trust.warnings
    ]
    if policy is not None:
        _apply_policy(policy, result, statement, loc, now, trust)
    blocked = result.policy.blocked if result.policy is not None else bool(result.errors)
    if blocked:
        message, code = _failure(result)
        Decision(on_failure).fail(message, result.problems, code, result=result)
        return result
    result.verdict = "verified"
    return result


def _describe(result: VerificationResult, signed: Signed) -> None:
    """What the verified signature says: its signer, subject, release and manifest."""
    st = signed.statement
    result.signer = signed.signer
    result.predicate_type = st.predicate_type
    result.subject = SubjectInfo(name=st.subject_name, sha256=st.subject_digest)
    result.release = st.release
    m = st.manifest
    result._manifest = m
    if m is not None:
        result.manifest_digest = m.digest()
        result.weights_digest = m.weights_digest
        result.model_name = m.name
        result.source = source_text(m.provenance.source)


def _record(result: VerificationResult, found: Judgement) -> None:
    result.problems = list(found.problems)
    result.files_verified = found.files_verified
    result.files_by_tensor_digests = found.files_by_tensor_digests
    result.tensors_verified = found.tensors_verified
    result.bytes_verified = found.bytes_verified


def _notes(signed: Signed, loc: SignatureLocation) -> list[Problem]:
    notes = [
        Problem(code=Code.LEGACY_SIGNATURE, severity="warning", message=n) for n in signed.notes
    ]
    moved = moved_note(loc)
    if moved is not None:
        notes.append(
            Problem(
                code=Code.LEGACY_SIGNATURE_PLACE,
                severity="warning",
                message=moved,
                file=loc.signature,
            )
        )
    return notes


def _builder(statement: SignedStatement, signer: SignerInfo | None) -> list[Problem]:
    """The builder the manifest names, against the one the signing certificate vouches for."""
    builder = statement.manifest.provenance.builder if statement.manifest else None
    why = builder_disagreement(builder, signer)
    return [] if why is None else [Problem(code=Code.BUILDER_MISMATCH, message=why)]


def _expectations(
    result: VerificationResult, name: str | None, source: str | None
) -> list[Problem]:
    """The caller's expected model name and source, against what the signer signed."""
    out: list[Problem] = []
    checks = (
        ("MODEL_NAME_MISMATCH", name, result.model_name, name == result.model_name, "model name"),
        ("SOURCE_MISMATCH", source, result.source, source_matches(source or "", result.source),
         "source repository"),
    )  # fmt: skip
    for code, want, have, ok, what in checks:
        if want is not None and not ok:
            why = "the signature names no" if have is None else "the signature is for another"
            out.append(Problem(code=code, message=f"{why} {what}", expected=want, actual=have))
    return out


def _check_provenance(
    result: VerificationResult,
    statement: SignedStatement | None,
    prov_path: str,
    verifier: Verifier,
    model: str,
) -> None:
    """Verify the SLSA attestation against the files the model signature verified."""
    if statement is None or result.errors:
        return  # nothing verified to hold the attestation against
    single = os.path.isfile(model)
    files = {(os.path.basename(model) if single else r.name): r.digest for r in statement.resources}
    try:
        result.provenance = verify_provenance(prov_path, verifier=verifier, files=files)
    except (VerificationError, InputError) as exc:
        result.problems.append(
            Problem(code=exc.code, message=exc.message, file=os.path.basename(prov_path))
        )


def _apply_policy(
    policy: Policy,
    result: VerificationResult,
    statement: SignedStatement | None,
    loc: SignatureLocation,
    now: datetime | None,
    trust: Trust,
) -> None:
    """Judge the policy, then set each problem's severity from the rule it belongs to."""
    unsigned = {
        p.file: sniff_file(_on_disk(loc, p.file), p.file)
        for p in result.problems
        if p.code in ("FILE_EXTRA", "FILE_UNSIGNED_IGNORED") and p.file
    }
    # Unsigned files are judged by the policy (coverage, or the signers rule
    # without one), from the map above; everything else is about the signature.
    integrity: list[Problem | str] = [
        p for p in result.problems if p.severity == "error" and p.code != "FILE_EXTRA"
    ]
    extras_fail = policy.coverage is None and any(p.code == "FILE_EXTRA" for p in result.problems)
    # A statement is only parsed once its signature verified, so its claims are
    # authentic. Content rules judge the signed manifest while the files match
    # it, else what is on disk (what would actually run); coverage is about the
    # signature itself, so it judges the signed manifest, and is skipped when
    # no signature could be trusted.
    signed = statement.manifest if statement is not None else None
    manifest = signed if signed is not None and not integrity and not extras_fail else None
    if manifest is None:
        manifest = _manifest_on_disk(result.model, integrity)
    report = evaluate(
        policy,
        manifest=manifest,
        coverage_manifest=(signed or manifest) if statement is not None else None,
        signer=result.signer,
        signature_problems=[*integrity, *trust.warn_reasons()],
        unsigned_files=unsigned,
        excused=[p.file or "" for p in result.problems if p.code == "FILE_UNSIGNED_IGNORED"],
        # Files the signature's ignore_paths left out are still in the folder: formats judges them.
        ignored_files=(
            ignored_formats(loc, statement.files | unsigned.keys()) if statement is not None else {}
        ),
        attestation=result.provenance,
        verifier_given=trust.caller_given,
        now=now,
        release=statement.release if statement is not None else None,
    )
    result.policy = report
    allow = policy.coverage is not None and policy.coverage.unsigned_files == "allow"
    rules: dict[str, str] = {r.rule: r.status for r in report.rules}
    coverage_rule = policy.coverage is not None
    result.problems = grade(
        result.problems, rules, coverage_rule=coverage_rule, allow_unsigned=allow
    )


def _on_disk(loc: SignatureLocation, name: str) -> str:
    if loc.single_file is not None:
        return os.path.join(loc.root, loc.single_file)
    return os.path.join(loc.root, *name.split("/"))


def _manifest_on_disk(model: str, integrity: list[Problem | str]) -> Manifest | None:
    """The model's manifest from headers only, when the signed one cannot be judged.

    The weights need not be read again to judge a licence or a format;
    unverified, it can only make rules fail, never let a signature pass.
    env={}: the verifier's own CI is not the model's builder.
    """
    try:
        return metadata_manifest(discover(model, allow_symlinks=True), env={})
    except ModelsignError as exc:
        integrity.append(f"the model cannot be read: {exc.message}")
        return None


def _failure(result: VerificationResult) -> tuple[str, str | None]:
    """The message and code a failed verification is raised with."""
    errors = result.errors
    first = errors[0] if errors else None
    failed_rules = [r.rule for r in result.policy.failed] if result.policy else []
    msg = f"verification failed: {plural(len(errors), 'problem')}"
    if failed_rules:
        rules = "policy rule" if len(failed_rules) == 1 else "policy rules"
        msg += f"; {rules} failed: {', '.join(failed_rules)}"
    if first is not None:
        msg += f"; first: {first.code}"
    code = first.code if first else ("POLICY_FAILED" if failed_rules else None)
    return msg, code
