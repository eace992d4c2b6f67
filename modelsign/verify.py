"""Verification: signature → statement → the model on disk, file by file and tensor by tensor.

The signed ``ignore_paths`` and symlink rule are re-applied as recorded; the
verifier's own ``--ignore`` patterns can only excuse unsigned extra files, never
a signed one. Weight files whose signed manifest covers every byte (header,
tensors, zero padding, exact size) are checked by their header and tensor
digests in parallel; everything else by its file digest. Any mismatch is
diagnosed down to the tensor.
"""

from __future__ import annotations

import fnmatch
import hashlib
import os
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Final, Literal, cast

import blake3
from pydantic import BaseModel, ConfigDict

from ._internal._atomic import open_model_file, size_mismatch
from ._internal.check.compare import Problem, ProblemSeverity, diff_layouts, diff_weights
from ._internal.discover import ModelFile, ModelTree, discover, name_inside
from ._internal.formats import FileFormat, WeightLayout, parse_weights, sniff_file
from ._internal.hashing import (
    SHARD_BATCH,
    FileDigests,
    RangeHash,
    RangeJob,
    TensorHash,
    changed_since,
    hash_file,
    hash_files,
    hash_ranges,
    stream_digest,
)
from ._internal.manifest import (
    FileEntry,
    Manifest,
    Part,
    WeightsInfo,
    covering_parts,
    metadata_manifest,
    weights_info,
)
from ._internal.metadata.provenance import source_matches, source_text
from ._internal.signature.attestation import claims_path, load_signature
from ._internal.signature.bundle import read_signature_file
from ._internal.signature.shards import Shard
from ._internal.signature.statement import (
    SINGLE_FILE_RESOURCE,
    Resource,
    SignedStatement,
)
from ._internal.signature.verifiers import SignerInfo, Verifier
from .errors import DiscoveryError, InputError, ModelsignError, VerificationError
from .policy import Policy, PolicyReport, Trust, evaluate, formats_beside, resolve_trust
from .provenance import (
    ProvenanceInfo,
    builder_disagreement,
    default_provenance_path,
    verify_provenance,
)
from .sign import default_signature_path

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

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]


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
    _known_sha256: Mapping[tuple[int, int], str] | None = None,
) -> VerificationResult:
    """Verify ``model`` against its signature (and ``policy``); return what was verified.

    Trust follows :class:`~modelsign.policy.Trust`: ``verifier`` (the
    caller's) is always enforced, and the policy's ``signers``, when listed,
    must also verify, as their rule's mode says. Raises
    :class:`VerificationError` (with ``findings`` and ``result``) when anything
    fails — under a policy, when an enforced rule fails — and
    :class:`InputError` for unusable inputs. ``claims`` is the file holding
    modelsign's attestation (default: ``claims.jsonl`` beside ``model.sig``).
    ``expect_name`` / ``expect_source`` bind the signature to the model the
    caller means: another model signed by the same signer, copied over this
    one, carries another name or source (``org/name``, or ``org/name@rev``).

    ``_known_sha256`` (internal, for the inventory): SHA-256 digests of files,
    by (device, inode), that the caller has just computed; a file whose digest
    is the signed one is not read again (a different one is, to say what changed).
    """
    path = os.fspath(model)
    if not os.path.lexists(path):
        raise InputError(f"no such file or folder: {path}", code="NOT_FOUND", path=path)
    trust = resolve_trust(verifier, policy)
    sig_path = os.fspath(signature) if signature is not None else default_signature_path(path)
    result = VerificationResult(verdict="failed", model=path, signature=sig_path)
    try:
        data: bytes | None = read_signature_file(sig_path)
    except InputError as exc:
        # Under a policy a missing signature is a failed rule (a warn-mode policy
        # still reports everything else); without one it is an input error.
        if policy is None or exc.code != "SIGNATURE_NOT_FOUND":
            raise
        data = None
        result.problems = [Problem(code=exc.code, message=exc.message, file=exc.path)]
    statement = None
    notes: list[Problem] = []
    claims_file = os.fspath(claims) if claims is not None else claims_path(sig_path)
    if data is not None:
        try:
            signed = load_signature(
                sig_path, verify=trust.verify_envelope, claims=claims_file, data=data
            )
            result.signer, statement = signed.signer, signed.statement
            notes = [
                Problem(code="LEGACY_SIGNATURE", severity="warning", message=n)
                for n in signed.notes
            ]
        except VerificationError as exc:
            result.problems = [
                Problem(
                    code=exc.code, message=exc.message, expected=exc.expected, actual=exc.actual
                )
            ]
    if statement is not None:
        result.predicate_type = statement.predicate_type
        result.subject = SubjectInfo(name=statement.subject_name, sha256=statement.subject_digest)
        result.release = statement.release
        if statement.manifest is not None:
            m = statement.manifest
            result.manifest_digest = m.digest()
            result.weights_digest = m.weights_digest
            result.model_name = m.name
            result.source = source_text(m.provenance.source)
        check = _ModelCheck(path, sig_path, statement, ignore, jobs, progress, result)
        check.known = _known_sha256 or {}
        check.written = [claims_file]
        check.run()
        result.problems += notes + _expectations(result, expect_name, expect_source)
        builder = statement.manifest.provenance.builder if statement.manifest else None
        if (why := builder_disagreement(builder, result.signer)) is not None:
            result.problems.append(Problem(code="BUILDER_MISMATCH", message=why))
    rule = policy.provenance if policy is not None else None
    if provenance or (rule is not None and rule.needs_attestation):
        prov_path = (
            os.fspath(provenance)
            if isinstance(provenance, (str, os.PathLike))
            else default_provenance_path(path)
        )
        _check_provenance(result, statement, prov_path, trust, path)
    result.problems += [
        Problem(code="SIGNER_NOT_TRUSTED", severity="warning", message=w) for w in trust.warnings
    ]
    if policy is not None:
        own = [sig_path, claims_file, default_provenance_path(path)]
        _apply_policy(policy, result, statement, path, now, trust, own)
        if result.policy is not None and result.policy.blocked:
            raise _failed(result)
    elif result.errors:
        raise _failed(result)
    result.verdict = "verified"
    return result


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
    path: str,
    now: datetime | None,
    trust: Trust,
    own: Sequence[str],
) -> None:
    """Judge the policy, then set each problem's severity from the rule it belongs to."""
    unsigned = {
        p.file: sniff_file(os.path.join(path, p.file) if os.path.isdir(path) else path, p.file)
        for p in result.problems
        if p.code in ("FILE_EXTRA", "FILE_UNSIGNED_IGNORED") and p.file
    }
    # Unsigned files are judged by the policy (coverage, or the signers rule
    # without one), from the map above; everything else is about the signature.
    integrity: list[Problem | str] = [
        p for p in result.problems if p.severity == "error" and p.code != "FILE_EXTRA"
    ]
    extra_is_coverage = policy.coverage is not None
    extras_fail = not extra_is_coverage and any(p.code == "FILE_EXTRA" for p in result.problems)
    # A statement is only parsed once its signature verified, so its claims are
    # authentic. Content rules judge the signed manifest while the files match
    # it, else what is on disk (what would actually run); coverage is about the
    # signature itself, so it judges the signed manifest, and is skipped when
    # no signature could be trusted.
    trusted = statement is not None
    signed = statement.manifest if statement is not None else None
    # Files the signature's ignore_paths left out are still in the folder: formats judges them.
    ignored = (
        formats_beside(path, known=statement.files | unsigned.keys(), own=own)
        if statement is not None
        else {}
    )
    manifest = signed if signed is not None and not integrity and not extras_fail else None
    if manifest is None:
        # Read from headers only (the weights need not be read again to judge a
        # licence or a format); unverified, it can only make rules fail, never let
        # a signature pass. env={}: the verifier's own CI is not the model's builder.
        try:
            manifest = metadata_manifest(discover(path, allow_symlinks=True), env={})
        except ModelsignError as exc:
            integrity.append(f"the model cannot be read: {exc.message}")
    report = evaluate(
        policy,
        manifest=manifest,
        coverage_manifest=(signed or manifest) if trusted else None,
        signer=result.signer,
        signature_problems=[*integrity, *trust.warn_reasons()],
        unsigned_files=unsigned,
        excused=[p.file or "" for p in result.problems if p.code == "FILE_UNSIGNED_IGNORED"],
        ignored_files=ignored,
        attestation=result.provenance,
        verifier_given=trust.caller_given,
        now=now,
        release=statement.release if trusted and statement is not None else None,
    )
    result.policy = report
    status = {r.rule: r.status for r in report.rules}
    allow_unsigned = policy.coverage is not None and policy.coverage.unsigned_files == "allow"

    def severity(p: Problem) -> ProblemSeverity:
        if p.severity != "error":
            return p.severity
        if p.code == "FILE_EXTRA" and extra_is_coverage:
            if allow_unsigned:
                return "info"
            return "warning" if status.get("coverage") != "fail" else "error"
        return "warning" if status.get("signers") == "warn" else "error"

    result.problems = [p.model_copy(update={"severity": severity(p)}) for p in result.problems]


