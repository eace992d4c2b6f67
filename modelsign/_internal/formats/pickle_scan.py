"""A static pickle analyser: every global a pickle would import, without unpickling it.

The opcode stream is decoded with :func:`pickletools.genops` over input bounded
first in size; a symbolic stack and memo follow the strings a ``STACK_GLOBAL``
takes, whether pushed directly or fetched from the memo. An operand that is not a
known string (computed at load time) is the global ``<unknown>``, and an
``EXT1/2/4`` extension code (resolved through a registry modelsign never
consults) is ``<extension>.N``: both dangerous. Each global is classified by
:mod:`.pickle_allow`; nothing is imported or executed.
"""

from __future__ import annotations

import io
import os
import pickletools
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import IO, Final, cast

from ...codes import Code
from ...errors import FormatError
from ...issues import Issue
from .pickle import inspect_zip_for_pickle
from .pickle_allow import Classification, classify

MAX_PICKLE_BYTES: Final = 256 << 20
"""Largest pickle stream (all pickles of a file, or one ZIP member) analysed."""
MAX_OPCODES: Final = 50_000_000
MAX_STACK: Final = 1_000_000
"""Deepest symbolic stack (items and marks) and largest memo."""

_TORCH_LEGACY_MAGIC: Final = 0x1950A86A20F9469CFC6C
_TORCH_LEGACY_PICKLES: Final = 5  # magic, protocol, sys info, the object, storage keys
_STRING_OPS: Final = frozenset(
    [
        "UNICODE",
        "SHORT_BINUNICODE",
        "BINUNICODE",
        "BINUNICODE8",
        "STRING",
        "BINSTRING",
        "SHORT_BINSTRING",
    ]
)
_MEMO_PUT: Final = frozenset({"PUT", "BINPUT", "LONG_BINPUT"})
_MEMO_GET: Final = frozenset({"GET", "BINGET", "LONG_BINGET"})
_ORDER: Final[dict[Classification, int]] = {"safe": 0, "unknown": 1, "dangerous": 2}
_ZIP_LOCAL: Final = b"PK\x03\x04"  # what torch.load takes for a ZIP checkpoint


@dataclass(frozen=True)
class PickleGlobal:
    """One global a pickle imports: ``module.name``, its opcode and byte offset."""

    module: str
    name: str
    opcode: str
    offset: int
    classification: Classification

    @property
    def full_name(self) -> str:
        return f"{self.module}.{self.name}"


@dataclass
class PickleScan:
    """What the analyser found in one file or member: its globals and issues."""

    where: str
    globals: list[PickleGlobal] = field(default_factory=list)
    issues: list[Issue] = field(default_factory=list)
    pickles: int = 0
    torchscript: bool = False

    @property
    def verdict(self) -> Classification:
        """``dangerous`` if anything is, else ``unknown`` if anything is, else ``safe``."""
        worst: Classification = "dangerous" if self.torchscript else "safe"
        for g in self.globals:
            if _ORDER[g.classification] > _ORDER[worst]:
                worst = g.classification
        return worst

    def merge(self, other: PickleScan) -> None:
        self.globals.extend(other.globals)
        self.issues.extend(other.issues)
        self.pickles += other.pickles


class _Str(str):
    """A string constant on the symbolic stack."""


class _Mark:
    """A MARK on the symbolic stack."""


_MARK: Final = _Mark()
_ANY: Final = object()  # any other value


def _error(msg: str, code: Code, where: str) -> FormatError:
    return FormatError(f"{where}: {msg}", code=code, path=where)


class _ViewReader:
    """A file over a memoryview (no copy of the window), keeping the last two lines read."""

    def __init__(self, view: memoryview) -> None:
        self.view, self.at = view, 0
        self.lines: list[bytes] = []

    def read(self, n: int = -1) -> bytes:
        end = len(self.view) if n < 0 else min(len(self.view), self.at + n)
        data = bytes(self.view[self.at : end])
        self.at = end
        return data

    def readline(self) -> bytes:
        end = self.at
        while end < len(self.view):
            chunk = bytes(self.view[end : end + 4096])
            nl = chunk.find(b"\n")
            if nl >= 0:
                end += nl + 1
                break
            end += len(chunk)
        line = self.read(end - self.at)
        self.lines = [*self.lines[-1:], line]
        return line

    def tell(self) -> int:
        return self.at


