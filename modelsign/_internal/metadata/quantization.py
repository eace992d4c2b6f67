"""How a model's weights are quantized: measured per file, declared per model.

``file_quantization`` measures what a weight file actually stores (dtype mix,
bits per weight, GGUF ``general.file_type``, the scheme an ONNX graph shows);
``model_quantization`` combines those measurements with the scheme a package
declares (the ``quantization_config`` of ``config.json`` in transformers'
conventions, GGUF file types, ONNX QDQ / QLinear / MatMulNBits graphs) and
records where the two disagree. Everything here is pure and deterministic: the
results go into a canonical manifest.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping

import gguf
from pydantic import BaseModel, ConfigDict, field_validator

from ...codes import Code
from .._json import SAFE_INT, added_field
from ..findings import Finding
from ..formats.layout import WeightLayout
from ..formats.onnx_layout import QUANTIZATION, QUANTIZATION_BITS

__all__ = [
    "DtypeStats",
    "FileQuantization",
    "ModelQuantization",
    "file_quantization",
    "is_quantized_dtype",
    "model_quantization",
]

Scalar = str | int | float | bool | None

# GGUF file types that describe unquantized (float) weights.
_FLOAT_FILE_TYPES = frozenset({"ALL_F32", "MOSTLY_F16", "MOSTLY_BF16"})
# File types that do not say how the weights were quantized.
_UNINFORMATIVE_FILE_TYPES = frozenset({"GUESSED"})
# Plain floating-point dtypes (safetensors and GGML spell these alike).
_FLOAT_DTYPES = frozenset({"F16", "BF16", "F32", "F64"})
# Dtypes that never hold quantized weights, packed or not: floats, flags and the
# 64-bit integer buffers (position ids, step counters) real checkpoints carry.
_NON_WEIGHT_CONTAINERS = _FLOAT_DTYPES | {"BOOL", "I64", "U64", "C64"}
_QUANTIZED_PREFIXES = ("Q", "IQ", "TQ", "MXFP", "NVFP", "F8_", "F6_")
# ONNX names its sub-byte integers INT4 / UINT4 / INT2 / UINT2.
_QUANTIZED_DTYPES = frozenset({"F4", "I8", "U8", "INT4", "UINT4", "INT2", "UINT2"})
# quant_method values whose bit width is implied by the method itself.
_IMPLIED_BITS: dict[str, int] = {"fp8": 8, "fbgemm_fp8": 8, "eetq": 8, "mxfp4": 4}
_FORMAT_KEYS = ("format", "checkpoint_format")


def _round(value: float) -> float:
    return round(value, 4)


def _sorted_dict(value: dict[str, object]) -> dict[str, object]:
    return dict(sorted(value.items()))


class DtypeStats(BaseModel):
    """Totals for the tensors of one dtype in one file.

    ``bytes`` are the tensors' own: ``n_elements × itemsize`` (a GGML type's blocks),
    not a deflated member's compressed length nor a strided view's extent.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    tensors: int
    elements: int
    bytes: int


class FileQuantization(BaseModel):
    """What one weight file stores, measured from its tensor table."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    dtypes: dict[str, DtypeStats]  # safetensors dtype or GGML type name → totals
    tensors: int
    elements: int
    bytes: int
    bits_per_weight: float | None  # 8 * bytes / elements; None without elements
    file_type: str | None  # GGUF general.file_type as a gguf.LlamaFileType name
    # The scheme the file's own structure shows (an ONNX graph's: onnx-qdq, onnx-qlinear,
    # onnx-int4-matmulnbits) and its bits; left out of the JSON while unset.
    scheme: str | None = added_field()
    bits: int | None = added_field()

    _sort_dtypes = field_validator("dtypes")(_sorted_dict)


class ModelQuantization(BaseModel):
    """The quantization of a whole model package."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    quantized: bool
    scheme: str | None  # GGUF file type name or normalised quant_method
    method: str | None  # quant_method exactly as config.json declares it
    bits: int | float | None
    group_size: int | None
    format: str | None
    source: str | None  # "<file>:general.file_type", "<config>:quantization_config", "<file>:graph"
    bits_per_weight: float | None  # over all weight files
    details: dict[str, Scalar]  # remaining scalar settings, sorted by key

    _sort_details = field_validator("details")(_sorted_dict)


def _bits_per_weight(nbytes: int, elements: int) -> float | None:
    return _round(8 * nbytes / elements) if elements > 0 else None


def _file_type_name(value: object) -> str:
    """Name a GGUF ``general.file_type``; values gguf does not know are kept visibly."""
    if isinstance(value, int) and not isinstance(value, bool):
        try:
            return gguf.LlamaFileType(value).name
        except ValueError:
            return f"UNKNOWN_{value}"
    return f"UNKNOWN_{type(value).__name__}"


