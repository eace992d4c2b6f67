"""What every verified loader does first: trust the signature, then read verified bytes.

A loader never verifies a path and lets a framework re-open it: it reads each
file once into its own buffer, checks that buffer against the signed manifest
(header and tensor digests in parallel when the manifest covers every byte,
else the file's SHA-256), and builds the runtime's objects from the same
buffer. A file swapped or rewritten between check and load is therefore
either caught or never used.
"""

from __future__ import annotations

import hashlib
import os
import stat
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from ..compare import Problem, diff_weights
from ..discover import ModelFile, discover
from ..errors import InputError, ModelsignError, VerificationError
from ..formats import SNIFF_BYTES, detect_format
from ..hashing import RangeJob, hash_file, hash_ranges
from ..manifest import FileEntry, Manifest, weights_info
from ..policy import Policy, PolicyReport, evaluate
from ..sign import DEFAULT_SIGNATURE
from ..signature.bundle import read_bundle
from ..signature.statement import SINGLE_FILE_RESOURCE, SignedStatement, parse_statement
from ..signature.verifiers import SignerInfo, Verifier


class ModelsignWarning(UserWarning):
    """Raised as a warning when a warn-mode policy lets an unverified load through."""


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
    enforce: bool  # False: a warn-mode policy, failures only warn

    @property
    def manifest(self) -> Manifest | None:
        return self.statement.manifest if self.statement is not None else None

    def signed_digest(self, name: str) -> str | None:
        if self.statement is None:
            return None
        for r in self.statement.resources:
            rname = SINGLE_FILE_RESOURCE if self.single_file is not None else name
            if r.name == rname and (self.single_file is None or self.single_file == name):
                return r.digest if r.algorithm == "sha256" else None
        return None

    def entry(self, name: str) -> FileEntry | None:
        m = self.manifest
        if m is None:
            return None
        return m.files[0] if m.single_file else m.file(name)

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
    if verifier is None:
        if policy is None:
            raise InputError("give a verifier, or a policy that lists signers", code="USAGE")
        verifier = policy.verifier()
    sig_path, root, name = _signature_for(p, os.fspath(signature) if signature else None)
    enforce = policy is None or policy.mode_of("signers") == "enforce"
    report = LoadReport(model=p, signature=sig_path, signer=None)
    ctx = Context(root, None, sig_path, None, None, report, {}, policy, enforce)
    problems: list[Problem] = []
    try:
        with open(sig_path, "rb") as fh:
            envelope = read_bundle(fh.read(256 << 20))
        ctx.signer = report.signer = verifier.verify_envelope(envelope)
        ctx.statement = parse_statement(envelope.payload)
    except FileNotFoundError:
        problems.append(Problem(code="SIGNATURE_NOT_FOUND", message="no signature", file=sig_path))
    except VerificationError as exc:
        problems.append(Problem(code=exc.code, message=exc.message, file=sig_path))
    if ctx.statement is not None:
        single = [r.name for r in ctx.statement.resources] == [SINGLE_FILE_RESOURCE]
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
            signature_problems=[f"{x.code}: {x.message}" for x in problems],
            unsigned_files=unsigned,
            coverage_manifest=ctx.manifest,
            now=now,
        )
        failed = [r for r in report.policy.rules if r.status != "pass"]
        if failed:
            blocked = report.policy.blocked
            msg = "policy rule(s) " + ", ".join(
                f"{r.rule} ({'; '.join(r.reasons[:3])})" for r in failed
            )
            if blocked:
                refusal = VerificationError(
                    f"refused by {msg}", code="POLICY_FAILED", findings=problems
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
    exclude = (
        [os.path.basename(ctx.signature)]
        if os.path.dirname(os.path.abspath(ctx.signature)) == os.path.abspath(ctx.root)
        else []
    )
    if statement is not None:
        exclude += list(statement.ignore_paths)
    patterns = list(ctx.manifest.ignored.patterns) if ctx.manifest is not None else []
    try:
        tree = discover(
            ctx.root,
            ignore=patterns,
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
    signed = {
        r.name.rsplit(":", 2)[0] if ctx.statement.method == "shards" else r.name
        for r in ctx.statement.resources
    }
    out = {}
    for n, f in ctx.files.items():
        if n not in signed:
            out[n] = _sniff(f)
    return out


def _sniff(f: ModelFile) -> str:
    try:
        fd = os.open(f.real, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError:
        return "opaque"
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return "opaque"
        return detect_format(f.path, os.pread(fd, SNIFF_BYTES, 0))
    finally:
        os.close(fd)


def read_verified(ctx: Context, name: str) -> bytearray:
    """Read signed file ``name`` once into a buffer and check it; return the buffer.

    Raises (or, in a warn-mode policy, warns) when the bytes are not the signed ones.
    """
    f = ctx.files.get(name)
    expected = ctx.signed_digest(name)
    if f is None or expected is None:
        what = "is not in the model" if f is None else "is not covered by the signature"
        ctx.fail(
            f"{name} {what}",
            [Problem(code="FILE_UNSIGNED", message=what, file=name)],
            "FILE_UNSIGNED",
        )
        if f is None:
            raise InputError(f"{name} is not in the model", code="NOT_FOUND", path=name)
    fd = os.open(f.real, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    try:
        before = os.fstat(fd)
        buf = bytearray(before.st_size)
        view = memoryview(buf)
        pos = 0
        while pos < len(buf):
            n = os.readv(fd, [view[pos:]])
            if n == 0:
                break
            pos += n
        grew = bool(os.read(fd, 1))
        after = os.fstat(fd)
    finally:
        os.close(fd)
    if (
        pos != len(buf)
        or grew
        or (after.st_size, after.st_mtime_ns)
        != (
            before.st_size,
            before.st_mtime_ns,
        )
    ):
        ctx.fail(
            f"{name} changed while it was being read",
            [Problem(code="FILE_CHANGED", message="changed during load", file=name)],
            "FILE_CHANGED",
        )
    problems = _check_buffer(ctx, name, view, expected or "")
    if problems:
        ctx.fail(f"{name} is not the signed file", problems, problems[0].code)
    else:
        ctx.report.files.append(name)
        ctx.report.bytes_verified += len(buf)
    return buf


def covered(entry: FileEntry | None, size: int, manifest: Manifest | None) -> bool:
    """Whether header, tensor and padding digests cover every byte of the file."""
    if (
        entry is None
        or entry.weights is None
        or manifest is None
        or manifest.hashing.tensor is None
    ):
        return False
    w = entry.weights
    if entry.size != size or any(t.digest is None for t in w.tensors):
        return False
    spans = sorted(
        [(0, w.header_size)]
        + [(t.offset, t.offset + t.length) for t in w.tensors]
        + [(a, b) for a, b in w.padding]
    )
    end = 0
    for a, b in spans:
        if a != end:
            return False
        end = b
    return end == size


def _check_buffer(ctx: Context, name: str, view: memoryview, expected: str) -> list[Problem]:
    entry = ctx.entry(name)
    m = ctx.manifest
    if m is not None and entry is not None and covered(entry, len(view), m):
        w = entry.weights
        assert w is not None and m.hashing.tensor is not None
        jobs = [RangeJob(-1, 0, w.header_size, m.hashing.header, view)]
        want: list[str | bool] = [w.header_digest]
        for t in w.tensors:
            jobs.append(RangeJob(-1, t.offset, t.offset + t.length, m.hashing.tensor, view))
            want.append(t.digest or "")
        for a, b in w.padding:
            jobs.append(RangeJob(-1, a, b, None, view))
            want.append(True)
        got = hash_ranges(jobs)
        if got == want:
            ctx.report.tensors += [t.name for t in w.tensors]
            return []
        return _diagnose(ctx, name, entry, expected)
    actual = hashlib.sha256(view).hexdigest()
    if actual == expected:
        return []
    problems = [
        Problem(
            code="FILE_MODIFIED",
            message="content changed",
            file=name,
            expected=expected,
            actual=actual,
        )
    ]
    if entry is not None:
        problems += _diagnose(ctx, name, entry, expected)[1:]
    return problems


def _diagnose(ctx: Context, name: str, entry: FileEntry, expected: str) -> list[Problem]:
    """Say which tensors changed (reads the file again; only on failure)."""
    problems = [
        Problem(code="FILE_MODIFIED", message="content changed", file=name, expected=expected)
    ]
    f = ctx.files[name]
    m = ctx.manifest
    try:
        d = hash_file(f, tensor_hash=m.hashing.tensor if m is not None else None)
    except ModelsignError as exc:
        problems.append(Problem(code=exc.code, message=exc.message, file=name))
        return problems
    if entry.weights is not None and d.layout is not None and m is not None:
        problems += diff_weights(name, entry.weights, weights_info(d, m.hashing.tensor))
    return problems
