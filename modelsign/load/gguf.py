"""``open_gguf``: hand llama.cpp exactly the GGUF bytes that were verified.

llama.cpp and its bindings take a path and mmap it, so verifying a path and
then passing it on leaves a window in which the file can be swapped. Instead
each file is opened once, verified through that descriptor, and the loader is
given ``/proc/self/fd/N``: opening it reopens the very inode that was hashed,
whatever the path names by then. A split set (``NAME-00001-of-0000N.gguf``) is
verified as a whole under one signature, since llama.cpp loads every member and
members signed separately could be mixed across releases. What a descriptor
cannot prevent is a rewrite in place of the verified inode; only its stat shows
that afterwards: :meth:`VerifiedGGUF.check_unchanged`. ``memory="copy"`` closes
that gap: each file is copied into a memfd, sealed against every write, resize
and further sealing, and it is that copy which is hashed and handed out.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
import tempfile
import weakref
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from .._internal._atomic import open_model_file
from .._internal.check.compare import Problem, diff_weights
from .._internal.check.judge import size_problems
from .._internal.formats import parse_weights
from .._internal.hashing import FileDigests, RangeJob, digest_bytes, hash_ranges
from .._internal.manifest import FileEntry, covering_parts, weights_info
from .._internal.signature.verifiers import Verifier
from ..codes import Code
from ..errors import DiscoveryError, InputError, ModelsignError, VerificationError
from ..policy import Policy
from ._context import Context, LoadReport, open_context

#: Where open_gguf's loader reads: the verified file itself, or a sealed private copy.
GGUFMemory = Literal["file", "copy"]
_GGUF_MEMORY: tuple[GGUFMemory, ...] = ("file", "copy")
_COPY_CHUNK = 1 << 30  # sendfile's count per call

# Where a descriptor can be reopened by name: Linux, then the BSDs and macOS.
_FD_DIRS = ("/proc/self/fd", "/dev/fd")

# llama.cpp's split naming ("%s-%05d-of-%05d.gguf"); it finds members by this name.
_SPLIT = re.compile(r"^(?P<prefix>.+)-(?P<no>\d{5})-of-(?P<count>\d{5})\.gguf$")


def _split(name: str) -> tuple[str, int, int] | None:
    """(prefix, member number, member count) of a split-set member name, else None."""
    m = _SPLIT.match(name)
    if m is None:
        return None
    no, count = int(m["no"]), int(m["count"])
    return (m["prefix"], no, count) if 1 <= no <= count else None


def _set_of(name: str) -> list[str]:
    """Every member of the set ``name`` belongs to, in order (just ``name`` if not split)."""
    s = _split(name)
    if s is None:
        return [name]
    prefix, _, count = s
    return [f"{prefix}-{i:05d}-of-{count:05d}.gguf" for i in range(1, count + 1)]


def _fd_dir() -> str:
    for d in _FD_DIRS:
        if os.path.isdir(d):
            return d
    raise InputError(
        "open_gguf hands the loader /proc/self/fd/N (or /dev/fd/N) so that it opens the "
        "verified file itself; this platform has neither. Verify with modelsign.verify and "
        "load from a copy only you can write instead.",
        code=Code.UNSUPPORTED_PLATFORM,
    )


@dataclass
class _Member:
    name: str  # signed name, relative to the model root
    where: str  # the path as the user sees it (symlinks followed at each check)
    fd: int
    stamp: tuple[int, int, int]  # (size, mtime_ns, ctime_ns) of the fd when verified
    sealed: bool = False  # fd is a sealed memfd copy: nothing can change it


def _release(fds: list[int], linkdir: list[str]) -> None:
    while fds:
        with contextlib.suppress(OSError):
            os.close(fds.pop())
    while linkdir:
        shutil.rmtree(linkdir.pop(), ignore_errors=True)


class VerifiedGGUF:
    """Open descriptors of a verified GGUF file or split set, and paths that reopen them.

    Keep it open until the loader has opened ``path`` (or ``paths``); after that
    the loader holds its own descriptors and mappings. The descriptors are
    close-on-exec (Python's default): the loader runs in this process, and a
    child process must be given them explicitly (``subprocess`` ``pass_fds``).
    """

    paths: list[str]
    path: str
    fds: list[int]
    names: list[str]
    report: LoadReport

    def __init__(self, members: list[_Member], report: LoadReport, fd_dir: str) -> None:
        self._members = members
        self.names = [m.name for m in members]
        self.fds = [m.fd for m in members]
        self.paths = [f"{fd_dir}/{m.fd}" for m in members]
        self.path = self.paths[0]
        self.report = report
        self._linkdir: list[str] = []
        self._finalizer = weakref.finalize(self, _release, list(self.fds), self._linkdir)

    @property
    def closed(self) -> bool:
        return not self._finalizer.alive

    @property
    def llama_path(self) -> str:
        """The path to give llama.cpp's ``model_path`` (``llama_cpp.Llama(model_path=...)``).

        For one file this is :attr:`path`. For a split set, llama.cpp derives the
        other members' names from the first one's (``NAME-0000i-of-0000N.gguf``),
        which ``/proc/self/fd/N`` does not have: this is then a link with the
        first member's name in a private temporary folder, beside links for the
        other members, each pointing at its verified descriptor. (llama.cpp's
        ``llama_model_load_from_splits`` takes :attr:`paths` directly.)
        """
        self._require_open()
        if len(self._members) == 1:
            return self.path
        if not self._linkdir:
            folder = tempfile.mkdtemp(prefix="modelsign-gguf-")  # mode 0700
            self._linkdir.append(folder)
            for m, target in zip(self._members, self.paths, strict=True):
                os.symlink(target, os.path.join(folder, m.name.rsplit("/", 1)[-1]))
        return os.path.join(self._linkdir[0], self._members[0].name.rsplit("/", 1)[-1])

    def check_unchanged(self) -> None:
        """Raise ``FILE_CHANGED`` unless every path still names the verified, unmodified inode.

        The path must lead to the descriptor's file (same device, inode, size
        and mtime): a rename over the path or a re-pointed symlink shows here.
        The descriptor's own size, mtime and ctime must be those seen at
        verification: a rewrite in place shows here (ctime too, because
        anyone owning the file can set its mtime back). An mmap'ing loader
        keeps reading the file, so for certainty load with ``use_mmap=False``
        and call this once loading is done. Timestamps have the kernel's
        clock granularity (milliseconds); this check raises in every policy
        mode, since the caller asked for it. A sealed copy (``memory="copy"``)
        cannot change and has no path: it always passes.
        """
        self._require_open()
        problems = [p for m in self._members if (p := _change_of(m)) is not None]
        if problems:
            names = ", ".join(p.file or "" for p in problems)
            error = VerificationError(
                f"changed since verification: {names}",
                code=Code.FILE_CHANGED,
                findings=problems,
                path=problems[0].file,
            )
            error.result = self.report
            raise error

    def close(self) -> None:
        """Close the descriptors and remove the link folder (if any); idempotent."""
        self._finalizer()

    def _require_open(self) -> None:
        if self.closed:
            raise InputError("the verified GGUF handle is closed", code=Code.CLOSED)

    def __enter__(self) -> VerifiedGGUF:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else ", ".join(self.paths)
        return f"<VerifiedGGUF {', '.join(self.names)} ({state})>"


def _change_of(m: _Member) -> Problem | None:
    """How a verified member's path or file changed since verification, if it did."""
    if m.sealed:
        return None
    now = os.fstat(m.fd)
    try:
        there = os.stat(m.where)
    except OSError as exc:
        why = f"the path no longer opens ({exc.strerror})"
        return Problem(code=Code.FILE_CHANGED, message=why, file=m.name)
    now_is = (now.st_dev, now.st_ino, now.st_size, now.st_mtime_ns)
    if (there.st_dev, there.st_ino, there.st_size, there.st_mtime_ns) != now_is:
        why = "another file is at the path now (replaced since verification)"
        return Problem(code=Code.FILE_CHANGED, message=why, file=m.name)
    if (now.st_size, now.st_mtime_ns, now.st_ctime_ns) != m.stamp:
        why = "the verified file was modified since verification"
        return Problem(code=Code.FILE_CHANGED, message=why, file=m.name)
    return None


