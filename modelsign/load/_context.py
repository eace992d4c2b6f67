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
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from typing import Any, Literal

from .._internal._atomic import open_model_file, size_mismatch
from .._internal.check.compare import Problem
from .._internal.check.decision import Decision
from .._internal.check.facts import Listing, Seen
from .._internal.check.judge import read_problems, same_layout, size_problems
from .._internal.check.plan import make_plan
from .._internal.discover import ModelFile
from .._internal.formats import file_format, parse_weights, parse_weights_bytes, sniff_file
from .._internal.hashing import FileDigests, RangeJob, TensorHash, hash_ranges, new_hasher
from .._internal.manifest import (
    FileEntry,
    Manifest,
    Part,
    WeightsInfo,
    covering_parts,
    weights_info,
)
from .._internal.signature.location import (
    SignatureLocation,
    covering_location,
    moved_note,
    signature_location,
)
from .._internal.signature.statement import SINGLE_FILE_RESOURCE, SignedStatement
from .._internal.signature.verifiers import SignerInfo, Verifier
from .._observe import header_seen, ignored_formats, model_files, read_signature
from .._trust import Trust, resolve_trust
from ..codes import Code
from ..errors import DiscoveryError, InputError, ModelsignError
from ..policy import RULE_CODES, Policy, PolicyReport, evaluate


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

    location: SignatureLocation  # the model (root, single file) and its signature's files
    statement: SignedStatement | None
    signer: SignerInfo | None
    report: LoadReport
    files: dict[str, ModelFile]  # on disk, by signed-relative name
    policy: Policy | None
    #: Refuse ("raise"), or only warn (a warn-mode policy and no trust from the caller).
    decision: Decision

    @property
    def root(self) -> str:
        """The folder the signed names are relative to."""
        return self.location.root

    @property
    def single_file(self) -> str | None:
        """The file name when the signature covers one file."""
        return self.location.single_file

    @property
    def signature(self) -> str:
        return self.location.signature

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

    def fail(
        self, message: str, problems: Sequence[Problem], code: str, *, fatal: bool = False
    ) -> None:
        """Refuse, or (warn-mode policy) warn about a failed check; ``fatal``: always refuse.

        A fatal failure leaves nothing to load (a file gone or swapped since
        its signature was checked), whatever the policy's mode.
        """
        text = self.decision.fail(
            message, problems, code, result=self.report, fatal=fatal, stacklevel=3
        )
        self.report.verified = False
        self.report.warnings.append(text)


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
        raise InputError(f"no such file or folder: {p}", code=Code.NOT_FOUND, path=p)
    trust = resolve_trust(verifier, policy)  # the caller's verifier always enforced
    loc = covering_location(p, signature=os.fspath(signature) if signature else None)
    report = LoadReport(model=p, signature=loc.signature, signer=None)
    decision = Decision("raise" if trust.enforce else "warn")
    signed, problems = read_signature(
        loc, trust.verify_envelope, missing_ok=True, problem_file=loc.signature
    )
    statement = signed.statement if signed is not None else None
    if signed is not None:
        report.signer = signed.signer
        for note in [*signed.notes, moved_note(loc)]:
            if note is not None:
                report.warnings.append(decision.warn(f"modelsign: {note}", stacklevel=2))
    single, refusal = _single_file(statement, loc.single_file)
    if single is None:  # a folder, or a file loaded as one of its folder's
        loc = signature_location(loc.root, signature=loc.signature, claims=loc.claims)
    problems += refusal
    ctx = Context(loc, statement, report.signer, report, {}, policy, decision)
    ctx.files = _files_on_disk(ctx)
    unsigned = _unsigned(ctx)
    if policy is not None:
        _judge_policy(ctx, trust, problems, unsigned, now)
    elif problems:
        ctx.fail("the signature does not verify", problems, problems[0].code)
    if policy is None and unsigned and ctx.single_file is None:
        # Without a policy, files beside the model that the signature does not
        # cover are refused, as `modelsign verify` does.
        ctx.fail(
            "files not covered by the signature are present",
            [Problem(code=Code.FILE_EXTRA, message="not signed", file=n) for n in sorted(unsigned)],
            "FILE_EXTRA",
        )
    return ctx


