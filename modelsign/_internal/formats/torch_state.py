"""The tensors of a torch checkpoint's pickle, found without unpickling it.

``torch.save`` pickles each tensor as a call of a rebuild function
(``torch._utils._rebuild_tensor_v2`` and kin) whose first argument is a
persistent-load record ``('storage', <dtype>Storage, key, location, numel)``
naming the archive member ``data/<key>`` that holds the bytes. Here the
opcode stream is evaluated symbolically — containers, constants, memo, and
calls kept as inert records — and the tensors are collected with their
dotted names. Nothing is imported; a call of any other function is only a
record. The stream must have passed the analyser first (its bounds hold here).
"""

from __future__ import annotations

import math
import pickletools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

from ...codes import Code
from ...errors import FormatError

#: Legacy storage class → (safetensors-style dtype name, bytes per element).
STORAGE_DTYPES: Final[dict[str, tuple[str, int]]] = {
    "FloatStorage": ("F32", 4),
    "DoubleStorage": ("F64", 8),
    "HalfStorage": ("F16", 2),
    "BFloat16Storage": ("BF16", 2),
    "LongStorage": ("I64", 8),
    "IntStorage": ("I32", 4),
    "ShortStorage": ("I16", 2),
    "CharStorage": ("I8", 1),
    "ByteStorage": ("U8", 1),
    "BoolStorage": ("BOOL", 1),
    "ComplexFloatStorage": ("C64", 8),
    "ComplexDoubleStorage": ("C128", 16),
    "QInt8Storage": ("QI8", 1),
    "QUInt8Storage": ("QU8", 1),
    "QInt32Storage": ("QI32", 4),
    "Float8_e4m3fnStorage": ("F8_E4M3", 1),
    "Float8_e5m2Storage": ("F8_E5M2", 1),
    "UInt16Storage": ("U16", 2),
    "UInt32Storage": ("U32", 4),
    "UInt64Storage": ("U64", 8),
}

_REBUILD: Final = frozenset(
    {
        "torch._utils._rebuild_tensor_v2",
        "torch._utils._rebuild_tensor",
        "torch._utils._rebuild_qtensor",
    }
)
_WRAPPERS: Final = frozenset(
    {"torch._utils._rebuild_parameter", "torch._utils._rebuild_parameter_with_state"}
)
_DICTS: Final = frozenset({"collections.OrderedDict", "builtins.dict"})
MAX_TENSORS: Final = 1_000_000
MAX_NAME_DEPTH: Final = 32
MAX_NAME_CHARS: Final = 4096


@dataclass(frozen=True)
class TorchTensor:
    """One tensor as the pickle describes it (shape and stride in elements)."""

    name: str
    storage: str  # the key: bytes in ``<prefix>/data/<key>``
    storage_class: str  # e.g. FloatStorage
    storage_offset: int
    shape: tuple[int, ...]
    stride: tuple[int, ...]

    @property
    def n_elements(self) -> int:
        return math.prod(self.shape)

    @property
    def contiguous(self) -> bool:
        """Whether the elements fill ``[offset, offset + n)`` of the storage in C order."""
        want = 1
        for d, s in zip(reversed(self.shape), reversed(self.stride), strict=True):
            if d != 1 and s != want:
                return self.n_elements == 0
            want *= d
        return True


@dataclass
class _Global:
    name: str


@dataclass
class _Call:
    func: object
    args: object
    items: dict[object, object] = field(default_factory=dict)


@dataclass
class _Persistent:
    pid: object


class _Mark:
    pass


_MARK: Final = _Mark()


def _bad(msg: str, where: str) -> FormatError:
    return FormatError(msg, code=Code.TORCH_BAD_CHECKPOINT, path=where)


class _Machine:
    """A symbolic pickle machine: containers and constants are real, calls are records."""

    def __init__(self, where: str) -> None:
        self.where = where
        self.stack: list[object] = []
        self.memo: dict[object, object] = {}
        self.result: object = None

    def pop_mark(self) -> list[object]:
        for i in range(len(self.stack) - 1, -1, -1):
            if self.stack[i] is _MARK:
                items = self.stack[i + 1 :]
                del self.stack[i:]
                return items
        raise _bad("MARK missing in the checkpoint pickle", self.where)

    def pop(self) -> object:
        if not self.stack:
            raise _bad("stack underflow in the checkpoint pickle", self.where)
        return self.stack.pop()

    def run(self, data: bytes | memoryview) -> object:
        for op, arg, _pos in pickletools.genops(bytes(data)):
            if op.name == "STOP":
                return self.pop()
            self.step(op.name, arg)
        raise _bad("the checkpoint pickle has no STOP", self.where)

    def step(self, name: str, arg: object) -> None:
        handler = _HANDLERS.get(name)
        if handler is not None:
            handler(self, arg)
        elif name in _CONSTANTS:
            self.stack.append(arg)
        elif name in _NOOPS:
            pass
        else:  # EXT, buffers, …: an inert unknown value
            self.stack.append(_Call(_Global(name), None))


