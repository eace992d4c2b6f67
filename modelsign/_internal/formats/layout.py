"""What a strict format reader hands to the hashing pipeline.

A reader consumes only the header of a file through a :class:`HeaderReader`
(which keeps every byte it read, so the pipeline can feed them to the file
digest instead of reading them again) and returns a :class:`WeightLayout`
describing how every remaining byte of the file is used: tensor data or
padding that must be zero.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Literal

from ...codes import Code
from ...errors import FormatError
from ..findings import Finding

WeightFormat = Literal["safetensors", "gguf", "pytorch", "onnx", "numpy", "keras"]
MetadataValue = str | int | float | bool

_READ_BLOCK = 1 << 20


@dataclass(frozen=True)
class TensorSpan:
    """One tensor's data bytes: ``[start, end)`` as absolute file offsets."""

    name: str
    dtype: str  # safetensors dtype name, or GGML type name for GGUF
    shape: tuple[int, ...]  # as stored by the format (GGUF: innermost dimension first)
    start: int
    end: int
    n_elements: int
    storage: str | None = None  # the storage (archive member) it lies in, where there are storages
    digestible: bool = True  # False: not a contiguous range of known dtype (storage digest only)
    #: The tensor's own size, ``n_elements × itemsize``, where ``[start, end)`` is not its
    #: bytes: a deflated member's compressed bytes, a strided view's extent. None: it is.
    data_size: int | None = None

    @property
    def nbytes(self) -> int:
        """The length of the tensor's range in the file."""
        return self.end - self.start

    @property
    def logical_nbytes(self) -> int:
        """The bytes of the tensor's values (its range's length unless ``data_size`` says)."""
        return self.nbytes if self.data_size is None else self.data_size


@dataclass(frozen=True)
class WeightLayout:
    """A strictly parsed weight file.

    ``[0, header_size)`` is the header (for GGUF including the zero padding up to
    the data section); ``tensors`` (sorted by ``start``) and ``padding`` ranges
    (which must contain zero bytes only) cover the rest of the file exactly, up
    to ``file_size``.

    An archive format (a torch checkpoint) has ``storages`` instead: they hold
    the data, tensors are ranges within them (views may overlap), and with
    ``scattered`` every byte outside them is structure, digested in file order
    as the header. ``crc_ranges`` are (member, start, end, CRC-32) to check.
    """

    format: WeightFormat
    file_size: int
    header_size: int
    tensors: tuple[TensorSpan, ...]
    padding: tuple[tuple[int, int], ...] = ()
    metadata: dict[str, MetadataValue] = field(default_factory=dict)
    findings: tuple[Finding, ...] = ()
    # GGUF only
    version: int | None = None
    alignment: int | None = None
    kv_range: tuple[int, int] | None = None  # absolute [start, end) of the KV section
    chat_template: str | None = None
    # archives
    storages: tuple[TensorSpan, ...] = ()
    scattered: bool = False
    crc_ranges: tuple[tuple[str, int, int, int], ...] = ()


class HeaderReader:
    """Sequential, bounded reads from an open file that remember every byte.

    Reads go to disk in blocks; ``consumed`` is how far a parser has read, and
    ``buffered`` holds all bytes read from disk so far (possibly beyond
    ``consumed``), so that nothing is read twice.
    """

    def __init__(self, fd: int, size: int, path: str, *, limit: int) -> None:
        self._fd = fd
        self.size = size
        self.path = path
        self._limit = limit
        self._buf = bytearray()
        self.consumed = 0

    @property
    def buffered(self) -> bytes:
        return bytes(self._buf)

    def _fill(self, upto: int) -> None:
        while len(self._buf) < upto:
            want = max(_READ_BLOCK, upto - len(self._buf))
            want = min(want, self.size - len(self._buf))
            if want <= 0:
                break
            chunk = os.pread(self._fd, want, len(self._buf))
            if not chunk:
                break
            self._buf += chunk

    def read(self, n: int, what: str) -> bytes:
        """Return the next ``n`` bytes or raise ``TRUNCATED`` / ``HEADER_TOO_LARGE``."""
        if n < 0:
            raise FormatError(
                f"negative length {n} for {what}", code=Code.FORMAT_ERROR, path=self.path
            )
        end = self.consumed + n
        if end > self._limit:
            raise FormatError(
                f"header exceeds the {self._limit}-byte limit while reading {what} "
                f"(needs {end} bytes)",
                code=Code.HEADER_TOO_LARGE,
                path=self.path,
            )
        if end > self.size:
            raise FormatError(
                f"file is truncated: {what} needs bytes [{self.consumed}, {end}) "
                f"but the file has {self.size} bytes",
                code=Code.TRUNCATED,
                path=self.path,
            )
        self._fill(end)
        if len(self._buf) < end:
            raise FormatError(
                f"file shrank while reading {what}", code=Code.TRUNCATED, path=self.path
            )
        out = bytes(self._buf[self.consumed : end])
        self.consumed = end
        return out


class BytesHeaderReader(HeaderReader):
    """A :class:`HeaderReader` over bytes already in memory (a loader's verified buffer)."""

    def __init__(self, data: bytes | memoryview, path: str, *, limit: int) -> None:
        super().__init__(-1, len(data), path, limit=limit)
        self._data = data

    def _fill(self, upto: int) -> None:
        have = len(self._buf)
        if upto > have:
            self._buf += bytes(self._data[have : min(upto, self.size)])