def file_quantization(layout: WeightLayout) -> FileQuantization:
    """Measure the dtype mix of one parsed weight file."""
    totals: dict[str, list[int]] = {}
    for span in layout.tensors:
        entry = totals.setdefault(span.dtype, [0, 0, 0])
        entry[0] += 1
        entry[1] += span.n_elements
        entry[2] += span.logical_nbytes  # not a deflated or strided range's length
    dtypes = {
        name: DtypeStats(tensors=t, elements=e, bytes=b)
        for name, (t, e, b) in sorted(totals.items())
    }
    elements = sum(s.elements for s in dtypes.values())
    nbytes = sum(s.bytes for s in dtypes.values())
    file_type: str | None = None
    if layout.format == "gguf" and "general.file_type" in layout.metadata:
        file_type = _file_type_name(layout.metadata["general.file_type"])
    scheme = layout.metadata.get(QUANTIZATION) if layout.format == "onnx" else None
    bits = layout.metadata.get(QUANTIZATION_BITS) if scheme is not None else None
    return FileQuantization(
        dtypes=dtypes,
        tensors=len(layout.tensors),
        elements=elements,
        bytes=nbytes,
        bits_per_weight=_bits_per_weight(nbytes, elements),
        file_type=file_type,
        scheme=scheme if isinstance(scheme, str) else None,
        bits=_int(bits),
    )


def is_quantized_dtype(dtype: str) -> bool:
    """Whether a safetensors dtype or GGML type name stores quantized values.

    GGML block types (Q*, IQ*, TQ*, MXFP4, NVFP4), safetensors 8/6/4-bit floats,
    8-bit integers, which bitsandbytes and others use for weights, and ONNX's
    4- and 2-bit integers.
    """
    return dtype.startswith(_QUANTIZED_PREFIXES) or dtype in _QUANTIZED_DTYPES


def _mostly_quantized(fq: FileQuantization) -> bool:
    quantized = sum(s.bytes for d, s in fq.dtypes.items() if is_quantized_dtype(d))
    return quantized * 2 > fq.bytes


def _holds_only_plain_tensors(files: Mapping[str, FileQuantization]) -> bool:
    """True when there are tensors and none could hold quantized weights.

    Packed schemes (GPTQ, AWQ, compressed-tensors) store weights in I32 / U8
    containers, so only floats and non-weight buffers count as "plain".
    """
    dtypes = {d for fq in files.values() for d in fq.dtypes}
    return bool(dtypes) and dtypes <= _NON_WEIGHT_CONTAINERS


class _Declared:
    """A scheme declared by a file type or a quantization_config."""

    def __init__(self, scheme: str, source: str) -> None:
        self.scheme = scheme
        self.source = source
        self.method: str | None = None
        self.bits: int | float | None = None
        self.group_size: int | None = None
        self.format: str | None = None
        self.details: dict[str, Scalar] = {}


def _gguf_scheme(
    files: Mapping[str, FileQuantization], findings: list[Finding]
) -> _Declared | None:
    """The scheme the GGUF files declare; the largest file's when they disagree."""
    typed = {p: (fq.file_type, fq) for p, fq in sorted(files.items()) if fq.file_type is not None}
    for path, (file_type, _) in typed.items():
        if file_type.startswith("UNKNOWN_"):
            findings.append(
                Finding(
                    code=Code.QUANTIZATION_FILE_TYPE_UNKNOWN,
                    severity="warning",
                    message=f"general.file_type is not a known llama.cpp file type "
                    f"({file_type}); quantization is judged from the tensor types",
                    file=path,
                )
            )
    if not typed:
        return None
    path, file_type, largest = _largest(typed, "GGUF files declare different file types", findings)
    if file_type in _FLOAT_FILE_TYPES:
        return None
    # GUESSED and unknown values are a scheme only if the tensors bear it out.
    uninformative = file_type in _UNINFORMATIVE_FILE_TYPES or file_type.startswith("UNKNOWN_")
    if uninformative and not _mostly_quantized(largest):
        return None
    return _Declared(file_type, f"{path}:general.file_type")


def _graph_scheme(
    files: Mapping[str, FileQuantization], findings: list[Finding]
) -> _Declared | None:
    """The scheme ONNX graphs show (QDQ, QLinear, MatMulNBits); the largest file's if several."""
    shown = {p: (fq.scheme, fq) for p, fq in sorted(files.items()) if fq.scheme is not None}
    if not shown:
        return None
    # (a model with external data has few tensor bytes in its .onnx file)
    mixed = "ONNX graphs show different quantization schemes"
    path, scheme, largest = _largest(shown, mixed, findings)
    declared = _Declared(scheme, f"{path}:graph")
    declared.bits = largest.bits
    return declared


