"""Reading a model on disk for the check core: the signature, the files, their digests.

What the bytes mean is the core's to say (``_internal.check``); this module
only measures what its plan asks for. Weight files whose signed manifest
covers every byte are read by their header and tensor digests in parallel,
and read once more, whole, only when those disagree (to say what changed);
shard signatures by their shards; everything else by its file digest. A file
of another size than signed is not read (its header alone is parsed, to say
what changed). Shared with the loaders: reading the signature, walking the
model as the signer did, the header of a file of another size, and the
formats of files the signature leaves out.
"""

from __future__ import annotations

import hashlib
import math
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import cast

from ._internal.check.compare import Problem
from ._internal.check.facts import Listing, Observed, Seen
from ._internal.check.plan import Plan, make_plan
from ._internal.discover import ModelFile, discover
from ._internal.formats import FileFormat, WeightFormat, WeightLayout, file_format, parse_weights
from ._internal.formats.layout import TensorSpan
from ._internal.formats.onnx_layout import EXTERNAL_OF, external_layout
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
from ._internal.hashing.algorithms import range_hasher
from ._internal.hashing.reading import open_checked
from ._internal.manifest import WeightsInfo, weights_info
from ._internal.signature.attestation import Signed, load_signature
from ._internal.signature.bundle import Envelope, read_signature_file
from ._internal.signature.location import SignatureLocation
from ._internal.signature.own import own_files
from ._internal.signature.statement import SignedStatement
from ._internal.signature.verifiers import SignerInfo
from .codes import Code
from .errors import DiscoveryError, InputError, ModelsignError, VerificationError
from .policy import formats_beside

#: Codes of a file refused at open: nothing of it was read, and nothing more is.
_REFUSED = ("FILE_SIZE_MISMATCH", "SPECIAL_FILE", "FILE_CHANGED", "UNREADABLE")
_CHANGED = "file changed while being verified"


def read_signature(
    loc: SignatureLocation,
    verify: Callable[[Envelope], SignerInfo],
    *,
    missing_ok: bool,
    problem_file: str | None = None,
) -> tuple[Signed | None, list[Problem]]:
    """The signature at ``loc`` verified and bound to its attestation, or why it is not.

    A missing signature is an :class:`InputError` unless ``missing_ok``;
    ``problem_file`` names the file a signature problem is about.
    """
    try:
        data = read_signature_file(loc.signature)
    except InputError as exc:
        if not missing_ok or exc.code != "SIGNATURE_NOT_FOUND":
            raise
        return None, [Problem(code=exc.code, message=exc.message, file=exc.path)]
    try:
        return load_signature(loc.signature, verify=verify, claims=loc.claims, data=data), []
    except VerificationError as exc:
        problem = Problem(
            code=exc.code,
            message=exc.message,
            file=problem_file,
            expected=exc.expected,
            actual=exc.actual,
        )
        return None, [problem]


def model_files(
    path: str, loc: SignatureLocation, st: SignedStatement | None
) -> tuple[bool, dict[str, ModelFile]]:
    """The files of the model at ``path`` as the signer recorded the walk, by name, and
    whether it is one file; discovery's errors are raised.

    The signature's ignore_paths and symlink rule apply; modelsign's own files the
    signature does not list are left out. Without a signature: every file but those.
    """
    exclude = loc.names_inside(loc.signature, loc.claims)
    if st is not None:
        # Only the concrete signed paths: a recorded pattern is never expanded again.
        exclude += st.ignore_paths
    links = st.allow_symlinks if st is not None else True
    tree = discover(path, exclude=exclude, allow_symlinks=links, ignore_git=st is None)
    if tree.single_file:
        return True, {f.path: f for f in tree.files}
    own = set(own_files(tree.files, signed=st.files if st is not None else ()))
    return False, {f.path: f for f in tree.files if f.path not in own}


