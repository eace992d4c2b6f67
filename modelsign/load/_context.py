"""What every verified loader does first: trust the signature, then read verified bytes.

A loader never verifies a path and lets a framework re-open it: it reads each
file once into its own buffer (or maps it under a read lease, ``_mapped``),
checks that buffer against the signed manifest (header and tensor digests in
parallel when the manifest covers every byte, else the file's SHA-256), and
builds the runtime's objects from the same buffer. A file swapped or
rewritten between check and load is therefore either caught or never used.
"""

from __future__ import annotations

import hashlib
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from typing import Any, Literal

from .._internal._atomic import open_model_file, size_mismatch
from .._internal.check.compare import Problem, diff_weights, tensor_modified
from .._internal.discover import ModelFile, discover, name_inside
from .._internal.formats import (
    FileFormat,
    WeightLayout,
    parse_weights,
    parse_weights_bytes,
    sniff_file,
)
from .._internal.hashing import FileDigests, RangeJob, TensorHash, hash_ranges, new_hasher
from .._internal.manifest import FileEntry, Manifest, covering_parts, weights_info
from .._internal.signature.attestation import claims_path, load_signature
from .._internal.signature.statement import SINGLE_FILE_RESOURCE, SignedStatement
from .._internal.signature.verifiers import SignerInfo, Verifier
from ..errors import DiscoveryError, InputError, ModelsignError, ModelsignWarning, VerificationError
from ..policy import RULE_CODES, Policy, PolicyReport, evaluate, formats_beside, resolve_trust
from ..sign import DEFAULT_PROVENANCE, DEFAULT_SIGNATURE
from ..verify import size_problems


@dataclass
class LoadReport:
    """What a verified load checked: the signer, the files and the tensors."""

    model: str
    signature: str
    signer: SignerInfo | None
    files: list[str] = field(default_factory=list)
    tensors: list[str] = field(default_factory=list)
    partial: bool = False
    bytes_verified: int = 0
    verified: bool = True  # False only when a warn-mode policy let a failure through
    policy: PolicyReport | None = None
    warnings: list[str] = field(default_factory=list)
    mapped: list[str] = field(default_factory=list)  # files handed out as leased mappings
    not_mapped: dict[str, str] = field(default_factory=dict)  # why memory="auto" copied


@dataclass
class Context:
    """A model whose signature has been checked (and judged by the policy)."""

    root: str  # folder the signed names are relative to
    single_file: str | None  # the file name when the signature covers one file
    signature: str
    statement: SignedStatement | None
    signer: SignerInfo | None
    report: LoadReport
    files: dict[str, ModelFile]  # on disk, by signed-relative name
    policy: Policy | None
    enforce: bool  # False: a warn-mode policy and no trust from the caller; failures only warn

    @property
    def manifest(self) -> Manifest | None:
        return self.statement.manifest if self.statement is not None else None

    def signed_digest(self, name: str) -> str | None:
        if self.statement is None:
            return None
        if self.single_file is not None and self.single_file != name:
            return None
        # A single file's resource is "." (the OMS tool) or the file's own name (the spec).
        names = {name, SINGLE_FILE_RESOURCE} if self.single_file is not None else {name}
        for r in self.statement.resources:
            if r.name in names and self.statement.method == "files":
                return r.digest if r.algorithm == "sha256" else None
        return None

    def signed_size(self, name: str) -> int | None:
        """The size the signature records for ``name`` (its manifest, or its last shard)."""
        return self.statement.signed_size(name) if self.statement is not None else None

    def entry(self, name: str) -> FileEntry | None:
        return self.statement.entry(name) if self.statement is not None else None

    def fail(self, message: str, problems: Sequence[Problem], code: str) -> None:
        """Refuse (enforce) or warn (warn-mode policy) about a failed check."""
        if self.enforce:
            exc = VerificationError(message, code=code, findings=problems)
            exc.result = self.report
            raise exc
        detail = "; ".join(f"{p.code} {p.file or ''} {p.tensor or ''}".strip() for p in problems)
        text = f"modelsign: {message}" + (f" ({detail})" if detail else "")
        self.report.verified = False
        self.report.warnings.append(text)
        warnings.warn(text, ModelsignWarning, stacklevel=3)