def open_gguf(
    path: str | os.PathLike[str],
    *,
    signature: str | os.PathLike[str] | None = None,
    policy: Policy | None = None,
    verifier: Verifier | None = None,
    now: datetime | None = None,
    memory: GGUFMemory = "file",
) -> VerifiedGGUF:
    """Open and verify a GGUF file or split set; return descriptors the loader reopens.

    ``path`` is a ``.gguf`` file (signed by ``FILE.gguf.sig`` beside it or by
    the folder's ``model.sig``) or a folder holding one GGUF model. Given any
    member of a split set, or its folder, every member must be present and
    signed by the same signature; all are verified. Each file is opened once
    and hashed through that descriptor (header, tensor and padding digests in
    parallel when the signed manifest covers every byte, else the file
    SHA-256), so the bytes the loader reads through :attr:`VerifiedGGUF.path`
    are the bytes that were checked.

    ``memory="file"`` (the default) hands out the verified file itself: a
    rewrite in place after the check is only detected, by
    :meth:`VerifiedGGUF.check_unchanged`. ``memory="copy"`` copies each file
    into a memfd sealed against writes, truncation and growth (Linux), hashes
    that copy and hands it out: nothing can change what the loader reads, at
    the cost of a copy in memory (shared with the loader's mapping of it);
    ``InputError`` ``SEALING_UNAVAILABLE`` says why where that is impossible.

    On any failure every descriptor is closed and :class:`VerificationError`
    is raised, naming the tensors that changed (a warn-mode policy warns
    instead and marks ``report.verified`` False).
    """
    if memory not in _GGUF_MEMORY:
        raise InputError(
            f"memory must be one of {', '.join(_GGUF_MEMORY)}, not {memory!r}", code=Code.USAGE
        )
    fd_dir = _fd_dir()
    p = os.fspath(path)
    ctx = open_context(p, signature=signature, verifier=verifier, policy=policy, now=now)
    names = _choose(ctx, p)
    _check_set(ctx, names)
    members: list[_Member] = []
    try:
        for name in names:
            if name in ctx.files:
                member = _open(ctx, name)
                members.append(_sealed(member) if memory == "copy" else member)
        if not members:
            raise InputError(
                f"no member of {names[0]} is present", code=Code.NOTHING_TO_LOAD, path=p
            )
        _verify(ctx, members)
        return VerifiedGGUF(members, ctx.report, fd_dir)
    except BaseException:
        _release([m.fd for m in members], [])
        raise


