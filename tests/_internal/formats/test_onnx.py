"""The strict ONNX reader: models built with the onnx package as the oracle, then one
malformed file per rule, truncation at every byte, hostile external locations, bounds."""

from __future__ import annotations

import os
import tracemalloc
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from modelsign._internal.formats import onnx_graph, onnx_wire
from modelsign._internal.formats.onnx import (
    MAX_DEPTH,
    OnnxModel,
    OnnxTensor,
    external_span,
    looks_like_onnx,
    parse_onnx,
    parse_onnx_bytes,
    resolve_external,
)
from modelsign._internal.formats.onnx_layout import onnx_layout
from modelsign._internal.formats.onnx_wire import WireReader, bytes_pread
from modelsign._internal.hashing.segments import segments
from modelsign.codes import Code
from modelsign.errors import FormatError
from tests.helpers.onnx_files import (
    DTYPE_NAMES,
    OPSET,
    decode_varints,
    expected_tensors,
    hand_model,
    hand_tensor,
    initializer,
    key,
    lfield,
    quantized_model,
    rich_model,
    varint,
    vfield,
)


def parse_file(path: Path) -> OnnxModel:
    fd = os.open(path, os.O_RDONLY)
    try:
        return parse_onnx(fd, os.fstat(fd).st_size, str(path))
    finally:
        os.close(fd)


def error_of(data: bytes) -> FormatError:
    with pytest.raises(FormatError) as e:
        parse_onnx_bytes(data, "m.onnx")
    return e.value


def code_of(data: bytes) -> Code:
    return error_of(data).code


def check_tiling(model: OnnxModel) -> None:
    """The structure and the inline data ranges cover the file exactly, once (as hashed)."""
    segs = segments(onnx_layout(model), "m.onnx")  # raises LAYOUT_GAP on a gap or overlap
    inline = sorted((t.start, t.end) for t in model.tensors if t.start is not None)
    assert [(s.start, s.end) for s in segs if s.kind == "tensor"] == inline
    assert segs[-1].end == model.file_size


def check_data(t: OnnxTensor, proto: TensorProto, data: bytes) -> None:
    """The bytes at the tensor's range are its data, as onnx itself reads them."""
    assert t.dtype == DTYPE_NAMES[TensorProto.DataType.Name(proto.data_type)]
    assert t.dims == tuple(proto.dims)
    if t.field == "empty":
        assert t.n_elements == 0
        return
    assert t.start is not None and t.end is not None
    got = data[t.start : t.end]
    if t.field == "raw_data":
        assert got == proto.raw_data
        if t.data_nbytes == t.n_elements * numpy_helper.to_array(proto).itemsize:
            assert got == numpy_helper.to_array(proto).tobytes()
    elif t.field in ("float_data", "double_data"):
        wide = "<f4" if t.field == "float_data" else "<f8"
        assert got == np.asarray(getattr(proto, t.field), wide).tobytes()
        assert got == numpy_helper.to_array(proto).tobytes()
    elif t.field == "string_data":
        strings, pos = [], 0
        while pos < len(got):
            assert got[pos] == 6 << 3 | 2
            n = decode_varints(got[pos + 1 : pos + 2])[0]
            strings.append(got[pos + 2 : pos + 2 + n])
            pos += 2 + n
        assert strings == list(proto.string_data)
    else:  # varint-packed
        assert decode_varints(got) == [v % (1 << 64) for v in getattr(proto, t.field)]


def check_against_onnx(model: OnnxModel, proto: onnx.ModelProto, data: bytes) -> None:
    expected = expected_tensors(proto)
    assert [t.name for t in model.tensors] and len(model.tensors) == len(expected)
    assert {t.name for t in model.tensors} == set(expected)
    for t in model.tensors:
        check_data(t, expected[t.name], data)
    check_tiling(model)


# -- valid models ---------------------------------------------------------------------------