def _signature_for(path: str, signature: str | None) -> tuple[str, str, str | None]:
    """(signature path, model root, single-file name) for a file or folder."""
    if signature is not None:
        if os.path.isdir(path):
            return signature, path, None
        # A file with an explicit signature: a single-file signature beside it,
        # or the folder's signature covering it.
        return signature, os.path.dirname(os.path.abspath(path)), os.path.basename(path)
    if os.path.isdir(path):
        return os.path.join(path, DEFAULT_SIGNATURE), path, None
    beside = path + ".sig"
    if os.path.exists(beside):
        return beside, os.path.dirname(os.path.abspath(path)), os.path.basename(path)
    folder = os.path.dirname(os.path.abspath(path))
    return os.path.join(folder, DEFAULT_SIGNATURE), folder, None


def open_context(
    path: str | os.PathLike[str],
    *,
    signature: str | os.PathLike[str] | None,
    verifier: Verifier | None,
    policy: Policy | None,
    now: datetime | None = None,
) -> Context:
    """Check the signature of the model at ``path`` and judge the policy, reading no weights."""
    p = os.fspath(path)
    if not os.path.lexists(p):
        raise InputError(f"no such file or folder: {p}", code="NOT_FOUND", path=p)
    trust = resolve_trust(verifier, policy)  # the caller's verifier always enforced
    sig_path, root, name = _signature_for(p, os.fspath(signature) if signature else None)
    enforce = trust.enforce
    report = LoadReport(model=p, signature=sig_path, signer=None)
    ctx = Context(root, None, sig_path, None, None, report, {}, policy, enforce)
    problems: list[Problem] = []
    try:
        signed = load_signature(sig_path, verify=trust.verify_envelope)
        ctx.signer = report.signer = signed.signer
        ctx.statement = signed.statement
        for note in signed.notes:
            report.warnings.append(f"modelsign: {note}")
            warnings.warn(f"modelsign: {note}", ModelsignWarning, stacklevel=2)
    except InputError as exc:
        if exc.code != "SIGNATURE_NOT_FOUND":
            raise
        problems.append(Problem(code=exc.code, message=exc.message, file=sig_path))
    except VerificationError as exc:
        problems.append(Problem(code=exc.code, message=exc.message, file=sig_path))
    if ctx.statement is not None:
        only = ctx.statement.single_file_name
        m = ctx.statement.manifest
        # "." (the OMS tool's name), or the spec's own file name in a signature
        # made for a single file (the manifest says so; without one, the file
        # beside its ".sig" is taken as the single file it names).
        single = only == SINGLE_FILE_RESOURCE or (
            only is not None and only == name and (m.single_file if m is not None else True)
        )
        if single:
            if name is None:
                problems.append(
                    Problem(
                        code="SIGNATURE_FOR_FILE",
                        message="the signature covers a single file; load that file",
                    )
                )
            ctx.single_file = name
    ctx.files = _files_on_disk(ctx, name)
    unsigned = _unsigned(ctx)
    if policy is not None:
        report.policy = evaluate(
            policy,
            manifest=ctx.manifest,
            signer=ctx.signer,
            # (reasons "CODE: message": the file here is the signature's, never named in them)
            signature_problems=[x.model_copy(update={"file": None}) for x in problems]
            + trust.warn_reasons(),
            unsigned_files=unsigned,
            ignored_files=_ignored(ctx, unsigned),
            coverage_manifest=ctx.manifest,
            verifier_given=trust.caller_given,
            now=now,
            release=ctx.statement.release if ctx.statement is not None else None,
        )
        failed = [r for r in report.policy.rules if r.status != "pass"]
        if failed:
            blocked = report.policy.blocked
            msg = "policy rule(s) " + ", ".join(
                f"{r.rule} ({'; '.join(r.reasons[:3])})" for r in failed
            )
            if blocked:
                findings = problems + [
                    Problem(code="FILE_EXTRA", message=f"not signed ({fmt})", file=n)
                    for n, fmt in sorted(unsigned.items())
                ]
                findings += [
                    Problem(code=RULE_CODES[r.rule], message=reason)
                    for r in failed
                    if r.status == "fail"
                    for reason in r.reasons
                ]
                refusal = VerificationError(
                    f"refused by {msg}", code="POLICY_FAILED", findings=findings
                )
                refusal.result = report
                raise refusal
            text = f"modelsign: {msg}"
            report.warnings.append(text)
            warnings.warn(text, ModelsignWarning, stacklevel=3)
            if problems:
                report.verified = False
    elif problems:
        ctx.fail("the signature does not verify", problems, problems[0].code)
    if policy is None and unsigned and ctx.single_file is None:
        # Without a policy, files beside the model that the signature does not
        # cover are refused, as `modelsign verify` does.
        ctx.fail(
            "files not covered by the signature are present",
            [Problem(code="FILE_EXTRA", message="not signed", file=n) for n in sorted(unsigned)],
            "FILE_EXTRA",
        )
    return ctx