def _signed_names(ctx: Context) -> set[str]:
    st = ctx.statement
    if st is None:
        return set()
    if ctx.single_file is not None:
        return {ctx.single_file}
    return st.files


def _choose(ctx: Context, path: str) -> list[str]:
    """The names to load: the given file's set, or the one GGUF model in the folder."""
    if ctx.single_file is not None:
        return _set_of(ctx.single_file)
    if not os.path.isdir(path):
        return _set_of(os.path.basename(path))  # signed names are relative to its folder
    groups: dict[str, list[str]] = {}
    for n in sorted(_signed_names(ctx) or set(ctx.files)):
        if n.endswith(".gguf"):
            members = _set_of(n)
            groups.setdefault(members[0], members)
    if not groups:
        raise InputError(f"no GGUF file in {path}", code=Code.NO_GGUF, path=path)
    if len(groups) > 1:
        raise InputError(
            f"{path} holds several GGUF models ({', '.join(groups)}); open the file to load",
            code=Code.AMBIGUOUS_MODEL,
            path=path,
        )
    return next(iter(groups.values()))


def _expected(ctx: Context, name: str) -> str | None:
    """The signed SHA-256 of ``name``, or None when the signature does not cover it."""
    if ctx.single_file is not None and name != ctx.single_file:
        return None
    digest = ctx.signed_digest(name)
    if digest is None:
        entry = ctx.entry(name)
        digest = entry.sha256 if entry is not None else None
    return digest


def _check_set(ctx: Context, names: list[str]) -> None:
    """Every member present and signed, and no unsigned stray member beside them."""
    problems: list[Problem] = []
    for n in names:
        if n not in ctx.files and not os.path.lexists(os.path.join(ctx.root, n)):
            problems.append(Problem(code=Code.FILE_MISSING, message="file is missing", file=n))
        elif n not in ctx.files or _expected(ctx, n) is None:
            why = (
                f"the signature covers only {ctx.single_file}; sign the folder so the split "
                "set is signed as a whole"
                if ctx.single_file is not None
                else "not covered by the signature"
            )
            problems.append(Problem(code=Code.FILE_UNSIGNED, message=why, file=n))
    s = _split(names[0])
    if s is not None:
        signed = _signed_names(ctx)
        for n in sorted(ctx.files):
            stray = _SPLIT.match(n)  # any numbering: x-00004-of-00003.gguf is one too
            if stray and stray["prefix"] == s[0] and n not in names and n not in signed:
                problems.append(
                    Problem(
                        code=Code.FILE_EXTRA, message="unsigned member of the split set", file=n
                    )
                )
    if problems:
        what = "split GGUF set" if s is not None else "GGUF file"
        ctx.fail(f"the {what} is not complete and signed", problems, problems[0].code)