def _setitems(m: _Machine, pairs: list[object]) -> None:
    target = m.stack[-1] if m.stack else None
    items = target if isinstance(target, dict) else getattr(target, "items", None)
    if not isinstance(items, dict):
        return
    for k, v in zip(pairs[::2], pairs[1::2], strict=False):
        if isinstance(k, str | int):
            items[k] = v


def _appends(m: _Machine, values: list[object]) -> None:
    target = m.stack[-1] if m.stack else None
    if isinstance(target, list):
        target.extend(values)


def _global(m: _Machine, arg: object) -> None:
    module, _, name = str(arg).partition(" ")
    m.stack.append(_Global(f"{module}.{name}"))


def _stack_global(m: _Machine, _arg: object) -> None:
    name, module = m.pop(), m.pop()
    if not (isinstance(name, str) and isinstance(module, str)):
        # as pickle itself requires; a repr of nested objects could be huge
        raise _bad("STACK_GLOBAL of something other than two strings", m.where)
    m.stack.append(_Global(f"{module}.{name}"))


def _reduce(m: _Machine, _arg: object) -> None:
    args = m.pop()
    m.stack.append(_Call(m.pop(), args))


def _newobj_ex(m: _Machine, _arg: object) -> None:
    m.pop()
    args = m.pop()
    m.stack.append(_Call(m.pop(), args))


def _inst(m: _Machine, arg: object) -> None:
    args = tuple(m.pop_mark())
    module, _, name = str(arg).partition(" ")
    m.stack.append(_Call(_Global(f"{module}.{name}"), args))


def _obj(m: _Machine, _arg: object) -> None:
    items = m.pop_mark()
    if not items:
        raise _bad("OBJ without a class in the checkpoint pickle", m.where)
    m.stack.append(_Call(items[0], tuple(items[1:])))


def _put(m: _Machine, arg: object) -> None:
    if m.stack:
        m.memo[arg] = m.stack[-1]


def _memoize(m: _Machine, _arg: object) -> None:
    if m.stack:
        m.memo[len(m.memo)] = m.stack[-1]


def _get(m: _Machine, arg: object) -> None:
    if arg not in m.memo:
        raise _bad(f"memo key {arg!r} is not set in the checkpoint pickle", m.where)
    m.stack.append(m.memo[arg])


def _tuple_n(n: int) -> Callable[[_Machine, object], None]:
    def handler(m: _Machine, _arg: object) -> None:
        items = [m.pop() for _ in range(n)][::-1]
        m.stack.append(tuple(items))

    return handler


def _dict(m: _Machine, _arg: object) -> None:
    pairs = m.pop_mark()
    m.stack.append({})
    _setitems(m, pairs)


_HANDLERS: dict[str, Callable[[_Machine, object], object]] = {
    "MARK": lambda m, _a: m.stack.append(_MARK),
    "EMPTY_DICT": lambda m, _a: m.stack.append({}),
    "EMPTY_LIST": lambda m, _a: m.stack.append([]),
    "EMPTY_TUPLE": lambda m, _a: m.stack.append(()),
    "EMPTY_SET": lambda m, _a: m.stack.append([]),
    "TUPLE": lambda m, _a: m.stack.append(tuple(m.pop_mark())),
    "LIST": lambda m, _a: m.stack.append(list(m.pop_mark())),
    "FROZENSET": lambda m, _a: m.stack.append(list(m.pop_mark())),
    "TUPLE1": _tuple_n(1),
    "TUPLE2": _tuple_n(2),
    "TUPLE3": _tuple_n(3),
    "DICT": _dict,
    "APPEND": lambda m, _a: _appends(m, [m.pop()]),
    "APPENDS": lambda m, _a: _appends(m, m.pop_mark()),
    "ADDITEMS": lambda m, _a: _appends(m, m.pop_mark()),
    "SETITEM": lambda m, _a: _setitems(m, [*reversed([m.pop(), m.pop()])]),
    "SETITEMS": lambda m, _a: _setitems(m, m.pop_mark()),
    "GLOBAL": _global,
    "STACK_GLOBAL": _stack_global,
    "REDUCE": _reduce,
    "NEWOBJ": _reduce,
    "NEWOBJ_EX": _newobj_ex,
    "INST": _inst,
    "OBJ": _obj,
    "BUILD": lambda m, _a: m.pop(),
    "PERSID": lambda m, a: m.stack.append(_Persistent(a)),
    "BINPERSID": lambda m, _a: m.stack.append(_Persistent(m.pop())),
    "PUT": _put,
    "BINPUT": _put,
    "LONG_BINPUT": _put,
    "MEMOIZE": _memoize,
    "GET": _get,
    "BINGET": _get,
    "LONG_BINGET": _get,
    "POP": lambda m, _a: m.pop(),
    "POP_MARK": lambda m, _a: m.pop_mark(),
    "DUP": lambda m, _a: m.stack.append(m.stack[-1] if m.stack else None),
    "NONE": lambda m, _a: m.stack.append(None),
    "NEWTRUE": lambda m, _a: m.stack.append(True),
    "NEWFALSE": lambda m, _a: m.stack.append(False),
}
_CONSTANTS: Final = frozenset(
    [
        "INT",
        "BININT",
        "BININT1",
        "BININT2",
        "LONG",
        "LONG1",
        "LONG4",
        "FLOAT",
        "BINFLOAT",
        "STRING",
        "BINSTRING",
        "SHORT_BINSTRING",
        "UNICODE",
        "SHORT_BINUNICODE",
        "BINUNICODE",
        "BINUNICODE8",
        "BINBYTES",
        "SHORT_BINBYTES",
        "BINBYTES8",
        "BYTEARRAY8",
    ]
)
_NOOPS: Final = frozenset({"PROTO", "FRAME"})