def _largest(
    schemes: Mapping[str, tuple[str, FileQuantization]], mixed: str, findings: list[Finding]
) -> tuple[str, str, FileQuantization]:
    """The largest file of ``schemes`` (by path, sorted): its path, scheme and measurement.

    Largest by tensor bytes; the path breaks ties so the choice is stable. Files
    of different schemes are a ``QUANTIZATION_MIXED`` finding (``mixed`` says how).
    """
    path, (scheme, largest) = max(schemes.items(), key=lambda item: (item[1][1].bytes, item[0]))
    if len({s for s, _ in schemes.values()}) > 1:
        listing = ", ".join(f"{p}={s}" for p, (s, _) in schemes.items())
        findings.append(
            Finding(
                code=Code.QUANTIZATION_MIXED,
                severity="warning",
                message=f"{mixed} ({listing}); the scheme of the largest file, {path}, is recorded",
            )
        )
    return path, scheme, largest


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _number(value: object) -> int | float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and math.isfinite(value):
        return _round(value)
    return None


def _str(value: object) -> str | None:
    return (value.strip() or None) if isinstance(value, str) else None


def _first_key(
    qc: Mapping[str, object], keys: tuple[str, ...], read: Callable[[object], object]
) -> str | None:
    """The first of ``keys`` whose value ``read`` accepts."""
    return next((k for k in keys if read(qc.get(k)) is not None), None)


def _scalar(value: object) -> tuple[bool, Scalar]:
    """A JSON scalar for ``details``, or ``(False, None)`` for anything else."""
    if value is None or isinstance(value, (bool, str)):
        return True, value
    if isinstance(value, int):
        # Beyond 2**53 an integer has no exact canonical-JSON form.
        return True, value if abs(value) <= SAFE_INT else str(value)
    if isinstance(value, float):
        return (True, _round(value)) if math.isfinite(value) else (True, str(value))
    return False, None


def _agreed(values: list[int | float], key: str, declared: _Declared) -> int | float | None:
    """One value when all groups agree; otherwise the spread goes into details."""
    distinct = sorted(set(values))
    if len(distinct) == 1:
        return distinct[0]
    if distinct:
        declared.details[key] = ",".join(str(v) for v in distinct)
    return None


def _compressed_tensors(qc: Mapping[str, object], declared: _Declared) -> set[str]:
    """Read ``config_groups.*.weights`` of a compressed-tensors config."""
    groups = qc.get("config_groups")
    weights = (
        [g.get("weights") for g in groups.values() if isinstance(g, dict)]
        if isinstance(groups, dict)
        else []
    )
    specs = [w for w in weights if isinstance(w, dict)]
    bits = [b for b in (_number(w.get("num_bits")) for w in specs) if b is not None]
    declared.bits = _agreed(bits, "weights.num_bits", declared)
    sizes: list[int | float] = [s for s in (_int(w.get("group_size")) for w in specs) if s]
    size = _agreed(sizes, "weights.group_size", declared)
    declared.group_size = size if isinstance(size, int) else None
    for field in ("type", "strategy", "symmetric"):
        found = {repr(w.get(field)): w.get(field) for w in specs if field in w}
        if len(found) == 1:
            ok, value = _scalar(next(iter(found.values())))
            if ok:
                declared.details[f"weights.{field}"] = value
    return {"config_groups"}


def _bitsandbytes(qc: Mapping[str, object], declared: _Declared) -> set[str]:
    # transformers' BitsAndBytesConfig.to_dict() writes both spellings.
    flags = ("load_in_4bit", "load_in_8bit", "_load_in_4bit", "_load_in_8bit")
    if qc.get("load_in_4bit") is True or qc.get("_load_in_4bit") is True:
        declared.bits = 4
        declared.format = _str(qc.get("bnb_4bit_quant_type"))
    elif qc.get("load_in_8bit") is True or qc.get("_load_in_8bit") is True:
        declared.bits = 8
    used = set(flags)
    if declared.format is not None:
        used.add("bnb_4bit_quant_type")
    return used


def _config_scheme(
    qc: Mapping[str, object], source: str, config_path: str, findings: list[Finding]
) -> _Declared:
    """Read a transformers ``quantization_config`` tolerantly."""
    used: set[str] = {"quant_method"}
    method = _str(qc.get("quant_method"))
    if method is not None:
        scheme = method.lower()
    else:
        scheme = _scheme_without_method(qc, source, config_path, findings)
    declared = _Declared(scheme, source)
    declared.method = method

    if scheme == "compressed-tensors":
        used |= _compressed_tensors(qc, declared)
    elif scheme == "bitsandbytes":
        used |= _bitsandbytes(qc, declared)
    else:
        # AutoAWQ writes w_bit / q_group_size, HQQ nbits.
        key = _first_key(qc, ("bits", "w_bit", "nbits", "num_bits"), _number)
        if key is not None:
            declared.bits = _number(qc[key])
            used.add(key)
        else:
            declared.bits = _IMPLIED_BITS.get(scheme)

    return _common_keys(qc, scheme, declared, used)