def _open(ctx: Context, name: str) -> _Member:
    f = ctx.files[name]
    try:
        fd = open_model_file(f, same_file=False)  # close-on-exec: see VerifiedGGUF
    except DiscoveryError as exc:
        # A FIFO, another inode or a link out of the model since the folder was listed.
        raise VerificationError(exc.message, code=exc.code, path=name) from exc
    except OSError as exc:
        # Gone, or made a symlink (ELOOP), since the folder was listed: tampering.
        if exc.errno == errno.ENOENT:
            raise VerificationError("file is missing", code=Code.FILE_MISSING, path=name) from exc
        if exc.errno == errno.ELOOP:
            raise VerificationError(
                "file was replaced by a symlink", code=Code.FILE_CHANGED, path=name
            ) from exc
        raise DiscoveryError(
            f"cannot open: {exc.strerror}", code=Code.UNREADABLE, path=name
        ) from exc
    st = os.fstat(fd)
    where = os.path.join(ctx.root, name)
    return _Member(name, where, fd, (st.st_size, st.st_mtime_ns, st.st_ctime_ns))


def _sealed(member: _Member) -> _Member:
    """``member`` copied into a memfd sealed against every change; the original is closed."""
    import fcntl

    seals = ("F_ADD_SEALS", "F_SEAL_WRITE", "F_SEAL_SHRINK", "F_SEAL_GROW", "F_SEAL_SEAL")
    if not hasattr(os, "memfd_create") or not all(hasattr(fcntl, s) for s in seals):
        os.close(member.fd)
        raise InputError(
            "memory='copy' needs a sealed memfd (os.memfd_create and F_ADD_SEALS: Linux); "
            "use memory='file' and check_unchanged() here",
            code=Code.SEALING_UNAVAILABLE,
            path=member.name,
        )
    try:
        copy = os.memfd_create(
            f"modelsign:{os.path.basename(member.name)}", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING
        )
    except OSError as exc:
        os.close(member.fd)
        raise InputError(
            f"memory='copy': cannot create a sealed memfd ({exc.strerror})",
            code=Code.SEALING_UNAVAILABLE,
            path=member.name,
        ) from exc
    try:
        _copy_fd(member.fd, copy, member.stamp[0])
        # F_SEAL_SEAL last: the seals themselves can then never be lifted or changed.
        fcntl.fcntl(
            copy,
            fcntl.F_ADD_SEALS,
            fcntl.F_SEAL_WRITE | fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_SEAL,
        )
    except OSError as exc:
        os.close(copy)
        raise InputError(
            f"memory='copy': cannot make the sealed copy ({exc.strerror})",
            code=Code.SEALING_UNAVAILABLE,
            path=member.name,
        ) from exc
    finally:
        os.close(member.fd)
    st = os.fstat(copy)
    return _Member(
        member.name, member.where, copy, (st.st_size, st.st_mtime_ns, st.st_ctime_ns), True
    )


def _copy_fd(src: int, dst: int, size: int) -> None:
    """Copy ``size`` bytes of ``src`` into ``dst`` in the kernel; stop early if ``src`` shrank."""
    done = 0
    while done < size:
        n = os.sendfile(dst, src, done, min(_COPY_CHUNK, size - done))
        if n == 0:
            return  # the file shrank: the copy is shorter, and verification refuses it
        done += n


def _verify(ctx: Context, members: list[_Member]) -> None:
    """Hash every member through its descriptor (one parallel batch) and judge each."""
    m = ctx.manifest
    plans: list[tuple[_Member, FileEntry | None, str, int, int]] = []  # jobs [a, b)
    jobs: list[RangeJob] = []
    want: list[str | bool] = []
    for mem in members:
        expected = _expected(ctx, mem.name)
        if expected is None:
            continue  # unsigned, let through by a warn-mode policy
        entry = ctx.entry(mem.name)
        size = mem.stamp[0]
        if entry is not None and entry.size != size:
            # Refused unread: reading (or explaining) a file of another size
            # could mean reading any amount of data.
            _refuse(ctx, mem.name, size_problems(mem.name, entry.size, size, None))
            continue
        start = len(jobs)
        parts = covering_parts(entry, size, m.hashing) if m is not None else None
        for a, b, alg, part_want in parts or [(0, size, "sha256", expected)]:
            jobs.append(RangeJob(mem.fd, a, b, alg))
            want.append(part_want)
        plans.append((mem, entry, expected, start, len(jobs)))
    got = _hash_members(jobs, [(a, b) for *_, a, b in plans])
    for mem, entry, expected, a, b in plans:
        _judge_member(ctx, mem, entry, expected, want[a:b], got[a:b])