def torch_tensors(data: bytes | memoryview, *, where: str) -> list[TorchTensor]:
    """The tensors of the checkpoint pickle ``data``, named by their path in the saved object."""
    try:
        root = _Machine(where).run(data)
    except (ValueError, TypeError, IndexError) as exc:
        raise _bad(f"the checkpoint pickle cannot be followed: {exc}", where) from None
    found: list[TorchTensor] = []
    _collect(root, (), found, where, set())
    return found


def _collect(
    obj: object, path: tuple[object, ...], out: list[TorchTensor], where: str, seen: set[int]
) -> None:
    """The tensors under ``obj`` at ``path``; a name is joined only for a tensor."""
    if id(obj) in seen:
        return
    if isinstance(obj, _Call) and _is_tensor(obj):
        name = ".".join(map(str, path))
        if len(name) > MAX_NAME_CHARS:
            raise _bad(f"a tensor name of {len(name)} characters", where)
        if len(out) >= MAX_TENSORS:
            raise _bad(f"more than {MAX_TENSORS} tensors", where)
        tensor = _tensor(obj, name, where)
        if tensor is not None:
            out.append(tensor)
        return
    if len(path) >= MAX_NAME_DEPTH:
        if _holds_tensor(obj, seen):
            raise _bad(f"a tensor nested deeper than {MAX_NAME_DEPTH} levels", where)
        return
    seen.add(id(obj))
    for key, value in _children(obj):
        if isinstance(value, dict | list | tuple | _Call):
            _collect(value, (*path, key), out, where, seen)


def _unwrap(call: _Call) -> tuple[str | None, tuple[object, ...]]:
    """The function and arguments of a call, through parameter wrappers (no recursion)."""
    for _ in range(MAX_NAME_DEPTH):
        func = call.func.name if isinstance(call.func, _Global) else None
        args = call.args if isinstance(call.args, tuple) else ()
        if not (func in _WRAPPERS and args and isinstance(args[0], _Call)):
            return func, args
        call = args[0]
    return None, ()


def _is_tensor(call: _Call) -> bool:
    return _unwrap(call)[0] in _REBUILD


def _holds_tensor(obj: object, seen: set[int]) -> bool:
    """Whether a tensor lies anywhere under ``obj`` (walked without recursion)."""
    todo = [obj]
    while todo:
        o = todo.pop()
        if id(o) in seen:
            continue
        if isinstance(o, _Call) and _is_tensor(o):
            return True
        seen.add(id(o))
        todo += [v for _k, v in _children(o)]
    return False


def _children(obj: object) -> list[tuple[object, object]]:
    if isinstance(obj, dict):
        return list(obj.items())
    if isinstance(obj, list | tuple):
        return list(enumerate(obj))
    if isinstance(obj, _Call) and isinstance(obj.func, _Global) and obj.func.name in _DICTS:
        return list(obj.items.items())
    return []


def _tensor(call: _Call, name: str, where: str) -> TorchTensor | None:
    func, args = _unwrap(call)
    if func not in _REBUILD or len(args) < 4:
        return None
    storage, offset, shape, stride = args[:4]
    pid = storage.pid if isinstance(storage, _Persistent) else None
    if not (
        isinstance(pid, tuple)
        and len(pid) >= 3
        and pid[0] == "storage"
        and isinstance(pid[2], str)
        and isinstance(offset, int)
        and offset >= 0
        and isinstance(shape, tuple)
        and isinstance(stride, tuple)
        and len(shape) == len(stride)
        and all(isinstance(v, int) and v >= 0 for v in (*shape, *stride))
    ):
        raise _bad(f"tensor {name!r}: a rebuild call with unexpected arguments", where)
    cls = pid[1].name.rsplit(".", 1)[-1] if isinstance(pid[1], _Global) else "?"
    return TorchTensor(name, pid[2], cls, offset, shape, stride)