def test_a_rich_model_agrees_with_onnx(tmp_path: Path) -> None:
    proto = rich_model()
    onnx.checker.check_model(proto)
    path = tmp_path / "m.onnx"
    onnx.save_model(proto, path)
    data = path.read_bytes()
    model = parse_file(path)
    check_against_onnx(model, proto, data)
    assert model == parse_onnx_bytes(data, str(path))
    assert (model.ir_version, model.model_version) == (proto.ir_version, 3)
    assert (model.producer_name, model.producer_version, model.domain) == (
        "modelsign-tests",
        "1.0",
        "org.example",
    )
    assert model.opsets == {"": OPSET, "custom": 1}
    assert model.metadata == {"author": "tests", "licence": "apache-2.0"}
    assert model.op_types == {
        "MatMul": 1,
        "If": 1,
        "Identity": 2,
        "Constant": 4,
        "custom:Twice": 1,
        "Mul": 1,
    }
    by_name = {t.name: t for t in model.tensors}
    assert {n: by_name[n].field for n in ("W", "Bf", "Bd", "Bi64", "Bi8", "Bu64", "S", "E")} == {
        "W": "raw_data",
        "Bf": "float_data",
        "Bd": "double_data",
        "Bi64": "int64_data",
        "Bi8": "int32_data",
        "Bu64": "uint64_data",
        "S": "string_data",
        "E": "raw_data",
    }
    assert {
        "If_0/then_branch/tw",
        "If_0/else_branch/Constant#0/value",
        "Constant#3/value",
        "sp/values",
        "sp/indices",
        "custom:Twice/Constant#0/value",
        "training_info[0]/algorithm/lr",
    } <= set(by_name)
    assert by_name["scalar"].dims == () and by_name["scalar"].n_elements == 1
    assert by_name["E"].start == by_name["E"].end and by_name["E"].data_nbytes == 0
    assert model.quantization.scheme is None
    # the main graph's own: not those of its subgraphs, functions or training graphs
    assert model.initializers == len(proto.graph.initializer) + len(proto.graph.sparse_initializer)
    assert onnx_layout(model).metadata["onnx.initializers"] == 11


def test_initializers_are_the_main_graphs_in_any_field_order() -> None:
    def init(name: str) -> bytes:
        return initializer(hand_tensor(name, 1, [1], raw=bytes(4)))

    training = lfield(20, lfield(2, init("lr")))  # a training graph before the main graph
    model = parse_onnx_bytes(training + hand_model(init("a") + init("b")), "m.onnx")
    assert model.initializers == 2 and len(model.tensors) == 3


def _constant(name: str, value: float) -> onnx.NodeProto:
    tensor = numpy_helper.from_array(np.array([value], np.float32))
    return helper.make_node("Constant", [], [f"out{value}"], name=name, value=tensor)


def test_node_labels_stay_unique_when_node_names_are_not() -> None:
    """ONNX does not require unique node names: the index tells repeated ones apart."""
    nodes = [_constant("c", 0), _constant("c", 1), _constant("", 2), _constant("d", 3)]
    twice = [
        helper.make_function("f", "Fn", [], [f"out{i}"], [_constant("c", i)], [], overload=o)
        for i, o in ((0, ""), (1, "v2"))
    ]
    proto = helper.make_model(
        helper.make_graph(nodes, "g", [], []),
        functions=twice,
        opset_imports=[helper.make_opsetid("", OPSET)],
    )
    data = proto.SerializeToString()
    model = parse_onnx_bytes(data, "m.onnx")
    assert [t.name for t in model.tensors] == [
        "c#0/value",
        "c#1/value",
        "Constant#2/value",
        "d/value",
        "f:Fn/c/value",
        "f:Fn:v2/c/value",
    ]
    check_against_onnx(model, proto, data)