def _files_on_disk(ctx: Context, name: str | None) -> dict[str, ModelFile]:
    if ctx.single_file is not None:
        full = os.path.join(ctx.root, ctx.single_file)
        info = os.stat(full)
        real = os.path.realpath(full)
        return {
            ctx.single_file: ModelFile(
                ctx.single_file, real, info.st_size, info.st_dev, info.st_ino
            )
        }
    statement = ctx.statement
    written = (ctx.signature, claims_path(ctx.signature))
    exclude = [rel for w in written if (rel := name_inside(ctx.root, w)) is not None]
    if statement is not None:
        exclude += list(statement.ignore_paths)
    # Only the concrete signed paths: a recorded pattern is never expanded again.
    try:
        tree = discover(
            ctx.root,
            exclude=exclude,
            allow_symlinks=statement.allow_symlinks if statement is not None else True,
            ignore_git=statement is None,
        )
    except ModelsignError as exc:
        ctx.fail(f"the model folder cannot be walked: {exc.message}", [], exc.code)
        return {}
    return {f.path: f for f in tree.files}


def _unsigned(ctx: Context) -> dict[str, str]:
    """Files on disk the signature does not name, with their sniffed format."""
    if ctx.statement is None or ctx.single_file is not None:
        return {}
    signed = ctx.statement.files
    out: dict[str, str] = {}
    for n, f in ctx.files.items():
        if n not in signed:
            out[n] = sniff_file(f.real, f.path)
    return out


def _ignored(ctx: Context, unsigned: dict[str, str]) -> dict[str, str]:
    """Files the signature's ignore_paths left out, for the formats rule (still in the folder)."""
    if ctx.statement is None or ctx.single_file is not None:
        return {}
    own = (ctx.signature, claims_path(ctx.signature), os.path.join(ctx.root, DEFAULT_PROVENANCE))
    return formats_beside(ctx.root, known=ctx.files.keys() | unsigned.keys(), own=own)


def open_signed(ctx: Context, name: str) -> int:
    """Open signed file ``name`` (no symlink following); refuse a missing or unsigned one."""
    f = ctx.files.get(name)
    expected = ctx.signed_digest(name)
    if f is None:
        if expected is not None:
            problem = Problem(
                code="FILE_MISSING", message="signed file is missing", file=name, expected=expected
            )
            ctx.fail(f"{name} is signed but missing", [problem], "FILE_MISSING")
        raise InputError(f"{name} is not in the model", code="NOT_FOUND", path=name)
    if expected is None:
        ctx.fail(
            f"{name} is not covered by the signature",
            [Problem(code="FILE_UNSIGNED", message="not covered by the signature", file=name)],
            "FILE_UNSIGNED",
        )
    try:
        fd = open_model_file(f, same_file=False)
    except (OSError, DiscoveryError) as exc:
        # Replaced by a symlink (ELOOP), a FIFO or another file, or removed,
        # since the signature was checked.
        code = exc.code if isinstance(exc, DiscoveryError) else "FILE_CHANGED"
        why = exc.message if isinstance(exc, DiscoveryError) else f"cannot open: {exc.strerror}"
        ctx.enforce = True  # nothing to load, whatever the policy mode
        ctx.fail(
            f"{name} changed after the signature was checked: {why}",
            [Problem(code=code, message=why, file=name)],
            code,
        )
        raise AssertionError("unreachable: ctx.fail raises when enforcing") from exc
    _check_size(ctx, fd, name)
    return fd


