"""The walk over an ONNX ``ModelProto``: graphs, nodes, attributes, functions (see :mod:`.onnx`).

One pass in file order. A name that qualifies a tensor (its node's, its
attribute's) may come after the tensor in the message — protobuf does not order
fields — so each level adds its prefix to the tensors found inside it once the
level is read.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Final, NamedTuple

from ...codes import Code
from .onnx_tensor import DTYPES, OnnxTensor, entry, parse_tensor
from .onnx_wire import LEN, VARINT, Field, WireReader, int64, many, one

MAX_TENSORS: Final = 1_000_000
MAX_NODES: Final = 1_000_000
MAX_DEPTH: Final = 32
"""Most graphs nested in one another (the main graph is depth 1)."""

_MODEL: Final = {
    1: one("ir_version", VARINT),
    2: one("producer_name", LEN),
    3: one("producer_version", LEN),
    4: one("domain", LEN),
    5: one("model_version", VARINT),
    6: one("doc_string", LEN),
    7: one("graph", LEN),
    8: many("opset_import", LEN),
    14: many("metadata_props", LEN),
    20: many("training_info", LEN),
    25: many("functions", LEN),
    26: many("configuration", LEN),
}
_OPSET: Final = {1: one("domain", LEN), 2: one("version", VARINT)}
_GRAPH: Final = {
    1: many("node", LEN),
    2: one("name", LEN),
    5: many("initializer", LEN),
    10: one("doc_string", LEN),
    11: many("input", LEN),
    12: many("output", LEN),
    13: many("value_info", LEN),
    14: many("quantization_annotation", LEN),
    15: many("sparse_initializer", LEN),
    16: many("metadata_props", LEN),
}
_NODE: Final = {
    1: many("input", LEN),
    2: many("output", LEN),
    3: one("name", LEN),
    4: one("op_type", LEN),
    5: many("attribute", LEN),
    6: one("doc_string", LEN),
    7: one("domain", LEN),
    8: one("overload", LEN),
    9: many("metadata_props", LEN),
    10: many("device_configurations", LEN),
}
_ATTRIBUTE: Final = {
    1: one("name", LEN),
    2: one("f", 5),
    3: one("i", VARINT),
    4: one("s", LEN),
    5: one("t", LEN),
    6: one("g", LEN),
    7: many("floats", 5, LEN),
    8: many("ints", VARINT, LEN),
    9: many("strings", LEN),
    10: many("tensors", LEN),
    11: many("graphs", LEN),
    13: one("doc_string", LEN),
    14: one("tp", LEN),
    15: many("type_protos", LEN),
    20: one("type", VARINT),
    21: one("ref_attr_name", LEN),
    22: one("sparse_tensor", LEN),
    23: many("sparse_tensors", LEN),
}
_SPARSE: Final = {1: one("values", LEN), 2: one("indices", LEN), 3: many("dims", VARINT, LEN)}
_FUNCTION: Final = {
    1: one("name", LEN),
    4: many("input", LEN),
    5: many("output", LEN),
    6: many("attribute", LEN),
    7: many("node", LEN),
    8: one("doc_string", LEN),
    9: many("opset_import", LEN),
    10: one("domain", LEN),
    11: many("attribute_proto", LEN),
    12: many("value_info", LEN),
    13: one("overload", LEN),
    14: many("metadata_props", LEN),
}
_TRAINING: Final = {
    1: one("initialization", LEN),
    2: one("algorithm", LEN),
    3: many("initialization_binding", LEN),
    4: many("update_binding", LEN),
}

# Attribute fields holding tensors: a list's number -> its single kind's (t, g, sparse_tensor).
_ATTR_T, _ATTR_G, _ATTR_SPARSE = 5, 6, 22
_ATTR_LISTS: Final = {10: _ATTR_T, 11: _ATTR_G, 23: _ATTR_SPARSE}
_ATTR_HOLDERS: Final = frozenset({_ATTR_T, _ATTR_G, _ATTR_SPARSE, *_ATTR_LISTS})
_DEFAULT_DOMAINS: Final = ("", "ai.onnx")

_QDQ_OPS: Final = frozenset({"QuantizeLinear", "DequantizeLinear"})
_INTEGER_OPS: Final = frozenset(
    {"MatMulInteger", "ConvInteger", "MatMulIntegerToFloat", "DynamicQuantizeMatMul"}
)
_LOW_BITS: Final = {
    name: bits for name, bits in DTYPES.values() if bits < 16 and name not in ("BOOL", "STRING")
}


@dataclass(frozen=True)
class OnnxQuantization:
    """What the graph says about quantization.

    ``scheme``: ``onnx-int{bits}-matmulnbits`` (com.microsoft ``MatMulNBits``),
    ``onnx-qlinear`` (operator-oriented: ``QLinear*`` or ``*Integer`` ops),
    ``onnx-qdq`` (``QuantizeLinear``/``DequantizeLinear`` around float ops), or
    ``None``. ``bits``: ``MatMulNBits``' ``bits``, else the narrowest integer or
    8-bit-or-less float dtype among the tensors (``None`` if none).
    """

    scheme: str | None
    bits: int | None
    qdq_ops: int
    qlinear_ops: int
    integer_ops: int
    matmulnbits_ops: int
    int8_tensors: int  # I8 and U8
    int4_tensors: int  # INT4 and UINT4


@dataclass(frozen=True)
class OnnxModel:
    """A strictly parsed .onnx file: its model fields, graph facts and tensors.

    ``opsets``: domain (``""`` the default) → version. ``op_types``: node counts by
    op type, ``domain:op_type`` outside the default domain, over every graph and
    function. ``tensors`` are in file order; inline ones never overlap.
    """

    file_size: int
    ir_version: int
    producer_name: str
    producer_version: str
    domain: str
    model_version: int | None
    opsets: dict[str, int]
    op_types: dict[str, int]
    metadata: dict[str, str]
    tensors: tuple[OnnxTensor, ...]
    quantization: OnnxQuantization
    bytes_read: int  # structure bytes read from the file to parse it
    initializers: int = 0  # the main graph's initializers, sparse ones included


class _Node(NamedTuple):
    name: str
    op: str
    first: int  # its tensors: names[first:last]
    last: int


def walk_model(r: WireReader) -> OnnxModel:
    """Walk the ``ModelProto`` that is the whole of ``r``'s file."""
    return _Walk(r).model()