def test_every_data_type_has_its_name_and_packed_size() -> None:
    for number in TensorProto.DataType.values():
        name = TensorProto.DataType.Name(number)
        if name in ("UNDEFINED", "STRING"):
            continue
        np_type = helper.tensor_dtype_to_np_dtype(number)
        for n in (1, 3, 4, 5):  # odd counts: 2-, 4- and 6-bit types round up
            proto = numpy_helper.from_array(np.zeros(n, dtype=np_type), "t")
            data = helper.make_model(
                helper.make_graph([], "g", [], [], [proto])
            ).SerializeToString()
            (t,) = parse_onnx_bytes(data, "m.onnx").tensors
            assert (t.dtype, t.dims, t.field) == (DTYPE_NAMES[name], (n,), "raw_data"), name
            assert t.data_nbytes == len(proto.raw_data) == (t.end or 0) - (t.start or 0), name


def test_sub_byte_raw_data_is_ceil_of_bits() -> None:
    for data_type, n, size, ok in [(22, 3, 2, True), (22, 3, 1, False), (22, 3, 3, False),
                                   (25, 5, 2, True), (25, 5, 1, False), (27, 5, 4, True),
                                   (27, 5, 3, False)]:  # fmt: skip
        data = hand_model(initializer(hand_tensor("t", data_type, [n], raw=bytes(size))))
        if ok:
            assert parse_onnx_bytes(data, "m.onnx").tensors[0].data_nbytes == size
        else:
            assert code_of(data) == Code.ONNX_BAD_TENSOR


def test_external_data_is_located_not_read(tmp_path: Path) -> None:
    proto = rich_model()
    folder = tmp_path / "model" / "onnx"
    folder.mkdir(parents=True)
    onnx.save_model(
        proto, folder / "m.onnx", save_as_external_data=True, location="w.bin", size_threshold=0
    )
    model = parse_file(folder / "m.onnx")
    loaded = expected_tensors(onnx.load(folder / "m.onnx"))  # onnx reads the external data
    data_file = (folder / "w.bin").read_bytes()
    external = [t for t in model.tensors if t.field == "external"]
    # onnx moves raw_data out only; typed fields stay inline
    assert {t.name for t in external} >= {"W", "If_0/then_branch/tw"}
    assert {t.name for t in model.tensors if t.field == "float_data"} == {"Bf"}
    for t in external:
        assert t.external is not None and t.start is None and t.end is None
        assert t.external.location == "w.bin" and t.external.length == t.data_nbytes
        rel = resolve_external(str(tmp_path / "model"), "onnx/m.onnx", t.external.location)
        assert rel == "onnx/w.bin"
        start, end = external_span(t, len(data_file), rel)
        proto_t = loaded[t.name]
        assert data_file[start:end] == proto_t.raw_data == numpy_helper.to_array(proto_t).tobytes()
    check_tiling(model)
    assert model.tensors == parse_onnx_bytes((folder / "m.onnx").read_bytes(), "x").tensors


def test_external_data_without_length_runs_to_the_end_of_its_file() -> None:
    ext = lfield(13, lfield(1, "location") + lfield(2, "w.bin"))
    ext += lfield(13, lfield(1, "offset") + lfield(2, "4096"))
    data = hand_model(initializer(hand_tensor("w", 1, [2, 3], extra=ext + vfield(14, 1))))
    (t,) = parse_onnx_bytes(data, "m.onnx").tensors
    assert t.external is not None
    assert (t.external.offset, t.external.length, t.data_nbytes) == (4096, None, 24)
    assert external_span(t, 4096 + 24, "w.bin") == (4096, 4120)
    for size in (4096 + 23, 4096 + 25, 100):
        with pytest.raises(FormatError) as e:
            external_span(t, size, "w.bin")
        assert e.value.code == Code.ONNX_EXTERNAL_RANGE and e.value.tensor == "w"


@pytest.mark.parametrize(
    ("kind", "scheme", "bits"),
    [
        ("qdq", "onnx-qdq", 8),
        ("int4", "onnx-qdq", 4),
        ("qlinear", "onnx-qlinear", 8),
        ("nbits", "onnx-int4-matmulnbits", 4),
    ],
)
def test_quantization_summary(kind: str, scheme: str, bits: int) -> None:
    model = parse_onnx_bytes(quantized_model(kind).SerializeToString(), "q.onnx")
    q = model.quantization
    assert (q.scheme, q.bits) == (scheme, bits)
    assert (q.qdq_ops, q.qlinear_ops, q.matmulnbits_ops) == (
        int(kind in ("qdq", "int4")),
        int(kind == "qlinear"),
        int(kind == "nbits"),
    )
    assert (q.int8_tensors, q.int4_tensors) == ((0, 2) if kind == "int4" else (2, 0))
    if kind == "nbits":
        assert model.op_types == {"com.microsoft:MatMulNBits": 1}