def _scheme_without_method(
    qc: Mapping[str, object], source: str, config_path: str, findings: list[Finding]
) -> str:
    """Older bitsandbytes and AutoGPTQ configs carry no quant_method: known by their keys."""
    if any(k in qc for k in ("load_in_4bit", "load_in_8bit", "bnb_4bit_quant_type")):
        return "bitsandbytes"
    if "bits" in qc and ("desc_act" in qc or "damp_percent" in qc):
        return "gptq"
    findings.append(
        Finding(
            code=Code.QUANTIZATION_CONFIG_INVALID,
            severity="warning",
            message=f"{source} has no usable quant_method and matches no known layout",
            file=config_path,
        )
    )
    return "unknown"


def _common_keys(
    qc: Mapping[str, object], scheme: str, declared: _Declared, used: set[str]
) -> _Declared:
    """Group size, format and block size under any scheme; other scalars as details."""
    key = _first_key(qc, ("group_size", "q_group_size"), _int)
    if key is not None and declared.group_size is None:
        declared.group_size = _int(qc[key])
        used.add(key)
    # AWQ names its kernel layout (gemm / gemv / …) "version".
    format_keys = ("format", "version", "checkpoint_format") if scheme == "awq" else _FORMAT_KEYS
    key = _first_key(qc, format_keys, _str)
    if key is not None and declared.format is None:
        declared.format = _str(qc[key])
        used.add(key)

    block = qc.get("weight_block_size")
    if isinstance(block, list) and block and all(_int(b) is not None for b in block):
        declared.details["weight_block_size"] = "x".join(str(b) for b in block)
        used.add("weight_block_size")
    for key, value in qc.items():
        if key in used or key in declared.details:
            continue
        ok, scalar = _scalar(value)
        if ok:
            declared.details[key] = scalar
    return declared


def model_quantization(
    files: Mapping[str, FileQuantization],
    config: dict[str, object] | None,
    config_path: str | None,
) -> tuple[ModelQuantization, list[Finding]]:
    """Combine per-file measurements with the declared scheme.

    A ``quantization_config`` (or the older ``compression_config``) in
    ``config.json`` takes precedence, as an explicit, model-wide declaration;
    then GGUF file types; then the scheme an ONNX graph shows. ``quantized`` is
    true when a scheme is declared or any weight file holds mostly (by bytes)
    quantized tensor types.
    """
    findings: list[Finding] = []
    declared = _config_declared(config, config_path or "config.json", findings)
    gguf_declared = _gguf_scheme(files, findings)
    graph_declared = _graph_scheme(files, findings)
    if declared is None:
        declared = gguf_declared or graph_declared

    if declared is not None and _holds_only_plain_tensors(files):
        findings.append(
            Finding(
                code=Code.QUANTIZATION_MISMATCH,
                severity="warning",
                message=f"{declared.source} declares {declared.scheme} but every weight "
                f"tensor is a plain float type",
            )
        )

    elements = sum(fq.elements for fq in files.values())
    nbytes = sum(fq.bytes for fq in files.values())
    quantized = declared is not None or any(_mostly_quantized(fq) for fq in files.values())
    result = ModelQuantization(
        quantized=quantized,
        scheme=declared.scheme if declared else None,
        method=declared.method if declared else None,
        bits=declared.bits if declared else None,
        group_size=declared.group_size if declared else None,
        format=declared.format if declared else None,
        source=declared.source if declared else None,
        bits_per_weight=_bits_per_weight(nbytes, elements),
        details=dict(declared.details) if declared else {},
    )
    return result, findings


def _config_declared(
    config: dict[str, object] | None, cfg_path: str, findings: list[Finding]
) -> _Declared | None:
    """The scheme config.json declares: ``quantization_config``, else ``compression_config``."""
    for key in ("quantization_config", "compression_config"):
        if config is None or key not in config:
            continue
        qc = config[key]
        if isinstance(qc, dict):
            return _config_scheme(qc, f"{cfg_path}:{key}", cfg_path, findings)
        findings.append(
            Finding(
                code=Code.QUANTIZATION_CONFIG_INVALID,
                severity="warning",
                message=f"{key} is a {type(qc).__name__}, not an object; ignored",
                file=cfg_path,
            )
        )
        return None
    return None