class _Walker:
    """One pickle's symbolic execution: the stack and memo, as far as globals need them."""

    def __init__(self, reader: _ViewReader, where: str, base: int, scan: PickleScan) -> None:
        self.reader, self.where, self.base, self.scan = reader, where, base, scan
        self.stack: list[object] = []
        self.memo: dict[int, object] = {}

    def pop(self, pos: int) -> object:
        if not self.stack or self.stack[-1] is _MARK:
            raise _error(f"stack underflow at byte {pos}", Code.PICKLE_MALFORMED, self.where)
        return self.stack.pop()

    def pop_mark(self, pos: int) -> None:
        while self.stack:
            if self.stack.pop() is _MARK:
                return
        raise _error(f"no MARK for opcode at byte {pos}", Code.PICKLE_MALFORMED, self.where)

    def push(self, item: object) -> None:
        if len(self.stack) >= MAX_STACK:
            raise _error(f"stack deeper than {MAX_STACK}", Code.PICKLE_TOO_DEEP, self.where)
        self.stack.append(item)

    def add_global(self, module: str, name: str, opcode: str, pos: int) -> None:
        kind = "dangerous" if module.startswith("<") else classify(module, name)
        g = PickleGlobal(module, name, opcode, self.base + pos, kind)
        self.scan.globals.append(g)
        if kind != "safe":
            code = (
                Code.PICKLE_DANGEROUS_GLOBAL if kind == "dangerous" else Code.PICKLE_UNKNOWN_GLOBAL
            )
            self.scan.issues.append(
                Issue(
                    code=code,
                    severity="warning",
                    message=f"{self.where}: pickle imports {kind} global {g.full_name} "
                    f"({opcode} at byte {g.offset})",
                    file=self.scan.where,
                    actual=g.full_name,
                )
            )
        self.push(_ANY)

    def step(self, op: pickletools.OpcodeInfo, arg: object, pos: int) -> None:
        name = op.name
        if name in _STRING_OPS:
            self.push(_Str(arg if isinstance(arg, str) else repr(arg)))
        elif name in ("GLOBAL", "INST"):
            module, gname = self.line_pair(pos)
            if name == "INST":
                self.pop_mark(pos)
            self.add_global(module, gname, name, pos)
        elif name == "STACK_GLOBAL":
            top, below = self.pop(pos), self.pop(pos)
            if isinstance(below, _Str) and isinstance(top, _Str):
                self.add_global(str(below), str(top), name, pos)
            else:
                self.add_global("<unknown>", "<computed>", name, pos)
        elif name in ("EXT1", "EXT2", "EXT4"):
            self.add_global("<extension>", str(arg), name, pos)
        elif name in _MEMO_PUT or name == "MEMOIZE":
            self.put(len(self.memo) if name == "MEMOIZE" else arg, pos)
        elif name in _MEMO_GET:
            self.push(self.memo.get(arg, _ANY) if isinstance(arg, int) else _ANY)
        elif name == "DUP":
            self.push(self.stack[-1] if self.stack else _ANY)
        else:
            self.generic(op, pos)

    def put(self, key: object, pos: int) -> None:
        if not self.stack or self.stack[-1] is _MARK or not isinstance(key, int):
            raise _error(
                f"memo store with no value at byte {pos}", Code.PICKLE_MALFORMED, self.where
            )
        if len(self.memo) >= MAX_STACK and key not in self.memo:
            raise _error(f"memo larger than {MAX_STACK}", Code.PICKLE_TOO_DEEP, self.where)
        self.memo[key] = self.stack[-1]

    def generic(self, op: pickletools.OpcodeInfo, pos: int) -> None:
        """Pop what the opcode consumes, push one unknown value per result."""
        before = op.stack_before
        if pickletools.markobject in before:
            self.pop_mark(pos)
            for _ in range(before.index(pickletools.markobject)):
                self.pop(pos)
        else:
            for _ in before:
                self.pop(pos)
        for item in op.stack_after:
            self.push(_MARK if item is pickletools.markobject else _ANY)

    def line_pair(self, pos: int) -> tuple[str, str]:
        """The ``module\\nname\\n`` argument of GLOBAL or INST: the two lines just read."""
        try:
            module, name = self.reader.lines
            return module[:-1].decode("utf-8"), name[:-1].decode("utf-8")
        except (UnicodeDecodeError, ValueError):
            raise _error(
                f"bad global name at byte {pos}", Code.PICKLE_MALFORMED, self.where
            ) from None