def _single_file(
    statement: SignedStatement | None, name: str | None
) -> tuple[str | None, list[Problem]]:
    """The single file the signature covers (given a file ``name``), or why it cannot apply.

    "." (the OMS tool's name), or the spec's own file name in a signature made
    for a single file (the manifest says so; without one, the file beside its
    ".sig" is taken as the single file it names).
    """
    if statement is None:
        return None, []
    only = statement.single_file_name
    m = statement.manifest
    single = only == SINGLE_FILE_RESOURCE or (
        only is not None and only == name and (m.single_file if m is not None else True)
    )
    if not single or name is not None:
        return (name if single else None), []
    problem = Problem(
        code=Code.SIGNATURE_FOR_FILE, message="the signature covers a single file; load that file"
    )
    return None, [problem]


def _judge_policy(
    ctx: Context,
    trust: Trust,
    problems: list[Problem],
    unsigned: dict[str, str],
    now: datetime | None,
) -> None:
    """Judge the policy; refuse when an enforced rule fails, warn when one only warns."""
    assert ctx.policy is not None
    report = ctx.report
    report.policy = evaluate(
        ctx.policy,
        manifest=ctx.manifest,
        signer=ctx.signer,
        # (reasons "CODE: message": the file here is the signature's, named only when
        # it is missing: where it was looked for)
        signature_problems=[
            x if x.code == Code.SIGNATURE_NOT_FOUND else x.model_copy(update={"file": None})
            for x in problems
        ]
        + trust.warn_reasons(),
        unsigned_files=unsigned,
        ignored_files=_ignored(ctx, unsigned),
        coverage_manifest=ctx.manifest,
        verifier_given=trust.caller_given,
        now=now,
        release=ctx.statement.release if ctx.statement is not None else None,
    )
    judged = [r for r in report.policy.rules if r.status != "pass"]  # failed or warned
    if not judged:
        return
    msg = ("policy rule " if len(judged) == 1 else "policy rules ") + ", ".join(
        f"{r.rule} ({'; '.join(r.reasons[:3])})" for r in judged
    )
    if report.policy.blocked:
        findings = problems + [
            Problem(code=Code.FILE_EXTRA, message=f"not signed ({fmt})", file=n)
            for n, fmt in sorted(unsigned.items())
        ]
        findings += [
            Problem(code=RULE_CODES[r.rule], message=reason)
            for r in report.policy.failed
            for reason in r.reasons
        ]
        ctx.decision.fail(f"refused by {msg}", findings, "POLICY_FAILED", result=report, fatal=True)
    report.warnings.append(ctx.decision.warn(f"modelsign: {msg}", stacklevel=4))
    if problems:
        report.verified = False


def _files_on_disk(ctx: Context) -> dict[str, ModelFile]:
    if ctx.single_file is not None:
        full = os.path.join(ctx.root, ctx.single_file)
        info = os.stat(full)
        real = os.path.realpath(full)
        return {
            ctx.single_file: ModelFile(
                ctx.single_file, real, info.st_size, info.st_dev, info.st_ino
            )
        }
    try:
        return model_files(ctx.root, ctx.location, ctx.statement)[1]
    except ModelsignError as exc:
        ctx.fail(f"the model folder cannot be walked: {exc.message}", [], exc.code)
        return {}


def _unsigned(ctx: Context) -> dict[str, str]:
    """Files on disk the signature does not name (as the check core's plan says), sniffed."""
    st = ctx.statement
    if st is None or ctx.single_file is not None:
        return {}
    plan = make_plan(st, Listing({n: f.size for n, f in ctx.files.items()}))
    # A single-file signature for the folder (refused already): none of its files is signed.
    names = plan.extra if plan.refusal is None else [n for n in ctx.files if n not in st.files]
    return {n: sniff_file(ctx.files[n].real, n) for n in names}