class _Walk:
    """The state of one walk: the tensors found (and their names so far), op counts."""

    def __init__(self, r: WireReader) -> None:
        self.r = r
        self.tensors: list[OnnxTensor] = []
        self.names: list[str] = []
        self.op_types: dict[str, int] = {}
        self.nbits: list[int] = []  # MatMulNBits' bits, one per node
        self.nodes = 0

    def add(self, tensor: OnnxTensor, name: str) -> None:
        if len(self.tensors) >= MAX_TENSORS:
            raise self.r.error(
                Code.ONNX_TOO_LARGE, f"the model has more than {MAX_TENSORS} tensors"
            )
        self.tensors.append(tensor)
        self.names.append(name)

    def prefix(self, first: int, prefix: str, last: int | None = None) -> None:
        """Qualify the names of the tensors found since ``first`` (up to ``last``)."""
        names = self.names
        for i in range(first, len(names) if last is None else last):
            names[i] = prefix + names[i]

    def label_nodes(self, nodes: list[_Node]) -> None:
        """Qualify each node's tensors with its label, once every name of its graph is known.

        The label is the node's name; ``op_type#index`` if it has none, ``name#index`` if
        another node of the graph has it too (ONNX does not require node names to be unique).
        """
        counts: dict[str, int] = {}
        for node in nodes:
            counts[node.name] = counts.get(node.name, 0) + 1
        for index, node in enumerate(nodes):
            if node.first < node.last:
                unique = node.name and counts[node.name] == 1
                label = node.name if unique else f"{node.name or node.op}#{index}"
                self.prefix(node.first, f"{label}/", node.last)

    # -- ModelProto --------------------------------------------------------------------------

    def model(self) -> OnnxModel:
        r = self.r
        ints: dict[int, int] = {}
        main = 0  # the main graph's initializers
        texts = {2: "", 3: "", 4: ""}
        opsets: dict[str, int] = {}
        metadata: dict[str, str] = {}
        training = 0
        for f in r.fields(0, r.size, _MODEL, "ModelProto"):
            n = f.number
            if n in (1, 5):
                ints[n] = int64(f.value)
            elif n in texts:
                texts[n] = r.string(f, f"the model's {f.name}")
            elif n == 7:
                ints[7] = 1
                main = self.graph(f, 1)
            elif n == 8:
                self.opset(f, opsets)
            elif n == 14:
                self.metadata(f, metadata)
            elif n == 20:
                first = len(self.names)
                self.training(f)
                self.prefix(first, f"training_info[{training}]/")
                training += 1
            elif n == 25:
                self.function(f)
        ir_version = self.required(ints, opsets)
        return OnnxModel(
            file_size=r.size,
            ir_version=ir_version,
            producer_name=texts[2],
            producer_version=texts[3],
            domain=texts[4],
            model_version=ints.get(5),
            opsets=opsets,
            op_types=self.op_types,
            metadata=metadata,
            tensors=self.final_tensors(),
            quantization=_quantization(self.op_types, self.tensors, self.nbits),
            bytes_read=r.bytes_read,
            initializers=main,
        )

    def required(self, ints: dict[int, int], opsets: dict[str, int]) -> int:
        """The fields every ONNX model has (as onnx's checker requires): its ir_version."""
        missing = None
        if 7 not in ints:
            missing = "no graph"
        elif ints.get(1, 0) <= 0:
            missing = "no ir_version"
        elif ints[1] >= 3 and not opsets:
            missing = "no opset_import (required from IR version 3)"
        if missing is not None:
            raise self.r.error(
                Code.ONNX_MALFORMED, f"not an ONNX model: {missing} ({self.r.size} bytes)"
            )
        return ints[1]

    def opset(self, f: Field, opsets: dict[str, int]) -> None:
        domain, version = "", None
        for o in self.r.fields(f.start, f.end, _OPSET, "OperatorSetIdProto"):
            if o.number == 1:
                domain = self.r.string(o, "an opset_import domain")
            else:
                version = int64(o.value)
        if version is None or domain in opsets:
            why = "has no version" if version is None else "is imported twice"
            raise self.r.error(Code.ONNX_MALFORMED, f"opset_import of domain {domain!r} {why}")
        opsets[domain] = version

    def metadata(self, f: Field, metadata: dict[str, str]) -> None:
        key, value = entry(self.r, f, "metadata_props")
        if key in metadata:
            raise self.r.error(Code.ONNX_MALFORMED, f"metadata_props key {key!r} appears twice")
        metadata[key] = value

    def training(self, f: Field) -> None:
        for t in self.r.fields(f.start, f.end, _TRAINING, "TrainingInfoProto"):
            if t.number in (1, 2):  # initialization, algorithm: graphs
                first = len(self.names)
                self.graph(t, 1)
                self.prefix(first, f"{t.name}/")

    def function(self, f: Field) -> None:
        first = len(self.names)
        texts = {1: "", 10: "", 13: ""}  # name, domain, overload
        nodes: list[_Node] = []
        for g in self.r.fields(f.start, f.end, _FUNCTION, "FunctionProto"):
            if g.number in texts:
                texts[g.number] = self.r.string(g, f"a function {g.name}")
            elif g.number == 7:
                nodes.append(self.node(g, 1))
            elif g.number == 11:  # an attribute's default value
                self.attribute(g, 1)
        self.label_nodes(nodes)
        label = ":".join(t for t in (texts[10], texts[1], texts[13]) if t)
        self.prefix(first, f"{label}/")

    # -- graphs, nodes, attributes -------------------------------------------------------------

    def graph(self, f: Field, depth: int) -> int:
        """Walk a graph; the number of its own initializers, sparse ones included."""
        if depth > MAX_DEPTH:
            raise self.r.error(
                Code.ONNX_TOO_DEEP,
                f"graphs nest more than {MAX_DEPTH} deep (at byte {f.start})",
            )
        nodes: list[_Node] = []
        initializers = 0
        for g in self.r.fields(f.start, f.end, _GRAPH, "GraphProto"):
            if g.number == 1:
                nodes.append(self.node(g, depth))
            elif g.number == 5:
                tensor = parse_tensor(self.r, g)
                if not tensor.name:
                    raise self.r.error(
                        Code.ONNX_BAD_TENSOR, f"an initializer at byte {g.start} has no name"
                    )
                self.add(tensor, tensor.name)
                initializers += 1
            elif g.number == 15:
                self.sparse(g, named=True)
                initializers += 1
        self.label_nodes(nodes)
        return initializers

    def sparse(self, f: Field, *, named: bool) -> None:
        """A sparse tensor: its values and indices, ``…/values`` and ``…/indices``."""
        found: dict[int, OnnxTensor] = {}
        for s in self.r.fields(f.start, f.end, _SPARSE, "SparseTensorProto"):
            if s.number in (1, 2):  # dims (3), the dense shape, only describes them
                found[s.number] = parse_tensor(self.r, s)
        values = found.get(1)
        if values is None or (named and not values.name):
            why = "no values" if values is None else "no name (its values tensor's)"
            raise self.r.error(Code.ONNX_BAD_TENSOR, f"a sparse tensor at byte {f.start} has {why}")
        base = values.name if named else ""
        self.add(values, f"{base}/values")
        if 2 in found:
            self.add(found[2], f"{base}/indices")

    def node(self, f: Field, depth: int) -> _Node:
        """Walk a node; it is labelled later (:meth:`label_nodes`)."""
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise self.r.error(Code.ONNX_TOO_LARGE, f"the model has more than {MAX_NODES} nodes")
        first = len(self.names)
        name = op = domain = ""
        bits = None
        for n in self.r.fields(f.start, f.end, _NODE, "NodeProto"):
            if n.number == 3:
                name = self.r.string(n, "a node name")
            elif n.number == 4:
                op = self.r.string(n, "a node op_type")
            elif n.number == 7:
                domain = self.r.string(n, "a node domain")
            elif n.number == 5:
                attr, value = self.attribute(n, depth)
                if attr == "bits":
                    bits = value
        key = op if domain in _DEFAULT_DOMAINS else f"{domain}:{op}"
        self.op_types[key] = self.op_types.get(key, 0) + 1
        if op == "MatMulNBits":
            self.nbits.append(4 if bits is None else bits)  # 4: the attribute's default
        return _Node(name, op, first, len(self.names))

    def attribute(self, f: Field, depth: int) -> tuple[str, int | None]:
        """Walk an attribute's tensors and graphs; its name and integer value (``i``)."""
        first = len(self.names)
        name, value = "", None
        counts: dict[int, int] = {}
        for a in self.r.fields(f.start, f.end, _ATTRIBUTE, "AttributeProto"):
            k = a.number
            if k == 1:
                name = self.r.string(a, "an attribute name")
            elif k == 3:
                value = int64(a.value)
            elif k in _ATTR_HOLDERS:
                kind = _ATTR_LISTS.get(k, k)
                suffix = f"[{counts.get(k, 0)}]" if k in _ATTR_LISTS else ""
                counts[k] = counts.get(k, 0) + 1
                mark = len(self.names)
                if kind == _ATTR_T:
                    self.add(parse_tensor(self.r, a), "")
                elif kind == _ATTR_G:
                    self.graph(a, depth + 1)
                    suffix += "/"
                else:
                    self.sparse(a, named=False)
                self.prefix(mark, suffix)
        self.prefix(first, name)
        return name, value

    # -- the result --------------------------------------------------------------------------

    def final_tensors(self) -> tuple[OnnxTensor, ...]:
        """The tensors with their qualified names, each name once; inline data never overlaps."""
        seen: set[str] = set()
        for name in self.names:
            if name in seen:
                raise self.r.error(
                    Code.ONNX_DUPLICATE_TENSOR,
                    f"two tensors are named {name!r}",
                    tensor=name,
                )
            seen.add(name)
        out = tuple(replace(t, name=n) for t, n in zip(self.tensors, self.names, strict=True))
        last = 0
        for t in sorted((t for t in out if t.start is not None), key=lambda t: t.start or 0):
            assert t.start is not None and t.end is not None
            if t.start < last:  # protobuf fields cannot overlap: a bug if they do
                raise self.r.error(
                    Code.ONNX_MALFORMED, f"tensor {t.name!r} overlaps another", tensor=t.name
                )
            last = t.end
        return out