def _failed(result: VerificationResult) -> VerificationError:
    errors = result.errors
    first = errors[0] if errors else None
    failed_rules = (
        [r.rule for r in result.policy.rules if r.status == "fail"] if result.policy else []
    )
    msg = f"verification failed: {len(errors)} problem(s)"
    if failed_rules:
        msg += f"; policy rules failed: {', '.join(failed_rules)}"
    if first is not None:
        msg += f"; first: {first.code}"
    code = first.code if first else ("POLICY_FAILED" if failed_rules else None)
    exc = VerificationError(msg, code=code, findings=result.problems)
    exc.result = result
    return exc


def _any_hasher(algorithm: str) -> hashlib._Hash | blake3.blake3:
    if algorithm == "blake3":
        return blake3.blake3()
    return hashlib.new(algorithm)


class _ModelCheck:
    """Compares the model on disk with a signed statement, filling in the result."""

    def __init__(
        self,
        path: str,
        sig_path: str,
        statement: SignedStatement,
        ignore: Sequence[str],
        jobs: int | None,
        progress: Callable[[int, int], None] | None,
        result: VerificationResult,
    ) -> None:
        self.path = path
        self.sig_path = sig_path
        self.st = statement
        self.manifest: Manifest | None = statement.manifest
        # Signed entries by path, looked up once per file (a manifest scan each was quadratic).
        self.ignore = ignore
        self.jobs = jobs
        self.result = result
        self.problems: list[Problem] = []
        self.done = 0
        self.total = 0
        self._progress = progress
        self.known: Mapping[tuple[int, int], str] = {}
        self.written: list[str] = []  # modelsign's other outputs (the claims file)

    def step(self, n: int) -> None:
        self.done += n
        if self._progress is not None:
            self._progress(self.done, self.total)

    def problem(self, code: str, message: str, **kw: str | None) -> None:
        self.problems.append(Problem(code=code, message=message, **kw))  # type: ignore[arg-type]

    # -- which files ---------------------------------------------------------

    def _tree(self) -> ModelTree | None:
        single = os.path.isfile(self.path)
        exclude: list[str] = []
        if not single:
            for written in (self.sig_path, *self.written):
                rel = name_inside(self.path, written)
                if rel is not None:
                    exclude.append(rel)
            exclude += list(self.st.ignore_paths)
        # Only the concrete signed paths: a recorded pattern is never expanded again.
        try:
            return discover(
                self.path,
                exclude=exclude,
                allow_symlinks=self.st.allow_symlinks,
                ignore_git=False,
            )
        except DiscoveryError as exc:
            if exc.code == "EMPTY_MODEL":
                return None
            if exc.code == "TOO_DEEP":
                raise  # no signer could have signed it: the model cannot be checked at all
            # What the signer recorded (no symlinks, no special files) is not met.
            self.problem(exc.code, exc.message, file=exc.path)
            return None

    def run(self) -> None:
        tree = self._tree()
        on_disk = {f.path: f for f in tree.files} if tree is not None else {}
        signed = self._signed_files(tree)
        if signed is None:
            self.result.problems = self.problems
            return
        self.total = sum(f.size for name, f in on_disk.items() if name in signed)
        present = {n: on_disk[n] for n in signed if n in on_disk}
        missing = [n for n in signed if n not in on_disk]
        extra = [n for n in on_disk if n not in signed and not self._empty_unlisted(on_disk[n])]
        if self.st.method == "shards" and self.manifest is not None:
            # Empty files have no shard: the attested manifest still names them.
            gone = [e for e in self.manifest.files if e.size == 0 and e.path not in on_disk]
            for e in gone:
                self.problem("FILE_MISSING", "signed (empty) file is missing", file=e.path)
        self._check_present(present, signed)
        self._report_missing_and_extra(missing, extra, signed, on_disk)
        self.result.problems = sorted(
            self.problems, key=lambda p: (p.file or "", p.tensor or "", p.code)
        )

    def _empty_unlisted(self, f: ModelFile) -> bool:
        """A zero-length file under shard serialization: accounted for, not unsigned.

        OMS §6.3.2 omits zero-length files from the resources, so a shard
        signature cannot say whether one was there: it is the same signature
        either way. Reported for information, never as an unsigned file —
        unless modelsign's attested manifest lists the files, which decides.
        """
        if self.st.method != "shards" or f.size != 0:
            return False
        if self.manifest is not None:
            entry = self.st.entry(f.path)
            return entry is not None and entry.size == 0
        self.problems.append(
            Problem(
                code="FILE_EMPTY_UNLISTED",
                severity="info",
                message="zero-length file: shard signatures list no resource for empty files",
                file=f.path,
            )
        )
        return True

    def _signed_files(self, tree: ModelTree | None) -> dict[str, list[Resource]] | None:
        """Signed resources grouped by file name (shards grouped under their file)."""
        out: dict[str, list[Resource]] = {}
        for r in self.st.resources:
            out.setdefault(self.st.file_of(r), []).append(r)
        if tree is not None and tree.single_file:
            (f,) = tree.files
            names = set(out)
            if names <= {SINGLE_FILE_RESOURCE, f.path} and len(names) == 1:
                return {f.path: next(iter(out.values()))}
            self.problem(
                "SIGNATURE_FOR_FOLDER",
                f"the signature covers {len(names)} files of a folder, not this single file",
                file=f.path,
            )
            return None
        if SINGLE_FILE_RESOURCE in out:
            self.problem(
                "SIGNATURE_FOR_FILE",
                "the signature is for a single file; verify that file, not a folder",
            )
            return None
        return out

    # -- signed files on disk ------------------------------------------------

    def _entry(self, name: str) -> FileEntry | None:
        return self.st.entry(name)

    def _check_present(
        self, present: dict[str, ModelFile], signed: dict[str, list[Resource]]
    ) -> None:
        fast: list[tuple[ModelFile, FileEntry, list[Part]]] = []
        whole: list[ModelFile] = []
        other: list[ModelFile] = []
        sharded: list[tuple[ModelFile, tuple[Shard, ...]]] = []
        for name, f in present.items():
            res = signed[name]
            entry = self._entry(name)
            if self.st.method != "shards" and entry is not None and entry.size != f.size:
                self._size_mismatch(f, entry)  # judged without reading its content
                continue
            if self.st.method == "shards":
                sharded.append((f, self.st.shards[self.st.file_of(res[0])]))
            elif res[0].algorithm == "sha256":
                if self.known.get((f.dev, f.ino)) == res[0].digest:
                    self._verified(f, entry, by_tensors=False)
                    self.step(f.size)
                    continue
                m = self.manifest
                parts = covering_parts(entry, f.size, m.hashing) if m is not None else None
                if entry is not None and parts is not None:
                    fast.append((f, entry, parts))
                else:
                    whole.append(f)
            else:
                other.append(f)
        self._check_fast(fast)
        self._check_whole(whole, signed)
        for i in range(0, len(sharded), SHARD_BATCH):
            self._check_shards(sharded[i : i + SHARD_BATCH])
        for f in other:
            self._check_other(f, signed[f.path])

    def _size_mismatch(self, f: ModelFile, entry: FileEntry) -> None:
        """A file not of its signed size: refused unread, diagnosed from its header alone."""
        self.step(f.size)  # judged without reading: done, as far as progress goes

        def header(fmt: FileFormat) -> WeightLayout:
            fd = _open(f)
            try:
                return parse_weights(fmt, fd, os.fstat(fd).st_size, f.path)[0]
            finally:
                os.close(fd)

        self.problems += size_problems(f, entry.size, f.size, entry.weights, header)

    def _signed_size(self, name: str) -> int | None:
        return self.st.signed_size(name)

    def _tensor_hash(self) -> TensorHash | None:
        return self.manifest.hashing.tensor if self.manifest is not None else None

    def _verified(self, f: ModelFile, entry: FileEntry | None, *, by_tensors: bool) -> None:
        self.result.files_verified += 1
        self.result.bytes_verified += f.size
        if by_tensors:
            self.result.files_by_tensor_digests += 1
        if entry is not None and entry.weights is not None and self._tensor_hash() is not None:
            self.result.tensors_verified += entry.weights.tensor_count

    def _check_fast(self, items: list[tuple[ModelFile, FileEntry, list[Part]]]) -> None:
        """Weight files covered by their parts: every part of every file hashed in parallel."""
        if not items:
            return
        fds: list[int] = []
        try:
            jobs: list[RangeJob] = []
            expect: list[tuple[int, str | bool]] = []  # (item index, expected result)
            before: list[os.stat_result] = []
            opened: list[tuple[ModelFile, FileEntry, list[Part]]] = []
            for f, entry, parts in items:
                fd = self._open_at(f, entry.size)
                if fd is None:
                    continue
                i = len(opened)
                opened.append((f, entry, parts))
                fds.append(fd)
                before.append(os.fstat(fd))
                for a, b, alg, want in parts:
                    jobs.append(RangeJob(fd, a, b, alg))
                    expect.append((i, want))
            items = opened
            got = hash_ranges(jobs, threads=self.jobs, progress=self.step)
            bad = {i for (i, want), have in zip(expect, got, strict=True) if want != have}
            for i, (f, entry, _parts) in enumerate(items):
                # Opened at its signed size: any change since shows in size or mtime.
                if changed_since(fds[i], before[i]):
                    self.problem("FILE_CHANGED", "file changed while being verified", file=f.path)
                elif i in bad:
                    self._recheck(f, entry.sha256)  # read once more to say what changed
                else:
                    self._verified(f, entry, by_tensors=True)
        except DiscoveryError as exc:
            self.problem(exc.code, exc.message, file=exc.path)
        finally:
            for fd in fds:
                os.close(fd)

    def _check_whole(self, files: list[ModelFile], signed: dict[str, list[Resource]]) -> None:
        if not files:
            return
        alg = self._tensor_hash()
        try:
            digests = hash_files(
                files,
                tensor_hash=alg,
                jobs=self.jobs,
                progress=self.step,
                sizes={f.path: n for f in files if (n := self._signed_size(f.path)) is not None},
            )
        except ModelsignError:
            # Some signed file no longer parses (or changed meanwhile): go file by
            # file so each is reported with its own reason.
            for f in files:
                self._recheck(f, signed[f.path][0].digest)
            return
        for d in digests:
            self._judge(d, signed[d.file.path][0].digest)

    def _recheck(self, f: ModelFile, expected: str) -> None:
        """Hash one file on its own, to say exactly what changed (or why it no longer parses)."""
        try:
            d = hash_file(f, tensor_hash=self._tensor_hash(), size=self._signed_size(f.path))
        except ModelsignError as exc:
            if exc.code in ("FILE_SIZE_MISMATCH", "SPECIAL_FILE", "FILE_CHANGED", "UNREADABLE"):
                # Refused at open: nothing was read, and nothing more is.
                self.problem(
                    exc.code, exc.message, file=f.path, expected=exc.expected, actual=exc.actual
                )
                return
            actual = stream_digest(f, hashlib.sha256())
            if actual == expected:
                self._verified(f, self._entry(f.path), by_tensors=False)
                return
            self.problem(
                "FILE_MODIFIED",
                f"file content changed and no longer parses ({exc.code}: {exc.message})",
                file=f.path,
                expected=expected,
                actual=actual,
            )
            return
        self._judge(d, expected)

    def _judge(self, d: FileDigests, expected: str) -> None:
        f, actual = d.file, d.sha256
        entry = self._entry(f.path)
        if actual == expected:
            self._verified(f, entry, by_tensors=False)
            return
        self.problem(
            "FILE_MODIFIED", "file content changed", file=f.path, expected=expected, actual=actual
        )
        if entry is not None and entry.weights is not None and d.layout is not None:
            self.problems += diff_weights(f.path, entry.weights, weights_info(d))

    def _check_other(self, f: ModelFile, resources: list[Resource]) -> None:
        """Whole-file digests other than SHA-256 (BLAKE2b, BLAKE3) made by the OMS tool."""
        (r,) = resources
        try:
            actual = stream_digest(f, _any_hasher(r.algorithm), size=self._signed_size(f.path))
        except DiscoveryError as exc:
            self.problem(exc.code, exc.message, file=f.path)
            return
        if actual != r.digest:
            self.problem(
                "FILE_MODIFIED",
                f"file content changed ({r.algorithm})",
                file=f.path,
                expected=r.digest,
                actual=actual,
            )
            return
        self.step(f.size)
        self._verified(f, None, by_tensors=False)

    def _check_shards(self, items: list[tuple[ModelFile, tuple[Shard, ...]]]) -> None:
        """Shard signatures: every shard of every file in one all-core pass.

        Sizes are compared first, so nothing is read of a file with bytes past
        the signed end or a missing tail (the tiling of the ranges from byte 0
        was checked when the statement was parsed).
        """
        alg = cast(RangeHash, self.st.hash_type)  # one of HASH_TYPES: checked by the parser
        opened: list[tuple[ModelFile, tuple[Shard, ...], int, os.stat_result]] = []
        try:
            for f, shards in items:
                if self._shard_size_ok(f, shards):
                    fd = self._open_at(f, shards[-1].end)
                    if fd is not None:
                        opened.append((f, shards, fd, os.fstat(fd)))
            jobs = [
                RangeJob(fd, s.start, s.end, alg) for _, shards, fd, _ in opened for s in shards
            ]
            try:
                got = iter(hash_ranges(jobs, threads=self.jobs, progress=self.step))
            except DiscoveryError as exc:  # a file shrank under us: say which, if we can
                moved: list[str | None] = [
                    f.path for f, _, fd, then in opened if changed_since(fd, then)
                ]
                for path in moved or [None]:  # never no verdict at all
                    self.problem(exc.code, exc.message, file=path)
                return
            for f, shards, fd, then in opened:
                bad = [(s, str(d)) for s in shards if (d := next(got)) != s.digest]
                if changed_since(fd, then):
                    self.problem("FILE_CHANGED", "file changed while being verified", file=f.path)
                elif bad:
                    self._shard_modified(f, bad)
                else:
                    self._verified(f, self._entry(f.path), by_tensors=False)
        finally:
            for _, _, fd, _ in opened:
                os.close(fd)

    def _open_at(self, f: ModelFile, size: int) -> int | None:
        """``f`` opened if it is still its signed ``size``; else its problem, and None."""
        try:
            return _open(f, size)
        except DiscoveryError as exc:
            self.problem(
                exc.code, exc.message, file=f.path, expected=exc.expected, actual=exc.actual
            )
            return None

    def _shard_size_ok(self, f: ModelFile, shards: tuple[Shard, ...]) -> bool:
        end = shards[-1].end
        if f.size == end:
            return True
        self.step(f.size)  # judged without reading: done, as far as progress goes
        why = (
            f"{f.size - end} bytes past the signed end are not covered by any shard"
            if f.size > end
            else f"the signed bytes {f.size}:{end} are missing"
        )
        self.problem(
            "FILE_SIZE_MISMATCH",
            f"file is {f.size} bytes, the signed shards end at {end}: {why}",
            file=f.path,
            expected=str(end),
            actual=str(f.size),
        )
        return False

    def _shard_modified(self, f: ModelFile, bad: list[tuple[Shard, str]]) -> None:
        """Name the first changed range; with a signed manifest, name the tensors too."""
        s, actual = bad[0]
        more = f" (and {len(bad) - 1} more shard(s))" if len(bad) > 1 else ""
        self.problem(
            "FILE_MODIFIED",
            f"bytes {s.start}:{s.end} changed ({self.st.hash_type}){more}",
            file=f.path,
            expected=s.digest,
            actual=actual,
        )
        entry = self._entry(f.path)
        if entry is None or entry.weights is None:
            return
        try:
            d = hash_file(f, tensor_hash=self._tensor_hash())
        except ModelsignError:
            return  # no longer parses: the changed range above is all there is to say
        if d.layout is not None:
            self.problems += diff_weights(f.path, entry.weights, weights_info(d))

    # -- files that are not where the signature says -------------------------

    def _report_missing_and_extra(
        self,
        missing: list[str],
        extra: list[str],
        signed: dict[str, list[Resource]],
        on_disk: dict[str, ModelFile],
    ) -> None:
        extra_digest: dict[str, str] = {}
        excused = [n for n in extra if any(fnmatch.fnmatchcase(n, p) for p in self.ignore)]
        for n in excused:
            self.problems.append(
                Problem(
                    code="FILE_UNSIGNED_IGNORED",
                    severity="info",
                    message="unsigned file left out by the verifier's --ignore",
                    file=n,
                )
            )
        unexcused = [n for n in extra if n not in excused]
        sizes = [self._signed_size(m) for m in missing]
        # Only an extra file of a missing file's signed size can be it renamed:
        # others are not read (without recorded sizes, every one is).
        candidates = [on_disk[n] for n in unexcused if None in sizes or on_disk[n].size in sizes]
        if candidates and missing:
            for d in hash_files(candidates, tensor_hash=None, jobs=self.jobs):
                extra_digest[d.file.path] = d.sha256
        renamed: set[str] = set()
        for m in missing:
            want = signed[m][0].digest
            match = next(
                (n for n in unexcused if extra_digest.get(n) == want and n not in renamed), None
            )
            if match is not None:
                renamed.add(match)
                self.problem(
                    "FILE_RENAMED",
                    f"signed file is now named {match!r}",
                    file=m,
                    expected=m,
                    actual=match,
                )
            else:
                self.problem("FILE_MISSING", "signed file is missing", file=m, expected=want)
        for n in unexcused:
            if n not in renamed:
                self.problem(
                    "FILE_EXTRA",
                    "file is not covered by the signature",
                    file=n,
                    actual=extra_digest.get(n),
                )


