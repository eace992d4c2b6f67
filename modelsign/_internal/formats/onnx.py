"""Strict, bounded reader for ONNX models that never loads a whole file.

It walks the protobuf wire format of a ``ModelProto`` itself (field numbers of
onnx.proto, onnx 1.23) with ``pread`` — the ``onnx`` package would load the
whole file in memory and gives no byte offsets — and reads only the structure:
every tensor payload (``raw_data`` and the packed typed fields) is located and
skipped, for the hashing pipeline to digest in its own single read.

API:

- ``parse_onnx(fd, size, path) -> OnnxModel`` (``parse_onnx_bytes(data, path)``
  for bytes already in memory);
- ``looks_like_onnx(head, lower_name)``: detection (by the ``.onnx`` extension);
- ``resolve_external(root, model_relpath, location, tensor=...)``: the
  root-relative path of an external data file, refusing unsafe locations before
  anything is read; ``external_span(tensor, data_size, path)``: the byte range
  of an external tensor in its data file, checked against the file's size;
- ``OnnxModel``, ``OnnxTensor``, ``ExternalRef``, ``OnnxQuantization``.

Tensors are every tensor of the model: initializers and sparse initializers of
the main graph, of subgraphs (``If``/``Loop``/``Scan`` bodies) and of training
graphs, and tensors held in node attributes (``Constant``), in function bodies
too. A main-graph initializer keeps its name; the others are qualified with
where they are, ``/``-separated: a node (its name; ``op_type#index``, its index in
its graph, if it has none; ``name#index`` if another node of its graph has that
name too), an attribute (``value``, ``then_branch``; ``[i]`` for the i-th of a
list), a function (``domain:name``, ``:overload`` if it has one),
``training_info[i]/initialization``; a sparse tensor is two, ``…/values`` and
``…/indices``. E.g.
``If_0/then_branch/w``, ``Constant#3/value``. Two tensors with one name are an
error (``ONNX_DUPLICATE_TENSOR``).

Bounds: ``MAX_READ`` bytes of structure read, ``MAX_TENSORS`` tensors,
``MAX_NODES`` nodes (``ONNX_TOO_LARGE``), subgraphs nested ``MAX_DEPTH`` deep
(``ONNX_TOO_DEEP``). Structure errors are ``ONNX_MALFORMED`` / ``ONNX_TRUNCATED``
(:mod:`.onnx_wire`), tensor errors ``ONNX_BAD_TENSOR`` (:mod:`.onnx_tensor`),
unsafe external locations ``ONNX_EXTERNAL_*`` (:mod:`.onnx_external`).
"""

from __future__ import annotations

from ...codes import Code
from ...errors import FormatError
from .onnx_external import resolve_external
from .onnx_graph import MAX_DEPTH, MAX_NODES, MAX_TENSORS, OnnxModel, OnnxQuantization, walk_model
from .onnx_tensor import ExternalRef, OnnxTensor
from .onnx_wire import MAX_READ, Pread, WireReader, bytes_pread, fd_pread

__all__ = [
    "MAX_DEPTH",
    "MAX_NODES",
    "MAX_READ",
    "MAX_TENSORS",
    "ExternalRef",
    "OnnxModel",
    "OnnxQuantization",
    "OnnxTensor",
    "external_span",
    "looks_like_onnx",
    "parse_onnx",
    "parse_onnx_bytes",
    "resolve_external",
]


def looks_like_onnx(head: bytes, lower_name: str) -> bool:
    """Whether a file is ONNX: by its ``.onnx`` name only.

    Protobuf has no magic, and other protobuf files (TensorFlow's
    ``saved_model.pb``) start like an ONNX model does, so ``head`` is not
    sniffed: guessing wrong would make a strict parse fail on another format.
    """
    del head  # the same signature as the other formats' detection
    return lower_name.endswith(".onnx")


def parse_onnx(fd: int, size: int, path: str) -> OnnxModel:
    """Strictly parse the ONNX model in the open file ``fd`` of ``size`` bytes."""
    return _parse(fd_pread(fd), size, path)


def parse_onnx_bytes(data: bytes | memoryview, path: str) -> OnnxModel:
    """Strictly parse an ONNX model held in memory (a loader's verified buffer)."""
    return _parse(bytes_pread(data), len(data), path)


def _parse(pread: Pread, size: int, path: str) -> OnnxModel:
    return walk_model(WireReader(pread, size, path))


def external_span(tensor: OnnxTensor, data_size: int, path: str) -> tuple[int, int]:
    """The ``[start, end)`` of an external tensor's data in its data file (``path``)."""
    ref = tensor.external
    if ref is None:
        raise ValueError(f"tensor {tensor.name!r} has no external data")
    length = data_size - ref.offset if ref.length is None else ref.length
    end = ref.offset + length
    if ref.offset > data_size or end > data_size:
        raise FormatError(
            f"tensor {tensor.name!r}: external data [{ref.offset}, {end}) runs past the end "
            f"of {ref.location} ({data_size} bytes)",
            code=Code.ONNX_EXTERNAL_RANGE,
            path=path,
            tensor=tensor.name,
        )
    if length != tensor.data_nbytes:
        raise FormatError(
            f"tensor {tensor.name!r}: the external data from offset {ref.offset} to the end "
            f"of {ref.location} is {length} bytes; dims {list(tensor.dims)} of {tensor.dtype} "
            f"need {tensor.data_nbytes}",
            code=Code.ONNX_EXTERNAL_RANGE,
            path=path,
            tensor=tensor.name,
        )
    return ref.offset, end