def _quantization(
    op_types: dict[str, int], tensors: list[OnnxTensor], nbits: list[int]
) -> OnnxQuantization:
    counts = {"qdq": 0, "qlinear": 0, "integer": 0, "nbits": 0}
    for key, n in op_types.items():
        op = key.rpartition(":")[2]
        if op in _QDQ_OPS:
            counts["qdq"] += n
        elif op.startswith("QLinear"):
            counts["qlinear"] += n
        elif op in _INTEGER_OPS:
            counts["integer"] += n
        elif op == "MatMulNBits":
            counts["nbits"] += n
    dtypes = [t.dtype for t in tensors]
    low = min((_LOW_BITS[d] for d in dtypes if d in _LOW_BITS), default=None)
    scheme, bits = None, None
    if nbits:
        bits = min(nbits)
        scheme = f"onnx-int{bits}-matmulnbits"
    elif counts["qlinear"] or counts["integer"]:
        scheme, bits = "onnx-qlinear", low
    elif counts["qdq"]:
        scheme, bits = "onnx-qdq", low
    return OnnxQuantization(
        scheme=scheme,
        bits=bits,
        qdq_ops=counts["qdq"],
        qlinear_ops=counts["qlinear"],
        integer_ops=counts["integer"],
        matmulnbits_ops=counts["nbits"],
        int8_tensors=sum(d in ("I8", "U8") for d in dtypes),
        int4_tensors=sum(d in ("INT4", "UINT4") for d in dtypes),
    )