def _hash_members(jobs: list[RangeJob], spans: list[tuple[int, int]]) -> list[str | bool | None]:
    """Every job's digest in one batch; when a file shrank while read, None for its jobs."""
    try:
        return list(hash_ranges(jobs))
    except ModelsignError:
        # A file shrank while it was read: hash file by file to tell which.
        got: list[str | bool | None] = []
        for a, b in spans:
            try:
                got += hash_ranges(jobs[a:b])
            except ModelsignError:
                got += [None] * (b - a)
        return got


def _judge_member(
    ctx: Context,
    mem: _Member,
    entry: FileEntry | None,
    expected: str,
    want: list[str | bool],
    got: list[str | bool | None],
) -> None:
    st = os.fstat(mem.fd)
    if None in got or (st.st_size, st.st_mtime_ns, st.st_ctime_ns) != mem.stamp:
        changed = Problem(
            code=Code.FILE_CHANGED, message="changed during verification", file=mem.name
        )
        ctx.fail(f"{mem.name} changed while it was being verified", [changed], "FILE_CHANGED")
    elif got != want:
        _refuse(ctx, mem.name, _explain(ctx, mem, entry, expected))
    else:
        ctx.report.files.append(mem.name)
        if entry is not None and entry.weights is not None:
            ctx.report.tensors += [t.name for t in entry.weights.tensors]
        ctx.report.bytes_verified += mem.stamp[0]


def _refuse(ctx: Context, name: str, problems: list[Problem]) -> None:
    """Fail with the most specific problem's code, naming the changed tensors."""
    specific = [p for p in problems if p.code != "FILE_MODIFIED"]
    tensors = [p.tensor for p in specific if p.tensor is not None]
    message = f"{name} is not the signed file"
    if tensors:
        more = f" (+{len(tensors) - 5} more)" if len(tensors) > 5 else ""
        what = "tensor" if len(tensors) == 1 else "tensors"
        message += f": {what} {', '.join(tensors[:5])}{more} changed"
    ctx.fail(message, problems, (specific or problems)[0].code)


def _explain(ctx: Context, mem: _Member, entry: FileEntry | None, expected: str) -> list[Problem]:
    """Say what changed, tensor by tensor, reading again through the same descriptor.

    Only on failure. The file is parsed afresh (its header may have changed, so
    the signed offsets may no longer apply) and compared by tensor name, as
    ``modelsign verify`` does.
    """
    m = ctx.manifest
    size = os.fstat(mem.fd).st_size
    first = Problem(
        code=Code.FILE_MODIFIED, message="content changed", file=mem.name, expected=expected
    )
    try:
        layout, reader = parse_weights("gguf", mem.fd, size, mem.name)
    except ModelsignError as exc:
        note = f"content changed and no longer parses ({exc.code}: {exc.message})"
        return [first.model_copy(update={"message": note, "actual": _sha256(mem.fd, size)})]
    header_alg = m.hashing.header if m is not None else "sha256"
    tensor_alg = m.hashing.tensor if m is not None else None
    jobs = [
        RangeJob(mem.fd, 0, size, "sha256"),
        RangeJob(mem.fd, 0, layout.header_size, header_alg),
    ]
    if tensor_alg is not None:
        jobs += [RangeJob(mem.fd, t.start, t.end, tensor_alg) for t in layout.tensors]
    jobs += [RangeJob(mem.fd, a, b, None) for a, b in layout.padding]
    try:
        got = hash_ranges(jobs)
    except ModelsignError as exc:
        return [first.model_copy(update={"message": f"content changed ({exc.message})"})]
    n = len(layout.tensors) if tensor_alg is not None else 0
    problems = [first.model_copy(update={"actual": str(got[0])})]
    if entry is not None and entry.weights is not None:
        kv = None
        if layout.kv_range is not None:
            kv = digest_bytes(header_alg, reader.buffered[layout.kv_range[0] : layout.kv_range[1]])
        digests = FileDigests(
            file=ctx.files[mem.name],
            format="gguf",
            sha256=str(got[0]),
            layout=layout,
            header_digest=str(got[1]),
            kv_digest=kv,
            tensor_digests=[str(g) for g in got[2 : 2 + n]] if tensor_alg is not None else None,
        )
        problems += diff_weights(mem.name, entry.weights, weights_info(digests))
    for (a, b), zero in zip(layout.padding, got[2 + n :], strict=True):
        if zero is not True:
            problems.append(
                Problem(
                    code=Code.GGUF_NONZERO_PADDING,
                    message=f"padding bytes [{a}, {b}) are not all zero",
                    file=mem.name,
                )
            )
    return problems


def _sha256(fd: int, size: int) -> str | None:
    try:
        return str(hash_ranges([RangeJob(fd, 0, size, "sha256")])[0])
    except ModelsignError:
        return None