def test_a_large_model_is_parsed_reading_only_its_structure(tmp_path: Path) -> None:
    inits = [
        numpy_helper.from_array(np.full((256, 1024), i, np.float32), f"w{i}") for i in range(20)
    ]
    nodes = [helper.make_node("Relu", [f"w{i}"], [f"r{i}"]) for i in range(20)]
    proto = helper.make_model(helper.make_graph(nodes, "big", [], [], inits))
    path = tmp_path / "big.onnx"
    onnx.save_model(proto, path)
    data = path.read_bytes()
    assert len(data) > 20 << 20
    reads: list[tuple[int, int]] = []

    def pread(n: int, offset: int) -> bytes:
        reads.append((offset, offset + n))
        return data[offset : offset + n]

    tracemalloc.start()
    model = onnx_graph.walk_model(WireReader(pread, len(data), "big.onnx"))
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    check_against_onnx(model, proto, data)
    assert model.bytes_read == sum(b - a for a, b in reads) < 64 << 10
    assert peak < 1 << 20
    payloads = [(t.start or 0, t.end or 0) for t in model.tensors]
    overlap = sum(max(0, min(b, d) - max(a, c)) for a, b in reads for c, d in payloads)
    # The read-ahead restarts small after each payload; before the first it may have grown
    # as large as the structure before it.
    assert overlap <= 256 * len(payloads) + payloads[0][0]


def test_unknown_fields_of_every_wire_type_are_skipped() -> None:
    unknown = vfield(900, 5) + key(901, 1) + bytes(8) + lfield(902, b"xyz") + key(903, 5) + bytes(4)
    tensor = hand_tensor("w", 1, [2], raw=bytes(8), extra=unknown)
    node = lfield(4, "Relu") + unknown + lfield(5, lfield(1, "alpha") + unknown)
    data = hand_model(initializer(tensor) + lfield(1, node) + unknown, extra=unknown)
    model = parse_onnx_bytes(data, "m.onnx")
    (t,) = model.tensors
    assert data[t.start : t.end] == bytes(8) and model.op_types == {"Relu": 1}
    check_tiling(model)


def test_dims_may_be_unpacked_and_in_pieces() -> None:
    dims = vfield(1, 2) + lfield(1, varint(3) + varint(1))
    data = hand_model(initializer(dims + vfield(2, 1) + lfield(8, "w") + lfield(9, bytes(24))))
    assert parse_onnx_bytes(data, "m.onnx").tensors[0].dims == (2, 3, 1)


def test_detection_is_by_extension() -> None:
    assert looks_like_onnx(b"\x08\x08\x12", "model.onnx")
    assert not looks_like_onnx(b"\x08\x08\x12", "saved_model.pb")
    assert not looks_like_onnx(b"", "model.onnx.data")


# -- malformed files -------------------------------------------------------------------------


def _top_level_boundaries(data: bytes) -> set[int]:
    """Where each top-level field of a ModelProto ends (an independent little decoder)."""
    out, pos = {0}, 0
    while pos < len(data):
        start = pos
        while data[pos] & 0x80:
            pos += 1
        pos += 1
        if decode_varints(data[start:pos])[0] & 7 == 0:
            while data[pos] & 0x80:
                pos += 1
            pos += 1
        else:
            start = pos
            while data[pos] & 0x80:
                pos += 1
            pos += 1
            pos += decode_varints(data[start:pos])[0]
        out.add(pos)
    return out


