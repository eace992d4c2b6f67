"""ONNX fixtures: models built with the ``onnx`` package (the test oracle), a tiny protobuf
encoder for the malformed ones the ``onnx`` package cannot write, and the naming rule of
``modelsign._internal.formats.onnx`` written again over onnx's own objects."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

# onnx's DataType names -> modelsign's dtype names (written here, not imported, to check them)
DTYPE_NAMES = {
    "FLOAT": "F32",
    "UINT8": "U8",
    "INT8": "I8",
    "UINT16": "U16",
    "INT16": "I16",
    "INT32": "I32",
    "INT64": "I64",
    "STRING": "STRING",
    "BOOL": "BOOL",
    "FLOAT16": "F16",
    "DOUBLE": "F64",
    "UINT32": "U32",
    "UINT64": "U64",
    "COMPLEX64": "C64",
    "COMPLEX128": "C128",
    "BFLOAT16": "BF16",
    "FLOAT8E4M3FN": "F8_E4M3",
    "FLOAT8E4M3FNUZ": "F8_E4M3FNUZ",
    "FLOAT8E5M2": "F8_E5M2",
    "FLOAT8E5M2FNUZ": "F8_E5M2FNUZ",
    "UINT4": "UINT4",
    "INT4": "INT4",
    "FLOAT4E2M1": "F4",
    "FLOAT8E8M0": "F8_E8M0",
    "UINT2": "UINT2",
    "INT2": "INT2",
    "FLOAT6E2M3": "F6_E2M3",
    "FLOAT6E3M2": "F6_E3M2",
}

OPSET = 21

# -- a protobuf encoder ---------------------------------------------------------------------


def varint(value: int) -> bytes:
    value &= (1 << 64) - 1
    out = bytearray()
    while True:
        low, value = value & 0x7F, value >> 7
        if not value:
            out.append(low)
            return bytes(out)
        out.append(low | 0x80)


def key(number: int, wire: int) -> bytes:
    return varint(number << 3 | wire)


def vfield(number: int, value: int) -> bytes:
    return key(number, 0) + varint(value)


def lfield(number: int, payload: bytes | str) -> bytes:
    raw = payload.encode() if isinstance(payload, str) else payload
    return key(number, 2) + varint(len(raw)) + raw


def hand_model(graph: bytes, *, ir: int = 8, extra: bytes = b"") -> bytes:
    """A ModelProto around the fields of a graph: ir_version, the graph, one opset."""
    return vfield(1, ir) + lfield(7, graph) + lfield(8, vfield(2, OPSET)) + extra


def hand_tensor(
    name: str, data_type: int, dims: list[int], *, raw: bytes | None = None, extra: bytes = b""
) -> bytes:
    """The fields of a TensorProto: dims (packed), data_type, name, raw_data, then ``extra``."""
    out = lfield(1, b"".join(varint(d) for d in dims)) if dims else b""
    out += vfield(2, data_type) + lfield(8, name)
    if raw is not None:
        out += lfield(9, raw)
    return out + extra


def initializer(tensor: bytes) -> bytes:
    """A graph field holding a tensor as an initializer."""
    return lfield(5, tensor)


def decode_varints(data: bytes) -> list[int]:
    out, value, shift = [], 0, 0
    for b in data:
        value |= (b & 0x7F) << shift
        shift += 7
        if b < 0x80:
            out.append(value)
            value = shift = 0
    assert shift == 0
    return out


# -- models built with onnx -------------------------------------------------------------------


def _value(name: str, elem: int = TensorProto.FLOAT, shape: list[int] | None = None) -> object:
    return helper.make_tensor_value_info(name, elem, shape or [2])


def rich_model() -> onnx.ModelProto:
    """Every place a tensor can be: initializers (raw, typed, sparse, string), subgraphs,
    Constant nodes, a function body, a training graph."""
    rng = np.random.default_rng(7)
    inits = [
        numpy_helper.from_array(rng.standard_normal((3, 4)).astype(np.float32), "W"),
        helper.make_tensor("Bf", TensorProto.FLOAT, [4], [1.0, 2.0, 3.0, 4.5]),
        helper.make_tensor("Bd", TensorProto.DOUBLE, [2], [1.5, -2.25]),
        helper.make_tensor("Bi64", TensorProto.INT64, [3], [1, -2, 1 << 40]),
        helper.make_tensor("Bi8", TensorProto.INT8, [3], [-1, 0, 127]),
        helper.make_tensor("Bu64", TensorProto.UINT64, [2], [1, (1 << 64) - 1]),
        helper.make_tensor("Bh", TensorProto.FLOAT16, [2], np.array([1, 2], np.float16)),
        helper.make_tensor("S", TensorProto.STRING, [2], [b"ab", b""]),
        numpy_helper.from_array(np.zeros((0, 3), np.float32), "E"),
        numpy_helper.from_array(np.array(3, np.int64), "scalar"),
    ]
    sparse = helper.make_sparse_tensor(
        numpy_helper.from_array(np.array([5.0, 6.0], np.float32), "sp"),
        numpy_helper.from_array(np.array([1, 3], np.int64), "sp_idx"),
        [4],
    )
    body_init = numpy_helper.from_array(np.ones(2, np.float32), "tw")
    then_g = helper.make_graph(
        [helper.make_node("Identity", ["tw"], ["o1"])], "then", [], [_value("o1")], [body_init]
    )
    else_g = helper.make_graph(
        [
            helper.make_node(
                "Constant", [], ["o2"], value=numpy_helper.from_array(np.zeros(2, np.float32))
            )
        ],
        "else",
        [],
        [_value("o2")],
    )
    nodes = [
        helper.make_node("MatMul", ["X", "W"], ["Y"], name="mm"),
        helper.make_node("If", ["c"], ["Z"], then_branch=then_g, else_branch=else_g, name="If_0"),
        helper.make_node("Constant", [], ["k"], value_floats=[1.0, 2.0]),
        helper.make_node("Constant", [], ["k2"], value=helper.make_tensor("", 7, [1], [9])),
        helper.make_node("Twice", ["Y"], ["Y2"], domain="custom"),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [_value("X", shape=[1, 3]), _value("c", TensorProto.BOOL, [])],
        [_value("Y", shape=[1, 4])],
        inits,
        sparse_initializer=[sparse],
    )
    fn = helper.make_function(
        "custom",
        "Twice",
        ["x"],
        ["y"],
        [
            helper.make_node(
                "Constant", [], ["two"], value=numpy_helper.from_array(np.array(2.0, np.float32))
            ),
            helper.make_node("Mul", ["x", "two"], ["y"]),
        ],
        [helper.make_opsetid("", OPSET)],
    )
    model = helper.make_model(
        graph,
        producer_name="modelsign-tests",
        producer_version="1.0",
        domain="org.example",
        model_version=3,
        opset_imports=[helper.make_opsetid("", OPSET), helper.make_opsetid("custom", 1)],
        functions=[fn],
    )
    model.training_info.append(_training())
    helper.set_model_props(model, {"author": "tests", "licence": "apache-2.0"})
    return model


def quantized_model(kind: str) -> onnx.ModelProto:
    """A quantized MatMul: ``qdq`` (DequantizeLinear of INT8 weights), ``int4`` (of INT4),
    ``qlinear`` (QLinearMatMul) or ``nbits`` (com.microsoft MatMulNBits)."""
    w_type = {"int4": TensorProto.INT4}.get(kind, TensorProto.INT8)
    np_type = helper.tensor_dtype_to_np_dtype(w_type)
    w = numpy_helper.from_array(np.arange(-4, 4).astype(np_type).reshape(2, 4), "w_q")
    scale = numpy_helper.from_array(np.array(0.1, np.float32), "w_scale")
    zero = numpy_helper.from_array(np.array(0).astype(np_type), "w_zero")
    if kind == "qlinear":
        nodes = [helper.make_node("QLinearMatMul", ["x", "s", "z", "w_q", "w_scale", "w_zero",
                                                    "s", "z"], ["y"])]  # fmt: skip
    elif kind == "nbits":
        nodes = [
            helper.make_node("MatMulNBits", ["x", "w_q", "w_scale"], ["y"],
                             domain="com.microsoft", bits=4, K=4, N=2, block_size=16)
        ]  # fmt: skip
    else:
        nodes = [
            helper.make_node("DequantizeLinear", ["w_q", "w_scale", "w_zero"], ["w"]),
            helper.make_node("MatMul", ["x", "w"], ["y"]),
        ]
    graph = helper.make_graph(nodes, "q", [], [], [w, scale, zero])
    return helper.make_model(graph)


def gemm_model(producer: str = "") -> onnx.ModelProto:
    """``Y = X·W + B`` with float initializers ``W`` (8×8: 0..63) and ``B`` (8: 0..7)."""
    w = numpy_helper.from_array(np.arange(64, dtype=np.float32).reshape(8, 8), "W")
    b = numpy_helper.from_array(np.arange(8, dtype=np.float32), "B")
    graph = helper.make_graph(
        [helper.make_node("Gemm", ["X", "W", "B"], ["Y"])],
        "g",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, [1, 8])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [1, 8])],
        [w, b],
    )
    return helper.make_model(graph, producer_name=producer)


def save_external(model: onnx.ModelProto, path: Path, location: str = "w.bin") -> dict[str, bytes]:
    """Save ``model`` at ``path`` with every initializer in ``location`` beside it (``W`` at
    bytes 0:256 of it for :func:`gemm_model`); the two files' bytes by name."""
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save_model(model, path, save_as_external_data=True, location=location, size_threshold=0)
    return {path.name: path.read_bytes(), location: (path.parent / location).read_bytes()}


