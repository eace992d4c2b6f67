"""Hand-written pickle opcodes and containers (ZIP archives, torch checkpoints) for the
pickle corpus (``pickle_corpus.py``) and the pickle and ZIP reader tests.

Nothing here unpickles anything: malicious streams are only ever written to disk.
"""

from __future__ import annotations

import io
import pickle
import pickletools
import struct
import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path

TORCH_MAGIC = 0x1950A86A20F9469CFC6C
TORCH_PROTOCOL_VERSION = 1001
PROTO2 = b"\x80\x02"
PROTO4 = b"\x80\x04"


def su(s: str) -> bytes:
    """SHORT_BINUNICODE."""
    raw = s.encode()
    return b"\x8c" + bytes([len(raw)]) + raw


def bu(s: str) -> bytes:
    """BINUNICODE (4-byte length)."""
    raw = s.encode()
    return b"X" + struct.pack("<I", len(raw)) + raw


def bu8(s: str) -> bytes:
    """BINUNICODE8 (8-byte length)."""
    raw = s.encode()
    return b"\x8d" + struct.pack("<Q", len(raw)) + raw


def st(s: str) -> bytes:
    """Protocol 0 STRING."""
    return b"S" + repr(s).encode() + b"\n"


def gl(module: str, name: str) -> bytes:
    """Protocol 0 GLOBAL."""
    return f"c{module}\n{name}\n".encode()


def sg(module: str, name: str) -> bytes:
    """STACK_GLOBAL with both strings pushed right before it."""
    return su(module) + su(name) + b"\x93"


def call0(module: str, name: str, *args: str) -> bytes:
    """``module.name(*args)`` in protocol 0: GLOBAL, MARK, STRINGs, TUPLE, REDUCE."""
    return gl(module, name) + b"(" + b"".join(st(a) for a in args) + b"tR"


def call4(module: str, name: str, *args: str) -> bytes:
    """``module.name(*args)`` with STACK_GLOBAL."""
    return sg(module, name) + b"(" + b"".join(su(a) for a in args) + b"tR"


def p0(body: bytes) -> bytes:
    return body + b"."


def p2(body: bytes) -> bytes:
    return PROTO2 + body + b"."


def p4(body: bytes) -> bytes:
    return PROTO4 + body + b"."


class Reduce:
    """An object that pickles as ``func(*args)`` (what a real attacker's pickler writes)."""

    def __init__(self, func: Callable[..., object], *args: object) -> None:
        self.func, self.args = func, args

    def __reduce__(self) -> tuple[Callable[..., object], tuple[object, ...]]:
        return self.func, self.args


def benign_data_pkl(*, legacy: bool = False) -> bytes:
    """A torch state-dict pickle as torch writes it: ``{"weight": <2 floats in storage 0>}``
    (``data.pkl`` of a ZIP checkpoint, or with ``legacy`` the object pickle of a legacy file)."""
    storage = b"(" + bu("storage") + gl("torch", "FloatStorage") + bu("0") + bu("cpu") + b"K\x02"
    storage += (b"N" if legacy else b"") + b"tQ"  # legacy ids carry view metadata; BINPERSID
    ordered = gl("collections", "OrderedDict") + b")R"
    rebuild = gl("torch._utils", "_rebuild_tensor_v2") + b"(" + storage
    rebuild += b"K\x00K\x02\x85K\x01\x85\x89" + ordered + b"tR"
    return PROTO2 + b"}" + bu("weight") + rebuild + b"s."


def write_zip(path: Path, members: Mapping[str, bytes], *, deflate: bool = False) -> None:
    path.write_bytes(zip_bytes(members, deflate=deflate))


def torch_zip_members(
    data_pkl: bytes, *, prefix: str = "archive", extra: Mapping[str, bytes] | None = None
) -> dict[str, bytes]:
    """The members of a torch ZIP checkpoint (torch 2 layout) around ``data_pkl``."""
    members = {
        f"{prefix}/data.pkl": data_pkl,
        f"{prefix}/.format_version": b"1",
        f"{prefix}/byteorder": b"little",
        f"{prefix}/data/0": struct.pack("<2f", 0.0, 1.0),
        f"{prefix}/version": b"3\n",
        f"{prefix}/.data/serialization_id": b"1234567890123456789012345678901234567890",
    }
    members.update(extra or {})
    return members


def zip_bytes(members: Mapping[str, bytes], *, deflate: bool = False) -> bytes:
    """A ZIP archive of ``members`` in order, stored (or all deflated)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED if deflate else zipfile.ZIP_STORED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def legacy_torch(
    *,
    magic: bytes | None = None,
    sys_info: bytes | None = None,
    obj: bytes | None = None,
    keys: bytes | None = None,
) -> bytes:
    """A legacy (non-ZIP) torch file: five pickles, then one storage's raw bytes."""
    info = {"protocol_version": 1001, "little_endian": True, "type_sizes": {"short": 2}}
    return (
        (magic or pickle.dumps(TORCH_MAGIC, protocol=2))
        + pickle.dumps(TORCH_PROTOCOL_VERSION, protocol=2)
        + (sys_info or pickle.dumps(info, protocol=2))
        + (obj or benign_data_pkl(legacy=True))
        + (keys or pickle.dumps(["0"], protocol=2))
        + struct.pack("<q", 2)
        + struct.pack("<2f", 0.0, 1.0)
    )


def inject(stream: bytes, payload: bytes) -> bytes:
    """``stream`` (a protocol 2+ pickle) with ``payload`` run and popped right after PROTO."""
    assert stream[:1] == b"\x80", "a protocol 2+ pickle"
    return stream[:2] + payload + b"0" + stream[2:]


def split_pickles(data: bytes, count: int) -> tuple[list[bytes], bytes]:
    """The first ``count`` pickles of ``data`` and the bytes after them."""
    stream = io.BytesIO(data)
    parts: list[bytes] = []
    for _ in range(count):
        start = stream.tell()
        for _op in pickletools.genops(stream):
            pass
        parts.append(data[start : stream.tell()])
    return parts, data[stream.tell() :]