def size_problems(
    f: ModelFile,
    signed: int,
    actual: int,
    w: WeightsInfo | None,
    header: Callable[[FileFormat], WeightLayout],
) -> list[Problem]:
    """``FILE_SIZE_MISMATCH`` for a file refused unread, and what its header alone says changed.

    With the signed weights ``w``, ``header(format)`` parses the file's header
    and tensor table as that format (bounded reads, whatever the size); a
    failure to parse is told in the message.
    """
    exc = size_mismatch(f.path, signed, actual)
    message, found = exc.message, []
    if w is not None:
        try:
            d = FileDigests(f, w.format, "", header(w.format), header_digest="")
            found = diff_layouts(f.path, w, weights_info(d))
        except ModelsignError as why:
            message += f"; it no longer parses ({why.code}: {why.message})"
    first = Problem(
        code=exc.code, message=message, file=f.path, expected=exc.expected, actual=exc.actual
    )
    return [first, *found]


def _open(f: ModelFile, size: int | None = None) -> int:
    """Open a signed file as discovery saw it; with its signed ``size``, refuse another first."""
    try:
        return open_model_file(f, size=size)
    except OSError as exc:
        raise DiscoveryError(
            f"cannot open: {exc.strerror}", code="UNREADABLE", path=f.path
        ) from exc