def test_truncated_at_every_byte_fails_with_a_stable_code() -> None:
    proto = rich_model()
    data = proto.SerializeToString()
    whole = parse_onnx_bytes(data, "m.onnx")
    boundaries = _top_level_boundaries(data)
    for cut in range(len(data)):
        try:
            model = parse_onnx_bytes(data[:cut], "m.onnx")
        except FormatError as exc:
            assert exc.code in (Code.ONNX_TRUNCATED, Code.ONNX_MALFORMED), (cut, exc)
            if cut not in boundaries:
                assert exc.code == Code.ONNX_TRUNCATED, (cut, exc)
        else:  # a shorter, complete protobuf: only between two top-level fields
            assert cut in boundaries and model.tensors == whole.tensors[: len(model.tensors)]


GOOD_TENSOR = initializer(hand_tensor("w", 1, [2], raw=bytes(8)))


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (b"", Code.ONNX_MALFORMED),  # no graph
        (vfield(1, 8) + lfield(7, GOOD_TENSOR), Code.ONNX_MALFORMED),  # no opset
        (lfield(7, GOOD_TENSOR) + lfield(8, vfield(2, 17)), Code.ONNX_MALFORMED),  # no ir_version
        (b"\x08" + b"\xff" * 10 + b"\x01", Code.ONNX_MALFORMED),  # an 11-byte varint
        (b"\x08" + b"\xff" * 9 + b"\x02", Code.ONNX_MALFORMED),  # past 64 bits
        (b"\x08" + b"\xff" * 3, Code.ONNX_TRUNCATED),  # a varint cut by the end of the file
        (b"\x00\x01", Code.ONNX_MALFORMED),  # field number 0
        (varint(1 << 32 | 0) + b"\x01", Code.ONNX_MALFORMED),  # field number past 2^29 - 1
        (vfield(7, 1), Code.ONNX_MALFORMED),  # graph as a varint
        (lfield(1, b"\x08"), Code.ONNX_MALFORMED),  # ir_version length-delimited
        (key(99, 3), Code.ONNX_MALFORMED),  # a group, wire type 3
        (key(99, 4), Code.ONNX_MALFORMED),
        (key(99, 6) + bytes(8), Code.ONNX_MALFORMED),
        (key(99, 7) + bytes(8), Code.ONNX_MALFORMED),
        (key(99, 1) + bytes(7), Code.ONNX_TRUNCATED),
        (key(7, 2) + varint(100) + bytes(10), Code.ONNX_TRUNCATED),  # a length past the file
        (hand_model(GOOD_TENSOR) + lfield(7, GOOD_TENSOR), Code.ONNX_MALFORMED),  # two graphs
        (hand_model(GOOD_TENSOR, extra=vfield(1, 9)), Code.ONNX_MALFORMED),  # two ir_versions
        (hand_model(GOOD_TENSOR, extra=lfield(2, b"\xff\xfe")), Code.ONNX_MALFORMED),  # not UTF-8
        (hand_model(lfield(1, lfield(4, b"\xc3"))), Code.ONNX_MALFORMED),  # op_type not UTF-8
        (hand_model(b"", extra=lfield(8, vfield(2, 1))), Code.ONNX_MALFORMED),  # opset twice
        (hand_model(b"", extra=lfield(8, lfield(1, "x"))), Code.ONNX_MALFORMED),  # no version
        (hand_model(b"", extra=2 * lfield(14, lfield(1, "k"))), Code.ONNX_MALFORMED),
        (hand_model(GOOD_TENSOR + GOOD_TENSOR), Code.ONNX_DUPLICATE_TENSOR),
    ],
)
def test_malformed_structure(data: bytes, code: Code) -> None:
    assert code_of(data) == code


def test_a_length_past_its_parent_message_is_malformed() -> None:
    node = lfield(4, "Relu")
    graph = lfield(1, node)
    bad = graph[:1] + varint(len(node) - 1) + graph[2:]  # the node is 1 byte shorter than it says
    assert code_of(hand_model(bad + lfield(2, "g"))) == Code.ONNX_MALFORMED
    inner = lfield(1, lfield(5, lfield(1, "a") + key(5, 2) + varint(50) + bytes(3)))
    assert code_of(hand_model(inner + bytes(60))) == Code.ONNX_MALFORMED