def scan_pickle(data: bytes | memoryview, *, where: str) -> PickleScan:
    """Analyse exactly one pickle filling ``data`` (bytes after its STOP are an error)."""
    scan = PickleScan(where)
    end = _walk_one(memoryview(_bounded(data, where)), 0, where, scan)
    if end != len(data):
        raise _error(
            f"{len(data) - end} bytes after the pickle's STOP", Code.PICKLE_MALFORMED, where
        )
    return scan


def scan_pickles(data: bytes | memoryview, *, where: str, member: str | None = None) -> PickleScan:
    """Analyse every STOP-terminated pickle in ``data`` until its end.

    A legacy (non-ZIP) torch file is recognised by its first pickle, the torch
    magic number: its five pickles are analysed and the storage bytes after them
    are not pickles. ``member`` names the ZIP member ``data`` came from: issues
    name the file ``where``, their messages ``where:member``.
    """
    view = memoryview(data)
    scan = PickleScan(where)
    where = f"{where}:{member}" if member else where
    at = 0
    while at < len(view):
        at += _walk_window(view, at, where, scan)
        if scan.pickles == 1 and _is_torch_magic(bytes(view[:at])):
            for _ in range(_TORCH_LEGACY_PICKLES - 1):
                at += _walk_window(view, at, where, scan)
            break
    return scan


def _walk_window(view: memoryview, at: int, where: str, scan: PickleScan) -> int:
    """Walk the pickle at ``at``, which must end within :data:`MAX_PICKLE_BYTES`."""
    window = view[at : at + MAX_PICKLE_BYTES]
    return _walk_one(window, at, where, scan, cut=at + len(window) < len(view))


def _is_torch_magic(first: bytes) -> bool:
    ops = [(op.name, arg) for op, arg, _ in pickletools.genops(first)]
    return any(arg == _TORCH_LEGACY_MAGIC for _, arg in ops) and len(ops) <= 3


def _bounded(data: bytes | memoryview, where: str) -> bytes | memoryview:
    if len(data) > MAX_PICKLE_BYTES:
        raise _error(
            f"pickle stream over the {MAX_PICKLE_BYTES}-byte limit", Code.PICKLE_TOO_LARGE, where
        )
    return data


def _walk_one(
    data: memoryview, base: int, where: str, scan: PickleScan, *, cut: bool = False
) -> int:
    """Walk the pickle at the start of ``data``; return how many bytes it took."""
    stream = _ViewReader(data)
    walker = _Walker(stream, where, base, scan)
    count = 0
    try:
        for op, arg, pos in pickletools.genops(cast("IO[bytes]", stream)):  # read, readline, tell
            count += 1
            if count > MAX_OPCODES:
                raise _error(f"more than {MAX_OPCODES} opcodes", Code.PICKLE_TOO_LARGE, where)
            walker.step(op, arg, pos or 0)  # genops gives a position: the reader tells
    except FormatError:
        raise
    except (ValueError, OverflowError, MemoryError) as exc:
        ran_out = stream.tell() >= len(data)
        if ran_out and cut:
            msg = f"a pickle at byte {base} runs past the {MAX_PICKLE_BYTES}-byte limit"
            raise _error(msg, Code.PICKLE_TOO_LARGE, where) from None
        code = Code.PICKLE_TRUNCATED if ran_out else Code.PICKLE_MALFORMED
        word = "truncated" if code is Code.PICKLE_TRUNCATED else "malformed"
        raise _error(
            f"{word} pickle near byte {base + stream.tell()}: {exc}", code, where
        ) from None
    scan.pickles += 1
    return stream.tell()


MAX_MEMBER_BYTES: Final = MAX_PICKLE_BYTES