def list_model(
    path: str, loc: SignatureLocation, st: SignedStatement
) -> tuple[Listing, dict[str, ModelFile]]:
    """The files of the model as the signer recorded the walk (its ignore_paths, its links)."""
    try:
        single, files = model_files(path, loc, st)
    except DiscoveryError as exc:
        if exc.code == "EMPTY_MODEL":
            return Listing({}), {}
        if exc.code == "TOO_DEEP":
            raise  # no signer could have signed it: the model cannot be checked at all
        # What the signer recorded (no symlinks, no special files) is not met.
        return Listing({}, problem=Problem(code=exc.code, message=exc.message, file=exc.path)), {}
    return Listing({n: f.size for n, f in files.items()}, single), files


def observe(
    path: str,
    loc: SignatureLocation,
    st: SignedStatement,
    *,
    ignore: Sequence[str] = (),
    jobs: int | None = None,
    progress: Callable[[int, int], None] | None = None,
    known: Mapping[tuple[int, int], str] | None = None,
) -> Observed:
    """Read what the plan of ``st`` over the model at ``path`` asks for.

    ``known``: SHA-256 digests, by (device, inode), that the caller has just
    computed; a file whose digest is the signed one is not read again.
    """
    listing, files = list_model(path, loc, st)
    plan = make_plan(st, listing, ignore)
    if plan.refusal is not None:
        return Observed(listing)
    reader = _Reader(st, plan, files, jobs, progress, known or {})
    reader.read()
    return Observed(listing, reader.seen, reader.extra_sha256, reader.failures)


def header_seen(
    f: ModelFile,
    fmt: FileFormat | WeightFormat,
    parse: Callable[[FileFormat | WeightFormat], WeightLayout],
) -> Seen:
    """The layout of a file of another size than signed, from its header alone.

    ``parse(fmt)`` reads the header and tensor table (bounded reads, whatever
    the size); why it cannot is told instead.
    """
    try:
        d = FileDigests(f, file_format(fmt), "", parse(fmt), header_digest="")
        return Seen(weights=weights_info(d))
    except ModelsignError as why:
        return Seen(unparsable=f"{why.code}: {why.message}")


def ignored_formats(loc: SignatureLocation, known: Iterable[str]) -> dict[str, str]:
    """Files beside the model that the signature's ignore_paths left out, for the formats rule."""
    if loc.single_file is not None:
        return {}
    return formats_beside(
        loc.root, known=set(known), own=[loc.signature, loc.claims, loc.provenance]
    )


def _failed(f: ModelFile, exc: ModelsignError) -> Seen:
    return Seen(
        failure=Problem(
            code=exc.code,
            message=exc.message,
            file=f.path,
            expected=exc.expected,
            actual=exc.actual,
        )
    )