def _tensor(extra: bytes, data_type: int = 1, dims: list[int] | None = None) -> bytes:
    return hand_model(initializer(hand_tensor("w", data_type, [2] if dims is None else dims,
                                              extra=extra)))  # fmt: skip


def _ext(**keys: str) -> bytes:
    return b"".join(lfield(13, lfield(1, k) + lfield(2, v)) for k, v in keys.items())


@pytest.mark.parametrize(
    "data",
    [
        _tensor(lfield(9, bytes(8)), data_type=99),  # unknown data type
        _tensor(lfield(9, bytes(8)), data_type=0),  # UNDEFINED
        _tensor(lfield(9, bytes(8)), data_type=1 << 32 | 1),  # only 1 in its low 32 bits
        _tensor(lfield(9, bytes(8)), dims=[(1 << 64) - 2]),  # dims -2
        _tensor(lfield(9, bytes(7))),  # raw_data one byte short
        _tensor(lfield(4, bytes(12))),  # float_data of 3 floats for 2 elements
        _tensor(lfield(7, bytes(2)), data_type=1),  # int64_data for a FLOAT tensor
        _tensor(lfield(9, bytes(16)), data_type=8),  # STRING in raw_data
        _tensor(lfield(6, b"a"), data_type=8),  # one string for two elements
        _tensor(lfield(6, b"a") + lfield(12, "x") + lfield(6, b"b"), data_type=8),  # a gap
        _tensor(key(4, 5) + bytes(4) + key(4, 5) + bytes(4)),  # unpacked float_data
        _tensor(lfield(4, bytes(4)) + lfield(4, bytes(4))),  # float_data in two pieces
        _tensor(lfield(9, bytes(8)) + lfield(4, bytes(8))),  # two data fields
        _tensor(lfield(7, bytes(40)), data_type=7, dims=[3]),  # 40 bytes cannot be 3 varints
        _tensor(b""),  # no data for 2 elements
        _tensor(lfield(9, bytes(8)) + lfield(3, vfield(1, 0))),  # a segment
        _tensor(lfield(9, bytes(8)) + vfield(14, 2)),  # data_location 2
        _tensor(vfield(14, 1)),  # EXTERNAL without a location
        _tensor(_ext(location="w.bin")),  # external_data, data_location DEFAULT
        _tensor(_ext(location="w.bin") + vfield(14, 1) + lfield(9, bytes(8))),  # and inline
        _tensor(_ext(location="w.bin", mode="rw") + vfield(14, 1)),  # an unknown key
        _tensor(_ext(location="w.bin") + _ext(location="x.bin") + vfield(14, 1)),  # key twice
        _tensor(_ext(location="w.bin", length="9") + vfield(14, 1)),  # 2 floats are 8 bytes
        _tensor(_ext(location="w.bin") + vfield(14, 1), data_type=8),  # external STRING
    ],
)
def test_bad_tensors(data: bytes) -> None:
    e = error_of(data)
    assert e.code == Code.ONNX_BAD_TENSOR, e
    assert e.tensor == "w" and "'w'" in e.message


@pytest.mark.parametrize(
    "text", ["-1", "+1", " 1", "1 ", "0x10", "1e3", "", "١", "9223372036854775808"]
)
def test_external_offsets_and_lengths_are_plain_decimal_int64(text: str) -> None:
    for key_name in ("offset", "length"):
        data = _tensor(_ext(location="w.bin", **{key_name: text}) + vfield(14, 1))
        assert code_of(data) == Code.ONNX_BAD_TENSOR
    ok = _tensor(_ext(location="w.bin", offset="9223372036854775807") + vfield(14, 1))
    assert parse_onnx_bytes(ok, "m.onnx").tensors[0].external.offset == (1 << 63) - 1  # type: ignore[union-attr]


