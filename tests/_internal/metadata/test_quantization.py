"""Quantization: measured dtype mixes and declared schemes."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from modelsign import build_manifest
from modelsign._internal.formats.layout import MetadataValue, TensorSpan, WeightLayout
from modelsign._internal.formats.numpy_format import read_numpy
from modelsign._internal.metadata.quantization import (
    FileQuantization,
    file_quantization,
    is_quantized_dtype,
    model_quantization,
)
from tests.helpers.onnx_files import quantized_model
from tests.helpers.torch_files import read_file, save

# (elements per block, bytes per block) from gguf.GGML_QUANT_SIZES / safetensors dtypes.
_SIZES = {
    "F32": (1, 4),
    "F16": (1, 2),
    "BF16": (1, 2),
    "I32": (1, 4),
    "I64": (1, 8),
    "U8": (1, 1),
    "I8": (1, 1),
    "F8_E4M3": (1, 1),
    "Q8_0": (32, 34),
    "Q4_K": (256, 144),
    "Q6_K": (256, 210),
}


def layout(
    fmt: str,
    tensors: Sequence[tuple[str, str, tuple[int, ...]]],
    metadata: dict[str, MetadataValue] | None = None,
) -> WeightLayout:
    """A layout with tensors packed back to back after a 64-byte header."""
    spans = []
    offset = 64
    for name, dtype, shape in tensors:
        n = 1
        for d in shape:
            n *= d
        block, size = _SIZES[dtype]
        nbytes = n // block * size
        spans.append(TensorSpan(name, dtype, shape, offset, offset + nbytes, n))
        offset += nbytes
    return WeightLayout(
        format="gguf" if fmt == "gguf" else "safetensors",
        file_size=offset,
        header_size=64,
        tensors=tuple(spans),
        metadata=metadata or {},
    )


def llama_gguf(file_type: int, main: str, *, scale: int = 1) -> WeightLayout:
    return layout(
        "gguf",
        [
            ("token_embd.weight", "Q6_K", (4096, 256 * scale)),
            ("blk.0.attn_norm.weight", "F32", (4096,)),
            ("blk.0.attn_q.weight", main, (4096, 4096 * scale)),
            ("blk.0.ffn_up.weight", main, (4096, 11008 * scale)),
        ],
        {"general.architecture": "llama", "general.file_type": file_type},
    )


def float_safetensors(dtype: str = "BF16") -> WeightLayout:
    return layout(
        "safetensors",
        [
            ("model.embed_tokens.weight", dtype, (32000, 64)),
            ("model.layers.0.input_layernorm.weight", "F32", (64,)),
            ("model.layers.0.self_attn.q_proj.weight", dtype, (64, 64)),
        ],
    )


def test_bits_per_weight_of_block_types() -> None:
    q8 = file_quantization(layout("gguf", [("w", "Q8_0", (32, 64))]))
    assert q8.bits_per_weight == 8.5
    q4 = file_quantization(layout("gguf", [("w", "Q4_K", (256, 16))]))
    assert q4.bits_per_weight == 4.5
    f16 = file_quantization(layout("safetensors", [("w", "F16", (8, 8))]))
    assert f16.bits_per_weight == 16.0


def test_file_quantization_mixed_gguf() -> None:
    fq = file_quantization(llama_gguf(15, "Q4_K"))
    assert fq.file_type == "MOSTLY_Q4_K_M"
    assert list(fq.dtypes) == ["F32", "Q4_K", "Q6_K"]
    assert fq.dtypes["F32"].tensors == 1
    assert fq.dtypes["F32"].bytes == 4096 * 4
    q4_elements = 4096 * 4096 + 4096 * 11008
    assert fq.dtypes["Q4_K"].elements == q4_elements
    assert fq.dtypes["Q4_K"].bytes == q4_elements // 256 * 144
    assert fq.tensors == 4
    assert fq.elements == sum(s.elements for s in fq.dtypes.values())
    assert fq.bytes == sum(s.bytes for s in fq.dtypes.values())
    assert fq.bits_per_weight == round(8 * fq.bytes / fq.elements, 4)


def test_file_quantization_floats_and_empty() -> None:
    fq = file_quantization(layout("safetensors", [("a", "F32", (3, 3)), ("b", "BF16", (2,))]))
    assert fq.file_type is None
    assert fq.dtypes["F32"].bytes == 36 and fq.dtypes["BF16"].bytes == 4
    empty = file_quantization(layout("gguf", [], {"general.file_type": 1}))
    assert (empty.elements, empty.bits_per_weight, empty.file_type) == (0, None, "MOSTLY_F16")


def test_unknown_file_type() -> None:
    fq = file_quantization(llama_gguf(99, "Q4_K"))
    assert fq.file_type == "UNKNOWN_99"
    quant, findings = model_quantization({"m.gguf": fq}, None, None)
    assert [f.code for f in findings] == ["QUANTIZATION_FILE_TYPE_UNKNOWN"]
    assert findings[0].path == "m.gguf"
    # The tensors are Q4_K, so the unknown type still names the scheme.
    assert quant.quantized and quant.scheme == "UNKNOWN_99"


def test_unknown_file_type_over_floats_is_not_a_scheme() -> None:
    fq = file_quantization(llama_gguf(99, "F16"))
    quant, findings = model_quantization({"m.gguf": fq}, None, None)
    assert not quant.quantized and quant.scheme is None
    assert [f.code for f in findings] == ["QUANTIZATION_FILE_TYPE_UNKNOWN"]


def test_gguf_q4_k_m() -> None:
    fq = file_quantization(llama_gguf(15, "Q4_K"))
    quant, findings = model_quantization({"llama-Q4_K_M.gguf": fq}, None, None)
    assert findings == []
    assert quant.quantized
    assert quant.scheme == "MOSTLY_Q4_K_M"
    assert quant.source == "llama-Q4_K_M.gguf:general.file_type"
    assert quant.method is None and quant.bits is None
    assert quant.bits_per_weight == fq.bits_per_weight


def test_gguf_float_file_types_are_not_quantized() -> None:
    for file_type, dtype in ((0, "F32"), (1, "F16"), (32, "BF16")):
        fq = file_quantization(llama_gguf(file_type, dtype))
        quant, findings = model_quantization({"m.gguf": fq}, None, None)
        assert not quant.quantized, file_type
        assert quant.scheme is None and quant.source is None
        assert findings == []


def test_q8_0_without_file_type_is_quantized_by_tensors() -> None:
    fq = file_quantization(layout("gguf", [("w", "Q8_0", (32, 1024)), ("n", "F32", (32,))]))
    quant, findings = model_quantization({"m.gguf": fq}, None, None)
    assert quant.quantized and quant.scheme is None
    assert findings == []


def test_mixed_gguf_files_record_largest() -> None:
    small = file_quantization(llama_gguf(15, "Q4_K"))
    large = file_quantization(llama_gguf(7, "Q8_0"))
    quant, findings = model_quantization({"a-Q4_K_M.gguf": small, "b-Q8_0.gguf": large}, None, None)
    assert [f.code for f in findings] == ["QUANTIZATION_MIXED"]
    assert "a-Q4_K_M.gguf=MOSTLY_Q4_K_M" in findings[0].message
    assert "b-Q8_0.gguf=MOSTLY_Q8_0" in findings[0].message
    assert quant.scheme == "MOSTLY_Q8_0"
    assert quant.source == "b-Q8_0.gguf:general.file_type"
    total_bits = 8 * (small.bytes + large.bytes) / (small.elements + large.elements)
    assert quant.bits_per_weight == round(total_bits, 4)


def test_gguf_claims_quantized_but_tensors_are_float() -> None:
    fl = layout("gguf", [("w", "F16", (64, 64)), ("n", "F32", (64,))], {"general.file_type": 15})
    fq = file_quantization(fl)
    quant, findings = model_quantization({"m.gguf": fq}, None, None)
    assert quant.quantized and quant.scheme == "MOSTLY_Q4_K_M"
    assert [f.code for f in findings] == ["QUANTIZATION_MISMATCH"]


def test_unquantized_safetensors() -> None:
    files = {"model.safetensors": file_quantization(float_safetensors())}
    quant, findings = model_quantization(files, {"model_type": "llama"}, "config.json")
    assert findings == []
    assert not quant.quantized
    assert quant.scheme is None and quant.details == {}


GPTQ = {
    "quant_method": "gptq",
    "bits": 4,
    "group_size": 128,
    "desc_act": False,
    "sym": True,
    "damp_percent": 0.01,
    "checkpoint_format": "gptq",
    "true_sequential": True,
    "modules_in_block_to_quantize": None,
    "exllama_config": {"version": 1},
}


def gptq_files() -> dict[str, FileQuantization]:
    fl = layout(
        "safetensors",
        [
            ("model.layers.0.self_attn.q_proj.qweight", "I32", (512, 4096)),
            ("model.layers.0.self_attn.q_proj.qzeros", "I32", (32, 512)),
            ("model.layers.0.self_attn.q_proj.scales", "F16", (32, 4096)),
            ("model.layers.0.self_attn.q_proj.g_idx", "I32", (4096,)),
        ],
    )
    return {"model.safetensors": file_quantization(fl)}


def test_gptq() -> None:
    quant, findings = model_quantization(gptq_files(), {"quantization_config": GPTQ}, "config.json")
    assert findings == []
    assert quant.quantized
    assert (quant.scheme, quant.method, quant.bits, quant.group_size, quant.format) == (
        "gptq",
        "gptq",
        4,
        128,
        "gptq",
    )
    assert quant.source == "config.json:quantization_config"
    assert quant.details == {
        "damp_percent": 0.01,
        "desc_act": False,
        "modules_in_block_to_quantize": None,
        "sym": True,
        "true_sequential": True,
    }
    assert list(quant.details) == sorted(quant.details)


def test_awq() -> None:
    qc = {
        "quant_method": "awq",
        "bits": 4,
        "group_size": 128,
        "zero_point": True,
        "version": "gemm",
        "modules_to_not_convert": None,
    }
    quant, findings = model_quantization(
        gptq_files(), {"quantization_config": qc}, "sub/config.json"
    )
    assert findings == []
    assert (quant.scheme, quant.bits, quant.group_size, quant.format) == ("awq", 4, 128, "gemm")
    assert quant.source == "sub/config.json:quantization_config"
    assert quant.details == {"modules_to_not_convert": None, "zero_point": True}


def test_bitsandbytes_nf4() -> None:
    qc = {
        "_load_in_4bit": True,
        "_load_in_8bit": False,
        "bnb_4bit_compute_dtype": "bfloat16",
        "bnb_4bit_quant_storage": "uint8",
        "bnb_4bit_quant_type": "nf4",
        "bnb_4bit_use_double_quant": True,
        "llm_int8_enable_fp32_cpu_offload": False,
        "llm_int8_has_fp16_weight": False,
        "llm_int8_skip_modules": None,
        "llm_int8_threshold": 6.0,
        "load_in_4bit": True,
        "load_in_8bit": False,
        "quant_method": "bitsandbytes",
    }
    packed = layout(
        "safetensors",
        [
            ("model.layers.0.mlp.up_proj.weight", "U8", (2048 * 512, 1)),
            ("model.layers.0.mlp.up_proj.weight.absmax", "F32", (256,)),
            ("model.norm.weight", "BF16", (64,)),
        ],
    )
    files = {"model.safetensors": file_quantization(packed)}
    quant, findings = model_quantization(files, {"quantization_config": qc}, "config.json")
    assert findings == []
    assert (quant.scheme, quant.bits, quant.format, quant.group_size) == (
        "bitsandbytes",
        4,
        "nf4",
        None,
    )
    assert quant.details["bnb_4bit_use_double_quant"] is True
    assert quant.details["llm_int8_threshold"] == 6.0
    assert "load_in_4bit" not in quant.details and "_load_in_4bit" not in quant.details


def test_bitsandbytes_8bit_without_quant_method() -> None:
    quant, _ = model_quantization({}, {"quantization_config": {"load_in_8bit": True}}, None)
    assert (quant.scheme, quant.method, quant.bits) == ("bitsandbytes", None, 8)
    assert quant.source == "config.json:quantization_config"


def test_fp8() -> None:
    qc = {
        "quant_method": "fp8",
        "activation_scheme": "dynamic",
        "fmt": "e4m3",
        "weight_block_size": [128, 128],
    }
    fp8 = layout(
        "safetensors",
        [
            ("model.layers.0.mlp.up_proj.weight", "F8_E4M3", (1024, 1024)),
            ("model.layers.0.mlp.up_proj.weight_scale_inv", "F32", (8, 8)),
        ],
    )
    files = {"model-00001-of-00001.safetensors": file_quantization(fp8)}
    quant, findings = model_quantization(files, {"quantization_config": qc}, "config.json")
    assert findings == []
    assert (quant.scheme, quant.bits) == ("fp8", 8)
    assert quant.details == {
        "activation_scheme": "dynamic",
        "fmt": "e4m3",
        "weight_block_size": "128x128",
    }


def test_fp8_tensors_alone_are_quantized() -> None:
    fp8 = layout("safetensors", [("w", "F8_E4M3", (64, 64)), ("n", "BF16", (64,))])
    quant, _ = model_quantization({"m.safetensors": file_quantization(fp8)}, None, None)
    assert quant.quantized and quant.scheme is None


def test_compressed_tensors() -> None:
    qc = {
        "quant_method": "compressed-tensors",
        "format": "pack-quantized",
        "quantization_status": "compressed",
        "config_groups": {
            "group_0": {
                "targets": ["Linear"],
                "weights": {
                    "num_bits": 4,
                    "type": "int",
                    "symmetric": True,
                    "strategy": "group",
                    "group_size": 128,
                    "dynamic": False,
                },
                "input_activations": None,
            }
        },
        "ignore": ["lm_head"],
        "kv_cache_scheme": None,
    }
    quant, findings = model_quantization(gptq_files(), {"quantization_config": qc}, "config.json")
    assert findings == []
    assert (quant.scheme, quant.bits, quant.group_size, quant.format) == (
        "compressed-tensors",
        4,
        128,
        "pack-quantized",
    )
    assert quant.details == {
        "kv_cache_scheme": None,
        "quantization_status": "compressed",
        "weights.strategy": "group",
        "weights.symmetric": True,
        "weights.type": "int",
    }


def test_compressed_tensors_groups_disagree() -> None:
    qc = {
        "quant_method": "compressed-tensors",
        "config_groups": {
            "a": {"weights": {"num_bits": 4, "type": "int"}},
            "b": {"weights": {"num_bits": 8, "type": "int"}},
        },
    }
    quant, _ = model_quantization({}, {"quantization_config": qc}, "config.json")
    assert quant.bits is None
    assert quant.details == {"weights.num_bits": "4,8", "weights.type": "int"}


def test_unknown_method_is_recorded() -> None:
    qc = {"quant_method": "HQQ", "nbits": 4, "axis": 1, "quant_config": {"x": 1}}
    quant, findings = model_quantization({}, {"quantization_config": qc}, "config.json")
    assert findings == []
    assert (quant.scheme, quant.method, quant.bits) == ("hqq", "HQQ", 4)
    assert quant.details == {"axis": 1}


def test_config_without_method() -> None:
    quant, findings = model_quantization({}, {"quantization_config": {"foo": 1}}, "config.json")
    assert quant.quantized and quant.scheme == "unknown"
    assert [f.code for f in findings] == ["QUANTIZATION_CONFIG_INVALID"]


def test_config_not_an_object() -> None:
    quant, findings = model_quantization({}, {"quantization_config": "gptq"}, "config.json")
    assert not quant.quantized
    assert [(f.code, f.path) for f in findings] == [("QUANTIZATION_CONFIG_INVALID", "config.json")]


def test_config_claims_scheme_over_float_tensors() -> None:
    files = {
        "model.safetensors": file_quantization(
            layout(
                "safetensors",
                [("w", "F32", (64, 64)), ("embeddings.position_ids", "I64", (1, 512))],
            )
        )
    }
    quant, findings = model_quantization(files, {"quantization_config": GPTQ}, "config.json")
    assert quant.quantized and quant.scheme == "gptq"
    assert [f.code for f in findings] == ["QUANTIZATION_MISMATCH"]
    assert "config.json:quantization_config declares gptq" in findings[0].message


def test_dtype_classification() -> None:
    quantized = ["Q4_0", "Q8_0", "Q4_K", "IQ2_XXS", "TQ1_0", "MXFP4", "NVFP4", "F8_E4M3", "F4"]
    quantized += ["F6_E2M3", "I8", "U8", "INT4", "UINT4", "INT2", "UINT2"]
    plain = ["F32", "F16", "BF16", "F64", "I32", "I64", "BOOL"]
    assert all(is_quantized_dtype(d) for d in quantized)
    assert not any(is_quantized_dtype(d) for d in plain)


def test_deterministic() -> None:
    def run() -> tuple[str, str]:
        files = {
            "b.gguf": file_quantization(llama_gguf(7, "Q8_0")),
            "a.gguf": file_quantization(llama_gguf(15, "Q4_K")),
        }
        quant, findings = model_quantization(files, {"quantization_config": GPTQ}, "config.json")
        return quant.model_dump_json(), "".join(f.model_dump_json() for f in findings)

    assert run() == run()
    a = file_quantization(layout("gguf", [("x", "Q4_K", (256,)), ("y", "F32", (1,))]))
    b = file_quantization(layout("gguf", [("y", "F32", (1,)), ("x", "Q4_K", (256,))]))
    assert a.model_dump_json() == b.model_dump_json()
    assert list(a.dtypes) == ["F32", "Q4_K"]


def _npz_quantization(path: Path) -> FileQuantization:
    data = path.read_bytes()
    found = read_numpy(lambda n, at: data[at : at + n], len(data), path.name)
    return file_quantization(found.layout)


def test_deflated_npz_members_count_their_values_not_their_compressed_bytes(
    tmp_path: Path,
) -> None:
    arrays = {"w": np.zeros((64, 64), np.float32), "b": np.arange(64, dtype=np.int64)}
    np.savez(tmp_path / "stored.npz", **arrays)  # type: ignore[arg-type]
    np.savez_compressed(tmp_path / "packed.npz", **arrays)  # type: ignore[arg-type]
    packed = _npz_quantization(tmp_path / "packed.npz")
    # zeros deflate to a few hundred bytes: a ratio of them would be under 1 bit per weight
    assert (tmp_path / "packed.npz").stat().st_size < 64 * 64
    assert packed == _npz_quantization(tmp_path / "stored.npz")
    assert packed.dtypes["F32"].bytes == 64 * 64 * 4 and packed.dtypes["I64"].bytes == 64 * 8
    assert packed.bits_per_weight == round(8 * (64 * 64 * 4 + 64 * 8) / (64 * 64 + 64), 4)


def test_strided_torch_views_count_their_values_not_their_extent(tmp_path: Path) -> None:
    base = torch.arange(12, dtype=torch.float32).reshape(3, 4)
    path = save({"base": base, "cols": base[:, :2]}, tmp_path / "m.bin")
    layout = read_file(path).layout
    assert layout is not None
    cols = next(t for t in layout.tensors if t.name == "cols")
    assert cols.nbytes == (2 * 4 + 2) * 4  # rows 0-1 whole, two elements of row 2
    fq = file_quantization(layout)
    assert fq.dtypes["F32"].bytes == (12 + 6) * 4 and fq.bits_per_weight == 32.0


@pytest.mark.parametrize(
    ("kind", "scheme", "bits", "external"),
    [
        ("qdq", "onnx-qdq", 8, True),
        ("int4", "onnx-qdq", 4, False),
        ("qlinear", "onnx-qlinear", 8, True),
        ("nbits", "onnx-int4-matmulnbits", 4, False),
    ],
)
def test_an_onnx_graph_feeds_the_model_summary(
    tmp_path: Path, kind: str, scheme: str, bits: int, external: bool
) -> None:
    options = {"location": "m.bin", "size_threshold": 0} if external else {}
    onnx.save_model(
        quantized_model(kind), tmp_path / "m.onnx", save_as_external_data=external, **options
    )
    m = build_manifest(tmp_path, env={})
    q = m.quantization
    assert (q.quantized, q.scheme, q.bits, q.source) == (True, scheme, bits, "m.onnx:graph")
    entry = m.file("m.onnx")
    assert entry is not None and entry.weights is not None
    assert (entry.weights.quantization.scheme, entry.weights.quantization.bits) == (scheme, bits)
    assert not [f for f in m.findings if f.code.startswith("QUANTIZATION")]
    if external:  # the weights are in the data file, the scheme in the model's graph
        data = m.file("m.bin")
        assert data is not None and data.weights is not None
        assert "I8" in data.weights.quantization.dtypes and data.weights.quantization.scheme is None


def _onnx_file(scheme: str, bits: int, dtype: str = "I8") -> FileQuantization:
    fq = file_quantization(layout("safetensors", [("w", dtype, (64, 64))]))
    return fq.model_copy(update={"scheme": scheme, "bits": bits})


def test_graph_schemes_come_after_a_config_and_disagreements_are_named() -> None:
    files = {"a.onnx": _onnx_file("onnx-qdq", 8), "b.onnx": _onnx_file("onnx-qlinear", 8)}
    quant, findings = model_quantization(files, None, None)
    assert (quant.scheme, quant.source) == ("onnx-qlinear", "b.onnx:graph")  # ties: the path
    assert [f.code for f in findings] == ["QUANTIZATION_MIXED"]
    assert "a.onnx=onnx-qdq, b.onnx=onnx-qlinear" in findings[0].message
    quant, findings = model_quantization(files, {"quantization_config": GPTQ}, "config.json")
    assert (quant.scheme, quant.source) == ("gptq", "config.json:quantization_config")


def test_a_graph_scheme_over_float_weights_is_a_mismatch() -> None:
    quant, findings = model_quantization({"m.onnx": _onnx_file("onnx-qdq", 8, "F32")}, None, None)
    assert quant.quantized and quant.scheme == "onnx-qdq"
    assert [f.code for f in findings] == ["QUANTIZATION_MISMATCH"]


def test_files_without_a_graph_scheme_serialize_as_before() -> None:
    fq = file_quantization(layout("safetensors", [("w", "F32", (4,))]))
    assert fq.scheme is None and "scheme" not in fq.model_dump_json()
    assert "bits" not in fq.model_dump(mode="json")