def scan_torch_zip(path: str | os.PathLike[str], *, where: str | None = None) -> PickleScan:
    """Analyse every ``*.pkl`` member of a ZIP checkpoint, whatever the file's name.

    The central directory is checked strictly first (:func:`inspect_zip_for_pickle`);
    members are then read with :mod:`zipfile`, stored or deflated, each bounded to
    :data:`MAX_MEMBER_BYTES`. A TorchScript archive (a ``code/`` folder or a
    ``constants.pkl``) holds code: its verdict is dangerous.
    """
    where = where or os.fspath(path)
    with open(path, "rb") as f:
        pkl_names = inspect_zip_for_pickle(f.fileno(), os.fstat(f.fileno()).st_size)
        return _scan_zip(f, where, lambda zf: [zf.getinfo(n) for n in pkl_names])


#: What reading a ZIP with :mod:`zipfile` raises for an archive it cannot read.
_ZIP_ERRORS: Final = (
    zipfile.BadZipFile,
    zipfile.LargeZipFile,
    OSError,
    EOFError,
    ValueError,
    NotImplementedError,  # an unsupported compression method
)


def _scan_zip(
    f: IO[bytes], where: str, members: Callable[[zipfile.ZipFile], list[zipfile.ZipInfo]]
) -> PickleScan:
    """Analyse the ``members`` of the ZIP in ``f``, and say whether it is TorchScript."""
    scan = PickleScan(where)
    try:
        with zipfile.ZipFile(f) as zf:
            _torchscript(zf.namelist(), scan)
            for info in members(zf):
                data = _read_member(zf, info, where)
                scan.merge(scan_pickles(data, where=where, member=info.filename))
    except _ZIP_ERRORS as exc:
        raise _error(f"ZIP member cannot be read: {exc}", Code.PICKLE_BAD_ZIP, where) from None
    return scan


def scan_checkpoint_bytes(data: bytes | memoryview, *, where: str) -> PickleScan:
    """Analyse a checkpoint held in memory: the exact bytes a loader is handed.

    Dispatched as ``torch.load`` dispatches: bytes starting with a ZIP local
    header are a ZIP checkpoint, whose every ``*.pkl`` entry is analysed
    (each entry of the central directory, so a name listed twice is walked
    twice); anything else is a raw pickle or a legacy torch file
    (:func:`scan_pickles`). A TorchScript archive's verdict is dangerous.
    """
    view = memoryview(data).cast("B")
    if bytes(view[:4]) == _ZIP_LOCAL:
        stream = io.BytesIO(data if isinstance(data, bytes) else view)  # shares bytes, copies views
        return _scan_zip(stream, where, _pkl_entries)
    return scan_pickles(view, where=where)


def _pkl_entries(zf: zipfile.ZipFile) -> list[zipfile.ZipInfo]:
    return [info for info in zf.infolist() if info.filename.lower().endswith(".pkl")]


def _torchscript(names: list[str], scan: PickleScan) -> None:
    hits = [n for n in names if "/code/" in f"/{n}" or n.endswith("constants.pkl")]
    if hits:
        scan.torchscript = True
        scan.issues.append(
            Issue(
                code=Code.PICKLE_TORCHSCRIPT,
                severity="warning",
                message=f"{scan.where}: a TorchScript archive (holds code: {hits[0]})",
                file=scan.where,
                actual=hits[0],
            )
        )


def _read_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, where: str) -> bytes:
    name = info.filename
    if info.file_size > MAX_MEMBER_BYTES:
        raise _error(
            f"member {name} is over {MAX_MEMBER_BYTES} bytes", Code.PICKLE_TOO_LARGE, where
        )
    with zf.open(info) as member:
        data = member.read(MAX_MEMBER_BYTES + 1)
    if len(data) > MAX_MEMBER_BYTES:
        raise _error(
            f"member {name} is over {MAX_MEMBER_BYTES} bytes", Code.PICKLE_TOO_LARGE, where
        )
    return data


__all__ = [
    "MAX_PICKLE_BYTES",
    "PickleGlobal",
    "PickleScan",
    "scan_checkpoint_bytes",
    "scan_pickle",
    "scan_pickles",
    "scan_torch_zip",
]