def _ignored(ctx: Context, unsigned: dict[str, str]) -> dict[str, str]:
    """Files the signature's ignore_paths left out, for the formats rule (still in the folder)."""
    if ctx.statement is None:
        return {}
    return ignored_formats(ctx.location, ctx.files.keys() | unsigned.keys())


def open_signed(ctx: Context, name: str) -> int:
    """Open signed file ``name`` (no symlink following); refuse a missing or unsigned one."""
    f = ctx.files.get(name)
    expected = ctx.signed_digest(name)
    if f is None:
        if expected is not None:
            problem = Problem(
                code=Code.FILE_MISSING,
                message="signed file is missing",
                file=name,
                expected=expected,
            )
            ctx.fail(f"{name} is signed but missing", [problem], "FILE_MISSING")
        raise InputError(f"{name} is not in the model", code=Code.NOT_FOUND, path=name)
    if expected is None:
        ctx.fail(
            f"{name} is not covered by the signature",
            [Problem(code=Code.FILE_UNSIGNED, message="not covered by the signature", file=name)],
            "FILE_UNSIGNED",
        )
    try:
        fd = open_model_file(f, same_file=False)
    except (OSError, DiscoveryError) as exc:
        # Replaced by a symlink (ELOOP), a FIFO or another file, or removed,
        # since the signature was checked.
        code = exc.code if isinstance(exc, DiscoveryError) else "FILE_CHANGED"
        why = exc.message if isinstance(exc, DiscoveryError) else f"cannot open: {exc.strerror}"
        ctx.fail(
            f"{name} changed after the signature was checked: {why}",
            [Problem(code=code, message=why, file=name)],
            code,
            fatal=True,  # nothing to load, whatever the policy mode
        )
        raise AssertionError("unreachable: a fatal failure raises") from exc
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
    weights = entry.weights if entry is not None else None
    seen = Seen()
    if weights is not None:
        seen = header_seen(
            ctx.files[name], weights.format, lambda fmt: parse_weights(fmt, fd, actual, name)[0]
        )
    problems = size_problems(name, signed, actual, weights, seen.weights, seen.unparsable)
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
        f"{what} must be one of {', '.join(MEMORY_MODES)}, not {value!r}", code=Code.USAGE
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
                f"{name} cannot be mapped safely: {exc}", code=Code.MAPPING_UNAVAILABLE, path=name
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
            [Problem(code=Code.FILE_CHANGED, message="changed during load", file=name)],
            "FILE_CHANGED",
        )
    if got != want:
        problems = _diagnose(ctx, name, entry, view, expected, parts, got)
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
    parts: list[Part],
    got: list[str | bool],
) -> list[Problem]:
    """Say what differs, from the bytes that were read (the path is not opened again)."""
    want = [w for *_, w in parts]
    # Read as one SHA-256 range (no covering parts): that digest is the file's already.
    whole = len(got) == 1 and parts[0][:3] == (0, len(view), "sha256")
    actual = str(got[0]) if whole else hashlib.sha256(view).hexdigest()
    m = ctx.manifest
    weights = entry.weights if entry is not None and m is not None else None
    reread = None
    if weights is not None and not same_layout(want, got):
        reread = _reread(ctx, name, weights, view, actual)
    return read_problems(name, weights, expected, actual, (want, got), reread)


def _reread(
    ctx: Context, name: str, w: WeightsInfo, view: memoryview, actual: str
) -> WeightsInfo | Problem:
    """The buffer parsed afresh (its header changed): its layout and digests, or why not."""
    m = ctx.manifest
    assert m is not None
    try:
        layout = parse_weights_bytes(w.format, view, name)
    except ModelsignError as exc:
        why = f"no longer parses: {exc.message}"
        return Problem(code=exc.code, message=why, file=name, tensor=exc.tensor)
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
    d = FileDigests(f, file_format(w.format), actual, layout, header.hexdigest(), kv, digests)
    return weights_info(d)