def test_unnamed_initializers_are_refused() -> None:
    data = hand_model(initializer(vfield(2, 1) + lfield(9, b"")))
    assert code_of(data) == Code.ONNX_BAD_TENSOR
    sparse = lfield(15, lfield(1, vfield(2, 1) + lfield(9, b"")))
    assert code_of(hand_model(sparse)) == Code.ONNX_BAD_TENSOR


# -- bounds ----------------------------------------------------------------------------------


def _nested_if(depth: int) -> bytes:
    """A model whose graphs nest ``depth`` deep (the main graph is 1)."""
    graph = lfield(1, lfield(4, "Relu"))
    for _ in range(depth - 1):
        graph = lfield(1, lfield(4, "If") + lfield(5, lfield(1, "then_branch") + lfield(6, graph)))
    return hand_model(graph)


def test_subgraphs_nest_at_most_max_depth() -> None:
    assert parse_onnx_bytes(_nested_if(MAX_DEPTH), "m.onnx").op_types["If"] == MAX_DEPTH - 1
    assert code_of(_nested_if(MAX_DEPTH + 1)) == Code.ONNX_TOO_DEEP


def test_bounds_on_structure_tensors_nodes_and_dims(monkeypatch: pytest.MonkeyPatch) -> None:
    data = rich_model().SerializeToString()
    with pytest.raises(FormatError) as e:
        onnx_graph.walk_model(WireReader(bytes_pread(data), len(data), "m", budget=len(data) // 2))
    assert e.value.code == Code.ONNX_TOO_LARGE
    assert code_of(_tensor(lfield(9, bytes(8)), dims=[2] + [1] * 64)) == Code.ONNX_TOO_LARGE
    monkeypatch.setattr(onnx_graph, "MAX_TENSORS", 3)
    assert code_of(data) == Code.ONNX_TOO_LARGE
    monkeypatch.setattr(onnx_graph, "MAX_TENSORS", 100)
    monkeypatch.setattr(onnx_graph, "MAX_NODES", 3)
    assert code_of(data) == Code.ONNX_TOO_LARGE


def test_a_file_that_shrinks_while_read_is_truncated() -> None:
    data = rich_model().SerializeToString()
    reader = WireReader(lambda n, off: data[off : off + n][:-1], len(data), "m")
    with pytest.raises(FormatError) as e:
        onnx_graph.walk_model(reader)
    assert e.value.code == Code.ONNX_TRUNCATED


def test_the_read_budget_is_the_module_constant() -> None:
    assert onnx_wire.MAX_READ == 64 << 20


# -- external data locations -----------------------------------------------------------------

HOSTILE = [
    ("", Code.ONNX_EXTERNAL_EMPTY),
    ("w\0.bin", Code.ONNX_EXTERNAL_NUL),
    ("/etc/passwd", Code.ONNX_EXTERNAL_ABSOLUTE),
    ("//server/share/w.bin", Code.ONNX_EXTERNAL_ABSOLUTE),
    ("C:\\weights\\w.bin", Code.ONNX_EXTERNAL_ABSOLUTE),
    ("c:w.bin", Code.ONNX_EXTERNAL_ABSOLUTE),
    ("\\\\server\\share\\w.bin", Code.ONNX_EXTERNAL_ABSOLUTE),
    ("*/_ORT_MEM_ADDR_/*", Code.ONNX_EXTERNAL_ABSOLUTE),
    ("sub\\w.bin", Code.ONNX_EXTERNAL_BACKSLASH),
    ("..\\w.bin", Code.ONNX_EXTERNAL_BACKSLASH),
    ("../w.bin", Code.ONNX_EXTERNAL_PARENT),
    ("sub/../../w.bin", Code.ONNX_EXTERNAL_PARENT),
    ("sub/..", Code.ONNX_EXTERNAL_PARENT),
]


@pytest.mark.parametrize(("location", "code"), HOSTILE)
def test_hostile_locations_are_refused_in_the_model(location: str, code: Code) -> None:
    e = error_of(_tensor(_ext(location=location) + vfield(14, 1)))
    assert (e.code, e.tensor, e.path) == (code, "w", "m.onnx")
    assert "tensor 'w'" in e.message and repr(location[:200]) in e.message


@pytest.mark.parametrize(("location", "code"), HOSTILE)
def test_hostile_locations_are_refused_before_any_file_access(
    location: str, code: Code, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_access(*args: object, **kwargs: object) -> None:
        raise AssertionError("the file system was touched")

    monkeypatch.setattr(os.path, "realpath", no_access)
    monkeypatch.setattr(os, "stat", no_access)
    with pytest.raises(FormatError) as e:
        resolve_external(str(tmp_path), "m.onnx", location, tensor="w")
    assert (e.value.code, e.value.tensor) == (code, "w")


def test_resolve_external_on_the_file_system(tmp_path: Path) -> None:
    root = tmp_path / "model"
    (root / "sub").mkdir(parents=True)
    (root / "sub" / "w.bin").write_bytes(b"x")
    (root / "top.bin").write_bytes(b"x")
    (tmp_path / "outside.bin").write_bytes(b"x")
    (root / "sub" / "out").symlink_to(tmp_path / "outside.bin")
    (root / "sub" / "in").symlink_to(root / "top.bin")
    (root / "sub" / "dir").mkdir()
    os.mkfifo(root / "sub" / "fifo")

    def resolve(location: str) -> str:
        return resolve_external(str(root), "sub/m.onnx", location)

    assert resolve("w.bin") == "sub/w.bin"
    assert resolve("./w.bin") == "sub/w.bin"
    assert resolve("in") == "sub/in"  # a symlink that stays in the folder
    assert resolve_external(str(root), "m.onnx", "sub//w.bin") == "sub/w.bin"
    for location, code in [
        ("out", Code.ONNX_EXTERNAL_ESCAPE),
        ("missing.bin", Code.ONNX_EXTERNAL_MISSING),
        ("dir", Code.ONNX_EXTERNAL_MISSING),
        ("fifo", Code.ONNX_EXTERNAL_MISSING),  # never opened: no hang
        (".", Code.ONNX_EXTERNAL_MISSING),
    ]:
        with pytest.raises(FormatError) as e:
            resolve(location)
        assert e.value.code == code, location
        assert e.value.path == "sub/m.onnx"


def test_a_vetted_file_resolves_inside_the_folder_discovery_gave_it(tmp_path: Path) -> None:
    """A Hugging Face snapshot: its data file links into the repo's blobs, out of the snapshot."""
    repo = tmp_path / "models--acme--tiny"
    snap, blobs = repo / "snapshots" / ("a" * 40), repo / "blobs"
    snap.mkdir(parents=True)
    blobs.mkdir()
    (blobs / "1234").write_bytes(b"x")
    (tmp_path / "elsewhere.bin").write_bytes(b"x")
    (snap / "w.bin").symlink_to("../../blobs/1234")
    (snap / "out.bin").symlink_to(tmp_path / "elsewhere.bin")
    within = {"w.bin": str(tmp_path), "out.bin": str(repo)}
    with pytest.raises(FormatError) as e:  # bounded by the snapshot: the blob is outside
        resolve_external(str(snap), "m.onnx", "w.bin", tensor="W")
    assert e.value.code == Code.ONNX_EXTERNAL_ESCAPE and str(snap) in e.value.message
    assert resolve_external(str(snap), "m.onnx", "w.bin", within=within) == "w.bin"
    with pytest.raises(FormatError) as e:  # its own bound is the repo: this link leaves it
        resolve_external(str(snap), "m.onnx", "out.bin", tensor="W", within=within)
    assert (e.value.code, e.value.tensor) == (Code.ONNX_EXTERNAL_ESCAPE, "W")
    assert str(repo) in e.value.message
    with pytest.raises(FormatError) as e:  # a name discovery did not vet: bounded by the root
        resolve_external(str(snap), "m.onnx", "w.bin", within={"other.bin": str(tmp_path)})
    assert e.value.code == Code.ONNX_EXTERNAL_ESCAPE