def _training() -> onnx.TrainingInfoProto:
    init = numpy_helper.from_array(np.full(2, 0.5, np.float32), "lr")
    algorithm = helper.make_graph(
        [helper.make_node("Identity", ["lr"], ["out"])], "algo", [], [_value("out")], [init]
    )
    return helper.make_training_info(algorithm, [], None, None)


def expected_tensors(model: onnx.ModelProto) -> dict[str, TensorProto]:
    """Every tensor of ``model`` by its qualified name, as the reader documents the names."""
    names = _Names()
    names.graph(model.graph, "")
    for f in model.functions:
        label = ":".join(t for t in (f.domain, f.name, f.overload) if t) + "/"
        names.nodes(f.node, label)
        for a in f.attribute_proto:
            names.attribute(a, label)
    for i, ti in enumerate(model.training_info):
        for part in ("initialization", "algorithm"):
            if ti.HasField(part):
                names.graph(getattr(ti, part), f"training_info[{i}]/{part}/")
    return names.out


class _Names:
    def __init__(self) -> None:
        self.out: dict[str, TensorProto] = {}

    def graph(self, g: onnx.GraphProto, prefix: str) -> None:
        self.nodes(g.node, prefix)
        for t in g.initializer:
            self.out[prefix + t.name] = t
        for s in g.sparse_initializer:
            self.sparse(s, prefix + s.values.name)

    def sparse(self, s: onnx.SparseTensorProto, base: str) -> None:
        self.out[base + "/values"] = s.values
        if s.HasField("indices"):
            self.out[base + "/indices"] = s.indices

    def nodes(self, nodes: list[onnx.NodeProto], prefix: str) -> None:
        names = [n.name for n in nodes]
        for index, n in enumerate(nodes):
            unique = n.name and names.count(n.name) == 1
            label = n.name if unique else f"{n.name or n.op_type}#{index}"
            for a in n.attribute:
                self.attribute(a, f"{prefix}{label}/")

    def attribute(self, a: onnx.AttributeProto, label: str) -> None:
        p = label + a.name
        if a.HasField("t"):
            self.out[p] = a.t
        for k, t in enumerate(a.tensors):
            self.out[f"{p}[{k}]"] = t
        if a.HasField("g"):
            self.graph(a.g, p + "/")
        for k, g in enumerate(a.graphs):
            self.graph(g, f"{p}[{k}]/")
        if a.HasField("sparse_tensor"):
            self.sparse(a.sparse_tensor, p)
        for k, s in enumerate(a.sparse_tensors):
            self.sparse(s, f"{p}[{k}]")