def _check_size(ctx: Context, fd: int, name: str) -> None:
    """Refuse a file of another size than signed before anything is read or allocated.

    What changed is told from the header alone (a bounded read through the
    same descriptor). A warn-mode policy warns and reads it anyway: it asked
    for unverified loads.
    """
    signed, actual = ctx.signed_size(name), os.fstat(fd).st_size
    if signed is None or signed == actual:
        return
    entry = ctx.entry(name)

    def header(fmt: FileFormat) -> WeightLayout:
        return parse_weights(fmt, fd, actual, name)[0]

    weights = entry.weights if entry is not None else None
    problems = size_problems(ctx.files[name], signed, actual, weights, header)
    why = size_mismatch(name, signed, actual).message
    try:
        ctx.fail(f"{name} is not the signed size: {why}", problems, "FILE_SIZE_MISMATCH")
    except BaseException:
        os.close(fd)
        raise


#: Where verified bytes live: a private copy, the leased page cache, or the latter when it can be.
Memory = Literal["copy", "mapped", "auto"]
MEMORY_MODES: tuple[Memory, ...] = ("copy", "mapped", "auto")


def check_memory(value: str, what: str = "memory") -> Memory:
    """``value`` as a memory mode, checked where a caller passes it in (before any work)."""
    for mode in MEMORY_MODES:
        if value == mode:
            return mode
    raise InputError(
        f"{what} must be one of {', '.join(MEMORY_MODES)}, not {value!r}", code="USAGE"
    )


def map_signed(ctx: Context, fd: int, name: str, size: int, memory: Memory) -> Any | None:
    """The open signed file mapped under a read lease, or None where ``memory`` means a copy."""
    from ._mapped import MIN_MAPPED, Unavailable, map_leased

    if memory == "copy" or size < MIN_MAPPED:
        return None
    try:
        buf = map_leased(fd, name)
    except Unavailable as exc:
        if memory == "mapped":
            raise InputError(
                f"{name} cannot be mapped safely: {exc}", code="MAPPING_UNAVAILABLE", path=name
            ) from None
        ctx.report.not_mapped[name] = str(exc)
        return None
    ctx.report.mapped.append(name)
    return buf


def verify_jobs(
    fd: int, spans: Sequence[tuple[int, int, TensorHash | None]], buf: Any, mapped: bool
) -> tuple[list[RangeJob], list[Any]]:
    """Jobs checking ``spans`` (start, end, algorithm) of the open file, and the array of each.

    ``buf`` is the whole file's array, or None for a fresh array per span.
    ``mapped``: ``buf`` is a leased mapping, hashed in place with its pages
    faulted in just ahead; otherwise the reads fill the arrays as they hash.
    """
    import numpy as np

    from ._mapped import populate

    prepare = partial(populate, buf) if mapped else None
    jobs: list[RangeJob] = []
    arrays: list[Any] = []
    for a, b, alg in spans:
        array = buf[a:b] if buf is not None else np.empty(b - a, dtype=np.uint8)
        if mapped:
            jobs.append(RangeJob(fd, a, b, alg, buf=buf.data, prepare=prepare))
        else:
            jobs.append(RangeJob(fd, a, b, alg, dest=array.data))
        arrays.append(array)
    return jobs, arrays