class _Reader:
    """Measures the present signed files the way the plan says, all cores at once."""

    def __init__(
        self,
        st: SignedStatement,
        plan: Plan,
        files: Mapping[str, ModelFile],
        jobs: int | None,
        progress: Callable[[int, int], None] | None,
        known: Mapping[tuple[int, int], str],
    ) -> None:
        self.st, self.plan, self.files = st, plan, files
        self.jobs = jobs
        self.known = known
        self.seen: dict[str, Seen] = {}
        self.failures: list[Problem] = []
        self.extra_sha256: dict[str, str] = {}
        self._progress = progress
        self._done = 0
        m = st.manifest
        self.tensor_hash: TensorHash | None = m.hashing.tensor if m is not None else None

    def step(self, n: int) -> None:
        self._done += n
        if self._progress is not None:
            self._progress(self._done, self.plan.total)

    def read(self) -> None:
        by: dict[str, list[ModelFile]] = {"fast": [], "whole": [], "shards": [], "other": []}
        for name in self.plan.present:
            f, method = self.files[name], self.plan.methods[name]
            if method == "size":
                self._size(f)
            elif method in ("fast", "whole") and self.known.get((f.dev, f.ino)) == (
                digest := self.plan.expected(name)
            ):
                self.seen[name] = Seen(sha256=digest)
                self.step(f.size)
            else:
                by[method].append(f)
        self._fast(by["fast"])
        self._whole(by["whole"])
        for i in range(0, len(by["shards"]), SHARD_BATCH):
            self._shards(by["shards"][i : i + SHARD_BATCH])
        for f in by["other"]:
            self._other(f)
        candidates = [self.files[n] for n in self.plan.candidates]
        if candidates:
            for d in hash_files(candidates, tensor_hash=None, jobs=self.jobs):
                self.extra_sha256[d.file.path] = d.sha256

    def _size(self, f: ModelFile) -> None:
        """Judged without reading its content; its header says what changed."""
        self.step(f.size)  # done, as far as progress goes
        entry = self.st.entry(f.path)
        w = entry.weights if entry is not None else None
        # (an ONNX external data file has no header of its own to parse)
        if self.st.method == "shards" or w is None or EXTERNAL_OF in w.metadata:
            self.seen[f.path] = Seen()
            return

        def parse(fmt: FileFormat | WeightFormat) -> WeightLayout:
            fd = open_checked(f)
            try:
                return parse_weights(fmt, fd, os.fstat(fd).st_size, f.path)[0]
            finally:
                os.close(fd)

        self.seen[f.path] = header_seen(f, w.format, parse)

    def _open_at(self, f: ModelFile, size: int) -> int | None:
        """``f`` opened if it is still its signed ``size``; else its failure, and None."""
        try:
            return open_checked(f, size)
        except DiscoveryError as exc:
            self.seen[f.path] = _failed(f, exc)
            return None

    def _fast(self, files: list[ModelFile]) -> None:
        """Weight files covered by their parts: every part of every file hashed in parallel."""
        if not files:
            return
        opened: list[tuple[ModelFile, int, os.stat_result, int, int]] = []  # jobs [a, b)
        jobs: list[RangeJob] = []
        try:
            for f in files:
                entry = self.st.entry(f.path)
                assert entry is not None  # the plan checks by parts only what a manifest covers
                fd = self._open_at(f, entry.size)
                if fd is None:
                    continue
                start = len(jobs)
                jobs += [RangeJob(fd, a, b, alg) for a, b, alg, _ in self.plan.parts[f.path]]
                opened.append((f, fd, os.fstat(fd), start, len(jobs)))
            got = hash_ranges(jobs, threads=self.jobs, progress=self.step)
            for f, fd, before, a, b in opened:
                want = tuple(w for *_, w in self.plan.parts[f.path])
                # Opened at its signed size: any change since shows in size or mtime.
                if changed_since(fd, before):
                    self.seen[f.path] = Seen(failure=_changed(f))
                elif tuple(got[a:b]) != want:
                    self._recheck(f)  # read once more to say what changed
                else:
                    self.seen[f.path] = Seen(parts=tuple(got[a:b]))
        except DiscoveryError as exc:
            self.failures.append(Problem(code=exc.code, message=exc.message, file=exc.path))
        finally:
            for _, fd, *_ in opened:
                os.close(fd)

    def _whole(self, files: list[ModelFile]) -> None:
        if not files:
            return
        sizes = {f.path: n for f in files if (n := self.st.signed_size(f.path)) is not None}
        failed: dict[str, ModelsignError] = {}
        digests = hash_files(
            files,
            tensor_hash=self.tensor_hash,
            jobs=self.jobs,
            progress=self.step,
            sizes=sizes,
            layouts={f.path: lay for f in files if (lay := self._signed_layout(f))},
            failures=failed,
        )
        for d in digests:
            self.seen[d.file.path] = self._digests(d)
        for f in files:  # no longer parses, or changed meanwhile: each with its own reason
            if f.path in failed:
                self._failure(f, failed[f.path])

    def _signed_layout(self, f: ModelFile) -> WeightLayout | None:
        """An ONNX external data file laid out as signed, so a change names its tensors.

        Such a file has no header of its own: its layout is what its model said
        when it was signed (never the model file as it is now).
        """
        entry = self.st.entry(f.path)
        w = entry.weights if entry is not None else None
        if entry is None or w is None or EXTERNAL_OF not in w.metadata:
            return None
        spans = [
            TensorSpan(
                t.name, t.dtype, tuple(t.shape), t.offset, t.offset + t.length, math.prod(t.shape)
            )
            for t in w.tensors
        ]
        return external_layout(entry.size, spans, str(w.metadata[EXTERNAL_OF]))

    def _digests(self, d: FileDigests) -> Seen:
        """A file's digest, and its layout when it is not the signed file (to say what changed)."""
        changed = d.sha256 != self.plan.expected(d.file.path) and d.layout is not None
        return Seen(sha256=d.sha256, weights=weights_info(d) if changed else None)

    def _recheck(self, f: ModelFile) -> None:
        """Hash one file on its own, to say exactly what changed (or why it no longer parses)."""
        try:
            size = self.st.signed_size(f.path)
            d = hash_file(f, tensor_hash=self.tensor_hash, size=size, layout=self._signed_layout(f))
        except ModelsignError as exc:
            self._failure(f, exc)
            return
        self.seen[f.path] = self._digests(d)

    def _failure(self, f: ModelFile, exc: ModelsignError) -> None:
        """A file whose read failed: refused, or (no longer parsing) its SHA-256 at least."""
        if exc.code in _REFUSED:
            self.seen[f.path] = _failed(f, exc)
            return
        actual = stream_digest(f, hashlib.sha256())
        self.seen[f.path] = Seen(sha256=actual, unparsable=f"{exc.code}: {exc.message}")

    def _other(self, f: ModelFile) -> None:
        """Whole-file digests other than SHA-256 (BLAKE2b, BLAKE3) made by the OMS tool."""
        (r,) = self.plan.signed[f.path]
        size = self.st.signed_size(f.path)
        try:
            alg = cast(RangeHash, r.algorithm)  # one of the OMS registry's: checked by the parser
            actual = stream_digest(f, range_hasher(alg), size=size)
        except DiscoveryError as exc:
            self.seen[f.path] = _failed(f, exc)
            return
        if actual == r.digest:
            self.step(f.size)
        self.seen[f.path] = Seen(sha256=actual)

    def _shards(self, files: list[ModelFile]) -> None:
        """Shard signatures: every shard of every file in one all-core pass.

        Sizes were compared by the plan, so nothing is read of a file with
        bytes past the signed end or a missing tail (the tiling of the ranges
        from byte 0 was checked when the statement was parsed).
        """
        if not files:
            return
        alg = cast(RangeHash, self.st.hash_type)  # one of HASH_TYPES: checked by the parser
        opened: list[tuple[ModelFile, int, os.stat_result]] = []
        try:
            for f in files:
                fd = self._open_at(f, self.plan.tiles[f.path][-1].end)
                if fd is not None:
                    opened.append((f, fd, os.fstat(fd)))
            ranges = [
                RangeJob(fd, s.start, s.end, alg)
                for f, fd, _ in opened
                for s in self.plan.tiles[f.path]
            ]
            try:
                got = iter(hash_ranges(ranges, threads=self.jobs, progress=self.step))
            except DiscoveryError as exc:  # a file shrank under us: say which, if we can
                moved: list[str | None] = [
                    f.path for f, fd, then in opened if changed_since(fd, then)
                ]
                for path in moved or [None]:  # never no verdict at all
                    self.failures.append(Problem(code=exc.code, message=exc.message, file=path))
                return
            for f, fd, then in opened:
                digests = tuple(str(next(got)) for _ in self.plan.tiles[f.path])
                if changed_since(fd, then):
                    self.seen[f.path] = Seen(failure=_changed(f))
                else:
                    self.seen[f.path] = Seen(shards=digests, weights=self._shard_layout(f, digests))
        finally:
            for _, fd, _ in opened:
                os.close(fd)

    def _shard_layout(self, f: ModelFile, digests: tuple[str, ...]) -> WeightsInfo | None:
        """For a changed file with signed tensors: its layout now, to name the tensors."""
        tiles = self.plan.tiles[f.path]
        entry = self.st.entry(f.path)
        if all(d == s.digest for s, d in zip(tiles, digests, strict=True)):
            return None
        if entry is None or entry.weights is None:
            return None
        try:
            d = hash_file(f, tensor_hash=self.tensor_hash, layout=self._signed_layout(f))
        except ModelsignError:
            return None  # no longer parses: the changed range is all there is to say
        return weights_info(d) if d.layout is not None else None


def _changed(f: ModelFile) -> Problem:
    return Problem(code=Code.FILE_CHANGED, message=_CHANGED, file=f.path)