def read_verified(ctx: Context, name: str, memory: Memory = "copy") -> Any:
    """Read signed file ``name`` once into memory, verifying it on the way; return the buffer.

    With ``memory="copy"`` the buffer (a numpy ``uint8`` array, not zero-filled
    first) is filled by parallel reads, each piece hashed while still in the
    CPU cache. With ``"mapped"`` a file of 1 MiB or more is mapped under a
    read lease instead (see ``_mapped``) and the mapping itself is hashed; an
    InputError ``MAPPING_UNAVAILABLE`` says why when that cannot be made safe,
    where ``"auto"`` copies. Raises (or, in a warn-mode policy, warns) when the
    bytes are not the signed ones.
    """
    import numpy as np

    fd = open_signed(ctx, name)
    expected = ctx.signed_digest(name) or ""
    try:
        before = os.fstat(fd)
        size = before.st_size
        buf = map_signed(ctx, fd, name, size, memory)
        entry = ctx.entry(name)
        m = ctx.manifest
        if buf is not None:
            size = len(buf)  # as the lease fixed it; a change before that shows below
        parts = covering_parts(entry, size, m.hashing) if m is not None else None
        if parts is None:
            parts = [(0, size, "sha256", expected)]
        mapped = buf is not None
        if buf is None:
            buf = np.empty(size, dtype=np.uint8)  # not zero-filled: the reads fill it
        view = buf.data
        jobs, _ = verify_jobs(fd, [(a, b, alg) for a, b, alg, _ in parts], buf, mapped)
        want = [expected_part for _, _, _, expected_part in parts]
        try:
            got = hash_ranges(jobs)
            grew = bool(os.pread(fd, 1, size))
        except DiscoveryError:
            got, grew = [], True  # the file shrank: reported just below as FILE_CHANGED
        after = os.fstat(fd)
    finally:
        os.close(fd)
    if grew or (after.st_size, after.st_mtime_ns) != (before.st_size, before.st_mtime_ns):
        ctx.fail(
            f"{name} changed while it was being read",
            [Problem(code="FILE_CHANGED", message="changed during load", file=name)],
            "FILE_CHANGED",
        )
    if got != want:
        problems = _diagnose(ctx, name, entry, view, expected, want, got)
        ctx.fail(f"{name} is not the signed file", problems, problems[-1].code)
    else:
        ctx.report.files.append(name)
        ctx.report.bytes_verified += size
        if entry is not None and entry.weights is not None and len(jobs) > 1:
            ctx.report.tensors += [t.name for t in entry.weights.tensors]
    return buf


def _diagnose(
    ctx: Context,
    name: str,
    entry: FileEntry | None,
    view: memoryview,
    expected: str,
    want: list[str | bool],
    got: list[str | bool],
) -> list[Problem]:
    """Say what differs, from the bytes that were read (the path is not opened again)."""
    actual = hashlib.sha256(view).hexdigest()
    problems = [
        Problem(
            code="FILE_MODIFIED",
            message="content changed",
            file=name,
            expected=expected,
            actual=actual,
        )
    ]
    m = ctx.manifest
    if entry is None or entry.weights is None or m is None:
        return problems
    w = entry.weights
    if len(got) == len(want) and len(want) > 1 and got[0] == want[0]:
        # Same header, so the same layout: the differing parts are exactly known.
        for t, have in zip(w.tensors, got[1 : 1 + len(w.tensors)], strict=True):
            if have != t.digest:
                problems.append(tensor_modified(name, t.name, t.digest, str(have)))
        if any(g is not True for g in got[1 + len(w.tensors) :]):
            problems.append(
                Problem(code="PADDING_MODIFIED", message="padding bytes are not zero", file=name)
            )
        return problems
    try:
        layout = parse_weights_bytes(w.format, view, name)
    except ModelsignError as exc:
        problems.append(
            Problem(
                code=exc.code,
                message=f"no longer parses: {exc.message}",
                file=name,
                tensor=exc.tensor,
            )
        )
        return problems
    alg = m.hashing.tensor
    header = new_hasher(m.hashing.header)
    header.update(view[: layout.header_size])
    digests = None
    if alg is not None:
        jobs = [RangeJob(-1, t.start, t.end, alg, buf=view) for t in layout.tensors]
        digests = [str(d) for d in hash_ranges(jobs)]
    kv = None
    if layout.kv_range is not None:
        kv_hash = new_hasher(m.hashing.header)
        kv_hash.update(view[layout.kv_range[0] : layout.kv_range[1]])
        kv = kv_hash.hexdigest()
    f = ctx.files[name]
    d = FileDigests(f, w.format, actual, layout, header.hexdigest(), kv, digests)
    problems += diff_weights(name, w, weights_info(d))
    return problems
